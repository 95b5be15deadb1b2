"""Mechanics of LaNAS (§3, Alg. 1 and 2) on tiny spaces and on NAS-Bench-201."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algorithms import make_algorithm
from algorithms import lanas as lanas_module
from algorithms.base import DONE
from algorithms.lanas import LaNAS, Tree
from oracles.errors import UserError
from oracles.nb201_space import NB201Space
from oracles.oracle import Observation

from optional import require_module
from tiny_space import TinySpace, linear_values


def reference_adam_steps(G, h, theta, m, v, t, epochs, lr, clip):
    """The plain reference for :func:`algorithms.lanas.adam_steps`, in place.

    One node at a time, one epoch at a time, as PyTorch's
    ``clip_grad_norm_(params, clip)`` followed by ``torch.optim.Adam(lr=lr)`` (Kingma &
    Ba, "Adam: A Method for Stochastic Optimization", Algorithm 1) would step it, on the
    full-batch MSE gradient ``G @ theta - h``.
    """
    b1, b2, eps = 0.9, 0.999, 1e-8
    for j in range(len(theta)):
        for _ in range(epochs):
            g = G[j] @ theta[j] - h[j]
            scale = clip / (np.sqrt(g @ g) + 1e-6)
            if scale < 1.0:
                g = g * scale
            t[j] += 1
            m[j] = b1 * m[j] + (1 - b1) * g
            v[j] = b2 * v[j] + (1 - b2) * g * g
            m_hat = m[j] / (1 - b1 ** float(t[j]))
            v_hat = v[j] / (1 - b2 ** float(t[j]))
            theta[j] = theta[j] - lr * m_hat / (np.sqrt(v_hat) + eps)


def _feed(algo, space, vals, n):
    """Ask/tell ``n`` times; returns the asked enumeration indices."""
    out = []
    for _ in range(n):
        a = algo.ask()
        i = space.index(a)
        out.append(i)
        algo.tell(a, Observation(float(vals[i])))
    return out


def _started(space, seed=0, **kw):
    algo = LaNAS(**kw)
    algo.start(space, np.random.default_rng(seed))
    return algo


def _members(algo):
    """Training-sample indices per node, recomputed from the learned tree and routing rule."""
    X, y = algo._Xbuf[:len(algo._y)], np.asarray(algo._y)
    t = algo._tree
    out = {0: np.arange(len(y))}
    for k in range(t.n_nodes):
        if t.split[k]:
            idx = out[k]
            pred = t.predict(k, X[idx])
            by_measured = algo.train_routing == "measured" and algo.split != "random"
            left = y[idx] >= t.thr[k] if by_measured else pred >= t.thr[k]
            out[2 * k + 1], out[2 * k + 2] = idx[left], idx[~left]
    return out


@pytest.mark.parametrize("routing", ["measured", "predicted"])
def test_left_child_holds_the_better_samples(routing):
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=3)
    algo = _started(space, n_init=60, n_select=1000, height=3, train_routing=routing,
                    split="lstsq")
    _feed(algo, space, vals, 60)
    t = algo._tree
    X, y = algo._Xbuf[:60], np.asarray(algo._y)
    assert t.split[0]
    # the threshold is the mean prediction on the node's samples
    assert t.thr[0] == pytest.approx(float(t.predict(0, X).mean()))
    mem = _members(algo)
    left, right = mem[1], mem[2]
    assert len(left) + len(right) == 60 and len(left) and len(right)
    key = y if routing == "measured" else t.predict(0, X)
    assert key[left].min() >= t.thr[0] > key[right].max()
    # UCB statistics restart from the routed samples (the paper's count reset)
    assert t.count[1] == len(left) and t.total[1] == pytest.approx(y[left].sum())
    # unevaluated architectures go left exactly when their prediction >= the threshold
    # (the routing computes it in another order: cells within rounding of it may differ)
    pred_all = t.predict(0, space.encode_all())
    in_left = np.isin(algo._leaf_of, [k for k in range(t.n_nodes) if _is_under(k, 1)])
    clear = np.abs(pred_all - t.thr[0]) > 1e-9
    assert np.array_equal(in_left[clear], (pred_all >= t.thr[0])[clear])


def _is_under(k, root):
    while k > root:
        k = (k - 1) // 2
    return k == root


def test_route_follows_the_predictions_of_every_splitting_node():
    rng = np.random.default_rng(0)
    t = Tree(height=4, dim=5)
    t.split[[0, 1, 2, 4, 5]] = True     # node 3 stays a leaf, so do 6's subtree and level 4
    t.W[:] = rng.standard_normal(t.W.shape)
    t.b[:] = rng.standard_normal(t.n_nodes)
    t.thr[:] = rng.standard_normal(t.n_nodes)
    X = rng.standard_normal((500, 5))
    expected, margin = [], []
    for x in X:
        k, m = 0, np.inf
        while t.split[k]:
            z = x @ t.W[k] + t.b[k] - t.thr[k]
            m = min(m, abs(z))
            k = 2 * k + 1 if z >= 0 else 2 * k + 2
        expected.append(k)
        margin.append(m)
    leaves = t.route(X)
    clear = np.array(margin) > 1e-9     # another summation order may flip a row on the line
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(leaves[clear], np.array(expected)[clear])
    assert set(leaves) == {3, 6, 9, 10, 11, 12}


def test_closed_form_fit_equals_least_squares():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=1)
    algo = _started(space, n_init=50, n_select=1000, height=2, split="lstsq")
    _feed(algo, space, vals, 50)
    X, y = algo._Xbuf[:50], np.asarray(algo._y)
    Xa = np.hstack([X, np.ones((50, 1))])
    ref = Xa @ np.linalg.lstsq(Xa, y, rcond=None)[0]
    np.testing.assert_allclose(algo._tree.predict(0, X), ref, atol=1e-9)


def test_ucb_prefers_an_unvisited_child_and_ties_go_right():
    t = Tree(height=2, dim=1)
    t.split[0] = True
    algo = LaNAS(c=0.1)
    algo._tree, algo._use_table = t, False
    algo._dead = np.zeros(3, dtype=bool)
    algo._n_fallbacks = 0
    t.count[:] = [5, 5, 0]
    t.total[:] = [4.0, 4.0, 0.0]      # left: mean 0.8, visited; right: never visited
    assert algo._select() == 2
    t.count[:] = [5, 0, 5]
    t.total[:] = [1.0, 0.0, 1.0]
    assert algo._select() == 1
    t.count[:] = [10, 5, 5]
    t.total[:] = [8.0, 4.0, 4.0]      # equal UCB values: Alg. 2 line 16 goes right
    assert algo._select() == 2
    t.total[:] = [8.0, 4.5, 4.0]      # left better
    assert algo._ucb(1, 0) == pytest.approx(0.9 + 0.2 * math.sqrt(2 * math.log(10) / 5))
    assert algo._select() == 1


def test_empty_leaf_falls_back_to_a_non_empty_leaf():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=4)
    algo = _started(space, n_init=40, n_select=10_000, height=2, c=0.0, split="lstsq")
    _feed(algo, space, vals, 40)
    t = algo._tree
    # make the left leaf (the UCB choice with c=0 once it has the higher mean) empty
    t.count[:] = [10, 5, 5]
    t.total[:] = [5.0, 4.0, 1.0]
    left_members = np.flatnonzero(algo._leaf_of == 1)
    for i in left_members:
        if not algo._evaluated[i]:
            algo.tell(space.arch(int(i)), Observation(0.0))
    t.count[:] = [10, 5, 5]
    t.total[:] = [5.0, 4.0, 1.0]
    a = algo.ask()
    assert algo._leaf_of[space.index(a)] == 2
    assert algo.diagnostics()["empty_leaf_fallbacks"] >= 1


def test_table_draws_are_unevaluated_members_of_the_selected_leaf():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=5)
    algo = _started(space, n_init=20, n_select=5, height=4)
    _feed(algo, space, vals, 20)
    for _ in range(60):
        a = algo.ask()
        i = space.index(a)
        leaf = algo._pending[space.identity(a)]
        assert algo._leaf_of[i] == leaf and not algo._evaluated[i]
        cons = algo._tree.constraints(leaf)
        assert Tree.satisfies(space.encode(a)[None], cons)[0]
        algo.tell(a, Observation(float(vals[i])))


def test_counts_reset_at_every_rebuild():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=6)
    algo = _started(space, n_init=10, n_select=7, height=3)
    _feed(algo, space, vals, 10)
    assert algo._n_rebuilds == 1 and algo._tree.count[0] == 10
    _feed(algo, space, vals, 6)
    assert algo._tree.count[0] == 16 and algo._n_rebuilds == 1  # back-propagated visits
    _feed(algo, space, vals, 1)
    assert algo._n_rebuilds == 2
    mem = _members(algo)
    for k, idx in mem.items():
        assert algo._tree.count[k] == len(idx)


def _to_optimum(space, vals, seed, **kw):
    """Asks until the best architecture is drawn; a bounded loop (a search that never draws
    it fails here instead of hanging the test run)."""
    best = int(np.argmax(vals))
    algo = _started(space, seed=seed, **kw)
    out = []
    for _ in range(space.size):
        out += _feed(algo, space, vals, 1)
        if out[-1] == best:
            return out
    pytest.fail(f"LaNAS {kw} (seed {seed}) did not draw the optimum in {space.size} asks")


@pytest.mark.parametrize("kw", [{}, {"split": "random"}, {"split": "lstsq"}])
def test_never_repeats_exhausts_the_space_and_is_deterministic(kw):
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=7)

    def traj(seed):
        algo = _started(space, seed=seed, **kw)
        out = _feed(algo, space, vals, space.size)
        assert algo.ask() is DONE           # every architecture asked once, then done
        return out

    t1 = traj(11)  # {}: the default, the authors' preset with Adam-fitted nodes
    assert sorted(t1) == list(range(space.size))
    assert t1 == traj(11) and t1 != traj(12)


def test_learned_splits_find_the_optimum_in_fewer_samples_than_random_search():
    """Any search that never repeats finds the optimum of 144 architectures within 144
    asks, so that proves nothing; the number of asks does. Random search needs (144 + 1) / 2
    = 72.5 on average (standard error of a 20-run mean: 9.3); LaNAS with least-squares
    splits on this linear landscape needs 20.8 (seeds 0-19, measured; at most 34). Planted
    bugs measured: UCB choosing the worse child 124, drawing outside the selected leaf 62."""
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=7)
    samples = [len(_to_optimum(space, vals, seed, split="lstsq")) for seed in range(20)]
    assert np.mean(samples) < 36, samples


def test_random_split_ignores_accuracy_and_adam_moves_slowly():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=8)
    algo = _started(space, n_init=30, n_select=1000, height=2, split="random")
    _feed(algo, space, vals, 30)
    t = algo._tree
    X = algo._Xbuf[:30]
    mem = _members(algo)
    assert t.predict(0, X)[mem[1]].min() >= t.thr[0] > t.predict(0, X)[mem[2]].max()
    # Adam at lr 1e-5: 200 epochs move each parameter by at most ~200 * 1e-5
    algo = _started(space, n_init=30, n_select=1000, height=2, split="adam",
                    adam_epochs_first=200)
    _feed(algo, space, vals, 30)
    st = algo._adam[0]
    assert st["t"] == 200
    lim = math.sqrt(6 / (space.encoding_size + 1))
    assert np.all(np.abs(st["theta"][:-1]) <= lim + 200 * 1e-5 * 1.01)


def test_presets_and_overrides():
    a = LaNAS()
    assert (a.preset, a.c, a.n_select, a.n_init, a.height, a.split) == ("authors", 0.1, 20, 10, 5, "adam")
    assert (a.adam_lr, a.adam_clip, a.adam_epochs_first, a.adam_epochs_later) == (1e-5, 5.0, 20000, 3000)
    p = make_algorithm("lanas", {"preset": "paper"})
    assert (p.c, p.n_select, p.n_init, p.height, p.split) == (0.5, 100, 2000, 5, "lstsq")
    o = make_algorithm("lanas", {"preset": "paper", "c": "0.2", "split": "random"})
    assert (o.c, o.n_select, o.split) == (0.2, 100, "random")
    assert o.get_params()["preset"] == "paper"
    assert make_algorithm("lanas", {"split": "lstsq"}).get_params()["split"] == "lstsq"
    assert make_algorithm("lanas", {}).get_params()["split"] == "adam"
    for bad in ({"preset": "fast"}, {"split": "mlp"}, {"height": "0"}, {"adam_lr": "0"},
                {"adam_epochs_later": "-1"}):
        with pytest.raises(UserError):
            make_algorithm("lanas", bad)


# ---------------------------------------------------------------- the Adam node fits
def _node_problems(seed, sizes=(12, 80, 400), scale=1.0, d=30):
    """Full-batch MSE problems on NB201-like one-hot encodings (6 edges x 5 ops)."""
    rng = np.random.default_rng(seed)
    G, h = [], []
    for n in sizes:
        X = np.zeros((n, d))
        for e in range(d // 5):
            X[np.arange(n), 5 * e + rng.integers(5, size=n)] = 1.0
        y = scale * (0.85 + 0.05 * rng.standard_normal(n))
        Xa = np.hstack([X, np.ones((n, 1))])
        G.append(Xa.T @ Xa * (2.0 / n))
        h.append(Xa.T @ y * (2.0 / n))
    a = math.sqrt(6.0 / (d + 1))
    theta = np.hstack([rng.uniform(-a, a, (len(sizes), d)),
                       rng.uniform(-1 / math.sqrt(d), 1 / math.sqrt(d), (len(sizes), 1))])
    return np.stack(G), np.stack(h), theta


def _state(theta):
    k, p = theta.shape
    return [theta.copy(), np.zeros((k, p)), np.zeros((k, p)), np.zeros(k, dtype=np.int64)]


# Rounding differs between the compiled loop and numpy's BLAS (and between CPUs), never the
# arithmetic: after 26,000 steps the two agree to a few ulps (measured <= 4e-16 on weights of
# size 0.1-0.5); 1e-12 leaves room for other CPUs and still catches any change of rule.
ATOL = 1e-12


def test_fast_adam_agrees_with_the_plain_reference():
    G, h, theta = _node_problems(0)
    fast, ref = _state(theta), _state(theta)
    for epochs in (20000, 3000):  # a node's first fit, then a warm-started rebuild
        lanas_module.adam_steps(G, h, *fast, epochs, 1e-5, 5.0)
        reference_adam_steps(G, h, *ref, epochs, 1e-5, 5.0)
        np.testing.assert_allclose(fast[0], ref[0], rtol=0, atol=ATOL)
        np.testing.assert_allclose(fast[1], ref[1], rtol=0, atol=ATOL)
        np.testing.assert_allclose(fast[2], ref[2], rtol=1e-9, atol=0)
        np.testing.assert_array_equal(fast[3], ref[3])
    # lr 1e-5: the weights moved (by up to ~0.2), but nowhere near least squares
    assert 0.05 < np.abs(fast[0] - theta).max() < 23000 * 1e-5 * 1.01


@pytest.mark.parametrize("scale", [1.0, 100.0])  # 100: gradient norm > 5, clipping active
def test_adam_steps_is_torch_adam_on_a_linear_layer(scale):
    """What the authors' code runs: nn.Linear, MSELoss, clip_grad_norm_(5), Adam(lr=1e-5)."""
    torch = require_module("torch")   # the reference here is torch's own Adam
    G, h, theta = _node_problems(1, sizes=(60,), scale=scale)
    rng = np.random.default_rng(1)  # the same data again, as samples
    X = np.zeros((60, 30))
    for e in range(6):
        X[np.arange(60), 5 * e + rng.integers(5, size=60)] = 1.0
    y = scale * (0.85 + 0.05 * rng.standard_normal(60))
    lin = torch.nn.Linear(30, 1, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(theta[:, :30]))
        lin.bias.copy_(torch.from_numpy(theta[0, 30:]))
    opt = torch.optim.Adam(lin.parameters(), lr=1e-5)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    norms = []
    for _ in range(800):
        opt.zero_grad()
        torch.nn.functional.mse_loss(lin(Xt)[:, 0], yt).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(lin.parameters(), 5.0)))
        opt.step()
    fast = _state(theta)
    lanas_module.adam_steps(G, h, *fast, 800, 1e-5, 5.0)
    ref = np.hstack([lin.weight.detach().numpy()[0], lin.bias.detach().numpy()])
    np.testing.assert_allclose(fast[0][0], ref, rtol=0, atol=ATOL * scale)
    assert (max(norms) > 5.0) == (scale > 1)


