"""The one-shot loop (harness.one_shot): records in the run format, ground truth only for
the records, determinism for a seed on CPU, resume after a kill, and ``nas-harness run``
routing a one-shot method. Tiny supernets (C=4, N=1) on a few dozen digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from algorithms.one_shot import ONE_SHOT_REGISTRY, is_one_shot, make_one_shot  # noqa: E402
from harness import one_shot  # noqa: E402
from harness.runner import RunConfig  # noqa: E402
from oracles.errors import UserError  # noqa: E402
# the autouse fixture ``one_torch_thread`` takes effect by being imported
from one_shot_helpers import assert_same_records, one_torch_thread, resume_after_kill  # noqa: E402,F401

TINY = {"C": 4, "N": 1, "max_train": 64, "batch_size": 32, "epochs": 3}


def config(name="darts", **params) -> RunConfig:
    return RunConfig(algorithm=name, params={**TINY, **params}, oracle="nb201/cifar10")


def epochs_of(summary) -> list[dict]:
    return summary["diagnostics"]["epochs"]


def test_one_shot_methods_have_their_own_registry():
    from algorithms import REGISTRY
    assert set(ONE_SHOT_REGISTRY) == {"darts", "gdas", "enas", "rsps", "ddas"} and not set(ONE_SHOT_REGISTRY) & set(REGISTRY)
    assert is_one_shot("darts") and not is_one_shot("random")
    assert make_one_shot("darts", {"order": "2", "C": "4"}).get_params()["order"] == 2
    with pytest.raises(UserError):
        make_one_shot("darts", {"nope": "1"})
    with pytest.raises(UserError):
        make_one_shot("darts", {"order": "3"})


def test_records_have_the_run_format_and_the_meaning_of_the_design(nb201_oracle):
    records, summary = one_shot.run_one_shot(config("gdas"), nb201_oracle, seed=0)
    assert summary.get("failed") is None
    assert list(records["sample"]) == [1, 2, 3] and list(records["trial"]) == [0, 1, 2]
    assert list(records["fidelity"]) == [1, 2, 3] and list(records["finish"]) == [1.0, 2.0, 3.0]
    # digits: nb201/cifar10 is no ground truth for it
    assert np.isnan(records["report"]).all() and summary["diagnostics"]["ground_truth"] is None
    for row, arch_id, index in zip(epochs_of(summary), records["arch_id"], records["arch_index"]):
        arch = tuple(row["derived"])
        assert nb201_oracle.space.identity(arch) == arch_id and nb201_oracle.space.index(arch) == index
        assert row["skip_fraction"] == sum(o == 1 for o in arch) / 6
        assert 0 <= row["alpha_entropy"] <= np.log(5) + 1e-9 and row["tau"] > 0
    assert list(records["repeat"]) == [False] + [a == b for a, b in zip(records["arch_id"][1:],
                                                                        records["arch_id"][:-1])]
    assert records["n_distinct"][-1] == len(set(records["arch_id"]))
    from harness.results import run_table
    table = run_table(records, oracle="nb201/cifar10", algorithm="gdas", seed=0, config_id="x")
    assert table.num_rows == 3 and {"arch", "incumbent_report", "cum_cost", "measured_s"} <= set(table.column_names)


def test_the_ground_truth_values_go_to_the_records_only(nb201_oracle, monkeypatch):
    monkeypatch.setattr(one_shot, "ground_truth", lambda oracle, data: (oracle, "test: the table's values"))
    records, summary = one_shot.run_one_shot(config("darts", epochs=2), nb201_oracle, seed=1)
    for row, search, report, best in zip(epochs_of(summary), records["search"], records["report"],
                                         records["incumbent_report"]):
        ev = nb201_oracle.query(tuple(row["derived"]))
        assert search == pytest.approx(ev.observation.value) and report == pytest.approx(ev.report)
        assert best == report       # the current architecture's value, not the best seen


def test_a_partial_ground_truth_gives_nan_for_the_cells_it_does_not_cover(nb201_oracle, monkeypatch):
    """A snapshot of a running collection serves a subset of the cells: a derived cell outside
    it is recorded without a true value (and without an index), not a crash."""
    from oracles.nb201_space import NB201Space
    from oracles.subset_space import SubsetSpace
    monkeypatch.setattr(one_shot, "ground_truth", lambda oracle, data: (oracle, "test: the table's values"))
    _, full = one_shot.run_one_shot(config("darts", epochs=2), nb201_oracle, seed=1)
    derived = [tuple(row["derived"]) for row in epochs_of(full)]
    assert len(set(derived)) == 2       # one covered and one uncovered cell below
    space = NB201Space()
    first = space.index(derived[0])
    others = {space.index(a) for a in derived[1:]} - {first}
    keep = sorted({first, (first + 1) % space.size} - others)

    class Partial:
        name = "partial-truth"
        optimum = None
        def __init__(self):
            self.space = SubsetSpace(space, keep)
        def query(self, arch, rng=None, fidelity=None):
            assert self.space.contains(arch)
            return nb201_oracle.query(arch, rng, fidelity)

    records, summary = one_shot.run_one_shot(config("darts", epochs=2), Partial(), seed=1)
    assert [tuple(row["derived"]) for row in epochs_of(summary)] == derived
    for arch, search, index in zip(derived, records["search"], records["arch_index"]):
        if arch == derived[0]:
            assert search == pytest.approx(nb201_oracle.query(arch).observation.value) and index == 0
        else:
            assert np.isnan(search) and index == -1


def test_ground_truth_rule(nb201_oracle):
    from supernets.data import load
    digits = load("digits")
    truth, why = one_shot.ground_truth(nb201_oracle, digits)
    assert truth is None and "digits" in why

    class Collected:            # an oracle that says on which split it was collected
        name = "nb201-digits"
        data_record = digits.record()

    assert one_shot.ground_truth(Collected(), digits)[0] is not None
    Collected.data_record = {**digits.record(), "fingerprint": "0" * 64}
    assert one_shot.ground_truth(Collected(), digits)[0] is None


@pytest.mark.parametrize("name,params", [("darts", {}), ("darts", {"order": 2, "epochs": 2}), ("gdas", {})])
def test_a_seed_gives_the_same_run_on_cpu(nb201_oracle, name, params):
    a = one_shot.run_one_shot(config(name, **params), nb201_oracle, seed=5)
    b = one_shot.run_one_shot(config(name, **params), nb201_oracle, seed=5)
    assert_same_records(a[0], b[0])
    for x, y in zip(epochs_of(a[1]), epochs_of(b[1])):
        assert x["alpha_softmax"] == y["alpha_softmax"] and x["train_loss"] == pytest.approx(y["train_loss"])


@pytest.mark.parametrize("name", ["darts", "gdas"])
def test_a_run_resumed_after_a_kill_equals_an_uninterrupted_one(nb201_oracle, tmp_path, name):
    res = resume_after_kill(config(name), nb201_oracle, tmp_path, kill_after=2)
    assert_same_records(res.ref_records, res.records)
    for x, y in zip(epochs_of(res.ref_summary), epochs_of(res.summary)):
        np.testing.assert_allclose(x["alpha_softmax"], y["alpha_softmax"], atol=1e-6)
    a, b = res.ref_state, res.state
    assert torch.allclose(a["alpha"], b["alpha"], atol=1e-6)
    for k in a["model"]:
        assert torch.allclose(a["model"][k].double(), b["model"][k].double(), atol=1e-5), k


def test_a_checkpoint_of_another_seed_is_not_resumed(nb201_oracle, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    one_shot.run_one_shot(config("gdas", epochs=1), nb201_oracle, seed=0, ckpt=ckpt)
    records, summary = one_shot.run_one_shot(config("gdas", epochs=1), nb201_oracle, seed=1, ckpt=ckpt)
    assert "another configuration or seed" in summary["diagnostics"]["resume"]
    fresh, _ = one_shot.run_one_shot(config("gdas", epochs=1), nb201_oracle, seed=1)
    assert_same_records(fresh, records)


def test_an_epochs_budget_cuts_the_run_short(nb201_oracle):
    cfg = RunConfig(algorithm="gdas", params=TINY, oracle="nb201/cifar10", budget=2, budget_kind="epochs")
    records, summary = one_shot.run_one_shot(cfg, nb201_oracle, seed=0)
    assert len(records["sample"]) == 2 and summary["budget"] == 2


def test_nas_harness_run_routes_a_one_shot_method(nb201_env, tmp_path):
    from harness.experiment import Experiment, execute
    from harness.results import ResultsStore
    out = tmp_path / "out"
    exp = Experiment(oracles=["nb201/cifar10"], algorithms=["gdas:C=4,N=1,max_train=32,batch_size=32,epochs=2"],
                     seeds=1, out=str(out))
    cells, skipped, ran = execute(exp, progress=False)
    assert ran == 1 and cells[0].config["kind"] == "one-shot" and cells[0].config["budget"] == 2
    store = ResultsStore(out)
    [(cell, meta, table)] = list(store.iter_runs(with_records=True))
    assert meta["summary"]["diagnostics"]["kind"] == "one-shot" and table.num_rows == 2
    assert not one_shot.checkpoint_dir(out, cells[0], 0).exists()       # removed once the run file exists
    assert execute(exp, progress=False)[1:] == (1, 0)                      # done: not run again
