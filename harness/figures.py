"""Figures of a results folder, as a NAS paper shows them (PNG for reading, PDF for papers).

* ``fig5``: the LaNAS Fig. 5 layout (Wang et al., "Sample-Efficient Neural Architecture
  Search by Learning Action Space", §4.2): top row, one panel per oracle, the best search
  metric so far against samples (median and interquartile band over seeds); bottom row, the
  distribution of samples to the global optimum per algorithm (every run a dot, censored
  runs an open triangle at the budget or where a stopped run stopped, Kaplan-Meier median
  and quartiles as a bar, the mean as a diamond, restricted to the budget when a run is
  censored).
* ``regret``: optimum minus best-so-far, search metric (top) and the report metric of the
  best-by-search architecture against the best report value of the space (bottom), median
  and IQR on a symmetric-log axis (a regret of exactly 0 stays visible).
* ``found_optimum``: the fraction of runs that have drawn the global optimum after n
  samples, with a 95% percentile-bootstrap band (the band of a mean of 0/1 curves, runs
  resampled). Up to the budget this is the Kaplan-Meier estimate 1 - S(n) when runs are
  censored only at the budget; a run the runner stopped (it could not go on) counts as
  one that never draws it: the figure shows what the runs did, not an estimate for runs
  that could have continued.
* ``curves_mean``: mean best-so-far with a 95% bootstrap CI, search metric and report
  metric of the incumbent (the CADAM Table 4.1 quantities as curves).
* ``curves_time``: median/IQR best-so-far against the training time the table records for
  each sampled architecture, summed (the time axis says what the table measured and where,
  in s, min or h by range), for oracles whose tables carry training costs.

Axes name metrics in words (:func:`metric_words`: ``cifar10_valid`` is "CIFAR-10
validation accuracy"); an unknown column keeps its name. Colours are fixed per algorithm
(random grey, evolution blue, MCTS green, LaNAS red, ...) and shared by all panels and
figures; variants of one algorithm (``lanas``, ``lanas:split=adam``) keep its colour and
differ by line style and marker. Legends sit below the panels, never on data; long labels
are wrapped, and :func:`_fit` grows a figure until every label lies inside it.

:func:`build` returns a :class:`matplotlib.figure.Figure` (Agg canvas: no global backend is
switched, nothing needs a display) that tests inspect; :func:`plot_all` builds and saves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .curves import Curve, cell_curve, regret_reference, sample_grid, time_grid
from .metrics import CellRuns, OracleInfo, ResultSet
from .statistics import curve_bands, km_quantile_batch

#: fixed colours for the registry's algorithms, so a figure reads the same in every paper
ALGORITHM_COLOURS = {
    "random": "#7f7f7f", "evolution": "#1f77b4", "mcts": "#2ca02c", "lanas": "#d62728",
    "reinforce": "#9467bd", "cadam": "#ff7f0e", "nao": "#8c564b", "nases": "#e377c2",
}
#: colours handed out, in order, to any other algorithm name
EXTRA_COLOURS = ("#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173",
                 "#3182bd", "#31a354", "#756bb1")
#: line style and marker of the variants of one algorithm, in label order (the plain name,
#: without parameters, is drawn solid without markers)
VARIANT_STYLES = (("--", "o"), (":", "s"), ("-.", "^"), ((0, (5, 1, 1, 1)), "v"), ((0, (1, 1)), "D"),
                  ((0, (8, 2)), "P"))

#: the sample axis: the runner's budget unit (a repeated architecture is not charged)
X_SAMPLES = "architectures sampled"

#: paper sizes: a two-column paper's full text width is about 7 inches
PANEL_W, PANEL_H, MAX_W = 3.3, 2.3, 7.2
RC = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "legend.fontsize": 7.5,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.3, "axes.grid": True,
      "grid.alpha": 0.3, "grid.linewidth": 0.5, "savefig.dpi": 200, "pdf.fonttype": 42}

#: a label is wrapped (after commas) to lines of about this many characters
WRAP = 24


# --- words for axes ---------------------------------------------------------------------------
#: dataset names in the columns of known tables, in the words their papers use
DATASET_WORDS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet16-120",
                 "imagenet": "ImageNet", "digits": "digits", "mnist": "MNIST", "svhn": "SVHN"}
#: what a metric column measures (suffix after the dataset, or the whole name)
METRIC_WORDS = {"valid": "validation accuracy", "val": "validation accuracy", "test": "test accuracy",
                "train": "training accuracy", "valid_acc": "validation accuracy",
                "val_acc": "validation accuracy", "test_acc": "test accuracy", "train_acc": "training accuracy",
                "validation_accuracy": "validation accuracy", "test_accuracy": "test accuracy",
                "train_accuracy": "training accuracy"}


def metric_words(info: OracleInfo | None, which: str) -> str:
    """The ``which`` ("search" or "report") metric of an oracle in words: ``cifar10_valid``
    -> "CIFAR-10 validation accuracy", ``valid_acc`` of the digits table -> "digits
    validation accuracy"; a column this does not know keeps its name."""
    name = getattr(info, f"{which}_metric", None) if info else None
    if not name:
        return f"{which} metric"
    head, _, tail = name.partition("_")
    if head in DATASET_WORDS and tail in METRIC_WORDS:
        return f"{DATASET_WORDS[head]} {METRIC_WORDS[tail]}"
    if name in METRIC_WORDS:
        ds = DATASET_WORDS.get(info.dataset or "", info.dataset) if info.dataset else None
        return f"{ds} {METRIC_WORDS[name]}" if ds else METRIC_WORDS[name]
    return name


