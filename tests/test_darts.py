"""DARTS mechanics on a tiny NB201 supernet (C=4, N=1) on a few hundred digits: gradient
signs, the second-order hypergradient against autograd's double backward, the derivation rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sklearn")

from algorithms.darts import Darts, argmax_arch, hessian_vector_product  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import digits, one_torch_thread, start_method  # noqa: E402,F401


def started(data, dtype=torch.float32, **params) -> Darts:
    return start_method(Darts(C=4, N=1, max_train=192, batch_size=32, epochs=2, **params), data, dtype=dtype)


def val_loss(method, xv, yv) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(method.net.forward_weighted(xv, F.softmax(method.alpha, -1)), yv))


@pytest.mark.parametrize("order", [1, 2])
def test_an_alpha_step_lowers_the_validation_loss_on_its_batch(digits, order):
    method = started(digits, order=order, arch_lr=0.01)
    xv, yv = method.x_valid[:32], method.y_valid[:32]
    xt, yt = method.x_train[:32], method.y_train[:32]
    before = val_loss(method, xv, yv)
    grad, _, _ = method.alpha_gradient(xt, yt, xv, yv, xi=1e-3)
    method._alpha_step(grad)
    assert val_loss(method, xv, yv) < before
    # and the opposite step raises it: the sign is the gradient's, not luck
    method2 = started(digits, order=order, arch_lr=0.01)
    method2._alpha_step(-grad)
    assert val_loss(method2, xv, yv) > before


def test_a_weight_step_lowers_the_training_loss_on_its_batch(digits):
    method = started(digits)
    xt, yt = method.x_train[:32], method.y_train[:32]
    weights = F.softmax(method.alpha.detach(), -1)
    with torch.no_grad():
        before = float(F.cross_entropy(method.net.forward_weighted(xt, weights), yt))
    method._weight_step(F.cross_entropy(method.net.forward_weighted(xt, weights), yt))
    with torch.no_grad():
        assert float(F.cross_entropy(method.net.forward_weighted(xt, weights), yt)) < before


def test_finite_difference_hvp_matches_double_backward_on_a_smooth_problem():
    """DARTS Eq. 8 with its own step (r = 0.01) on a smooth loss coupling weights and alpha."""
    gen = torch.Generator().manual_seed(0)
    w = [torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True),
         torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)]
    alpha = torch.randn(6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)

    def loss_at():
        h = torch.tanh(x @ w[0].T + w[1][:1])               # 7 x 5
        return (torch.log1p(h.exp()) @ F.softmax(alpha, -1).T).pow(2).mean()

    v = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in w]
    saved = [t.detach().clone() for t in w]
    estimate = hessian_vector_product(loss_at, w, alpha, v, r=0.01)
    assert all(torch.equal(t, s) for t, s in zip(w, saved))        # weights restored exactly
    g_w = torch.autograd.grad(loss_at(), w, create_graph=True)
    exact = torch.autograd.grad(sum((g * t).sum() for g, t in zip(g_w, v)), [alpha])[0]
    assert float(exact.abs().max()) > 0
    assert torch.allclose(estimate, exact, rtol=1e-3, atol=1e-5 * float(exact.abs().max()))


def test_finite_difference_hvp_matches_double_backward_on_the_supernet(digits):
    """The same on the supernet (float64). Its ReLUs make the loss piecewise smooth: with
    DARTS's step (a weight move of norm 0.01) kinks are crossed and the estimate is far off
    on this tiny network, so the formula is checked with a step inside one smooth piece."""
    method = started(digits, dtype=torch.float64)
    params = [p for p in method.net.parameters() if p.requires_grad]
    xt, yt = method.x_train[:16], method.y_train[:16]

    def loss_at():
        return F.cross_entropy(method.net.forward_weighted(xt, F.softmax(method.alpha, -1)), yt)

    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    estimate = hessian_vector_product(loss_at, params, method.alpha, v, r=1e-6)
    g_w = torch.autograd.grad(loss_at(), params, create_graph=True)
    exact = torch.autograd.grad(sum((g * t).sum() for g, t in zip(g_w, v)), [method.alpha])[0]
    assert torch.allclose(estimate, exact, rtol=1e-3, atol=1e-4 * float(exact.abs().max()))


def test_second_order_gradient_is_the_unrolled_hypergradient(digits):
    """DARTS Eq. 7 with Eq. 8's finite differences against the exact gradient of
    L_val(w - xi grad_w L_train(w, alpha), alpha) by double backward (float64; a step inside
    one smooth piece of the ReLU network, as above)."""
    method = started(digits, dtype=torch.float64, order=2, hvp_r=1e-6)
    params = [p for p in method.net.parameters() if p.requires_grad]
    xt, yt, xv, yv = method.x_train[:16], method.y_train[:16], method.x_valid[:16], method.y_valid[:16]
    xi = 0.025
    estimate, _, _ = method.alpha_gradient(xt, yt, xv, yv, xi)
    names = [n for n, p in method.net.named_parameters() if p.requires_grad]
    buffers = dict(method.net.named_buffers())
    g_train = torch.autograd.grad(F.cross_entropy(method._forward(xt), yt), params, create_graph=True)
    unrolled = {n: p - xi * g for n, p, g in zip(names, params, g_train)}
    logits = _weighted_call(method.net, {**unrolled, **buffers}, xv, F.softmax(method.alpha, -1))
    exact = torch.autograd.grad(F.cross_entropy(logits, yv), [method.alpha])[0]
    first = torch.autograd.grad(F.cross_entropy(method._forward(xv), yv), [method.alpha])[0]
    assert not torch.allclose(exact, first, rtol=1e-3)   # the unrolled term matters here
    assert torch.allclose(estimate, exact, rtol=2e-2, atol=1e-3 * float(exact.abs().max()))


def _weighted_call(net, tensors, x, weights):
    from torch.func import functional_call

    class Weighted(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, w):
            return self.inner.forward_weighted(x, w)

    prefixed = {f"inner.{k}": v for k, v in tensors.items()}
    return functional_call(Weighted(net), prefixed, (x, weights))


def test_derivation_is_the_argmax_per_edge_none_included_unless_excluded():
    alpha = torch.zeros(6, 5)
    alpha[:, 0] = 1.0                       # none strongest everywhere
    alpha[0, 3] = 2.0                       # except edge 0: nor_conv_3x3
    alpha[:, 1] += 0.5                      # skip second everywhere
    assert argmax_arch(alpha) == (3, 0, 0, 0, 0, 0)
    assert argmax_arch(alpha, exclude_none=True) == (3, 1, 1, 1, 1, 1)
    method = Darts()
    method.alpha = alpha
    assert method.derive() == (3, 0, 0, 0, 0, 0)
    method.exclude_none = True
    assert method.derive() == (3, 1, 1, 1, 1, 1)


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        Darts(order=3)
    with pytest.raises(ValueError):
        Darts(arch_lr=0)
    assert Darts().supernet_config().epochs == 50 and Darts(epochs=3).supernet_config().epochs == 3
