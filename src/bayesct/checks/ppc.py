"""Posterior predictive checks that replicate the paper's frequentist tables (``bayesct check``).

Replication
    :func:`replicate` draws cohorts from a joint-family fit on the observed design: the same
    patients, the same visit days, the same missingness (a replicated value exists exactly where
    the observed one does), CT scores as integers 0-24 and labs on their natural scale. One
    posterior draw per replicate (without replacement while the fit has enough draws). Two levels:

    ``patients``
        The cohort's patients keep their posterior random effects (from the replicate's draw);
        lab-specific intercepts, integrated out of the fit, come from their exact conditional
        posterior; ``died`` is the observed outcome. Markers are replicated.
    ``new``
        Fresh random effects (and lab-specific intercepts) from the draw's population
        distribution for patients with the cohort's covariates; ``died`` is replicated from the
        mortality submodel given the fresh effects (a spec without mortality keeps the observed
        outcome, and says so). Markers are replicated.

    A patient of unknown outcome (blank ``died``) keeps a blank ``died`` in every replicate at
    either level, so the outcome contrasts leave out the same patients in the replicates as in
    the observed cohort.

    All replicates' markers are drawn in one vectorised numpy pass through
    :class:`~bayesct.modeling.posterior.PosteriorModel`. Markers the model does not include
    (e.g. the labs under ``ct_only``) keep their observed values.

Levels of the check
    The statistics that contrast survivors with non-survivors (:data:`OUTCOME_STATISTICS`: the
    per-period Mann-Whitney test and effect size, the per-scan logistic regression, the mixed
    model's group x period test, the number of deaths) are computed on replicates at
    ``outcome_level``, by default ``new``: at ``patients`` the patients' effects were fitted
    given the observed deaths and the outcome is held at the observed one, so the contrast is
    reproduced largely by construction. The other statistics (Kendall's tau) are computed on
    replicates at ``level`` (default ``patients``). When the two differ, both replicate sets are
    drawn with the same seed, so replicate ``r`` of each uses the same posterior draw; every
    statistic and finding carries the level it was computed at.

Statistics
    On every replicate the *same* :mod:`bayesct.classical` code runs as on the observed data
    (:func:`table_statistics`): the per-period Mann-Whitney test of the CT score by outcome
    (p-value, and the common-language effect size ``1 - U_survivors / (n_s n_d)`` = P(a
    non-survivor's scan scores higher), ties half), Kendall's tau-b of the CT score with each lab,
    the per-scan logistic coefficients ``died ~ ct_score + day`` and the linear mixed model's
    group x period Wald test per modelled marker (on the first ``mixed_replicates`` replicates
    only, default :data:`DEFAULT_MIXED_REPLICATES`: it takes ~0.1 s per marker). The paper's
    qualitative findings are judged on each replicate by :func:`bayesct.classical.findings`
    itself.

Summaries (:func:`summarise_statistics`, :func:`summarise_findings`)
    Per statistic: the observed value, the replicated median and central ``ci_prob`` interval,
    ``ppp = P(T_rep >= T_obs)`` (upper-tail posterior predictive p-value; ``ppp_two_sided =
    min(1, 2 min(P(T_rep >= T_obs), P(T_rep <= T_obs)))``), ``n_valid`` (replicates where the
    statistic is defined: a period without non-survivor scans, a separated logistic fit, ... give
    NaN and are excluded) out of ``n_replicates`` (those it was computed on).

    Monte Carlo error: a ppp is a proportion of ``R = n_valid`` replicates, ``x / R``. Its
    Monte Carlo standard error (``ppp_mcse``, :func:`ppp_mcse`) is the binomial one,
    ``sqrt(p (1 - p) / R)``, at the Jeffreys estimate ``p = (x + 1/2) / (R + 1)``, so that
    ``x = 0`` or ``x = R`` does not give 0; its Monte Carlo interval (``ppp_mc_lo``,
    ``ppp_mc_hi``, :func:`ppp_interval`) is the central ``mc_prob`` (default 95%) Jeffreys
    interval, the quantiles of Beta(x + 1/2, R - x + 1/2). ``ppp_two_sided_mcse`` is twice the
    standard error of the smaller tail and ``ppp_two_sided_mc_hi`` is ``min(1, 2 u)``, ``u`` the
    upper end of the smaller tail's interval.

    Flags: ``beyond_interval`` is the point estimate's verdict (the observed value outside the
    replicates' central ``ci_prob`` interval). ``outside`` is the flag the check reports: the
    observed value lies beyond the interval *clear of Monte Carlo error*, i.e. even the upper
    end of the smaller tail's Monte Carlo interval is below ``(1 - ci_prob) / 2``
    (``ppp_two_sided_mc_hi < 1 - ci_prob``; :func:`clearly_outside`). With the defaults, 0 of
    20 replicates is not enough (upper end 0.117), 0 of 100 is (0.0247), and at 200 replicates
    a tail of at most 1 is. A statistic beyond its interval but within Monte Carlo error is
    listed apart: more replicates would settle it. Per finding: whether the observed data show
    it and the share of valid replicates that reproduce it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr
from scipy.stats import beta as beta_dist

from bayesct.checks.calibration import (
    CheckError,
    MortalityCalibration,
    compare_models,
    landmark_accuracy,
    landmark_lines,
    mortality_calibration,
    patient_loo,
    pit_summary,
    predictive_pit,
    shared_parts,
)
from bayesct.classical import (
    LOGISTIC_TERMS,
    PAPER_TAU,
    fit_logistic,
    kendall,
    kendall_taus,
    mixed_model,
    mortality_logistic,
    period_comparison,
    period_tests,
    scan_arrays,
)
from bayesct.classical import findings as classical_findings
from bayesct.classical._common import ALPHA
from bayesct.constants import CI_PROB, CT, DIED, PERIOD_LABELS
from bayesct.data.cohort import Cohort
from bayesct.modeling.design import from_model_scale
from bayesct.modeling.fit import FitResult
from bayesct.modeling.posterior import PosteriorModel

Level = Literal["patients", "new"]
LEVELS: tuple[str, ...] = ("patients", "new")

#: Default level of the statistics that do not involve the outcome (Kendall's tau).
DEFAULT_LEVEL: Level = "patients"
#: Default level of the outcome contrasts (:data:`OUTCOME_STATISTICS`): fresh effects and deaths.
DEFAULT_OUTCOME_LEVEL: Level = "new"

#: Replicates on which the (slow) mixed model runs, by default.
DEFAULT_MIXED_REPLICATES = 100

#: Probability of the Monte Carlo (Jeffreys) interval of a ppp that decides ``outside``.
MC_PROB = 0.95

#: Statistic families: name -> (column that indexes it, description).
STATISTICS: dict[str, tuple[str, str]] = {
    "ct_mw_p": ("period", "Mann-Whitney p-value, CT score of survivors vs non-survivors in the period"),
    "ct_auc": (
        "period",
        "P(a non-survivor's scan has the higher CT score) in the period, ties half (1 - U_s / (n_s n_d))",
    ),
    "kendall_tau": ("marker", "Kendall tau-b of the CT score with the lab, all scans"),
    "logistic_coef": ("term", "per-scan logistic regression died ~ ct_score + day, coefficient"),
    "mixed_p": ("marker", "linear mixed model, Wald p-value of the group x period interaction"),
    "n_deaths": ("", "number of deaths (level 'new' only: replicated from the mortality submodel)"),
}

#: The Wald p of each per-scan logistic term: computed with ``logistic_coef`` for the findings'
#: verdicts (:func:`judge_findings`: the day coefficient's significance), not summarised as a ppp.
LOGISTIC_P = "logistic_p"

#: Statistic families that contrast survivors with non-survivors (computed at ``outcome_level``).
OUTCOME_STATISTICS: tuple[str, ...] = ("ct_mw_p", "ct_auc", "logistic_coef", "mixed_p", "n_deaths")

#: Families computed by :func:`table_statistics` on every replicate (the fast ones).
SCAN_STATISTICS: tuple[str, ...] = ("ct_mw_p", "ct_auc", "kendall_tau", "logistic_coef")


class PPCError(CheckError):
    """A posterior predictive check that cannot run on this fit or with these options."""


def _check_fit(fit: FitResult) -> None:
    if fit.spec.family != "joint":
        raise PPCError(
            f"model '{fit.spec.name}' is a per-scan mortality model ({fit.spec.family} family), not a "
            "trajectory model: it does not generate CT scores or labs, so the paper's tables cannot be "
            "replicated from it. Run 'bayesct check' on a joint-family fit (joint, ct_only, descriptive); "
            "use --compare for the PSIS-LOO comparison of variants."
        )


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise PPCError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


# -- replication -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicateSet:
    """Replicated cohorts on the observed design, stored as arrays (one row per replicate).

    Attributes
    ----------
    observed
        The fitted cohort (the design).
    level
        ``patients`` or ``new``.
    draws
        Index of the posterior draw (chain x draw stacked) behind each replicate.
    values
        Marker -> ``(n, n_visits)`` replicated values aligned with ``observed.visits`` (NaN where
        the observed value is missing); ``died`` -> ``(n, n_patients)`` when replicated (NaN for a
        patient of unknown outcome, as observed).
    replicated_markers
        Markers the model replicates (others keep their observed values).
    notes
        What was held fixed and why.
    """

    observed: Cohort
    level: str
    draws: np.ndarray
    values: dict[str, np.ndarray]
    replicated_markers: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.draws.size)

    def cohort(self, r: int) -> Cohort:
        """Replicate ``r`` as a :class:`Cohort` (no re-validation)."""
        return self.observed.with_values(
            {k: v[r] for k, v in self.values.items()},
            source=f"replicate {r} ({self.level}) of {self.observed.source}",
        )

    def __iter__(self) -> Iterator[Cohort]:
        for r in range(len(self)):
            yield self.cohort(r)


def _select_draws(fit: FitResult, n: int, rng: np.random.Generator) -> tuple[PosteriorModel, np.ndarray]:
    full = PosteriorModel.from_fit(fit)
    total = full.n_draws
    idx = np.sort(rng.choice(total, size=n, replace=n > total))
    sub = PosteriorModel(full.spec, full.design, {k: v[idx] for k, v in full.draws.items()}, n)
    return sub, idx


def replicate_set(fit: FitResult, *, n: int = 200, level: str = "patients", seed: int = 0) -> ReplicateSet:
    """Draw ``n`` replicated cohorts (as arrays) from a joint-family fit; see the module docstring."""
    _check_fit(fit)
    _check_level(level)
    if n < 1:
        raise PPCError(f"the number of replicates must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pm, idx = _select_draws(fit, n, rng)
    d = pm.design
    cohort = fit.cohort
    visits = cohort.visits
    n_vis, n_pat = len(visits), d.n_patients
    S = pm.n_draws
    notes: list[str] = []

    died_obs = d.died  # NaN where the outcome is unknown, in every replicate too
    if level == "patients":
        eff = pm.patient_effects()
        specific = pm.specific_posterior(rng, eff)
        died = np.broadcast_to(died_obs, (S, n_pat))
        notes.append(
            "level 'patients': the cohort's patients keep their posterior effects and observed outcome"
        )
    else:
        eff = pm.new_effects(rng, n_pat)
        L = len(d.lab_names)
        if pm.factor and "specific_sd" in pm.draws:
            specific = rng.standard_normal((S, n_pat, L)) * pm.draws["specific_sd"][:, None, :]
        else:
            specific = np.zeros((S, n_pat, L))
        if pm.spec.mortality:
            p = expit(pm.mortality_logit(eff, d.covariates))
            # a patient of unknown outcome stays unknown: the statistics leave out the same patients
            died = np.where(d.outcome_known, rng.random(p.shape) < p, np.nan)
            notes.append("level 'new': fresh effects; died replicated from the mortality submodel")
        else:
            died = np.broadcast_to(died_obs, (S, n_pat))
            notes.append(
                f"level 'new': fresh effects; model '{pm.spec.name}' has no mortality submodel, "
                "so died stays observed"
            )

    def eta_of(k: int, pat: np.ndarray, days: np.ndarray, spec_v: np.ndarray | None) -> np.ndarray:
        e = eff[:, pat, :]
        if not pm.spec.by_group:
            return pm.linear_predictor(k, days, e, specific=spec_v)
        zeros, ones = np.zeros(pat.size, dtype=np.int64), np.ones(pat.size, dtype=np.int64)
        e0 = pm.linear_predictor(k, days, e, specific=spec_v, group=zeros)
        e1 = pm.linear_predictor(k, days, e, specific=spec_v, group=ones)
        return np.where(died[:, pat] == 1, e1, e0)

    values: dict[str, np.ndarray] = {}
    rows = {m: np.flatnonzero(visits[m].notna().to_numpy()) for m in d.markers}
    ct = d.ct
    if rows[CT].size != ct.value.size:  # pragma: no cover - design and cohort always agree
        raise PPCError("the fit's design does not match its cohort (CT scans)")
    out = np.full((S, n_vis), np.nan)
    out[:, rows[CT]] = pm.draw_ct(rng, eta_of(0, ct.patient, ct.day, None))
    values[CT] = out
    labs = d.labs
    for k in range(1, len(d.markers)):
        marker = d.markers[k]
        mask = labs.marker == k
        if rows[marker].size != int(mask.sum()):  # pragma: no cover
            raise PPCError(f"the fit's design does not match its cohort ({marker})")
        pat = labs.patient[mask]
        eta = eta_of(k, pat, labs.day[mask], specific[:, pat, k - 1])
        out = np.full((S, n_vis), np.nan)
        out[:, rows[marker]] = from_model_scale(marker, pm.draw_lab(rng, k - 1, eta), d.declared_labs)
        values[marker] = out
    kept = [m for m in cohort.markers if m not in d.markers]
    if kept:
        notes.append(f"not in model '{pm.spec.name}', observed values kept: {', '.join(kept)}")
    if cohort.n_outcome_unknown:
        notes.append(
            f"{cohort.n_outcome_unknown} patient(s) of unknown outcome: their markers are replicated, "
            "their outcome stays blank in every replicate, so the outcome statistics leave out the "
            "same patients in the replicates as in the observed data"
        )
    if level == "new" and pm.spec.mortality:
        values[DIED] = np.asarray(died)
    return ReplicateSet(cohort, level, idx, values, tuple(d.markers), tuple(notes))


def replicate(fit: FitResult, *, n: int = 200, level: Level = "patients", seed: int = 0) -> Iterator[Cohort]:
    """Replicated cohorts on the fit's design (same patients, visit days and missingness).

    Parameters
    ----------
    fit
        A joint-family fit (``joint``, ``ct_only``, ``descriptive``).
    n
        Number of replicates (one posterior draw each).
    level
        ``"patients"`` (their posterior effects, observed outcome) or ``"new"`` (fresh effects,
        replicated outcome); see the module docstring.
    seed
        Random seed.

    Yields
    ------
    Cohort
        Each replicate; CT scores are integers 0-24, labs on their natural scale.
    """
    yield from replicate_set(fit, n=n, level=level, seed=seed)


# -- statistics on one cohort ----------------------------------------------------------------------------
def stat_key(name: str, index: str = "") -> str:
    """Key of a statistic in the replicate matrix, e.g. ``ct_mw_p[0-5]``."""
    return f"{name}[{index}]" if index else name


def table_statistics(
    cohort: Cohort,
    *,
    mixed_markers: tuple[str, ...] | None = None,
    deaths: bool = False,
    families: Collection[str] = SCAN_STATISTICS,
) -> dict[str, float]:
    """The paper's statistics on one cohort, with the fast cores of :mod:`bayesct.classical`.

    Parameters
    ----------
    cohort
        Observed or replicated cohort; the outcome contrasts leave out the patients of unknown
        outcome (a replicate carries them as the observed cohort does).
    mixed_markers
        Markers for the mixed model's group x period test; ``None`` or empty skips it (slow).
    deaths
        Also report the number of deaths.
    families
        Which of the fast families (:data:`SCAN_STATISTICS`) to compute; default all.

    Returns
    -------
    dict
        Statistic key (:func:`stat_key`) -> value (NaN where undefined).
    """
    sa = scan_arrays(cohort)
    so = sa.known_outcome()  # the outcome contrasts: the patients of known outcome, as the tables
    out: dict[str, float] = {}
    if "ct_mw_p" in families or "ct_auc" in families:
        ustat, pval = period_tests(so.died, so.period_codes, so.ct)
        dead = so.died == 1
        if "ct_mw_p" in families:
            for k, label in enumerate(PERIOD_LABELS):
                out[stat_key("ct_mw_p", label)] = float(pval[k])
        if "ct_auc" in families:
            for k, label in enumerate(PERIOD_LABELS):
                in_k = so.period_codes == k
                n_s, n_d = int((in_k & ~dead).sum()), int((in_k & dead).sum())
                auc = 1.0 - float(ustat[k]) / (n_s * n_d) if n_s and n_d else math.nan
                out[stat_key("ct_auc", label)] = auc
    if "kendall_tau" in families:
        tau = kendall_taus(sa.ct, sa.labs)
        for lab, t in zip(sa.lab_names, tau, strict=True):
            out[stat_key("kendall_tau", lab)] = float(t)
    if "logistic_coef" in families:
        fitted = fit_logistic(so.ct, so.day, so.died)
        coefs = fitted.params
        with np.errstate(invalid="ignore", divide="ignore"):
            pvals = 2.0 * ndtr(-np.abs(coefs / np.sqrt(np.diag(fitted.cov))))  # Wald, as Table 3's
        for term, c, pv in zip(LOGISTIC_TERMS, coefs, pvals, strict=True):
            out[stat_key("logistic_coef", term)] = float(c)
            out[stat_key(LOGISTIC_P, term)] = float(pv)
    if mixed_markers:
        out.update(mixed_statistics(cohort, mixed_markers))
    if deaths:
        out["n_deaths"] = float(cohort.n_deaths)
    return out


def mixed_statistics(cohort: Cohort, markers: tuple[str, ...]) -> dict[str, float]:
    """Group x period Wald p-value of :func:`bayesct.classical.mixed_model` per marker."""
    mm = mixed_model(cohort, markers=list(markers))
    inter = mm.loc[mm["term"] == "group:period"]
    return {
        stat_key("mixed_p", str(m)): float(p) for m, p in zip(inter["marker"], inter["p_value"], strict=True)
    }


def _mixed_chunk(task: tuple[list[Cohort], tuple[str, ...]]) -> list[dict[str, float]]:
    cohorts, markers = task
    return [mixed_statistics(c, markers) for c in cohorts]


def parallel_mixed_statistics(
    cohorts: Sequence[Cohort], markers: tuple[str, ...], *, workers: int | None = None
) -> dict[int, dict[str, float]]:
    """:func:`mixed_statistics` of each cohort, on the dask engine (:func:`bayesct.engine.run_tasks`,
    ``workers`` local processes, default one per core), in a few chunks per worker; index -> statistics.

    A chunk that fails raises :class:`PPCError` (the mixed models catch their own fitting errors)."""
    from bayesct.engine import chunks as split
    from bayesct.engine import run_tasks

    n_workers = max(1, workers or os.cpu_count() or 1)
    chunks = split(len(cohorts), 4 * n_workers)
    tasks = [([cohorts[i] for i in idx], markers) for idx in chunks]
    out: dict[int, dict[str, float]] = {}
    for j, result in run_tasks(_mixed_chunk, tasks, workers=n_workers, name="bayesct-ppc-mixed"):
        if isinstance(result, BaseException):
            raise PPCError(f"the mixed models of replicates {chunks[j][0]}-{chunks[j][-1]} failed: {result}")
        out |= dict(zip(chunks[j], result, strict=True))
    return out


def judge_findings(values: pd.DataFrame) -> pd.DataFrame:
    """The paper's findings judged on many cohorts at once, from their statistics.

    The verdicts are those of :func:`bayesct.classical.findings` (same ids, same order, same rules
    and constants: ``ALPHA`` for the period tests, the sign of :data:`bayesct.classical.PAPER_TAU`,
    the signs of the logistic coefficients, the day's also at p < ``ALPHA``: the paper's finding was a
    significant test), vectorised over replicates; the tests check that they
    agree with :func:`bayesct.classical.findings` on replicated cohorts.

    Parameters
    ----------
    values
        One row per cohort, columns statistic keys (:func:`table_statistics`).

    Returns
    -------
    pandas.DataFrame
        One row per cohort, one column per finding id: 1.0 shown, 0.0 not shown, NaN cannot be
        assessed.
    """

    def col(key: str) -> np.ndarray:
        if key in values:
            return values[key].to_numpy(dtype=float)
        return np.full(len(values), np.nan)

    def verdict(ok: np.ndarray, defined: np.ndarray) -> np.ndarray:
        return np.where(defined, ok.astype(float), np.nan)

    out: dict[str, np.ndarray] = {}
    for j, label in enumerate(PERIOD_LABELS):
        p = col(stat_key("ct_mw_p", label))
        with np.errstate(invalid="ignore"):
            if j == 0:
                out[f"period_{label}_no_difference"] = verdict(p >= ALPHA, ~np.isnan(p))
            else:
                out[f"period_{label}_difference"] = verdict(p < ALPHA, ~np.isnan(p))
    for lab, paper_tau in PAPER_TAU.items():
        t = col(stat_key("kendall_tau", lab))
        out[f"tau_sign_{lab}"] = verdict(np.sign(t) == np.sign(paper_tau), ~np.isnan(t))
    c = col(stat_key("logistic_coef", "ct_score"))
    out["ct_coef_positive"] = verdict(np.sign(c) == 1.0, ~np.isnan(c))
    d = col(stat_key("logistic_coef", "day"))
    d_p = col(stat_key(LOGISTIC_P, "day"))
    with np.errstate(invalid="ignore"):
        # The paper's significant test: the sign, at p < ALPHA; NaN where the sign is right but
        # the p is unknown.
        right = np.sign(d) == -1.0
        out["day_coef_negative"] = verdict(right & (d_p < ALPHA), ~np.isnan(d) & ~(right & np.isnan(d_p)))
    return pd.DataFrame(out, index=values.index)


# -- summaries ------------------------------------------------------------------------------------------
def _split_key(key: str) -> tuple[str, str]:
    if "[" in key and key.endswith("]"):
        name, index = key[:-1].split("[", 1)
        return name, index
    return key, ""


def ppp_mcse(count: int, n: int) -> float:
    """Monte Carlo standard error of a ppp estimated as ``count / n`` from ``n`` replicates.

    The binomial standard error ``sqrt(p (1 - p) / n)`` at the Jeffreys estimate ``p = (count +
    1/2) / (n + 1)`` (the mean of Beta(count + 1/2, n - count + 1/2)), so that a count of 0 or
    ``n`` does not give 0: 0 of 20 gives 0.034, 0 of 200 gives 0.0035. NaN when ``n`` is 0.
    """
    if n <= 0:
        return math.nan
    p = (count + 0.5) / (n + 1.0)
    return math.sqrt(p * (1.0 - p) / n)


def ppp_interval(count: int, n: int, prob: float = MC_PROB) -> tuple[float, float]:
    """Monte Carlo interval of a ppp ``count / n``: the Jeffreys interval.

    The central ``prob`` interval of Beta(count + 1/2, n - count + 1/2), with the lower end 0
    when ``count`` is 0 and the upper end 1 when ``count`` is ``n`` (Brown, Cai and DasGupta
    2001, "Interval estimation for a binomial proportion"). ``(nan, nan)`` when ``n`` is 0.
    """
    if n <= 0:
        return math.nan, math.nan
    a, b = count + 0.5, n - count + 0.5
    lo = 0.0 if count <= 0 else float(beta_dist.ppf((1.0 - prob) / 2.0, a, b))
    hi = 1.0 if count >= n else float(beta_dist.ppf(1.0 - (1.0 - prob) / 2.0, a, b))
    return lo, hi


def clearly_outside(
    upper_count: int, lower_count: int, n: int, *, ci_prob: float = CI_PROB, mc_prob: float = MC_PROB
) -> bool:
    """Whether an observed statistic lies beyond the replicates' central interval, clear of MC error.

    Parameters
    ----------
    upper_count, lower_count
        Valid replicates with ``T_rep >= T_obs`` and with ``T_rep <= T_obs``.
    n
        Valid replicates.
    ci_prob
        Probability of the central interval (each tail ``(1 - ci_prob) / 2``).
    mc_prob
        Probability of the Monte Carlo interval (:func:`ppp_interval`).

    Returns
    -------
    bool
        True when the upper end of the smaller tail's Monte Carlo interval is below
        ``(1 - ci_prob) / 2`` (equivalently: the two-sided ppp is below ``1 - ci_prob`` even at
        the upper end of its Monte Carlo interval). With the defaults: 0 of 20 is not (0.117),
        0 of 100 is (0.0247), 1 of 200 is (0.0231), 2 of 200 is not (0.0317).
    """
    if n <= 0:
        return False
    _, hi = ppp_interval(min(upper_count, lower_count), n, mc_prob)
    return hi < (1.0 - ci_prob) / 2.0


def summarise_statistics(
    observed: pd.Series,
    replicated: pd.DataFrame,
    *,
    ci_prob: float = CI_PROB,
    mc_prob: float = MC_PROB,
    n_computed: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Observed value against the replicated distribution, per statistic.

    Parameters
    ----------
    observed
        Statistic key -> observed value.
    replicated
        One column per statistic key, one row per replicate (NaN: undefined or not computed).
    ci_prob
        Probability of the central interval (default 0.95).
    mc_prob
        Probability of the Monte Carlo interval of each ppp (default :data:`MC_PROB`).
    n_computed
        Statistic key -> replicates it was computed on, where fewer than all rows (the mixed
        model's); reported as ``n_replicates``.

    Returns
    -------
    pandas.DataFrame
        One row per statistic: ``key, name, period, marker, term, observed, rep_median, rep_lo,
        rep_hi, ppp`` (P(T_rep >= T_obs)), ``ppp_mcse, ppp_mc_lo, ppp_mc_hi`` (its Monte Carlo
        standard error and interval), ``ppp_two_sided, ppp_two_sided_mcse, ppp_two_sided_mc_hi``,
        ``n_valid`` (replicates the ppp is estimated from), ``n_replicates`` (replicates the
        statistic was computed on), ``beyond_interval`` (observed outside [rep_lo, rep_hi], the
        point estimate's verdict), ``outside`` (beyond it clear of Monte Carlo error:
        :func:`clearly_outside`; NA when it cannot be judged) and ``description``. See the
        module docstring.
    """
    lo_q, hi_q = (1 - ci_prob) / 2, 1 - (1 - ci_prob) / 2
    n_computed = dict(n_computed or {})
    rows = []
    for key in observed.index:
        name, index = _split_key(str(key))
        column, description = STATISTICS.get(name, ("", ""))
        col = replicated[key].to_numpy(dtype=float) if key in replicated else np.array([])
        valid = col[~np.isnan(col)]
        obs = float(observed[key])
        n_valid = int(valid.size)
        if n_valid:
            med, lo, hi = (float(v) for v in np.quantile(valid, [0.5, lo_q, hi_q]))
        else:
            med = lo = hi = math.nan
        nan = math.nan
        mc = {
            "ppp": nan,
            "ppp_mcse": nan,
            "ppp_mc_lo": nan,
            "ppp_mc_hi": nan,
            "ppp_two_sided": nan,
            "ppp_two_sided_mcse": nan,
            "ppp_two_sided_mc_hi": nan,
        }
        beyond: object = pd.NA
        outside: object = pd.NA
        if n_valid and math.isfinite(obs):
            n_up, n_low = int(np.sum(valid >= obs)), int(np.sum(valid <= obs))
            n_tail = min(n_up, n_low)
            upper, lower = n_up / n_valid, n_low / n_valid
            ppp_lo, ppp_hi = ppp_interval(n_up, n_valid, mc_prob)
            mc = {
                "ppp": upper,
                "ppp_mcse": ppp_mcse(n_up, n_valid),
                "ppp_mc_lo": ppp_lo,
                "ppp_mc_hi": ppp_hi,
                "ppp_two_sided": min(1.0, 2.0 * min(upper, lower)),
                "ppp_two_sided_mcse": 2.0 * ppp_mcse(n_tail, n_valid),
                "ppp_two_sided_mc_hi": min(1.0, 2.0 * ppp_interval(n_tail, n_valid, mc_prob)[1]),
            }
            beyond = bool(obs < lo or obs > hi)
            outside = clearly_outside(n_up, n_low, n_valid, ci_prob=ci_prob, mc_prob=mc_prob)
        rows.append(
            {
                "key": str(key),
                "name": name,
                "period": index if column == "period" else "",
                "marker": index if column == "marker" else "",
                "term": index if column == "term" else "",
                "observed": obs,
                "rep_median": med,
                "rep_lo": lo,
                "rep_hi": hi,
                **mc,
                "n_valid": n_valid,
                "n_replicates": int(n_computed.get(str(key), len(replicated))),
                "beyond_interval": beyond,
                "outside": outside,
                "description": description,
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["beyond_interval"] = out["beyond_interval"].astype("boolean")
        out["outside"] = out["outside"].astype("boolean")
    out.attrs["ci_prob"] = ci_prob
    out.attrs["mc_prob"] = mc_prob
    return out


def summarise_findings(observed: pd.DataFrame, replicated: pd.DataFrame) -> pd.DataFrame:
    """Share of replicates reproducing each of the paper's findings.

    Parameters
    ----------
    observed
        :func:`bayesct.classical.findings` of the observed cohort (``finding, paper, observed,
        reproduced, sentence``).
    replicated
        One column per finding id, one row per replicate: 1 reproduced, 0 not, NaN cannot be
        assessed (excluded).

    Returns
    -------
    pandas.DataFrame
        ``finding, paper, observed_value, observed_reproduced, reproduced_share, share_mcse,
        share_mc_lo, share_mc_hi, n_valid, sentence``: the share's Monte Carlo error as a ppp's
        (:func:`ppp_mcse`, the Jeffreys interval :func:`ppp_interval`), as the replicates are a
        finite sample of the posterior predictive distribution.
    """
    rows = []
    for _, f in observed.iterrows():
        fid = str(f["finding"])
        col = replicated[fid].to_numpy(dtype=float) if fid in replicated else np.array([])
        valid = col[~np.isnan(col)]
        share = float(valid.mean()) if valid.size else math.nan
        count = int(valid.sum())
        mc_lo, mc_hi = ppp_interval(count, int(valid.size))
        mcse = ppp_mcse(count, int(valid.size))
        obs_rep = f["reproduced"]
        obs_text = "cannot be assessed" if pd.isna(obs_rep) else ("yes" if bool(obs_rep) else "no")
        share_text = (
            "no valid replicate"
            if not valid.size
            else f"{100 * share:.0f}% (Monte Carlo SE {100 * mcse:.0f}%) of {valid.size} replicates"
        )
        rows.append(
            {
                "finding": fid,
                "paper": f["paper"],
                "observed_value": float(f["observed"]),
                "observed_reproduced": pd.NA if pd.isna(obs_rep) else bool(obs_rep),
                "reproduced_share": share,
                "share_mcse": mcse,
                "share_mc_lo": mc_lo,
                "share_mc_hi": mc_hi,
                "n_valid": int(valid.size),
                "sentence": f"{f['paper']}: observed data {obs_text}; reproduced in {share_text}.",
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["observed_reproduced"] = out["observed_reproduced"].astype("boolean")
    return out


# -- the check ------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON-safe: NaN / NA -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    if frame is None:
        return None
    return [_clean(r) for r in frame.to_dict(orient="records")]


@dataclass
class PPCResult:
    """Everything ``bayesct check`` reports.

    Attributes
    ----------
    statistics
        :func:`summarise_statistics` of every statistic.
    findings
        :func:`summarise_findings` of the paper's findings.
    replicated
        The replicate matrix (one row per replicate, one column per statistic key).
    replicated_findings
        One row per replicate, one column per finding (1/0/NaN).
    pit, pit_summary
        Per-observation PIT / LOO-PIT and its per-marker summary (``None`` when skipped).
    calibration
        Mortality calibration (``None`` without a mortality submodel or when skipped).
    landmarks
        Dynamic prediction: leave-patient-out death risk from the data up to each landmark day,
        Brier and AUC per landmark (:func:`~bayesct.checks.calibration.landmark_accuracy`).
    loo
        Patient-level PSIS-LOO of the fit (``None`` when skipped).
    comparison
        PSIS-LOO comparison with other variants (``None`` when none given).
    meta
        Level, replicates, seed, conventions, notes, timings.
    converged
        Whether the fit passed its convergence gates.
    """

    statistics: pd.DataFrame
    findings: pd.DataFrame
    replicated: pd.DataFrame
    replicated_findings: pd.DataFrame
    pit: pd.DataFrame | None = None
    pit_summary: pd.DataFrame | None = None
    calibration: MortalityCalibration | None = None
    landmarks: pd.DataFrame | None = None
    loo: dict[str, Any] | None = None
    comparison: pd.DataFrame | None = None
    comparisons: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    converged: bool = True

    @property
    def ci_prob(self) -> float:
        return float(self.meta.get("ci_prob", CI_PROB))

    @property
    def n_outside(self) -> int:
        """Statistics whose observed value lies outside the replicates' central interval, clear of MC error."""
        return int(self.statistics["outside"].fillna(False).astype(bool).sum())

    @property
    def n_within_mc(self) -> int:
        """Statistics beyond the central interval by the point estimate only (within Monte Carlo error)."""
        if "beyond_interval" not in self.statistics:
            return 0
        beyond = self.statistics["beyond_interval"].fillna(False).astype(bool)
        return int((beyond & ~self.statistics["outside"].fillna(False).astype(bool)).sum())

    @property
    def n_judged(self) -> int:
        """Statistics with an observed value and at least one valid replicate."""
        return int(self.statistics["outside"].notna().sum())

    def to_dict(self) -> dict[str, Any]:
        """The content of ``ppc.json``."""
        out: dict[str, Any] = {
            "converged": self.converged,
            "meta": self.meta,
            "n_statistics": len(self.statistics),
            "n_judged": self.n_judged,
            "n_outside": self.n_outside,
            "n_within_mc": self.n_within_mc,
            "statistics": _records(self.statistics),
            "findings": _records(self.findings),
            "pit": _records(self.pit_summary),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "landmarks": _records(self.landmarks),
            "loo": self.loo,
            "comparison": _records(self.comparison),
            "comparisons": {k: _records(v) for k, v in self.comparisons.items()},
        }
        return _clean(out)

    def to_json(self) -> str:
        """``ppc.json``: strict JSON (a non-finite number is ``null``)."""
        from bayesct.files import dumps_json

        return dumps_json(self.to_dict())

    def summary(self) -> str:
        """Human lines: the levels, every statistic's ppp with its Monte Carlo error, the flags, findings."""
        pct = f"{100 * self.ci_prob:.0f}%"
        mc_pct = f"{100 * float(self.meta.get('mc_prob', MC_PROB)):.0f}%"
        lines = [
            f"Posterior predictive check ({len(self.replicated)} replicates; mixed model on "
            f"{self.meta.get('mixed_replicates')} of them)",
            f"  Levels: {self.meta.get('levels', self.meta.get('level'))}",
            f"  {self.n_outside} of {self.n_judged} statistics fall outside the central {pct} interval "
            f"of their replicates, clear of Monte Carlo error (two-sided ppp below {1 - self.ci_prob:.2g} "
            f"even at the upper end of its {mc_pct} Monte Carlo interval); {self.n_within_mc} more only "
            "by the point estimate, within Monte Carlo error (more replicates would settle them).",
            f"    {'statistic':<30} {'level':<8} {'observed':>9}  {'replicated [' + pct + ']':<28} "
            f"{'ppp ± MC SE':<14} {'2-sided (MC hi)':<16} {'n':>7}",
        ]
        st = self.statistics
        for _, r in st.iterrows():
            if pd.isna(r["outside"]):
                flag = "not judged"
            elif bool(r["outside"]):
                flag = "OUTSIDE"
            elif bool(r.get("beyond_interval", False)):
                flag = "beyond, within MC error"
            else:
                flag = ""
            rep = f"{r['rep_median']:.3g} [{r['rep_lo']:.3g}, {r['rep_hi']:.3g}]"
            ppp = f"{r['ppp']:.3f} ± {r['ppp_mcse']:.3f}" if math.isfinite(r["ppp"]) else "NA"
            two = (
                f"{r['ppp_two_sided']:.3f} ({r['ppp_two_sided_mc_hi']:.3f})"
                if math.isfinite(r["ppp_two_sided"])
                else "NA"
            )
            n = f"{r['n_valid']}/{r['n_replicates']}"
            lines.append(
                f"    {r['key']:<30} {r.get('level', ''):<8} {r['observed']:>9.3g}  {rep:<28} {ppp:<14} "
                f"{two:<16} {n:>7}  {flag}".rstrip()
            )
        lines.append("  Findings of the paper (share of replicates reproducing it):")
        for _, f in self.findings.iterrows():
            share = (
                "NA"
                if pd.isna(f["reproduced_share"])
                else f"{100 * f['reproduced_share']:.0f}% ± {100 * f['share_mcse']:.0f}%"
            )
            obs = "NA" if pd.isna(f["observed_reproduced"]) else ("yes" if f["observed_reproduced"] else "no")
            level = f" [{f['level']}]" if f.get("level") else ""
            lines.append(f"    {f['finding']:<34} {share:>10} (n={f['n_valid']}){level}; observed: {obs}")
        if self.pit_summary is not None:
            lines.append(
                "  LOO-PIT (KS p-value vs uniform): "
                + ", ".join(
                    f"{m} {p:.2f}"
                    for m, p in zip(self.pit_summary["marker"], self.pit_summary["ks_loo_pit_p"], strict=True)
                )
            )
        if self.calibration is not None:
            s = self.calibration.summary
            lines.append(
                f"  Mortality: {s['observed_deaths']:.0f} deaths observed, {s['expected_deaths_loo']:.1f} "
                f"expected (LOO); Brier {s['brier_loo']:.3f}, AUC {s['auc_loo']:.3f} (risks from each "
                "patient's scans and labs, not their outcome; θ leave-patient-out"
                + (
                    f"; the {s['n_patients']:.0f} patients of known outcome)"
                    if s.get("n_outcome_unknown")
                    else ")"
                )
            )
        if self.landmarks is not None:
            lines.extend("  " + line for line in landmark_lines(self.landmarks))
        if self.loo is not None:
            lines.append(
                f"  Patient-level PSIS-LOO elpd {self.loo['elpd']:.1f} (SE {self.loo['se']:.1f}); "
                f"{self.loo['n_bad_k']} of {self.loo['n_patients']} patients with Pareto k > 0.7 "
                f"(likelihood with {self.loo['conditioning']})"
            )
        for table in [self.comparison, *self.comparisons.values()]:
            if table is None:
                continue
            lines.append(
                f"  Patient-level PSIS-LOO comparison on {table['data'].iloc[0]} "
                f"({table.attrs.get('conditioning', '')}):"
            )
            for _, r in table.iterrows():
                lines.append(
                    f"    {r['model']:<14} elpd {r['elpd']:.1f} (SE {r['se']:.1f}), "
                    f"diff {r['elpd_diff']:.1f} (SE {r['dse']:.1f}); Pareto k > 0.7: {r['n_bad_k']}"
                )
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``ppc.json``, ``ppc.csv``, ``ppc_findings.csv``, ``ppc_replicates.csv`` and the figures."""
        from bayesct.checks import figures

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        p = out / "ppc.json"
        p.write_text(self.to_json(), encoding="utf-8")
        paths.append(p)
        p = out / "ppc.csv"
        self.statistics.to_csv(p, index=False)
        paths.append(p)
        p = out / "ppc_findings.csv"
        self.findings.to_csv(p, index=False)
        paths.append(p)
        p = out / "ppc_replicates.csv"
        self.replicated.to_csv(p, index_label="replicate")
        paths.append(p)
        if self.pit is not None:
            p = out / "pit.csv"
            self.pit.to_csv(p, index=False)
            paths.append(p)
        if self.calibration is not None:
            p = out / "calibration.csv"
            self.calibration.bins.to_csv(p, index=False)
            paths.append(p)
        if self.landmarks is not None:
            p = out / "landmarks.csv"
            self.landmarks.to_csv(p, index=False)
            paths.append(p)
        if self.comparison is not None:
            p = out / "loo_compare.csv"
            self.comparison.to_csv(p, index=False)
            paths.append(p)
        paths.extend(figures.write_figures(self, out / "figures"))
        return paths


_FINDING_STATISTIC: tuple[tuple[str, str], ...] = (
    ("period_", "ct_mw_p"),
    ("tau_sign_", "kendall_tau"),
    ("ct_coef_", "logistic_coef"),
    ("day_coef_", "logistic_coef"),
)


def finding_statistic(finding: str) -> str:
    """The statistic family a finding of :func:`judge_findings` is judged from."""
    for prefix, name in _FINDING_STATISTIC:
        if finding.startswith(prefix):
            return name
    return ""


def statistic_level(
    name: str, *, level: str = DEFAULT_LEVEL, outcome_level: str = DEFAULT_OUTCOME_LEVEL
) -> str:
    """The replication level a statistic family is computed at: ``outcome_level`` for outcome contrasts."""
    return outcome_level if name in OUTCOME_STATISTICS else level


def levels_text(level: str, outcome_level: str) -> str:
    """One sentence naming the level of each group of statistics, and why."""
    why = {
        "new": "fresh patient effects and deaths from the model",
        "patients": "the patients' effects, fitted given the observed deaths, and the observed "
        "outcome: these contrasts are reproduced partly by construction",
    }
    other = ", ".join(n for n in STATISTICS if n not in OUTCOME_STATISTICS)
    return (
        f"outcome contrasts ({', '.join(OUTCOME_STATISTICS)}) at '{outcome_level}' ({why[outcome_level]}); "
        f"{other} at '{level}'"
    )


def _check_judge(observed: dict[str, float], classical: pd.DataFrame) -> None:
    """Guard: the vectorised verdicts must equal :func:`bayesct.classical.findings` on the observed data."""
    mine = judge_findings(pd.DataFrame([observed])).iloc[0]
    for fid, rep in zip(classical["finding"], classical["reproduced"], strict=True):
        want = math.nan if pd.isna(rep) else float(bool(rep))
        got = float(mine.get(str(fid), math.nan))
        if not (got == want or (math.isnan(got) and math.isnan(want))):
            raise RuntimeError(
                f"finding {fid}: vectorised verdict {got} != bayesct.classical.findings {want}"
            )


def posterior_predictive_check(
    fit: FitResult,
    *,
    replicates: int = 200,
    level: Level = DEFAULT_LEVEL,
    outcome_level: Level = DEFAULT_OUTCOME_LEVEL,
    seed: int = 0,
    mixed_replicates: int = DEFAULT_MIXED_REPLICATES,
    ci_prob: float = CI_PROB,
    mc_prob: float = MC_PROB,
    standard_checks: bool = True,
    check_draws: int = 1000,
    compare: dict[str, FitResult] | None = None,
    workers: int | None = 1,
) -> PPCResult:
    """Replicate the paper's tables from a fit and compare them with the observed ones.

    Parameters
    ----------
    fit
        A joint-family fit.
    replicates
        Replicated cohorts (one posterior draw each).
    level
        Level (``"patients"`` or ``"new"``, see the module docstring) of the statistics that do
        not involve the outcome (Kendall's tau); default ``"patients"``.
    outcome_level
        Level of the outcome contrasts (:data:`OUTCOME_STATISTICS`); default ``"new"`` (fresh
        effects and deaths: at ``"patients"`` the effects were fitted given the observed deaths).
    seed
        Random seed (replication and standard checks).
    mixed_replicates
        Replicates (the first ones) on which the mixed model also runs; 0 skips it.
    ci_prob
        Probability of the central intervals (default 0.95).
    mc_prob
        Probability of each ppp's Monte Carlo interval, which decides ``outside`` (default 0.95).
    standard_checks
        Also compute PIT / LOO-PIT, mortality calibration and the fit's patient-level PSIS-LOO.
    check_draws
        Posterior draws for the standard checks.
    compare
        Other variants (name -> fit, same data) for a patient-level PSIS-LOO comparison with this fit.
    workers
        Processes of the dask engine (:mod:`bayesct.engine`, one session for the whole check) for
        the mixed models (:func:`parallel_mixed_statistics`) and the standard checks' history terms
        (:func:`bayesct.risk.history_terms`): 1 (default) runs everything in this process, ``None``
        one per core. The numbers are the same either way.

    Returns
    -------
    PPCResult
        In memory: ``summary()`` prints it, ``write(out_dir)`` writes ``ppc.json``, the CSV
        tables and the figures (what ``bayesct check`` writes).

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> ppc = bc.posterior_predictive_check(fit, replicates=200, seed=0)  # doctest: +SKIP
    >>> print(ppc.summary())  # doctest: +SKIP
    >>> ppc.write("bayesct-demo/check")  # doctest: +SKIP
    """
    from bayesct import engine

    if workers != 1 and not engine.active():
        # one cluster for the mixed models and the patients' history terms of the standard checks
        with engine.session(workers=workers):
            return posterior_predictive_check(
                fit,
                replicates=replicates,
                level=level,
                outcome_level=outcome_level,
                seed=seed,
                mixed_replicates=mixed_replicates,
                ci_prob=ci_prob,
                mc_prob=mc_prob,
                standard_checks=standard_checks,
                check_draws=check_draws,
                compare=compare,
                workers=workers,
            )
    _check_fit(fit)
    _check_level(level)
    _check_level(outcome_level)
    if replicates < 1:
        raise PPCError(f"the number of replicates must be >= 1, got {replicates}")
    if mixed_replicates < 0:
        raise PPCError(f"mixed_replicates must be >= 0, got {mixed_replicates}")
    for label, prob in (("ci_prob", ci_prob), ("mc_prob", mc_prob)):
        if not 0.0 < prob < 1.0:
            raise PPCError(f"{label} must be in (0, 1), got {prob}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # the same seed: replicate r of both sets uses the same posterior draw
    reps_out = replicate_set(fit, n=replicates, level=outcome_level, seed=seed)
    reps_oth = (
        reps_out if level == outcome_level else replicate_set(fit, n=replicates, level=level, seed=seed)
    )
    timings["replicate"] = time.perf_counter() - t0
    cohort = fit.cohort
    mixed_markers = tuple(m for m in fit.design.markers)
    n_mixed = min(mixed_replicates, replicates)
    deaths = DIED in reps_out.values
    out_families = [f for f in SCAN_STATISTICS if f in OUTCOME_STATISTICS]
    oth_families = [f for f in SCAN_STATISTICS if f not in OUTCOME_STATISTICS]

    t0 = time.perf_counter()
    obs = table_statistics(cohort, mixed_markers=mixed_markers if n_mixed else None, deaths=deaths)
    obs_findings = classical_findings(
        {
            "period_comparison": period_comparison(cohort),
            "kendall": kendall(cohort),
            "mortality_logistic": mortality_logistic(cohort),
        }
    )
    _check_judge(obs, obs_findings)
    timings["observed"] = time.perf_counter() - t0
    keys = list(obs)
    mat = np.full((replicates, len(keys)), np.nan)
    t_scan = t_mixed = 0.0
    mixed_cohorts: list[Cohort] = []  # replicated cohorts whose mixed models run on the engine
    for r in range(replicates):
        rep = reps_out.cohort(r)
        ts = time.perf_counter()
        if reps_oth is reps_out:
            st = table_statistics(rep, deaths=deaths)
        else:
            st = table_statistics(rep, deaths=deaths, families=out_families)
            st.update(table_statistics(reps_oth.cohort(r), families=oth_families))
        t_scan += time.perf_counter() - ts
        if r < n_mixed and workers == 1:
            ts = time.perf_counter()
            st.update(mixed_statistics(rep, mixed_markers))
            t_mixed += time.perf_counter() - ts
        elif r < n_mixed:
            mixed_cohorts.append(rep)
        mat[r] = [st.get(k, math.nan) for k in keys]
    timings["statistics"] = t_scan
    if mixed_cohorts:
        ts = time.perf_counter()
        column = {k: j for j, k in enumerate(keys)}
        for r, st in parallel_mixed_statistics(mixed_cohorts, mixed_markers, workers=workers).items():
            for k, v in st.items():
                if k in column:
                    mat[r, column[k]] = v
        t_mixed = time.perf_counter() - ts
    timings["mixed_model"] = t_mixed
    replicated = pd.DataFrame(mat, columns=keys)
    replicated.index.name = "replicate"
    replicated_findings = judge_findings(replicated)
    n_computed = {k: n_mixed for k in keys if _split_key(k)[0] == "mixed_p"}
    summarised = [k for k in keys if _split_key(k)[0] != LOGISTIC_P]
    statistics = summarise_statistics(
        pd.Series(obs)[summarised],
        replicated[summarised],
        ci_prob=ci_prob,
        mc_prob=mc_prob,
        n_computed=n_computed,
    )
    statistics.insert(
        list(statistics.columns).index("observed"),
        "level",
        [statistic_level(str(n), level=level, outcome_level=outcome_level) for n in statistics["name"]],
    )
    if n_mixed:
        is_mixed = statistics["name"] == "mixed_p"
        statistics["note"] = np.where(
            is_mixed, f"mixed model run on the first {n_mixed} of {replicates} replicates (slow)", ""
        )
    else:
        statistics["note"] = ""
    unmodelled = [m for m in cohort.labs if m not in fit.design.markers]
    for lab in unmodelled:
        sel = statistics["marker"] == lab
        statistics.loc[sel, "note"] = "lab not in the model: its observed values are kept in every replicate"
    findings = summarise_findings(obs_findings, replicated_findings)
    findings.insert(
        list(findings.columns).index("observed_value"),
        "level",
        [
            statistic_level(finding_statistic(str(fid)), level=level, outcome_level=outcome_level)
            for fid in findings["finding"]
        ],
    )

    pit = pit_sum = None
    calibration = None
    landmarks = None
    loo = None
    notes = list(dict.fromkeys([*reps_out.notes, *reps_oth.notes]))
    if standard_checks:
        t0 = time.perf_counter()
        pm = PosteriorModel.from_fit(fit, max_draws=check_draws, seed=seed)
        pit = predictive_pit(fit, seed=seed, model=pm)
        pit_sum = pit_summary(pit, ci_prob=ci_prob)
        if fit.spec.mortality:
            calibration = mortality_calibration(fit, ci_prob=ci_prob, seed=seed, model=pm)
            landmarks = landmark_accuracy(fit, seed=seed, model=pm)
        else:
            notes.append(f"model '{fit.spec.name}' has no mortality submodel: no mortality calibration")
        loo = patient_loo(fit, seed=seed, model=pm)
        timings["standard_checks"] = time.perf_counter() - t0
    comparison = None
    comparisons: dict[str, pd.DataFrame] = {}
    if compare:
        t0 = time.perf_counter()
        name = fit.spec.name
        all_fits = {name: fit} | {(k if k != name else f"{k}_2"): v for k, v in compare.items()}
        usable = {k: v for k, v in all_fits.items() if v.spec.family == "joint"}
        excluded = sorted(set(all_fits) - set(usable))
        if excluded:
            notes.append(
                f"left out of the PSIS-LOO comparison (not trajectory models): {', '.join(excluded)}"
            )
        if len(usable) >= 2:
            comparison = compare_models(usable, max_draws=check_draws, seed=seed)
            for other, f in usable.items():
                if other == name:
                    continue
                pair = {name: fit, other: f}
                parts = shared_parts(pair)
                if list(parts) != comparison.attrs.get("parts"):
                    comparisons[f"{name}_vs_{other}"] = compare_models(pair, max_draws=check_draws, seed=seed)
        timings["comparison"] = time.perf_counter() - t0

    meta = {
        "model": fit.spec.name,
        "level": level,
        "outcome_level": outcome_level,
        "outcome_statistics": list(OUTCOME_STATISTICS),
        "levels": levels_text(level, outcome_level),
        "replicates": replicates,
        "mixed_replicates": n_mixed,
        "seed": seed,
        "ci_prob": ci_prob,
        "mc_prob": mc_prob,
        "interval": f"central (equal-tailed) {100 * ci_prob:.0f}% interval of the replicated statistic",
        "ppp": "ppp = P(T_rep >= T_obs) over valid replicates (upper tail); "
        "ppp_two_sided = min(1, 2 min(P(T_rep >= T_obs), P(T_rep <= T_obs)))",
        "ppp_mcse": "Monte Carlo SE of a ppp x / R from R = n_valid replicates: sqrt(p (1 - p) / R) at the "
        "Jeffreys estimate p = (x + 1/2) / (R + 1); ppp_mc_lo/hi: central "
        f"{100 * mc_prob:.0f}% Jeffreys interval (Beta(x + 1/2, R - x + 1/2) quantiles); "
        "ppp_two_sided_mcse / _mc_hi: twice those of the smaller tail",
        "outside": f"observed beyond the central {100 * ci_prob:.0f}% interval clear of Monte Carlo "
        f"error: the upper end of the smaller tail's {100 * mc_prob:.0f}% Monte Carlo interval is "
        f"below {(1 - ci_prob) / 2:.3g} (ppp_two_sided_mc_hi < {1 - ci_prob:.3g}); beyond_interval: "
        "the point estimate's verdict (observed outside [rep_lo, rep_hi])",
        "n_valid": "replicates where the statistic is defined (undefined ones, e.g. a period without "
        "non-survivor scans or a separated logistic fit, are NaN and excluded), out of n_replicates "
        "(those it was computed on)",
        "mixed_model": f"the mixed model's group x period test runs on the first {n_mixed} of "
        f"{replicates} replicates only (~0.1 s per marker)",
        "replicates_csv": "row r of ppc_replicates.csv: replicate r at each statistic's level "
        "(the same posterior draw at both levels)",
        "replicated_markers": list(reps_out.replicated_markers),
        "died": "replicated" if deaths else "observed (fixed)",
        "notes": notes,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "fit_converged": fit.passed,
    }
    return PPCResult(
        statistics=statistics,
        findings=findings,
        replicated=replicated,
        replicated_findings=replicated_findings,
        pit=pit,
        pit_summary=pit_sum,
        calibration=calibration,
        landmarks=landmarks,
        loo=loo,
        comparison=comparison,
        comparisons=comparisons,
        meta=meta,
        converged=fit.passed,
    )
