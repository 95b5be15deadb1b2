"""The runner's counting, pinned down with a scripted algorithm and a counting, noisy oracle.

The scripted algorithm asks a fixed list of architectures (repeats in a row and apart); the
oracle counts its calls and answers a re-query of an architecture differently from its first
answer, so a re-query instead of the run's cache shows in the values the algorithm is told.
Every expected column is written out by hand from the tables below, not computed with the
expressions the runner uses. Each test runs on the three paths of ``harness.runner``: the
fast path of table oracles (``query_index``), the generic path (``oracle.query``) on a finite
space, and the identity-keyed path of a space without an enumeration. The last test reads
the same runs back from the results store.

Each test was checked against mutations planted in ``harness/runner.py`` and
``harness/results.py`` (issue 20): samples-to-optimum over queries, ``n_distinct`` ignoring
``charge_repeats``, re-queries of repeats, "in a row" counted in total, ties, costs, and so on.
"""

from collections import Counter

import numpy as np
import pytest

from algorithms import REGISTRY
from algorithms.base import DONE, SearchAlgorithm
from harness.runner import STUCK_REASON, RunConfig, run_one
from oracles.oracle import Evaluation, Observation, Oracle, Optimum, TabularOracle
from oracles.table import Table
from tiny_space import TinySpace

# Per enumeration index of the tiny space (24 architectures): search value, report value,
# cost. Powers of two, so every value and every sum of costs is exact. Architectures 1 and 3
# tie on the search metric with different reports; 4 is the optimum; the rest are poor, and
# their cost is unknown (NaN, as a table without that column's value serves it).
SEARCH = {0: 0.5, 1: 0.75, 2: 0.625, 3: 0.75, 4: 0.875}
REPORT = {0: 0.25, 1: 0.5, 2: 0.875, 3: 0.625, 4: 0.75}
COST = {0: 1.0, 1: 2.0, 2: 4.0, 3: 8.0, 4: 16.0}
POOR = (0.125, 0.0625, np.nan)  # search, report, cost of every other architecture
#: what a re-query adds to all three values, per earlier call for the same architecture
NOISE = 1.0


class Scripted(SearchAlgorithm):
    """Asks the architectures of ``script`` (enumeration indices of the tiny space) in order.

    Parameters
    ----------
    script : the enumeration indices to ask, in order.
    then : after the script, ``"stop"`` (answer DONE) or ``"cycle"`` (ask the
        script again, forever).
    guard : asks after which the algorithm raises instead of asking again, so a runner that
        never stops it fails the test instead of hanging it.
    """

    name = "scripted"
    told: list = []

    def __init__(self, script: tuple = (), then: str = "stop", guard: int = 1000):
        self.script, self.then, self.guard = script, then, guard

    def start(self, space, rng):
        self.space, self.n = space, 0

    def ask(self):
        if self.n >= self.guard:
            raise RuntimeError(f"asked {self.n} times: the runner never stopped this run")
        if self.n >= len(self.script) and self.then == "stop":
            return DONE
        i = self.script[self.n % len(self.script)]
        self.n += 1
        return self.space.arch(i)

    def tell(self, arch, observation):
        Scripted.told.append((arch, observation))


def _answer(i, calls):
    """The answer to the ``calls[i]``-th call for architecture ``i`` (0: the first)."""
    k = calls[i]
    calls[i] += 1
    s, r, c = (SEARCH[i], REPORT[i], COST[i]) if i in SEARCH else POOR
    return Evaluation(Observation(s + NOISE * k, c + NOISE * k), r + NOISE * k)


def _table(space):
    values = np.empty((space.size, 1, 1, 3))
    for i in range(space.size):
        values[i, 0, 0] = (SEARCH[i], REPORT[i], COST[i]) if i in SEARCH else POOR
    archs = np.array([space.to_string(space.arch(i)) for i in range(space.size)])
    return Table("tiny", archs, ("0",), (1,), ("valid", "test", "time"), values)


class CountingTable(TabularOracle):
    """A table oracle (the runner's fast path: ``query`` is not overridden) whose
    ``query_index`` counts its calls and answers re-queries with noise."""

    def __init__(self):
        space = TinySpace()
        super().__init__("tiny", _table(space), space, search="valid", report="test", cost="time")
        self.calls = Counter()

    def query_index(self, i, rng=None):
        self.n_queries += 1
        return _answer(int(i), self.calls)


