"""The analysis for minimised metrics, multi-fidelity runs and simulated time (issue 14).

A minimised table (perplexities: the lowest is best) is imported in a fresh data directory
and searched; ``report``, ``plot`` and ``export`` are checked against numbers computed here
by hand from the table's own values (the best is the minimum, regret = best - optimum >= 0,
labels say "lower is better", perplexities are plain numbers, not percentages). A
multi-fidelity run on ``nb201/cifar10:fidelities=all`` (Hyperband and random search, a
budget in epochs, 4 simulated workers) is checked the same way: the regret-vs-epochs curve
at given epochs against a plain pandas computation from the run files. Every analysis here
reads the oracle's facts from ``experiment.json``: loading an oracle fails the test.
"""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from conftest import data_env
from harness.cli import main as cli
from harness.curves import cell_curve
from harness.experiment import Experiment, execute
from harness.figures import Figures, build
from harness.metrics import CellRuns, OracleInfo, load_folder

# --- a minimised table ---------------------------------------------------------------------
PPL_SEEDS, PPL_BUDGET = 5, 12


def _ppl_rows() -> list[tuple]:
    """24 architectures with distinct validation perplexities in [60, 200] and test
    perplexities a little above them."""
    rng = np.random.default_rng(7)
    rows = []
    for depth in (1, 2, 3):
        for width in (16, 32, 64, 128):
            for op in ("a", "b"):
                v = round(float(rng.uniform(60, 200)), 3)
                rows.append((depth, width, op, v, round(v + float(rng.uniform(1, 5)), 3)))
    return rows


def _arch_id(depth, width, op) -> str:
    return f"depth={depth};width={width};op={op}"


@pytest.fixture(scope="module")
def ppl(tmp_path_factory):
    """A data directory holding the minimised table ``ppl`` and a results folder of random
    search and evolution on it; yields (results folder, {arch id: (valid, test)})."""
    from oracles.registry import data_dir
    from oracles.table import load_table, save_table
    root = tmp_path_factory.mktemp("ppl")
    rows = _ppl_rows()
    src = root / "ppl.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["depth", "width", "op", "valid_ppl", "test_ppl"])
        w.writerows(rows)
    with data_env(root / "data"):
        # the importer keeps perplexities as they are with --fraction, but has no option to
        # declare the direction: the oracle's declaration in the manifest says "min"
        assert cli(["oracles", "import", "table", str(src), "--arch-columns", "depth,width,op",
                    "--metric", "valid_ppl=valid_ppl", "--metric", "test_ppl=test_ppl", "--search", "valid_ppl",
                    "--report", "test_ppl", "--fraction", "--name", "ppl"]) == 0
        table = load_table(data_dir() / "ppl")
        table.meta["oracles"][0]["direction"] = "min"
        table.meta.pop("checksum")
        save_table(table, data_dir() / "ppl")
        out = root / "runs"
        execute(Experiment(oracles=["ppl"], algorithms=["random", "evolution:population=4,sample_size=2"],
                           seeds=PPL_SEEDS, budget=PPL_BUDGET, out=str(out)), progress=False)
        values = {_arch_id(*r[:3]): (r[3], r[4]) for r in rows}
        yield out, values


@pytest.fixture
def no_oracle_loading(monkeypatch):
    """The analysis must read the facts stored at run time: any oracle load fails."""
    import oracles.registry as registry
    monkeypatch.setattr(registry, "load_oracle", lambda *a, **k: pytest.fail("the analysis loaded an oracle"))


def _hand(folder, values) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """Per algorithm label and seed, the sequence of arch ids each run evaluated and, from
    the table's values (not the record columns), the running minimum of the validation
    perplexity and the test perplexity of the architecture attaining it first."""
    df = pd.read_parquet(folder / "runs")
    out: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for (label, seed), run in df.groupby(["algorithm", "seed"], observed=True):
        run = run.sort_values("sample")
        best, inc, bests, incs = np.inf, np.nan, [], []
        for a in run["arch_id"]:
            v, t = values[a]
            if v < best:
                best, inc = v, t
            bests.append(best)
            incs.append(inc)
        out.setdefault(label, {})[int(seed)] = {"best": np.array(bests), "incumbent": np.array(incs),
                                                "n_distinct": run["n_distinct"].to_numpy()}
    return out


