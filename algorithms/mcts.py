"""Monte Carlo tree search over a space's sequential decisions: the model-free MCTS
baseline of LaNAS (Wang et al., Sample-Efficient Neural Architecture Search by Learning
Action Space, §2 and §4.2 "Baselines"; AlphaX, Wang et al. 2019, the paper's [13], without
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

Finite spaces: every sample is a distinct architecture, as in the LaNAS protocol. Every
architecture's action sequence is stored as one integer code (the actions, shifted by one,
as the digits of a fixed-length number padded with zeros), so the codes sort as the
sequences do and each prefix is a contiguous range of the sorted codes, found by
``searchsorted``; each child counts the unevaluated architectures left in its range. A
child with nothing left to evaluate is no longer selectable, and a roll-out that keeps
landing on evaluated architectures (``max_rollouts`` draws) falls back to a uniformly drawn
unevaluated completion of the prefix. Without this a selected fully-evaluated subtree would
make the search re-propose cached architectures indefinitely.

Layout (speed): the tree is a set of flat arrays. Node ``v`` has ``arity[v]`` children in
the slots ``first[v] ... first[v] + arity[v] - 1``; a slot holds the child's visits,
summed reward, unevaluated count and node number (-1 until the child is expanded), so a
step down the tree is index arithmetic, not a dictionary of prefixes. The per-slot
statistics are Python lists, not numpy arrays: the UCB of a node's handful of children
(5 on NAS-Bench-201) costs about 3 us as a list loop against 18 us as numpy operations on
5-element arrays (measured on the 2-core CI machine, issue 13). numpy does the work that scales with the space: the
codes of all sequences (one matrix product and a sort at start) and the ranges of a new
node's children (one ``searchsorted``); the architectures already evaluated under those
ranges are counted by bisection on the sorted list of evaluated positions, and each tell
decrements the counts along its path, so no count is ever recomputed.

Randomness: the generator is consumed exactly as the first implementation (a dictionary of
prefixes, one ``rng.choice`` per tie) consumed it, so trajectories are unchanged:
``rng.choice(a)`` draws ``rng.integers(len(a))`` and indexes ``a``, and a draw among one
candidate consumes nothing, so both are made here directly.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass
from operator import mul
from typing import Any, Sequence

import numpy as np

from oracles.errors import InvalidArchitecture, UserError
from oracles.space import FiniteSpace

from .base import DONE, FailedResults, SearchAlgorithm


class TokenActions:
    """The space's own decisions as a fixed-length action sequence."""

    def __init__(self, space):
        self.space = space
        self.decisions = tuple(int(d) for d in space.decisions)

    def n_choices(self, prefix: Sequence[int]) -> int:
        return self.decisions[len(prefix)] if len(prefix) < len(self.decisions) else 0

    def encode(self, arch) -> tuple[int, ...]:
        return tuple(map(int, self.space.tokens(arch)))

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


