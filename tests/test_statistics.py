"""Statistics against values computed by hand, censored cases included; curves from records."""

import numpy as np
import pytest

from harness.curves import best_by_time, best_so_far, cell_curve, sample_grid, time_grid
from harness.metrics import CellRuns
from harness.statistics import (bootstrap_ci, censor_at, common_censoring, curve_bands, holm,
                                kaplan_meier, km_quantile, km_quantile_batch, mann_whitney,
                                percentile_interval, sample_ratios, samples_to_optimum,
                                vargha_delaney_a12)

# six runs, budget 10: optimum drawn after 3, 5, 8, 2 samples; two runs censored at 10.
# Sorted: 2, 3, 5, 8, 10+, 10+. Kaplan-Meier: S(2) = 5/6, S(3) = 5/6 * 4/5 = 4/6,
# S(5) = 4/6 * 3/4 = 1/2, S(8) = 1/2 * 2/3 = 1/3; S never drops to 1/4.
VALUES = np.array([3, 5, np.nan, 8, np.nan, 2.0])
CENSORED = np.isnan(VALUES)


def test_kaplan_meier_by_hand():
    t, e = censor_at(VALUES, CENSORED, 10)
    times, surv = kaplan_meier(t, e)
    assert times.tolist() == [2, 3, 5, 8]
    assert surv == pytest.approx([5 / 6, 4 / 6, 1 / 2, 1 / 3])
    assert km_quantile(t, e, 0.5) == 5          # first t with 1 - S(t) >= 1/2
    assert km_quantile(t, e, 0.25) == 3         # 1 - S(2) = 1/6 < 1/4 <= 1 - S(3) = 1/3
    assert km_quantile(t, e, 0.75) is None      # 1 - S never reaches 3/4: hidden by censoring


def test_samples_to_optimum_summary_is_honest_about_censoring():
    s = samples_to_optimum(VALUES, CENSORED, 10)
    assert (s.n_runs, s.n_censored) == (6, 2)
    assert s.mean == pytest.approx(38 / 6) and s.mean_is_restricted   # (2+3+5+8+10+10)/6
    assert (s.q1, s.median, s.q3) == (3, 5, None)
    assert (s.min, s.max) == (2, 8)
    # without censoring the KM quartiles are the empirical ones (inverted CDF)
    u = samples_to_optimum(np.array([4.0, 1, 3, 2]), np.zeros(4, bool), 10)
    assert (u.q1, u.median, u.q3, u.mean, u.mean_is_restricted) == (1, 2, 3, 2.5, False)
    # everything censored: only the restricted mean (= the budget) is known
    a = samples_to_optimum(np.full(3, np.nan), np.ones(3, bool), 50, n_boot=200)
    assert a.mean == 50 and a.median is None and a.ci["median"] == [None, None]
    assert a.ci["mean"] == [50, 50]


def test_km_quantile_batch_handles_ties_like_the_product_limit():
    # t=1: r=6, d=1 -> 5/6; t=2: r=5, d=2 (a third unit censored at 2 stays at risk) -> 1/2;
    # t=3: r=2, d=1 -> 1/4
    t = np.array([2, 1, 2, 2, 3, 4.0])
    e = np.array([1, 1, 0, 1, 1, 0], bool)
    times, surv = kaplan_meier(t, e)
    assert surv == pytest.approx([5 / 6, 1 / 2, 1 / 4])
    assert km_quantile_batch(t, e, 0.5)[0] == 2
    assert km_quantile_batch(t, e, 0.75)[0] == 3
    assert km_quantile_batch(t, e, 0.8)[0] == np.inf
    rng = np.random.default_rng(1)
    T = rng.integers(1, 8, size=(40, 9)).astype(float)
    E = rng.random((40, 9)) < 0.7
    for q in (0.25, 0.5, 0.75):
        batch = km_quantile_batch(T, E, q)
        single = [km_quantile(T[i], E[i], q) for i in range(len(T))]
        assert batch.tolist() == [np.inf if s is None else s for s in single]


def test_bootstrap_intervals():
    assert bootstrap_ci(np.full(5, 3.0)) == (3.0, 3.0)
    x = np.arange(100, dtype=float)
    lo, hi = bootstrap_ci(x)
    se = x.std(ddof=1) / 10
    # the percentile interval of a mean of 100 values is close to mean +- 1.96 se
    assert lo == pytest.approx(49.5 - 1.96 * se, abs=0.15 * se)
    assert hi == pytest.approx(49.5 + 1.96 * se, abs=0.15 * se)
    assert bootstrap_ci(x) == (lo, hi)                          # reproducible
    assert bootstrap_ci(x, seed=1) != (lo, hi)
    assert percentile_interval(np.array([1.0, 2, np.inf, np.inf]), 0.5) == (1.0, None)
    s = samples_to_optimum(VALUES, CENSORED, 10, n_boot=500)
    assert s.ci["mean"][0] <= s.mean <= s.ci["mean"][1]
    assert s.ci["median"][0] <= s.median and s.ci["q3"][1] is None


def test_ratios_of_means_and_medians():
    r = sample_ratios(np.full(4, 10.0), np.ones(4, bool), np.full(4, 2.0), np.ones(4, bool), n_boot=100)
    assert (r["mean"].value, r["mean"].lo, r["mean"].hi, r["mean"].bound) == (5, 5, 5, "exact")
    assert (r["median"].value, r["median"].statistic) == (5, "median")
    # the slower group censored at 10: a ratio of restricted means is a lower bound
    r = sample_ratios(np.array([10, 10, 4, 10.0]), np.array([0, 0, 1, 0], bool),
                      np.array([1, 2, 2, 3.0]), np.ones(4, bool), n_boot=100)
    assert r["mean"].value == pytest.approx((34 / 4) / 2) and r["mean"].bound == "lower"
    assert r["mean"].statistic == "restricted mean"
    # KM median of the slower group is beyond the budget (10): the ratio is at least 10 / 2
    assert (r["median"].value, r["median"].bound) == (5, "lower")
    t, e = common_censoring(np.array([3, 12, 20.0]), np.array([1, 1, 0], bool), 10)
    assert t.tolist() == [3, 10, 10] and e.tolist() == [True, False, False]


