"""Worker processes that are safe to interrupt and to orphan, fed a bounded number of tasks.

One implementation for everything that trains or runs in parallel on this machine: the
experiment executors (:mod:`harness.executors`, and :mod:`harness.ray_executor` for the
bounded submission) and the table collector (:mod:`oracles.collectors.convnet`).

* :func:`spawn_pool`: freshly spawned workers (no inherited torch or BLAS thread state).
  Ctrl-C is the parent's alone to handle (one message, no worker tracebacks); a worker told
  to stop (SIGTERM) ends at once; a worker whose parent was killed outright exits on its own.
* :func:`sigint_deferred`: holds Ctrl-C back while a worker starts (see there why).
* :func:`stop_pool`: cancels queued tasks and ends running ones now.
* :func:`map_unordered`: ``fn(item)`` for every item over such a pool, at most a bounded
  number in flight, results as they finish; in this process with one worker.
* :func:`bounded`: the bounded-submission loop itself, for any backend (process pool, Ray).

A Ctrl-C that CPython swallows in a callback is another matter: :mod:`harness.interrupts`.
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
from typing import Any, Callable, Iterable, Iterator, TypeVar

#: how often a worker checks that the process that started it is still alive (seconds)
ORPHAN_CHECK_S = 0.5
#: how long an interrupted pool's workers get to abandon their tasks before being killed
STOP_GRACE_S = 5.0

H = TypeVar("H")
_END = object()


def make_worker_safe(parent: int) -> None:
    """Make this pool worker safe to interrupt and to orphan (:func:`spawn_pool` calls it first
    in every worker; ``parent`` is the pid of the process that started the pool).

    * Ctrl-C goes to the whole foreground process group; only the parent should handle it
      (one message, no worker tracebacks), so workers ignore SIGINT. They are started with
      SIGINT blocked (see :func:`sigint_deferred`), so even a Ctrl-C during their start-up
      cannot reach them before this runs.
    * SIGTERM, sent by :func:`stop_pool`, ends the worker at once and quietly (even inside
      an initializer); a temporary file it was writing is removed by its owner once every
      worker has stopped (:meth:`harness.results.ResultsStore.session`), and a collector row
      it was computing was never written.
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


def _init_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    make_worker_safe(parent)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def sigint_deferred():
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
      until :func:`make_worker_safe` has made it ignore SIGINT.

    A Ctrl-C that arrived meanwhile is handed to the previous handler once workers are up.
    Outside the main thread (where no signal handler can be set) it does nothing.
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


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued tasks and end the running ones now: SIGTERM, then SIGKILL to a worker
    still alive after :data:`STOP_GRACE_S` (their files are never half-written)."""
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
    an interrupt, :func:`stop_pool` ends the workers and the semaphores are removed, yet the
    tracker sometimes still reports them as leaked and then fails to unlink them ("No such
    file or directory"): two lines of noise under the one-line resume message.
    """
    option = "ignore:resource_tracker:UserWarning"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


def spawn_pool(max_workers: int, initializer: Callable[..., None] | None = None,
               initargs: tuple = ()) -> ProcessPoolExecutor:
    """A process pool of freshly spawned workers, each made safe by :func:`make_worker_safe`.

    ``max_workers``: the number of worker processes. ``initializer(*initargs)``: run in each
    worker after it was made safe (e.g. load a data set once per worker); it must be
    importable by name (a module-level function), as spawned workers import it afresh.
    Submit with :func:`sigint_deferred` held (submitting may start a worker), and end an
    interrupted pool with :func:`stop_pool`; :func:`map_unordered` does both.
    """
    _quiet_resource_tracker()
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), initializer, initargs))


def bounded(items: Iterable[Any], submit: Callable[[Any], H],
            wait_any: Callable[[list[H]], tuple[Iterable[H], Iterable[H]]],
            result: Callable[[H], Any], limit: int, abort: Callable[[list[H]], None]) -> Iterator[Any]:
    """Submit ``items`` with at most ``limit`` in flight; yield each one's result as it finishes.

    ``submit(item)`` starts one item and returns a handle (a future, a Ray object reference);
    ``wait_any(handles)`` blocks until at least one finished and returns (finished,
    unfinished); ``result(handle)`` gives a finished item's result (raising its error).
    Each finished item frees a place for the next one, so a study of many thousands of tasks
    keeps memory (and a scheduler's queue) flat, and an interrupt has little to cancel.
    ``abort(unfinished handles)`` is called when anything raises (a task's error, Ctrl-C) or
    the consumer stops early (the generator is closed), before the exception propagates.
    """
    items = iter(items)
    pending: list[H] = []
    try:
        for item in items:
            pending.append(submit(item))
            if len(pending) >= limit:
                break
        while pending:
            finished, unfinished = wait_any(pending)
            pending = list(unfinished)
            for handle in finished:
                yield result(handle)
                item = next(items, _END)
                if item is not _END:
                    pending.append(submit(item))
    except BaseException:
        abort(pending)
        raise


def map_unordered(fn: Callable[[Any], Any], items: Iterable[Any], workers: int,
                  initializer: Callable[..., None] | None = None, initargs: tuple = (),
                  in_flight: int | None = None) -> Iterator[Any]:
    """``fn(item)`` for every item, results in the order they finish.

    ``workers``: with 1 (or fewer) everything runs in this process, in order (simplest to
    debug and profile; ``initializer(*initargs)`` is called here once first); otherwise a
    :func:`spawn_pool` of that many workers, stopped at once (:func:`stop_pool`) when a task
    raises, Ctrl-C arrives or the consumer closes the iterator. ``fn`` and ``initializer``
    must be importable by name (module-level functions, or :func:`functools.partial` of
    them). ``in_flight``: items submitted at a time (default ``4 * workers``, which keeps
    every worker busy while memory stays flat).
    """
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield fn(item)
        return
    pool = spawn_pool(workers, initializer, initargs)

    def submit(item):
        with sigint_deferred():  # submit() may start a worker
            return pool.submit(fn, item)

    yield from bounded(items, submit, lambda futures: wait(futures, return_when=FIRST_COMPLETED),
                       lambda future: future.result(), in_flight or 4 * workers, lambda _: stop_pool(pool))
    pool.shutdown(wait=True)
