"""Fit benchmarks: the default fit, nutpie vs PyMC's sampler, and scaling with cohort size.

Each configuration runs in its own process (so its peak memory is its own) and
reports wall time (compilation included), sampling time, the minimum bulk and
tail ESS over the gated variables, and min bulk ESS per second of wall time.

    .venv/bin/python benchmarks/bench_fit.py default [SEED] [PAIRS] [TUNE]  # default cohort: nutpie vs pymc
    .venv/bin/python benchmarks/bench_fit.py seeds PATIENTS|default DATA_SEED FROM TO  # nutpie, seeds FROM..TO-1
    .venv/bin/python benchmarks/bench_fit.py scaling        # 93 and 1,000 simulated patients, defaults
    .venv/bin/python benchmarks/bench_fit.py scaling-large  # 10,000 patients, 4 x (300 + 2000) draws
    python benchmarks/bench_fit.py numpyro        # 93, 1,000 and 10,000 patients with --sampler numpyro
                                                  # (JAX + numpyro; meant for a GPU machine)

Results are printed as a markdown table and appended to benchmarks/results/fit.md.

``seeds`` fits one cohort (the default one, or PATIENTS simulated with DATA_SEED) with
nutpie's default settings at each seed, to see how often the gates pass.

``default`` fits the default cohort PAIRS times (3 unless given) with each sampler,
alternating which goes first, and reports the nutpie / pymc ratio of ESS per second of
each pair and their median: on a shared 2-core machine the speed of identical runs drifts
by up to 1.5x within minutes, so one pair alone can mislead either way. Each sampler
runs with the spec's settings for it (``bayesct fit`` and ``bayesct fit --sampler pymc``:
300 and 500 warm-up iterations for the ``joint`` spec) unless TUNE is given for both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "fit.md"


def one(config: dict) -> dict:
    """Run one fit in this process and return its measurements."""
    import resource
    import warnings

    from bayesct.data import load_default_cohort, simulate_cohort
    from bayesct.modeling.fit import JointModel

    warnings.simplefilter("ignore")
    if config["patients"] == "default":
        cohort = load_default_cohort()
    else:
        cohort = simulate_cohort(int(config["patients"]), seed=config.get("data_seed", 1)).cohort
    t0 = time.perf_counter()
    result = JointModel(config.get("model", "joint")).fit(
        cohort,
        sampler=config["sampler"],
        seed=config.get("seed", 0),
        draws=config.get("draws"),
        tune=config.get("tune"),
        chains=config.get("chains"),
    )
    wall = time.perf_counter() - t0
    d = result.diagnostics
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = {}
    if config["sampler"] == "numpyro":
        import jax

        dev = jax.devices()[0]
        stats = dev.memory_stats() or {}
        device = {
            "device": dev.device_kind,
            "device_peak_mb": round(stats.get("peak_bytes_in_use", 0) / 2**20),
        }
    return device | {
        "patients": cohort.n_patients,
        "scans": cohort.n_scans,
        "sampler": config["sampler"],
        "seed": config.get("seed", 0),
        "chains": d.chains,
        "tune": result.settings["tune"],
        "draws": d.draws,
        "wall_s": round(wall, 1),
        "sampling_s": round(d.wall_seconds, 1),
        "ess_bulk_min": round(d.ess_bulk_min),
        "ess_tail_min": round(d.ess_tail_min),
        "rhat_max": round(d.rhat_max, 3),
        "divergences": d.divergences,
        "passed": d.passed,
        "ess_per_s": round(d.ess_bulk_min / wall, 1),
        "peak_mb": round(peak_mb),
    }


def run(config: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(config)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {
            "config": config,
            "error": " | ".join(out.stderr.strip().splitlines()[-4:]) if out.stderr else "failed",
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    cols = [
        "patients",
        "scans",
        "sampler",
        "seed",
        "chains",
        "tune",
        "draws",
        "wall_s",
        "sampling_s",
        "ess_bulk_min",
        "ess_tail_min",
        "rhat_max",
        "divergences",
        "passed",
        "ess_per_s",
        "peak_mb",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, r.get("error", ""))) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(one(json.loads(sys.argv[2]))))
        return
    what = sys.argv[1] if len(sys.argv) > 1 else "default"
    args = sys.argv[2:]
    title = what
    tune = None
    if what == "default":
        seed = int(args[0]) if args else 0
        pairs = int(args[1]) if len(args) > 1 else 3
        tune = int(args[2]) if len(args) > 2 else None
        order = [("nutpie", "pymc") if i % 2 == 0 else ("pymc", "nutpie") for i in range(pairs)]
        configs = [
            {"patients": "default", "sampler": s, "seed": seed, "tune": tune} for pair in order for s in pair
        ]
        title += f", seed {seed}" + ("" if tune is None else f", {tune} warm-up iterations for every sampler")
    elif what == "seeds":
        if len(args) != 4:
            raise SystemExit("usage: bench_fit.py seeds PATIENTS|default DATA_SEED FROM TO")
        patients, data_seed, first, last = args[0], int(args[1]), int(args[2]), int(args[3])
        configs = [
            {"patients": patients, "data_seed": data_seed, "sampler": "nutpie", "seed": s}
            for s in range(first, last)
        ]
        cohort = (
            "the default cohort" if patients == "default" else f"{patients} patients (data seed {data_seed})"
        )
        title += f", {cohort}, seeds {first}-{last - 1}"
    elif what == "scaling":
        configs = [{"patients": n, "sampler": "nutpie"} for n in (93, 1000)]
    elif what == "scaling-large":
        # 10,000 patients: default warm-up (300) and chains, 2000 draws as the README advises
        # for cohorts in the thousands.
        configs = [{"patients": 10000, "sampler": "nutpie", "draws": 2000}]
    elif what == "numpyro":
        configs = [{"patients": n, "sampler": "numpyro"} for n in ("default", 1000, 10000)]
    else:
        raise SystemExit(
            f"unknown benchmark {what!r}: use 'default', 'seeds', 'scaling', 'scaling-large' or 'numpyro'"
        )
    rows = []
    for c in configs:
        rows.append(run(c))
        print(json.dumps(rows[-1]), flush=True)
    text = f"\n### {title} ({time.strftime('%Y-%m-%d %H:%M')})\n\n{table(rows)}\n"
    if what == "default" and all("ess_per_s" in r for r in rows):
        ratios = []
        for a, b in zip(rows[::2], rows[1::2], strict=True):
            nut, pym = (a, b) if a["sampler"] == "nutpie" else (b, a)
            ratios.append(nut["ess_per_s"] / pym["ess_per_s"])
        text += (
            "\nnutpie / pymc ESS per second (wall, compilation included), per pair: "
            + ", ".join(f"{r:.1f}x" for r in ratios)
            + f"; median {statistics.median(ratios):.1f}x\n"
        )
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
