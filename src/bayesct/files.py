"""What bayesct writes to disk: strict JSON, and output folders that appear only when complete.

Every JSON file or line bayesct writes or prints goes through :func:`dumps_json`: strict
JSON (RFC 8259), which has no ``NaN`` or ``Infinity``, so a non-finite float is written
``null``; numpy scalars and arrays, paths, dates and dataclasses become plain JSON values.

Every output folder (a fit, ``bayesct check``, ``classical`` and ``demo``) is written by
:func:`atomic_dir` into a hidden sibling, ``.<name>.partial-<id>``, renamed into place
only once complete: a run that fails or is interrupted leaves nothing at the output path
and no hidden sibling either. A folder that exists and is not empty is refused unless
``overwrite`` (the commands' ``--force``), which replaces it only once the new one is
complete. Paths inside the hidden sibling are printed as their final names
(:func:`shown`).

Low level: imports only :mod:`bayesct.errors` and :mod:`bayesct.interrupts`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any

from bayesct.errors import OutputExistsError
from bayesct.interrupts import deferred, raise_if_interrupted

# (hidden folder, final path) of the atomic folders being written, innermost last.
_ACTIVE: list[tuple[Path, Path]] = []


# -- strict JSON ------------------------------------------------------------------------------------
def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: dicts, lists, str, int, finite float, bool, ``None``.

    Non-finite floats (NaN, +-inf) become ``None``; numpy scalars and arrays become Python
    numbers and (nested) lists; tuples and sets become lists; mapping keys become strings;
    paths become strings, dates ISO 8601; dataclasses their fields; pandas' missing values
    ``None``. Anything else raises :class:`TypeError`.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, PurePath):
        return str(obj)
    if _is_pandas_missing(obj):
        return None
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
        if isinstance(obj, np.generic):
            return to_jsonable(obj.item())
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _key(k: Any) -> str:
    value = to_jsonable(k)
    if isinstance(value, str):
        return value
    return json.dumps(value)  # 1 -> "1", True -> "true", None -> "null"


def _is_pandas_missing(obj: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and (obj is pd.NA or obj is pd.NaT)


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (:func:`to_jsonable`, then ``allow_nan=False``)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path``: a hidden sibling renamed over it when written."""
    path = Path(path)
    text = dumps_json(obj, indent=indent) + "\n"
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# -- atomic output folders ------------------------------------------------------------------------
def check_output_dir(path: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse ``path`` as an output folder: a file, or a folder that is not empty unless ``overwrite``.

    Raises :class:`~bayesct.errors.OutputExistsError`; returns ``path`` as a ``Path``.
    Commands call it before a long run, so that a refusal costs nothing.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):  # "." or "/": name it, so that a sibling can be named
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder: choose another output folder")
    occupied = path.is_symlink() or (path.is_dir() and any(path.iterdir()))
    if occupied and not overwrite:
        raise OutputExistsError(
            f"{path} already exists and is not empty: choose another output folder, "
            "or pass --force to replace it"
        )
    if occupied and not path.is_symlink() and Path.cwd().resolve().is_relative_to(path.resolve()):
        raise OutputExistsError(f"{path} holds the current folder: choose another output folder")
    return path


@contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden sibling folder of ``path`` to write into; rename it to ``path`` when the block ends.

    On an exception or an interruption (:func:`bayesct.interrupts.raise_if_interrupted` is
    checked before the rename) the hidden folder is removed and ``path`` is left as it was.
    An existing ``path`` is handled as :func:`check_output_dir` says, and an empty folder is
    replaced; with ``overwrite`` a non-empty one is replaced only once the new folder is
    complete. The hidden folder shares ``path``'s parent (created if needed), so the final
    rename is atomic.
    """
    final = check_output_dir(path, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}")
    tmp.mkdir()
    _ACTIVE.append((tmp, final))
    try:
        yield tmp
        raise_if_interrupted()
        with deferred():
            _put_in_place(tmp, final, overwrite=overwrite)
    except BaseException:
        with deferred():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _ACTIVE.remove((tmp, final))


def _put_in_place(tmp: Path, final: Path, *, overwrite: bool) -> None:
    if not (final.exists() or final.is_symlink()):
        os.rename(tmp, final)
        return
    check_output_dir(final, overwrite=overwrite)  # it may have appeared meanwhile
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        final.rmdir()
        os.rename(tmp, final)
        return
    old = final.with_name(f".{final.name}.replaced-{secrets.token_hex(4)}")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def shown(path: str | Path) -> Path:
    """``path`` as it will be named once the atomic folders it lies in are in place (for messages)."""
    p = Path(path)
    for tmp, final in reversed(_ACTIVE):
        if p.is_relative_to(tmp):
            p = final / p.relative_to(tmp)
    return p


__all__ = ["atomic_dir", "check_output_dir", "dumps_json", "shown", "to_jsonable", "write_json"]
