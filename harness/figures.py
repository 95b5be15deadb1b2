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
* ``regret_epochs`` (:data:`TIME_FIGURES`): the regret figure against the training epochs
  paid (summed over the told trials), median and IQR over runs: how multi-fidelity
  methods (Li et al., Hyperband, JMLR 2018, §5; Falkner et al., BOHB, ICML 2018, Fig. 1)
  are compared, since a 12-epoch evaluation costs a fraction of a 200-epoch one.
* ``regret_clock``: the same against the simulated clock of the runs' ``workers_per_run``
  workers (seconds where the oracle has training costs, else epochs), as asynchronous
  methods are compared (Li et al., ASHA, MLSys 2020, Fig. 3: wall-clock time on a cluster).

Reference results (``references.json`` in a results folder,
:func:`harness.summary.write_references`: results that are not search algorithms, e.g.
scikit-learn's ``MLPClassifier`` on the same split) are drawn as thick light grey horizontal
lines at their median, labelled "reference: NAME" in the legend, on the panels of the metric
they have: ``fig5`` and ``curves_time`` (search metric), ``curves_mean`` (search metric on
top, report metric of the incumbent below). Without references nothing changes.

The time figures are drawn for the oracles whose runs have several fidelities, several
simulated workers or a budget in epochs or time (:meth:`harness.metrics.ResultSet.time_axes`);
the clock figure is left out where it would repeat the epochs one.

Direction: a minimised metric (perplexity, loss) is drawn as the metric's own values with
"lower is better" on its axis; regrets are >= 0 for both directions (best - optimum for a
minimised metric). Accuracies (fractions in [0, 1]) are drawn in percent and their regrets
in percentage points; any other metric in its own unit
(:meth:`harness.metrics.OracleInfo.is_fraction`).

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

from .curves import Curve, axis_grid, cell_curve, regret_reference, sample_grid
from .metrics import CellRuns, OracleInfo, ResultSet
from .statistics import curve_bands, km_quantile_batch

#: fixed colours for the registry's algorithms, so a figure reads the same in every paper
ALGORITHM_COLOURS = {
    "random": "#7f7f7f", "evolution": "#1f77b4", "mcts": "#2ca02c", "lanas": "#d62728",
    "reinforce": "#9467bd", "cadam": "#ff7f0e", "nao": "#8c564b", "nases": "#e377c2",
    # multi-fidelity methods: the successive-halving family in shades of teal/olive
    "successive-halving": "#17becf", "hyperband": "#bcbd22", "asha": "#006d6f", "bohb": "#393b79",
    "tpe": "#ad494a",
}
#: colours handed out, in order, to any other algorithm name
EXTRA_COLOURS = ("#637939", "#8c6d31", "#7b4173", "#3182bd", "#31a354", "#756bb1", "#e6550d",
                 "#843c39", "#5254a3", "#9c9ede")
#: line style and marker of the variants of one algorithm, in label order (the plain name,
#: without parameters, is drawn solid without markers)
VARIANT_STYLES = (("--", "o"), (":", "s"), ("-.", "^"), ((0, (5, 1, 1, 1)), "v"), ((0, (1, 1)), "D"),
                  ((0, (8, 2)), "P"))

#: the sample axis: the runner's budget unit (a repeated architecture is not charged)
X_SAMPLES = "architectures sampled"
#: the sample axis of a multi-fidelity oracle: each (architecture, fidelity) pair is charged
X_EVALUATIONS = "evaluations (architecture, fidelity)"


def sample_words(info: OracleInfo | None) -> str:
    """The sample axis's label: architectures, or evaluations where the oracle served
    several fidelities (the runner charges each distinct architecture and fidelity)."""
    return X_EVALUATIONS if info is not None and info.multi_fidelity else X_SAMPLES

#: paper sizes: a two-column paper's full text width is about 7 inches
PANEL_W, PANEL_H, MAX_W = 3.3, 2.3, 7.2
#: inches per algorithm row of a samples-to-optimum panel: a name wrapped over two lines and
#: the mean note above it (fig5 with 9 algorithms overlapped at the plain panel height)
STO_ROW_H = 0.42
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
                "train_accuracy": "training accuracy",
                "valid_ppl": "validation perplexity", "val_ppl": "validation perplexity",
                "test_ppl": "test perplexity", "valid_perplexity": "validation perplexity",
                "test_perplexity": "test perplexity", "valid_loss": "validation loss", "val_loss": "validation loss",
                "test_loss": "test loss", "train_loss": "training loss"}


