"""One run: (algorithm, oracle, seed, budget) -> every query recorded.

The protocol (Wang et al., Sample-Efficient Neural Architecture Search by Learning Action
Space, §4, Fig. 5): the budget counts *distinct* architectures. A repeated query is
answered from the run's cache, told to the algorithm again, recorded with ``repeat=True``
and not charged -- unless ``charge_repeats`` is set. With ``until_optimum`` the run stops at
the first architecture in the oracle's optimum set; a run that reaches the budget cap first
is censored.

A run ends in one of three ways, and only the last one is not a finished run:

* normally: the budget is spent, the optimum found, or the algorithm has nothing left to
  ask (``exhausted_space``); the summary's ``stopped`` is None;
* **stopped** by the runner: an algorithm that re-asks known architectures ``max_repeats``
  times in a row would spin forever, so the run ends there with its records so far and
  ``stopped`` = the reason (one line, the same for every run stopped for it, so summaries can
  group runs by reason). Its ``n_distinct`` says how far it got; with ``until_optimum`` it is
  ``censored`` (samples-to-optimum unknown, larger than ``n_distinct``). It is a result about
  the algorithm, deterministic like any other, so a resumed experiment does not redo it;
* **failed**: the algorithm (or the space or oracle answering the architecture it asked)
  raised an exception. The summary's ``failed`` holds ``"Type: message (file:line in
  function)"`` and ``traceback`` the full traceback; the experiment records the failure
  instead of the run (:meth:`harness.results.ResultsStore.write_failure`) and retries it on
  the next execution. A bug in one run never takes the other runs with it.

Randomness: the run's seed makes one :class:`numpy.random.SeedSequence`, split into an
algorithm stream and an oracle stream (for oracles that draw one training run per query),
so a run's trajectory depends on nothing but its configuration and seed.

Cost: the runner's own work per query is a cache look-up, the oracle's answer and a few
list appends. On finite spaces the cache is keyed by enumeration index (identity and string
form are computed once per distinct architecture, and only once where a space's string form
is its identity), the records are gathered from the per-architecture answers in one
vectorised step at the end, and the algorithm's CPU time takes three clock reads per query
instead of four (the loop's test between a tell and the next ask, a few bytecodes, now counts
as the algorithm's; ``tests/benchmarks/bench_runner.py``: 12.6 -> 10.1 µs per query on NB201).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from algorithms import make_algorithm
from oracles.errors import UserError
from oracles.oracle import Oracle, TabularOracle

#: version of the run protocol; bumped when recorded numbers would change
PROTOCOL = 1

#: the reason a run stuck on known architectures is stopped with (summary ``stopped``)
STUCK_REASON = "stuck: asked {n} already-evaluated architectures in a row (max_repeats)"


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run apart from its seed."""

    algorithm: str                          #: registry name, e.g. ``"lanas"``
    params: dict[str, Any] = field(default_factory=dict)  #: full hyper-parameters
    oracle: str = ""                        #: oracle spec, e.g. ``"nb201/cifar10"``
    budget: int | None = None               #: max distinct architectures (None: space size)
    until_optimum: bool = False
    charge_repeats: bool = False
    max_repeats: int = 10_000               #: repeats in a row after which a run is stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_budget(config: RunConfig, oracle: Oracle) -> int:
    size = oracle.space.size
    if config.budget is None:
        if size is None:
            raise UserError(f"oracle {oracle.name} has an infinite space: give --budget")
        return int(size)
    if config.budget < 1:
        raise UserError(f"budget must be a positive number of architectures, got {config.budget}")
    return int(config.budget) if size is None else min(int(config.budget), int(size))


def run_one(config: RunConfig, oracle: Oracle, seed: int,
            progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run one search; return (records as column arrays, run summary).

    Configuration errors (unknown algorithm or parameter, bad budget) raise
    :class:`UserError`; anything the algorithm raises once started ends the run as failed
    (see the module docstring), with the records up to then.

    The run uses one BLAS/OpenMP thread. Runs are the unit of parallelism (executors run
    several at once), and the algorithms' linear algebra is small (e.g. LaNAS factors a
    31 x 31 Gram matrix per node): multi-threaded OpenBLAS spends far more time waking
    threads than computing, 14x slower for LaNAS on a busy 2-core machine (issue 8,
    "Speed"). One thread everywhere also keeps floating-point results the same under
    every executor (Ray already pins its workers to one thread).
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return _run_one(config, oracle, seed, progress)


