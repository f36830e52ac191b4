"""From a :class:`~bayesct.data.Cohort` and a :class:`ModelSpec` to model-ready arrays.

Everything the PyMC graph, the posterior predictive replication and the risk
queries need to agree on lives here once: marker transforms to the modelling
scale, the spline basis of the population curves, the time transform of the
random slopes, and the mortality covariate matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline

from bayesct.constants import CT, CT_MAX, CT_ZONES, DAY, DIED, PATIENT
from bayesct.data.cohort import Cohort
from bayesct.data.labs import LabSpec, lab_direction, lab_transform, marker_names
from bayesct.errors import DataValidationError, SpecError
from bayesct.modeling.spec import ModelSpec

SPLINE_DEGREE = 3
#: The dimension of the observed outcomes when some patient's outcome is unknown: the patients of
#: known outcome (``Design.outcome_dim``).
OUTCOME_DIM = "outcome_patient"


def to_model_scale(marker: str, values: np.ndarray, labs: Mapping[str, LabSpec] | None = None) -> np.ndarray:
    """Observed marker values on the scale the model works on.

    Labs: log; percentages: logit of the proportion (a lab's transform is
    :func:`~bayesct.data.labs.lab_transform`, given the declared ``labs``); CT score:
    empirical logit ``logit((y + 0.5) / 25)`` (used only for centring and scaling priors;
    the CT likelihood itself is on the counts).
    """
    v = np.asarray(values, dtype=float)
    if marker == CT:
        p = (v + 0.5) / (CT_MAX + 1.0)
        return np.log(p / (1.0 - p))
    if lab_transform(marker, labs) == "pct":
        p = v / 100.0
        return np.log(p / (1.0 - p))
    return np.log(v)


def from_model_scale(marker: str, eta: np.ndarray, labs: Mapping[str, LabSpec] | None = None) -> np.ndarray:
    """Inverse of :func:`to_model_scale` for labs (the CT score's mean is 24·logistic(eta))."""
    e = np.asarray(eta, dtype=float)
    if marker == CT:
        return CT_MAX / (1.0 + np.exp(-e))
    if lab_transform(marker, labs) == "pct":
        return 100.0 / (1.0 + np.exp(-e))
    return np.exp(e)


def _knot_vector(spec: ModelSpec) -> np.ndarray:
    """The clamped knot vector of the cubic B-spline basis."""
    lo, hi = spec.boundary
    return np.r_[[lo] * (SPLINE_DEGREE + 1), spec.knots, [hi] * (SPLINE_DEGREE + 1)]


def spline_basis(days: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Cubic B-spline basis of the population curves at ``days`` (rows) — constant beyond the boundary."""
    lo, hi = spec.boundary
    t = np.clip(np.asarray(days, dtype=float), lo, hi)
    knots = _knot_vector(spec)
    if t.size == 0:
        return np.zeros((0, n_basis(spec)))
    basis = BSpline.design_matrix(t, knots, SPLINE_DEGREE, extrapolate=False).toarray()
    return basis


def n_basis(spec: ModelSpec) -> int:
    return len(spec.knots) + SPLINE_DEGREE + 1


def linear_spline_coef(spec: ModelSpec) -> np.ndarray:
    """Coefficients ``c`` with ``spline_basis(t) @ c == time_transform(t)`` for t within the boundary.

    Cubic B-splines reproduce straight lines exactly: the coefficients are g at the
    Greville abscissae (knot averages).
    """
    knots = _knot_vector(spec)
    greville = np.array([knots[j + 1 : j + 1 + SPLINE_DEGREE].mean() for j in range(n_basis(spec))])
    return time_transform(greville, spec)


def time_transform(days: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """g(t) = (t - time_centre) / time_scale, the covariate of the random slopes."""
    return (np.asarray(days, dtype=float) - spec.time_centre) / spec.time_scale


@dataclass(frozen=True)
class MarkerData:
    """Observed values of the markers, long format (one row per observed value)."""

    patient: np.ndarray  # int index into Design.patient_ids
    marker: np.ndarray  # int index into Design.markers
    day: np.ndarray
    value: np.ndarray  # CT: counts; labs: modelling scale


@dataclass(frozen=True)
class Design:
    """Model-ready arrays of one cohort under one spec."""

    spec: ModelSpec
    patient_ids: np.ndarray
    markers: tuple[str, ...]
    ct: MarkerData
    labs: MarkerData
    marker_centre: np.ndarray  # per marker, modelling scale
    marker_scale: np.ndarray  # per marker, modelling scale (SD, floored)
    #: Per patient: 1.0 died, 0.0 survived, NaN outcome unknown (``Cohort.outcome_known``).
    died: np.ndarray
    covariate_names: tuple[str, ...]
    covariates: np.ndarray  # (patient, covariate), scaled
    covariate_centre: np.ndarray
    covariate_scale: np.ndarray
    #: ``ct_likelihood = "zone_sum"`` with the six zone columns in the data: per CT score its
    #: zone scores (n_scans, 6), a row of -1 where the scan's zones are not all given; else None.
    ct_zones: np.ndarray | None = None
    #: The cohort's declared labs (``Cohort.declared_labs``): their transforms and directions.
    declared_labs: Mapping[str, LabSpec] = field(default_factory=dict)

    @property
    def has_zones(self) -> bool:
        """Whether any CT score comes with its six zone scores (their likelihood replaces the total's)."""
        return self.ct_zones is not None and bool((self.ct_zones[:, 0] >= 0).any())

    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def outcome_known(self) -> np.ndarray:
        """Per patient, whether the outcome is known (``died`` not NaN): the patients the mortality
        likelihood and every death score run over."""
        return ~np.isnan(self.died)

    @property
    def known_patients(self) -> np.ndarray:
        """Indices of the patients of known outcome, in patient order."""
        return np.flatnonzero(self.outcome_known)

    @property
    def outcome_dim(self) -> str:
        """The dimension of the observed outcomes (``died_obs``): ``patient`` when every outcome is
        known, else :data:`OUTCOME_DIM` (the patients of known outcome)."""
        return "patient" if self.outcome_known.all() else OUTCOME_DIM

    @property
    def lab_names(self) -> tuple[str, ...]:
        return self.markers[1:]

    def coords(self) -> dict[str, list]:
        out: dict[str, list] = {
            "patient": [str(p) for p in self.patient_ids],
            "marker": list(self.markers),
            "lab": list(self.lab_names),
            "basis": list(range(n_basis(self.spec))),
            "covariate": list(self.covariate_names),
        }
        if self.outcome_dim != "patient":
            out[OUTCOME_DIM] = [str(p) for p in self.patient_ids[self.known_patients]]
        return out


#: Default centre and scale of the ``scan_logistic`` terms (``[mortality.scaling]`` overrides).
SCAN_TERM_SCALING: dict[str, tuple[float, float]] = {CT: (12.0, 6.0), DAY: (10.0, 10.0)}
#: The ``scan_logistic`` terms, in the order of its ``mort_beta``.
SCAN_TERMS: tuple[str, ...] = (CT, DAY)


def scan_term_scaling(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centres and scales of the ``scan_logistic`` terms (CT score, day), from the spec or the defaults."""
    pairs = [spec.covariate_scaling.get(t, SCAN_TERM_SCALING[t]) for t in SCAN_TERMS]
    return np.array([c for c, _ in pairs]), np.array([s for _, s in pairs])


def scan_terms(spec: ModelSpec, score: np.ndarray, day: np.ndarray) -> np.ndarray:
    """(n, 2) scaled terms of the ``scan_logistic`` log-odds for scans with ``score`` on ``day``."""
    centre, scale = scan_term_scaling(spec)
    x = np.column_stack([np.asarray(score, float), np.asarray(day, float)])
    return (x - centre) / scale


def scan_weights(patient: np.ndarray) -> np.ndarray:
    """Per scan, 1 / (its patient's number of scans): the weight of the scan's Bernoulli term in the
    ``scan_logistic`` pseudo-likelihood, so that each patient's outcome carries total weight one."""
    patient = np.asarray(patient, np.int64)
    counts = np.bincount(patient)
    return 1.0 / counts[patient]


def covariate_matrix(
    patients: pd.DataFrame,
    spec: ModelSpec,
    *,
    centre: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    source: str = "<DataFrame>",
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Mortality covariates: ``sex`` becomes the indicator ``male``; numbers are centred and scaled.

    Centre and scale come from ``mortality.scaling`` in the spec, else from the
    data (mean and SD), else from the given arrays (when predicting for new
    patients with a fitted model's constants).
    """
    names: list[str] = []
    cols: list[np.ndarray] = []
    cen: list[float] = []
    sca: list[float] = []
    for j, cov in enumerate(spec.covariates):
        if cov == "sex" and "sex" not in patients.columns and "male" in patients.columns:
            cov = "male"  # a 0/1 indicator given instead of sex
        if cov not in patients.columns:
            raise DataValidationError(
                f"the model '{spec.name}' needs the patient covariate '{cov}', which the data lack",
                file=source,
                column=cov,
            )
        raw = patients[cov]
        if raw.isna().any():
            pid = raw.index[raw.isna()][0]
            raise DataValidationError(
                f"patient {pid} has no value; the mortality covariates of model '{spec.name}' must be complete",
                file=source,
                column=cov,
            )
        if cov == "sex":
            x = (raw.astype(str) == "male").to_numpy(dtype=float)
            name, c, s = "male", 0.0, 1.0
        else:
            x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            if np.isnan(x).any():
                raise DataValidationError(f"covariate '{cov}' must be numeric", file=source, column=cov)
            name = cov
            if cov == "male":
                c, s = 0.0, 1.0
            elif cov in spec.covariate_scaling:
                c, s = spec.covariate_scaling[cov]
            elif centre is not None and scale is not None:
                c, s = float(centre[j]), float(scale[j])
            else:
                c, s = float(x.mean()), float(x.std()) or 1.0
        names.append(name)
        cols.append((x - c) / s)
        cen.append(c)
        sca.append(s)
    n = len(patients)
    mat = np.column_stack(cols) if cols else np.zeros((n, 0))
    return tuple(names), mat, np.asarray(cen), np.asarray(sca)


def build_design(cohort: Cohort, spec: ModelSpec) -> Design:
    """Arrays for the model of ``spec`` on ``cohort``; a clear error when the data cannot carry it."""
    present = cohort.markers
    declared = cohort.declared_labs
    if CT not in present:
        raise DataValidationError(
            "the data hold no CT score; every bayesct model needs one", file=cohort.source, column=CT
        )
    named = (*(spec.markers or ()), *spec.slopes)
    unknown = [m for m in dict.fromkeys(named) if m not in marker_names(declared)]
    if unknown:
        raise SpecError(
            f"model '{spec.name}' names {', '.join(map(repr, unknown))}: neither a marker bayesct knows "
            f"nor a declared lab (declare it: --lab {unknown[0]}:log, or a [labs] table)"
        )
    if spec.markers is None:
        markers = present
    else:
        missing = [m for m in spec.markers if m not in present]
        if missing:
            raise SpecError(f"model '{spec.name}' needs markers the data lack: {', '.join(missing)}")
        markers = tuple(m for m in present if m in spec.markers)
    if spec.structure == "full":
        bad = [s for s in spec.slopes if s not in markers]
        if bad:
            raise SpecError(f"random_effects.slopes names markers not modelled: {', '.join(bad)}")
    elif spec.family == "joint" and spec.loading_signs == "known":
        for m in markers[1:]:
            lab_direction(m, declared)  # a declared lab without a direction: a clear SpecError

    visits = cohort.visits
    pids = cohort.patient_ids.to_numpy()
    index = pd.Index(pids)
    pidx = index.get_indexer(visits[PATIENT])

    centre = np.zeros(len(markers))
    scale = np.ones(len(markers))
    lab_parts: list[tuple[np.ndarray, ...]] = []
    ct_data = None
    ct_zones = None
    for k, m in enumerate(markers):
        mask = visits[m].notna().to_numpy()
        vals = visits[m].to_numpy(dtype=float)[mask]
        z = to_model_scale(m, vals, declared)
        centre[k] = float(np.mean(z))
        scale[k] = float(max(np.std(z), 0.1))
        day = visits[DAY].to_numpy(dtype=float)[mask]
        if m == CT:
            ct_data = MarkerData(pidx[mask], np.zeros(mask.sum(), dtype=int), day, vals.astype(np.int64))
            if spec.ct_likelihood == "zone_sum" and all(z in visits for z in CT_ZONES):
                zones = visits[list(CT_ZONES)].to_numpy(dtype=float)[mask]
                complete = ~np.isnan(zones).any(axis=1)
                ct_zones = np.where(complete[:, None], np.nan_to_num(zones, nan=-1.0), -1.0).astype(np.int64)
        else:
            lab_parts.append((pidx[mask], np.full(mask.sum(), k), day, z))
    assert ct_data is not None  # CT presence checked above
    if lab_parts:
        labs = MarkerData(*(np.concatenate([p[i] for p in lab_parts]) for i in range(4)))
    else:
        labs = MarkerData(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0))

    died = cohort.patients[DIED].to_numpy(dtype=float)
    no_outcome = cohort.patient_ids[~cohort.outcome_known.to_numpy()]
    if spec.mortality and no_outcome.size == len(pids):
        raise DataValidationError(
            f"no patient's outcome is known ('{DIED}' is blank for all {len(pids)}): model "
            f"'{spec.name}' has a mortality part and nothing to fit it to; record the outcomes, or "
            "fit a spec without one ([mortality] enabled = false)",
            file=cohort.source,
            column=DIED,
        )
    if spec.by_group and no_outcome.size:
        shown = ", ".join(str(p) for p in no_outcome[:5]) + (", ..." if no_outcome.size > 5 else "")
        raise DataValidationError(
            f"model '{spec.name}' has population curves by outcome group, and {no_outcome.size} "
            f"patient(s) have no outcome yet (blank '{DIED}': {shown}), so no group; fit a model "
            "without outcome groups, or leave those patients out (Cohort.known_outcome())",
            file=cohort.source,
            column=DIED,
        )
    if spec.mortality:
        names, X, cc, cs = covariate_matrix(cohort.patients, spec, source=cohort.source)
    else:
        names, X, cc, cs = (), np.zeros((len(pids), 0)), np.zeros(0), np.zeros(0)
    return Design(
        spec=spec,
        patient_ids=np.asarray([str(p) for p in pids]),
        markers=tuple(markers),
        ct=ct_data,
        labs=labs,
        marker_centre=centre,
        marker_scale=scale,
        died=died,
        covariate_names=names,
        covariates=X,
        covariate_centre=cc,
        covariate_scale=cs,
        ct_zones=ct_zones,
        declared_labs=declared,
    )