def axis_words(text: str, width: int = 26) -> str:
    """An axis label on lines of at most ``width`` characters (a rotated y label longer than
    a panel's height would run into the title and the neighbouring panel)."""
    import textwrap
    text = text.replace(" [", "\u00a0[")  # the unit stays on the line of its last word
    return "\n".join(line for part in text.split("\n")
                     for line in textwrap.wrap(part, width, break_long_words=False))


def time_unit(max_seconds: float) -> tuple[str, float]:
    """(unit, seconds per unit) for an axis reaching ``max_seconds``: s up to 2 minutes, min
    up to 2 hours, h beyond."""
    if max_seconds < 120:
        return "s", 1.0
    if max_seconds < 7200:
        return "min", 60.0
    return "h", 3600.0


def _wrap(label: str, width: int = WRAP) -> str:
    """Break a long algorithm label after its commas (``nao:epochs=50,n_init=100,...``)."""
    if len(label) <= width:
        return label
    parts = re.split(r"(?<=[,:])", label)
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = part
        else:
            line += part
    return "\n".join(lines + [line])


# --- styles -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    colour: str
    linestyle: Any = "-"
    marker: str | None = None

    def line(self) -> dict[str, Any]:
        kw = {"color": self.colour, "linestyle": self.linestyle}
        if self.marker:
            kw.update(marker=self.marker, markevery=0.12, markersize=3.2, markerfacecolor="white")
        return kw


def family(label: str) -> str:
    return label.split(":", 1)[0]


