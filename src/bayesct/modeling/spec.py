"""Declarative model specs: TOML files in the top-level ``models/`` folder.

A spec names the variant (``joint``, ``ct_only``, ``descriptive``,
``scan_logistic``) and holds every modelling choice that is data rather than
code: which markers and likelihoods, the spline knots of the population curves,
the random-effects structure, the mortality association, the priors and the
default sampler settings. Specs are saved with each fit so that a fit on disk
can always be rebuilt, reported and queried.

Priors are declared as ``{dist = "Normal", mu = 0, sigma = 1}`` tables. For
marker-level parameters, ``marker_scaled = true`` multiplies the scale of the
prior by the marker's empirical standard deviation on its modelling scale
(log for labs, logit for percentages and the CT score), which keeps one
weakly-informative prior meaningful for markers in very different units.

``[random_effects] loading_signs`` (factor structure only) says how the labs' loadings
on the shared severity are signed: ``"free"`` (the default when the key is absent, so
that specs saved with older fits rebuild the same model) samples each loading with the
``loading`` prior as declared; ``"known"`` fixes each lab's sign to
:data:`~bayesct.constants.LAB_DIRECTION` (a declared lab's: its declared direction,
:func:`bayesct.data.labs.lab_direction`) and reads the ``loading`` prior as the law of
the magnitude: ``Normal(0, s)`` as ``HalfNormal(s)`` and ``StudentT(nu, 0, s)`` as
``HalfStudentT(nu, s)`` (a HalfNormal, HalfStudentT or Exponential prior is used as is).

``[random_effects] severity_law`` (factor structure only) is the population law of the
severity's level: ``"normal"`` (the default when absent) or ``"sinh_arcsinh"``, a
skewed law with one parameter ``severity_skew`` (its prior required;
:mod:`bayesct.effect_law`).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from bayesct.constants import LAB_DIRECTION, MARKERS
from bayesct.data.labs import valid_lab_name
from bayesct.effect_law import SEVERITY_LAWS
from bayesct.errors import SpecError
from bayesct.likelihoods import CT_FAMILIES

Family = Literal["joint", "scan_logistic"]
Structure = Literal["factor", "full"]
Association = Literal["value", "slope", "shared"]
LoadingSigns = Literal["known", "free"]

SPEC_NAMES: tuple[str, ...] = (
    "joint",
    "joint_normal",
    "joint_zones",
    "ct_only",
    "descriptive",
    "scan_logistic",
)
# [sampler] holds these settings for every sampler, and [sampler.NAME] tables override them for one.
SAMPLER_KEYS: tuple[str, ...] = ("draws", "tune", "chains")
SAMPLER_NAMES: tuple[str, ...] = ("nutpie", "pymc", "numpyro")
_DISTS = {"Normal", "HalfNormal", "Exponential", "Gamma", "StudentT", "HalfStudentT", "LKJ"}
_ASSOCIATIONS = {"value", "slope", "shared"}
LOADING_SIGNS: tuple[str, ...] = ("known", "free")
# With known loading signs: the half-distribution whose law |x| has for x with the declared
# (zero-centred, symmetric) prior; positive distributions are the magnitude's prior as declared.
_HALF_OF = {"Normal": "HalfNormal", "StudentT": "HalfStudentT"}
_POSITIVE = {"HalfNormal", "HalfStudentT", "Exponential"}


def specs_dir() -> Path:
    """Folder holding the shipped specs (the repo's ``models/`` or the installed copy)."""
    repo = Path(__file__).resolve().parents[3] / "models"
    if repo.is_dir():
        return repo
    return Path(str(resources.files("bayesct") / "_specs"))


@dataclass(frozen=True)
class Prior:
    """One prior, as declared in a spec."""

    name: str
    dist: str
    params: dict[str, float]
    marker_scaled: bool = False

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        scaled = "  (scale × marker SD)" if self.marker_scaled else ""
        return f"{self.name:<20} ~ {self.dist}({args}){scaled}"


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see the module docstring)."""

    name: str
    description: str
    family: Family
    markers: tuple[str, ...] | None  # None: every marker present in the data
    ct_likelihood: Literal["beta_binomial", "binomial", "zone_sum"]
    lab_likelihood: Literal["lognormal", "student_t"]
    knots: tuple[float, ...]
    boundary: tuple[float, float]
    time_centre: float
    time_scale: float
    by_group: bool
    structure: Structure
    slopes: tuple[str, ...]
    specific_intercepts: bool
    loading_signs: LoadingSigns
    mortality: bool
    association: tuple[Association, ...]
    reference_day: float
    covariates: tuple[str, ...]
    covariate_scaling: dict[str, tuple[float, float]]
    sampler: dict[str, Any]
    priors: dict[str, Prior]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    path: str | None = None
    #: population law of the severity level (factor structure): "normal" or "sinh_arcsinh"
    severity_law: str = "normal"

    def prior(self, name: str) -> Prior:
        try:
            return self.priors[name]
        except KeyError:
            raise SpecError(f"spec '{self.name}' declares no prior '{name}'") from None

    def describe_priors(self) -> str:
        """The priors, one per line, as a user would print them."""
        lines = [f"Priors of model '{self.name}':"]
        lines += ["  " + p.describe() for p in self.priors.values()]
        if self.structure == "factor" and self.loading_signs == "known" and "loading" in self.priors:
            up = ", ".join(m for m, d in LAB_DIRECTION.items() if d > 0)
            down = ", ".join(m for m, d in LAB_DIRECTION.items() if d < 0)
            lines.append(
                '  loading signs known (random_effects.loading_signs = "known"): '
                f"loading[lab] = ±|loading|, + for {up}; - for {down}; a declared lab: its direction; "
                f"|loading| ~ {loading_magnitude_prior(self.priors['loading']).describe().split('~', 1)[1].strip()}"
            )
        return "\n".join(lines)

    def to_toml(self) -> str:
        """The spec as TOML text (round-trips through :func:`parse_spec`)."""
        return _dump_toml(self.raw)


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load a spec by shipped name (``joint``, ...) or by path to a TOML file."""
    text_path = Path(name_or_path)
    if text_path.suffix == ".toml" or text_path.exists():
        if not text_path.is_file():
            raise SpecError(f"model spec file not found: {text_path}")
        path = text_path
    else:
        path = specs_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise SpecError(
                f"unknown model '{name_or_path}'; choose one of {', '.join(SPEC_NAMES)} or give a .toml path"
            )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: not a valid TOML file: {err}") from None
    return parse_spec(raw, path=str(path))


