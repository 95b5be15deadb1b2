"""Random search without replacement that walks an iterator with ``next()`` and lets its
``StopIteration`` escape when the space is exhausted, the Python idiom for "no more".

The runner fails such a run (a stray ``StopIteration`` from a bug must never pass for an
exhausted space, see :mod:`algorithms.base`); the ``stopping`` check says to return ``DONE``.
"""

from __future__ import annotations

from algorithms.base import SearchAlgorithm


class StopsByRaising(SearchAlgorithm):
    """Random search that ends with StopIteration (broken on purpose)."""

    name = "stops-by-raising"
    needs_finite_space = True

    def __init__(self):
        pass

    def start(self, space, rng):
        self._space = space
        self._order = iter(rng.permutation(space.size).tolist())

    def ask(self):
        return self._space.arch(next(self._order))

    def tell(self, arch, observation):
        pass
