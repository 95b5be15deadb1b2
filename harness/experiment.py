"""An experiment: which algorithms, on which oracles, for which seeds and budget.

Built from command-line flags or a TOML file with the same fields::

    oracles = ["nb201/cifar10", "nb201/cifar100"]
    algorithms = ["random", "evolution", "lanas:preset=paper"]
    seeds = 100            # number of seeds
    seed_start = 0         # first seed
    budget = 500           # distinct architectures per run; omit for the space size
    until_optimum = true   # stop each run at the first global optimum (censored at the budget)
    charge_repeats = false
    workers = 2
    out = "runs/fig5"

:func:`plan` resolves it into cells (full configurations, oracle checksums) and
:func:`execute` runs every (cell, seed) not already in the results folder on an executor.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable

from algorithms import make_algorithm, parse_spec
from oracles.errors import UserError
from oracles.registry import load_oracle

from .results import Cell, ResultsStore, machine_info
from .runner import PROTOCOL, RunConfig, resolve_budget, run_one


@dataclass
class Experiment:
    oracles: list[str] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    seeds: int = 10
    seed_start: int = 0
    budget: int | None = None
    until_optimum: bool = False
    charge_repeats: bool = False
    max_repeats: int = 10_000
    workers: int = 1
    executor: str = "local"
    address: str | None = None  #: Ray cluster address (executor "ray"); None: $RAY_ADDRESS or local
    out: str = "runs-default"

    def validate(self) -> "Experiment":
        if not self.oracles:
            raise UserError("no oracle given: use --oracle NAME (see `nas-harness oracles list`)")
        if not self.algorithms:
            raise UserError("no algorithm given: use --algorithm NAME")
        for name, value, low in (("seeds", self.seeds, 1), ("seed_start", self.seed_start, 0),
                                 ("workers", self.workers, 1), ("max_repeats", self.max_repeats, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.budget is not None and (not isinstance(self.budget, int) or isinstance(self.budget, bool)
                                        or self.budget < 1):
            raise UserError(f"budget must be a positive integer number of architectures, got {self.budget!r}")
        if self.executor not in ("local", "ray"):
            raise UserError(f"executor must be 'local' or 'ray', got {self.executor!r}")
        if self.address is not None and (self.executor != "ray" or not isinstance(self.address, str)):
            raise UserError("--address is for the ray executor: add --executor ray")
        if len(set(self.algorithms)) != len(self.algorithms):
            raise UserError("the same algorithm label is listed twice")
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed_start, self.seed_start + self.seeds))


_TYPES = {f.name: f.type for f in fields(Experiment)}


def load_toml(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read an experiment file; unknown keys and wrong types are one-line errors."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"experiment file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read experiment file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(data) - set(_TYPES)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(_TYPES)}")
    for key in ("oracles", "algorithms"):
        if key in data:
            v = data[key]
            if isinstance(v, str):
                data[key] = [v]
            elif not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise UserError(f"{path}: {key} must be a list of strings")
    for key in ("seeds", "seed_start", "budget", "workers", "max_repeats"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)):
            raise UserError(f"{path}: {key} must be an integer, got {data[key]!r}")
    for key in ("until_optimum", "charge_repeats"):
        if key in data and not isinstance(data[key], bool):
            raise UserError(f"{path}: {key} must be true or false, got {data[key]!r}")
    for key in ("out", "executor", "address"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{path}: {key} must be a string")
    if "out" in data and not os.path.isabs(data["out"]):
        pass  # relative to the current directory, like --out
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return Experiment(**data).validate()


def label_of(spec: str) -> str:
    """Normalised label of an algorithm spec (parameters sorted)."""
    name, params = parse_spec(spec)
    return name if not params else name + ":" + ",".join(f"{k}={params[k]}" for k in sorted(params))


def plan(exp: Experiment) -> list[Cell]:
    """Resolve every (algorithm, oracle) pair into a cell with its full configuration."""
    from .metrics import oracle_facts
    cells = []
    for oracle_spec in exp.oracles:
        # kept for runs in this process (one worker): loading NB201 again costs a second
        oracle = _ORACLES[oracle_spec] = load_oracle(oracle_spec)
        facts = oracle_facts(oracle)  # stored for the analysis (report/plot need no table)
        for spec in exp.algorithms:
            name, params = parse_spec(spec)
            algo = make_algorithm(name, params)
            if getattr(algo, "needs_finite_space", False) and not oracle.space.is_finite:
                raise UserError(f"{name} needs a finite space; {oracle_spec} is not enumerable")
            rc = RunConfig(algorithm=name, params=algo.get_params(), oracle=oracle_spec,
                           budget=exp.budget, until_optimum=exp.until_optimum,
                           charge_repeats=exp.charge_repeats, max_repeats=exp.max_repeats)
            config = rc.as_dict()
            config["budget"] = resolve_budget(rc, oracle)
            config["oracle_checksum"] = oracle.checksum
            config["protocol"] = PROTOCOL
            cells.append(Cell(label=label_of(spec), oracle=oracle_spec, config=_jsonable(config),
                              oracle_facts=facts))
    return cells


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# --- running ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One run to do; small and picklable so any executor can ship it."""

    cell: Cell
    seed: int
    out: str
    #: the algorithm's ``"module:Class"`` as the driver's registry has it: a worker process
    #: (or Ray worker) uses it even when the algorithm was registered at run time, e.g. by a
    #: script or a test adding to ``algorithms.REGISTRY`` (workers import a fresh registry)
    algorithm_target: str | None = None

    def run_config(self) -> RunConfig:
        c = self.cell.config
        return RunConfig(algorithm=c["algorithm"], params=c["params"], oracle=c["oracle"],
                         budget=c["budget"], until_optimum=c["until_optimum"],
                         charge_repeats=c["charge_repeats"], max_repeats=c["max_repeats"])


