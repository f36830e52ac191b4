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
P(died | the scans and labs, θ) for the outcome. Each refit is a real fit and passes or fails its
own convergence gates, which the result reports. The refits are tasks on dask.distributed
(:func:`bayesct.engine.run_tasks`: a ``LocalCluster``, one worker per core, or a running
``scheduler``), each scored on its worker; ``workers=1`` (or a ``refit`` function of the
caller's) runs them one after another in this process instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bayesct.data.cohort import Cohort
from bayesct.errors import BayesctError
from bayesct.likelihoods import death_loglik
from bayesct.modeling.design import Design
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.posterior import PosteriorModel
from bayesct.modeling.spec import ModelSpec

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
    return cohort.drop_patients(patient_ids)


def _fit_like(spec: ModelSpec, settings: dict, cohort: Cohort) -> FitResult:
    """``cohort`` fitted with ``spec`` and a fit's sampler settings (draws, tune, chains, sampler, seed)."""
    return JointModel(spec).fit(
        cohort,
        draws=settings.get("draws"),
        tune=settings.get("tune"),
        chains=settings.get("chains"),
        sampler=settings.get("sampler", "nutpie"),
        seed=int(settings.get("seed", 0)),
        progress=False,
    )


def _default_refit(fit: FitResult, cohort: Cohort) -> FitResult:
    return _fit_like(fit.spec, dict(fit.settings), cohort)


def _logmeanexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.mean(np.exp(x - m))))


def _score(
    design: Design,
    cohort: Cohort,
    i: int,
    other: FitResult,
    parts: tuple[str, ...],
    max_draws: int | None,
    seed: int,
) -> float:
    """``log p(y_i | y_-i)`` of patient ``i`` of ``design`` on the draws of ``other`` (fitted without them)."""
    from bayesct.risk import DEFAULT_N_EFFECTS, _importance, _patient_obs

    pid = design.patient_ids[i]
    long_parts = tuple(p for p in parts if p != "death")
    pm = PosteriorModel.from_fit(other, max_draws=max_draws, seed=seed)
    X = pm.covariates_for(cohort.patients.loc[[pid]]) if pm.spec.mortality else np.zeros((1, 0))
    obs = _patient_obs(design, i, long_parts)
    res, _ = _importance(pm, obs, X, method="laplace", n_effects=DEFAULT_N_EFFECTS, seed=seed + i)
    ll = res.log_marginal if long_parts else np.zeros(pm.n_draws)
    if "death" in parts:  # no term for an outcome not known yet
        ll = ll + death_loglik(design.died[i], np.clip(res.p, 1e-12, 1 - 1e-12))
    return _logmeanexp(ll)


@dataclass(frozen=True)
class RefitTask:
    """One exact leave-patient-out term, as a task for a worker (:func:`refit_patient`)."""

    spec: ModelSpec
    cohort: Cohort
    index: int
    parts: tuple[str, ...]
    settings: dict
    max_draws: int | None
    seed: int


def refit_patient(task: RefitTask) -> tuple[float, bool]:
    """Refit ``task.spec`` without patient ``task.index`` and score them: ``(log p(y_i | y_-i), gates passed)``."""
    import warnings

    from bayesct.errors import ConvergenceWarning
    from bayesct.modeling.design import build_design

    design = build_design(task.cohort, task.spec)
    pid = design.patient_ids[task.index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the gates are returned and reported
        other = _fit_like(task.spec, task.settings, without_patients(task.cohort, [pid]))
    value = _score(design, task.cohort, task.index, other, task.parts, task.max_draws, task.seed)
    return value, bool(other.passed)


def exact_patient_loo(
    fit: FitResult,
    patients: Sequence[int],
    *,
    parts: tuple[str, ...],
    max_draws: int | None = 1000,
    seed: int = 0,
    refit: Refitter | None = None,
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
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
        Posterior draws of each refit used, and the seed of the importance sampler (the refits
        use the fit's own seed).
    refit
        How to refit (default: the fit's own spec and sampler settings, on the dask engine). A
        function given here runs in this process, one refit after another.
    progress
        Called with one line per refit (before it, in this process; as it finishes, on the engine).
    scheduler, workers
        The dask engine (:func:`bayesct.engine.run_tasks`): a running scheduler's address, or the
        number of local worker processes (default one per core); ``workers=1`` refits in this process.

    Returns
    -------
    ExactLOO
    """
    design = fit.design
    ids = list(design.patient_ids)
    patients = [int(i) for i in patients]
    out = np.empty(len(patients))
    passed: list[bool] = [False] * len(patients)
    if refit is None and workers != 1 and len(patients) > 0:
        from bayesct.engine import run_tasks

        settings = dict(fit.settings)
        tasks = [RefitTask(fit.spec, fit.cohort, i, parts, settings, max_draws, seed) for i in patients]
        failed: list[str] = []
        done = 0
        for j, result in run_tasks(
            refit_patient, tasks, scheduler=scheduler, workers=workers, name="bayesct-refit"
        ):
            done += 1
            if isinstance(result, BaseException):
                failed.append(f"{ids[patients[j]]}: {type(result).__name__}: {result}")
                continue
            out[j], passed[j] = result
            if progress is not None:
                verdict = "gates passed" if passed[j] else "MISSED A GATE"
                progress(
                    f"refit {done}/{len(patients)}: {fit.spec.name} without patient {ids[patients[j]]}, {verdict}"
                )
        if failed:
            raise BayesctError("a refit without a patient failed: " + "; ".join(failed))
        return ExactLOO(tuple(patients), out, tuple(passed))
    refit = refit or _default_refit
    for j, i in enumerate(patients):
        pid = ids[i]
        if progress is not None:
            progress(f"refit {j + 1}/{len(patients)}: {fit.spec.name} without patient {pid}")
        other = refit(fit, without_patients(fit.cohort, [pid]))
        passed[j] = bool(other.passed)
        out[j] = _score(design, fit.cohort, i, other, parts, max_draws, seed)
    return ExactLOO(tuple(patients), out, tuple(passed))
