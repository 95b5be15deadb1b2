"""The table format (oracles/table.py): the in-memory Table, atomic writes, and refusal of
every kind of damage: to each file a manifest lists (column files included, bytes past the
first mebibyte), to the manifest itself (every single-bit flip, hand edits), and tables of
the older format /1 (refused with one line; ``python -m oracles.table upgrade`` converts)."""

import hashlib
import io
import json
import os
import secrets
import shutil
import sys
import warnings

import numpy as np
import pytest

from oracles.errors import CorruptData
from oracles.registry import EMBEDDED_DIR
from oracles.table import (CHECKSUM_FIELD, FORMAT, MANIFEST, Table, file_sha256, load_table, main,
                           manifest_digest, read_manifest, save_table, upgrade_table)

OLD = "nas-harness-table/1"


def small_table():
    rng = np.random.default_rng(0)
    return Table(name="t", archs=np.array(["a", "b", "c"]), seeds=("1", "2"), fidelities=(10, 20),
                 metrics=("valid", "test"), values=rng.random((3, 2, 2, 2)),
                 columns={"params": np.array([1, 2, 3])}, meta={"space": {"kind": "x"}})


def two_column_table(n_archs=3, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    return Table(name="t", archs=np.array([f"arch-{i}" for i in range(n_archs)]), seeds=("1", "2"),
                 fidelities=(10, 20), metrics=("valid", "test"), values=rng.random((n_archs, 2, 2, 2)),
                 columns={"params": np.arange(1, n_archs + 1), "ops": rng.integers(0, 5, (n_archs, 6))},
                 meta={"space": {"kind": "x"}})


def assert_same_table(a: Table, b: Table, checksum=True):
    assert (a.name, a.seeds, a.fidelities, a.metrics) == (b.name, b.seeds, b.fidelities, b.metrics)
    np.testing.assert_array_equal(np.asarray(a.archs), np.asarray(b.archs))
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))
    assert a.columns.keys() == b.columns.keys()
    for k in a.columns:
        np.testing.assert_array_equal(np.asarray(a.columns[k]), np.asarray(b.columns[k]))
    ma, mb = dict(a.meta), dict(b.meta)
    if not checksum:
        ma.pop("checksum", None), mb.pop("checksum", None)
    assert ma == mb


def _refused(directory, fragment=None):
    """Loading ``directory`` raises CorruptData: one line, ending with what to do (and
    holding ``fragment``)."""
    with pytest.raises(CorruptData) as info:
        load_table(directory)
    msg = str(info.value)
    assert msg.endswith(("; re-import the table", "(or re-import the table)")) and "\n" not in msg
    if fragment is not None:
        assert fragment in msg
    return msg


def _edit(directory, edit, checksum=True):
    """Edit the manifest as a person would, recomputing its checksum unless told not to."""
    path = directory / MANIFEST
    m = json.loads(path.read_text())
    edit(m)
    if checksum:
        m[CHECKSUM_FIELD] = manifest_digest(m)
    path.write_text(json.dumps(m, indent=1, sort_keys=True))


def _as_format_1(directory):
    """Rewrite a table's manifest exactly as format /1 wrote it (no checksum of its own)."""
    path = directory / MANIFEST
    m = json.loads(path.read_text())
    del m[CHECKSUM_FIELD]
    m["format"] = OLD
    path.write_text(json.dumps(m, indent=1, sort_keys=True))


def _flip_byte(path, offset, bit=0x10):
    b = bytearray(path.read_bytes())
    b[offset] ^= bit
    path.write_bytes(bytes(b))


# ------------------------------------------------------------------ the in-memory Table
def test_axes_are_normalised_and_shapes_checked():
    t = Table(name="t", archs=np.array(["a", "b"]), seeds=(7, "8"), fidelities=("12", 200.0),
              metrics=("valid",), values=np.zeros((2, 2, 2, 1)), columns={"c": np.array([5, 6])})
    assert (t.seeds, t.fidelities, t.metrics, t.n_archs) == (("7", "8"), (12, 200), ("valid",), 2)
    with pytest.raises(ValueError, match=r"values has shape \(2, 2, 2, 1\), axes say \(2, 1, 2, 1\)"):
        Table(name="t", archs=np.array(["a", "b"]), seeds=("1",), fidelities=(1, 2), metrics=("v",),
              values=np.zeros((2, 2, 2, 1)))
    for wrong in ((2, 1, 1, 1), (3, 1, 2, 1), (2, 1, 2, 2)):   # each axis checked, archs included
        with pytest.raises(ValueError, match="values has shape"):
            Table(name="t", archs=np.array(["a", "b"]), seeds=("1",), fidelities=(1, 2), metrics=("v",),
                  values=np.zeros(wrong))
    with pytest.raises(ValueError, match="column 'c' has 3 rows, table has 2"):
        Table(name="t", archs=np.array(["a", "b"]), seeds=("1",), fidelities=(1,), metrics=("v",),
              values=np.zeros((2, 1, 1, 1)), columns={"ok": np.array([1, 2]), "c": np.array([1, 2, 3])})


