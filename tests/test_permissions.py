"""Everything the harness writes follows the umask, like any other tool's output (issue 12,
item 2): a results folder on a group share, or read by another user's Ray worker, must be
readable. ``tempfile.mkstemp`` creates 0600 files whose mode survived the atomic rename."""

import os
import stat

import pytest

from harness.experiment import Experiment, execute


@pytest.fixture
def umask():
    """Set the process umask for one test (spawned workers inherit it) and restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root, prefix=""):
    """{path relative to root (with prefix): (is a folder, permission bits)} for root and below."""
    return {prefix + str(p.relative_to(root)): (p.is_dir(), stat.S_IMODE(p.stat().st_mode))
            for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("mask, file_mode, dir_mode, workers", [
    (0o022, 0o644, 0o755, 1),
    (0o027, 0o640, 0o750, 2),
])
def test_results_folder_follows_the_umask(nb201_env, tmp_path, umask, mask, file_mode, dir_mode, workers):
    from harness.cli import main
    umask(mask)
    out = tmp_path / "r"
    execute(Experiment(oracles=["nb201/cifar10"], algorithms=["random", "random:replace=true"], seeds=2,
                       budget=20, workers=workers, out=str(out)), progress=False)
    assert main(["export", str(out), "--out", str(tmp_path / "x" / "all.csv")]) == 0
    assert main(["export", str(out), "--rliable", "--out", str(tmp_path / "x" / "rl")]) == 0
    modes = _modes(out) | _modes(tmp_path / "x", "x/")
    files = {k: m for k, (is_dir, m) in modes.items() if not is_dir}
    dirs = {k: m for k, (is_dir, m) in modes.items() if is_dir}
    assert {"experiment.json", ".lock", "runs/nb201_cifar10/random/seed-000001.parquet", "x/all.csv",
            "x/rl.npz", "x/rl.json"} <= set(files)
    assert {".", "runs", "runs/nb201_cifar10", "runs/nb201_cifar10/random_replace-true", "x/."} <= set(dirs)
    assert set(files.values()) == {file_mode}, files
    assert set(dirs.values()) == {dir_mode}, dirs


def test_failed_run_records_follow_the_umask(nb201_env, tmp_path, umask, monkeypatch):
    from algorithms import REGISTRY
    from harness.results import ResultsStore
    monkeypatch.setitem(REGISTRY, "broken", "test_experiment:Broken")
    umask(0o022)
    out = tmp_path / "r"
    execute(Experiment(oracles=["nb201/cifar10"], algorithms=["broken"], seeds=4, budget=20, out=str(out)),
            progress=False)
    failures = ResultsStore(out).failures()
    assert failures
    assert {stat.S_IMODE(os.stat(f["path"]).st_mode) for f in failures} == {0o644}
