"""Fit every shipped spec to the default cohort with its default settings and report the gates.

.venv/bin/python benchmarks/fit_all_specs.py [SEED]
"""

from __future__ import annotations

import sys
import time
import warnings

from bayesct.data import load_default_cohort
from bayesct.modeling.fit import JointModel
from bayesct.modeling.spec import SPEC_NAMES


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    cohort = load_default_cohort()
    print("| spec | wall (s) | R-hat max | bulk ESS min | tail ESS min | divergences | E-BFMI min | gates |")
    print("|---|---|---|---|---|---|---|---|")
    for name in SPEC_NAMES:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = JointModel(name).fit(cohort, seed=seed).diagnostics
        wall = time.perf_counter() - t0
        print(
            f"| {name} | {wall:.1f} | {d.rhat_max:.3f} | {d.ess_bulk_min:.0f} | {d.ess_tail_min:.0f} | "
            f"{d.divergences} | {d.bfmi_min:.2f} | {'passed' if d.passed else 'FAILED'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
