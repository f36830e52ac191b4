"""Column names: header normalisation and the user's column mapping.

A file's headers are matched to bayesct's column names (:mod:`bayesct.constants`) in
two ways:

* **normalisation**: a header is lower-cased, units in brackets or parentheses are
  dropped (``"LDH (U/L)"``, ``"Lymphocyte count [10^9/L]"``), ``%`` (also ``"(%)"``)
  reads as ``pct``, and every run of spaces, hyphens, dots and other punctuation
  becomes ``_`` (``"D-dimer"`` → ``d_dimer``, ``"Patient ID"`` → ``patient_id``);
  a few common spellings are then read by :data:`bayesct.constants.COLUMN_SYNONYMS`
  (``"Days since onset"`` → ``day``). Headers bayesct does not know are normalised
  the same way (``"Dry cough"`` → ``dry_cough``).
* **mapping**: ``{bayesct name: file header}``, given as ``--map
  day=days_since_onset,ct_score="CT score"`` (:func:`parse_column_map`) or as the
  ``[columns]`` table of a TOML file kept beside the data (:func:`load_column_map`), whose
  ``[labs]`` table declares labs beyond the contract's (:mod:`bayesct.data.labs`), names a
  mapping may then name too. It applies to the visit and the patient table alike.

Unknown names (a mapping's target, a mapping's header, a header close to a name
bayesct knows) get a "did you mean ...?" suggestion (:func:`did_you_mean`).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bayesct.constants import (
    ADMISSION_DATE,
    AGE,
    COLUMN_SYNONYMS,
    CT,
    CT_ZONES,
    DAY,
    DERIVATION_COLUMNS,
    DIED,
    LABS,
    ONSET_DATE,
    PATIENT,
    SCAN_DATE,
    SEX,
)
from bayesct.errors import DataValidationError

__all__ = [
    "KNOWN_COLUMNS",
    "did_you_mean",
    "load_column_map",
    "merge_column_maps",
    "normalise_header",
    "parse_column_map",
    "read_columns_file",
    "resolve_headers",
    "snake_case",
]

#: Every input column name bayesct knows, visit-level first (the targets a mapping may name).
KNOWN_COLUMNS: tuple[str, ...] = (
    PATIENT,
    DAY,
    SCAN_DATE,
    CT,
    *CT_ZONES,
    *LABS,
    *DERIVATION_COLUMNS,
    DIED,
    AGE,
    SEX,
    ONSET_DATE,
    ADMISSION_DATE,
)

_UNIT_PCT = re.compile(r"[(\[]\s*%\s*[)\]]")
_UNIT = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SEPARATORS = re.compile(r"[\W_]+")


def snake_case(header: str) -> str:
    """A header as a lower-case name: units in brackets dropped, ``%`` as ``pct``, punctuation as ``_``."""
    text = str(header).strip().lower()
    text = _UNIT_PCT.sub(" pct ", text)
    text = _UNIT.sub(" ", text).replace("%", " pct ")
    name = _SEPARATORS.sub("_", text).strip("_")
    return name or str(header).strip().lower()


def normalise_header(header: str) -> str:
    """The column name a header means: :func:`snake_case`, then the synonyms of the vocabulary."""
    name = snake_case(header)
    return COLUMN_SYNONYMS.get(name, name)


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate (difflib), or ``""`` when none is close."""
    options = list(dict.fromkeys(str(c) for c in candidates))
    close = difflib.get_close_matches(name, options, n=1, cutoff=cutoff)
    if not close:
        lowered = {o.lower(): o for o in options}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), 1, cutoff)]
    if not close:
        by_snake = {snake_case(o): o for o in options}
        close = [by_snake[c] for c in difflib.get_close_matches(snake_case(name), list(by_snake), 1, cutoff)]
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_target(target: str, origin: str, file: str | None, labs: Iterable[str] = ()) -> str:
    name = str(target).strip()
    names = (*KNOWN_COLUMNS, *labs)
    if name in names:
        return name
    if normalise_header(name) in names:
        return normalise_header(name)
    raise DataValidationError(
        f"{origin}: '{name}' is not a column name bayesct knows{did_you_mean(name, names)} "
        f"(the names: {', '.join(names)}; another lab: declare it, --lab {snake_case(name)}:log)",
        file=file,
    )


