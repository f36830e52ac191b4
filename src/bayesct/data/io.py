"""Reading and writing cohort tables (CSV, Parquet, Excel).

Files are read with every value kept raw (CSV cells as strings, Excel cells as
the Python objects openpyxl gives), so that :func:`bayesct.data.validate.build_cohort`
sees exactly what the file holds and nothing is coerced silently. Every failure
to read a file (missing, unreadable, binary, corrupt, unknown suffix) becomes a
:class:`~bayesct.errors.DataValidationError` naming the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from bayesct.constants import DIED
from bayesct.data.cohort import Cohort
from bayesct.data.columns import load_column_map
from bayesct.data.labs import LabSpec, as_declarations, load_lab_declarations, merge_labs
from bayesct.data.validate import build_cohort
from bayesct.errors import DataValidationError

__all__ = ["SUPPORTED_SUFFIXES", "read_cohort", "read_table", "write_cohort"]

_CSV = (".csv", ".tsv", ".txt")
_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm", ".xls")
#: File suffixes bayesct reads and writes (``.xls`` is read only, and needs ``xlrd``).
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_CSV, *_PARQUET, *_EXCEL)

_SNIFF_BYTES = 8192
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook?)",
    b"PAR1": "a Parquet file",
    b"\xd0\xcf\x11\xe0": "an old-style Office file (Excel .xls?)",
}


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"unsupported file type '{path.suffix or '(none)'}'; supported: {', '.join(SUPPORTED_SUFFIXES)}",
            file=str(path),
        )
    return suffix


def _read_csv(path: Path, suffix: str) -> pd.DataFrame:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(f"cannot read the file: {exc.strerror or exc}", file=name) from exc
    if not data.strip():
        raise DataValidationError("the file is empty", file=name)
    head = data[:_SNIFF_BYTES]
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise DataValidationError(f"not a text table: the file looks like {what}", file=name)
    if b"\x00" in head:
        raise DataValidationError("not a text table: the file holds binary data", file=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        if text.count("\ufffd") > max(3, len(text) // 1000):
            raise DataValidationError(
                "not a text table: the file is neither UTF-8 nor Windows-1252 text", file=name
            ) from None
    first_line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    if suffix == ".tsv":
        sep = "\t"
    else:
        counts = {s: first_line.count(s) for s in (",", ";", "\t")}
        sep = max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("the file is empty", file=name) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        match = re.search(r"line (\d+)", message)
        row = int(match.group(1)) if match else None
        raise DataValidationError(f"cannot parse the file as a table: {message}", file=name, row=row) from exc


def _read_excel(path: Path, suffix: str) -> pd.DataFrame:
    name = str(path)
    engine: Literal["xlrd", "openpyxl"] = "xlrd" if suffix == ".xls" else "openpyxl"
    try:
        df = pd.read_excel(
            path, sheet_name=0, dtype=object, engine=engine, keep_default_na=False, na_filter=False
        )
    except ImportError as exc:
        raise DataValidationError(
            f"reading {suffix} files needs the '{engine}' package; save the workbook as .xlsx or .csv",
            file=name,
        ) from exc
    except Exception as exc:  # openpyxl/zipfile raise many types on corrupt files
        raise DataValidationError(
            f"cannot read the file as an Excel workbook ({type(exc).__name__}: {exc})", file=name
        ) from exc
    if df.shape[1] == 0:
        raise DataValidationError("the file is empty (the first sheet has no header row)", file=name)
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    name = str(path)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types on corrupt files
        raise DataValidationError(
            f"cannot read the file as Parquet ({type(exc).__name__}: {exc})", file=name
        ) from exc
    if df.shape[1] == 0:
        raise DataValidationError("the file is empty (no columns)", file=name)
    # keep numbers as numbers (they are the raw values), anything exotic becomes plain objects
    for col in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_string_dtype(df[col])):
            df[col] = df[col].astype(object)
    return df


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one table with its values kept raw; the reader is chosen by the file suffix.

    CSV (``.csv``; ``.tsv``/``.txt`` too; the separator ``,``, ``;`` or tab is
    taken from the header line) is read as strings with blanks as ``""``; Excel
    (``.xlsx``, first sheet) as the cell objects; Parquet with its stored types.
    Raises :class:`~bayesct.errors.DataValidationError` naming the file when it
    is missing, unreadable, binary, corrupt or of an unsupported type.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise DataValidationError("file not found", file=str(path))
    if not path.is_file():
        raise DataValidationError("not a file (a directory?)", file=str(path))
    if suffix in _CSV:
        return _read_csv(path, suffix)
    if suffix in _EXCEL:
        return _read_excel(path, suffix)
    return _read_parquet(path)


def read_cohort(
    path: str | Path,
    patients_path: str | Path | None = None,
    *,
    columns: Mapping[str, str] | str | Path | None = None,
    labs: Mapping[str, LabSpec] | Mapping[str, str] | str | Sequence[str] | None = None,
) -> Cohort:
    """Read and validate a cohort: a long visit table and, optionally, a patient table.

    Error messages name the files as given here.

    Parameters
    ----------
    path
        The visits table, one row per patient-visit (CSV, Parquet or Excel).
    patients_path
        An optional patient table (one row per patient), joined on ``patient_id``.
    columns
        Optional: bayesct's column names mapped to the files' headers, for both tables,
        as a mapping (``{"day": "Days since onset"}``) or the path of a TOML file with a
        ``[columns]`` table (:func:`bayesct.data.columns.load_column_map`) and/or a
        ``[labs]`` table. Other headers are matched by normalisation (``"LDH (U/L)"`` is ``ldh``).
    labs
        Optional: labs beyond the contract's, modelled like them (:mod:`bayesct.data.labs`):
        ``["crp:log", "spo2:pct:down"]`` or ``{"crp": "log"}``; over a columns file's
        ``[labs]`` name by name.

    Returns
    -------
    Cohort
        The validated cohort; ``cohort.notes`` says what was excluded or derived.

    Raises
    ------
    bayesct.errors.DataValidationError
        A file, row and column that break the column contract.

    Examples
    --------
    >>> import bayesct as bc
    >>> cohort = bc.read_cohort("visits.csv", "patients.csv")  # doctest: +SKIP
    >>> cohort = bc.read_cohort("visits.csv", labs=["crp:log", "spo2:pct:down"])  # doctest: +SKIP
    >>> print(cohort.summary())  # doctest: +SKIP
    """
    declared = as_declarations(labs)
    mapping: Mapping[str, str] | None
    if isinstance(columns, (str, Path)):
        declared = merge_labs(load_lab_declarations(columns), declared)
        mapping = load_column_map(columns, labs=declared)
    else:
        mapping = columns
    visits = read_table(path)
    patients = read_table(patients_path) if patients_path is not None else None
    return build_cohort(
        visits,
        patients,
        source=str(path),
        patient_source=str(patients_path) if patients_path is not None else None,
        columns=mapping,
        labs=declared,
    )


def write_cohort(cohort: Cohort, path: str | Path) -> Path:
    """Write ``cohort.to_frame()`` (one long table) to CSV, Parquet or Excel (.xlsx), by suffix.

    Reading the file back with :func:`read_cohort` (declaring the same labs) gives an equal cohort.
    An unknown outcome is written as a blank ``died`` (the outcomes as whole numbers, 0 or 1).
    Returns the path written.

    Examples
    --------
    >>> import bayesct as bc
    >>> bc.write_cohort(bc.load_default_cohort(), "default_cohort.csv")  # doctest: +SKIP
    PosixPath('default_cohort.csv')
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix in (".xls", ".xlsm"):
        raise DataValidationError("bayesct writes Excel workbooks as .xlsx only", file=str(path))
    frame = cohort.to_frame()
    if frame[DIED].isna().any():  # 0 / 1, and a blank where the outcome is unknown
        frame[DIED] = frame[DIED].astype("Int64")
    try:
        if suffix in _CSV:
            frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
        elif suffix in _PARQUET:
            frame.to_parquet(path, index=False)
        else:
            frame.to_excel(path, index=False, sheet_name="visits", engine="openpyxl")
    except OSError as exc:
        raise DataValidationError(f"cannot write the file: {exc.strerror or exc}", file=str(path)) from exc
    return path