def test_mann_whitney_and_effect_sizes_by_hand():
    t = mann_whitney([1, 2, 3], [4, 5, 6], "less")
    assert t.u == 0 and t.a12 == 0 and t.p_value == pytest.approx(1 / 20)   # exact: 1 of C(6,3)
    assert mann_whitney([4, 5, 6], [1, 2, 3], "greater").p_value == pytest.approx(1 / 20)
    # ties count half: pairs (2,2) twice -> U = 1, A12 = 1/6
    assert vargha_delaney_a12([1, 2, 2], [2, 3]) == pytest.approx(1 / 6)
    assert mann_whitney([1, 2, 2], [2, 3]).a12 == pytest.approx(1 / 6)
    same = mann_whitney([5, 5, 5], [5, 5])
    assert same.p_value == 1.0 and same.a12 == 0.5
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_curve_bands_by_hand():
    V = np.array([[1, 2], [3, 4], [5, 6], [7, 8.0]])
    b = curve_bands(V, n_boot=300)
    assert b["median"].tolist() == [4, 5] and b["mean"].tolist() == [4, 5]
    assert b["q1"].tolist() == [2.5, 3.5] and b["q3"].tolist() == [5.5, 6.5]
    assert np.all(b["mean_lo"] <= b["mean"]) and np.all(b["mean"] <= b["mean_hi"])
    V[0, 0] = np.nan                                   # a run not defined at the first point
    b = curve_bands(V, n_boot=300)
    assert b["median"][0] == 5 and b["n_runs"].tolist() == [3, 4]


def _cell(records, censored, budget=5, until_optimum=True, cost=False):
    sto = np.array([np.nan if c else r["n_distinct"][-1] for r, c in zip(records, censored)], float)
    return CellRuns(oracle="o", label="a", config={"algorithm": "a", "budget": budget, "until_optimum": until_optimum},
                    seeds=np.arange(len(records)), samples_to_optimum=sto, censored=np.array(censored),
                    final={k: np.array([r[k][-1] for r in records]) for k in ("best_search", "incumbent_report", "best_report")},
                    total_cost=np.array([r["cum_cost"][-1] for r in records]), records=records)


def _rec(nd, best, cost=None):
    nd, best = np.array(nd), np.array(best, float)
    return {"n_distinct": nd, "best_search": best, "incumbent_report": best - 0.1, "best_report": best,
            "cum_cost": np.array(cost, float) if cost is not None else np.full(len(nd), np.nan)}


def test_best_so_far_curves_from_records():
    # run 0 draws the optimum at its 3rd distinct sample (after a repeat) and stops; run 1 is
    # censored at the budget of 5
    runs = [_rec([1, 2, 2, 3], [.5, .6, .6, .9], [10, 30, 30, 60]),
            _rec([1, 2, 3, 4, 5], [.4, .4, .7, .7, .8], [5, 10, 15, 20, 25])]
    cell = _cell(runs, [False, True])
    M = best_so_far(cell, "best_search", sample_grid(5))
    assert M.tolist() == [[.5, .6, .9, .9, .9], [.4, .4, .7, .7, .8]]
    assert cell.quality_at(4)["best_search"].tolist() == [.9, .7]
    c = cell_curve(cell, "best_search", regret_to=1.0, n_boot=50)
    assert c.bands["median"] == pytest.approx([.55, .5, .2, .2, .15])
    # time: the grid starts when both runs have a result (10 s) and stops when the censored
    # run stops (25 s); the finished run keeps 0.9
    g = time_grid([cell])
    assert g[0] == 10 and g[-1] == pytest.approx(25)
    T = best_by_time(cell, "best_search", np.array([5.0, 10, 29, 60]))
    assert np.isnan(T[0, 0]) and T[0, 1:].tolist() == [.5, .5, .9]
    assert T[1, :2].tolist() == [.4, .4] and np.isnan(T[1, 2:]).all()
    assert sample_grid(10)[-1] == 10 and len(sample_grid(10**6)) < 1300


def test_mann_whitney_has_scipys_p_values():
    """Computed here (importing scipy.stats cost a second per report); exact null
    distribution for small untied samples, tie-corrected normal approximation otherwise."""
    from scipy.stats import mannwhitneyu
    rng = np.random.default_rng(0)
    for trial in range(400):
        n1, n2 = rng.integers(1, 14, size=2)
        if trial % 2:   # ties (censored runs tied at a budget look like this)
            a, b = rng.integers(0, 6, n1).astype(float), rng.integers(0, 6, n2).astype(float)
        else:           # untied, small: the exact distribution
            a, b = rng.random(n1), rng.random(n2) + rng.normal() * 0.3
        if np.all(a == a[0]) and np.all(b == a[0]):
            continue
        for alt in ("two-sided", "greater", "less"):
            ours, ref = mann_whitney(a, b, alt), mannwhitneyu(a, b, alternative=alt)
            assert ours.u == ref.statistic
            assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    # a large exact case (one group of 8) stays exact and fast
    a, b = rng.random(8), rng.random(3000)
    assert mann_whitney(a, b).p_value == pytest.approx(mannwhitneyu(a, b).pvalue, rel=1e-9)


