"""The mortality submodel's combined association effect ``mort_assoc_sd``: a derived quantity, no sampling."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from bayesct.cli import main
from bayesct.data import write_cohort
from bayesct.modeling.builders import build_model
from bayesct.modeling.design import build_design
from bayesct.modeling.diagnostics import Diagnostics, gate_variables
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.spec import ModelSpec, load_spec
from bayesct.report.format import fmt_estimate
from bayesct.report.markdown import write_report

JOINT_FULL = Path(__file__).resolve().parents[2] / "benchmarks" / "specs" / "joint_full.toml"


def _spec(name: str) -> ModelSpec:
    if name == "joint_full":
        return load_spec(JOINT_FULL)
    if name == "ct_only_no_slope":  # one effect: no LKJ, a diagonal covariance
        return dataclasses.replace(load_spec("ct_only"), slopes=())
    return load_spec(name)


def _evaluate(model, point: dict) -> dict[str, np.ndarray]:
    """Sigma (from the SDs and correlations), gamma and mort_assoc_sd at ``point``."""
    if "severity_cov_stds" in model.named_vars:
        names = ["severity_cov_stds", "severity_cov_corr"]
    elif "re_cov_stds" in model.named_vars:
        names = ["re_cov_stds", "re_cov_corr"]
    else:
        names = ["re_sd"]
    names += ["mort_gamma", "mort_assoc_sd"]
    outs = model.replace_rvs_by_values([model[n] for n in names])  # functions of the point, not draws
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    out = dict(zip(names, (np.asarray(v) for v in fn(point)), strict=True))
    sd = out[names[0]]
    corr = out[names[1]] if len(names) == 4 else np.eye(1)
    return {
        "Sigma": sd[:, None] * corr * sd[None, :],
        "gamma": out["mort_gamma"],
        "assoc": out["mort_assoc_sd"],
    }


def _numpy_assoc(model, spec: ModelSpec, Sigma: np.ndarray, gamma: np.ndarray) -> float:
    """sign(w' Sigma m) sqrt(w' Sigma w), w = M gamma, written out from the coords."""
    effects = list(model.coords["effect"])
    E = len(effects)
    slope = [j for j, e in enumerate(effects) if e in ("slope", "ct_score:slope")]
    g_ref = (spec.reference_day - spec.time_centre) / spec.time_scale
    e_slope = np.eye(E)[slope[0]] if slope else np.zeros(E)
    m = np.eye(E)[0] + g_ref * e_slope  # the latent CT value at the reference day
    cols = []
    for a in spec.association:
        cols += list(np.eye(E)) if a == "shared" else [m if a == "value" else e_slope]
    M = np.stack(cols, axis=1)
    assert M.shape == (E, len(model.coords["association"]))
    w = M @ gamma
    return float(np.sign(w @ Sigma @ m) * np.sqrt(w @ Sigma @ w))


def _random_point(model, rng: np.random.Generator, **fixed) -> dict:
    point = {k: rng.normal(0.0, 0.7, size=np.shape(v)) for k, v in model.initial_point().items()}
    return point | {k: np.asarray(v, dtype=float) for k, v in fixed.items()}


@pytest.mark.parametrize("name", ["joint", "ct_only", "joint_full", "ct_only_no_slope"])
def test_mort_assoc_sd_is_the_signed_sd_of_the_trajectory_term(name, small_cohort, rng):
    spec = _spec(name)
    model = build_model(build_design(small_cohort, spec))
    assert model.named_vars_to_dims.get("mort_assoc_sd") in (None, ())
    assert model["mort_assoc_sd"] in model.deterministics  # derived: not in the log-density
    assert "mort_assoc_sd" not in {rv.name for rv in model.free_RVs}
    for _ in range(5):
        ev = _evaluate(model, _random_point(model, rng))
        assert ev["assoc"].shape == ()
        expected = _numpy_assoc(model, spec, ev["Sigma"], ev["gamma"])
        np.testing.assert_allclose(ev["assoc"], expected, rtol=1e-8)


@pytest.mark.parametrize("name", ["joint", "ct_only"])
def test_mort_assoc_sd_is_invariant_to_the_value_slope_split(name, small_cohort, rng):
    """Moving the reference day and moving gamma's slope accordingly gives the same effect (gamma does not)."""
    spec = _spec(name)
    spec2 = dataclasses.replace(spec, reference_day=6.0)
    g1 = (spec.reference_day - spec.time_centre) / spec.time_scale
    g2 = (spec2.reference_day - spec2.time_centre) / spec2.time_scale
    m1 = build_model(build_design(small_cohort, spec))
    m2 = build_model(build_design(small_cohort, spec2))
    gamma1 = np.array([1.2, 0.4])  # r = gv (u0 + u1 g1) + gs u1 = gv (u0 + u1 g2) + (gs + gv (g1 - g2)) u1
    gamma2 = np.array([gamma1[0], gamma1[1] + gamma1[0] * (g1 - g2)])
    agree = 0
    for _ in range(5):
        point = _random_point(m1, rng)
        ev1 = _evaluate(m1, point | {"mort_gamma": gamma1})
        ev2 = _evaluate(m2, point | {"mort_gamma": gamma2})
        np.testing.assert_allclose(ev1["Sigma"], ev2["Sigma"])
        # the sign follows the CT value at the reference day, which moves with it: same where both agree
        s1 = np.sign(_numpy_assoc(m1, spec, ev1["Sigma"], gamma1))
        s2 = np.sign(_numpy_assoc(m2, spec2, ev2["Sigma"], gamma2))
        if s1 == s2:
            np.testing.assert_allclose(ev1["assoc"], ev2["assoc"], rtol=1e-8)
            agree += 1
        assert not np.allclose(ev1["gamma"], ev2["gamma"])
        np.testing.assert_allclose(abs(ev1["assoc"]), abs(ev2["assoc"]), rtol=1e-8)
    assert agree >= 3


