"""The fused likelihood kernels: equal to their definitions, with exact gradients, in every mode."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from bayesct.likelihoods import PMF_FLOOR
from bayesct.modeling.builders import build_model, lab_marginal_logp, labs_groups
from bayesct.modeling.design import build_design
from bayesct.modeling.kernels import (
    BetaBinomialLogit,
    LinearPredictor,
    beta_binomial_logit,
    beta_binomial_logit_kernel,
    lab_marginal,
    lab_marginal_kernel,
    linear_predictor,
    zone_sum_kernel,
    zone_sum_logit,
)
from bayesct.modeling.spec import SPEC_NAMES, load_spec


def _kernel_ops(model) -> set[str]:
    from pytensor.graph.traversal import ancestors

    return {
        type(v.owner.op).__name__
        for v in ancestors([model.logp()])
        if v.owner is not None and type(v.owner.op).__module__ == "bayesct.modeling.kernels"
    }


def _beta_binomial_decimal(counts, n, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log C(n, y) + log[(a)_y (b)_(n-y) / (a + b)_n] and its derivatives in a and b, to 40 digits."""
    import math
    from decimal import Decimal, localcontext

    out = []
    with localcontext() as ctx:
        ctx.prec = 40
        for y, ai, bi in zip(counts, a, b, strict=True):
            da, db = Decimal(float(ai)), Decimal(float(bi))
            log_p = sum((da + k).ln() for k in range(y)) + sum((db + k).ln() for k in range(n - y))
            log_p -= sum((da + db + k).ln() for k in range(n))
            s_ab = sum(1 / (da + db + k) for k in range(n))
            d_a = sum(1 / (da + k) for k in range(y)) - s_ab
            d_b = sum(1 / (db + k) for k in range(n - y)) - s_ab
            out.append((float(log_p) + math.log(math.comb(n, int(y))), float(d_a), float(d_b)))
    return tuple(np.array(col) for col in zip(*out, strict=True))


@pytest.mark.parametrize("phi", [0.05, 1.0, 38.0, 5e3, 1e9])
def test_beta_binomial_kernel_equals_scipy_with_exact_derivatives(phi):
    rng = np.random.default_rng(int(phi * 7) % 1000)
    counts = np.tile(np.arange(25), 4)
    eta = rng.normal(0.0, 3.0, counts.size)
    eta[:3] = [-30.0, 0.0, 30.0]
    lp, d_eta, d_phi = beta_binomial_logit_kernel(eta, phi, counts, 24)
    mu, nmu = 1.0 / (1.0 + np.exp(-eta)), 1.0 / (1.0 + np.exp(eta))  # nmu: 1 - mu without cancellation
    # scipy's log-beta loses digits when phi is huge: there the reference is exact arithmetic
    exact, d_a, d_b = _beta_binomial_decimal(counts, 24, mu * phi, nmu * phi)
    np.testing.assert_allclose(lp, exact, rtol=1e-11, atol=1e-11)
    if phi < 1e4:
        np.testing.assert_allclose(
            lp, stats.betabinom.logpmf(counts, 24, mu * phi, nmu * phi), rtol=1e-10, atol=1e-11
        )
    # a = mu phi and b = (1 - mu) phi: chain rule to eta and phi
    np.testing.assert_allclose(d_eta, phi * mu * nmu * (d_a - d_b), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_phi, mu * d_a + nmu * d_b, rtol=1e-9, atol=1e-12)
    # and against PyTensor's automatic derivatives of the log-gamma form where those are accurate
    # (digamma differences lose digits to cancellation when phi is huge)
    if phi < 1e4:
        from bayesct.modeling.builders import _beta_binomial_logit_logp

        e, p = pt.dvector("e"), pt.dscalar("p")
        total = _beta_binomial_logit_logp(pt.as_tensor(counts), e, p).sum()
        ref = pytensor.function([e, p], pt.grad(total, [e, p]), mode="NUMBA")(eta, phi)
        np.testing.assert_allclose(d_eta, ref[0], rtol=1e-9, atol=1e-12)
        assert d_phi.sum() == pytest.approx(ref[1], rel=1e-9, abs=1e-12)


