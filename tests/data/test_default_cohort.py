"""The shipped default cohort meets every published target of ``paper_targets.toml``.

The targets are read from the packaged TOML, so changing a target changes these tests.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayesct.constants import CT, LABS, MARKERS, PATIENT
from bayesct.data.cohort import Cohort
from bayesct.data.default import (
    DEFAULT_COHORT_SEED,
    check_paper_targets,
    load_default_cohort,
    load_paper_targets,
    measure_paper_statistics,
    target_bounds,
)
from bayesct.data.simulate import simulate_cohort

TARGETS = load_paper_targets()


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return load_default_cohort()


@pytest.fixture(scope="module")
def measured(cohort: Cohort) -> dict[str, float]:
    return measure_paper_statistics(cohort)


def test_targets_file_is_well_formed() -> None:
    assert len(TARGETS) >= 35
    stats = measure_paper_statistics(simulate_cohort(93, seed=0).cohort)
    for name, spec in TARGETS.items():
        assert spec["statistic"] in stats, name
        assert spec.get("source"), f"{name} names no table of the paper"
        low, high = target_bounds(spec)
        assert low <= high, name
        if "paper" in spec:
            assert low <= spec["paper"] <= high, name
    # the misprinted nonsurvivor NLR (Table 2: "0.2") is deliberately not a target
    assert not any(s["statistic"] == "admission_median_nlr_nonsurvivor" for s in TARGETS.values())


def test_target_bounds_kinds() -> None:
    assert target_bounds({"paper": 2.0, "factor": 1.5}) == pytest.approx((2 / 1.5, 3.0))
    assert target_bounds({"paper": 2.0, "abs_tol": 0.5}) == (1.5, 2.5)
    assert target_bounds({"paper": 25, "exact": True}) == (25.0, 25.0)
    assert target_bounds({"range": [0.0, math.inf]}) == (0.0, math.inf)
    with pytest.raises(ValueError):
        target_bounds({"paper": 1.0, "abs_tol": 1.0, "factor": 2.0})


def test_default_cohort_loads_validated(cohort: Cohort) -> None:
    assert cohort.source == "bayesct default cohort"
    assert cohort.n_patients == 93
    assert cohort.markers == MARKERS
    assert cohort.patients.columns[0] == "died"


def test_default_cohort_is_the_documented_simulation(cohort: Cohort) -> None:
    sim = simulate_cohort(93, seed=DEFAULT_COHORT_SEED).cohort
    pd.testing.assert_frame_equal(cohort.visits, sim.visits, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(cohort.patients, sim.patients)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_default_cohort_meets_target(name: str, measured: dict[str, float]) -> None:
    spec = TARGETS[name]
    low, high = target_bounds(spec)
    value = measured[spec["statistic"]]
    assert low <= value <= high, f"{name}: {value:.4g} not in [{low:.4g}, {high:.4g}] ({spec['source']})"


def test_check_paper_targets_table(cohort: Cohort) -> None:
    table = check_paper_targets(cohort)
    assert list(table.columns) == ["statistic", "paper", "low", "high", "measured", "ok", "source"]
    assert set(table.index) == set(TARGETS)
    assert table["ok"].all()


def test_measure_agrees_with_plain_scipy(cohort: Cohort) -> None:
    """Spot-check two statistics against a direct computation."""
    from scipy import stats

    scans = cohort.scans()
    both = scans[[CT, "ldh"]].dropna()
    tau = stats.kendalltau(both[CT], both["ldh"]).statistic
    assert measure_paper_statistics(cohort)["kendall_ldh"] == pytest.approx(tau)
    first = cohort.visits.groupby(PATIENT, sort=False).head(1).join(cohort.patients, on=PATIENT)
    med = first.loc[first["died"] == 1, "esr"].median()
    assert measure_paper_statistics(cohort)["admission_median_esr_nonsurvivor"] == pytest.approx(med)


def test_typical_draws_look_broadly_like_the_paper() -> None:
    """The default cohort is a chosen draw; typical draws of the simulator meet most targets.

    Measured over seeds 0-199 (``benchmarks/calibrate_default_cohort.py --rates 200``): no seed
    meets all ~37 targets (exactly 25 deaths alone: 10%), the median draw misses 7; every
    target is met by 43% (nonsurvivors' admission ESR) to 100% of draws. Over seeds 0-19 the
    draws miss 4-11 targets (mean 7.7). Only robust, qualitative facts are asserted here.
    """
    n_seeds = 20
    oks, values = [], []
    for seed in range(n_seeds):
        table = check_paper_targets(simulate_cohort(93, seed=seed).cohort, TARGETS)
        oks.append(table["ok"])
        values.append(table.set_index("statistic")["measured"])
    ok = pd.DataFrame(oks)
    val = pd.DataFrame(values)
    assert ok.to_numpy().mean() > 0.65  # about 0.79 of targets met on average
    # nonsurvivors older, CT and labs correlated with the paper's signs, in every draw
    assert (val["age_mean_nonsurvivor"] > val["age_mean_survivor"] + 10).all()
    paper_tau = {lab: TARGETS[f"kendall_{lab}"]["paper"] for lab in LABS}
    for lab, tau in paper_tau.items():
        assert (np.sign(val[f"kendall_{lab}"]) == np.sign(tau)).all(), lab
    # Table 3: positive CT coefficient; Supp. S3: later periods differ, days 0-5 mostly not
    assert (val["table3_ct_coef"] > 0).mean() >= 0.9
    assert (val["table3_day_coef"] < 0).mean() >= 0.4
    for period in ("6-10", "11-15", "16-20"):
        assert val[f"s3_p_{period}"].median() < 0.05, period
    assert val["s3_p_0-5"].median() > 0.1
