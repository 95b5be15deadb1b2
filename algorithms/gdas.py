"""GDAS on the NAS-Bench-201 supernet or in DARTS's own space.

Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019,
§3.2-3.3, as NAS-Bench-201's GDAS runs use it (Dong & Yang, ICLR 2020, §5):

* per edge, a Gumbel-softmax sample: logits = (log_softmax(alpha) + g) / tau with Gumbel
  noise g, p = softmax(logits), h = one_hot(argmax p) - stop_gradient(p) + p (straight
  through); only the sampled operation is computed, scaled by its entry of h (equal to 1),
  and the other entries of h are added as scalars so every entry of alpha gets a gradient
  (:meth:`supernets.nb201.NB201Supernet.forward_weighted` with ``hard``);
* a sample whose noise, probabilities or h are not finite is drawn again (with tau = 0.1 a
  large Gumbel draw can overflow; NB201's code resamples the same way);
* per mini-batch, a weight step on a ``supernet_train`` batch (SGD, NB201's recipe) then an
  alpha step on a ``search_valid`` batch (Adam lr 3e-4, betas (0.5, 0.999), weight decay
  1e-3), each with a fresh sample;
* tau decreases linearly from ``tau_max`` = 10 at the first epoch to ``tau_min`` = 0.1 at
  the last (:func:`temperature`);
* 250 epochs in NB201's runs (the default); derivation: argmax of alpha per edge over all
  five operations, as NB201's GDAS runs.

In the DARTS space (``space="darts"``): one Gumbel sample per edge of both cells (the
``(2, 14, 8)`` alpha of :mod:`algorithms.darts`, ``none`` among the choices as in the
relaxation), only the sampled operation of each of the 14 edges computed in every cell
(:meth:`supernets.darts.DartsSupernet.forward_weighted` with ``hard_normal``/``hard_reduce``;
every edge of a node is summed, as in GDAS's search), and DARTS's derivation (two incoming
edges per node, ``none`` excluded), as GDAS derives its CIFAR cells. GDAS's §3.3 hand-designed
reduction cell (GDAS-FRC) is not used: both cells are searched, its ablation setting. The
default length stays NB201's 250 epochs in both spaces. An epoch of the DARTS space's ``cpu``
preset (C 8, 5 cells) on digits costs 7.2-7.7 CPU-seconds (docs/supernets.md).

NB201's Table 5: GDAS reaches 93.61 +- 0.09 % CIFAR-10 test (validation 89.89 +- 0.08),
far from DARTS's collapse to skip connections.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .darts import _Differentiable


def _nested(values) -> tuple:
    """``tensor.tolist()`` as nested tuples of ints (hashable; one level per dimension)."""
    if isinstance(values, list):
        return tuple(_nested(v) for v in values)
    return int(values)


def temperature(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS's tau during 0-based ``epoch`` of ``epochs``: linear from ``tau_max`` (first
    epoch) to ``tau_min`` (last epoch); a one-epoch run uses ``tau_max``."""
    if epochs <= 1:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * epoch / (epochs - 1))


def gumbel_straight_through(alpha: torch.Tensor, tau: float, gen: torch.Generator,
                            max_tries: int = 100) -> tuple[torch.Tensor, tuple, int]:
    """One straight-through Gumbel-softmax sample per row (last axis) of ``alpha``.

    Returns ``(h, index, tries)``: ``h = one_hot(index) - p.detach() + p`` (value: the one-hot
    rows; gradient: that of p), the sampled operation of each row (a tuple of ints for a
    ``(6, 5)`` NB201 alpha, a tuple per cell kind for the DARTS space's ``(2, 14, 8)``), and how
    many draws it took (more than one when a draw was not finite). The noise comes from ``gen`` (a CPU
    generator) and is moved to ``alpha``'s device.
    """
    for tries in range(1, max_tries + 1):
        u = torch.empty(alpha.shape, dtype=torch.float64).exponential_(generator=gen)
        gumbels = (-u.log()).to(alpha.device, alpha.dtype)
        logits = (F.log_softmax(alpha, dim=-1) + gumbels) / tau
        p = F.softmax(logits, dim=-1)
        index = p.detach().argmax(dim=-1)
        h = F.one_hot(index, alpha.shape[-1]).to(p.dtype) - p.detach() + p
        if bool(torch.isfinite(gumbels).all() and torch.isfinite(p).all() and torch.isfinite(h).all()):
            return h, _nested(index.tolist()), tries
    raise FloatingPointError(f"no finite Gumbel-softmax sample in {max_tries} draws (alpha not finite?)")


