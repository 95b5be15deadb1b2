"""The runner's protocol: what algorithms see, budgets, repeats, the optimum."""

import dataclasses

import numpy as np
import pytest

from algorithms import REGISTRY
from algorithms.base import DONE, SearchAlgorithm
from harness.runner import STUCK_REASON, RunConfig, run_one
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

    #: no test here asks this often: a runner that never stops fails at once instead of hanging
    ASK_LIMIT = 100_000

    def ask(self):
        self.n += 1
        if self.n > self.ASK_LIMIT:
            raise AssertionError(f"asked {self.ASK_LIMIT:,} times: the runner does not stop")
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


def test_a_stuck_run_is_stopped_and_recorded(nb201_oracle, spy):
    records, summary = run_one(RunConfig("spy", {"stuck_after": 5}, budget=50, max_repeats=100),
                               nb201_oracle, seed=0)
    assert summary["stopped"] == STUCK_REASON.format(n=100) == \
        "stuck: asked 100 already-evaluated architectures in a row (max_repeats)"
    assert "failed" not in summary
    # five new architectures, then 100 repeats of the first: all recorded, the last not told
    assert summary["n_distinct"] == 5 and summary["n_queries"] == 105 == len(records["sample"])
    assert records["repeat"][5:].all() and not records["repeat"][:5].any()
    assert (records["arch_index"][5:] == records["arch_index"][0]).all()
    assert len(spy.told) == 104
    assert not summary["censored"] and summary["samples_to_optimum"] is None


def test_a_stuck_run_is_censored_for_samples_to_optimum(nb201_oracle, spy):
    _, summary = run_one(RunConfig("spy", {"stuck_after": 7}, until_optimum=True, max_repeats=20),
                         nb201_oracle, seed=0)
    assert summary["stopped"].startswith("stuck") and summary["n_distinct"] == 7
    assert summary["censored"] and not summary["reached_optimum"]


def test_normal_runs_are_not_stopped(nb201_oracle):
    _, summary = run_one(RunConfig("random", budget=20), nb201_oracle, seed=0)
    assert summary["stopped"] is None and "failed" not in summary


class Broken(Spy):
    """A spy that raises in ``where`` ("start", "ask" or "tell") at query ``at``."""

    name = "broken"

    def __init__(self, where: str = "tell", at: int = 4):
        super().__init__()
        self.where, self.at = where, at

    def start(self, space, rng):
        super().start(space, rng)
        if self.where == "start":
            raise RuntimeError("cannot start\nsecond line")

    def ask(self):
        if self.where == "ask" and self.n + 1 == self.at:
            {}["missing"]
        return super().ask()

    def tell(self, arch, observation):
        if self.where == "tell" and self.n == self.at:
            1 / 0
        super().tell(arch, observation)


@pytest.mark.parametrize("where, error, n_recorded", [
    ("start", "RuntimeError: cannot start", 0),
    ("ask", "KeyError: 'missing'", 3),
    ("tell", "ZeroDivisionError: division by zero", 3),
])
def test_an_algorithm_that_raises_fails_its_run_with_one_line(nb201_oracle, monkeypatch, where, error,
                                                             n_recorded):
    monkeypatch.setitem(REGISTRY, "broken", "test_runner:Broken")
    records, summary = run_one(RunConfig("broken", {"where": where, "at": 4}, budget=50), nb201_oracle, seed=0)
    assert summary["failed"].startswith(error + " (tests/test_runner.py:")
    assert f" in {where})" in summary["failed"] and "\n" not in summary["failed"]
    assert summary["traceback"].startswith("Traceback") and error.split(":")[0] in summary["traceback"]
    # the queries the algorithm was told about are kept (the store does not write them)
    assert summary["n_queries"] == len(records["sample"]) == n_recorded


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
    # expectations from a plain loop (the runner computes them vectorised)
    best_s = best_r = -np.inf
    incumbent = None
    for k in range(200):
        if r["search"][k] > best_s:
            best_s, incumbent = r["search"][k], r["report"][k]
        best_r = max(best_r, r["report"][k])
        assert (r["best_search"][k], r["best_report"][k], r["incumbent_report"][k]) == (best_s, best_r, incumbent)
    assert "arch" not in r  # the NB201 string form is the identity: stored once


