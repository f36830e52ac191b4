"""The HTML report: one self-contained page over a fit, its check and its risk grid.

:func:`render_html_report` returns the page as a string and :func:`write_html_report`
writes it (``bayesct report FITDIR [--check CHECKDIR] [--grid GRID.csv] --out FILE.html``).
The page carries everything it shows: figures are SVG ``data:`` URIs, the styles are
inline, it runs no script and its Content-Security-Policy forbids any request that is not
a ``data:`` image, so it opens the same offline, from an e-mail or from a shared folder,
and prints. Every value from the data, the spec or the check enters through Jinja2 with
autoescaping on, so a patient id or a label that holds markup is printed as text.

What it shows, in order: a warning banner when the fit missed a convergence gate, with the
gates; the fit (model, cohort, seed, data fingerprint, sampler); the cohort and the paper's
frequentist tables recomputed on it (:mod:`bayesct.classical`); their Bayesian counterparts
(the mean CT score by period and outcome against posterior predictive bands, the mortality
association as an odds ratio per SD and the covariates' odds ratios in user units); the
Table 3 risk grid as a heat map; the posterior predictive checks (every statistic under a
readable name, its PPP with its Monte Carlo error, the share of replicates reproducing each
of the paper's findings, PSIS-LOO with its Pareto-k caveat, calibration and landmark
tables); trace and rank plots of the slowest-mixing parameters; the priors and the spec;
the software versions. A section whose input was not given says so in one line.
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import math
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesct.constants import (
    CI_PROB,
    CT,
    DIED,
    GATE_BFMI_MIN,
    GATE_ESS_MIN,
    GATE_RHAT_MAX,
    GROUP_LABELS,
    PERIOD_LABELS,
    RISK_BANDS,
)
from bayesct.data.labs import marker_label
from bayesct.errors import BayesctError
from bayesct.report.format import fmt_estimate

if TYPE_CHECKING:
    from bayesct.checks.ppc import PPCResult
    from bayesct.modeling.fit import FitResult

# -- risk formatting and colours -------------------------------------------------------------------------

#: Below this probability a risk prints as "<0.5%" rather than a rounded 0.
RISK_FLOOR: float = 0.005

#: Upper edges of the risk grid's colour bands: the paper's Table 3 bands (5%, 30%, 50%).
RISK_EDGES: tuple[float, ...] = (0.0, *(b[2] for b in RISK_BANDS[:-1]), 1.0)

#: Background colour of each band, lowest risk first: green -> yellow -> orange -> red. (The
#: paper draws its top band blue; here the colours run one way, green to red, as risk rises.)
RISK_COLOURS: tuple[str, ...] = ("#1a9850", "#fee08b", "#fc8d59", "#d73027")

#: Text colour on each band (contrast with its background).
RISK_TEXT: tuple[str, ...] = ("#ffffff", "#000000", "#000000", "#ffffff")


def fmt_risk(p: float) -> str:
    """A probability of death as a percentage: ``"<0.5%"`` below 0.5%, else one decimal (``"12.3%"``)."""
    if p is None or not math.isfinite(float(p)):
        return "NA"
    if p < RISK_FLOOR:
        return "<0.5%"
    return f"{100 * float(p):.1f}%"


def fmt_risk_interval(median: float, lo: float, hi: float) -> str:
    """``median [lo, hi]`` of a risk, each as :func:`fmt_risk` prints it."""
    return f"{fmt_risk(median)} [{fmt_risk(lo)}, {fmt_risk(hi)}]"


def risk_band_index(p: float) -> int:
    """Index of the colour band of a probability in :data:`RISK_COLOURS` (0: lowest risk); -1 for NaN."""
    if p is None or not math.isfinite(float(p)):
        return -1
    for i in range(len(RISK_COLOURS)):
        if p < RISK_EDGES[i + 1]:
            return i
    return len(RISK_COLOURS) - 1


def risk_colour(p: float) -> tuple[str, str]:
    """(background, text) colour of a cell with risk ``p``; grey for NaN."""
    i = risk_band_index(p)
    if i < 0:
        return "#dddddd", "#000000"
    return RISK_COLOURS[i], RISK_TEXT[i]


def colour_hue(colour: str) -> float:
    """Hue in degrees (0 red, 120 green) of a ``#rrggbb`` colour."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 360.0 * colorsys.rgb_to_hls(r, g, b)[0]


def risk_legend() -> list[tuple[str, str, str]]:
    """(label, background, text colour) of each band, lowest risk first."""
    out = []
    for i, (bg, fg) in enumerate(zip(RISK_COLOURS, RISK_TEXT, strict=True)):
        lo, hi = RISK_EDGES[i], RISK_EDGES[i + 1]
        if lo <= 0.0:
            label = f"below {100 * hi:g}%"
        elif hi >= 1.0:
            label = f"{100 * lo:g}% or more"
        else:
            label = f"{100 * lo:g}% to {100 * hi:g}%"
        out.append((label, bg, fg))
    return out


# -- the page's building blocks ---------------------------------------------------------------------------


@dataclass
class Cell:
    """One table cell: its text, an optional tooltip, CSS class and colours (all escaped on output)."""

    text: str
    title: str = ""
    cls: str = ""
    bg: str = ""
    fg: str = ""


@dataclass
class Table:
    """A table of the page: header, rows of cells, optional caption and note."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    note: str = ""
    cls: str = ""


@dataclass
class FigureBlock:
    """A figure of the page: its ``data:`` URI, alternative text and caption."""

    uri: str
    alt: str
    caption: str = ""


@dataclass
class Section:
    """One section: an id (the anchor), a title, paragraphs, tables, figures and preformatted text.

    ``absent`` holds the one line printed instead when the section's input was not given.
    """

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureBlock] = field(default_factory=list)
    pre: list[tuple[str, str]] = field(default_factory=list)  # (heading, text)
    notes: list[str] = field(default_factory=list)
    absent: str = ""
    parts: list[Section] = field(default_factory=list)
    definition: tuple[str, str, str] | None = None  # (term, expansion, rest of the sentence)


def _num(value: Any, *, digits: int = 3) -> str:
    """A number for a table: integers as integers, others to ``digits`` significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "NA"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def _count(value: Any) -> str:
    """A count, printed as an integer."""
    if value is None:
        return "NA"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(round(v)) if math.isfinite(v) else "NA"


def _day(value: Any) -> str:
    """A day since onset: whole days as integers, others to one decimal."""
    v = float(value)
    return f"{v:.0f}" if v == round(v) else f"{v:.1f}"


def _p(value: Any) -> str:
    from bayesct.classical import format_p

    try:
        return format_p(float(value))
    except (TypeError, ValueError):
        return "NA"


def _f(value: Any) -> float:
    """A float of a table value; NaN for a missing or non-numeric one."""
    try:
        return math.nan if _is_na(value) else float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: Any, spec: str) -> str:
    """A number formatted by ``spec``; ``"NA"`` where it is missing (JSON writes NaN as null)."""
    v = _f(value)
    return format(v, spec) if math.isfinite(v) else "NA"


