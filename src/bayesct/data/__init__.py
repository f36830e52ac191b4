"""Data layer: the column contract, validation, file IO, the simulator and the default cohort."""

from bayesct.data.cohort import Cohort, assign_period
from bayesct.data.default import (
    DEFAULT_COHORT_SEED,
    check_paper_targets,
    load_default_cohort,
    load_paper_targets,
)
from bayesct.data.io import read_cohort, read_table, write_cohort
from bayesct.data.simulate import SimulatedCohort, SimulationParams, population_risk, simulate_cohort
from bayesct.data.validate import build_cohort

__all__ = [
    "DEFAULT_COHORT_SEED",
    "Cohort",
    "SimulatedCohort",
    "SimulationParams",
    "assign_period",
    "build_cohort",
    "check_paper_targets",
    "load_default_cohort",
    "load_paper_targets",
    "population_risk",
    "read_cohort",
    "read_table",
    "simulate_cohort",
    "write_cohort",
]
