"""CADAM on DARTS-space supernets (Mills 2020, §4.2.2, §4.4.3; algorithms/cadam.py,
preset ``darts``): Algorithm 2's discretisation, the preset's values, the replay window and
warm-up, and whole runs through ``supernet/NAME`` oracles, DARTS and PC-DARTS (a supernet
with partial channels), from the command line.

The supernets are tiny (C 4, 3 cells, one epoch on 16 images): each query scores the 360
validation and 359 test images of digits in about a tenth of a CPU-second."""

from __future__ import annotations

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")
require_module("sklearn")

from algorithms.cadam import PRESETS, Cadam, discretise_darts  # noqa: E402
from oracles.darts_space import DARTS_OPS, EDGE_INDEX, OPS, DartsSpace, derive  # noqa: E402
from oracles.errors import UserError  # noqa: E402
from oracles.oracle import Observation  # noqa: E402
from one_shot_helpers import one_torch_thread, tiny_darts_supernet  # noqa: E402,F401

SPACE = DartsSpace()
#: a small agent with the darts preset's mechanics, for runs of a few dozen queries
SMALL = "warmup=4,top_k=3,batch_size=4,replay_size=8,hidden=16/16"


def action_of(cell_weights):
    """A 2 x 14 x 7 action from ``{(cell, node, input, op): value}`` (everything else 0)."""
    a = np.zeros((2, 14, len(OPS)))
    for (c, j, i, op), v in cell_weights.items():
        a[c, EDGE_INDEX[(j, i)], OPS.index(op)] = v
    return a.reshape(-1)


# --- Algorithm 2 --------------------------------------------------------------------------
def test_algorithm_2_keeps_the_two_strongest_incoming_edges_of_each_node():
    w = {(0, 2, 0, "sep_conv_3x3"): 0.9, (0, 2, 1, "max_pool_3x3"): 0.1,
         # node 3: edges from 0, 1, 2 whose strongest operations are 0.5, 0.7, 0.6
         (0, 3, 0, "skip_connect"): 0.5, (0, 3, 1, "dil_conv_5x5"): 0.7, (0, 3, 2, "avg_pool_3x3"): 0.6,
         (0, 3, 2, "sep_conv_5x5"): 0.55,
         # node 5: the strongest single entry and a weaker edge with a strong operation
         (0, 5, 4, "dil_conv_3x3"): 0.95, (0, 5, 0, "sep_conv_5x5"): 0.8, (0, 5, 3, "max_pool_3x3"): 0.79}
    arch = discretise_darts(action_of(w), OPS)
    assert arch.normal[0:2] == (("sep_conv_3x3", 0), ("max_pool_3x3", 1))
    assert arch.normal[2:4] == (("dil_conv_5x5", 1), ("avg_pool_3x3", 2))     # strongest first
    assert arch.normal[6:8] == (("dil_conv_3x3", 4), ("sep_conv_5x5", 0))
    # exactly two edges per node, from two different inputs: 8 active edges per cell
    for cell in (arch.normal, arch.reduce):
        assert len(cell) == 8 and all(cell[2 * n][1] != cell[2 * n + 1][1] for n in range(4))
    # the rule is DARTS's derivation, as DDAS applies it
    from algorithms.ddas import discretise_darts as ddas_rule
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.random(2 * 14 * 7)
        assert discretise_darts(a, OPS) == ddas_rule(torch.as_tensor(a), OPS) == \
            derive(a.reshape(2, 14, 7)[0], a.reshape(2, 14, 7)[1], OPS)


