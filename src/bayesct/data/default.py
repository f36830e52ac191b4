"""The shipped default cohort and the paper's published targets it was calibrated to.

``default_cohort.csv`` is ``simulate_cohort(93, seed=DEFAULT_COHORT_SEED).cohort.to_frame()``
written with pandas ``to_csv`` (regenerate it with ``benchmarks/calibrate_default_cohort.py``).
It is simulated, not the study's data: the study published summaries only. The seed was
chosen by a search over seeds for one draw that meets every target of ``paper_targets.toml``
(93 patients, 25 deaths, about 175 scans, the age and sex split of Table 1, the admission labs
of Table 2, the per-period Mann-Whitney tests of Supp. S3, the Kendall taus of Table 4 and the
signs of the per-scan logistic regression of Table 3). It is therefore one draw that reproduces
the published summaries, not a typical draw of the simulator; typical draws meet most but not all
of the targets (see ``tests/data/test_default_cohort.py``).

Because the cohort is a simulation, its truth is known: ``SimulationParams()`` (the defaults)
and the random effects of ``simulate_cohort(93, seed=DEFAULT_COHORT_SEED).effects``.
"""

from __future__ import annotations

import io
import math
import tomllib
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from bayesct.constants import CT, DAY, DIED, PATIENT, PERIOD, PERIOD_LABELS
from bayesct.data.cohort import Cohort

#: Seed of ``simulate_cohort(93, seed=...)`` that produced the shipped default cohort.
DEFAULT_COHORT_SEED: int = 1365
#: The shipped default cohort's file name inside the ``bayesct.data`` package.
DEFAULT_COHORT_FILE: str = "default_cohort.csv"
#: The paper's targets file inside the ``bayesct.data`` package.
PAPER_TARGETS_FILE: str = "paper_targets.toml"
#: ``source`` of the default cohort.
DEFAULT_SOURCE: str = "bayesct default cohort"


def _read_default_frame() -> pd.DataFrame:
    text = resources.files("bayesct.data").joinpath(DEFAULT_COHORT_FILE).read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text), dtype={PATIENT: "str"})


def load_default_cohort() -> Cohort:
    """The shipped default cohort (93 simulated patients that meet the paper's published summaries).

    Returns
    -------
    Cohort
        Validated by :func:`bayesct.data.validate.build_cohort`, ``source="bayesct default cohort"``.
        Its values equal ``simulate_cohort(93, seed=DEFAULT_COHORT_SEED).cohort`` (to float
        round-off of the CSV) and its true generating parameters are
        :class:`bayesct.data.simulate.SimulationParams` defaults with seed
        :data:`DEFAULT_COHORT_SEED`.

    Examples
    --------
    >>> import bayesct as bc
    >>> cohort = bc.load_default_cohort()
    >>> cohort.n_patients, cohort.n_deaths
    (93, 25)
    """
    from bayesct.data.validate import build_cohort

    # validated exactly like user data, so the shipped file cannot drift from the column contract
    return build_cohort(_read_default_frame(), source=DEFAULT_SOURCE)


# -- the paper's targets ------------------------------------------------------------


def load_paper_targets() -> dict[str, dict[str, Any]]:
    """The paper's published targets (``paper_targets.toml``), keyed by target name.

    Each target has ``statistic`` (a key of :func:`measure_paper_statistics`), ``paper`` (the
    published value, where there is one), ``source`` (the paper's table) and exactly one
    tolerance: ``exact``, ``abs_tol`` (``|x - paper| <= abs_tol``), ``factor``
    (``paper / factor <= x <= paper * factor``) or ``range = [low, high]``.
    """
    text = resources.files("bayesct.data").joinpath(PAPER_TARGETS_FILE).read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    return {name: dict(spec) for name, spec in raw["target"].items()}


def target_bounds(spec: dict[str, Any]) -> tuple[float, float]:
    """The closed interval ``[low, high]`` a target's statistic must fall in."""
    kinds = [k for k in ("exact", "abs_tol", "factor", "range") if k in spec]
    if len(kinds) != 1:
        raise ValueError(f"a target needs exactly one of exact, abs_tol, factor, range; got {kinds}")
    kind = kinds[0]
    if kind == "exact":
        return float(spec["paper"]), float(spec["paper"])
    if kind == "abs_tol":
        return float(spec["paper"]) - float(spec["abs_tol"]), float(spec["paper"]) + float(spec["abs_tol"])
    if kind == "factor":
        return float(spec["paper"]) / float(spec["factor"]), float(spec["paper"]) * float(spec["factor"])
    low, high = spec["range"]
    return float(low), float(high)


