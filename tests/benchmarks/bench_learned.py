"""One 500-query run of each learned search strategy on NAS-Bench-201 CIFAR-10.

Run: ``pytest tests/benchmarks/bench_learned.py --benchmark-only`` (skipped in the normal
test run). Each round is a full run through the harness's runner (``run_one``), repeats
charged as in the CADAM Table 4.1 experiment, so the time includes the runner's
bookkeeping and the oracle. NASES's autoencoder pretraining (stage 1, done once per
process and cached) is warmed up outside the timed run and timed separately.
"""


import pytest

from harness.runner import RunConfig, run_one

BUDGET = 500
ALGOS = {
    "reinforce": {},
    "cadam": {},
    "cadam-actor1e-4": {"actor_lr": 1e-4},
    "nao": {"n_init": 100, "top_k": 100, "epochs": 50},
    "nases": {},
}


@pytest.fixture(scope="module")
def oracle(nb201_cifar10):
    return nb201_cifar10


def _config(label):
    name = label.split("-")[0]
    return RunConfig(algorithm=name, params=ALGOS[label], oracle="nb201/cifar10", budget=BUDGET,
                     charge_repeats=True)


def test_nases_pretraining(benchmark):
    from algorithms.nases import NASES, _PRETRAINED
    from oracles.nb201_space import NB201Space
    import numpy as np

    def pretrain():
        _PRETRAINED.clear()
        NASES().start(NB201Space(), np.random.default_rng(0))
    benchmark.pedantic(pretrain, rounds=1, iterations=1)


@pytest.mark.parametrize("label", list(ALGOS))
def test_one_run_500_queries(benchmark, oracle, label):
    config = _config(label)
    if label == "nases":
        run_one(RunConfig(algorithm="nases", oracle="nb201/cifar10", budget=5), oracle, 0)  # pretrain
    records, summary = benchmark.pedantic(lambda: run_one(config, oracle, 0), rounds=1, iterations=1)
    assert summary["n_queries"] == BUDGET
    benchmark.extra_info.update({"best_valid": summary["best_search"], "algo_cpu_s": summary["algo_cpu_s"]})