def _add(
    mapping: dict[str, str], target: str, source: str, origin: str, file: str | None, labs: Iterable[str]
) -> None:
    name = _check_target(target, origin, file, labs)
    header = str(source).strip()
    if not header:
        raise DataValidationError(f"{origin}: '{name}' is mapped to an empty header", file=file)
    if name in mapping and mapping[name] != header:
        raise DataValidationError(
            f"{origin}: '{name}' is mapped twice, to '{mapping[name]}' and to '{header}'", file=file
        )
    mapping[name] = header


def _split_pairs(text: str) -> list[str]:
    """Split ``a=b,c="d, e"`` at the commas outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_column_map(texts: str | Sequence[str], *, labs: Iterable[str] = ()) -> dict[str, str]:
    """Parse ``--map`` values: ``NAME=HEADER`` pairs separated by commas (a header with a comma in quotes).

    ``NAME`` is bayesct's column name or a declared lab's (``labs``), ``HEADER`` the file's header. Raises
    :class:`~bayesct.errors.DataValidationError` on a malformed pair or a name bayesct
    does not know (with a "did you mean ...?").
    """
    mapping: dict[str, str] = {}
    for text in [texts] if isinstance(texts, str) else texts:
        for pair in _split_pairs(text):
            target, sep, source = pair.partition("=")
            if not sep or not target.strip():
                raise DataValidationError(
                    f"--map: expected NAME=HEADER pairs separated by commas "
                    f'(e.g. day=days_since_onset,ct_score="CT score"), got {pair!r}'
                )
            source = source.strip()
            if len(source) >= 2 and source[0] == source[-1] and source[0] in "\"'":
                source = source[1:-1]
            _add(mapping, target.strip().strip("\"'"), source, "--map", None, tuple(labs))
    return mapping


def read_columns_file(path: str | Path) -> dict[str, Any]:
    """A columns file's TOML: a ``[columns]`` table, a ``[labs]`` table (:mod:`bayesct.data.labs`) or both.

    Raises :class:`~bayesct.errors.DataValidationError` naming the file when it is
    missing, not TOML, has neither table, or holds anything else.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataValidationError("column mapping file not found", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"cannot read the column mapping file: {exc}", file=name) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataValidationError(f"not a valid TOML file: {exc}", file=name) from None
    tables = ("columns", "labs")
    if not any(isinstance(data.get(t), dict) for t in tables):
        others = [k for k in data if k not in tables]
        hint = did_you_mean(others[0], tables) if others else ""
        raise DataValidationError(
            "expected a [columns] table mapping bayesct's column names to the file's headers "
            f'(e.g. ct_score = "CT score") and/or a [labs] table declaring labs (e.g. crp = "log"){hint}',
            file=name,
        )
    extra = [k for k in data if k not in tables]
    if extra:
        raise DataValidationError(
            f"unexpected key '{extra[0]}': the file holds only a [columns] and a [labs] table", file=name
        )
    return data


def load_column_map(path: str | Path, *, labs: Iterable[str] | None = None) -> dict[str, str]:
    """Read the ``[columns]`` table of a TOML file: ``bayesct name = "file header"`` lines.

    A name may be a declared lab's: one of ``labs``, or, when ``labs`` is None, of the file's
    own ``[labs]`` table. Raises :class:`~bayesct.errors.DataValidationError` naming the file
    when it is missing, not TOML, has neither a ``[columns]`` nor a ``[labs]`` table, or maps
    a name bayesct does not know.
    """
    name = str(path)
    data = read_columns_file(path)
    table = data.get("columns", {})
    if not isinstance(table, dict):
        raise DataValidationError("[columns] must be a table of column names and headers", file=name)
    declared = tuple(data.get("labs") or ()) if labs is None else tuple(labs)
    declared = tuple(snake_case(lab) for lab in declared)
    mapping: dict[str, str] = {}
    for target, source in table.items():
        if not isinstance(source, str):
            raise DataValidationError(
                f"[columns] {target}: expected the file's header as a string, got {source!r}", file=name
            )
        _add(mapping, target, source, "[columns]", name, declared)
    return mapping


