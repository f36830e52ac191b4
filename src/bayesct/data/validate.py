"""Validation of raw input tables against the column contract.

:func:`build_cohort` takes the tables as read from a file (every column possibly
of ``object``/``str`` dtype, blanks as empty strings) and returns a
:class:`~bayesct.data.cohort.Cohort`, or raises
:class:`~bayesct.errors.DataValidationError` naming the file, the row (as a
spreadsheet shows it: header = row 1, first data row = row 2) and the column of
the first problem found.

Rules (see DESIGN.md, "The column vocabulary"):

* visit-level columns: ``patient_id`` and ``day`` (required), ``ct_score``,
  the labs of :data:`bayesct.constants.LABS`, ``neutrophil_count`` (used
  only to derive NLR) and the optional lung-zone scores
  :data:`bayesct.constants.CT_ZONES` (``zone_ru`` ... ``zone_ll``, integers
  0-4); every other column is patient-level;
* zone scores: where all six zones and ``ct_score`` are given, ``ct_score``
  must equal their sum; where all six are given and ``ct_score`` is blank or
  absent, it is derived as their sum (noted); partial zones leave a blank
  ``ct_score`` blank; the zone columns present are kept in ``Cohort.visits``;
* patient-level values must agree within a patient (blanks on some rows are
  allowed; the patient's value is the one given), ``died`` is required (0/1);
* nothing is dropped silently: collapsed duplicate rows, excluded rows with no
  marker at all, derived NLR values and derived CT totals are reported in
  ``Cohort.notes``.

Everything is vectorised; Python loops run over columns, never over rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayesct.constants import (
    CT,
    CT_MAX,
    CT_ZONES,
    DAY,
    DERIVATION_COLUMNS,
    DIED,
    LABS,
    PATIENT,
    PCT_LABS,
    PERIOD,
    ZONE_MAX,
)
from bayesct.data.cohort import Cohort, assign_period
from bayesct.errors import DataValidationError

__all__ = ["BLANK_TOKENS", "VISIT_COLUMNS", "build_cohort"]

#: Cell contents that mean "no value" (compared after stripping, case-insensitively).
BLANK_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "#n/a"})

NEUTROPHIL_COUNT = "neutrophil_count"
#: Columns that belong to one visit; every other column is patient-level.
VISIT_COLUMNS: tuple[str, ...] = (PATIENT, DAY, CT, *LABS, *DERIVATION_COLUMNS, *CT_ZONES)
_MARKER_INPUTS: tuple[str, ...] = (CT, *LABS, *DERIVATION_COLUMNS, *CT_ZONES)
_AGE = "age"
_SEX = "sex"
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
        return str(int(number)) if number.is_integer() else repr(number)
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


def _prepare(frame: object, file: str, notes: list[str], what: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Normalise column names, drop completely empty rows (noted); return the table and its row numbers."""
    if not isinstance(frame, pd.DataFrame):
        raise _fail(f"expected a table (pandas DataFrame) for the {what}, got {type(frame).__name__}", file)
    if frame.shape[1] == 0:
        raise _fail(f"the {what} is empty: no columns", file)
    names = [str(c).strip().lower() for c in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen and not _UNNAMED.match(name):
            raise _fail(f"column '{name}' appears more than once in the header", file, 1, name)
        seen.add(name)
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


def _columns_list(df: pd.DataFrame) -> str:
    return ", ".join(f"'{c}'" for c in df.columns)


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


def _patient_table(
    v: pd.DataFrame,
    v_rows: np.ndarray,
    v_ids: np.ndarray,
    p: pd.DataFrame | None,
    p_rows: np.ndarray,
    p_ids: np.ndarray,
    source: str,
    psrc: str,
    order: pd.Index,
) -> pd.DataFrame:
    """Type, check constancy of and collapse the patient-level columns of both tables."""
    v_cols = [c for c in v.columns if c not in VISIT_COLUMNS]
    p_cols = [] if p is None else [c for c in p.columns if c != PATIENT]
    columns = v_cols + [c for c in p_cols if c not in v_cols]
    if DIED in columns:
        columns = [DIED] + [c for c in columns if c != DIED]
    n_v = len(v)
    n_p = 0 if p is None else len(p)
    files = np.array([source] * n_v + [psrc] * n_p, dtype=object)
    rows = np.concatenate([v_rows, p_rows]).astype(int)
    ids = np.concatenate([v_ids, p_ids])
    codes = pd.Index(order).get_indexer(ids)
    out: dict[str, pd.Series] = {}
    for name in columns:
        raw = v[name] if name in v.columns else pd.Series([np.nan] * n_v, dtype=object)
        if p is not None:
            other = p[name] if name in p.columns else pd.Series([np.nan] * n_p, dtype=object)
            raw = pd.concat([raw.astype(object), other.astype(object)], ignore_index=True)
        raw = raw.reset_index(drop=True)
        values, numeric = _type_patient_column(raw, name, files, rows)
        values = values.reset_index(drop=True)
        first = values.groupby(codes, sort=False).transform("first")
        differs = (values.notna() & first.notna() & (values != first)).to_numpy()
        if differs.any():
            i = _first(differs)
            same = np.flatnonzero((codes == codes[i]) & values.notna().to_numpy())
            j = int(same[0])
            where = f"row {rows[j]}" if files[j] == files[i] else f"{files[j]} row {rows[j]}"
            raise _fail(
                f"'{name}' must be the same on every row of a patient: patient {ids[i]} has "
                f"{_show(raw.iloc[i])} here but {_show(raw.iloc[j])} in {where}",
                str(files[i]),
                int(rows[i]),
                name,
            )
        per_patient = values.groupby(codes, sort=True).first().reindex(range(len(order)))
        if name == DIED and per_patient.isna().any():
            k = int(np.flatnonzero(per_patient.isna().to_numpy())[0])
            i = _first(codes == k)
            raise _fail(
                f"died is blank on every row of patient {order[k]}; it must be 0 or 1",
                str(files[i]),
                int(rows[i]),
                DIED,
            )
        col = pd.Series(per_patient.to_numpy(), index=order)
        if numeric:
            col = col.astype(float)
            if name == DIED or (col.notna().all() and col.isin((0.0, 1.0)).all()):
                col = col.astype(np.int64)
        else:
            col = col.astype(str)
        out[name] = col
    patients = pd.DataFrame(out, index=order)
    patients.index.name = PATIENT
    return patients


# -- the entry point -----------------------------------------------------------------------------------
def build_cohort(
    visits: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    *,
    source: str = "<DataFrame>",
    patient_source: str | None = None,
) -> Cohort:
    """Validate raw tables and build a :class:`~bayesct.data.cohort.Cohort`.

    Parameters
    ----------
    visits
        One row per patient-visit: ``patient_id``, ``day``, ``ct_score``, labs and,
        optionally, patient-level columns (``died``, ``age``, ``sex``, ...).
    patients
        Optional table with one row per patient, joined on ``patient_id``.
    source, patient_source
        File names used in error messages and notes.

    Raises
    ------
    DataValidationError
        On the first value that breaks the contract, naming file, row and column.
    """
    source = str(source)
    psrc = str(patient_source) if patient_source is not None else "<patient DataFrame>"
    notes: list[str] = []
    v, v_rows = _prepare(visits, source, notes, "visit table")

    for required in (PATIENT, DAY):
        if required not in v.columns:
            raise _fail(
                f"missing required column '{required}'; the columns are: {_columns_list(v)}",
                source,
                None,
                required,
            )
    if "period" in v.columns:
        notes.append(f"{source}: column '{PERIOD}' ignored; periods are recomputed from '{DAY}'")
        v = v.drop(columns=[PERIOD])

    p: pd.DataFrame | None = None
    p_rows = np.zeros(0, dtype=int)
    p_ids = np.zeros(0, dtype=object)
    if patients is not None:
        p, p_rows = _prepare(patients, psrc, notes, "patient table")
        if PATIENT not in p.columns:
            raise _fail(
                f"missing required column '{PATIENT}'; the columns are: {_columns_list(p)}",
                psrc,
                None,
                PATIENT,
            )
        misplaced = [c for c in p.columns if c in VISIT_COLUMNS and c != PATIENT]
        if misplaced:
            raise _fail(
                f"'{misplaced[0]}' is a visit-level column and belongs in the visit table, "
                "not the patient table",
                psrc,
                1,
                misplaced[0],
            )

    if DIED not in v.columns and (p is None or DIED not in p.columns):
        cols = _columns_list(v) + ("" if p is None else f"; patient table: {_columns_list(p)}")
        raise _fail(
            f"missing required column '{DIED}' (0/1, in the visit or the patient table); the columns are: {cols}",
            source,
            None,
            DIED,
        )
    if (
        not any(c in v.columns for c in (CT, *LABS))
        and not {NEUTROPHIL_COUNT, "lymphocyte_count"} <= set(v.columns)
        and not set(CT_ZONES) <= set(v.columns)
    ):
        raise _fail(
            f"no marker column: expected '{CT}' (or the six zone columns {', '.join(CT_ZONES)}) "
            f"and/or lab columns ({', '.join(LABS)}); "
            f"the columns are: {_columns_list(v)}",
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

    # -- visit-level values --------------------------------------------------------------------------
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
    for lab in (*LABS, *DERIVATION_COLUMNS):
        if lab not in v.columns:
            continue
        if lab in PCT_LABS:
            # 0 and 100 are refused too: the model uses logit(value / 100), infinite at both ends
            what = (
                f"{lab} is a percentage and must be strictly between 0 and 100 "
                "(the model uses logit(value/100), which is infinite at 0 and 100)"
            )
        else:
            what = f"{lab} must be a positive number (> 0)"
        x = _numbers(v[lab], source, v_rows, lab, what)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(x) & ((x <= 0) | ((x >= 100) if lab in PCT_LABS else False))
        _check(bad, v[lab], source, v_rows, lab, what)
        values[lab] = x

    # -- patient-level values (type, constancy, join) ------------------------------------------------
    patients_out = _patient_table(v, v_rows, v_ids, p, p_rows, p_ids, source, psrc, order)

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

    labs_present = [lab for lab in LABS if lab in w.columns]
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
    return Cohort(out, patients_out, source=source, notes=tuple(notes))