def test_the_incumbent_stays_at_the_first_architecture_reaching_the_best_value(monkeypatch):
    """Search values .5 .7 .7 .6 .9 with reports that tell the architectures apart: a later
    architecture that only equals the best value does not replace the incumbent."""
    from test_runner_trials import SPACE, N
    from oracles.oracle import TabularOracle
    from oracles.table import Table
    monkeypatch.setitem(REGISTRY, "script", "test_runner_trials:Script")
    search = np.full(N, 0.1)
    search[[1, 2, 3, 4, 5]] = [0.5, 0.7, 0.7, 0.6, 0.9]
    report = np.arange(N) / 100.0
    values = np.stack([search, report], axis=-1)[:, None, None, :]
    table = Table("ties", np.array([SPACE.to_string(SPACE.arch(k)) for k in range(N)]), ("0",), (1,),
                  ("valid", "test"), values)
    oracle = TabularOracle("ties", table, SPACE, search="valid", report="test")
    r, _ = run_one(RunConfig("script", {"script": (1, 2, 3, 4, 5)}), oracle, seed=0)
    assert r["best_search"].tolist() == [0.5, 0.7, 0.7, 0.7, 0.9]
    assert r["incumbent_report"].tolist() == [0.01, 0.02, 0.02, 0.02, 0.05]     # architecture 2, not 3
    assert r["best_report"].tolist() == [0.01, 0.02, 0.03, 0.04, 0.05]


def test_an_answer_of_nan_never_becomes_the_best_so_far(monkeypatch):
    """An oracle that cannot say (NaN) leaves the best-so-far columns as they were."""
    from test_runner_trials import SPACE, N
    from oracles.oracle import TabularOracle, _quantile
    from oracles.table import Table
    monkeypatch.setitem(REGISTRY, "script", "test_runner_trials:Script")
    search = np.full(N, 0.1)
    search[[1, 2, 3, 4]] = [0.5, np.nan, 0.7, np.inf]
    values = np.stack([search, np.arange(N) / 100.0], axis=-1)[:, None, None, :]
    table = Table("nan", np.array([SPACE.to_string(SPACE.arch(k)) for k in range(N)]), ("0",), (1,),
                  ("valid", "test"), values)
    for direction, best in (("max", [0.5, 0.5, 0.7, np.inf]), ("min", [0.5, 0.5, 0.5, 0.5])):
        oracle = TabularOracle("nan", table, SPACE, search="valid", report="test", direction=direction)
        r, _ = run_one(RunConfig("script", {"script": (1, 2, 3, 4)}), oracle, seed=0)
        assert r["best_search"].tolist() == best, direction
    # quantiles over failed (+inf) results: the top ones are inf, never NaN from inf - inf
    assert [_quantile(np.array([1.0, 2.0, np.inf, np.inf, np.nan]), q) for q in (0, 0.25, 0.5, 1)] == \
        [1.0, 1.75, np.inf, np.inf]


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


# --- the runner's records against a plain reference loop ---------------------------------------
def reference_run(config, oracle, seed):
    """The runner's loop as it was before issue 13 made it faster (an identity-keyed cache,
    every column built per query, every oracle call through ``query``), kept as the reference
    the fast runner must agree with, record for record."""
    from algorithms import make_algorithm
    from harness.runner import resolve_budget
    algo = make_algorithm(config.algorithm, config.params)
    budget = resolve_budget(config, oracle)
    space = oracle.space
    algo_ss, oracle_ss = np.random.SeedSequence(int(seed)).spawn(2)
    algo_rng, oracle_rng = np.random.default_rng(algo_ss), np.random.default_rng(oracle_ss)
    optimum = oracle.optimum.identities if config.until_optimum else frozenset()
    rows, cache, charged = [], {}, 0
    best, incumbent_report, cum_cost = -np.inf, None, 0.0
    algo.start(space, algo_rng)
    while charged < budget:
        arch = algo.ask()
        if arch is DONE:
            break
        ident = space.identity(arch)
        hit = cache.get(ident)
        repeat = hit is not None
        if hit is None:
            hit = cache[ident] = (oracle.query(arch, oracle_rng), space.to_string(arch))
        if not repeat or config.charge_repeats:
            charged += 1
        evaluation, text = hit
        obs = evaluation.observation
        algo.tell(arch, obs)
        if obs.value > best:
            best, incumbent_report = obs.value, evaluation.report
        if not repeat or config.charge_repeats:
            cum_cost += 0.0 if obs.cost is None else obs.cost
        rows.append({"n_distinct": charged, "arch_index": space.index(arch) if space.is_finite else -1,
                     "arch_id": ident, "arch": text, "search": obs.value, "report": evaluation.report,
                     "best_search": best, "incumbent_report": incumbent_report,
                     "cost": np.nan if obs.cost is None else obs.cost, "cum_cost": cum_cost,
                     "repeat": repeat})
        if not repeat and ident in optimum:
            break
    return rows


