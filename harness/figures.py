"""Figures of a results folder, as a NAS paper shows them (PNG for reading, PDF for papers).

* ``fig5``: the LaNAS Fig. 5 layout (../shared/papers/004_*, §4.2): top row, one panel per
  oracle, the best search metric so far against samples (median and interquartile band over
  seeds); bottom row, the distribution of samples to the global optimum per algorithm (every
  run a dot, censored runs an open triangle at the budget, Kaplan-Meier median and
  quartiles as a bar, the mean as a diamond, restricted to the budget when a run is
  censored).
* ``regret``: optimum minus best-so-far, search metric (top) and the report metric of the
  best-by-search architecture against the best report value of the space (bottom), median
  and IQR on a symmetric-log axis (a regret of exactly 0 stays visible).
* ``found_optimum``: the fraction of runs that have drawn the global optimum after n
  samples (1 - Kaplan-Meier survival; censoring happens only at the budget).
* ``curves_mean``: mean best-so-far with a 95% bootstrap CI, search metric and report
  metric of the incumbent (the CADAM Table 4.1 quantities as curves).
* ``curves_time``: median/IQR best-so-far against simulated training time, for oracles whose
  tables carry training costs.

Colours are fixed per algorithm name (random grey, evolution blue, MCTS green, LaNAS red,
...) and shared by all panels and figures; legends sit below the panels, never on data.
Matplotlib is used through :class:`matplotlib.figure.Figure` (Agg canvas), so no global
backend is switched and nothing needs a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .curves import Curve, cell_curve, regret_reference, sample_grid, time_grid
from .metrics import CellRuns, ResultSet
from .statistics import km_quantile_batch

#: fixed colours for the registry's algorithms, so a figure reads the same in every paper
ALGORITHM_COLOURS = {
    "random": "#7f7f7f", "evolution": "#1f77b4", "mcts": "#2ca02c", "lanas": "#d62728",
    "reinforce": "#9467bd", "cadam": "#ff7f0e",
}
#: colours handed out, in order, to any other label (variants such as lanas:split=random)
EXTRA_COLOURS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939",
                 "#8c6d31", "#7b4173", "#3182bd", "#31a354", "#756bb1")

#: the sample axis: the runner's budget unit (a repeated architecture is not charged)
X_SAMPLES = "architectures sampled"

#: paper sizes: a two-column paper's full text width is about 7 inches
PANEL_W, PANEL_H, MAX_W = 3.3, 2.3, 7.2
RC = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "legend.fontsize": 7.5,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.3, "axes.grid": True,
      "grid.alpha": 0.3, "grid.linewidth": 0.5, "savefig.dpi": 200, "pdf.fonttype": 42}


def colours(labels: Iterable[str]) -> dict[str, str]:
    out, extra = {}, iter(EXTRA_COLOURS * 4)
    for lab in sorted(set(labels)):
        out[lab] = ALGORITHM_COLOURS.get(lab) or next(extra)
    return out


def _style(label: str) -> str:
    # a variant of a registered algorithm (label with parameters) is dashed
    return "--" if ":" in label else "-"


def _metric_name(rs: ResultSet, oracle: str, which: str) -> str:
    info = rs.oracles.get(oracle)
    name = getattr(info, f"{which}_metric", None) if info else None
    return name or ("search metric" if which == "search" else "report metric")


def _figure(nrows: int, ncols: int, height: float | None = None):
    from matplotlib.figure import Figure
    w = min(MAX_W, max(4.4, PANEL_W * ncols + 0.4))  # one panel: room for row names and legend
    h = (height or PANEL_H) * nrows + 0.7
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _legend(fig, handles, labels, ncol: int | None = None) -> None:
    if handles:
        # as many columns as fit the figure's width (an entry: ~0.065 in per character of
        # 7.5 pt text plus the handle; at least 1.75 in)
        longest = max(len(str(lab)) for lab in labels)
        fit = max(1, int(fig.get_figwidth() / max(1.75, 0.065 * longest + 0.7)))
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), ncol or 4, fit),
                   frameon=False, handlelength=2.2)


def _save(fig, out: Path, name: str, formats: Iterable[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        p = out / f"{name}.{fmt}"
        # no dates or versions in the files: the same results give the same bytes
        meta = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt, {"Software": None})
        fig.savefig(p, format=fmt, metadata=meta)
        paths.append(p)
    return paths


class _Curves:
    """Curve statistics, computed once per (cell, metric, axis, regret) and shared."""

    def __init__(self, rs: ResultSet, n_boot: int):
        self.rs, self.n_boot, self._cache = rs, n_boot, {}
        self._tgrid = {}

    def get(self, cell: CellRuns, metric: str, x: str = "samples", regret: bool = False) -> Curve | None:
        key = (cell.key, metric, x, regret)
        if key not in self._cache:
            ref = regret_reference(self.rs.oracles.get(cell.oracle), metric) if regret else None
            if regret and ref is None:
                self._cache[key] = None
            elif x == "time":
                grid = self.time_grid(cell.oracle)
                self._cache[key] = None if grid is None else cell_curve(
                    cell, metric, "time", grid, ref, self.n_boot)
            else:
                self._cache[key] = cell_curve(cell, metric, "samples", sample_grid(cell.budget), ref, self.n_boot)
        return self._cache[key]

    def time_grid(self, oracle: str):
        if oracle not in self._tgrid:
            self._tgrid[oracle] = time_grid([c for c in self.rs.cells if c.oracle == oracle])
        return self._tgrid[oracle]


def _cells_by_oracle(rs: ResultSet) -> dict[str, list[CellRuns]]:
    out: dict[str, list[CellRuns]] = {}
    for c in rs.cells:
        if c.n_runs and c.records is not None:
            out.setdefault(c.oracle, []).append(c)
    return out


def _band(ax, x, lo, hi, mid, colour, style, label):
    ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0, step=None)
    return ax.plot(x, mid, color=colour, linestyle=style, label=label)[0]


def _set_x(ax, log_x: bool, xmax: float) -> None:
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(1, xmax)
    else:
        ax.set_xlim(0, xmax)


def _ylim_from(curves: list[Curve], top: float | None, scale: float, x_from: float) -> tuple[float, float] | None:
    """Zoom on the part of the curves after ``x_from`` samples (the first few random draws
    would otherwise squash everything that distinguishes the algorithms)."""
    lows, highs = [], []
    for cv in curves:
        keep = cv.x >= min(x_from, cv.x[-1])
        if keep.any():
            lows.append(np.nanmin(cv.bands["q1"][keep]))
            highs.append(np.nanmax(cv.bands["q3"][keep]))
    if not lows:
        return None
    lo, hi = min(lows) * scale, max(highs + ([top] if top is not None else [])) * scale
    span = hi - lo if hi > lo else 1.0
    # more room on top: the optimum's line carries a label
    return lo - 0.05 * span, hi + 0.12 * span


def _sto_panel(ax, cells: list[CellRuns], col: dict[str, str], log_x: bool, lo: float,
               names: bool = True) -> None:
    """Samples to the optimum: one row per algorithm (``lo``: smallest value in the figure,
    so that every panel of a row has the same axis; ``names``: label the rows, done in the
    first panel of a row only, whose rows are the same)."""
    rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
    order = sorted(cells, key=lambda c: c.label, reverse=True)
    budget = max(c.budget for c in cells)
    for y, c in enumerate(order):
        times = np.where(c.censored, c.budget, c.samples_to_optimum)
        obs = ~c.censored
        jit = rng.uniform(-0.22, 0.22, size=len(times))
        colour = col[c.label]
        ax.scatter(times[obs], y + jit[obs], s=9, color=colour, alpha=0.55, linewidths=0, zorder=2)
        if (~obs).any():
            ax.scatter(times[~obs], y + jit[~obs], s=18, marker=">", facecolors="none",
                       edgecolors=colour, linewidths=0.8, zorder=2)
        q1, med, q3 = (km_quantile_batch(times, obs, q)[0] for q in (0.25, 0.5, 0.75))
        q3_drawn = q3 if np.isfinite(q3) else c.budget
        if np.isfinite(q1):
            ax.plot([q1, q3_drawn], [y, y], color="black", linewidth=3.2, alpha=0.35,
                    solid_capstyle="butt", zorder=3)
        if np.isfinite(med):
            ax.plot([med, med], [y - 0.32, y + 0.32], color="black", linewidth=1.6, zorder=4)
        ax.scatter([times.mean()], [y], marker="D", s=22, color="white", edgecolors="black",
                   linewidths=0.9, zorder=5)
        ax.annotate(_sto_note(c), (0.015, y + 0.34), xycoords=("axes fraction", "data"), ha="left",
                    va="bottom", fontsize=6, color=colour)
    ax.set_yticks(range(len(order)), [c.label for c in order] if names else [])
    for tick, c in zip(ax.get_yticklabels(), order):
        tick.set_color(col[c.label])
    ax.set_ylim(-0.6, len(order) - 0.3)
    ax.grid(axis="y", visible=False)
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(max(0.8, lo / 1.6), budget * 1.6)
    else:
        ax.set_xlim(0, budget * 1.04)
    ax.set_xlabel("samples to the global optimum")


def _sto_note(c: CellRuns) -> str:
    times = np.where(c.censored, c.budget, c.samples_to_optimum)
    n_c = int(c.censored.sum())
    return f"mean {times.mean():,.0f}" + (f"*, {n_c}/{c.n_runs} censored" if n_c else "")


def _sto_legend_handles():
    from matplotlib.lines import Line2D
    return [
        Line2D([], [], marker="o", linestyle="", color="0.4", markersize=3.5, alpha=0.7),
        Line2D([], [], marker=">", linestyle="", markerfacecolor="none", markeredgecolor="0.3", markersize=4.5),
        Line2D([], [], color="black", linewidth=3.2, alpha=0.35),
        Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="black", markersize=4),
    ], ["one run", "censored at the budget", "KM median (tick) and IQR (bar)",
        "mean (* restricted to the budget)"]


def fig5(rs: ResultSet, out: Path, curves: _Curves, col: dict[str, str], log_x: bool,
         formats: Iterable[str]) -> list[Path]:
    by_oracle = _cells_by_oracle(rs)
    oracles = sorted(by_oracle)
    with_sto = any(c.until_optimum for cs in by_oracle.values() for c in cs)
    fig, axes = _figure(2 if with_sto else 1, len(oracles))
    handles = {}
    lo = min((np.nanmin(np.where(c.censored, c.budget, c.samples_to_optimum))
              for cs in by_oracle.values() for c in cs if c.until_optimum), default=1.0)
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        cells = by_oracle[oracle]
        cvs = []
        for c in cells:
            cv = curves.get(c, "best_search")
            cvs.append(cv)
            b = cv.bands
            handles[c.label] = _band(ax, cv.x, 100 * b["q1"], 100 * b["q3"], 100 * b["median"],
                                     col[c.label], _style(c.label), c.label)
        info = rs.oracles.get(oracle)
        opt = info.optimum_search if info else None
        if opt is not None:
            ax.axhline(100 * opt, color="black", linestyle=":", linewidth=0.9)
            ax.annotate(f"global optimum {100 * opt:.2f}%", (0.02, 100 * opt), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=6.5)
        lim = _ylim_from(cvs, opt, 100, 10)
        if lim:
            ax.set_ylim(*lim)
        _set_x(ax, log_x, max(c.budget for c in cells))
        ax.set_title(oracle)
        ax.set_xlabel(X_SAMPLES)
        ax.set_ylabel(f"best {_metric_name(rs, oracle, 'search')} so far [%]")
        if with_sto:
            sto_cells = [c for c in cells if c.until_optimum]
            if sto_cells:
                _sto_panel(axes[1, j], sto_cells, col, log_x, lo, names=j == 0)
            else:
                axes[1, j].set_axis_off()
    labels = sorted(handles)
    h = [handles[k] for k in labels]
    if with_sto:
        sh, sl = _sto_legend_handles()
        if not any(c.censored.any() for cs in by_oracle.values() for c in cs):
            del sh[1], sl[1]  # no censored run to explain
        h, labels = h + sh, labels + sl
    _legend(fig, h, labels, ncol=4)
    n = sorted({c.n_runs for cs in by_oracle.values() for c in cs})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    fig.suptitle(f"best-so-far: median and interquartile range over {seeds} seeds\n"
                 "(samples: distinct architectures evaluated)", fontsize=8)
    return _save(fig, out, "fig5", formats)


def regret(rs: ResultSet, out: Path, curves: _Curves, col: dict[str, str], log_x: bool,
           formats: Iterable[str]) -> list[Path]:
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if rs.oracles.get(o) and rs.oracles[o].optimum_search is not None]
    if not oracles:
        return []
    fig, axes = _figure(2, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        for i, (metric, which) in enumerate((("best_search", "search"), ("incumbent_report", "report"))):
            ax = axes[i, j]
            for c in by_oracle[oracle]:
                cv = curves.get(c, metric, regret=True)
                if cv is None:
                    continue
                b = cv.bands
                handles[c.label] = _band(ax, cv.x, 100 * b["q1"], 100 * b["q3"], 100 * b["median"],
                                         col[c.label], _style(c.label), c.label)
            ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
            ax.set_ylim(bottom=0)
            _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
            ax.set_ylabel(f"regret [pp of {_metric_name(rs, oracle, which)}]")
            ax.set_xlabel(X_SAMPLES)
            ax.set_title(oracle)
    labels = sorted(handles)
    _legend(fig, [handles[k] for k in labels], labels)
    fig.suptitle("regret to the best value in the space, median and IQR over seeds (axis linear below "
                 "0.01 pp)\ntop: search metric; bottom: report metric of the best-by-search architecture",
                 fontsize=8)
    return _save(fig, out, "regret", formats)


def found_optimum(rs: ResultSet, out: Path, col: dict[str, str], log_x: bool,
                  formats: Iterable[str]) -> list[Path]:
    by_oracle = {o: [c for c in cs if c.until_optimum] for o, cs in _cells_by_oracle(rs).items()}
    oracles = [o for o in sorted(by_oracle) if by_oracle[o]]
    if not oracles:
        return []
    fig, axes = _figure(1, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        for c in by_oracle[oracle]:
            t = np.sort(c.samples_to_optimum[~c.censored])
            x = np.r_[1, t, c.budget]
            y = 100 * np.r_[0, np.arange(1, len(t) + 1), len(t)] / c.n_runs
            handles[c.label] = ax.step(x, y, where="post", color=col[c.label], linestyle=_style(c.label),
                                       label=c.label)[0]
        _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
        ax.set_ylim(-2, 102)
        ax.set_title(oracle)
        ax.set_xlabel(X_SAMPLES)
        ax.set_ylabel("runs that found the global optimum [%]")
    labels = sorted(handles)
    _legend(fig, [handles[k] for k in labels], labels)
    return _save(fig, out, "found_optimum", formats)


def curves_mean(rs: ResultSet, out: Path, curves: _Curves, col: dict[str, str], log_x: bool,
                formats: Iterable[str]) -> list[Path]:
    by_oracle = _cells_by_oracle(rs)
    oracles = sorted(by_oracle)
    fig, axes = _figure(2, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        info = rs.oracles.get(oracle)
        for i, (metric, which) in enumerate((("best_search", "search"), ("incumbent_report", "report"))):
            ax = axes[i, j]
            cvs = []
            for c in by_oracle[oracle]:
                cv = curves.get(c, metric)
                cvs.append(cv)
                b = cv.bands
                handles[c.label] = _band(ax, cv.x, 100 * b["mean_lo"], 100 * b["mean_hi"], 100 * b["mean"],
                                         col[c.label], _style(c.label), c.label)
            ref = None if info is None else (info.optimum_search if i == 0 else info.best_report)
            if ref is not None:
                ax.axhline(100 * ref, color="black", linestyle=":", linewidth=0.9)
            lim = _ylim_from([_as_mean(cv) for cv in cvs], ref, 100, 10)
            if lim:
                ax.set_ylim(*lim)
            _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
            name = _metric_name(rs, oracle, which)
            ax.set_ylabel(f"best {name} so far [%]" if i == 0 else f"{name} of incumbent [%]")
            ax.set_xlabel(X_SAMPLES)
            ax.set_title(oracle)
    labels = sorted(handles)
    _legend(fig, [handles[k] for k in labels], labels)
    fig.suptitle("mean over seeds with a 95% bootstrap confidence interval; dotted: best in the space\n"
                 "top: search metric; bottom: report metric of the best-by-search architecture", fontsize=8)
    return _save(fig, out, "curves_mean", formats)


def _as_mean(cv: Curve) -> Curve:
    b = dict(cv.bands, q1=cv.bands["mean_lo"], q3=cv.bands["mean_hi"])
    return Curve(cv.oracle, cv.label, cv.metric, cv.x, cv.x_unit, b, cv.regret)


def curves_time(rs: ResultSet, out: Path, curves: _Curves, col: dict[str, str], log_x: bool,
                formats: Iterable[str]) -> list[Path]:
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if curves.time_grid(o) is not None]
    if not oracles:
        return []
    fig, axes = _figure(1, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        cvs = []
        for c in by_oracle[oracle]:
            cv = curves.get(c, "best_search", x="time")
            if cv is None:
                continue
            cvs.append(cv)
            b, hours = cv.bands, cv.x / 3600.0
            handles[c.label] = _band(ax, hours, 100 * b["q1"], 100 * b["q3"], 100 * b["median"],
                                     col[c.label], _style(c.label), c.label)
        info = rs.oracles.get(oracle)
        if info and info.optimum_search is not None:
            ax.axhline(100 * info.optimum_search, color="black", linestyle=":", linewidth=0.9)
        if cvs:
            x0 = cvs[0].x[0]
            lim = _ylim_from(cvs, info.optimum_search if info else None, 100, x0 * 10)
            if lim:
                ax.set_ylim(*lim)
            if log_x:
                ax.set_xscale("log")
        ax.set_title(oracle)
        ax.set_xlabel("simulated training time [GPU hours, from the table]")
        ax.set_ylabel(f"best {_metric_name(rs, oracle, 'search')} so far [%]")
    labels = sorted(handles)
    _legend(fig, [handles[k] for k in labels], labels)
    fig.suptitle("best-so-far vs. simulated training time\nmedian and IQR over seeds", fontsize=8)
    return _save(fig, out, "curves_time", formats)


FIGURES = ("fig5", "regret", "found_optimum", "curves_mean", "curves_time")


def plot_all(rs: ResultSet, out: str | Path, log_x: bool = True, formats: Iterable[str] = ("png", "pdf"),
             which: Iterable[str] = FIGURES, n_boot: int = 1000) -> list[Path]:
    """Write every applicable figure of ``rs`` into ``out``; return the files written."""
    import matplotlib
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not _cells_by_oracle(rs):
        return []
    formats = tuple(formats)
    col = colours(rs.labels)
    curves = _Curves(rs, n_boot)
    paths: list[Path] = []
    with matplotlib.rc_context(RC):
        for name in which:
            if name == "found_optimum":
                paths += found_optimum(rs, out, col, log_x, formats)
            else:
                paths += globals()[name](rs, out, curves, col, log_x, formats)
    return paths
