"""Behaviour of :mod:`harness.runner` that mutation testing found unpinned (issue 20).

Each test here kills mutants of ``harness/runner.py`` (mutmut) that survived the runner's
other test files (``test_runner.py``, ``test_runner_trials.py``, ``test_runner_counting.py``);
the mutants still alive with these tests are equivalent to the original (see
docs/mutation-testing.md for the score and the list).
Expected values are worked out by hand from the small table of ``test_runner_trials``
(architecture i at fidelity f scores (i + 1) * f / 1000, its report 0.5 more), never
computed with the runner's own expressions.
"""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import REGISTRY
from harness.runner import RunConfig, describe_exception, resolve_budget, run_one, setting
from oracles.errors import UserError
from oracles.oracle import Evaluation, Fidelities, Observation, Oracle, TabularOracle
from oracles.table import Table
# ``registered`` is test_runner_trials' autouse fixture registering its scripted algorithms
from test_runner_trials import MultiScript, Noisy, Script, col, registered, run, table_oracle  # noqa: F401
from tiny_space import TinySpace


# --- declaring settings --------------------------------------------------------------------------
# RunConfig's fields are declared when the module is imported; these call ``setting`` itself.
def test_a_setting_keeps_its_default_help_and_checks():
    f = setting(5, "how many", low=1, flag="--n")
    assert f.default == 5
    assert dict(f.metadata) == {"help": "how many", "type": (int,), "low": 1, "choices": None, "flag": "--n"}
    g = setting("a", "which", choices=("a", "b"))
    assert dict(g.metadata) == {"help": "which", "type": (str,), "low": None, "choices": ("a", "b"),
                                "flag": None}


def test_a_setting_type_defaults_to_the_defaults_type_unless_given():
    assert setting(True, "h").metadata["type"] == (bool,)
    assert setting(2.5, "h").metadata["type"] == (float,)
    assert setting(None, "h", type=(int, float)).metadata["type"] == (int, float)
    assert setting(3, "h", type=(int, float)).metadata["type"] == (int, float)


def test_a_list_setting_gets_a_fresh_copy_of_its_default_each_time():
    default = [1, 2]
    f = setting(default, "numbers")
    a, b = f.default_factory(), f.default_factory()
    assert a == [1, 2] and a is not default and a is not b
    assert dict(f.metadata) == {"help": "numbers", "type": (list,), "low": None, "choices": None, "flag": None}


def test_run_settings_are_the_fields_after_oracle():
    assert [f.name for f in RunConfig.settings()] == ["budget", "budget_kind", "until_optimum", "charge_repeats",
                                                      "max_repeats", "workers_per_run"]


def test_settings_dict_keeps_legacy_settings_and_new_ones_only_when_changed():
    legacy = {"budget": None, "until_optimum": False, "charge_repeats": False, "max_repeats": 10_000}
    assert RunConfig("random").settings_dict() == legacy
    config = RunConfig("random", {"x": 1}, "o", budget=7, budget_kind="queries", workers_per_run=3, max_repeats=4)
    assert config.settings_dict() == {**legacy, "budget": 7, "max_repeats": 4, "budget_kind": "queries",
                                      "workers_per_run": 3}


def test_from_settings_rebuilds_the_config():
    stored = {"budget": 9, "workers_per_run": 2, "until_optimum": True, "algorithm": "ignored", "extra": 1}
    assert RunConfig.from_settings("evolution", {"population": 6}, "nb201/cifar10", stored) == RunConfig(
        "evolution", {"population": 6}, "nb201/cifar10", budget=9, workers_per_run=2, until_optimum=True)
    config = RunConfig("random", {"a": 1}, "tiny", budget=3, budget_kind="epochs", charge_repeats=True)
    assert RunConfig.from_settings("random", {"a": 1}, "tiny", config.settings_dict()) == config


def test_as_dict():
    assert RunConfig("random", {"a": 1}, "o", budget=4).as_dict() == {
        "algorithm": "random", "params": {"a": 1}, "oracle": "o", "budget": 4, "budget_kind": "archs",
        "until_optimum": False, "charge_repeats": False, "max_repeats": 10_000, "workers_per_run": 1}


# --- describing a failure ------------------------------------------------------------------------
def _raised(source: str, filename: str) -> BaseException:
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    try:
        namespace["boom"]()
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("boom did not raise")


