r"""Simulation-based calibration of a model (Talts et al. 2018), one fit per task on dask.distributed.

Two modes, one loop. For replicate :math:`r`:

* **calibration** (no ``generator``): draw the parameters :math:`\tilde\theta` from the spec's
  prior and a cohort from the model's own generative process given them, on a simulated
  design (``simulate_cohort(patients)``'s patients, visit days and missingness): the model is
  built on that design, one prior draw is taken by ``pm.sample_prior_predictive``, and the CT
  scores, labs and deaths are replaced by a replicate of that draw at level ``new`` (fresh
  patient effects from the drawn population law, :func:`bayesct.checks.ppc.replicate_set`, the
  numpy view of the same equations the posterior predictive checks use). ``scan_logistic`` is a
  weighted pseudo-likelihood, a generative model only where each patient has one scan: its
  design keeps each simulated patient's first scan, and the deaths are drawn from the per-scan
  logistic model there.
* **coverage** (``generator=...``): simulate from that generator with its fixed, known truth
  and score the parameters that map onto the model's (:func:`generator_truth`): the mortality
  intercept and covariate coefficients (same scalings of age and sex) and ``mort_assoc_sd``, the
  log-odds of death per population SD of the patient's trajectory term, whatever the scale of
  the effects. The other parameters have no counterpart in a generator the model does not
  share, and ``mort_gamma``'s split into value and slope depends on the effects' scale.

Each replicate is fitted (``JointModel.fit``, one core per fit) and scored: for every scalar
global parameter (:data:`PARAMETERS`; never the per-patient effects) the rank of the truth
among the posterior draws thinned to about the fit's minimum bulk ESS over those parameters
(evenly spaced, so roughly independent; :func:`truth_rank`), and whether the central 50% and
90% intervals of all draws cover it. A rank out of ``L`` thinned draws is uniform on
``0..L`` when the model is calibrated; ranks from replicates with different ``L`` are
compared as the normalised rank ``(rank + 0.5) / (L + 1)``.

Parameters whose prior is ``marker_scaled`` (the labs' loadings, noise and specific SDs) are
scaled by each data set's own marker SD: the fit's prior then differs from the one the
replicate was drawn under, so their ranks are only approximately uniform even for a correct
sampler. They are listed in ``data_scaled_prior``.

Every fit is a task on dask.distributed: a ``LocalCluster`` (one worker process per core, one
thread each) unless ``scheduler`` names a running scheduler. Results go to
``out_dir/validation.json`` (strict JSON) with one file per finished replicate under
``out_dir/replicates/``, each written atomically and read back by a rerun into the same folder,
which fits only the replicates not there. A fit that raises is listed in ``failed`` (stage
``fit``, no ranks; a rerun tries it again); a fit that misses a convergence gate is listed
there too (stage ``gates``) and its ranks are kept, so that the calibration is not conditioned
on convergence: ``gates`` gives each replicate's verdict for those who want to filter.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesct.constants import CT, DAY, DIED, GENERATORS, PATIENT
from bayesct.errors import BayesctError, SpecError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from bayesct.data.cohort import Cohort
    from bayesct.modeling.spec import ModelSpec

#: The global parameters scored, in this order (those the fitted model has; vector parameters
#: one scalar per coordinate, e.g. ``mort_beta[age]``).
PARAMETERS: tuple[str, ...] = (
    "mort_intercept",
    "mort_beta",
    "mort_gamma",
    "mort_assoc_sd",
    "severity_sd",
    "severity_rho",
    "severity_skew",
    "ct_phi",
    "ct_cut_gap",
    "loading_lab",
    "specific_sd",
    "noise_sd",
    "lab_nu",
)
#: The spec's prior behind each scored variable whose name differs from it.
PRIOR_OF: dict[str, str] = {"loading_lab": "loading", "severity_rho": "severity_corr"}
#: Central interval probabilities of the coverage record.
INTERVALS: tuple[float, ...] = (0.5, 0.9)
REPLICATE_DIR = "replicates"
SUMMARY_FILE = "validation.json"
#: The settings a rerun into the same folder must share with the replicates found there.
SETTING_KEYS: tuple[str, ...] = ("model", "generator", "patients", "seed", "draws", "tune", "chains")


class ValidationError(BayesctError):
    """A validation that cannot run with these options or into this folder."""


@dataclass(frozen=True)
class ReplicateTask:
    """One replicate: everything a worker needs (picklable, no file paths)."""

    index: int
    spec: ModelSpec
    patients: int
    generator: str | None
    seed: int
    draws: int | None
    tune: int | None
    chains: int | None


# -- arithmetic -----------------------------------------------------------------------------------------
def replicate_seeds(seed: int, index: int) -> tuple[int, int, int]:
    """(design, prior draw, fit) seeds of replicate ``index``: independent streams of ``seed``."""
    draws = np.random.SeedSequence([seed, index]).generate_state(3)
    return int(draws[0]), int(draws[1]), int(draws[2] % (2**31))


def thin_indices(total: int, keep: int) -> np.ndarray:
    """``keep`` (clipped to 1..``total``) evenly spaced indices into ``total`` stacked draws."""
    keep = int(min(max(keep, 1), total))
    return np.unique(np.linspace(0, total - 1, keep).round().astype(np.int64))


def truth_rank(truth: float, draws: np.ndarray) -> int:
    """The rank of ``truth`` among ``draws``: how many are below it (ties counted half, rounded down)."""
    draws = np.asarray(draws, dtype=float).ravel()
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + ties // 2


def normalised_rank(rank: int | float, out_of: int | float) -> float:
    """``(rank + 0.5) / (L + 1)``: a rank out of ``L`` draws on (0, 1), uniform when calibrated."""
    return (float(rank) + 0.5) / (float(out_of) + 1.0)


def covered(truth: float, draws: np.ndarray, prob: float) -> bool:
    """Whether the central ``prob`` interval of ``draws`` (quantiles) holds ``truth``."""
    lo, hi = np.quantile(np.asarray(draws, dtype=float).ravel(), [(1 - prob) / 2, (1 + prob) / 2])
    return bool(lo <= truth <= hi)


def interval_key(prob: float) -> str:
    """The key of a central interval in the coverage record: ``central_50``, ``central_90``."""
    return f"central_{round(100 * prob)}"


def scalar_draws(ds: xr.Dataset, names: Sequence[str] = PARAMETERS) -> dict[str, np.ndarray]:
    """The scalars of ``names`` in ``ds`` (a posterior or prior group), each ``(chain, draw)``.

    A variable with one dimension besides chain and draw gives one scalar per coordinate,
    ``name[coord]``; ``severity_sd`` is read from ``severity_cov_stds`` where only that is
    there (a prior draw), with the effects' names.
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "severity_sd" and name not in ds and "severity_cov_stds" in ds:
            da = ds["severity_cov_stds"]
            da = da.rename({da.dims[-1]: "effect"}).assign_coords(effect=["intercept", "slope"])
        elif name in ds:
            da = ds[name]
        else:
            continue
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *extra)
        values = np.asarray(da.values, dtype=float)
        if not extra:
            out[name] = values
        elif len(extra) == 1:
            labels = da.coords[extra[0]].values if extra[0] in da.coords else range(values.shape[-1])
            for j, label in enumerate(labels):
                out[f"{name}[{label}]"] = values[..., j]
        # more dimensions (matrices): not a scalar of interest
    return out


