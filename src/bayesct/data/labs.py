"""User-declared labs: laboratory markers beyond the input contract's, modelled like them.

A declaration names a visit column, its transform and, optionally, its direction with
severity: ``NAME:TRANSFORM[:DIRECTION]`` (``--lab crp:log``, ``--lab spo2:pct:down``;
:func:`parse_labs`) or a line of a columns file's ``[labs]`` table (``crp = "log"``,
``crp = { transform = "log", direction = "up" }``; :func:`load_lab_declarations`).
``log``: positive values, modelled as log(value); ``pct``: percentages strictly between 0
and 100, as logit(value / 100). ``up``: the lab rises with severity, ``down``: it falls.
Without a direction a declaration takes the one of
:data:`bayesct.constants.KNOWN_LAB_DIRECTION`, else it has none, which only a model with
``loading_signs = "known"`` needs (:func:`lab_direction`). A name is read as a header is
(``CRP`` is ``crp``); one that is a column bayesct knows is refused.

The declarations travel with the data: ``Cohort.declared_labs`` and ``Design.declared_labs``
(name -> :class:`LabSpec`, in declaration order), and a fit folder's ``labs.json``
(:func:`labs_to_json`, :func:`labs_from_json`). Every rule that depends on which labs there
are or how one is modelled takes them and lives here once: :func:`lab_names`,
:func:`marker_names`, :func:`lab_transform`, :func:`lab_direction`; :func:`marker_label` names
any marker for tables and figures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from bayesct.constants import (
    ADMISSION_DAY,
    CT,
    KNOWN_LAB_DIRECTION,
    KNOWN_LAB_LABELS,
    LAB_DIRECTION,
    LAB_DIRECTION_WORDS,
    LAB_TRANSFORMS,
    LABS,
    MARKER_LABELS,
    PCT_LABS,
    PERIOD,
)
from bayesct.data.columns import KNOWN_COLUMNS, did_you_mean, normalise_header, read_columns_file, snake_case
from bayesct.errors import DataValidationError, SpecError

__all__ = [
    "LabSpec",
    "as_declarations",
    "declare_lab",
    "lab_direction",
    "lab_names",
    "lab_table",
    "lab_transform",
    "labs_from_json",
    "labs_to_json",
    "load_lab_declarations",
    "marker_label",
    "marker_names",
    "merge_labs",
    "parse_labs",
    "valid_lab_name",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SYNTAX = "NAME:TRANSFORM[:DIRECTION] (e.g. crp:log, spo2:pct:down)"


def valid_lab_name(name: object) -> bool:
    """Whether ``name`` can name a declared lab's column (lower case, a letter first, ``_``)."""
    return isinstance(name, str) and _NAME.match(name) is not None


class LabSpec(NamedTuple):
    """How a declared lab is modelled: ``transform`` (``log`` or ``pct``) and ``direction``
    with severity (+1 up, -1 down, ``None`` not known)."""

    transform: str
    direction: int | None = None


#: Declared labs, name -> :class:`LabSpec`, in declaration order.
LabDeclarations = Mapping[str, LabSpec]


def declare_lab(
    name: str, transform: str, direction: str | None = None, *, origin: str = "--lab", file: str | None = None
) -> tuple[str, LabSpec]:
    """One declaration, checked: ``(column name, LabSpec)``.

    Raises :class:`~bayesct.errors.DataValidationError` (naming ``origin`` and ``file``) on a
    name that is not a column name or clashes with a column bayesct knows, an unknown
    transform or an unknown direction.
    """
    raw = str(name).strip()
    lab = snake_case(raw) if raw else ""
    if not _NAME.match(lab):
        raise DataValidationError(
            f"{origin}: {raw!r} is not a lab name (a column name, starting with a letter)", file=file
        )
    known = normalise_header(raw)
    if known in (*KNOWN_COLUMNS, PERIOD, ADMISSION_DAY) or lab in KNOWN_COLUMNS:
        what = "a built-in lab" if known in LABS else "a column bayesct knows"
        raise DataValidationError(
            f"{origin}: '{raw}' is {what} ('{known}'), not a lab to declare; declare only labs "
            f"beyond {', '.join(LABS)}",
            file=file,
        )
    how = str(transform).strip().lower()
    if how not in LAB_TRANSFORMS:
        raise DataValidationError(
            f"{origin} {lab}: unknown transform {str(transform)!r}: expected log (positive values, "
            "modelled as log(value)) or pct (percentages strictly between 0 and 100, modelled as "
            f"logit(value/100)){did_you_mean(how, LAB_TRANSFORMS)}",
            file=file,
        )
    if direction is None or not str(direction).strip():
        return lab, LabSpec(how, KNOWN_LAB_DIRECTION.get(lab))
    word = str(direction).strip().lower()
    if word not in LAB_DIRECTION_WORDS:
        raise DataValidationError(
            f"{origin} {lab}: unknown direction {str(direction)!r}; expected up (the lab rises "
            "with severity) or down (it falls)",
            file=file,
        )
    return lab, LabSpec(how, LAB_DIRECTION_WORDS[word])


def _put(out: dict[str, LabSpec], lab: str, spec: LabSpec, origin: str, file: str | None) -> None:
    if lab in out and out[lab] != spec:
        raise DataValidationError(f"{origin}: lab '{lab}' is declared twice, differently", file=file)
    out[lab] = spec