def metric_words(info: OracleInfo | None, which: str) -> str:
    """The ``which`` ("search" or "report") metric of an oracle in words: ``cifar10_valid``
    -> "CIFAR-10 validation accuracy", ``valid_acc`` of the digits table -> "digits
    validation accuracy"; a column this does not know keeps its name."""
    name = getattr(info, f"{which}_metric", None) if info else None
    if not name:
        return f"{which} metric"
    head, _, tail = name.partition("_")
    words = None
    if head in DATASET_WORDS and tail in METRIC_WORDS:
        words = f"{DATASET_WORDS[head]} {METRIC_WORDS[tail]}"
    elif name in METRIC_WORDS:
        ds = DATASET_WORDS.get(info.dataset or "", info.dataset) if info.dataset else None
        words = f"{ds} {METRIC_WORDS[name]}" if ds else METRIC_WORDS[name]
    # "valid" names an accuracy only where the metric is one (a perplexity column may be
    # called "valid" too): otherwise the column keeps its name
    if words is None or ("accuracy" in words and not info.is_fraction(which)):
        return name
    return words


def scale_of(info: OracleInfo | None, which: str) -> float:
    """100 for an accuracy stored as a fraction (drawn in percent), else 1."""
    return 100.0 if info is None or info.is_fraction(which) else 1.0


def value_label(info: OracleInfo | None, which: str, what: str = "") -> str:
    """The axis label of the ``which`` metric's values: its words, ``what`` (e.g. " of the
    incumbent"), the unit ([%] for accuracies) and, for a minimised metric, "lower is better"."""
    text = metric_words(info, which) + what
    if scale_of(info, which) == 100.0:
        text += " [%]"
    if info is not None and info.minimise:
        text += "\n(lower is better)"
    return text


def regret_label(info: OracleInfo | None, which: str) -> str:
    """The axis label of the ``which`` metric's regret: in percentage points for an accuracy,
    in the metric's unit otherwise."""
    return f"regret in {metric_words(info, which)}" + (" [pp]" if scale_of(info, which) == 100.0 else "")


def format_value(x: float | None, info: OracleInfo | None, which: str) -> str:
    """A value for an annotation: ``91.61%`` for an accuracy, ``87.35`` (four significant
    digits) otherwise."""
    if x is None or not np.isfinite(x):
        return "-"
    if scale_of(info, which) == 100.0:
        return f"{100 * x:.2f}%"
    return f"{x:.4g}"


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
    """Curve statistics, computed once per (cell, metric, axis, regret) and shared; with the
    result set's reference results (``references``: :func:`harness.summary.read_references`
    entries), which the figures draw as lines."""

    def __init__(self, rs: ResultSet, n_boot: int, references: list[dict[str, Any]] | None = None):
        self.rs, self.n_boot, self._cache = rs, n_boot, {}
        self._grids = {}
        self.references = list(references or [])

    def get(self, cell: CellRuns, metric: str, x: str = "samples", regret: bool = False) -> Curve | None:
        key = (cell.key, metric, x, regret)
        if key not in self._cache:
            info = self.rs.oracles.get(cell.oracle)
            direction = info.direction if info else "max"
            ref = regret_reference(info, metric) if regret else None
            if regret and ref is None:
                self._cache[key] = None
            elif x != "samples":
                grid = self.grid(cell.oracle, x)
                unit = (info.clock_unit if info and info.clock_unit else "clock units") if x == "clock" else None
                self._cache[key] = None if grid is None else cell_curve(
                    cell, metric, x, grid, ref, self.n_boot, direction, unit)
            else:
                self._cache[key] = cell_curve(cell, metric, "samples", sample_grid(cell.sample_budget), ref,
                                              self.n_boot, direction)
        return self._cache[key]

    def grid(self, oracle: str, axis: str):
        """The grid of ``axis`` shared by every cell of ``oracle`` (None: no run recorded it)."""
        if (oracle, axis) not in self._grids:
            self._grids[(oracle, axis)] = axis_grid([c for c in self.rs.cells if c.oracle == oracle], axis)
        return self._grids[(oracle, axis)]

    def time_grid(self, oracle: str):
        return self.grid(oracle, "time")


#: line styles of an oracle's reference results, in the order the folder lists them
#: (thick and light grey: no algorithm's line looks like it)
REFERENCE_STYLES = ("-", (0, (4, 1.5)), (0, (1, 1)), (0, (4, 1, 1, 1)))


