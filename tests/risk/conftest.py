"""Fixtures of the risk tests: hand-set (fake) posteriors and one small real fit per session."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping

import numpy as np
import pytest
import xarray as xr

from bayesct.data.simulate import SimulationParams, simulate_cohort
from bayesct.modeling.diagnostics import Diagnostics
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.spec import load_spec

#: Simulation truth of the coverage checks: the CT score has no patient intercept of its own
#: (the fitted joint model has none: the CT deviation *is* the shared severity). The simulator
#: insists on positive SDs, hence 1e-6 rather than 0.
WELL_SPECIFIED = SimulationParams().replace(tau={"ct_score": 1e-6})


def _dims(name: str, value: np.ndarray, design) -> tuple[str, ...]:
    extra = {
        "spline_coef": ("marker", "basis"),
        "loading": ("marker",),
        "loading_lab": ("lab",),
        "noise_sd": ("lab",),
        "specific_sd": ("lab",),
        "mort_gamma": ("association",),
        "mort_beta": ("covariate",),
        "severity_cov_stds": ("severity_cov_stds_dim_0",),
        "severity_cov_corr": ("severity_cov_corr_dim_0", "severity_cov_corr_dim_1"),
        "severity": ("patient", "effect"),
        "re_cov_stds": ("re_cov_stds_dim_0",),
        "re_cov_corr": ("re_cov_corr_dim_0", "re_cov_corr_dim_1"),
        "re": ("patient", "effect"),
        "patient_effect": ("patient",),
    }.get(name, tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2)))
    return ("chain", "draw", *extra)


def fake_fit(
    spec_name: str,
    draws: Mapping[str, np.ndarray],
    *,
    n_patients: int = 30,
    seed: int = 3,
    passed: bool = True,
) -> FitResult:
    """A FitResult whose posterior is the hand-set ``draws`` (arrays with a leading draw axis)."""
    spec = load_spec(spec_name)
    markers = None if spec.markers is None else list(spec.markers)
    cohort = simulate_cohort(n_patients, seed=seed, markers=markers).cohort
    result = FitResult(
        xr.DataTree(), spec, cohort, Diagnostics(1.0, 1e4, 1e4, 0, 1.0, passed, "fake", 1, 1, 0.0)
    )
    design = result.design
    data = {}
    for name, value in draws.items():
        v = np.asarray(value, float)[None, ...]
        dims = _dims(name, v, design)
        if spec.family == "scan_logistic" and name == "mort_beta":
            dims = ("chain", "draw", "term")
        data[name] = (dims, v)
    coords = {k: v for k, v in design.coords().items()}
    coords["effect"] = ["intercept", "slope"] if spec.structure == "factor" else None
    coords = {k: v for k, v in coords.items() if v is not None}
    if "association" in spec.raw.get("mortality", {}) or spec.mortality:
        coords["association"] = list(spec.association)
    post = xr.Dataset(data)
    post = post.assign_coords({k: v for k, v in coords.items() if k in post.dims})
    result.tree = xr.DataTree.from_dict({"posterior": post})
    return result


def joint_draws(S: int, design, *, rng: np.random.Generator | None = None, n_patients: int | None = None):
    """Plausible hand-set draws of the joint (factor) model, varying a little between draws."""
    rng = rng or np.random.default_rng(0)
    K = len(design.markers)
    L = K - 1
    B = 8
    corr = np.empty((S, 2, 2))
    rho = rng.uniform(0.5, 0.8, S)
    corr[:, 0, 0] = corr[:, 1, 1] = 1.0
    corr[:, 0, 1] = corr[:, 1, 0] = rho
    loading = np.c_[np.ones(S), rng.normal(0.4, 0.2, (S, L))]
    out = {
        "spline_coef": rng.normal(0.0, 0.3, (S, K, B)) + np.linspace(-0.5, 0.8, B),
        "loading": loading,
        "noise_sd": rng.uniform(0.4, 0.8, (S, L)),
        "specific_sd": rng.uniform(0.1, 0.4, (S, L)),
        "ct_phi": rng.uniform(30, 70, S),
        "severity_cov_stds": np.c_[rng.uniform(1.0, 1.5, S), rng.uniform(0.8, 1.3, S)],
        "severity_cov_corr": corr,
        "mort_intercept": rng.normal(-2.5, 0.3, S),
        "mort_gamma": np.c_[rng.normal(0.5, 0.2, S), rng.normal(2.0, 0.3, S)],
        "mort_beta": np.c_[rng.normal(2.0, 0.2, S), rng.normal(1.0, 0.2, S)],
    }
    if design.spec.severity_law == "sinh_arcsinh":
        out["severity_skew"] = rng.normal(0.3, 0.1, S)
    n = n_patients or design.n_patients
    out["severity"] = rng.normal(0.0, 1.0, (S, n, 2))
    return out


@pytest.fixture(scope="session")
def joint_fake() -> FitResult:
    """A fake fit of the joint model with a normal severity law, 4 hand-set draws (exactness tests)."""
    spec_fit = fake_fit("joint_normal", {}, n_patients=30)
    draws = joint_draws(4, spec_fit.design)
    return fake_fit("joint_normal", draws, n_patients=30)


@pytest.fixture(scope="session")
def joint_skew_fake() -> FitResult:
    """A fake fit of the default joint model (skewed severity level), 4 draws, strongly skewed."""
    spec_fit = fake_fit("joint", {}, n_patients=30)
    draws = joint_draws(4, spec_fit.design)
    draws["severity_skew"] = np.array([0.8, 0.4, 1.1, -0.5])
    return fake_fit("joint", draws, n_patients=30)


@pytest.fixture(scope="session")
def scan_logistic_fake() -> FitResult:
    """A fake fit of the shipped scan_logistic model (no patient intercept), 50 draws."""
    rng = np.random.default_rng(5)
    S = 50
    draws = {
        "mort_intercept": rng.normal(-1.5, 0.3, S),
        "mort_beta": np.c_[rng.normal(1.2, 0.2, S), rng.normal(-0.5, 0.2, S)],
    }
    return fake_fit("scan_logistic", draws, n_patients=20)


@pytest.fixture(scope="session")
def scan_logistic_intercept_fake() -> FitResult:
    """A fake fit of a per-scan model with a patient random intercept (``patient_sd``), as fits
    saved with such a spec hold: still readable."""
    rng = np.random.default_rng(5)
    S = 50
    base = fake_fit("scan_logistic", {}, n_patients=20)
    n = base.design.n_patients
    draws = {
        "mort_intercept": rng.normal(-1.5, 0.3, S),
        "mort_beta": np.c_[rng.normal(1.2, 0.2, S), rng.normal(-0.5, 0.2, S)],
        "patient_sd": rng.uniform(0.5, 2.5, S),
        "patient_effect": rng.normal(0.0, 1.0, (S, n)),
    }
    return fake_fit("scan_logistic", draws, n_patients=20)


@pytest.fixture(scope="session")
def descriptive_fake() -> FitResult:
    return fake_fit("descriptive", {}, n_patients=20)


@pytest.fixture(scope="session")
def sim_joint_fit() -> tuple[FitResult, SimulationParams]:
    """The joint family fitted (small) to a simulated cohort with known truth, once per session.

    CT score plus two labs keep the fit short; the single-scan risk does not involve the labs.
    """
    sim = simulate_cohort(200, seed=11, params=WELL_SPECIFIED, markers=["ct_score", "nlr", "ldh"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = JointModel("joint").fit(sim.cohort, draws=300, tune=300, chains=2, seed=1)
    return result, WELL_SPECIFIED


@pytest.fixture
def risk_cli_args():
    """Build the ``argparse.Namespace`` that ``bayesct risk`` hands to ``bayesct.cli.cmd_risk``."""

    def _args(fit, **kw):
        base = dict(
            fit_dir=fit,
            ct_score=None,
            day=None,
            age=None,
            sex=None,
            history=None,
            json=False,
            grid=False,
            days=None,
            out=None,
            seed=0,
            draws=1000,
        )
        base.update(kw)
        return argparse.Namespace(**base)

    return _args
