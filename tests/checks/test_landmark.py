"""Dynamic prediction at landmark days (bayesct.checks.calibration.landmark_accuracy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayesct.checks.calibration import landmark_accuracy, landmark_lines, mortality_calibration
from bayesct.modeling.posterior import PosteriorModel
from bayesct.risk import history_terms


def test_landmark_history_holds_only_what_was_observed_by_then(mock_fit):
    """The landmark history of a patient is their scans and labs on or before day L, and its
    risk is the importance sampler's on exactly those."""
    from bayesct.risk import _importance, _patient_obs

    L = 8.0
    pm = PosteriorModel.from_fit(mock_fit, max_draws=40)
    d = pm.design
    i = int(d.ct.patient[np.flatnonzero(d.ct.day > L)[0]])  # a patient scanned after L
    obs = _patient_obs(d, i, until=L)
    full = _patient_obs(d, i)
    assert np.all(obs.ct_day <= L) and len(obs.ct_day) < len(full.ct_day)
    assert all(np.all(days <= L) for days, _ in obs.labs.values())
    np.testing.assert_array_equal(obs.ct_score, full.ct_score[full.ct_day <= L])
    p_L = history_terms(pm, seed=2, until=L)[0][:, i]
    res, _ = _importance(pm, obs, d.covariates[i : i + 1], method="laplace", n_effects=256, seed=2 + i)
    np.testing.assert_allclose(p_L, res.p)
    assert np.max(np.abs(p_L - history_terms(pm, seed=2)[0][:, i])) > 1e-4


def test_all_data_row_is_the_mortality_calibration(mock_fit):
    table = landmark_accuracy(mock_fit, landmarks=(-1.0, 6.0), max_draws=60)
    assert list(table["landmark"][:2]) == [-1.0, 6.0] and math.isinf(table["landmark"].iloc[-1])
    assert table["n_patients"].iloc[0] == 0  # nobody has a scan before onset
    assert table["n_patients"].is_monotonic_increasing
    cal = mortality_calibration(mock_fit, max_draws=60).summary
    last = table.iloc[-1]
    assert last["n_patients"] == mock_fit.cohort.n_patients
    assert last["brier_loo"] == pytest.approx(cal["brier_loo"])
    assert last["auc_loo"] == pytest.approx(cal["auc_loo"])
    lines = landmark_lines(table)
    assert lines[0].startswith("Dynamic prediction") and "all data" in lines[-1]
