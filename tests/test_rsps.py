"""RSPS on a tiny NB201 supernet (C=4, N=1) on a few dozen digits: uniform single-path
training through supernets.training, the derivation (the best of its N sampled
architectures on one validation batch, N per epoch and at the end), determinism for a seed
and resume after a kill."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

from algorithms.rsps import Rsps, best_candidate, derivation_generator, validation_batch  # noqa: E402
from harness import one_shot  # noqa: E402
from harness.runner import RunConfig  # noqa: E402
from supernets.training import EvalSettings, evaluate_archs, sample_path  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import (assert_same_records, digits, one_torch_thread, resume_after_kill,  # noqa: E402,F401
                              same_run_twice, start_method)

TINY = {"C": 4, "N": 1, "max_train": 64, "batch_size": 32, "epochs": 3, "n_archs": 6, "epoch_archs": 3,
        "calib_images": 32}


def started(data, **params) -> Rsps:
    return start_method(Rsps(**{**TINY, "epochs": 2, **params}), data)


def test_best_candidate_is_the_highest_accuracy_then_the_lowest_loss_then_the_first():
    assert best_candidate([0.5, 0.75, 0.25], [1.0, 2.0, 0.1]) == 1
    assert best_candidate([0.75, 0.75, 0.25], [1.0, 0.5, 0.1]) == 1
    assert best_candidate([0.75, 0.75, 0.75], [0.5, 0.5, 0.5]) == 0
    with pytest.raises(ValueError):
        best_candidate([], [])


def test_training_is_the_uniform_single_path_supernet_trainer(digits):
    method = started(digits)
    assert method.config.mode == "single-path" and Rsps().supernet_config().epochs == 250
    before = {k: v.clone() for k, v in method.net.state_dict().items()}
    stats = method.train_epoch()
    assert method.epochs_done == 1 and stats["epoch"] == 1
    assert len(method.trainer.last_paths) == method.trainer.steps_per_epoch == 2
    assert any(not torch.equal(v, before[k]) for k, v in method.net.state_dict().items())


def test_derivation_picks_the_best_of_its_sampled_set(digits):
    method = started(digits)
    method.train_epoch()
    weights = {k: v.clone() for k, v in method.net.state_dict().items()}
    gen_state = method.trainer.generator.get_state()
    arch = method.derive()
    d = method.last_derivation
    assert not d["final"] and len(d["candidates"]) == TINY["epoch_archs"]
    # the same candidates and batch, scored independently
    gen = derivation_generator(method.derive_seed, 1)
    candidates = [sample_path(gen) for _ in range(TINY["epoch_archs"])]
    assert candidates == d["candidates"]
    xb, yb = validation_batch(method.x_valid, method.y_valid, TINY["batch_size"], gen)
    assert len(yb) == TINY["batch_size"]
    scores = evaluate_archs(method.net, candidates, xb, yb,
                            EvalSettings(batch_size=TINY["batch_size"], calib_images=TINY["calib_images"]),
                            x_calib=method.trainer.x_train)
    assert scores["acc"].tolist() == pytest.approx(d["acc"]) and scores["loss"].tolist() == pytest.approx(d["loss"])
    assert arch == candidates[best_candidate(scores["acc"], scores["loss"])]
    assert scores["acc"][d["best"]] == scores["acc"].max()
    # deriving changes neither the weights nor the training's generator, and repeats itself
    assert method.derive() == arch
    assert torch.equal(method.trainer.generator.get_state(), gen_state)
    assert all(torch.equal(v, weights[k]) for k, v in method.net.state_dict().items())


def test_the_final_derivation_draws_n_archs(digits):
    method = started(digits, n_archs=7)
    method.train_epoch()
    method.derive()
    assert len(method.last_derivation["candidates"]) == 3
    method.train_epoch()
    arch = method.derive()
    d = method.last_derivation
    assert d["final"] and len(d["candidates"]) == 7 and arch == d["candidates"][d["best"]]
    assert d["acc"][d["best"]] == max(d["acc"])


def test_eval_images_sets_the_scoring_batch(digits):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    xb, yb = validation_batch(x, y, 4, gen)
    assert len(set(yb.tolist())) == 4 and torch.equal(xb.view(-1).long(), yb)
    assert validation_batch(x, y, 50, gen)[1] is y
    for bad in ({"n_archs": 0}, {"eval_images": 0}, {"calib_images": -1}):
        with pytest.raises(ValueError):
            Rsps(**bad)


def config(**params) -> RunConfig:
    return RunConfig(algorithm="rsps", params={**TINY, **params}, oracle="nb201/cifar10")


def test_a_seed_gives_the_same_run_on_cpu(nb201_oracle):
    a_records, a, b = same_run_twice(config(), nb201_oracle, seed=5)
    for x, y in zip(a["diagnostics"]["epochs"], b["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["train_loss"] == y["train_loss"]
    c_records, _ = one_shot.run_one_shot(config(), nb201_oracle, seed=6)
    assert list(c_records["arch_id"]) != list(a_records["arch_id"])


def test_a_run_resumed_after_a_kill_equals_an_uninterrupted_one(nb201_oracle, tmp_path):
    res = resume_after_kill(config(), nb201_oracle, tmp_path, kill_after=2)
    assert_same_records(res.ref_records, res.records)
    for x, y in zip(res.ref_summary["diagnostics"]["epochs"], res.summary["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["train_loss"] == pytest.approx(y["train_loss"])
    a, b = res.ref_state, res.state
    assert a["derive_seed"] == b["derive_seed"]
    assert torch.equal(a["trainer"]["rng"]["generator"], b["trainer"]["rng"]["generator"])
    for k in a["trainer"]["model"]:
        assert torch.allclose(a["trainer"]["model"][k].double(), b["trainer"]["model"][k].double(), atol=1e-6), k
