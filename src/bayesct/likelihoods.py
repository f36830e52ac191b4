r"""Numpy forms of the observation likelihoods.

This module states each observation likelihood once. The equations are written
against a small array namespace (:class:`ArrayOps`): :data:`NUMPY_OPS` for the
numpy view of a fit (posterior predictive checks, pointwise log-likelihoods,
risk) and :func:`pytensor_ops` for the model graph that
:mod:`bayesct.modeling.builders` builds without the fused kernels, so the graph
and the numpy view evaluate the same expression; the fused numba kernels
(:mod:`bayesct.modeling.kernels`) are the one other statement of each, held
equal by the tests. Importing this module imports neither PyMC nor PyTensor.

The zone-level CT likelihood
----------------------------
The semi-quantitative chest CT score is the sum of :data:`~bayesct.constants.N_ZONES`
lung-zone scores (:data:`~bayesct.constants.CT_ZONES`), each an ordinal
:math:`Y_z \in \{0, \dots, K\}` with :math:`K =` :data:`~bayesct.constants.ZONE_MAX`.
Each zone follows a cumulative-logit (proportional-odds) model with latent
severity :math:`\eta_z` and increasing cut-points :math:`c_{z,0} < \dots < c_{z,K-1}`:

.. math::

    P(Y_z \le j) = \operatorname{expit}(c_{z,j} - \eta_z), \qquad j = 0, \dots, K - 1,

so that, with :math:`d_j = c_{z,j} - \eta_z`, :math:`d_{-1} = -\infty` and
:math:`d_K = +\infty`,

.. math::

    P(Y_z = j) = \operatorname{expit}(d_j) - \operatorname{expit}(d_{j-1})
               = \operatorname{expit}(d_j)\,\operatorname{expit}(-d_{j-1})\,
                 \bigl(1 - e^{d_{j-1} - d_j}\bigr).

The right-hand product is evaluated in log space,
:math:`\log\operatorname{expit}(d_j) + \log\operatorname{expit}(-d_{j-1}) +
\operatorname{log1mexp}(d_{j-1} - d_j)`, which involves no cancellation in
either tail. Given the latent severities the zones are independent, and the
total :math:`S = \sum_z Y_z \in \{0, \dots, N K\}` has the exact convolution pmf

.. math::

    P(S = s) = \sum_{y_1 + \dots + y_N = s} \prod_{z=1}^{N} P(Y_z = y_z),

computed one zone at a time in probability space (the product form above has
no cancellation; a probability below the smallest positive double is floored
before its log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, gammaln, log_expit

from bayesct.constants import CT_MAX, CT_ZONES, N_ZONES, ZONE_MAX

__all__ = [
    "CT_FAMILIES",
    "LAB_FAMILIES",
    "NUMPY_OPS",
    "ZONES",
    "ArrayOps",
    "CTLikelihood",
    "LabLikelihood",
    "beta_binomial_logpmf",
    "convolve_zone_pmfs",
    "cs_normal_logpdf",
    "death_loglik",
    "log1mexp",
    "pytensor_ops",
    "zone_draw",
    "zone_log_table",
    "zone_logpmf",
    "zone_sum_draw",
    "zone_sum_loglik",
    "zone_sum_logpmf",
    "zones_loglik",
]

#: The zone columns, in the order of the zone axis of per-zone arguments.
ZONES: tuple[str, ...] = CT_ZONES

_LN2 = float(np.log(2.0))
#: Probabilities are floored here before their log: a log-pmf never reaches -inf.
PMF_FLOOR = float(np.finfo(float).tiny)


@dataclass(frozen=True)
class ArrayOps:
    """The array functions the likelihoods are written in: numpy's or PyTensor's.

    Every equation of this module takes one (``ops``), so that the model graph passes
    :func:`pytensor_ops` and the numpy view :data:`NUMPY_OPS` to the same function.
    """

    log: Callable[..., Any]
    exp: Callable[..., Any]
    log_sigmoid: Callable[..., Any]
    log1mexp: Callable[..., Any]
    gammaln: Callable[..., Any]
    concatenate: Callable[..., Any]
    zeros: Callable[..., Any]
    eq: Callable[..., Any]
    where: Callable[..., Any]
    arange: Callable[..., Any]


def pytensor_ops() -> ArrayOps:
    """PyTensor's functions, for the model graph (imported on first use)."""
    import pytensor.tensor as pt

    return ArrayOps(
        log=pt.log,
        exp=pt.exp,
        log_sigmoid=lambda x: -pt.log1pexp(-x),
        log1mexp=pt.log1mexp,
        gammaln=pt.gammaln,
        concatenate=pt.concatenate,
        zeros=pt.zeros,
        eq=pt.eq,
        where=pt.switch,
        arange=pt.arange,
    )


