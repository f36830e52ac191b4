"""Supp. Table S4: linear mixed models of each marker, outcome group x period."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.regression.mixed_linear_model import MixedLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from bayesct.classical._common import outcome_noted, patient_codes, period_codes, present_markers
from bayesct.constants import CT, DIED, PERIOD_LABELS
from bayesct.data.cohort import Cohort
from bayesct.data.labs import LabSpec, lab_names, lab_transform

TERMS: tuple[str, str, str] = ("group", "period", "group:period")
COLUMNS = [
    "marker",
    "term",
    "statistic",
    "df",
    "p_value",
    "n_obs",
    "n_patients",
    "scale",
    "converged",
    "note",
]


def marker_scale(marker: str, labs: Mapping[str, LabSpec] | None = None) -> str:
    """Scale a marker is modelled on: ``raw`` for the CT score and % labs (``labs``: the declared
    ones, :func:`~bayesct.data.labs.lab_transform`), else ``log``."""
    pct = marker in lab_names(labs) and lab_transform(marker, labs) == "pct"
    return "raw" if marker == CT or pct else "log"


def _sum_code(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """Deviation (sum-to-zero) coding of levels 0..n_levels-1: n_levels-1 columns, last level -1."""
    out = np.zeros((codes.size, n_levels - 1))
    for j in range(n_levels - 1):
        out[:, j] = (codes == j).astype(float)
    out[codes == n_levels - 1, :] = -1.0
    return out


def _rows(marker: str, stats_by_term: dict[str, tuple[float, float, float]], **common: object) -> list[dict]:
    return [
        {
            "marker": marker,
            "term": term,
            "statistic": stats_by_term.get(term, (math.nan,) * 3)[0],
            "df": stats_by_term.get(term, (math.nan,) * 3)[1],
            "p_value": stats_by_term.get(term, (math.nan,) * 3)[2],
            **common,
        }
        for term in TERMS
    ]


def _fit_marker(
    marker: str, scale: str, y: np.ndarray, died: np.ndarray, pcode: np.ndarray, pid: np.ndarray
) -> list[dict]:
    notes: list[str] = []
    if scale == "log":
        pos = y > 0
        if not pos.all():
            notes.append(f"{int((~pos).sum())} non-positive values dropped before log")
        y, died, pcode, pid = np.log(y[pos]), died[pos], pcode[pos], pid[pos]
    # keep periods observed in both groups, so that every cell of the factorial is estimable
    keep_levels = []
    for k, label in enumerate(PERIOD_LABELS):
        in_k = pcode == k
        if not in_k.any():
            continue
        if in_k[died == 1].any() and in_k[died == 0].any():
            keep_levels.append(k)
        else:
            lacking = "nonsurvivor" if not in_k[died == 1].any() else "survivor"
            notes.append(f"period {label} dropped ({int(in_k.sum())} obs; no {lacking} data)")
    keep = np.isin(pcode, keep_levels)
    y, died, pcode, pid = y[keep], died[keep], pcode[keep], pid[keep]
    n_obs, n_pat = int(y.size), int(np.unique(pid).size)
    common: dict[str, object] = {"n_obs": n_obs, "n_patients": n_pat, "scale": scale}
    if n_obs == 0 or not keep_levels:
        notes.append("no period with data from both groups: no model")
        return _rows(marker, {}, converged=False, note="; ".join(notes), **common)
    n_levels = len(keep_levels)
    relabel = np.searchsorted(np.asarray(keep_levels), pcode)
    g = np.where(died == 1, -1.0, 1.0)[:, None]  # survivors +1, nonsurvivors -1 (sum coding)
    blocks: dict[str, np.ndarray] = {"group": g}
    if n_levels >= 2:
        p = _sum_code(relabel, n_levels)
        blocks["period"] = p
        blocks["group:period"] = g * p
    else:
        notes.append("only one period with data from both groups: no period or interaction test")
    exog = np.column_stack([np.ones(n_obs), *blocks.values()])
    if n_obs <= exog.shape[1] or np.linalg.matrix_rank(exog) < exog.shape[1]:
        notes.append("too few observations for the fixed effects")
        return _rows(marker, {}, converged=False, note="; ".join(notes), **common)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            result = MixedLM(y, exog, groups=pid).fit(reml=True)
            n_par = len(result.params)
            out: dict[str, tuple[float, float, float]] = {}
            start = 1
            for term, block in blocks.items():
                q = block.shape[1]
                r = np.zeros((q, n_par))
                r[:, start : start + q] = np.eye(q)
                start += q
                wt = result.wald_test(r, scalar=True, use_f=False)
                out[term] = (float(wt.statistic), float(q), float(wt.pvalue))
            converged = bool(getattr(result, "converged", True))
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
            notes.append(f"singular fit: {type(exc).__name__}: {exc}")
            return _rows(marker, {}, converged=False, note="; ".join(notes), **common)
    messages = list(
        dict.fromkeys(
            str(w.message).split("\n")[0].rstrip(". ")
            for w in caught
            if issubclass(w.category, ConvergenceWarning)
        )
    )
    # A random-intercept variance estimated at zero is a valid (boundary) estimate, not a failure.
    boundary = [m for m in messages if "boundary" in m]
    failures = [m for m in messages if "boundary" not in m]
    if boundary:
        notes.append("random-intercept variance on the boundary (~0)")
    if failures:
        converged = False
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        notes.append(f"convergence warning: {failures[0]}{more}")
    if not all(math.isfinite(v[2]) for v in out.values()):
        notes.append("non-finite Wald statistic (singular covariance)")
    return _rows(marker, out, converged=converged, note="; ".join(notes), **common)


def mixed_model(cohort: Cohort, *, markers: Sequence[str] | None = None) -> pd.DataFrame:
    """Supp. Table S4: per marker, ``value ~ group * period`` with a patient random intercept.

    Each marker is fitted with statsmodels ``MixedLM`` (REML): fixed effects for
    outcome group, period and their interaction in sum-to-zero coding, a random
    intercept per patient. The CT score and percentage labs are modelled on the
    raw scale, the other labs on the log scale. Each term is tested jointly by a
    Wald chi-square built from the fitted coefficients and their covariance
    (``result.wald_test`` with a constraint matrix); with sum coding the main
    effects are SPSS-style Type III tests.

    Periods without data from both groups are dropped for that marker (noted),
    convergence warnings set ``converged`` to False, and singular fits give NaN
    with a note instead of an exception.

    Parameters
    ----------
    cohort
        The cohort; the patients of unknown outcome are left out (``attrs["note"]``).
    markers
        Markers to model; default every marker present (CT score first).

    Returns
    -------
    pandas.DataFrame
        Three rows per marker (terms ``group``, ``period``, ``group:period``) with
        ``marker, term, statistic, df, p_value, n_obs, n_patients, scale, converged, note``.
    """
    known = cohort.known_outcome()
    visits = known.visits
    died_all = known.patients[DIED].to_numpy(dtype=np.int64)[patient_codes(known)]
    pcode_all = period_codes(visits)
    pid_all = patient_codes(known)
    rows: list[dict] = []
    declared = known.declared_labs
    for marker in markers if markers is not None else present_markers(visits, declared):
        if marker not in visits:
            rows.extend(
                _rows(
                    marker,
                    {},
                    n_obs=0,
                    n_patients=0,
                    scale=marker_scale(marker, declared),
                    converged=False,
                    note="marker absent",
                )
            )
            continue
        vals = visits[marker].to_numpy(dtype=float)
        ok = ~np.isnan(vals)
        scale = marker_scale(marker, declared)
        rows.extend(_fit_marker(marker, scale, vals[ok], died_all[ok], pcode_all[ok], pid_all[ok]))
    return outcome_noted(pd.DataFrame(rows, columns=COLUMNS), cohort)
