"""``nas-harness supernet retrain`` on query-based runs (supernets/retrain.py): random search
and CADAM (``preset=darts-cpu``, Mills 2020, §4.2.2) querying a DARTS-space supernet oracle
get their best-by-validation cell trained from scratch on the supernet's own data split,
beside a one-shot run of the same folder, once; NB201-space runs and supernets that are
missing or changed since the runs are passed over.

Tiny everything: a DARTS supernet of C 4 and 2 cells trained one epoch on 16 images of the
digits split of seed 1 (the one-shot run trains on the default split, seed 0, so the two
splits can be told apart), runs of 4 distinct cells, retraining 1 epoch of 16 images."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from oracles.darts_space import DartsSpace  # noqa: E402
# the fixture takes effect by being imported: ``one_torch_thread`` (autouse)
from one_shot_helpers import one_torch_thread  # noqa: E402,F401

ORACLE = "supernet/q:calib=16"
#: CADAM's darts-cpu preset with an agent small enough to act within a budget of 4 cells
CADAM = "cadam:preset=darts-cpu,warmup=2,top_k=3,batch_size=2,replay_size=8,hidden=16/16"
ONE_SHOT = "darts:space=darts,C=4,N=1,max_train=16,batch_size=16,epochs=1"
SPLIT_SEED = 1


def _train_supernet(space: str, name: str, *extra: str) -> None:
    from harness.cli import main
    assert main(["supernet", "train", space, "--dataset", "digits", "--C", "4", "--N", "1" if space == "nb201" else "2",
                 "--epochs", "1", "--max-train", "16", "--name", name, "--no-progress", *extra]) == 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A data directory with the DARTS supernet ``q`` (split seed 1) and an NB201 one, and a
    results folder: random search and CADAM on ``q`` (2 seeds each), DARTS one-shot (1 seed),
    random search on the NB201 supernet (1 seed). Yields (results folder, data directory)."""
    from harness.cli import main
    data = tmp_path_factory.mktemp("data")
    out = tmp_path_factory.mktemp("results") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_HARNESS_DATA", str(data))
        _train_supernet("darts", "q", "--split-seed", str(SPLIT_SEED))
        _train_supernet("nb201", "nb")
        common = ["--budget", "4", "--out", str(out), "--quiet"]
        assert main(["run", "--oracle", ORACLE, "--algorithm", "random", "--algorithm", CADAM, "--seeds", "2",
                     *common]) == 0
        assert main(["run", "--oracle", ORACLE, "--algorithm", ONE_SHOT, "--seeds", "1", *common]) == 0
        assert main(["run", "--oracle", "supernet/nb:calib=16", "--algorithm", "random", "--seeds", "1",
                     *common]) == 0
        yield out, data


def _records(out) -> dict[tuple[str, str, int], pa.Table]:
    """Every run's records by (oracle, algorithm label, seed)."""
    tables = {}
    for path in out.glob("runs/*/*/seed-*.parquet"):
        t = pq.read_table(path)
        tables[str(t.column("oracle")[0].as_py()), str(t.column("algorithm")[0].as_py()),
               int(t.column("seed")[0].as_py())] = t
    return tables


def test_final_record_is_the_first_best_by_validation_at_the_top_fidelity():
    from supernets.retrain import final_record

    def table(search, fidelity=None):
        cols = {"search": pa.array(search, pa.float64())}
        if fidelity is not None:
            cols["fidelity"] = pa.array(fidelity, pa.int64())
        return pa.table(cols)

    # a tie goes to the earliest record; NaN answers never win
    assert final_record(table([0.1, 0.5, np.nan, 0.5, 0.3], [-1] * 5)) == 1
    assert final_record(table([np.nan, 0.2, 0.7, 0.7])) == 2
    # a live supernet's records: only those at the highest epoch reached compete
    assert final_record(table([0.9, 0.1, 0.4, 0.6, 0.6, np.nan], [1, 1, 2, 2, 2, 3])) == 3
    assert final_record(table([np.nan, np.nan])) is None


