"""BOHB's density model (Falkner et al. 2018, §3.1, Algorithm 2), BOHB's Hyperband schedule,
and the TPE baseline (Bergstra et al. 2011, §4): mechanics on tiny spaces."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from algorithms.base import DONE, WAIT
from algorithms.kde import BOHBDensity, CategoricalKDE, normal_reference_bandwidths
from algorithms.random_search import RandomSearch
from algorithms.tpe import TPE
from oracles.oracle import Observation

from tiny_space import TinySpace


# -- the kernel density ------------------------------------------------------------------
def test_aitchison_aitken_product_kernel_by_hand():
    # two points, positions with 3 and 2 choices, bandwidths 0.3 and 0.1:
    # k = 1 - lambda on a match, lambda / (c - 1) otherwise, multiplied over positions
    kde = CategoricalKDE(np.array([[0, 1], [2, 1]]), (3, 2), np.array([0.3, 0.1]))
    # at (0, 1): point 1 matches both (0.7 * 0.9), point 2 only the second (0.15 * 0.9)
    assert kde.pdf(np.array([[0, 1]]))[0] == pytest.approx((0.7 * 0.9 + 0.15 * 0.9) / 2)
    # at (1, 0): no match anywhere: (0.15 * 0.1) for both points
    assert kde.pdf(np.array([[1, 0]]))[0] == pytest.approx(0.15 * 0.1)
    everything = np.array(list(itertools.product(range(3), range(2))))
    assert kde.pdf(everything).sum() == pytest.approx(1.0)   # a density over the 6 cells


def test_normal_reference_rule_and_bandwidth_limits():
    data = np.array([[0, 1, 0], [0, 1, 4]] * 3 + [[0, 1, 0], [1, 1, 4]])
    n, d = data.shape
    # column 0: population std of seven 0s and one 1 is sqrt(7)/8; 1.06 * std * n^(-1/(4 + d))
    expected = 1.06 * math.sqrt(7) / 8 * n ** (-1 / (4 + d))
    assert normal_reference_bandwidths(data)[0] == pytest.approx(expected)
    assert 1e-3 < expected < 2 / 3
    kde = CategoricalKDE.fit(data, (3, 2, 5), min_bandwidth=1e-3)
    assert kde.bandwidth[0] == pytest.approx(expected)
    assert kde.bandwidth[1] == 1e-3          # every point agrees: the floor, not 0
    # column 2: std 2 gives 1.06 * 2 * 8^(-1/7) = 1.58, past the uniform kernel's 4/5
    assert kde.bandwidth[2] == pytest.approx(4 / 5)
    # the floor keeps every value possible: off the data the density is small but positive
    off = kde.log_pdf(np.array([[1, 0, 2]]))[0]
    assert np.isfinite(off) and off < kde.log_pdf(np.array([[0, 1, 0]]))[0]


def test_widened_sampling_moves_each_position_with_probability_lambda_times_factor():
    kde = CategoricalKDE(np.array([[0, 0]]), (5, 2), np.array([0.1, 0.2]))
    draws = kde.sample(np.random.default_rng(0), 20000, bandwidth_factor=3.0)
    moved = draws != 0
    # lambda' = min(3 lambda, (c - 1) / c): 0.3 for the first position, 0.5 (uniform) for the second
    for j, lam in ((0, 0.3), (1, 0.5)):
        sd = math.sqrt(lam * (1 - lam) / len(draws))
        assert abs(moved[:, j].mean() - lam) < 5 * sd
    # a moved position takes each other value equally often (Aitchison-Aitken)
    counts = np.bincount(draws[:, 0], minlength=5)[1:]
    assert counts.min() > 0.8 * counts.mean()


# -- BOHB's model: threshold, split, planted data, random fraction, budget ----------------
def _uniform_marker(space, rng):
    calls = []

    def uniform():
        calls.append(1)
        return space.sample(rng)
    return uniform, calls


def _fill(model, space, budget, archs, value):
    for a in archs:
        model.add(budget, space.identity(a), space.tokens(a), value(a))


def test_model_needs_n_min_plus_two_points_and_falls_back_to_uniform_below():
    space = TinySpace((3, 2, 4))
    model = BOHBDensity(space.decisions, random_fraction=0.0)
    assert model.min_points == 4                  # N_min = d + 1, d = 3 positions
    assert model.points_to_fit == 6               # Algorithm 2: |D_b| >= N_min + 2
    archs = list(space.enumerate())
    rng = np.random.default_rng(0)
    _fill(model, space, 1, archs[:5], lambda a: float(a[0]))
    uniform, calls = _uniform_marker(space, rng)
    for _ in range(20):
        p = model.propose(space, rng, uniform)
        assert p.how == "no_model" and p.budget is None
    assert len(calls) == 20                       # every proposal was the uniform draw
    assert model.model_budget() is None
    _fill(model, space, 1, archs[5:6], lambda a: float(a[0]))  # the sixth point
    assert model.model_budget() == 1
    for _ in range(20):
        p = model.propose(space, rng, uniform)
        assert p.how == "model" and p.budget == 1
    assert len(calls) == 20                       # no further uniform draw


def test_good_and_bad_sets_follow_equations_2_and_3():
    space = TinySpace((3, 2, 4))
    model = BOHBDensity(space.decisions)
    archs = list(space.enumerate())
    # values decreasing with the enumeration index: archs[0] best
    _fill(model, space, 1, archs[:6], lambda a: -space.index(a))
    good, bad = model.split(1)
    # N_b = 6: N_l = max(4, floor(0.9)) = 4, N_g = max(4, 6 - 4) = 4: the sets overlap
    assert [space.index(tuple(t)) for t in good] == [0, 1, 2, 3]
    assert [space.index(tuple(t)) for t in bad] == [2, 3, 4, 5]
    model2 = BOHBDensity((5, 5, 5))
    rng = np.random.default_rng(1)
    toks = rng.integers(5, size=(40, 3))
    for i, t in enumerate(toks):
        model2.add(7, f"a{i}", t, float(i))       # a{39} best
    good, bad = model2.split(7)
    assert len(good) == 6 and len(bad) == 34      # floor(0.15 * 40) = 6; 40 - 6 = 34
    assert np.array_equal(good[0], toks[39]) and np.array_equal(bad[-1], toks[0])


def test_non_finite_values_rank_last():
    model = BOHBDensity((3, 3), min_points=1)
    model.add(1, "nan", (0, 0), float("nan"))
    model.add(1, "low", (1, 1), -5.0)
    model.add(1, "high", (2, 2), 0.5)
    good, bad = model.split(1)
    assert good.tolist() == [[2, 2]] and bad[-1].tolist() == [0, 0]


def test_planted_token_value_is_picked_by_l_over_g():
    space = TinySpace((4, 3, 3))
    model = BOHBDensity(space.decisions, random_fraction=0.0)
    rng = np.random.default_rng(5)
    noise = {space.identity(a): rng.normal(scale=0.01) for a in space.enumerate()}
    # token 0 == 2 is always good; every other token is noise
    _fill(model, space, 1, list(space.enumerate()),
          lambda a: (1.0 if a[0] == 2 else 0.0) + noise[space.identity(a)])
    picks = [model.propose(space, rng).arch for _ in range(50)]
    assert all(a[0] == 2 for a in picks)
    # and the ratio itself prefers the planted value, whatever the other tokens
    l, g = model.densities(1)
    x = np.array([[v, 0, 0] for v in range(4)])
    ratio = l.log_pdf(x) - g.log_pdf(x)
    assert int(np.argmax(ratio)) == 2


def test_excluded_and_invalid_candidates_are_skipped():
    space = TinySpace((4, 3, 3), invalid=[(2, 0, 0)])
    model = BOHBDensity(space.decisions, random_fraction=0.0)
    _fill(model, space, 1, list(space.enumerate()), lambda a: 1.0 if a[0] == 2 else 0.0)
    rng = np.random.default_rng(0)
    banned = {(2, 1, 1), (2, 2, 2)}
    for _ in range(30):
        p = model.propose(space, rng, exclude=lambda a: a in banned)
        assert p.arch not in banned and p.arch != (2, 0, 0)
    # nothing allowed: the proposal is the caller's uniform draw
    uniform, calls = _uniform_marker(space, rng)
    p = model.propose(space, rng, uniform, exclude=lambda a: True)
    assert p.how == "model_empty" and calls == [1]


@pytest.mark.parametrize("rho", [0.0, 1 / 3, 1.0])
def test_random_fraction(rho):
    space = TinySpace((3, 3, 3))
    model = BOHBDensity(space.decisions, random_fraction=rho)
    _fill(model, space, 1, list(space.enumerate()), lambda a: float(sum(a)))
    rng = np.random.default_rng(11)
    n = 1200
    hows = [model.propose(space, rng).how for _ in range(n)]
    share = hows.count("random") / n
    assert set(hows) <= {"random", "model"}
    sd = math.sqrt(rho * (1 - rho) / n)
    assert abs(share - rho) <= 5 * sd + 1e-12


def test_model_of_the_highest_budget_with_enough_points():
    space = TinySpace((3, 2, 4))
    model = BOHBDensity(space.decisions, random_fraction=0.0)
    archs = list(space.enumerate())
    _fill(model, space, 12, archs, lambda a: float(a[2]))
    _fill(model, space, 200, archs[:5], lambda a: float(a[0]))     # one short of N_min + 2
    _fill(model, space, 4, archs, lambda a: float(a[1]))
    assert model.model_budget() == 12
    rng = np.random.default_rng(0)
    assert model.propose(space, rng).budget == 12
    # repeats of one architecture are one point
    _fill(model, space, 200, archs[:1], lambda a: 0.0)
    assert model.n_points(200) == 5 and model.model_budget() == 12
    _fill(model, space, 200, archs[5:6], lambda a: 0.0)
    assert model.model_budget() == 200
    assert model.propose(space, rng).budget == 200


def test_proposals_are_deterministic_for_a_seed():
    space = TinySpace((4, 3, 3))

    def run(seed):
        model = BOHBDensity(space.decisions)
        _fill(model, space, 1, list(space.enumerate())[::2], lambda a: float(a[0] * a[1]))
        rng = np.random.default_rng(seed)
        return [(p.arch, p.how) for p in (model.propose(space, rng) for _ in range(40))]

    assert run(3) == run(3)
    assert run(3) != run(4)


# -- TPE ----------------------------------------------------------------------------------
def _planted_space():
    """An additive objective on 4^5 = 1,024 architectures: TPE's independent per-position
    densities are made for it; the optimum is unique."""
    space = TinySpace((4, 4, 4, 4, 4))
    w = np.random.default_rng(0).normal(size=(5, 4))
    values = np.array([sum(w[j, t] for j, t in enumerate(a)) for a in space.enumerate()])
    return space, values


def _samples_to_optimum(algo, space, values, seed):
    best = values.max()
    algo.start(space, np.random.default_rng(seed))
    for k in range(space.size):
        a = algo.ask()
        if a is DONE:
            break
        v = values[space.index(a)]
        if v == best:
            return k + 1
        algo.tell(a, Observation(float(v)))
    return space.size


def test_tpe_is_deterministic_for_a_seed():
    space, values = _planted_space()

    def run(seed):
        algo = TPE()
        algo.start(space, np.random.default_rng(seed))
        out = []
        for _ in range(60):
            a = algo.ask()
            out.append(a)
            algo.tell(a, Observation(float(values[space.index(a)])))
        return out

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_tpe_beats_random_search_on_a_planted_objective():
    space, values = _planted_space()
    seeds = range(10)
    tpe = [_samples_to_optimum(TPE(), space, values, s) for s in seeds]
    rs = [_samples_to_optimum(RandomSearch(), space, values, s) for s in seeds]
    # random search needs (N + 1) / 2 = 512.5 draws on average; TPE finds it in a tenth
    assert np.median(tpe) < 100 and np.median(rs) > 200
    assert sum(t < r for t, r in zip(tpe, rs)) >= 8


def test_tpe_never_repeats_on_a_finite_space_and_ends_with_done():
    space = TinySpace((3, 2, 4), invalid=[(0, 0, 0)])
    algo = TPE(n_startup=3)
    algo.start(space, np.random.default_rng(0))
    seen = []
    for _ in range(3 * space.size):      # bounded: a repeating algorithm fails, never hangs
        a = algo.ask()
        if a is DONE:
            break
        seen.append(a)
        algo.tell(a, Observation(float(sum(a))))
    assert a is DONE
    assert len(seen) == space.size == len(set(seen))
    assert (0, 0, 0) not in seen
    assert algo.diagnostics()["proposals"]["model"] > 0


def test_tpe_with_outstanding_asks_proposes_distinct_architectures_then_waits():
    space = TinySpace((2, 2, 2))
    algo = TPE(n_startup=2)
    algo.start(space, np.random.default_rng(0))
    a, b = algo.ask(), algo.ask()
    algo.tell(a, Observation(1.0))
    algo.tell(b, Observation(0.0))
    running = [algo.ask() for _ in range(6)]          # six asks in flight, none told
    assert len(set(running + [a, b])) == 8
    assert algo.ask() is WAIT                          # nothing left but results to come
    for x in running:
        algo.tell(x, Observation(0.5))
    assert algo.ask() is DONE


def test_tpe_rejects_bad_configuration():
    with pytest.raises(ValueError):
        TPE(gamma=1.5)
    with pytest.raises(ValueError):
        TPE(split="median")
    with pytest.raises(ValueError):
        TPE(n_startup=1)


# -- BOHB: Hyperband's schedule, proposals from the model ---------------------------------
def _drive_trials(algo, space, values, fidelities, n_trials, seed=0):
    """Ask/tell trials one at a time (one worker); the value of an architecture at fidelity
    f is its planted value plus a small fidelity-dependent shift. Returns the asks and the
    trials' (id, arch, fidelity, continues)."""
    from algorithms.base import Trial
    algo.start(space, np.random.default_rng(seed), fidelities)
    out = []
    for tid in range(n_trials):
        a = algo.ask_trial()
        assert a is not WAIT and a is not DONE
        trial = Trial(tid, a.arch, a.fidelity, a.continues)
        out.append(trial)
        v = values[space.index(a.arch)] + 0.01 * math.log(a.fidelity)
        algo.tell_trial(trial, Observation(float(v)))
    return out


