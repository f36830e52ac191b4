"""Prior sensitivity of the mortality submodel by power-scaling (Kallioinen et al. 2024).

Raising the prior (or the likelihood) to a power close to one and watching how far the
posterior moves — estimated by Pareto-smoothed importance sampling on the existing draws,
no refit — says whether a parameter's posterior is driven by its prior (prior
sensitivity at or above 0.05), by the data, or by both in conflict. This module applies
``arviz_stats.psense_summary`` to the mortality part of a ``joint``-family fit: the
power-scaled prior is the spec's prior of ``mort_intercept``, ``mort_beta`` and
``mort_gamma``; the power-scaled likelihood is each patient's death term (the patients of
known outcome), given the patient's fitted effects (the model's own likelihood of these parameters; this is a
statement about the posterior of the parameters, not a prediction).

:func:`prior_refits` checks it exactly: the model refitted with its mortality priors' scales
halved and doubled (:data:`PRIOR_FACTORS`), each refit a task on the dask engine.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayesct.errors import BayesctError, SpecError
from bayesct.likelihoods import death_loglik
from bayesct.modeling.diagnostics import interval
from bayesct.modeling.posterior import PosteriorModel
from bayesct.modeling.spec import ModelSpec, Prior

__all__ = [
    "MORTALITY_PRIORS",
    "PRIOR_FACTORS",
    "SENSITIVITY_THRESHOLD",
    "mortality_prior_sensitivity",
    "prior_refit_lines",
    "prior_refits",
    "scaled_priors",
]

#: The mortality priors that are power-scaled.
MORTALITY_PRIORS: tuple[str, ...] = ("mort_intercept", "mort_beta", "mort_gamma")
#: Sensitivity at or above which a component is said to move the posterior (the paper's 0.05).
SENSITIVITY_THRESHOLD = 0.05


def _prior_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray:
    p = prior.params
    if prior.dist == "Normal":
        return stats.norm.logpdf(x, p.get("mu", 0.0), p["sigma"])
    if prior.dist == "StudentT":
        return stats.t.logpdf(x, p["nu"], p.get("mu", 0.0), p["sigma"])
    raise SpecError(
        f"priors.{prior.name}: power-scaling supports Normal and StudentT priors, got {prior.dist}"
    )


#: Risk queries whose sensitivity is reported beside the parameters': (CT score, day), age 60, female.
RISK_CELLS: tuple[tuple[int, float], ...] = ((4, 8.0), (12, 8.0), (20, 8.0))


def mortality_prior_sensitivity(
    fit, *, max_draws: int | None = 2000, seed: int = 0, risk_cells=RISK_CELLS
) -> pd.DataFrame:
    """Power-scaling sensitivity of the mortality parameters to their priors and to the deaths.

    Returns one row per scalar parameter (``mort_intercept``, each ``mort_beta`` and
    ``mort_gamma`` coefficient, ``mort_assoc_sd`` when the fit has it, and the risk of a new
    patient, age 60, female, given one CT scan, for each (score, day) of ``risk_cells``:
    the answer a user reads, which can be much less prior-dependent than the coefficients) with columns
    ``prior`` and ``likelihood`` (the power-scaling sensitivities) and ``diagnosis``
    (``"potential prior-data conflict"``, ``"potential strong prior / weak likelihood"`` or
    ``"✓"``, as ``arviz_stats.psense_summary`` words them).

    Examples
    --------
    >>> table = mortality_prior_sensitivity(fit)  # doctest: +SKIP
    >>> table.loc["mort_assoc_sd", "prior"]  # doctest: +SKIP
    0.012
    """
    from arviz_stats import psense_summary

    spec = fit.spec
    if spec.family != "joint" or not spec.mortality:
        raise SpecError(f"model '{spec.name}' has no joint mortality submodel to check")
    pm = PosteriorModel.from_fit(fit, max_draws=max_draws, seed=seed)
    d = pm.design
    S = pm.n_draws
    log_prior = np.zeros(S)
    post: dict[str, xr.DataArray] = {}
    for name in MORTALITY_PRIORS:
        if name not in pm.draws or name not in spec.priors:
            continue
        x = np.asarray(pm.draws[name], float).reshape(S, -1)
        log_prior += _prior_logpdf(spec.priors[name], x).sum(axis=1)
        labels = _labels(fit, name, x.shape[1])
        for j, label in enumerate(labels):
            post[label] = xr.DataArray(x[:, j].reshape(1, S), dims=("chain", "draw"))
    if "mort_assoc_sd" in pm.draws:
        post["mort_assoc_sd"] = xr.DataArray(
            np.asarray(pm.draws["mort_assoc_sd"], float).reshape(1, S), dims=("chain", "draw")
        )
    if risk_cells:
        from bayesct.risk import risk_query

        for score, day in risk_cells:
            q = risk_query(
                fit, ct_score=score, day=day, age=60.0, sex="female", max_draws=max_draws, seed=seed
            )
            p = np.asarray(q["p_death"].values, float)
            if p.shape != (S,):
                raise RuntimeError("risk draws do not align with the posterior draws")
            post[f"P(death | CT {score}, day {day:g})"] = xr.DataArray(
                p.reshape(1, S), dims=("chain", "draw")
            )
    # the death terms of the patients of known outcome (the others have none)
    known = d.known_patients
    loglik = death_loglik(
        d.died[known], logit=pm.mortality_logit(pm.patient_effects(), d.covariates)[:, known]
    )
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(post),
            "log_prior": xr.Dataset({"mortality": (("chain", "draw"), log_prior.reshape(1, S))}),
            "log_likelihood": xr.Dataset({"died": (("chain", "draw", "patient"), loglik.reshape(1, S, -1))}),
        }
    )
    logger = logging.getLogger("arviz_stats")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the table's diagnosis column carries the message
    try:
        table = psense_summary(tree, threshold=SENSITIVITY_THRESHOLD, round_to=3)
    finally:
        logger.setLevel(level)
    table.index.name = "parameter"
    return table


def _labels(fit, name: str, n: int) -> list[str]:
    if n == 1:
        return [name]
    da = fit.posterior[name]
    extra = [dim for dim in da.dims if dim not in ("chain", "draw")]
    if len(extra) == 1 and extra[0] in da.coords:
        return [f"{name}[{v}]" for v in da.coords[extra[0]].values]
    return [f"{name}[{j}]" for j in range(n)]


def sensitivity_lines(table: pd.DataFrame) -> list[str]:
    """The table as text lines for the CLI and the report, with what a flag means."""
    lines = ["Prior sensitivity of the mortality part (power-scaling; >= 0.05 moves the posterior):"]
    lines.append(f"  {'parameter':<28} {'prior':>7} {'deaths':>7}  diagnosis")
    for name, row in table.iterrows():
        lines.append(f"  {name!s:<28} {row['prior']:>7.3f} {row['likelihood']:>7.3f}  {row['diagnosis']}")
    if any(str(v).startswith("potential") for v in table["diagnosis"]):
        lines.append(
            "  A flagged quantity's posterior depends on its prior (the deaths alone do not pin it "
            "down): read it with its prior (`bayesct priors`), or refit with a wider one to see how far it moves."
        )
    return lines


# --- refits with wider and narrower mortality priors ----------------------------------------

#: Factors on the scale of the mortality priors of :func:`prior_refits`.
PRIOR_FACTORS: tuple[float, ...] = (0.5, 2.0)


def scaled_priors(spec: ModelSpec, factor: float, names: Sequence[str] = MORTALITY_PRIORS) -> ModelSpec:
    """``spec`` with the scale (``sigma``) of each prior of ``names`` multiplied by ``factor``."""
    if not factor > 0:
        raise SpecError(f"a prior scale factor must be positive, got {factor}")
    priors = dict(spec.priors)
    for name in names:
        if name in priors and "sigma" in priors[name].params:
            p = priors[name]
            priors[name] = dataclasses.replace(p, params={**p.params, "sigma": p.params["sigma"] * factor})
    return dataclasses.replace(spec, priors=priors, name=f"{spec.name} (mortality priors x{factor:g})")


def _mortality_summary(
    fit, risk_cells, max_draws: int | None, seed: int
) -> dict[str, tuple[float, float, float]]:
    """Median and 95% interval of each mortality parameter and of each risk cell's P(death)."""
    out: dict[str, tuple[float, float, float]] = {}
    post = fit.posterior
    for name in (*MORTALITY_PRIORS, "mort_assoc_sd"):
        if name not in post:
            continue
        x = np.asarray(post[name].values, float).reshape(-1, int(np.prod(post[name].shape[2:], dtype=int)))
        for j, label in enumerate(_labels(fit, name, x.shape[1])):
            out[label] = interval(x[:, j])
    if risk_cells:
        from bayesct.risk import risk_query

        for score, day in risk_cells:
            q = risk_query(
                fit, ct_score=score, day=day, age=60.0, sex="female", max_draws=max_draws, seed=seed
            )
            out[f"P(death | CT {score}, day {day:g})"] = interval(q["p_death"].values)
    return out


