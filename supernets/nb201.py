"""The NAS-Bench-201 cell space as torch networks: stand-alone networks and the supernet.

Skeleton (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020, §2.1 and Fig. 1): a stem (3x3 convolution, batch norm), three
stages of ``N`` cells with ``C``, ``2C`` and ``4C`` channels, a residual reduction block
(:class:`supernets.ops.ResidualReduction`) between stages, then batch norm and ReLU, global
average pooling and a linear classifier. NB201's table trains ``C=16, N=5``; the cell is the
4-node, 6-edge cell of :mod:`oracles.nb201_space` (an architecture is the tuple of its six
operation indices, edges ordered 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2); node ``j`` is the sum
over ``i < j`` of ``op_ij(node i)``, node 0 is the cell's input, node 3 its output.

``none`` edges and dead nodes (the rule behind both the stand-alone network and the
supernet's single path, :func:`live_edges`):

* a ``none`` edge contributes nothing and has no module;
* a node is *alive* when some non-``none`` edge enters it from an alive node (node 0 is
  alive); a dead node is zero, and an edge leaving a dead node contributes nothing either
  (it is not computed: a convolution followed by batch norm applied to zeros would give the
  batch norm's shift, not zero);
* an edge whose target does not reach the output node through non-``none`` edges is not
  computed (it cannot change the output);
* a cell whose output node is dead outputs zeros of its input's shape.

So the network computes exactly the expression "a ``none`` edge, or an edge leaving a zero
node, contributes zero", applied exactly (any node can be zero): the exact algebra of
:mod:`oracles.nb201_canonical`, under which the 15,625 cells form 4,930 functions and 9,445
distinct networks. (The 6,466 classes of NB201's own ``to_unique_str`` rule, which only lets
node 1 be zero, refine those: 230 of the collector's 6,466 representatives carry an operation
on a dead node that this builder drops, so they are the same network as another class's.)
Two architectures that differ only in dropped edges are the same network with the same
parameters.

The supernet (:class:`NB201Supernet`) holds every operation of every edge once, in the same
module tree, so a stand-alone network's ``state_dict`` keys are a subset of the supernet's
(:func:`subnet_state_dict`): a sub-network's parameters *are* the supernet's.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from oracles.nb201_space import EDGES, N_EDGES, N_OPS

from .config import STANDALONE_BN, BNOptions
from .ops import OP_NAMES, ResidualReduction, make_op

N_NODES = 4
#: edge index -> (to_node, from_node), as in oracles.nb201_space
_EDGES_INTO = {j: [(e, i) for e, (jj, i) in enumerate(EDGES) if jj == j] for j in range(1, N_NODES)}


def _check_arch(arch: Sequence[int]) -> tuple[int, ...]:
    a = tuple(int(o) for o in arch)
    if len(a) != N_EDGES or any(not 0 <= o < N_OPS for o in a):
        raise ValueError(f"an NB201 architecture is {N_EDGES} operation indices in 0..{N_OPS - 1}, got {arch!r}")
    return a


def live_edges(arch: Sequence[int]) -> tuple[bool, ...]:
    """Which of the six edges a network of ``arch`` computes (module doc: ``none`` edges,
    edges leaving dead nodes and edges that cannot reach the output are dropped)."""
    a = _check_arch(arch)
    alive = [True] + [False] * (N_NODES - 1)
    for j in range(1, N_NODES):
        alive[j] = any(a[e] != 0 and alive[i] for e, i in _EDGES_INTO[j])
    useful = [False] * (N_NODES - 1) + [True]
    for i in range(N_NODES - 2, -1, -1):
        useful[i] = any(a[e] != 0 and useful[j] for e, (j, ii) in enumerate(EDGES) if ii == i)
    return tuple(a[e] != 0 and alive[i] and useful[j] for e, (j, i) in enumerate(EDGES))


def _edge_key(e: int) -> str:
    return f"e{e}"


class Cell(nn.Module):
    """One NB201 cell holding, per edge, the operations named in ``choices[e]`` (names of
    :data:`supernets.ops.OP_NAMES` other than ``none``); a stand-alone cell holds one (or none)
    per edge, the supernet's cell all four."""

    def __init__(self, channels: int, choices: Sequence[Sequence[str]], bn: BNOptions):
        super().__init__()
        self.edges = nn.ModuleDict()
        for e, names in enumerate(choices):
            ops = nn.ModuleDict({name: make_op(name, channels, bn) for name in names})
            if len(ops):
                self.edges[_edge_key(e)] = ops

    def forward_path(self, x: torch.Tensor, arch: Sequence[int], live: Sequence[bool]) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for j in range(1, N_NODES):
            terms = [self.edges[_edge_key(e)][OP_NAMES[arch[e]]](nodes[i])
                     for e, i in _EDGES_INTO[j] if live[e]]
            nodes.append(sum(terms[1:], terms[0]) if terms else None)
        return nodes[-1] if nodes[-1] is not None else torch.zeros_like(x)

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                         hard: Sequence[int] | None = None) -> torch.Tensor:
        # every operation of every edge, weighted (DARTS's mixed operation); ``none`` is the
        # zero term and is not computed. No dead-node rule: a weighted node is never exactly zero.
        # With ``hard`` (GDAS), only operation hard[e] is computed on edge e; the other
        # weights are added as scalars (their value is 0 by construction, their gradient not).
        nodes = [x]
        for j in range(1, N_NODES):
            total = None
            for e, i in _EDGES_INTO[j]:
                if hard is None:
                    terms = [weights[e, o] * self.edges[_edge_key(e)][OP_NAMES[o]](nodes[i])
                             for o in range(1, N_OPS)]
                else:
                    k = int(hard[e])
                    out = torch.zeros_like(nodes[i]) if k == 0 else self.edges[_edge_key(e)][OP_NAMES[k]](nodes[i])
                    terms = [weights[e, k] * out] + [weights[e, o] for o in range(N_OPS) if o != k]
                for term in terms:
                    total = term if total is None else total + term
            nodes.append(total)
        return nodes[-1]


