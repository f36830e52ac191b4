"""Compile a model for nutpie once per model, whatever the cohort.

nutpie's own ``compile_pymc_model`` compiles a log-density for one set of sizes: the
number of sampled coordinates is fixed in its callbacks, and with ``freeze_model`` the
cohort's data are folded into the graph. A never-seen cohort then cost 35-60 s of
compilation on two cores before its first draw. Here instead:

1. The builders put every array of the cohort into model data (``pm.Data``) and every
   size into a dimension length (:func:`~bayesct.modeling.builders.build_joint`).
2. :func:`_program_graphs` replaces the sampled variables and every datum by segments of
   three vectors, the point ``x`` and two data buffers whose header gives each
   segment's offset and shape, so that the compiled :class:`Program` reads every size at
   run time. It is keyed by :func:`model_key`: the graph itself (its printout and
   constants, with data and lengths by name), the kernels' source and the library versions.
3. Two C callbacks of nutpie's signature (:func:`_logp_callback`, :func:`_expand_callback`)
   call the program with the buffers found through ``user_data``; numba caches them by
   what they compute (:class:`_GraphKeyedCache`: the callback's bytecode and PyTensor's key
   of the graph it calls, which holds no data), and a small JSON record per model key in
   ``<pytensor compiledir>/bayesct`` names them, so that a later process loads them
   without building or rewriting a graph.

Per cohort, :func:`compile_model` only fills the buffers, lays out the point and the traced
values, and computes the initial point (:class:`JitteredPoint`: the same draws for the same
seed whether or not the program came from the cache). ``BAYESCT_NO_COMPILE_CACHE=1``
compiles every time and writes nothing.

nutpie's ``CompiledPyMCModel`` and ``_prepare_dims_and_coords`` are used as nutpie 0.16
defines them (the version is pinned; ``tests/modeling/test_nutpie_cache.py`` holds them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import threading
import types
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import numba
import numpy as np
from numba.core import ccallback
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.errors import NumbaWarning
from numba.core.sigutils import normalize_signature
from numba.extending import intrinsic

_KEY_VERSION = "5"  # 4: one program per model, the data as inputs; 5: int32 data
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


# --- the program: one log-density per model, the cohort's data as inputs -------------------

#: The C signatures of nutpie's two callbacks: ``logp(dim, x, grad, logp, user_data)`` and
#: ``expand(dim, n_expanded, x, out, user_data)``, both returning 0 on success.
_LOGP_SIG = "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), voidptr)"
_EXPAND_SIG = "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)"
# ``user_data`` of both callbacks is six uint64: the address and size of ``fdata``, the address
# and size of ``idata``, the number of sampled coordinates and of traced values (compile_model).


@intrinsic
def _void_pointer_intrinsic(typingctx: Any, address: Any) -> Any:
    """The integer ``address`` as a ``void *`` (for ``numba.carray``)."""
    from numba.core import cgutils
    from numba.core import types as nb_types

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return nb_types.voidptr(address), codegen


_void_pointer: Any = _void_pointer_intrinsic  # called as _void_pointer(address) in compiled code


def _logp_callback(inner: Any) -> Any:
    """nutpie's log-density callback around ``inner(x, fdata, idata) -> (logp, grad)``."""

    def logp_numba(dim, x_, out_, logp_, user_data_):  # pragma: no cover - compiled by numba
        meta = numba.carray(user_data_, (6,), np.uint64)
        if dim != meta[4]:
            return -1
        try:
            fdata = numba.carray(_void_pointer(meta[0]), (meta[1],), np.float64)
            idata = numba.carray(_void_pointer(meta[2]), (meta[3],), np.int32)
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = inner(x, fdata, idata)
            logp[()] = logp_val
            out[...] = grad
            if not np.all(np.isfinite(out)):
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:
            return 1
        return 0

    return logp_numba


