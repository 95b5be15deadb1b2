"""Sample-efficiency curves: best-so-far metric vs. samples or simulated training time.

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space"
(LaNAS), §4.2, Fig. 5 top row, plots, per algorithm, the current
best accuracy against the number of samples with the interquartile range over 100 seeds.
Here every run's records become one row of a ``(runs, points)`` matrix on a common grid,
and :func:`harness.statistics.curve_bands` turns it into the median and quartiles (the
Fig. 5 band), the mean with a bootstrap CI, and, against the oracle's optimum, the regret.

Grids: samples are counted as distinct architectures (the runner's budget unit). Up to
``DENSE_LIMIT`` samples every integer is a grid point; beyond, a union of a linear and a
geometric grid keeps both linear and log x-axes smooth. A run that stopped at the global
optimum keeps its final value afterwards (exact, see :mod:`harness.metrics`); a run that
ended at its budget is undefined past it, so the sample grid stops at the cell's budget.
On the time axis (``cum_cost``, simulated training seconds, only when the oracle has
costs) the grid starts when every run has its first result and stops when the first
budget-capped run ends: the statistics never mix in runs that were not running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import CellRuns, OracleInfo
from .statistics import curve_bands

#: every integer sample count is a grid point up to this many samples
DENSE_LIMIT = 2_000
#: points of each of the linear and geometric grids beyond DENSE_LIMIT, and on the time axis
SPARSE_POINTS = 600


def sample_grid(max_samples: int) -> np.ndarray:
    n = int(max_samples)
    if n <= DENSE_LIMIT:
        return np.arange(1, n + 1, dtype=np.int64)
    g = np.r_[np.linspace(1, n, SPARSE_POINTS), np.geomspace(1, n, SPARSE_POINTS)]
    return np.unique(np.round(g).astype(np.int64))


def _reached(cell: CellRuns) -> np.ndarray:
    """Runs whose last value holds afterwards (at the optimum, or stopped: see metrics)."""
    return cell.holds_final


def best_so_far(cell: CellRuns, metric: str, grid: np.ndarray) -> np.ndarray:
    """``(runs, len(grid))``: ``metric`` (a running column such as ``best_search`` or
    ``incumbent_report``) after each grid number of distinct samples."""
    if cell.records is None:
        raise ValueError("curves need the runs' records (a results folder, not a baseline file)")
    out = np.full((cell.n_runs, len(grid)), np.nan)
    reached = _reached(cell)
    for i, rec in enumerate(cell.records):
        nd, v = rec["n_distinct"], rec[metric]
        if len(nd) == 0:
            continue
        j = np.searchsorted(nd, grid, side="right") - 1
        ok = (j >= 0) & ((grid <= nd[-1]) | reached[i])
        out[i, ok] = v[j[ok]]
    return out


def time_grid(cell_list: list[CellRuns]) -> np.ndarray | None:
    """Common geometric time grid (seconds) for cells with costs; None without costs."""
    starts, ends = [], []
    for c in cell_list:
        if not c.has_cost or c.records is None:
            continue
        reached = _reached(c)
        for i, rec in enumerate(c.records):
            cc = rec["cum_cost"]
            if len(cc) and cc[-1] > 0:
                starts.append(cc[cc > 0][0])
                ends.append(cc[-1] if not reached[i] else np.inf)
    if not starts:
        return None
    # from the time every run has its first result (before it, a run's best-so-far does not
    # exist, and a median over the runs that happen to be quick would be biased) to the time
    # the first budget-capped run ends
    t0, t1 = max(starts), min(ends)
    if not np.isfinite(t1):  # every run reached the optimum: go to the slowest one
        t1 = max(c.total_cost.max() for c in cell_list if c.has_cost)
    if t1 <= t0:
        return np.array([t0])
    return np.geomspace(t0, t1, SPARSE_POINTS)


def best_by_time(cell: CellRuns, metric: str, grid: np.ndarray) -> np.ndarray:
    """``(runs, len(grid))``: ``metric`` after each grid amount of simulated training time."""
    out = np.full((cell.n_runs, len(grid)), np.nan)
    reached = _reached(cell)
    for i, rec in enumerate(cell.records or []):
        cc, v = rec["cum_cost"], rec[metric]
        if len(cc) == 0 or np.isnan(cc).any():
            continue
        j = np.searchsorted(cc, grid, side="right") - 1
        ok = (j >= 0) & ((grid <= cc[-1]) | reached[i])
        out[i, ok] = v[j[ok]]
    return out


@dataclass
class Curve:
    """Statistics of one cell's curves; values are fractions (accuracies) or regrets."""

    oracle: str
    label: str
    metric: str                 #: record column, e.g. "best_search"
    x: np.ndarray               #: samples (distinct architectures) or seconds
    x_unit: str                 #: "samples" or "seconds"
    bands: dict[str, np.ndarray]
    regret: bool = False        #: values are optimum minus metric

    def at(self, xs: list[float]) -> dict[str, Any]:
        """The statistics at the grid points nearest to ``xs`` (for JSON reports)."""
        idx = np.unique(np.clip(np.searchsorted(self.x, xs), 0, len(self.x) - 1))
        return {"x": self.x[idx].tolist(),
                **{k: [None if not np.isfinite(v) else float(v) for v in self.bands[k][idx]]
                   for k in ("median", "q1", "q3", "mean", "mean_lo", "mean_hi")},
                "n_runs": self.bands["n_runs"][idx].tolist()}


def regret_reference(info: OracleInfo | None, metric: str) -> float | None:
    """The optimum a metric's regret is measured from: the best search value over the space
    for ``best_search``; the best report value over the space for the report metrics."""
    if info is None:
        return None
    return info.optimum_search if metric == "best_search" else info.best_report


def cell_curve(cell: CellRuns, metric: str = "best_search", x: str = "samples",
               grid: np.ndarray | None = None, regret_to: float | None = None,
               n_boot: int = 1000) -> Curve:
    """Curve statistics of one cell; ``regret_to`` turns values into ``regret_to - value``."""
    if x == "samples":
        grid = sample_grid(cell.budget) if grid is None else grid
        M = best_so_far(cell, metric, grid)
    elif x == "time":
        if grid is None:
            raise ValueError("a time curve needs a grid (time_grid)")
        M = best_by_time(cell, metric, grid)
    else:
        raise ValueError(f"x must be samples or time, got {x!r}")
    if regret_to is not None:
        M = regret_to - M
    return Curve(cell.oracle, cell.label, metric, np.asarray(grid), "samples" if x == "samples" else "seconds",
                 curve_bands(M, n_boot=n_boot), regret=regret_to is not None)
