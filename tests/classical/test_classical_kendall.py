"""Table 4: Kendall tau-b agrees with scipy on pairwise-complete scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesct.classical import kendall, kendall_stats, kendall_taus, scan_arrays
from bayesct.constants import CT


def test_matches_scipy(paper_sized):
    table = kendall(paper_sized)
    assert list(table.columns) == ["marker", "tau", "p_value", "n"]
    assert list(table["marker"]) == list(paper_sized.labs)
    scans = paper_sized.scans()
    for _, row in table.iterrows():
        both = scans[[CT, row["marker"]]].dropna()
        ref = stats.kendalltau(both[CT], both[row["marker"]], variant="b")
        assert row["n"] == len(both)
        assert row["tau"] == pytest.approx(ref.statistic, rel=1e-12)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_fast_core(paper_sized):
    sa = scan_arrays(paper_sized)
    taus = kendall_taus(sa.ct, sa.labs)
    assert taus.shape == (len(sa.lab_names),)
    np.testing.assert_allclose(taus, kendall(paper_sized)["tau"].to_numpy())


def test_absent_marker_and_degenerate_columns(make_cohort):
    c = make_cohort(labs=("nlr",))
    table = kendall(c)
    assert list(table["marker"]) == ["nlr"]
    ct = np.array([1.0, 2.0, 3.0, 4.0])
    labs = np.column_stack([[np.nan, np.nan, np.nan, 1.0], [5.0, 5.0, 5.0, 5.0], [1.0, 3.0, 2.0, 4.0]])
    tau, _, n = kendall_stats(ct, labs)
    assert np.isnan(tau[0]) and n[0] == 1
    assert np.isnan(tau[1])  # constant lab
    assert tau[2] == pytest.approx(stats.kendalltau(ct, labs[:, 2]).statistic)


def test_no_labs(make_cohort):
    table = kendall(make_cohort(labs=()))
    assert table.empty
    assert list(table.columns) == ["marker", "tau", "p_value", "n"]
