"""MLPNAS (algorithms/mlpnas.py): the controller's mechanics on small spaces, and a short run
through the runner on a live MLP oracle that trains every network it is asked for."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")

from algorithms import make_algorithm  # noqa: E402
from algorithms.base import DONE, WAIT  # noqa: E402
from algorithms.mlpnas import PRESETS, MLPNAS  # noqa: E402
from oracles.live import BigramWeightBank  # noqa: E402
from oracles.mlp_space import BIGRAM_SHARING, bigram_keys  # noqa: E402
from oracles.errors import UserError  # noqa: E402
from oracles.mlp_space import END, MLPSpace, build_mlp  # noqa: E402
from oracles.oracle import Observation  # noqa: E402
from tiny_space import TinySpace  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def started(space, seed=0, **params) -> MLPNAS:
    algo = MLPNAS(**{"hidden_size": 16, **params})
    algo.start(space, np.random.default_rng(seed))
    return algo


def p_seq(algo, tokens) -> float:
    """The policy's probability of the episode ``tokens`` (its decisions only)."""
    lp = algo.log_probs([tokens])[0]
    return float(np.exp(lp[:algo.episode_length(tokens)].sum()))


def test_the_gradient_raises_the_rewarded_sequence_and_lowers_the_other():
    space = TinySpace((3, 2, 4))
    algo = started(space, batch_size=2, lr_decay=0.0)
    a, b = algo.ask(), algo.ask()
    assert algo.ask() is WAIT                       # the epoch's two networks are out
    ta, tb = space.tokens(a), space.tokens(b)
    before = p_seq(algo, ta), p_seq(algo, tb)
    algo.tell(a, Observation(1.0))
    assert algo.epoch == 0
    algo.tell(b, Observation(0.0))                  # the epoch is complete: one update
    assert algo.epoch == 1
    after = p_seq(algo, ta), p_seq(algo, tb)
    assert after[0] > before[0] and after[1] < before[1]


def test_policy_concentrates_on_the_best_network_of_a_small_space():
    """Rewards 1 for one sequence, 0.1 for the others: with the replayed dataset (§4.1) the
    controller keeps learning from the rewarded one after it was asked."""
    space = TinySpace((3, 2, 4))
    target = (2, 1, 3)
    algo = started(space, seed=3, batch_size=4, lr=0.05, lr_decay=0.0, controller_epochs=6)
    before = p_seq(algo, target)
    asked = []
    while (a := algo.ask()) is not DONE:
        asked.append(a)
        algo.tell(a, Observation(1.0 if a == target else 0.1))
    assert target in asked and algo.epoch == 6 and len(asked) == 24
    probs = [p_seq(algo, s) for s in itertools.product(range(3), range(2), range(4))]
    assert p_seq(algo, target) > 5 * before and p_seq(algo, target) == pytest.approx(max(probs))


def test_baseline_starts_at_the_first_epochs_mean_then_moves_with_every_reward():
    space = TinySpace((3, 2, 4))
    algo = started(space, batch_size=3, baseline_decay=0.8)
    rewards = [0.2, 0.5, 0.9, 0.4, 0.1, 0.6]
    for k, r in enumerate(rewards):
        algo.tell(algo.ask(), Observation(r))
        if k == 2:
            b = np.mean(rewards[:3])
            # the first epoch's advantages are taken against its mean, then the baseline moves
            for x in rewards[:3]:
                b = 0.8 * b + 0.2 * x
            assert algo.diagnostics()["baseline"] == pytest.approx(b)
    for x in rewards[3:]:
        b = 0.8 * b + 0.2 * x
    assert algo.diagnostics()["baseline"] == pytest.approx(b)


def test_discounting_is_algorithm_2_with_one_terminal_reward():
    """gamma^t * (G_t - baseline_t), G_t the discounted return of rewards 0, ..., 0, R."""
    space = MLPSpace()
    algo = started(space, gamma=0.7)
    algo._baseline = 0.25
    rewards, lengths = np.array([0.9, 0.1]), np.array([3, 9])
    got = algo.advantages(rewards, lengths)
    for k, (R, n) in enumerate(zip(rewards, lengths)):
        r = [0.0] * (n - 1) + [R]
        for t in range(9):
            if t >= n:
                assert got[k, t] == 0
                continue
            g = sum(0.7 ** (j - t) * r[j] for j in range(t, n))
            assert got[k, t] == pytest.approx(0.7 ** t * (g - 0.7 ** (n - 1 - t) * 0.25))
    assert np.allclose(got[0, :3], 0.7 ** 2 * 0.65) and np.allclose(got[1], 0.7 ** 8 * -0.15)
    # gamma = 1: plain REINFORCE, every decision weighted R - b
    flat = started(space, gamma=1.0)
    flat._baseline = 0.25
    assert np.allclose(flat.advantages(rewards, lengths)[1], -0.15)


