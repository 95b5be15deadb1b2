"""Oracle query speed on the full NB201 table (run: see README, "Benchmarks").

For scale: the official NATS-Bench API answers ~1,300 `get_more_info` queries per second
(about 0.8 ms each) once loaded.
"""

import numpy as np
import pytest



@pytest.fixture(scope="module")
def oracle(nb201_cifar10):
    return nb201_cifar10


@pytest.fixture(scope="module")
def archs(oracle):
    rng = np.random.default_rng(0)
    return [oracle.space.sample(rng) for _ in range(1000)]


def test_single_query(benchmark, oracle, archs):
    it = iter(archs * 10_000)
    benchmark(lambda: oracle.query(next(it)))


def test_single_query_by_index(benchmark, oracle):
    benchmark(lambda: oracle.query_index(6111))


def test_batched_query_1000_archs(benchmark, oracle, archs):
    out = benchmark(lambda: oracle.query_batch(archs))
    assert len(out["search"]) == 1000


def test_batched_query_1000_indices(benchmark, oracle):
    idx = np.random.default_rng(0).integers(0, 15625, 1000)
    benchmark(lambda: oracle.query_indices(idx))


def test_load_oracle_from_data_dir(benchmark, nb201_env):
    from oracles import registry

    def load():
        registry._CACHE.clear()
        return registry.load_oracle("nb201/cifar10")

    benchmark.pedantic(load, rounds=5, iterations=1)


def test_import_nb201_from_csv(benchmark):
    from conftest import NB201_DIR, require
    from oracles.importers.nb201 import detect_and_read
    src = require(NB201_DIR)
    benchmark.pedantic(lambda: detect_and_read(src), rounds=3, iterations=1)


def test_import_nb201_fast_mode_three_files(benchmark):
    from conftest import NB201_DIR, require
    from oracles.importers.nb201 import read_fast_mode
    src = require(NB201_DIR / "NATS-tss-v1_0-3ffb9-simple")
    benchmark.pedantic(lambda: read_fast_mode(src), rounds=3, iterations=1)


def test_random_search_run_to_optimum(benchmark, oracle):
    from harness.runner import RunConfig, run_one
    seeds = iter(range(1000))
    benchmark.pedantic(lambda: run_one(RunConfig("random", until_optimum=True), oracle, next(seeds)),
                       rounds=10, iterations=1)
