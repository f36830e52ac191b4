"""All classical tables at once, the paper's findings, and their CSV / markdown output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bayesct.classical._common import ALPHA, NOTE_ATTR, format_p
from bayesct.classical.baseline import admission_labs, baseline
from bayesct.classical.correlation import kendall
from bayesct.classical.mixed import mixed_model
from bayesct.classical.mortality import mortality_grid, mortality_logistic
from bayesct.classical.periods import period_comparison
from bayesct.constants import PERIOD_LABELS
from bayesct.data.cohort import Cohort
from bayesct.data.labs import marker_label

#: Keys of :func:`run_all` in output order; each is written as ``<key>.csv``.
TABLE_KEYS: tuple[str, ...] = (
    "baseline",
    "admission",
    "period_comparison",
    "mixed_model",
    "mortality_logistic",
    "mortality_grid",
    "kendall",
)

_TITLES = {
    "baseline": "Table 1 - baseline characteristics",
    "admission": "Table 2 - labs on admission",
    "period_comparison": "Supp. S3 / Fig 2 - CT score by period",
    "mixed_model": "Supp. S4 - linear mixed models (Wald tests)",
    "mortality_logistic": "Table 3 - per-scan logistic regression",
    "mortality_grid": "Table 3 - mortality probability by CT score and day",
    "kendall": "Table 4 - Kendall tau-b of CT score with labs",
}

#: Kendall tau-b the paper reports (Table 4); the sign is the finding checked.
PAPER_TAU: dict[str, float] = {
    "nlr": 0.228,
    "lymphocyte_pct": -0.218,
    "lymphocyte_count": -0.294,
    "neutrophil_pct": 0.264,
    "d_dimer": 0.445,
    "ldh": 0.477,
    "esr": 0.473,
}

#: The CT-score p-value the paper reports for the first period (0-5 days).
PAPER_PERIOD1_P = 0.412


def run_all(cohort: Cohort) -> dict[str, pd.DataFrame]:
    """Every classical table of the paper on one cohort.

    Parameters
    ----------
    cohort
        The cohort.

    Returns
    -------
    dict of str to pandas.DataFrame
        Keys ``baseline, admission, period_comparison, mixed_model,
        mortality_logistic, mortality_grid, kendall``.

    Examples
    --------
    >>> import bayesct as bc
    >>> tables = bc.classical_tables(bc.load_default_cohort())  # doctest: +SKIP
    >>> tables["period_comparison"]  # doctest: +SKIP
    """
    return {
        "baseline": baseline(cohort),
        "admission": admission_labs(cohort),
        "period_comparison": period_comparison(cohort),
        "mixed_model": mixed_model(cohort),
        "mortality_logistic": mortality_logistic(cohort),
        "mortality_grid": mortality_grid(cohort),
        "kendall": kendall(cohort),
    }


def _p_phrase(p: float) -> str:
    text = format_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _na_bool(value: bool | None) -> object:
    return pd.NA if value is None else bool(value)


def findings(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Whether the cohort shows each qualitative finding of the paper.

    Parameters
    ----------
    tables
        Output of :func:`run_all` (only ``period_comparison``, ``kendall`` and
        ``mortality_logistic`` are used; missing ones give NA findings).

    Returns
    -------
    pandas.DataFrame
        One row per finding: ``finding`` (an id such as ``period_0-5_no_difference``,
        ``period_6-10_difference``, ``tau_sign_ldh``, ``ct_coef_positive``,
        ``day_coef_negative``), ``paper`` (what the paper reports), ``observed``
        (the value here), ``p_value``, ``reproduced`` (boolean, NA when it cannot
        be assessed) and ``sentence`` (one readable sentence).
    """
    rows: list[dict[str, object]] = []
    pc = tables.get("period_comparison")
    for label in PERIOD_LABELS:
        p = math.nan
        if pc is not None and (pc["period"] == label).any():
            p = float(pc.loc[pc["period"] == label, "p_value"].iloc[0])
        first = label == PERIOD_LABELS[0]
        ok: bool | None = None if math.isnan(p) else (p >= ALPHA if first else p < ALPHA)
        if first:
            fid, paper = f"period_{label}_no_difference", f"no CT difference in days {label} (p = 0.412)"
            verdict = {True: "shows it", False: "does not show it", None: "cannot assess it"}[ok]
            sentence = (
                f"No CT-score difference between survivors and non-survivors in days {label} "
                f"(paper p = {PAPER_PERIOD1_P}): this cohort {verdict} (Mann-Whitney {_p_phrase(p)})."
            )
        else:
            fid, paper = (
                f"period_{label}_difference",
                f"CT higher in non-survivors in days {label} (p < 0.01)",
            )
            verdict = {True: "shows it", False: "does not show it", None: "cannot assess it"}[ok]
            sentence = (
                f"CT score differs between survivors and non-survivors in days {label} "
                f"(paper p < 0.01): this cohort {verdict} (Mann-Whitney {_p_phrase(p)})."
            )
        rows.append(
            {
                "finding": fid,
                "paper": paper,
                "observed": p,
                "p_value": p,
                "reproduced": _na_bool(ok),
                "sentence": sentence,
            }
        )
    kd = tables.get("kendall")
    for lab, paper_tau in PAPER_TAU.items():
        tau = p = math.nan
        if kd is not None and (kd["marker"] == lab).any():
            hit = kd.loc[kd["marker"] == lab].iloc[0]
            tau, p = float(hit["tau"]), float(hit["p_value"])
        name = marker_label(lab)
        sign = "positive" if paper_tau > 0 else "negative"
        if math.isnan(tau):
            ok = None
            sentence = f"{name}: the paper's {sign} Kendall tau ({paper_tau:+.3f}) cannot be assessed here (lab absent or too few pairs)."
        else:
            ok = bool(np.sign(tau) == np.sign(paper_tau))
            sentence = (
                f"{name}: the paper's {sign} Kendall tau ({paper_tau:+.3f}) is "
                f"{'reproduced' if ok else 'not reproduced'} (tau = {tau:+.3f}, {_p_phrase(p)})."
            )
        rows.append(
            {
                "finding": f"tau_sign_{lab}",
                "paper": f"tau = {paper_tau:+.3f}, p < 0.01",
                "observed": tau,
                "p_value": p,
                "reproduced": _na_bool(ok),
                "sentence": sentence,
            }
        )
    ml = tables.get("mortality_logistic")
    # The day finding was the paper's significant test: its sign alone, at a large p, does not
    # reproduce it (p < ALPHA, as the period tests). The CT score's is judged by its sign.
    for term, fid, want, text, significant in (
        ("ct_score", "ct_coef_positive", 1.0, "mortality rises with the CT score (coefficient > 0)", False),
        (
            "day",
            "day_coef_negative",
            -1.0,
            f"the same CT score is less lethal later (day coefficient < 0, p < {ALPHA:g})",
            True,
        ),
    ):
        coef = p = math.nan
        if ml is not None and (ml["term"] == term).any():
            hit = ml.loc[ml["term"] == term].iloc[0]
            coef, p = float(hit["coef"]), float(hit["p_value"])
        ok = None if math.isnan(coef) else bool(np.sign(coef) == want)
        if ok and significant:
            ok = None if math.isnan(p) else bool(p < ALPHA)
        verdict = {
            True: "shows it",
            False: "does not show it"
            + (
                f" (the sign, but not significant at {ALPHA:g})"
                if significant and np.sign(coef) == want
                else ""
            ),
            None: "cannot assess it (no usable logistic fit)",
        }[ok]
        sentence = f"Per-scan logistic regression, {text}: this cohort {verdict} (coef = {coef:.3f}, {_p_phrase(p)})."
        rows.append(
            {
                "finding": fid,
                "paper": text,
                "observed": coef,
                "p_value": p,
                "reproduced": _na_bool(ok),
                "sentence": sentence,
            }
        )
    out = pd.DataFrame(rows)
    out["reproduced"] = out["reproduced"].astype("boolean")
    return out


