"""NB201 import: the CSV tables, the official fast-mode files and v1 .pth files agree."""

import bz2
import pickle
import shutil

import numpy as np
import pytest

from harness.cli import main as cli
from oracles.errors import CorruptData, UserError
from oracles.importers.nb201 import DATASETS, detect_and_read, read_csv_tables, read_fast_mode, read_pth

from conftest import NB201_DIR, require
from optional import require_module

FAST = NB201_DIR / "NATS-tss-v1_0-3ffb9-simple"
CHECKED = [f"{ds}_{k}" for ds in DATASETS for k in ("valid", "test")] + [f"params_{ds}" for ds in DATASETS]


@pytest.fixture(scope="module")
def csv_table():
    return detect_and_read(require(NB201_DIR))


@pytest.fixture(scope="module")
def fast_table():
    return read_fast_mode(require(FAST))


def test_csv_import_matches_published_anchors(csv_table):
    # ../shared/data/README.md sanity anchors (200 epochs)
    anchors = {"cifar10_valid": (91.6067, 6111), "cifar10_test": (94.3733, 6111),
               "cifar100_valid": (73.4933, 9930), "cifar100_test": (73.5133, 9930),
               "imagenet16_valid": (46.7333, 10676), "imagenet16_test": (47.3111, 857)}
    for metric, (value, index) in anchors.items():
        col = csv_table.column(metric, 200)
        assert col.max() * 100 == pytest.approx(value, abs=1e-4)
        assert int(np.argmax(col)) == index
    assert csv_table.n_archs == 15625 and csv_table.fidelities == (12, 200)
    assert list(csv_table.columns["index"]) == list(range(15625))


@pytest.mark.parametrize("fidelity", [12, 200])
def test_fast_mode_seed_means_equal_csv_rows(csv_table, fast_table, fidelity):
    assert list(fast_table.columns["index"]) == [0, 11, 284]
    for row, index in enumerate(fast_table.columns["index"]):
        assert fast_table.archs[row] == csv_table.archs[index]
        for metric in CHECKED:
            a = fast_table.column(metric, fidelity)[row]
            b = csv_table.column(metric, fidelity)[index]
            # the CSV prints percentages with 6 decimals
            assert a == pytest.approx(b, abs=6e-9 if "params" not in metric else 0.5), (index, metric)


def test_fast_mode_has_per_seed_values_times_and_train_accuracy(fast_table):
    assert {"777", "888", "999"} <= set(fast_table.seeds)
    assert np.all(fast_table.column("cifar10_train_time", 200) > fast_table.column("cifar10_train_time", 12))
    assert np.all((fast_table.column("cifar10_train", 200) > 0.5) & (fast_table.column("cifar10_train", 200) <= 1))


def _write_pth(tmp_path):
    torch = require_module("torch")       # reading .pth files is what needs them
    require_module("nas_201_api")
    meta = pickle.loads(bz2.decompress((FAST / "meta.pickle.pbz2").read_bytes()))
    arch2infos = {}
    for idx in (0, 11, 284):
        d = pickle.loads(bz2.decompress((FAST / f"{idx:06d}.pickle.pbz2").read_bytes()))
        # v1 files hold, per architecture, ArchResults state dicts for 12 ('less') and 200 ('full') epochs
        arch2infos[idx] = {"less": d["12"], "full": d["200"]}
    path = tmp_path / "NAS-Bench-201-v1_0-test.pth"
    torch.save({"meta_archs": meta["meta_archs"], "arch2infos": arch2infos,
                "evaluated_indexes": set(arch2infos), "total_archs": len(meta["meta_archs"])}, path)
    return path


def test_pth_file_reads_like_fast_mode(tmp_path, fast_table):
    pth = read_pth(_write_pth(tmp_path))
    assert list(pth.archs) == list(fast_table.archs)
    assert pth.seeds == fast_table.seeds
    np.testing.assert_array_equal(np.isnan(pth.values), np.isnan(fast_table.values))
    np.testing.assert_allclose(pth.values, fast_table.values, rtol=0, atol=0, equal_nan=True)