def test_algorithm_2_ties_go_to_the_lower_edge_then_the_lower_operation():
    # everything equal: node j takes inputs 0 and 1, each with the first operation
    arch = discretise_darts(np.ones(2 * 14 * 7), OPS)
    for cell in (arch.normal, arch.reduce):
        assert cell == ((OPS[0], 0), (OPS[0], 1)) * 4
    # a tie between edges 2 and 3 of node 4 (input 0 strongest): the lower input, 2, wins
    w = {(1, 4, 0, "skip_connect"): 0.9, (1, 4, 2, "avg_pool_3x3"): 0.5, (1, 4, 3, "sep_conv_3x3"): 0.5,
         (1, 4, 1, "dil_conv_3x3"): 0.4}
    arch = discretise_darts(action_of(w), OPS)
    assert arch.reduce[4:6] == (("skip_connect", 0), ("avg_pool_3x3", 2))
    # a tie between two operations of one edge: the lower operation (OPS order) wins
    w = {(0, 2, 0, "dil_conv_5x5"): 0.7, (0, 2, 0, "avg_pool_3x3"): 0.7, (0, 2, 1, "skip_connect"): 0.2}
    assert discretise_darts(action_of(w), OPS).normal[0] == ("avg_pool_3x3", 0)


def test_an_architecture_s_one_hot_discretises_to_itself_and_none_is_never_chosen():
    rng = np.random.default_rng(1)
    for _ in range(30):
        arch = SPACE.sample(rng)
        assert SPACE.identity(discretise_darts(SPACE.encode(arch), OPS)) == SPACE.identity(arch)
    # in a space with none, the action holds only the 7 other operations
    with_none = DartsSpace(ops=DARTS_OPS)
    assert with_none.encoding_size == 2 * 14 * 7
    arch = discretise_darts(rng.random(with_none.encoding_size), with_none.encoded_ops)
    assert all(op != "none" for op, _ in arch.normal + arch.reduce)


# --- the preset ---------------------------------------------------------------------------
def test_darts_preset_holds_the_thesis_values_and_explicit_ones_override_it():
    from algorithms import make_algorithm
    a = make_algorithm("cadam", {"preset": "darts"})
    # §4.2.2: K, tau, |B_R|, xi, C_max, the last 5,000 experiences, W = 3,000, no epsilon;
    # §4.4.3: (256, 256, 256), Adam (0.9, 0.99), critic 1e-4
    assert (a.top_k, a.tau, a.batch_size, a.xi, a.max_cycles) == (500, 0.95, 64, 5e-5, 1)
    assert (a.replay_size, a.warmup, a.eps_start, a.eps_end) == (5000, 3000, 0.0, 0.0)
    assert a.hidden == (256, 256, 256) and (a.beta1, a.beta2, a.critic_lr) == (0.9, 0.99, 1e-4)
    assert a.discretise == "darts" and a.actor_lr == 1e-4 and a.epsilon(0) == a.epsilon(10**5) == 0.0
    # the scaled variant: the counts tied to the run's length divided by 40, the rest the same
    cpu = make_algorithm("cadam", {"preset": "darts-cpu"})
    assert (cpu.warmup, cpu.replay_size, cpu.top_k) == (75, 125, 13)
    same = {k for k in PRESETS["darts"] if k not in ("warmup", "replay_size", "top_k")}
    assert all(getattr(cpu, k) == getattr(a, k) for k in same)
    # explicit values win, even those equal to the NAS-Bench-201 defaults
    b = make_algorithm("cadam", {"preset": "darts", "top_k": "64", "hidden": "128/256/128",
                                 "actor_lr": "1e-8", "discretise": "argmax"})
    assert (b.top_k, b.hidden, b.actor_lr, b.discretise, b.tau) == (64, (128, 256, 128), 1e-8, "argmax", 0.95)
    # the recorded parameters rebuild the same agent (what a worker does with a run's metadata)
    for algo in (a, b, cpu, Cadam()):
        p = algo.get_params()
        assert Cadam(**p).get_params() == p
    assert b.get_params()["discretise"] == "argmax"
    with pytest.raises(UserError, match="discretise must be one of argmax, darts"):
        make_algorithm("cadam", {"discretise": "top2"})
    with pytest.raises(UserError, match="replay_size"):
        make_algorithm("cadam", {"preset": "darts", "replay_size": "10"})


