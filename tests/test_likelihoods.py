"""The numpy CT likelihoods (bayesct.likelihoods): the zone-level pmf and the family dispatch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import expit

from bayesct.constants import CT_MAX, CT_ZONES, N_ZONES, ZONE_MAX
from bayesct.likelihoods import (
    CT_FAMILIES,
    PMF_FLOOR,
    ZONES,
    CTLikelihood,
    log1mexp,
    zone_logpmf,
    zone_sum_draw,
    zone_sum_loglik,
    zone_sum_logpmf,
)

CUTS = np.array([-1.5, -0.2, 0.9, 2.4])
#: Every combination of six zone scores, shape (5**6, 6).
COMBOS = np.array(list(itertools.product(range(ZONE_MAX + 1), repeat=N_ZONES)))


def per_zone_cuts() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.sort(rng.normal(0.0, 1.5, size=(N_ZONES, ZONE_MAX)), axis=-1)


def brute_force_pmf(zone_pmfs: np.ndarray) -> np.ndarray:
    """P(S = s) by enumerating all 5**6 zone combinations; zone_pmfs has shape (6, 5)."""
    probs = np.prod(zone_pmfs[np.arange(N_ZONES), COMBOS], axis=1)
    return np.bincount(COMBOS.sum(axis=1), weights=probs, minlength=CT_MAX + 1)


def direct_zone_pmf(eta: float, cuts: np.ndarray) -> np.ndarray:
    """P(Y = j) = F(c_j - eta) - F(c_{j-1} - eta), F = expit, as a plain difference of cumulative
    probabilities; in the upper tail the same difference is taken of the survival function
    1 - F(d) = expit(-d), which avoids the rounding of 1 - F near 1."""
    d = np.concatenate([[-np.inf], cuts - eta, [np.inf]])
    lower = np.diff(expit(d))
    upper = -np.diff(expit(-d))
    return np.where(d[1:] + d[:-1] > 0, upper, lower)


def test_vocabulary() -> None:
    assert ZONES == CT_ZONES
    assert len(ZONES) == N_ZONES == 6
    assert ZONE_MAX == 4
    assert N_ZONES * ZONE_MAX == CT_MAX == 24
    assert COMBOS.shape == (5**6, 6)


@pytest.mark.parametrize("eta", [-8.0, -2.0, 0.0, 0.7, 3.0, 8.0])
def test_zone_pmf_is_difference_of_cumulative_expits(eta: float) -> None:
    got = np.exp(zone_logpmf(eta, CUTS))
    assert got.shape == (ZONE_MAX + 1,)
    np.testing.assert_allclose(got, direct_zone_pmf(eta, CUTS), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-13)


def test_zone_pmf_tails_keep_relative_accuracy() -> None:
    # eta far below every cut-point: P(Y=4) = expit(eta - c_3) is tiny but exactly known
    eta = -40.0
    logp = zone_logpmf(eta, CUTS)
    np.testing.assert_allclose(logp[-1], eta - CUTS[-1] - np.log1p(np.exp(eta - CUTS[-1])), rtol=1e-12)
    # middle category far in the upper tail: expit(d1) - expit(d0) with both near 0
    d = CUTS - 40.0
    expected = np.log(np.exp(d[1]) / (1 + np.exp(d[1])) - np.exp(d[0]) / (1 + np.exp(d[0])))
    np.testing.assert_allclose(zone_logpmf(40.0, CUTS)[1], expected, rtol=1e-9)
    assert np.all(np.isfinite(zone_logpmf(np.array([-60.0, 60.0]), CUTS)))


@pytest.mark.parametrize("eta", [-8.0, -1.3, 0.0, 2.2, 8.0])
def test_zone_sum_matches_brute_force_shared_cutpoints(eta: float) -> None:
    expected = brute_force_pmf(np.tile(direct_zone_pmf(eta, CUTS), (N_ZONES, 1)))
    logpmf = zone_sum_logpmf(eta, CUTS)
    assert logpmf.shape == (CT_MAX + 1,)
    np.testing.assert_allclose(np.exp(logpmf), expected, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(np.exp(logpmf).sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("eta", [-8.0, -0.4, 1.1, 8.0])
def test_zone_sum_matches_brute_force_per_zone_cutpoints_and_eta(eta: float) -> None:
    cuts = per_zone_cuts()
    offsets = np.linspace(-1.0, 1.5, N_ZONES)
    etas = eta + offsets
    zone_pmfs = np.stack([direct_zone_pmf(etas[z], cuts[z]) for z in range(N_ZONES)])
    expected = brute_force_pmf(zone_pmfs)
    got = np.exp(zone_sum_logpmf(etas, cuts, per_zone_eta=True, per_zone_cutpoints=True))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-300)
    # per-zone cut-points with a shared eta
    zone_pmfs = np.stack([direct_zone_pmf(eta, cuts[z]) for z in range(N_ZONES)])
    got = np.exp(zone_sum_logpmf(eta, cuts, per_zone_cutpoints=True))
    np.testing.assert_allclose(got, brute_force_pmf(zone_pmfs), rtol=1e-10, atol=1e-300)
    # per-zone eta with shared cut-points
    zone_pmfs = np.stack([direct_zone_pmf(etas[z], CUTS) for z in range(N_ZONES)])
    got = np.exp(zone_sum_logpmf(etas, CUTS, per_zone_eta=True))
    np.testing.assert_allclose(got, brute_force_pmf(zone_pmfs), rtol=1e-10, atol=1e-300)


def test_zone_order_matters_only_through_the_pairing_of_eta_and_cutpoints() -> None:
    cuts = per_zone_cuts()
    etas = np.linspace(-2.0, 2.0, N_ZONES)
    a = zone_sum_logpmf(etas, cuts, per_zone_eta=True, per_zone_cutpoints=True)
    perm = np.array([3, 0, 5, 1, 4, 2])
    b = zone_sum_logpmf(etas[perm], cuts[perm], per_zone_eta=True, per_zone_cutpoints=True)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    c = zone_sum_logpmf(etas[perm], cuts, per_zone_eta=True, per_zone_cutpoints=True)
    assert not np.allclose(a, c)


def test_extreme_tails_keep_relative_accuracy_down_to_the_floor() -> None:
    # eta = -30: P(S = 24) = P(Y = 4)**6, around exp(-6 * 32.4): a product of the zone pmfs,
    # so its relative accuracy is kept
    eta = -30.0
    logpmf = zone_sum_logpmf(eta, CUTS)
    assert np.all(np.isfinite(logpmf))
    expected_top = 6 * (eta - CUTS[-1] - np.log1p(np.exp(eta - CUTS[-1])))
    np.testing.assert_allclose(logpmf[-1], expected_top, rtol=1e-12)
    # P(S = 0) = 1 - 2.5e-12: its log is exact to a double's spacing at 1
    expected_bottom = 6 * (-np.log1p(np.exp(eta - CUTS[0])))
    np.testing.assert_allclose(logpmf[0], expected_bottom, rtol=0, atol=1e-15)
    # eta = +300: probabilities below the smallest double are floored, never -inf
    logpmf = zone_sum_logpmf(300.0, CUTS)
    assert np.all(np.isfinite(logpmf))
    assert logpmf[0] == pytest.approx(np.log(PMF_FLOOR))
    assert np.argmax(logpmf) == CT_MAX
    assert logpmf[CT_MAX] == pytest.approx(0.0, abs=1e-12)


def test_pmf_sums_to_one_over_a_batch(rng: np.random.Generator) -> None:
    eta = rng.normal(0.0, 3.0, size=(7, 3))
    logpmf = zone_sum_logpmf(eta, CUTS)
    assert logpmf.shape == (7, 3, CT_MAX + 1)
    np.testing.assert_allclose(np.exp(logpmf).sum(axis=-1), 1.0, rtol=1e-12)


def test_shapes_and_broadcasting(rng: np.random.Generator) -> None:
    draws, visits = 4, 5
    eta = rng.normal(size=(draws, visits))
    cuts_draw = np.sort(rng.normal(size=(draws, 1, ZONE_MAX)), axis=-1)  # one set per draw
    assert zone_logpmf(eta, cuts_draw).shape == (draws, visits, ZONE_MAX + 1)
    out = zone_sum_logpmf(eta, cuts_draw)
    assert out.shape == (draws, visits, CT_MAX + 1)
    # element by element it equals the scalar computation
    for i, j in [(0, 0), (3, 4), (2, 1)]:
        np.testing.assert_allclose(out[i, j], zone_sum_logpmf(eta[i, j], cuts_draw[i, 0]), rtol=1e-13)
    # per-zone cut-points per draw: (draws, 1, 6, 4); per-zone eta (draws, visits, 6)
    cz = np.sort(rng.normal(size=(draws, 1, N_ZONES, ZONE_MAX)), axis=-1)
    ez = eta[..., None] + rng.normal(size=N_ZONES)
    out = zone_sum_logpmf(ez, cz, per_zone_eta=True, per_zone_cutpoints=True)
    assert out.shape == (draws, visits, CT_MAX + 1)
    np.testing.assert_allclose(
        out[1, 2], zone_sum_logpmf(ez[1, 2], cz[1, 0], per_zone_eta=True, per_zone_cutpoints=True), rtol=1e-13
    )
    # loglik: scores per visit broadcast over draws
    score = rng.integers(0, CT_MAX + 1, size=visits)
    ll = zone_sum_loglik(score, eta, cuts_draw)
    assert ll.shape == (draws, visits)
    full = zone_sum_logpmf(eta, cuts_draw)
    for i in range(draws):
        np.testing.assert_allclose(ll[i], full[i, np.arange(visits), score], rtol=0)


def test_loglik_picks_the_observed_total() -> None:
    logpmf = zone_sum_logpmf(0.5, CUTS)
    scores = np.array([0, 5, 12, 24])
    np.testing.assert_array_equal(zone_sum_loglik(scores, 0.5, CUTS), logpmf[scores])
    assert zone_sum_loglik(7.0, 0.5, CUTS) == logpmf[7]


@pytest.mark.parametrize("score", [-1, 25, 2.5, np.nan])
def test_loglik_rejects_scores_outside_0_24(score: float) -> None:
    with pytest.raises(ValueError, match="0 to 24"):
        zone_sum_loglik(np.array([3, score]), 0.0, CUTS)


def test_bad_cutpoints_are_rejected() -> None:
    with pytest.raises(ValueError, match="increasing"):
        zone_logpmf(0.0, CUTS[::-1])
    with pytest.raises(ValueError, match="shape"):
        zone_logpmf(0.0, CUTS[:3])
    with pytest.raises(ValueError, match="shape"):
        zone_sum_logpmf(0.0, CUTS, per_zone_cutpoints=True)
    with pytest.raises(ValueError, match="shape"):
        zone_sum_logpmf(np.zeros(5), CUTS, per_zone_eta=True)


def test_equal_cutpoints_give_an_empty_category() -> None:
    cuts = np.array([-1.0, 0.5, 0.5, 2.0])
    logp = zone_logpmf(0.3, cuts)
    assert logp[2] == -np.inf
    np.testing.assert_allclose(np.exp(logp), direct_zone_pmf(0.3, cuts), rtol=1e-12, atol=0)


def test_log1mexp() -> None:
    x = np.array([-1e-20, -1e-5, -0.5, -np.log(2.0), -1.0, -30.0, -800.0])
    np.testing.assert_allclose(
        log1mexp(x), [np.log(1e-20), np.log(-np.expm1(-1e-5)), *np.log1p(-np.exp(x[2:]))]
    )
    assert log1mexp(0.0) == -np.inf
    assert log1mexp(-np.inf) == 0.0


def test_zone_axis_is_inferred_from_the_shape_unless_told() -> None:
    cuts = per_zone_cuts()
    etas = np.linspace(-1.0, 2.0, N_ZONES)
    explicit = zone_sum_logpmf(etas, cuts, per_zone_eta=True, per_zone_cutpoints=True)
    np.testing.assert_array_equal(zone_sum_logpmf(etas, cuts), explicit)
    assert zone_sum_logpmf(etas, cuts).shape == (CT_MAX + 1,)
    # six visits, each with its own shared severity: a batch axis of length 6
    batch = zone_sum_logpmf(etas, CUTS, per_zone_eta=False)
    assert batch.shape == (N_ZONES, CT_MAX + 1)
    for i in range(N_ZONES):
        np.testing.assert_allclose(batch[i], zone_sum_logpmf(etas[i], CUTS), rtol=1e-13)
    # the call the zone simulator makes: per-visit scores, (visits, 6) severities, shared cut-points
    scores = np.array([3, 10])
    eta2 = np.stack([etas, etas + 1.0])
    ll = zone_sum_loglik(scores, eta2, CUTS)
    assert ll.shape == (2,)
    np.testing.assert_allclose(ll[1], zone_sum_logpmf(eta2[1], CUTS, per_zone_eta=True)[10], rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# CTLikelihood: every CT family through one object
# ---------------------------------------------------------------------------------------------------
def _families(S: int, rng: np.random.Generator) -> list[CTLikelihood]:
    cuts = np.sort(rng.normal(0.0, 1.5, size=(S, ZONE_MAX)), axis=-1)
    return [
        CTLikelihood("binomial"),
        CTLikelihood("beta_binomial", phi=rng.gamma(3.0, 4.0, size=S)),
        CTLikelihood("zone_sum", cutpoints=cuts),
    ]


def test_every_family_is_a_pmf_and_pointwise_equals_the_table(rng: np.random.Generator) -> None:
    S = 3
    eta = rng.normal(0.0, 2.0, size=(S, 4, 2))
    y = rng.integers(0, CT_MAX + 1, size=(1, 4, 2))
    assert {lik.family for lik in _families(S, rng)} == set(CT_FAMILIES)
    for lik in _families(S, rng):
        table = lik.logpmf_all(eta)
        assert table.shape == (S, 4, 2, CT_MAX + 1)
        np.testing.assert_allclose(np.exp(table).sum(-1), 1.0, rtol=1e-10)
        picked = np.take_along_axis(table, np.broadcast_to(y, eta.shape)[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(lik.logpmf(y, eta), picked, rtol=1e-9, atol=1e-9)


def test_families_match_their_references(rng: np.random.Generator) -> None:
    from scipy import stats

    S = 2
    eta = rng.normal(0.0, 2.0, size=(S, 5))
    binom, beta_binom, zone_sum = _families(S, rng)
    k = np.arange(CT_MAX + 1)
    mu = expit(eta)[..., None]
    np.testing.assert_allclose(binom.logpmf_all(eta), stats.binom.logpmf(k, CT_MAX, mu), rtol=1e-10)
    phi = beta_binom.phi[:, None, None]
    ref = stats.betabinom.logpmf(k, CT_MAX, mu * phi, (1 - mu) * phi)
    np.testing.assert_allclose(beta_binom.logpmf_all(eta), ref, rtol=1e-9)
    # the convolution against enumeration of every zone combination
    got = zone_sum.logpmf_all(eta)
    for s, j in itertools.product(range(S), range(eta.shape[1])):
        zone_pmfs = np.tile(direct_zone_pmf(eta[s, j], zone_sum.cutpoints[s]), (N_ZONES, 1))
        np.testing.assert_allclose(np.exp(got[s, j]), brute_force_pmf(zone_pmfs), rtol=1e-9, atol=1e-300)


def test_zone_sum_log_pmf_is_finite_far_in_the_tails() -> None:
    lik = CTLikelihood("zone_sum", cutpoints=CUTS[None, :])
    table = lik.logpmf_all(np.array([[-40.0, 40.0]]))
    assert np.all(np.isfinite(table))
    assert table[0, 0, 0] == pytest.approx(0.0, abs=1e-12)
    assert table[0, 1, CT_MAX] == pytest.approx(0.0, abs=1e-12)


def test_draws_follow_the_pmf(rng: np.random.Generator) -> None:
    S, n = 2, 40_000
    eta = np.array([[-1.0], [1.5]]) * np.ones((S, n))
    for lik in _families(S, rng):
        draws = lik.draw(np.random.default_rng(3), eta)
        assert draws.shape == (S, n)
        for s in range(S):
            freq = np.bincount(draws[s].astype(int), minlength=CT_MAX + 1) / n
            p = np.exp(lik.logpmf_all(eta[:, :1]))[s, 0]
            # within 5 binomial standard errors in every cell
            assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-4), lik.family


def test_zone_sum_draw_is_a_sum_of_six_zones() -> None:
    draws = zone_sum_draw(np.random.default_rng(0), np.full(1000, 50.0), CUTS)
    assert np.all(draws == CT_MAX)
    draws = zone_sum_draw(np.random.default_rng(0), np.full(1000, -50.0), CUTS)
    assert np.all(draws == 0)


def test_unknown_family_and_missing_parameters_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown CT likelihood 'poisson'"):
        CTLikelihood.from_draws("poisson", {})
    lik = CTLikelihood.from_draws("zone_sum", {"ct_cutpoints": np.tile(CUTS, (3, 1))})
    assert lik.cutpoints.shape == (3, ZONE_MAX)


def test_lab_likelihoods_match_scipy_and_draw_from_themselves(rng: np.random.Generator) -> None:
    from scipy import stats

    from bayesct.likelihoods import LAB_FAMILIES, LabLikelihood

    S, L = 3, 2
    draws = {"noise_sd": rng.uniform(0.3, 1.5, (S, L)), "lab_nu": rng.uniform(2.5, 8.0, S)}
    resid = rng.normal(0.0, 1.0, (S, 5))
    lab = np.array([0, 1, 1, 0, 1])
    sd = draws["noise_sd"][:, lab]
    normal, student = (LabLikelihood.from_draws(f, draws) for f in LAB_FAMILIES)
    np.testing.assert_allclose(normal.logpdf(resid, lab), stats.norm.logpdf(resid, scale=sd), rtol=1e-12)
    np.testing.assert_allclose(normal.cdf(resid, lab), stats.norm.cdf(resid, scale=sd), rtol=1e-12)
    nu = draws["lab_nu"][:, None]
    np.testing.assert_allclose(student.logpdf(resid, lab), stats.t.logpdf(resid, df=nu, scale=sd), rtol=1e-12)
    np.testing.assert_allclose(student.cdf(resid, lab), stats.t.cdf(resid, df=nu, scale=sd), rtol=1e-12)
    # one lab for every value, and replicates with that lab's scale
    eta = np.zeros((S, 40_000))
    for lik in (normal, student):
        x = lik.draw(np.random.default_rng(1), eta, 1)
        assert x.shape == eta.shape
        med_abs = np.median(np.abs(x), axis=1)
        ref = draws["noise_sd"][:, 1] * (
            0.6745 if lik.family == "lognormal" else stats.t.ppf(0.75, draws["lab_nu"])
        )
        np.testing.assert_allclose(med_abs, ref, rtol=0.03)
    with pytest.raises(ValueError, match="unknown lab likelihood"):
        LabLikelihood.from_draws("gamma", draws)


def test_death_loglik_is_the_bernoulli_and_zero_for_an_unknown_outcome() -> None:
    from bayesct.likelihoods import death_loglik

    died = np.array([1.0, 0.0, np.nan])
    logit = np.array([[0.3, -1.2, 2.0], [-4.0, 0.5, -7.0]])
    p = expit(logit)
    want = np.where([True, True, False], np.where(died == 1, np.log(p), np.log1p(-p)), 0.0)
    np.testing.assert_allclose(death_loglik(died, logit=logit), want, rtol=1e-12)
    np.testing.assert_allclose(death_loglik(died, p), want, rtol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        death_loglik(died)
