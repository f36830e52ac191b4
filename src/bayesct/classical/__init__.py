"""The paper's frequentist tables, on any :class:`~bayesct.data.Cohort` (scipy, statsmodels).

One function per table (each ``f(cohort) -> pandas.DataFrame``):

========================  ===========================================================
:func:`baseline`          Table 1: covariates by outcome (Mann-Whitney, chi-square, Fisher)
:func:`admission_labs`    Table 2: first-visit labs (Shapiro-Wilk, then t-test or Mann-Whitney)
:func:`period_comparison` Supp. S3 / Fig 2: CT score per period, Mann-Whitney
:func:`mixed_model`       Supp. S4: group x period linear mixed models, Wald tests
:func:`mortality_logistic` Table 3: per-scan logistic regression ``died ~ ct_score + day``
:func:`mortality_grid`    Table 3: fitted mortality by CT score and day, with colour bands
:func:`kendall`           Table 4: Kendall tau-b of CT score with each lab
========================  ===========================================================

The fast numeric cores (:func:`period_pvalues`, :func:`kendall_taus`,
:func:`logistic_coefs`, on the arrays of :func:`scan_arrays`) are what the table
functions themselves use; the posterior predictive checks call them directly.
"""

from bayesct.classical._common import ScanArrays, format_p, scan_arrays
from bayesct.classical.baseline import admission_labs, baseline, contingency_test
from bayesct.classical.correlation import kendall, kendall_stats, kendall_taus
from bayesct.classical.mixed import marker_scale, mixed_model
from bayesct.classical.mortality import (
    LOGISTIC_TERMS,
    LogisticFit,
    fit_logistic,
    logistic_coefs,
    mortality_grid,
    mortality_logistic,
    risk_band,
)
from bayesct.classical.periods import period_comparison, period_pvalues, period_tests
from bayesct.classical.report import (
    PAPER_TAU,
    TABLE_KEYS,
    findings,
    markdown_table,
    run_all,
    summary_markdown,
    write_tables,
)

__all__ = [
    "LOGISTIC_TERMS",
    "PAPER_TAU",
    "TABLE_KEYS",
    "LogisticFit",
    "ScanArrays",
    "admission_labs",
    "baseline",
    "contingency_test",
    "findings",
    "fit_logistic",
    "format_p",
    "kendall",
    "kendall_stats",
    "kendall_taus",
    "logistic_coefs",
    "markdown_table",
    "marker_scale",
    "mixed_model",
    "mortality_grid",
    "mortality_logistic",
    "period_comparison",
    "period_pvalues",
    "period_tests",
    "risk_band",
    "run_all",
    "scan_arrays",
    "summary_markdown",
    "write_tables",
]
