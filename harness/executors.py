"""Where runs execute. The runner and results store do not care: an executor maps a task
function over tasks and yields results as they finish.

* ``local`` with 1 worker runs in this process (simplest to debug and profile);
* ``local`` with N workers uses a process pool (spawned processes: no inherited torch or
  BLAS thread state), each process caching the oracles it loads. Ctrl-C is handled by the
  parent alone: queued runs are cancelled, running ones abandoned (their temporary files
  removed), and workers whose parent was killed outright exit on their own.

Runs are independent and fully determined by (configuration, seed), so every executor
produces identical files run for run; only the order in which they finish differs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from oracles.errors import UserError

#: how often a worker checks that the process that started it is still alive (seconds)
ORPHAN_CHECK_S = 0.5
#: how long an interrupted pool's workers get to abandon their runs before being killed
STOP_GRACE_S = 5.0


def _worker_init(parent: int) -> None:
    """Make a pool worker safe to interrupt and to orphan.

    * Ctrl-C goes to the whole foreground process group; only the parent should handle it
      (one message, no worker tracebacks), so workers ignore SIGINT. They are started with
      SIGINT blocked (see :func:`_sigint_deferred`), so even a Ctrl-C during their start-up
      cannot reach them before this runs.
    * SIGTERM, sent by the parent when it stops early, ends the worker at once and quietly
      (even inside the initializer); a temporary file it was writing is removed by the
      results folder's session (:meth:`harness.results.ResultsStore.session`) once the
      parent has stopped every worker.
    * If the parent dies without cleaning up (SIGKILL, OOM killer) the pool's pipes stay
      open and a worker would wait forever; a watchdog thread ends it instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(128 + signum))
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def watchdog():
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        os._exit(1)

    threading.Thread(target=watchdog, name="orphan-watchdog", daemon=True).start()


@contextmanager
def _sigint_deferred():
    """Hold back Ctrl-C while worker processes may be started; raise it afterwards.

    Starting a spawned worker is not atomic: the parent launches the child and then writes
    the child's start-up data into a pipe. An interrupt between the two leaves the child
    reading a closed pipe, and it prints a bootstrap traceback (``EOFError: Ran out of
    input``) under the resume message. Two things are needed to close that window:

    * a Python-level handler that only records the signal. Blocking SIGINT in this thread
      alone is not enough: the kernel may hand a process-directed SIGINT to any thread that
      does not block it (tqdm's monitor, Arrow's thread pools), and CPython then raises
      KeyboardInterrupt in the main thread regardless of the main thread's mask;
    * SIGINT blocked in this thread, because a spawned child inherits the mask of the thread
      that starts it: a Ctrl-C sent to the whole process group stays pending in a child
      until :func:`_worker_init` has made it ignore SIGINT.

    A Ctrl-C that arrived meanwhile is handed to the previous handler once workers are up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    masked = hasattr(signal, "pthread_sigmask")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masked else None
    try:
        yield
    finally:
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a pending SIGINT lands in `caught`
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, caught[-1])
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued runs and end the running ones now (their files are never half-written)."""
    procs = list(getattr(pool, "_processes", {}).values())  # CPython detail; empty if absent
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource-tracker process from warning after a Ctrl-C.

    The tracker starts with the first pool and inherits this interpreter's -W options. After
    an interrupt, ``_stop_pool`` ends the workers and the semaphores are removed, yet the
    tracker sometimes still reports them as leaked and then fails to unlink them ("No such
    file or directory"): two lines of noise under the one-line resume message.
    """
    option = "ignore:resource_tracker:UserWarning"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


def spawn_pool(max_workers: int, initializer: Callable[..., None], initargs: tuple) -> ProcessPoolExecutor:
    """A process pool of freshly spawned workers (no inherited torch or BLAS thread state)."""
    _quiet_resource_tracker()
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn"),
                               initializer=initializer, initargs=initargs)


class LocalExecutor:
    def __init__(self, workers: int = 1):
        self.workers = int(workers)

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        if self.workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
            return
        pool = spawn_pool(min(self.workers, len(tasks)), _worker_init, (os.getpid(),))
        try:
            # bounded submission keeps memory flat for studies with many thousands of runs
            it = iter(tasks)
            running = set()
            with _sigint_deferred():  # submit() may start workers
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
                        with _sigint_deferred():
                            running.add(pool.submit(fn, nxt))
        except BaseException:
            _stop_pool(pool)
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
