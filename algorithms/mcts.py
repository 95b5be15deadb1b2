"""Monte Carlo tree search over a space's sequential decisions: the model-free MCTS
baseline of LaNAS (../shared/papers/004_*, §2 and §4.2 "Baselines"; AlphaX [13] without
its learned value network).

A tree node is a prefix of an action sequence; its children are the choices of the next
action. Each ``ask`` performs the four classic MCTS stages (Kocsis & Szepesvari's UCT, with
the UCB1 rule of Auer et al. 2002 that LaNAS §3.2 cites as [19]):

1. *selection*: from the root, while every available child has been visited, go to the
   child maximising ``mean reward + c * sqrt(2 ln n_parent / n_child)``;
2. *expansion*: the first unvisited child met (chosen uniformly among the unvisited) is the
   new tree node;
3. *roll-out*: complete the sequence with uniformly random actions; an invalid completion
   (the space's ``from_tokens``/decoder raises :class:`InvalidArchitecture`, e.g. a
   NAS-Bench-101 cell without an input-output path) is re-drawn;
4. ``tell`` *back-propagates* the observed search metric (accuracy) as the reward along
   the tree part of the path: each node on it counts one more visit of the chosen child
   and adds the reward to that child's total.

Action spaces (LaNAS §2): ``action_space="tokens"`` (default) uses the space's own
decisions (``space.decisions`` / ``tokens`` / ``from_tokens``: one token at a time; for
NAS-Bench-201 the op of each edge in turn). Any other name is asked of the space through
``space.action_space(name)``, which returns an object with ``legal(prefix)`` (the legal
next action values), ``is_complete(prefix)``, ``to_arch(prefix)`` and ``decisions(arch)``
(see :mod:`oracles.convnet_space`, whose §2 ``sequential`` and ``global`` action spaces
work this way); variable-length action sequences are supported.

Finite spaces: every sample is a distinct architecture, as in the LaNAS protocol. The
algorithm keeps the action sequences of all architectures sorted, so each prefix is a
contiguous range whose unevaluated members can be counted exactly; a child with nothing
left to evaluate is no longer selectable, and a roll-out that keeps landing on evaluated
architectures (``max_rollouts`` draws) falls back to a uniformly drawn unevaluated
completion of the prefix. Without this a selected fully-evaluated subtree would make the
search re-propose cached architectures indefinitely.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Sequence

import numpy as np

from oracles.errors import InvalidArchitecture, UserError
from oracles.space import FiniteSpace

from .base import SearchAlgorithm


class TokenActions:
    """The space's own decisions as a fixed-length action sequence."""

    def __init__(self, space):
        self.space = space
        self.decisions = tuple(int(d) for d in space.decisions)

    def n_choices(self, prefix: Sequence[int]) -> int:
        return self.decisions[len(prefix)] if len(prefix) < len(self.decisions) else 0

    def encode(self, arch) -> tuple[int, ...]:
        return tuple(int(t) for t in self.space.tokens(arch))

    def decode(self, seq: Sequence[int]):
        return self.space.from_tokens(seq)

    def all_sequences(self) -> list[tuple[int, ...]]:
        toks = np.asarray(self.space.tokens_all(), dtype=np.int64)
        order = np.lexsort(toks.T[::-1])
        return [tuple(int(x) for x in row) for row in toks[order]]