def _schedule(trials):
    """The shape of a trial sequence: per trial its fidelity and, for a promotion, the
    fidelity of the trial it continues (which architectures are drawn does not enter)."""
    fid = {t.id: t.fidelity for t in trials}
    return [(t.fidelity, None if t.continues is None else fid[t.continues]) for t in trials]


def test_bohb_runs_hyperbands_bracket_schedule():
    from algorithms.bohb import BOHB
    from algorithms.hyperband import Hyperband
    from oracles.oracle import Fidelities
    space, values = _planted_space()
    fids = Fidelities((1, 3, 9))
    n = 5 * 22      # five passes of brackets 9-3-1, 5-1 and 3 (eta = 3, R = 9)
    hb = _drive_trials(Hyperband(), space, values, fids, n)
    bohb_algo = BOHB()
    bo = _drive_trials(bohb_algo, space, values, fids, n)
    assert _schedule(bo) == _schedule(hb)
    # (rung size, fidelity) per rung of brackets s = 2, 1, 0 (Li et al. 2018, Algorithm 1)
    one_pass = [(9, 1), (3, 3), (1, 9)], [(5, 3), (1, 9)], [(3, 9)]
    expected = []
    for brackets in [one_pass] * 5:
        for rungs in brackets:
            for i, (size, f) in enumerate(rungs):
                prev = rungs[i - 1][1] if i else None
                expected += [(f, prev)] * size
    assert _schedule(bo) == expected
    # the model was used: d = 5 positions, N_min = 6, so fidelity 1 has a model after the
    # first bracket's 9 results
    counts = bohb_algo.diagnostics()["model"]["proposals"]
    assert counts["model"] > 0 and counts["no_model"] > 0
    # every bracket's members are distinct, promotions continue a trial of the same architecture
    by_id = {t.id: t for t in bo}
    for t in bo:
        if t.continues is not None:
            assert by_id[t.continues].arch == t.arch


