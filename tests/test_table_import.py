"""Generic table import: a CSV/Parquet table the test writes itself -> product space + oracle."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd
import pytest

from oracles.errors import CorruptData, InvalidArchitecture, UserError
from oracles.importers import table as imp
from oracles.product_space import ProductSpace
from oracles.registry import load_oracle
from oracles.table import save_table

ABSENT = ("3", "64", "5x5")  # the combination the test table leaves out


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d, w, k in itertools.product([1, 2, 3], [16, 32, 64], ["3x3", "5x5"]):
        if (str(d), str(w), k) == ABSENT:
            continue
        valid = 60 + 5 * d + w / 8 + (2 if k == "5x5" else 0) + rng.uniform(0, 1)
        rows.append({"depth": d, "width": w, "kernel": k, "val_acc": round(valid, 3),
                     "test_acc": round(valid - rng.uniform(0, 1), 3), "seconds": float(d * w * 3),
                     "train_acc": 99.0, "note": "x"})
    return pd.DataFrame(rows)


def _args(path, **kw):
    base = dict(source=path, arch_columns="depth,width,kernel", metric=["valid=val_acc", "test=test_acc"],
                cost="seconds", train=None, search=None, report=None, percent=True, fidelity=0, name="toy",
                fraction=False, categorical=None)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture
def csv_path(tmp_path):
    p = tmp_path / "toy.csv"
    _frame().to_csv(p, index=False)
    return p


def test_csv_import_end_to_end_through_the_cli(csv_path, tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    rc = main(["oracles", "import", "table", str(csv_path), "--arch-columns", "depth,width,kernel",
               "--metric", "valid=val_acc", "--metric", "test=test_acc", "--cost", "seconds",
               "--percent", "--name", "toy"])
    assert rc == 0
    assert "imported 17 architectures" in capsys.readouterr().out
    oracle = load_oracle("toy")
    df = _frame()
    assert oracle.space.size == len(df) == 17
    for row in df.itertuples():
        ev = oracle.query((str(row.depth), str(row.width), row.kernel))
        assert ev.observation.value == pytest.approx(row.val_acc / 100)
        assert ev.report == pytest.approx(row.test_acc / 100)
        assert ev.observation.cost == row.seconds  # cost is not a percentage
    best = df.loc[df.val_acc.idxmax()]
    assert oracle.optimum.identities == {f"depth={best.depth};width={best.width};kernel={best.kernel}"}
    # random search on it, through the runner: the 17 rows are the space (each drawn once),
    # and a run stops exactly where it first draws the best row ("within 17 rows" held
    # for any run that does not repeat, so it proved nothing)
    from harness.runner import RunConfig, run_one
    rows = {f"depth={r.depth};width={r.width};kernel={r.kernel}" for r in df.itertuples()}
    best_id = f"depth={best.depth};width={best.width};kernel={best.kernel}"
    stops = set()
    for seed in range(6):
        whole, _ = run_one(RunConfig(algorithm="random", oracle="toy", budget=17), oracle, seed=seed)
        order = [str(a) for a in whole["arch_id"]]
        assert len(order) == 17 and set(order) == rows
        records, summary = run_one(RunConfig(algorithm="random", oracle="toy", budget=17, until_optimum=True),
                                   oracle, seed=seed)
        assert summary["reached_optimum"] and summary["samples_to_optimum"] == order.index(best_id) + 1
        assert [str(a) for a in records["arch_id"]] == order[: order.index(best_id) + 1]
        assert summary["best_search"] == pytest.approx(df.val_acc.max() / 100)
        stops.add(summary["samples_to_optimum"])
    assert len(stops) > 1   # the seeds draw other orders


def test_parquet_import_and_search_report_choice(tmp_path, monkeypatch):
    df = _frame()
    p = tmp_path / "toy.parquet"
    df.to_parquet(p)
    t = imp.build(_args(p, percent=False, search="test", report="valid", name=None))  # percent detected
    assert t.name == "toy" and t.metrics == ("valid", "test", "cost")
    decl = t.meta["oracles"][0]
    assert (decl["search"], decl["report"], decl["cost"]) == ("test", "valid", "cost")
    save_table(t, tmp_path / "data" / t.name)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    oracle = load_oracle("toy")
    np.testing.assert_allclose(np.sort(oracle.search_values), np.sort(df.test_acc.to_numpy()) / 100)
    assert t.meta["source"]["units"] == "percent" and t.meta["source"]["units_detected"]


def test_product_space_moves_stay_within_rows(csv_path):
    t = imp.build(_args(csv_path, categorical="depth,width"))  # every column categorical
    assert t.meta["space"]["numeric"] == [] and t.meta["space"]["categorical"] == ["depth", "width", "kernel"]
    space = ProductSpace.from_table(t)
    assert space.decisions == (3, 3, 2) and space.encoding_size == 8
    rows = {space.arch(i) for i in range(space.size)}
    assert ABSENT not in rows and len(rows) == 17
    rng = np.random.default_rng(0)
    for i in range(space.size):
        a = space.arch(i)
        assert space.index(a) == i
        nbrs = space.neighbours(a)
        assert all(sum(x != y for x, y in zip(a, b)) == 1 for b in nbrs)
        assert set(nbrs) <= rows and a not in nbrs
        # all one-column changes that are rows, and only those
        expect = {b for b in rows if sum(x != y for x, y in zip(a, b)) == 1}
        assert set(nbrs) == expect
        for _ in range(5):
            m = space.mutate(a, rng)
            assert m in expect
        e = space.encode(a)
        assert e.sum() == 3 and np.array_equal(e, space.encode_all()[i])
        assert space.from_tokens(space.tokens(a)) == a
        assert tuple(space.tokens_all()[i]) == space.tokens(a)
        assert space.parse(space.to_string(a)) == a
    assert all(space.sample(rng) in rows for _ in range(20))
    assert list(space.identities_all()) == [space.identity(space.arch(i)) for i in range(space.size)]
    with pytest.raises(InvalidArchitecture, match="not a row"):
        space.index(ABSENT)
    with pytest.raises(InvalidArchitecture, match="not a row"):
        space.from_tokens((2, 2, 1))
    with pytest.raises(InvalidArchitecture, match="no value '128'"):
        space.index(("1", "128", "3x3"))
    with pytest.raises(InvalidArchitecture, match="lacks column"):
        space.parse("depth=1;width=16")


def test_isolated_row_mutates_to_another_row():
    space = ProductSpace(["a", "b"], [["0", "1"], ["0", "1"]], np.array([[0, 0], [1, 1]]))
    rng = np.random.default_rng(0)
    assert space.neighbours(("0", "0")) == []
    assert space.mutate(("0", "0"), rng) == ("1", "1")
    assert space.isolated_mutations == 1


def _write(tmp_path, df, name="bad.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_missing_cells_name_row_and_column(tmp_path):
    df = _frame()
    df.loc[4, "kernel"] = None
    with pytest.raises(CorruptData, match="row 5 has no value in architecture column 'kernel'"):
        imp.build(_args(_write(tmp_path, df)))
    df = _frame()
    df.loc[6, "test_acc"] = None
    with pytest.raises(CorruptData, match="row 7 has no value in metric column 'test_acc'"):
        imp.build(_args(_write(tmp_path, df)))


def test_non_numeric_metric_names_row_column_and_value(tmp_path):
    df = _frame().astype({"val_acc": object})
    df.loc[2, "val_acc"] = "n/a%"
    with pytest.raises(CorruptData, match=r"row 3, column 'val_acc': 'n/a%' is not a number"):
        imp.build(_args(_write(tmp_path, df)))


def test_duplicate_architectures_name_both_rows(tmp_path):
    df = _frame()
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(CorruptData, match=r"rows 4 and 18 are the same architecture \(depth=1, width=32, kernel=5x5\)"):
        imp.build(_args(_write(tmp_path, df)))


def test_missing_columns_and_bad_options_are_user_errors(csv_path, tmp_path):
    with pytest.raises(UserError, match="metric test: the table has no column 'test_accuracy'"):
        imp.build(_args(csv_path, metric=["valid=val_acc", "test=test_accuracy"]))
    with pytest.raises(UserError, match="--arch-columns: the table has no column 'stride'"):
        imp.build(_args(csv_path, arch_columns="depth,stride"))
    with pytest.raises(UserError, match="write NAME=COLUMN"):
        imp.build(_args(csv_path, metric=["val_acc"]))
    with pytest.raises(UserError, match="--search 'loss' is not a declared metric"):
        imp.build(_args(csv_path, search="loss"))
    with pytest.raises(UserError, match="does not exist"):
        imp.build(_args(tmp_path / "nope.csv"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match="unknown table format"):
        imp.build(_args(tmp_path / "x.json"))


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_imported_table_follows_the_umask(csv_path, tmp_path, monkeypatch, umask):
    """A table in a shared data directory must be readable as the umask allows (issue 12,
    item 2: the temporary directory's 0700 used to survive the rename into place)."""
    import os
    import stat
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    old = os.umask(umask)
    try:
        args = ["oracles", "import", "table", str(csv_path), "--arch-columns", "depth,width,kernel",
                "--metric", "valid=val_acc", "--metric", "test=test_acc", "--percent", "--name", "toy"]
        assert main(args) == 0
        assert main(args) == 0  # re-importing over an existing table keeps the modes too
    finally:
        os.umask(old)
    folder = tmp_path / "data" / "toy"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    files = list(folder.iterdir())
    assert {p.name for p in files} >= {"manifest.json", "values.npy", "archs.npy"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["toy"]


# --- numeric architecture columns and metric units (issue 12, item 5) ------------------------
def test_numeric_columns_detected_scaled_and_recorded(csv_path):
    t = imp.build(_args(csv_path))
    assert t.meta["space"]["numeric"] == ["depth", "width"] and t.meta["space"]["categorical"] == ["kernel"]
    assert t.meta["space"]["categories"]["width"] == ["16", "32", "64"]  # increasing value
    space = ProductSpace.from_table(t)
    assert space.encoding_size == 1 + 1 + 2 and space.decisions == (3, 3, 2)
    enc = space.encode_all()
    # depth 1, 2, 3 -> 0, 0.5, 1; width 16, 32, 64 -> 0, 1/3, 1 (by value, not by rank)
    for i in range(space.size):
        d, w, k = space.arch(i)
        assert enc[i, 0] == (int(d) - 1) / 2 and enc[i, 1] == pytest.approx((int(w) - 16) / 48)
        assert list(enc[i, 2:]) == ([1.0, 0.0] if k == "3x3" else [0.0, 1.0])
        assert np.array_equal(space.encode(space.arch(i)), enc[i])
    # a column with a non-number stays categorical
    df = _frame().astype({"width": object})
    df.loc[df.width == 64, "width"] = "wide"
    t2 = imp.build(_args(_write_csv(csv_path.parent, df)))
    assert t2.meta["space"]["numeric"] == ["depth"]


def _write_csv(folder, df, name="t.csv"):
    p = folder / name
    df.to_csv(p, index=False)
    return p


def test_forced_categorical_and_its_errors(csv_path, tmp_path):
    t = imp.build(_args(csv_path, categorical="width"))
    # same rows and values, shown to algorithms another way: another oracle (also once saved,
    # where the per-process cache of served checksums is keyed by the table's checksum)
    from oracles.registry import load_oracle as load
    from oracles.table import load_table
    assert load("toy", shared=t).checksum != load("toy", shared=imp.build(_args(csv_path))).checksum
    save_table(t, tmp_path / "cat")
    save_table(imp.build(_args(csv_path)), tmp_path / "num")
    saved = [load("toy", shared=load_table(tmp_path / d)).checksum for d in ("cat", "num")]
    assert saved[0] != saved[1]
    assert t.meta["space"]["numeric"] == ["depth"] and t.meta["space"]["categorical"] == ["width", "kernel"]
    assert ProductSpace.from_table(t).encoding_size == 1 + 3 + 2
    with pytest.raises(UserError, match="--categorical 'stride' is not one of the --arch-columns"):
        imp.build(_args(csv_path, categorical="stride"))
    df = _frame().astype({"width": object})
    df.loc[0, "width"] = "16.0"  # the others of this value are written "16"
    with pytest.raises(CorruptData, match=r"column 'width' writes one number two ways \('16' and '16.0'\)"):
        imp.build(_args(_write_csv(tmp_path, df)))
    assert imp.build(_args(_write_csv(tmp_path, df), categorical="width")).meta["space"]["numeric"] == ["depth"]


def test_numeric_column_mutates_to_neighbouring_values():
    # width takes 8, 16, 32, 64 but row (2, 16) is absent: from (2, 8) the next width up is 32
    rows = [("1", w) for w in ("8", "16", "32", "64")] + [("2", w) for w in ("8", "32", "64")] + [("3", "64")]
    cats = [["1", "2", "3"], ["8", "16", "32", "64"]]
    codes = np.array([[cats[0].index(d), cats[1].index(w)] for d, w in rows])
    space = ProductSpace(["depth", "width"], cats, codes, numeric=["depth", "width"])
    assert sorted(space.neighbours(("1", "16"))) == [("1", "32"), ("1", "8")]
    assert sorted(space.neighbours(("2", "8"))) == [("1", "8"), ("2", "32")]
    assert sorted(space.neighbours(("1", "64"))) == [("1", "32"), ("2", "64")]  # not 8 or 16
    assert sorted(space.neighbours(("3", "64"))) == [("2", "64")]              # not depth 1
    rng = np.random.default_rng(0)
    for a in rows:
        nbrs = set(space.neighbours(a))
        assert {space.mutate(a, rng) for _ in range(40)} == nbrs
    # the same table with categorical columns jumps to any value
    cat = ProductSpace(["depth", "width"], cats, codes)
    assert sorted(cat.neighbours(("1", "64"))) == [("1", "16"), ("1", "32"), ("1", "8"), ("2", "64"), ("3", "64")]


def test_numeric_column_must_be_increasing_numbers():
    with pytest.raises(InvalidArchitecture, match="increasing order"):
        ProductSpace(["w"], [["32", "16"]], np.array([[0], [1]]), numeric=["w"])
    with pytest.raises(InvalidArchitecture, match="not a number"):
        ProductSpace(["w"], [["a", "b"]], np.array([[0], [1]]), numeric=["w"])
    one = ProductSpace(["w", "k"], [["16"], ["a", "b"]], np.array([[0, 0], [0, 1]]), numeric=["w"])
    assert one.encode(("16", "b")).tolist() == [0.0, 0.0, 1.0]  # one value scales to 0


@pytest.mark.parametrize("scale, units", [(1.0, "percent"), (0.01, "fraction")], ids=["percent", "fraction"])
def test_metric_units_detected(tmp_path, scale, units):
    df = _frame()
    df[["val_acc", "test_acc"]] *= scale
    t = imp.build(_args(_write_csv(tmp_path, df), percent=False))
    assert t.meta["source"]["units"] == units and t.meta["source"]["units_detected"]
    np.testing.assert_allclose(t.column("valid"), _frame().val_acc.to_numpy() / 100)
    np.testing.assert_array_equal(t.column("cost"), df.seconds.to_numpy())  # never scaled


def test_ambiguous_units_refused_in_one_line_unless_told(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    df = _frame()
    df.loc[3, "val_acc"] = 250.0  # no accuracy, in either unit
    p = _write_csv(tmp_path, df)
    args = ["oracles", "import", "table", str(p), "--arch-columns", "depth,width,kernel",
            "--metric", "valid=val_acc", "--metric", "test=test_acc"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "range from" in err and "--fraction" in err
    assert main(args + ["--fraction"]) == 0
    out = capsys.readouterr().out
    assert "metric units: fraction (as given)" in out and "numeric depth, width; categorical kernel" in out
    assert load_oracle("t").optimum.value == 250.0
    assert main(args + ["--fraction", "--percent"]) == 2  # one or the other