def _is_na(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# -- inputs ----------------------------------------------------------------------------------------------


@dataclass
class CheckTables:
    """What the report reads of a posterior predictive check, from a :class:`PPCResult` or its folder."""

    statistics: pd.DataFrame
    findings: pd.DataFrame
    meta: dict[str, Any]
    converged: bool = True
    loo: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    landmarks: pd.DataFrame | None = None
    pit: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    comparisons: dict[str, pd.DataFrame] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_result(cls, result: PPCResult) -> CheckTables:
        cal = result.calibration.to_dict() if result.calibration is not None else None
        return cls(
            statistics=result.statistics,
            findings=result.findings,
            meta=dict(result.meta),
            converged=bool(result.converged),
            loo=result.loo,
            calibration=cal,
            landmarks=result.landmarks,
            pit=result.pit_summary,
            comparison=result.comparison,
            comparisons=dict(result.comparisons),
            source="posterior predictive check (in memory)",
        )

    @classmethod
    def from_dir(cls, path: str | Path) -> CheckTables:
        """Read ``ppc.json`` of a folder written by ``bayesct check``."""
        d = Path(path)
        file = d / "ppc.json"
        if not file.is_file():
            raise BayesctError(f"{d} is not a check folder written by 'bayesct check' (no ppc.json)")
        data = json.loads(file.read_text(encoding="utf-8"))

        def frame(key: str) -> pd.DataFrame | None:
            rows = data.get(key)
            return None if rows is None else pd.DataFrame(rows)

        stats = frame("statistics")
        finds = frame("findings")
        return cls(
            statistics=stats if stats is not None else pd.DataFrame(),
            findings=finds if finds is not None else pd.DataFrame(),
            meta=dict(data.get("meta") or {}),
            converged=bool(data.get("converged", True)),
            loo=data.get("loo"),
            calibration=data.get("calibration"),
            landmarks=frame("landmarks"),
            pit=frame("pit"),
            comparison=frame("comparison"),
            comparisons={k: pd.DataFrame(v) for k, v in (data.get("comparisons") or {}).items() if v},
            source=str(d),
        )


def _load_fit(fit: FitResult | str | Path) -> FitResult:
    if isinstance(fit, str | Path):
        from bayesct.modeling.fit import FitResult

        return FitResult.load(fit)
    return fit


def _load_check(check: PPCResult | CheckTables | str | Path | None) -> CheckTables | None:
    if check is None or isinstance(check, CheckTables):
        return check
    if isinstance(check, str | Path):
        return CheckTables.from_dir(check)
    return CheckTables.from_result(check)


def _load_grid(grid: pd.DataFrame | str | Path | None) -> tuple[pd.DataFrame | None, str]:
    if grid is None:
        return None, ""
    if isinstance(grid, pd.DataFrame):
        return grid, "risk grid (in memory)"
    path = Path(grid)
    if not path.is_file():
        raise BayesctError(f"risk grid {path} does not exist")
    table = pd.read_csv(path, dtype={"period": str})
    for col in ("ct_score", "median", "lo", "hi"):
        if col not in table.columns:
            raise BayesctError(f"{path} is not a risk grid written by 'bayesct risk --grid' (no '{col}')")
    if "day" not in table.columns and "period" not in table.columns:
        raise BayesctError(f"{path} is not a risk grid written by 'bayesct risk --grid' (no day or period)")
    return table, str(path)


# -- labels ----------------------------------------------------------------------------------------------

#: Title of each family of posterior predictive statistics.
FAMILY_TITLES: dict[str, str] = {
    "ct_mw_p": "CT score of survivors against non-survivors, per period: Mann-Whitney p",
    "ct_auc": "CT score per period: probability that a non-survivor's scan scores higher",
    "kendall_tau": "Kendall tau-b of the CT score with each lab",
    "logistic_coef": "Per-scan logistic regression of death on CT score and day: coefficients",
    "mixed_p": "Linear mixed model per marker: p of the outcome group x period interaction",
    "n_deaths": "Number of deaths",
}

#: Panel titles of the posterior predictive figure (short, to fit above each panel).
FAMILY_SHORT: dict[str, str] = {
    "ct_mw_p": "Mann-Whitney p of the CT score by outcome",
    "ct_auc": "P(a non-survivor's scan scores higher)",
    "kendall_tau": "Kendall tau-b of the CT score with each lab",
    "logistic_coef": "Per-scan logistic regression, coefficients",
    "mixed_p": "Mixed models: group x period p",
    "n_deaths": "Number of deaths",
}

_TERMS = {
    "intercept": "intercept",
    "ct_score": "CT score (per point)",
    "day": "day since onset (per day)",
    "age": "age",
    "male": "male sex",
    "sex": "male sex",
}


def _marker(m: str) -> str:
    return marker_label(m)


def _split_key(key: str) -> tuple[str, str]:
    if "[" in key and key.endswith("]"):
        name, index = key[:-1].split("[", 1)
        return name, index
    return key, ""


def statistic_label(key: str) -> str:
    """A readable name of a posterior predictive statistic key such as ``ct_mw_p[0-5]``."""
    name, index = _split_key(str(key))
    if name == "ct_mw_p":
        return f"CT score, survivors vs non-survivors, days {index}: Mann-Whitney p"
    if name == "ct_auc":
        return f"CT score, days {index}: P(a non-survivor's scan scores higher)"
    if name == "kendall_tau":
        return f"Kendall tau-b, CT score with {_marker(index)}"
    if name == "logistic_coef":
        return f"Per-scan logistic regression, coefficient of {_TERMS.get(index, index)}"
    if name == "mixed_p":
        return f"Mixed model, {_marker(index)}: group x period p"
    if name == "n_deaths":
        return "Number of deaths"
    return str(key)


def statistic_short_label(key: str) -> str:
    """The row label of a statistic within its family's figure panel."""
    name, index = _split_key(str(key))
    if name in ("ct_mw_p", "ct_auc"):
        return f"days {index}"
    if name in ("kendall_tau", "mixed_p"):
        return _marker(index)
    if name == "logistic_coef":
        return _TERMS.get(index, index)
    return statistic_label(key)


def finding_label(finding: str) -> str:
    """A readable statement of one of the paper's findings, from its id (``tau_sign_ldh`` ...)."""
    from bayesct.classical import PAPER_TAU

    f = str(finding)
    if f.startswith("period_") and f.endswith("_no_difference"):
        return f"No CT-score difference between survivors and non-survivors in days {f[7:-14]}"
    if f.startswith("period_") and f.endswith("_difference"):
        return f"CT score higher in non-survivors in days {f[7:-11]}"
    if f.startswith("tau_sign_"):
        lab = f[9:]
        tau = PAPER_TAU.get(lab)
        sign = "" if tau is None else (" positive" if tau > 0 else " negative")
        return f"Kendall tau of the CT score with {_marker(lab)} is{sign or ' of the paper sign'}"
    if f == "ct_coef_positive":
        return "Per-scan logistic regression: the risk of death rises with the CT score"
    if f == "day_coef_negative":
        return "Per-scan logistic regression: the same CT score is less lethal later"
    return f


# -- sections --------------------------------------------------------------------------------------------


def _gates(fit: FitResult) -> Table:
    d = fit.diagnostics
    chains_ok = d.chains >= 2
    worst = d.worst or {}

    def row(gate: str, value: str, threshold: str, ok: bool, where: str = "") -> list[Cell]:
        return [
            Cell(gate),
            Cell(value, cls="num"),
            Cell(threshold),
            Cell("passed" if ok else "FAILED", cls="pass" if ok else "fail"),
            Cell(where),
        ]

    rows = [
        row("chains", _count(d.chains), "2 or more", chains_ok),
        row(
            "R-hat, largest",
            f"{d.rhat_max:.3f}" if math.isfinite(d.rhat_max) else "NA",
            f"at most {GATE_RHAT_MAX}",
            chains_ok and d.rhat_max <= GATE_RHAT_MAX,
            worst.get("rhat", ""),
        ),
        row(
            "bulk ESS, smallest",
            _count(d.ess_bulk_min),
            f"at least {GATE_ESS_MIN:.0f}",
            d.ess_bulk_min >= GATE_ESS_MIN,
            worst.get("ess_bulk", ""),
        ),
        row(
            "tail ESS, smallest",
            _count(d.ess_tail_min),
            f"at least {GATE_ESS_MIN:.0f}",
            d.ess_tail_min >= GATE_ESS_MIN,
            worst.get("ess_tail", ""),
        ),
        row("divergent transitions", _count(d.divergences), "0", d.divergences == 0),
        row(
            "E-BFMI, smallest chain",
            f"{d.bfmi_min:.2f}" if math.isfinite(d.bfmi_min) else "NA",
            f"at least {GATE_BFMI_MIN}",
            d.bfmi_min >= GATE_BFMI_MIN,
        ),
    ]
    return Table(
        ["gate", "value", "threshold", "verdict", "worst parameter"],
        rows,
        caption="Convergence gates",
        note=(
            f"{_count(d.chains)} chains x {_count(d.draws)} draws, sampler {d.sampler}, "
            f"{d.wall_seconds:.1f} s. R-hat is the rank-normalised split R-hat; the tail ESS is taken "
            "at the 5% and 95% quantiles (Vehtari et al. 2021)."
        ),
    )


def _header(fit: FitResult) -> list[tuple[str, str]]:
    from bayesct import __version__
    from bayesct.modeling.fit import data_fingerprint

    c = fit.cohort
    s = fit.settings or {}
    fp = data_fingerprint(c)
    sampler = s.get("sampler", fit.diagnostics.sampler)
    runs = (
        f"{sampler}: {_count(s['chains'])} chains x {_count(s['draws'])} draws after {_count(s['tune'])} warm-up"
        if all(k in s for k in ("chains", "draws", "tune"))
        else f"{sampler}: {_count(fit.diagnostics.chains)} chains x {_count(fit.diagnostics.draws)} draws"
    )
    return [
        ("model", f"{fit.spec.name}: {fit.spec.description}"),
        (
            "cohort",
            f"{_count(c.n_patients)} patients ({_count(c.n_deaths)} died"
            + (f", {_count(c.n_outcome_unknown)} of unknown outcome" if c.n_outcome_unknown else "")
            + f"), {_count(c.n_visits)} visits, "
            f"{_count(c.n_scans)} CT scans; from {c.source}",
        ),
        ("seed", "not recorded" if s.get("seed") is None else _count(s["seed"])),
        ("sampler", runs),
        ("data fingerprint", f"SHA-256 {fp['sha256']}"),
        ("bayesct", __version__),
        ("written", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()),
    ]


def _cohort_section(fit: FitResult) -> Section:
    c = fit.cohort
    rows = [
        [Cell("patients"), Cell(_count(c.n_patients), cls="num")],
        [Cell("deaths"), Cell(_count(c.n_deaths), cls="num")],
        [Cell("survivors"), Cell(_count(c.n_survivors), cls="num")],
        [Cell("visits"), Cell(_count(c.n_visits), cls="num")],
        [Cell("CT scans"), Cell(_count(c.n_scans), cls="num")],
    ]
    if c.n_outcome_unknown:
        rows.insert(3, [Cell("outcome unknown"), Cell(_count(c.n_outcome_unknown), cls="num")])
    for m in c.markers:
        rows.append([Cell(f"values of {_marker(m)}"), Cell(_count(c.visits[m].notna().sum()), cls="num")])
    sec = Section("cohort", "The cohort")
    sec.tables.append(Table(["", "count"], rows, caption="Size of the cohort"))
    if c.covariates:
        sec.paragraphs.append("Patient covariates: " + ", ".join(c.covariates) + ".")
    sec.notes.extend(c.notes)
    if c.outcome_note is not None and c.outcome_note not in c.notes:
        sec.notes.append(c.outcome_note)
    return sec


#: The paper's tables shown from :func:`bayesct.classical.run_all`: key, title, columns.
CLASSICAL_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "baseline",
        "Table 1: baseline characteristics by outcome",
        ("variable", "level", "all", "survivors", "nonsurvivors", "test", "p_method", "p_value"),
    ),
    (
        "admission",
        "Table 2: labs on admission by outcome",
        ("marker", "summary", "all", "survivors", "nonsurvivors", "test", "p_value"),
    ),
    (
        "period_comparison",
        "Supp. S3: CT score by period and outcome (Mann-Whitney)",
        (
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
            "note",
        ),
    ),
    (
        "mixed_model",
        "Supp. S4: linear mixed models, Wald tests",
        ("marker", "scale", "term", "statistic", "df", "p_value", "n_obs", "n_patients", "converged", "note"),
    ),
    (
        "mortality_logistic",
        "Table 3: per-scan logistic regression of death on CT score and day",
        ("term", "coef", "se", "z", "p_value", "odds_ratio", "or_ci_low", "or_ci_high", "note"),
    ),
    ("kendall", "Table 4: Kendall tau-b of the CT score with each lab", ("marker", "tau", "p_value", "n")),
)

