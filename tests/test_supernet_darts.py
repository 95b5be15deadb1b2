"""DARTS networks (supernets/darts.py): shapes on 8x8 digits and 28x28 inputs, the skeleton
(where cells reduce, parameter counts of published cells), single path equal to the
stand-alone network holding the same weights, gradients only into the chosen path, the
all-operations and partial-channel modes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from oracles.darts_space import DARTS_OPS, EDGE_INDEX, DartsSpace  # noqa: E402
from supernets.darts import (DartsNetwork, DartsSupernet, FactorizedReduce, Identity, Zero,  # noqa: E402
                             build_network, channel_shuffle, reduction_layers)

torch.set_num_threads(1)

SPACE = DartsSpace()
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
#: P-DARTS's CIFAR-10 cell (Chen et al., "Progressive Differentiable Architecture Search",
#: ICCV 2019), as its code's genotypes.py prints it
PDARTS = ("Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), "
          "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], "
          "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
          "('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), "
          "('dil_conv_5x5', 3)], reduce_concat=range(2, 6))")


@pytest.fixture(scope="module")
def digits():
    """16 of scikit-learn's bundled 8x8 digits, scaled to [0, 1], and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images[:16] / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(d.target[:16])


@pytest.fixture(scope="module")
def trained(digits):
    """A C=4 supernet of 4 cells (normal, reduce, reduce, normal: a normal cell after a
    reduction too) after a few single-path SGD steps, so that weights and running statistics
    are not at their initial values; built once (building supernets is most of these tests'
    CPU time)."""
    torch.manual_seed(1)
    sup = DartsSupernet(4, 4, 1, 10)
    _train_a_little(sup, *digits)
    return sup


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_published_cells_have_their_published_parameter_counts():
    """CIFAR-10 evaluation networks (C=36, 20 cells, no auxiliary head): DARTS_V2 has the
    3.3M parameters of DARTS's Table 1 (Liu et al., ICLR 2019); the P-DARTS cell has
    3,433,798, the count a user of P-DARTS's code reported for it without the auxiliary head
    (github.com/chenxin061/pdarts, issue 7), which checks the operations and the skeleton
    down to the last parameter."""
    v2 = build_network(SPACE.parse(DARTS_V2), 36, 20, 3, 10)
    assert round(n_params(v2) / 1e6, 1) == 3.3
    assert n_params(v2) == 3_349_342
    assert n_params(build_network(SPACE.parse(PDARTS), 36, 20, 3, 10)) == 3_433_798


@pytest.mark.parametrize("layers, where", [(8, (2, 5)), (5, (1, 3)), (20, (6, 13))])
def test_cells_at_one_and_two_thirds_reduce(layers, where):
    assert reduction_layers(layers) == where
    net = build_network(SPACE.parse(DARTS_V2), 4, layers, 1, 10)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == list(where)
    # the cell after a reduction reads its older input through a factorized reduction
    for i, cell in enumerate(net.cells):
        assert isinstance(cell.preprocess0, FactorizedReduce) == (i - 1 in where)


@pytest.mark.parametrize("side", [8, 28, 7])
def test_output_shapes_on_digits_and_mnist_sized_inputs(side, digits):
    torch.manual_seed(0)
    x = digits[0] if side == 8 else torch.randn(4, 1, side, side)
    arch = SPACE.sample(np.random.default_rng(side))
    n = x.shape[0]
    assert build_network(arch, 4, 5, 1, 10)(x).shape == (n, 10)
    sup = DartsSupernet(4, 4, 1, 10)
    assert sup(x, arch).shape == (n, 10)
    a = torch.zeros(14, 8)
    assert sup.forward_weighted(x, a, a).shape == (n, 10)
    pc = DartsSupernet(8, 3, 1, 10, partial_channels=4)
    assert pc(x, arch).shape == (n, 10)
    assert pc.forward_weighted(x, a, a, torch.zeros(14), torch.zeros(14)).shape == (n, 10)
    # three input channels, another number of classes
    assert build_network(arch, 4, 3, 3, 7)(torch.randn(2, 3, side, side)).shape == (2, 7)


