"""The result store (oracles.collectors.store): rows survive kills and resumes, torn lines
are never read, and processes racing for the same keys train each key once."""

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

from oracles.collectors.store import (ResultStore, encode_row, key_digest, scan, spec_digest,
                                      table_from_rows)
from oracles.errors import CorruptData

REPO = Path(__file__).resolve().parents[1]
KEY = ("arch", "seed")


def _rows(n, start=0):
    return [{"arch": f"a{i}", "seed": i % 3, "valid_acc": i / 7, "loss": float("nan") if i == 2 else 1.0 / (i + 1)}
            for i in range(start, start + n)]


def _shard(root: Path) -> Path:
    (path,) = (root / "shards").glob("*.jsonl")
    return path


def test_append_read_and_resume(tmp_path):
    with ResultStore(tmp_path, KEY) as store:
        for row in _rows(5):
            store.append(row)
        assert store.get(("a3", 0))["valid_acc"] == 3 / 7
    # another store (a resumed run) reads them back exactly, NaN included
    again = ResultStore(tmp_path, KEY)
    rows = again.rows()
    assert len(rows) == 5 and rows[("a4", 1)] == _rows(5)[4]
    assert np.isnan(rows[("a2", 2)]["loss"])
    # it appends to a shard of its own; the first one is never written again
    first = _shard(tmp_path).read_bytes()
    again.append(_rows(1, start=5)[0])
    again.close()
    shards = sorted((tmp_path / "shards").glob("*.jsonl"))
    assert len(shards) == 2 and first in [p.read_bytes() for p in shards]
    rows, stats = scan(tmp_path, KEY)
    assert len(rows) == 6 and stats == {"rows": 6, "torn": 0, "torn_shards": [], "duplicates": 0, "shards": 2}


def test_every_cut_of_a_shard_reads_the_complete_lines_before_it(tmp_path):
    src = tmp_path / "src"
    with ResultStore(src, KEY) as store:
        for row in _rows(4):
            store.append(row)
    data = _shard(src).read_bytes()
    ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    for cut in range(len(data) + 1):
        root = tmp_path / f"cut{cut}"
        (root / "shards").mkdir(parents=True)
        (root / "shards" / "shard-x.jsonl").write_bytes(data[:cut])
        rows, stats = scan(root, KEY)
        complete = sum(e <= cut for e in ends)
        assert len(rows) == complete, cut
        assert stats["torn"] == (0 if cut in ends or cut == 0 else 1), cut


def test_a_line_being_written_is_read_once_finished(tmp_path):
    # a reader sees a live writer's half-written line as a torn tail, then the whole row
    (tmp_path / "shards").mkdir()
    path = tmp_path / "shards" / "shard-live.jsonl"
    line = encode_row(_rows(1)[0])
    path.write_bytes(line[:10])
    reader = ResultStore(tmp_path, KEY)
    assert reader.rows() == {} and reader.stats()["torn"] == 1
    with open(path, "ab") as fh:
        fh.write(line[10:])
    assert reader.rows() == {("a0", 0): _rows(1)[0]} and reader.stats()["torn"] == 0


def test_damaged_lines(tmp_path):
    with ResultStore(tmp_path, KEY) as store:
        for row in _rows(3):
            store.append(row)
    path = _shard(tmp_path)
    good = path.read_bytes()
    # the last complete line damaged (a crash mid-write on some file systems): dropped as torn
    lines = good.split(b"\n")
    path.write_bytes(b"\n".join(lines[:2] + [lines[2].replace(b"a2", b"a9"), b""]))
    rows, stats = scan(tmp_path, KEY)
    assert set(rows) == {("a0", 0), ("a1", 1)} and stats["torn_shards"] == [path.name]
    # a damaged line with others after it: an edited file, refused with its line number
    path.write_bytes(good.replace(b'"a1"', b'"a7"'))
    with pytest.raises(CorruptData, match="line 2"):
        scan(tmp_path, KEY)
    # a line that is not a row at all
    path.write_bytes(b"not json\n" + good)
    with pytest.raises(CorruptData, match="line 1"):
        scan(tmp_path, KEY)