def merge_column_maps(*maps: Mapping[str, str] | None) -> dict[str, str]:
    """Later maps override earlier ones name by name (``--map`` over a ``--columns`` file)."""
    out: dict[str, str] = {}
    for m in maps:
        out.update(m or {})
    return out


def resolve_headers(
    tables: Sequence[tuple[str, Sequence[str]]],
    mapping: Mapping[str, str],
    unnamed: re.Pattern[str],
    labs: Iterable[str] = (),
) -> list[list[str]]:
    """The column name of every header of each ``(file, headers)`` table.

    A header the mapping names (exactly, ignoring case, or by :func:`snake_case`) takes
    its mapped name (bayesct's, or a declared lab's, ``labs``); every other header its
    :func:`normalise_header` name; a header
    matching ``unnamed`` (no header at all) stays as it is, lower-cased. Raises
    :class:`~bayesct.errors.DataValidationError` when a mapped header is in no table
    (with a "did you mean ...?"), when a header appears twice, and when two headers of
    one table give the same name (naming both).
    """
    checked = {}
    labs = tuple(labs)
    for target, source in mapping.items():
        checked[_check_target(target, "column mapping", None, labs)] = str(source).strip()
    out: list[list[str]] = []
    found: set[str] = set()
    for file, headers in tables:
        raw = [str(h).strip() for h in headers]
        names = [h.lower() for h in raw]
        mapped = [False] * len(raw)
        for target, source in checked.items():
            hits = [i for i, h in enumerate(raw) if h == source]
            hits = hits or [i for i, h in enumerate(raw) if h.lower() == source.lower()]
            hits = hits or [i for i, h in enumerate(raw) if snake_case(h) == snake_case(source)]
            if len(hits) > 1:
                shown = " and ".join(f"'{raw[i]}'" for i in hits)
                raise DataValidationError(
                    f"column mapping {target}='{source}': the header matches more than one column "
                    f"({shown}); give the header exactly",
                    file=file,
                    row=1,
                )
            if hits:
                names[hits[0]] = target
                mapped[hits[0]] = True
                found.add(target)
        for i, h in enumerate(raw):
            if not mapped[i] and not unnamed.match(h.lower()):
                names[i] = normalise_header(h)
        seen: dict[str, int] = {}
        for i, h in enumerate(raw):
            if unnamed.match(h.lower()) and not mapped[i]:
                continue
            j = seen.get(names[i])
            if j is not None and raw[j].lower() == h.lower():
                raise DataValidationError(
                    f"column '{names[i]}' appears more than once in the header",
                    file=file,
                    row=1,
                    column=names[i],
                )
            if j is not None:
                how = " (through the column mapping)" if mapped[i] or mapped[j] else ""
                raise DataValidationError(
                    f"the headers '{raw[j]}' and '{h}' both give the column '{names[i]}'{how}; "
                    "keep one, or rename or map the other",
                    file=file,
                    row=1,
                )
            seen[names[i]] = i
        out.append(names)
    missing = [t for t in checked if t not in found]
    if missing:
        target = missing[0]
        headers_all = [str(h).strip() for _, hs in tables for h in hs]
        files = " or ".join(f for f, _ in tables)
        raise DataValidationError(
            f"column mapping {target}='{checked[target]}': no header '{checked[target]}' in {files}"
            f"{did_you_mean(checked[target], headers_all)}",
            file=tables[0][0],
            row=1,
        )
    return out
