"""The demo report: one markdown file over a folder of results.

Reads what the stages wrote (``fit/``, ``classical/``, ``check/``, ``risk/``) and
states every estimate as ``median [95% CrI]``. A fit that missed a convergence
gate is announced at the top, before any number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bayesct.constants import CI_PROB
from bayesct.report.format import fmt_estimate, mortality_association_lines

_HEADLINE = [
    "severity_sd",
    "severity_rho",
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


def fit_section(fit_dir: Path) -> list[str]:
    from bayesct.modeling.fit import FitResult

    result = FitResult.load(fit_dir)
    diag = result.diagnostics
    lines = [f"## Model `{result.spec.name}`", "", result.spec.description, ""]
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
    lines += [
        "Priors (from the spec):",
        "",
        "```",
        result.spec.describe_priors(),
        "```",
        "",
    ]
    return lines


def write_report(out: Path) -> Path:
    """Write ``out/report.md`` from the stage folders present under ``out``."""
    lines = ["# bayesct report", ""]
    if (out / "fit").is_dir():
        lines += fit_section(out / "fit")
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
        lines += ["## Posterior predictive checks (the paper's tests on replicated cohorts)", ""]
        if len(stats):
            outside = ((stats["observed"] < stats["rep_lo"]) | (stats["observed"] > stats["rep_hi"])).sum()
            lines += [
                f"{outside} of {len(stats)} statistics fall outside their central "
                f"{CI_PROB:.0%} predictive interval.",
                "",
            ]
            show = stats[
                [
                    c
                    for c in ("name", "period", "marker", "observed", "rep_median", "rep_lo", "rep_hi", "ppp")
                    if c in stats.columns
                ]
            ].copy()
            for c in ("observed", "rep_median", "rep_lo", "rep_hi", "ppp"):
                show[c] = show[c].map(lambda v: f"{v:.3g}" if pd.notna(v) else "")
            lines += [_md_table(show.fillna("")), ""]
        if len(finds):
            lines += ["Paper findings reproduced (share of replicates):", ""]
            lines += [f"- {r.finding}: {r.reproduced_share:.0%}" for r in finds.itertuples()] + [""]
        figs = sorted((out / "check").glob("*.png"))
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
