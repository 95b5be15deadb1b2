"""Results folders: atomic files, resume, refusal to mix configurations, determinism."""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from algorithms.base import SearchAlgorithm
from harness.experiment import Experiment, execute, load_toml
from harness.results import ResultsStore
from harness.runner import RunConfig, run_one
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


# --- runs that cannot finish do not take the experiment with them ------------------------------
class Stuck(SearchAlgorithm):
    """Asks ``new`` distinct architectures, then the first one forever."""

    name = "stuck"

    def __init__(self, new: int = 6):
        self.new = new

    def start(self, space, rng):
        self.space, self.rng, self.asked = space, rng, []

    def ask(self):
        if len(self.asked) < self.new:
            self.asked.append(self.space.sample(self.rng))
            return self.asked[-1]
        return self.asked[0]

    def tell(self, arch, observation):
        pass


class Broken(Stuck):
    """Raises in its 8th ``tell`` on odd seeds' runs (the rng says which), until the bug is
    "fixed" (``NAS_HARNESS_TEST_FIXED=1`` in the environment, which workers inherit)."""

    name = "broken"

    def start(self, space, rng):
        super().start(space, rng)
        self.new, self.n = 10 ** 6, 0
        self.fails = bool(rng.integers(2)) and os.environ.get("NAS_HARNESS_TEST_FIXED") != "1"

    def tell(self, arch, observation):
        self.n += 1
        if self.fails and self.n == 8:
            raise ZeroDivisionError("division by zero")


@pytest.fixture
def troubled(monkeypatch):
    """Register the two algorithms for this process and, through the tasks, for workers."""
    from algorithms import REGISTRY
    monkeypatch.setitem(REGISTRY, "stuck", "test_experiment:Stuck")
    monkeypatch.setitem(REGISTRY, "broken", "test_experiment:Broken")
    monkeypatch.delenv("NAS_HARNESS_TEST_FIXED", raising=False)
    return monkeypatch


def _failing_seeds(seeds):
    from oracles.registry import load_oracle
    o = load_oracle("nb201/cifar10")
    return {s for s in seeds if run_one(RunConfig("broken", budget=20), o, s)[1].get("failed")}


@pytest.mark.parametrize("workers", [1, 2])
def test_stuck_and_failing_runs_leave_the_others_alone(nb201_env, tmp_path, troubled, workers):
    out = tmp_path / "r"
    exp = _exp(out, algorithms=["random", "stuck", "broken"], seeds=6, budget=20, max_repeats=15,
               until_optimum=True, workers=workers)
    failing = _failing_seeds(exp.seed_list)
    assert 0 < len(failing) < 6
    _, skipped, ran = execute(exp, progress=False)
    assert (skipped, ran) == (0, 18)
    store = ResultsStore(out)
    runs = {(c.label, m["seed"]): m["summary"] for c, m, _ in store.iter_runs()}
    # every random run and every stuck run is recorded; of the broken ones, those that did not fail
    assert {s for (lab, s) in runs if lab == "random"} == set(exp.seed_list)
    assert {s for (lab, s) in runs if lab == "broken"} == set(exp.seed_list) - failing
    for seed in exp.seed_list:
        s = runs[("stuck", seed)]
        assert s["stopped"] == "stuck: asked 15 already-evaluated architectures in a row (max_repeats)"
        assert s["n_distinct"] == 6 and s["censored"] and s["samples_to_optimum"] is None
        assert runs[("random", seed)]["stopped"] is None
    failures = store.failures()
    assert sorted(f["seed"] for f in failures) == sorted(failing)
    for f in failures:
        assert f["failed"].startswith("ZeroDivisionError: division by zero (tests/test_experiment.py:")
        assert "Traceback" in f["traceback"] and Path(f["path"]).name.startswith("_seed-")
    # the failed runs are not done: the same command retries them, and only them
    assert execute(exp, progress=False)[1:] == (18 - len(failing), len(failing))
    assert len(store.failures()) == len(failing)
    troubled.setenv("NAS_HARNESS_TEST_FIXED", "1")  # the bug is fixed
    assert execute(exp, progress=False)[1:] == (18 - len(failing), len(failing))
    assert store.failures() == [] and not list(out.rglob("_seed-*"))
    assert len(list(store.iter_runs())) == 18


