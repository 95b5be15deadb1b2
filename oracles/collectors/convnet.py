"""Collect a ConvNet table: train every network of a ConvNet space for every seed.

LaNAS (Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action
Space", §4 and appendix 6.1) benchmarks on ConvNet-60K, a table
its authors trained themselves ("we train every possible architecture 100 epochs, and
collect their final test accuracy") and never published. This module lets a user collect
such a table on their own data and hardware::

    nas-harness collect convnet --preset convnet60k --dataset cifar10 --cifar-dir DIR \\
        --seeds 1 --out WORK --device cuda --workers 8           # one GPU box
    nas-harness collect convnet ... --executor ray              # a Ray cluster

The shipped ``convnet-digits`` table (``oracles/embedded/convnet-digits``) was produced by::

    nas-harness collect convnet --preset digits --dataset digits --seeds 3 --workers 2 \\
        --name convnet-digits --out /tmp/convnet-digits-work \\
        --table oracles/embedded/convnet-digits

How it works (``collect``):

* ``OUT/collection.json`` records what is being collected (space, dataset, split seed,
  recipe, seeds, subset). Running the command again on the same ``OUT`` resumes; a different
  configuration on the same ``OUT`` is refused.
* Each finished (network, seed) is one line appended to this session's shard
  ``OUT/shards/shard-<time>-<pid>-<random>.jsonl`` and flushed to disk (``fsync``) at once
  (``OUT`` is a result store, :mod:`oracles.collectors.store`, keyed by index and seed). A line
  carries its own SHA-256, so a line torn by a kill is recognised and dropped; every session
  starts a new shard, so nothing is ever appended after a torn line. Killing the collector
  at any moment therefore loses at most the networks being trained; a restart skips every
  (network, seed) with a valid line, so there are no duplicates. ``OUT/.lock`` (``flock``)
  stops two collectors from writing to the same ``OUT`` at once.
* Work is spread over worker processes (``--workers``, ``concurrent.futures``), or Ray tasks
  (``--executor ray``, one task per network and seed); each worker loads the dataset once,
  uses one torch thread and deterministic kernels. Tasks run seed by seed (all networks for
  the first seed, then the next), so an interrupted collection already covers the space.
* When every (network, seed) is done, the rows are assembled into a table
  (:mod:`oracles.table`) at ``--table`` (default ``OUT/table``): values
  ``(networks, seeds, 1 fidelity = epochs, metrics)`` with the metrics of
  :data:`oracles.collectors.train.METRICS`, columns ``params``, ``flops``, ``depth`` (and
  ``space_index`` for subsets), and metadata: recipe, dataset and split, seeds, library and
  code versions, the space (``meta.space``, kind ``convnet``) and the oracle it serves
  (``meta.oracles``: search = ``valid_acc``, report = ``test_acc``, cost = ``train_time``,
  train = ``train_acc``).

Installing a collected table for ``nas-harness run``: copy ``OUT/table`` to
``$NAS_HARNESS_DATA/<name>`` (default ``~/.cache/nas-harness/<name>``), or pass
``--table`` pointing there.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from harness.files import FileLock, atomic_write_bytes
from harness.processes import map_unordered
from harness.provenance import code_version as _harness_code_version

from ..convnet_space import ConvNetSpace
from ..errors import CorruptData, UserError
from ..table import Table, save_table
from .store import ResultStore, scan
from .store import encode_row as store_encode_row
from .train import METRICS, Recipe

FORMAT = "nas-harness-collection/1"
CONFIG = "collection.json"
SHARDS = "shards"
#: per-row numbers kept besides METRICS
EXTRA = ("params", "flops")


@dataclass(frozen=True)
class Job:
    """What to collect. ``indices`` are the space's enumeration indices to train (sorted)."""

    name: str
    preset: str
    space_params: dict[str, Any]
    dataset: str
    split_seed: int
    seeds: tuple[int, ...]
    recipe: Recipe
    indices: tuple[int, ...] | None   # None = the whole space
    subset_seed: int | None
    cifar_dir: str | None = None

    def config(self) -> dict[str, Any]:
        return {"format": FORMAT, "family": "convnet", "name": self.name, "preset": self.preset,
                "space": self.space_params, "dataset": self.dataset, "split_seed": self.split_seed,
                "seeds": list(self.seeds), "recipe": self.recipe.to_dict(),
                "subset": None if self.indices is None else {"size": len(self.indices),
                                                             "seed": self.subset_seed,
                                                             "indices": list(self.indices)}}