def test_describe_exception_names_the_last_two_parts_of_the_raising_file():
    exc = _raised("def boom():\n    x = 1\n    raise ValueError('bad value')\n", "pkg/mod.py")
    assert describe_exception(exc) == "ValueError: bad value (pkg/mod.py:3 in boom)"
    exc = _raised("def boom():\n    raise ValueError('v')\n", "/a/b/c/deep.py")
    assert describe_exception(exc) == "ValueError: v (c/deep.py:2 in boom)"
    exc = _raised("def boom():\n    raise ValueError('v')\n", "single.py")
    assert describe_exception(exc) == "ValueError: v (single.py:2 in boom)"
    exc = _raised("def boom():\n    raise ValueError('v')\n", "/boom.py")
    assert describe_exception(exc) == "ValueError: v (/boom.py:2 in boom)"


def test_describe_exception_without_a_message_or_a_traceback():
    exc = _raised("def boom():\n    raise KeyError()\n", "pkg/mod.py")
    assert describe_exception(exc) == "KeyError (pkg/mod.py:2 in boom)"
    # a multi-line message: its first non-blank line; never raised: no place
    assert describe_exception(RuntimeError("\n  first line\nsecond")) == "RuntimeError: first line"


# --- budgets -------------------------------------------------------------------------------------
def test_an_unknown_budget_kind_is_a_user_error_listing_the_kinds():
    with pytest.raises(UserError) as info:
        resolve_budget(RunConfig("random", budget=3, budget_kind="hours"), table_oracle(fidelities=(4,)))
    assert str(info.value) == "budget_kind must be one of archs, queries, time, epochs, got 'hours'"


@pytest.mark.parametrize("kind, what", [("time", "training time"), ("epochs", "training epochs")])
@pytest.mark.parametrize("budget", [None, 0, -2])
def test_time_and_epoch_budgets_must_be_positive(kind, what, budget):
    with pytest.raises(UserError) as info:
        resolve_budget(RunConfig("random", budget=budget, budget_kind=kind), table_oracle(fidelities=(4,)))
    assert str(info.value) == f"a {kind} budget needs a positive --budget (simulated {what}), got {budget}"


@pytest.mark.parametrize("kind", ["time", "epochs"])
def test_time_and_epoch_budgets_are_neither_rounded_nor_capped_at_the_space_size(kind):
    oracle = table_oracle(fidelities=(4,))
    assert resolve_budget(RunConfig("random", budget=2.5, budget_kind=kind), oracle) == 2.5
    assert resolve_budget(RunConfig("random", budget=1, budget_kind=kind), oracle) == 1
    assert resolve_budget(RunConfig("random", budget=0.5, budget_kind=kind), oracle) == 0.5
    assert resolve_budget(RunConfig("random", budget=1000, budget_kind=kind), oracle) == 1000


def test_architecture_and_query_budgets():
    oracle = table_oracle(fidelities=(4,))     # 24 architectures
    assert resolve_budget(RunConfig("random"), oracle) == 24
    assert resolve_budget(RunConfig("random", budget=1), oracle) == 1
    assert resolve_budget(RunConfig("random", budget=30), oracle) == 24
    assert resolve_budget(RunConfig("random", budget=7.9), oracle) == 7
    assert resolve_budget(RunConfig("random", budget=30, budget_kind="queries"), oracle) == 30
    with pytest.raises(UserError, match=r"^budget must be a positive number of architectures, got 0.5$"):
        resolve_budget(RunConfig("random", budget=0.5), oracle)


def test_an_infinite_space_needs_a_budget_and_never_caps_it():
    from test_runner_counting import CountingGeneric, Unenumerated
    oracle = CountingGeneric(Unenumerated())
    with pytest.raises(UserError, match=r"^oracle tiny-generic has an infinite space: give --budget$"):
        resolve_budget(RunConfig("random"), oracle)
    assert resolve_budget(RunConfig("random", budget=1000), oracle) == 1000


def test_an_epoch_budget_is_not_rounded_down():
    # trials of 4 epochs: after the first, 4 < 4.5 epochs are paid, so a second one starts;
    # then 8 >= 4.5
    records, summary = run(table_oracle(fidelities=(4,)), [1, 2, 3], budget=4.5, budget_kind="epochs")
    assert records["trial"].tolist() == [0, 1]
    assert summary["budget"] == 4.5 and summary["total_epochs"] == 8


