r"""Posterior risk queries and dynamic prediction for new patients (``bayesct risk``).

The question of the paper's Table 3, "what is the probability of death of a
patient with CT score *s* on day *d* since symptom onset?", is answered here
from a fitted model, with its posterior uncertainty:

* :func:`risk_query` — P(death) of one new patient given what has been observed
  of them: one CT score on a day, or a whole history of CT scores and labs,
  plus the covariates the model needs (age, sex, ...). Returns the posterior of
  the risk (its draws, median, mean and central interval) as an :class:`xarray.Dataset`.
* :func:`extrapolation_messages` — where a query leaves the fitted cohort (a day past its
  last CT scan or outside the spline boundary, a CT score or age outside the observed ones);
  :func:`risk_query` and :func:`risk_grid` report these and issue them as :class:`RiskWarning`.
* :func:`risk_grid` — the Table 3 counterpart: risk by CT score 0-24 × day (or
  period), with medians, intervals and the paper's colour bands;
  :func:`plot_risk_grid` draws it as a heat map.
* :func:`patient_risks` — for the cohort's own patients: the risk given their own
  scans and labs (not their outcome), the risk given only their first scan, and the
  in-sample fitted risk (which does condition on their outcome), each labelled as such.
* :func:`write_risk_grid` — a grid as CSV with its heat map as PNG (what ``bayesct risk --grid
  --out`` writes).

Method (``joint`` family: specs ``joint``, ``ct_only``, ...)
    A new patient's random effects :math:`e` are unknown. For each posterior
    draw :math:`\theta_s` (thinned to ``max_draws``, default 1000),

    .. math::

        P_s = \frac{\int \mathrm{logit}^{-1}(\alpha + x'\beta + c_s' e)\,
                     p(y \mid e, \theta_s)\, N(e; 0, \Sigma_s)\, de}
                   {\int p(y \mid e, \theta_s)\, N(e; 0, \Sigma_s)\, de}

    where :math:`y` are the patient's observations and :math:`c_s' e` the
    mortality association terms (linear in the effects). The posterior of the
    risk is the set :math:`\{P_s\}`; its median and central ``ci_prob``
    interval are reported.

    *One CT scan* (the Table 3 question, ``method="quadrature"``): the scan
    depends on the effects only through the scalar :math:`\xi = a_s' e` (the
    patient's deviation of the CT logit on that day) and mortality only through
    :math:`w = c_s' e`; :math:`(\xi, w)` is bivariate normal, so the integral is
    one-dimensional over :math:`\xi` (trapezoid rule over ±8 prior SD with
    nodes at most 0.35 apart on the logit scale, at least 81) with the inner expectation over :math:`w \mid \xi` by a
    trapezoid rule over ±8.5 SD, spacing adapted to that SD (more accurate than Gauss-Hermite
    for the logistic when that SD is large). This is deterministic (no Monte
    Carlo error) and fast: all 25 scores of one day share the work, so a
    25 × 31 grid takes seconds.

    *A history* (several scans and/or labs, ``method="laplace"`` or
    ``"prior"``): self-normalised importance sampling over the effects, per
    draw. The weights are the likelihood of the observations — CT scores
    beta-binomial (or binomial) on the logit scale, labs normal on their
    modelling scale with, for the factor structure, the lab-specific patient
    intercepts integrated out (per lab: covariance
    :math:`\sigma^2 I + \tau^2 J`, as in the fit; Student-t labs integrate the
    intercept by Gauss-Hermite quadrature). ``"laplace"`` (the default for
    histories) proposes from a multivariate Student-t (7 d.o.f.) centred at the
    mode of each draw's conditional posterior of the effects with the inverse
    Hessian as scale (Newton iterations, exact for the Gaussian lab part);
    ``"prior"`` proposes from :math:`N(0, \Sigma_s)`. The effective sample size
    of the weights is reported (``ess_min``, ``ess_median``); when too low the
    number of effects is raised (up to 4×), then a :class:`RiskWarning` is
    issued. The same ``seed`` gives the same numbers (common random numbers: the
    proposal's standard normals depend only on the seed and the shapes).

``scan_logistic`` family
    :math:`P_s = \mathrm{logit}^{-1}(a + b_1 x_{ct} + b_2 x_{day})` per draw (the
    model has no patient intercept). A fit of the earlier per-scan model with a patient
    intercept (``patient_sd`` in its posterior) is still read:
    :math:`P_s = E_r[\mathrm{logit}^{-1}(a + b_1 x_{ct} + b_2 x_{day} + r)]`,
    :math:`r \sim N(0, \sigma_r)`, by the same trapezoid quadrature per draw. With a
    history, the latest CT scan is used (the model is per scan; it has no notion of a
    patient's trajectory).

A spec without a mortality part (``descriptive``) cannot answer a risk query:
a :class:`~bayesct.errors.SpecError` says so.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit
from scipy.special import logsumexp as _logsumexp

from bayesct.classical.mortality import risk_band
from bayesct.constants import CI_PROB, CT, CT_MAX, DAY, PERIOD_LABELS, RISK_BANDS
from bayesct.data.labs import LabSpec
from bayesct.effect_law import standardised_from_normal
from bayesct.errors import BayesctError, DataValidationError, SpecError
from bayesct.likelihoods import cs_normal_logpdf
from bayesct.modeling.design import scan_terms
from bayesct.modeling.diagnostics import interval

__all__ = [
    "PERIOD_MID_DAYS",
    "RiskWarning",
    "extrapolation_messages",
    "history_terms",
    "patient_risks",
    "plot_risk_grid",
    "risk_band",
    "risk_grid",
    "risk_query",
    "write_risk_grid",
]

Method = Literal["auto", "quadrature", "laplace", "prior"]

#: Day used for each of the paper's periods in a by-period grid (the ">20" period: day 25).
PERIOD_MID_DAYS: dict[str, float] = {"0-5": 2.5, "6-10": 8.0, "11-15": 13.0, "16-20": 18.0, ">20": 25.0}

#: Default number of posterior draws a query uses (thinned at random, reproducibly).
DEFAULT_MAX_DRAWS = 1000
#: Default number of effect vectors per posterior draw for importance sampling.
DEFAULT_N_EFFECTS = 256
#: Per-draw effective sample size of the importance weights below which more effects are drawn.
MIN_ESS = 50.0

_N_XI = 81  # minimum trapezoid nodes over the scan's effect combination (±8 prior SD)
_XI_RANGE = 8.0
_N_GH = 24  # Gauss-Hermite nodes for Student-t lab intercepts
_T_DF = 7.0  # degrees of freedom of the Laplace Student-t proposal
_NEWTON_STEPS = 30
_ETA_MAX = 30.0  # CT logits are clipped here: logistic(±30) stays inside (0, 1) in float64
_HISTORY_ID = "new patient"


class RiskWarning(UserWarning):
    """A risk whose accuracy may be poor: low importance-sampling ESS, or a query that extrapolates
    beyond the fitted cohort (see :func:`extrapolation_messages`)."""


# ---------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------
def _load(fit: Any) -> Any:
    """A FitResult from a FitResult or a fit directory."""
    from bayesct.modeling.fit import FitResult

    if isinstance(fit, FitResult):
        return fit
    if isinstance(fit, str | Path):
        return FitResult.load(fit)
    raise BayesctError(f"expected a FitResult or a fit directory, got {type(fit).__name__}")


def _check_mortality(spec: Any) -> None:
    if not spec.mortality:
        raise SpecError(
            f"model '{spec.name}' has no mortality part, so it cannot give a risk of death; "
            "fit a model with one (joint, ct_only or scan_logistic)"
        )
    if spec.family == "joint" and spec.by_group:
        raise SpecError(
            f"model '{spec.name}' has outcome-group-specific population curves: its trajectories "
            "depend on the outcome it would predict, so it cannot give a risk for a new patient"
        )


def _check_score(score: Any, what: str = "CT score") -> int:
    try:
        s = float(score)
    except (TypeError, ValueError):
        raise BayesctError(f"{what} must be a whole number in 0-{CT_MAX}, got {score!r}") from None
    if not math.isfinite(s) or s != round(s) or not 0 <= s <= CT_MAX:
        raise BayesctError(f"{what} must be a whole number in 0-{CT_MAX}, got {score!r}")
    return int(s)


def _check_day(day: Any) -> float:
    try:
        d = float(day)
    except (TypeError, ValueError):
        raise BayesctError(f"day must be a number of days since symptom onset (>= 0), got {day!r}") from None
    if not math.isfinite(d) or d < 0:
        raise BayesctError(f"day must be a number of days since symptom onset (>= 0), got {day!r}")
    return d


_SEX = {"male": "male", "m": "male", "female": "female", "f": "female"}


def _norm_sex(value: Any) -> str:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if numeric and value in (0, 1):
        return "male" if value == 1 else "female"
    key = str(value).strip().lower()
    if key not in _SEX:
        raise BayesctError(f"sex must be 'male' or 'female' (or m/f), got {value!r}")
    return _SEX[key]


def _covariate_frame(
    spec: Any,
    *,
    age: float | None,
    sex: str | None,
    covariates: Mapping[str, Any] | None,
    from_history: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One-row patient table holding the covariates the model needs; refuses to guess missing ones."""
    given: dict[str, Any] = {}
    if from_history:
        given.update({k: v for k, v in from_history.items() if v is not None and not pd.isna(v)})
    explicit: dict[str, Any] = dict(covariates or {})
    if age is not None:
        explicit["age"] = age
    if sex is not None:
        explicit["sex"] = sex
    for k, v in explicit.items():
        if v is None:
            continue
        if k in given and k in ("age", "sex"):
            old = _norm_sex(given[k]) if k == "sex" else float(given[k])
            new = _norm_sex(v) if k == "sex" else float(v)
            if old != new:
                raise BayesctError(f"{k} given as {v!r} but the history says {given[k]!r}")
        given[k] = v
    if "male" in given and "sex" not in given:
        given["sex"] = _norm_sex(given.pop("male"))
    needed = [c for c in spec.covariates]
    missing = [c for c in needed if c not in given]
    if missing:
        flags = ", ".join(f"--{c.replace('_', '-')}" for c in missing)
        raise BayesctError(
            f"model '{spec.name}' needs the covariate(s) {', '.join(missing)} of the patient; "
            f"give them ({flags}); no default is assumed"
        )
    row: dict[str, Any] = {}
    for c in needed:
        v = given[c]
        if c == "sex":
            row[c] = _norm_sex(v)
        else:
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise BayesctError(f"covariate '{c}' must be a number, got {v!r}") from None
            if not math.isfinite(x):
                raise BayesctError(f"covariate '{c}' must be a finite number, got {v!r}")
            if c == "age" and not 0 <= x <= 120:
                raise BayesctError(f"age must be in 0-120 years, got {v!r}")
            row[c] = x
    used = dict(row)
    return pd.DataFrame([row], index=pd.Index([_HISTORY_ID], name="patient_id")), used