def test_nanquantile_columns_is_numpys_nanquantile():
    import warnings
    from harness.statistics import nanquantile_columns
    rng = np.random.default_rng(1)
    qs = [0.025, 0.25, 0.5, 0.75, 0.975]
    for trial in range(100):
        X = rng.random(tuple(rng.integers(1, 30, size=2)))
        if trial % 3 == 0:
            X = np.round(X, 1)
        X[rng.random(X.shape) < 0.3] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanquantile(X, qs, axis=0)
        np.testing.assert_array_equal(nanquantile_columns(X, qs), ref)


def test_gehan_orders_only_pairs_the_data_order():
    from harness.statistics import censored_rank_test, gehan
    # a run censored at 5 (stopped early) against runs observed at 10 and 100: unordered
    t = gehan([5.0], [False], [10.0, 100.0], [True, True], "greater")
    assert t.a12 == 0.5
    # censored at 500, beyond both observations: larger than both
    assert gehan([500.0], [False], [10.0, 100.0], [True, True], "greater").a12 == 1.0
    # common censoring at the largest time: the same ordering as Mann-Whitney with ties, and
    # the dispatcher keeps Mann-Whitney's p-values there
    rng = np.random.default_rng(2)
    a = np.minimum(rng.integers(1, 150, 30), 100).astype(float)
    b = np.minimum(rng.integers(30, 200, 25), 100).astype(float)
    g = gehan(a, a < 100, b, b < 100, "less")
    m = mann_whitney(a, b, "less")
    assert g.a12 == pytest.approx(m.a12) and g.p_value == pytest.approx(m.p_value, rel=0.1)
    assert censored_rank_test(a, a < 100, b, b < 100, "less") == m
    # one run censored early switches to Gehan
    a2, e2 = a.copy(), a < 100
    a2[0], e2[0] = 3.0, False
    assert censored_rank_test(a2, e2, b, b < 100, "less") == gehan(a2, e2, b, b < 100, "less")


# --- every interval contains its estimate; each quartile at its own quantile --------------
def _random_runs(rng):
    """Samples-to-optimum of 1-24 runs from one of three shapes (geometric, heavy-tailed,
    few distinct values: many ties), censored at a budget, some runs stopped (censored)
    before it: (values with NaN where censored, censored, censoring time of each run)."""
    n = int(rng.integers(1, 25))
    budget = float(rng.integers(5, 60))
    kind = rng.integers(3)
    if kind == 0:
        v = rng.geometric(1 / rng.uniform(3, 80), n).astype(float)
    elif kind == 1:
        v = np.ceil(rng.lognormal(2.5, 1.2, n))
    else:
        v = rng.integers(1, 12, n).astype(float)
    censored = v > budget
    at = np.full(n, budget)
    stopped = ~censored & (rng.random(n) < rng.uniform(0, 0.3))
    at[stopped] = np.maximum(np.minimum(v[stopped], budget) - rng.integers(0, 3, stopped.sum()), 1)
    censored |= stopped
    v[censored] = np.nan
    return v, censored, at


def _contains(lo, value, hi):
    """``value`` in ``[lo, hi]``, a ``None`` bound or value lying beyond the budget (+inf)."""
    if value is None:
        return hi is None
    return lo is not None and lo <= value and (hi is None or value <= hi)


def test_every_bootstrap_interval_contains_its_estimate():
    from harness.statistics import samples_to_optimum_cis
    rng = np.random.default_rng(20)
    checked = {}
    for trial in range(300):
        v, c, at = _random_runs(rng)
        cis = samples_to_optimum_cis(v, c, at, n_boot=200, seed=trial)
        s = samples_to_optimum(v, c, at, n_boot=200, seed=trial)
        for k, e in cis.items():
            assert _contains(e.lo, e.value, e.hi), (trial, k, e, v, c, at)
            # the summary reports the same point and interval
            assert getattr(s, k) == e.value and s.ci[k] == [e.lo, e.hi]
            checked[k] = checked.get(k, 0) + (e.value is not None)
        if not c.any() and len(v) > 1:
            for stat, point in (("mean", v.mean()), ("median", np.median(v))):
                lo, hi = bootstrap_ci(v, stat, n_boot=200, seed=trial)
                assert _contains(lo, point, hi), (trial, stat, v)
        w, d, bt = _random_runs(rng)
        (ta, ea), (tb, eb) = censor_at(v, c, at), censor_at(w, d, bt)
        for k, r in sample_ratios(ta, ea, tb, eb, n_boot=200, seed=trial).items():
            if r.value is not None:          # None: both medians hidden, no ratio to give
                assert _contains(r.lo, r.value, r.hi), (trial, k, r, (ta, ea), (tb, eb))
                checked[f"{k} ratio {r.bound}"] = checked.get(f"{k} ratio {r.bound}", 0) + 1
    # the random inputs reach every case: each estimate, hidden quantiles, bounded ratios
    assert min(checked[k] for k in ("mean", "median", "q1", "q3")) > 100
    assert checked["q3"] < checked["q1"] < 300
    assert {"mean ratio exact", "mean ratio lower", "mean ratio unknown", "median ratio exact",
            "median ratio lower", "median ratio upper"} <= set(checked)


def test_quartile_intervals_are_computed_at_their_own_quantile():
    # 100 runs in three well separated clusters of 40 / 20 / 40; half of the slow cluster
    # censored at the budget (1000). Resampling can move the first quartile within its
    # cluster only (the 25th of 100 runs needs fewer than 25 of the fast 40: P ~ 1e-3), and
    # likewise the median and the third quartile, so the three intervals are disjoint
    values = np.r_[10 + np.arange(40.0), 500 + np.arange(20.0), 900 + np.arange(20.0), np.full(20, np.nan)]
    cens = np.isnan(values)
    s = samples_to_optimum(values, cens, 1000, n_boot=2000)
    assert (s.q1, s.median, s.q3) == (34, 509, 914)
    (q1_lo, q1_hi), (m_lo, m_hi), (q3_lo, q3_hi) = s.ci["q1"], s.ci["median"], s.ci["q3"]
    assert 10 <= q1_lo <= 34 <= q1_hi < 50
    assert 500 <= m_lo <= 509 <= m_hi < 520
    assert 900 <= q3_lo <= 914 and (q3_hi is None or q3_hi <= 1000)


