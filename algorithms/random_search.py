"""Uniform random search: the baseline every NAS paper compares against.

On a finite space it samples *without replacement* (a lazily consumed random permutation of
the enumeration), as in the LaNAS protocol (Wang et al., Sample-Efficient Neural
Architecture Search by Learning Action Space, §4.2 and Fig. 5: every sample is a distinct
architecture); the expected number of samples to draw one given architecture out of N is
then (N + 1) / 2. On an infinite space it samples uniformly and leaves
de-duplication to the runner.
"""

from __future__ import annotations

from oracles.space import FiniteSpace

from .base import DONE, SearchAlgorithm


class RandomSearch(SearchAlgorithm):
    """Random search.

    Parameters
    ----------
    replace:
        Sample with replacement on finite spaces (default ``False``: without replacement).
    """

    name = "random"
    paper = ("the baseline of Wang et al., Sample-Efficient Neural Architecture Search by Learning "
             "Action Space, §4.2 (Fig. 5: distinct samples, i.e. without replacement)")

    def __init__(self, replace: bool = False):
        self.replace = replace

    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._finite = isinstance(space, FiniteSpace) and not self.replace
        self._order: list[int] | None = None
        self._next = 0

    def ask(self):
        if not self._finite:
            return self._space.sample(self._rng)
        if self._order is None:
            # one permutation per run: O(N) once, then O(1) per ask (as Python ints: no numpy
            # scalar to convert per ask)
            self._order = self._rng.permutation(self._space.size).tolist()
        if self._next >= len(self._order):
            return DONE  # every architecture of the space evaluated
        i = self._order[self._next]
        self._next += 1
        return self._space.arch(i)

    def tell(self, arch, observation):
        pass
