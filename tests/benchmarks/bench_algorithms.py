"""One run of every registered algorithm on nb201/cifar10 to a fixed budget of 500 distinct
architectures (seed 0), and the whole NB201 Fig. 5 study (run: see README, "Benchmarks").

The Fig. 5 study is LaNAS's comparison (``../shared/papers/004_*``, §4, Fig. 5): random
search, regularized evolution, MCTS and LaNAS, 100 seeds each, every run until it draws the
global optimum; here on ``nb201/cifar10`` with the local executor's 2 workers (the CI
machine's cores). It takes minutes; select it with ``-k fig5`` or leave it out with
``-k "not fig5"``.
"""


import pytest

from algorithms import REGISTRY, algorithm_class
from harness.runner import RunConfig, run_one

BUDGET = 500


def _available():
    names = []
    for name in sorted(REGISTRY):
        try:
            algorithm_class(name)
        except ImportError:  # registered but its module is not in this checkout
            continue
        names.append(name)
    return names


@pytest.fixture(scope="module")
def oracle(nb201_cifar10):
    return nb201_cifar10


@pytest.mark.parametrize("name", _available())
def test_one_run_budget_500(benchmark, oracle, name):
    import torch
    torch.set_num_threads(1)
    config = RunConfig(name, {}, "nb201/cifar10", budget=BUDGET)
    # torch-based algorithms train networks during the run: seconds to minutes per run
    rounds = 1 if name in ("cadam", "nao", "nases", "reinforce") else 3
    records, summary = benchmark.pedantic(lambda: run_one(config, oracle, 0), rounds=rounds, iterations=1)
    assert summary["n_distinct"] == BUDGET or summary["exhausted_space"]
    benchmark.extra_info.update(n_queries=summary["n_queries"], algo_cpu_s=summary["algo_cpu_s"])


def test_fig5_study_nb201(benchmark, nb201_env, tmp_path_factory):
    from harness.experiment import Experiment, execute
    outs = iter(tmp_path_factory.mktemp("fig5") / f"r{i}" for i in range(100))

    def study():
        exp = Experiment(oracles=["nb201/cifar10"], algorithms=["random", "evolution", "mcts", "lanas"],
                         seeds=100, until_optimum=True, workers=2, out=str(next(outs)))
        return execute(exp, progress=False)

    cells, skipped, ran = benchmark.pedantic(study, rounds=1, iterations=1)
    assert ran == 400 and skipped == 0
