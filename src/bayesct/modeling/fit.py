"""Build, fit, save and load: the :class:`JointModel` and its :class:`FitResult`.

A fit directory holds everything needed to rebuild, check, query and report
the fit, and nothing pickled:

``posterior.nc``      the posterior, sample stats and observed data (an ``xarray.DataTree``;
                      ``bayesct fit`` adds ``log_likelihood``, see below)
``spec.toml``         the spec used
``data.csv``          the validated cohort the model saw (long layout)
``labs.json``         the cohort's declared labs (transform, direction), when it has any
                      (:mod:`bayesct.data.labs`); without it, none
``fingerprint.json``  a SHA-256 of that data and its shape
``diagnostics.json``  the convergence gates and the sampler settings
``complete.json``     the completion marker, written last: the files and the bayesct version

:meth:`FitResult.save` writes the directory under a hidden name and renames it into place
once complete (:func:`bayesct.files.atomic_dir`), so an interrupted or failed save leaves
nothing; its JSON is strict (a non-finite number is ``null``). :meth:`FitResult.load`
refuses what is not a complete, finite fit: a file missing or unreadable, or a non-finite
posterior draw (an interrupted run or an overflowed log-density). A directory without the
marker, as bayesct wrote before it had one, is accepted when every file is there and reads.

``posterior.nc`` is a standard ArviZ file: ``xarray.open_datatree(path)`` opens it, and
ArviZ's summaries and plots (``az.summary``, ``azp.plot_forest``, ``azp.plot_trace_dist``,
``azp.plot_rank``, ``azp.plot_energy`` where there are sample stats) work on it directly.
Its attributes are stored as netCDF can hold them (text, numbers, numeric arrays, lists of
two or more strings such as ``sample_dims``); any other value is stored as JSON text and its
name listed in the attribute ``bayesct_json_attrs``, which :meth:`FitResult.load` decodes.
The groups:

``posterior``        the draws, (chain, draw, ...)
``sample_stats``     the sampler's statistics (energy, divergences, ...), where it gives them
``observed_data``    what the model was fitted to (:func:`observed_dataset`): ``ct_obs`` (the CT
                     scores, by ``ct_scan``), ``lab_obs`` (the lab values in the data's units, by
                     ``lab_value``), ``died_obs`` (by ``patient``; by ``outcome_patient``, the
                     patients of known outcome, when some outcome is unknown), each scan and
                     value with its patient and day as coordinates
``log_likelihood``   (written by ``bayesct fit``) ``patient_loglik``, (chain, draw, patient): each
                     patient's log-likelihood of all their data (CT scores, labs, death) given
                     the draw's population parameters, the patient's own random effects
                     integrated out (:func:`bayesct.checks.calibration.patient_log_likelihood`),
                     so that ``az.loo(tree)`` is the patient-level leave-one-out; on at most
                     1000 draws by default (``--loglik-draws``), each chain thinned by one stride
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayesct.constants import CI_PROB
from bayesct.data.cohort import Cohort
from bayesct.data.labs import LabSpec, labs_from_json, labs_to_json
from bayesct.errors import BayesctError, IncompleteFitError, NotFittedError, SpecError
from bayesct.modeling.builders import SIGNED_SUFFIX, UNJITTERED_START, build_model
from bayesct.modeling.design import Design, build_design
from bayesct.modeling.diagnostics import (
    EXTEND_CAP,
    Diagnostics,
    compute_diagnostics,
    extended_draws,
    mortality_odds_ratios,
    nonfinite_draws,
    nonfinite_summary,
    posterior_summary,
    warn_if_failed,
)
from bayesct.modeling.spec import SAMPLER_KEYS, SAMPLER_NAMES, ModelSpec, load_spec, parse_spec

Sampler = Literal["nutpie", "pymc", "numpyro"]
SAMPLERS: tuple[str, ...] = SAMPLER_NAMES
DEFAULT_SAMPLER: Sampler = "nutpie"


# The files of a fit directory, and its completion marker (written last by FitResult.save).
FIT_FILES: tuple[str, ...] = ("posterior.nc", "spec.toml", "data.csv", "fingerprint.json", "diagnostics.json")
COMPLETE_MARKER = "complete.json"
# The cohort's declared labs (bayesct.data.labs.labs_to_json), beside data.csv when it has any;
# a folder without it (as older versions wrote) has none.
LABS_FILE = "labs.json"


def _nonfinite(posterior: xr.Dataset) -> str:
    """Where ``posterior`` has non-finite draws, in words (empty when every draw is finite)."""
    counts = nonfinite_draws(posterior)
    if not counts:
        return ""
    return f"{nonfinite_summary(counts)}: the run was interrupted or the log-density overflowed"


def data_fingerprint(cohort: Cohort) -> dict[str, Any]:
    """SHA-256 of the cohort's canonical CSV text, with its shape."""
    text = cohort.to_frame().to_csv(index=False, float_format="%.10g")
    return {
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "patients": cohort.n_patients,
        "visits": cohort.n_visits,
        "scans": cohort.n_scans,
        "deaths": cohort.n_deaths,
        "markers": list(cohort.markers),
        "source": cohort.source,
    }


