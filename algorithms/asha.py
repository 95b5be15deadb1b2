"""Asynchronous successive halving (ASHA): Li, Jamieson, Rostamizadeh, Gonina, Ben-Tzur,
Hardt, Recht & Talwalkar, "A System for Massively Parallel Hyperparameter Tuning" (MLSys
2020), §3.2, Algorithm 2.

Successive halving without its synchronisation: there are no brackets, only rungs that
grow. Whenever a worker is free (every call of :meth:`ASHA.ask_trial`), ``get_job``:

1. for ``k`` from the second-highest rung down to the lowest: among the
   ``floor(|rung k| / eta)`` best results of rung ``k`` so far, the best one not yet
   promoted is promoted, i.e. asked at rung ``k + 1``'s fidelity with ``continues`` = the id
   of its rung-``k`` trial;
2. if no rung has one, a new architecture (uniformly random, never started before in this
   run) starts at the lowest rung.

Rung ``k`` holds the results *told* at its fidelity (a trial still running is in no rung),
so promotions depend on the order results arrive, which with several workers is the order
of their simulated training times. ASHA never answers ``WAIT``: there is always a new
architecture to start, except on a finite space whose every architecture has started (then
``WAIT`` while trials run, since their results may make a promotion possible, and ``DONE``
once nothing runs and nothing can be promoted).

Rungs are the served fidelities :func:`~algorithms.successive_halving.rung_ladder` maps the
geometric schedule ``r * eta^k`` onto (anchored at the largest fidelity ``R``, the top rung,
where the runner reports results); ``early_stopping_rate = s`` drops the lowest ``s`` rungs
(Algorithm 2's ``r * eta^(s + k)``). The paper's minimum resource ``r`` and maximum ``R``
depend on the benchmark, so they are the oracle's smallest and largest fidelities
(``min_fidelity`` raises ``r``). With ``eta = 4``: NAS-Bench-201's 12/200 epochs give rungs
12 and 200; NAS-Bench-101's 4/12/36/108 give 4, 36, 108 (108/16 = 6.75 is nearer 4 than 12
on a log scale, 108/4 = 27 nearer 36); epochs 1..50 of a learning curve give 3, 13, 50
(50/16 = 3.1 and 50/4 = 12.5 rounded on a log scale).

Ties are broken by trial id (the earlier trial ranks first); a non-finite result ranks last.
"""

from __future__ import annotations

import bisect

from .base import DONE, WAIT, Ask
from .successive_halving import (MultiFidelitySearch, _check_early_stopping_rate, _check_eta, _check_min_fidelity,
                                 _rungs_after)


class ASHA(MultiFidelitySearch):
    """Asynchronous successive halving (Li et al. 2020, Algorithm 2).

    Parameters
    ----------
    eta:
        Reduction factor, an integer >= 2: a result can be promoted once it is among the best
        ``1/eta`` of its rung (default 4, the value of Li et al. 2020's experiments, §4).
    early_stopping_rate:
        ``s`` of Algorithm 2: the lowest ``s`` rungs of the ladder are not used (default 0,
        the most aggressive early stopping, as in the paper's experiments).
    min_fidelity:
        The minimum resource ``r``; ``None`` (default): the oracle's smallest fidelity, since
        the paper's ``r`` depends on the benchmark. The maximum resource ``R`` is always the
        oracle's largest fidelity.
    """

    name = "asha"
    summary = ("asynchronous successive halving: promote from the highest rung with an "
               "unpromoted result in its top 1/eta, else start a new architecture; never waits")
    paper = ("Li, Jamieson, Rostamizadeh, Gonina, Ben-Tzur, Hardt, Recht & Talwalkar, A System for "
             "Massively Parallel Hyperparameter Tuning (MLSys 2020), §3.2 (Algorithm 2) and §4 "
             "(eta = 4, s = 0)")

    def __init__(self, eta: int = 4, early_stopping_rate: int = 0, min_fidelity: int | None = None):
        self.eta = _check_eta(eta)
        self.early_stopping_rate = _check_early_stopping_rate(early_stopping_rate)
        self.min_fidelity = _check_min_fidelity(min_fidelity)

    def start(self, space, rng, fidelities=None):
        super().start(space, rng, fidelities)
        self._rungs = _rungs_after(self._ladder, self.early_stopping_rate)
        # per rung: results told so far as (-score, trial id), kept sorted (best first)
        self._ranked: list[list[tuple[float, int]]] = [[] for _ in self._rungs]
        self._promoted: set[int] = set()        # trial ids whose architecture went up a rung
        self._trial: dict[int, tuple[int, object]] = {}   # trial id -> (rung, arch), asked
        self._started: set[str] = set()         # identities started at the lowest rung
        self._n_new = self._n_promotions = 0

    @property
    def rungs(self):
        """The rung fidelities ASHA uses, lowest first (the ladder less the lowest
        ``early_stopping_rate`` rungs)."""
        return self._rungs

    def ask_trial(self):
        if self._space_done():
            return DONE
        tid = self._next_id
        for k in range(len(self._rungs) - 2, -1, -1):
            ranked = self._ranked[k]
            for _, parent in ranked[:len(ranked) // self.eta]:
                if parent not in self._promoted:
                    self._promoted.add(parent)
                    arch = self._trial[parent][1]
                    self._trial[tid] = (k + 1, arch)
                    self._n_promotions += 1
                    return self._issue(Ask(arch, fidelity=self._rungs[k + 1], continues=parent))
        arch = self.new_architecture(self._rungs[0], self._started)
        if arch is None:
            return WAIT if self._outstanding else DONE
        self._started.add(self._space.identity(arch))
        self._trial[tid] = (0, arch)
        self._n_new += 1
        return self._issue(Ask(arch, fidelity=self._rungs[0]))

    def _told(self, trial, value):
        k = self._trial[trial.id][0]
        bisect.insort(self._ranked[k], (-value, trial.id))   # -(-inf) = inf: failures last

    def rung_results(self, k: int) -> list[tuple[int, float]]:
        """Rung ``k``'s results so far, best first, as ``(trial id, score)``."""
        return [(t, -v) for v, t in self._ranked[k]]

    def diagnostics(self):
        return {"rungs": list(self._rungs), "rung_sizes": [len(r) for r in self._ranked],
                "started": self._n_new, "promotions": self._n_promotions}
