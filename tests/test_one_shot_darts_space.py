"""DARTS, GDAS and RSPS in the DARTS space (``space=darts``) and the stand-alone retraining of
their results (``nas-harness supernet retrain``): derived cells follow DARTS's rule, a seed
gives the same run on CPU, a killed run resumes to the same records, the command line runs
them, and the retraining writes its numbers once. Tiny DARTS supernets (C=4, one to three
cells) on a few dozen digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sklearn")

from algorithms.darts import Darts, derive_arch  # noqa: E402
from algorithms.gdas import gumbel_straight_through  # noqa: E402
from harness.runner import RunConfig  # noqa: E402
from oracles.darts_space import DARTS_OPS, EDGE_INDEX, OPS, DartsSpace  # noqa: E402
from oracles.errors import UserError  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import (assert_same_records, digits, one_torch_thread, resume_after_kill,  # noqa: E402,F401
                              same_run_twice, start_method, tiny_darts_supernet)

#: the runs' supernet: one cell (a reduction cell: DARTS puts them at cells N // 3 and 2N // 3),
#: whose all-operations step costs a third of three cells'; the alpha test has a normal cell too
TINY = {"space": "darts", "C": 4, "N": 1, "max_train": 16, "batch_size": 16, "epochs": 2}
#: per method, its own parameters on the tiny supernet (RSPS: few candidates, little calibration)
METHODS = {"darts": {}, "darts-2nd": {"order": 2}, "gdas": {},
           "rsps": {"n_archs": 4, "epoch_archs": 2, "calib_images": 32}}
SPACE = DartsSpace()          # the derived cells' space: DARTS's 7 operations, no none


def config(method: str) -> RunConfig:
    name = method.split("-")[0]
    return RunConfig(algorithm=name, params={**TINY, **METHODS[method]}, oracle="supernet/darts-tiny")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data directory holding a tiny DARTS supernet trained one epoch: the oracle that names
    the DARTS space (tests/one_shot_helpers.py)."""
    return tiny_darts_supernet(tmp_path_factory, name="darts-tiny", cells=2, epochs=1)


@pytest.fixture
def darts_oracle(data_dir, monkeypatch):
    from oracles.registry import load_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data_dir))
    return load_oracle("supernet/darts-tiny:calib=16")


# --- mechanics ----------------------------------------------------------------------------------
def test_derivation_keeps_the_two_strongest_edges_per_node_without_none():
    alpha = torch.zeros(2, 14, len(DARTS_OPS))
    alpha[:, :, 0] = 5.0                                   # none strongest everywhere: never chosen
    alpha[0, EDGE_INDEX[(2, 1)], DARTS_OPS.index("sep_conv_3x3")] = 3.0
    alpha[0, EDGE_INDEX[(2, 0)], DARTS_OPS.index("skip_connect")] = 2.0
    alpha[0, EDGE_INDEX[(5, 4)], DARTS_OPS.index("dil_conv_5x5")] = 4.0
    alpha[0, EDGE_INDEX[(5, 2)], DARTS_OPS.index("max_pool_3x3")] = 3.5
    alpha[0, EDGE_INDEX[(5, 0)], DARTS_OPS.index("avg_pool_3x3")] = 1.0    # third strongest into node 5
    alpha[1, EDGE_INDEX[(3, 2)], DARTS_OPS.index("sep_conv_5x5")] = 2.0
    arch = derive_arch(alpha, "darts")
    assert arch.normal[:2] == (("sep_conv_3x3", 1), ("skip_connect", 0))
    assert arch.normal[6:] == (("dil_conv_5x5", 4), ("max_pool_3x3", 2))
    assert arch.reduce[2] == ("sep_conv_5x5", 2)
    assert SPACE.check(arch) == arch                       # two distinct inputs per node, no none
    method = Darts(space="darts", exclude_none=False)      # the DARTS space's rule ignores exclude_none
    method.alpha = alpha
    assert method.derive() == arch


def test_an_alpha_step_lowers_the_validation_loss_in_the_darts_space(digits):
    def started():
        return start_method(Darts(arch_lr=0.05, **{**TINY, "N": 3}), digits)   # cells: normal, reduce, reduce

    method = started()
    assert tuple(method.alpha.shape) == (2, 14, len(DARTS_OPS))
    xv, yv = method.x_valid[:8], method.y_valid[:8]
    xt, yt = method.x_train[:8], method.y_train[:8]

    def val_loss(m):
        with torch.no_grad():
            return float(F.cross_entropy(m.mixed(xv, F.softmax(m.alpha, -1)), yv))

    before = val_loss(method)
    grad, _, _ = method.alpha_gradient(xt, yt, xv, yv, xi=1e-3)
    assert float(grad[0].abs().sum()) > 0 and float(grad[1].abs().sum()) > 0    # both cells learn
    method._alpha_step(grad)
    assert val_loss(method) < before
    other = started()
    other._alpha_step(-grad)
    assert val_loss(other) > before


def test_gdas_samples_one_operation_per_edge_of_both_cells():
    alpha = torch.randn(2, 14, len(DARTS_OPS), requires_grad=True)
    h, index, tries = gumbel_straight_through(alpha, 1.0, torch.Generator().manual_seed(0))
    assert tries == 1 and len(index) == 2 and all(len(cell) == 14 for cell in index)
    assert torch.equal(h.detach(), F.one_hot(torch.tensor(index), len(DARTS_OPS)).to(h.dtype))
    (h * torch.arange(len(DARTS_OPS))).sum().backward()
    assert bool((alpha.grad != 0).all())                   # straight-through: every entry has a gradient


