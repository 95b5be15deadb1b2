"""Statistical estimates over runs (no I/O, no plotting).

Samples-to-optimum are right-censored: a run that hits its budget cap without drawing the
optimum only tells us the true value exceeds the cap. Such runs are never dropped. The
median and quartiles come from the Kaplan-Meier estimator (equal to the empirical quantiles
when nothing is censored); the mean is the mean *restricted to the budget* (censored runs
count as the cap), which is a lower bound of the true mean and is labelled so whenever a run
was censored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def samples_to_optimum(values: np.ndarray, censored: np.ndarray, budget: np.ndarray | float) -> SamplesToOptimum:
    """Summary of samples-to-optimum; ``values`` may be NaN where ``censored``."""
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
        max=float(times[observed].max()) if observed.any() else None)


def mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
