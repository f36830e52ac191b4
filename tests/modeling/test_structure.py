"""Structural tier: graphs, shapes, coords and a finite log-density for every spec — no sampling."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayesct.data import simulate_cohort
from bayesct.errors import DataValidationError, SpecError
from bayesct.modeling.design import build_design, from_model_scale, spline_basis, to_model_scale
from bayesct.modeling.diagnostics import Diagnostics
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


@pytest.mark.parametrize("name", ["joint", "joint_zones", "joint_normal", "ct_only", "descriptive"])
def test_numpy_view_matches_the_pymc_log_density(name, small_cohort):
    """PosteriorModel restates the model in numpy; its likelihood must equal PyMC's at the same point."""
    _assert_view_matches_pymc(small_cohort, name)


def _assert_view_matches_pymc(cohort, name: str) -> None:
    fit = mocked_fit(cohort, name, draws=3)
    view = PosteriorModel.from_fit(fit)
    ours = view.patient_loglik().sum(axis=1)
    model = JointModel(name).build(cohort)
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


def test_zone_columns_are_the_ct_likelihood_where_given():
    """With the six zone columns, joint_zones models the zones (with zone offsets) where a scan has
    all six and the total where it has not; the numpy view's likelihood equals PyMC's."""
    cohort = simulate_cohort(30, seed=4, generator="zones", zone_columns=True).cohort
    # blank one scan's zones: its total is then the likelihood
    visits = cohort.visits.copy()
    first = visits.index[visits["ct_score"].notna()][0]
    visits.loc[first, "zone_rl"] = np.nan
    cohort = type(cohort).from_frames(visits, cohort.patients.reset_index(), source="test")
    model = JointModel("joint_zones").build(cohort)
    assert {"ct_zone_obs", "ct_obs"} <= {rv.name for rv in model.observed_RVs}
    observed = {rv.name: model.rvs_to_values[rv].eval() for rv in model.observed_RVs}
    assert observed["ct_zone_obs"].shape == (cohort.n_scans - 1, 6)
    assert observed["ct_obs"].shape == (1,)
    assert "ct_zone_offset" in {rv.name for rv in model.free_RVs}
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    assert np.all(np.isfinite(model.compile_dlogp()(point)))
    # the prior predictive check replicates the totals, from the zones where they are modelled
    from bayesct.modeling.prior_check import prior_predictive_check

    table = prior_predictive_check(cohort, "joint_zones", draws=20, seed=1).set_index("quantity")
    assert 0 <= table.loc["ct_score", "prior_median"] <= 24
    # without the zone columns the same spec has no offsets and models the totals
    plain = JointModel("joint_zones").build(simulate_cohort(30, seed=4, generator="zones").cohort)
    assert "ct_zone_offset" not in {rv.name for rv in plain.free_RVs}


def test_numpy_view_matches_the_pymc_log_density_with_zone_columns():
    cohort = simulate_cohort(30, seed=4, generator="zones", zone_columns=True).cohort
    visits = cohort.visits.copy()
    first = visits.index[visits["ct_score"].notna()][0]
    visits.loc[first, "zone_rl"] = np.nan
    cohort = type(cohort).from_frames(visits, cohort.patients.reset_index(), source="test")
    _assert_view_matches_pymc(cohort, "joint_zones")


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