class _Skeleton(nn.Module):
    def __init__(self, C: int, N: int, in_channels: int, num_classes: int, bn: BNOptions,
                 choices: Sequence[Sequence[str]]):
        super().__init__()
        if C < 1 or N < 1 or in_channels < 1 or num_classes < 2:
            raise ValueError(f"need C >= 1, N >= 1, in_channels >= 1, num_classes >= 2; got C={C}, N={N}, "
                             f"in_channels={in_channels}, num_classes={num_classes}")
        self.C, self.N, self.in_channels, self.num_classes, self.bn = C, N, in_channels, num_classes, bn
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        blocks: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks.extend(Cell(c, choices, bn) for _ in range(N))
        self.cells = nn.ModuleList(blocks)
        # BN-ReLU before pooling, as NB201's networks (leaving it out costs accuracy)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.lastact(x)).flatten(1))

    def config(self) -> dict:
        return {"C": self.C, "N": self.N, "in_channels": self.in_channels, "num_classes": self.num_classes,
                "bn_affine": self.bn.affine, "bn_track_running_stats": self.bn.track_running_stats}


class NB201Network(_Skeleton):
    """The stand-alone network of one architecture (only the edges of :func:`live_edges`
    hold modules). Build it with :func:`build_network`."""

    def __init__(self, arch: Sequence[int], C: int, N: int, in_channels: int, num_classes: int,
                 bn: BNOptions = STANDALONE_BN):
        arch = _check_arch(arch)
        live = live_edges(arch)
        choices = [[OP_NAMES[o]] if live[e] else [] for e, o in enumerate(arch)]
        super().__init__(C, N, in_channels, num_classes, bn, choices)
        self.arch, self.live = arch, live

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.cells:
            x = block.forward_path(x, self.arch, self.live) if isinstance(block, Cell) else block(x)
        return self._head(x)