class Gdas(_Differentiable):
    """GDAS (Dong & Yang, CVPR 2019) on the NB201 supernet or in the DARTS space: one sampled
    operation per edge, straight-through Gumbel-softmax gradients to alpha (module doc).

    Parameters
    ----------
    tau_max, tau_min: the temperature's first and last values (GDAS §4: 10 and 0.1).
    arch_lr: Adam's learning rate for alpha (3e-4, as DARTS).
    arch_beta1: Adam's first beta for alpha (0.5; the second is 0.999).
    arch_weight_decay: weight decay on alpha (1e-3).
    space, preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device, threads,
        cifar_dir: the supernet (:class:`algorithms.one_shot.OneShotMethod`); epochs default:
        NB201's 250 for GDAS (both spaces).
    """

    name = "gdas"
    summary = "GDAS: Gumbel-softmax sampled differentiable search, NB201 or DARTS space"
    paper = ("Dong & Yang, 'Searching for a Robust Neural Architecture in Four GPU Hours', CVPR 2019, "
             "§3.2-3.3; settings of NB201's GDAS runs (Dong & Yang, ICLR 2020, §5)")
    paper_epochs = 250

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1, arch_lr: float = 3e-4,
                 arch_beta1: float = 0.5, arch_weight_decay: float = 1e-3,
                 preset: str = "cpu", dataset: str = "digits", split_seed: int = 0, C: int | None = None,
                 N: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 max_train: int | None = None, device: str = "cpu", threads: int = 1,
                 cifar_dir: str | None = None, space: str = "nb201"):
        if not (tau_max >= tau_min > 0):
            raise ValueError(f"need tau_max >= tau_min > 0, got {tau_max}, {tau_min}")
        if not (arch_lr > 0 and 0 <= arch_beta1 < 1 and arch_weight_decay >= 0):
            raise ValueError("need arch_lr > 0, 0 <= arch_beta1 < 1, arch_weight_decay >= 0")
        self.tau_max, self.tau_min = tau_max, tau_min
        self.arch_lr, self.arch_beta1, self.arch_weight_decay = arch_lr, arch_beta1, arch_weight_decay
        self._set_supernet_params(preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device,
                                  threads, cifar_dir, space)

    @property
    def tau(self) -> float:
        """The temperature of the epoch about to be trained (or the last one, when done)."""
        return temperature(min(self.epoch, self.config.epochs - 1), self.config.epochs, self.tau_max, self.tau_min)

    def _epoch_begins(self) -> None:
        self._resamples = 0
        self._tau_now = self.tau

    def _epoch_extra(self) -> dict[str, Any]:
        return {"tau": self._tau_now, "resamples": self._resamples}

    def _sample(self, alpha: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        h, index, tries = gumbel_straight_through(alpha, self._tau_now, self.gen)
        self._resamples += tries - 1
        return h, index

    def alpha_gradient(self, xv, yv) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(gradient of the validation loss with respect to alpha through a fresh sample,
        logits, loss)."""
        h, index = self._sample(self.alpha)
        logits = self.mixed(xv, h, hard=index)
        loss = F.cross_entropy(logits, yv)
        return torch.autograd.grad(loss, [self.alpha])[0], logits, loss

    def _step(self, xt, yt, xv, yv, lr: float, sums: dict) -> None:
        # the weights first, then alpha, each with its own sample (NB201's GDAS search loop)
        h, index = self._sample(self.alpha.detach())
        logits = self.mixed(xt, h, hard=index)
        loss = F.cross_entropy(logits, yt)
        self._weight_step(loss)
        self._tally(sums, "train", loss, logits, yt)
        grad, logits_v, loss_v = self.alpha_gradient(xv, yv)
        self._alpha_step(grad)
        self._tally(sums, "valid", loss_v, logits_v, yv)

    def derive(self):
        """NB201: the argmax of alpha per edge over all five operations; DARTS space: DARTS's
        rule (:func:`algorithms.darts.derive_arch`)."""
        return self._derive()