# --- configuration errors ------------------------------------------------------------------------
def test_workers_per_run_must_be_positive():
    with pytest.raises(UserError) as info:
        run(table_oracle(fidelities=(4,)), [1], workers_per_run=0)
    assert str(info.value) == "workers_per_run must be at least 1, got 0"


def test_an_algorithm_that_chooses_fidelities_and_an_oracle_without_any():
    with pytest.raises(UserError) as info:
        run(Noisy(), [1], algo="multiscript")
    assert str(info.value) == ("multiscript chooses fidelities; oracle noisy serves none: use one that serves "
                               "several (e.g. nb201/cifar10:fidelities=all)")


def test_two_fidelities_are_several():
    # fidelities (2, 4): architecture 3 at 2 epochs scores 4 * 2 / 1000, at 4 epochs 4 * 4 / 1000;
    # the two are separate evaluations (neither is a repeat of the other)
    records, summary = run(table_oracle(fidelities=(2, 4)), [(3, 2, None), (3, 4, None), (3, 2, None)],
                           algo="multiscript")
    assert "failed" not in summary
    assert col(records, "search") == [0.008, 0.016, 0.008]
    assert records["repeat"].tolist() == [False, False, True]
    assert records["n_distinct"].tolist() == [1, 2, 2]
    # several fidelities: the summary has the clock and the epochs (2 + 4, the repeat is free)
    assert summary["clock"] == 6 and summary["total_epochs"] == 6


# --- records ------------------------------------------------------------------------------------
def test_column_types():
    """Integer columns stay integers and text columns hold Python strings (the results store
    converts object arrays to Arrow strings and has no conversion for numpy's '<U' arrays)."""
    records, _ = run(table_oracle(), [(3, 1, None), (3, 4, 0)], algo="multiscript")
    for name in ("sample", "n_distinct", "arch_index", "trial", "fidelity"):
        assert records[name].dtype == np.int64, name
    assert records["arch_id"].dtype == object


def test_a_run_without_records_has_empty_columns_of_the_same_types():
    records, summary = run(table_oracle(fidelities=(4,)), [], workers_per_run=2)
    assert summary["n_queries"] == 0 and summary["n_distinct"] == 0 and summary["exhausted_space"]
    assert summary["clock"] == 0 and summary["total_epochs"] == 0
    assert summary["best_search"] is None and summary["total_cost"] is None
    for name, values in records.items():
        assert len(values) == 0, name
    for name in ("sample", "n_distinct", "arch_index", "trial", "fidelity"):
        assert records[name].dtype == np.int64, name
    assert records["arch_id"].dtype == object
    assert "arch" not in records


def test_best_report_looks_at_the_top_fidelity_only():
    # architecture 3 at 1 epoch (report 0.504), at 4 (0.516); architecture 23 at 2 (0.548), at 4 (0.596)
    records, _ = run(table_oracle(), [(3, 1, None), (3, 4, 0), (23, 2, None), (23, 4, 2)], algo="multiscript")
    assert col(records, "best_report") == [None, 0.516, 0.516, 0.596]
    # a minimised metric: the lowest report at the top fidelity
    records, _ = run(table_oracle(direction="min"), [(23, 1, None), (23, 4, None), (3, 2, None), (3, 4, None)],
                     algo="multiscript")
    assert col(records, "best_report") == [None, 0.596, 0.596, 0.516]


class StringSpace(TinySpace):
    """The tiny space with a string form that is not its identity."""

    def to_string(self, arch):
        return "arch(" + "-".join(map(str, arch)) + ")"


def test_the_arch_column_is_the_string_form_where_it_differs_from_the_identity():
    space = StringSpace()
    oracle = table_oracle(fidelities=(4,))
    oracle.space = space
    records, _ = run(oracle, [3, 4, 3])
    assert records["arch_id"].tolist() == ["0,0,3", "0,1,0", "0,0,3"]
    assert records["arch"].tolist() == ["arch(0-0-3)", "arch(0-1-0)", "arch(0-0-3)"]
    assert records["arch"].dtype == object


# --- an oracle without fidelities --------------------------------------------------------------
def test_an_oracle_without_fidelities_records_fidelity_minus_one_and_no_epochs():
    # each trial takes one unit of the simulated clock; two workers
    records, summary = run(Noisy(), [1, 2, 3], workers_per_run=2)
    assert records["trial"].tolist() == [0, 1, 2]
    assert records["fidelity"].tolist() == [-1, -1, -1]
    assert col(records, "epochs") == [0, 0, 0]
    assert col(records, "start") == [0, 0, 1] and col(records, "finish") == [1, 1, 2]
    assert summary["clock"] == 2 and summary["total_epochs"] == 0


