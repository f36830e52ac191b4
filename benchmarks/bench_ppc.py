"""Benchmark of ``bayesct check``: 200 replicates (and the mixed-model subset) on one fit.

Usage::

    .venv/bin/python benchmarks/bench_ppc.py [FIT_DIR] [--replicates 200] [--mixed 100] [--level patients]
        [--outcome-level new]

Without FIT_DIR the default cohort is fitted with the default joint spec into a temporary folder
first (not timed). Prints a markdown table of the phases (target: 200 replicates in <= 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit_dir", nargs="?", help="fit folder (default: fit the default cohort first)")
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--mixed", type=int, default=100, help="replicates with the mixed model (default 100)")
    ap.add_argument("--level", choices=["patients", "new"], default="patients")
    ap.add_argument("--outcome-level", choices=["patients", "new"], default="new")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from bayesct.checks import posterior_predictive_check
    from bayesct.modeling.fit import FitResult

    fit_dir = args.fit_dir
    if fit_dir is None:
        from bayesct.data import load_default_cohort
        from bayesct.modeling.fit import JointModel

        fit_dir = tempfile.mkdtemp(prefix="bench_ppc_fit_")
        print(f"fitting the default cohort (joint) into {fit_dir} ...")
        JointModel("joint").fit(load_default_cohort(), seed=1).save(fit_dir)
    t0 = time.perf_counter()
    fit = FitResult.load(fit_dir)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = posterior_predictive_check(
        fit,
        replicates=args.replicates,
        level=args.level,
        outcome_level=args.outcome_level,
        seed=args.seed,
        mixed_replicates=args.mixed,
    )
    t_check = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res.write(Path(tmp))
        t_write = time.perf_counter() - t0
    tm = res.meta["timings_s"]
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n`bayesct check` benchmark: {fit_dir} ({fit.spec.name}, {fit.cohort.n_patients} patients, "
        f"{fit.cohort.n_scans} scans), {args.replicates} replicates, level {args.level} (outcome contrasts {args.outcome_level}), "
        f"mixed model on {res.meta['mixed_replicates']}; {os.cpu_count()} CPUs, load average {load_avg:.2f}\n"
    )
    print("| phase | seconds |")
    print("|---|---:|")
    print(f"| load fit (not part of the check) | {t_load:.2f} |")
    for k, label in [
        ("replicate", "replicate markers (vectorised)"),
        ("observed", "observed tables"),
        ("statistics", f"scan statistics x {args.replicates}"),
        ("mixed_model", f"mixed model x {res.meta['mixed_replicates']}"),
        ("standard_checks", "PIT / LOO-PIT, calibration, PSIS-LOO"),
    ]:
        print(f"| {label} | {tm.get(k, 0.0):.2f} |")
    print(f"| **check total** | **{t_check:.2f}** |")
    print(f"| write json/csv/figures | {t_write:.2f} |")
    print(f"| **total incl. writing** | **{t_check + t_write:.2f}** |")
    print(f"\ntarget <= 60 s: {'met' if t_check + t_write <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
