r"""Seeded simulator of serial CT scores, labs and mortality, with its true parameters in plain sight.

The generative model is the one bayesct's joint model fits (a shared latent
severity with marker loadings, marker-specific intercepts and a mortality
submodel), so that fits to simulated cohorts can be compared with the truth.

Model
-----
Days since symptom onset are ``t``; the time transform is
:math:`g(t) = (t - 10) / 10` (centred at day 10, per 10 days). For patient
:math:`i` and marker :math:`k` (``ct_score`` and the labs of
:data:`bayesct.constants.LABS`):

.. math::

    f_k(t) &= m_k + h_k \,(t / p_k)\, \exp(1 - t / p_k)
        \qquad\text{(population curve: rises from } m_k
        \text{, peaks at } m_k + h_k \text{ on day } p_k \text{, falls back)}\\
    (u_{i0}, u_{i1}) &\sim \mathrm{MvNormal}\bigl(0,\ \mathrm{diag}(s)\,R(\rho)\,\mathrm{diag}(s)\bigr),
        \quad s = (s_0, s_1)\\
    v_{ik} &\sim \mathrm{Normal}(0, \tau_k)\\
    \eta_{ik}(t) &= f_k(t) + \lambda_k\,(u_{i0} + u_{i1}\, g(t)) + v_{ik},
        \qquad \lambda_{\mathrm{ct}} = 1\\
    \mathrm{ct\_score} &\sim \mathrm{BetaBinomial}(24,\ \mu\phi,\ (1-\mu)\phi),
        \quad \mu = \mathrm{logit}^{-1}(\eta_{i,\mathrm{ct}})\\
    \log y &\sim \mathrm{Normal}(\eta_{ik}, \sigma_k) \quad\text{(positive labs)}\\
    \mathrm{logit}(y / 100) &\sim \mathrm{Normal}(\eta_{ik}, \sigma_k) \quad\text{(percentage labs)}\\
    \mathrm{logit}\,P(\mathrm{died}_i) &= \alpha + \beta_{\mathrm{age}}\,(\mathrm{age}_i - 55)/15
        + \beta_{\mathrm{male}}\,\mathrm{male}_i
        + \gamma_{\mathrm{value}}\,(u_{i0} + u_{i1}\,g(t_{\mathrm{ref}}) + v_{i,\mathrm{ct}})
        + \gamma_{\mathrm{slope}}\,u_{i1}

with :math:`t_{\mathrm{ref}} = 14`. The mortality association is the deviation
of the patient's latent CT trajectory from the population curve at the
reference day, plus the slope of the shared severity.

Why these values. Death depends mostly on *progression*
(:math:`\gamma_{\mathrm{slope}} = 3.5` against :math:`\gamma_{\mathrm{value}} = 0.3`),
and the shared severity fans out from symptom onset: with :math:`s_0 = 1.43`,
:math:`s_1 = 1.3`, :math:`\rho = 0.91` the severity at day 0,
:math:`u_{i0} - u_{i1}` (SD 0.59), is uncorrelated with the slope
:math:`u_{i1}` (:math:`\rho s_0 s_1 \approx s_1^2`). Patients therefore look alike
early and diverge later, which reproduces the paper's finding that CT scores do
not differ between survivors and nonsurvivors in days 0-5 but do from day 6 on
(Supp. S3), and keeps the true risk given one scan increasing in the score on
every day since onset. (The high :math:`\rho` is the price of centring time at
day 10 while the trajectories fan out from day 0.) The negative day coefficient
of the per-scan logistic regression (Table 3 note) comes out of the same model:
a given score is further above the population curve early than late. The very
large age effect (:math:`\beta_{\mathrm{age}} = 5.2` per 15 years) is what Table 1
demands: 43.7 vs 69.0 years between the groups. Lab loadings are modest and lab
noise large because the paper's Kendall taus of CT with NLR, lymphocytes and
neutrophil % are only 0.22-0.29.

The true default parameters (:class:`SimulationParams`, calibrated so that the
shipped default cohort matches the paper's published summaries; see
``benchmarks/calibrate_default_cohort.py``) are

==========  =============================================================
severity    s0 = 1.43, s1 = 1.3, rho = 0.91; CT precision phi = 60
mortality   alpha = -4.6, beta_age = 5.2, beta_male = 2.0,
            gamma_value = 0.3, gamma_slope = 3.5, t_ref = 14
==========  =============================================================

and per marker (curve m, h, p; loading lambda; intercept SD tau; noise SD sigma),
on the logit scale (CT, percentages) or the log scale (other labs):

================  =====  =====  ====  ======  =====  =====
marker            m      h      p     lambda  tau    sigma
================  =====  =====  ====  ======  =====  =====
ct_score          -2.6   2.3    11    1       0.25   --
nlr               0.87   0.15   10    0.2     0.3    0.7
lymphocyte_count  0.15   -0.1   10    -0.2    0.2    0.6
lymphocyte_pct    -1.1   -0.1   10    -0.22   0.25   0.75
neutrophil_pct    0.75   0.05   10    0.22    0.2    0.75
d_dimer           -1.53  0.6    12    0.48    0.35   0.7
ldh               5.15   0.35   11    0.28    0.15   0.4
esr               2.95   0.4    12    1.0     0.4    1.3
================  =====  =====  ====  ======  =====  =====

(The tables above are kept equal to the dataclass defaults by a test.)

Design
------
Each patient gets 1-4 CT visits (probabilities ``n_scans_probs``), the first on
day ``1 + floor(Gamma(first_visit_shape, first_visit_scale))`` and the next ones
``gap_min``-``gap_max`` days apart. Scans of nonsurvivors after day
``late_day`` are dropped with probability ``nonsurvivor_late_drop`` (severely
ill patients are scanned less, as the paper's limitations note), the first
scan always stays. Labs are drawn on CT days, each marker observed with its own
probability ``lab_obs_prob``; with probability ``lab_only_prob`` a patient with
two or more scans also has one lab-only visit between the first two scans.
The schedule depends only on the outcome and on time, never on unobserved
values, so missingness is ignorable for a joint model of markers and outcome.

Patient covariates: ``age`` (whole years stored as float, ``Normal(51, 17.5)`` clipped
to [18, 95]) and ``sex`` (``"female"``/``"male"`` as the input contract spells it,
male with probability 0.44; ``male_i`` is its 0/1 indicator) enter the mortality model;
the descriptive Table 1 columns (symptoms, comorbidities, ``duration``,
treatments) are drawn given the simulated outcome with the paper's
group-specific proportions and are not used by the outcome model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special, stats

from bayesct.constants import CT, CT_MAX, DAY, DIED, GENERATORS, LABS, MARKERS, PATIENT, PCT_LABS, PERIOD
from bayesct.data.cohort import Cohort, assign_period

if TYPE_CHECKING:
    from bayesct.data.zones import ZoneParams, ZoneSimulatedCohort

#: Centre (days) and scale (days) of the time transform g(t) = (t - centre) / scale.
TIME_CENTRE: float = 10.0
TIME_SCALE: float = 10.0
#: Centre and scale of age in the mortality model: (age - 55) / 15.
AGE_CENTRE: float = 55.0
AGE_SCALE: float = 15.0

#: Table 1 descriptive binary covariates: (survivor, nonsurvivor) proportions from the paper.
SYMPTOM_PROPORTIONS: dict[str, tuple[float, float]] = {
    "fever": (66 / 68, 25 / 25),
    "dry_cough": (59 / 68, 8 / 25),
    "fatigue": (45 / 68, 20 / 25),
    "expectoration": (17 / 68, 12 / 25),
    "diarrhea": (12 / 68, 4 / 25),
    "anorexia": (21 / 68, 17 / 25),
    "myalgia": (26 / 68, 9 / 25),
    "dyspnea": (12 / 68, 20 / 25),
}
#: Any comorbidity, by group (Table 1).
COMORBIDITY_PROPORTION: tuple[float, float] = (12 / 68, 16 / 25)
#: Specific comorbidities, by group (Table 1); drawn only among comorbid patients with the
#: conditional probability proportion / P(comorbidity), so they never contradict ``comorbidity``.
SPECIFIC_COMORBIDITY_PROPORTIONS: dict[str, tuple[float, float]] = {
    "diabetes": (6 / 68, 5 / 25),
    "hypertension": (0.0, 5 / 25),
    "cardiovascular_disease": (0.0, 4 / 25),
    "copd": (6 / 68, 2 / 25),
    "malignancy": (3 / 68, 1 / 25),
}
#: Treatments, by group (Table 1).
TREATMENT_PROPORTIONS: dict[str, tuple[float, float]] = {
    "antibiotics": (68 / 68, 3 / 25),
    "antiviral": (68 / 68, 3 / 25),
    "corticosteroids": (0.0, 21 / 25),
    "immunoglobulin": (68 / 68, 21 / 25),
    "hfnc_oxygen": (1 / 68, 23 / 25),
    "niv": (0.0, 11 / 25),
    "imv": (0.0, 5 / 25),
}
#: Duration (days from onset to discharge or death), mean and SD by group (Table 1).
DURATION_MOMENTS: tuple[tuple[float, float], tuple[float, float]] = ((21.8, 5.8), (21.2, 8.9))


def _marker_dict(values: Sequence[float]) -> dict[str, float]:
    return dict(zip(MARKERS, (float(v) for v in values), strict=True))


def _lab_dict(values: Sequence[float]) -> dict[str, float]:
    return dict(zip(LABS, (float(v) for v in values), strict=True))


@dataclass(frozen=True)
class SimulationParams:
    """Every true parameter of the simulator; the defaults are the calibrated default-cohort values.

    Per-marker parameters are dicts keyed by marker name (:data:`bayesct.constants.MARKERS`;
    ``sigma`` and ``lab_obs_prob`` by lab only). See the module docstring for the model.

    Attributes
    ----------
    m, h, p
        Population curve ``f_k(t) = m_k + h_k (t/p_k) exp(1 - t/p_k)`` on the linear-predictor
        scale (logit for CT and percentages, log for positive labs): value at onset, height of
        the peak above it (negative for a dip), day of the peak.
    s0, s1, rho
        SDs of the shared severity intercept (at day 10) and slope (per 10 days), and their
        correlation.
    lambda_
        Loadings of each marker on the shared severity; ``lambda_["ct_score"]`` is 1 (fixed, it
        identifies the scale).
    tau
        SD of each marker's own patient intercept ``v_ik``.
    sigma
        Residual SD of each lab on its transformed scale.
    phi
        Beta-binomial precision of the CT score.
    alpha, beta_age, beta_male, gamma_value, gamma_slope, t_ref
        Mortality submodel (age scaled as ``(age - 55) / 15``).
    age_mean, age_sd, age_min, age_max, p_male
        Covariate distribution.
    n_scans_probs
        Probabilities of 1, 2, 3, 4 planned CT visits.
    first_visit_min, first_visit_shape, first_visit_scale
        First visit day is ``first_visit_min + floor(Gamma(shape, scale))``.
    gap_min, gap_max
        Days between visits, uniform integers in ``[gap_min, gap_max]``.
    late_day, nonsurvivor_late_drop
        A nonsurvivor's scan after ``late_day`` is dropped with this probability.
    lab_obs_prob
        Probability that a lab is drawn on a given visit.
    lab_only_prob
        Probability that a patient with two or more scans has one lab-only visit in between.
    """

    m: dict[str, float] = field(
        default_factory=lambda: _marker_dict([-2.6, 0.87, 0.15, -1.1, 0.75, -1.53, 5.15, 2.95])
    )
    h: dict[str, float] = field(
        default_factory=lambda: _marker_dict([2.3, 0.15, -0.1, -0.1, 0.05, 0.6, 0.35, 0.4])
    )
    p: dict[str, float] = field(
        default_factory=lambda: _marker_dict([11.0, 10.0, 10.0, 10.0, 10.0, 12.0, 11.0, 12.0])
    )
    s0: float = 1.43
    s1: float = 1.3
    rho: float = 0.91
    lambda_: dict[str, float] = field(
        default_factory=lambda: _marker_dict([1.0, 0.2, -0.2, -0.22, 0.22, 0.48, 0.28, 1.0])
    )
    tau: dict[str, float] = field(
        default_factory=lambda: _marker_dict([0.25, 0.3, 0.2, 0.25, 0.2, 0.35, 0.15, 0.4])
    )
    sigma: dict[str, float] = field(default_factory=lambda: _lab_dict([0.7, 0.6, 0.75, 0.75, 0.7, 0.4, 1.3]))
    phi: float = 60.0
    alpha: float = -4.6
    beta_age: float = 5.2
    beta_male: float = 2.0
    gamma_value: float = 0.3
    gamma_slope: float = 3.5
    t_ref: float = 14.0
    age_mean: float = 51.0
    age_sd: float = 17.5
    age_min: float = 18.0
    age_max: float = 95.0
    p_male: float = 0.44
    n_scans_probs: tuple[float, float, float, float] = (0.30, 0.53, 0.13, 0.04)
    first_visit_min: float = 1.0
    first_visit_shape: float = 3.0
    first_visit_scale: float = 3.0
    gap_min: int = 4
    gap_max: int = 8
    late_day: float = 15.0
    nonsurvivor_late_drop: float = 0.1
    lab_obs_prob: dict[str, float] = field(
        default_factory=lambda: _lab_dict([0.97, 0.97, 0.97, 0.97, 0.8, 0.9, 0.65])
    )
    lab_only_prob: float = 0.15

    def __post_init__(self) -> None:
        for name in ("m", "h", "p", "lambda_", "tau"):
            missing = set(MARKERS) - set(getattr(self, name))
            if missing:
                raise ValueError(f"SimulationParams.{name} lacks markers {sorted(missing)}")
        for name in ("sigma", "lab_obs_prob"):
            missing = set(LABS) - set(getattr(self, name))
            if missing:
                raise ValueError(f"SimulationParams.{name} lacks labs {sorted(missing)}")
        if self.lambda_[CT] != 1.0:
            raise ValueError("lambda_['ct_score'] is fixed at 1 (it identifies the scale of the severity)")
        if not -1.0 < self.rho < 1.0:
            raise ValueError(f"rho must lie in (-1, 1), got {self.rho}")
        if min(self.s0, self.s1, self.phi, *self.sigma.values()) <= 0:
            raise ValueError("s0, s1, phi and sigma must be positive")
        if min(self.tau.values()) < 0:
            raise ValueError("tau must be non-negative (0: no marker-specific patient intercept)")
        if any(v <= 0 for v in self.p.values()):
            raise ValueError("peak days p must be positive")
        probs = np.asarray(self.n_scans_probs, dtype=float)
        if probs.shape != (4,) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ValueError("n_scans_probs must be 4 non-negative probabilities summing to 1")
        if not 1 <= self.gap_min <= self.gap_max:
            raise ValueError("need 1 <= gap_min <= gap_max")

    def as_dict(self) -> dict[str, Any]:
        """All parameters as a plain (deep-copied) dict."""
        return asdict(self)

    def replace(self, **changes: Any) -> SimulationParams:
        """A copy with some parameters changed; dict parameters are merged over the current ones."""
        return SimulationParams(**merge_changes(self, changes, tuples=("n_scans_probs",)))


def merge_changes(params: Any, changes: Mapping[str, Any], *, tuples: Sequence[str]) -> dict[str, Any]:
    """A parameter dataclass's fields with ``changes`` applied: dicts merged, ``tuples`` kept tuples."""
    current = asdict(params)
    for key, value in changes.items():
        if key not in current:
            raise TypeError(f"{type(params).__name__} has no parameter '{key}'")
        if isinstance(current[key], dict) and isinstance(value, Mapping):
            current[key] = {**current[key], **value}
        else:
            current[key] = value
    for key in tuples:
        current[key] = tuple(current[key])
    return current


