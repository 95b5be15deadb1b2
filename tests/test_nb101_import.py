"""NAS-Bench-101 import from an official-layout tfrecord fixture made of the 25 shared records."""

from __future__ import annotations

import argparse
import importlib
import json
import struct

import numpy as np
import pytest

from conftest import NB101_SAMPLE, require
from nb101_helpers import (FINAL_KEYS, HALF_KEYS, frame, load_sample, official_payloads,
                           write_official_tfrecord)
from optional import require_module
from oracles.errors import CorruptData, UserError
from oracles.importers import nb101 as imp
from oracles.nb101_space import NB101TableSpace, make_cell
from oracles.registry import load_oracle
from oracles.table import load_table, save_table


@pytest.fixture(scope="module")
def sample():
    return load_sample(require(NB101_SAMPLE))


@pytest.fixture(scope="module")
def fixture_file(sample, tmp_path_factory):
    return write_official_tfrecord(sample, tmp_path_factory.mktemp("nb101") / "nasbench_only108.tfrecord")


@pytest.fixture(scope="module")
def table(fixture_file):
    return imp.build(argparse.Namespace(source=fixture_file, name=None))


@pytest.fixture
def nb101_env(table, tmp_path, monkeypatch):
    save_table(table, tmp_path / table.name)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    return tmp_path


def test_fixture_has_the_official_layout(fixture_file, sample):
    records = list(imp.iter_tfrecords(fixture_file))
    assert len(records) == 25 * 3
    h, epochs, adjacency, ops, metrics = json.loads(records[0][1])
    assert (h, epochs) == (sample[0]["hash"], 108)
    assert len(adjacency) == len(sample[0]["ops"]) ** 2 and ops.split(",") == sample[0]["ops"]
    decoded = imp.decode_model_metrics(__import__("base64").b64decode(metrics))
    assert decoded["params"] == sample[0]["trainable_parameters"]
    assert [e["current_epoch"] for e in decoded["evaluations"]] == [0.0, 54.0, 108.0]


def test_import_keeps_every_value(table, sample):
    assert table.name == "nb101" and table.n_archs == 25
    assert table.fidelities == (108,) and table.seeds == ("0", "1", "2")
    assert table.values.dtype == np.float32
    assert list(table.archs) == sorted(r["hash"] for r in sample)
    space = NB101TableSpace(table.archs, table.columns["bits"], table.columns["ops"])
    for rec in sample:
        i = space.row_of_hash(rec["hash"])
        assert space.index(make_cell(rec["matrix"], rec["ops"])) == i
        assert table.columns["params"][i] == rec["trainable_parameters"]
        assert table.columns["n_vertices"][i] == len(rec["ops"])
        for run, official in enumerate(rec["epochs"]["108"]):
            got = table.values[i, run, 0]
            want = [official[k] for k in FINAL_KEYS + HALF_KEYS]
            # the release's doubles are float32 values, so float32 storage is lossless
            np.testing.assert_array_equal(got.astype(np.float64), want)


def test_oracles_answer_the_recorded_means(nb101_env, sample):
    oracle = load_oracle("nb101")
    test_search = load_oracle("nb101/test-search")
    for rec in sample:
        cell = make_cell(rec["matrix"], rec["ops"])
        runs = rec["epochs"]["108"]
        mean = lambda k: float(np.mean([r[k] for r in runs]))  # noqa: E731 (the official API's mean)
        ev = oracle.query(cell)
        assert ev.observation.value == mean("final_validation_accuracy")  # bit-exact
        assert ev.report == mean("final_test_accuracy")
        assert ev.observation.cost == pytest.approx(mean("final_training_time"), rel=1e-15)
        assert ev.observation.train == pytest.approx(mean("final_train_accuracy"), abs=1e-15)
        assert test_search.query(cell).observation.value == pytest.approx(mean("final_test_accuracy"), abs=1e-15)
    best = max(sample, key=lambda r: np.mean([x["final_test_accuracy"] for x in r["epochs"]["108"]]))
    assert test_search.optimum.identities == frozenset({best["hash"]})