# --- runs -----------------------------------------------------------------------------------------
def check_darts_records(records, summary, method: str) -> None:
    """The records and diagnostics of a DARTS-space run: valid DARTS cells (two distinct inputs
    a node, no none) as arch/arch_id, no ground truth, the skip fractions of the cells."""
    n = len(records["sample"])
    assert np.isnan(records["search"]).all() and summary["diagnostics"]["ground_truth"] is None
    assert list(records["arch_index"]) == [-1] * n
    for row, arch_id, arch in zip(summary["diagnostics"]["epochs"], records["arch_id"],
                                  records.get("arch", records["arch_id"])):
        cell = SPACE.parse(arch)
        assert row["derived"] == arch and SPACE.identity(cell) == arch_id
        ops = [op for op, _ in cell.normal + cell.reduce]
        assert set(ops) <= set(OPS)
        assert row["skip_fraction"] == ops.count("skip_connect") / 16
        assert row["skip_fraction_normal"] == [op for op, _ in cell.normal].count("skip_connect") / 8
        if method != "rsps":
            assert np.array(row["alpha_softmax"]).shape == (2, 14, len(DARTS_OPS))


@pytest.mark.parametrize("method", ["darts", "gdas", "rsps"])
def test_a_killed_darts_space_run_resumes_to_the_same_records(darts_oracle, tmp_path, method):
    """The run killed after epoch 1 and resumed equals the uninterrupted one record for record
    and in its weights; since both computed epoch 1 afresh from the seed, this is also the
    determinism of a seed on CPU (the second-order variant's own check is marked slow)."""
    r = resume_after_kill(config(method), darts_oracle, tmp_path, kill_after=1)
    assert r.summary.get("failed") is None and list(r.records["sample"]) == [1, 2]
    check_darts_records(r.records, r.summary, method)
    assert_same_records(r.ref_records, r.records)
    model = (lambda s: s["trainer"]["model"]) if method == "rsps" else (lambda s: s["model"])
    for k, v in model(r.ref_state).items():
        assert torch.equal(v, model(r.state)[k]), k


@pytest.mark.slow
def test_a_seed_gives_the_same_second_order_darts_run(darts_oracle):
    records, summary, _ = same_run_twice(config("darts-2nd"), darts_oracle, seed=0)
    check_darts_records(records, summary, "darts")


def test_the_command_line_runs_and_retrains_darts_space_results(data_dir, monkeypatch, tmp_path, capsys):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data_dir))
    out = tmp_path / "out"
    algorithms = []
    for method in ("darts", "gdas", "rsps"):
        params = {**TINY, **METHODS[method], "epochs": 1}
        algorithms += ["--algorithm", f"{method}:" + ",".join(f"{k}={v}" for k, v in params.items())]
    assert main(["run", "--oracle", "supernet/darts-tiny", *algorithms, "--seeds", "1", "--out", str(out),
                 "--quiet"]) == 0
    runs = sorted(out.glob("runs/*/*/seed-*.parquet"))
    assert len(runs) == 3
    before = {p: p.read_bytes() for p in runs}
    retrain = ["supernet", "retrain", str(out), "--C", "4", "--layers", "3", "--epochs", "1", "--max-train", "16"]
    capsys.readouterr()
    assert main(retrain) == 0
    first = json.loads((out / "retrained.json").read_text())
    assert len(first["runs"]) == 3
    for run in first["runs"]:
        t = first["trainings"][run["training"]]
        assert t["arch"] == run["arch"] and SPACE.parse(t["arch"])
        assert 0 <= t["valid_acc"] <= 1 and 0 <= t["test_acc"] <= 1 and t["params"] > 0
        assert t["recipe"]["C"] == 4 and t["recipe"]["weight_decay"] == 3e-4 and t["data"]["dataset"] == "digits"
    assert len(first["trainings"]) == len({r["arch"] for r in first["runs"]})   # one training per cell
    table = capsys.readouterr().out
    assert all(f"{m}:" in table for m in ("darts", "gdas", "rsps")) and "valid %" in table
    # ...and as the folder's reference results, which the report prints beside the runs
    from harness.summary import read_references
    refs = read_references(out)
    assert len(refs) == 3 and all(r["oracle"] == "supernet/darts-tiny" for r in refs)
    per_run = [first["trainings"][r["training"]]["test_acc"] for r in first["runs"]]
    assert sorted(v for r in refs for v in r["report"]) == sorted(per_run)
    assert main(["report", str(out)]) == 0 and "retrained (C4x3 e1, seed 0)" in capsys.readouterr().out
    # a finished training is not redone, and the run files are untouched
    import supernets.retrain as retrain_module
    monkeypatch.setattr(retrain_module, "train_from_scratch",
                        lambda *a, **k: pytest.fail("a finished training was redone"))
    assert main(retrain) == 0
    assert json.loads((out / "retrained.json").read_text()) == first
    assert {p: p.read_bytes() for p in runs} == before


def test_a_method_and_its_oracle_must_search_the_same_space(data_dir, monkeypatch, tmp_path):
    from harness.experiment import Experiment, plan
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data_dir))
    exp = Experiment(oracles=["supernet/darts-tiny"], algorithms=["darts:C=4,N=1"], seeds=1, out=str(tmp_path))
    with pytest.raises(UserError, match="space=darts"):
        plan(exp)


def test_retraining_is_deterministic_for_a_seed(digits):
    from supernets.retrain import preset_recipe, train_from_scratch
    recipe = preset_recipe("cpu", C=4, layers=3, epochs=2, max_train=16)
    arch = SPACE.sample(np.random.default_rng(0))
    a, b = (train_from_scratch(arch, recipe, digits, seed=1) for _ in range(2))
    keys = ("valid_acc", "valid_loss", "test_acc", "test_loss", "train_loss")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    with pytest.raises(UserError):
        preset_recipe("cpu", C=5)