def test_zero_padding_leaves_the_fit_unchanged():
    G, h, theta = _node_problems(2)
    plain = _state(theta)
    lanas_module.adam_steps(np.ascontiguousarray(G), h, *plain, 2000, 1e-5, 5.0)
    k, p = theta.shape
    Gp, hp = np.zeros((k, 32, 32)), np.zeros((k, 32))
    Gp[:, :p, :p], hp[:, :p] = G, h
    padded = _state(np.hstack([theta, np.zeros((k, 1))]))
    lanas_module.adam_steps(Gp, hp, *padded, 2000, 1e-5, 5.0)
    np.testing.assert_allclose(padded[0][:, :p], plain[0], rtol=0, atol=ATOL)
    assert not padded[0][:, p:].any() and not padded[2][:, p:].any()


def _fit_by_tell(space, vals, adam_steps, perturb=None, split="adam"):
    """A LaNAS told a fixed list of architectures: 30 to start, then two rebuilds."""
    algo = _started(space, seed=5, split=split, n_init=30, n_select=25, height=3,
                    adam_epochs_first=3000, adam_epochs_later=500)
    order = np.random.default_rng(9).permutation(space.size)[:80]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lanas_module, "adam_steps", adam_steps)
        if perturb is not None:
            mp.setattr(LaNAS, "_normal_equations", perturb)
        for i in order:
            algo.tell(space.arch(int(i)), Observation(float(vals[i])))
    assert algo._n_rebuilds == 3
    return algo


