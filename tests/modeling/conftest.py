"""Fixtures of the modeling tests: small simulated cohorts and one small real fit per session."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesct.data import SimulationParams, build_cohort, simulate_cohort
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


def crp_frame(cohort: Cohort, *, seed: int = 0) -> pd.DataFrame:
    """The cohort's long table with a ``crp`` column (mg/L) at every scan: exp(linear in the CT
    score + noise), a lab beyond the built-in ones for ``--lab crp:log``."""
    frame = cohort.to_frame()
    ct = frame["ct_score"].to_numpy(dtype=float)
    noise = np.random.default_rng(seed).normal(0.0, 0.4, len(frame))
    frame["crp"] = np.round(np.exp(1.0 + 0.15 * ct + noise), 2)
    return frame


@pytest.fixture(scope="session")
def crp_cohort(small_cohort: Cohort) -> Cohort:
    """:func:`small_cohort` with a declared lab ``crp`` (log scale, up with severity)."""
    return build_cohort(crp_frame(small_cohort), source="crp.csv", labs=["crp:log"])
