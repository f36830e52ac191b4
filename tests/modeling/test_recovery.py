"""Parameter recovery: fit the joint model to a simulated cohort with known truth.

The simulator and the ``joint`` spec share one structure (with no CT-specific
patient intercept in the simulation, which the model does not have). The
mortality association, the fixed trajectory effects (population curves at a
few days) and the random-effect SDs must be covered by their 90% intervals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesct.data import simulate_cohort
from bayesct.data.simulate import population_curve
from bayesct.modeling.design import spline_basis
from bayesct.modeling.fit import JointModel


@pytest.mark.slow
def test_joint_model_recovers_the_truth(matched_params):
    sim = simulate_cohort(400, seed=2024, params=matched_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = JointModel("joint").fit(sim.cohort, draws=400, tune=500, chains=2, seed=1)
    post = fit.posterior.stack(sample=("chain", "draw"))
    p = matched_params

    def interval(values: np.ndarray) -> tuple[float, float]:
        lo, hi = np.quantile(values, [0.05, 0.95])
        return float(lo), float(hi)

    checks: dict[str, tuple[float, tuple[float, float]]] = {
        "gamma_value": (p.gamma_value, interval(post["mort_gamma"].sel(association="value").values)),
        "gamma_slope": (p.gamma_slope, interval(post["mort_gamma"].sel(association="slope").values)),
        "beta_age": (p.beta_age, interval(post["mort_beta"].sel(covariate="age").values)),
        "beta_male": (p.beta_male, interval(post["mort_beta"].sel(covariate="male").values)),
        "s0": (p.s0, interval(post["severity_cov_stds"].values[0])),
        "s1": (p.s1, interval(post["severity_cov_stds"].values[1])),
    }
    design = fit.design
    days = np.array([4.0, 10.0, 16.0])
    B = spline_basis(days, fit.spec)
    for k, marker in enumerate(design.markers):
        if marker != "ct_score":
            checks[f"tau[{marker}]"] = (p.tau[marker], interval(post["specific_sd"].sel(lab=marker).values))
            checks[f"loading[{marker}]"] = (
                p.lambda_[marker],
                interval(post["loading"].sel(marker=marker).values),
            )
        curve = design.marker_centre[k] + B @ post["spline_coef"].isel(marker=k).values
        for j, day in enumerate(days):
            truth = float(population_curve(p, marker, day))
            checks[f"f[{marker}, day {day:g}]"] = (truth, interval(curve[j]))
    covered = {name: lo <= truth <= hi for name, (truth, (lo, hi)) in checks.items()}
    misses = {n: checks[n] for n, ok in covered.items() if not ok}
    share = np.mean(list(covered.values()))
    # The named headline quantities must each be covered; over all (~45) quantities a 90% interval
    # misses about 1 in 10 by chance, so require at least 80% coverage there.
    for name in ("gamma_value", "gamma_slope", "s0", "s1"):
        assert covered[name], f"{name}: truth {checks[name][0]} outside 90% interval {checks[name][1]}"
    assert share >= 0.8, f"coverage {share:.0%}; misses: {misses}"
