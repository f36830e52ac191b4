"""The validated :class:`Cohort`: the one object every later stage trusts.

A cohort is two tables:

``visits``
    One row per patient-visit, sorted by patient then day, with the columns
    ``patient_id`` (str), ``day`` (float, days since symptom onset, >= 0),
    ``period`` (ordered categorical, :data:`bayesct.constants.PERIOD_LABELS`),
    ``ct_score`` (float holding integers 0-24, NaN where no CT that day), one
    float column per lab present (NaN where not drawn; the contract's labs, then the
    declared ones, ``declared_labs``) and, when the input had
    them, the lung-zone columns of :data:`bayesct.constants.CT_ZONES` present
    (float holding integers 0-4, NaN where not scored; where all six are
    given they sum to ``ct_score``).
``patients``
    One row per patient, indexed by ``patient_id`` (str) in the visits' order,
    with ``died`` and any patient-level covariates (``age``, ``sex``,
    symptoms, comorbidities, treatments ...). ``died`` is int 0/1 when every
    outcome is known, else float 0.0/1.0 with NaN for a patient whose outcome is
    not known yet (still in hospital: a blank ``died``, :attr:`Cohort.outcome_known`).

Patients of unknown outcome
    Their scans and labs are data like any other patient's (the trajectories); everything
    that needs the outcome leaves them out: the mortality likelihood, the tables split by
    outcome (:meth:`Cohort.known_outcome`), the death-prediction scores. The rule is
    :attr:`Cohort.outcome_known`; :attr:`Cohort.outcome_note` says so in one line, which
    :func:`~bayesct.data.validate.build_cohort` adds to ``notes``.

Construct one with :func:`bayesct.data.read_cohort` (files) or
:meth:`Cohort.from_frames` (in-memory tables); both validate. The constructor
itself does not validate: it is for code that already holds valid tables, such
as the simulator and the posterior predictive replication, which only swap
marker values on a fixed design (:meth:`Cohort.with_values`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bayesct.constants import (
    CT,
    CT_ZONES,
    DAY,
    DIED,
    PATIENT,
    PERIOD,
    PERIOD_EDGES,
    PERIOD_LABELS,
)
from bayesct.data.labs import LabSpec, lab_names, marker_names

#: Patient ids an outcome note lists before "...".
_NOTE_IDS = 10


def died_column(values: np.ndarray | pd.Series | Sequence[float]) -> np.ndarray:
    """Per-patient outcomes as ``Cohort.patients`` holds them: int 0/1 when every one is known,
    else float 0.0/1.0 with NaN where the outcome is unknown."""
    arr = np.asarray(values, dtype=float)
    return arr.astype(np.int64) if not np.isnan(arr).any() else arr


def unknown_outcome_note(patient_ids: Iterable[object]) -> str | None:
    """The one-line note of a cohort whose patients ``patient_ids`` have no known outcome (None if none)."""
    ids = [str(p) for p in patient_ids]
    if not ids:
        return None
    shown = ", ".join(ids[:_NOTE_IDS]) + (", ..." if len(ids) > _NOTE_IDS else "")
    n = len(ids)
    whose, who = ("their", "they are") if n > 1 else ("the patient's", "the patient is")
    return (
        f"{n} patient{'s' if n > 1 else ''} of unknown outcome (blank died: {shown}): "
        f"{whose} scans and labs inform the trajectories; {who} left out of the mortality "
        "likelihood, the outcome tables and every death-prediction score"
    )


def assign_period(day: np.ndarray | pd.Series) -> pd.Categorical[str]:
    """Label days since onset with the paper's periods.

    ``day <= 5`` is ``"0-5"``, ``5 < day <= 10`` is ``"6-10"``, and so on;
    ``day > 20`` is ``">20"``.
    """
    values = np.asarray(day, dtype=float)
    codes = np.searchsorted(np.asarray(PERIOD_EDGES), values, side="left")
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(PERIOD_LABELS)), ordered=True)


@dataclass(frozen=True)
class Cohort:
    """Validated serial CT and lab data of a cohort of patients.

    Attributes
    ----------
    visits, patients
        See the module docstring for their exact layout.
    source
        Where the data came from (a file path, ``"simulated"``, ...).
    notes
        Human-readable notes about rows excluded or values derived by design
        (for example "NLR derived from neutrophil and lymphocyte counts").
    declared_labs
        The labs declared beyond the input contract's, name -> :class:`~bayesct.data.labs.LabSpec`
        (transform, direction), in declaration order (:mod:`bayesct.data.labs`); none by default.

    Examples
    --------
    >>> import bayesct as bc
    >>> cohort = bc.load_default_cohort()
    >>> cohort.n_patients
    93
    >>> cohort.visits.columns[:3].tolist()
    ['patient_id', 'day', 'period']
    """

    visits: pd.DataFrame
    patients: pd.DataFrame
    source: str = "<DataFrame>"
    notes: tuple[str, ...] = field(default=())
    declared_labs: Mapping[str, LabSpec] = field(default_factory=dict)

    # -- construction -----------------------------------------------------
    @classmethod
    def from_frames(
        cls,
        visits: pd.DataFrame,
        patients: pd.DataFrame | None = None,
        *,
        source: str = "<DataFrame>",
        patient_source: str | None = None,
        columns: Mapping[str, str] | None = None,
        labs: Mapping[str, LabSpec] | Sequence[str] | None = None,
    ) -> Cohort:
        """Validate raw tables and build a cohort (see :func:`bayesct.data.validate.build_cohort`)."""
        from bayesct.data.validate import build_cohort

        return build_cohort(
            visits, patients, source=source, patient_source=patient_source, columns=columns, labs=labs
        )

    # -- shape ------------------------------------------------------------
    @property
    def patient_ids(self) -> pd.Index:
        return self.patients.index

    @property
    def n_patients(self) -> int:
        return len(self.patients)

    @property
    def n_visits(self) -> int:
        return len(self.visits)

    @property
    def n_scans(self) -> int:
        """Number of visits with a CT score."""
        return int(self.visits[CT].notna().sum()) if CT in self.visits else 0

    @property
    def outcome_known(self) -> pd.Series:
        """Per patient (indexed by ``patient_id``), whether their outcome is known: the one rule of
        which patients the mortality likelihood, the outcome tables and the death scores use."""
        return self.patients[DIED].notna().rename("outcome_known")

    @property
    def n_outcome_unknown(self) -> int:
        """Patients whose outcome is not known yet (a blank ``died``)."""
        return int((~self.outcome_known).sum())

    @property
    def n_deaths(self) -> int:
        """Patients who died (of those whose outcome is known)."""
        return int((self.patients[DIED] == 1).sum())

    @property
    def n_survivors(self) -> int:
        """Patients who survived (of those whose outcome is known)."""
        return int((self.patients[DIED] == 0).sum())

    @property
    def outcome_note(self) -> str | None:
        """One line on the patients of unknown outcome and what leaves them out; None when there are none."""
        return unknown_outcome_note(self.patient_ids[~self.outcome_known.to_numpy()])

    @property
    def markers(self) -> tuple[str, ...]:
        """Markers with at least one observed value, CT score first."""
        names = marker_names(self.declared_labs)
        return tuple(m for m in names if m in self.visits and self.visits[m].notna().any())

    @property
    def labs(self) -> tuple[str, ...]:
        """Labs with at least one observed value, in reporting order (the declared ones last)."""
        return tuple(m for m in lab_names(self.declared_labs) if m in self.markers)

    @property
    def covariates(self) -> tuple[str, ...]:
        """Patient-level columns other than ``died``."""
        return tuple(c for c in self.patients.columns if c != DIED)

    # -- views --------------------------------------------------------------
    def merged(self) -> pd.DataFrame:
        """Visits with the patient-level columns joined on (a copy)."""
        return self.visits.join(self.patients, on=PATIENT)

    def scans(self) -> pd.DataFrame:
        """Visits with a CT score, with ``died`` joined on."""
        out = self.visits.loc[self.visits[CT].notna()].join(self.patients[[DIED]], on=PATIENT)
        return out

    def admission(self) -> pd.DataFrame:
        """Each patient's first visit (the admission labs), with patient columns."""
        first = self.visits.groupby(PATIENT, sort=False).head(1)
        return first.join(self.patients, on=PATIENT).set_index(PATIENT)

    def observed(self, marker: str) -> pd.DataFrame:
        """Long table of one marker where it is observed: patient_id, day, period, value."""
        if marker not in self.visits:
            raise KeyError(f"marker '{marker}' is not in this cohort; present: {', '.join(self.markers)}")
        rows = self.visits.loc[self.visits[marker].notna(), [PATIENT, DAY, PERIOD, marker]]
        return rows.rename(columns={marker: "value"})

    def to_frame(self) -> pd.DataFrame:
        """One long table (visits with patient columns), the input contract's layout."""
        out = self.merged().drop(columns=[PERIOD])
        return out.reset_index(drop=True)

    # -- derivation -------------------------------------------------------
    def drop_patients(self, patient_ids: Iterable[object]) -> Cohort:
        """The cohort less the given patients (every visit and the patient row of each)."""
        drop = {str(p) for p in patient_ids}
        if not drop:
            return self
        visits = self.visits.loc[~self.visits[PATIENT].isin(drop)].reset_index(drop=True)
        patients = self.patients.loc[~self.patients.index.isin(drop)].copy()
        patients[DIED] = died_column(patients[DIED])
        return replace(self, visits=visits, patients=patients)

    def known_outcome(self) -> Cohort:
        """The cohort of the patients whose outcome is known (itself when every one is): what the
        tables split by outcome run on."""
        known = self.outcome_known.to_numpy()
        return self if known.all() else self.drop_patients(self.patient_ids[~known])

    def with_values(self, values: Mapping[str, np.ndarray], *, source: str | None = None) -> Cohort:
        """A cohort on the same design with some columns replaced.

        Keys are marker columns of ``visits`` (arrays aligned with its rows;
        NaN keeps a value missing) or ``died`` (an array aligned with
        ``patients``, NaN where the outcome is unknown: :func:`died_column`). Used by the posterior predictive replication, which must
        not pay for re-validation on every replicate. A replaced ``ct_score`` drops the
        zone columns (``CT_ZONES``), which would no longer sum to it.
        """
        visits = self.visits.copy()
        if CT in values:
            visits = visits.drop(columns=[z for z in CT_ZONES if z in visits])
        patients = self.patients
        for key, arr in values.items():
            if key == DIED:
                patients = patients.copy()
                patients[DIED] = died_column(arr)
            else:
                if key not in marker_names(self.declared_labs):
                    raise KeyError(f"'{key}' is not a marker")
                visits[key] = np.asarray(arr, dtype=float)
        return Cohort(
            visits, patients, source=source or self.source, notes=self.notes, declared_labs=self.declared_labs
        )

    def summary(self) -> str:
        """A few lines describing the cohort."""
        lines = [
            f"Cohort from {self.source}",
            f"  patients: {self.n_patients} ({self.n_deaths} died"
            + (f", {self.n_outcome_unknown} of unknown outcome)" if self.n_outcome_unknown else ")"),
            f"  visits: {self.n_visits}; CT scans: {self.n_scans}",
            f"  markers: {', '.join(self.markers)}",
        ]
        if self.declared_labs:
            declared = [
                f"{lab} ({s.transform}{'' if s.direction is None else ', up' if s.direction > 0 else ', down'})"
                for lab, s in self.declared_labs.items()
            ]
            lines.append(f"  declared labs: {', '.join(declared)}")
        if self.covariates:
            lines.append(f"  patient covariates: {', '.join(self.covariates)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Cohort(source={self.source!r}, patients={self.n_patients}, deaths={self.n_deaths}, "
            f"visits={self.n_visits}, scans={self.n_scans}, markers={self.markers})"
        )