def _expand_callback(inner: Any) -> Any:
    """nutpie's expansion callback around ``inner(x, fdata, idata) -> (values,)``."""

    def expand_numba(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled by numba
        meta = numba.carray(user_data_, (6,), np.uint64)
        if dim != meta[4] or expanded != meta[5]:
            return -1
        try:
            fdata = numba.carray(_void_pointer(meta[0]), (meta[1],), np.float64)
            idata = numba.carray(_void_pointer(meta[2]), (meta[3],), np.int32)
            x = numba.carray(x_, (dim,))
            out = numba.carray(out_, (expanded,))
            (values,) = inner(x, fdata, idata)
            out[...] = values
        except Exception:
            return -2
        return 0

    return expand_numba


def _module_sources() -> bytes:
    """The source of the modules whose code a compiled program holds beyond its graph."""
    from bayesct.modeling import kernels

    return Path(str(kernels.__file__)).read_bytes() + Path(__file__).read_bytes()


def _traced(model: Any) -> list[Any]:
    """The model's traced values beyond the sampled ones: constrained free variables and deterministics."""
    free = {model.rvs_to_values[rv].name for rv in model.free_RVs}
    return [v for v in model.unobserved_value_vars if v.name not in free]


def model_key(model: Any) -> str:
    """A key for the log-density and traced values of ``model``, whatever its data.

    The SHA-256 of PyTensor's printout of the log-density and of every traced value (each
    Op, each variable's name and type, the model data and dimension lengths by name), the
    values of the graph's constants, this module's and the kernels' source and the library
    versions. Two models of the same spec on different cohorts share it (the builders put
    every array of the cohort into model data); a different structure, prior or library
    gives another key.
    """
    import io

    import pytensor
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import graph_inputs
    from pytensor.printing import debugprint

    outputs = [model.logp(), *_traced(model)]
    text = io.StringIO()
    debugprint(outputs, file=text, print_type=True)
    h = hashlib.sha256(f"{_KEY_VERSION}|{_versions()}|{pytensor.config.floatX}|".encode())
    h.update(_module_sources())
    h.update(text.getvalue().encode())
    for var in graph_inputs(outputs):
        if isinstance(var, Constant):
            data = np.asarray(var.data)
            h.update(f"{data.dtype.str}{data.shape}".encode() + np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Program:
    """A model's log-density and expansion, compiled once, with the cohort's data as inputs.

    The sampled point ``x`` and two buffers enter the compiled functions: ``fdata`` (every
    float model datum, flattened) and ``idata`` (int32: a header, then every integer datum and
    dimension length). The header holds, for each sampled variable and then each datum
    (``inputs``), its offset in ``x`` or in its buffer and its shape, so that sizes are read
    at run time: one program serves cohorts of any size.
    """

    logp: Any  # the C callbacks (numba ``CFunc``)
    expand: Any
    inputs: tuple[tuple[str, str, int], ...]  # (name, "f" or "i", ndim), in buffer order
    free: tuple[tuple[str, int], ...]  # (value variable name, ndim), in the order of x

    def buffers(self, model: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """``fdata`` and ``idata`` for ``model`` (of this program's key), whose sampled variables
        have ``shapes``."""
        header: list[int] = []
        offset = 0
        for name, _ in self.free:
            header += [offset, *shapes[name]]
            offset += math.prod(shapes[name])
        n_header = len(header) + sum(1 + ndim for _, _, ndim in self.inputs)
        floats: list[np.ndarray] = []
        ints: list[np.ndarray] = []
        sizes = {"f": 0, "i": n_header}
        for name, kind, _ in self.inputs:
            value = np.asarray(_shared_input(model, name).get_value())
            header += [sizes[kind], *value.shape]
            sizes[kind] += value.size
            (floats if kind == "f" else ints).append(value.ravel())
        fdata = np.concatenate([np.zeros(0), *floats]).astype(np.float64)
        if max([sizes["i"], sizes["f"], *header], default=0) >= 2**31:
            raise ValueError("a cohort too large for 32-bit data offsets")
        idata = np.concatenate([np.asarray(header, dtype=np.int64), *ints]).astype(np.int32)
        return np.ascontiguousarray(fdata), np.ascontiguousarray(idata)


def _shared_input(model: Any, name: str) -> Any:
    """The model datum or dimension length called ``name``."""
    if name in model.dim_lengths:
        return model.dim_lengths[name]
    return model.named_vars[name]


def _program_graphs(model: Any) -> tuple[list[Any], list[Any], tuple, tuple]:
    """The log-density, its gradient and the expansion as graphs of ``x``, ``fdata`` and ``idata``.

    Returns the inputs, the outputs ``[logp, grad, values]``, the inputs' layout and the
    sampled variables' (see :class:`Program`).
    """
    import pytensor.tensor as pt
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph import rewrite_graph
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import graph_inputs

    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp = model.logp()
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = cast(Any, rewrite_graph(logp, include=rewrites))
    grads: Any = pt.grad(logp, value_vars)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in grads])
    traced = _traced(model)
    values = pt.concatenate([*(v.ravel() for v in value_vars), *(pt.as_tensor(v).ravel() for v in traced)])
    outputs = [logp, grad, values]
    shared: list[Any] = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    names = [v.name for v in shared]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"model data need unique names, got {names}")
    shared.sort(key=lambda v: str(v.name))

    x, fdata, idata = pt.dvector("x"), pt.dvector("fdata"), pt.ivector("idata")
    pos = 0
    replace: dict[Any, Any] = {}

    def segment(buffer: Any, ndim: int) -> Any:
        nonlocal pos
        start = idata[pos]
        shape = [idata[pos + 1 + d] for d in range(ndim)]
        pos += 1 + ndim
        if ndim == 0:
            return buffer[start]
        size = shape[0]
        for d in shape[1:]:
            size = size * d
        return buffer[start : start + size].reshape(shape, ndim=ndim)

    free = []
    for v in value_vars:
        replace[v] = segment(x, v.ndim).astype(v.dtype)
        free.append((v.name, v.ndim))
    inputs = []
    for v in shared:
        kind = "f" if v.dtype.startswith("float") else "i"
        # idata is int32, as PyMC keeps integer model data: their segments need no cast (a copy
        # at every evaluation); dimension lengths (int64 scalars) and floats (float64) cast freely.
        replace[v] = segment(fdata if kind == "f" else idata, v.ndim).astype(v.dtype)
        inputs.append((v.name, kind, v.ndim))
    outputs = graph_replace(outputs, replace, strict=False)
    return [x, fdata, idata], outputs, tuple(inputs), tuple(free)