def _references(ax, curves: "_Curves", oracle: str, which: str, scale: float,
                lim: tuple[float, float] | None) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """Draw ``oracle``'s reference results of the ``which`` ("search" or "report") metric
    as horizontal lines at their median (times ``scale``); returns the legend handles (label
    -> line) and the y limits ``lim`` widened to show the lines."""
    handles = {}
    refs = [e for e in curves.references if e["oracle"] == oracle]
    for i, e in enumerate(refs):
        v = np.array([np.nan if x is None else x for x in e[which]], dtype=np.float64)
        if not np.isfinite(v).any():
            continue
        y = scale * float(np.nanmedian(v))
        label = f"reference: {e['name']}"
        handles[label] = ax.axhline(y, color="0.6", alpha=0.8, linestyle=REFERENCE_STYLES[i % len(REFERENCE_STYLES)],
                                    linewidth=2.6, label=label, zorder=1.5)
        if lim is not None:
            pad = 0.05 * (lim[1] - lim[0])
            lim = (min(lim[0], y - pad), max(lim[1], y + pad))
    return handles, lim


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


def _log_x(ax, span: float | None = None) -> None:
    """A log x axis labelled in plain numbers at powers of ten only (on a short range
    matplotlib labels the minor ticks as well, and they overlap); ``span`` (largest over
    smallest x) below 30: at 1, 2 and 5 times powers of ten, so a short axis has labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xscale("log")
    if span is not None and span < 30:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ylim_from(curves: list[Curve], top: float | None, scale: float, x_from: float) -> tuple[float, float] | None:
    """Zoom on the part of the curves after ``x_from`` samples (the first few random draws
    would otherwise squash everything that distinguishes the algorithms); ``top`` is the
    optimum, kept in view (below the curves for a minimised metric)."""
    lows, highs = [], []
    for cv in curves:
        keep = cv.x >= min(x_from, cv.x[-1])
        if keep.any() and np.isfinite(cv.bands["q1"][keep]).any():
            lows.append(np.nanmin(cv.bands["q1"][keep]))
            highs.append(np.nanmax(cv.bands["q3"][keep]))
    if not lows:
        return None
    extra = [top] if top is not None else []
    lo, hi = min(lows + extra) * scale, max(highs + extra) * scale
    span = hi - lo if hi > lo else 1.0
    # more room by the optimum: its line carries a label (on top, or below when minimised)
    minimise = any(cv.direction == "min" for cv in curves)
    return (lo - 0.12 * span, hi + 0.05 * span) if minimise else (lo - 0.05 * span, hi + 0.12 * span)


def _censored_anywhere(by_oracle: dict[str, list[CellRuns]]) -> bool:
    return any(c.until_optimum and c.censored.any() for cs in by_oracle.values() for c in cs)


def _sto_panel(ax, cells: list[CellRuns], st: dict[str, Style], log_x: bool, lo: float,
               names: bool = True) -> None:
    """Samples to the optimum: one row per algorithm (``lo``: smallest value in the figure,
    so that every panel of a row has the same axis; ``names``: label the rows, done in the
    first panel of a row only, whose rows are the same)."""
    rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
    order = sorted(cells, key=lambda c: c.label, reverse=True)
    budget = max(_sto_end(c) for c in cells)
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
        q3_drawn = q3 if np.isfinite(q3) else _sto_end(c)
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


def _sto_end(c: CellRuns) -> float:
    """The end of a cell's samples-to-optimum axis: its budget, or, for a budget in epochs or
    time, the most architectures a censored run drew."""
    if c.budget_kind == "archs" or not c.n_runs:
        return float(c.budget)
    return float(max(c.sample_budget, np.max(c.censor_times)))


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
    # the lower panel has a row per algorithm, each a (possibly wrapped) name with its mean
    # note above it: the panels grow with the rows so that neither overlaps the next
    rows = max((sum(c.until_optimum for c in cs) for cs in by_oracle.values()), default=0)
    fig, axes = _figure(2 if with_sto else 1, len(oracles),
                        height=max(PANEL_H, STO_ROW_H * rows + 0.6) if with_sto else None)
    handles = {}
    lo = min((np.nanmin(np.where(c.censored, c.censor_times, c.samples_to_optimum))
              for cs in by_oracle.values() for c in cs if c.until_optimum), default=1.0)
    for j, oracle in enumerate(oracles):
        ax = axes[0, j]
        cells = by_oracle[oracle]
        info = rs.oracles.get(oracle)
        k = scale_of(info, "search")
        cvs = []
        for c in cells:
            cv = curves.get(c, "best_search")
            cvs.append(cv)
            b = cv.bands
            handles[c.label] = _band(ax, cv.x, k * b["q1"], k * b["q3"], k * b["median"],
                                     st[c.label], c.label)
        opt = info.optimum_search if info else None
        if opt is not None:
            ax.axhline(k * opt, color="black", linestyle=":", linewidth=0.9)
            ax.annotate(f"global optimum {format_value(opt, info, 'search')}", (0.02, k * opt),
                        xycoords=("axes fraction", "data"), va="top" if info.minimise else "bottom", fontsize=6.5)
        lim = _ylim_from(cvs, opt, k, 10)
        ref_handles, lim = _references(ax, curves, oracle, "search", k, lim)
        handles.update(ref_handles)
        if lim:
            ax.set_ylim(*lim)
        _set_x(ax, log_x, max(c.sample_budget for c in cells))
        ax.set_title(oracle)
        ax.set_xlabel(sample_words(info))
        ax.set_ylabel(axis_words(value_label(info, "search")))
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
    multi = any(rs.oracles.get(o) and rs.oracles[o].multi_fidelity for o in oracles)
    _suptitle(fig, f"best-so-far: median and interquartile range over {seeds} seeds\n"
                 + ("(samples: distinct architectures evaluated)" if not multi else
                    "(samples: distinct (architecture, fidelity) evaluations; best-so-far at the top fidelity)"))
    return fig


def _linthresh(info: OracleInfo | None, which: str) -> float:
    """Where a regret axis turns logarithmic: 0.01 pp for accuracies; for other metrics a
    ten-thousandth of the optimum's magnitude (a regret of 0 stays visible either way)."""
    if scale_of(info, which) == 100.0:
        return 0.01
    ref = info.reference("best_search" if which == "search" else "incumbent_report") if info else None
    # a power of ten, so that the first logarithmic decade starts at a labelled tick
    return float(10.0 ** np.floor(np.log10(1e-4 * abs(ref)))) if ref else 1e-4


