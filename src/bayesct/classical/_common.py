"""Shared helpers of the classical tables: per-scan arrays, group masks, warning control."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesct.constants import CT, DAY, DIED, PATIENT, PERIOD, PERIOD_LABELS
from bayesct.data.cohort import Cohort, assign_period
from bayesct.data.labs import LabSpec, lab_names, marker_names

#: Mann-Whitney p-values everywhere use the normal approximation with tie and
#: continuity correction (SPSS's "Asymp. Sig."), so that one call on a 2-D array
#: equals separate calls on its columns and replicates never switch method.
MW_METHOD = "asymptotic"

#: Significance level of the paper (two-sided).
ALPHA = 0.05

GROUP_NAMES: tuple[str, str] = ("survivors", "nonsurvivors")


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings scipy and statsmodels emit on degenerate inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


@dataclass(frozen=True)
class ScanArrays:
    """The per-scan design of a cohort as plain numpy arrays.

    Built once per cohort by :func:`scan_arrays`; the fast numeric cores
    (:func:`~bayesct.classical.period_pvalues`, :func:`~bayesct.classical.kendall_taus`,
    :func:`~bayesct.classical.logistic_coefs`) take these arrays directly.

    Attributes
    ----------
    ct
        CT score of each scan (float).
    day
        Days since symptom onset of each scan.
    period_codes
        Period index of each scan, 0..4 in :data:`bayesct.constants.PERIOD_LABELS` order.
    died
        Outcome of the scan's patient (1.0 died, 0.0 survived, NaN not known yet): whatever splits
        by outcome takes :meth:`known_outcome` first.
    patient_codes
        Row of the scan's patient in ``cohort.patients``.
    labs
        ``(n_scans, n_labs)`` lab values drawn at the scan visit (NaN when not drawn).
    lab_names
        Column names of ``labs`` (the labs present in the cohort).
    """

    ct: np.ndarray
    day: np.ndarray
    period_codes: np.ndarray
    died: np.ndarray
    patient_codes: np.ndarray
    labs: np.ndarray
    lab_names: tuple[str, ...]

    @property
    def n_scans(self) -> int:
        return int(self.ct.size)

    @property
    def n_patients(self) -> int:
        return int(np.unique(self.patient_codes).size)

    def known_outcome(self) -> ScanArrays:
        """The scans of the patients whose outcome is known (``Cohort.outcome_known``; itself when
        every one is): what the tests by outcome run on."""
        keep = ~np.isnan(self.died)
        if keep.all():
            return self
        return ScanArrays(
            ct=self.ct[keep],
            day=self.day[keep],
            period_codes=self.period_codes[keep],
            died=self.died[keep],
            patient_codes=self.patient_codes[keep],
            labs=self.labs[keep],
            lab_names=self.lab_names,
        )


def _observed(visits: pd.DataFrame, column: str) -> bool:
    return column in visits and not np.isnan(visits[column].to_numpy(dtype=float)).all()


def present_markers(visits: pd.DataFrame, labs: Mapping[str, LabSpec] | None = None) -> tuple[str, ...]:
    """Markers with at least one observed value, CT score first (``Cohort.markers``, in numpy;
    ``labs``: the cohort's declared labs)."""
    return tuple(m for m in marker_names(labs) if _observed(visits, m))


def present_labs(visits: pd.DataFrame, labs: Mapping[str, LabSpec] | None = None) -> tuple[str, ...]:
    """Labs with at least one observed value, in reporting order (``Cohort.labs``, in numpy;
    ``labs``: the cohort's declared labs)."""
    return tuple(m for m in lab_names(labs) if _observed(visits, m))


def period_codes(visits: pd.DataFrame) -> np.ndarray:
    """Period codes (0..4) of every visit, from the ``period`` column or from ``day``."""
    if PERIOD in visits and isinstance(visits[PERIOD].dtype, pd.CategoricalDtype):
        cats = list(visits[PERIOD].cat.categories)
        if cats == list(PERIOD_LABELS):
            return np.asarray(visits[PERIOD].cat.codes.to_numpy(), dtype=np.int64)
    return np.asarray(assign_period(visits[DAY].to_numpy(dtype=float)).codes, dtype=np.int64)


def visit_died(cohort: Cohort) -> np.ndarray:
    """Outcome (1.0 / 0.0, NaN not known yet) of the patient of every visit row."""
    codes = patient_codes(cohort)
    died = cohort.patients[DIED].to_numpy(dtype=float)
    return died[codes]


#: The ``attrs`` key of a table's note (shown under it in ``summary.md``).
NOTE_ATTR = "note"


def outcome_noted(table: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """``table``, split by outcome on ``cohort.known_outcome()``, with a note in its ``attrs``
    naming the patients of unknown outcome it left out (none: no note)."""
    n = cohort.n_outcome_unknown
    if n:
        ids = cohort.patient_ids[~cohort.outcome_known.to_numpy()]
        shown = ", ".join(map(str, ids[:10])) + (", ..." if n > 10 else "")
        table.attrs[NOTE_ATTR] = (
            f"{n} patient{'s' if n > 1 else ''} of unknown outcome (blank died: {shown}) left out"
        )
    return table


def patient_codes(cohort: Cohort) -> np.ndarray:
    """Row in ``cohort.patients`` of the patient of every visit row."""
    codes = cohort.patients.index.get_indexer(pd.Index(cohort.visits[PATIENT]))
    if (codes < 0).any():
        raise KeyError("some visits belong to patients missing from cohort.patients")
    return np.asarray(codes, dtype=np.int64)


def scan_arrays(cohort: Cohort) -> ScanArrays:
    """Per-scan arrays of a cohort (visits with a CT score).

    Parameters
    ----------
    cohort
        Any cohort; a cohort without a ``ct_score`` column gives empty arrays.

    Returns
    -------
    ScanArrays
        CT, day, period code, outcome, patient code and lab values of each scan.
    """
    visits = cohort.visits
    labs = present_labs(visits, cohort.declared_labs)
    if CT in visits:
        ct_all = visits[CT].to_numpy(dtype=float)
        mask = ~np.isnan(ct_all)
    else:
        ct_all = np.full(len(visits), np.nan)
        mask = np.zeros(len(visits), dtype=bool)
    pcodes = patient_codes(cohort)[mask]
    died = cohort.patients[DIED].to_numpy(dtype=float)[pcodes]
    lab_mat = (
        np.column_stack([visits[lab].to_numpy(dtype=float)[mask] for lab in labs])
        if labs
        else np.empty((int(mask.sum()), 0), dtype=float)
    )
    return ScanArrays(
        ct=ct_all[mask],
        day=visits[DAY].to_numpy(dtype=float)[mask],
        period_codes=period_codes(visits)[mask],
        died=died,
        patient_codes=pcodes,
        labs=lab_mat,
        lab_names=labs,
    )


def format_p(p: float) -> str:
    """A p-value as the paper writes it: ``<0.001`` below 0.001, else three decimals."""
    if p is None or (isinstance(p, float) and math.isnan(p)) or pd.isna(p):
        return "NA"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def nan_stats(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, SD (ddof 1) and median of ``x``; NaN where undefined."""
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    return mean, sd, float(np.median(x))
