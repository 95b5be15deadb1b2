"""Random search with parameter sharing (RSPS) on the NAS-Bench-201 supernet or in DARTS's
own space.

Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI
2020, §3-4, on the uniform single-path supernet of Guo et al., "Single Path One-Shot Neural
Architecture Search with Uniform Sampling", ECCV 2020, §3.2-3.3 (SPOS), with the settings of
NAS-Bench-201's RSPS runs (Dong & Yang, "NAS-Bench-201", ICLR 2020, §5):

* training: every mini-batch trains one architecture drawn uniformly from the 15,625 cells
  (only its live edges are computed and updated); this is
  :class:`supernets.training.SupernetTrainer` in ``single-path`` mode, used as it is
  (NB201's recipe: SGD lr 0.025 cosine to 0.001, momentum 0.9, weight decay 5e-4, gradient
  norm clipped at 5, batch 64); 250 epochs in NB201's runs (the default);
* derivation (:meth:`Rsps.derive`, :func:`best_candidate`): draw N architectures uniformly,
  score each by inherited weights on one batch of ``search_valid`` images (the same batch
  for all N, so they are compared on equal terms), after re-estimating the skeleton's
  batch-norm statistics through that architecture's path on the first training images
  (SPOS §3.3, :func:`supernets.training.evaluate_archs`); the best accuracy wins, ties go to
  the lower cross-entropy, then to the first drawn.

N is ``n_archs`` = 100 (NB201's RSPS runs) once the last epoch is trained. After the other
epochs the loop records a derived architecture too; there N is ``epoch_archs`` = 10 (scoring
with re-estimated statistics costs about 0.07 CPU-seconds an architecture on the ``cpu``
preset, so 100 would cost some 20 times an epoch's training): the per-epoch curve is the
best of 10, the final answer the paper's best of 100. A run cut short by an ``epochs``
budget ends on a per-epoch derivation.

Measured on the ``cpu`` preset (C=8, N=1, digits, seed 0, one thread, niced on a 2-core
machine at load about 16), five epochs: training 0.27-0.41 CPU-seconds an epoch (mean 0.32),
training and the per-epoch derivation 0.83-1.09 (mean 1.0), the final derivation of 100
architectures 7.1. NB201's 250 epochs are then about 4 CPU-minutes a seed.

In the DARTS space (``space="darts"``, :class:`supernets.darts.DartsSupernet`; Li &
Talwalkar's own benchmark is this space, §4): training draws each mini-batch's path with
:meth:`oracles.darts_space.DartsSpace.sample` (per node a uniform input pair and two uniform
operations, ``none`` excluded, both cells), which the trainer does for a DARTS supernet, and the
derivation draws its candidates the same way (:func:`supernets.training.draw_path`); scoring
is the same, by inherited weights after re-estimating batch-norm statistics through each
candidate's path. The weights' weight decay is DARTS's 3e-4. On the DARTS space's ``cpu``
preset (C 8, 5 cells) an epoch's training costs 2.7-2.8 CPU-seconds on digits, the per-epoch
derivation of 10 candidates 4.3-4.6 and the final one of 100 candidates 42 (docs/supernets.md).

The derivation draws its architectures and its batch from a generator seeded by the run's
seed and the epoch (:func:`derivation_generator`), not from the training generator: deriving
changes nothing in the search, and deriving twice gives the same architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch

from supernets.training import EvalSettings, SupernetTrainer, draw_path, evaluate_archs

from ._torch_common import part_tensors
from .base import torch_seed
from .one_shot import OneShotMethod


def best_candidate(acc: Sequence[float], loss: Sequence[float]) -> int:
    """The index of the best candidate: highest accuracy, ties to the lower loss, then to
    the lower index (the first drawn)."""
    if len(acc) == 0 or len(acc) != len(loss):
        raise ValueError("need as many accuracies as losses, at least one")
    return min(range(len(acc)), key=lambda i: (-float(acc[i]), float(loss[i]), i))


def derivation_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for the derivation after ``epoch`` epochs of a run whose derivation
    seed is ``seed`` (independent of the training's draws)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def validation_batch(x: torch.Tensor, y: torch.Tensor, n: int,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``(x, y)`` drawn without replacement by ``gen`` (all of them when
    ``n`` is at least their number)."""
    if n >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=gen)[:n].to(y.device)
    return x[idx], y[idx]


