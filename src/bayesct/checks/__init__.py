"""Model checking: convergence gates and posterior predictive replication of the paper's tables.

The convergence gates are imported eagerly (the fitting code needs them); the posterior predictive
checks (:mod:`bayesct.checks.ppc`) and standard checks (:mod:`bayesct.checks.calibration`) are
imported on first use, because they themselves build on :mod:`bayesct.modeling.fit`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayesct.checks.convergence import Diagnostics, compute_diagnostics

if TYPE_CHECKING:
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
        run_cli,
        summarise_findings,
        summarise_statistics,
        table_statistics,
    )
    from bayesct.checks.sensitivity import mortality_prior_sensitivity

_LAZY = {
    "CheckError": "calibration",
    "MortalityCalibration": "calibration",
    "compare_models": "calibration",
    "mortality_calibration": "calibration",
    "landmark_accuracy": "calibration",
    "mortality_prior_sensitivity": "sensitivity",
    "patient_loo": "calibration",
    "pit_summary": "calibration",
    "predictive_pit": "calibration",
    "shared_parts": "calibration",
    "LEVELS": "ppc",
    "OUTCOME_STATISTICS": "ppc",
    "PPCError": "ppc",
    "PPCResult": "ppc",
    "ReplicateSet": "ppc",
    "clearly_outside": "ppc",
    "posterior_predictive_check": "ppc",
    "ppp_interval": "ppc",
    "ppp_mcse": "ppc",
    "replicate": "ppc",
    "replicate_set": "ppc",
    "run_cli": "ppc",
    "summarise_findings": "ppc",
    "summarise_statistics": "ppc",
    "table_statistics": "ppc",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"bayesct.checks.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'bayesct.checks' has no attribute {name!r}")


__all__ = [
    "LEVELS",
    "OUTCOME_STATISTICS",
    "CheckError",
    "Diagnostics",
    "MortalityCalibration",
    "PPCError",
    "PPCResult",
    "ReplicateSet",
    "clearly_outside",
    "compare_models",
    "compute_diagnostics",
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
    "run_cli",
    "shared_parts",
    "summarise_findings",
    "summarise_statistics",
    "table_statistics",
]
