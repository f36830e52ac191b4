"""Exact leave-patient-out terms by refitting (mocked refits: prior draws as a posterior) and the
death-prediction comparison that ranks ``scan_logistic`` beside the trajectory models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.checks.conftest import _mock_fit

from bayesct.checks.calibration import (
    PARETO_K_BAD,
    CheckError,
    compare_death_predictions,
    compare_models,
    integrated_patient_loglik,
    model_parts,
    patient_loo,
)
from bayesct.checks.refit import exact_patient_loo, without_patients
from bayesct.modeling.posterior import PosteriorModel

DRAWS = 80


def _without_in_posterior(fit, cohort):
    """A cheap stand-in refit: the same draws with the left-out patients' effects removed."""
    import xarray as xr

    from bayesct.modeling.fit import FitResult

    post = fit.posterior
    if "patient" in post.dims:
        keep = [str(p) for p in cohort.patient_ids]
        post = post.assign_coords(patient=[str(p) for p in post["patient"].values]).sel(patient=keep)
    # shift the draws a little so the refit posterior differs from the full-data one
    tree = xr.DataTree.from_dict({"posterior": post.isel(draw=slice(None, None, -1))})
    return FitResult(tree, fit.spec, cohort, fit.diagnostics, settings=fit.settings)


def test_without_patients_drops_every_row_of_the_patient(small_cohort):
    pid = small_cohort.patient_ids[3]
    rest = without_patients(small_cohort, [pid])
    assert rest.n_patients == small_cohort.n_patients - 1
    assert pid not in rest.patient_ids and pid not in set(rest.visits["patient_id"])
    kept = small_cohort.visits["patient_id"] != pid
    assert len(rest.visits) == int(kept.sum())


def test_exact_term_on_the_same_posterior_is_the_in_sample_predictive_density(mock_fit):
    """Refitting to the full-data fit itself must give log mean_s p(y_i | θ_s) of the same draws:
    the refit path scores a patient exactly as the PSIS path's integrated likelihood does."""
    parts = model_parts(mock_fit)
    pm = PosteriorModel.from_fit(mock_fit, max_draws=DRAWS, seed=0)
    ll = integrated_patient_loglik(pm, parts, seed=0)
    patients = [0, 5, 17]
    seen: list[int] = []

    def same_fit(fit, cohort):
        seen.append(cohort.n_patients)
        return mock_fit

    exact = exact_patient_loo(mock_fit, patients, parts=parts, max_draws=DRAWS, seed=0, refit=same_fit)
    expected = [np.log(np.mean(np.exp(ll[:, i] - ll[:, i].max()))) + ll[:, i].max() for i in patients]
    np.testing.assert_allclose(exact.elpd_i, expected, rtol=1e-10)
    assert seen == [mock_fit.cohort.n_patients - 1] * len(patients)
    assert exact.all_passed


def test_patient_loo_refits_exactly_the_patients_of_high_pareto_k(mock_fit, small_cohort):
    base = patient_loo(mock_fit, max_draws=DRAWS)
    assert base["method"] == "psis" and base["refitted"] == []
    refitted: list[str] = []

    def refit(fit, cohort):
        (gone,) = set(fit.cohort.patient_ids) - set(cohort.patient_ids)
        refitted.append(str(gone))
        return _without_in_posterior(fit, cohort)

    loo = patient_loo(mock_fit, max_draws=DRAWS, refit=refit)
    assert base["n_bad_k"] > 0, "the mocked posterior should leave some Pareto k above 0.7"
    assert len(refitted) == base["n_bad_k"] == len(loo["refitted"])
    assert sorted(refitted) == sorted(loo["refitted"])
    assert loo["method"] == "psis+refit" and np.isfinite(loo["elpd"])
    assert loo["elpd"] != pytest.approx(base["elpd"])
    # the amended estimate is PSIS's with the refitted patients' terms replaced
    assert loo["n_bad_k"] == base["n_bad_k"]
    assert loo["max_pareto_k"] == pytest.approx(base["max_pareto_k"], nan_ok=True)


def test_compare_models_reports_the_method_per_model(mock_fit, mock_ct_only):
    calls = []

    def refit(fit, cohort):
        calls.append(fit.spec.name)
        return _without_in_posterior(fit, cohort)

    table = compare_models({"joint": mock_fit, "ct_only": mock_ct_only}, max_draws=DRAWS, refit=refit)
    for r in table.itertuples():
        assert r.method == ("psis+refit" if r.n_bad_k else "psis")
        assert len([x for x in str(r.refitted).split(",") if x and x != "nan"]) == r.n_bad_k
    assert len(calls) == int(table["n_bad_k"].sum())


def test_death_predictions_rank_scan_logistic_beside_the_joint_model(mock_fit, small_cohort):
    scan = _mock_fit(small_cohort, "scan_logistic", draws=DRAWS)
    table = compare_death_predictions({"joint": mock_fit, "scan_logistic": scan}, max_draws=DRAWS)
    assert set(table["model"]) == {"joint", "scan_logistic"}
    assert list(table["brier"]) == sorted(table["brier"])
    assert table["brier_diff"].iloc[0] == 0 and (table["brier_diff"] >= 0).all()
    assert (table["brier_se"] > 0).all() and (table["brier_diff_se"].iloc[1:] > 0).all()
    assert ((table["brier"] >= 0) & (table["brier"] <= 1)).all()
    assert (table["observed_deaths"] == int(small_cohort.patients["died"].sum())).all()
    assert table.set_index("model").loc["scan_logistic", "family"] == "scan_logistic"
    with pytest.raises(CheckError, match="at least two"):
        compare_death_predictions({"joint": mock_fit}, max_draws=DRAWS)


def test_scan_logistic_leave_out_matches_plain_importance_sampling(small_cohort):
    """For a patient whose Pareto k is small, PSIS's leave-out risk is close to the plain
    importance-sampling estimate computed here from the pseudo-likelihood directly."""
    import xarray as xr

    from bayesct.checks.calibration import _scan_logistic_loo_risk
    from bayesct.modeling.design import scan_weights
    from bayesct.modeling.fit import FitResult
    from bayesct.risk import _ScanLogistic

    prior = _mock_fit(small_cohort, "scan_logistic", draws=400, seed=4)
    # a concentrated stand-in posterior (prior draws shrunk), so that PSIS is reliable
    post = prior.posterior.copy()
    post["mort_beta"] = 0.1 * post["mort_beta"]
    post["mort_intercept"] = 0.1 * post["mort_intercept"] - 0.5
    scan = FitResult(xr.DataTree.from_dict({"posterior": post}), prior.spec, small_cohort, prior.diagnostics)
    risk, k = _scan_logistic_loo_risk(scan, max_draws=None, seed=0)
    d = scan.design
    sl = _ScanLogistic.from_fit(scan, None, 0)
    pat = d.ct.patient.astype(int)
    p = sl.risk(d.ct.value.astype(float), d.ct.day.astype(float))
    w = scan_weights(pat)
    i = int(np.argmin(k))
    assert k[i] < PARETO_K_BAD
    on = pat == i
    y = float(d.died[i])
    li = (w[on] * (y * np.log(p[:, on]) + (1 - y) * np.log1p(-p[:, on]))).sum(axis=1)
    r = np.exp(-(li - li.min()))
    plain = float((r[:, None] * p[:, on]).sum(axis=0).mean() / r.sum())
    assert risk[i] == pytest.approx(plain, abs=0.02)
    assert isinstance(pd.Series(risk).sum(), float)
