"""The stand-alone number of DARTS-space search results: each run's final architecture trained
from scratch (``nas-harness supernet retrain FOLDER``).

A DARTS-space run has no ground truth to look its cells up in. DARTS's own protocol gives the
searched cell its number by training a larger network of it from scratch (Liu, Simonyan &
Yang, "DARTS: Differentiable Architecture Search", ICLR 2019, §3.1.2); this module does that,
with :func:`supernets.darts.build_network`, for every finished run of a results folder of
either kind:

* a one-shot run in the DARTS space (``--algorithm darts:space=darts``, GDAS, RSPS, ENAS,
  DDAS; :mod:`harness.one_shot`), whose records carry NaN for the derived cells: its final
  architecture is the last epoch's derived cell, trained on its method's own data split;
* a query-based run (CADAM ``cadam:preset=darts`` / ``darts-cpu``, random search, ...) on a
  DARTS-space supernet oracle (``supernet/NAME`` of ``nas-harness supernet train darts``,
  DARTS or PC-DARTS; :mod:`supernets.oracle`), as in Mills, "On the Application of Continuous
  Deterministic Reinforcement Learning in Neural Architecture Search" (MSc thesis, 2020),
  §4.2.2 and §4.4.3: its final architecture is the record with the best search metric (the
  supernet's validation accuracy on ``search_valid``), ties to the earliest record
  (:func:`final_record`). The thesis picks its final cells by the supernet's *test* accuracy
  (§4.2.3); here the choice is by validation only, since an algorithm never sees a test
  metric. The data split is the supernet's own (the dataset and split seed of its
  configuration, :func:`supernet_split`), so the stand-alone network trains on the part the
  supernet trained on and is scored on the parts the oracle answered from. The supernet must
  still be in the data directory, and be the one the runs queried (same oracle checksum).

Runs on other oracles (NB201 tables, NB201-space supernets) and NB201-space one-shot runs are
passed over. The numbers are written beside the runs (``FOLDER/retrained.json``; the run
files are never modified), and as reference results of the folder (``references.json``,
:func:`harness.summary.write_references`: one per algorithm cell, recipe and seed), which
``nas-harness report`` prints beside the runs and the figures draw.

The recipe (:class:`RetrainRecipe`, presets :data:`RETRAIN_PRESETS`). DARTS §3.1.2 (CIFAR-10
evaluation): 20 cells, initial width C = 36, 600 epochs, batch 96, SGD with learning rate
0.025 annealed to zero by a cosine schedule, momentum 0.9, weight decay 3e-4, gradient norm
clipped at 5 (the search's settings, §3.1.1, which §3.1.2 keeps), path dropout 0.2, cutout,
auxiliary towers weighted 0.4. The ``paper`` preset is that recipe without cutout and the
auxiliary towers (the stand-alone builder has neither). The ``cpu`` preset, the default, is the
recipe scaled to scikit-learn's digits on one CPU core:

* C = 16 and 8 cells (DARTS's search network, §3.1.1, instead of the evaluation network's
  36 and 20): on 8x8 images the two reductions leave 2x2 maps, and a 20-cell network of
  36 channels would cost some 20 times more per step for 1,078 training images;
* 30 epochs instead of 600 (17 steps an epoch at batch 64: 510 steps; a stand-alone network
  of C = 8 reaches 97-98.5 % validation accuracy on digits within 4 epochs, measured in
  :mod:`supernets.darts`'s docstring, so 30 epochs train it to convergence);
* batch 64 instead of 96 (the search's batch; 96 would leave 12 steps an epoch);
* path dropout 0.2, raised linearly from 0 over the epochs (``drop_path_prob * epoch /
  epochs``, as DARTS's evaluation runs raise it), kept;
* no cutout: DARTS's 16-pixel cutout on 8x8 images erases the whole image; no auxiliary
  tower (not built by :func:`supernets.darts.build_network`; at 2/3 of the depth a digits
  map is 2x2);
* everything else as DARTS: SGD lr 0.025 cosine to 0, momentum 0.9, weight decay 3e-4,
  gradient clipping 5, affine batch norms with running statistics, no batch norm after pools.

Data: the run's split (a one-shot run's method's ``dataset`` and ``split_seed``, a query-based
run's supernet's; :mod:`supernets.data`): trained on ``supernet_train``, then scored once,
after the last epoch, on ``search_valid`` (validation) and ``test`` (evaluation mode, running
statistics). The last epoch's numbers are reported, not the best epoch's, so the test part
selects nothing.

Determinism and identity. A training is keyed by the architecture's identity (its canonical
genotype string), the recipe, the data split and the training seed (:func:`training_key`):
runs that derived the same cell share one training, and a finished training is never redone
(running the command again skips it; ``--seed`` adds another seed). Everything random
(initialisation, shuffles, path dropout) comes from the seed on the CPU; on one machine the
same key gives the same numbers. ``retrained.json`` is rewritten atomically after every
training, so an interrupted command loses at most the training in progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from oracles.errors import UserError

FORMAT = "nas-harness-retrain/1"
FILENAME = "retrained.json"


@dataclass(frozen=True)
class RetrainRecipe:
    """How a DARTS-space architecture is trained from scratch (module doc: sources and scaling).

    Parameters
    ----------
    C: the first cells' width (DARTS §3.1.2: 36; ``cpu`` preset: 16).
    layers: number of cells, reductions at 1/3 and 2/3 (DARTS: 20; ``cpu``: 8).
    epochs: passes over the training part, also the cosine schedule's length (DARTS: 600;
        ``cpu``: 30).
    batch_size: DARTS: 96; ``cpu``: 64.
    lr, lr_min: SGD's initial learning rate and the cosine schedule's floor (DARTS: 0.025, 0).
    momentum, weight_decay, grad_clip: DARTS: 0.9, 3e-4, 5.
    drop_path_prob: path dropout's final probability, raised linearly over the epochs
        (DARTS: 0.2).
    max_train: train on the first ``max_train`` training images only (tests); None: all.
    """

    C: int = 16
    layers: int = 8
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    drop_path_prob: float = 0.2
    max_train: int | None = None

    def __post_init__(self):
        for key in ("C", "layers", "epochs", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.C % 2:
            raise ValueError(f"C must be even (the factorized reduction halves it), got {self.C}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr and self.momentum >= 0 and self.weight_decay >= 0
                and self.grad_clip > 0 and 0 <= self.drop_path_prob < 1):
            raise ValueError("need lr > 0, 0 <= lr_min <= lr, momentum >= 0, weight_decay >= 0, grad_clip > 0, "
                             "0 <= drop_path_prob < 1")
        if self.max_train is not None and (not isinstance(self.max_train, int) or self.max_train < 1):
            raise ValueError(f"max_train must be a positive integer or None, got {self.max_train!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: named recipes: ``cpu`` (default) DARTS §3.1.2 scaled to digits on a CPU; ``paper`` DARTS
#: §3.1.2's CIFAR-10 recipe without cutout and auxiliary towers (module doc)
RETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {"C": 36, "layers": 20, "epochs": 600, "batch_size": 96},
}


def preset_recipe(preset: str = "cpu", **overrides) -> RetrainRecipe:
    """The recipe of ``preset`` with ``overrides`` (None values ignored); raises UserError."""
    if preset not in RETRAIN_PRESETS:
        raise UserError(f"unknown retraining preset {preset!r}; choose from {', '.join(RETRAIN_PRESETS)}")
    values = {**RETRAIN_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return RetrainRecipe(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"retraining recipe: {exc}") from None


def training_key(identity: str, recipe: RetrainRecipe, data_record: dict[str, Any], seed: int) -> str:
    """What names one training: SHA-256 (16 hex) of the architecture's identity, the recipe,
    the data split (dataset, split seed, fingerprint) and the training seed."""
    blob = json.dumps({"arch": identity, "recipe": recipe.to_dict(), "seed": int(seed),
                       "data": {k: data_record.get(k) for k in ("dataset", "split_seed", "fingerprint")}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_from_scratch(arch, recipe: RetrainRecipe, data, seed: int = 0, device: str = "cpu",
                       on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` (a :class:`~oracles.darts_space.DartsArch` or genotype) from scratch with
    ``recipe`` on ``data`` (:class:`supernets.data.SupernetData`): its ``supernet_train`` part,
    then validation and test accuracy and mean cross-entropy after the last epoch.

    ``seed`` fixes the initialisation, the shuffles and the path dropout (torch's global
    generator is forked, so the caller's is left as it was). ``on_epoch(epoch, stats)`` is
    called after each epoch. Returns the numbers (accuracies as fractions), the parameter
    count, and the CPU (``time.process_time``) and wall seconds.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from .darts import build_network
    from .training import configure_device

    dev = configure_device(device)
    t0, c0 = time.perf_counter(), time.process_time()

    def tensors(part, limit=None):
        x, y = part
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return (torch.from_numpy(np.ascontiguousarray(x)).float().to(dev),
                torch.from_numpy(np.ascontiguousarray(y)).long().to(dev))

    x_train, y_train = tensors(data.supernet_train, recipe.max_train)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build_network(arch, recipe.C, recipe.layers, data.input_shape[0], data.num_classes).to(dev)
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                              weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs, eta_min=recipe.lr_min)
        history = []
        for epoch in range(recipe.epochs):
            net.train()
            # path dropout raised linearly from 0 to drop_path_prob (module doc)
            net.drop_path_prob = recipe.drop_path_prob * epoch / recipe.epochs
            order = torch.randperm(len(y_train), generator=gen).to(dev)
            loss_sum, correct = 0.0, 0
            for b in range(math.ceil(len(y_train) / recipe.batch_size)):
                idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
                logits = net(x_train[idx])
                loss = F.cross_entropy(logits, y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
                opt.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.detach().argmax(1) == y_train[idx]).sum())
            sched.step()
            stats = {"train_loss": loss_sum / len(y_train), "train_acc": correct / len(y_train)}
            history.append(stats)
            if on_epoch is not None:
                on_epoch(epoch + 1, stats)
    net.eval()
    scores: dict[str, float] = {}
    with torch.no_grad():
        for name, part in (("valid", data.search_valid), ("test", data.test)):
            x, y = tensors(part)
            loss_sum, correct = 0.0, 0
            for s in range(0, len(y), 256):
                logits = net(x[s:s + 256])
                loss_sum += float(F.cross_entropy(logits, y[s:s + 256], reduction="sum"))
                correct += int((logits.argmax(1) == y[s:s + 256]).sum())
            scores[f"{name}_acc"] = correct / len(y)
            scores[f"{name}_loss"] = loss_sum / len(y)
    return {**scores, "train_loss": history[-1]["train_loss"], "train_acc": history[-1]["train_acc"],
            "params": int(sum(p.numel() for p in net.parameters())),
            "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0}


# --- a results folder ------------------------------------------------------------------------
def darts_runs(folder: str | Path, cifar_dir: str | None = None,
               log: Callable[[str], None] = lambda m: None) -> tuple[list[dict[str, Any]], int]:
    """The finished runs of results folder ``folder`` that have a DARTS-space final
    architecture (module doc), and how many other finished runs were passed over (NB201-space
    runs, query-based runs on other oracles than a DARTS-space supernet, runs without records).

    Per run: its cell's label, oracle and folder, its seed, ``kind`` (``one-shot`` or
    ``query``), its final architecture (``arch``, an identity of :class:`oracles.darts_space.DartsSpace`)
    and the data split it is trained and scored on (``dataset``, ``split_seed``, ``cifar_dir``):
    :func:`one_shot_run` and :func:`query_run` say which.

    Parameters
    ----------
    folder: a results folder of ``nas-harness run``.
    cifar_dir: the CIFAR-10 folder, to load a supernet oracle trained on CIFAR-10 (default
        None: the oracle spec's own ``cifar_dir`` option).
    log: receives one line per supernet oracle whose runs are passed over although it may be
        a DARTS-space one (not in the data directory, or not the supernet the runs queried).
    """
    from harness.results import ResultsStore
    store = ResultsStore(folder)
    if not store.manifest_path.is_file():
        raise UserError(f"{folder} is not a results folder (no experiment.json)")
    runs, other = [], 0
    splits: dict[str, dict[str, Any] | None] = {}    # oracle spec -> its supernet's split
    manifest = store.read_manifest()["cells"]         # iter_runs' cells carry no oracle facts
    for cell, meta, table in store.iter_runs(with_records=True):
        run = None
        if table is not None and table.num_rows > 0:
            if cell.config.get("kind") == "one-shot":
                run = one_shot_run(cell.config, table)
            else:
                if cell.oracle not in splits:
                    facts = (manifest.get(cell.key) or {}).get("oracle_facts")
                    splits[cell.oracle] = supernet_split(cell.oracle, cell.config.get("oracle_checksum"), facts,
                                                         cifar_dir, log)
                if splits[cell.oracle] is not None:
                    run = query_run(table, splits[cell.oracle])
        if run is None:
            other += 1
            continue
        runs.append({"label": cell.label, "oracle": cell.oracle, "folder": cell.folder, "seed": int(meta["seed"]),
                     **run})
    return runs, other


def one_shot_run(config: dict[str, Any], table) -> dict[str, Any] | None:
    """What a one-shot run retrains (None: not a DARTS-space one-shot run): its final
    architecture, the last epoch's ``arch_id``, on its method's own data (``dataset``,
    ``split_seed``, ``cifar_dir`` of its parameters: the split its supernet trained on)."""
    params = config.get("params") or {}
    if params.get("space") != "darts":
        return None
    return {"kind": "one-shot", "epochs": int(table.num_rows), "arch": str(table.column("arch_id")[-1].as_py()),
            "dataset": params.get("dataset", "digits"), "split_seed": int(params.get("split_seed") or 0),
            "cifar_dir": params.get("cifar_dir")}


def final_record(table) -> int | None:
    """The row of a query-based run's final architecture among its records ``table``: the
    best search metric (a supernet oracle's validation accuracy on ``search_valid``: higher is
    better), ties to the earliest row (the architecture first found), among the rows at the
    highest fidelity the run reached (a live supernet's latest epoch, as the runner's
    incumbent counts only the top fidelity; a frozen oracle has one) whose answer is a number.
    None when no row qualifies.

    Mills's thesis (§4.2.3, Table 4.4) picks CADAM's final cells by the supernet's *test*
    accuracy; this selects by validation only (an algorithm never sees a test metric, and the
    test part must stay unused by any choice), the thesis's "Val" rows."""
    search = np.asarray(table.column("search").to_numpy(zero_copy_only=False), dtype=np.float64)
    if "fidelity" in table.column_names:
        fidelity = np.asarray(table.column("fidelity").to_numpy(zero_copy_only=False), dtype=np.int64)
    else:
        fidelity = np.zeros(len(search), dtype=np.int64)
    ok = ~np.isnan(search)
    if not ok.any():
        return None
    ok &= fidelity == fidelity[ok].max()
    rows = np.flatnonzero(ok)
    return int(rows[np.argmax(search[rows])])      # argmax returns the first of equal maxima


def query_run(table, split: dict[str, Any]) -> dict[str, Any] | None:
    """What a query-based run on a DARTS-space supernet oracle retrains (None: no record with
    a number): the architecture of its :func:`final_record`, with that record's ``sample``
    (1-based query number) and ``search`` value, on the supernet's data ``split``
    (:func:`supernet_split`), so the stand-alone network trains on the part the supernet
    trained on and is scored on the parts the oracle answered from."""
    row = final_record(table)
    if row is None:
        return None
    return {"kind": "query", "queries": int(table.num_rows), "arch": str(table.column("arch_id")[row].as_py()),
            "sample": int(table.column("sample")[row].as_py()), "search": float(table.column("search")[row].as_py()),
            **split}


def supernet_split(spec: str, checksum: str | None, facts: dict[str, Any] | None, cifar_dir: str | None = None,
                   log: Callable[[str], None] = lambda m: None) -> dict[str, Any] | None:
    """The data split of the DARTS-space supernet behind oracle ``spec`` (``dataset``,
    ``split_seed``, ``cifar_dir``: :attr:`supernets.oracle.SupernetOracle.config`, the
    configuration the supernet was trained under, whose split the oracle checked against the
    checkpoint's data record), or None: not a supernet oracle, an NB201-space one, or one that
    cannot be identified (then a line to ``log`` says why).

    The supernet is loaded from the data directory (:func:`oracles.registry.load_oracle`) and
    must be the one the runs queried: its checksum must equal ``checksum``, the one the
    results folder recorded (a supernet trained further or replaced since answers otherwise,
    and its split could differ). ``facts``: the cell's oracle facts (experiment.json); a
    supernet oracle of finite size is an NB201 one and is not loaded. ``cifar_dir``: passed
    to the oracle as its ``cifar_dir`` option (default None: the spec's own). ``log``:
    receives the one line."""
    from oracles.registry import load_oracle, parse_name
    name, options = parse_name(spec)
    if name.split("/")[0] != "supernet" or (facts or {}).get("space_size") is not None:
        return None
    if cifar_dir is not None:
        options["cifar_dir"] = str(cifar_dir)
    # only its configuration is read: on the CPU whatever device the runs used (the device is
    # no part of the checksum), so runs made on a GPU are retrained on a machine without one
    options["device"] = "cpu"
    import torch
    threads = torch.get_num_threads()       # the oracle sets its own (threads=); the caller's stays
    try:
        oracle = load_oracle(name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else ""))
    except UserError as exc:
        log(f"{spec}: cannot load it to find its data split ({exc}): its runs passed over")
        return None
    finally:
        torch.set_num_threads(threads)
    cfg = oracle.config
    if cfg.space != "darts":
        return None
    if checksum is not None and oracle.checksum != checksum:
        log(f"{spec}: the supernet in the data directory is not the one these runs queried (its checksum "
            "differs: trained further or replaced since): its runs passed over")
        return None
    return {"dataset": cfg.dataset, "split_seed": int(cfg.split_seed), "cifar_dir": options.get("cifar_dir")}


