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
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from algorithms import algorithm_source, make_algorithm, parse_spec
from algorithms.one_shot import is_one_shot
from oracles.errors import UserError
from oracles.registry import load_oracle, oracle_source

from .results import Cell, ResultsStore, machine_info
from .runner import PROTOCOL, RunConfig, check_features, check_fidelities, resolve_budget, run_one, setting


def _experiment_fields() -> list[tuple[str, Any, Any]]:
    """The experiment's own fields, then every run setting of :class:`RunConfig` (declared
    there once: name, default, meaning, checks)."""
    own = [
        ("oracles", list[str], setting([], "oracle name, e.g. nb201/cifar10 (repeatable)", type=(list,),
                                       flag="--oracle")),
        ("algorithms", list[str], setting([], "algorithm with optional parameters, e.g. lanas:preset=paper "
                                              "(repeatable)", type=(list,), flag="--algorithm")),
        ("seeds", int, setting(10, "number of seeds (default 10)", low=1)),
        ("seed_start", int, setting(0, "first seed (default 0)", low=0)),
    ]
    runs = [(f.name, f.type, field(default=f.default, metadata=f.metadata)) for f in RunConfig.settings()]
    where = [
        ("workers", int, setting(1, "parallel worker processes (default 1)", low=1)),
        ("executor", str, setting("local", "where runs execute (default local)", choices=("local", "ray"))),
        ("address", "str | None", setting(None, "Ray cluster to run on with --executor ray "
                                               "(default $RAY_ADDRESS, else a local instance)", type=(str,))),
        ("out", str, setting("runs-default", "results folder (default runs-default)")),
    ]
    return own + runs + where


def _validate(self) -> "Experiment":
    if not self.oracles:
        raise UserError("no oracle given: use --oracle NAME (see `nas-harness oracles list`)")
    if not self.algorithms:
        raise UserError("no algorithm given: use --algorithm NAME")
    for f in fields(self):
        check_value(f, getattr(self, f.name), where="")
    if self.address is not None and self.executor != "ray":
        raise UserError("--address is for the ray executor: add --executor ray")
    if self.budget_kind in ("time", "epochs") and self.budget is None:
        raise UserError(f"a {self.budget_kind} budget needs --budget")
    if self.budget is not None and self.budget_kind in ("archs", "queries") and isinstance(self.budget, float):
        raise UserError(f"budget must be a whole number of {self.budget_kind}, got {self.budget!r}")
    if len(set(self.algorithms)) != len(self.algorithms):
        raise UserError("the same algorithm label is listed twice")
    return self


def check_value(f, value: Any, where: str) -> None:
    """One-line error unless ``value`` suits the declared field ``f`` (None: its default)."""
    meta = f.metadata
    if value is None and f.default is None:
        return
    types = meta["type"]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if ok and list in types:
        ok = all(isinstance(x, str) for x in value)
    name = f"{where}{f.name}"
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                list: "a list of strings"}
        want = " or ".join(dict.fromkeys(kind.get(t, t.__name__) for t in types))
        raise UserError(f"{name} must be {want}, got {value!r}")
    if meta.get("low") is not None and value < meta["low"]:
        raise UserError(f"{name} must be >= {meta['low']}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise UserError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")


#: An experiment: which algorithms, on which oracles, for which seeds, with which run
#: settings, where. Its fields are declared once (:func:`_experiment_fields`, the run settings
#: in :class:`~harness.runner.RunConfig`); the TOML reader and the ``run`` command's flags are
#: built from the same declarations.
Experiment = make_dataclass(
    "Experiment", _experiment_fields(),
    namespace={"validate": _validate,
               "seed_list": property(lambda self: list(range(self.seed_start, self.seed_start + self.seeds))),
               "__doc__": "An experiment: algorithms x oracles x seeds with run settings (see the module)."})

Experiment.__module__ = __name__  # (make_dataclass's own module argument is Python >= 3.12)
FIELDS = {f.name: f for f in fields(Experiment)}