def base_name(parameter: str) -> str:
    """``mort_beta[age]`` -> ``mort_beta``."""
    return parameter.split("[", 1)[0]


def data_scaled(spec: ModelSpec, parameters: Sequence[str]) -> list[str]:
    """The parameters whose prior is scaled by the data's marker SDs (``marker_scaled``)."""
    out = []
    for p in parameters:
        name = PRIOR_OF.get(base_name(p), base_name(p))
        try:
            if spec.prior(name).marker_scaled:
                out.append(p)
        except (KeyError, SpecError):
            continue
    return out


def score(
    posterior: Mapping[str, np.ndarray], truth: Mapping[str, float], keep: int
) -> tuple[dict[str, dict[str, Any]], int]:
    """Rank and interval coverage of each true value among ``posterior`` draws ``(chain, draw)``.

    Ranks are among ``keep`` evenly thinned draws (:func:`thin_indices`); the intervals use
    every draw. Returns the per-parameter record and the number of thinned draws.
    """
    records: dict[str, dict[str, Any]] = {}
    n_kept = 0
    for name, value in truth.items():
        if name not in posterior or not np.isfinite(value):
            continue
        flat = np.asarray(posterior[name], dtype=float).reshape(-1)
        idx = thin_indices(flat.size, keep)
        n_kept = idx.size
        rec: dict[str, Any] = {
            "truth": float(value),
            "rank": truth_rank(value, flat[idx]),
            "out_of": int(idx.size),
            "median": float(np.median(flat)),
        }
        for prob in INTERVALS:
            rec[interval_key(prob)] = covered(value, flat, prob)
        records[name] = rec
    return records, n_kept


