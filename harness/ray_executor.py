"""Run an experiment's runs as Ray tasks: one machine's cores, or a whole cluster.

``nas-harness run ... --executor ray [--address ADDR]`` (or ``executor = "ray"`` and
``address = "..."`` in a TOML experiment) sends each (algorithm, oracle, seed) run to Ray
as one task. Runs are independent and fully determined by their configuration and seed
(:mod:`harness.runner`), so the files are identical, run for run, to the local executor's;
only the order in which they finish differs.

Why it is built this way:

* **Each table goes into the object store once.** The driver loads every table the tasks
  need (verifying its checksums, as :func:`oracles.registry.load_oracle` always does) and
  ``ray.put``\\ s it; tasks receive the object reference, so a worker maps the numpy arrays
  from shared memory (zero copy on the same node, one transfer per node otherwise) instead
  of every task reading and hashing the data directory. Two oracles over the same table
  (``nb201/cifar10`` and ``nb201/cifar100``) share one object. Workers cache the oracle they
  build per process, like the local pool's workers.
* **The driver writes the results.** Tasks return their records and summary; the driver
  writes each run with the ``write`` function :meth:`RayExecutor.run` is given (the same
  atomic write as the local executor's) the moment it arrives. Worker nodes therefore
  never need the results folder, a crash of the driver loses only unfinished runs, and
  resuming works exactly as locally (a run is done when its file exists).
* **Bounded submission** (:func:`harness.processes.bounded`, as the local pool). At most
  ``2 x`` the cluster's CPUs (or ``4 x workers`` when larger) tasks are in flight, so a
  study of many thousands of runs does not flood the scheduler, and Ctrl-C has little to
  cancel: the tasks in flight are cancelled.
* **Per-task resources.** A task asks for ``num_cpus=1`` unless the algorithm class (or the
  oracle) declares a ``resources`` mapping, e.g. ``resources = {"num_cpus": 1,
  "num_gpus": 0.25}`` for a torch algorithm that wants a slice of a GPU; Ray then places
  it on a node that has one.

Without an address and without a running Ray instance in this process, a private local
instance with ``workers`` CPUs is started (no dashboard) and shut down at the end. With
``address`` (or ``RAY_ADDRESS`` in the environment) the executor connects to that cluster;
every node needs nas-harness installed (the same version, so the runs are the same).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Iterator

from oracles.errors import UserError

from .processes import bounded

try:
    import ray
except ImportError as _exc:  # executors.make_executor turns this into a one-line UserError
    raise ImportError("ray is not installed") from _exc

#: resources a task asks for when neither its algorithm nor its oracle declares any
DEFAULT_RESOURCES = {"num_cpus": 1}


def _compute_remote(compute, task, shared):
    # Runs in a Ray worker: Ray resolves ``compute`` and ``shared`` from the object store first.
    return compute(task, shared)


def _call_remote(fn, item):
    return fn(item)


def task_resources(task, oracle=None) -> dict[str, float]:
    """Ray resources for one experiment task: the larger of the algorithm's and the oracle's
    declarations (a ``resources`` mapping on the algorithm class or the oracle object)."""
    from algorithms import algorithm_class
    from algorithms.one_shot import is_one_shot, make_one_shot
    res = dict(DEFAULT_RESOURCES)
    algo = task.cell.config["algorithm"]
    # a weight-sharing method's needs follow its parameters (one GPU when it trains on CUDA)
    declared_by_algo = (make_one_shot(algo, task.cell.config["params"]).resources if is_one_shot(algo)
                        else getattr(algorithm_class(algo), "resources", None))
    for who, declared in ((f"algorithm {algo}", declared_by_algo),
                          (f"oracle {task.cell.oracle}", getattr(oracle, "resources", None))):
        for key, value in dict(declared or {}).items():
            if key not in ("num_cpus", "num_gpus", "memory"):
                raise UserError(f"{who} declares unknown resource {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"{who} declares resource {key}={value!r}; give a number >= 0")
            res[key] = max(res.get(key, 0), value)
    return res


class RayExecutor:
    """Ray-backed executor with the same surface as :class:`harness.executors.LocalExecutor`.

    Parameters
    ----------
    workers: CPUs of the private local Ray instance started when no cluster is given (the
        ``--workers`` flag); on a cluster, the cluster's own resources decide parallelism.
    address: a Ray cluster to join (``ray://host:10001`` or ``host:6379``, the ``--address``
        flag); default ``$RAY_ADDRESS``, else a private local instance.
    """

    def __init__(self, workers: int = 1, address: str | None = None):
        self.workers = max(1, int(workers))
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._owned = False

    # -- lifecycle -------------------------------------------------------------------
    def _connect(self) -> None:
        if ray.is_initialized():
            return
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            raise UserError(f"cannot start or reach Ray at {where}: {str(exc).splitlines()[0]}") from None
        self._owned = True

    def _close(self) -> None:
        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False

    def _in_flight(self) -> int:
        cpus = int(ray.cluster_resources().get("CPU", self.workers))
        return max(2 * cpus, 4 * self.workers, 2)

    # -- generic map -------------------------------------------------------------------
    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any],
                      resources: dict[str, float] | None = None) -> Iterator[Any]:
        """``fn(task)`` for every task, as Ray tasks; results as they finish.

        ``resources``: what each Ray task asks for (``num_cpus``, ``num_gpus``, ``memory``);
        default :data:`DEFAULT_RESOURCES`, one CPU.
        """
        tasks = list(tasks)
        if not tasks:
            return
        self._connect()
        try:
            remote = ray.remote(_call_remote).options(**(resources or DEFAULT_RESOURCES))
            fn_ref = ray.put(fn)
            yield from self._stream(((remote, (fn_ref, t)) for t in tasks), lambda r: r)
        finally:
            self._close()

    # -- experiment runs -----------------------------------------------------------------
    def run(self, tasks: Iterable[Any], compute: Callable[..., tuple],
            write: Callable[..., Any]) -> Iterator[Any]:
        """Compute experiment tasks remotely, write each finished one here; yield ``write``'s rows.

        ``tasks``: experiment tasks (:class:`harness.experiment.Task`: ``task.cell.oracle``
        names the oracle, ``task.cell.config["algorithm"]`` the algorithm, whose declared
        resources the task asks for, :func:`task_resources`). ``compute(task, shared)`` runs
        in a Ray worker with what the oracle shares (:meth:`oracles.oracle.Oracle.shared`: a
        table's arrays; nothing for an oracle built from its name) from the object store, and
        returns a tuple;
        ``write(*that tuple)`` runs here, as each task finishes (the interface of
        :meth:`harness.executors.LocalExecutor.run`).
        """
        from oracles.registry import load_oracle
        tasks = list(tasks)
        if not tasks:
            return
        # Load (and verify) every oracle in the driver before starting anything remote, so
        # a missing or damaged table is one clear error, not a failure inside a worker.
        payloads: dict[str, Any] = {}
        by_spec: dict[str, str | None] = {}
        oracles: dict[str, Any] = {}
        for t in tasks:
            spec = t.cell.oracle
            if spec not in by_spec:
                oracles[spec] = load_oracle(spec)
                shared = oracles[spec].shared()
                by_spec[spec] = None if shared is None else shared[0]
                if shared is not None:
                    payloads.setdefault(*shared)
        resources = {t.cell.key: task_resources(t, oracles[t.cell.oracle]) for t in tasks}
        self._connect()
        try:
            refs = {key: ray.put(data) for key, data in payloads.items()}
            self.shared_put = len(refs)    # objects put in the store (one per table)
            remote = ray.remote(_compute_remote)
            compute_ref = ray.put(compute)

            def submissions():
                for t in tasks:
                    yield remote.options(**resources[t.cell.key]), (compute_ref, t, refs.get(by_spec[t.cell.oracle]))

            yield from self._stream(submissions(), lambda out: write(*out))
        finally:
            self._close()

    def _stream(self, submissions: Iterable[tuple[Any, tuple]], finish: Callable[[Any], Any]) -> Iterator[Any]:
        """Submit ``(remote function, args)`` pairs with a bounded number in flight; yield
        ``finish(result)`` as each finishes. A :class:`UserError` raised in a task is raised
        here as itself (one line, no remote traceback); on any error or Ctrl-C the tasks in
        flight are cancelled."""

        def result(ref):
            try:
                out = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, UserError):
                    raise UserError(str(cause)) from None
                raise
            return finish(out)

        def cancel(pending):
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or the cluster is gone: nothing to cancel
                    pass

        return bounded(submissions, lambda sub: sub[0].remote(*sub[1]),
                       lambda refs: ray.wait(refs, num_returns=1), result, self._in_flight(), cancel)
