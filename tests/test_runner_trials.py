"""The run loop beyond one worker, one fidelity and a maximised table (issue 14): trials
and their ids, fidelities (restart and prefix), a minimised metric, budgets in every unit,
simulated workers on a deterministic clock, a stochastic oracle, WAIT and DONE.

Expected values are worked out by hand from the module docstring of :mod:`harness.runner`
(the table below makes them easy: architecture i at fidelity f scores (i + 1) * f / 1000),
never computed with the runner's own expressions."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import REGISTRY
from algorithms.base import DONE, WAIT, Ask, SearchAlgorithm
from harness.runner import WAIT_WITH_NOTHING_RUNNING, RunConfig, run_one
from oracles.errors import UserError
from oracles.oracle import Evaluation, Observation, Oracle, TabularOracle
from oracles.table import Table
from tiny_space import TinySpace


class Script(SearchAlgorithm):
    """Asks what ``script`` says, in order: an int i is architecture i (at the top fidelity),
    a tuple (i, fidelity, continues) an Ask, "wait" WAIT; then DONE. Logs every tell."""

    name = "script"
    log: list = []

    def __init__(self, script: tuple = ()):
        self.script = script

    def start(self, space, rng, fidelities=None):
        self.space, self.k = space, 0
        Script.log.clear()

    def ask(self):
        if self.k >= len(self.script):
            return DONE
        s = self.script[self.k]
        self.k += 1
        if s == "wait":
            return WAIT
        if isinstance(s, (tuple, list)):
            i, fid, cont = s
            return Ask(self.space.arch(i), fidelity=fid, continues=cont)
        return self.space.arch(s)

    def tell(self, arch, observation):
        raise AssertionError("a trial-aware algorithm is told through tell_trial")

    def tell_trial(self, trial, observation):
        Script.log.append((trial.id, self.space.index(trial.arch), trial.fidelity, trial.continues,
                           round(observation.value, 9)))


class MultiScript(Script):
    name = "multiscript"
    uses_fidelities = True


class Stray(SearchAlgorithm):
    name = "stray"

    def __init__(self):
        pass

    def start(self, space, rng):
        pass

    def ask(self):
        return next(iter(()))        # a bug: a stray StopIteration

    def tell(self, arch, observation):
        pass


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    for cls in (Script, MultiScript, Stray):
        monkeypatch.setitem(REGISTRY, cls.name, f"test_runner_trials:{cls.__name__}")


SPACE = TinySpace()          # 24 architectures
N = SPACE.size


def table_oracle(*, direction="max", kind="restart", fidelities=(1, 2, 4), cost_per_epoch=None) -> TabularOracle:
    """Architecture i at fidelity f: search (i + 1) * f / 1000, report search + 0.5, and where
    ``cost_per_epoch`` is given a training time of cost_per_epoch[i] * f seconds."""
    i = np.arange(N, dtype=np.float64)[:, None]
    f = np.asarray(fidelities, dtype=np.float64)[None, :]
    valid = (i + 1) * f / 1000
    metrics, names = [valid, valid + 0.5], ["valid", "test"]
    if cost_per_epoch is not None:
        metrics.append(np.asarray(cost_per_epoch, dtype=np.float64)[:, None] * f)
        names.append("time")
    values = np.stack(metrics, axis=-1)[:, None, :, :]
    table = Table("tiny", np.array([SPACE.to_string(SPACE.arch(k)) for k in range(N)]), ("0",),
                  tuple(fidelities), tuple(names), values)
    return TabularOracle("tiny", table, SPACE, search="valid", report="test",
                         cost="time" if cost_per_epoch is not None else None, fidelities=fidelities,
                         fidelity_kind=kind, direction=direction)


def run(oracle, script, algo="script", **kw):
    return run_one(RunConfig(algo, {"script": tuple(script)}, **kw), oracle, seed=0)


def col(records, name, nd=6):
    return [None if np.isnan(v) else round(float(v), nd) for v in records[name]]


# --- trials, WAIT, DONE, StopIteration -----------------------------------------------------
def test_trial_ids_count_asks_and_done_ends_the_run():
    records, summary = run(table_oracle(fidelities=(4,)), [3, 5, 3, 7])
    assert [t[0] for t in Script.log] == [0, 1, 2, 3]
    assert records["trial"].tolist() == [0, 1, 2, 3]
    assert records["repeat"].tolist() == [False, False, True, False]
    assert summary["exhausted_space"] and "failed" not in summary


def test_wait_with_nothing_running_fails_the_run():
    records, summary = run(table_oracle(fidelities=(4,)), [3, "wait"])
    assert WAIT_WITH_NOTHING_RUNNING in summary["failed"]
    assert records["trial"].tolist() == [0]     # what was told before stays recorded


def test_stop_iteration_is_a_failure_not_an_exhausted_space():
    _, summary = run_one(RunConfig("stray"), table_oracle(fidelities=(4,)), seed=0)
    assert summary["failed"].startswith("StopIteration")
    assert not summary["exhausted_space"]


# --- direction ---------------------------------------------------------------------------------
def test_a_minimised_metric():
    oracle = table_oracle(direction="min", fidelities=(4,))
    # (i + 1) * 4 / 1000, smaller is better: architecture 0 (0.004) is the optimum
    assert oracle.optimum.indices == (0,)
    assert oracle.optimum.value == pytest.approx(0.004)
    assert oracle.optimum.report == pytest.approx(0.504)
    records, summary = run(oracle, [5, 2, 9, 0, 4], until_optimum=True)
    # the algorithm is told scores to maximise: the negated metric
    assert [t[4] for t in Script.log] == [-0.024, -0.012, -0.04, -0.004]
    # records keep the metric; best so far is the running minimum; the run stops at architecture 0
    assert col(records, "search") == [0.024, 0.012, 0.04, 0.004]
    assert col(records, "best_search") == [0.024, 0.012, 0.012, 0.004]
    assert col(records, "best_report") == [0.524, 0.512, 0.512, 0.504]
    assert col(records, "incumbent_report") == [0.524, 0.512, 0.512, 0.504]
    assert summary["samples_to_optimum"] == 4 and summary["best_search"] == pytest.approx(0.004)


def test_a_maximised_oracle_with_the_same_table_finds_the_other_end():
    assert table_oracle(fidelities=(4,)).optimum.indices == (23,)


def test_the_checksum_names_the_direction_and_the_served_fidelities():
    a, b = table_oracle(fidelities=(4,)), table_oracle(fidelities=(4,), direction="min")
    assert a.checksum != b.checksum
    assert table_oracle().checksum != table_oracle(kind="prefix").checksum


# --- fidelities --------------------------------------------------------------------------------
MF_SCRIPT = [(3, 1, None), (3, 4, 0), (3, 1, None), (23, 2, None), (23, 4, 3)]


def test_restart_fidelities_pay_in_full_and_only_the_top_fidelity_counts():
    records, summary = run(table_oracle(), MF_SCRIPT, algo="multiscript", until_optimum=True)
    assert [t[:4] for t in Script.log] == [(0, 3, 1, None), (1, 3, 4, 0), (2, 3, 1, None), (3, 23, 2, None),
                                         (4, 23, 4, 3)]
    assert records["fidelity"].tolist() == [1, 4, 1, 2, 4]
    assert records["repeat"].tolist() == [False, False, True, False, False]   # (3, 1) again: cached
    assert col(records, "search") == [0.004, 0.016, 0.004, 0.048, 0.096]
    # a restart fidelity is a training of its own: 1 + 4 + 0 + 2 + 4 epochs, one worker
    assert col(records, "epochs") == [1, 4, 0, 2, 4]
    assert col(records, "start") == [0, 1, 5, 5, 7]
    assert col(records, "finish") == [1, 5, 5, 7, 11]
    # best-so-far and the optimum only look at the top fidelity (4): architecture 23 at 2
    # epochs is not the optimum found
    assert col(records, "best_search") == [None, 0.016, 0.016, 0.016, 0.096]
    assert col(records, "incumbent_report") == [None, 0.516, 0.516, 0.516, 0.596]
    assert records["n_distinct"].tolist() == [1, 2, 2, 3, 4]
    assert summary["samples_to_optimum"] == 4
    assert summary["time_to_optimum"] == 11 and summary["epochs_to_optimum"] == 11


def test_prefix_fidelities_charge_only_the_extra_epochs():
    records, _ = run(table_oracle(kind="prefix"), MF_SCRIPT, algo="multiscript")
    assert col(records, "epochs") == [1, 3, 0, 2, 2]
    assert col(records, "finish") == [1, 4, 4, 6, 8]


def test_the_clock_runs_on_the_tables_training_time_where_it_has_one():
    cost = [10.0] * N
    restart, _ = run(table_oracle(cost_per_epoch=cost), MF_SCRIPT, algo="multiscript")
    prefix, _ = run(table_oracle(cost_per_epoch=cost, kind="prefix"), MF_SCRIPT, algo="multiscript")
    assert col(restart, "finish") == [10, 50, 50, 70, 110]
    assert col(prefix, "finish") == [10, 40, 40, 60, 80]
    assert col(restart, "cost") == [10, 40, 10, 20, 40]           # what the table says
    assert col(restart, "cum_cost") == [10, 50, 50, 70, 110]       # the repeat pays nothing


@pytest.mark.parametrize("script, message", [
    ([(3, 1, None), (5, 4, 0)], "continues trial 0, which is not an earlier trial of the same architecture"),
    ([(3, 1, None), (3, 4, 7)], "continues trial 7"),
    ([(3, 3, None)], "asked for fidelity 3"),
])
def test_bad_fidelity_requests_fail_the_run_with_one_line(script, message):
    _, summary = run(table_oracle(), script, algo="multiscript")
    assert message in summary["failed"]


def test_an_algorithm_that_chooses_fidelities_needs_an_oracle_with_several():
    with pytest.raises(UserError, match="serves only 4"):
        run(table_oracle(fidelities=(4,)), [1], algo="multiscript")


# --- workers on a simulated clock ---------------------------------------------------------------
# durations at fidelity 4: cost_per_epoch * 4 seconds
COSTS = [5, 1, 3, 1, 2, 2] + [1] * (N - 6)


def test_four_workers_tell_in_order_of_simulated_finish_ties_by_trial_id():
    records, summary = run(table_oracle(fidelities=(4,), cost_per_epoch=COSTS), [0, 1, 2, 3, 4, 5],
                           workers_per_run=4)
    # t=0: trials 0-3 start (finish 20, 4, 12, 4); 1 and 3 tie at 4: 1 first; trial 4 starts at
    # 4 (finish 12), trial 5 at 4 (finish 12); at 12 trial 2 (id before 4 and 5), then DONE
    assert records["trial"].tolist() == [1, 3, 2, 4, 5, 0]
    assert col(records, "start") == [0, 0, 0, 4, 4, 0]
    assert col(records, "finish") == [4, 4, 12, 12, 12, 20]
    assert [t[0] for t in Script.log] == [1, 3, 2, 4, 5, 0]
    assert summary["clock"] == 20


def test_one_worker_tells_before_the_next_ask():
    records, _ = run(table_oracle(fidelities=(4,), cost_per_epoch=COSTS), [0, 1, 2, 3])
    assert records["trial"].tolist() == [0, 1, 2, 3]
    assert col(records, "finish") == [20, 24, 36, 40]


def test_wait_lets_running_trials_report_first():
    records, _ = run(table_oracle(fidelities=(4,), cost_per_epoch=COSTS), [0, 1, "wait", 2], workers_per_run=4)
    # 0 and 1 start at 0; WAIT: 1 finishes (4) and is told; then 2 starts at 4 (finish 16)
    assert records["trial"].tolist() == [1, 2, 0]
    assert col(records, "start") == [0, 4, 0]


def test_samples_to_optimum_with_workers_counts_completed_evaluations():
    # trial of architecture 23 (the optimum) is short; two long ones are still running when it ends
    cost = [1.0] * N
    cost[0] = cost[1] = 100.0
    records, summary = run(table_oracle(fidelities=(4,), cost_per_epoch=cost), [0, 1, 23], workers_per_run=3,
                           until_optimum=True)
    assert records["trial"].tolist() == [2]
    assert summary["samples_to_optimum"] == 1 and summary["time_to_optimum"] == 4


def test_workers_are_deterministic_for_a_real_algorithm(nb201_oracle):
    a = run_one(RunConfig("evolution", budget=300, workers_per_run=4), nb201_oracle, seed=5)[0]
    b = run_one(RunConfig("evolution", budget=300, workers_per_run=4), nb201_oracle, seed=5)[0]
    one = run_one(RunConfig("evolution", budget=300), nb201_oracle, seed=5)[0]
    assert a["arch_id"].tolist() == b["arch_id"].tolist()
    # NB201's CSV has no training time: every trial lasts its 200 epochs, so with 4 workers
    # trials finish in rounds of 4 and are told in id order
    assert a["trial"].tolist() == list(range(len(a["trial"])))
    assert col(a, "finish")[:8] == [200, 200, 200, 200, 400, 400, 400, 400]
    # four asks before the first tell: evolution's initial population is random either way,
    # so the architectures asked agree with the sequential run's
    assert a["arch_id"][:100].tolist() == one["arch_id"][:100].tolist()


# --- budgets ----------------------------------------------------------------------------------
def test_budget_in_queries_counts_repeats():
    records, _ = run(table_oracle(fidelities=(4,)), [3, 3, 3, 5], budget=3, budget_kind="queries")
    assert records["trial"].tolist() == [0, 1, 2]


def test_budget_in_time_starts_no_trial_at_or_after_it():
    records, _ = run(table_oracle(fidelities=(4,), cost_per_epoch=[10.0] * N), [1, 2, 3, 4], budget=80,
                     budget_kind="time")
    assert col(records, "start") == [0, 40]      # the third would start at 80


def test_budget_in_epochs_counts_running_trials():
    records, _ = run(table_oracle(), [(0, 4, None), (1, 1, None), (2, 1, None)], algo="multiscript", budget=5,
                     budget_kind="epochs")
    assert records["trial"].tolist() == [0, 1]


def test_time_and_epoch_budgets_must_be_given():
    with pytest.raises(UserError, match="time budget needs a positive --budget"):
        run(table_oracle(fidelities=(4,)), [1], budget_kind="time")


# --- a stochastic oracle -----------------------------------------------------------------------
class Noisy(Oracle):
    """Each query trains anew: a value drawn with the query's rng (never cached)."""

    name, search_metric, report_metric = "noisy", "valid", "test"
    deterministic = False

    def __init__(self):
        super().__init__()
        self.space = SPACE
        self.calls = []

    def query(self, arch, rng=None, fidelity=None):
        self.calls.append(SPACE.index(arch))
        v = float(rng.random())
        return Evaluation(Observation(v), v)

    @property
    def optimum(self):
        return None


