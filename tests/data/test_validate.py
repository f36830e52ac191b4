"""Validation of raw tables against the column contract (bayesct.data.validate)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bayesct.constants import CT_ZONES, LABS, PERIOD_LABELS
from bayesct.data import Cohort, assign_period, build_cohort
from bayesct.errors import BayesctError, DataValidationError

SRC = "visits.csv"


def raw_visits() -> pd.DataFrame:
    """A small valid visit table, every value a string as read from a CSV file."""
    return pd.DataFrame(
        {
            "patient_id": ["P2", "P2", "P1", "P1", "P3"],
            "day": ["8", "2", "3", "12.5", "21"],
            "ct_score": ["10", "6", "4", "", "18"],
            "nlr": ["4.2", "", "2.5", "3", "9.1"],
            "lymphocyte_pct": ["12", "20.5", "30", "", "5"],
            "died": ["1", "1", "0", "0", "1"],
            "age": ["71", "71", "45", "45", "80"],
            "sex": ["M", "m", "Female", "F", "male"],
            "fever": ["1", "1", "0", "0", "1"],
            "ward": ["A", "A", "B", "B", "C"],
        }
    )


def expect_error(
    visits: pd.DataFrame,
    *,
    row: int | None,
    column: str | None,
    match: str,
    patients: pd.DataFrame | None = None,
    file: str = SRC,
) -> DataValidationError:
    with pytest.raises(DataValidationError, match=match) as info:
        build_cohort(visits, patients, source=SRC, patient_source="patients.csv")
    err = info.value
    assert isinstance(err, BayesctError)
    assert err.file == file
    assert err.row == row
    assert err.column == column
    text = str(err)
    assert "\n" not in text
    assert text.startswith(file)
    if row is not None:
        assert f"row {row}" in text
    if column is not None:
        assert f"column '{column}'" in text
    return err


# -- the valid case and the output layout ---------------------------------------------------------------
def test_valid_table_gives_documented_layout() -> None:
    cohort = build_cohort(raw_visits(), source=SRC)
    assert isinstance(cohort, Cohort)
    v, p = cohort.visits, cohort.patients
    assert list(v.columns) == ["patient_id", "day", "period", "ct_score", "nlr", "lymphocyte_pct"]
    # patients in order of first appearance, then by day
    assert v["patient_id"].tolist() == ["P2", "P2", "P1", "P1", "P3"]
    assert v["day"].tolist() == [2.0, 8.0, 3.0, 12.5, 21.0]
    assert pd.api.types.is_string_dtype(v["patient_id"])
    assert v["day"].dtype == np.float64
    assert v["ct_score"].dtype == np.float64
    assert np.isnan(v["ct_score"].iloc[3])
    assert isinstance(v["period"].dtype, pd.CategoricalDtype)
    assert v["period"].cat.ordered
    assert list(v["period"].cat.categories) == list(PERIOD_LABELS)
    assert v["period"].tolist() == ["0-5", "6-10", "0-5", "11-15", ">20"]
    assert isinstance(v.index, pd.RangeIndex)
    assert p.index.name == "patient_id"
    assert p.index.tolist() == ["P2", "P1", "P3"]
    assert pd.api.types.is_string_dtype(p.index)
    assert p.columns[0] == "died"
    assert p["died"].dtype == np.int64
    assert p["died"].tolist() == [1, 0, 1]
    assert p["age"].tolist() == [71.0, 45.0, 80.0]
    assert p["sex"].tolist() == ["male", "female", "male"]
    assert p["fever"].dtype == np.int64
    assert p["ward"].tolist() == ["A", "B", "C"]
    assert cohort.source == SRC
    assert cohort.notes == ()


def test_only_present_labs_appear_and_ct_column_always_exists() -> None:
    raw = raw_visits().drop(columns=["ct_score", "lymphocyte_pct"])
    cohort = build_cohort(raw)
    assert list(cohort.visits.columns) == ["patient_id", "day", "period", "ct_score", "nlr"]
    assert cohort.visits["ct_score"].isna().all()
    assert cohort.labs == ("nlr",)


def test_typed_dataframe_input_is_accepted() -> None:
    raw = pd.DataFrame(
        {
            "patient_id": [1, 1, 2],
            "day": [0, 4, 7],
            "ct_score": [3.0, np.nan, 12.0],
            "ldh": [250, 300, 410],
            "died": [0.0, 0.0, 1.0],
            "age": [60, 60, 70],
        }
    )
    cohort = build_cohort(raw)
    assert cohort.patients.index.tolist() == ["1", "2"]
    assert cohort.visits["ldh"].tolist() == [250.0, 300.0, 410.0]
    assert cohort.patients["died"].tolist() == [0, 1]


def test_column_names_are_normalised() -> None:
    raw = raw_visits().rename(columns={"patient_id": " Patient_ID ", "ct_score": "CT_Score"})
    cohort = build_cohort(raw)
    assert "ct_score" in cohort.visits.columns


@pytest.mark.parametrize("value", ["0", "1", "0.0", "1.0", 0, 1, 0.0, 1.0])
def test_died_accepts_zero_one_spellings(value: object) -> None:
    raw = raw_visits()
    raw["died"] = raw["died"].astype(object)
    raw.loc[raw["patient_id"] == "P3", "died"] = value
    cohort = build_cohort(raw)
    assert cohort.patients.loc["P3", "died"] == int(float(value))  # type: ignore[arg-type]


def test_blank_patient_values_on_some_rows_are_filled_from_the_others() -> None:
    raw = raw_visits()
    raw.loc[1, ["age", "sex", "died"]] = ""
    cohort = build_cohort(raw)
    assert cohort.patients.loc["P2", "age"] == 71.0
    assert cohort.patients.loc["P2", "sex"] == "male"


def test_covariate_blank_for_a_whole_patient_is_allowed() -> None:
    raw = raw_visits()
    raw.loc[raw["patient_id"] == "P3", ["age", "ward"]] = ""
    cohort = build_cohort(raw)
    assert np.isnan(cohort.patients.loc["P3", "age"])
    assert pd.isna(cohort.patients.loc["P3", "ward"])


# -- periods ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "label"),
    [
        (0, "0-5"),
        (5, "0-5"),
        (5.5, "6-10"),
        (10, "6-10"),
        (10.5, "11-15"),
        (15, "11-15"),
        (20, "16-20"),
        (20.5, ">20"),
        (60, ">20"),
    ],
)
def test_periods(day: float, label: str) -> None:
    assert list(assign_period(np.array([day]))) == [label]
    raw = raw_visits()
    raw.loc[0, "day"] = str(day)
    cohort = build_cohort(raw)
    row = cohort.visits[(cohort.visits["patient_id"] == "P2") & (cohort.visits["day"] == float(day))]
    assert row["period"].tolist() == [label]


# -- required columns and empty tables ----------------------------------------------------------------
@pytest.mark.parametrize("column", ["patient_id", "day"])
def test_missing_required_column(column: str) -> None:
    err = expect_error(raw_visits().drop(columns=[column]), row=None, column=column, match="missing required")
    assert "'ct_score'" in str(err)  # lists the columns that do exist


def test_missing_died_everywhere() -> None:
    err = expect_error(raw_visits().drop(columns=["died"]), row=None, column="died", match="missing required")
    assert "'age'" in str(err)


def test_no_marker_column() -> None:
    raw = raw_visits().drop(columns=["ct_score", "nlr", "lymphocyte_pct"])
    expect_error(raw, row=None, column=None, match="no marker column")


def test_table_without_columns() -> None:
    expect_error(pd.DataFrame(), row=None, column=None, match="empty")


def test_header_only_table() -> None:
    expect_error(raw_visits().iloc[0:0], row=None, column=None, match="no data rows")


def test_all_rows_blank() -> None:
    raw = raw_visits()
    raw.loc[:, :] = ""
    expect_error(raw, row=None, column=None, match="no data rows")


def test_not_a_dataframe() -> None:
    with pytest.raises(DataValidationError, match="DataFrame"):
        build_cohort([1, 2, 3], source=SRC)  # type: ignore[arg-type]


def test_duplicate_column_name() -> None:
    raw = pd.concat([raw_visits(), raw_visits()[["age"]].rename(columns={"age": "Age"})], axis=1)
    expect_error(raw, row=1, column="age", match="more than once")


# -- visit-level values -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("day", "abc", "day must be a number.*got 'abc'"),
        ("ct_score", "twelve", "CT score must be an integer from 0 to 24, got 'twelve'"),
        ("nlr", "4,2", "nlr must be a positive number.*got '4,2'"),
        ("ldh", "high", "ldh must be a positive number.*got 'high'"),
        ("lymphocyte_pct", "12%", "percentage.*got '12%'"),
    ],
)
def test_non_numeric_value(column: str, value: str, match: str) -> None:
    raw = raw_visits()
    if column not in raw:
        raw[column] = "100"
    raw.loc[3, column] = value
    expect_error(raw, row=5, column=column, match=match)


def test_ct_score_out_of_range_message() -> None:
    raw = pd.concat([raw_visits()] * 2, ignore_index=True)
    raw["day"] = [str(d) for d in range(len(raw))]
    raw.loc[5, "ct_score"] = "31"
    err = expect_error(raw, row=7, column="ct_score", match="got 31")
    assert (
        str(err) == "visits.csv, row 7, column 'ct_score': CT score must be an integer from 0 to 24, got 31"
    )


@pytest.mark.parametrize("value", ["12.5", "-1", "25", "inf"])
def test_ct_score_not_an_integer_0_24(value: str) -> None:
    raw = raw_visits()
    raw.loc[2, "ct_score"] = value
    expect_error(raw, row=4, column="ct_score", match=f"integer from 0 to 24, got {value}")


@pytest.mark.parametrize("lab", [lab for lab in LABS if not lab.endswith("_pct")])
@pytest.mark.parametrize("value", ["0", "-2.5"])
def test_non_positive_lab(lab: str, value: str) -> None:
    raw = raw_visits()
    raw[lab] = "1.5"
    raw.loc[1, lab] = value
    expect_error(raw, row=3, column=lab, match=f"must be a positive number.*got {value}")


@pytest.mark.parametrize("lab", ["lymphocyte_pct", "neutrophil_pct"])
@pytest.mark.parametrize("value", ["0", "100.5", "-3"])
def test_percentage_out_of_range(lab: str, value: str) -> None:
    raw = raw_visits()
    raw[lab] = "50"
    raw.loc[4, lab] = value
    expect_error(raw, row=6, column=lab, match=f"percentage.*got {value}")


@pytest.mark.parametrize("lab", ["lymphocyte_pct", "neutrophil_pct"])
@pytest.mark.parametrize("value", ["0", "100", "0.0", "100.0"])
def test_percentage_of_exactly_0_or_100_is_refused(lab: str, value: str) -> None:
    # logit(value / 100) is -inf at 0 and +inf at 100: both edges are refused
    raw = raw_visits()
    raw[lab] = "50"
    raw.loc[4, lab] = value
    err = expect_error(raw, row=6, column=lab, match=f"strictly between 0 and 100.*got {value}")
    assert re.search(r"logit\(value/100\)", str(err))
    assert str(err).startswith(f"{SRC}, row 6, column '{lab}': {lab} is a percentage")


@pytest.mark.parametrize("lab", ["lymphocyte_pct", "neutrophil_pct"])
def test_percentage_just_inside_the_edges_is_fine(lab: str) -> None:
    raw = raw_visits()
    raw[lab] = ["0.5", "99.5", "50", "", "1e-3"]
    values = build_cohort(raw).visits[lab]
    assert values.min() == pytest.approx(1e-3)
    assert values.max() == 99.5
    assert sorted(values.dropna()) == [1e-3, 0.5, 50.0, 99.5]


def test_non_positive_neutrophil_count() -> None:
    raw = raw_visits()
    raw["neutrophil_count"] = "3"
    raw.loc[0, "neutrophil_count"] = "0"
    expect_error(raw, row=2, column="neutrophil_count", match="positive")


def test_negative_day() -> None:
    raw = raw_visits()
    raw.loc[2, "day"] = "-2"
    expect_error(raw, row=4, column="day", match=">= 0.*got -2")


def test_blank_day() -> None:
    raw = raw_visits()
    raw.loc[2, "day"] = " "
    expect_error(raw, row=4, column="day", match="day is blank")


def test_blank_patient_id() -> None:
    raw = raw_visits()
    raw.loc[3, "patient_id"] = ""
    expect_error(raw, row=5, column="patient_id", match="patient_id is blank")


# -- patient-level values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["2", "yes", "0.5", "True", "-1"])
def test_died_must_be_zero_or_one(value: str) -> None:
    raw = raw_visits()
    raw.loc[raw["patient_id"] == "P1", "died"] = value
    expect_error(raw, row=4, column="died", match="died must be 0")


def test_died_not_constant_names_the_row_where_it_differs() -> None:
    raw = raw_visits()
    raw.loc[1, "died"] = "0"  # P2: row 2 says 1, row 3 says 0
    err = expect_error(raw, row=3, column="died", match="same on every row")
    assert "row 2" in str(err)
    assert "P2" in str(err)


@pytest.mark.parametrize(("column", "value"), [("age", "72"), ("sex", "M")])
def test_other_patient_columns_must_be_constant(column: str, value: str) -> None:
    raw = raw_visits()
    raw.loc[3, column] = value  # P1, second row
    expect_error(raw, row=5, column=column, match="same on every row.*P1")


def test_equal_values_in_different_spellings_are_constant() -> None:
    raw = raw_visits()
    raw.loc[1, "age"] = "71.0"
    raw.loc[1, "died"] = "1.0"
    assert build_cohort(raw).patients.loc["P2", "age"] == 71.0


def _outcome_notes(cohort: Cohort) -> list[str]:
    return [n for n in cohort.notes if "of unknown outcome" in n]


@pytest.mark.parametrize("blank", ["", "NA", "n/a", " "])
def test_died_blank_for_a_whole_patient_is_an_unknown_outcome(blank: str) -> None:
    raw = raw_visits()
    raw.loc[raw["patient_id"] == "P1", "died"] = blank
    cohort = build_cohort(raw, source=SRC)
    p = cohort.patients
    assert np.isnan(p.loc["P1", "died"]) and p.loc["P2", "died"] == 1.0 and p.loc["P3", "died"] == 1.0
    assert p["died"].dtype == np.float64
    assert cohort.outcome_known.to_dict() == {"P2": True, "P1": False, "P3": True}
    assert (cohort.n_deaths, cohort.n_survivors, cohort.n_outcome_unknown) == (2, 0, 1)
    assert cohort.n_patients == 3 and len(cohort.visits) == 5  # its visits are kept
    notes = _outcome_notes(cohort)
    assert len(notes) == 1
    assert notes[0] == cohort.outcome_note
    assert notes[0].startswith("1 patient of unknown outcome (blank died: P1): ")
    assert "left out of the mortality likelihood" in notes[0]
    assert "1 of unknown outcome" in cohort.summary()


def test_died_blank_on_some_rows_only_is_known() -> None:
    raw = raw_visits()
    raw.loc[2, "died"] = ""  # P1's first row; its second says 0
    cohort = build_cohort(raw)
    assert cohort.outcome_known.all() and cohort.patients["died"].dtype == np.int64
    assert cohort.outcome_note is None and not _outcome_notes(cohort)


def test_every_outcome_known_keeps_died_as_integers() -> None:
    cohort = build_cohort(raw_visits())
    assert cohort.patients["died"].dtype == np.int64
    assert cohort.n_outcome_unknown == 0 and cohort.outcome_note is None


def test_died_blank_in_the_patient_table_is_an_unknown_outcome() -> None:
    visits, patients = split_tables()
    patients.loc[patients["patient_id"] == "P3", "died"] = ""
    cohort = build_cohort(visits, patients, source=SRC, patient_source="patients.csv")
    assert cohort.outcome_known.to_dict() == {"P2": True, "P1": True, "P3": False}
    assert cohort.n_deaths == 1
    assert len(_outcome_notes(cohort)) == 1 and "P3" in _outcome_notes(cohort)[0]


def test_died_blank_in_the_patient_table_but_given_in_the_visits_is_known() -> None:
    visits, patients = split_tables()
    visits = visits.assign(died=["1", "1", "", "", "1"])
    patients.loc[patients["patient_id"] == "P3", "died"] = ""
    cohort = build_cohort(visits, patients, source=SRC, patient_source="patients.csv")
    assert cohort.outcome_known.to_dict() == {"P2": True, "P1": True, "P3": True}
    assert cohort.patients.loc["P3", "died"] == 1


@pytest.mark.parametrize("value", ["2", "yes"])
def test_bad_died_in_the_patient_table_is_still_refused(value: str) -> None:
    visits, patients = split_tables()
    patients.loc[2, "died"] = value
    expect_error(visits, patients=patients, row=4, column="died", match="died must be 0", file="patients.csv")


def test_a_cohort_of_unknown_outcomes_is_readable_but_a_mortality_model_refuses_it() -> None:
    from bayesct.modeling.fit import JointModel

    raw = raw_visits().assign(died="")
    cohort = build_cohort(raw, source=SRC)
    assert not cohort.outcome_known.any() and cohort.n_deaths == 0
    assert "3 patients of unknown outcome (blank died: P2, P1, P3)" in _outcome_notes(cohort)[0]
    for spec in ("joint", "ct_only", "scan_logistic"):
        with pytest.raises(BayesctError, match="no patient's outcome is known") as info:
            JointModel(spec).build(cohort)
        assert "mortality part" in str(info.value)
    with pytest.raises(BayesctError, match="population curves by outcome group"):
        JointModel("descriptive").build(cohort)  # its curves need each patient's outcome group


@pytest.mark.parametrize("value", ["121", "-1", "old"])
def test_age_out_of_range(value: str) -> None:
    raw = raw_visits()
    raw.loc[raw["patient_id"] == "P3", "age"] = value
    expect_error(raw, row=6, column="age", match="age must be a number from 0 to 120")


def test_invalid_sex() -> None:
    raw = raw_visits()
    raw.loc[raw["patient_id"] == "P3", "sex"] = "X"
    expect_error(raw, row=6, column="sex", match="sex must be female or male.*got 'X'")


def test_numeric_looking_columns_become_numbers_and_text_stays_text() -> None:
    raw = raw_visits()
    raw["bmi"] = ["30.1", "30.1", "22", "22", "27.5"]
    raw["smoker"] = ["yes", "yes", "no", "no", ""]
    raw["duration"] = ["7", "7", "10", "10", "3"]
    p = build_cohort(raw).patients
    assert p["bmi"].dtype == np.float64
    assert p["duration"].dtype == np.float64
    assert pd.api.types.is_string_dtype(p["smoker"])
    assert p["smoker"].tolist()[:2] == ["yes", "no"]
    assert pd.isna(p.loc["P3", "smoker"])


# -- duplicates, exclusions, derivations --------------------------------------------------------------
def test_conflicting_duplicate_rows_name_both_rows() -> None:
    raw = pd.concat([raw_visits(), raw_visits().iloc[[2]]], ignore_index=True)
    raw.loc[5, "ct_score"] = "9"  # P1 day 3 again (row 7) with a different CT score than row 4
    err = expect_error(raw, row=7, column="ct_score", match="conflicting duplicate")
    assert "rows 4 and 7" in str(err)
    assert "P1" in str(err)


def test_identical_duplicate_rows_are_collapsed_with_a_note() -> None:
    raw = pd.concat([raw_visits(), raw_visits().iloc[[0, 2]]], ignore_index=True)
    raw.loc[6, "day"] = "3.0"  # same value, other spelling
    cohort = build_cohort(raw, source=SRC)
    assert cohort.n_visits == 5
    assert any("2 identical duplicate" in n and "row 7, 8" in n for n in cohort.notes)


def test_rows_without_any_marker_are_excluded_with_a_note() -> None:
    raw = raw_visits()
    raw.loc[len(raw)] = ["P1", "30", "", "", "", "0", "45", "F", "0", "B"]
    raw.loc[len(raw)] = ["P3", "31", "NA", " ", "", "1", "80", "M", "1", "C"]
    cohort = build_cohort(raw, source=SRC)
    assert cohort.n_visits == 5
    assert any("2 visit row(s) with no CT score and no lab value excluded" in n for n in cohort.notes)


def test_patient_with_no_usable_row() -> None:
    raw = raw_visits()
    raw.loc[len(raw)] = ["P9", "4", "", "", "", "0", "50", "F", "0", "A"]
    expect_error(raw, row=7, column=None, match="patient P9 has no usable visit row")


def test_completely_empty_rows_are_skipped_with_a_note() -> None:
    raw = raw_visits()
    raw.loc[len(raw)] = [""] * raw.shape[1]
    cohort = build_cohort(raw, source=SRC)
    assert cohort.n_visits == 5
    assert any("completely empty" in n for n in cohort.notes)


def test_nlr_derived_when_absent() -> None:
    raw = raw_visits().drop(columns=["nlr"])
    raw["neutrophil_count"] = ["6", "", "3", "4", "8"]
    raw["lymphocyte_count"] = ["1.5", "1", "1", "", "0.5"]
    cohort = build_cohort(raw)
    v = cohort.visits.set_index(["patient_id", "day"])
    assert "neutrophil_count" not in cohort.visits.columns
    assert v.loc[("P2", 8.0), "nlr"] == pytest.approx(4.0)
    assert np.isnan(v.loc[("P2", 2.0), "nlr"])
    assert v.loc[("P3", 21.0), "nlr"] == pytest.approx(16.0)
    assert any("NLR derived" in n and "3 visit" in n for n in cohort.notes)


def test_nlr_derived_only_where_blank() -> None:
    raw = raw_visits()
    raw["neutrophil_count"] = ["6", "5", "3", "6", "8"]
    raw["lymphocyte_count"] = ["1.5", "1", "1", "2", "0.5"]
    v = build_cohort(raw).visits.set_index(["patient_id", "day"])
    assert v.loc[("P2", 8.0), "nlr"] == pytest.approx(4.2)  # given, kept
    assert v.loc[("P2", 2.0), "nlr"] == pytest.approx(5.0)  # blank, derived
    assert v.loc[("P1", 12.5), "nlr"] == pytest.approx(3.0)


def test_neutrophil_count_without_lymphocyte_count_is_noted() -> None:
    raw = raw_visits()
    raw["neutrophil_count"] = "5"
    cohort = build_cohort(raw)
    assert "neutrophil_count" not in cohort.visits.columns
    assert any("neutrophil_count not used" in n for n in cohort.notes)


# -- the patient table --------------------------------------------------------------------------------------
def split_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = raw_visits()
    visits = raw[["patient_id", "day", "ct_score", "nlr", "lymphocyte_pct"]]
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3"],
            "died": ["0", "1", "1"],
            "age": ["45", "71", "80"],
            "sex": ["F", "M", "M"],
        }
    )
    return visits, patients


def test_patient_table_join() -> None:
    visits, patients = split_tables()
    cohort = build_cohort(visits, patients, source=SRC, patient_source="patients.csv")
    p = cohort.patients
    assert p.index.tolist() == ["P2", "P1", "P3"]  # visits' order
    assert p["died"].tolist() == [1, 0, 1]
    assert p["sex"].tolist() == ["male", "female", "male"]
    assert list(p.columns) == ["died", "age", "sex"]


def test_column_in_both_tables_agreeing_and_complementing() -> None:
    visits, patients = split_tables()
    visits = visits.assign(fever=["1", "1", "0", "0", ""], age=["71", "71", "", "", "80"])
    patients = patients.assign(fever=["0", "", "1"])
    p = build_cohort(visits, patients, source=SRC, patient_source="patients.csv").patients
    assert p["fever"].tolist() == [1, 0, 1]
    assert p["age"].tolist() == [71.0, 45.0, 80.0]


def test_column_in_both_tables_conflicting() -> None:
    visits, patients = split_tables()
    visits = visits.assign(age=["71", "71", "45", "45", "80"])
    patients.loc[2, "age"] = "81"
    err = expect_error(
        visits, patients=patients, row=4, column="age", match="same on every row.*P3", file="patients.csv"
    )
    assert "visits.csv row 6" in str(err)


def test_died_only_in_patient_table_invalid() -> None:
    visits, patients = split_tables()
    patients.loc[1, "died"] = "dead"
    expect_error(visits, patients=patients, row=3, column="died", match="died must be 0", file="patients.csv")


def test_patient_table_duplicate_id() -> None:
    visits, patients = split_tables()
    patients = pd.concat([patients, patients.iloc[[0]]], ignore_index=True)
    err = expect_error(
        visits, patients=patients, row=5, column="patient_id", match="more than once", file="patients.csv"
    )
    assert "row 2" in str(err)


def test_patient_table_patient_without_visits() -> None:
    visits, patients = split_tables()
    patients.loc[len(patients)] = ["P7", "0", "30", "F"]
    expect_error(
        visits,
        patients=patients,
        row=5,
        column="patient_id",
        match="patient P7 has no visit rows",
        file="patients.csv",
    )


def test_visit_patient_missing_from_patient_table() -> None:
    visits, patients = split_tables()
    patients = patients.iloc[[0, 1]]
    expect_error(
        visits, patients=patients, row=6, column="patient_id", match="P3 is not in the patient table"
    )


def test_patient_table_missing_patient_id_column() -> None:
    visits, patients = split_tables()
    expect_error(
        visits,
        patients=patients.drop(columns=["patient_id"]),
        row=None,
        column="patient_id",
        match="missing required",
        file="patients.csv",
    )


def test_visit_column_in_patient_table() -> None:
    visits, patients = split_tables()
    expect_error(
        visits,
        patients=patients.assign(ct_score="3"),
        row=1,
        column="ct_score",
        match="visit-level",
        file="patients.csv",
    )


def test_patient_table_header_only() -> None:
    visits, patients = split_tables()
    expect_error(
        visits, patients=patients.iloc[0:0], row=None, column=None, match="no data rows", file="patients.csv"
    )


# -- scale ------------------------------------------------------------------------------------------------
def big_table(rng: np.random.Generator, n: int = 10_000, per: int = 4) -> pd.DataFrame:
    m = n * per
    pid = np.repeat(np.arange(n), per)
    day = np.tile(np.arange(per) * 5.0, n) + rng.uniform(0, 4, m)
    table = {
        "patient_id": np.char.add("P", pid.astype(str)),
        "day": np.round(day, 2).astype(str),
        "ct_score": rng.integers(0, 25, m).astype(str),
        **{lab: np.round(rng.uniform(1, 90, m), 2).astype(str) for lab in LABS},
        "died": np.repeat(rng.integers(0, 2, n), per).astype(str),
        "age": np.repeat(rng.integers(20, 95, n), per).astype(str),
        "sex": np.repeat(rng.choice(["F", "M"], n), per),
        "fever": np.repeat(rng.integers(0, 2, n), per).astype(str),
        "dyspnea": np.repeat(rng.integers(0, 2, n), per).astype(str),
    }
    frame = pd.DataFrame(table).astype(object)
    frame.loc[rng.random(m) < 0.3, "ct_score"] = ""
    return frame


def test_large_table_validates_whole(rng: np.random.Generator) -> None:
    # Speed is measured in benchmarks/, not asserted here.
    raw = big_table(rng)
    cohort = build_cohort(raw)
    assert cohort.n_patients == 10_000
    assert cohort.n_visits == 40_000


def test_error_in_large_table_points_at_the_row(rng: np.random.Generator) -> None:
    raw = big_table(rng, n=2_000)
    raw.loc[6543, "ldh"] = "-5"
    expect_error(raw, row=6545, column="ldh", match="positive")


# -- lung-zone scores ----------------------------------------------------------------------------------
#: Zone scores for the rows of raw_visits(): they sum to its ct_score (10, 6, 4, -, 18); the fourth
#: row (no ct_score) has partial zones.
ZONE_ROWS = [
    ["2", "2", "2", "2", "1", "1"],
    ["1", "1", "1", "1", "1", "1"],
    ["0", "1", "1", "1", "1", "0"],
    ["1", "", "2", "", "", "0"],
    ["3", "3", "3", "3", "3", "3"],
]


def raw_visits_with_zones() -> pd.DataFrame:
    raw = raw_visits()
    for j, zone in enumerate(CT_ZONES):
        raw[zone] = [r[j] for r in ZONE_ROWS]
    return raw


def test_clean_cohort_with_zones_keeps_the_zone_columns() -> None:
    cohort = build_cohort(raw_visits_with_zones(), source=SRC)
    v = cohort.visits
    assert list(v.columns) == [
        "patient_id",
        "day",
        "period",
        "ct_score",
        "nlr",
        "lymphocyte_pct",
        *CT_ZONES,
    ]
    assert all(v[z].dtype == np.float64 for z in CT_ZONES)
    # sorted by patient then day: P2 day 2 (input row 3) first
    assert v.loc[0, list(CT_ZONES)].tolist() == [1.0] * 6
    np.testing.assert_array_equal(v[list(CT_ZONES)].sum(axis=1, min_count=6).dropna(), [6, 10, 4, 18])
    # partial zones with no total: the total stays missing, the zones are kept
    partial = v.loc[v["ct_score"].isna()]
    assert len(partial) == 1
    np.testing.assert_array_equal(partial[list(CT_ZONES)].iloc[0], [1.0, np.nan, 2.0, np.nan, np.nan, 0.0])
    assert not any("zone" in n for n in cohort.notes)
    # zones are visit-level, not patient covariates; the layout survives a round trip
    assert not set(CT_ZONES) & set(cohort.patients.columns)
    again = build_cohort(cohort.to_frame(), source=SRC)
    pd.testing.assert_frame_equal(again.visits, v)


@pytest.mark.parametrize("value", ["5", "-1", "2.5", "x"])
@pytest.mark.parametrize("zone", ["zone_ru", "zone_ll"])
def test_bad_zone_value_names_file_row_and_column(zone: str, value: str) -> None:
    raw = raw_visits_with_zones()
    raw.loc[2, zone] = value
    shown = "'x'" if value == "x" else value
    err = expect_error(raw, row=4, column=zone, match=f"lung-zone score.*integer from 0 to 4, got {shown}")
    assert str(err).startswith(f"{SRC}, row 4, column '{zone}': {zone} is a lung-zone score")


@pytest.mark.parametrize("value", [5, -1, 2.5])
def test_bad_zone_value_in_a_typed_table(value: float) -> None:
    raw = raw_visits_with_zones()
    raw["zone_lm"] = pd.to_numeric(raw["zone_lm"].replace("", np.nan)).astype(float)
    raw.loc[4, "zone_lm"] = value
    expect_error(raw, row=6, column="zone_lm", match="integer from 0 to 4")


def test_bad_zone_value_in_a_table_without_ct_score() -> None:
    raw = raw_visits_with_zones().drop(columns=["ct_score"])
    raw.loc[0, "zone_rl"] = "5"
    expect_error(raw, row=2, column="zone_rl", match="integer from 0 to 4, got 5")


def test_ct_score_must_equal_the_sum_of_the_zones() -> None:
    raw = raw_visits_with_zones()
    raw.loc[0, "ct_score"] = "11"  # zones sum to 10
    err = expect_error(raw, row=2, column="ct_score", match="sum of the six zone scores")
    text = str(err)
    assert "2 + 2 + 2 + 2 + 1 + 1 = 10" in text
    assert text.endswith("got 11")


def test_partial_zones_are_not_checked_against_the_total() -> None:
    raw = raw_visits_with_zones()
    raw.loc[0, "zone_ll"] = ""  # five zones sum to 9, ct_score 10 is given: no check possible
    cohort = build_cohort(raw, source=SRC)
    row = cohort.visits.loc[cohort.visits["day"] == 8.0].iloc[0]
    assert row["ct_score"] == 10.0
    assert np.isnan(row["zone_ll"])


def test_ct_score_derived_from_the_zones_where_blank() -> None:
    raw = raw_visits_with_zones()
    raw.loc[1, "ct_score"] = ""  # P2 day 2, zones all 1
    cohort = build_cohort(raw, source=SRC)
    v = cohort.visits
    assert v.loc[(v["patient_id"] == "P2") & (v["day"] == 2.0), "ct_score"].item() == 6.0
    assert np.isnan(v.loc[(v["patient_id"] == "P1") & (v["day"] == 12.5), "ct_score"].item())
    notes = [n for n in cohort.notes if "sum of the six zone scores" in n]
    assert len(notes) == 1
    assert notes[0].startswith(SRC)
    assert "for 1 visit(s)" in notes[0]
    assert "row 3" in notes[0]


def test_ct_score_derived_when_the_column_is_absent() -> None:
    raw = raw_visits_with_zones().drop(columns=["ct_score"])
    cohort = build_cohort(raw, source=SRC)
    v = cohort.visits
    assert v["ct_score"].tolist()[:3] == [6.0, 10.0, 4.0]
    assert v["ct_score"].isna().sum() == 1
    assert cohort.n_scans == 4
    assert any("for 4 visit(s)" in n for n in cohort.notes)


def test_zones_alone_are_a_marker_column() -> None:
    raw = raw_visits_with_zones().drop(columns=["ct_score", "nlr", "lymphocyte_pct"])
    raw = raw.loc[raw["day"] != "12.5"]  # the partial-zone row would have no marker at all
    cohort = build_cohort(raw, source=SRC)
    assert cohort.markers == ("ct_score",)
    assert cohort.visits["ct_score"].tolist() == [6.0, 10.0, 4.0, 18.0]


def test_only_some_zone_columns_present() -> None:
    raw = raw_visits_with_zones().drop(columns=["zone_lm", "zone_ll"])
    raw.loc[1, "ct_score"] = ""
    cohort = build_cohort(raw, source=SRC)
    assert list(cohort.visits.columns)[-4:] == ["zone_ru", "zone_rm", "zone_rl", "zone_lu"]
    assert cohort.visits["ct_score"].isna().sum() == 2  # nothing derived from four zones
    assert not any("zone" in n for n in cohort.notes)


def test_duplicate_rows_differing_only_in_a_zone_conflict() -> None:
    raw = raw_visits_with_zones()
    raw = pd.concat([raw, raw.iloc[[2]]], ignore_index=True)
    raw.loc[5, ["zone_ru", "zone_rm"]] = ["1", "0"]  # same total 4, other zones
    expect_error(raw, row=7, column="zone_ru", match="conflicting duplicate.*different zone_ru")


def test_zone_column_in_patient_table_is_misplaced() -> None:
    visits, patients = split_tables()
    expect_error(
        visits,
        patients=patients.assign(zone_ru="1"),
        row=1,
        column="zone_ru",
        match="visit-level column",
        file="patients.csv",
    )


# -- where an error points, and how it prints values ------------------------------------------------------
def test_blank_died_in_both_tables_is_an_unknown_outcome() -> None:
    visits, patients = split_tables()
    visits = visits.assign(died=["1", "1", "0", "0", ""])
    patients.loc[2, "died"] = ""  # P3, blank in both tables
    cohort = build_cohort(visits, patients, source=SRC, patient_source="patients.csv")
    assert cohort.outcome_known.to_dict() == {"P2": True, "P1": True, "P3": False}
    assert len(_outcome_notes(cohort)) == 1


def test_values_print_as_a_person_writes_them() -> None:
    typed = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "day": [1.0, 4.0, 2.0],
            "ct_score": [3.0, 5.0, 8.0],
            "died": [0, 0, 1],
            "age": [np.float64(68.0), np.float64(68.5), np.float64(70.0)],
        }
    )
    err = expect_error(typed, row=3, column="age", match="same on every row")
    assert "has 68.5 here but 68 in row 2" in str(err)
    assert "np.float64" not in str(err)
    typed["sex"] = ["F", "M", "M"]
    typed["age"] = 68.0
    err = expect_error(typed, row=3, column="sex", match="same on every row")
    assert "has 'M' here but 'F' in row 2" in str(err)


def test_values_in_a_typed_patient_table_print_plainly() -> None:
    visits, _ = split_tables()
    visits = visits.assign(age=["71", "71", "45", "45", "80"])
    patients = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "died": [0, 1, 1], "age": [45.0, 71.0, 80.5]})
    err = expect_error(
        visits, patients=patients, row=4, column="age", match="same on every row", file="patients.csv"
    )
    assert "patient P3 has 80.5 here but 80 in visits.csv row 6" in str(err)
