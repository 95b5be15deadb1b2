"""Shared fixtures. Real benchmark data comes from ../shared/data (or $NAS_HARNESS_SHARED_DATA).

Without that folder the tests that need it are skipped, unless NAS_HARNESS_REQUIRE_DATA=1
(set by .ci/run), in which case they fail: CI must never pass by skipping real-data tests.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.interrupts import restore_sigint

# The Ctrl-C tests send SIGINT to child processes; a test run started with `cmd &` (as some CI
# runners do) would otherwise pass its ignored SIGINT on to them, and those tests fail or skip.
restore_sigint()

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NAS_HARNESS_SHARED_DATA", REPO.parent / "shared" / "data"))
NB201_DIR = SHARED_DATA / "nb201"
NB101_SAMPLE = SHARED_DATA / "nb101" / "nb101_official_sample.json"


def require(path: Path) -> Path:
    if not path.exists():
        msg = f"benchmark data {path} not found (set NAS_HARNESS_SHARED_DATA)"
        if os.environ.get("NAS_HARNESS_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require(SHARED_DATA)


@pytest.fixture(scope="session")
def nb201_data_dir(tmp_path_factory) -> Path:
    """A data directory holding the NB201 table imported from the shared CSVs (once per session)."""
    from oracles.importers.nb201 import detect_and_read
    from oracles.table import save_table
    src = require(NB201_DIR)
    d = tmp_path_factory.mktemp("nas-harness-data")
    save_table(detect_and_read(src), d / "nb201")
    return d


@pytest.fixture
def nb201_env(nb201_data_dir, monkeypatch) -> Path:
    """NAS_HARNESS_DATA pointing at the imported NB201 table for one test."""
    monkeypatch.setenv("NAS_HARNESS_DATA", str(nb201_data_dir))
    return nb201_data_dir


@pytest.fixture
def empty_data_env(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "empty-data"
    d.mkdir()
    monkeypatch.setenv("NAS_HARNESS_DATA", str(d))
    return d


@pytest.fixture(scope="session")
def nb201_oracle(nb201_data_dir):
    """The nb201/cifar10 oracle (session-wide; tests must not rely on its query counter)."""
    from oracles.nb201_space import NB201Space
    from oracles.oracle import TabularOracle
    from oracles.table import load_table
    table = load_table(nb201_data_dir / "nb201")
    space = NB201Space([str(s) for s in table.archs])
    return TabularOracle("nb201/cifar10", table, space, search="cifar10_valid", report="cifar10_test")


@pytest.fixture(scope="session")
def ray_local():
    """One 2-CPU local Ray instance for the whole test session (CI machines have 2 cores).

    Skipped when Ray is not installed, unless NAS_HARNESS_REQUIRE_RAY=1 (then it fails).
    """
    try:
        import ray
    except ImportError:
        if os.environ.get("NAS_HARNESS_REQUIRE_RAY") == "1":
            pytest.fail("ray is not installed (pip install 'nas-harness[test]')")
        pytest.skip("ray is not installed")
    import logging
    if not ray.is_initialized():
        # the tests' folder on the workers' path: algorithms and oracle factories that tests
        # register (test modules) can then be imported in Ray workers too
        tests = str(Path(__file__).resolve().parent)
        path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@contextmanager
def data_env(directory: Path):
    """NAS_HARNESS_DATA set to ``directory`` for a block (module-scoped fixtures cannot use
    the function-scoped ``monkeypatch``)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("NAS_HARNESS_DATA", str(directory))
    try:
        yield directory
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def nb201_cifar10(nb201_data_dir):
    """``nb201/cifar10`` loaded through the registry, as users load it (env set for the module)."""
    from oracles.registry import load_oracle
    with data_env(nb201_data_dir):
        yield load_oracle("nb201/cifar10")
