"""Short runs extended automatically: which gate misses more draws can close, and the fit loop."""

from __future__ import annotations

import dataclasses

import pytest

from bayesct.data import simulate_cohort
from bayesct.modeling.diagnostics import EXTEND_CAP, Diagnostics, extended_draws
from bayesct.modeling.fit import JointModel

PASSING = Diagnostics(
    rhat_max=1.004,
    ess_bulk_min=900.0,
    ess_tail_min=800.0,
    divergences=0,
    bfmi_min=0.8,
    passed=True,
    sampler="nutpie",
    draws=1000,
    chains=4,
    wall_seconds=1.0,
)


def short(**kw: float) -> Diagnostics:
    return dataclasses.replace(PASSING, passed=False, failures=["tail ESS short"], **kw)


def test_a_passing_fit_is_not_extended():
    assert extended_draws(PASSING, 1000) is None


def test_ess_short_asks_for_enough_draws_rounded_up():
    # tail ESS 303 with 1000 draws: 1000 x 1.25 x 400 / 303 = 1650 -> 1700
    assert extended_draws(short(ess_tail_min=303.0), 1000) == 1700
    assert extended_draws(short(ess_bulk_min=205.0, ess_tail_min=350.0), 1000) == 2500


def test_a_narrow_rhat_miss_doubles_the_draws_at_least():
    assert extended_draws(short(rhat_max=1.02), 1000) == 2000
    assert extended_draws(short(rhat_max=1.02, ess_tail_min=150.0), 1000) == 3400


@pytest.mark.parametrize(
    "kw",
    [
        {"divergences": 3},  # divergences: more draws do not help
        {"bfmi_min": 0.2},
        {"rhat_max": 1.2},  # another mode
        {"rhat_max": float("nan")},  # non-finite draws
        {"ess_tail_min": 50.0},  # beyond the cap: 1000 x 10 > 4 x 1000
    ],
)
def test_misses_more_draws_cannot_close_are_not_extended(kw):
    assert extended_draws(short(ess_tail_min=300.0), 1000) == 1700
    assert extended_draws(short(**({"ess_tail_min": 300.0} | kw)), 1000) is None


def test_the_cap():
    assert EXTEND_CAP == 4.0
    # ESS 126 needs 1000 x 1.25 x 400 / 126 = 3968 -> 4000 draws: exactly the cap
    assert extended_draws(short(ess_tail_min=126.0), 1000) == 4000
    assert extended_draws(short(ess_tail_min=124.0), 1000) is None


def _fake_runs(monkeypatch, first: Diagnostics, second: Diagnostics) -> list[int]:
    runs: list[int] = []

    def fake(model, settings, sampler, seed, progress, cores, key, notify, t0):
        runs.append(settings["draws"])
        import xarray as xr

        tree = xr.DataTree.from_dict({"posterior": xr.Dataset()})
        return tree, dataclasses.replace(first if len(runs) == 1 else second, draws=settings["draws"])

    monkeypatch.setattr(JointModel, "_sample_and_judge", staticmethod(fake))
    return runs


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(12, seed=2).cohort


def test_fit_runs_once_more_with_the_extended_draws_and_says_so(monkeypatch, cohort):
    runs = _fake_runs(monkeypatch, short(ess_tail_min=303.0), PASSING)
    said: list[str] = []
    result = JointModel("ct_only").fit(cohort, sampler="pymc", notify=said.append)
    assert runs == [1000, 1700]
    assert result.settings["draws"] == 1700 and result.settings["extended_from"] == 1000
    assert result.passed
    assert any("running again with 1700" in line and "tail ESS 303" in line for line in said)


def test_draws_given_explicitly_or_extend_off_are_never_changed(monkeypatch, cohort):
    runs = _fake_runs(monkeypatch, short(ess_tail_min=303.0), PASSING)
    with pytest.warns(Warning):
        result = JointModel("ct_only").fit(cohort, sampler="pymc", draws=500)
    assert runs == [500] and not result.passed and "extended_from" not in result.settings
    runs.clear()
    with pytest.warns(Warning):
        JointModel("ct_only").fit(cohort, sampler="pymc", extend=False)
    assert runs == [1000]
