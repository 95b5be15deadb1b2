"""Where runs execute. The runner and results store do not care: an executor maps a task
function over tasks and yields results as they finish.

* ``local`` with 1 worker runs in this process (simplest to debug and profile);
* ``local`` with N workers uses a process pool (spawned processes: no inherited torch or
  BLAS thread state), each process caching the oracles it loads.

Runs are independent and fully determined by (configuration, seed), so every executor
produces identical files run for run; only the order in which they finish differs.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from oracles.errors import UserError


class LocalExecutor:
    def __init__(self, workers: int = 1):
        self.workers = int(workers)

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        if self.workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
            return
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx)
        try:
            # bounded submission keeps memory flat for studies with many thousands of runs
            it = iter(tasks)
            running = set()
            for t in it:
                running.add(pool.submit(fn, t))
                if len(running) >= 4 * self.workers:
                    break
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        running.add(pool.submit(fn, nxt))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def make_executor(kind: str, workers: int, address: str | None = None):
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
