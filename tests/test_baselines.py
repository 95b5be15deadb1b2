"""Guarding an algorithm in CI: re-run a small version of a committed baseline and compare.

``results/baselines/*.json`` hold, per algorithm, 20 runs of the committed code (see
``results/baselines/README.md``). Here LaNAS is re-run on a few seeds with exactly the
baseline's configuration and compared with ``harness.compare``, the way a user's CI would
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
BASELINE = REPO / "results" / "baselines" / "nb201-cifar10.json"
SEEDS = 10


def _single_threaded_blas():
    """Small linear-algebra calls (LaNAS's per-node fits) are ~10x slower when a
    multi-threaded BLAS competes for a busy machine's cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - only a speed matter
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(1)


@pytest.fixture(scope="module")
def baseline():
    if not BASELINE.is_file():
        pytest.fail(f"{BASELINE} is missing: regenerate it (results/baselines/README.md)")
    return load_baseline(BASELINE)


def rerun(baseline, algorithm, seed_start, out):
    cell = next(c for c in baseline.cells if c.label == algorithm.split(":")[0])
    exp = Experiment(oracles=[cell.oracle], algorithms=[algorithm], seeds=SEEDS, seed_start=seed_start,
                     budget=cell.budget, until_optimum=cell.until_optimum, out=str(out))
    with _single_threaded_blas():
        execute(exp, progress=False)
    return load(out)


def test_baseline_file_is_complete(baseline):
    from algorithms import REGISTRY
    data = json.loads(BASELINE.read_text())
    assert data["format"] == "nas-harness-baseline/1"
    labels = {c.label for c in baseline.cells}
    assert {"random", "evolution", "mcts", "lanas"} <= labels <= set(REGISTRY)
    for c in baseline.cells:
        assert c.n_runs >= 5 and c.config["oracle"] == "nb201/cifar10" and c.budget == 300
    # compact: a few kB per algorithm instead of the runs' records
    assert BASELINE.stat().st_size < 40_000 * len(labels)


def test_identical_and_other_seed_reruns_pass_and_weakened_lanas_is_caught(baseline, nb201_env, tmp_path):
    same = compare(baseline, rerun(baseline, "lanas", 0, tmp_path / "same"))
    assert not same.regression, format_comparison(same)
    other = compare(baseline, rerun(baseline, "lanas", 1000, tmp_path / "other"))
    assert not other.regression, format_comparison(other)
    weak = compare(baseline, rerun(baseline, "lanas:split=random", 0, tmp_path / "weak"))
    assert weak.regression, format_comparison(weak)
    [pair] = weak.pairs
    assert (pair.base_label, pair.cand_label, pair.verdict) == ("lanas", "lanas:split=random", "worse")
    sto = next(m for m in pair.metrics if m.metric == "samples_to_optimum")
    assert sto.verdict == "worse" and sto.a12_worse > 0.75