def test_lanas_node_fits_agree_with_the_reference_optimiser():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=10)
    fast = _fit_by_tell(space, vals, lanas_module.adam_steps)
    ref = _fit_by_tell(space, vals, reference_adam_steps)
    assert fast._adam.keys() == ref._adam.keys() and len(fast._adam) >= 2
    for k, st in fast._adam.items():
        np.testing.assert_allclose(st["theta"], ref._adam[k]["theta"], rtol=0, atol=ATOL)
        assert st["t"] == ref._adam[k]["t"] == (3000 + 500 * 2 if k == 0 else st["t"])
    np.testing.assert_allclose(fast._tree.W, ref._tree.W, rtol=0, atol=ATOL)


@pytest.mark.parametrize("split", ["adam", "lstsq"])
def test_perturbing_the_normal_equations_plays_another_cpu(split):
    """The hook a cross-machine test uses: a few ulps in ``_normal_equations`` reach the fit."""
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=11)
    original = LaNAS._normal_equations

    def few_ulps(X, y):
        gram, moment = original(X, y)
        return gram * (1 + 8 * np.finfo(float).eps), moment

    a = _fit_by_tell(space, vals, lanas_module.adam_steps, split=split)
    b = _fit_by_tell(space, vals, lanas_module.adam_steps, perturb=staticmethod(few_ulps), split=split)
    assert not np.array_equal(a._tree.W, b._tree.W)
    np.testing.assert_allclose(a._tree.W, b._tree.W, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def nb201_values():
    from conftest import NB201_DIR, require
    import pandas as pd
    df = pd.read_csv(require(NB201_DIR) / "nb201_200ep.csv", usecols=["arch_str", "cifar10_valid"])
    return NB201Space(list(df["arch_str"])), df["cifar10_valid"].to_numpy() / 100.0


@pytest.mark.slow
def test_whole_runs_with_the_reference_optimiser_follow_the_same_trajectories(nb201_env):
    """Default runs to the optimum on nb201/cifar10, fast Adam loop vs the plain reference.

    The two round differently, so a run may legitimately diverge where a prediction lies
    within rounding of a node's threshold. Measured on the project's AMD machine, seeds
    0-29: 28 identical; the two others are the long runs (seed 24: 1,912 vs 1,891 samples,
    apart from sample 812; seed 26: 3,608 vs 3,639, from sample 639). Seeds:
    ``LANAS_AGREEMENT_SEEDS`` (default 4; ~30 s of CPU per seed).
    """
    import os
    from harness.runner import RunConfig, run_one
    from oracles.registry import load_oracle
    oracle = load_oracle("nb201/cifar10")
    cfg = RunConfig(algorithm="lanas", params={}, oracle="nb201/cifar10", until_optimum=True)
    seeds = range(int(os.environ.get("LANAS_AGREEMENT_SEEDS", "4")))
    same = 0
    for seed in seeds:
        fast = run_one(cfg, oracle, seed)[0]["arch_index"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lanas_module, "adam_steps", reference_adam_steps)
            ref = run_one(cfg, oracle, seed)[0]["arch_index"]
        same += np.array_equal(fast, ref)
    print(f"identical trajectories: {same} of {len(seeds)}")
    assert same >= 0.75 * len(seeds)


@pytest.mark.parametrize("sampler", ["mcmc", "rejection"])
def test_polytope_sampler_draws_land_in_the_selected_leaf_on_nb201(nb201_values, sampler):
    space, vals = nb201_values
    # c=1 explores, so draws come from several leaves
    algo = _started(space, seed=3, sampler=sampler, n_init=200, n_select=15, height=4, c=1.0)
    _feed(algo, space, vals, 200)
    seen = set()
    leaves = set()
    for _ in range(40):
        a = algo.ask()
        leaf = algo._pending[space.identity(a)]
        x = space.encode(a)[None]
        cons = algo._tree.constraints(leaf)
        assert Tree.satisfies(x, cons)[0]                             # every path constraint
        if np.abs(x @ cons[0].T + cons[1]).min() > 1e-9:  # (routing sums in another order)
            assert algo._tree.route(x)[0] == leaf                     # i.e. the right leaf
        assert space.identity(a) not in seen
        seen.add(space.identity(a))
        leaves.add(leaf)
        algo.tell(a, Observation(float(vals[space.index(a)])))
    assert len(leaves) > 1
    if sampler == "mcmc":
        assert algo.diagnostics()["mcmc_moves"] > 0


# ------------------------------------------------- deterministic mechanics (issue 20)
#: heap paths of a height-3 tree, written out (not computed with Tree.path)
PATHS_H3 = {3: [0, 1, 3], 4: [0, 1, 4], 5: [0, 2, 5], 6: [0, 2, 6]}


@pytest.mark.parametrize("split", ["adam", "lstsq"])
def test_a_tell_adds_one_visit_and_its_value_to_every_node_on_the_leafs_path(split):
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=9)
    algo = _started(space, n_init=40, n_select=1000, height=3, split=split,
                    adam_epochs_first=50)
    _feed(algo, space, vals, 40)
    t = algo._tree
    assert t.split[:3].all() and algo._n_rebuilds == 1   # all four leaves are at depth 2
    told = 0
    for value in (0.25, 0.5, 0.75, 0.125, 1.0, 0.375):
        count, total = t.count.copy(), t.total.copy()
        a = algo.ask()
        leaf = algo._pending[space.identity(a)]
        algo.tell(a, Observation(value))
        told += 1
        on_path = np.isin(np.arange(t.n_nodes), PATHS_H3[leaf])
        np.testing.assert_array_equal(t.count - count, on_path.astype(np.int64))
        # the totals start from the training values: one addition's rounding, no more
        np.testing.assert_allclose(t.total - total, np.where(on_path, value, 0.0), rtol=0, atol=1e-12)
    assert t.count[0] == 40 + told and algo._n_rebuilds == 1
    # a repeat told again changes nothing
    count, total = t.count.copy(), t.total.copy()
    algo.tell(a, Observation(0.5))
    np.testing.assert_array_equal(t.count, count)
    np.testing.assert_array_equal(t.total, total)
    # an architecture told without being asked goes to the leaf its encoding routes to
    i = int(np.flatnonzero(~algo._evaluated)[0])
    leaf = int(algo._leaf_of[i])
    count, total = t.count.copy(), t.total.copy()
    algo.tell(space.arch(i), Observation(0.5))
    on_path = np.isin(np.arange(t.n_nodes), PATHS_H3[leaf])
    np.testing.assert_array_equal(t.count - count, on_path.astype(np.int64))
    np.testing.assert_allclose(t.total - total, np.where(on_path, 0.5, 0.0), rtol=0, atol=1e-12)