def test_a_stochastic_oracle_draws_from_the_runs_own_stream():
    a, _ = run(Noisy(), [3, 3, 5])
    b, _ = run(Noisy(), [3, 3, 5])
    assert a["search"].tolist() == b["search"].tolist()
    c, _ = run_one(RunConfig("script", {"script": (3, 3, 5)}), Noisy(), seed=1)
    assert c["search"].tolist() != a["search"].tolist()


# --- continuations ------------------------------------------------------------------------------
@pytest.mark.parametrize("continues", [1, -1, 2])
def test_a_trial_continues_only_an_earlier_trial(continues):
    # trial 1 cannot continue itself (1), a trial counted from the end (-1) or a later one (2)
    _, summary = run(table_oracle(), [(3, 1, None), (3, 4, continues)], algo="multiscript")
    assert summary["failed"].startswith(f"ValueError: trial 1 continues trial {continues}, which is not an "
                                        "earlier trial of the same architecture")


class NoisyPrefix(Noisy):
    """A stochastic oracle serving prefix fidelities 1, 2 and 4 (each query trains anew): a
    value drawn in [f, f + 0.5) at fidelity f (None: the highest)."""

    @property
    def fidelities(self):
        return Fidelities((1, 2, 4), kind="prefix")

    def query(self, arch, rng=None, fidelity=None):
        e = super().query(arch, rng)
        v = (4 if fidelity is None else fidelity) + e.report / 2
        return Evaluation(Observation(v), v)


def test_continuing_to_the_fidelity_already_trained_pays_it_again():
    # a stochastic oracle answers the continuation with a new training, so it is not free:
    # 2 epochs, then 2 more (not 0), then from 2 to 4: 2
    records, summary = run(NoisyPrefix(), [(3, 2, None), (3, 2, 0), (3, 4, 1)], algo="multiscript")
    assert "failed" not in summary
    assert col(records, "epochs") == [2, 2, 2]
    assert col(records, "finish") == [2, 4, 6]
    # each answer is the asked fidelity's (the generic path passes the fidelity on)
    assert [int(v) for v in records["search"]] == [2, 2, 4]


def test_a_continuation_to_fidelity_zero_pays_nothing():
    # restart fidelities 0, 2 and 4: continuing trial 0 to fidelity 0 trains nothing
    records, summary = run(table_oracle(fidelities=(0, 2, 4)), [(3, 2, None), (3, 0, 0), (5, 0, None)],
                           algo="multiscript")
    assert "failed" not in summary
    assert col(records, "epochs") == [2, 0, 0]
    assert col(records, "finish") == [2, 2, 2]


# --- the algorithm's time, on a fake clock ----------------------------------------------------------
class FakeTime:
    """Stands in for the runner's ``time`` module: the performance counter reads ``now``, which
    only the algorithm and the oracle below advance; the run's CPU time is a quarter of the
    time passed, counted from an arbitrary origin."""

    def __init__(self, unit):
        self.now, self.unit = 50.0, unit

    def perf_counter(self):
        return self.now

    def process_time(self):
        return 1000.0 + self.now / 4


class Timed(Script):
    """Script whose start, ask and tell take 4, 1 and 2 units of ``Timed.clock``."""

    name = "timed"
    clock = FakeTime(1.0)

    def start(self, space, rng, fidelities=None):
        super().start(space, rng)
        Timed.clock.now += 4 * Timed.clock.unit

    def ask(self):
        Timed.clock.now += 1 * Timed.clock.unit
        return super().ask()

    def tell_trial(self, trial, observation):
        Timed.clock.now += 2 * Timed.clock.unit
        super().tell_trial(trial, observation)


class SlowNoisy(Noisy):
    """Each query takes 100 units of ``Timed.clock``: the runner's time, not the algorithm's."""

    def query(self, arch, rng=None, fidelity=None):
        Timed.clock.now += 100 * Timed.clock.unit
        return super().query(arch, rng, fidelity)


