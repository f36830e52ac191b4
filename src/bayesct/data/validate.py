"""Validation of raw input tables against the column contract.

:func:`build_cohort` takes the tables as read from a file (every column possibly
of ``object``/``str`` dtype, blanks as empty strings) and returns a
:class:`~bayesct.data.cohort.Cohort`, or raises
:class:`~bayesct.errors.DataValidationError` naming the file, the row (as a
spreadsheet shows it: header = row 1, first data row = row 2) and the column of
the first problem found.

Rules:

* headers are matched to the vocabulary by the column mapping and by
  normalisation (:mod:`bayesct.data.columns`); errors name the column as the
  file's header gives it; a header close to a name bayesct knows that the
  data lack is an error with a "did you mean ...?";
* visit-level columns: ``patient_id`` and ``day`` (required), ``ct_score``,
  the labs of :data:`bayesct.constants.LABS` and the declared ones (``labs``,
  :mod:`bayesct.data.labs`: each a column of the visit table, checked as the
  contract's labs by its transform), ``neutrophil_count`` (used
  only to derive NLR) and the optional lung-zone scores
  :data:`bayesct.constants.CT_ZONES` (``zone_ru`` ... ``zone_ll``, integers
  0-4); every other column is patient-level, except a column bayesct does not
  know that varies within a patient in the visit table: it is not used (noted);
* dates: without ``day``, each visit's ``scan_date`` and the patient's
  ``onset_date`` (either table) give ``day`` = the days between them (noted; a
  scan before onset is an error); an ``admission_date`` with ``onset_date``
  gives the covariate ``admission_day``; date columns are never kept as
  covariates;
* zone scores: where all six zones and ``ct_score`` are given, ``ct_score``
  must equal their sum; where all six are given and ``ct_score`` is blank or
  absent, it is derived as their sum (noted); partial zones leave a blank
  ``ct_score`` blank; the zone columns present are kept in ``Cohort.visits``;
* patient-level values must agree within a patient (blanks on some rows are
  allowed; the patient's value is the one given); the ``died`` column is
  required, 0/1 where given; a patient whose ``died`` is blank on every row (and
  in the patient table) has an unknown outcome, still in hospital: kept, ``died``
  NaN, and noted once (:func:`~bayesct.data.cohort.unknown_outcome_note`);
* nothing is dropped silently: collapsed duplicate rows, excluded rows with no
  marker at all, derived NLR values and derived CT totals are reported in
  ``Cohort.notes``.

Everything is vectorised; Python loops run over columns, never over rows.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesct.constants import (
    ADMISSION_DATE,
    ADMISSION_DAY,
    AGE,
    CT,
    CT_MAX,
    CT_ZONES,
    DAY,
    DERIVATION_COLUMNS,
    DIED,
    LABS,
    ONSET_DATE,
    PATIENT,
    PERIOD,
    SCAN_DATE,
    SEX,
    ZONE_MAX,
)
from bayesct.data.cohort import Cohort, assign_period, died_column
from bayesct.data.columns import KNOWN_COLUMNS, resolve_headers
from bayesct.data.labs import LabSpec, as_declarations, lab_names, lab_transform
from bayesct.errors import DataValidationError

__all__ = ["BLANK_TOKENS", "VISIT_COLUMNS", "build_cohort"]

#: Cell contents that mean "no value" (compared after stripping, case-insensitively).
BLANK_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "#n/a"})

NEUTROPHIL_COUNT = "neutrophil_count"
#: Columns that belong to one visit; every other column is patient-level.
VISIT_COLUMNS: tuple[str, ...] = (PATIENT, DAY, SCAN_DATE, CT, *LABS, *DERIVATION_COLUMNS, *CT_ZONES)
_MARKER_INPUTS: tuple[str, ...] = (CT, *LABS, *DERIVATION_COLUMNS, *CT_ZONES)
#: Patient-level dates: converted to days since onset, never kept as covariates.
_PATIENT_DATES: tuple[str, ...] = (ONSET_DATE, ADMISSION_DATE)
_MARKER_NAMES: frozenset[str] = frozenset((CT, *LABS, *DERIVATION_COLUMNS))
#: Patient-level columns bayesct knows: their values must agree within a patient.
_KNOWN_PATIENT: tuple[str, ...] = (DIED, AGE, SEX)
_AGE = AGE
_SEX = SEX
_AGE_MAX = 120.0
_SEX_VALUES: dict[str, str] = {"f": "female", "female": "female", "m": "male", "male": "male"}
_UNNAMED = re.compile(r"^(unnamed: \d+|)$")


# -- small helpers -------------------------------------------------------------------------------------
def _fail(message: str, file: str, row: int | None = None, column: str | None = None) -> DataValidationError:
    return DataValidationError(message, file=file, row=row, column=column)


def _text(raw: pd.Series) -> pd.Series:
    """Raw values as stripped strings; missing values become ''."""
    return raw.astype(str).str.strip().fillna("")


def _blank(raw: pd.Series) -> np.ndarray:
    """Boolean mask of blank cells."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.isna().to_numpy()
    return _text(raw).str.lower().isin(BLANK_TOKENS).to_numpy()


def _show(value: object) -> str:
    """A raw value for a message: numbers bare, text quoted."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return f"{number:.15g}"
    if isinstance(value, (datetime.date, np.datetime64)):
        if pd.isna(value):
            return "blank"
        stamp = pd.Timestamp(value)
        return str(stamp.date()) if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        return repr(text)
    return text


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numbers(raw: pd.Series, file: str, rows: np.ndarray, column: str, what: str) -> np.ndarray:
    """Parse a column as float (NaN for blank); a non-number is an error saying ``what`` was expected."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isinf(values)
    else:
        text = _text(raw)
        blank = text.str.lower().isin(BLANK_TOKENS).to_numpy()
        values = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = ~blank & ~np.isfinite(values)
    if bad.any():
        i = _first(bad)
        raise _fail(f"{what}, got {_show(raw.iloc[i])}", file, int(rows[i]), column)
    return values