def _hand_tree(height, count, total, c=0.1):
    """LaNAS with a hand-made tree: every internal node splits, statistics as given."""
    t = Tree(height=height, dim=1)
    t.split[:t.n_internal] = True
    t.count[:] = count
    t.total[:] = total
    algo = LaNAS(c=c)
    algo._tree, algo._use_table = t, False
    algo._dead = np.zeros(t.n_nodes, dtype=bool)
    algo._n_fallbacks = 0
    return algo


def test_ucb_uses_the_parents_visit_count_below_the_root():
    # height 3. Root: 100 visits; node 1: 4 (leaves 3: 1 visit, mean 0.5; 4: 3 visits,
    # mean 0.7); node 2: 96 visits, mean 0.3. With c = 0.1 the bonus is 0.2*sqrt(2 ln n / m).
    #   root -> node 1: 0.65 + 0.2*sqrt(2 ln 100 / 4) = 0.953 > node 2: 0.3 + 0.062
    #   node 1 (n = 4):   leaf 3: 0.5 + 0.2*sqrt(2 ln 4)     = 0.833
    #                     leaf 4: 0.7 + 0.2*sqrt(2 ln 4 / 3) = 0.892  -> leaf 4
    #   with the root's 100 visits instead, leaf 3 (1.107) would beat leaf 4 (1.050)
    algo = _hand_tree(3, [100, 4, 96, 1, 3, 48, 48], [28.8 + 2.6, 2.6, 28.8, 0.5, 2.1, 14.4, 14.4])
    assert algo._ucb(3, 1) == pytest.approx(0.5 + 0.2 * math.sqrt(2 * math.log(4)), abs=1e-12)
    assert algo._ucb(4, 1) == pytest.approx(0.7 + 0.2 * math.sqrt(2 * math.log(4) / 3), abs=1e-12)
    assert algo._select() == 4
    # height 4, one level deeper: root 1000 visits, node 1: 200, node 4: 20, whose leaves
    # are 9 (2 visits, mean 0.5) and 10 (18 visits, mean 0.77):
    #   n = 20 (node 4):  leaf 9: 0.5 + 0.2*sqrt(2 ln 20 / 2)    = 0.846
    #                     leaf 10: 0.77 + 0.2*sqrt(2 ln 20 / 18) = 0.885  -> leaf 10
    #   with node 1's 200 visits (the grandparent): 0.960 vs 0.923, with the root's 1000:
    #   1.026 vs 0.945; either would send the search to leaf 9
    count = [1000, 200, 800, 180, 20, 400, 400, 90, 90, 2, 18, 200, 200, 200, 200]
    mean = {7: 0.1, 8: 0.1, 9: 0.5, 10: 0.77, 11: 0.1, 12: 0.1, 13: 0.1, 14: 0.1}
    total = [0.0] * 15
    for k in range(14, -1, -1):
        total[k] = mean[k] * count[k] if k >= 7 else total[2 * k + 1] + total[2 * k + 2]
    algo = _hand_tree(4, count, total)

    def by_hand(k, n):
        return mean[k] + 0.2 * math.sqrt(2 * math.log(n) / count[k])

    assert by_hand(10, 20) > by_hand(9, 20)
    assert by_hand(10, 200) < by_hand(9, 200) and by_hand(10, 1000) < by_hand(9, 1000)
    for k in (9, 10):
        assert algo._ucb(k, 4) == pytest.approx(by_hand(k, 20), abs=1e-12)
    assert algo._select() == 10