@pytest.mark.parametrize("unit", [1.0, 0.001])
def test_the_algorithms_time_is_its_share_of_the_wall_time_times_the_cpu_time(monkeypatch, unit):
    import harness.runner
    monkeypatch.setitem(REGISTRY, "timed", "test_runner_mutants:Timed")
    monkeypatch.setattr(Timed, "clock", FakeTime(unit))
    monkeypatch.setattr(harness.runner, "time", Timed.clock)
    records, summary = run_one(RunConfig("timed", {"script": (3, 5, 7)}), SlowNoisy(), seed=0)
    # start 4; ask 1, query 100, tell 2 per architecture; the last ask (DONE) 1: wall 4 + 3 * 103
    # + 1 = 314 units, the algorithm's 4 + 3 * 3 + 1 = 14, its cumulated time after each tell
    # 7, 10, 13; the run's CPU time is a quarter of its wall time, and so is the algorithm's
    assert summary["wall_s"] == pytest.approx(314 * unit)
    assert summary["algo_cpu_s"] == pytest.approx(14 / 4 * unit)
    assert records["algo_cpu_s"].tolist() == pytest.approx([7 / 4 * unit, 10 / 4 * unit, 13 / 4 * unit])


def test_a_run_that_takes_no_time(monkeypatch):
    import harness.runner
    clock = FakeTime(1.0)
    monkeypatch.setattr(harness.runner, "time", clock)
    records, summary = run(table_oracle(fidelities=(4,)), [3, 5])
    assert summary["wall_s"] == 0 and summary["algo_cpu_s"] == 0
    assert records["algo_cpu_s"].tolist() == [0, 0]


# --- what the runner calls -------------------------------------------------------------------------
def test_progress_is_told_once_per_new_evaluation():
    told = []
    _, summary = run_one(RunConfig("script", {"script": (3, 5, 3, 7, 5)}), table_oracle(fidelities=(4,)), seed=0,
                         progress=told.append)
    assert told == [1, 1, 1] and summary["n_distinct"] == 3


class Threads(Script):
    """Records the BLAS/OpenMP thread counts it runs with."""

    name = "threads"
    seen: list = []

    def start(self, space, rng, fidelities=None):
        from threadpoolctl import threadpool_info
        super().start(space, rng)
        Threads.seen = [p["num_threads"] for p in threadpool_info()]


def test_a_run_uses_one_blas_thread(monkeypatch):
    monkeypatch.setitem(REGISTRY, "threads", "test_runner_mutants:Threads")
    run_one(RunConfig("threads", {"script": (3,)}), table_oracle(fidelities=(4,)), seed=0)
    assert Threads.seen and set(Threads.seen) == {1}


class AsksTrials(Script):
    """Asks through ``ask_trial`` (its ``ask`` is never to be called)."""

    name = "askstrials"

    def ask(self):
        raise AssertionError("an algorithm with its own ask_trial is asked through it")

    def ask_trial(self):
        return Script.ask(self)


def test_an_algorithm_with_its_own_ask_trial_is_asked_through_it(monkeypatch):
    monkeypatch.setitem(REGISTRY, "askstrials", "test_runner_mutants:AsksTrials")
    records, summary = run_one(RunConfig("askstrials", {"script": (3, 5)}), table_oracle(fidelities=(4,)), seed=0)
    assert "failed" not in summary and records["arch_index"].tolist() == [3, 5]


# --- what algorithms are given and told ------------------------------------------------------------
class StartLog(MultiScript):
    """A multi-fidelity script that keeps what ``start`` was given."""

    name = "startlog"
    given: list = []

    def start(self, space, rng, fidelities=None):
        super().start(space, rng, fidelities)
        StartLog.given.append((rng, fidelities))


def test_a_multi_fidelity_algorithm_starts_with_its_stream_and_the_oracles_fidelities(monkeypatch):
    monkeypatch.setitem(REGISTRY, "startlog", "test_runner_mutants:StartLog")
    StartLog.given.clear()
    oracle = table_oracle(kind="prefix")
    for seed in (0, 0, 1):
        run_one(RunConfig("startlog", {"script": ((3, 1, None),)}), oracle, seed=seed)
    (a, fa), (b, _), (c, _) = StartLog.given
    assert fa == Fidelities((1, 2, 4), kind="prefix")
    assert isinstance(a, np.random.Generator)
    # the same seed, the same stream; another seed, another
    draws = [g.integers(1 << 62, size=4).tolist() for g in (a, b, c)]
    assert draws[0] == draws[1] != draws[2]