# -- model pieces ------------------------------------------------------------------


def time_transform(day: np.ndarray | float) -> np.ndarray:
    """``g(t) = (t - 10) / 10``: days since onset, centred at day 10, per 10 days."""
    return (np.asarray(day, dtype=float) - TIME_CENTRE) / TIME_SCALE


def population_curve(params: SimulationParams, marker: str, day: np.ndarray | float) -> np.ndarray:
    """``f_k(t) = m_k + h_k (t/p_k) exp(1 - t/p_k)``, the population curve of one marker."""
    r = np.asarray(day, dtype=float) / params.p[marker]
    return params.m[marker] + params.h[marker] * r * np.exp(1.0 - r)


def _mortality_lp(
    params: SimulationParams,
    age: np.ndarray,
    male: np.ndarray,
    u0: np.ndarray,
    u1: np.ndarray,
    v_ct: np.ndarray,
) -> np.ndarray:
    value = u0 + u1 * time_transform(params.t_ref) + v_ct
    return (
        params.alpha
        + params.beta_age * (np.asarray(age, dtype=float) - AGE_CENTRE) / AGE_SCALE
        + params.beta_male * np.asarray(male, dtype=float)
        + params.gamma_value * value
        + params.gamma_slope * u1
    )


def _to_natural(marker: str, eta: np.ndarray) -> np.ndarray:
    """Map a lab's transformed value back to its natural scale."""
    if marker in PCT_LABS:
        return 100.0 * special.expit(eta)
    return np.exp(eta)


