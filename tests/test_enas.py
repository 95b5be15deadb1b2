"""ENAS mechanics on a tiny NB201 supernet (C=4, N=1) on a few dozen digits: the controller's
REINFORCE gradient sign, the moving-average baseline, the entropy bonus, the bounded
logits, the derivation rule, determinism for a seed and resume after a kill; in the DARTS
space (a tiny DARTS supernet, C=4 and 3 cells): the controller's decisions are the space's
tokens, the derived cells are valid, and runs from the command line are deterministic and
resume after a kill."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from algorithms.enas import (NB201_DECISIONS, CellCoding, Controller, Enas, darts_decisions,  # noqa: E402
                             reinforce_loss, update_baseline)
from algorithms.rsps import derivation_generator, validation_batch  # noqa: E402
from harness import one_shot  # noqa: E402
from harness.runner import RunConfig  # noqa: E402
from oracles.darts_space import PAIRS, DartsArch, DartsSpace  # noqa: E402
from supernets.training import EvalSettings, evaluate_archs  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import (assert_same_records, digits, one_torch_thread, resume_after_kill,  # noqa: E402,F401
                              same_run_twice, start_method, tiny_darts_supernet, live_darts_oracle)

TINY = {"C": 4, "N": 1, "max_train": 64, "batch_size": 32, "epochs": 3, "ctl_train_steps": 2,
        "ctl_num_aggregate": 3, "epoch_samples": 3, "final_samples": 5}


def started(data, **params) -> Enas:
    return start_method(Enas(**{**TINY, "epochs": 2, **params}), data)


def log_p(controller: Controller, arch) -> float:
    with torch.no_grad():
        return float(controller(arch=arch)[1])


def entropy_at(controller: Controller, arch) -> float:
    with torch.no_grad():
        return float(controller(arch=arch)[2])


def sgd_step(module: torch.nn.Module, loss: torch.Tensor, lr: float) -> None:
    grads = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
    with torch.no_grad():
        for p, g in zip(module.parameters(), grads):
            if g is not None:
                p.sub_(lr * g)


@pytest.mark.parametrize("advantage", [0.5, -0.5])
def test_the_advantage_sign_moves_the_sampled_cells_probability(advantage):
    gen = torch.Generator().manual_seed(0)
    controller = Controller(gen=gen)
    arch, log_prob, entropy = controller(gen)
    before = float(log_prob.detach())
    assert log_p(controller, arch) == pytest.approx(before)       # teacher forcing: same cell, same p
    sgd_step(controller, reinforce_loss(log_prob, entropy, advantage, entropy_weight=0.0), lr=0.5)
    after = log_p(controller, arch)
    assert (after > before) if advantage > 0 else (after < before)


def test_a_controller_step_of_the_method_raises_a_rewarded_cells_probability(digits, monkeypatch):
    method = started(digits, ctl_num_aggregate=1, ctl_lr=0.05)
    method.baseline = 0.2
    monkeypatch.setattr(method, "reward", lambda arch, x, y: 1.0)       # better than the baseline
    state = method.gen.get_state()
    loss, numbers = method.controller_sample_loss(*method._next_valid())
    assert numbers["baseline"] == pytest.approx(0.2 - 0.01 * (0.2 - 1.0))
    assert numbers["advantage"] == pytest.approx(1.0 - numbers["baseline"]) and numbers["advantage"] > 0
    arch = numbers["arch"]
    before = log_p(method.controller, arch)
    method.c_opt.zero_grad()
    loss.backward()
    method.c_opt.step()
    assert log_p(method.controller, arch) > before
    method.gen.set_state(state)
    assert method.controller(method.gen)[0] == arch                       # the draw came from the run's generator


def test_the_baseline_is_enas_moving_average():
    assert update_baseline(None, 0.3) == 0.3                             # the first reward sets it
    assert update_baseline(0.5, 1.0, 0.99) == pytest.approx(0.505)
    rewards = [0.1, 0.9, 0.4, 0.4, 1.0]
    b = None
    for r in rewards:
        b = update_baseline(b, r, 0.9)
    closed = 0.9 ** 4 * rewards[0] + sum(0.1 * 0.9 ** (4 - i) * r for i, r in enumerate(rewards) if i)
    assert b == pytest.approx(closed)


def test_the_controller_epoch_updates_the_baseline_with_every_sample(digits, monkeypatch):
    method = started(digits)
    rewards = iter([0.25, 0.5, 0.75, 1.0, 0.0, 0.5])                    # 2 steps x 3 samples
    monkeypatch.setattr(method, "reward", lambda arch, x, y: next(rewards))
    stats = method._train_controller()
    b = None
    for r in [0.25, 0.5, 0.75, 1.0, 0.0, 0.5]:
        b = update_baseline(b, r)
    assert method.baseline == pytest.approx(b) and stats["ctl_final_baseline"] == pytest.approx(b)
    assert stats["ctl_reward"] == pytest.approx(0.5)


def peaked_controller() -> Controller:
    controller = Controller(gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        controller.head.weight.zero_()
        controller.head.bias.copy_(torch.tensor([5.0, -5.0, -5.0, -5.0, -5.0]))
    return controller


def test_the_entropy_bonus_raises_the_controllers_entropy():
    gen = torch.Generator().manual_seed(1)
    with_bonus, without = peaked_controller(), peaked_controller()
    fixed = (0,) * 6
    start = entropy_at(with_bonus, fixed)
    for _ in range(5):
        arch, log_prob, entropy = with_bonus(gen)
        sgd_step(with_bonus, reinforce_loss(log_prob, entropy, 0.0, entropy_weight=1.0), lr=0.5)
    assert entropy_at(with_bonus, fixed) > start + 0.5
    # without the bonus a zero advantage moves nothing
    arch, log_prob, entropy = without(gen)
    grads = torch.autograd.grad(reinforce_loss(log_prob, entropy, 0.0, entropy_weight=0.0),
                                list(without.parameters()), allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0.0 for g in grads)


def test_logits_are_bounded_by_the_tanh_constant():
    controller = Controller(tanh_constant=2.5, temperature=5.0, gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        controller.head.bias.copy_(torch.tensor([1e4, -1e4, 0.0, 0.0, 0.0]))
    gap = log_p(controller, (0,) * 6) - log_p(controller, (1,) * 6)
    # per pick, p(best) / p(worst) <= exp(2 * 2.5), reached when the logits saturate
    assert gap <= 6 * 5.0 + 1e-4
    assert gap == pytest.approx(6 * 5.0, abs=1e-3)


def test_derivation_is_the_best_controller_sample_on_one_validation_batch(digits):
    method = started(digits)
    method.train_epoch()
    gen_state = method.gen.get_state()
    weights = {k: v.clone() for k, v in method.net.state_dict().items()}
    arch = method.derive()
    d = method.last_derivation
    assert not d["final"] and len(d["candidates"]) == TINY["epoch_samples"]
    # the same candidates and batch, scored independently
    gen = derivation_generator(method.derive_seed, 1)
    with torch.no_grad():
        candidates = [method.controller(gen)[0] for _ in range(TINY["epoch_samples"])]
    assert candidates == d["candidates"]
    xb, yb = validation_batch(method.x_valid, method.y_valid, method.config.batch_size, gen)
    scores = evaluate_archs(method.net, candidates, xb, yb, EvalSettings(batch_size=len(yb), calib_images=0))
    assert scores["acc"].tolist() == pytest.approx(d["acc"])
    i = d["best"]
    assert arch == candidates[i] and scores["acc"][i] == scores["acc"].max()
    assert all(scores["loss"][i] <= scores["loss"][j] for j in range(len(candidates))
               if scores["acc"][j] == scores["acc"][i])
    # deriving changes nothing and gives the same cell again
    assert method.derive() == arch
    assert torch.equal(method.gen.get_state(), gen_state)
    assert all(torch.equal(v, weights[k]) for k, v in method.net.state_dict().items())
    method.train_epoch()
    method.derive()
    assert method.last_derivation["final"] and len(method.last_derivation["candidates"]) == TINY["final_samples"]


def test_the_recipe_is_nb201s_enas_recipe():
    cfg = Enas().supernet_config()
    assert (cfg.mode, cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_min, cfg.weight_decay) == \
        ("single-path", 250, 128, 0.05, 5e-4, 2.5e-4)
    assert Enas(batch_size=32, epochs=3).supernet_config().batch_size == 32
    for bad in ({"ctl_num_aggregate": 0}, {"baseline_decay": 1.0}, {"entropy_weight": -1.0}, {"w_lr_min": 1.0}):
        with pytest.raises(ValueError):
            Enas(**bad)


def config(**params) -> RunConfig:
    return RunConfig(algorithm="enas", params={**TINY, **params}, oracle="nb201/cifar10")


def test_a_seed_gives_the_same_run_on_cpu(nb201_oracle):
    a_records, a, b = same_run_twice(config(epochs=2), nb201_oracle, seed=5)
    for x, y in zip(a["diagnostics"]["epochs"], b["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["greedy"] == y["greedy"]
        assert x["ctl_reward"] == y["ctl_reward"] and x["ctl_final_baseline"] == y["ctl_final_baseline"]
    c_records, _ = one_shot.run_one_shot(config(epochs=2), nb201_oracle, seed=6)
    assert list(c_records["arch_id"]) != list(a_records["arch_id"])


def test_a_run_resumed_after_a_kill_equals_an_uninterrupted_one(nb201_oracle, tmp_path):
    res = resume_after_kill(config(), nb201_oracle, tmp_path, kill_after=2)
    assert_same_records(res.ref_records, res.records)
    for x, y in zip(res.ref_summary["diagnostics"]["epochs"], res.summary["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["ctl_reward"] == pytest.approx(y["ctl_reward"])
    a, b = res.ref_state, res.state
    assert a["baseline"] == pytest.approx(b["baseline"]) and not math.isnan(a["baseline"])
    for part in ("controller", "model"):
        for k in a[part]:
            assert torch.allclose(a[part][k].double(), b[part][k].double(), atol=1e-6), (part, k)


@pytest.mark.slow
def test_with_the_papers_controller_settings_a_rewarded_operation_gains_probability(digits, monkeypatch):
    """Three epochs of the controller at NB201's settings (50 Adam steps of 20 samples each,
    lr 1e-3) with a reward that is the cell's fraction of nor_conv_3x3 edges: the controller
    draws that operation well above its uniform 1/5 afterwards."""
    method = started(digits, ctl_train_steps=50, ctl_num_aggregate=20)
    monkeypatch.setattr(method, "reward", lambda arch, x, y: sum(o == 3 for o in arch) / 6)
    gen = torch.Generator().manual_seed(7)

    def conv3_fraction() -> float:
        with torch.no_grad():
            return float(np.mean([sum(o == 3 for o in method.controller(gen)[0]) / 6 for _ in range(300)]))

    before = conv3_fraction()
    for _ in range(3):
        stats = method._train_controller()
    assert before < 0.25 and conv3_fraction() > before + 0.15
    assert stats["ctl_advantage"] > 0


# --- the DARTS space -----------------------------------------------------------------------------
#: a tiny DARTS-space run: C=4, 3 cells (cell 0 normal, 1 and 2 reduction), 2 epochs
DARTS_TINY = {**TINY, "space": "darts", "N": 3, "max_train": 32, "epochs": 2}


def test_in_the_darts_space_the_controller_picks_the_spaces_tokens():
    space = DartsSpace()
    coding = CellCoding(space)
    d = coding.decisions
    assert len(d) == 22 and tuple(d.size_of[k] for k in d.kinds) == space.decisions
    # per cell: node 2's two operations, then per node j = 3..5 its input pair and two operations
    assert d.kinds[:11] == ("op", "op", "inputs-3", "op", "op", "inputs-4", "op", "op", "inputs-5", "op", "op")
    assert d.kinds[11:] == d.kinds[:11] and d.size_of == {"op": 7, "inputs-3": 3, "inputs-4": 6, "inputs-5": 10}
    controller = Controller(gen=torch.Generator().manual_seed(0), decisions=d)
    assert {k: m.out_features for k, m in controller.input_head.items()} == {"inputs-3": 3, "inputs-4": 6,
                                                                             "inputs-5": 10}
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        tokens, log_prob, entropy = controller(gen)
        arch = coding.arch(tokens)
        assert isinstance(arch, DartsArch) and space.check(arch) == arch
        for cell in (arch.normal, arch.reduce):
            for n in range(4):                          # two distinct earlier inputs per node, no none
                (oa, ia), (ob, ib) = cell[2 * n:2 * n + 2]
                assert ia < ib < n + 2 and (ia, ib) in PAIRS[n] and "none" not in (oa, ob)
        assert coding.tokens(arch) == tokens
        assert log_p(controller, tokens) == pytest.approx(float(log_prob.detach()))      # teacher forcing
        # the entropy sums each pick's: at most log(choices) a pick
        assert 0 < float(entropy) <= sum(math.log(d.size_of[k]) for k in d.kinds) + 1e-5


def test_the_nb201_controller_is_the_same_whatever_other_kinds_exist():
    nb201 = Controller(gen=torch.Generator().manual_seed(4))
    assert NB201_DECISIONS.kinds == ("op",) * 6
    assert list(nb201.state_dict()) == ["start_input", *[f"lstm.{n}" for n, _ in nb201.lstm.named_parameters()],
                                        "embed.weight", "head.weight", "head.bias"]
    darts = Controller(gen=torch.Generator().manual_seed(4), decisions=darts_decisions(5))
    # the operation picks' parameters come first, drawn identically
    for k, v in nb201.state_dict().items():
        assert torch.equal(v, darts.state_dict()[k]), k


@pytest.fixture(scope="module")
def darts_oracle(tmp_path_factory):
    """The data folder of a tiny untrained DARTS supernet and its ``supernet/tiny:mode=live``
    oracle, which names the DARTS space (tests/one_shot_helpers.py)."""
    data = tiny_darts_supernet(tmp_path_factory)
    return data, live_darts_oracle(data)


def darts_config(**params) -> RunConfig:
    return RunConfig(algorithm="enas", params={**DARTS_TINY, **params}, oracle="supernet/tiny:mode=live")


def test_enas_runs_in_the_darts_space_from_the_command_line(darts_oracle, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    from harness.cli import main
    data, _ = darts_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    spec = "enas:" + ",".join(f"{k}={v}" for k, v in DARTS_TINY.items())
    assert main(["run", "--oracle", "supernet/tiny:mode=live", "--algorithm", spec, "--seeds", "1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert "1 run(s) executed" in capsys.readouterr().out
    [path] = tmp_path.glob("runs/*/*/seed-*.parquet")
    rows = pq.read_table(path).to_pydict()
    space = DartsSpace()
    assert rows["sample"] == [1, 2] and rows["arch_index"] == [-1, -1]
    for text, ident in zip(rows.get("arch", rows["arch_id"]), rows["arch_id"]):
        arch = space.parse(text)                          # a valid cell pair of the 7 operations
        assert space.identity(arch) == ident and "none" not in text


def test_in_the_darts_space_a_seed_gives_the_same_run_and_a_killed_run_resumes(darts_oracle, tmp_path):
    """An uninterrupted run against one killed after its first epoch and resumed: the killed
    run's first epoch is a second run of the seed from scratch, the rest comes from its
    checkpoint; record for record they equal the uninterrupted run's."""
    _, oracle = darts_oracle
    res = resume_after_kill(darts_config(), oracle, tmp_path, kill_after=1)
    assert res.ref_summary.get("failed") is None
    assert_same_records(res.ref_records, res.records)
    for x, y in zip(res.ref_summary["diagnostics"]["epochs"], res.summary["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["greedy"] == y["greedy"]
        assert x["ctl_reward"] == pytest.approx(y["ctl_reward"]) and x["greedy"].startswith("Genotype(")
    for part in ("controller", "model"):
        for k in res.ref_state[part]:
            assert torch.allclose(res.ref_state[part][k].double(), res.state[part][k].double(), atol=1e-6), (part, k)
    assert any(k.startswith("input_head.") for k in res.state["controller"])