def test_an_ask_without_a_fidelity_is_at_the_highest():
    records, summary = run(table_oracle(), [(3, None, None), (3, 4, None), (5, 1, None)], algo="multiscript")
    assert "failed" not in summary
    assert records["fidelity"].tolist() == [4, 4, 1]
    assert records["repeat"].tolist() == [False, True, False]
    assert col(records, "search") == [0.016, 0.016, 0.006]
    assert col(records, "best_search") == [0.016, 0.016, 0.016]


def test_a_fidelity_the_oracle_does_not_serve():
    _, summary = run(table_oracle(), [(3, 3, None)], algo="multiscript")
    assert summary["failed"].startswith("ValueError: asked for fidelity 3; the oracle serves [1, 2, 4] (")
    # the full traceback, line by line, ending with the error
    assert summary["traceback"].startswith("Traceback (most recent call last):\n  File ")
    assert summary["traceback"].endswith("\nValueError: asked for fidelity 3; the oracle serves [1, 2, 4]\n")
    # a plain algorithm may ask with a fidelity too; an oracle without fidelities serves none
    _, summary = run(Noisy(), [(3, 2, None)])
    assert summary["failed"].startswith("ValueError: asked for fidelity 2; the oracle serves None (")


class ObservationLog(Script):
    name = "obslog"
    seen: list = []

    def tell_trial(self, trial, observation):
        ObservationLog.seen.append((observation.value, observation.cost, observation.train))


class Fixed(Oracle):
    """A minimised, deterministic, generic oracle: architecture i has value (i + 1) / 100, cost
    10 times that, training value half of it, report value + 1."""

    name, search_metric, report_metric = "fixed", "loss", "test_loss"
    direction = "min"

    def __init__(self):
        super().__init__()
        self.space = TinySpace()

    def query(self, arch, rng=None, fidelity=None):
        v = (self.space.index(arch) + 1) / 100
        return Evaluation(Observation(v, 10 * v, v / 2), v + 1)

    @property
    def optimum(self):
        return None


def test_a_minimised_metric_is_told_negated_with_its_cost_and_training_value(monkeypatch):
    monkeypatch.setitem(REGISTRY, "obslog", "test_runner_mutants:ObservationLog")
    ObservationLog.seen.clear()
    records, _ = run(Fixed(), [3, 1], algo="obslog")
    assert ObservationLog.seen == [(-0.04, 0.4, 0.02), (-0.02, 0.2, 0.01)]
    assert col(records, "search") == [0.04, 0.02] and col(records, "cost") == [0.4, 0.2]


def _random_runs_oracle():
    """Two training seeds per architecture and fidelity (1, 4): seed s of architecture i at
    fidelity f scores (i + 1) * f / 1000 + s / 10000; one seed drawn per query."""
    i = np.arange(24, dtype=np.float64)[:, None, None]
    s = np.arange(2, dtype=np.float64)[None, :, None]
    f = np.asarray([1, 4], dtype=np.float64)[None, None, :]
    valid = (i + 1) * f / 1000 + s / 10000
    values = np.stack([valid, valid + 0.5], axis=-1)
    space = TinySpace()
    table = Table("tiny2", np.array([space.to_string(space.arch(k)) for k in range(24)]), ("0", "1"), (1, 4),
                  ("valid", "test"), values)
    return TabularOracle("tiny2", table, space, search="valid", report="test", runs="random", fidelities=(1, 4))


def test_a_table_drawing_one_training_run_per_query_gets_the_runs_stream():
    script = [(3, 4, None), (5, 1, None), (7, 4, None), (9, 1, None)]
    a, summary = run(_random_runs_oracle(), script, algo="multiscript")
    assert "failed" not in summary
    # each value is one of the two seeds' at the asked fidelity
    base = [0.016, 0.006, 0.032, 0.010]
    assert all(round(v - b, 6) in (0, 0.0001) for v, b in zip(a["search"].tolist(), base))
    b, _ = run(_random_runs_oracle(), script, algo="multiscript")
    assert a["search"].tolist() == b["search"].tolist()


# --- arch strings on every path ------------------------------------------------------------------
class StringTwins(StringSpace):
    """Tokens (a, b, 2) and (a, b, 3) are one architecture (one identity), with two string forms."""

    def identity(self, arch):
        return ",".join(map(str, (*arch[:2], min(arch[2], 2))))


class UnenumeratedStrings(StringSpace):
    @property
    def size(self):
        return None


