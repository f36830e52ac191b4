"""Table 3: the per-scan logistic fit agrees with statsmodels; the grid with the delta method."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from bayesct.classical import (
    fit_logistic,
    logistic_coefs,
    mortality_grid,
    mortality_logistic,
    risk_band,
    scan_arrays,
)
from bayesct.constants import CT, CT_MAX, DIED, PERIOD_LABELS


def _reference(cohort):
    scans = cohort.scans()
    exog = sm.add_constant(scans[[CT, "day"]].to_numpy(dtype=float))
    return sm.GLM(scans[DIED].to_numpy(dtype=float), exog, family=sm.families.Binomial()).fit()


def test_matches_statsmodels_glm(paper_sized):
    table = mortality_logistic(paper_sized)
    ref = _reference(paper_sized)
    assert list(table["term"]) == ["intercept", "ct_score", "day"]
    np.testing.assert_allclose(table["coef"], ref.params, rtol=1e-6)
    np.testing.assert_allclose(table["se"], ref.bse, rtol=1e-5)
    np.testing.assert_allclose(table["p_value"], ref.pvalues, rtol=1e-4)
    ci = np.exp(ref.conf_int(alpha=0.05))
    np.testing.assert_allclose(table["or_ci_low"], ci[:, 0], rtol=1e-5)
    np.testing.assert_allclose(table["or_ci_high"], ci[:, 1], rtol=1e-5)
    np.testing.assert_allclose(table["odds_ratio"], np.exp(ref.params), rtol=1e-6)
    assert table["converged"].all()
    assert (table["n_scans"] == paper_sized.n_scans).all()
    sa = scan_arrays(paper_sized)
    np.testing.assert_allclose(logistic_coefs(sa.ct, sa.day, sa.died), table["coef"].to_numpy())


def test_grid_delta_method(paper_sized):
    grid = mortality_grid(paper_sized)
    ref = _reference(paper_sized)
    scans = paper_sized.scans()
    periods = [p for p in PERIOD_LABELS if (scans["period"] == p).any()]
    assert list(dict.fromkeys(grid["period"])) == periods
    assert len(grid) == len(periods) * (CT_MAX + 1)
    for label in periods:
        day = scans.loc[scans["period"] == label, "day"].mean()
        block = grid.loc[grid["period"] == label]
        assert block["day"].iloc[0] == pytest.approx(day)
        x = np.column_stack([np.ones(CT_MAX + 1), np.arange(CT_MAX + 1), np.full(CT_MAX + 1, day)])
        eta = x @ ref.params
        se = np.sqrt(np.sum((x @ ref.cov_params()) * x, axis=1))
        z = stats.norm.ppf(0.975)
        np.testing.assert_allclose(block["probability"], expit(eta), rtol=1e-5)
        np.testing.assert_allclose(block["ci_low"], expit(eta - z * se), rtol=1e-4)
        np.testing.assert_allclose(block["ci_high"], expit(eta + z * se), rtol=1e-4)
        pred = ref.get_prediction(x).summary_frame(alpha=0.05)
        np.testing.assert_allclose(block["ci_low"], pred["mean_ci_lower"], rtol=1e-4)
    assert set(grid["band"]) <= {"green", "yellow", "red", "blue"}
    assert all(risk_band(p) == b for p, b in zip(grid["probability"], grid["band"], strict=True))


def test_grid_given_days_and_scores(cohort):
    grid = mortality_grid(cohort, days=[3.0, 12.0], scores=[0, 12, 24])
    assert list(grid["period"]) == ["0-5"] * 3 + ["11-15"] * 3
    grid2 = mortality_grid(cohort, days={"early": 4.0})
    assert set(grid2["period"]) == {"early"} and len(grid2) == CT_MAX + 1


def test_risk_bands():
    assert risk_band(0.0) == "green"
    assert risk_band(0.049) == "green"
    assert risk_band(0.05) == "yellow"
    assert risk_band(0.3) == "red"
    assert risk_band(0.5) == "blue"
    assert risk_band(1.0) == "blue"
    assert risk_band(float("nan")) == ""


def test_perfect_separation_gives_nan_and_note(cohort):
    died = cohort.patients[DIED].to_numpy()
    visit_died = cohort.visits["patient_id"].map(cohort.patients[DIED]).to_numpy()
    ct = np.where(visit_died == 1, 20.0, 3.0)
    ct[np.isnan(cohort.visits[CT].to_numpy(dtype=float))] = np.nan
    separated = cohort.with_values({CT: ct, DIED: died})
    table = mortality_logistic(separated)
    assert table["coef"].isna().all()
    assert not table["converged"].any()
    assert "separation" in table["note"].iloc[0]
    grid = mortality_grid(separated)
    assert grid["probability"].isna().all() and (grid["band"] == "").all()
    assert "separation" in grid["note"].iloc[0]


def test_quasi_separation_and_degenerate_outcomes():
    ct = np.array([0, 1, 2, 3, 4, 5, 5, 6, 7, 8], dtype=float)
    day = np.array([1, 5, 2, 8, 3, 4, 9, 2, 6, 7], dtype=float)
    died = (ct >= 5).astype(int)
    died[5] = 0  # quasi-complete: overlap only at ct == 5
    fit = fit_logistic(ct, day, died)
    assert np.isnan(fit.params).all() and fit.note
    assert np.isnan(logistic_coefs(ct, day, np.zeros(10))).all()
    assert "one value" in fit_logistic(ct, day, np.ones(10)).note
    assert "singular" in fit_logistic(np.ones(10), day, died).note
