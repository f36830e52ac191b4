"""Prior predictive check: do the spec's priors put the markers on plausible scales?"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
from scipy.special import expit

from bayesct.constants import CI_PROB
from bayesct.data.cohort import Cohort
from bayesct.modeling.design import Design, build_design, from_model_scale, scan_terms, scan_weights
from bayesct.modeling.fit import JointModel
from bayesct.modeling.spec import ModelSpec


def prior_predictive_check(
    cohort: Cohort,
    spec: str | ModelSpec = "joint",
    *,
    draws: int = 200,
    seed: int = 0,
    ci_prob: float = CI_PROB,
) -> pd.DataFrame:
    """Observed vs prior-predictive summaries of each modelled quantity on the cohort's design.

    One row per marker (and ``died``): the observed median, the prior predictive
    median of the replicated medians with its central ``ci_prob`` interval, and
    the share of prior draws whose replicated median lies beyond the observed
    range (a prior that is too wide shows up as a large share).

    Labs whose specific intercepts are integrated out of the likelihood (the
    ``joint`` spec) have no observed node to draw from; they are reported as
    not replicated. The ``scan_logistic`` pseudo-likelihood has no observed node
    either: its deaths are drawn per patient from the prior draws, with the mean of
    the patient's per-scan probabilities (each scan weighted ``1/n_i``, as in the
    pseudo-likelihood).
    """
    model = JointModel(spec)
    design = build_design(cohort, model.spec)
    with model.build(cohort), warnings.catch_warnings():
        # scan_logistic: its Potential is the likelihood, which a prior draw rightly ignores
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        prior = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    pp = prior["prior_predictive"].to_dataset() if "prior_predictive" in prior.children else None
    a = (1 - ci_prob) / 2
    rows = []

    def row(name: str, observed: np.ndarray, rep: np.ndarray | None) -> None:
        obs_med = float(np.median(observed))
        if rep is None:
            rows.append(
                {
                    "quantity": name,
                    "observed_median": obs_med,
                    "prior_median": np.nan,
                    "prior_lo": np.nan,
                    "prior_hi": np.nan,
                    "share_outside_observed_range": np.nan,
                    "note": "integrated out of the likelihood: not replicated",
                }
            )
            return
        meds = np.median(rep, axis=-1)
        lo, med, hi = np.quantile(meds, [a, 0.5, 1 - a])
        outside = float(np.mean((meds < observed.min()) | (meds > observed.max())))
        rows.append(
            {
                "quantity": name,
                "observed_median": obs_med,
                "prior_median": float(med),
                "prior_lo": float(lo),
                "prior_hi": float(hi),
                "share_outside_observed_range": outside,
                "note": "",
            }
        )

    if pp is not None and ("ct_obs" in pp or "ct_zone_obs" in pp):
        row("ct_score", design.ct.value.astype(float), _ct_totals(pp, design))
    if pp is not None and "lab_obs" in pp:
        rep = pp["lab_obs"].stack(s=("chain", "draw")).transpose("s", ...).values
        for k, lab in enumerate(design.lab_names, start=1):
            mask = design.labs.marker == k
            row(
                lab,
                from_model_scale(lab, design.labs.value[mask], design.declared_labs),
                from_model_scale(lab, rep[:, mask], design.declared_labs),
            )
    else:
        for k, lab in enumerate(design.lab_names, start=1):
            mask = design.labs.marker == k
            row(lab, from_model_scale(lab, design.labs.value[mask], design.declared_labs), None)
    deaths = None
    note = "share of patients, not a median"
    if model.spec.family == "scan_logistic":
        deaths = _scan_logistic_deaths(prior["prior"].to_dataset(), design, seed)
        note += "; each patient's death drawn with the mean of its scans' probabilities"
    elif pp is not None and "died_obs" in pp:
        rep = pp["died_obs"].stack(s=("chain", "draw")).transpose("s", ...).values
        deaths = rep.mean(axis=-1)
    if deaths is not None:
        lo, med, hi = np.quantile(deaths, [a, 0.5, 1 - a])
        rows.append(
            {
                "quantity": "mortality (share died)",
                "observed_median": float(design.died[design.known_patients].mean()),
                "prior_median": float(med),
                "prior_lo": float(lo),
                "prior_hi": float(hi),
                "share_outside_observed_range": np.nan,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def _scan_logistic_deaths(prior, design: Design, seed: int) -> np.ndarray:
    """(S,) share of patients who died in each prior draw of a ``scan_logistic`` model: patient i
    dies with probability ``sum_j p_ij / n_i`` over its scans (the pseudo-likelihood's weights)."""

    def draws(name: str) -> np.ndarray:
        return np.asarray(prior[name].stack(s=("chain", "draw")).transpose("s", ...).values)

    ct = design.ct
    eta = draws("mort_intercept")[:, None] + draws("mort_beta") @ scan_terms(design.spec, ct.value, ct.day).T
    weighted = expit(eta) * scan_weights(ct.patient)
    p = np.zeros((eta.shape[0], design.n_patients))
    np.add.at(p.T, ct.patient, weighted.T)
    rng = np.random.default_rng(seed)
    return (rng.random(p.shape) < p).mean(axis=-1)


def _ct_totals(pp, design) -> np.ndarray:
    """(S, n_scans) replicated CT scores: the total, or the sum of the replicated zones where the
    model has the zones as their likelihood."""

    def draws(name: str) -> np.ndarray:
        return np.asarray(pp[name].stack(s=("chain", "draw")).transpose("s", ...).values)

    if "ct_zone_obs" not in pp:
        return draws("ct_obs")
    has = design.ct_zones[:, 0] >= 0
    zones = draws("ct_zone_obs").sum(axis=-1)
    out = np.empty((zones.shape[0], len(design.ct.value)))
    out[:, has] = zones
    if "ct_obs" in pp:
        out[:, ~has] = draws("ct_obs")
    return out