def test_duplicates_keep_the_first_row(tmp_path):
    for acc in (0.1, 0.2):
        with ResultStore(tmp_path, KEY) as store:
            store.append({"arch": "x", "seed": 0, "valid_acc": acc})
            time.sleep(0.01)
    rows, stats = scan(tmp_path, KEY)
    assert len(rows) == 1 and stats["duplicates"] == 1
    assert rows[("x", 0)]["valid_acc"] in (0.1, 0.2)


def test_compute_trains_once_and_gives_the_key_back_on_error(tmp_path):
    store = ResultStore(tmp_path, KEY)
    calls = []

    def fail():
        calls.append("fail")
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError):
        store.compute(("n", 1), fail)
    row, trained = store.compute(("n", 1), lambda: calls.append("ok") or {"valid_acc": 0.5})
    assert trained and row == {"arch": "n", "seed": 1, "valid_acc": 0.5}
    row2, trained2 = ResultStore(tmp_path, KEY).compute(("n", 1), lambda: calls.append("again") or {})
    assert not trained2 and row2 == row and calls == ["fail", "ok"]
    assert not list((tmp_path / "claims").glob("*.claim"))  # removed after the commit


def test_claims_exclude_other_holders_in_one_process(tmp_path):
    a, b = ResultStore(tmp_path, KEY), ResultStore(tmp_path, KEY)
    held = a.claim(("k", 0))
    assert held.held and held.row is None
    assert [c["key"] for c in b.claims()] == [["k", 0]] and b.claims()[0]["pid"] == os.getpid()
    with pytest.raises(TimeoutError):
        b.claim(("k", 0), timeout=0.2, poll=0.02)
    held.commit({"valid_acc": 1.0})
    got = b.claim(("k", 0), timeout=0.2)
    assert not got.held and got.row["valid_acc"] == 1.0
    held.release()  # idempotent


_HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from oracles.collectors.store import ResultStore
store = ResultStore({root!r}, ("arch", "seed"))
claim = store.claim(("k", 0))
open({ready!r}, "w").close()
time.sleep(60)
"""


def _wait_for(path: Path, child, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child did not get ready"
        time.sleep(0.02)


def test_a_killed_holders_claim_is_taken_over(tmp_path):
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER.format(repo=str(REPO), root=str(tmp_path),
                                                                   ready=str(ready))])
    try:
        _wait_for(ready, child)
        store = ResultStore(tmp_path, KEY)
        assert [c["pid"] for c in store.claims()] == [child.pid]
        with pytest.raises(TimeoutError):
            store.claim(("k", 0), timeout=0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the kernel released the dead holder's lock: the claim file is left, but not held
    assert list((tmp_path / "claims").glob("*.claim")) and store.claims() == []
    claim = store.claim(("k", 0), timeout=5)
    assert claim.held
    claim.commit({"valid_acc": 0.3})
    assert scan(tmp_path, KEY)[0][("k", 0)]["valid_acc"] == 0.3


_WRITER = """
import sys
sys.path.insert(0, {repo!r})
from oracles.collectors.store import ResultStore
store = ResultStore({root!r}, ("arch", "seed"))
i = 0
pad = "x" * 300000   # each line spans many pages: a kill can cut one in the middle
while True:
    store.append({{"arch": f"a{{i}}", "seed": 0, "pad": pad, "i": i}})
    i += 1
"""


def test_kills_mid_write_lose_nothing_written_and_tear_nothing_read(tmp_path):
    torn = 0
    for attempt in range(3):
        child = subprocess.Popen([sys.executable, "-c", _WRITER.format(repo=str(REPO), root=str(tmp_path))])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shards = list((tmp_path / "shards").glob("*.jsonl")) if (tmp_path / "shards").is_dir() else []
            if len(shards) == attempt + 1 and all(p.stat().st_size > 2_000_000 for p in shards):
                break
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        rows, stats = scan(tmp_path, KEY)
        # every complete line is a valid row (a torn one is dropped, never misread)
        complete = sum(p.read_bytes().count(b"\n") for p in (tmp_path / "shards").glob("*.jsonl"))
        assert len(rows) + stats["duplicates"] == complete
        assert all(len(r["pad"]) == 300000 for r in rows.values())
        torn += stats["torn"]
    # each session's rows are consecutive from its start: nothing before the kill was lost
    by_shard: dict[str, list[int]] = {}
    for path in (tmp_path / "shards").glob("*.jsonl"):
        reader_rows = [json.loads(line)["row"]["i"] for line in path.read_bytes().split(b"\n")[:-1]]
        by_shard[path.name] = reader_rows
    for seq in by_shard.values():
        assert seq == list(range(len(seq))) and len(seq) >= 1
    print(f"shards torn by the kills: {torn} of 3")


_RACER = """
import os, sys, time
sys.path.insert(0, {repo!r})
from oracles.collectors.store import ResultStore
store = ResultStore({root!r}, ("arch", "seed"))
log = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
keys = [(f"net{{i}}", 0) for i in range(8)]
order = keys if {who} % 2 == 0 else keys[::-1]
while not os.path.exists({go!r}):
    time.sleep(0.005)
