"""Structural tier: graphs, shapes, coords and a finite log-density for every spec — no sampling."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayesct.checks.convergence import Diagnostics
from bayesct.data import simulate_cohort
from bayesct.errors import DataValidationError, SpecError
from bayesct.modeling.design import build_design, from_model_scale, spline_basis, to_model_scale
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.posterior import PosteriorModel
from bayesct.modeling.spec import SPEC_NAMES, load_spec


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_builds_with_finite_logp_and_gradient(name, small_cohort):
    model = JointModel(name).build(small_cohort)
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    grad = model.compile_dlogp()(point)
    assert grad.shape == (sum(np.size(v) for v in point.values()),)
    assert np.all(np.isfinite(grad))
    assert list(model.coords["patient"]) == list(small_cohort.patient_ids)


def test_joint_graph_dims_and_observations(small_cohort):
    model = JointModel("joint").build(small_cohort)
    n_markers = len(small_cohort.markers)
    assert model.named_vars_to_dims["spline_coef"] == ("marker", "basis")
    assert model.named_vars_to_dims["severity"] == ("patient", "effect")
    assert model.named_vars_to_dims["loading"] == ("marker",)
    assert len(model.coords["marker"]) == n_markers
    # every observed CT score and lab value is in the likelihood, and nothing else
    assert (
        model["ct_obs"].eval().shape == (small_cohort.n_scans,)
        or len(model.coords["ct_scan"]) == small_cohort.n_scans
    )
    n_lab_values = int(small_cohort.visits[list(small_cohort.labs)].notna().to_numpy().sum())
    assert len(model.coords["lab_value"]) == n_lab_values
    assert {"loading_lab", "specific_sd", "noise_sd", "ct_phi", "mort_gamma", "mort_beta"} <= set(
        model.named_vars
    )


def test_missing_labs_drop_out_and_subsets_work():
    cohort = simulate_cohort(30, seed=2, markers=["ct_score", "ldh", "esr"]).cohort
    visits = cohort.visits.copy()
    visits.loc[visits.index[:5], "ldh"] = np.nan
    cohort = type(cohort)(visits, cohort.patients, source="test")
    design = build_design(cohort, load_spec("joint"))
    assert design.markers == ("ct_score", "ldh", "esr")
    assert len(design.labs.value) == int(visits[["ldh", "esr"]].notna().to_numpy().sum())
    model = JointModel("joint").build(cohort)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_ct_only_on_a_cohort_without_labs():
    cohort = simulate_cohort(20, seed=4, markers=["ct_score"]).cohort
    assert np.isfinite(
        JointModel("ct_only")
        .build(cohort)
        .compile_logp()(JointModel("ct_only").build(cohort).initial_point())
    )


def test_clear_errors_for_data_the_model_cannot_carry(small_cohort):
    no_age = type(small_cohort)(
        small_cohort.visits, small_cohort.patients.drop(columns=["age"]), source="x.csv"
    )
    with pytest.raises(DataValidationError, match="needs the patient covariate 'age'"):
        JointModel("joint").build(no_age)
    labs_only = simulate_cohort(10, seed=1, markers=["ct_score", "ldh"]).cohort
    with pytest.raises(SpecError, match=r"slopes names markers not modelled|needs markers"):
        from bayesct.modeling.spec import parse_spec

        raw = load_spec("descriptive").raw | {"random_effects": {"structure": "full", "slopes": ["esr"]}}
        JointModel(parse_spec(raw)).build(labs_only)


def test_transforms_round_trip():
    x = np.array([0.5, 3.0, 250.0])
    assert np.allclose(from_model_scale("ldh", to_model_scale("ldh", x)), x)
    pct = np.array([1.0, 50.0, 99.0])
    assert np.allclose(from_model_scale("lymphocyte_pct", to_model_scale("lymphocyte_pct", pct)), pct)


def test_spline_basis_is_a_partition_of_unity_and_constant_beyond_the_boundary():
    spec = load_spec("joint")
    days = np.array([0.0, 3.3, 10.0, 27.0, 40.0, 55.0])
    B = spline_basis(days, spec)
    assert np.allclose(B.sum(axis=1), 1.0)
    assert np.allclose(B[-1], spline_basis(np.array([spec.boundary[1]]), spec)[0])


def mocked_fit(cohort, name: str, draws: int = 4, seed: int = 0) -> FitResult:
    """Prior draws relabelled as a posterior: a FitResult without MCMC."""
    model = JointModel(name)
    with model.build(cohort):
        prior = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    post = prior["prior"].to_dataset()
    diag = Diagnostics(1.0, 1000.0, 1000.0, 0, 1.0, True, "mock", draws, 1, 0.0)
    return FitResult(xr.DataTree.from_dict({"posterior": post}), model.spec, cohort, diag)


@pytest.mark.parametrize("name", ["joint", "ct_only", "descriptive"])
def test_numpy_view_matches_the_pymc_log_density(name, small_cohort):
    """PosteriorModel restates the model in numpy; its likelihood must equal PyMC's at the same point."""
    fit = mocked_fit(small_cohort, name, draws=3)
    view = PosteriorModel.from_fit(fit)
    ours = view.patient_loglik().sum(axis=1)
    model = JointModel(name).build(small_cohort)
    # logp() replaces random variables by their values, in the potentials too
    terms = model.logp(vars=model.observed_RVs + model.potentials, sum=True)
    fn = model.compile_fn(terms, inputs=model.value_vars, on_unused_input="ignore", point_fn=False)
    post = fit.posterior.stack(sample=("chain", "draw"))
    for s in range(3):
        values = []
        for rv in model.free_RVs:
            val = post[rv.name].isel(sample=s).transpose(*post[rv.name].dims[:-1]).values
            transform = model.rvs_to_transforms.get(rv)
            if transform is not None:
                val = transform.forward(pt.as_tensor(val), *rv.owner.inputs).eval()
            values.append(val)
        theirs = float(fn(*values))
        assert ours[s] == pytest.approx(theirs, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", ["joint", "ct_only"])
def test_cohort_mean_reparameterisation_keeps_the_spec_priors(name, small_cohort):
    """Sampling the curves and the mortality intercept at the cohort-mean effects is a change of
    variables only: the log-prior terms of the sampled ``*_cohort`` variables equal the spec's
    prior evaluated at the reported ``spline_coef`` and ``mort_intercept``, at any point."""
    from scipy import stats

    jm = JointModel(name)
    model = jm.build(small_cohort)
    design = jm.design(small_cohort)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.5, size=np.shape(v)) for k, v in model.initial_point().items()}
    # the cohort mean must move the curves for the test to be able to fail
    point["severity_mean" if "severity_mean" in point else "re_mean"] += 1.0
    W, a0 = model.compile_fn(
        model.replace_rvs_by_values([model["spline_coef"], model["mort_intercept"]]),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    logp_w, logp_a0 = model.compile_fn(
        model.logp(vars=[model["spline_coef_cohort"], model["mort_intercept_cohort"]], sum=False),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    spline, intercept = jm.spec.prior("spline_coef"), jm.spec.prior("mort_intercept")
    sd = spline.params["sigma"] * design.marker_scale[:, None]
    np.testing.assert_allclose(logp_w, stats.norm.logpdf(W, spline.params.get("mu", 0.0), sd), rtol=1e-6)
    np.testing.assert_allclose(
        logp_a0, stats.norm.logpdf(a0, intercept.params.get("mu", 0.0), intercept.params["sigma"]), rtol=1e-6
    )


def test_linear_spline_coefficients_reproduce_the_slope_covariate():
    from bayesct.modeling.design import linear_spline_coef, time_transform

    spec = load_spec("joint")
    days = np.linspace(*spec.boundary, 301)
    np.testing.assert_allclose(
        spline_basis(days, spec) @ linear_spline_coef(spec), time_transform(days, spec), atol=1e-12
    )


@pytest.mark.parametrize("phi", [0.5, 5.0, 50.0, 5000.0])
def test_beta_binomial_logp_equals_scipy(phi):
    """The CT likelihood with its precision terms hoisted is the beta-binomial, to rounding."""
    from scipy import stats

    from bayesct.modeling.builders import _beta_binomial_logit_random, beta_binomial_logp

    rng = np.random.default_rng(0)
    k = np.arange(25).repeat(4)
    mu = rng.uniform(0.01, 0.99, size=k.size)
    ours = beta_binomial_logp(pt.as_tensor(k), pt.as_tensor(mu), pt.as_tensor(np.float64(phi))).eval()
    np.testing.assert_allclose(
        ours, stats.betabinom.logpmf(k, 24, mu * phi, (1 - mu) * phi), rtol=1e-12, atol=1e-9
    )
    draws = _beta_binomial_logit_random(np.full(20000, np.log(0.3 / 0.7)), phi, rng=rng, size=20000)
    assert draws.min() >= 0 and draws.max() <= 24
    assert draws.mean() == pytest.approx(24 * 0.3, rel=0.02)


def test_lab_likelihood_total_equals_the_sum_of_its_groups(small_cohort):
    """The hoisted lab likelihood of the graph is the per-group marginal density, summed."""
    from bayesct.modeling.builders import lab_marginal_logp, lab_marginal_logp_total, labs_groups

    design = build_design(small_cohort, load_spec("joint"))
    groups = labs_groups(design)
    n_labs = len(design.lab_names)
    rng = np.random.default_rng(1)
    for _ in range(3):
        resid = rng.normal(0.0, 1.0, size=len(design.labs.value))
        noise, specific = rng.uniform(0.05, 2.0, n_labs), rng.uniform(0.0, 2.0, n_labs)
        total = lab_marginal_logp_total(
            pt.as_tensor(resid),
            design.labs.marker - 1,
            groups,
            pt.as_tensor(noise),
            pt.as_tensor(specific),
            n_labs,
        ).eval()
        assert total == pytest.approx(lab_marginal_logp(resid, groups, noise, specific).sum(), rel=1e-12)


def test_signed_specific_sd_is_the_spec_prior_and_sign_free(small_cohort):
    """specific_sd is sampled signed: |x| has the spec's HalfNormal prior, and the model's
    log-density does not depend on the sign (so the sign is not identified and not stored)."""
    from scipy import stats

    jm = JointModel("joint")
    model = jm.build(small_cohort)
    design = jm.design(small_cohort)
    x = model["specific_sd_signed"]
    assert "specific_sd_signed" in model.named_vars and model.rvs_to_transforms.get(x) is None
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.3, size=np.shape(v)) for k, v in model.initial_point().items()}
    logp = model.compile_logp()
    flipped = dict(point, specific_sd_signed=-point["specific_sd_signed"])
    assert logp(point) == pytest.approx(logp(flipped), rel=1e-12)
    prior = jm.spec.prior("specific_sd")
    sigma = prior.params["sigma"] * design.marker_scale[1:]
    ours = model.compile_fn(
        model.logp(vars=[x], sum=False), inputs=model.value_vars, on_unused_input="ignore"
    )(point)[0]
    value = point["specific_sd_signed"]
    # a density on the signed line: half the HalfNormal density of |x| on each side
    np.testing.assert_allclose(
        ours, stats.halfnorm.logpdf(np.abs(value), scale=sigma) - np.log(2), rtol=1e-10
    )
    sd = model.compile_fn(
        model.replace_rvs_by_values([model["specific_sd"]])[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )(point)
    np.testing.assert_allclose(sd, np.abs(value))


def test_stored_posterior_drops_signed_scales():
    from bayesct.modeling.fit import _keep_groups

    post = xr.Dataset(
        {
            "specific_sd_signed": (("chain", "draw", "lab"), -np.ones((2, 3, 2))),
            "specific_sd": (("chain", "draw", "lab"), np.ones((2, 3, 2))),
        }
    )
    kept = _keep_groups(xr.DataTree.from_dict({"posterior": post}))
    assert list(kept["posterior"].data_vars) == ["specific_sd"]