def load_toml(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> "Experiment":
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
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(FIELDS)}")
    for key in ("oracles", "algorithms"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    for key, value in data.items():
        check_value(FIELDS[key], value, where=f"{path}: ")
    # relative paths (out) are relative to the current directory, like --out
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
            if is_one_shot(name):     # a weight-sharing method: the one-shot loop (harness.one_shot)
                cells.append(_one_shot_cell(exp, spec, name, params, oracle_spec, oracle, facts))
                continue
            algo = make_algorithm(name, params)
            if getattr(algo, "needs_finite_space", False) and not oracle.space.is_finite:
                raise UserError(f"{name} needs a finite space; {oracle_spec} is not enumerable")
            rc = RunConfig(algorithm=name, params=algo.get_params(), oracle=oracle_spec,
                           **{f.name: getattr(exp, f.name) for f in RunConfig.settings()})
            check_fidelities(name, algo, oracle)   # before any run starts
            check_features(name, algo, oracle)
            config = {"algorithm": name, "params": rc.params, "oracle": oracle_spec, **rc.settings_dict()}
            config["budget"] = resolve_budget(rc, oracle)
            config["oracle_checksum"] = oracle.checksum
            config["protocol"] = PROTOCOL
            # a plugin's code is not the harness's: record its package and version
            for key, source in (("algorithm_source", algorithm_source(name)),
                                ("oracle_source", oracle_source(oracle_spec))):
                if source is not None:
                    config[key] = source
            cells.append(Cell(label=label_of(spec), oracle=oracle_spec, config=_jsonable(config),
                              oracle_facts=facts))
    return cells


def _one_shot_cell(exp: Experiment, spec: str, name: str, params: dict, oracle_spec: str, oracle,
                   facts: dict) -> Cell:
    """The cell of a one-shot method (:mod:`algorithms.one_shot`) on ``oracle``, whose space
    names the derived architectures and which is their ground truth where
    :func:`harness.one_shot.ground_truth` accepts it. Its budget is the epochs trained."""
    from algorithms.one_shot import make_one_shot
    from oracles.darts_space import DartsSpace
    from oracles.nb201_space import NB201Space

    from .one_shot import planned_epochs
    method = make_one_shot(name, params)
    # a partial ground truth serves a subset of the NB201 cells; its derived cells outside the
    # subset are recorded without a true value (harness.one_shot)
    space = getattr(oracle.space, "parent", oracle.space)
    if method.space == "darts" and not isinstance(space, DartsSpace):
        raise UserError(f"{name} with space=darts searches the DARTS space; {oracle_spec} is another space "
                        "(name a DARTS-space oracle: supernet/NAME of 'nas-harness supernet train darts')")
    if method.space == "nb201" and not isinstance(space, NB201Space):
        hint = f"; for the DARTS space give {name}:space=darts" if isinstance(space, DartsSpace) else ""
        raise UserError(f"{name} searches the NB201 cell space; {oracle_spec} is another space "
                        f"(use an NB201 oracle, e.g. nb201/cifar10{hint})")
    rc = RunConfig(algorithm=name, params=method.get_params(), oracle=oracle_spec,
                   **{f.name: getattr(exp, f.name) for f in RunConfig.settings()})
    config = {"algorithm": name, "params": rc.params, "oracle": oracle_spec, **rc.settings_dict(),
              "budget": planned_epochs(rc, method), "oracle_checksum": oracle.checksum, "protocol": PROTOCOL,
              "kind": "one-shot"}
    return Cell(label=label_of(spec), oracle=oracle_spec, config=_jsonable(config), oracle_facts=facts)


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
    #: likewise the oracle family's factory (``oracles.registry.FACTORIES``), for oracles
    #: that are not tables
    oracle_factory: str | None = None

    def run_config(self) -> RunConfig:
        c = self.cell.config
        return RunConfig.from_settings(c["algorithm"], c["params"], c["oracle"], c)


_ORACLES: dict[str, Any] = {}


def _oracle_for(task: Task, shared=None):
    """The task's oracle, cached per process (a deterministic one: an oracle that trains
    networks is built anew per run); built from ``shared`` when an executor ships its data."""
    if task.oracle_factory:
        from oracles.registry import FACTORIES, parse_name
        FACTORIES[parse_name(task.cell.oracle)[0].split("/")[0]] = task.oracle_factory
    oracle = _ORACLES.get(task.cell.oracle)
    if oracle is None or not oracle.deterministic or oracle.checksum != task.cell.config["oracle_checksum"]:
        oracle = _ORACLES[task.cell.oracle] = load_oracle(task.cell.oracle, shared=shared)
    if oracle.checksum != task.cell.config["oracle_checksum"]:
        raise UserError(f"the data behind {task.cell.oracle} changed while the experiment ran; re-run it")
    return oracle


def _registered(task: Task) -> None:
    from algorithms import REGISTRY
    name = task.cell.config["algorithm"]
    if task.algorithm_target and REGISTRY.get(name) != task.algorithm_target:
        REGISTRY[name] = task.algorithm_target


def compute_task(task: Task, shared=None) -> tuple[Task, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run one task without writing anything: (task, records, summary, machine).

    Executors whose workers may sit on other machines (Ray) call this remotely, with the
    oracle's ``shared`` data (:meth:`oracles.oracle.Oracle.shared`: a table) taken from their
    object store, and write the file in the driver with
    :func:`write_task`, so the results folder only ever needs to exist where the user is.
    ``machine`` (:func:`harness.results.machine_info`, with the one BLAS thread runs use)
    describes the machine that computed the run, which is not the driver's on a cluster.
    A run whose algorithm raised comes back with ``summary["failed"]`` set (see
    :mod:`harness.runner`); only configuration and data errors raise here.
    """
    if task.cell.config.get("kind") == "one-shot":
        from .one_shot import checkpoint_dir, run_one_shot
        records, summary = run_one_shot(task.run_config(), _oracle_for(task, shared), task.seed,
                                        ckpt=checkpoint_dir(task.out, task.cell, task.seed))
        return task, records, summary, machine_info(threads=1)
    _registered(task)
    records, summary = run_one(task.run_config(), _oracle_for(task, shared), task.seed)
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
        if task.cell.config.get("kind") == "one-shot":   # the run file is written: its checkpoint is done
            from .one_shot import checkpoint_dir, remove_checkpoint
            remove_checkpoint(checkpoint_dir(task.out, task.cell, task.seed))
    return {"cell": task.cell.key, "seed": task.seed, **summary}


def pending_tasks(exp: Experiment, cells: list[Cell], store: ResultsStore) -> tuple[list[Task], int]:
    """The runs of ``cells`` not yet done (failed runs included: they are retried)."""
    from algorithms import REGISTRY
    from oracles.registry import factory_of
    tasks, done = [], 0
    for cell in cells:
        target = REGISTRY.get(cell.config["algorithm"])
        factory = factory_of(cell.oracle)
        for seed in exp.seed_list:
            if store.is_done(cell, seed):
                done += 1
                if cell.config.get("kind") == "one-shot":
                    # a kill between write_task's run file and its removal of the checkpoint
                    # left a finished run's checkpoint, which nothing else would remove
                    from .one_shot import checkpoint_dir, remove_checkpoint
                    remove_checkpoint(checkpoint_dir(store.root, cell, seed))
            else:
                tasks.append(Task(cell, seed, str(store.root), target, factory))
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
        # one interface: the local pool computes and writes in its workers; Ray computes
        # remotely (the oracle's table from its object store) and writes here
        results = executor.run(tasks, compute_task, write_task)
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
        # the oracles' reference results (a live MLP oracle's MLPClassifier), after the runs
        # and once per oracle and folder: harness.summary.write_oracle_references
        from .summary import write_oracle_references
        write_oracle_references(store.root, {o: _ORACLES[o] for o in dict.fromkeys(c.oracle for c in cells)
                                             if o in _ORACLES})
    return cells, done, len(tasks)


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled or total == initial:
        return None
    from tqdm import tqdm
    # disable=None: a bar on a terminal, silence in CI logs and pipes
    return tqdm(total=total, initial=initial, unit="run", desc="runs", disable=None, dynamic_ncols=True)


def iter_tasks(cells: Iterable[Cell], seeds: Iterable[int], out: str) -> list[Task]:
    return [Task(c, s, out) for c in cells for s in seeds]