def test_a_twin_is_recorded_with_the_string_form_of_the_first_one_asked():
    # as the reference loop of test_runner does: one cache entry per identity, string included
    oracle = table_oracle(fidelities=(4,))
    oracle.space = StringTwins()
    records, _ = run(oracle, [2, 3, 1])
    assert records["arch_index"].tolist() == [2, 3, 1]
    assert records["repeat"].tolist() == [False, True, False]
    assert records["arch_id"].tolist() == ["0,0,2", "0,0,2", "0,0,1"]
    assert records["arch"].tolist() == ["arch(0-0-2)", "arch(0-0-2)", "arch(0-0-1)"]


def test_the_arch_column_on_a_space_without_an_enumeration():
    from test_runner_counting import CountingGeneric
    records, _ = run_one(RunConfig("script", {"script": (3, 4, 3)}, budget=5),
                         CountingGeneric(UnenumeratedStrings()), seed=0)
    assert records["arch_index"].tolist() == [-1, -1, -1]
    assert records["arch_id"].tolist() == ["0,0,3", "0,1,0", "0,0,3"]
    assert records["arch"].tolist() == ["arch(0-0-3)", "arch(0-1-0)", "arch(0-0-3)"]


# --- summary fields ------------------------------------------------------------------------------
def test_summary_flags_are_booleans_and_a_failed_runs_diagnostics_empty():
    _, summary = run(table_oracle(fidelities=(4,)), [3, 5], budget=1)
    assert summary["exhausted_space"] is False and summary["censored"] is False
    assert summary["reached_optimum"] is False and summary["stopped"] is None
    _, summary = run(table_oracle(fidelities=(4,)), [3, "wait"])
    assert summary["diagnostics"] == {} and "failed" in summary


class Diagnosed(Script):
    name = "diagnosed"

    def diagnostics(self):
        return {"asked": self.k}


def test_the_summary_names_the_seed_and_holds_the_algorithms_diagnostics(monkeypatch):
    monkeypatch.setitem(REGISTRY, "diagnosed", "test_runner_mutants:Diagnosed")
    _, summary = run_one(RunConfig("diagnosed", {"script": (3, 5)}), table_oracle(fidelities=(4,)), seed=7)
    assert summary["seed"] == 7 and summary["diagnostics"] == {"asked": 2}


def test_a_plain_run_has_no_clock_in_its_summary():
    """One worker, one fidelity, a budget of architectures: the summary of the sequential loop
    (the clock and epochs columns come with workers, fidelities or other budget kinds)."""
    _, summary = run(table_oracle(fidelities=(4,)), [3, 5])
    assert not {"clock", "total_epochs", "time_to_optimum", "epochs_to_optimum"} & set(summary)
    _, summary = run(table_oracle(fidelities=(4,)), [3, 5], budget=5, budget_kind="queries")
    assert summary["clock"] == 8 and summary["total_epochs"] == 8


def test_workers_freed_while_waiting_all_start_new_trials():
    # four workers; trial 0 (20 s) runs alone until the algorithm waits, so it is told at 20;
    # then all four workers are free: trials 1, 2 and 3 start together at 20 (4, 12, 4 s)
    costs = [5, 1, 3, 1] + [1] * 20
    records, _ = run(table_oracle(fidelities=(4,), cost_per_epoch=costs), [0, "wait", 1, 2, 3], workers_per_run=4)
    assert records["trial"].tolist() == [0, 1, 3, 2]
    assert col(records, "start") == [0, 20, 20, 20]
    assert col(records, "finish") == [20, 24, 24, 32]


def test_the_stopping_query_of_a_stuck_run_has_the_algorithms_time(monkeypatch):
    import harness.runner
    monkeypatch.setitem(REGISTRY, "timed", "test_runner_mutants:Timed")
    monkeypatch.setattr(Timed, "clock", FakeTime(1.0))
    monkeypatch.setattr(harness.runner, "time", Timed.clock)
    records, summary = run_one(RunConfig("timed", {"script": (3, 3, 3)}, max_repeats=2),
                               table_oracle(fidelities=(4,)), seed=0)
    assert summary["stopped"] is not None and records["repeat"].tolist() == [False, True, True]
    # start 4, then ask 1 + tell 2 twice (7, 10), then the third ask (11): it stops the run
    # untold; the run's CPU time is a quarter of its wall time (11)
    assert records["algo_cpu_s"].tolist() == pytest.approx([7 / 4, 10 / 4, 11 / 4])
