r"""Fused likelihood kernels: each likelihood and its gradient in one pass over the data.

PyTensor builds a likelihood out of one node per operation, and the gradient out
of as many again; each node loops over the data and allocates its result. For
the ``joint`` spec on the default cohort (182 CT scores, 1,193 lab values) the
two likelihoods below took about three quarters of the time of a log-density and
gradient evaluation, most of it in special functions and per-node overhead. Here
each is one numba loop that returns the log-density together with its gradient,
wrapped in a PyTensor ``Op`` whose gradient is that precomputed output:

:class:`BetaBinomialLogit`
    The CT score's beta-binomial on a logit-scale mean. For an integer count
    :math:`y` the log-gamma differences are finite sums,
    :math:`\ln\Gamma(y + a) - \ln\Gamma(a) = \ln \prod_{k<y} (a + k)`, and their
    derivatives :math:`\sum_{k<y} 1/(a + k)`; both come from one running product
    and its derivative, so no log-gamma or digamma is evaluated at all.

:class:`ZoneSumLogit`
    The CT score as the sum of six exchangeable cumulative-logit zones
    (``ct_likelihood = "zone_sum"``): per count one convolution power of the zone pmf,
    and the gradient from the identity d(p^{*6}) = 6 dp * p^{*5}.

:class:`LabMarginal`
    The lab values with their patient-and-lab intercepts integrated out (the
    density of :func:`~bayesct.modeling.builders.lab_marginal_logp`), with the
    logarithms taken once per lab and once per distinct (lab, group size) pair.

:class:`LinearPredictor` (and :class:`LinearPredictorGrad`)
    Every observation's linear predictor, population curve plus loading times the
    patient's intercept and slope, in place of a gather and a scatter-add per term.

The model is unchanged: ``build_model(design, fused=False)`` builds the same
densities from PyTensor's own operations, and the tests hold the two equal in
log-density and gradient. In numba mode (nutpie) the kernels are compiled into
the log-density; in PyTensor's C mode (``--sampler pymc``) ``perform`` calls the
same compiled kernels. JAX (``--sampler numpyro``) uses the unfused graph.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic

from bayesct.likelihoods import PMF_FLOOR

_LOG_2PI = math.log(2.0 * math.pi)
# Below this, a product of up to 30 factors (a + k) stays far from overflow (1e8^30 = 1e240).
_PRODUCT_SAFE = 1e8


@numba.njit(cache=True, inline="always", error_model="numpy")
def _rising(a: float, m: int) -> tuple[float, float]:
    """The rising product a (a+1) ... (a+m-1) = G(a+m) / G(a), and its log-derivative sum 1/(a+k).

    Only for a < ``_PRODUCT_SAFE``, where up to 30 factors cannot overflow.
    """
    p = 1.0
    dp = 0.0
    for k in range(m):
        x = a + k
        dp = dp * x + p
        p = p * x
    return p, dp / p


@numba.njit(cache=True, inline="always", error_model="numpy")
def _log_rising_large(a: float, m: int) -> tuple[float, float]:
    """log of :func:`_rising` and its derivative, for large ``a``."""
    log_p = 0.0
    s = 0.0
    for k in range(m):
        log_p += math.log1p(k / a)
        s += 1.0 / (a + k)
    return m * math.log(a) + log_p, s


@numba.njit(cache=True, error_model="numpy")
def beta_binomial_logit_kernel(
    eta: np.ndarray, phi: float, counts: np.ndarray, n_trials: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per count: the log-pmf, its derivative in ``eta`` and its derivative in ``phi``.

    Beta-binomial of ``counts`` out of ``n_trials`` with mean ``sigmoid(eta)`` and
    precision ``phi`` (shape parameters ``a = mu phi``, ``b = (1 - mu) phi``):
    log C(n, y) + log[(a)_y (b)_(n-y) / (phi)_n] with rising products ``(x)_m``.
    """
    n = eta.shape[0]
    lp = np.empty(n)
    d_eta = np.empty(n)
    d_phi = np.empty(n)
    log_choose = np.zeros(n_trials + 1)
    for k in range(1, n_trials + 1):
        log_choose[k] = log_choose[k - 1] + math.log((n_trials - k + 1) / k)
    small = phi < _PRODUCT_SAFE and n_trials <= 30
    if small:
        p_phi, phi_rise_sum = _rising(phi, n_trials)
        log_phi_rise = math.log(p_phi)
    else:
        log_phi_rise, phi_rise_sum = _log_rising_large(phi, n_trials)
    mu = np.empty(n)
    nmu = np.empty(n)
    for i in range(n):
        e = math.exp(-abs(eta[i]))
        inv = 1.0 / (1.0 + e)
        if eta[i] >= 0.0:
            mu[i], nmu[i] = inv, e * inv
        else:
            mu[i], nmu[i] = e * inv, inv
    if small:
        # The rising products of every count at once, factor k for all counts in turn:
        # branch-free, so the loop over counts vectorises.
        pa, dpa, pb, dpb = np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
        for k in range(n_trials):
            for i in range(n):
                in_a = 1.0 if k < counts[i] else 0.0
                xa = in_a * (mu[i] * phi + k) + (1.0 - in_a)
                xb = (1.0 - in_a) * (nmu[i] * phi + (k - counts[i])) + in_a
                dpa[i] = dpa[i] * xa + in_a * pa[i]
                pa[i] *= xa
                dpb[i] = dpb[i] * xb + (1.0 - in_a) * pb[i]
                pb[i] *= xb
        for i in range(n):
            sa, sb = dpa[i] / pa[i], dpb[i] / pb[i]
            lp[i] = log_choose[counts[i]] + math.log(pa[i] * pb[i]) - log_phi_rise
            d_eta[i] = phi * mu[i] * nmu[i] * (sa - sb)
            d_phi[i] = mu[i] * sa + nmu[i] * sb - phi_rise_sum
    else:
        for i in range(n):
            y = counts[i]
            la, sa = _log_rising_large(mu[i] * phi, y)
            lb, sb = _log_rising_large(nmu[i] * phi, n_trials - y)
            lp[i] = log_choose[y] + la + lb - log_phi_rise
            d_eta[i] = phi * mu[i] * nmu[i] * (sa - sb)
            d_phi[i] = mu[i] * sa + nmu[i] * sb - phi_rise_sum
    return lp, d_eta, d_phi


