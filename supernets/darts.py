"""Networks of the DARTS space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019, §2.1-§2.2 and §3.1; the space: :mod:`oracles.darts_space`).

Operations (§3.1, "ReLU-conv-BN order for convolutional operations, and each separable
convolution is always applied twice"): ``sep_conv_KxK`` is two (ReLU, depthwise KxK conv,
pointwise 1x1 conv, BN) blocks, the first carrying the stride; ``dil_conv_KxK`` is one such
block with dilation 2; ``max_pool_3x3`` / ``avg_pool_3x3`` (padding 1, average over the
valid pixels only); ``skip_connect`` is the identity at stride 1 and a *factorized
reduction* at stride 2 (ReLU, two 1x1 stride-2 convolutions, the second on the input shifted
by one pixel, concatenated, BN); ``none`` multiplies by zero (strided like the others).
Edges out of a reduction cell's inputs have stride 2; every other edge stride 1.

Cell (§2.1): its two inputs are preprocessed to ``C`` channels (a ReLU-1x1 conv-BN, or a
factorized reduction of the cell-two-back's output when the previous cell reduced), each of
the 4 intermediate nodes sums its two edges, and the output concatenates the 4 nodes
(``4C`` channels).

Skeleton (§3.1, DARTS's CIFAR networks): a stem (3x3 conv to ``3C`` channels, BN), ``layers``
cells, the cells at ``layers // 3`` and ``2 * layers // 3`` being reduction cells that
halve the resolution and double ``C`` (DARTS's indices, so 8 cells reduce at 2 and 5 and 5
cells at 1 and 3), global average pooling, a linear classifier. ``in_channels`` and
``num_classes`` come from the data (1 and 10 for digits and MNIST, 3 and 10 for CIFAR-10).
No auxiliary head. Odd resolutions are allowed: every stride-2 operation gives
``ceil(H / 2)`` (the factorized reduction zero-pads its shifted half when ``H`` is odd),
so 28x28 MNIST goes 28 -> 14 -> 7 and 8x8 digits 8 -> 4 -> 2.

* :func:`build_network` / :class:`DartsNetwork`: the stand-alone network of one
  architecture (DARTS's evaluation network: affine batch norm, pools without batch norm,
  optional drop-path, the "path dropout" of DARTS's evaluation runs).
* :class:`DartsSupernet`: every operation on each of the 14 possible edges of both cells
  (DARTS's search network). ``forward(x, arch)`` computes one path (only the architecture's
  8 edges per cell, each with its one operation: single-path training, Guo et al., "Single
  Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020);
  ``forward_weighted(x, alphas_normal, alphas_reduce)`` the mixed operation of every edge
  (DARTS eq. 2: ``softmax(alpha)``-weighted sum of all operations; every node sums all its
  incoming edges). ``partial_channels=K`` is PC-DARTS (Xu et al., "PC-DARTS: Partial
  Channel Connections for Memory-Efficient Architecture Search", ICLR 2020, §3.2-3.3):
  only ``C / K`` channels go through the mixed operation, the rest bypass it (max-pooled
  2x2 on stride-2 edges), then the channels are shuffled in ``K`` groups; the optional
  ``betas`` are its edge normalisation (a softmax over each node's incoming edges).
  :meth:`DartsSupernet.extract` copies a path's weights into a stand-alone network.

Batch norm in the supernet. As in DARTS's search network (its public code; the paper does
not discuss it), the batch norms inside the cells (operations and preprocessing) have no
affine parameters (``affine=False``), so that an operation's scale in the mixture is set by
alpha alone, not also by a learnable batch-norm scale; the stem's batch norm keeps them. Pools are followed by
a non-affine batch norm in the supernet, as DARTS's mixed operation does, so that their
outputs are on the scale of the normalised convolutions. ``track_running_stats`` (default
True, as DARTS) may be turned off so that every forward pass normalises with the batch's
own statistics (the NAS-Bench-201 search setting), which single-path evaluation otherwise
gets by recalibrating the statistics of the chosen path. Both are constructor options.

CPU cost, measured with :func:`cpu_seconds_per_step` (``time.process_time`` of one forward
and backward with cross-entropy, batch of 64 scikit-learn digits (8x8, one channel), ``C=8``,
5 cells, one torch thread, mean of 10 steps after 2 warm-up; single path: a different random
path per step). On the development machine, a 2-core VM shared with other jobs (load
average 6.8 and 15.7 during the two measurements, which inflates CPU time too):

======================================  =========  ===========
mode                                    8 ops      7 ops
======================================  =========  ===========
single path (``forward(x, arch)``)      0.12-0.17  0.15-0.18 s
all operations (``forward_weighted``)   1.41-1.80  1.56-1.66 s
PC-DARTS, ``partial_channels=4``        0.87-1.17  0.87-1.05 s
stand-alone network (``build_network``) 0.13-0.19  0.16-0.19 s
======================================  =========  ===========

The all-operations step costs about 10x the single path (every one of the 14 edges of a
cell computes every operation, against 8 edges with one each); partial channels save less
than their factor 4 at this width, where per-operation overhead dominates. The supernet
holds 393,778 parameters (the same with or without ``none``, which has none), a stand-alone
network about 50,000.

Uniform single-path training is slow in this space at CPU scale (measured once, not tuned:
digits, 1,200 training and 597 held-out images, standardised, ``C=8``, 5 cells, 7
operations, batch 64, SGD momentum 0.9, weight decay 3e-4, cosine schedule, no running
statistics; accuracy of 5 fixed random paths on the held-out images): after 12 epochs (216
steps, lr 0.025) the paths score 19-34 %, and 6 epochs at lr 0.1 give 15-23 %, while the same
supernet trained on one fixed path reaches 95 % after one epoch and, trained on two paths
alternately drawn, both reach 95 % in 3 epochs while the other three stay at 8-18 %; a
stand-alone network reaches 97-98.5 % after 4 epochs (lr 0.025 or 0.1). The weights are
shared correctly (the paths learn); what a path learns transfers little to the ~10^18
others, so a DARTS supernet on digits needs far more steps (or a wider ``C``) than the
NB201 presets before its answers mean anything.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from oracles.darts_space import DARTS_OPS, EDGE_INDEX, EDGES, N_EDGES, N_INPUTS, N_NODES, OPS, DartsArch, \
    DartsSpace

STEM_MULTIPLIER = 3     #: DARTS's stem width, in units of C
MULTIPLIER = N_NODES    #: a cell's output width, in units of its C (4 concatenated nodes)
POOLS = ("max_pool_3x3", "avg_pool_3x3")


# --- operations -----------------------------------------------------------------------------
def _bn(C: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(C, affine=affine, track_running_stats=track)


class ReLUConvBN(nn.Module):
    """ReLU, KxK convolution (no bias), batch norm."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine=True, track=True):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=False),
                                _bn(C_out, affine, track))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """ReLU, depthwise KxK convolution (stride, dilation), pointwise 1x1, batch norm."""

    def __init__(self, C_in, C_out, kernel, stride, padding, dilation, affine=True, track=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            _bn(C_out, affine, track))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two depthwise-separable blocks (DARTS §3.1: "applied twice"), the first strided."""

    def __init__(self, C_in, C_out, kernel, stride, padding, affine=True, track=True):
        super().__init__()
        self.op = nn.Sequential(DilConv(C_in, C_in, kernel, stride, padding, 1, affine, track),
                                DilConv(C_in, C_out, kernel, 1, padding, 1, affine, track))

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    """The ``none`` operation: zeros of the (strided) output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing alternate pixels: ReLU, two 1x1 stride-2
    convolutions (on the input and on the input shifted by one pixel), concatenated, BN."""

    def __init__(self, C_in, C_out, affine=True, track=True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(C_out, affine, track)

    def forward(self, x):
        x = self.relu(x)
        a = self.conv_1(x)
        b = self.conv_2(x[:, :, 1:, 1:])
        if b.shape[-2:] != a.shape[-2:]:
            # odd resolution: the shifted half is one pixel short; zero-pad it to ceil(H / 2)
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


def make_op(name: str, C: int, stride: int, affine: bool = True, pool_bn: bool = False,
            track: bool = True) -> nn.Module:
    """Operation ``name`` (one of :data:`~oracles.darts_space.DARTS_OPS`) on ``C`` channels.

    ``affine``/``track``: the batch norms' affine parameters and running statistics;
    ``pool_bn``: a pool is followed by a non-affine-unless-``affine`` batch norm (DARTS's
    search network does this for every pool)."""
    if name == "none":
        return Zero(stride)
    if name in POOLS:
        pool = (nn.MaxPool2d(3, stride=stride, padding=1) if name == "max_pool_3x3"
                else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
        return nn.Sequential(pool, _bn(C, affine, track)) if pool_bn else pool
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine, track)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = 3 if name == "sep_conv_3x3" else 5
        return SepConv(C, C, k, stride, k // 2, affine, track)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = 3 if name == "dil_conv_3x3" else 5
        return DilConv(C, C, k, stride, k - 1, 2, affine, track)   # dilation 2: padding k - 1
    raise ValueError(f"unknown DARTS operation {name!r}; choose from {', '.join(DARTS_OPS)}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``drop_prob``, rescaling the rest."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


# --- cells ----------------------------------------------------------------------------------
class _Preprocess(nn.Module):
    """The two input adapters every cell has (shared layout of both kinds of cell)."""

    def __init__(self, C_pp, C_p, C, reduction_prev, affine, track):
        super().__init__()
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine, track) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine, track))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine, track)


class Cell(_Preprocess):
    """A stand-alone cell: the architecture's 8 edges (``edges[k]`` is genotype edge ``k``)."""

    def __init__(self, edges: Sequence[tuple[str, int]], C_pp, C_p, C, reduction, reduction_prev,
                 affine=True, pool_bn=False, track=True):
        super().__init__(C_pp, C_p, C, reduction_prev, affine, track)
        self.reduction = reduction
        self.inputs = tuple(i for _, i in edges)
        self.edges = nn.ModuleList(
            make_op(op, C, 2 if reduction and i < N_INPUTS else 1, affine, pool_bn, track) for op, i in edges)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n in range(N_NODES):
            h = 0
            for k in (2 * n, 2 * n + 1):
                op = self.edges[k]
                y = op(states[self.inputs[k]])
                if drop_prob > 0 and self.training and not isinstance(op, (Identity, Zero)):
                    y = drop_path(y, drop_prob)
                h = h + y
            states.append(h)
        return torch.cat(states[N_INPUTS:], dim=1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedOp(nn.Module):
    """Every operation of one edge; with ``partial > 1`` on ``C / partial`` channels only
    (PC-DARTS), the rest bypassing them, then a channel shuffle."""

    def __init__(self, ops: Sequence[str], C: int, stride: int, affine: bool, track: bool, partial: int = 1):
        super().__init__()
        self.partial = partial
        self.ops = nn.ModuleList(make_op(o, C // partial, stride, affine, True, track) for o in ops)
        # ceil_mode: the bypass keeps ceil(H / 2) like the strided operations on odd sizes
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if partial > 1 and stride == 2 else None

    def _combine(self, x, compute):
        if self.partial == 1:
            return compute(x)
        c = x.shape[1] // self.partial
        y = compute(x[:, :c])
        rest = x[:, c:]
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest)
        return channel_shuffle(torch.cat([y, rest], dim=1), self.partial)

    def forward_one(self, x, k: int):
        return self._combine(x, self.ops[k])

    def forward_weighted(self, x, w: torch.Tensor, hard: int | None = None):
        """``sum_k w[k] * op_k(x)``; with ``hard``, only ``w[hard] * op_hard(x)`` is computed
        and the other entries of ``w`` are added as scalars (GDAS, see
        :meth:`DartsSupernet.forward_weighted`)."""
        if hard is None:
            return self._combine(x, lambda z: sum(w[k] * op(z) for k, op in enumerate(self.ops)))
        rest = w.sum() - w[hard]
        return self._combine(x, lambda z: w[hard] * self.ops[hard](z) + rest)


class SuperCell(_Preprocess):
    """A supernet cell: a :class:`MixedOp` on each of the 14 possible edges."""

    def __init__(self, ops, C_pp, C_p, C, reduction, reduction_prev, affine, track, partial):
        super().__init__(C_pp, C_p, C, reduction_prev, affine, track)
        self.reduction = reduction
        self.edges = nn.ModuleList(
            MixedOp(ops, C, 2 if reduction and i < N_INPUTS else 1, affine, track, partial) for _, i in EDGES)

    def forward_path(self, s0, s1, path: Sequence[tuple[int, int, int]]):
        """``path``: per genotype edge ``(input, edge index, op index)``, two per node."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n in range(N_NODES):
            h = 0
            for i, e, k in path[2 * n: 2 * n + 2]:
                h = h + self.edges[e].forward_one(states[i], k)
            states.append(h)
        return torch.cat(states[N_INPUTS:], dim=1)

    def forward_weighted(self, s0, s1, weights: torch.Tensor, edge_weights: torch.Tensor | None,
                         hard: Sequence[int] | None = None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for j in range(N_INPUTS, N_INPUTS + N_NODES):
            h = 0
            for i in range(j):
                e = EDGE_INDEX[(j, i)]
                y = self.edges[e].forward_weighted(states[i], weights[e], None if hard is None else hard[e])
                h = h + (y if edge_weights is None else edge_weights[e] * y)
            states.append(h)
        return torch.cat(states[N_INPUTS:], dim=1)


# --- skeleton -------------------------------------------------------------------------------
def reduction_layers(layers: int) -> tuple[int, int]:
    """The indices of the reduction cells: DARTS's ``layers // 3`` and ``2 * layers // 3``."""
    return layers // 3, 2 * layers // 3


def _check_sizes(C: int, layers: int, in_channels: int, num_classes: int) -> None:
    if C < 1 or C % 2 or layers < 1 or in_channels < 1 or num_classes < 1:
        raise ValueError(f"DARTS network needs an even C >= 2 and layers, in_channels, num_classes >= 1; "
                         f"got C={C}, layers={layers}, in_channels={in_channels}, num_classes={num_classes}")


class _Skeleton(nn.Module):
    """Stem, cells (built by ``make_cell``), global pooling and classifier."""

    def __init__(self, C, layers, in_channels, num_classes, make_cell):
        super().__init__()
        _check_sizes(C, layers, in_channels, num_classes)
        self.C, self.layers = C, layers
        C_curr = STEM_MULTIPLIER * C
        # the stem's batch norm is affine in DARTS's search and evaluation networks alike
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        reduction_prev = False
        cells = []
        reductions = reduction_layers(layers)
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                C_curr *= 2
            cells.append(make_cell(C_pp, C_p, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, MULTIPLIER * C_curr
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def _head(self, s1):
        return self.classifier(self.global_pooling(s1).flatten(1))


class DartsNetwork(_Skeleton):
    """The stand-alone network of one architecture (module docstring).

    Parameters
    ----------
    arch: a :class:`~oracles.darts_space.DartsArch` (or DARTS ``Genotype``) whose operations
        are among :data:`~oracles.darts_space.DARTS_OPS`.
    C: the first cells' width (DARTS: 16 in search, 36 in CIFAR-10 evaluation).
    layers: number of cells (DARTS: 8 in search, 20 in evaluation).
    in_channels, num_classes: from the data.
    affine: affine batch norms in the cells (True, DARTS's evaluation network; False to
        match a supernet's sub-network, see :meth:`DartsSupernet.extract`).
    pool_bn: a batch norm after each pool (False, as DARTS's evaluation network; True as in
        its search network).
    track_running_stats: the batch norms keep running statistics (True, PyTorch's and
        DARTS's default).
    drop_path_prob: probability of dropping each non-identity edge per sample in training
        (DARTS's evaluation used 0.2 on CIFAR-10; default 0: none). May be changed between
        epochs (DARTS raises it linearly).
    """

    def __init__(self, arch, C: int, layers: int, in_channels: int, num_classes: int, affine: bool = True,
                 pool_bn: bool = False, track_running_stats: bool = True, drop_path_prob: float = 0.0):
        self.arch = DartsSpace(ops=DARTS_OPS).check(arch)
        self.drop_path_prob = float(drop_path_prob)
        a = self.arch

        def make_cell(C_pp, C_p, C_curr, reduction, reduction_prev):
            return Cell(a.reduce if reduction else a.normal, C_pp, C_p, C_curr, reduction, reduction_prev,
                        affine, pool_bn, track_running_stats)

        super().__init__(C, layers, in_channels, num_classes, make_cell)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return self._head(s1)


def build_network(arch, C: int, layers: int, in_channels: int, num_classes: int, **options) -> DartsNetwork:
    """The stand-alone network of ``arch`` (see :class:`DartsNetwork` for the options)."""
    return DartsNetwork(arch, C, layers, in_channels, num_classes, **options)


class DartsSupernet(_Skeleton):
    """Every operation on every edge of both cells (module docstring).

    Parameters
    ----------
    C, layers, in_channels, num_classes: as :class:`DartsNetwork` (DARTS's search network:
        C=16, 8 cells).
    ops: the operations on each edge, the columns of the alphas (default
        :data:`~oracles.darts_space.DARTS_OPS`, DARTS's 8 with ``none``).
    affine: affine batch norms inside the cells (default False, as DARTS's search network).
    track_running_stats: batch norms keep running statistics (default True, as DARTS).
    partial_channels: PC-DARTS's K (1: all channels through every mixed operation, DARTS;
        PC-DARTS uses 4). ``C`` must be divisible by it.

    ``space``: the discrete space of this supernet's paths for search algorithms, the
    supernet's operations without ``none`` (DARTS's derived cells never hold it);
    :meth:`forward` also accepts architectures with ``none`` when the supernet has it.
    """

    def __init__(self, C: int, layers: int, in_channels: int, num_classes: int, ops: Sequence[str] = DARTS_OPS,
                 affine: bool = False, track_running_stats: bool = True, partial_channels: int = 1):
        self.ops = tuple(ops)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.partial = int(partial_channels)
        if self.partial < 1 or C % self.partial or (C // self.partial) % 2:
            raise ValueError(f"partial_channels={partial_channels} must divide C={C} into even parts")
        paths = DartsSpace(ops=self.ops)           # validates the operations
        self._paths = paths
        self.space = DartsSpace(ops=[o for o in self.ops if o != "none"]) if paths.has_none else paths
        self._op_index = {o: k for k, o in enumerate(self.ops)}

        def make_cell(C_pp, C_p, C_curr, reduction, reduction_prev):
            return SuperCell(self.ops, C_pp, C_p, C_curr, reduction, reduction_prev, self.affine,
                             self.track_running_stats, self.partial)

        super().__init__(C, layers, in_channels, num_classes, make_cell)
        self.in_channels, self.num_classes = in_channels, num_classes

    def path(self, arch) -> dict[str, list[tuple[int, int, int]]]:
        """Per cell kind, ``(input, edge index, op index)`` of each genotype edge of ``arch``."""
        a = self._paths.check(arch)
        return {kind: [(i, EDGE_INDEX[(N_INPUTS + k // 2, i)], self._op_index[op])
                       for k, (op, i) in enumerate(a.cell(kind))] for kind in ("normal", "reduce")}

    def forward(self, x, arch):
        """Logits of the sub-network ``arch``: only its edges and operations are computed."""
        p = self.path(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell.forward_path(s0, s1, p["reduce" if cell.reduction else "normal"])
        return self._head(s1)

    def forward_weighted(self, x, alphas_normal, alphas_reduce, betas_normal=None, betas_reduce=None,
                         softmax: bool = True, hard_normal: Sequence[int] | None = None,
                         hard_reduce: Sequence[int] | None = None):
        """Logits of the all-operations network (DARTS eq. 2).

        ``alphas_*``: ``(14, len(ops))`` tensors, rows in
        :data:`~oracles.darts_space.EDGES` order; with ``softmax`` (default) each row goes
        through a softmax (DARTS), otherwise the rows are the mixing weights as given.
        ``betas_*``: optional ``(14,)`` PC-DARTS edge normalisation: a softmax over each
        node's incoming edges scales them (None: every edge weight 1, DARTS).

        ``hard_*`` (14 operation indices, one per edge, both or neither): GDAS's forward (Dong
        & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019,
        §3.2): on edge ``e`` only operation ``hard[e]`` is computed, times its weight, and the
        row's other weights are added as scalars; with ``softmax=False`` and weights
        ``one_hot(hard) - p.detach() + p`` the value is the hard choice's while every entry of
        ``p`` gets a gradient. (Every edge of a node is summed, as in GDAS's search.)"""
        if (hard_normal is None) != (hard_reduce is None):
            raise ValueError("give hard_normal and hard_reduce together")
        hard = {}
        for kind, h in (("normal", hard_normal), ("reduce", hard_reduce)):
            if h is not None:
                h = [int(k) for k in h]
                if len(h) != N_EDGES or not all(0 <= k < len(self.ops) for k in h):
                    raise ValueError(f"hard_{kind} must be {N_EDGES} operation indices in 0..{len(self.ops) - 1}")
            hard[kind] = h
        w = {}
        for kind, a, b in (("normal", alphas_normal, betas_normal), ("reduce", alphas_reduce, betas_reduce)):
            if tuple(a.shape) != (N_EDGES, len(self.ops)):
                raise ValueError(f"alphas_{kind} must have shape ({N_EDGES}, {len(self.ops)}), got {tuple(a.shape)}")
            edge_w = None
            if b is not None:
                if tuple(b.shape) != (N_EDGES,):
                    raise ValueError(f"betas_{kind} must have shape ({N_EDGES},), got {tuple(b.shape)}")
                parts, start = [], 0
                for j in range(N_INPUTS, N_INPUTS + N_NODES):
                    parts.append(F.softmax(b[start:start + j], dim=-1))
                    start += j
                edge_w = torch.cat(parts)
            w[kind] = (F.softmax(a, dim=-1) if softmax else a, edge_w)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            weights, edge_w = w[kind]
            s0, s1 = s1, cell.forward_weighted(s0, s1, weights, edge_w, hard[kind])
        return self._head(s1)

    def extract(self, arch) -> DartsNetwork:
        """A stand-alone network of ``arch`` holding copies of this supernet's weights for
        that path (non-affine batch norms, pools with batch norm, as in the supernet); its
        output equals :meth:`forward` with ``arch``. Not for ``partial_channels > 1``, whose
        paths are not stand-alone DARTS networks."""
        if self.partial > 1:
            raise ValueError("extract: a PC-DARTS path (partial_channels > 1) is not a stand-alone DARTS network; "
                             "score it with forward(x, arch), as the supernet oracle does")
        p = self.path(arch)
        net = DartsNetwork(self._paths.check(arch), self.C, self.layers, self.in_channels, self.num_classes,
                           affine=self.affine, pool_bn=True, track_running_stats=self.track_running_stats)
        net.stem.load_state_dict(self.stem.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        for cell, sup in zip(net.cells, self.cells):
            cell.preprocess0.load_state_dict(sup.preprocess0.state_dict())
            cell.preprocess1.load_state_dict(sup.preprocess1.state_dict())
            for k, (_, e, o) in enumerate(p["reduce" if sup.reduction else "normal"]):
                cell.edges[k].load_state_dict(sup.edges[e].ops[o].state_dict())
        return net.to(next(self.parameters()).device)

    def subnet(self, arch) -> DartsNetwork:
        """The same as :meth:`extract` (the name :class:`supernets.nb201.NB201Supernet` uses)."""
        return self.extract(arch)

    def alphas_shape(self) -> tuple[int, int]:
        return N_EDGES, len(self.ops)

    def config(self) -> dict:
        """The constructor arguments (keys as :meth:`supernets.nb201.NB201Supernet.config`
        where they mean the same; ``layers`` is the number of cells)."""
        return {"C": self.C, "layers": self.layers, "in_channels": self.in_channels,
                "num_classes": self.num_classes, "ops": list(self.ops), "bn_affine": self.affine,
                "bn_track_running_stats": self.track_running_stats, "partial_channels": self.partial}


def cpu_seconds_per_step(model: nn.Module, step, batch: torch.Tensor, target: torch.Tensor,
                         repeats: int = 10, warmup: int = 2) -> float:
    """Mean CPU time (``time.process_time``, all threads of this process) of one forward and
    backward ``loss = cross_entropy(step(model, batch), target)``, after ``warmup`` steps."""
    def once():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(step(model, batch), target).backward()

    for _ in range(warmup):
        once()
    t0 = time.process_time()
    for _ in range(repeats):
        once()
    return (time.process_time() - t0) / repeats


__all__ = ["DartsNetwork", "DartsSupernet", "build_network", "make_op", "MixedOp", "Cell", "SuperCell",
           "FactorizedReduce", "SepConv", "DilConv", "ReLUConvBN", "Zero", "Identity", "channel_shuffle",
           "reduction_layers", "cpu_seconds_per_step", "OPS", "DARTS_OPS", "DartsArch"]
