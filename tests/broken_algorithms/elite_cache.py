"""Random search with a module-level "elite cache": the best architectures told are kept in
a module dictionary and re-asked first, and the cache is cleared in ``diagnostics()``, which
the runner calls when a run ends, so that the next run starts clean.

A run that finishes leaves nothing behind, so every run of a process replays for its seed.
A run that is killed half-way (Ctrl-C, a lost worker) never reaches ``diagnostics()``: the
next run in that process starts from its elites, while the same run resumed in a fresh
process does not. Only the ``resume`` check can tell.
"""

from __future__ import annotations

from algorithms.base import DONE, SearchAlgorithm

#: identity -> architecture of the best ones told in the current run (and, after a kill, the last)
_ELITES: dict = {}


class EliteCache(SearchAlgorithm):
    """Random search re-asking a module-level cache of elites first (broken on purpose)."""

    name = "elite-cache"
    needs_finite_space = True

    def __init__(self):
        pass

    def start(self, space, rng):
        self._space = space
        self._first = list(_ELITES.values())
        self._order = rng.permutation(space.size).tolist()
        self._seen: set[str] = set()
        self._best = None

    def ask(self):
        s = self._space
        while self._first:
            a = self._first.pop()
            if s.identity(a) not in self._seen:
                self._seen.add(s.identity(a))
                return a
        while self._order:
            a = s.arch(self._order.pop())
            if s.identity(a) not in self._seen:
                self._seen.add(s.identity(a))
                return a
        return DONE

    def tell(self, arch, observation):
        if self._best is None or observation.value > self._best:
            self._best = observation.value
            _ELITES[self._space.identity(arch)] = arch

    def diagnostics(self):
        _ELITES.clear()
        return {}
