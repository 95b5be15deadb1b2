"""A tiny enumerable product space for testing search-algorithm mechanics.

Architectures are token tuples ``t`` with ``t[i] in range(decisions[i])``; the encoding is
one-hot per position; mutation changes one position. ``invalid`` lists token tuples that
``from_tokens`` rejects (and that the enumeration leaves out), to exercise resampling.
"""

from __future__ import annotations

import itertools

import numpy as np

from oracles.errors import InvalidArchitecture
from oracles.space import FiniteSpace, check_tokens


class TinySpace(FiniteSpace):
    name = "tiny"

    def __init__(self, decisions=(3, 2, 4), invalid=()):
        self._decisions = tuple(decisions)
        self._invalid = {tuple(t) for t in invalid}
        self._archs = [t for t in itertools.product(*(range(d) for d in self._decisions))
                       if t not in self._invalid]
        self._index = {a: i for i, a in enumerate(self._archs)}

    @property
    def size(self):
        return len(self._archs)

    def arch(self, index):
        return self._archs[int(index)]

    def index(self, arch):
        try:
            return self._index[tuple(arch)]
        except KeyError:
            raise InvalidArchitecture(f"{arch!r} is not in the tiny space") from None

    def mutate(self, arch, rng):
        nbrs = self.neighbours(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbours(self, arch):
        out = []
        for i, d in enumerate(self._decisions):
            for v in range(d):
                if v != arch[i]:
                    cand = arch[:i] + (v,) + arch[i + 1:]
                    if cand not in self._invalid:
                        out.append(cand)
        return out

    def identity(self, arch):
        return ",".join(map(str, arch))

    @property
    def encoding_size(self):
        return sum(self._decisions)

    def encode(self, arch):
        v = np.zeros(self.encoding_size)
        v[np.cumsum((0,) + self._decisions[:-1]) + np.asarray(arch)] = 1.0
        return v

    @property
    def decisions(self):
        return self._decisions

    def tokens(self, arch):
        return tuple(arch)

    def from_tokens(self, tokens):
        t = check_tokens(tokens, self._decisions)
        if t in self._invalid:
            raise InvalidArchitecture(f"{t} is invalid")
        return t

    def to_string(self, arch):
        return self.identity(arch)

    def parse(self, text):
        try:
            tokens = [int(x) for x in text.split(",")]
        except (AttributeError, ValueError):
            raise InvalidArchitecture(f"bad tiny architecture {text!r}: write tokens like 0,1,2") from None
        return self.from_tokens(tokens)


def linear_values(space: TinySpace, seed: int = 0) -> np.ndarray:
    """A value per architecture: a random linear function of the encoding plus noise, in (0, 1)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=space.encoding_size)
    raw = space.encode_all() @ w + 0.3 * rng.normal(size=space.size)
    return 0.05 + 0.9 * (raw - raw.min()) / (raw.max() - raw.min())


def drive(algo, space, values, n, seed=0, train=None):
    """Run ``algo`` for ``n`` ask/tell steps on ``space`` scored by ``values`` (by index);
    ``train`` optionally gives training accuracies. Returns the architectures asked."""
    from oracles.oracle import Observation
    algo.start(space, np.random.default_rng(seed))
    out = []
    for _ in range(n):
        a = algo.ask()
        out.append(a)
        i = space.index(a)
        algo.tell(a, Observation(float(values[i]), train=None if train is None else float(train[i])))
    return out
