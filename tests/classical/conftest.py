"""A small synthetic cohort built directly (no validation), for the classical tables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from bayesct.data.cohort import Cohort, assign_period


def build_cohort(
    n_patients: int = 60,
    *,
    seed: int = 0,
    visits_range: tuple[int, int] = (2, 3),
    labs: tuple[str, ...] = ("nlr", "lymphocyte_pct", "d_dimer", "ldh"),
) -> Cohort:
    """A cohort whose non-survivors have higher CT scores after day 5 and worse labs."""
    rng = np.random.default_rng(seed)
    died = (rng.random(n_patients) < 0.3).astype(np.int64)
    died[:3] = [0, 1, 1]
    ids = [f"P{i:03d}" for i in range(n_patients)]
    severity = rng.normal(size=n_patients)
    rows = []
    for i, pid in enumerate(ids):
        n_vis = int(rng.integers(visits_range[0], visits_range[1] + 1))
        days = np.sort(rng.choice(np.arange(1, 30), size=n_vis, replace=False)).astype(float)
        for d in days:
            rise = 0.25 * min(d, 12.0) * (1.0 + 3.0 * died[i] * (d > 5))
            p = 1.0 / (1.0 + np.exp(-(-1.5 + 0.12 * rise + 0.5 * severity[i])))
            ct = float(rng.binomial(24, p))
            z = (ct - 10.0) / 5.0
            row = {"patient_id": pid, "day": d, "ct_score": ct}
            if "nlr" in labs:
                row["nlr"] = float(np.exp(1.0 + 0.5 * z + 0.3 * rng.normal()))
            if "lymphocyte_pct" in labs:
                row["lymphocyte_pct"] = float(np.clip(25.0 - 6.0 * z + 4.0 * rng.normal(), 1.0, 99.0))
            if "d_dimer" in labs:
                row["d_dimer"] = float(np.exp(-1.0 + 0.6 * z + 0.4 * rng.normal()))
            if "ldh" in labs:
                row["ldh"] = float(np.exp(5.4 + 0.3 * z + 0.2 * rng.normal()))
            if "lymphocyte_count" in labs:
                row["lymphocyte_count"] = float(np.exp(0.1 - 0.3 * z + 0.3 * rng.normal()))
            if "neutrophil_pct" in labs:
                row["neutrophil_pct"] = float(np.clip(65.0 + 5.0 * z + 6.0 * rng.normal(), 1.0, 99.0))
            if "esr" in labs:
                row["esr"] = float(np.exp(3.0 + 0.5 * z + 0.4 * rng.normal()))
            rows.append(row)
    visits = pd.DataFrame(rows)
    # some missing CTs and labs
    miss = rng.random(len(visits))
    visits.loc[miss < 0.05, "ct_score"] = np.nan
    for lab in labs:
        visits.loc[rng.random(len(visits)) < 0.1, lab] = np.nan
    visits["period"] = assign_period(visits["day"].to_numpy())
    visits = visits[["patient_id", "day", "period", "ct_score", *labs]].reset_index(drop=True)
    age = np.round(45.0 + 20.0 * died + 12.0 * rng.normal(size=n_patients))
    patients = pd.DataFrame(
        {
            "died": died,
            "age": age,
            "sex": np.where(rng.random(n_patients) < 0.45 + 0.2 * died, "male", "female"),
            "fever": (rng.random(n_patients) < 0.9).astype(np.int64),
            "dyspnea": (rng.random(n_patients) < 0.2 + 0.5 * died).astype(np.int64),
            "hypertension": ((rng.random(n_patients) < 0.1) & (died == 1)).astype(np.int64),
            "duration": np.round(20.0 + 6.0 * rng.normal(size=n_patients)),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    return Cohort(visits, patients, source="test")


@pytest.fixture(scope="session")
def make_cohort() -> Callable[..., Cohort]:
    """The synthetic cohort factory, for tests that need a variant."""
    return build_cohort


@pytest.fixture(scope="session")
def cohort() -> Cohort:
    return build_cohort()


@pytest.fixture(scope="session")
def paper_sized() -> Cohort:
    """93 patients, about 175 scans, like the paper."""
    return build_cohort(
        93,
        seed=7,
        visits_range=(1, 3),
        labs=("nlr", "lymphocyte_count", "lymphocyte_pct", "neutrophil_pct", "d_dimer", "ldh", "esr"),
    )
