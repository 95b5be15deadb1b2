"""The Ray executor: same files as the local executor, run for run; one table object per table."""

import json

import pyarrow.parquet as pq
import pytest

from harness.crashproof import comparable_summary
from harness.experiment import Experiment, Task, compute_task, execute, plan, write_task
from harness.results import ResultsStore
from oracles.errors import UserError



def _exp(out, **kw):
    base = dict(oracles=["nb201/cifar10", "nb201/cifar100"], algorithms=["random", "lanas"],
                seeds=3, budget=400, until_optimum=True, out=str(out))
    base.update(kw)
    return Experiment(**base)


def _folder(out):
    runs = {}
    for path in sorted(out.glob("runs/*/*/seed-*.parquet")):
        meta = json.loads(pq.read_schema(path).metadata[b"nas_harness"])
        summary = comparable_summary(meta["summary"])
        records = pq.read_table(path).drop_columns(["algo_cpu_s"]).to_pydict()
        runs[str(path.relative_to(out))] = (meta["config"], meta["seed"], summary, records)
    cells = json.loads((out / "experiment.json").read_text())["cells"]
    return runs, cells


def test_local_1_local_2_and_ray_write_identical_runs(nb201_env, ray_local, tmp_path):
    execute(_exp(tmp_path / "l1", workers=1), progress=False)
    execute(_exp(tmp_path / "l2", workers=2), progress=False)
    execute(_exp(tmp_path / "ray", executor="ray", workers=2), progress=False)
    l1, l2, r = (_folder(tmp_path / d) for d in ("l1", "l2", "ray"))
    assert len(l1[0]) == 2 * 2 * 3
    assert l1 == l2 == r


def test_each_table_goes_to_the_object_store_once(nb201_env, ray_local, tmp_path):
    from harness.ray_executor import RayExecutor
    exp = _exp(tmp_path / "o", algorithms=["random"], seeds=2, budget=50, until_optimum=False)
    cells = plan(exp)
    store = ResultsStore(exp.out)
    store.register(cells)
    tasks = [Task(c, s, exp.out) for c in cells for s in exp.seed_list]
    ex = RayExecutor(2)
    rows = list(ex.run(tasks, compute_task, write_task))
    # two oracles over the one NB201 table: one object
    assert ex.shared_put == 1
    assert sorted((r["cell"], r["seed"]) for r in rows) == sorted((t.cell.key, t.seed) for t in tasks)
    assert all(store.is_done(t.cell, t.seed) for t in tasks)
    assert ray_local.is_initialized()  # a session's Ray instance is not shut down by the executor


def test_ray_resumes_like_local(nb201_env, ray_local, tmp_path):
    out = tmp_path / "o"
    exp = _exp(out, algorithms=["random"], oracles=["nb201/cifar10"], seeds=3, executor="ray")
    assert execute(exp, progress=False)[1:] == (0, 3)
    victim = sorted(out.glob("runs/*/*/seed-*.parquet"))[1]
    victim.unlink()
    assert execute(exp, progress=False)[1:] == (2, 1)
    assert victim.exists()


def test_generic_map_unordered(ray_local):
    from harness.ray_executor import RayExecutor
    assert sorted(RayExecutor(2).map_unordered(abs, [-3, 1, -2])) == [1, 2, 3]


def test_local_and_ray_executors_share_one_interface(nb201_env, ray_local, tmp_path):
    """``run(tasks, compute, write)`` on both executors: the same rows and the same files,
    whether the workers write (local pool) or the driver does (Ray)."""
    from harness.executors import LocalExecutor
    from harness.ray_executor import RayExecutor
    folders = {}
    for name, ex in (("local", LocalExecutor(2)), ("ray", RayExecutor(2))):
        exp = _exp(tmp_path / name, algorithms=["random"], oracles=["nb201/cifar10"], seeds=3, budget=40,
                   until_optimum=False)
        store = ResultsStore(exp.out)
        cells = store.register(plan(exp))
        tasks = [Task(c, s, exp.out) for c in cells for s in exp.seed_list]
        rows = sorted(ex.run(tasks, compute_task, write_task), key=lambda r: r["seed"])
        assert [r["seed"] for r in rows] == [0, 1, 2] and all(store.is_done(t.cell, t.seed) for t in tasks)
        folders[name] = (_folder(tmp_path / name)[0], [comparable_summary(r) for r in rows])
    assert folders["local"] == folders["ray"]