def train(key):
    os.write(log, f"{{key[0]}} {{os.getpid()}}\\n".encode())
    time.sleep(0.05)
    return {{"valid_acc": int(key[0][3:]) / 10, "by": os.getpid()}}
for key in order:
    store.compute(key, lambda: train(key))
"""


def test_concurrent_processes_train_each_key_once(tmp_path):
    log, go = tmp_path / "trainings.log", tmp_path / "go"
    root = tmp_path / "store"
    children = [subprocess.Popen([sys.executable, "-c", _RACER.format(repo=str(REPO), root=str(root), log=str(log),
                                                                      go=str(go), who=w)]) for w in range(3)]
    time.sleep(0.5)
    go.touch()
    assert [c.wait(timeout=120) for c in children] == [0, 0, 0]
    trained = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(trained) == sorted(f"net{i}" for i in range(8))   # each key trained exactly once
    rows, stats = scan(root, KEY)
    assert len(rows) == 8 and stats["duplicates"] == 0 and stats["torn"] == 0
    assert {r["valid_acc"] for r in rows.values()} == {i / 10 for i in range(8)}
    assert not list((root / "claims").glob("*.claim"))   # every claim file removed under its lock


def test_store_pickles_without_its_shard(tmp_path):
    store = ResultStore(tmp_path, KEY)
    store.append(_rows(1)[0])
    copy = pickle.loads(pickle.dumps(store))
    copy.append(_rows(1, start=1)[0])
    copy.close()
    store.close()
    assert len(list((tmp_path / "shards").glob("*.jsonl"))) == 2 and len(scan(tmp_path, KEY)[0]) == 2


def test_specs_are_content_addressed(tmp_path):
    store = ResultStore(tmp_path, KEY)
    recipe = {"lr": 0.001, "epochs": 10}
    digest = store.put_spec(recipe)
    assert digest == spec_digest({"epochs": 10, "lr": 0.001}) and store.put_spec(dict(recipe)) == digest
    assert store.spec(digest) == recipe
    (tmp_path / "specs" / f"{digest}.json").write_text(json.dumps({"lr": 0.1, "epochs": 10}))
    with pytest.raises(CorruptData, match="modified"):
        store.spec(digest)
    with pytest.raises(CorruptData, match="missing"):
        store.spec("0" * 16)
    assert len(key_digest(("a", 1))) == 32 and key_digest(("a", 1)) != key_digest(("a", "1"))


def test_table_from_rows():
    rows = [{"arch": "A", "seed": 1, "valid_acc": 0.5, "p": 10}, {"arch": "B", "seed": 0, "valid_acc": 0.7, "p": 20},
            {"arch": "A", "seed": 0, "valid_acc": 0.6, "p": 10}]
    t = table_from_rows("t", rows, arch=lambda r: r["arch"], seed=lambda r: r["seed"], metrics=("valid_acc",),
                        fidelity=10, meta={"x": 1}, columns={"params": lambda r: r["p"]})
    assert list(t.archs) == ["A", "B"] and t.seeds == ("0", "1") and t.fidelities == (10,)
    assert t.values[0, :, 0, 0].tolist() == [0.6, 0.5]
    assert t.values[1, 0, 0, 0] == 0.7 and np.isnan(t.values[1, 1, 0, 0])
    assert t.columns["params"].tolist() == [10, 20] and t.meta == {"x": 1}
    with pytest.raises(CorruptData, match="two results"):
        table_from_rows("t", rows + rows[:1], arch=lambda r: r["arch"], seed=lambda r: r["seed"],
                        metrics=("valid_acc",), fidelity=10, meta={})