def _leaf_by_recursion(tree, x, k=0):
    """The leaf of one encoding: explicit descent on ``predict`` and ``thr``, node by node."""
    if not tree.split[k]:
        return k, math.inf
    p = float(tree.predict(k, x[None, :])[0])
    if p >= tree.thr[k]:
        leaf, margin = _leaf_by_recursion(tree, x, 2 * k + 1)
    else:
        leaf, margin = _leaf_by_recursion(tree, x, 2 * k + 2)
    return leaf, min(margin, abs(p - tree.thr[k]))


@pytest.mark.parametrize("split", ["adam", "lstsq"])
def test_every_architecture_is_routed_to_the_leaf_a_plain_descent_finds(split):
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=10)
    algo = _started(space, n_init=30, n_select=12, height=4, split=split,
                    adam_epochs_first=300, adam_epochs_later=100, c=0.5)
    X = space.encode_all()
    for rebuild in range(4):
        _feed(algo, space, vals, 30 if rebuild == 0 else 12)
        t = algo._tree
        assert algo._n_rebuilds == rebuild + 1 and t.split[0]
        got = [_leaf_by_recursion(t, x) for x in X]
        expected = np.array([g[0] for g in got])
        clear = np.array([g[1] for g in got]) > 1e-9   # routing sums in another order
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(algo._leaf_of[clear], expected[clear])
        assert len(set(expected)) > 2
        # the candidates left under every node: unevaluated architectures in its subtree
        for k in range(t.n_nodes):
            under = [j for j in range(space.size)
                     if _is_under(int(algo._leaf_of[j]), k) and not algo._evaluated[j]]
            assert algo._cand[k] == len(under)
