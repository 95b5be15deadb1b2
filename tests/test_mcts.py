"""Mechanics of the MCTS baseline (UCT over action sequences) on tiny spaces, and the
array-backed tree against the original implementation (same draws, same generator state)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algorithms import make_algorithm
from algorithms.base import DONE
from algorithms.mcts import MCTS, LegalActions, make_actions
from oracles.convnet_space import ConvNetSpace
from oracles.errors import InvalidArchitecture, UserError
from oracles.nb101_space import NB101Space
from oracles.oracle import Observation
from oracles.space import FiniteSpace

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
    root = algo.tree_node(())
    assert root.total == 2 and root.n.tolist() == [0, 2, 0]
    assert root.w[1] == pytest.approx(0.75)
    # both architectures under child 1 are evaluated: 6 - 2 left to evaluate there
    assert root.left.tolist() == [3, 1, 3]
    # the first tell expanded node (1,); the second updated it (child 0)
    node = algo.tree_node((1,))
    assert node.total == 1 and node.n.tolist() == [1, 0, 0]
    # (1, 2) was evaluated before node (1,) existed: counted there all the same
    assert node.left.tolist() == [0, 1, 0]
    assert algo.tree_node((0,)) is None and algo.tree_node((1, 0)) is None


@pytest.mark.parametrize("c", [1.0, 3.0])
def test_selection_maximises_ucb1_once_all_children_are_visited(c):
    space = TinySpace((2, 5))
    algo = _started(space, c=c)
    for arch, v in (((0, 0), 0.9), ((0, 1), 0.9), ((1, 0), 0.2)):
        algo.tell(arch, Observation(v))
    root = algo.tree_node(())
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
    assert algo.ask() is DONE


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


def test_ucb_uses_the_parents_visits_not_the_roots():
    # A tree four levels deep; at node (0, 0) the UCB1 choice with that node's own visit
    # count (4) differs from the one with the root's (24): an implementation that reads
    # the root's count takes child 1 there.
    space = TinySpace((2, 2, 3, 4))
    c = 0.5
    algo = _started(space, c=c)
    tells = [((1, 0, 0, 0), 0.1)] + [((1, 0, 0, 1), 0.1), ((1, 0, 1, 0), 0.1), ((1, 1, 0, 0), 0.1),
                                     ((1, 1, 1, 0), 0.1), ((1, 0, 2, 0), 0.1)] * 3
    tells += [((0, 1, 0, 0), 0.2), ((0, 1, 1, 0), 0.2), ((0, 1, 2, 0), 0.2)]
    tells += [((0, 0, 0, 0), 0.9), ((0, 0, 0, 1), 0.9), ((0, 0, 0, 2), 0.9), ((0, 0, 1, 0), 0.6),
              ((0, 0, 2, 0), 0.5)]
    for arch, v in tells:
        algo.tell(arch, Observation(v))
    root, node = algo.tree_node(()), algo.tree_node((0, 0))
    assert (root.total, node.total) == (24, 4) and node.n.tolist() == [2, 1, 1]

    def pick(total):
        return int(np.argmax(node.w / node.n + c * np.sqrt(2 * math.log(total) / node.n)))

    assert (pick(node.total), pick(root.total)) == (0, 1)
    # child 3 of node (0, 0, 0) is its only unevaluated child
    assert algo.ask() == (0, 0, 0, 3)


def test_fallback_draws_an_unevaluated_completion_when_rollouts_keep_missing():
    space = TinySpace((2, 3, 4))
    vals = linear_values(space, seed=2)
    algo = _started(space, seed=1, max_rollouts=1)
    asked = []
    for _ in range(space.size):
        a = algo.ask()
        asked.append(a)
        algo.tell(a, Observation(float(vals[space.index(a)])))
    assert len(set(asked)) == space.size
    assert algo.diagnostics()["fallback_draws"] > 0


# --- the original implementation (a dictionary of prefix tuples, bisect on sorted tuples),
# kept as the reference the array-backed tree must reproduce draw for draw ---------------------
class ReferenceMCTS(MCTS):
    def start(self, space, rng):
        import bisect
        self._bisect = bisect
        self._space, self._rng = space, rng
        self._actions = make_actions(space, self.action_space)
        self._finite = isinstance(space, FiniteSpace)
        self._seqs = self._actions.all_sequences() if self._finite else None
        self._evaluated, self._seen, self._tree = [], set(), {}
        self._n_invalid = self._n_fallback = 0
        self._new_node(())

    def _new_node(self, prefix):
        k, s, bl = self._actions.n_choices(prefix), self._seqs, self._bisect.bisect_left
        node = {"n": np.zeros(k, dtype=np.int64), "w": np.zeros(k), "total": 0, "lo": None, "hi": None}
        if s is not None:
            node["lo"] = np.array([bl(s, prefix + (t,)) for t in range(k)], dtype=np.int64)
            node["hi"] = np.array([bl(s, prefix + (t + 1,)) for t in range(k)], dtype=np.int64)
        self._tree[prefix] = node

    def ask(self):
        bl = self._bisect.bisect_left
        if self._finite and len(self._evaluated) >= len(self._seqs):
            return DONE
        prefix = ()
        while True:
            node = self._tree[prefix]
            k = len(node["n"])
            if k == 0:
                break
            if self._finite:
                ev = self._evaluated
                done = np.array([bl(ev, h) - bl(ev, lo) for lo, h in zip(node["lo"], node["hi"])], dtype=np.int64)
                avail = node["hi"] - node["lo"] - done > 0
            else:
                avail = np.ones(k, dtype=bool)
            unvisited = np.flatnonzero(avail & (node["n"] == 0))
            if len(unvisited):
                prefix = prefix + (int(self._rng.choice(unvisited)),)
                break
            cand = np.flatnonzero(avail)
            n = node["n"][cand]
            ucb = node["w"][cand] / n + self.c * np.sqrt(2.0 * math.log(max(node["total"], 1)) / n)
            prefix = prefix + (int(self._rng.choice(cand[np.flatnonzero(ucb == ucb.max())])),)
            if prefix not in self._tree:
                break
        for _ in range(self.max_rollouts):
            seq = list(prefix)
            while (k := self._actions.n_choices(seq)) > 0:
                seq.append(int(self._rng.integers(k)))
            try:
                arch = self._actions.decode(seq)
            except InvalidArchitecture:
                continue
            if not (self._finite and self._space.identity(arch) in self._seen):
                return arch
        s, ev = self._seqs, self._evaluated
        lo = bl(s, tuple(prefix))
        hi = bl(s, tuple(prefix[:-1]) + (prefix[-1] + 1,)) if prefix else len(s)
        done = set(ev[bl(ev, lo):bl(ev, hi)])
        free = [p for p in range(lo, hi) if p not in done]
        return self._actions.decode(s[free[int(self._rng.integers(len(free)))]])

    def tell(self, arch, observation):
        seq = self._actions.encode(arch)
        ident = self._space.identity(arch)
        if ident not in self._seen:
            self._seen.add(ident)
            if self._seqs is not None:
                pos = self._bisect.bisect_left(self._seqs, seq)
                if pos < len(self._seqs) and self._seqs[pos] == seq:
                    self._bisect.insort(self._evaluated, pos)
        reward = float(observation.value) if math.isfinite(observation.value) else 0.0
        prefix = ()
        for t in seq:
            node = self._tree.get(prefix)
            if node is None:
                break
            node["total"] += 1
            node["n"][t] += 1
            node["w"][t] += reward
            prefix = prefix + (t,)
            if prefix not in self._tree:
                if self._actions.n_choices(prefix) > 0:
                    self._new_node(prefix)
                break


def _trajectory(cls, space, value, n, seed, **kw):
    """``n`` asks (fewer if the space runs out) and the generator's state at the end."""
    rng = np.random.default_rng(seed)
    algo = cls(**kw)
    algo.start(space, rng)
    out = []
    for _ in range(n):
        a = algo.ask()
        if a is DONE:
            break
        out.append(space.identity(a))
        algo.tell(a, Observation(value(a)))
        if len(out) % 7 == 0:  # a repeat, as the runner tells for cached answers
            algo.tell(a, Observation(value(a)))
    return out, rng.bit_generator.state