# -- the simulated cohort ----------------------------------------------------------


@dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort with the truth that generated it.

    Attributes
    ----------
    cohort
        The data, in the exact layout of :class:`bayesct.data.Cohort`.
    params
        The true parameters.
    effects
        Per patient (indexed by ``patient_id``): ``u0``, ``u1`` (shared severity) and
        ``v_<marker>`` for ``ct_score`` (always: it enters mortality) and every simulated lab.
    """

    cohort: Cohort
    params: SimulationParams
    effects: pd.DataFrame

    def true_linear_predictor(
        self, marker: str, patient_id: str, day: float | Sequence[float] | np.ndarray
    ) -> float | np.ndarray:
        """The true ``eta_ik(t)`` of one patient and marker (logit / log scale).

        Returns a float for a scalar ``day`` and an array otherwise.
        """
        column = f"v_{marker}"
        if column not in self.effects:
            raise KeyError(f"marker '{marker}' was not simulated in this cohort")
        row = self.effects.loc[patient_id]
        t = np.asarray(day, dtype=float)
        eta = (
            population_curve(self.params, marker, t)
            + self.params.lambda_[marker] * (row["u0"] + row["u1"] * time_transform(t))
            + row[column]
        )
        return float(eta) if eta.ndim == 0 else eta

    def true_death_probability(self) -> pd.Series:
        """Each patient's true probability of death given their effects, age and sex."""
        pat = self.cohort.patients
        eff = self.effects.loc[pat.index]
        lp = _mortality_lp(
            self.params,
            pat["age"].to_numpy(),
            (pat["sex"] == "male").to_numpy(dtype=float),
            eff["u0"].to_numpy(),
            eff["u1"].to_numpy(),
            eff[f"v_{CT}"].to_numpy(),
        )
        return pd.Series(special.expit(lp), index=pat.index, name="p_death")