def summarise(records: Sequence[Mapping[str, Any]], requested: int, settings: Mapping[str, Any]) -> dict:
    """The ``validation.json`` layout from replicate records (each as :func:`run_replicate` returns).

    ``ranks`` and ``out_of`` hold one entry per scored replicate, in the order of
    ``replicate_ids``; ``coverage`` the fraction of them whose central interval holds the truth.
    """
    done = sorted((r for r in records if r.get("error") is None), key=lambda r: r["replicate"])
    failed = [
        {"replicate": r["replicate"], "stage": "fit", "reason": r["error"]}
        for r in records
        if r.get("error") is not None
    ]
    parameters: list[str] = []
    for r in done:
        parameters += [p for p in r["scores"] if p not in parameters]
    ranks: dict[str, list[int | None]] = {p: [] for p in parameters}
    out_of: dict[str, list[int | None]] = {p: [] for p in parameters}
    coverage: dict[str, dict[str, Any]] = {}
    for p in parameters:
        hits = {interval_key(q): 0 for q in INTERVALS}
        n = 0
        for r in done:
            rec = r["scores"].get(p)
            ranks[p].append(None if rec is None else rec["rank"])
            out_of[p].append(None if rec is None else rec["out_of"])
            if rec is not None:
                n += 1
                for q in INTERVALS:
                    hits[interval_key(q)] += bool(rec[interval_key(q)])
        coverage[p] = {k: (v / n if n else None) for k, v in hits.items()} | {"n": n}
    for r in done:
        if not r["gates"]["passed"]:
            reason = "; ".join(r["gates"].get("failures") or []) or "missed a convergence gate"
            failed.append({"replicate": r["replicate"], "stage": "gates", "reason": reason})
    failed.sort(key=lambda f: (f["replicate"], f["stage"]))
    return {
        "settings": dict(settings),
        "mode": "coverage" if settings.get("generator") else "calibration",
        "requested": int(requested),
        "replicates": len(done),
        "passed_gates": sum(bool(r["gates"]["passed"]) for r in done),
        "replicate_ids": [r["replicate"] for r in done],
        "parameters": parameters,
        "data_scaled_prior": sorted({p for r in done for p in r.get("data_scaled_prior", [])}),
        "ranks": ranks,
        "out_of": out_of,
        "coverage": coverage,
        "failed": failed,
        "gates": [{"replicate": r["replicate"]} | r["gates"] for r in done],
        "wall_seconds": {str(r["replicate"]): r.get("wall_seconds") for r in done},
    }