@numba.njit(cache=True, inline="always", error_model="numpy")
def _expit_pair(d: float) -> tuple[float, float]:
    """(expit(d), expit(-d)), each without cancellation."""
    e = math.exp(-abs(d))
    inv = 1.0 / (1.0 + e)
    if d >= 0.0:
        return inv, e * inv
    return e * inv, inv


@numba.njit(cache=True, error_model="numpy")
def zone_sum_kernel(
    eta: np.ndarray, cutpoints: np.ndarray, counts: np.ndarray, n_zones: int, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per count: the zone-sum log-pmf, its derivative in ``eta`` and in each cut-point.

    ``n_zones`` exchangeable zones, each cumulative-logit on ``eta`` with the shared
    ``cutpoints`` (4, increasing): with F_j = expit(c_j - eta), zone pmf p_0 = F_0,
    p_j = F_j (1 - F_{j-1}) (1 - exp(c_{j-1} - c_j)) (no cancellation), p_4 = 1 - F_3.
    The total's pmf is the convolution power P = p^{*N}, and dP = N dp * p^{*(N-1)}:
    one convolution power per count, then the count's term and its gradient. A pmf
    below ``floor`` is floored (log-pmf log(floor), gradient 0).
    """
    n = eta.shape[0]
    C = cutpoints.shape[0]
    K = C + 1
    lp = np.empty(n)
    d_eta = np.empty(n)
    d_cut = np.zeros((n, C))
    gap = np.empty(C - 1)
    for j in range(1, C):
        gap[j - 1] = -math.expm1(cutpoints[j - 1] - cutpoints[j])
    width_q = (n_zones - 1) * C + 1
    F = np.empty(C)
    S = np.empty(C)
    f = np.empty(C)
    p = np.empty(K)
    dpe = np.empty(K)
    q = np.zeros(width_q)
    nxt = np.zeros(width_q)
    dpc = np.empty(C)
    for i in range(n):
        for j in range(C):
            F[j], S[j] = _expit_pair(cutpoints[j] - eta[i])
            f[j] = F[j] * S[j]
        p[0] = F[0]
        for j in range(1, C):
            p[j] = F[j] * S[j - 1] * gap[j - 1]
        p[C] = S[C - 1]
        dpe[0] = -f[0]
        for j in range(1, C):
            dpe[j] = f[j - 1] - f[j]
        dpe[C] = f[C - 1]
        # q = p^{*(N-1)}
        for m in range(width_q):
            q[m] = 0.0
        for j in range(K):
            q[j] = p[j]
        width = K
        for _ in range(n_zones - 2):
            for m in range(width + C):
                nxt[m] = 0.0
            for m in range(width):
                for j in range(K):
                    nxt[m + j] += q[m] * p[j]
            width += C
            for m in range(width):
                q[m] = nxt[m]
        y = counts[i]
        total = 0.0
        de = 0.0
        for j in range(C):
            dpc[j] = 0.0
        for j in range(K):
            m = y - j
            if 0 <= m < width:
                total += p[j] * q[m]
                de += dpe[j] * q[m]
                if j < C:
                    dpc[j] += f[j] * q[m]
                if j >= 1:
                    dpc[j - 1] -= f[j - 1] * q[m]
        if total > floor:
            lp[i] = math.log(total)
            d_eta[i] = n_zones * de / total
            for j in range(C):
                d_cut[i, j] = n_zones * dpc[j] / total
        else:
            lp[i] = math.log(floor)
            d_eta[i] = 0.0
    return lp, d_eta, d_cut


@numba.njit(cache=True, error_model="numpy")
def lab_marginal_kernel(
    eta: np.ndarray,
    noise_sd: np.ndarray,
    specific_sd: np.ndarray,
    value: np.ndarray,
    group: np.ndarray,
    pair_of_group: np.ndarray,
    pair_lab: np.ndarray,
    pair_n: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The total log-density of the lab values and its gradient in ``eta``, ``noise_sd``, ``specific_sd``.

    Value j belongs to group ``group[j]`` (one patient and lab); group g has the lab
    ``pair_lab[pair_of_group[g]]`` and ``pair_n[pair_of_group[g]]`` values. Per group,
    with residuals r, noise SD s, intercept SD t and D = s^2 + n t^2:
    log p = -1/2 [n log 2 pi + (n - 1) log s^2 + log D + (sum r^2 - t^2 (sum r)^2 / D) / s^2].
    ``specific_sd`` enters squared, so its sign is immaterial (it may be sampled signed).
    Groups of the same (lab, size) pair share everything but their sums of r and r^2, so
    the logarithms, divisions and gradient terms are taken per pair.
    """
    n_val = eta.shape[0]
    n_groups = pair_of_group.shape[0]
    n_pairs = pair_lab.shape[0]
    r1 = np.zeros(n_groups)
    sum_r2 = np.zeros(n_pairs)
    for j in range(n_val):
        r = value[j] - eta[j]
        r1[group[j]] += r
        sum_r2[pair_of_group[group[j]]] += r * r
    count = np.zeros(n_pairs)
    sum_r1sq = np.zeros(n_pairs)
    for g in range(n_groups):
        p = pair_of_group[g]
        count[p] += 1.0
        sum_r1sq[p] += r1[g] * r1[g]
    total = -0.5 * n_val * _LOG_2PI
    d_noise = np.zeros(noise_sd.shape[0])
    d_specific = np.zeros(noise_sd.shape[0])
    shrink = np.empty(n_pairs)  # t^2 / D
    for p in range(n_pairs):
        lab = pair_lab[p]
        n = pair_n[p]
        s, t = noise_sd[lab], specific_sd[lab]
        s2, t2 = s * s, t * t
        d = s2 + n * t2
        inv_d, inv_s2 = 1.0 / d, 1.0 / s2
        c = t2 * inv_d
        a1, a2, m = sum_r1sq[p], sum_r2[p], count[p]
        total -= 0.5 * (m * ((n - 1.0) * math.log(s2) + math.log(d)) + (a2 - c * a1) * inv_s2)
        d_specific[lab] += t * inv_d * (a1 * inv_d - m * n)
        d_noise[lab] += (a2 * inv_s2 - m * (n - 1.0) - c * a1 * (d + s2) * inv_d * inv_s2) / s - m * s * inv_d
        shrink[p] = c
    inv_s2_lab = 1.0 / (noise_sd * noise_sd)
    d_eta = np.empty(n_val)
    for j in range(n_val):
        g = group[j]
        p = pair_of_group[g]
        d_eta[j] = (value[j] - eta[j] - shrink[p] * r1[g]) * inv_s2_lab[pair_lab[p]]
    return total, d_eta, d_noise, d_specific


def _indices(x: Any) -> Any:
    """An integer data input as it comes (PyMC keeps model data as int32; the kernels loop over either
    width, so no cast copies the data at each evaluation); anything else as int64."""
    x = pt.as_tensor_variable(x)
    return x if x.dtype in ("int32", "int64") else pt.cast(x, "int64")


def _source_key(op: Op) -> str:
    """A numba cache key for an Op of this module: its class, its props and this file's source."""
    src = Path(__file__).read_bytes()
    props = tuple(getattr(op, p) for p in getattr(op, "__props__", ()))
    return hashlib.sha256(f"{type(op).__qualname__}|{props}|".encode() + src).hexdigest()


def _check_second_order(output_grads: Sequence[Any], first: int) -> None:
    from pytensor.gradient import DisconnectedType

    for g in output_grads[first:]:
        if not isinstance(g.type, DisconnectedType):
            raise NotImplementedError("the fused likelihood kernels have no second derivatives")


class _PerCountOp(Op):
    """A per-count CT log-pmf with one parameter ``param`` beside ``eta``, from a fused kernel that
    returns the log-pmf and its derivatives in ``eta`` (per count) and ``param`` (per count, and
    per element of a vector ``param``); the gradient of the first output is assembled from them."""

    #: dimensions of the parameter (0: a scalar, 1: a vector) and its name, for error messages
    param_ndim: int
    param_name: str

    def _kernel(self, eta: np.ndarray, param: np.ndarray, counts: np.ndarray) -> tuple:
        raise NotImplementedError

    def make_node(self, eta: Any, param: Any, counts: Any) -> Apply:  # type: ignore[override]
        eta = pt.as_tensor_variable(eta, dtype="float64")
        param = pt.as_tensor_variable(param, dtype="float64")
        counts = _indices(counts)
        if eta.ndim != 1 or param.ndim != self.param_ndim or counts.ndim != 1:
            kind = "a scalar" if self.param_ndim == 0 else "a vector"
            raise TypeError(
                f"{type(self).__name__} needs a vector eta, {kind} {self.param_name} and a vector of counts, "
                f"got {eta.type}, {param.type}, {counts.type}"
            )
        d_param = eta.type() if self.param_ndim == 0 else pt.dmatrix()
        return Apply(self, [eta, param, counts], [eta.type(), eta.type(), d_param])

    def perform(self, node: Apply, inputs: Sequence[Any], output_storage: Sequence[Any]) -> None:
        for store, out in zip(output_storage, self._kernel(*inputs), strict=True):
            store[0] = out

    def infer_shape(self, node: Apply, shapes: list) -> list:
        n = shapes[0]
        return [n, n, n if self.param_ndim == 0 else (n[0], shapes[1][0])]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True, True, True], [True, True, True], [False, False, False]]

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any], output_grads: Sequence[Any]) -> list:
        _check_second_order(output_grads, 1)
        g = output_grads[0]
        g_param = g if self.param_ndim == 0 else g[:, None]
        return [g * outputs[1], pt.sum(g_param * outputs[2], axis=0), disconnected_type()]


