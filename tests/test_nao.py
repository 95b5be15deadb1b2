"""NAO (algorithms/nao.py) mechanics on tiny spaces."""

import pytest

from algorithms.nao import NAO, pairwise_accuracy
from tiny_space import TinySpace, drive, linear_values

SMALL = dict(emb_size=8, hidden_size=16, batch_size=32)



def test_pairwise_accuracy():
    assert pairwise_accuracy([1, 2, 3], [10, 20, 30]) == 1.0
    assert pairwise_accuracy([3, 2, 1], [10, 20, 30]) == 0.0
    # one of the three unordered pairs (both orders counted) is swapped
    assert pairwise_accuracy([1, 3, 2], [10, 20, 30]) == pytest.approx(2 / 3)
    assert pairwise_accuracy([1], [1]) is None


def test_decoder_reproduces_training_architectures():
    space = TinySpace((3, 2, 4))
    values = linear_values(space)
    algo = NAO(n_init=24, epochs=150, lr=0.02, **SMALL)
    drive(algo, space, values, 24)                 # the whole space, random order
    algo.train_model()
    toks = [space.tokens(space.arch(i)) for i in range(space.size)]
    d = algo.evaluate_model(toks, values)
    assert d["hamming"] == 0.0
    # and the predictor, trained on them, ranks them better than chance
    assert d["pairwise_accuracy"] > 0.7


def test_gradient_step_raises_the_prediction_and_proposals_are_new():
    space = TinySpace((4, 3, 4, 2))
    values = linear_values(space, seed=1)
    algo = NAO(n_init=30, top_k=8, epochs=60, lr=0.01, eta=1.0, **SMALL)
    drive(algo, space, values, 30)
    algo.train_model()
    import torch
    x = algo._tensor([algo._X[i] for i in range(8)])
    e = algo.model.encode(x).detach().requires_grad_(True)
    f = algo.model.predict(e)
    g, = torch.autograd.grad(f.sum(), e)
    with torch.no_grad():
        f2 = algo.model.predict(e + 0.01 * g)     # Eq. 2 with a small step
    assert torch.all(f2 >= f.detach() - 1e-6) and torch.any(f2 > f.detach())
    new, stats = algo.propose(8)
    seen = {space.identity(space.from_tokens(t)) for t in algo._X}
    ids = [space.identity(a) for a in new]
    assert len(ids) == len(set(ids)) and not set(ids) & seen
    assert stats["seeds"] == 8 and len(new) + stats["seeds_without_new"] == 8


def test_ask_tell_rounds_distinct_valid_and_diagnostics():
    invalid = [(0, 0, 0, 0), (1, 1, 1, 1), (3, 2, 3, 1)]
    space = TinySpace((4, 3, 4, 2), invalid=invalid)
    values = linear_values(space, seed=2)
    algo = NAO(n_init=16, top_k=6, epochs=6, lr=0.01, **SMALL)
    archs = drive(algo, space, values, 40)
    assert len(set(archs)) == 40 and not set(archs) & set(invalid)
    d = algo.diagnostics()
    assert d["rounds"] >= 3 and d["evaluated"] == 40
    held = [h for h in d["history"] if "heldout_hamming" in h]
    assert held and all(0 <= h["heldout_hamming"] <= 4 for h in held)
    assert d["symmetric_augmentation"] is False


def test_symmetric_variants_are_added_to_training_data():
    class SymSpace(TinySpace):
        def symmetric_variants(self, arch):     # positions 0 and 2 interchangeable
            return [] if arch[0] == arch[2] else [(arch[2], arch[1], arch[0])]
    space = SymSpace((3, 2, 3))
    algo = NAO(n_init=5, top_k=2, epochs=1, **SMALL)
    drive(algo, space, linear_values(space), 5)
    sizes = []
    real = algo._tensor
    algo._tensor = lambda rows: sizes.append(len(rows)) or real(rows)
    algo.train_model(epochs=1)
    n_sym = sum(1 for t in algo._X if t[0] != t[2])
    assert sizes[0] == 5 + n_sym


def test_same_seed_same_trajectory():
    space = TinySpace((4, 3, 4, 2))
    values = linear_values(space)
    kw = dict(n_init=10, top_k=4, epochs=4, **SMALL)
    a = drive(NAO(**kw), space, values, 22, seed=1)
    b = drive(NAO(**kw), space, values, 22, seed=1)
    c = drive(NAO(**kw), space, values, 22, seed=2)
    assert a == b and a != c
