"""Hyperband: Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: A Novel
Bandit-Based Approach to Hyperparameter Optimization" (JMLR 2018), §3, Algorithm 1.

Hyperband runs successive halving (:mod:`algorithms.successive_halving`) in brackets
``s = s_max, ..., 0``, from the most aggressive early stopping (many architectures at the
lowest fidelity) to none (few architectures, all at the highest). With ``R`` the maximum
resource in units of the minimum one and ``s_max = floor(log_eta(R))``, bracket ``s``
starts::

    n = ceil((s_max + 1) / (s + 1) * eta^s)   architectures at   r = R * eta^-s

and its rung ``i = 0..s`` holds ``n_i = floor(n * eta^-i)`` architectures at ``r * eta^i``
(the best ``floor(n_i / eta)`` of a rung go up). After bracket 0 the loop starts again at
``s_max`` with fresh draws: Li et al.'s Algorithm 1 is one pass over the brackets, each
bracket spending about ``B = (s_max + 1) R``; here the runner's budget (architectures,
queries, simulated time or epochs) ends the run, so passes repeat until then.

Rungs are the served fidelities :func:`~algorithms.successive_halving.rung_ladder` maps
the geometric schedule onto; ``s_max`` is the number of those rungs minus one, and bracket
``s`` uses the top ``s + 1`` of them. With fidelities that follow the schedule this is the
paper exactly, e.g. ``R = 81`` (fidelities 1, 3, 9, 27, 81) and ``eta = 3`` give the
paper's Table 1 (§3): brackets of 81, 34, 15, 8 and 5 architectures, rungs 81-27-9-3-1,
34-11-3-1, 15-5-1, 8-2 and 5; NAS-Bench-101's 4/12/36/108 epochs give brackets of 27
(27-9-3-1 at 4/12/36/108), 12 (12-4-1 from 12 epochs), 6 (6-2 from 36) and 4 (at 108).
On NAS-Bench-201's two fidelities (12 and 200 epochs) the ladder has two rungs, so
``s_max = 1``: bracket 1 evaluates 3 architectures at 12 epochs and the best one at 200,
bracket 0 evaluates 2 at 200.

Brackets run one after another, as in Algorithm 1: with several workers, a rung's trials
run in parallel, and :meth:`Hyperband.ask_trial` answers ``WAIT`` while the current rung has
results outstanding and nothing else of its bracket can start.

New architectures come from :meth:`Hyperband.new_architecture` (uniformly random, distinct
within a bracket); BOHB (Falkner, Klein & Hutter, ICML 2018) is Hyperband with that one
method replaced by its density model.
"""

from __future__ import annotations

from .base import DONE, WAIT
from .successive_halving import Bracket, MultiFidelitySearch, _check_eta, _check_min_fidelity


