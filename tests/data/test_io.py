"""Reading and writing cohort tables (bayesct.data.io)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesct.data import Cohort, build_cohort, read_cohort, read_table, write_cohort
from bayesct.errors import DataValidationError

CSV_TEXT = (
    "patient_id,day,ct_score,nlr,ldh,died,age,sex,fever\n"
    "007,2,4,2.50,250,0,45,F,0\n"
    "007,9,,3.1,,0,45,F,0\n"
    "12,4,12,5,410,1,70,M,1\n"
    "12,15,20,,390,1,70,M,1\n"
)


def sample_cohort(rng: np.random.Generator, n: int = 25) -> Cohort:
    rows = []
    for i in range(n):
        died = int(rng.integers(0, 2))
        age = int(rng.integers(30, 90))
        sex = str(rng.choice(["F", "M"]))
        for day in np.sort(rng.choice(np.arange(1, 30), size=int(rng.integers(1, 4)), replace=False)):
            rows.append(
                {
                    "patient_id": f"P{i:03d}",
                    "day": float(day) + float(rng.choice([0.0, 0.5])),
                    "ct_score": float(rng.integers(0, 25)) if rng.random() < 0.8 else np.nan,
                    "nlr": float(rng.lognormal(1.0, 0.5)) if rng.random() < 0.7 else np.nan,
                    "lymphocyte_pct": float(rng.uniform(1, 60)),
                    "d_dimer": float(rng.lognormal(0.0, 1.0)) if rng.random() < 0.5 else np.nan,
                    "died": died,
                    "age": age,
                    "sex": sex,
                    "fever": int(rng.integers(0, 2)) if i else 0,
                    "smoker": ["never", "former", "current"][i % 3],
                }
            )
    # fever must be constant within a patient
    frame = pd.DataFrame(rows)
    frame["fever"] = frame.groupby("patient_id")["fever"].transform("first")
    return build_cohort(frame, source="memory")


def assert_same_cohort(a: Cohort, b: Cohort) -> None:
    pd.testing.assert_frame_equal(a.visits, b.visits)
    pd.testing.assert_frame_equal(a.patients, b.patients)


# -- round trips --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".xlsx"])
def test_round_trip(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    cohort = sample_cohort(rng)
    path = write_cohort(cohort, tmp_path / f"cohort{suffix}")
    assert path.exists()
    back = read_cohort(path)
    assert_same_cohort(cohort, back)
    assert back.source == str(path)
    assert back.notes == ()


def test_round_trip_with_numeric_ids(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"patient_id": [1, 1, 2], "day": [1, 3, 2], "ct_score": [2, 5, 9], "died": [0, 0, 1]}
    )
    cohort = build_cohort(frame)
    for suffix in (".csv", ".parquet", ".xlsx"):
        assert_same_cohort(cohort, read_cohort(write_cohort(cohort, tmp_path / f"ids{suffix}")))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".xlsx"])
def test_round_trip_with_unknown_outcomes(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    frame = sample_cohort(rng).to_frame()
    frame["died"] = frame["died"].astype(object)
    frame.loc[frame["patient_id"].isin(["P003", "P017"]), "died"] = ""  # still in hospital
    cohort = build_cohort(frame, source="memory")
    assert cohort.n_outcome_unknown == 2
    back = read_cohort(write_cohort(cohort, tmp_path / f"cohort{suffix}"))
    assert_same_cohort(cohort, back)
    assert not back.outcome_known[["P003", "P017"]].any() and back.outcome_known.sum() == 23
    assert back.notes == (cohort.outcome_note,)


def test_unknown_outcome_is_written_as_a_blank(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"patient_id": ["A", "A", "B"], "day": [1, 3, 2], "ct_score": [2, 5, 9], "died": ["", "", "1"]}
    )
    path = write_cohort(build_cohort(frame), tmp_path / "c.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert raw["died"].tolist() == ["", "", "1"]


# -- reading ------------------------------------------------------------------------------------------------
def test_read_table_keeps_raw_strings(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text(CSV_TEXT)
    table = read_table(path)
    assert table["patient_id"].tolist() == ["007", "007", "12", "12"]
    assert table["nlr"].tolist() == ["2.50", "3.1", "5", ""]
    cohort = read_cohort(path)
    assert cohort.patients.index.tolist() == ["007", "12"]
    assert cohort.visits["nlr"].iloc[0] == 2.5


def test_read_semicolon_csv_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(("\ufeff" + CSV_TEXT.replace(",", ";")).encode("utf-8"))
    cohort = read_cohort(path)
    assert cohort.n_visits == 4
    assert list(cohort.patients.columns) == ["died", "age", "sex", "fever"]


def test_read_cp1252_csv(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(CSV_TEXT.replace("F,0\n", "F,0\n", 1).replace("fever", "fièvre").encode("cp1252"))
    assert "fièvre" in read_cohort(path).patients.columns


def test_read_cohort_with_patient_table(tmp_path: Path) -> None:
    visits = tmp_path / "visits.csv"
    visits.write_text("patient_id,day,ct_score\nA,1,3\nA,6,8\nB,2,10\n")
    patients = tmp_path / "patients.xlsx"
    pd.DataFrame({"patient_id": ["A", "B"], "died": [0, 1], "sex": ["f", "M"]}).to_excel(
        patients, index=False
    )
    cohort = read_cohort(visits, patients)
    assert cohort.patients["died"].tolist() == [0, 1]
    assert cohort.patients["sex"].tolist() == ["female", "male"]


def test_error_in_patient_table_names_that_file(tmp_path: Path) -> None:
    visits = tmp_path / "visits.csv"
    visits.write_text("patient_id,day,ct_score\nA,1,3\nB,2,10\n")
    patients = tmp_path / "patients.csv"
    patients.write_text("patient_id,died\nA,0\nB,maybe\n")
    with pytest.raises(DataValidationError) as info:
        read_cohort(visits, patients)
    assert info.value.file == str(patients)
    assert info.value.row == 3
    assert info.value.column == "died"


def test_error_message_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    lines = CSV_TEXT.splitlines()
    lines.insert(3, "12,1,31,,,1,70,M,1")  # becomes spreadsheet row 4
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as info:
        read_cohort(path)
    assert (
        str(info.value)
        == f"{path}, row 4, column 'ct_score': CT score must be an integer from 0 to 24, got 31"
    )


def test_excel_rows_are_spreadsheet_rows(tmp_path: Path) -> None:
    path = tmp_path / "visits.xlsx"
    frame = pd.DataFrame(
        {"patient_id": ["A", "A", "B"], "day": [1, 2, 3], "ct_score": [3, 4, 12.5], "died": [0, 0, 1]}
    )
    frame.to_excel(path, index=False)
    with pytest.raises(DataValidationError) as info:
        read_cohort(path)
    assert (info.value.file, info.value.row, info.value.column) == (str(path), 4, "ct_score")
    assert "got 12.5" in str(info.value)


# -- bad files ----------------------------------------------------------------------------------------------
def expect_file_error(path: Path, match: str) -> DataValidationError:
    with pytest.raises(DataValidationError, match=match) as info:
        read_cohort(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(str(path))
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    expect_file_error(tmp_path / "nope.csv", "file not found")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "data.csv"
    folder.mkdir()
    expect_file_error(folder, "not a file")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "visits.json"
    path.write_text("{}")
    err = expect_file_error(path, "unsupported file type '.json'")
    for suffix in (".csv", ".parquet", ".xlsx"):
        assert suffix in str(err)


def test_write_unknown_suffix(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(DataValidationError, match="supported"):
        write_cohort(sample_cohort(rng, n=3), tmp_path / "out.json")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_csv(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(content)
    expect_file_error(path, "empty")


def test_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text("patient_id,day,ct_score,died\n")
    expect_file_error(path, "header but no data rows")


def test_header_only_excel(tmp_path: Path) -> None:
    path = tmp_path / "visits.xlsx"
    pd.DataFrame(columns=["patient_id", "day", "ct_score", "died"]).to_excel(path, index=False)
    expect_file_error(path, "header but no data rows")


def test_empty_excel(tmp_path: Path) -> None:
    path = tmp_path / "visits.xlsx"
    pd.DataFrame().to_excel(path, index=False)
    expect_file_error(path, "empty")


def test_png_renamed_csv(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)))
    expect_file_error(path, "PNG image")


def test_random_bytes_csv(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(rng.bytes(4096))
    expect_file_error(path, "not a text table")


def test_corrupt_xlsx(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "visits.xlsx"
    path.write_bytes(b"PK\x03\x04" + rng.bytes(2048))
    expect_file_error(path, "cannot read the file as an Excel workbook")


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "visits.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "not a workbook")
    expect_file_error(path, "Excel workbook")


def test_text_renamed_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "visits.xlsx"
    path.write_text(CSV_TEXT)
    expect_file_error(path, "Excel workbook")


def test_corrupt_parquet(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "visits.parquet"
    path.write_bytes(rng.bytes(1024))
    expect_file_error(path, "cannot read the file as Parquet")


def test_ragged_csv(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text("patient_id,day,ct_score,died\nA,1,3,0\nA,2,4,0,7,8\n")
    err = expect_file_error(path, "cannot parse")
    assert err.row == 3


def test_trailing_separators_are_ignored_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text("patient_id,day,ct_score,died,\nA,1,3,0,\nB,2,4,1,\n")
    cohort = read_cohort(path)
    assert cohort.n_visits == 2
    assert any("without a header" in n for n in cohort.notes)