class SequenceCodes:
    """Every architecture's action sequence of a finite space as one sorted integer code.

    A sequence ``(a_0, ..., a_{m-1})`` (``m <= length``) has the code whose base-``radix``
    digits are ``a_0 + 1, ..., a_{m-1} + 1`` followed by ``length - m`` zeros, so codes
    sort exactly as the sequences do (a proper prefix first) and the sequences that start
    with a prefix are one contiguous run of the sorted codes. Codes are int64 when
    ``radix ** length`` fits, Python integers (an object array) otherwise.
    """

    def __init__(self, rows: np.ndarray):
        rows = np.asarray(rows, dtype=np.int64)          # sequences, padded with -1
        self.length = int(rows.shape[1])
        self.radix = int(rows.max(initial=-1)) + 2       # digits 0 (padding) .. max action + 1
        big = self.radix ** self.length >= 2 ** 62
        dtype = object if big else np.int64
        self.place = [self.radix ** (self.length - 1 - i) for i in range(self.length)]
        digits = (rows + 1).astype(dtype)
        codes = digits @ np.array(self.place, dtype=dtype) if self.length else np.zeros(len(rows), dtype)
        self.codes = np.sort(codes)
        self.size = len(self.codes)
        self._offsets: dict[tuple[int, int], np.ndarray] = {}
        self._ones = [sum(self.place[:m]) for m in range(self.length + 1)]

    @classmethod
    def of(cls, actions) -> "SequenceCodes":
        if isinstance(actions, TokenActions):  # the space's token table: no per-row Python work
            return cls(actions.space.tokens_all())
        seqs = actions.all_sequences()
        width = max((len(s) for s in seqs), default=0)
        rows = np.full((len(seqs), width), -1, dtype=np.int64)
        for i, s in enumerate(seqs):
            rows[i, :len(s)] = s
        return cls(rows)

    def prefix_code(self, prefix: Sequence[int]) -> int | None:
        """Code of ``prefix`` padded with zeros; ``None`` if no sequence can start with it."""
        if len(prefix) > self.length:
            return None
        c = 0
        for t in prefix:
            if not 0 <= t < self.radix - 1:
                return None
            c = c * self.radix + t + 1
        return c * self.radix ** (self.length - len(prefix))

    def position(self, seq: Sequence[int]) -> int | None:
        """Position of ``seq`` in the sorted codes, or ``None`` if it is not there."""
        m = len(seq)
        if not 0 < m <= self.length or not 0 <= min(seq) <= max(seq) < self.radix - 1:
            return None if m else self._find(0)
        # sum of (a_i + 1) * place_i, the +1s summed once per length
        return self._find(sum(map(mul, seq, self.place)) + self._ones[m])

    def _find(self, c: int) -> int | None:
        pos = int(self.codes.searchsorted(c))
        return pos if pos < self.size and self.codes[pos] == c else None

    def child_bounds(self, code: int, depth: int, k: int) -> np.ndarray:
        """``k + 1`` positions: child ``t`` of the node with prefix code ``code`` at
        ``depth`` holds the sorted positions ``bounds[t] .. bounds[t + 1] - 1``.

        Children whose action has no sequence (digit past the radix, depth past the
        longest sequence) get empty ranges at the end of the node's range.
        """
        offsets = self._offsets.get((depth, k))
        if offsets is None:
            step = self.place[depth] if depth < self.length else 0
            offsets = np.array([min(j, self.radix) * step for j in range(1, k + 2)], dtype=self.codes.dtype)
            self._offsets[(depth, k)] = offsets
        return self.codes.searchsorted(offsets + code)

    def sequence(self, pos: int) -> tuple[int, ...]:
        c = int(self.codes[pos])
        digits = []
        for p in self.place:
            d, c = divmod(c, p)
            if d == 0:
                break
            digits.append(d - 1)
        return tuple(digits)


