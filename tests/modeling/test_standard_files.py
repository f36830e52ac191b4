"""A saved fit is a standard ArviZ file: xarray opens it, ArviZ summarises and plots it after load.

Mocked tier: prior draws relabelled as a posterior of two chains, saved with the
``log_likelihood`` group that ``bayesct fit`` adds. One small real fit (marked slow) for what
needs the sampler's statistics (the energy plot).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import arviz as az
import arviz_plots as azp
import matplotlib
import numpy as np
import pytest
import xarray as xr
from tests.checks.conftest import _mock_fit

from bayesct.checks.calibration import LOG_LIKELIHOOD_VAR, patient_log_likelihood
from bayesct.data import simulate_cohort
from bayesct.modeling.fit import FitResult, decode_attrs, encode_attrs

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def saved_mock(tmp_path_factory: pytest.TempPathFactory) -> tuple[FitResult, Path]:
    cohort = simulate_cohort(25, seed=5).cohort
    fit = _mock_fit(cohort, "joint", draws=80, seed=2)
    post = fit.posterior
    # Two chains of 40 draws, as a sampler gives them.
    split = post.isel(chain=0, drop=True).coarsen(draw=40).construct(draw=("chain", "draw"))
    split = split.assign_coords(chain=[0, 1], draw=np.arange(40)).transpose("chain", "draw", ...)
    split.attrs = dict(post.attrs) | {"settings": {"a": 1}, "flag": True, "one": ["x"]}
    fit.tree = xr.DataTree.from_dict({"posterior": split})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = patient_log_likelihood(fit)
    assert group is not None
    fit.add_group("log_likelihood", group)
    out = tmp_path_factory.mktemp("standard") / "fit"
    fit.save(out)
    return FitResult.load(out), out


def test_posterior_nc_opens_with_xarray(saved_mock: tuple[FitResult, Path]) -> None:
    _, out = saved_mock
    with xr.open_datatree(out / "posterior.nc") as tree:
        assert {"posterior", "observed_data", "log_likelihood"} <= set(tree.children)
        assert list(tree["posterior"].attrs["sample_dims"]) == ["chain", "draw"]
        obs = tree["observed_data"]
        assert {"ct_obs", "lab_obs", "died_obs"} <= set(obs.data_vars)
        assert obs["ct_obs"].dims == ("ct_scan",) and "ct_scan_patient" in obs.coords
        assert obs["died_obs"].dims == ("patient",)
        ll = tree["log_likelihood"][LOG_LIKELIHOOD_VAR]
        assert ll.dims == ("chain", "draw", "patient")
        assert "integrated" in tree["log_likelihood"].attrs["conditioning"]


def test_observed_data_is_what_the_model_saw(saved_mock: tuple[FitResult, Path]) -> None:
    fit, _ = saved_mock
    obs = fit.tree["observed_data"]
    cohort = fit.cohort
    assert int(obs["died_obs"].sum()) == cohort.n_deaths
    assert obs.sizes["ct_scan"] == cohort.n_scans
    # Labs in the data's units: the visits' values, in the same multiset.
    lab = str(obs["lab_value_lab"].values[0])
    mine = np.sort(obs["lab_obs"].values[obs["lab_value_lab"].values == lab])
    theirs = np.sort(cohort.visits[lab].dropna().to_numpy(float))
    np.testing.assert_allclose(mine, theirs, rtol=1e-8)


def test_attributes_round_trip() -> None:
    attrs = {"sample_dims": ["chain", "draw"], "settings": {"a": 1}, "flag": True, "one": ["x"], "n": 3}
    enc = encode_attrs(attrs)
    assert enc["sample_dims"] == ["chain", "draw"] and isinstance(enc["settings"], str)
    assert decode_attrs(enc) == attrs
    # Older fits stored every attribute as its repr.
    assert decode_attrs({"sample_dims": "['chain', 'draw']"})["sample_dims"] == ["chain", "draw"]


def test_loaded_fit_restores_attributes(saved_mock: tuple[FitResult, Path]) -> None:
    fit, _ = saved_mock
    attrs = fit.tree["posterior"].attrs
    assert attrs["sample_dims"] == ["chain", "draw"]
    assert attrs["settings"] == {"a": 1} and attrs["flag"] is True and attrs["one"] == ["x"]


@pytest.mark.parametrize("opener", ["load", "xarray"])
def test_arviz_works_on_the_saved_tree(saved_mock: tuple[FitResult, Path], opener: str) -> None:
    fit, out = saved_mock
    tree = fit.tree if opener == "load" else xr.open_datatree(out / "posterior.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(tree, var_names=["mort_beta", "mort_assoc_sd"])
        assert len(summary) == 3
        loo = az.loo(tree)
        assert np.isfinite(loo.elpd) and loo.n_data_points == fit.cohort.n_patients
        azp.plot_forest(tree, var_names=["mort_beta"])
        azp.plot_trace_dist(tree, var_names=["mort_beta"])
        azp.plot_rank(tree, var_names=["mort_beta"])


def test_log_likelihood_thinned_per_chain(saved_mock: tuple[FitResult, Path]) -> None:
    fit, _ = saved_mock
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = patient_log_likelihood(fit, max_draws=20)
    assert group is not None
    assert group.sizes["chain"] == 2 and group.sizes["chain"] * group.sizes["draw"] <= 20
    assert group.attrs["thinned_every"] == 4
    np.testing.assert_array_equal(group["draw"].values, fit.posterior["draw"].values[::4])
    assert np.isfinite(group[LOG_LIKELIHOOD_VAR].values).all()


def test_per_scan_model_has_no_integrated_loglik() -> None:
    cohort = simulate_cohort(15, seed=2).cohort
    fit = _mock_fit(cohort, "scan_logistic", draws=10)
    assert patient_log_likelihood(fit) is None


@pytest.mark.slow
def test_real_fit_energy_plot(tmp_path: Path) -> None:
    from bayesct.modeling.fit import JointModel

    # the per-scan model on the 40-patient cohort other real fits of the suite use: its compiled
    # model is in the cache by then, so this fit costs its sampling alone
    cohort = simulate_cohort(40, seed=7).cohort
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = JointModel("scan_logistic").fit(cohort, draws=60, tune=60, chains=2, seed=1, cores=2)
        fit.save(tmp_path / "fit")
        tree = xr.open_datatree(tmp_path / "fit" / "posterior.nc")
        assert "energy" in tree["sample_stats"]
        azp.plot_energy(tree)
        azp.plot_rank(tree, var_names=["mort_beta"])
        az.summary(tree, var_names=["mort_beta"])