def make_job(preset: str, dataset: str, seeds: int | Sequence[int], recipe: Recipe | None = None,
             name: str | None = None, split_seed: int = 0, subset: int | None = None,
             subset_seed: int = 0, cifar_dir=None, space: ConvNetSpace | None = None) -> Job:
    """Build a :class:`Job`; ``seeds`` is a count (seeds ``0..N-1``) or explicit seeds.

    ``space`` overrides the preset's space (tests use tiny spaces); ``subset`` draws that many
    networks uniformly without replacement with ``subset_seed``.
    """
    from .train import DEFAULT_RECIPES
    space = space or ConvNetSpace.from_preset(preset)
    if recipe is None:
        if dataset not in DEFAULT_RECIPES:
            raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DEFAULT_RECIPES)}")
        recipe = DEFAULT_RECIPES[dataset]
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {seeds}")
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if len(set(seeds)) != len(seeds):
        raise UserError("seeds must be distinct")
    indices = None
    if subset is not None:
        if not 1 <= subset <= space.size:
            raise UserError(f"--subset must be in 1..{space.size} (the space's size), got {subset}")
        if subset < space.size:
            chosen = np.random.default_rng(subset_seed).choice(space.size, size=subset, replace=False)
            indices = tuple(int(i) for i in np.sort(chosen))
    if name is None:
        name = "convnet-digits" if (preset, dataset) == ("digits", "digits") else f"convnet-{preset}-{dataset}"
    return Job(name=name, preset=preset, space_params=space.params(), dataset=dataset,
               split_seed=int(split_seed), seeds=seeds, recipe=recipe, indices=indices,
               subset_seed=subset_seed if indices is not None else None,
               cifar_dir=None if cifar_dir is None else str(Path(cifar_dir).expanduser().resolve()))


# --- shards ---------------------------------------------------------------------------------
# The shards are a result store (oracles.collectors.store) keyed by (space index, seed): the
# collection folder's collection.json fixes everything else that decides a row.
encode_row = store_encode_row


def _row_key(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["index"]), int(row["seed"])


def read_shards(out: Path) -> tuple[dict[tuple[int, int], dict[str, Any]], dict[str, int]]:
    """Every valid row under ``out/shards``, keyed by (space index, seed), and counts.

    A last line without its newline, or failing its digest, is a write torn by a kill and is
    dropped; a damaged line elsewhere means the file was modified and is refused
    (:func:`oracles.collectors.store.scan`).
    """
    return scan(out, ("index", "seed"), key_of=_row_key)


def open_store(out: Path) -> ResultStore:
    """The collection folder's result store; each session appends to a shard of its own."""
    return ResultStore(out, ("index", "seed"), key_of=_row_key)


def lock(out: Path) -> FileLock:
    """Hold ``out`` for this collector: ``OUT/.lock``, refused while another collector holds it."""
    return FileLock(out / ".lock", f"another collector is writing to {out}; wait for it or use another --out")


# --- workers ---------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(dataset: str, split_seed: int, cifar_dir: str | None, recipe: dict, device: str) -> None:
    from .datasets import load_split
    from .train import configure_torch
    configure_torch(1)
    _WORKER.update(data=load_split(dataset, split_seed, cifar_dir), recipe=Recipe.from_dict(recipe),
                   device=device, key=(dataset, split_seed, cifar_dir))


