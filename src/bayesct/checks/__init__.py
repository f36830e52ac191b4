"""Model checking: posterior predictive replication of the paper's tables, calibration, PSIS-LOO.

The convergence gates a fit is judged by live with the fitting code, in
:mod:`bayesct.modeling.diagnostics`.
"""

from __future__ import annotations

from bayesct.checks.calibration import (
    CheckError,
    MortalityCalibration,
    compare_models,
    landmark_accuracy,
    mortality_calibration,
    patient_loo,
    pit_summary,
    predictive_pit,
    shared_parts,
)
from bayesct.checks.ppc import (
    LEVELS,
    OUTCOME_STATISTICS,
    PPCError,
    PPCResult,
    ReplicateSet,
    clearly_outside,
    posterior_predictive_check,
    ppp_interval,
    ppp_mcse,
    replicate,
    replicate_set,
    summarise_findings,
    summarise_statistics,
    table_statistics,
)
from bayesct.checks.sensitivity import mortality_prior_sensitivity

__all__ = [
    "LEVELS",
    "OUTCOME_STATISTICS",
    "CheckError",
    "MortalityCalibration",
    "PPCError",
    "PPCResult",
    "ReplicateSet",
    "clearly_outside",
    "compare_models",
    "landmark_accuracy",
    "mortality_calibration",
    "mortality_prior_sensitivity",
    "patient_loo",
    "pit_summary",
    "posterior_predictive_check",
    "ppp_interval",
    "ppp_mcse",
    "predictive_pit",
    "replicate",
    "replicate_set",
    "shared_parts",
    "summarise_findings",
    "summarise_statistics",
    "table_statistics",
]