def test_kaplan_meier_quartiles_with_stopped_runs_by_hand():
    # 8 runs: optimum after 2, 4, 4, 7, 9 samples; one run stopped after 3 and one after 6
    # (censored there), one censored at the budget of 10. Sorted: 2, 3+, 4, 4, 6+, 7, 9, 10+
    #   t=2: 8 at risk, 1 event   S = 7/8           1 - S = 1/8
    #   t=4: 6 at risk, 2 events  S = 7/8 * 4/6     = 7/12   1 - S = 5/12
    #   t=7: 3 at risk, 1 event   S = 7/12 * 2/3    = 7/18   1 - S = 11/18
    #   t=9: 2 at risk, 1 event   S = 7/18 * 1/2    = 7/36   1 - S = 29/36
    # (dropping the censored runs would give a median of 4, counting them as events 4 too)
    values = np.array([2, np.nan, 4, 4, np.nan, 7, 9, np.nan])
    cens = np.isnan(values)
    at = np.array([10, 3, 10, 10, 6, 10, 10, 10.0])
    t, e = censor_at(values, cens, at)
    times, surv = kaplan_meier(t, e)
    assert times.tolist() == [2, 4, 7, 9]
    assert surv == pytest.approx([7 / 8, 7 / 12, 7 / 18, 7 / 36])
    for q, expected in ((0.125, 2), (0.13, 4), (0.25, 4), (5 / 12, 4), (0.5, 7), (11 / 18, 7), (0.62, 9),
                        (0.75, 9), (29 / 36, 9), (0.81, None)):
        assert km_quantile(t, e, q) == expected, q
        assert km_quantile_batch(t, e, q)[0] == (np.inf if expected is None else expected), q
    s = samples_to_optimum(values, cens, at)
    assert (s.q1, s.median, s.q3) == (4, 7, 9)
    assert (s.n_runs, s.n_censored, s.min, s.max) == (8, 3, 2, 9)
    assert s.mean == pytest.approx(45 / 8) and s.mean_is_restricted     # 2+3+4+4+6+7+9+10


def test_ratio_of_medians_when_the_faster_groups_median_is_hidden_is_an_upper_bound():
    # a's KM median is 2; b's lies beyond its budget of 10 (3 of 4 runs censored there): a
    # needs at most 2/10 of b's samples, which is not a ratio of 0
    r = sample_ratios(np.array([1, 2, 2, 3.0]), np.ones(4, bool),
                      np.array([10, 10, 4, 10.0]), np.array([0, 0, 1, 0], bool), n_boot=200)
    assert (r["median"].value, r["median"].bound) == (pytest.approx(0.2), "upper")
    assert r["median"].lo is not None and r["median"].lo <= 0.2 <= r["median"].hi


def test_ratio_intervals_resample_the_two_groups_independently():
    # the groups are runs of two algorithms, unrelated run by run: with a = 2 b run by run,
    # resampling them with the same indices would make every resampled ratio exactly 2 (an
    # interval of width 0); independent resamples give about 2 +- 2 * 1.96 * sqrt(2) * cv / sqrt(n)
    b = np.arange(1, 21.0)
    a = 2 * b
    r = sample_ratios(a, np.ones(20, bool), b, np.ones(20, bool), n_boot=2000)
    cv = b.std(ddof=1) / b.mean()
    half = 2 * 1.96 * np.sqrt(2) * cv / np.sqrt(20)
    for k in ("mean", "median"):
        assert r[k].value == 2 and r[k].bound == "exact"
        assert r[k].lo < 2 < r[k].hi and r[k].hi - r[k].lo > half, (k, r[k], half)


# --- pinned down by mutation testing (docs/mutation-testing.md) ---------------------------
def test_mean_std_ignores_missing_runs():
    from harness.statistics import mean_std
    assert mean_std([1.0, np.nan, 2.0, 3.0]) == (2.0, 1.0)          # sample sd of 1, 2, 3 is 1
    assert mean_std([5.0]) == (5.0, 0.0)                             # one run: no spread
    assert mean_std([4, 8]) == (6.0, pytest.approx(2 ** 1.5))        # sqrt(((4-6)^2 + (8-6)^2) / 1)
    assert mean_std([]) == (None, None) and mean_std([np.nan, np.nan]) == (None, None)


def test_results_as_dicts_hold_every_field():
    from harness.statistics import Estimate, RankTest, Ratio, SamplesToOptimum
    assert Estimate(1.0, 0.5, None).as_dict() == {"value": 1.0, "lo": 0.5, "hi": None}
    assert RankTest(3.0, 0.2, "less", 0.25).as_dict() == {"u": 3.0, "p_value": 0.2, "alternative": "less",
                                                          "a12": 0.25}
    assert Ratio("median", 2.0, 1.0, 3.0, "exact").as_dict() == {"statistic": "median", "value": 2.0, "lo": 1.0,
                                                                 "hi": 3.0, "bound": "exact"}
    s = samples_to_optimum(VALUES, CENSORED, 10).as_dict()
    assert s == {"n_runs": 6, "n_censored": 2, "mean": pytest.approx(38 / 6), "mean_is_restricted": True,
                 "median": 5, "q1": 3, "q3": None, "min": 2, "max": 8, "ci": {}, "confidence": None}