def _worker_run(task: tuple[int, tuple, int]) -> tuple[int, int, dict[str, float]]:
    from .train import train_network
    index, layers, seed = task
    return index, seed, train_network(layers, seed, _WORKER["recipe"], _WORKER["data"], _WORKER["device"])


def _ray_task(args: tuple, task: tuple[int, tuple, int]) -> tuple[int, int, dict[str, float]]:
    # Ray reuses worker processes: load the dataset once per process
    dataset, split_seed, cifar_dir, recipe, device = args
    if _WORKER.get("key") != (dataset, split_seed, cifar_dir):
        _worker_init(*args)
    _WORKER["recipe"] = Recipe.from_dict(recipe)
    _WORKER["device"] = device
    return _worker_run(task)


def _run_local(tasks, job: Job, workers: int, device: str) -> Iterable[tuple[int, int, dict]]:
    # Spawned workers (no fork after torch/threads in the parent) that leave Ctrl-C to this
    # process and exit when it dies, as the experiment's (harness.processes). Interrupted,
    # the networks in training are abandoned at once; their rows were never written, so a
    # resume trains them again. Two tasks per worker in flight keep the seed-by-seed order.
    args = (job.dataset, job.split_seed, job.cifar_dir, job.recipe.to_dict(), device)
    return map_unordered(_worker_run, tasks, workers, initializer=_worker_init, initargs=args,
                         in_flight=2 * workers)


def _run_ray(tasks, job: Job, workers: int, device: str) -> Iterable[tuple[int, int, dict]]:
    try:
        from harness.ray_executor import RayExecutor
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'ray[default]' (or use --executor local)") from None
    # several small networks share a GPU: one task per GPU slice
    resources = {"num_cpus": 1, "num_gpus": 1.0 / max(1, workers) if device.startswith("cuda") else 0}
    args = (job.dataset, job.split_seed, job.cifar_dir, job.recipe.to_dict(), device)
    return RayExecutor(workers).map_unordered(functools.partial(_ray_task, args), tasks, resources=resources)