class CountingGeneric(Oracle):
    """An oracle answering through ``query`` (the runner's generic path), counting calls."""

    name, search_metric, report_metric = "tiny-generic", "valid", "test"

    def __init__(self, space):
        super().__init__()
        self.space, self._tiny, self.calls = space, TinySpace(), Counter()

    def query(self, arch, rng=None):
        self.n_queries += 1
        return _answer(self._tiny.index(arch), self.calls)

    @property
    def optimum(self):
        return Optimum(0.875, (4,), frozenset({self._tiny.identity(self._tiny.arch(4))}), 0.75)


class Unenumerated(TinySpace):
    """The tiny space without its enumeration (size None): the runner keys its cache by
    identity and records index -1."""

    @property
    def size(self):
        return None


PATHS = ["table", "generic", "unenumerated"]


def _oracle(path):
    return {"table": CountingTable, "generic": lambda: CountingGeneric(TinySpace()),
            "unenumerated": lambda: CountingGeneric(Unenumerated())}[path]()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setitem(REGISTRY, "scripted", "test_runner_counting:Scripted")
    Scripted.told.clear()
    return Scripted


def _run(path, script, budget=24, params=None, **kw):
    oracle = _oracle(path)
    records, summary = run_one(RunConfig("scripted", {"script": script, **(params or {})}, budget=budget, **kw),
                               oracle, seed=0)
    assert "failed" not in summary, summary.get("traceback")
    return oracle, records, summary


# The main script: repeats right after a first ask and apart from it, a tie with the
# incumbent (3 ties 1), the optimum (4) after four repeats, then one more that is never asked.
SCRIPT = (0, 0, 1, 0, 2, 2, 3, 1, 4, 5)
UP_TO_OPTIMUM = [0, 0, 1, 0, 2, 2, 3, 1, 4]


@pytest.mark.parametrize("path", PATHS)
def test_samples_to_optimum_counts_distinct_architectures(scripted, path):
    _, records, summary = _run(path, SCRIPT, until_optimum=True)
    # nine queries, four of them repeats: the optimum is the fifth distinct architecture
    assert summary["samples_to_optimum"] == 5
    assert summary["n_queries"] == 9 and summary["n_distinct"] == 5 and summary["n_repeats"] == 4
    assert summary["reached_optimum"] and not summary["censored"] and summary["stopped"] is None
    want_index = UP_TO_OPTIMUM if path != "unenumerated" else [-1] * 9
    assert records["arch_index"].tolist() == want_index


