"""``bayesct demo`` / ``make demo``: the main job on the shipped default cohort.

default cohort -> classical tables -> joint fit (convergence gates) ->
posterior predictive checks -> risk grid -> ``report.md``, all under one folder.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from bayesct.errors import ConvergenceWarning


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(out: Path, *, seed: int = 0, replicates: int = 200) -> int:
    """Run every stage on the default cohort; returns the exit code."""
    from bayesct.classical import run_all, write_tables
    from bayesct.data import load_default_cohort, write_cohort
    from bayesct.modeling.fit import JointModel
    from bayesct.report.markdown import write_report

    out.mkdir(parents=True, exist_ok=True)
    t = _step("Default cohort")
    cohort = load_default_cohort()
    write_cohort(cohort, out / "default_cohort.csv")
    print(cohort.summary())

    _step("Classical tables (the paper's frequentist analysis)")
    tables = run_all(cohort)
    write_tables(tables, out / "classical")
    print(f"  written to {out / 'classical'}")

    t = _step("Bayesian joint model (nutpie)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = JointModel("joint").fit(cohort, seed=seed, progress=sys.stderr.isatty())
    result.save(out / "fit")
    print(f"  {result.diagnostics.message()}")
    if not result.diagnostics.passed:
        print("WARNING: the fit missed a convergence gate; its numbers are not reliable.", file=sys.stderr)
    print(f"  fit written to {out / 'fit'} ({time.perf_counter() - t:.1f} s)")

    _step(f"Posterior predictive checks ({replicates} replicates)")
    from bayesct.checks.ppc import DEFAULT_MIXED_REPLICATES
    from bayesct.checks.ppc import run_cli as check_cli

    check_cli(
        argparse.Namespace(
            fit_dir=str(out / "fit"),
            out=str(out / "check"),
            replicates=replicates,
            level="patients",
            outcome_level="new",
            seed=seed,
            compare=[],
            mixed_replicates=DEFAULT_MIXED_REPLICATES,
        )
    )

    _step("Risk grid (Table 3 counterpart), age 60, male")
    from bayesct.risk import run_cli as risk_cli

    risk_cli(
        argparse.Namespace(
            fit_dir=str(out / "fit"),
            ct_score=None,
            day=None,
            age=60.0,
            sex="male",
            history=None,
            json=False,
            grid=True,
            days=[3.0, 8.0, 13.0, 18.0, 23.0],
            out=str(out / "risk" / "risk_grid.csv"),
            seed=seed,
            draws=1000,
        )
    )
    risk_cli(
        argparse.Namespace(
            fit_dir=str(out / "fit"),
            ct_score=14.0,
            day=8.0,
            age=60.0,
            sex="male",
            history=None,
            json=False,
            grid=False,
            days=None,
            out=None,
            seed=seed,
            draws=1000,
        )
    )

    _step("Report")
    report = write_report(out)
    print(f"  {report}")
    print(f"\nDone. Everything is in {out}/ — start with {report}.")
    return 0
