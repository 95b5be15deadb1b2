"""NASES (algorithms/nases.py) mechanics on tiny spaces (with a tiny pretraining budget)."""

import itertools

import numpy as np
import pytest

from algorithms.nases import NASES, REWARD_FALLBACK, REWARD_FULL, nases_reward
from oracles.oracle import Observation
from tiny_space import TinySpace, drive, linear_values

# small autoencoder and pretraining so the tests stay fast; the mechanics are the same
SMALL = dict(layers=(64, 32, 16), pretrain_train=3000, pretrain_test=500, pretrain_batches=(16, 32, 64),
             pretrain_lr=5e-3)



def test_reward_formula_and_fallback():
    assert nases_reward(0.9, 0.95) == pytest.approx((2 * 0.9 - 0.95) ** 3)
    assert nases_reward(0.9, 0.9) == pytest.approx(0.9 ** 3)      # no generalisation gap
    assert nases_reward(0.8, 1.0) == pytest.approx(0.6 ** 3)      # over-fitting is penalised
    assert nases_reward(0.7, None) == pytest.approx(0.7 ** 3)
    assert nases_reward(0.7, float("nan")) == pytest.approx(0.7 ** 3)


def test_pool_rewards_use_train_accuracy_when_given_and_record_fallback_otherwise():
    space = TinySpace((3, 2, 4))
    values = linear_values(space)
    train = np.clip(values + 0.05, 0, 1)
    with_train = NASES(**SMALL)
    drive(with_train, space, values, 12, train=train)
    assert with_train.diagnostics()["reward"] == REWARD_FULL
    assert with_train.diagnostics()["reward_fallback"] is False
    expected = sorted(nases_reward(v, t) for v, t in zip(values, train))
    assert all(any(abs(r - e) < 1e-9 for e in expected) for r in with_train._pool_r)
    without = NASES(**SMALL)
    drive(without, space, values, 12)
    d = without.diagnostics()
    assert d["reward"] == REWARD_FALLBACK and d["reward_fallback"] is True
    assert all(any(abs(r - v ** 3) < 1e-9 for v in values) for r in without._pool_r)
    z = without.normalised_rewards()
    assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0, abs=1e-6)


def test_binning_round_trips_and_clips():
    space = TinySpace((3, 2, 4))
    algo = NASES(**SMALL)
    algo.start(space, np.random.default_rng(0))
    for t in itertools.product(range(3), range(2), range(4)):
        assert tuple(algo.to_tokens(algo.to_vector(t))) == t
    assert tuple(algo.to_tokens([0.0, 0.0, 0.0])) == (0, 0, 0)
    assert tuple(algo.to_tokens([30.0, 30.0, 30.0])) == (2, 1, 3)
    assert tuple(algo.to_tokens([-5.0, 99.0, 15.0])) == (0, 1, 2)
    assert tuple(algo.to_tokens([9.99, 14.99, 7.49])) == (0, 0, 0)   # bin edges 10 | 15 | 7.5


def test_controller_starts_as_the_pretrained_simulator_and_warmup_is_random():
    import torch
    space = TinySpace((3, 2, 4))
    values = linear_values(space)
    algo = NASES(**SMALL)
    algo.start(space, np.random.default_rng(0))
    from algorithms.nases import _PRETRAINED
    sim = next(v[0] for k, v in _PRETRAINED.items() if k[0] == 3 and k[2] == SMALL["layers"])
    for p, q in zip(algo.controller.parameters(), sim.parameters()):
        assert torch.equal(p, q) and p is not q
    for i in range(10):
        a = algo.ask()
        algo.tell(a, Observation(float(values[space.index(a)])))
    assert algo.n_updates == 0 and algo.n_random == 10
    # warm-up entries carry no controller action: the first update follows the first
    # architecture the controller itself proposed
    for _ in range(space.size - 10):      # bounded: a controller that never proposes fails
        if algo.n_random != len(algo._pool_r):
            break
        a = algo.ask()
        algo.tell(a, Observation(float(values[space.index(a)])))
    assert algo.n_random < len(algo._pool_r), "the controller never proposed an architecture"
    assert algo.n_updates == 1
    # the pretrained autoencoder reconstructs (better than predicting the mean)
    d = algo.diagnostics()
    assert d["pretrain_test_mse"] < d["pretrain_test_mse_mean_baseline"] / 3
    assert d["embedding_size"] == 5              # ceil(log2(24)) > round(0.33 * 3)


def test_policy_gradient_raises_probability_of_rewarded_bits():
    space = TinySpace((3, 2, 4))
    algo = NASES(lr=0.05, **SMALL)
    algo.start(space, np.random.default_rng(0))
    x = algo.to_vector((0, 0, 0))
    bits = np.ones(algo.probabilities(x).shape[1], dtype=np.float32)
    p0 = algo.probabilities(x)[0].copy()
    for r in (1.0, 0.0, 0.0):                    # one good, two bad entries for normalisation
        algo._add_pool(x, bits if r else 1 - bits, r)
    for _ in range(20):
        algo._update()
    assert np.all(algo.probabilities(x)[0] > p0)


def test_distinct_valid_asks_and_determinism():
    invalid = [(0, 0, 0), (2, 1, 3)]
    space = TinySpace((3, 2, 4), invalid=invalid)
    values = linear_values(space, seed=3)
    a = drive(NASES(**SMALL), space, values, 20, seed=1)
    b = drive(NASES(**SMALL), space, values, 20, seed=1)
    c = drive(NASES(**SMALL), space, values, 20, seed=2)
    assert a == b and a != c
    assert len(set(a)) == 20 and not set(a) & set(invalid)
