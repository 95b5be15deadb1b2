"""Regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image
Classifier Architecture Search", Algorithm 1), as used as a baseline by LaNAS
(../shared/papers/004_*, §4.2 "Baselines" and "Analysis of Results").

The algorithm (Real et al., Alg. 1):

1. Initialise a population of ``population`` architectures drawn uniformly at random and
   evaluate them.
2. Each cycle: draw ``sample_size`` members of the population uniformly at random (with
   replacement, as in Real et al.'s pseudo-code), take the one with the best search metric
   as parent, apply the space's mutation (``space.mutate``), evaluate the child, append it
   to the population and remove the *oldest* member (not the worst: that is the
   "regularization").

Defaults and where they come from:

* ``population=500``: LaNAS §4.2 describes its regularized-evolution baseline as keeping
  "a pool of top 500 architectures for random mutations".
* ``sample_size=25``: the tournament size of Real et al.'s main experiments (P=100, S=25);
  LaNAS does not state its S. (The NAS-Bench-201 paper's REA used a much smaller
  population; pass ``population=10,sample_size=3`` for that style of run.)

Repeated architectures: the runner answers an architecture it has already evaluated from
its per-run cache without charging the budget and tells the result again. Real et al.
would have re-trained the child; here the cached result stands for that re-training, so a
repeat still joins the population and ages it exactly like any child (the algorithm's
dynamics are unchanged; only the budget, which counts distinct architectures as in the
LaNAS protocol, ignores it). On a small space this can stall: once every neighbour of
every member has been evaluated, every child is a repeat and the population never changes
(seen on the 1,364-network ConvNet space). ``novel_children=True`` instead re-draws the
mutation (up to ``max_redraws`` times) and, if the parent's neighbourhood is exhausted,
keeps mutating the child (up to ``max_redraws`` further steps) so every cycle proposes an
unseen child whenever one is that close.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .base import SearchAlgorithm


class RegularizedEvolution(SearchAlgorithm):
    """Aging evolution (Real et al. 2019, Alg. 1).

    Parameters
    ----------
    population:
        Population size P (default 500, the pool size LaNAS §4.2 states).
    sample_size:
        Tournament size S, 1 <= S (default 25, Real et al. 2019). Members are drawn with
        replacement, so S may exceed P.
    novel_children:
        Re-draw (then extend) a mutation whose child was already evaluated in this run
        (default False: Real et al.'s algorithm as published; see the module docstring).
    max_redraws:
        Mutations tried from the parent, and then walk steps from the child, per cycle when
        ``novel_children`` is set (default 100).
    """

    name = "evolution"

    def __init__(self, population: int = 500, sample_size: int = 25,
                 novel_children: bool = False, max_redraws: int = 100):
        if int(population) < 1:
            raise ValueError(f"population must be >= 1, got {population}")
        if int(sample_size) < 1:
            raise ValueError(f"sample_size must be >= 1, got {sample_size}")
        if int(max_redraws) < 1:
            raise ValueError(f"max_redraws must be >= 1, got {max_redraws}")
        self.population = int(population)
        self.sample_size = int(sample_size)
        self.novel_children = bool(novel_children)
        self.max_redraws = int(max_redraws)

    def start(self, space, rng):
        self._space, self._rng = space, rng
        # (arch, value) in age order: left = oldest
        self._pop: deque = deque()
        self._seen: set[str] = set()
        self._n_init_asked = 0
        self._n_cycles = 0
        self._n_repeat_children = 0
        self._n_removed = 0
        self._init_order = None

    # -- ask ------------------------------------------------------------------------
    def ask(self):
        if self._n_init_asked < self.population:
            self._n_init_asked += 1
            return self._initial_sample()
        self._n_cycles += 1
        parent = self._tournament()
        child = self._space.mutate(parent, self._rng)
        if self.novel_children:
            tries = 1
            while self._space.identity(child) in self._seen and tries < self.max_redraws:
                child = self._space.mutate(parent, self._rng)
                tries += 1
            # every neighbour of the parent already evaluated: keep mutating the child (a
            # short random walk) so the search can leave an exhausted neighbourhood
            steps = 0
            while self._space.identity(child) in self._seen and steps < self.max_redraws:
                child = self._space.mutate(child, self._rng)
                steps += 1
        if self._space.identity(child) in self._seen:
            self._n_repeat_children += 1
        return child

    def _initial_sample(self):
        # On a finite space draw the initial population without replacement (a random
        # permutation of the enumeration), so P distinct random architectures start it.
        size = getattr(self._space, "size", None)
        if size is not None and hasattr(self._space, "arch"):
            if self._init_order is None:
                k = min(self.population, size)
                self._init_order = self._rng.choice(size, size=k, replace=False)
            j = self._n_init_asked - 1
            if j < len(self._init_order):
                return self._space.arch(int(self._init_order[j]))
        return self._space.sample(self._rng)

    def _tournament(self):
        if not self._pop:
            # every initial answer was lost; fall back to a random architecture's mutation
            return self._space.sample(self._rng)
        picks = self._rng.integers(len(self._pop), size=self.sample_size)
        values = np.fromiter((self._pop[int(i)][1] for i in picks), dtype=np.float64,
                             count=len(picks))
        # first maximum among the drawn members (ties: the earlier draw)
        return self._pop[int(picks[int(np.argmax(values))])][0]

    # -- tell -----------------------------------------------------------------------
    def tell(self, arch, observation):
        self._seen.add(self._space.identity(arch))
        value = float(observation.value)
        if not np.isfinite(value):
            value = -np.inf  # a failed training never wins a tournament
        self._pop.append((arch, value))
        if len(self._pop) > self.population:
            self._pop.popleft()  # aging: remove the oldest, whatever its value
            self._n_removed += 1

    def diagnostics(self):
        return {"cycles": self._n_cycles, "repeat_children": self._n_repeat_children,
                "removed": self._n_removed, "population_now": len(self._pop)}