def _cell(value: object, column: str) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]
        return "" if "p_value" not in column else "NA"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if "p_value" in column or column.startswith("shapiro_p"):
            return format_p(float(value))
        v = float(value)
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.3g}" if abs(v) >= 1000 or abs(v) < 0.01 else f"{v:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A GitHub-flavoured markdown table of a frame, p-values formatted as in the paper.

    Parameters
    ----------
    frame
        Any frame.
    columns
        Columns to show (default all).

    Returns
    -------
    str
        The table (no trailing newline); ``"(empty)"`` for a frame without rows.
    """
    cols = list(frame.columns) if columns is None else [c for c in columns if c in frame.columns]
    if frame.empty or not cols:
        return "(empty)"
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for values in frame[cols].itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, c) for v, c in zip(values, cols, strict=True)) + " |")
    return "\n".join(lines)


_SHOW: dict[str, list[str]] = {
    "baseline": ["variable", "level", "all", "survivors", "nonsurvivors", "test", "p_method", "p_value"],
    "admission": [
        "marker",
        "summary",
        "all",
        "survivors",
        "nonsurvivors",
        "test",
        "p_value",
        "t_p_value",
        "mw_p_value",
    ],
    "period_comparison": [
        "period",
        "n_survivors",
        "mean_survivors",
        "sd_survivors",
        "median_survivors",
        "n_nonsurvivors",
        "mean_nonsurvivors",
        "sd_nonsurvivors",
        "median_nonsurvivors",
        "p_value",
        "mean_day_survivors",
        "mean_day_nonsurvivors",
        "day_p_value",
        "note",
    ],
    "mixed_model": [
        "marker",
        "scale",
        "term",
        "statistic",
        "df",
        "p_value",
        "n_obs",
        "n_patients",
        "converged",
        "note",
    ],
    "mortality_logistic": [
        "term",
        "coef",
        "se",
        "z",
        "p_value",
        "odds_ratio",
        "or_ci_low",
        "or_ci_high",
        "note",
    ],
    "kendall": ["marker", "tau", "p_value", "n"],
}


def _grid_markdown(grid: pd.DataFrame) -> str:
    if grid.empty:
        return "(empty)"
    labels = list(dict.fromkeys(grid["period"]))
    days = grid.groupby("period", sort=False)["day"].first()
    header = ["CT score", *[f"{lab} (day {days[lab]:.1f})" for lab in labels]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for score, block in grid.groupby("ct_score", sort=True):
        cells = []
        for lab in labels:
            hit = block.loc[block["period"] == lab]
            if hit.empty or pd.isna(hit["probability"].iloc[0]):
                cells.append("NA")
            else:
                r = hit.iloc[0]
                cells.append(
                    f"{100 * r['probability']:.1f}% ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f}) {r['band']}"
                )
        lines.append(f"| {float(score):g} | " + " | ".join(cells) + " |")  # type: ignore[arg-type]
    note = str(grid["note"].iloc[0]) if "note" in grid and grid["note"].iloc[0] else ""
    return "\n".join(lines) + (f"\n\nNote: {note}" if note else "")


def summary_markdown(tables: dict[str, pd.DataFrame], *, title: str = "bayesct classical tables") -> str:
    """A readable markdown report: the paper's findings, then every table.

    Parameters
    ----------
    tables
        Output of :func:`run_all`.
    title
        First-level heading.

    Returns
    -------
    str
        Markdown text.
    """
    parts = [f"# {title}", "", "## The paper's findings in this cohort", ""]
    parts += [f"- {s}" for s in findings(tables)["sentence"]]
    for key in TABLE_KEYS:
        if key not in tables:
            continue
        parts += ["", f"## {_TITLES[key]}", ""]
        if key == "mortality_grid":
            parts.append(_grid_markdown(tables[key]))
        else:
            parts.append(markdown_table(tables[key], _SHOW.get(key)))
        if tables[key].attrs.get(NOTE_ATTR):
            parts += ["", f"Note: {tables[key].attrs[NOTE_ATTR]}."]
    return "\n".join(parts) + "\n"


def write_tables(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, *, title: str = "bayesct classical tables"
) -> list[Path]:
    """Write each table as CSV and a markdown summary.

    Parameters
    ----------
    tables
        Output of :func:`run_all`.
    out_dir
        Directory (created if needed).
    title
        Heading of ``summary.md``.

    Returns
    -------
    list of pathlib.Path
        The files written: ``<key>.csv`` per table present, then ``summary.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for key in TABLE_KEYS:
        if key in tables:
            path = out / f"{key}.csv"
            tables[key].to_csv(path, index=False)
            written.append(path)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(tables, title=title), encoding="utf-8")
    written.append(summary)
    return written