def test_records_and_facts_of_a_minimised_table(ppl, no_oracle_loading):
    folder, values = ppl
    opt_valid = min(v for v, _ in values.values())
    best_test = min(t for _, t in values.values())
    rs = load_folder(folder)
    info = rs.oracles["ppl"]
    assert info.direction == "min" and info.minimise and not info.multi_fidelity
    assert info.optimum_search == pytest.approx(opt_valid) and info.best_report == pytest.approx(best_test)
    assert info.fidelities == [0] and info.clock_unit == "epochs"
    assert not info.is_fraction("search") and not info.is_fraction("report")
    assert not rs.missing_facts and rs.time_axes("ppl") == []
    hand = _hand(folder, values)
    for c in rs.cells:
        for i, seed in enumerate(c.seeds):
            h = hand[c.label][int(seed)]
            # the records hold the metric's own values: running minima, not negated scores
            assert np.allclose(c.records[i]["best_search"], h["best"])
            assert np.allclose(c.records[i]["incumbent_report"], h["incumbent"])
            assert c.final["best_search"][i] == pytest.approx(h["best"][-1]) and h["best"][-1] >= opt_valid
    # regrets are >= 0: best - optimum for a minimised metric
    r = info.regret(np.array([opt_valid, opt_valid + 3.5]), "best_search")
    assert r.tolist() == pytest.approx([0.0, 3.5])


