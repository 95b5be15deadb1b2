"""The MLPNAS space (oracles/mlp_space.py): the paper's strings, tokens as the controller
samples them, moves, uniform sampling by depth, and the torch network it builds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from oracles.errors import InvalidArchitecture, UserError
from oracles.mlp_space import (DROPOUT, MAX_HIDDEN, VOCAB, MLPSpace, build_mlp, count_macs,
                               count_params)

S = MLPSpace()


def test_the_papers_table_rows_parse_and_print_back():
    # Minutoli & Ciranni, Tables 1, 4, 5, 6 (Table 5 prints activations unquoted)
    rows = [
        "(32, 'elu'), (512, 'sigmoid'), (32, 'elu'), (512, 'sigmoid'), (10, 'softmax')",
        "(128, 'elu'), (64, 'relu'), (64, 'relu'), (32, 'relu'), (512, 'sigmoid'), (64, 'tanh'), "
        "(64, 'relu'), (32, 'relu'), (256, 'relu'), (10, 'softmax')",
        "(256, 'elu'), (10, 'softmax')",
    ]
    for text in rows:
        arch = S.parse(text)
        assert S.to_string(arch) == text
    speakers = "(64, elu), (32, relu), (16, tanh), (512, relu), (32, elu), (16, sigmoid), (64, elu), (16, elu), " \
               "(512, relu), (10, softmax)"
    assert len(S.parse(speakers)) == 9
    wine = MLPSpace(num_classes=3)
    arch = wine.parse("(512, sigmoid), (512, relu), dropout, (512, relu), (256, elu), (256, elu), (256, tanh), "
                      "(512, elu), (256, elu), (3, softmax)")
    assert arch[2] == DROPOUT and len(arch) == 9
    assert wine.to_string(arch).startswith("(512, 'sigmoid'), (512, 'relu'), dropout, ")
    assert S.parse("(32, 'ELU')") == S.parse("(32,elu), (10, 'softmax')") == ((32, "elu"),)


@pytest.mark.parametrize("bad", ["", "(10, 'softmax')", "dropout, (32, 'elu')", "(33, 'elu')", "(32, 'gelu')",
                                 "(32, 'elu'),", "(32, 'elu') (64, 'relu')", "(32, 'elu'), (3, 'softmax')",
                                 ", ".join(["(8, 'relu')"] * 10), "3x", "not an architecture"])
def test_parse_refuses(bad):
    with pytest.raises(InvalidArchitecture):
        S.parse(bad)


def test_tokens_are_the_controllers_vocabulary():
    assert S.decisions == (28,) + (30,) * 8 and len(VOCAB) == 30
    arch = ((8, "sigmoid"), DROPOUT, (512, "elu"))
    t = S.tokens(arch)
    assert t == (0, 29, 28, 0, 0, 0, 0, 0, 0)
    assert S.from_tokens(t) == arch
    assert S.tokens(((512, "elu"),)) == (27,) + (0,) * 8 and S.tokens(((8, "tanh"), (8, "tanh")))[:2] == (1, 2)
    # padding after the end is ignored: every in-range sequence is a network
    assert S.from_tokens([0, 29, 28, 0, 5, 6, 7, 8, 9]) == arch
    assert S.from_tokens([3] + [0] * 8) == ((8, "elu"),)
    for bad in ([28] + [0] * 8, [0, 30] + [0] * 7, [1] * 8, [1] * 10, [-1] + [0] * 8):
        with pytest.raises(InvalidArchitecture):
            S.from_tokens(bad)
    assert len(S.from_tokens([5] * 9)) == MAX_HIDDEN
    rng = np.random.default_rng(3)
    for _ in range(200):   # random token sequences are all networks, and round-trip canonically
        t = [int(rng.integers(d)) for d in S.decisions]
        a = S.from_tokens(t)
        assert S.from_tokens(S.tokens(a)) == a


def test_encoding():
    arch = ((8, "sigmoid"), DROPOUT, (512, "elu"))
    x = S.encode(arch).reshape(9, 7)
    assert S.encoding_size == 63 and x.shape == (9, 7)
    assert x[0].tolist() == [1, 0, 3 / 9, 1, 0, 0, 0]
    assert x[1].tolist() == [0, 1, 0, 0, 0, 0, 0]
    assert x[2].tolist() == [1, 0, 1.0, 0, 0, 0, 1]
    assert not x[3:].any()
    rng = np.random.default_rng(0)
    archs = {S.sample(rng) for _ in range(200)}
    codes = {S.encode(a).tobytes() for a in archs}
    assert len(codes) == len(archs)  # distinct networks, distinct encodings


def test_neighbours_on_a_small_space_by_brute_force():
    small = MLPSpace(max_hidden=2)
    layers = VOCAB[1:]
    every = [(a,) for a in layers if a != DROPOUT] + [(a, b) for a, b in itertools.product(layers, layers)
                                                      if a != DROPOUT]
    assert len(every) == small.n_networks == 28 + 28 * 29

    def edit_distance_one(a, b):
        if len(a) == len(b):
            return sum(x != y for x, y in zip(a, b)) == 1
        short, long_ = sorted((a, b), key=len)
        return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))

    for arch in every[::37]:
        got = small.neighbours(arch)
        assert len(got) == len(set(got)) and arch not in got
        assert set(got) == {b for b in every if edit_distance_one(arch, b)}


def test_mutation_and_sampling():
    rng = np.random.default_rng(1)
    arch = S.sample(rng)
    for _ in range(50):
        new = S.mutate(arch, rng)
        assert new != arch and new in S.neighbours(arch)
        arch = new
    # uniform over networks: depth L drawn with weight 28 * 29^(L-1)
    small = MLPSpace(max_hidden=3)
    depths = np.bincount([len(small.sample(rng)) for _ in range(6000)], minlength=4)[1:]
    expect = np.array([28, 28 * 29, 28 * 29 * 29]) / (28 * (1 + 29 + 841))
    assert np.allclose(depths / 6000, expect, atol=0.02)
    by_depth = MLPSpace(sampler="depth")
    d = np.bincount([len(by_depth.sample(rng)) for _ in range(1800)], minlength=10)[1:]
    assert d.min() > 120 and d.max() < 280    # about 200 each
    assert all(S.sample(rng)[0] != DROPOUT for _ in range(500))
    assert S.size is None and not S.is_finite and S.n_networks == 29 ** 9 - 1


def test_bad_settings_refused():
    for kwargs in ({"num_classes": 1}, {"max_hidden": 0}, {"max_hidden": 10}, {"sampler": "x"}):
        with pytest.raises(UserError):
            MLPSpace(**kwargs)


def test_network_matches_its_counts():
    torch = pytest.importorskip("torch")
    arch = ((32, "elu"), DROPOUT, (512, "sigmoid"), (8, "tanh"), (16, "relu"))
    net = build_mlp(arch, 64, 10)
    assert sum(p.numel() for p in net.parameters()) == count_params(arch, 64, 10)
    assert count_macs(arch, 64, 10) == 64 * 32 + 32 * 512 + 512 * 8 + 8 * 16 + 16 * 10
    x = torch.zeros(5, 1, 8, 8)
    assert net(x).shape == (5, 10)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Flatten", "Linear", "ELU", "Dropout", "Linear", "Sigmoid", "Linear", "Tanh", "Linear",
                     "ReLU", "Linear"]
    assert net[3].p == 0.2


def test_table_space_of_an_exported_table():
    from oracles.mlp_space import MLPTableSpace
    rows = [((64, "relu"),), ((64, "elu"),), ((64, "relu"), DROPOUT), ((8, "tanh"), (16, "sigmoid"))]
    t = MLPTableSpace(MLPSpace(max_hidden=2), rows)
    assert t.size == 4 and t.is_finite and [t.index(t.arch(i)) for i in range(4)] == [0, 1, 2, 3]
    assert set(t.neighbours(rows[0])) == {rows[1], rows[2]}       # one edit away and in the table
    assert t.neighbours(rows[3]) == []
    rng = np.random.default_rng(0)
    assert {t.mutate(rows[3], rng) for _ in range(60)} == set(rows[:3])   # none: any other row
    assert t.parse(t.to_string(rows[2])) == rows[2] and t.from_tokens(t.tokens(rows[3])) == rows[3]
    for bad in (lambda: t.index(((512, "relu"),)), lambda: t.parse("(512, 'relu')"),
                lambda: t.from_tokens(S.tokens(((512, "relu"),))[:2]), lambda: t.arch(4)):
        with pytest.raises(InvalidArchitecture):
            bad()
    assert t.encode_all().shape == (4, 14) and t.tokens_all().tolist()[2] == [S.tokens(rows[2])[0], 29]
    with pytest.raises(UserError):
        MLPTableSpace(MLPSpace(), rows + rows[:1])
