"""The first fit of a never-seen cohort against a repeat fit of it: one compiled model per spec.

    python benchmarks/first_fit.py [--model joint] [--patients 93] [--seed 0] [--cold]

In one process: a fit of a warm-up cohort (which compiles the model if this machine has
never compiled it), the first fit of a never-seen cohort of another size, and a repeat
fit of that cohort; then, in a new process, the first fit of yet another cohort and its
repeat (the program loaded from the disk cache). ``--cold`` runs everything with an
empty PyTensor compile directory and numba cache, so the warm-up fit compiles. Every
fit must pass its gates. Rows are appended to ``benchmarks/results/first_fit.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

_CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
t_import = time.perf_counter()
from bayesct.data import simulate_cohort
from bayesct.modeling.fit import JointModel
spec, patients, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = JointModel(spec)
rows = []
for label, n, s in json.loads(sys.argv[4]):
    cohort = simulate_cohort(n, seed=s).cohort
    t0 = time.perf_counter()
    fit = model.fit(cohort, seed=seed)
    d = fit.diagnostics
    rows.append([label, n, time.perf_counter() - t0, d.passed, d.ess_bulk_min, d.rhat_max])
print(json.dumps(rows))
"""


def _run(args: argparse.Namespace, fits: list[tuple[str, int, int]], env: dict[str, str]) -> list[list]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, args.model, str(args.patients), str(args.seed), json.dumps(fits)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="joint")
    ap.add_argument("--patients", type=int, default=93)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cold", action="store_true", help="empty PyTensor and numba caches")
    ap.add_argument("--out", default="benchmarks/results/first_fit.md")
    args = ap.parse_args()
    env = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix="bayesct-first-fit-") if args.cold else None
    if tmp is not None:
        env |= {"PYTENSOR_FLAGS": f"base_compiledir={tmp}/pytensor", "NUMBA_CACHE_DIR": f"{tmp}/numba"}
    n, s = args.patients, 1000 + args.seed  # cohorts no other benchmark or test simulates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = _run(
            args,
            [("warm-up cohort", n + 7, s), ("first fit, new cohort", n, s + 1), ("repeat fit", n, s + 1)],
            env,
        )
        two = _run(
            args, [("new process, first fit, new cohort", n + 3, s + 2), ("repeat fit", n + 3, s + 2)], env
        )
    ratio_same = one[1][2] / one[2][2]
    ratio_new = two[0][2] / two[1][2]
    lines = [
        f"\n## {time.strftime('%Y-%m-%d')}: `python benchmarks/first_fit.py --model {args.model} --patients {n} "
        f"--seed {args.seed}{' --cold' if args.cold else ''}`\n",
        "| process | fit | patients | wall s | gates | min bulk ESS | R-hat max |",
        "|---|---|---|---|---|---|---|",
    ]
    for proc, rows in (("1", one), ("2", two)):
        for label, pts, wall, passed, ess, rhat in rows:
            lines.append(
                f"| {proc} | {label} | {pts} | {wall:.1f} | {'passed' if passed else 'MISSED'} | {ess:.0f} | {rhat:.3f} |"
            )
    lines.append(
        f"\nFirst fit of a never-seen cohort / repeat fit: **{ratio_same:.2f}** in a process that has the model, "
        f"**{ratio_new:.2f}** in a new process (program from the disk cache).\n"
    )
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    if not out.exists():
        out.write_text(
            "# First fit of a never-seen cohort against a repeat fit\n\n"
            "One compiled program per model (`bayesct.modeling.nutpie_cache`): a cohort the machine has\n"
            "never seen binds its data to the compiled model instead of compiling. 2-core machine.\n"
        )
    with out.open("a") as f:
        f.write(text)
    if not all(r[3] for r in one + two):
        sys.exit("a fit missed its gates")


if __name__ == "__main__":
    main()
