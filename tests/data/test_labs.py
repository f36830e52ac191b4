"""User-declared labs: parsing, the [labs] table, validation like the built-in labs (bayesct.data.labs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesct.constants import LABS
from bayesct.data import build_cohort, read_cohort
from bayesct.data.columns import load_column_map
from bayesct.data.labs import (
    LabSpec,
    lab_direction,
    lab_transform,
    labs_from_json,
    labs_to_json,
    load_lab_declarations,
    marker_label,
    parse_labs,
)
from bayesct.errors import BayesctError, DataValidationError, SpecError

SRC = "visits.csv"


def visits(**extra: list[str]) -> pd.DataFrame:
    """A small valid visit table as read from a CSV file, with ``extra`` columns."""
    frame = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P2"],
            "day": ["2", "7", "4", "9"],
            "ct_score": ["4", "9", "12", "15"],
            "ldh": ["210", "260", "480", "520"],
            "died": ["0", "0", "1", "1"],
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def build(frame: pd.DataFrame, labs, **kwargs):
    return build_cohort(frame, source=SRC, labs=labs, **kwargs)


# -- declarations -----------------------------------------------------------------------------------
def test_declarations_parse_with_known_given_and_missing_directions():
    labs = parse_labs(["crp:log", "SpO2:pct", "xyz:log:down,abc:pct:UP"])
    assert labs == {
        "crp": LabSpec("log", 1),  # from the table of known directions
        "spo2": LabSpec("pct", -1),  # the name read as a header is
        "xyz": LabSpec("log", -1),
        "abc": LabSpec("pct", 1),
    }
    assert list(labs) == ["crp", "spo2", "xyz", "abc"]
    assert parse_labs("novel:log") == {"novel": LabSpec("log", None)}
    assert lab_transform("spo2", labs) == "pct" and lab_transform("crp", labs) == "log"
    assert lab_transform("lymphocyte_pct") == "pct" and lab_transform("ldh", labs) == "log"
    assert lab_direction("xyz", labs) == -1 and lab_direction("lymphocyte_count", labs) == -1
    assert (
        marker_label("crp") == "CRP" and marker_label("xyz") == "xyz" and marker_label("ldh") == "LDH (U/L)"
    )
    assert labs_from_json(labs_to_json(labs | parse_labs("novel:log"))) == labs | {
        "novel": LabSpec("log", None)
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("crp", r"expected NAME:TRANSFORM\[:DIRECTION\].*got 'crp'"),
        ("crp:log:up:x", "expected NAME:TRANSFORM"),
        ("crp:sqrt", r"unknown transform 'sqrt': expected log .* or pct"),
        ("crp:lgo", "did you mean 'log'"),
        ("crp:log:sideways", "unknown direction 'sideways'; expected up .* or down"),
        ("ct_score:log", "'ct_score' is a column bayesct knows"),
        ("day:log", "'day' is a column bayesct knows"),
        ("age:log", "'age' is a column bayesct knows"),
        ("LDH:log", "'LDH' is a built-in lab \\('ldh'\\)"),
        ("D-dimer:log", "is a built-in lab \\('d_dimer'\\)"),
        ("neutrophil_count:log", "is a column bayesct knows"),
        ("period:log", "is a column bayesct knows"),
        ("2nd:log", "not a lab name"),
        ("crp:log,crp:pct", "declared twice"),
    ],
)
def test_bad_declarations_are_clear_errors(text, match):
    with pytest.raises(DataValidationError, match=match) as info:
        parse_labs([text])
    assert isinstance(info.value, BayesctError)
    assert "\n" not in str(info.value)


def test_a_missing_direction_is_refused_only_where_it_is_needed():
    labs = parse_labs(["novel:log"])
    with pytest.raises(SpecError, match=r"'novel' has no known direction.*add :up or :down.*novel:log:up"):
        lab_direction("novel", labs)
    cohort = build(visits(novel=["1.5", "2", "3", "4"]), labs)  # reading needs no direction
    assert cohort.labs == ("ldh", "novel")


# -- the columns file's [labs] table ------------------------------------------------------------------
def test_labs_table_of_a_columns_file(tmp_path):
    csv = tmp_path / "v.csv"
    visits(**{"C-reactive protein": ["5", "40", "80", "120"], "SpO2 (%)": ["97", "95", "88", "85"]}).to_csv(
        csv, index=False
    )
    toml = tmp_path / "columns.toml"
    toml.write_text(
        '[columns]\ncrp = "C-reactive protein"\n\n'
        '[labs]\ncrp = "log"\nspo2 = { transform = "pct", direction = "down" }\n'
        'novel = { transform = "log", direction = "up" }\n'
    )
    assert load_lab_declarations(toml) == {
        "crp": LabSpec("log", 1),
        "spo2": LabSpec("pct", -1),
        "novel": LabSpec("log", 1),
    }
    assert load_column_map(toml) == {"crp": "C-reactive protein"}  # a declared lab may be mapped
    with pytest.raises(
        DataValidationError, match=r"'spo2' is not a column.*header 'SpO2 \(%\)' \(read as 'spo2_pct'\)"
    ):
        read_cohort(csv, columns=toml)
    toml.write_text(
        toml.read_text().replace(
            'crp = "C-reactive protein"', 'crp = "C-reactive protein"\nspo2 = "SpO2 (%)"'
        )
    )
    with pytest.raises(DataValidationError, match="'novel' is not a column of the visit table"):
        read_cohort(csv, columns=toml)
    toml.write_text(toml.read_text().replace('novel = { transform = "log", direction = "up" }\n', ""))
    cohort = read_cohort(csv, columns=toml)
    assert cohort.labs == ("ldh", "crp", "spo2")
    assert dict(cohort.declared_labs) == {"crp": LabSpec("log", 1), "spo2": LabSpec("pct", -1)}
    # labs given to read_cohort override the file's name by name
    again = read_cohort(csv, columns=toml, labs=["spo2:pct:up"])
    assert again.declared_labs["spo2"] == LabSpec("pct", 1)
    # a file with only a [labs] table
    only = tmp_path / "labs.toml"
    only.write_text('[labs]\ncrp = "log"\n')
    assert load_column_map(only) == {} and load_lab_declarations(only) == {"crp": LabSpec("log", 1)}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[labs]\ncrp = "cube"\n', r"\[labs\] crp: unknown transform 'cube'"),
        ('[labs]\nct_score = "log"\n', "'ct_score' is a column bayesct knows"),
        ('[labs]\ncrp = { direction = "up" }\n', r'expected a transform \("log" or "pct"\) or a table'),
        ('[labs]\ncrp = { transform = "log", sign = "up" }\n', "expected a transform"),
        ('[labs]\ncrp = { transform = "log", direction = "higher" }\n', "unknown direction 'higher'"),
        ('[lab]\ncrp = "log"\n', r"\[labs\] table.*did you mean 'labs'"),
    ],
)
def test_bad_labs_tables_name_the_file(tmp_path, text, match):
    toml = tmp_path / "columns.toml"
    toml.write_text(text)
    with pytest.raises(DataValidationError, match=match) as info:
        load_lab_declarations(toml)
    assert info.value.file == str(toml)


# -- validation ---------------------------------------------------------------------------------------
def test_a_declared_lab_is_a_visit_marker_after_the_builtin_ones_in_declaration_order():
    frame = visits(zeta=["1", "2", "3", "4"], alpha=["10", "", "30", "40"], esr=["20", "30", "40", "50"])
    cohort = build(frame, ["zeta:log:up", "alpha:pct:down"])
    assert cohort.markers == ("ct_score", "ldh", "esr", "zeta", "alpha")
    assert cohort.labs == ("ldh", "esr", "zeta", "alpha")
    np.testing.assert_array_equal(cohort.visits["alpha"].to_numpy(), [10.0, np.nan, 30.0, 40.0])
    assert "zeta" not in cohort.patients and "alpha" not in cohort.patients
    assert "declared labs: zeta (log, up), alpha (pct, down)" in cohort.summary()
    # without the declaration, a column constant within each patient would be a covariate
    plain = build(visits(zeta=["1", "1", "3", "3"]), None)
    assert "zeta" in plain.covariates
    declared = build(visits(zeta=["1", "1", "3", "3"]), ["zeta:log:up"])
    assert "zeta" not in declared.covariates and declared.labs == ("ldh", "zeta")
    # replicates keep the declarations
    rep = declared.with_values({"zeta": np.array([2.0, 2.0, 4.0, 4.0])})
    assert rep.declared_labs == declared.declared_labs and rep.labs == declared.labs


@pytest.mark.parametrize(
    ("labs", "values", "row", "match"),
    [
        ("zeta:log", ["1", "0", "3", "4"], 3, r"zeta must be a positive number \(> 0\), got 0"),
        ("zeta:log", ["1", "2", "-3", "4"], 4, "zeta must be a positive number"),
        ("zeta:log", ["1", "2", "high", "4"], 4, "zeta must be a positive number.*got 'high'"),
        (
            "zeta:pct",
            ["50", "100", "3", "4"],
            3,
            "zeta is a percentage and must be strictly between 0 and 100",
        ),
        ("zeta:pct", ["50", "20", "0", "4"], 4, "strictly between 0 and 100.*got 0"),
    ],
)
def test_a_declared_lab_is_validated_like_the_builtin_ones(labs, values, row, match):
    frame = visits(**{"Zeta (U/L)": values})
    with pytest.raises(DataValidationError, match=match) as info:
        build(frame, [labs])
    err = info.value
    assert (err.file, err.row, err.column) == (SRC, row, "Zeta (U/L)")  # the column as the file names it
    assert str(err).startswith(f"{SRC}, row {row}, column 'Zeta (U/L)'")


def test_declared_lab_columns_the_data_lack_or_misplace():
    with pytest.raises(DataValidationError, match=r'declared lab .crp. is not a column.*--map crp="crpp"'):
        build(visits(crpp=["1", "2", "3", "4"]), ["crp:log"])
    # a history may lack it
    assert build(visits(), ["crp:log"], require_labs=False).labs == ("ldh",)
    patients = pd.DataFrame({"patient_id": ["P1", "P2"], "crp": ["5", "8"]})
    with pytest.raises(DataValidationError, match="'crp' is a visit-level column") as info:
        build_cohort(visits(), patients, source=SRC, patient_source="patients.csv", labs=["crp:log"])
    assert info.value.file == "patients.csv"


def test_a_declared_lab_close_to_a_builtin_name_is_not_a_typo():
    """Undeclared, 'ldh_2' reads as a misspelt 'ldh' header; declared, it is a lab."""
    frame = visits(ldh_2=["1", "2", "3", "4"]).drop(columns=["ldh"])
    with pytest.raises(DataValidationError, match="did you mean 'ldh'"):
        build(frame, None)
    assert build(frame, ["ldh_2:log:up"]).labs == ("ldh_2",)
    assert set(LABS).isdisjoint(build(frame, ["ldh_2:log:up"]).declared_labs)
