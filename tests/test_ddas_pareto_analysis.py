"""How results/ddas_fig32_digits/analyse.py judges DDAS's Pareto frontier (thesis §3.2.1) by a
ground truth: the space's cost of every cell, the best accuracy at a cost, and a run's regret."""

import numpy as np
import pytest

from algorithms.ddas import cell_cost
from oracles.nb201_space import NB201Space
from results_scripts import load_results_script


@pytest.fixture(scope="module")
def analyse():
    return load_results_script("ddas_fig32_digits/analyse.py", "ddas_fig32_analyse")


def test_best_at_cost_is_a_step_front(analyse):
    levels, best = analyse.best_at_cost(np.array([3.0, 1.0, 2.0, 1.0, 3.0]), np.array([0.2, 0.5, 0.4, 0.6, 0.9]))
    assert levels.tolist() == [1.0, 2.0, 3.0]
    # a dearer level never shows less than a cheaper one offers
    assert best.tolist() == [0.6, 0.6, 0.9]


def run_of(archs, space, test, valid):
    costs = [cell_cost(a, 8, 1, (1, 8, 8), 10) for a in archs]
    return {"archs": archs, "valid_acc": np.array(valid), "true_test": test[[space.index(a) for a in archs]],
            "params": np.array([c[0] for c in costs], dtype=float),
            "macs": np.array([c[1] for c in costs], dtype=float)}


def test_regret_of_a_frontier_against_the_space_and_the_samples(analyse):
    space = NB201Space()
    test = np.random.default_rng(0).uniform(0.1, 0.9, space.size)
    skip, c1, c3 = 1, 2, 3
    cheap, dear = (skip,) * 6, (c3,) * 6
    mid = (c1, skip, skip, skip, skip, skip)
    test[space.index(cheap)], test[space.index(mid)], test[space.index(dear)] = 0.5, 0.7, 0.6
    # the supernet puts the dear cell on the frontier above the cheap one and misses mid
    run = run_of([cheap, mid, dear], space, test, valid=[0.80, 0.75, 0.90])
    result = {"_runs": {"full": {0: run}}}
    p = analyse.pareto(result, space, test)
    costs = analyse.space_costs(result["_runs"], space)
    # cells with no live convolution cost the least; a 1x1 less than a 3x3
    assert costs["params"][space.index(cheap)] == costs["params"].min()
    assert costs["params"][space.index(cheap)] < costs["params"][space.index(mid)] < costs["params"][space.index(dear)]
    # every cell's recorded cost is the one the map gives, including cells with dead edges
    rng = np.random.default_rng(1)
    for i in rng.integers(0, space.size, 20):
        assert (costs["params"][i], costs["macs"][i]) == cell_cost(space.arch(int(i)), 8, 1, (1, 8, 8), 10)
    m = p["variants"]["full"]["params"]
    assert m["size"]["mean"] == 2
    # against its samples: cheap is the best at its cost (0), dear is 0.1 below mid (cheaper, 0.7)
    assert m["regret_sampled"]["mean"] == pytest.approx((0.0 + 0.1) / 2)
    levels, best = analyse.best_at_cost(costs["params"], test)
    expect = np.mean([best[np.searchsorted(levels, costs["params"][space.index(a)])] - test[space.index(a)]
                      for a in (cheap, dear)])
    assert m["regret_space"]["mean"] == pytest.approx(expect)
    assert m["on_true_front"]["mean"] == pytest.approx(0.5)


def test_recorded_costs_of_another_network_size_are_refused(analyse):
    space = NB201Space()
    test = np.full(space.size, 0.5)
    run = run_of([(1,) * 6, (3,) * 6], space, test, valid=[0.8, 0.9])
    run["params"] = run["params"] * 2
    with pytest.raises(SystemExit, match="recorded cell costs differ"):
        analyse.space_costs({"full": {0: run}}, space)
