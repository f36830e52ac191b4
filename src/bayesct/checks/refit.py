"""Exact leave-patient-out predictions by refitting, where PSIS cannot be trusted.

Patient-level PSIS-LOO (:mod:`bayesct.checks.calibration`) reweights the full-data posterior
draws; where a patient's Pareto k exceeds 0.7 the weights are too heavy-tailed for the estimate
to hold. For those patients the model is fitted again without them (the same spec, sampler
settings and seed), and their predictive log density is computed from the refit's draws
(Vehtari, Gelman & Gabry 2017, section 2.1):

.. math::

    \\log p(y_i \\mid y_{-i}) \\approx \\log \\frac{1}{S} \\sum_s p(y_i \\mid \\theta_s),
    \\qquad \\theta_s \\sim p(\\theta \\mid y_{-i}),

with :math:`p(y_i \\mid \\theta)` the patient's likelihood with their random effects integrated
out (:func:`bayesct.risk.history_terms`'s importance sampler): the scans and labs, and
P(died | the scans and labs, θ) for the outcome. Refits are sequential; each one is a real fit
and passes or fails its own convergence gates, which the result reports.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bayesct.constants import PATIENT
from bayesct.data.cohort import Cohort
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.posterior import PosteriorModel

#: A function that refits a fit's model on a cohort (the default: :func:`refit_without`'s own).
Refitter = Callable[[FitResult, Cohort], FitResult]


@dataclass(frozen=True)
class ExactLOO:
    """Exact leave-patient-out log predictive densities of some patients.

    Attributes
    ----------
    patients
        Indices (cohort order) of the patients refitted.
    elpd_i
        ``log p(y_i | y_-i)`` of each, in the same order.
    passed
        Whether each refit passed its convergence gates.
    """

    patients: tuple[int, ...]
    elpd_i: np.ndarray
    passed: tuple[bool, ...]

    @property
    def all_passed(self) -> bool:
        return all(self.passed)


def without_patients(cohort: Cohort, patient_ids: Sequence[object]) -> Cohort:
    """The cohort less the given patients (every visit and the patient row of each)."""
    drop = set(patient_ids)
    visits = cohort.visits.loc[~cohort.visits[PATIENT].isin(drop)].reset_index(drop=True)
    patients = cohort.patients.loc[~cohort.patients.index.isin(drop)]
    return dataclasses.replace(cohort, visits=visits, patients=patients)


def _default_refit(fit: FitResult, cohort: Cohort) -> FitResult:
    settings = fit.settings
    return JointModel(fit.spec).fit(
        cohort,
        draws=settings.get("draws"),
        tune=settings.get("tune"),
        chains=settings.get("chains"),
        sampler=settings.get("sampler", "nutpie"),
        seed=int(settings.get("seed", 0)),
        progress=False,
    )


def _logmeanexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.mean(np.exp(x - m))))


def exact_patient_loo(
    fit: FitResult,
    patients: Sequence[int],
    *,
    parts: tuple[str, ...],
    max_draws: int | None = 1000,
    seed: int = 0,
    refit: Refitter | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExactLOO:
    """Refit ``fit``'s model without each of ``patients`` and score the patient on the refit.

    Parameters
    ----------
    fit
        A joint-family fit (the risk and history machinery of :mod:`bayesct.risk`).
    patients
        Cohort indices (0-based, the design's patient order) to leave out, one refit each.
    parts
        The data scored: ``"ct"``, ``"labs"``, ``"death"`` (as
        :meth:`~bayesct.modeling.posterior.PosteriorModel.patient_loglik`).
    max_draws, seed
        Posterior draws of each refit used, and the seed of the refits and the importance
        sampler.
    refit
        How to refit (default: the fit's own spec, sampler settings and seed).
    progress
        Called with one line before each refit.

    Returns
    -------
    ExactLOO
    """
    from bayesct.risk import DEFAULT_N_EFFECTS, _importance, _patient_obs

    refit = refit or _default_refit
    design = fit.design
    ids = list(design.patient_ids)
    long_parts = tuple(p for p in parts if p != "death")
    out = np.empty(len(patients))
    passed: list[bool] = []
    for j, i in enumerate(patients):
        pid = ids[i]
        if progress is not None:
            progress(f"refit {j + 1}/{len(patients)}: {fit.spec.name} without patient {pid}")
        other = refit(fit, without_patients(fit.cohort, [pid]))
        passed.append(bool(other.passed))
        pm = PosteriorModel.from_fit(other, max_draws=max_draws, seed=seed)
        X = pm.covariates_for(fit.cohort.patients.loc[[pid]]) if pm.spec.mortality else np.zeros((1, 0))
        obs = _patient_obs(design, i, long_parts)
        res, _ = _importance(pm, obs, X, method="laplace", n_effects=DEFAULT_N_EFFECTS, seed=seed + i)
        ll = res.log_marginal if long_parts else np.zeros(pm.n_draws)
        if "death" in parts:
            p = np.clip(res.p, 1e-12, 1 - 1e-12)
            died = float(design.died[i])
            ll = ll + died * np.log(p) + (1 - died) * np.log1p(-p)
        out[j] = _logmeanexp(ll)
    return ExactLOO(tuple(int(i) for i in patients), out, tuple(passed))
