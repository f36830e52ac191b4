"""The per-scan logistic day finding: reproduced only when the negative day coefficient is significant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesct.checks.ppc import LOGISTIC_P, judge_findings
from bayesct.classical import findings


def _table(coef: float, p: float) -> dict[str, pd.DataFrame]:
    ml = pd.DataFrame(
        {"term": ["intercept", "ct_score", "day"], "coef": [-3.0, 0.2, coef], "p_value": [0.1, 0.001, p]}
    )
    return {"mortality_logistic": ml}


@pytest.mark.parametrize(
    ("coef", "p", "want"), [(-0.05, 0.40, False), (-0.05, 0.01, True), (0.05, 0.01, False)]
)
def test_day_finding_needs_significance(coef: float, p: float, want: bool) -> None:
    f = findings(_table(coef, p)).set_index("finding")
    assert bool(f.loc["day_coef_negative", "reproduced"]) is want
    if coef < 0 and not want:
        assert "not significant" in f.loc["day_coef_negative", "sentence"]
    values = pd.DataFrame({"logistic_coef[day]": [coef], f"{LOGISTIC_P}[day]": [p]})
    assert judge_findings(values).loc[0, "day_coef_negative"] == float(want)


def test_replicate_verdicts_use_the_p() -> None:
    values = pd.DataFrame(
        {
            "logistic_coef[day]": [-0.1, -0.1, 0.1, np.nan, -0.1],
            f"{LOGISTIC_P}[day]": [0.01, 0.5, 0.01, np.nan, np.nan],
        }
    )
    got = judge_findings(values)["day_coef_negative"].to_numpy()
    np.testing.assert_array_equal(got[:3], [1.0, 0.0, 0.0])
    assert np.isnan(got[3]) and np.isnan(got[4])
