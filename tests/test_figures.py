"""Figures and reports: what the figures show, read off the matplotlib Figure objects (axis
labels in words, lines per algorithm, colours shared by variants, confidence bands, legend
texts, nothing clipped), and that the commands write them."""

import itertools
import json
import re
import zlib

import numpy as np
import pytest

from conftest import data_env
from harness.cli import main as cli
from harness.figures import FIGURES, Figures, build, colours, metric_words, plot_all, styles, time_unit
from harness.metrics import CellRuns, OracleInfo, ResultSet

LONG = "nao:epochs=50,n_init=100,top_k=100"


@pytest.fixture(scope="module")
def folder(nb201_data_dir, tmp_path_factory):
    from harness.experiment import Experiment, execute
    with data_env(nb201_data_dir):
        d = tmp_path_factory.mktemp("fig") / "runs"
        execute(Experiment(oracles=["nb201/cifar10", "nb201/cifar100"],
                           algorithms=["random", "evolution:population=20,sample_size=5"],
                           seeds=4, budget=120, until_optimum=True, out=str(d)), progress=False)
        yield d


def toy(labels=("random", "lanas", "lanas:split=random"), oracles=("toy",), budget=50, runs=6,
        censor=True, cost=(100, 900), seed=0, stopped=None):
    """A synthetic result set; ``censor=False`` makes every run find the optimum."""
    rng = np.random.default_rng(seed)
    cells = []
    for oracle in oracles:
        for label, speed in zip(labels, itertools.cycle((1.0, 3.0, 1.2, 2.0, 1.5))):
            recs, sto, cens = [], [], []
            for _ in range(runs):
                n = int(min(budget, rng.geometric(speed / 60)))
                if not censor:
                    n = min(n, budget - 1)
                vals = np.maximum.accumulate(rng.uniform(0.5, 0.9, n))
                if n < budget:
                    vals[-1] = 0.95
                recs.append({"n_distinct": np.arange(1, n + 1), "best_search": vals, "incumbent_report": vals - 0.01,
                             "best_report": vals, "cum_cost": np.cumsum(rng.uniform(*cost, n))})
                sto.append(n if n < budget else np.nan)
                cens.append(n == budget)
            cells.append(CellRuns(oracle, label, {"algorithm": label.split(":")[0], "budget": budget,
                                                  "until_optimum": True},
                                  np.arange(runs), np.array(sto, float), np.array(cens),
                                  {k: np.array([r[k][-1] for r in recs])
                                   for k in ("best_search", "incumbent_report", "best_report")},
                                  np.array([r["cum_cost"][-1] for r in recs]), recs, stopped=stopped,
                                  n_distinct=np.array([r["n_distinct"][-1] for r in recs], float)))
    infos = {o: OracleInfo(o, "", 0.95, 0.94, 0.95, "cifar10_valid", "cifar10_test", "train_time",
                           cost_measured="training time measured on the collecting CPU") for o in oracles}
    return ResultSet("toy", "folder", cells, infos)


def hand_made(label="random"):
    """One oracle, one algorithm, three runs of budget 4 whose curves are worked out by hand
    in the tests below (each record: one distinct architecture more):

    ========  ===============  ========================  =================================
    run       best_search      incumbent_report          outcome
    ========  ===============  ========================  =================================
    A         .5 .7 .9         .45 .65 .88               optimum (0.9) at sample 3
    B         .6 .6 .8 .8      .55 .55 .79 .79           censored at the budget (4)
    C         .4 .9            .35 .87                   optimum at sample 2
    ========  ===============  ========================  =================================

    A run that reached the optimum keeps its last values afterwards (harness.metrics)."""
    runs = [([.5, .7, .9], [.45, .65, .88]), ([.6, .6, .8, .8], [.55, .55, .79, .79]), ([.4, .9], [.35, .87])]
    recs = [{"n_distinct": np.arange(1, len(b) + 1), "best_search": np.array(b), "incumbent_report": np.array(r),
             "best_report": np.maximum(np.array(b), np.array(r)), "cum_cost": np.full(len(b), np.nan)}
            for b, r in runs]
    cell = CellRuns("hand", label, {"algorithm": label.split(":")[0], "budget": 4, "until_optimum": True},
                    seeds=np.arange(3), samples_to_optimum=np.array([3.0, np.nan, 2.0]),
                    censored=np.array([False, True, False]),
                    final={k: np.array([r[k][-1] for r in recs]) for k in ("best_search", "incumbent_report",
                                                                             "best_report")},
                    total_cost=np.full(3, np.nan), records=recs, n_distinct=np.array([3.0, 4.0, 2.0]))
    info = OracleInfo("hand", "", 0.9, 0.88, 0.9, "cifar10_valid", "cifar10_test")
    return ResultSet("hand", "folder", [cell], {"hand": info})


