"""Results folders: atomic files, resume, refusal to mix configurations, determinism."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from harness.experiment import Experiment, execute, load_toml
from harness.results import ResultsStore
from oracles.errors import UserError


def _exp(out, **kw):
    base = dict(oracles=["nb201/cifar10"], algorithms=["random"], seeds=4, budget=300, out=str(out))
    base.update(kw)
    return Experiment(**base)


def _runs(out):
    return {p.relative_to(out): p for p in sorted(out.glob("runs/*/*/seed-*.parquet"))}


def _contents(path):
    t = pq.read_table(path)
    return t.drop_columns(["algo_cpu_s"]).to_pydict()  # CPU time is measured, not determined


def test_identical_results_whatever_the_number_of_workers(nb201_env, tmp_path):
    execute(_exp(tmp_path / "w1", workers=1, until_optimum=True, budget=2000), progress=False)
    execute(_exp(tmp_path / "w2", workers=2, until_optimum=True, budget=2000), progress=False)
    a, b = _runs(tmp_path / "w1"), _runs(tmp_path / "w2")
    assert list(a) == list(b) and len(a) == 4
    for k in a:
        assert _contents(a[k]) == _contents(b[k])


def test_resume_recomputes_only_the_missing_run(nb201_env, tmp_path):
    out = tmp_path / "r"
    _, skipped, ran = execute(_exp(out), progress=False)
    assert (skipped, ran) == (0, 4)
    files = _runs(out)
    before = {k: (p.stat().st_mtime_ns, _contents(p)) for k, p in files.items()}
    victim = sorted(files)[2]
    files[victim].unlink()
    _, skipped, ran = execute(_exp(out), progress=False)
    assert (skipped, ran) == (3, 1)
    after = _runs(out)
    for k, p in after.items():
        if k == victim:
            assert _contents(p) == before[k][1]
        else:
            assert p.stat().st_mtime_ns == before[k][0]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_more_seeds_extend_a_folder(nb201_env, tmp_path):
    out = tmp_path / "r"
    execute(_exp(out, seeds=2), progress=False)
    _, skipped, ran = execute(_exp(out, seeds=4), progress=False)
    assert (skipped, ran) == (2, 2)


def test_a_different_configuration_is_refused(nb201_env, tmp_path):
    out = tmp_path / "r"
    execute(_exp(out), progress=False)
    files = {k: p.stat().st_mtime_ns for k, p in _runs(out).items()}
    with pytest.raises(UserError, match="different configuration .*budget"):
        execute(_exp(out, budget=400), progress=False)
    with pytest.raises(UserError, match="until_optimum"):
        execute(_exp(out, until_optimum=True), progress=False)
    assert {k: p.stat().st_mtime_ns for k, p in _runs(out).items()} == files


def test_run_metadata_says_what_was_run(nb201_env, tmp_path):
    out = tmp_path / "r"
    execute(_exp(out, seeds=1, algorithms=["random:replace=true"]), progress=False)
    (path,) = _runs(out).values()
    meta = json.loads(pq.read_schema(path).metadata[b"nas_harness"])
    assert meta["seed"] == 0 and meta["label"] == "random:replace=true"
    assert meta["config"]["params"] == {"replace": True}
    assert meta["config"]["budget"] == 300 and len(meta["config"]["oracle_checksum"]) == 64
    assert "version" in meta["code"] and "git_commit" in meta["code"]
    assert meta["summary"]["n_distinct"] == 300
    manifest = json.loads((out / "experiment.json").read_text())
    assert list(manifest["cells"]) == ["nb201/cifar10 | random:replace=true"]


def test_damaged_run_file_is_recomputed(nb201_env, tmp_path):
    out = tmp_path / "r"
    execute(_exp(out, seeds=2), progress=False)
    victim = sorted(_runs(out).values())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    _, skipped, ran = execute(_exp(out, seeds=2), progress=False)
    assert (skipped, ran) == (1, 1)
    assert ResultsStore(out).run_meta(victim) is not None


def test_toml_experiment_files(tmp_path):
    good = tmp_path / "e.toml"
    good.write_text('oracles = ["nb201/cifar10"]\nalgorithms = ["random"]\nseeds = 3\nuntil_optimum = true\n')
    exp = load_toml(good, {"seeds": 5})
    assert exp.seeds == 5 and exp.until_optimum and exp.algorithms == ["random"]
    for text, msg in [('seeds = "many"\n', "seeds must be an integer"),
                      ('oracle = ["x"]\n', "unknown key"),
                      ('until_optimum = 1\n', "true or false"),
                      ('oracles = [1]\n', "list of strings"),
                      ("seeds = [\n", "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(UserError, match=msg):
            load_toml(bad)


def test_unwritable_output_is_a_user_error(nb201_env, tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: use a path below a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "sub"
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    with pytest.raises(UserError, match="cannot write"):
        execute(_exp(out, seeds=1), progress=False)
