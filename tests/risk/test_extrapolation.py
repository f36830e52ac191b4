"""Risk queries say when they extrapolate beyond the fitted cohort, and report the posterior mean."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from bayesct.cli import cmd_risk
from bayesct.constants import CT, DAY
from bayesct.risk import RiskWarning, extrapolation_messages, risk_grid, risk_query


def _last_scan_day(fit) -> float:
    v = fit.cohort.visits
    return float(v.loc[v[CT].notna(), DAY].max())


def _age_range(fit) -> tuple[float, float]:
    ages = fit.cohort.patients["age"]
    return float(ages.min()), float(ages.max())


def _inside_age(fit) -> float:
    lo, hi = _age_range(fit)
    return round((lo + hi) / 2)


def test_query_past_last_scan_warns_and_lists_message(joint_fake):
    last = _last_scan_day(joint_fake)
    age = _inside_age(joint_fake)
    assert last < 60 < joint_fake.spec.boundary[1] + 100
    with pytest.warns(RiskWarning, match=r"day 60 is past the last CT scan in the fitted cohort") as rec:
        ds = risk_query(joint_fake, ct_score=14, day=60, age=age, sex="male")
    msgs = ds.attrs["extrapolation"]
    expected = (
        f"day 60 is past the last CT scan in the fitted cohort (day {last:g}): "
        "the risk extrapolates the trajectory model"
    )
    assert expected in msgs
    # day 60 is also beyond the joint spec's spline boundary
    assert joint_fake.spec.boundary[1] < 60
    assert any("spline boundary" in m for m in msgs)
    # every message is issued as a RiskWarning, once
    warned = [str(w.message) for w in rec if issubclass(w.category, RiskWarning)]
    assert sorted(warned) == sorted(msgs)


def test_query_inside_ranges_does_not_warn(joint_fake):
    day = min(8.0, _last_scan_day(joint_fake))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RiskWarning)
        ds = risk_query(joint_fake, ct_score=14, day=day, age=_inside_age(joint_fake), sex="male")
    assert ds.attrs["extrapolation"] == []


def test_age_outside_range(joint_fake):
    lo, hi = _age_range(joint_fake)
    assert hi < 120
    with pytest.warns(RiskWarning, match="age"):
        ds = risk_query(joint_fake, ct_score=14, day=8, age=hi + 1, sex="female")
    msgs = ds.attrs["extrapolation"]
    assert len(msgs) == 1
    assert msgs[0].startswith(f"age {hi + 1:g} is outside the ages in the fitted cohort ({lo:g}-{hi:g})")


def test_ct_score_outside_observed_scores(joint_fake):
    # a cohort whose CT scores stop at 15: a score of 20 extrapolates
    visits = joint_fake.cohort.visits.copy()
    visits[CT] = visits[CT].clip(upper=15)
    narrow = dataclasses.replace(joint_fake, cohort=dataclasses.replace(joint_fake.cohort, visits=visits))
    msgs = extrapolation_messages(narrow, day=8, ct_score=20, age=_inside_age(joint_fake))
    assert len(msgs) == 1 and msgs[0].startswith("CT score 20 is outside the CT scores observed")
    assert extrapolation_messages(narrow, day=8, ct_score=12, age=_inside_age(joint_fake)) == []


def test_scan_logistic_query_past_last_scan(scan_logistic_fake):
    last = _last_scan_day(scan_logistic_fake)
    with pytest.warns(RiskWarning, match="past the last CT scan"):
        ds = risk_query(scan_logistic_fake, ct_score=10, day=last + 5)
    assert len(ds.attrs["extrapolation"]) == 1  # no spline boundary for the per-scan model
    assert "per-scan model" in ds.attrs["extrapolation"][0]


def test_grid_attrs_and_one_warning_per_message(joint_fake):
    age = _inside_age(joint_fake)
    with pytest.warns(RiskWarning) as rec:
        grid = risk_grid(joint_fake, days=[3, 8, 45, 60], scores=[5, 10], age=age, sex="male")
    msgs = grid.attrs["extrapolation"]
    assert any(m.startswith("days 45, 60 are past the last CT scan") for m in msgs)
    assert any("spline boundary" in m for m in msgs)
    warned = [str(w.message) for w in rec if issubclass(w.category, RiskWarning)]
    assert sorted(warned) == sorted(msgs) and len(set(warned)) == len(warned)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RiskWarning)
        inside = risk_grid(joint_fake, days=[3, 8], scores=[5, 10], age=age, sex="male")
    assert inside.attrs["extrapolation"] == []


def test_query_mean_is_mean_of_draws(joint_fake):
    ds = risk_query(joint_fake, ct_score=14, day=8, age=60, sex="male")
    assert ds.attrs["mean"] == pytest.approx(float(ds["p_death"].mean()), rel=1e-12)
    for key in ("median", "lo", "hi"):  # existing fields kept
        assert key in ds.attrs


def test_grid_mean_column(joint_fake):
    grid = risk_grid(joint_fake, days=[8], scores=[14], age=60, sex="male")
    assert {"median", "lo", "hi", "mean", "band"} <= set(grid.columns)
    one = risk_query(joint_fake, ct_score=14, day=8, age=60, sex="male")
    assert grid["mean"].iloc[0] == pytest.approx(one.attrs["mean"], rel=1e-9)


def test_cli_prints_extrapolation_warnings_and_mean(joint_fake, capsys, risk_cli_args):
    age = _inside_age(joint_fake)
    assert cmd_risk(risk_cli_args(joint_fake, ct_score=14, day=60, age=age, sex="male")) == 0
    captured = capsys.readouterr()
    assert "mean " in captured.out
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("warning: ")]
    assert any("day 60 is past the last CT scan" in ln for ln in lines)
    assert len(lines) == len(set(lines))
    assert cmd_risk(risk_cli_args(joint_fake, ct_score=14, day=60, age=age, sex="male", json=True)) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["extrapolation"] and np.isfinite(obj["p_death"]["mean"])


def test_cli_grid_prints_warning_once(joint_fake, capsys, risk_cli_args):
    age = _inside_age(joint_fake)
    assert cmd_risk(risk_cli_args(joint_fake, grid=True, days=[8.0, 45.0, 60.0], age=age, sex="male")) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert sum("past the last CT scan" in ln for ln in lines) == 1
