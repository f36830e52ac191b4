"""Convergence gates (R-hat, bulk and tail ESS, divergences, E-BFMI) and posterior summaries.

The gates are computed here for every sampler, because PyMC's own warnings do not run on
the nutpie path. A fit that misses a gate is reported loudly, with the gate and advice,
everywhere it is shown. :func:`posterior_summary` is the table behind
:meth:`~bayesct.modeling.fit.FitResult.summary` (median, central interval, ESS, R-hat,
MCSE per scalar); :mod:`bayesct.report.format` prints it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesct.constants import CI_PROB, GATE_BFMI_MIN, GATE_ESS_MIN, GATE_RHAT_MAX
from bayesct.errors import ConvergenceWarning
from bayesct.modeling.mcmc_stats import diagnose_dataset


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary of one fit (``diagnostics.json``)."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    bfmi_min: float
    passed: bool
    sampler: str
    draws: int
    chains: int
    wall_seconds: float
    #: the worst scalar of each gate (rhat, ess_bulk, ess_tail), named as the summaries name it
    worst: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnostics:
        """From :meth:`to_dict`'s dict, or ``diagnostics.json``, where a non-finite value is ``null``."""
        keys = cls.__dataclass_fields__
        floats = ("rhat_max", "ess_bulk_min", "ess_tail_min", "bfmi_min", "wall_seconds")
        out = {k: v for k, v in d.items() if k in keys}
        out |= {k: float("nan") for k in floats if k in out and out[k] is None}
        return cls(**out)

    def message(self) -> str:
        """One paragraph: the gate values, and for a failed fit the gates missed and what to do."""
        head = (
            f"R-hat max {self.rhat_max:.3f}, bulk ESS min {self.ess_bulk_min:.0f}, "
            f"tail ESS min {self.ess_tail_min:.0f}, divergences {self.divergences}, "
            f"E-BFMI min {self.bfmi_min:.2f} ({self.chains} chains x {self.draws} draws, {self.sampler}, "
            f"{self.wall_seconds:.1f} s)"
        )
        if self.passed:
            return f"Convergence gates passed: {head}."
        return "CONVERGENCE GATES FAILED: " + head + ".\n" + "\n".join(f"  - {f}" for f in self.failures)


def interval(draws: np.ndarray, ci_prob: float = CI_PROB) -> tuple[float, float, float]:
    """Median and central (equal-tailed) ``ci_prob`` interval of a 1-D sample: ``(median, lo, hi)``
    (the one statement of it: the risk answers and every printed ``median [95% CrI]``)."""
    d = np.asarray(draws, dtype=float).ravel()
    lo, med, hi = np.quantile(d, [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2])
    return float(med), float(lo), float(hi)


#: A fit is run again with more draws (``JointModel.fit(extend=True)``, the default when the
#: draws are the spec's) at most this many times the draws asked for.
EXTEND_CAP: float = 4.0
#: R-hat up to which a missed R-hat gate counts as a near miss that more draws can close.
EXTEND_RHAT_MAX: float = 1.03


def extended_draws(diag: Diagnostics, draws: int, cap: float = EXTEND_CAP) -> int | None:
    """Draws per chain that should close the ESS gates a fit of ``draws`` per chain missed, or None.

    Only a fit whose every failed gate more draws can close is extended: bulk or tail ESS short
    (ESS grows about linearly with the draws, so the new count is ``draws x 1.25 x 400 / ESS``,
    rounded up to a hundred), or R-hat missed narrowly (at most :data:`EXTEND_RHAT_MAX`; then at
    least twice the draws). Divergences, a low E-BFMI, non-finite draws or a clear R-hat failure
    (another mode) are not fixed by more draws: None, as when the count would exceed ``cap x draws``.
    """
    if diag.passed or diag.divergences > 0 or not diag.bfmi_min >= GATE_BFMI_MIN:
        return None
    if not (np.isfinite(diag.rhat_max) and diag.rhat_max <= EXTEND_RHAT_MAX):
        return None
    ess = min(diag.ess_bulk_min, diag.ess_tail_min)
    if not (np.isfinite(ess) and ess > 0):
        return None
    factor = max(1.25 * GATE_ESS_MIN / ess, 2.0 if diag.rhat_max > GATE_RHAT_MAX else 1.0)
    new = int(np.ceil(draws * factor / 100.0) * 100)
    return new if draws < new <= cap * draws else None


