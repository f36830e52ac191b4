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
