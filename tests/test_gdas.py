"""GDAS mechanics on a tiny NB201 supernet (C=4, N=1) on digits: the temperature schedule,
straight-through Gumbel-softmax samples and their gradients, resampling of non-finite
draws, the derivation rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sklearn")

from algorithms.gdas import Gdas, gumbel_straight_through, temperature  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import digits, one_torch_thread, start_method  # noqa: E402,F401


def started(data, **params) -> Gdas:
    return start_method(Gdas(C=4, N=1, batch_size=32, **{"epochs": 2, "max_train": 128, **params}), data)


def test_temperature_falls_linearly_from_tau_max_to_tau_min():
    taus = [temperature(e, 5) for e in range(5)]
    assert taus[0] == pytest.approx(10.0) and taus[-1] == pytest.approx(0.1)
    assert np.allclose(np.diff(taus), -(10.0 - 0.1) / 4)
    assert temperature(0, 1) == 10.0
    assert temperature(3, 7, tau_max=5.0, tau_min=1.0) == pytest.approx(3.0)


def test_the_method_trains_each_epoch_at_its_temperature(digits):
    method = started(digits, epochs=3, max_train=32)
    taus = [method.train_epoch()["tau"] for _ in range(3)]
    assert taus == pytest.approx([10.0, 5.05, 0.1])


def test_samples_are_one_hot_with_gradients_to_every_entry():
    gen = torch.Generator().manual_seed(0)
    alpha = torch.randn(6, 5, generator=gen, requires_grad=True)
    h, index, tries = gumbel_straight_through(alpha, 1.0, gen)
    assert tries == 1
    assert torch.equal(h.detach(), F.one_hot(torch.tensor(index), 5).float())
    # straight through: d(sum c * h)/d alpha is the softmax's Jacobian applied to c
    c = torch.randn(6, 5, generator=gen)
    grad = torch.autograd.grad((h * c).sum(), [alpha])[0]
    assert bool((grad != 0).all())


def test_the_sampled_path_is_the_single_path_and_alpha_gets_gradient(digits):
    method = started(digits)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):                       # a sample without none, so no dead-node difference
        h, index, _ = gumbel_straight_through(method.alpha, 10.0, gen)
        if 0 not in index:
            break
    assert 0 not in index
    x = method.x_valid[:16]
    out = method.net.forward_weighted(x, h, hard=index)
    single = method.net(x, index)
    assert torch.allclose(out, single, atol=1e-5)
    grad = torch.autograd.grad(F.cross_entropy(out, method.y_valid[:16]), [method.alpha])[0]
    assert bool(torch.isfinite(grad).all()) and bool((grad != 0).all())


def test_a_non_finite_draw_is_resampled(monkeypatch):
    real = torch.Tensor.exponential_
    calls = []

    def first_draw_zero(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            out[0, 0] = 0.0                 # -log(0) = inf: a non-finite Gumbel draw
        return out

    monkeypatch.setattr(torch.Tensor, "exponential_", first_draw_zero)
    gen = torch.Generator().manual_seed(0)
    alpha = torch.zeros(6, 5, requires_grad=True)
    h, _, tries = gumbel_straight_through(alpha, 0.1, gen)
    assert tries == 2 and bool(torch.isfinite(h).all())
    with pytest.raises(FloatingPointError):
        gumbel_straight_through(torch.full((6, 5), float("nan")), 1.0, gen, max_tries=3)


def test_derivation_is_the_argmax_of_alpha():
    method = Gdas()
    method.alpha = torch.zeros(6, 5)
    method.alpha[:, 2] = 1.0
    method.alpha[4, 0] = 3.0
    assert method.derive() == (2, 2, 2, 2, 0, 2)


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        Gdas(tau_max=0.1, tau_min=1.0)
    assert Gdas().supernet_config().epochs == 250