# -- the truth ------------------------------------------------------------------------------------------
def generator_truth(spec: ModelSpec, generator: str) -> dict[str, float]:
    """The model parameters a generator's known truth gives (coverage mode); see the module docstring.

    ``mort_intercept`` (the log-odds at zero covariates and mean-zero effects),
    ``mort_beta[age]`` and ``mort_beta[male]`` (age as ``(age - 55) / 15``, which the spec
    must scale the same way) and ``mort_assoc_sd``: ``sign(Cov(r, v)) SD(r)`` of the true
    trajectory term ``r`` (``v`` the latent CT value at the reference day). For the ``joint``
    generator ``r`` includes its CT-specific patient intercept (SD 0.25), which the model
    folds into the shared severity: a small misfit of the model, not of the mapping.
    """
    from bayesct.data.simulate import AGE_CENTRE, AGE_SCALE, SimulationParams, time_transform

    if spec.family != "joint" or not spec.mortality:
        raise ValidationError(
            f"model '{spec.name}' has no parameters that map onto a generator's truth; "
            "run it without --generator (prior draws) or choose a joint-family model with mortality"
        )
    if generator not in GENERATORS:
        raise ValidationError(f"unknown generator '{generator}'; choose one of {', '.join(GENERATORS)}")
    if generator == "joint":
        p = SimulationParams()
        g = float(time_transform(p.t_ref))
        s0, s1, cov01 = p.s0, p.s1, p.rho * p.s0 * p.s1
        tau_ct = p.tau[CT]
        gv, gs = p.gamma_value, p.gamma_slope
        # r = gv (u0 + g u1 + v_ct) + gs u1 = gv u0 + (gv g + gs) u1 + gv v_ct
        a, b = gv, gv * g + gs
        var_r = a * a * s0 * s0 + 2 * a * b * cov01 + b * b * s1 * s1 + gv * gv * tau_ct**2
        # v = u0 + g u1 + v_ct
        cov_rv = a * (s0 * s0 + g * cov01) + b * (cov01 + g * s1 * s1) + gv * tau_ct**2
        alpha, beta_age, beta_male = p.alpha, p.beta_age, p.beta_male
    else:
        from bayesct.data.zones import ZoneParams

        z = ZoneParams.for_generator(generator)
        g = float(time_transform(spec.reference_day))
        s0, s1, cov01 = z.s0, z.s1, z.rho * z.s0 * z.s1
        a, b = z.gamma0, z.gamma1
        var_r = a * a * s0 * s0 + 2 * a * b * cov01 + b * b * s1 * s1
        cov_rv = a * (s0 * s0 + g * cov01) + b * (cov01 + g * s1 * s1)
        alpha, beta_age, beta_male = z.alpha, z.beta_age, z.beta_male
    truth = {"mort_intercept": alpha, "mort_assoc_sd": float(np.sign(cov_rv) * np.sqrt(var_r))}
    scaling = spec.covariate_scaling
    if "age" in spec.covariates:
        if tuple(scaling.get("age", ())) != (AGE_CENTRE, AGE_SCALE):
            raise ValidationError(
                f"model '{spec.name}' scales age otherwise than the generators ((age - 55) / 15): "
                "its age coefficient has no true value"
            )
        truth["mort_beta[age]"] = beta_age
    if "sex" in spec.covariates or "male" in spec.covariates:
        truth["mort_beta[male]"] = beta_male
    if set(spec.covariates) - {"age", "sex", "male"}:
        # Other covariates shift the intercept's meaning; the generators have none.
        truth.pop("mort_intercept")
    return truth


