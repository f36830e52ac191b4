"""Supp. S3: per-period Mann-Whitney agrees with scipy; empty cells give NaN, not errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesct.classical import period_comparison, period_pvalues, period_tests, scan_arrays
from bayesct.constants import CT, PERIOD_LABELS


def _by_group(cohort, label):
    scans = cohort.scans()
    scans = scans.loc[scans["period"] == label]
    return scans.loc[scans["died"] == 0], scans.loc[scans["died"] == 1]


def test_matches_scipy_per_period(cohort):
    table = period_comparison(cohort)
    assert list(table["period"]) == list(PERIOD_LABELS)
    for _, row in table.iterrows():
        surv, dead = _by_group(cohort, row["period"])
        assert row["n_survivors"] == len(surv)
        assert row["n_nonsurvivors"] == len(dead)
        if len(surv) == 0 or len(dead) == 0:
            assert np.isnan(row["p_value"])
            continue
        ref = stats.mannwhitneyu(surv[CT], dead[CT], alternative="two-sided", method="asymptotic")
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert row["statistic"] == pytest.approx(ref.statistic)
        ref_day = stats.mannwhitneyu(surv["day"], dead["day"], alternative="two-sided", method="asymptotic")
        assert row["day_p_value"] == pytest.approx(ref_day.pvalue, rel=1e-12)
        assert row["mean_survivors"] == pytest.approx(surv[CT].mean())
        assert row["sd_nonsurvivors"] == pytest.approx(dead[CT].std(ddof=1), nan_ok=True)
        assert row["median_nonsurvivors"] == pytest.approx(dead[CT].median())
        assert row["mean_day_nonsurvivors"] == pytest.approx(dead["day"].mean())


def test_fast_core_is_the_table(cohort):
    sa = scan_arrays(cohort)
    p = period_pvalues(sa.died, sa.period_codes, sa.ct)
    assert p.shape == (5,)
    np.testing.assert_allclose(p, period_comparison(cohort)["p_value"].to_numpy(), equal_nan=True)
    # the 2-D call equals separate 1-D calls column by column
    _, p2 = period_tests(sa.died, sa.period_codes, np.column_stack([sa.ct, sa.day]))
    np.testing.assert_allclose(p2[:, 0], p, equal_nan=True)
    np.testing.assert_allclose(p2[:, 1], period_pvalues(sa.died, sa.period_codes, sa.day), equal_nan=True)


def test_period_without_nonsurvivors_and_empty_period(cohort):
    v = cohort.visits
    dead = v["patient_id"].map(cohort.patients["died"]).to_numpy() == 1
    ct = v[CT].to_numpy(dtype=float).copy()
    ct[dead & (v["period"] == "0-5").to_numpy()] = np.nan  # no nonsurvivor scan in 0-5
    ct[(v["period"] == "16-20").to_numpy()] = np.nan  # no scan at all in 16-20
    table = period_comparison(cohort.with_values({CT: ct}))
    assert len(table) == 5
    first = table.iloc[0]
    assert first["n_nonsurvivors"] == 0
    assert np.isnan(first["p_value"]) and np.isnan(first["mean_nonsurvivors"])
    assert first["n_survivors"] > 0 and np.isfinite(first["mean_survivors"])
    assert "nonsurvivor" in first["note"]
    empty = table.loc[table["period"] == "16-20"].iloc[0]
    assert empty["n_survivors"] == 0 and empty["n_nonsurvivors"] == 0
    assert np.isnan(empty["p_value"]) and np.isnan(empty["day_p_value"])
    assert empty["note"] == "no scans in this period"
    assert np.isfinite(table.loc[table["period"] == ">20", "p_value"].iloc[0])


def test_no_ct_column(cohort):
    table = period_comparison(cohort.with_values({CT: np.full(cohort.n_visits, np.nan)}))
    assert (table["n_survivors"] == 0).all()
    assert table["p_value"].isna().all()
