"""The command line: the happy path, and one clear line for every user mistake."""

import json

import pytest

from harness.cli import main as cli


def run(args, capsys):
    code = cli(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_report_and_json(nb201_env, tmp_path, capsys):
    out = tmp_path / "o"
    code, text, _ = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--seeds", "3",
                         "--budget", "50", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "nb201/cifar10" in text and f"results in {out}" in text
    code, text, _ = run(["report", str(out), "--format", "json"], capsys)
    rows = json.loads(text)["cells"]
    assert code == 0 and rows[0]["runs"] == 3 and rows[0]["budget"] == 50
    # the numbers are the runs' own: each run file's best search value and the report value
    # of the first architecture reaching it, read with plain Python
    best, its_report = _finals(out)
    assert len(best) == 3
    mean, std = sum(best) / 3, (sum((b - sum(best) / 3) ** 2 for b in best) / 2) ** 0.5
    assert rows[0]["best_search"]["mean"] == pytest.approx(mean, abs=1e-12)
    assert rows[0]["best_search"]["std"] == pytest.approx(std, abs=1e-12)       # over runs, n - 1
    assert rows[0]["incumbent_report"]["mean"] == pytest.approx(sum(its_report) / 3, abs=1e-12)
    code, text, _ = run(["report", str(out)], capsys)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("nb201/cifar10")]
    assert code == 0 and line.split()[1] == "random" and line.split()[2] == "3"
    assert f"{100 * mean:.2f} ± {100 * std:.2f}" in line


def _finals(out):
    """Per run file: the best search value and the report value of the first architecture
    that reached it."""
    import pyarrow.parquet as pq
    best, its_report = [], []
    for path in sorted(out.glob("runs/*/*/seed-*.parquet")):
        t = pq.read_table(path, columns=["search", "report"]).to_pydict()
        top = max(t["search"])
        best.append(top)
        its_report.append(t["report"][t["search"].index(top)])
    return best, its_report


def test_experiment_file(nb201_env, tmp_path, capsys):
    f = tmp_path / "e.toml"
    f.write_text(f'oracles = ["nb201/cifar100"]\nalgorithms = ["random"]\nseeds = 2\nbudget = 20\n'
                 f'out = "{tmp_path / "o"}"\n')
    code, text, _ = run(["run", str(f), "--quiet"], capsys)
    assert code == 0 and "nb201/cifar100" in text
    # what the file says was run: 2 seeds of 20 architectures on nb201/cifar100
    import pyarrow.parquet as pq
    runs = sorted((tmp_path / "o").glob("runs/*/*/seed-*.parquet"))
    assert [p.name for p in runs] == ["seed-000000.parquet", "seed-000001.parquet"]
    for p in runs:
        t = pq.read_table(p, columns=["oracle", "n_distinct"]).to_pydict()
        assert set(t["oracle"]) == {"nb201/cifar100"} and max(t["n_distinct"]) == 20


def test_oracles_list_info_query(nb201_env, capsys):
    code, text, _ = run(["oracles", "list"], capsys)
    assert code == 0 and "nb201/imagenet16" in text and "installed" in text
    code, text, _ = run(["oracles", "info", "nb201/cifar10"], capsys)
    assert code == 0 and "91.6067%" in text and "15,625" in text and "1 architecture(s) tied" in text
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    code, text, _ = run(["oracles", "query", "nb201/cifar10", arch], capsys)
    d = json.loads(text)
    assert code == 0 and d["index"] == 6111 and d["is_optimum"] and d["cifar10_test"] == pytest.approx(0.943733, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["run", "--oracle", "nb999/x", "--algorithm", "random", "--budget", "5"], "unknown oracle 'nb999/x'"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "magic", "--budget", "5"], "unknown algorithm 'magic'"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--budget", "0"], "budget must be"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--seeds", "-3"], "seeds must be"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random:replace=maybe"], "true or false"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random:colour=red"], "unknown parameter"),
    (["run", "--oracle", "nb201/cifar10:flavour=x", "--algorithm", "random"], "unknown oracle option"),
    (["run", "--budget", "ten"], "--budget: not a number: 'ten'"),
    (["oracles", "query", "nb201/cifar10", "|conv~0|"], "bad NB201 string"),
    (["report", "/nonexistent/folder"], "not a results folder"),
    (["run", "/nonexistent/e.toml"], "does not exist"),
])
def test_user_mistakes_get_one_line(nb201_env, tmp_path, capsys, args, message):
    if args[0] == "run":
        args = [*args, "--out", str(tmp_path / "o"), "--quiet"]
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_names_the_import_command(empty_data_env, tmp_path, capsys):
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--out",
                        str(tmp_path / "o")], capsys)
    assert code == 2 and "nas-harness oracles import nb201" in err and err.count("\n") == 1