def bracket_size(s: int, s_max: int, eta: int) -> int:
    """``n = ceil((s_max + 1) / (s + 1) * eta^s)``: architectures bracket ``s`` starts (Li et
    al. 2018, Algorithm 1, with ``B / R = s_max + 1``), in exact integer arithmetic."""
    return -(-(s_max + 1) * eta ** s // (s + 1))


class Hyperband(MultiFidelitySearch):
    """Hyperband (Li et al. 2018, Algorithm 1), bracket after bracket until the budget ends.

    Parameters
    ----------
    eta:
        Reduction factor, an integer >= 2: each rung keeps the best ``1/eta`` and the
        resource grows by ``eta`` (default 3: Li et al. 2018 recommend 3 or 4 in §3 and use
        3 in their Table 1 and experiments).
    min_fidelity:
        The minimum resource ``r_min`` (the unit of ``R``); ``None`` (default): the oracle's
        smallest fidelity, since the paper's value depends on the benchmark. ``R`` is the
        oracle's largest fidelity over ``r_min``; rungs are mapped onto served fidelities as
        :mod:`algorithms.successive_halving` says.
    """

    name = "hyperband"
    summary = ("Hyperband: successive-halving brackets from aggressive to no early stopping, "
               "repeated until the budget ends")
    paper = ("Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, Hyperband: A Novel Bandit-Based "
             "Approach to Hyperparameter Optimization (JMLR 2018), §3: Algorithm 1, Table 1 "
             "(R = 81, eta = 3)")

    def __init__(self, eta: int = 3, min_fidelity: int | None = None):
        self.eta = _check_eta(eta)
        self.min_fidelity = _check_min_fidelity(min_fidelity)

    def start(self, space, rng, fidelities=None):
        super().start(space, rng, fidelities)
        self._s_max = len(self._ladder) - 1
        self._s = self._s_max
        self._bracket = self._new_bracket(self._s)
        self._n_brackets_done = 0
        self._n_passes_done = 0

    # -- the overridable draw ------------------------------------------------------------
    def new_architecture(self, fidelity, taken):
        """A new architecture for the lowest rung of the current bracket.

        ``fidelity``: that rung's fidelity (the bracket's ``r = R * eta^-s``); ``taken``:
        identities already in this bracket, which the answer must avoid (members of a
        bracket are distinct). Return ``None`` when there is none to give (a finite space
        exhausted): the bracket then starts with fewer architectures.

        Default: uniformly random among the architectures not in ``taken`` (Li et al.'s
        ``get_hyperparameter_configuration``). This is the one method BOHB overrides with
        its density model; it may read :meth:`observations` (every result so far, per
        fidelity) and :attr:`rungs`, and must draw randomness only from ``self._rng``.
        """
        return super().new_architecture(fidelity, taken)

    # -- brackets --------------------------------------------------------------------------
    @property
    def s_max(self) -> int:
        """``s_max``: the number of rungs minus one."""
        return self._s_max

    @property
    def current_bracket(self) -> int:
        """``s`` of the bracket now running."""
        return self._s

    def schedule(self) -> list[tuple[int, int, tuple[tuple[int, int], ...]]]:
        """One pass of brackets as Li et al.'s Table 1: ``(s, n, ((n_i, r_i), ...))`` for
        ``s = s_max..0``, the planned rung sizes and fidelities."""
        out = []
        for s in range(self._s_max, -1, -1):
            b = Bracket(self._ladder[self._s_max - s:], bracket_size(s, self._s_max, self.eta),
                        self.eta, self._space.identity)
            out.append((s, b.n, tuple(zip(b.planned_sizes, b.rungs))))
        return out

    def _new_bracket(self, s: int) -> Bracket:
        return Bracket(self._ladder[self._s_max - s:], bracket_size(s, self._s_max, self.eta),
                       self.eta, self._space.identity)

    def ask_trial(self):
        if self._space_done():
            return DONE
        a = self._bracket.next_ask(self._next_id, self.new_architecture)
        # the bracket is over: the next ones, until one can draw a new architecture (on a
        # finite space a bracket starting low may find nothing new where one starting at the
        # top still does); none of them: the run is over once nothing is running
        tries = 0
        while a is None:
            if tries > self._s_max:
                return WAIT if self._outstanding else DONE
            tries += 1
            self._n_brackets_done += 1
            if self._s == 0:
                self._n_passes_done += 1
                self._s = self._s_max
            else:
                self._s -= 1
            self._bracket = self._new_bracket(self._s)
            a = self._bracket.next_ask(self._next_id, self.new_architecture)
        return a if a is WAIT else self._issue(a)

    def _told(self, trial, value):
        self._bracket.tell(trial.id, value)

    def diagnostics(self):
        return {"rungs": list(self._ladder), "s_max": self._s_max,
                "brackets_completed": self._n_brackets_done, "passes_completed": self._n_passes_done,
                "current_bracket": self._s, "current_bracket_sizes": list(self._bracket.sizes())}
