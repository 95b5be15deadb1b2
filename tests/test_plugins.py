"""Plugins (issue 19): algorithms, oracle factories and space kinds from other packages.

The example plugin package ``tests/plugin_example`` (distribution ``nas-harness-hillclimb``,
entry point ``hillclimb``) must be installed, as ``.ci/run`` does; it is found by name and
by import path, runs on the real NB201 table, is listed with its package and version, and
runs record where its code came from. Broken plugins (a module that does not exist, a class
that is not an algorithm, a name two packages claim) are installed for one test as a bare
``*.dist-info`` folder on ``sys.path``: what an installed package is to
``importlib.metadata``, without pip or a virtual environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.cli import main as cli
from harness.results import META_KEY

DIST = "nas-harness-hillclimb"
EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


@pytest.fixture(scope="module")
def plugin_version() -> str:
    """The installed example plugin's version; it must be installed where CI says so."""
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        msg = f"the example plugin is not installed: pip install -e {EXAMPLE}"
        if os.environ.get("NAS_HARNESS_REQUIRE_OPTIONAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def run(args, capsys):
    code = cli(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_metas(out: Path) -> list[dict]:
    """The metadata of every run file under ``out``, by label then seed."""
    metas = [json.loads(pq.read_schema(p).metadata[META_KEY]) for p in sorted(out.glob("runs/*/*/*.parquet"))]
    return sorted(metas, key=lambda m: (m["label"], m["seed"]))


def make_dist(root: Path, name: str, entry_points: dict[str, dict[str, str]], version: str = "0.0.1") -> Path:
    """An installed distribution as importlib.metadata sees one: ``NAME-VERSION.dist-info``
    with METADATA and entry_points.txt, in ``root`` (put ``root`` on sys.path)."""
    d = root / f"{name.replace('-', '_')}-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (d / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()))
    return d


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder on sys.path (and on PYTHONPATH, for worker processes) for test plugins;
    discovery forgets it afterwards."""
    from oracles.plugins import refresh
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    refresh()
    yield root
    refresh()


# --- the example plugin, through the whole CLI ----------------------------------------------
def test_example_plugin_is_found_by_name_and_runs_on_nb201(nb201_env, tmp_path, capsys, plugin_version):
    from nas_hillclimb import HillClimber
    out = tmp_path / "o"
    code, text, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "hillclimb",
                           "--algorithm", "hillclimb:preset=steepest,max_draws=50", "--seeds", "3",
                           "--until-optimum", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    metas = run_metas(out)
    labels = ("hillclimb", "hillclimb:max_draws=50,preset=steepest")
    assert [(m["label"], m["seed"]) for m in metas] == [(lab, s) for lab in labels for s in (0, 1, 2)]
    # parameters and presets as for a built-in: every hyper-parameter recorded, coerced
    assert metas[3]["config"]["params"] == HillClimber(preset="steepest", max_draws=50).get_params()
    assert metas[0]["config"]["params"] == HillClimber().get_params()
    for m in metas:
        s = m["summary"]
        assert s["reached_optimum"] and not s["censored"] and not s.get("failed")
        # a genuine local search: on NB201 it needs a few hundred samples at most, where random
        # search needs (15,625 + 1) / 2 on average (deterministic for these seeds and table)
        assert s["samples_to_optimum"] < 1000 and s["n_repeats"] == 0
        assert s["diagnostics"]["climbs"] >= 1 and s["diagnostics"]["moves"] >= 1


def test_an_import_path_names_the_same_class(nb201_env, tmp_path, capsys, plugin_version):
    out = tmp_path / "o"
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "hillclimb:preset=iterated",
                        "--algorithm", "nas_hillclimb.climber.HillClimber:preset=iterated",
                        "--algorithm", "nas_hillclimb.HillClimber:preset=iterated",   # the package's re-export
                        "--seeds", "2", "--budget", "60", "--workers-per-run", "3", "--out", str(out), "--quiet"],
                       capsys)
    assert code == 0, err
    by_label: dict[str, list[str]] = {}
    for p in sorted(out.glob("runs/*/*/*.parquet")):
        meta = json.loads(pq.read_schema(p).metadata[META_KEY])
        by_label.setdefault(meta["label"], []).append(pq.read_table(p, columns=["arch"]).column("arch").to_pylist())
        assert meta["summary"]["n_distinct"] == 60 and meta["summary"]["n_repeats"] == 0
    assert len(by_label) == 3
    first, *others = by_label.values()
    assert all(o == first for o in others)            # same class, same seeds: same trajectories
    assert first[0] != first[1]


def test_provenance_names_the_package_and_version(plugin_version):
    from algorithms import algorithm_source
    assert algorithm_source("random") is None          # the harness's own code version covers it
    assert algorithm_source("hillclimb") == {
        "distribution": DIST, "version": plugin_version,
        "entry_point": "nas_harness.algorithms: hillclimb = nas_hillclimb.climber:HillClimber"}
    assert algorithm_source("nas_hillclimb.HillClimber") == {
        "import_path": "nas_hillclimb.climber.HillClimber", "distribution": DIST, "version": plugin_version}


def test_a_run_records_the_plugins_package_and_version(nb201_env, tmp_path, capsys, plugin_version):
    out = tmp_path / "o"
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "hillclimb", "--algorithm", "random",
                        "--seeds", "1", "--budget", "5", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    hill, rand = sorted(run_metas(out), key=lambda m: m["label"] != "hillclimb")
    assert hill["config"]["algorithm_source"]["distribution"] == DIST
    assert hill["config"]["algorithm_source"]["version"] == plugin_version
    assert "algorithm_source" not in rand["config"]    # built-ins' configurations are unchanged
    manifest = json.loads((out / "experiment.json").read_text())
    assert any(c["config"].get("algorithm_source", {}).get("version") == plugin_version
               for c in manifest["cells"].values())


def test_a_class_outside_any_package_is_named_by_its_file(tmp_path, plugin_path, capsys, nb201_env):
    (plugin_path / "my_local_search.py").write_text(
        "from nas_hillclimb import HillClimber\n\n\n"
        "class Steepest(HillClimber):\n"
        "    \"\"\"Steepest ascent only.\n\n    Parameters\n    ----------\n"
        "    preset: as HillClimber's.\n    strategy: as HillClimber's.\n    kick: as HillClimber's.\n"
        "    max_draws: as HillClimber's.\n    \"\"\"\n")
    from algorithms import algorithm_source
    src = algorithm_source("my_local_search.Steepest")
    assert src["distribution"] is None and src["import_path"] == "my_local_search.Steepest"
    import hashlib
    assert src["module_sha256"] == hashlib.sha256((plugin_path / "my_local_search.py").read_bytes()).hexdigest()
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "my_local_search.Steepest",
                        "--seeds", "1", "--budget", "20", "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 0, err


def test_algorithms_list_and_info_show_the_plugin_with_its_package(capsys, plugin_version):
    from algorithms import REGISTRY
    code, text, err = run(["algorithms", "list"], capsys)
    assert code == 0 and not err
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("hillclimb "))
    assert f"from {DIST} {plugin_version} (nas_hillclimb.climber:HillClimber)" in lines[at + 1]
    code, text, _ = run(["algorithms", "list", "--format", "json"], capsys)
    rows = json.loads(text)
    from algorithms.one_shot import ONE_SHOT_REGISTRY
    assert [r["name"] for r in rows if r["plugin"] is None] == list(REGISTRY) + list(ONE_SHOT_REGISTRY)
    (row,) = [r for r in rows if r["name"] == "hillclimb"]
    assert row["plugin"]["distribution"] == DIST and row["plugin"]["version"] == plugin_version
    assert row["presets"] == ["restarts", "steepest", "iterated"]
    code, text, err = run(["algorithms", "info", "hillclimb"], capsys)
    assert code == 0 and not err
    assert "iterated: strategy='first', kick=3" in text and f"from {DIST} {plugin_version}" in text
    assert "  kick = from the preset (restarts: 0, steepest: 0, iterated: 3)" in text


def test_the_climber_exhausts_a_finite_space_and_waits_only_for_results(plugin_version):
    """On a finite space it asks every architecture once and then ends the run; with results
    outstanding it keeps asking untried neighbours and answers WAIT only when its next move
    needs one of them."""
    from algorithms import make_algorithm
    from algorithms.base import DONE, WAIT
    from oracles.oracle import Observation
    from tiny_space import TinySpace, linear_values
    space = TinySpace()
    values = linear_values(space, seed=3)
    for preset in ("restarts", "steepest", "iterated"):
        algo = make_algorithm("hillclimb", {"preset": preset})
        algo.start(space, np.random.default_rng(0))
        asked, running, waits = [], [], 0
        while True:
            a = algo.ask()
            if a is DONE:
                assert not running
                break
            if a is WAIT or len(running) == 3:     # three workers: tell the oldest when all are busy
                if a is WAIT:
                    waits += 1
                    assert running, "WAIT with nothing running"
                else:
                    asked.append(a)
                    running.append(a)
                b = running.pop(0)
                algo.tell(b, Observation(float(values[space.index(b)])))
                continue
            asked.append(a)
            running.append(a)
        assert sorted(space.index(a) for a in asked) == list(range(space.size)), preset
        assert algo.diagnostics()["local_optima"] >= 1 and waits >= 1


# --- broken plugins: one line, and only where they are used ---------------------------------
def test_a_broken_plugin_is_one_line_and_only_when_used(plugin_path, nb201_env, tmp_path, capsys, plugin_version):
    probe = tmp_path / "imported"
    (plugin_path / "nas_probe_plugin.py").write_text(
        f"open({str(probe)!r}, 'w').close()   # records that the plugin was imported\n"
        "from nas_hillclimb import HillClimber as Probe\n")
    make_dist(plugin_path, "broken-plugins", {"nas_harness.algorithms": {
        "missing": "nas_no_such_module_anywhere:Algo",        # does not import
        "notalgo": "json:JSONDecoder",                       # imports; not an algorithm
        "probe": "nas_probe_plugin:Probe",
        "random": "nas_probe_plugin:Probe",                  # a built-in's name: the built-in wins
    }})
    make_dist(plugin_path, "other-plugins", {"nas_harness.algorithms": {"probe": "nas_hillclimb:HillClimber"}})
    # commands that do not name a plugin never import one
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--seeds", "1",
                        "--budget", "5", "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 0 and not err
    assert run(["oracles", "list"], capsys)[0] == 0
    assert run(["algorithms", "info", "lanas"], capsys)[0] == 0
    assert not probe.exists()
    from algorithms import algorithm_class
    from algorithms.random_search import RandomSearch
    assert algorithm_class("random") is RandomSearch
    # a plugin that is used: one line naming it, its package and why; exit status 2
    for name, why in (("missing", "ModuleNotFoundError: No module named 'nas_no_such_module_anywhere'"),
                      ("notalgo", "json.decoder.JSONDecoder does not subclass algorithms.base.SearchAlgorithm"),
                      ("probe", "is claimed by broken-plugins 0.0.1 (nas_probe_plugin:Probe) and "
                                "other-plugins 0.0.1 (nas_hillclimb:HillClimber)")):
        code, out, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", f"{name}:kick=1", "--seeds", "1",
                              "--budget", "5", "--out", str(tmp_path / name), "--quiet"], capsys)
        assert code == 2 and not out and err.count("\n") == 1, (name, err)
        assert f"'{name}'" in err and why in err, err
        if name != "probe":
            assert "broken-plugins 0.0.1" in err
    # listing goes on: one warning line per plugin that cannot be listed, the rest as usual
    code, text, err = run(["algorithms", "list"], capsys)
    assert code == 0 and probe.exists()
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("nas-harness: warning: plugin algorithm ") for w in warnings)
    assert "'missing'" in warnings[0] and "'notalgo'" in warnings[1]
    names = [ln.split()[0] for ln in text.splitlines() if ln and not ln.startswith(" ")]
    assert {"random", "lanas", "hillclimb", "nas_probe_plugin.Probe", "nas_hillclimb.HillClimber"} <= set(names)
    assert "its name 'random' is a built-in's, which wins: use it as nas_probe_plugin.Probe" in " ".join(text.split())
    # the clashing plugins stay usable by their import paths
    assert run(["algorithms", "info", "nas_probe_plugin.Probe"], capsys)[0] == 0


def test_a_plugin_that_does_not_follow_the_interface_says_what_is_wrong(plugin_path, capsys):
    (plugin_path / "nas_bad_algos.py").write_text(
        "from algorithms.base import SearchAlgorithm\n"
        "class NoTell(SearchAlgorithm):\n"
        "    def start(self, space, rng): pass\n"
        "    def ask(self): pass\n"
        "class NoDefault(SearchAlgorithm):\n"
        "    presets = {'a': {'lr': 1.0}}\n"
        "    def __init__(self, width, preset='a'): self.width = width\n"
        "    def start(self, space, rng): pass\n"
        "    def ask(self): pass\n"
        "    def tell(self, arch, obs): pass\n")
    for path, why in (("nas_bad_algos.NoTell", "does not implement tell"),
                      ("nas_bad_algos.NoDefault", "__init__ parameter(s) width have no default"),
                      ("nas_bad_algos.NoDefault", "preset 'a' sets unknown parameter(s) lr"),
                      ("nas_bad_algos.Nowhere", "module nas_bad_algos has no Nowhere"),
                      ("nas_no_such_pkg.Algo", "No module named 'nas_no_such_pkg'")):
        code, _, err = run(["algorithms", "info", path], capsys)
        assert code == 2 and err.count("\n") == 1 and why in err, err


def test_the_cli_starts_without_importing_plugins(plugin_path, tmp_path):
    """In a fresh process (how users meet it): a plugin whose import fails, installed beside
    the example, leaves every command that does not name it working and silent."""
    make_dist(plugin_path, "broken-plugins", {"nas_harness.algorithms": {"missing": "nas_no_such_module_anywhere:A"}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys\nfrom harness.cli import main\n"
            "assert main(['algorithms', 'info', 'evolution']) == 0\n"
            "assert not [m for m in sys.modules if m.startswith('nas_hillclimb')]\n"
            "print('--', file=sys.stderr)\n"
            "sys.exit(main(['algorithms', 'info', 'missing']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    before, _, after = p.stderr.partition("--\n")
    assert p.returncode == 2 and not before, p.stderr
    assert after.count("\n") == 1 and "'missing' from broken-plugins 0.0.1" in after, p.stderr


# --- oracle factories and space kinds from plugins -----------------------------------------------
def digits_oracle(name, options, shared):
    """A plugin oracle factory (``plugdigits/...``): the shipped ConvNet table's oracle."""
    from oracles.registry import load_oracle
    return load_oracle("convnet-digits")


def convnet_space(table):
    """A plugin space builder for the kind ``plugconvnet``: the ConvNet space."""
    from oracles.registry import SPACE_BUILDERS
    return SPACE_BUILDERS["convnet"](table)


def test_oracle_factories_and_space_kinds_from_plugins(plugin_path, nb201_env, tmp_path, capsys, plugin_version):
    from oracles.registry import EMBEDDED_DIR, factory_of, list_oracles, load_oracle, oracle_source
    from oracles.table import load_table, save_table
    make_dist(plugin_path, "bench-plugins", {
        "nas_harness.oracles": {"plugdigits": "test_plugins:digits_oracle",
                                "brokenbench": "nas_no_such_module_anywhere:build",
                                "nb201": "test_plugins:digits_oracle"},      # a table's name: the table wins
        "nas_harness.spaces": {"plugconvnet": "test_plugins:convnet_space"}}, version="2.0")
    assert factory_of("plugdigits/x") == "test_plugins:digits_oracle" and factory_of("nb201/cifar10") is None
    assert load_oracle("plugdigits/x").space.size == 1364
    assert load_oracle("nb201/cifar10").space.size == 15625
    rows = {r["name"]: r for r in list_oracles()}
    assert "bench-plugins 2.0" in rows["plugdigits/..."]["description"] and "nb201/..." not in rows
    assert oracle_source("plugdigits/x")["distribution"] == "bench-plugins"
    # listed without being imported; used, one line
    assert "brokenbench/..." in rows
    code, out, err = run(["oracles", "info", "brokenbench/x"], capsys)
    assert code == 2 and not out and err.count("\n") == 1, err
    assert "the plugin from bench-plugins 2.0 (nas_no_such_module_anywhere:build)" in err, err
    assert oracle_source("nb201/cifar10") is None
    # a table whose space kind a plugin provides
    table = load_table(EMBEDDED_DIR / "convnet-digits")
    table.meta["space"]["kind"] = "plugconvnet"
    table.meta["oracles"] = [dict(table.meta["oracles"][0], name="plugtable")]
    save_table(table, nb201_env / "plugtable")
    try:
        assert load_oracle("plugtable").space.size == 1364
        assert oracle_source("plugtable") == {
            "distribution": "bench-plugins", "version": "2.0",
            "entry_point": "nas_harness.spaces: plugconvnet = test_plugins:convnet_space"}
        code, _, err = run(["run", "--oracle", "plugdigits/x", "--oracle", "plugtable", "--algorithm", "hillclimb",
                            "--seeds", "1", "--budget", "10", "--out", str(tmp_path / "o"), "--quiet"], capsys)
        assert code == 0, err
    finally:
        import shutil
        shutil.rmtree(nb201_env / "plugtable")


# --- the guide ----------------------------------------------------------------------------------
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-an-algorithm.md"


def guide_commands() -> list[str]:
    """The commands of the guide's bash blocks marked ``<!-- tested -->``, in order."""
    lines = GUIDE.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == "<!-- tested -->":
            assert lines[i + 1].strip() == "```bash", f"{GUIDE.name}:{i + 2}: a tested block must follow the mark"
            j = i + 2
            while lines[j].strip() != "```":
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    out.append(lines[j].strip())
                j += 1
    return out


def test_the_guides_commands(tmp_path, monkeypatch, capsys, plugin_version):
    """Every command of the guide's tested blocks, as written, from a fresh directory with an
    empty data directory (what a reader of a fresh clone has, the example plugin installed)."""
    import shlex
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").symlink_to(GUIDE.parent.parent / "tests")     # the files the guide names
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    commands = guide_commands()
    assert len(commands) >= 8 and all(c.startswith("nas-harness ") for c in commands), commands
    outputs = []
    for command in commands:
        code, out, err = run(shlex.split(command, comments=True)[1:], capsys)
        assert code == 0, (command, err)
        outputs.append(out)
    assert any(line.startswith("hillclimb ") for line in outputs[0].splitlines())      # algorithms list
    assert f"from {DIST} {plugin_version}" in outputs[1]                               # algorithms info
    (checked,) = [o for c, o in zip(commands, outputs) if c.startswith("nas-harness check ")]
    assert "0 failed" in checked                      # the example passes the contract
    assert "0 worse" in outputs[-1]                   # compare: the candidate is no regression
    # the install line the guide gives is the one CI runs
    ci = (GUIDE.parent.parent / ".ci" / "run").read_text()
    assert "pip install -e tests/plugin_example" in GUIDE.read_text()
    assert "pip install --quiet -e tests/plugin_example" in ci
