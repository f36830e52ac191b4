"""The posterior predictive check on the dask engine (mixed models and history terms spread over
worker processes) gives the numbers it gives in this process."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesct.checks.ppc import posterior_predictive_check


def test_the_check_is_the_same_with_workers(mock_fit):
    kw = {"replicates": 6, "mixed_replicates": 4, "seed": 2, "check_draws": 60}
    one = posterior_predictive_check(mock_fit, workers=1, **kw)
    two = posterior_predictive_check(mock_fit, workers=2, **kw)
    np.testing.assert_array_equal(one.replicated.to_numpy(), two.replicated.to_numpy())
    assert int(np.isfinite(one.replicated.filter(like="mixed_p").to_numpy()).sum()) > 0
    # the standard checks' history terms (calibration, landmarks, LOO) computed on the workers
    pd.testing.assert_frame_equal(one.landmarks, two.landmarks)
    assert one.loo.keys() == two.loo.keys()
    for k, v in one.loo.items():
        assert v == two.loo[k] or (isinstance(v, float) and np.isnan(v) and np.isnan(two.loo[k])), k
    assert one.meta["timings_s"].keys() == two.meta["timings_s"].keys()
