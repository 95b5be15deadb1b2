"""Random search on the full NB201 table behaves as theory says (200 seeds, to the optimum).

Sampling without replacement, the position of the first of k optima among N architectures
has mean (N + 1) / (k + 1); for k = 1 it is uniform on 1..N with variance (N^2 - 1) / 12.
The tolerance is four standard errors of the mean of 200 runs, derived from that variance.
"""

import math

import numpy as np
import pytest
from scipy import stats

from harness.experiment import Experiment, execute
from harness.results import ResultsStore
from harness.summary import summarise
from oracles.registry import load_oracle


def test_random_search_needs_n_plus_one_over_two_samples(nb201_env, tmp_path):
    exp = Experiment(oracles=["nb201/cifar10"], algorithms=["random"], seeds=200, until_optimum=True,
                     workers=2, out=str(tmp_path / "rs"))
    execute(exp, progress=False)
    oracle = load_oracle("nb201/cifar10")
    n, k = oracle.space.size, len(oracle.optimum.indices)
    assert (n, k) == (15625, 1)

    values = np.array([m["summary"]["samples_to_optimum"] for _, m, _ in ResultsStore(exp.out).iter_runs()])
    assert len(values) == 200 and np.all((values >= 1) & (values <= n))
    expected = (n + 1) / (k + 1)  # 7,813
    se = math.sqrt((n * n - 1) / 12 / len(values))
    assert abs(values.mean() - expected) < 4 * se, (values.mean(), expected, se)
    # and the whole distribution is uniform on 1..N
    assert stats.kstest(values / n, "uniform").pvalue > 1e-3

    (row,) = summarise(ResultsStore(exp.out))
    assert row["runs"] == 200 and row["samples_to_optimum"]["n_censored"] == 0
    assert row["samples_to_optimum"]["mean"] == values.mean()
    assert row["best_search"]["mean"] == pytest.approx(oracle.optimum.value, abs=1e-12)
