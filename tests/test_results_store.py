"""The results store (harness/results.py) on its own: folder names, the manifest and its
refusals, run and failure files, what a run file holds and how it is encoded, exclusive use
and atomic writes with the umask's permissions. Written against the documented layout
(the module docstring), so that mutation testing (docs/mutation-testing.md) finds every
rule pinned down by a fast test."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import results
from harness.provenance import code_version
from harness.results import (FORMAT, META_KEY, Cell, ResultsStore, cpu_model, fingerprint, legacy_slug,
                             machine_info, records_to_arrow, run_table, slug)
from oracles.errors import UserError

MACHINE = {"cpu": "test cpu", "blas": []}


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def records(n=3, arch=False):
    """A run's records as the runner hands them over (``n`` queries)."""
    r = {"sample": np.arange(1, n + 1), "n_distinct": np.arange(1, n + 1),
         "arch_index": np.arange(10, 10 + n), "arch_id": np.array([f"a{i}" for i in range(n)], dtype=object),
         "search": np.linspace(0.5, 0.7, n), "cost": np.array([1.0, np.nan, 2.0][:n] + [3.0] * (n - 3)),
         "repeat": np.zeros(n, dtype=bool), "trial": np.arange(n), "fidelity": np.full(n, 200)}
    if arch:
        r = {**r, "arch": np.array([f"long form {i}" for i in range(n)], dtype=object)}
    return r


def store_with(tmp_path, *cells):
    store = ResultsStore(tmp_path / "out")
    return store, store.register(list(cells))


# --- folder names --------------------------------------------------------------------------
@pytest.mark.parametrize("text, folder, legacy", [
    ("lanas:split=adam", "lanas_split-adam", "lanas_split=adam"),
    ("nb201/cifar10", "nb201_cifar10", "nb201_cifar10"),
    ("a.b-c_d", "a.b-c_d", "a.b-c_d"),               # kept as they are
    ("x :/ y", "x_y", "x_y"),                          # a run of others becomes one _
    ("/lead:", "lead", "lead"),                        # no leading or trailing _
    ("__both__", "both", "both"),
    ("", "_", "_"),
    (":/:", "_", "_"),                                 # nothing left: still a name
    ("k=v=w", "k-v-w", "k=v=w"),
    ("LaNAS:Split=Adam", "LaNAS_Split-Adam", "LaNAS_Split=Adam"),   # capitals kept
    ("X:mas/X", "X_mas_X", "X_mas_X"),                 # only _ is stripped from the ends
])
def test_folder_names(text, folder, legacy):
    assert slug(text) == folder and legacy_slug(text) == legacy


def test_cell_names_and_folders():
    c = Cell("lanas:split=adam", "nb201/cifar10", {"budget": 5})
    assert c.key == "nb201/cifar10 | lanas:split=adam"
    assert c.new_folder == c.folder == "runs/nb201_cifar10/lanas_split-adam"
    assert c.legacy_folder == "runs/nb201_cifar10/lanas_split=adam"
    stored = Cell("lanas:split=adam", "nb201/cifar10", {"budget": 5}, stored_folder="runs/old/place")
    assert stored.folder == "runs/old/place" and stored.new_folder == c.new_folder
    # the facts and the folder are not part of what a cell is
    assert stored == c == Cell("lanas:split=adam", "nb201/cifar10", {"budget": 5}, oracle_facts={"size": 3})
    assert c != Cell("lanas:split=adam", "nb201/cifar10", {"budget": 6})


def test_fingerprints_are_stable_across_versions():
    # stored in every run file and compared on resume: a change would make every existing
    # folder refuse or redo its runs. Values: `printf '%s' '<json>' | sha256sum | cut -c1-16`
    assert fingerprint({"budget": 100, "algorithm": "random"}) == "cf7d87ae38901673"
    assert fingerprint({"algorithm": "random", "budget": 100}) == "cf7d87ae38901673"
    assert fingerprint({"path": Path("/x/y")}) == "fb40e97f9e9381d6"     # str() of what JSON lacks
    assert fingerprint({"algorithm": "random", "budget": 101}) != "cf7d87ae38901673"


# --- machine and code facts ----------------------------------------------------------------
@pytest.mark.parametrize("cpuinfo, model", [
    ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t: fpu\n",
     "Intel(R) Xeon(R) CPU @ 2.20GHz"),
    ("processor\t: 0\nBogoMIPS\t: 48.00\nProcessor\t: ARMv7 Processor rev 4 (v7l)\n", "ARMv7 Processor rev 4 (v7l)"),
    ("system type\t\t: MT7621\ncpu model\t\t: MIPS 1004Kc V2.15\n", "MIPS 1004Kc V2.15"),
    ("model name\t:   \nProcessor\t: the first one with a value\n", "the first one with a value"),
    ("model name\t: Vendor CPU: rev 2\n", "Vendor CPU: rev 2"),         # a colon in the value
])
def test_cpu_model_from_proc_cpuinfo(cpuinfo, model, monkeypatch):
    import io
    opened = []

    def fake_open(path, *a, **k):
        opened.append(path)
        return io.StringIO(cpuinfo)
    monkeypatch.setattr(results, "open", fake_open, raising=False)
    assert cpu_model() == model and opened == ["/proc/cpuinfo"]


