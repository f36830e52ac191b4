"""Tables 1 and 2: baseline characteristics and admission labs by outcome."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd
from scipy import stats

from bayesct.classical._common import ALPHA, MW_METHOD, outcome_noted, present_labs, quiet
from bayesct.constants import DIED
from bayesct.data.cohort import Cohort

#: Quantile method for medians/IQRs: SPSS's default ("HAVERAGE").
QUANTILE_METHOD: Final = "weibull"


def _kind(series: pd.Series) -> str:
    """``binary`` (bool or numeric 0/1), ``continuous`` (other numeric) or ``categorical``."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "binary"
    if pd.api.types.is_numeric_dtype(series.dtype):
        vals = series.dropna().unique()
        if len(vals) > 0 and set(np.asarray(vals, dtype=float).tolist()) <= {0.0, 1.0}:
            return "binary"
        return "continuous"
    return "categorical"


def _pct(count: int, total: int) -> float:
    return 100.0 * count / total if total else math.nan


def _fmt_count(count: int, total: int) -> str:
    if not total:
        return "0"
    pct = _pct(count, total)
    text = f"{pct:.0f}" if pct >= 10 or pct == 0 else f"{pct:.1f}"
    return f"{count} ({text}%)"


def _fmt_mean_sd(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "NA"
    return f"{mean:.1f} ± {sd:.1f}" if not math.isnan(sd) else f"{mean:.1f}"


def contingency_test(table: np.ndarray) -> tuple[str, float, float]:
    """The paper's rule (as SPSS prints it): Fisher's exact for 2 x 2 tables, Pearson chi-square otherwise.

    For a 2 x 2 table SPSS's crosstabs print Fisher's exact test next to the chi-square,
    and the paper's binary p-values are the Fisher ones (sex: 0.098 where Pearson gives
    0.061). Larger tables get Pearson's chi-square (SPSS without the Exact Tests module).

    Parameters
    ----------
    table
        Levels x groups table of counts.

    Returns
    -------
    test, statistic, p_value
        ``"fisher"`` (two-sided exact p; statistic: the sample odds ratio) for a 2 x 2 table,
        ``"chi-square"`` (Pearson, no continuity correction; statistic chi2) for larger ones,
        or ``"none"`` (NaN) when a group is empty or only one level occurs.
    """
    tab = np.asarray(table, dtype=np.int64)
    tab = tab[tab.sum(axis=1) > 0]
    if tab.shape[0] < 2 or (tab.sum(axis=0) == 0).any():
        return "none", math.nan, math.nan
    with quiet():
        if tab.shape == (2, 2):
            fe = stats.fisher_exact(tab, alternative="two-sided")
            return "fisher", float(fe.statistic), float(fe.pvalue)
        chi = stats.chi2_contingency(tab, correction=False)
        return "chi-square", float(chi.statistic), float(chi.pvalue)


#: How each test's p-value is computed, for the ``p_method`` column of :func:`baseline`.
_P_METHOD: Final[dict[str, str]] = {"fisher": "exact", "chi-square": "asymptotic", "none": ""}


def mann_whitney_method(x: np.ndarray, y: np.ndarray) -> str:
    """``"exact"`` for small samples without ties (a group of at most 8), else ``"asymptotic"``.

    The exact p-value (SPSS's "Exact Sig.") is the permutation distribution of U, which
    has no correction for ties; otherwise the normal approximation with tie and continuity
    correction (SPSS's "Asymp. Sig."). This is scipy's ``method="auto"`` rule, made
    explicit so that the table can say which was used.
    """
    both = np.concatenate([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    ties = np.unique(both).size < both.size
    return "exact" if min(np.size(x), np.size(y)) <= 8 and not ties else "asymptotic"


def baseline(cohort: Cohort) -> pd.DataFrame:
    """Table 1: patient covariates by outcome.

    Continuous covariates (non-binary numeric, e.g. age, duration) are given as
    mean ± SD and compared with the Mann-Whitney U test (exact p for a group of at
    most 8 without ties, else asymptotic: :func:`mann_whitney_method`); categorical
    and 0/1 covariates as n (%) and compared, as SPSS prints it, with Fisher's exact
    test (two-sided) when the table is 2 x 2 and Pearson's chi-square (no continuity
    correction) when it is larger (:func:`contingency_test`).

    Parameters
    ----------
    cohort
        The cohort; every column of ``cohort.patients`` other than ``died`` is a row block.
        Patients of unknown outcome are left out (all three columns), as ``attrs["note"]`` says.

    Returns
    -------
    pandas.DataFrame
        One row per continuous variable, per 0/1 variable (``level`` ``"yes"``) and
        per level of a categorical variable: ``variable, level, kind, all,
        survivors, nonsurvivors`` (formatted as in the paper), the numbers behind
        them (``value_*``: mean or count; ``spread_*``: SD or percent), ``n_missing``,
        ``test`` (``"mann-whitney"``, ``"fisher"``, ``"chi-square"`` or ``"none"``),
        ``p_method`` (``"exact"`` or ``"asymptotic"``: how the p-value was computed;
        empty when there is no test), ``statistic, p_value`` (repeated on each level
        of one variable).
    """
    known = cohort.known_outcome()
    patients = known.patients
    dead = patients[DIED].to_numpy(dtype=float) == 1
    rows: list[dict[str, object]] = []
    for var in known.covariates:
        col = patients[var]
        kind = _kind(col)
        present = col.notna().to_numpy()
        n_missing = int((~present).sum())
        groups = {"all": present, "survivors": present & ~dead, "nonsurvivors": present & dead}
        if kind == "continuous":
            vals = col.to_numpy(dtype=float)
            row: dict[str, object] = {"variable": var, "level": "", "kind": kind}
            for g, mask in groups.items():
                x = vals[mask]
                mean = float(x.mean()) if x.size else math.nan
                sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
                row[g] = _fmt_mean_sd(mean, sd)
                row[f"value_{g}"] = mean
                row[f"spread_{g}"] = sd
            x, y = vals[groups["survivors"]], vals[groups["nonsurvivors"]]
            if x.size and y.size:
                method = mann_whitney_method(x, y)
                with quiet():
                    mw = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
                row.update(
                    test="mann-whitney",
                    p_method=method,
                    statistic=float(mw.statistic),
                    p_value=float(mw.pvalue),
                )
            else:
                row.update(test="none", p_method="", statistic=math.nan, p_value=math.nan)
            row["n_missing"] = n_missing
            rows.append(row)
            continue
        if kind == "binary":
            indicator = col.astype(float).to_numpy() == 1.0
            levels: list[tuple[str, np.ndarray]] = [("yes", indicator)]
            table = np.array(
                [
                    [(indicator & groups[g]).sum() for g in ("survivors", "nonsurvivors")],
                    [(~indicator & groups[g]).sum() for g in ("survivors", "nonsurvivors")],
                ]
            )
        else:
            cats = (
                list(col.cat.categories)
                if isinstance(col.dtype, pd.CategoricalDtype)
                else sorted(col.dropna().astype(str).unique())
            )
            as_str = col.astype(str).to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else None
            levels = []
            for cat in cats:
                hit = (col == cat).to_numpy(dtype=bool, na_value=False) if as_str is None else as_str == cat
                levels.append((str(cat), hit & present))
            table = np.array(
                [[(hit & groups[g]).sum() for g in ("survivors", "nonsurvivors")] for _, hit in levels]
            )
        test, statistic, p = contingency_test(table)
        for level, hit in levels:
            row = {"variable": var, "level": level, "kind": kind}
            for g, mask in groups.items():
                count, total = int((hit & mask).sum()), int(mask.sum())
                row[g] = _fmt_count(count, total)
                row[f"value_{g}"] = float(count)
                row[f"spread_{g}"] = _pct(count, total)
            row.update(
                test=test, p_method=_P_METHOD[test], statistic=statistic, p_value=p, n_missing=n_missing
            )
            rows.append(row)
    columns = [
        "variable",
        "level",
        "kind",
        "all",
        "survivors",
        "nonsurvivors",
        "value_all",
        "value_survivors",
        "value_nonsurvivors",
        "spread_all",
        "spread_survivors",
        "spread_nonsurvivors",
        "n_missing",
        "test",
        "p_method",
        "statistic",
        "p_value",
    ]
    return outcome_noted(pd.DataFrame(rows, columns=columns), cohort)


_GROUPS = ("all", "survivors", "nonsurvivors")
ADMISSION_COLUMNS: list[str] = [
    "marker",
    *(f"n_{g}" for g in _GROUPS),
    "n_missing",
    *(f"{s}_{g}" for s in ("mean", "sd", "median", "q1", "q3") for g in _GROUPS),
    "shapiro_p_survivors",
    "shapiro_p_nonsurvivors",
    "t_p_value",
    "mw_p_value",
    "summary",
    "test",
    "p_value",
    *_GROUPS,
]


def _describe(x: np.ndarray) -> dict[str, float]:
    n = x.size
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "median": math.nan, "q1": math.nan, "q3": math.nan}
    q1, med, q3 = np.percentile(x, [25.0, 50.0, 75.0], method=QUANTILE_METHOD)
    return {
        "n": n,
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if n > 1 else math.nan,
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
    }


def _fmt_summary(d: dict[str, float], summary: str) -> str:
    if d["n"] == 0:
        return "NA"
    if summary == "mean (SD)":
        return f"{d['mean']:.3g} ({d['sd']:.3g})"
    return f"{d['median']:.3g} ({d['q1']:.3g}-{d['q3']:.3g})"


def admission_labs(cohort: Cohort) -> pd.DataFrame:
    """Table 2: labs at each patient's first visit, by outcome.

    Normality is checked with Shapiro-Wilk in each group; if it is not rejected
    (p > 0.05) in both, the lab is summarised as mean (SD) and compared with the
    independent-samples (Student) t-test, otherwise as median (IQR) and compared
    with the Mann-Whitney U test. Both p-values are reported.

    Parameters
    ----------
    cohort
        The cohort; the value of each lab at the patient's first visit is used
        (a lab not drawn at the first visit counts as missing). Patients of unknown
        outcome are left out, as ``attrs["note"]`` says.

    Returns
    -------
    pandas.DataFrame
        One row per lab present: ``marker``, ``n_*`` per group and ``n_missing``,
        ``mean_*, sd_*, median_*, q1_*, q3_*`` for ``all/survivors/nonsurvivors``,
        ``shapiro_p_survivors, shapiro_p_nonsurvivors, t_p_value, mw_p_value``,
        the chosen ``summary``, ``test`` and ``p_value``, and the formatted
        ``all, survivors, nonsurvivors`` strings.
    """
    known = cohort.known_outcome()
    first = known.admission()
    dead = first[DIED].to_numpy(dtype=float) == 1
    rows: list[dict[str, object]] = []
    for lab in present_labs(known.visits, known.declared_labs):
        vals = first[lab].to_numpy(dtype=float)
        ok = ~np.isnan(vals)
        data = {"all": vals[ok], "survivors": vals[ok & ~dead], "nonsurvivors": vals[ok & dead]}
        desc = {g: _describe(x) for g, x in data.items()}
        row: dict[str, object] = {"marker": lab}
        for g in data:
            row[f"n_{g}"] = desc[g]["n"]
        row["n_missing"] = int((~ok).sum())
        for stat in ("mean", "sd", "median", "q1", "q3"):
            for g in data:
                row[f"{stat}_{g}"] = desc[g][stat]
        x, y = data["survivors"], data["nonsurvivors"]
        sw = {}
        with quiet():
            for g, z in (("survivors", x), ("nonsurvivors", y)):
                sw[g] = float(stats.shapiro(z).pvalue) if z.size >= 3 and np.ptp(z) > 0 else math.nan
            if x.size and y.size:
                t_p = float(stats.ttest_ind(x, y, equal_var=True).pvalue) if x.size + y.size > 2 else math.nan
                mw_p = float(stats.mannwhitneyu(x, y, alternative="two-sided", method=MW_METHOD).pvalue)
            else:
                t_p = mw_p = math.nan
        normal = all(not math.isnan(v) and v > ALPHA for v in sw.values())
        summary = "mean (SD)" if normal else "median (IQR)"
        test = "t-test" if normal else "mann-whitney"
        if not (x.size and y.size):
            test = "none"
        row.update(
            shapiro_p_survivors=sw["survivors"],
            shapiro_p_nonsurvivors=sw["nonsurvivors"],
            t_p_value=t_p,
            mw_p_value=mw_p,
            summary=summary,
            test=test,
            p_value=t_p if test == "t-test" else mw_p,
        )
        for g in data:
            row[g] = _fmt_summary(desc[g], summary)
        rows.append(row)
    return outcome_noted(pd.DataFrame(rows, columns=ADMISSION_COLUMNS), cohort)
