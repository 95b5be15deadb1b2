"""NB201 per-epoch curves as prefix fidelities (``nas-harness oracles import nb201 FOLDER --curves``).

The three shared official fast-mode files (architectures 0, 11 and 284) are imported as the
``nb201-curves`` (200-epoch schedule) and ``nb201-12ep-curves`` tables; every expected value
is read from the official files by this module's own restricted unpickler, never through the
importer's code.
"""

from __future__ import annotations

import bz2
import csv
import io
import pickle
import tomllib

import numpy as np
import pandas as pd
import pytest

from algorithms import REGISTRY
from algorithms.base import DONE, Ask, SearchAlgorithm
from harness.cli import main as cli
from harness.runner import RunConfig, run_one
from oracles.importers.nb201 import detect_and_read, read_fast_mode
from oracles.nb201_space import string_to_arch
from oracles.registry import load_oracle
from oracles.table import save_table

from conftest import NB201_DIR, REPO, data_env, require

FAST = NB201_DIR / "NATS-tss-v1_0-3ffb9-simple"
INDICES = (0, 11, 284)
EXPERIMENT = REPO / "results" / "experiments" / "mf_nb201.toml"
CURVES = "nb201-curves/cifar10:fidelities=all"


class _OfficialReader(pickle.Unpickler):
    """The classes a fast-mode file holds, nothing else (the project never unpickles freely)."""

    def find_class(self, module, name):
        if (module, name) in {("collections", "OrderedDict"), ("numpy", "dtype"),
                              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a fast-mode class")


def official(index: int) -> dict:
    path = require(FAST / f"{index:06d}.pickle.pbz2")
    return _OfficialReader(io.BytesIO(bz2.decompress(path.read_bytes()))).load()


def runs(index: int, schedule: str, run: str) -> list[dict]:
    """The official results of one run name (e.g. ``cifar10-valid``) for every seed it has."""
    return [res for (name, _), res in official(index)[schedule]["all_results"].items() if name == run]


def seed_mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def curves_dir(tmp_path_factory):
    """A data directory with both curve tables imported from the shared partial folder: the
    200-epoch one through the command, as a user imports it."""
    d = tmp_path_factory.mktemp("curves-data")
    with data_env(d):
        assert cli(["oracles", "import", "nb201", str(require(FAST)), "--curves"]) == 0
    save_table(detect_and_read(FAST, curves=12), d / "nb201-12ep-curves")
    return d


@pytest.fixture
def curves_env(curves_dir, monkeypatch):
    monkeypatch.setenv("NAS_HARNESS_DATA", str(curves_dir))
    return curves_dir


@pytest.fixture(scope="module")
def c10(curves_dir):
    with data_env(curves_dir):
        return load_oracle(CURVES)


def arch_of(oracle, index: int):
    row = list(oracle.table.columns["index"]).index(index)
    return oracle.space.arch(row)


def test_layout_prefix_fidelities_and_the_space_of_a_partial_folder(c10, curves_dir):
    assert c10.fidelities.values == tuple(range(1, 201)) and c10.fidelities.kind == "prefix"
    assert c10.direction == "max" and c10.space.size == 3
    assert set(c10.table.seeds) == {"777", "888", "999"}
    # only cifar10 has a per-epoch validation curve in the 200-epoch runs of these files
    # (cifar100 and ImageNet16-120 were validated after the last epoch only)
    decl = [o["name"] for o in c10.table.meta["oracles"]]
    assert decl == ["nb201-curves/cifar10"]
    for i in INDICES:
        assert "x-valid@0" not in runs(i, "200", "cifar100")[0]["eval_acc1es"]
    with data_env(curves_dir):
        o12 = load_oracle("nb201-12ep-curves/cifar100:fidelities=all")
    assert o12.fidelities.values == tuple(range(1, 13)) and o12.fidelities.kind == "prefix"
    assert [o["name"] for o in o12.table.meta["oracles"]] == [
        f"nb201-12ep-curves/{ds}" for ds in ("cifar10", "cifar100", "imagenet16")]
    # the rows present, each the six edges' operations of its official string
    for i in INDICES:
        row = list(c10.table.columns["index"]).index(i)
        official_str = official(i)["200"]["arch_str"]
        assert c10.table.columns["arch_str"][row] == official_str
        ops = tuple(int(x) for x in c10.table.columns["codes"][row])
        assert ops == string_to_arch(official_str)
        assert c10.space.index(arch_of(c10, i)) == row
    # without the option only the last epoch is served (the oracle's default fidelity)
    with data_env(curves_dir):
        assert load_oracle("nb201-curves/cifar10").fidelities.values == (200,)


@pytest.mark.parametrize("index", INDICES)
def test_values_at_epochs_equal_the_official_files(c10, index):
    valid_runs, test_runs = runs(index, "200", "cifar10-valid"), runs(index, "200", "cifar10")
    assert len(valid_runs) == len(test_runs) == 3
    arch = arch_of(c10, index)
    for epoch in (1, 2, 12, 57, 100, 199, 200):
        ev = c10.query(arch, fidelity=epoch)
        valid = seed_mean([r["eval_acc1es"][f"x-valid@{epoch - 1}"] / 100 for r in valid_runs])
        test = seed_mean([r["eval_acc1es"][f"ori-test@{epoch - 1}"] / 100 for r in test_runs])
        train = seed_mean([r["train_acc1es"][epoch - 1] / 100 for r in valid_runs])
        seconds = seed_mean([sum(r["train_times"][e] for e in range(epoch)) for r in valid_runs])
        assert ev.observation.value == pytest.approx(valid, rel=1e-12), epoch
        assert ev.report == pytest.approx(test, rel=1e-12), epoch
        assert ev.observation.train == pytest.approx(train, rel=1e-12), epoch
        assert ev.observation.cost == pytest.approx(seconds, rel=1e-12), epoch
    # the curve moves: epoch 1 and epoch 200 are different trainings' worth apart
    assert c10.query(arch, fidelity=1).observation.value < c10.query(arch, fidelity=200).observation.value - 0.2


@pytest.mark.parametrize("index", INDICES)
def test_twelve_epoch_schedule_curves_equal_the_official_files(curves_dir, index):
    with data_env(curves_dir):
        o100 = load_oracle("nb201-12ep-curves/cifar100:fidelities=all")
        o10 = load_oracle("nb201-12ep-curves/cifar10:fidelities=all")
    (c100,) = runs(index, "12", "cifar100")  # one seed (111)
    c10_valid, c10_test = runs(index, "12", "cifar10-valid"), runs(index, "12", "cifar10")
    assert len(c10_valid) == 2 and len(c10_test) == 1  # seeds 111 and 777; 111
    for epoch in (1, 5, 12):
        ev = o100.query(arch_of(o100, index), fidelity=epoch)
        assert ev.observation.value == pytest.approx(c100["eval_acc1es"][f"x-valid@{epoch - 1}"] / 100, rel=1e-12)
        assert ev.report == pytest.approx(c100["eval_acc1es"][f"x-test@{epoch - 1}"] / 100, rel=1e-12)
        assert ev.observation.cost == pytest.approx(sum(c100["train_times"][e] for e in range(epoch)), rel=1e-12)
        ev = o10.query(arch_of(o10, index), fidelity=epoch)
        valid = seed_mean([r["eval_acc1es"][f"x-valid@{epoch - 1}"] / 100 for r in c10_valid])
        assert ev.observation.value == pytest.approx(valid, rel=1e-12)
        assert ev.report == pytest.approx(c10_test[0]["eval_acc1es"][f"ori-test@{epoch - 1}"] / 100, rel=1e-12)


def test_last_epoch_equals_the_endpoint_table_and_the_csv(c10, curves_dir):
    """A curve's last epoch is the endpoint table's value (same runs and seeds), and the
    shared CSVs' (which print percentages with 6 decimals)."""
    endpoints = read_fast_mode(require(FAST))
    with data_env(curves_dir):
        o12 = load_oracle("nb201-12ep-curves/cifar10:fidelities=all")
    csv_rows = {}
    for epochs in (12, 200):
        with open(require(NB201_DIR / f"nb201_{epochs}ep.csv"), newline="") as fh:
            csv_rows[epochs] = {int(r["index"]): r for r in csv.DictReader(fh) if int(r["index"]) in INDICES}
    for row, index in enumerate(endpoints.columns["index"]):
        for oracle, epochs in ((c10, 200), (o12, 12)):
            ev = oracle.query(arch_of(oracle, int(index)), fidelity=epochs)
            assert ev.observation.value == endpoints.column("cifar10_valid", epochs)[row]
            assert ev.report == endpoints.column("cifar10_test", epochs)[row]
            assert ev.observation.cost == endpoints.column("cifar10_train_time", epochs)[row]
            printed = csv_rows[epochs][index]
            assert ev.observation.value * 100 == pytest.approx(float(printed["cifar10_valid"]), abs=6e-7)
            assert ev.report * 100 == pytest.approx(float(printed["cifar10_test"]), abs=6e-7)


@pytest.mark.parametrize("index", INDICES)
def test_costs_are_cumulative_and_increasing(c10, index):
    arch = arch_of(c10, index)
    costs = np.array([c10.query(arch, fidelity=e).observation.cost for e in range(1, 201)])
    assert np.all(np.diff(costs) > 0)
    per_epoch = seed_mean([r["train_times"][0] for r in runs(index, "200", "cifar10-valid")])
    # the files record one time per epoch: reaching epoch e costs e of them
    np.testing.assert_allclose(costs, per_epoch * np.arange(1, 201), rtol=1e-12)


class Continue(SearchAlgorithm):
    """Trains architecture ``row`` to epoch 10, continues it to 50, then to 200; then trains
    another row from scratch to 200; then DONE."""

    name = "curves-continue"
    uses_fidelities = True

    def __init__(self, row: int = 1, other: int = 2):
        self.row, self.other = row, other

    def start(self, space, rng, fidelities=None):
        self.space, self.k, self.told = space, 0, []
        assert fidelities.kind == "prefix" and fidelities.values[0] == 1 and fidelities.values[-1] == 200

    def ask_trial(self):
        plan = [(self.row, 10, None), (self.row, 50, 0), (self.row, 200, 1), (self.other, 200, None)]
        if self.k == len(plan):
            return DONE
        row, fidelity, continues = plan[self.k]
        self.k += 1
        return Ask(self.space.arch(row), fidelity=fidelity, continues=continues)

    def ask(self):
        raise AssertionError("asked through ask_trial")

    def tell(self, arch, observation):
        raise AssertionError("told through tell_trial")

    def tell_trial(self, trial, observation):
        self.told.append((trial.id, trial.fidelity))


def test_prefix_continuation_pays_only_the_extra_epochs_and_seconds(c10, monkeypatch):
    monkeypatch.setitem(REGISTRY, Continue.name, "test_nb201_curves:Continue")
    row, other = 1, 2
    index = int(c10.table.columns["index"][row])
    seconds = lambda e: seed_mean([sum(r["train_times"][k] for k in range(e))  # noqa: E731
                                   for r in runs(index, "200", "cifar10-valid")])
    config = RunConfig(algorithm=Continue.name, params={"row": row, "other": other}, oracle=CURVES,
                       budget=10_000, budget_kind="epochs")
    records, summary = run_one(config, c10, seed=0)
    assert summary.get("failed") is None and summary.get("stopped") is None
    assert list(records["trial"]) == [0, 1, 2, 3] and list(records["fidelity"]) == [10, 50, 200, 200]
    assert list(records["epochs"]) == [10, 40, 150, 200]
    duration = records["finish"] - records["start"]
    assert duration[0] == pytest.approx(seconds(10), rel=1e-12)
    assert duration[1] == pytest.approx(seconds(50) - seconds(10), rel=1e-12)
    assert duration[2] == pytest.approx(seconds(200) - seconds(50), rel=1e-12)
    # the continued architecture cost what one training to 200 epochs costs, no more
    assert duration[:3].sum() == pytest.approx(seconds(200), rel=1e-12)
    other_index = int(c10.table.columns["index"][other])
    other_seconds = seed_mean([sum(r["train_times"][k] for k in range(200))
                               for r in runs(other_index, "200", "cifar10-valid")])
    assert duration[3] == pytest.approx(other_seconds, rel=1e-12)
    # one worker: trials run back to back on the simulated clock
    np.testing.assert_allclose(records["start"][1:], records["finish"][:-1])


def test_experiment_file_runs_on_the_three_architecture_curves(curves_env, tmp_path):
    """The committed experiment, pointed at the per-epoch oracle of the three shared files
    with a small budget: every algorithm's runs finish, and prefix continuations are paid
    as such (duration = the difference of the cumulative seconds)."""
    out = tmp_path / "mf"
    rc = cli(["run", str(EXPERIMENT), "--oracle", CURVES, "--seeds", "2", "--budget", "1500",
              "--out", str(out), "--quiet"])
    assert rc == 0
    df = pd.read_parquet(out / "runs")
    algorithms = tomllib.loads(EXPERIMENT.read_text())["algorithms"]
    assert df.groupby("algorithm")["seed"].nunique().to_dict() == {a: 2 for a in algorithms}
    assert (df["epochs"] <= df["fidelity"]).all()
    assert not list(out.rglob("*.failed.json"))
    assert set(df["fidelity"]) <= set(range(1, 201))
    cost = {}
    with data_env(curves_env):
        oracle = load_oracle(CURVES)
    for (i, f) in set(zip(df["arch_index"], df["fidelity"])):
        cost[(i, f)] = oracle.query(oracle.space.arch(int(i)), fidelity=int(f)).observation.cost
    paid = df[~df["repeat"]]
    continued = paid[paid["epochs"] < paid["fidelity"]]
    assert len(continued) > 0  # successive halving continues trials up the curve
    for r in continued.itertuples():
        base = r.fidelity - int(r.epochs)
        assert r.finish - r.start == pytest.approx(cost[(r.arch_index, r.fidelity)] - cost[(r.arch_index, base)],
                                                   rel=1e-9)
    fresh = paid[paid["epochs"] == paid["fidelity"]]
    for r in fresh.itertuples():
        assert r.finish - r.start == pytest.approx(cost[(r.arch_index, r.fidelity)], rel=1e-12)


def test_experiment_file_runs_on_the_restart_table(nb201_env, tmp_path):
    """The same file on its own oracle (the CSVs' 12/200 restart fidelities), one seed and a
    small budget: a 12-epoch result never continues into the 200-epoch one."""
    out = tmp_path / "mf"
    assert cli(["run", str(EXPERIMENT), "--seeds", "1", "--budget", "4000", "--out", str(out), "--quiet"]) == 0
    df = pd.read_parquet(out / "runs")
    assert set(df["oracle"]) == {"nb201/cifar10:fidelities=all"}
    assert set(df["fidelity"]) <= {12, 200}
    paid = df[~df["repeat"]]
    assert (paid["epochs"] == paid["fidelity"]).all()
    for _, g in df.groupby("algorithm"):
        assert g["epochs"].sum() < 4000 + 4 * 200  # the budget, plus trials already running


def test_curves_need_a_fast_mode_folder(capsys, empty_data_env):
    assert cli(["oracles", "import", "nb201", str(require(NB201_DIR)), "--curves"]) == 2
    err = capsys.readouterr().err
    assert "fast-mode folder" in err and err.count("\n") == 1
    assert not any(empty_data_env.iterdir())