def styles(labels: Iterable[str]) -> dict[str, Style]:
    """Colour per algorithm name, line style and marker per variant of it."""
    labels = sorted(set(labels))
    fams = sorted({family(lab) for lab in labels})
    extra = iter(EXTRA_COLOURS * (1 + len(fams) // len(EXTRA_COLOURS)))
    colour = {f: ALGORITHM_COLOURS.get(f) or next(extra) for f in fams}
    out = {}
    for f in fams:
        variants = [lab for lab in labels if family(lab) == f and lab != f]
        if f in labels:
            out[f] = Style(colour[f])
        for k, lab in enumerate(variants):
            ls, marker = VARIANT_STYLES[k % len(VARIANT_STYLES)]
            out[lab] = Style(colour[f], ls, marker)
    return out


def colours(labels: Iterable[str]) -> dict[str, str]:
    return {k: v.colour for k, v in styles(labels).items()}


# --- figure scaffolding -----------------------------------------------------------------------
def _figure(nrows: int, ncols: int, height: float | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    w = min(MAX_W, max(4.4, PANEL_W * ncols + 0.4))  # one panel: room for row names and legend
    h = (height or PANEL_H) * nrows + 0.7
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)  # measures text (and so the layout) without a global backend
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    for ax in axes.flat:
        # ticks are created when drawn, from the rcParams of that moment: fix their look here,
        # so the Figure draws the same inside or outside RC (tests, notebooks)
        ax.tick_params(labelsize=RC["xtick.labelsize"])
        ax.grid(True, alpha=RC["grid.alpha"], linewidth=RC["grid.linewidth"])
    return fig, axes


def _legend(fig, handles, labels, ncol: int | None = None) -> None:
    if handles:
        labels = [_wrap(str(lab)) for lab in labels]
        # as many columns as fit the figure's width (an entry: ~0.065 in per character of
        # 7.5 pt text on its longest line plus the handle; at least 1.75 in)
        longest = max(len(line) for lab in labels for line in lab.split("\n"))
        fit = max(1, int(fig.get_figwidth() / max(1.75, 0.065 * longest + 0.7)))
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), ncol or 4, fit),
                   frameon=False, handlelength=2.6)