def _prior_draw(spec: ModelSpec, cohort: Cohort, seed: int) -> xr.Dataset:
    """One draw of every free variable and deterministic from the spec's prior, on ``cohort``'s design."""
    import pymc as pm
    from pytensor.compile.mode import Mode

    from bayesct.modeling.fit import JointModel

    model = JointModel(spec).build(cohort)
    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)  # not "Sampling: [...]" once per replicate
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # One draw: the Python linker is faster than compiling the graph.
            tree = pm.sample_prior_predictive(
                draws=1,
                var_names=names,
                random_seed=seed,
                compile_kwargs={"mode": Mode(linker="py", optimizer="fast_compile")},
            )
    finally:
        logger.setLevel(level)
    ds = tree["prior"].to_dataset()
    if "chain" not in ds.dims:
        ds = ds.expand_dims(chain=[0])
    return ds


def _first_scans(cohort: Cohort) -> Cohort:
    """Each patient's first CT visit only (the design on which ``scan_logistic`` is generative)."""
    from bayesct.data.cohort import Cohort

    visits = cohort.visits
    scans = visits[visits[CT].notna()].sort_values([PATIENT, DAY], kind="stable")
    first = scans.groupby(PATIENT, sort=False).head(1).reset_index(drop=True)
    return Cohort(
        first, cohort.patients, source=cohort.source, notes=cohort.notes, declared_labs=cohort.declared_labs
    )


def calibration_cohort(
    spec: ModelSpec, patients: int, design_seed: int, prior_seed: int
) -> tuple[Cohort, dict[str, float]]:
    """A cohort drawn from ``spec``'s prior predictive on a simulated design, and the drawn parameters.

    The design is ``simulate_cohort(patients, seed=design_seed)``'s (for ``scan_logistic``
    each patient's first scan); the prior draw and the replicate use ``prior_seed``.
    """
    import xarray as xr
    from scipy.special import expit

    from bayesct.checks.ppc import replicate_set
    from bayesct.data import simulate_cohort
    from bayesct.modeling.design import scan_terms
    from bayesct.modeling.diagnostics import Diagnostics
    from bayesct.modeling.fit import FitResult

    design = simulate_cohort(patients, seed=design_seed).cohort
    if spec.family == "scan_logistic":
        design = _first_scans(design)
        ds = _prior_draw(spec, design, prior_seed)
        truth = {k: float(v.reshape(-1)[0]) for k, v in scalar_draws(ds).items()}
        scans = design.visits
        x = scan_terms(spec, scans[CT].to_numpy(float), scans[DAY].to_numpy(float))
        a0 = float(ds["mort_intercept"].values.reshape(-1)[0])
        beta = np.asarray(ds["mort_beta"].values, dtype=float).reshape(-1)
        p = expit(a0 + x @ beta)
        rng = np.random.default_rng(prior_seed)
        died_by_patient = dict(zip(scans[PATIENT], (rng.random(p.size) < p).astype(np.int64), strict=True))
        died = np.array([died_by_patient[pid] for pid in design.patients.index], dtype=np.int64)
        cohort = design.with_values({DIED: died}, source=f"prior predictive draw (seed {prior_seed})")
        return cohort, truth
    ds = _prior_draw(spec, design, prior_seed)
    truth = {k: float(v.reshape(-1)[0]) for k, v in scalar_draws(ds).items()}
    diag = Diagnostics(1.0, 1.0, 1.0, 0, 1.0, True, "prior draw", 1, 1, 0.0)
    posterior = ds.drop_vars([v for v in ds.data_vars if str(v).endswith("_signed")])
    prior_fit = FitResult(xr.DataTree.from_dict({"posterior": posterior}), spec, design, diag)
    replicated = replicate_set(prior_fit, n=1, level="new", seed=prior_seed)
    cohort = design.with_values(
        {k: v[0] for k, v in replicated.values.items()}, source=f"prior predictive draw (seed {prior_seed})"
    )
    return cohort, truth


