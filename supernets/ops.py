"""The operations of the NAS-Bench-201 cell and its skeleton's blocks (torch modules).

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020, §2.1: an edge of the cell carries one of ``none`` (zero),
``skip_connect`` (identity), ``nor_conv_1x1`` and ``nor_conv_3x3`` (ReLU-Conv-BN) or
``avg_pool_3x3`` (3x3 average pooling, stride 1); the three stages are joined by a residual
block with stride 2. Every cell operation keeps the number of channels and the resolution.

Batch norm inside the cell follows :class:`BNOptions`. Convolutions have no bias: a bias in
front of batch norm is removed by the normalisation's mean (NB201's code gives the
convolution a bias only when batch norm has no affine shift; the bias has no effect on the
output in training mode either way, so it is left out).
"""

from __future__ import annotations

import torch
import torch.nn as nn

# the batch-norm setting is configuration (torch-free, for the command line and checkpoints)
from .config import STANDALONE_BN, BNOptions

#: operation names, in oracles.nb201_space.OPS's order (index 0 is ``none``)
OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def batch_norm(channels: int, bn: BNOptions) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=bn.affine, track_running_stats=bn.track_running_stats)


class ReLUConvBN(nn.Module):
    """ReLU, convolution (no bias), batch norm: NB201's ``nor_conv_KxK``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bn: BNOptions):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            batch_norm(c_out, bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class AvgPool3x3(nn.Module):
    """3x3 average pooling, stride 1; padding not counted (NB201's ``avg_pool_3x3``)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


def make_op(name: str, channels: int, bn: BNOptions) -> nn.Module:
    """The module of operation ``name`` on ``channels`` channels. ``none`` has no module: the
    cell drops such an edge (see :mod:`supernets.nb201`)."""
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, bn)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"no module for operation {name!r} (choose from {', '.join(OP_NAMES[1:])})")


class ResidualReduction(nn.Module):
    """NB201's block between stages: ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, plus a
    shortcut of 2x2 average pooling (stride 2) and a 1x1 convolution; doubles the channels
    and halves the resolution (He et al.'s basic block, as NB201 §2.1 uses it). Its batch norms
    have affine parameters and running statistics whatever the cells use."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        full = STANDALONE_BN
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, full)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, full)
        # ceil_mode: odd resolutions (MNIST's 7x7 after one reduction) give the same size as
        # the stride-2 convolution's ceil(h / 2)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))
