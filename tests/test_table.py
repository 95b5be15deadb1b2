import json

import numpy as np
import pytest

from oracles.errors import CorruptData
from oracles.table import Table, load_table, save_table


def small_table():
    rng = np.random.default_rng(0)
    return Table(name="t", archs=np.array(["a", "b", "c"]), seeds=("1", "2"), fidelities=(10, 20),
                 metrics=("valid", "test"), values=rng.random((3, 2, 2, 2)),
                 columns={"params": np.array([1, 2, 3])}, meta={"space": {"kind": "x"}})


def test_round_trip(tmp_path):
    t = small_table()
    save_table(t, tmp_path / "t")
    u = load_table(tmp_path / "t")
    assert list(u.archs) == ["a", "b", "c"]
    np.testing.assert_array_equal(u.values, t.values)
    np.testing.assert_array_equal(u.columns["params"], [1, 2, 3])
    assert u.meta["space"] == {"kind": "x"} and len(u.meta["checksum"]) == 64
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "t").iterdir())


def test_seed_mean_ignores_missing_seeds(tmp_path):
    t = small_table()
    t.values[0, 1, :, :] = np.nan
    assert t.column("valid", 20)[0] == t.values[0, 0, 1, 0]
    assert t.column("valid", 20)[1] == pytest.approx(t.values[1, :, 1, 0].mean())


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    save_table(small_table(), tmp_path / "t")
    save_table(small_table(), tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_tables_are_refused(tmp_path, damage):
    save_table(small_table(), tmp_path / "t")
    f = tmp_path / "t" / "values.npy"
    if damage == "flip":
        b = bytearray(f.read_bytes())
        b[-3] ^= 0xFF
        f.write_bytes(bytes(b))
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:50])
    elif damage == "delete":
        f.unlink()
    else:
        (tmp_path / "t" / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptData, match="re-import"):
        load_table(tmp_path / "t")


def test_manifest_lists_a_checksum_per_file(tmp_path):
    save_table(small_table(), tmp_path / "t")
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert set(m["files"]) == {"archs.npy", "values.npy", "col.params.npy"}
    assert all(len(v["sha256"]) == 64 for v in m["files"].values())


def test_table_checksum_covers_the_metadata(tmp_path):
    # two tables with the same arrays and different metadata (e.g. a generic table imported
    # with and without --categorical) must not share a checksum: executors ship one copy per
    # checksum, and oracles cache per table checksum
    a, b = small_table(), small_table()
    b.meta = {"space": {"kind": "x", "numeric": ["w"]}}
    save_table(a, tmp_path / "a")
    save_table(b, tmp_path / "b")
    assert load_table(tmp_path / "a").meta["checksum"] != load_table(tmp_path / "b").meta["checksum"]