_HEADERS = {
    "nonsurvivors": "non-survivors",
    "p_value": "p",
    "p_method": "p method",
    "n_survivors": "n survivors",
    "n_nonsurvivors": "n non-survivors",
    "mean_survivors": "mean, survivors",
    "mean_nonsurvivors": "mean, non-survivors",
    "sd_survivors": "SD, survivors",
    "sd_nonsurvivors": "SD, non-survivors",
    "median_survivors": "median, survivors",
    "median_nonsurvivors": "median, non-survivors",
    "n_obs": "observations",
    "n_patients": "patients",
    "coef": "coefficient",
    "se": "SE",
    "odds_ratio": "odds ratio",
    "or_ci_low": "OR 95% CI, low",
    "or_ci_high": "OR 95% CI, high",
    "tau": "tau-b",
}

_COUNT_COLUMNS = frozenset({"n", "n_survivors", "n_nonsurvivors", "n_obs", "n_patients", "df"})


def _classical_cell(value: Any, column: str) -> Cell:
    if _is_na(value):
        return Cell("NA" if column.endswith("p_value") else "")
    if column.endswith("p_value"):
        return Cell(_p(value), cls="num")
    if column == "marker":
        return Cell(_marker(str(value)))
    if column == "term":
        return Cell(str(value).replace(":", " x "))
    if column in _COUNT_COLUMNS:
        return Cell(_count(value), cls="num")
    if isinstance(value, bool | np.bool_):
        return Cell("yes" if value else "no")
    if isinstance(value, int | float | np.integer | np.floating):
        return Cell(_num(value), cls="num")
    return Cell(str(value))


def frame_table(frame: pd.DataFrame, columns: Sequence[str], *, caption: str = "", note: str = "") -> Table:
    """A classical table of the page: the ``columns`` of ``frame`` that exist, formatted for reading."""
    cols = [c for c in columns if c in frame.columns]
    rows = [
        [_classical_cell(v, c) for v, c in zip(vals, cols, strict=True)]
        for vals in frame[cols].itertuples(index=False, name=None)
    ]
    return Table([_HEADERS.get(c, c.replace("_", " ")) for c in cols], rows, caption=caption, note=note)


