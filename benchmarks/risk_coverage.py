"""Coverage of the Table 3 risk grid on cohorts from generators bayesct does not fit.

For each generator x cohort size x seed: simulate a cohort (``bayesct.data.simulate_cohort``
with ``generator="zones"`` or ``"skewed"``, whose exact true risk is
``bayesct.data.zones.true_risk``), fit each candidate model with its spec's defaults, compute
the single-scan risk grid (CT 4/8/12/16/20 x days 3/8/13/18/25, age 60, female) and the
history queries of 12 new patients of the same generator (their first three visits), and
record, per fit: coverage of the 95% intervals, mean absolute error of the posterior
median (grid and histories), wall time and the gates. One line per fit is appended to ``benchmarks/results/risk_coverage.jsonl``
(a rerun skips the fits already there) and the table is written to
``benchmarks/results/risk_coverage.md``.

    python benchmarks/risk_coverage.py [--generators zones,skewed] [--sizes 93,600]
        [--seeds 0,1] [--models joint] [--no-risk] [--scheduler ADDRESS] [--workers N]

Each fit is a task on the dask engine (``bayesct.engine.run_tasks``: a LocalCluster, one
worker per core, or ``--scheduler``; ``--workers 1`` fits in this process); a worker compiles
each model once and binds every cohort to it.

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

from bayesct.constants import CT, DAY, LABS
from bayesct.data import simulate_cohort
from bayesct.data.zones import ZoneParams, true_risk, true_risk_grid
from bayesct.modeling.fit import JointModel
from bayesct.risk import risk_grid, risk_query

SCORES = (4, 8, 12, 16, 20)
DAYS = (3.0, 8.0, 13.0, 18.0, 25.0)
AGE, SEX = 60.0, "female"
#: History queries: new patients from the same generator, their first scans (and the labs
#: drawn with them), age and sex.
N_HISTORIES = 12
MAX_HISTORY_VISITS = 3
RESULTS = Path(__file__).parent / "results"
RECORDS = RESULTS / "risk_coverage.jsonl"


def _key(row: dict) -> tuple:
    return (row["generator"], row["no_risk"], row["patients"], row["seed"], row["model"])


def histories(generator: str, params: ZoneParams, seed: int) -> list[tuple[pd.DataFrame, float, str]]:
    """New patients' first visits (at most MAX_HISTORY_VISITS, at least one CT score), age and sex."""
    new = simulate_cohort(N_HISTORIES, seed=10_000 + seed, generator=generator, params=params).cohort
    out = []
    for pid, visits in new.visits.groupby("patient_id", sort=False):
        first = visits.sort_values(DAY).head(MAX_HISTORY_VISITS)
        cols = [DAY, CT, *[c for c in LABS if c in first]]
        row = new.patients.loc[pid]
        out.append((first[cols].reset_index(drop=True), float(row["age"]), str(row["sex"])))
    return out


def _score(cells: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    arr = np.array(cells, dtype=float)
    covered = (arr[:, 2] <= arr[:, 0]) & (arr[:, 0] <= arr[:, 3])
    return float(covered.mean()), float(np.abs(arr[:, 1] - arr[:, 0]).mean())


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
    hist_cells = []
    for visits, age, sex in histories(generator, params, seed):
        q = risk_query(result, history=visits, age=age, sex=sex, seed=seed)
        truth_h = true_risk(params, visits, age, male=int(sex == "male"))
        hist_cells.append((truth_h, float(q.attrs["median"]), float(q.attrs["lo"]), float(q.attrs["hi"])))
    hist_cov, hist_mae = _score(hist_cells)
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
        "history_coverage": hist_cov,
        "history_mae": hist_mae,
        "history_cells": [[float(x) for x in c] for c in hist_cells],
    }