def test_cpu_model_elsewhere_is_the_platforms_answer(monkeypatch):
    import io
    import platform

    def no_file(path, *a, **k):
        raise FileNotFoundError(path)
    monkeypatch.setattr(results, "open", no_file, raising=False)
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model() == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model() is None
    monkeypatch.setattr(results, "open", lambda *a, **k: io.StringIO("processor\t: 0\n"), raising=False)
    assert cpu_model() is None              # a cpuinfo without a model line: the platform's


def test_machine_info_describes_this_machine_and_is_a_copy():
    import platform
    info = machine_info()
    assert info["cpu"] == cpu_model() and info["machine"] == platform.machine()
    assert info["cpus"] == os.cpu_count() and info["numpy"] == np.__version__
    assert info["python"] == platform.python_version() and info["system"] == platform.platform(terse=True)
    from threadpoolctl import threadpool_info
    libs = threadpool_info()
    assert len(info["blas"]) == len(libs) > 0          # numpy's BLAS at least
    for mine, theirs in zip(info["blas"], libs):
        assert set(mine) == {"user_api", "internal_api", "version", "architecture", "threading_layer",
                             "num_threads"}
        assert all(mine[k] == theirs.get(k) for k in mine)
    # callers may change what they get
    info["cpu"] = "changed"
    info["blas"][0]["num_threads"] = -7
    again = machine_info()
    assert again["cpu"] == cpu_model() and again["blas"][0]["num_threads"] == libs[0]["num_threads"]
    one = machine_info(threads=1)
    assert [lib["num_threads"] for lib in one["blas"]] == [1] * len(libs)
    assert type(machine_info(threads=np.int64(3))["blas"][0]["num_threads"]) is int
    assert machine_info()["blas"][0]["num_threads"] == libs[0]["num_threads"]
    json.dumps(one)                                       # goes into JSON metadata as it is


def test_machine_info_is_looked_up_again_when_modules_were_imported(monkeypatch):
    import sys
    import types
    calls = []
    import threadpoolctl
    real = threadpoolctl.threadpool_info

    def counting():
        calls.append(1)
        return real()
    monkeypatch.setattr(threadpoolctl, "threadpool_info", counting)
    monkeypatch.setitem(sys.modules, "nas_harness_test_fresh_module", types.ModuleType("x"))
    machine_info()
    machine_info(threads=1)
    assert len(calls) == 1                                # cached while nothing is imported
    monkeypatch.setitem(sys.modules, "nas_harness_test_other_module", types.ModuleType("y"))
    machine_info()
    assert len(calls) == 2
    assert len(results._MACHINE) == 1                     # one entry kept, not one per import


# --- permissions ---------------------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_every_file_of_a_folder_has_the_umasks_mode(tmp_path, mask, mode):
    with umask(mask):
        store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
        with store.session():
            store.write_run(cell, 1, records(), {}, machine=MACHINE)
            store.write_failure(cell, 2, {"failed": "x"}, machine=MACHINE)
    files = [store.manifest_path, store.root / ".lock", store.run_path(cell, 1), store.failure_path(cell, 2)]
    assert [p.stat().st_mode & 0o777 for p in files] == [mode] * 4
    assert sorted(p.name for p in (store.root / cell.folder).iterdir()) == ["_seed-000002.failed.json",
                                                                            "seed-000001.parquet"]


# --- exclusive use ---------------------------------------------------------------------------
def test_a_session_holds_the_folder_and_sweeps_temporaries(tmp_path):
    store = ResultsStore(tmp_path / "new" / "out")
    with store.session() as held:
        assert held is store and (store.root / ".lock").exists()
        with pytest.raises(UserError, match="another nas-harness command is writing to .*out; wait"):
            with ResultsStore(store.root).session():
                pass
        # a write killed during the session leaves its temporary; the session's end removes it
        torn = store.root / "runs" / "o" / "a" / ".seed-000001.parquet.x1.tmp"
        torn.parent.mkdir(parents=True)
        torn.write_bytes(b"PAR1")
    assert not torn.exists()
    with store.session():                                 # released at the end
        pass
    # one left by a killed predecessor is gone when the next session starts
    torn.write_bytes(b"PAR1")
    with store.session():
        assert not torn.exists()


def test_a_folder_that_cannot_be_created_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write results folder .*file/out: .*check the folder is writable"):
        with ResultsStore(tmp_path / "file" / "out").session():
            pass


