"""Compile a model for nutpie once per model and cohort, not once per process.

nutpie compiles a PyMC model in two stages, and on two cores each took seconds on
every fit, even of the same model and cohort:

1. PyTensor builds, rewrites and JIT-links the log-density, its gradient and the
   expansion to every traced variable (about 5 s for the ``joint`` spec);
2. numba links those into two C callbacks (``cfunc``) and re-optimises the whole
   module (12-24 s). numba's own cache cannot keep them: its key pickles the
   closure, which holds freshly generated functions, so it never matches.

Stage 2 is cached by :class:`_GraphKeyedCache`, a numba function cache keyed by
what a callback computes: nutpie's bytecode, the callback's sizes and PyTensor's
SHA-256 key of each compiled graph (every Op and every constant, hence the
cohort's data, which ``freeze_model`` folds into the graph). A closure holding
anything that cannot be keyed that way leaves the callback uncached.

Stage 1 is skipped by :func:`compile_model` when it has seen the same model key
before (:func:`model_key`: the design's arrays, the parsed spec, the source of
the modules that build the graph and the versions of every library involved).
It then rebuilds nutpie's ``CompiledPyMCModel`` from a small JSON record (sizes,
variable layout, the two graph keys, the support point) and the cached
callbacks. Either way the initial point is :class:`JitteredPoint`, so cached and
uncached fits draw the same numbers for the same seed. Any miss falls back to
the full compilation, which rewrites the record.

The records live in ``<pytensor compiledir>/bayesct`` next to PyTensor's and
numba's caches; ``BAYESCT_NO_COMPILE_CACHE=1`` turns both stages off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import threading
import types
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from numba.core import ccallback
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.sigutils import normalize_signature

_KEY_VERSION = "3"  # 3: compiled without fast-math (compile_model)
_LOCK = threading.Lock()
_recorded: dict[str, str] | None = None  # callback name -> graph key, while compiling


def _versions() -> str:
    pkgs = ("nutpie", "numba", "llvmlite", "pytensor", "pymc", "numpy")
    return ",".join(f"{pkg}={version(pkg)}" for pkg in pkgs)


def enabled() -> bool:
    return os.environ.get("BAYESCT_NO_COMPILE_CACHE", "") in ("", "0")


# --- stage 2: the C callbacks ------------------------------------------------------------


def _pytensor_key(func: Any) -> str | None:
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    try:
        return CACHED_SRC_FUNCTIONS.get(func)
    except TypeError:  # not weak-referenceable
        return None


def _code_key(code: types.CodeType) -> str:
    parts = [code.co_qualname, code.co_code.hex(), repr(code.co_names)]
    for const in code.co_consts:
        parts.append(_code_key(const) if isinstance(const, types.CodeType) else repr(const))
    return "|".join(parts)


def callback_key(func: Any) -> str | None:
    """A stable key for a numba-compiled function and its closure, or None if it has none.

    A function PyTensor generated is keyed by PyTensor's own graph key; any other
    function by its bytecode and, recursively, its closure. Closure values other
    than functions, modules, integers and strings make the function unkeyable.
    """
    if isinstance(func, Dispatcher):
        func = func.py_func
    if not isinstance(func, types.FunctionType):
        return None
    if (key := _pytensor_key(func)) is not None:
        return f"pytensor:{key}"
    parts = [_code_key(func.__code__)]
    for cell in func.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, bool | int | str | np.integer):
            parts.append(f"{type(value).__name__}:{value}")
        elif isinstance(value, types.ModuleType):  # a function-local ``import numba``
            parts.append(f"module:{value.__name__}")
        elif (inner := callback_key(value)) is not None:
            parts.append(inner)
        else:
            return None
    return hashlib.sha256(f"{_KEY_VERSION}|{_versions()}|".encode() + "\n".join(parts).encode()).hexdigest()


class _CacheMiss(Exception):
    pass


class _GraphKeyedCache(FunctionCache):
    """numba's function cache, indexed by :func:`callback_key` instead of the pickled closure."""

    def __init__(self, py_func: Any, key: str | None = None, *, required: bool = False) -> None:
        super().__init__(py_func)
        self._graph_key = key if key is not None else callback_key(py_func)
        self._required = required
        if self._graph_key is not None and _recorded is not None:
            _recorded[py_func.__name__] = self._graph_key

    def _index_key(self, sig: Any, codegen: Any) -> tuple:
        return (sig, codegen.magic_tuple(), self._graph_key)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        found = None if self._graph_key is None else super().load_overload(sig, target_context)
        if found is None and self._required:
            raise _CacheMiss
        return found

    def save_overload(self, sig: Any, data: Any) -> None:
        if self._graph_key is not None:
            super().save_overload(sig, data)


