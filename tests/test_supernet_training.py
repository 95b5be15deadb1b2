"""Supernet training, scoring, checkpoints and the `supernet train` command
(supernets/training.py, supernets/checkpoints.py, harness/commands/supernet.py).

Tiny supernets (C=4, N=1, 192 digits images, batch 64: 3 steps an epoch) train in well
under a second an epoch on one core."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")
require_module("sklearn")

from oracles.errors import CorruptData, UserError  # noqa: E402
from supernets import checkpoints as ck  # noqa: E402
from supernets.data import load  # noqa: E402
from supernets.nb201 import live_edges  # noqa: E402
from supernets.config import SupernetConfig, preset_config  # noqa: E402
from supernets.training import (EvalSettings, SupernetTrainer, evaluate_archs, evaluation_key,  # noqa: E402
                                recalibrate_bn)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return load("digits", 0)


def tiny(**kw):
    base = dict(C=4, N=1, epochs=2, max_train=192, seed=0)
    base.update(kw)
    return SupernetConfig(**base)


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.supernet.state_dict().items()}


def _assert_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].double().numpy(), b[k].double().numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=k)


def test_training_is_deterministic_for_a_seed(digits):
    runs = []
    for _ in range(2):
        t = SupernetTrainer(tiny(), digits)
        paths = []
        for _ in range(2):
            t.train_epoch()
            paths += t.last_paths
        runs.append((t, paths))
    (a, pa), (b, pb) = runs
    assert pa == pb and len(pa) == 2 * 3
    assert len(set(pa)) > 1
    _assert_close(_weights(a), _weights(b))
    assert a.history[-1]["train_loss"] == pytest.approx(b.history[-1]["train_loss"], rel=1e-6)
    c = SupernetTrainer(tiny(seed=1), digits)
    c.train_epoch()
    assert c.last_paths != pa[:3]
    # torch's global generator does not decide anything: drawing from it changes nothing
    torch.manual_seed(12345)
    torch.rand(10)
    d = SupernetTrainer(tiny(), digits)
    d.train_epoch()
    d.train_epoch()
    _assert_close(_weights(a), _weights(d))


def test_single_path_updates_only_its_weights(digits):
    t = SupernetTrainer(tiny(max_train=64), digits)     # one step an epoch
    before = _weights(t)
    t.train_epoch()
    (path,) = t.last_paths
    live = live_edges(path)
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    after = _weights(t)
    changed_edge_ops = set()
    for name, p in t.supernet.named_parameters():
        moved = not torch.equal(before[name], after[name])
        if ".edges.e" in name:
            e, op = name.split(".edges.e")[1].split(".")[:2]
            on_path = live[int(e)] and op == ops[path[int(e)]]
            assert moved == on_path, name
            if moved:
                changed_edge_ops.add((int(e), op))
        else:
            assert moved, name   # the skeleton is on every path
    assert changed_edge_ops == {(e, ops[path[e]]) for e in range(6) if live[e] and path[e] in (2, 3)}


def test_all_ops_mode_trains_every_operation(digits):
    t = SupernetTrainer(tiny(mode="all-ops", max_train=64), digits)
    before = _weights(t)
    t.train_epoch()
    assert t.last_paths == []
    after = _weights(t)
    for name, _ in t.supernet.named_parameters():
        assert not torch.equal(before[name], after[name]), name
    assert np.isfinite(t.history[-1]["train_loss"])


def test_training_learns_and_presets(digits):
    t = SupernetTrainer(tiny(epochs=6, max_train=384, C=8), digits)
    t.train()
    assert t.done
    assert t.history[-1]["train_loss"] < t.history[0]["train_loss"]
    # the cosine schedule reaches lr_min at the end (DARTS / NB201)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    assert preset_config("cpu").C == 8 and preset_config("cpu").N == 1
    assert preset_config("gpu").C == 16 and preset_config("gpu").N == 5
    assert preset_config("cpu", epochs=3, C=None).epochs == 3
    with pytest.raises(ValueError):
        preset_config("tpu")
    with pytest.raises(ValueError):
        SupernetConfig(mode="half")
    with pytest.raises(ValueError):
        t.train_epoch()


def test_evaluation_is_deterministic_and_leaves_the_supernet_alone(digits):
    t = SupernetTrainer(tiny(epochs=3, max_train=256), digits)
    t.train()
    x, y = digits.search_valid
    xc = digits.supernet_train[0]
    rng = np.random.default_rng(0)
    archs = [tuple(int(v) for v in rng.integers(0, 5, 6)) for _ in range(10)]
    archs.append((0, 3, 4, 2, 3, 1))                       # the same network as the next one
    archs.append((0, 3, 3, 2, 2, 1))
    state = _weights(t)
    settings = EvalSettings(batch_size=128, calib_images=128)
    r1 = evaluate_archs(t.supernet, archs, x, y, settings, xc)
    _assert_close(state, _weights(t))
    r2 = evaluate_archs(t.supernet, archs[::-1], x, y, settings, xc)
    np.testing.assert_array_equal(r1["acc"], r2["acc"][::-1])
    np.testing.assert_allclose(r1["loss"], r2["loss"][::-1], rtol=1e-6)
    assert r1["acc"][-1] == r1["acc"][-2] and evaluation_key(archs[-1]) == evaluation_key(archs[-2])
    assert np.all((r1["acc"] >= 0) & (r1["acc"] <= 1)) and np.all(r1["loss"] > 0)
    # without recalibration: exactly what the stand-alone sub-network with the supernet's
    # weights and statistics scores
    r0 = evaluate_archs(t.supernet, archs[:3], x, y, EvalSettings(batch_size=len(y), calib_images=0))
    for arch, acc, loss in zip(archs[:3], r0["acc"], r0["loss"]):
        net = t.supernet.subnet(arch).eval()
        with torch.no_grad():
            logits = net(torch.from_numpy(x))
        assert acc == pytest.approx(float((logits.argmax(1) == torch.from_numpy(y)).float().mean()))
        assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))),
                                     rel=1e-5)
    with pytest.raises(ValueError):
        evaluate_archs(t.supernet, archs, x, y, settings)   # recalibration without images


def test_recalibration_forgets_the_old_statistics(digits):
    t = SupernetTrainer(tiny(bn_affine=True, bn_track=True, max_train=128), digits)
    t.train_epoch()
    xc = torch.from_numpy(digits.supernet_train[0][:128])
    arch = (3, 2, 1, 3, 4, 2)
    recalibrate_bn(t.supernet, arch, xc, 64)
    first = {k: v.clone() for k, v in t.supernet.state_dict().items() if "running" in k}
    for k, v in t.supernet.state_dict().items():
        if "running_mean" in k:
            v.add_(3.0)
    recalibrate_bn(t.supernet, arch, xc, 64)
    again = {k: v for k, v in t.supernet.state_dict().items() if "running" in k}
    _assert_close(first, again)
    # the statistics of a BN layer off the path are reset (its running mean is 0), the path's are not
    on = [k for k in first if ".e0.nor_conv_3x3." in k and k.endswith("running_mean")]
    off = [k for k in first if ".e0.nor_conv_1x1." in k and k.endswith("running_mean")]
    assert on and off
    assert all(torch.count_nonzero(first[k]) > 0 for k in on)
    assert all(torch.count_nonzero(first[k]) == 0 for k in off)


def test_resume_equals_uninterrupted_training(digits, tmp_path):
    straight = SupernetTrainer(tiny(epochs=3), digits)
    straight.train()
    first = SupernetTrainer(tiny(epochs=3), digits)
    first.train_epoch()
    ck.save_checkpoint(first.state_dict(), tmp_path)
    del first
    torch.rand(5)                                    # something else ran in between
    resumed = SupernetTrainer(tiny(epochs=3), digits)
    assert ck.resume(resumed, tmp_path) and resumed.epoch == 1
    resumed.train()
    _assert_close(_weights(straight), _weights(resumed))
    assert [h["train_loss"] for h in straight.history] == pytest.approx([h["train_loss"] for h in resumed.history])
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(straight.optimizer.param_groups[0]["lr"])


def test_checkpoint_refusals(digits, tmp_path):
    t = SupernetTrainer(tiny(epochs=1, max_train=64), digits)
    t.train()
    path = ck.save_checkpoint(t.state_dict(), tmp_path / "a")
    assert ck.load_checkpoint(tmp_path / "a")["epoch"] == 1
    raw = path.read_bytes()
    # another configuration, other data
    with pytest.raises(UserError, match="another configuration: C=4"):
        ck.resume(SupernetTrainer(tiny(epochs=1, max_train=64, C=8), digits), tmp_path / "a")
    with pytest.raises(UserError, match="lr"):
        ck.resume(SupernetTrainer(tiny(epochs=1, max_train=64, lr=0.1), digits), tmp_path / "a")
    state = ck.load_checkpoint(tmp_path / "a")
    record = dict(state["data"], fingerprint="0" * 64)
    with pytest.raises(UserError, match="other data"):
        ck.check_compatible(state, state["config"], record, tmp_path / "a")
    # damage: a flipped byte anywhere (header or body), truncation, a foreign file, empty
    rng = np.random.default_rng(0)
    for pos in [0, 30, 80] + [int(p) for p in rng.integers(100, len(raw), 5)]:
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(CorruptData) as info:
            ck.load_checkpoint(tmp_path / "a")
        assert "\n" not in str(info.value)
    for content in (raw[:len(raw) // 2], b"", b"PK\x03\x04 not a checkpoint", raw[raw.index(b"\n") + 1:]):
        path.write_bytes(content)
        with pytest.raises(CorruptData):
            ck.load_checkpoint(tmp_path / "a")
    with pytest.raises(UserError, match="no supernet checkpoint"):
        ck.load_checkpoint(tmp_path / "missing")
    # a well-formed file whose body is a pickle of code is refused by weights_only
    import hashlib
    import io
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf, pickle_module=pickle)
    body = buf.getvalue()
    path.write_bytes(f"{ck.FORMAT} {hashlib.sha256(body).hexdigest()}\n".encode() + body)
    with pytest.raises(CorruptData, match="cannot be loaded"):
        ck.load_checkpoint(tmp_path / "a")
    for bad_name in ("../x", "", "a/b", ".hidden", "x" * 101):
        with pytest.raises(UserError):
            ck.supernet_dir(bad_name)


def test_cli_killed_mid_training_resumes_to_the_same_supernet(digits, tmp_path, monkeypatch, capsys):
    from harness.cli import main
    env = dict(os.environ, NAS_HARNESS_DATA=str(tmp_path), OMP_NUM_THREADS="1")
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    args = ["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "12",
            "--max-train", "192", "--name", "k", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "supernets" / "k" / ck.CHECKPOINT
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ck.load_checkpoint(ckpt.parent)["epoch"]
    assert 1 <= killed_at < 12, "the process finished before it could be killed"
    # the same command again resumes (in this process: the resume path is the same code)
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert f"resuming supernet k at epoch {killed_at}" in err
    assert "trained: 12 epochs" in out
    state = ck.load_checkpoint(ckpt.parent)
    straight = SupernetTrainer(SupernetConfig(C=4, N=1, epochs=12, max_train=192), digits)
    straight.train()
    _assert_close(_weights(straight), {k: v for k, v in state["model"].items()})
    # finished: not trained again; a different recipe under the same name: one line, exit 2
    assert main(args) == 0
    assert "already trained (12 epochs)" in capsys.readouterr().out
    assert main(args + ["--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another configuration: lr=0.025 (asked 0.1)" in err
    assert not list(ckpt.parent.glob(".*.tmp"))          # a killed write's leftovers are swept


def test_cli_default_name_and_errors(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "1",
                 "--max-train", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "supernet/nb201-digits-cpu-e1-s0-C4-n64" in out
    assert (tmp_path / "supernets" / "nb201-digits-cpu-e1-s0-C4-n64" / "config.json").is_file()
    (tmp_path / "supernets" / "stray").mkdir()
    assert main(["supernet", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[:4] == ["supernet/nb201-digits-cpu-e1-s0-C4-n64", "1/1", "4", "1"]
    assert "supernet/stray" in listing[2] and "no readable" in listing[2]
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--bn", "affine=3",
                 "--no-progress"]) == 2
    assert "batch-norm option" in capsys.readouterr().err
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--name", "../up", "--no-progress"]) == 2
    assert main(["supernet", "train", "nb201", "--dataset", "cifar10", "--no-progress"]) == 2
    assert "--cifar-dir" in capsys.readouterr().err
    assert main(["supernet", "train", "darts", "--dataset", "digits", "--C", "3", "--no-progress"]) == 2
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--device", "tpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("nas-harness: error: cannot build") for line in err)


# --- the supernet oracle -----------------------------------------------------------------
def _trained(tmp_path, monkeypatch, name="o", extra=()):
    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "2",
                 "--max-train", "128", "--name", name, "--no-progress", *extra]) == 0
    return name


def test_supernet_oracle_answers_from_inherited_weights(tmp_path, monkeypatch, digits):
    from oracles.registry import factory_of, load_oracle
    name = _trained(tmp_path, monkeypatch)
    assert factory_of(f"supernet/{name}") == "supernets.oracle:build_oracle"
    oracle = load_oracle(f"supernet/{name}:calib=64,batch=128")
    assert oracle.deterministic and oracle.optimum is None and oracle.fidelities is None
    rng = np.random.default_rng(0)
    archs = [oracle.space.sample(rng) for _ in range(6)] + [(0, 3, 4, 2, 3, 1), (0, 3, 3, 2, 2, 1)]
    single = [oracle.query(a) for a in archs]
    assert oracle.n_queries == len(archs)
    assert all(e.measured_s > 0 for e in single[:6]) and single[-1].measured_s == 0   # the last one: cached
    assert oracle.query(archs[0]).measured_s == 0
    batch = oracle.query_batch(archs)
    np.testing.assert_array_equal(batch["search"], [e.observation.value for e in single])
    np.testing.assert_array_equal(batch["report"], [e.report for e in single])
    assert single[-1].observation.value == single[-2].observation.value    # one network, one answer
    # the answers are those of the supernet in the checkpoint, scored on search_valid / test
    state = ck.load_checkpoint(tmp_path / "supernets" / name)
    t = SupernetTrainer(SupernetConfig.from_dict(state["config"]), digits)
    t.supernet.load_state_dict(state["model"])
    direct = evaluate_archs(t.supernet, archs, *digits.search_valid, EvalSettings(128, 64),
                            digits.supernet_train[0][:128])
    np.testing.assert_allclose(batch["search"], direct["acc"])
    test = evaluate_archs(t.supernet, archs, *digits.test, EvalSettings(128, 64), digits.supernet_train[0][:128])
    np.testing.assert_allclose(batch["report"], test["acc"])
    # a fresh oracle over the same checkpoint and settings answers the same (frozen supernet)
    again = load_oracle(f"supernet/{name}:batch=128,calib=64")
    np.testing.assert_array_equal(again.query_batch(archs[::-1])["search"], batch["search"][::-1])
    assert again.checksum == oracle.checksum
    assert load_oracle(f"supernet/{name}:calib=0").checksum != oracle.checksum
    assert oracle.describe()["epoch"] == 2 and oracle.describe()["mode"] == "frozen"
    # a worker elsewhere builds it from what the oracle ships, without the data directory
    key, payload = oracle.shared()
    assert key == oracle.checksum
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "elsewhere"))
    remote = load_oracle(f"supernet/{name}:calib=64,batch=128", shared=payload)
    assert remote.checksum == oracle.checksum
    np.testing.assert_array_equal(remote.query_batch(archs)["search"], batch["search"])
    payload = {"file": payload["file"][:-1] + bytes([payload["file"][-1] ^ 1])}
    with pytest.raises(CorruptData, match="shipped"):
        load_oracle(f"supernet/{name}", shared=payload)


def test_supernet_oracle_refusals(tmp_path, monkeypatch):
    from oracles.registry import load_oracle
    name = _trained(tmp_path, monkeypatch, "r")
    for spec, words in ((f"supernet/{name}:colour=red", "unknown option"),
                        (f"supernet/{name}:calib=-1", "calib must be"),
                        ("supernet/nothing-here", "no supernet 'nothing-here'"),
                        ("supernet", "supernet/NAME"),
                        ("supernet/../x", "bad supernet name")):
        with pytest.raises(UserError, match=words):
            load_oracle(spec)
    (tmp_path / "supernets" / name / ck.CHECKPOINT).write_bytes(b"junk")
    with pytest.raises(CorruptData):
        load_oracle(f"supernet/{name}")


def test_plain_algorithms_run_on_the_supernet_oracle(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    name = _trained(tmp_path, monkeypatch, "s")
    out = tmp_path / "runs"
    assert main(["run", "--oracle", f"supernet/{name}:calib=64", "--algorithm", "random",
                 "--algorithm", "evolution", "--seeds", "1", "--budget", "12", "--out", str(out),
                 "--quiet"]) == 0
    assert "2 run(s) executed" in capsys.readouterr().out
    import pyarrow.parquet as pq

    from oracles.nb201_space import string_to_arch
    from oracles.registry import load_oracle
    runs = sorted(out.glob("runs/*/*/seed-*.parquet"))
    assert len(runs) == 2
    oracle = load_oracle(f"supernet/{name}:calib=64")
    for path in runs:
        rows = pq.read_table(path).to_pydict()
        assert len(rows["arch"]) == 12
        archs = [string_to_arch(a) for a in rows["arch"]]
        # what the run recorded is what the oracle answers
        np.testing.assert_array_equal(rows["search"], oracle.query_batch(archs)["search"])


def test_snapshots_score_the_supernet_along_its_training(tmp_path, monkeypatch, digits, capsys):
    from harness.cli import main
    from oracles.registry import load_oracle
    name = _trained(tmp_path, monkeypatch, "snap", ("--snapshots", "1"))
    folder = tmp_path / "supernets" / name
    assert ck.list_snapshots(folder) == [1]
    first = load_oracle(f"supernet/{name}:epoch=1,calib=64")
    last = load_oracle(f"supernet/{name}:calib=64")
    assert first.epoch == 1 and last.epoch == 2 and first.checksum != last.checksum
    assert load_oracle(f"supernet/{name}:epoch=2,calib=64").checksum == last.checksum
    # epoch 1's weights are those of the same training stopped after one epoch
    t = SupernetTrainer(tiny(epochs=2, max_train=128, C=4), digits)
    t.train_epoch()
    archs = [(3, 2, 1, 3, 4, 2), (1, 1, 1, 1, 1, 1)]
    direct = evaluate_archs(t.supernet, archs, *digits.search_valid, EvalSettings(256, 64),
                            digits.supernet_train[0][:128])
    np.testing.assert_allclose(first.query_batch(archs)["search"], direct["acc"])
    with pytest.raises(UserError, match="no weights of epoch 3.*snapshots at 1"):
        load_oracle(f"supernet/{name}:epoch=3")
    snap = ck.snapshot_path(folder, 1)
    snap.write_bytes(snap.read_bytes()[:-10])
    with pytest.raises(CorruptData):
        load_oracle(f"supernet/{name}:epoch=1")
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--epochs", "2", "--snapshots", "0,1",
                 "--no-progress"]) == 2
    assert "--snapshots" in capsys.readouterr().err


def test_live_oracle_trains_on_demand_and_answers_like_the_trained_supernet(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from oracles.registry import load_oracle
    base = ["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "3", "--max-train", "128",
            "--no-progress"]
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(base + ["--name", "live", "--until", "0"]) == 0
    assert "at epoch 0 of 3" in capsys.readouterr().out
    with pytest.raises(UserError, match="not trained an epoch"):
        load_oracle("supernet/live")
    assert main(base + ["--name", "ref", "--snapshots", "1,2"]) == 0
    archs = [(3, 2, 1, 3, 4, 2), (1, 1, 1, 1, 1, 1), (0, 3, 3, 2, 2, 1), (2, 0, 4, 3, 1, 0)]
    frozen = {e: load_oracle(f"supernet/ref:calib=64,epoch={e}").query_batch(archs)["search"] for e in (1, 2, 3)}
    assert not np.array_equal(frozen[1], frozen[3])
    torch.manual_seed(7)
    before = torch.get_rng_state()
    live = load_oracle("supernet/live:mode=live,calib=64")
    assert torch.equal(torch.get_rng_state(), before)          # the oracle leaves torch's generator alone
    assert live.fidelities.values == (1, 2, 3) and live.fidelities.kind == "prefix"
    assert live.epoch == 3 and live.log == []
    # asked out of order: it trains up to what is asked, keeps the epochs it served
    np.testing.assert_array_equal(live.query_batch(archs, fidelity=2)["search"], frozen[2])
    assert [h["epoch"] for h in live.log] == [1, 2]
    np.testing.assert_array_equal([live.query(a, fidelity=1).observation.value for a in archs], frozen[1])
    np.testing.assert_array_equal(live.query_batch(archs)["search"], frozen[3])
    assert [h["epoch"] for h in live.log] == [1, 2, 3]
    with pytest.raises(UserError, match="no fidelity 4"):
        live.query(archs[0], fidelity=4)
    # fewer served epochs; another starting checkpoint is another oracle
    part = load_oracle("supernet/live:mode=live,calib=64,fidelities=3")
    np.testing.assert_array_equal(part.query_batch(archs)["search"], frozen[3])
    assert part.checksum != live.checksum
    assert main(base + ["--name", "live", "--until", "1"]) == 0
    later = load_oracle("supernet/live:mode=live,calib=64")
    assert later.fidelities.values == (1, 2, 3) and later.checksum != live.checksum
    np.testing.assert_array_equal(later.query_batch(archs, fidelity=3)["search"], frozen[3])
    for spec, words in (("supernet/live:mode=live,epoch=1", "epoch= picks"), ("supernet/ref:fidelities=1+2", "mode=live"),
                        ("supernet/live:mode=live,fidelities=0+3", "live fidelities"),
                        ("supernet/live:mode=live,fidelities=a", "joined by"), ("supernet/live:mode=warm", "mode must")):
        with pytest.raises(UserError, match=words):
            load_oracle(spec)
    with pytest.raises(UserError, match="no fidelities"):
        load_oracle("supernet/ref:calib=64").query(archs[0], fidelity=1)


def test_multi_fidelity_search_on_a_live_supernet(tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    from harness.cli import main
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "3",
                 "--max-train", "128", "--name", "mf", "--until", "0", "--no-progress"]) == 0
    out = tmp_path / "runs"
    assert main(["run", "--oracle", "supernet/mf:mode=live,calib=64", "--algorithm", "successive-halving",
                 "--seeds", "1", "--budget", "10", "--out", str(out), "--quiet"]) == 0
    assert "1 run(s) executed" in capsys.readouterr().out
    (path,) = out.glob("runs/*/*/seed-*.parquet")
    rows = pq.read_table(path).to_pydict()
    assert set(rows["fidelity"]) > {3} and min(rows["fidelity"]) >= 1


# --- the DARTS space through the same trainer, checkpoints and oracle --------------------
def test_darts_supernet_trains_resumes_and_answers(tmp_path, monkeypatch, digits, capsys):
    from harness.cli import main
    from oracles.darts_space import DartsArch
    from oracles.registry import load_oracle
    cfg = preset_config("cpu", space="darts", C=4, N=3, epochs=2, max_train=128)
    assert cfg.bn_track and not cfg.bn_affine                      # DARTS's search network
    a, b = SupernetTrainer(cfg, digits), SupernetTrainer(cfg, digits)
    a.train_epoch()
    b.train_epoch()
    assert a.last_paths == b.last_paths and all(isinstance(p, DartsArch) for p in a.last_paths)
    assert all("none" not in a.supernet.space.identity(p) for p in a.last_paths)
    _assert_close(_weights(a), _weights(b))
    ck.save_checkpoint(a.state_dict(), tmp_path / "d")
    resumed = SupernetTrainer(cfg, digits)
    assert ck.resume(resumed, tmp_path / "d")
    resumed.train_epoch()
    b.train_epoch()
    _assert_close(_weights(b), _weights(resumed))
    # the command and the oracle: a sub-network's answer is its path's, scored as evaluate_archs does
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    assert main(["supernet", "train", "darts", "--dataset", "digits", "--C", "4", "--N", "3", "--epochs", "2",
                 "--max-train", "128", "--no-progress"]) == 0
    name = "darts-digits-cpu-e2-s0-C4-N3-n128"
    assert f"supernet/{name}" in capsys.readouterr().out
    oracle = load_oracle(f"supernet/{name}:calib=64")
    assert oracle.space.size is None
    rng = np.random.default_rng(0)
    archs = [oracle.space.sample(rng) for _ in range(3)]
    got = oracle.query_batch(archs + archs[:1])["search"]
    assert got[0] == got[-1]
    direct = evaluate_archs(b.supernet, archs, *digits.search_valid, EvalSettings(256, 64),
                            digits.supernet_train[0][:128])
    np.testing.assert_allclose(got[:3], direct["acc"])
    out = tmp_path / "runs"
    assert main(["run", "--oracle", f"supernet/{name}:calib=64", "--algorithm", "evolution", "--seeds", "1",
                 "--budget", "6", "--out", str(out), "--quiet"]) == 0
    assert "1 run(s) executed" in capsys.readouterr().out


# --- PC-DARTS: partial channels (supernets/config.py partial_channels) ------------------------
def test_partial_channels_config_round_trips_and_leaves_darts_configs_as_they_were(tmp_path):
    import dataclasses
    import json

    from harness.commands.supernet import default_name
    cfg = preset_config("cpu", space="darts", C=4, N=3, epochs=2, max_train=16)
    pc = preset_config("cpu", space="darts", C=4, N=3, epochs=2, max_train=16, partial_channels=2)
    # partial_channels = 1 (DARTS) is left out: the dict, the name and therefore checkpoint
    # compatibility and oracle checksums are those of configurations written before the field
    legacy = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "partial_channels"}
    assert cfg.partial_channels == 1 and cfg.to_dict() == legacy
    assert SupernetConfig.from_dict(legacy) == cfg
    assert default_name(cfg, "cpu") == "darts-digits-cpu-e2-s0-C4-N3-n16"
    assert default_name(tiny(), "cpu") == "nb201-digits-cpu-e2-s0-C4-n192"
    # a PC-DARTS configuration keeps its K everywhere
    assert pc.to_dict() == {**legacy, "partial_channels": 2}
    assert SupernetConfig.from_dict(json.loads(json.dumps(pc.to_dict()))) == pc
    assert default_name(pc, "cpu") == "darts-digits-cpu-e2-s0-C4-N3-n16-pc2"
    for bad, match in (({"space": "nb201", "partial_channels": 2}, "darts space only"),
                       ({"space": "darts", "C": 4, "partial_channels": 4}, "even parts"),
                       ({"space": "darts", "C": 6, "partial_channels": 4}, "even parts"),
                       ({"space": "darts", "partial_channels": 0}, ">= 1")):
        with pytest.raises(ValueError, match=match):
            SupernetConfig(**bad)


def test_pc_supernet_trains_checkpoints_and_loads_with_weights_only(digits, tmp_path):
    import dataclasses
    import io

    from supernets.darts import DartsSupernet
    from supernets.training import forward_uniform
    cfg = preset_config("cpu", space="darts", C=4, N=3, epochs=2, max_train=64, partial_channels=2)
    a = SupernetTrainer(cfg, digits)
    assert isinstance(a.supernet, DartsSupernet) and a.supernet.partial == 2
    a.train_epoch()
    ck.save_checkpoint(a.state_dict(), tmp_path / "pc")
    raw = (tmp_path / "pc" / ck.CHECKPOINT).read_bytes()
    state = torch.load(io.BytesIO(raw.partition(b"\n")[2]), weights_only=True)
    assert state["config"]["partial_channels"] == 2
    # resuming needs the same K: a DARTS trainer is refused, a PC one continues as the original
    with pytest.raises(UserError, match="partial_channels"):
        ck.resume(SupernetTrainer(dataclasses.replace(cfg, partial_channels=1), digits), tmp_path / "pc")
    b = SupernetTrainer(cfg, digits)
    assert ck.resume(b, tmp_path / "pc")
    a.train_epoch()
    b.train_epoch()
    _assert_close(_weights(a), _weights(b))
    # all-ops mode: PC-DARTS's edge normalisation at beta = 0, each of node j's edges 1/j
    x = torch.as_tensor(digits.supernet_train[0][:8])
    net = a.supernet.eval()
    zeros = torch.zeros(14, len(net.ops))
    with torch.no_grad():
        np.testing.assert_allclose(forward_uniform(net, x).numpy(),
                                   net.forward_weighted(x, zeros, zeros, torch.zeros(14), torch.zeros(14)).numpy())
        assert not np.allclose(forward_uniform(net, x).numpy(), net.forward_weighted(x, zeros, zeros).numpy())


def test_cli_trains_a_pc_darts_supernet(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from oracles.registry import load_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path))
    args = ["supernet", "train", "darts", "--dataset", "digits", "--C", "4", "--N", "3", "--epochs", "2",
            "--max-train", "16", "--partial-channels", "2", "--no-progress"]
    assert main([*args, "--until", "1"]) == 0
    name = "darts-digits-cpu-e2-s0-C4-N3-n16-pc2"
    assert f"supernet {name} stopped at epoch 1" in capsys.readouterr().out
    assert main(args) == 0                                   # resumes to the end
    assert "resuming supernet" in capsys.readouterr().err
    assert main(["supernet", "list"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == f"supernet/{name}" and row[1] == "2/2" and "single-path,pc2" in row
    oracle = load_oracle(f"supernet/{name}:calib=16")
    assert oracle.scorer.partial == 2 and oracle.describe()["supernet"]["partial_channels"] == 2
    arch = oracle.space.sample(np.random.default_rng(0))
    assert 0.0 <= oracle.query(arch).observation.value <= 1.0
    # one line, before anything is built: partial channels are PC-DARTS's, DARTS space only
    assert main(["supernet", "train", "nb201", "--dataset", "digits", "--partial-channels", "2",
                 "--no-progress"]) == 2
    assert main(["supernet", "train", "darts", "--dataset", "digits", "--C", "4", "--partial-channels", "4",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "darts space only" in err[0] and "even parts" in err[1]