def test_lab_kernel_equals_the_per_group_density_with_exact_derivatives(small_cohort):
    design = build_design(small_cohort, load_spec("joint"))
    groups = labs_groups(design)
    value = design.labs.value
    n_labs = len(design.lab_names)
    rng = np.random.default_rng(3)
    eta = value + rng.normal(0.0, 0.5, value.size)
    noise = rng.uniform(0.1, 1.5, n_labs)
    specific = rng.normal(0.0, 1.0, n_labs)  # signed: only its square counts

    f = pytensor.function(
        [], lab_marginal(pt.as_tensor(eta), pt.as_tensor(noise), pt.as_tensor(specific), value, groups)
    )
    total = float(f())
    assert total == pytest.approx(lab_marginal_logp(value - eta, groups, noise, specific).sum(), rel=1e-12)

    # the gradient against PyTensor's automatic one of the same density from its own operations
    args = [pt.dvector(n) for n in ("eta", "noise", "specific")]
    grads = []
    for total_fn in (
        lambda e, s, t: lab_marginal(e, s, t, value, groups),
        lambda e, s, t: pt.sum(lab_marginal_logp(value - e, groups, s, t)),
    ):
        grads.append(pytensor.function(args, pt.grad(total_fn(*args), args))(eta, noise, specific))
    for ours, ref in zip(*grads, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_beta_binomial_op_gradient_and_no_second_derivative():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 25, 30)
    eta, phi = rng.normal(0, 1.5, 30), np.array(12.0)
    pytensor.gradient.verify_grad(
        lambda e, p: beta_binomial_logit(e, p, counts, 24).sum(),
        [eta, phi],
        rng=rng,
        abs_tol=1e-6,
        rel_tol=1e-6,
    )
    e = pt.dvector("e")
    g = pt.grad(beta_binomial_logit(e, 3.0, counts, 24).sum(), e)
    with pytest.raises(NotImplementedError, match="second derivatives"):
        pt.grad(g.sum(), e)


def test_linear_predictor_equals_its_gathers_with_exact_gradient():
    rng = np.random.default_rng(2)
    n, n_curves, n_effects, n_loadings = 60, 17, 23, 4
    data = {
        "offset": rng.normal(size=n),
        "curve_idx": rng.integers(0, n_curves, n),
        "loading_idx": rng.integers(0, n_loadings, n),
        "a_idx": rng.integers(0, n_effects, n),
        "b_idx": rng.integers(0, n_effects, n),
        "time": rng.normal(size=n),
    }
    curves, effects, loading = (
        rng.normal(size=n_curves),
        rng.normal(size=n_effects),
        rng.normal(size=n_loadings),
    )
    want = (
        data["offset"]
        + curves[data["curve_idx"]]
        + loading[data["loading_idx"]] * (effects[data["a_idx"]] + effects[data["b_idx"]] * data["time"])
    )
    split = 25
    got = [o.eval() for o in linear_predictor(curves, effects, loading, data, split)]
    # the split may be symbolic (the number of CT scores of the cohort's data)
    symbolic = linear_predictor(curves, effects, loading, data, pt.constant(np.zeros(split)).shape[0])
    np.testing.assert_allclose(np.concatenate([o.eval() for o in symbolic]), want, rtol=1e-14)
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-14)
    weights = rng.normal(size=n)
    for use in ("both", "first", "second"):

        def f(c, e, lam, use=use):
            a, b = linear_predictor(c, e, lam, data, split)
            parts = {"first": (a * weights[:split]).sum(), "second": (b * weights[split:]).sum()}
            return parts["first"] + parts["second"] if use == "both" else parts[use]

        pytensor.gradient.verify_grad(f, [curves, effects, loading], rng=rng, abs_tol=1e-7, rel_tol=1e-7)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_fused_and_unfused_graphs_are_the_same_model(name, small_cohort):
    """Log-density and gradient of the fused graph equal PyTensor's own operations' at random points."""
    spec = load_spec(name)
    design = build_design(small_cohort, spec)
    fused, plain = build_model(design, fused=True), build_model(design, fused=False)
    assert not _kernel_ops(plain)
    if name != "scan_logistic":
        ct_kernel = {"beta_binomial": "BetaBinomialLogit", "zone_sum": "ZoneSumLogit"}[spec.ct_likelihood]
        assert {ct_kernel, "LinearPredictor"} <= _kernel_ops(fused)
    assert ("LabMarginal" in _kernel_ops(fused)) == (name in ("joint", "joint_normal", "joint_zones"))
    logp = [m.compile_logp() for m in (fused, plain)]
    dlogp = [m.compile_dlogp() for m in (fused, plain)]
    rng = np.random.default_rng(4)
    start = fused.initial_point()
    for _ in range(5):
        point = {k: v + rng.normal(0.0, 0.5, size=np.shape(v)) for k, v in start.items()}
        assert logp[0](point) == pytest.approx(logp[1](point), rel=1e-12)
        np.testing.assert_allclose(dlogp[0](point), dlogp[1](point), rtol=1e-9, atol=1e-9)