def test_random_run_queries_draw_one_of_the_three_runs(nb101_env, sample):
    oracle = load_oracle("nb101:runs=random")
    rng = np.random.default_rng(0)
    rec = sample[3]
    cell = make_cell(rec["matrix"], rec["ops"])
    pairs = {(float(np.float32(r["final_validation_accuracy"])), float(np.float32(r["final_test_accuracy"])))
             for r in rec["epochs"]["108"]}
    seen = set()
    for _ in range(40):
        ev = oracle.query(cell, rng)
        pair = (ev.observation.value, ev.report)
        assert pair in pairs  # validation and test of the SAME run
        seen.add(pair)
    assert seen == pairs


def test_full_file_layout_gives_one_fidelity_per_epoch_budget(sample, tmp_path):
    # Layout test only: the 108-epoch runs written a second time under a 36-epoch label.
    recs = [dict(r, epochs={"36": r["epochs"]["108"], "108": r["epochs"]["108"]}) for r in sample[:4]]
    path = write_official_tfrecord(recs, tmp_path / "nasbench_full.tfrecord")
    t = imp.import_file(path)
    assert t.name == "nb101-full" and t.fidelities == (36, 108)
    assert [o["name"] for o in t.meta["oracles"]] == ["nb101-full", "nb101-full/test-search"]
    assert all(o["fidelity"] == 108 for o in t.meta["oracles"])
    assert not np.isnan(t.values).any()


def _corrupt(tmp_path, payloads, name="bad.tfrecord"):
    path = tmp_path / name
    with open(path, "wb") as fh:
        for p in payloads:
            fh.write(p if isinstance(p, (bytes, bytearray)) and p[:1] != b"[" else frame(p))
    return path


def test_damaged_bytes_are_reported_with_the_record_number(fixture_file, tmp_path):
    data = bytearray(fixture_file.read_bytes())
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 16 + length
    bad = bytearray(data)
    bad[offsets[7] + 12 + 5] ^= 0xFF  # inside record 7's payload
    p = tmp_path / "flipped.tfrecord"
    p.write_bytes(bytes(bad))
    with pytest.raises(CorruptData, match="record 7 has a bad data checksum"):
        imp.import_file(p)
    t = tmp_path / "truncated.tfrecord"
    t.write_bytes(bytes(data[: offsets[40] + 30]))
    with pytest.raises(CorruptData, match="record 40 is truncated"):
        imp.import_file(t)


def test_hash_mismatch_and_bad_contents_name_the_record(sample, tmp_path):
    payloads = official_payloads(sample[:3])
    rec = json.loads(payloads[3])
    rec[0] = "0123456789abcdef0123456789abcdef"  # record 3 is sample[1]'s first run
    wrong = payloads[:3] + [json.dumps(rec).encode()] + payloads[4:]
    with pytest.raises(CorruptData, match=f"record 3 says hash {rec[0]} but its cell hashes to {sample[1]['hash']}"):
        imp.import_file(write_official_tfrecord([], tmp_path / "a.tfrecord", wrong))
    rec = json.loads(payloads[4])
    rec[0] = sample[0]["hash"]  # record 4 belongs to sample[1] but claims sample[0]'s hash
    wrong = payloads[:4] + [json.dumps(rec).encode()] + payloads[5:]
    with pytest.raises(CorruptData, match="record 4: hash .* was recorded earlier with another cell"):
        imp.import_file(write_official_tfrecord([], tmp_path / "a2.tfrecord", wrong))
    rec = json.loads(payloads[2])
    rec[4] = "!!!not base64"
    with pytest.raises(CorruptData, match="record 2 is not an NB101 record"):
        imp.import_file(write_official_tfrecord([], tmp_path / "b.tfrecord", payloads[:2] + [json.dumps(rec).encode()]))
    rec = json.loads(payloads[0])
    rec[3] = rec[3].replace("conv3x3-bn-relu", "conv7x7")
    with pytest.raises(CorruptData, match="record 0 holds an invalid NB101 cell"):
        imp.import_file(write_official_tfrecord([], tmp_path / "c.tfrecord", [json.dumps(rec).encode()]))
    # a fourth run of a model
    with pytest.raises(CorruptData, match="record 3 is run 4"):
        imp.import_file(write_official_tfrecord([], tmp_path / "d.tfrecord", payloads[:3] + payloads[:1]))