def test_run_command_says_what_stopped_and_exits_non_zero(nb201_env, tmp_path, troubled, capsys):
    from harness.cli import main
    from harness.commands.run import EXIT_FAILED, EXIT_STOPPED
    args = ["run", "--oracle", "nb201/cifar10", "--seeds", "4", "--budget", "20", "--max-repeats", "15",
            "--quiet", "--out", str(tmp_path / "r")]
    assert main(args + ["--algorithm", "random"]) == 0
    assert "stopped" not in capsys.readouterr().out
    assert main(args + ["--algorithm", "random", "--algorithm", "stuck"]) == EXIT_STOPPED == 3
    out = capsys.readouterr().out
    assert "4 run(s) stopped early (recorded, reasons in the notes above): " \
           "nb201/cifar10 | stuck (seeds 0, 1, 2, 3)" in out
    assert "stuck: asked 15 already-evaluated architectures in a row (max_repeats)" in out
    failing = _failing_seeds(range(4))
    assert main(args + ["--algorithm", "stuck", "--algorithm", "broken", "--debug"]) == EXIT_FAILED == 4
    captured = capsys.readouterr()
    assert f"{len(failing)} run(s) failed (not recorded; run the same command again to retry them" in captured.out
    assert f"  {len(failing)} x ZeroDivisionError: division by zero (tests/test_experiment.py:" in captured.out
    assert "4 run(s) stopped early" in captured.out  # from the earlier command: the folder's state
    assert captured.err.count("Traceback (most recent call last)") == len(failing)
    # without --debug: no traceback
    assert main(args + ["--algorithm", "stuck", "--algorithm", "broken"]) == EXIT_FAILED
    assert "Traceback" not in capsys.readouterr().err


def test_run_metadata_records_the_machine(nb201_env, tmp_path):
    out = tmp_path / "r"
    execute(_exp(out, seeds=1, budget=10), progress=False)
    (path,) = _runs(out).values()
    machine = json.loads(pq.read_schema(path).metadata[b"nas_harness"])["machine"]
    assert machine["cpu"] and machine["python"] and machine["numpy"]
    blas = [lib for lib in machine["blas"] if lib["user_api"] == "blas"]
    assert blas and all(lib["internal_api"] and lib["version"] for lib in blas)
    assert all(lib["num_threads"] == 1 for lib in blas)  # what the runs used
    assert {"architecture", "threading_layer"} <= set(blas[0])


def test_machine_info_reads_the_cpu_model_and_blas_kernel():
    from threadpoolctl import threadpool_info
    from harness.results import cpu_model, machine_info
    info = machine_info()
    libs = threadpool_info()
    assert [(b["internal_api"], b["version"], b.get("architecture")) for b in info["blas"]] == \
           [(b["internal_api"], b["version"], b.get("architecture")) for b in libs]
    if Path("/proc/cpuinfo").exists():
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        if names:
            assert cpu_model() == names[0] == info["cpu"]
    info["blas"].clear()
    assert machine_info()["blas"]  # callers get a copy


def test_running_and_writing_runs_does_not_import_pandas(nb201_env, tmp_path):
    """A worker writes its run files without pandas (pyarrow's pa.array imports it on first use:
    half a second of CPU and tens of MB in every worker process)."""
    import subprocess
    import sys
    code = ("import sys; from harness.experiment import Experiment, execute; "
            f"execute(Experiment(oracles=['nb201/cifar10'], algorithms=['random', 'stuck'], seeds=1, budget=20, "
            f"max_repeats=5, out={str(tmp_path / 'r')!r}), progress=False); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", "import algorithms; algorithms.REGISTRY['stuck'] = "
                          "'test_experiment:Stuck'; " + code], capture_output=True, text=True,
                         cwd=Path(__file__).parent, check=True).stdout
    assert out.strip() == "False"
    assert len(list((tmp_path / "r").glob("runs/*/*/seed-*.parquet"))) == 2