def test_a_stochastic_oracle_is_asked_again_for_every_query():
    oracle = Noisy()
    records, summary = run(oracle, [3, 3, 3])
    assert oracle.calls == [3, 3, 3]
    assert records["repeat"].tolist() == [False, False, False]
    assert len(set(records["search"].tolist())) == 3
    assert summary["n_distinct"] == 3
    with pytest.raises(UserError, match="no known optimum"):
        run(Noisy(), [3], until_optimum=True)


def test_cum_cost_of_a_prefix_continuation_is_the_extra_seconds():
    records, summary = run(table_oracle(cost_per_epoch=[10.0] * N, kind="prefix"), MF_SCRIPT, algo="multiscript")
    # 10 s, then 40 - 10, nothing for the repeat, 20, then 40 - 20
    assert col(records, "cum_cost") == [10, 40, 40, 60, 80]
    assert summary["total_cost"] == 80


def test_a_repeat_of_a_running_trial_is_told_when_its_training_ends():
    cost = [1.0] * N
    cost[0] = 100.0
    records, _ = run(table_oracle(fidelities=(4,), cost_per_epoch=cost), [0, 0, 1], workers_per_run=4)
    # trial 0 trains until 400; the repeat (trial 1) cannot know the answer before then
    assert records["trial"].tolist() == [2, 0, 1]
    assert col(records, "finish") == [4, 400, 400]
    assert records["repeat"].tolist() == [False, False, True]


