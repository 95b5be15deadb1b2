"""Synchronous successive halving: Jamieson & Talwalkar, "Non-stochastic Best Arm
Identification and Hyperparameter Optimization" (AISTATS 2016), in the form Hyperband runs
it as its inner loop (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: A Novel
Bandit-Based Approach to Hyperparameter Optimization", JMLR 2018, §3, Algorithm 1),
with the rung notation of Li et al., "A System for Massively Parallel Hyperparameter
Tuning" (MLSys 2020), §3.1, Algorithm 1.

One *bracket*: draw ``n`` architectures and evaluate them at the lowest rung's fidelity;
when every result of the rung is in, keep the best ``floor(|rung| / eta)`` and evaluate
them at the next rung's fidelity; repeat until the highest rung. The rung sizes are then
Hyperband's ``n_i = floor(n * eta^-i)`` (for an integer ``eta``, ``floor(floor(n /
eta^i) / eta) = floor(n / eta^(i+1))``). A bracket is *synchronous*: while a rung still has
results outstanding and nothing else of the bracket can start, :meth:`ask_trial` answers
:data:`~algorithms.base.WAIT` (the runner may run several trials at once; they all wait for
the slowest of the rung). When a bracket ends, a new one starts with fresh draws, so the
search runs until the runner's budget stops it. Every promotion asks with ``continues`` =
the id of the trial being promoted (on *prefix* fidelities the runner then charges only
the extra epochs; on *restart* fidelities a promotion is a new training at full price).

Rungs: from the paper's geometric schedule to the fidelities an oracle serves
------------------------------------------------------------------------------

The papers' rungs are ``r_i = r * eta^i`` up to the maximum resource ``R``; an oracle
answers only at its :class:`~oracles.oracle.Fidelities`. :func:`rung_ladder` maps one onto
the other, the same way for successive halving, Hyperband and ASHA:

1. ``lo`` = the smallest served fidelity (or the smallest one >= ``min_fidelity``),
   ``hi`` = the largest (the runner reports results at the top fidelity, so the last rung
   is always ``hi``, as Hyperband's last rung is always ``R``).
2. ``K`` = the largest k with ``lo * eta^k <= hi``; the geometric schedule anchored at
   the top, as Hyperband's ``r = R * eta^-s``, is ``hi * eta^(i - K)`` for ``i = 0..K``.
3. Each value is replaced by the served fidelity nearest to it on a log scale (ties: the
   smaller, cheaper one), and repeats are dropped.

Where the served values are the geometric schedule, this is the papers' schedule exactly:
NAS-Bench-101's 4/12/36/108 epochs with ``eta = 3`` give rungs 4, 12, 36, 108. On
NAS-Bench-201's two fidelities (12 and 200 epochs) it gives the two rungs 12 and 200 for any
``eta`` from 2 to 16. On a prefix oracle serving every epoch 1..50 with ``eta = 3`` it gives
2, 6, 17, 50 (50/27, 50/9, 50/3 and 50 rounded on a log scale). The reduction factor stays
``eta`` whatever the served values: the best ``1/eta`` of a rung go up, even where the
fidelity ratio between two rungs is not ``eta`` (NB201: 200/12), so there the papers'
equal-budget-per-rung property holds only approximately.

Ties between results are broken by trial id (the earlier ask ranks first); a non-finite
result (a failed training) ranks last.

These algorithms (and Hyperband, ASHA, BOHB, all on :class:`MultiFidelitySearch`) speak
only the trial surface: ``ask_trial``/``tell_trial``. Plain ``ask()``/``tell()`` raise
``RuntimeError`` saying so, because an architecture without its fidelity would be evaluated
at the wrong budget and a result without its trial id cannot be matched to a rung. They end
a run with ``DONE`` once every architecture of a finite space has a result at the top rung.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from oracles.oracle import Fidelities, Observation
from oracles.space import Arch, SearchSpace

from .base import DONE, WAIT, Ask, SearchAlgorithm, Trial

#: uniform draws tried before enumerating the architectures still free (finite spaces), or
#: before giving up (spaces too large to enumerate)
_REJECTION_TRIES = 64


def rung_ladder(fidelities: Fidelities, eta: int, min_fidelity: int | None = None) -> tuple[int, ...]:
    """The served fidelities used as rungs, lowest first: the geometric schedule
    ``hi * eta^(i - K)`` mapped onto ``fidelities.values`` (see the module docstring).

    ``min_fidelity``: the smallest fidelity a rung may have (default: the oracle's smallest).
    """
    eta = int(eta)
    if eta < 2:
        raise ValueError(f"eta must be an integer >= 2, got {eta}")
    served = [int(v) for v in fidelities.values if min_fidelity is None or v >= min_fidelity]
    if not served:
        raise ValueError(f"min_fidelity {min_fidelity} is above every served fidelity "
                         f"{list(fidelities.values)}")
    lo, hi = served[0], served[-1]
    k = 0
    while lo * eta ** (k + 1) <= hi:   # integers: exact, so 4 * 3^3 <= 108 holds
        k += 1
    rungs: list[int] = []
    for i in range(k + 1):
        ideal = hi / eta ** (k - i)
        near = min(served, key=lambda v: (abs(math.log(v / ideal)), v))
        if not rungs or near > rungs[-1]:
            rungs.append(near)
    return tuple(rungs)


def score(observation: Observation) -> float:
    """The value a rung ranks by: the observation's score (to maximise), a non-finite one
    (a failed training) as ``-inf``."""
    v = float(observation.value)
    return v if math.isfinite(v) else -math.inf


class Bracket:
    """The rung bookkeeping of one synchronous successive-halving bracket.

    ``rungs``: the bracket's fidelities, lowest first; ``n``: architectures drawn for the
    lowest rung; ``eta``: reduction factor (rung ``i + 1`` holds the best
    ``floor(|rung i| / eta)`` of rung ``i``, at least one, so a bracket always reaches its
    last rung); ``identity``: the space's identity function (architectures are distinct
    within a bracket).

    :meth:`next_ask` gives the bracket's next :class:`Ask` for trial id ``trial_id``,
    :data:`WAIT` when the current rung has results outstanding and nothing else can start,
    or ``None`` when the bracket is over; :meth:`tell` records a result by trial id.
    """

    def __init__(self, rungs: Sequence[int], n: int, eta: int, identity: Callable[[Arch], str]):
        if n < 1:
            raise ValueError(f"a bracket needs at least one architecture, got n={n}")
        self.rungs = tuple(rungs)
        self.n = int(n)
        self.eta = int(eta)
        self._identity = identity
        self.level = 0                                    # the rung being filled
        #: per rung: [trial id, arch, value or None], in ask order
        self.members: list[list[list]] = [[] for _ in self.rungs]
        self._told = [0] * len(self.rungs)
        self._queue: list[list] = []                      # promotions not yet asked, best first
        self._entry: dict[int, tuple[int, list]] = {}     # trial id -> (rung, member)
        self.taken: set[str] = set()                      # identities drawn in this bracket
        self._bottom_open = True
        self.finished = False

    @property
    def planned_sizes(self) -> tuple[int, ...]:
        """``n_i = floor(n * eta^-i)`` (at least one): the rung sizes when ``n``
        distinct architectures could be drawn."""
        return tuple(max(1, self.n // self.eta ** i) for i in range(len(self.rungs)))

    def sizes(self) -> tuple[int, ...]:
        """How many trials each rung has asked so far."""
        return tuple(len(m) for m in self.members)

    @property
    def outstanding(self) -> int:
        """Trials asked whose results have not arrived."""
        return sum(len(m) for m in self.members) - sum(self._told)

    def next_ask(self, trial_id: int, draw: Callable[[int, set[str]], Arch | None]) -> Any:
        """The next ask of this bracket, as trial ``trial_id``; ``draw(fidelity, taken)``
        gives a new architecture for the lowest rung (or ``None``: none left)."""
        while not self.finished:
            lvl = self.level
            if self._bottom_open:
                if len(self.members[0]) < self.n:
                    arch = draw(self.rungs[0], self.taken)
                    if arch is not None:
                        ident = self._identity(arch)
                        if ident in self.taken:
                            raise ValueError(f"the architecture drawn ({ident}) is already in this "
                                             f"bracket: a draw must avoid the identities in `taken`")
                        self.taken.add(ident)
                        return self._add(0, trial_id, arch, None)
                self._bottom_open = False   # n drawn, or the space ran out
            if self._queue:
                parent = self._queue.pop(0)
                return self._add(lvl, trial_id, parent[1], parent[0])
            if self._told[lvl] < len(self.members[lvl]):
                return WAIT
            if lvl == len(self.rungs) - 1 or not self.members[lvl]:
                self.finished = True
                break
            # the rung is complete: promote its best floor(|rung| / eta), best first; the
            # sort is stable, so equal values keep ask (trial id) order
            ranked = sorted(self.members[lvl], key=lambda m: -m[2])
            self._queue = ranked[:max(1, len(ranked) // self.eta)]
            self.level = lvl + 1
        return None

    def _add(self, lvl: int, trial_id: int, arch: Arch, continues: int | None) -> Ask:
        member = [trial_id, arch, None]
        self.members[lvl].append(member)
        self._entry[trial_id] = (lvl, member)
        return Ask(arch, fidelity=self.rungs[lvl], continues=continues)

    def tell(self, trial_id: int, value: float) -> None:
        lvl, member = self._entry[trial_id]
        if member[2] is not None:
            raise ValueError(f"trial {trial_id} was already told")
        member[2] = value
        self._told[lvl] += 1


class MultiFidelitySearch(SearchAlgorithm):
    """What successive halving, Hyperband and ASHA share: the rung ladder, trial ids, the
    architecture draw, the record of results per fidelity, and the end of a finite space.

    Subclasses implement :meth:`ask_trial` and :meth:`_told` (bookkeeping of one result);
    they ask through :meth:`_issue`, which numbers the asks as the runner does.
    """

    uses_fidelities = True

    # set by subclasses' constructors
    eta: int
    min_fidelity: int | None

    def start(self, space: SearchSpace, rng: np.random.Generator, fidelities: Fidelities | None = None):
        if fidelities is None:
            raise ValueError(f"{self.name} chooses fidelities: start(space, rng, fidelities) needs "
                             f"the oracle's Fidelities")
        self._space, self._rng, self._fidelities = space, rng, fidelities
        self._ladder = rung_ladder(fidelities, self.eta, self.min_fidelity)
        self._next_id = 0
        self._trial_fidelity: dict[int, int] = {}
        self._obs: dict[int, list[tuple[Arch, float]]] = {f: [] for f in fidelities.values}
        self._top_done: set[str] = set()
        self._started_at: dict[int, set[str]] = {}   # fidelity -> identities asked at it
        self._finite = space.is_finite

    # -- what subclasses and BOHB read ---------------------------------------------------
    @property
    def rungs(self) -> tuple[int, ...]:
        """The rung fidelities of this run, lowest first (:func:`rung_ladder`)."""
        return self._ladder

    def observations(self, fidelity: int) -> list[tuple[Arch, float]]:
        """Every result told at ``fidelity`` in this run, in tell order, as
        ``(architecture, score)`` (non-finite scores as ``-inf``; an architecture evaluated
        twice at one fidelity appears twice)."""
        return list(self._obs.get(fidelity, ()))

    def new_architecture(self, fidelity: int, taken: set[str]) -> Arch | None:
        """A new architecture to start at ``fidelity``: uniformly random among those whose
        identity is not in ``taken`` and that this run has not yet asked at this or a higher
        fidelity (evaluating one again would be a free repeat that tells nothing new: on a
        finite space the brackets sample without replacement, as random search does here, and
        the run ends with DONE once nothing new is left); ``None`` if none is left or none was
        found in a few draws (a space too large to enumerate).

        Subclasses may override it (BOHB proposes from its density model); an override must
        return an architecture whose identity is not in ``taken``, or ``None``."""
        space, rng = self._space, self._rng
        started = [s for f, s in self._started_at.items() if f >= fidelity]
        if started:
            taken = set(taken).union(*started)
        for _ in range(_REJECTION_TRIES):
            arch = space.sample(rng)
            if space.identity(arch) not in taken:
                return arch
        if not self._finite:
            return None
        # nearly everything is taken: draw uniformly among the free enumeration indices (the
        # same distribution as the rejection draws above, over what is left)
        ids = self._space.identities_all()
        free = np.flatnonzero(~np.isin(ids, np.array(sorted(taken), dtype=ids.dtype)))
        if free.size == 0:
            return None
        return space.arch(int(free[int(rng.integers(free.size))]))

    # -- trials ------------------------------------------------------------------------
    def _issue(self, ask: Ask) -> Ask:
        """Number ``ask`` (the runner's trial id for it) and return it."""
        self._trial_fidelity[self._next_id] = ask.fidelity
        self._started_at.setdefault(ask.fidelity, set()).add(self._space.identity(ask.arch))
        self._next_id += 1
        return ask

    def tell_trial(self, trial: Trial, observation: Observation) -> None:
        value = score(observation)
        fidelity = self._trial_fidelity.pop(trial.id, None)
        if fidelity is None:
            raise ValueError(f"trial {trial.id} is not an outstanding trial of this {self.name} run")
        self._obs.setdefault(fidelity, []).append((trial.arch, value))
        if fidelity == self._ladder[-1]:
            self._top_done.add(self._space.identity(trial.arch))
        self._told(trial, value)

    def _told(self, trial: Trial, value: float) -> None:
        raise NotImplementedError

    @property
    def _outstanding(self) -> int:
        return len(self._trial_fidelity)

    def _space_done(self) -> bool:
        """True once every architecture of a finite space has a result at the top rung
        (counted by identity; a space listing one architecture under several indices never
        gets there, and the runner's budget ends the run)."""
        return self._finite and len(self._top_done) >= self._space.size

    # -- plain ask/tell: not this algorithm's surface ------------------------------------
    def ask(self):
        raise RuntimeError(f"{self.name} chooses a fidelity for every evaluation: call ask_trial() "
                           f"and tell_trial() (the runner does, since uses_fidelities is True)")

    def tell(self, arch, observation):
        raise RuntimeError(f"{self.name} matches results to trials: call tell_trial(trial, observation)")


def _check_eta(eta: int) -> int:
    if isinstance(eta, bool) or int(eta) != eta or int(eta) < 2:
        raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
    return int(eta)


def _check_min_fidelity(min_fidelity: int | None) -> int | None:
    if min_fidelity is None:
        return None
    if isinstance(min_fidelity, bool) or int(min_fidelity) != min_fidelity or int(min_fidelity) < 1:
        raise ValueError(f"min_fidelity must be a positive integer or None, got {min_fidelity!r}")
    return int(min_fidelity)


def _check_early_stopping_rate(rate: int) -> int:
    if isinstance(rate, bool) or int(rate) != rate or int(rate) < 0:
        raise ValueError(f"early_stopping_rate must be an integer >= 0, got {rate!r}")
    return int(rate)


def _rungs_after(ladder: tuple[int, ...], early_stopping_rate: int) -> tuple[int, ...]:
    """The rungs a run uses: the ladder without its ``early_stopping_rate`` lowest rungs (Li
    et al. 2020, Algorithm 1's s)."""
    if early_stopping_rate >= len(ladder):
        raise ValueError(f"early_stopping_rate {early_stopping_rate} leaves no rung of {list(ladder)}")
    return ladder[early_stopping_rate:]


class SuccessiveHalving(MultiFidelitySearch):
    """Synchronous successive halving, one bracket after another.

    Parameters
    ----------
    eta:
        Reduction factor, an integer >= 2: the best ``1/eta`` of a rung go up to the next
        (default 3, Hyperband's: Li et al. 2018 recommend 3 or 4 in §3 and use 3).
    n:
        Architectures drawn for the lowest rung of each bracket. ``None`` (default):
        ``eta^K`` for a ladder of ``K + 1`` rungs, the size of Hyperband's most aggressive
        bracket ``s = s_max`` (Li et al. 2018, Algorithm 1; one architecture reaches the top).
    early_stopping_rate:
        ``s`` of Li et al. 2020, Algorithm 1: the lowest ``s`` rungs of the ladder are
        skipped, so the bracket starts at rung ``s`` (default 0, the most aggressive
        early stopping, as in their experiments).
    min_fidelity:
        The smallest fidelity a rung may have (the papers' minimum resource ``r``);
        ``None`` (default): the oracle's smallest, since the papers' value depends on the
        benchmark. Rungs are mapped onto served fidelities as the module docstring says.
    """

    name = "successive-halving"
    summary = ("synchronous successive halving: n architectures at the lowest fidelity, the best "
               "1/eta promoted rung by rung to the highest, bracket after bracket")
    paper = ("Jamieson & Talwalkar, Non-stochastic Best Arm Identification and Hyperparameter "
             "Optimization (AISTATS 2016); as the inner loop of Li et al., Hyperband: A Novel "
             "Bandit-Based Approach to Hyperparameter Optimization (JMLR 2018), §3, Algorithm 1; "
             "rungs and early-stopping rate as in Li et al., A System for Massively Parallel "
             "Hyperparameter Tuning (MLSys 2020), §3.1, Algorithm 1")

    def __init__(self, eta: int = 3, n: int | None = None, early_stopping_rate: int = 0,
                 min_fidelity: int | None = None):
        self.eta = _check_eta(eta)
        if n is not None and (isinstance(n, bool) or int(n) != n or int(n) < 1):
            raise ValueError(f"n must be a positive integer or None, got {n!r}")
        self.n = None if n is None else int(n)
        self.early_stopping_rate = _check_early_stopping_rate(early_stopping_rate)
        self.min_fidelity = _check_min_fidelity(min_fidelity)

    def start(self, space, rng, fidelities=None):
        super().start(space, rng, fidelities)
        self._bracket_rungs = _rungs_after(self._ladder, self.early_stopping_rate)
        self._n = self.n if self.n is not None else self.eta ** (len(self._bracket_rungs) - 1)
        self._bracket = self._new_bracket()
        self._n_brackets_done = 0

    def _new_bracket(self) -> Bracket:
        return Bracket(self._bracket_rungs, self._n, self.eta, self._space.identity)

    def ask_trial(self):
        if self._space_done():
            return DONE
        a = self._bracket.next_ask(self._next_id, self.new_architecture)
        if a is None:
            self._n_brackets_done += 1
            self._bracket = self._new_bracket()
            a = self._bracket.next_ask(self._next_id, self.new_architecture)
            if a is None:   # not even one architecture could be drawn
                return WAIT if self._outstanding else DONE
        return a if a is WAIT else self._issue(a)

    def _told(self, trial, value):
        self._bracket.tell(trial.id, value)

    def diagnostics(self):
        return {"rungs": list(self._bracket_rungs), "n": self._n,
                "brackets_completed": self._n_brackets_done,
                "current_bracket_sizes": list(self._bracket.sizes())}
