"""The demo report: one markdown file over a folder of results.

Reads what the stages wrote (``fit/``, ``classical/``, ``check/``, ``risk/``) and
states every estimate as ``median [95% CrI]``. A fit that missed a convergence
gate is announced at the top, before any number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayesct.constants import CI_PROB
from bayesct.report.format import fmt_estimate, mortality_association_lines

if TYPE_CHECKING:
    from bayesct.modeling.fit import FitResult

_HEADLINE = [
    "severity_sd",
    "severity_rho",
    "severity_skew",
    "loading_lab",
    "mort_intercept",
    "mort_beta",
    "mort_gamma",
    "mort_assoc_sd",
    "re_cov_stds",
    "patient_sd",
    "coef_per_unit",
    "ct_phi",
]


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _true(value: Any) -> bool:
    """A flag read back from JSON: True only for a true boolean (None / NaN: not judged)."""
    return bool(pd.notna(value) and value)


def _share(value: Any) -> str:
    return "no valid replicate" if value is None or pd.isna(value) else f"{float(value):.0%}"


def fit_section(fit_dir: Path, fit: FitResult | None = None) -> list[str]:
    from bayesct.modeling.fit import FitResult

    result = fit if fit is not None else FitResult.load(fit_dir)
    diag = result.diagnostics
    lines = [f"## Model `{result.spec.name}`", "", result.spec.description, ""]
    if result.cohort.outcome_note is not None:
        lines += [f"Note: {result.cohort.outcome_note}.", ""]
    if not diag.passed:
        lines += ["> **WARNING — convergence gates failed.** The numbers below are not reliable.", ""]
        lines += [f"> - {f}" for f in diag.failures] + [""]
    lines += [diag.message().splitlines()[0], ""]
    names = [v for v in _HEADLINE if v in result.posterior]
    summ = result.summary(names)
    table = pd.DataFrame(
        {
            "parameter": summ["parameter"],
            f"median [{CI_PROB:.0%} CrI]": [
                fmt_estimate(m, lo, hi, decimals=2)
                for m, lo, hi in zip(summ["median"], summ["lo"], summ["hi"], strict=True)
            ],
            "ESS bulk": summ["ess_bulk"].round(0).astype(int),
            "R-hat": summ["r_hat"].round(3),
        }
    )
    lines += [_md_table(table), ""]
    assoc = mortality_association_lines(result.posterior)
    if assoc:
        head, *notes = assoc
        label, value = head.rsplit(": ", 1)
        lines += [f"**{label[0].upper() + label[1:]}: {value}**", ""]
        lines += [n[0].upper() + n[1:] for n in notes] + [""]
    if result.spec.family == "joint" and result.spec.mortality:
        from bayesct.checks.sensitivity import mortality_prior_sensitivity

        sens = mortality_prior_sensitivity(result).reset_index()
        lines += [
            "Prior sensitivity of the mortality part (power-scaling, Kallioinen et al. 2024: how far "
            "the posterior moves when the prior or the deaths' likelihood is raised to a power near 1; "
            "0.05 or more moves it):",
            "",
            _md_table(sens.rename(columns={"likelihood": "deaths"})),
            "",
        ]
    lines += [
        "Priors (from the spec):",
        "",
        "```",
        result.spec.describe_priors(),
        "```",
        "",
    ]
    return lines


def write_report(out: str | Path, *, fit: FitResult | None = None) -> Path:
    """Write ``out/report.md`` from the stage folders present under ``out``.

    Parameters
    ----------
    out
        The results folder: any of ``fit/`` (as :meth:`FitResult.save` writes it), ``classical/``,
        ``check/`` (:meth:`~bayesct.checks.ppc.PPCResult.write`) and ``risk/risk_grid.csv``
        (:func:`~bayesct.risk.write_risk_grid`); the sections of the stages present are written.
    fit
        The fit saved in ``out/fit``, when it is at hand: saves reading it back.

    Returns
    -------
    pathlib.Path
        ``out/report.md``.

    Examples
    --------
    >>> from bayesct.report.markdown import write_report
    >>> write_report("bayesct-demo")  # doctest: +SKIP
    PosixPath('bayesct-demo/report.md')
    """
    out = Path(out)
    lines = ["# bayesct report", ""]
    if fit is not None or (out / "fit").is_dir():
        lines += fit_section(out / "fit", fit)
    cls = out / "classical" / "summary.md"
    if cls.is_file():
        lines += [
            "## The paper's frequentist tables on this cohort",
            "",
            f"See `{cls.relative_to(out)}` for all tables.",
            "",
        ]
    ppc = out / "check" / "ppc.json"
    if ppc.is_file():
        data = json.loads(ppc.read_text())
        stats = pd.DataFrame(data.get("statistics", []))
        finds = pd.DataFrame(data.get("findings", []))
        meta = data.get("meta", {})
        lines += ["## Posterior predictive checks (the paper's tests on replicated cohorts)", ""]
        if meta.get("levels"):
            lines += [f"Levels: {meta['levels']}.", ""]
        if len(stats):
            if "outside" in stats.columns:
                outside = int(stats["outside"].fillna(False).astype(bool).sum())
            else:
                outside = int(
                    ((stats["observed"] < stats["rep_lo"]) | (stats["observed"] > stats["rep_hi"])).sum()
                )
            within = int(data.get("n_within_mc") or 0)
            lines += [
                f"{outside} of {len(stats)} statistics fall outside their central "
                f"{CI_PROB:.0%} predictive interval, clear of Monte Carlo error; {within} more only "
                "by the point estimate, within Monte Carlo error. Each ppp = P(T_rep >= T_obs) is "
                "given ± its Monte Carlo standard error, from n valid replicates. Flag rule: "
                f"{meta.get('outside', 'see ppc.json')}.",
                "",
            ]
            show = stats[
                [
                    c
                    for c in (
                        "name",
                        "period",
                        "marker",
                        "term",
                        "level",
                        "observed",
                        "rep_median",
                        "rep_lo",
                        "rep_hi",
                        "ppp",
                        "n_valid",
                    )
                    if c in stats.columns
                ]
            ].copy()
            for c in ("observed", "rep_median", "rep_lo", "rep_hi"):
                show[c] = show[c].map(lambda v: f"{v:.3g}" if pd.notna(v) else "")
            if "ppp_mcse" in stats.columns:
                show["ppp"] = [
                    f"{p:.3f} ± {se:.3f}" if pd.notna(p) else ""
                    for p, se in zip(stats["ppp"], stats["ppp_mcse"], strict=True)
                ]
            else:
                show["ppp"] = show["ppp"].map(lambda v: f"{v:.3g}" if pd.notna(v) else "")
            if "outside" in stats.columns:
                beyond = stats.get("beyond_interval", stats["outside"])
                show["flag"] = [
                    "outside" if _true(o) else ("within MC error" if _true(b) else "")
                    for o, b in zip(stats["outside"], beyond, strict=True)
                ]
            if "n_replicates" in stats.columns:
                show["n_valid"] = [
                    f"{v}/{n}" for v, n in zip(stats["n_valid"], stats["n_replicates"], strict=True)
                ]
            lines += [_md_table(show.fillna("")), ""]
        if len(finds):
            lines += ["Paper findings reproduced (share of replicates):", ""]
            levels = finds["level"] if "level" in finds.columns else [""] * len(finds)
            lines += [
                f"- {fid}: {_share(share)}" + (f" (level {lvl})" if lvl else "")
                for fid, share, lvl in zip(finds["finding"], finds["reproduced_share"], levels, strict=True)
            ] + [""]
        figs = sorted((out / "check").rglob("*.png"))  # the check writes its figures under figures/
        lines += [f"![{f.stem}]({f.relative_to(out)})" for f in figs[:6]] + [""]
    grid = out / "risk" / "risk_grid.csv"
    if grid.is_file():
        g = pd.read_csv(grid)
        lines += [
            "## Risk of death by CT score and day (Table 3 counterpart)",
            "",
            f"Posterior median [{CI_PROB:.0%} CrI] for a new patient with one scan.",
            "",
        ]
        g["estimate"] = [
            fmt_estimate(m, lo, hi, percent=True, decimals=1)
            for m, lo, hi in zip(g["median"], g["lo"], g["hi"], strict=True)
        ]
        wide = g.pivot(index="ct_score", columns="day", values="estimate")
        wide.columns = [f"day {d:g}" for d in wide.columns]
        lines += [_md_table(wide.reset_index()), ""]
        png = grid.with_suffix(".png")
        if png.is_file():
            lines += [f"![risk grid]({png.relative_to(out)})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
