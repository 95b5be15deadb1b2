"""Random search on the full NB201 table behaves as theory says (200 seeds, to the optimum).

Sampling without replacement, the position of the first of k optima among N architectures
has mean (N + 1) / (k + 1); for k = 1 it is uniform on 1..N with variance (N^2 - 1) / 12.
The tolerance is four standard errors of the mean of 200 runs, derived from that variance.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from algorithms.base import DONE
from algorithms.random_search import RandomSearch
from harness.experiment import Experiment, execute
from harness.results import ResultsStore
from harness.summary import summarise
from oracles.registry import load_oracle

from tiny_space import TinySpace

#: false-alarm rate of each goodness-of-fit test: the chance that a correct sampler fails it
#: for seeds drawn at random (the seeds here are fixed, so a run is deterministic)
ALPHA = 1e-3


def _order(space, seed, replace=False):
    """Every ask of one random-search run until it says DONE (at most 2 x the space)."""
    algo = RandomSearch(replace=replace)
    algo.start(space, np.random.default_rng(seed))
    out = []
    for _ in range(2 * space.size):
        a = algo.ask()
        if a is DONE:
            return out
        out.append(space.index(a))
    return out


def test_without_replacement_every_order_is_equally_likely():
    """On 4 architectures the 24 orders are equally likely (chi-square over 2,400 runs): a
    random rotation of a fixed order, or a shuffle that keeps some pairs in order, has every
    architecture at every position equally often and still fails here. Each run asks every
    architecture once, then says DONE."""
    space = TinySpace((2, 2))
    orders = [tuple(_order(space, seed)) for seed in range(2400)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    perms = sorted(itertools.permutations(range(4)))
    counts = np.array([orders.count(p) for p in perms])
    assert counts.sum() == 2400 and stats.chisquare(counts).pvalue > ALPHA


def test_without_replacement_positions_are_uniform():
    """On 27 architectures each one is equally likely at each of the 27 positions (the
    first-optimum theory of the NB201 test below rests on this): chi-square over the
    27 x 27 table of 2,700 runs."""
    space = TinySpace((3, 3, 3))
    table = np.zeros((27, 27), dtype=np.int64)
    for seed in range(2700):
        order = _order(space, seed)
        assert len(order) == 27
        table[order, np.arange(27)] += 1
    assert (table.sum(axis=0) == 2700).all() and (table.sum(axis=1) == 2700).all()
    assert stats.chisquare(table.ravel()).pvalue > ALPHA


def test_with_replacement_draws_are_independent_and_uniform():
    """replace=true: never DONE, repeats happen, and consecutive pairs are uniform over the
    16 x 16 pairs (chi-square), so each draw is uniform and independent of the last."""
    space = TinySpace((4, 4))
    algo = RandomSearch(replace=True)
    algo.start(space, np.random.default_rng(7))
    draws = np.array([space.index(algo.ask()) for _ in range(25_600)])
    assert len(set(draws[:32].tolist())) < 32                   # repeats within 2 x the space
    pairs = np.bincount(draws[:-1] * 16 + draws[1:], minlength=256)
    assert stats.chisquare(pairs).pvalue > ALPHA


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