@dataclass
class _Obs:
    """What has been observed of one new patient (labs on the modelling scale, by marker name)."""

    ct_day: np.ndarray
    ct_score: np.ndarray
    labs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    patient: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def n_lab_values(self) -> int:
        return int(sum(len(v[0]) for v in self.labs.values()))

    @property
    def single_scan(self) -> bool:
        return len(self.ct_day) == 1 and self.n_lab_values == 0


def _read_history(history: pd.DataFrame | str | Path, labs: Mapping[str, LabSpec] | None = None) -> _Obs:
    """Validate a one-patient history with :func:`bayesct.data.validate.build_cohort`, its labs
    those of the contract and the fit's declared ``labs`` (each optional in a history)."""
    from bayesct.data.io import read_table
    from bayesct.data.validate import build_cohort
    from bayesct.modeling.design import to_model_scale

    if isinstance(history, str | Path):
        source = str(history)
        frame = read_table(history)
    elif isinstance(history, pd.DataFrame):
        source = "<history>"
        frame = history
    else:
        raise BayesctError(f"history must be a DataFrame or a file path, got {type(history).__name__}")
    frame = frame.copy()
    frame.columns = pd.Index([str(c).strip().lower() for c in frame.columns])
    notes: list[str] = []
    if "patient_id" not in frame.columns:
        frame.insert(0, "patient_id", _HISTORY_ID)
    if "died" in frame.columns:
        notes.append("the history's 'died' column is ignored (the outcome is what is predicted)")
    frame["died"] = 0  # placeholder: the outcome is what is being predicted
    cohort = build_cohort(frame, source=source, labs=labs, require_labs=False)
    if cohort.n_patients != 1:
        raise DataValidationError(
            f"a history must hold one patient; found {cohort.n_patients} patient_ids",
            file=source,
            column="patient_id",
        )
    notes.extend(cohort.notes)
    v = cohort.visits
    ct = v.loc[v[CT].notna()] if CT in v.columns else v.iloc[:0]
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in cohort.labs:
        sub = v.loc[v[m].notna()]
        values[m] = (sub[DAY].to_numpy(float), to_model_scale(m, sub[m].to_numpy(float), labs))
    patient = {str(k): val for k, val in cohort.patients.iloc[0].items() if k != "died"}
    return _Obs(
        ct[DAY].to_numpy(float),
        ct[CT].to_numpy(float) if len(ct) else np.zeros(0),
        values,
        notes,
        patient,
        source,
    )


def _observations(ct_score: Any, day: Any, history: Any, labs: Mapping[str, LabSpec] | None = None) -> _Obs:
    if (ct_score is None) != (day is None):
        raise BayesctError("give both a CT score and the day it was taken (days since symptom onset)")
    if history is None and ct_score is None:
        raise BayesctError("give a CT score and its day, or a history of the patient's scans and labs")
    obs = _read_history(history, labs) if history is not None else _Obs(np.zeros(0), np.zeros(0))
    if ct_score is not None:
        s, d = _check_score(ct_score), _check_day(day)
        same = obs.ct_day == d
        if same.any():
            if not np.all(obs.ct_score[same] == s):
                raise BayesctError(f"the history already has a different CT score on day {d:g}")
        else:
            obs.ct_day = np.r_[obs.ct_day, d]
            obs.ct_score = np.r_[obs.ct_score, s]
    if len(obs.ct_day) == 0 and obs.n_lab_values == 0:
        raise BayesctError("the history holds no CT score and no lab value to condition on")
    return obs


# ---------------------------------------------------------------------------------------------------
# posterior views
# ---------------------------------------------------------------------------------------------------
def _thin_index(total: int, max_draws: int | None, seed: int) -> np.ndarray:
    # Same rule as PosteriorModel.from_fit, so the two families thin alike.
    if max_draws is not None and max_draws < total:
        return np.sort(np.random.default_rng(seed).choice(total, size=max_draws, replace=False))
    return np.arange(total)


def _posterior_model(result: Any, max_draws: int | None, seed: int) -> Any:
    from bayesct.modeling.posterior import PosteriorModel

    return PosteriorModel.from_fit(result, max_draws=max_draws, seed=seed)