def test_temporaries_are_only_those_of_atomic_writes(tmp_path):
    store = ResultsStore(tmp_path)
    folder = tmp_path / "runs" / "o" / "a"
    folder.mkdir(parents=True)
    ckpt = folder / "seed-000002.ckpt"           # a one-shot run's checkpoint folder
    ckpt.mkdir()
    torn = [tmp_path / ".experiment.json.ab.tmp", folder / ".seed-000003.parquet.cd.tmp",
            folder / ".seed-000001.parquet.ef.tmp", ckpt / ".state.pt.gh.tmp"]
    kept = [tmp_path / "experiment.json", tmp_path / "notes.tmp", folder / "seed-000001.parquet",
            folder / "x.tmp", tmp_path / "runs" / ".deep.tmp", tmp_path / ".lock", ckpt / "state.pt"]
    for p in torn + kept:
        p.write_bytes(b"x")
    assert store.temporaries() == sorted(torn)
    assert store.sweep_temporaries() == 4
    assert store.temporaries() == [] and all(p.exists() for p in kept)
    assert store.sweep_temporaries() == 0


# --- the manifest ------------------------------------------------------------------------------
def test_an_empty_folder_has_an_empty_manifest(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.manifest_path == tmp_path / "experiment.json"
    assert store.read_manifest() == {"format": "nas-harness-results/1", "cells": {}}
    assert store.cells() == []
    assert list(store.iter_runs()) == [] and store.failures() == []


def test_register_writes_the_manifest_once_and_keeps_what_it_holds(tmp_path):
    store, cells = store_with(tmp_path, Cell("lanas:split=adam", "nb201/cifar10", {"budget": 5}),
                              Cell("random", "nb201/cifar10", {"budget": 5}))
    assert [c.stored_folder for c in cells] == ["runs/nb201_cifar10/lanas_split-adam", "runs/nb201_cifar10/random"]
    data = json.loads(store.manifest_path.read_text())
    assert data["format"] == FORMAT and data["code"] == code_version()
    assert data["cells"]["nb201/cifar10 | lanas:split=adam"] == {
        "label": "lanas:split=adam", "oracle": "nb201/cifar10", "folder": "runs/nb201_cifar10/lanas_split-adam",
        "config": {"budget": 5}}
    from datetime import datetime, timezone
    created = datetime.fromisoformat(data["created"])
    assert created.tzinfo is not None and abs((datetime.now(timezone.utc) - created).total_seconds()) < 3600
    assert store.cells() == [Cell("lanas:split=adam", "nb201/cifar10", {"budget": 5}),
                             Cell("random", "nb201/cifar10", {"budget": 5})]
    assert [c.folder for c in store.cells()] == [c.stored_folder for c in cells]
    # the same cells again: nothing to write (the file is not replaced)
    inode = store.manifest_path.stat().st_ino
    again = store.register([Cell("random", "nb201/cifar10", {"budget": 5})])
    assert store.manifest_path.stat().st_ino == inode and again[0].folder == "runs/nb201_cifar10/random"
    # a new cell is added next to the others; the creation time stays
    store.register([Cell("mcts", "nb201/cifar10", {"budget": 5})])
    data2 = json.loads(store.manifest_path.read_text())
    assert len(data2["cells"]) == 3 and data2["created"] == data["created"]


def test_register_with_no_cell_still_makes_a_results_folder(tmp_path):
    store = ResultsStore(tmp_path / "out")
    assert store.register([]) == []
    assert json.loads(store.manifest_path.read_text())["cells"] == {}


def test_a_cell_registered_again_with_another_configuration_is_refused(tmp_path):
    store, _ = store_with(tmp_path, Cell("random", "o", {"budget": 5, "seeds": 3, "same": 1}))
    with pytest.raises(UserError) as err:
        store.register([Cell("random", "o", {"budget": 6, "same": 1, "extra": True})])
    msg = str(err.value)
    assert "already holds 'o | random' run with a different configuration (budget, extra, seeds differ)" in msg
    assert "use another --out or a new algorithm label" in msg
    assert json.loads(store.manifest_path.read_text())["cells"]["o | random"]["config"]["budget"] == 5


def test_two_labels_with_one_folder_name_are_refused(tmp_path):
    store, _ = store_with(tmp_path, Cell("a:b", "o", {}))
    with pytest.raises(UserError, match=r"'o \| a/b' would be stored in runs/o/a_b, which already holds 'o \| a:b'"):
        store.register([Cell("a/b", "o", {})])
    # in one call too
    with pytest.raises(UserError, match="would be stored in runs/o/x_y"):
        ResultsStore(tmp_path / "two").register([Cell("x:y", "o", {}), Cell("x y", "o", {})])


def test_oracle_facts_are_stored_and_added_to_an_older_folder(tmp_path):
    store, _ = store_with(tmp_path, Cell("random", "o", {"budget": 5}))
    assert "oracle_facts" not in json.loads(store.manifest_path.read_text())["cells"]["o | random"]
    store.register([Cell("random", "o", {"budget": 5}, oracle_facts={"optimum": 0.9})])
    assert json.loads(store.manifest_path.read_text())["cells"]["o | random"]["oracle_facts"] == {"optimum": 0.9}
    # facts never excuse another configuration
    with pytest.raises(UserError, match="different configuration"):
        store.register([Cell("random", "o", {"budget": 6}, oracle_facts={"optimum": 0.9})])
    # a new cell with its facts
    store.register([Cell("mcts", "o", {"budget": 5}, oracle_facts={"optimum": 0.8})])
    assert json.loads(store.manifest_path.read_text())["cells"]["o | mcts"]["oracle_facts"] == {"optimum": 0.8}


def test_a_manifest_that_cannot_be_written_is_a_user_error(tmp_path):
    store = ResultsStore(tmp_path)
    store.manifest_path.mkdir()                              # a folder where the file goes
    (store.manifest_path / "x").write_text("")
    store.read_manifest = lambda: {"format": FORMAT, "cells": {}}
    with pytest.raises(UserError, match="cannot write results folder"):
        store.register([Cell("random", "o", {})])


@pytest.mark.parametrize("content, words", [
    (b"{not json", "is damaged (not JSON); it is not a results folder this version can use"),
    (b"\xff\xfe\x00", "is damaged (not JSON)"),
    (b"[]", "is not a nas-harness results manifest"),
    (json.dumps({"format": "nas-harness-results/2", "cells": {}}).encode(), "is not a nas-harness results manifest"),
    (json.dumps({"cells": {}}).encode(), "is not a nas-harness results manifest"),
    (json.dumps({"format": FORMAT, "cells": []}).encode(), "is not a nas-harness results manifest"),
    (json.dumps({"format": FORMAT}).encode(), "is not a nas-harness results manifest"),
])
def test_a_damaged_or_foreign_manifest_is_refused(tmp_path, content, words):
    (tmp_path / "experiment.json").write_bytes(content)
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ResultsStore(tmp_path).read_manifest()


GOOD = {"label": "lanas:split=adam", "oracle": "o", "config": {}, "folder": "runs/o/lanas_split-adam"}


@pytest.mark.parametrize("entry", [
    "not a dict",
    {**GOOD, "label": 3}, {k: v for k, v in GOOD.items() if k != "label"},
    {**GOOD, "oracle": None}, {k: v for k, v in GOOD.items() if k != "oracle"},
    {**GOOD, "config": []}, {k: v for k, v in GOOD.items() if k != "config"},
    {**GOOD, "folder": "../../elsewhere"}, {**GOOD, "folder": "runs/o/other"},
    {k: v for k, v in GOOD.items() if k != "folder"},
])
def test_a_manifest_entry_that_is_not_a_cell_is_refused(tmp_path, entry):
    (tmp_path / "experiment.json").write_text(json.dumps({"format": FORMAT, "cells": {"k": GOOD, "bad": entry}}))
    with pytest.raises(UserError, match=r"is damaged \(entry 'bad'\); restore it from a backup"):
        ResultsStore(tmp_path).read_manifest()


def test_a_manifest_with_a_folder_named_before_escaping_is_read(tmp_path):
    legacy = {**GOOD, "folder": "runs/o/lanas_split=adam"}
    (tmp_path / "experiment.json").write_text(json.dumps({"format": FORMAT, "cells": {"o | lanas:split=adam": legacy}}))
    store = ResultsStore(tmp_path)
    (cell,) = store.cells()
    assert cell.folder == "runs/o/lanas_split=adam"
    assert store.run_path(cell, 4) == tmp_path / "runs/o/lanas_split=adam/seed-000004.parquet"
    # registering it again keeps its folder
    (again,) = store.register([Cell("lanas:split=adam", "o", {})])
    assert again.folder == "runs/o/lanas_split=adam"


# --- run files -----------------------------------------------------------------------------------
def test_a_run_file_holds_its_records_and_everything_about_the_run(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("lanas:split=adam", "nb201/cifar10", {"budget": 3, "x": [1, 2]}))
    summary = {"samples_to_optimum": np.int64(3), "best": np.float32(0.5), "curve": np.array([1, 2]),
               "stopped": None}
    assert not store.is_done(cell, 7)
    path = store.write_run(cell, np.int64(7), records(), summary, machine=MACHINE)
    assert path == tmp_path / "out/runs/nb201_cifar10/lanas_split-adam/seed-000007.parquet"
    assert store.run_path(cell, 7) == path and store.is_done(cell, 7)
    meta = store.run_meta(path)
    assert meta == json.loads(pq.read_schema(path).metadata[b"nas_harness"])
    assert {k: meta[k] for k in ("format", "cell", "label", "oracle", "config", "seed", "machine")} == {
        "format": "nas-harness-results/1", "cell": "nb201/cifar10 | lanas:split=adam", "label": "lanas:split=adam",
        "oracle": "nb201/cifar10", "config": {"budget": 3, "x": [1, 2]}, "seed": 7, "machine": MACHINE}
    assert meta["cell_fingerprint"] == fingerprint({"x": [1, 2], "budget": 3})
    assert meta["summary"] == {"samples_to_optimum": 3, "best": 0.5, "curve": [1, 2], "stopped": None}
    assert meta["code"] == code_version()
    from datetime import datetime, timezone
    finished = datetime.fromisoformat(meta["finished"])
    assert abs((datetime.now(timezone.utc) - finished).total_seconds()) < 3600
    # this process's machine when none is given
    store.write_run(cell, 8, records(), {})
    assert store.run_meta(store.run_path(cell, 8))["machine"] == machine_info()
    t = pq.read_table(path)
    assert t.column_names == ["oracle", "algorithm", "seed", "config_id", "sample", "n_distinct", "arch_index",
                              "arch_id", "arch", "search", "cost", "repeat", "trial", "fidelity", "measured_s"]
    # records without measured seconds (a table oracle's, or older ones) read as unmeasured
    assert t.column("measured_s").null_count == 3
    assert t.column("oracle").to_pylist() == ["nb201/cifar10"] * 3
    assert t.column("algorithm").to_pylist() == ["lanas:split=adam"] * 3
    assert t.column("seed").to_pylist() == [7] * 3 and t.schema.field("seed").type == pa.int64()
    assert t.column("config_id").to_pylist() == [meta["cell_fingerprint"]] * 3
    assert t.column("arch").to_pylist() == t.column("arch_id").to_pylist() == ["a0", "a1", "a2"]
    assert t.column("cost").to_pylist() == [1.0, None, 2.0]
    assert t.column("search").to_pylist() == pytest.approx([0.5, 0.6, 0.7])


def test_run_files_are_compressed_with_labels_dictionary_encoded(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    path = store.write_run(cell, 1, records(50), {}, machine=MACHINE)
    md = pq.ParquetFile(path).metadata.row_group(0)
    chunks = {md.column(i).path_in_schema: md.column(i) for i in range(md.num_columns)}
    assert {c.compression for c in chunks.values()} == {"ZSTD"}
    dictionary = {name for name, c in chunks.items() if c.dictionary_page_offset is not None}
    assert dictionary == {"oracle", "algorithm", "config_id"}
    # read as a dictionary (categorical) column, so a whole folder's labels cost little
    t = pq.read_table(path)
    assert pa.types.is_dictionary(t.schema.field("algorithm").type)


def test_a_file_is_done_only_for_its_own_configuration_and_seed(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {"budget": 5}))
    path = store.write_run(cell, 1, records(), {}, machine=MACHINE)
    assert store.is_done(cell, 1) and not store.is_done(cell, 2)
    other = Cell("random", "o", {"budget": 6}, stored_folder=cell.folder)
    assert not store.is_done(other, 1)
    # a file copied to another seed's name is not that seed's run
    path.rename(store.run_path(cell, 2))
    assert not store.is_done(cell, 2) and not store.is_done(cell, 1)


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "not parquet", "no metadata",
                                    "metadata not json", "metadata a list"])
