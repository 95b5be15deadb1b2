"""The ConvNet collector: datasets and splits, the CIFAR-10 folder check, a tiny collection
end to end, kill -9 and resume, and re-training rows of the shipped convnet-digits table."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optional import require_module

# the collector trains with torch and splits with scikit-learn: this file is about them
torch = require_module("torch")
require_module("sklearn")

from oracles.collectors import convnet as col  # noqa: E402
from oracles.collectors.datasets import load_cifar10_split, load_digits_split  # noqa: E402
from oracles.collectors.train import METRICS, Recipe, build_network, count_params, train_network  # noqa: E402
from oracles.convnet_space import ConvNetSpace  # noqa: E402
from oracles.errors import CorruptData, UserError  # noqa: E402
from oracles.table import load_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "oracles" / "embedded" / "convnet-digits"
TINY_RECIPE = Recipe(epochs=1, batch_size=256, lr=0.02, batch_norm=True)


@pytest.fixture(autouse=True)
def _one_thread():
    # in-process collection switches torch to deterministic kernels; give other tests theirs back
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def tiny_space(max_depth=2):
    return ConvNetSpace(channels=(4,), kernels=(3, 5), max_depth=max_depth)


def tiny_job(max_depth=2, seeds=2, **kw):
    return col.make_job("digits", "digits", seeds, recipe=TINY_RECIPE, space=tiny_space(max_depth),
                        name="convnet-tiny", **kw)


# --- datasets --------------------------------------------------------------------------------
def test_digits_split_fixed_disjoint_stratified():
    a, b = load_digits_split(0), load_digits_split(0)
    assert a.meta["sizes"] == [1078, 360, 359] and a.meta == b.meta
    assert np.array_equal(a.x_valid, b.x_valid) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    rows = {x.tobytes() for x in a.x_train}
    # stratified: every class in every part, roughly 60/20/20
    for y in (a.y_train, a.y_valid, a.y_test):
        assert set(np.unique(y)) == set(range(10))
    assert sum(x.tobytes() in rows for x in a.x_test) <= 5  # load_digits has a few duplicate images
    c = load_digits_split(1)
    assert not np.array_equal(a.y_valid, c.y_valid)


def _fake_cifar(folder: Path, per_batch=20, skip=(), rng=None):
    """Small random batches in the official python-version layout (dict with bytes keys)."""
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if name in skip:
            continue
        batch = {b"batch_label": name.encode(), b"labels": [int(i % 10) for i in range(per_batch)],
                 b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    if "batches.meta" not in skip:
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar_folder_read(tmp_path):
    split = load_cifar10_split(_fake_cifar(tmp_path / "c"), split_seed=0)
    assert split.x_train.shape[1:] == (3, 32, 32)
    assert len(split.y_train) + len(split.y_valid) == 100 and len(split.y_test) == 20
    assert set(np.unique(split.y_valid)) == set(range(10))
    assert abs(float(split.x_train.mean())) < 1e-4  # standardised with train statistics


def test_cifar_missing_batch_refused(tmp_path):
    folder = _fake_cifar(tmp_path / "c", skip=("data_batch_3",))
    with pytest.raises(UserError, match="missing data_batch_3"):
        load_cifar10_split(folder)
    with pytest.raises(UserError, match="does not exist"):
        load_cifar10_split(tmp_path / "nope")


def test_cifar_hostile_or_wrong_pickle_refused(tmp_path):
    folder = _fake_cifar(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(UserError, match="refusing to load"):
        load_cifar10_split(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": [1, 2], b"labels": [0]}, protocol=2))
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_cifar10_split(folder)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_cifar10_split(folder)


def test_cli_cifar_needs_folder(capsys):
    from harness.cli import main
    rc = main(["collect", "convnet", "--preset", "digits", "--dataset", "cifar10", "--out", "/nonexistent/x"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--cifar-dir" in err


# --- training --------------------------------------------------------------------------------
def test_param_count_matches_torch():
    for layers, bn in ((((3, 8), (5, 16)), True), (((5, 4),), False)):
        net = build_network(layers, 3, 10, batch_norm=bn)
        assert count_params(layers, 3, 10, bn) == sum(p.numel() for p in net.parameters())


def test_training_deterministic():
    data = load_digits_split(0)
    r1 = train_network(((3, 4), (5, 4)), 3, TINY_RECIPE, data)
    r2 = train_network(((3, 4), (5, 4)), 3, TINY_RECIPE, data)
    r3 = train_network(((3, 4), (5, 4)), 4, TINY_RECIPE, data)
    keys = [m for m in METRICS if m != "train_time"]
    assert [r1[k] for k in keys] == [r2[k] for k in keys]
    assert [r1[k] for k in keys] != [r3[k] for k in keys]
    assert all(0.0 <= r1[f"{p}_acc"] <= 1.0 for p in ("train", "valid", "test"))


# --- a tiny collection -----------------------------------------------------------------------
def test_tiny_collection_writes_loadable_table(tmp_path):
    job = tiny_job()
    target = col.collect(job, tmp_path / "work", progress=False, log=lambda *_: None)
    table = load_table(target)
    space = tiny_space()
    assert list(table.archs) == [space.to_string(a) for a in space.enumerate()]
    assert table.seeds == ("0", "1") and table.fidelities == (1,) and table.metrics == METRICS
    assert not np.isnan(np.asarray(table.values)).any()
    acc = np.asarray(table.values)[:, :, 0, [METRICS.index(m) for m in ("train_acc", "valid_acc", "test_acc")]]
    assert ((acc >= 0) & (acc <= 1)).all()
    assert list(table.columns["params"]) == [count_params(a, 1, 10, True) for a in space.enumerate()]
    meta = table.meta
    assert meta["space"]["kind"] == "convnet" and meta["recipe"]["epochs"] == 1
    assert meta["oracles"][0]["search"] == "valid_acc" and meta["oracles"][0]["report"] == "test_acc"
    assert meta["dataset"]["split_seed"] == 0 and "torch" in meta["library_versions"]
    from oracles.registry import SPACE_BUILDERS
    assert SPACE_BUILDERS["convnet"](table).size == space.size
    # run again: nothing to do, same table
    again = col.collect(job, tmp_path / "work", progress=False, log=lambda *_: None)
    assert np.array_equal(np.asarray(load_table(again).values)[..., :6], np.asarray(table.values)[..., :6])


def test_subset_collection_and_oracle(tmp_path, monkeypatch):
    job = tiny_job(max_depth=3, seeds=1, subset=5, subset_seed=3)
    assert len(job.indices) == 5
    target = col.collect(job, tmp_path / "work", progress=False, log=lambda *_: None,
                         table_dir=tmp_path / "data" / "convnet-tiny")
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    from oracles.registry import load_oracle
    oracle = load_oracle("convnet-tiny")
    assert oracle.space.size == 5
    assert list(load_table(target).columns["space_index"]) == list(job.indices)
    best = oracle.optimum
    assert best.value == np.max(load_table(target).column("valid_acc"))


def test_other_config_and_concurrent_collector_refused(tmp_path):
    out = tmp_path / "work"
    col.collect(tiny_job(max_depth=1, seeds=1), out, progress=False, log=lambda *_: None)
    with pytest.raises(UserError, match="different collection"):
        col.collect(tiny_job(max_depth=1, seeds=2), out, progress=False, log=lambda *_: None)
    with col.lock(out):
        with pytest.raises(UserError, match="another collector"):
            col.collect(tiny_job(max_depth=1, seeds=1), out, progress=False, log=lambda *_: None)


_CHILD = """
import sys
sys.path.insert(0, {repo!r})
from oracles.collectors import convnet as col
from oracles.collectors.train import Recipe
from oracles.convnet_space import ConvNetSpace
job = col.make_job("digits", "digits", 2, recipe=Recipe(epochs=1, batch_size=256, lr=0.02, batch_norm=True),
                   space=ConvNetSpace(channels=(4,), kernels=(3, 5), max_depth=3), name="convnet-tiny")
