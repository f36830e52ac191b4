"""Formatting of estimates with their uncertainty, figures and the reports.

The package is callable: ``bayesct.report(fit, check=..., grid=..., path=...)`` writes the
self-contained HTML report of a fit (:func:`bayesct.report.html.write_html_report`, whose
parameters it takes); the Markdown report of a results folder is
:func:`bayesct.report.markdown.write_report`.

Parameters
----------
fit
    A :class:`~bayesct.modeling.fit.FitResult` or a fit folder.
check
    The posterior predictive check (a ``PPCResult`` or the folder ``bayesct check`` wrote), optional.
grid
    The risk grid (a DataFrame from :func:`bayesct.risk_grid` or its CSV), optional.
path
    The HTML file to write (default ``report.html``).

Returns
-------
pathlib.Path
    The page written.

Examples
--------
>>> import bayesct as bc
>>> fit = bc.load_fit("fit")  # doctest: +SKIP
>>> bc.report(fit, check="check", grid="grid.csv", path="report.html")  # doctest: +SKIP
PosixPath('report.html')
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any


class _ReportPackage(types.ModuleType):
    """This package, callable as the HTML report writer."""

    def __call__(
        self,
        fit: Any,
        *,
        check: Any = None,
        grid: Any = None,
        path: str | Path = "report.html",
        **options: Any,
    ) -> Path:
        from bayesct.report.html import write_html_report

        return write_html_report(fit, check=check, grid=grid, path=path, **options)


sys.modules[__name__].__class__ = _ReportPackage