def _patient_ids(n: int) -> np.ndarray:
    width = max(3, len(str(n)))
    return np.array([f"P{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _draw_binary(rng: np.random.Generator, died: np.ndarray, props: tuple[float, float]) -> np.ndarray:
    p = np.where(died == 1, props[1], props[0])
    return (rng.random(died.shape[0]) < p).astype(np.int64)


def _descriptive_covariates(rng: np.random.Generator, died: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, props in SYMPTOM_PROPORTIONS.items():
        out[name] = _draw_binary(rng, died, props)
    comorbid = _draw_binary(rng, died, COMORBIDITY_PROPORTION)
    out["comorbidity"] = comorbid
    for name, props in SPECIFIC_COMORBIDITY_PROPORTIONS.items():
        cond = (
            min(1.0, props[0] / COMORBIDITY_PROPORTION[0]),
            min(1.0, props[1] / COMORBIDITY_PROPORTION[1]),
        )
        out[name] = _draw_binary(rng, died, cond) * comorbid
    return out


def _treatments(rng: np.random.Generator, died: np.ndarray) -> dict[str, np.ndarray]:
    return {name: _draw_binary(rng, died, props) for name, props in TREATMENT_PROPORTIONS.items()}


def _check_markers(markers: Sequence[str] | None) -> tuple[str, ...]:
    if markers is None:
        return MARKERS
    if isinstance(markers, str):
        markers = [markers]
    unknown = [m for m in markers if m not in MARKERS]
    if unknown:
        raise ValueError(f"unknown marker(s) {unknown}; choose among {', '.join(MARKERS)}")
    if not markers:
        raise ValueError("markers must name at least one marker")
    return tuple(m for m in MARKERS if m in set(markers))


def assemble_cohort(
    rng: np.random.Generator,
    *,
    ids: np.ndarray,
    pidx: np.ndarray,
    day: np.ndarray,
    values: Mapping[str, np.ndarray],
    keep: Sequence[str],
    died: np.ndarray,
    age: np.ndarray,
    male: np.ndarray,
    last_day: np.ndarray,
    effect_cols: Mapping[str, np.ndarray],
    notes: tuple[str, ...],
    extra_visit_columns: Mapping[str, np.ndarray] | None = None,
) -> tuple[Cohort, pd.DataFrame]:
    """Draw the descriptive covariates and lay simulated visits out as a :class:`Cohort`.

    Shared by every generator: ``pidx`` and ``day`` index the visit rows (sorted by patient and
    day), ``values`` holds each marker's value per row (NaN where not measured), ``keep`` the
    markers to return. Rows left with no kept marker are dropped, and patients with no row.
    Returns the cohort and the true effects (``effect_cols``) of the patients kept.
    """
    descriptive = _descriptive_covariates(rng, died)
    dur_mean = np.where(died == 1, DURATION_MOMENTS[1][0], DURATION_MOMENTS[0][0])
    dur_sd = np.where(died == 1, DURATION_MOMENTS[1][1], DURATION_MOMENTS[0][1])
    duration = np.maximum(np.rint(rng.normal(dur_mean, dur_sd)), last_day + 1.0).astype(np.int64)
    treatments = _treatments(rng, died)

    row_keep = np.zeros(pidx.size, dtype=bool)
    for k in keep:
        row_keep |= ~np.isnan(values[k])
    visits = pd.DataFrame({PATIENT: pd.array(ids[pidx], dtype="str"), DAY: day})
    visits[PERIOD] = assign_period(day)
    for k in keep:
        visits[k] = values[k]
    for name, column in (extra_visit_columns or {}).items():
        visits[name] = column
    visits = visits.loc[row_keep].reset_index(drop=True)
    kept = np.unique(pidx[row_keep])
    index = pd.Index(pd.array(ids[kept], dtype="str"), name=PATIENT)
    sex = np.where(male == 1, "male", "female").astype(object)
    covariates = {
        "age": age.astype(float),
        "sex": sex,
        **descriptive,
        "duration": duration.astype(float),
        **treatments,
    }
    patients = pd.DataFrame({DIED: died[kept], **{c: x[kept] for c, x in covariates.items()}}, index=index)
    patients["sex"] = patients["sex"].astype("str")
    effects = pd.DataFrame({c: x[kept] for c, x in effect_cols.items()}, index=index)
    return Cohort(visits, patients, source="simulated", notes=notes), effects


def simulate_cohort(
    n_patients: int = 93,
    seed: int = 0,
    *,
    params: SimulationParams | ZoneParams | None = None,
    markers: Sequence[str] | None = None,
    generator: str = "joint",
    zone_columns: bool = False,
    unknown_outcome: int = 0,
) -> SimulatedCohort | ZoneSimulatedCohort:
    """Simulate a cohort from the joint model (see the module docstring) or another generator.

    Parameters
    ----------
    n_patients
        Number of patients.
    seed
        Seed of ``np.random.default_rng``; the same seed gives an identical cohort.
    params
        True parameters; default :class:`SimulationParams` (the calibrated default-cohort values).
    markers
        Markers to return (default all of :data:`bayesct.constants.MARKERS`). Every random draw is
        made for all markers whatever the subset, so a subset returns the same values of its
        markers as the full simulation with the same seed; visits left with no selected marker
        (lab-only visits when only ``ct_score`` is asked for) are dropped.
    generator
        ``"joint"`` (this module's model, the one bayesct's ``joint`` spec fits), or one that
        bayesct does not fit (:mod:`bayesct.data.zones`): ``"zones"`` (the CT score as six
        ordinal lung zones) or ``"skewed"`` (zones, a skewed level effect, and ESR apart from
        the shared severity). ``params`` must then be a :class:`~bayesct.data.zones.ZoneParams`.
    zone_columns
        With a zone generator, also write the six zone scores on each scan row.
    unknown_outcome
        Patients whose outcome is blanked (``died`` NaN: still in hospital), chosen at random
        with ``seed`` from a stream of their own (:func:`blank_outcomes`), so that every other
        value is the one the same seed gives without them; noted in ``cohort.notes``.

    Returns
    -------
    SimulatedCohort or ZoneSimulatedCohort
        The cohort (``source="simulated"``), the parameters and the true effects.

    Examples
    --------
    >>> import bayesct as bc
    >>> sim = bc.simulate_cohort(200, seed=1)
    >>> sim.cohort.n_patients
    200
    >>> zones = bc.simulate_cohort(200, seed=1, generator="zones", zone_columns=True)  # doctest: +SKIP
    >>> bc.simulate_cohort(30, seed=1, unknown_outcome=2).cohort.n_outcome_unknown
    2
    """
    if not isinstance(unknown_outcome, int | np.integer) or unknown_outcome < 0:
        raise ValueError(f"unknown_outcome must be a whole number >= 0, got {unknown_outcome!r}")
    sim: SimulatedCohort | ZoneSimulatedCohort
    if generator != "joint" and generator in GENERATORS:
        from bayesct.data.zones import ZoneParams, simulate_zone_cohort

        if params is not None and not isinstance(params, ZoneParams):
            raise TypeError(f"generator '{generator}' takes ZoneParams, not {type(params).__name__}")
        sim = simulate_zone_cohort(
            n_patients, seed, generator=generator, params=params, markers=markers, zone_columns=zone_columns
        )
    else:
        sim = _simulate_joint(
            n_patients, seed, params=params, markers=markers, generator=generator, zone_columns=zone_columns
        )
    if unknown_outcome:
        sim = replace(sim, cohort=blank_outcomes(sim.cohort, int(unknown_outcome), seed=seed))
    return sim


#: The seed-sequence key of the stream that picks the patients :func:`blank_outcomes` blanks.
_UNKNOWN_OUTCOME_STREAM = 7919


def blank_outcomes(cohort: Cohort, k: int, *, seed: int = 0) -> Cohort:
    """``cohort`` with the outcome of ``k`` patients blanked (``died`` NaN: not known yet), the
    patients chosen at random with ``seed`` (a stream of its own), the note added to its notes."""
    n = cohort.n_patients
    if not 0 <= k <= n:
        raise ValueError(f"cannot blank the outcome of {k} patients of a cohort of {n}")
    rng = np.random.default_rng([int(seed), _UNKNOWN_OUTCOME_STREAM])
    chosen = np.sort(rng.choice(n, size=k, replace=False))
    died = cohort.patients[DIED].to_numpy(dtype=float).copy()
    died[chosen] = np.nan
    out = cohort.with_values({DIED: died})
    note = out.outcome_note
    return replace(out, notes=(*cohort.notes, note) if note else cohort.notes)


def _simulate_joint(
    n_patients: int,
    seed: int,
    *,
    params: SimulationParams | ZoneParams | None,
    markers: Sequence[str] | None,
    generator: str,
    zone_columns: bool,
) -> SimulatedCohort:
    """The joint generator of :func:`simulate_cohort`."""
    if generator != "joint":
        raise ValueError(f"unknown generator '{generator}'; choose among {', '.join(GENERATORS)}")
    if zone_columns:
        raise ValueError("zone_columns needs a zone generator ('zones' or 'skewed')")
    if not isinstance(params, SimulationParams | None):
        raise TypeError(f"generator 'joint' takes SimulationParams, not {type(params).__name__}")
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    params = params or SimulationParams()
    keep = _check_markers(markers)
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    ids = _patient_ids(n)

    # -- patients: covariates, random effects, outcome --------------------------
    age = np.rint(np.clip(rng.normal(params.age_mean, params.age_sd, n), params.age_min, params.age_max))
    age = age.astype(np.int64)
    male = (rng.random(n) < params.p_male).astype(np.int64)
    z = rng.standard_normal((n, 2))
    u0 = params.s0 * z[:, 0]
    u1 = params.s1 * (params.rho * z[:, 0] + np.sqrt(1.0 - params.rho**2) * z[:, 1])
    v = {k: params.tau[k] * rng.standard_normal(n) for k in MARKERS}
    lp = _mortality_lp(params, age, male, u0, u1, v[CT])
    died = (rng.random(n) < special.expit(lp)).astype(np.int64)

    # -- design: CT visits, nonsurvivor late drop-out, lab-only visits -----------
    n_planned = rng.choice(4, size=n, p=np.asarray(params.n_scans_probs)) + 1
    first = params.first_visit_min + np.floor(
        rng.gamma(params.first_visit_shape, params.first_visit_scale, n)
    )
    gaps = rng.integers(params.gap_min, params.gap_max + 1, size=(n, 3))
    days = first[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    slot = np.arange(4)[None, :]
    is_scan = slot < n_planned[:, None]
    dropped = (
        (died[:, None] == 1)
        & (days > params.late_day)
        & (slot > 0)
        & (rng.random((n, 4)) < params.nonsurvivor_late_drop)
    )
    is_scan &= ~dropped
    n_scan_kept = is_scan.sum(axis=1)
    # a lab-only visit halfway between the first two scans (gaps >= 2 days keep it distinct)
    has_lab_only = (rng.random(n) < params.lab_only_prob) & is_scan[:, 1] & (gaps[:, 0] >= 2)
    lab_only_day = first + np.floor(gaps[:, 0] / 2.0)

    pi_scan, slot_scan = np.nonzero(is_scan)
    pi_lab = np.flatnonzero(has_lab_only)
    pidx = np.concatenate([pi_scan, pi_lab])
    day = np.concatenate([days[pi_scan, slot_scan], lab_only_day[pi_lab]])
    ct_visit = np.concatenate([np.ones(pi_scan.size, bool), np.zeros(pi_lab.size, bool)])
    order = np.lexsort((day, pidx))
    pidx, day, ct_visit = pidx[order], day[order], ct_visit[order]
    n_rows = pidx.size

    # -- marker values ----------------------------------------------------------
    g = time_transform(day)
    shared = u0[pidx] + u1[pidx] * g
    values: dict[str, np.ndarray] = {}
    eta_ct = population_curve(params, CT, day) + shared + v[CT][pidx]
    mu = _ct_mean(eta_ct)
    prob = rng.beta(mu * params.phi, (1.0 - mu) * params.phi)
    ct = rng.binomial(CT_MAX, prob).astype(float)
    values[CT] = np.where(ct_visit, ct, np.nan)
    for k in LABS:
        eta = population_curve(params, k, day) + params.lambda_[k] * shared + v[k][pidx]
        draw = eta + params.sigma[k] * rng.standard_normal(n_rows)
        observed = rng.random(n_rows) < params.lab_obs_prob[k]
        values[k] = np.where(observed, _to_natural(k, draw), np.nan)

    # -- patient-level descriptive covariates (drawn after everything above) -----
    last_day = np.max(np.where(is_scan, days, -np.inf), axis=1)
    effect_cols = {"u0": u0, "u1": u1, **{f"v_{k}": v[k] for k in MARKERS if k == CT or k in keep}}
    notes = (f"simulated: {n} patients, seed {seed}, {int(n_scan_kept.sum())} CT scans",)
    cohort, effects = assemble_cohort(
        rng,
        ids=ids,
        pidx=pidx,
        day=day,
        values=values,
        keep=keep,
        died=died,
        age=age,
        male=male,
        last_day=last_day,
        effect_cols=effect_cols,
        notes=notes,
    )
    return SimulatedCohort(cohort=cohort, params=params, effects=effects)


# -- the true risk of a new patient given one scan -------------------------------


_RISK_CHUNK = 32


def _ct_mean(eta: np.ndarray) -> np.ndarray:
    """``logit^-1(eta)`` kept inside (0, 1) so the beta-binomial shape parameters stay positive."""
    return np.clip(special.expit(eta), 1e-12, 1.0 - 1e-12)


def _ct_loglik(params: SimulationParams, score: np.ndarray, eta: np.ndarray) -> np.ndarray:
    mu = _ct_mean(eta)
    return stats.betabinom.logpmf(score, CT_MAX, mu * params.phi, (1.0 - mu) * params.phi)


def population_risk(
    params: SimulationParams,
    ct_score: float | np.ndarray,
    day: float | np.ndarray,
    age: float | np.ndarray,
    male: int | np.ndarray,
    n_mc: int = 2001,
) -> float | np.ndarray:
    r"""True ``P(death | one CT score s on day d, age, sex)`` of a new patient.

    A new patient's random effects are unknown; given one scan they are updated by it, so

    .. math::

        P(\mathrm{died} \mid s, d, x) =
        \frac{\int \mathrm{logit}^{-1}(\alpha + x'\beta + w)\, p(s \mid e)\, p(e, w)\, de\, dw}
             {\int p(s \mid e)\, p(e)\, de}

    where :math:`e = u_0 + u_1 g(d) + v_{\mathrm{ct}}` is the only combination of the random
    effects the scan depends on (through :math:`\eta = f_{\mathrm{ct}}(d) + e`) and
    :math:`w = \gamma_{\mathrm{value}}(u_0 + u_1 g(t_{\mathrm{ref}}) + v_{\mathrm{ct}})
    + \gamma_{\mathrm{slope}} u_1` the only one mortality depends on. :math:`(e, w)` is
    bivariate normal with covariance fixed by ``s0, s1, rho, tau_ct``, so the integral is
    two-dimensional and computed deterministically: the outer integral over :math:`e` on a grid
    of ``n_mc`` equally spaced points over +-9 SD (trapezoid rule; the integrand is smooth and
    negligible beyond), the inner expectation over :math:`w \mid e` (normal) by 40-point
    Gauss-Hermite quadrature. The error is far below 1e-6; the test checks it against brute-force
    Monte Carlo over simulated new patients.

    Parameters
    ----------
    params
        The true parameters.
    ct_score, day, age, male
        The scan (integer score 0-24, days since onset) and the patient's covariates; arrays
        broadcast against each other.
    n_mc
        Number of grid points of the outer integral over the random effects.

    Returns
    -------
    float or numpy.ndarray
        The probability of death (a float when every input is a scalar).
    """
    s, d, a, mle = np.broadcast_arrays(
        np.asarray(ct_score, dtype=float),
        np.asarray(day, dtype=float),
        np.asarray(age, dtype=float),
        np.asarray(male, dtype=float),
    )
    shape = s.shape
    s, d, a, mle = (x.reshape(-1, 1) for x in (s, d, a, mle))  # (N, 1) against the grid axis
    if np.any((s < 0) | (s > CT_MAX) | (s != np.round(s))):
        raise ValueError(f"ct_score must be an integer in 0-{CT_MAX}")
    if n_mc < 101:
        raise ValueError("n_mc must be at least 101 grid points")
    s0, s1, tau = params.s0, params.s1, params.tau[CT]
    c01 = params.rho * s0 * s1
    # e = u0 + g_d u1 + v_ct   and   w = gv u0 + (gv g_ref + gs) u1 + gv v_ct
    g_d = time_transform(d)
    gv = params.gamma_value
    b_w = gv * float(time_transform(params.t_ref)) + params.gamma_slope
    var_e = s0**2 + g_d**2 * s1**2 + 2 * g_d * c01 + tau**2
    var_w = gv**2 * s0**2 + b_w**2 * s1**2 + 2 * gv * b_w * c01 + gv**2 * tau**2
    cov_ew = gv * s0**2 + g_d * b_w * s1**2 + (b_w + gv * g_d) * c01 + gv * tau**2
    sd_e = np.sqrt(var_e)
    sd_w_given_e = np.sqrt(np.maximum(var_w - cov_ew**2 / var_e, 0.0))

    nodes, gh_weights = np.polynomial.hermite_e.hermegauss(40)
    gh_weights = gh_weights / gh_weights.sum()
    base = params.alpha + params.beta_age * (a - AGE_CENTRE) / AGE_SCALE + params.beta_male * mle
    z = np.linspace(-9.0, 9.0, int(n_mc))[None, :]  # e standardised, (1, n_mc)
    risk = np.empty(s.shape[0])
    for lo in range(0, s.shape[0], _RISK_CHUNK):  # bounded memory: chunk x n_mc x 40 floats
        sl = slice(lo, lo + _RISK_CHUNK)
        e = z * sd_e[sl]  # (chunk, n_mc)
        log_w = -0.5 * z**2 + _ct_loglik(params, s[sl], population_curve(params, CT, d[sl]) + e)
        weight = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        weight /= weight.sum(axis=1, keepdims=True)
        w = (cov_ew[sl] / var_e[sl] * e)[..., None] + sd_w_given_e[sl][..., None] * nodes
        p_given_e = special.expit(base[sl][..., None] + w) @ gh_weights  # (chunk, n_mc)
        risk[sl] = (weight * p_given_e).sum(axis=1)
    out = risk.reshape(shape)
    return float(out) if out.ndim == 0 else out
