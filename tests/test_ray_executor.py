"""The Ray executor: same files as the local executor, run for run; one table object per table."""

import json

import pyarrow.parquet as pq
import pytest

from harness.crashproof import comparable_summary
from harness.experiment import Experiment, Task, execute, plan
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
    rows = list(ex.run_tasks(tasks))
    # two oracles over the one NB201 table: one object
    assert ex.tables_put == 1
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
