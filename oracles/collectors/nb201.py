"""Collect the NAS-Bench-201 cell space trained stand-alone: a ground truth of our own.

Every class of cells that compute the same expression (:mod:`oracles.nb201_canonical`,
NB201's own rule: 6,466 classes of the 15,625 cells) is trained once per seed, as its
representative (the lowest operation tuple, which carries ``none`` on every edge that does
not matter), in the NB201 skeleton of :func:`supernets.nb201.build_network` on a fixed,
recorded split (:mod:`oracles.collectors.datasets`, the same one :mod:`supernets.data`
gives supernets). The table stores one row per class; loaded, it serves every one of the
15,625 cells with its class's numbers, an ``nb201`` space like the official table's, so
every algorithm runs on it::

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
* When every (class, seed) is done, :func:`finalize` writes the table (``--finalize-partial``:
  of the classes done so far, a uniform sample); see "The table" below.

The table: one row per class, expanded to the cells when loaded
-----------------------------------------------------------------
What is stored (space kind ``nb201-classes``, :data:`STORED_KIND`) is one row per class
trained, 6,466 when complete: ``archs`` is the class's representative (the cell that was
trained) written as its six operation indices, one digit each (:data:`oracles.nb201_space.OPS`
order, edges in string order: ``"300000"`` is ``|nor_conv_3x3~0|+|none~0|none~1|+...``);
``values`` is ``(classes, seeds, 1 fidelity = epochs, METRICS)``, float64 as the collection
recorded them (NaN where a seed of a class is not trained yet; float32 would save 0.4 MB but
serve 0.8916666507720947 for 321/360); one column ``params`` (of the trained network).
Nothing else is stored: which cells belong to which class is recomputed from
:mod:`oracles.nb201_canonical` (deterministic, 0.14 CPU-s), and a table whose cells are not
the representatives under the current rule is refused. That keeps the table at about 1.0 MB
instead of 8.2 MB for 15,625 rows of NB201 strings, so it ships inside the package as
``oracles/embedded/nb201-digits`` (docs/nb201-digits.md).

When the registry loads such a table it calls :func:`expand_table` (``oracles.registry``'s
``EXPANDERS``), which gives the table the oracles serve (space kind ``nb201-cells``,
:data:`CELLS_KIND`): one row per cell of every covered class, in product order of the
operations (:class:`oracles.nb201_space.NB201Space` without an official order list), every
cell answering with its class's numbers; columns ``cell`` (product code),
``class``, ``representative`` (1 on the trained cell), ``class_size`` and ``params``.
:func:`space_from_table` builds its space: ``NB201Space()`` when every class is covered,
else a :class:`~oracles.subset_space.SubsetSpace` of it (a partial table: the cells of the
classes done so far, a uniform random sample of the classes). The oracle (``nb201-digits``)
searches on ``valid_acc``, reports ``test_acc``, costs ``train_cpu_time``, and answers the
**mean over the seeds** a class has (``runs=random`` draws one seed per query instead).

For analyses by class (the supernet rank report), ``load_ground_truth(source="nb201-digits")
-> GroundTruth`` (:func:`load_ground_truth`) gives the table per class: representative cell,
per-seed values of every metric (validation/test accuracy and loss included), the seed mean,
parameters, class sizes and the split record::

    from oracles.collectors.nb201 import load_ground_truth
    truth = load_ground_truth("nb201-digits")       # an oracle name, a table folder or a Table
    truth.cells          # (n, 6) representative of each covered class (the cell to score)
    truth.valid_acc      # (n, seeds) per seed, NaN where a seed is missing; also valid_loss,
                         # test_acc, test_loss, and per_seed(metric) for any metric
    truth.mean("valid_loss")                        # (n,) the seed mean the oracle answers
    truth.all_seeds()    # rows with every seed: where the seed-to-seed ceiling is defined

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
from ..nb201_space import N_EDGES, N_OPS, OPS, SIZE, arch_to_string
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
    assembles what is done: it writes nothing into ``out`` and does not take its lock, so it
    can snapshot a collection that another process is running. ``partial=True`` writes, when
    some trainings are missing, a table of every class with at least one seed done (classes
    are trained in a fixed random order, so they are a uniform sample; a seed a class lacks
    is NaN). Returns ``None`` when no table could be written.
    """
    import contextlib

    from .datasets import load_split
    out = Path(out)
    check_run_options(workers, device)
    if not train and not (out / CONFIG).is_file():
        raise UserError(f"{out} holds no collection ({CONFIG} is missing); nothing to write")
    data = load_split(job.dataset, job.split_seed, job.cifar_dir)  # refuses a wrong folder here, once
    _prepare(out, job, data_record(data))    # only compares when the collection exists
    with lock(out) if train else contextlib.nullcontext():
        rows, stats = read_rows(out)
        tasks = all_tasks(job)
        todo = [t for t in tasks if t not in rows]
        if stats["torn"] and train:
            log(f"dropped {stats['torn']} row(s) torn by an earlier interruption; they will be re-trained")
        if todo and train:
            log(f"collecting {job.name}: {len(tasks) - len(todo)}/{len(tasks)} (class, seed) trainings done, "
                f"{len(todo)} to go, {workers} worker(s) on {device}")
            _train(job, out, todo, len(tasks), workers, device, progress)
            rows, stats = read_rows(out)
        target = Path(table_dir) if table_dir is not None else out / "table"
        done = {t for t in tasks if t in rows}
        if len(done) < len(tasks) and not partial:
            return None
        if not done:
            log("no training is finished yet; nothing to write")
            return None
        table = finalize(job, out, rows, target, data=data, partial=partial)
        if len(done) < len(tasks):
            space = table.meta["space"]
            per_seed = table.meta["collection"]["classes_per_seed"]
            log(f"wrote a partial table: {space['covered']:,} of {space['classes']:,} classes "
                f"({space['cells']:,} of {SIZE:,} cells); classes per seed "
                + ", ".join(f"{s}: {n:,}" for s, n in per_seed.items()))
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
#: the space kind of the table as stored: one row per class trained (module doc)
STORED_KIND = "nb201-classes"
#: the space kind of the table the oracles serve: one row per cell (:func:`expand_table`)
CELLS_KIND = "nb201-cells"
#: how values are stored: as recorded (module doc)
STORED_DTYPE = np.float64
_PLACE = N_OPS ** np.arange(N_EDGES - 1, -1, -1)