def _hand_table():
    # values[arch, seed, fidelity, metric] with numbers whose means are written out below
    v = np.full((3, 2, 2, 2), np.nan, dtype=np.float32)
    v[:, 0, 1, 0] = [0.5, 0.25, np.nan]          # valid, 20 epochs, seed "1"
    v[:, 1, 1, 0] = [0.75, np.nan, np.nan]       # valid, 20 epochs, seed "2"
    v[:, 0, 0, 0] = [0.125, 0.375, 0.5]          # valid, 10 epochs, seed "1"
    v[:, 1, 0, 0] = [0.375, 0.125, 1.0]          # valid, 10 epochs, seed "2"
    v[:, :, :, 1] = 0.0                          # test
    return Table(name="h", archs=np.array(["a", "b", "c"]), seeds=("1", "2"), fidelities=(10, 20),
                 metrics=("valid", "test"), values=v)


def test_column_means_over_present_seeds_at_the_last_fidelity_by_default():
    t = _hand_table()
    default = t.column("valid")
    assert default.dtype == np.float64
    np.testing.assert_array_equal(default[:2], [0.625, 0.25])   # (0.5+0.75)/2; seed "2" missing
    assert np.isnan(default[2])                                   # every seed missing
    np.testing.assert_array_equal(t.column("valid", 20)[:2], default[:2])
    np.testing.assert_array_equal(t.column("valid", 10), [0.25, 0.25, 0.75])
    np.testing.assert_array_equal(t.column("test", 10), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(t.column("valid", 10, seed="2"), [0.375, 0.125, 1.0])
    np.testing.assert_array_equal(t.column("valid", 10, seed=1), [0.125, 0.375, 0.5])
    assert t.column("valid", 10, seed="1").dtype == np.float64


def test_column_sums_seeds_in_float64_and_silently():
    v = np.zeros((2, 2, 1, 1), dtype=np.float32)
    v[0, :, 0, 0] = [1.0, 2.0 ** -24]        # a float32 sum would round 1 + 2**-24 to 1
    v[1, :, 0, 0] = [np.inf, -np.inf]        # no mean: NaN, without a RuntimeWarning
    t = Table(name="f", archs=np.array(["a", "b"]), seeds=("1", "2"), fidelities=(1,), metrics=("m",), values=v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        col = t.column("m")
    assert col[0] == 0.5 + 2.0 ** -25 and np.isnan(col[1])


@pytest.mark.parametrize("call, message", [
    (lambda t: t.column("nope"), "table 'h' has no metric 'nope' (it has valid, test)"),
    (lambda t: t.column("valid", 11), "table 'h' has no fidelity 11 (it has 10, 20)"),
    (lambda t: t.column("valid", seed="3"), "table 'h' has no seed 3 (it has 1, 2)"),
    (lambda t: t.metric_index("nope"), "table 'h' has no metric 'nope' (it has valid, test)"),
    (lambda t: t.fidelity_index(11), "table 'h' has no fidelity 11 (it has 10, 20)"),
    (lambda t: t.seed_index("x"), "table 'h' has no seed x (it has 1, 2)"),
])
def test_unknown_axis_labels_are_one_line_errors(call, message):
    with pytest.raises(CorruptData) as info:
        call(_hand_table())
    assert str(info.value) == message


def test_axis_indices():
    t = _hand_table()
    assert (t.metric_index("test"), t.fidelity_index("20"), t.seed_index(2)) == (1, 1, 1)


# ------------------------------------------------------------------ saving and loading
def test_round_trip(tmp_path):
    t = small_table()
    manifest = save_table(t, tmp_path / "t")
    u = load_table(tmp_path / "t")
    # loaded memory-mapped (NB101's full table is hundreds of MB), read-only
    assert all(isinstance(a, np.memmap) or isinstance(a.base, np.memmap)
               for a in (u.archs, u.values, *u.columns.values()))
    assert not any(a.flags.writeable for a in (u.archs, u.values, *u.columns.values()))
    assert_same_table(t, u, checksum=False)
    assert len(u.meta["checksum"]) == 64 and "checksum" not in t.meta
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "t").iterdir())
    # what save_table returns is what the file holds: the current format, its own checksum
    assert json.loads((tmp_path / "t" / MANIFEST).read_text()) == manifest == read_manifest(tmp_path / "t")
    assert manifest["format"] == FORMAT == "nas-harness-table/2"
    assert manifest[CHECKSUM_FIELD] == manifest_digest(manifest)
    assert manifest["columns"] == ["params"] and manifest["name"] == "t"
    assert manifest["axes"] == {"archs": 3, "seeds": ["1", "2"], "fidelities": [10, 20], "metrics": ["valid", "test"]}
    assert manifest["files"]["values.npy"]["shape"] == [3, 2, 2, 2]
    assert manifest["files"]["values.npy"]["dtype"] == "<f8"


