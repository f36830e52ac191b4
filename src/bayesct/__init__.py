"""bayesct: Bayesian joint modelling of serial CT scores and labs, with a mortality submodel.

The library's public API lives here, one import away::

    import bayesct as bc

    cohort = bc.load_default_cohort()  # or bc.read_cohort("visits.csv")
    fit = bc.JointModel("joint").fit(cohort, seed=0)
    risk = bc.risk_query(fit, ct_score=14, day=8, age=60, sex="male")

Every name is loaded on first use (PEP 562): ``import bayesct`` itself imports
neither PyMC, PyTensor, numba, nutpie, ArviZ nor matplotlib.

Data
    :func:`read_cohort`, :func:`write_cohort`, :func:`load_default_cohort`,
    :func:`simulate_cohort`, :class:`Cohort`
The paper's frequentist analysis
    :func:`classical_tables`
The model
    :class:`JointModel`, :class:`FitResult`, :func:`load_fit`
Checks
    :func:`posterior_predictive_check`, :func:`compare`
Risk of death
    :func:`risk_query`, :func:`risk_grid`, :func:`patient_risks`, :func:`write_risk_grid`
Report
    :func:`report`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute there)
_API: dict[str, tuple[str, str]] = {
    "Cohort": ("bayesct.data.cohort", "Cohort"),
    "read_cohort": ("bayesct.data.io", "read_cohort"),
    "write_cohort": ("bayesct.data.io", "write_cohort"),
    "load_default_cohort": ("bayesct.data.default", "load_default_cohort"),
    "simulate_cohort": ("bayesct.data.simulate", "simulate_cohort"),
    "classical_tables": ("bayesct.classical.report", "run_all"),
    "JointModel": ("bayesct.modeling.fit", "JointModel"),
    "FitResult": ("bayesct.modeling.fit", "FitResult"),
    "load_fit": ("bayesct.modeling.fit", "load_fit"),
    "posterior_predictive_check": ("bayesct.checks.ppc", "posterior_predictive_check"),
    "compare": ("bayesct.checks.calibration", "compare_models"),
    "risk_query": ("bayesct.risk", "risk_query"),
    "risk_grid": ("bayesct.risk", "risk_grid"),
    "patient_risks": ("bayesct.risk", "patient_risks"),
    "write_risk_grid": ("bayesct.risk", "write_risk_grid"),
    # the subpackage bayesct.report, callable: bayesct.report(fit, ...) writes the HTML report
    "report": ("bayesct.report", ""),
}

if TYPE_CHECKING:
    from bayesct import report
    from bayesct.checks.calibration import compare_models as compare
    from bayesct.checks.ppc import posterior_predictive_check
    from bayesct.classical.report import run_all as classical_tables
    from bayesct.data.cohort import Cohort
    from bayesct.data.default import load_default_cohort
    from bayesct.data.io import read_cohort, write_cohort
    from bayesct.data.simulate import simulate_cohort
    from bayesct.modeling.fit import FitResult, JointModel, load_fit
    from bayesct.risk import patient_risks, risk_grid, risk_query, write_risk_grid


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'bayesct' has no attribute {name!r}")
    module_name, attribute = _API[name]
    module = importlib.import_module(module_name)
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


__all__ = [
    "Cohort",
    "FitResult",
    "JointModel",
    "__version__",
    "classical_tables",
    "compare",
    "load_default_cohort",
    "load_fit",
    "patient_risks",
    "posterior_predictive_check",
    "read_cohort",
    "report",
    "risk_grid",
    "risk_query",
    "simulate_cohort",
    "write_cohort",
    "write_risk_grid",
]
