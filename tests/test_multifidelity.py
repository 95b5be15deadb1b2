"""Mechanics of successive halving, Hyperband (Li et al., JMLR 2018) and ASHA (Li et al.,
MLSys 2020), driven through ask_trial/tell_trial on a tiny space, against rung sizes,
promotions and trial ids worked out by hand from the papers' formulas.

End to end (once the runner takes trials): each algorithm on nb201/cifar10:fidelities=all
and on the NB101 fixture's four budgets with 1 and 4 workers per run; the records' fidelity
and trial columns reproduce the rung sizes below; epochs paid on prefix fidelities count
only the extra epochs of a continued trial; a run is identical for a seed whatever the
executor; WAIT never reaches the runner with nothing running.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from algorithms.asha import ASHA
from algorithms.base import DONE, WAIT, Ask, Trial
from algorithms.hyperband import Hyperband, bracket_size
from algorithms.successive_halving import Bracket, SuccessiveHalving, rung_ladder
from oracles.oracle import Fidelities, Observation

from tiny_space import TinySpace

R81 = Fidelities(values=(1, 3, 9, 27, 81), kind="prefix")
NB201 = Fidelities(values=(12, 200), kind="restart")
NB101 = Fidelities(values=(4, 12, 36, 108), kind="restart")
EPOCHS50 = Fidelities(values=tuple(range(1, 51)), kind="prefix")
F139 = Fidelities(values=(1, 3, 9), kind="prefix")


class Driver:
    """Numbers the asks as the runner does (0, 1, 2, ... for every answer that is not a
    signal) and tells results by trial."""

    def __init__(self, algo, space, fidelities, seed=0):
        self.algo, self.space = algo, space
        algo.start(space, np.random.default_rng(seed), fidelities)
        self.next_id = 0
        self.trials: list[Trial] = []

    def ask(self):
        a = self.algo.ask_trial()
        if a is WAIT or a is DONE:
            return a
        assert isinstance(a, Ask) and a.fidelity is not None
        t = Trial(self.next_id, a.arch, a.fidelity, a.continues)
        self.next_id += 1
        self.trials.append(t)
        return t

    def asks(self, k):
        out = [self.ask() for _ in range(k)]
        assert all(isinstance(t, Trial) for t in out), out
        return out

    def tell(self, trial, value):
        self.algo.tell_trial(trial, Observation(value))


def value_of(space, seed=0):
    """A value per (architecture, fidelity), different rankings at different fidelities."""
    rng = np.random.default_rng(seed)
    table: dict = {}

    def value(arch, fidelity):
        key = (space.index(arch), fidelity)
        if key not in table:
            table[key] = float(rng.random())
        return table[key]
    return value


def simulate(algo, space, fidelities, workers, n_trials, seed=0, value=None):
    """Run ``algo`` with ``workers`` simulated workers (a trial lasts its fidelity; results
    arrive in order of (finish, trial id), as the runner's clock does). Returns the trials
    and, per WAIT answer, the number of trials then running."""
    value = value or value_of(space, seed + 100)
    d = Driver(algo, space, fidelities, seed)
    running: list = []
    clock, waits = 0.0, []
    while d.next_id < n_trials:
        while len(running) < workers and d.next_id < n_trials:
            t = d.ask()
            if t is DONE:
                return d.trials, waits
            if t is WAIT:
                waits.append(len(running))
                break
            heapq.heappush(running, (clock + t.fidelity, t.id, t))
        assert running, "asked to wait with nothing running"
        clock, _, t = heapq.heappop(running)
        d.tell(t, value(t.arch, t.fidelity))
    return d.trials, waits


# -- rung ladders ------------------------------------------------------------------------

def test_rung_ladder_maps_the_geometric_schedule_onto_served_fidelities():
    assert rung_ladder(R81, 3) == (1, 3, 9, 27, 81)            # the papers' schedule itself
    assert rung_ladder(NB101, 3) == (4, 12, 36, 108)           # 108 * 3^-3 = 4
    assert rung_ladder(NB101, 4) == (4, 36, 108)               # 6.75 -> 4, 27 -> 36
    assert rung_ladder(NB101, 3, min_fidelity=12) == (12, 36, 108)
    assert rung_ladder(NB201, 3) == (12, 200)                  # 22.2 -> 12, 66.7 -> 200
    assert rung_ladder(NB201, 2) == (12, 200)
    assert rung_ladder(NB201, 16) == (12, 200)
    assert rung_ladder(NB201, 17) == (200,)                    # 12 * 17 > 200: one rung
    assert rung_ladder(EPOCHS50, 3) == (2, 6, 17, 50)          # 50/27, 50/9, 50/3 on a log scale
    assert rung_ladder(EPOCHS50, 4) == (3, 13, 50)             # 3.125, 12.5 (nearer 13 in log)
    with pytest.raises(ValueError):
        rung_ladder(NB201, 1)
    with pytest.raises(ValueError):
        rung_ladder(NB201, 3, min_fidelity=201)


# -- successive halving ------------------------------------------------------------------

def test_successive_halving_hand_worked_bracket():
    """eta = 3 on fidelities 1/3/9: n = 3^2 = 9, rungs of 9, 3, 1; the best three of rung 0
    go up best first, with continues naming their rung-0 trials."""
    space = TinySpace((5, 5, 5))
    d = Driver(SuccessiveHalving(), space, F139)
    rung0 = d.asks(9)
    assert [t.fidelity for t in rung0] == [1] * 9 and all(t.continues is None for t in rung0)
    assert [t.id for t in rung0] == list(range(9))
    assert len({space.identity(t.arch) for t in rung0}) == 9       # distinct in a bracket
    assert d.ask() is WAIT                                          # rung 0 incomplete
    for t, v in zip(rung0, [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4]):
        d.tell(t, v)
    rung1 = d.asks(3)
    # best first: trial 1 (0.9), trial 5 (0.8), trial 3 (0.7)
    assert [(t.id, t.fidelity, t.continues) for t in rung1] == [(9, 3, 1), (10, 3, 5), (11, 3, 3)]
    assert [t.arch for t in rung1] == [rung0[1].arch, rung0[5].arch, rung0[3].arch]
    assert d.ask() is WAIT
    d.tell(rung1[0], 0.2)
    d.tell(rung1[2], 0.5)
    assert d.ask() is WAIT                                          # one of three outstanding
    d.tell(rung1[1], 0.95)
    top = d.ask()
    assert (top.id, top.fidelity, top.continues, top.arch) == (12, 9, 10, rung0[5].arch)
    assert d.ask() is WAIT                                          # the top rung, incomplete
    d.tell(top, 0.97)
    nxt = d.ask()                                                   # a new bracket
    assert (nxt.id, nxt.fidelity, nxt.continues) == (13, 1, None)
    assert d.algo.diagnostics()["brackets_completed"] == 1


def test_successive_halving_asks_what_it_can_before_waiting():
    """WAIT exactly when the current rung has results outstanding and nothing else of the
    bracket can start: the rest of rung 0 first, then every promotion of a complete rung."""
    space = TinySpace((5, 5, 5))
    d = Driver(SuccessiveHalving(), space, F139)
    first = d.asks(8)
    for i, t in enumerate(first):
        d.tell(t, i / 10)
    ninth = d.ask()                        # eight results in, but rung 0 is not fully asked
    assert isinstance(ninth, Trial) and ninth.fidelity == 1
    assert d.ask() is WAIT
    d.tell(ninth, 0.0)
    ups = d.asks(3)                        # all three promotions start with none told
    assert [t.continues for t in ups] == [7, 6, 5]
    assert d.ask() is WAIT


def test_successive_halving_ties_nonfinite_and_sizes():
    space = TinySpace((5, 5, 5))
    # ties: the earlier trial ranks first; NaN (a failed training) ranks last
    d = Driver(SuccessiveHalving(n=6), space, F139)
    rung0 = d.asks(6)
    for t, v in zip(rung0, [0.3, float("nan"), 0.5, 0.5, float("inf"), 0.1]):
        d.tell(t, v)
    # floor(6 / 3) = 2 go up: trial 2 and trial 3 tie at 0.5 (inf is non-finite: last too)
    assert [t.continues for t in d.asks(2)] == [2, 3]
    assert d.ask() is WAIT
    # n = 5: floor(5/3) = 1, then floor(1/3) = 0 -> at least one reaches the top: 5, 1, 1
    d = Driver(SuccessiveHalving(n=5), space, F139)
    for t in d.asks(5):
        d.tell(t, 0.1 * t.id)
    up = d.ask()
    assert (up.fidelity, up.continues) == (3, 4)
    assert d.ask() is WAIT
    d.tell(up, 0.0)
    top = d.ask()
    assert (top.fidelity, top.continues) == (9, 5)
    assert Bracket((1, 3, 9), 5, 3, str).planned_sizes == (5, 1, 1)
    assert Bracket((1, 3, 9, 27), 10, 3, str).planned_sizes == (10, 3, 1, 1)


def test_successive_halving_early_stopping_rate_and_exhausted_space():
    # s = 1 on 1/3/9: the bracket starts at 3 with n = 3^1
    d = Driver(SuccessiveHalving(early_stopping_rate=1), TinySpace((5, 5, 5)), F139)
    assert [t.fidelity for t in d.asks(3)] == [3, 3, 3] and d.ask() is WAIT
    # a space of 4 architectures: rung 0 holds the 4 there are, then max(1, 4 // 3) = 1
    space = TinySpace((2, 2))
    d = Driver(SuccessiveHalving(), space, F139)
    rung0 = d.asks(4)
    assert len({space.identity(t.arch) for t in rung0}) == 4
    assert d.ask() is WAIT
    for t, v in zip(rung0, [0.1, 0.4, 0.3, 0.2]):
        d.tell(t, v)
    up = d.ask()
    assert (up.fidelity, up.continues) == (3, 1)
    assert d.ask() is WAIT


# -- Hyperband ---------------------------------------------------------------------------

#: Li et al. 2018, Table 1 (R = 81, eta = 3): per bracket s, n and the rungs (n_i, r_i)
TABLE1 = [(4, 81, ((81, 1), (27, 3), (9, 9), (3, 27), (1, 81))),
          (3, 34, ((34, 3), (11, 9), (3, 27), (1, 81))),
          (2, 15, ((15, 9), (5, 27), (1, 81))),
          (1, 8, ((8, 27), (2, 81))),
          (0, 5, ((5, 81),))]


def test_hyperband_schedule_is_the_papers_table():
    hb = Hyperband()
    hb.start(TinySpace((5, 5, 5, 5)), np.random.default_rng(0), R81)
    assert hb.s_max == 4 and hb.schedule() == TABLE1
    # n = ceil((s_max + 1) / (s + 1) * eta^s): 5/4 * 27 = 33.75 -> 34, 5/2 * 3 = 7.5 -> 8
    assert [bracket_size(s, 4, 3) for s in range(4, -1, -1)] == [81, 34, 15, 8, 5]
    hb.start(TinySpace((5, 5, 5, 5)), np.random.default_rng(0), NB101)
    assert hb.schedule() == [(3, 27, ((27, 4), (9, 12), (3, 36), (1, 108))),
                             (2, 12, ((12, 12), (4, 36), (1, 108))),
                             (1, 6, ((6, 36), (2, 108))),
                             (0, 4, ((4, 108),))]
    hb.start(TinySpace((5, 5, 5, 5)), np.random.default_rng(0), NB201)
    # two rungs: s_max = 1; n = ceil(2/2 * 3) = 3 at 12 epochs, then ceil(2/1 * 1) = 2 at 200
    assert hb.schedule() == [(1, 3, ((3, 12), (1, 200))), (0, 2, ((2, 200),))]
    hb = Hyperband(eta=2)
    hb.start(TinySpace((5, 5, 5, 5)), np.random.default_rng(0), NB101)
    # ladder 4/12/36/36/108 -> 4, 12, 36, 108; s_max = 3, n = ceil(4/(s+1) * 2^s)
    assert hb.schedule() == [(3, 8, ((8, 4), (4, 12), (2, 36), (1, 108))),
                             (2, 6, ((6, 12), (3, 36), (1, 108))),
                             (1, 4, ((4, 36), (2, 108))),
                             (0, 4, ((4, 108),))]


def _brackets(trials):
    """Split a sequential trace into brackets: a bracket starts with a fresh ask (no
    continues) after a promotion, or at a lower fidelity than the previous fresh ask."""
    out, cur = [], []
    for t in trials:
        if cur and t.continues is None and (cur[-1].continues is not None
                                            or t.fidelity != cur[-1].fidelity):
            out.append(cur)
            cur = []
        cur.append(t)
    out.append(cur)
    return out


def test_hyperband_runs_every_bracket_of_table1_then_starts_again():
    space = TinySpace((5, 5, 5, 5))
    value = value_of(space)
    per_pass = sum(sum(n for n, _ in rungs) for _, _, rungs in TABLE1)   # 121+49+21+10+5
    assert per_pass == 206
    trials, waits = simulate(Hyperband(), space, R81, workers=1, n_trials=per_pass + 81 + 5,
                             value=value)
    assert waits == []                                    # one worker never waits
    brackets = _brackets(trials)
    sizes = [tuple(sorted({(t.fidelity, sum(u.fidelity == t.fidelity for u in b)) for t in b}))
             for b in brackets]
    expected = [tuple(sorted((r, n) for n, r in rungs)) for _, _, rungs in TABLE1]
    assert sizes[:5] == expected
    assert sizes[5] == ((1, 81), (3, 5))                  # the second pass: s = 4 again
    by_id = {t.id: t for t in trials}
    for b in brackets[:5]:
        assert len({space.identity(t.arch) for t in b if t.continues is None}) == \
            sum(t.continues is None for t in b)           # distinct draws in a bracket
        fids = sorted({t.fidelity for t in b})
        for lo, hi in zip(fids, fids[1:]):
            lower = [t for t in b if t.fidelity == lo]
            upper = [t for t in b if t.fidelity == hi]
            # the promoted are the best floor(n_i / eta) of the rung below, best first
            ranked = sorted(lower, key=lambda t: -value(t.arch, lo))
            assert [t.continues for t in upper] == [t.id for t in ranked[:len(lower) // 3]]
            for t in upper:
                assert by_id[t.continues].arch == t.arch and by_id[t.continues].fidelity == lo


def test_hyperband_waits_exactly_on_incomplete_rungs_with_workers():
    space = TinySpace((5, 5, 5, 5))
    hb = Hyperband()
    trials, waits = simulate(hb, space, R81, workers=4, n_trials=206)
    assert len(trials) == 206 and waits and all(w > 0 for w in waits)
    # brackets never overlap: every trial of bracket k is asked before bracket k + 1 starts
    assert [len(b) for b in _brackets(trials)] == [121, 49, 21, 10, 5]
    # the NB201 ladder, two workers: bracket 1 = 3 at 12 (parallel), wait, 1 at 200
    d = Driver(Hyperband(), space, NB201)
    a, b = d.asks(2)
    c = d.ask()
    assert [t.fidelity for t in (a, b, c)] == [12, 12, 12]
    d.tell(b, 0.7)
    d.tell(a, 0.6)
    assert d.ask() is WAIT
    d.tell(c, 0.1)
    up = d.ask()
    assert (up.fidelity, up.continues) == (200, 1)
    assert d.ask() is WAIT                 # bracket 0 starts only when bracket 1 is over
    d.tell(up, 0.9)
    assert [(t.fidelity, t.continues) for t in d.asks(2)] == [(200, None), (200, None)]
    assert d.ask() is WAIT


class Recording(Hyperband):
    """A subclass replacing only the draw, as BOHB does."""

    def start(self, space, rng, fidelities=None):
        super().start(space, rng, fidelities)
        self.calls = []

    def new_architecture(self, fidelity, taken):
        self.calls.append((fidelity, len(taken)))
        return super().new_architecture(fidelity, taken)


def test_hyperband_draws_through_the_overridable_method():
    algo = Recording()
    simulate(algo, TinySpace((5, 5, 5, 5)), R81, workers=3, n_trials=206)
    fids = [f for f, _ in algo.calls]
    assert fids == [1] * 81 + [3] * 34 + [9] * 15 + [27] * 8 + [81] * 5
    # each draw sees the bracket's earlier draws as taken
    assert [k for _, k in algo.calls[:5]] == [0, 1, 2, 3, 4]
    assert [k for _, k in algo.calls[81:84]] == [0, 1, 2]


def test_a_draw_that_repeats_a_bracket_member_is_refused():
    class Bad(Hyperband):
        def new_architecture(self, fidelity, taken):
            return (0, 0)
    d = Driver(Bad(), TinySpace((3, 3)), NB201)
    d.ask()
    with pytest.raises(ValueError, match="already in this bracket"):
        d.ask()


def test_hyperband_ends_when_a_finite_space_is_done_at_the_top():
    space = TinySpace((2, 2))
    f = Fidelities(values=(1, 3), kind="prefix")
    trials, _ = simulate(Hyperband(), space, f, workers=2, n_trials=1000)
    assert len(trials) < 1000
    top = {space.identity(t.arch) for t in trials if t.fidelity == 3}
    assert len(top) == space.size


# -- ASHA --------------------------------------------------------------------------------

def test_asha_hand_worked_out_of_order_promotions():
    """eta = 3, rungs 1/3/9, four workers; results arrive out of order. A rung-k result can
    go up once it is among the best floor(|rung k| / 3) told so far; the highest rung first."""
    space = TinySpace((5, 5, 5))
    d = Driver(ASHA(eta=3), space, F139)
    t0, t1, t2, t3 = d.asks(4)
    assert [(t.fidelity, t.continues) for t in (t0, t1, t2, t3)] == [(1, None)] * 4
    d.tell(t2, 0.5)                       # rung 0: 1 result, floor(1/3) = 0
    t4 = d.ask()
    assert (t4.fidelity, t4.continues) == (1, None)
    d.tell(t0, 0.9)                       # 2 results: still none
    t5 = d.ask()
    assert (t5.fidelity, t5.continues) == (1, None)
    d.tell(t4, 0.7)                       # 3 results: top 1 = t0
    t6 = d.ask()
    assert (t6.id, t6.fidelity, t6.continues, t6.arch) == (6, 3, 0, t0.arch)
    d.tell(t1, 0.95)                      # 4 results: top 1 = t1 (not promoted yet)
    t7 = d.ask()
    assert (t7.id, t7.fidelity, t7.continues, t7.arch) == (7, 3, 1, t1.arch)
    d.tell(t3, 0.1)                       # 5: top 1 = t1, promoted -> a new architecture
    t8 = d.ask()
    assert (t8.fidelity, t8.continues) == (1, None)
    d.tell(t5, 0.8)                       # 6: top 2 = t1, t0, both promoted
    t9 = d.ask()
    assert (t9.fidelity, t9.continues) == (1, None)
    d.tell(t7, 0.6)                       # rung 1: 1 result
    d.tell(t8, 0.99)                      # rung 0, 7: top 2 = t8, t1 -> t8
    t10 = d.ask()
    assert (t10.id, t10.fidelity, t10.continues, t10.arch) == (10, 3, 8, t8.arch)
    d.tell(t6, 0.4)                       # rung 1: t7 0.6, t6 0.4
    d.tell(t9, 0.97)                      # rung 0, 8: top 2 = t8 (promoted), t9
    d.tell(t10, 0.3)                      # rung 1, 3: top 1 = t7
    # both rungs have a promotable result: the highest rung goes first
    t11 = d.ask()
    assert (t11.id, t11.fidelity, t11.continues, t11.arch) == (11, 9, 7, t1.arch)
    t12 = d.ask()
    assert (t12.id, t12.fidelity, t12.continues, t12.arch) == (12, 3, 9, t9.arch)
    t13 = d.ask()
    assert (t13.fidelity, t13.continues) == (1, None)
    new = [t0, t1, t2, t3, t4, t5, t8, t9, t13]
    assert len({space.identity(t.arch) for t in new}) == len(new)    # never started twice
    assert d.algo.rung_results(1) == [(7, 0.6), (6, 0.4), (10, 0.3)]
    assert d.algo.diagnostics() == {"rungs": [1, 3, 9], "rung_sizes": [8, 3, 0],
                                    "started": 9, "promotions": 5}


def test_asha_defaults_on_the_nb201_fidelities():
    """eta = 4 (the paper's): rungs 12 and 200; the first promotion after 4 results."""
    d = Driver(ASHA(), TinySpace((5, 5, 5)), NB201)
    assert d.algo.rungs == (12, 200)
    first = d.asks(3)
    for t, v in zip(first, [0.2, 0.8, 0.5]):
        d.tell(t, v)
    fourth = d.ask()
    assert (fourth.fidelity, fourth.continues) == (12, None)   # floor(3/4) = 0
    d.tell(fourth, 0.1)
    up = d.ask()
    assert (up.fidelity, up.continues) == (200, 1)              # floor(4/4) = 1: trial 1


def test_asha_never_waits_and_on_a_finite_space_waits_then_ends():
    trials, waits = simulate(ASHA(eta=3), TinySpace((5, 5, 5, 5)), R81, workers=8, n_trials=600)
    assert len(trials) == 600 and waits == []
    # every promotion continues a told trial of the same architecture one rung below
    by_id = {t.id: t for t in trials}
    ladder = (1, 3, 9, 27, 81)
    for t in trials:
        if t.continues is not None:
            parent = by_id[t.continues]
            assert parent.arch == t.arch and ladder.index(t.fidelity) == ladder.index(parent.fidelity) + 1
    assert sum(t.fidelity == 81 for t in trials) > 0
    # 4 architectures: all start, then WAIT (a result may make a promotion possible)
    d = Driver(ASHA(eta=3), TinySpace((2, 2)), F139)
    rung0 = d.asks(4)
    assert d.ask() is WAIT
    for t, v in zip(rung0, [0.3, 0.1, 0.4, 0.2]):
        d.tell(t, v)
    up = d.ask()
    assert (up.fidelity, up.continues) == (3, 2)
    assert d.ask() is WAIT
    d.tell(up, 0.5)                        # rung 1: floor(1/3) = 0, nothing left to do
    assert d.ask() is DONE


def test_asha_early_stopping_rate_drops_the_lowest_rungs():
    d = Driver(ASHA(eta=3, early_stopping_rate=2), TinySpace((5, 5, 5)), R81)
    assert d.algo.rungs == (9, 27, 81)
    assert [t.fidelity for t in d.asks(3)] == [9, 9, 9]


# -- common surface ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [SuccessiveHalving, Hyperband, lambda: ASHA(eta=3)])
def test_determinism_for_a_seed(make):
    space = TinySpace((5, 5, 5, 5))

    def trace(seed):
        trials, waits = simulate(make(), space, R81, workers=3, n_trials=150, seed=seed)
        return [(space.identity(t.arch), t.fidelity, t.continues) for t in trials], waits
    assert trace(1) == trace(1)
    assert trace(1) != trace(2)


@pytest.mark.parametrize("cls", [SuccessiveHalving, Hyperband, ASHA])
def test_surface_and_configuration(cls):
    algo = cls()
    assert cls.uses_fidelities and cls.paper and cls.name in ("successive-halving", "hyperband", "asha")
    assert set(algo.get_params()) == set(cls.default_params()) == set(cls.param_docs())
    with pytest.raises(ValueError):
        algo.start(TinySpace(), np.random.default_rng(0))            # no fidelities
    algo.start(TinySpace(), np.random.default_rng(0), NB201)
    with pytest.raises(RuntimeError, match="ask_trial"):
        algo.ask()
    with pytest.raises(RuntimeError, match="tell_trial"):
        algo.tell((0, 0, 0), Observation(0.5))
    with pytest.raises(ValueError, match="not an outstanding trial"):
        algo.tell_trial(Trial(5, (0, 0, 0), 12), Observation(0.5))
    for bad in ({"eta": 1}, {"eta": 2.5}, {"min_fidelity": 0}):
        with pytest.raises(ValueError):
            cls(**bad)
    with pytest.raises(ValueError):
        cls(min_fidelity=201).start(TinySpace(), np.random.default_rng(0), NB201)


def test_observations_are_kept_per_fidelity_in_tell_order():
    d = Driver(Hyperband(), TinySpace((5, 5, 5)), NB201)
    a, b, c = d.asks(3)
    d.tell(c, 0.3)
    d.tell(a, float("nan"))
    d.tell(b, 0.2)
    obs = d.algo.observations(12)
    assert [arch for arch, _ in obs] == [c.arch, a.arch, b.arch]
    assert [v for _, v in obs][::2] == [0.3, 0.2] and obs[1][1] == -math.inf
    assert d.algo.observations(200) == []