class LegalActions:
    """Adapter for a space's named action space with the ``legal(prefix)`` interface.

    Such an action space (e.g. :meth:`oracles.convnet_space.ConvNetSpace.action_space`)
    speaks in action *values* (a depth, a kernel size, a channel count); the tree here
    speaks in child *numbers*, position ``i`` of ``legal(prefix)``.
    """

    def __init__(self, space, acts):
        self.space, self.acts = space, acts
        self._values_cache: dict[tuple[int, ...], tuple[list, tuple]] = {}

    def _state(self, prefix):
        """(action values of ``prefix``, legal next values); cached per prefix."""
        prefix = tuple(int(t) for t in prefix)
        hit = self._values_cache.get(prefix)
        if hit is None:
            if prefix:
                vals, legal = self._state(prefix[:-1])
                vals = vals + [legal[prefix[-1]]]
            else:
                vals = []
            legal = () if self.acts.is_complete(vals) else tuple(self.acts.legal(vals))
            hit = (vals, legal)
            self._values_cache[prefix] = hit
        return hit

    def n_choices(self, prefix) -> int:
        return len(self._state(prefix)[1])

    def encode(self, arch) -> tuple[int, ...]:
        vals = list(self.acts.decisions(arch))
        return tuple(tuple(self.acts.legal(vals[:i])).index(v) for i, v in enumerate(vals))

    def decode(self, seq):
        return self.acts.to_arch(self._state(seq)[0])

    def all_sequences(self) -> list[tuple[int, ...]]:
        return sorted(self.encode(self.space.arch(i)) for i in range(self.space.size))


def make_actions(space, action_space: str):
    if action_space == "tokens":
        return TokenActions(space)
    getter = getattr(space, "action_space", None)
    if getter is None:
        raise UserError(f"mcts: space {space.name} has no action space {action_space!r}; "
                        "only action_space=tokens applies to it")
    acts = getter(action_space)
    return LegalActions(space, acts) if hasattr(acts, "legal") else acts


class _Node:
    __slots__ = ("n", "w", "total", "lo", "hi")

    def __init__(self, k: int, lo: np.ndarray | None, hi: np.ndarray | None):
        self.n = np.zeros(k, dtype=np.int64)    # visits of each child
        self.w = np.zeros(k, dtype=np.float64)  # summed reward of each child
        self.total = 0                          # visits of this node
        self.lo, self.hi = lo, hi               # per-child range in the sorted sequences