class BetaBinomialLogit(_PerCountOp):
    """Elementwise beta-binomial log-pmf of integer ``counts`` out of ``n_trials``, mean ``sigmoid(eta)``,
    precision ``phi`` (a scalar); derivatives in ``eta`` and ``phi`` per count."""

    __props__ = ("n_trials",)
    param_ndim, param_name = 0, "phi"

    def __init__(self, n_trials: int) -> None:
        self.n_trials = int(n_trials)

    def _kernel(self, eta: np.ndarray, param: np.ndarray, counts: np.ndarray) -> tuple:
        return beta_binomial_logit_kernel(eta, float(param), counts, self.n_trials)


class ZoneSumLogit(_PerCountOp):
    """Elementwise log-pmf of integer CT totals as the sum of ``n_zones`` exchangeable zones (see the
    kernel), shared ``cutpoints`` (4); derivatives in ``eta`` per count and in the cut-points per
    count and cut-point."""

    __props__ = ("n_zones",)
    param_ndim, param_name = 1, "cutpoints"

    def __init__(self, n_zones: int) -> None:
        self.n_zones = int(n_zones)

    def _kernel(self, eta: np.ndarray, param: np.ndarray, counts: np.ndarray) -> tuple:
        return zone_sum_kernel(eta, param, counts, self.n_zones, PMF_FLOOR)