def test_fused_graph_compiles_to_numba_and_agrees_with_c(small_cohort):
    """nutpie's mode: the kernels' numba implementations give what ``perform`` (C mode) gives."""
    model = build_model(build_design(small_cohort, load_spec("joint")))
    point = {k: v + 0.3 for k, v in model.initial_point().items()}
    c_mode = model.compile_dlogp()(point)
    numba_mode = model.compile_dlogp(mode="NUMBA")(point)
    np.testing.assert_allclose(numba_mode, c_mode, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cuts", [[-2.1, -0.4, 0.8, 2.9], [-0.3, -0.2, 0.1, 6.0]])
def test_zone_sum_kernel_equals_the_numpy_likelihood_with_exact_derivatives(cuts):
    from bayesct.likelihoods import CTLikelihood
    from bayesct.modeling.builders import zone_sum_logp

    cuts = np.array(cuts)
    rng = np.random.default_rng(2)
    counts = np.tile(np.arange(25), 4)
    eta = rng.normal(0.0, 3.0, counts.size)
    eta[:3] = [-30.0, 0.0, 30.0]
    lp, d_eta, d_cut = zone_sum_kernel(eta, cuts, counts, 6, PMF_FLOOR)
    ref = CTLikelihood("zone_sum", cutpoints=cuts[None, :]).logpmf(counts[None, :], eta[None, :])[0]
    np.testing.assert_allclose(lp, ref, rtol=1e-10, atol=1e-10)
    # the derivatives against PyTensor's automatic ones of the unfused graph (where not floored)
    e, c = pt.dvector("e"), pt.dvector("c")
    per = zone_sum_logp(pt.as_tensor(counts), e, c)
    g_eta = pytensor.function([e, c], pt.grad(per.sum(), e))(eta, cuts)
    live = lp > np.log(PMF_FLOOR) + 1.0
    np.testing.assert_allclose(d_eta[live], g_eta[live], rtol=1e-8, atol=1e-10)
    w = rng.normal(size=counts.size)
    g_cut = pytensor.function([e, c], pt.grad((per * np.where(live, w, 0.0)).sum(), c))(eta, cuts)
    np.testing.assert_allclose((w[live, None] * d_cut[live]).sum(0), g_cut, rtol=1e-8, atol=1e-10)
    # and the Op's gradient is assembled from them
    fused = zone_sum_logit(e, c, counts, 6)
    g_op = pytensor.function([e, c], pt.grad((fused * w).sum(), [e, c]))(eta, cuts)
    np.testing.assert_allclose(g_op[0], w * d_eta, rtol=1e-12)
    np.testing.assert_allclose(g_op[1], (w[:, None] * d_cut).sum(0), rtol=1e-12)


def test_kernel_ops_reject_misshapen_inputs():
    with pytest.raises(TypeError, match="vector eta, a scalar phi"):
        BetaBinomialLogit(24)(pt.dmatrix(), pt.dscalar(), pt.lvector())
    with pytest.raises(ValueError, match=r"counts must lie in 0\.\.24"):
        beta_binomial_logit(pt.dvector(), 3.0, np.array([0, 25]), 24)
    # no sizes among an Op's properties: one compiled node serves every cohort
    assert LinearPredictor() == LinearPredictor() and not LinearPredictor.__props__


def test_kernels_return_non_finite_values_instead_of_raising():
    """A wild leapfrog step (a scale at 0, a logit of -800) must give a non-finite log-density,
    which the samplers count as a divergence, not a ZeroDivisionError that ends the fit."""
    eta = np.array([-800.0, 0.0, 800.0])
    # counts the extreme means can produce: exact, finite
    lp, _, _ = beta_binomial_logit_kernel(eta, 38.0, np.array([0, 3, 24]), 24)
    assert lp[0] == 0.0 and lp[2] == 0.0 and np.isfinite(lp[1])
    # counts they cannot: log-density -inf
    lp, _, _ = beta_binomial_logit_kernel(eta, 38.0, np.array([5, 3, 2]), 24)
    assert lp[0] == -np.inf and lp[2] == -np.inf
    # no concentration at all: nothing finite, nothing raised
    lp, _, d_phi = beta_binomial_logit_kernel(eta[[1, 1]], 0.0, np.array([0, 3]), 24)
    assert not np.any(np.isfinite(lp)) and not np.any(np.isfinite(d_phi))
    # one patient's three values of one lab, with both SDs at 0
    one = np.zeros(1, dtype=np.int64)
    total, *_ = lab_marginal_kernel(
        np.array([0.1, -0.3, 0.2]),
        np.zeros(1),
        np.zeros(1),
        np.zeros(3),
        np.zeros(3, dtype=np.int64),
        one,
        one,
        np.array([3]),
    )
    assert not np.isfinite(total)