def parse_labs(texts: str | Sequence[str]) -> dict[str, LabSpec]:
    """Parse ``--lab`` values: ``NAME:TRANSFORM[:DIRECTION]``, several separated by commas."""
    out: dict[str, LabSpec] = {}
    for text in [texts] if isinstance(texts, str) else texts:
        for item in (p.strip() for p in str(text).split(",")):
            if not item:
                continue
            parts = [p.strip() for p in item.split(":")]
            if len(parts) not in (2, 3) or not all(parts):
                raise DataValidationError(f"--lab: expected {_SYNTAX}, got {item!r}")
            _put(out, *declare_lab(*parts), "--lab", None)
    return out


def lab_table(
    table: Mapping[str, Any], *, origin: str = "[labs]", file: str | None = None
) -> dict[str, LabSpec]:
    """Declarations from a mapping, as a ``[labs]`` table holds them.

    Each value is a transform (``"log"``), ``"TRANSFORM:DIRECTION"``, a table with
    ``transform`` and optionally ``direction``, or a :class:`LabSpec`.
    """
    out: dict[str, LabSpec] = {}
    for name, value in table.items():
        if isinstance(value, LabSpec):
            lab, spec = declare_lab(name, value.transform, origin=origin, file=file)
            spec = spec._replace(direction=value.direction)
        elif isinstance(value, str):
            lab, spec = declare_lab(name, *value.split(":", 1), origin=origin, file=file)
        elif isinstance(value, Mapping) and "transform" in value and set(value) <= {"transform", "direction"}:
            lab, spec = declare_lab(
                name, value["transform"], value.get("direction"), origin=origin, file=file
            )
        else:
            raise DataValidationError(
                f'{origin} {name}: expected a transform ("log" or "pct") or a table '
                f'{{ transform = "log", direction = "up" }}, got {value!r}',
                file=file,
            )
        _put(out, lab, spec, origin, file)
    return out


def load_lab_declarations(path: str | Path) -> dict[str, LabSpec]:
    """The ``[labs]`` table of a columns file (none when it has no such table)."""
    table = read_columns_file(path).get("labs", {})
    if not isinstance(table, dict):
        raise DataValidationError("[labs] must be a table of lab declarations", file=str(path))
    return lab_table(table, file=str(path))


def as_declarations(
    labs: LabDeclarations | Mapping[str, Any] | str | Sequence[str] | None,
) -> dict[str, LabSpec]:
    """Declarations in any of the forms the API takes: a mapping (:func:`lab_table`), ``--lab``
    text or a sequence of them (:func:`parse_labs`), or ``None`` (none)."""
    if labs is None:
        return {}
    if isinstance(labs, Mapping):
        return lab_table(labs, origin="labs")
    return parse_labs(labs)


def merge_labs(*maps: LabDeclarations | None) -> dict[str, LabSpec]:
    """Later declarations override earlier ones name by name (``--lab`` over a ``[labs]`` table)."""
    out: dict[str, LabSpec] = {}
    for m in maps:
        out.update(m or {})
    return out


def lab_names(labs: LabDeclarations | None = None) -> tuple[str, ...]:
    """Every lab, in reporting order: the input contract's, then the declared ones."""
    return (*LABS, *(labs or {}))


def marker_names(labs: LabDeclarations | None = None) -> tuple[str, ...]:
    """Every marker, in reporting order: the CT score, then :func:`lab_names`."""
    return (CT, *lab_names(labs))


def lab_transform(lab: str, labs: LabDeclarations | None = None) -> str:
    """How lab ``lab`` is modelled: ``"pct"`` (logit(value / 100)) or ``"log"`` (log(value))."""
    if lab in LABS:
        return "pct" if lab in PCT_LABS else "log"
    if labs and lab in labs:
        return labs[lab].transform
    raise KeyError(f"'{lab}' is not a lab: neither one of {', '.join(LABS)} nor declared")


def lab_direction(lab: str, labs: LabDeclarations | None = None) -> int:
    """The sign of lab ``lab``'s loading under ``loading_signs = "known"``: +1 up, -1 down.

    Raises :class:`~bayesct.errors.SpecError` for a declared lab without a direction.
    """
    if lab in LAB_DIRECTION:
        return LAB_DIRECTION[lab]
    if not labs or lab not in labs:
        raise KeyError(f"'{lab}' is not a lab: neither one of {', '.join(LABS)} nor declared")
    spec = labs[lab]
    if spec.direction is None:
        raise SpecError(
            f"the declared lab '{lab}' has no known direction with severity, which the model's "
            f'loading_signs = "known" needs: add :up or :down to its declaration (--lab '
            f'{lab}:{spec.transform}:up, or in [labs]: {lab} = {{ transform = "{spec.transform}", '
            f'direction = "up" }}), or use a spec with loading_signs = "free"'
        )
    return spec.direction


def marker_label(marker: str) -> str:
    """A marker's name for tables and figures (``"LDH (U/L)"``, ``"CRP"``; else the name itself)."""
    return MARKER_LABELS.get(marker) or KNOWN_LAB_LABELS.get(marker, marker)


_WORDS = {v: k for k, v in LAB_DIRECTION_WORDS.items()}


def labs_to_json(labs: LabDeclarations) -> dict[str, dict[str, str | None]]:
    """Declarations as JSON (``{"crp": {"transform": "log", "direction": "up"}}``), as a fit saves them."""
    return {
        lab: {"transform": s.transform, "direction": None if s.direction is None else _WORDS[s.direction]}
        for lab, s in labs.items()
    }


def labs_from_json(obj: Mapping[str, Any], *, file: str | None = None) -> dict[str, LabSpec]:
    """Inverse of :func:`labs_to_json`; a missing direction stays missing."""
    out: dict[str, LabSpec] = {}
    for name, value in obj.items():
        lab, spec = declare_lab(name, value["transform"], value.get("direction"), origin="labs", file=file)
        out[lab] = spec if value.get("direction") else spec._replace(direction=None)
    return out