class LabMarginal(Op):
    """Total log-density of lab values with patient-and-lab intercepts integrated out (see the kernel).

    Inputs: ``eta`` (per value), ``noise_sd`` and ``specific_sd`` (per lab), then the
    data: ``value``, ``group``, ``pair_of_group``, ``pair_lab``, ``pair_n``. Outputs the
    total and its gradient in the first three inputs.
    """

    __props__ = ()

    def make_node(self, eta: Any, noise_sd: Any, specific_sd: Any, *data: Any) -> Apply:  # type: ignore[override]
        eta, noise_sd, specific_sd = (
            pt.as_tensor_variable(x, dtype="float64") for x in (eta, noise_sd, specific_sd)
        )
        value, group, pair_of_group, pair_lab, pair_n = data
        data_vars = [
            pt.as_tensor_variable(value, dtype="float64"),
            _indices(group),
            _indices(pair_of_group),
            _indices(pair_lab),
            pt.as_tensor_variable(pair_n, dtype="float64"),
        ]
        outputs = [pt.dscalar(), eta.type(), noise_sd.type(), specific_sd.type()]
        return Apply(self, [eta, noise_sd, specific_sd, *data_vars], outputs)

    def perform(self, node: Apply, inputs: Sequence[Any], output_storage: Sequence[Any]) -> None:
        total, *grads = lab_marginal_kernel(*inputs)
        output_storage[0][0] = np.asarray(total)
        for store, out in zip(output_storage[1:], grads, strict=True):
            store[0] = out

    def infer_shape(self, node: Apply, shapes: list) -> list:
        return [(), shapes[0], shapes[1], shapes[2]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True] * 4] * 3 + [[False] * 4] * 5

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any], output_grads: Sequence[Any]) -> list:
        _check_second_order(output_grads, 1)
        g = output_grads[0]
        return [g * outputs[1], g * outputs[2], g * outputs[3]] + [disconnected_type() for _ in range(5)]


