"""Live training oracles (oracles/live.py): a query trains the network, results go to the
shared result store, deterministic and stochastic modes, two processes asking for one network
train it once, a search through `nas-harness run`, and a store exported as a table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")
require_module("sklearn")

from oracles.errors import UserError  # noqa: E402
from oracles.live import (REFERENCE_RATES, LiveOracle, build_oracle, derived_seed,  # noqa: E402
                          load_data, nominal_seconds)
from oracles.registry import FACTORIES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: a tiny recipe and space: each training is a fraction of a second on one core
TINY = {"epochs": "2", "max_hidden": "2", "sampler": "depth"}


@pytest.fixture(autouse=True)
def _torch_state():
    # training switches torch to one thread and deterministic kernels; give other tests theirs back
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def live_family(monkeypatch):
    monkeypatch.setitem(FACTORIES, "live", "oracles.live:build_oracle")


def oracle(store, **options) -> LiveOracle:
    opts = {**TINY, "store": str(store), **{k: str(v) for k, v in options.items()}}
    return build_oracle("live/mlp-digits", opts)


ARCH = ((64, "relu"), (32, "elu"))


def test_a_query_trains_and_the_store_serves_it_across_runs_and_seeds(tmp_path):
    o = oracle(tmp_path)
    assert o.deterministic and o.optimum is None and o.fidelities.values == (2,)
    first = o.query(ARCH)
    assert 0.5 < first.observation.value <= 1 and 0 < first.report <= 1 and 0 < first.observation.train <= 1
    assert o.log[-1]["trained"] and o.log[-1]["train_time"] > 0
    # the same oracle asked again, and a new oracle object (another run, another run seed)
    assert o.query(ARCH) == first and not o.log[-1]["trained"]
    other_run = oracle(tmp_path)
    assert other_run.query(ARCH, rng=np.random.default_rng(9)) == first and not other_run.log[-1]["trained"]
    # the training seed comes from the architecture and the oracle seed only
    row = other_run.rows()[0]
    assert row["seed"] == derived_seed(o.space.identity(ARCH), 0) and row["mode"] == "deterministic"
    assert row["oracle_seed"] == 0 and row["epochs"] <= 2 and len(row["valid_curve"]) == row["epochs"]
    # another oracle seed is another training
    seed1 = oracle(tmp_path, seed=1)
    again = seed1.query(ARCH)
    assert seed1.log[-1]["trained"] and again != first and seed1.checksum != o.checksum
    # a fresh store trains the same network with the same seed to the same numbers (same machine)
    fresh = oracle(tmp_path / "other-store")
    assert fresh.query(ARCH) == first and fresh.log[-1]["trained"] and fresh.checksum == o.checksum


def test_the_cost_is_deterministic_and_the_measured_seconds_recorded_beside_it(tmp_path):
    o = oracle(tmp_path)
    data = load_data("digits", 0)
    macs = 64 * 64 + 64 * 32 + 32 * 10
    expect = nominal_seconds(macs, 2, len(data.y_train), len(data.y_valid), 2, 32)
    r = REFERENCE_RATES
    by_hand = 2 * (34 * (r["step_seconds"] + 2 * r["layer_step_seconds"])
                   + (3 * 1078 + 360) * macs / r["macs_per_second"])
    assert expect == pytest.approx(by_hand)
    a = o.query(ARCH)
    b = o.query(ARCH)                   # served: same nominal cost, no measured seconds
    assert a.observation.cost == b.observation.cost == pytest.approx(expect)
    assert o.log[0]["train_cpu"] > 0 and o.log[1]["train_time"] is None
    # the measured CPU seconds travel with the answer (the runner records them); none when served
    assert a.measured_s == o.log[0]["train_cpu"] and b.measured_s == 0.0
    d = o.describe()
    assert d["trained_here"] == 1 and d["served_from_store"] == 1 and d["measured_seconds"] == o.log[0]["train_time"]
    assert d["nominal_seconds"] == pytest.approx(2 * expect)
    bigger = ((512, "relu"), (512, "relu"))
    assert o.trainer.cost(bigger) > o.trainer.cost(ARCH)


def test_stochastic_mode_draws_a_training_seed_per_query_and_records_each(tmp_path):
    o = oracle(tmp_path, mode="stochastic")
    assert not o.deterministic
    rng = np.random.default_rng(4)
    a, b = o.query(ARCH, rng), o.query(ARCH, rng)
    assert o.log[0]["seed"] != o.log[1]["seed"] and o.log[0]["trained"] and o.log[1]["trained"]
    assert a != b
    rows = o.rows()
    assert len(rows) == 2 and {r["mode"] for r in rows} == {"stochastic"} and {r["oracle_seed"] for r in rows} == {None}
    # replaying the same run (same oracle stream) asks for the same trainings: served, equal
    replay = oracle(tmp_path, mode="stochastic")
    rng = np.random.default_rng(4)
    assert [replay.query(ARCH, rng), replay.query(ARCH, rng)] == [a, b]
    assert not any(e["trained"] for e in replay.log)
    # stochastic rows are not what a deterministic oracle serves
    det = oracle(tmp_path)
    det.query(ARCH)
    assert det.log[-1]["trained"]


_ASKER = """
import json, os, sys, time
sys.path.insert(0, {repo!r})
from oracles.live import build_oracle
o = build_oracle("live/mlp-digits", {opts!r})
open({ready!r} + sys.argv[1], "w").close()
while not os.path.exists({go!r}):
    time.sleep(0.005)
