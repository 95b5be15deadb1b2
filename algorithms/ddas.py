"""DDAS in the DARTS space (the thesis's own setting) and on the NAS-Bench-201 supernet: a
DDPG agent samples whole architectures while the supernet trains.

Mills, "On the Application of Continuous Deterministic Reinforcement Learning in Neural
Architecture Search" (MSc thesis, University of Alberta, 2020), chapter 3 ("Deep
Deterministic Architecture Sampling", DDAS; §3.3 also calls it "Search"). What is taken
from it:

* §3.1.2 warm-up: every operation weight equal (alpha set to one everywhere, i.e. the mixed
  operation with equal weights, :func:`supernets.training.forward_uniform`), trained on
  ``supernet_train`` for 75 epochs (§3.2.1, §3.4.1) by SGD, learning rate 0.025 cosine to
  1e-3 (the recipe's other settings, momentum 0.9, weight decay 5e-4, clipping 5, batch 64,
  are :class:`supernets.config.SupernetConfig`'s, as for every method here). Acc(OS) and
  L_V(OS) are the warmed-up one-shot model's accuracy and loss on ``search_valid``.
* §3.1.1 the agent: DDPG (Lillicrap et al., "Continuous control with deep reinforcement
  learning", ICLR 2016): actor mu(s) (MLP, sigmoid output in (0, 1)^(|E| x |O|)), critic
  Q(s, a), target networks mu', Q' mixed in at every step with coefficient 1e-3, replay
  buffer sampled with replacement, batch |B_R| = 64, gamma = 0.99 (§3.4.2); hidden layers
  (256, 256, 256) with ReLU for both; Adam betas (0.9, 0.99), actor learning rate 1e-4,
  critic 1e-3; no regularisation; actor and critic share nothing. Critic loss Eq. 3.4
  (mean squared error against r + gamma Q'(s', mu'(s'))); actor Eq. 3.5, which prints the
  loss as the batch mean of Q(s, mu(s)): DDPG *ascends* Q, so the loss minimised here is
  ``-mean Q(s, mu(s))`` (as :mod:`algorithms.cadam` reads Eq. 4.5).
* §3.1.2 Algorithm 1, one step t: action a_t = mu(s_t) + Z_t (Eq. 3.1); discretised to an
  architecture (Eq. 3.2); the supernet weights of that path trained for M = 25 mini-batches
  of ``supernet_train`` by SGD at the constant search learning rate 1e-3 (§3.4.1); the path
  scored on ``search_valid`` with the inherited weights; reward (Eq. 3.3)
  ``r_t = 1/2 (Acc(a_t^d) - Acc(OS)) + 1/2 (L_V(a_{t-1}^d) - L_V(a_t^d))``; next state
  s_{t+1} = a_t^d (the one-hot architecture).
* §3.1.3 and Table 3.3, phases and noise (``variant``): an exploration phase of 500 steps
  whose actions are drawn from U(0, 1)^(|E| x |O|) (Fig. 3.4's caption) while neither actor
  nor critic is used or updated; then the exploitation phase, one critic and one actor
  update per step, with Z = U(-1e-5, 1e-5) (``nl``, DDAS-NL, 1,000 steps) or N(0, 0.05)
  (``g``, DDAS-G, 1,000 steps; ``4s``, DDAS-4S, 500 steps); DDAS-4S then has a fourth stage
  of 500 steps without noise, except that after T_stag = 32 steps in a row each selecting an
  architecture similar to the step before, Ornstein-Uhlenbeck noise is added for the next
  T_stag steps; in that stage the replay buffer holds only the last 500 steps (§3.4.2;
  10^6 otherwise). ``rs`` is the thesis's random-search baseline (§3.2.1, "RS"): the same
  run with every action from U(0, 1) (1,500 exploration steps).
* Fig. 3.2, the reward ablations (``reward``): ``no-loss`` drops the loss term of Eq. 3.3,
  ``no-acc`` the accuracy term; the remaining term keeps its factor 1/2. The thesis finds
  either ablation "nearly indistinguishable from Random Search".
* §3.2.1 the result: "the best architecture found by DDAS with the highest validation
  accuracy": :meth:`Ddas.derive` returns, of every architecture sampled so far, the one
  with the highest ``search_valid`` accuracy measured at its step (ties: the lower
  validation loss, then the earlier step). The Pareto frontier is built from every sampled
  architecture's validation accuracy against its cost in the search network (§3.2.1: "the
  number of FLOPS and the number of parameters in a model ... instantiated on a 6-cell
  network", i.e. the search network's size): here the stand-alone network of the cell at the
  supernet's own C and N (:func:`supernets.nb201.build_network`; DARTS space:
  :func:`supernets.darts.build_network`, DARTS's evaluation network with the supernet's C and
  number of cells, no auxiliary head), its parameter count and its multiply-accumulates per
  image (:func:`cell_cost`). Every step's sample (architecture,
  validation accuracy and loss, reward, parameters, multiply-accumulates, noise) goes to the
  epoch's statistics, with the steps on the two frontiers so far (:func:`pareto_front`).

**The DARTS space** (``space="darts"``, :class:`supernets.darts.DartsSupernet`), the thesis's
setting. An action holds a weight for every operation of every edge of both cells, 2 x 14 x 7
numbers (cell, edge in :data:`oracles.darts_space.EDGES` order, operation; row-major, the
layout of :meth:`oracles.darts_space.DartsSpace.encode`), discretised by Algorithm 2, DARTS's
rule (:func:`discretise_darts`, :func:`oracles.darts_space.derive`): for each intermediate
node the two incoming edges whose strongest operation is strongest, each with that
operation (ties to the lower edge, then the lower operation, as Algorithm 2's row-major
argmax). The operations are the supernet's without ``none``: chapter 3 does not list its
operations, its chapter 4 drops ``none`` from the DARTS space (§4.2.2, |O| = 7), and DARTS's
rule never picks it, so a ``none`` column would be an output nothing reads. The state
a^d is the one-hot of the derived cell in the same layout (its ``encode``). The warm-up mixes
every operation of the supernet, ``none`` included, with equal weights (alpha all ones). Two
cells are similar (DDAS-4S) when fewer than 6 of their 16 activated operation-edge pairs
differ, the thesis's own rule (§3.2.1): ``stag_max_diff`` = 5 (:func:`similar`). The
supernet keeps DARTS's search-network batch norms (no affine parameters, running statistics
on: the ``darts`` presets), whose running statistics the M training batches of a step
adapt to the path before it is scored in evaluation mode, as DARTS's code (which the thesis
modified, §3.4.1) does.

**Our extension, on NB201.** The thesis runs DDAS only in the DARTS space, whose
discretisation (Algorithm 2) keeps the two strongest incoming edges of each node. The NB201
cell has one operation per edge and no edge choice, so the discretisation here is the
argmax per edge over all five operations, ``none`` included (:func:`discretise`), the rule
the same thesis uses on NB201 for CADAM (Algorithm 3); the action and the state are 6 x 5
(edge x operation, row-major). This is what the NB201 ground truth can judge.

Choices the thesis leaves open, made here:

* The default variant is DDAS-4S, the method §3.1.3 describes (Gaussian noise, then the
  Ornstein-Uhlenbeck phase); the thesis does not say which variant Fig. 3.2's ablations ran,
  so ``reward`` combines with any ``variant``.
* The initial state s_0 is all ones (the warmed-up supernet's alpha, "every element of alpha
  set to one"); L_V(a_{-1}^d) in the first reward is L_V(OS).
* Acc and L_V are measured on the whole ``search_valid`` part ("on D_V"), in evaluation mode
  (the skeleton's batch-norm running statistics are those the M training batches have just
  adapted to the path; the cells' batch norms, NB201's search setting, use batch
  statistics over evaluation batches of ``eval_batch`` = 256 images).
* The M mini-batches are consecutive batches of a permutation of ``supernet_train``, redrawn
  when it runs out; the SGD optimiser (and its momentum) carries over from the warm-up, only
  the path's parameters move (parameters without a gradient are skipped by SGD).
* N(0, 0.05) is read as standard deviation 0.05. The Ornstein-Uhlenbeck process is
  Lillicrap et al.'s (2016, §7: theta = 0.15, sigma = 0.2), in its discrete form
  x_{k+1} = x_k - theta x_k + sigma eps_k (dt = 1; stationary standard deviation 0.38, the
  "large" noise of §3.2.1 against 0.05), restarted from 0 each time it is switched on.
* Similar architectures (DDAS-4S) on NB201: the thesis calls two DARTS genotypes similar
  when fewer than 6 of their 16 activated operation-edge pairs differ; NB201 has 6 such
  pairs, so fewer than 6/16 x 6 = 2.25 differ: at most ``stag_max_diff`` = 2 edges.
* Actions are not clipped to (0, 1): the argmax (and DARTS's top-2 rule) is unaffected by
  clipping except that it would create ties, so the noisy action is kept and stored.
* Updates use the replay buffer from the first exploitation step on (the 500 exploration
  steps are DDPG's warm-up); one critic and one actor update per step.
* Loop epochs (:mod:`harness.one_shot`): each warm-up epoch is one loop epoch; after it
  every ``steps_per_epoch`` (default 1) RL steps are one loop epoch, so the records follow
  the search step by step (Fig. 3.3's axis). :attr:`Ddas.loop_epochs` is the run's length in
  loop epochs (warm-up epochs + search epochs), which is what the loop reads;
  ``supernet_config().epochs`` is the warm-up's epochs, over which its cosine runs. During the
  warm-up nothing has been sampled and :meth:`Ddas.derive` returns the discretised actor
  output for s_0. The simulated clock counts one unit per loop epoch; ``cost`` is measured.

Scale on digits (cpu preset, C=8, N=1, 1,078 training images): a warm-up epoch is 17
batches; a step's 25 batches are 1.5 passes over the training part, so 1,500 steps are
about 2,200 passes. Measured (one thread, 2-core machine under load 8-16, so upper bounds;
seed 0, thesis settings): a warm-up epoch 1.29 CPU-seconds (1.16-1.54, 5 epochs), a step
0.56 (exploration: no agent update), 0.63 (exploitation), 0.74 (fourth stage) CPU-seconds
(10 steps each): a default run (75 warm-up epochs, 1,500 steps) is about 18 CPU-minutes.
In 8 scaled runs (below) a warm-up epoch took 1.16-1.39 CPU-seconds (run means) and a step
0.55-0.61.

A small Fig. 3.2 run (2 seeds; scaled: 25 warm-up epochs, 4S with 50/50/50 steps, RS 150
steps; not a reproduction): the mean supernet validation accuracy of the cells sampled in
steps 51-150 was 0.969 (full reward), 0.971 (no loss term), 0.967 (no accuracy term) and
0.936 (RS), Acc(OS) 0.986-0.989, so on the supernet's own measure neither ablation fell
back to random search. On a partial NB201-digits table (1,625 of 6,466 classes, a uniform
sample; 3-epoch stand-alone test accuracy) the covered cells sampled in those steps scored
0.856 / 0.853 / 0.837 / 0.821 (seed 0) and 0.782 / 0.780 / 0.781 / 0.806 (seed 1; 14-27
cells each): no consistent order, and the supernet's validation accuracy ranks those cells
only weakly (Spearman 0.19-0.43 against their stand-alone validation accuracy).

Scale in the DARTS space (``cpu`` preset: C=8, 5 cells, digits: 1,078 training and 360
validation images; one thread, niced, 2-core machine at load about 9, so upper bounds; seed 0,
thesis settings, ``time.process_time``): a warm-up epoch (17 all-operations batches of 64)
28.6 and 28.2 CPU-seconds; a step (25 single-path batches, scoring on the 360 validation
images, the cost of a new cell) 3.9-5.3 CPU-seconds, mean 4.6 over 8 steps of the three
phases (the first step 6.8: it also scores the warmed-up all-operations supernet, Acc(OS)).
The thesis's run (75 warm-up epochs, 1,500 steps) is then about 0.6 + 1.9 = 2.5 CPU-hours a
seed. The sampled cells' stand-alone networks at that size hold 38,000-52,000 parameters and
0.40-0.56 million multiply-accumulates per 8x8 image.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracles.darts_space import CELLS, N_INPUTS, OPS, DartsArch, DartsSpace
from supernets.nb201 import build_network, count_params
from supernets.training import evaluation_key, forward_uniform

from ._torch_common import adam, build_seeded, part_tensors, uniform
from .base import torch_seed
from .cadam import _mlp, discretise_darts as cadam_discretise_darts
from .darts import N_EDGES, N_OPS, argmax_arch
from .one_shot import OneShotMethod

ACTION_SIZE = N_EDGES * N_OPS      #: NB201's action: 6 edges x 5 operations

#: Table 3.3 (and §3.2.1's random search): steps per phase and the exploitation noise
VARIANTS: dict[str, dict[str, Any]] = {
    "nl": {"explore_steps": 500, "exploit_steps": 1000, "stage4_steps": 0, "exploit_noise": "uniform"},
    "g": {"explore_steps": 500, "exploit_steps": 1000, "stage4_steps": 0, "exploit_noise": "gaussian"},
    "4s": {"explore_steps": 500, "exploit_steps": 500, "stage4_steps": 500, "exploit_noise": "gaussian"},
    "rs": {"explore_steps": 1500, "exploit_steps": 0, "stage4_steps": 0, "exploit_noise": "gaussian"},
}
#: Eq. 3.3 and Fig. 3.2's ablations: (weight of the accuracy term, weight of the loss term)
REWARDS: dict[str, tuple[float, float]] = {"full": (0.5, 0.5), "no-loss": (0.5, 0.0), "no-acc": (0.0, 0.5)}
NOISES = ("uniform", "gaussian")


# --- the pieces, each testable on its own -----------------------------------------------------
def discretise(action: torch.Tensor) -> tuple[int, ...]:
    """The NB201 architecture of an action of |E| x |O| = 30 numbers (row-major, edge x
    operation): the strongest operation of each edge, ``none`` included, ties to the lower
    index (module doc: our extension of Algorithm 2 to NB201)."""
    return argmax_arch(torch.as_tensor(action).reshape(N_EDGES, N_OPS))


def one_hot(arch: Sequence[int]) -> torch.Tensor:
    """a^d: the 30 numbers of ``arch``'s one-hot rows (the next state)."""
    out = torch.zeros(N_EDGES, N_OPS)
    out[torch.arange(N_EDGES), torch.as_tensor([int(o) for o in arch])] = 1.0
    return out.reshape(-1)