def test_run_meta_of_a_file_that_is_not_a_finished_run_is_none(tmp_path, damage):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    path = store.write_run(cell, 1, records(), {}, machine=MACHINE)
    if damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-30])
    elif damage == "not parquet":
        path.write_text("hello")
    else:
        table = pq.read_table(path)
        md = {"no metadata": {b"other": b"1"}, "metadata not json": {META_KEY: b"{oops"},
              "metadata a list": {META_KEY: b"[1, 2]"}}[damage]
        pq.write_table(table.replace_schema_metadata(md), path)
    assert store.run_meta(path) is None and not store.is_done(cell, 1)
    assert list(store.iter_runs()) == [] and list(store.iter_runs(with_records=True)) == []


def test_iter_runs_gives_the_finished_runs_of_the_folders_configuration(tmp_path):
    store, (a, b) = store_with(tmp_path, Cell("a", "o", {"budget": 5}), Cell("b", "o", {"budget": 5}))
    for seed in (3, 1, 2):
        store.write_run(a, seed, records(), {"seed_was": seed}, machine=MACHINE)
    store.write_run(b, 0, records(2), {}, machine=MACHINE)
    # a run file of another configuration in a's folder (copied in by hand) is not a's
    alien = Cell("a", "o", {"budget": 9}, stored_folder=a.folder)
    store.write_run(alien, 9, records(), {}, machine=MACHINE)
    got = [(c.label, m["seed"], t) for c, m, t in store.iter_runs()]
    assert got == [("a", 1, None), ("a", 2, None), ("a", 3, None), ("b", 0, None)]
    full = list(store.iter_runs(with_records=True))
    assert [(c.label, m["seed"], m["summary"]) for c, m, _ in full][:3] == [
        ("a", 1, {"seed_was": 1}), ("a", 2, {"seed_was": 2}), ("a", 3, {"seed_was": 3})]
    assert [t.num_rows for _, _, t in full] == [3, 3, 3, 2]
    assert full[0][2].column("seed").to_pylist() == [1, 1, 1]
    assert full[0][0].folder == a.folder
    # a cell without a folder yet (no run finished) is no error
    store.register([Cell("c", "o", {"budget": 5})])
    assert len(list(store.iter_runs())) == 4


