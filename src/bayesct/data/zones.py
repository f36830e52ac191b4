r"""Generators that are *not* bayesct's model: the CT score as six ordinal lung zones.

bayesct's own simulator (:mod:`bayesct.data.simulate`) draws cohorts from the very model
that ``joint`` fits, so recovery and coverage on its cohorts cannot show a misspecified
model. The generators here tell another story, written from the paper's scoring system
(six lung zones, each scored 0-4, summed to 0-24), with parameters of their own.

Model (``generator="zones"``)
-----------------------------
Days since onset are ``t``; :math:`g(t) = (t - 10) / 10` and
:math:`b(t) = (t / p)\exp(1 - t / p)` (a hump that peaks at 1 on day ``p``). Patient
:math:`i` has the latent severity

.. math::

    S_i(t) &= c_0 + c_1\, b(t) + u_{i0} + u_{i1}\, g(t),
        \qquad (u_{i0}, u_{i1}) = (s_0 z_0,\ s_1(\rho z_0 + \sqrt{1-\rho^2}\, z_1))\\
    P(Y_{iz}(t) \ge j) &= \mathrm{logit}^{-1}\bigl(S_i(t) + \delta_z - \kappa_j\bigr),
        \quad j = 1..4,\ z = 1..6 \quad\text{(zone scores, independent given } S\text{)}\\
    \mathrm{ct\_score} &= \textstyle\sum_z Y_{iz}\\
    \log y,\ \mathrm{logit}(y/100) &\sim \mathrm{Normal}(a_k + b_k S_i(t),\ \sigma_k)
        \quad\text{(labs: no patient effect of their own)}\\
    \mathrm{logit}\, P(\mathrm{died}_i) &= \alpha + \beta_{\mathrm{age}}(\mathrm{age}_i - 55)/15
        + \beta_{\mathrm{male}}\,\mathrm{male}_i + \gamma_0 u_{i0} + \gamma_1 u_{i1}

with :math:`z_0, z_1` independent standard normal. Unlike ``joint``: the CT score is a sum
of ordinal zones (not beta-binomial), the labs have no patient intercepts of their own, and
death depends on the level and slope of the severity, not on a value at a reference day.

Model (``generator="skewed"``)
------------------------------
The zones model with two more departures: the level's standardised effect :math:`z_0` is
skewed (a standardised Gamma(2) variable: mean 0, SD 1, skewness 1.41), and ESR does not
follow the shared severity (``b_esr = 0``) but carries a patient effect of its own,
:math:`N(0, \tau_{\mathrm{esr}})`, unrelated to death.

Design: 1-4 CT visits (``n_scans_probs``), the first on a day drawn uniformly from
``first_day``, the next ones ``gap`` days apart; every lab is drawn on each CT visit with
probability ``lab_obs_prob``. The schedule ignores every unobserved value.

True risk
---------
:func:`true_risk` gives :math:`P(\mathrm{died} \mid \text{a history of scans and labs},
\mathrm{age}, \mathrm{sex})` by integrating over :math:`(z_0, z_1)` on a tensor grid
(trapezoid rule over +-8 SD, 121 x 121 points; the Gamma(2) density on its own support; within 1e-5 of a 361 x 361 grid),
with the CT total's likelihood the exact convolution of the six zone pmfs
(:func:`bayesct.likelihoods.zone_sum_loglik`). The test checks it against Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from bayesct.constants import CT, CT_ZONES, DAY, GENERATORS, LABS, N_ZONES, PCT_LABS, ZONE_MAX
from bayesct.data.cohort import Cohort
from bayesct.data.simulate import (
    AGE_CENTRE,
    AGE_SCALE,
    TIME_CENTRE,
    TIME_SCALE,
    _check_markers,
    _patient_ids,
    _to_natural,
    assemble_cohort,
    merge_changes,
)
from bayesct.likelihoods import zone_sum_loglik

#: The generators of this module.
ZONE_GENERATORS: tuple[str, ...] = tuple(g for g in GENERATORS if g != "joint")
#: Shape of the Gamma variable behind the skewed level effect (skewness 2 / sqrt(shape)).
SKEW_SHAPE: float = 2.0


def _lab_values(values: Sequence[float]) -> dict[str, float]:
    return dict(zip(LABS, (float(v) for v in values), strict=True))


@dataclass(frozen=True)
class ZoneParams:
    """True parameters of the zone generators (see the module docstring).

    Attributes
    ----------
    c0, c1, peak_day
        Population severity ``c0 + c1 b(t)``, ``b`` a hump peaking at 1 on ``peak_day``.
    s0, s1, rho
        SDs of the level (at day 10) and slope (per 10 days) effects and their correlation.
    cutpoints
        The four zone cut-points ``kappa_1 < ... < kappa_4``.
    zone_offsets
        One offset per zone (:data:`bayesct.constants.CT_ZONES` order).
    lab_intercept, lab_slope, lab_sd
        Each lab's ``a_k``, ``b_k`` and ``sigma_k`` on its transformed scale.
    esr_own_sd
        SD of ESR's own patient effect (0 in ``zones``; ``skewed`` sets it).
    skewed
        Whether the level effect is a standardised Gamma(2) variable rather than normal.
    alpha, beta_age, beta_male, gamma0, gamma1
        Mortality submodel.
    age_mean, age_sd, age_min, age_max, p_male
        Covariates.
    n_scans_probs, first_day, gap, lab_obs_prob
        Design.
    """

    c0: float = -1.2
    c1: float = 2.0
    peak_day: float = 9.0
    s0: float = 1.0
    s1: float = 0.8
    rho: float = 0.5
    cutpoints: tuple[float, float, float, float] = (-0.5, 1.0, 2.5, 4.0)
    zone_offsets: tuple[float, ...] = (-0.4, 0.3, 0.5, -0.6, 0.2, 0.4)
    lab_intercept: dict[str, float] = field(
        default_factory=lambda: _lab_values([1.5, 0.0, -1.5, 1.2, 0.0, 5.4, 3.3])
    )
    lab_slope: dict[str, float] = field(
        default_factory=lambda: _lab_values([0.45, -0.25, -0.35, 0.35, 0.6, 0.25, 0.3])
    )
    lab_sd: dict[str, float] = field(
        default_factory=lambda: _lab_values([0.6, 0.5, 0.6, 0.6, 0.8, 0.35, 0.7])
    )
    esr_own_sd: float = 0.0
    skewed: bool = False
    alpha: float = -1.6
    beta_age: float = 1.8
    beta_male: float = 0.6
    gamma0: float = 1.2
    gamma1: float = 1.0
    age_mean: float = 58.0
    age_sd: float = 15.0
    age_min: float = 18.0
    age_max: float = 95.0
    p_male: float = 0.55
    n_scans_probs: tuple[float, float, float, float] = (0.25, 0.35, 0.25, 0.15)
    first_day: tuple[int, int] = (1, 9)
    gap: tuple[int, int] = (3, 7)
    lab_obs_prob: float = 0.9

    def __post_init__(self) -> None:
        if len(self.zone_offsets) != N_ZONES:
            raise ValueError(f"zone_offsets needs {N_ZONES} values, one per zone")
        if len(self.cutpoints) != ZONE_MAX or np.any(np.diff(self.cutpoints) <= 0):
            raise ValueError(f"cutpoints must be {ZONE_MAX} increasing values")
        for name in ("lab_intercept", "lab_slope", "lab_sd"):
            missing = set(LABS) - set(getattr(self, name))
            if missing:
                raise ValueError(f"ZoneParams.{name} lacks labs {sorted(missing)}")
        if not -1.0 < self.rho < 1.0:
            raise ValueError(f"rho must lie in (-1, 1), got {self.rho}")
        if min(self.s0, self.s1, *self.lab_sd.values()) <= 0 or self.esr_own_sd < 0:
            raise ValueError("s0, s1 and lab_sd must be positive, esr_own_sd non-negative")
        probs = np.asarray(self.n_scans_probs, dtype=float)
        if probs.shape != (4,) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ValueError("n_scans_probs must be 4 non-negative probabilities summing to 1")

    @classmethod
    def for_generator(cls, generator: str, **changes: Any) -> ZoneParams:
        """The parameters of ``"zones"`` or ``"skewed"`` (ESR's own effect, skewed level)."""
        if generator not in ZONE_GENERATORS:
            raise ValueError(
                f"unknown zone generator '{generator}'; choose among {', '.join(ZONE_GENERATORS)}"
            )
        base = cls()
        if generator == "skewed":
            base = base.replace(skewed=True, esr_own_sd=0.5, lab_slope={"esr": 0.0})
        return base.replace(**changes) if changes else base

    def replace(self, **changes: Any) -> ZoneParams:
        """A copy with some parameters changed; dict parameters are merged over the current ones."""
        return ZoneParams(
            **merge_changes(
                self, changes, tuples=("cutpoints", "zone_offsets", "n_scans_probs", "first_day", "gap")
            )
        )


def _g(day: np.ndarray) -> np.ndarray:
    return (np.asarray(day, dtype=float) - TIME_CENTRE) / TIME_SCALE


def _population(params: ZoneParams, day: np.ndarray) -> np.ndarray:
    x = np.asarray(day, dtype=float) / params.peak_day
    return params.c0 + params.c1 * x * np.exp(1.0 - x)


def _effects(params: ZoneParams, z0: np.ndarray, z1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u0, u1) from the standardised effects."""
    return params.s0 * z0, params.s1 * (params.rho * z0 + np.sqrt(1.0 - params.rho**2) * z1)


def _draw_z0(params: ZoneParams, rng: np.random.Generator, n: int) -> np.ndarray:
    if params.skewed:
        return (rng.gamma(SKEW_SHAPE, 1.0, n) - SKEW_SHAPE) / np.sqrt(SKEW_SHAPE)
    return rng.standard_normal(n)


def _to_model_scale(lab: str, y: np.ndarray) -> np.ndarray:
    return special.logit(y / 100.0) if lab in PCT_LABS else np.log(y)


def _mortality_lp(
    params: ZoneParams, age: np.ndarray, male: np.ndarray, u0: np.ndarray, u1: np.ndarray
) -> np.ndarray:
    return (
        params.alpha
        + params.beta_age * (np.asarray(age, dtype=float) - AGE_CENTRE) / AGE_SCALE
        + params.beta_male * np.asarray(male, dtype=float)
        + params.gamma0 * u0
        + params.gamma1 * u1
    )


@dataclass(frozen=True)
class ZoneSimulatedCohort:
    """A cohort from a zone generator with the truth that generated it.

    Attributes
    ----------
    cohort
        The data, in the layout of :class:`bayesct.data.Cohort`.
    generator
        ``"zones"`` or ``"skewed"``.
    params
        The true parameters.
    effects
        Per patient: ``z0``, ``z1`` (standardised), ``u0``, ``u1`` and, for ``skewed``, ``v_esr``.
    """

    cohort: Cohort
    generator: str
    params: ZoneParams
    effects: pd.DataFrame

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
        )
        return pd.Series(special.expit(np.asarray(lp)), index=pat.index, name="p_death")


def simulate_zone_cohort(
    n_patients: int,
    seed: int,
    *,
    generator: str = "zones",
    params: ZoneParams | None = None,
    markers: Sequence[str] | None = None,
    zone_columns: bool = False,
) -> ZoneSimulatedCohort:
    """Simulate a cohort from a zone generator (see the module docstring).

    Parameters
    ----------
    n_patients, seed
        Cohort size and the seed of ``np.random.default_rng``.
    generator
        ``"zones"`` or ``"skewed"``; ignored when ``params`` is given (its ``skewed`` and
        ``esr_own_sd`` say which).
    params
        True parameters (default :meth:`ZoneParams.for_generator`).
    markers
        Markers to return (default all); every draw is made for all markers.
    zone_columns
        Also write the six zone scores (:data:`bayesct.constants.CT_ZONES`) on each scan row.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    params = params or ZoneParams.for_generator(generator)
    keep = _check_markers(markers)
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    ids = _patient_ids(n)

    age = np.rint(np.clip(rng.normal(params.age_mean, params.age_sd, n), params.age_min, params.age_max))
    age = age.astype(np.int64)
    male = (rng.random(n) < params.p_male).astype(np.int64)
    z0 = _draw_z0(params, rng, n)
    z1 = rng.standard_normal(n)
    u0, u1 = _effects(params, z0, z1)
    v_esr = params.esr_own_sd * rng.standard_normal(n)
    died = (rng.random(n) < special.expit(_mortality_lp(params, age, male, u0, u1))).astype(np.int64)

    n_scans = rng.choice(4, size=n, p=np.asarray(params.n_scans_probs)) + 1
    first = rng.integers(params.first_day[0], params.first_day[1] + 1, size=n)
    gaps = rng.integers(params.gap[0], params.gap[1] + 1, size=(n, 3))
    days = first[:, None] + np.concatenate(
        [np.zeros((n, 1), dtype=np.int64), np.cumsum(gaps, axis=1)], axis=1
    )
    pidx, slot = np.nonzero(np.arange(4)[None, :] < n_scans[:, None])
    day = days[pidx, slot].astype(float)
    n_rows = pidx.size

    severity = _population(params, day) + u0[pidx] + u1[pidx] * _g(day)
    p_ge = special.expit(
        severity[:, None, None]
        + np.asarray(params.zone_offsets)[None, :, None]
        - np.asarray(params.cutpoints)[None, None, :]
    )  # (rows, zones, 4): P(Y >= j)
    zones = (rng.random((n_rows, N_ZONES))[..., None] < p_ge).sum(axis=2)
    values: dict[str, np.ndarray] = {CT: zones.sum(axis=1).astype(float)}
    for k in LABS:
        mean = params.lab_intercept[k] + params.lab_slope[k] * severity + (v_esr[pidx] if k == "esr" else 0.0)
        draw = mean + params.lab_sd[k] * rng.standard_normal(n_rows)
        observed = rng.random(n_rows) < params.lab_obs_prob
        values[k] = np.where(observed, _to_natural(k, draw), np.nan)

    last_day = days[np.arange(n), n_scans - 1].astype(float)
    effect_cols = {"z0": z0, "z1": z1, "u0": u0, "u1": u1}
    if params.esr_own_sd > 0:
        effect_cols["v_esr"] = v_esr
    extra = {name: zones[:, j].astype(float) for j, name in enumerate(CT_ZONES)} if zone_columns else None
    kind = "skewed" if params.skewed else "zones"
    notes = (f"simulated ({kind} generator): {n} patients, seed {seed}, {n_rows} CT scans",)
    cohort, effects = assemble_cohort(
        rng,
        ids=ids,
        pidx=pidx,
        day=day,
        values=values,
        keep=keep,
        died=died,
        age=age.astype(float),
        male=male,
        last_day=last_day,
        effect_cols=effect_cols,
        notes=notes,
        extra_visit_columns=extra,
    )
    return ZoneSimulatedCohort(cohort=cohort, generator=kind, params=params, effects=effects)


# -- the exact true risk given a history -------------------------------------------------

#: Points per axis of the integration grid over the standardised effects.
GRID_POINTS: int = 121


def _z_grid(params: ZoneParams, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid nodes (z0, z1) flattened, and their log quadrature weights (density x trapezoid)."""
    z1 = np.linspace(-8.0, 8.0, n_points)
    if params.skewed:
        lo = -np.sqrt(SKEW_SHAPE)
        z0 = np.linspace(lo, lo + 16.0, n_points)[1:]  # the density is 0 at the edge of its support
        log_p0 = stats.gamma.logpdf(z0 * np.sqrt(SKEW_SHAPE) + SKEW_SHAPE, SKEW_SHAPE)
    else:
        z0 = z1.copy()
        log_p0 = stats.norm.logpdf(z0)
    log_p1 = stats.norm.logpdf(z1)
    g0, g1 = np.meshgrid(z0, z1, indexing="ij")
    log_w = (log_p0[:, None] + log_p1[None, :]).ravel()
    return g0.ravel(), g1.ravel(), log_w


def true_risk(
    params: ZoneParams,
    visits: pd.DataFrame,
    age: float,
    male: int,
    *,
    n_points: int = GRID_POINTS,
) -> float:
    """True ``P(death | the visits, age, sex)`` of a new patient from a zone generator.

    Parameters
    ----------
    params
        The generator's true parameters.
    visits
        One row per visit with ``day`` and any of ``ct_score`` (integer 0-24) and the labs in
        natural units; NaN (or an absent column) means not measured. ESR carries no
        information about death under ``skewed`` (its own effect is independent of it) and is
        then integrated out exactly by leaving it aside.
    age, male
        The patient's covariates.
    n_points
        Grid points per axis.
    """
    z0, z1, log_w = _z_grid(params, n_points)
    u0, u1 = _effects(params, z0, z1)
    log_post = log_w.copy()
    days = visits[DAY].to_numpy(dtype=float)
    offsets = np.asarray(params.zone_offsets)
    for r, day in enumerate(days):
        severity = _population(params, np.asarray(day)) + u0 + u1 * _g(np.asarray(day))
        if CT in visits and np.isfinite(score := float(visits[CT].iloc[r])):
            log_post += zone_sum_loglik(
                np.full(severity.shape, int(score)),
                severity[:, None] + offsets[None, :],
                np.asarray(params.cutpoints),
            )
        for k in LABS:
            if k not in visits or not np.isfinite(y := float(visits[k].iloc[r])):
                continue
            if k == "esr" and params.esr_own_sd > 0:
                continue
            mean = params.lab_intercept[k] + params.lab_slope[k] * severity
            log_post += stats.norm.logpdf(_to_model_scale(k, np.asarray(y)), mean, params.lab_sd[k])
    weight = np.exp(log_post - log_post.max())
    p = special.expit(_mortality_lp(params, np.asarray(age), np.asarray(male), u0, u1))
    return float(np.sum(weight * p) / np.sum(weight))


def true_risk_grid(
    params: ZoneParams,
    ct_scores: Sequence[int],
    days: Sequence[float],
    *,
    age: float,
    male: int,
) -> pd.DataFrame:
    """True risk of one scan for every (score, day) cell: rows ``ct_score``, columns ``day``."""
    table = pd.DataFrame(index=pd.Index(list(ct_scores), name=CT), columns=pd.Index(list(days), name=DAY))
    for s in ct_scores:
        for d in days:
            table.loc[s, d] = true_risk(params, pd.DataFrame({DAY: [float(d)], CT: [float(s)]}), age, male)
    return table.astype(float)


__all__ = [
    "ZONE_GENERATORS",
    "ZoneParams",
    "ZoneSimulatedCohort",
    "simulate_zone_cohort",
    "true_risk",
    "true_risk_grid",
]
