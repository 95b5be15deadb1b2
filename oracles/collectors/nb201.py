"""Collect the NAS-Bench-201 cell space trained stand-alone: a ground truth of our own.

Every class of cells that compute the same expression (:mod:`oracles.nb201_canonical`,
NB201's own rule: 6,466 classes of the 15,625 cells) is trained once per seed, as its
representative (the lowest operation tuple, which carries ``none`` on every edge that does
not matter), in the NB201 skeleton of :func:`supernets.nb201.build_network` on a fixed,
recorded split (:mod:`oracles.collectors.datasets`, the same one :mod:`supernets.data`
gives supernets). The finished table maps every one of the 15,625 cells to its class's
numbers, so it is an ``nb201`` table like the official one and every algorithm runs on it::

    nas-harness collect nb201 --dataset digits --seeds 2 --out WORK            # CPU, resumable
    nas-harness collect nb201 --dataset digits --seeds 2 --out WORK --device cuda --workers 8

How it works (the same machinery as :mod:`oracles.collectors.convnet`):

* ``OUT/collection.json`` records what is collected (dataset, split seed and its
  fingerprint, recipe, seeds, canonicalisation rule, the classes); running the command again
  on the same ``OUT`` resumes, another configuration is refused.
* ``OUT`` is a result store (:mod:`oracles.collectors.store`) keyed by (class, seed): every
  finished training is one checksummed, ``fsync``-ed line in this session's shard, so a kill
  at any moment loses only the trainings in flight and a restart trains nothing twice;
  ``OUT/.lock`` keeps a second collector out (:func:`oracles.collectors.convnet.lock`).
* Tasks run seed by seed, and within a seed in a fixed random order of the classes
  (:func:`class_order`), so an interrupted collection's first seed is a uniform random
  sample of the classes: the seed-to-seed agreement (:func:`seed_agreement`) can be read
  off a collection long before it ends.
* When every (class, seed) is done, :func:`finalize` writes the table: values
  ``(15,625 cells, seeds, 1 fidelity = epochs, metrics)`` (:data:`METRICS`: the collector's
  metrics plus ``train_cpu_time``, the CPU seconds of the training, which unlike the
  wall-clock ``train_time`` does not grow with other load on the machine), columns
  ``class``, ``algebraic_class`` (the coarser exact-algebra class), ``representative`` (1
  on the cell that was trained), ``class_size`` and ``params`` (of the trained network), in
  the product order of the cells (:class:`oracles.nb201_space.NB201Space` without an
  official order list). A collection of a subset of the classes (``classes=``, for trials)
  writes a table of its representatives only, with space kind ``nb201-classes``.

The recipe (:class:`CellRecipe`) is NB201's (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020; section not checked here: SGD with
Nesterov momentum 0.9, weight decay 5e-4, cosine decay of the learning rate 0.1 to 0, batch
256, 200 epochs, C = 16, N = 5) scaled to the data and the time available; the per-dataset
defaults (:data:`DEFAULT_RECIPES`) say why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.files import atomic_write_bytes
from harness.processes import map_unordered
from harness.provenance import code_version as _harness_code_version

from .. import nb201_canonical as canon
from ..errors import CorruptData, UserError
from ..nb201_space import SIZE, arch_to_string
from ..table import Table, save_table
from .convnet import check_run_options, library_versions, lock
from .store import ResultStore, scan
from .train import METRICS as BASE_METRICS

FORMAT = "nas-harness-collection/1"
CONFIG = "collection.json"
METRICS = BASE_METRICS + ("train_cpu_time",)
KEY_FIELDS = ("index", "seed")
#: the collector's own sources and what it trains with: a change to them changes tables
COLLECTOR_SOURCES = ("oracles/collectors", "oracles/nb201_canonical.py", "oracles/nb201_space.py",
                     "supernets/nb201.py", "supernets/ops.py")


@dataclass(frozen=True)
class CellRecipe:
    """How one NB201 cell is trained stand-alone.

    Parameters
    ----------
    C: channels of the first stage (NB201: 16); stages have C, 2C, 4C.
    N: cells per stage (NB201: 5).
    epochs: passes over the training split (NB201: 200).
    batch_size: mini-batch size; the last partial batch of an epoch is kept (NB201: 256).
    lr: peak learning rate, decayed per step by a cosine to 0 (NB201: 0.1).
    momentum: SGD momentum, Nesterov's (NB201: 0.9, Nesterov).
    weight_decay: L2 penalty (NB201: 5e-4).
    eval_batch: batch size of the evaluation passes (does not change the numbers).

    Batch norm in the cells is affine with running statistics, as NB201 trains its table
    (:data:`supernets.ops.STANDALONE_BN`).
    """

    C: int = 16
    N: int = 5
    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_batch: int = 1024

    def __post_init__(self):
        if min(self.C, self.N, self.epochs, self.batch_size, self.eval_batch) < 1:
            raise ValueError("C, N, epochs, batch_size and eval_batch must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError("lr must be > 0, weight_decay >= 0 and momentum in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(optimizer="sgd, nesterov", schedule="cosine per step to 0", loss="cross-entropy",
                 network="supernets.nb201.build_network (NB201 skeleton), cell batch norm affine + running stats",
                 init="torch default, torch.manual_seed(seed)",
                 shuffle="numpy default_rng(seed) permutation per epoch")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CellRecipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: per dataset. ``digits``: sized by measurement (docs/nb201-digits.md) to the target of one
#: collection (6,466 classes x 2 seeds) in about 90 minutes of a 2-core machine, i.e. about
#: 0.8 CPU-seconds per training: C=4, N=1, 3 epochs of batch 128 (27 steps) took 0.75 CPU-s
#: on average over 200 classes (measured under a load of 11-17 on the 2 cores). Training
#: twice as long (6 epochs) did not make two seeds agree better (Spearman of validation
#: accuracy 0.55 either way): it saturates digits instead (median 96 %). ``mnist5k``: the same
#: recipe; its 28x28 images cost far more per step (docs/nb201-digits.md). ``cifar10``:
#: NB201's own recipe (200 epochs, C=16, N=5, batch 256), for a GPU.
DEFAULT_RECIPES: dict[str, CellRecipe] = {
    "digits": CellRecipe(C=4, N=1, epochs=3, batch_size=128, lr=0.1),
    "mnist5k": CellRecipe(C=4, N=1, epochs=3, batch_size=128, lr=0.1),
    "cifar10": CellRecipe(),
}


def configure_torch(threads: int = 1) -> None:
    """One thread per worker and deterministic kernels (once per worker process)."""
    from .train import configure_torch as configure
    configure(threads)


def train_cell(arch: Sequence[int], seed: int, recipe: CellRecipe, data, device: str = "cpu") -> dict[str, float]:
    """Train the NB201 network of ``arch`` on ``data`` (a :class:`~oracles.collectors.datasets.Split`).

    Returns every name of :data:`METRICS` (accuracies as fractions, mean cross-entropy
    losses, ``train_time`` wall-clock and ``train_cpu_time`` CPU seconds of this process in
    the training loop) and ``params``. On one machine and library version the accuracies and
    losses are a pure function of (arch, seed, recipe, data): one thread, deterministic
    kernels, every random draw seeded by ``seed``.
    """
    import torch
    import torch.nn.functional as F

    from supernets.nb201 import build_network, count_params

    dev = torch.device(device)
    torch.manual_seed(int(seed))
    net = build_network(arch, recipe.C, recipe.N, data.input_shape[0], data.num_classes).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0,
                          weight_decay=recipe.weight_decay)
    x_train = torch.from_numpy(data.x_train).to(dev)
    y_train = torch.from_numpy(data.y_train).to(dev)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    shuffle = np.random.default_rng(int(seed))
    step = 0
    net.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(recipe.epochs):
        order = torch.from_numpy(shuffle.permutation(n)).to(dev)
        for b in range(steps_per_epoch):
            for group in opt.param_groups:
                group["lr"] = 0.5 * recipe.lr * (1.0 + math.cos(math.pi * step / total))
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    out: dict[str, float] = {"train_time": time.perf_counter() - t0, "train_cpu_time": time.process_time() - c0}
    net.eval()
    with torch.no_grad():
        for part in ("train", "valid", "test"):
            x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
            loss_sum, correct = 0.0, 0
            for s in range(0, len(y), recipe.eval_batch):
                xb = torch.from_numpy(x[s:s + recipe.eval_batch]).to(dev)
                yb = torch.from_numpy(y[s:s + recipe.eval_batch]).to(dev)
                logits = net(xb)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
            out[f"{part}_acc"] = correct / len(y)
            out[f"{part}_loss"] = loss_sum / len(y)
    out["params"] = float(count_params(net))
    return out


# --- the job -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """What to collect. ``classes``: class ids (of ``rule``) to train, ``None`` = all."""

    name: str
    dataset: str
    split_seed: int
    seeds: tuple[int, ...]
    recipe: CellRecipe
    rule: str = "nb201"
    classes: tuple[int, ...] | None = None
    cifar_dir: str | None = None

    def config(self) -> dict[str, Any]:
        return {"format": FORMAT, "family": "nb201", "name": self.name, "dataset": self.dataset,
                "split_seed": self.split_seed, "seeds": list(self.seeds), "recipe": self.recipe.to_dict(),
                "rule": self.rule, "classes": None if self.classes is None else list(self.classes)}

    @property
    def all_classes(self) -> bool:
        return self.classes is None


def make_job(dataset: str, seeds: int | Sequence[int], recipe: CellRecipe | None = None, name: str | None = None,
             split_seed: int = 0, classes: int | Sequence[int] | None = None, classes_seed: int = 0,
             cifar_dir=None, rule: str = "nb201") -> Job:
    """Build a :class:`Job`.

    ``seeds``: a count (seeds ``0..N-1``) or explicit seeds. ``recipe``: default
    :data:`DEFAULT_RECIPES` ``[dataset]``. ``classes``: ``None`` for every class, a count for
    that many classes drawn uniformly without replacement with ``classes_seed`` (the first
    ones of :func:`class_order`), or explicit class ids. ``name``: default ``nb201-DATASET``.
    """
    if recipe is None:
        if dataset not in DEFAULT_RECIPES:
            raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DEFAULT_RECIPES)}")
        recipe = DEFAULT_RECIPES[dataset]
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {seeds}")
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UserError("seeds must be distinct and at least one")
    if rule not in canon.RULES:
        raise UserError(f"unknown rule {rule!r}; choose from {', '.join(canon.RULES)}")
    n = canon.num_classes(rule)
    chosen = None
    if isinstance(classes, int):
        if not 1 <= classes <= n:
            raise UserError(f"--classes must be in 1..{n}, got {classes}")
        if classes < n:
            chosen = tuple(sorted(int(c) for c in class_order(rule, classes_seed)[:classes]))
    elif classes is not None:
        chosen = tuple(sorted({int(c) for c in classes}))
        if not chosen or chosen[0] < 0 or chosen[-1] >= n:
            raise UserError(f"class ids must be in 0..{n - 1}")
    return Job(name=name or f"nb201-{dataset}", dataset=dataset, split_seed=int(split_seed), seeds=seeds,
               recipe=recipe, rule=rule, classes=chosen,
               cifar_dir=None if cifar_dir is None else str(Path(cifar_dir).expanduser().resolve()))


def class_order(rule: str = "nb201", seed: int = 0) -> np.ndarray:
    """Every class id of ``rule`` in a fixed random order (``numpy`` ``default_rng(seed)``)."""
    return np.random.default_rng(seed).permutation(canon.num_classes(rule))


def all_tasks(job: Job) -> list[tuple[int, int]]:
    """Every (class, seed) of the job in run order: seed by seed, classes in :func:`class_order`."""
    order = class_order(job.rule)
    if job.classes is not None:
        keep = set(job.classes)
        order = [c for c in order if c in keep]
    return [(int(c), s) for s in job.seeds for c in order]


# --- the store ---------------------------------------------------------------------------------
def _row_key(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["index"]), int(row["seed"])


def read_rows(out) -> tuple[dict[tuple[int, int], dict[str, Any]], dict[str, Any]]:
    """Every valid row of the collection in ``out``, keyed by (class, seed), and counts
    (:func:`oracles.collectors.store.scan`)."""
    return scan(out, KEY_FIELDS, key_of=_row_key)


#: cells whose networks :func:`network_fingerprint` describes: every operation on live edges
_REFERENCE_CELLS = ((3,) * 6, (2,) * 6, (4,) * 6, (1, 2, 0, 3, 0, 4), (0,) * 6)


def network_fingerprint(recipe: CellRecipe, in_channels: int, num_classes: int) -> str:
    """16 hex digits of the SHA-256 of the parameter and buffer names and shapes of the
    networks :func:`supernets.nb201.build_network` makes for a few reference cells.

    A collection can span sessions and commits; a change to the network code between a
    collection's start and its resume would mix two networks in one table. This catches any
    change of structure (modules, shapes, batch-norm buffers), not a change of numerics.
    """
    from supernets.nb201 import build_network
    h = hashlib.sha256()
    for arch in _REFERENCE_CELLS:
        net = build_network(arch, recipe.C, recipe.N, in_channels, num_classes)
        for name, value in net.state_dict().items():
            h.update(f"{name}:{tuple(value.shape)};".encode())
    return h.hexdigest()[:16]


def _prepare(out: Path, job: Job, data_record: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG
    config = job.config()
    config["data"] = data_record
    config["network"] = network_fingerprint(job.recipe, data_record["input_shape"][0], data_record["num_classes"])
    if path.is_file():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            raise CorruptData(f"{path} is not valid JSON; remove {out} to start over") from None
        if "network" not in existing:  # started by the first version, which did not record it
            config.pop("network")
        elif existing["network"] != config["network"]:
            raise UserError(f"{out} was collected with other networks (the NB201 network code changed since "
                            f"it started, commit {existing.get('code_version', {}).get('git_commit')}); finish "
                            "it with that code, or use another --out")
        theirs = {k: existing.get(k) for k in config}
        try:  # a recipe is its parameters; its descriptive strings may be reworded
            theirs["recipe"] = CellRecipe.from_dict(theirs["recipe"]).to_dict()
        except (TypeError, ValueError, AttributeError):
            pass
        diff = sorted(k for k in config if config[k] != theirs[k])
        if diff:
            raise UserError(f"{out} holds a different collection (differs in: {', '.join(diff)}); "
                            "use another --out, or the same options to resume it")
        return
    config["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config["code_version"] = code_version()
    atomic_write_bytes(path, lambda fh: fh.write(json.dumps(config, indent=1).encode()))


def code_version() -> dict[str, Any]:
    """Package version, git commit and whether :data:`COLLECTOR_SOURCES` differ from it."""
    v = _harness_code_version(COLLECTOR_SOURCES)
    info: dict[str, Any] = {"package": v["version"]}
    if v["git_commit"]:
        info.update(git_commit=v["git_commit"], collector_modified=v["git_dirty"])
    return info


# --- workers -------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(dataset: str, split_seed: int, cifar_dir: str | None, recipe: dict, device: str) -> None:
    from .datasets import load_split
    configure_torch(1)
    _WORKER.update(data=load_split(dataset, split_seed, cifar_dir), recipe=CellRecipe.from_dict(recipe),
                   device=device)


def _worker_run(task: tuple[int, tuple, int]) -> tuple[int, int, dict[str, float]]:
    cls, arch, seed = task
    return cls, seed, train_cell(arch, seed, _WORKER["recipe"], _WORKER["data"], _WORKER["device"])


# --- the collection --------------------------------------------------------------------------------
def collect(job: Job, out, workers: int = 1, device: str = "cpu", progress: bool = True, table_dir=None,
            log=print, train: bool = True, partial: bool = False) -> Path | None:
    """Run (or resume) ``job`` in ``out``; write the table when complete and return its path.

    ``workers``: processes (1 = in this process). ``device``: ``cpu`` or ``cuda[:N]``.
    ``table_dir``: where the table goes (default ``OUT/table``). ``train=False`` only
    assembles what is done; ``partial=True`` writes a table of the seeds every class has
    finished when some are missing. Returns ``None`` when no table could be written.
    """
    from .datasets import load_split
    out = Path(out)
    check_run_options(workers, device)
    data = load_split(job.dataset, job.split_seed, job.cifar_dir)  # refuses a wrong folder here, once
    _prepare(out, job, data_record(data))
    with lock(out):
        rows, stats = read_rows(out)
        tasks = all_tasks(job)
        todo = [t for t in tasks if t not in rows]
        if stats["torn"]:
            log(f"dropped {stats['torn']} row(s) torn by an earlier interruption; they will be re-trained")
        if todo and train:
            log(f"collecting {job.name}: {len(tasks) - len(todo)}/{len(tasks)} (class, seed) trainings done, "
                f"{len(todo)} to go, {workers} worker(s) on {device}")
            _train(job, out, todo, len(tasks), workers, device, progress)
            rows, stats = read_rows(out)
        target = Path(table_dir) if table_dir is not None else out / "table"
        done = {t for t in tasks if t in rows}
        if len(done) < len(tasks):
            if not partial:
                return None
            classes = sorted({c for c, _ in tasks})
            complete = tuple(s for s in job.seeds if all((c, s) in rows for c in classes))
            if not complete:
                log("no seed is complete yet; nothing to write")
                return None
            log(f"writing a partial table: seeds {list(complete)} of {list(job.seeds)}")
            finalize(job, out, rows, target, seeds=complete, data=data)
            return target
        finalize(job, out, rows, target, data=data)
        return target


def _train(job: Job, out: Path, todo, total: int, workers: int, device: str, progress: bool) -> None:
    reps = canon.representative_archs(job.rule)
    tasks = ((c, tuple(int(o) for o in reps[c]), s) for c, s in todo)
    store = ResultStore(out, KEY_FIELDS, key_of=_row_key)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=total - len(todo), unit="cell", dynamic_ncols=True, desc=job.name,
                   smoothing=0.05)
    from harness.interrupts import raise_if_swallowed
    args = (job.dataset, job.split_seed, job.cifar_dir, job.recipe.to_dict(), device)
    try:
        raise_if_swallowed()
        for cls, seed, metrics in map_unordered(_worker_run, tasks, workers, initializer=_worker_init,
                                                initargs=args, in_flight=2 * workers):
            store.append({"index": cls, "seed": seed, "arch": arch_to_string(reps[cls]), **metrics})
            if bar is not None:
                bar.update(1)
            raise_if_swallowed()  # a Ctrl-C that a callback swallowed (see harness.interrupts)
    finally:
        store.close()
        if bar is not None:
            bar.close()


def data_record(split) -> dict[str, Any]:
    """What the collection records about its data: the supernet-facing record
    (:meth:`supernets.data.SupernetData.record`: sizes, fingerprint of the split, SHA-256 of
    the data), so a supernet is only ever scored against a table of its own split."""
    from supernets.data import SupernetData
    return SupernetData(split).record()


# --- progress and agreement ---------------------------------------------------------------------
def seed_agreement(rows: dict[tuple[int, int], dict[str, Any]], seeds: Sequence[int] = (0, 1),
                   metrics: Sequence[str] = ("valid_acc", "valid_loss", "test_acc")) -> dict[str, Any]:
    """Spearman's rho and Kendall's tau between two seeds over the classes both have trained.

    The seed-to-seed agreement is the noise ceiling of any ranking measured against the
    table (a supernet cannot agree with the truth better than the truth agrees with itself).
    Returns ``{"classes": n, "seeds": [a, b], metric: {"spearman": rho, "kendall": tau}}``;
    ``None`` where undefined (fewer than 3 classes, or one seed's values all equal).
    """
    from scipy.stats import kendalltau, spearmanr
    a, b = seeds
    common = sorted(c for c, s in rows if s == a and (c, b) in rows)
    out: dict[str, Any] = {"classes": len(common), "seeds": [a, b]}
    for m in metrics:
        x = np.array([rows[(c, a)][m] for c in common], dtype=float)
        y = np.array([rows[(c, b)][m] for c in common], dtype=float)
        if len(common) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # undefined: too few, or a constant
            out[m] = {"spearman": None, "kendall": None}  # None, not NaN: strict JSON (table manifests)
            continue
        out[m] = {"spearman": float(spearmanr(x, y).statistic), "kendall": float(kendalltau(x, y).statistic)}
    return out


def status(out) -> dict[str, Any]:
    """Progress of the collection in ``out``: trainings done and to do, CPU seconds so far."""
    out = Path(out)
    try:
        config = json.loads((out / CONFIG).read_text())
    except FileNotFoundError:
        raise UserError(f"{out} holds no collection ({CONFIG} is missing)") from None
    job = job_from_config(config)
    rows, stats = read_rows(out)
    tasks = all_tasks(job)
    done = [rows[t] for t in tasks if t in rows]
    cpu = [r["train_cpu_time"] for r in done]
    return {"name": job.name, "done": len(done), "total": len(tasks), "torn": stats["torn"],
            "cpu_seconds": float(np.sum(cpu)) if cpu else 0.0,
            "cpu_seconds_per_training": float(np.mean(cpu)) if cpu else float("nan")}


def job_from_config(config: dict[str, Any], cifar_dir=None) -> Job:
    """The :class:`Job` a ``collection.json`` describes."""
    classes = config.get("classes")
    return Job(name=config["name"], dataset=config["dataset"], split_seed=int(config["split_seed"]),
               seeds=tuple(int(s) for s in config["seeds"]), recipe=CellRecipe.from_dict(config["recipe"]),
               rule=config.get("rule", "nb201"), classes=None if classes is None else tuple(classes),
               cifar_dir=cifar_dir)


# --- the table -----------------------------------------------------------------------------------
def finalize(job: Job, out: Path, rows: dict[tuple[int, int], dict[str, Any]], target,
             seeds: Sequence[int] | None = None, data=None) -> Table:
    """Assemble ``rows`` into the job's table (module doc) at ``target``; ``seeds`` limits the
    seeds written (a partial table). Every row's architecture must be its class's representative."""
    from .datasets import load_split
    out, target = Path(out), Path(target)
    seeds = list(job.seeds if seeds is None else seeds)
    reps = canon.representative_archs(job.rule)
    classes = np.arange(len(reps)) if job.classes is None else np.asarray(job.classes, dtype=np.int64)
    per_class = np.full((len(reps), len(seeds), 1, len(METRICS)), np.nan)
    params = np.full(len(reps), -1, dtype=np.int64)
    for c in classes:
        for k, s in enumerate(seeds):
            row = rows.get((int(c), s))
            if row is None:
                raise CorruptData(f"{out}: class {c} seed {s} is missing; run the collector again")
            if row["arch"] != arch_to_string(reps[c]):
                raise CorruptData(f"{out}: the row of class {c} trained {row['arch']}, not the class's "
                                  f"representative {arch_to_string(reps[c])} (another rule or code version?)")
            per_class[c, k, 0] = [row[m] for m in METRICS]
            params[c] = int(row["params"])
    if data is None:
        data = load_split(job.dataset, job.split_seed, job.cifar_dir)
    started = json.loads((out / CONFIG).read_text())
    cpu = per_class[classes][..., METRICS.index("train_cpu_time")]
    algebraic = canon.class_ids("algebraic")
    class_of = canon.class_ids(job.rule)
    r = job.recipe
    what = (f"NB201 cells (rule {job.rule}: {len(reps):,} classes of the {SIZE:,} cells"
            + ("" if job.classes is None else f", {len(classes)} of them") + ") trained stand-alone on "
            f"{job.dataset} in the NB201 skeleton (C={r.C}, N={r.N}), {r.epochs} epochs, "
            f"{len(seeds)} seed(s); self-collected")
    if job.classes is None:
        archs = np.array([arch_to_string(a) for a in canon.all_archs()])
        values = per_class[class_of]
        reps_code = canon.representatives(job.rule)
        columns = {"class": class_of, "algebraic_class": algebraic,
                   "representative": np.isin(np.arange(SIZE), reps_code).astype(np.int64),
                   "class_size": canon.class_sizes(job.rule)[class_of], "params": params[class_of]}
        space = {"kind": "nb201", "order": "product of OPS (edge 1<-0 most significant), not the official index"}
    else:
        archs = np.array([arch_to_string(reps[c]) for c in classes])
        values = per_class[classes]
        reps_code = canon.representatives(job.rule)[classes]
        columns = {"class": classes, "algebraic_class": algebraic[reps_code],
                   "class_size": canon.class_sizes(job.rule)[classes], "params": params[classes]}
        space = {"kind": "nb201-classes", "note": "representatives of a subset of the classes; not a whole space"}
    meta = {
        "source": "self-collected by oracles.collectors.nb201",
        "description": what,
        "space": {**space, "rule": job.rule, "classes": len(reps)},
        "oracles": [{"name": job.name, "search": "valid_acc", "report": "test_acc", "cost": "train_cpu_time",
                     "train": "train_acc", "fidelity": r.epochs, "description": what}],
        "recipe": r.to_dict(),
        "dataset": {**data.meta, "supernet_record": data_record(data)},
        "seeds": seeds,
        "canonical": {"rule": job.rule, "representative": "lowest operation tuple of the class "
                      "(oracles.nb201_canonical); every cell of a class gets its representative's numbers"},
        "units": {"*_acc": "fraction in [0, 1]", "*_loss": "mean cross-entropy (nats)",
                  "train_time": "wall-clock seconds of training on the collecting machine (not reproducible)",
                  "train_cpu_time": "CPU seconds of training, one thread (not reproducible)",
                  "params": "trainable parameters of the trained network"},
        "library_versions": library_versions(),
        "code_version": code_version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "collection": {"created": started.get("created"), "code_version_at_start": started.get("code_version"),
                       "finalized": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "trainings": int(cpu.size), "total_train_cpu_seconds": float(np.sum(cpu)),
                       "partial": len(seeds) < len(job.seeds)},
    }
    if len(seeds) >= 2:
        sub = {(int(c), s): {m: per_class[c, k, 0, METRICS.index(m)] for m in ("valid_acc", "valid_loss", "test_acc")}
               for c in classes for k, s in enumerate(seeds)}
        meta["collection"]["seed_agreement"] = seed_agreement(sub, seeds[:2])
    table = Table(name=job.name, archs=archs, seeds=tuple(str(s) for s in seeds), fidelities=(r.epochs,),
                  metrics=METRICS, values=values, columns=columns, meta=meta)
    save_table(table, target)
    return table


if __name__ == "__main__":  # pragma: no cover - the CLI is `nas-harness collect nb201`
    sys.exit("use: nas-harness collect nb201 --help")
