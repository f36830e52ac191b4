"""Speed of posterior risk queries: one query after loading, and a 25 × 31 grid (days 0-30).

Usage::

    .venv/bin/python benchmarks/bench_risk.py FITDIR      # a saved fit directory
    .venv/bin/python benchmarks/bench_risk.py             # fits the default cohort (joint spec) first

Targets (issue "bayesct risk"): one query <= 1 s after loading, the 25 × 31 grid <= 30 s.
Prints a small markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from bayesct.data.default import load_default_cohort
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.risk import risk_grid, risk_query

HISTORY = pd.DataFrame(
    {"day": [4, 9, 14], "ct_score": [6, 11, 15], "nlr": [3.0, 5.5, 8.0], "ldh": [250.0, 310.0, 420.0]}
)


def _time(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fit_dir", nargs="?", help="fit directory (default: fit the default cohort)")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws used per query")
    args = parser.parse_args()
    fit_dir = args.fit_dir
    if fit_dir is None:
        fit_dir = str(Path(tempfile.mkdtemp(prefix="bench_risk_")) / "fit")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            JointModel("joint").fit(load_default_cohort(), seed=1).save(fit_dir)
        print(f"fitted the default cohort (joint) in {time.perf_counter() - t0:.1f} s -> {fit_dir}")
    t0 = time.perf_counter()
    result = FitResult.load(fit_dir)
    _ = result.design
    t_load = time.perf_counter() - t0
    kw = {"age": 60, "sex": "male"} if "age" in result.spec.covariates else {}
    t_one, ds = _time(lambda: risk_query(result, ct_score=14, day=8, max_draws=args.draws, **kw))
    t_hist, dh = _time(lambda: risk_query(result, history=HISTORY, max_draws=args.draws, **kw))
    t_grid, grid = _time(
        lambda: risk_grid(result, days=list(range(31)), max_draws=args.draws, **kw), repeat=1
    )
    a = ds.attrs  # type: ignore[union-attr]
    print(f"\nmodel {result.spec.name}, {args.draws} posterior draws, fit {fit_dir}\n")
    print("| step | seconds | target | result |")
    print("|---|---:|---:|---|")
    print(f"| load fit directory | {t_load:.2f} | - | |")
    print(
        f"| one query (CT 14, day 8) | {t_one:.3f} | 1 | {100 * a['median']:.1f}% "
        f"[{100 * a['lo']:.1f}%, {100 * a['hi']:.1f}%] ({a['method']}) |"
    )
    h = dh.attrs  # type: ignore[union-attr]
    print(
        f"| one query, 3-scan + labs history | {t_hist:.3f} | 1 | {100 * h['median']:.1f}% "
        f"(ESS min {h['ess_min']:.0f}) |"
    )
    print(f"| 25 × 31 grid (days 0-30) | {t_grid:.2f} | 30 | {len(grid)} cells |")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