def line(ax, label):
    (ln,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)


def test_fig5_draws_the_median_worked_out_by_hand():
    rs = hand_made()
    fig = build(rs, "fig5", n_boot=20)
    top, bottom = fig.axes[:2]
    x, y = line(top, "random")
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, [50, 70, 90, 90], atol=1e-9)      # medians of the three runs, in %
    # the interquartile band lies between the runs' lowest and highest values around the median
    (band,) = [c for c in top.collections if len(c.get_paths())]
    v = band.get_paths()[0].vertices
    for xi, lo, hi, med in zip([1, 2, 3, 4], [40, 60, 80, 80], [60, 90, 90, 90], [50, 70, 90, 90]):
        ys = v[np.isclose(v[:, 0], xi), 1]
        assert lo - 1e-9 <= ys.min() <= med <= ys.max() <= hi + 1e-9, (xi, ys)
    # bottom: samples to the optimum, one dot per run (2 and 3), the censored run at the
    # budget (4), the mean 3 ((2 + 3 + 4) / 3, restricted to the budget) as a diamond
    offsets = [c.get_offsets()[:, 0].tolist() for c in bottom.collections if len(c.get_offsets())]
    assert sorted(map(sorted, offsets)) == [[2.0, 3.0], [3.0], [4.0]], offsets


def test_regret_found_optimum_and_mean_figures_draw_the_numbers_worked_out_by_hand():
    rs = hand_made()
    regret = build(rs, "regret", n_boot=20)
    np.testing.assert_allclose(line(regret.axes[0], "random")[1], [40, 20, 0, 0], atol=1e-9)   # 90 - medians
    # report metric of the incumbent against the best report value (0.9): medians .45 .65 .87 .87
    np.testing.assert_allclose(line(regret.axes[1], "random")[1], [45, 25, 3, 3], atol=1e-9)
    found = build(rs, "found_optimum", n_boot=20)
    x, y = line(found.axes[0], "random")
    np.testing.assert_array_equal(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, [0, 100 / 3, 200 / 3, 200 / 3], atol=1e-9)   # C by 2, A by 3, B never
    mean = build(rs, "curves_mean", n_boot=20)
    np.testing.assert_allclose(line(mean.axes[0], "random")[1], [50, 70 + 10 / 3, 80 + 20 / 3, 80 + 20 / 3],
                               atol=1e-9)
    np.testing.assert_allclose(line(mean.axes[1], "random")[1], [45, 69, 84 + 2 / 3, 84 + 2 / 3], atol=1e-9)


def texts_outside(fig) -> list[str]:
    """The drawn texts (tick labels, axis labels, titles, legend, annotations) that reach
    past the figure's edges; a tick outside an axis's view is not drawn and not counted."""
    from matplotlib.text import Text
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    drawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo - 1e-9 * abs(hi) <= tick.get_loc() <= hi + 1e-9 * abs(hi):
                    drawn |= {id(tick.label1), id(tick.label2)}
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or (id(t) in ticks and id(t) not in drawn):
            continue
        bb = t.get_window_extent(r)
        if bb.x0 < -0.5 or bb.y0 < -0.5 or bb.x1 > W + 0.5 or bb.y1 > H + 0.5:
            out.append(t.get_text())
    tight = fig.get_tightbbox(r)
    w, h = fig.get_size_inches()
    if tight.x0 < -0.01 or tight.y0 < -0.01 or tight.x1 > w + 0.01 or tight.y1 > h + 0.01:
        out.append(f"figure content {tight} beyond {w} x {h} in")
    return out


#: PDF content-stream tokens: a stroke colour (RGB or grey), a point (moveto or lineto),
#: and the operators that paint or drop a path, close it, or restore the graphics state
_NUM = rb"-?(?:\d+\.?\d*|\.\d+)"
_PDF_TOKEN = re.compile(rb"(?<!\S)(?:(%s)\s+(%s)\s+(%s)\s+RG|(%s)\s+G|(%s)\s+(%s)\s+([ml])|(S|s|f\*?|F|B\*?|b\*?|n|Q|h))(?!\S)"
                        % ((_NUM,) * 6))


