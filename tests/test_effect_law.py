"""The population law of the severity effects (bayesct.effect_law): moments, density, graph twin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from bayesct.effect_law import (
    SAS_P1,
    SAS_P2,
    EffectLaw,
    sas_logpdf,
    sas_moments,
    standardised_from_normal,
)
from bayesct.errors import SpecError
from bayesct.modeling.spec import load_spec, parse_spec


def _p(q: float) -> float:
    return float(
        np.exp(0.25) / np.sqrt(8 * np.pi) * (special.kv((q + 1) / 2, 0.25) + special.kv((q - 1) / 2, 0.25))
    )


def test_moment_constants_are_the_bessel_expressions():
    assert pytest.approx(_p(1.0), rel=1e-14) == SAS_P1
    assert pytest.approx(_p(2.0), rel=1e-14) == SAS_P2


@pytest.mark.parametrize("eps", [0.0, 0.3, -0.7, 1.2])
def test_standardised_law_has_mean_zero_sd_one_and_unit_mass(eps):
    x = lambda z: np.sinh(np.arcsinh(z) + eps)  # noqa: E731
    mean = integrate.quad(lambda z: x(z) * stats.norm.pdf(z), -np.inf, np.inf)[0]
    var = integrate.quad(lambda z: (x(z) - mean) ** 2 * stats.norm.pdf(z), -np.inf, np.inf)[0]
    m, s = sas_moments(np.float64(eps))
    assert m == pytest.approx(mean, abs=1e-10)
    assert s == pytest.approx(np.sqrt(var), rel=1e-10)
    dens = lambda w: np.exp(sas_logpdf(np.asarray(w), np.asarray(eps)))  # noqa: E731
    assert integrate.quad(dens, -40, 40, limit=400)[0] == pytest.approx(1.0, abs=1e-8)
    assert integrate.quad(lambda w: w * dens(w), -40, 40, limit=400)[0] == pytest.approx(0.0, abs=1e-7)


def test_density_is_the_change_of_variables_of_the_normal():
    """p(w) dw = phi(z) dz along the map z -> w."""
    eps = 0.9
    z = np.linspace(-4, 4, 81)
    w = standardised_from_normal(z, eps)
    h = 1e-6
    dw_dz = (standardised_from_normal(z + h, eps) - standardised_from_normal(z - h, eps)) / (2 * h)
    np.testing.assert_allclose(
        sas_logpdf(w, np.float64(eps)), stats.norm.logpdf(z) - np.log(dw_dz), atol=1e-7
    )


def test_zero_skew_is_the_normal():
    z = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(standardised_from_normal(z, 0.0), z, atol=1e-14)
    np.testing.assert_allclose(sas_logpdf(z, np.float64(0.0)), stats.norm.logpdf(z), atol=1e-12)


def test_pytensor_twin_equals_numpy():
    import pytensor.tensor as pt

    z = np.linspace(-6, 6, 25)
    for eps in (0.0, 0.6, -1.3):
        graph = standardised_from_normal(pt.as_tensor(z), pt.as_tensor(eps), pt).eval()
        np.testing.assert_allclose(graph, standardised_from_normal(z, eps), rtol=1e-12, atol=1e-12)


def _law(skew):
    sd = np.array([[1.3, 0.7], [0.9, 1.1]])
    rho = np.array([0.6, -0.3])
    chol = np.zeros((2, 2, 2))
    chol[:, 0, 0] = sd[:, 0]
    chol[:, 1, 0] = sd[:, 1] * rho
    chol[:, 1, 1] = sd[:, 1] * np.sqrt(1 - rho**2)
    return EffectLaw(chol, skew)


def test_normal_law_logpdf_is_the_multivariate_normal():
    law = _law(None)
    eff = np.random.default_rng(0).normal(size=(2, 7, 2))
    for s in range(2):
        cov = law.chol[s] @ law.chol[s].T
        np.testing.assert_allclose(
            law.logpdf(eff)[s], stats.multivariate_normal(np.zeros(2), cov).logpdf(eff[s])
        )


def test_skewed_law_draws_have_the_stated_covariance_and_density_integrates_to_one():
    law = _law(np.array([0.8, -0.5]))
    draws = law.draw(np.random.default_rng(1), 400_000)
    for s in range(2):
        cov = law.chol[s] @ law.chol[s].T
        np.testing.assert_allclose(np.cov(draws[s].T), cov, atol=0.02)
        assert abs(stats.skew(draws[s][:, 0])) > 0.5  # the level is skewed, in the sign of eps
        assert np.sign(stats.skew(draws[s][:, 0])) == np.sign(law.skew[s])
    g = np.linspace(-12, 12, 481)
    E = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(1, -1, 2).repeat(2, axis=0)
    mass = np.exp(law.logpdf(E)).sum(axis=1) * (g[1] - g[0]) ** 2
    np.testing.assert_allclose(mass, 1.0, atol=1e-4)


def test_spec_validation_of_the_severity_law():
    assert load_spec("joint_normal").severity_law == "normal"
    assert load_spec("joint").severity_law == "sinh_arcsinh"
    raw = load_spec("joint").raw
    bad = {**raw, "random_effects": {**raw["random_effects"], "severity_law": "gamma"}}
    with pytest.raises(SpecError, match="severity_law must be one of normal, sinh_arcsinh"):
        parse_spec(bad)
    no_prior = {**raw, "priors": {k: v for k, v in raw["priors"].items() if k != "severity_skew"}}
    with pytest.raises(SpecError, match=r"needs a prior priors\.severity_skew"):
        parse_spec(no_prior)
    full = {**raw, "random_effects": {"structure": "full", "severity_law": "sinh_arcsinh"}}
    with pytest.raises(SpecError, match="factor structure only"):
        parse_spec(full)


def test_graph_severity_is_the_law_of_the_normal_coordinates():
    """The PyMC graph's severity equals EffectLaw.from_normal at the same point."""
    from bayesct.data.simulate import simulate_cohort
    from bayesct.modeling.fit import JointModel

    cohort = simulate_cohort(12, seed=4).cohort
    model = JointModel("joint").build(cohort)
    point = model.initial_point()
    rng = np.random.default_rng(2)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in point.items()}
    point["severity_skew"] = np.float64(0.7)
    outs = model.replace_rvs_by_values(
        [model["severity"], model["severity_cov"], model["severity_dev"], model["severity_mean"]]
    )
    sev, chol, dev, mean = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)
    z = (dev.T + mean[None, :])[None]  # the standard normals (1, n, 2)
    n_chol = np.zeros((1, 2, 2))
    n_chol[0][np.tril_indices(2)] = chol
    law = EffectLaw(n_chol, np.array([0.7]))
    np.testing.assert_allclose(sev, law.from_normal(z)[0], rtol=1e-10)