@dataclasses.dataclass(frozen=True)
class PriorRefitTask:
    """One refit with scaled mortality priors, as a task for a worker (:func:`refit_scaled`)."""

    spec: ModelSpec
    cohort: Any
    settings: dict
    risk_cells: tuple[tuple[int, float], ...]
    max_draws: int | None
    seed: int


def refit_scaled(task: PriorRefitTask) -> tuple[dict[str, tuple[float, float, float]], bool, str]:
    """Fit ``task.spec`` (priors already scaled) and summarise it: ``(summary, gates passed, gate message)``."""
    import warnings

    from bayesct.checks.refit import _fit_like
    from bayesct.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the gates are returned and reported
        fit = _fit_like(task.spec, task.settings, task.cohort)
    return (
        _mortality_summary(fit, task.risk_cells, task.max_draws, task.seed),
        bool(fit.passed),
        fit.diagnostics.message(),
    )


def prior_refits(
    fit,
    *,
    factors: Sequence[float] = PRIOR_FACTORS,
    risk_cells=RISK_CELLS,
    max_draws: int | None = 2000,
    seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Refit ``fit``'s model with its mortality priors' scales multiplied by each of ``factors``.

    The exact counterpart of :func:`mortality_prior_sensitivity`'s power-scaling: each refit is
    a task on the dask engine (:func:`bayesct.engine.run_tasks`; ``workers=1`` refits in this
    process) with the fit's own sampler settings and seed, so on one machine the refits share
    one compiled model per prior setting. Returns one row per (prior setting, quantity): columns
    ``priors`` ("as fitted" or "x0.5", ...), ``quantity`` (the mortality parameters,
    ``mort_assoc_sd`` and the P(death) of the risk cells of :data:`RISK_CELLS`), ``median``,
    ``lower``, ``upper`` (95% interval), ``passed`` (the refit's gates) and ``shift`` (how far
    the median moved from the fit's, in units of the fit's 95% interval width). A refit that
    missed a gate is kept, with ``passed`` False, and named by ``progress``.
    """
    spec = fit.spec
    if not spec.mortality:
        raise SpecError(f"model '{spec.name}' has no mortality submodel to refit")
    cells = tuple(risk_cells or ())
    tasks = [
        PriorRefitTask(scaled_priors(spec, f), fit.cohort, dict(fit.settings), cells, max_draws, seed)
        for f in factors
    ]
    base = _mortality_summary(fit, cells, max_draws, seed)
    results: dict[int, tuple[dict, bool, str]] = {}
    if workers == 1:
        for j, task in enumerate(tasks):
            if progress is not None:
                progress(f"refit {j + 1}/{len(tasks)}: {task.spec.name}")
            results[j] = refit_scaled(task)
    else:
        from bayesct.engine import run_tasks

        failed = []
        for j, result in run_tasks(
            refit_scaled, tasks, scheduler=scheduler, workers=workers, name="bayesct-priors"
        ):
            if isinstance(result, BaseException):
                failed.append(f"{tasks[j].spec.name}: {type(result).__name__}: {result}")
                continue
            results[j] = result
            if progress is not None:
                progress(
                    f"refit {len(results)}/{len(tasks)}: {tasks[j].spec.name}, "
                    f"{'gates passed' if result[1] else 'MISSED A GATE'}"
                )
        if failed:
            raise BayesctError("a refit with scaled priors failed: " + "; ".join(failed))
    rows = []
    for label, summary, passed in [("as fitted", base, bool(fit.passed))] + [
        (f"x{factors[j]:g}", results[j][0], results[j][1]) for j in range(len(tasks))
    ]:
        for quantity, (mid, lo, hi) in summary.items():
            b_mid, b_lo, b_hi = base[quantity]
            width = b_hi - b_lo
            rows.append(
                {
                    "priors": label,
                    "quantity": quantity,
                    "median": mid,
                    "lower": lo,
                    "upper": hi,
                    "passed": passed,
                    "shift": (mid - b_mid) / width if width > 0 else 0.0,
                }
            )
    return pd.DataFrame(rows)


#: A refit's median moved by at least this share of the fit's 95% interval width is flagged.
SHIFT_FLAG = 0.25


def _fmt(quantity: str, mid: float, lo: float, hi: float) -> str:
    """``median [lower, upper]``: risks in percent, coefficients (log-odds) to 3 significant digits."""
    if quantity.startswith("P(death"):
        return f"{100 * mid:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    return f"{mid:.3g} [{lo:.3g}, {hi:.3g}]"


def prior_refit_lines(table: pd.DataFrame) -> list[str]:
    """The refits' table as text lines: each quantity's median [95% CrI] under every prior setting."""
    settings = list(dict.fromkeys(table["priors"]))
    lines = [
        "Mortality priors refitted wider and narrower (median [95% CrI]; scale factors on the priors' SDs):"
    ]
    for setting in settings[1:]:
        if not table.loc[table["priors"] == setting, "passed"].all():
            lines.append(
                f"  WARNING: the refit with priors {setting} MISSED a convergence gate: read its row with care"
            )
    for quantity, rows in table.groupby("quantity", sort=False):
        cells = []
        for _, r in rows.iterrows():
            flag = " *" if abs(r["shift"]) >= SHIFT_FLAG else ""
            cells.append(f"{r['priors']}: {_fmt(str(quantity), r['median'], r['lower'], r['upper'])}{flag}")
        lines.append(f"  {quantity:<28} " + "; ".join(cells))
    if (table["shift"].abs() >= SHIFT_FLAG).any():
        lines.append(
            f"  * the median moved by {SHIFT_FLAG:g} or more of the fit's 95% interval width: "
            "that quantity depends on the prior's scale."
        )
    return lines