def test_summaries_of_no_runs():
    from harness.statistics import SamplesToOptimum, samples_to_optimum_cis
    assert samples_to_optimum([], [], 10) == SamplesToOptimum(n_runs=0, n_censored=0, mean=None,
                                                              mean_is_restricted=False, median=None, q1=None,
                                                              q3=None, min=None, max=None, ci={}, confidence=None)
    cis = samples_to_optimum_cis([], [], 10)
    assert sorted(cis) == ["mean", "median", "q1", "q3"]
    assert all((e.value, e.lo, e.hi) == (None, None, None) for e in cis.values())
    assert sample_ratios([], [], [1.0], [True]) == {} and sample_ratios([1.0], [True], [], []) == {}
    assert mann_whitney([1.0, 2.0], []) is None and mann_whitney([], [1.0]) is None
    from harness.statistics import censored_rank_test, gehan
    assert gehan([], [], [1.0], [True]) is None and gehan([1.0], [True], [], []) is None
    assert censored_rank_test([], [], [], []) is None
    assert holm([]) == []
    assert bootstrap_ci([]) == (None, None) and bootstrap_ci([np.nan]) == (None, None)
    assert percentile_interval([np.nan, np.nan]) == (None, None)


def test_intervals_are_asked_for_and_use_the_confidence_asked_for():
    s = samples_to_optimum(VALUES, CENSORED, 10)                  # default: no bootstrap
    assert s.ci == {} and s.confidence is None
    s = samples_to_optimum(VALUES, CENSORED, 10, n_boot=1)        # one resample is a resample
    assert sorted(s.ci) == ["mean", "median", "q1", "q3"] and s.confidence == 0.95
    assert samples_to_optimum(VALUES, CENSORED, 10, n_boot=0, confidence=0.5).confidence is None
    # a 50% interval lies inside the 95% one, and is narrower for every estimate
    from harness.statistics import samples_to_optimum_cis
    rng = np.random.default_rng(5)
    v = rng.geometric(1 / 30, 40).astype(float)
    c = v > 60
    v[c] = np.nan
    wide, narrow = (samples_to_optimum_cis(v, c, 60, confidence=k, n_boot=400) for k in (0.95, 0.5))
    for k in ("mean", "median", "q1"):
        assert wide[k].lo < narrow[k].lo <= narrow[k].hi < wide[k].hi, k
    s50 = samples_to_optimum(v, c, 60, n_boot=400, confidence=0.5)
    assert s50.ci["median"] == [narrow["median"].lo, narrow["median"].hi] and s50.confidence == 0.5
    x = rng.normal(size=50)
    (lo95, hi95), (lo50, hi50) = bootstrap_ci(x), bootstrap_ci(x, confidence=0.5)
    assert lo95 < lo50 < hi50 < hi95
    a, b = rng.geometric(1 / 40, 30).astype(float), rng.geometric(1 / 20, 30).astype(float)
    r95 = sample_ratios(a, np.ones(30, bool), b, np.ones(30, bool), n_boot=400)
    r50 = sample_ratios(a, np.ones(30, bool), b, np.ones(30, bool), n_boot=400, confidence=0.5)
    for k in ("mean", "median"):
        assert r95[k].lo < r50[k].lo < r50[k].hi < r95[k].hi, k


def test_bootstrap_of_one_value_and_of_each_statistic():
    assert bootstrap_ci([7.0]) == (7.0, 7.0) and bootstrap_ci([np.nan, 7.0]) == (7.0, 7.0)
    # resamples of [0, 10]: each of the 2000 is (0, 0), (0, 10), (10, 0) or (10, 10)
    lo, hi = bootstrap_ci([0.0, 10.0], "mean")
    assert (lo, hi) == (0.0, 10.0)
    assert bootstrap_ci([0.0, 10.0], "std") == (0.0, pytest.approx(np.sqrt(50)))
    # nine small values and one outlier: the median stays among the small ones, the mean does not
    x = np.r_[np.arange(1.0, 10), 1000]
    assert bootstrap_ci(x, "median")[1] <= 9 and bootstrap_ci(x, "mean")[1] > 200


def test_every_resample_comes_from_the_seed():
    from harness.statistics import samples_to_optimum_cis
    v = np.arange(1, 31.0)
    c = np.zeros(30, bool)
    for seed in (3, 4):
        assert samples_to_optimum_cis(v, c, 50, seed=seed) == samples_to_optimum_cis(v, c, 50, seed=seed)
    s3, s4 = (samples_to_optimum_cis(v, c, 50, n_boot=100, seed=s) for s in (3, 4))
    assert s3["mean"] != s4["mean"] and s3["median"] != s4["median"]
    V = np.random.default_rng(0).random((12, 3))
    b3, b3b, b4 = curve_bands(V, seed=3), curve_bands(V, seed=3), curve_bands(V, seed=4)
    assert b3["mean_lo"].tolist() == b3b["mean_lo"].tolist() != b4["mean_lo"].tolist()
    # a ratio's interval comes from both groups' resamples, each drawn from the seed: with
    # the other group constant, each group alone makes the interval wide, reproducibly
    const = np.full(20, 7.0)
    for a, b in ((v[:20], const), (const, v[:20])):
        obs = np.ones(20, bool)
        r3, r3b, r4 = (sample_ratios(a, obs, b, obs, n_boot=300, seed=s) for s in (3, 3, 4))
        for k in ("mean", "median"):
            assert r3[k].hi - r3[k].lo > 0.2 and r3[k] == r3b[k] and r3[k] != r4[k], k


def _km_median(t, e):
    m = km_quantile(np.asarray(t, float), np.asarray(e, bool), 0.5)
    return np.inf if m is None else m


