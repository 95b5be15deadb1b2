"""Model-based search with its acquisition the wrong way round (a sign error, the bug a
minimised metric invites): it fits a linear model of the scores it was told on the space's
encoding, as a surrogate, and asks the unseen architecture the model predicts *worst*
(``argmin`` where ``argmax`` was meant).

It keeps every rule of the interface (seeded, told scores only, DONE when exhausted), so only
the samples-to-optimum comparison can tell: it needs far more samples than random search.
"""

from __future__ import annotations

import numpy as np

from algorithms.base import DONE, SearchAlgorithm


class Contrarian(SearchAlgorithm):
    """Linear-surrogate search asking the predicted worst (broken on purpose).

    Parameters
    ----------
    n_init:
        random architectures before the first fit.
    refit:
        scores told between two fits of the model.
    """

    name = "contrarian"
    needs_finite_space = True

    def __init__(self, n_init: int = 10, refit: int = 50):
        self.n_init, self.refit = n_init, refit

    def start(self, space, rng):
        self._space = space
        self._X = np.c_[space.encode_all(), np.ones(space.size)]
        self._order = rng.permutation(space.size).tolist()[::-1]   # the random start, popped from the end
        self._unseen = np.ones(space.size, dtype=bool)
        self._told: list[int] = []
        self._y: list[float] = []
        self._pred = None
        self._fitted = 0

    def ask(self):
        if not self._unseen.any():
            return DONE
        if len(self._y) < self.n_init:
            while not self._unseen[self._order[-1]]:
                self._order.pop()
            i = self._order.pop()
        else:
            if self._pred is None or len(self._y) - self._fitted >= self.refit:
                w = np.linalg.lstsq(self._X[self._told], np.asarray(self._y), rcond=None)[0]
                self._pred, self._fitted = self._X @ w, len(self._y)
            i = int(np.argmin(np.where(self._unseen, self._pred, np.inf)))   # the bug: the worst predicted
        self._unseen[i] = False
        return self._space.arch(i)

    def tell(self, arch, observation):
        self._told.append(self._space.index(arch))
        self._y.append(observation.value)
