"""Standard predictive checks beside the replicated tables: PIT / LOO-PIT, mortality calibration, PSIS-LOO.

All of them evaluate the fitted model through :class:`~bayesct.modeling.posterior.PosteriorModel`
(never a second statement of the model's algebra) and use arviz for Pareto-smoothed importance
sampling.

PIT / LOO-PIT (:func:`predictive_pit`)
    Per observed CT score and lab value, the probability integral transform of the observation
    under the posterior predictive distribution *conditional on the patient's own effects*
    (``pit``), and its leave-one-observation-out version (``loo_pit``): the same per-draw CDF
    values averaged with PSIS weights from each observation's pointwise log-likelihood. The CT
    score is discrete, so its PIT is randomised (``F(y-1) + U * P(y)``, ``U ~ Uniform(0, 1)``); a
    well-calibrated model gives uniform values. Lab-specific intercepts, integrated out of the
    fit, are drawn from their exact conditional posterior
    (:meth:`~bayesct.modeling.posterior.PosteriorModel.specific_posterior`) and the lab
    log-likelihood is taken conditional on them.
Mortality calibration (:func:`mortality_calibration`)
    Each patient's predicted probability of death, leave-one-patient-out (PSIS weights from the
    patient's whole log-likelihood: CT, labs and death), binned in equal-count bins against the
    observed death rate with a Jeffreys interval (lower bound 0 with no death, upper 1 when all died); the bin's mean predicted risk carries a
    posterior interval (in-sample draws). Brier and log scores, expected vs observed deaths.
Patient-level PSIS-LOO (:func:`patient_loo`, :func:`compare_models`)
    The unit left out is a patient (all of their scans, labs and outcome), because the patient
    effects make a patient's observations dependent. Variants are compared on the data they all
    model: the CT scores always, the labs when every variant models the same labs, death when
    every variant has a mortality submodel (documented in the returned frame's ``data`` column).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayesct.constants import CI_PROB, CT, CT_MAX
from bayesct.errors import BayesctError
from bayesct.likelihoods import death_loglik
from bayesct.modeling.design import from_model_scale
from bayesct.modeling.fit import FitResult, data_fingerprint
from bayesct.modeling.posterior import PosteriorModel

if TYPE_CHECKING:
    from bayesct.checks.refit import Refitter

#: Pareto k above which PSIS estimates are unreliable (arviz's threshold for S >= 2000 draws is
#: ~0.7; it is lower for fewer draws, and arviz reports its own ``good_k``).
PARETO_K_BAD = 0.7

#: Posterior draws used by the standard checks (thinned at random when the fit has more).
DEFAULT_CHECK_DRAWS = 1000


class CheckError(BayesctError):
    """A predictive check that cannot run on the given fit(s)."""


def _require_joint(fit: FitResult, what: str) -> None:
    if fit.spec.family != "joint":
        raise CheckError(
            f"{what} needs a trajectory model of the joint family (joint, ct_only, descriptive); "
            f"model '{fit.spec.name}' is of the '{fit.spec.family}' family"
        )


# -- PSIS ------------------------------------------------------------------------------------------
def psis_loo(loglik: np.ndarray) -> Any:
    """arviz PSIS-LOO of a pointwise log-likelihood matrix ``(S, n)`` (draws x units).

    Returns the arviz ``ELPDData`` (``elpd``, ``se``, ``p``, ``pareto_k``, ``log_weights``, ...);
    arviz's warnings about high Pareto k are silenced (callers count the bad k themselves).
    """
    ll = np.asarray(loglik, dtype=float)
    if ll.ndim != 2:
        raise ValueError("loglik must be (draws, units)")
    S = ll.shape[0]
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"_draw": (("chain", "draw"), np.zeros((1, S)))}),
            "log_likelihood": xr.Dataset({"unit": (("chain", "draw", "unit"), ll[None])}),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(tree, pointwise=True, var_name="unit")


def psis_weights(loglik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised PSIS leave-one-out weights ``(S, n)`` and the Pareto k ``(n,)`` of each unit.

    Where the smoothed weights are not finite, plain importance ratios are used (their Pareto k
    flags them); NaN weights remain only where the log-likelihood itself is not finite.
    """
    res = psis_loo(loglik)
    lw = np.asarray(res.log_weights.transpose("unit", "chain", "draw").values).reshape(loglik.shape[1], -1).T
    bad = ~np.isfinite(lw).all(axis=0)
    if bad.any():  # smoothing failed (e.g. extreme draws): plain importance ratios, flagged by k
        with np.errstate(all="ignore"):
            lw[:, bad] = -np.asarray(loglik, dtype=float)[:, bad]
    with np.errstate(all="ignore"):
        w = np.exp(lw - lw.max(axis=0, keepdims=True))
        w /= w.sum(axis=0, keepdims=True)
    return w, np.asarray(res.pareto_k.values, dtype=float).ravel()