def _train_a_little(sup, x, y, steps=3, seed=0):
    """A few single-path SGD steps on random paths, so weights and running statistics are not
    at their initial values."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.SGD(sup.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(sup(x, sup.space.sample(rng)), y).backward()
        opt.step()


@pytest.mark.parametrize("track", [True, False], ids=["running-stats", "batch-stats"])
def test_single_path_equals_the_stand_alone_network_with_its_weights(digits, trained, track):
    x, y = digits
    if track:
        sup = trained
    else:
        torch.manual_seed(1)
        sup = DartsSupernet(4, 4, 1, 10, track_running_stats=False)
        _train_a_little(sup, x, y)
    for arch in [SPACE.parse(DARTS_V2), *(SPACE.sample(np.random.default_rng(i)) for i in range(2))]:
        net = sup.extract(arch)
        assert isinstance(net, DartsNetwork) and n_params(net) < n_params(sup)
        for mode in ("eval", "train"):
            getattr(sup, mode)()
            getattr(net, mode)()
            with torch.no_grad():
                torch.testing.assert_close(net(x), sup(x, arch), rtol=1e-5, atol=1e-5)
    # with other weights the outputs differ (the comparison can fail)
    other = DartsSupernet(4, 4, 1, 10, track_running_stats=track).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x, arch), sup.eval()(x, arch), atol=1e-3)
    sup.train()


def test_a_path_with_none_edges_runs_in_an_eight_operation_supernet(digits, trained):
    x, _ = digits
    space8 = DartsSpace(ops=DARTS_OPS)
    arch = space8.parse(DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)",
                                         "('none', 0), ('dil_conv_3x3', 2)"))
    sup = trained.eval()
    net = sup.extract(arch).eval()
    assert isinstance(net.cells[0].edges[6], Zero)
    with torch.no_grad():
        torch.testing.assert_close(net(x), sup(x, arch), rtol=1e-5, atol=1e-5)
    assert "none" not in sup.space.ops and sup.space.cardinality == SPACE.cardinality
    sup.train()
    with pytest.raises(Exception, match="excludes none"):
        DartsSupernet(4, 1, 1, 10, ops=SPACE.ops)(x, arch)


def test_gradients_flow_only_into_the_chosen_path(digits, trained):
    x, y = digits
    sup = trained
    sup.zero_grad(set_to_none=True)
    arch = SPACE.parse(DARTS_V2)
    torch.nn.functional.cross_entropy(sup(x, arch), y).backward()
    path = sup.path(arch)
    for cell in sup.cells:
        chosen = {(e, k) for _, e, k in path["reduce" if cell.reduction else "normal"]}
        for e, mixed in enumerate(cell.edges):
            for k, op in enumerate(mixed.ops):
                grads = [p.grad for p in op.parameters()]
                if (e, k) in chosen:
                    assert all(g is not None and torch.any(g != 0) for g in grads)
                else:
                    assert all(g is None for g in grads), (e, sup.ops[k])
        for p in list(cell.preprocess0.parameters()) + list(cell.preprocess1.parameters()):
            assert p.grad is not None
    assert sup.stem[0].weight.grad is not None and sup.classifier.weight.grad is not None


def test_the_weighted_mode_trains_every_operation_and_the_alphas(digits):
    x, y = digits
    torch.manual_seed(3)
    sup = DartsSupernet(4, 3, 1, 10)
    an = (1e-3 * torch.randn(14, 8)).requires_grad_()   # DARTS's initialisation
    ar = (1e-3 * torch.randn(14, 8)).requires_grad_()
    torch.nn.functional.cross_entropy(sup.forward_weighted(x, an, ar), y).backward()
    assert an.grad is not None and torch.all(an.grad.abs().sum(1) > 0)
    assert ar.grad is not None and torch.all(ar.grad.abs().sum(1) > 0)
    for cell in sup.cells:
        for mixed in cell.edges:
            for op in mixed.ops:
                assert all(p.grad is not None for p in op.parameters())


def test_one_hot_weights_give_the_single_path(digits, trained):
    """forward_weighted with the architecture's one-hot edge matrix as weights (no softmax)
    computes every operation but keeps only the path's: the output is the single path's."""
    x, _ = digits
    space8 = DartsSpace(ops=DARTS_OPS)
    sup = trained.eval()
    arch = SPACE.sample(np.random.default_rng(5))
    m = torch.tensor(space8.edge_matrix(arch), dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(sup.forward_weighted(x, m[0], m[1], softmax=False), sup(x, arch),
                                   rtol=1e-5, atol=1e-5)
    sup.train()


def test_gdas_hard_mode_computes_one_operation_per_edge_and_keeps_every_gradient(digits, trained):
    """GDAS's straight-through weights one_hot(h) - p.detach() + p: the value equals the
    weighted forward with the one-hot weights, only the chosen operations get weight gradients,
    every alpha gets one."""
    x, y = digits
    sup = trained
    sup.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(7)
    hard = [torch.randint(1, 8, (14,), generator=g) for _ in range(2)]
    alphas = [torch.randn(14, 8, generator=g).requires_grad_() for _ in range(2)]
    w = []
    for a, h in zip(alphas, hard):
        p = torch.softmax(a, -1)
        w.append(torch.nn.functional.one_hot(h, 8).float() - p.detach() + p)
    out = sup.forward_weighted(x, w[0], w[1], softmax=False, hard_normal=hard[0].tolist(),
                               hard_reduce=hard[1].tolist())
    with torch.no_grad():
        one_hot = [torch.nn.functional.one_hot(h, 8).float() for h in hard]
        torch.testing.assert_close(out, sup.forward_weighted(x, one_hot[0], one_hot[1], softmax=False),
                                   rtol=1e-4, atol=1e-5)
    torch.nn.functional.cross_entropy(out, y).backward()
    assert all(torch.all(a.grad != 0) for a in alphas)
    for cell in sup.cells:
        h = hard[1 if cell.reduction else 0]
        for e, mixed in enumerate(cell.edges):
            for k, op in enumerate(mixed.ops):
                assert all((p.grad is not None) == (k == int(h[e])) for p in op.parameters())
    sup.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="together"):
        sup.forward_weighted(x, w[0], w[1], hard_normal=hard[0].tolist())


def test_config_names_the_constructor_arguments():
    sup = DartsSupernet(4, 3, 1, 10, affine=True)
    c = sup.config()
    assert c["C"] == 4 and c["layers"] == 3 and c["bn_affine"] and c["ops"] == list(DARTS_OPS)
    again = DartsSupernet(c["C"], c["layers"], c["in_channels"], c["num_classes"], ops=c["ops"], affine=c["bn_affine"],
                          track_running_stats=c["bn_track_running_stats"], partial_channels=c["partial_channels"])
    assert again.config() == c and set(again.state_dict()) == set(sup.state_dict())


def test_partial_channels_send_a_quarter_through_the_operations(digits):
    x, y = digits
    torch.manual_seed(5)
    pc = DartsSupernet(8, 3, 1, 10, partial_channels=4)
    full = DartsSupernet(8, 3, 1, 10)
    assert n_params(pc) < n_params(full) / 4
    cell = pc.cells[0]
    e = EDGE_INDEX[(2, 0)]
    k = pc.ops.index("sep_conv_3x3")
    assert cell.edges[e].ops[k].op[0].op[1].in_channels == 8 // 4
    # edge normalisation: a softmax over each node's incoming edges; gradients reach betas
    bn = torch.zeros(14, requires_grad=True)
    a = torch.zeros(14, 8, requires_grad=True)
    torch.nn.functional.cross_entropy(pc.forward_weighted(x, a, a, bn, bn), y).backward()
    assert bn.grad is not None and torch.any(bn.grad != 0)
    with pytest.raises(ValueError, match="PC-DARTS"):
        pc.extract(SPACE.sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="partial_channels"):
        DartsSupernet(8, 1, 1, 10, partial_channels=3)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_the_supernet_batch_norms_have_no_affine_parameters_by_default():
    sup = DartsSupernet(4, 3, 1, 10)
    cell_bns = [m for c in sup.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(not m.affine for m in cell_bns)
    assert sup.stem[1].affine
    affine = DartsSupernet(4, 3, 1, 10, affine=True)
    assert all(m.affine for c in affine.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net = build_network(SPACE.parse(DARTS_V2), 4, 3, 1, 10)
    assert all(m.affine for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # evaluation pools have no batch norm; a skip is the identity, except from a reduction
    # cell's inputs, where it is a factorized reduction
    assert [c.reduction for c in net.cells] == [False, True, True]
    assert isinstance(net.cells[1].edges[0], torch.nn.MaxPool2d) and net.cells[1].edges[0].stride == 2
    assert isinstance(net.cells[0].edges[5], Identity) and isinstance(net.cells[1].edges[2], Identity)
    skip_in = SPACE.parse(DARTS_V2.replace("reduce=[('max_pool_3x3', 0)", "reduce=[('skip_connect', 0)"))
    assert isinstance(build_network(skip_in, 4, 3, 1, 10).cells[1].edges[0], FactorizedReduce)


def test_drop_path_drops_whole_samples_only_in_training(digits):
    x, _ = digits
    torch.manual_seed(6)
    net = build_network(SPACE.parse(DARTS_V2), 4, 4, 1, 10, drop_path_prob=0.5).eval()
    with torch.no_grad():
        a, b = net(x), net(x)
    torch.testing.assert_close(a, b)
    net.train()
    with torch.no_grad():
        c, d = net(x), net(x)
    assert not torch.allclose(c, d)


def test_bad_sizes_are_refused():
    for kwargs in ({"C": 7}, {"C": 0}, {"layers": 0}, {"in_channels": 0}, {"num_classes": 0}):
        args = {"C": 8, "layers": 5, "in_channels": 1, "num_classes": 10, **kwargs}
        with pytest.raises(ValueError):
            build_network(SPACE.parse(DARTS_V2), **args)
        with pytest.raises(ValueError):
            DartsSupernet(**args)
    with pytest.raises(ValueError, match="shape"):
        DartsSupernet(8, 1, 1, 10).forward_weighted(torch.zeros(1, 1, 8, 8), torch.zeros(14, 7), torch.zeros(14, 7))
