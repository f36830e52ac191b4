"""One row of the scale table: a simulated cohort fitted with a sampler's default settings.

    python benchmarks/scale.py --patients 10000 [--sampler nutpie|pymc|numpyro] [--cold] [--draws D]

The fit runs in a child process (simulated cohort, seed 5; ``joint`` spec, fit seed 1); the
row gives its wall time (compilation, sampling and diagnostics), the gates, the minimum bulk
ESS, ESS per second of wall time, the mean leapfrog steps per draw and the child's peak
resident memory. ``--cold`` gives the child an empty PyTensor compile directory and numba
cache (the first fit on a fresh machine); otherwise the machine's caches are used as they
are (run a fit of the spec once before to measure a warm cache). Rows are appended to
``benchmarks/results/scale.md`` with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from bayesct.data import simulate_cohort
from bayesct.modeling.fit import JointModel
n, sampler, draws = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cohort = simulate_cohort(n, seed=5).cohort
t1 = time.perf_counter()
fit = JointModel("joint").fit(cohort, sampler=sampler, seed=1, draws=int(draws) if draws != "-" else None)
wall = time.perf_counter() - t1
d = fit.diagnostics
stats = fit.tree["sample_stats"].to_dataset() if "sample_stats" in fit.tree.children else None
steps = float(stats["n_steps"].mean()) if stats is not None and "n_steps" in stats else float("nan")
print(json.dumps({"wall": wall, "passed": bool(d.passed), "ess": float(d.ess_bulk_min), "rhat": float(d.rhat_max),
                  "steps": steps, "scans": int(cohort.n_scans), "draws": int(fit.settings["draws"]),
                  "chains": int(fit.settings["chains"]), "tune": int(fit.settings["tune"]),
                  "failures": list(d.failures)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, required=True)
    ap.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--draws", default="-", help="draws per chain (default: the spec's)")
    ap.add_argument("--out", default="benchmarks/results/scale.md")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="bayesct-scale-")
        env |= {"PYTENSOR_FLAGS": f"base_compiledir={tmp}/pytensor", "NUMBA_CACHE_DIR": f"{tmp}/numba"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(args.patients), args.sampler, args.draws],
        env=env,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    command = f"python benchmarks/scale.py --patients {args.patients} --sampler {args.sampler}"
    command += (" --cold" if args.cold else "") + (f" --draws {args.draws}" if args.draws != "-" else "")
    row = (
        f"| {args.patients:,} | {r['scans']:,} | {args.sampler} | {'cold' if args.cold else 'warm'} "
        f"| {r['chains']} x ({r['tune']} + {r['draws']}) | {r['wall']:.1f} | {'passed' if r['passed'] else 'MISSED'} "
        f"| {r['ess']:.0f} | {r['ess'] / r['wall']:.1f} | {r['rhat']:.3f} | {r['steps']:.0f} | {peak_mb:,.0f} MB "
        f"| {time.strftime('%Y-%m-%d')} | `{command}` |"
    )
    print(row)
    print(f"(child process {total:.1f} s in all, imports included)")
    for failure in r["failures"]:
        print("  gate:", failure)
    out = Path(args.out)
    if not out.exists():
        out.write_text(
            "# Scale: wall, ESS and memory by cohort size and sampler\n\n"
            "Simulated cohorts (seed 5), the `joint` spec with its default settings, fit seed 1, on the\n"
            "project's 2-core machine. *wall*: compilation (cold: empty PyTensor and numba caches),\n"
            "sampling and the convergence diagnostics; *ESS/s*: minimum bulk ESS per second of wall;\n"
            "*steps*: mean leapfrog steps per draw; *peak memory*: the fitting process's maximum\n"
            "resident set. No accelerator was lent to the sessions that measured these rows, so\n"
            "there is no numpyro-on-GPU row (earlier GPU runs, with an earlier form of the model,\n"
            "are in `performance.md`).\n\n"
            "| patients | scans | sampler | compile cache | chains x (warm-up + draws) | wall s | gates "
            "| min bulk ESS | ESS/s | R-hat max | steps | peak memory | date | command |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    with out.open("a") as f:
        f.write(row + "\n")


if __name__ == "__main__":
    main()
