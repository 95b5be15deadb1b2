"""The runner's own cost per query (issue 13, "Speed"; the run-loop issue's goal: < 10 µs).

Random search on ``nb201/cifar10`` until the optimum, three seeds per round: once through
:func:`harness.runner.run_one`, once as the bare algorithm (start/ask/tell in a plain loop,
the same seeds and number of queries). The difference per query is what the runner adds:
the cache look-up, the oracle's answer, identity and string form of each new architecture,
three CPU-clock reads for the algorithm's time, and the records. ``extra_info`` holds the
per-query figures. On a shared machine, measure CPU time rather than wall time::

    python -m pytest tests/benchmarks/bench_runner.py -o addopts="" --benchmark-only \
        --benchmark-timer time.process_time

Measured on a loaded 2-core machine (issue 13, CPU time, best of 15 interleaved rounds of
both runners in one process): 12.6 µs per query before the vectorised records and the
index-keyed cache, 10.1 µs after; about half of what is left is the three CPU-clock reads
(a system call each, 1-2 µs here).
"""

import numpy as np
import pytest

from harness.runner import RunConfig, run_one

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def oracle(nb201_cifar10):
    return nb201_cifar10


@pytest.fixture(scope="module")
def n_queries(oracle):
    return {s: run_one(RunConfig("random", until_optimum=True), oracle, s)[1]["n_queries"] for s in SEEDS}


def test_runner_random_search_to_optimum(benchmark, oracle, n_queries):
    config = RunConfig("random", until_optimum=True)
    benchmark.pedantic(lambda: [run_one(config, oracle, s) for s in SEEDS], rounds=5, iterations=1)
    benchmark.extra_info["queries"] = sum(n_queries.values())
    benchmark.extra_info["us_per_query"] = round(1e6 * benchmark.stats.stats.min / sum(n_queries.values()), 2)


def test_bare_random_search_same_queries(benchmark, oracle, n_queries):
    from algorithms import make_algorithm
    from oracles.oracle import Observation
    obs = Observation(0.5)

    def bare():
        for s in SEEDS:
            algo = make_algorithm("random")
            algo.start(oracle.space, np.random.default_rng(np.random.SeedSequence(s).spawn(2)[0]))
            for _ in range(n_queries[s]):
                algo.tell(algo.ask(), obs)

    benchmark.pedantic(bare, rounds=5, iterations=1)
    benchmark.extra_info["queries"] = sum(n_queries.values())
    benchmark.extra_info["us_per_query"] = round(1e6 * benchmark.stats.stats.min / sum(n_queries.values()), 2)