def parse_spec(raw: dict[str, Any], *, path: str | None = None) -> ModelSpec:
    """Validate a spec dictionary (as read from TOML) and return a :class:`ModelSpec`."""
    where = path or "<spec>"

    def fail(msg: str) -> SpecError:
        return SpecError(f"{where}: {msg}")

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise fail(f"[{name}] must be a table")
        return value

    known = {
        "name",
        "description",
        "family",
        "markers",
        "trajectory",
        "random_effects",
        "mortality",
        "sampler",
        "priors",
    }
    unknown = set(raw) - known
    if unknown:
        raise fail(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise fail("'name' (a non-empty string) is required")
    family = raw.get("family", "joint")
    if family not in ("joint", "scan_logistic"):
        raise fail(f"family must be 'joint' or 'scan_logistic', got {family!r}")

    mk = section("markers")
    include = mk.get("include", "all")
    markers: tuple[str, ...] | None
    if include == "all":
        markers = None
    elif isinstance(include, list) and include and all(m in MARKERS or valid_lab_name(m) for m in include):
        # the built-in markers in their order, then declared labs' names (checked on the data's design)
        markers = (
            *(m for m in MARKERS if m in include),
            *dict.fromkeys(m for m in include if m not in MARKERS),
        )
        if "ct_score" not in markers:
            raise fail("markers.include must contain 'ct_score'")
    else:
        raise fail(
            f"markers.include must be 'all' or a list of {', '.join(MARKERS)} and declared labs; got {include!r}"
        )
    ct_lik = mk.get("ct_likelihood", "beta_binomial")
    if ct_lik not in CT_FAMILIES:
        raise fail(
            f"markers.ct_likelihood must be one of {', '.join(map(repr, CT_FAMILIES))}, got {ct_lik!r}"
        )
    lab_lik = mk.get("lab_likelihood", "lognormal")
    if lab_lik not in ("lognormal", "student_t"):
        raise fail(f"markers.lab_likelihood must be 'lognormal' or 'student_t', got {lab_lik!r}")

    tr = section("trajectory")
    knots = tuple(float(k) for k in tr.get("knots", [7.0, 14.0, 21.0]))
    boundary = tuple(float(b) for b in tr.get("boundary", [0.0, 45.0]))
    if len(boundary) != 2 or boundary[0] >= boundary[1]:
        raise fail("trajectory.boundary must be [low, high] with low < high")
    if any(not boundary[0] < k < boundary[1] for k in knots) or list(knots) != sorted(knots):
        raise fail("trajectory.knots must be increasing and strictly inside trajectory.boundary")
    time_scale = float(tr.get("time_scale", 10.0))
    if time_scale <= 0:
        raise fail("trajectory.time_scale must be > 0")

    re = section("random_effects")
    structure = re.get("structure", "factor")
    if structure not in ("factor", "full"):
        raise fail(f"random_effects.structure must be 'factor' or 'full', got {structure!r}")
    slopes = tuple(re.get("slopes", ["ct_score"]))
    loading_signs = re.get("loading_signs", "free")
    if loading_signs not in LOADING_SIGNS:
        raise fail(
            f"random_effects.loading_signs must be 'known' (each lab's loading signed as "
            f"bayesct.constants.LAB_DIRECTION or its declared direction) or 'free', got {loading_signs!r}"
        )
    if any(s not in MARKERS and not valid_lab_name(s) for s in slopes):
        raise fail(f"random_effects.slopes must name markers among {', '.join(MARKERS)} and declared labs")
    severity_law = re.get("severity_law", "normal")
    if severity_law not in SEVERITY_LAWS:
        raise fail(
            f"random_effects.severity_law must be one of {', '.join(SEVERITY_LAWS)}, got {severity_law!r}"
        )
    if severity_law != "normal" and structure != "factor":
        raise fail("random_effects.severity_law applies to the factor structure only")

    mo = section("mortality")
    mortality = bool(mo.get("enabled", family == "joint"))
    association = tuple(mo.get("association", ["value", "slope"]))
    if any(a not in _ASSOCIATIONS for a in association):
        raise fail(f"mortality.association must be a list drawn from {sorted(_ASSOCIATIONS)}")
    covariates = tuple(mo.get("covariates", []))
    scaling_raw = mo.get("scaling", {})
    scaling: dict[str, tuple[float, float]] = {}
    for cov, s in scaling_raw.items():
        try:
            scaling[cov] = (float(s["centre"]), float(s["scale"]))
        except (KeyError, TypeError, ValueError):
            raise fail(f"mortality.scaling.{cov} needs numeric 'centre' and 'scale'") from None
        if scaling[cov][1] <= 0:
            raise fail(f"mortality.scaling.{cov}.scale must be > 0")

    sampler = dict(section("sampler"))
    for key, value in sampler.items():
        if key in SAMPLER_NAMES:
            if not isinstance(value, dict):
                raise fail(f"[sampler.{key}] must be a table")
            settings, prefix = value, f"sampler.{key}."
        else:
            settings, prefix = {key: value}, "sampler."
        for k, v in settings.items():
            if k not in SAMPLER_KEYS:
                raise fail(
                    f"unknown setting {prefix}{k}: use {', '.join(SAMPLER_KEYS)}, "
                    f"or a table [sampler.NAME] for one of {', '.join(SAMPLER_NAMES)}"
                )
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise fail(f"{prefix}{k} must be a positive integer")

    priors: dict[str, Prior] = {}
    for pname, p in section("priors").items():
        if not isinstance(p, dict) or "dist" not in p:
            raise fail(f"priors.{pname} must be a table with a 'dist' key")
        dist = p["dist"]
        if dist not in _DISTS:
            raise fail(f"priors.{pname}: unknown distribution {dist!r}; use one of {sorted(_DISTS)}")
        params = {k: float(v) for k, v in p.items() if k not in ("dist", "marker_scaled")}
        priors[pname] = Prior(pname, dist, params, bool(p.get("marker_scaled", False)))
    if severity_law == "sinh_arcsinh" and "severity_skew" not in priors:
        raise fail('random_effects.severity_law = "sinh_arcsinh" needs a prior priors.severity_skew')
    if structure == "factor" and loading_signs == "known" and "loading" in priors:
        try:
            loading_magnitude_prior(priors["loading"])
        except SpecError as err:
            raise fail(str(err)) from None

    return ModelSpec(
        name=name,
        description=str(raw.get("description", "")),
        family=family,
        markers=markers,
        ct_likelihood=ct_lik,
        lab_likelihood=lab_lik,
        knots=knots,
        boundary=(boundary[0], boundary[1]),
        time_centre=float(tr.get("time_centre", 10.0)),
        time_scale=time_scale,
        by_group=bool(tr.get("by_group", False)),
        structure=structure,
        slopes=slopes,
        specific_intercepts=bool(re.get("specific_intercepts", True)),
        loading_signs=loading_signs,
        severity_law=severity_law,
        mortality=mortality,
        association=association,
        reference_day=float(mo.get("reference_day", 14.0)),
        covariates=covariates,
        covariate_scaling=scaling,
        sampler=sampler,
        priors=priors,
        raw=copy.deepcopy(raw),
        path=path,
    )


def loading_magnitude_prior(p: Prior) -> Prior:
    """The prior of ``|loading|`` that a declared ``loading`` prior means under known loading signs.

    ``Normal(0, s)`` becomes ``HalfNormal(s)`` and ``StudentT(nu, 0, s)`` becomes
    ``HalfStudentT(nu, s)`` (the law of ``|x|``); a HalfNormal, HalfStudentT or
    Exponential prior is the magnitude's prior as it stands. Anything else is refused.
    """
    if p.dist in _POSITIVE:
        return p
    if p.dist in _HALF_OF and p.params.get("mu", 0.0) == 0.0:
        params = {k: v for k, v in p.params.items() if k != "mu"}
        return Prior(p.name, _HALF_OF[p.dist], params, p.marker_scaled)
    raise SpecError(
        f"priors.{p.name}: with random_effects.loading_signs = 'known' it is read as the prior of "
        f"the loadings' magnitude, so it must be Normal or StudentT with mu = 0 (read as its "
        f"half-distribution) or one of {', '.join(sorted(_POSITIVE))}; got {p.describe().strip()}"
    )


def _dump_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer for spec dictionaries (tables, arrays, scalars, inline tables)."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        plain = {k: v for k, v in d.items() if not isinstance(v, dict) or _is_inline(v)}
        nested = {k: v for k, v in d.items() if isinstance(v, dict) and not _is_inline(v)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in plain.items())
        for k, v in nested.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines).lstrip() + "\n"


def _is_inline(d: dict[str, Any]) -> bool:
    # A prior or a scaling entry: a flat table of scalars.
    return all(not isinstance(v, dict) for v in d.values()) and ("dist" in d or "centre" in d)