def _pdf_streams(path) -> list[bytes]:
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF-") and raw.rstrip().endswith(b"%%EOF")
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass  # an embedded font program, not drawing
    return out


def pdf_curves(path, min_span=60.0) -> dict[str, int]:
    """Stroked open polylines of a PDF, counted by stroke colour (``#rrggbb``), that run
    left to right over at least ``min_span`` points: the data lines of a figure. A legend
    handle is shorter, markers and bands are closed or filled, so an empty plot has none."""
    out: dict[str, int] = {}
    for d in _pdf_streams(path):
        colour, xs = None, []
        for t in _PDF_TOKEN.finditer(d):
            g = t.groups()
            if g[0] is not None:
                colour = "#" + "".join(f"{round(float(v) * 255):02x}" for v in g[:3])
            elif g[3] is not None:
                colour = "#" + f"{round(float(g[3]) * 255):02x}" * 3
            elif g[6] is not None:
                xs = ([] if g[6] == b"m" else xs) + [float(g[4])]
            elif g[7] == b"Q":
                colour = None
            elif g[7] == b"h":
                xs.append(float("nan"))  # a closed path is no curve
            else:
                if (g[7] in (b"S", b"s", b"B", b"B*", b"b", b"b*") and colour and len(xs) >= 2
                        and all(a <= b for a, b in zip(xs, xs[1:])) and xs[-1] - xs[0] >= min_span):
                    out[colour] = out.get(colour, 0) + 1
                xs = []
    return out


def pdf_texts(path) -> str:
    """The text a PDF shows (matplotlib's TJ arrays; Type 42 fonts write UTF-16BE)."""
    out = []
    for d in _pdf_streams(path):
        for arr in re.findall(rb"\[(.*?)\]\s*TJ", d, re.S):
            b = b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", arr))
            out.append(b.decode("utf-16-be") if len(b) % 2 == 0 and b[:1] == b"\x00" else b.decode("latin-1"))
    return "\n".join(out)


def png_pixels(path, colour: str, tol: int = 24) -> int:
    """Pixels of a PNG within ``tol`` (of 255) of ``colour`` in every channel."""
    from matplotlib import image
    img = image.imread(path)[..., :3]
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(img - rgb).max(axis=2) <= tol / 255).sum())


def assert_figure_files_show_the_lines(out, panels: dict[str, int], labels: list[str]):
    """Every figure's PDF draws one curve per label per panel, in the label's colour, and
    shows the labels (an empty plot with its legend fails: its only strokes in the colours
    are legend handles). The PNG is the same figure: the PDF's page at 200 dpi, with every
    label's colour in it (a sanity check; pixel counts depend on anti-aliasing, and the
    dots of fig5's lower panel share the colours)."""
    from matplotlib import image
    st = styles(labels)
    per_colour: dict[str, int] = {}
    for lab in labels:
        per_colour[st[lab].colour] = per_colour.get(st[lab].colour, 0) + 1
    for name, n_panels in panels.items():
        pdf = out / f"{name}.pdf"
        curves = pdf_curves(pdf)
        assert {c: curves.get(c, 0) for c in per_colour} == {c: k * n_panels for c, k in per_colour.items()}, name
        text = pdf_texts(pdf)
        assert all(lab.split(",")[0] in text for lab in labels), (name, text)
        (box,) = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+(%s)\s+(%s)\s*\]" % (_NUM, _NUM), pdf.read_bytes())
        h, w = image.imread(out / f"{name}.png").shape[:2]
        assert (abs(w - float(box[0]) / 72 * 200) <= 1, abs(h - float(box[1]) / 72 * 200) <= 1) == (True, True), name
        for colour in per_colour:
            assert png_pixels(out / f"{name}.png", colour) >= 300, (name, colour)


