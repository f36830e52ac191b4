"""Mortality coefficients as odds ratios in user units; gate failures named as the summary names them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from tests.checks.conftest import _mock_fit

from bayesct.data import simulate_cohort
from bayesct.modeling.diagnostics import compute_diagnostics, posterior_summary
from bayesct.modeling.fit import FitResult
from bayesct.report.format import odds_ratio_lines


@pytest.fixture(scope="module")
def mock() -> FitResult:
    return _mock_fit(simulate_cohort(25, seed=3).cohort, "joint", draws=60)


def test_odds_ratios_in_user_units(mock: FitResult) -> None:
    table = mock.odds_ratios().set_index("parameter")
    beta = mock.posterior["mort_beta"]
    age = np.exp(beta.sel(covariate="age").values.ravel() * 10.0 / 15.0)  # spec: age scale 15 years
    np.testing.assert_allclose(table.loc["mort_beta[age]", "median"], np.quantile(age, 0.5))
    male = np.exp(beta.sel(covariate="male").values.ravel())
    np.testing.assert_allclose(table.loc["mort_beta[male]", "median"], np.quantile(male, 0.5))
    sd = np.exp(mock.posterior["mort_assoc_sd"].values.ravel())
    np.testing.assert_allclose(table.loc["mort_assoc_sd", "lo"], np.quantile(sd, 0.025))
    assert table.loc["mort_beta[age]", "unit"] == "per 10 years of age"
    assert "(age - 55) / 15" in table.loc["mort_beta[age]", "scaling"]
    assert "[mortality.scaling]" in table.loc["mort_beta[age]", "scaling"]


def test_summary_rows_carry_the_odds_ratio(mock: FitResult) -> None:
    summ = mock.summary(["mort_beta", "mort_intercept"]).set_index("parameter")
    assert summ.loc["mort_beta[age]", "or_unit"] == "per 10 years of age"
    assert summ.loc["mort_beta[male]", "or_unit"] == "male against female"
    assert np.isnan(summ.loc["mort_intercept", "or_median"])


def test_printed_odds_ratios_state_the_scaling(mock: FitResult) -> None:
    text = "\n".join(odds_ratio_lines(mock.odds_ratios()))
    assert "age, per 10 years" in text and "male vs female" in text and "per SD" in text
    assert "(age - 55) / 15" in text and "median [95% CrI]" in text


def _posterior_with_bad(name: str, extra_dims: dict[str, list]) -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (2, 200, *(len(v) for v in extra_dims.values()))
    x = rng.normal(size=shape)
    x[1, ..., *([0] * len(extra_dims))] += 5.0  # one chain elsewhere on one scalar
    dims = ("chain", "draw", *extra_dims)
    good = rng.normal(size=(2, 200))
    return xr.Dataset(
        {name: (dims, x), "mort_intercept": (("chain", "draw"), good)},
        coords={"chain": [0, 1], "draw": np.arange(200), **extra_dims},
    )


def test_gate_names_the_worst_scalar_as_the_summary_does() -> None:
    post = _posterior_with_bad("severity_dev", {"effect": ["intercept", "slope"], "patient": ["a", "b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = compute_diagnostics(post, None, sampler="mock", wall_seconds=0.0)
    msg = next(f for f in diag.failures if f.startswith("R-hat"))
    assert "severity_dev[intercept, a]" in msg
    assert diag.worst["rhat"] in set(posterior_summary(post)["parameter"])


def test_gate_on_a_packed_cholesky_names_the_summarised_parameters() -> None:
    post = _posterior_with_bad("severity_cov", {"severity_cov_dim_0": [0, 1, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = compute_diagnostics(post, None, sampler="mock", wall_seconds=0.0)
    msg = next(f for f in diag.failures if f.startswith("R-hat"))
    assert "severity_sd, severity_rho (stored as severity_cov[0])" in msg
    from bayesct.cli import _headline_vars

    class Fake:
        posterior = xr.Dataset({"severity_sd": 0.0, "severity_rho": 0.0})

    assert {"severity_sd", "severity_rho"} <= set(_headline_vars(Fake()))
