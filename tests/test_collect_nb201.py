"""The NB201 collector: training one representative per class of equal cells, resuming after
kill -9, and a table that maps the classes onto all 15,625 cells (served as an oracle)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")
require_module("sklearn")

from oracles import nb201_canonical as canon  # noqa: E402
from oracles.collectors import nb201 as col  # noqa: E402
from oracles.errors import CorruptData, UserError  # noqa: E402
from oracles.nb201_space import SIZE, arch_to_string  # noqa: E402
from oracles.table import load_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: a recipe that trains in about a tenth of a second: the collection machinery, not accuracy
TINY = col.CellRecipe(C=2, N=1, epochs=1, batch_size=512, lr=0.1)
#: a few classes with different networks: the all-none class, a conv cell, a skip-only cell
FEW = (0, canon.class_of((3, 0, 0, 0, 0, 2)), canon.class_of((0, 0, 0, 1, 0, 0)))


@pytest.fixture(autouse=True)
def _one_thread():
    # in-process collection switches torch to deterministic kernels; give other tests theirs back
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def quiet(*_):
    pass


def test_train_cell_deterministic_and_complete():
    from oracles.collectors.datasets import load_digits_split
    data = load_digits_split(0)
    col.configure_torch(1)
    a = col.train_cell((3, 1, 0, 2, 0, 4), 0, TINY, data)
    b = col.train_cell((3, 1, 0, 2, 0, 4), 0, TINY, data)
    c = col.train_cell((3, 1, 0, 2, 0, 4), 1, TINY, data)
    assert set(col.METRICS) <= set(a) and "params" in a
    keep = [m for m in col.METRICS if "time" not in m]
    assert [a[m] for m in keep] == [b[m] for m in keep]  # one process, one machine: same bits
    assert [a[m] for m in keep] != [c[m] for m in keep]
    assert all(0 <= a[f"{p}_acc"] <= 1 for p in ("train", "valid", "test"))
    assert a["train_cpu_time"] > 0
    # the all-none cell outputs zeros: its network still learns the class prior at best
    zero = col.train_cell((0,) * 6, 0, TINY, data)
    assert zero["params"] < a["params"]


def test_tiny_collection_of_a_few_classes(tmp_path):
    job = col.make_job("digits", 2, recipe=TINY, classes=FEW)
    assert job.classes == tuple(sorted(FEW))
    target = col.collect(job, tmp_path / "w", progress=False, log=quiet)
    rows, stats = col.read_rows(tmp_path / "w")
    assert len(rows) == 6 == stats["rows"] and stats["duplicates"] == 0
    reps = canon.representative_archs()
    for (c, s), row in rows.items():
        assert row["arch"] == arch_to_string(reps[c])
    table = load_table(target)
    assert table.meta["space"]["kind"] == "nb201-classes"
    assert list(table.archs) == [arch_to_string(reps[c]) for c in sorted(FEW)]
    assert table.seeds == ("0", "1") and not np.isnan(np.asarray(table.values)).any()
    assert list(table.columns["class"]) == sorted(FEW)
    assert table.meta["dataset"]["supernet_record"]["sizes"]["search_valid"] == 360
    # the same options resume (nothing to do); other options are refused
    assert col.collect(job, tmp_path / "w", progress=False, log=quiet) == target
    other = col.make_job("digits", 2, recipe=col.CellRecipe(C=2, N=1, epochs=2, batch_size=512), classes=FEW)
    with pytest.raises(UserError, match="different collection .*recipe"):
        col.collect(other, tmp_path / "w", progress=False, log=quiet)
    # a resume with other network code (its structure recorded at the start) is refused
    cfg_path = tmp_path / "w" / "collection.json"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["network"] == col.network_fingerprint(TINY, 1, 10) != col.network_fingerprint(TINY, 3, 10)
    cfg_path.write_text(json.dumps({**cfg, "network": "0" * 16}))
    with pytest.raises(UserError, match="other networks"):
        col.collect(job, tmp_path / "w", progress=False, log=quiet)


def test_run_order_is_seed_by_seed_over_a_random_class_order():
    job = col.make_job("digits", 2, recipe=TINY)
    tasks = col.all_tasks(job)
    assert len(tasks) == 2 * 6466 and tasks[6465][1] == 0 and tasks[6466][1] == 1
    first = [c for c, _ in tasks[:6466]]
    assert sorted(first) == list(range(6466)) and first != sorted(first)
    # a prefix of the order is a uniform sample: the make_job subset draws exactly it
    sub = col.make_job("digits", 1, recipe=TINY, classes=50)
    assert set(sub.classes) == set(first[:50])


_CHILD = """
import sys
sys.path.insert(0, {repo!r})
from oracles.collectors import nb201 as col
job = col.make_job("digits", 2, recipe=col.CellRecipe(C=2, N=1, epochs=1, batch_size=512), classes=4)
col.collect(job, {out!r}, progress=False)
"""


def test_kill_and_resume_no_duplicates_or_gaps(tmp_path):
    out = tmp_path / "work"
    job = col.make_job("digits", 2, recipe=col.CellRecipe(C=2, N=1, epochs=1, batch_size=512), classes=4)
    total = len(col.all_tasks(job))  # 4 classes x 2 seeds
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO), out=str(out))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and child.poll() is None:
        done = sum(p.read_bytes().count(b"\n") for p in (out / "shards").glob("*.jsonl")) \
            if (out / "shards").is_dir() else 0
        if done >= 2:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 2 <= done < total, "the child should have been killed part-way"
    shard = next((out / "shards").glob("*.jsonl"))
    with open(shard, "ab") as fh:  # what a kill in the middle of a write leaves: a torn last line
        fh.write(b'{"row": {"index": 0, "seed": 0, "valid_acc": 0.')
    before, stats = col.read_rows(out)
    assert stats["torn"] == 1 and 2 <= len(before) < total

    target = col.collect(job, out, progress=False, log=quiet)
    rows, stats = col.read_rows(out)
    assert stats["duplicates"] == 0 and len(rows) == total == stats["rows"]
    assert set(rows) == set(col.all_tasks(job))
    for key, row in before.items():  # finished rows were kept, not re-trained
        assert rows[key] == row
    # the resumed collection equals an uninterrupted one (all but the measured times)
    fresh = load_table(col.collect(job, tmp_path / "fresh", progress=False, log=quiet))
    keep = [col.METRICS.index(m) for m in col.METRICS if "time" not in m]
    assert np.array_equal(np.asarray(load_table(target).values)[..., keep], np.asarray(fresh.values)[..., keep])


def _rows_for_every_class(job):
    """Rows for every class as the collector writes them, with each class's numbers computed
    from its id so that the test can tell which class a cell's numbers came from."""
    reps = canon.representative_archs()
    rows = {}
    for c in range(canon.num_classes()):
        for s in job.seeds:
            m = {name: float(c * 10 + s) for name in col.METRICS}
            rows[(c, s)] = {"index": c, "seed": s, "arch": arch_to_string(reps[c]), "params": 100 + c, **m}
    return rows


