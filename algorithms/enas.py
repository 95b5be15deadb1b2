"""ENAS on the NAS-Bench-201 supernet and in the DARTS space.

Pham, Guan, Zoph, Le & Dean, "Efficient Neural Architecture Search via Parameter Sharing",
ICML 2018, §2-3, with the settings of NAS-Bench-201's ENAS runs (Dong & Yang,
"NAS-Bench-201", ICLR 2020, §5):

* the controller (:class:`Controller`, ENAS §2.1-2.2): a 2-layer LSTM (hidden 32 in NB201's
  runs; ENAS: 100) that picks the six edges' operations in NB201's edge order, each step fed
  the embedding of the previous pick (a learned input vector at the first); the logits l of
  a pick are squashed to 2.5 * tanh(l / 5) (ENAS §3.2's tanh constant 2.5 and temperature 5,
  "to prevent premature convergence"); every parameter initialised uniformly in [-0.1, 0.1];
* each epoch (ENAS §2.2 "training the shared parameters" then "training the controller"):
  one pass over ``supernet_train``, every mini-batch training the single path of a fresh
  controller sample (SGD with NB201's ENAS recipe: lr 0.05 cosine to 5e-4, momentum 0.9,
  weight decay 2.5e-4, gradient norm clipped at 5, batch 128); then
  ``ctl_train_steps`` x ``ctl_num_aggregate`` = 50 x 20 controller samples, each rewarded
  with its accuracy R on the next ``search_valid`` batch (shared weights fixed, in
  evaluation mode), the REINFORCE gradients of ``ctl_num_aggregate`` samples averaged per
  Adam step (lr 1e-3, betas (0, 0.999), eps 1e-3, gradient norm clipped at 5);
* the baseline (:func:`update_baseline`) is the moving average b <- b - (1 - 0.99) (b - R),
  updated with each sample before its advantage R - b is taken (ENAS's order); the first
  reward sets it (NB201's runs);
* the entropy bonus (weight 1e-4, ENAS §3.2): ENAS adds the sample's entropy H (the sum over
  the six picks of the entropy of each pick's distribution) to the reward. Inside a
  REINFORCE reward the entropy of the first pick, the same for every sample, would get no
  gradient at all; here w * H enters the controller's objective with its own gradient, the
  usual form of an entropy bonus (:func:`reinforce_loss`): the gradient is
  (R - b) grad log p(cell) + w grad H. The baseline tracks the accuracy alone;
* derivation (ENAS §2.2 end: "sample several models ..., compute its reward on a single
  minibatch sampled from the validation set, take the model with the highest reward"):
  ``final_samples`` = 100 controller samples after the last epoch and ``epoch_samples`` = 10
  after the others (NB201's runs: 10 per epoch, 100 at the end), all scored by inherited
  weights on the same validation batch, in evaluation mode as the rewards; the best
  accuracy wins, ties to the lower loss, then to the first drawn
  (:func:`algorithms.rsps.best_candidate`). The derivation's draws come from a generator of
  the run's seed and the epoch (:func:`algorithms.rsps.derivation_generator`), not from the
  search's: deriving changes nothing, and deriving twice gives the same cell.

NB201's ENAS runs updated the baseline only between epochs; this follows ENAS (every
sample). NB201's Table 5: ENAS reaches 53.89 +- 0.58 % CIFAR-10 test, its cells collapsing as
DARTS's do; the run's diagnostics hold the controller's most likely cell and its mean
entropy per pick after every epoch, so a collapse is visible.

Scale on digits: an epoch trains the weights 9 steps (1,078 images, batch 128) against about
195 on NB201's 25,000-image CIFAR-10 half, while the controller keeps its 1,000 samples and 50
steps an epoch: relative to the weights the controller learns about 20 times more than in
NB201's runs, and the controller's samples dominate an epoch's cost. Measured on the ``cpu``
preset (C=8, N=1, digits, seed 0, one thread, niced on a 2-core machine at load about 16):
26.7 CPU-seconds an epoch (three epochs: 26.8, 26.7, 26.7), of which the weights' 9 steps
take about 0.3; a reward evaluation costs about 15 ms and a controller sample's forward and
backward about 12 ms; the final derivation of 100 samples 1.6 s. NB201's 250 epochs are
then about 1.9 CPU-hours a seed; ``ctl_train_steps`` scales the controller's share.

**The DARTS space** (``space="darts"``; :class:`supernets.darts.DartsSupernet`, the space
:mod:`oracles.darts_space` without ``none``, which DARTS's derived cells never hold). ENAS
§2.3 ("Designing convolutional cells") has the controller pick, for each node of the normal
and then the reduction cell, two inputs among the earlier nodes and an operation for each.
The decisions here are the space's own token sequence
(:meth:`oracles.darts_space.DartsSpace.tokens`, 11 per cell): node 2's two operations (its
inputs are nodes 0 and 1 whatever is chosen), then for nodes 3, 4 and 5 the pair of inputs
(one pick among the 3, 6 or 10 pairs of distinct earlier nodes) and the operations of the
lower and the higher input. What changes against ENAS's own cell space: the two inputs are
one pick of a pair, not two independent picks (the DARTS space wants two distinct inputs,
ENAS allowed the same node twice); the operations are DARTS's seven (ENAS: five); every
intermediate node is concatenated into the output (ENAS: only those no node reads); the
cell has DARTS's 4 intermediate nodes. The controller (:class:`Controller`) keeps one LSTM
for the whole sequence of both cells, as ENAS shares its controller between the two cells;
operation picks share one embedding and one softmax head (as the NB201 picks do), the input
pairs of each node have their own (their choices differ in number and meaning; ENAS points
at the chosen node's hidden state with an attention head instead). Everything else (the
REINFORCE update, the baseline, the entropy bonus, the derivation, the weights' recipe) is
the same code as on NB201; only the decision sequence and the tokens-to-cell step differ
(:class:`CellCoding`). The cells' batch norms normalise with the batch's own statistics
(``bn_track`` off, as the NB201 supernet's cells and NB201's ENAS runs): a reward is one
batch's accuracy in evaluation mode, and running statistics accumulated over thousands of
different paths fit none of them.

Scale in the DARTS space, measured on the ``cpu`` preset (C=8, 5 cells, digits, seed 0, one
thread, niced on a 2-core machine at load about 9, ``time.process_time``): an epoch 139.1 and
140.8 CPU-seconds, of which the weights' 9 steps take 2.4 and the controller's 1,000 samples
136.7 (about 0.14 s a sample: its reward, one batch of 128 through a 5-cell path, and the
22 picks' forward and backward); the per-epoch derivation of 10 samples 0.9 s, the final one
of 100 8.7 s. NB201's 250 epochs would be about 9.8 CPU-hours a seed, almost all of it the
controller's; ``ctl_train_steps`` scales that share.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracles.darts_space import PAIRS, DartsSpace
from supernets.training import EvalSettings, evaluate_archs

from .base import torch_seed
from .one_shot import OneShotMethod
from ._torch_common import part_tensors
from .rsps import best_candidate, derivation_generator, validation_batch

N_EDGES, N_OPS = 6, 5
OP = "op"   #: the kind of an operation pick (module doc)


@dataclasses.dataclass(frozen=True)
class Decisions:
    """The controller's decision sequence: ``kinds[t]`` is the kind of pick ``t``, which
    selects its embedding and softmax head; ``sizes[kind]`` its number of choices. Kind
    :data:`OP` (operations) owns :attr:`Controller.embed` and :attr:`Controller.head`; every
    other kind has its own in :attr:`Controller.input_embed` / :attr:`Controller.input_head`."""

    kinds: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...]

    @property
    def size_of(self) -> dict[str, int]:
        return dict(self.sizes)

    def __len__(self) -> int:
        return len(self.kinds)


#: the six NB201 edges, one operation each (NB201's edge order)
NB201_DECISIONS = Decisions((OP,) * N_EDGES, ((OP, N_OPS),))


def darts_decisions(n_ops: int) -> Decisions:
    """The DARTS space's token sequence (:meth:`oracles.darts_space.DartsSpace.tokens`) with
    ``n_ops`` operations: per cell node 2's two operations, then per node j = 3..5 its input
    pair (kind ``inputs-j``, C(j, 2) choices) and two operations; normal then reduction cell."""
    per_cell: list[str] = [OP, OP]
    sizes = [(OP, int(n_ops))]
    for j, pairs in enumerate(PAIRS[1:], start=3):
        kind = f"inputs-{j}"
        per_cell += [kind, OP, OP]
        sizes.append((kind, len(pairs)))
    return Decisions(tuple(per_cell) * 2, tuple(sizes))


class CellCoding:
    """How a token sequence of the controller becomes a cell of the searched space, and back.

    NB201: the tokens are the cell (six operation indices). DARTS: the tokens of
    ``space`` (a :class:`oracles.darts_space.DartsSpace`), its canonical
    :class:`~oracles.darts_space.DartsArch` from :meth:`~oracles.darts_space.DartsSpace.from_tokens`.
    """

    def __init__(self, space: DartsSpace | None = None):
        self.space = space
        self.decisions = NB201_DECISIONS if space is None else darts_decisions(len(space.ops))
        if space is not None and tuple(space.decisions) != tuple(self.decisions.size_of[k]
                                                                 for k in self.decisions.kinds):
            raise ValueError("the DARTS space's decisions do not match the controller's")

    def arch(self, tokens: Sequence[int]):
        return tuple(int(t) for t in tokens) if self.space is None else self.space.from_tokens(tokens)

    def tokens(self, arch) -> tuple[int, ...]:
        return tuple(int(o) for o in arch) if self.space is None else self.space.tokens(arch)

    def jsonable(self, arch):
        """The cell in a run's diagnostics: NB201, its six operation indices; DARTS, its
        genotype string."""
        return [int(o) for o in arch] if self.space is None else self.space.to_string(arch)


class Controller(nn.Module):
    """ENAS's LSTM controller over a decision sequence (default: the six NB201 edges).

    Parameters
    ----------
    hidden: LSTM width, also of the embeddings (NB201's runs: 32).
    layers: LSTM layers (2).
    tanh_constant, temperature: a pick's logits l become ``tanh_constant * tanh(l / temperature)``
        (ENAS: 2.5 and 5).
    gen: the generator of the uniform [-0.1, 0.1] initialisation.
    decisions: the picks (:class:`Decisions`; :data:`NB201_DECISIONS` or :func:`darts_decisions`).
        The operation picks' embedding and head are created first, so the NB201 controller's
        parameters and their initial values do not depend on the other kinds existing.
    """

    def __init__(self, hidden: int = 32, layers: int = 2, tanh_constant: float = 2.5, temperature: float = 5.0,
                 gen: torch.Generator | None = None, decisions: Decisions = NB201_DECISIONS):
        super().__init__()
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.decisions = decisions
        sizes = decisions.size_of
        self.start_input = nn.Parameter(torch.empty(1, 1, hidden))
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.embed = nn.Embedding(sizes[OP], hidden)
        self.head = nn.Linear(hidden, sizes[OP])
        others = [k for k, _ in decisions.sizes if k != OP]
        self.input_embed = nn.ModuleDict({k: nn.Embedding(sizes[k], hidden) for k in others})
        self.input_head = nn.ModuleDict({k: nn.Linear(hidden, sizes[k]) for k in others})
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.1, 0.1, generator=gen)

    def _parts(self, kind: str) -> tuple[nn.Embedding, nn.Linear]:
        return (self.embed, self.head) if kind == OP else (self.input_embed[kind], self.input_head[kind])

    def forward(self, gen: torch.Generator | None = None, arch: Sequence[int] | None = None,
                greedy: bool = False) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor]:
        """One token sequence: ``(tokens, log p(tokens), H)`` with H the sum over the picks of
        the entropy of each pick's distribution. The picks are drawn from ``gen``, or are the
        most likely ones (``greedy``), or are ``arch``'s (a token sequence; teacher forcing:
        its probability)."""
        inputs, state = self.start_input, None
        picks: list[int] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for t, kind in enumerate(self.decisions.kinds):
            embed, head = self._parts(kind)
            out, state = self.lstm(inputs, state)
            logits = self.tanh_constant * torch.tanh(head(out[-1, 0]) / self.temperature)
            logp = F.log_softmax(logits, dim=-1)
            if arch is not None:
                k = int(arch[t])
            elif greedy:
                k = int(logp.detach().argmax())
            else:
                k = int(torch.multinomial(logp.detach().exp(), 1, generator=gen))
            picks.append(k)
            log_prob = log_prob + logp[k]
            entropy = entropy - (logp.exp() * logp).sum()
            inputs = embed(torch.tensor([[k]]))
        return tuple(picks), log_prob, entropy


def update_baseline(baseline: float | None, reward: float, decay: float = 0.99) -> float:
    """ENAS's moving-average baseline after ``reward``: b - (1 - decay) (b - reward); the
    first reward (``baseline`` None) sets it."""
    if baseline is None:
        return float(reward)
    return float(baseline - (1.0 - decay) * (baseline - reward))


def reinforce_loss(log_prob: torch.Tensor, entropy: torch.Tensor, advantage: float,
                   entropy_weight: float) -> torch.Tensor:
    """The controller's loss for one sample (minimised): -(advantage * log p + w * H), whose
    gradient step raises the sample's probability when the advantage is positive and the
    entropy H always (module doc)."""
    return -(float(advantage) * log_prob + entropy_weight * entropy)


class Enas(OneShotMethod):
    """ENAS (Pham et al., ICML 2018) on the NB201 supernet or in the DARTS space: an LSTM
    controller samples cells, shared weights train on the sampled paths, REINFORCE trains the
    controller (module doc).

    Parameters
    ----------
    lstm_hidden: controller LSTM width (NB201's runs: 32; ENAS: 100).
    lstm_layers: controller LSTM layers (2).
    tanh_constant: bound of the controller's logits (ENAS §3.2: 2.5).
    temperature: the logits are divided by it before the tanh (ENAS §3.2: 5).
    ctl_lr: the controller's Adam learning rate (NB201's runs: 1e-3; betas (0, 0.999), eps 1e-3).
    ctl_train_steps: controller Adam steps per epoch (NB201's runs: 50).
    ctl_num_aggregate: samples whose gradients each step averages (NB201's runs: 20).
    entropy_weight: weight of the entropy bonus (ENAS §3.2: 1e-4).
    baseline_decay: the baseline's moving-average decay (ENAS: 0.99).
    epoch_samples: controller samples of the derivation recorded after every epoch but the
        last (NB201's runs: 10).
    final_samples: controller samples of the derivation after the last epoch (NB201's runs: 100).
    w_lr, w_lr_min, w_weight_decay: the shared weights' SGD learning rate, its cosine floor and
        weight decay (NB201's ENAS runs: 0.05, 5e-4, 2.5e-4; momentum 0.9 and clipping 5 as
        the recipe).
    preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device, threads, cifar_dir, space:
        the supernet (:class:`algorithms.one_shot.OneShotMethod`); epochs default: NB201's 250
        for ENAS (in both spaces); batch_size default: NB201's ENAS runs' 128 (for the weights
        and the rewards); ``max_train`` also cuts the validation part; ``space="darts"``: the
        DARTS space (module doc), its cells' batch norms without running statistics.
    """

    name = "enas"
    summary = "ENAS: LSTM controller trained by REINFORCE over a shared-weight NB201 or DARTS-space supernet"
    paper = ("Pham, Guan, Zoph, Le & Dean, 'Efficient Neural Architecture Search via Parameter Sharing', "
             "ICML 2018, §2-3 (§2.3: convolutional cells, the DARTS space here); settings of NB201's ENAS "
             "runs (Dong & Yang, ICLR 2020, §5)")
    paper_epochs = 250
    #: NB201's ENAS runs' batch (the recipe's is 64)
    paper_batch_size = 128

    def __init__(self, lstm_hidden: int = 32, lstm_layers: int = 2, tanh_constant: float = 2.5,
                 temperature: float = 5.0, ctl_lr: float = 1e-3, ctl_train_steps: int = 50,
                 ctl_num_aggregate: int = 20, entropy_weight: float = 1e-4, baseline_decay: float = 0.99,
                 epoch_samples: int = 10, final_samples: int = 100, w_lr: float = 0.05, w_lr_min: float = 5e-4,
                 w_weight_decay: float = 2.5e-4,
                 preset: str = "cpu", dataset: str = "digits", split_seed: int = 0, C: int | None = None,
                 N: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 max_train: int | None = None, device: str = "cpu", threads: int = 1,
                 cifar_dir: str | None = None, space: str = "nb201"):
        for key, value in (("lstm_hidden", lstm_hidden), ("lstm_layers", lstm_layers),
                           ("ctl_train_steps", ctl_train_steps), ("ctl_num_aggregate", ctl_num_aggregate),
                           ("epoch_samples", epoch_samples), ("final_samples", final_samples)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if not (tanh_constant > 0 and temperature > 0 and ctl_lr > 0 and entropy_weight >= 0
                and 0 <= baseline_decay < 1):
            raise ValueError("need tanh_constant > 0, temperature > 0, ctl_lr > 0, entropy_weight >= 0, "
                             "0 <= baseline_decay < 1")
        if not (w_lr > 0 and 0 <= w_lr_min <= w_lr and w_weight_decay >= 0):
            raise ValueError("need w_lr > 0, 0 <= w_lr_min <= w_lr, w_weight_decay >= 0")
        self.lstm_hidden, self.lstm_layers = lstm_hidden, lstm_layers
        self.tanh_constant, self.temperature, self.ctl_lr = tanh_constant, temperature, ctl_lr
        self.ctl_train_steps, self.ctl_num_aggregate = ctl_train_steps, ctl_num_aggregate
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.epoch_samples, self.final_samples = epoch_samples, final_samples
        self.w_lr, self.w_lr_min, self.w_weight_decay = w_lr, w_lr_min, w_weight_decay
        self._set_supernet_params(preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device,
                                  threads, cifar_dir, space)

    def supernet_config(self):
        cfg = dataclasses.replace(super().supernet_config(), mode="single-path", lr=self.w_lr,
                                  lr_min=self.w_lr_min, weight_decay=self.w_weight_decay,
                                  batch_size=self.batch_size or self.paper_batch_size)
        if cfg.space == "darts":
            # rewards are one batch's accuracy: the cells normalise with that batch (module doc)
            cfg = dataclasses.replace(cfg, bn_track=False)
        return cfg

    # -- set-up ------------------------------------------------------------------------------
    def start(self, supernet, data, rng: np.random.Generator) -> None:
        cfg = self.supernet_config()
        self.config = cfg
        self.net = supernet
        dev = next(supernet.parameters()).device
        dtype = next(supernet.parameters()).dtype
        self.x_train, self.y_train = part_tensors(data.supernet_train, cfg.max_train, dev, dtype)
        self.x_valid, self.y_valid = part_tensors(data.search_valid, cfg.max_train, dev, dtype)
        # shuffles and controller samples: a CPU generator, so a seed draws the same
        # sequence on every device (the controller is small and stays on the CPU)
        self.gen = torch.Generator().manual_seed(torch_seed(rng))
        # the cells the controller's tokens name: the supernet's own path space in DARTS's
        self.coding = CellCoding(supernet.space if cfg.space == "darts" else None)
        self.controller = Controller(self.lstm_hidden, self.lstm_layers, self.tanh_constant, self.temperature,
                                     gen=self.gen, decisions=self.coding.decisions)
        self.w_opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
        self.c_opt = torch.optim.Adam(self.controller.parameters(), lr=self.ctl_lr, betas=(0.0, 0.999), eps=1e-3)
        self.baseline: float | None = None
        self.valid_perm = torch.randperm(len(self.y_valid), generator=self.gen)
        self.valid_pos = 0
        self.derive_seed = torch_seed(rng)
        self.epoch = 0
        self.last_derivation: dict[str, Any] | None = None

    @property
    def epochs_done(self) -> int:
        return self.epoch

    def _next_valid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``search_valid`` batch; a fresh permutation when too few images are left
        for a full one."""
        bs = min(self.config.batch_size, len(self.y_valid))
        if self.valid_pos + bs > len(self.y_valid):
            self.valid_perm = torch.randperm(len(self.y_valid), generator=self.gen)
            self.valid_pos = 0
        idx = self.valid_perm[self.valid_pos:self.valid_pos + bs].to(self.y_valid.device)
        self.valid_pos += bs
        return self.x_valid[idx], self.y_valid[idx]

    # -- the search ------------------------------------------------------------------------
    @torch.no_grad()
    def reward(self, arch, x: torch.Tensor, y: torch.Tensor) -> float:
        """The accuracy of ``arch``'s path on ``(x, y)`` with the shared weights, in
        evaluation mode (left as it was found)."""
        was_training = self.net.training
        self.net.eval()
        try:
            return float((self.net(x, arch).argmax(1) == y).double().mean())
        finally:
            self.net.train(was_training)

    def train_epoch(self) -> dict[str, Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        cfg = self.config
        lr = self.w_opt.param_groups[0]["lr"]
        w = self._train_weights()
        self.sched.step()
        c = self._train_controller()
        self.epoch += 1
        with torch.no_grad():
            greedy, _, greedy_entropy = self.controller(greedy=True)
        return {"epoch": self.epoch, "lr": lr, **w, **c, "greedy": self.coding.jsonable(self.coding.arch(greedy)),
                "greedy_entropy_per_pick": float(greedy_entropy) / len(self.coding.decisions),
                "batch_size": cfg.batch_size,
                "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}

    def _train_weights(self) -> dict[str, float]:
        """One pass over ``supernet_train``, each batch on a fresh controller sample's path."""
        bs = self.config.batch_size
        self.net.train()
        order = torch.randperm(len(self.y_train), generator=self.gen).to(self.y_train.device)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(math.ceil(len(self.y_train) / bs)):
            idx = order[b * bs:(b + 1) * bs]
            x, y = self.x_train[idx], self.y_train[idx]
            with torch.no_grad():
                tokens, _, _ = self.controller(self.gen)
            logits = self.net(x, self.coding.arch(tokens))
            loss = F.cross_entropy(logits, y)
            self.w_opt.zero_grad(set_to_none=True)      # None, not zero: SGD skips off-path weights
            loss.backward()
            nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.grad is not None], self.config.grad_clip)
            self.w_opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen}

    def controller_sample_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """One REINFORCE sample: draw a cell, reward it on ``(x, y)``, update the baseline;
        the sample's loss (not yet divided by ``ctl_num_aggregate``) and its numbers
        (``arch`` the cell, ``tokens`` the controller's picks: the same on NB201)."""
        tokens, log_prob, entropy = self.controller(self.gen)
        arch = self.coding.arch(tokens)
        r = self.reward(arch, x, y)
        self.baseline = update_baseline(self.baseline, r, self.baseline_decay)
        advantage = r - self.baseline
        return (reinforce_loss(log_prob, entropy, advantage, self.entropy_weight),
                {"reward": r, "baseline": self.baseline, "advantage": advantage,
                 "entropy": float(entropy.detach()), "arch": arch, "tokens": tokens})

    def _train_controller(self) -> dict[str, float]:
        k = self.ctl_num_aggregate
        sums = {"reward": 0.0, "baseline": 0.0, "advantage": 0.0, "entropy": 0.0}
        n = self.ctl_train_steps * k
        self.c_opt.zero_grad(set_to_none=True)
        for step in range(n):
            loss, numbers = self.controller_sample_loss(*self._next_valid())
            (loss / k).backward()
            for key in sums:
                sums[key] += numbers[key]
            if (step + 1) % k == 0:
                nn.utils.clip_grad_norm_(list(self.controller.parameters()), 5.0)
                self.c_opt.step()
                self.c_opt.zero_grad(set_to_none=True)
        return {"ctl_reward": sums["reward"] / n, "ctl_baseline": sums["baseline"] / n,
                "ctl_advantage": sums["advantage"] / n, "ctl_entropy_per_pick": sums["entropy"] / n / len(self.coding.decisions),
                "ctl_final_baseline": self.baseline}

    def derive(self):
        """The best of ``final_samples`` (after the last epoch) or ``epoch_samples`` controller
        samples on one validation batch (module doc); the candidates and their scores are
        kept in :attr:`last_derivation`."""
        final = self.epoch >= self.config.epochs
        n = self.final_samples if final else self.epoch_samples
        gen = derivation_generator(self.derive_seed, self.epoch)
        with torch.no_grad():
            candidates = [self.coding.arch(self.controller(gen)[0]) for _ in range(n)]
        xb, yb = validation_batch(self.x_valid, self.y_valid, self.config.batch_size, gen)
        scores = evaluate_archs(self.net, candidates, xb, yb,
                                EvalSettings(batch_size=self.config.batch_size, calib_images=0))
        best = best_candidate(scores["acc"], scores["loss"])
        self.last_derivation = {"epoch": self.epoch, "final": final, "candidates": candidates,
                                "acc": scores["acc"].tolist(), "loss": scores["loss"].tolist(), "best": best}
        return candidates[best]

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "model": self.net.state_dict(), "controller": self.controller.state_dict(),
                "w_opt": self.w_opt.state_dict(), "c_opt": self.c_opt.state_dict(),
                "sched": self.sched.state_dict(), "gen": self.gen.get_state(),
                "baseline": math.nan if self.baseline is None else self.baseline,
                "valid_perm": self.valid_perm.clone(), "valid_pos": self.valid_pos,
                "derive_seed": self.derive_seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.c_opt.load_state_dict(state["c_opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        b = float(state["baseline"])
        self.baseline = None if math.isnan(b) else b
        self.valid_perm = state["valid_perm"].clone()
        self.valid_pos = int(state["valid_pos"])
        self.derive_seed = int(state["derive_seed"])
        self.epoch = int(state["epoch"])
