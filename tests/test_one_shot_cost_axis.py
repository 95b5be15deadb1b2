"""The cost accounting of results/one_shot_cost_axis/analyse.py (LaNAS §4.3 on one CPU axis):
what a run's answer is worth at a CPU budget, which cell a sample-based search holds, and what
a one-shot run stopped after epoch e would have cost."""

import numpy as np
import pytest

from results_scripts import load_results_script


@pytest.fixture(scope="module")
def analyse():
    return load_results_script("one_shot_cost_axis/analyse.py", "one_shot_cost_axis_analyse")


def test_value_at_takes_the_last_answer_within_the_budget(analyse):
    cpu = np.array([1.0, 2.0, 4.0])
    true = np.array([0.5, 0.7, 0.6])
    got = analyse.value_at(cpu, true, [0.5, 1.0, 3.9, 4.0, 100.0])
    # nothing before the first record; a finished run keeps its last answer
    assert np.isnan(got[0])
    assert got[1:].tolist() == [0.5, 0.7, 0.6, 0.6]


def test_incumbent_is_the_first_of_the_best_search_values(analyse):
    archs = ["a", "b", "c", "d", "e"]
    search = [np.nan, 0.3, 0.3, 0.2, 0.4]
    assert analyse.incumbent_archs(archs, search) == [None, "b", "b", "b", "e"]


def test_one_shot_cost_counts_every_training_and_only_the_current_derivation(analyse):
    epochs = [{"cpu_seconds": 1.0, "loop_cpu_seconds": 3.0},     # 2 s of derivation
              {"cpu_seconds": 1.5, "loop_cpu_seconds": 4.0},     # 2.5 s
              {"cpu_seconds": 2.0, "loop_cpu_seconds": 2.5}]     # 0.5 s
    got = analyse.one_shot_cpu(epochs, np.array([3.0, 7.0, 9.5]))
    assert np.allclose(got, [1.0 + 2.0, 2.5 + 2.5, 4.5 + 0.5])
    # without the split in the diagnostics: the run's own cumulative CPU
    assert analyse.one_shot_cpu([{"cpu_seconds": 1.0}], np.array([3.0])).tolist() == [3.0]


def test_first_reach_is_where_the_median_run_gets_there(analyse):
    grid = np.array([1.0, 2.0, 3.0, 4.0])
    cpu = [np.array([1.0, 3.0])] * 3
    true = [np.array([0.5, 0.9]), np.array([0.5, 0.9]), np.array([0.5, 0.5])]
    got = analyse.first_reach(cpu, true, 0.9, grid, n_boot=200)
    assert got["cpu"] == 3.0
    assert got["reached_runs"] == 2
    never = analyse.first_reach(cpu, true, 0.95, grid, n_boot=200)
    assert never["cpu"] is None and never["reached_runs"] == 0


def test_incumbent_rows_point_at_the_record_that_set_the_best(analyse):
    assert analyse.incumbent_rows([np.nan, 0.3, 0.3, 0.5, 0.1]).tolist() == [-1, 1, 1, 3, 3]


def test_a_one_seed_incumbent_is_judged_by_the_training_it_did_not_see(analyse):
    truth = analyse.Truth()
    search, report = truth.per_seed["valid_acc"], truth.per_seed["test_acc"]
    # a cell whose two trainings differ in both numbers, so the seen one is unambiguous
    i = int(np.flatnonzero((search[:, 0] != search[:, 1]) & (report[:, 0] != report[:, 1]))[0])
    arch = truth.oracle.space.to_string(truth.oracle.space.arch(i))
    for seen, other in ((0, 1), (1, 0)):
        assert truth.held_out(arch, search[i, seen], report[i, seen]) == report[i, other]
    with pytest.raises(ValueError):
        truth.held_out(arch, search[i, 0], report[i, 1] + 0.5)
