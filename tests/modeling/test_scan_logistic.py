"""The ``scan_logistic`` model: a per-scan logistic regression whose pseudo-likelihood counts each
patient's outcome once (every scan's Bernoulli term weighted by 1 / the patient's number of scans)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import log_expit
from scipy.stats import norm

from bayesct.modeling.builders import build_model
from bayesct.modeling.design import build_design, scan_terms, scan_weights
from bayesct.modeling.prior_check import prior_predictive_check
from bayesct.modeling.spec import load_spec


def _weighted_loglik(design, a0: float, beta: np.ndarray) -> float:
    """sum_i sum_j (1 / n_i) log Bernoulli(died_i | expit(a0 + x_ij . beta)), by explicit loops."""
    eta = a0 + scan_terms(design.spec, design.ct.value, design.ct.day) @ beta
    total = 0.0
    for i in range(design.n_patients):
        rows = np.flatnonzero(design.ct.patient == i)
        y = design.died[i]
        scans = [log_expit(eta[r]) if y else log_expit(-eta[r]) for r in rows]
        total += sum(scans) / len(rows)
    return total


def test_each_patient_outcome_has_total_weight_one(small_cohort):
    design = build_design(small_cohort, load_spec("scan_logistic"))
    n_scans = np.bincount(design.ct.patient, minlength=design.n_patients)
    assert n_scans.min() >= 1 and n_scans.max() > 1  # patients with several scans
    w = scan_weights(design.ct.patient)
    np.testing.assert_allclose(np.bincount(design.ct.patient, weights=w), 1.0)
    # the log-density is the priors plus the weighted per-scan Bernoulli terms, nothing else
    model = build_model(design)
    logp = model.compile_logp()
    data_logp = model.compile_logp(vars=model.potentials)
    rng = np.random.default_rng(2)
    for _ in range(4):
        a0, beta = rng.normal(-0.5, 1.0), rng.normal(0.0, 1.0, 2)
        point = {"mort_intercept": a0, "mort_beta": beta}
        loglik = _weighted_loglik(design, a0, beta)
        assert data_logp(point) == pytest.approx(loglik, rel=1e-12)
        priors = norm.logpdf(a0, 0.0, 2.5) + norm.logpdf(beta, 0.0, 1.0).sum()
        assert logp(point) == pytest.approx(priors + loglik, abs=1e-6)


def test_repeated_scans_do_not_add_evidence(small_cohort):
    """A patient's outcome weighs the same whether it is seen at one scan or at three copies of it."""
    design = build_design(small_cohort, load_spec("scan_logistic"))
    one = np.flatnonzero(np.bincount(design.ct.patient) == 1)[0]
    ct = design.ct
    rows = np.flatnonzero(ct.patient == one)
    tripled = np.r_[np.arange(len(ct.value)), rows, rows]
    copy = dataclasses.replace(
        ct,
        patient=ct.patient[tripled],
        marker=ct.marker[tripled],
        day=ct.day[tripled],
        value=ct.value[tripled],
    )
    point = {"mort_intercept": -0.3, "mort_beta": np.array([0.8, -0.2])}
    base = build_model(design).compile_logp()(point)
    more = build_model(dataclasses.replace(design, ct=copy)).compile_logp()(point)
    assert more == pytest.approx(base, rel=1e-12)


def test_spec_has_no_patient_intercept():
    spec = load_spec("scan_logistic")
    assert set(spec.priors) == {"mort_intercept", "mort_beta"}
    assert "pseudo-likelihood" in spec.description


def test_model_has_no_patient_intercept_and_no_per_scan_outcome_node(small_cohort):
    model = build_model(build_design(small_cohort, load_spec("scan_logistic")))
    assert {rv.name for rv in model.free_RVs} == {"mort_intercept", "mort_beta"}
    assert not model.observed_RVs  # the outcome enters through the weighted Potential only
    assert [p.name for p in model.potentials] == ["died_weighted_loglik"]


def test_prior_check_replicates_the_share_of_patients_who_died(small_cohort):
    table = prior_predictive_check(small_cohort, "scan_logistic", draws=50, seed=1).set_index("quantity")
    row = table.loc["mortality (share died)"]
    assert 0.0 <= row["prior_lo"] <= row["prior_median"] <= row["prior_hi"] <= 1.0
    assert "mean of its scans' probabilities" in row["note"]


def test_scans_of_a_patient_of_unknown_outcome_carry_no_death_term(small_cohort):
    from bayesct.data.simulate import blank_outcomes

    cohort = blank_outcomes(small_cohort, 2, seed=1)
    unknown = cohort.patient_ids[~cohort.outcome_known.to_numpy()]
    design = build_design(cohort, load_spec("scan_logistic"))
    model = build_model(design)
    kept = np.flatnonzero(design.outcome_known[design.ct.patient])
    assert 0 < kept.size < len(design.ct.value)
    assert list(model.coords["scan"]) == kept.tolist()
    # the log-density is that of the cohort without those patients (no patient parameters here)
    without = build_model(build_design(cohort.drop_patients(unknown), load_spec("scan_logistic")))
    rng = np.random.default_rng(3)
    for _ in range(3):
        point = {"mort_intercept": rng.normal(-0.5, 1.0), "mort_beta": rng.normal(0.0, 1.0, 2)}
        assert model.compile_logp()(point) == pytest.approx(without.compile_logp()(point), rel=1e-12)