# -- one replicate (runs on a worker) -------------------------------------------------------------------
def run_replicate(task: ReplicateTask) -> dict[str, Any]:
    """Simulate, fit and score replicate ``task.index``; never raises (an error is recorded)."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"replicate": task.index, "error": None}
    try:
        from bayesct.errors import ConvergenceWarning
        from bayesct.modeling.fit import JointModel

        design_seed, prior_seed, fit_seed = replicate_seeds(task.seed, task.index)
        if task.generator is None:
            cohort, truth = calibration_cohort(task.spec, task.patients, design_seed, prior_seed)
        else:
            from bayesct.data import simulate_cohort

            cohort = simulate_cohort(task.patients, seed=design_seed, generator=task.generator).cohort
            truth = generator_truth(task.spec, task.generator)
        record["cohort"] = {"patients": cohort.n_patients, "scans": cohort.n_scans, "deaths": cohort.n_deaths}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = JointModel(task.spec).fit(
                cohort, draws=task.draws, tune=task.tune, chains=task.chains, seed=fit_seed, cores=1
            )
        posterior = scalar_draws(fit.posterior)
        wanted = {k: v for k, v in truth.items() if k in posterior}
        from bayesct.modeling.mcmc_stats import ess_bulk

        ess = [float(ess_bulk(posterior[k])) for k in wanted]
        finite = [e for e in ess if np.isfinite(e)]
        keep = int(np.floor(min(finite))) if finite else 1
        scores, n_kept = score(posterior, wanted, keep)
        diag = fit.diagnostics
        record |= {
            "scores": scores,
            "thinned_draws": n_kept,
            "data_scaled_prior": data_scaled(task.spec, list(scores)),
            "gates": {
                "passed": bool(diag.passed),
                "failures": list(diag.failures),
                "rhat_max": diag.rhat_max,
                "ess_bulk_min": diag.ess_bulk_min,
                "ess_tail_min": diag.ess_tail_min,
                "divergences": int(diag.divergences),
                "bfmi_min": diag.bfmi_min,
            },
            "settings": dict(fit.settings),
        }
    except Exception as err:  # recorded and reported, not lost
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        record["error"] = last
    record["wall_seconds"] = time.perf_counter() - t0
    return record


# -- the driver ------------------------------------------------------------------------------------------
def replicate_path(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / REPLICATE_DIR / f"replicate-{index:04d}.json"


def _read_done(out_dir: Path, settings: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The replicates already written under ``out_dir`` with these settings; others refused."""
    done: dict[int, dict[str, Any]] = {}
    folder = out_dir / REPLICATE_DIR
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("replicate-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: fitted again
        theirs = record.get("validation", {})
        if {k: theirs.get(k) for k in SETTING_KEYS} != {k: settings.get(k) for k in SETTING_KEYS}:
            raise ValidationError(
                f"{out_dir} holds replicates of another validation ({path.name}: "
                + ", ".join(f"{k}={theirs.get(k)!r}" for k in SETTING_KEYS)
                + "): choose another output folder"
            )
        done[int(record["replicate"])] = record
    return done


def run_validation(
    *,
    replicates: int,
    patients: int,
    model: str | Path | ModelSpec = "joint",
    generator: str | None = None,
    seed: int = 0,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    out_dir: str | Path,
    scheduler: str | None = None,
    progress: bool | Callable[[str], None] = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Simulation-based calibration (or, with ``generator``, coverage) of ``model``; see the module docstring.

    Parameters
    ----------
    replicates, patients
        Number of replicated cohorts, and patients in each.
    model
        A spec name, a TOML path or a :class:`~bayesct.modeling.spec.ModelSpec`.
    generator
        ``None``: the truth is drawn from the prior. One of :data:`bayesct.constants.GENERATORS`:
        the generator's fixed truth, scored where it maps onto the model (:func:`generator_truth`).
    seed
        Seed of the whole run; replicate ``r``'s seeds are :func:`replicate_seeds` of it.
    draws, tune, chains
        Sampler settings of each fit (default the spec's).
    out_dir
        Folder of ``validation.json``, ``replicates/`` and the figures; a rerun resumes it.
    scheduler
        Address of a running dask scheduler (``tcp://host:port``); default a ``LocalCluster``
        with ``workers`` (default one per core) single-threaded worker processes.
    progress
        Print a line per finished replicate to stderr (or pass each line to a callable).

    Returns
    -------
    dict
        The content of ``validation.json`` (see :func:`summarise`), with ``figures``.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ValidationError(
            "the validation runs on dask.distributed: pip install 'bayesct[distributed]'"
        ) from None

    from bayesct.engine import run_tasks
    from bayesct.files import write_json
    from bayesct.modeling.spec import load_spec

    if replicates < 1 or patients < 1:
        raise ValidationError("replicates and patients must be positive")
    spec = model if not isinstance(model, str | Path) else load_spec(model)
    if generator is not None:
        generator_truth(spec, generator)  # refuse an unmapped model before any fit
    say: Callable[[str], None]
    if callable(progress):
        say = progress
    elif progress:

        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    else:

        def say(line: str) -> None:
            return None

    settings = {
        "model": spec.name,
        "generator": generator,
        "patients": int(patients),
        "seed": int(seed),
        "draws": draws,
        "tune": tune,
        "chains": chains,
    }
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValidationError(f"{out} exists and is not a folder")
    done = {r: rec for r, rec in _read_done(out, settings).items() if r < replicates}
    (out / REPLICATE_DIR).mkdir(parents=True, exist_ok=True)
    todo = [r for r in range(replicates) if r not in done]
    if done:
        say(f"{len(done)} of {replicates} replicates already in {out}; fitting {len(todo)}")
    records = list(done.values())
    if todo:
        tasks = [ReplicateTask(r, spec, patients, generator, seed, draws, tune, chains) for r in todo]
        finished = len(done)
        runs = run_tasks(
            run_replicate, tasks, scheduler=scheduler, workers=workers, name=f"bayesct-replicate-{seed}"
        )
        for i, result in runs:
            r = todo[i]
            record: dict[str, Any]
            if isinstance(result, BaseException):  # a worker lost, a task that could not be sent
                record = {"replicate": r, "error": f"{type(result).__name__}: {result}", "wall_seconds": None}
            else:
                record = result
            finished += 1
            if record.get("error") is None:
                record["validation"] = settings
                write_json(replicate_path(out, r), record)
                verdict = "gates passed" if record["gates"]["passed"] else "MISSED A GATE"
                say(
                    f"replicate {r}: done in {record['wall_seconds']:.0f} s, {verdict} ({finished}/{replicates})"
                )
            else:
                say(f"replicate {r}: FAILED: {record['error']} ({finished}/{replicates})")
            records.append(record)
    summary = summarise(records, replicates, settings)
    summary["figures"] = [str(p.name) for p in write_figures(summary, out)]
    write_json(out / SUMMARY_FILE, summary)
    return summary


# -- figures --------------------------------------------------------------------------------------------
def _pits(summary: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for p in summary["parameters"]:
        pairs = [
            (r, n) for r, n in zip(summary["ranks"][p], summary["out_of"][p], strict=True) if r is not None
        ]
        out[p] = np.array([normalised_rank(r, n) for r, n in pairs], dtype=float)
    return out


def ecdf_band(n: int, prob: float = 0.95, *, sims: int = 2000, seed: int = 0) -> float:
    """Half-width of a simultaneous ``prob`` band of ``ECDF(z) - z`` for ``n`` uniform values (by simulation)."""
    rng = np.random.default_rng(seed)
    u = np.sort(rng.random((sims, n)), axis=1)
    i = np.arange(1, n + 1)
    dev = np.maximum(np.abs(i / n - u), np.abs((i - 1) / n - u)).max(axis=1)
    return float(np.quantile(dev, prob))


def _grid(n: int) -> tuple[Figure, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(4, max(n, 1))
    rows = int(np.ceil(max(n, 1) / cols))
    fig = Figure(figsize=(3.0 * cols, 2.4 * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(max(n, 1))]
    return fig, axes


def rank_histogram_figure(summary: Mapping[str, Any], bins: int | None = None) -> Figure:
    """One rank histogram per parameter (normalised ranks, :func:`normalised_rank`), with the uniform's level."""
    pits = _pits(summary)
    fig, axes = _grid(len(pits))
    for ax, (name, u) in zip(axes, pits.items(), strict=False):
        k = bins or int(np.clip(np.sqrt(max(u.size, 1)), 2, 20))
        ax.hist(u, bins=k, range=(0, 1), color="#4c72b0", edgecolor="white")
        ax.axhline(u.size / k, color="black", lw=1, ls="--")
        ax.set_title(name + (" *" if name in summary.get("data_scaled_prior", []) else ""), fontsize=9)
        ax.set_xlim(0, 1)
    fig.suptitle(f"Rank histograms ({summary['replicates']} replicates; * data-scaled prior)", fontsize=10)
    return fig


def ecdf_difference_figure(summary: Mapping[str, Any], prob: float = 0.95) -> Figure:
    """ECDF of the normalised ranks minus the uniform's, with a simultaneous ``prob`` band, per parameter."""
    pits = _pits(summary)
    fig, axes = _grid(len(pits))
    z = np.linspace(0, 1, 201)
    for ax, (name, u) in zip(axes, pits.items(), strict=False):
        if u.size:
            ecdf = np.searchsorted(np.sort(u), z, side="right") / u.size
            half = ecdf_band(u.size, prob)
            ax.fill_between(z, -half, half, color="#dddddd")
            ax.step(z, ecdf - z, where="post", color="#c44e52")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(name + (" *" if name in summary.get("data_scaled_prior", []) else ""), fontsize=9)
        ax.set_xlim(0, 1)
    fig.suptitle(f"ECDF difference of normalised ranks, {round(100 * prob)}% simultaneous band", fontsize=10)
    return fig


def write_figures(summary: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """``rank_histograms.png`` and ``ecdf_difference.png`` in ``out_dir`` (none without ranks)."""
    if not summary["parameters"] or not summary["replicates"]:
        return []
    out = Path(out_dir)
    paths = []
    for name, fig in (
        ("rank_histograms.png", rank_histogram_figure(summary)),
        ("ecdf_difference.png", ecdf_difference_figure(summary)),
    ):
        path = out / name
        tmp = path.with_name(f".{name}.partial")
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """A few printable lines: coverage per parameter and the failures."""
    lines = [
        f"Validation of model '{summary['settings']['model']}' ({summary['mode']}"
        + (f", generator {summary['settings']['generator']}" if summary["settings"]["generator"] else "")
        + f"): {summary['replicates']} of {summary['requested']} replicates, "
        f"{summary['passed_gates']} passed the convergence gates.",
        "parameter                       50% coverage  90% coverage   n",
    ]
    for p in summary["parameters"]:
        c = summary["coverage"][p]

        def pct(v: float | None) -> str:
            return "   -" if v is None else f"{100 * v:4.0f}%"

        star = " *" if p in summary["data_scaled_prior"] else ""
        lines.append(
            f"{(p + star):<32}{pct(c['central_50']):>8}      {pct(c['central_90']):>8}   {c['n']:>3}"
        )
    if summary["data_scaled_prior"]:
        lines.append("  * prior scaled by each data set's marker SD: ranks only approximately uniform")
    for f in summary["failed"]:
        lines.append(f"  replicate {f['replicate']} failed ({f['stage']}): {f['reason']}")
    return lines


__all__ = [
    "PARAMETERS",
    "ReplicateTask",
    "ValidationError",
    "calibration_cohort",
    "covered",
    "generator_truth",
    "normalised_rank",
    "run_replicate",
    "run_validation",
    "scalar_draws",
    "score",
    "summarise",
    "summary_lines",
    "thin_indices",
    "truth_rank",
    "write_figures",
]