def legend_texts(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def flat(label: str) -> str:
    return " ".join(label.replace("\u00a0", " ").split())


# --- content ----------------------------------------------------------------------------------
def test_axis_labels_name_metrics_in_words(folder, nb201_env):
    from harness.metrics import load_folder
    figs = Figures(load_folder(folder), n_boot=50)
    fig5 = figs.build("fig5")
    top = fig5.axes[:2]
    assert [flat(ax.get_ylabel()) for ax in top] == ["CIFAR-10 validation accuracy [%]",
                                                      "CIFAR-100 validation accuracy [%]"]
    assert all("_" not in ax.get_ylabel() for ax in fig5.axes)
    # one median line per algorithm in every top panel (plus the optimum's dotted line)
    assert [len([ln for ln in ax.get_lines() if ln.get_label() in ("random", "evolution:population=20,sample_size=5")])
            for ax in top] == [2, 2]
    regret = figs.build("regret")
    labels = [flat(ax.get_ylabel()) for ax in regret.axes]
    assert "regret in CIFAR-10 test accuracy [pp]" in labels
    assert "regret in CIFAR-100 validation accuracy [pp]" in labels


def test_metric_words():
    info = OracleInfo("x", "", search_metric="imagenet16_valid", report_metric="imagenet16_test")
    assert metric_words(info, "search") == "ImageNet16-120 validation accuracy"
    assert metric_words(info, "report") == "ImageNet16-120 test accuracy"
    digits = OracleInfo("convnet-digits", "", search_metric="valid_acc", report_metric="test_acc", dataset="digits")
    assert metric_words(digits, "search") == "digits validation accuracy"
    assert metric_words(OracleInfo("t", "", search_metric="my_score"), "search") == "my_score"
    assert metric_words(None, "search") == "search metric"


def test_long_labels_and_tick_labels_stay_inside_the_figure():
    """fig5 of results/learned_sto_nb201 clipped a long algorithm label on the left and the
    right-most tick label: every figure now keeps every text inside it."""
    rs = toy(labels=("random", "lanas", LONG, "evolution"), oracles=("nb201/cifar10", "nb201/cifar100",
                                                                       "nb201/imagenet16"), budget=15_625)
    for name in FIGURES:
        fig = build(rs, name, n_boot=50)
        assert fig is not None, name
        assert texts_outside(fig) == [], name


def test_many_rows_of_samples_to_the_optimum_do_not_overlap():
    """fig5 of results/lanas_fig5_lstm_shakespeare (9 algorithms, two names wrapped over two
    lines) drew the lower panel's names and mean notes over each other: the figure now
    grows with the number of rows."""
    labels = ("cadam", "evolution", "lanas", "lanas:n_init=200,preset=paper", "lanas:preset=paper", "mcts",
              "nao", "random", "reinforce")
    fig = build(toy(labels=labels, censor=False), "fig5", n_boot=20)
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    ax = fig.axes[1]
    boxes = [t.get_window_extent(r) for t in list(ax.get_yticklabels()) + list(ax.texts) if t.get_text()]
    assert len(boxes) == 2 * len(labels)
    overlapping = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    assert overlapping == []


def test_variants_keep_the_algorithm_colour_and_differ_by_style():
    rs = toy(labels=("lanas", "lanas:split=adam", "random"))
    fig = build(rs, "fig5", n_boot=50)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")}
    a, b = lines["lanas"], lines["lanas:split=adam"]
    assert a.get_color() == b.get_color() != lines["random"].get_color()
    assert (a.get_linestyle(), a.get_marker()) != (b.get_linestyle(), b.get_marker())
    # the legend shows the same distinction
    handles = {t.get_text(): h for leg in fig.legends for t, h in zip(leg.get_texts(), leg.legend_handles)}
    assert handles["lanas"].get_color() == handles["lanas:split=adam"].get_color()
    st = styles(["lanas", "lanas:split=adam", "lanas:split=random", "mcts"])
    assert len({(s.linestyle, s.marker) for k, s in st.items() if k.startswith("lanas")}) == 3


def test_colours_are_fixed_per_algorithm():
    a = colours(["lanas", "random", "lanas:split=random"])
    b = colours(["random", "lanas", "mcts", "lanas:split=random"])
    assert a["lanas"] == b["lanas"] and a["random"] == b["random"]
    assert a["lanas:split=random"] == b["lanas:split=random"] == a["lanas"]


def test_found_optimum_has_a_confidence_band():
    from matplotlib.collections import PolyCollection
    rs = toy(runs=12)
    fig = build(rs, "found_optimum", n_boot=200)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(rs.cells)
    for line, band in zip([ln for ln in ax.get_lines() if not ln.get_label().startswith("_")], bands):
        y = line.get_ydata()
        verts = band.get_paths()[0].vertices
        assert verts[:, 1].min() <= y[y > 0].min() and verts[:, 1].max() >= y.max() - 1e-9
        assert verts[:, 1].max() > y.max() or y.max() == 100  # a real band, not the line itself


def test_legend_mentions_restricted_means_only_when_something_is_censored():
    censored = legend_texts(build(toy(censor=True, seed=1), "fig5", n_boot=20))
    assert any("restricted" in t for t in censored) and any("censored" in t for t in censored)
    clean = toy(censor=False, seed=1)
    assert not any(c.censored.any() for c in clean.cells)
    texts = legend_texts(build(clean, "fig5", n_boot=20))
    assert not any("restricted" in t or "censored" in t for t in texts) and "mean" in texts


def test_time_axis_says_what_was_measured_and_picks_its_unit():
    assert time_unit(90) == ("s", 1.0) and time_unit(600)[0] == "min" and time_unit(5 * 3600)[0] == "h"
    minutes = build(toy(cost=(1, 3)), "curves_time", n_boot=20)      # runs of ~2-100 s of training
    seconds_label = flat(minutes.axes[0].get_xlabel())
    assert "collecting CPU" in seconds_label and "GPU" not in seconds_label
    assert seconds_label.endswith("[s]")
    hours = build(toy(cost=(400, 900)), "curves_time", n_boot=20)    # up to 50 x 900 s
    assert flat(hours.axes[0].get_xlabel()).endswith("[h]") or flat(hours.axes[0].get_xlabel()).endswith("[min]")
    # the drawn x values are in that unit: the line ends where the grid (seconds) ends / unit
    line = [ln for ln in minutes.axes[0].get_lines() if not ln.get_label().startswith("_")][0]
    assert line.get_xdata().max() < 120


def test_stopped_runs_show_in_fig5():
    stopped = np.array(["stuck: asked 10000 known architectures in a row (seed 0, after 3 distinct)"]
                       + [None] * 5, dtype=object)
    rs = toy(stopped=stopped, seed=2)
    notes = [t.get_text() for t in build(rs, "fig5", n_boot=20).axes[1].texts]
    assert any("stopped" in n for n in notes)


def test_time_curves_when_the_oracle_has_costs(tmp_path):
    """A synthetic result set with training costs draws every figure, the time one included,
    with a curve per algorithm in every panel (lanas and its variant share red)."""
    rs = toy()
    paths = plot_all(rs, tmp_path, formats=("png", "pdf"), n_boot=100)
    assert {p.stem for p in paths} == set(FIGURES)
    assert_figure_files_show_the_lines(tmp_path, {"fig5": 1, "regret": 2, "found_optimum": 1, "curves_mean": 2,
                                                  "curves_time": 1}, rs.labels)
    assert "training time measured on the collecting CPU" in " ".join(pdf_texts(tmp_path / "curves_time.pdf").split())


# --- commands ---------------------------------------------------------------------------------
def test_plot_command_writes_png_and_pdf(folder, nb201_env, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli(["plot", str(folder), "--out", str(out)]) == 0
    written = capsys.readouterr().out.split()
    names = {p.split("/")[-1] for p in written}
    # no oracle here has training costs, so no time figure
    assert names == {f"{f}.{e}" for f in ("fig5", "regret", "found_optimum", "curves_mean") for e in ("png", "pdf")}
    assert all((out / n).is_file() for n in names)
    # what they show: a curve per algorithm in every panel (2 oracles), and the words
    assert_figure_files_show_the_lines(out, {"fig5": 2, "regret": 4, "found_optimum": 2, "curves_mean": 4},
                                       ["random", "evolution:population=20,sample_size=5"])
    for name in ("fig5", "regret", "found_optimum", "curves_mean"):
        text = " ".join(pdf_texts(out / f"{name}.pdf").split())
        assert "architectures sampled" in text and "nb201/cifar10" in text and "nb201/cifar100" in text, name
    assert "CIFAR-100 validation accuracy [%]" in " ".join(pdf_texts(out / "fig5.pdf").replace("\u00a0", " ").split())
    assert cli(["plot", str(folder), "--formats", "gif"]) == 2
    assert cli(["plot", str(tmp_path / "nothing")]) == 2


def test_analysis_reads_the_oracle_facts_stored_at_run_time(folder, tmp_path, monkeypatch):
    """`report` and `plot` take the optimum and metric names from experiment.json: with the
    table gone they still know them (nothing reloads or re-hashes it)."""
    from harness.metrics import load_folder
    facts = [c["oracle_facts"] for c in json.loads((folder / "experiment.json").read_text())["cells"].values()]
    assert {f["name"] for f in facts} == {"nb201/cifar10", "nb201/cifar100"}
    assert all(f["space_size"] == 15_625 and f["n_optimum"] >= 1 and f["optimum_identities"] for f in facts)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "empty"))
    import oracles.registry as registry
    monkeypatch.setattr(registry, "load_oracle", lambda *a, **k: pytest.fail("the analysis loaded an oracle"))
    rs = load_folder(folder)
    assert rs.oracles["nb201/cifar10"].optimum_search == pytest.approx(0.91606667)
    assert rs.oracles["nb201/cifar10"].search_metric == "cifar10_valid"


