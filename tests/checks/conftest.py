"""Fixtures of the posterior predictive checks.

Two tiers:

* **mocked sampling** — a :class:`FitResult` whose "posterior" is prior draws of the model on a small
  simulated cohort (``pm.sample_prior_predictive`` relabelled as a posterior with a chain dim): fast,
  exercises replication, statistics, reporting and figures without MCMC;
* **a small real fit** — 2 chains x 200 draws of the joint model on a 40-patient simulated cohort,
  saved to a folder, for the ``check`` command end to end (session-scoped, ~20-30 s).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pymc as pm
import pytest
import xarray as xr

from bayesct.data import Cohort, simulate_cohort
from bayesct.modeling.diagnostics import Diagnostics
from bayesct.modeling.fit import FitResult, JointModel

SMALL_SEED = 11


def _mock_fit(cohort: Cohort, spec: str, *, draws: int = 120, seed: int = 1) -> FitResult:
    model = JointModel(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with model.build(cohort):
            prior = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    ds = prior["prior"].to_dataset()
    if "chain" not in ds.dims:
        ds = ds.expand_dims(chain=[0])
    tree = xr.DataTree.from_dict({"posterior": ds})
    diag = Diagnostics(
        rhat_max=1.0,
        ess_bulk_min=1000.0,
        ess_tail_min=1000.0,
        divergences=0,
        bfmi_min=1.0,
        passed=True,
        sampler="prior (mock)",
        draws=draws,
        chains=1,
        wall_seconds=0.0,
    )
    return FitResult(tree, model.spec, cohort, diag, settings={"mock": "prior draws"})


@pytest.fixture(scope="session")
def small_cohort() -> Cohort:
    return simulate_cohort(40, seed=SMALL_SEED).cohort


@pytest.fixture(scope="session")
def mock_fit(small_cohort: Cohort) -> FitResult:
    """Joint model, prior draws relabelled as a posterior (mocked sampling)."""
    return _mock_fit(small_cohort, "joint")


@pytest.fixture(scope="session")
def mock_ct_only(small_cohort: Cohort) -> FitResult:
    return _mock_fit(small_cohort, "ct_only")


@pytest.fixture(scope="session")
def real_fit_dir(tmp_path_factory: pytest.TempPathFactory, small_cohort: Cohort) -> Path:
    """A small real fit (joint, nutpie, 2 chains x 200 draws) saved to a fit folder."""
    out = tmp_path_factory.mktemp("fit_small_joint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = JointModel("joint").fit(small_cohort, draws=200, tune=150, chains=2, seed=3, cores=2)
    result.save(out)
    return out