def test_a_user_error_in_a_ray_task_is_one_line(ray_local, tmp_path):
    # a configuration or data error inside a task reaches the user as the one-line UserError
    # it was (no remote traceback); the tasks still in flight are cancelled
    from harness.experiment import load_toml
    from harness.ray_executor import RayExecutor
    missing = str(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="missing.toml does not exist") as info:
        list(RayExecutor(2).map_unordered(load_toml, [missing] * 3))
    assert info.value.__cause__ is None and "Traceback" not in str(info.value)


@pytest.mark.slow  # Ray workers import torch: about a minute on 2 busy cores
def test_the_collector_on_ray_collects_the_local_table(ray_local, tmp_path):
    """``collect convnet --executor ray`` trains the same networks to the same numbers as the
    local pool (the executor's bounded map with a per-task resource request)."""
    from optional import require_module
    require_module("torch")
    require_module("sklearn")
    import numpy as np

    from oracles.collectors import convnet as col
    from oracles.collectors.train import METRICS, Recipe
    from oracles.convnet_space import ConvNetSpace
    from oracles.table import load_table
    job = col.make_job("digits", "digits", 1, recipe=Recipe(epochs=1, batch_size=256, lr=0.02, batch_norm=True),
                       space=ConvNetSpace(channels=(4,), kernels=(3, 5), max_depth=1), name="convnet-tiny")
    # local: in this process (the pool's numbers are these: tests/test_collector.py)
    tables = {ex: load_table(col.collect(job, tmp_path / ex, workers=n, executor=ex, progress=False,
                                         log=lambda *_: None))
              for ex, n in (("local", 1), ("ray", 2))}
    keep = [METRICS.index(m) for m in METRICS if m != "train_time"]
    local, ray_ = (np.asarray(tables[ex].values)[..., keep] for ex in ("local", "ray"))
    assert local.shape == (2, 1, 1, len(keep)) and not np.isnan(local).any()
    np.testing.assert_allclose(ray_, local, rtol=0, atol=1e-6)


def test_resources_come_from_the_algorithm(monkeypatch, nb201_env, ray_local, tmp_path):
    import algorithms
    from algorithms.random_search import RandomSearch
    from harness.ray_executor import task_resources

    class GPURandom(RandomSearch):
        resources = {"num_gpus": 0.5}

    class Odd(RandomSearch):
        resources = {"gpus": 1}

    monkeypatch.setattr(algorithms, "algorithm_class",
                        lambda name: {"gpu": GPURandom, "odd": Odd}.get(name, RandomSearch))
    (cell,) = plan(_exp(tmp_path, oracles=["nb201/cifar10"], algorithms=["random"]))
    task = Task(cell, 0, str(tmp_path))
    assert task_resources(task) == {"num_cpus": 1}
    cell.config["algorithm"] = "gpu"
    assert task_resources(task) == {"num_cpus": 1, "num_gpus": 0.5}
    class GPUOracle:
        resources = {"num_gpus": 1, "num_cpus": 0.5}

    assert task_resources(task, GPUOracle()) == {"num_cpus": 1, "num_gpus": 1}
    cell.config["algorithm"] = "odd"
    with pytest.raises(UserError, match="unknown resource 'gpus'"):
        task_resources(task)
    # a weight-sharing method's needs follow its parameters: one GPU when it trains on CUDA
    cell.config["algorithm"], cell.config["params"] = "darts", {"device": "cuda"}
    assert task_resources(task) == {"num_cpus": 1, "num_gpus": 1}
    cell.config["params"] = {}
    assert task_resources(task) == {"num_cpus": 1}


def test_address_needs_the_ray_executor(nb201_env, tmp_path):
    with pytest.raises(UserError, match="--address is for the ray executor"):
        execute(_exp(tmp_path / "o", address="127.0.0.1:6379"), progress=False)


def test_stopped_runs_under_ray_are_the_local_ones(nb201_env, ray_local, tmp_path):
    # random with replacement and max_repeats=1 stops at its first repeat (seed-dependent)
    exp = dict(oracles=["nb201/cifar10"], algorithms=["random:replace=true", "random"], seeds=2, budget=400,
               max_repeats=1)
    execute(_exp(tmp_path / "l", **exp), progress=False)
    execute(_exp(tmp_path / "r", executor="ray", workers=2, **exp), progress=False)
    local, ray_ = _folder(tmp_path / "l"), _folder(tmp_path / "r")
    assert local == ray_
    stopped = [s for (_, _, s, _) in local[0].values() if s["stopped"]]
    assert len(stopped) == 2 and all(s["stopped"].startswith("stuck") for s in stopped)