class MCTS(SearchAlgorithm):
    """UCT over the space's action sequences.

    Parameters
    ----------
    c:
        Exploration constant of the UCB1 rule ``mean + c*sqrt(2 ln N / n)``; default 1.0 is
        UCB1 exactly as Auer et al. 2002 state it (LaNAS [19]).
    action_space:
        ``"tokens"`` (default, the space's decisions) or a named action space the space
        provides (ConvNet: ``"sequential"`` or ``"global"``, LaNAS §2).
    max_rollouts:
        Random completions tried per ask before giving up on an invalid or (finite spaces)
        already-evaluated draw (default 100).
    """

    name = "mcts"

    def __init__(self, c: float = 1.0, action_space: str = "tokens", max_rollouts: int = 100):
        if not float(c) >= 0:
            raise ValueError(f"c must be >= 0, got {c}")
        if int(max_rollouts) < 1:
            raise ValueError(f"max_rollouts must be >= 1, got {max_rollouts}")
        self.c = float(c)
        self.action_space = str(action_space)
        self.max_rollouts = int(max_rollouts)

    # -- lifecycle ------------------------------------------------------------------
    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._actions = make_actions(space, self.action_space)
        self._finite = isinstance(space, FiniteSpace)
        self._seqs = self._actions.all_sequences() if self._finite else None
        self._evaluated: list[int] = []   # sorted positions (in _seqs) already evaluated
        self._seen: set[str] = set()
        self._tree: dict[tuple[int, ...], _Node] = {}
        self._n_invalid = 0
        self._n_fallback = 0
        self._max_depth = 0
        self._new_node(())

    def _new_node(self, prefix):
        k = self._actions.n_choices(prefix)
        lo = hi = None
        if self._seqs is not None:
            s = self._seqs
            lo = np.fromiter((bisect.bisect_left(s, prefix + (t,)) for t in range(k)),
                             dtype=np.int64, count=k)
            hi = np.fromiter((bisect.bisect_left(s, prefix + (t + 1,)) for t in range(k)),
                             dtype=np.int64, count=k)
        node = _Node(k, lo, hi)
        self._tree[prefix] = node
        self._max_depth = max(self._max_depth, len(prefix))
        return node

    def _remaining(self, node: _Node) -> np.ndarray:
        """Unevaluated valid architectures under each child of ``node``."""
        ev = self._evaluated
        done = np.fromiter((bisect.bisect_left(ev, h) - bisect.bisect_left(ev, l)
                            for l, h in zip(node.lo, node.hi)), dtype=np.int64, count=len(node.lo))
        return node.hi - node.lo - done

    # -- ask ------------------------------------------------------------------------
    def ask(self):
        if self._finite and len(self._evaluated) >= len(self._seqs):
            raise StopIteration("mcts has evaluated every architecture of the space")
        prefix: tuple[int, ...] = ()
        while True:
            node = self._tree[prefix]
            k = len(node.n)
            if k == 0:
                break  # a complete sequence already in the tree (infinite spaces only)
            avail = self._remaining(node) > 0 if self._finite else np.ones(k, dtype=bool)
            unvisited = np.flatnonzero(avail & (node.n == 0))
            if len(unvisited):
                prefix = prefix + (int(self._rng.choice(unvisited)),)
                break  # expansion; the node itself is created when its result is told
            cand = np.flatnonzero(avail)
            n = node.n[cand]
            ucb = node.w[cand] / n + self.c * np.sqrt(2.0 * math.log(max(node.total, 1)) / n)
            best = cand[np.flatnonzero(ucb == ucb.max())]
            prefix = prefix + (int(self._rng.choice(best)),)
            if prefix not in self._tree:
                break
        return self._rollout(prefix)

    def _rollout(self, prefix):
        for _ in range(self.max_rollouts):
            seq = list(prefix)
            while True:
                k = self._actions.n_choices(seq)
                if k == 0:
                    break
                seq.append(int(self._rng.integers(k)))
            try:
                arch = self._actions.decode(seq)
            except InvalidArchitecture:
                self._n_invalid += 1
                continue
            if self._finite and self._space.identity(arch) in self._seen:
                continue
            return arch
        if not self._finite:
            raise UserError(f"mcts: {self.max_rollouts} random completions of prefix {prefix} "
                            "were all invalid; raise max_rollouts")
        # uniform over the unevaluated valid completions of the prefix
        s, ev = self._seqs, self._evaluated
        lo = bisect.bisect_left(s, tuple(prefix))
        hi = bisect.bisect_left(s, tuple(prefix[:-1]) + (prefix[-1] + 1,)) if prefix else len(s)
        done = set(ev[bisect.bisect_left(ev, lo):bisect.bisect_left(ev, hi)])
        free = [p for p in range(lo, hi) if p not in done]
        self._n_fallback += 1
        return self._actions.decode(s[free[int(self._rng.integers(len(free)))]])

    # -- tell -----------------------------------------------------------------------
    def tell(self, arch, observation):
        seq = self._actions.encode(arch)
        ident = self._space.identity(arch)
        if ident not in self._seen:
            self._seen.add(ident)
            if self._seqs is not None:
                pos = bisect.bisect_left(self._seqs, seq)
                if pos < len(self._seqs) and self._seqs[pos] == seq:
                    bisect.insort(self._evaluated, pos)
        reward = float(observation.value)
        if not math.isfinite(reward):
            reward = 0.0
        prefix: tuple[int, ...] = ()
        for t in seq:
            node = self._tree.get(prefix)
            if node is None:
                break
            node.total += 1
            node.n[t] += 1
            node.w[t] += reward
            prefix = prefix + (t,)
            if prefix not in self._tree:
                if self._actions.n_choices(prefix) > 0:
                    self._new_node(prefix)
                break

    def diagnostics(self) -> dict[str, Any]:
        return {"tree_nodes": len(self._tree), "tree_depth": self._max_depth,
                "invalid_rollouts": self._n_invalid, "fallback_draws": self._n_fallback}
