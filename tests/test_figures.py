"""Figures and reports are written and non-empty (no pixel checks); every figure kind,
including the simulated-training-time curves, is drawn."""

import json

import numpy as np
import pytest

from conftest import data_env
from harness.cli import main as cli
from harness.figures import FIGURES, colours, plot_all
from harness.metrics import CellRuns, OracleInfo, ResultSet


@pytest.fixture(scope="module")
def folder(nb201_data_dir, tmp_path_factory):
    from harness.experiment import Experiment, execute
    with data_env(nb201_data_dir):
        d = tmp_path_factory.mktemp("fig") / "runs"
        execute(Experiment(oracles=["nb201/cifar10", "nb201/cifar100"],
                           algorithms=["random", "evolution:population=20,sample_size=5"],
                           seeds=4, budget=120, until_optimum=True, out=str(d)), progress=False)
        yield d


def test_plot_command_writes_png_and_pdf(folder, nb201_env, tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli(["plot", str(folder), "--out", str(out)]) == 0
    written = capsys.readouterr().out.split()
    names = {p.split("/")[-1] for p in written}
    # no oracle here has training costs, so no time figure
    assert names == {f"{f}.{e}" for f in ("fig5", "regret", "found_optimum", "curves_mean") for e in ("png", "pdf")}
    for p in written:
        data = open(p, "rb").read()
        assert len(data) > 5000 and data[:4] in (b"\x89PNG", b"%PDF")
    assert cli(["plot", str(folder), "--formats", "gif"]) == 2
    assert cli(["plot", str(tmp_path / "nothing")]) == 2


def test_markdown_and_json_reports(folder, nb201_env, tmp_path, capsys):
    md = tmp_path / "paper" / "results.md"
    assert cli(["report", str(folder), "--format", "md", "--output", str(md)]) == 0
    text = md.read_text()
    assert "## Samples to the global optimum" in text and "## Final quality at fixed budgets" in text
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
    assert cli(["report", str(folder), "--budgets", "x", "--format", "json"]) == 2


def test_time_curves_when_the_oracle_has_costs(tmp_path):
    """A synthetic result set with training costs draws every figure, the time one included."""
    rng = np.random.default_rng(0)
    cells = []
    for label, speed in (("random", 1.0), ("lanas", 3.0), ("lanas:split=random", 1.2)):
        recs, sto, cens = [], [], []
        for _ in range(6):
            n = int(min(50, rng.geometric(speed / 60)))
            vals = np.maximum.accumulate(rng.uniform(0.5, 0.9, n))
            if n < 50:
                vals[-1] = 0.95
            nd = np.arange(1, n + 1)
            recs.append({"n_distinct": nd, "best_search": vals, "incumbent_report": vals - 0.01,
                         "best_report": vals, "cum_cost": np.cumsum(rng.uniform(100, 900, n))})
            sto.append(n if n < 50 else np.nan)
            cens.append(n == 50)
        cells.append(CellRuns("toy", label, {"algorithm": label.split(":")[0], "budget": 50, "until_optimum": True},
                              np.arange(6), np.array(sto, float), np.array(cens),
                              {k: np.array([r[k][-1] for r in recs]) for k in ("best_search", "incumbent_report", "best_report")},
                              np.array([r["cum_cost"][-1] for r in recs]), recs))
    rs = ResultSet("toy", "folder", cells, {"toy": OracleInfo("toy", "", 0.95, 0.94, 0.95, "valid", "test", "seconds")})
    paths = plot_all(rs, tmp_path, formats=("png",), n_boot=100)
    assert {p.stem for p in paths} == set(FIGURES)
    assert all(p.stat().st_size > 5000 for p in paths)


def test_colours_are_fixed_per_algorithm():
    a = colours(["lanas", "random", "lanas:split=random"])
    b = colours(["random", "lanas", "mcts", "lanas:split=random"])
    assert a["lanas"] == b["lanas"] and a["random"] == b["random"]
    assert a["lanas:split=random"] == b["lanas:split=random"] != a["lanas"]
