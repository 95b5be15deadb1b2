"""Two ways to mishandle a failed result (a non-finite score: a training that diverged), the
bugs :class:`algorithms.base.FailedResults` rules out:

* :class:`PrefersFailures` replaces a non-finite score by ``0.0`` ("no result, count it as
  zero"), which is *better* than every negated loss, so its local search settles around the
  first failed cell and keeps asking its failing neighbours;
* :class:`CrashesOnFailures` standardises the scores it was told to pick a parent, and one
  ``-inf`` makes every weight NaN: the run fails at the first failure;
* :class:`EndsOnFailure` takes a failure for a sign that the search is over and answers
  ``DONE``: the run ends short of its budget.

Both keep every other rule of the interface (seeded, told scores only, DONE when exhausted,
no state outside a run), so only the ``failed-results`` check can tell.
"""

from __future__ import annotations

import math

import numpy as np

from algorithms.base import DONE, SearchAlgorithm


class PrefersFailures(SearchAlgorithm):
    """Greedy local search that takes a failed result for 0.0 (broken on purpose): after
    ``n_init`` random architectures it asks an unseen neighbour of the best one told so far
    (the latest of equal ones), or a random unseen architecture when the best has none.

    Parameters
    ----------
    n_init:
        random architectures before the local search (5: a short random start, so that the
        search has begun within the check's 30-architecture runs).
    """

    name = "prefers-failures"
    needs_finite_space = True

    def __init__(self, n_init: int = 5):
        self.n_init = int(n_init)

    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._unseen = np.ones(space.size, dtype=bool)
        self._told: list[int] = []
        self._scores: list[float] = []

    def _score(self, value: float) -> float:
        return value if math.isfinite(value) else 0.0     # the bug: "no result" as zero

    def _parent(self) -> int:
        # the latest of equal best ones (a ``>=`` comparison): it walks on among equal scores
        return self._told[len(self._scores) - 1 - int(np.argmax(self._scores[::-1]))]

    def ask(self):
        if not self._unseen.any():
            return DONE
        i = None
        if len(self._scores) >= self.n_init:
            near = self._space.neighbours(self._space.arch(self._parent()))
            options = [j for j in map(self._space.index, near) if self._unseen[j]]
            if options:
                i = options[int(self._rng.integers(len(options)))]
        if i is None:
            i = int(self._rng.choice(np.flatnonzero(self._unseen)))
        self._unseen[i] = False
        return self._space.arch(i)

    def tell(self, arch, observation):
        self._told.append(self._space.index(arch))
        self._scores.append(self._score(observation.value))


class CrashesOnFailures(PrefersFailures):
    """Local search from a parent drawn with probabilities softmax of the standardised scores
    (broken on purpose: it keeps a failure as ``-inf``, and the mean of the scores becomes
    ``-inf``, every weight NaN, and ``rng.choice`` raises)."""

    name = "crashes-on-failures"

    def _score(self, value: float) -> float:
        return value

    def _parent(self) -> int:
        y = np.asarray(self._scores)
        z = (y - y.mean()) / (y.std() + 1e-9)
        p = np.exp(z - z.max())
        return self._told[int(self._rng.choice(len(y), p=p / p.sum()))]


class EndsOnFailure(PrefersFailures):
    """Local search that answers DONE once it was told a failed result (broken on purpose: a
    failure is a result, not the end of the search)."""

    name = "ends-on-failure"

    def start(self, space, rng):
        super().start(space, rng)
        self._over = False

    def ask(self):
        return DONE if self._over else super().ask()

    def tell(self, arch, observation):
        super().tell(arch, observation)
        self._over = self._over or not math.isfinite(observation.value)
