"""Table 3: per-scan logistic regression of mortality on CT score and day, and its risk grid."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr, ndtri
from statsmodels.discrete.discrete_model import Logit
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from bayesct.classical._common import ScanArrays, outcome_noted, scan_arrays
from bayesct.constants import CI_PROB, CT_MAX, PERIOD_LABELS, RISK_BANDS
from bayesct.data.cohort import Cohort, assign_period

#: Terms of the per-scan logistic model, in parameter order.
LOGISTIC_TERMS: tuple[str, str, str] = ("intercept", "ct_score", "day")


@dataclass(frozen=True)
class LogisticFit:
    """A fitted ``died ~ ct_score + day`` logistic regression.

    Attributes
    ----------
    params
        Coefficients (intercept, ct_score, day); NaN when the fit is unusable.
    cov
        Their 3 x 3 covariance matrix (inverse observed information); NaN when unusable.
    converged
        Whether Newton-Raphson converged without separation.
    note
        Why the fit is unusable or suspicious ("" when fine).
    n, n_events
        Scans used and scans of patients who died.
    """

    params: np.ndarray
    cov: np.ndarray
    converged: bool
    note: str
    n: int
    n_events: int

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.params).all())


def _failed(note: str, n: int, n_events: int) -> LogisticFit:
    return LogisticFit(np.full(3, np.nan), np.full((3, 3), np.nan), False, note, n, n_events)


def fit_logistic(ct: np.ndarray, day: np.ndarray, died: np.ndarray) -> LogisticFit:
    """Fit ``logit P(died) = b0 + b1 * ct_score + b2 * day`` on scans with statsmodels ``Logit``.

    Parameters
    ----------
    ct, day, died
        Per-scan arrays of equal length; rows with a NaN in ``ct`` or ``day`` are dropped.

    Returns
    -------
    LogisticFit
        Coefficients and covariance, or NaN with a note on complete or
        quasi-complete separation, an outcome with one value only, a singular
        design or non-convergence. Never raises on such data.
    """
    x1 = np.asarray(ct, dtype=float)
    x2 = np.asarray(day, dtype=float)
    y = np.asarray(died, dtype=float)
    ok = ~(np.isnan(x1) | np.isnan(x2) | np.isnan(y))
    x1, x2, y = x1[ok], x2[ok], y[ok]
    n, n_events = int(y.size), int(y.sum())
    if n_events == 0 or n_events == n:
        return _failed("outcome has one value only: no logistic fit", n, n_events)
    if n < 4:
        return _failed("fewer than 4 scans: no logistic fit", n, n_events)
    exog = np.column_stack([np.ones(n), x1, x2])
    if np.linalg.matrix_rank(exog) < 3:
        return _failed("singular design (CT score or day constant)", n, n_events)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            res = Logit(y, exog).fit(disp=0, method="newton", maxiter=100)
            params = np.asarray(res.params, dtype=float)
            cov = np.asarray(res.cov_params(), dtype=float)
            converged = bool(res.mle_retvals.get("converged", False))
        except PerfectSeparationError:
            return _failed("perfect separation: coefficients not identified", n, n_events)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return _failed(f"logistic fit failed: {exc}", n, n_events)
    categories = {w.category for w in caught}
    if any(issubclass(c, PerfectSeparationWarning) for c in categories):
        return _failed("perfect separation: coefficients not identified", n, n_events)
    if not converged or any(issubclass(c, ConvergenceWarning) for c in categories):
        return _failed("did not converge (likely quasi-complete separation)", n, n_events)
    if not (np.isfinite(params).all() and np.isfinite(cov).all()):
        return _failed("non-finite estimates (likely separation)", n, n_events)
    return LogisticFit(params, cov, True, "", n, n_events)


def logistic_coefs(ct: np.ndarray, day: np.ndarray, died: np.ndarray) -> np.ndarray:
    """Coefficients (intercept, ct_score, day) of the per-scan logistic model (fast core of Table 3).

    Parameters
    ----------
    ct, day, died
        Per-scan arrays of equal length.

    Returns
    -------
    numpy.ndarray
        Shape ``(3,)``; all NaN when the model cannot be fitted (separation, ...).
    """
    return fit_logistic(ct, day, died).params


def mortality_logistic(cohort: Cohort) -> pd.DataFrame:
    """Table 3's model: per-scan logistic regression ``died ~ ct_score + day``.

    Parameters
    ----------
    cohort
        The cohort; every scan of a patient of known outcome is one observation carrying that
        outcome (``attrs["note"]`` names the patients of unknown outcome left out).

    Returns
    -------
    pandas.DataFrame
        One row per term (``intercept, ct_score, day``) with ``coef, se, z,
        p_value`` (Wald), ``odds_ratio, or_ci_low, or_ci_high`` (95% Wald
        interval), ``n_scans, n_patients, n_events, converged, note``. NaN with a
        note instead of an exception on separation.
    """
    sa = scan_arrays(cohort).known_outcome()
    fit = fit_logistic(sa.ct, sa.day, sa.died)
    se = np.sqrt(np.diag(fit.cov))
    z = fit.params / se
    p = 2.0 * ndtr(-np.abs(z))
    q = float(ndtri(0.5 + CI_PROB / 2.0))
    table = pd.DataFrame(
        {
            "term": list(LOGISTIC_TERMS),
            "coef": fit.params,
            "se": se,
            "z": z,
            "p_value": p,
            "odds_ratio": np.exp(fit.params),
            "or_ci_low": np.exp(fit.params - q * se),
            "or_ci_high": np.exp(fit.params + q * se),
            "n_scans": fit.n,
            "n_patients": sa.n_patients,
            "n_events": fit.n_events,
            "converged": fit.converged,
            "note": fit.note,
        }
    )
    return outcome_noted(table, cohort)


def risk_band(probability: float) -> str:
    """The paper's colour for a mortality probability (:data:`bayesct.constants.RISK_BANDS`).

    Parameters
    ----------
    probability
        A probability in [0, 1]; NaN gives ``""``.

    Returns
    -------
    str
        ``"green"`` (<5%), ``"yellow"`` (5-30%), ``"red"`` (30-50%) or ``"blue"`` (>=50%).
    """
    if not math.isfinite(probability):
        return ""
    for name, lo, hi in RISK_BANDS:
        if lo <= probability < hi:
            return name
    return RISK_BANDS[-1][0] if probability >= 1.0 else RISK_BANDS[0][0]


def _grid_days(sa: ScanArrays, days: Sequence[float] | Mapping[str, float] | None) -> list[tuple[str, float]]:
    if days is None:
        out = []
        for k, label in enumerate(PERIOD_LABELS):
            in_k = sa.period_codes == k
            if in_k.any():
                out.append((label, float(sa.day[in_k].mean())))
        return out
    if isinstance(days, Mapping):
        return [(str(k), float(v)) for k, v in days.items()]
    values = [float(d) for d in days]
    labels = list(assign_period(np.asarray(values)).astype(str)) if values else []
    return list(zip(labels, values, strict=True))


def mortality_grid(
    cohort: Cohort,
    *,
    days: Sequence[float] | Mapping[str, float] | None = None,
    scores: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Table 3's grid: fitted mortality probability by CT score and day since onset.

    Parameters
    ----------
    cohort
        The cohort the logistic model is fitted on (see :func:`mortality_logistic`: the scans of
        the patients of known outcome).
    days
        Days at which to evaluate: a sequence (labelled by the period each falls
        in) or a mapping label -> day. Default: the mean scan day of each period
        that has scans.
    scores
        CT scores to evaluate; default ``0, 1, ..., 24``.

    Returns
    -------
    pandas.DataFrame
        One row per (day, score): ``period, day, ct_score, probability, ci_low,
        ci_high`` (95% interval by the delta method on the logit scale), ``band``
        (the paper's colour) and ``note`` (why NaN, e.g. separation).
    """
    sa = scan_arrays(cohort).known_outcome()
    fit = fit_logistic(sa.ct, sa.day, sa.died)
    grid_days = _grid_days(sa, days)
    score_arr = np.arange(CT_MAX + 1, dtype=float) if scores is None else np.asarray(scores, dtype=float)
    q = float(ndtri(0.5 + CI_PROB / 2.0))
    frames = []
    for label, d in grid_days:
        x = np.column_stack([np.ones_like(score_arr), score_arr, np.full_like(score_arr, d)])
        eta = x @ fit.params
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, fit.cov, x))
        prob = expit(eta)
        frames.append(
            pd.DataFrame(
                {
                    "period": label,
                    "day": d,
                    "ct_score": score_arr,
                    "probability": prob,
                    "ci_low": expit(eta - q * se),
                    "ci_high": expit(eta + q * se),
                    "band": [risk_band(float(v)) for v in prob],
                    "note": fit.note,
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            columns=["period", "day", "ct_score", "probability", "ci_low", "ci_high", "band", "note"]
        )
    return outcome_noted(pd.concat(frames, ignore_index=True), cohort)