def test_a_run_file_damaged_past_its_metadata_is_named(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    path = store.write_run(cell, 1, records(2000), {}, machine=MACHINE)
    raw = bytearray(path.read_bytes())
    raw[200:2000] = os.urandom(1800)                     # data pages; the footer still reads
    path.write_bytes(bytes(raw))
    assert store.run_meta(path) is not None
    assert len(list(store.iter_runs())) == 1             # without records the metadata suffices
    with pytest.raises(UserError, match=r"seed-000001.parquet is damaged; delete it and re-run the experiment"):
        list(store.iter_runs(with_records=True))


def test_a_summary_that_json_cannot_hold_is_refused(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        store.write_run(cell, 1, records(), {"x": object()}, machine=MACHINE)
    assert not store.run_path(cell, 1).exists()


def test_a_run_file_that_cannot_be_written_is_a_user_error(tmp_path):
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    store.run_path(cell, 1).mkdir(parents=True)           # a folder where the file goes
    (store.run_path(cell, 1) / "x").write_text("")
    with pytest.raises(UserError, match="cannot write .*seed-000001.parquet: .*check the folder is writable"):
        store.write_run(cell, 1, records(), {}, machine=MACHINE)
    with pytest.raises(UserError, match="cannot write .*_seed-000001.failed.json"):
        store.failure_path(cell, 1).mkdir()
        (store.failure_path(cell, 1) / "x").write_text("")
        store.write_failure(cell, 1, {"failed": "x"}, machine=MACHINE)


# --- failed runs -----------------------------------------------------------------------------------
def test_failures_are_recorded_until_the_run_is_done(tmp_path):
    store, (a, b) = store_with(tmp_path, Cell("a", "o", {"budget": 5}), Cell("b", "o", {"budget": 5}))
    summary = {"failed": "ValueError: boom", "traceback": "Traceback ...", "n_queries": np.int64(4),
               "n_distinct": 3, "other": "not kept"}
    path = store.write_failure(a, 2, summary, machine=MACHINE)
    assert path == tmp_path / "out/runs/o/a/_seed-000002.failed.json" == store.failure_path(a, 2)
    store.write_failure(b, 5, {"failed": "KeyError"}, machine=MACHINE)
    (fa, fb) = store.failures()
    assert {k: fa[k] for k in ("format", "cell", "label", "oracle", "seed", "failed", "traceback", "n_queries",
                               "n_distinct", "machine", "path")} == {
        "format": FORMAT, "cell": "o | a", "label": "a", "oracle": "o", "seed": 2, "failed": "ValueError: boom",
        "traceback": "Traceback ...", "n_queries": 4, "n_distinct": 3, "machine": MACHINE, "path": str(path)}
    assert fa["cell_fingerprint"] == fingerprint({"budget": 5}) and fa["code"] == code_version()
    assert "other" not in fa and "when" in fa
    assert (fb["seed"], fb["failed"], fb["traceback"], fb["n_queries"]) == (5, "KeyError", None, None)
    assert [f["seed"] for f in store.failures([b])] == [5]
    # not a finished run: the file does not count, pandas skips it, the next run retries
    assert not store.is_done(a, 2)
    assert store.write_failure(a, 3, {"failed": "x"})  # this machine's facts when none given
    assert json.loads(store.failure_path(a, 3).read_text())["machine"] == machine_info()
    # the run succeeds later: its failure file goes
    store.write_run(a, 2, records(), {}, machine=MACHINE)
    assert not path.exists()
    assert [f["seed"] for f in store.failures()] == [3, 5]


def test_failures_of_another_configuration_or_unreadable_are_not_listed(tmp_path):
    store, (a,) = store_with(tmp_path, Cell("a", "o", {"budget": 5}))
    old = Cell("a", "o", {"budget": 4}, stored_folder=a.folder)
    store.write_failure(old, 1, {"failed": "x"}, machine=MACHINE)
    (store.root / a.folder / "_seed-000002.failed.json").write_text("{torn")
    (store.root / a.folder / "_seed-000003.failed.json").write_text("[1]")
    (store.root / a.folder / "_seed-000004.failed.json").write_bytes(b"\xff\xfe")
    store.write_failure(a, 5, {"failed": "y"}, machine=MACHINE)
    assert [f["seed"] for f in store.failures()] == [5]
    # a failure file whose run is done (a stray copy, not the one the run removed) is not listed
    (store.root / a.folder / "_seed-000006.failed.json").write_text(json.dumps(
        {"cell_fingerprint": fingerprint({"budget": 5}), "seed": 5}))
    assert [f["seed"] for f in store.failures()] == [5, 5]
    store.write_run(a, 5, records(), {}, machine=MACHINE)
    assert store.failures() == []


# --- the columns of a run file -----------------------------------------------------------------------
def test_run_table_puts_the_naming_columns_first_and_adds_arch():
    t = run_table(records(), oracle="o", algorithm="a", seed=4, config_id="f")
    assert t.column_names[:4] == ["oracle", "algorithm", "seed", "config_id"]
    assert t.column_names[4:] == ["sample", "n_distinct", "arch_index", "arch_id", "arch", "search", "cost", "repeat",
                                  "trial", "fidelity", "measured_s"]
    assert [t.column(k).to_pylist() for k in ("oracle", "algorithm", "seed", "config_id")] == [
        ["o"] * 3, ["a"] * 3, [4] * 3, ["f"] * 3]
    assert all(pa.types.is_dictionary(t.schema.field(k).type) for k in ("oracle", "algorithm", "config_id"))
    # an arch column of its own is kept, not replaced by arch_id
    t = run_table(records(arch=True), oracle="o", algorithm="a", seed=4, config_id="f")
    assert t.column("arch").to_pylist() == ["long form 0", "long form 1", "long form 2"]
    assert t.column_names.count("arch") == 1
    # records without arch_id (an unusual algorithm) get no arch either
    r = records()
    del r["arch_id"]
    assert "arch" not in run_table(r, oracle="o", algorithm="a", seed=4, config_id="f").column_names


def test_run_table_brings_an_older_files_records_to_todays_layout():
    # files written before the naming columns, arch and trials: a table read back, maybe
    # with stale naming columns; trial k was the k-th query, fidelity and clock unknown
    old = records_to_arrow({k: v for k, v in records(4).items() if k not in ("trial", "fidelity")})
    old = old.append_column("seed", pa.array([9, 9, 9, 9]))
    t = run_table(old, oracle="o", algorithm="a", seed=4, config_id="f")
    assert t.column_names == ["oracle", "algorithm", "seed", "config_id", "sample", "n_distinct", "arch_index",
                              "arch_id", "arch", "search", "cost", "repeat", "trial", "fidelity", "start",
                              "finish", "epochs", "measured_s"]
    assert t.column("seed").to_pylist() == [4, 4, 4, 4]
    assert t.column("arch").to_pylist() == ["a0", "a1", "a2", "a3"]
    assert t.column("trial").to_pylist() == [0, 1, 2, 3] and t.schema.field("trial").type == pa.int64()
    assert t.column("fidelity").to_pylist() == [-1] * 4 and t.schema.field("fidelity").type == pa.int64()
    for name in ("start", "finish", "epochs", "measured_s"):
        assert t.column(name).to_pylist() == [None] * 4 and t.schema.field(name).type == pa.float64()
    # samples 5, 9 (a file whose first rows were cut): trials follow the samples
    cut = run_table({"sample": np.array([5, 9])}, oracle="o", algorithm="a", seed=1, config_id="f")
    assert cut.column("trial").to_pylist() == [4, 8]
    # today's records are kept as they are
    t = run_table(records(4), oracle="o", algorithm="a", seed=4, config_id="f")
    assert t.column("fidelity").to_pylist() == [200] * 4 and "start" not in t.column_names
    # without a sample column nothing is made up
    assert run_table({"x": np.array([1.0])}, oracle="o", algorithm="a", seed=1,
                     config_id="f").column_names == ["oracle", "algorithm", "seed", "config_id", "x"]
    empty = run_table({"sample": np.array([], dtype=np.int64), "arch_id": np.array([], dtype=object)},
                      oracle="o", algorithm="a", seed=1, config_id="f")
    assert empty.num_rows == 0 and empty.column_names[4:7] == ["sample", "arch_id", "arch"]


def test_record_columns_keep_their_values_and_types():
    t = records_to_arrow({"i32": np.array([1, -2], dtype=np.int32), "u8": np.array([3, 250], dtype=np.uint8),
                          "i64": np.array([2**40, -1]), "f32": np.array([0.5, np.nan], dtype=np.float32),
                          "b": np.array([True, False]), "s": np.array(["é", ""], dtype=object),
                          "list": [1.5, 2.5]})
    assert [str(f.type) for f in t.schema] == ["int32", "int64", "int64", "double", "bool", "string", "double"]
    assert t.to_pydict() == {"i32": [1, -2], "u8": [3, 250], "i64": [2**40, -1], "f32": [0.5, None],
                             "b": [True, False], "s": ["é", ""], "list": [1.5, 2.5]}
    assert t.column("f32").null_count == 1
    with pytest.raises(TypeError, match="no Arrow conversion for a complex128 column"):
        records_to_arrow({"c": np.array([1j])})


# --- pinned down by mutation testing (docs/mutation-testing.md) ---------------------------
def _key_order(raw: bytes) -> list[str]:
    return [k for k, _ in json.loads(raw, object_pairs_hook=lambda pairs: pairs)]


def test_written_json_is_sorted_and_indented(tmp_path):
    """The manifest and failure files are meant to be read and diffed by people: one key per
    line, indented by one space, keys sorted; a run file's metadata is sorted too, so the
    same run gives the same bytes."""
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {"z": 1, "a": 2}))
    text = store.manifest_path.read_text()
    lines = text.splitlines()
    assert lines[0] == "{" and lines[1] == ' "cells": {' and lines[-1] == "}"
    assert _key_order(text.encode()) == sorted(_key_order(text.encode()))
    assert ' "format": "nas-harness-results/1"' in lines and lines.index('    "a": 2,') + 1 == lines.index('    "z": 1')
    path = store.write_failure(cell, 1, {"failed": "x"}, machine=MACHINE)
    flines = path.read_text().splitlines()
    assert flines[0] == "{" and flines[1] == ' "cell": "o | random",' and len(flines) > 10
    assert _key_order(path.read_bytes()) == sorted(_key_order(path.read_bytes()))
    run = store.write_run(cell, 1, records(), {"zz": 1, "aa": 2}, machine=MACHINE)
    raw = pq.read_schema(run).metadata[META_KEY]
    assert _key_order(raw) == sorted(_key_order(raw))
    assert list(json.loads(raw)["summary"]) == ["aa", "zz"]