def risk_heatmap(
    grid: pd.DataFrame,
    *,
    median: str = "median",
    lo: str = "lo",
    hi: str = "hi",
    caption: str = "",
    interval_in_cell: bool | None = None,
) -> Table:
    """A risk grid as a heat map table: CT score rows (highest first), day or period columns.

    Each cell is coloured by the band of its median (:data:`RISK_COLOURS`, green to red as
    the risk rises), prints the median (and the interval, when the grid has at most 12
    columns or ``interval_in_cell``) and carries ``median [lo, hi]`` as its tooltip.
    """
    by = "period" if "period" in grid.columns else "day"
    keys = list(dict.fromkeys(grid[by]))
    if by == "period":
        keys = [p for p in PERIOD_LABELS if p in keys] + [p for p in keys if p not in PERIOD_LABELS]
    else:
        keys = sorted(keys)
    if interval_in_cell is None:
        interval_in_cell = len(keys) <= 12
    days = grid.groupby(by, sort=False)["day"].first() if "day" in grid.columns else None
    headers = ["CT score"]
    for k in keys:
        if by == "period":
            d = None if days is None else float(days[k])
            headers.append(f"days {k}" + (f" (day {_day(d)})" if d is not None else ""))
        else:
            headers.append(f"day {_day(k)}")
    rows = []
    for score in sorted(grid["ct_score"].unique(), reverse=True):
        block = grid.loc[grid["ct_score"] == score]
        row = [Cell(_count(score), cls="num rowhead")]
        for k in keys:
            hit = block.loc[block[by] == k]
            if hit.empty:
                row.append(Cell("", cls="risk"))
                continue
            r = hit.iloc[0]
            m, a, b = float(r[median]), float(r[lo]), float(r[hi])
            bg, fg = risk_colour(m)
            band = risk_band_index(m)
            full = fmt_risk_interval(m, a, b)
            where = f"days {k}" if by == "period" else f"day {_day(k)}"
            text = full if interval_in_cell else fmt_risk(m)
            row.append(
                Cell(
                    text,
                    title=f"CT score {_count(score)}, {where}: {full}",
                    cls=f"risk band-{band}" if band >= 0 else "risk band-na",
                    bg=bg,
                    fg=fg,
                )
            )
        rows.append(row)
    return Table(headers, rows, caption=caption, cls="heatmap")


def _grid_patient(grid: pd.DataFrame, patient: Mapping[str, Any] | None) -> str:
    known: dict[str, Any] = {}
    cov = grid.attrs.get("covariates") if hasattr(grid, "attrs") else None
    if isinstance(cov, Mapping):
        known.update(cov)
    for col in ("age", "sex", "male"):
        if col in grid.columns and grid[col].nunique(dropna=True) == 1:
            known.setdefault(col, grid[col].dropna().iloc[0])
    known.update({k: v for k, v in (patient or {}).items() if v is not None})
    if "male" in known and "sex" not in known:
        known["sex"] = "male" if float(known.pop("male")) == 1.0 else "female"
    parts = []
    if "age" in known:
        parts.append(f"age {float(known['age']):g}")
    if "sex" in known:
        parts.append(str(known["sex"]))
    parts += [f"{k} {v}" for k, v in known.items() if k not in ("age", "sex")]
    return ", ".join(parts)


def _classical_section(fit: FitResult, tables: Mapping[str, pd.DataFrame]) -> Section:
    from bayesct.classical import findings
    from bayesct.classical._common import NOTE_ATTR

    sec = Section("classical", "The paper's frequentist tables on this cohort")
    sec.paragraphs.append(
        "Recomputed with the paper's own tests (bayesct.classical); each answers one question on its own."
    )
    sec.notes.extend(str(s) for s in findings(dict(tables))["sentence"])
    # the tables split by outcome leave out the patients of unknown outcome: said once
    left_out = next((str(t.attrs[NOTE_ATTR]) for t in tables.values() if t.attrs.get(NOTE_ATTR)), "")
    if left_out:
        sec.notes.append(f"The tables by outcome: {left_out}.")
    for key, title, cols in CLASSICAL_TABLES:
        if key in tables:
            sec.tables.append(frame_table(tables[key], cols, caption=title))
    grid = tables.get("mortality_grid")
    if grid is not None and len(grid):
        note = (
            str(grid["note"].iloc[0]) if "note" in grid.columns and not _is_na(grid["note"].iloc[0]) else ""
        )
        sec.tables.append(
            risk_heatmap(
                grid,
                median="probability",
                lo="ci_low",
                hi="ci_high",
                caption="Table 3: fitted probability of death by CT score and period (per-scan logistic "
                "regression, 95% CI by the delta method); the day of each period is its mean scan day",
            )
        )
        if note:
            sec.tables[-1].note = note
    return sec