class Rsps(OneShotMethod):
    """RSPS (Li & Talwalkar, UAI 2020) on the NB201 supernet or in the DARTS space: uniform
    single-path training (SPOS), then the best of N random architectures by inherited weights
    (module doc).

    Parameters
    ----------
    n_archs: N of the final derivation, after the last epoch (NB201's RSPS runs: 100).
    epoch_archs: N of the derivation recorded after every other epoch (10: a cheaper curve,
        module doc).
    eval_images: validation images scoring every candidate (one batch drawn per
        derivation, the same for all candidates); None: one training batch's worth
        (``batch_size``), NB201's runs' single validation batch.
    calib_images: training images re-estimating the skeleton's batch-norm statistics per
        candidate before scoring (SPOS §3.3; :class:`supernets.training.EvalSettings`'s
        512); 0: score with the statistics accumulated in training.
    space, preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device, threads,
        cifar_dir: the supernet (:class:`algorithms.one_shot.OneShotMethod`); epochs default:
        NB201's 250 for RSPS (both spaces); ``max_train`` also cuts the validation part.
    """

    name = "rsps"
    summary = "RSPS: random search with parameter sharing (uniform single-path supernet), NB201 or DARTS space"
    paper = ("Li & Talwalkar, 'Random Search and Reproducibility for Neural Architecture Search', UAI 2020, "
             "§3-4; supernet: Guo et al., 'Single Path One-Shot NAS with Uniform Sampling', ECCV 2020, "
             "§3.2-3.3; settings of NB201's RSPS runs (Dong & Yang, ICLR 2020, §5)")
    paper_epochs = 250

    def __init__(self, n_archs: int = 100, epoch_archs: int = 10, eval_images: int | None = None,
                 calib_images: int = 512,
                 preset: str = "cpu", dataset: str = "digits", split_seed: int = 0, C: int | None = None,
                 N: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 max_train: int | None = None, device: str = "cpu", threads: int = 1,
                 cifar_dir: str | None = None, space: str = "nb201"):
        for key, value in (("n_archs", n_archs), ("epoch_archs", epoch_archs)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if eval_images is not None and (not isinstance(eval_images, int) or eval_images < 1):
            raise ValueError(f"eval_images must be a positive integer or None, got {eval_images!r}")
        if not isinstance(calib_images, int) or calib_images < 0:
            raise ValueError(f"calib_images must be a non-negative integer, got {calib_images!r}")
        self.n_archs, self.epoch_archs = n_archs, epoch_archs
        self.eval_images, self.calib_images = eval_images, calib_images
        self._set_supernet_params(preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device,
                                  threads, cifar_dir, space)

    def supernet_config(self):
        return dataclasses.replace(super().supernet_config(), mode="single-path")

    # -- set-up ------------------------------------------------------------------------------
    def start(self, supernet, data, rng: np.random.Generator) -> None:
        cfg = self.supernet_config()
        dev = next(supernet.parameters()).device
        # the trainer draws shuffles and paths from its own generator, seeded from the run
        self.trainer = SupernetTrainer(dataclasses.replace(cfg, seed=torch_seed(rng)), data, device=dev)
        # ...and starts from the loop's supernet, whose initial weights the run's seed drew
        self.trainer.supernet.load_state_dict(supernet.state_dict())
        self.config, self.net = self.trainer.config, self.trainer.supernet
        self.x_valid, self.y_valid = part_tensors(data.search_valid, cfg.max_train, dev, self.trainer.x_train.dtype)
        self.derive_seed = torch_seed(rng)
        self.last_derivation: dict[str, Any] | None = None

    @property
    def epochs_done(self) -> int:
        return self.trainer.epoch

    # -- the search ------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, Any]:
        stats = dict(self.trainer.train_epoch())
        stats["distinct_paths"] = len(set(self.trainer.last_paths))
        return stats

    def derive(self):
        """The best of ``n_archs`` (after the last epoch) or ``epoch_archs`` uniformly drawn
        architectures on one validation batch (module doc); the candidates and their scores
        are kept in :attr:`last_derivation`."""
        final = self.epochs_done >= self.config.epochs
        n = self.n_archs if final else self.epoch_archs
        gen = derivation_generator(self.derive_seed, self.epochs_done)
        candidates = [draw_path(self.net, gen) for _ in range(n)]
        size = self.eval_images or self.config.batch_size
        xb, yb = validation_batch(self.x_valid, self.y_valid, size, gen)
        scores = evaluate_archs(self.net, candidates, xb, yb,
                                EvalSettings(batch_size=self.config.batch_size, calib_images=self.calib_images),
                                x_calib=self.trainer.x_train)
        best = best_candidate(scores["acc"], scores["loss"])
        self.last_derivation = {"epoch": self.epochs_done, "final": final, "candidates": candidates,
                                "acc": scores["acc"].tolist(), "loss": scores["loss"].tolist(), "best": best}
        return candidates[best]

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"trainer": self.trainer.state_dict(), "derive_seed": self.derive_seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # the loop restores torch's global generators itself
        self.trainer.load_state_dict(state["trainer"], global_rng=False)
        self.derive_seed = int(state["derive_seed"])
