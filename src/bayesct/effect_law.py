r"""The population law of the patients' severity effects, stated once.

The ``joint`` family's patient effects are :math:`u_i = L\,w_i` with :math:`L` the
Cholesky factor of the effects' covariance (SDs and LKJ correlation) and
:math:`w_i` standardised (mean 0, covariance the identity). Under
``[random_effects] severity_law = "normal"`` every :math:`w_{ie}` is a standard
normal. Under ``"sinh_arcsinh"`` the first coordinate — the severity's level —
has a skewed law while the others stay normal:

.. math::

    X = \sinh(\operatorname{asinh}(Z) + \varepsilon), \qquad Z \sim N(0, 1), \qquad
    w_{i0} = \frac{X - m(\varepsilon)}{s(\varepsilon)},

the sinh-arcsinh law of Jones & Pewsey (2009) with its tail weight fixed to one
(so that :math:`\varepsilon = 0` is the normal exactly), standardised by its mean
and SD,

.. math::

    m(\varepsilon) = P_1 \sinh\varepsilon, \qquad
    m(\varepsilon)^2 + s(\varepsilon)^2 = \tfrac12\,(P_2 \cosh 2\varepsilon - 1),

with :math:`P_q = e^{1/4} (8\pi)^{-1/2} \bigl(K_{(q+1)/2}(1/4) + K_{(q-1)/2}(1/4)\bigr)`
(:math:`K` the modified Bessel function of the second kind; :math:`P_2 = 3`).
For large :math:`|Z|`, :math:`X \approx Z e^{\pm\varepsilon}`: the right tail is
stretched by :math:`e^{\varepsilon}` and the left one shrunk by it, so
:math:`\varepsilon > 0` gives a right-skewed severity (a minority of much sicker
patients); the skewness is 0.41 at :math:`\varepsilon = 0.25`, 0.76 at 0.5 and
1.17 at 1. The map :math:`Z \mapsto w` is smooth and increasing, so the model samples
:math:`Z` (normal, non-centred) and the law needs no density term in the graph;
the numpy density (for importance sampling over the effects) is

.. math::

    \log p(w) = \log s + \log\varphi(z) + \log\cosh(\operatorname{asinh}(x) - \varepsilon)
                - \tfrac12 \log(1 + x^2), \quad x = m + s\,w, \quad
    z = \sinh(\operatorname{asinh}(x) - \varepsilon).

:func:`standardised_from_normal` takes an array namespace (``numpy`` or
``pytensor.tensor``) so that the PyMC graph and the numpy view evaluate the same
expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SEVERITY_LAWS",
    "EffectLaw",
    "sas_logpdf",
    "sas_moments",
    "standardised_from_normal",
]

#: The population laws of the severity level (``[random_effects] severity_law``).
SEVERITY_LAWS: tuple[str, ...] = ("normal", "sinh_arcsinh")

#: P_1 and P_2 of the sinh-arcsinh moments (tail weight 1); tested against scipy's Bessel K.
SAS_P1 = 1.3545308064813155
SAS_P2 = 3.0
_LOG_2PI = math.log(2 * math.pi)


def sas_moments(eps: Any, xp: Any = np) -> tuple[Any, Any]:
    """Mean and SD of ``sinh(asinh(Z) + eps)``, ``Z`` standard normal."""
    mean = xp.sinh(eps) * SAS_P1
    second = 0.5 * (SAS_P2 * xp.cosh(2.0 * eps) - 1.0)
    return mean, xp.sqrt(second - mean**2)


def standardised_from_normal(z: Any, eps: Any, xp: Any = np) -> Any:
    """The standardised sinh-arcsinh variable ``w`` of the standard normal ``z`` (elementwise)."""
    mean, sd = sas_moments(eps, xp)
    return (xp.sinh(xp.arcsinh(z) + eps) - mean) / sd


def sas_logpdf(w: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Log-density of the standardised sinh-arcsinh variable at ``w`` (broadcasting with ``eps``)."""
    mean, sd = sas_moments(eps)
    x = mean + sd * w
    a = np.arcsinh(x) - eps
    z = np.sinh(a)
    return np.log(sd) - 0.5 * (z**2 + _LOG_2PI) + np.log(np.cosh(a)) - 0.5 * np.log1p(x**2)


@dataclass(frozen=True)
class EffectLaw:
    """The population law of ``E`` patient effects per posterior draw.

    ``chol`` (S, E, E) is the lower Cholesky factor of their covariance; ``skew`` (S,)
    the sinh-arcsinh ``eps`` of the first standardised coordinate, ``None`` for the
    normal law.
    """

    chol: np.ndarray
    skew: np.ndarray | None = None

    @property
    def n_effects(self) -> int:
        return int(self.chol.shape[-1])

    def standardised(self, z: np.ndarray) -> np.ndarray:
        """(S, M, E) the standardised coordinates ``w`` of standard normals ``z`` (S, M, E)."""
        if self.skew is None:
            return z
        w = z.copy()
        w[..., 0] = standardised_from_normal(z[..., 0], self.skew.reshape((-1,) + (1,) * (z.ndim - 2)))
        return w

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        """(S, M, E) effects ``L w(z)`` of standard normals ``z`` (S, M, E): draws when ``z`` is random."""
        return np.einsum("smj,skj->smk", self.standardised(z), self.chol)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(S, n, E) fresh effects from the law of each draw."""
        return self.from_normal(rng.standard_normal((self.chol.shape[0], n, self.n_effects)))

    def logpdf(self, eff: np.ndarray) -> np.ndarray:
        """(S, M) log-density of effects ``eff`` (S, M, E), normalising constants included."""
        S, E = self.chol.shape[0], self.n_effects
        flat = eff.reshape(S, -1, E)
        # w = L^-1 x: one small inverse per draw, applied to all M points (a batched solve per
        # point costs as much as the rest of the importance sampler)
        w = np.einsum("sij,smj->smi", np.linalg.inv(self.chol), flat)
        logdet = np.log(np.diagonal(self.chol, axis1=1, axis2=2)).sum(-1)[:, None]
        lp = -0.5 * (w**2 + _LOG_2PI)
        if self.skew is not None:
            lp[..., 0] = sas_logpdf(w[..., 0], self.skew[:, None])
        return (lp.sum(-1) - logdet).reshape(eff.shape[:-1])