@contextmanager
def _keyed_callbacks() -> Iterator[dict[str, str]]:
    """Within this block ``numba.cfunc(..., cache=True)`` uses the graph-keyed cache.

    Yields the keys given to the callbacks compiled inside it, by function name.
    """
    global _recorded
    module: Any = ccallback  # the name CFunc.enable_caching looks up
    with _LOCK:
        original = module.FunctionCache
        module.FunctionCache = _GraphKeyedCache
        _recorded = {}
        try:
            yield _recorded
        finally:
            module.FunctionCache = original
            _recorded = None


def _load_callback(py_func: Any, sig: Any, key: str) -> Any:
    """The cached C callback for ``key``, or None (never compiles)."""
    cfunc: Any = ccallback.CFunc(py_func, normalize_signature(sig), locals={}, options={})
    cfunc._cache = _GraphKeyedCache(py_func, key, required=True)  # what enable_caching() sets
    try:
        cfunc.compile()
    except _CacheMiss:
        return None
    return cfunc


# --- stage 1: the model ------------------------------------------------------------------


def _digest(obj: Any, h: Any) -> None:
    if isinstance(obj, np.ndarray):
        h.update(f"nd{obj.dtype.str}{obj.shape}".encode())
        h.update(repr(obj.tolist()).encode() if obj.dtype == object else np.ascontiguousarray(obj).tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__qualname__.encode())
        for f in dataclasses.fields(obj):
            if f.name not in ("raw", "path"):  # the spec's source text and location: parsed fields suffice
                h.update(f.name.encode())
                _digest(getattr(obj, f.name), h)
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _digest(obj[k], h)
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for item in obj:
            _digest(item, h)
    elif obj is None or isinstance(obj, str | bool | int | float | np.generic):
        h.update(f"{type(obj).__name__}:{obj!r}".encode())
    else:
        raise TypeError(f"cannot key a {type(obj).__name__}")


def model_key(design: Any) -> str | None:
    """A key for the PyMC model that :func:`~bayesct.modeling.builders.build_model` makes of ``design``.

    It covers the design (data arrays and parsed spec), the source of the modules
    that build the graph, and the library versions; None if the design holds
    something it cannot key.
    """
    import pytensor

    from bayesct import constants
    from bayesct.modeling import builders, kernels, spec
    from bayesct.modeling import design as design_mod

    h = hashlib.sha256(f"{_KEY_VERSION}|{_versions()}|".encode())
    h.update(f"{pytensor.config.floatX}|{pytensor.config.numba__fastmath}".encode())
    for mod in (builders, kernels, design_mod, spec, constants):
        h.update(Path(str(mod.__file__)).read_bytes())
    try:
        _digest(design, h)
    except TypeError:
        return None
    return h.hexdigest()


def _record_path(key: str) -> Path:
    import pytensor

    return Path(pytensor.config.base_compiledir) / "bayesct" / f"{key}.json"


def is_cached(key: str | None) -> bool:
    """Whether :func:`compile_model` has a record for ``key`` (a cheap check: a file exists).

    False when the cache is off or the design cannot be keyed. A record whose callbacks
    numba has lost still compiles; that rare case is not told apart here.
    """
    return enabled() and key is not None and _record_path(key).is_file()


