"""The seeded simulator: determinism, the Cohort layout, bounds, the truth it returns, the true risk."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import special

from bayesct.constants import CT, CT_MAX, DAY, DIED, LABS, MARKERS, PATIENT, PCT_LABS, PERIOD
from bayesct.data import simulate as sim_module
from bayesct.data.cohort import assign_period
from bayesct.data.simulate import (
    SimulatedCohort,
    SimulationParams,
    population_curve,
    population_risk,
    simulate_cohort,
    time_transform,
)


@pytest.fixture(scope="module")
def sim() -> SimulatedCohort:
    return simulate_cohort(93, seed=3)


@pytest.fixture(scope="module")
def big() -> SimulatedCohort:
    return simulate_cohort(5000, seed=11)


# -- determinism -------------------------------------------------------------------------------------
def test_same_seed_gives_identical_cohort(sim: SimulatedCohort) -> None:
    again = simulate_cohort(93, seed=3)
    pd.testing.assert_frame_equal(sim.cohort.visits, again.cohort.visits)
    pd.testing.assert_frame_equal(sim.cohort.patients, again.cohort.patients)
    pd.testing.assert_frame_equal(sim.effects, again.effects)


def test_different_seed_gives_different_cohort(sim: SimulatedCohort) -> None:
    other = simulate_cohort(93, seed=4)
    assert not sim.cohort.visits[DAY].equals(other.cohort.visits[DAY]) or not sim.cohort.visits[CT].equals(
        other.cohort.visits[CT]
    )
    assert not np.allclose(sim.effects["u0"], other.effects["u0"])


# -- layout ------------------------------------------------------------------------------------------
def test_visits_layout(sim: SimulatedCohort) -> None:
    v = sim.cohort.visits
    assert list(v.columns) == [PATIENT, DAY, PERIOD, *MARKERS]
    assert pd.api.types.is_string_dtype(v[PATIENT])
    assert v[DAY].dtype == np.float64
    for m in MARKERS:
        assert v[m].dtype == np.float64
    assert isinstance(v[PERIOD].dtype, pd.CategoricalDtype) and v[PERIOD].cat.ordered
    pd.testing.assert_series_equal(
        v[PERIOD], pd.Series(assign_period(v[DAY].to_numpy()), name=PERIOD), check_categorical=True
    )
    assert v.index.equals(pd.RangeIndex(len(v)))
    order = v.sort_values([PATIENT, DAY], kind="stable").index
    assert order.equals(v.index)
    assert not v.duplicated([PATIENT, DAY]).any()
    assert sim.cohort.source == "simulated"


def test_patients_layout(sim: SimulatedCohort) -> None:
    p = sim.cohort.patients
    assert p.index.name == PATIENT
    assert p.columns[0] == DIED and p[DIED].dtype == np.int64
    assert set(p[DIED].unique()) <= {0, 1}
    assert list(p.index) == list(pd.unique(sim.cohort.visits[PATIENT]))
    assert p["age"].dtype == np.float64 and set(p["sex"].unique()) <= {"female", "male"}
    binary = [c for c in p.columns if c not in (DIED, "age", "sex", "duration")]
    assert len(binary) == 21
    for c in binary:
        assert p[c].dtype == np.int64 and set(p[c].unique()) <= {0, 1}, c
    # specific comorbidities only among comorbid patients
    for c in ("diabetes", "hypertension", "cardiovascular_disease", "copd", "malignancy"):
        assert (p[c] <= p["comorbidity"]).all()
    last_day = sim.cohort.visits.groupby(PATIENT)[DAY].max()
    assert (p["duration"] > last_day.reindex(p.index)).all()


def test_every_patient_has_a_scan_and_the_design_is_plausible(big: SimulatedCohort) -> None:
    c = big.cohort
    scans = c.visits.loc[c.visits[CT].notna()]
    per_patient = scans.groupby(PATIENT).size()
    assert per_patient.reindex(c.patient_ids).notna().all()
    assert per_patient.between(1, 4).all()
    assert 1.7 < c.n_scans / c.n_patients < 2.1  # paper: 175 scans / 93 patients = 1.88
    assert per_patient.mode().iloc[0] == 2
    first = c.visits.groupby(PATIENT)[DAY].min()
    assert first.min() >= 1 and first.between(1, 12).mean() > 0.75
    # each lab keeps its own schedule: ESR and D-dimer missing on some scans
    assert scans["esr"].isna().mean() > 0.2 and scans["d_dimer"].isna().mean() > 0.1
    assert (c.visits[CT].isna()).any()  # some lab-only visits


def test_bounds(big: SimulatedCohort) -> None:
    v = big.cohort.visits
    ct = v[CT].dropna()
    assert ((ct >= 0) & (ct <= CT_MAX) & (ct == np.round(ct))).all()
    for lab in LABS:
        x = v[lab].dropna()
        assert (x > 0).all(), lab
        if lab in PCT_LABS:
            assert (x < 100).all(), lab
    assert (v[DAY] >= 0).all()
    age = big.cohort.patients["age"]
    assert age.between(18, 95).all() and (age == np.round(age)).all()


# -- the truth -----------------------------------------------------------------------------------------
def test_true_parameters_and_effects_returned(sim: SimulatedCohort) -> None:
    assert sim.params == SimulationParams()
    d = sim.params.as_dict()
    assert d["lambda_"][CT] == 1.0 and d["t_ref"] == 14.0
    assert set(d["m"]) == set(MARKERS) and set(d["sigma"]) == set(LABS)
    assert list(sim.effects.columns) == ["u0", "u1", *[f"v_{m}" for m in MARKERS]]
    assert sim.effects.index.equals(sim.cohort.patient_ids)


def test_params_validation_and_replace() -> None:
    p = SimulationParams()
    q = p.replace(s0=0.5, lambda_={"esr": 2.0})
    assert q.s0 == 0.5 and q.lambda_["esr"] == 2.0 and q.lambda_["ldh"] == p.lambda_["ldh"]
    with pytest.raises(ValueError, match="fixed at 1"):
        p.replace(lambda_={CT: 2.0})
    with pytest.raises(ValueError, match="rho"):
        p.replace(rho=1.0)
    with pytest.raises(TypeError):
        p.replace(not_a_parameter=1)


def test_effects_have_the_true_distribution(big: SimulatedCohort) -> None:
    p, e = big.params, big.effects
    assert e["u0"].std() == pytest.approx(p.s0, rel=0.06)
    assert e["u1"].std() == pytest.approx(p.s1, rel=0.06)
    assert np.corrcoef(e["u0"], e["u1"])[0, 1] == pytest.approx(p.rho, abs=0.03)
    for m in MARKERS:
        assert e[f"v_{m}"].std() == pytest.approx(p.tau[m], rel=0.06), m


def test_labs_scatter_around_the_true_linear_predictor(big: SimulatedCohort) -> None:
    v, p, e = big.cohort.visits, big.params, big.effects
    ids = v[PATIENT].to_numpy()
    g = time_transform(v[DAY].to_numpy())
    shared = e.loc[ids, "u0"].to_numpy() + e.loc[ids, "u1"].to_numpy() * g
    for lab in LABS:
        eta = population_curve(p, lab, v[DAY].to_numpy()) + p.lambda_[lab] * shared + e.loc[ids, f"v_{lab}"]
        y = v[lab].to_numpy()
        obs = ~np.isnan(y)
        z = special.logit(y[obs] / 100) if lab in PCT_LABS else np.log(y[obs])
        resid = z - eta.to_numpy()[obs]
        assert abs(resid.mean()) < 0.05, lab
        assert resid.std() == pytest.approx(p.sigma[lab], rel=0.06), lab
    # the method agrees with the formula
    pid = ids[0]
    day = v[DAY].iloc[0]
    expected = (
        population_curve(p, "ldh", day)
        + p.lambda_["ldh"] * (e.loc[pid, "u0"] + e.loc[pid, "u1"] * time_transform(day))
        + e.loc[pid, "v_ldh"]
    )
    assert big.true_linear_predictor("ldh", pid, day) == pytest.approx(float(expected))
    assert np.asarray(big.true_linear_predictor(CT, pid, [5.0, 10.0])).shape == (2,)


def test_ct_scores_follow_the_beta_binomial_mean(big: SimulatedCohort) -> None:
    scans = big.cohort.visits.dropna(subset=[CT])
    eta = np.array(
        [big.true_linear_predictor(CT, pid, d) for pid, d in zip(scans[PATIENT], scans[DAY], strict=True)]
    )
    expected = CT_MAX * special.expit(eta)
    assert scans[CT].mean() == pytest.approx(expected.mean(), rel=0.02)
    assert np.corrcoef(scans[CT], expected)[0, 1] > 0.85


def test_true_death_probability_matches_the_death_rate(big: SimulatedCohort) -> None:
    prob = big.true_death_probability()
    assert prob.index.equals(big.cohort.patient_ids)
    assert prob.between(0, 1).all()
    died = big.cohort.patients[DIED]
    se = np.sqrt((prob * (1 - prob)).sum()) / len(prob)
    assert abs(died.mean() - prob.mean()) < 4 * se
    assert prob[died == 1].mean() > prob[died == 0].mean() + 0.3


# -- options and scale ---------------------------------------------------------------------------------
def test_marker_subset(sim: SimulatedCohort) -> None:
    ct_only = simulate_cohort(93, seed=3, markers=[CT])
    v = ct_only.cohort.visits
    assert list(v.columns) == [PATIENT, DAY, PERIOD, CT]
    assert v[CT].notna().all()  # lab-only visits dropped
    full_scans = sim.cohort.visits.dropna(subset=[CT]).reset_index(drop=True)
    pd.testing.assert_frame_equal(v, full_scans[[PATIENT, DAY, PERIOD, CT]])
    assert list(ct_only.effects.columns) == ["u0", "u1", f"v_{CT}"]
    pd.testing.assert_series_equal(ct_only.cohort.patients[DIED], sim.cohort.patients[DIED])

    two = simulate_cohort(93, seed=3, markers=["ldh", CT])
    assert list(two.cohort.visits.columns) == [PATIENT, DAY, PERIOD, CT, "ldh"]
    assert two.cohort.markers == (CT, "ldh")

    labs_only = simulate_cohort(93, seed=3, markers=["esr"])
    assert labs_only.cohort.visits["esr"].notna().all()
    assert list(labs_only.effects.columns) == ["u0", "u1", f"v_{CT}", "v_esr"]
    with pytest.raises(ValueError, match="unknown marker"):
        simulate_cohort(10, markers=["crp"])


@pytest.mark.parametrize("generator", ["joint", "zones"])
def test_unknown_outcome_blanks_k_patients_chosen_with_the_seed(generator: str) -> None:
    full = simulate_cohort(30, seed=5, generator=generator).cohort
    part = simulate_cohort(30, seed=5, generator=generator, unknown_outcome=3).cohort
    again = simulate_cohort(30, seed=5, generator=generator, unknown_outcome=3).cohort
    other = simulate_cohort(30, seed=6, generator=generator, unknown_outcome=3).cohort
    unknown = part.patient_ids[~part.outcome_known.to_numpy()]
    assert len(unknown) == 3 and part.n_outcome_unknown == 3
    assert list(unknown) == list(again.patient_ids[~again.outcome_known.to_numpy()])
    assert set(unknown) != set(other.patient_ids[~other.outcome_known.to_numpy()])
    # every other value is the one the seed gives without them
    pd.testing.assert_frame_equal(part.visits, full.visits)
    pd.testing.assert_frame_equal(part.patients.drop(columns=DIED), full.patients.drop(columns=DIED))
    known = part.outcome_known.to_numpy()
    np.testing.assert_array_equal(
        part.patients[DIED].to_numpy()[known], full.patients[DIED].to_numpy()[known]
    )
    assert part.notes[-1] == part.outcome_note and "3 patients of unknown outcome" in part.notes[-1]
    assert simulate_cohort(30, seed=5, generator=generator, unknown_outcome=0).cohort.outcome_note is None


def test_unknown_outcome_is_checked() -> None:
    with pytest.raises(ValueError, match="whole number"):
        simulate_cohort(10, seed=1, unknown_outcome=-1)
    with pytest.raises(ValueError, match="cannot blank the outcome of 11 patients"):
        simulate_cohort(10, seed=1, unknown_outcome=11)


def test_ten_thousand_patients() -> None:
    c = simulate_cohort(10_000, seed=1).cohort  # vectorised: well under a second here
    assert c.n_patients == 10_000 and c.n_scans > 17_000
    assert c.patient_ids[0] == "P00001"


def test_module_docstring_tables_match_the_defaults() -> None:
    doc = sim_module.__doc__ or ""
    p = SimulationParams()
    rows = re.findall(
        r"^(ct_score|nlr|lymphocyte_count|lymphocyte_pct|neutrophil_pct|d_dimer|ldh|esr)\s+(.+)$", doc, re.M
    )
    assert len(rows) == len(MARKERS)
    for marker, rest in rows:
        m, h, peak, lam, tau, sigma = rest.split()
        assert (float(m), float(h), float(peak), float(lam), float(tau)) == (
            p.m[marker],
            p.h[marker],
            p.p[marker],
            p.lambda_[marker],
            p.tau[marker],
        ), marker
        if marker == CT:
            assert sigma == "--"
        else:
            assert float(sigma) == p.sigma[marker], marker
    for name in (
        "s0",
        "s1",
        "rho",
        "phi",
        "alpha",
        "beta_age",
        "beta_male",
        "gamma_value",
        "gamma_slope",
        "t_ref",
    ):
        value = re.search(rf"\b{name} = (-?[0-9.]+)", doc)
        assert value is not None and float(value.group(1)) == getattr(p, name), name


# -- the true risk of a new patient --------------------------------------------------------------------
@pytest.mark.parametrize("day", [0.0, 1.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0])
def test_population_risk_increases_with_the_ct_score(day: float) -> None:
    p = SimulationParams()
    risk = population_risk(p, np.arange(CT_MAX + 1), day, 60, 1)
    assert isinstance(risk, np.ndarray) and risk.shape == (CT_MAX + 1,)
    assert np.all(np.diff(risk) > 0)
    assert np.all((risk > 0) & (risk < 1))


def test_population_risk_shapes_and_covariates() -> None:
    p = SimulationParams()
    one = population_risk(p, 12, 10.0, 60, 1)
    assert isinstance(one, float)
    grid = population_risk(p, np.arange(0, 25, 6)[:, None], np.array([5.0, 10.0, 20.0]), 60, 1)
    assert isinstance(grid, np.ndarray) and grid.shape == (5, 3)
    assert grid[2, 1] == pytest.approx(one)
    assert population_risk(p, 12, 10.0, 75, 1) > one > population_risk(p, 12, 10.0, 60, 0)
    assert population_risk(p, 12, 10.0, 60, 1, n_mc=6001) == pytest.approx(one, abs=1e-7)
    with pytest.raises(ValueError, match="integer"):
        population_risk(p, 12.5, 10.0, 60, 1)


def _brute_force(
    params: SimulationParams, day: float, age: float, male: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate n new patients' one scan on ``day`` and their outcome, straight from the model."""
    z = rng.standard_normal((n, 2))
    u0 = params.s0 * z[:, 0]
    u1 = params.s1 * (params.rho * z[:, 0] + np.sqrt(1 - params.rho**2) * z[:, 1])
    v = params.tau[CT] * rng.standard_normal(n)
    eta = population_curve(params, CT, day) + u0 + u1 * time_transform(day) + v
    mu = special.expit(eta)
    score = rng.binomial(CT_MAX, rng.beta(mu * params.phi, (1 - mu) * params.phi))
    lp = (
        params.alpha
        + params.beta_age * (age - 55) / 15
        + params.beta_male * male
        + params.gamma_value * (u0 + u1 * time_transform(params.t_ref) + v)
        + params.gamma_slope * u1
    )
    died = rng.random(n) < special.expit(lp)
    return score, died


@pytest.mark.parametrize(("day", "age", "male"), [(4.0, 50.0, 0), (12.0, 65.0, 1)])
def test_population_risk_agrees_with_brute_force_monte_carlo(
    day: float, age: float, male: int, rng: np.random.Generator
) -> None:
    p = SimulationParams()
    score, died = _brute_force(p, day, age, male, 1_000_000, rng)
    checked = 0
    for s in range(CT_MAX + 1):
        hit = score == s
        k = int(hit.sum())
        if k < 2000:
            continue
        freq = died[hit].mean()
        exact = population_risk(p, s, day, age, male)
        se = np.sqrt(max(exact * (1 - exact), 1e-4) / k)
        assert abs(freq - exact) < 4.5 * se, (s, freq, exact, k)
        checked += 1
    assert checked >= 8