# -- PIT / LOO-PIT ---------------------------------------------------------------------------------
def _ct_pieces(pm: PosteriorModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per CT scan and draw: P(Y < y), P(Y = y) and log P(Y = y), each ``(S, n_scans)``."""
    d = pm.design
    ct = d.ct
    eff = pm.patient_effects()
    grp = d.died[ct.patient] if pm.spec.by_group else None
    eta = pm.linear_predictor(0, ct.day, eff[:, ct.patient, :], group=grp)
    y = np.asarray(ct.value, dtype=float)
    pmf = np.exp(pm.ct_likelihood.logpmf_all(eta))  # (S, n_scans, 25)
    scores = np.arange(CT_MAX + 1)
    below = (pmf * (scores[None, :] < y[:, None])).sum(axis=-1)
    at = (pmf * (scores[None, :] == y[:, None])).sum(axis=-1)
    return below, at, np.log(np.maximum(at, 1e-300))


def _lab_pieces(pm: PosteriorModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per lab value and draw: the CDF at the observation and its log-density, ``(S, n_lab_values)``."""
    d = pm.design
    labs = d.labs
    eff = pm.patient_effects()
    specific = pm.specific_posterior(rng, eff)
    S = pm.n_draws
    cdf = np.empty((S, labs.value.size))
    logp = np.empty((S, labs.value.size))
    for k in range(1, len(d.markers)):
        mask = labs.marker == k
        if not mask.any():
            continue
        pat = labs.patient[mask]
        grp = d.died[pat] if pm.spec.by_group else None
        eta = pm.linear_predictor(
            k, labs.day[mask], eff[:, pat, :], specific=specific[:, pat, k - 1], group=grp
        )
        resid = labs.value[mask][None, :] - eta
        cdf[:, mask] = pm.lab_likelihood.cdf(resid, k - 1)
        logp[:, mask] = pm.lab_likelihood.logpdf(resid, k - 1)
    return cdf, logp


def predictive_pit(
    fit: FitResult,
    *,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
    model: PosteriorModel | None = None,
) -> pd.DataFrame:
    """PIT and LOO-PIT of every observed CT score and lab value (see the module docstring).

    Parameters
    ----------
    fit
        A joint-family fit.
    max_draws
        Posterior draws used (a random subset when the fit has more).
    seed
        Seed of the draw subset, the randomised CT PIT and the lab-specific intercepts.
    model
        A prebuilt :class:`PosteriorModel` (overrides ``max_draws``).

    Returns
    -------
    pandas.DataFrame
        One row per observation: ``marker, patient_id, day, value`` (natural scale), ``pit``,
        ``loo_pit`` and ``pareto_k`` (of the observation's PSIS weights).
    """
    _require_joint(fit, "PIT")
    pm = model or PosteriorModel.from_fit(fit, max_draws=max_draws, seed=seed)
    rng = np.random.default_rng(seed)
    d = pm.design
    below, at, ll_ct = _ct_pieces(pm)
    u = np.asarray(rng.uniform(size=below.shape[1]))
    f_ct = below + u[None, :] * at
    parts_f = [f_ct]
    parts_ll = [ll_ct]
    labs = d.labs
    if labs.value.size:
        cdf, ll_lab = _lab_pieces(pm, rng)
        parts_f.append(cdf)
        parts_ll.append(ll_lab)
    F = np.concatenate(parts_f, axis=1)
    LL = np.concatenate(parts_ll, axis=1)
    w, k = psis_weights(LL)
    markers = [CT] * d.ct.value.size + [d.markers[m] for m in labs.marker]
    lab_values = np.empty(labs.value.size)
    for m in np.unique(labs.marker):
        mask = labs.marker == m
        lab_values[mask] = from_model_scale(d.markers[m], labs.value[mask], d.declared_labs)
    values = np.concatenate([d.ct.value.astype(float), lab_values])
    patients = np.concatenate([d.ct.patient, labs.patient])
    days = np.concatenate([d.ct.day, labs.day])
    return pd.DataFrame(
        {
            "marker": markers,
            "patient_id": d.patient_ids[patients],
            "day": days,
            "value": values,
            "pit": np.clip(F.mean(axis=0), 0.0, 1.0),
            "loo_pit": np.clip((w * F).sum(axis=0), 0.0, 1.0),
            "pareto_k": k,
        }
    )


def pit_summary(pit: pd.DataFrame, *, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Uniformity of the PIT values per marker.

    Returns
    -------
    pandas.DataFrame
        Per marker: ``n``, ``mean_pit`` / ``mean_loo_pit`` (0.5 expected), the Kolmogorov-Smirnov
        distance and p-value of each against Uniform(0, 1), ``outside_loo`` (share of LOO-PIT
        values outside the central ``ci_prob`` predictive interval; ``1 - ci_prob`` expected) and
        ``n_bad_k`` (observations with Pareto k > 0.7).
    """
    rows = []
    lo, hi = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    for marker, g in pit.groupby("marker", sort=False):
        p = g["pit"].dropna().to_numpy()
        q = g["loo_pit"].dropna().to_numpy()
        ks_p = stats.kstest(p, "uniform")
        ks_q = stats.kstest(q, "uniform")
        rows.append(
            {
                "marker": marker,
                "n": len(g),
                "mean_pit": float(p.mean()),
                "mean_loo_pit": float(q.mean()),
                "ks_pit": float(ks_p.statistic),
                "ks_pit_p": float(ks_p.pvalue),
                "ks_loo_pit": float(ks_q.statistic),
                "ks_loo_pit_p": float(ks_q.pvalue),
                "outside_loo": float(((q < lo) | (q > hi)).mean()),
                "expected_outside": 1 - ci_prob,
                "n_bad_k": int((g["pareto_k"] > PARETO_K_BAD).sum()),
            }
        )
    return pd.DataFrame(rows)


# -- mortality calibration -------------------------------------------------------------------------
@dataclass
class MortalityCalibration:
    """Calibration of the predicted probability of death (see :func:`mortality_calibration`)."""

    bins: pd.DataFrame
    patients: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)
    ci_prob: float = CI_PROB

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci_prob": self.ci_prob,
            "summary": self.summary,
            "bins": self.bins.to_dict(orient="records"),
            "method": (
                "per patient, leave-one-patient-out predicted P(death) (PSIS weights from the patient's "
                "CT, lab and death log-likelihood), equal-count bins of that prediction; observed rate "
                "with a Jeffreys interval; the bin's mean predicted risk with a posterior interval "
                "(in-sample draws)"
            ),
        }


def mortality_calibration(
    fit: FitResult,
    *,
    n_bins: int = 5,
    ci_prob: float = CI_PROB,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
    model: PosteriorModel | None = None,
) -> MortalityCalibration:
    """Binned calibration of the mortality submodel's predicted risk of death.

    What the risks condition on: each patient's risk is P(death | their scans, labs and
    covariates), their random effects integrated out given those data alone (importance
    sampling, :func:`bayesct.risk.history_terms`), so the patient's outcome never enters it
    through their own effects. ``predicted`` averages it over the full posterior of θ (which
    saw every patient's outcome, this one's included); ``predicted_loo`` over θ with the
    patient left out by PSIS, whose log-ratios are the patient's whole likelihood with their
    effects integrated out (so the Pareto k judge θ alone, not the patient's own effects).

    Parameters
    ----------
    fit
        A joint-family fit with a mortality submodel.
    n_bins
        Equal-count bins of the leave-one-patient-out predicted risk.
    ci_prob
        Interval probability (default 0.95).
    max_draws, seed, model
        As in :func:`predictive_pit`.

    Patients of unknown outcome (``died`` NaN) have no death term: their PSIS log-ratio is
    their scans and labs alone, and they are in ``patients`` (with their risks) but not in the
    bins or the scores.

    Returns
    -------
    MortalityCalibration
        ``bins``: per bin ``bin, n, deaths, observed_rate, observed_lo, observed_hi,
        predicted (LOO mean), predicted_lo, predicted_hi``; ``patients``: per patient ``died``
        (NaN: unknown), ``predicted, predicted_loo, pareto_k``; ``summary``: over the patients
        of known outcome (``n_patients``; ``n_outcome_unknown`` left out), Brier and log scores
        (LOO and in-sample θ), AUC (LOO), expected and observed deaths, Pareto k counts.
    """
    _require_joint(fit, "mortality calibration")
    if not fit.spec.mortality:
        raise CheckError(f"model '{fit.spec.name}' has no mortality submodel: nothing to calibrate")
    if n_bins < 1:
        raise CheckError("n_bins must be >= 1")
    from bayesct.risk import history_terms

    pm = model or PosteriorModel.from_fit(fit, max_draws=max_draws, seed=seed)
    d = pm.design
    # P(death | the patient's scans and labs, theta): their effects integrated out given those
    # data alone, never given their outcome
    p_draws, log_marginal = history_terms(pm, parts=model_parts(fit, outcome=False), seed=seed)
    p_draws = np.clip(p_draws, 1e-12, 1 - 1e-12)
    # theta left out by PSIS, with the patient's whole likelihood, effects integrated out
    loglik = log_marginal + death_loglik(d.died, p_draws)
    w, k = psis_weights(loglik)
    pred_all = p_draws.mean(axis=0)
    pred_loo_all = np.clip((w * p_draws).sum(axis=0), 1e-12, 1 - 1e-12)
    # scored over the patients of known outcome
    known = d.known_patients
    died, pred, pred_loo, p_draws = d.died[known], pred_all[known], pred_loo_all[known], p_draws[:, known]
    order = np.argsort(pred_loo, kind="stable")
    lo_q, hi_q = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    rows = []
    for b, idx in enumerate(np.array_split(order, min(n_bins, len(order)))):
        if idx.size == 0:
            continue
        n, deaths = int(idx.size), int(died[idx].sum())
        bin_mean_draws = p_draws[:, idx].mean(axis=1)
        rows.append(
            {
                "bin": b + 1,
                "n": n,
                "deaths": deaths,
                "observed_rate": deaths / n,
                "observed_lo": 0.0
                if deaths == 0
                else float(stats.beta.ppf(lo_q, deaths + 0.5, n - deaths + 0.5)),
                "observed_hi": 1.0
                if deaths == n
                else float(stats.beta.ppf(hi_q, deaths + 0.5, n - deaths + 0.5)),
                "predicted": float(pred_loo[idx].mean()),
                "predicted_lo": float(np.quantile(bin_mean_draws, lo_q)),
                "predicted_hi": float(np.quantile(bin_mean_draws, hi_q)),
                "risk_min": float(pred_loo[idx].min()),
                "risk_max": float(pred_loo[idx].max()),
            }
        )
    bins = pd.DataFrame(rows)
    patients = pd.DataFrame(
        {"died": d.died, "predicted": pred_all, "predicted_loo": pred_loo_all, "pareto_k": k},
        index=pd.Index(d.patient_ids, name="patient_id"),
    )
    summary = {
        "n_patients": float(known.size),
        "n_outcome_unknown": float(d.n_patients - known.size),
        "observed_deaths": float(died.sum()),
        "expected_deaths_loo": float(pred_loo.sum()),
        "expected_deaths": float(pred.sum()),
        "brier_loo": float(np.mean((pred_loo - died) ** 2)),
        "brier_in_sample": float(np.mean((pred - died) ** 2)),
        "log_score_loo": float(np.mean(death_loglik(died, pred_loo))),
        "auc_loo": _auc(pred_loo, died),
        "n_bad_k": float((k[known] > PARETO_K_BAD).sum()),
        "max_pareto_k": float(np.max(k[known])),
    }
    return MortalityCalibration(bins, patients, summary, ci_prob)


#: Landmark days of the dynamic-prediction check (days since onset).
LANDMARKS: tuple[float, ...] = (5.0, 10.0, 15.0)


def landmark_accuracy(
    fit: FitResult,
    *,
    landmarks: tuple[float, ...] = LANDMARKS,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
    model: PosteriorModel | None = None,
) -> pd.DataFrame:
    """Dynamic prediction: leave-patient-out death risks from the data up to each landmark day.

    What the risks condition on: for landmark day L, patient i's risk is
    P(death | their scans and labs on or before day L, their covariates), their effects
    integrated out given those data alone (:func:`bayesct.risk.history_terms` with
    ``until=L``), averaged over θ with the patient left out by PSIS (the log-ratios are the
    patient's whole likelihood, effects integrated out, as in :func:`mortality_calibration`).
    Patients scored at L are those of known outcome with at least one CT scan on or before L;
    the cohort records no day of death or discharge, so no patient is removed as no longer at risk.
    The last row (``landmark`` = inf) uses every observation.

    Returns
    -------
    pandas.DataFrame
        One row per landmark: ``landmark`` (inf: every observation), ``data`` (the same in
        words), ``n_patients``, ``deaths``, ``brier_loo``,
        ``auc_loo`` (NaN when only one outcome is present) and ``mean_risk_loo``.

    Examples
    --------
    >>> landmark_accuracy(fit, landmarks=(7.0, 14.0))  # doctest: +SKIP
    """
    _require_joint(fit, "landmark prediction")
    if not fit.spec.mortality:
        raise CheckError(f"model '{fit.spec.name}' has no mortality submodel: nothing to predict")
    from bayesct.risk import history_terms

    pm = model or PosteriorModel.from_fit(fit, max_draws=max_draws, seed=seed)
    d = pm.design
    parts = model_parts(fit, outcome=False)
    died = d.died
    p_all, log_marginal = history_terms(pm, parts=parts, seed=seed)
    p_all = np.clip(p_all, 1e-12, 1 - 1e-12)
    w, _ = psis_weights(log_marginal + death_loglik(died, p_all))
    first_scan = np.full(d.n_patients, np.inf)
    np.minimum.at(first_scan, d.ct.patient, d.ct.day.astype(float))
    rows = []
    for L in (*sorted(float(x) for x in landmarks), math.inf):
        p_L = p_all if math.isinf(L) else history_terms(pm, parts=parts, seed=seed, until=L)[0]
        risk = (w * p_L).sum(axis=0)
        sel = (first_scan <= L) & d.outcome_known
        y, r = died[sel], risk[sel]
        both = 0 < y.sum() < len(y)
        rows.append(
            {
                "landmark": L,
                "data": "every scan and lab" if math.isinf(L) else f"scans and labs by day {L:g}",
                "n_patients": int(sel.sum()),
                "deaths": int(y.sum()),
                "brier_loo": float(np.mean((r - y) ** 2)) if len(y) else math.nan,
                "auc_loo": _auc(r, y) if both else math.nan,
                "mean_risk_loo": float(r.mean()) if len(y) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def landmark_lines(table: pd.DataFrame) -> list[str]:
    """The landmark table as text lines (CLI, report)."""
    lines = [
        "Dynamic prediction (leave-patient-out death risk from the scans and labs up to each day, "
        "patients with a CT scan by then):"
    ]
    for _, r in table.iterrows():
        landmark, auc_loo = float(r["landmark"]), float(r["auc_loo"])
        day = "all data" if math.isinf(landmark) else f"by day {landmark:g}"
        auc = "–" if math.isnan(auc_loo) else f"{auc_loo:.3f}"
        lines.append(
            f"  {day:<12} {int(r['n_patients']):>4} patients, {int(r['deaths']):>3} deaths: "
            f"Brier {float(r['brier_loo']):.3f}, AUC {auc}"
        )
    return lines


def _auc(score: np.ndarray, outcome: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney probability, ties counted half); NaN without both outcomes."""
    pos, neg = score[outcome == 1], score[outcome == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.r_[pos, neg])
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


# -- patient-level PSIS-LOO --------------------------------------------------------------------------
def model_parts(fit: FitResult, *, outcome: bool = True) -> tuple[str, ...]:
    """The data a joint-family fit models, as :meth:`PosteriorModel.patient_loglik` parts
    (``outcome=False``: the longitudinal data only)."""
    parts = ["ct"]
    if len(fit.design.markers) > 1:
        parts.append("labs")
    if fit.spec.mortality and outcome:
        parts.append("death")
    return tuple(parts)


#: What a patient-level log-likelihood conditions on, by method.
CONDITIONING = {
    "integrated": "the patient's random effects integrated out (importance sampling per draw)",
    "conditional": "the patient's own posterior effects (outcome-group curves included where the "
    "spec has them): optimistic, and high Pareto k are expected",
}


def integrated_patient_loglik(pm: PosteriorModel, parts: tuple[str, ...], *, seed: int = 0) -> np.ndarray:
    """(S, n) each patient's log-likelihood of ``parts`` given θ_s, their random effects integrated
    out (:func:`bayesct.risk.history_terms`): log p(longitudinal data | θ) plus, with ``"death"``,
    log P(died | longitudinal data, θ) (none for a patient of unknown outcome)."""
    from bayesct.risk import history_terms

    if pm.spec.by_group:
        raise CheckError(
            f"model '{pm.spec.name}' has outcome-group-specific curves: its longitudinal likelihood "
            "conditions on the outcome, so it has no integrated patient likelihood"
        )
    p, out = history_terms(pm, parts=tuple(x for x in parts if x != "death"), seed=seed)
    if "death" in parts:  # no term for an outcome not known yet
        out = out + death_loglik(pm.design.died, np.clip(p, 1e-12, 1 - 1e-12))
    return out


#: The variable of the ``log_likelihood`` group (:func:`patient_log_likelihood`); not ``patient``,
#: which is its dimension.
LOG_LIKELIHOOD_VAR = "patient_loglik"

#: What the ``log_likelihood`` group of a saved fit conditions on (its ``conditioning`` attribute).
LOG_LIKELIHOOD_CONDITIONING = (
    "each patient's log-likelihood of all their data the model describes (parts) given the draw's "
    "population parameters, with the patient's own random effects integrated out (importance "
    "sampling per draw, bayesct.risk.history_terms): log p(CT scores, labs | theta) + "
    "log P(death | CT scores, labs, theta) (no death term for an outcome not known yet); az.loo of "
    "it is the leave-one-patient-out predictive"
)


def patient_log_likelihood(
    fit: FitResult, *, max_draws: int | None = None, seed: int = 0
) -> xr.Dataset | None:
    """ArviZ's ``log_likelihood`` group of a fit: ``patient_loglik``, (chain, draw, patient).

    Each entry is :func:`integrated_patient_loglik` of the patient's data (:func:`model_parts`:
    CT scores, labs, death) at one posterior draw, the patient's random effects integrated
    out, so that ``az.loo(tree)`` is the patient-level PSIS-LOO (what ``bayesct compare``
    computes, without its exact refits). What it conditions on is stated in its attrs
    (``conditioning``, ``parts``).

    Every draw is used unless ``max_draws`` is given and smaller than chains x draws; then each
    chain is thinned by the same stride (every k-th draw), the kept draws' ``draw``
    coordinates are those of the posterior, and the attrs say ``thinned_every``. ``None`` for a
    model that has none: a per-scan model (``scan_logistic``) or one with outcome-group curves,
    whose longitudinal likelihood conditions on the outcome.
    """
    if fit.spec.family != "joint" or fit.spec.by_group:
        return None
    post = fit.posterior
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    step = 1
    if max_draws is not None and max_draws < chains * draws:
        step = math.ceil(chains * draws / max(max_draws, 1))
    view = fit
    if step > 1:
        tree = fit.tree.copy()
        tree["posterior"] = post.isel(draw=slice(None, None, step))
        view = dataclasses.replace(fit, tree=tree)
    pm = PosteriorModel.from_fit(view)
    parts = model_parts(fit)
    ll = integrated_patient_loglik(pm, parts, seed=seed)
    kept = view.posterior
    values = ll.reshape(chains, int(kept.sizes["draw"]), -1)
    da = xr.DataArray(
        values,
        dims=("chain", "draw", "patient"),
        coords={
            "chain": kept["chain"].values,
            "draw": kept["draw"].values,
            "patient": [str(p) for p in fit.design.patient_ids],
        },
    )
    attrs: dict[str, Any] = {
        "conditioning": LOG_LIKELIHOOD_CONDITIONING,
        "parts": ", ".join(parts),
        "thinned_every": step,
    }
    return xr.Dataset({LOG_LIKELIHOOD_VAR: da}, attrs=attrs)


def _patient_loglik(pm: PosteriorModel, parts: tuple[str, ...], integrated: bool, seed: int) -> np.ndarray:
    return integrated_patient_loglik(pm, parts, seed=seed) if integrated else pm.patient_loglik(parts=parts)


def _logmeanexp_cols(ll: np.ndarray) -> np.ndarray:
    m = ll.max(axis=0)
    return m + np.log(np.mean(np.exp(ll - m), axis=0))


def _with_refits(
    res: Any,
    loglik: np.ndarray,
    fit: FitResult,
    parts: tuple[str, ...],
    *,
    refit: bool | Refitter,
    max_draws: int,
    seed: int,
    progress: Callable[[str], None] | None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """PSIS-LOO ``res`` with every patient of Pareto k > 0.7 scored by an exact refit instead.

    Returns the (possibly amended) ``ELPDData`` and what was done: ``method``, ``refitted``
    (patient ids), ``refits_passed``.
    """
    from bayesct.checks.refit import exact_patient_loo

    k = np.asarray(res.pareto_k.values, dtype=float).ravel()
    bad = [int(i) for i in np.flatnonzero(k > PARETO_K_BAD)]
    info: dict[str, Any] = {"method": "psis", "refitted": [], "refits_passed": True}
    if not refit or not bad:
        return res, info
    exact = exact_patient_loo(
        fit,
        bad,
        parts=parts,
        max_draws=max_draws,
        seed=seed,
        refit=refit if callable(refit) else None,
        progress=progress,
        scheduler=scheduler,
        workers=workers,
    )
    elpd_i = np.asarray(res.elpd_i.values, dtype=float).ravel().copy()
    elpd_i[bad] = exact.elpd_i
    lppd_i = _logmeanexp_cols(np.asarray(loglik, dtype=float))
    n = elpd_i.size
    new = dataclasses.replace(
        res,
        elpd=float(elpd_i.sum()),
        se=float(np.sqrt(n * np.var(elpd_i))),
        p=float((lppd_i - elpd_i).sum()),
        elpd_i=res.elpd_i.copy(data=elpd_i.reshape(res.elpd_i.shape)),
    )
    ids = [str(fit.design.patient_ids[i]) for i in bad]
    info = {"method": "psis+refit", "refitted": ids, "refits_passed": exact.all_passed}
    return new, info


#: What each method of :func:`patient_loo` and :func:`compare_models` means.
LOO_METHODS = {
    "psis": "PSIS-LOO over the model parameters for every patient",
    "psis+refit": "PSIS-LOO, and an exact refit without the patient for each patient of Pareto k > 0.7",
}


def patient_loo(
    fit: FitResult,
    *,
    parts: tuple[str, ...] | None = None,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
    model: PosteriorModel | None = None,
    refit: bool | Refitter = False,
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Patient-level PSIS-LOO of one fit on ``parts`` (default: all it models).

    Each patient's log-likelihood has their random effects integrated out
    (:func:`integrated_patient_loglik`), so PSIS leaves out θ alone; specs with outcome-group
    curves (``by_group``) fall back to the likelihood conditional on the patient's own effects,
    and say so in ``conditioning``. With ``refit``, each patient whose Pareto k exceeds 0.7 is
    scored exactly instead, by a refit without them (:mod:`bayesct.checks.refit`; a callable
    ``refit(fit, cohort) -> FitResult`` replaces the default refit, which runs on the dask
    engine: ``scheduler`` / ``workers`` as :func:`bayesct.checks.refit.exact_patient_loo`).

    Returns
    -------
    dict
        ``elpd, se, p_loo, n_patients, n_bad_k, max_pareto_k, parts, draws, conditioning,
        method, refitted, refits_passed`` (``n_bad_k`` and ``max_pareto_k`` are PSIS's, before
        any refit).
    """
    _require_joint(fit, "patient-level PSIS-LOO")
    pm = model or PosteriorModel.from_fit(fit, max_draws=max_draws, seed=seed)
    use = parts or model_parts(fit)
    integrated = not fit.spec.by_group
    loglik = _patient_loglik(pm, use, integrated, seed)
    res = psis_loo(loglik)
    k = np.asarray(res.pareto_k.values, dtype=float).ravel()
    if refit and not integrated:
        raise CheckError(
            f"exact refits need the integrated patient likelihood, which '{fit.spec.name}' lacks"
        )
    res, info = _with_refits(
        res,
        loglik,
        fit,
        tuple(use),
        refit=refit,
        max_draws=max_draws,
        seed=seed,
        progress=progress,
        scheduler=scheduler,
        workers=workers,
    )
    return info | {
        "elpd": float(res.elpd),
        "se": float(res.se),
        "p_loo": float(res.p),
        "n_patients": int(k.size),
        "n_bad_k": int((k > PARETO_K_BAD).sum()),
        "max_pareto_k": float(k.max()),
        "parts": list(use),
        "draws": int(pm.n_draws),
        "conditioning": CONDITIONING["integrated" if integrated else "conditional"],
    }


def _scan_logistic_loo_risk(fit: FitResult, *, max_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave-patient-out death predictions of a ``scan_logistic`` fit, and the Pareto k.

    The fit's pseudo-posterior is the prior times ``exp(sum_i l_i)`` with ``l_i`` patient i's
    weighted per-scan term (:func:`bayesct.modeling.design.scan_weights`), so leaving the
    patient out divides by ``exp(l_i)``: PSIS on ``l_i``. The patient's prediction is the mean
    of their scans' predicted probabilities.
    """
    from bayesct.modeling.design import scan_weights
    from bayesct.risk import _ScanLogistic

    d = fit.design
    sl = _ScanLogistic.from_fit(fit, max_draws, seed)
    scan_patient = d.ct.patient.astype(np.int64)
    p = np.clip(sl.risk(d.ct.value.astype(float), d.ct.day.astype(float)), 1e-12, 1 - 1e-12)
    term = scan_weights(scan_patient) * death_loglik(d.died[scan_patient], p)  # 0: unknown outcome
    n = d.n_patients
    ll = np.zeros((p.shape[0], n))
    np.add.at(ll.T, scan_patient, term.T)
    # a patient of unknown outcome has no term: leaving them out changes nothing (weights uniform)
    known = d.known_patients
    w, k = np.full(ll.shape, 1.0 / ll.shape[0]), np.zeros(n)
    w[:, known], k[known] = psis_weights(ll[:, known])
    per_scan = (w[:, scan_patient] * p).sum(axis=0)
    counts = np.bincount(scan_patient, minlength=n)
    risk = np.bincount(scan_patient, weights=per_scan, minlength=n) / np.maximum(counts, 1)
    return np.clip(risk, 1e-12, 1 - 1e-12), k


#: What each model's death prediction in :func:`compare_death_predictions` is.
DEATH_PREDICTION = {
    "joint": "P(death | the scans and labs the model holds, and covariates), the patient's effects integrated out, θ left out by PSIS",
    "scan_logistic": "the mean over the patient's scans of P(death | CT score, day), θ left out by PSIS",
}


def compare_death_predictions(
    fits: dict[str, FitResult],
    *,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Leave-patient-out death predictions of every fit with a mortality part, scored alike.

    Unlike :func:`compare_models` this ranks the ``scan_logistic`` family too: every model's
    prediction for a patient leaves that patient's outcome out (:data:`DEATH_PREDICTION` says
    what each family predicts from). The scores are over the patients of known outcome.

    Returns
    -------
    pandas.DataFrame
        Per model (best Brier first): ``model, family, brier, brier_se, log_score, auc,
        expected_deaths, observed_deaths, calibration_slope, n_bad_k, max_pareto_k, predicts,
        brier_diff, brier_diff_se`` (the difference from the best model's Brier score and the
        SE of that paired difference over patients).
    """
    shas = {n: data_fingerprint(f.cohort)["sha256"] for n, f in fits.items()}
    if len(set(shas.values())) > 1:
        raise CheckError(
            "the fits to compare were fitted to different data: "
            + ", ".join(f"{n}={s[:8]}" for n, s in shas.items())
        )
    rows = []
    risks: dict[str, np.ndarray] = {}
    outcome = np.zeros(0)
    for name, f in fits.items():
        if not f.spec.mortality:
            continue
        known = f.design.known_patients  # scored over the patients of known outcome
        died = f.design.died[known]
        if f.spec.family == "scan_logistic":
            risk, k = _scan_logistic_loo_risk(f, max_draws=max_draws, seed=seed)
        elif f.spec.by_group:
            continue  # its curves condition on the outcome: no honest death prediction
        else:
            cal = mortality_calibration(f, max_draws=max_draws, seed=seed)
            risk = cal.patients["predicted_loo"].to_numpy(float)
            k = cal.patients["pareto_k"].to_numpy(float)
        risk, k = risk[known], k[known]
        risks[name], outcome = risk, died
        rows.append(
            {
                "model": name,
                "family": f.spec.family,
                "brier": float(np.mean((risk - died) ** 2)),
                "brier_se": float(np.std((risk - died) ** 2, ddof=1) / np.sqrt(died.size)),
                "log_score": float(np.mean(death_loglik(died, risk))),
                "auc": _auc(risk, died),
                "expected_deaths": float(risk.sum()),
                "observed_deaths": int(died.sum()),
                "calibration_slope": _calibration_slope(risk, died),
                "n_bad_k": int((k > PARETO_K_BAD).sum()),
                "max_pareto_k": float(np.max(k)),
                "predicts": DEATH_PREDICTION[
                    "scan_logistic" if f.spec.family == "scan_logistic" else "joint"
                ],
            }
        )
    if len(rows) < 2:
        raise CheckError("a comparison of death predictions needs at least two fits with a mortality part")
    table = pd.DataFrame(rows).sort_values("brier", kind="stable").reset_index(drop=True)
    # the difference from the best model's Brier score, with the SE of the paired difference
    sq = {str(r["model"]): (risks[str(r["model"])] - outcome) ** 2 for r in rows}
    best = sq[str(table["model"].iloc[0])]
    table["brier_diff"] = [float(np.mean(sq[str(m)] - best)) for m in table["model"]]
    table["brier_diff_se"] = [
        float(np.std(sq[str(m)] - best, ddof=1) / np.sqrt(best.size)) for m in table["model"]
    ]
    return table


def _calibration_slope(risk: np.ndarray, died: np.ndarray) -> float:
    """Slope of the logistic regression of the outcome on logit(risk) (1 = well calibrated)."""
    x = np.log(risk) - np.log1p(-risk)
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(50):
        mu = 1.0 / (1.0 + np.exp(-(X @ beta)))
        H = X.T @ (X * (mu * (1 - mu))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, X.T @ (died - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[1]) if np.all(np.isfinite(beta)) else float("nan")


def shared_parts(fits: dict[str, FitResult]) -> tuple[str, ...]:
    """The data every fit in ``fits`` models (CT always; labs if all model the same labs; death if all
    have a mortality submodel)."""
    parts = ["ct"]
    lab_sets = {tuple(f.design.lab_names) for f in fits.values()}
    if len(lab_sets) == 1 and next(iter(lab_sets)):
        parts.append("labs")
    if all(f.spec.mortality for f in fits.values()):
        parts.append("death")
    return tuple(parts)


def compare_models(
    fits: dict[str, FitResult],
    *,
    parts: tuple[str, ...] | None = None,
    max_draws: int = DEFAULT_CHECK_DRAWS,
    seed: int = 0,
    refit: bool | Refitter = False,
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Patient-level PSIS-LOO comparison of model variants fitted to the same data (``az.compare``).

    The variants are compared on the data they all model (:func:`shared_parts`): e.g. ``joint``
    against ``ct_only`` on CT + death, against ``descriptive`` (no mortality) on CT + labs, all three
    on the CT scores alone. The ``scan_logistic`` family models no CT score and its death term is a
    weighted pseudo-likelihood: a patient's death log-likelihood is the weighted sum
    ``sum_j log Bernoulli(died_i | p_ij) / n_i`` over the patient's ``n_i`` scans, the log of a
    geometric mean of per-scan probabilities, which sums to less than one over the two outcomes
    (unless the patient's scans agree) and so is no predictive density for PSIS-LOO to score.
    Such fits are left out and named in ``frame.attrs["excluded"]``.

    Parameters
    ----------
    fits
        Name -> fit; every fit must hold the same data (same fingerprint).
    parts
        The data to compare on; default :func:`shared_parts`. Asking for a part some variant does
        not model is an error.
    max_draws, seed
        Posterior draws used per fit.
    refit, progress
        With ``refit``, every patient of Pareto k > 0.7 in a model is scored by an exact refit of
        that model without them (:func:`patient_loo`); ``progress`` is called for each refit.
    scheduler, workers
        Where the refits run (:func:`bayesct.engine.run_tasks`): a running dask scheduler's
        address, or the number of local worker processes (default one per core; 1: in this process).

    Returns
    -------
    pandas.DataFrame
        arviz's comparison (``rank, elpd_diff, dse, elpd, se, p, weight, ...``) with a ``model``
        column, ``data`` (the parts compared), ``n_bad_k`` and ``max_pareto_k`` per model (PSIS's,
        before any refit), ``method`` (:data:`LOO_METHODS`) and ``refitted`` (the patients
        refitted, comma-separated).

    Examples
    --------
    >>> import bayesct as bc
    >>> cohort = bc.load_default_cohort()
    >>> fits = {name: bc.JointModel(name).fit(cohort) for name in ("joint", "ct_only")}  # doctest: +SKIP
    >>> bc.compare(fits, parts=("ct", "death"))  # doctest: +SKIP
    """
    if not fits:
        raise CheckError("no fits to compare")
    excluded = {n: f.spec.family for n, f in fits.items() if f.spec.family != "joint"}
    usable = {n: f for n, f in fits.items() if n not in excluded}
    if len(usable) < 2:
        raise CheckError(
            "a PSIS-LOO comparison needs at least two joint-family fits (joint, ct_only, descriptive)"
            + (f"; left out: {', '.join(f'{n} ({fam})' for n, fam in excluded.items())}" if excluded else "")
        )
    shas = {n: data_fingerprint(f.cohort)["sha256"] for n, f in usable.items()}
    if len(set(shas.values())) > 1:
        raise CheckError(
            "the fits to compare were fitted to different data: "
            + ", ".join(f"{n}={s[:8]}" for n, s in shas.items())
        )
    common = shared_parts(usable)
    if parts is None:
        parts = common
    elif set(parts) - set(common):
        raise CheckError(
            f"not every variant models {', '.join(sorted(set(parts) - set(common)))}; "
            f"they share only: {', '.join(common)}"
        )
    elpds: dict[str, Any] = {}
    ks: dict[str, np.ndarray] = {}
    infos: dict[str, dict[str, Any]] = {}
    # every variant on the same conditioning: integrated unless one cannot be
    integrated = not any(f.spec.by_group for f in usable.values())
    if refit and not integrated:
        raise CheckError("exact refits need the integrated patient likelihood of every variant")
    for name, f in usable.items():
        pm = PosteriorModel.from_fit(f, max_draws=max_draws, seed=seed)
        loglik = _patient_loglik(pm, tuple(parts), integrated, seed)
        res = psis_loo(loglik)
        ks[name] = np.asarray(res.pareto_k.values, dtype=float).ravel()
        elpds[name], infos[name] = _with_refits(
            res,
            loglik,
            f,
            tuple(parts),
            refit=refit,
            max_draws=max_draws,
            seed=seed,
            progress=progress,
            scheduler=scheduler,
            workers=workers,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(elpds, round_to=None)
    table = table.reset_index(names="model")
    # arviz rounds the estimates for display (even with round_to=None); restate them unrounded
    best = str(table["model"].iloc[0])
    best_i = np.asarray(elpds[best].elpd_i.values, dtype=float).ravel()
    for col, fn in (
        ("elpd", lambda r, m: float(r.elpd)),
        ("se", lambda r, m: float(r.se)),
        ("p", lambda r, m: float(r.p)),
        ("elpd_diff", lambda r, m: float(r.elpd) - float(elpds[best].elpd)),
        (
            "dse",
            lambda r, m: float(
                np.sqrt(best_i.size * np.var(best_i - np.asarray(r.elpd_i.values, dtype=float).ravel()))
            ),
        ),
    ):
        table[col] = [fn(elpds[str(m)], m) for m in table["model"]]
    table["data"] = "+".join(parts)
    table["n_bad_k"] = [int((ks[m] > PARETO_K_BAD).sum()) for m in table["model"]]
    table["max_pareto_k"] = [float(ks[m].max()) for m in table["model"]]
    table["method"] = [infos[str(m)]["method"] for m in table["model"]]
    table["refitted"] = [",".join(infos[str(m)]["refitted"]) for m in table["model"]]
    table["refits_passed"] = [bool(infos[str(m)]["refits_passed"]) for m in table["model"]]
    table.attrs["excluded"] = excluded
    table.attrs["parts"] = list(parts)
    table.attrs["conditioning"] = CONDITIONING["integrated" if integrated else "conditional"]
    return table
