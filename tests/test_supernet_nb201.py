"""NB201 networks and supernet (supernets/ops.py, supernets/nb201.py): shapes, the `none` and
dead-node rule, single-path gradients, sub-networks inheriting the supernet's weights."""

import itertools

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")

from oracles.nb201_space import N_OPS, NB201Space  # noqa: E402
from supernets.nb201 import (NB201Supernet, build_network, count_params, live_edges,  # noqa: E402
                             subnet_state_dict)
from supernets.config import NB201_SEARCH_BN, STANDALONE_BN, BNOptions  # noqa: E402

torch.set_num_threads(1)
ALL = list(itertools.product(range(N_OPS), repeat=6))


def _randomise_bn(module, gen):
    # fresh BN layers have mean 0 / var 1 / weight 1 / bias 0: give every statistic and
    # affine parameter its own value so that a wrong key or a skipped buffer shows
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5, generator=gen)
                m.bias.data.uniform_(-0.5, 0.5, generator=gen)
            if m.track_running_stats:
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def test_shapes_for_digits_mnist_and_cifar():
    for shape, classes in (((1, 8, 8), 10), ((1, 28, 28), 10), ((3, 32, 32), 10)):
        net = build_network((3, 1, 2, 4, 3, 1), C=4, N=1, in_channels=shape[0], num_classes=classes)
        sup = NB201Supernet(4, 1, shape[0], classes)
        x = torch.randn(5, *shape)
        assert net(x).shape == (5, classes)
        assert sup(x, (3, 1, 2, 4, 3, 1)).shape == (5, classes)
        assert sup.forward_weighted(x, torch.full((6, 5), 0.2)).shape == (5, classes)
    # three stages of N cells with reductions between: 3N cells + 2 residual blocks
    assert len(NB201Supernet(4, 2, 1, 10).cells) == 3 * 2 + 2


def test_live_edges_rule():
    assert live_edges((0,) * 6) == (False,) * 6
    assert live_edges((1,) * 6) == (True,) * 6
    # node 1 dead (edge 1<-0 none): the edges leaving it (2<-1, 3<-1) are dropped
    assert live_edges((0, 3, 3, 2, 2, 1)) == (False, True, False, True, False, True)
    # node 2 does not reach the output (3<-2 none): the edges into it are dropped
    assert live_edges((3, 3, 3, 1, 1, 0)) == (True, False, False, True, True, False)
    # only the output counts: node 3 dead -> nothing is computed
    assert live_edges((3, 3, 3, 0, 0, 0)) == (False,) * 6
    # a live edge is never a none edge, and every live edge starts at an alive node
    for a in ALL[::37]:
        live = live_edges(a)
        assert all(a[e] != 0 for e in range(6) if live[e])
    with pytest.raises(ValueError):
        live_edges((1, 2, 3))
    with pytest.raises(ValueError):
        live_edges((1, 2, 3, 4, 5, 0))


def test_dead_output_gives_zero_cell_and_equal_networks_share_keys():
    x = torch.randn(3, 1, 8, 8)
    torch.manual_seed(0)
    sup = NB201Supernet(4, 1, 1, 10).eval()
    dead = sup.cells[0].forward_path(torch.ones(2, 4, 8, 8), (3, 3, 3, 0, 0, 0), live_edges((3, 3, 3, 0, 0, 0)))
    assert torch.equal(dead, torch.zeros(2, 4, 8, 8))
    # architectures that differ only in dropped edges are one network with one set of weights
    a, b = (0, 3, 3, 2, 2, 1), (0, 3, 4, 2, 3, 1)
    na, nb = build_network(a, 4, 1, 1, 10), build_network(b, 4, 1, 1, 10)
    assert na.state_dict().keys() == nb.state_dict().keys()
    assert torch.equal(sup(x, a), sup(x, b))
    assert not torch.equal(sup(x, a), sup(x, (0, 3, 3, 2, 2, 3)))