def test_markdown_and_json_reports(folder, nb201_env, tmp_path, capsys):
    md = tmp_path / "paper" / "results.md"
    assert cli(["report", str(folder), "--format", "md", "--output", str(md)]) == 0
    text = md.read_text()
    assert "## Samples to the global optimum" in text and "## Final quality at fixed budgets" in text
    assert "Runs computed on: " in text
    assert "| *optimal* |  | *91.61* | *94.37* | *73.49* | *73.51* |" in text
    links = [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 4 and all((md.parent / link).is_file() for link in links)
    capsys.readouterr()
    assert cli(["report", str(folder), "--format", "json", "--budgets", "50,120"]) == 0
    rep = json.loads(capsys.readouterr().out)
    c = rep["cells"][0]
    assert rep["budgets"] == [50, 120] and set(c["quality"]) == {"50", "120"}
    assert set(c["samples_to_optimum"]["ci"]) == {"mean", "median", "q1", "q3"}
    assert c["curves"]["best_search"]["x"][-1] == 120 and "best_search_regret" in c["curves"]
    assert len(rep["ratios"]) == 2 and "p_value" in rep["ratios"][0]["mann_whitney"]
    assert c["stopped"] == {"n": 0, "reasons": {}}
    assert len(rep["machines"]) == 1 and rep["machines"][0]["blas"]
    assert cli(["report", str(folder), "--budgets", "x", "--format", "json"]) == 2


def test_reports_show_stopped_runs(tmp_path, capsys):
    """A run the runner stopped (written through the results API as the runner writes one)
    is counted and explained per cell by `report` in every format, and censored where it
    stopped."""
    import pyarrow.parquet as pq
    from harness.experiment import Experiment, execute
    from harness.metrics import load_folder
    from harness.results import META_KEY, ResultsStore
    out = tmp_path / "runs"
    execute(Experiment(oracles=["convnet-digits"], algorithms=["random"], seeds=3, budget=300,
                       until_optimum=True, out=str(out)), progress=False)
    store = ResultsStore(out)
    (cell,) = store.cells()
    path = store.run_path(cell, 0)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    n = 20
    records = {k: np.asarray(table.column(k).to_pylist()[:n], dtype=object if k in ("arch_id", "arch") else None)
               for k in table.column_names if k not in ("oracle", "algorithm", "seed", "config_id")}
    reason = "stuck: asked 10000 already-evaluated architectures in a row (max_repeats)"
    summary = dict(meta["summary"], stopped=reason, censored=True, samples_to_optimum=None,
                   reached_optimum=False, n_distinct=int(records["n_distinct"][-1]),
                   **{k: float(records[k][-1]) for k in ("best_search", "best_report", "incumbent_report")})
    store.write_run(cell, 0, records, summary)

    rs = load_folder(out)
    c = rs.cells[0]
    assert c.n_stopped == 1 and c.censored[0] and c.censor_times[0] == summary["n_distinct"] < 300
    # nothing more would come from it: its final values stand for later budgets
    assert c.quality_at(300)["best_search"][0] == summary["best_search"] == c.final["best_search"][0]
    assert cli(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert " (1 stopped)" in text and "1 of 3 run(s) stopped" in text and reason in text
    assert cli(["report", str(out), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["cells"][0]["stopped"] == {"n": 1, "reasons": {reason: 1}}
    sto = rep["cells"][0]["samples_to_optimum"]
    # the stopped run counts as far as it got (20), not as the budget
    assert sto["mean"] == pytest.approx(np.where(c.censored, c.censor_times, c.samples_to_optimum).mean())
    assert sto["n_censored"] == int(c.censored.sum())
    assert cli(["report", str(out), "--format", "md", "--no-figures"]) == 0
    md = capsys.readouterr().out
    assert "## Stopped runs" in md and reason in md
