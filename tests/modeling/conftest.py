"""Fixtures of the modeling tests: small simulated cohorts and one small real fit per session."""

from __future__ import annotations

import warnings

import pytest

from bayesct.data import SimulationParams, simulate_cohort
from bayesct.data.cohort import Cohort


@pytest.fixture(scope="session")
def small_cohort() -> Cohort:
    """40 simulated patients, every marker."""
    return simulate_cohort(40, seed=7).cohort


@pytest.fixture(scope="session")
def small_fit(small_cohort):
    """A short real fit of the joint spec (2 chains x 150 draws): for plumbing, not for inference."""
    from bayesct.modeling.fit import JointModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return JointModel("joint").fit(small_cohort, draws=150, tune=200, chains=2, seed=3)


@pytest.fixture(scope="session")
def matched_params() -> SimulationParams:
    """The simulator's defaults with no CT-specific patient intercept: the joint model's own structure."""
    return SimulationParams().replace(tau={"ct_score": 0.0})
