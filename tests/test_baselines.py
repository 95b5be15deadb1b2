"""Guarding an algorithm in CI: re-run a small version of a committed baseline and compare.

``results/baselines/*.json`` hold, per algorithm, the runs of the committed code (see
``results/baselines/README.md``). Here one LaNAS cell of each baseline is re-run on 10 seeds
with exactly the baseline's configuration (50 on convnet-digits) and compared with
``harness.compare``, the way a user's CI would guard their algorithm:

* an identical re-run (seeds the baseline also ran) passes;
* a re-run with other seeds passes (noise is not a regression);
* a re-run on "another CPU" passes: the node fits' normal equations perturbed by a few ulps,
  which is what another BLAS kernel does to them, changes some least-squares trajectories
  but not the verdict;
* LaNAS with random node splits (``split=random``: the partition ignores accuracy, the
  deliberately weakened variant of algorithms/lanas.py) is caught as a regression.

Which cell is guarded: on nb201/cifar10 the default (Adam-fitted, the authors' code; median
468 samples against 3,934 for random splits). On convnet-digits the default is *not* better
than random splits (measured with 50 seeds: medians 359 and 191; the Adam fit at lr 1e-5
barely leaves its random initialisation on that encoding), so there the guarded cell is the
least-squares variant ``lanas:split=lstsq`` (median 100, 1.9x fewer samples than random
splits).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from algorithms.lanas import LaNAS
from harness.compare import compare, format_comparison
from harness.experiment import Experiment, execute
from harness.metrics import load, load_baseline

REPO = Path(__file__).resolve().parent.parent
BASELINES = sorted((REPO / "results" / "baselines").glob("*.json"))
#: seeds per re-run: 10 on NB201; 50 on convnet-digits, whose runs take milliseconds and where
#: the random-split LaNAS is hurt less (1.9x the samples to the optimum of the least-squares
#: variant; with the table's two tied optima 20 runs fall short of the 1% level)
SEEDS = {"convnet-digits": 50}
#: the LaNAS cell each baseline guards (module docstring: why not the default on convnet-digits)
GUARDED = {"nb201/cifar10": "lanas", "convnet-digits": "lanas:split=lstsq"}


def _single_threaded_blas():
    """Small linear-algebra calls (LaNAS's per-node fits) are ~10x slower when a
    multi-threaded BLAS competes for a busy machine's cores."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


@pytest.fixture(params=[p.name for p in BASELINES])
def baseline(request):
    """Each committed baseline file, with the data its oracle needs."""
    path = REPO / "results" / "baselines" / request.param
    rs = load_baseline(path)
    if any(c.oracle.startswith("nb201") for c in rs.cells):
        request.getfixturevalue("nb201_env")  # imported from ../shared/data (fails in CI if missing)
    return path, rs


def guarded(base):
    """The baseline restricted to its guarded LaNAS cell, so a variant is paired with it."""
    [oracle] = {c.oracle for c in base.cells}
    cell = base.cell(oracle, GUARDED[oracle])
    assert cell is not None, f"{oracle}: the baseline has no {GUARDED[oracle]} cell"
    return dataclasses.replace(base, cells=[cell]), cell


def rerun(cell, algorithm, seed_start, out):
    exp = Experiment(oracles=[cell.oracle], algorithms=[algorithm], seeds=SEEDS.get(cell.oracle, 10),
                     seed_start=seed_start, budget=cell.budget, until_optimum=cell.until_optimum,
                     out=str(out))  # one worker: runs in this process (the ulp test patches LaNAS)
    with _single_threaded_blas():
        execute(exp, progress=False)
    return load(out)


def test_there_are_baselines():
    assert {p.name for p in BASELINES} >= {"nb201-cifar10.json", "convnet-digits.json"}


def test_baseline_file_is_complete(baseline):
    from algorithms import REGISTRY
    path, rs = baseline
    data = json.loads(path.read_text())
    assert data["format"] == "nas-harness-baseline/1"
    names = {c.algorithm for c in rs.cells}
    assert {"random", "evolution", "mcts", "lanas"} <= names <= set(REGISTRY)
    for c in rs.cells:
        assert c.n_runs >= 5 and c.until_optimum and c.config["oracle"] == rs.cells[0].oracle
    # the machines that computed the runs are recorded (cross-CPU verdicts, README "Protocol")
    assert rs.machines and all("blas" in json.dumps(m).lower() for m in rs.machines)
    # compact: a few kB per algorithm instead of the runs' records
    assert path.stat().st_size < 40_000 * len(rs.cells)


def test_identical_and_other_seed_reruns_pass_and_weakened_lanas_is_caught(baseline, tmp_path):
    _, full = baseline
    base, cell = guarded(full)
    same = compare(base, rerun(cell, cell.label, 0, tmp_path / "same"))
    assert not same.regression, format_comparison(same)
    assert [p.cand_label for p in same.pairs] == [cell.label]
    other = compare(base, rerun(cell, cell.label, 1000, tmp_path / "other"))
    assert not other.regression, format_comparison(other)
    weak = compare(base, rerun(cell, "lanas:split=random", 0, tmp_path / "weak"))
    assert weak.regression, format_comparison(weak)
    [pair] = weak.pairs
    assert (pair.base_label, pair.cand_label, pair.verdict) == (cell.label, "lanas:split=random", "worse")
    assert any(m.verdict == "worse" and m.a12_worse >= 0.7 for m in pair.metrics)


def _another_cpu(ulps: int):
    """The normal equations as another BLAS kernel might round them: every entry moved by
    ``ulps`` units in the last place, in a fixed pattern (symmetry kept)."""
    exact = LaNAS._normal_equations

    def perturbed(X, y):
        gram, moment = exact(X, y)
        sign = np.where(np.add.outer(np.arange(len(gram)), np.arange(len(gram))) % 2 == 0, 1.0, -1.0)
        return gram + sign * ulps * np.spacing(gram), moment - ulps * np.spacing(moment)
    return staticmethod(perturbed)


def test_a_rerun_on_another_cpu_gives_the_same_verdict(tmp_path, monkeypatch, nb201_env):
    """Across CPUs only RS, RE and MCTS are bit-reproducible; LaNAS's least-squares fits differ
    in the last bits and the tree's routing amplifies that into other trajectories for some
    seeds. ``compare`` must still pass such a re-run (README, "Protocol")."""
    full = load_baseline(REPO / "results" / "baselines" / "nb201-cifar10.json")
    cell = full.cell("nb201/cifar10", "lanas:split=lstsq")
    base = dataclasses.replace(full, cells=[cell])
    seeds = 20
    exp = dict(oracles=[cell.oracle], algorithms=[cell.label], seeds=seeds, budget=cell.budget,
               until_optimum=True)
    with _single_threaded_blas():
        execute(Experiment(**exp, out=str(tmp_path / "here")), progress=False)
        monkeypatch.setattr(LaNAS, "_normal_equations", _another_cpu(8))
        execute(Experiment(**exp, out=str(tmp_path / "there")), progress=False)
    here, there = load(tmp_path / "here"), load(tmp_path / "there")
    a, b = here.cells[0].samples_to_optimum, there.cells[0].samples_to_optimum
    # the premise: a few ulps do change trajectories (6 of 20 runs measured on an AMD EPYC)
    assert np.sum(a != b) >= 1, "8 ulps changed no run: the perturbation does not reach the fits"
    result = compare(base, there)
    assert not result.regression, format_comparison(result)
