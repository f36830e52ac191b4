"""Regenerate ``src/bayesct/data/default_cohort.csv``: the seed search behind the default cohort.

The default cohort is ``simulate_cohort(93, seed=DEFAULT_COHORT_SEED)`` with the default
``SimulationParams``. The parameters were calibrated by reasoning plus a quick search (see the
docstring of :mod:`bayesct.data.simulate`): typical draws of ``simulate_cohort(93, seed)`` look
broadly like the paper but meet only most of the ~37 targets of ``paper_targets.toml`` (exactly 25
deaths alone happens in about one draw in ten). The seed was then chosen by scanning seeds
0, 1, 2, ... and taking the first whose cohort meets every target. The default cohort is
therefore one draw that reproduces the published summaries, not a typical draw.

Usage::

    .venv/bin/python benchmarks/calibrate_default_cohort.py            # search, report, write the CSV
    .venv/bin/python benchmarks/calibrate_default_cohort.py --seed 123 # write one seed's cohort
    .venv/bin/python benchmarks/calibrate_default_cohort.py --rates 200  # per-target pass rates

After a new seed is found, set ``DEFAULT_COHORT_SEED`` in ``src/bayesct/data/default.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from bayesct.data.default import check_paper_targets, load_paper_targets
from bayesct.data.simulate import simulate_cohort

OUT = Path(__file__).resolve().parents[1] / "src" / "bayesct" / "data" / "default_cohort.csv"


def find_seed(max_seed: int = 50_000, n_patients: int = 93) -> tuple[int, int]:
    """First seed whose cohort meets every target, and how many seeds were tried."""
    targets = load_paper_targets()
    n_deaths = int(targets["n_deaths"]["paper"])
    for seed in range(max_seed):
        cohort = simulate_cohort(n_patients, seed).cohort
        if cohort.n_deaths != n_deaths:  # cheap pre-filter: the exact death count fails most draws
            continue
        if bool(check_paper_targets(cohort, targets)["ok"].all()):
            return seed, seed + 1
    raise RuntimeError(f"no seed below {max_seed} meets every target")


def pass_rates(n_seeds: int) -> pd.DataFrame:
    """Share of seeds 0..n_seeds-1 meeting each target, and the median statistic."""
    rows, values = [], []
    for seed in range(n_seeds):
        chk = check_paper_targets(simulate_cohort(93, seed).cohort)
        rows.append(chk["ok"])
        values.append(chk["measured"])
    ok = pd.DataFrame(rows)
    out = pd.DataFrame({"pass_rate": ok.mean(), "median": pd.DataFrame(values).median()})
    print(
        f"all targets met: {ok.all(axis=1).mean():.3f}; median number of missed targets: "
        f"{(~ok).sum(axis=1).median():.0f}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="write this seed's cohort (no search)")
    parser.add_argument("--max-seed", type=int, default=50_000)
    parser.add_argument("--rates", type=int, default=0, help="report per-target pass rates over N seeds")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    pd.set_option("display.max_rows", 100)
    if args.rates:
        print(pass_rates(args.rates).round(3).to_string())
        return
    if args.seed is None:
        start = time.perf_counter()
        seed, tried = find_seed(args.max_seed)
        print(f"seed {seed} meets every target ({tried} seeds tried, {time.perf_counter() - start:.1f} s)")
    else:
        seed = args.seed
    sim = simulate_cohort(93, seed)
    print(check_paper_targets(sim.cohort)[["paper", "low", "high", "measured", "ok"]].round(3).to_string())
    if not args.no_write:
        sim.cohort.to_frame().to_csv(OUT, index=False)
        print(f"wrote {OUT} (seed {seed}); set DEFAULT_COHORT_SEED = {seed} in bayesct/data/default.py")


if __name__ == "__main__":
    main()