def test_zone_sum_logp_graph_equals_the_numpy_likelihood():
    """The PyTensor zone-sum log-pmf is bayesct.likelihoods' (exact convolution), tails included,
    with a finite gradient everywhere."""
    from bayesct.likelihoods import CTLikelihood
    from bayesct.modeling.builders import zone_sum_logp

    cuts = np.array([-2.1, -0.4, 0.8, 2.9])
    eta = np.r_[np.linspace(-40.0, 40.0, 41), np.linspace(-4.0, 4.0, 60)]
    k = np.random.default_rng(1).integers(0, 25, size=eta.size)
    eta_t, cuts_t = pt.dvector("eta"), pt.dvector("cuts")
    logp = zone_sum_logp(pt.as_tensor(k), eta_t, cuts_t)
    ours = logp.eval({eta_t: eta, cuts_t: cuts})
    ref = CTLikelihood("zone_sum", cutpoints=cuts[None, :]).logpmf(k[None, :], eta[None, :])[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
    grad = pt.grad(logp.sum(), [eta_t, cuts_t])
    g_eta, g_cuts = (g.eval({eta_t: eta, cuts_t: cuts}) for g in grad)
    assert np.all(np.isfinite(g_eta)) and np.all(np.isfinite(g_cuts))


def test_lab_likelihood_of_the_graph_equals_the_numpy_one(small_cohort):
    """The unfused graph's lab likelihood (PyTensor) is the numpy per-group marginal density, summed."""
    from bayesct.modeling.builders import lab_marginal_logp, labs_groups

    design = build_design(small_cohort, load_spec("joint"))
    groups = labs_groups(design)
    n_labs = len(design.lab_names)
    rng = np.random.default_rng(1)
    for _ in range(3):
        resid = rng.normal(0.0, 1.0, size=len(design.labs.value))
        noise, specific = rng.uniform(0.05, 2.0, n_labs), rng.uniform(0.0, 2.0, n_labs)
        graph = pt.sum(
            lab_marginal_logp(pt.as_tensor(resid), groups, pt.as_tensor(noise), pt.as_tensor(specific))
        )
        assert graph.eval() == pytest.approx(
            lab_marginal_logp(resid, groups, noise, specific).sum(), rel=1e-12
        )


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


def _joint_with_loading_signs(signs: str):
    import tomllib

    from bayesct.modeling.spec import parse_spec, specs_dir

    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    raw["random_effects"]["loading_signs"] = signs
    return JointModel(parse_spec(raw))


def test_known_loading_signs_follow_the_lab_direction_at_any_point(small_cohort):
    """loading_signs = "known": each lab's loading is LAB_DIRECTION[lab] * |x|, for any value of the
    sampled (log-scale) magnitude, in prior draws too; the magnitude has the HalfNormal prior."""
    from scipy import stats

    from bayesct.constants import LAB_DIRECTION

    jm = JointModel("joint")
    assert jm.spec.loading_signs == "known"
    model = jm.build(small_cohort)
    design = jm.design(small_cohort)
    labs = list(model.coords["lab"])
    assert {"ldh", "lymphocyte_count"} <= set(labs)
    direction = np.array([LAB_DIRECTION[m] for m in labs])
    assert "loading_lab" not in {rv.name for rv in model.free_RVs}
    magnitude = model["loading_magnitude"]
    assert type(model.rvs_to_transforms[magnitude]).__name__ == "LogTransform"
    loading_fn = model.compile_fn(
        model.replace_rvs_by_values([model["loading"], model["loading_lab"]]),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    logp_fn = model.compile_fn(
        model.logp(vars=[magnitude], jacobian=False, sum=False),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    sigma = jm.spec.prior("loading").params["sigma"] * design.marker_scale[1:]
    rng = np.random.default_rng(0)
    start = model.initial_point()
    assert np.all(np.isfinite(start["loading_magnitude_log__"]))  # not started at |x| = 0
    for _ in range(20):
        point = {k: v + rng.normal(0.0, 3.0, size=np.shape(v)) for k, v in start.items()}
        loading, lam_lab = loading_fn(point)
        assert loading[0] == 1.0
        np.testing.assert_array_equal(loading[1:], lam_lab)
        assert np.all(np.sign(lam_lab) == direction)
        np.testing.assert_allclose(np.abs(lam_lab), np.exp(point["loading_magnitude_log__"]), rtol=1e-12)
        np.testing.assert_allclose(
            logp_fn(point)[0], stats.halfnorm.logpdf(np.abs(lam_lab), scale=sigma), rtol=1e-10
        )
    draws = pm.draw(model["loading"], draws=500, random_seed=1)
    assert np.all(draws[:, 0] == 1.0)
    assert np.all(np.sign(draws[:, 1:]) == direction)
    assert np.all(draws[:, 1 + labs.index("ldh")] > 0)
    assert np.all(draws[:, 1 + labs.index("lymphocyte_count")] < 0)
    # |loading| ~ HalfNormal(sigma * marker SD): its mean is sigma * sqrt(2 / pi)
    np.testing.assert_allclose(np.abs(draws[:, 1:]).mean(axis=0) / sigma, np.sqrt(2 / np.pi), rtol=0.15)


def test_free_loading_signs_reproduce_the_normal_loading_prior(small_cohort):
    """loading_signs = "free" is the model as it was: loading_lab sampled untransformed with the
    spec's Normal(0, sigma * marker SD) prior, either sign."""
    from scipy import stats

    jm = _joint_with_loading_signs("free")
    model = jm.build(small_cohort)
    design = jm.design(small_cohort)
    lam = model["loading_lab"]
    assert lam in model.free_RVs and "loading_magnitude" not in model.named_vars
    assert model.rvs_to_transforms.get(lam) is None
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 1.0, size=np.shape(v)) for k, v in model.initial_point().items()}
    logp = model.compile_fn(
        model.logp(vars=[lam], sum=False), inputs=model.value_vars, on_unused_input="ignore"
    )
    prior = jm.spec.prior("loading")
    sigma = prior.params["sigma"] * design.marker_scale[1:]
    np.testing.assert_allclose(
        logp(point)[0], stats.norm.logpdf(point["loading_lab"], prior.params["mu"], sigma), rtol=1e-10
    )
    draws = pm.draw(model["loading"], draws=200, random_seed=1)
    assert np.all(draws[:, 0] == 1.0)
    assert np.all((draws[:, 1:] > 0).any(axis=0)) and np.all((draws[:, 1:] < 0).any(axis=0))
    assert np.isfinite(model.compile_logp()(model.initial_point()))


# -- patients of unknown outcome ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def unknown_cohort(small_cohort):
    """:func:`small_cohort` with the outcome of two patients blank (still in hospital)."""
    from bayesct.data.simulate import blank_outcomes

    cohort = blank_outcomes(small_cohort, 2, seed=1)
    assert cohort.n_outcome_unknown == 2
    return cohort


@pytest.mark.parametrize("name", ["joint", "ct_only"])
def test_mortality_likelihood_runs_over_the_patients_of_known_outcome(name, unknown_cohort):
    from bayesct.modeling.design import OUTCOME_DIM
    from bayesct.modeling.fit import observed_dataset

    design = build_design(unknown_cohort, load_spec(name))
    known = unknown_cohort.outcome_known.to_numpy()
    np.testing.assert_array_equal(design.outcome_known, known)
    model = JointModel(name).build(unknown_cohort)
    assert model.named_vars_to_dims["died_obs"] == (OUTCOME_DIM,)
    assert list(model.coords[OUTCOME_DIM]) == list(unknown_cohort.patient_ids[known])
    assert len(model.coords["patient"]) == unknown_cohort.n_patients  # every patient keeps its effects
    observed = model.rvs_to_values[model["died_obs"]].eval()
    assert observed.shape == (int(known.sum()),)
    np.testing.assert_array_equal(observed, unknown_cohort.patients["died"].to_numpy()[known])
    obs = observed_dataset(design)["died_obs"]
    assert obs.dims == (OUTCOME_DIM,) and obs.sizes[OUTCOME_DIM] == known.sum()
    assert int(obs.sum()) == unknown_cohort.n_deaths
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    # a cohort whose outcomes are all known keeps the patient dimension
    assert JointModel(name).build(unknown_cohort.known_outcome()).named_vars_to_dims["died_obs"] == (
        "patient",
    )


@pytest.mark.parametrize("name", ["joint", "joint_zones", "ct_only"])
def test_numpy_view_matches_the_pymc_log_density_with_an_unknown_outcome(name, unknown_cohort):
    _assert_view_matches_pymc(unknown_cohort, name)
    fit = mocked_fit(unknown_cohort, name, draws=3)
    view = PosteriorModel.from_fit(fit)
    unknown = ~unknown_cohort.outcome_known.to_numpy()
    with_death = view.patient_loglik()
    without = view.patient_loglik(parts=("ct", "labs"))
    np.testing.assert_array_equal(with_death[:, unknown], without[:, unknown])  # no death term
    assert not np.allclose(with_death[:, ~unknown], without[:, ~unknown])


def test_outcome_group_curves_refuse_an_unknown_outcome(unknown_cohort):
    with pytest.raises(DataValidationError, match=r"by outcome group.*2 patient\(s\) have no outcome"):
        JointModel("descriptive").build(unknown_cohort)
