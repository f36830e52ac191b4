"""The on-disk compilation cache for nutpie: keys that change with what they key, and cached
compilations that sample exactly like fresh ones."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pymc as pm
import pytest

from bayesct.modeling import nutpie_cache
from bayesct.modeling.builders import build_model
from bayesct.modeling.fit import JointModel
from bayesct.modeling.nutpie_cache import JitteredPoint, callback_key, model_key


def _with_a_scale(model: pm.Model) -> pm.Model:
    """``model`` with a log-transformed scale (and a variable on that scale) added: a small model
    with a transformed variable, whose gradient is not zero at its support point."""
    with model:
        scale = pm.HalfNormal("scale", 1.0)
        pm.Normal("on_scale", 0.0, scale)
    return model


def _closure(value):
    def inner():
        return value

    return inner


def test_callback_key_is_stable_and_refuses_unkeyable_closures():
    assert callback_key(_closure(3)) == callback_key(_closure(3))
    assert callback_key(_closure(3)) != callback_key(_closure(4))
    assert callback_key(_closure("a")) != callback_key(_closure(3))
    assert callback_key(_closure(np)) is not None  # a module is keyed by its name
    assert callback_key(_closure(np.zeros(3))) is None  # data in a closure: no key, no cache
    assert callback_key(_closure(object())) is None


def test_model_key_is_one_per_model_whatever_the_cohort(small_cohort):
    """Cohorts of other sizes and values share a spec's key; another spec or prior does not."""
    from bayesct.data.simulate import simulate_cohort

    jm = JointModel("joint")
    key = model_key(jm.build(small_cohort))
    assert key == model_key(jm.build(simulate_cohort(17, seed=5).cohort))
    assert key == model_key(jm.build(simulate_cohort(61, seed=6).cohort))
    assert model_key(JointModel("ct_only").build(small_cohort)) != key
    spec = jm.spec
    name = next(iter(spec.priors))
    prior = spec.priors[name]
    params = {k: v * 2 for k, v in prior.params.items()}
    spec2 = dataclasses.replace(spec, priors={**spec.priors, name: dataclasses.replace(prior, params=params)})
    assert model_key(JointModel(spec2).build(small_cohort)) != key


def test_no_array_of_the_cohort_is_a_constant_of_the_graph(small_cohort):
    """The builders put the cohort's arrays into model data: the graph's constants are the
    spec's and the structure's only (none as long as the cohort's scans or lab values)."""
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import graph_inputs

    for name in ("joint", "ct_only", "joint_zones", "scan_logistic"):
        model = JointModel(name).build(small_cohort)
        sizes = {
            len(model.coords[d]) for d in ("patient", "ct_scan", "lab_value", "scan") if d in model.coords
        }
        for var in graph_inputs([model.logp()]):
            if isinstance(var, Constant):
                assert np.size(var.data) not in sizes or np.size(var.data) <= 2, (name, var)


def test_jittered_point_is_seeded():
    point = JitteredPoint(np.arange(5.0))
    np.testing.assert_array_equal(point(7), point(7))
    assert not np.array_equal(point(7), point(8))
    assert np.all(np.abs(point(7) - np.arange(5.0)) <= 1.0)


def test_unjittered_coordinates_stay_at_the_support_point():
    names, slices = ["a", "b", "c_expanded"], [slice(0, 2), slice(2, 5), slice(5, 6)]
    mask = nutpie_cache.jitter_mask(names, slices, 5, {"b", "c_expanded"})
    np.testing.assert_array_equal(mask, [1, 1, 0, 0, 0])  # c_expanded is past the sampled coordinates
    support = np.arange(5.0)
    point = JitteredPoint(support, mask)
    for seed in range(5):
        x = point(seed)
        np.testing.assert_array_equal(x[2:], support[2:])
        assert np.all(x[:2] != support[:2])
    # the jittered coordinates draw what they drew without a mask
    np.testing.assert_array_equal(point(3)[:2], JitteredPoint(support)(3)[:2])


def _logp_and_grad(compiled, x):
    n = compiled.n_dim
    grad, logp = np.zeros(n), np.zeros(())
    ptr = ctypes.POINTER(ctypes.c_double)
    rc = compiled.compiled_logp_func.ctypes(
        n,
        x.ctypes.data_as(ptr),
        grad.ctypes.data_as(ptr),
        logp.ctypes.data_as(ptr),
        compiled.user_data.ctypes.data,
    )
    assert rc == 0
    return float(logp), grad


