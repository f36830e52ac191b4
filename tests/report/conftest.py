"""Fixtures of the report tests: mocked fits (prior draws used as a posterior), no MCMC.

As in ``tests/checks/conftest.py``, the "posterior" is ``pm.sample_prior_predictive`` of the
model on a small simulated cohort, here split into two chains so that rank plots and R-hat have
chains to compare. A mocked check (:func:`bayesct.checks.ppc.posterior_predictive_check` on the
mocked fit, few replicates, no mixed models) and a risk grid on the paper's periods come with it.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

from bayesct.constants import PATIENT
from bayesct.data import Cohort, simulate_cohort
from bayesct.data.validate import build_cohort
from bayesct.modeling.diagnostics import Diagnostics
from bayesct.modeling.fit import FitResult, JointModel

SMALL_SEED = 11

#: A patient id that is markup: the page must print it as text.
EVIL_ID = "<script>alert(1)</script>"


def mock_fit(cohort: Cohort, spec: str = "joint", *, draws: int = 120, seed: int = 1) -> FitResult:
    """Prior draws of ``spec`` on ``cohort`` relabelled as a 2-chain posterior, gates passed."""
    model = JointModel(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with model.build(cohort):
            prior = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    ds = prior["prior"].to_dataset()
    if "chain" in ds.dims:
        ds = ds.isel(chain=0, drop=True)
    half = ds.sizes["draw"] // 2
    halves = [
        ds.isel(draw=slice(i * half, (i + 1) * half)).assign_coords(draw=np.arange(half)) for i in (0, 1)
    ]
    ds = xr.concat(halves, dim="chain").assign_coords(chain=[0, 1]).transpose("chain", "draw", ...)
    tree = xr.DataTree.from_dict({"posterior": ds})
    diag = Diagnostics(
        rhat_max=1.0,
        ess_bulk_min=1000.0,
        ess_tail_min=1000.0,
        divergences=0,
        bfmi_min=1.0,
        passed=True,
        sampler="prior (mock)",
        draws=half,
        chains=2,
        wall_seconds=0.0,
        worst={"rhat": "", "ess_bulk": "", "ess_tail": ""},
    )
    settings = {"sampler": "prior (mock)", "seed": seed, "chains": 2, "draws": half, "tune": 0}
    return FitResult(tree, model.spec, cohort, diag, settings=settings)


def failed(fit: FitResult) -> FitResult:
    """The same fit with its R-hat gate failed."""
    diag = dataclasses.replace(
        fit.diagnostics,
        rhat_max=1.2,
        passed=False,
        failures=["R-hat 1.200 > 1.01 (worst: severity_rho): chains disagree; run longer."],
    )
    return dataclasses.replace(fit, diagnostics=diag)


@pytest.fixture(scope="session")
def small_cohort() -> Cohort:
    return simulate_cohort(40, seed=SMALL_SEED).cohort


@pytest.fixture(scope="session")
def report_fit(small_cohort: Cohort) -> FitResult:
    """The joint model on 40 simulated patients, prior draws as a posterior."""
    return mock_fit(small_cohort)


@pytest.fixture(scope="session")
def report_check(report_fit: FitResult):
    """A posterior predictive check of the mocked fit: 20 replicates, no mixed models."""
    from bayesct.checks.ppc import posterior_predictive_check

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return posterior_predictive_check(
            report_fit, replicates=20, mixed_replicates=0, seed=2, check_draws=60
        )


@pytest.fixture(scope="session")
def report_grid(report_fit: FitResult) -> pd.DataFrame:
    """The Table 3 grid of the mocked fit by period, for a woman of 60."""
    from bayesct.risk import risk_grid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return risk_grid(report_fit, periods=True, age=60, sex="female", max_draws=60)


@pytest.fixture(scope="session")
def evil_fit(small_cohort: Cohort) -> FitResult:
    """A mocked fit of a cohort one of whose patient ids is ``<script>alert(1)</script>``.

    That patient's severity draws are made a slow random walk, so that they are the
    slowest-mixing scalars the page names.
    """
    frame = small_cohort.to_frame()
    first = frame[PATIENT].iloc[0]
    frame[PATIENT] = frame[PATIENT].replace({first: EVIL_ID})
    cohort = build_cohort(frame, source="evil.csv")
    fit = mock_fit(cohort, draws=80)
    post = fit.posterior
    sev = post["severity"].copy()
    walk = np.cumsum(
        np.random.default_rng(0).normal(0.0, 0.05, (sev.sizes["chain"], sev.sizes["draw"], 2)), axis=1
    )
    sev.loc[{"patient": EVIL_ID}] = walk
    tree = xr.DataTree.from_dict({"posterior": post.assign(severity=sev)})
    return dataclasses.replace(fit, tree=tree)