def test_tampered_table_is_refused(nb201_data_dir, tmp_path, monkeypatch, capsys):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(nb201_data_dir, data)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    values = data / "nb201" / "values.npy"
    raw = bytearray(values.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in one accuracy
    values.write_bytes(bytes(raw))
    code, _, err = run(["oracles", "info", "nb201/cifar10"], capsys)
    assert code == 2 and "does not match its checksum" in err and err.count("\n") == 1


# --- nas-harness algorithms list|info (issue 12, item 7) ---------------------------------------
def test_algorithms_list_shows_every_registered_algorithm(capsys):
    from algorithms import REGISTRY, algorithm_class
    code, text, err = run(["algorithms", "list"], capsys)
    assert code == 0 and not err
    lines = text.splitlines()
    for name in REGISTRY:
        cls = algorithm_class(name)
        assert any(line.startswith(name + " ") and cls.one_line() in line for line in lines), name
        assert cls.paper, f"{name} does not name its paper"
    code, text, _ = run(["algorithms", "list", "--format", "json"], capsys)
    rows = json.loads(text)
    from algorithms.one_shot import ONE_SHOT_REGISTRY
    # the query-based built-ins, then the weight-sharing ones, then plugins
    assert [r["name"] for r in rows if r["plugin"] is None] == list(REGISTRY) + list(ONE_SHOT_REGISTRY)
    one_shot = {"darts", "gdas", "enas", "rsps", "ddas"}
    assert {r["name"] for r in rows if r.get("kind") == "one-shot"} == set(ONE_SHOT_REGISTRY) == one_shot
    assert {r["name"] for r in rows if r["needs"]} == {"reinforce", "cadam", "nao", "nases", "mlpnas"} | one_shot
    code, text, _ = run(["algorithms", "info", "darts"], capsys)
    assert code == 0 and "order = 1" in text and "preset = 'cpu'" in text


def test_algorithms_info_shows_presets_defaults_and_paper(capsys):
    code, text, err = run(["algorithms", "info", "lanas"], capsys)
    assert code == 0 and not err
    assert "Sample-Efficient Neural Architecture Search by Learning Action Space" in " ".join(text.split())
    assert "authors (default): c=0.1, n_select=20, n_init=10, height=5" in text
    assert "paper: c=0.5, n_select=100, n_init=2000, height=5" in text
    assert "  train_routing = 'measured'" in text and "  min_split = 2" in text
    assert "  c = from the preset (authors: 0.1, paper: 0.5)" in text
    assert "`" not in text                      # docstring markup printed as plain text
    code, text, _ = run(["algorithms", "info", "cadam"], capsys)
    assert "table41 (default): actor_lr=0.0001" in text and "printed: actor_lr=1e-08" in text
    assert "  hidden = 128/256/128" in text      # as written on the command line
    code, text, _ = run(["algorithms", "info", "evolution", "--format", "json"], capsys)
    d = json.loads(text)
    assert d["default_preset"] == "novel" and d["presets"]["published"] == {"novel_children": False}
    params = {p["name"]: p for p in d["parameters"]}
    assert params["population"]["default"] == 500 and "P" in params["population"]["meaning"]


def test_every_parameter_of_every_algorithm_is_documented():
    from algorithms import REGISTRY, algorithm_class
    for name in REGISTRY:
        cls = algorithm_class(name)
        docs = cls.param_docs()
        assert set(cls.param_names()) == set(docs), name
        assert all(docs.values()), name
        for preset, values in cls.presets.items():
            assert set(values) <= set(cls.param_names()), (name, preset)


@pytest.mark.parametrize("args", [["algorithms", "info", "magic"], ["algorithms", "info"],
                                  ["algorithms", "list", "--format", "yaml"]])
def test_algorithms_mistakes_get_one_line(capsys, args):
    code, out, err = run(args, capsys)
    assert code == 2 and not out
    assert err.count("\n") == 1 and "Traceback" not in err
    if "magic" in args:
        assert "unknown algorithm 'magic'; choose from asha, bohb, cadam, evolution, hyperband" in err


def test_algorithms_info_works_without_torch():
    import subprocess
    import sys
    # torch made unimportable: list and info must not import it, and say what is needed
    code = ("import sys; sys.modules['torch'] = None\n"
            "from harness.cli import main\n"
            "a = main(['algorithms', 'info', 'cadam']); b = main(['algorithms', 'list'])\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "sys.exit(a or b)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "needs: the 'learned' extra (pip install 'nas-harness[learned]'; not installed here)" in p.stdout


def test_help_texts_are_plain(capsys):
    import argparse
    from harness.cli import build_parser

    def parsers(p):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    seen = 0
    for p in parsers(build_parser()):
        assert "`" not in p.format_help(), p.prog
        seen += 1
    assert seen > 15
    code, text, _ = run(["--help"], capsys)
    assert code == 0 and "algorithms" in text and "`" not in text


def test_the_main_jobs_algorithms_build_and_show_both_lanas_fits():
    """`nas-harness run` with no arguments: every algorithm spec builds with the registry's
    parser, and LaNAS appears with both node fits (README: the default is the weaker one on
    convnet-digits)."""
    from algorithms import make_algorithm, parse_spec
    from harness.commands.run import DEFAULT_ALGORITHMS
    built = [make_algorithm(*parse_spec(spec)) for spec in DEFAULT_ALGORITHMS]
    splits = {a.get_params()["split"] for a in built if a.name == "lanas"}
    assert splits == {"adam", "lstsq"}
    assert {a.name for a in built} == {"random", "evolution", "mcts", "lanas", "reinforce"}