def test_bohb_finds_the_planted_optimum_sooner_than_hyperband_and_never_repeats_a_new_arch():
    from algorithms.bohb import BOHB
    from algorithms.hyperband import Hyperband
    from oracles.oracle import Fidelities
    space, values = _planted_space()
    fids = Fidelities((1, 3, 9))
    rank = np.empty(space.size, dtype=int)
    rank[np.argsort(-values)] = np.arange(space.size)

    def best_rank_at_top(algo, seed):
        trials = _drive_trials(algo, space, values, fids, 5 * 22, seed=seed)
        return min(rank[space.index(t.arch)] for t in trials if t.fidelity == 9), trials

    seeds = range(10)
    bohb = [best_rank_at_top(BOHB(), s) for s in seeds]
    hb = [best_rank_at_top(Hyperband(), s)[0] for s in seeds]
    # measured: BOHB's best rank at the top fidelity after 110 trials is 0 (the optimum) in 7
    # runs of 10 and 1 in the others (mean 0.3); Hyperband's is 0 in 2 runs (mean 5.7)
    assert sum(r == 0 for r, _ in bohb) >= 6 and sum(r == 0 for r in hb) <= 3
    assert np.mean([r for r, _ in bohb]) < np.mean(hb) / 4
    # a new architecture never repeats one already evaluated at its fidelity or above
    for _, trials in bohb:
        seen: dict[int, set] = {1: set(), 3: set(), 9: set()}
        for t in trials:
            if t.continues is None:
                assert all(t.arch not in seen[f] for f in seen if f >= t.fidelity)
            seen[t.fidelity].add(t.arch)


def test_bohb_is_deterministic_for_a_seed_and_rejects_bad_configuration():
    from algorithms.bohb import BOHB
    from oracles.oracle import Fidelities
    space, values = _planted_space()
    fids = Fidelities((1, 3, 9))
    a = _drive_trials(BOHB(), space, values, fids, 60, seed=4)
    b = _drive_trials(BOHB(), space, values, fids, 60, seed=4)
    assert a == b
    with pytest.raises(ValueError):
        BOHB(top_fraction=1.5)
    with pytest.raises(ValueError):
        BOHB(random_fraction=-0.1)
    with pytest.raises(ValueError):
        BOHB(eta=1)