def test_a_table_with_no_metadata_loads(tmp_path):
    t = small_table()
    t.meta = {}
    save_table(t, tmp_path / "t")
    with_empty = load_table(tmp_path / "t").meta["checksum"]
    _edit(tmp_path / "t", lambda m: m.pop("meta"))
    u = load_table(tmp_path / "t")
    assert set(u.meta) == {"checksum"}
    assert u.meta["checksum"] == with_empty      # no metadata and empty metadata: one table


def test_saving_creates_missing_folders_and_stores_labels_as_text(tmp_path):
    t = small_table()
    t.archs = np.array(["a", "b", "c"], dtype=object)      # as pandas hands them over
    save_table(t, tmp_path / "x" / "y" / "t")
    u = load_table(tmp_path / "x" / "y" / "t")
    assert u.archs.dtype.kind == "U" and list(u.archs) == ["a", "b", "c"]


def test_the_manifest_is_written_for_people_and_diffs(tmp_path):
    # one top-level key per line, one space of indent, in sorted order: a re-saved or
    # upgraded manifest (the shipped one is in git) differs only where its content does
    m = save_table(small_table(), tmp_path / "t")
    lines = (tmp_path / "t" / MANIFEST).read_text().splitlines()
    top = [ln.split('"')[1] for ln in lines if ln.startswith(' "')]
    assert top == sorted(m) == sorted(top) and len(top) == 7
    assert lines[0] == "{" and lines[-1] == "}" and len(lines) > 40


def test_seed_mean_ignores_missing_seeds(tmp_path):
    t = small_table()
    t.values[0, 1, :, :] = np.nan
    assert t.column("valid", 20)[0] == t.values[0, 0, 1, 0]
    assert t.column("valid", 20)[1] == pytest.approx((t.values[1, 0, 1, 0] + t.values[1, 1, 1, 0]) / 2)


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    save_table(small_table(), tmp_path / "t")
    second = two_column_table()
    save_table(second, tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert_same_table(second, load_table(tmp_path / "t"), checksum=False)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "archs.npy", "col.ops.npy", "col.params.npy", MANIFEST, "values.npy"]


