"""Sample-efficiency curves: best-so-far metric (or its regret) against samples, training
epochs paid, the simulated clock or the training time summed over the trials.

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space"
(LaNAS), §4.2, Fig. 5 top row, plots, per algorithm, the current
best accuracy against the number of samples with the interquartile range over 100 seeds.
Here every run's records become one row of a ``(runs, points)`` matrix on a common grid,
and :func:`harness.statistics.curve_bands` turns it into the median and quartiles (the
Fig. 5 band), the mean with a bootstrap CI, and, against the oracle's optimum, the regret
(optimum - value for a maximised metric, value - optimum for a minimised one:
:meth:`harness.metrics.OracleInfo.regret`).

Grids: samples are counted as distinct architectures (the runner's budget unit). Up to
``DENSE_LIMIT`` samples every integer is a grid point; beyond, a union of a linear and a
geometric grid keeps both linear and log x-axes smooth. A run that stopped at the global
optimum keeps its final value afterwards (exact, see :mod:`harness.metrics`); a run that
ended at its budget is undefined past it, so the sample grid stops at the cell's budget
(:attr:`~harness.metrics.CellRuns.sample_budget` when the budget counts epochs or time).

The other axes (:data:`harness.metrics.AXES`): ``time`` (``cum_cost``, simulated training
seconds summed over the trials paid, only when the oracle has costs), ``epochs``
(``cum_epochs``, training epochs paid, summed over the told trials) and ``clock`` (``finish``,
the simulated clock of the runner's ``workers_per_run`` workers when each result was told,
in seconds or epochs: :attr:`~harness.metrics.OracleInfo.clock_unit`). Their grids start
when every run has its first result (for ``epochs`` and ``clock``: its first result at the
top fidelity, before which a multi-fidelity run has no best-so-far) and stop when the first
budget-capped run ends: the statistics never mix in runs that were not running. On every
axis, a point where a run was going but had no best-so-far yet (a multi-fidelity run
before its first top-fidelity result) is left out for all runs, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import AXES, CellRuns, OracleInfo
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


def best_along(cell: CellRuns, metric: str, grid: np.ndarray, axis: str) -> np.ndarray:
    """``(runs, len(grid))``: ``metric`` at each grid point of ``axis`` (``time``, ``epochs``
    or ``clock``): its value after the last record at or before that point; NaN before a
    run's first record, after the end of a run that does not hold its final value, and for a
    run that did not record the axis (files written before trials)."""
    col = AXES[axis]
    out = np.full((cell.n_runs, len(grid)), np.nan)
    reached = _reached(cell)
    for i, rec in enumerate(cell.records or []):
        x, v = rec[col], rec[metric]
        if len(x) == 0 or np.isnan(x).any():
            continue
        j = np.searchsorted(x, grid, side="right") - 1
        ok = (j >= 0) & ((grid <= x[-1]) | reached[i])
        out[i, ok] = v[j[ok]]
    return out


def best_by_time(cell: CellRuns, metric: str, grid: np.ndarray) -> np.ndarray:
    """``(runs, len(grid))``: ``metric`` after each grid amount of simulated training time."""
    return best_along(cell, metric, grid, "time")


def axis_grid(cell_list: list[CellRuns], axis: str) -> np.ndarray | None:
    """Common grid of ``axis`` (``epochs`` or ``clock``; ``time`` is :func:`time_grid`) for
    the runs of ``cell_list``: from the point where every run has a best-so-far (its first
    result at the top fidelity) to where the first run that could have gone on ended; a
    union of ``SPARSE_POINTS`` linear and geometric points (log and linear x axes alike).
    Runs that never had a top-fidelity result do not hold the start back (they are NaN
    throughout). None when no run recorded the axis."""
    if axis == "time":
        return time_grid(cell_list)
    col = AXES[axis]
    starts, ends, last = [], [], []
    for c in cell_list:
        if c.records is None:
            continue
        reached = _reached(c)
        for i, rec in enumerate(c.records):
            x = rec[col]
            if not len(x) or np.isnan(x).any():
                continue
            have = np.flatnonzero(~np.isnan(rec["best_search"]) & (x > 0))
            if not len(have):
                continue
            starts.append(x[have[0]])
            last.append(x[-1])
            ends.append(x[-1] if not reached[i] else np.inf)
    if not starts:
        return None
    t0, t1 = max(starts), min(ends)
    if not np.isfinite(t1):  # every run holds its final value: go to the longest one
        t1 = max(last)
    if t1 <= t0:
        return np.array([t0])
    return np.unique(np.r_[np.linspace(t0, t1, SPARSE_POINTS), np.geomspace(t0, t1, SPARSE_POINTS)])


def _without_partial_columns(cell: CellRuns, M: np.ndarray, grid: np.ndarray, axis: str) -> np.ndarray:
    """``M`` with the grid points where a run was still going but had no value yet set to
    NaN for every run: before a multi-fidelity run's first top-fidelity result its
    best-so-far does not exist, and a median over the runs that happen to have one would
    be biased (it jumps as runs join). Runs that never had a value do not blank the curve
    (they are NaN throughout and left out, as ``n_runs`` shows); a run past its end is not
    going (see :func:`best_so_far`)."""
    if cell.records is None or not len(M):
        return M
    col = AXES[axis]
    going = np.zeros(M.shape, dtype=bool)
    for i, rec in enumerate(cell.records):
        x = rec[col]
        if not len(x) or np.isnan(x).any() or np.isnan(rec["best_search"]).all():
            continue
        going[i] = np.asarray(grid) <= x[-1]
    partial = (np.isnan(M) & going).any(axis=0)
    if partial.any():
        M = M.copy()
        M[:, partial] = np.nan
    return M


@dataclass
class Curve:
    """Statistics of one cell's curves; values are the metric's own (accuracies as
    fractions) or regrets (>= 0 whatever the direction)."""

    oracle: str
    label: str
    metric: str                 #: record column, e.g. "best_search"
    x: np.ndarray               #: samples (distinct architectures), seconds, epochs or clock units
    x_unit: str                 #: "samples", "seconds", "epochs" or the clock's unit
    bands: dict[str, np.ndarray]
    regret: bool = False        #: values are regrets to the optimum
    direction: str = "max"      #: the metric's direction ("min": lower is better)
    axis: str = "samples"       #: the x axis (harness.metrics.AXES)

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
    return info.reference(metric)


def cell_curve(cell: CellRuns, metric: str = "best_search", x: str = "samples",
               grid: np.ndarray | None = None, regret_to: float | None = None,
               n_boot: int = 1000, direction: str = "max", x_unit: str | None = None) -> Curve:
    """Curve statistics of one cell on axis ``x`` (``samples``, ``time``, ``epochs`` or
    ``clock``; the last three need a ``grid``: :func:`time_grid`, :func:`axis_grid`).
    ``regret_to`` (the optimum) turns values into regrets: ``regret_to - value`` for a
    maximised metric, ``value - regret_to`` for ``direction="min"``. ``x_unit`` names the
    clock's unit (default: seconds for time, the axis name otherwise)."""
    if x == "samples":
        grid = sample_grid(cell.sample_budget) if grid is None else grid
        M = best_so_far(cell, metric, grid)
    elif x in AXES:
        if grid is None:
            raise ValueError(f"a {x} curve needs a grid (axis_grid)")
        M = best_along(cell, metric, grid, x)
    else:
        raise ValueError(f"x must be one of {', '.join(AXES)}, got {x!r}")
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be max or min, got {direction!r}")
    M = _without_partial_columns(cell, M, grid, x)
    if regret_to is not None:
        M = M - regret_to if direction == "min" else regret_to - M
    unit = x_unit or {"samples": "samples", "time": "seconds", "epochs": "epochs", "clock": "clock units"}[x]
    return Curve(cell.oracle, cell.label, metric, np.asarray(grid), unit,
                 curve_bands(M, n_boot=n_boot), regret=regret_to is not None, direction=direction, axis=x)
