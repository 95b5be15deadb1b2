"""One run: (algorithm, oracle, seed, budget) -> every query recorded.

The protocol (LaNAS, ../shared/papers/004_*, §4 / Fig. 5): the budget counts *distinct*
architectures. A repeated query is answered from the run's cache, told to the algorithm
again, recorded with ``repeat=True`` and not charged -- unless ``charge_repeats`` is set.
An algorithm that keeps re-asking known architectures (``max_repeats`` in a row) is stopped
with an error instead of spinning forever. With ``until_optimum`` the run stops at the first
architecture in the oracle's optimum set; a run that reaches the budget cap first is censored.

Randomness: the run's seed makes one :class:`numpy.random.SeedSequence`, split into an
algorithm stream and an oracle stream (for oracles that draw one training run per query),
so a run's trajectory depends on nothing but its configuration and seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from algorithms import make_algorithm
from oracles.errors import UserError
from oracles.oracle import Oracle

#: version of the run protocol; bumped when recorded numbers would change
PROTOCOL = 1


class StuckAlgorithm(UserError):
    """The algorithm re-asked known architectures ``max_repeats`` times in a row."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run apart from its seed."""

    algorithm: str                          #: registry name, e.g. ``"lanas"``
    params: dict[str, Any] = field(default_factory=dict)  #: full hyper-parameters
    oracle: str = ""                        #: oracle spec, e.g. ``"nb201/cifar10"``
    budget: int | None = None               #: max distinct architectures (None: space size)
    until_optimum: bool = False
    charge_repeats: bool = False
    max_repeats: int = 10_000

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


def _run_one(config: RunConfig, oracle: Oracle, seed: int,
             progress: Callable[[int], None] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    algo = make_algorithm(config.algorithm, config.params)
    budget = resolve_budget(config, oracle)
    space = oracle.space
    algo_ss, oracle_ss = np.random.SeedSequence(int(seed)).spawn(2)
    algo_rng, oracle_rng = np.random.default_rng(algo_ss), np.random.default_rng(oracle_ss)
    optimum = oracle.optimum.identities if config.until_optimum else frozenset()
    finite = space.is_finite

    cols: dict[str, list] = {k: [] for k in (
        "arch_index", "arch_id", "arch", "search", "report", "cost", "repeat", "algo_cpu_s")}
    cache: dict[str, Any] = {}
    charged = 0
    in_a_row = 0
    samples_to_optimum = None
    cpu = time.process_time
    wall0 = time.perf_counter()
    algo_cpu = 0.0
    t = cpu()
    algo.start(space, algo_rng)
    algo_cpu += cpu() - t
    exhausted = False
    while charged < budget:
        t = cpu()
        try:
            arch = algo.ask()
        except StopIteration:
            exhausted = True
            break
        algo_cpu += cpu() - t
        ident = space.identity(arch)
        hit = cache.get(ident)
        repeat = hit is not None
        if repeat and not config.charge_repeats:
            in_a_row += 1
            if in_a_row >= config.max_repeats:
                raise StuckAlgorithm(
                    f"{config.algorithm} asked {in_a_row} already-evaluated architectures in a row "
                    f"(seed {seed}, after {charged} distinct); it is stuck. Raise max_repeats or fix the algorithm")
        else:
            in_a_row = 0
            if hit is None:
                hit = cache[ident] = (oracle.query(arch, oracle_rng), space.to_string(arch))
            charged += 1
        evaluation, text = hit
        t = cpu()
        algo.tell(arch, evaluation.observation)
        algo_cpu += cpu() - t
        obs = evaluation.observation
        cols["arch_index"].append(space.index(arch) if finite else -1)
        cols["arch_id"].append(ident)
        cols["arch"].append(text)
        cols["search"].append(obs.value)
        cols["report"].append(evaluation.report)
        cols["cost"].append(np.nan if obs.cost is None else obs.cost)
        cols["repeat"].append(repeat)
        cols["algo_cpu_s"].append(algo_cpu)
        if progress is not None and not repeat:
            progress(1)
        if not repeat and ident in optimum:
            samples_to_optimum = charged
            break
    wall = time.perf_counter() - wall0

    records = _finish_records(cols, space, config.charge_repeats)
    n = len(records["sample"])
    summary = {
        "seed": int(seed),
        "budget": budget,
        "n_queries": n,
        "n_distinct": int(charged),
        "n_repeats": int(records["repeat"].sum()),
        "reached_optimum": samples_to_optimum is not None,
        "samples_to_optimum": samples_to_optimum,
        "censored": bool(config.until_optimum and samples_to_optimum is None),
        "exhausted_space": exhausted,
        "best_search": float(records["best_search"][-1]) if n else None,
        "best_report": float(records["best_report"][-1]) if n else None,
        "incumbent_report": float(records["incumbent_report"][-1]) if n else None,
        "total_cost": float(records["cum_cost"][-1]) if n else None,
        "algo_cpu_s": float(algo_cpu),
        "wall_s": wall,
        "diagnostics": algo.diagnostics(),
    }
    return records, summary


def _finish_records(cols: dict[str, list], space, charge_repeats: bool) -> dict[str, np.ndarray]:
    n = len(cols["search"])
    search = np.asarray(cols["search"], dtype=np.float64)
    report = np.asarray(cols["report"], dtype=np.float64)
    cost = np.asarray(cols["cost"], dtype=np.float64)
    repeat = np.asarray(cols["repeat"], dtype=bool)
    charged = ~repeat if not charge_repeats else np.ones(n, dtype=bool)
    best_search = np.maximum.accumulate(search) if n else search
    # the incumbent: first architecture attaining the best search value so far
    incumbent = np.zeros(n, dtype=np.int64)
    if n:
        improved = np.r_[True, search[1:] > best_search[:-1]]
        incumbent = np.maximum.accumulate(np.where(improved, np.arange(n), 0))
    # simulated training time is paid for every charged query (a cached answer costs nothing)
    paid = np.where(charged, np.nan_to_num(cost, nan=0.0), 0.0)
    arch_index = np.asarray(cols["arch_index"], dtype=np.int64)
    out = {
        "sample": np.arange(1, n + 1, dtype=np.int64),
        "n_distinct": np.cumsum(charged).astype(np.int64),
        "arch_index": arch_index,
        "arch_id": np.asarray(cols["arch_id"], dtype=object),
        "arch": np.asarray(cols["arch"], dtype=object),
        "search": search,
        "report": report,
        "best_search": best_search,
        "best_report": np.maximum.accumulate(report) if n else report,
        "incumbent_report": report[incumbent] if n else report,
        "cost": cost,
        "cum_cost": np.cumsum(paid),
        "repeat": repeat,
        "algo_cpu_s": np.asarray(cols["algo_cpu_s"], dtype=np.float64),
    }
    # Where the string form is the identity (NB201, ConvNet) the column would be stored twice.
    if cols["arch"] == cols["arch_id"]:
        del out["arch"]
    return out
