"""The ``bayesct`` command: one command, subcommands.

Every user error (bad data, bad spec, bad option) ends as one line
``error: <what, where>`` on stderr and exit code 2 — never a traceback. A fit
that misses a convergence gate says so loudly on stderr; its exit code stays 0
unless ``--strict`` is given (then 3).

A command that writes a folder (``fit``, ``check``, ``classical``, ``demo``) writes it
under a hidden name beside ``--out`` and renames it into place when complete
(:func:`bayesct.files.atomic_dir`); an ``--out`` that exists and is not empty is refused
(exit code 2) unless ``--force``, which replaces it once the new one is complete. SIGINT
(Ctrl-C) or SIGTERM stops any command with ``interrupted`` on stderr and exit code 130,
leaving nothing at ``--out`` (:mod:`bayesct.interrupts`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NoReturn

from bayesct.constants import GENERATORS

EXIT_USAGE = 2
EXIT_NOT_CONVERGED = 3
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors: same shape as ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_nonneg_int = _int_at_least(0, "non-negative")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _engine_args(p: argparse.ArgumentParser, *, in_process: str) -> None:
    """``--scheduler`` and ``--workers``: where a command's refits run (``bayesct.engine``)."""
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the refits on a running dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: a local cluster, one worker per core)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help=f"local worker processes for the refits (default one per core; 1: {in_process})",
    )


def _factors(text: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        out = ()
    if not out or not all(f > 0 for f in out):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive factors like 0.5,2, got {text!r}"
        )
    return out


