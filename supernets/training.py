"""Training a supernet (NB201's cell space, or DARTS's), and scoring sub-networks with
inherited weights.

Two training modes:

* ``single-path`` (default): uniform single-path training, Guo et al., "Single Path One-Shot
  Neural Architecture Search with Uniform Sampling", ECCV 2020, §3.2 (Eq. 5: every step one
  architecture drawn uniformly, here over all 15,625 NB201 cells; in the DARTS space by
  :meth:`oracles.darts_space.DartsSpace.sample`, without ``none``), the supernet behind Li &
  Talwalkar's "Random Search and Reproducibility for Neural Architecture Search" (UAI 2020,
  RSPS). Only the sampled path's live edges are computed (:func:`supernets.nb201.live_edges`),
  so only their parameters (and the skeleton's) have gradients; parameters without a gradient
  are skipped by SGD, momentum and weight decay included, so they are not updated.
* ``all-ops``: every operation of every edge, mixed with equal weights (1/5; DARTS: 1/8) (DARTS's mixed
  operation, Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019, §2.2, with
  alpha fixed at zero): the weight step of DARTS-style methods, which bring their own weights
  through :meth:`supernets.nb201.NB201Supernet.forward_weighted` (DARTS:
  :meth:`supernets.darts.DartsSupernet.forward_weighted`).

PC-DARTS supernets (``partial_channels=K > 1``, DARTS space only; Xu et al., "PC-DARTS:
Partial Channel Connections for Memory-Efficient Architecture Search", ICLR 2020): in
``single-path`` mode a path's operations see ``C / K`` channels of their input, the rest
bypass them, and no edge normalisation is used: Mills ("On the Application of Continuous
Deterministic Reinforcement Learning in Neural Architecture Search", MSc thesis 2020, §4.1.3)
trains its PC-DARTS supernet on discrete paths, where "the need for beta can be omitted". The
thesis draws a path by discretising a uniformly random ``alpha`` with DARTS's top-2 rule
(its Algorithm 2); with i.i.d. entries each node's two strongest edges are a uniform pair and
each edge's strongest operation a uniform one, which is the distribution of
:meth:`oracles.darts_space.DartsSpace.sample` that draws the paths here. In ``all-ops`` mode
the edge normalisation sits at its initial value (beta = 0: each of a node's ``j`` incoming
edges weighs ``1/j``), as alpha does.

The recipe (:class:`SupernetConfig` defaults) is NB201's search recipe (Dong & Yang,
"NAS-Bench-201", ICLR 2020, §5 / appendix, the settings its weight-sharing runs share with
DARTS §3.1.1): SGD, learning rate 0.025 decayed by a cosine schedule to 0.001 over the epochs,
momentum 0.9, weight decay 5e-4, gradient norm clipped at 5, batch 64.

Determinism: everything random during training (the model's initialisation, each epoch's
shuffle, each step's path; a DARTS path is drawn by the space's sampler from a numpy generator
seeded by the torch generator) comes from torch generators seeded from ``seed``: the same seed
on the same machine gives the same weights; on CPU bit for bit, on CUDA within cuDNN's
deterministic kernels (switched on here).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracles.nb201_space import N_EDGES, N_OPS

# the configuration is torch-free (the command line reads it without importing torch)
from .config import SupernetConfig
from .nb201 import NB201Supernet, live_edges

def build_supernet(config: SupernetConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The supernet of ``config``'s space, width and batch norm (initialised from torch's
    global generator: callers seed it)."""
    if config.space == "darts":
        from .darts import DartsSupernet
        return DartsSupernet(config.C, config.N, in_channels, num_classes, affine=config.bn_affine,
                             track_running_stats=config.bn_track, partial_channels=config.partial_channels)
    return NB201Supernet(config.C, config.N, in_channels, num_classes, bn=config.bn)


def draw_path(supernet: nn.Module, gen: torch.Generator):
    """One uniformly random path of ``supernet``: NB201, each edge's operation independently
    (:func:`sample_path`); DARTS, the space's own sampler from a numpy generator seeded by ``gen``."""
    if isinstance(supernet, NB201Supernet):
        return sample_path(gen)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return supernet.space.sample(np.random.default_rng(seed))


