"""The fixed, recorded training recipe the collectors use (torch).

A :class:`Recipe` is everything besides the architecture and the seed that decides a
network's numbers: optimiser, learning rate and schedule, epochs, batch size, weight decay.
It is stored in the collected table's metadata, and :func:`train_network` is a pure function
of (architecture, seed, recipe, dataset split): on the same hardware and library versions it
returns the same accuracies and losses bit for bit (one CPU thread, deterministic
algorithms, all randomness drawn from generators seeded by ``seed``). Only the measured
``train_time`` varies between runs.

The network is LaNAS's plain ConvNet (Wang et al., "Sample-Efficient Neural Architecture
Search by Learning Action Space", §2 and appendix 6.1):
per layer Conv(K, C, stride 1, same padding) + ReLU, then global average pooling and a
linear classifier; no batch norm, no residual connections.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .datasets import Split

METRICS = ("train_acc", "train_loss", "valid_acc", "valid_loss", "test_acc", "test_loss", "train_time")


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Parameters
    ----------
    epochs: passes over the training split.
    batch_size: mini-batch size; the last partial batch of an epoch is kept.
    lr: peak learning rate of Adam (Kingma & Ba defaults for the betas).
    weight_decay: L2 penalty added to the gradient (Adam's ``weight_decay``).
    schedule: ``"cosine"`` (per-step cosine decay from ``lr`` to 0) or ``"constant"``.
    batch_norm: insert BatchNorm2d between each convolution and its ReLU (LaNAS's layers are
        plain Conv-ReLU; batch norm is part of the recipe when used, and recorded).
    eval_batch: batch size for the final evaluation passes (does not change the numbers'
        meaning; large splits are evaluated in chunks).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_norm: bool = False
    eval_batch: int = 1024

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch < 1:
            raise ValueError("epochs, batch_size and eval_batch must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, got {self.schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        layer = "conv-batchnorm-relu" if self.batch_norm else "conv-relu"
        d.update(optimizer="adam", loss="cross-entropy", network=f"{layer} x L, global avg pool, linear",
                 init="torch default (kaiming-uniform), torch.manual_seed(seed)",
                 shuffle="numpy default_rng(seed) permutation per epoch")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: the default recipe per dataset. ``digits``: chosen so that a depth-5 network of the
#: ``digits`` preset trains in well under a second on one CPU core while separating good from
#: bad networks (see docs/convnet-digits.md for the measurements behind it). ``cifar10``:
#: LaNAS appendix 6.1 trains ConvNet-60K for 100 epochs; the paper gives nothing else, the
#: rest is the same Adam + cosine + batch-norm recipe.
DEFAULT_RECIPES: dict[str, Recipe] = {
    "digits": Recipe(epochs=5, batch_size=128, lr=0.02, weight_decay=0.0, schedule="cosine",
                     batch_norm=True),
    "cifar10": Recipe(epochs=100, batch_size=128, lr=0.001, weight_decay=0.0, schedule="cosine",
                      batch_norm=True),
}


def count_params(layers: Sequence[tuple[int, int]], in_channels: int, num_classes: int,
                 batch_norm: bool = False) -> int:
    """Trainable parameters (weights, biases, batch-norm scales and shifts) of ``layers``."""
    total, cin = 0, in_channels
    for k, c in layers:
        total += k * k * cin * c + c + (2 * c if batch_norm else 0)
        cin = c
    return total + cin * num_classes + num_classes


def count_flops(layers: Sequence[tuple[int, int]], input_shape: Sequence[int], num_classes: int) -> int:
    """Multiply-accumulates of one forward pass on one image (convs and classifier)."""
    cin, h, w = input_shape
    total = 0
    for k, c in layers:
        total += h * w * k * k * cin * c
        cin = c
    return total + cin * num_classes


def build_network(layers: Sequence[tuple[int, int]], in_channels: int, num_classes: int,
                  batch_norm: bool = False):
    import torch.nn as nn
    mods, cin = [], in_channels
    for k, c in layers:
        mods.append(nn.Conv2d(cin, c, kernel_size=k, padding=k // 2))
        if batch_norm:
            mods.append(nn.BatchNorm2d(c))
        mods.append(nn.ReLU(inplace=True))
        cin = c
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*mods)


def configure_torch(threads: int = 1) -> None:
    """One thread per worker and deterministic kernels (called once per worker process)."""
    import torch
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def train_network(layers: Sequence[tuple[int, int]], seed: int, recipe: Recipe, data: Split,
                  device: str = "cpu") -> dict[str, float]:
    """Train ``layers`` on ``data`` with ``recipe`` and ``seed``; return the metrics.

    Returns a dict with every name of :data:`METRICS` (accuracies as fractions in [0, 1],
    mean cross-entropy losses, ``train_time`` = seconds spent in the training loop) plus
    ``params`` and ``flops``.
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    torch.manual_seed(int(seed))
    net = build_network(layers, data.input_shape[0], data.num_classes, recipe.batch_norm).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    x_train = torch.from_numpy(data.x_train).to(dev)
    y_train = torch.from_numpy(data.y_train).to(dev)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    shuffle = np.random.default_rng(int(seed))
    step = 0
    net.train()
    t0 = time.perf_counter()
    for _ in range(recipe.epochs):
        order = torch.from_numpy(shuffle.permutation(n)).to(dev)
        for b in range(steps_per_epoch):
            if recipe.schedule == "cosine":
                lr = 0.5 * recipe.lr * (1.0 + math.cos(math.pi * step / total_steps))
                for group in opt.param_groups:
                    group["lr"] = lr
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    train_time = time.perf_counter() - t0

    out: dict[str, float] = {}
    net.eval()
    with torch.no_grad():
        for part, x, y in (("train", data.x_train, data.y_train), ("valid", data.x_valid, data.y_valid),
                           ("test", data.x_test, data.y_test)):
            loss_sum, correct = 0.0, 0
            for s in range(0, len(y), recipe.eval_batch):
                xb = torch.from_numpy(x[s:s + recipe.eval_batch]).to(dev)
                yb = torch.from_numpy(y[s:s + recipe.eval_batch]).to(dev)
                logits = net(xb)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
            out[f"{part}_acc"] = correct / len(y)
            out[f"{part}_loss"] = loss_sum / len(y)
    out["train_time"] = train_time
    out["params"] = float(count_params(layers, data.input_shape[0], data.num_classes, recipe.batch_norm))
    assert out["params"] == sum(p.numel() for p in net.parameters())
    out["flops"] = float(count_flops(layers, data.input_shape, data.num_classes))
    return out
