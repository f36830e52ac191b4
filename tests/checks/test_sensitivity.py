"""Power-scaling prior sensitivity of the mortality part (bayesct.checks.sensitivity)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesct.checks.sensitivity import _prior_logpdf, mortality_prior_sensitivity, sensitivity_lines
from bayesct.errors import SpecError
from bayesct.modeling.spec import Prior


def test_prior_logpdf_follows_the_spec():
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(
        _prior_logpdf(Prior("g", "Normal", {"mu": 0.5, "sigma": 2.0}), x), stats.norm.logpdf(x, 0.5, 2.0)
    )
    t = Prior("g", "StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 1.5})
    np.testing.assert_allclose(_prior_logpdf(t, x), stats.t.logpdf(x, 3.0, 0.0, 1.5))
    with pytest.raises(SpecError, match="supports Normal and StudentT"):
        _prior_logpdf(Prior("g", "Gamma", {"alpha": 2.0, "beta": 1.0}), x)


def test_a_posterior_that_is_the_prior_is_prior_sensitive(mock_fit):
    """Prior draws relabelled as a posterior: every mortality coefficient is its prior, so
    power-scaling the prior moves it (sensitivity >= 0.05) and the table says so."""
    table = mortality_prior_sensitivity(mock_fit, max_draws=None, risk_cells=((12, 8.0),))
    coefs = [i for i in table.index if i.startswith(("mort_intercept", "mort_beta", "mort_gamma"))]
    assert len(coefs) == 5  # intercept, age, male, value, slope
    assert (table.loc[coefs, "prior"] >= 0.05).all()
    assert table.loc[coefs, "diagnosis"].str.startswith("potential").all()
    assert "P(death | CT 12, day 8)" in table.index
    lines = sensitivity_lines(table)
    assert lines[0].startswith("Prior sensitivity of the mortality part")
    assert any("depends on its prior" in line for line in lines)


def test_models_without_a_joint_mortality_part_are_refused(small_cohort):
    from tests.checks.conftest import _mock_fit

    with pytest.raises(SpecError, match="no joint mortality submodel"):
        mortality_prior_sensitivity(_mock_fit(small_cohort, "descriptive", draws=10))


def test_scaled_priors_scale_only_the_mortality_priors():
    from bayesct.checks.sensitivity import MORTALITY_PRIORS, scaled_priors
    from bayesct.modeling.spec import load_spec

    spec = load_spec("joint")
    wide = scaled_priors(spec, 2.0)
    for name, prior in spec.priors.items():
        got = wide.priors[name].params
        if name in MORTALITY_PRIORS and "sigma" in prior.params:
            assert got["sigma"] == 2.0 * prior.params["sigma"]
            assert {k: v for k, v in got.items() if k != "sigma"} == {
                k: v for k, v in prior.params.items() if k != "sigma"
            }
        else:
            assert got == prior.params
    assert "x2" in wide.name
    with pytest.raises(SpecError, match="positive"):
        scaled_priors(spec, 0.0)


def test_prior_refits_report_how_far_a_prior_driven_posterior_moves(mock_fit, monkeypatch):
    """Refits mocked by prior draws of the scaled spec: the coefficients' intervals scale with
    the priors' SDs, the table and its lines say so and flag the moved quantities."""
    from tests.checks.conftest import _mock_fit

    from bayesct.checks import sensitivity

    def mocked(task):
        fit = _mock_fit(mock_fit.cohort, task.spec, draws=400, seed=4)
        return sensitivity._mortality_summary(fit, task.risk_cells, None, task.seed), True, "mocked"

    monkeypatch.setattr(sensitivity, "refit_scaled", mocked)
    table = sensitivity.prior_refits(mock_fit, factors=(0.5, 2.0), risk_cells=((12, 8.0),), workers=1)
    assert list(dict.fromkeys(table["priors"])) == ["as fitted", "x0.5", "x2"]
    rows = table.set_index(["priors", "quantity"])
    gamma = [q for q in table["quantity"].unique() if q.startswith("mort_gamma")]
    assert gamma and "P(death | CT 12, day 8)" in set(table["quantity"])
    for q in gamma:
        narrow = rows.loc[("x0.5", q), "upper"] - rows.loc[("x0.5", q), "lower"]
        wide = rows.loc[("x2", q), "upper"] - rows.loc[("x2", q), "lower"]
        assert 2.5 < wide / narrow < 6.5  # 4 for the prior itself
    assert (rows.xs("as fitted")["shift"] == 0).all()
    lines = sensitivity.prior_refit_lines(table)
    assert lines[0].startswith("Mortality priors refitted")
    assert any(q in line and "x0.5:" in line and "x2:" in line for q in gamma for line in lines)
    assert any("%" in line for line in lines if line.lstrip().startswith("P(death"))


def test_prior_refits_need_a_mortality_part(mock_fit):
    import dataclasses
    import types

    from bayesct.checks.sensitivity import prior_refits

    no_deaths = types.SimpleNamespace(spec=dataclasses.replace(mock_fit.spec, mortality=False))
    with pytest.raises(SpecError, match="no mortality"):
        prior_refits(no_deaths, workers=1)


@pytest.mark.slow
def test_prior_refits_on_the_engine_equal_refits_in_process(small_cohort):
    """A real scan_logistic fit refitted with wider and narrower priors on a LocalCluster of two
    workers, and in this process: the same numbers, and every refit judged by its gates."""
    import warnings

    from bayesct.checks.sensitivity import prior_refits
    from bayesct.modeling.fit import JointModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = JointModel("scan_logistic").fit(small_cohort, draws=300, tune=300, chains=2, seed=2, cores=1)
    kw = {"factors": (0.25, 4.0), "risk_cells": ((12, 8.0),), "max_draws": 300}
    here = prior_refits(fit, workers=1, **kw)
    there = prior_refits(fit, workers=2, **kw)
    cols = ["median", "lower", "upper", "shift"]
    np.testing.assert_allclose(there[cols].to_numpy(), here[cols].to_numpy(), rtol=1e-12)
    assert list(there["quantity"]) == list(here["quantity"]) and there["passed"].dtype == bool
    # a 16-fold change of the priors' SDs moves the intercept's interval
    rows = here.set_index(["priors", "quantity"])
    assert rows.loc[("x4", "mort_intercept"), "upper"] - rows.loc[("x4", "mort_intercept"), "lower"] > (
        rows.loc[("x0.25", "mort_intercept"), "upper"] - rows.loc[("x0.25", "mort_intercept"), "lower"]
    )