def test_a_failed_save_keeps_the_old_table_and_leaves_nothing_behind(tmp_path):
    save_table(small_table(), tmp_path / "t")
    bad = small_table()
    bad.columns["objects"] = np.array([{}, {}, {}], dtype=object)
    with pytest.raises(ValueError, match="'col.objects' has dtype object"):
        save_table(bad, tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert_same_table(small_table(), load_table(tmp_path / "t"), checksum=False)
    with pytest.raises(ValueError, match="dtype object"):
        save_table(bad, tmp_path / "new" / "u")          # parents are created; nothing left
    assert list((tmp_path / "new").iterdir()) == []


def _unlink_fails(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("busy")
    monkeypatch.setattr(os, "unlink", refuse)


def test_a_save_whose_clean_up_fails_still_succeeds(tmp_path, monkeypatch):
    save_table(small_table(), tmp_path / "t")
    _unlink_fails(monkeypatch)              # the old table's files cannot be removed
    save_table(two_column_table(), tmp_path / "t")
    monkeypatch.undo()
    assert_same_table(two_column_table(), load_table(tmp_path / "t"), checksum=False)


def test_a_failed_save_reports_its_own_error_even_if_clean_up_fails(tmp_path, monkeypatch):
    bad = small_table()
    bad.columns["objects"] = np.array([{}, {}, {}], dtype=object)
    _unlink_fails(monkeypatch)
    with pytest.raises(ValueError, match="dtype object"):
        save_table(bad, tmp_path / "t")


def test_temporary_folder_names_are_retried_then_given_up(tmp_path, monkeypatch):
    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".t.aaaa").mkdir()          # left over by another writer
    save_table(small_table(), tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.aaaa", "t"]
    monkeypatch.setattr(secrets, "token_hex", lambda n: "aaaa")
    (tmp_path / ".u.aaaa").mkdir()
    with pytest.raises(FileExistsError, match="cannot create a temporary directory next to .*u$"):
        save_table(small_table(), tmp_path / "u")


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_saved_and_upgraded_tables_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        save_table(small_table(), tmp_path / "t")
        _as_format_1(tmp_path / "t")
        os.chmod(tmp_path / "t" / MANIFEST, 0o600)
        upgrade_table(tmp_path / "t")
    finally:
        os.umask(old)
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o777 & ~mask
    for p in (tmp_path / "t").iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p.name


def test_manifest_lists_a_checksum_per_file(tmp_path):
    save_table(small_table(), tmp_path / "t")
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert set(m["files"]) == {"archs.npy", "values.npy", "col.params.npy"}
    for fname, info in m["files"].items():
        assert info["sha256"] == hashlib.sha256((tmp_path / "t" / fname).read_bytes()).hexdigest()


def test_file_sha256_reads_the_whole_file(tmp_path):
    f = tmp_path / "f"
    data = np.random.default_rng(1).bytes(5 * 2 ** 19 + 3)   # 2.5 MiB and 3 bytes: three chunks
    f.write_bytes(data)
    assert file_sha256(f) == file_sha256(str(f)) == hashlib.sha256(data).hexdigest()


def test_table_checksum_covers_the_metadata(tmp_path):
    # two tables with the same arrays and different metadata (e.g. a generic table imported
    # with and without --categorical) must not share a checksum: executors ship one copy per
    # checksum, and oracles cache per table checksum
    a, b = small_table(), small_table()
    b.meta = {"space": {"kind": "x", "numeric": ["w"]}}
    save_table(a, tmp_path / "a")
    save_table(b, tmp_path / "b")
    assert load_table(tmp_path / "a").meta["checksum"] != load_table(tmp_path / "b").meta["checksum"]


def test_table_checksum_is_of_the_contents(tmp_path):
    save_table(small_table(), tmp_path / "a")
    save_table(small_table(), tmp_path / "same")
    other_values, other_axis = small_table(), small_table()
    other_values.values[0, 0, 0, 0] += 1
    other_axis.seeds = ("1", "3")
    save_table(other_values, tmp_path / "v")
    save_table(other_axis, tmp_path / "s")
    chk = {d: load_table(tmp_path / d).meta["checksum"] for d in ("a", "same", "v", "s")}
    assert chk["a"] == chk["same"]
    assert len({chk["a"], chk["v"], chk["s"]}) == 3
    # the documented form (unchanged since format /1): the per-file hashes, axes and meta
    m = read_manifest(tmp_path / "a")
    payload = json.dumps({"files": {k: v["sha256"] for k, v in m["files"].items()},
                          "axes": m["axes"], "meta": m["meta"]}, sort_keys=True)
    assert chk["a"] == hashlib.sha256(payload.encode()).hexdigest()


# ------------------------------------------------------- the manifest's own checksum
def test_the_manifest_checksum_is_of_its_canonical_form(tmp_path):
    save_table(small_table(), tmp_path / "t")
    ref = load_table(tmp_path / "t")
    path = tmp_path / "t" / MANIFEST
    m = json.loads(path.read_text())
    # layout and key order do not matter: another indentation, keys reversed, loads the same
    path.write_text(json.dumps(dict(reversed(list(m.items()))), indent=4))
    assert_same_table(ref, load_table(tmp_path / "t"))
    # the rule is public: an edit with the checksum recomputed by it is accepted...
    _edit(tmp_path / "t", lambda m: m["axes"].update(metrics=["valid", "test2"]))
    assert load_table(tmp_path / "t").metrics == ("valid", "test2")
    # ...and the same kind of edit without it is refused
    _edit(tmp_path / "t", lambda m: m["axes"].update(metrics=["valid", "test3"]), checksum=False)
    _refused(tmp_path / "t", "does not match its own checksum")


def test_manifest_digest_covers_every_field_but_its_own(tmp_path):
    m = save_table(small_table(), tmp_path / "t")
    digest = manifest_digest(m)
    assert digest == hashlib.sha256(json.dumps({k: v for k, v in m.items() if k != CHECKSUM_FIELD},
                                               sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert manifest_digest({**m, CHECKSUM_FIELD: "anything"}) == digest
    assert manifest_digest({k: v for k, v in m.items() if k != CHECKSUM_FIELD}) == digest
    for key in m:
        if key != CHECKSUM_FIELD:
            assert manifest_digest({**m, key: "changed"}) != digest, key
    assert manifest_digest({**m, "extra": 1}) != digest
    # non-ASCII labels are hashed as their JSON escapes, whatever the file's encoding
    u = {**m, "name": "t\u00e9"}
    assert manifest_digest(u) == hashlib.sha256(json.dumps(
        {k: v for k, v in u.items() if k != CHECKSUM_FIELD}, sort_keys=True,
        separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m.pop(CHECKSUM_FIELD), "does not match its own checksum"),
    (lambda m: m.update({CHECKSUM_FIELD: 7}), "does not match its own checksum"),
    (lambda m: m.update({CHECKSUM_FIELD: m[CHECKSUM_FIELD].upper()}), "does not match its own checksum"),
    (lambda m: m.update(format="nas-harness-table/3"), "manifest.json is not a nas-harness-table/2 manifest"),
    (lambda m: m.pop("format"), "manifest.json is not a nas-harness-table/2 manifest"),
    (lambda m: m["meta"].update(note="x"), "does not match its own checksum"),
    (lambda m: m.update(name="u"), "does not match its own checksum"),
    (lambda m: m.update(columns=[]), "does not match its own checksum"),
])
def test_manifest_edits_without_a_new_checksum_are_refused(tmp_path, edit, fragment):
    save_table(small_table(), tmp_path / "t")
    _edit(tmp_path / "t", edit, checksum=False)
    assert _refused(tmp_path / "t", fragment).startswith(str(tmp_path / "t" / MANIFEST))


@pytest.mark.parametrize("content, fragment", [
    (b"[1, 2]", "is not a nas-harness-table/2 manifest"),
    (b'"text"', "is not a nas-harness-table/2 manifest"),
    (b"{not json", "is not valid JSON"),
    (b"", "is not valid JSON"),
    (b'{"format": "nas-harness-table/2", "name": "\xff"}', "is not valid JSON"),
    (b"\xff\xfe{\x00}\x00", "is not valid JSON"),                # UTF-16 is not what we write
    (b'{"n": ' + b"1" * 5000 + b"}", "is not valid JSON"),      # beyond int parsing limits
    (b"[" * 200_000 + b"]" * 200_000, "is not valid JSON"),     # beyond the parser's recursion
])
def test_manifests_that_are_not_json_objects_are_refused(tmp_path, content, fragment):
    save_table(small_table(), tmp_path / "t")
    (tmp_path / "t" / MANIFEST).write_bytes(content)
    assert _refused(tmp_path / "t", fragment).startswith(str(tmp_path / "t" / MANIFEST))


def _flip_loads(directory, ref, offsets_bits):
    """Flip each (offset, bit) of the manifest in turn: every flip is refused with one
    CorruptData line, or loads a table identical to ``ref``. Returns (refused, loaded)."""
    mf = directory / MANIFEST
    orig = mf.read_bytes()
    refused = loaded = 0
    for offset, bit in offsets_bits:
        b = bytearray(orig)
        b[offset] ^= bit
        mf.write_bytes(bytes(b))
        try:
            u = load_table(directory)
        except CorruptData as exc:
            assert str(exc).endswith("re-import the table") and "\n" not in str(exc)
            refused += 1
            continue
        assert_same_table(ref, u)
        loaded += 1
    mf.write_bytes(orig)
    return refused, loaded


def test_every_single_bit_flip_in_the_manifest_is_refused_or_changes_nothing(tmp_path):
    """Format /2: no flip of any of the manifest's bits loads other labels or arrays (under
    /1, 197 of 5,236 flips loaded wrong axes, metric names, seeds or metadata). Measured:
    all 8,008 flips of this manifest are refused; a flip that leaves the parsed manifest
    unchanged (a hex digit's case inside a \\u escape) would load, and be the same table."""
    save_table(two_column_table(), tmp_path / "t")
    ref = load_table(tmp_path / "t")
    size = (tmp_path / "t" / MANIFEST).stat().st_size
    refused, loaded = _flip_loads(tmp_path / "t", ref, [(o, 1 << k) for o in range(size) for k in range(8)])
    assert refused + loaded == 8 * size
    assert refused >= 8 * size - 8
    assert_same_table(ref, load_table(tmp_path / "t"))


def test_bit_flips_in_the_shipped_manifest_are_refused(tmp_path):
    """The embedded convnet-digits manifest (real metadata: recipe, versions, oracles):
    3,000 flips drawn with a fixed seed, each refused or harmless."""
    shutil.copytree(EMBEDDED_DIR / "convnet-digits", tmp_path / "t")
    ref = load_table(tmp_path / "t")
    size = (tmp_path / "t" / MANIFEST).stat().st_size
    rng = np.random.default_rng(20)
    picks = [(int(o), 1 << int(k)) for o, k in zip(rng.integers(0, size, 3000), rng.integers(0, 8, 3000))]
    refused, loaded = _flip_loads(tmp_path / "t", ref, picks)
    assert refused + loaded == 3000 and refused >= 2990


def test_the_shipped_table_is_current_and_serves_the_same_data():
    m = read_manifest(EMBEDDED_DIR / "convnet-digits")
    assert m["format"] == FORMAT
    from oracles.registry import load_oracle
    oracle = load_oracle("convnet-digits")
    # the served-data checksum stored in results/baselines/convnet-digits.json since the
    # table shipped (format /1): rewriting the manifest as /2 changed nothing it serves
    assert oracle.checksum == "0b7f964157ae081f8a62ed31f9b1916269d8817d9b44fe85697eef370c934a2d"
    assert oracle.table.meta["checksum"] == "03170fea46cf6ab55b9783bd3a038358baaf1acd8993d044a371719b78d55ae2"


# ------------------------------------------ hand-edited manifests (checksum recomputed)
def _rename_file(m, old, new):
    m["files"][new] = m["files"].pop(old)


REASONS = {"no table name", "axes must give archs and the lists seeds, fidelities, metrics",
           "files must list archs.npy and values.npy", "meta must be an object"}


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m.update(name=5), "no table name"),
    (lambda m: m.pop("name"), "no table name"),
    (lambda m: m.update(axes=[]), "axes must give"),
    (lambda m: m["axes"].update(archs="3"), "axes must give"),
    (lambda m: m["axes"].pop("archs"), "axes must give"),
    (lambda m: m["axes"].update(seeds="1,2"), "axes must give"),
    (lambda m: m["axes"].update(fidelities=10), "axes must give"),
    (lambda m: m["axes"].pop("metrics"), "axes must give"),
    (lambda m: m.update(files=[]), "files must list"),
    (lambda m: m.pop("files"), "files must list"),
    (lambda m: m["files"].pop("archs.npy"), "files must list"),
    (lambda m: m["files"].pop("values.npy"), "files must list"),
    (lambda m: _rename_file(m, "col.ops.npy", "col.ops.npz"), "bad file name 'col.ops.npz'"),
    (lambda m: _rename_file(m, "col.ops.npy", "../col.ops.npy"), "bad file name"),
    (lambda m: _rename_file(m, "col.ops.npy", "sub/col.ops.npy"), "bad file name 'sub/col.ops.npy'"),
    (lambda m: _rename_file(m, "col.ops.npy", "sub\\col.ops.npy"), "bad file name"),
    (lambda m: _rename_file(m, "col.ops.npy", ".col.ops.npy"), "bad file name"),
    (lambda m: m["files"].update({"col.ops.npy": "sha"}), "entry of col.ops.npy lacks sha256 or shape"),
    (lambda m: m["files"]["col.ops.npy"].pop("sha256"), "lacks sha256 or shape"),
    (lambda m: m["files"]["col.ops.npy"].update(sha256=None), "lacks sha256 or shape"),
    (lambda m: m["files"]["col.ops.npy"].pop("shape"), "lacks sha256 or shape"),
    (lambda m: m["files"]["col.ops.npy"].update(shape="3,6"), "lacks sha256 or shape"),
    (lambda m: m.update(meta=[]), "meta must be an object"),
])
def test_structurally_damaged_manifests_are_refused(tmp_path, edit, fragment):
    save_table(two_column_table(), tmp_path / "t")
    _edit(tmp_path / "t", edit)
    msg = _refused(tmp_path / "t", fragment)
    assert msg.startswith(f"{tmp_path / 't' / MANIFEST} is damaged (")
    assert msg.endswith("); re-import the table")
    reason = msg[msg.index("is damaged (") + len("is damaged ("):-len("); re-import the table")]
    assert reason in REASONS or reason.startswith(("bad file name", "entry of")), reason


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m["axes"]["metrics"].pop(), "is inconsistent (values has shape"),
    (lambda m: m["axes"].update(archs=4), None),      # archs count is informative; rows come from archs.npy
    (lambda m: m["files"]["col.ops.npy"].update(shape=[3, 7]),
     "has shape (3, 6), manifest says [3, 7]; re-import the table"),
    (lambda m: m["files"]["col.ops.npy"].update(sha256="0" * 64),
     "col.ops.npy does not match its checksum (truncated or modified); re-import the table"),
    (lambda m: m["files"].update({"col.extra.npy": dict(m["files"]["col.ops.npy"])}), "col.extra.npy is missing"),
])
def test_manifests_that_disagree_with_the_files_are_refused(tmp_path, edit, fragment):
    save_table(two_column_table(), tmp_path / "t")
    _edit(tmp_path / "t", edit)
    if fragment is None:
        assert load_table(tmp_path / "t").n_archs == 3
    else:
        _refused(tmp_path / "t", fragment)


