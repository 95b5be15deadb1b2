"""RSPS on a tiny NB201 supernet (C=4, N=1) on a few dozen digits: uniform single-path
training through supernets.training, the derivation (the best of its N sampled
architectures on one validation batch, N per epoch and at the end), determinism for a seed
and resume after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from algorithms.rsps import Rsps, best_candidate, derivation_generator, validation_batch  # noqa: E402
from harness import one_shot  # noqa: E402
from harness.runner import RunConfig  # noqa: E402
from supernets.data import load  # noqa: E402
from supernets.training import EvalSettings, build_supernet, evaluate_archs, sample_path  # noqa: E402

TINY = {"C": 4, "N": 1, "max_train": 64, "batch_size": 32, "epochs": 3, "n_archs": 6, "epoch_archs": 3,
        "calib_images": 32}
MEASURED = {"cost", "cum_cost", "algo_cpu_s"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def started(data, **params) -> Rsps:
    method = Rsps(**{**TINY, "epochs": 2, **params})
    torch.manual_seed(0)
    net = build_supernet(method.supernet_config(), data.input_shape[0], data.num_classes)
    method.start(net, data, np.random.default_rng(0))
    return method


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


def assert_same_records(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        if k in MEASURED:
            continue
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(a[k]), np.isnan(b[k]), err_msg=k)
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, err_msg=k)
        else:
            assert list(a[k]) == list(b[k]), k


def test_a_seed_gives_the_same_run_on_cpu(nb201_oracle):
    a_records, a = one_shot.run_one_shot(config(), nb201_oracle, seed=5)
    b_records, b = one_shot.run_one_shot(config(), nb201_oracle, seed=5)
    assert a.get("failed") is None
    assert_same_records(a_records, b_records)
    for x, y in zip(a["diagnostics"]["epochs"], b["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["train_loss"] == y["train_loss"]
    c_records, _ = one_shot.run_one_shot(config(), nb201_oracle, seed=6)
    assert list(c_records["arch_id"]) != list(a_records["arch_id"])


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so the loop does not record it as a failure."""


def test_a_run_resumed_after_a_kill_equals_an_uninterrupted_one(nb201_oracle, tmp_path):
    whole, killed = tmp_path / "whole.ckpt", tmp_path / "killed.ckpt"
    ref_records, ref = one_shot.run_one_shot(config(), nb201_oracle, seed=2, ckpt=whole)

    def kill_after_2(epoch):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        one_shot.run_one_shot(config(), nb201_oracle, seed=2, ckpt=killed, on_epoch=kill_after_2)
    assert json.loads((killed / "meta.json").read_text())["seed"] == 2
    records, summary = one_shot.run_one_shot(config(), nb201_oracle, seed=2, ckpt=killed)
    assert summary["diagnostics"]["resume"] == "resumed after epoch 2"
    assert_same_records(ref_records, records)
    for x, y in zip(ref["diagnostics"]["epochs"], summary["diagnostics"]["epochs"]):
        assert x["derived"] == y["derived"] and x["train_loss"] == pytest.approx(y["train_loss"])
    a = torch.load(whole / "state.pt", weights_only=True)["method"]
    b = torch.load(killed / "state.pt", weights_only=True)["method"]
    assert a["derive_seed"] == b["derive_seed"]
    assert torch.equal(a["trainer"]["rng"]["generator"], b["trainer"]["rng"]["generator"])
    for k in a["trainer"]["model"]:
        assert torch.allclose(a["trainer"]["model"][k].double(), b["trainer"]["model"][k].double(), atol=1e-6), k