def _ratio_of_medians_by_hand(a, ea, b, eb, n_boot, seed, confidence=0.95):
    """The ratio of KM medians and its interval resample by resample, with the scalar
    Kaplan-Meier (:func:`km_quantile`) and the rule of :class:`Ratio`'s ``bound``: a median
    beyond its group's last follow-up is that time (a bound) in the point and in every
    resample where the other median is seen; both hidden: no ratio."""
    from harness.statistics import resample_indices
    a, ea, b, eb = (np.asarray(x) for x in (a, ea, b, eb))
    ma, mb = _km_median(a, ea), _km_median(b, eb)
    mode = "lower" if np.isinf(ma) and np.isfinite(mb) else "upper" if np.isfinite(ma) and np.isinf(mb) else "exact"
    ia, ib = resample_indices(len(a), n_boot, seed), resample_indices(len(b), n_boot, seed + 1)
    draws = []
    for r in range(n_boot):
        A, EA, B, EB = a[ia[r]], ea[ia[r]], b[ib[r]], eb[ib[r]]
        MA, MB = _km_median(A, EA), _km_median(B, EB)
        if mode == "lower" and np.isinf(MA) and np.isfinite(MB):
            draws.append(max(A) / MB)
        elif mode == "upper" and np.isfinite(MA) and np.isinf(MB):
            draws.append(MA / max(B))
        elif np.isinf(MA) and np.isinf(MB):
            continue
        else:
            draws.append(np.inf if np.isinf(MA) else 0.0 if np.isinf(MB) else MA / MB)
    point = {"lower": max(a) / mb, "upper": ma / max(b), "exact": ma / mb if np.isfinite(ma) or np.isfinite(mb)
             else np.nan}[mode]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha], method="inverted_cdf")
    fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return fin(point), fin(lo), fin(hi), mode


@pytest.mark.parametrize("case", ["hidden numerator", "hidden denominator", "often hidden in resamples",
                                  "stopped runs", "bound from each resample", "bound from each resample, upper",
                                  "both hidden"])
def test_ratio_of_medians_resample_by_resample(case):
    # a's KM median hidden at the point but seen in a third of the resamples (3 of 5 runs
    # observed there): those resamples count with their own ratio, the others with the bound
    a, ea = [1.0, 2, 10, 10, 10], [1, 1, 0, 0, 0]
    b, eb = [2.0, 2, 2, 3], [1, 1, 1, 1]
    if case == "hidden denominator":
        a, ea, b, eb = b, eb, a, ea
    elif case == "often hidden in resamples":      # point seen (2), hidden in ~30% of resamples
        a, ea = [1.0, 2, 10, 10], [1, 1, 0, 0]
    elif case == "stopped runs":                   # censored at different times: a row's own maximum
        a, ea = [1.0, 2, 3, 5, 9, 9], [1, 1, 0, 0, 0, 0]
        b, eb = [2.0, 4, 6, 8, 5], [1, 1, 1, 0, 0]
    elif case.startswith("bound from each resample"):
        # one run observed, four stopped at different times: a's median is hidden in almost
        # every resample, whose bound is that resample's longest run (not the group's)
        a, ea, b, eb = [1.0, 3, 5, 7, 9], [1, 0, 0, 0, 0], [2.0, 2, 2, 2], [1, 1, 1, 1]
        if case.endswith("upper"):
            a, ea, b, eb = b, eb, a, ea
    elif case == "both hidden":
        b, eb = [2.0, 7, 7, 7], [1, 0, 0, 0]
    # the quartiles of the resamples' ratios (confidence 0.5) show what lies inside the interval
    k = 0.5 if case.startswith("bound from each resample") else 0.95
    value, lo, hi, bound = _ratio_of_medians_by_hand(a, ea, b, eb, n_boot=300, seed=2, confidence=k)
    r = sample_ratios(a, ea, b, eb, n_boot=300, seed=2, confidence=k)["median"]
    assert (r.value, r.lo, r.hi, r.bound) == (pytest.approx(value) if value is not None else None,
                                              pytest.approx(lo) if lo is not None else None,
                                              pytest.approx(hi) if hi is not None else None, bound)
    if case == "hidden numerator":
        assert (value, lo, hi) == (5.0, 0.5, 5.0)
    if case == "often hidden in resamples":
        assert hi is None                           # beyond the budget: a's median is often hidden
    if case == "hidden denominator":
        assert lo == pytest.approx(0.2)
    if case == "bound from each resample":
        # 9 / 2; in a third of the resamples the longest run is 7 or shorter: 7 / 2
        assert (value, lo, hi, bound) == (4.5, 3.5, 4.5, "lower")
    if case == "bound from each resample, upper":
        assert (value, lo, hi, bound) == (pytest.approx(2 / 9), pytest.approx(2 / 9), pytest.approx(2 / 7), "upper")


def test_ratio_labels_and_bounds():
    obs = np.ones(4, bool)
    r = sample_ratios([4.0, 4, 4, 4], obs, [2.0, 2, 2, 2], obs, n_boot=50)
    assert (r["mean"].statistic, r["median"].statistic) == ("mean", "median")
    # only the baseline group censored: the ratio of restricted means is an upper bound
    r = sample_ratios([1.0, 2, 2, 3], obs, [10.0, 10, 4, 10], [0, 0, 1, 0], n_boot=50)
    assert (r["mean"].statistic, r["mean"].bound) == ("restricted mean", "upper")
    assert r["median"].statistic == "KM median"
    r = sample_ratios([10.0, 3], [0, 1], [10.0, 4], [0, 1], n_boot=50)
    assert (r["mean"].bound, r["median"].bound) == ("unknown", "exact")
    # a group of one run each
    r = sample_ratios([6.0], [True], [3.0], [True], n_boot=50)
    assert (r["mean"].value, r["mean"].lo, r["mean"].hi) == (2.0, 2.0, 2.0) and r["median"].value == 2.0