def test_times_are_utc(tmp_path):
    from datetime import datetime, timezone
    store, (cell,) = store_with(tmp_path, Cell("random", "o", {}))
    path = store.write_failure(cell, 1, {"failed": "x"}, machine=MACHINE)
    when = datetime.fromisoformat(json.loads(path.read_text())["when"])
    assert when.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 3600
    created = datetime.fromisoformat(json.loads(store.manifest_path.read_text())["created"])
    assert created.utcoffset().total_seconds() == 0


def test_registering_the_same_facts_again_writes_nothing(tmp_path):
    store, _ = store_with(tmp_path, Cell("random", "o", {"budget": 5}, oracle_facts={"optimum": 0.9}))
    inode = store.manifest_path.stat().st_ino
    store.register([Cell("random", "o", {"budget": 5}, oracle_facts={"optimum": 0.9})])
    assert store.manifest_path.stat().st_ino == inode


def test_refusals_say_what_to_do(tmp_path):
    (tmp_path / "experiment.json").write_text("[]")
    with pytest.raises(UserError) as err:
        ResultsStore(tmp_path).read_manifest()
    assert str(err.value) == f"{tmp_path}/experiment.json is not a nas-harness results manifest; choose another --out"
    (tmp_path / "experiment.json").write_text(json.dumps({"format": FORMAT, "cells": {"k": {"label": 1}}}))
    with pytest.raises(UserError) as err:
        ResultsStore(tmp_path).read_manifest()
    assert str(err.value) == (f"{tmp_path}/experiment.json is damaged (entry 'k'); restore it from a backup "
                              "or choose another --out")
    # a write that fails names the file, the system's reason and what to check
    store, (cell,) = store_with(tmp_path / "w", Cell("random", "o", {}))
    store.run_path(cell, 1).mkdir(parents=True)
    (store.run_path(cell, 1) / "x").write_text("")
    with pytest.raises(UserError) as err:
        store.write_run(cell, 1, records(), {}, machine=MACHINE)
    assert str(err.value) == (f"cannot write {store.run_path(cell, 1)}: Is a directory (check the folder is "
                              "writable and the disk is not full)")


