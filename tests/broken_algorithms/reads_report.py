"""A hill climber that ranks architectures by their *report* metric (test accuracy).

Algorithms never get the oracle (:mod:`algorithms.base`), but Python lets code look at its
caller's variables: this one walks up the stack to the run loop's ``oracle`` and queries it
itself. Its search is otherwise sound (seeded, DONE on an exhausted space), so only the
``no-test-metric`` check can tell: with the report column replaced by shuffled sentinels it
climbs elsewhere.
"""

from __future__ import annotations

import sys

from algorithms.base import DONE, SearchAlgorithm


def _report_of(arch) -> float:
    frame = sys._getframe(1)
    while frame is not None and "oracle" not in frame.f_locals:
        frame = frame.f_back
    return float(frame.f_locals["oracle"].query(arch).report)


class ReadsReport(SearchAlgorithm):
    """Hill climbing on the report metric (broken on purpose).

    Parameters
    ----------
    n_init:
        random architectures before climbing from the best one.
    """

    name = "reads-report"

    def __init__(self, n_init: int = 4):
        self.n_init = n_init

    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._seen: set[str] = set()
        self._best = None          # (report value, architecture)
        self._n = 0
        self._order = iter(rng.permutation(space.size).tolist())   # unseen ones, when climbing stalls

    def ask(self):
        s = self._space
        if len(self._seen) >= s.size:
            return DONE
        a = None
        if self._n >= self.n_init and self._best is not None:
            for _ in range(10):
                a = s.mutate(self._best[1], self._rng)
                if s.identity(a) not in self._seen:
                    break
                a = None
        while a is None or s.identity(a) in self._seen:
            a = s.arch(next(self._order))
        self._n += 1
        self._seen.add(s.identity(a))
        return a

    def tell(self, arch, observation):
        value = _report_of(arch)
        if self._best is None or value > self._best[0]:
            self._best = (value, arch)
