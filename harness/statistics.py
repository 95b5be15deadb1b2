"""Statistical estimates over runs (no I/O, no plotting; :mod:`harness.metrics` reads the
files, :mod:`harness.figures` draws).

Samples-to-optimum are right-censored: a run that hits its budget cap without drawing the
optimum only tells us the true value exceeds the cap. Such runs are never dropped. The
median and quartiles come from the Kaplan-Meier estimator (equal to the empirical quantiles
when nothing is censored); the mean is the mean *restricted to the budget* (censored runs
count as the cap), which is a lower bound of the true mean and is labelled so whenever a run
was censored.

Uncertainty: percentile-bootstrap intervals (runs resampled with replacement; ``N_BOOT``
= 2,000 resamples, fixed generator seed so a report is reproducible) for means, KM
quantiles (:func:`km_quantile_batch` evaluates all resamples in one vectorised pass),
ratios between algorithms (LaNAS §4.2: "LaNAS is on average using 22x ... fewer samples";
:func:`sample_ratios`, groups resampled independently) and for curve means
(:func:`curve_bands`, which also gives the median and interquartile band of LaNAS Fig. 5).
Rank tests: Mann-Whitney U (scipy's p-values, computed here) with the Vargha-Delaney A12 effect size; on samples
censored at a common budget it is Gehan's generalised Wilcoxon test. :func:`holm` adjusts
p-values of many tests (used by :mod:`harness.compare`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def kaplan_meier(times: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Survival curve: distinct event times and S(t) just after each of them."""
    times = np.asarray(times, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    event_times = np.unique(times[observed])
    at_risk = np.array([(times >= t).sum() for t in event_times], dtype=np.float64)
    events = np.array([((times == t) & observed).sum() for t in event_times], dtype=np.float64)
    survival = np.cumprod(1.0 - events / at_risk) if len(event_times) else np.array([])
    return event_times, survival


def km_quantile(times: np.ndarray, observed: np.ndarray, q: float) -> float | None:
    """Smallest t with estimated P(T <= t) >= q; None when censoring hides it."""
    t, s = kaplan_meier(times, observed)
    hit = np.flatnonzero(1.0 - s >= q - 1e-12)
    return float(t[hit[0]]) if len(hit) else None


@dataclass
class SamplesToOptimum:
    n_runs: int
    n_censored: int
    mean: float | None            #: restricted to the budget when n_censored > 0
    mean_is_restricted: bool
    median: float | None          #: Kaplan-Meier
    q1: float | None
    q3: float | None
    min: float | None
    max: float | None
    #: percentile-bootstrap intervals ``[lo, hi]`` of mean / median / q1 / q3 (filled when
    #: asked for with ``n_boot > 0``; a ``None`` bound lies beyond the budget)
    ci: dict[str, list[float | None]] = field(default_factory=dict)
    confidence: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def samples_to_optimum(values: np.ndarray, censored: np.ndarray, budget: np.ndarray | float,
                       n_boot: int = 0, confidence: float = 0.95, seed: int = 0) -> SamplesToOptimum:
    """Summary of samples-to-optimum; ``values`` may be NaN where ``censored``.

    ``n_boot`` > 0 adds percentile-bootstrap intervals (``n_boot`` resamples of the runs,
    generator seeded with ``seed`` so the numbers are reproducible)."""
    censored = np.asarray(censored, dtype=bool)
    budget = np.broadcast_to(np.asarray(budget, dtype=np.float64), censored.shape)
    times = np.where(censored, budget, np.asarray(values, dtype=np.float64))
    n = len(times)
    if n == 0:
        return SamplesToOptimum(0, 0, None, False, None, None, None, None, None)
    observed = ~censored
    return SamplesToOptimum(
        n_runs=n, n_censored=int(censored.sum()),
        mean=float(times.mean()), mean_is_restricted=bool(censored.any()),
        median=km_quantile(times, observed, 0.5), q1=km_quantile(times, observed, 0.25),
        q3=km_quantile(times, observed, 0.75),
        min=float(times[observed].min()) if observed.any() else None,
        max=float(times[observed].max()) if observed.any() else None,
        ci=({k: [e.lo, e.hi] for k, e in samples_to_optimum_cis(
            values, censored, budget, confidence, n_boot, seed).items()} if n_boot > 0 else {}),
        confidence=confidence if n_boot > 0 else None)


def mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


# --- bootstrap ----------------------------------------------------------------------------
#: bootstrap defaults: 2,000 percentile-bootstrap resamples and a fixed seed, so a report is
#: the same every time it is made (Efron & Tibshirani's usual 1,000-2,000 for percentile CIs)
N_BOOT = 2000
CONFIDENCE = 0.95
BOOT_SEED = 0


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """``(n_boot, n)`` row indices of ``n_boot`` resamples with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap draws; ``inf`` draws (a quantile hidden by censoring)
    make a bound ``None`` (= beyond the budget). ``inverted_cdf`` picks actual draws, so
    infinite ones never get interpolated into NaN."""
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return None, None
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a], method="inverted_cdf")
    return (float(lo) if np.isfinite(lo) else None), (float(hi) if np.isfinite(hi) else None)