def _compile_program(model: Any, key: str, cache: bool) -> Program:
    """Compile ``model``'s program (PyTensor's numba backend, then the two C callbacks)."""
    import warnings

    import pytensor

    inputs, (logp, grad, values), layout, free = _program_graphs(model)
    mode = pytensor.compile.mode.get_mode("NUMBA")
    logp_fn = pytensor.function(inputs, [logp, grad], mode=mode, on_unused_input="ignore")
    expand_fn = pytensor.function(inputs, [values], mode=mode, on_unused_input="ignore")
    with warnings.catch_warnings(), _keyed_callbacks() as keys:
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)
        logp_c = numba.cfunc(_LOGP_SIG, cache=cache)(_logp_callback(logp_fn.vm.jit_fn))
        expand_c = numba.cfunc(_EXPAND_SIG, cache=cache)(_expand_callback(expand_fn.vm.jit_fn))
        logp_c.compile()
        expand_c.compile()
    program = Program(logp_c, expand_c, layout, free)
    if cache and {"logp_numba", "expand_numba"} <= keys.keys():
        record = {
            "logp_key": keys["logp_numba"],
            "expand_key": keys["expand_numba"],
            "inputs": [list(i) for i in layout],
            "free": [list(f) for f in free],
        }
        # A read-only cache directory only costs the next process its compilation.
        with contextlib.suppress(OSError):
            _write_record(_record_path(key), record)
    return program