def log1mexp(x: ArrayLike) -> NDArray[np.float64]:
    r"""Stable :math:`\log(1 - e^{x})` for :math:`x \le 0`.

    Uses :math:`\log(-\operatorname{expm1}(x))` for :math:`x > -\log 2` and
    :math:`\operatorname{log1p}(-e^{x})` otherwise (Maechler 2012). Returns
    ``-inf`` at ``x = 0`` and ``0`` at ``x = -inf``.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        near = x > -_LN2
        out = np.where(
            near, np.log(-np.expm1(np.where(near, x, -1.0))), np.log1p(-np.exp(np.minimum(x, 0.0)))
        )
    return np.asarray(out, dtype=float)


#: numpy's (and scipy's) functions, for the numpy view of a fit.
NUMPY_OPS = ArrayOps(
    log=np.log,
    exp=np.exp,
    log_sigmoid=log_expit,
    log1mexp=log1mexp,
    gammaln=gammaln,
    concatenate=np.concatenate,
    zeros=np.zeros,
    eq=np.equal,
    where=np.where,
    arange=np.arange,
)


def zone_log_table(eta: Any, cutpoints: Any, ops: ArrayOps = NUMPY_OPS) -> Any:
    r"""``log P(Y = j)``, j = 0..4, of one cumulative-logit zone: the equation of the module
    docstring, with :math:`d_j = c_j - \eta`:

    .. math::

        \log\operatorname{expit}(d_j) + \log\operatorname{expit}(-d_{j-1})
        + \operatorname{log1mexp}(c_{j-1} - c_j)

    (the first and last categories :math:`\log\operatorname{expit}(d_0)`,
    :math:`\log\operatorname{expit}(-d_3)`). ``eta`` has any shape ``(...)``, ``cutpoints``
    ``(..., 4)`` broadcasting against it; returns ``(...) + (5,)``. No argument checks:
    :func:`zone_logpmf` is the checked numpy entry point.
    """
    d = cutpoints - eta[..., None]
    gap = ops.log1mexp(cutpoints[..., :-1] - cutpoints[..., 1:])
    inner = ops.log_sigmoid(d[..., 1:]) + ops.log_sigmoid(-d[..., :-1]) + gap
    return ops.concatenate([ops.log_sigmoid(d[..., :1]), inner, ops.log_sigmoid(-d[..., -1:])], axis=-1)


def convolve_zone_pmfs(pmfs: Sequence[Any], ops: ArrayOps = NUMPY_OPS) -> Any:
    r"""The pmf of the sum of independent zone scores, ``(N, 25)``, from their pmfs (six ``(N, 5)``
    arrays; the same array six times for exchangeable zones), by exact convolution in probability
    space: :math:`P_{1:z}(s) = \sum_k P_{1:z-1}(s - k) P(Y_z = k)`."""
    acc = pmfs[0]
    n = acc.shape[0]
    for p in pmfs[1:]:
        acc = sum(
            ops.concatenate([ops.zeros((n, k)), acc * p[:, k][:, None], ops.zeros((n, ZONE_MAX - k))], axis=1)
            for k in range(ZONE_MAX + 1)
        )
    return acc


def zone_sum_pmf(eta: Any, cutpoints: Any, offsets: Any = None, ops: ArrayOps = NUMPY_OPS) -> Any:
    """``(N, 25)`` pmf of the total of six zones on ``eta`` (N,) with cut-points (4,) or (N, 4):
    exchangeable, or zone z on ``eta + offsets[..., z]`` (offsets (6,) or (N, 6))."""
    if offsets is None:
        return convolve_zone_pmfs([ops.exp(zone_log_table(eta, cutpoints, ops))] * N_ZONES, ops)
    return convolve_zone_pmfs(
        [ops.exp(zone_log_table(eta + offsets[..., z], cutpoints, ops)) for z in range(N_ZONES)], ops
    )


def zones_loglik(zones: Any, eta: Any, cutpoints: Any, offsets: Any, ops: ArrayOps = NUMPY_OPS) -> Any:
    """Log-likelihood of observed zone scores ``zones`` (..., 6), summed over each scan's zones:
    zone z cumulative-logit on ``eta + offsets[..., z]`` (``eta`` (...), cut-points (..., 4) and
    offsets (..., 6) broadcasting against it)."""
    table = zone_log_table(eta[..., None] + offsets, cutpoints[..., None, :], ops)  # (..., 6, 5)
    pick = ops.eq(zones[..., None], ops.arange(ZONE_MAX + 1))
    return ops.where(pick, table, 0.0).sum(axis=(-1, -2))


def beta_binomial_logpmf(y: Any, mu: Any, phi: Any, ops: ArrayOps = NUMPY_OPS) -> Any:
    r"""Beta-binomial log-pmf of ``y`` out of 24 with mean ``mu`` and precision ``phi``:

    .. math::

        \log\binom{24}{y} + \log\Gamma(y + a) - \log\Gamma(a) + \log\Gamma(24 - y + b)
        - \log\Gamma(b) + \log\Gamma(\phi) - \log\Gamma(24 + \phi),
        \qquad a = \mu\phi,\ b = (1 - \mu)\phi,

    (with :math:`a + b = \phi`, two of the six log-gammas depend on ``phi`` alone).
    Elementwise, broadcasting.
    """
    n = np.float64(CT_MAX)
    a = mu * phi
    b = (1.0 - mu) * phi
    g = ops.gammaln
    log_choose = g(n + 1.0) - g(y + 1.0) - g(n - y + 1.0)
    return log_choose + g(y + a) - g(a) + g(n - y + b) - g(b) + g(phi) - g(n + phi)


def _check_cutpoints(cutpoints: NDArray[np.float64], per_zone: bool) -> None:
    need = 2 if per_zone else 1
    if cutpoints.ndim < need or cutpoints.shape[-1] != ZONE_MAX:
        want = f"(..., {N_ZONES}, {ZONE_MAX})" if per_zone else f"(..., {ZONE_MAX})"
        raise ValueError(f"cutpoints must have shape {want}, got {cutpoints.shape}")
    if per_zone and cutpoints.shape[-2] != N_ZONES:
        raise ValueError(
            f"per-zone cutpoints must have shape (..., {N_ZONES}, {ZONE_MAX}), got {cutpoints.shape}"
        )
    if np.isnan(cutpoints).any():
        raise ValueError("cutpoints contain NaN")
    if (np.diff(cutpoints, axis=-1) < 0).any():
        raise ValueError("cutpoints must be increasing along the last axis")


def zone_logpmf(eta: ArrayLike, cutpoints: ArrayLike) -> NDArray[np.float64]:
    r"""Log pmf of one zone score :math:`Y \in \{0, \dots, 4\}` under the cumulative-logit model.

    .. math::

        P(Y \le j) = \operatorname{expit}(c_j - \eta), \quad j = 0, \dots, 3;
        \qquad
        \log P(Y = j) = \log\operatorname{expit}(d_j) + \log\operatorname{expit}(-d_{j-1})
                        + \operatorname{log1mexp}(d_{j-1} - d_j),

    with :math:`d_j = c_j - \eta`, :math:`d_{-1} = -\infty`, :math:`d_4 = +\infty`.

    Parameters
    ----------
    eta
        Latent severity, any shape ``(...)``.
    cutpoints
        Cut-points, shape ``(..., 4)``, non-decreasing along the last axis; the
        leading axes broadcast against ``eta``.

    Returns
    -------
    numpy.ndarray
        ``log P(Y = j)`` for ``j = 0..4``, shape ``broadcast(eta, cutpoints[..., 0]) + (5,)``.
        Equal adjacent cut-points give ``-inf`` for the empty category.

    Raises
    ------
    ValueError
        If ``cutpoints`` does not end in an axis of 4, holds NaN or decreases.
    """
    eta = np.asarray(eta, dtype=float)
    c = np.asarray(cutpoints, dtype=float)
    _check_cutpoints(c, per_zone=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(zone_log_table(eta, c))


def _zone_table(
    eta: ArrayLike, cutpoints: ArrayLike, per_zone_eta: bool | None, per_zone_cutpoints: bool | None
) -> NDArray[np.float64]:
    """Per-zone log pmfs, shape ``(..., N_ZONES, ZONE_MAX + 1)``."""
    e = np.asarray(eta, dtype=float)
    c = np.asarray(cutpoints, dtype=float)
    if per_zone_eta is None:
        per_zone_eta = e.ndim >= 1 and e.shape[-1] == N_ZONES
    if per_zone_cutpoints is None:
        per_zone_cutpoints = c.ndim >= 2 and c.shape[-2] == N_ZONES
    _check_cutpoints(c, per_zone=per_zone_cutpoints)
    if per_zone_eta:
        if e.ndim < 1 or e.shape[-1] != N_ZONES:
            raise ValueError(f"per-zone eta must have shape (..., {N_ZONES}), got {e.shape}")
    else:
        e = e[..., None]  # shared: broadcast over the zone axis
    if not per_zone_cutpoints:
        c = c[..., None, :]
    table = zone_logpmf(e, c)
    return np.broadcast_to(table, (*table.shape[:-2], N_ZONES, ZONE_MAX + 1))


def zone_sum_logpmf(
    eta: ArrayLike,
    cutpoints: ArrayLike,
    *,
    per_zone_eta: bool | None = None,
    per_zone_cutpoints: bool | None = None,
) -> NDArray[np.float64]:
    r"""Log pmf of the total CT score :math:`S = \sum_{z=1}^{6} Y_z \in \{0, \dots, 24\}`.

    The zones are independent given the latent severity, each with the
    cumulative-logit pmf of :func:`zone_logpmf`, and

    .. math::

        P(S = s) = \sum_{y_1 + \dots + y_6 = s} \prod_{z=1}^{6} P(Y_z = y_z \mid \eta_z, c_z),

    evaluated exactly, one zone at a time (:func:`convolve_zone_pmfs`, in probability space;
    a probability below the smallest positive double is floored at :data:`PMF_FLOOR` before
    its log, so a log-pmf is never below -708.4).

    Parameters
    ----------
    eta
        Latent severity: shape ``(...)`` shared by all zones, or shape ``(..., 6)``
        with one value per zone in the order of :data:`ZONES` (fold per-zone
        offsets into it).
    cutpoints
        Cut-points, non-decreasing along the last axis: shape ``(..., 4)`` shared
        by all zones, or shape ``(..., 6, 4)`` with one set per zone.
    per_zone_eta, per_zone_cutpoints
        Whether ``eta`` / ``cutpoints`` carry a zone axis. ``None`` (default)
        infers it from the shape: ``eta`` is per zone when its last axis has
        length 6, ``cutpoints`` when its second-to-last axis has length 6. Pass
        ``False`` when such an axis is a batch axis instead (for example six
        visits with a shared severity each).

    Returns
    -------
    numpy.ndarray
        ``log P(S = s)`` for ``s = 0..24``, shape ``(...) + (25,)`` where
        ``(...)`` is the broadcast of the batch shapes of ``eta`` and ``cutpoints``.

    Raises
    ------
    ValueError
        On arguments of the wrong shape, NaN or decreasing cut-points.
    """
    table = _zone_table(eta, cutpoints, per_zone_eta, per_zone_cutpoints)  # (..., 6, 5)
    batch = table.shape[:-2]
    pmfs = np.exp(table.reshape(-1, N_ZONES, ZONE_MAX + 1))
    pmf = convolve_zone_pmfs([pmfs[:, z] for z in range(N_ZONES)])
    return np.log(np.maximum(pmf, PMF_FLOOR)).reshape((*batch, CT_MAX + 1))


def zone_sum_loglik(
    score: ArrayLike,
    eta: ArrayLike,
    cutpoints: ArrayLike,
    *,
    per_zone_eta: bool | None = None,
    per_zone_cutpoints: bool | None = None,
) -> NDArray[np.float64]:
    r"""Log-likelihood :math:`\log P(S = \text{score})` of observed total CT scores.

    Parameters
    ----------
    score
        Observed totals, integers ``0..24`` (an integer-valued float array is
        accepted); broadcasts against the batch shape of :func:`zone_sum_logpmf`.
    eta, cutpoints, per_zone_eta, per_zone_cutpoints
        As for :func:`zone_sum_logpmf`.

    Returns
    -------
    numpy.ndarray
        ``log P(S = score)``, shape ``broadcast(score, batch shape)``.

    Raises
    ------
    ValueError
        If a score is not an integer in ``0..24`` (NaN included), or on bad
        ``eta`` / ``cutpoints``.
    """
    s = np.asarray(score)
    sf = s.astype(float)
    if not np.all(np.isfinite(sf)) or np.any(sf != np.round(sf)) or np.any((sf < 0) | (sf > CT_MAX)):
        raise ValueError(f"score must hold integers from 0 to {CT_MAX}")
    logpmf = zone_sum_logpmf(eta, cutpoints, per_zone_eta=per_zone_eta, per_zone_cutpoints=per_zone_cutpoints)
    idx = sf.astype(np.int64)
    shape = np.broadcast_shapes(idx.shape, logpmf.shape[:-1])
    logpmf = np.broadcast_to(logpmf, shape + logpmf.shape[-1:])
    idx = np.broadcast_to(idx, shape)[..., None]
    return np.take_along_axis(logpmf, idx, axis=-1)[..., 0]


# ---------------------------------------------------------------------------------------------------
# The labs: values with their patient-and-lab intercept integrated out
# ---------------------------------------------------------------------------------------------------
_LOG_2PI = float(np.log(2.0 * np.pi))


def cs_normal_logpdf(n, sum_r, sum_r2, noise_sd, specific_sd, *, log=np.log):
    r"""Log-density of ``n`` residuals with sum ``sum_r`` and sum of squares ``sum_r2`` under
    :math:`N(0, s^2 I + t^2 J)` (noise SD ``s``, intercept SD ``t``: a lab's values of one patient
    with their shared intercept integrated out):

    .. math::

        -\tfrac12 \bigl[n \log 2\pi + (n - 1)\log s^2 + \log(s^2 + n t^2)
        + \bigl(\textstyle\sum r^2 - t^2 (\sum r)^2 / (s^2 + n t^2)\bigr) / s^2\bigr].

    Elementwise in every argument; ``log`` lets the model graph pass PyTensor's (the fused
    kernel :class:`~bayesct.modeling.kernels.LabMarginal` is the one other statement of it).
    """
    s2 = noise_sd**2
    t2 = specific_sd**2
    denom = s2 + n * t2
    return -0.5 * (n * _LOG_2PI + (n - 1) * log(s2) + log(denom) + (sum_r2 - t2 * sum_r**2 / denom) / s2)


# ---------------------------------------------------------------------------------------------------
# The outcome
# ---------------------------------------------------------------------------------------------------
def death_loglik(
    died: ArrayLike, p: ArrayLike | None = None, *, logit: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Log-probability of each outcome ``died`` (1 died, 0 survived) under a probability of death
    ``p`` or its log-odds ``logit`` (exactly one), broadcast (draws on a leading axis); 0 where
    ``died`` is NaN: an outcome not known yet is no data.
    """
    y = np.asarray(died, dtype=float)
    known = ~np.isnan(y)
    y0 = np.where(known, y, 0.0)
    if (p is None) == (logit is None):
        raise ValueError("give exactly one of p and logit")
    with np.errstate(invalid="ignore", divide="ignore"):
        if logit is not None:
            x = np.asarray(logit, dtype=float)
            ll = y0 * log_expit(x) + (1.0 - y0) * log_expit(-x)
        else:
            q = np.asarray(p, dtype=float)
            ll = y0 * np.log(q) + (1.0 - y0) * np.log1p(-q)
    return np.where(known, ll, 0.0)