def cell_code(arch: Sequence[int]) -> str:
    """The stored name of a cell: its six operation indices as digits (``"300000"``)."""
    return "".join(str(int(o)) for o in arch)


def finalize(job: Job, out: Path, rows: dict[tuple[int, int], dict[str, Any]], target, data=None,
             partial: bool = False) -> Table:
    """Write ``rows`` (:func:`read_rows`) as the job's table (module doc) to folder ``target``
    and return it as stored.

    ``job``: the collection's :class:`Job`; ``out``: its folder (for ``collection.json``);
    ``data``: its :class:`~oracles.collectors.datasets.Split` (default: loaded again).
    ``partial``: False requires every (class, seed) of the job; True writes every class of
    the job with at least one seed done (NaN for the seeds it lacks), and only the seeds
    with at least one row. Every row must have trained its class's representative.
    """
    from .datasets import load_split
    out, target = Path(out), Path(target)
    reps = canon.representative_archs(job.rule)
    wanted = np.arange(len(reps)) if job.classes is None else np.asarray(job.classes, dtype=np.int64)
    if partial:
        seeds = [s for s in job.seeds if any((int(c), s) in rows for c in wanted)]
        classes = np.array([c for c in wanted if any((int(c), s) in rows for s in seeds)], dtype=np.int64)
        if not len(classes):
            raise UserError(f"{out}: no training is finished yet; nothing to write")
    else:
        seeds, classes = list(job.seeds), wanted
    values = np.full((len(classes), len(seeds), 1, len(METRICS)), np.nan)
    params = np.full(len(classes), -1, dtype=np.int64)
    for i, c in enumerate(classes):
        for k, s in enumerate(seeds):
            row = rows.get((int(c), s))
            if row is None:
                if partial:
                    continue
                raise CorruptData(f"{out}: class {c} seed {s} is missing; run the collector again")
            if row["arch"] != arch_to_string(reps[c]):
                raise CorruptData(f"{out}: the row of class {c} trained {row['arch']}, not the class's "
                                  f"representative {arch_to_string(reps[c])} (another rule or code version?)")
            values[i, k, 0] = [row[m] for m in METRICS]
            params[i] = int(row["params"])
    if data is None:
        data = load_split(job.dataset, job.split_seed, job.cifar_dir)
    started = json.loads((out / CONFIG).read_text())
    done = ~np.isnan(values[:, :, 0, 0])
    cpu = values[..., 0, METRICS.index("train_cpu_time")][done]
    n_all = len(reps)
    cells = int(canon.class_sizes(job.rule)[classes].sum())
    is_partial = bool(len(classes) < len(wanted) or len(seeds) < len(job.seeds) or not done.all())
    r = job.recipe
    coverage = (f"{len(classes):,} of the {n_all:,} classes, {cells:,} of the {SIZE:,} cells"
                + (", a uniform random sample" if len(classes) < n_all else ""))
    what = (f"NB201 cells (rule {job.rule}: {coverage}) trained stand-alone on {job.dataset} in the NB201 "
            f"skeleton (C={r.C}, N={r.N}), {r.epochs} epochs, {len(seeds)} seed(s), values the seed mean; "
            "self-collected" + ("; PARTIAL" if is_partial else ""))
    meta = {
        "source": "self-collected by oracles.collectors.nb201" + (f" (partial: {coverage})" if is_partial else ""),
        "description": what,
        "space": {"kind": STORED_KIND, "rule": job.rule, "classes": n_all, "covered": int(len(classes)),
                  "cells": cells, "ops": list(OPS),
                  "archs": "per row the trained cell (its class's representative, oracles.nb201_canonical) as "
                           "six operation indices, one digit each, edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2",
                  "expanded": "oracles.collectors.nb201.expand_table: every cell of a covered class, in "
                              "product order of the operations (not NB201's official index), answers with "
                              "its class's values"},
        "oracles": [{"name": job.name, "search": "valid_acc", "report": "test_acc", "cost": "train_cpu_time",
                     "train": "train_acc", "fidelity": r.epochs, "runs": "mean", "description": what}],
        "recipe": r.to_dict(),
        "dataset": {**data.meta, "supernet_record": data_record(data)},
        "seeds": seeds,
        "canonical": {"rule": job.rule, "representative": "lowest operation tuple of the class "
                      "(oracles.nb201_canonical); every cell of a class gets its representative's numbers"},
        "units": {"*_acc": "fraction in [0, 1]", "*_loss": "mean cross-entropy (nats)",
                  "train_time": "wall-clock seconds of training on the collecting machine (not reproducible)",
                  "train_cpu_time": "CPU seconds of training, one thread (not reproducible)",
                  "params": "trainable parameters of the trained network",
                  "values": "per seed as recorded; the oracle answers the mean over the seeds a class has"},
        "library_versions": library_versions(),
        "code_version": code_version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "collection": {"created": started.get("created"), "code_version_at_start": started.get("code_version"),
                       "finalized": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "trainings": int(cpu.size), "total_train_cpu_seconds": float(np.sum(cpu)),
                       "partial": is_partial,
                       "classes_per_seed": {str(s): int(done[:, k].sum()) for k, s in enumerate(seeds)}},
    }
    if len(seeds) >= 2:
        sub = {(int(c), s): {m: values[i, k, 0, METRICS.index(m)] for m in ("valid_acc", "valid_loss", "test_acc")}
               for i, c in enumerate(classes) for k, s in enumerate(seeds) if done[i, k]}
        meta["collection"]["seed_agreement"] = seed_agreement(sub, seeds[:2])
    table = Table(name=job.name, archs=np.array([cell_code(reps[c]) for c in classes]),
                  seeds=tuple(str(s) for s in seeds), fidelities=(r.epochs,), metrics=METRICS,
                  values=values.astype(STORED_DTYPE), columns={"params": params.astype(np.int32)}, meta=meta)
    save_table(table, target)
    return table


