"""NAS-Bench-101 at full size: load time, memory and query speed (pytest-benchmark).

Run: ``pytest tests/benchmarks/bench_nb101.py --benchmark-only -p no:randomly``

The full official table is not available here, so this uses a SYNTHETIC table of the full
size: the 423,624 real NB101 cells (enumerated and hashed with the official hash) with
made-up accuracies (``tests/nb101_helpers.synthetic_full_table``). It is built once (about
a minute, mostly MD5 hashing) and kept in pytest's cache directory; it is never data.

For scale: the official API loads ``nasbench_only108.tfrecord`` in about two minutes and
answers a query by hashing the spec in Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import data_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for nb101_helpers

from oracles.nb101_space import make_cell  # noqa: E402
from oracles.registry import SPACE_BUILDERS, load_oracle  # noqa: E402
from oracles.oracle import TabularOracle  # noqa: E402
from oracles.table import load_table, read_manifest, save_table  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAME = "nb101-synthetic"


@pytest.fixture(scope="module")
def data_dir(request):
    root = Path(request.config.cache.mkdir("nb101-synthetic-data"))
    target = root / NAME
    fresh = False
    try:
        fresh = read_manifest(target)["meta"].get("synthetic") is True and \
            read_manifest(target)["axes"]["archs"] == 423_624
    except Exception:
        fresh = False
    if not fresh:
        from nb101_helpers import synthetic_full_table
        save_table(synthetic_full_table(seed=0), target)
    return root


@pytest.fixture(scope="module")
def oracle(data_dir):
    with data_env(data_dir):
        yield load_oracle(NAME)


def _load(directory: Path) -> TabularOracle:
    table = load_table(directory)  # memory-mapped, every file's SHA-256 verified
    space = SPACE_BUILDERS["nb101"](table)
    o = TabularOracle(NAME, table, space, search="validation_accuracy", report="test_accuracy",
                      cost="training_time", train="train_accuracy")
    o.optimum  # noqa: B018  (part of being ready to answer --until-optimum runs)
    return o


def test_load_time(benchmark, data_dir):
    o = benchmark.pedantic(_load, args=(data_dir / NAME,), rounds=5, iterations=1, warmup_rounds=1)
    assert o.space.size == 423_624


def test_load_memory_rss_delta(benchmark, data_dir):
    """RSS growth of a fresh process that loads the oracle (and answers a query)."""
    code = textwrap.dedent(f"""
        import json, resource, sys, time
        sys.path.insert(0, {str(REPO)!r})
        def rss():
            for line in open('/proc/self/status'):
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        import numpy, oracles.registry, oracles.oracle, oracles.nb101_space
        before = rss()
        t = time.perf_counter()
        from oracles.registry import load_oracle
        o = load_oracle({NAME!r})
        o.optimum
        o.query(o.space.arch(12345))
        after = rss()
        print(json.dumps({{"rss_before": before, "rss_after": after, "load_s": time.perf_counter() - t,
                          "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
    """)
    env = dict(os.environ, NAS_HARNESS_DATA=str(data_dir))

    def run():
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    res = benchmark.pedantic(run, rounds=3, iterations=1)
    delta = (res["rss_after"] - res["rss_before"]) / 2**20
    benchmark.extra_info.update({"rss_delta_mb": round(delta, 1), "fresh_process_load_s": round(res["load_s"], 3),
                                 "max_rss_mb": round(res["max_rss"] / 2**20, 1)})
    print(f"\nRSS delta after loading {NAME}: {delta:.1f} MB (fresh-process load {res['load_s']:.3f} s)")
    assert delta < 400  # the "a few hundred MB at most"


@pytest.fixture(scope="module")
def cells(oracle):
    rng = np.random.default_rng(0)
    idx = rng.choice(oracle.space.size, 1000, replace=False)
    return [oracle.space.arch(int(i)) for i in idx]


def test_single_query_cached_cell(benchmark, oracle, cells):
    it = iter(cells * 100_000)
    benchmark(lambda: oracle.query(next(it)))


def test_single_query_fresh_cell(benchmark, oracle, cells):
    """A cell the space has never seen (new object, not from ``arch``): pays one hash."""
    raw = [(c.matrix, c.ops) for c in cells]
    state = {"k": 0}

    def query():
        m, ops = raw[state["k"] % len(raw)]
        state["k"] += 1
        oracle.space._cache.clear()  # measure the uncached path every time
        return oracle.query(make_cell(m, ops))

    benchmark(query)


def test_single_query_by_index(benchmark, oracle):
    benchmark(lambda: oracle.query_index(123_456))


def test_batched_query_1000_cells(benchmark, oracle, cells):
    out = benchmark(lambda: oracle.query_batch(cells))
    assert len(out["search"]) == 1000


def test_batched_query_100k_indices(benchmark, oracle):
    idx = np.random.default_rng(1).integers(0, oracle.space.size, 100_000)
    out = benchmark(lambda: oracle.query_indices(idx))
    assert len(out["search"]) == 100_000


def test_random_search_run_5000_samples(benchmark, oracle):
    from harness.runner import RunConfig, run_one
    cfg = RunConfig(algorithm="random", oracle=NAME, budget=5000)
    _, summary = benchmark.pedantic(lambda: run_one(cfg, oracle, seed=0), rounds=3, iterations=1)
    assert summary["n_distinct"] == 5000


def _algorithms():
    from algorithms import REGISTRY
    return sorted(REGISTRY)


@pytest.mark.parametrize("name", _algorithms())
def test_every_algorithm_runs_100_samples(benchmark, oracle, name):
    """Every registered algorithm on the full-size space (one seed, 100 distinct samples)."""
    from harness.runner import RunConfig, run_one
    cfg = RunConfig(algorithm=name, oracle=NAME, budget=100)
    _, summary = benchmark.pedantic(lambda: run_one(cfg, oracle, seed=0), rounds=1, iterations=1)
    assert summary["n_distinct"] == 100
