"""Figures of the posterior predictive checks (matplotlib, Agg backend).

Every function takes keyword-only arguments and returns the :class:`matplotlib.figure.Figure`;
:func:`write_figures` saves them all for a :class:`~bayesct.checks.ppc.PPCResult`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesct.constants import CI_PROB
from bayesct.data.labs import marker_label

if TYPE_CHECKING:
    from bayesct.checks.calibration import MortalityCalibration
    from bayesct.checks.ppc import PPCResult

_TITLES = {
    "ct_mw_p": "CT score by outcome per period: Mann-Whitney p",
    "ct_auc": "CT score by outcome per period: P(non-survivor scan scores higher)",
    "kendall_tau": "Kendall tau-b of CT score with each lab",
    "logistic_coef": "Per-scan logistic regression died ~ ct_score + day",
    "mixed_p": "Mixed model: group x period Wald p",
    "n_deaths": "Number of deaths",
}


def _label(row: pd.Series) -> str:
    for col in ("period", "marker", "term"):
        v = row.get(col, "")
        if isinstance(v, str) and v:
            return marker_label(v) if col == "marker" else (f"days {v}" if col == "period" else v)
    return str(row["name"])


def plot_statistic(
    *, statistics: pd.DataFrame, replicated: pd.DataFrame, name: str, ci_prob: float = CI_PROB
) -> Figure:
    """Observed against replicated for every statistic of one family (one panel each).

    Each panel: histogram of the valid replicated values, their central ``ci_prob`` interval
    (shaded), the observed value (red line), the posterior predictive p-value with its Monte
    Carlo standard error, the number of valid replicates and the replication level.
    """
    rows = statistics.loc[statistics["name"] == name]
    n = max(len(rows), 1)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, (_, r) in zip(axes.flat, rows.iterrows(), strict=False):
        vals = replicated[r["key"]].to_numpy(dtype=float) if r["key"] in replicated else np.array([])
        vals = vals[~np.isnan(vals)]
        if vals.size:
            ax.hist(vals, bins=min(30, max(5, vals.size // 5)), color="0.7", edgecolor="white")
            if math.isfinite(r["rep_lo"]):
                ax.axvspan(r["rep_lo"], r["rep_hi"], color="tab:blue", alpha=0.12, lw=0)
        else:
            ax.text(0.5, 0.5, "no valid replicate", ha="center", va="center", transform=ax.transAxes)
        if math.isfinite(r["observed"]):
            ax.axvline(r["observed"], color="tab:red", lw=2)
        ppp = "NA" if not math.isfinite(r["ppp"]) else f"{r['ppp']:.2f}"
        mcse = r.get("ppp_mcse", math.nan)
        if math.isfinite(r["ppp"]) and isinstance(mcse, float) and math.isfinite(mcse):
            ppp += f" ± {mcse:.2f}"
        level = f", {r['level']}" if isinstance(r.get("level"), str) and r.get("level") else ""
        ax.set_title(f"{_label(r)}\nppp {ppp}, n={r['n_valid']}{level}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(rows) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{_TITLES.get(name, name)}: replicated (grey, {100 * ci_prob:.0f}% interval shaded) vs observed (red)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_ppp(*, statistics: pd.DataFrame, ci_prob: float = CI_PROB) -> Figure:
    """Overview: each statistic's observed value as a quantile of its replicates (the ppp).

    Each ppp is drawn with its Monte Carlo interval (``ppp_mc_lo``, ``ppp_mc_hi``) when the table
    has one; red: outside clear of Monte Carlo error, orange: beyond the interval by the point
    estimate only, blue: inside.
    """
    rows = statistics.loc[np.isfinite(statistics["ppp"].to_numpy(dtype=float))]
    fig, ax = plt.subplots(figsize=(6, 0.22 * max(len(rows), 4) + 1))
    y = np.arange(len(rows))[::-1]
    lo = (1 - ci_prob) / 2
    outside = rows["outside"].fillna(False).astype(bool).to_numpy()
    beyond = (
        rows["beyond_interval"].fillna(False).astype(bool).to_numpy()
        if "beyond_interval" in rows
        else outside
    )
    colors = np.where(outside, "tab:red", np.where(beyond, "tab:orange", "tab:blue"))
    ax.axvspan(0, lo, color="tab:red", alpha=0.1, lw=0)
    ax.axvspan(1 - lo, 1, color="tab:red", alpha=0.1, lw=0)
    ppp = rows["ppp"].to_numpy(dtype=float)
    if {"ppp_mc_lo", "ppp_mc_hi"} <= set(rows.columns):
        err = [
            np.clip(ppp - rows["ppp_mc_lo"].to_numpy(dtype=float), 0, None),
            np.clip(rows["ppp_mc_hi"].to_numpy(dtype=float) - ppp, 0, None),
        ]
        ax.errorbar(ppp, y, xerr=err, fmt="none", ecolor="0.6", elinewidth=1, zorder=2)
    ax.scatter(ppp, y, c=colors, s=14, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels(rows["key"], fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ppp = P(T_rep >= T_obs), with its Monte Carlo interval")
    ax.set_title(
        f"Posterior predictive p-values (shaded: outside the central {100 * ci_prob:.0f}%)\n"
        "red: outside clear of Monte Carlo error, orange: only within it",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_findings(*, findings: pd.DataFrame) -> Figure:
    """Share of replicates reproducing each of the paper's findings (observed verdict marked)."""
    fig, ax = plt.subplots(figsize=(6, 0.3 * max(len(findings), 4) + 1))
    y = np.arange(len(findings))[::-1]
    share = findings["reproduced_share"].to_numpy(dtype=float)
    ax.barh(y, np.nan_to_num(share), color="tab:blue", alpha=0.7)
    obs = findings["observed_reproduced"]
    for yi, o in zip(y, obs, strict=True):
        mark = "NA" if pd.isna(o) else ("obs: yes" if bool(o) else "obs: no")
        ax.text(1.01, yi, mark, va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(findings["finding"], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of replicates reproducing the finding")
    ax.set_title("The paper's findings in replicated cohorts", fontsize=9)
    fig.tight_layout()
    return fig


def plot_calibration(*, calibration: MortalityCalibration) -> Figure:
    """Binned predicted (LOO) vs observed mortality, with intervals on both."""
    b = calibration.bins
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
    ax.errorbar(
        b["predicted"],
        b["observed_rate"],
        yerr=[
            np.clip(b["observed_rate"] - b["observed_lo"], 0, None),
            np.clip(b["observed_hi"] - b["observed_rate"], 0, None),
        ],
        xerr=[
            np.clip(b["predicted"] - b["predicted_lo"], 0, None),
            np.clip(b["predicted_hi"] - b["predicted"], 0, None),
        ],
        fmt="o",
        color="tab:blue",
        capsize=3,
    )
    for _, r in b.iterrows():
        ax.annotate(
            f"{r['deaths']}/{r['n']}",
            (r["predicted"], r["observed_rate"]),
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(death), leave-one-patient-out")
    ax.set_ylabel("observed death rate")
    pct = f"{100 * calibration.ci_prob:.0f}%"
    ax.set_title(f"Mortality calibration ({pct} intervals)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_pit(*, pit: pd.DataFrame, column: str = "loo_pit") -> Figure:
    """Histogram of the (LOO-)PIT values per marker; uniform when the model is calibrated."""
    markers = list(dict.fromkeys(pit["marker"]))
    n = max(len(markers), 1)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 2.4 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, markers, strict=False):
        vals = pit.loc[pit["marker"] == m, column].to_numpy(dtype=float)
        ax.hist(vals, bins=10, range=(0, 1), color="tab:blue", alpha=0.7, edgecolor="white")
        ax.axhline(vals.size / 10, color="tab:red", lw=1)
        ax.set_title(f"{marker_label(m)} (n={vals.size})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(markers) :]:
        ax.set_visible(False)
    fig.suptitle(f"{'LOO-PIT' if column == 'loo_pit' else 'PIT'} per marker (red: uniform)", fontsize=9)
    fig.tight_layout()
    return fig


def write_figures(result: PPCResult, out_dir: str | Path, *, dpi: int = 90) -> list[Path]:
    """Save every figure of ``result`` as PNG under ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        p = out / name
        fig.savefig(p, dpi=dpi)
        plt.close(fig)
        paths.append(p)

    ci = result.ci_prob
    for name in dict.fromkeys(result.statistics["name"]):
        save(
            plot_statistic(
                statistics=result.statistics, replicated=result.replicated, name=str(name), ci_prob=ci
            ),
            f"ppc_{name}.png",
        )
    save(plot_ppp(statistics=result.statistics, ci_prob=ci), "ppc_overview.png")
    save(plot_findings(findings=result.findings), "ppc_findings.png")
    if result.pit is not None:
        save(plot_pit(pit=result.pit), "loo_pit.png")
    if result.calibration is not None:
        save(plot_calibration(calibration=result.calibration), "calibration.png")
    return paths