def _parse_cells(archs) -> np.ndarray:
    """Product codes of stored cell names (:func:`cell_code`; NB201 strings are read too)."""
    from ..nb201_space import string_to_arch
    out = np.empty(len(archs), dtype=np.int64)
    for i, name in enumerate(np.asarray(archs).tolist()):
        if len(name) == N_EDGES and name.isdigit() and max(name) < str(N_OPS):
            digits = [int(ch) for ch in name]
        else:
            digits = string_to_arch(name)   # an NB201 string (tables of earlier trial runs)
        out[i] = int(np.dot(digits, _PLACE))
    return out


def expand_table(table: Table) -> Table:
    """The table the oracles serve, from a stored one (space kind :data:`STORED_KIND`).

    One row per cell of every class the stored table covers, in increasing product code
    (the order of ``NB201Space()``), each with its class's values; columns
    ``cell`` (product code), ``class``, ``representative`` (1 on the trained cell),
    ``class_size`` and ``params``; space kind :data:`CELLS_KIND`. Raises
    :class:`~oracles.errors.CorruptData` when a stored cell is not its class's
    representative under the current :mod:`oracles.nb201_canonical` rule (a table of another
    rule or code), or a class appears twice. A table of another kind is returned unchanged.
    """
    from ..errors import InvalidArchitecture
    space = dict(table.meta.get("space", {}))
    if space.get("kind") != STORED_KIND:
        return table
    rule = space.get("rule", "nb201")
    if rule not in canon.RULES:
        raise CorruptData(f"table {table.name!r}: unknown canonicalisation rule {rule!r}; upgrade nas-harness")
    try:
        codes = _parse_cells(table.archs)
    except (InvalidArchitecture, ValueError) as exc:
        raise CorruptData(f"table {table.name!r}: a row is not an NB201 cell ({exc}); re-finalize it") from None
    class_of = canon.class_ids(rule)
    classes = class_of[codes]
    reps = canon.representatives(rule)
    wrong = np.flatnonzero(reps[classes] != codes)
    if len(wrong):
        raise CorruptData(f"table {table.name!r}: cell {table.archs[wrong[0]]} is not the representative of its "
                          f"class under rule {rule} of this code (a table of another canonicalisation); re-finalize "
                          "it from its collection")
    if len(np.unique(classes)) != len(classes):
        raise CorruptData(f"table {table.name!r} lists a class twice; re-finalize it")
    row_of_class = np.full(len(reps), -1, dtype=np.int64)
    row_of_class[classes] = np.arange(len(classes))
    rows_of_cells = row_of_class[class_of]
    cells = np.flatnonzero(rows_of_cells >= 0)
    rows = rows_of_cells[cells]
    cell_class = class_of[cells]
    columns = {"cell": cells, "class": cell_class, "representative": (reps[cell_class] == cells).astype(np.int8),
               "class_size": canon.class_sizes(rule)[cell_class]}
    for key, col in table.columns.items():
        columns[key] = np.asarray(col)[rows]
    meta = dict(table.meta)
    meta["space"] = {**space, "kind": CELLS_KIND, "stored_kind": STORED_KIND, "order":
                     "product of OPS (edge 1<-0 most significant), not the official index"}
    return Table(name=table.name, archs=np.array([arch_to_string(a) for a in canon.all_archs()[cells]]),
                 seeds=table.seeds, fidelities=table.fidelities, metrics=table.metrics,
                 values=np.asarray(table.values, dtype=np.float64)[rows], columns=columns, meta=meta)


