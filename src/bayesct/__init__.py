"""bayesct: Bayesian joint modelling of serial CT scores and labs, with a mortality submodel."""

from bayesct.data import Cohort

__version__ = "0.1.0"

__all__ = ["Cohort", "__version__"]