def test_the_nb201_presets_keep_their_values_and_their_recorded_parameters():
    # table41 / printed: the NAS-Bench-201 settings of §4.2.1, as before the darts presets
    for preset, lr in (("table41", 1e-4), ("printed", 1e-8)):
        a = Cadam(preset=preset)
        assert (a.top_k, a.tau, a.batch_size, a.xi, a.max_cycles, a.hidden) == (64, 0.9, 8, 1e-4, 10, (128, 256, 128))
        assert (a.eps_start, a.eps_end, a.eps_steps, a.warmup, a.actor_lr) == (1.0, 0.05, 175, 0, lr)
        assert (a.replay_size, a.discretise) == (0, "argmax")
        # the parameters added for the DARTS setting stay out of their records (fingerprints kept)
        assert not {"replay_size", "discretise"} & set(a.get_params())
    assert "replay_size" in Cadam(replay_size=100).get_params()


def test_darts_discretisation_needs_the_darts_space():
    from oracles.nb201_space import NB201Space
    with pytest.raises(UserError, match="needs the DARTS space"):
        Cadam(preset="darts").start(NB201Space(), np.random.default_rng(0))


def test_warm_up_is_random_then_the_actor_acts_and_the_buffer_keeps_the_last_experiences():
    algo = Cadam(preset="darts", warmup=6, top_k=4, batch_size=4, replay_size=5, hidden=(16, 16))
    algo.start(SPACE, np.random.default_rng(0))
    assert algo.action_size == 2 * 14 * 7
    values = []
    for t in range(14):
        arch = algo.ask()
        action = algo._pending[-1][1]
        assert arch == discretise_darts(action, OPS)       # every action is one architecture
        v = 0.01 * t
        algo.tell(arch, Observation(v))
        values.append(v)
        assert algo.n_random == min(t + 1, 6)              # random only during the warm-up
    # the ring holds the last 5 rewards, 100 ** accuracy (Eq. 4.1)
    assert algo._n_buf == 5 and algo._n_stored == 14
    np.testing.assert_allclose(sorted(algo._buf_r[:5]), sorted(100.0 ** np.array(values[-5:])), rtol=1e-6)
    # the state is the mean of the top-K architectures' encodings, 2 x 14 x 7 as the action
    assert algo.state.shape == (2 * 14 * 7,)
    np.testing.assert_allclose(algo.state.reshape(2, 14, 7).sum(axis=(1, 2)), 8.0, rtol=1e-6)


def test_a_run_is_deterministic_for_a_seed():
    values = {}

    def value(arch):
        key = SPACE.identity(arch)
        return values.setdefault(key, float(np.random.default_rng(len(values)).random()))

    def run(seed):
        algo = Cadam(preset="darts", warmup=5, top_k=3, batch_size=4, replay_size=8, hidden=(16, 16))
        algo.start(SPACE, np.random.default_rng(seed))
        out = []
        for _ in range(25):
            arch = algo.ask()
            algo.tell(arch, Observation(value(arch)))
            out.append(SPACE.identity(arch))
        return out
    a = run(3)
    assert run(3) == a and run(4) != a


