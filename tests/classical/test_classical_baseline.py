"""Tables 1 and 2 agree with scipy called directly, and follow the paper's choice of test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesct.classical import admission_labs, baseline, contingency_test
from bayesct.data.cohort import Cohort


def _groups(cohort, column):
    p = cohort.patients
    return p.loc[p["died"] == 0, column], p.loc[p["died"] == 1, column]


def test_continuous_rows(cohort):
    table = baseline(cohort)
    for var in ("age", "duration"):
        row = table.loc[table["variable"] == var].iloc[0]
        surv, dead = _groups(cohort, var)
        assert row["kind"] == "continuous" and row["test"] == "mann-whitney"
        assert row["p_method"] == "asymptotic"  # groups larger than 8
        ref = stats.mannwhitneyu(surv, dead, alternative="two-sided", method="asymptotic")
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert row["value_survivors"] == pytest.approx(surv.mean())
        assert row["spread_nonsurvivors"] == pytest.approx(dead.std(ddof=1))
        assert row["value_all"] == pytest.approx(cohort.patients[var].mean())
        assert "±" in row["all"]


def test_categorical_and_binary_rows(cohort):
    table = baseline(cohort)
    p = cohort.patients
    sex = table.loc[table["variable"] == "sex"]
    assert list(sex["level"]) == ["female", "male"]
    tab = pd.crosstab(p["sex"], p["died"]).to_numpy()
    # a two-level variable is a 2 x 2 table: Fisher's exact test, whatever the expected counts
    assert (sex["test"] == "fisher").all() and (sex["p_method"] == "exact").all()
    assert sex["p_value"].iloc[0] == pytest.approx(stats.fisher_exact(tab).pvalue, rel=1e-12)
    assert sex["value_all"].sum() == len(p)
    for var in ("fever", "dyspnea", "hypertension"):
        row = table.loc[table["variable"] == var].iloc[0]
        assert row["kind"] == "binary" and row["level"] == "yes"
        tab = pd.crosstab(p[var], p["died"]).reindex(index=[1, 0], columns=[0, 1], fill_value=0).to_numpy()
        assert row["test"] == "fisher" and row["p_method"] == "exact"
        assert row["p_value"] == pytest.approx(stats.fisher_exact(tab).pvalue, rel=1e-12)
        assert row["value_nonsurvivors"] == tab[0, 1]
        assert row["spread_survivors"] == pytest.approx(100 * tab[0, 0] / tab[:, 0].sum())


def test_contingency_rule_and_degenerate_tables():
    # 2 x 2: Fisher's exact even when every expected count is >= 5 (SPSS's Exact Sig.)
    big = np.array([[30, 20], [25, 25]])
    assert contingency_test(big)[0] == "fisher"
    assert contingency_test(big)[2] == pytest.approx(stats.fisher_exact(big).pvalue, rel=1e-12)
    small = np.array([[3, 1], [25, 25]])
    assert contingency_test(small)[0] == "fisher"
    assert contingency_test(small)[2] == pytest.approx(stats.fisher_exact(small).pvalue)
    # larger tables: Pearson chi-square without continuity correction
    three = np.array([[30, 20], [25, 25], [2, 6]])
    assert contingency_test(three)[0] == "chi-square"
    assert contingency_test(three)[2] == pytest.approx(stats.chi2_contingency(three, correction=False).pvalue)
    # a 3-level variable with an unused level is a 2 x 2 table
    assert contingency_test(np.array([[30, 20], [0, 0], [25, 25]]))[0] == "fisher"
    assert contingency_test(np.array([[68, 25], [0, 0]]))[0] == "none"  # constant variable
    assert contingency_test(np.array([[5, 0], [6, 0]]))[0] == "none"  # one group empty


def _hand_made_cohort(died, **covariates):
    n = len(died)
    ids = [f"H{i:02d}" for i in range(n)]
    visits = pd.DataFrame(
        {"patient_id": ids, "day": 3.0, "period": "0-5", "ct_score": np.arange(n, dtype=float) % 20}
    )
    patients = pd.DataFrame({"died": np.asarray(died, dtype=np.int64), **covariates}, index=pd.Index(ids))
    patients.index.name = "patient_id"
    return Cohort(visits, patients, source="hand-made")


def test_binary_row_is_fisher_exact_on_a_hand_made_2x2():
    # exposed: 12 of 20 survivors, 3 of 10 non-survivors; all expected counts >= 5,
    # so the old rule (chi-square unless an expected count < 5) gave Pearson's p here
    died = [0] * 20 + [1] * 10
    exposed = [1] * 12 + [0] * 8 + [1] * 3 + [0] * 7
    table = baseline(_hand_made_cohort(died, exposed=exposed))
    row = table.loc[table["variable"] == "exposed"].iloc[0]
    tab = np.array([[12, 3], [8, 7]])
    assert (stats.chi2_contingency(tab, correction=False).expected_freq >= 5).all()
    fisher = stats.fisher_exact(tab, alternative="two-sided")
    assert row["test"] == "fisher" and row["p_method"] == "exact"
    assert row["p_value"] == pytest.approx(fisher.pvalue, rel=1e-12)
    assert row["statistic"] == pytest.approx(fisher.statistic)
    assert row["p_value"] != pytest.approx(stats.chi2_contingency(tab, correction=False).pvalue)


def test_mann_whitney_exact_for_small_samples_without_ties():
    died = [0] * 7 + [1] * 5
    score = [1.0, 2.0, 3.5, 4.0, 6.0, 7.0, 9.0, 5.0, 8.0, 10.0, 11.0, 12.0]
    row = baseline(_hand_made_cohort(died, score=score)).query("variable == 'score'").iloc[0]
    x, y = score[:7], score[7:]
    exact = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
    assert row["test"] == "mann-whitney" and row["p_method"] == "exact"
    assert row["p_value"] == pytest.approx(exact.pvalue, rel=1e-12)
    assert row["p_value"] == pytest.approx(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    # a tie -> the asymptotic p with tie correction
    tied = [*score[:6], 5.0, *score[7:]]
    row = baseline(_hand_made_cohort(died, score=tied)).query("variable == 'score'").iloc[0]
    assert row["p_method"] == "asymptotic"
    ref = stats.mannwhitneyu(tied[:7], tied[7:], alternative="two-sided", method="asymptotic")
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_missing_and_constant_covariates(cohort):
    patients = cohort.patients.copy()
    patients["smoker"] = pd.array([1, 0, None] * (len(patients) // 3), dtype="Float64")
    patients["fever"] = 1
    table = baseline(Cohort(cohort.visits, patients, source="test"))
    smoker = table.loc[table["variable"] == "smoker"].iloc[0]
    assert smoker["n_missing"] == len(patients) // 3
    assert table.loc[table["variable"] == "fever", "test"].iloc[0] == "none"


def test_admission_matches_scipy(paper_sized):
    table = admission_labs(paper_sized)
    first = paper_sized.admission()
    assert list(table["marker"]) == list(paper_sized.labs)
    for _, row in table.iterrows():
        lab = row["marker"]
        surv = first.loc[first["died"] == 0, lab].dropna().to_numpy()
        dead = first.loc[first["died"] == 1, lab].dropna().to_numpy()
        assert (row["n_survivors"], row["n_nonsurvivors"]) == (len(surv), len(dead))
        sw_s, sw_d = stats.shapiro(surv).pvalue, stats.shapiro(dead).pvalue
        assert row["shapiro_p_survivors"] == pytest.approx(sw_s)
        assert row["shapiro_p_nonsurvivors"] == pytest.approx(sw_d)
        t_p = stats.ttest_ind(surv, dead).pvalue
        mw_p = stats.mannwhitneyu(surv, dead, alternative="two-sided", method="asymptotic").pvalue
        assert row["t_p_value"] == pytest.approx(t_p, rel=1e-12)
        assert row["mw_p_value"] == pytest.approx(mw_p, rel=1e-12)
        normal = sw_s > 0.05 and sw_d > 0.05
        assert row["test"] == ("t-test" if normal else "mann-whitney")
        assert row["summary"] == ("mean (SD)" if normal else "median (IQR)")
        assert row["p_value"] == pytest.approx(t_p if normal else mw_p)
        assert row["median_survivors"] == pytest.approx(np.median(surv))
        assert row["sd_nonsurvivors"] == pytest.approx(np.std(dead, ddof=1))
    # both branches of the rule occur on this cohort
    assert set(table["test"]) == {"t-test", "mann-whitney"}


def test_admission_absent_labs(make_cohort):
    table = admission_labs(make_cohort(labs=("ldh",)))
    assert list(table["marker"]) == ["ldh"]


def test_admission_no_labs_keeps_columns(make_cohort):
    table = admission_labs(make_cohort(labs=()))
    assert table.empty
    assert {"marker", "test", "p_value", "t_p_value", "mw_p_value"} <= set(table.columns)