def beta_binomial_logit(eta: Any, phi: Any, counts: Any, n_trials: int) -> Any:
    """Per-count beta-binomial log-pmf (a PyTensor vector) through the fused kernel.

    The kernel indexes a table by count: counts must lie in 0..n_trials (checked here
    when they are data; the cohort's validation guarantees it for CT scores).
    """
    data = counts.data if isinstance(counts, pt.TensorConstant) else counts
    if (
        isinstance(data, np.ndarray | list)
        and np.size(data)
        and not (np.min(data) >= 0 and np.max(data) <= n_trials)
    ):
        raise ValueError(f"beta-binomial counts must lie in 0..{n_trials}")
    return BetaBinomialLogit(n_trials).make_node(eta, phi, counts).outputs[0]


def zone_sum_logit(eta: Any, cutpoints: Any, counts: Any, n_zones: int) -> Any:
    """Per-count zone-sum log-pmf (a PyTensor vector) through the fused kernel."""
    data = counts.data if isinstance(counts, pt.TensorConstant) else counts
    n_max = n_zones * 4
    if (
        isinstance(data, np.ndarray | list)
        and np.size(data)
        and not (np.min(data) >= 0 and np.max(data) <= n_max)
    ):
        raise ValueError(f"zone-sum counts must lie in 0..{n_max}")
    return ZoneSumLogit(n_zones).make_node(eta, cutpoints, counts).outputs[0]


def lab_marginal(
    eta: Any, noise_sd: Any, specific_sd: Any, value: Any, groups: tuple, pairs: tuple | None = None
) -> Any:
    """Total lab log-density (a PyTensor scalar) through the fused kernel.

    ``groups`` is :func:`~bayesct.modeling.builders.labs_groups`'s (group id per value,
    lab per group, patient per group, size per group); ``pairs`` is
    :func:`lab_size_pairs` of them (computed here when not given; give it, with ``value``
    and the group ids, as data tensors to keep the cohort out of the graph).
    """
    pair_of_group, pair_lab, pair_n, _ = lab_size_pairs(groups) if pairs is None else pairs
    return (
        LabMarginal()
        .make_node(eta, noise_sd, specific_sd, value, groups[0], pair_of_group, pair_lab, pair_n)
        .outputs[0]
    )