def _point(compiled, x):
    """The PyMC point (value variables by name) of nutpie's flat point ``x``."""
    names, slices, shapes = compiled.shape_info
    return {
        n: x[sl].reshape(sh)
        for n, sl, sh in zip(names, slices, shapes, strict=False)
        if sl.stop <= compiled.n_dim
    }


@pytest.fixture
def fresh_programs(tmp_path, monkeypatch):
    """An empty program cache (in this process and on disk) and a count of the compilations."""
    monkeypatch.setattr(nutpie_cache, "_record_path", lambda key: tmp_path / f"{key}.json")
    monkeypatch.setattr(nutpie_cache, "_PROGRAMS", {})
    compiled: list[str] = []
    real = nutpie_cache._compile_program

    def counting(model, key, cache):
        compiled.append(key)
        return real(model, key, cache)

    monkeypatch.setattr(nutpie_cache, "_compile_program", counting)
    return compiled


@pytest.mark.slow
def test_one_compiled_model_serves_cohorts_of_other_sizes(fresh_programs):
    """The joint spec compiles once; a cohort of another size then binds to the same program, and
    its log-density and gradient are PyMC's own for that cohort."""
    from bayesct.data.simulate import simulate_cohort

    jm = JointModel("joint")
    first = nutpie_cache.compile_model(jm.build(simulate_cohort(25, seed=1).cohort))
    assert len(fresh_programs) == 1
    model = jm.build(simulate_cohort(48, seed=2, unknown_outcome=3).cohort)
    other = nutpie_cache.compile_model(model)
    assert len(fresh_programs) == 1  # not compiled again
    assert other.compiled_logp_func is first.compiled_logp_func and other.n_dim > first.n_dim
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = other.initial_point_func(int(rng.integers(1000))) + rng.normal(scale=0.1, size=other.n_dim)
        lp, grad = _logp_and_grad(other, x)
        point = _point(other, x)
        assert lp == pytest.approx(float(logp(point)), rel=1e-10)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)


@pytest.mark.slow
def test_cached_compilation_matches_a_fresh_one(small_cohort, fresh_programs, tmp_path, monkeypatch):
    import nutpie

    design = JointModel("scan_logistic").design(small_cohort)
    model = _with_a_scale(build_model(design))
    key = model_key(model)
    transformed = next(rv.name for rv in model.free_RVs if model.rvs_to_transforms[rv] is not None)
    held = {
        "mort_beta",
        transformed,
    }  # by variable name: a transformed one is sampled as <name>_<transform>__
    fresh = nutpie_cache.compile_model(model, key, unjittered=held)
    assert fresh_programs == [key] and (tmp_path / f"{key}.json").is_file()
    monkeypatch.setattr(nutpie_cache, "_PROGRAMS", {})  # as in a new process: from the record
    cached = nutpie_cache.compile_model(_with_a_scale(build_model(design)), key, unjittered=held)
    assert fresh_programs == [key]  # loaded, not compiled
    assert cached.compiled_logp_func.cache_hits == 1
    n = fresh.n_dim
    assert cached.shape_info[0] == fresh.shape_info[0]
    # both start every chain at the same points, with the held variables unjittered
    names, slices = fresh.shape_info[0], fresh.shape_info[1]
    value_name = model.rvs_to_values[model[transformed]].name
    assert value_name != transformed and value_name in names
    held_at = np.r_[tuple(np.arange(n)[slices[names.index(v)]] for v in ("mort_beta", value_name))]
    support = fresh.initial_point_func.support
    for seed in (0, 1):
        start = fresh.initial_point_func(seed)
        np.testing.assert_array_equal(start, cached.initial_point_func(seed))
        np.testing.assert_array_equal(start[held_at], support[held_at])
        assert np.all(np.delete(start - support, held_at) != 0)
    x = np.random.default_rng(0).normal(size=fresh.n_dim)
    lp_fresh, g_fresh = _logp_and_grad(fresh, x)
    lp_cached, g_cached = _logp_and_grad(cached, x)
    assert lp_cached == lp_fresh and np.isfinite(lp_fresh)
    np.testing.assert_array_equal(g_cached, g_fresh)
    kw = {"draws": 20, "tune": 20, "chains": 2, "cores": 1, "seed": 5, "progress_bar": False}
    a = nutpie.sample(fresh, **kw)["posterior"]["mort_beta"].values
    b = nutpie.sample(cached, **kw)["posterior"]["mort_beta"].values
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_stale_record_falls_back_to_compiling(small_cohort, fresh_programs, tmp_path, monkeypatch):
    model = build_model(JointModel("scan_logistic").design(small_cohort))
    key = model_key(model)
    path = tmp_path / f"{key}.json"
    nutpie_cache.compile_model(model, key)
    record = json.loads(path.read_text())
    good = record["logp_key"]
    path.write_text(json.dumps(record | {"logp_key": "0" * 64}))  # a callback no cache holds
    monkeypatch.setattr(nutpie_cache, "_PROGRAMS", {})
    nutpie_cache.compile_model(model, key)
    assert fresh_programs == [key, key]  # compiled afresh
    assert json.loads(path.read_text())["logp_key"] == good  # and the record rewritten
    path.write_text("{not json")
    monkeypatch.setattr(nutpie_cache, "_PROGRAMS", {})
    nutpie_cache.compile_model(model, key)
    assert fresh_programs == [key] * 3