def test_ratios_never_warn():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # both medians hidden (inf / inf), and a group that needed no sample (x / 0)
        r = sample_ratios([10.0, 10], [0, 0], [10.0, 10], [0, 0], n_boot=20)
        assert r["median"].value is None and r["median"].lo is None
        sample_ratios([1.0, 2], [1, 1], [0.0, 0], [1, 1], n_boot=20)


def test_input_types_do_not_change_the_answers():
    """Plain lists, integer times and 0/1 flags answer as float arrays and booleans do;
    times come back as floats (they hold NaN and inf), flags as booleans."""
    from harness.statistics import censored_rank_test, gehan, samples_to_optimum_cis
    t_int, e_int = [2, 3, 3, 5, 8, 10, 10], [1, 0, 1, 1, 1, 0, 0]
    t, e = np.array(t_int, float), np.array(e_int, bool)
    times, surv = kaplan_meier(t_int, e_int)
    assert times.dtype == np.float64 and times.tolist() == kaplan_meier(t, e)[0].tolist()
    assert surv.tolist() == kaplan_meier(t, e)[1].tolist()
    for q in (0.25, 0.5):
        assert km_quantile(t_int, e_int, q) == km_quantile(t, e, q)
    ct, ce = censor_at([3, 5, 0], [0, 0, 1], 10)
    assert ct.dtype == np.float64 and ct.tolist() == [3.0, 5.0, 10.0]
    assert ce.dtype == bool and ce.tolist() == [True, True, False]
    gt, ge = common_censoring([3, 12, 20], [1, 1, 0], 10)
    assert gt.dtype == np.float64 and gt.tolist() == [3, 10, 10]
    assert ge.dtype == bool and ge.tolist() == [True, False, False]
    s = samples_to_optimum([3, 5, 0, 8], [0, 0, 1, 0], 10)
    assert (s.n_censored, s.median, s.min, s.max, s.mean) == (1, 5, 3, 8, 6.5)
    assert samples_to_optimum_cis([3, 5, 0, 8], [0, 0, 1, 0], 10, n_boot=50) == \
        samples_to_optimum_cis(np.array([3.0, 5, np.nan, 8]), np.array([0, 0, 1, 0], bool), 10, n_boot=50)
    a, ea, b, eb = [3, 10, 4, 10], [1, 0, 1, 0], [2, 10, 1, 5], [1, 0, 1, 1]
    fa, fb = np.array(a, float), np.array(b, float)
    fea, feb = np.array(ea, bool), np.array(eb, bool)
    assert censored_rank_test(a, ea, b, eb, "less") == censored_rank_test(fa, fea, fb, feb, "less")
    assert gehan(a, ea, b, eb, "less") == gehan(fa, fea, fb, feb, "less")
    assert sample_ratios(a, ea, b, eb, n_boot=50) == sample_ratios(fa, fea, fb, feb, n_boot=50)


def test_kaplan_meier_quantile_takes_the_first_time_reaching_q():
    # S drops to 1/2 exactly at t = 5; a q a hair above 1/2 (within the 1e-12 that absorbs
    # rounding in S) still takes t = 5, one clearly above takes the next event
    t, e = np.array([1.0, 5, 7, 9]), np.ones(4, bool)
    q = 0.5 + 1e-12
    assert q - 1e-12 == 0.5                      # premise: the tolerance reaches exactly 1 - S(5)
    assert km_quantile(t, e, 0.5) == km_quantile(t, e, q) == 5
    assert km_quantile_batch(t, e, q)[0] == 5 and km_quantile_batch(t, e, 0.5)[0] == 5
    assert km_quantile(t, e, 0.5 + 1e-9) == 7 == km_quantile_batch(t, e, 0.5 + 1e-9)[0]
    assert kaplan_meier([], [])[0].tolist() == [] and kaplan_meier([4.0], [False])[1].tolist() == []


def test_common_censoring_keeps_a_run_observed_at_tau():
    t, e = common_censoring(np.array([9.0, 10, 11]), np.ones(3, bool), 10)
    assert t.tolist() == [9, 10, 10] and e.tolist() == [True, True, False]


def test_holm_by_hand():
    assert holm([0.03]) == [0.03]
    assert holm([0.6, 0.7]) == [1.0, 1.0]                      # never above 1
    assert holm([0.02, 0.01, 0.04]) == pytest.approx([0.04, 0.03, 0.04])  # 3 x .01, 2 x .02, max(.04, .04)
    assert holm([0.01, 0.01]) == pytest.approx([0.02, 0.02])


def test_u_null_counts_enumerate_the_orderings():
    from itertools import combinations
    from math import comb
    from harness.statistics import _u_null_counts
    assert _u_null_counts(2, 2).tolist() == [1, 1, 2, 1, 1]    # U of {1,2},{1,3},{1,4},{2,3},{2,4},{3,4}
    for n1, n2 in ((1, 3), (3, 1), (2, 5), (4, 4), (3, 6)):
        counts = np.zeros(n1 * n2 + 1)
        for pos in combinations(range(n1 + n2), n1):    # positions of the first sample, sorted
            # U = pairs (x in first, y in second) with x above y
            counts[sum(p - i for i, p in enumerate(pos))] += 1
        assert _u_null_counts(n1, n2).tolist() == counts.tolist(), (n1, n2)
        assert counts.sum() == comb(n1 + n2, n1)


def test_mann_whitney_constant_samples_and_bad_alternatives():
    same = mann_whitney([5.0, 5, 5], [5.0, 5], "less")
    assert (same.u, same.p_value, same.alternative, same.a12) == (3.0, 1.0, "less", 0.5)
    t = mann_whitney([1.0, 2], [3.0], "greater")
    assert t.alternative == "greater" and t.u == 0
    from harness.statistics import gehan
    with pytest.raises(ValueError, match="alternative must be two-sided, greater or less, got 'bigger'"):
        mann_whitney([1.0], [2.0], "bigger")
    with pytest.raises(ValueError, match="alternative must be two-sided, greater or less, got 'bigger'"):
        gehan([1.0], [True], [2.0], [True], "bigger")