def space_from_table(table: Table):
    """The space of an expanded table (:func:`expand_table`): ``NB201Space()`` (product
    order) when it has every cell, else a :class:`~oracles.subset_space.SubsetSpace` of it
    over its cells. Checks that the rows' strings are the cells its ``cell`` column names."""
    from ..nb201_space import NB201Space
    from ..subset_space import SubsetSpace
    cells = np.asarray(table.columns.get("cell", []), dtype=np.int64)
    if len(cells) != table.n_archs or len(cells) == 0 or np.any(np.diff(cells) <= 0) \
            or cells[0] < 0 or cells[-1] >= SIZE:
        raise CorruptData(f"table {table.name!r}: its 'cell' column does not list its cells in increasing order")
    names = np.array([arch_to_string(a) for a in canon.all_archs()[cells]])
    if not np.array_equal(names, np.asarray(table.archs)):
        raise CorruptData(f"table {table.name!r}: its rows are not the cells its 'cell' column names")
    parent = NB201Space()
    return parent if len(cells) == SIZE else SubsetSpace(parent, cells)


# --- the ground truth by class ---------------------------------------------------------------------
@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth table read by class (:func:`load_ground_truth`).

    Attributes (``n`` = classes the table covers, in increasing class id):

    name: the table's name (``nb201-digits``). rule: its canonicalisation rule.
    classes: ``(n,)`` class ids (:func:`oracles.nb201_canonical.class_ids`).
    cells: ``(n, 6)`` each class's representative, the cell that was trained: a supernet
        is scored on the class by this cell's sub-network.
    seeds: seed labels. metrics: metric names (:data:`METRICS`).
    values: ``(n, seeds, metrics)`` float64, NaN where a class lacks a seed (a partial table).
    params: ``(n,)`` parameters of the trained network. class_size: ``(n,)`` cells per class.
    total_classes: classes of the rule (6,466 for ``nb201``); ``n < total_classes`` for a
        partial table (a uniform random sample of the classes).
    data_record: the split the table was trained on (:meth:`supernets.data.SupernetData.record`),
        for checking that a supernet was trained on the same split.
    meta: the table's metadata.
    """

    name: str
    rule: str
    classes: np.ndarray
    cells: np.ndarray
    seeds: tuple[str, ...]
    metrics: tuple[str, ...]
    values: np.ndarray
    params: np.ndarray
    class_size: np.ndarray
    total_classes: int
    data_record: dict[str, Any] | None
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.classes)

    def per_seed(self, metric: str) -> np.ndarray:
        """``(n, seeds)`` values of ``metric`` (a name in :attr:`metrics`), NaN where missing."""
        if metric not in self.metrics:
            raise UserError(f"ground truth {self.name}: no metric {metric!r}; it has {', '.join(self.metrics)}")
        return self.values[:, :, self.metrics.index(metric)]

    def mean(self, metric: str) -> np.ndarray:
        """``(n,)`` mean of ``metric`` over the seeds each class has: what the oracle answers."""
        block = self.per_seed(metric)
        counts = np.sum(~np.isnan(block), axis=1)
        return np.where(counts > 0, np.nansum(block, axis=1) / np.maximum(counts, 1), np.nan)

    def all_seeds(self) -> np.ndarray:
        """``(n,)`` True for classes with every seed of the table: where the seed-to-seed
        agreement (the ceiling of any ranking measured against the table) is defined."""
        return ~np.isnan(self.values[:, :, self.metrics.index("valid_acc")]).any(axis=1)

    @property
    def valid_acc(self) -> np.ndarray:
        return self.per_seed("valid_acc")

    @property
    def valid_loss(self) -> np.ndarray:
        return self.per_seed("valid_loss")

    @property
    def test_acc(self) -> np.ndarray:
        return self.per_seed("test_acc")

    @property
    def test_loss(self) -> np.ndarray:
        return self.per_seed("test_loss")

    def strings(self) -> list[str]:
        """The representatives as NB201 strings."""
        return [arch_to_string(a) for a in self.cells]

    def row_of(self, arch: Sequence[int]) -> int:
        """The row of ``arch``'s class (any cell of it), or -1 when the table lacks the class."""
        c = canon.class_of(arch, self.rule)
        pos = int(np.searchsorted(self.classes, c))
        return pos if pos < len(self.classes) and self.classes[pos] == c else -1


