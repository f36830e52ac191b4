"""Formatting of estimates with their uncertainty, figures and the report.

The package is callable: ``bayesct.report(out)`` writes ``out/report.md`` from the results
under ``out`` (:func:`bayesct.report.markdown.write_report`, whose parameters it takes).

Parameters
----------
out
    The results folder: any of ``fit/``, ``classical/``, ``check/`` and ``risk/risk_grid.csv``.
fit
    The fit saved in ``out/fit``, when it is at hand (keyword only).

Returns
-------
pathlib.Path
    ``out/report.md``.

Examples
--------
>>> import bayesct as bc
>>> bc.report("demo-output")  # doctest: +SKIP
PosixPath('demo-output/report.md')
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any


class _ReportPackage(types.ModuleType):
    """This package, callable as the report writer."""

    def __call__(self, out: str | Path, *, fit: Any = None) -> Path:
        from bayesct.report.markdown import write_report

        return write_report(out, fit=fit)


sys.modules[__name__].__class__ = _ReportPackage
