"""Where runs execute. The runner and results store do not care: an executor runs tasks and
yields their results as they finish.

Every executor has the one method the experiment uses, :meth:`run`::

    for row in executor.run(tasks, compute, write):   # row = write(*compute(task)), per task
        ...

``compute(task)`` does the work (a search run) wherever the executor's workers are and
returns a tuple; ``write(*that tuple)`` stores it (an atomic file in the results folder) and
returns the row to report. Both must be importable by name (module-level functions), as
workers import them afresh.

* ``local`` (:class:`LocalExecutor`) with 1 worker runs in this process (simplest to debug
  and profile); with N workers it uses a process pool (:func:`harness.processes.spawn_pool`:
  spawned processes, each caching the oracles it loads) and writes in the workers, which
  share this machine's disk. Ctrl-C is handled by the parent alone: queued runs are
  cancelled, running ones abandoned (their temporary files removed), and workers whose
  parent was killed outright exit on their own.
* ``ray`` (:class:`harness.ray_executor.RayExecutor`) computes in Ray tasks, on this machine
  or a cluster, with each oracle's data shipped once through the object store
  (``compute(task, data)``), and writes in this process, so worker nodes never need the
  results folder.

Runs are independent and fully determined by (configuration, seed), so every executor
produces identical files run for run; only the order in which they finish differs.
Both also offer ``map_unordered(fn, items)``: ``fn(item)`` for every item, as they finish.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable, Iterator

from oracles.errors import UserError

from .processes import map_unordered


def _compute_and_write(compute: Callable[..., tuple], write: Callable[..., Any], task: Any) -> Any:
    return write(*compute(task))


class LocalExecutor:
    """Runs on this machine: in this process (``workers`` = 1) or a pool of ``workers``
    spawned processes (the ``--workers`` flag; default 1)."""

    def __init__(self, workers: int = 1):
        self.workers = int(workers)

    def run(self, tasks: Iterable[Any], compute: Callable[..., tuple],
            write: Callable[..., Any]) -> Iterator[Any]:
        """``write(*compute(task))`` for every task, computed and written by the workers (or
        this process); yields what ``write`` returns, in the order tasks finish."""
        return self.map_unordered(partial(_compute_and_write, compute, write), tasks)

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``fn(task)`` for every task, results as they finish (:func:`harness.processes.map_unordered`)."""
        tasks = list(tasks)
        return map_unordered(fn, tasks, min(self.workers, len(tasks)))


def make_executor(kind: str, workers: int, address: str | None = None):
    """The executor an experiment names: ``kind`` ``"local"`` or ``"ray"`` (``--executor``),
    ``workers`` processes or local Ray CPUs (``--workers``), ``address`` a Ray cluster
    (``--address``; Ray only)."""
    if kind == "local":
        if address:
            raise UserError("--address is for the ray executor: add --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        try:
            from .ray_executor import RayExecutor
        except ImportError:
            raise UserError("the ray executor needs Ray: pip install 'nas-harness[ray]'") from None
        return RayExecutor(workers, address=address)
    raise UserError(f"unknown executor {kind!r}: choose local or ray")