# --- the collection --------------------------------------------------------------------------
def _prepare(out: Path, job: Job) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / CONFIG
    config = job.config()
    if cfg_path.is_file():
        try:
            existing = json.loads(cfg_path.read_text())
        except ValueError:
            raise CorruptData(f"{cfg_path} is not valid JSON; remove {out} to start over") from None
        mine = {k: v for k, v in config.items()}
        theirs = {k: existing.get(k) for k in config}
        # a recipe is its parameters; its descriptive strings may be reworded between versions
        try:
            theirs["recipe"] = Recipe.from_dict(theirs["recipe"]).to_dict()
        except (TypeError, ValueError, AttributeError):
            pass
        if mine != theirs:
            diff = sorted(k for k in config if mine[k] != theirs[k])
            raise UserError(f"{out} holds a different collection (differs in: {', '.join(diff)}); "
                            "use another --out, or the same options to resume it")
        return
    config["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config["code_version"] = code_version()  # recorded, not compared when resuming
    atomic_write_bytes(cfg_path, lambda fh: fh.write(json.dumps(config, indent=1).encode()))


def _space(job: Job) -> ConvNetSpace:
    return ConvNetSpace(preset=job.preset, **job.space_params)


def all_tasks(job: Job) -> list[tuple[int, int]]:
    """Every (space index, seed) of the job, in run order: seed by seed, by index."""
    indices = range(_space(job).size) if job.indices is None else job.indices
    return [(int(i), s) for s in job.seeds for i in indices]


def check_run_options(workers: int, device: str, executor: str = "local") -> None:
    """One line for a bad ``--workers``, ``--executor`` or ``--device`` (a CUDA device torch
    cannot see included), before any collector starts work: every collector's options."""
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no CUDA GPU here; use --device cpu")


def collect(job: Job, out, workers: int = 1, device: str = "cpu", executor: str = "local",
            progress: bool = True, table_dir=None, log=print, train: bool = True,
            partial: bool = False) -> Path | None:
    """Run (or resume) ``job`` in ``out``; write the table when complete and return its path.

    ``train=False`` only assembles what is already done. ``partial=True`` writes a table even
    when some runs are missing, keeping the seeds every network has finished (seed-by-seed
    order makes those the first seeds); ``meta.collection.partial`` says so.
    Returns ``None`` when no table could be written (the collection can be resumed).
    """
    out = Path(out)
    check_run_options(workers, device, executor)
    if job.dataset == "cifar10":
        # refuse a wrong folder now, not inside every worker
        from .datasets import load_split
        load_split(job.dataset, job.split_seed, job.cifar_dir)
    _prepare(out, job)
    with lock(out):
        rows, stats = read_shards(out)
        space = _space(job)
        todo = [(i, s) for i, s in all_tasks(job) if (i, s) not in rows]
        total = len(all_tasks(job))
        if stats["torn"]:
            log(f"dropped {stats['torn']} row(s) torn by an earlier interruption; they will be re-trained")
        if todo and train:
            log(f"collecting {job.name}: {total - len(todo)}/{total} (network, seed) runs done, "
                f"{len(todo)} to go, {workers} {executor} worker(s) on {device}")
            _train(job, out, space, todo, total, workers, device, executor, progress)
            rows, stats = read_shards(out)
        target = Path(table_dir) if table_dir is not None else out / "table"
        if len(rows) < total:
            if not partial:
                return None
            indices = range(space.size) if job.indices is None else job.indices
            complete = tuple(s for s in job.seeds if all((int(i), s) in rows for i in indices))
            if not complete:
                log("no seed is complete yet; nothing to write")
                return None
            log(f"writing a partial table: seeds {list(complete)} of {list(job.seeds)}")
            finalize(job, out, rows, target, seeds=complete)
            return target
        finalize(job, out, rows, target)
        return target


def _train(job, out, space, todo, total, workers, device, executor, progress):
    tasks = ((i, space.arch(i), s) for i, s in todo)
    run = _run_local if executor == "local" else _run_ray
    shard = open_store(out)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=total - len(todo), unit="net", dynamic_ncols=True,
                   desc=job.name, smoothing=0.05)
    from harness.interrupts import raise_if_swallowed
    try:
        raise_if_swallowed()
        for index, seed, metrics in run(tasks, job, workers, device):
            row = {"index": index, "seed": seed, "arch": space.to_string(space.arch(index)), **metrics}
            shard.append(row)
            if bar is not None:
                bar.update(1)
            raise_if_swallowed()  # a Ctrl-C that a callback swallowed (see harness.interrupts)
    finally:
        shard.close()
        if bar is not None:
            bar.close()


# --- the table -------------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for mod in ("numpy", "torch", "sklearn"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return versions


#: the collector's own sources: a change to them, committed or not, changes collected tables
COLLECTOR_SOURCES = ("oracles/collectors", "oracles/convnet_space.py")


def code_version() -> dict[str, Any]:
    """The package version and, in a git checkout, the commit and whether the collector's
    files (:data:`COLLECTOR_SOURCES`) differ from it (:func:`harness.provenance.code_version`,
    under the names collected tables have always used)."""
    v = _harness_code_version(COLLECTOR_SOURCES)
    info: dict[str, Any] = {"package": v["version"]}
    if v["git_commit"]:
        info.update(git_commit=v["git_commit"], collector_modified=v["git_dirty"])
    return info