# --- an oracle that is not a table, through the registry and the executors ----------------------
def make_noisy(name, options, shared):
    """The factory of the ``noisy/...`` family (registered by the test)."""
    return Noisy()


@pytest.mark.parametrize("executor, workers", [("local", 1), ("local", 2), ("ray", 2)])
def test_an_oracle_from_a_factory_runs_in_an_experiment(tmp_path, monkeypatch, request, executor, workers):
    from harness.experiment import Experiment, execute
    from oracles.registry import FACTORIES, list_oracles, load_oracle
    if executor == "ray":
        request.getfixturevalue("ray_local")
    monkeypatch.setitem(FACTORIES, "noisy", "test_runner_trials:make_noisy")
    assert isinstance(load_oracle("noisy/x"), Noisy)
    assert any(r["name"] == "noisy/..." for r in list_oracles())
    # process-pool and Ray workers start with a fresh registry: the task carries the factory;
    # nothing is shipped for an oracle built from its name (Oracle.shared() is None)
    execute(Experiment(oracles=["noisy/x"], algorithms=["random"], seeds=2, budget=5, workers=workers,
                       executor=executor, out=str(tmp_path)), progress=False)
    import pandas as pd
    df = pd.read_parquet(tmp_path / "runs")
    assert sorted(df.groupby("seed").size().tolist()) == [5, 5]
    # a stochastic oracle's answers come from each run's own oracle stream: seeds differ
    a, b = (df[df.seed == s]["search"].tolist() for s in (0, 1))
    assert a != b


def test_the_oracles_commands_work_for_an_oracle_from_a_factory(monkeypatch, capsys):
    import json

    from harness.cli import main
    from oracles.registry import FACTORIES
    monkeypatch.setitem(FACTORIES, "noisy", "test_runner_trials:make_noisy")
    arch = SPACE.to_string(SPACE.arch(5))
    assert main(["oracles", "query", "noisy/x", arch, "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["index"] == 5 and out["is_optimum"] is None and out["fidelity"] is None
    assert out["valid"] == float(np.random.default_rng(3).random())      # the query's own stream
    assert main(["oracles", "info", "noisy/x"]) == 0
    assert "optimum       not known" in capsys.readouterr().out
    assert main(["oracles", "query", "noisy/x", arch, "--fidelity", "12"]) == 2
    assert "serves fidelities none, not 12" in capsys.readouterr().err