# ---------------------------------------------------------------------------------------------------
# The CT score's likelihood families, dispatched in one place
# ---------------------------------------------------------------------------------------------------
#: The CT-score likelihoods a spec can name (``[markers] ct_likelihood``).
CT_FAMILIES: tuple[str, ...] = ("beta_binomial", "binomial", "zone_sum")

_SCORES = np.arange(CT_MAX + 1)
_LOGC = gammaln(CT_MAX + 1) - gammaln(_SCORES + 1) - gammaln(CT_MAX - _SCORES + 1)
_CHUNK = 50_000


@dataclass(frozen=True)
class CTLikelihood:
    r"""The CT score's observation model, with its parameters for ``S`` posterior draws.

    ``eta`` is the CT score's linear predictor: the logit of the mean score fraction
    (``beta_binomial``, ``binomial``) or the latent zone severity (``zone_sum``). Every
    array argument has the draws on its leading axis (``S``, or 1 to broadcast).

    - ``binomial``: :math:`\mathrm{Binomial}(24, \operatorname{expit}\eta)`.
    - ``beta_binomial``: :math:`\mathrm{BetaBinomial}(24, \mu\phi, (1-\mu)\phi)`,
      :math:`\mu = \operatorname{expit}\eta` (``phi``, shape ``(S,)``).
    - ``zone_sum``: the sum of six exchangeable zones, each cumulative-logit 0-4 on
      ``eta`` with shared cut-points (``cutpoints``, shape ``(S, 4)``), the pmf by exact
      convolution (:func:`zone_sum_logpmf` is the log-space reference it is tested against).
    """

    family: str
    phi: NDArray[np.float64] | None = None
    cutpoints: NDArray[np.float64] | None = None
    #: ``zone_sum`` with zone columns in the data: one offset per zone (S, 6), else exchangeable.
    offsets: NDArray[np.float64] | None = None

    @classmethod
    def from_draws(cls, family: str, draws: dict[str, NDArray[np.float64]]) -> CTLikelihood:
        """The family's parameters from a dict of posterior draws (``ct_phi``, ``ct_cutpoints``)."""
        if family not in CT_FAMILIES:
            raise ValueError(f"unknown CT likelihood {family!r}; use one of {', '.join(CT_FAMILIES)}")
        if family == "beta_binomial":
            return cls(family, phi=np.asarray(draws["ct_phi"], float).reshape(-1))
        if family == "zone_sum":
            cut = np.asarray(draws["ct_cutpoints"], float).reshape(-1, ZONE_MAX)
            off = draws.get("ct_zone_offset")
            return cls(family, cutpoints=cut, offsets=None if off is None else np.asarray(off, float))
        return cls(family)

    def take(self, draws: slice | NDArray[np.int64]) -> CTLikelihood:
        """The same likelihood for a subset of the draws (for computing in chunks)."""

        def sub(x: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
            return None if x is None else x[draws]

        return CTLikelihood(self.family, sub(self.phi), sub(self.cutpoints), sub(self.offsets))

    def _per_draw(self, x: NDArray[np.float64], ndim: int) -> NDArray[np.float64]:
        return x.reshape(x.shape[:1] + (1,) * (ndim - 1) + x.shape[1:])

    def logpmf_all(self, eta: ArrayLike) -> NDArray[np.float64]:
        """``log P(score = s | eta)`` for s = 0..24: shape ``eta.shape + (25,)``."""
        eta = np.atleast_1d(np.asarray(eta, float))
        if self.family == "zone_sum":
            assert self.cutpoints is not None
            c = np.broadcast_to(self._per_draw(self.cutpoints, eta.ndim), (*eta.shape, ZONE_MAX))
            off = None
            if self.offsets is not None:
                off = np.broadcast_to(self._per_draw(self.offsets, eta.ndim), (*eta.shape, N_ZONES))
                off = off.reshape(-1, N_ZONES)
            pmf = _zone_sum_pmf_chunked(eta.reshape(-1), c.reshape(-1, ZONE_MAX), off)
            return np.log(np.maximum(pmf, PMF_FLOOR)).reshape((*eta.shape, CT_MAX + 1))
        mu = np.clip(expit(eta), 1e-12, 1 - 1e-12)
        if self.family == "binomial":
            return _LOGC + _SCORES * np.log(mu)[..., None] + (CT_MAX - _SCORES) * np.log1p(-mu)[..., None]
        assert self.phi is not None
        phi = self._per_draw(self.phi, eta.ndim)
        return np.asarray(
            beta_binomial_logpmf(_SCORES, mu[..., None], np.broadcast_to(phi, eta.shape)[..., None])
        )

    def logpmf(self, y: ArrayLike, eta: ArrayLike) -> NDArray[np.float64]:
        """Pointwise ``log P(y | eta)``, ``y`` and ``eta`` broadcast (draws leading on ``eta``)."""
        y = np.asarray(y, float)
        eta = np.asarray(eta, float)
        if self.family == "zone_sum":
            table = self.logpmf_all(eta)
            shape = np.broadcast_shapes(y.shape, eta.shape)
            table = np.broadcast_to(table, (*shape, CT_MAX + 1))
            idx = np.broadcast_to(y.astype(np.int64), shape)[..., None]
            return np.take_along_axis(table, idx, axis=-1)[..., 0]
        mu = expit(eta)
        logc = gammaln(CT_MAX + 1) - gammaln(y + 1) - gammaln(CT_MAX - y + 1)
        if self.family == "binomial":
            return logc + y * np.log(mu) + (CT_MAX - y) * np.log1p(-mu)
        assert self.phi is not None
        return np.asarray(beta_binomial_logpmf(y, mu, self._per_draw(self.phi, max(np.ndim(eta), 1))))

    def zones_logpmf(self, zones: ArrayLike, eta: ArrayLike) -> NDArray[np.float64]:
        """``zone_sum`` with the zones observed: sum over the six zones of log P(Y_z = y_z | eta + offset_z).

        ``zones`` is (n, 6), ``eta`` (S, n); returns (S, n).
        """
        if self.family != "zone_sum" or self.cutpoints is None:
            raise ValueError("zone scores have a likelihood only under ct_likelihood = 'zone_sum'")
        y = np.asarray(zones, dtype=np.int64)
        e = np.asarray(eta, float)
        off = np.zeros((1, 1, N_ZONES)) if self.offsets is None else self.offsets[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(zones_loglik(y, e, self.cutpoints[:, None, :], off))

    def draw(self, rng: np.random.Generator, eta: ArrayLike) -> NDArray[np.float64]:
        """Replicated CT scores at ``eta`` (one per element), as floats."""
        eta = np.asarray(eta, float)
        if self.family == "zone_sum":
            assert self.cutpoints is not None
            c = self._per_draw(self.cutpoints, max(eta.ndim, 1))
            off = None if self.offsets is None else self._per_draw(self.offsets, max(eta.ndim, 1))
            return zone_sum_draw(rng, eta, c, off).astype(float)
        mu = expit(eta)
        if self.family == "binomial":
            return rng.binomial(CT_MAX, mu).astype(float)
        assert self.phi is not None
        phi = self._per_draw(self.phi, max(eta.ndim, 1))
        p = rng.beta(np.maximum(mu * phi, 1e-9), np.maximum((1 - mu) * phi, 1e-9))
        return rng.binomial(CT_MAX, p).astype(float)


def _zone_sum_pmf_chunked(
    eta: NDArray[np.float64], cutpoints: NDArray[np.float64], offsets: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """:func:`zone_sum_pmf` of eta (N,), cut-points (N, 4) and offsets (N, 6), in chunks of rows."""
    out = np.empty((eta.size, CT_MAX + 1))
    for lo in range(0, eta.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[sl] = zone_sum_pmf(eta[sl], cutpoints[sl], None if offsets is None else offsets[sl])
    return out


def zone_draw(
    rng: np.random.Generator, eta: ArrayLike, cutpoints: ArrayLike, offsets: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Draw six zone scores, shape ``(..., 6)``: zone z is ``#{j: U > expit(c_j - eta - offset_z)}``, U uniform.

    ``cutpoints`` has shape ``(..., 4)`` and ``offsets`` (zones exchangeable when absent)
    ``(..., 6)``, their leading axes broadcasting against ``eta``.
    """
    e = np.asarray(eta, float)[..., None] + (
        np.zeros(N_ZONES) if offsets is None else np.asarray(offsets, float)
    )
    c = np.asarray(cutpoints, float)
    cdf = expit(c[..., None, :] - e[..., None])  # (..., 6, 4)
    u = rng.random((*cdf.shape[:-1], 1))
    return (u > cdf).sum(axis=-1)


def zone_sum_draw(
    rng: np.random.Generator, eta: ArrayLike, cutpoints: ArrayLike, offsets: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Draw totals of six zones (:func:`zone_draw`, summed)."""
    return zone_draw(rng, eta, cutpoints, offsets).sum(axis=-1)


#: The lab likelihoods a spec can name (``[markers] lab_likelihood``), on each lab's modelling scale.
LAB_FAMILIES: tuple[str, ...] = ("lognormal", "student_t")


@dataclass(frozen=True)
class LabLikelihood:
    r"""A lab value's observation model on its modelling scale (log, or logit for percentages),
    given its linear predictor (the patient's intercept included), for ``S`` posterior draws.

    ``lognormal``: normal residuals with SD ``noise_sd[:, lab]``; ``student_t``: Student-t
    residuals with that scale and ``nu`` degrees of freedom. Residual arrays have the draws on
    their leading axis; ``lab`` indexes the labs (one per residual, or one for all).
    """

    family: str
    noise_sd: NDArray[np.float64]  # (S, L)
    nu: NDArray[np.float64] | None = None  # (S,)

    @classmethod
    def from_draws(cls, family: str, draws: dict[str, NDArray[np.float64]]) -> LabLikelihood:
        if family not in LAB_FAMILIES:
            raise ValueError(f"unknown lab likelihood {family!r}; use one of {', '.join(LAB_FAMILIES)}")
        nu = np.asarray(draws["lab_nu"], float).reshape(-1) if family == "student_t" else None
        return cls(family, np.asarray(draws["noise_sd"], float), nu)

    def _scale(
        self, lab: int | NDArray[np.int64], ndim: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        sd = self.noise_sd[:, lab]
        sd = sd.reshape(sd.shape[:1] + (1,) * (ndim - sd.ndim) + sd.shape[1:])
        nu = None if self.nu is None else self.nu.reshape((-1,) + (1,) * (ndim - 1))
        return sd, nu

    def logpdf(self, resid: ArrayLike, lab: int | NDArray[np.int64]) -> NDArray[np.float64]:
        """Log-density of residuals ``y - eta`` (draws leading)."""
        from scipy import stats

        r = np.asarray(resid, float)
        sd, nu = self._scale(lab, r.ndim)
        if nu is not None:
            return np.asarray(stats.t.logpdf(r / sd, df=nu) - np.log(sd))
        return -0.5 * _LOG_2PI - np.log(sd) - 0.5 * (r / sd) ** 2

    def cdf(self, resid: ArrayLike, lab: int | NDArray[np.int64]) -> NDArray[np.float64]:
        """P(residual <= resid) (draws leading)."""
        from scipy import stats
        from scipy.special import ndtr

        r = np.asarray(resid, float)
        sd, nu = self._scale(lab, r.ndim)
        if nu is not None:
            return np.asarray(stats.t.cdf(r / sd, df=nu))
        return np.asarray(ndtr(r / sd))

    def draw(self, rng: np.random.Generator, eta: ArrayLike, lab: int) -> NDArray[np.float64]:
        """Replicated values at ``eta`` (draws leading) of lab ``lab``."""
        e = np.asarray(eta, float)
        sd, nu = self._scale(lab, max(e.ndim, 1))
        if nu is not None:
            return e + sd * rng.standard_t(np.broadcast_to(nu, e.shape))
        return e + sd * rng.standard_normal(e.shape)