class TwinSpace:
    """The tiny space where tokens (a, b, 2) and (a, b, 3) are one architecture (one
    identity, two indices), as isomorphic cells of a space enumerated with duplicates."""

    @staticmethod
    def make():
        from tiny_space import TinySpace

        class Twins(TinySpace):
            def identity(self, arch):
                return ",".join(map(str, (*arch[:2], min(arch[2], 2))))

        return Twins()


def _tiny_oracle(space):
    from oracles.oracle import TabularOracle
    from oracles.table import Table
    from tiny_space import linear_values
    v = linear_values(space, seed=4)
    values = np.stack([v, 1 - v, 10 + 100 * v], axis=-1)[:, None, None, :]
    table = Table("tiny", np.array([space.to_string(space.arch(i)) for i in range(space.size)]), ("0",), (1,),
                  ("valid", "test", "time"), values)
    return TabularOracle("tiny", table, space, search="valid", report="test", cost="time")


# every registered algorithm with its defaults, a few hundred queries on NB201: the run loop
# of trials, fidelities and simulated workers (issue 14) must give, with one worker, the
# trajectories of the plain sequential loop
EVERY_ALGORITHM = {"random": 300, "evolution": 300, "mcts": 300, "lanas": 120, "reinforce": 40,
                   "cadam": 40, "nao": 40, "nases": 12, "tpe": 150, "mlpnas": 40}    # NASES: 1 s per query, so under -m slow


def _plain(name: str) -> bool:
    """An algorithm of the plain ask/tell surface (multi-fidelity ones have their own tests)."""
    from algorithms import algorithm_class
    from algorithms.base import SearchAlgorithm
    cls = algorithm_class(name)
    return not cls.uses_fidelities and cls.tell_trial is SearchAlgorithm.tell_trial


@pytest.mark.parametrize("case", ["random-nb201", "random-nb201-optimum", "spy-repeats", "spy-charged",
                                  "evolution-nb201", "random-twins", "evolution-twins-charged",
                                  *(pytest.param(f"every-{name}", marks=pytest.mark.slow) if name == "nases"
                                    else f"every-{name}" for name in EVERY_ALGORITHM)])
def test_records_agree_with_the_reference_loop(nb201_oracle, spy, case):
    assert set(EVERY_ALGORITHM) >= {n for n in REGISTRY if n != "spy" and _plain(n)}, \
        "a new algorithm: add it to EVERY_ALGORITHM"
    configs = {
        **{f"every-{name}": (RunConfig(name, budget=budget, max_repeats=50), nb201_oracle)
           for name, budget in EVERY_ALGORITHM.items()},
        "random-nb201": (RunConfig("random", budget=300), nb201_oracle),
        "random-nb201-optimum": (RunConfig("random", until_optimum=True), nb201_oracle),
        "spy-repeats": (RunConfig("spy", {"repeat_every": 3}, budget=200), nb201_oracle),
        "spy-charged": (RunConfig("spy", {"repeat_every": 3}, budget=200, charge_repeats=True), nb201_oracle),
        "evolution-nb201": (RunConfig("evolution", budget=400), nb201_oracle),
        "random-twins": (RunConfig("random"), _tiny_oracle(TwinSpace.make())),
        "evolution-twins-charged": (RunConfig("evolution", {"population": 6, "sample_size": 3}, budget=20,
                                              charge_repeats=True), _tiny_oracle(TwinSpace.make())),
    }
    config, oracle = configs[case]
    for seed in (0, 7):
        records, summary = run_one(config, oracle, seed)
        ref = reference_run(config, oracle, seed)
        assert len(records["sample"]) == len(ref) == summary["n_queries"]
        for k in ref[0]:
            got = records["arch"] if k == "arch" and "arch" in records else records[k if k != "arch" else "arch_id"]
            want = [r[k] for r in ref]
            if k in ("search", "report", "best_search", "incumbent_report", "cost", "cum_cost"):
                np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float64), err_msg=k)
            else:
                assert list(got) == want, k
        assert summary["n_distinct"] == ref[-1]["n_distinct"]
    if "twins" in case:
        assert records["repeat"].any()  # the shared identities were met