def test_an_mlp_is_sampled_layer_by_layer_and_ends_at_the_end_word():
    space = MLPSpace()
    algo = started(space, seed=1)
    toks = algo.sample_tokens(300)
    for row in toks:
        arch = space.from_tokens(row)
        n = algo.episode_length(row)
        assert tuple(row) == space.tokens(arch)                  # nothing drawn after the end
        assert n == (len(arch) + 1 if len(arch) < 9 else 9)
    # each position's softmax covers the words it allows: position 0 the 28 dense layers
    lp = algo.log_probs([[t] + [END] * 8 for t in range(28)])
    assert np.exp(lp[:, 0]).sum() == pytest.approx(1.0, abs=1e-5)
    prefix = list(space.tokens(((64, "relu"), (32, "elu"))))[:2]
    rows = [prefix + [w] + [END] * 6 for w in range(30)]
    assert np.exp(algo.log_probs(rows)[:, 2]).sum() == pytest.approx(1.0, abs=1e-5)


def test_the_predictor_learns_the_scores_and_its_loss_reaches_the_shared_lstm():
    space = MLPSpace(max_hidden=3)
    algo = started(space, seed=2, predictor=True, batch_size=5, controller_epochs=8)
    score = {1: 0.9, 2: 0.6, 3: 0.3}
    asked = []
    while (a := algo.ask()) is not DONE:
        asked.append(a)
        algo.tell(a, Observation(score[len(a)]))
        if len(asked) == 5:
            first_mse = algo.diagnostics()["predictor_mse"]   # before any step: the first epoch's
    tokens = [space.tokens(a) for a in asked]
    mse = float(np.mean((algo.predict(tokens) - [score[len(a)] for a in asked]) ** 2))
    assert mse < first_mse / 4
    # same seed, same samples: the predictor's squared error changes the LSTM's update
    plain, pred = (started(space, seed=4, predictor=p, batch_size=2) for p in (False, True))
    for algo in (plain, pred):
        for _ in range(2):
            a = algo.ask()
            algo.tell(a, Observation(score[len(a)]))
    assert plain.epoch == pred.epoch == 1
    w0, w1 = plain.controller.lstm.weight_hh_l0, pred.controller.lstm.weight_hh_l0
    assert not torch.equal(w0, w1)
    with pytest.raises(UserError, match="predictor"):
        plain.predict(tokens[:1])


def test_schedule_ends_with_done_and_the_rate_decays_per_epoch():
    space = MLPSpace(max_hidden=2)
    algo = started(space, batch_size=3, controller_epochs=4, lr=0.01, lr_decay=0.1)
    n = 0
    while (a := algo.ask()) is not DONE:
        n += 1
        algo.tell(a, Observation(0.5 + 0.1 * len(a)))
    assert n == 12 and algo.epoch == 4
    assert algo.diagnostics()["lr_now"] == pytest.approx(0.01 / (1 + 0.1 * 4))
    endless = started(space, batch_size=2, controller_epochs=0)
    for _ in range(30):
        a = endless.ask()
        assert a is not DONE
        endless.tell(a, Observation(0.5))


def test_same_seed_same_asks_another_seed_others():
    space = MLPSpace()

    def asks(seed):
        algo = make_algorithm("mlpnas", {"hidden_size": "16", "batch_size": "4", "predictor": "true"})
        algo.start(space, np.random.default_rng(seed))
        out = []
        for _ in range(12):
            a = algo.ask()
            out.append(space.to_string(a))
            algo.tell(a, Observation(1.0 / len(a)))
        return out

    assert asks(0) == asks(0) and asks(0) != asks(1)


def test_presets_and_overrides():
    assert set(PRESETS) == {"plain", "predictor", "one_shot_predictor", "extended"}
    ext = MLPNAS(preset="extended")
    assert (ext.controller_epochs, ext.batch_size, ext.predictor, ext.one_shot) == (15, 30, True, True)
    assert MLPNAS(preset="predictor", batch_size=4).get_params()["batch_size"] == 4
    with pytest.raises(ValueError, match="preset"):
        MLPNAS(preset="magic")


