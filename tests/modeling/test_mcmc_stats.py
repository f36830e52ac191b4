"""The vectorised R-hat and ESS equal ArviZ's per-parameter estimators."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import xarray as xr
from arviz_stats.base import array_stats

from bayesct.modeling import mcmc_stats
from bayesct.modeling.diagnostics import compute_diagnostics


def _ar1(rng, phi, chains, draws, shift=None):
    x = np.zeros((chains, draws))
    e = rng.normal(size=(chains, draws))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x if shift is None else x + np.asarray(shift)[:, None]


@pytest.fixture(scope="module")
def chains() -> np.ndarray:
    """Parameters that exercise every branch: iid, sticky, anti-correlated, stuck chain, ties, constant, NaN."""
    rng = np.random.default_rng(1)
    c, d = 4, 1001  # odd: split chains drop the middle draw
    arrays = [
        rng.normal(size=(c, d)),
        _ar1(rng, 0.9, c, d),
        _ar1(rng, 0.999, c, d),  # long autocorrelation: Geyer's sequences run far
        _ar1(rng, -0.7, c, d),  # negative lag-1 autocorrelation: ESS above the draw count
        _ar1(rng, 0.3, c, d, shift=[0, 0, 3, 0]),  # one chain elsewhere
        rng.integers(0, 3, size=(c, d)).astype(float),  # heavy ties
        rng.exponential(size=(c, d)) ** 3,  # skewed
        np.ones((c, d)),  # constant (a correlation's diagonal)
    ]
    with_nan = rng.normal(size=(c, d))
    with_nan[1, 5] = np.nan
    arrays.append(with_nan)
    return np.stack(arrays)


def _arviz(func, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([func(a) for a in x])


def test_rhat_equals_arviz(chains):
    expected = _arviz(lambda a: array_stats.rhat(a), chains)
    np.testing.assert_allclose(mcmc_stats.rhat(chains), expected, rtol=1e-10, equal_nan=True)


def test_bulk_ess_equals_arviz(chains):
    expected = _arviz(lambda a: array_stats.ess(a, method="bulk"), chains)
    np.testing.assert_allclose(mcmc_stats.ess_bulk(chains), expected, rtol=1e-10, equal_nan=True)


def test_tail_ess_equals_arviz_at_the_5_and_95_percent_quantiles(chains):
    expected = _arviz(lambda a: array_stats.ess(a, method="tail", prob=(0.05, 0.95)), chains)
    np.testing.assert_allclose(mcmc_stats.ess_tail(chains), expected, rtol=1e-10, equal_nan=True)


def test_diagnose_shares_the_ranking_without_changing_the_numbers(chains):
    out = mcmc_stats.diagnose(chains)
    np.testing.assert_array_equal(out["rhat"], mcmc_stats.rhat(chains))
    np.testing.assert_array_equal(out["ess_bulk"], mcmc_stats.ess_bulk(chains))
    np.testing.assert_array_equal(out["ess_tail"], mcmc_stats.ess_tail(chains))


def test_diagnose_in_chunks_gives_the_same_numbers(chains, monkeypatch):
    whole = mcmc_stats.diagnose(chains)
    # Two parameters at a time: 9 parameters in five chunks, the last one short.
    monkeypatch.setattr(mcmc_stats, "CHUNK_VALUES", 2 * chains.shape[1] * chains.shape[2])
    batched = mcmc_stats.diagnose(chains.reshape(3, 3, *chains.shape[1:]))
    for key in ("rhat", "ess_bulk", "ess_tail"):
        assert batched[key].shape == (3, 3)
        np.testing.assert_array_equal(batched[key].ravel(), whole[key])


def test_average_ranks_equal_scipy_with_ties():
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    x = rng.integers(0, 20, size=(5, 300)).astype(float)
    np.testing.assert_array_equal(mcmc_stats.average_ranks(x), rankdata(x, method="average", axis=-1))


def test_a_sticky_chain_is_caught(chains):
    """The statistics can fail: a chain stuck elsewhere gives R-hat far above the gate."""
    assert mcmc_stats.rhat(chains[4]) > 1.1
    assert mcmc_stats.rhat(chains[0]) < 1.01


def test_dataset_diagnostics_keep_dims_and_coords(chains):
    rng = np.random.default_rng(0)
    post = xr.Dataset(
        {
            "a": (("chain", "draw"), rng.normal(size=(4, 500))),
            "b": (("chain", "draw", "patient"), rng.normal(size=(4, 500, 3))),
        },
        coords={"patient": ["p1", "p2", "p3"]},
    )
    out = mcmc_stats.diagnose_dataset(post)
    assert out["ess_bulk"]["b"].dims == ("patient",)
    assert list(out["rhat"]["b"]["patient"].values) == ["p1", "p2", "p3"]
    np.testing.assert_allclose(
        out["ess_bulk"]["b"].values,
        [array_stats.ess(post["b"].values[..., j], method="bulk") for j in range(3)],
        rtol=1e-10,
    )
    diag = compute_diagnostics(post, None, sampler="test", wall_seconds=0.0)
    assert diag.ess_bulk_min == pytest.approx(min(float(out["ess_bulk"][v].min()) for v in ("a", "b")))


def _chains(rng, centres, sd=1.0, draws=500):
    return np.stack([rng.normal(c, sd, size=draws) for c in centres])


def test_rhat_failure_names_the_chain_in_another_mode():
    rng = np.random.default_rng(5)
    intercept = _chains(rng, [1.2, 1.2, 0.2, 1.2], sd=0.05)  # chain 3 elsewhere
    slope = _chains(rng, [0.9, 0.9, 0.9, 0.9], sd=0.05)
    post = xr.Dataset(
        {"severity_sd": (("chain", "draw", "effect"), np.stack([intercept, slope], axis=-1))},
        coords={"effect": ["intercept", "slope"]},
    )
    diag = compute_diagnostics(post, None, sampler="test", wall_seconds=0.0)
    rhat_msg = next(f for f in diag.failures if f.startswith("R-hat"))
    assert "chain 3 of 4 sits apart from the others on severity_sd[intercept]" in rhat_msg
    medians = re.search(r"median ([\d.]+) against ([\d.]+)\)", rhat_msg)
    assert medians and float(medians[1]) == pytest.approx(0.2, abs=0.01)
    assert float(medians[2]) == pytest.approx(1.2, abs=0.01)
    assert "another mode" in rhat_msg and "--seed" in rhat_msg


def test_rhat_failure_without_a_lone_chain_gives_the_general_advice():
    rng = np.random.default_rng(6)
    # two chains against two: no single chain stands apart
    post = xr.Dataset({"a": (("chain", "draw"), _chains(rng, [0.0, 0.0, 0.4, 0.4], sd=0.1, draws=400))})
    diag = compute_diagnostics(post, None, sampler="test", wall_seconds=0.0)
    rhat_msg = next(f for f in diag.failures if f.startswith("R-hat"))
    assert "apart" not in rhat_msg and "run longer" in rhat_msg