def _run_task(task: tuple) -> dict:
    """:func:`run_one` of ``(generator, n, seed, model, no_risk)``, on a worker of the engine."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_one(*task)


def _cell_stats(row: dict) -> pd.Series:
    """Signed error of the medians, and the abs. error a calibrated posterior of the same widths
    would have: for a normal posterior centred at the truth's draw, E|median - truth| = SD sqrt(2/pi),
    with SD = 95% width / 3.92."""
    cells = np.asarray(row["cells"], dtype=float)
    sd = (cells[:, 3] - cells[:, 2]) / (2 * 1.959964)
    return pd.Series(
        {
            "bias": float((cells[:, 1] - cells[:, 0]).mean()),
            "mae_cal": float((sd * np.sqrt(2 / np.pi)).mean()),
        }
    )


def table(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    df = pd.concat([df, df.apply(_cell_stats, axis=1)], axis=1)
    agg = (
        df.groupby(["generator", "no_risk", "patients", "model"])
        .agg(
            fits=("seed", "size"),
            coverage=("coverage", "mean"),
            mae=("mae", "mean"),
            mae_cal=("mae_cal", "mean"),
            bias=("bias", "mean"),
            width=("mean_width", "mean"),
            wall_s=("wall_s", "median"),
            gates=("passed", "sum"),
            h_cov=("history_coverage", "mean"),
            h_mae=("history_mae", "mean"),
            h_n=("history_coverage", "count"),
        )
        .reset_index()
    )
    lines = [
        "| generator | CT risk | patients | model | fits | coverage | mean abs. error | calibrated abs. error | mean error | mean width | histories: coverage | histories: mean abs. error | wall (s) | gates passed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in agg.itertuples():
        hist = f"{r.h_cov:.0%} ({r.h_n} fits) | {r.h_mae:.3f}" if r.h_n else "– | –"
        lines.append(
            f"| {r.generator} | {'none' if r.no_risk else 'yes'} | {r.patients} | {r.model} | {r.fits} "
            f"| {r.coverage:.0%} | {r.mae:.3f} | {r.mae_cal:.3f} | {r.bias:+.3f} | {r.width:.3f} "
            f"| {hist} | {r.wall_s:.0f} | {r.gates}/{r.fits} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generators", default="zones,skewed")
    ap.add_argument("--sizes", default="93,600")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--models", default="joint")
    ap.add_argument("--no-risk", action="store_true")
    ap.add_argument("--scheduler", default=None, help="a running dask scheduler (default: a LocalCluster)")
    ap.add_argument(
        "--workers", type=int, default=None, help="local workers (default one per core; 1: in process)"
    )
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    done = []
    if RECORDS.exists():
        done = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    have = {_key(r) for r in done}
    todo = [
        (generator, n, seed, model, args.no_risk)
        for generator in args.generators.split(",")
        for n in (int(x) for x in args.sizes.split(","))
        for seed in (int(x) for x in args.seeds.split(","))
        for model in args.models.split(",")
        if (generator, args.no_risk, n, seed, model) not in have
    ]
    if args.workers == 1:
        results = ((j, run_one(*task)) for j, task in enumerate(todo))
    else:  # each fit a task on the dask engine (a LocalCluster, or --scheduler)
        from bayesct.engine import run_tasks

        results = run_tasks(_run_task, todo, scheduler=args.scheduler, workers=args.workers, name="coverage")
    for j, row in results:
        generator, n, seed, model, _ = todo[j]
        if isinstance(row, BaseException):
            print(f"{generator} n={n} seed={seed} {model}: FAILED: {type(row).__name__}: {row}", flush=True)
            continue
        print(
            f"{generator} {'no-risk ' if args.no_risk else ''}n={n} seed={seed} {model}: "
            f"coverage {row['coverage']:.0%}, MAE {row['mae']:.3f}, {row['wall_s']} s, "
            f"gates {'passed' if row['passed'] else 'FAILED'}",
            flush=True,
        )
        with RECORDS.open("a") as fh:  # as each fit finishes: a rerun resumes after it
            fh.write(json.dumps(row) + "\n")
        done.append(row)
    (RESULTS / "risk_coverage.md").write_text(
        "# Risk-grid coverage on generators bayesct does not fit\n\n"
        "`python benchmarks/risk_coverage.py` (see its docstring). Grid CT 4/8/12/16/20 x days "
        "3/8/13/18/25, age 60, female; truth by exact integration (`bayesct.data.zones.true_risk`). "
        "*Calibrated abs. error*: the mean abs. error a calibrated posterior with the same interval "
        "widths would have (posterior SD x sqrt(2/pi)); a mean abs. error well above it is bias. "
        "*Mean error*: median minus truth, averaged over the cells. *Histories*: "
        f"{N_HISTORIES} new patients of the same generator per fit, their first "
        f"{MAX_HISTORY_VISITS} visits (CT scores and the labs drawn with them) against the exact "
        "P(death | history) (recorded from 2026-12-03 on; earlier fits have none). *Models*: "
        '`joint` is the default spec (skewed severity level, `severity_law = "sinh_arcsinh"`), '
        "`joint_normal` the same model with a normal level, `joint_zones` the zone-sum CT "
        "likelihood with a normal level, `benchmarks/specs/joint_full.toml` the plain model "
        "(every marker its own patient effects, one LKJ covariance).\n\n" + table(done)
    )


if __name__ == "__main__":
    main()