def _pickled_array():
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}] * 3, dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_a_file_that_matches_its_checksum_but_is_no_array_is_refused(tmp_path):
    """Someone replaced a file and updated its checksum (and the manifest's): still refused."""
    d = tmp_path / "t"
    save_table(two_column_table(), d)
    for content in (b"not an array", _pickled_array()):
        (d / "col.ops.npy").write_bytes(content)
        _edit(d, lambda m: m["files"]["col.ops.npy"].update(sha256=file_sha256(d / "col.ops.npy")))
        _refused(d, f"table file {d / 'col.ops.npy'} is not a valid .npy array")


def test_a_missing_manifest_says_the_folder_is_no_table(tmp_path):
    (tmp_path / "t").mkdir()
    assert str(tmp_path / "t") in _refused(tmp_path / "t", f"is not a nas-harness table (no {MANIFEST})")


# ------------------------------------------------------------ format /1 and upgrading
def test_format_1_tables_are_refused_with_the_command_that_upgrades_them(tmp_path):
    d = tmp_path / "t"
    save_table(two_column_table(), d)
    _as_format_1(d)
    msg = _refused(d, f"older format {OLD}")
    assert f"python -m oracles.table upgrade {d}" in msg
    with pytest.raises(CorruptData, match="older format"):
        read_manifest(d)


