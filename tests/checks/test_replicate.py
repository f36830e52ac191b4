"""Replication keeps the observed design; levels 'patients' and 'new'."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesct.checks import PPCError, replicate, replicate_set
from bayesct.constants import CT, CT_MAX, DAY, DIED, PCT_LABS
from bayesct.modeling.diagnostics import Diagnostics
from bayesct.modeling.fit import FitResult
from bayesct.modeling.spec import load_spec


@pytest.mark.parametrize("level", ["patients", "new"])
def test_replicates_keep_the_design(mock_fit, level):
    obs = mock_fit.cohort
    reps = list(replicate(mock_fit, n=12, level=level, seed=4))
    assert len(reps) == 12
    for rep in reps:
        assert rep.visits[DAY].equals(obs.visits[DAY])
        assert rep.patients.index.equals(obs.patients.index)
        for m in obs.markers:
            np.testing.assert_array_equal(rep.visits[m].isna().to_numpy(), obs.visits[m].isna().to_numpy())
        ct = rep.visits[CT].dropna().to_numpy()
        assert np.all(ct == np.round(ct)) and ct.min() >= 0 and ct.max() <= CT_MAX
        for lab in obs.labs:
            v = rep.visits[lab].dropna().to_numpy()
            assert np.all(v > 0), lab
            if lab in PCT_LABS:
                assert np.all(v <= 100), lab
        assert set(rep.patients[DIED].unique()) <= {0, 1}
        assert rep.patients.drop(columns=DIED).equals(obs.patients.drop(columns=DIED))


def test_died_fixed_for_patients_replicated_for_new(mock_fit):
    obs_died = mock_fit.cohort.patients[DIED].to_numpy()
    same = replicate_set(mock_fit, n=20, level="patients", seed=1)
    assert DIED not in same.values
    for rep in same:
        np.testing.assert_array_equal(rep.patients[DIED].to_numpy(), obs_died)
    new = replicate_set(mock_fit, n=20, level="new", seed=1)
    died = new.values[DIED]
    assert died.shape == (20, len(obs_died))
    assert not all(np.array_equal(d, obs_died) for d in died)
    np.testing.assert_array_equal(new.cohort(3).patients[DIED].to_numpy(), died[3])


def test_markers_are_replicated_and_seeded(mock_fit):
    a = replicate_set(mock_fit, n=5, seed=2)
    b = replicate_set(mock_fit, n=5, seed=2)
    c = replicate_set(mock_fit, n=5, seed=3)
    np.testing.assert_array_equal(a.values[CT], b.values[CT])
    assert not np.array_equal(a.values[CT], c.values[CT], equal_nan=True)
    assert not np.allclose(a.values["nlr"][0], mock_fit.cohort.visits["nlr"].to_numpy(), equal_nan=True)


def test_more_replicates_than_draws_reuses_draws(mock_fit):
    total = mock_fit.posterior.sizes["chain"] * mock_fit.posterior.sizes["draw"]
    rs = replicate_set(mock_fit, n=total + 5, seed=0)
    assert len(rs) == total + 5 and rs.draws.max() < total


def test_unmodelled_labs_keep_observed_values(mock_ct_only):
    rs = replicate_set(mock_ct_only, n=4, seed=0)
    assert rs.replicated_markers == (CT,)
    rep = rs.cohort(0)
    obs = mock_ct_only.cohort
    for lab in obs.labs:
        np.testing.assert_array_equal(rep.visits[lab].to_numpy(), obs.visits[lab].to_numpy())
    assert any("observed values kept" in n for n in rs.notes)
    # no mortality change in 'new' for a spec with mortality: died replicated
    assert DIED in replicate_set(mock_ct_only, n=2, level="new").values


def test_scan_logistic_and_bad_options_are_user_errors(mock_fit, small_cohort):
    spec = load_spec("scan_logistic")
    diag = Diagnostics(1.0, 1e3, 1e3, 0, 1.0, True, "mock", 1, 1, 0.0)
    fit = FitResult(xr.DataTree(), spec, small_cohort, diag)
    with pytest.raises(PPCError, match="not a trajectory model"):
        replicate_set(fit, n=2)
    with pytest.raises(PPCError, match="level"):
        replicate_set(mock_fit, n=2, level="everyone")
    with pytest.raises(PPCError, match=">= 1"):
        replicate_set(mock_fit, n=0)