def _regret_panels(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool, axis: str,
                   oracles: list[str], by_oracle: dict[str, list[CellRuns]]):
    """Two rows (search metric; report metric of the incumbent) by one column per oracle of
    regret curves against ``axis``: median and IQR over runs."""
    fig, axes = _figure(2, len(oracles))
    handles = {}
    for j, oracle in enumerate(oracles):
        info = rs.oracles.get(oracle)
        for i, (metric, which) in enumerate((("best_search", "search"), ("incumbent_report", "report"))):
            ax = axes[i, j]
            k = scale_of(info, which)
            xmax = 1.0
            for c in by_oracle[oracle]:
                cv = curves.get(c, metric, x=axis, regret=True)
                if cv is None:
                    continue
                b = cv.bands
                handles[c.label] = _band(ax, cv.x, k * b["q1"], k * b["q3"], k * b["median"], st[c.label], c.label)
                xmax = max(xmax, float(cv.x[-1]))
            ax.set_yscale("symlog", linthresh=_linthresh(info, which), linscale=0.5)
            ax.set_ylim(bottom=0)
            ax.set_ylabel(axis_words(regret_label(info, which)))
            ax.set_title(oracle)
            if axis == "samples":
                _set_x(ax, log_x, max(c.sample_budget for c in by_oracle[oracle]))
                ax.set_xlabel(sample_words(info))
            else:
                grid = curves.grid(oracle, axis)
                if log_x:
                    _log_x(ax, xmax / grid[0])
                    ax.set_xlim(grid[0], xmax)
                else:
                    ax.set_xlim(0, xmax)
                ax.set_xlabel(axis_words(axis_label(info, axis),
                                         max(26, int(fig.get_figwidth() / len(oracles) / 0.065))))
    _legend(fig, *_line_handles(handles))
    return fig


def axis_label(info: OracleInfo | None, axis: str) -> str:
    """What the epochs and clock axes show."""
    if axis == "epochs":
        return "training epochs paid, summed over the trials"
    unit = info.clock_unit if info and info.clock_unit else "time units"
    return f"simulated time of the run's workers [{unit}]"