def finalize(job: Job, out: Path, rows: dict[tuple[int, int], dict[str, Any]], target: Path,
             seeds: Sequence[int] | None = None) -> Table:
    """Assemble ``rows`` into the job's table (all its seeds, or ``seeds``) and save it at ``target``."""
    space = _space(job)
    indices = np.arange(space.size) if job.indices is None else np.asarray(job.indices, dtype=np.int64)
    pos = {int(i): r for r, i in enumerate(indices)}
    seeds = list(job.seeds if seeds is None else seeds)
    values = np.full((len(indices), len(seeds), 1, len(METRICS)), np.nan)
    extra = np.full((len(indices), len(EXTRA)), np.nan)
    for (i, s), row in rows.items():
        if i not in pos or s not in seeds:
            continue
        r = pos[i]
        values[r, seeds.index(s), 0] = [row[m] for m in METRICS]
        extra[r] = [row[m] for m in EXTRA]
    missing = int(np.isnan(values[..., 0]).sum())
    if missing:
        raise CorruptData(f"{out}: {missing} (network, seed) runs are missing; run the collector again")
    archs = np.array([space.to_string(space.arch(int(i))) for i in indices])
    columns = {"params": extra[:, 0].astype(np.int64), "flops": extra[:, 1].astype(np.int64),
               "depth": np.array([len(space.arch(int(i))) for i in indices], dtype=np.int64)}
    if job.indices is not None:
        columns["space_index"] = indices
    started = json.loads((out / CONFIG).read_text())
    from .datasets import load_split
    data_meta = load_split(job.dataset, job.split_seed, job.cifar_dir).meta
    train_time = values[:, :, 0, METRICS.index("train_time")]
    subset_txt = "" if job.indices is None else f", uniform random subset of {len(indices)} (seed {job.subset_seed})"
    description = (f"plain ConvNets ({job.preset} preset: depth {space.min_depth}-{space.max_depth}, "
                   f"C in {list(space.channels)}, K in {list(space.kernels)}{subset_txt}) trained on "
                   f"{job.dataset}, {len(seeds)} seeds, {job.recipe.epochs} epochs; self-collected")
    meta = {
        "source": "self-collected by oracles.collectors.convnet",
        "description": description,
        "preset": job.preset,
        "space": {"kind": "convnet", "preset": job.preset, **job.space_params,
                  "subset": job.indices is not None},
        "oracles": [{"name": job.name, "search": "valid_acc", "report": "test_acc",
                     "cost": "train_time", "train": "train_acc", "fidelity": job.recipe.epochs,
                     "description": description}],
        "recipe": job.recipe.to_dict(),
        "dataset": data_meta,
        "seeds": seeds,
        "subset": job.config()["subset"] and {"size": len(indices), "seed": job.subset_seed},
        "units": {"*_acc": "fraction in [0, 1]", "*_loss": "mean cross-entropy (nats)",
                  "train_time": "seconds of training on the collecting machine (not reproducible)",
                  "params": "trainable parameters", "flops": "multiply-accumulates per image, forward"},
        "library_versions": library_versions(),
        "code_version": code_version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "collection": {"created": started.get("created"), "code_version_at_start": started.get("code_version"),
                       "finalized": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "total_train_seconds": float(np.sum(train_time)),
                       "partial": len(seeds) < len(job.seeds)},
    }
    table = Table(name=job.name, archs=archs, seeds=tuple(str(s) for s in seeds),
                  fidelities=(job.recipe.epochs,), metrics=METRICS, values=values,
                  columns=columns, meta=meta)
    save_table(table, target)
    return table


def job_from_config(config: dict[str, Any], cifar_dir=None) -> Job:
    """The :class:`Job` a ``collection.json`` (or a table's meta) describes."""
    subset = config.get("subset")
    return Job(name=config["name"], preset=config["preset"], space_params=config["space"],
               dataset=config["dataset"], split_seed=int(config["split_seed"]),
               seeds=tuple(int(s) for s in config["seeds"]), recipe=Recipe.from_dict(config["recipe"]),
               indices=None if not subset else tuple(subset["indices"]),
               subset_seed=None if not subset else subset.get("seed"), cifar_dir=cifar_dir)


if __name__ == "__main__":  # pragma: no cover - the CLI is `nas-harness collect convnet`
    sys.exit("use: nas-harness collect convnet --help")