def _min_over(ds: xr.Dataset) -> tuple[float, str]:
    """The smallest value over every variable and where: NaN when none is a number (nothing passes)."""
    best, where = np.inf, ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float)
        if vals.size == 0 or np.all(np.isnan(vals)):
            continue
        v = float(np.nanmin(vals))
        if v < best:
            best, where = v, str(name)
    return (best if where else float("nan")), where


#: Posterior variables the summaries show under other names: an LKJ covariance's packed
#: Cholesky factor and its parts (``severity_sd`` is ``severity_cov_stds`` by effect name).
SHOWN_AS: dict[str, str] = {
    "severity_cov": "severity_sd, severity_rho",
    "severity_cov_stds": "severity_sd",
    "severity_cov_corr": "severity_rho",
    "re_cov": "re_cov_stds, re_cov_corr",
}


def gate_label(stat: xr.Dataset, var: str, *, largest: bool) -> str:
    """The scalar of ``var`` where ``stat`` (one gate statistic per scalar) is worst, named as the
    posterior summary (:func:`posterior_summary`) names it: ``name[coord, ...]``.

    A variable the summaries show under other names (:data:`SHOWN_AS`) is named by those, with
    the stored scalar after them: ``severity_sd, severity_rho (stored as severity_cov[1])``.
    """
    if not var or var not in stat:
        return var
    da = stat[var]
    vals = np.asarray(da.values, dtype=float)
    label = var
    if vals.ndim and vals.size and not np.all(np.isnan(vals)):
        at = np.unravel_index(int(np.nanargmax(vals) if largest else np.nanargmin(vals)), vals.shape)
        parts = [str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(da.dims, at, strict=True)]
        label = f"{var}[{', '.join(parts)}]"
    if var in SHOWN_AS:
        return f"{SHOWN_AS[var]} (stored as {label})"
    return label


def _max_over(ds: xr.Dataset) -> tuple[float, str]:
    best, where = -np.inf, ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float)
        if vals.size == 0 or np.all(np.isnan(vals)):
            continue
        v = float(np.nanmax(vals))
        if v > best:
            best, where = v, str(name)
    return (best if where else float("nan")), where


NONFINITE_ADVICE = "the run was interrupted or the log-density overflowed; refit"


def nonfinite_draws(posterior: xr.Dataset) -> dict[str, int]:
    """The number of non-finite (NaN or infinite) draws of each floating-point variable that has any."""
    counts: dict[str, int] = {}
    for name, da in posterior.data_vars.items():
        if da.dtype.kind in "fc":
            n = int(da.size - np.count_nonzero(np.isfinite(da.values)))
            if n:
                counts[str(name)] = n
    return counts


def nonfinite_summary(counts: dict[str, int], *, shown: int = 5) -> str:
    """``counts`` of :func:`nonfinite_draws` in words: ``non-finite draws in a (400), b (12)``."""
    where = ", ".join(f"{name} ({n})" for name, n in list(counts.items())[:shown])
    more = f" and {len(counts) - shown} more variables" if len(counts) > shown else ""
    return f"non-finite draws in {where}{more}"


def gate_variables(posterior: xr.Dataset) -> list[str]:
    """The posterior variables the gates are judged on: every stored variable but raw non-centred z's."""
    return [str(v) for v in posterior.data_vars if not str(v).endswith("_z")]