def lab_size_pairs(groups: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (lab, group size) pairs of ``labs_groups``'s groups.

    Returns each group's pair, and per pair its lab, its size and how many groups it has.
    """
    _, lab_of_group, _, size = groups
    pairs, pair_of_group, count = np.unique(
        np.c_[lab_of_group, size], axis=0, return_inverse=True, return_counts=True
    )
    return (
        pair_of_group.ravel().astype(np.int64),
        pairs[:, 0].astype(np.int64),
        pairs[:, 1].astype(float),
        count,
    )


@numba_basic.register_funcify_and_cache_key(BetaBinomialLogit)
def _numba_beta_binomial_logit(op: BetaBinomialLogit, node: Apply | None = None, **kwargs: Any) -> tuple:
    n_trials = op.n_trials

    @numba_basic.numba_njit
    def beta_binomial_logit(eta, phi, counts):
        return beta_binomial_logit_kernel(eta, phi.item(), counts, n_trials)

    return beta_binomial_logit, _source_key(op)


@numba_basic.register_funcify_and_cache_key(LabMarginal)
def _numba_lab_marginal(op: LabMarginal, node: Apply | None = None, **kwargs: Any) -> tuple:
    @numba_basic.numba_njit
    def lab_marginal(eta, noise_sd, specific_sd, value, group, pair_of_group, pair_lab, pair_n):
        total, d_eta, d_noise, d_specific = lab_marginal_kernel(
            eta, noise_sd, specific_sd, value, group, pair_of_group, pair_lab, pair_n
        )
        return np.asarray(total), d_eta, d_noise, d_specific

    return lab_marginal, _source_key(op)


# --- the linear predictor -------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def predictor_kernel(
    curves: np.ndarray,
    effects: np.ndarray,
    loading: np.ndarray,
    offset: np.ndarray,
    curve_idx: np.ndarray,
    loading_idx: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    time: np.ndarray,
) -> np.ndarray:
    """eta[j] = offset[j] + curves[curve_idx[j]] + loading[loading_idx[j]] (effects[a_idx[j]] + effects[b_idx[j]] time[j])."""
    n = offset.shape[0]
    eta = np.empty(n)
    for j in range(n):
        eta[j] = (
            offset[j]
            + curves[curve_idx[j]]
            + loading[loading_idx[j]] * (effects[a_idx[j]] + effects[b_idx[j]] * time[j])
        )
    return eta


@numba.njit(cache=True, error_model="numpy")
def predictor_grad_kernel(
    g_eta: np.ndarray,
    n_curves: int,
    effects: np.ndarray,
    loading: np.ndarray,
    curve_idx: np.ndarray,
    loading_idx: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    time: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradient of sum(g_eta * eta) in ``curves``, ``effects`` and ``loading``.

    (``eta`` as in :func:`predictor_kernel`.)
    """
    d_curves = np.zeros(n_curves)
    d_effects = np.zeros(effects.shape[0])
    d_loading = np.zeros(loading.shape[0])
    for j in range(g_eta.shape[0]):
        g = g_eta[j]
        k, a, b = loading_idx[j], a_idx[j], b_idx[j]
        d_curves[curve_idx[j]] += g
        gl = g * loading[k]
        d_effects[a] += gl
        d_effects[b] += gl * time[j]
        d_loading[k] += g * (effects[a] + effects[b] * time[j])
    return d_curves, d_effects, d_loading


_PREDICTOR_DATA = ("offset", "curve_idx", "loading_idx", "a_idx", "b_idx", "time")
_PREDICTOR_DTYPES = ("float64", "int64", "int64", "int64", "int64", "float64")


def _predictor_data(data: Any) -> list:
    return [
        _indices(x) if dt == "int64" else pt.as_tensor_variable(x, dtype=dt)
        for x, dt in zip(data, _PREDICTOR_DTYPES, strict=True)
    ]


class LinearPredictor(Op):
    """Per observation j: ``offset + curves[curve_idx] + loading[loading_idx] (effects[a_idx] + effects[b_idx] time)``.

    The trajectories of every marker in one node, in place of a gather, product and sum
    per term and a scatter-add per term in the gradient. Inputs: ``curves`` (flat),
    ``effects`` (flat), ``loading``, then the data ``offset``, ``curve_idx``,
    ``loading_idx``, ``a_idx``, ``b_idx``, ``time``; the output is every observation's
    predictor. Sizes are read from the inputs: one compiled node serves any cohort.
    """

    __props__ = ()

    def make_node(self, curves: Any, effects: Any, loading: Any, *data: Any) -> Apply:  # type: ignore[override]
        params = [pt.as_tensor_variable(x, dtype="float64") for x in (curves, effects, loading)]
        return Apply(self, [*params, *_predictor_data(data)], [pt.dvector()])

    def perform(self, node: Apply, inputs: Sequence[Any], output_storage: Sequence[Any]) -> None:
        output_storage[0][0] = predictor_kernel(*inputs)

    def infer_shape(self, node: Apply, shapes: list) -> list:
        return [shapes[3]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True]] * 3 + [[False]] * 6

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any], output_grads: Sequence[Any]) -> list:
        curves, effects, loading, *data = inputs
        grads = LinearPredictorGrad().make_node(output_grads[0], curves, effects, loading, *data[1:]).outputs
        return list(grads) + [disconnected_type() for _ in data]