def test_upgrading_keeps_every_array_label_and_checksum(tmp_path):
    d = tmp_path / "t"
    table = two_column_table()
    saved = save_table(table, d)
    ref = load_table(d)
    _as_format_1(d)
    v1 = json.loads((d / MANIFEST).read_text())
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.name != MANIFEST}
    assert upgrade_table(d) is True
    after = json.loads((d / MANIFEST).read_text())
    assert after == saved                                    # exactly what save_table writes
    assert {k: v for k, v in after.items() if k not in ("format", CHECKSUM_FIELD)} == \
        {k: v for k, v in v1.items() if k != "format"}
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.name != MANIFEST} == before
    assert_same_table(ref, load_table(d))                   # table checksum included
    assert upgrade_table(d) is False                         # already current: nothing to do
    assert json.loads((d / MANIFEST).read_text()) == after


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: _flip_byte(d / "col.ops.npy", -1), "col.ops.npy does not match its checksum"),
    (lambda d: (d / "values.npy").unlink(), "values.npy is missing"),
    (lambda d: _edit(d, lambda m: m.update(meta=[]), checksum=False), "meta must be an object"),
    (lambda d: _edit(d, lambda m: m.update(format="nas-harness-table/0"), checksum=False),
     "of a known format (nas-harness-table/2, nas-harness-table/1)"),
    (lambda d: (d / MANIFEST).write_text("{"), "is not valid JSON"),
])
def test_upgrading_a_damaged_table_is_refused_and_changes_nothing(tmp_path, damage, fragment):
    d = tmp_path / "t"
    save_table(two_column_table(), d)
    _as_format_1(d)
    damage(d)
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(CorruptData) as info:
        upgrade_table(d)
    assert fragment in str(info.value) and str(info.value).endswith("; re-import the table")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == files