def test_user_errors_for_missing_or_empty_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        imp.import_file(tmp_path / "nope.tfrecord")
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(CorruptData, match="holds no NB101 records"):
        imp.import_file(tmp_path / "empty.tfrecord")


def test_saved_table_round_trips_and_registry_builds_the_space(nb101_env, table):
    loaded = load_table(nb101_env / "nb101")
    np.testing.assert_array_equal(np.asarray(loaded.values), table.values)
    oracle = load_oracle("nb101")
    assert isinstance(oracle.space, NB101TableSpace) and oracle.space.size == 25
    d = oracle.describe()
    assert d["space"]["name"] == "nb101" and d["fidelity"] == 108


def test_random_search_reaches_the_fixture_optimum(nb101_env):
    from harness.runner import RunConfig, run_one
    oracle = load_oracle("nb101/test-search")
    for seed in range(3):
        _, summary = run_one(RunConfig(algorithm="random", oracle="nb101/test-search", budget=25,
                                       until_optimum=True), oracle, seed=seed)
        assert summary["reached_optimum"] and 1 <= summary["samples_to_optimum"] <= 25
        assert summary["best_search"] == oracle.optimum.value


#: algorithms that run in seconds with their published defaults on a 25-model table; the
#: others (e.g. NASES pretrains an autoencoder on 300,000 vectors first) run as slow extras
QUICK = {"random", "evolution", "mcts", "lanas"}


def _algorithm_names():
    """Every registered algorithm of the plain ask/tell surface; the multi-fidelity ones need
    several fidelities (this fixture serves 108 epochs only): tests/test_nb101_multifidelity.py
    runs them on NB101's four budgets."""
    from algorithms import REGISTRY, algorithm_class
    return [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in sorted(REGISTRY)
            if not algorithm_class(n).uses_fidelities]


@pytest.mark.parametrize("name", _algorithm_names())
def test_every_registered_algorithm_runs_on_the_fixture(nb101_env, name):
    from algorithms import REGISTRY
    from harness.runner import RunConfig, run_one
    try:  # the module under test: a broken import fails here, it never skips
        importlib.import_module(REGISTRY[name].partition(":")[0])
    except ModuleNotFoundError as exc:
        if exc.name != "torch":  # the learned algorithms' optional dependency
            raise
        require_module("torch")
    oracle = load_oracle("nb101")
    records, summary = run_one(RunConfig(algorithm=name, oracle="nb101", budget=15, max_repeats=2000),
                               oracle, seed=0)
    assert summary["n_distinct"] == 15
    assert set(records["arch_id"]) <= set(oracle.table.archs)


def test_cli_import_and_query(fixture_file, sample, tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(["oracles", "import", "nb101", str(fixture_file)]) == 0
    out = capsys.readouterr().out
    assert "imported 25 architectures" in out and "nb101/test-search" in out
    rec = sample[5]
    assert main(["oracles", "query", "nb101", rec["hash"]]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["identity"] == rec["hash"]
    assert answer["validation_accuracy"] == float(np.mean([r["final_validation_accuracy"]
                                                           for r in rec["epochs"]["108"]]))
    # a damaged file: one line naming the record, non-zero exit, no traceback
    data = bytearray(fixture_file.read_bytes())
    data[-3] ^= 0xFF
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    assert main(["oracles", "import", "nb101", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "record 74 has a bad data checksum" in err and "Traceback" not in err
