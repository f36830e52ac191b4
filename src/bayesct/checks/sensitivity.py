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
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayesct.errors import SpecError
from bayesct.likelihoods import death_loglik
from bayesct.modeling.posterior import PosteriorModel
from bayesct.modeling.spec import Prior

__all__ = ["MORTALITY_PRIORS", "SENSITIVITY_THRESHOLD", "mortality_prior_sensitivity"]

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