@dataclasses.dataclass(frozen=True)
class JitteredPoint:
    """nutpie's initial point: the support point plus U(-1, 1) jitter on the unconstrained coordinates.

    The same strategy as ``nutpie.compile_pymc_model``'s default, with numpy's
    generator seeded by nutpie's per-chain seed: thread-safe, and the same draws
    whether or not the compilation came from the cache. ``jittered`` (1 or 0 per
    coordinate; all ones when omitted) leaves some coordinates at the support point.
    """

    support: np.ndarray
    jittered: np.ndarray | None = None

    def __call__(self, seed: Any = None) -> np.ndarray:
        jitter = np.random.default_rng(seed).uniform(-1.0, 1.0, size=self.support.shape)
        if self.jittered is not None:
            jitter = jitter * self.jittered
        return np.ascontiguousarray(self.support + jitter, dtype=np.float64)


def jitter_mask(names: list[str], slices: list[slice], n_dim: int, unjittered: Collection[str]) -> np.ndarray:
    """1 for every coordinate of the flat unconstrained point that is jittered, 0 for those of ``unjittered``."""
    mask = np.ones(n_dim)
    for name, where in zip(names, slices, strict=False):
        if name in unjittered and where.stop <= n_dim:
            mask[where] = 0.0
    return mask


def _n_free(compiled: Any) -> int:
    """How many of ``shape_info``'s variables are the sampled (unconstrained) ones: they come first."""
    return sum(1 for s in compiled.shape_info[1] if s.stop <= compiled.n_dim)


def _with_jittered_point(frozen: Any, compiled: Any, unjittered: Collection[str]) -> tuple[Any, np.ndarray]:
    """``compiled`` with :class:`JitteredPoint` at the (frozen) model's support point, and that point."""
    point = frozen.initial_point()
    names, slices, _ = compiled.shape_info
    support = np.concatenate([np.asarray(point[n], dtype=float).ravel() for n in names[: _n_free(compiled)]])
    start = JitteredPoint(support, jitter_mask(list(names), list(slices), compiled.n_dim, unjittered))
    return dataclasses.replace(compiled, initial_point_func=start), support


def import_nutpie() -> types.ModuleType:
    """``import nutpie``, without importing ArviZ's plotting half.

    nutpie imports the ``arviz`` package for two functions of ``arviz_base``
    (``from_dict`` and ``dict_to_dataset``, which turn its trace into a DataTree),
    and ``arviz`` imports ``arviz_plots`` and with it ``matplotlib.pyplot``: about
    1 s of every fit on two cores (``python -X importtime``), for nothing a fit
    draws. Unless ``arviz`` is already imported, nutpie is imported with
    ``arviz_base`` standing in for it; the stand-in is removed at once, so a later
    ``import arviz`` gets the real package.
    """
    if "nutpie" in sys.modules or "arviz" in sys.modules:
        import nutpie

        return nutpie
    import arviz_base

    sys.modules["arviz"] = arviz_base
    try:
        import nutpie
    finally:
        if sys.modules.get("arviz") is arviz_base:
            del sys.modules["arviz"]
    return nutpie


def _from_record(model: Any, record: dict[str, Any], unjittered: Collection[str]) -> Any:
    """nutpie's compiled model rebuilt from a record and the cached callbacks, or None.

    Called by :func:`compile_model`, which has imported nutpie (:func:`import_nutpie`).
    """
    import nutpie.compile_pymc as ncp

    n_dim, n_expanded = int(record["n_dim"]), int(record["n_expanded"])
    user_data = ncp.make_user_data({}, {})
    logp_raw, logp_sig = ncp._make_c_logp_func(n_dim, None, user_data, [], {})
    expand_raw, expand_sig = ncp._make_c_expand_func(n_dim, n_expanded, None, user_data, [], {})
    logp = _load_callback(logp_raw, logp_sig, record["logp_key"])
    expand = _load_callback(expand_raw, expand_sig, record["expand_key"])
    if logp is None or expand is None:
        return None
    names = list(record["names"])
    slices = [slice(a, b) for a, b in record["slices"]]
    shapes = [tuple(s) for s in record["shapes"]]
    n_free = int(record["n_free"])
    if sorted(v.name for v in model.value_vars) != sorted(names[:n_free]):  # (frozen order differs)
        return None
    initial_point = JitteredPoint(
        np.asarray(record["support_point"], dtype=float), jitter_mask(names, slices, n_dim, unjittered)
    )
    shape_info = (names, slices, shapes)
    reparameterized = list(record["reparameterized"])
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparameterized)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes=dict(zip(names, shapes, strict=True)),
        compiled_logp_func=logp,
        compiled_expand_func=expand,
        initial_point_func=initial_point,
        shared_data={},
        shared_var_keys={},
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=None,
        expand_func=None,
        reparameterized_names=reparameterized,
    )