def forward_uniform(supernet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Every operation, equally weighted (``all-ops`` training)."""
    if isinstance(supernet, NB201Supernet):
        return supernet.forward_weighted(x, torch.full((N_EDGES, N_OPS), 1.0 / N_OPS, device=x.device))
    zeros = torch.zeros(14, len(supernet.ops), device=x.device)     # softmax(0) = uniform
    if supernet.partial > 1:
        # PC-DARTS mixes a node's incoming edges by softmax(beta) too: beta at zero, 1/j each
        betas = torch.zeros(14, device=x.device)
        return supernet.forward_weighted(x, zeros, zeros, betas, betas)
    return supernet.forward_weighted(x, zeros, zeros)


def sample_path(gen: torch.Generator) -> tuple[int, ...]:
    """One architecture drawn uniformly from the 15,625 (each edge's operation independent)."""
    return tuple(torch.randint(0, N_OPS, (N_EDGES,), generator=gen).tolist())


def configure_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            from oracles.errors import UserError
            raise UserError("--device cuda: torch sees no CUDA device here; use --device cpu")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return dev


class SupernetTrainer:
    """Trains one supernet epoch by epoch; its whole state is :meth:`state_dict`.

    Parameters
    ----------
    config: the :class:`SupernetConfig`.
    data: a :class:`supernets.data.SupernetData` (loaded from the config when None).
    device: ``cpu`` or ``cuda[:N]``.
    """

    def __init__(self, config: SupernetConfig, data=None, device: str | torch.device = "cpu"):
        if data is None:
            from .data import load
            data = load(config.dataset, config.split_seed)
        if data.dataset != config.dataset or data.split_seed != config.split_seed:
            raise ValueError(f"data {data.dataset}/split {data.split_seed} does not match the configuration's "
                             f"{config.dataset}/split {config.split_seed}")
        self.config, self.data = config, data
        self.device = configure_device(device)
        x, y = data.supernet_train
        if config.max_train is not None:
            x, y = x[:config.max_train], y[:config.max_train]
        self.x_train = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        self.y_train = torch.from_numpy(np.ascontiguousarray(y)).to(self.device)
        # the initial weights come from the seed alone, whatever ran in this process before
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = build_supernet(config, data.input_shape[0], data.num_classes)
        self.supernet = net.to(self.device)
        self.optimizer = torch.optim.SGD(self.supernet.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs,
                                                                    eta_min=config.lr_min)
        # shuffles and paths; a CPU generator whatever the device, so the path sequence of a
        # seed is the same on every device
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        #: the paths of the last epoch trained, in order (single-path mode)
        self.last_paths: list = []

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.y_train) / self.config.batch_size)

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def train_epoch(self, on_step: Callable[[], None] | None = None) -> dict[str, float]:
        """One pass over the training part; returns the epoch's statistics (mean training loss
        and accuracy of the paths trained, learning rate, wall and CPU seconds)."""
        if self.done:
            raise ValueError(f"the supernet has trained all {self.config.epochs} epochs")
        cfg, net = self.config, self.supernet
        net.train()
        t0, c0 = time.perf_counter(), time.process_time()
        order = torch.randperm(len(self.y_train), generator=self.generator).to(self.device)
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen = 0.0, 0, 0
        self.last_paths = []
        for b in range(self.steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = self.x_train[idx], self.y_train[idx]
            if cfg.mode == "single-path":
                path = draw_path(net, self.generator)
                self.last_paths.append(path)
                logits = net(x, path)
            else:
                logits = forward_uniform(net, x)
            loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)   # None, not zero: SGD skips off-path weights
            loss.backward()
            nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], cfg.grad_clip)
            self.optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            if on_step is not None:
                on_step()
        self.scheduler.step()
        self.epoch += 1
        stats = {"epoch": self.epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": lr,
                 "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
        self.history.append(stats)
        return stats

    def train(self, on_step=None, on_epoch: Callable[[dict], None] | None = None) -> None:
        """Train the remaining epochs; ``on_epoch(stats)`` after each (checkpointing)."""
        while not self.done:
            stats = self.train_epoch(on_step)
            if on_epoch is not None:
                on_epoch(stats)

    # --- state -------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """Every generator training draws from: the shuffle/path generator, and torch's global
        CPU and CUDA generators (nothing in training draws from them after initialisation;
        kept so that code run between epochs, e.g. a method's own sampling, resumes alike).
        numpy's and Python's generators are not used by training and not stored."""
        state = {"generator": self.generator.get_state(), "torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers, strings, lists and dicts only (loadable with ``weights_only=True``)."""
        return {"config": self.config.to_dict(), "data": self.data.record(), "epoch": self.epoch,
                "model": self.supernet.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": self.rng_state(),
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any], global_rng: bool = True) -> None:
        """Restore :meth:`state_dict`. ``global_rng=False`` leaves torch's global generators
        alone (an oracle training inside someone else's process must not reseed them)."""
        self.supernet.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        self.generator.set_state(rng["generator"])
        if global_rng:
            torch.set_rng_state(rng["torch_cpu"])
            if self.device.type == "cuda" and "torch_cuda" in rng:
                torch.cuda.set_rng_state_all(rng["torch_cuda"])
        self.epoch = int(state["epoch"])
        self.history = [dict(h) for h in state["history"]]


# --- scoring sub-networks ----------------------------------------------------------------
def _bn_layers(net: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(supernet: nn.Module, arch, x_calib: torch.Tensor, batch_size: int) -> None:
    """Reset every running mean and variance and re-estimate them on ``x_calib`` through
    ``arch``'s path (SPOS, Guo et al. 2020, §3.3: the statistics accumulated over random paths
    do not fit any one of them). A cumulative average over the batches, so the result does
    not depend on a momentum."""
    layers = _bn_layers(supernet)
    saved = [(m.momentum, m.training) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for s in range(0, len(x_calib), batch_size):
        supernet(x_calib[s:s + batch_size], arch)
    for m, (momentum, training) in zip(layers, saved):
        m.momentum = momentum
        m.train(training)


@dataclass(frozen=True)
class EvalSettings:
    """How sub-networks are scored.

    Parameters
    ----------
    batch_size: evaluation batch. Cells without running statistics normalise with the
        statistics of the batch they see, so the numbers depend on it; it is part of what an
        oracle's answers mean.
    calib_images: training images used to recalibrate running statistics per architecture
        (the first ones of the training part, in order, the same for every architecture);
        0: evaluate with the statistics accumulated during training.
    """

    batch_size: int = 256
    calib_images: int = 512

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def path_key(supernet: nn.Module, arch):
    """Architectures with equal keys are one path of ``supernet``: NB201, :func:`evaluation_key`;
    DARTS, the space's identity (its canonical genotype string)."""
    if isinstance(supernet, NB201Supernet):
        return evaluation_key(arch)
    return supernet.space.identity(arch)


def evaluation_key(arch: Sequence[int]) -> tuple[int, ...]:
    """NB201 architectures with equal keys compute the same function in the supernet (their
    live edges and operations agree: :func:`supernets.nb201.live_edges`); the key is itself
    such an architecture (its dropped edges set to ``none``)."""
    live = live_edges(arch)
    return tuple(int(o) if live[e] else 0 for e, o in enumerate(arch))


def evaluate_archs(supernet: nn.Module, archs: Sequence, x: np.ndarray | torch.Tensor,
                   y: np.ndarray | torch.Tensor, settings: EvalSettings = EvalSettings(),
                   x_calib: np.ndarray | torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Accuracy and mean cross-entropy of many sub-networks on ``(x, y)`` with inherited weights.

    Each distinct :func:`path_key` is evaluated once. When the supernet has batch norms
    with running statistics (always: the skeleton's) and ``settings.calib_images > 0``, they
    are recalibrated on ``x_calib`` for each architecture first; the supernet's own statistics
    are restored afterwards, so scoring never changes the supernet.

    Returns ``{"acc": float64 [n], "loss": float64 [n]}`` in the order of ``archs``.
    """
    out = evaluate_parts(supernet, archs, {"": (x, y)}, settings, x_calib)
    return {"acc": out["acc"], "loss": out["loss"]}


@torch.no_grad()
def evaluate_parts(supernet: nn.Module, archs: Sequence, parts: dict[str, tuple],
                   settings: EvalSettings = EvalSettings(),
                   x_calib: np.ndarray | torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """:func:`evaluate_archs` on several data parts at once (one recalibration per
    architecture serves them all): ``parts`` maps a prefix to ``(x, y)``; the result has
    ``PREFIX_acc`` and ``PREFIX_loss`` (``acc`` and ``loss`` for the prefix ``""``)."""
    dev = next(supernet.parameters()).device
    data = {p: (torch.as_tensor(x).to(dev), torch.as_tensor(y).to(dev)) for p, (x, y) in parts.items()}
    calib = None
    if settings.calib_images > 0 and _bn_layers(supernet):
        if x_calib is None:
            raise ValueError("recalibrating batch norm needs x_calib (training images)")
        calib = torch.as_tensor(x_calib[:settings.calib_images]).to(dev)
    was_training = supernet.training
    saved = {k: v.clone() for k, v in supernet.state_dict().items() if "running_" in k or "num_batches" in k}
    supernet.eval()
    keys = [path_key(supernet, a) for a in archs]
    first = {}
    for k, a in zip(keys, archs):
        first.setdefault(k, a)
    results: dict[Any, dict[str, float]] = {}
    try:
        for key, arch in first.items():
            if calib is not None:
                recalibrate_bn(supernet, arch, calib, settings.batch_size)
            scores: dict[str, float] = {}
            for prefix, (xt, yt) in data.items():
                loss_sum, correct = 0.0, 0
                for s in range(0, len(yt), settings.batch_size):
                    logits = supernet(xt[s:s + settings.batch_size], arch)
                    yb = yt[s:s + settings.batch_size]
                    loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
                name = f"{prefix}_" if prefix else ""
                scores[name + "acc"] = correct / len(yt)
                scores[name + "loss"] = loss_sum / len(yt)
            results[key] = scores
    finally:
        supernet.load_state_dict(saved, strict=False)
        supernet.train(was_training)
    names = list(results[keys[0]]) if keys else [f"{p}_{m}" if p else m for p in parts for m in ("acc", "loss")]
    return {n: np.array([results[k][n] for k in keys], dtype=np.float64) for n in names}