@pytest.mark.slow
def test_the_cache_can_be_turned_off(small_cohort, fresh_programs, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCT_NO_COMPILE_CACHE", "1")
    model = build_model(JointModel("scan_logistic").design(small_cohort))
    nutpie_cache.compile_model(model)
    nutpie_cache.compile_model(model)
    assert len(fresh_programs) == 2
    assert not list(tmp_path.iterdir()) and not nutpie_cache._PROGRAMS


def test_nutpie_is_pinned_to_the_minor_version_whose_internals_are_used():
    """compile_model builds nutpie's CompiledPyMCModel and calls _prepare_dims_and_coords, as
    nutpie 0.16 defines them: an upgrade must come with a check of both."""
    from importlib.metadata import version

    import nutpie.compile_pymc as ncp

    assert version("nutpie").startswith("0.16.")
    fields = {f.name for f in dataclasses.fields(ncp.CompiledPyMCModel)}
    assert {"compiled_logp_func", "compiled_expand_func", "user_data", "shared_data", "_n_dim"} <= fields
    assert callable(ncp._prepare_dims_and_coords)


def test_nutpie_is_imported_without_arviz_plots():
    """import_nutpie leaves matplotlib unimported, gives nutpie what it converts traces with,
    and a later ``import arviz`` still gets the real package."""
    code = (
        "import sys\n"
        "from bayesct.modeling.nutpie_cache import import_nutpie\n"
        "nutpie = import_nutpie()\n"
        "conv = sys.modules['nutpie.sample'].arviz\n"
        "print('matplotlib' in sys.modules, 'arviz' in sys.modules, callable(conv.from_dict),"
        " callable(conv.dict_to_dataset))\n"
        "import arviz\n"
        "print(hasattr(arviz, 'plot_dist'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True", "True"]


_SAME_FIT = """
import hashlib, warnings
import numpy as np
from bayesct.data import simulate_cohort
from bayesct.modeling.fit import JointModel

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    cohort = simulate_cohort(20, seed=2027).cohort
    fit = JointModel("ct_only").fit(cohort, draws=100, tune=100, chains=2, seed=3, cores=2)
    print(hashlib.sha256(np.ascontiguousarray(fit.posterior["re_cov_stds"].values).tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_the_first_fit_of_a_cohort_draws_what_every_later_fit_draws(tmp_path):
    """Two processes fit the same never-seen cohort with the same seed: the first compiles the
    model with every cache empty, the second loads it. Their draws agree bit for bit (with
    PyTensor's fast-math they did not: a fresh and a cached build differed in their last bits)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "fit_once.py"
    script.write_text(_SAME_FIT)
    env = os.environ | {
        "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pytensor'}",
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
    }
    digests = [
        subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True, timeout=600
        ).stdout.split()[-1]
        for _ in range(2)
    ]
    assert (tmp_path / "pytensor" / "bayesct").is_dir()  # the second process could load the record
    assert digests[0] == digests[1]