def test_iter_runs_goes_past_what_it_skips(tmp_path):
    store = ResultsStore(tmp_path / "out")
    # a cell with no folder yet comes first in the manifest (its keys are sorted)
    nothing, a = store.register([Cell("0-nothing", "o", {}), Cell("a", "o", {"budget": 5})])
    assert [c.label for c in store.cells()] == ["0-nothing", "a"]
    alien = Cell("a", "o", {"budget": 9}, stored_folder=a.folder)
    store.write_run(alien, 0, records(), {}, machine=MACHINE)      # another configuration's, first in order
    store.write_run(a, 1, records(), {}, machine=MACHINE)
    store.run_path(a, 2).write_bytes(b"PAR1 torn")                  # not a finished run
    store.write_run(a, 3, records(), {}, machine=MACHINE)
    assert [m["seed"] for _, m, _ in store.iter_runs()] == [1, 3]
    assert [m["seed"] for _, m, _ in store.iter_runs(with_records=True)] == [1, 3]
    # the message of a damaged one
    path = store.write_run(a, 4, records(2000), {}, machine=MACHINE)
    raw = bytearray(path.read_bytes())
    raw[200:2000] = bytes(1800)
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError) as err:
        list(store.iter_runs(with_records=True))
    assert str(err.value) == f"{path} is damaged; delete it and re-run the experiment to recompute that run"