def test_pth_needs_trust_pickle(tmp_path, capsys, empty_data_env):
    path = _write_pth(tmp_path)
    assert cli(["oracles", "import", "nb201", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and err.count("\n") == 1
    # trusted, but only 3 of 15,625 architectures: refused, nothing written
    assert cli(["oracles", "import", "nb201", str(path), "--trust-pickle"]) == 2
    assert "3 of the 15625" in capsys.readouterr().err
    assert not (empty_data_env / "nb201").exists()


def test_partial_fast_mode_folder_is_refused_by_the_command(capsys, empty_data_env):
    assert cli(["oracles", "import", "nb201", str(require(FAST))]) == 2
    assert "complete NATS-tss" in capsys.readouterr().err


def test_restricted_unpickler_refuses_foreign_classes(tmp_path):
    d = tmp_path / "fast"
    d.mkdir()
    shutil.copy(require(FAST) / "000011.pickle.pbz2", d)

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    (d / "000000.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"200": Evil()})))
    with pytest.raises(CorruptData, match="refusing to unpickle"):
        read_fast_mode(d)
    assert (tmp_path / "victim").exists()


def test_truncated_fast_mode_file_is_reported(tmp_path):
    d = tmp_path / "fast"
    d.mkdir()
    raw = (require(FAST) / "000011.pickle.pbz2").read_bytes()
    (d / "000011.pickle.pbz2").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptData, match="000011"):
        read_fast_mode(d)


def test_truncated_csv_is_refused(tmp_path):
    src = require(NB201_DIR / "nb201_200ep.csv")
    lines = src.read_text().splitlines(keepends=True)
    bad = tmp_path / "nb201_200ep.csv"
    bad.write_text("".join(lines[:1000]))
    with pytest.raises(CorruptData, match="truncated"):
        read_csv_tables({200: bad})
    lines[5] = lines[5].replace(",", ",x", 3)
    bad.write_text("".join(lines))
    with pytest.raises(UserError, match="line 6"):
        read_csv_tables({200: bad})


def test_import_command_writes_the_data_dir(empty_data_env, capsys):
    assert cli(["oracles", "import", "nb201", str(require(NB201_DIR))]) == 0
    out = capsys.readouterr().out
    assert "15,625 architectures" in out and "nb201/cifar10" in out
    assert (empty_data_env / "nb201" / "manifest.json").is_file()
    # and the data directory serves the CSV's numbers (anchors of the shared data's README)
    from oracles.registry import load_oracle
    oracle = load_oracle("nb201/cifar100")
    assert oracle.optimum.indices == (9930,) and oracle.optimum.value == pytest.approx(0.734933, abs=1e-6)
    ev = oracle.query(oracle.space.arch(1))
    assert ev.observation.value == pytest.approx(0.69826667, abs=1e-8) and ev.report == pytest.approx(0.70293333,
                                                                                                       abs=1e-8)


# --- an oracle's identity is the data it serves (issue 12, item 4) ---------------------------
def _checksum(table, spec="nb201/cifar10"):
    from oracles.registry import load_oracle
    return load_oracle(spec, shared=table).checksum


def test_same_data_same_checksum_whatever_the_import_route(csv_table, tmp_path):
    from oracles.table import load_table, save_table
    # as users get them: imported into a data directory and loaded back
    save_table(detect_and_read(require(NB201_DIR / "nb201_200ep.csv")), tmp_path / "alone")
    save_table(csv_table, tmp_path / "folder")
    alone, csv_table = load_table(tmp_path / "alone"), load_table(tmp_path / "folder")
    assert alone.meta["checksum"] != csv_table.meta["checksum"]  # different files...
    assert alone.fidelities == csv_table.fidelities and np.isnan(alone.column("cifar10_valid", 12)).all()
    assert _checksum(alone) == _checksum(csv_table)                # ...the same oracle
    # the 12-epoch slice is another oracle, and a lone 200-epoch CSV does not serve it
    assert _checksum(csv_table, "nb201-12ep/cifar10") != _checksum(csv_table)
    assert "nb201-12ep/cifar10" not in [d["name"] for d in alone.meta["oracles"]]
    with pytest.raises(UserError, match="does not serve"):
        _checksum(alone, "nb201-12ep/cifar10")


def test_checksum_follows_served_values_only(csv_table):
    from oracles.table import Table
    base = _checksum(csv_table)

    def variant(values=None, archs=None, order=None):
        v = np.array(csv_table.values if values is None else values)
        a = np.array(csv_table.archs if archs is None else archs)
        cols = {k: np.asarray(c) for k, c in csv_table.columns.items()}
        if order is not None:
            v, a, cols = v[order], a[order], {k: c[order] for k, c in cols.items()}
        return Table(csv_table.name, a, csv_table.seeds, csv_table.fidelities, csv_table.metrics, v,
                     cols, dict(csv_table.meta))

    from oracles.importers.nb201 import METRICS
    changed = np.array(csv_table.values)
    changed[4321, 0, 1, METRICS.index("cifar10_test")] += 1e-6  # a served (report) value
    assert _checksum(variant(changed)) != base
    unserved = np.array(csv_table.values)
    unserved[4321, 0, 1, METRICS.index("cifar100_valid")] += 0.1  # another dataset's metric
    unserved[:, 0, 0, :] = 0.5                                     # the other fidelity
    assert _checksum(variant(unserved)) == base
    # the same rows in another order serve the same answers
    perm = np.random.default_rng(0).permutation(csv_table.n_archs)
    assert _checksum(variant(order=perm)) == base
    # the oracle options select what is served
    assert _checksum(csv_table, "nb201/cifar10:report=cifar100_test") != base
