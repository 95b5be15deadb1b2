"""Guarding an algorithm in CI: re-run a small version of a committed baseline and compare.

``results/baselines/*.json`` hold, per algorithm, the runs of the committed code (see
``results/baselines/README.md``). Here LaNAS is re-run on 10 seeds with exactly the
baseline's configuration (50 on convnet-digits) and compared with ``harness.compare``, the way a user's CI would
guard their algorithm:

* an identical re-run (seeds the baseline also ran) passes;
* a re-run with other seeds passes (noise is not a regression);
* LaNAS with random node splits (``split=random``: the partition ignores accuracy, the
  deliberately weakened variant of algorithms/lanas.py) is caught as a regression.
"""

import json
from pathlib import Path

import pytest

from harness.compare import compare, format_comparison
from harness.experiment import Experiment, execute
from harness.metrics import load, load_baseline

REPO = Path(__file__).resolve().parent.parent
BASELINES = sorted((REPO / "results" / "baselines").glob("*.json"))
#: seeds per re-run: 10 on NB201; 50 on convnet-digits, whose runs take milliseconds and where
#: the random-split LaNAS is hurt less (1.6x the samples to the optimum; with the table's two
#: tied optima that is p = 0.019 with 20 runs, short of the 1% level)
SEEDS = {"convnet-digits": 50}


def _single_threaded_blas():
    """Small linear-algebra calls (LaNAS's per-node fits) are ~10x slower when a
    multi-threaded BLAS competes for a busy machine's cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only a speed matter
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(1)


@pytest.fixture(params=[p.name for p in BASELINES])
def baseline(request):
    """Each committed baseline file, with the data its oracle needs."""
    path = REPO / "results" / "baselines" / request.param
    rs = load_baseline(path)
    if any(c.oracle.startswith("nb201") for c in rs.cells):
        request.getfixturevalue("nb201_env")  # imported from ../shared/data (fails in CI if missing)
    return path, rs


def rerun(baseline, algorithm, seed_start, out):
    cell = next(c for c in baseline.cells if c.label == algorithm.split(":")[0])
    exp = Experiment(oracles=[cell.oracle], algorithms=[algorithm], seeds=SEEDS.get(cell.oracle, 10),
                     seed_start=seed_start,
                     budget=cell.budget, until_optimum=cell.until_optimum, out=str(out))
    with _single_threaded_blas():
        execute(exp, progress=False)
    return load(out)


def test_there_are_baselines():
    assert any(p.name == "nb201-cifar10.json" for p in BASELINES)


def test_baseline_file_is_complete(baseline):
    from algorithms import REGISTRY
    path, rs = baseline
    data = json.loads(path.read_text())
    assert data["format"] == "nas-harness-baseline/1"
    labels = {c.label for c in rs.cells}
    assert {"random", "evolution", "mcts", "lanas"} <= labels <= set(REGISTRY)
    for c in rs.cells:
        assert c.n_runs >= 5 and c.until_optimum and c.config["oracle"] == rs.cells[0].oracle
    # compact: a few kB per algorithm instead of the runs' records
    assert path.stat().st_size < 40_000 * len(labels)


def test_identical_and_other_seed_reruns_pass_and_weakened_lanas_is_caught(baseline, tmp_path):
    _, base = baseline
    same = compare(base, rerun(base, "lanas", 0, tmp_path / "same"))
    assert not same.regression, format_comparison(same)
    other = compare(base, rerun(base, "lanas", 1000, tmp_path / "other"))
    assert not other.regression, format_comparison(other)
    weak = compare(base, rerun(base, "lanas:split=random", 0, tmp_path / "weak"))
    assert weak.regression, format_comparison(weak)
    [pair] = weak.pairs
    assert (pair.base_label, pair.cand_label, pair.verdict) == ("lanas", "lanas:split=random", "worse")
    assert any(m.verdict == "worse" and m.a12_worse >= 0.7 for m in pair.metrics)