def read_results(folder: str | Path) -> dict[str, Any]:
    """``FOLDER/retrained.json`` (an empty one when absent); raises UserError if damaged."""
    path = Path(folder) / FILENAME
    if not path.is_file():
        return {"format": FORMAT, "trainings": {}, "runs": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is damaged (not JSON): delete it to retrain every architecture") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("trainings"), dict):
        raise UserError(f"{path} is not a retraining file of this version: delete it to retrain")
    return data


def _write(folder: Path, data: dict[str, Any]) -> None:
    from harness.files import atomic_write_bytes
    atomic_write_bytes(folder / FILENAME,
                       lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=True).encode()))


def retrain_folder(folder: str | Path, recipe: RetrainRecipe, seed: int = 0, device: str = "cpu",
                   cifar_dir: str | None = None, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train the final architecture of every finished DARTS-space run of results folder
    ``folder`` (:func:`darts_runs`: one-shot runs and query-based runs on DARTS-space supernet
    oracles) from scratch (:func:`train_from_scratch`), each distinct (architecture, data
    split) once per recipe and seed; trainings already in ``retrained.json`` are not redone. Holds the folder's
    lock (a running ``nas-harness run`` on it makes this refuse, and the reverse). Returns the
    file's content: ``trainings`` (key -> numbers, recipe, seed, data, code version) and
    ``runs`` (every DARTS-space run with the key of its training under this recipe and seed).

    Parameters
    ----------
    recipe: the training recipe (:func:`preset_recipe`).
    seed: the training seed (default 0).
    device: where the networks train (default ``cpu``).
    cifar_dir: the CIFAR-10 folder, for runs on cifar10 (default None: each run's own, or its
        supernet oracle's ``cifar_dir`` option).
    log: receives progress lines and why runs were passed over."""
    from harness.provenance import code_version
    from harness.results import ResultsStore
    from oracles.darts_space import DARTS_OPS, DartsSpace

    from .data import load

    folder = Path(folder)
    runs, other = darts_runs(folder, cifar_dir=cifar_dir, log=log)
    if other:
        log(f"{other} run(s) neither DARTS-space one-shot runs nor query-based runs on a DARTS-space supernet "
            "oracle: passed over")
    space = DartsSpace(ops=DARTS_OPS)
    with ResultsStore(folder).session():
        data_all = read_results(folder)
        trainings = data_all["trainings"]
        splits: dict[tuple[str, int], Any] = {}
        plan: dict[str, dict[str, Any]] = {}
        for run in runs:
            split = (run["dataset"], run["split_seed"])
            if split not in splits:
                splits[split] = load(run["dataset"], run["split_seed"], cifar_dir or run["cifar_dir"])
            record = splits[split].record()
            key = training_key(run["arch"], recipe, record, seed)
            run["training"] = key
            plan.setdefault(key, {"arch": run["arch"], "split": split, "record": record})
        todo = [k for k in plan if k not in trainings]
        queries = sum(r["kind"] == "query" for r in runs)
        log(f"{len(runs)} DARTS-space run(s) ({len(runs) - queries} one-shot, {queries} query-based), "
            f"{len(plan)} distinct training(s); {len(plan) - len(todo)} done, {len(todo)} to train")
        for n, key in enumerate(todo, 1):
            item = plan[key]
            arch = space.parse(item["arch"])
            log(f"[{n}/{len(todo)}] training {key} ({recipe.epochs} epochs, C={recipe.C}, {recipe.layers} cells)")
            numbers = train_from_scratch(arch, recipe, splits[item["split"]], seed=seed, device=device)
            trainings[key] = {"arch": item["arch"], "recipe": recipe.to_dict(), "seed": int(seed),
                              "data": {k: item["record"].get(k) for k in ("dataset", "split_seed", "fingerprint")},
                              **numbers, "device": str(device), "code": code_version(),
                              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            data_all["runs"] = _merge_runs(data_all.get("runs", []), runs)
            _write(folder, data_all)
            log(f"    valid {100 * numbers['valid_acc']:.2f} %, test {100 * numbers['test_acc']:.2f} % "
                f"({numbers['cpu_s']:.0f} CPU-s)")
        data_all["runs"] = _merge_runs(data_all.get("runs", []), runs)
        _write(folder, data_all)
        _write_references(folder, runs, trainings, recipe, seed)
    return data_all


def recipe_label(recipe: RetrainRecipe) -> str:
    """``C16x8 e30``: the recipe in a few characters (tables, reference names)."""
    return f"C{recipe.C}x{recipe.layers} e{recipe.epochs}"


def _write_references(folder: Path, runs: list[dict[str, Any]], trainings: dict[str, Any],
                      recipe: RetrainRecipe, seed: int) -> None:
    """The numbers as reference results of the folder (:func:`harness.summary.write_references`),
    one per algorithm cell, recipe and seed: its runs' stand-alone validation accuracies as the
    search metric's values (the supernet oracle's is accuracy on the same ``search_valid``
    part) and their test accuracies as the report metric's, so ``nas-harness report`` and the
    figures show them beside the runs."""
    from harness.summary import reference_entry, write_references
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for run in runs:
        t = trainings.get(run.get("training"))
        if t is not None:
            groups.setdefault((run["oracle"], run["label"]), []).append((run["training"], t))
    entries = [reference_entry(oracle, f"{label} retrained ({recipe_label(recipe)}, seed {seed})",
                               [t["valid_acc"] for _, t in ts], [t["test_acc"] for _, t in ts],
                               provenance={"file": FILENAME, "recipe": recipe.to_dict(), "seed": int(seed),
                                           "trainings": [k for k, _ in ts]},
                               note=f"each run's final cell trained from scratch ({len(ts)} runs; supernets/retrain.py)")
               for (oracle, label), ts in groups.items()]
    if entries:
        write_references(folder, entries)


def _merge_runs(old: Iterable[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run list of the file: this invocation's runs and trainings, plus those of earlier
    invocations under other recipes or seeds (one entry per run and training)."""
    seen = {(r["folder"], r["seed"], r.get("training")) for r in new}
    kept = [r for r in old if (r.get("folder"), r.get("seed"), r.get("training")) not in seen]
    return sorted(kept + [dict(r) for r in new], key=lambda r: (r["folder"], r["seed"], r.get("training") or ""))


def summary_table(data: dict[str, Any]) -> str:
    """A plain-text table of ``retrained.json``'s content: per run (cell label, seed) its
    final architecture's stand-alone validation and test accuracy under each recipe and seed
    trained, then per cell and recipe the mean and standard deviation over runs."""
    trainings = data.get("trainings", {})
    rows, groups = [], {}
    for r in data.get("runs", []):
        t = trainings.get(r.get("training"))
        if t is None:
            continue
        recipe = f"{recipe_label(RetrainRecipe(**t['recipe']))} s{t['seed']}"
        rows.append((r["label"], r["seed"], recipe, 100 * t["valid_acc"], 100 * t["test_acc"], r.get("training")))
        groups.setdefault((r["label"], recipe), []).append((100 * t["valid_acc"], 100 * t["test_acc"]))
    if not rows:
        return "no DARTS-space run retrained yet"
    width = max(len(r[0]) for r in rows)
    lines = [f"{'algorithm':<{width}}  {'seed':>4}  {'recipe':<16} {'valid %':>8} {'test %':>8}  training"]
    lines += [f"{a:<{width}}  {s:>4}  {rc:<16} {v:>8.2f} {t:>8.2f}  {k}" for a, s, rc, v, t, k in rows]
    lines += ["", f"{'algorithm':<{width}}  {'runs':>4}  {'recipe':<16} {'valid %':>15} {'test %':>15}"]
    for (label, recipe), vals in groups.items():
        v, t = np.array([x[0] for x in vals]), np.array([x[1] for x in vals])
        def sd(a):
            return f"{float(a.std(ddof=1)):<5.2f}" if len(a) > 1 else f"{'-':<5}"
        lines.append(f"{label:<{width}}  {len(vals):>4}  {recipe:<16} {v.mean():>7.2f} ± {sd(v)} "
                     f"{t.mean():>7.2f} ± {sd(t)}")
    return "\n".join(lines)


__all__ = ["FORMAT", "FILENAME", "RetrainRecipe", "RETRAIN_PRESETS", "preset_recipe", "recipe_label", "training_key",
           "train_from_scratch", "darts_runs", "one_shot_run", "query_run", "final_record", "supernet_split",
           "read_results", "retrain_folder", "summary_table"]
