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


# ------------------------------------------------------- damage to every file (issue 20)
def two_column_table(n_archs=3, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    return Table(name="t", archs=np.array([f"arch-{i}" for i in range(n_archs)]), seeds=("1", "2"),
                 fidelities=(10, 20), metrics=("valid", "test"), values=rng.random((n_archs, 2, 2, 2)),
                 columns={"params": np.arange(1, n_archs + 1), "ops": rng.integers(0, 5, (n_archs, 6))},
                 meta={"space": {"kind": "x"}})


def _refused(directory, fname=None):
    with pytest.raises(CorruptData) as info:
        load_table(directory)
    msg = str(info.value)
    assert "re-import" in msg and "\n" not in msg
    if fname is not None:
        assert fname in msg
    return msg


def _flip(path, offset):
    b = bytearray(path.read_bytes())
    b[offset] ^= 0x10
    path.write_bytes(bytes(b))


def _other_valid_array(path):
    """A valid .npy of the same shape and dtype with different contents."""
    arr = np.load(path, allow_pickle=False)
    other = np.roll(arr, 1, axis=0) if arr.dtype.kind == "U" else (arr + 1).astype(arr.dtype)
    assert not np.array_equal(other, arr)
    np.save(path, other, allow_pickle=False)


DAMAGES = {
    "last byte flipped": lambda p: _flip(p, p.stat().st_size - 1),
    "header byte flipped": lambda p: _flip(p, 20),
    "one byte short": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "one byte longer": lambda p: p.write_bytes(p.read_bytes() + b"\0"),
    "emptied": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
    "other valid array": _other_valid_array,
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damage_to_any_file_the_manifest_lists_is_refused(tmp_path, damage):
    manifest = save_table(two_column_table(), tmp_path / "ref")
    assert set(manifest["files"]) == {"archs.npy", "values.npy", "col.params.npy", "col.ops.npy"}
    for fname in manifest["files"]:
        d = tmp_path / fname
        save_table(two_column_table(), d)
        DAMAGES[damage](d / fname)
        _refused(d, fname)


@pytest.mark.parametrize("where", ["at 1 MiB", "at 1.5 MiB", "last byte", "cut after 1 MiB"])
def test_damage_beyond_the_first_mebibyte_is_refused(tmp_path, where):
    table = two_column_table(n_archs=40_000)            # values.npy: 2.56 MB
    save_table(table, tmp_path / "t")
    f = tmp_path / "t" / "values.npy"
    size = f.stat().st_size
    assert size > 2 * 2 ** 20
    if where == "cut after 1 MiB":
        f.write_bytes(f.read_bytes()[:2 ** 20 + 1])
    else:
        _flip(f, {"at 1 MiB": 2 ** 20, "at 1.5 MiB": 3 * 2 ** 19 + 7, "last byte": size - 1}[where])
    _refused(tmp_path / "t", "values.npy")


@pytest.mark.parametrize("edit", ["truncated", "emptied", "deleted", "values entry removed",
                                  "archs entry removed", "column checksum changed",
                                  "column listed twice as another file"])
def test_damaged_manifests_are_refused(tmp_path, edit):
    save_table(two_column_table(), tmp_path / "t")
    mf = tmp_path / "t" / "manifest.json"
    text = mf.read_text()
    m = json.loads(text)
    if edit == "truncated":
        mf.write_text(text[: len(text) // 2])
    elif edit == "emptied":
        mf.write_text("")
    elif edit == "deleted":
        mf.unlink()
    elif edit == "values entry removed":
        del m["files"]["values.npy"]
    elif edit == "archs entry removed":
        del m["files"]["archs.npy"]
    elif edit == "column checksum changed":
        m["files"]["col.ops.npy"]["sha256"] = "0" * 64
    else:   # the params entry points at the ops file's checksum and shape
        m["files"]["col.params.npy"] = m["files"]["col.ops.npy"]
    if "removed" in edit or "column" in edit:
        mf.write_text(json.dumps(m))
    _refused(tmp_path / "t")


def test_every_single_bit_flip_in_the_manifest_is_refused_or_changes_no_array(tmp_path):
    """A flip in manifest.json never yields other arrays, and never an error other than
    CorruptData. (Flips inside the axes labels or metadata that leave valid JSON are still
    loaded: the manifest carries no checksum of its own; see issue 20's notes.)"""
    save_table(two_column_table(), tmp_path / "t")
    ref = load_table(tmp_path / "t")
    ref_arrays = {"archs": np.array(ref.archs), "values": np.array(ref.values),
                  **{k: np.array(v) for k, v in ref.columns.items()}}
    mf = tmp_path / "t" / "manifest.json"
    orig = mf.read_bytes()
    refused = 0
    for offset in range(len(orig)):
        for bit in (0x01, 0x04, 0x20):
            b = bytearray(orig)
            b[offset] ^= bit
            mf.write_bytes(bytes(b))
            try:
                u = load_table(tmp_path / "t")
            except CorruptData as exc:
                assert "re-import" in str(exc) and "\n" not in str(exc)
                refused += 1
                continue
            got = {"archs": np.array(u.archs), "values": np.array(u.values),
                   **{k: np.array(v) for k, v in u.columns.items()}}
            assert got.keys() == ref_arrays.keys()
            for k in got:
                np.testing.assert_array_equal(got[k], ref_arrays[k])
    assert refused > 0.8 * 3 * len(orig)