def test_upgrading_a_current_but_damaged_table_is_refused(tmp_path):
    d = tmp_path / "t"
    save_table(two_column_table(), d)
    _flip_byte(d / "values.npy", -1)
    with pytest.raises(CorruptData, match="values.npy does not match its checksum"):
        upgrade_table(d)


def test_upgrade_command(tmp_path, capsys):
    a, b, bad = tmp_path / "a", tmp_path / "b", tmp_path / "bad"
    for d in (a, b, bad):
        save_table(small_table(), d)
    _as_format_1(a)
    _as_format_1(bad)
    (bad / "values.npy").unlink()
    assert main(["upgrade", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{a}: upgraded to {FORMAT}", f"{b}: already {FORMAT}"]
    assert load_table(a).n_archs == 3
    assert main(["upgrade", str(bad), str(a)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and "values.npy is missing" in err
    assert err.count("\n") == 1
    for argv in ([], ["upgrade"], ["convert", str(a)]):
        assert main(argv) == 2
        assert capsys.readouterr().err == "usage: python -m oracles.table upgrade DIR [DIR ...]\n"


def test_upgrade_command_reads_its_arguments(tmp_path, capsys, monkeypatch):
    d = tmp_path / "t"
    save_table(small_table(), d)
    _as_format_1(d)
    monkeypatch.setattr(sys, "argv", ["python -m oracles.table", "upgrade", str(d)])
    assert main() == 0
    assert capsys.readouterr().out == f"{d}: upgraded to {FORMAT}\n"


def test_upgrade_command_runs_as_a_module(tmp_path, monkeypatch):
    import runpy
    d = tmp_path / "t"
    save_table(small_table(), d)
    _as_format_1(d)
    monkeypatch.setattr(sys, "argv", ["python -m oracles.table", "upgrade", str(d)])
    monkeypatch.delitem(sys.modules, "oracles.table")   # run it fresh as __main__, not the import
    with pytest.raises(SystemExit) as info:
        runpy.run_module("oracles.table", run_name="__main__")
    assert info.value.code == 0
    assert read_manifest(d)["format"] == FORMAT


# ------------------------------------------------------- damage to every file (issue 20)
def _other_valid_array(path):
    """A valid .npy of the same shape and dtype with different contents."""
    arr = np.load(path, allow_pickle=False)
    other = np.roll(arr, 1, axis=0) if arr.dtype.kind == "U" else (arr + 1).astype(arr.dtype)
    assert not np.array_equal(other, arr)
    np.save(path, other, allow_pickle=False)


DAMAGES = {
    "last byte flipped": lambda p: _flip_byte(p, p.stat().st_size - 1),
    "header byte flipped": lambda p: _flip_byte(p, 20),
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


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_tables_are_refused(tmp_path, damage):
    save_table(small_table(), tmp_path / "t")
    f = tmp_path / "t" / "values.npy"
    if damage == "flip":
        _flip_byte(f, -3, 0xFF)
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:50])
    elif damage == "delete":
        f.unlink()
    else:
        (tmp_path / "t" / "manifest.json").write_text("{not json")
    _refused(tmp_path / "t")


def big_table():
    """Every file over 2 MiB: 40,000 rows of archs (80 bytes a row), values (64), two
    columns (56 each)."""
    n = 40_000
    rng = np.random.default_rng(3)
    return Table(name="big", archs=np.array([f"architecture-{i:06d}" for i in range(n)]), seeds=("1", "2"),
                 fidelities=(10, 20), metrics=("valid", "test"), values=rng.random((n, 2, 2, 2)),
                 columns={"ops": rng.integers(0, 5, (n, 7)), "wide": rng.random((n, 7))}, meta={})


@pytest.fixture(scope="module")
def big_saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("big") / "t"
    save_table(big_table(), d)
    return d


@pytest.mark.parametrize("fname", ["archs.npy", "values.npy", "col.ops.npy", "col.wide.npy"])
@pytest.mark.parametrize("where", ["at 1 MiB", "at 1.5 MiB", "at 2 MiB", "last byte", "cut after 1 MiB",
                                  "cut after 2 MiB"])
def test_damage_beyond_the_first_mebibyte_of_any_file_is_refused(tmp_path, big_saved, fname, where):
    d = tmp_path / "t"
    shutil.copytree(big_saved, d)
    f = d / fname
    size = f.stat().st_size
    assert size > 2 * 2 ** 20 + 1
    if where.startswith("cut"):
        f.write_bytes(f.read_bytes()[:(2 if "2" in where else 1) * 2 ** 20 + 1])
    else:
        _flip_byte(f, {"at 1 MiB": 2 ** 20, "at 1.5 MiB": 3 * 2 ** 19 + 7, "at 2 MiB": 2 ** 21,
                       "last byte": size - 1}[where])
    _refused(d, fname)


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