def test_finalize_maps_classes_to_all_15625_cells_and_serves_an_oracle(tmp_path, monkeypatch):
    job = col.make_job("digits", 2, recipe=TINY, name="nb201-digits-test")
    out = tmp_path / "w"
    from oracles.collectors.datasets import load_digits_split
    col._prepare(out, job, col.data_record(load_digits_split(0)))
    rows = _rows_for_every_class(job)
    table = col.finalize(job, out, rows, tmp_path / "data" / job.name)
    values = np.asarray(table.values)
    assert values.shape == (SIZE, 2, 1, len(col.METRICS))
    ids = canon.class_ids()
    assert np.array_equal(values[:, 0, 0, 0], ids * 10.0) and np.array_equal(values[:, 1, 0, 0], ids * 10.0 + 1)
    assert np.array_equal(table.columns["class"], ids)
    assert np.array_equal(np.flatnonzero(table.columns["representative"]), canon.representatives())
    assert np.array_equal(table.columns["params"], 100 + ids)
    assert table.columns["class_size"].sum() == sum(canon.class_sizes() ** 2)
    assert list(table.archs) == [arch_to_string(a) for a in canon.all_archs()]

    # the table is an nb201 table: the registry serves it, every cell answering with its class
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    from oracles.registry import load_oracle
    oracle = load_oracle(job.name)
    assert oracle.space.size == SIZE
    # cells in product order, and the space says so (not NB201's official index order)
    assert not oracle.space.official_order and oracle.space.describe()["order"].startswith("product")
    rng = np.random.default_rng(0)
    for code in rng.choice(SIZE, size=20, replace=False):
        arch = tuple(int(o) for o in canon.all_archs()[code])
        rep = canon.representative_of(arch)
        assert oracle.space.index(arch) == code
        assert canon.class_of(rep) == ids[code]

    # a row that trained another cell than its class's representative is refused
    bad = dict(rows)
    bad[(5, 0)] = {**rows[(5, 0)], "arch": arch_to_string((4,) * 6)}
    with pytest.raises(CorruptData, match="representative"):
        col.finalize(job, out, bad, tmp_path / "bad")
    del bad[(5, 0)]
    with pytest.raises(CorruptData, match="missing"):
        col.finalize(job, out, bad, tmp_path / "bad")


def test_seed_agreement():
    rows = {(c, s): {"valid_acc": c + (0.5 if s and c == 3 else 0), "valid_loss": -c, "test_acc": c}
            for c in range(5) for s in (0, 1)}
    rows[(9, 0)] = {"valid_acc": 1, "valid_loss": 1, "test_acc": 1}  # only one seed: left out
    agree = col.seed_agreement(rows)
    assert agree["classes"] == 5 and agree["valid_acc"]["spearman"] == pytest.approx(1.0)
    rows[(0, 1)]["valid_loss"] = 0.5  # a larger gap, same order: rank statistics do not move
    rows[(4, 1)]["valid_loss"] = 5    # class 4 from lowest to highest loss under seed 1
    assert agree["valid_loss"]["spearman"] == pytest.approx(1.0)
    again = col.seed_agreement(rows)
    assert again["valid_loss"]["spearman"] == pytest.approx(0.0)  # d = (4, 1, 1, 1, 1) -> 1 - 6*20/120
    assert again["valid_acc"] == agree["valid_acc"]
    # undefined: fewer than three classes in common, or a constant
    assert col.seed_agreement({k: v for k, v in rows.items() if k[0] < 2})["valid_acc"]["spearman"] is None
    flat = {k: {**v, "test_acc": 0.5} for k, v in rows.items()}
    assert col.seed_agreement(flat)["test_acc"] == {"spearman": None, "kendall": None}


def test_cli_trial_and_status(tmp_path, capsys):
    from harness.cli import main
    out = tmp_path / "w"
    args = ["collect", "nb201", "--dataset", "digits", "--classes", "2", "--seeds", "2", "--channels", "2",
            "--epochs", "1", "--batch-size", "512", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "written to" in capsys.readouterr().out
    assert (out / "table" / "manifest.json").is_file()  # a trial's table stays in OUT
    assert main(["collect", "nb201", "--status", "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["done"] == info["total"] == 4 and info["seed_agreement"]["classes"] == 2
    assert main(["collect", "nb201", "--out", str(out)]) == 2
    assert "--dataset" in capsys.readouterr().err
