"""Hill climbing with restarts over any nas-harness search space.

Why it is a sensible baseline. Tabular NAS spaces are small-diameter graphs (on NAS-Bench-201
every architecture is at most 6 single-edge changes from any other, with 24 neighbours each)
whose accuracy landscape is locally correlated: a neighbour of a good architecture tends to be
good. A local search exploits exactly that correlation and nothing else, so it is the
natural yardstick between random search (no correlation used) and model-based methods (a
learned correlation): a method that does not beat a hill climber has not learned more than
"good architectures have good neighbours". Restarts are what keeps it a complete search:
once every neighbour of the current architecture is evaluated and none is better (a local
optimum), it starts again elsewhere, so on a finite space it ends only when every
architecture has been evaluated.

The climb (one run):

1. Start from an architecture not evaluated in this run: uniformly random (``kick=0``), or
   ``kick`` random mutations away from the best architecture found so far (``kick>0``: an
   *iterated* local search, which restarts near the best local optimum instead of anywhere).
2. ``strategy="first"``: evaluate the neighbours (:meth:`~oracles.space.SearchSpace.neighbours`)
   in random order and move to the first one that is better than the current architecture.
   ``strategy="best"``: evaluate the whole neighbourhood, then move to its best member if it
   is better (steepest ascent: more evaluations per step, fewer steps).
3. When no neighbour is better, go to 1.

It never asks an architecture it has already asked in this run (values already known are
used directly), so under the harness's distinct-architecture budget every ask is charged and
the run never stalls on repeats. With several simulated workers (``--workers-per-run``) it
keeps asking untried neighbours while results are outstanding and answers ``WAIT`` only when
its next move needs one of them; results may arrive in any order.

Everything random comes from the generator ``start`` receives, so a seed fixes the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algorithms.base import DONE, WAIT, SearchAlgorithm
from oracles.space import FiniteSpace

PRESETS: dict[str, dict[str, Any]] = {
    # first improvement, uniform restarts: the cheapest step (one better neighbour suffices)
    "restarts": {"strategy": "first", "kick": 0},
    # steepest ascent, uniform restarts
    "steepest": {"strategy": "best", "kick": 0},
    # first improvement, restarts 3 mutations from the best architecture so far
    "iterated": {"strategy": "first", "kick": 3},
}


class HillClimber(SearchAlgorithm):
    """Hill climbing with restarts: move to a better neighbour until none is, then restart.

    Parameters
    ----------
    preset:
        ``"restarts"`` (default: first improvement, uniform restarts), ``"steepest"`` (best
        improvement, uniform restarts) or ``"iterated"`` (first improvement, restarts 3
        mutations away from the best architecture found so far).
    strategy:
        ``"first"``: move to the first better neighbour found (neighbours in random order);
        ``"best"``: evaluate every neighbour, then move to the best if it is better.
        ``None``: the preset's.
    kick:
        Restart point: 0 for a uniformly random unevaluated architecture, k > 0 for k random
        mutations of the best architecture found so far. ``None``: the preset's.
    max_draws:
        Random draws (or walk steps) tried per restart before falling back to a scan of the
        enumeration for an unevaluated architecture (finite spaces) or giving up (infinite
        ones); default 1000, far more than a space with any unevaluated architecture left
        needs on average.
    """

    name = "hillclimb"
    summary = "hill climbing with restarts (first or best improvement; optional iterated restarts)"
    paper = ""    # no paper: the module docstring gives the rationale
    presets = PRESETS

    def __init__(self, preset: str = "restarts", strategy: str | None = None, kick: int | None = None,
                 max_draws: int = 1000):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if strategy is not None and strategy not in ("first", "best"):
            raise ValueError(f"strategy must be 'first' or 'best', got {strategy!r}")
        if kick is not None and int(kick) < 0:
            raise ValueError(f"kick must be >= 0, got {kick}")
        if int(max_draws) < 1:
            raise ValueError(f"max_draws must be >= 1, got {max_draws}")
        self.preset = preset
        self.strategy = strategy
        self.kick = kick
        self.max_draws = max_draws

    # -- the run --------------------------------------------------------------------
    def start(self, space, rng):
        chosen = PRESETS[self.preset]
        self._strategy = self.strategy if self.strategy is not None else chosen["strategy"]
        self._kick = int(self.kick if self.kick is not None else chosen["kick"])
        self._space, self._rng = space, rng
        # a move needs the identity of every neighbour, and neighbourhoods overlap: each
        # architecture's identity is computed once per run (a ConvNet spec's costs ~50 us)
        self._ids: dict[Any, str] = {}
        self._values: dict[str, float] = {}     # identity -> told value
        self._asked: set[str] = set()           # identities asked in this run
        self._pending: set[str] = set()         # asked, not yet told
        self._current = None                    # the architecture being climbed from
        self._current_value = -np.inf
        self._starting: str | None = None       # identity of the restart point awaiting its value
        self._hood: dict[str, Any] = {}         # the current architecture's neighbours
        self._queue: list[Any] = []             # neighbours still to ask, in ask order
        self._best: tuple[float, Any] | None = None
        self._scan: list[int] | None = None     # fallback order over a finite enumeration
        self._scan_at = 0
        self._climbs = self._moves = self._optima = 0

    def ask(self):
        space = self._space
        while True:
            if self._current is None:
                if self._starting is not None:
                    return WAIT                 # the restart point's value is still to come
                arch = self._restart_point()
                if arch is None:
                    return WAIT if self._pending else DONE
                self._starting = self._identity(arch)
                self._climbs += 1
                return self._ask(arch)
            while self._queue:
                arch = self._queue.pop()
                ident = self._identity(arch)
                if ident not in self._asked:
                    return self._ask(arch)
            if any(i in self._pending for i in self._hood):
                return WAIT                     # the step needs a neighbour still running
            if self._strategy == "best":
                better = self._best_known_neighbour()
                if better is not None:
                    self._move(*better)
                    continue
            self._optima += 1                   # no neighbour is better: restart
            self._current, self._hood, self._queue = None, {}, []

    def tell(self, arch, observation):
        ident = self._identity(arch)
        value = float(observation.value)
        self._values[ident] = value
        self._pending.discard(ident)
        if self._best is None or value > self._best[0]:
            self._best = (value, arch)
        if ident == self._starting:
            self._starting = None
            self._move(arch, value, restart=True)
        elif self._strategy == "first" and ident in self._hood and value > self._current_value:
            self._move(arch, value)

    def diagnostics(self) -> dict[str, Any]:
        return {"climbs": self._climbs, "moves": self._moves, "local_optima": self._optima}

    # -- helpers --------------------------------------------------------------------
    def _identity(self, arch) -> str:
        ident = self._ids.get(arch)
        if ident is None:
            ident = self._ids[arch] = self._space.identity(arch)
        return ident

    def _ask(self, arch):
        ident = self._identity(arch)
        self._asked.add(ident)
        self._pending.add(ident)
        return arch

    def _move(self, arch, value: float, restart: bool = False) -> None:
        """Climb to ``arch`` (``restart``: begin a climb there); with first improvement,
        follow any better neighbour already known at once (its value costs nothing)."""
        space = self._space
        while True:
            self._current, self._current_value = arch, value
            self._moves += not restart
            restart = False
            hood = space.neighbours(arch)
            self._hood = {self._identity(n): n for n in hood}
            order = self._rng.permutation(len(hood))
            self._queue = [hood[int(k)] for k in order[::-1]]   # popped from the end: ``order``'s order
            if self._strategy != "first":
                return
            better = next(((self._values[i], n) for n in (hood[int(k)] for k in order)
                           if (i := self._identity(n)) in self._values and self._values[i] > value), None)
            if better is None:
                return
            value, arch = better

    def _best_known_neighbour(self):
        known = [(self._values[i], n) for i, n in self._hood.items() if i in self._values]
        if not known:
            return None
        value, arch = max(known, key=lambda vn: vn[0])
        return (arch, value) if value > self._current_value else None

    def _restart_point(self):
        space, rng = self._space, self._rng
        if self._kick and self._best is not None:
            arch = self._best[1]
            for step in range(1, self.max_draws + 1):   # at least ``kick`` mutations away
                arch = space.mutate(arch, rng)
                if step >= self._kick and self._identity(arch) not in self._asked:
                    return arch
        for _ in range(self.max_draws):
            arch = space.sample(rng)
            if self._identity(arch) not in self._asked:
                return arch
        if not isinstance(space, FiniteSpace):
            return None
        # nearly exhausted: scan one random order of the enumeration
        if self._scan is None:
            self._scan = rng.permutation(space.size).tolist()
        while self._scan_at < len(self._scan):
            arch = space.arch(self._scan[self._scan_at])
            self._scan_at += 1
            if self._identity(arch) not in self._asked:
                return arch
        return None
