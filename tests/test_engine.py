"""The many-fit engine (bayesct.engine) and the exact refits of model comparison on it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bayesct.checks.refit import exact_patient_loo
from bayesct.data import simulate_cohort
from bayesct.engine import run_tasks
from bayesct.modeling.fit import JointModel


def test_every_task_comes_back_and_a_failing_one_as_its_exception():
    results = dict(run_tasks(math.sqrt, [4.0, -1.0, 9.0], workers=2, name="test-engine"))
    assert results[0] == 2.0 and results[2] == 3.0
    assert isinstance(results[1], ValueError)
    assert list(run_tasks(math.sqrt, [])) == []


@pytest.mark.slow
def test_refits_on_the_engine_equal_refits_in_this_process():
    """Refits on dask workers (same spec, settings, seed) are the same fits as refits in this
    process, and score each patient the same; the patients' own terms differ by far more, so a
    refit scoring the wrong patient would fail."""
    cohort = simulate_cohort(24, seed=11).cohort
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = JointModel("ct_only").fit(
            cohort, draws=150, tune=150, chains=2, seed=5, cores=2, progress=False
        )
    lines: list[str] = []
    parts = ("ct", "death")
    patients = [3, 7]
    on_engine = exact_patient_loo(fit, patients, parts=parts, max_draws=200, seed=1, progress=lines.append)
    here = exact_patient_loo(fit, patients, parts=parts, max_draws=200, seed=1, workers=1)
    np.testing.assert_allclose(on_engine.elpd_i, here.elpd_i, rtol=1e-9)
    assert abs(here.elpd_i[0] - here.elpd_i[1]) > 1.0
    assert on_engine.patients == here.patients == (3, 7)
    assert len(lines) == 2 and all("without patient" in line for line in lines)