def build_network(arch: Sequence[int], C: int, N: int, in_channels: int, num_classes: int,
                  bn: BNOptions = STANDALONE_BN) -> NB201Network:
    """The stand-alone network of ``arch`` in the NB201 skeleton.

    Parameters
    ----------
    arch: six operation indices (:mod:`oracles.nb201_space`).
    C: channels of the first stage (NB201: 16); stages have C, 2C, 4C.
    N: cells per stage (NB201: 5).
    in_channels, num_classes: from the data (1 and 10 for digits and MNIST, 3 and 10 for CIFAR-10).
    bn: batch norm of the cell operations; default affine with running statistics, as NB201
        trains its table's networks.
    """
    return NB201Network(arch, C, N, in_channels, num_classes, bn)


class NB201Supernet(_Skeleton):
    """Every operation of every edge, held once; sub-networks share these weights.

    Parameters
    ----------
    C, N, in_channels, num_classes: as for :func:`build_network`.
    bn: batch norm of the cell operations; default NB201's search setting (no affine, no
        running statistics; :class:`supernets.ops.BNOptions` says why).
    """

    def __init__(self, C: int, N: int, in_channels: int, num_classes: int, bn: BNOptions = BNOptions()):
        super().__init__(C, N, in_channels, num_classes, bn, [OP_NAMES[1:]] * N_EDGES)

    def forward(self, x: torch.Tensor, arch: Sequence[int]) -> torch.Tensor:
        """Single path: only ``arch``'s live edges are computed (so only their parameters get
        gradients)."""
        arch = _check_arch(arch)
        live = live_edges(arch)
        x = self.stem(x)
        for block in self.cells:
            x = block.forward_path(x, arch, live) if isinstance(block, Cell) else block(x)
        return self._head(x)

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                         hard: Sequence[int] | None = None) -> torch.Tensor:
        """All operations, mixed per edge by ``weights`` (shape ``[6, 5]``, row = edge, column =
        operation; e.g. ``softmax(alpha, -1)`` for DARTS); the same weights in every cell, as in
        NB201's DARTS runs. Column 0 (``none``) multiplies zero and is not computed.

        ``hard`` (six operation indices): GDAS's forward (Dong & Yang, "Searching for a Robust
        Neural Architecture in Four GPU Hours", CVPR 2019, §3.2): on edge ``e`` only operation
        ``hard[e]`` is computed, times ``weights[e, hard[e]]``, and the other entries of the
        row are added as they are. With ``weights = one_hot(hard) - p.detach() + p`` the
        output is the single path's while every entry of ``p`` gets a gradient. (No dead-node
        rule here either: a ``none`` choice is a zero tensor times its weight.)
        """
        if tuple(weights.shape) != (N_EDGES, N_OPS):
            raise ValueError(f"weights must have shape ({N_EDGES}, {N_OPS}), got {tuple(weights.shape)}")
        if hard is not None:
            hard = _check_arch(hard)
        x = self.stem(x)
        for block in self.cells:
            x = block.forward_weighted(x, weights, hard) if isinstance(block, Cell) else block(x)
        return self._head(x)

    def subnet(self, arch: Sequence[int]) -> NB201Network:
        """A stand-alone network of ``arch`` holding copies of this supernet's weights (and
        buffers), on the supernet's device."""
        net = NB201Network(arch, self.C, self.N, self.in_channels, self.num_classes, self.bn)
        net.load_state_dict(subnet_state_dict(self.state_dict(), net))
        return net.to(next(self.parameters()).device)


def subnet_state_dict(supernet_state: dict, net: NB201Network) -> dict:
    """The entries of a supernet's ``state_dict`` that ``net`` holds (same keys)."""
    keys = net.state_dict().keys()
    missing = [k for k in keys if k not in supernet_state]
    if missing:
        raise ValueError(f"the supernet's state lacks {missing[0]} (another skeleton or batch-norm setting?)")
    return {k: supernet_state[k] for k in keys}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