def load_ground_truth(source: Any = "nb201-digits") -> GroundTruth:
    """Read an NB201 ground-truth table by class.

    ``source``: an oracle name the registry serves (default ``nb201-digits``, the shipped
    table; options after ``:`` are ignored), a table folder (as :func:`finalize` writes it),
    a loaded :class:`~oracles.table.Table` (stored or expanded) or a table oracle. Raises
    :class:`~oracles.errors.UserError` for a table that is not such a ground truth, and the
    registry's errors for an unknown or damaged one.
    """
    from ..table import load_table
    if isinstance(source, Table):
        table = source
    elif hasattr(source, "table") and isinstance(source.table, Table):
        table = source.table
    elif isinstance(source, (str, os.PathLike)) and (Path(source) / "manifest.json").is_file():
        table = load_table(source)
    elif isinstance(source, str):
        from ..registry import load_oracle
        table = getattr(load_oracle(source.split(":")[0]), "table", None)
        if table is None:
            raise UserError(f"{source} is not a table oracle; a ground truth is a table")
    else:
        raise UserError(f"load_ground_truth: cannot read a ground truth from {type(source).__name__}")
    table = expand_table(table)
    space = table.meta.get("space", {})
    if space.get("kind") != CELLS_KIND:
        raise UserError(f"table {table.name!r} is not an NB201 ground truth of our own (space kind "
                        f"{space.get('kind')!r}; want {STORED_KIND!r})")
    rule = space.get("rule", "nb201")
    rows = np.flatnonzero(np.asarray(table.columns["representative"]) == 1)   # increasing class id
    f = len(table.fidelities) - 1
    dataset = table.meta.get("dataset")
    return GroundTruth(
        name=table.name, rule=rule, classes=np.asarray(table.columns["class"])[rows],
        cells=canon.all_archs()[np.asarray(table.columns["cell"])[rows]], seeds=tuple(table.seeds),
        metrics=tuple(table.metrics), values=np.asarray(table.values[rows, :, f, :], dtype=np.float64),
        params=np.asarray(table.columns["params"])[rows].astype(np.int64),
        class_size=np.asarray(table.columns["class_size"])[rows].astype(np.int64),
        total_classes=canon.num_classes(rule),
        data_record=dataset.get("supernet_record") if isinstance(dataset, dict) else None, meta=dict(table.meta))


if __name__ == "__main__":  # pragma: no cover - the CLI is `nas-harness collect nb201`
    sys.exit("use: nas-harness collect nb201 --help")
