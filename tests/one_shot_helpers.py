"""Scaffolding shared by the tests of the one-shot methods and their loop (test_darts,
test_gdas, test_enas, test_rsps, test_ddas, test_one_shot): one torch thread, the digits
data, a method started on a tiny supernet, equality of two runs' records and a run killed
and resumed from its checkpoint.

Imported by name, as tests/tiny_space.py is: pytest's default import mode puts tests/ on
sys.path. A fixture here takes effect in a test module that imports it (an autouse one for
every test of that module), and only there: in tests/conftest.py the thread setting would
reach every test of the suite.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

#: columns holding measured seconds: the only ones a resumed run may differ in
MEASURED = {"cost", "cum_cost", "algo_cpu_s"}


@contextmanager
def torch_threads(n: int = 1):
    """Run the block with ``n`` torch threads (default 1: the test machines have few cores,
    shared among several processes), then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test of a module that imports this fixture runs with one torch thread."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits as ``supernets.data.load("digits")`` gives them (its default
    split), loaded once a module."""
    from supernets.data import load
    return load("digits")


def start_method(method, data, seed: int = 0, dtype: torch.dtype | None = None):
    """Start ``method`` as the one-shot loop does: the supernet of its own config, built
    after ``torch.manual_seed(seed)`` and cast to ``dtype`` (None: left as built, float32),
    and a numpy generator of ``seed`` for the method's own draws. Returns the method."""
    from supernets.training import build_supernet
    cfg = method.supernet_config()
    torch.manual_seed(seed)
    net = build_supernet(cfg, data.input_shape[0], data.num_classes)
    if dtype is not None:
        net = net.to(dtype)
    method.start(net, data, np.random.default_rng(seed))
    return method


def assert_same_records(a: dict, b: dict) -> None:
    """Two runs' records hold the same columns and, but for the MEASURED seconds, the same
    values: equal integers and strings, floats equal to 1e-12 with NaN in the same places."""
    assert set(a) == set(b)
    for k in a:
        if k in MEASURED:
            continue
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(a[k]), np.isnan(b[k]), err_msg=k)
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, err_msg=k)
        else:
            assert list(a[k]) == list(b[k]), k


def same_run_twice(cfg, oracle, seed: int) -> tuple[dict, dict, dict]:
    """Run ``cfg`` on ``oracle`` twice with ``seed``; assert that the first run did not fail
    and that both recorded the same (assert_same_records). Returns the first run's records
    and both summaries."""
    from harness import one_shot
    a_records, a = one_shot.run_one_shot(cfg, oracle, seed=seed)
    b_records, b = one_shot.run_one_shot(cfg, oracle, seed=seed)
    assert a.get("failed") is None
    assert_same_records(a_records, b_records)
    return a_records, a, b


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so the loop does not record it as a failure."""


class Resumed(NamedTuple):
    """An uninterrupted run (``ref_*``) and one killed and resumed (the rest), with the
    ``method`` part of each run's final checkpoint (state.pt)."""
    ref_records: dict
    ref_summary: dict
    records: dict
    summary: dict
    ref_state: dict[str, Any]
    state: dict[str, Any]


def resume_after_kill(cfg, oracle, tmp_path: Path, kill_after: int, seed: int = 2) -> Resumed:
    """Run ``cfg`` on ``oracle`` with ``seed`` (default 2, any seed does) once to the end and
    once killed (Killed raised) when epoch ``kill_after`` is done, then resumed from that
    run's checkpoint. Asserts that the kill came through, that the checkpoint names the seed
    and that the resumed run says it resumed after epoch ``kill_after``; the comparison of
    the two runs is the caller's."""
    from harness import one_shot
    whole, killed = tmp_path / "whole.ckpt", tmp_path / "killed.ckpt"
    ref_records, ref_summary = one_shot.run_one_shot(cfg, oracle, seed=seed, ckpt=whole)

    def kill(epoch):
        if epoch == kill_after:
            raise Killed

    with pytest.raises(Killed):
        one_shot.run_one_shot(cfg, oracle, seed=seed, ckpt=killed, on_epoch=kill)
    assert json.loads((killed / "meta.json").read_text())["seed"] == seed
    records, summary = one_shot.run_one_shot(cfg, oracle, seed=seed, ckpt=killed)
    assert summary["diagnostics"]["resume"] == f"resumed after epoch {kill_after}"
    ref_state = torch.load(whole / "state.pt", weights_only=True)["method"]
    state = torch.load(killed / "state.pt", weights_only=True)["method"]
    return Resumed(ref_records, ref_summary, records, summary, ref_state, state)


def tiny_darts_supernet(tmp_path_factory, name: str = "tiny", cells: int = 3, epochs: int | None = None) -> Path:
    """A fresh data directory holding a DARTS-space supernet of C 4 on digits, as the command
    line makes one: untrained (``--until 0``: it only names the space, for ``supernet/NAME:mode=live``)
    when ``epochs`` is None, else trained that many epochs on 16 images (a frozen
    ``supernet/NAME`` needs a trained one). It is no ground truth: a one-shot run trains its
    own supernet."""
    from harness.cli import main
    path = tmp_path_factory.mktemp(f"darts-{name}")
    length = ["--until", "0"] if epochs is None else ["--epochs", str(epochs), "--max-train", "16"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_HARNESS_DATA", str(path))
        assert main(["supernet", "train", "darts", "--dataset", "digits", "--C", "4", "--N", str(cells), *length,
                     "--name", name, "--no-progress"]) == 0
    return path


def live_darts_oracle(data: Path, name: str = "tiny"):
    """The oracle ``supernet/NAME:mode=live`` of :func:`tiny_darts_supernet`'s directory."""
    from oracles.registry import load_oracle
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_HARNESS_DATA", str(data))
        return load_oracle(f"supernet/{name}:mode=live")