def _direction_note(rs: ResultSet, oracles: list[str]) -> str:
    minimised = [o for o in oracles if rs.oracles.get(o) and rs.oracles[o].minimise]
    if not minimised:
        return ""
    return "; minimised metric: best found minus optimum" if len(minimised) == len(oracles) else \
        f"; minimised ({', '.join(minimised)}): best found minus optimum"


def regret(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if rs.oracles.get(o) and rs.oracles[o].optimum_search is not None]
    if not oracles:
        return None
    fig = _regret_panels(rs, curves, st, log_x, "samples", oracles, by_oracle)
    lin = ", ".join(sorted({f"{_linthresh(rs.oracles.get(o), 'search'):g}"
                            + (" pp" if scale_of(rs.oracles.get(o), "search") == 100.0 else "") for o in oracles}))
    _suptitle(fig, f"regret to the best value in the space, median and IQR over seeds (axis linear below {lin}"
              f"{_direction_note(rs, oracles)})\ntop: search metric; bottom: report metric of the best-by-search "
              "architecture")
    return fig


def _time_regret(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool, axis: str):
    by_oracle = _cells_by_oracle(rs)
    oracles = [o for o in sorted(by_oracle) if rs.oracles.get(o) and rs.oracles[o].optimum_search is not None
               and axis in rs.time_axes(o) and curves.grid(o, axis) is not None]
    if not oracles:
        return None
    fig = _regret_panels(rs, curves, st, log_x, axis, oracles, by_oracle)
    workers = sorted({c.workers_per_run for o in oracles for c in by_oracle[o]})
    w = f"{workers[0]}" if len(workers) == 1 else f"{workers[0]}-{workers[-1]}"
    what = ("training epochs paid" if axis == "epochs" else
            f"simulated time ({w} worker{'s' if workers != [1] else ''} per run)")
    _suptitle(fig, f"regret to the best value in the space against {what}, at the top fidelity; median and IQR "
              f"over seeds{_direction_note(rs, oracles)}\ntop: search metric; bottom: report metric of the "
              "best-by-search architecture")
    return fig


