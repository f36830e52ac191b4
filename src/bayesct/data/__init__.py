"""Data layer: the column contract, validation, file IO, the simulator and the default cohort."""

from bayesct.data.cohort import Cohort, assign_period

__all__ = ["Cohort", "assign_period"]