@dataclass
class _ScanLogistic:
    a0: np.ndarray  # (S,)
    beta: np.ndarray  # (S, 2) per scaled unit
    sd: np.ndarray  # (S,) patient-intercept SD: zeros for a fit without one
    spec: Any
    effects: np.ndarray | None = None  # (S, n_patients)

    @classmethod
    def from_fit(cls, result: Any, max_draws: int | None, seed: int) -> _ScanLogistic:
        post = result.posterior
        total = post.sizes["chain"] * post.sizes["draw"]
        idx = _thin_index(total, max_draws, seed)

        def get(name: str) -> np.ndarray:
            da = post[name].stack(sample=("chain", "draw")).transpose("sample", ...)
            return np.asarray(da.values)[idx]

        spec = result.spec
        a0 = get("mort_intercept")
        return cls(
            a0,
            get("mort_beta"),
            get("patient_sd") if "patient_sd" in post else np.zeros_like(a0),
            spec,
            get("patient_effect") if "patient_effect" in post else None,
        )

    def logit(self, score: np.ndarray, day: np.ndarray) -> np.ndarray:
        """(S, n) fixed part of the log-odds for scans (n,)."""
        return self.a0[:, None] + self.beta @ scan_terms(self.spec, score, day).T

    def risk(self, score: np.ndarray, day: np.ndarray) -> np.ndarray:
        """(S, n) population risk: expit of the log-odds, or, for a fit with a patient intercept,
        the intercept integrated out (1-D quadrature)."""
        eta = self.logit(score, day)
        if not np.any(self.sd):
            return expit(eta)
        return _expit_normal_mean(eta, np.broadcast_to(self.sd[:, None], eta.shape))


def _gh(n: int = _N_GH) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