def test_gehan_by_hand():
    """a: 2, 6+ (censored at 6); b: 3, 5, 1. Pairs the data order (i > j: j observed and i
    longer, or i censored at j's time): 2 > 1; 6+ > 2, 3, 5, 1; 3 > 2, 1; 5 > 2, 3, 1.
    Scores (wins - losses): 2: 1 - 3 = -2; 6+: 4; 3: 2 - 2 = 0; 5: 3 - 1 = 2; 1: -4.
    W = -2 + 4 = 2; Mantel's variance n1 n2 / (n (n-1)) sum(score^2) = 6/20 * 40 = 12.
    Cross pairs a > b: (2, 1), (6+, 3), (6+, 5), (6+, 1): A12 = 4/6."""
    from scipy.stats import norm
    from harness.statistics import censored_rank_test, gehan
    z = 2 / np.sqrt(12)
    for alt, p in (("greater", norm.sf(z)), ("less", norm.cdf(z)), ("two-sided", 2 * norm.sf(z))):
        g = gehan([2.0, 6], [True, False], [3.0, 5, 1], [True, True, True], alt)
        assert (g.u, g.alternative) == (4.0, alt) and g.a12 == pytest.approx(2 / 3)
        assert g.p_value == pytest.approx(p, rel=1e-12), alt
    assert gehan([2.0, 6], [True, False], [3.0, 5, 1], [True, True, True]) == \
        gehan([2.0, 6], [True, False], [3.0, 5, 1], [True, True, True], "two-sided")     # the default
    # one run each, 1 against 2: scores -1, 1; variance 1/2 * 2 = 1, z = -1
    g = gehan([1.0], [True], [2.0], [True], "greater")
    assert (g.u, g.a12) == (0.0, 0.0) and g.p_value == pytest.approx(norm.sf(-1), rel=1e-12)
    # a run censored at the time another was observed lasted longer
    assert gehan([5.0], [False], [5.0], [True], "greater").a12 == 1.0
    assert gehan([5.0], [True], [5.0], [True], "greater").a12 == 0.5          # observed tie
    # nothing ordered (every run censored): no evidence, all fields of the answer
    g = gehan([5.0, 5], [False, False], [3.0, 7, 4], [False, False, False], "less")
    assert (g.u, g.p_value, g.alternative, g.a12) == (3.0, 1.0, "less", 0.5)
    # the dispatcher: the default alternative, equal group sizes, one run stopped early
    t, e = np.array([3.0, 10, 4, 10]), np.array([1, 0, 1, 0], bool)
    u, f = np.array([2.0, 10, 1, 5]), np.array([1, 0, 1, 1], bool)
    assert censored_rank_test(t, e, u, f) == mann_whitney(t, u, "two-sided")
    t2, e2 = np.array([3.0, 6, 4, 8]), np.array([1, 0, 1, 1], bool)       # one run, stopped at 6
    assert censored_rank_test(t2, e2, u, f, "less") == gehan(t2, e2, u, f, "less")
    assert censored_rank_test(t2, e2, u, f) == gehan(t2, e2, u, f, "two-sided")
    # the only censored run, stopped before the longest observed one: Gehan
    u2 = np.array([2.0, 10, 1, 5])
    assert censored_rank_test(t2, e2, u2, np.ones(4, bool), "less") == gehan(t2, e2, u2, np.ones(4, bool), "less")


def test_curve_bands_never_warn_on_sparse_curves():
    import warnings
    # a point defined by one run of four, and one defined by none: resamples without that
    # run have no mean there (NaN, no warning), the quantiles of nothing are NaN
    V = np.array([[1.0, 2, np.nan], [3, np.nan, np.nan], [5, np.nan, np.nan], [7, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = curve_bands(V, n_boot=200)
    assert b["n_runs"].tolist() == [4, 1, 0]
    assert all(b[k].dtype == np.float64 for k in ("median", "q1", "q3", "mean", "mean_lo", "mean_hi"))
    assert b["mean"][1] == 2 and b["mean_lo"][1] == 2 and b["mean_hi"][1] == 2
    assert np.isnan([b[k][2] for k in ("median", "q1", "q3", "mean", "mean_lo", "mean_hi")]).all()


def test_curve_bands_mean_interval_by_hand():
    # two runs, constant curves 0 and 10: resampled means are 0, 5 or 10 (1/4, 1/2, 1/4),
    # so the 95% interval is [0, 10] and a 40% one [5, 5]
    V = np.array([[0.0] * 3, [10.0] * 3])
    b = curve_bands(V, n_boot=400)
    assert b["mean_lo"].tolist() == [0, 0, 0] and b["mean_hi"].tolist() == [10, 10, 10]
    b = curve_bands(V, n_boot=400, confidence=0.4)
    assert b["mean_lo"].tolist() == [5, 5, 5] and b["mean_hi"].tolist() == [5, 5, 5]
    # more points than one chunk of the computation, each point its own curve of means
    W = np.tile(np.array([[0.0], [10.0], [4.0]]), (1, 1300)) + np.arange(1300)
    b = curve_bands(W, n_boot=100)
    assert (b["mean_lo"] <= b["mean"]).all() and (b["mean"] <= b["mean_hi"]).all()
    assert np.allclose(b["mean_hi"] - b["mean_lo"], b["mean_hi"][0] - b["mean_lo"][0])
    assert b["mean_hi"][-1] - b["mean_lo"][-1] > 5


def test_nanquantile_columns_of_no_runs_is_nan():
    from harness.statistics import nanquantile_columns
    out = nanquantile_columns(np.empty((0, 3)), [0.25, 0.5])
    assert out.shape == (2, 3) and np.isnan(out).all()