def _load_program(key: str) -> Program | None:
    """The program of ``key`` from its record and numba's cache, or None (never compiles)."""
    try:
        record = json.loads(_record_path(key).read_text())
        logp = _load_callback(_logp_callback(None), _LOGP_SIG, record["logp_key"])
        expand = _load_callback(_expand_callback(None), _EXPAND_SIG, record["expand_key"])
        inputs = tuple((str(n), str(k), int(d)) for n, k, d in record["inputs"])
        free = tuple((str(n), int(d)) for n, d in record["free"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if logp is None or expand is None:
        return None
    return Program(logp, expand, inputs, free)


def _record_path(key: str) -> Path:
    import pytensor

    return Path(pytensor.config.base_compiledir) / "bayesct" / f"{key}.json"


def _write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def is_cached(key: str | None) -> bool:
    """Whether a program of ``key`` is at hand: compiled in this process, or recorded on disk.

    False when the cache is off. A record whose callbacks numba has lost still compiles;
    that rare case is not told apart here.
    """
    return key is not None and enabled() and (key in _PROGRAMS or _record_path(key).is_file())


#: The programs this process has compiled or loaded, by key.
_PROGRAMS: dict[str, Program] = {}


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


def program(model: Any, key: str | None = None) -> Program:
    """The compiled :class:`Program` of ``model``: from this process, from the disk cache, or compiled.

    ``key`` is :func:`model_key` of ``model`` (computed when omitted).
    """
    key = key or model_key(model)
    if not enabled():
        return _compile_program(model, key, cache=False)
    with _LOCK:
        found = _PROGRAMS.get(key)
    if found is None:
        found = _load_program(key) or _compile_program(model, key, cache=True)
        with _LOCK:
            _PROGRAMS[key] = found
    return found


def _traced_shape(model: Any, var: Any) -> tuple[int, ...]:
    """The shape of a traced value, from its dimensions or its static shape."""
    dims = model.named_vars_to_dims.get(var.name)
    if dims is not None and all(d is not None for d in dims):
        return tuple(
            len(model.coords[d]) if model.coords[d] is not None else int(model.dim_lengths[d].get_value())
            for d in dims
        )
    if all(s is not None for s in var.type.shape):
        return tuple(int(s) for s in var.type.shape)
    raise ValueError(f"cannot tell the shape of {var.name}: give it dims")


def compile_model(model: Any, key: str | None = None, unjittered: Collection[str] = ()) -> Any:
    """nutpie's compiled model of ``model``, from one :class:`Program` per model key.

    The program is compiled once per model (not per cohort) and reused from this process
    or the disk cache; here only the cohort's buffers, the layout of the sampled point and
    the traced values, and the initial point are made. Chains start at
    :class:`JitteredPoint`, with the free variables named in ``unjittered`` at their
    support point.

    PyTensor's numba backend is asked for no fast-math (``numba__fastmath=False``): with it,
    LLVM may reassociate floating-point sums, and a graph compiled afresh and the same graph
    loaded from PyTensor's cache then differ in their last bits, which NUTS amplifies: the
    first fit of a cohort drew other numbers than every later fit with the same seed. Without
    it the fresh and the cached builds agree bit for bit (``tests/modeling/test_nutpie_cache.py``).
    """
    import pytensor

    import_nutpie()
    import nutpie.compile_pymc as ncp

    with pytensor.config.change_flags(numba__fastmath=False):
        prog = program(model, key)
    point = model.initial_point()
    free_names = [name for name, _ in prog.free]
    if sorted(free_names) != sorted(model.rvs_to_values[rv].name for rv in model.free_RVs):
        raise ValueError("the model does not match its compiled program")  # pragma: no cover
    shapes = {name: tuple(np.shape(point[name])) for name in free_names}
    fdata, idata = prog.buffers(model, shapes)
    traced = _traced(model)
    names = free_names + [v.name for v in traced]
    all_shapes = [shapes[n] for n in free_names] + [_traced_shape(model, v) for v in traced]
    slices, start = [], 0
    for shape in all_shapes:
        slices.append(slice(start, start + math.prod(shape)))
        start += math.prod(shape)
    n_dim = sum(math.prod(shapes[n]) for n in free_names)
    n_expanded = start
    meta = np.array(
        [fdata.ctypes.data, fdata.size, idata.ctypes.data, idata.size, n_dim, n_expanded], dtype=np.uint64
    )
    support = np.concatenate([np.zeros(0), *(np.asarray(point[n], dtype=float).ravel() for n in free_names)])
    start_point = JitteredPoint(support, jitter_mask(names, slices, n_dim, _value_names(model, unjittered)))
    shape_info = (names, slices, all_shapes)
    reparameterized = [
        model.rvs_to_values[rv].name for rv in model.free_RVs if model.rvs_to_transforms.get(rv) is not None
    ]
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparameterized)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes=dict(zip(names, all_shapes, strict=True)),
        compiled_logp_func=prog.logp,
        compiled_expand_func=prog.expand,
        initial_point_func=start_point,
        shared_data={"fdata": fdata, "idata": idata},  # kept alive with the model
        shared_var_keys={},
        user_data=meta,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=None,
        expand_func=None,
        reparameterized_names=reparameterized,
    )