# ---------------------------------------------------------------------------------------------------
# joint family: linear pieces
# ---------------------------------------------------------------------------------------------------
def _design_rows(pm: Any, marker: int, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population curve m (S, n) and effect coefficients A (S, n, E) of marker's linear predictor.

    The patient part of the linear predictor is linear in the effects; its coefficients are read
    off :meth:`PosteriorModel.trajectory` at unit vectors, so the algebra stays in one place.
    """
    days = np.asarray(days, float)
    S, E, n = pm.n_draws, len(pm.effect_names), len(days)
    m = pm.population_curve(marker, days)
    A = np.empty((S, n, E))
    for j in range(E):
        unit = np.zeros((S, n, E))
        unit[..., j] = 1.0
        A[..., j] = pm.trajectory(marker, days, unit)
    return m, A


def _mortality_pieces(pm: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mortality log-odds = base (S,) + c (S, E) · effects, for covariates X (1, C)."""
    S, E = pm.n_draws, len(pm.effect_names)
    base = pm.mortality_logit(np.zeros((S, 1, E)), X)[:, 0]
    unit = np.broadcast_to(np.eye(E), (S, E, E)).copy()
    c = pm.mortality_logit(unit, np.repeat(X, E, axis=0)) - base[:, None]
    return base, c


def _expit_normal_mean(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[expit(mu + sd X)], X ~ N(0, 1), elementwise, by the trapezoid rule over ±8.5.

    The rule's error decays like exp(-2 pi^2 / (sd h)) for node spacing h (the logistic's poles at
    ±i pi), so the spacing is chosen per value: h <= 1.1 / sd (error about 1e-8), from 25 nodes
    (sd <= 1.5) up to 769 (sd <= 24). Gauss-Hermite with 32 nodes errs by 1e-3 already at sd = 6.
    """
    mu, sd = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sd, float))
    flat_mu, flat_sd = mu.reshape(-1), sd.reshape(-1)
    out = np.empty(flat_mu.shape)
    edges = [1.5 * 2**k for k in range(_N_TRAP_LEVELS)]
    level = np.minimum(np.searchsorted(edges, flat_sd), _N_TRAP_LEVELS - 1)
    for k in range(_N_TRAP_LEVELS):
        idx = np.flatnonzero(level == k)
        if idx.size == 0:
            continue
        x, w = _TRAP[k]
        for lo in range(0, idx.size, 100_000):
            sl = idx[lo : lo + 100_000]
            out[sl] = expit(flat_mu[sl, None] + flat_sd[sl, None] * x) @ w
    return out.reshape(mu.shape)


def _trapezoid_normal(n: int, half: float = 8.5) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-half, half, n)
    w = np.exp(-0.5 * x**2)
    return x, w / w.sum()


_N_TRAP_LEVELS = 6
_TRAP = [_trapezoid_normal(24 * 2**k + 1) for k in range(_N_TRAP_LEVELS)]


def _quadrature(pm: Any, day: float, X: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """(S, K) risk of a new patient given one CT scan on ``day``, for the K ``scores`` (default 0-24)."""
    if pm.effect_law.skew is not None:
        return _quadrature_law(pm, day, X, scores)
    m, A = _design_rows(pm, 0, np.array([day]))
    a = A[:, 0, :]  # (S, E)
    base, c = _mortality_pieces(pm, X)
    sigma = pm.covariance()
    var_xi = np.maximum(np.einsum("se,sef,sf->s", a, sigma, a), 1e-12)
    cov = np.einsum("se,sef,sf->s", a, sigma, c)
    var_w = np.einsum("se,sef,sf->s", c, sigma, c)
    sd_w = np.sqrt(np.maximum(var_w - cov**2 / var_xi, 0.0))
    # node spacing <= 0.35 on the logit scale (a scan's likelihood has SD >= 0.4 there)
    n_xi = int(np.clip(math.ceil(2 * _XI_RANGE * np.sqrt(var_xi.max()) / 0.35) + 1, _N_XI, 4 * _N_XI))
    z = np.linspace(-_XI_RANGE, _XI_RANGE, n_xi)
    xi = np.sqrt(var_xi)[:, None] * z  # (S, Q)
    eta = np.clip(m[:, 0:1] + xi, -_ETA_MAX, _ETA_MAX)
    if scores is None:
        logp = pm.ct_likelihood.logpmf_all(eta)  # (S, Q, 25)
    else:
        sc = np.asarray(scores, float)
        logp = pm.ct_logp(sc[None, None, :], eta[..., None])
    logp = logp - 0.5 * (z**2)[None, :, None]
    logp -= logp.max(axis=1, keepdims=True)
    wts = np.exp(logp)
    wts /= wts.sum(axis=1, keepdims=True)
    # the inner expectation only where some score puts weight on the node
    need = wts.max(axis=2) > 1e-14
    inner = np.zeros(need.shape)
    s_idx, _ = np.nonzero(need)
    mean_w = base[:, None] + (cov / var_xi)[:, None] * xi
    inner[need] = _expit_normal_mean(mean_w[need], sd_w[s_idx])
    return np.einsum("sqk,sq->sk", wts, inner)


def _quadrature_law(pm: Any, day: float, X: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """:func:`_quadrature` for a non-normal effect law (:class:`~bayesct.effect_law.EffectLaw`).

    The effects are ``L w(n)`` with ``n`` two standard normals, so the scan's linear predictor
    and the mortality term are both linear in ``(w0(n0), n1)``: a two-dimensional trapezoid
    rule over ``n`` (weights the normal density), its spacing set so that neighbouring nodes
    move the scan's logit by at most 0.35, as in the one-dimensional rule.
    """
    m, A = _design_rows(pm, 0, np.array([day]))
    a = A[:, 0, :]  # (S, E)
    base, c = _mortality_pieces(pm, X)
    law = pm.effect_law
    if law.n_effects != 2:
        raise BayesctError("the skewed severity law has exactly two effects (level and slope)")
    aL = np.einsum("se,sej->sj", a, law.chol)  # the scan's logit is m + aL . w
    cL = np.einsum("se,sej->sj", c, law.chol)  # the mortality term is base + cL . w
    skew = law.skew[:, None]
    pilot = np.linspace(-_XI_RANGE, _XI_RANGE, 401)
    slope0 = np.max(np.abs(np.diff(standardised_from_normal(pilot[None, :], skew), axis=1)), axis=1)
    slope0 /= pilot[1] - pilot[0]
    q0 = int(
        np.clip(math.ceil(2 * _XI_RANGE * np.max(np.abs(aL[:, 0]) * slope0) / 0.35) + 1, _N_XI, 8 * _N_XI)
    )
    q1 = int(np.clip(math.ceil(2 * _XI_RANGE * np.max(np.abs(aL[:, 1])) / 0.35) + 1, 25, 4 * _N_XI))
    n0 = np.linspace(-_XI_RANGE, _XI_RANGE, q0)
    n1 = np.linspace(-_XI_RANGE, _XI_RANGE, q1)
    w0 = standardised_from_normal(n0[None, :], skew)  # (S, q0)
    log_node = (-0.5 * (n0[:, None] ** 2 + n1[None, :] ** 2)).ravel()  # (q0 q1,)
    S = pm.n_draws
    K = CT_MAX + 1 if scores is None else len(scores)
    out = np.empty((S, K))
    step = max(1, 2_000_000 // (q0 * q1 * K))
    for lo in range(0, S, step):
        sl = slice(lo, min(S, lo + step))
        xi = aL[sl, 0, None, None] * w0[sl, :, None] + aL[sl, 1, None, None] * n1[None, None, :]
        eta = np.clip(m[sl, 0, None] + xi.reshape(xi.shape[0], -1), -_ETA_MAX, _ETA_MAX)
        lik = pm.ct_likelihood.take(sl)
        if scores is None:
            logp = lik.logpmf_all(eta)
        else:
            logp = lik.logpmf(np.asarray(scores, float)[None, None, :], eta[..., None])
        logp = logp + log_node[None, :, None]
        logp -= logp.max(axis=1, keepdims=True)
        wts = np.exp(logp)
        wts /= wts.sum(axis=1, keepdims=True)
        r = (
            base[sl, None, None]
            + cL[sl, 0, None, None] * w0[sl, :, None]
            + cL[sl, 1, None, None] * n1[None, None, :]
        )
        out[sl] = np.einsum("sqk,sq->sk", wts, expit(r.reshape(r.shape[0], -1)))
    return out


# ---------------------------------------------------------------------------------------------------
# joint family: importance sampling for histories
# ---------------------------------------------------------------------------------------------------
@dataclass
class _LabBlock:
    name: str
    m: np.ndarray  # (S, n)
    H: np.ndarray  # (S, n, E)
    y: np.ndarray  # (n,)
    noise: np.ndarray  # (S,)
    spec_sd: np.ndarray  # (S,) 0 when no specific intercept
    nu: np.ndarray | None  # (S,) Student-t d.o.f. or None


def _lab_blocks(pm: Any, obs: _Obs) -> tuple[list[_LabBlock], list[str]]:
    blocks, notes = [], []
    S = pm.n_draws
    for name, (days, values) in obs.labs.items():
        if name not in pm.markers:
            notes.append(f"lab '{name}' is not part of model '{pm.spec.name}' and was ignored")
            continue
        k = pm.markers.index(name)
        m, H = _design_rows(pm, k, days)
        noise = pm.draws["noise_sd"][:, k - 1]
        spec_sd = pm.draws["specific_sd"][:, k - 1] if pm.has_specific() else np.zeros(S)
        nu = pm.draws["lab_nu"] if pm.spec.lab_likelihood == "student_t" else None
        blocks.append(_LabBlock(name, m, H, np.asarray(values, float), noise, spec_sd, nu))
    return blocks, notes


def _lab_gaussian(block: _LabBlock) -> tuple[np.ndarray, np.ndarray]:
    """Precision (S, E, E) and linear term (S, E) the block adds to the effects' log-density.

    Exact for normal labs: covariance s² I + t² J of the n values, whose inverse is
    (I - t²/(s² + n t²) J) / s². Student-t labs use the same normal as an approximation (proposal only).
    """
    n = len(block.y)
    s2, t2 = block.noise**2, block.spec_sd**2
    k = t2 / (s2 + n * t2)
    r0 = block.y[None, :] - block.m
    h = block.H.sum(axis=1)  # (S, E)
    prec = np.einsum("sne,snf->sef", block.H, block.H) - k[:, None, None] * h[:, :, None] * h[:, None, :]
    lin = np.einsum("sne,sn->se", block.H, r0) - k[:, None] * h * r0.sum(axis=1)[:, None]
    return prec / s2[:, None, None], lin / s2[:, None]


def _lab_loglik(block: _LabBlock, eff: np.ndarray) -> np.ndarray:
    """(S, M) log-likelihood of one lab's values at effects (S, M, E), intercept integrated out."""
    resid = block.y - block.m[:, None, :] - eff @ block.H.transpose(0, 2, 1)  # (S, M, n)
    if block.nu is None:
        return _cs_normal_logpdf(resid, block.noise[:, None], block.spec_sd[:, None])
    from scipy.stats import t as student_t

    nu = block.nu[:, None, None]
    s = block.noise[:, None, None]
    if np.all(block.spec_sd == 0):
        return student_t.logpdf(resid, df=nu, scale=s).sum(axis=-1)
    gx, gw = _gh()
    v = block.spec_sd[:, None, None, None] * gx  # (S, 1, 1, G)
    lp = student_t.logpdf(resid[..., None] - v, df=nu[..., None], scale=s[..., None]).sum(axis=-2)
    return _logsumexp(lp + np.log(gw), axis=-1)


def _cs_normal_logpdf(resid: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Log-density of residuals (..., n) under N(0, s² I + t² J) (:func:`~bayesct.likelihoods.cs_normal_logpdf`)."""
    return cs_normal_logpdf(resid.shape[-1], resid.sum(axis=-1), (resid**2).sum(axis=-1), s, t)


def _ct_derivs(pm: Any, y: np.ndarray, eta: np.ndarray, h: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of the CT log-pmf in eta (central differences)."""
    up, mid, down = pm.ct_logp(y, eta + h), pm.ct_logp(y, eta), pm.ct_logp(y, eta - h)
    return (up - down) / (2 * h), (up - 2 * mid + down) / h**2


@dataclass
class _ISResult:
    p: np.ndarray  # (S,)
    ess: np.ndarray  # (S,)
    method: str
    n_effects: int
    #: (S,) log p(the observations | theta_s), the effects integrated out (the log of the mean
    #: importance weight, every normalising constant kept)
    log_marginal: np.ndarray


def _importance(
    pm: Any, obs: _Obs, X: np.ndarray, *, method: Literal["laplace", "prior"], n_effects: int, seed: int
) -> tuple[_ISResult, list[str]]:
    S, E = pm.n_draws, len(pm.effect_names)
    ct_m, ct_A = _design_rows(pm, 0, obs.ct_day)
    y_ct = np.asarray(obs.ct_score, float)
    blocks, notes = _lab_blocks(pm, obs)
    base, c = _mortality_pieces(pm, X) if pm.spec.mortality else (np.zeros(S), np.zeros((S, E)))

    if method != "prior":
        # Laplace approximation with the law's covariance as a normal prior (exact for the normal
        # law); the importance weights use the law's own density, so a skewed law stays exact.
        sigma = pm.covariance() + 1e-10 * np.eye(E)
        prec0 = np.linalg.inv(sigma)
        P = 0.5 * (prec0 + prec0.transpose(0, 2, 1))
        b = np.zeros((S, E))
        for blk in blocks:
            dp, db = _lab_gaussian(blk)
            P += dp
            b += db
        mode = np.linalg.solve(P, b[..., None])[..., 0]
        hess = P
        for _ in range(_NEWTON_STEPS):
            hess = P.copy()
            grad = b - np.einsum("sef,sf->se", P, mode)
            if len(y_ct):
                eta = np.clip(ct_m + np.einsum("sne,se->sn", ct_A, mode), -_ETA_MAX, _ETA_MAX)
                d1, d2 = _ct_derivs(pm, y_ct[None, :], eta)
                d2 = np.minimum(d2, -1e-6)
                grad += np.einsum("sne,sn->se", ct_A, d1)
                hess += np.einsum("sne,sn,snf->sef", ct_A, -d2, ct_A)
            step = np.linalg.solve(hess, grad[..., None])[..., 0]
            norm = np.linalg.norm(step, axis=-1, keepdims=True)
            step *= np.minimum(1.0, 2.0 / np.maximum(norm, 1e-300))
            mode = mode + step
            if np.max(np.abs(step)) < 1e-8:
                break
        Lq = np.linalg.cholesky(np.linalg.inv(hess))
        df = _T_DF

    M = n_effects
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((S, M, E))
    law = pm.effect_law
    if method == "prior":
        # proposals from the effects' population law itself: the weight is the likelihood
        eff = law.from_normal(z)
        log_prior = law.logpdf(eff)
        log_q = log_prior
    else:
        g = rng.chisquare(df, size=(S, M)) / df
        eff = mode[:, None, :] + (z @ Lq.transpose(0, 2, 1)) / np.sqrt(g)[..., None]
        delta = (z**2).sum(-1) / g
        # densities with their normalising constants, so that the mean weight estimates p(obs | theta)
        logdet_q = np.log(np.diagonal(Lq, axis1=1, axis2=2)).sum(-1)[:, None]
        log_q = (
            math.lgamma((df + E) / 2)
            - math.lgamma(df / 2)
            - 0.5 * E * math.log(df * math.pi)
            - logdet_q
            - 0.5 * (df + E) * np.log1p(delta / df)
        )
        log_prior = law.logpdf(eff)
    ll = np.zeros((S, M))
    if len(y_ct):
        eta = np.clip(ct_m[:, None, :] + eff @ ct_A.transpose(0, 2, 1), -_ETA_MAX, _ETA_MAX)
        ll += pm.ct_logp(y_ct[None, None, :], eta).sum(-1)
    for blk in blocks:
        ll += _lab_loglik(blk, eff)
    lw = log_prior + ll - log_q
    log_marginal = _logsumexp(lw, axis=1) - math.log(M)
    lw -= lw.max(axis=1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=1, keepdims=True)
    ess = 1.0 / (w**2).sum(axis=1)
    risk = (
        expit(base[:, None] + (eff @ c[:, :, None])[..., 0]) if pm.spec.mortality else np.full((S, M), np.nan)
    )
    return _ISResult((w * risk).sum(axis=1), ess, method, M, log_marginal), notes


# ---------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------
def _summary(draws: np.ndarray, ci_prob: float) -> tuple[float, float, float]:
    if not 0 < ci_prob < 1:
        raise BayesctError(f"ci_prob must be in (0, 1), got {ci_prob!r}")
    return interval(draws, ci_prob)


# ---------------------------------------------------------------------------------------------------
# extrapolation
# ---------------------------------------------------------------------------------------------------
def _as_values(x: Any) -> list[float]:
    if x is None:
        return []
    arr = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    return sorted({float(v) for v in arr if math.isfinite(v)})


def _list_values(what: str, values: Sequence[float]) -> str:
    """``day 60`` / ``days 45, 60`` (plural when several)."""
    shown = ", ".join(f"{v:g}" for v in values)
    return f"{what}s {shown}" if len(values) > 1 else f"{what} {shown}"


def extrapolation_messages(
    fit: Any,
    *,
    day: Any = None,
    ct_score: Any = None,
    age: float | None = None,
    covariates: Mapping[str, Any] | None = None,
) -> list[str]:
    """Plain-language messages saying where a risk query leaves the data the model was fitted to.

    Parameters
    ----------
    fit
        A :class:`~bayesct.modeling.fit.FitResult` or a fit directory.
    day
        Day(s) since symptom onset of the query's observations (a number or a sequence).
    ct_score
        CT score(s) of the query (a number or a sequence).
    age, covariates
        The patient's age and any other numeric covariates by name.

    Returns
    -------
    list of str
        One message per kind of extrapolation, empty when the query lies inside the fitted
        cohort: days past the cohort's last CT scan, days outside the spline ``boundary`` of a
        trajectory (``joint``) model, CT scores outside the observed ones, and covariates (age,
        ...) outside the cohort's range.
    """
    result = _load(fit)
    spec = result.spec
    cohort = result.cohort
    visits = cohort.visits
    patients = cohort.patients
    out: list[str] = []
    days = _as_values(day)
    scores = _as_values(ct_score)
    scans = visits.loc[visits[CT].notna()] if CT in visits.columns else visits.iloc[:0]
    if days and len(scans):
        last = float(scans[DAY].max())
        past = [d for d in days if d > last]
        if past:
            what = "the trajectory model" if spec.family == "joint" else "the per-scan model"
            out.append(
                f"{_list_values('day', past)} {'are' if len(past) > 1 else 'is'} past the last CT scan "
                f"in the fitted cohort (day {last:g}): the risk extrapolates {what}"
            )
    if days and spec.family == "joint":
        lo, hi = spec.boundary
        outside = [d for d in days if not lo <= d <= hi]
        if outside:
            out.append(
                f"{_list_values('day', outside)} {'are' if len(outside) > 1 else 'is'} outside the "
                f"spline boundary of the trajectory model (days {lo:g}-{hi:g}): the population "
                "curves are held constant beyond it, so the risk there is an extrapolation"
            )
    if scores and len(scans):
        s_lo, s_hi = float(scans[CT].min()), float(scans[CT].max())
        outside = [s for s in scores if not s_lo <= s <= s_hi]
        if outside:
            out.append(
                f"{_list_values('CT score', outside)} {'are' if len(outside) > 1 else 'is'} outside "
                f"the CT scores observed in the fitted cohort ({s_lo:g}-{s_hi:g}): the risk "
                "extrapolates the model"
            )
    given: dict[str, Any] = dict(covariates or {})
    if age is not None:
        given["age"] = age
    for name, value in given.items():
        if name == "sex" or name not in patients.columns or value is None:
            continue
        try:
            x = float(value)
        except (TypeError, ValueError):
            continue
        col = pd.to_numeric(patients[name], errors="coerce").dropna()
        if not math.isfinite(x) or col.empty:
            continue
        c_lo, c_hi = float(col.min()), float(col.max())
        if not c_lo <= x <= c_hi:
            label = "ages" if name == "age" else f"values of {name}"
            out.append(
                f"{name} {x:g} is outside the {label} in the fitted cohort ({c_lo:g}-{c_hi:g}): "
                "the risk extrapolates the mortality model"
            )
    return out


def _warn_extrapolation(messages: Iterable[str], stacklevel: int = 3) -> None:
    for msg in dict.fromkeys(messages):
        warnings.warn(msg, RiskWarning, stacklevel=stacklevel)


def risk_query(
    fit: Any,
    *,
    ct_score: int | None = None,
    day: float | None = None,
    history: pd.DataFrame | str | Path | None = None,
    age: float | None = None,
    sex: str | None = None,
    covariates: Mapping[str, Any] | None = None,
    n_effects: int = DEFAULT_N_EFFECTS,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    method: Method = "auto",
    seed: int = 0,
    ci_prob: float = CI_PROB,
) -> xr.Dataset:
    """Posterior of P(death) of a new patient given what has been observed of them.

    Parameters
    ----------
    fit
        A :class:`~bayesct.modeling.fit.FitResult` or a fit directory.
    ct_score, day
        One CT score (0-24) and the day it was taken (days since symptom onset, >= 0). Given
        together with ``history``, the scan is added to the history.
    history
        The patient's observations so far, a DataFrame or a file (CSV, Excel, Parquet) in the
        input contract's long layout for **one** patient: ``day``, ``ct_score``, labs, and
        optionally patient-level columns such as ``age`` and ``sex``. It is validated like any
        cohort (:func:`bayesct.data.validate.build_cohort`), so a bad value raises a
        :class:`~bayesct.errors.DataValidationError` naming the file, row and column.
        ``patient_id`` may be absent (a placeholder is filled in); ``died`` may be absent (a
        placeholder 0 is filled in) and is ignored when present. Labs the model does not
        include are ignored (noted in the ``notes`` attribute).
    age, sex, covariates
        The patient's mortality covariates: every one in the model's spec (``spec.covariates``,
        e.g. ``age`` and ``sex``) must be given here or in the history; nothing is guessed.
        ``covariates`` holds any others by name.
    n_effects
        Effect vectors per posterior draw for importance sampling (histories).
    max_draws
        Posterior draws used (thinned at random with ``seed``); ``None`` uses all.
    method
        ``"auto"`` (quadrature for one scan, ``"laplace"`` for a history), ``"quadrature"``,
        ``"laplace"`` or ``"prior"``; see the module docstring.
    seed
        Seed of the thinning and of the importance sampler: same seed, same numbers.
    ci_prob
        Probability of the central credible interval.

    Returns
    -------
    xarray.Dataset
        ``p_death`` over dim ``sample`` (one value per posterior draw) and, in ``attrs``:
        ``median``, ``lo``, ``hi``, ``mean`` (the posterior mean of the risk: the predictive
        probability of death), ``ci_prob``, ``model``, ``family``, ``converged`` (whether
        the fit passed its convergence gates), ``method``, ``ess_min``/``ess_median`` (of the
        importance weights; NaN for quadrature), ``inputs`` (dict), ``notes`` (list) and
        ``extrapolation`` (list of :func:`extrapolation_messages`: where the query leaves the
        fitted cohort; each is also issued as a :class:`RiskWarning`).

    Raises
    ------
    BayesctError
        A score outside 0-24, a negative day, missing covariates, no observation at all.
    SpecError
        A model without a mortality part.
    DataValidationError
        A history that fails validation.

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> risk = bc.risk_query(fit, ct_score=14, day=8, age=60, sex="male")  # doctest: +SKIP
    >>> risk.attrs["median"], risk.attrs["lo"], risk.attrs["hi"]  # doctest: +SKIP
    >>> bc.risk_query(fit, history="patient_visits.csv", age=60, sex="male")  # doctest: +SKIP
    """
    result = _load(fit)
    spec = result.spec
    _check_mortality(spec)
    if method not in ("auto", "quadrature", "laplace", "prior"):
        raise BayesctError(f"method must be auto, quadrature, laplace or prior; got {method!r}")
    if not isinstance(n_effects, int | np.integer) or n_effects < 2:
        raise BayesctError(f"n_effects must be an integer >= 2, got {n_effects!r}")
    obs = _observations(ct_score, day, history, result.cohort.declared_labs)
    notes = list(obs.notes)
    X_frame, used_cov = _covariate_frame(
        spec, age=age, sex=sex, covariates=covariates, from_history=obs.patient
    )
    given_now = {"age": age, "sex": sex}
    ignored = [k for k, v in given_now.items() if v is not None and k not in spec.covariates]
    if ignored:
        notes.append(f"model '{spec.name}' does not use {', '.join(ignored)}; ignored")
    ess_min = ess_med = float("nan")
    n_eff_used = 0
    if spec.family == "scan_logistic":
        if len(obs.ct_day) == 0:
            raise BayesctError(f"model '{spec.name}' needs a CT score: the history holds none")
        last = int(np.argmax(obs.ct_day))
        if len(obs.ct_day) > 1 or obs.n_lab_values:
            notes.append(
                f"model '{spec.name}' is per scan: only the latest CT scan (day {obs.ct_day[last]:g}) is used"
            )
        sl = _ScanLogistic.from_fit(result, max_draws, seed)
        p = sl.risk(obs.ct_score[last : last + 1], obs.ct_day[last : last + 1])[:, 0]
        used_method = "quadrature"
    else:
        pm = _posterior_model(result, max_draws, seed)
        X = pm.covariates_for(X_frame)
        chosen = method
        if method == "auto":
            chosen = "quadrature" if obs.single_scan else "laplace"
        if chosen == "quadrature":
            if not obs.single_scan:
                raise BayesctError(
                    "method 'quadrature' handles one CT scan only; use 'laplace' for a history"
                )
            probs = _quadrature(pm, float(obs.ct_day[0]), X, np.array([obs.ct_score[0]]))
            p = probs[:, 0]
            used_method = "quadrature"
        else:
            m = int(n_effects)
            res, more = _importance(pm, obs, X, method=chosen, n_effects=m, seed=seed)  # type: ignore[arg-type]
            tries = 0
            while method == "auto" and np.quantile(res.ess, 0.05) < MIN_ESS and tries < 2:
                m *= 2
                tries += 1
                res, more = _importance(pm, obs, X, method=chosen, n_effects=m, seed=seed)  # type: ignore[arg-type]
            notes.extend(more)
            p, used_method, n_eff_used = res.p, f"importance ({res.method} proposal)", res.n_effects
            ess_min, ess_med = float(res.ess.min()), float(np.median(res.ess))
            if np.quantile(res.ess, 0.05) < MIN_ESS:
                warnings.warn(
                    f"importance sampling of the random effects is poor: effective sample size "
                    f"{ess_min:.0f} (min) / {ess_med:.0f} (median) of {m} per draw; "
                    "raise n_effects or use method='laplace'",
                    RiskWarning,
                    stacklevel=2,
                )
    med, lo, hi = _summary(p, ci_prob)
    if spec.family == "scan_logistic":
        q_days, q_scores = obs.ct_day[last : last + 1], obs.ct_score[last : last + 1]
    else:
        lab_days = [d for d, _ in obs.labs.values()]
        q_days, q_scores = np.concatenate([obs.ct_day, *lab_days]), obs.ct_score
    extrapolation = extrapolation_messages(result, day=q_days, ct_score=q_scores, covariates=used_cov)
    _warn_extrapolation(extrapolation)
    inputs: dict[str, Any] = {
        "ct_score": None if ct_score is None else int(_check_score(ct_score)),
        "day": None if day is None else float(day),
        "history": (obs.source if history is not None else None),
        "n_scans": len(obs.ct_day),
        "n_lab_values": obs.n_lab_values,
        **used_cov,
    }
    attrs = {
        "median": med,
        "lo": lo,
        "hi": hi,
        "mean": float(np.mean(p)),
        "ci_prob": float(ci_prob),
        "model": spec.name,
        "family": spec.family,
        "converged": bool(result.passed),
        "method": used_method,
        "ess_min": ess_min,
        "ess_median": ess_med,
        "n_effects": n_eff_used,
        "inputs": inputs,
        "notes": notes,
        "extrapolation": extrapolation,
    }
    return xr.Dataset(
        {"p_death": ("sample", np.asarray(p, float))}, coords={"sample": np.arange(len(p))}, attrs=attrs
    )


def _grid_days(days: Sequence[float] | None, periods: bool) -> tuple[list[float], list[str] | None]:
    if periods:
        if days is not None:
            raise BayesctError("give either days or periods=True, not both")
        return [PERIOD_MID_DAYS[p] for p in PERIOD_LABELS], list(PERIOD_LABELS)
    if days is None:
        return [float(d) for d in range(31)], None
    out = [_check_day(d) for d in days]
    if not out:
        raise BayesctError("days must list at least one day")
    return out, None


def risk_grid(
    fit: Any,
    *,
    scores: Iterable[int] = range(CT_MAX + 1),
    days: Sequence[float] | None = None,
    periods: bool = False,
    age: float | None = None,
    sex: str | None = None,
    covariates: Mapping[str, Any] | None = None,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    seed: int = 0,
    ci_prob: float = CI_PROB,
) -> pd.DataFrame:
    """The Table 3 counterpart: posterior risk of death by CT score × day (or period).

    Each cell is the population-level risk of a new patient with that one CT score on that day
    and the given covariates (as :func:`risk_query` with one scan; deterministic quadrature, so
    the grid is smooth).

    Parameters
    ----------
    fit
        A :class:`~bayesct.modeling.fit.FitResult` or a fit directory.
    scores
        CT scores (0-24), default all.
    days
        Days since symptom onset; default ``0, 1, ..., 30``.
    periods
        Use the paper's five periods instead of days, each at its mid-day
        (:data:`PERIOD_MID_DAYS`; day 25 for ">20"); adds a ``period`` column.
    age, sex, covariates
        The covariates the model needs (as in :func:`risk_query`); nothing is guessed.
    max_draws, seed, ci_prob
        As in :func:`risk_query`.

    Returns
    -------
    pandas.DataFrame
        One row per (day, score): ``ct_score``, ``day``, (``period``), ``median``, ``lo``,
        ``hi``, ``mean`` (posterior mean: the predictive probability), ``band`` (the paper's
        colour band of the median). ``attrs`` hold ``ci_prob``, ``model``, ``converged``, the
        covariates and ``extrapolation`` (list of :func:`extrapolation_messages` for the grid's
        days, scores and covariates; each distinct one is issued once as a :class:`RiskWarning`).

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> grid = bc.risk_grid(fit, days=[3, 8, 13, 18, 23], age=60, sex="male")  # doctest: +SKIP
    >>> grid.pivot(index="ct_score", columns="day", values="median")  # doctest: +SKIP
    >>> bc.write_risk_grid(grid, "risk/risk_grid.csv")  # doctest: +SKIP
    """
    result = _load(fit)
    spec = result.spec
    _check_mortality(spec)
    score_list = [_check_score(s) for s in scores]
    if not score_list:
        raise BayesctError("scores must list at least one CT score")
    day_list, period_labels = _grid_days(days, periods)
    X_frame, used_cov = _covariate_frame(spec, age=age, sex=sex, covariates=covariates, from_history=None)
    extrapolation = extrapolation_messages(result, day=day_list, ct_score=score_list, covariates=used_cov)
    _warn_extrapolation(extrapolation)
    sc = np.asarray(score_list)
    blocks = []
    if spec.family == "scan_logistic":
        sl = _ScanLogistic.from_fit(result, max_draws, seed)
        for d in day_list:
            blocks.append(sl.risk(sc.astype(float), np.full(len(sc), d)))
    else:
        pm = _posterior_model(result, max_draws, seed)
        X = pm.covariates_for(X_frame)
        for d in day_list:
            blocks.append(_quadrature(pm, d, X)[:, sc])
    q = [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2]
    rows = []
    for j, (d, draws) in enumerate(zip(day_list, blocks, strict=True)):
        lo, med, hi = np.quantile(draws, q, axis=0)
        mean = np.mean(draws, axis=0)
        for i, s in enumerate(score_list):
            row: dict[str, Any] = {"ct_score": s, "day": d}
            if period_labels is not None:
                row["period"] = period_labels[j]
            row.update(
                median=float(med[i]),
                lo=float(lo[i]),
                hi=float(hi[i]),
                mean=float(mean[i]),
                band=risk_band(float(med[i])),
            )
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(
        ci_prob=float(ci_prob),
        model=spec.name,
        converged=bool(result.passed),
        covariates=used_cov,
        extrapolation=extrapolation,
    )
    return out


_BAND_COLOURS = {"green": "#4daf4a", "yellow": "#ffd92f", "red": "#e41a1c", "blue": "#377eb8"}


def plot_risk_grid(
    grid: pd.DataFrame, *, ax: Any = None, title: str | None = None, annotate: bool | None = None
) -> Any:
    """Heat map of a :func:`risk_grid` table: CT score (rows) × day or period (columns).

    Cells are coloured by the paper's colour bands of the posterior median (legend) and, when
    the grid is small enough (or ``annotate`` is True), labelled with the median in percent.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    for col in ("ct_score", "day", "median"):
        if col not in grid.columns:
            raise BayesctError(f"not a risk grid: column '{col}' is missing")
    by = "period" if "period" in grid.columns else "day"
    table = grid.pivot_table(index="ct_score", columns=by, values="median", sort=False)
    if by == "period":
        table = table[[p for p in PERIOD_LABELS if p in table.columns]]
    else:
        table = table[sorted(table.columns)]
    table = table.sort_index()
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * table.shape[1] + 2.5), 7.0))
    else:
        fig = ax.figure
    names = [b[0] for b in RISK_BANDS]
    cmap = ListedColormap([_BAND_COLOURS[n] for n in names])
    norm = BoundaryNorm([RISK_BANDS[0][1]] + [b[2] for b in RISK_BANDS], cmap.N)
    values = table.to_numpy(float)
    ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(table.shape[1]))
    ax.set_xticklabels(
        [f"{c:g}" if isinstance(c, float) else str(c) for c in table.columns],
        rotation=90 if table.shape[1] > 12 else 0,
        fontsize=8,
    )
    ax.set_yticks(range(table.shape[0]))
    ax.set_yticklabels([str(i) for i in table.index], fontsize=8)
    ax.set_xlabel("period (days since onset)" if by == "period" else "days since symptom onset")
    ax.set_ylabel("CT score")
    if annotate is None:
        annotate = table.shape[1] <= 12
    if annotate:
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                ax.text(j, i, f"{100 * float(values[i, j]):.0f}", ha="center", va="center", fontsize=6)
    labels = {"green": "< 5%", "yellow": "5-30%", "red": "30-50%", "blue": "50-100%"}
    ax.legend(
        handles=[Patch(color=_BAND_COLOURS[n], label=labels.get(n, n)) for n in names],
        title="median P(death)",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    model = grid.attrs.get("model")
    ax.set_title(
        title or f"Posterior median risk of death{f' (model {model})' if model else ''}", fontsize=10
    )
    fig.tight_layout()
    return fig


def write_risk_grid(grid: pd.DataFrame, path: str | Path) -> tuple[Path, Path]:
    """Write a :func:`risk_grid` table as CSV and its heat map (:func:`plot_risk_grid`) as PNG beside it.

    Parameters
    ----------
    grid
        A table from :func:`risk_grid`.
    path
        The CSV file; the PNG takes its name with the suffix ``.png``. Folders are created.

    Returns
    -------
    tuple of Path
        The CSV and the PNG.

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> grid = bc.risk_grid(fit, days=[3, 8, 13], age=60, sex="male")  # doctest: +SKIP
    >>> bc.write_risk_grid(grid, "risk/risk_grid.csv")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = Path(path)
    csv.parent.mkdir(parents=True, exist_ok=True)
    grid.to_csv(csv, index=False, float_format="%.6g")
    fig = plot_risk_grid(grid)
    png = csv.with_suffix(".png")
    fig.savefig(png, dpi=150)
    plt.close(fig)
    return csv, png


def _patient_obs(
    design: Any, i: int, parts: tuple[str, ...] = ("ct", "labs"), until: float | None = None
) -> _Obs:
    """What the fitted cohort observed of patient ``i`` (scans and/or labs, modelling scale), no
    outcome; with ``until``, only what was observed on or before that day."""
    ct, labs = design.ct, design.labs
    horizon = math.inf if until is None else until
    on = (ct.patient == i) & ("ct" in parts) & (ct.day <= horizon)
    out = _Obs(ct.day[on].astype(float), ct.value[on].astype(float))
    for k, name in enumerate(design.markers[1:], start=1):
        sel = (labs.patient == i) & (labs.marker == k) & (labs.day <= horizon)
        if sel.any() and "labs" in parts:
            out.labs[name] = (labs.day[sel].astype(float), labs.value[sel].astype(float))
    return out


def history_terms(
    pm: Any,
    *,
    parts: tuple[str, ...] = ("ct", "labs"),
    n_effects: int = DEFAULT_N_EFFECTS,
    seed: int = 0,
    until: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per posterior draw and cohort patient, with the patient's effects integrated out:
    ``p`` (S, n), P(death | their ``parts`` data, θ_s), and ``log_marginal`` (S, n),
    log p(their ``parts`` data | θ_s). With ``until`` (a landmark day), only the data observed
    on or before that day enter (a patient with none gets the population risk).

    By importance sampling (:func:`risk_query`'s history method, Laplace proposal). The
    patient's outcome enters neither; ``log_marginal + log P(died_i | data, θ)`` is the
    patient's log-likelihood with their effects integrated out, the unit of patient-level
    PSIS-LOO over θ. Kept in ``pm.memo``: the same call on the same posterior view is not redone.
    """
    key = ("history_terms", tuple(parts), n_effects, seed, until)
    if key in pm.memo:
        return pm.memo[key]
    from bayesct import engine

    n = pm.design.n_patients
    p = np.empty((pm.n_draws, n))
    log_marginal = np.empty((pm.n_draws, n))
    if engine.active() and n > 1:
        # inside an engine session: the patients in a few chunks per worker, the same seeds
        tasks = [(idx, tuple(parts), n_effects, seed, until) for idx in engine.chunks(n, 8)]
        light = dataclasses.replace(pm, memo={})
        for j, result in engine.run_tasks(_history_chunk, tasks, shared=light, name="bayesct-history"):
            if isinstance(result, BaseException):
                raise BayesctError(
                    f"the history terms of patients {tasks[j][0][0]}-{tasks[j][0][-1]} failed: {result}"
                )
            p[:, tasks[j][0]], log_marginal[:, tasks[j][0]] = result
    else:
        p[:], log_marginal[:] = _history_chunk(pm, (list(range(n)), tuple(parts), n_effects, seed, until))
    pm.memo[key] = (p, log_marginal)
    return p, log_marginal


def _history_chunk(
    pm: Any, task: tuple[list[int], tuple[str, ...], int, int, float | None]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`history_terms` of the patients ``task[0]`` (S, len) and (S, len); patient i's seed is ``seed + i``."""
    patients, parts, n_effects, seed, until = task
    design = pm.design
    p = np.empty((pm.n_draws, len(patients)))
    log_marginal = np.empty((pm.n_draws, len(patients)))
    for j, i in enumerate(patients):
        X = design.covariates[i : i + 1]
        res, _ = _importance(
            pm, _patient_obs(design, i, parts, until), X, method="laplace", n_effects=n_effects, seed=seed + i
        )
        p[:, j], log_marginal[:, j] = res.p, res.log_marginal
    return p, log_marginal


def patient_risks(
    fit: Any,
    *,
    max_draws: int | None = DEFAULT_MAX_DRAWS,
    n_effects: int = DEFAULT_N_EFFECTS,
    seed: int = 0,
    ci_prob: float = CI_PROB,
) -> pd.DataFrame:
    """For each cohort patient, three risks of death, each with what it conditions on.

    ``history_*``: P(death | the patient's own scans and labs, covariates), their effects
    integrated over given those data alone (:func:`risk_query`'s history query, Laplace-proposal
    importance sampling) — the patient's outcome enters only through the fitted population
    parameters (in-sample θ; leaving each patient out of θ as well is PSIS-LOO's job).
    ``scan_logistic`` has no longitudinal part: its history risk is the population risk at the
    patient's last scan. ``population_*``: the risk of a new patient with only the patient's
    first CT scan and covariates (one scan). ``fitted_*``: the **in-sample fitted** risk, expit of
    the mortality log-odds at the patient's posterior effects, which were estimated *with their
    outcome*: a description of the fit, never a prediction (it separates the outcomes almost
    perfectly by construction).

    A patient of unknown outcome (still in hospital) gets the same three risks: their history
    risk is the most useful number for them; ``outcome`` says ``"unknown"``.

    Returns
    -------
    pandas.DataFrame
        One row per patient: ``patient_id``, ``died`` (NaN: unknown), ``outcome`` (``"died"``,
        ``"survived"`` or ``"unknown"``), ``first_day``, ``first_ct_score``, the model's
        covariates, then ``history_median``, ``history_lo``, ``history_hi``, ``population_*``
        and ``fitted_*`` likewise.

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> risks = bc.patient_risks(fit)  # doctest: +SKIP
    >>> risks[["patient_id", "died", "history_median", "history_lo", "history_hi"]]  # doctest: +SKIP
    """
    result = _load(fit)
    spec = result.spec
    _check_mortality(spec)
    cohort = result.cohort
    design = result.design
    scans = cohort.visits.loc[cohort.visits[CT].notna()].sort_values(["patient_id", DAY])
    first = scans.groupby("patient_id", sort=False).head(1).set_index("patient_id")
    last = scans.groupby("patient_id", sort=False).tail(1).set_index("patient_id")
    ids = [str(p) for p in design.patient_ids]
    first, last = first.reindex(ids), last.reindex(ids)
    q = [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2]
    f_day = first[DAY].to_numpy(float)
    f_ct = first[CT].to_numpy(float)
    if spec.family == "scan_logistic":
        sl = _ScanLogistic.from_fit(result, max_draws, seed)
        own = expit(sl.logit(f_ct, f_day) + (sl.effects if sl.effects is not None else 0.0))
        pop = sl.risk(f_ct, f_day)
        hist = sl.risk(last[CT].to_numpy(float), last[DAY].to_numpy(float))
    else:
        pm = _posterior_model(result, max_draws, seed)
        own = expit(pm.mortality_logit(pm.patient_effects(), design.covariates))
        pop = np.empty_like(own)
        for i in range(len(ids)):
            X = design.covariates[i : i + 1]
            pop[:, i] = _quadrature(pm, float(f_day[i]), X, f_ct[i : i + 1])[:, 0]
        hist, _ = history_terms(pm, n_effects=n_effects, seed=seed)
    outcome = np.where(design.outcome_known, np.where(design.died == 1, "died", "survived"), "unknown")
    out = pd.DataFrame(
        {
            "patient_id": ids,
            "died": design.died,
            "outcome": outcome,
            "first_day": f_day,
            "first_ct_score": f_ct.astype(int),
        }
    )
    pats = cohort.patients
    for cov in spec.covariates:
        if cov in pats.columns:
            out[cov] = pats.loc[ids, cov].to_numpy()
    for name, draws in (("history", hist), ("population", pop), ("fitted", own)):
        lo, med, hi = np.quantile(draws, q, axis=0)
        out[f"{name}_median"], out[f"{name}_lo"], out[f"{name}_hi"] = med, lo, hi
    out.attrs.update(
        ci_prob=float(ci_prob),
        model=spec.name,
        converged=bool(result.passed),
        conditions_on={
            "history": "the patient's scans, labs and covariates (outcome only through the fitted parameters)",
            "population": "the patient's first CT scan and covariates",
            "fitted": "everything, the patient's outcome included (in-sample, not a prediction)",
        },
    )
    return out