def _suptitle(fig, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width (8 pt: ~0.06 in a
    character), so a one-panel figure is not widened by its title."""
    import textwrap
    width = max(30, int(fig.get_figwidth() / 0.062))
    fig.suptitle("\n".join(line for part in text.split("\n") for line in textwrap.wrap(part, width)),
                 fontsize=8)


def _overflow(fig) -> tuple[float, float]:
    """Inches by which the figure's artists reach past its edges (width, height)."""
    fig.draw_without_rendering()
    bb = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    return max(0.0, -bb.x0) + max(0.0, bb.x1 - w), max(0.0, -bb.y0) + max(0.0, bb.y1 - h)


def _fit(fig, tries: int = 3) -> None:
    """Grow the figure until no label is clipped (the constrained layout fits the panels to
    the figure, but it cannot make a figure wide enough for long tick labels), then keep
    that layout: saving as PNG and PDF draws it without laying it out again (the layout
    measures every text and was most of a figure's CPU time)."""
    for _ in range(tries):
        dw, dh = _overflow(fig)
        if dw < 0.003 and dh < 0.003:
            break
        w, h = fig.get_size_inches()
        fig.set_size_inches(w + dw + 0.05, h + dh + 0.05)
    else:
        _overflow(fig)  # lay out at the final size
    fig.set_layout_engine("none")


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


def _band(ax, x, lo, hi, mid, style: Style, label):
    ax.fill_between(x, lo, hi, color=style.colour, alpha=0.18, linewidth=0, step=None)
    return ax.plot(x, mid, label=label, **style.line())[0]


def _set_x(ax, log_x: bool, xmax: float) -> None:
    if log_x:
        _log_x(ax)
        ax.set_xlim(1, xmax)
    else:
        ax.set_xlim(0, xmax)


def _plain_number(x: float, _pos=None) -> str:
    """1, 10, 1,000, 0.1: plain numbers (samples read better so than as 10^3, and plain text
    is laid out without the mathtext parser, a third of a small figure's time)."""
    return f"{x:,.0f}" if x >= 1 else f"{x:.10f}".rstrip("0")


def _log_x(ax) -> None:
    """A log x axis labelled in plain numbers at powers of ten only (on a short range
    matplotlib labels the minor ticks as well, and they overlap)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())


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


def _censored_anywhere(by_oracle: dict[str, list[CellRuns]]) -> bool:
    return any(c.until_optimum and c.censored.any() for cs in by_oracle.values() for c in cs)


def _sto_panel(ax, cells: list[CellRuns], st: dict[str, Style], log_x: bool, lo: float,
               names: bool = True) -> None:
    """Samples to the optimum: one row per algorithm (``lo``: smallest value in the figure,
    so that every panel of a row has the same axis; ``names``: label the rows, done in the
    first panel of a row only, whose rows are the same)."""
    rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
    order = sorted(cells, key=lambda c: c.label, reverse=True)
    budget = max(c.budget for c in cells)
    for y, c in enumerate(order):
        times = np.where(c.censored, c.censor_times, c.samples_to_optimum)
        obs = ~c.censored
        jit = rng.uniform(-0.22, 0.22, size=len(times))
        colour = st[c.label].colour
        ax.scatter(times[obs], y + jit[obs], s=9, color=colour, alpha=0.55, linewidths=0, zorder=2)
        if (~obs).any():  # censored: at the budget, or where a stopped run stopped
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
    ax.set_yticks(range(len(order)), [_wrap(c.label) for c in order] if names else [])
    for tick, c in zip(ax.get_yticklabels(), order):
        tick.set_color(st[c.label].colour)
    ax.set_ylim(-0.6, len(order) - 0.3)
    ax.grid(axis="y", visible=False)
    if log_x:
        _log_x(ax)
        ax.set_xlim(max(0.8, lo / 1.6), budget * 1.6)
    else:
        ax.set_xlim(0, budget * 1.04)
    ax.set_xlabel("samples to the global optimum")


def _sto_note(c: CellRuns) -> str:
    times = np.where(c.censored, c.censor_times, c.samples_to_optimum)
    n_c, n_s = int(c.censored.sum()), c.n_stopped
    note = f"mean {times.mean():,.0f}" + (f"*, {n_c}/{c.n_runs} censored" if n_c else "")
    return note + (f" ({n_s} stopped)" if n_s else "")


def _sto_legend_handles(censored: bool):
    from matplotlib.lines import Line2D
    h = [Line2D([], [], marker="o", linestyle="", color="0.4", markersize=3.5, alpha=0.7)]
    lab = ["one run"]
    if censored:
        h.append(Line2D([], [], marker=">", linestyle="", markerfacecolor="none", markeredgecolor="0.3",
                        markersize=4.5))
        lab.append("censored (at the budget, or where a run was stopped)")
    h += [Line2D([], [], color="black", linewidth=3.2, alpha=0.35),
          Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="black", markersize=4)]
    lab += ["KM median (tick) and IQR (bar)", "mean (* restricted to the budget)" if censored else "mean"]
    return h, lab


def _line_handles(handles: dict[str, Any]) -> tuple[list, list[str]]:
    labels = sorted(handles)
    return [handles[k] for k in labels], labels


# --- the figures ------------------------------------------------------------------------------
def fig5(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    by_oracle = _cells_by_oracle(rs)
    oracles = sorted(by_oracle)
    with_sto = any(c.until_optimum for cs in by_oracle.values() for c in cs)
    fig, axes = _figure(2 if with_sto else 1, len(oracles))
    handles = {}
    lo = min((np.nanmin(np.where(c.censored, c.censor_times, c.samples_to_optimum))
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
                                     st[c.label], c.label)
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
        ax.set_ylabel(axis_words(f"{metric_words(info, 'search')} [%]"))
        if with_sto:
            sto_cells = [c for c in cells if c.until_optimum]
            if sto_cells:
                _sto_panel(axes[1, j], sto_cells, st, log_x, lo, names=j == 0)
            else:
                axes[1, j].set_axis_off()
    h, labels = _line_handles(handles)
    if with_sto:
        sh, sl = _sto_legend_handles(_censored_anywhere(by_oracle))
        h, labels = h + sh, labels + sl
    _legend(fig, h, labels, ncol=4)
    n = sorted({c.n_runs for cs in by_oracle.values() for c in cs})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    _suptitle(fig, f"best-so-far: median and interquartile range over {seeds} seeds\n"
                 "(samples: distinct architectures evaluated)")
    return fig


def regret(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if rs.oracles.get(o) and rs.oracles[o].optimum_search is not None]
    if not oracles:
        return None
    fig, axes = _figure(2, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        info = rs.oracles.get(oracle)
        for i, (metric, which) in enumerate((("best_search", "search"), ("incumbent_report", "report"))):
            ax = axes[i, j]
            for c in by_oracle[oracle]:
                cv = curves.get(c, metric, regret=True)
                if cv is None:
                    continue
                b = cv.bands
                handles[c.label] = _band(ax, cv.x, 100 * b["q1"], 100 * b["q3"], 100 * b["median"],
                                         st[c.label], c.label)
            ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
            ax.set_ylim(bottom=0)
            _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
            ax.set_ylabel(axis_words(f"regret in {metric_words(info, which)} [pp]"))
            ax.set_xlabel(X_SAMPLES)
            ax.set_title(oracle)
    _legend(fig, *_line_handles(handles))
    _suptitle(fig, "regret to the best value in the space, median and IQR over seeds (axis linear below "
                 "0.01 pp)\ntop: search metric; bottom: report metric of the best-by-search architecture")
    return fig


def found_fraction(cell: CellRuns, grid: np.ndarray, n_boot: int) -> dict[str, np.ndarray]:
    """Fraction of runs that drew the optimum within each grid number of samples, with a
    percentile-bootstrap band (runs resampled); a censored run (at the budget, or stopped)
    never counts as having drawn it."""
    times = np.where(cell.censored, np.inf, cell.samples_to_optimum)
    found = (times[:, None] <= grid[None, :]).astype(np.float64)
    b = curve_bands(found, n_boot=n_boot)
    return {"fraction": b["mean"], "lo": b["mean_lo"], "hi": b["mean_hi"]}


def found_optimum(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    by_oracle = {o: [c for c in cs if c.until_optimum] for o, cs in _cells_by_oracle(rs).items()}
    oracles = [o for o in sorted(by_oracle) if by_oracle[o]]
    if not oracles:
        return None
    fig, axes = _figure(1, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        for c in by_oracle[oracle]:
            grid = sample_grid(c.budget)
            f = found_fraction(c, grid, curves.n_boot)
            s = st[c.label]
            ax.fill_between(grid, 100 * f["lo"], 100 * f["hi"], step="post", color=s.colour, alpha=0.15,
                            linewidth=0)
            handles[c.label] = ax.step(grid, 100 * f["fraction"], where="post", label=c.label, **s.line())[0]
        _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
        ax.set_ylim(-2, 102)
        ax.set_title(oracle)
        ax.set_xlabel(X_SAMPLES)
        ax.set_ylabel(axis_words("runs that found the global optimum [%]"))
    _legend(fig, *_line_handles(handles))
    stopped = any(c.n_stopped for cs in by_oracle.values() for c in cs)
    _suptitle(fig, "runs that drew the global optimum within n samples"
              + (" (a stopped run never does)" if stopped else "") + "\nband: 95% bootstrap interval over runs")
    return fig


def curves_mean(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
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
                                         st[c.label], c.label)
            ref = None if info is None else (info.optimum_search if i == 0 else info.best_report)
            if ref is not None:
                ax.axhline(100 * ref, color="black", linestyle=":", linewidth=0.9)
            lim = _ylim_from([_as_mean(cv) for cv in cvs], ref, 100, 10)
            if lim:
                ax.set_ylim(*lim)
            _set_x(ax, log_x, max(c.budget for c in by_oracle[oracle]))
            words = metric_words(info, which)
            ax.set_ylabel(axis_words(f"{words} [%]" if i == 0 else f"{words} of the incumbent [%]"))
            ax.set_xlabel(X_SAMPLES)
            ax.set_title(oracle)
    _legend(fig, *_line_handles(handles))
    _suptitle(fig, "mean over seeds with a 95% bootstrap confidence interval; dotted: best in the space\n"
                 "top: best search metric so far; bottom: report metric of the best-by-search architecture")
    return fig


def _as_mean(cv: Curve) -> Curve:
    b = dict(cv.bands, q1=cv.bands["mean_lo"], q3=cv.bands["mean_hi"])
    return Curve(cv.oracle, cv.label, cv.metric, cv.x, cv.x_unit, b, cv.regret)


def time_axis_label(info: OracleInfo | None, unit: str) -> str:
    """What the time axis shows: the table's training time of every sampled architecture,
    summed, named by what and where the table measured it (``cost_measured``)."""
    what = (info.cost_measured if info and info.cost_measured else
            f"training time from the table's {info.cost_metric} column" if info and info.cost_metric else
            "training time from the table")
    return f"{what}, summed over the architectures sampled [{unit}]"


def curves_time(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if curves.time_grid(o) is not None]
    if not oracles:
        return None
    fig, axes = _figure(1, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        unit, per = time_unit(float(curves.time_grid(oracle)[-1]))
        cvs = []
        for c in by_oracle[oracle]:
            cv = curves.get(c, "best_search", x="time")
            if cv is None:
                continue
            cvs.append(cv)
            b = cv.bands
            handles[c.label] = _band(ax, cv.x / per, 100 * b["q1"], 100 * b["q3"], 100 * b["median"],
                                     st[c.label], c.label)
        info = rs.oracles.get(oracle)
        if info and info.optimum_search is not None:
            ax.axhline(100 * info.optimum_search, color="black", linestyle=":", linewidth=0.9)
        if cvs:
            x0 = cvs[0].x[0]
            lim = _ylim_from(cvs, info.optimum_search if info else None, 100, x0 * 10)
            if lim:
                ax.set_ylim(*lim)
            if log_x:
                _log_x(ax)
        ax.set_title(oracle)
        # wrapped to the panel's width (7 pt text: about 0.06 in a character)
        ax.set_xlabel(axis_words(time_axis_label(info, unit), max(26, int(fig.get_figwidth() / len(oracles) / 0.065))))
        ax.set_ylabel(axis_words(f"{metric_words(info, 'search')} [%]"))
    _legend(fig, *_line_handles(handles))
    _suptitle(fig, "best-so-far against the training time the table records (the harness trains nothing)\n"
                 "median and IQR over seeds")
    return fig


FIGURES = ("fig5", "regret", "found_optimum", "curves_mean", "curves_time")
_BUILDERS = {"fig5": fig5, "regret": regret, "found_optimum": found_optimum, "curves_mean": curves_mean,
             "curves_time": curves_time}


class Figures:
    """Builds the figures of one result set, sharing curve statistics between them."""

    def __init__(self, rs: ResultSet, log_x: bool = True, n_boot: int = 1000):
        self.rs, self.log_x = rs, log_x
        self.curves = _Curves(rs, n_boot)
        self.styles = styles(rs.labels)

    def build(self, name: str):
        """The named figure as a laid-out :class:`matplotlib.figure.Figure`, or None when it
        does not apply (no optimum known, no training costs, no runs)."""
        import matplotlib
        if name not in _BUILDERS:
            raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
        if not _cells_by_oracle(self.rs):
            return None
        with matplotlib.rc_context(RC):
            fig = _BUILDERS[name](self.rs, self.curves, self.styles, self.log_x)
            if fig is not None:
                _fit(fig)
        return fig


def build(rs: ResultSet, name: str, log_x: bool = True, n_boot: int = 1000):
    """One figure of ``rs`` (see :class:`Figures`)."""
    return Figures(rs, log_x, n_boot).build(name)


def plot_all(rs: ResultSet, out: str | Path, log_x: bool = True, formats: Iterable[str] = ("png", "pdf"),
             which: Iterable[str] = FIGURES, n_boot: int = 1000) -> list[Path]:
    """Write every applicable figure of ``rs`` into ``out``; return the files written."""
    import matplotlib
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    formats = tuple(formats)
    figs = Figures(rs, log_x, n_boot)
    paths: list[Path] = []
    for name in which:
        fig = figs.build(name)
        if fig is not None:
            with matplotlib.rc_context(RC):
                paths += _save(fig, out, name, formats)
    return paths