e = o.query(o.space.parse({arch!r}))
print(json.dumps({{"value": e.observation.value, "report": e.report, "trained": o.log[-1]["trained"]}}))
"""


def test_two_processes_asking_for_one_network_train_it_once(tmp_path):
    go = tmp_path / "go"
    opts = {**TINY, "store": str(tmp_path / "store")}
    arch = "(256, 'tanh'), (128, 'relu')"
    ready = tmp_path / "ready-"
    script = _ASKER.format(repo=str(REPO), opts=opts, go=str(go), ready=str(ready), arch=arch)
    children = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE) for i in range(2)]
    deadline = time.monotonic() + 120
    # both import torch and load the data, then ask at the same moment
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.01)
    go.touch()
    outs = [json.loads(c.communicate(timeout=120)[0]) for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert sorted(o["trained"] for o in outs) == [False, True]
    assert outs[0]["value"] == outs[1]["value"] and outs[0]["report"] == outs[1]["report"]
    assert len(oracle(tmp_path / "store").rows()) == 1


def test_random_search_through_nas_harness_run(tmp_path, live_family, capsys):
    import pandas as pd

    from harness.cli import main
    store = tmp_path / "store"
    # reference_seeds=0: MLPClassifier takes ~12 CPU-s a seed on digits (its reference rows:
    # test_a_run_on_an_mlp_oracle_writes_its_reference_row, on wine)
    name = f"live/mlp-digits:epochs=1,max_hidden=2,reference_seeds=0,sampler=depth,store={store}"
    rc = main(["run", "--oracle", name, "--algorithm", "random", "--seeds", "2", "--budget", "3",
               "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_parquet(tmp_path / "out" / "runs")
    assert sorted(df.groupby("seed").size().tolist()) == [3, 3]
    assert df["search"].between(0, 1).all() and (df["cost"] > 0).all()
    # the simulated clock runs on the nominal costs: a trial finishes its cost after it starts
    assert np.allclose(df["finish"] - df["start"], df["cost"])
    rows = build_oracle("live/mlp-digits", {"epochs": "1", "max_hidden": "2", "sampler": "depth",
                                            "store": str(store)}).rows()
    archs = set(df["arch"])
    assert {r["arch"] for r in rows} == archs and len(rows) == len(archs)
    # a second execution of other seeds asks the store first: nothing it holds is trained again
    rc = main(["run", "--oracle", name, "--algorithm", "random", "--seeds", "2", "--seed-start", "0", "--budget",
               "3", "--out", str(tmp_path / "out2"), "--quiet"])
    assert rc == 0
    # measured seconds beside the nominal cost: paid where trained, nothing where the store served
    assert (df["measured_s"] >= 0).all() and df["measured_s"].sum() > 0
    assert (pd.read_parquet(tmp_path / "out2" / "runs")["measured_s"] == 0).all()
    assert len(build_oracle("live/mlp-digits", {"epochs": "1", "max_hidden": "2", "sampler": "depth",
                                                "store": str(store)}).rows()) == len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_concurrent_runs_asking_for_the_same_networks_train_each_once(tmp_path, request, executor):
    """Two runs in two worker processes (or Ray workers) ask for the same networks in the same
    order: two names of one oracle (same recipe, data and store), one algorithm, one seed."""
    import pandas as pd

    from harness.experiment import Experiment, execute
    if executor == "ray":
        request.getfixturevalue("ray_local")
    store = tmp_path / "store"
    base = f"live/mlp-digits:epochs=1,max_hidden=2,reference_seeds=0,sampler=depth,store={store}"
    execute(Experiment(oracles=[base, base + ",threads=1"], algorithms=["random"], seeds=1, budget=4, workers=2,
                       executor=executor, out=str(tmp_path / "out")), progress=False)
    df = pd.read_parquet(tmp_path / "out" / "runs")
    runs = [df[df.oracle == o].sort_values("trial") for o in sorted(set(df.oracle))]
    assert len(df) == 8 and runs[0]["arch"].tolist() == runs[1]["arch"].tolist()   # the same 4 networks
    assert runs[0]["search"].tolist() == runs[1]["search"].tolist()
    rows, stats = scan_store(store)
    assert len(rows) == 4 and stats["duplicates"] == 0       # each trained once, by one of the two


def scan_store(store):
    from oracles.collectors.store import scan
    from oracles.live import KEY_FIELDS
    return scan(store, KEY_FIELDS)


def test_a_convnet_store_grows_into_a_table_oracle(tmp_path):
    from oracles.registry import load_oracle
    o = build_oracle("live/convnet-digits", {"epochs": "1", "store": str(tmp_path / "store")})
    space = o.space
    archs = [space.arch(i) for i in (0, 7, 300)]
    answers = [o.query(a) for a in archs]
    table = o.export_table(tmp_path / "table", name="convnet-digits-live")
    assert table.n_archs == 3 and table.seeds == ("0",) and table.fidelities == (1,)
    tab = load_oracle("convnet-digits-live", shared=table)
    for a, e in zip(archs, answers):
        got = tab.query(a)
        assert got.observation.value == e.observation.value and got.report == e.report
    assert list(table.columns["space_index"]) == [0, 7, 300]


def test_an_mlp_store_grows_into_a_table_oracle(tmp_path, monkeypatch):
    from oracles.mlp_space import space_from_table
    from oracles.registry import SPACE_BUILDERS, load_oracle
    from oracles.table import load_table
    monkeypatch.setitem(SPACE_BUILDERS, "mlp", space_from_table)
    archs = [ARCH, ((8, "tanh"),)]
    for seed in (0, 1):
        o = oracle(tmp_path / "store", seed=seed)
        answers = [o.query(a) for a in archs]
    oracle(tmp_path / "store", mode="stochastic").query(ARCH, np.random.default_rng(0))  # not exported
    o.export_table(tmp_path / "table", name="mlp-digits-live")
    table = load_table(tmp_path / "table")
    assert table.n_archs == 2 and table.seeds == ("0", "1")
    tab = load_oracle("mlp-digits-live", shared=table)
    assert tab.space.size == 2
    for a, e in zip(archs, answers):    # seed 1's answers are the second seed's column
        i = tab.space.index(a)
        assert table.values[i, 1, 0, table.metric_index("valid_acc")] == e.observation.value
    means = tab.query(ARCH)
    per_seed = table.values[tab.space.index(ARCH), :, 0, table.metric_index("valid_acc")]
    assert means.observation.value == pytest.approx(per_seed.mean())


def test_restart_fidelities_are_trainings_of_their_own(tmp_path):
    from harness.runner import RunConfig, run_one
    o = oracle(tmp_path, fidelities="1+2")
    assert o.fidelities.values == (1, 2) and o.fidelities.kind == "restart"
    low, top = o.query(ARCH, fidelity=1), o.query(ARCH)
    assert [e["fidelity"] for e in o.log] == [1, 2] and all(e["trained"] for e in o.log)
    assert low.observation.cost == pytest.approx(top.observation.cost / 2)
    assert o.query(ARCH, fidelity=1) == low and not o.log[-1]["trained"]
    assert len(o.rows()) == 1                       # the top fidelity's rows
    assert oracle(tmp_path).checksum != o.checksum
    rec, summary = run_one(RunConfig(algorithm="successive-halving", oracle=o.name, budget=4), o, 0)
    assert summary.get("failed") is None and set(rec["fidelity"].tolist()) <= {1, 2}
    for bad in ("1+3", "0+2", "one"):
        with pytest.raises(UserError, match="fidelities"):
            oracle(tmp_path, fidelities=bad)


def test_the_oracles_commands_query_and_describe_a_live_oracle(tmp_path, capsys):
    from harness.cli import main
    from oracles.registry import factory_of
    assert factory_of("live/mlp-digits") == "oracles.live:build_oracle"   # registered
    name = f"live/mlp-digits:epochs=1,max_hidden=2,store={tmp_path}"
    assert main(["oracles", "query", name, "(256, 'elu')"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == "(256, 'elu'), (10, 'softmax')" and 0 < out["valid_acc"] <= 1 and out["fidelity"] == 1
    assert main(["oracles", "info", name]) == 0
    text = capsys.readouterr().out
    assert "space         mlp, infinite" in text and "fidelities 1 (restart)" in text and "not known" in text


def test_the_mlp_classifier_reference_on_the_same_split(tmp_path):
    from oracles.live import METRICS, reference_mlp_classifier
    data = load_data("wine", 0)
    ref = reference_mlp_classifier(data, seed=0, store=tmp_path)
    assert set(METRICS) <= set(ref) and 0.8 < ref["valid_acc"] <= 1 and 0.8 < ref["test_acc"] <= 1
    assert ref["epochs"] == 200          # the default max_iter, reached on this small set
    again = reference_mlp_classifier(data, seed=0, store=tmp_path)       # served from the store
    assert again == ref
    other = reference_mlp_classifier(data, seed=1)
    assert other["train_time"] != ref["train_time"] and 0.8 < other["test_acc"] <= 1


def test_a_run_on_an_mlp_oracle_writes_its_reference_row(tmp_path, live_family, capsys, monkeypatch):
    from harness.cli import main
    from harness.summary import read_references
    calls = []
    references = LiveOracle.references

    def counted(self):
        calls.append(self.name)
        return references(self)

    monkeypatch.setattr(LiveOracle, "references", counted)
    out = tmp_path / "out"
    name = f"live/mlp-wine:epochs=1,max_hidden=2,reference_seeds=2,sampler=depth,store={tmp_path / 'store'}"
    args = ["run", "--oracle", name, "--algorithm", "random", "--seeds", "1", "--budget", "2", "--out", str(out),
            "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    [ref] = read_references(out)
    assert ref["oracle"] == name and ref["name"] == "MLPClassifier (scikit-learn defaults)"
    assert len(ref["search"]) == len(ref["report"]) == 2 and all(0.8 < v <= 1 for v in ref["report"])
    assert ref["provenance"]["random_state"] == [0, 1] and calls == [calls[0]]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MLPClassifier (scikit-learn defaults)" in text, text
    # a second run into the folder (one more seed) neither asks nor rewrites the reference
    written = (out / "references.json").stat().st_mtime_ns, (out / "references.json").read_bytes()
    assert main([*args[:args.index("--seeds") + 1], "2", *args[args.index("--seeds") + 2:]]) == 0
    assert len(list(out.glob("runs/*/*/seed-*.parquet"))) == 2
    assert len(calls) == 1
    assert ((out / "references.json").stat().st_mtime_ns, (out / "references.json").read_bytes()) == written


def test_a_table_oracle_and_a_convnet_oracle_have_no_reference_row(tmp_path, live_family):
    from harness.experiment import Experiment, execute
    execute(Experiment(oracles=["convnet-digits"], algorithms=["random"], seeds=1, budget=2, out=str(tmp_path)),
            progress=False)
    assert not (tmp_path / "references.json").exists()
    assert build_oracle("live/convnet-digits", {"epochs": "1", "store": str(tmp_path / "s")}).references() == []
    with pytest.raises(UserError, match="reference_seeds"):
        build_oracle("live/convnet-digits", {"reference_seeds": "2", "store": str(tmp_path / "s")})
    assert oracle(tmp_path / "s", reference_seeds=0).references() == []


def test_a_failing_reference_is_one_warning_and_the_run_goes_on(tmp_path, live_family, capsys, monkeypatch):
    from harness.cli import main

    def broken(self):
        raise RuntimeError("no scikit-learn today\nsecond line")

    monkeypatch.setattr(LiveOracle, "references", broken)
    out = tmp_path / "out"
    name = f"live/mlp-wine:epochs=1,max_hidden=2,sampler=depth,store={tmp_path / 'store'}"
    assert main(["run", "--oracle", name, "--algorithm", "random", "--seeds", "1", "--budget", "2",
                 "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: the reference results of " + name in err, err
    assert "no scikit-learn today second line" in err and list(out.glob("runs/*/*/seed-*.parquet"))
    assert not (out / "references.json").exists()


def test_bigram_sharing_trains_from_the_runs_bank_and_never_through_the_store(tmp_path):
    o = oracle(tmp_path, bigram_sharing="true")
    assert o.features == {"bigram-weight-sharing"} and not o.deterministic and not oracle(tmp_path).features
    first = o.query(ARCH)
    second = o.query(((64, "relu"), (16, "tanh")))     # shares (input, 64 relu) with the first
    third = o.query(((8, "sigmoid"),))                 # shares no layer pair
    assert [e["shared_layers"] for e in o.log] == [0, 1, 0]
    assert o.rows() == [] and all(e["trained"] for e in o.log)
    # asked again, a network is trained again from the bank: its answer depends on the history
    again = o.query(ARCH)
    assert o.log[-1]["shared_layers"] == 3 and again != first
    # a new oracle object (the next run) starts from an empty bank: the first answer repeats
    fresh = oracle(tmp_path, bigram_sharing="true")
    assert fresh.query(ARCH) == first and fresh.log[-1]["shared_layers"] == 0
    assert second.observation.cost > 0 and third.observation.value > 0
    assert fresh.checksum != oracle(tmp_path).checksum
    with pytest.raises(UserError, match="MLPs"):
        build_oracle("live/convnet-digits", {"store": str(tmp_path), "bigram_sharing": "true"})
    with pytest.raises(UserError, match="true or false"):
        oracle(tmp_path, bigram_sharing="yes")


def test_options_are_checked(tmp_path):
    for name, opts, match in [
        ("live/mlp-digits", {"mode": "noisy"}, "mode"),
        ("live/mlp-digits", {"colour": "red"}, "unknown option"),
        ("live/mlp-digits", {"epochs": "ten"}, "integer"),
        ("live/mlp-digits", {"preset": "digits"}, "convnet"),
        ("live/convnet-wine", {}, "images"),
        ("live/convnet-digits", {"max_hidden": "3"}, "mlp"),
        ("live/rnn-digits", {}, "unknown live oracle"),
        ("live/mlp-imagenet", {}, "unknown live oracle"),
        ("live/mlp-digits", {"device": "tpu"}, "device"),
    ]:
        with pytest.raises(UserError, match=match):
            build_oracle(name, {"store": str(tmp_path), **opts})
    o = oracle(tmp_path)
    with pytest.raises(UserError, match="fidelity"):
        o.query(ARCH, fidelity=5)


def test_wine_is_its_own_labelled_data_set(tmp_path):
    o = build_oracle("live/mlp-wine", {**TINY, "store": str(tmp_path)})
    assert o.space.num_classes == 3 and o.space.to_string(ARCH).endswith("(3, 'softmax')")
    assert "different, much easier" in o.describe()["description"]
    data = o.trainer.data
    assert data.meta["sizes"] == [107, 35, 36] and np.allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    e = o.query(ARCH)
    assert 0 <= e.observation.value <= 1
