"""Many fits as tasks on dask.distributed: one engine for every job that fits a model many times.

Simulation-based calibration (:mod:`bayesct.validation`) and the exact leave-patient-out refits of
model comparison (:mod:`bayesct.checks.refit`) hand their fits to :func:`run_tasks`: each task runs
in a worker process of a ``LocalCluster`` (one single-threaded worker per core, at most one per
task) or of a running scheduler (``scheduler="tcp://host:port"``, a ``dask scheduler`` with its
``dask worker`` processes). A task function must be importable by the workers (a module-level
function) and its argument picklable; a task that raises, or whose worker is lost, comes back as
its exception, never stops the others, and is reported by the caller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["client", "run_tasks"]


@contextmanager
def client(scheduler: str | None = None, n_tasks: int = 1, workers: int | None = None) -> Iterator[Any]:
    """A dask ``Client``: of the running ``scheduler``, or of a ``LocalCluster`` of ``workers``
    single-threaded worker processes (default one per core, at most ``n_tasks``), closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        c = Client(scheduler)
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
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def run_tasks[T, R](
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    name: str = "bayesct",
) -> Iterator[tuple[int, R | BaseException]]:
    """Run ``fn(task)`` for every task on the cluster; yield ``(index in tasks, result)`` as each
    finishes, the result being the exception where the task raised or its worker was lost."""
    if not tasks:
        return
    from distributed import as_completed

    with client(scheduler, len(tasks), workers) as c:
        stamp = time.time_ns()
        futures = [c.submit(fn, t, key=f"{name}-{i}-{stamp}", pure=False) for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            try:
                result: R | BaseException = future.result()
            except Exception as err:  # the task raised, or a worker was lost
                result = err
            yield index[future.key], result