@pytest.mark.parametrize("bn", [NB201_SEARCH_BN, STANDALONE_BN, BNOptions(True, False), BNOptions(False, True)])
def test_subnetwork_inherits_supernet_weights(bn):
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    sup = NB201Supernet(4, 2, 1, 10, bn=bn)
    _randomise_bn(sup, gen)
    sup.eval()
    x = torch.randn(7, 1, 8, 8, generator=gen)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ALL), 12, replace=False):
        arch = ALL[i]
        net = build_network(arch, 4, 2, 1, 10, bn=bn)
        net.load_state_dict(subnet_state_dict(sup.state_dict(), net))
        net.eval()
        with torch.no_grad():
            np.testing.assert_allclose(net(x).numpy(), sup(x, arch).numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(sup.subnet(arch).eval()(x).numpy(), sup(x, arch).numpy(),
                                       rtol=1e-5, atol=1e-5)
        assert count_params(net) < count_params(sup)


def test_standalone_parameters_are_the_live_edges():
    base = count_params(build_network((0,) * 6, 4, 1, 1, 10))
    conv3 = count_params(build_network((3, 0, 0, 0, 0, 0), 4, 1, 1, 10))   # 1<-0 alive but cannot reach 3
    assert conv3 == base
    one = count_params(build_network((0, 0, 0, 3, 0, 0), 4, 1, 1, 10))    # one 3x3 conv edge per cell
    # per cell: 9*c*c weights + BN affine 2c, for c = 4, 8, 16
    assert one - base == sum(9 * c * c + 2 * c for c in (4, 8, 16))
    skip = count_params(build_network((0, 0, 0, 1, 0, 0), 4, 1, 1, 10))
    assert skip == base


def test_single_path_touches_only_its_parameters():
    torch.manual_seed(0)
    sup = NB201Supernet(4, 1, 1, 10)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    arch = (3, 0, 2, 1, 3, 4)
    torch.nn.functional.cross_entropy(sup(x, arch), y).backward()
    live = live_edges(arch)
    for name, p in sup.named_parameters():
        if ".edges." in name:
            e = int(name.split(".edges.e")[1].split(".")[0])
            op = name.split(".edges.e")[1].split(".")[1]
            on_path = live[e] and op == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                         "avg_pool_3x3")[arch[e]]
            assert (p.grad is not None) == on_path, name
        else:
            assert p.grad is not None, name


def test_weighted_one_hot_equals_single_path():
    torch.manual_seed(0)
    sup = NB201Supernet(4, 1, 1, 10).eval()
    x = torch.randn(4, 1, 8, 8)
    for arch in ((3, 1, 2, 4, 3, 2), (1, 1, 1, 1, 1, 1), (2, 4, 3, 3, 4, 2)):   # no none edge
        w = torch.nn.functional.one_hot(torch.tensor(arch), 5).float()
        with torch.no_grad():
            np.testing.assert_allclose(sup.forward_weighted(x, w).numpy(), sup(x, arch).numpy(),
                                       rtol=1e-5, atol=1e-6)
    # gradients reach the mixing weights
    w = torch.full((6, 5), 0.2, requires_grad=True)
    sup.train()
    sup.forward_weighted(x, w).sum().backward()
    assert w.grad is not None and torch.count_nonzero(w.grad[:, 1:]) > 0
    assert torch.all(w.grad[:, 0] == 0)
    with pytest.raises(ValueError):
        sup.forward_weighted(x, torch.ones(5, 6))


def test_space_and_bn_options():
    space = NB201Space()
    arch = space.arch(1234)
    assert build_network(arch, 4, 1, 1, 10).arch == arch
    assert BNOptions.parse("nb201") == NB201_SEARCH_BN
    assert BNOptions.parse("full") == STANDALONE_BN
    assert BNOptions.parse("affine=1,track=0") == BNOptions(True, False)
    assert BNOptions.parse(BNOptions(False, True).label()) == BNOptions(False, True)
    with pytest.raises(ValueError):
        BNOptions.parse("affine=2")
    with pytest.raises(ValueError):
        build_network(arch, 0, 1, 1, 10)


def test_gdas_hard_forward():
    torch.manual_seed(0)
    sup = NB201Supernet(4, 1, 1, 10).eval()
    x = torch.randn(4, 1, 8, 8)
    alpha = torch.randn(6, 5, requires_grad=True)
    p = torch.softmax(alpha, -1)
    arch = (3, 1, 2, 4, 3, 2)                                   # no none edge: no dead-node rule at play
    h = torch.nn.functional.one_hot(torch.tensor(arch), 5).float() - p.detach() + p
    out = sup.forward_weighted(x, h, hard=arch)
    with torch.no_grad():
        np.testing.assert_allclose(out.detach().numpy(), sup(x, arch).numpy(), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert torch.count_nonzero(alpha.grad) == alpha.numel()      # every logit learns
    # only the chosen operations' weights are used
    sup.zero_grad(set_to_none=True)
    sup.train()
    sup.forward_weighted(x, h.detach(), hard=arch).sum().backward()
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    for name, prm in sup.named_parameters():
        if ".edges.e" in name:
            e, op = name.split(".edges.e")[1].split(".")[:2]
            assert (prm.grad is not None) == (op == ops[arch[int(e)]]), name
    with pytest.raises(ValueError):
        sup.forward_weighted(x, h, hard=(1, 2))