def test_report_numbers_of_a_minimised_table(ppl, no_oracle_loading, capsys):
    folder, values = ppl
    opt_valid = min(v for v, _ in values.values())
    best_test = min(t for _, t in values.values())
    hand = _hand(folder, values)
    assert cli(["report", str(folder), "--format", "json", "--budgets", "5,12"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["oracles"]["ppl"]["direction"] == "min"
    for c in rep["cells"]:
        runs = hand[c["algorithm"]]
        at5 = np.array([runs[s]["best"][runs[s]["n_distinct"] <= 5][-1] for s in c["seeds"]])
        final = np.array([runs[s]["best"][-1] for s in c["seeds"]])
        final_inc = np.array([runs[s]["incumbent"][-1] for s in c["seeds"]])
        assert c["direction"] == "min"
        assert c["quality"]["5"]["best_search"]["mean"] == pytest.approx(at5.mean())
        assert c["quality"]["12"]["best_search"]["mean"] == pytest.approx(final.mean())
        assert c["best_search"]["mean"] == pytest.approx(final.mean())
        reg = c["final_regret"]["best_search"]
        assert reg["mean"] == pytest.approx((final - opt_valid).mean()) and reg["mean"] >= 0
        assert reg["median"] == pytest.approx(np.median(final - opt_valid))
        assert reg["mean_ci"][0] <= reg["mean"] <= reg["mean_ci"][1]
        assert c["final_regret"]["incumbent_report"]["mean"] == pytest.approx((final_inc - best_test).mean())
        curve = c["curves"]["best_search_regret"]
        k = curve["x"].index(5)
        assert curve["median"][k] == pytest.approx(np.median(at5 - opt_valid))
        assert min(v for v in curve["q1"] if v is not None) >= 0
    # text: plain numbers (no percent), the minimised oracle named
    assert cli(["report", str(folder)]) == 0
    text = capsys.readouterr().out
    rnd = next(c for c in rep["cells"] if c["algorithm"] == "random")
    m, sd = rnd["best_search"]["mean"], rnd["best_search"]["std"]
    assert f"{m:.2f} ± {sd:.2f}" in text and "%" not in text.splitlines()[0]
    assert "minimised (lower is better" in text and f"{100 * m:.2f}" not in text
    # Markdown: no [%], "lower is better" in the headers, the optimal row in perplexity
    assert cli(["report", str(folder), "--format", "md", "--no-figures", "--budgets", "12"]) == 0
    md = capsys.readouterr().out
    assert "| algorithm | budget | ppl valid_ppl (lower is better) | ppl test_ppl (lower is better) |" in md
    assert f"| *optimal* |  | *{opt_valid:.2f}* | *{best_test:.2f}* |" in md
    assert f"| random | 12 | {m:.2f} ± {sd:.2f} |" in md and "[%]" not in md


def test_figures_of_a_minimised_table(ppl, no_oracle_loading, tmp_path, capsys):
    folder, values = ppl
    opt_valid = min(v for v, _ in values.values())
    hand = _hand(folder, values)
    rs = load_folder(folder)
    figs = Figures(rs, n_boot=50)
    fig5 = figs.build("fig5")
    ax = fig5.axes[0]
    label = " ".join(ax.get_ylabel().split())
    assert label == "validation perplexity (lower is better)" and "%" not in label
    # the optimum's line is at the perplexity itself (not x100), and the median line is the
    # median over runs of the running minimum
    assert any(np.allclose(ln.get_ydata(), opt_valid) for ln in ax.get_lines() if ln.get_linestyle() == ":")
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "random")
    runs = hand["random"]
    x = np.asarray(line.get_xdata())
    for n in (1, 4, 12):
        expect = np.median([r["best"][r["n_distinct"] <= n][-1] for r in runs.values()])
        assert np.asarray(line.get_ydata())[x == n][0] == pytest.approx(expect)
    reg = figs.build("regret")
    assert [" ".join(a.get_ylabel().split()) for a in reg.axes] == ["regret in validation perplexity",
                                                                       "regret in test perplexity"]
    line = next(ln for ln in reg.axes[0].get_lines() if ln.get_label() == "random")
    y = np.asarray(line.get_ydata())
    expect = np.median([r["best"][r["n_distinct"] <= 4][-1] - opt_valid for r in runs.values()])
    assert y[np.asarray(line.get_xdata()) == 4][0] == pytest.approx(expect) and (y >= 0).all()
    mean = figs.build("curves_mean")
    assert " ".join(mean.axes[1].get_ylabel().split()) == "test perplexity of the incumbent (lower is better)"
    # plot: no time figures for one worker and one fidelity
    assert cli(["plot", str(folder), "--out", str(tmp_path / "f"), "--formats", "png"]) == 0
    assert {p.rsplit("/", 1)[-1] for p in capsys.readouterr().out.split()} == {"fig5.png", "regret.png",
                                                                                 "curves_mean.png"}


def test_export_of_a_minimised_table(ppl, no_oracle_loading, tmp_path, capsys):
    folder, values = ppl
    opt_valid = min(v for v, _ in values.values())
    hand = _hand(folder, values)
    out = tmp_path / "all.csv"
    assert cli(["export", str(folder), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns[:6]) == ["oracle", "algorithm", "seed", "config_id", "stopped", "direction"]
    assert set(df.direction) == {"min"}
    for (label, seed), run in df.groupby(["algorithm", "seed"]):
        assert np.allclose(run.sort_values("sample").best_search, hand[label][seed]["best"])
    assert cli(["export", str(folder), "--rliable", "--metric", "best_search", "--at", "5",
                "--out", str(tmp_path / "s")]) == 0
    assert "minimised task(s) ppl" in capsys.readouterr().err
    scores = dict(np.load(tmp_path / "s.npz"))
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["direction"] == {"ppl": "min"} and meta["axis"] == "samples"
    seeds = meta["algorithms"]["random"]["seeds"]
    at5 = [hand["random"][s]["best"][hand["random"][s]["n_distinct"] <= 5][-1] for s in seeds]
    assert scores["random"][:, 0].tolist() == pytest.approx(at5)
    assert cli(["export", str(folder), "--rliable", "--metric", "best_search_regret", "--at", "5",
                "--out", str(tmp_path / "r")]) == 0
    regret = dict(np.load(tmp_path / "r.npz"))["random"][:, 0]
    assert regret.tolist() == pytest.approx([v - opt_valid for v in at5]) and (regret >= 0).all()
    assert json.loads((tmp_path / "r.json").read_text())["lower_is_better"] is True


def test_direction_decides_the_sign_of_every_regret():
    """The same records read as a maximised and as a minimised metric: curves and report
    regrets are optimum - value and value - optimum, both >= 0."""
    from harness.summary import final_regret
    recs = [{"n_distinct": np.array([1, 2, 3]), "best_search": np.array(b, float),
             "incumbent_report": np.array(b, float) + 1, "best_report": np.array(b, float) + 1,
             "cum_cost": np.full(3, np.nan), "cum_epochs": np.array([5.0, 10, 15]), "finish": np.array([5.0, 10, 15])}
            for b in ([0.7, 0.8, 0.9], [0.6, 0.6, 0.85])]
    low = [{k: (2 - v if k in ("best_search", "incumbent_report", "best_report") else v) for k, v in r.items()}
           for r in recs]
    for rec, direction, opt in ((recs, "max", 0.95), (low, "min", 1.05)):
        cell = CellRuns("o", "a", {"algorithm": "a", "budget": 3, "until_optimum": False}, np.arange(2),
                        np.full(2, np.nan), np.zeros(2, bool),
                        {k: np.array([r[k][-1] for r in rec]) for k in ("best_search", "incumbent_report", "best_report")},
                        np.full(2, np.nan), rec)
        cv = cell_curve(cell, "best_search", grid=np.array([1, 2, 3]), regret_to=opt, n_boot=20, direction=direction)
        assert cv.bands["median"].tolist() == pytest.approx([0.3, 0.25, 0.075])
        cv = cell_curve(cell, "best_search", "epochs", np.array([5.0, 12.0]), opt, 20, direction)
        assert cv.bands["median"].tolist() == pytest.approx([0.3, 0.25]) and cv.x_unit == "epochs"
        info = OracleInfo("o", "", optimum_search=opt, best_report=opt + (1 if direction == "max" else -1) * 0.01,
                          direction=direction)
        reg = final_regret(cell, info, n_boot=50)
        assert reg["best_search"]["mean"] == pytest.approx((0.05 + 0.1) / 2)
    # older facts (no direction, no fidelities) read as maximised, one fidelity
    old = OracleInfo.from_dict({"name": "o", "checksum": "c", "optimum_search": 0.9, "units": {}})
    assert old.direction == "max" and not old.multi_fidelity and old.clock_unit is None
    assert old.regret(np.array([0.85]), "best_search").tolist() == pytest.approx([0.05])


def test_a_folder_without_stored_facts_is_read_without_loading_the_table(ppl, no_oracle_loading, tmp_path, capsys):
    """Folders written before `run` stored the facts: nothing is reloaded; the report says
    what is missing and how to add it."""
    import shutil
    folder, _ = ppl
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    manifest = json.loads((old / "experiment.json").read_text())
    for cell in manifest["cells"].values():
        cell.pop("oracle_facts")
    (old / "experiment.json").write_text(json.dumps(manifest))
    rs = load_folder(old)
    assert rs.missing_facts == ["ppl"] and rs.oracles["ppl"].optimum_search is None
    assert "run the same `nas-harness run` command again" in rs.facts_note()
    assert cli(["report", str(old)]) == 0
    assert "stores no facts about ppl" in capsys.readouterr().out
    assert build(rs, "regret", n_boot=20) is None


# --- multi-fidelity runs on NB201 ------------------------------------------------------------
MF_ORACLE = "nb201/cifar10:fidelities=all"
MF_BUDGET = 3000
MF_SEEDS = 4


@pytest.fixture(scope="module")
def mf(nb201_data_dir, tmp_path_factory):
    """Hyperband and random search on NB201 (12 and 200 epochs), an epoch budget, 4 simulated
    workers per run; yields (results folder, the oracle's optimum validation accuracy, the
    best test accuracy in the space)."""
    from oracles.registry import load_oracle
    out = tmp_path_factory.mktemp("mf") / "runs"
    with data_env(nb201_data_dir):
        execute(Experiment(oracles=[MF_ORACLE], algorithms=["hyperband", "random"], seeds=MF_SEEDS,
                           budget=MF_BUDGET, budget_kind="epochs", workers_per_run=4, out=str(out)), progress=False)
        oracle = load_oracle("nb201/cifar10")      # the same 200-epoch values, for the hand computation
        yield out, float(oracle.optimum.value), float(np.nanmax(oracle.report_values))


def _plain_regret_at(folder, label: str, optimum: float, xs, along: str = "epochs", top: int = 200):
    """Per run (sorted by seed) and x: optimum minus the best validation accuracy among the
    200-epoch results told by the time ``along`` (cumulative epochs paid, or the clock)
    reached x; NaN before the first such result. Straight from the run files."""
    df = pd.read_parquet(folder / "runs")
    out = []
    for seed, run in sorted(df[df.algorithm == label].groupby("seed", observed=True)):
        run = run.sort_values("sample")
        pos = run.epochs.cumsum() if along == "epochs" else run.finish
        row = []
        for x in xs:
            told = run[(pos <= x).to_numpy() & (run.fidelity == top).to_numpy()]
            row.append(optimum - told.search.max() if len(told) else np.nan)
        out.append(row)
    return np.array(out)


def test_regret_against_epochs_matches_a_plain_computation(mf, no_oracle_loading):
    folder, optimum, _ = mf
    rs = load_folder(folder)
    info = rs.oracles[MF_ORACLE]
    assert info.multi_fidelity and info.fidelities == [12, 200] and info.fidelity_kind == "restart"
    assert info.clock_unit == "epochs" and rs.time_axes(MF_ORACLE) == ["epochs", "clock"]
    xs = [600.0, 1000.0, 1500.0, 2200.0, 2999.0]
    for c in rs.cells:
        assert c.budget_kind == "epochs" and c.workers_per_run == 4
        plain = _plain_regret_at(folder, c.label, optimum, xs)
        assert not np.isnan(plain).any(), "every run has a 200-epoch result by the first x"
        cv = cell_curve(c, "best_search", "epochs", np.array(xs), regret_to=info.optimum_search, n_boot=50)
        assert cv.bands["median"] == pytest.approx(np.median(plain, axis=0))
        assert cv.bands["q1"] == pytest.approx(np.percentile(plain, 25, axis=0))
        assert cv.bands["q3"] == pytest.approx(np.percentile(plain, 75, axis=0))
        assert cv.bands["mean"] == pytest.approx(plain.mean(axis=0))
        # on the clock, at two thirds of the shortest run (random search: 15
        # trials of 200 epochs end at 800), and past the end of every run (undefined)
        end = min(r["finish"][-1] for r in c.records)
        assert end < MF_BUDGET  # 4 workers: the clock runs slower than the epochs paid
        clock = _plain_regret_at(folder, c.label, optimum, [2 / 3 * end], along="clock")
        cv = cell_curve(c, "best_search", "clock", np.array([2 / 3 * end, MF_BUDGET]), info.optimum_search, 50,
                        "max", "epochs")
        assert cv.bands["median"][0] == pytest.approx(np.median(clock[:, 0])) and np.isnan(cv.bands["median"][1])
        # the quality read at a point of an axis: undefined past a run's end (it did not get there)
        q = c.quality_along("clock", 2 / 3 * end)["best_search"]
        assert (info.optimum_search - q).tolist() == pytest.approx(clock[:, 0].tolist())
        assert np.isnan(c.quality_along("clock", MF_BUDGET)["best_search"]).all()
    # the figure draws the same numbers (in percentage points) on its own grid
    fig = build(rs, "regret_epochs", n_boot=50)
    ax = fig.axes[0]
    assert " ".join(ax.get_xlabel().split()) == "training epochs paid, summed over the trials"
    assert " ".join(ax.get_ylabel().split()) == "regret in CIFAR-10 validation accuracy [pp]"
    for label in ("hyperband", "random"):
        line = next(ln for ln in ax.get_lines() if ln.get_label() == label)
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        pick = np.linspace(0, len(x) - 1, 7).astype(int)
        plain = _plain_regret_at(folder, label, optimum, x[pick])
        assert y[pick] == pytest.approx(100 * np.median(plain, axis=0))


def test_multi_fidelity_report_and_plot(mf, no_oracle_loading, tmp_path, capsys):
    folder, optimum, best_test = mf
    df = pd.read_parquet(folder / "runs")
    assert cli(["report", str(folder), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for c in rep["cells"]:
        runs = df[df.algorithm == c["algorithm"]].groupby("seed", observed=True)
        epochs = runs.epochs.sum().to_numpy()
        clock = runs.finish.max().to_numpy()
        top = df[(df.algorithm == c["algorithm"]) & (df.fidelity == 200)].groupby("seed", observed=True)
        final = optimum - top.search.max().to_numpy()
        assert epochs.min() >= MF_BUDGET
        sp = c["spent"]
        assert sp["epochs"]["mean"] == pytest.approx(epochs.mean()) and sp["clock_unit"] == "epochs"
        assert sp["clock"]["mean"] == pytest.approx(clock.mean())
        assert sp["epochs"]["mean_ci"][0] <= sp["epochs"]["mean"] <= sp["epochs"]["mean_ci"][1]
        reg = c["final_regret"]["best_search"]
        assert reg["mean"] == pytest.approx(final.mean()) and reg["median"] == pytest.approx(np.median(final))
        assert reg["n"] == MF_SEEDS and reg["median_ci"][0] <= reg["median"] <= reg["median_ci"][1]
        assert set(c["curves_epochs"]) == {"best_search_regret", "incumbent_report_regret"}
        assert "curves_clock" in c
    assert cli(["report", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "epochs paid" in text and "simulated time" in text and "final regret" in text
    assert cli(["report", str(folder), "--format", "md", "--no-figures"]) == 0
    md = capsys.readouterr().out
    assert "## Epochs, simulated time and final regret" in md and f"{MF_BUDGET:,} epochs (end)" in md
    # plot chooses the epochs and clock figures for multi-fidelity runs with 4 workers
    assert cli(["plot", str(folder), "--out", str(tmp_path / "f"), "--formats", "png"]) == 0
    names = {p.rsplit("/", 1)[-1] for p in capsys.readouterr().out.split()}
    assert {"regret_epochs.png", "regret_clock.png", "fig5.png", "regret.png"} <= names
    # rliable scores at 1,000 epochs paid
    assert cli(["export", str(folder), "--rliable", "--metric", "best_search_regret", "--axis", "epochs",
                "--at", "1000", "--out", str(tmp_path / "e")]) == 0
    scores = dict(np.load(tmp_path / "e.npz"))
    plain = _plain_regret_at(folder, "random", optimum, [1000.0])[:, 0]
    assert scores["random"][:, 0].tolist() == pytest.approx(plain.tolist())