def _write_record(path: Path, compiled: Any, keys: dict[str, str], support: np.ndarray) -> None:
    names, slices, shapes = compiled.shape_info
    record = {
        "support_point": support.tolist(),
        "logp_key": keys["logp_numba"],
        "expand_key": keys["expand_numba"],
        "n_dim": int(compiled.n_dim),
        "n_expanded": int(compiled.n_expanded),
        "n_free": _n_free(compiled),
        "names": list(names),
        "slices": [[int(s.start), int(s.stop)] for s in slices],
        "shapes": [[int(d) for d in shape] for shape in shapes],
        "reparameterized": list(compiled.reparameterized_names or []),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _freeze(model: Any) -> Any:
    """``freeze_dims_and_data(model)``, keeping the model's ``check_bounds`` (which it resets)."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    frozen = freeze_dims_and_data(model)
    frozen.check_bounds = model.check_bounds
    return frozen


def _value_names(model: Any, names: Collection[str]) -> set[str]:
    """The names of the sampled (value) variables of the free variables ``names``.

    A transformed variable is sampled under another name (``severity_dev`` as
    ``severity_dev_zerosum__``), which is the name nutpie's layout uses.
    """
    out = set()
    for name in names:
        if name in model.named_vars:
            value = model.rvs_to_values.get(model[name])
            out.add(value.name if value is not None else name)
    return out


def compile_model(model: Any, key: str | None = None, unjittered: Collection[str] = ()) -> Any:
    """``nutpie.compile_pymc_model(model, freeze_model=True)``, from the caches when they have it.

    ``key`` is :func:`model_key` of the design ``model`` was built from; without
    it only the C callbacks are cached. Chains start at :class:`JitteredPoint`, with
    the free variables named in ``unjittered`` at their support point.

    PyTensor's numba backend is asked for no fast-math (``numba__fastmath=False``): with it,
    LLVM may reassociate floating-point sums, and a graph compiled afresh and the same graph
    loaded from PyTensor's cache then differ in their last bits, which NUTS amplifies: the
    first fit of a cohort drew other numbers than every later fit with the same seed. Without
    it the fresh and the cached builds agree bit for bit (``tests/modeling/test_nutpie_cache.py``).
    """
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        return _compile_model(model, key, unjittered)


def _compile_model(model: Any, key: str | None, unjittered: Collection[str]) -> Any:
    nutpie = import_nutpie()

    unjittered = _value_names(model, unjittered)
    if not enabled():
        frozen = _freeze(model)
        compiled = nutpie.compile_pymc_model(frozen, freeze_model=False)
        return _with_jittered_point(frozen, compiled, unjittered)[0]
    path = _record_path(key) if key is not None else None
    if path is not None and path.is_file():
        try:
            record = json.loads(path.read_text())
            compiled = _from_record(model, record, unjittered)
        except (OSError, ValueError, KeyError, TypeError):
            compiled = None
        if compiled is not None:
            return compiled
    frozen = _freeze(model)  # what freeze_model=True would do, done once for both uses
    with _keyed_callbacks() as keys:
        compiled = nutpie.compile_pymc_model(frozen, freeze_model=False, cache=True)
    compiled, support = _with_jittered_point(frozen, compiled, unjittered)
    if path is not None and {"logp_numba", "expand_numba"} <= keys.keys():
        # A read-only cache directory only costs the next fit its compilation.
        with contextlib.suppress(OSError):
            _write_record(path, compiled, keys, support)
    return compiled
