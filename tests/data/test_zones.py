"""The zone generators: cohorts bayesct's model did not write, and their exact true risk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from bayesct.constants import CT, CT_ZONES, DAY, LABS
from bayesct.data import read_cohort, simulate_cohort, write_cohort
from bayesct.data.zones import ZoneParams, ZoneSimulatedCohort, true_risk, true_risk_grid


@pytest.mark.parametrize("generator", ["zones", "skewed"])
def test_same_seed_same_cohort_and_a_valid_layout(generator, tmp_path):
    a = simulate_cohort(60, seed=3, generator=generator)
    b = simulate_cohort(60, seed=3, generator=generator)
    assert isinstance(a, ZoneSimulatedCohort)
    pd.testing.assert_frame_equal(a.cohort.visits, b.cohort.visits)
    pd.testing.assert_frame_equal(a.cohort.patients, b.cohort.patients)
    c = simulate_cohort(60, seed=4, generator=generator)
    assert not a.cohort.visits[CT].equals(c.cohort.visits[CT])
    # what the generator writes, the reader takes back unchanged
    path = write_cohort(a.cohort, tmp_path / "zones.csv")
    again = read_cohort(path)
    np.testing.assert_allclose(again.visits[CT].to_numpy(), a.cohort.visits[CT].to_numpy())
    assert again.n_deaths == a.cohort.n_deaths
    assert set(LABS) <= set(a.cohort.visits.columns)


def test_zone_columns_are_scores_0_to_4_that_sum_to_the_total():
    sim = simulate_cohort(200, seed=1, generator="zones", zone_columns=True)
    zones = sim.cohort.visits[list(CT_ZONES)].to_numpy()
    assert np.all((zones >= 0) & (zones <= 4)) and np.all(zones == np.round(zones))
    np.testing.assert_array_equal(zones.sum(axis=1), sim.cohort.visits[CT].to_numpy())
    # the zone offsets order the zones: the last (offset 0.4) scores higher than the fourth (-0.6)
    assert zones[:, 5].mean() > zones[:, 3].mean() + 0.3


def test_zone_generators_differ_from_the_default_model():
    with pytest.raises(ValueError, match="zone generator"):
        simulate_cohort(10, seed=0, generator="joint", zone_columns=True)
    with pytest.raises(ValueError, match="unknown generator"):
        simulate_cohort(10, seed=0, generator="ordinal")
    with pytest.raises(TypeError, match="ZoneParams"):
        from bayesct.data import SimulationParams

        simulate_cohort(10, seed=0, generator="zones", params=SimulationParams())


def test_skewed_generator_has_a_skewed_level_and_esr_apart_from_severity():
    sim = simulate_cohort(4000, seed=2, generator="skewed")
    z0 = sim.effects["z0"].to_numpy()
    assert stats.skew(z0) > 1.0  # standardised Gamma(2): skewness 1.41
    assert abs(z0.mean()) < 0.06 and abs(z0.std() - 1.0) < 0.06
    # ESR follows its own patient effect, not the shared severity
    visits = sim.cohort.visits.join(sim.effects, on="patient_id")
    log_esr = np.log(visits["esr"])
    ok = log_esr.notna()
    assert abs(np.corrcoef(log_esr[ok], visits.loc[ok, "u0"])[0, 1]) < 0.05
    assert np.corrcoef(log_esr[ok], visits.loc[ok, "v_esr"])[0, 1] > 0.4
    normal = simulate_cohort(4000, seed=2, generator="zones")
    assert abs(stats.skew(normal.effects["z0"])) < 0.2


def _mc_risk(params: ZoneParams, score: int, day: float, age: float, male: int, n: int, seed: int):
    """Brute force: new patients with one scan on ``day``; keep those scoring ``score``."""
    rng = np.random.default_rng(seed)
    z0 = (rng.gamma(2.0, 1.0, n) - 2.0) / np.sqrt(2.0) if params.skewed else rng.standard_normal(n)
    z1 = rng.standard_normal(n)
    u0 = params.s0 * z0
    u1 = params.s1 * (params.rho * z0 + np.sqrt(1 - params.rho**2) * z1)
    x = day / params.peak_day
    sev = params.c0 + params.c1 * x * np.exp(1 - x) + u0 + u1 * (day - 10) / 10
    p_ge = special.expit(
        sev[:, None, None]
        + np.array(params.zone_offsets)[None, :, None]
        - np.array(params.cutpoints)[None, None]
    )
    total = (rng.random((n, 6))[..., None] < p_ge).sum(axis=(1, 2))
    lp = params.alpha + params.beta_age * (age - 55) / 15 + params.beta_male * male
    p = special.expit(lp + params.gamma0 * u0 + params.gamma1 * u1)
    hit = total == score
    return p[hit].mean(), p[hit].std() / np.sqrt(hit.sum())


@pytest.mark.parametrize("generator", ["zones", "skewed"])
@pytest.mark.parametrize(("score", "day"), [(4, 3.0), (16, 8.0), (20, 18.0)])
def test_true_risk_matches_brute_force_monte_carlo(generator, score, day):
    params = ZoneParams.for_generator(generator)
    exact = true_risk(params, pd.DataFrame({DAY: [day], CT: [float(score)]}), age=60, male=1)
    mc, se = _mc_risk(params, score, day, age=60, male=1, n=600_000, seed=11)
    assert abs(exact - mc) < 4 * se + 1e-3, (exact, mc, se)


def test_true_risk_of_a_history_uses_the_labs_and_the_scans():
    params = ZoneParams.for_generator("zones")
    one = true_risk(params, pd.DataFrame({DAY: [8.0], CT: [12.0]}), age=60, male=0)
    rising = pd.DataFrame({DAY: [3.0, 8.0, 13.0], CT: [6.0, 12.0, 18.0]})
    falling = pd.DataFrame({DAY: [3.0, 8.0, 13.0], CT: [18.0, 12.0, 6.0]})
    assert true_risk(params, rising, 60, 0) > one > true_risk(params, falling, 60, 0)
    high_ldh = pd.DataFrame({DAY: [8.0], CT: [12.0], "ldh": [900.0]})
    assert true_risk(params, high_ldh, 60, 0) > one
    # a missing value is no information
    blank = pd.DataFrame({DAY: [8.0], CT: [12.0], "ldh": [np.nan]})
    assert true_risk(params, blank, 60, 0) == pytest.approx(one, abs=1e-12)
    # under `skewed`, ESR says nothing about death
    sk = ZoneParams.for_generator("skewed")
    base = true_risk(sk, pd.DataFrame({DAY: [8.0], CT: [12.0]}), 60, 0)
    assert true_risk(sk, pd.DataFrame({DAY: [8.0], CT: [12.0], "esr": [150.0]}), 60, 0) == pytest.approx(base)


def test_true_risk_without_a_ct_association_is_flat_and_the_grid_rises_with_the_score():
    flat = ZoneParams.for_generator("zones", gamma0=0.0, gamma1=0.0)
    grid = true_risk_grid(flat, [4, 20], [3.0, 25.0], age=60, male=0)
    expected = special.expit(flat.alpha + flat.beta_age * (60 - 55) / 15)
    np.testing.assert_allclose(grid.to_numpy(), expected, atol=1e-9)
    grid = true_risk_grid(ZoneParams.for_generator("zones"), [4, 12, 20], [8.0], age=60, male=0)
    assert np.all(np.diff(grid[8.0].to_numpy()) > 0.1)


def test_replacing_the_ct_score_drops_the_zone_columns():
    sim = simulate_cohort(30, seed=0, generator="zones", zone_columns=True)
    n = sim.cohort.n_visits
    replicate = sim.cohort.with_values({CT: np.zeros(n)})
    assert not set(CT_ZONES) & set(replicate.visits.columns)
    labs_only = sim.cohort.with_values({"ldh": np.full(n, 300.0)})
    assert set(CT_ZONES) <= set(labs_only.visits.columns)
