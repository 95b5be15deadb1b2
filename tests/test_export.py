"""Results other tools can read (issue 12, item 6): a results folder loads as one tidy table
with pandas and pyarrow, and ``nas-harness export`` writes a long CSV/Parquet table and
rliable's input."""

import json

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.experiment import Experiment, execute
from harness.results import ResultsStore, fingerprint, slug

LABELS = ["random", "random:replace=true"]      # the second has '=' (a hive partition to pyarrow)
ORACLES = ["nb201/cifar10", "nb201/cifar100"]


@pytest.fixture(scope="module")
def folder(nb201_data_dir, tmp_path_factory):
    from conftest import data_env
    out = tmp_path_factory.mktemp("export") / "r"
    with data_env(nb201_data_dir):
        execute(Experiment(oracles=ORACLES, algorithms=LABELS, seeds=3, budget=60, out=str(out)), progress=False)
    return out


def _run_files(out):
    """{(oracle, label, seed): records as pandas} straight from each run file."""
    runs = {}
    for cell, meta, table in ResultsStore(out).iter_runs(with_records=True):
        runs[(cell.oracle, cell.label, meta["seed"])] = table.to_pandas()
    return runs


def test_folder_names_never_look_like_hive_partitions(folder):
    assert slug("lanas:split=adam") == "lanas_split-adam" and slug("nb101:runs=random") == "nb101_runs-random"
    assert not [p for p in folder.rglob("*") if "=" in p.name]


@pytest.mark.parametrize("reader", ["pandas", "pyarrow"])
def test_runs_folder_reads_as_one_tidy_table(folder, reader):
    df = pd.read_parquet(folder / "runs") if reader == "pandas" else ds.dataset(folder / "runs").to_table().to_pandas()
    runs = _run_files(folder)
    assert len(runs) == 12
    assert list(df.columns[:4]) == ["oracle", "algorithm", "seed", "config_id"]
    assert "arch" in df.columns and not any(c.startswith("random_") for c in df.columns)
    assert len(df) == sum(len(r) for r in runs.values())
    for (oracle, label, seed), rec in runs.items():
        part = df[(df.oracle == oracle) & (df.algorithm == label) & (df.seed == seed)].sort_values("sample")
        assert len(part) == len(rec) == 60
        for col in ("sample", "arch_index", "arch_id", "search", "report", "incumbent_report"):
            assert part[col].tolist() == rec[col].tolist(), col


def test_label_columns_cost_almost_nothing(folder):
    path = next(folder.glob("runs/*/*/seed-*.parquet"))
    md = pq.ParquetFile(path).metadata
    sizes = {md.row_group(0).column(i).path_in_schema: md.row_group(0).column(i).total_compressed_size
             for i in range(md.num_columns)}
    assert all(sizes[c] < 300 for c in ("oracle", "algorithm", "seed", "config_id")), sizes


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_long_table(folder, tmp_path, fmt, capsys):
    out = tmp_path / f"all.{fmt}"
    assert main(["export", str(folder), "--out", str(out)]) == 0
    assert f"wrote 720 rows to {out} ({fmt})" in capsys.readouterr().out
    df = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(df.columns[:5]) == ["oracle", "algorithm", "seed", "config_id", "stopped"]
    assert df.stopped.isna().all()
    runs = _run_files(folder)
    assert len(df) == sum(len(r) for r in runs.values())
    for (oracle, label, seed), rec in runs.items():
        part = df[(df.oracle == oracle) & (df.algorithm == label) & (df.seed == seed)]
        for col in rec.columns:
            if col in ("oracle", "algorithm", "config_id"):
                continue
            got, want = part[col].to_numpy(), rec[col].to_numpy()
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got.astype(float), want, rtol=1e-15, err_msg=col)
            else:
                assert got.tolist() == want.tolist(), col


