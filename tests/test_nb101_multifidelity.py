"""Multi-fidelity search on NB101's four epoch budgets (issue 14), for a user who holds the
official full file (``nasbench_full.tfrecord``: 4, 12, 36 and 108 epochs, each a training of
its own). Tested on a small fixture written in that file's layout: the 25 models of the
shared NB101 sample, whose 108-epoch runs are real; the runs at 4, 12 and 36 epochs are
DERIVED from them for the fixture (accuracies scaled down, times scaled with the epochs),
because the sample holds only 108-epoch runs. What is tested is the path, not NB101's
numbers: import, the oracle serving the four budgets as restart fidelities, and the
multi-fidelity algorithms' rungs on them with one and four simulated workers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import NB101_SAMPLE, require
from nb101_helpers import load_sample, write_official_tfrecord

BUDGETS = (4, 12, 36, 108)


def derived_run(run: dict, epochs: int) -> dict:
    """A fixture run at ``epochs`` from a real 108-epoch run (see the module docstring)."""
    scale = 0.55 + 0.45 * (epochs / 108) ** 0.5
    out = {}
    for k, v in run.items():
        out[k] = v * epochs / 108 if k.endswith("training_time") else (v * scale if "accuracy" in k else v)
    return out


@pytest.fixture
def full_env(tmp_path, monkeypatch):
    from oracles.importers import nb101 as imp
    from oracles.table import save_table
    sample = load_sample(require(NB101_SAMPLE))
    recs = [dict(r, epochs={str(b): [derived_run(x, b) for x in r["epochs"]["108"]] for b in BUDGETS})
            for r in sample]
    path = write_official_tfrecord(recs, tmp_path / "nasbench_full.tfrecord")
    table = imp.import_file(path)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    save_table(table, tmp_path / "data" / table.name)
    return table


def test_the_full_file_serves_four_restart_budgets(full_env):
    from oracles.registry import load_oracle
    assert full_env.name == "nb101-full" and full_env.fidelities == BUDGETS
    oracle = load_oracle("nb101-full:fidelities=all")
    assert oracle.fidelities.values == BUDGETS and oracle.fidelities.kind == "restart"
    assert load_oracle("nb101-full").fidelities.values == (108,)     # by default the top budget only
    arch = oracle.space.arch(0)
    at = {b: oracle.query(arch, np.random.default_rng(0), b).observation.value for b in BUDGETS}
    assert at[4] < at[12] < at[36] < at[108]


@pytest.mark.parametrize("name", ["hyperband", "asha", "bohb", "successive-halving"])
@pytest.mark.parametrize("workers", [1, 4])
def test_multi_fidelity_algorithms_climb_the_four_budgets(full_env, name, workers):
    from harness.runner import RunConfig, run_one
    from oracles.registry import load_oracle
    oracle = load_oracle("nb101-full:fidelities=all")
    records, summary = run_one(RunConfig(name, budget=1500, budget_kind="epochs", workers_per_run=workers),
                               oracle, seed=0)
    assert "failed" not in summary and summary["stopped"] is None
    # the papers' geometric rungs, anchored at the top (108 * eta^-i) and moved to the nearest
    # served budget on a log scale: eta 3 (Hyperband, BOHB, SH) gives 4, 12, 36, 108 exactly;
    # ASHA's eta 4 gives 6.75 -> 4, 27 -> 36 and 108
    expected = {4, 36, 108} if name == "asha" else set(BUDGETS)
    assert set(records["fidelity"].tolist()) == expected
    # a restart budget is a training of its own: each trial pays its whole budget
    paid = records["epochs"][~records["repeat"]]
    assert np.array_equal(paid, records["fidelity"][~records["repeat"]].astype(float))
    assert summary["total_epochs"] >= 1500 or summary["exhausted_space"]
