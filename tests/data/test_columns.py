"""Column names: header normalisation, the column mapping and its "did you mean" (bayesct.data.columns)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bayesct.data import build_cohort, read_cohort
from bayesct.data.columns import load_column_map, normalise_header, parse_column_map
from bayesct.errors import DataValidationError

SRC = "visits.csv"
PSRC = "patients.csv"


def visits(**renames: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "day": ["2", "7", "4"],
            "ct_score": ["4", "9", "12"],
            "ldh": ["210", "260", "480"],
            "died": ["0", "0", "1"],
        }
    )
    return frame.rename(columns=renames)


def build(frame: pd.DataFrame, patients: pd.DataFrame | None = None, **kwargs):
    return build_cohort(frame, patients, source=SRC, patient_source=PSRC, **kwargs)


# -- normalisation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("LDH (U/L)", "ldh"),
        ("ldh (u/l)", "ldh"),
        ("D-dimer", "d_dimer"),
        ("D-Dimer [mg/L]", "d_dimer"),
        ("Lymphocyte count (10^9/L)", "lymphocyte_count"),
        ("Lymphocyte %", "lymphocyte_pct"),
        ("Neutrophil (%)", "neutrophil_pct"),
        ("Patient ID", "patient_id"),
        ("CT score", "ct_score"),
        ("CT.score", "ct_score"),
        ("Days since onset", "day"),
        ("Age (years)", "age"),
        ("Gender", "sex"),
        ("ESR (mm/h)", "esr"),
        ("Zone RU", "zone_ru"),
        ("Onset date", "onset_date"),
        ("Dry cough", "dry_cough"),
        ("fièvre", "fièvre"),
    ],
)
def test_headers_normalise_to_the_vocabulary(header: str, name: str) -> None:
    assert normalise_header(header) == name


def test_a_file_with_the_headers_statisticians_write_validates() -> None:
    frame = visits(
        patient_id="Patient ID", day="Days since onset", ct_score="CT score", ldh="LDH (U/L)", died="Died"
    )
    frame["D-dimer (mg/L)"] = ["0.4", "0.9", "2.5"]
    frame["Lymphocyte count (10^9/L)"] = ["1.1", "0.8", "0.5"]
    cohort = build(frame)
    assert list(cohort.visits.columns) == [
        "patient_id",
        "day",
        "period",
        "ct_score",
        "lymphocyte_count",
        "d_dimer",
        "ldh",
    ]
    assert cohort.visits["ldh"].tolist() == [210.0, 260.0, 480.0]
    assert cohort.covariates == ()


def test_two_headers_with_the_same_name_are_an_error_naming_both() -> None:
    frame = visits().assign(**{"LDH (U/L)": ["1", "2", "3"]})
    with pytest.raises(
        DataValidationError, match=r"'ldh' and 'LDH \(U/L\)' both give the column 'ldh'"
    ) as info:
        build(frame)
    assert (info.value.file, info.value.row) == (SRC, 1)


def test_errors_name_the_column_as_the_file_does() -> None:
    frame = visits(ldh="LDH (U/L)")
    frame.loc[1, "LDH (U/L)"] = "-3"
    with pytest.raises(DataValidationError, match="must be a positive number") as info:
        build(frame)
    assert (info.value.file, info.value.row, info.value.column) == (SRC, 3, "LDH (U/L)")
    assert "column 'LDH (U/L)'" in str(info.value)


# -- the mapping ---------------------------------------------------------------------------------------
def test_map_parses_pairs_with_quotes_and_commas() -> None:
    assert parse_column_map('day=days_since_onset,ct_score="CT score"') == {
        "day": "days_since_onset",
        "ct_score": "CT score",
    }
    assert parse_column_map(['ldh="LDH, U/L"', "died = Outcome"]) == {"ldh": "LDH, U/L", "died": "Outcome"}


@pytest.mark.parametrize("text", ["day", "=x", "day=x,day=y"])
def test_malformed_map_is_an_error(text: str) -> None:
    with pytest.raises(DataValidationError, match="--map"):
        parse_column_map(text)


def test_unknown_target_name_gets_did_you_mean() -> None:
    with pytest.raises(
        DataValidationError, match="'ct_scor' is not a column name bayesct knows; did you mean 'ct_score'"
    ):
        parse_column_map("ct_scor=CT")
    with pytest.raises(DataValidationError, match="did you mean 'day'"):
        build(visits(day="t"), columns={"dya": "t"})


def test_mapping_renames_headers_in_both_tables() -> None:
    frame = visits(patient_id="ID number", day="t", died="outcome").drop(columns=["outcome"])
    patients = pd.DataFrame({"ID number": ["P1", "P2"], "outcome": ["0", "1"], "Age (years)": ["50", "72"]})
    cohort = build(frame, patients, columns={"patient_id": "ID number", "day": "t", "died": "outcome"})
    assert cohort.patients["died"].tolist() == [0, 1]
    assert cohort.patients["age"].tolist() == [50.0, 72.0]
    assert cohort.visits["day"].tolist() == [2.0, 7.0, 4.0]


def test_mapping_matches_the_header_by_its_normalised_form() -> None:
    cohort = build(visits(day="Days from admission"), columns={"day": "days_from_admission"})
    assert cohort.visits["day"].tolist() == [2.0, 7.0, 4.0]


def test_unknown_source_header_gets_did_you_mean() -> None:
    with pytest.raises(
        DataValidationError, match=r"no header 'CT scor' in visits\.csv; did you mean 'CT score'"
    ) as info:
        build(visits(ct_score="CT score"), columns={"ct_score": "CT scor"})
    assert info.value.file == SRC


def test_mapped_column_colliding_with_a_header_names_both() -> None:
    frame = visits().assign(t=["1", "2", "3"])
    with pytest.raises(
        DataValidationError, match=r"'day' and 't' both give the column 'day' \(through the column mapping"
    ):
        build(frame, columns={"day": "t"})


def test_columns_toml_file(tmp_path: Path) -> None:
    csv = tmp_path / "visits.csv"
    visits(day="Days since admission", ct_score="Total CT").to_csv(csv, index=False)
    toml = tmp_path / "columns.toml"
    toml.write_text('[columns]\nday = "Days since admission"\nct_score = "Total CT"\n')
    assert load_column_map(toml) == {"day": "Days since admission", "ct_score": "Total CT"}
    cohort = read_cohort(csv, columns=toml)
    assert cohort.visits["ct_score"].tolist() == [4.0, 9.0, 12.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[column]\nday = "t"\n', r"\[columns\] table.*did you mean 'columns'"),
        ('[columns]\ndya = "t"\n', "did you mean 'day'"),
        ("[columns]\nday = 3\n", "expected the file's header as a string"),
        ("[columns\n", "not a valid TOML file"),
    ],
)
def test_bad_columns_toml_names_the_file(tmp_path: Path, text: str, match: str) -> None:
    toml = tmp_path / "columns.toml"
    toml.write_text(text)
    with pytest.raises(DataValidationError, match=match) as info:
        load_column_map(toml)
    assert info.value.file == str(toml)


# -- unknown columns -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "known"), [("d_dimmer", "d_dimer"), ("ldh_u", "ldh"), ("lymph_count", "lymphocyte_count")]
)
def test_a_header_close_to_a_known_name_is_an_error_with_did_you_mean(header: str, known: str) -> None:
    frame = visits().drop(columns=["ldh"]).assign(**{header: ["1", "2", "3"]})
    with pytest.raises(DataValidationError, match=f"did you mean '{known}'.*--map {known}=") as info:
        build(frame)
    assert (info.value.file, info.value.row, info.value.column) == (SRC, 1, header)


def test_a_header_close_to_a_known_name_in_the_patient_table() -> None:
    patients = pd.DataFrame({"patient_id": ["P1", "P2"], "sexe": ["F", "M"]})
    with pytest.raises(DataValidationError, match="did you mean 'sex'") as info:
        build(visits(), patients)
    assert info.value.file == PSRC


def test_an_unknown_column_varying_within_a_patient_is_noted_as_not_used() -> None:
    frame = visits().assign(CRP=["5", "40", "12"], ward=["A", "A", "B"])
    cohort = build(frame)
    assert "crp" not in cohort.patients.columns and "crp" not in cohort.visits.columns
    assert cohort.patients["ward"].tolist() == ["A", "B"]
    (note,) = [n for n in cohort.notes if "not used" in n]
    assert "'CRP'" in note and "vary within a patient" in note and "patient P1, rows 2 and 3" in note
    assert "ward" not in note


def test_an_unknown_column_in_the_patient_table_must_still_agree_with_the_visits() -> None:
    frame = visits().assign(fever=["1", "1", "0"])
    patients = pd.DataFrame({"patient_id": ["P1", "P2"], "fever": ["0", "0"]})
    with pytest.raises(DataValidationError, match="same on every row") as info:
        build(frame, patients)
    assert info.value.file == PSRC


def test_a_lower_case_unit_header_is_the_lab_not_a_covariate() -> None:
    cohort = build(visits(ldh="ldh (u/l)"))
    assert cohort.visits["ldh"].tolist() == [210.0, 260.0, 480.0]
    assert cohort.covariates == ()
    assert not any("not used" in n for n in cohort.notes)