class LinearPredictorGrad(Op):
    """The gradient of :class:`LinearPredictor` from the gradient ``g`` of its output.

    Inputs: ``g``, the parameters, the index data; outputs the gradients in ``curves``,
    ``effects`` and ``loading``.
    """

    __props__ = ()

    def make_node(self, g: Any, curves: Any, effects: Any, loading: Any, *data: Any) -> Apply:  # type: ignore[override]
        vecs = [pt.as_tensor_variable(x, dtype="float64") for x in (g, curves, effects, loading)]
        data_vars = _predictor_data((np.zeros(0), *data))[1:]
        return Apply(self, [*vecs, *data_vars], [vecs[1].type(), vecs[2].type(), vecs[3].type()])

    def perform(self, node: Apply, inputs: Sequence[Any], output_storage: Sequence[Any]) -> None:
        g, curves, effects, loading, *data = inputs
        outs = predictor_grad_kernel(g, curves.shape[0], effects, loading, *data)
        for store, out in zip(output_storage, outs, strict=True):
            store[0] = out


def linear_predictor(curves: Any, effects: Any, loading: Any, data: dict[str, Any], split: Any) -> list:
    """The predictors of :class:`LinearPredictor` (``data`` keyed by its data input names), split at
    ``split`` (an integer or a symbolic scalar) into the CT scores' and the labs'."""
    node = LinearPredictor().make_node(curves, effects, loading, *(data[k] for k in _PREDICTOR_DATA))
    eta: Any = node.outputs[0]
    return [eta[:split], eta[split:]]


@numba_basic.register_funcify_and_cache_key(LinearPredictor)
def _numba_linear_predictor(op: LinearPredictor, node: Apply | None = None, **kwargs: Any) -> tuple:
    @numba_basic.numba_njit
    def linear_predictor(curves, effects, loading, offset, curve_idx, loading_idx, a_idx, b_idx, time):
        return predictor_kernel(curves, effects, loading, offset, curve_idx, loading_idx, a_idx, b_idx, time)

    return linear_predictor, _source_key(op)


@numba_basic.register_funcify_and_cache_key(LinearPredictorGrad)
def _numba_linear_predictor_grad(op: LinearPredictorGrad, node: Apply | None = None, **kwargs: Any) -> tuple:
    @numba_basic.numba_njit
    def linear_predictor_grad(g, curves, effects, loading, curve_idx, loading_idx, a_idx, b_idx, time):
        return predictor_grad_kernel(
            g, curves.shape[0], effects, loading, curve_idx, loading_idx, a_idx, b_idx, time
        )

    return linear_predictor_grad, _source_key(op)


@numba_basic.register_funcify_and_cache_key(ZoneSumLogit)
def _numba_zone_sum_logit(op: ZoneSumLogit, node: Apply | None = None, **kwargs: Any) -> tuple:
    n_zones = op.n_zones

    @numba_basic.numba_njit
    def zone_sum_logit(eta, cutpoints, counts):
        return zone_sum_kernel(eta, cutpoints, counts, n_zones, PMF_FLOOR)

    return zone_sum_logit, _source_key(op)