def _check(bad: np.ndarray, raw: pd.Series, file: str, rows: np.ndarray, column: str, what: str) -> None:
    if bad.any():
        i = _first(bad)
        raise _fail(f"{what}, got {_show(raw.iloc[i])}", file, int(rows[i]), column)


def _ids(raw: pd.Series, file: str, rows: np.ndarray) -> np.ndarray:
    """Patient ids as strings (integral numbers without a trailing '.0'); a blank id is an error."""
    if raw.dtype == object or pd.api.types.is_numeric_dtype(raw.dtype):

        def norm(v: object) -> object:
            if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
                return str(int(v))
            return v

        raw = raw.map(norm)
    text = _text(raw)
    blank = text.str.lower().isin(BLANK_TOKENS).to_numpy()
    if blank.any():
        raise _fail(
            "patient_id is blank; every row needs a patient id", file, int(rows[_first(blank)]), PATIENT
        )
    return text.to_numpy(dtype=object)


def _row_list(rows: Sequence[int] | np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", ..." if len(rows) > limit else "")


def _check_frame(frame: object, file: str, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise _fail(f"expected a table (pandas DataFrame) for the {what}, got {type(frame).__name__}", file)
    if frame.shape[1] == 0:
        raise _fail(f"the {what} is empty: no columns", file)
    return frame


def _prepare(
    frame: pd.DataFrame, names: list[str], file: str, notes: list[str], what: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Name the columns, drop completely empty rows (noted); return the table and its row numbers."""
    if len(frame) == 0:
        raise _fail(f"the {what} has a header but no data rows", file)
    df = frame.copy()
    df.columns = pd.Index(names)
    df.index = pd.RangeIndex(len(df))
    rows = np.arange(len(df)) + 2
    blanks = {i: _blank(df.iloc[:, i]) for i in range(df.shape[1])}
    # columns without a header: fine when empty (e.g. trailing separators), an error when they hold values
    unnamed = [i for i, n in enumerate(names) if _UNNAMED.match(n)]
    for i in unnamed:
        if not blanks[i].all():
            r = int(rows[_first(~blanks[i])])
            raise _fail(f"column {i + 1} has values but no header name", file, r, None)
    if unnamed:
        keep = [i for i in range(len(names)) if i not in set(unnamed)]
        notes.append(f"{file}: {len(unnamed)} empty column(s) without a header ignored")
        df = df.iloc[:, keep]
        blanks = {j: blanks[i] for j, i in enumerate(keep)}
        if df.shape[1] == 0:
            raise _fail(f"the {what} is empty: no named columns", file)
    empty = np.logical_and.reduce(list(blanks.values()))
    if empty.all():
        raise _fail(f"the {what} has a header but no data rows (all rows are blank)", file)
    if empty.any():
        notes.append(
            f"{file}: {int(empty.sum())} completely empty row(s) skipped (row {_row_list(rows[empty])})"
        )
        df = df.loc[~empty].reset_index(drop=True)
        rows = rows[~empty]
    return df, rows


def _columns_list(df: pd.DataFrame, headers: Mapping[str, str]) -> str:
    """The table's columns as its file names them."""
    return ", ".join(f"'{headers.get(c, c)}'" for c in df.columns)


# -- patient-level columns -----------------------------------------------------------------------------
def _type_patient_column(
    raw: pd.Series, name: str, files: np.ndarray, rows: np.ndarray
) -> tuple[pd.Series, bool]:
    """Type one patient-level column (stacked rows of both tables). Returns values and 'numeric?'."""
    blank = _blank(raw)
    text = _text(raw)

    def fail_at(bad: np.ndarray, what: str) -> DataValidationError:
        i = _first(bad)
        return _fail(f"{what}, got {_show(raw.iloc[i])}", str(files[i]), int(rows[i]), name)

    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        num = raw.to_numpy(dtype=float, na_value=np.nan)
        notnum = np.isinf(num)
    else:
        num = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        notnum = ~blank & ~np.isfinite(num)
    if name == DIED:
        bad = notnum | (~blank & ~np.isin(num, (0.0, 1.0)))
        if bad.any():
            raise fail_at(bad, "died must be 0 (survived) or 1 (died)")
        return pd.Series(num), True
    if name == _AGE:
        if notnum.any():
            raise fail_at(notnum, f"age must be a number from 0 to {_AGE_MAX:g}")
        bad = ~blank & ((num < 0) | (num > _AGE_MAX))
        if bad.any():
            raise fail_at(bad, f"age must be a number from 0 to {_AGE_MAX:g}")
        return pd.Series(num), True
    if name == _SEX:
        mapped = text.str.lower().map(_SEX_VALUES)
        bad = ~blank & mapped.isna().to_numpy()
        if bad.any():
            raise fail_at(bad, "sex must be female or male (F/M)")
        return mapped.astype(str), False
    if not notnum.any():
        return pd.Series(num), True
    return text.where(~blank).astype(str), False


@dataclass(frozen=True)
class _Rows:
    """The rows of both tables stacked, visit rows first: each row's file, row number and patient."""

    v: pd.DataFrame
    p: pd.DataFrame | None
    files: np.ndarray
    rows: np.ndarray
    ids: np.ndarray
    codes: np.ndarray
    order: pd.Index

    @property
    def n_visits(self) -> int:
        return len(self.v)

    def has(self, name: str) -> bool:
        return name in self.v.columns or (self.p is not None and name in self.p.columns)

    def raw(self, name: str) -> pd.Series:
        """One column over the stacked rows (missing where a table lacks it)."""
        n_v = len(self.v)
        raw = self.v[name] if name in self.v.columns else pd.Series([np.nan] * n_v, dtype=object)
        if self.p is not None:
            n_p = len(self.p)
            other = self.p[name] if name in self.p.columns else pd.Series([np.nan] * n_p, dtype=object)
            raw = pd.concat([raw.astype(object), other.astype(object)], ignore_index=True)
        return raw.reset_index(drop=True)

    def cite(self, k: int, name: str, given: np.ndarray | None = None) -> int:
        """The stacked row to name for patient ``k``'s ``name``: its patient-table row when that
        table has the column, else its first visit row with a value (``given``), else its first visit row."""
        mine = self.codes == k
        if self.p is not None and name in self.p.columns:
            return int(np.flatnonzero(mine & (np.arange(len(mine)) >= self.n_visits))[0])
        if given is not None and (mine & given).any():
            return _first(mine & given)
        return _first(mine)

    def where(self, j: int, i: int) -> str:
        """Row ``j`` as seen from an error at row ``i`` ("row 3", or "patients.csv row 3")."""
        return (
            f"row {self.rows[j]}" if self.files[j] == self.files[i] else f"{self.files[j]} row {self.rows[j]}"
        )


def _disagreement(st: _Rows, values: pd.Series) -> tuple[int, int] | None:
    """The first stacked row whose value differs from an earlier one of its patient, and that one."""
    first = values.groupby(st.codes, sort=False).transform("first")
    differs = (values.notna() & first.notna() & (values != first)).to_numpy()
    if not differs.any():
        return None
    i = _first(differs)
    same = np.flatnonzero((st.codes == st.codes[i]) & values.notna().to_numpy())
    return i, int(same[0])


def _not_constant(st: _Rows, name: str, raw: pd.Series, i: int, j: int) -> DataValidationError:
    return _fail(
        f"'{name}' must be the same on every row of a patient: patient {st.ids[i]} has "
        f"{_show(raw.iloc[i])} here but {_show(raw.iloc[j])} in {st.where(j, i)}",
        str(st.files[i]),
        int(st.rows[i]),
        name,
    )


def _collapse(st: _Rows, values: pd.Series, raw: pd.Series, name: str) -> np.ndarray:
    """Per patient (in ``st.order``), the value given on its rows; rows that disagree are an error."""
    clash = _disagreement(st, values)
    if clash is not None:
        raise _not_constant(st, name, raw, *clash)
    per_patient = values.groupby(st.codes, sort=True).first().reindex(range(len(st.order)))
    return per_patient.to_numpy()


def _patient_table(
    st: _Rows, visit_columns: Sequence[str]
) -> tuple[pd.DataFrame, list[tuple[str, str, int, int]]]:
    """Type, check constancy of and collapse the patient-level columns of both tables.

    Returns the table and the visit-table columns bayesct does not know that vary within a
    patient (not used; ``(column, patient, row, other row)`` each): neither a visit column
    nor a covariate.
    """
    exclude = (*visit_columns, *_PATIENT_DATES)
    v, p = st.v, st.p
    v_cols = [c for c in v.columns if c not in exclude]
    p_cols = [] if p is None else [c for c in p.columns if c not in exclude]
    columns = v_cols + [c for c in p_cols if c not in v_cols]
    if DIED in columns:
        columns = [DIED] + [c for c in columns if c != DIED]
    out: dict[str, pd.Series] = {}
    unused: list[tuple[str, str, int, int]] = []
    for name in columns:
        raw = st.raw(name)
        values, numeric = _type_patient_column(raw, name, st.files, st.rows)
        values = values.reset_index(drop=True)
        clash = _disagreement(st, values)
        if clash is not None:
            i, j = clash
            if name not in _KNOWN_PATIENT and name not in p_cols:
                unused.append((name, str(st.ids[i]), int(st.rows[j]), int(st.rows[i])))
                continue
            raise _not_constant(st, name, raw, i, j)
        per_patient = values.groupby(st.codes, sort=True).first().reindex(range(len(st.order)))
        col = pd.Series(per_patient.to_numpy(), index=st.order)
        if name == DIED:  # blank on every row of a patient: outcome unknown (NaN)
            col = pd.Series(died_column(col.to_numpy(dtype=float)), index=st.order)
        elif numeric:
            col = col.astype(float)
            if col.notna().all() and col.isin((0.0, 1.0)).all():
                col = col.astype(np.int64)
        else:
            col = col.astype(str)
        out[name] = col
    patients = pd.DataFrame(out, index=st.order)
    patients.index.name = PATIENT
    return patients, unused


# -- dates ---------------------------------------------------------------------------------------------
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_YEAR_FIRST = re.compile(rf"^(\d{{4}})[-/.](\d{{1,2}})[-/.](\d{{1,2}}){_TIME}$")
_YEAR_LAST = re.compile(rf"^(\d{{1,2}})([-/.])(\d{{1,2}})\2(\d{{4}}){_TIME}$")
_DATE_EXAMPLE = "like 2020-02-03 (YYYY-MM-DD)"


def _day_numbers(stamps: pd.Series) -> np.ndarray:
    """Timestamps as whole days since 1970-01-01 (the time of day dropped), NaN where missing."""
    index = pd.DatetimeIndex(stamps)
    if index.tz is not None:
        index = index.tz_localize(None)
    out = np.full(len(index), np.nan)
    ok = ~np.asarray(index.isna(), dtype=bool)
    out[ok] = index[ok].to_numpy().astype("datetime64[D]").astype(np.int64)
    return out


def _date_text(day: float) -> str:
    return str(np.datetime64(int(day), "D"))


def _parse_dates(cells: Sequence[tuple[pd.Series, np.ndarray, np.ndarray, str]]) -> list[np.ndarray]:
    """Date columns as whole days since 1970-01-01 (float, NaN where blank).

    Each cell of ``cells`` is ``(raw values, file of each row, row numbers, column)``.
    Accepted: date cells (Excel, Parquet), ``YYYY-MM-DD`` (also with ``/`` or ``.``, and a
    time of day, which is dropped), and ``DD/MM/YYYY`` or ``MM/DD/YYYY``, whose order
    is read from the data: a first number above 12 means day first, a second above 12
    month first (dates with ``.`` or ``-`` are day first when nothing says otherwise).
    A date whose order the data do not settle, dates in both orders, and anything else
    are errors naming file, row and column.
    """
    out: list[np.ndarray] = []
    year_last: list[tuple[int, pd.DataFrame]] = []  # (cell index, matches) for DD/MM/YYYY-like text
    for c, (raw, files, rows, column) in enumerate(cells):
        raw = raw.reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(raw.dtype):
            out.append(_day_numbers(raw))
            continue
        days = np.full(len(raw), np.nan)
        objs = raw.astype(object)
        blank = _blank(raw) | objs.isna().to_numpy()
        is_date = objs.map(lambda x: isinstance(x, (datetime.date, np.datetime64)))
        stamp = is_date.to_numpy(dtype=bool) & ~blank
        if stamp.any():
            try:
                days[stamp] = _day_numbers(pd.Series(pd.to_datetime(objs[stamp], errors="coerce")))
            except (TypeError, ValueError):  # dates with mixed time zones: one at a time
                days[stamp] = [_day_numbers(pd.Series([pd.Timestamp(x)]))[0] for x in objs[stamp]]
        text_cell = objs.map(lambda x: isinstance(x, str)).to_numpy(dtype=bool) & ~blank & ~stamp
        other = ~blank & ~stamp & ~text_cell
        if other.any():
            i = _first(other)
            raise _fail(
                f"{column} must be a date {_DATE_EXAMPLE}, got the number {_show(raw.iloc[i])} "
                "(format the cells as dates, or write them as text)",
                str(files[i]),
                int(rows[i]),
                column,
            )
        text = _text(raw)
        first = text.str.extract(_YEAR_FIRST).astype(float)
        last = text.str.extract(_YEAR_LAST)
        is_first = text_cell & first[0].notna().to_numpy()
        is_last = text_cell & last[0].notna().to_numpy()
        bad = text_cell & ~is_first & ~is_last
        if bad.any():
            i = _first(bad)
            raise _fail(
                f"{column} must be a date {_DATE_EXAMPLE}, got {_show(raw.iloc[i])}",
                str(files[i]),
                int(rows[i]),
                column,
            )
        if is_first.any():
            days[is_first] = _ymd(first.loc[is_first, 0], first.loc[is_first, 1], first.loc[is_first, 2])
        if is_last.any():
            year_last.append((c, last.loc[is_last].assign(_at=np.flatnonzero(is_last))))
        out.append(days)
    if year_last:
        _year_last_dates(cells, year_last, out)
    for (raw, files, rows, column), days in zip(cells, out, strict=True):
        given = ~(_blank(raw.reset_index(drop=True)) | raw.reset_index(drop=True).isna().to_numpy())
        bad = given & np.isnan(days)
        if bad.any():
            i = _first(bad)
            raise _fail(
                f"{column} is not a valid date, got {_show(raw.iloc[i])}", str(files[i]), int(rows[i]), column
            )
    return out


def _ymd(year: pd.Series, month: pd.Series, day: pd.Series) -> np.ndarray:
    """Whole days since 1970-01-01 of year/month/day numbers; NaN where there is no such date."""
    parts = pd.DataFrame({"year": year.to_numpy(), "month": month.to_numpy(), "day": day.to_numpy()})
    valid = parts["month"].between(1, 12) & parts["day"].between(1, 31)
    result = np.full(len(parts), np.nan)
    if valid.any():
        stamps = pd.to_datetime(parts.loc[valid].astype(int), errors="coerce")
        result[valid.to_numpy()] = _day_numbers(pd.Series(stamps))
    return result


def _year_last_dates(
    cells: Sequence[tuple[pd.Series, np.ndarray, np.ndarray, str]],
    found: list[tuple[int, pd.DataFrame]],
    out: list[np.ndarray],
) -> None:
    """Fill in the DD/MM/YYYY or MM/DD/YYYY dates, their order read from all of them at once."""

    def locate(pick: str) -> tuple[int, int] | None:
        for c, m in found:
            a, b = m[0].astype(int), m[2].astype(int)
            hit = {"day first": a > 12, "month first": b > 12, "slash": m[1] == "/"}[pick].to_numpy()
            if hit.any():
                return c, int(m["_at"].to_numpy()[_first(hit)])
        return None

    def cell(at: tuple[int, int]) -> tuple[str, str, int, str]:
        raw, files, rows, column = cells[at[0]]
        return _show(raw.reset_index(drop=True).iloc[at[1]]), str(files[at[1]]), int(rows[at[1]]), column

    day_first, month_first = locate("day first"), locate("month first")
    if day_first is not None and month_first is not None:
        shown, file, row, column = cell(month_first)
        other, other_file, other_row, _ = cell(day_first)
        raise _fail(
            f"dates in two orders: {shown} is month/day/year but {other} ({other_file} row {other_row}) "
            "is day/month/year; write every date as YYYY-MM-DD",
            file,
            row,
            column,
        )
    if day_first is None and month_first is None:
        slash = locate("slash")
        if slash is not None:
            shown, file, row, column = cell(slash)
            raise _fail(
                f"ambiguous date {shown}: no date in the data shows whether dates are day/month/year "
                "or month/day/year; write the dates as YYYY-MM-DD",
                file,
                row,
                column,
            )
    dayfirst = month_first is None
    for c, m in found:
        a, b, year = m[0].astype(float), m[2].astype(float), m[3].astype(float)
        day, month = (a, b) if dayfirst else (b, a)
        out[c][m["_at"].to_numpy()] = _ymd(year, month, day)


def _derive_days(
    st: _Rows, v_rows: np.ndarray, source: str, notes: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``day`` from the dates when the visit table has none, and each patient's ``admission_day``.

    Returns ``(day per visit row or None, days from onset to admission per patient or None)``.
    """
    derive_day = DAY not in st.v.columns
    has_admission = st.has(ADMISSION_DATE)
    use_onset = st.has(ONSET_DATE) and (derive_day or has_admission)
    names: list[str] = []
    cells: list[tuple[pd.Series, np.ndarray, np.ndarray, str]] = []
    for name in (ONSET_DATE, ADMISSION_DATE):
        if st.has(name) and (name == ADMISSION_DATE or use_onset):
            names.append(name)
            cells.append((st.raw(name), st.files, st.rows, name))
    if derive_day:
        names.append(SCAN_DATE)
        cells.append((st.v[SCAN_DATE], np.full(st.n_visits, source, dtype=object), v_rows, SCAN_DATE))
    parsed = dict(zip(names, _parse_dates(cells), strict=True))
    onset = (
        _collapse(st, pd.Series(parsed[ONSET_DATE]), st.raw(ONSET_DATE), ONSET_DATE) if use_onset else None
    )

    day: np.ndarray | None = None
    if derive_day:
        if onset is None:
            raise _fail(f"missing column '{ONSET_DATE}'", source, None, ONSET_DATE)
        scan = parsed[SCAN_DATE]
        if np.isnan(scan).any():
            raise _fail(
                "scan_date is blank; without a day column every visit row needs its scan date",
                source,
                int(v_rows[_first(np.isnan(scan))]),
                SCAN_DATE,
            )
        missing = np.isnan(onset)
        if missing.any():
            k = _first(missing)
            i = st.cite(k, ONSET_DATE)
            raise _fail(
                f"onset_date is blank for patient {st.order[k]}; without a day column, the days since "
                "onset are counted from each patient's onset date",
                str(st.files[i]),
                int(st.rows[i]),
                ONSET_DATE,
            )
        visit_codes = st.codes[: st.n_visits]
        day = scan - onset[visit_codes]
        before = day < 0
        if before.any():
            i = _first(before)
            j = st.cite(int(visit_codes[i]), ONSET_DATE, ~np.isnan(parsed[ONSET_DATE]))
            raise _fail(
                f"scan_date {_date_text(scan[i])} is before the onset_date {_date_text(onset[visit_codes[i]])} "
                f"of patient {st.ids[i]} ({st.where(j, i)})",
                source,
                int(v_rows[i]),
                SCAN_DATE,
            )
        notes.append(
            f"{source}: day derived from the dates for {len(day)} visit row(s): the days from the "
            "patient's onset_date to the scan_date (the onset day is day 0)"
        )
    else:
        ignored = [c for c in (SCAN_DATE, ONSET_DATE) if st.has(c) and not (c == ONSET_DATE and use_onset)]
        if ignored:
            notes.append(
                f"column(s) {', '.join(ignored)} not used: the days since onset are taken from the day column"
            )

    admission_day: np.ndarray | None = None
    if has_admission:
        admission = _collapse(st, pd.Series(parsed[ADMISSION_DATE]), st.raw(ADMISSION_DATE), ADMISSION_DATE)
        if onset is None:
            notes.append(
                f"{ADMISSION_DATE} not used: counting it in days since onset needs each patient's {ONSET_DATE}"
            )
        elif st.has(ADMISSION_DAY):
            notes.append(f"{ADMISSION_DATE} not used: the data give {ADMISSION_DAY} already")
        else:
            admission_day = admission - onset
            with np.errstate(invalid="ignore"):
                early = admission_day < 0
            if early.any():
                k = _first(early)
                i = st.cite(k, ADMISSION_DATE, ~np.isnan(parsed[ADMISSION_DATE]))
                raise _fail(
                    f"admission_date {_date_text(admission[k])} is before the onset_date "
                    f"{_date_text(onset[k])} of patient {st.order[k]}",
                    str(st.files[i]),
                    int(st.rows[i]),
                    ADMISSION_DATE,
                )
            n = int((~np.isnan(admission_day)).sum())
            notes.append(
                f"{ADMISSION_DAY} derived for {n} patient(s): the days from {ONSET_DATE} to {ADMISSION_DATE}"
            )
    return day, admission_day


# -- the entry point -----------------------------------------------------------------------------------
def build_cohort(
    visits: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    *,
    source: str = "<DataFrame>",
    patient_source: str | None = None,
    columns: Mapping[str, str] | None = None,
    labs: Mapping[str, LabSpec] | Mapping[str, str] | str | Sequence[str] | None = None,
    require_labs: bool = True,
) -> Cohort:
    """Validate raw tables and build a :class:`~bayesct.data.cohort.Cohort`.

    Parameters
    ----------
    visits
        One row per patient-visit: ``patient_id``, ``day`` (or ``scan_date`` with the
        patient's ``onset_date``), ``ct_score``, labs and, optionally, patient-level
        columns (``died``, ``age``, ``sex``, ...).
    patients
        Optional table with one row per patient, joined on ``patient_id``.
    source, patient_source
        File names used in error messages and notes.
    columns
        Optional column mapping ``{bayesct name: file header}`` for both tables (see
        :mod:`bayesct.data.columns`); other headers are matched by normalisation.
        A declared lab may be a mapping's name.
    labs
        Labs declared beyond the contract's (:mod:`bayesct.data.labs`): name -> ``LabSpec``
        or ``"log"`` / ``"pct"`` (``[labs]`` values), or ``"NAME:TRANSFORM[:DIRECTION]"``
        text(s); kept on the cohort as ``declared_labs``.
    require_labs
        Whether a declared lab that the visit table lacks is an error (False: it is absent,
        as from a patient's history).

    Raises
    ------
    DataValidationError
        On the first value that breaks the contract, naming file, row and column (the
        column as the file's header gives it).
    """
    source = str(source)
    psrc = str(patient_source) if patient_source is not None else "<patient DataFrame>"
    headers: dict[str, dict[str, str]] = {}
    try:
        declared = as_declarations(labs)
        return _build(visits, patients, source, psrc, dict(columns or {}), headers, declared, require_labs)
    except DataValidationError as err:
        shown = headers.get(str(err.file), {}).get(err.column or "")
        if shown is None or shown == err.column:
            raise
        raise DataValidationError(err.reason, file=err.file, row=err.row, column=shown) from None


def _unknown_names(
    tables: Sequence[tuple[pd.DataFrame, str]],
    headers: Mapping[str, Mapping[str, str]],
    declared: Sequence[str] = (),
) -> None:
    """A header bayesct does not know that is close to a name it knows (and the data lack): an error."""
    present = {c for df, _ in tables for c in df.columns}
    candidates = [c for c in KNOWN_COLUMNS if c not in present]
    if SCAN_DATE in present and ONSET_DATE in present and DAY in candidates:
        candidates.remove(DAY)
    if DAY in present:
        candidates = [c for c in candidates if c not in (SCAN_DATE, ONSET_DATE)]
    for df, file in tables:
        for name in df.columns:
            if name in KNOWN_COLUMNS or name in (PERIOD, ADMISSION_DAY) or name in declared:
                continue
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
            close = close or [m for m in candidates if m in _MARKER_NAMES and name.startswith(f"{m}_")]
            if close:
                header = headers.get(file, {}).get(name, name)
                raise _fail(
                    f"column '{header}' is not a column bayesct knows; did you mean '{close[0]}'? "
                    f'Rename the header, or map it: --map {close[0]}="{header}"',
                    file,
                    1,
                    name,
                )


def _build(
    visits: pd.DataFrame,
    patients: pd.DataFrame | None,
    source: str,
    psrc: str,
    columns: dict[str, str],
    headers: dict[str, dict[str, str]],
    declared: dict[str, LabSpec],
    require_labs: bool,
) -> Cohort:
    notes: list[str] = []
    frames = [(_check_frame(visits, source, "visit table"), source)]
    if patients is not None:
        frames.append((_check_frame(patients, psrc, "patient table"), psrc))
    tables = [(file, [str(c) for c in frame.columns]) for frame, file in frames]
    resolved = resolve_headers(tables, columns, _UNNAMED, declared)
    for (file, raw_headers), names in zip(tables, resolved, strict=True):
        headers[file] = {n: h.strip() for n, h in zip(names, raw_headers, strict=True)}
    v, v_rows = _prepare(frames[0][0], resolved[0], source, notes, "visit table")
    vh = headers[source]
    visit_columns = (*VISIT_COLUMNS, *declared)

    if PATIENT not in v.columns:
        raise _fail(
            f"missing required column '{PATIENT}'; the columns are: {_columns_list(v, vh)}",
            source,
            None,
            PATIENT,
        )
    if "period" in v.columns:
        notes.append(f"{source}: column '{PERIOD}' ignored; periods are recomputed from '{DAY}'")
        v = v.drop(columns=[PERIOD])

    p: pd.DataFrame | None = None
    p_rows = np.zeros(0, dtype=int)
    p_ids = np.zeros(0, dtype=object)
    if patients is not None:
        p, p_rows = _prepare(frames[1][0], resolved[1], psrc, notes, "patient table")
        ph = headers[psrc]
        if PATIENT not in p.columns:
            raise _fail(
                f"missing required column '{PATIENT}'; the columns are: {_columns_list(p, ph)}",
                psrc,
                None,
                PATIENT,
            )
        misplaced = [c for c in p.columns if c in visit_columns and c != PATIENT]
        if misplaced:
            raise _fail(
                f"'{misplaced[0]}' is a visit-level column and belongs in the visit table, "
                "not the patient table",
                psrc,
                1,
                misplaced[0],
            )
    _unknown_names([(v, source)] + ([] if p is None else [(p, psrc)]), headers, tuple(declared))
    absent = [lab for lab in declared if lab not in v.columns]
    if absent and require_labs:
        lab = absent[0]
        close = difflib.get_close_matches(lab, [str(c) for c in v.columns], n=1, cutoff=0.6)
        hint = (
            f"; did you mean the header '{vh.get(close[0], close[0])}' (read as '{close[0]}')? Map it: "
            f'--map {lab}="{vh.get(close[0], close[0])}", or declare {close[0]}'
            if close
            else ""
        )
        raise _fail(
            f"the declared lab '{lab}' is not a column of the visit table{hint}; "
            f"the columns are: {_columns_list(v, vh)}",
            source,
        )
    labs = lab_names({lab: spec for lab, spec in declared.items() if lab not in absent})

    onset_given = ONSET_DATE in v.columns or (p is not None and ONSET_DATE in p.columns)
    if DAY not in v.columns and SCAN_DATE not in v.columns:
        raise _fail(
            f"missing required column '{DAY}' (days since symptom onset; or '{SCAN_DATE}' with the "
            f"patient's '{ONSET_DATE}', to derive it from); the columns are: {_columns_list(v, vh)}",
            source,
            None,
            DAY,
        )
    if DAY not in v.columns and not onset_given:
        raise _fail(
            f"missing column '{ONSET_DATE}': without a '{DAY}' column, the days since onset are derived "
            f"from each visit's '{SCAN_DATE}' and the patient's '{ONSET_DATE}' (in either table)",
            source,
            None,
            ONSET_DATE,
        )

    if DIED not in v.columns and (p is None or DIED not in p.columns):
        cols = _columns_list(v, vh) + ("" if p is None else f"; patient table: {_columns_list(p, ph)}")
        raise _fail(
            f"missing required column '{DIED}' (0/1, in the visit or the patient table); the columns are: {cols}",
            source,
            None,
            DIED,
        )
    if (
        not any(c in v.columns for c in (CT, *labs))
        and not {NEUTROPHIL_COUNT, "lymphocyte_count"} <= set(v.columns)
        and not set(CT_ZONES) <= set(v.columns)
    ):
        raise _fail(
            f"no marker column: expected '{CT}' (or the six zone columns {', '.join(CT_ZONES)}) "
            f"and/or lab columns ({', '.join(labs)}); "
            f"the columns are: {_columns_list(v, vh)}",
            source,
        )

    # -- ids and patient membership ------------------------------------------------------------------
    v_ids = _ids(v[PATIENT], source, v_rows)
    order = pd.Index(pd.unique(v_ids), dtype=object)
    if p is not None:
        p_ids = _ids(p[PATIENT], psrc, p_rows)
        dup = pd.Series(p_ids).duplicated().to_numpy()
        if dup.any():
            i = _first(dup)
            j = _first(p_ids == p_ids[i])
            raise _fail(
                f"patient {p_ids[i]} appears more than once in the patient table (also row {p_rows[j]})",
                psrc,
                int(p_rows[i]),
                PATIENT,
            )
        orphan = ~pd.Index(p_ids).isin(order)
        if orphan.any():
            i = _first(orphan)
            raise _fail(f"patient {p_ids[i]} has no visit rows in {source}", psrc, int(p_rows[i]), PATIENT)
        missing = ~pd.Index(v_ids).isin(pd.Index(p_ids))
        if missing.any():
            i = _first(missing)
            raise _fail(
                f"patient {v_ids[i]} is not in the patient table {psrc}", source, int(v_rows[i]), PATIENT
            )

    n_p = 0 if p is None else len(p)
    ids = np.concatenate([v_ids, p_ids])
    st = _Rows(
        v=v,
        p=p,
        files=np.array([source] * len(v) + [psrc] * n_p, dtype=object),
        rows=np.concatenate([v_rows, p_rows]).astype(int),
        ids=ids,
        codes=order.get_indexer(ids),
        order=order,
    )

    # -- visit-level values --------------------------------------------------------------------------
    derived_day, admission_day = _derive_days(st, v_rows, source, notes)
    if derived_day is not None:
        day = derived_day
    else:
        day = _numbers(v[DAY], source, v_rows, DAY, "day must be a number of days since symptom onset (>= 0)")
        no_day = np.isnan(day)
        if no_day.any():
            raise _fail(
                "day is blank; every row needs the day since symptom onset",
                source,
                int(v_rows[_first(no_day)]),
                DAY,
            )
        _check(day < 0, v[DAY], source, v_rows, DAY, "day must be >= 0 (days since symptom onset)")

    values: dict[str, np.ndarray] = {}
    ct_what = f"CT score must be an integer from 0 to {CT_MAX}"
    if CT in v.columns:
        ct = _numbers(v[CT], source, v_rows, CT, ct_what)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(ct) & ((ct != np.round(ct)) | (ct < 0) | (ct > CT_MAX))
        _check(bad, v[CT], source, v_rows, CT, ct_what)
        values[CT] = ct
    else:
        values[CT] = np.full(len(v), np.nan)
    zones_present = [z for z in CT_ZONES if z in v.columns]
    for zone in zones_present:
        zone_what = f"{zone} is a lung-zone score and must be an integer from 0 to {ZONE_MAX}"
        zs = _numbers(v[zone], source, v_rows, zone, zone_what)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(zs) & ((zs != np.round(zs)) | (zs < 0) | (zs > ZONE_MAX))
        _check(bad, v[zone], source, v_rows, zone, zone_what)
        values[zone] = zs
    if len(zones_present) == len(CT_ZONES):
        zone_values = np.column_stack([values[z] for z in CT_ZONES])
        all_zones = ~np.isnan(zone_values).any(axis=1)
        zone_total = zone_values.sum(axis=1)
        with np.errstate(invalid="ignore"):
            mismatch = all_zones & ~np.isnan(values[CT]) & (values[CT] != zone_total)
        if mismatch.any():
            i = _first(mismatch)
            parts = " + ".join(_show(zone_values[i, j]) for j in range(len(CT_ZONES)))
            raise _fail(
                f"{CT} must equal the sum of the six zone scores ({' + '.join(CT_ZONES)} = "
                f"{parts} = {_show(zone_total[i])}), got {_show(v[CT].iloc[i])}",
                source,
                int(v_rows[i]),
                CT,
            )
    for lab in (*labs, *DERIVATION_COLUMNS):
        if lab not in v.columns:
            continue
        pct = lab not in DERIVATION_COLUMNS and lab_transform(lab, declared) == "pct"
        if pct:
            # 0 and 100 are refused too: the model uses logit(value / 100), infinite at both ends
            what = (
                f"{lab} is a percentage and must be strictly between 0 and 100 "
                "(the model uses logit(value/100), which is infinite at 0 and 100)"
            )
        else:
            what = f"{lab} must be a positive number (> 0)"
        x = _numbers(v[lab], source, v_rows, lab, what)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(x) & ((x <= 0) | ((x >= 100) if pct else False))
        _check(bad, v[lab], source, v_rows, lab, what)
        values[lab] = x

    # -- patient-level values (type, constancy, join) ------------------------------------------------
    patients_out, unused = _patient_table(st, visit_columns)
    if admission_day is not None:
        patients_out[ADMISSION_DAY] = admission_day
    if unused:
        shown = ", ".join(f"'{vh.get(c, c)}'" for c, *_ in unused)
        name, pid, r1, r2 = unused[0]
        notes.append(
            f"{source}: column(s) {shown} not used: bayesct does not know them, and they vary within a "
            f"patient (e.g. '{vh.get(name, name)}': patient {pid}, rows {r1} and {r2}), so they are not "
            "patient-level covariates either (a covariate must be the same on every row of a patient)"
        )

    # -- visit rows: duplicates, derivation, exclusion, conflicts -----------------------------------
    w = pd.DataFrame({PATIENT: v_ids, DAY: day, **values})
    w["_row"] = v_rows
    content = [c for c in w.columns if c != "_row"]
    identical = w.duplicated(subset=content, keep="first").to_numpy()
    if identical.any():
        notes.append(
            f"{source}: {int(identical.sum())} identical duplicate visit row(s) collapsed "
            f"(row {_row_list(v_rows[identical])})"
        )
        w = w.loc[~identical]

    if len(zones_present) == len(CT_ZONES):
        zone_sum = w[list(CT_ZONES)].sum(axis=1, min_count=len(CT_ZONES))
        fill_ct = w[CT].isna() & zone_sum.notna()
        n_ct = int(fill_ct.sum())
        if n_ct:
            w[CT] = w[CT].where(~fill_ct, zone_sum)
            notes.append(
                f"{source}: ct_score derived as the sum of the six zone scores for {n_ct} visit(s) "
                f"where ct_score was blank or absent (row {_row_list(w['_row'].to_numpy()[fill_ct.to_numpy()])})"
            )

    if NEUTROPHIL_COUNT in w.columns:
        if "lymphocyte_count" in w.columns:
            had_nlr = "nlr" in w.columns
            nlr = w["nlr"] if had_nlr else pd.Series(np.nan, index=w.index)
            fill = nlr.isna() & w[NEUTROPHIL_COUNT].notna() & w["lymphocyte_count"].notna()
            n_fill = int(fill.sum())
            if n_fill:
                nlr = nlr.where(~fill, w[NEUTROPHIL_COUNT] / w["lymphocyte_count"])
                w["nlr"] = nlr
                notes.append(
                    f"NLR derived as neutrophil_count / lymphocyte_count for {n_fill} visit(s) "
                    "where nlr was blank or absent"
                )
        else:
            notes.append("neutrophil_count not used: deriving NLR also needs lymphocyte_count")
        w = w.drop(columns=[NEUTROPHIL_COUNT])

    labs_present = [lab for lab in labs if lab in w.columns]
    usable = w[[CT, *labs_present]].notna().any(axis=1).to_numpy()
    if not usable.all():
        n_out = int((~usable).sum())
        notes.append(
            f"{source}: {n_out} visit row(s) with no CT score and no lab value excluded "
            f"(row {_row_list(w['_row'].to_numpy()[~usable])})"
        )
        left = pd.Index(w[PATIENT].to_numpy()[usable])
        gone = ~order.isin(left)
        if gone.any():
            pid = order[_first(gone)]
            r = int(v_rows[_first(v_ids == pid)])
            raise _fail(
                f"patient {pid} has no usable visit row: none of its rows has a CT score or a lab value",
                source,
                r,
                None,
            )
        w = w.loc[usable]

    clash = w.duplicated(subset=[PATIENT, DAY], keep="first").to_numpy()
    if clash.any():
        i = _first(clash)
        second = w.iloc[i]
        same = (w[PATIENT] == second[PATIENT]).to_numpy() & (w[DAY] == second[DAY]).to_numpy()
        first = w.iloc[_first(same)]
        col = next(
            c
            for c in (CT, *labs_present, *zones_present)
            if not (pd.isna(first[c]) and pd.isna(second[c])) and first[c] != second[c]
        )

        def fmt(x: object) -> str:
            return "blank" if isinstance(x, float) and np.isnan(x) else _show(x)

        raise _fail(
            f"conflicting duplicate: patient {second[PATIENT]} has two rows for day {float(second[DAY]):g} "
            f"(rows {int(first['_row'])} and {int(second['_row'])}) with different {col} "
            f"({fmt(first[col])} vs {fmt(second[col])})",
            source,
            int(second["_row"]),
            col,
        )

    # -- output layout ------------------------------------------------------------------------------
    codes = order.get_indexer(w[PATIENT].to_numpy())
    sort = np.lexsort((w[DAY].to_numpy(), codes))
    w = w.iloc[sort]
    out = pd.DataFrame(
        {
            PATIENT: pd.Series(w[PATIENT].to_numpy(), dtype=object).astype(str),
            DAY: w[DAY].to_numpy(dtype=float),
            PERIOD: assign_period(w[DAY].to_numpy(dtype=float)),
            CT: w[CT].to_numpy(dtype=float),
            **{lab: w[lab].to_numpy(dtype=float) for lab in labs_present},
            **{zone: w[zone].to_numpy(dtype=float) for zone in zones_present},
        }
    )
    patients_out.index = pd.Index(order.to_numpy(), dtype=str, name=PATIENT)
    cohort = Cohort(out, patients_out, source=source, notes=tuple(notes), declared_labs=declared)
    unknown = cohort.outcome_note  # patients of unknown outcome, said once
    return cohort if unknown is None else dataclasses.replace(cohort, notes=(*cohort.notes, unknown))
