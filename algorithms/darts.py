"""DARTS on the NAS-Bench-201 supernet or in DARTS's own space, first and second order.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019:

* §2.2 continuous relaxation: every edge carries the softmax(alpha)-weighted sum of all its
  operations (:meth:`supernets.nb201.NB201Supernet.forward_weighted`; one 6 x 5 alpha shared
  by every cell, as NB201's DARTS runs); alpha initialised 1e-3 x N(0, 1);
* §2.3 alternating optimisation, per mini-batch: an alpha step by Adam (lr 3e-4, betas
  (0.5, 0.999), weight decay 1e-3) on the loss of a ``search_valid`` batch, then a weight
  step by SGD on the loss of a ``supernet_train`` batch (NB201's search recipe,
  :class:`supernets.config.SupernetConfig`: lr 0.025 cosine to 0.001, momentum 0.9,
  weight decay 5e-4, gradient norm clipped at 5, batch 64); 50 epochs;
* first order (``order=1``): alpha's gradient is the validation loss's at the current
  weights;
* second order (``order=2``, §2.3 Eq. 6-8): the gradient at the unrolled weights
  w' = w - xi * grad_w L_train(w, alpha), xi = the weights' current learning rate, minus
  xi times the Hessian-vector product grad^2_{alpha,w} L_train(w, alpha) . v with
  v = grad_w' L_val(w', alpha), approximated by central finite differences at
  w+- = w +- eps * v, eps = 0.01 / ||v|| (Eq. 8). The unrolled step is the plain gradient
  step of Eq. 6 (DARTS's released code also folds momentum and weight decay into it; the
  paper's equation does not);
* §2.4 derivation on NB201: the strongest operation of each edge, ``none`` included
  (``exclude_none=False``, the default), as NB201's own DARTS runs derive their cells
  (Dong & Yang, "NAS-Bench-201", ICLR 2020, §5: the argmax over every operation of the
  edge); DARTS's own space drops ``none`` from the choice, ``exclude_none=True`` does that.

In DARTS's own space (``space="darts"``, :class:`supernets.darts.DartsSupernet`, DARTS
§2.1 and §3.1.1): one alpha per cell kind, normal and reduction, each 14 edges x the
supernet's 8 operations (``none`` included in the relaxation, §2.2), held as one ``(2, 14, 8)``
parameter (``alpha[0]`` normal, ``alpha[1]`` reduction) so that the optimiser, the state and
the diagnostics are the NB201 variant's; the derivation is DARTS's §2.4 rule
(:func:`oracles.darts_space.derive`): per intermediate node the two incoming edges whose
strongest non-``none`` operation is strongest, each with that operation, on softmax(alpha).
The weight recipe is DARTS's search recipe with its weight decay 3e-4
(:meth:`algorithms.one_shot.OneShotMethod.supernet_config`). Only these three things differ
between the spaces (:meth:`_Differentiable.alpha_shape`, :meth:`_Differentiable.mixed`,
:func:`derive_arch`).

The NB201 benchmark's Table 5 reports that both orders collapse to cells of skip
connections (54.30 % CIFAR-10 test); the run's diagnostics hold the derived cell and the
softmax of alpha after every epoch, so the collapse is visible.

Scale on digits: an epoch is 17 steps (1,078 training images, batch 64) against about 390
on NB201's 25,000-image CIFAR-10 half, so 50 epochs give alpha only 850 Adam steps of
3e-4. Measured (cpu preset, seed 0, first order): after 50 epochs softmax(alpha) is still
nearly uniform (mean entropy 1.6071 nats against 1.6094 for uniform; no entry beyond
0.17-0.23) and the derived cell has no skip connection, so no collapse can show at that
length; ``epochs`` near 1,150 gives NB201's number of alpha steps (about 45 CPU minutes a
seed at 2.4 CPU-seconds an epoch). In the DARTS space (``cpu`` preset: C 8, 5 cells; every
batch runs the all-operations network forward and backward twice) an epoch on digits costs
45 CPU-seconds first order and 112 second order (measured once each, docs/supernets.md).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracles.darts_space import DARTS_OPS
from oracles.darts_space import derive as darts_derive

from ._torch_common import part_tensors
from .base import torch_seed
from .one_shot import OneShotMethod

N_EDGES, N_OPS = 6, 5
#: cell kinds of the DARTS space, the first axis of its alpha (normal, reduction)
DARTS_CELLS = 2


def alpha_entropy(alpha: torch.Tensor) -> float:
    """Mean over edges of the entropy (nats) of softmax(alpha) along the operations."""
    logp = F.log_softmax(alpha.detach().double(), dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def argmax_arch(alpha: torch.Tensor, exclude_none: bool = False) -> tuple[int, ...]:
    """The strongest operation per edge; with ``exclude_none`` the strongest other than
    ``none`` (operation 0). Ties go to the lower operation index (torch's argmax)."""
    a = alpha.detach().cpu().double().clone()
    if exclude_none:
        a[:, 0] = -math.inf
    return tuple(int(i) for i in a.argmax(dim=-1).tolist())


def _rounded(values, digits: int = 6):
    """Nested lists of floats rounded to ``digits`` (JSON-able diagnostics of any shape)."""
    if isinstance(values, list):
        return [_rounded(v, digits) for v in values]
    return round(float(values), digits)


def derive_arch(alpha: torch.Tensor, space: str, ops: Sequence[str] = DARTS_OPS, exclude_none: bool = False):
    """The architecture alpha stands for. NB201 (``space="nb201"``): :func:`argmax_arch`, six
    operation indices. DARTS (``space="darts"``, alpha ``(2, 14, len(ops))``): DARTS §2.4's
    rule on softmax(alpha) of each cell kind (:func:`oracles.darts_space.derive`: two incoming
    edges per node, ``none`` never chosen; ``exclude_none`` is moot), a
    :class:`~oracles.darts_space.DartsArch`; ``ops`` are the supernet's operations, alpha's
    columns."""
    if space == "darts":
        w = F.softmax(alpha.detach().cpu().double(), dim=-1).numpy()
        return darts_derive(w[0], w[1], ops)
    return argmax_arch(alpha, exclude_none)


def hessian_vector_product(loss_at: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                           alpha: torch.Tensor, v: Sequence[torch.Tensor], r: float = 0.01) -> torch.Tensor:
    """DARTS Eq. 8: grad^2_{alpha,w} L(w, alpha) . v by central differences.

    ``loss_at()`` computes the loss at the parameters' current values; ``params`` (w) are
    moved in place to w +- eps * v with eps = r / ||v|| and restored afterwards (exactly:
    the saved tensors are copied back). Returns the estimate, shaped like ``alpha``.
    """
    saved = [p.detach().clone() for p in params]
    norm = torch.sqrt(sum((t.double() ** 2).sum() for t in v))
    eps = r / float(norm) if float(norm) > 0 else r
    grads = []
    try:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, s, t in zip(params, saved, v):
                    p.copy_(s + sign * eps * t)
            grads.append(torch.autograd.grad(loss_at(), [alpha])[0])
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    return (grads[0] - grads[1]) / (2 * eps)


class _Differentiable(OneShotMethod):
    """What DARTS and GDAS share: the data, the alternating loop, the optimisers, the state.
    Subclasses say how an alpha step and a weight step compute their losses."""

    #: architecture optimiser (DARTS §3.1.1; NB201 and GDAS use the same)
    arch_lr: float
    arch_beta1: float
    arch_weight_decay: float

    # -- set-up ------------------------------------------------------------------------------
    def start(self, supernet, data, rng: np.random.Generator) -> None:
        cfg = self.supernet_config()
        self.config = cfg
        self.net = supernet
        self.dev = next(supernet.parameters()).device
        self.dtype = next(supernet.parameters()).dtype

        self.x_train, self.y_train = part_tensors(data.supernet_train, cfg.max_train, self.dev, self.dtype)
        self.x_valid, self.y_valid = part_tensors(data.search_valid, cfg.max_train, self.dev, self.dtype)
        # shuffles and architecture samples: a CPU generator, so a seed draws the same
        # sequence on every device
        self.gen = torch.Generator().manual_seed(torch_seed(rng))
        self.alpha = nn.Parameter((1e-3 * torch.randn(*self.alpha_shape(), generator=self.gen)).to(self.dev, self.dtype))
        self.w_opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
        self.a_opt = torch.optim.Adam([self.alpha], lr=self.arch_lr, betas=(self.arch_beta1, 0.999),
                                      weight_decay=self.arch_weight_decay)
        self.valid_perm = torch.randperm(len(self.y_valid), generator=self.gen)
        self.valid_pos = 0
        self.epoch = 0

    @property
    def epochs_done(self) -> int:
        return self.epoch

    # -- what differs between the spaces -------------------------------------------------------
    def alpha_shape(self) -> tuple[int, ...]:
        """NB201: ``(6, 5)``, one alpha shared by every cell; DARTS: ``(2, 14, len(ops))``,
        the normal cell's alpha then the reduction cell's."""
        if self.space == "darts":
            return (DARTS_CELLS, *self.net.alphas_shape())
        return N_EDGES, N_OPS

    def mixed(self, x: torch.Tensor, weights: torch.Tensor, hard=None) -> torch.Tensor:
        """The supernet's logits with every edge mixed by ``weights`` (alpha's shape, already
        normalised: softmax(alpha) or GDAS's straight-through sample). ``hard``: GDAS's one
        computed operation per edge (NB201: 6 indices; DARTS: the normal and the reduction
        cell's 14 each)."""
        if self.space == "darts":
            hn, hr = (None, None) if hard is None else hard
            return self.net.forward_weighted(x, weights[0], weights[1], softmax=False, hard_normal=hn,
                                             hard_reduce=hr)
        return self.net.forward_weighted(x, weights, hard=hard)

    def _derive(self, exclude_none: bool = False):
        # the supernet's operations are alpha's columns (DARTS's eight when none is built yet)
        ops = getattr(getattr(self, "net", None), "ops", DARTS_OPS)
        return derive_arch(self.alpha, self.space, ops, exclude_none)

    def _next_valid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``search_valid`` batch; a fresh permutation when too few images are left
        (the validation part is smaller than the training part, so it is cycled)."""
        bs = min(self.config.batch_size, len(self.y_valid))
        if self.valid_pos + bs > len(self.valid_perm):
            self.valid_perm = torch.randperm(len(self.y_valid), generator=self.gen)
            self.valid_pos = 0
        idx = self.valid_perm[self.valid_pos:self.valid_pos + bs].to(self.dev)
        self.valid_pos += bs
        return self.x_valid[idx], self.y_valid[idx]

    def _weight_step(self, loss: torch.Tensor) -> None:
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.grad is not None], self.config.grad_clip)
        self.w_opt.step()

    def _alpha_step(self, grad: torch.Tensor) -> None:
        self.a_opt.zero_grad(set_to_none=True)
        self.alpha.grad = grad.detach().clone()
        self.a_opt.step()

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, Any]:
        if self.epoch >= self.config.epochs:
            raise ValueError(f"{self.name}: all {self.config.epochs} epochs are done")
        self.net.train()
        t0, c0 = time.perf_counter(), time.process_time()
        bs = self.config.batch_size
        order = torch.randperm(len(self.y_train), generator=self.gen).to(self.dev)
        lr = self.w_opt.param_groups[0]["lr"]
        sums = {"train_loss": 0.0, "train_correct": 0, "train_seen": 0,
                "valid_loss": 0.0, "valid_correct": 0, "valid_seen": 0}
        self._epoch_begins()
        for b in range(math.ceil(len(self.y_train) / bs)):
            idx = order[b * bs:(b + 1) * bs]
            self._step(self.x_train[idx], self.y_train[idx], *self._next_valid(), lr, sums)
        self.sched.step()
        self.epoch += 1
        stats = {"epoch": self.epoch, "lr": lr,
                 "train_loss": sums["train_loss"] / max(sums["train_seen"], 1),
                 "train_acc": sums["train_correct"] / max(sums["train_seen"], 1),
                 "valid_loss": sums["valid_loss"] / max(sums["valid_seen"], 1),
                 "valid_acc": sums["valid_correct"] / max(sums["valid_seen"], 1),
                 "alpha_entropy": alpha_entropy(self.alpha),
                 "alpha_softmax": _rounded(F.softmax(self.alpha.detach().double(), -1).cpu().tolist()),
                 "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
        stats.update(self._epoch_extra())
        return stats

    def _epoch_begins(self) -> None:
        pass

    def _epoch_extra(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def _tally(sums: dict, prefix: str, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        sums[prefix + "_loss"] += float(loss.detach()) * len(y)
        sums[prefix + "_correct"] += int((logits.detach().argmax(1) == y).sum())
        sums[prefix + "_seen"] += len(y)

    def _step(self, xt, yt, xv, yv, lr: float, sums: dict) -> None:
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.net.state_dict(), "alpha": self.alpha.detach().clone(),
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                "sched": self.sched.state_dict(), "gen": self.gen.get_state(),
                "valid_perm": self.valid_perm.clone(), "valid_pos": self.valid_pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        self.valid_perm = state["valid_perm"].clone()
        self.valid_pos = int(state["valid_pos"])
        self.epoch = int(state["epoch"])


class Darts(_Differentiable):
    """DARTS (Liu, Simonyan & Yang, ICLR 2019) on the NB201 supernet or in the DARTS space:
    softmax-relaxed operations, alpha by Adam on the validation loss, weights by SGD (module
    doc).

    Parameters
    ----------
    order: 1 (first order) or 2 (the unrolled step with the finite-difference
        Hessian-vector product, DARTS §2.3).
    arch_lr: Adam's learning rate for alpha (DARTS §3.1.1: 3e-4).
    arch_beta1: Adam's first beta for alpha (DARTS: 0.5; the second is 0.999).
    arch_weight_decay: weight decay on alpha (DARTS: 1e-3).
    hvp_r: the finite-difference step's numerator, eps = hvp_r / ||v|| (DARTS Eq. 8: 0.01).
    exclude_none: NB201: derive the strongest operation other than ``none``; False: the
        argmax over all five, as NB201's DARTS runs (module doc). The DARTS space's rule always
        excludes ``none``.
    space, preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device, threads,
        cifar_dir: the supernet (:class:`algorithms.one_shot.OneShotMethod`); epochs default:
        DARTS's 50.
    """

    name = "darts"
    summary = "DARTS: differentiable architecture search (first or second order), NB201 or DARTS space"
    paper = ("Liu, Simonyan & Yang, 'DARTS: Differentiable Architecture Search', ICLR 2019, §2.2-2.4, "
             "§3.1.1 (settings); NB201's DARTS runs (Dong & Yang, ICLR 2020, §5)")
    paper_epochs = 50

    def __init__(self, order: int = 1, arch_lr: float = 3e-4, arch_beta1: float = 0.5,
                 arch_weight_decay: float = 1e-3, hvp_r: float = 0.01, exclude_none: bool = False,
                 preset: str = "cpu", dataset: str = "digits", split_seed: int = 0, C: int | None = None,
                 N: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 max_train: int | None = None, device: str = "cpu", threads: int = 1,
                 cifar_dir: str | None = None, space: str = "nb201"):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        if not (arch_lr > 0 and 0 <= arch_beta1 < 1 and arch_weight_decay >= 0 and hvp_r > 0):
            raise ValueError("need arch_lr > 0, 0 <= arch_beta1 < 1, arch_weight_decay >= 0, hvp_r > 0")
        self.order, self.arch_lr, self.arch_beta1 = order, arch_lr, arch_beta1
        self.arch_weight_decay, self.hvp_r, self.exclude_none = arch_weight_decay, hvp_r, exclude_none
        self._set_supernet_params(preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device,
                                  threads, cifar_dir, space)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed(x, F.softmax(self.alpha, dim=-1))

    def alpha_gradient(self, xt, yt, xv, yv, xi: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """alpha's gradient for one step: (gradient, validation logits, validation loss).
        First order: grad_alpha L_val(w, alpha). Second order: DARTS Eq. 7 with the
        unrolled weights w' = w - xi * grad_w L_train(w, alpha) and Eq. 8's product; the
        weights are back at w afterwards."""
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self.order == 1:
            logits = self._forward(xv)
            loss = F.cross_entropy(logits, yv)
            return torch.autograd.grad(loss, [self.alpha])[0], logits, loss
        saved = [p.detach().clone() for p in params]
        try:
            g_train = torch.autograd.grad(F.cross_entropy(self._forward(xt), yt), params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, g_train):
                    if g is not None:
                        p.sub_(xi * g)
            logits = self._forward(xv)
            loss = F.cross_entropy(logits, yv)
            grads = torch.autograd.grad(loss, [self.alpha] + params, allow_unused=True)
            d_alpha = grads[0]
            v = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads[1:])]
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
            hvp = hessian_vector_product(lambda: F.cross_entropy(self._forward(xt), yt), params, self.alpha, v,
                                         self.hvp_r)
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
        return d_alpha - xi * hvp, logits, loss

    def _step(self, xt, yt, xv, yv, lr: float, sums: dict) -> None:
        # alpha first, then the weights, per mini-batch (DARTS Alg. 1; NB201's DARTS runs)
        grad, logits_v, loss_v = self.alpha_gradient(xt, yt, xv, yv, lr)
        self._alpha_step(grad)
        self._tally(sums, "valid", loss_v, logits_v, yv)
        logits = self.mixed(xt, F.softmax(self.alpha.detach(), dim=-1))
        loss = F.cross_entropy(logits, yt)
        self._weight_step(loss)
        self._tally(sums, "train", loss, logits, yt)

    def derive(self):
        """NB201: the argmax per edge (``exclude_none`` drops ``none``); DARTS space: DARTS
        §2.4's top-2 incoming edges per node (:func:`derive_arch`)."""
        return self._derive(self.exclude_none)