def describe_exception(exc: BaseException) -> str:
    """One line: ``Type: first line of the message (file:line in function)``, the place being
    the innermost frame of the traceback (where the error was raised)."""
    msg = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {msg[0]}" if msg else "")
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        frame = tb[-1]
        path = Path(frame.filename)
        where = "/".join(path.parts[-2:]) if len(path.parts) >= 2 else path.name
        text += f" ({where}:{frame.lineno} in {frame.name})"
    return text


def _run_one(config: RunConfig, oracle: Oracle, seed: int,
             progress: Callable[[int], None] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    algo = make_algorithm(config.algorithm, config.params)
    budget = resolve_budget(config, oracle)
    space = oracle.space
    algo_ss, oracle_ss = np.random.SeedSequence(int(seed)).spawn(2)
    algo_rng, oracle_rng = np.random.default_rng(algo_ss), np.random.default_rng(oracle_ss)
    optimum = oracle.optimum.identities if config.until_optimum else frozenset()
    finite = space.is_finite
    index_of = space.index if finite else None
    # TabularOracle.query(arch) is query_index(space.index(arch)): the index is computed once
    query_index = oracle.query_index if finite and type(oracle).query is TabularOracle.query else None
    charge_repeats, max_repeats = config.charge_repeats, config.max_repeats

    identity, to_string = space.identity, space.to_string
    # a space whose string form is its identity by definition needs only one of the two
    text_is_identity = getattr(type(space), "to_string", None) is getattr(type(space), "identity", 0)
    # One "slot" per architecture met: its enumeration index (-1 on infinite spaces),
    # identity, string form and answer. A slot is "shared" when an earlier slot has its
    # identity (spaces where two indices are one architecture): it shares that slot's
    # answer, and every query's recorded index stays its own.
    slot_index: list[int] = []
    ids: list[str] = []
    texts: list[str] = []
    answers: list[Any] = []
    shared: set[int] = set()
    by_index: dict[int, int] = {}
    by_ident: dict[str, int] = {}
    q_slot: list[int] = []        # per query: its slot
    q_cpu: list[float] = []       # per query: the algorithm's cumulative CPU time after it
    charged = 0
    in_a_row = 0
    samples_to_optimum = None
    stopped = failure = None
    exhausted = False
    cpu = time.process_time
    wall0 = time.perf_counter()
    algo_cpu = 0.0
    diagnostics: dict[str, Any] = {}
    try:
        t_prev = cpu()
        algo.start(space, algo_rng)
        # t_prev: the clock after the algorithm's last call; the runner's own work per query
        # lies between the clock reads after ask and before tell
        t = cpu()
        algo_cpu += t - t_prev
        t_prev = t
        while charged < budget:
            try:
                arch = algo.ask()
            except StopIteration:
                algo_cpu += cpu() - t_prev
                exhausted = True
                break
            t = cpu()
            algo_cpu += t - t_prev
            if finite:
                i = index_of(arch)
                slot = by_index.get(i)
                new = slot is None
                if new:
                    ident = identity(arch)
                    known = by_ident.get(ident)
                    slot = by_index[i] = len(slot_index)
                    slot_index.append(i)
                    if known is None:
                        by_ident[ident] = slot
                    else:
                        new = False
                        ids.append(ids[known])
                        texts.append(texts[known])
                        answers.append(answers[known])
                        shared.add(slot)
            else:
                ident = identity(arch)
                slot = by_ident.get(ident)
                new = slot is None
                if new:
                    slot = by_ident[ident] = len(slot_index)
                    slot_index.append(-1)
            q_slot.append(slot)
            if new:
                in_a_row = 0
                answer = query_index(i, oracle_rng) if query_index is not None else oracle.query(arch, oracle_rng)
                ids.append(ident)
                texts.append(ident if text_is_identity else to_string(arch))
                answers.append(answer)
                charged += 1
            else:
                answer = answers[slot]
                if charge_repeats:
                    in_a_row = 0
                    charged += 1
                else:
                    in_a_row += 1
                    if in_a_row >= max_repeats:
                        q_cpu.append(algo_cpu)
                        stopped = STUCK_REASON.format(n=in_a_row)
                        break
            found = new and ident in optimum
            if progress is not None and new:
                progress(1)
            t_prev = cpu()
            algo.tell(arch, answer.observation)
            t = cpu()
            algo_cpu += t - t_prev
            t_prev = t
            q_cpu.append(algo_cpu)
            if found:
                samples_to_optimum = charged
                break
        diagnostics = algo.diagnostics()
    except Exception as exc:  # noqa: BLE001 -- any error of the algorithm fails this run only
        failure = exc
    wall = time.perf_counter() - wall0

    del q_slot[len(q_cpu):]  # a query the algorithm failed to be told about is not recorded
    records = _finish_records(q_slot, q_cpu, slot_index, ids, texts, answers, shared, charge_repeats)
    n = len(records["sample"])
    summary = {
        "seed": int(seed),
        "budget": budget,
        "n_queries": n,
        "n_distinct": int(records["n_distinct"][-1]) if n else 0,
        "n_repeats": int(records["repeat"].sum()),
        "reached_optimum": samples_to_optimum is not None,
        "samples_to_optimum": samples_to_optimum,
        "censored": bool(config.until_optimum and samples_to_optimum is None),
        "exhausted_space": exhausted,
        "stopped": stopped,
        "best_search": float(records["best_search"][-1]) if n else None,
        "best_report": float(records["best_report"][-1]) if n else None,
        "incumbent_report": float(records["incumbent_report"][-1]) if n else None,
        "total_cost": float(records["cum_cost"][-1]) if n else None,
        "algo_cpu_s": float(algo_cpu),
        "wall_s": wall,
        "diagnostics": diagnostics,
    }
    if failure is not None:
        summary["failed"] = describe_exception(failure)
        summary["traceback"] = "".join(traceback.format_exception(failure))
    return records, summary


def _finish_records(q_slot: list[int], q_cpu: list[float], slot_index: list[int], ids: list[str],
                    texts: list[str], answers: list, shared: set[int],
                    charge_repeats: bool) -> dict[str, np.ndarray]:
    """Every query's record, gathered from the per-architecture answers in one step."""
    slots = np.asarray(q_slot, dtype=np.int64)
    n = len(slots)
    m = len(answers)
    # a query is new exactly when it is the first query of a slot that is not shared
    first = np.zeros(n, dtype=bool)
    if n:
        first[np.unique(slots, return_index=True)[1]] = True
    own = np.ones(m, dtype=bool)
    own[list(shared)] = False
    repeat = ~(first & own[slots])
    obs = [a.observation for a in answers]
    search = np.fromiter((o.value for o in obs), dtype=np.float64, count=m)[slots]
    report = np.fromiter((a.report for a in answers), dtype=np.float64, count=m)[slots]
    cost = np.fromiter((np.nan if o.cost is None else o.cost for o in obs), dtype=np.float64, count=m)[slots]
    charged = ~repeat if not charge_repeats else np.ones(n, dtype=bool)
    best_search = np.maximum.accumulate(search) if n else search
    # the incumbent: first architecture attaining the best search value so far
    incumbent = np.zeros(n, dtype=np.int64)
    if n:
        improved = np.r_[True, search[1:] > best_search[:-1]]
        incumbent = np.maximum.accumulate(np.where(improved, np.arange(n), 0))
    # simulated training time is paid for every charged query (a cached answer costs nothing)
    paid = np.where(charged, np.nan_to_num(cost, nan=0.0), 0.0)
    arch_id = np.asarray(ids, dtype=object)[slots] if m else np.zeros(0, dtype=object)
    out = {
        "sample": np.arange(1, n + 1, dtype=np.int64),
        "n_distinct": np.cumsum(charged).astype(np.int64),
        "arch_index": np.asarray(slot_index, dtype=np.int64)[slots],
        "arch_id": arch_id,
        "arch": np.asarray(texts, dtype=object)[slots] if m else np.zeros(0, dtype=object),
        "search": search,
        "report": report,
        "best_search": best_search,
        "best_report": np.maximum.accumulate(report) if n else report,
        "incumbent_report": report[incumbent] if n else report,
        "cost": cost,
        "cum_cost": np.cumsum(paid),
        "repeat": repeat,
        "algo_cpu_s": np.asarray(q_cpu, dtype=np.float64),
    }
    # Where the string form is the identity (NB201, ConvNet) the column is kept once here;
    # the run file stores both (one schema for every file, see harness.results.run_table).
    if texts == ids:
        del out["arch"]
    return out