# --- through supernet oracles, from the command line -----------------------------------------
@pytest.fixture(scope="module")
def supernets(tmp_path_factory):
    """A DARTS supernet and a PC-DARTS one (partial_channels 2: C 4 in halves), trained one
    epoch on 16 images, in one data directory."""
    from harness.cli import main
    data = tiny_darts_supernet(tmp_path_factory, name="darts", epochs=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_HARNESS_DATA", str(data))
        assert main(["supernet", "train", "darts", "--dataset", "digits", "--C", "4", "--N", "3", "--epochs", "1",
                     "--max-train", "16", "--partial-channels", "2", "--name", "pc", "--no-progress"]) == 0
    return data


def _records(folder):
    import pyarrow.parquet as pq
    return {p.parent.name + "/" + p.name: pq.read_table(p).to_pydict()
            for p in sorted(folder.glob("runs/*/*/seed-*.parquet"))}


def _check_recorded(rows, oracle, budget):
    """A run's records: ``budget`` distinct cells of the space (8 edges a cell, no none), and
    what the run recorded is what the supernet answers for each."""
    assert sum(not r for r in rows["repeat"]) == budget
    assert all("none" not in s for s in rows["arch"])
    archs = [oracle.space.parse(s) for s in rows["arch"]]
    np.testing.assert_array_equal(rows["search"], oracle.query_batch(archs)["search"])


def test_cadam_queries_a_darts_supernet_from_the_command_line(supernets, tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from oracles.registry import load_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(supernets))
    assert main(["run", "--oracle", "supernet/darts:calib=32", "--algorithm", f"cadam:preset=darts,{SMALL}",
                 "--budget", "6", "--seeds", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "1 run(s) executed" in capsys.readouterr().out
    (rows,) = _records(tmp_path / "r").values()
    _check_recorded(rows, load_oracle("supernet/darts:calib=32"), 6)


def test_cadam_on_a_pc_darts_supernet_is_deterministic_and_resumes(supernets, tmp_path, monkeypatch, capsys):
    import shutil

    from harness.cli import main
    from oracles.registry import load_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(supernets))
    command = ["run", "--oracle", "supernet/pc:calib=32", "--algorithm", f"cadam:preset=darts,{SMALL}",
               "--budget", "6", "--seeds", "2", "--quiet"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main([*command, "--out", str(whole)]) == 0
    a = _records(whole)
    assert len(a) == 2
    # an experiment killed before its second run was written (a run file is written whole or
    # not at all): the same command runs only that one, and gets the same records
    shutil.copytree(whole, resumed)
    (second,) = resumed.glob("runs/*/*/seed-000001.parquet")
    second.unlink()
    capsys.readouterr()
    assert main([*command, "--out", str(resumed)]) == 0
    assert "1 run(s) executed, 1 already done" in capsys.readouterr().out
    b = _records(resumed)
    assert list(a) == list(b)
    for key in a:
        assert a[key]["arch"] == b[key]["arch"]
        np.testing.assert_array_equal(a[key]["search"], b[key]["search"])
    first, other = a.values()
    assert first["arch"] != other["arch"]
    oracle = load_oracle("supernet/pc:calib=32")
    assert oracle.scorer.partial == 2 and oracle.config.partial_channels == 2
    for rows in a.values():
        _check_recorded(rows, oracle, 6)


def test_pc_supernet_answers_through_its_partial_channel_paths(supernets, monkeypatch):
    from oracles.registry import load_oracle
    from supernets.data import load
    from supernets.training import EvalSettings, evaluate_archs
    monkeypatch.setenv("NAS_HARNESS_DATA", str(supernets))
    pc, plain = load_oracle("supernet/pc:calib=32"), load_oracle("supernet/darts:calib=32")
    # the operations of a PC supernet see C / K channels: half the width of the DARTS one's
    conv = "cells.0.edges.0.ops.4.op.0.op.2.weight"     # sep_conv_3x3, first pointwise conv
    assert pc.scorer.state_dict()[conv].shape[0] * 2 == plain.scorer.state_dict()[conv].shape[0]
    with pytest.raises(ValueError, match="forward"):
        pc.scorer.extract(SPACE.sample(np.random.default_rng(0)))
    data = load("digits")
    archs = [SPACE.sample(np.random.default_rng(s)) for s in range(3)]
    got = pc.query_batch(archs)["search"]      # loads the checkpoint's weights into the scorer
    direct = evaluate_archs(pc.scorer, archs, *data.search_valid, EvalSettings(256, 32), data.supernet_train[0][:16])
    np.testing.assert_allclose(got, direct["acc"])
    for arch in archs:
        assert pc.query(arch).observation.value == pytest.approx(float(direct["acc"][archs.index(arch)]))
    assert pc.describe()["supernet"]["partial_channels"] == 2
    assert "partial_channels" not in plain.describe()["supernet"]
