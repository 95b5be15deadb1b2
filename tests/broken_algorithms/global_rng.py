"""Random search without replacement whose permutation comes from numpy's *global* generator
(``np.random.permutation``) instead of the ``rng`` given to ``start``.

In a fresh process it may look reproducible; in a real experiment its runs depend on what
ran before them in the same worker, and every seed gives the same run. The ``global-rng``
check names the generator.
"""

from __future__ import annotations

import numpy as np

from algorithms.base import DONE, SearchAlgorithm


class GlobalRandom(SearchAlgorithm):
    """Random search drawing from np.random (broken on purpose)."""

    name = "global-random"
    needs_finite_space = True

    def __init__(self):
        pass

    def start(self, space, rng):
        self._space = space
        self._order = np.random.permutation(space.size).tolist()
        self._next = 0

    def ask(self):
        if self._next >= len(self._order):
            return DONE
        self._next += 1
        return self._space.arch(self._order[self._next - 1])

    def tell(self, arch, observation):
        pass
