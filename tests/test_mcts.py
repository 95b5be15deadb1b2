"""Mechanics of the MCTS baseline (UCT over action sequences) on tiny spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algorithms import make_algorithm
from algorithms.mcts import MCTS, LegalActions
from oracles.convnet_space import ConvNetSpace
from oracles.errors import UserError
from oracles.oracle import Observation

from tiny_space import TinySpace, linear_values


def _started(space, seed=0, **kw):
    algo = MCTS(**kw)
    algo.start(space, np.random.default_rng(seed))
    return algo


def test_ucb_prefers_an_unvisited_child():
    space = TinySpace((3, 3))
    algo = _started(space, c=0.0)
    # root children 0 and 1 visited (child 0 with a high reward), child 2 never
    algo.tell((0, 0), Observation(0.99))
    algo.tell((1, 0), Observation(0.10))
    for seed in range(10):
        algo._rng = np.random.default_rng(seed)
        assert algo.ask()[0] == 2


def test_backpropagation_updates_counts_and_rewards_along_the_tree_path():
    space = TinySpace((3, 3))
    algo = _started(space)
    algo.tell((1, 2), Observation(0.5))
    algo.tell((1, 0), Observation(0.25))
    root = algo._tree[()]
    assert root.total == 2 and root.n.tolist() == [0, 2, 0]
    assert root.w[1] == pytest.approx(0.75)
    # the first tell expanded node (1,); the second updated it (child 0)
    node = algo._tree[(1,)]
    assert node.total == 1 and node.n.tolist() == [1, 0, 0]


@pytest.mark.parametrize("c", [1.0, 3.0])
def test_selection_maximises_ucb1_once_all_children_are_visited(c):
    space = TinySpace((2, 5))
    algo = _started(space, c=c)
    for arch, v in (((0, 0), 0.9), ((0, 1), 0.9), ((1, 0), 0.2)):
        algo.tell(arch, Observation(v))
    root = algo._tree[()]
    ucb = root.w / root.n + c * np.sqrt(2 * math.log(root.total) / root.n)
    # c=1: exploitation wins (child 0, mean 0.9); c=3: exploration wins (child 1, 1 visit)
    assert int(np.argmax(ucb)) == (0 if c == 1.0 else 1)
    assert algo.ask()[0] == int(np.argmax(ucb))


def test_finite_space_never_repeats_and_covers_everything():
    space = TinySpace((3, 2, 4))
    vals = linear_values(space)
    algo = _started(space, seed=4)
    asked = []
    for _ in range(space.size):
        a = algo.ask()
        asked.append(space.identity(a))
        algo.tell(a, Observation(float(vals[space.index(a)])))
    assert len(set(asked)) == space.size
    with pytest.raises(StopIteration):
        algo.ask()


def test_invalid_completions_are_resampled():
    invalid = [(0, 0, 0), (0, 0, 1), (0, 1, 0), (2, 1, 3)]
    space = TinySpace((3, 2, 4), invalid=invalid)
    algo = _started(space, seed=2)
    asked = set()
    for _ in range(space.size):
        a = algo.ask()
        assert a not in invalid
        asked.add(a)
        algo.tell(a, Observation(0.5))
    assert len(asked) == space.size == 24 - len(invalid)
    assert algo.diagnostics()["invalid_rollouts"] > 0


def test_determinism_per_seed():
    space = TinySpace((4, 3, 4, 3))
    vals = linear_values(space, seed=1)

    def traj(seed):
        algo = _started(space, seed=seed)
        out = []
        for _ in range(60):
            a = algo.ask()
            out.append(space.index(a))
            algo.tell(a, Observation(float(vals[space.index(a)])))
        return out

    assert traj(3) == traj(3)
    assert traj(3) != traj(4)


@pytest.mark.parametrize("kind", ["sequential", "global"])
def test_convnet_action_spaces(kind):
    space = ConvNetSpace.from_preset("lanas-s2")  # LaNAS §2: 1,364 networks
    acts = LegalActions(space, space.action_space(kind))
    seqs = acts.all_sequences()
    assert len(seqs) == len(set(seqs)) == space.size == 1364
    for i in (0, 7, 1363):
        arch = space.arch(i)
        assert acts.decode(acts.encode(arch)) == arch
    algo = _started(space, seed=0, action_space=kind)
    asked = set()
    for _ in range(80):
        a = algo.ask()
        assert space.identity(a) not in asked
        asked.add(space.identity(a))
        algo.tell(a, Observation(0.01 * len(a)))
    assert algo.diagnostics()["tree_nodes"] > 1


def test_unknown_action_space_is_a_user_error():
    with pytest.raises(UserError):
        _started(TinySpace(), action_space="global")
    algo = make_algorithm("mcts", {"action_space": "sequential", "c": "0.5"})
    assert (algo.action_space, algo.c) == ("sequential", 0.5)