def test_export_rliable(folder, tmp_path, capsys):
    out = tmp_path / "rl"
    assert main(["export", str(folder), "--rliable", "--metric", "best_search", "--at", "25",
                 "--out", str(out)]) == 0
    info = json.loads((tmp_path / "rl.json").read_text())
    scores = dict(np.load(tmp_path / "rl.npz"))
    assert info["tasks"] == ORACLES and info["at"] == 25 and info["metric"] == "best_search"
    assert sorted(scores) == sorted(LABELS)
    runs = _run_files(folder)
    for label in LABELS:
        assert scores[label].shape == (3, 2) and info["algorithms"][label]["seeds"] == [0, 1, 2]
        for i, seed in enumerate((0, 1, 2)):
            for j, oracle in enumerate(ORACLES):
                rec = runs[(oracle, label, seed)]
                # the best search value within the first 25 distinct architectures, from
                # the raw answers (not the runner's running-best column)
                want = max(s for s, n in zip(rec.search, rec.n_distinct) if n <= 25)
                assert scores[label][i, j] == want


def test_export_mistakes_are_one_line(folder, tmp_path, capsys):
    assert main(["export", str(folder), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["export", str(folder), "--rliable", "--at", "61", "--out", str(tmp_path / "r")]) == 2
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("nas-harness: error: ") for e in err)
    assert "--format csv or parquet" in err[0] and "past its budget (60)" in err[1]
    assert "not a results folder" in err[2]


def test_folders_written_before_the_escaping_still_read_and_extend(nb201_env, tmp_path):
    """A folder from the previous version: '=' in folder names, no label columns, no arch column
    where it equals arch_id. It keeps its folder names; export labels its rows."""
    out = tmp_path / "old"
    exp = Experiment(oracles=["nb201/cifar10"], algorithms=LABELS, seeds=2, budget=30, out=str(out))
    execute(exp, progress=False)
    manifest = json.loads((out / "experiment.json").read_text())
    for cell in manifest["cells"].values():
        old = cell["folder"].replace("random_replace-true", "random_replace=true")
        (out / cell["folder"]).rename(out / old)
        cell["folder"] = old
        for path in (out / old).glob("seed-*.parquet"):
            t = pq.read_table(path)
            pq.write_table(t.drop_columns(["oracle", "algorithm", "seed", "config_id", "arch"]), path)
    (out / "experiment.json").write_text(json.dumps(manifest))
    store = ResultsStore(out)
    assert len(list(store.iter_runs())) == 4
    assert execute(Experiment(**{**vars(exp), "seeds": 3}), progress=False)[1:] == (4, 2)
    assert (out / "runs/nb201_cifar10/random_replace=true/seed-000002.parquet").exists()
    assert not (out / "runs/nb201_cifar10/random_replace-true").exists()
    assert main(["export", str(out), "--out", str(tmp_path / "old.parquet")]) == 0
    df = pd.read_parquet(tmp_path / "old.parquet")
    assert len(df) == 6 * 30 and df.arch.tolist() == df.arch_id.tolist()
    assert sorted(df.groupby(["algorithm", "seed"], observed=True).size().index) == \
        [(lab, s) for lab in LABELS for s in range(3)]
    cells = {c.label: c for c in store.cells()}
    assert set(df.config_id) == {fingerprint(c.config) for c in cells.values()}


def test_two_labels_that_would_share_a_folder_are_refused(nb201_env, tmp_path):
    from oracles.errors import UserError
    out = tmp_path / "r"
    execute(Experiment(oracles=["nb201/cifar10"], algorithms=["random:replace=true"], seeds=1, budget=5,
                       out=str(out)), progress=False)
    manifest = json.loads((out / "experiment.json").read_text())
    # a label differing only in what slug() folds together: simulate by renaming the stored one
    (cell,) = manifest["cells"].values()
    manifest["cells"] = {"nb201/cifar10 | random:replace-true": {**cell, "label": "random:replace-true"}}
    (out / "experiment.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="already holds 'nb201/cifar10 | random:replace-true'"):
        execute(Experiment(oracles=["nb201/cifar10"], algorithms=["random:replace=true"], seeds=1, budget=5,
                           out=str(out)), progress=False)


@pytest.mark.parametrize("values", [
    np.array([0.5, np.nan, 1.5]), np.array([], dtype=np.float64), np.arange(7, dtype=np.int64),
    np.zeros(3, dtype=np.int32), np.array([True, False, True] * 4), np.array(["a", "héllo", ""], dtype=object),
    np.array([], dtype=object)])
def test_run_file_columns_are_what_pyarrow_would_make(values):
    import pyarrow as pa
    from harness.results import _to_arrow
    got = _to_arrow(values)
    got.validate(full=True)
    want = pa.array(list(values) if values.dtype == object else values, type=got.type, from_pandas=True)
    assert got.equals(want)
