"""Days since onset derived from dates (onset_date, scan_date, admission_date) in bayesct.data.validate."""

from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd
import pytest

from bayesct.data import build_cohort, read_cohort
from bayesct.errors import DataValidationError

SRC = "visits.csv"
PSRC = "patients.csv"


def tables(
    scans: list[object] | None = None, onsets: list[object] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    visits = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "Scan date": scans or ["2020-02-03", "2020-02-10", "2020-03-01"],
            "ct_score": ["4", "9", "12"],
        }
    )
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "Onset date": onsets or ["2020-02-01", "2020-02-28"],
            "died": ["0", "1"],
        }
    )
    return visits, patients


def build(visits: pd.DataFrame, patients: pd.DataFrame | None = None):
    return build_cohort(visits, patients, source=SRC, patient_source=PSRC)


def expect(
    visits: pd.DataFrame, patients: pd.DataFrame | None, match: str, file: str, row: int | None, column: str
) -> DataValidationError:
    with pytest.raises(DataValidationError, match=match) as info:
        build(visits, patients)
    assert (info.value.file, info.value.row, info.value.column) == (file, row, column)
    return info.value


def test_day_is_derived_from_onset_and_scan_dates_with_a_note() -> None:
    cohort = build(*tables())
    assert cohort.visits["day"].tolist() == [2.0, 9.0, 2.0]
    assert any("day derived from the dates" in n and "onset day is day 0" in n for n in cohort.notes)
    assert "onset_date" not in cohort.patients.columns
    assert cohort.covariates == ()


@pytest.mark.parametrize(
    ("scans", "onsets"),
    [
        (["03/02/2020", "10/02/2020", "01/03/2020"], ["01/02/2020", "28/02/2020"]),  # 28 > 12: day first
        (["02/03/2020", "02/10/2020", "03/01/2020"], ["02/01/2020", "02/28/2020"]),  # 28 > 12: month first
        (["03.02.2020", "10.02.2020", "01.03.2020"], ["01.02.2020", "28.02.2020"]),
        (["2020/02/03", "2020-02-10T08:30", "2020-03-01 23:59:59"], None),
    ],
)
def test_date_spellings(scans: list[object], onsets: list[object] | None) -> None:
    assert build(*tables(scans, onsets)).visits["day"].tolist() == [2.0, 9.0, 2.0]


def test_date_cells_from_excel_and_parquet() -> None:
    cells: list[object] = [
        datetime.datetime(2020, 2, 3, 14, 30),
        pd.Timestamp("2020-02-10"),
        datetime.date(2020, 3, 1),
    ]
    assert build(*tables(cells)).visits["day"].tolist() == [2.0, 9.0, 2.0]
    visits, patients = tables()
    visits["Scan date"] = pd.to_datetime(visits["Scan date"])
    patients["Onset date"] = pd.to_datetime(patients["Onset date"])
    assert build(visits, patients).visits["day"].tolist() == [2.0, 9.0, 2.0]


def test_onset_date_in_the_visit_table() -> None:
    visits, _ = tables()
    visits["onset_date"] = ["2020-02-01", "", "2020-02-28"]
    visits["died"] = ["0", "0", "1"]
    assert build(visits).visits["day"].tolist() == [2.0, 9.0, 2.0]
    visits.loc[1, "onset_date"] = "2020-02-02"
    expect(visits, None, "'onset_date' must be the same on every row.*P1", SRC, 3, "onset_date")


def test_scan_before_onset_is_refused_naming_file_row_and_column() -> None:
    visits, patients = tables(["2020-02-03", "2020-01-30", "2020-03-01"])
    err = expect(
        visits, patients, "scan_date 2020-01-30 is before the onset_date 2020-02-01", SRC, 3, "Scan date"
    )
    assert "patients.csv row 2" in str(err)


@pytest.mark.parametrize(
    ("scan", "match"),
    [
        ("2020-02-30", "not a valid date, got '2020-02-30'"),
        ("yesterday", "must be a date like 2020-02-03.*got 'yesterday'"),
        (43870, "got the number 43870"),
        ("", "scan_date is blank"),
    ],
)
def test_bad_scan_date(scan: object, match: str) -> None:
    visits, patients = tables(["2020-02-03", scan, "2020-03-01"])  # type: ignore[list-item]
    expect(visits, patients, match, SRC, 3, "Scan date")


def test_blank_onset_date_names_the_patient_file() -> None:
    visits, patients = tables(onsets=["2020-02-01", " "])
    expect(visits, patients, "onset_date is blank for patient P2", PSRC, 3, "Onset date")


def test_ambiguous_slashed_dates_are_refused() -> None:
    visits, patients = tables(["03/02/2020", "10/02/2020", "01/03/2020"], ["01/02/2020", "02/01/2020"])
    expect(visits, patients, "ambiguous date '01/02/2020'.*YYYY-MM-DD", PSRC, 2, "Onset date")


def test_dates_in_two_orders_are_refused() -> None:
    visits, patients = tables(["03/02/2020", "02/13/2020", "01/03/2020"], ["01/02/2020", "28/02/2020"])
    err = expect(visits, patients, "dates in two orders: '02/13/2020' is month/day/year", SRC, 3, "Scan date")
    assert "'28/02/2020' (patients.csv row 3)" in str(err)


def test_missing_date_columns() -> None:
    visits, patients = tables()
    expect(
        visits, patients.drop(columns=["Onset date"]), "missing column 'onset_date'", SRC, None, "onset_date"
    )
    with pytest.raises(DataValidationError, match=r"missing required column 'day'.*scan_date"):
        build(visits.drop(columns=["Scan date"]), patients)


def test_with_a_day_column_the_dates_are_not_used() -> None:
    visits, patients = tables()
    visits["day"] = ["1", "8", "3"]
    cohort = build(visits, patients)
    assert cohort.visits["day"].tolist() == [1.0, 8.0, 3.0]
    assert any("scan_date, onset_date not used" in n for n in cohort.notes)


def test_admission_date_becomes_days_from_onset_to_admission() -> None:
    visits, patients = tables()
    patients["Admission date"] = ["2020-02-03", "2020-02-29"]
    cohort = build(visits, patients)
    assert cohort.patients["admission_day"].tolist() == [2.0, 1.0]
    assert "admission_date" not in cohort.patients.columns
    assert any("admission_day derived for 2 patient(s)" in n for n in cohort.notes)
    patients["Admission date"] = ["2020-01-20", "2020-02-29"]
    expect(
        visits,
        patients,
        "admission_date 2020-01-20 is before the onset_date 2020-02-01",
        PSRC,
        2,
        "Admission date",
    )


def test_dates_read_from_a_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text(
        "Patient ID,Onset date,Scan date,CT score,Died\n"
        "P1,2020-02-01,2020-02-03,4,0\n"
        "P1,2020-02-01,2020-02-10,9,0\n"
        "P2,2020-02-28,2020-03-01,12,1\n"
    )
    cohort = read_cohort(path)
    assert cohort.visits["day"].tolist() == [2.0, 9.0, 2.0]
    path.write_text(path.read_text().replace("2020-03-01", "2020-02-27"))
    with pytest.raises(DataValidationError, match="before the onset_date") as info:
        read_cohort(path)
    assert (info.value.file, info.value.row, info.value.column) == (str(path), 4, "Scan date")