@pytest.mark.parametrize("path", PATHS)
def test_samples_to_optimum_with_charged_repeats_counts_every_query(scripted, path):
    _, _, summary = _run(path, SCRIPT, until_optimum=True, charge_repeats=True)
    assert summary["samples_to_optimum"] == 9 and summary["n_distinct"] == 9 and summary["n_repeats"] == 4


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("charge, want", [
    (False, [1, 1, 2, 2, 3, 3, 4, 4, 5]),
    (True, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
])
def test_n_distinct_column(scripted, path, charge, want):
    _, records, summary = _run(path, SCRIPT, until_optimum=True, charge_repeats=charge)
    assert records["n_distinct"].tolist() == want
    assert records["repeat"].tolist() == [False, True, False, True, False, True, False, True, False]
    assert records["sample"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert summary["n_distinct"] == want[-1]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("charge, budget, want_queries", [
    # the budget counts distinct architectures: three of them take five queries ...
    (False, 3, [0, 0, 1, 0, 2]),
    # ... unless repeats are charged
    (True, 3, [0, 0, 1]),
])
def test_budget_stops_at_the_charged_count(scripted, path, charge, budget, want_queries):
    _, records, summary = _run(path, SCRIPT, budget=budget, charge_repeats=charge)
    assert len(records["sample"]) == len(want_queries) and summary["n_distinct"] == 3
    assert [TinySpace().index(a) for a, _ in scripted.told] == want_queries
    assert not summary["exhausted_space"] and summary["stopped"] is None


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("charge", [False, True])
def test_the_oracle_answers_each_architecture_once_and_repeats_come_from_the_cache(scripted, path, charge):
    oracle, records, _ = _run(path, SCRIPT, until_optimum=True, charge_repeats=charge)
    assert oracle.n_queries == 5
    assert dict(oracle.calls) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    # the algorithm is told the first answer again on every repeat (a re-query would add NOISE)
    told = [(TinySpace().index(a), o.value, o.cost) for a, o in scripted.told]
    assert told == [(0, 0.5, 1.0), (0, 0.5, 1.0), (1, 0.75, 2.0), (0, 0.5, 1.0), (2, 0.625, 4.0),
                    (2, 0.625, 4.0), (3, 0.75, 8.0), (1, 0.75, 2.0), (4, 0.875, 16.0)]
    assert records["search"].tolist() == [0.5, 0.5, 0.75, 0.5, 0.625, 0.625, 0.75, 0.75, 0.875]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("charge, cum_cost", [
    # a cached answer costs nothing unless repeats are charged
    (False, [1.0, 1.0, 3.0, 3.0, 7.0, 7.0, 15.0, 15.0, 31.0]),
    (True, [1.0, 2.0, 4.0, 5.0, 9.0, 13.0, 21.0, 23.0, 39.0]),
])
def test_best_so_far_incumbent_and_cost_columns(scripted, path, charge, cum_cost):
    _, r, summary = _run(path, SCRIPT, until_optimum=True, charge_repeats=charge)
    assert r["report"].tolist() == [0.25, 0.25, 0.5, 0.25, 0.875, 0.875, 0.625, 0.5, 0.75]
    assert r["cost"].tolist() == [1.0, 1.0, 2.0, 1.0, 4.0, 4.0, 8.0, 2.0, 16.0]
    assert r["best_search"].tolist() == [0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.875]
    # the best report so far is not the incumbent's: architecture 2 has the best report
    assert r["best_report"].tolist() == [0.25, 0.25, 0.5, 0.5, 0.875, 0.875, 0.875, 0.875, 0.875]
    # architecture 3 ties architecture 1 on the search metric (query 7): the incumbent stays
    # the first to attain it, 1, whose report is 0.5 (3's is 0.625)
    assert r["incumbent_report"].tolist() == [0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.75]
    assert r["cum_cost"].tolist() == cum_cost
    assert (summary["best_search"], summary["best_report"], summary["incumbent_report"],
            summary["total_cost"]) == (0.875, 0.875, 0.75, cum_cost[-1])


APART_SCRIPT = (0, 0, 1, 0, 2, 1, 3, 2, 5, 3, 6, 0)


@pytest.mark.parametrize("path", PATHS)
def test_many_repeats_apart_do_not_stop_a_run(scripted, path):
    # six repeats in all, never two in a row: with max_repeats=2 the run must go on to the end
    script = APART_SCRIPT
    oracle, records, summary = _run(path, script, max_repeats=2)
    assert summary["stopped"] is None and summary["exhausted_space"]
    assert summary["n_queries"] == 12 and summary["n_distinct"] == 6 and summary["n_repeats"] == 6
    assert records["n_distinct"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    # architectures 5 and 6 have no known cost: NaN in the records, nothing paid for them
    assert np.isnan(records["cost"]).tolist() == [False] * 8 + [True, False, True, False]
    assert records["cum_cost"].tolist() == [1.0, 1.0, 3.0, 3.0, 7.0, 7.0, 15.0, 15.0, 15.0, 15.0, 15.0, 15.0]
    assert len(scripted.told) == 12 and oracle.n_queries == 6


# two repeats in a row (of 2, then 1) after a single one (of 0); the optimum comes after them
STUCK_SCRIPT = (0, 0, 1, 2, 2, 1, 4)


@pytest.mark.parametrize("path", PATHS)
def test_max_repeats_in_a_row_stop_a_run(scripted, path):
    # one repeat, then two in a row of two different architectures: the second of those
    # stops the run (three repeats in all, two in a row)
    oracle, records, summary = _run(path, STUCK_SCRIPT, max_repeats=2, until_optimum=True)
    assert summary["stopped"] == STUCK_REASON.format(n=2)
    assert summary["censored"] and summary["samples_to_optimum"] is None and not summary["reached_optimum"]
    # the stopping query is recorded but not told; the optimum after it is never asked
    assert records["n_distinct"].tolist() == [1, 1, 2, 3, 3, 3]
    assert records["repeat"].tolist() == [False, True, False, False, True, True]
    assert [TinySpace().index(a) for a, _ in scripted.told] == [0, 0, 1, 2, 2]
    assert summary["n_queries"] == 6 and summary["n_repeats"] == 3 and oracle.n_queries == 3


@pytest.mark.parametrize("path", PATHS)
def test_charged_repeats_in_a_row_do_not_stop_a_run(scripted, path):
    # charged repeats spend the budget, so they cannot spin forever: no stop for them
    _, records, summary = _run(path, STUCK_SCRIPT, max_repeats=2, until_optimum=True, charge_repeats=True)
    assert summary["stopped"] is None and summary["samples_to_optimum"] == 7
    assert records["n_distinct"].tolist() == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("path", PATHS)
def test_an_algorithm_that_only_repeats_is_stopped_instead_of_hanging(scripted, path):
    # after three architectures the algorithm asks them again forever; its guard raises after
    # 100 asks, so a runner that never stops it fails this test instead of hanging it
    oracle, records, summary = _run(path, (0, 1, 2), budget=24, max_repeats=5,
                                    params={"then": "cycle", "guard": 100})
    assert summary["stopped"] == STUCK_REASON.format(n=5)
    assert summary["n_queries"] == 8 and summary["n_distinct"] == 3 and oracle.n_queries == 3
    assert records["repeat"].tolist() == [False] * 3 + [True] * 5


# --- the same runs through the results store ---------------------------------------------------
def test_the_results_store_keeps_every_column_and_summary_field(scripted, tmp_path):
    """A run file read back holds exactly what the runner recorded: repeats, the distinct
    count, unknown costs (null), the summary's samples-to-optimum and stop reason."""
    from harness.results import Cell, ResultsStore
    store = ResultsStore(tmp_path)
    [cell] = store.register([Cell("scripted", "tiny", {"algorithm": "scripted"})])
    runs = {0: _run("table", SCRIPT, until_optimum=True), 1: _run("table", APART_SCRIPT, max_repeats=2),
            2: _run("table", STUCK_SCRIPT, max_repeats=2, until_optimum=True)}
    for seed, (_, records, summary) in runs.items():
        store.write_run(cell, seed, records, summary, machine={"cpu": "test"})
    back = {meta["seed"]: (meta["summary"], table) for _, meta, table in store.iter_runs(with_records=True)}
    assert sorted(back) == [0, 1, 2]
    F, T = False, True
    want = {
        0: {"sample": [1, 2, 3, 4, 5, 6, 7, 8, 9], "n_distinct": [1, 1, 2, 2, 3, 3, 4, 4, 5],
            "repeat": [F, T, F, T, F, T, F, T, F], "arch_index": [0, 0, 1, 0, 2, 2, 3, 1, 4],
            "arch_id": ["0,0,0", "0,0,0", "0,0,1", "0,0,0", "0,0,2", "0,0,2", "0,0,3", "0,0,1", "0,1,0"],
            "incumbent_report": [0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.75],
            "cum_cost": [1.0, 1.0, 3.0, 3.0, 7.0, 7.0, 15.0, 15.0, 31.0]},
        1: {"n_distinct": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
            "repeat": [F, T, F, T, F, T, F, T, F, T, F, T],
            "cost": [1.0, 1.0, 2.0, 1.0, 4.0, 2.0, 8.0, 4.0, None, 8.0, None, 1.0]},
        2: {"n_distinct": [1, 1, 2, 3, 3, 3], "repeat": [F, T, F, F, T, T]},
    }
    for seed, columns in want.items():
        summary, table = back[seed]
        for name, values in columns.items():
            assert table.column(name).to_pylist() == values, (seed, name)
        assert table.num_rows == len(columns["n_distinct"])
    assert (back[0][0]["samples_to_optimum"], back[0][0]["n_distinct"], back[0][0]["n_repeats"]) == (5, 5, 4)
    assert back[1][0]["stopped"] is None and back[1][0]["exhausted_space"]
    assert back[2][0]["stopped"] == STUCK_REASON.format(n=2) and back[2][0]["censored"]
    assert back[2][0]["samples_to_optimum"] is None
