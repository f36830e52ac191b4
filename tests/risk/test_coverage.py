"""Risk intervals against the exact truth of generators that are not bayesct's model.

The recovery tests fit cohorts from bayesct's own simulator, whose story is the ``joint``
model; these fit cohorts from the ``zones`` generator (the CT score the sum of six ordinal
lung zones, labs without patient effects of their own) and the ``skewed`` one (a skewed level
effect, ESR apart from the shared severity), and hold the default model's Table 3 cells to the
exact P(death | CT score on a day) of :func:`bayesct.data.zones.true_risk_grid`. The full
study, at 93 and 600 patients and several seeds, is ``benchmarks/risk_coverage.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesct.data import simulate_cohort
from bayesct.data.zones import ZoneParams, true_risk_grid
from bayesct.modeling.fit import JointModel
from bayesct.risk import risk_grid

#: Cells inside the range the cohorts observe (scores and days), where the model, not an
#: extrapolation, carries the answer.
SCORES = (6, 12, 18)
DAYS = (5.0, 12.0, 19.0)


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["zones", "skewed"])
def test_default_model_risk_intervals_cover_the_truth_of_an_independent_generator(generator):
    params = ZoneParams.for_generator(generator)
    cohort = simulate_cohort(300, seed=11, generator=generator, params=params).cohort
    truth = true_risk_grid(params, SCORES, DAYS, age=60.0, male=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = JointModel("joint").fit(cohort, draws=500, chains=2, seed=5)
        grid = risk_grid(fit, scores=SCORES, days=DAYS, age=60.0, sex="female", seed=5)
    cells = [
        (
            truth.loc[s, d],
            *grid.loc[(grid["ct_score"] == s) & (grid["day"] == d), ["median", "lo", "hi"]].iloc[0],
        )
        for s in SCORES
        for d in DAYS
    ]
    t, med, lo, hi = np.array(cells, dtype=float).T
    covered = (lo <= t) & (t <= hi)
    # 95% intervals: at most one of the nine cells may miss
    assert covered.sum() >= len(t) - 1, list(zip(t.round(3), lo.round(3), hi.round(3), strict=True))
    # and no gross bias: the medians within 0.1 of the truth on average (a single cohort's
    # errors share its sampling noise, so this is no test of calibration; the study is)
    assert np.abs(med - t).mean() <= 0.1
