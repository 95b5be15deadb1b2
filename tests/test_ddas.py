"""DDAS mechanics (algorithms.ddas) on a tiny NB201 supernet (C=4, N=1) on a few dozen digits:
the DDPG target update and critic target, the actor's step against dQ/da, the reward of
Eq. 3.3 and its ablations, the discretisation, the exploration phases and noises of
Table 3.3, the Pareto frontier, determinism for a seed and resume after a kill; in the DARTS
space (the thesis's own, a tiny DARTS supernet: C=4, 3 cells): Algorithm 2's top-2 rule, the
thesis's similarity, the stand-alone DARTS network's cost, and runs from the command line,
deterministic and resumable."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

import numpy as np  # noqa: E402

from algorithms.ddas import (REWARDS, VARIANTS, ActionCoding, Ddas, DdpgAgent, Replay, Stagnation,  # noqa: E402
                             cell_cost, ddas_reward, discretise, discretise_darts, exploit_noise, one_hot, ou_step,
                             pareto_front, similar, soft_update)
from algorithms.one_shot import ONE_SHOT_REGISTRY, make_one_shot  # noqa: E402
from oracles.darts_space import DARTS_OPS, EDGE_INDEX, OPS, DartsArch, DartsSpace  # noqa: E402
from supernets.nb201 import build_network, count_params  # noqa: E402
# the fixtures take effect by being imported: ``one_torch_thread`` (autouse) and ``digits``
from one_shot_helpers import (assert_same_records, digits, one_torch_thread, resume_after_kill,  # noqa: E402,F401
                              start_method, torch_threads, tiny_darts_supernet, live_darts_oracle)

#: 1 warm-up epoch, then 3 exploration, 3 exploitation and 4 fourth-stage steps of 1 batch
TINY = dict(C=4, N=1, max_train=64, batch_size=32, epochs=1, explore_steps=3, exploit_steps=3, stage4_steps=4,
            minibatches=1, hidden=(16, 16), replay_batch=8, stag_steps=2, stage4_buffer=3)


def started(data, seed=0, **params) -> Ddas:
    return start_method(Ddas(**{**TINY, **params}), data, seed)


def finished(data, seed=0, **params) -> tuple[Ddas, list[dict]]:
    method = started(data, seed, **params)
    stats = [method.train_epoch() for _ in range(method.loop_epochs)]
    return method, stats


@pytest.fixture(scope="module")
def run(digits):
    # module fixtures are set up before the function-scoped thread setting: one thread here too
    with torch_threads(1):
        return finished(digits)


def agent(seed=0, **kw) -> DdpgAgent:
    args = dict(hidden=(8, 8), actor_lr=1e-2, critic_lr=1e-2, betas=(0.9, 0.99), mix=1e-3, gamma=0.99, seed=seed,
                device="cpu")
    return DdpgAgent(**{**args, **kw})


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 30, generator=g), torch.rand(n, 30, generator=g), torch.randn(n, generator=g),
            torch.rand(n, 30, generator=g))


# --- DDPG ------------------------------------------------------------------------------------------
def test_soft_update_mixes_the_target_towards_the_source():
    torch.manual_seed(0)
    src, tgt = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in tgt.parameters()]
    soft_update(tgt, src, 1e-3)
    for t, s, b in zip(tgt.parameters(), src.parameters(), before):
        assert torch.allclose(t, 1e-3 * s + (1 - 1e-3) * b, atol=1e-7)
        assert not torch.allclose(t, b)
    soft_update(tgt, src, 1.0)
    assert all(torch.equal(t, s) for t, s in zip(tgt.parameters(), src.parameters()))


def test_an_update_mixes_both_target_networks_in_by_the_coefficient():
    a = agent(mix=0.25)
    old = {k: [p.detach().clone() for p in getattr(a, k).parameters()] for k in ("actor_target", "critic_target")}
    a.update(*batch())
    for target, online in (("actor_target", "actor"), ("critic_target", "critic")):
        for t, o, b in zip(getattr(a, target).parameters(), getattr(a, online).parameters(), old[target]):
            assert torch.allclose(t, 0.25 * o + 0.75 * b, atol=1e-6)


def test_the_critic_target_is_r_plus_gamma_q_target_of_the_target_actor():
    a = agent(gamma=0.9)
    s, act, r, s2 = batch()
    with torch.no_grad():
        expected = r + 0.9 * a.critic_target(torch.cat([s2, a.actor_target(s2)], 1))[:, 0]
    assert torch.allclose(a.targets(r, s2), expected)
    # only the target networks count: moving the online networks leaves it, moving Q' does not
    with torch.no_grad():
        for p in list(a.actor.parameters()) + list(a.critic.parameters()):
            p.add_(1.0)
    assert torch.allclose(a.targets(r, s2), expected)
    with torch.no_grad():
        a.critic_target[-1].bias.add_(1.0)
    assert torch.allclose(a.targets(r, s2), expected + 0.9)


def test_a_critic_step_moves_q_towards_its_target():
    a = agent()
    s, act, r, s2 = batch()
    y = a.targets(r, s2)
    with torch.no_grad():
        before = float(((a.q(s, act) - y) ** 2).mean())
    closs, _ = a.update(s, act, r, s2)
    assert closs == pytest.approx(before, rel=1e-5)
    with torch.no_grad():
        assert float(((a.q(s, act) - y) ** 2).mean()) < before


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_actor_step_follows_dq_da(sign):
    """With a critic linear in the action, Q = w . a, dQ/da = w: every output of the actor
    moves towards the sign of w (its last bias exactly so: Adam's first step is lr * sign of
    the gradient), and Q(s, mu(s)) rises. The critic is frozen (learning rate 0)."""
    a = agent(critic_lr=0.0)
    w = sign * torch.linspace(-1, 1, 30)
    w[15] = 0.5 * sign                      # no zero entry
    critic = torch.nn.Linear(60, 1)
    with torch.no_grad():
        critic.weight.zero_()
        critic.weight[0, 30:] = w
        critic.bias.zero_()
    a.critic = critic
    a.critic_target = torch.nn.Linear(60, 1)
    a.critic_opt = torch.optim.Adam(critic.parameters(), lr=0.0)
    s, act, r, s2 = batch()
    bias = a.actor[-2].bias.detach().clone()
    with torch.no_grad():
        mu0, q0 = a.actor(s), a.q(s, a.actor(s)).mean()
    a.update(s, act, r, s2)
    assert torch.equal(torch.sign(a.actor[-2].bias.detach() - bias), torch.sign(w))
    with torch.no_grad():
        mu1 = a.actor(s)
        assert float(a.q(s, mu1).mean()) > float(q0)
        assert float(((mu1 - mu0) * w).sum(1).min()) > 0


# --- reward, discretisation, cost ------------------------------------------------------------------
def test_reward_is_half_the_accuracy_gain_and_half_the_loss_drop_and_the_ablations_drop_one():
    acc, acc_os, loss, prev = 0.8, 0.6, 0.5, 0.9
    assert ddas_reward(acc, acc_os, loss, prev) == pytest.approx(0.5 * 0.2 + 0.5 * 0.4)
    assert ddas_reward(acc, acc_os, loss, prev, *REWARDS["full"]) == pytest.approx(0.3)
    assert ddas_reward(acc, acc_os, loss, prev, *REWARDS["no-loss"]) == pytest.approx(0.1)
    assert ddas_reward(acc, acc_os, loss, prev, *REWARDS["no-acc"]) == pytest.approx(0.2)
    assert ddas_reward(0.5, 0.6, 1.0, 0.9) == pytest.approx(-0.1)       # worse on both counts


def test_rewards_in_a_run_chain_the_previous_loss_from_the_one_shot_model(run):
    method, stats = run
    first = next(s for s in stats if "acc_os" in s)
    samples = method.samples
    assert samples[0]["prev_loss"] == first["loss_os"]
    for prev, cur in zip(samples, samples[1:]):
        assert cur["prev_loss"] == prev["valid_loss"]
    for s in samples:
        assert s["reward"] == pytest.approx(ddas_reward(s["valid_acc"], first["acc_os"], s["valid_loss"],
                                                        s["prev_loss"]))


@pytest.mark.parametrize("reward", ["no-loss", "no-acc"])
def test_ablated_runs_reward_only_the_remaining_term(digits, reward):
    method, stats = finished(digits, reward=reward, exploit_steps=0, stage4_steps=0)
    acc_os = stats[1]["acc_os"]
    for s in method.samples:
        term = 0.5 * (s["valid_acc"] - acc_os) if reward == "no-loss" else 0.5 * (s["prev_loss"] - s["valid_loss"])
        assert s["reward"] == pytest.approx(term)


def test_discretisation_is_the_argmax_per_edge_none_included_ties_to_the_lower_operation():
    a = torch.zeros(6, 5)
    a[:, 0] = 0.9                           # none strongest ...
    a[1, 3] = 1.0                           # ... except on edge 1
    a[2, 2] = a[2, 4] = 0.95                # a tie on edge 2
    assert discretise(a.reshape(-1)) == (0, 3, 2, 0, 0, 0)
    arch = (1, 2, 3, 4, 0, 1)
    assert discretise(one_hot(arch)) == arch and one_hot(arch).sum() == 6


def test_cell_cost_counts_the_stand_alone_network():
    skip, conv = (1, 0, 0, 0, 1, 0), (3, 0, 0, 0, 1, 0)       # node 1 = x or conv3x3(x); output = node 1
    p_skip, m_skip = cell_cost(skip, 4, 1, (1, 8, 8), 10)
    p_conv, m_conv = cell_cost(conv, 4, 1, (1, 8, 8), 10)
    assert p_conv == count_params(build_network(conv, 4, 1, 1, 10))
    # one 3x3 convolution (and its affine batch norm) per cell, at 4/8/16 channels on 8x8/4x4/2x2
    assert p_conv - p_skip == sum(c * c * 9 + 2 * c for c in (4, 8, 16))
    assert m_conv - m_skip == sum(c * c * 9 * hw for c, hw in ((4, 64), (8, 16), (16, 4)))
    state = torch.get_rng_state()
    cell_cost((3, 3, 3, 3, 3, 3), 4, 1, (1, 8, 8), 10)
    assert torch.equal(state, torch.get_rng_state())          # the global generator is left alone


def test_pareto_front_keeps_the_undominated_points():
    costs = [5, 3, 3, 8, 1, 9, 8]
    accs = [0.7, 0.6, 0.65, 0.9, 0.2, 0.85, 0.9]
    assert pareto_front(costs, accs) == [4, 2, 0, 3]           # by cost; the equal (8, 0.9) once


def test_every_step_is_recorded_with_the_frontiers_so_far(run):
    method, stats = run
    search = [s for s in stats if s["phase"] != "warmup"]
    steps = [x for s in search for x in s["steps"]]
    assert [x["step"] for x in steps] == list(range(1, 11)) == [x["step"] for x in method.samples]
    last = search[-1]
    accs = [x["valid_acc"] for x in steps]
    assert last["pareto_params"] == [steps[i]["step"] for i in pareto_front([x["params"] for x in steps], accs)]
    assert last["pareto_macs"] == [steps[i]["step"] for i in pareto_front([x["macs"] for x in steps], accs)]
    for x in steps:
        assert (x["params"], x["macs"]) == cell_cost(x["arch"], 4, 1, (1, 8, 8), 10)


def test_derive_returns_the_sampled_cell_of_best_validation_accuracy(run):
    method, _ = run
    best = max(method.samples, key=lambda s: (s["valid_acc"], -s["valid_loss"], -s["step"]))
    assert method.derive() == tuple(best["arch"])


# --- phases and noise ------------------------------------------------------------------------------
def test_variants_are_table_3_3():
    assert {k: (Ddas(variant=k).explore_steps, Ddas(variant=k).exploit_steps, Ddas(variant=k).stage4_steps,
                Ddas(variant=k).exploit_noise) for k in VARIANTS} == {
        "nl": (500, 1000, 0, "uniform"), "g": (500, 1000, 0, "gaussian"), "4s": (500, 500, 500, "gaussian"),
        "rs": (1500, 0, 0, "gaussian")}
    m = Ddas(variant="g", exploit_steps=7)
    assert [m.phase(t) for t in (0, 499, 500, 506, 507)] == ["explore", "explore", "exploit", "exploit", "4s"]
    # loop epochs: the warm-up's plus ceil(steps / steps_per_epoch); the supernet's are the warm-up's
    assert (Ddas().loop_epochs, Ddas().supernet_config().epochs) == (75 + 1500, 75)
    short = Ddas(epochs=3, explore_steps=2, exploit_steps=1, stage4_steps=0, steps_per_epoch=2)
    assert (short.loop_epochs, short.supernet_config().epochs) == (5, 3)


def test_exploitation_noises_have_the_tables_scales():
    g = torch.Generator().manual_seed(0)
    nl = exploit_noise("uniform", g, 30_000, 1e-5, 0.05)
    assert float(nl.abs().max()) <= 1e-5 and float(nl.std()) == pytest.approx(1e-5 / 3 ** 0.5, rel=0.05)
    gauss = exploit_noise("gaussian", g, 30_000, 1e-5, 0.05)
    assert float(gauss.std()) == pytest.approx(0.05, rel=0.03) and abs(float(gauss.mean())) < 2e-3


def test_ornstein_uhlenbeck_steps_and_its_stationary_scale():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = torch.full((30,), 0.5)
    assert torch.allclose(ou_step(x, g1, 0.15, 0.2), x - 0.15 * x + 0.2 * torch.randn(30, generator=g2))
    x, xs = torch.zeros(30), []
    for _ in range(4000):
        x = ou_step(x, g1, 0.15, 0.2)
        xs.append(x)
    tail = torch.stack(xs[200:])
    assert float(tail.std()) == pytest.approx(0.2 / (1 - 0.85 ** 2) ** 0.5, rel=0.1)     # 0.38
    assert float(torch.corrcoef(torch.stack([tail[:-1, 0], tail[1:, 0]]))[0, 1]) > 0.7   # correlated in time


def test_stagnation_switches_the_noise_on_for_t_stag_steps_after_t_stag_similar_steps():
    assert similar((1, 2, 3, 4, 0, 1), (1, 2, 3, 0, 0, 2), 2) and not similar((1, 2, 3, 4, 0, 1), (0, 2, 3, 0, 0, 2), 2)
    st = Stagnation(steps=3, max_diff=2)
    a, b, far = (1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 2, 2), (3, 3, 3, 3, 3, 3)
    on = []
    seq = [a, b, far, a, a, b, a, a, a, a, a, a, a]
    prev = None
    for arch in seq:
        on.append(st.noise_on)
        st.observe(arch, prev)
        prev = arch
    # similar pairs: (a,b); far breaks; then a~a, a~b, b~a -> 3 in a row -> noise on for 3 steps;
    # counting restarts after it: the last three steps are similar again and switch it on again
    assert on == [False] * 7 + [True] * 3 + [False] * 3
    assert st.triggers == 2 and st.noise_on


def test_replay_samples_with_replacement_from_the_last_window():
    rep = Replay(5, "cpu")
    for i in range(8):
        rep.add(torch.full((30,), float(i)), torch.zeros(30), float(i), torch.zeros(30))
    assert len(rep) == 5
    g = torch.Generator().manual_seed(0)
    assert set(rep.sample(200, 3, g)[2].tolist()) == {5.0, 6.0, 7.0}
    assert set(rep.sample(400, 10**6, g)[2].tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}


def test_phases_in_a_run(digits):
    """Exploration: U(0, 1) actions, the agent untouched; exploitation: Gaussian noise, an
    update per step; fourth stage (every cell similar here): no noise until T_stag = 2 similar
    steps, then Ornstein-Uhlenbeck noise for 2 steps."""
    method = started(digits, stag_max_diff=6)
    for _ in range(1 + 3):                  # warm-up and the exploration phase
        method.train_epoch()
    untouched = started(digits, stag_max_diff=6)
    for k, v in untouched.agent.state_dict()["actor"].items():
        assert torch.equal(v, method.agent.state_dict()["actor"][k])
    stats = [method.train_epoch() for _ in range(3 + 4)]
    assert any(not torch.equal(v, method.agent.state_dict()["actor"][k])
               for k, v in untouched.agent.state_dict()["actor"].items())
    assert [s["noise"] for s in method.samples] == (["uniform(0,1)"] * 3 + ["gaussian"] * 3
                                                    + ["none", "none", "ou", "ou"])
    assert [s["phase"] for s in method.samples] == ["explore"] * 3 + ["exploit"] * 3 + ["4s"] * 4
    assert [s["critic_loss"] is None for s in stats] == [False] * 7 and stats[-1]["ou_triggers"] == 1
    # explore actions are U(0, 1): the stored actions of the first 3 steps lie in [0, 1)
    assert float(method.replay.a[:3].min()) >= 0 and float(method.replay.a[:3].max()) < 1


# --- runs --------------------------------------------------------------------------------------------
def test_a_seed_gives_the_same_run_and_another_seed_another(digits, run):
    again, _ = finished(digits)
    assert [s["arch"] for s in again.samples] == [s["arch"] for s in run[0].samples]
    for x, y in zip(again.samples, run[0].samples):
        for key in ("valid_acc", "valid_loss", "reward", "train_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-9, abs=1e-12)
    assert again.derive() == run[0].derive()
    other, _ = finished(digits, seed=1)
    assert [s["arch"] for s in other.samples] != [s["arch"] for s in run[0].samples]


def test_a_run_resumed_after_a_kill_equals_an_uninterrupted_one(nb201_oracle, tmp_path):
    from harness.runner import RunConfig
    cfg = RunConfig(algorithm="ddas", params=dict(TINY, hidden="16/16"), oracle="nb201/cifar10")
    res = resume_after_kill(cfg, nb201_oracle, tmp_path, kill_after=6)      # inside the exploitation phase
    assert res.ref_summary.get("failed") is None and len(res.ref_records["sample"]) == 11
    assert list(res.records["arch_id"]) == list(res.ref_records["arch_id"])
    steps = [[x for x in s.get("steps", [])] for s in res.summary["diagnostics"]["epochs"]]
    ref_steps = [[x for x in s.get("steps", [])] for s in res.ref_summary["diagnostics"]["epochs"]]
    assert [[x["arch"] for x in s] for s in steps] == [[x["arch"] for x in s] for s in ref_steps]
    for s, r in zip(sum(steps, []), sum(ref_steps, [])):
        assert s["valid_loss"] == pytest.approx(r["valid_loss"], abs=1e-5)
        assert s["reward"] == pytest.approx(r["reward"], abs=1e-5)
    a, b = res.ref_state, res.state
    for k in a["model"]:
        assert torch.allclose(a["model"][k].double(), b["model"][k].double(), atol=1e-5), k
    for net in ("actor", "critic", "actor_target", "critic_target"):
        for k in a["agent"][net]:
            assert torch.allclose(a["agent"][net][k], b["agent"][net][k], atol=1e-5), (net, k)
    assert torch.allclose(a["replay"]["r"], b["replay"]["r"], atol=1e-5) and a["replay"]["n"] == b["replay"]["n"]


def test_registered_and_parameters_checked():
    assert ONE_SHOT_REGISTRY["ddas"] == "algorithms.ddas:Ddas"
    m = make_one_shot("ddas", {"variant": "nl", "reward": "no-loss", "hidden": "32/32"})
    assert (m.variant, m.reward, m.hidden, m.exploit_noise, m.stage4_steps) == ("nl", "no-loss", (32, 32), "uniform", 0)
    for bad in ({"variant": "x"}, {"reward": "x"}, {"exploit_noise": "x"}, {"explore_steps": -1},
                {"explore_steps": 0, "exploit_steps": 0, "stage4_steps": 0}, {"target_mix": 0.0},
                {"gamma": 1.0}, {"minibatches": 0}):
        with pytest.raises(ValueError):
            Ddas(**bad)


# --- the DARTS space (the thesis's own) ---------------------------------------------------------------
def darts_weights(entries: dict[tuple[int, int, str], float], base: float = 0.1) -> np.ndarray:
    """A (14, 7) weight matrix of one cell: ``base`` everywhere but ``entries`` ((node, input,
    operation) -> weight)."""
    w = np.full((14, len(OPS)), base)
    for (j, i, op), v in entries.items():
        w[EDGE_INDEX[(j, i)], OPS.index(op)] = v
    return w


def test_darts_discretisation_keeps_each_nodes_two_strongest_edges_with_their_strongest_operation():
    normal = darts_weights({
        (2, 0, "sep_conv_3x3"): 0.9, (2, 1, "skip_connect"): 0.5,
        # an edge's strength is its strongest operation: (3, 0) loses to (3, 1) and (3, 2)
        (3, 0, "dil_conv_3x3"): 0.6, (3, 0, "sep_conv_5x5"): 0.55, (3, 1, "avg_pool_3x3"): 0.8,
        (3, 2, "sep_conv_5x5"): 0.7,
        # ties: between edges to the lower input, between operations to the lower one
        (4, 3, "dil_conv_5x5"): 0.95, (4, 0, "max_pool_3x3"): 0.3, (4, 0, "skip_connect"): 0.3,
        (4, 1, "skip_connect"): 0.3,
        (5, 4, "sep_conv_3x3"): 0.4, (5, 2, "skip_connect"): 0.35})
    # two strong operations on one edge give that edge once: a node's two inputs differ
    reduce = darts_weights({(2, 0, "dil_conv_3x3"): 0.99, (2, 0, "max_pool_3x3"): 0.98})
    action = torch.as_tensor(np.stack([normal, reduce])).reshape(-1)
    arch = discretise_darts(action)
    assert arch == DartsArch(
        normal=(("sep_conv_3x3", 0), ("skip_connect", 1), ("avg_pool_3x3", 1), ("sep_conv_5x5", 2),
                ("dil_conv_5x5", 3), ("max_pool_3x3", 0), ("sep_conv_3x3", 4), ("skip_connect", 2)),
        reduce=(("dil_conv_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1)))
    # the next state a^d is the cell's one-hot in the action's layout: 16 ones, and it discretises to itself
    coding = ActionCoding(DartsSpace())
    state = coding.state(arch)
    assert coding.size == 196 and state.shape == (196,) and float(state.sum()) == 16
    assert DartsSpace().identity(discretise_darts(state)) == DartsSpace().identity(arch)
    # with none among the operations, it is never chosen, however strong
    with_none = np.concatenate([np.full((2, 14, 1), 5.0), np.stack([normal, reduce])], axis=2)
    assert discretise_darts(torch.as_tensor(with_none).reshape(-1), DARTS_OPS) == arch


def algorithm_2(alpha: np.ndarray) -> list[tuple[int, int]]:
    """The thesis's Algorithm 2 on one cell's (14, |O|) alpha, as printed: per node the row-major
    argmax of its rows, then the argmax over its other rows; (edge row, operation) pairs."""
    out, start = [], 0
    for n in range(1, 5):
        block = alpha[start:start + n + 1]
        i1, j1 = np.unravel_index(np.argmax(block), block.shape)
        rest = block.copy()
        rest[i1] = -np.inf
        i2, j2 = np.unravel_index(np.argmax(rest), rest.shape)
        out += [(start + int(i1), int(j1)), (start + int(i2), int(j2))]
        start += n + 1
    return out


def test_darts_discretisation_is_the_theses_algorithm_2_on_random_actions():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        action = torch.rand(2 * 14 * 7, generator=g)
        arch = discretise_darts(action)
        cells = action.reshape(2, 14, 7).numpy()
        for cell, edges in zip(cells, (arch.normal, arch.reduce)):
            expected = [(row, OPS[j]) for row, j in algorithm_2(cell)]
            got = [(EDGE_INDEX[(2 + k // 2, i)], op) for k, (op, i) in enumerate(edges)]
            assert got == expected


def test_darts_cells_are_similar_when_fewer_than_6_of_their_16_pairs_differ():
    space = DartsSpace()
    a = space.sample(np.random.default_rng(0))

    def change_ops(arch, k):
        """``arch`` with the operations of its first ``k`` edges (normal, then reduce) changed."""
        cells = [list(arch.normal), list(arch.reduce)]
        for e in range(k):
            cell = cells[e // 8]
            op, i = cell[e % 8]
            cell[e % 8] = (OPS[(OPS.index(op) + 1) % len(OPS)], i)
        return DartsArch(tuple(cells[0]), tuple(cells[1]))

    assert Ddas(space="darts").stag_max_diff == 5 and Ddas().stag_max_diff == 2
    assert similar(a, change_ops(a, 5), 5) and not similar(a, change_ops(a, 6), 5)
    assert similar(a, a, 0)
    # an edge moved to another input is a differing pair too
    moved = list(a.normal)
    op, i = moved[7]                                     # node 5's second edge
    moved[7] = (op, next(x for x in range(5) if x not in (i, moved[6][1])))
    assert not similar(a, DartsArch(tuple(moved), a.reduce), 0) and similar(a, DartsArch(tuple(moved), a.reduce), 1)


def test_darts_cell_cost_counts_the_stand_alone_darts_network():
    from supernets.darts import build_network as build_darts
    space = DartsSpace()
    a = space.sample(np.random.default_rng(1))
    normal = list(a.normal)
    normal[1] = ("skip_connect", normal[1][1])
    skip = DartsArch(tuple(normal), a.reduce)
    normal[1] = ("sep_conv_3x3", normal[1][1])
    conv = DartsArch(tuple(normal), a.reduce)
    # C=4, 3 cells: cell 0 is the one normal cell, at width 4 on the 8x8 images
    p_skip, m_skip = cell_cost(skip, 4, 3, (1, 8, 8), 10)
    p_conv, m_conv = cell_cost(conv, 4, 3, (1, 8, 8), 10)
    assert p_conv == count_params(build_darts(conv, 4, 3, 1, 10))
    # sep_conv_3x3 = twice (depthwise 3x3, pointwise 1x1, affine batch norm) at 4 channels
    assert p_conv - p_skip == 2 * (4 * 9 + 4 * 4 + 2 * 4)
    assert m_conv - m_skip == 2 * (4 * 64 * 9 + 4 * 64 * 4)


#: a tiny DARTS-space run: 1 warm-up epoch, then 2 exploration, 2 exploitation and 2 fourth-stage steps
DARTS_TINY = dict(TINY, space="darts", N=3, max_train=32, explore_steps=2, exploit_steps=2, stage4_steps=2,
                  stag_steps=1)


@pytest.fixture(scope="module")
def darts_oracle(tmp_path_factory):
    """The data folder of a tiny untrained DARTS supernet and its ``supernet/tiny:mode=live``
    oracle, which names the DARTS space (tests/one_shot_helpers.py)."""
    data = tiny_darts_supernet(tmp_path_factory)
    return data, live_darts_oracle(data)


def darts_config():
    from harness.runner import RunConfig
    return RunConfig(algorithm="ddas", params=dict(DARTS_TINY, hidden="16/16"), oracle="supernet/tiny:mode=live")


def test_ddas_runs_in_the_darts_space_from_the_command_line(darts_oracle, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    from harness.cli import main
    from harness.results import ResultsStore
    data, _ = darts_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    spec = "ddas:" + ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}"
                              for k, v in DARTS_TINY.items())
    assert main(["run", "--oracle", "supernet/tiny:mode=live", "--algorithm", spec, "--seeds", "1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert "1 run(s) executed" in capsys.readouterr().out
    [path] = tmp_path.glob("runs/*/*/seed-*.parquet")
    rows = pq.read_table(path).to_pydict()
    assert rows["sample"] == list(range(1, 8))                  # 1 warm-up epoch and 6 steps
    space = DartsSpace()
    for text in rows.get("arch", rows["arch_id"]):
        space.parse(text)                                       # a valid cell pair of the 7 operations
    [(_, meta, _)] = list(ResultsStore(tmp_path).iter_runs(with_records=True))
    epochs = meta["summary"]["diagnostics"]["epochs"]
    steps = [x for e in epochs for x in e.get("steps", [])]
    assert [x["phase"] for x in steps] == ["explore"] * 2 + ["exploit"] * 2 + ["4s"] * 2
    # every step's cell, its Pareto data at the supernet's size, the best one derived
    for x in steps:
        arch = space.parse(x["arch"])
        assert (x["params"], x["macs"]) == cell_cost(arch, 4, 3, (1, 8, 8), 10)
    accs = [x["valid_acc"] for x in steps]
    assert epochs[-1]["pareto_params"] == [steps[i]["step"] for i in pareto_front([x["params"] for x in steps], accs)]
    best = max(steps, key=lambda x: (x["valid_acc"], -x["valid_loss"], -x["step"]))
    assert rows["arch_id"][-1] == space.identity(space.parse(best["arch"]))


def test_in_the_darts_space_a_seed_gives_the_same_run_and_a_killed_run_resumes(darts_oracle, tmp_path):
    """An uninterrupted run against one killed after epoch 4 (inside the exploitation phase)
    and resumed: the killed run's first epochs are a second run of the seed from scratch, the
    rest come from its checkpoint; record for record they equal the uninterrupted run's."""
    _, oracle = darts_oracle
    res = resume_after_kill(darts_config(), oracle, tmp_path, kill_after=4)
    assert res.ref_summary.get("failed") is None and len(res.ref_records["sample"]) == 7
    assert_same_records(res.ref_records, res.records)
    ref_steps = [x for e in res.ref_summary["diagnostics"]["epochs"] for x in e.get("steps", [])]
    steps = [x for e in res.summary["diagnostics"]["epochs"] for x in e.get("steps", [])]
    assert [x["arch"] for x in steps] == [x["arch"] for x in ref_steps] and len(steps) == 6
    for s, r in zip(steps, ref_steps):
        assert s["reward"] == pytest.approx(r["reward"], abs=1e-5)
        assert s["valid_loss"] == pytest.approx(r["valid_loss"], abs=1e-5)
    for k in res.ref_state["model"]:
        assert torch.allclose(res.ref_state["model"][k].double(), res.state["model"][k].double(), atol=1e-5), k
    for net in ("actor", "critic"):
        for k in res.ref_state["agent"][net]:
            assert torch.allclose(res.ref_state["agent"][net][k], res.state["agent"][net][k], atol=1e-5), (net, k)
    assert res.state["replay"]["s"].shape == (6, 196) and res.state["prev_arch"].startswith("Genotype(")