def bootstrap_ci(values: np.ndarray, statistic: str = "mean", confidence: float = CONFIDENCE,
                 n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of ``statistic`` (``mean``/``median``/``std``) of ``values``
    (NaN entries ignored)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None, None
    if len(v) == 1:
        return float(v[0]), float(v[0])
    draws = _STATS[statistic](v[resample_indices(len(v), n_boot, seed)])
    return percentile_interval(draws, confidence)


_STATS = {
    "mean": lambda m: m.mean(axis=-1),
    "median": lambda m: np.median(m, axis=-1),
    "std": lambda m: m.std(axis=-1, ddof=1),
}


# --- Kaplan-Meier on many samples at once -------------------------------------------------
def km_quantile_batch(times: np.ndarray, observed: np.ndarray, q: float) -> np.ndarray:
    """Kaplan-Meier ``q``-quantile of every row of ``times``/``observed`` (shape ``(B, n)``);
    ``inf`` where censoring hides it.

    Within a row, units are sorted by time with events before censorings at ties (a unit
    censored at ``t`` is still at risk at ``t``). Taking tied events one at a time with
    at-risk counts ``r, r-1, ..., r-d+1`` multiplies to the product-limit factor ``1 - d/r``
    of the group, so the running product over sorted units reaches every KM value at the
    end of its time group, and the first unit where ``1 - S >= q`` carries the quantile.
    """
    T = np.atleast_2d(np.asarray(times, dtype=np.float64))
    E = np.atleast_2d(np.asarray(observed, dtype=bool))
    n = T.shape[1]
    order = np.lexsort((~E, T), axis=-1)
    Ts = np.take_along_axis(T, order, axis=-1)
    Es = np.take_along_axis(E, order, axis=-1)
    at_risk = n - np.arange(n, dtype=np.float64)
    S = np.cumprod(1.0 - Es / at_risk, axis=-1)
    hit = (1.0 - S >= q - 1e-12) & Es
    first = hit.argmax(axis=-1)
    found = hit.any(axis=-1)
    return np.where(found, Ts[np.arange(len(Ts)), first], np.inf)


def censor_at(values: np.ndarray, censored: np.ndarray, budget) -> tuple[np.ndarray, np.ndarray]:
    """(times, observed) with censored runs placed at their budget.

    A run censored at budget ``B`` drew ``B`` architectures without the optimum, so its
    samples-to-optimum is at least ``B + 1``; placing it at ``B`` and flagging it censored is
    the usual right-censoring convention (and makes a restricted mean a lower bound)."""
    censored = np.asarray(censored, dtype=bool)
    budget = np.broadcast_to(np.asarray(budget, dtype=np.float64), censored.shape)
    times = np.where(censored, budget, np.asarray(values, dtype=np.float64))
    return times, ~censored


def common_censoring(times: np.ndarray, observed: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Censor every run at ``tau`` as well (for comparing groups with different budgets)."""
    times = np.asarray(times, dtype=np.float64)
    later = times > tau
    return np.minimum(times, tau), np.asarray(observed, dtype=bool) & ~later


@dataclass
class Estimate:
    """A point estimate with its percentile-bootstrap interval (``None``: not estimable, or
    a bound beyond the budget because censoring hides it)."""

    value: float | None
    lo: float | None
    hi: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _none_if_inf(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def samples_to_optimum_cis(values: np.ndarray, censored: np.ndarray, budget,
                           confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
                           seed: int = BOOT_SEED) -> dict[str, Estimate]:
    """Bootstrap CIs (runs resampled with replacement) of the restricted mean and of the
    Kaplan-Meier quartiles and median of samples-to-optimum."""
    times, observed = censor_at(values, censored, budget)
    n = len(times)
    if n == 0:
        return {k: Estimate(None, None, None) for k in ("mean", "median", "q1", "q3")}
    idx = resample_indices(n, n_boot, seed)
    T, E = times[idx], observed[idx]
    out = {"mean": Estimate(float(times.mean()), *percentile_interval(T.mean(axis=1), confidence))}
    for key, q in (("q1", 0.25), ("median", 0.5), ("q3", 0.75)):
        point = km_quantile_batch(times, observed, q)[0]
        out[key] = Estimate(_none_if_inf(point),
                            *percentile_interval(km_quantile_batch(T, E, q), confidence))
    return out


# --- comparing two groups ----------------------------------------------------------------
@dataclass
class Ratio:
    """``statistic(a) / statistic(b)`` with a bootstrap CI (groups resampled independently)."""

    statistic: str                #: "restricted mean" / "mean" / "KM median" / "median"
    value: float | None
    lo: float | None
    hi: float | None
    #: for a ratio of restricted means: "lower" (only the numerator's runs were censored, so
    #: the true ratio is at least this), "upper" (only the denominator's), "unknown" (both),
    #: "exact" (no censoring). For a ratio of KM medians: "lower" when ``a``'s median lies
    #: beyond its last follow-up time, "upper" when ``b``'s does, "exact" otherwise
    bound: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio_draws(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    # a hidden (infinite) quantile in both groups says nothing about their ratio
    return np.where(np.isinf(num) & np.isinf(den), np.nan, r)


def sample_ratios(a_times: np.ndarray, a_observed: np.ndarray, b_times: np.ndarray,
                  b_observed: np.ndarray, confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED) -> dict[str, Ratio]:
    """How many times more samples group ``a`` needs than group ``b`` (e.g. a = random
    search, b = LaNAS: "LaNAS needs 22x fewer samples", LaNAS §4.2): ratio of the means
    (restricted to the budget when a run is censored) and of the Kaplan-Meier medians."""
    a_t, a_e = np.asarray(a_times, float), np.asarray(a_observed, bool)
    b_t, b_e = np.asarray(b_times, float), np.asarray(b_observed, bool)
    if len(a_t) == 0 or len(b_t) == 0:
        return {}
    ia = resample_indices(len(a_t), n_boot, seed)
    ib = resample_indices(len(b_t), n_boot, seed + 1)
    restricted = not (a_e.all() and b_e.all())
    bound = {(True, True): "exact", (False, True): "lower", (True, False): "upper",
             (False, False): "unknown"}[(bool(a_e.all()), bool(b_e.all()))]
    out = {}
    mean = _ratio_draws(a_t.mean(), b_t.mean())
    draws = _ratio_draws(a_t[ia].mean(axis=1), b_t[ib].mean(axis=1))
    out["mean"] = Ratio("restricted mean" if restricted else "mean", _none_if_inf(float(mean)),
                        *percentile_interval(draws, confidence), bound=bound)
    ma, mb = km_quantile_batch(a_t, a_e, 0.5)[0], km_quantile_batch(b_t, b_e, 0.5)[0]
    MA, MB = km_quantile_batch(a_t[ia], a_e[ia], 0.5), km_quantile_batch(b_t[ib], b_e[ib], 0.5)
    med, med_bound, draws = _ratio_draws(ma, mb), "exact", _ratio_draws(MA, MB)
    # a median beyond its group's last follow-up time is at least that time, so the ratio is a
    # bound; the resamples' ratios are the same bound, or the interval would not be of the
    # estimate (tests/test_statistics.py: every interval contains its estimate)
    if np.isinf(ma) and np.isfinite(mb):
        med, med_bound = a_t.max() / mb, "lower"
        draws = np.where(np.isinf(MA) & np.isfinite(MB), a_t[ia].max(axis=1) / MB, draws)
    elif np.isfinite(ma) and np.isinf(mb):
        med, med_bound = ma / b_t.max(), "upper"
        draws = np.where(np.isfinite(MA) & np.isinf(MB), MA / b_t[ib].max(axis=1), draws)
    out["median"] = Ratio("KM median" if restricted else "median",
                          None if np.isnan(med) else _none_if_inf(float(med)),
                          *percentile_interval(draws, confidence), bound=med_bound)
    return out


@dataclass
class RankTest:
    """Mann-Whitney U test of ``a`` against ``b`` with the Vargha-Delaney effect size."""

    u: float                       #: U statistic of ``a``
    p_value: float
    alternative: str               #: "two-sided", "greater" (a tends larger) or "less"
    a12: float                     #: P(a > b) + P(a = b)/2 (0.5: no effect)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _u_null_counts(n1: int, n2: int) -> np.ndarray:
    """Number of orderings of ``n1 + n2`` untied values giving each U = 0..n1*n2: the
    coefficients of the Gaussian binomial ``[n1+n2 choose n1]_q`` =
    prod_{i=1..n1} (1 - q^(n2+i)) / (1 - q^i) (Mann & Whitney 1947; exact in float64 while
    C(n1+n2, n1) < 2^53, far beyond the sizes the exact test is used for)."""
    n1, n2 = min(n1, n2), max(n1, n2)
    c = np.zeros(n1 * n2 + 1)
    c[0] = 1.0
    for i in range(1, n1 + 1):
        c[n2 + i:] -= c[:len(c) - n2 - i].copy()      # times (1 - q^(n2+i))
        # divided by (1 - q^i): c[k] += c[k - i], a running sum within each residue mod i
        m = -(-len(c) // i) * i
        c = np.cumsum(np.pad(c, (0, m - len(c))).reshape(-1, i), axis=0).ravel()[:len(c)]
    return c


def mann_whitney(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> RankTest | None:
    """Rank test on two samples, with the p-values of ``scipy.stats.mannwhitneyu`` (method
    "auto", continuity correction): exact null distribution when a sample has at most 8
    values and nothing is tied, otherwise the normal approximation with the tie correction.
    Computed here because importing scipy.stats costs about a second of CPU, more than
    every statistic of a small results folder; tests/test_statistics.py checks the p-values
    against scipy's.

    On samples-to-optimum censored at a common budget this is Gehan's generalised Wilcoxon
    test: a censored run is tied with every other run at the budget and ranked above every
    observed time, which is what is known about it."""
    from math import erfc, sqrt
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return None
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    if np.all(a == a[0]) and np.all(b == a[0]):
        # identical constant samples: no evidence either way (the variance would be zero)
        return RankTest(u=len(a) * len(b) / 2.0, p_value=1.0, alternative=alternative, a12=0.5)
    n1, n2 = len(a), len(b)
    both = np.concatenate([a, b])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # average ranks: a value's rank is the middle of its tie group
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u2 = n1 * n2 - u1
    u, factor = {"greater": (u1, 1), "less": (u2, 1), "two-sided": (max(u1, u2), 2)}[alternative]
    if (n1 <= 8 or n2 <= 8) and not (counts > 1).any():
        c = _u_null_counts(n1, n2)
        p = float(c[int(round(u)):].sum() / c.sum())    # P(U >= u) under the null
    else:
        n = n1 + n2
        ties = float((counts.astype(np.float64) ** 3 - counts).sum())
        sd = sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
        z = (u - n1 * n2 / 2.0 - 0.5) / sd
        p = 0.5 * erfc(z / sqrt(2.0))
    return RankTest(u=u1, p_value=min(1.0, max(0.0, factor * p)), alternative=alternative,
                    a12=u1 / (n1 * n2))


def gehan(a_times: np.ndarray, a_observed: np.ndarray, b_times: np.ndarray, b_observed: np.ndarray,
          alternative: str = "two-sided") -> RankTest | None:
    """Gehan's generalised Wilcoxon test for right-censored samples with any censoring times
    (Gehan 1965, "A generalized Wilcoxon test for comparing arbitrarily singly-censored
    samples"), with Mantel's permutation variance (Mantel 1967).

    A pair of runs is ordered only when the data order it: ``i`` is larger than ``j`` when
    ``j`` was observed and ``i`` lasted longer (or was censored at ``j``'s time); a run
    censored before another's time is unordered with it. ``alternative="greater"``: ``a``
    tends to be larger. ``a12`` counts unordered pairs half. With every censoring at one
    common time beyond all observations this orders pairs as :func:`mann_whitney` does
    (censored runs tied at that time), which is what that function is used for."""
    from math import erfc, sqrt
    ta, tb = np.asarray(a_times, dtype=np.float64), np.asarray(b_times, dtype=np.float64)
    ea, eb = np.asarray(a_observed, dtype=bool), np.asarray(b_observed, dtype=bool)
    n1, n2 = len(ta), len(tb)
    if n1 == 0 or n2 == 0:
        return None
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    t, e = np.r_[ta, tb], np.r_[ea, eb]
    ti, tj, ej, ei = t[:, None], t[None, :], e[None, :], e[:, None]
    larger = ej & ((ti > tj) | ((ti == tj) & ~ei))      # i known to exceed j
    score = larger.astype(np.float64) - larger.T
    u = score.sum(axis=1)
    w = float(u[:n1].sum())
    n = n1 + n2
    var = n1 * n2 / (n * (n - 1)) * float((u ** 2).sum()) if n > 1 else 0.0
    cross = score[:n1, n1:]
    a12 = float(((cross > 0).sum() + 0.5 * (cross == 0).sum()) / (n1 * n2))
    if var <= 0:
        return RankTest(u=a12 * n1 * n2, p_value=1.0, alternative=alternative, a12=a12)
    z = w / sqrt(var)
    sf = lambda x: 0.5 * erfc(x / sqrt(2.0))  # noqa: E731
    p = {"greater": sf(z), "less": sf(-z), "two-sided": min(1.0, 2 * sf(abs(z)))}[alternative]
    return RankTest(u=a12 * n1 * n2, p_value=p, alternative=alternative, a12=a12)


def censored_rank_test(a_times, a_observed, b_times, b_observed, alternative: str = "two-sided") -> RankTest | None:
    """Samples-to-optimum of two groups: :func:`mann_whitney` (exact or tie-corrected, the
    p-values used so far) when every censored run sits at one common time at or beyond
    every observation (runs censored only at a common budget), otherwise :func:`gehan`
    (a run the runner stopped early is censored where it stopped)."""
    ta, tb = np.asarray(a_times, dtype=np.float64), np.asarray(b_times, dtype=np.float64)
    ea, eb = np.asarray(a_observed, dtype=bool), np.asarray(b_observed, dtype=bool)
    cens = np.r_[ta[~ea], tb[~eb]]
    top = np.r_[ta, tb].max() if len(ta) + len(tb) else 0.0
    if len(cens) == 0 or np.all(cens == top):
        return mann_whitney(ta, tb, alternative)
    return gehan(ta, ea, tb, eb, alternative)


def vargha_delaney_a12(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) + P(a = b)/2 over all pairs (Vargha & Delaney 2000: 0.56/0.64/0.71 are
    small/medium/large effects)."""
    a = np.asarray(a, dtype=np.float64)[:, None]
    b = np.asarray(b, dtype=np.float64)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control across many tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]


_CHUNK = 512


def nanquantile_columns(X: np.ndarray, qs) -> np.ndarray:
    """``np.nanquantile(X, qs, axis=0)`` (linear interpolation), ``(len(qs), columns)``.

    numpy's nanquantile falls back to one Python-level call per column as soon as a NaN is
    present (a curve undefined at some points), which made the curve statistics of a small
    folder take seconds; sorting once (NaN last) and interpolating by each column's count of
    defined values gives the same numbers in one vectorised pass. All-NaN columns give NaN."""
    X = np.sort(np.asarray(X, dtype=np.float64), axis=0)
    k = (~np.isnan(X)).sum(axis=0)
    qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    out = np.full((len(qs), X.shape[1]), np.nan)
    ok = k > 0
    if not ok.any():
        return out
    cols = np.flatnonzero(ok)
    pos = qs[:, None] * (k[ok] - 1)[None, :]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, (k[ok] - 1)[None, :])
    frac = pos - lo
    xl, xh = X[lo, cols[None, :]], X[hi, cols[None, :]]
    # numpy's _lerp: exact at both ends, so a constant column gives its value, never a rounding
    out[:, ok] = np.where(frac >= 0.5, xh - (xh - xl) * (1 - frac), xl + (xh - xl) * frac)
    return out


# --- many runs' curves at once -----------------------------------------------------------
def curve_bands(values: np.ndarray, confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
                seed: int = BOOT_SEED) -> dict[str, np.ndarray]:
    """Per-column statistics of a ``(runs, points)`` matrix of curves (NaN: run undefined
    there): median, quartiles (the LaNAS Fig. 5 interquartile band), mean and a bootstrap CI
    of the mean (runs resampled with replacement, all points of a run together)."""
    V = np.asarray(values, dtype=np.float64)
    R, G = V.shape
    defined = ~np.isnan(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            q1, med, q3 = nanquantile_columns(V, [0.25, 0.5, 0.75])
            mean = np.nanmean(V, axis=0)
        # resample counts per run; a resampled mean is then one matrix product
        counts = np.zeros((n_boot, R))
        idx = resample_indices(R, n_boot, seed)
        np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)
        filled, weight = np.where(defined, V, 0.0), defined.astype(np.float64)
        a = (1.0 - confidence) / 2.0
        lo, hi = np.full(G, np.nan), np.full(G, np.nan)
        for s in range(0, G, _CHUNK):  # bounded memory: n_boot x _CHUNK draws at a time
            boot = (counts @ filled[:, s:s + _CHUNK]) / (counts @ weight[:, s:s + _CHUNK])
            lo[s:s + _CHUNK], hi[s:s + _CHUNK] = nanquantile_columns(boot, [a, 1.0 - a])
    return {"median": med, "q1": q1, "q3": q3, "mean": mean, "mean_lo": lo, "mean_hi": hi,
            "n_runs": defined.sum(axis=0)}
