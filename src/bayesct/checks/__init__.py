"""Model checking: convergence gates and posterior predictive replication of the paper's tables."""

from bayesct.checks.convergence import Diagnostics, compute_diagnostics

__all__ = ["Diagnostics", "compute_diagnostics"]
