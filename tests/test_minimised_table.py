"""A table whose metric is minimised (perplexity), from import to run: `oracles import table
--direction min` declares it, the oracle's optimum is the smallest value, a run stops there,
and `oracles info` shows plain numbers, not percentages."""

import itertools

import pytest

from harness.cli import main
from oracles.registry import load_oracle


@pytest.fixture
def ppl_env(tmp_path, monkeypatch):
    rows = ["a,b,ppl_valid,ppl_test"]
    for a, b in itertools.product(range(4), range(6)):
        # (a, b) = (2, 3) is the best cell: the lowest validation perplexity
        rows.append(f"{a},{b},{60 + abs(a - 2) * 3 + abs(b - 3) * 0.5:.3f},{61 + abs(a - 2) * 3 + abs(b - 3):.3f}")
    (tmp_path / "ppl.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    assert main(["oracles", "import", "table", str(tmp_path / "ppl.csv"), "--arch-columns", "a,b",
                 "--metric", "valid=ppl_valid", "--metric", "test=ppl_test", "--direction", "min",
                 "--name", "ppl"]) == 0
    return tmp_path


def test_the_optimum_of_a_minimised_table_is_its_smallest_value(ppl_env):
    oracle = load_oracle("ppl")
    assert oracle.direction == "min"
    assert oracle.optimum.value == 60.0 and oracle.optimum.report == 61.0
    assert oracle.optimum.identities == {oracle.space.identity(oracle.space.arch(2 * 6 + 3))}
    # values are kept as they are (not read as percentages)
    assert max(oracle.search_values) == 60 + 2 * 3 + 3 * 0.5


def test_a_run_until_the_optimum_stops_at_the_lowest_perplexity(ppl_env, capsys):
    assert main(["run", "--oracle", "ppl", "--algorithm", "random", "--seeds", "3", "--until-optimum",
                 "--out", str(ppl_env / "runs"), "--quiet", "--format", "json"]) == 0
    import pandas as pd
    df = pd.read_parquet(ppl_env / "runs" / "runs")
    for _, run in df.groupby("seed"):
        assert run["search"].iloc[-1] == 60.0                 # the last query is the optimum
        assert (run["search"].iloc[:-1] > 60.0).all()
        assert list(run["best_search"]) == list(run["search"].cummin())


def test_oracles_info_shows_plain_numbers_and_the_direction(ppl_env, capsys):
    capsys.readouterr()
    assert main(["oracles", "info", "ppl"]) == 0
    out = capsys.readouterr().out
    assert "minimised (lower is better)" in out
    assert "optimum       60 search" in out and "%" not in out.split("optimum")[1]