def _observed_ct_means(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    pc = tables["period_comparison"]
    rows = []
    for _, r in pc.iterrows():
        for group, suffix in ((GROUP_LABELS[0], "survivors"), (GROUP_LABELS[1], "nonsurvivors")):
            rows.append(
                {
                    "period": str(r["period"]),
                    "group": group,
                    "mean": float(r[f"mean_{suffix}"]) if not _is_na(r[f"mean_{suffix}"]) else math.nan,
                    "n": int(r[f"n_{suffix}"]) if not _is_na(r[f"n_{suffix}"]) else 0,
                }
            )
    return pd.DataFrame(rows)


def ct_period_bands(
    fit: FitResult, *, replicates: int, level: str, seed: int, ci_prob: float = CI_PROB
) -> pd.DataFrame:
    """Posterior predictive band of the mean CT score per period and outcome group.

    The replicated cohorts are those of the check (:func:`bayesct.checks.ppc.replicate_set`
    with its number of replicates, level and seed); at level ``new`` the groups are the
    replicated outcomes. One row per (period, group): ``lo, median, hi`` of the replicated
    means (a replicate without a scan in the cell is left out), ``n_valid``.
    """
    from bayesct.checks.ppc import replicate_set
    from bayesct.classical._common import patient_codes, period_codes, visit_died

    reps = replicate_set(fit, n=replicates, level=level, seed=seed)
    cohort = fit.cohort
    ct = np.asarray(reps.values[CT], dtype=float)
    codes = period_codes(cohort.visits)
    if DIED in reps.values:
        died = np.asarray(reps.values[DIED])[:, patient_codes(cohort)]
    else:
        died = np.broadcast_to(visit_died(cohort), ct.shape)
    has = ~np.isnan(ct)
    q = [(1 - ci_prob) / 2, 0.5, 1 - (1 - ci_prob) / 2]
    rows = []
    for k, label in enumerate(PERIOD_LABELS):
        for g, group in GROUP_LABELS.items():
            mask = has & (codes == k)[None, :] & (died == g)
            n = mask.sum(axis=1)
            total = np.where(mask, ct, 0.0).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = total / n
            valid = means[n > 0]
            lo, med, hi = np.quantile(valid, q) if valid.size else (math.nan,) * 3
            rows.append(
                {
                    "period": label,
                    "group": group,
                    "lo": lo,
                    "median": med,
                    "hi": hi,
                    "n_valid": int(valid.size),
                }
            )
    return pd.DataFrame(rows)


def _ct_period_part(
    fit: FitResult, tables: Mapping[str, pd.DataFrame], check: CheckTables | None, ci_prob: float
) -> Section:
    from bayesct.report.figures import figure_data_uri, plot_ct_by_period

    part = Section("ct-period", "CT score by period and outcome")
    observed = _observed_ct_means(tables)
    bands = None
    if fit.spec.family != "joint":
        part.absent = f"Model '{fit.spec.name}' does not generate CT scores: no predictive bands."
    elif check is None:
        part.absent = (
            "No check folder given (--check): the posterior predictive bands of these means come "
            "with 'bayesct check'; the observed means are in Supp. S3 above."
        )
    else:
        meta = check.meta
        n = int(meta.get("replicates") or 200)
        level = str(meta.get("outcome_level") or "new")
        seed = int(meta.get("seed") or 0)
        bands = ct_period_bands(fit, replicates=n, level=level, seed=seed, ci_prob=ci_prob)
        part.paragraphs.append(
            f"Points: the observed mean CT score of survivors and non-survivors in each period. Bands: "
            f"the central {ci_prob:.0%} interval of the same mean over the check's {_count(n)} replicated "
            f"cohorts (level '{level}', seed {_count(seed)}: "
            + (
                "fresh patients with replicated deaths"
                if level == "new"
                else "the same patients and outcomes"
            )
            + ")."
        )
    fig = plot_ct_by_period(observed=observed, bands=bands, ci_prob=ci_prob)
    part.figures.append(
        FigureBlock(
            figure_data_uri(fig),
            "Mean CT score by period and outcome",
            "Observed mean CT score of survivors (blue) and non-survivors (red) per period"
            + (
                "; shaded: the replicated means' central interval, dashed: their median."
                if bands is not None
                else "."
            ),
        )
    )
    if bands is not None:
        merged = observed.merge(bands, on=["period", "group"], how="left")
        rows = [
            [
                Cell(f"days {r.period}"),
                Cell(f"{r.group}s"),
                Cell(_count(r.n), cls="num"),
                Cell(_num(r.mean), cls="num"),
                Cell(
                    fmt_estimate(_f(r.median), _f(r.lo), _f(r.hi)) if math.isfinite(_f(r.median)) else "NA",
                    cls="num",
                ),
                Cell(_count(r.n_valid), cls="num"),
            ]
            for r in merged.itertuples()
        ]
        part.tables.append(
            Table(
                [
                    "period",
                    "group",
                    "scans",
                    "observed mean",
                    f"replicated mean, median [{ci_prob:.0%} interval]",
                    "replicates with scans",
                ],
                rows,
            )
        )
    return part


def mortality_table(fit: FitResult, *, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """The mortality submodel's effects as odds ratios in user units, one row each.

    The rows of :meth:`~bayesct.modeling.fit.FitResult.odds_ratios` (where the scalings are
    stated once: the CT trajectory per SD, age per 10 years, male against female, other
    covariates per their scaling unit, the per-scan model's CT score per point and day per day),
    with ``label`` (the effect), ``estimate`` (``median [lo, hi]``) and ``what`` (the unit and
    the scaling it rests on) for the page.
    """
    table = fit.odds_ratios(ci_prob=ci_prob)
    if table.empty:
        return pd.DataFrame(columns=["label", "lo", "median", "hi", "estimate", "what"])
    return pd.DataFrame(
        {
            "label": table["effect"].astype(str),
            "lo": table["lo"].astype(float),
            "median": table["median"].astype(float),
            "hi": table["hi"].astype(float),
            "estimate": [
                fmt_estimate(m, lo, hi)
                for m, lo, hi in zip(table["median"], table["lo"], table["hi"], strict=True)
            ],
            "what": [
                f"odds ratio of death {u} ({sc})"
                for u, sc in zip(table["unit"], table["scaling"], strict=True)
            ],
        }
    )


def _summary_rows(summ: pd.DataFrame) -> list[list[Cell]]:
    return [
        [
            Cell(str(r.parameter)),
            Cell(fmt_estimate(_f(r.median), _f(r.lo), _f(r.hi)), cls="num"),
            Cell(_count(r.ess_bulk), cls="num"),
            Cell(_count(r.ess_tail), cls="num"),
            Cell(f"{_f(r.r_hat):.3f}" if math.isfinite(_f(r.r_hat)) else "NA", cls="num"),
        ]
        for r in summ.itertuples()
    ]


def _mortality_part(fit: FitResult, ci_prob: float, sensitivity: bool) -> Section:
    from bayesct.report.figures import figure_data_uri, plot_odds_ratios

    part = Section("mortality", "Mortality submodel and the model's parameters")
    table = mortality_table(fit, ci_prob=ci_prob)
    if len(table):
        part.tables.append(
            Table(
                ["effect", f"odds ratio, median [{ci_prob:.0%} CrI]", "meaning"],
                [
                    [Cell(str(r.label)), Cell(str(r.estimate), cls="num"), Cell(str(r.what))]
                    for r in table.itertuples()
                ],
                caption="Mortality: odds ratios in user units (the counterpart of Table 3's coefficients)",
            )
        )
        fig = plot_odds_ratios(table=table, ci_prob=ci_prob)
        part.figures.append(FigureBlock(figure_data_uri(fig), "Odds ratios of death", "Odds ratios of death"))
    else:
        part.absent = f"Model '{fit.spec.name}' has no mortality submodel."
    from bayesct.report.format import mortality_association_lines

    assoc = mortality_association_lines(fit.posterior, ci_prob=ci_prob)
    part.notes.extend(line[0].upper() + line[1:] for line in assoc[1:])
    from bayesct.modeling.diagnostics import HEADLINE_PARAMETERS

    names = [v for v in HEADLINE_PARAMETERS if v in fit.posterior]
    if names:
        summ = fit.summary(names, ci_prob=ci_prob)
        part.tables.append(
            Table(
                ["parameter", f"median [{ci_prob:.0%} CrI]", "bulk ESS", "tail ESS", "R-hat"],
                _summary_rows(summ),
                caption="Posterior summary (model scale)",
            )
        )
    if sensitivity and fit.spec.family == "joint" and fit.spec.mortality:
        from bayesct.checks.sensitivity import mortality_prior_sensitivity

        sens = mortality_prior_sensitivity(fit, seed=int((fit.settings or {}).get("seed") or 0)).reset_index()
        cols = [str(c) for c in sens.columns]
        part.tables.append(
            Table(
                [{"likelihood": "deaths"}.get(c, c) for c in cols],
                [
                    [
                        Cell(
                            _num(v) if isinstance(v, float | np.floating) else str(v),
                            cls="num" if isinstance(v, float | np.floating) else "",
                        )
                        for v in vals
                    ]
                    for vals in sens.itertuples(index=False, name=None)
                ],
                caption="Prior sensitivity of the mortality part (power-scaling, Kallioinen et al. 2024)",
                note="How far each quantity moves when the prior or the deaths' likelihood is raised to a "
                "power near 1; 0.05 or more: it moves.",
            )
        )
    return part


def _bayes_section(
    fit: FitResult,
    tables: Mapping[str, pd.DataFrame],
    check: CheckTables | None,
    ci_prob: float,
    sensitivity: bool,
) -> Section:
    sec = Section("bayesian", "The Bayesian counterparts")
    sec.paragraphs.append(
        f"One model for all the questions; every estimate is the posterior median with its central "
        f"{ci_prob:.0%} credible interval (CrI)."
    )
    if "period_comparison" in tables:
        sec.parts.append(_ct_period_part(fit, tables, check, ci_prob))
    sec.parts.append(_mortality_part(fit, ci_prob, sensitivity))
    return sec


def _grid_section(
    grid: pd.DataFrame | None, source: str, patient: Mapping[str, Any] | None, ci_prob: float
) -> Section:
    sec = Section("risk-grid", "Risk of death by CT score and day (Table 3 counterpart)")
    if grid is None:
        sec.absent = (
            "No risk grid given (--grid): write one with 'bayesct risk FITDIR --grid --out GRID.csv'."
        )
        return sec
    who = _grid_patient(grid, patient)
    model = grid.attrs.get("model") if hasattr(grid, "attrs") else None
    title = (
        "Posterior risk of death of a new patient with one CT scan, "
        + (f"for a patient of {who}" if who else "patient's covariates not recorded with the grid")
        + (f" (model {model})" if model else "")
    )
    sec.tables.append(risk_heatmap(grid, caption=title))
    sec.paragraphs.append(
        f"Each cell: posterior median [central {ci_prob:.0%} CrI] of P(death) (hover for the interval "
        "when the cell shows the median only). Risks below 0.5% print as <0.5%. Colour bands: the "
        "paper's Table 3 bands of the median, running green to red as the risk rises."
    )
    extrap = grid.attrs.get("extrapolation") if hasattr(grid, "attrs") else None
    if extrap:
        sec.notes.extend(str(m) for m in extrap)
    if source:
        sec.notes.append(f"From {source}.")
    return sec


_PPP_DEF = (
    "PPP",
    "posterior predictive p-value",
    "the share of replicated cohorts whose statistic is at least the observed one, P(T_rep >= T_obs). "
    "Near 0 or 1, the model rarely reproduces what was observed. Each PPP is a proportion of "
    "finitely many replicates, so it is given with its Monte Carlo standard error (± MC SE).",
)


_LEVEL_WORDS = {
    "new": "new patients (fresh effects; deaths replicated from the mortality submodel)",
    "patients": "the cohort's own patients (their posterior effects and observed outcomes)",
}


def _levels_sentence(meta: Mapping[str, Any]) -> str:
    """Which replicates each group of statistics was computed on, in words."""
    out, other = meta.get("outcome_level"), meta.get("level")
    parts = []
    if out:
        parts.append(
            "the contrasts of survivors with non-survivors (Mann-Whitney, the per-scan logistic "
            f"regression, the mixed models, the number of deaths) on replicates of {_LEVEL_WORDS.get(str(out), out)}"
        )
    if other:
        parts.append(f"Kendall tau on replicates of {_LEVEL_WORDS.get(str(other), other)}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "." if text else ""


def _flag(r: Any) -> tuple[str, str]:
    outside = r.get("outside")
    beyond = r.get("beyond_interval", outside)
    if _is_na(outside):
        return "not judged", ""
    if bool(outside):
        return "outside", "fail"
    if not _is_na(beyond) and bool(beyond):
        return "beyond, within MC error", "warn"
    return "", ""


def _ppc_section(fit: FitResult, check: CheckTables | None, ci_prob: float) -> Section:
    from bayesct.report.figures import figure_data_uri, plot_ppc_intervals

    sec = Section("ppc", "Posterior predictive checks: the paper's tests on replicated cohorts")
    if check is None and fit.spec.family != "joint":
        sec.absent = (
            f"Model '{fit.spec.name}' is a per-scan mortality model: it generates no cohorts to replicate, "
            "so it has no posterior predictive check."
        )
        return sec
    if check is None:
        sec.absent = (
            "No check folder given (--check): run 'bayesct check FITDIR --out CHECKDIR' for this section."
        )
        return sec
    meta = check.meta
    if not check.converged:
        sec.notes.append("The check was run on a fit that missed its convergence gates.")
    if meta.get("model") and meta["model"] != fit.spec.name:
        sec.notes.append(f"The check was run on model '{meta['model']}', this fit is '{fit.spec.name}'.")
    sec.definition = _PPP_DEF
    sec.paragraphs.append(
        f"{_count(meta.get('replicates'))} replicated cohorts (the mixed model on "
        f"{_count(meta.get('mixed_replicates'))} of them), seed {_count(meta.get('seed'))}. "
        + _levels_sentence(meta)
    )
    st = check.statistics
    if len(st):
        rows = []
        for _, r in st.iterrows():
            flag, cls = _flag(r)
            ppp = r.get("ppp")
            ppp_text = (
                f"{_f(ppp):.3f} ± {_f(r.get('ppp_mcse')):.3f}"
                if not _is_na(ppp) and not _is_na(r.get("ppp_mcse"))
                else "NA"
            )
            two = r.get("ppp_two_sided")
            counts = str(r.get("name")) == "n_deaths"
            fmt = _count if counts else _num
            rep = (
                f"{fmt(r['rep_median'])} [{fmt(r['rep_lo'])}, {fmt(r['rep_hi'])}]"
                if not _is_na(r.get("rep_median"))
                else "NA"
            )
            rows.append(
                [
                    Cell(statistic_label(str(r["key"])), title=str(r.get("description", "") or "")),
                    Cell(str(r.get("level", "") or "")),
                    Cell(fmt(r["observed"]), cls="num"),
                    Cell(rep, cls="num"),
                    Cell(ppp_text, cls="num"),
                    Cell(f"{_f(two):.3f}" if not _is_na(two) else "NA", cls="num"),
                    Cell(f"{_count(r.get('n_valid'))} of {_count(r.get('n_replicates'))}", cls="num"),
                    Cell(flag, cls=cls),
                ]
            )
        sec.tables.append(
            Table(
                [
                    "statistic",
                    "level",
                    "observed",
                    f"replicated, median [{ci_prob:.0%} interval]",
                    "PPP ± MC SE",
                    "two-sided PPP",
                    "valid replicates",
                    "flag",
                ],
                rows,
                caption="Each statistic: observed against its replicates",
                note=(
                    f"{_count(int(st['outside'].fillna(False).astype(bool).sum()) if 'outside' in st else 0)} "
                    f"of {_count(int(st['outside'].notna().sum()) if 'outside' in st else len(st))} statistics "
                    f"lie outside the central {ci_prob:.0%} interval of their replicates clear of Monte Carlo "
                    "error ('outside'); 'beyond, within MC error': outside by the point estimate only, "
                    "which more replicates would settle."
                ),
            )
        )
        labels = {str(k): statistic_short_label(str(k)) for k in st["key"]} | FAMILY_SHORT
        shown = st.loc[st["name"] != "n_deaths"]
        if len(shown):
            fig = plot_ppc_intervals(statistics=shown, labels=labels, ci_prob=ci_prob)
            sec.figures.append(
                FigureBlock(
                    figure_data_uri(fig),
                    "Observed statistics against their replicated intervals",
                    "Observed statistics (red) against the central interval of their replicates (grey); "
                    "p-values on a log scale, the dotted line at 0.05.",
                )
            )
    fd = check.findings
    if len(fd):
        rows = []
        for _, f in fd.iterrows():
            obs = f.get("observed_reproduced")
            share = f.get("reproduced_share")
            rows.append(
                [
                    Cell(finding_label(str(f["finding"])), title=str(f.get("sentence", "") or "")),
                    Cell(str(f.get("paper", "") or "")),
                    Cell("cannot be assessed" if _is_na(obs) else ("yes" if bool(obs) else "no")),
                    Cell(
                        "no valid replicate"
                        if _is_na(share)
                        else f"{100 * _f(share):.0f}%"
                        + ("" if _is_na(f.get("share_mcse")) else f" ± {100 * _f(f.get('share_mcse')):.0f}%"),
                        cls="num",
                    ),
                    Cell(_count(f.get("n_valid")), cls="num"),
                    Cell(str(f.get("level", "") or "")),
                ]
            )
        sec.tables.append(
            Table(
                [
                    "finding of the paper",
                    "the paper reports",
                    "shown by the observed data",
                    "share of replicates reproducing it (± Monte Carlo SE)",
                    "valid replicates",
                    "level",
                ],
                rows,
                caption="The paper's findings on replicated cohorts",
            )
        )
    sec.parts.extend(_loo_parts(check))
    for note in meta.get("notes") or []:
        sec.notes.append(str(note))
    return sec


_PIT_HEADERS = {
    "n": "observations",
    "mean_pit": "mean PIT",
    "mean_loo_pit": "mean LOO-PIT",
    "ks_pit": "KS statistic, PIT",
    "ks_pit_p": "KS p, PIT",
    "ks_loo_pit": "KS statistic, LOO-PIT",
    "ks_loo_pit_p": "KS p, LOO-PIT",
    "outside_loo": "share outside the central 95% (LOO)",
    "expected_outside": "share expected outside",
    "n_bad_k": "Pareto k > 0.7",
}


def _loo_parts(check: CheckTables) -> list[Section]:
    parts: list[Section] = []
    loo = check.loo
    if loo:
        part = Section("loo", "Patient-level PSIS-LOO")
        part.paragraphs.append(
            f"elpd {_fmt(loo.get('elpd'), '.1f')} (SE {_fmt(loo.get('se'), '.1f')}), effective number of parameters "
            f"{_fmt(loo.get('p_loo'), '.1f')}, over {_count(loo.get('n_patients'))} patients; "
            f"each patient's likelihood with {loo.get('conditioning', '')}."
        )
        bad_k = _f(loo.get("n_bad_k"))
        n_bad = int(bad_k) if math.isfinite(bad_k) else 0
        kmax = _f(loo.get("max_pareto_k"))
        if n_bad > 0 or kmax > 0.7:
            part.notes.append(
                f"Caveat: Pareto k > 0.7 for {_count(n_bad)} of {_count(loo.get('n_patients'))} patients "
                f"(largest {kmax:.2f}). For them the importance-sampling approximation of leaving the "
                "patient out is unreliable, so the elpd, its SE and the leave-one-out calibration below "
                "are less certain than printed; exact refits without those patients (K-fold) are not "
                "implemented."
            )
        parts.append(part)
    comps = [("", check.comparison), *check.comparisons.items()]
    for name, comp in comps:
        if comp is None or not len(comp):
            continue
        part = Section(
            "loo-compare" + (f"-{len(parts)}" if name else ""),
            "PSIS-LOO comparison" + (f": {name}" if name else ""),
        )
        cols = [
            c for c in ("model", "elpd", "se", "elpd_diff", "dse", "n_bad_k", "data") if c in comp.columns
        ]
        heads = {
            "se": "SE",
            "elpd_diff": "difference",
            "dse": "SE of difference",
            "n_bad_k": "Pareto k > 0.7",
        }
        rows = [
            [
                Cell(
                    _count(v)
                    if c == "n_bad_k"
                    else (_fmt(v, ".1f") if isinstance(v, float | np.floating) or v is None else str(v)),
                    cls="num" if c != "model" and c != "data" else "",
                )
                for v, c in zip(vals, cols, strict=True)
            ]
            for vals in comp[cols].itertuples(index=False, name=None)
        ]
        part.tables.append(Table([heads.get(c, c) for c in cols], rows))
        if (
            "n_bad_k" in comp.columns
            and (pd.to_numeric(comp["n_bad_k"], errors="coerce").fillna(0) > 0).any()
        ):
            part.notes.append(
                "Caveat: some patients have Pareto k > 0.7; those elpd differences are less certain than their SE says."
            )
        parts.append(part)
    cal = check.calibration
    if cal:
        part = Section("calibration", "Mortality calibration")
        s = cal.get("summary") or {}
        if s:
            part.paragraphs.append(
                f"{_count(s.get('observed_deaths'))} deaths observed, {_fmt(s.get('expected_deaths_loo'), '.1f')} "
                f"expected (leave-one-patient-out); Brier score {_fmt(s.get('brier_loo'), '.3f')}, "
                f"AUC {_fmt(s.get('auc_loo'), '.3f')}. Each patient's risk is from their scans and "
                "labs, not their outcome."
            )
        bins = pd.DataFrame(cal.get("bins") or [])
        if len(bins):
            rows = []
            for r in bins.to_dict(orient="records"):
                rows.append(
                    [
                        Cell(_count(r.get("bin")), cls="num"),
                        Cell(_count(r.get("n")), cls="num"),
                        Cell(_count(r.get("deaths")), cls="num"),
                        Cell(
                            fmt_risk_interval(r["observed_rate"], r["observed_lo"], r["observed_hi"]),
                            cls="num",
                        ),
                        Cell(
                            fmt_risk_interval(r["predicted"], r["predicted_lo"], r["predicted_hi"]), cls="num"
                        ),
                    ]
                )
            part.tables.append(
                Table(
                    [
                        "bin",
                        "patients",
                        "deaths",
                        f"observed rate [{_f(cal.get('ci_prob') or CI_PROB):.0%} interval]",
                        "predicted risk, mean [interval]",
                    ],
                    rows,
                    caption="Patients in equal-count bins of their predicted risk",
                )
            )
        parts.append(part)
    lm = check.landmarks
    if lm is not None and len(lm):
        part = Section("landmarks", "Dynamic prediction at landmark days")
        rows = []
        for r in lm.to_dict(orient="records"):
            rows.append(
                [
                    Cell(str(r.get("data", r.get("landmark", "")))),
                    Cell(_count(r.get("n_patients")), cls="num"),
                    Cell(_count(r.get("deaths")), cls="num"),
                    Cell(_num(r.get("brier_loo")), cls="num"),
                    Cell(_num(r.get("auc_loo")), cls="num"),
                    Cell(
                        fmt_risk(r["mean_risk_loo"]) if not _is_na(r.get("mean_risk_loo")) else "NA",
                        cls="num",
                    ),
                ]
            )
        part.tables.append(
            Table(
                ["data used", "patients scored", "deaths", "Brier (LOO)", "AUC (LOO)", "mean risk (LOO)"],
                rows,
                caption="Death risk from the data up to each day, the patient left out",
            )
        )
        parts.append(part)
    pit = check.pit
    if pit is not None and len(pit):
        part = Section("pit", "PIT and LOO-PIT per marker")
        cols = [c for c in pit.columns]
        rows = [
            [
                Cell(
                    _marker(str(v))
                    if c == "marker"
                    else (_count(v) if c in ("n", "n_bad_k") else (_p(v) if c.endswith("_p") else _num(v))),
                    cls="" if c == "marker" else "num",
                )
                for v, c in zip(vals, cols, strict=True)
            ]
            for vals in pit[cols].itertuples(index=False, name=None)
        ]
        part.tables.append(
            Table(
                [_PIT_HEADERS.get(c, c.replace("_", " ")) for c in cols],
                rows,
                caption="Uniformity of the probability integral transform (KS p-values against uniform)",
            )
        )
        parts.append(part)
    return parts


def _scalars(post: Any, names: Sequence[str]) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(label, variable, index) of every scalar of ``names``, labelled as the posterior summary labels them."""
    for name in names:
        da = post[name]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        if not other:
            yield name, name, ()
            continue
        coords = [list(da[d].values) if d in da.coords else list(range(da.sizes[d])) for d in other]
        for idx in np.ndindex(*(da.sizes[d] for d in other)):
            yield f"{name}[{', '.join(str(coords[i][j]) for i, j in enumerate(idx))}]", name, idx


def slowest_parameters(
    post: Any, *, n: int = 4, ci_prob: float = CI_PROB
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The ``n`` scalars of the posterior with the smallest bulk ESS, and their draws.

    Every stored variable but raw non-centred ``*_z`` (those the gates judge); scalars whose
    ESS is undefined (constants, such as a correlation matrix's diagonal) are left out.
    A scalar whose draws equal those of one already chosen (one quantity stored under two
    names, such as an SD and the first entry of its Cholesky factor) is listed under it in
    ``same_as`` rather than again. Returns the table (``parameter, median, lo, hi, ess_bulk,
    ess_tail, r_hat, same_as``, one row per distinct scalar, slowest first;
    ``attrs["n_scalars"]``: how many were ranked) and label -> ``(chain, draw)`` draws.
    """
    import warnings

    from bayesct.modeling.diagnostics import interval
    from bayesct.modeling.mcmc_stats import diagnose_dataset

    names = [str(v) for v in post.data_vars if not str(v).endswith("_z")]
    sub = post[names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        diag = diagnose_dataset(sub)
    multi = sub.sizes.get("chain", 1) > 1
    found: list[tuple[float, str, str, tuple[int, ...]]] = []
    for label, name, idx in _scalars(sub, names):
        other = [d for d in sub[name].dims if d not in ("chain", "draw")]
        ess = float(np.asarray(diag["ess_bulk"][name].transpose(*other).values)[idx])
        if math.isfinite(ess):
            found.append((ess, label, name, idx))
    found.sort(key=lambda t: t[0])
    rows: list[dict[str, Any]] = []
    draws: dict[str, np.ndarray] = {}
    for ess, label, name, idx in found:
        if len(rows) >= n:
            break
        da = sub[name]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        key: tuple[Any, ...] = (slice(None), slice(None), *idx)
        arr = np.asarray(da.transpose("chain", "draw", *other).values, dtype=float)[key]
        same = next((r for r in rows if np.array_equal(draws[r["parameter"]], arr)), None)
        if same is not None:  # one quantity stored under two names (an SD and its Cholesky entry)
            same["same_as"].append(label)
            continue
        med, lo, hi = interval(arr, ci_prob)

        def stat(key: str, name: str = name, other: list[str] = other, idx: tuple[int, ...] = idx) -> float:
            return float(np.asarray(diag[key][name].transpose(*other).values)[idx])

        rows.append(
            {
                "parameter": label,
                "median": med,
                "lo": lo,
                "hi": hi,
                "ess_bulk": ess,
                "ess_tail": stat("ess_tail"),
                "r_hat": stat("rhat") if multi else math.nan,
                "same_as": [],
            }
        )
        draws[label] = arr
    columns = ["parameter", "median", "lo", "hi", "ess_bulk", "ess_tail", "r_hat", "same_as"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["n_scalars"] = len(found)
    return table, draws


def _mixing_section(fit: FitResult, n_slowest: int, ci_prob: float) -> Section:
    from bayesct.report.figures import figure_data_uri, plot_chains

    sec = Section("mixing", "Slowest-mixing parameters")
    slow, draws = slowest_parameters(fit.posterior, n=n_slowest, ci_prob=ci_prob)
    sec.paragraphs.append(
        f"The {_count(len(slow))} scalars with the smallest bulk ESS of the {_count(slow.attrs['n_scalars'])} "
        "the posterior stores: their traces, and per chain the histogram of the ranks of its draws among "
        "all chains' draws (flat and alike when the chains mix)."
    )
    rows = [
        [*cells, Cell(", ".join(same))]
        for cells, same in zip(_summary_rows(slow), slow["same_as"], strict=True)
    ]
    heads = [
        "parameter",
        f"median [{ci_prob:.0%} CrI]",
        "bulk ESS",
        "tail ESS",
        "R-hat",
        "the same draws, stored as",
    ]
    sec.tables.append(Table(heads, rows))
    if draws:
        fig = plot_chains(draws=draws, ess_bulk=dict(zip(slow["parameter"], slow["ess_bulk"], strict=True)))
        sec.figures.append(
            FigureBlock(
                figure_data_uri(fig),
                "Trace and rank plots of the slowest-mixing parameters",
                "Left: each chain's draws in order. Right: each chain's histogram of the ranks of its draws "
                "among all chains; the dotted line is what chains that mix perfectly give.",
            )
        )
    return sec


def _spec_section(fit: FitResult) -> Section:
    sec = Section("spec", "Priors and model specification")
    sec.pre.append(("Priors", fit.spec.describe_priors()))
    sec.pre.append(("spec.toml", fit.spec.to_toml()))
    return sec


#: Libraries whose versions the page prints.
SOFTWARE: tuple[str, ...] = ("bayesct", "pymc", "pytensor", "nutpie", "arviz", "numpy")


def software_versions() -> list[tuple[str, str]]:
    """(name, version) of Python and of each library of :data:`SOFTWARE` in this environment."""
    out = [("python", platform.python_version())]
    for name in SOFTWARE:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def _software_section(fit: FitResult) -> Section:
    sec = Section("software", "Software")
    sec.tables.append(
        Table(
            ["software", "version"],
            [[Cell(n), Cell(v)] for n, v in software_versions()],
            caption="Versions writing this report",
        )
    )
    attrs: dict[str, Any] = {}
    with contextlib.suppress(KeyError):
        attrs = {str(k): v for k, v in fit.tree["posterior"].attrs.items()}
    rec = [
        (str(k), str(v))
        for k, v in attrs.items()
        if "version" in str(k) or str(k) in ("created_at", "inference_library")
    ]
    if rec:
        sec.tables.append(
            Table(["recorded with the posterior", "value"], [[Cell(k), Cell(v)] for k, v in rec])
        )
    return sec


# -- the page --------------------------------------------------------------------------------------------


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bayesct.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["risk_legend"] = risk_legend()
    return env


def render_html_report(
    fit: FitResult | str | Path,
    *,
    check: PPCResult | CheckTables | str | Path | None = None,
    grid: pd.DataFrame | str | Path | None = None,
    grid_patient: Mapping[str, Any] | None = None,
    classical: Mapping[str, pd.DataFrame] | None = None,
    sensitivity: bool = True,
    n_slowest: int = 4,
    ci_prob: float = CI_PROB,
    title: str | None = None,
) -> str:
    """The report as one self-contained HTML page (a string).

    Parameters
    ----------
    fit
        A :class:`~bayesct.modeling.fit.FitResult` or a fit folder.
    check
        The posterior predictive check: a :class:`~bayesct.checks.ppc.PPCResult` or a folder
        written by ``bayesct check``; ``None``: its sections say it was not given.
    grid
        The risk grid: a :func:`bayesct.risk.risk_grid` table or its CSV.
    grid_patient
        Covariates of the patient the grid is for (``age``, ``sex``), where the grid does not
        carry them (a CSV).
    classical
        The paper's tables (:func:`bayesct.classical.run_all` of the fit's cohort); computed when
        not given.
    sensitivity
        Include the mortality part's power-scaling prior sensitivity (joint models).
    n_slowest
        Parameters shown in the trace and rank plots.
    ci_prob
        Probability of the credible intervals printed.
    title
        Page title (default: the model and the data source).
    """
    from bayesct.classical import run_all

    result = _load_fit(fit)
    checks = _load_check(check)
    grid_table, grid_source = _load_grid(grid)
    tables = dict(classical) if classical is not None else run_all(result.cohort)
    diag = result.diagnostics
    sections = [
        _cohort_section(result),
        _classical_section(result, tables),
        _bayes_section(result, tables, checks, ci_prob, sensitivity),
        _grid_section(grid_table, grid_source, grid_patient, ci_prob),
        _ppc_section(result, checks, ci_prob),
        _mixing_section(result, n_slowest, ci_prob),
        _spec_section(result),
        _software_section(result),
    ]
    context = {
        "title": title or f"bayesct report: model {result.spec.name} on {Path(result.cohort.source).name}",
        "failed": not diag.passed,
        "failures": list(diag.failures),
        "gates": _gates(result),
        "header": _header(result),
        "sections": sections,
        "ci_prob": ci_prob,
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_html_report(
    fit: FitResult | str | Path,
    *,
    check: PPCResult | CheckTables | str | Path | None = None,
    grid: pd.DataFrame | str | Path | None = None,
    path: str | Path,
    **options: Any,
) -> Path:
    """Write :func:`render_html_report` to ``path`` (UTF-8); returns the path.

    ``options`` are those of :func:`render_html_report` (``grid_patient``, ``classical``,
    ``sensitivity``, ``n_slowest``, ``ci_prob``, ``title``).
    """
    html = render_html_report(fit, check=check, grid=grid, **options)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


__all__ = [
    "RISK_COLOURS",
    "RISK_EDGES",
    "CheckTables",
    "ct_period_bands",
    "finding_label",
    "fmt_risk",
    "fmt_risk_interval",
    "mortality_table",
    "render_html_report",
    "risk_band_index",
    "risk_colour",
    "risk_heatmap",
    "software_versions",
    "statistic_label",
    "write_html_report",
]