@dataclass
class FitResult:
    """A fitted model: posterior tree, spec, data and convergence verdict.

    Returned by :meth:`JointModel.fit`; :meth:`save` writes a fit directory and :meth:`load`
    (or :func:`load_fit`) reads one back.

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.JointModel("joint").fit(bc.load_default_cohort(), seed=0)  # doctest: +SKIP
    >>> fit.passed, fit.diagnostics.message()  # doctest: +SKIP
    >>> fit.summary(["mort_assoc_sd"])  # doctest: +SKIP
    >>> fit.save("out/fit")  # doctest: +SKIP
    """

    tree: xr.DataTree
    spec: ModelSpec
    cohort: Cohort
    diagnostics: Diagnostics
    settings: dict[str, Any] = field(default_factory=dict)
    _design: Design | None = field(default=None, repr=False)

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def sample_stats(self) -> xr.Dataset | None:
        return self.tree["sample_stats"].to_dataset() if "sample_stats" in self.tree.children else None

    @property
    def design(self) -> Design:
        if self._design is None:
            self._design = build_design(self.cohort, self.spec)
        return self._design

    @property
    def passed(self) -> bool:
        return self.diagnostics.passed

    def summary(self, var_names: list[str] | None = None, *, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """Posterior median and central ``ci_prob`` interval with ESS and R-hat, one row per scalar.

        The mortality coefficients' rows (``mort_beta[...]``, ``mort_assoc_sd``,
        ``coef_per_unit[...]``) also give the coefficient as an odds ratio in user units:
        ``or_median``, ``or_lo``, ``or_hi`` and ``or_unit`` (e.g. "per 10 years of age"); the
        same as :meth:`odds_ratios`, NaN on the other rows.
        """
        table = posterior_summary(self.posterior, var_names=var_names, ci_prob=ci_prob)
        odds = self.odds_ratios(ci_prob=ci_prob)
        if odds.empty or table.empty:
            return table
        by = odds.set_index("parameter")
        out = table.copy()
        for col, src in (("or_median", "median"), ("or_lo", "lo"), ("or_hi", "hi"), ("or_unit", "unit")):
            out[col] = [by[src].get(p, np.nan if src != "unit" else "") for p in out["parameter"]]
        out.attrs = table.attrs
        return out

    def odds_ratios(self, *, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """The mortality submodel's coefficients as odds ratios of death in user units, one row each.

        See :func:`~bayesct.modeling.diagnostics.mortality_odds_ratios`: the trajectory per SD
        (``mort_assoc_sd``), age per 10 years, male against female, any other covariate per its
        scaling unit, with the design's centre and scale stated in ``scaling``. Empty for a
        model without a mortality part.
        """
        design = self.design if self.spec.mortality and self.spec.family == "joint" else None
        return mortality_odds_ratios(self.posterior, design, ci_prob=ci_prob)

    def add_group(self, name: str, group: xr.Dataset) -> None:
        """Add (or replace) a group of the posterior tree, e.g. ``log_likelihood``; saved with it."""
        tree = self.tree.copy()
        tree[name] = group
        self.tree = tree

    def save(self, out_dir: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fit directory (see the module docstring), complete or not at all.

        An existing directory that is not empty is refused
        (:class:`~bayesct.errors.OutputExistsError`) unless ``overwrite``, which replaces it
        once the new one is complete. A posterior with a non-finite draw is refused
        (:class:`~bayesct.errors.IncompleteFitError`): :meth:`load` would not read it.
        """
        from bayesct import __version__
        from bayesct.files import atomic_dir, write_json

        bad = _nonfinite(self.posterior) if self.posterior.sizes.get("draw") else "it has no draws"
        if bad:
            raise IncompleteFitError(f"the posterior is not saved: {bad}; refit")
        tree = self.tree.copy()
        if "observed_data" not in tree.children:
            tree["observed_data"] = observed_dataset(self.design)
        for node in tree.subtree:
            node.attrs = encode_attrs(node.attrs)
        with atomic_dir(out_dir, overwrite=overwrite) as out:
            tree.to_netcdf(out / "posterior.nc", engine="h5netcdf")
            (out / "spec.toml").write_text(self.spec.to_toml(), encoding="utf-8")
            self.cohort.to_frame().to_csv(out / "data.csv", index=False)
            files = list(FIT_FILES)
            if self.cohort.declared_labs:
                write_json(out / LABS_FILE, {"labs": labs_to_json(self.cohort.declared_labs)})
                files.append(LABS_FILE)
            write_json(out / "fingerprint.json", data_fingerprint(self.cohort))
            diag = self.diagnostics.to_dict() | {"settings": self.settings, "model": self.spec.name}
            write_json(out / "diagnostics.json", diag)
            write_json(out / COMPLETE_MARKER, {"files": files, "bayesct": __version__})
        return Path(out_dir)

    @classmethod
    def load(cls, fit_dir: str | Path) -> FitResult:
        """Read a fit directory written by :meth:`save`; checks the data fingerprint."""
        import tomllib

        from bayesct.data.validate import build_cohort

        d = Path(fit_dir)
        missing = [n for n in FIT_FILES if not (d / n).is_file()]
        if len(missing) == len(FIT_FILES):
            raise BayesctError(f"{d} is not a bayesct fit directory (missing {', '.join(missing)})")

        def incomplete(why: str) -> IncompleteFitError:
            return IncompleteFitError(f"{d} is not a complete fit: {why}; refit")

        if missing:
            raise incomplete(f"missing {', '.join(missing)} (the run that wrote it stopped early)")
        name = "posterior.nc"
        try:
            with xr.open_datatree(d / name, engine="h5netcdf") as stored:
                tree = stored.load()
            for node in tree.subtree:
                node.attrs = decode_attrs(node.attrs)
            name = "spec.toml"
            spec_raw = tomllib.loads((d / name).read_text())
            name = "data.csv"
            frame = pd.read_csv(d / name, dtype={"patient_id": str})
            name = "fingerprint.json"
            fp = json.loads((d / name).read_text())
            fp_sha256 = fp["sha256"]
            name = "diagnostics.json"
            raw = json.loads((d / name).read_text())
            diagnostics = Diagnostics.from_dict(raw)
            listed: list[str] = []
            if (d / COMPLETE_MARKER).exists():
                name = COMPLETE_MARKER
                listed = list(json.loads((d / name).read_text()).get("files", []))
            declared: dict[str, LabSpec] = {}
            if LABS_FILE in listed or (d / LABS_FILE).exists():
                name = LABS_FILE
                declared = labs_from_json(json.loads((d / name).read_text())["labs"], file=str(d / name))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise incomplete(f"{name} cannot be read ({type(err).__name__}: {err})") from None
        if "posterior" not in tree.children or not tree["posterior"].to_dataset().sizes.get("draw"):
            raise incomplete("posterior.nc holds no posterior draws")
        bad = _nonfinite(tree["posterior"].to_dataset())
        if bad:
            raise incomplete(bad)
        spec = parse_spec(spec_raw, path=str(d / "spec.toml"))
        cohort = build_cohort(frame, source=str(fp.get("source", d / "data.csv")), labs=declared)
        if data_fingerprint(cohort)["sha256"] != fp_sha256:
            raise BayesctError(f"{d}/data.csv does not match its fingerprint: the fit directory was altered")
        return cls(tree, spec, cohort, diagnostics, settings=raw.get("settings", {}))


class JointModel:
    """A bayesct model variant: ``build`` a PyMC model, ``fit`` it, query the result.

    Parameters
    ----------
    spec
        A shipped spec name (``joint``, ``joint_normal``, ``joint_zones``, ``ct_only``,
        ``descriptive``, ``scan_logistic``), a path to a TOML spec, or a :class:`ModelSpec`.

    Examples
    --------
    >>> import bayesct as bc
    >>> model = bc.JointModel("joint")
    >>> model.spec.name
    'joint'
    >>> fit = model.fit(bc.load_default_cohort(), seed=0)  # doctest: +SKIP
    >>> fit.passed  # doctest: +SKIP
    True
    """

    def __init__(self, spec: str | Path | ModelSpec = "joint") -> None:
        self.spec = spec if isinstance(spec, ModelSpec) else load_spec(spec)
        self._result: FitResult | None = None

    def design(self, cohort: Cohort) -> Design:
        return build_design(cohort, self.spec)

    def build(self, cohort: Cohort) -> pm.Model:
        """The PyMC model of this spec on ``cohort`` (no sampling)."""
        return build_model(self.design(cohort))

    def sampler_settings(
        self,
        *,
        draws: int | None,
        tune: int | None,
        chains: int | None,
        sampler: str = DEFAULT_SAMPLER,
    ) -> dict[str, int]:
        """Draws, warm-up and chains: those given, else the spec's for ``sampler``, else 1000 / 1000 / 4.

        The spec's ``[sampler]`` settings hold for every sampler unless its
        ``[sampler.NAME]`` table overrides them.
        """
        spec = self.spec.sampler
        own = spec.get(sampler, {})
        base = {"draws": 1000, "tune": 1000, "chains": 4}
        base |= {k: v for k, v in spec.items() if k in SAMPLER_KEYS}
        base |= {k: v for k, v in own.items() if k in SAMPLER_KEYS}
        given = {"draws": draws, "tune": tune, "chains": chains}
        out = base | {k: v for k, v in given.items() if v is not None}
        for k, v in out.items():
            if not isinstance(v, int | np.integer) or v < 1:
                raise SpecError(f"{k} must be a positive integer, got {v!r}")
        return out

    def fit(
        self,
        cohort: Cohort,
        *,
        draws: int | None = None,
        tune: int | None = None,
        chains: int | None = None,
        sampler: Sampler = DEFAULT_SAMPLER,
        seed: int = 0,
        progress: bool | Literal["lines"] = False,
        cores: int | None = None,
        notify: Callable[[str], None] | None = None,
        extend: bool = True,
    ) -> FitResult:
        """Sample the posterior and judge it against the convergence gates.

        A fit that misses a gate still returns, with ``result.passed`` False, a
        :class:`~bayesct.errors.ConvergenceWarning` and the reasons in
        ``result.diagnostics.failures``.

        ``progress``: ``True`` shows the sampler's progress bar (for a terminal); ``"lines"``
        (nutpie) sends a progress line to ``notify`` every :data:`PROGRESS_EVERY` seconds
        instead, for a log or a pipe; ``False`` neither. ``notify`` (e.g. a print to stderr)
        is also told, before nutpie compiles, when the compile cache has no record of this
        model: "compiling the model (first fit of this model)…".

        ``extend``: when ``draws`` is not given (the spec's draws) and the fit misses only gates
        that more draws can close (ESS short, R-hat narrowly; :func:`~bayesct.modeling.diagnostics.extended_draws`),
        the fit is run again once with that many draws per chain, at most
        :data:`~bayesct.modeling.diagnostics.EXTEND_CAP` times the spec's, and ``notify`` is told;
        the result's ``settings["extended_from"]`` holds the draws of the first run. Draws given
        explicitly are never changed.
        """
        if sampler not in SAMPLERS:
            raise SpecError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        settings = self.sampler_settings(draws=draws, tune=tune, chains=chains, sampler=sampler)
        design = self.design(cohort)
        # The fused likelihood kernels run in numba (nutpie) and C (PyMC) modes, not in JAX.
        model = build_model(design, fused=sampler != "numpyro")
        n_cores = cores or min(settings["chains"], os.cpu_count() or 1)
        t0 = time.perf_counter()
        key = None
        if sampler == "nutpie":
            from bayesct.modeling.nutpie_cache import enabled, is_cached, model_key

            key = model_key(model)
            if notify is not None and not is_cached(key):
                why = "first fit of this model" if enabled() else "the compile cache is off"
                notify(f"compiling the model ({why})…")
        tree, diag = self._sample_and_judge(
            model, settings, sampler, seed, progress, n_cores, key, notify, t0
        )
        more = extended_draws(diag, settings["draws"]) if extend and draws is None else None
        if more is not None:
            from bayesct.interrupts import raise_if_interrupted

            raise_if_interrupted()
            if notify is not None:
                notify(
                    f"gates missed narrowly with {settings['draws']} draws per chain (R-hat "
                    f"{diag.rhat_max:.3f}, bulk ESS {diag.ess_bulk_min:.0f}, tail ESS {diag.ess_tail_min:.0f}): "
                    f"running again with {more} (at most {EXTEND_CAP:g} x the spec's draws; "
                    "--draws N to choose them yourself)"
                )
            settings = settings | {"draws": more, "extended_from": settings["draws"]}
            tree, diag = self._sample_and_judge(
                model, settings, sampler, seed, progress, n_cores, key, notify, time.perf_counter()
            )
        result = FitResult(
            tree,
            self.spec,
            cohort,
            diag,
            settings=settings | {"sampler": sampler, "seed": seed, "cores": n_cores},
            _design=design,
        )
        warn_if_failed(diag)
        self._result = result
        return result

    @staticmethod
    def _sample_and_judge(
        model: pm.Model,
        settings: dict[str, Any],
        sampler: Sampler,
        seed: int,
        progress: bool | Literal["lines"],
        cores: int,
        key: str | None,
        notify: Callable[[str], None] | None,
        t0: float,
    ) -> tuple[xr.DataTree, Diagnostics]:
        run = {k: settings[k] for k in ("draws", "tune", "chains")}
        tree = _sample(
            model,
            sampler=sampler,
            seed=seed,
            progress=progress,
            cores=cores,
            compile_key=key,
            notify=notify,
            **run,
        )
        wall = time.perf_counter() - t0
        tree = _keep_groups(tree)
        post = tree["posterior"].to_dataset()
        stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
        return tree, compute_diagnostics(post, stats, sampler=sampler, wall_seconds=wall)

    @property
    def result(self) -> FitResult:
        if self._result is None:
            raise NotFittedError("this model has no posterior yet: call .fit(cohort) first")
        return self._result

    def prior_predictive(self, cohort: Cohort, *, draws: int = 200, seed: int = 0) -> xr.DataTree:
        """Prior and prior predictive draws on the cohort's design."""
        with self.build(cohort):
            return pm.sample_prior_predictive(draws=draws, random_seed=seed)


def _sample(
    model: pm.Model,
    *,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    progress: bool | str,
    cores: int,
    compile_key: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> xr.DataTree:
    if sampler == "nutpie":
        from bayesct.modeling.nutpie_cache import compile_model, import_nutpie

        nutpie = import_nutpie()

        # One compiled program per model, the cohort's data its inputs, cached on disk: only
        # the first fit of a model on a machine compiles, whatever the cohort.
        compiled = compile_model(model, compile_key, unjittered=UNJITTERED_START)
        # Variance-based mass matrix (Stan's estimator) rather than nutpie's gradient-based
        # default: on the joint spec it takes about twice the leapfrog steps per draw but gives
        # about twice the minimum ESS per draw, so more ESS per second once compilation is
        # counted, and a wider margin on the ESS gate (benchmarks/results/fit.md).
        return nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            progress_bar=progress is True,
            save_warmup=False,
            adaptation="draw_diag",
            **_progress_lines(progress, notify, draws=draws, tune=tune),
        )
    # Both samplers start from the same kind of point as nutpie: the jitter is applied here
    # (start_points), so that the variables of UNJITTERED_START can be left out of it.
    points = start_points(model, chains, seed)
    extra: dict = {"initvals": points, "init": "adapt_diag"}
    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise SpecError("the numpyro sampler needs the 'jax' extra: pip install 'bayesct[jax]'") from None
        # All chains in one XLA program: one accelerator (or one CPU device) runs them together
        # instead of one after another.
        extra = {"initvals": points, "nuts": {"chain_method": "vectorized", "jitter": False}}
    import pytensor

    # As for nutpie (nutpie_cache.compile_model): without numba's fast-math a fresh and a cached
    # build of the graph agree bit for bit, so the first fit of a cohort draws what later fits draw.
    with model, warnings.catch_warnings(), pytensor.config.change_flags(numba__fastmath=False):
        warnings.simplefilter("ignore", UserWarning)
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler=sampler,
            progressbar=progress is True,
            compute_convergence_checks=False,
            **extra,
        )


#: Seconds between two progress lines of ``progress="lines"``.
PROGRESS_EVERY = 5.0


class ProgressLines:
    """nutpie's ``progress_callback``: a line to ``notify`` every ``every`` seconds, and one at the end.

    nutpie calls it on a background thread with one ``ChainProgress`` per chain
    (``finished_draws``, ``total_draws``, ``tuning``, ``divergences``); the line says how far
    the slowest chain is, in warm-up or in draws, and the divergences so far.
    """

    def __init__(
        self, notify: Callable[[str], None], *, draws: int, tune: int, every: float = PROGRESS_EVERY
    ) -> None:
        self.notify, self.draws, self.tune, self.every = notify, draws, tune, every
        self.start = time.monotonic()
        self.last = self.start
        self.done = False

    def line(self, chains: list[Any]) -> str:
        done = min(int(c.finished_draws) for c in chains)
        total = max(int(c.total_draws) for c in chains)
        divergences = sum(int(c.divergences) for c in chains)
        if done < self.tune:
            where = f"warm-up {done}/{self.tune}"
        else:
            where = f"draws {done - self.tune}/{total - self.tune}"
        elapsed = time.monotonic() - self.start
        return (
            f"sampling: {len(chains)} chains, {where} (slowest chain), {divergences} divergences, "
            f"{elapsed:.0f} s"
        )

    def __call__(self, chains: list[Any]) -> None:
        if not chains or self.done:
            return
        now = time.monotonic()
        finished = all(int(c.finished_draws) >= int(c.total_draws) for c in chains)
        if finished or now - self.last >= self.every:
            self.last = now
            self.done = finished
            self.notify(self.line(chains))


def _progress_lines(
    progress: bool | str, notify: Callable[[str], None] | None, *, draws: int, tune: int
) -> dict[str, Any]:
    """nutpie's keyword arguments for ``progress="lines"``: a :class:`ProgressLines` callback."""
    if progress != "lines" or notify is None:
        return {}
    return {"progress_callback": ProgressLines(notify, draws=draws, tune=tune), "progress_rate": 1000}


def notify_stderr(line: str) -> None:
    """A ``notify`` for :meth:`JointModel.fit`: the line on stderr, at once."""
    print(line, file=sys.stderr, flush=True)


def encode_attrs(attrs: Mapping[Any, Any]) -> dict[Any, Any]:
    """Attributes as netCDF holds them: text, numbers and numeric arrays as they are, lists of two
    or more strings as lists; anything else (a dict, a bool, None, a one-item list, which netCDF
    would read back as a string) as JSON text, its name in ``bayesct_json_attrs``."""
    from bayesct.files import dumps_json

    out: dict[Any, Any] = {}
    as_json: list[str] = []
    for k, v in attrs.items():
        if k == JSON_ATTRS:
            continue
        if (
            isinstance(v, str)
            or (isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_))
            or (isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.ndim == 1 and v.size > 1)
        ):
            out[k] = v
        elif isinstance(v, list | tuple) and len(v) > 1 and all(isinstance(x, str) for x in v):
            out[k] = list(v)
        else:
            out[k] = dumps_json(v, indent=None)
            as_json.append(str(k))
    if as_json:
        out[JSON_ATTRS] = dumps_json(as_json, indent=None)
    return out


def decode_attrs(attrs: Mapping[Any, Any]) -> dict[Any, Any]:
    """The inverse of :func:`encode_attrs`; also reads ``sample_dims`` as older fits stored it (its repr)."""
    out = dict(attrs)
    names = json.loads(out.pop(JSON_ATTRS)) if JSON_ATTRS in out else []
    for k in names:
        if k in out:
            out[k] = json.loads(out[k])
    for k in ("sample_dims",):
        v = out.get(k)
        if isinstance(v, str) and v.startswith("["):
            with contextlib.suppress(ValueError, SyntaxError):
                out[k] = list(ast.literal_eval(v))
        elif isinstance(v, np.ndarray):
            out[k] = [str(x) for x in v]
    return out


#: The attribute that lists the attributes :func:`encode_attrs` stored as JSON text.
JSON_ATTRS = "bayesct_json_attrs"


def observed_dataset(design: Design) -> xr.Dataset:
    """The data the model of ``design`` was fitted to, as ArviZ's ``observed_data`` group.

    ``ct_obs`` (``ct_scan``): the CT scores (0-24); ``lab_obs`` (``lab_value``): the lab values
    in the data's units (the model sees them on its modelling scale,
    :func:`~bayesct.modeling.design.to_model_scale`); ``died_obs`` (``patient``, or
    ``outcome_patient`` when some outcome is unknown: the patients of known outcome): 1 for a death.
    Each scan and lab value carries its patient, day (and lab) as coordinates.
    """
    from bayesct.modeling.design import from_model_scale

    pids = np.asarray(design.patient_ids, dtype=str)
    ct, labs = design.ct, design.labs
    n_ct, n_lab = len(ct.value), len(labs.value)
    lab_names = np.asarray(design.markers, dtype=str)[labs.marker] if n_lab else np.zeros(0, dtype=str)
    lab_units = np.asarray(labs.value, dtype=float).copy()
    for m in dict.fromkeys(lab_names.tolist()):
        sel = lab_names == m
        lab_units[sel] = from_model_scale(m, lab_units[sel], design.declared_labs)
    data = {
        "ct_obs": xr.DataArray(
            np.asarray(ct.value).astype(np.int64),
            dims="ct_scan",
            coords={
                "ct_scan": np.arange(n_ct),
                "ct_scan_patient": ("ct_scan", pids[ct.patient] if n_ct else np.zeros(0, dtype=str)),
                "ct_scan_day": ("ct_scan", np.asarray(ct.day, dtype=float)),
            },
            attrs={"units": "CT severity score (0-24)"},
        ),
        "died_obs": xr.DataArray(
            design.died[design.known_patients].astype(np.int64),
            dims=design.outcome_dim,
            coords={design.outcome_dim: pids[design.known_patients]},
            attrs={"units": "1 died, 0 survived"},
        ),
    }
    if n_lab:
        data["lab_obs"] = xr.DataArray(
            lab_units,
            dims="lab_value",
            coords={
                "lab_value": np.arange(n_lab),
                "lab_value_patient": ("lab_value", pids[labs.patient]),
                "lab_value_day": ("lab_value", np.asarray(labs.day, dtype=float)),
                "lab_value_lab": ("lab_value", lab_names),
            },
            attrs={"units": "the data's units of each lab (lab_value_lab)"},
        )
    return xr.Dataset(data)


def start_points(model: pm.Model, chains: int, seed: int) -> list[dict[str, np.ndarray]]:
    """One starting point per chain: the model's initial point, with U(-1, 1) jitter on the unconstrained scale.

    The initial point is each variable's ``initval`` where the builder set one, else its
    support point. As nutpie's :class:`~bayesct.modeling.nutpie_cache.JitteredPoint`, and as
    PyMC's ``jitter+adapt_diag`` initialisation, except that the variables of
    ``UNJITTERED_START`` get no jitter. Values are on the constrained scale, keyed by name.
    """
    from pymc.initial_point import make_initial_point_fn

    jittered = {rv for rv in model.free_RVs if rv.name not in UNJITTERED_START}
    point_fn = make_initial_point_fn(model=model, jitter_rvs=jittered, return_transformed=False)
    seeds = np.random.default_rng(seed).integers(2**30, size=chains)
    return [point_fn(int(s)) for s in seeds]


def _keep_groups(tree: xr.DataTree) -> xr.DataTree:
    """Only posterior, sample_stats and observed_data (drop warm-up and unconstrained draws).

    Signed scales (``*_signed``) are dropped: their absolute values are stored under the
    parameter's own name. The shared severity's SDs are added under their effect names as
    ``severity_sd``.
    """
    keep = {
        k: tree[k].to_dataset() for k in ("posterior", "sample_stats", "observed_data") if k in tree.children
    }
    post = keep.get("posterior")
    if post is not None:
        post = post.drop_vars([v for v in post.data_vars if str(v).endswith(SIGNED_SUFFIX)])
        if "severity_cov_stds" in post and "severity_sd" not in post:
            stds = post["severity_cov_stds"]
            named = stds.rename({stds.dims[-1]: "effect"}).assign_coords(effect=["intercept", "slope"])
            post = post.assign(severity_sd=named)
        keep["posterior"] = post
    return xr.DataTree.from_dict(keep)


def load_fit(fit_dir: str | Path) -> FitResult:
    """Read a fit directory written by :meth:`FitResult.save` (or ``bayesct fit``).

    Parameters
    ----------
    fit_dir
        The folder holding ``posterior.nc``, ``spec.toml``, ``data.csv``, ``fingerprint.json``
        and ``diagnostics.json``.

    Returns
    -------
    FitResult
        The fit, its data checked against the fingerprint written with it.

    Raises
    ------
    bayesct.errors.BayesctError
        The folder is not a fit directory, or its data no longer match the fingerprint.

    Examples
    --------
    >>> import bayesct as bc
    >>> fit = bc.load_fit("bayesct-demo/fit")  # doctest: +SKIP
    >>> fit.spec.name, fit.passed  # doctest: +SKIP
    ('joint', True)
    """
    return FitResult.load(fit_dir)