def measure_paper_statistics(cohort: Cohort) -> dict[str, float]:
    """The statistics the paper published, computed on a cohort the way the paper computed them.

    Keys: ``n_patients``, ``n_deaths``, ``n_scans``; ``age_mean_<group>``, ``age_sd_<group>``,
    ``male_pct_<group>`` (Table 1); ``admission_median_<lab>_<group>`` (Table 2, first visit);
    ``s3_p_<period>`` (Supp. S3: two-sided Mann-Whitney of the CT scores of scans in that period,
    survivors vs nonsurvivors); ``kendall_<lab>`` (Table 4: Kendall tau-b of CT score and lab over
    every scan with both); ``table3_ct_coef``, ``table3_ct_p``, ``table3_day_coef``,
    ``table3_day_p`` (Table 3 note: per-scan logistic regression died ~ ct_score + day).
    ``<group>`` is ``survivor`` or ``nonsurvivor``. A statistic that cannot be computed is NaN.
    """
    from scipy import stats
    from statsmodels.discrete.discrete_model import Logit

    out: dict[str, float] = {
        "n_patients": float(cohort.n_patients),
        "n_deaths": float(cohort.n_deaths),
        "n_scans": float(cohort.n_scans),
    }
    pat = cohort.patients
    groups = {"survivor": pat[DIED] == 0, "nonsurvivor": pat[DIED] == 1}
    for g, mask in groups.items():
        if "age" in pat:
            out[f"age_mean_{g}"] = float(pat.loc[mask, "age"].mean())
            out[f"age_sd_{g}"] = float(pat.loc[mask, "age"].std(ddof=1))
        if "sex" in pat:
            out[f"male_pct_{g}"] = float(100.0 * (pat.loc[mask, "sex"] == "male").mean())
        elif "male" in pat:
            out[f"male_pct_{g}"] = float(100.0 * pat.loc[mask, "male"].mean())
    adm = cohort.admission()
    for lab in cohort.labs:
        for g, died in (("survivor", 0), ("nonsurvivor", 1)):
            out[f"admission_median_{lab}_{g}"] = float(adm.loc[adm[DIED] == died, lab].median())

    scans = cohort.scans()
    for period in PERIOD_LABELS:
        rows = scans.loc[scans[PERIOD] == period]
        a = rows.loc[rows[DIED] == 0, CT].to_numpy()
        b = rows.loc[rows[DIED] == 1, CT].to_numpy()
        p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue) if a.size and b.size else math.nan
        out[f"s3_p_{period}"] = p
    for lab in cohort.labs:
        both = scans[[CT, lab]].dropna()
        tau = stats.kendalltau(both[CT], both[lab]).statistic if len(both) > 2 else math.nan
        out[f"kendall_{lab}"] = float(tau)
    design = np.column_stack([np.ones(len(scans)), scans[CT].to_numpy(), scans[DAY].to_numpy()])
    try:
        fit = Logit(scans[DIED].to_numpy(dtype=float), design).fit(disp=0)
        out.update(
            table3_ct_coef=float(fit.params[1]),
            table3_ct_p=float(fit.pvalues[1]),
            table3_day_coef=float(fit.params[2]),
            table3_day_p=float(fit.pvalues[2]),
        )
    except Exception:  # perfect separation or a singular design: report as not computable
        out.update(
            table3_ct_coef=math.nan, table3_ct_p=math.nan, table3_day_coef=math.nan, table3_day_p=math.nan
        )
    return out


def check_paper_targets(cohort: Cohort, targets: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Compare a cohort with the paper's targets.

    Returns
    -------
    pandas.DataFrame
        One row per target (indexed by name): ``statistic``, ``paper``, ``low``, ``high``,
        ``measured``, ``ok`` (bool), ``source``.
    """
    targets = load_paper_targets() if targets is None else targets
    measured = measure_paper_statistics(cohort)
    rows = []
    for name, spec in targets.items():
        low, high = target_bounds(spec)
        value = measured.get(spec["statistic"], math.nan)
        rows.append(
            {
                "target": name,
                "statistic": spec["statistic"],
                "paper": spec.get("paper", math.nan),
                "low": low,
                "high": high,
                "measured": value,
                "ok": bool(low <= value <= high),
                "source": spec.get("source", ""),
            }
        )
    return pd.DataFrame(rows).set_index("target")