def test_one_shot_refuses_an_oracle_that_does_not_share_weights():
    from types import SimpleNamespace

    from harness.runner import check_features
    algo = MLPNAS(preset="one_shot_predictor", hidden_size=8)
    assert algo.oracle_requirements() == {BIGRAM_SHARING}
    assert MLPNAS(preset="predictor").oracle_requirements() == frozenset()
    plain = SimpleNamespace(name="live/mlp-digits", features=frozenset())
    with pytest.raises(UserError, match="needs an oracle with bigram-weight-sharing; oracle live/mlp-digits has no"):
        check_features("mlpnas", algo, plain)
    check_features("mlpnas", algo, SimpleNamespace(name="live/mlp-digits:bigram_sharing=true",
                                                   features=frozenset({BIGRAM_SHARING})))
    check_features("mlpnas", MLPNAS(preset="predictor"), plain)


def test_bigram_bank_moves_the_weights_of_shared_layer_pairs_only():
    a = ((64, "relu"), "dropout", (32, "elu"))
    b = ((64, "relu"), (32, "elu"), (16, "tanh"))
    assert bigram_keys(a) == [("input", (64, "relu")), ((64, "relu"), (32, "elu")), ((32, "elu"), "output")]
    torch.manual_seed(0)
    net_a, net_b = build_mlp(a, 64, 10), build_mlp(b, 64, 10)
    bank = BigramWeightBank()
    assert bank.load(net_b, b) == 0
    bank.save(net_a, a)
    lin_a = [m for m in net_a.modules() if isinstance(m, torch.nn.Linear)]
    lin_b = [m for m in net_b.modules() if isinstance(m, torch.nn.Linear)]
    assert bank.load(net_b, b) == 2                  # input->64 relu and 64 relu->32 elu
    assert torch.equal(lin_b[0].weight, lin_a[0].weight) and torch.equal(lin_b[1].bias, lin_a[1].bias)
    assert lin_b[2].weight.shape == (16, 32) and lin_b[3].weight.shape == (10, 16)
    # the copies belong to the bank: training the first network further does not change them
    with torch.no_grad():
        lin_a[0].weight.add_(1.0)
    assert not torch.equal(bank.weights[("input", (64, "relu"))][0], lin_a[0].weight)


def test_a_short_run_on_a_live_oracle_trains_real_networks(tmp_path):
    """Through the runner, on MLPs trained on scikit-learn's digits (one epoch, up to two
    hidden layers): the schedule's 2 x 3 networks are asked, trained and told, then DONE."""
    require_module("sklearn")
    from harness.runner import RunConfig, run_one
    from oracles.live import build_oracle
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        oracle = build_oracle("live/mlp-digits", {"epochs": "1", "max_hidden": "2", "store": str(tmp_path)})
        params = {"hidden_size": 16, "batch_size": 3, "controller_epochs": 2, "predictor": True}
        rec, summary = run_one(RunConfig(algorithm="mlpnas", oracle=oracle.name, params=params, budget=20),
                               oracle, 0)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert summary.get("failed") is None and summary["stopped"] is None
    assert summary["n_distinct"] == 6 and len(rec["search"]) == 6
    assert np.all((rec["search"] > 0.1) & (rec["search"] <= 1.0))     # trained: better than chance
    assert sum(e["trained"] for e in oracle.log) == 6
    assert summary["diagnostics"]["controller_epochs_done"] == 2


def test_a_one_shot_run_trains_its_networks_from_the_runs_shared_bigrams(tmp_path):
    """The one-shot preset through the runner on a live oracle that shares bigram weights:
    later networks start from layers the run trained before, and nothing reaches the store."""
    require_module("sklearn")
    from harness.runner import RunConfig, run_one
    from oracles.live import build_oracle
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        oracle = build_oracle("live/mlp-digits", {"epochs": "1", "max_hidden": "2", "store": str(tmp_path),
                                                  "bigram_sharing": "true"})
        params = {"preset": "one_shot_predictor", "hidden_size": 16, "batch_size": 3, "controller_epochs": 2}
        rec, summary = run_one(RunConfig(algorithm="mlpnas", oracle=oracle.name, params=params, budget=20),
                               oracle, 0)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert summary.get("failed") is None and summary["n_distinct"] == 6
    assert any(e["shared_layers"] for e in oracle.log[1:])      # the input layer at least recurs
    assert oracle.rows() == []                                   # history-dependent: never stored
