"""Figures of the HTML report, drawn on :class:`matplotlib.figure.Figure` objects.

No function here uses ``pyplot`` or selects a matplotlib backend: a bare ``Figure`` draws
itself into SVG or PNG on demand, so the report runs the same with or without a display.
Every plot function takes keyword-only arguments, takes tables (or arrays) rather than a
fit, and returns the figure; :func:`figure_data_uri` turns one into a ``data:`` URI that an
``<img>`` of a self-contained page can show.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesct.constants import CI_PROB, GROUP_LABELS, PERIOD_LABELS

#: Fonts and lines of every report figure (readable on a laptop screen and on paper).
STYLE: dict[str, object] = {
    "font.size": 10.0,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "path",  # text as outlines: the figure needs no font on the reader's machine
    "svg.hashsalt": "bayesct",  # the same figure gives the same SVG text
}

#: Colour of each outcome group in the figures.
GROUP_COLOURS: dict[str, str] = {"survivor": "#2166ac", "nonsurvivor": "#b2182b"}

#: Families of posterior predictive statistics that are p-values (drawn on a log scale).
P_VALUE_FAMILIES: frozenset[str] = frozenset({"ct_mw_p", "mixed_p"})


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(cast(Any, STYLE)):
        yield


def figure_data_uri(fig: Figure, *, fmt: str = "svg") -> str:
    """The figure as a ``data:`` URI (SVG by default, or PNG), for an ``<img>`` of a self-contained page."""
    buf = io.BytesIO()
    with _style():
        if fmt == "svg":
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
            mime = "image/svg+xml"
        elif fmt == "png":
            fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
            mime = "image/png"
        else:
            raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot_ct_by_period(
    *,
    observed: pd.DataFrame,
    bands: pd.DataFrame | None = None,
    ci_prob: float = CI_PROB,
    title: str = "Mean CT score by period and outcome",
) -> Figure:
    """Observed mean CT score per period and outcome group, against posterior predictive bands.

    Parameters
    ----------
    observed
        One row per (period, group): ``period`` (a label of :data:`PERIOD_LABELS`), ``group``
        (``survivor`` / ``nonsurvivor``), ``mean`` (NaN where the group has no scan).
    bands
        Optional, the same keys with ``lo``, ``median``, ``hi``: the central ``ci_prob``
        interval of the mean over replicated cohorts.
    ci_prob
        Probability of the bands (for the legend).
    title
        Axes title.
    """
    with _style():
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        ax = fig.add_subplot()
        periods = [p for p in PERIOD_LABELS if p in set(observed["period"])]
        x = np.arange(len(periods), dtype=float)
        for offset, group in zip((-0.12, 0.12), (GROUP_LABELS[0], GROUP_LABELS[1]), strict=True):
            colour = GROUP_COLOURS[group]
            obs = observed.loc[observed["group"] == group].set_index("period").reindex(periods)
            if bands is not None and len(bands):
                b = bands.loc[bands["group"] == group].set_index("period").reindex(periods)
                lo = b["lo"].to_numpy(float)
                hi = b["hi"].to_numpy(float)
                med = b["median"].to_numpy(float)
                ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0)
                ax.plot(x, med, color=colour, linewidth=1.2, linestyle="--")
                ax.vlines(x + offset, lo, hi, color=colour, linewidth=3.0, alpha=0.5)
            ax.plot(
                x + offset,
                obs["mean"].to_numpy(float),
                marker="o",
                linestyle="none",
                color=colour,
                markeredgecolor="black",
                markersize=6,
                label=f"{group}s, observed mean",
            )
        if bands is not None and len(bands):
            ax.plot([], [], color="grey", linewidth=6, alpha=0.35, label=f"replicated, {ci_prob:.0%} band")
        ax.set_xticks(x, [f"{p}" for p in periods])
        ax.set_xlabel("days since symptom onset (period)")
        ax.set_ylabel("mean CT score (0-24)")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False)
    return fig


def plot_ppc_intervals(
    *,
    statistics: pd.DataFrame,
    labels: Mapping[str, str],
    ci_prob: float = CI_PROB,
) -> Figure:
    """Observed statistic against the central interval of its replicates, one panel per family.

    Parameters
    ----------
    statistics
        The posterior predictive check's statistics: ``key``, ``name`` (the family),
        ``observed``, ``rep_lo``, ``rep_median``, ``rep_hi``.
    labels
        Statistic key -> the label printed beside its row; family name -> panel title.
    ci_prob
        Probability of the intervals (for the axis label).

    P-value families (:data:`P_VALUE_FAMILIES`) are drawn on a log scale.
    """
    families = list(dict.fromkeys(str(n) for n in statistics["name"]))
    heights = [max(1, int((statistics["name"] == f).sum())) for f in families]
    with _style():
        fig = Figure(figsize=(8.0, 1.2 + 0.34 * sum(heights) + 0.6 * len(families)), layout="constrained")
        axes = fig.subplots(len(families), 1, squeeze=False, height_ratios=[h + 1.4 for h in heights])[:, 0]
        for ax, family in zip(axes, families, strict=True):
            rows = statistics.loc[statistics["name"] == family].reset_index(drop=True)
            y = np.arange(len(rows), dtype=float)[::-1]
            lo, med, hi = (rows[c].to_numpy(float) for c in ("rep_lo", "rep_median", "rep_hi"))
            obs = rows["observed"].to_numpy(float)
            log = family in P_VALUE_FAMILIES
            if log:
                floor = 1e-12
                lo, med, hi, obs = (np.clip(v, floor, None) for v in (lo, med, hi, obs))
                ax.set_xscale("log")
            ax.hlines(y, lo, hi, color="#888888", linewidth=5, alpha=0.6, label=f"replicated {ci_prob:.0%}")
            ax.plot(med, y, "|", color="#333333", markersize=10, label="replicated median")
            ax.plot(obs, y, "o", color="#b2182b", markeredgecolor="black", label="observed")
            if log:
                ax.axvline(0.05, color="#555555", linestyle=":", linewidth=1)
            ax.set_yticks(y, [labels.get(str(k), str(k)) for k in rows["key"]])
            ax.set_ylim(-0.7, len(rows) - 0.3)
            ax.set_title(labels.get(family, family), loc="left")
            ax.set_xlabel("p-value (log scale)" if log else "value of the statistic")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside upper center", ncols=3, frameon=False)
    return fig


def _ranks(draws: np.ndarray) -> np.ndarray:
    """Ranks (1..N) of all draws of a (chain, draw) array, pooled over chains (ties averaged)."""
    flat = draws.ravel()
    order = np.argsort(flat, kind="stable")
    ranks = np.empty(flat.size, dtype=float)
    ranks[order] = np.arange(1, flat.size + 1, dtype=float)
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if counts.size < flat.size:  # average the ranks of tied values
        sums = np.bincount(inverse, weights=ranks)
        ranks = sums[inverse] / counts[inverse]
    return ranks.reshape(draws.shape)


def plot_chains(
    *,
    draws: Mapping[str, np.ndarray],
    ess_bulk: Mapping[str, float] | None = None,
    bins: int = 20,
) -> Figure:
    """Trace and rank plots of a few parameters, one row each.

    Parameters
    ----------
    draws
        Parameter label -> ``(chain, draw)`` array of its draws.
    ess_bulk
        Parameter label -> bulk ESS, printed in the row's title.
    bins
        Rank histogram bins per chain.

    Left: the trace of every chain. Right (with two chains or more): each chain's histogram
    of the pooled ranks of its draws; chains that mix well give flat, overlapping histograms.
    """
    names = list(draws)
    n = max(len(names), 1)
    multi = any(np.asarray(draws[k]).shape[0] > 1 for k in names)
    with _style():
        fig = Figure(figsize=(8.0, 1.9 * n + 0.4), layout="constrained")
        axes = fig.subplots(n, 2 if multi else 1, squeeze=False)
        for row, name in enumerate(names):
            d = np.atleast_2d(np.asarray(draws[name], dtype=float))
            chains, length = d.shape
            ax = axes[row, 0]
            for c in range(chains):
                ax.plot(np.arange(length), d[c], linewidth=0.5, alpha=0.8, label=f"chain {c + 1}")
            ess = (ess_bulk or {}).get(name)
            suffix = f" (bulk ESS {round(ess)})" if ess is not None and math.isfinite(ess) else ""
            ax.set_title(f"{name}{suffix}", loc="left")
            ax.set_xlabel("draw")
            ax.set_ylabel("value")
            if multi:
                ax = axes[row, 1]
                r = _ranks(d)
                edges = np.linspace(0.5, r.size + 0.5, bins + 1)
                for c in range(chains):
                    counts, _ = np.histogram(r[c], bins=edges)
                    ax.stairs(counts, edges, baseline=None, linewidth=1.2, label=f"chain {c + 1}")
                ax.axhline(length / bins, color="black", linestyle=":", linewidth=1, label="uniform")
                ax.set_title("ranks per chain", loc="left")
                ax.set_xlabel("rank of the draw among all chains")
                ax.set_ylabel("draws per bin")
                ax.set_ylim(bottom=0)
        if multi and names:
            handles, labels = axes[0, 1].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6), frameon=False)
    return fig


def plot_odds_ratios(
    *,
    table: pd.DataFrame,
    ci_prob: float = CI_PROB,
    title: str = "Mortality submodel: odds ratios",
) -> Figure:
    """Forest plot of odds ratios (log scale): ``label``, ``median``, ``lo``, ``hi`` per row."""
    rows = table.reset_index(drop=True)
    with _style():
        fig = Figure(figsize=(6.4, 0.9 + 0.45 * max(len(rows), 1)), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(len(rows), dtype=float)[::-1]
        ax.hlines(y, rows["lo"], rows["hi"], color="#2166ac", linewidth=3)
        ax.plot(rows["median"], y, "o", color="#2166ac", markeredgecolor="black")
        ax.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yticks(y, [str(v) for v in rows["label"]])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(f"odds ratio of death, median and {ci_prob:.0%} credible interval (log scale)")
        ax.set_title(title, loc="left")
    return fig
