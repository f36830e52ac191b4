"""Build, fit, save and load: the :class:`JointModel` and its :class:`FitResult`.

A fit directory holds everything needed to rebuild, check, query and report
the fit, and nothing pickled:

``posterior.nc``      the posterior and sample stats (an ``xarray.DataTree``)
``spec.toml``         the spec used
``data.csv``          the validated cohort the model saw (long layout)
``fingerprint.json``  a SHA-256 of that data and its shape
``diagnostics.json``  the convergence gates and the sampler settings
``complete.json``     the completion marker, written last: the files and the bayesct version

:meth:`FitResult.save` writes the directory under a hidden name and renames it into place
once complete (:func:`bayesct.files.atomic_dir`), so an interrupted or failed save leaves
nothing; its JSON is strict (a non-finite number is ``null``). :meth:`FitResult.load`
refuses what is not a complete, finite fit: a file missing or unreadable, or a non-finite
posterior draw (an interrupted run or an overflowed log-density). A directory without the
marker, as bayesct wrote before it had one, is accepted when every file is there and reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bayesct.constants import CI_PROB
from bayesct.data.cohort import Cohort
from bayesct.errors import BayesctError, IncompleteFitError, NotFittedError, SpecError
from bayesct.modeling.builders import SIGNED_SUFFIX, UNJITTERED_START, build_model
from bayesct.modeling.design import Design, build_design
from bayesct.modeling.diagnostics import (
    Diagnostics,
    compute_diagnostics,
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
        """Posterior median and central ``ci_prob`` interval with ESS and R-hat, one row per scalar."""
        return posterior_summary(self.posterior, var_names=var_names, ci_prob=ci_prob)

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
        tree.attrs = {k: str(v) for k, v in tree.attrs.items()}
        for node in tree.subtree:
            node.attrs = {k: str(v) for k, v in node.attrs.items()}
        with atomic_dir(out_dir, overwrite=overwrite) as out:
            tree.to_netcdf(out / "posterior.nc", engine="h5netcdf")
            (out / "spec.toml").write_text(self.spec.to_toml(), encoding="utf-8")
            self.cohort.to_frame().to_csv(out / "data.csv", index=False)
            write_json(out / "fingerprint.json", data_fingerprint(self.cohort))
            diag = self.diagnostics.to_dict() | {"settings": self.settings, "model": self.spec.name}
            write_json(out / "diagnostics.json", diag)
            write_json(out / COMPLETE_MARKER, {"files": list(FIT_FILES), "bayesct": __version__})
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
            if (d / COMPLETE_MARKER).exists():
                name = COMPLETE_MARKER
                json.loads((d / name).read_text())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise incomplete(f"{name} cannot be read ({type(err).__name__}: {err})") from None
        if "posterior" not in tree.children or not tree["posterior"].to_dataset().sizes.get("draw"):
            raise incomplete("posterior.nc holds no posterior draws")
        bad = _nonfinite(tree["posterior"].to_dataset())
        if bad:
            raise incomplete(bad)
        spec = parse_spec(spec_raw, path=str(d / "spec.toml"))
        cohort = build_cohort(frame, source=str(fp.get("source", d / "data.csv")))
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
        progress: bool = False,
        cores: int | None = None,
    ) -> FitResult:
        """Sample the posterior and judge it against the convergence gates.

        A fit that misses a gate still returns, with ``result.passed`` False, a
        :class:`~bayesct.errors.ConvergenceWarning` and the reasons in
        ``result.diagnostics.failures``.
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
            from bayesct.modeling.nutpie_cache import model_key

            key = model_key(design)
        tree = _sample(
            model, sampler=sampler, seed=seed, progress=progress, cores=n_cores, compile_key=key, **settings
        )
        wall = time.perf_counter() - t0
        tree = _keep_groups(tree)
        post = tree["posterior"].to_dataset()
        stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
        diag = compute_diagnostics(post, stats, sampler=sampler, wall_seconds=wall)
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
    progress: bool,
    cores: int,
    compile_key: str | None = None,
) -> xr.DataTree:
    if sampler == "nutpie":
        from bayesct.modeling.nutpie_cache import compile_model, import_nutpie

        nutpie = import_nutpie()

        # compile_model folds the data into the graph (nutpie's freeze_model) and caches the
        # compilation on disk, so only the first fit of a model and cohort pays for it.
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
            progress_bar=progress,
            save_warmup=False,
            adaptation="draw_diag",
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
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler=sampler,
            progressbar=progress,
            compute_convergence_checks=False,
            **extra,
        )


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
    >>> fit = bc.load_fit("demo-output/fit")  # doctest: +SKIP
    >>> fit.spec.name, fit.passed  # doctest: +SKIP
    ('joint', True)
    """
    return FitResult.load(fit_dir)
