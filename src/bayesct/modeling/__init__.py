"""The model: specs (:mod:`~bayesct.modeling.spec`), design arrays, PyMC graphs and kernels, fitting
and its convergence gates (:mod:`~bayesct.modeling.fit`, :mod:`~bayesct.modeling.diagnostics`), and
the posterior in numpy (:mod:`~bayesct.modeling.posterior`).

Importing this package imports none of its modules: PyMC, PyTensor and numba are loaded by the
modules that need them, on first use.
"""