_ORACLES: dict[str, Any] = {}


def _oracle_for(task: Task, table=None):
    """The task's oracle, cached per process; built from ``table`` when an executor ships one."""
    oracle = _ORACLES.get(task.cell.oracle)
    if oracle is None or oracle.checksum != task.cell.config["oracle_checksum"]:
        oracle = _ORACLES[task.cell.oracle] = load_oracle(task.cell.oracle, table=table)
    if oracle.checksum != task.cell.config["oracle_checksum"]:
        raise UserError(f"the data behind {task.cell.oracle} changed while the experiment ran; re-run it")
    return oracle


def _registered(task: Task) -> None:
    from algorithms import REGISTRY
    name = task.cell.config["algorithm"]
    if task.algorithm_target and REGISTRY.get(name) != task.algorithm_target:
        REGISTRY[name] = task.algorithm_target


def compute_task(task: Task, table=None) -> tuple[Task, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run one task without writing anything: (task, records, summary, machine).

    Executors whose workers may sit on other machines (Ray) call this remotely, with the
    oracle's ``table`` taken from their object store, and write the file in the driver with
    :func:`write_task`, so the results folder only ever needs to exist where the user is.
    ``machine`` (:func:`harness.results.machine_info`, with the one BLAS thread runs use)
    describes the machine that computed the run, which is not the driver's on a cluster.
    A run whose algorithm raised comes back with ``summary["failed"]`` set (see
    :mod:`harness.runner`); only configuration and data errors raise here.
    """
    _registered(task)
    records, summary = run_one(task.run_config(), _oracle_for(task, table), task.seed)
    return task, records, summary, machine_info(threads=1)  # run_one limits BLAS to 1 thread


def write_task(task: Task, records: dict[str, Any], summary: dict[str, Any],
               machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one finished run (atomically), or the record of a failed one, and return the
    result row ``execute`` reports."""
    store = ResultsStore(task.out)
    if summary.get("failed"):
        store.write_failure(task.cell, task.seed, summary, machine)
    else:
        store.write_run(task.cell, task.seed, records, summary, machine)
    return {"cell": task.cell.key, "seed": task.seed, **summary}


def run_task(task: Task) -> dict[str, Any]:
    """Execute one task and write its file; runs in a worker (oracles cached per process)."""
    return write_task(*compute_task(task))


def pending_tasks(exp: Experiment, cells: list[Cell], store: ResultsStore) -> tuple[list[Task], int]:
    """The runs of ``cells`` not yet done (failed runs included: they are retried)."""
    from algorithms import REGISTRY
    tasks, done = [], 0
    for cell in cells:
        target = REGISTRY.get(cell.config["algorithm"])
        for seed in exp.seed_list:
            if store.is_done(cell, seed):
                done += 1
            else:
                tasks.append(Task(cell, seed, str(store.root), target))
    return tasks, done


def execute(exp: Experiment, on_result: Callable[[dict[str, Any]], None] | None = None,
            progress: bool = True) -> tuple[list[Cell], int, int]:
    """Run every missing (cell, seed); return (cells, runs skipped as done, runs executed)."""
    from .executors import make_executor
    from .interrupts import raise_if_swallowed
    exp.validate()
    cells = plan(exp)
    store = ResultsStore(exp.out)
    executor = make_executor(exp.executor, exp.workers, exp.address)
    with store.session():  # one writer per folder; leftovers of a killed run removed
        cells = store.register(cells)  # as the folder holds them (older folders keep their names)
        tasks, done = pending_tasks(exp, cells, store)
        bar = _progress_bar(len(tasks) + done, done, progress)
        # executors whose workers may be on other machines compute remotely and write here
        run_tasks = getattr(executor, "run_tasks", None)
        results = run_tasks(tasks) if run_tasks is not None else executor.map_unordered(run_task, tasks)
        try:
            raise_if_swallowed()          # a Ctrl-C lost while modules loaded stops us here
            for result in results:
                if bar is not None:
                    bar.update(1)
                if on_result is not None:
                    on_result(result)
                raise_if_swallowed()
        finally:
            # An interrupt raised here, outside the executor's generator, would only reach the
            # generator (and stop its workers) when it is garbage-collected: after the session
            # has swept temporaries. Closing it now stops every worker before that sweep.
            close = getattr(results, "close", None)
            if close is not None:
                close()
            if bar is not None:
                bar.close()
    return cells, done, len(tasks)


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled or total == initial:
        return None
    from tqdm import tqdm
    # disable=None: a bar on a terminal, silence in CI logs and pipes
    return tqdm(total=total, initial=initial, unit="run", desc="runs", disable=None, dynamic_ncols=True)


def iter_tasks(cells: Iterable[Cell], seeds: Iterable[int], out: str) -> list[Task]:
    return [Task(c, s, out) for c in cells for s in seeds]
