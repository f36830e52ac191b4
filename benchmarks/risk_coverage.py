"""Coverage of the Table 3 risk grid on cohorts from generators bayesct does not fit.

For each generator x cohort size x seed: simulate a cohort (``bayesct.data.simulate_cohort``
with ``generator="zones"`` or ``"skewed"``, whose exact true risk is
``bayesct.data.zones.true_risk``), fit each candidate model with its spec's defaults, compute
the single-scan risk grid (CT 4/8/12/16/20 x days 3/8/13/18/25, age 60, female) and record,
per fit: coverage of the 95% intervals, mean absolute error of the posterior median, wall
time and the gates. One line per fit is appended to ``benchmarks/results/risk_coverage.jsonl``
(a rerun skips the fits already there) and the table is written to
``benchmarks/results/risk_coverage.md``.

    python benchmarks/risk_coverage.py [--generators zones,skewed] [--sizes 93,600]
        [--seeds 0,1] [--models joint] [--no-risk]

``--no-risk`` sets the generator's mortality association to 0 (CT carries no risk: the
truth is flat across the grid).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesct.data import simulate_cohort
from bayesct.data.zones import ZoneParams, true_risk_grid
from bayesct.modeling.fit import JointModel
from bayesct.risk import risk_grid

SCORES = (4, 8, 12, 16, 20)
DAYS = (3.0, 8.0, 13.0, 18.0, 25.0)
AGE, SEX = 60.0, "female"
RESULTS = Path(__file__).parent / "results"
RECORDS = RESULTS / "risk_coverage.jsonl"


def _key(row: dict) -> tuple:
    return (row["generator"], row["no_risk"], row["patients"], row["seed"], row["model"])


def run_one(generator: str, n: int, seed: int, model: str, no_risk: bool) -> dict:
    params = ZoneParams.for_generator(generator, **({"gamma0": 0.0, "gamma1": 0.0} if no_risk else {}))
    cohort = simulate_cohort(n, seed=seed, generator=generator, params=params).cohort
    truth = true_risk_grid(params, SCORES, DAYS, age=AGE, male=0)
    t0 = time.perf_counter()
    result = JointModel(model).fit(cohort, seed=seed)
    grid = risk_grid(result, scores=SCORES, days=DAYS, age=AGE, sex=SEX, seed=seed)
    wall = time.perf_counter() - t0
    cells = []
    for s in SCORES:
        for d in DAYS:
            row = grid[(grid["ct_score"] == s) & (grid["day"] == d)].iloc[0]
            cells.append((truth.loc[s, d], row["median"], row["lo"], row["hi"]))
    arr = np.array(cells, dtype=float)
    covered = (arr[:, 2] <= arr[:, 0]) & (arr[:, 0] <= arr[:, 3])
    return {
        "generator": generator,
        "no_risk": no_risk,
        "patients": n,
        "seed": seed,
        "model": model,
        "coverage": float(covered.mean()),
        "mae": float(np.abs(arr[:, 1] - arr[:, 0]).mean()),
        "mean_width": float((arr[:, 3] - arr[:, 2]).mean()),
        "wall_s": round(wall, 1),
        "passed": bool(result.passed),
        "cells": [[float(x) for x in c] for c in cells],
    }


def table(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    agg = (
        df.groupby(["generator", "no_risk", "patients", "model"])
        .agg(
            fits=("seed", "size"),
            coverage=("coverage", "mean"),
            mae=("mae", "mean"),
            width=("mean_width", "mean"),
            wall_s=("wall_s", "median"),
            gates=("passed", "sum"),
        )
        .reset_index()
    )
    lines = [
        "| generator | CT risk | patients | model | fits | coverage | mean abs. error | mean width | wall (s) | gates passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in agg.itertuples():
        lines.append(
            f"| {r.generator} | {'none' if r.no_risk else 'yes'} | {r.patients} | {r.model} | {r.fits} "
            f"| {r.coverage:.0%} | {r.mae:.3f} | {r.width:.3f} | {r.wall_s:.0f} | {r.gates}/{r.fits} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generators", default="zones,skewed")
    ap.add_argument("--sizes", default="93,600")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--models", default="joint")
    ap.add_argument("--no-risk", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    done = []
    if RECORDS.exists():
        done = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    have = {_key(r) for r in done}
    for generator in args.generators.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            for seed in (int(x) for x in args.seeds.split(",")):
                for model in args.models.split(","):
                    if (generator, args.no_risk, n, seed, model) in have:
                        continue
                    row = run_one(generator, n, seed, model, args.no_risk)
                    print(
                        f"{generator} {'no-risk ' if args.no_risk else ''}n={n} seed={seed} {model}: "
                        f"coverage {row['coverage']:.0%}, MAE {row['mae']:.3f}, {row['wall_s']} s, "
                        f"gates {'passed' if row['passed'] else 'FAILED'}",
                        flush=True,
                    )
                    with RECORDS.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    done.append(row)
    (RESULTS / "risk_coverage.md").write_text(
        "# Risk-grid coverage on generators bayesct does not fit\n\n"
        "`python benchmarks/risk_coverage.py` (see its docstring). Grid CT 4/8/12/16/20 x days "
        "3/8/13/18/25, age 60, female; truth by exact integration (`bayesct.data.zones.true_risk`).\n\n"
        + table(done)
    )


if __name__ == "__main__":
    main()
