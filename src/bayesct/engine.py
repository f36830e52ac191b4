"""Many fits as tasks on dask.distributed: one engine for every job that fits a model many times.

Simulation-based calibration (:mod:`bayesct.validation`) and the exact leave-patient-out refits of
model comparison (:mod:`bayesct.checks.refit`) hand their fits to :func:`run_tasks`: each task runs
in a worker process of a ``LocalCluster`` (one single-threaded worker per core, at most one per
task) or of a running scheduler (``scheduler="tcp://host:port"``, a ``dask scheduler`` with its
``dask worker`` processes). A task function must be importable by the workers (a module-level
function) and its argument picklable; a task that raises, or whose worker is lost, comes back as
its exception, never stops the others, and is reported by the caller.

Inside ``with session(...)`` every :func:`run_tasks` call uses that one cluster, so a job made of
several parallel stages (the posterior predictive check: its mixed models, then the patients'
history terms) starts its workers once; :func:`active` says whether a session is open (then
:func:`bayesct.risk.history_terms` spreads its patients over the workers too).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

__all__ = ["active", "chunks", "client", "run_tasks", "session"]

_SESSION: ContextVar[Any] = ContextVar("bayesct_engine_session", default=None)


@contextmanager
def client(scheduler: str | None = None, n_tasks: int = 1, workers: int | None = None) -> Iterator[Any]:
    """A dask ``Client``: of the running ``scheduler``, or of a ``LocalCluster`` of ``workers``
    single-threaded worker processes (default one per core, at most ``n_tasks``), closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        c = Client(scheduler)
        c.run(_quiet_worker)
        try:
            yield c
        finally:
            c.close()
        return
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(
        n_workers=max(1, min(n, n_tasks)),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=40,
    )
    c = Client(cluster)
    c.run(_quiet_worker)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _quiet_worker() -> None:
    """In a worker: PyTensor's notice that it found no BLAS (its C backend; bayesct samples with
    numba) is not printed once per worker, as the command itself does not print it."""
    import warnings

    warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")


def chunks(n: int, k: int) -> list[list[int]]:
    """``range(n)`` in at most ``k`` contiguous, non-empty chunks of near-equal size (the tasks of a job)."""
    bounds = np.linspace(0, n, max(1, min(n, k)) + 1).astype(int)
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds) if b > a]


@contextmanager
def session(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """One cluster (:func:`client`) for every :func:`run_tasks` call inside the ``with`` block."""
    with client(scheduler, n_tasks=workers or os.cpu_count() or 1, workers=workers) as c:
        token = _SESSION.set(c)
        try:
            yield c
        finally:
            _SESSION.reset(token)


def active() -> bool:
    """Whether a :func:`session` is open."""
    return _SESSION.get() is not None


@contextmanager
def _client_for(scheduler: str | None, n_tasks: int, workers: int | None) -> Iterator[Any]:
    open_session = _SESSION.get()
    if open_session is not None and scheduler is None:
        yield open_session
        return
    with client(scheduler, n_tasks, workers) as c:
        yield c


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    name: str = "bayesct",
    shared: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(task)`` (``fn(shared, task)`` when ``shared`` is given: one object sent to every
    worker once, e.g. a posterior) for every task on the cluster (the open :func:`session`'s, else
    one of its own); yield ``(index in tasks, result)`` as each finishes, the result being the
    exception where the task raised or its worker was lost."""
    if not tasks:
        return
    from distributed import as_completed

    with _client_for(scheduler, len(tasks), workers) as c:
        stamp = time.time_ns()
        head = () if shared is None else (c.scatter(shared, broadcast=True, hash=False),)
        futures = [c.submit(fn, *head, t, key=f"{name}-{i}-{stamp}", pure=False) for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            try:
                result: Any = future.result()
            except Exception as err:  # the task raised, or a worker was lost
                result = err
            yield index[future.key], result