@dataclass(frozen=True)
class NodeStats:
    """One tree node, read back (tests, debugging): its visits and, per child, visits,
    summed reward and (finite spaces) unevaluated architectures left."""

    total: int
    n: np.ndarray
    w: np.ndarray
    left: np.ndarray | None


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
    paper = ("the MCTS baseline of Wang et al., Sample-Efficient Neural Architecture Search by Learning "
             "Action Space, §2 and §4.2; UCT (Kocsis & Szepesvari, Bandit Based Monte-Carlo Planning, "
             "2006) with UCB1 (Auer, Cesa-Bianchi & Fischer, Finite-time Analysis of the Multiarmed "
             "Bandit Problem, 2002)")

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
        # fixed-length token decisions: roll-outs need no per-step n_choices call
        self._fixed = self._actions.decisions if isinstance(self._actions, TokenActions) else None
        self._finite = isinstance(space, FiniteSpace)
        self._codes = SequenceCodes.of(self._actions) if self._finite else None
        # evaluated architectures, by position in the sorted codes: a mask (fallback draws)
        # and a sorted list (counts under a new node's children)
        self._done = np.zeros(self._codes.size, dtype=bool) if self._finite else None
        self._evaluated: list[int] = []
        self._seen: set[str] = set()
        # nodes
        self._total: list[int] = []       # visits of the node
        self._first: list[int] = []       # its first child slot
        self._arity: list[int] = []       # its number of children
        self._code: list[int] = []        # its prefix code (finite spaces)
        self._depth: list[int] = []
        self._unvisited: list[int] = []   # its children never visited
        # child slots
        self._n: list[int] = []           # visits of the child
        self._w: list[float] = []         # summed reward of the child
        self._nf: list[int] = []          # failed results under the child (FailedResults)
        self._child: list[int] = []       # the child's node, -1 until expanded
        # unevaluated architectures under the child; always 1 on an infinite space
        self._left: list[int] = []
        self._bounds: list[list[int]] = []  # per node: its children's ranges in the sorted codes
        self._n_invalid = 0
        self._n_fallback = 0
        self._failures = FailedResults()
        self._new_node((), 0, 0, self._codes.size if self._finite else 0)

    def _new_node(self, prefix: tuple[int, ...], code: int, lo: int, hi: int) -> int:
        k = self._actions.n_choices(prefix)
        v = len(self._total)
        depth = len(prefix)
        self._total.append(0)
        self._first.append(len(self._n))
        self._arity.append(k)
        self._unvisited.append(k)
        self._code.append(code)
        self._depth.append(depth)
        self._n.extend([0] * k)
        self._w.extend([0.0] * k)
        self._nf.extend([0] * k)
        self._child.extend([-1] * k)
        if self._finite:
            b = self._codes.child_bounds(code, depth, k).tolist()
            # minus the architectures already evaluated under each child (told before the
            # node existed); bisect on the sorted list beats numpy on these few bounds
            ev = self._evaluated
            e = [bisect_left(ev, x) for x in b]
            self._left.extend([(b[i + 1] - b[i]) - (e[i + 1] - e[i]) for i in range(k)])
            self._bounds.append(b)
        else:
            self._left.extend([1] * k)
        return v

    def tree_node(self, prefix: Sequence[int]) -> NodeStats | None:
        """The statistics of the node at ``prefix``, or ``None`` if it is not in the tree."""
        v = 0
        for t in prefix:
            v = self._child[self._first[v] + int(t)] if 0 <= t < self._arity[v] else -1
            if v < 0:
                return None
        s = slice(self._first[v], self._first[v] + self._arity[v])
        left = np.array(self._left[s], dtype=np.int64) if self._finite else None
        return NodeStats(self._total[v], np.array(self._n[s], dtype=np.int64),
                         np.array(self._w[s], dtype=np.float64), left)

    # -- ask ------------------------------------------------------------------------
    def ask(self):
        if self._finite and len(self._evaluated) >= self._codes.size:
            return DONE  # every architecture of the space evaluated
        rng = self._rng
        n, w, child, left = self._n, self._w, self._child, self._left
        arity, first, total, unvisited = self._arity, self._first, self._total, self._unvisited
        c, sqrt, log, worst = self.c, math.sqrt, math.log, -math.inf
        nf = self._nf
        prefix: list[int] = []
        v = 0
        while True:
            k = arity[v]
            if k == 0:
                break  # a complete sequence already in the tree (infinite spaces only)
            b = first[v]
            e = b + k
            if unvisited[v]:
                fresh = [i for i, (ni, li) in enumerate(zip(n[b:e], left[b:e])) if li and not ni]
                if fresh:
                    # expansion; the node itself is created when its result is told
                    prefix.append(fresh[int(rng.integers(len(fresh)))] if len(fresh) > 1 else fresh[0])
                    break
            # UCB1 over the available children, with this node's (the parent's) visits
            lg = 2.0 * log(max(total[v], 1))
            ucb = [wi / ni + c * sqrt(lg / ni) if li else worst
                   for wi, ni, li in zip(w[b:e], n[b:e], left[b:e])]
            if self._failures.n_failed:
                fail = self._failures.worst or 0.0
                ucb = [u + fi * fail / ni if fi and li else u
                       for u, fi, ni, li in zip(ucb, nf[b:e], n[b:e], left[b:e])]
            top = max(ucb)
            if ucb.count(top) == 1:
                t = ucb.index(top)
            else:
                best = [i for i, u in enumerate(ucb) if u == top]
                t = best[int(rng.integers(len(best)))]
            prefix.append(t)
            v = child[b + t]
            if v < 0:
                break
        return self._rollout(prefix)

    def _rollout(self, prefix: list[int]):
        rng = self._rng
        fixed = self._fixed
        for _ in range(self.max_rollouts):
            if fixed is not None:
                seq = prefix + [int(rng.integers(k)) if k > 1 else 0 for k in fixed[len(prefix):]]
            else:
                seq = list(prefix)
                while True:
                    k = self._actions.n_choices(seq)
                    if k == 0:
                        break
                    seq.append(int(rng.integers(k)))
            try:
                arch = self._actions.decode(seq)
            except InvalidArchitecture:
                self._n_invalid += 1
                continue
            if self._finite and self._space.identity(arch) in self._seen:
                continue
            return arch
        if not self._finite:
            raise UserError(f"mcts: {self.max_rollouts} random completions of prefix {tuple(prefix)} "
                            "were all invalid; raise max_rollouts")
        # uniform over the unevaluated valid completions of the prefix
        codes = self._codes
        start = codes.prefix_code(prefix)
        lo, hi = np.searchsorted(codes.codes, [start, start + codes.radix ** (codes.length - len(prefix))])
        free = lo + np.flatnonzero(~self._done[lo:hi])
        self._n_fallback += 1
        return self._actions.decode(codes.sequence(int(free[int(rng.integers(len(free)))])))

    # -- tell -----------------------------------------------------------------------
    def tell(self, arch, observation):
        seq = self._actions.encode(arch)
        ident = self._space.identity(arch)
        new = False
        if ident not in self._seen:
            self._seen.add(ident)
            if self._finite:
                pos = self._codes.position(seq)
                if pos is not None and not self._done[pos]:
                    self._done[pos] = True
                    insort(self._evaluated, pos)
                    new = True
        # a failed training is the worst result told so far (FailedResults), never 0.0,
        # which on a minimised metric (negated losses) beats every real result: failures
        # are counted per child apart from the rewards and valued at the worst result
        # known when UCB reads them (before any finite result every result is a failure,
        # worth 0 alike: UCB tells them apart by visits only)
        failed = self._failures.observe(observation.value)
        reward = 0.0 if failed else float(observation.value)
        nf = self._nf
        n, w, child, left, first, total = self._n, self._w, self._child, self._left, self._first, self._total
        v = 0
        for d, t in enumerate(seq):
            total[v] += 1
            s = first[v] + t
            if not n[s]:
                self._unvisited[v] -= 1
            n[s] += 1
            w[s] += reward
            if failed:
                nf[s] += 1
            if new:
                left[s] -= 1   # one fewer to evaluate under every node on the path
            u = child[s]
            if u < 0:
                prefix = tuple(seq[:d + 1])
                if self._actions.n_choices(prefix) > 0:
                    if self._finite:
                        place = self._codes.place[d] if d < self._codes.length else 0
                        code = self._code[v] + (t + 1) * place
                        lo, hi = self._bounds[v][t:t + 2]
                        child[s] = self._new_node(prefix, code, lo, hi)
                    else:
                        child[s] = self._new_node(prefix, 0, 0, 0)
                break
            v = u

    def diagnostics(self) -> dict[str, Any]:
        return {"tree_nodes": len(self._total), "tree_depth": max(self._depth),
                "invalid_rollouts": self._n_invalid, "fallback_draws": self._n_fallback,
                "failed_results": self._failures.n_failed}