def regret_epochs(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    return _time_regret(rs, curves, st, log_x, "epochs")


def regret_clock(rs: ResultSet, curves: _Curves, st: dict[str, Style], log_x: bool):
    return _time_regret(rs, curves, st, log_x, "clock")


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
            grid = sample_grid(c.sample_budget)
            f = found_fraction(c, grid, curves.n_boot)
            s = st[c.label]
            ax.fill_between(grid, 100 * f["lo"], 100 * f["hi"], step="post", color=s.colour, alpha=0.15,
                            linewidth=0)
            handles[c.label] = ax.step(grid, 100 * f["fraction"], where="post", label=c.label, **s.line())[0]
        _set_x(ax, log_x, max(c.sample_budget for c in by_oracle[oracle]))
        ax.set_ylim(-2, 102)
        ax.set_title(oracle)
        ax.set_xlabel(sample_words(rs.oracles.get(oracle)))
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
            k = scale_of(info, which)
            cvs = []
            for c in by_oracle[oracle]:
                cv = curves.get(c, metric)
                cvs.append(cv)
                b = cv.bands
                handles[c.label] = _band(ax, cv.x, k * b["mean_lo"], k * b["mean_hi"], k * b["mean"],
                                         st[c.label], c.label)
            ref = None if info is None else info.reference(metric)
            if ref is not None:
                ax.axhline(k * ref, color="black", linestyle=":", linewidth=0.9)
            lim = _ylim_from([_as_mean(cv) for cv in cvs], ref, k, 10)
            ref_handles, lim = _references(ax, curves, oracle, which, k, lim)
            handles.update(ref_handles)
            if lim:
                ax.set_ylim(*lim)
            _set_x(ax, log_x, max(c.sample_budget for c in by_oracle[oracle]))
            ax.set_ylabel(axis_words(value_label(info, which, "" if i == 0 else " of the incumbent")))
            ax.set_xlabel(sample_words(info))
            ax.set_title(oracle)
    _legend(fig, *_line_handles(handles))
    _suptitle(fig, "mean over seeds with a 95% bootstrap confidence interval; dotted: best in the space\n"
                 "top: best search metric so far; bottom: report metric of the best-by-search architecture")
    return fig


def _as_mean(cv: Curve) -> Curve:
    b = dict(cv.bands, q1=cv.bands["mean_lo"], q3=cv.bands["mean_hi"])
    return Curve(cv.oracle, cv.label, cv.metric, cv.x, cv.x_unit, b, cv.regret, cv.direction, cv.axis)


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
        info = rs.oracles.get(oracle)
        k = scale_of(info, "search")
        cvs = []
        for c in by_oracle[oracle]:
            cv = curves.get(c, "best_search", x="time")
            if cv is None:
                continue
            cvs.append(cv)
            b = cv.bands
            handles[c.label] = _band(ax, cv.x / per, k * b["q1"], k * b["q3"], k * b["median"],
                                     st[c.label], c.label)
        if info and info.optimum_search is not None:
            ax.axhline(k * info.optimum_search, color="black", linestyle=":", linewidth=0.9)
        if cvs:
            x0 = cvs[0].x[0]
            lim = _ylim_from(cvs, info.optimum_search if info else None, k, x0 * 10)
            ref_handles, lim = _references(ax, curves, oracle, "search", k, lim)
            handles.update(ref_handles)
            if lim:
                ax.set_ylim(*lim)
            if log_x:
                _log_x(ax)
        ax.set_title(oracle)
        # wrapped to the panel's width (7 pt text: about 0.06 in a character)
        ax.set_xlabel(axis_words(time_axis_label(info, unit), max(26, int(fig.get_figwidth() / len(oracles) / 0.065))))
        ax.set_ylabel(axis_words(value_label(info, "search")))
    _legend(fig, *_line_handles(handles))
    _suptitle(fig, "best-so-far against the training time the table records (the harness trains nothing)\n"
                 "median and IQR over seeds")
    return fig


FIGURES = ("fig5", "regret", "found_optimum", "curves_mean", "curves_time")
#: figures against training epochs and the simulated clock, drawn where runs have several
#: fidelities, several workers or a budget in epochs or time (ResultSet.time_axes)
TIME_FIGURES = ("regret_epochs", "regret_clock")
#: every figure ``plot`` may draw (each one only where it applies)
ALL_FIGURES = FIGURES + TIME_FIGURES
_BUILDERS = {"fig5": fig5, "regret": regret, "found_optimum": found_optimum, "curves_mean": curves_mean,
             "curves_time": curves_time, "regret_epochs": regret_epochs, "regret_clock": regret_clock}


class Figures:
    """Builds the figures of one result set, sharing curve statistics between them."""

    def __init__(self, rs: ResultSet, log_x: bool = True, n_boot: int = 1000,
                 references: list[dict[str, Any]] | None = None):
        """``references``: reference results to draw (:func:`harness.summary.reference_entry`
        dicts); None: those the results folder of ``rs`` holds (none for a baseline file)."""
        from .summary import references_of
        self.rs, self.log_x = rs, log_x
        self.curves = _Curves(rs, n_boot, references_of(rs) if references is None else references)
        self.styles = styles(rs.labels)

    def build(self, name: str):
        """The named figure as a laid-out :class:`matplotlib.figure.Figure`, or None when it
        does not apply (no optimum known, no training costs, no runs)."""
        import matplotlib
        if name not in _BUILDERS:
            raise ValueError(f"unknown figure {name!r}; choose from {', '.join(ALL_FIGURES)}")
        if not _cells_by_oracle(self.rs):
            return None
        with matplotlib.rc_context(RC):
            fig = _BUILDERS[name](self.rs, self.curves, self.styles, self.log_x)
            if fig is not None:
                _fit(fig)
        return fig


def build(rs: ResultSet, name: str, log_x: bool = True, n_boot: int = 1000,
          references: list[dict[str, Any]] | None = None):
    """One figure of ``rs`` (see :class:`Figures`)."""
    return Figures(rs, log_x, n_boot, references).build(name)


def plot_all(rs: ResultSet, out: str | Path, log_x: bool = True, formats: Iterable[str] = ("png", "pdf"),
             which: Iterable[str] = ALL_FIGURES, n_boot: int = 1000,
             references: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write every applicable figure of ``which`` (default: all, each where it applies: the
    time figures for runs with several fidelities or workers) into ``out``; return the
    files written. ``references``: as :class:`Figures` (None: the folder's own)."""
    import matplotlib
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    formats = tuple(formats)
    figs = Figures(rs, log_x, n_boot, references)
    paths: list[Path] = []
    for name in which:
        fig = figs.build(name)
        if fig is not None:
            with matplotlib.rc_context(RC):
                paths += _save(fig, out, name, formats)
    return paths