def discretise_darts(action: torch.Tensor, ops: Sequence[str] = OPS) -> DartsArch:
    """Algorithm 2 (DARTS's rule, :func:`oracles.darts_space.derive`): the DARTS cell pair of
    an action of 2 x 14 x len(ops) numbers (row-major: cell (normal, reduce), edge in
    :data:`oracles.darts_space.EDGES` order, operation in ``ops`` order): per node the two
    incoming edges whose strongest operation is strongest, each with that operation
    (``none``, if ``ops`` has it, never chosen)."""
    return cadam_discretise_darts(torch.as_tensor(action).detach().double().cpu().numpy(), ops)


def activated_pairs(arch: DartsArch) -> set[tuple[str, int, int, str]]:
    """The 16 (cell, node, input, operation) pairs a DARTS cell pair activates."""
    return {(kind, N_INPUTS + k // 2, i, op) for kind in CELLS for k, (op, i) in enumerate(arch.cell(kind))}


def ddas_reward(acc: float, acc_os: float, loss: float, prev_loss: float, w_acc: float = 0.5,
                w_loss: float = 0.5) -> float:
    """Eq. 3.3: ``w_acc (Acc - Acc(OS)) + w_loss (L_prev - L)``; the thesis's weights are 1/2
    and 1/2, Fig. 3.2's ablations set one of them to 0 (:data:`REWARDS`)."""
    return float(w_acc * (acc - acc_os) + w_loss * (prev_loss - loss))


def soft_update(target: nn.Module, source: nn.Module, mix: float) -> None:
    """DDPG's target update theta' <- mix * theta + (1 - mix) * theta' (§3.4.2: mix 1e-3)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1.0 - mix).add_(s, alpha=mix)


def ou_step(x: torch.Tensor, gen: torch.Generator, theta: float, sigma: float) -> torch.Tensor:
    """One step of the Ornstein-Uhlenbeck process around 0 with dt = 1:
    ``x - theta x + sigma eps``, eps ~ N(0, 1) from ``gen`` (module doc)."""
    return x - theta * x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def exploit_noise(kind: str, gen: torch.Generator, n: int, nl_half_width: float, gauss_std: float) -> torch.Tensor:
    """Z of the exploitation phase: U(-w, w) (DDAS-NL, w = 1e-5) or N(0, std) (DDAS-G, 4S: 0.05)."""
    if kind == "uniform":
        return uniform(gen, (n,), -nl_half_width, nl_half_width)
    return gauss_std * torch.randn(n, generator=gen)


def similar(a, b, max_diff: int) -> bool:
    """Two cells are similar when at most ``max_diff`` of their edges differ (NB201) or of
    their activated operation-edge pairs (DARTS cell pairs, :func:`activated_pairs`: the
    thesis's "less than 6 of the 16", ``max_diff`` = 5) are not the other's (module doc)."""
    if isinstance(a, DartsArch):
        return len(activated_pairs(a) - activated_pairs(b)) <= max_diff
    return sum(int(x) != int(y) for x, y in zip(a, b)) <= max_diff


class Stagnation:
    """DDAS-4S's switch for the Ornstein-Uhlenbeck noise: after ``steps`` selections in a row
    each similar to the one before, the noise is on for the next ``steps`` steps (§3.2.1,
    T_stag = 32); counting restarts when it goes off."""

    def __init__(self, steps: int, max_diff: int):
        self.steps, self.max_diff = steps, max_diff
        self.run = self.active_left = self.triggers = 0

    @property
    def noise_on(self) -> bool:
        return self.active_left > 0

    def observe(self, arch: Sequence[int], prev: Sequence[int] | None) -> bool:
        """Record a step's selection; True when this step switches the noise on."""
        if self.active_left > 0:
            self.active_left -= 1
            return False
        self.run = self.run + 1 if prev is not None and similar(arch, prev, self.max_diff) else 0
        if self.run >= self.steps:
            self.active_left, self.run = self.steps, 0
            self.triggers += 1
            return True
        return False

    def state_dict(self) -> dict[str, int]:
        return {"run": self.run, "active_left": self.active_left, "triggers": self.triggers}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.run, self.active_left, self.triggers = (int(state[k]) for k in ("run", "active_left", "triggers"))


def pareto_front(costs: Sequence[float], accs: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (lower or equal cost and higher or
    equal accuracy, one strictly), by increasing cost; of equal points the first is kept."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accs[i], i))
    front, best = [], -math.inf
    for i in order:
        if accs[i] > best:
            front.append(i)
            best = accs[i]
    return front


def cell_cost(arch, C: int, N: int, input_shape: Sequence[int], num_classes: int) -> tuple[int, int]:
    """(parameters, multiply-accumulates per image) of the stand-alone network of ``arch``:
    NB201 (six operation indices, :func:`supernets.nb201.build_network`, N cells per stage) or
    DARTS (a :class:`~oracles.darts_space.DartsArch`, :func:`supernets.darts.build_network`
    with N cells); convolutions and the classifier counted, pooling and batch norm not. Torch's
    global generator is left as it was."""
    macs = 0

    def hook(module, inputs, out):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += (out.numel() // out.shape[0]) * (module.in_channels // module.groups) * kh * kw
        else:
            macs += module.in_features * module.out_features

    with torch.random.fork_rng(devices=[]):
        if isinstance(arch, DartsArch):
            from supernets.darts import build_network as build_darts
            net = build_darts(arch, C, N, int(input_shape[0]), num_classes).eval()
        else:
            net = build_network(arch, C, N, int(input_shape[0]), num_classes).eval()
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *[int(d) for d in input_shape]))
    finally:
        for h in handles:
            h.remove()
    return count_params(net), int(macs)


class ActionCoding:
    """How an action becomes a cell, and a cell the next state, in one space (module doc).

    ``space``: None for NB201 (actions 6 x 5, :func:`discretise`, :func:`one_hot`), or the
    supernet's path space, a :class:`oracles.darts_space.DartsSpace` without ``none``
    (actions 2 x 14 x 7, :func:`discretise_darts`, the space's ``encode``)."""

    def __init__(self, space: DartsSpace | None = None):
        self.space = space
        self.size = ACTION_SIZE if space is None else space.encoding_size

    def discretise(self, action: torch.Tensor):
        return discretise(action) if self.space is None else discretise_darts(action, self.space.ops)

    def state(self, arch) -> torch.Tensor:
        """a^d, the next state: the one-hot of ``arch`` in the action's layout."""
        if self.space is None:
            return one_hot(arch)
        return torch.as_tensor(self.space.encode(arch), dtype=torch.float32)

    def cost_key(self, arch):
        """Cells with equal keys have the same stand-alone cost (NB201: the same live edges)."""
        return evaluation_key(arch) if self.space is None else self.space.identity(arch)

    def identity(self, arch):
        """Equal for the same cell: NB201 the six operations, DARTS the space's identity."""
        return tuple(int(o) for o in arch) if self.space is None else self.space.identity(arch)

    def jsonable(self, arch):
        """The cell in the run's statistics and state: NB201 a list of six operation indices,
        DARTS its genotype string (edges as derived, strongest first)."""
        return [int(o) for o in arch] if self.space is None else self.space.to_string(arch)

    def from_json(self, value):
        return tuple(int(o) for o in value) if self.space is None else self.space.parse(value)


class Replay:
    """DDPG's replay buffer of (s, a, r, s'), a ring of ``capacity``; :meth:`sample` draws
    with replacement from the last ``window`` entries (§3.4.2: 500 in DDAS-4S's last stage);
    states and actions have ``size`` numbers (default NB201's 30)."""

    def __init__(self, capacity: int, device, size: int = ACTION_SIZE):
        self.capacity = int(capacity)
        self.s = torch.zeros(self.capacity, size, device=device)
        self.a = torch.zeros(self.capacity, size, device=device)
        self.r = torch.zeros(self.capacity, device=device)
        self.s2 = torch.zeros(self.capacity, size, device=device)
        self.n = 0

    def add(self, s, a, r: float, s2) -> None:
        i = self.n % self.capacity
        self.s[i], self.a[i], self.r[i], self.s2[i] = s, a, float(r), s2
        self.n += 1

    def __len__(self) -> int:
        return min(self.n, self.capacity)

    def sample(self, batch: int, window: int, gen: torch.Generator):
        w = min(len(self), int(window))
        back = torch.randint(0, w, (batch,), generator=gen)
        idx = ((self.n - 1 - back) % self.capacity).to(self.s.device)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"s": self.s.clone(), "a": self.a.clone(), "r": self.r.clone(), "s2": self.s2.clone(), "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("s", "a", "r", "s2"):
            getattr(self, k).copy_(state[k])
        self.n = int(state["n"])


class DdpgAgent:
    """Actor, critic, their target networks and optimisers (§3.1.1, §3.4.2).

    Parameters
    ----------
    hidden: hidden layer sizes of both networks (§3.4.2: 256, 256, 256).
    actor_lr, critic_lr: Adam learning rates (§3.4.2: 1e-4, 1e-3).
    betas: Adam's betas (§3.4.2: 0.9, 0.99).
    mix: target mixing coefficient (§3.4.2: 1e-3).
    gamma: discount (§3.4.2: 0.99).
    seed: initialises both networks (torch's global generator is left alone).
    device: where the networks live.
    action_size: numbers in a state and an action (NB201: 30; DARTS space: 196).
    """

    def __init__(self, hidden: Sequence[int], actor_lr: float, critic_lr: float, betas: tuple[float, float],
                 mix: float, gamma: float, seed: int, device, action_size: int = ACTION_SIZE):
        def build():
            actor = _mlp(torch, (action_size, *hidden, action_size), nn.Sigmoid())
            critic = _mlp(torch, (2 * action_size, *hidden, 1))
            return actor, critic

        actor, critic = build_seeded(seed, build)
        self.actor, self.critic = actor.to(device), critic.to(device)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=actor_lr, betas=betas)
        self.critic_opt = adam(self.critic.parameters(), lr=critic_lr, betas=betas)
        self.mix, self.gamma = mix, gamma

    def act(self, s: torch.Tensor) -> torch.Tensor:
        """mu(s) for one state, without a gradient."""
        with torch.no_grad():
            return self.actor(s[None])[0]

    def q(self, s: torch.Tensor, a: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q(s, a) (or Q'(s, a)) for a batch, shape ``[batch]``."""
        return (self.critic_target if target else self.critic)(torch.cat([s, a], dim=1))[:, 0]

    def targets(self, r: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """Eq. 3.4's regression target r + gamma Q'(s', mu'(s')) (target networks only)."""
        with torch.no_grad():
            return r + self.gamma * self.q(s2, self.actor_target(s2), target=True)

    def update(self, s, a, r, s2) -> tuple[float, float]:
        """One critic step (Eq. 3.4), one actor step ascending Q (Eq. 3.5), then both target
        networks mixed in; returns (critic loss, mean Q(s, mu(s)) before the actor step)."""
        y = self.targets(r, s2)
        closs = F.mse_loss(self.q(s, a), y)
        self.critic_opt.zero_grad(set_to_none=True)
        closs.backward()
        self.critic_opt.step()
        aq = self.q(s, self.actor(s)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        (-aq).backward()
        self.actor_opt.step()
        self.critic.zero_grad(set_to_none=True)      # the actor's backward reached the critic too
        soft_update(self.actor_target, self.actor, self.mix)
        soft_update(self.critic_target, self.critic, self.mix)
        return float(closs.detach()), float(aq.detach())

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).state_dict()
                for k in ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            getattr(self, k).load_state_dict(v)


class Ddas(OneShotMethod):
    """DDAS (Mills 2020, chapter 3) in the DARTS space or on the NB201 supernet: an
    all-operations warm-up, then a DDPG agent whose every action is a whole cell, each cell
    trained M mini-batches and rewarded by Eq. 3.3 (module doc; the NB201 discretisation is
    our extension).

    Parameters
    ----------
    variant: ``4s`` (DDAS-4S, the default: both noises of §3.1.3), ``g`` (DDAS-G), ``nl``
        (DDAS-NL), Table 3.3; ``rs``: the thesis's random search (§3.2.1), every action from
        U(0, 1).
    reward: ``full`` (Eq. 3.3), ``no-loss`` or ``no-acc`` (Fig. 3.2's ablations).
    explore_steps, exploit_steps, stage4_steps: steps of the three phases; None: the
        variant's (Table 3.3: 500 / 1,000 / 0, or 500 / 500 / 500 for 4S).
    exploit_noise: ``uniform`` (U(-nl_noise, nl_noise), DDAS-NL) or ``gaussian``
        (N(0, gauss_std), DDAS-G and 4S); None: the variant's.
    minibatches: M, training batches per sampled cell (§3.2.1: 25).
    search_lr: the constant SGD learning rate after the warm-up (§3.4.1: 1e-3).
    steps_per_epoch: RL steps per loop epoch after the warm-up (module doc; 1: a record per step).
    hidden: hidden layers of actor and critic (§3.4.2: 256/256/256).
    actor_lr, critic_lr: Adam learning rates (§3.4.2: 1e-4, 1e-3).
    beta1, beta2: Adam's betas (§3.4.2: 0.9, 0.99).
    target_mix: the target networks' mixing coefficient (§3.4.2: 1e-3).
    gamma: discount (§3.4.2: 0.99).
    replay_batch: |B_R| (§3.4.2: 64).
    buffer_size: replay capacity (§3.4.2: 10^6).
    stage4_buffer: the replay window of DDAS-4S's last stage (§3.4.2: the last 500 steps).
    nl_noise: half-width of DDAS-NL's uniform noise (§3.2.1: 1e-5).
    gauss_std: standard deviation of the Gaussian noise (§3.2.1: 0.05).
    ou_theta, ou_sigma: the Ornstein-Uhlenbeck process (Lillicrap et al. 2016, §7: 0.15, 0.2; dt = 1).
    stag_steps: T_stag (§3.2.1: 32).
    stag_max_diff: most differing edges (NB201) or activated operation-edge pairs (DARTS) of two
        similar cells; None: the space's (DARTS: the thesis's "less than 6 of the 16", 5; NB201:
        that rule scaled to NB201's 6 edges, 2).
    eval_batch: evaluation batch on ``search_valid`` (our choice: 256).
    preset, dataset, split_seed, C, N, batch_size, max_train, device, threads, cifar_dir, space: the
        supernet (:class:`algorithms.one_shot.OneShotMethod`); ``space="darts"`` is the thesis's
        own setting (module doc).
    epochs: warm-up epochs; None: the thesis's 75 (§3.2.1). The run's loop epochs
        (:attr:`loop_epochs`) are these plus ceil(steps / steps_per_epoch).
    """

    name = "ddas"
    summary = "DDAS: DDPG agent sampling whole cells while a DARTS-space or NB201 supernet trains (thesis ch. 3)"
    paper = ("Mills, 'On the Application of Continuous Deterministic Reinforcement Learning in Neural "
             "Architecture Search' (MSc thesis, 2020), ch. 3: §3.1 (Algorithm 1, Eq. 3.1-3.5), §3.2.1, "
             "§3.4.1-3.4.2, Algorithm 2, Table 3.3, Fig. 3.2; DDPG: Lillicrap et al., ICLR 2016; NB201 "
             "argmax rule: our extension (thesis Algorithm 3)")
    paper_epochs = 75
    variants = VARIANTS

    def __init__(self, variant: str = "4s", reward: str = "full", explore_steps: int | None = None,
                 exploit_steps: int | None = None, stage4_steps: int | None = None,
                 exploit_noise: str | None = None, minibatches: int = 25, search_lr: float = 1e-3,
                 steps_per_epoch: int = 1, hidden: tuple = (256, 256, 256), actor_lr: float = 1e-4,
                 critic_lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.99, target_mix: float = 1e-3,
                 gamma: float = 0.99, replay_batch: int = 64, buffer_size: int = 1_000_000,
                 stage4_buffer: int = 500, nl_noise: float = 1e-5, gauss_std: float = 0.05,
                 ou_theta: float = 0.15, ou_sigma: float = 0.2, stag_steps: int = 32, stag_max_diff: int | None = None,
                 eval_batch: int = 256,
                 preset: str = "cpu", dataset: str = "digits", split_seed: int = 0, C: int | None = None,
                 N: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 max_train: int | None = None, device: str = "cpu", threads: int = 1,
                 cifar_dir: str | None = None, space: str = "nb201"):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        v = VARIANTS[variant]
        # the resolved values are stored, so a run's metadata says what ran
        explore_steps = v["explore_steps"] if explore_steps is None else explore_steps
        exploit_steps = v["exploit_steps"] if exploit_steps is None else exploit_steps
        stage4_steps = v["stage4_steps"] if stage4_steps is None else stage4_steps
        exploit_noise = v["exploit_noise"] if exploit_noise is None else exploit_noise
        if stag_max_diff is None:
            stag_max_diff = 5 if space == "darts" else 2
        if exploit_noise not in NOISES:
            raise ValueError(f"exploit_noise must be one of {', '.join(NOISES)}, got {exploit_noise!r}")
        counts = (explore_steps, exploit_steps, stage4_steps)
        if any(not isinstance(c, int) or c < 0 for c in counts) or sum(counts) < 1:
            raise ValueError(f"phase steps must be integers >= 0 with at least one step, got {counts}")
        hidden = tuple(int(h) for h in hidden)
        positive_ints = (minibatches, steps_per_epoch, replay_batch, buffer_size, stage4_buffer, stag_steps, eval_batch)
        if not hidden or min(hidden) < 1 or any(not isinstance(k, int) or k < 1 for k in positive_ints):
            raise ValueError("hidden sizes, minibatches, steps_per_epoch, replay_batch, buffer_size, "
                             "stage4_buffer, stag_steps and eval_batch must be positive integers")
        if not (search_lr > 0 and actor_lr > 0 and critic_lr > 0 and 0 <= beta1 < 1 and 0 <= beta2 < 1
                and 0 < target_mix <= 1 and 0 <= gamma < 1 and nl_noise >= 0 and gauss_std >= 0
                and 0 <= ou_theta <= 1 and ou_sigma >= 0 and isinstance(stag_max_diff, int) and stag_max_diff >= 0):
            raise ValueError("need positive learning rates, betas in [0, 1), 0 < target_mix <= 1, 0 <= gamma < 1, "
                             "non-negative noise scales, 0 <= ou_theta <= 1 and stag_max_diff >= 0")
        self.variant, self.reward = variant, reward
        self.explore_steps, self.exploit_steps, self.stage4_steps = explore_steps, exploit_steps, stage4_steps
        self.exploit_noise, self.minibatches, self.search_lr = exploit_noise, minibatches, search_lr
        self.steps_per_epoch, self.hidden, self.actor_lr, self.critic_lr = steps_per_epoch, hidden, actor_lr, critic_lr
        self.beta1, self.beta2, self.target_mix, self.gamma = beta1, beta2, target_mix, gamma
        self.replay_batch, self.buffer_size, self.stage4_buffer = replay_batch, buffer_size, stage4_buffer
        self.nl_noise, self.gauss_std, self.ou_theta, self.ou_sigma = nl_noise, gauss_std, ou_theta, ou_sigma
        self.stag_steps, self.stag_max_diff, self.eval_batch = stag_steps, stag_max_diff, eval_batch
        self._set_supernet_params(preset, dataset, split_seed, C, N, epochs, batch_size, max_train, device,
                                  threads, cifar_dir, space)

    # -- lengths ---------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.explore_steps + self.exploit_steps + self.stage4_steps

    @property
    def warmup_epochs(self) -> int:
        return self.epochs or self.paper_epochs

    @property
    def search_epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def loop_epochs(self) -> int:
        """The run's loop epochs: warm-up epochs plus search epochs (what
        :func:`harness.one_shot.planned_epochs` reads; module doc)."""
        return self.warmup_epochs + self.search_epochs

    def phase(self, step: int) -> str:
        """``explore``, ``exploit`` or ``4s`` for 0-based RL step ``step``."""
        if step < self.explore_steps:
            return "explore"
        if step < self.explore_steps + self.exploit_steps:
            return "exploit"
        return "4s"

    # -- set-up ------------------------------------------------------------------------------
    def start(self, supernet, data, rng: np.random.Generator) -> None:
        cfg = self.supernet_config()
        self.config = cfg
        self.net = supernet
        self.dev = next(supernet.parameters()).device
        self.dtype = next(supernet.parameters()).dtype
        self.input_shape, self.num_classes = tuple(data.input_shape), int(data.num_classes)

        self.x_train, self.y_train = part_tensors(data.supernet_train, cfg.max_train, self.dev, self.dtype)
        self.x_valid, self.y_valid = part_tensors(data.search_valid, cfg.max_train, self.dev, self.dtype)
        # shuffles, actions and noise: a CPU generator, so a seed draws the same on every device
        self.gen = torch.Generator().manual_seed(torch_seed(rng))
        self.coding = ActionCoding(supernet.space if cfg.space == "darts" else None)
        size = self.coding.size
        self.agent = DdpgAgent(self.hidden, self.actor_lr, self.critic_lr, (self.beta1, self.beta2),
                               self.target_mix, self.gamma, torch_seed(rng), self.dev, size)
        self.replay = Replay(min(self.buffer_size, self.total_steps), self.dev, size)
        self.w_opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=self.warmup_epochs,
                                                                eta_min=cfg.lr_min)
        self.train_perm = torch.randperm(len(self.y_train), generator=self.gen)
        self.train_pos = 0
        self.stag = Stagnation(self.stag_steps, self.stag_max_diff)
        self.ou = torch.zeros(size)
        self.state = torch.ones(size, device=self.dev)      # s_0: alpha = 1 everywhere
        self.prev_arch = None
        self.acc_os = self.loss_os = self.prev_loss = None
        self.samples: list[dict[str, Any]] = []
        self.best = -1
        self.epoch = self.step = 0
        self._costs: dict[Any, tuple[int, int]] = {}
        self._distinct: set = set()          # identities of the sampled cells

    @property
    def epochs_done(self) -> int:
        return self.epoch

    # -- data ------------------------------------------------------------------------------
    def _next_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``supernet_train`` batch of a running permutation (a new one when too few
        images are left)."""
        bs = min(self.config.batch_size, len(self.y_train))
        if self.train_pos + bs > len(self.train_perm):
            self.train_perm = torch.randperm(len(self.y_train), generator=self.gen)
            self.train_pos = 0
        idx = self.train_perm[self.train_pos:self.train_pos + bs].to(self.dev)
        self.train_pos += bs
        return self.x_train[idx], self.y_train[idx]

    def _weight_step(self, loss: torch.Tensor) -> None:
        self.w_opt.zero_grad(set_to_none=True)     # None, not zero: SGD skips the weights off the path
        loss.backward()
        nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.grad is not None], self.config.grad_clip)
        self.w_opt.step()

    @torch.no_grad()
    def _score(self, forward) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of ``forward`` on the whole ``search_valid`` part,
        in evaluation mode."""
        was = self.net.training
        self.net.eval()
        loss_sum, correct = 0.0, 0
        try:
            for s in range(0, len(self.y_valid), self.eval_batch):
                x, y = self.x_valid[s:s + self.eval_batch], self.y_valid[s:s + self.eval_batch]
                logits = forward(x)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        finally:
            self.net.train(was)
        n = len(self.y_valid)
        return correct / n, loss_sum / n

    def cost(self, arch) -> tuple[int, int]:
        """(parameters, multiply-accumulates) of ``arch`` in the search network (:func:`cell_cost`)."""
        key = self.coding.cost_key(arch)
        if key not in self._costs:
            # NB201: the key is itself the cell with its dead edges removed
            cell = key if self.coding.space is None else arch
            self._costs[key] = cell_cost(cell, self.config.C, self.config.N, self.input_shape, self.num_classes)
        return self._costs[key]

    # -- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, Any]:
        if self.epoch >= self.loop_epochs:
            raise ValueError(f"{self.name}: all {self.loop_epochs} epochs are done")
        t0, c0 = time.perf_counter(), time.process_time()
        stats = self._warmup_epoch() if self.epoch < self.warmup_epochs else self._search_epoch()
        self.epoch += 1
        stats.update({"epoch": self.epoch, "seconds": time.perf_counter() - t0,
                      "cpu_seconds": time.process_time() - c0})
        return stats

    def _warmup_epoch(self) -> dict[str, Any]:
        """One pass over ``supernet_train`` with every operation weighted equally (§3.1.2)."""
        self.net.train()
        bs = self.config.batch_size
        order = torch.randperm(len(self.y_train), generator=self.gen).to(self.dev)
        lr = self.w_opt.param_groups[0]["lr"]
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(math.ceil(len(self.y_train) / bs)):
            idx = order[b * bs:(b + 1) * bs]
            x, y = self.x_train[idx], self.y_train[idx]
            logits = forward_uniform(self.net, x)
            loss = F.cross_entropy(logits, y)
            self._weight_step(loss)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
        self.sched.step()
        return {"phase": "warmup", "lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen}

    def _search_epoch(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.acc_os is None:
            # the warmed-up one-shot model: Acc(OS), L_V(OS); the search learning rate from here on
            self.acc_os, self.loss_os = self._score(lambda x: forward_uniform(self.net, x))
            self.prev_loss = self.loss_os
            out.update({"acc_os": self.acc_os, "loss_os": self.loss_os})
        for group in self.w_opt.param_groups:
            group["lr"] = self.search_lr
        steps, updates = [], []
        for _ in range(self.steps_per_epoch):
            if self.step >= self.total_steps:
                break
            sample, update = self._rl_step()
            steps.append(sample)
            if update is not None:
                updates.append(update)
        accs = [s["valid_acc"] for s in self.samples]
        best = self.samples[self.best]
        out.update({
            "phase": steps[-1]["phase"], "lr": self.search_lr, "steps": steps,
            "train_loss": float(np.mean([s["train_loss"] for s in steps])),
            "valid_acc": steps[-1]["valid_acc"], "valid_loss": steps[-1]["valid_loss"],
            "reward_mean": float(np.mean([s["reward"] for s in steps])),
            "critic_loss": float(np.mean([u[0] for u in updates])) if updates else None,
            "actor_q": float(np.mean([u[1] for u in updates])) if updates else None,
            "best_step": best["step"], "best_valid_acc": best["valid_acc"],
            "distinct_archs": len(self._distinct),
            "ou_on": self.stag.noise_on, "ou_triggers": self.stag.triggers, "replay": len(self.replay),
            # the frontiers over every sample so far, as the steps on them (by increasing
            # cost); each step's cost and accuracy are in its epoch's "steps"
            "pareto_params": [self.samples[i]["step"]
                              for i in pareto_front([s["params"] for s in self.samples], accs)],
            "pareto_macs": [self.samples[i]["step"] for i in pareto_front([s["macs"] for s in self.samples], accs)],
        })
        return out

    def action(self, phase: str) -> tuple[torch.Tensor, str]:
        """a_t for the current state (Eq. 3.1) and the name of the noise added."""
        n = self.coding.size
        if phase == "explore":
            return uniform(self.gen, (n,)).to(self.dev), "uniform(0,1)"
        mu = self.agent.act(self.state)
        if phase == "exploit":
            z, kind = exploit_noise(self.exploit_noise, self.gen, n, self.nl_noise, self.gauss_std), self.exploit_noise
        elif self.stag.noise_on:
            self.ou = ou_step(self.ou, self.gen, self.ou_theta, self.ou_sigma)
            z, kind = self.ou, "ou"
        else:
            z, kind = torch.zeros(n), "none"
        return mu + z.to(self.dev, mu.dtype), kind

    def _rl_step(self) -> tuple[dict[str, Any], tuple[float, float] | None]:
        """Algorithm 1 for one step, then the agent's update (outside the exploration phase)."""
        t = self.step
        phase = self.phase(t)
        a, noise = self.action(phase)
        arch = self.coding.discretise(a.cpu())
        self.net.train()
        loss_sum = 0.0
        for _ in range(self.minibatches):
            x, y = self._next_train()
            loss = F.cross_entropy(self.net(x, arch), y)
            self._weight_step(loss)
            loss_sum += float(loss.detach())
        acc, vloss = self._score(lambda x: self.net(x, arch))
        w_acc, w_loss = REWARDS[self.reward]
        r = ddas_reward(acc, self.acc_os, vloss, self.prev_loss, w_acc, w_loss)
        s2 = self.coding.state(arch).to(self.dev)
        self.replay.add(self.state, a, r, s2)
        update = None
        if phase != "explore":
            window = self.stage4_buffer if phase == "4s" else self.buffer_size
            update = self.agent.update(*self.replay.sample(self.replay_batch, window, self.gen))
        if phase == "4s" and self.stag.observe(arch, self.prev_arch):
            self.ou = torch.zeros(self.coding.size)        # the process restarts when switched on
        params, macs = self.cost(arch)
        sample = {"step": t + 1, "phase": phase, "noise": noise, "arch": self.coding.jsonable(arch), "valid_acc": acc,
                  "valid_loss": vloss, "prev_loss": self.prev_loss, "reward": r,
                  "train_loss": loss_sum / self.minibatches, "params": params, "macs": macs}
        self.samples.append(sample)
        self._distinct.add(self.coding.identity(arch))
        if self.best < 0 or self._better(sample, self.samples[self.best]):
            self.best = len(self.samples) - 1
        self.prev_loss, self.prev_arch, self.state = vloss, arch, s2
        self.step += 1
        return sample, update

    @staticmethod
    def _better(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (a["valid_acc"], -a["valid_loss"]) > (b["valid_acc"], -b["valid_loss"])

    def derive(self):
        """The sampled cell of highest validation accuracy (§3.2.1; module doc); before any
        step, the discretised actor output for the current state."""
        if self.best >= 0:
            return self.coding.from_json(self.samples[self.best]["arch"])
        return self.coding.discretise(self.agent.act(self.state).cpu())

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "model": self.net.state_dict(),
                "w_opt": self.w_opt.state_dict(), "sched": self.sched.state_dict(), "gen": self.gen.get_state(),
                "train_perm": self.train_perm.clone(), "train_pos": self.train_pos,
                "agent": self.agent.state_dict(), "replay": self.replay.state_dict(),
                "stag": self.stag.state_dict(), "ou": self.ou.clone(), "state": self.state.clone(),
                "prev_arch": None if self.prev_arch is None else self.coding.jsonable(self.prev_arch),
                "acc_os": self.acc_os, "loss_os": self.loss_os, "prev_loss": self.prev_loss,
                "samples": [dict(s) for s in self.samples], "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        self.train_perm = state["train_perm"].clone()
        self.train_pos = int(state["train_pos"])
        self.agent.load_state_dict(state["agent"])
        self.replay.load_state_dict(state["replay"])
        self.stag.load_state_dict(state["stag"])
        self.ou = state["ou"].clone()
        self.state = state["state"].clone().to(self.dev)
        self.prev_arch = None if state["prev_arch"] is None else self.coding.from_json(state["prev_arch"])
        self.acc_os, self.loss_os, self.prev_loss = state["acc_os"], state["loss_os"], state["prev_loss"]
        self.samples = [dict(s) for s in state["samples"]]
        self._distinct = {self.coding.identity(self.coding.from_json(s["arch"])) for s in self.samples}
        self.best = int(state["best"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