def test_a_failure_file_without_a_seed_is_listed(tmp_path):
    # a hand-edited or foreign failure file: listed (it is not a finished run), never a crash,
    # whatever runs are done
    store, (a,) = store_with(tmp_path, Cell("a", "o", {"budget": 5}))
    store.write_run(a, 1, records(), {}, machine=MACHINE)
    store.write_run(a, 0, records(), {}, machine=MACHINE)
    (store.root / a.folder / "_seed-000007.failed.json").write_text(json.dumps(
        {"cell_fingerprint": fingerprint({"budget": 5}), "failed": "x"}))
    assert [f["failed"] for f in store.failures()] == ["x"]


def test_string_and_seed_columns_keep_one_type():
    # strings of any length up to 2 GiB in all are Arrow strings (32-bit offsets)
    long = np.array(["x" * 100, "y" * 50], dtype=object)
    assert records_to_arrow({"s": long}).schema.field("s").type == pa.string()
    assert records_to_arrow({"s": long}).column("s").to_pylist() == ["x" * 100, "y" * 50]
    # a sample column of another integer type still gives int64 trials, as every other file
    t = run_table({"sample": np.array([1, 2], dtype=np.int32)}, oracle="o", algorithm="a", seed=1, config_id="f")
    assert t.schema.field("trial").type == pa.int64() and t.column("trial").to_pylist() == [0, 1]
    assert t.schema.field("fidelity").type == pa.int64()
