"""Wall time of LaNAS runs to the global optimum on nb201/cifar10 (issue 5, "Speed").

The LaNAS authors' README says one NAS-Bench-101 search "usually takes a few hours to a
day", nearly all of it refitting node regressors by gradient descent and re-scoring the
table one architecture at a time; here the regressors are closed-form least squares and
the table is routed in one batched pass per rebuild. Run: see README, "Benchmarks".
"""

import numpy as np
import pytest

from harness.runner import RunConfig, run_one


@pytest.fixture(scope="module")
def oracle(nb201_cifar10):
    return nb201_cifar10


@pytest.mark.parametrize("seed", [0, 1])
def test_lanas_run_to_optimum_nb201_cifar10(benchmark, oracle, seed):
    """One full run (authors' preset) through the runner, until it draws the optimum."""
    cfg = RunConfig(algorithm="lanas", params={}, oracle="nb201/cifar10", until_optimum=True)
    _, summary = benchmark.pedantic(run_one, args=(cfg, oracle, seed), rounds=3, iterations=1)
    benchmark.extra_info["samples_to_optimum"] = summary.get("samples_to_optimum")
    assert summary.get("samples_to_optimum") is not None


def test_lanas_rebuild_and_route_nb201(benchmark, oracle):
    """One learning phase (31-node tree on 1,000 samples) plus routing all 15,625 cells."""
    from algorithms.lanas import LaNAS
    from oracles.oracle import Observation
    algo = LaNAS(n_init=1000, n_select=10**9)
    algo.start(oracle.space, np.random.default_rng(0))
    idx = np.random.default_rng(1).choice(oracle.space.size, 1000, replace=False)
    vals = oracle.search_values
    for i in idx:
        algo.tell(oracle.space.arch(int(i)), Observation(float(vals[i])))
    benchmark(algo._rebuild)
    assert algo._tree.split[0]