def _days(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated days like 3,8,13, got {text!r}") from None


def _loud(message: str) -> None:
    bar = "!" * 78
    print(f"{bar}\nWARNING: {message}\n{bar}", file=sys.stderr)


# -- subcommands ---------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from bayesct.data import load_default_cohort, simulate_cohort, write_cohort
    from bayesct.data.simulate import blank_outcomes

    if args.patients is None:
        if args.generator != "joint" or args.zone_columns:
            print(
                "error: --generator and --zone-columns need --patients (a simulated cohort)", file=sys.stderr
            )
            return 2
        cohort = load_default_cohort()
        what = "the default cohort (93 patients, calibrated to the paper's published summaries)"
    else:
        cohort = simulate_cohort(
            args.patients, seed=args.seed, generator=args.generator, zone_columns=args.zone_columns
        ).cohort
        what = (
            f"a simulated cohort of {args.patients} patients ({args.generator} generator, seed {args.seed})"
        )
    if args.unknown_outcome:
        if args.unknown_outcome > cohort.n_patients:
            print(
                f"error: --unknown-outcome {args.unknown_outcome} is more than the cohort's "
                f"{cohort.n_patients} patients",
                file=sys.stderr,
            )
            return 2
        cohort = blank_outcomes(cohort, args.unknown_outcome, seed=args.seed)
    path = write_cohort(cohort, args.out)
    unknown = f", {cohort.n_outcome_unknown} of unknown outcome (blank died)" if args.unknown_outcome else ""
    print(
        f"Wrote {what} to {path}: {cohort.n_visits} visits, {cohort.n_scans} CT scans, "
        f"{cohort.n_deaths} deaths{unknown}."
    )
    return 0


def _read(data: str | argparse.Namespace, patients: str | None = None, *, notes: bool = True):
    """Read a cohort; given the parsed arguments of :func:`data_args`, with their column mapping
    and lab declarations (``--lab`` over the ``--columns`` file's ``[labs]``, name by name).

    Its notes go to stderr, once, unless ``notes`` is False (a caller that prints them itself).
    """
    from bayesct.data import read_cohort
    from bayesct.data.columns import load_column_map, merge_column_maps, parse_column_map
    from bayesct.data.labs import LabSpec, load_lab_declarations, merge_labs, parse_labs

    columns: dict[str, str] = {}
    labs: dict[str, LabSpec] = {}
    if isinstance(data, argparse.Namespace):
        args = data
        path, patients = str(args.data), args.patients
        file = getattr(args, "columns", None)
        labs = merge_labs(
            load_lab_declarations(file) if file else None, parse_labs(getattr(args, "lab", None) or [])
        )
        from_file = load_column_map(file, labs=labs) if file else None
        columns = merge_column_maps(from_file, parse_column_map(getattr(args, "map", None) or [], labs=labs))
    else:
        path = data
    cohort = read_cohort(path, patients, columns=columns, labs=labs)
    if notes:
        for note in cohort.notes:
            print(f"note: {note}", file=sys.stderr)
    return cohort


def cmd_inspect(args: argparse.Namespace) -> int:
    cohort = _read(args, notes=False)  # the summary lists them
    print(cohort.summary())
    return 0


#: ``bayesct validate`` options of the simulation-based calibration (none of them with DATA).
_SBC_OPTIONS = ("replicates", "out", "model", "generator", "draws", "tune", "chains", "seed", "scheduler")


def cmd_validate(args: argparse.Namespace) -> int:
    """``bayesct validate DATA``: the data check (as ``inspect``); without DATA: the calibration."""
    if args.data is not None:
        given = [f"--{k}" for k in _SBC_OPTIONS if getattr(args, k) is not None]
        if given:
            print(
                f"error: {', '.join(given)} belong to the calibration run, which takes no DATA "
                "(to check a data file: bayesct inspect DATA)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        return cmd_inspect(args)
    if args.out is None or args.map or args.columns or args.lab:
        print(
            "error: give a data file to check (bayesct inspect DATA), or --out DIR (and --replicates N) "
            "for the simulation-based calibration",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from bayesct.validation import run_validation, summary_lines

    try:
        patients = 40 if args.patients is None else _positive_int(args.patients)
    except argparse.ArgumentTypeError as err:
        print(f"error: --patients: {err}", file=sys.stderr)
        return EXIT_USAGE
    summary = run_validation(
        replicates=args.replicates or 20,
        patients=patients,
        model=args.model or "joint",
        generator=args.generator,
        seed=args.seed or 0,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        out_dir=args.out,
        scheduler=args.scheduler,
        progress=True,
    )
    for line in summary_lines(summary):
        print(line)
    print(
        f"Written to {args.out}/: validation.json, replicates/, {', '.join(summary['figures']) or 'no figures'}"
    )
    return 0


def cmd_classical(args: argparse.Namespace) -> int:
    from bayesct.classical import run_all, write_tables
    from bayesct.files import atomic_dir, check_output_dir, shown

    check_output_dir(args.out, overwrite=args.force)
    cohort = _read(args)
    tables = run_all(cohort)
    with atomic_dir(args.out, overwrite=args.force) as tmp:
        paths = [shown(p) for p in write_tables(tables, tmp)]
    print(f"Classical tables of {cohort.source} ({cohort.n_patients} patients, {cohort.n_scans} scans):")
    for p in paths:
        print(f"  {p}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from bayesct.errors import ConvergenceWarning
    from bayesct.files import check_output_dir
    from bayesct.interrupts import raise_if_interrupted
    from bayesct.modeling.fit import JointModel, notify_stderr
    from bayesct.report.format import mortality_association_lines, odds_ratio_lines

    check_output_dir(args.out, overwrite=args.force)  # before the fit, so that a refusal costs nothing
    cohort = _read(args)
    model = JointModel(args.model)
    settings = model.sampler_settings(
        draws=args.draws, tune=args.tune, chains=args.chains, sampler=args.sampler
    )
    print(
        f"Fitting model '{model.spec.name}' to {cohort.n_patients} patients ({cohort.n_scans} scans, "
        f"markers: {', '.join(m for m in cohort.markers if model.spec.markers is None or m in model.spec.markers)}) "
        f"with {args.sampler}: {settings['chains']} chains x {settings['draws']} draws "
        f"(+{settings['tune']} tuning), seed {args.seed}.",
        file=sys.stderr,
    )
    # Progress unless --no-progress: nutpie's bar on a terminal, else a line every few seconds.
    progress: bool | Literal["lines"] = (
        False if args.progress is False else (True if sys.stderr.isatty() else "lines")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported below, louder
        result = model.fit(
            cohort,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            sampler=args.sampler,
            seed=args.seed,
            progress=progress,
            notify=notify_stderr,
            extend=args.extend,
        )
    # A sampler that caught the signal returns the draws it had (nutpie does): not a fit.
    raise_if_interrupted()
    diag = result.diagnostics
    if diag.passed:
        print(diag.message())
    else:
        _loud(diag.message() + "\nThe posterior below is NOT reliable until these gates pass.")
    print(
        result.summary(_headline_vars(result) + _gate_vars(result))
        .pipe(_shown_rows, result)
        .pipe(_format_summary)
    )
    for line in odds_ratio_lines(result.odds_ratios()):
        print(line)
    for line in mortality_association_lines(result.posterior)[1:]:  # its first line is in the table above
        print(line)
    if result.spec.family == "joint" and result.spec.mortality:
        from bayesct.checks.sensitivity import mortality_prior_sensitivity, sensitivity_lines

        for line in sensitivity_lines(mortality_prior_sensitivity(result, seed=args.seed)):
            print(line)
    if args.loglik_draws and result.spec.family == "joint" and not result.spec.by_group:
        from bayesct.checks.calibration import patient_log_likelihood

        total = result.diagnostics.chains * result.diagnostics.draws
        notify_stderr(
            f"computing each patient's log-likelihood, their effects integrated out, on "
            f"{min(total, args.loglik_draws)} of {total} draws (for az.loo)…"
        )
        group = patient_log_likelihood(result, max_draws=args.loglik_draws, seed=args.seed)
        raise_if_interrupted()
        if group is not None:
            result.add_group("log_likelihood", group)
    out = result.save(args.out, overwrite=args.force)  # last: an interrupted run leaves nothing
    print(
        f"Fit written to {out}/ (posterior.nc, spec.toml, data.csv, "
        f"{'labs.json, ' if cohort.declared_labs else ''}fingerprint.json, diagnostics.json, complete.json)"
    )
    if args.strict and not diag.passed:
        return EXIT_NOT_CONVERGED
    return 0


def _headline_vars(result) -> list[str]:
    from bayesct.modeling.diagnostics import HEADLINE_PARAMETERS

    return [v for v in HEADLINE_PARAMETERS if v in result.posterior]


def _gate_vars(result) -> list[str]:
    """The variables a failed gate names (``Diagnostics.worst``) that the headline table lacks."""
    if result.diagnostics.passed:
        return []
    heads = set(_headline_vars(result))
    out: list[str] = []
    for label in result.diagnostics.worst.values():
        name = str(label).split("[")[0].split(",")[0].split(" ")[0]
        if name and name in result.posterior and name not in heads and name not in out:
            out.append(name)
    return out


def _shown_rows(df, result):
    """The headline rows, and of a variable a failed gate named only the scalar it names."""
    extra = set(_gate_vars(result))
    if not extra:
        return df
    named = {str(v).split(" (stored as ")[0] for v in result.diagnostics.worst.values()}
    base = df["parameter"].str.split("[").str[0]
    keep = ~base.isin(extra) | df["parameter"].isin(named)
    return df[keep.to_numpy()]


def _format_summary(df) -> str:
    from bayesct.report.format import fmt_estimate

    lines = ["parameter                              median [95% CrI]            ESS bulk  R-hat"]
    for row in df.itertuples():
        est = fmt_estimate(row.median, row.lo, row.hi, decimals=3)
        lines.append(f"{row.parameter:<38} {est:<28} {row.ess_bulk:8.0f}  {row.r_hat:5.3f}")
    return "\n".join(lines)


def cmd_priors(args: argparse.Namespace) -> int:
    from bayesct.modeling.spec import load_spec

    spec = load_spec(args.model)
    print(f"{spec.name}: {spec.description}")
    print(spec.describe_priors())
    return 0


def cmd_prior_check(args: argparse.Namespace) -> int:
    from bayesct.modeling.prior_check import prior_predictive_check

    cohort = _read(args)
    table = prior_predictive_check(cohort, args.model, draws=args.draws, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table.to_string(index=False))
    print(f"Prior predictive summary written to {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``bayesct check``: the posterior predictive checks of one fit, written to ``--out``.

    Prints a short summary (the levels, every ppp with its Monte Carlo error, the statistics
    outside their interval, the findings) and the output paths; a fit that failed its
    convergence gates gets a loud WARNING on stderr and ``"converged": false`` in ``ppc.json``.
    """
    from bayesct.checks.ppc import PPCError, posterior_predictive_check
    from bayesct.files import atomic_dir, check_output_dir, shown
    from bayesct.modeling.fit import FitResult

    check_output_dir(args.out, overwrite=args.force)
    fit_dir = Path(args.fit_dir)
    if not fit_dir.is_dir():
        raise PPCError(f"fit folder {fit_dir} does not exist")
    fit = FitResult.load(fit_dir)
    others: dict[str, FitResult] = {}
    for other_dir in args.compare or []:
        other = FitResult.load(other_dir)
        name = other.spec.name
        while name in others or name == fit.spec.name:
            name = f"{name}_{Path(other_dir).name}"
        others[name] = other
    if not fit.passed:
        print(
            f"WARNING: the fit in {fit_dir} FAILED its convergence gates; posterior predictive checks of "
            f"an unconverged fit are not trustworthy.\n{fit.diagnostics.message()}",
            file=sys.stderr,
        )
    for name, other in others.items():
        if not other.passed:
            print(f"WARNING: comparison fit '{name}' FAILED its convergence gates.", file=sys.stderr)
    result = posterior_predictive_check(
        fit,
        replicates=args.replicates,
        level=args.level,
        outcome_level=args.outcome_level,
        seed=args.seed,
        mixed_replicates=args.mixed_replicates,
        compare=others or None,
        workers=args.workers,
    )
    with atomic_dir(args.out, overwrite=args.force) as tmp:
        paths = [shown(p) for p in result.write(tmp)]
    print(result.summary())
    for note in result.meta.get("notes", []):
        print(f"  note: {note}")
    print("Written:")
    for p in paths:
        print(f"  {p}")
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """``bayesct sensitivity``: how far the mortality answers move with the priors.

    The power-scaling table (joint models, no refit), then the model refitted with its
    mortality priors' SDs multiplied by each of ``--factors``, on the dask engine; the
    refits' table is written to ``--out`` (CSV) when given.
    """
    from bayesct.checks.ppc import PPCError
    from bayesct.checks.sensitivity import (
        mortality_prior_sensitivity,
        prior_refit_lines,
        prior_refits,
        sensitivity_lines,
    )
    from bayesct.modeling.fit import FitResult, notify_stderr

    fit_dir = Path(args.fit_dir)
    if not fit_dir.is_dir():
        raise PPCError(f"fit folder {fit_dir} does not exist")
    fit = FitResult.load(fit_dir)
    if not fit.passed:
        _loud(f"the fit in {fit_dir} FAILED its convergence gates: its sensitivities are not reliable.")
    if fit.spec.family == "joint" and fit.spec.mortality:
        for line in sensitivity_lines(mortality_prior_sensitivity(fit, seed=args.seed)):
            print(line)
    notify_stderr(
        f"refitting {fit.spec.name} with its mortality priors' SDs x {', '.join(f'{f:g}' for f in args.factors)}…"
    )
    table = prior_refits(
        fit,
        factors=args.factors,
        seed=args.seed,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=notify_stderr,
    )
    for line in prior_refit_lines(table):
        print(line)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, out)  # whole or not at all
        print(f"Refits written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``bayesct compare``: patient-level LOO of the trajectory models on the data they share, with
    an exact refit for each patient whose Pareto k exceeds 0.7 (unless ``--no-refit``), and the
    leave-patient-out death predictions of every model with a mortality part (``scan_logistic``
    included)."""
    from bayesct.checks.calibration import (
        LOO_METHODS,
        CheckError,
        compare_death_predictions,
        compare_models,
    )
    from bayesct.modeling.fit import FitResult

    fits = {}
    for d in args.fit_dirs:
        name = Path(d).name or str(d)
        if name in fits:
            name = str(d)
        fits[name] = FitResult.load(d)
    for name, f in fits.items():
        if not f.passed:
            _loud(f"fit '{name}' missed a convergence gate: its numbers below are NOT reliable")
    parts = tuple(p.strip() for p in args.parts.split(",")) if args.parts else None
    trajectory = {n: f for n, f in fits.items() if f.spec.family == "joint"}
    table = None
    if len(trajectory) >= 2:
        table = compare_models(
            trajectory,
            parts=parts,
            max_draws=args.max_draws,
            seed=args.seed,
            refit=not args.no_refit,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
            scheduler=args.scheduler,
            workers=args.workers,
        )
        print(
            f"Patient-level LOO on {table['data'].iloc[0]}, each patient's likelihood with "
            f"{table.attrs['conditioning']}:"
        )
        print("model                 elpd [SE]            difference [SE]     Pareto k > 0.7  method")
        for r in table.itertuples():
            refitted = f" (refitted: {r.refitted!s})" if r.refitted else ""
            print(
                f"{r.model:<20}  {r.elpd:9.1f} [{r.se:5.1f}]   {r.elpd_diff:8.1f} [{r.dse:4.1f}]     "
                f"{r.n_bad_k} of {len(fits[str(r.model)].design.patient_ids)}"
                f"          {r.method}{refitted}"
            )
            if not r.refits_passed:
                _loud(
                    f"a refit of '{r.model}' missed a convergence gate: its exact LOO terms are NOT reliable"
                )
        for method in dict.fromkeys(table["method"]):
            print(f"  {method}: {LOO_METHODS[method]}")
    deaths = None
    try:
        deaths = compare_death_predictions(fits, max_draws=args.max_draws, seed=args.seed)
    except CheckError as err:
        if table is None:
            raise CheckError(
                "nothing to compare: a LOO comparison needs two trajectory models (joint, ct_only, "
                f"descriptive) and a death-prediction comparison two models with a mortality part ({err})"
            ) from None
    if deaths is not None:
        print("Leave-patient-out death predictions (the patient's outcome left out of each):")
        print(
            "model                 Brier [SE]      difference [SE]   log score   AUC     "
            "expected / observed deaths   slope"
        )
        for r in deaths.itertuples():
            print(
                f"{r.model:<20}  {r.brier:.3f} [{r.brier_se:.3f}]   {r.brier_diff:6.3f} [{r.brier_diff_se:.3f}]"
                f"    {r.log_score:8.3f}   {r.auc:.3f}   "
                f"{r.expected_deaths:7.1f} / {r.observed_deaths:<18d} {r.calibration_slope:5.2f}"
            )
        for fam, what in dict.fromkeys(zip(deaths["family"], deaths["predicts"], strict=True)):
            print(f"  {fam}: {what}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if table is not None:
            table.to_csv(out, index=False)
            print(f"Comparison written to {out}")
        if deaths is not None:
            dpath = out.with_name(out.stem + "_deaths" + out.suffix)
            deaths.to_csv(dpath, index=False)
            print(f"Death predictions written to {dpath}")
    return 0


def cmd_risk(args: argparse.Namespace) -> int:
    """``bayesct risk``: one query, or the Table 3 grid with ``--grid``.

    A query prints one line (or, with ``--json``, one JSON object with ``p_death`` {median, lo,
    hi, mean}, ``ci_prob``, ``model``, ``converged``, ``method``, ``inputs``, ``notes``,
    ``extrapolation``). ``--grid`` computes the grid (by period unless ``--days`` are given) and
    writes ``--out`` (CSV) with a heat map PNG beside it, or prints the CSV. A fit that missed its
    convergence gates prints a WARNING line to stderr, and each distinct
    :class:`~bayesct.risk.RiskWarning` (poor importance sampling, a query that extrapolates beyond
    the fitted cohort) a ``warning: ...`` line. ``args.fit_dir`` may also be a loaded
    :class:`~bayesct.modeling.fit.FitResult`.
    """
    from bayesct.modeling.fit import FitResult
    from bayesct.risk import RiskWarning

    fit = args.fit_dir if isinstance(args.fit_dir, FitResult) else FitResult.load(args.fit_dir)
    if not fit.passed:
        print(
            f"WARNING: the fit in {args.fit_dir} did NOT pass its convergence gates; "
            "treat these risks with caution (see its diagnostics).",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RiskWarning)
        if args.grid:
            _risk_grid(args, fit)
        else:
            _risk_query(args, fit)
    for msg in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {msg}", file=sys.stderr)
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _describe_inputs(inputs: dict) -> str:
    parts = []
    if inputs.get("history"):
        parts.append(
            f"history {inputs['history']}: {inputs['n_scans']} CT scan(s), "
            f"{inputs['n_lab_values']} lab value(s)"
        )
    if inputs.get("ct_score") is not None:
        parts.append(f"CT {inputs['ct_score']} on day {inputs['day']:g}")
    if inputs.get("age") is not None:
        parts.append(f"age {inputs['age']:g}")
    if inputs.get("sex") is not None:
        parts.append(str(inputs["sex"]))
    return ", ".join(parts)


def _risk_query(args: argparse.Namespace, fit) -> None:
    import math

    from bayesct.files import dumps_json
    from bayesct.risk import risk_query

    ds = risk_query(
        fit,
        ct_score=args.ct_score,
        day=args.day,
        history=args.history,
        age=args.age,
        sex=args.sex,
        max_draws=args.draws,
        seed=args.seed,
    )
    a = ds.attrs
    if args.json:
        obj = {
            "p_death": {"median": a["median"], "lo": a["lo"], "hi": a["hi"], "mean": a["mean"]},
            "ci_prob": a["ci_prob"],
            "model": a["model"],
            "converged": a["converged"],
            "method": a["method"],
            "inputs": a["inputs"],
            "notes": a["notes"],
            "extrapolation": a["extrapolation"],
        }
        if math.isfinite(a["ess_min"]):
            obj["ess_min"] = a["ess_min"]
        print(dumps_json(obj, indent=None))
    else:
        ci = f"{100 * a['ci_prob']:g}% CrI"
        print(
            f"P(death) = {_pct(a['median'])} [{_pct(a['lo'])}, {_pct(a['hi'])}] "
            f"({ci}; mean {_pct(a['mean'])}; model {a['model']}; {_describe_inputs(a['inputs'])})"
        )
        for note in a["notes"]:
            print(f"note: {note}", file=sys.stderr)


def _risk_grid(args: argparse.Namespace, fit) -> None:
    from bayesct.files import dumps_json
    from bayesct.risk import risk_grid, write_risk_grid

    grid = risk_grid(
        fit,
        days=args.days,
        periods=args.days is None,
        age=args.age,
        sex=args.sex,
        max_draws=args.draws,
        seed=args.seed,
    )
    meta = {
        "model": grid.attrs["model"],
        "converged": grid.attrs["converged"],
        "ci_prob": grid.attrs["ci_prob"],
        "extrapolation": grid.attrs["extrapolation"],
    }
    if args.out:
        path, png = write_risk_grid(grid, args.out)
        if args.json:
            print(dumps_json({"csv": str(path), "png": str(png)} | meta, indent=None))
        else:
            print(f"wrote {path} ({len(grid)} rows) and {png}")
    elif args.json:
        print(dumps_json(meta | {"grid": grid.to_dict(orient="records")}, indent=None))
    else:
        sys.stdout.write(grid.to_csv(index=False, float_format="%.6g"))


def cmd_report(args: argparse.Namespace) -> int:
    from bayesct.report.html import write_html_report

    patient = {"age": args.age, "sex": args.sex} if args.age is not None or args.sex is not None else None
    out = write_html_report(
        args.fit_dir, check=args.check, grid=args.grid, grid_patient=patient, path=args.out
    )
    print(f"Report written to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bayesct.demo import run_demo

    return run_demo(Path(args.out), seed=args.seed, replicates=args.replicates, force=args.force)


# -- parser ----------------------------------------------------------------------------------------
def _force_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing, non-empty --out (only once the new one is complete)",
    )


def build_parser() -> argparse.ArgumentParser:
    from bayesct import __version__

    parser = _Parser(
        prog="bayesct",
        description=(
            "Bayesian joint modelling of serial CT scores and labs with a mortality submodel. "
            "Data files: CSV, Parquet or Excel, one row per patient-visit (see README)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"bayesct {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", help="visits table (CSV, Parquet or Excel)")
        p.add_argument("--patients", metavar="FILE", help="optional patient table joined on patient_id")
        p.add_argument(
            "--map",
            action="append",
            metavar="NAME=HEADER,...",
            help='bayesct column names for the files\' headers, e.g. day=days_since_onset,ct_score="CT score" '
            "(both tables; repeatable; overrides --columns)",
        )
        p.add_argument(
            "--columns",
            metavar="FILE.toml",
            help="a TOML file whose [columns] table maps bayesct column names to the files' headers "
            'and whose [labs] table declares labs (crp = "log")',
        )
        p.add_argument(
            "--lab",
            action="append",
            metavar="NAME:TRANSFORM[:DIRECTION]",
            help="a lab beyond the built-in seven, modelled like them: TRANSFORM log (positive "
            "values) or pct (percentages), DIRECTION up or down with severity, e.g. crp:log, "
            "spo2:pct:down (repeatable; overrides the --columns file's [labs])",
        )

    p = sub.add_parser(
        "simulate",
        help="write the default cohort or a simulated one",
        description="Write the shipped default cohort (no --patients) or simulate a cohort: "
        "from the generative joint model (--generator joint), or from generators bayesct does not "
        "fit: 'zones' (the CT score as six ordinal lung zones) and 'skewed' (zones, a skewed "
        "patient effect, ESR apart from the shared severity).",
    )
    p.add_argument("--patients", type=_positive_int, help="number of patients (omit: the default cohort)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--generator", choices=GENERATORS, default="joint", help="generative model (default joint)"
    )
    p.add_argument(
        "--zone-columns", action="store_true", help="zone generators: also write the six zone scores"
    )
    p.add_argument(
        "--unknown-outcome",
        type=_nonneg_int,
        default=0,
        metavar="K",
        help="blank the outcome (died) of K patients chosen with --seed, as for patients still in "
        "hospital (default 0)",
    )
    p.add_argument("--out", required=True, help="output file (.csv, .parquet or .xlsx)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "inspect",
        help="check a data file and describe the cohort",
        description="Check a data file against the column contract and summarise it.",
    )
    data_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "validate",
        help="simulation-based calibration of a model; with DATA: check a data file (as inspect)",
        description="Without DATA: simulation-based calibration of a model. Each replicate draws "
        "the parameters from the model's prior (or, with --generator, takes that generator's known "
        "truth), simulates a cohort of --patients from them, fits it, and records the rank of the "
        "truth among the posterior draws and whether the 50%% and 90%% intervals cover it; the fits "
        "run on dask.distributed (a local cluster, one worker per core, or --scheduler). Writes "
        "validation.json, replicates/ and rank figures to --out; a rerun into the same --out fits "
        "only the replicates missing. With DATA: 'bayesct validate DATA [--patients FILE]' is "
        "'bayesct inspect DATA': check the data file and describe the cohort.",
    )
    p.add_argument("data", nargs="?", default=None, help="visits table to check (as bayesct inspect)")
    p.add_argument(
        "--patients",
        metavar="P|FILE",
        help="calibration: patients per replicate (default 40); with DATA: the patient table",
    )
    p.add_argument("--map", action="append", metavar="NAME=HEADER,...", help="with DATA: as inspect")
    p.add_argument("--columns", metavar="FILE.toml", help="with DATA: as inspect")
    p.add_argument(
        "--lab", action="append", metavar="NAME:TRANSFORM[:DIRECTION]", help="with DATA: as inspect"
    )
    p.add_argument("--replicates", type=_positive_int, help="replicated cohorts (default 20)")
    p.add_argument("--model", help="spec name or .toml path (default joint)")
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        help="coverage against this generator's known truth instead of prior draws",
    )
    p.add_argument("--draws", type=_positive_int, help="draws per chain (default: the spec's)")
    p.add_argument("--tune", type=_positive_int, help="tuning steps per chain (default: the spec's)")
    p.add_argument("--chains", type=_positive_int, help="chains (default: the spec's)")
    p.add_argument("--seed", type=_nonneg_int, help="random seed (default 0)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster)",
    )
    p.add_argument("--out", help="output folder (a rerun into it resumes)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "classical",
        help="the paper's frequentist tables",
        description="Compute the paper's frequentist tables (Tables 1-4, Supp. S3-S4).",
    )
    data_args(p)
    p.add_argument("--out", required=True, help="output folder")
    _force_arg(p)
    p.set_defaults(func=cmd_classical)

    p = sub.add_parser(
        "fit",
        help="fit a model and write the posterior",
        description="Fit a bayesct model; writes posterior.nc, spec.toml, data.csv, "
        "fingerprint.json and diagnostics.json to --out.",
    )
    data_args(p)
    p.add_argument("--out", required=True, help="output folder for the fit")
    p.add_argument(
        "--model",
        default="joint",
        help="spec name (joint, joint_normal, joint_zones, ct_only, descriptive, scan_logistic) or a .toml path (default joint)",
    )
    p.add_argument(
        "--draws",
        type=_positive_int,
        help="draws per chain (default: the spec's, and a fit that misses the ESS gates narrowly "
        "runs once more with enough draws, at most 4 x the spec's)",
    )
    p.add_argument("--tune", type=_positive_int, help="tuning steps per chain (default: the spec's)")
    p.add_argument("--chains", type=_positive_int, help="chains (default: the spec's)")
    p.add_argument(
        "--extend",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run once more with more draws when the spec's draws miss a gate narrowly (default on)",
    )
    p.add_argument(
        "--sampler",
        choices=["nutpie", "pymc", "numpyro"],
        default="nutpie",
        help="NUTS implementation (default nutpie)",
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--strict", action="store_true", help="exit with code 3 when a convergence gate fails")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show sampling progress: nutpie's bar on a terminal, else a line every few seconds "
        "(default: on; --no-progress: off)",
    )
    p.add_argument(
        "--loglik-draws",
        type=_nonneg_int,
        default=1000,
        help="posterior draws of the saved per-patient log-likelihood (the log_likelihood group, "
        "for az.loo; each chain thinned by one stride to at most this many; 0: none; default 1000)",
    )
    _force_arg(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "priors", help="print a model's priors", description="Print the priors declared in a model spec."
    )
    p.add_argument("--model", default="joint", help="spec name or .toml path (default joint)")
    p.set_defaults(func=cmd_priors)

    p = sub.add_parser(
        "prior-check",
        help="prior predictive check on a data set's design",
        description="Draw from the prior predictive on the data's design and compare the "
        "replicated markers' range with the observed.",
    )
    data_args(p)
    p.add_argument("--model", default="joint", help="spec name or .toml path (default joint)")
    p.add_argument("--draws", type=_positive_int, default=200, help="prior draws (default 200)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=cmd_prior_check)

    p = sub.add_parser(
        "check",
        help="posterior predictive checks replicating the paper's tests",
        description="Replicate cohorts from a fit and rerun the paper's frequentist "
        "comparisons on each; writes ppc.json, ppc.csv and figures. Each posterior predictive "
        "p-value comes with its Monte Carlo error; a statistic is flagged outside its interval "
        "only when that is clear of the Monte Carlo error.",
    )
    p.add_argument("fit_dir", help="fit folder written by 'bayesct fit'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--replicates", type=_positive_int, default=200, help="replicated cohorts (default 200)")
    p.add_argument(
        "--level",
        choices=["patients", "new"],
        default="patients",
        help="level of the statistics that do not involve the outcome (Kendall tau): the same "
        "patients (their posterior effects) or new patients (default patients)",
    )
    p.add_argument(
        "--outcome-level",
        choices=["patients", "new"],
        default="new",
        help="level of the outcome contrasts (Mann-Whitney, logistic, mixed model, deaths): new "
        "patients with replicated deaths (default), or the same patients, whose effects were "
        "fitted given the observed deaths",
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--mixed-replicates",
        type=_nonneg_int,
        default=100,
        help="replicates on which the (slow) mixed models are refitted (default 100)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="processes for the mixed models (default one per core; 1: in this process)",
    )
    p.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="FITDIR",
        help="other fit folders of the same data for a PSIS-LOO comparison",
    )
    _force_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "sensitivity",
        help="how far the mortality answers move with the priors (power-scaling and refits)",
        description="The mortality part's power-scaling prior sensitivity, then the model refitted "
        "with its mortality priors' SDs multiplied by each factor (on dask.distributed): each "
        "coefficient's and each risk cell's median [95% CrI] under every prior setting.",
    )
    p.add_argument("fit_dir", help="fit folder written by 'bayesct fit'")
    p.add_argument(
        "--factors",
        type=_factors,
        default=(0.5, 2.0),
        help="comma-separated factors on the mortality priors' SDs (default 0.5,2)",
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed of the risk draws (default 0)")
    _engine_args(p, in_process="in this process")
    p.add_argument("--out", default=None, help="CSV file for the refits' table")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser(
        "compare",
        help="compare fitted models of the same data by patient-level LOO and death predictions",
        description="Compare model variants fitted to the same data on the data they all model "
        "(e.g. joint vs ct_only on CT + death), by patient-level PSIS-LOO with each patient's "
        "random effects integrated out (an exact refit without each patient of Pareto k > 0.7), "
        "and every model with a mortality part (scan_logistic included) by its leave-patient-out "
        "death predictions: Brier score, log score, AUC, calibration.",
    )
    p.add_argument("fit_dirs", nargs="+", metavar="FITDIR", help="fit folders written by 'bayesct fit'")
    p.add_argument("--parts", default=None, help="data to compare on, e.g. ct,death (default: all shared)")
    p.add_argument(
        "--max-draws", type=_positive_int, default=1000, help="posterior draws per fit (default 1000)"
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="PSIS only: do not refit the model without each patient of Pareto k > 0.7",
    )
    _engine_args(p, in_process="one refit after another")
    p.add_argument("--out", default=None, help="CSV file for the comparison table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "risk",
        help="posterior risk of death for a new patient, or the Table 3 grid",
        description="Posterior P(death) given a CT score on a day (or a whole history), "
        "with its 95% credible interval; or the grid over CT score x day.",
    )
    p.add_argument("fit_dir", help="fit folder written by 'bayesct fit'")
    p.add_argument("--ct-score", type=_float, help="observed CT score (0-24)")
    p.add_argument("--day", type=_float, help="days since symptom onset of that scan")
    p.add_argument("--age", type=_float, help="age in years (needed by models with age)")
    p.add_argument("--sex", choices=["female", "male"], help="sex (needed by models with sex)")
    p.add_argument("--history", metavar="FILE", help="the patient's visits (CSV/Parquet/Excel)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--grid", action="store_true", help="the grid of risk by CT score 0-24 x period (or --days)"
    )
    p.add_argument(
        "--days",
        type=_days,
        help="days of the grid, e.g. 3,8,13 (default: the paper's five periods, each at its "
        "mid-day: 2.5, 8, 13, 18, 25)",
    )
    p.add_argument("--out", help="CSV for --grid (a heat map PNG is written beside it)")
    p.add_argument("--draws", type=_positive_int, default=1000, help="posterior draws used (default 1000)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_risk)

    p = sub.add_parser(
        "report",
        help="one self-contained HTML page over a fit, its check and its risk grid",
        description="Write the report of a fit as one HTML page (figures embedded, no outside "
        "requests, printable): convergence gates, the paper's tables and their Bayesian "
        "counterparts, the risk grid, the posterior predictive checks, mixing, priors and spec.",
    )
    p.add_argument("fit_dir", help="fit folder written by 'bayesct fit'")
    p.add_argument("--check", metavar="CHECKDIR", help="folder written by 'bayesct check'")
    p.add_argument("--grid", metavar="GRID.csv", help="risk grid written by 'bayesct risk --grid --out'")
    p.add_argument("--age", type=_float, help="age of the patient the grid was computed for")
    p.add_argument("--sex", choices=["female", "male"], help="sex of the patient the grid was computed for")
    p.add_argument("--out", required=True, metavar="FILE.html", help="the HTML file to write")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo",
        help="the main job on the default cohort",
        description="Default cohort -> classical tables -> joint fit -> checks -> risk grid "
        "-> report, all in --out (open report.html there). One progress line per stage goes "
        "to stderr.",
    )
    p.add_argument("--out", default="bayesct-demo", help="output folder (default bayesct-demo)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--replicates", type=_positive_int, default=200, help="PPC replicates (default 200)")
    _force_arg(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesct`` command."""
    from bayesct.errors import BayesctError, Interrupted
    from bayesct.interrupts import catch_signals, raise_if_interrupted, received

    warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        try:
            with catch_signals():
                code = int(args.func(args))
                raise_if_interrupted()  # a signal some library swallowed: the command did not finish
                return code
        except Exception:
            if received() is not None:  # whatever the signal left behind (a sampler failing on its way out)
                raise KeyboardInterrupt from None
            raise
    except (KeyboardInterrupt, Interrupted):
        # On a terminal a progress bar may have left the cursor mid-line.
        print(("\n" if sys.stderr.isatty() else "") + "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BayesctError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["build_parser", "main"]