def compute_diagnostics(
    posterior: xr.Dataset,
    sample_stats: xr.Dataset | None,
    *,
    sampler: str,
    wall_seconds: float,
) -> Diagnostics:
    """Judge a posterior against the gates (R-hat <= 1.01, ESS >= 400, 0 divergences, E-BFMI >= 0.3).

    R-hat is the rank-normalised split R-hat and the ESS are bulk and tail (5% and 95%
    quantiles) ESS of Vehtari et al. (2021), over every scalar of the gated variables
    (:mod:`bayesct.modeling.mcmc_stats`). A non-finite draw of any variable, no draws, or
    fewer than 4 per chain fail one gate of their own instead, with its own advice.
    """
    post = posterior[gate_variables(posterior)]
    chains = int(post.sizes["chain"])
    draws = int(post.sizes["draw"])
    nonfinite = nonfinite_draws(posterior)
    # Draws that are not all numbers (an interrupted run's, or an overflowed log-density's)
    # fail one gate of their own: the other gates mean nothing on them, and their advice
    # (reparameterise, run longer) would mislead.
    blocking = (
        f"{nonfinite_summary(nonfinite)}: {NONFINITE_ADVICE}."
        if nonfinite
        else "no posterior draws: the run was interrupted; refit."
        if draws == 0
        else f"{draws} draws per chain are too few for R-hat and ESS: increase --draws."
        if draws < 4
        else ""
    )
    nan = float("nan")
    rhat_max, rhat_var, ess_bulk, bulk_var, ess_tail, tail_var = nan, "", nan, "", nan, ""
    stats: dict[str, xr.Dataset] = {}
    if not blocking:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = diagnose_dataset(post)
            rhat_max, rhat_var = _max_over(stats["rhat"]) if chains > 1 else (nan, "")
            ess_bulk, bulk_var = _min_over(stats["ess_bulk"])
            ess_tail, tail_var = _min_over(stats["ess_tail"])
    # Each gate names its worst scalar as the posterior summary does (gate_label).
    rhat_at = gate_label(stats["rhat"], rhat_var, largest=True) if rhat_var else ""
    bulk_at = gate_label(stats["ess_bulk"], bulk_var, largest=False) if bulk_var else ""
    tail_at = gate_label(stats["ess_tail"], tail_var, largest=False) if tail_var else ""
    divergences = 0
    bfmi_min = float("nan")
    if sample_stats is not None:
        for key in ("diverging", "divergences"):
            if key in sample_stats:
                divergences = int(np.nansum(np.asarray(sample_stats[key].values, dtype=float)))
                break
        if "energy" in sample_stats:
            energy = np.asarray(sample_stats["energy"].values, dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                bfmi_min = float(np.min(_bfmi(energy))) if energy.size else float("nan")
    failures: list[str] = [blocking] if blocking else []
    if not blocking and chains < 2:
        failures.append("R-hat needs at least 2 chains: run with --chains 4.")
    elif not blocking and not rhat_max <= GATE_RHAT_MAX:
        odd = odd_chains(post, stats["rhat"], rhat_var)
        failures.append(
            f"R-hat {rhat_max:.3f} > {GATE_RHAT_MAX} (worst: {rhat_at}): chains disagree; "
            + (odd or "run longer (--tune, --draws) or more chains.")
        )
    if not blocking and not ess_bulk >= GATE_ESS_MIN:
        failures.append(
            f"bulk ESS {ess_bulk:.0f} < {GATE_ESS_MIN:.0f} (worst: {bulk_at}): increase --draws or --chains."
        )
    if not blocking and not ess_tail >= GATE_ESS_MIN:
        failures.append(
            f"tail ESS {ess_tail:.0f} < {GATE_ESS_MIN:.0f} (worst: {tail_at}): increase --draws or --chains."
        )
    if not blocking and divergences > 0:
        failures.append(
            f"{divergences} divergent transitions: the posterior has regions the sampler cannot explore; "
            "consider a simpler random-effects structure or tighter priors; do not trust the numbers."
        )
    if not blocking and not bfmi_min >= GATE_BFMI_MIN:
        failures.append(
            f"E-BFMI {bfmi_min:.2f} < {GATE_BFMI_MIN}: poor energy exploration (heavy tails or funnels); "
            "reparameterise or tighten scale priors."
        )
    return Diagnostics(
        rhat_max=float(rhat_max),
        ess_bulk_min=float(ess_bulk),
        ess_tail_min=float(ess_tail),
        divergences=divergences,
        bfmi_min=bfmi_min,
        passed=not failures,
        sampler=sampler,
        draws=draws,
        chains=chains,
        wall_seconds=float(wall_seconds),
        worst={"rhat": rhat_at, "ess_bulk": bulk_at, "ess_tail": tail_at},
        failures=failures,
    )


def odd_chains(post: xr.Dataset, rhat: xr.Dataset, var: str) -> str:
    """Which chains sit apart from the others on the worst-R-hat scalar of ``var``, in words.

    A chain is apart when its median lies outside the central 95% of the other chains'
    draws pooled: a chain in another mode, whose draws mixed into the rest would give a
    posterior of two modes. Empty when no single chain stands apart (slow mixing rather
    than another mode).
    """
    if var not in post or var not in rhat:
        return ""
    r = np.asarray(rhat[var].values, dtype=float)
    if r.size == 0 or np.all(np.isnan(r)):
        return ""
    at = np.unravel_index(int(np.nanargmax(r)), r.shape) if r.ndim else ()
    da = post[var]
    rest = [d for d in da.dims if d not in ("chain", "draw")]
    sel = {d: int(i) for d, i in zip(rest, at, strict=True)}
    draws = np.asarray(da.isel(sel).transpose("chain", "draw").values, dtype=float)
    label = var + (
        "[" + ", ".join(str(da[d].values[i]) if d in da.coords else str(i) for d, i in sel.items()) + "]"
        if sel
        else ""
    )
    medians = np.median(draws, axis=1)
    apart = []
    for c in range(draws.shape[0]):
        others = np.delete(draws, c, axis=0).ravel()
        lo, hi = np.quantile(others, [0.025, 0.975])
        if not lo <= medians[c] <= hi:
            apart.append(c)
    if not apart or len(apart) * 2 >= draws.shape[0]:
        return ""
    kept = np.delete(draws, apart, axis=0)
    which = ", ".join(str(c + 1) for c in apart)
    noun = "chain" if len(apart) == 1 else "chains"
    verb = "sits" if len(apart) == 1 else "sit"
    return (
        f"{noun} {which} of {draws.shape[0]} {verb} apart from the others on {label} (median "
        + ", ".join(f"{medians[c]:.3g}" for c in apart)
        + f" against {np.median(kept):.3g}): another mode, which the posterior mixes in; "
        "do not use these numbers. Rerun with another --seed or a longer --tune."
    )


def _bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from an energy array (chain, draw)."""
    energy = np.atleast_2d(energy)
    num = np.square(np.diff(energy, axis=1)).mean(axis=1)
    den = np.var(energy, axis=1)
    return num / den


def warn_if_failed(diag: Diagnostics) -> None:
    """Emit a :class:`ConvergenceWarning` for a fit that missed a gate."""
    if not diag.passed:
        warnings.warn(diag.message(), ConvergenceWarning, stacklevel=3)


# -- posterior summaries ----------------------------------------------------------------------------
#: The parameters a fit's summary shows first, where the model has them (the CLI and the report).
HEADLINE_PARAMETERS: tuple[str, ...] = (
    "severity_sd",
    "severity_rho",
    "severity_skew",
    "re_cov_stds",
    "loading_lab",
    "specific_sd",
    "noise_sd",
    "ct_phi",
    "mort_intercept",
    "mort_beta",
    "mort_gamma",
    "mort_assoc_sd",
    "patient_sd",
    "coef_per_unit",
)


def posterior_summary(
    post: xr.Dataset, *, var_names: Sequence[str] | None = None, ci_prob: float = CI_PROB
) -> pd.DataFrame:
    """One row per scalar parameter: median, central interval, ESS (bulk, tail), R-hat, MCSE."""
    names = list(var_names) if var_names else [str(v) for v in post.data_vars if not str(v).endswith("_z")]
    sub = post[names]
    q = sub.quantile([(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2], dim=("chain", "draw"))
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant entries (a correlation's diagonal)
        diag = diagnose_dataset(sub)
        ess_b, ess_t = diag["ess_bulk"], diag["ess_tail"]
        rhat = diag["rhat"] if sub.sizes.get("chain", 1) > 1 else None
        mcse = az.mcse(sub, method="median")
    rows = []
    for name in names:
        da = q[name]
        other = [d for d in da.dims if d != "quantile"]
        stacked = da.stack(_i=other) if other else da.expand_dims(_i=[0])
        for j in range(stacked.sizes["_i"]):
            sel = stacked.isel(_i=j)
            label = name
            if other:
                idx = stacked["_i"].values[j]
                idx = idx if isinstance(idx, tuple) else (idx,)
                label = f"{name}[{', '.join(str(x) for x in idx)}]"
                loc = dict(zip(other, idx, strict=True))
            else:
                loc = {}
            lo, med, hi = (float(x) for x in sel.values)
            rows.append(
                {
                    "parameter": label,
                    "median": med,
                    "lo": lo,
                    "hi": hi,
                    "mcse_median": float(mcse[name].sel(loc).values),
                    "ess_bulk": float(ess_b[name].sel(loc).values),
                    "ess_tail": float(ess_t[name].sel(loc).values),
                    "r_hat": float(rhat[name].sel(loc).values) if rhat is not None else float("nan"),
                }
            )
    out = drop_redundant_correlations(pd.DataFrame(rows))
    out.attrs["ci_prob"] = ci_prob
    return out


_CORR = re.compile(r".*_corr\[(?P<a>[^,\]]+), (?P<b>[^\]]+)\]$")


def drop_redundant_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Keep each correlation once: drop a correlation matrix's diagonal and lower triangle."""
    if table.empty:
        return table
    order: dict[str, int] = {}

    def keep(label: str) -> bool:
        m = _CORR.match(label)
        if m is None:
            return True
        a, b = m.group("a"), m.group("b")
        for x in (a, b):
            order.setdefault(x, len(order))
        return order[a] < order[b]

    return table[[keep(str(p)) for p in table["parameter"]]].reset_index(drop=True)


# -- odds ratios in user units -----------------------------------------------------------------------
def mortality_odds_ratios(post: xr.Dataset, design: Any | None, *, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The mortality coefficients as odds ratios of death in user units, one row each.

    ``parameter`` (the coefficient as :func:`posterior_summary` names it), ``effect`` (a short
    label), ``unit`` (what one step of the odds ratio is), ``median``, ``lo``, ``hi`` (of the
    odds ratio's draws, central ``ci_prob`` interval) and ``scaling`` (how the model's
    coefficient maps to it):

    * ``mort_assoc_sd``: per SD, across patients, of the patient's trajectory term (``mort_gamma``
      times the patient's level and slope effects), signed as the CT score's level;
    * ``mort_beta[age]``: per 10 years; the model's coefficient is per ``scale`` years of
      ``(age - centre) / scale``, the centre and scale of the design
      (:func:`~bayesct.modeling.design.covariate_matrix`: the spec's ``[mortality.scaling]``,
      else the cohort's mean and SD), so the odds ratio is ``exp(beta * 10 / scale)``;
    * ``mort_beta[male]``: male against female (an indicator, not scaled);
    * any other covariate: per its scale;
    * ``coef_per_unit[...]`` (the per-scan model): per CT point, per day.

    ``design`` (a :class:`~bayesct.modeling.design.Design`) gives the covariates' names and
    scaling; without it the ``mort_beta`` rows are left out. Empty when there is nothing to show.
    """
    q = [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2]
    rows: list[dict[str, Any]] = []

    def add(parameter: str, effect: str, unit: str, log_or: Any, scaling: str) -> None:
        draws = np.exp(np.asarray(log_or, dtype=float).ravel())
        lo, med, hi = (float(x) for x in np.quantile(draws, q))
        rows.append(
            {
                "parameter": parameter,
                "effect": effect,
                "unit": unit,
                "median": med,
                "lo": lo,
                "hi": hi,
                "scaling": scaling,
            }
        )

    if "mort_assoc_sd" in post:
        add(
            "mort_assoc_sd",
            "CT trajectory, per SD",
            "per SD of the patient's CT trajectory term",
            post["mort_assoc_sd"].values,
            "mort_assoc_sd is already per SD across patients of mort_gamma times the patient's "
            "severity level and slope (signed as the level)",
        )
    if "mort_beta" in post and design is not None and len(design.covariate_names):
        beta = post["mort_beta"]
        dim = next((d for d in beta.dims if d not in ("chain", "draw")), None)
        spec_scaling = getattr(design.spec, "covariate_scaling", {}) or {}
        for j, name in enumerate(design.covariate_names):
            draws = np.asarray(beta.isel({dim: j}).values if dim is not None else beta.values, dtype=float)
            centre, scale = float(design.covariate_centre[j]), float(design.covariate_scale[j])
            source = "spec [mortality.scaling]" if name in spec_scaling else "the cohort's mean and SD"
            label = f"mort_beta[{name}]"
            if name == "male":
                add(
                    label,
                    "male vs female",
                    "male against female",
                    draws,
                    "the indicator male (1 male, 0 female)",
                )
            elif name == "age":
                add(
                    label,
                    "age, per 10 years",
                    "per 10 years of age",
                    draws * 10.0 / scale,
                    f"age enters as (age - {centre:g}) / {scale:g} ({source}): mort_beta[age] is per "
                    f"{scale:g} years, the odds ratio exp(mort_beta[age] x 10 / {scale:g})",
                )
            else:
                add(
                    label,
                    f"{name}, per {scale:g}",
                    f"per {scale:g} of {name}",
                    draws,
                    f"{name} enters as ({name} - {centre:g}) / {scale:g} ({source})",
                )
    if "coef_per_unit" in post:
        c = post["coef_per_unit"]
        dim = next((d for d in c.dims if d not in ("chain", "draw")), None)
        terms = [str(v) for v in c[dim].values] if dim is not None and dim in c.coords else []
        for j, term in enumerate(terms):
            if term == "intercept":
                continue
            effect = {"ct_score": "CT score, per point", "day": "day since onset, per day"}.get(term, term)
            add(
                f"coef_per_unit[{term}]",
                effect,
                f"per unit of {term}",
                c.isel({dim: j}).values,
                "coef_per_unit is mort_beta divided by the term's scale",
            )
    out = pd.DataFrame(rows, columns=["parameter", "effect", "unit", "median", "lo", "hi", "scaling"])
    out.attrs["ci_prob"] = ci_prob
    return out