def test_query_runs_retrain_their_best_cell_on_the_supernets_split(folder, monkeypatch, capsys):
    import supernets.retrain as retrain_module
    from harness.cli import main
    from harness.experiment import label_of
    from harness.summary import read_references
    from supernets.data import load
    from supernets.retrain import preset_recipe, retrain_folder, training_key

    out, data = folder
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    recipe = preset_recipe("cpu", C=4, layers=3, epochs=1, max_train=16)
    before = {p: p.read_bytes() for p in out.glob("runs/*/*/seed-*.parquet")}
    lines: list[str] = []
    first = retrain_folder(out, recipe, log=lines.append)
    # the NB201 supernet's run is passed over, the other five retrained
    assert any(line.startswith("1 run(s) neither") for line in lines), lines
    runs = {(r["oracle"], r["label"], r["seed"]): r for r in first["runs"]}
    records = _records(out)
    cadam = label_of(CADAM)
    assert set(runs) == {(ORACLE, label, seed) for label in ("random", cadam) for seed in (0, 1)} | \
        {(ORACLE, label_of(ONE_SHOT), 0)}
    assert set(records) - set(runs) == {("supernet/nb:calib=16", "random", 0)}
    supernet_split, default_split = load("digits", SPLIT_SEED).record(), load("digits").record()
    assert supernet_split["fingerprint"] != default_split["fingerprint"]
    space = DartsSpace()
    queried = [k for k, r in runs.items() if r["kind"] == "query"]
    assert len(queried) == 4
    for key in queried:
        run, t = runs[key], records[key]
        # the record with the best supernet validation accuracy, the earliest of equals: the
        # runner's incumbent (a frozen oracle has one fidelity)
        search = t.column("search").to_numpy()
        best = int(np.flatnonzero(search == np.nanmax(search))[0])
        assert run["arch"] == t.column("arch_id")[best].as_py() and run["sample"] == best + 1
        assert run["search"] == search[best] == t.column("best_search")[-1].as_py()
        training = first["trainings"][run["training"]]
        # on the supernet's split, not the default one
        assert (run["dataset"], run["split_seed"]) == ("digits", SPLIT_SEED)
        assert training["data"] == {k: supernet_split[k] for k in ("dataset", "split_seed", "fingerprint")}
        assert run["training"] == training_key(run["arch"], recipe, supernet_split, 0)
        assert training["arch"] == run["arch"] and space.parse(training["arch"])
        assert 0 <= training["valid_acc"] <= 1 and 0 <= training["test_acc"] <= 1
    # the one-shot run as before: its last epoch's derived cell on its method's split
    (one_shot,) = [k for k, r in runs.items() if r["kind"] == "one-shot"]
    run = runs[one_shot]
    assert run["arch"] == records[one_shot].column("arch_id")[-1].as_py()
    assert first["trainings"][run["training"]]["data"]["fingerprint"] == default_split["fingerprint"]
    assert len(first["trainings"]) == len({r["training"] for r in runs.values()})
    # the query runs' rows in the folder's reference results, one per algorithm
    refs = {r["name"].split(" retrained")[0]: r for r in read_references(out) if "retrained" in r["name"]}
    assert set(refs) == {label for _, label, _ in runs}
    for label, ref in refs.items():
        assert ref["oracle"] == ORACLE
        tests = sorted(first["trainings"][r["training"]]["test_acc"] for k, r in runs.items() if k[1] == label)
        assert sorted(ref["report"]) == tests
    # a second call trains nothing and changes nothing; the run files were never touched
    monkeypatch.setattr(retrain_module, "train_from_scratch",
                        lambda *a, **k: pytest.fail("a finished training was redone"))
    capsys.readouterr()
    assert main(["supernet", "retrain", str(out), "--C", "4", "--layers", "3", "--epochs", "1",
                 "--max-train", "16"]) == 0
    captured = capsys.readouterr()
    assert "0 to train" in captured.err and "random" in captured.out and "cadam:" in captured.out
    assert json.loads((out / "retrained.json").read_text()) == first
    assert {p: p.read_bytes() for p in out.glob("runs/*/*/seed-*.parquet")} == before


def test_a_supernet_missing_or_changed_since_the_runs_passes_them_over(folder, monkeypatch):
    from harness.results import ResultsStore
    from supernets.retrain import supernet_split

    out, data = folder
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    recorded = next(c.config["oracle_checksum"] for c in ResultsStore(out).cells() if c.oracle == ORACLE)
    lines: list[str] = []
    assert supernet_split(ORACLE, recorded, None, log=lines.append) == \
        {"dataset": "digits", "split_seed": SPLIT_SEED, "cifar_dir": None}
    assert lines == []
    assert supernet_split(ORACLE, "0" * 64, None, log=lines.append) is None
    assert "not the one these runs queried" in lines[-1]
    assert supernet_split("supernet/gone", None, None, log=lines.append) is None
    assert lines[-1].startswith("supernet/gone: cannot load it")
    # an NB201 supernet (loaded, or known finite from its facts) and a table are no DARTS supernet,
    # passed over silently
    n = len(lines)
    assert supernet_split("supernet/nb:calib=16", None, None, log=lines.append) is None
    assert supernet_split("supernet/nb", None, {"space_size": 15625}, log=lines.append) is None
    assert supernet_split("nb201/cifar10", None, None, log=lines.append) is None
    assert len(lines) == n