@pytest.mark.parametrize("name", ["joint", "joint_full"])
def test_mort_assoc_sd_flips_sign_with_gamma(name, small_cohort, rng):
    spec = _spec(name)
    model = build_model(build_design(small_cohort, spec))
    for _ in range(3):
        point = _random_point(model, rng)
        gamma = rng.normal(0.0, 1.0, size=len(model.coords["association"]))
        up = _evaluate(model, point | {"mort_gamma": gamma})["assoc"]
        down = _evaluate(model, point | {"mort_gamma": -gamma})["assoc"]
        assert up != 0.0
        np.testing.assert_allclose(down, -up, rtol=1e-10)


@pytest.fixture(scope="module")
def prior_fit(small_cohort) -> FitResult:
    """The joint model's prior draws relabelled as a 2-chain posterior (mocked sampling)."""
    model = JointModel("joint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with model.build(small_cohort):
            prior = pm.sample_prior_predictive(draws=200, random_seed=4)
    ds = prior["prior"].to_dataset()
    ds = xr.concat(
        [ds.isel(draw=slice(0, 100)), ds.isel(draw=slice(100, 200)).assign_coords(draw=range(100))], "chain"
    )
    ds = ds.assign_coords(chain=[0, 1])
    diag = Diagnostics(1.0, 1000.0, 1000.0, 0, 1.0, True, "prior (mock)", 100, 2, 0.0)
    return FitResult(xr.DataTree.from_dict({"posterior": ds}), model.spec, small_cohort, diag, settings={})


def test_prior_draws_of_mort_assoc_sd_follow_the_formula_and_are_gated(prior_fit):
    post = prior_fit.posterior
    assert post["mort_assoc_sd"].dims == ("chain", "draw")
    sd = post["severity_cov_stds"].values
    corr = post["severity_cov_corr"].values
    gamma = post["mort_gamma"].values
    g_ref = (prior_fit.spec.reference_day - prior_fit.spec.time_centre) / prior_fit.spec.time_scale
    M = np.array([[1.0, 0.0], [g_ref, 1.0]])  # (intercept, slope) x (value, slope)
    Sigma = sd[..., :, None] * corr * sd[..., None, :]
    w = np.einsum("ea,cda->cde", M, gamma)
    sd_r = np.sqrt(np.einsum("cde,cdef,cdf->cd", w, Sigma, w))
    sign = np.sign(np.einsum("cde,cdef,f->cd", w, Sigma, M[:, 0]))
    np.testing.assert_allclose(post["mort_assoc_sd"].values, sign * sd_r, rtol=1e-8)
    # a reported scalar, so judged by the convergence gates like the parameters it derives from
    assert "mort_assoc_sd" in gate_variables(post)


def test_fit_summary_and_report_show_the_odds_ratio_per_sd(
    prior_fit, small_cohort, tmp_path, capsys, monkeypatch
):
    data = write_cohort(small_cohort, tmp_path / "cohort.csv")
    monkeypatch.setattr(JointModel, "fit", lambda self, cohort, **kw: prior_fit)
    assert main(["fit", str(data), "--out", str(tmp_path / "fit")]) == 0
    out = capsys.readouterr().out
    odds = np.exp(prior_fit.posterior["mort_assoc_sd"].values.ravel())
    lo, med, hi = np.quantile(odds, [0.025, 0.5, 0.975])
    expected = fmt_estimate(med, lo, hi)
    assert "Mortality, odds ratios of death in user units (median [95% CrI]):" in out
    line = next(ln for ln in out.splitlines() if "(mort_assoc_sd:" in ln)
    assert "trajectory" in line and f"{expected}   (mort_assoc_sd:" in line
    assert "mort_assoc_sd " in out  # its row in the table, with ESS and R-hat
    assert (
        "mort_gamma[value] and [slope]: r = " in out
        and "note: the mort_gamma coefficients are correlated" in out
    )
    report = write_report(tmp_path).read_text()
    assert "| mort_assoc_sd |" in report and "| mort_gamma[slope] |" in report
    assert "**Odds ratio of death per SD of the patient's CT trajectory" in report
    assert f"{expected}**" in report
    assert "Note: the mort_gamma coefficients are correlated" in report
