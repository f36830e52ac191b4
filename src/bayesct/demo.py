"""``bayesct demo`` / ``make demo``: the main job on the shipped default cohort.

default cohort -> classical tables -> joint fit (convergence gates) ->
posterior predictive checks -> risk grid -> ``report.html``. Every stage runs in
memory through the library (:mod:`bayesct`), on one fit; the files are written
at the end, all under one folder: ``default_cohort.csv``, ``classical/``,
``fit/``, ``check/``, ``risk/risk_grid.csv`` (with its heat map), ``report.html``
(:func:`bayesct.report.html.write_html_report`: one self-contained page of the fit,
its check and its grid) and ``report.md``.

Each stage announces itself with one line on stderr (``[3/7] ...``), whether or not
stderr is a terminal, and the last line says where the report is; the stages' results
go to stdout, under a ``== title`` header unless both streams are terminals (where the
progress line already heads them).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from bayesct.errors import ConvergenceWarning

#: The demo's stages, in order; each prints one progress line.
STAGES: tuple[str, ...] = (
    "Default cohort",
    "Classical tables (the paper's frequentist analysis)",
    "Bayesian joint model (nutpie)",
    "Posterior predictive checks",
    "Risk grid (Table 3 counterpart), age 60, male",
    "Writing the results",
    "Report",
)


def _both_terminals() -> bool:
    """Whether stdout and stderr reach the reader as one stream: both terminals, or the same file."""
    if sys.stdout.isatty() and sys.stderr.isatty():
        return True
    try:
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # streams without a descriptor (captured, in memory)
        return False
    return (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino)


def _say(line: str) -> None:
    """A progress line: on stderr always, on stdout too unless both are one stream."""
    print(line, file=sys.stderr, flush=True)
    if not _both_terminals():
        print(line, flush=True)


def _step(index: int, detail: str = "") -> float:
    title = STAGES[index] + (f" ({detail})" if detail else "")
    print(f"[{index + 1}/{len(STAGES)}] {title}", file=sys.stderr, flush=True)
    if not _both_terminals():
        print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(out: Path, *, seed: int = 0, replicates: int = 200, force: bool = False) -> int:
    """Run every stage on the default cohort, then write its files under ``out``; returns the exit code.

    ``out`` appears only once every file is written (:func:`bayesct.files.atomic_dir`); an
    existing ``out`` that is not empty is refused before anything runs, unless ``force``.
    """
    import bayesct as bc
    from bayesct.classical import write_tables
    from bayesct.files import atomic_dir, check_output_dir
    from bayesct.interrupts import raise_if_interrupted
    from bayesct.report.html import write_html_report
    from bayesct.report.markdown import write_report
    from bayesct.risk import RiskWarning

    check_output_dir(out, overwrite=force)
    start = _step(0)
    cohort = bc.load_default_cohort()
    print(cohort.summary())

    _step(1)
    tables = bc.classical_tables(cohort)
    print(f"  {len(tables)} tables")

    t = _step(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bc.JointModel("joint").fit(cohort, seed=seed, progress=sys.stderr.isatty())
    raise_if_interrupted()  # a sampler that caught the signal returns the draws it had: not a fit
    print(f"  {fit.diagnostics.message()}")
    if not fit.diagnostics.passed:
        print("WARNING: the fit missed a convergence gate; its numbers are not reliable.", file=sys.stderr)
    print(f"  ({time.perf_counter() - t:.1f} s)")

    _step(3, f"{replicates} replicates")
    ppc = bc.posterior_predictive_check(fit, replicates=replicates, seed=seed, workers=None)
    print(ppc.summary())
    for note in ppc.meta.get("notes", []):
        print(f"  note: {note}")

    _step(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RiskWarning)
        grid = bc.risk_grid(fit, days=[3.0, 8.0, 13.0, 18.0, 23.0], age=60.0, sex="male", seed=seed)
        one = bc.risk_query(fit, ct_score=14, day=8.0, age=60.0, sex="male", seed=seed).attrs
    print(
        f"  P(death | CT 14 on day 8, age 60, male) = {100 * one['median']:.1f}% "
        f"[{100 * one['lo']:.1f}%, {100 * one['hi']:.1f}%] ({100 * one['ci_prob']:g}% CrI; "
        f"mean {100 * one['mean']:.1f}%)"
    )
    for msg in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {msg}", file=sys.stderr)

    _step(5, str(out))
    with atomic_dir(out, overwrite=force) as work:
        bc.write_cohort(cohort, work / "default_cohort.csv")
        write_tables(tables, work / "classical")
        fit.save(work / "fit")
        ppc.write(work / "check")
        bc.write_risk_grid(grid, work / "risk" / "risk_grid.csv")
        _step(6, "report.html, report.md")
        patient = {"age": 60.0, "sex": "male"}
        write_html_report(
            fit, check=ppc, grid=grid, path=work / "report.html", grid_patient=patient, classical=tables
        )
        write_report(work, fit=fit)
    for name in ("default_cohort.csv", "classical", "fit", "check", "risk", "report.md"):
        print(f"  {out / name}")
    _say(f"Done in {time.perf_counter() - start:.0f} s. The report: {out / 'report.html'}")
    return 0