col.collect(job, {out!r}, progress=False)
"""


def test_kill_and_resume_no_duplicates_or_gaps(tmp_path):
    out = tmp_path / "work"
    job = tiny_job(max_depth=3, seeds=2)
    total = len(col.all_tasks(job))  # 14 networks x 2 seeds
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO), out=str(out))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and child.poll() is None:
        done = sum(p.read_bytes().count(b"\n") for p in (out / "shards").glob("*.jsonl")) \
            if (out / "shards").is_dir() else 0
        if done >= 3:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 3 <= done < total, "the child should have been killed part-way"
    shard = next((out / "shards").glob("*.jsonl"))
    # what a kill in the middle of a write leaves behind: a torn last line
    with open(shard, "ab") as fh:
        fh.write(b'{"row": {"index": 0, "seed": 0, "valid_acc": 0.')
    before, stats = col.read_shards(out)
    assert stats["torn"] == 1 and 3 <= len(before) < total

    target = col.collect(job, out, progress=False, log=lambda *_: None)
    rows, stats = col.read_shards(out)
    assert stats["duplicates"] == 0 and len(rows) == total == stats["rows"]
    assert set(rows) == set(col.all_tasks(job))
    for key, row in before.items():  # finished rows were kept, not re-trained
        assert rows[key] == row
    table = load_table(target)
    assert not np.isnan(np.asarray(table.values)).any()

    # the resumed table equals an uninterrupted collection (all but the measured times)
    fresh = load_table(col.collect(job, tmp_path / "fresh", progress=False, log=lambda *_: None))
    keep = [METRICS.index(m) for m in METRICS if m != "train_time"]
    assert np.array_equal(np.asarray(table.values)[..., keep], np.asarray(fresh.values)[..., keep])


def test_damaged_middle_line_is_refused(tmp_path):
    out = tmp_path / "work"
    col.collect(tiny_job(max_depth=1, seeds=1), out, progress=False, log=lambda *_: None)
    shard = next((out / "shards").glob("*.jsonl"))
    lines = shard.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"seed": 0', b'"seed": 7')
    shard.write_bytes(b"\n".join(lines))
    with pytest.raises(CorruptData, match="line 1"):
        col.read_shards(out)


# --- the shipped table -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded():
    if not (EMBEDDED / "manifest.json").is_file():
        pytest.fail(f"the shipped table {EMBEDDED} is missing")
    return load_table(EMBEDDED)


def test_embedded_table_shape_and_spread(embedded):
    assert embedded.n_archs == 1364 and len(embedded.seeds) >= 3
    assert embedded.meta["space"]["preset"] == "digits"
    values = np.asarray(embedded.values)
    assert not np.isnan(values).any()
    valid = embedded.column("valid_acc")
    # not flat: shallow nets are far worse than the best, and the top is not one big tie
    assert valid.max() - valid.min() > 0.3
    assert np.sum(valid == valid.max()) < 10
    from oracles.registry import load_oracle
    oracle = load_oracle("convnet-digits")
    assert oracle.space.size == 1364 and oracle.optimum.value == valid.max()


#: How closely a re-training reproduces a stored row on another x86-64 CPU (same torch):
#: accuracies within 3% of the split (10 of 360 validation images), losses within 5% relative.
#: Measured on 71 rows re-trained on an AMD EPYC (AVX2) against the table made on a Xeon: at
#: most 8 validation, 6 test and 17 training predictions apart, losses at most 2.4% apart
#: (docs/convnet-digits.md, python -m oracles.collectors.retrain_check). Another seed of the same network is much further away (median 18
#: validation predictions, 14% in loss; only 3% of the rows have two seeds this close), so
#: the check still catches a changed recipe, split or seeding. Bitwise equality holds only on
#: identical hardware and is tested within one process.
ACC_TOLERANCE, LOSS_RTOL = 0.03, 0.05


def _within_tolerance(got, stored):
    """The metrics of ``got`` that are further from ``stored`` than a CPU change explains."""
    far = []
    for m in (m for m in METRICS if m != "train_time"):
        if m.endswith("_acc"):
            if abs(got[m] - stored[m]) > ACC_TOLERANCE:
                far.append(m)
        elif abs(got[m] - stored[m]) > LOSS_RTOL * abs(stored[m]):
            far.append(m)
    return far


def test_embedded_rows_retrain_within_tolerance(embedded):
    meta = embedded.meta
    # What matters is torch's release: a local build label (2.13.0+cpu, 2.13.0+cu124) runs the
    # same CPU kernels, and another CPU is what the tolerance above allows for. CI pins the
    # table's release, so there a mismatch fails (NAS_HARNESS_REQUIRE_OPTIONAL=1).
    stored = meta["library_versions"].get("torch", "")
    here = col.library_versions()["torch"]
    if here.partition("+")[0] != stored.partition("+")[0]:
        msg = f"table collected with torch {stored}, here {here}: another release may train differently"
        if os.environ.get("NAS_HARNESS_REQUIRE_OPTIONAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    data = load_digits_split(meta["dataset"]["split_seed"])
    assert data.meta["data_sha256"] == meta["dataset"]["data_sha256"]
    recipe = Recipe.from_dict(meta["recipe"])
    space = ConvNetSpace.from_preset("digits")
    torch.use_deterministic_algorithms(True)
    values = np.asarray(embedded.values)
    stored_of = lambda row, s: {m: float(values[row, s, 0, i]) for i, m in enumerate(METRICS)}  # noqa: E731
    for row, seed_pos in ((3, 0), (200, 1), (1000, 2)):
        layers = space.parse(str(embedded.archs[row]))
        got = train_network(layers, int(embedded.seeds[seed_pos]), recipe, data)
        assert _within_tolerance(got, stored_of(row, seed_pos)) == [], embedded.archs[row]
        # the tolerance is tighter than the seed-to-seed spread: another seed's row is outside it
        other = (seed_pos + 1) % len(embedded.seeds)
        assert _within_tolerance(got, stored_of(row, other)) != [], embedded.archs[row]
        if row == 1000:
            # identical hardware, same process: bit for bit
            again = train_network(layers, int(embedded.seeds[seed_pos]), recipe, data)
            assert {m: again[m] for m in METRICS if m != "train_time"} == \
                {m: got[m] for m in METRICS if m != "train_time"}


def test_partial_table_keeps_complete_seeds(tmp_path):
    out = tmp_path / "work"
    job = tiny_job(max_depth=1, seeds=2)
    col.collect(job, out, progress=False, log=lambda *_: None)
    shard = next((out / "shards").glob("*.jsonl"))
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines[:-1]))  # the last run (network 1, seed 1) is missing
    assert col.collect(job, out, progress=False, log=lambda *_: None, train=False) is None
    target = col.collect(job, out, progress=False, log=lambda *_: None, train=False, partial=True,
                         table_dir=tmp_path / "partial")
    table = load_table(target)
    assert table.seeds == ("0",) and table.meta["collection"]["partial"] is True


@pytest.mark.parametrize("umask", [0o002, 0o027], ids=["002", "027"])
def test_collection_files_follow_the_umask(tmp_path, umask):
    """Shards, the collection file and the table are shared output: the umask decides their
    modes (issue 12, item 2; shards used to be created 0644 whatever the umask)."""
    import stat
    old = os.umask(umask)
    try:
        target = col.collect(tiny_job(max_depth=1, seeds=1), tmp_path / "work", progress=False,
                             log=lambda *_: None)
    finally:
        os.umask(old)
    paths = list((tmp_path / "work").rglob("*"))
    assert any(p.suffix == ".jsonl" for p in paths) and Path(target) in paths
    for p in paths:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, p
