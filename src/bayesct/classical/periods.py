"""Supp. Table S3 / Fig 2: CT score by period since onset, survivors vs non-survivors."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesct.classical._common import MW_METHOD, nan_stats, outcome_noted, quiet, scan_arrays
from bayesct.constants import PERIOD_LABELS
from bayesct.data.cohort import Cohort

N_PERIODS = len(PERIOD_LABELS)


def period_tests(
    died: np.ndarray, period_codes: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney U test of survivors vs non-survivors within each period.

    Parameters
    ----------
    died
        Outcome (0/1) of each observation (scan).
    period_codes
        Period index 0..4 of each observation.
    values
        ``(n,)`` or ``(n, m)``: the values compared (CT score, day, ...). With
        ``m`` columns, one vectorised scipy call per period tests all of them.

    Returns
    -------
    statistic, p_value
        Arrays of shape ``(5,)`` (or ``(5, m)``): the U statistic of the survivors
        and the two-sided asymptotic p-value, NaN where a group has no data.
    """
    died = np.asarray(died)
    codes = np.asarray(period_codes)
    vals = np.asarray(values, dtype=float)
    shape = (N_PERIODS, *vals.shape[1:])
    ustat = np.full(shape, np.nan)
    pval = np.full(shape, np.nan)
    dead = died == 1
    with quiet():
        for k in range(N_PERIODS):
            in_k = codes == k
            x = vals[in_k & ~dead]
            y = vals[in_k & dead]
            if len(x) == 0 or len(y) == 0:
                continue
            res = stats.mannwhitneyu(x, y, alternative="two-sided", method=MW_METHOD, axis=0)
            ustat[k] = res.statistic
            pval[k] = res.pvalue
    return ustat, pval


def period_pvalues(died_per_scan: np.ndarray, period_codes: np.ndarray, ct: np.ndarray) -> np.ndarray:
    """Per-period Mann-Whitney p-values of the CT score (the fast core of Supp. S3).

    Parameters
    ----------
    died_per_scan
        Outcome (0/1) of each scan's patient.
    period_codes
        Period index 0..4 of each scan.
    ct
        CT score of each scan, ``(n,)``; or ``(n, m)`` to test ``m`` value columns at once.

    Returns
    -------
    numpy.ndarray
        Shape ``(5,)`` (or ``(5, m)``), two-sided p per period, NaN where a group is empty.
    """
    return period_tests(died_per_scan, period_codes, ct)[1]


def period_comparison(cohort: Cohort) -> pd.DataFrame:
    """CT score by period and outcome, Supp. Table S3 / Fig 2.

    Parameters
    ----------
    cohort
        The cohort; only visits with a CT score are used, of the patients whose outcome is
        known (``attrs["note"]`` names those left out).

    Returns
    -------
    pandas.DataFrame
        One row per period (all five, in order, NaN statistics where empty) with
        ``n_survivors, n_nonsurvivors``, ``mean_/sd_/median_`` of the CT score per
        group, the Mann-Whitney ``statistic`` (U of the survivors) and two-sided
        ``p_value``, the mean scan day per group with its Mann-Whitney
        ``day_p_value``, and a ``note`` where a group has no scans.
    """
    sa = scan_arrays(cohort).known_outcome()
    both = np.column_stack([sa.ct, sa.day])
    ustat, pval = period_tests(sa.died, sa.period_codes, both)
    dead = sa.died == 1
    rows = []
    for k, label in enumerate(PERIOD_LABELS):
        in_k = sa.period_codes == k
        ms, md = in_k & ~dead, in_k & dead
        s_mean, s_sd, s_med = nan_stats(sa.ct[ms])
        d_mean, d_sd, d_med = nan_stats(sa.ct[md])
        day_s = float(sa.day[ms].mean()) if ms.any() else np.nan
        day_d = float(sa.day[md].mean()) if md.any() else np.nan
        n_s, n_d = int(ms.sum()), int(md.sum())
        note = ""
        if n_s == 0 and n_d == 0:
            note = "no scans in this period"
        elif n_s == 0:
            note = "no survivor scans in this period"
        elif n_d == 0:
            note = "no nonsurvivor scans in this period"
        rows.append(
            {
                "period": label,
                "n_survivors": n_s,
                "n_nonsurvivors": n_d,
                "mean_survivors": s_mean,
                "sd_survivors": s_sd,
                "median_survivors": s_med,
                "mean_nonsurvivors": d_mean,
                "sd_nonsurvivors": d_sd,
                "median_nonsurvivors": d_med,
                "statistic": float(ustat[k, 0]),
                "p_value": float(pval[k, 0]),
                "mean_day_survivors": day_s,
                "mean_day_nonsurvivors": day_d,
                "day_p_value": float(pval[k, 1]),
                "note": note,
            }
        )
    return outcome_noted(pd.DataFrame(rows), cohort)
