"""Domain-named exceptions.

Every error a user can trigger with bad input or a bad option derives from
:class:`BayesctError`; the CLI turns these into one clear line and a non-zero
exit code. ``assert`` is never used for input validation.
"""

from __future__ import annotations


class BayesctError(Exception):
    """Base class of every error bayesct raises on purpose."""


class DataValidationError(BayesctError):
    """Input data that break the column contract.

    Parameters
    ----------
    message
        What is wrong, in words a data manager understands.
    file
        The file the value came from (``"<DataFrame>"`` for in-memory data).
    row
        Row number as a spreadsheet shows it: the header is row 1, the first
        data row is row 2. ``None`` when the problem is not tied to one row.
    column
        The offending column, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SpecError(BayesctError):
    """A model spec file or a model option that cannot be used."""


class NotFittedError(BayesctError):
    """A method that needs a posterior was called before ``fit``."""


class OutputExistsError(BayesctError):
    """An output folder that exists and is not empty, without ``overwrite`` (``--force``)."""


class IncompleteFitError(BayesctError):
    """A fit folder that is not a complete, finite fit (interrupted, partial or altered)."""


class Interrupted(BayesctError):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM; nothing was written to its output.

    Parameters
    ----------
    signum
        The signal received, or ``None`` when unknown.
    """

    def __init__(self, signum: int | None = None) -> None:
        import signal

        self.signum = signum
        name = signal.Signals(signum).name if signum is not None else None
        super().__init__(f"interrupted ({name})" if name else "interrupted")


class ConvergenceWarning(UserWarning):
    """A fit missed one or more convergence gates."""
