"""Patients of unknown outcome (a blank ``died``): the tables split by outcome leave them out, and say so;
Kendall's tau, which does not use the outcome, keeps them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesct.classical import (
    admission_labs,
    baseline,
    kendall,
    mixed_model,
    mortality_grid,
    mortality_logistic,
    period_comparison,
    run_all,
    scan_arrays,
    summary_markdown,
)
from bayesct.data.cohort import Cohort

#: Two patients whose outcome is not known yet: one who died and one who survived in the full data.
UNKNOWN = ("P001", "P004")


@pytest.fixture(scope="module")
def unknown(cohort: Cohort) -> Cohort:
    died = cohort.patients["died"].to_numpy(dtype=float).copy()
    died[cohort.patient_ids.isin(UNKNOWN)] = np.nan
    assert set(cohort.patients.loc[list(UNKNOWN), "died"]) == {0, 1}
    return cohort.with_values({"died": died})


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_the_cohort_without_them(unknown: Cohort, cohort: Cohort) -> None:
    known = unknown.known_outcome()
    assert known.n_patients == cohort.n_patients - 2 and not known.patient_ids.isin(UNKNOWN).any()
    assert known.outcome_known.all() and known.patients["died"].dtype == np.int64
    assert (unknown.n_deaths, unknown.n_survivors) == (known.n_deaths, known.n_survivors)
    assert cohort.known_outcome() is cohort


@pytest.mark.parametrize(
    "table",
    [baseline, admission_labs, period_comparison, mixed_model, mortality_logistic, mortality_grid],
    ids=lambda f: f.__name__,
)
def test_tables_by_outcome_equal_those_of_the_cohort_without_them(table, unknown: Cohort) -> None:
    without = unknown.drop_patients(UNKNOWN)
    ours, theirs = table(unknown), table(without)
    _same(ours, theirs)
    assert ours.attrs["note"] == "2 patients of unknown outcome (blank died: P001, P004) left out"
    assert "note" not in theirs.attrs


def test_table_1_counts_leave_them_out(unknown: Cohort, cohort: Cohort) -> None:
    table = baseline(unknown).set_index(["variable", "level"])
    full = baseline(cohort).set_index(["variable", "level"])
    n_known = unknown.n_patients - 2
    fever = table.loc[("fever", "yes")]
    assert fever["spread_all"] == pytest.approx(100 * fever["value_all"] / n_known)
    assert (
        fever["value_all"]
        == full.loc[("fever", "yes"), "value_all"] - cohort.patients.loc[list(UNKNOWN), "fever"].sum()
    )


def test_per_scan_arrays_keep_every_scan_and_split_off_the_known(unknown: Cohort) -> None:
    sa = scan_arrays(unknown)
    assert sa.n_scans == unknown.n_scans and np.isnan(sa.died).sum() > 0
    so = sa.known_outcome()
    assert not np.isnan(so.died).any()
    assert so.n_scans == scan_arrays(unknown.drop_patients(UNKNOWN)).n_scans
    assert mortality_logistic(unknown)["n_scans"].iloc[0] == so.n_scans


def test_kendall_tau_keeps_them(unknown: Cohort, cohort: Cohort) -> None:
    _same(kendall(unknown), kendall(cohort))
    assert "note" not in kendall(unknown).attrs


def test_summary_says_who_was_left_out(unknown: Cohort, cohort: Cohort) -> None:
    text = summary_markdown(run_all(unknown))
    assert text.count("Note: 2 patients of unknown outcome (blank died: P001, P004) left out.") == 6
    assert "unknown outcome" not in summary_markdown(run_all(cohort))
