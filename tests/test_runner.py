"""The runner's protocol: what algorithms see, budgets, repeats, the optimum."""

import dataclasses

import numpy as np
import pytest

from algorithms import REGISTRY
from algorithms.base import SearchAlgorithm
from harness.runner import RunConfig, StuckAlgorithm, run_one
from oracles.oracle import Observation


class Spy(SearchAlgorithm):
    """Random search that keeps everything it is given, and can be told to repeat itself."""

    name = "spy"
    told: list = []
    started_with: list = []

    def __init__(self, repeat_every: int = 0, stuck_after: int = 0):
        self.repeat_every = repeat_every
        self.stuck_after = stuck_after

    def start(self, space, rng):
        self.space, self.rng, self.n, self.seen = space, rng, 0, []
        Spy.started_with.append((space, rng))

    def ask(self):
        self.n += 1
        if self.seen and (self.stuck_after and self.n > self.stuck_after):
            return self.seen[0]
        if self.seen and self.repeat_every and self.n % self.repeat_every == 0:
            return self.seen[int(self.rng.integers(len(self.seen)))]
        a = self.space.sample(self.rng)
        self.seen.append(a)
        return a

    def tell(self, arch, observation):
        Spy.told.append((arch, observation))


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setitem(REGISTRY, "spy", "test_runner:Spy")
    Spy.told.clear()
    Spy.started_with.clear()
    return Spy


def test_algorithms_never_see_test_accuracy(nb201_oracle, spy):
    records, _ = run_one(RunConfig("spy", oracle="nb201/cifar10", budget=300), nb201_oracle, seed=3)
    assert {f.name for f in dataclasses.fields(Observation)} == {"value", "cost", "train"}
    space, _ = spy.started_with[0]
    # the algorithm gets the space, which holds no metric of any kind
    assert not any(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in vars(space).values()
                   if v is not getattr(space, "_encode_all_cache", None))
    assert all(v is not nb201_oracle.table for v in vars(space).values())
    valid, test = nb201_oracle.search_values, nb201_oracle.report_values
    assert len(spy.told) == len(records["sample"]) >= 300
    for arch, obs in spy.told:
        assert type(obs) is Observation
        i = space.index(arch)
        assert obs.value == valid[i]
        for v in (obs.value, obs.cost, obs.train):
            assert v != test[i]
    # ... while the harness records the report metric
    np.testing.assert_array_equal(records["report"], test[records["arch_index"]])


def test_budget_counts_distinct_architectures_and_repeats_are_free(nb201_oracle, spy):
    records, summary = run_one(RunConfig("spy", {"repeat_every": 3}, budget=100), nb201_oracle, seed=0)
    assert summary["n_distinct"] == 100
    assert records["repeat"].sum() == summary["n_repeats"] > 20
    assert len(records["sample"]) == 100 + summary["n_repeats"]
    # repeats are answered from the cache and told to the algorithm too
    assert len(spy.told) == len(records["sample"])
    assert np.all(np.diff(records["n_distinct"])[records["repeat"][1:]] == 0)


def test_charging_repeats_is_a_switch(nb201_oracle, spy):
    records, summary = run_one(RunConfig("spy", {"repeat_every": 3}, budget=100, charge_repeats=True),
                               nb201_oracle, seed=0)
    assert len(records["sample"]) == 100
    assert summary["n_repeats"] > 20


def test_stuck_algorithm_stops_with_a_clear_error(nb201_oracle, spy):
    with pytest.raises(StuckAlgorithm, match="stuck"):
        run_one(RunConfig("spy", {"stuck_after": 5}, budget=50, max_repeats=100), nb201_oracle, seed=0)


def test_until_optimum_stops_at_the_first_optimum(nb201_oracle):
    records, summary = run_one(RunConfig("random", budget=None, until_optimum=True), nb201_oracle, seed=1)
    opt = nb201_oracle.optimum
    assert opt.indices == (6111,)
    assert records["arch_index"][-1] == 6111 and 6111 not in records["arch_index"][:-1]
    assert summary["samples_to_optimum"] == len(records["sample"]) and not summary["censored"]
    assert records["best_search"][-1] == opt.value
    assert len(set(records["arch_id"])) == len(records["arch_id"])  # without replacement


def test_a_run_that_hits_the_cap_is_censored(nb201_oracle):
    _, summary = run_one(RunConfig("random", budget=10, until_optimum=True), nb201_oracle, seed=1)
    assert summary["censored"] and summary["samples_to_optimum"] is None and summary["n_distinct"] == 10


def test_records_best_so_far_and_incumbent(nb201_oracle):
    r, _ = run_one(RunConfig("random", budget=200), nb201_oracle, seed=5)
    np.testing.assert_array_equal(r["best_search"], np.maximum.accumulate(r["search"]))
    np.testing.assert_array_equal(r["best_report"], np.maximum.accumulate(r["report"]))
    for k in (0, 50, 199):
        first_best = int(np.argmax(r["search"][: k + 1]))
        assert r["incumbent_report"][k] == r["report"][first_best]
    assert "arch" not in r  # the NB201 string form is the identity: stored once


def test_same_seed_same_trajectory(nb201_oracle):
    a, _ = run_one(RunConfig("random", budget=50), nb201_oracle, seed=9)
    b, _ = run_one(RunConfig("random", budget=50), nb201_oracle, seed=9)
    c, _ = run_one(RunConfig("random", budget=50), nb201_oracle, seed=10)
    np.testing.assert_array_equal(a["arch_index"], b["arch_index"])
    assert not np.array_equal(a["arch_index"], c["arch_index"])


def test_optimum_ties_survive_floating_point_means():
    """Two architectures with the same per-seed scores tie even if their means differ in the last bit."""
    from oracles.nb201_space import NB201Space
    from oracles.oracle import TabularOracle
    from oracles.table import Table
    n = 15625
    values = np.zeros((n, 3, 1, 2))
    values[:, :, 0, 0] = np.linspace(0.1, 0.8, n)[:, None]
    values[:, :, 0, 1] = 0.5
    # per-seed validation accuracies of the two best convnet-digits networks: 1,051 of 1,080
    # correct for both, yet their float means differ in the last bit
    values[7, :, 0, 0] = [0.9694444444444444, 0.9777777777777777, 0.9722222222222222]
    values[9, :, 0, 0] = [0.9694444444444444, 0.9888888888888889, 0.9611111111111111]
    table = Table("t", np.array([f"a{i}" for i in range(n)]), ("0", "1", "2"), (1,), ("v", "t"), values)
    col = table.column("v")
    oracle = TabularOracle("t", table, NB201Space(), search="v", report="t")
    assert col[7] != col[9]
    assert oracle.optimum.indices == (7, 9)
