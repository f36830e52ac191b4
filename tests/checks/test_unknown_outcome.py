"""Patients of unknown outcome through the checks (mocked fits: prior draws as a posterior): the
replicates carry the same blanks, the death scores leave them out, their risk is still given."""

from __future__ import annotations

import numpy as np
import pytest
from tests.checks.conftest import SMALL_SEED, _mock_fit

from bayesct.checks.calibration import (
    compare_death_predictions,
    integrated_patient_loglik,
    landmark_accuracy,
    mortality_calibration,
)
from bayesct.checks.ppc import (
    OUTCOME_STATISTICS,
    posterior_predictive_check,
    replicate_set,
    table_statistics,
)
from bayesct.checks.refit import exact_patient_loo
from bayesct.constants import DIED
from bayesct.data import simulate_cohort
from bayesct.data.cohort import Cohort
from bayesct.modeling.fit import FitResult
from bayesct.modeling.posterior import PosteriorModel
from bayesct.risk import patient_risks

DRAWS = 80


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    """40 simulated patients, two of them still in hospital (blank died)."""
    cohort = simulate_cohort(40, seed=SMALL_SEED, unknown_outcome=2).cohort
    assert cohort.n_outcome_unknown == 2
    return cohort


@pytest.fixture(scope="module")
def fit(cohort: Cohort) -> FitResult:
    return _mock_fit(cohort, "joint", draws=DRAWS)


@pytest.fixture(scope="module")
def unknown(cohort: Cohort) -> np.ndarray:
    return ~cohort.outcome_known.to_numpy()


def _outcome_stats(stats: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in stats.items() if k.split("[")[0] in (*OUTCOME_STATISTICS, "logistic_p")}


@pytest.mark.parametrize("level", ["patients", "new"])
def test_replicates_carry_the_blank_outcome_of_the_same_patients(fit, unknown, level):
    reps = replicate_set(fit, n=10, level=level, seed=2)
    if level == "new":
        died = reps.values[DIED]
        np.testing.assert_array_equal(np.isnan(died), np.broadcast_to(unknown, died.shape))
        assert set(np.unique(died[:, ~unknown])) <= {0.0, 1.0}
    for rep in reps:
        np.testing.assert_array_equal(~rep.outcome_known.to_numpy(), unknown)
    assert any("unknown outcome" in n and "same patients" in n for n in reps.notes)


def test_outcome_statistics_leave_out_the_same_patients_observed_and_replicated(fit, cohort):
    for c in (cohort, replicate_set(fit, n=3, level="new", seed=5).cohort(1)):
        ours = table_statistics(c, deaths=True)
        theirs = table_statistics(c.known_outcome(), deaths=True)
        np.testing.assert_equal(_outcome_stats(ours), _outcome_stats(theirs))
        assert ours["n_deaths"] == c.n_deaths
    # Kendall's tau uses every scan, the patients of unknown outcome included
    assert (
        table_statistics(cohort)["kendall_tau[ldh]"]
        != table_statistics(cohort.known_outcome())["kendall_tau[ldh]"]
    )


def test_the_check_says_so(fit):
    ppc = posterior_predictive_check(fit, replicates=6, mixed_replicates=0, standard_checks=False, seed=1)
    notes = [n for n in ppc.meta["notes"] if "unknown outcome" in n]
    assert len(notes) == 1


def test_calibration_scores_the_patients_of_known_outcome_only(fit, cohort, unknown):
    cal = mortality_calibration(fit, max_draws=DRAWS, seed=0)
    s = cal.summary
    assert (s["n_patients"], s["n_outcome_unknown"]) == (38, 2)
    assert int(cal.bins["n"].sum()) == 38 and int(cal.bins["deaths"].sum()) == cohort.n_deaths
    assert s["observed_deaths"] == cohort.n_deaths
    p = cal.patients
    assert len(p) == 40 and p["died"].isna().to_numpy().tolist() == unknown.tolist()
    assert np.isfinite(p["predicted_loo"]).all()  # they have a risk, only not a score
    known = p.loc[~unknown]
    assert s["brier_loo"] == pytest.approx(float(np.mean((known["predicted_loo"] - known["died"]) ** 2)))
    assert s["expected_deaths_loo"] == pytest.approx(float(known["predicted_loo"].sum()))
    table = landmark_accuracy(fit, landmarks=(10.0,), max_draws=DRAWS, seed=0)
    assert int(table["n_patients"].iloc[-1]) == 38 and int(table["deaths"].iloc[-1]) == cohort.n_deaths


def test_their_patient_likelihood_has_no_death_term(fit, unknown):
    pm = PosteriorModel.from_fit(fit, max_draws=DRAWS)
    with_death = integrated_patient_loglik(pm, ("ct", "labs", "death"))
    without = integrated_patient_loglik(pm, ("ct", "labs"))
    np.testing.assert_array_equal(with_death[:, unknown], without[:, unknown])
    assert (with_death[:, ~unknown] <= without[:, ~unknown]).all()
    assert (with_death[:, ~unknown] < without[:, ~unknown]).any()


def test_exact_refit_scores_them_without_a_death_term(fit, unknown):
    i = int(np.flatnonzero(unknown)[0])
    same = exact_patient_loo(fit, [i], parts=("ct", "labs", "death"), max_draws=40, refit=lambda f, c: f)
    longitudinal = exact_patient_loo(fit, [i], parts=("ct", "labs"), max_draws=40, refit=lambda f, c: f)
    assert same.elpd_i[0] == pytest.approx(longitudinal.elpd_i[0], rel=1e-12)


def test_death_predictions_are_compared_on_the_known_outcomes(fit, cohort):
    scan = _mock_fit(cohort, "scan_logistic", draws=DRAWS)
    table = compare_death_predictions({"joint": fit, "scan_logistic": scan}, max_draws=DRAWS)
    assert (table["observed_deaths"] == cohort.n_deaths).all()
    assert np.isfinite(table["brier"]).all() and np.isfinite(table["auc"]).all()


def test_prior_sensitivity_power_scales_the_known_deaths_only(fit, monkeypatch):
    import arviz_stats

    from bayesct.checks.sensitivity import mortality_prior_sensitivity

    seen = {}
    real = arviz_stats.psense_summary

    def spy(tree, **kwargs):
        seen["loglik"] = tree["log_likelihood"]["died"]
        return real(tree, **kwargs)

    monkeypatch.setattr(arviz_stats, "psense_summary", spy)
    table = mortality_prior_sensitivity(fit, max_draws=None, risk_cells=())
    assert seen["loglik"].shape == (1, DRAWS, 38)
    assert np.isfinite(seen["loglik"].values).all() and np.isfinite(table["likelihood"]).all()


def test_patient_risks_give_them_a_risk_from_their_history(fit, cohort, unknown):
    risks = patient_risks(fit, max_draws=DRAWS, seed=0)
    assert risks["outcome"].tolist() == [
        "unknown" if u else ("died" if d == 1 else "survived")
        for u, d in zip(unknown, cohort.patients[DIED], strict=True)
    ]
    mine = risks.loc[unknown]
    assert mine["died"].isna().all()
    for col in ("history_median", "history_lo", "history_hi", "population_median", "fitted_median"):
        assert np.isfinite(mine[col]).all() and ((mine[col] >= 0) & (mine[col] <= 1)).all(), col
    assert (mine["history_lo"] <= mine["history_median"]).all()