def _same_as_reference(space, value, n, seeds, **kw):
    for seed in seeds:
        new, new_state = _trajectory(MCTS, space, value, n, seed, **kw)
        ref, ref_state = _trajectory(ReferenceMCTS, space, value, n, seed, **kw)
        assert new == ref, seed
        assert new_state == ref_state, seed  # the generator consumed exactly as before


@pytest.mark.parametrize("kw", [{}, {"c": 0.1}, {"c": 3.0, "max_rollouts": 2}])
def test_same_draws_as_the_reference_on_tiny_spaces(kw):
    invalid = [(0, 0, 0, 0), (0, 0, 1, 2), (1, 1, 0, 1), (2, 1, 3, 0)] + [(3, 0, 2, t) for t in range(3)]
    space = TinySpace((4, 2, 4, 3), invalid=invalid)
    vals = linear_values(space, seed=3)
    _same_as_reference(space, lambda a: float(vals[space.index(a)]), space.size + 1, range(6), **kw)
    ties = TinySpace((3, 3, 3))  # every reward equal: UCB ties at every node
    _same_as_reference(ties, lambda a: 0.5, ties.size + 1, range(4), **kw)


@pytest.mark.parametrize("kind", ["sequential", "global"])
def test_same_draws_as_the_reference_on_convnet_action_spaces(kind):
    space = ConvNetSpace.from_preset("lanas-s2")
    _same_as_reference(space, lambda a: 0.01 * len(a) + 1e-4 * sum(k * c for k, c in a), 150, range(2),
                       action_space=kind)


def test_same_draws_as_the_reference_on_an_infinite_space_with_invalid_completions():
    space = NB101Space()  # infinite (not enumerated); most random token completions are invalid
    _same_as_reference(space, lambda a: (len(a.ops) % 5) / 5, 40, range(2))


def test_same_draws_as_the_reference_on_nb201(nb201_oracle):
    space = nb201_oracle.space
    _same_as_reference(space, lambda a: float(nb201_oracle.query(a).observation.value), 1500, range(3))
