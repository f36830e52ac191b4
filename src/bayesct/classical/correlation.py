"""Table 4: Kendall tau-b between the CT score and each lab, over all scans."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesct.classical._common import quiet, scan_arrays
from bayesct.data.cohort import Cohort


def kendall_stats(ct: np.ndarray, labs_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kendall tau-b of the CT score with each lab column, on pairs observed in both.

    Parameters
    ----------
    ct
        CT score of each scan, shape ``(n,)``.
    labs_matrix
        Lab values at the same scans, shape ``(n, k)`` (or ``(n,)`` for one lab);
        NaN where not drawn.

    Returns
    -------
    tau, p_value, n
        Arrays of shape ``(k,)``: tau-b, its two-sided p (scipy's default
        method) and the number of complete pairs; NaN tau/p with fewer than
        two pairs or a constant column.
    """
    x_all = np.asarray(ct, dtype=float)
    labs = np.asarray(labs_matrix, dtype=float)
    if labs.ndim == 1:
        labs = labs[:, None]
    k = labs.shape[1]
    tau = np.full(k, np.nan)
    pval = np.full(k, np.nan)
    count = np.zeros(k, dtype=np.int64)
    x_ok = ~np.isnan(x_all)
    with quiet():
        for j in range(k):
            y_all = labs[:, j]
            ok = x_ok & ~np.isnan(y_all)
            n = int(ok.sum())
            count[j] = n
            if n < 2:
                continue
            res = stats.kendalltau(x_all[ok], y_all[ok], variant="b")
            tau[j] = res.statistic
            pval[j] = res.pvalue
    return tau, pval, count


def kendall_taus(ct: np.ndarray, labs_matrix: np.ndarray) -> np.ndarray:
    """Kendall tau-b of the CT score with each lab column (the fast core of Table 4).

    Parameters
    ----------
    ct
        CT score of each scan, shape ``(n,)``.
    labs_matrix
        Lab values at the same scans, shape ``(n, k)``, NaN where not drawn.

    Returns
    -------
    numpy.ndarray
        Shape ``(k,)``, tau-b per lab (NaN where undefined).
    """
    return kendall_stats(ct, labs_matrix)[0]


def kendall(cohort: Cohort) -> pd.DataFrame:
    """Table 4: Kendall tau-b of the CT score with each lab present.

    Parameters
    ----------
    cohort
        The cohort; pairs are all scans where the CT score and the lab are both observed.

    Returns
    -------
    pandas.DataFrame
        Columns ``marker, tau, p_value, n``, one row per lab present in the cohort,
        in reporting order.
    """
    sa = scan_arrays(cohort)
    tau, pval, count = kendall_stats(sa.ct, sa.labs)
    return pd.DataFrame(
        {
            "marker": list(sa.lab_names),
            "tau": tau,
            "p_value": pval,
            "n": count,
        }
    )
