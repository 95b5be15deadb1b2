"""CADAM: a DDPG-style agent whose every action is a whole architecture.

Source: Mills, "On the Application of Continuous Deterministic Reinforcement Learning in
Neural Architecture Search" (MSc thesis, University of Alberta, 2020), chapter 4
("Continuous Action-Discrete Architecture Mapping", CADAM), §4.1:

* action ``a_t = mu(s_t) + Z_t``, ``Z_t ~ U(-xi, xi)`` (Eq. 4.2); the actor ends in a
  sigmoid, so actions live in (0, 1)^(|E| x |O|);
* discretisation by a per-edge argmax (Algorithm 3, NAS-Bench-201). On another space the
  action has one block per categorical decision of ``space.decisions`` (for NAS-Bench-201
  that is exactly |E| x |O| = 6 x 5) and each block's argmax is that decision's token
  (the DARTS space with ``discretise="darts"``: Algorithm 2, below);
* reward ``r_t = 100 ** Acc`` with Acc the accuracy as a fraction (Eq. 4.1);
* state ``s_t`` = element-wise mean of the one-hot encodings of the top-K architectures
  seen so far (§4.1.1; before anything is seen the state is all zeros);
* critic ``Q(a)`` without a state input (Eq. 4.3), trained with the check loss at
  quantile ``tau`` (Eq. 4.4); actor trained to maximise ``Q(mu(s))`` (Eq. 4.5 prints the
  loss as the batch mean of ``Q(mu(s_i))``; DDPG *ascends* Q, so the loss minimised here
  is ``-mean Q(mu(s_i))``, as the issue states);
* replay buffer of ``(s_t, a_t, r_t)``; training starts once it holds ``|B_R|`` samples,
  then ``C = min(floor(|R| / |B_R|), C_max)`` cycles per step (Eq. 4.6), each cycle one
  critic and one actor update on a batch drawn uniformly from the buffer;
* exploration (§4.2.1, NAS-Bench-201): epsilon-greedy with random actions
  ``U(0, 1)^(|E| x |O|)``; epsilon follows a cosine from 1.0 down to 0.05 at step 175
  and stays there (on a DARTS supernet, §4.2.2: random warm-up instead, below).

Defaults (presets ``table41`` and ``printed``) are the NAS-Bench-201 settings: K = 64,
tau = 0.9, |B_R| = 8, xi = 1e-4, C_max = 10 (§4.2.1); actor and critic MLPs with hidden
layers (128, 256, 128), ReLU,
Adam betas (0.9, 0.99), critic learning rate 1e-4 (§4.4.3) -- and an actor learning rate
of **1e-4, not the printed 1e-8**:

The actor learning rate: default 1e-4 (``preset="table41"``), printed 1e-8 (``preset="printed"``)
--------------------------------------------------------------------------------------------------

§4.4.3 prints actor / critic learning rates of 1e-8 / 1e-4. With 1e-8 the actor stays at its
initial weights for any budget of Table 4.1's size, so after epsilon reaches its floor
(step 175) the action is a fixed function of the state, which changes only when the top-K
does: on NAS-Bench-201 CIFAR-10, 866 of the 1,000 queries of a run (mean of 10 seeds)
re-propose an architecture already evaluated, new ones come almost only from the 5 %
random actions, and the best validation accuracy at 500 steps is 90.99 % against the
paper's CADAM-500 91.36 % (1,000 steps: 91.01 % against 91.47 %; CIFAR-100 71.45 % and
ImageNet16-120 45.45 % at 500 against 72.47 % and 46.23 %). The printed value does not
reproduce the thesis's own Table 4.1. With an actor rate of 1e-4 (the actor rate the same
thesis uses for DDAS, §3.4.2; nothing else changed, nothing tuned on test accuracy) the
100-seed runs reproduce Table 4.1's CADAM rows (1,000 steps with repeats charged, seeds
0-99; experiment file ``results/experiments/cadam_table41_nb201_100seeds.toml``, numbers in
``results/learned_nb201.md``), mean best validation accuracy, ours vs the paper's:

* 500 steps: 91.39 / 72.71 / 46.31 % (CIFAR-10 / CIFAR-100 / ImageNet16-120), paper
  91.36 / 72.47 / 46.23 %;
* 1,000 steps: 91.51 / 73.03 / 46.48 %, paper 91.47 / 73.02 / 46.58 %

(test accuracy of those architectures within one standard deviation on CIFAR-10 and -100;
lower on ImageNet16-120, where the best-by-validation and best-by-test cells differ). So the
default is the configuration that reproduces the published results, and the printed value
stays reachable: ``cadam:preset=printed``. An explicit ``actor_lr`` overrides either preset.

CADAM on a DARTS-space supernet: ``preset="darts"`` (§4.2.2, §4.4.3)
--------------------------------------------------------------------

§4.2.2 queries supernets of the DARTS space (DARTS and PC-DARTS search networks, 8 cells of
16 initial channels, §4.4.2: ``nas-harness supernet train darts --preset gpu``, with
``--partial-channels 4`` for PC-DARTS; the oracle ``supernet/NAME``). There the action is
``alpha in R^(|E| x |O|)`` for both cells: 2 x 14 x 7 numbers (cell normal then reduction,
edge in :data:`oracles.darts_space.EDGES` order, operation in the space's order without
``none``: "We omit the 'none' operation during the search, reducing |O| to 7"), the layout
of :meth:`oracles.darts_space.DartsSpace.encode`, which is also the one-hot of the top-K
state. It is discretised by Algorithm 2 (``discretise="darts"``), "equivalent to the
procedure used by DARTS" (§4.1.1): for each intermediate node the two incoming edges whose
strongest operation is strongest, each with that operation, ties to the lower edge and then
the lower operation as Algorithm 2's row-major argmax (:func:`discretise_darts`, which is
:func:`oracles.darts_space.derive`, the rule :func:`algorithms.ddas.discretise_darts`
applies too). Algorithm 2 as printed advances its row window by ``End + 1`` with ``n = 1``
for the first node; the rows of node ``j`` are its ``j`` incoming edges (2, 3, 4, 5 rows),
which is what DARTS does and what "ensures that only 8 edges are activated at a time" means.

The preset's values, each from §4.2.2 unless said otherwise: ``top_k`` K = 500, ``tau`` =
0.95, ``batch_size`` |B_R| = 64, ``xi`` = 5e-5, ``max_cycles`` C_max = 1, ``replay_size``:
the last 5,000 experiences, exploration by random warm-up only (``warmup`` W = 3,000;
epsilon-greedy off: ``eps_start = eps_end = 0``), ``hidden`` (256, 256, 256) ("when
operating on a DARTS-like supernet", §4.4.3), Adam betas (0.9, 0.99) and critic rate 1e-4
(§4.4.3). The actor rate is 1e-4, as ``table41``: §4.4.3 prints 1e-8 for both settings,
which leaves the actor at its initial weights (above); ``cadam:preset=darts,actor_lr=1e-8``
is the printed value. The thesis runs 20,000 steps, one query each, repeats included: that
is ``--budget 20000 --charge-repeats`` (as for Table 4.1; the default budget counts
distinct architectures, so repeats would come free). Everything else is the same algorithm as on
NAS-Bench-201.

The result. The thesis keeps the top-K by the supernet's *validation* accuracy and then
picks its final architecture by the supernet's *test* accuracy among the final top-K
(§4.2.3, §4.4.1, Table 4.4). Ours does not look at test data: the run's result is the best
architecture by the search metric, the supernet's ``search_valid`` accuracy (the oracle's
test accuracy is recorded as the report metric, never shown to the algorithm), so our pick
is the thesis's "Val" row of Table 4.4, not its "Test" row.

A scaled variant, ``preset="darts-cpu"``, for runs a CPU finishes (500 steps: ``--budget
500 --charge-repeats``, at most 5.6 CPU-minutes on the cpu-preset supernets): the darts
preset with the counts tied to the run's length divided by 40, the ratio of 500 to 20,000
steps: W = 75, the last 125 experiences, K = 13 (12.5 rounded up); networks, tau, xi,
|B_R| and C_max unchanged. It is not the thesis's setting, only its proportions.
Measured (docs/supernets.md; cpu-preset supernets, C 8, 5 cells, digits, one thread): a
query of a new cell 0.66 CPU-s (DARTS) and 0.60 (PC-DARTS, K = 4), the agent 11.5 CPU-ms a
step at the darts preset's sizes. After the warm-up the agent often re-proposes a cell (the
state moves only when a new cell enters the top-K, and xi = 5e-5 rarely moves the argmax):
at the darts preset's sizes with a 20-step warm-up, 1 new cell in the next 40 steps on
either supernet; darts-cpu (K 13), 18 new cells in the 75 steps after its warm-up.

Choices the paper leaves open, made here:

* The top-K history holds distinct architectures (a repeat does not take a second slot).
* A step is one ``ask``/``tell`` pair: as in the paper, an action that decodes to an
  architecture already evaluated is still a step (the runner answers it from its cache).
  Every step trains (Eq. 4.6), repeat or not, so a run's time grows with its steps, not
  with its distinct architectures: under the harness's default budget (distinct
  architectures, repeats free) the printed actor rate needs about 8,700 steps, ~13 min of
  CPU, for 500 distinct architectures on NAS-Bench-201, against ~10 s for 500 steps with
  ``--charge-repeats`` (the paper's counting, used for Table 4.1) or the default actor rate
  (1e-4); even with 1e-4 a converged actor re-proposes known architectures, so runs to the
  optimum under distinct counting can take tens of thousands of steps
  (results/learned_nb201.md).
  Skipping training on repeats would make it another algorithm; the runner's
  ``max_repeats`` stops a run that only repeats itself.
* Invalid token sequences (``space.from_tokens`` raises) enter the replay buffer with the
  reward of accuracy 0 (``100 ** 0 = 1``), and the step is retried with a random action;
  after ``max_invalid`` failures a uniformly random architecture is used
  (``diagnostics()['invalid_actions']``, ``['fallbacks']``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oracles.darts_space import CELLS, N_EDGES, DartsArch, DartsSpace, derive
from oracles.errors import UserError

from .base import DONE, FailedResults, SearchAlgorithm
from ._torch_common import (adam, build_seeded, one_hot_tokens, random_unseen, segment_argmax, torch_setup,
                            try_arch, uniform)

#: the NAS-Bench-201 settings (§4.2.1; hidden sizes §4.4.3); replay_size 0: every experience kept
NB201_SETTINGS: dict[str, Any] = {
    "top_k": 64, "tau": 0.9, "batch_size": 8, "xi": 1e-4, "max_cycles": 10, "hidden": (128, 256, 128),
    "eps_start": 1.0, "eps_end": 0.05, "eps_steps": 175, "warmup": 0, "replay_size": 0, "discretise": "argmax"}
#: the DARTS-supernet settings (§4.2.2; hidden sizes §4.4.3), module docstring
DARTS_SETTINGS: dict[str, Any] = {
    "top_k": 500, "tau": 0.95, "batch_size": 64, "xi": 5e-5, "max_cycles": 1, "hidden": (256, 256, 256),
    "eps_start": 0.0, "eps_end": 0.0, "eps_steps": 0, "warmup": 3000, "replay_size": 5000, "discretise": "darts"}

PRESETS: dict[str, dict[str, Any]] = {
    # the configuration whose 100-seed runs reproduce Table 4.1 (actor rate of DDAS, §3.4.2)
    "table41": {"actor_lr": 1e-4, **NB201_SETTINGS},
    # §4.4.3 as printed; the actor does not move (see the module docstring)
    "printed": {"actor_lr": 1e-8, **NB201_SETTINGS},
    # §4.2.2 on a DARTS or PC-DARTS supernet, actor rate as table41 (module docstring)
    "darts": {"actor_lr": 1e-4, **DARTS_SETTINGS},
    # the same scaled to 500 steps: counts tied to the run's length divided by 40
    "darts-cpu": {"actor_lr": 1e-4, **DARTS_SETTINGS, "top_k": 13, "warmup": 75, "replay_size": 125},
}
DISCRETISE = ("argmax", "darts")


class _PresetHidden(tuple):
    """The default of ``hidden``: it shows as NAS-Bench-201's sizes (what ``algorithms info``
    prints and the command line writes) but, being this very object, marks "not given", so a
    preset's sizes apply; a value given explicitly, even the same sizes, is another object."""


_HIDDEN_DEFAULT = _PresetHidden(NB201_SETTINGS["hidden"])


def discretise_darts(action: np.ndarray, ops) -> DartsArch:
    """Algorithm 2 (§3.1.2; DARTS's rule, :func:`oracles.darts_space.derive`): the cell pair of
    an action of 2 x 14 x ``len(ops)`` numbers (row-major: cell (normal, reduce), edge in
    :data:`oracles.darts_space.EDGES` order, operation in ``ops`` order, ``none`` not among
    them): per intermediate node the two incoming edges whose strongest operation is
    strongest, each with that operation; ties to the lower edge, then the lower operation."""
    a = np.asarray(action, dtype=np.float64).reshape(len(CELLS), N_EDGES, len(ops))
    return derive(a[0], a[1], ops)


def _mlp(torch, sizes, out_act=None):
    nn = torch.nn
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


def check_loss(u, tau):
    """Check (pinball) loss of Eq. 4.4 on residuals ``u = r - Q(a)``: ``u (tau - 1[u < 0])``,
    averaged over the batch."""
    return (u * (tau - (u < 0).to(u.dtype))).mean()


class Cadam(SearchAlgorithm):
    """CADAM (Mills 2020, §4.1, Algorithm 3) with the NAS-Bench-201 settings of §4.2.1 / §4.4.3.

    Parameters
    ----------
    preset: ``"table41"`` (default: NAS-Bench-201, actor_lr 1e-4, reproduces Table 4.1),
        ``"printed"`` (the same with actor_lr 1e-8 as printed in §4.4.3), ``"darts"`` (a
        DARTS-space supernet, §4.2.2) or ``"darts-cpu"`` (that scaled to 500 steps); see
        the module docstring. Every parameter below whose default is ``None`` takes the
        preset's value unless given.
    top_k: K, the number of best architectures averaged into the state (§4.2.1: 64; §4.2.2:
        500). ``None``: the preset's.
    tau: quantile of the critic's check loss (§4.2.1: 0.9; §4.2.2: 0.95). ``None``: preset.
    batch_size: |B_R|, replay samples per training cycle (§4.2.1: 8; §4.2.2: 64). ``None``:
        the preset's.
    xi: half-width of the uniform action noise U(-xi, xi) (§4.2.1: 1e-4; §4.2.2: 5e-5).
        ``None``: the preset's.
    max_cycles: C_max of Eq. 4.6 (§4.2.1: 10; §4.2.2: 1). ``None``: the preset's.
    hidden: hidden layer sizes of actor and critic (§4.4.3: 128/256/128 on NAS-Bench-201,
        256/256/256 on a DARTS supernet); left at its default, the preset's sizes.
    actor_lr: Adam learning rate of the actor; ``None``: the preset's (table41, darts: 1e-4,
        the DDAS rate of §3.4.2; printed: 1e-8, §4.4.3).
    critic_lr: Adam learning rate of the critic (§4.4.3: 1e-4).
    beta1, beta2: Adam betas (§4.4.3: 0.9, 0.99).
    eps_start, eps_end, eps_steps: epsilon-greedy cosine schedule (§4.2.1: 1.0 -> 0.05 by
        step 175; §4.2.2 uses random warm-up instead: 0, 0, 0). ``None``: the preset's.
    warmup: random warm-up steps W (§4.1.2, the alternative to epsilon-greedy used on
        supernets; §4.2.2: 3,000; 0 = off on NAS-Bench-201). ``None``: the preset's.
    reward_base: the reward is ``reward_base ** accuracy`` (Eq. 4.1: 100).
    max_invalid: retries of a step whose action decodes to an invalid architecture.
    device: torch device (``cpu`` by default).
    replay_size: the replay buffer keeps the last ``replay_size`` experiences (§4.2.2:
        5,000); 0 keeps every one (NAS-Bench-201, where the thesis sets no limit).
        ``None``: the preset's.
    discretise: how an action becomes an architecture: ``"argmax"``, one block per
        categorical decision of the space, each block's argmax its token (Algorithm 3 on
        NAS-Bench-201); ``"darts"``, 2 x 14 x 7 edge-operation weights discretised by
        Algorithm 2, DARTS's top-2 rule (DARTS space only, §4.2.2). ``None``: the preset's.
    """

    name = "cadam"
    summary = "DDPG-style actor-critic emitting whole architectures (CADAM)"
    paper = ("Mills, On the Application of Continuous Deterministic Reinforcement Learning in Neural "
             "Architecture Search (MSc thesis, 2020), §4.1 (Algorithms 2 and 3), §4.2.1 (NAS-Bench-201 "
             "settings, Table 4.1), §4.2.2 (DARTS and PC-DARTS supernets), §4.4.3 (agent hyper-parameters)")
    presets = PRESETS
    extra = "learned"
    #: parameters added after runs were recorded: left out of get_params at these values when
    #: the preset gives them too, so those runs' configurations keep their fingerprints
    legacy_params: dict[str, Any] = {"replay_size": 0, "discretise": "argmax"}

    def __init__(self, preset: str = "table41", top_k: int | None = None, tau: float | None = None,
                 batch_size: int | None = None, xi: float | None = None, max_cycles: int | None = None,
                 hidden: tuple = _HIDDEN_DEFAULT, actor_lr: float | None = None,
                 critic_lr: float = 1e-4, beta1: float = 0.9, beta2: float = 0.99,
                 eps_start: float | None = None, eps_end: float | None = None, eps_steps: int | None = None,
                 warmup: int | None = None, reward_base: float = 100.0, max_invalid: int = 100,
                 device: str = "cpu", replay_size: int | None = None, discretise: str | None = None):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        p = PRESETS[preset]
        # the resolved values are stored, so a run's metadata records what was actually used
        actor_lr = float(p["actor_lr"] if actor_lr is None else actor_lr)
        top_k = int(p["top_k"] if top_k is None else top_k)
        tau = float(p["tau"] if tau is None else tau)
        batch_size = int(p["batch_size"] if batch_size is None else batch_size)
        xi = float(p["xi"] if xi is None else xi)
        max_cycles = int(p["max_cycles"] if max_cycles is None else max_cycles)
        eps_start = float(p["eps_start"] if eps_start is None else eps_start)
        eps_end = float(p["eps_end"] if eps_end is None else eps_end)
        eps_steps = int(p["eps_steps"] if eps_steps is None else eps_steps)
        warmup = int(p["warmup"] if warmup is None else warmup)
        replay_size = int(p["replay_size"] if replay_size is None else replay_size)
        discretise = str(p["discretise"] if discretise is None else discretise)
        if hidden is _HIDDEN_DEFAULT:
            hidden = p["hidden"]
        elif isinstance(hidden, str):       # "256/256/256", as the command line writes it
            hidden = tuple(h for h in hidden.replace(",", "/").split("/") if h.strip())
        hidden = tuple(int(h) for h in hidden)
        if top_k < 1 or batch_size < 1 or max_cycles < 1 or not hidden or min(hidden) < 1:
            raise ValueError("top_k, batch_size, max_cycles and hidden sizes must be positive")
        if not 0.0 < tau < 1.0:
            raise ValueError("tau must be in (0, 1)")
        if not 0.0 <= eps_end <= eps_start <= 1.0 or eps_steps < 0 or warmup < 0:
            raise ValueError("need 0 <= eps_end <= eps_start <= 1, eps_steps >= 0, warmup >= 0")
        if not (0.0 < actor_lr < math.inf and 0.0 < critic_lr < math.inf):
            raise ValueError("actor_lr and critic_lr must be positive")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError("beta1 and beta2 (Adam) must be in [0, 1)")
        if reward_base <= 1.0 or xi < 0:
            raise ValueError("reward_base must exceed 1 and xi must be >= 0")
        if replay_size < 0 or (replay_size and replay_size < batch_size):
            raise ValueError("replay_size must be 0 (keep everything) or at least batch_size")
        if discretise not in DISCRETISE:
            raise ValueError(f"discretise must be one of {', '.join(DISCRETISE)}, got {discretise!r}")
        self.preset = preset
        self.top_k, self.tau, self.batch_size, self.xi = top_k, tau, batch_size, xi
        self.max_cycles, self.hidden = max_cycles, hidden
        self.actor_lr, self.critic_lr, self.beta1, self.beta2 = actor_lr, critic_lr, beta1, beta2
        self.eps_start, self.eps_end, self.eps_steps, self.warmup = eps_start, eps_end, eps_steps, warmup
        self.reward_base, self.max_invalid, self.device = reward_base, max_invalid, device
        self.replay_size, self.discretise = replay_size, discretise

    def get_params(self) -> dict[str, Any]:
        """Every parameter's value, except ``replay_size`` and ``discretise`` where they hold
        the NAS-Bench-201 values that runs recorded before these parameters existed and the
        preset gives them too (rebuilding from the result gives the same configuration)."""
        out = super().get_params()
        for key, legacy in self.legacy_params.items():
            if out[key] == legacy and PRESETS[self.preset][key] == legacy:
                del out[key]
        return out

    # -- lifecycle ------------------------------------------------------------------
    def start(self, space, rng):
        torch, gen, dev, seed = torch_setup(rng, self.device)
        self._torch, self._gen, self._dev, self._space, self._rng = torch, gen, dev, space, rng
        self._decisions = tuple(int(d) for d in space.decisions)
        if self.discretise == "darts":
            if not isinstance(space, DartsSpace):
                raise UserError(f"cadam: discretise=darts (preset darts) needs the DARTS space, a supernet/NAME "
                                f"of a darts supernet; this oracle's space is {getattr(space, 'name', space)!r}")
            # edge x operation weights of both cells, operations without none (Algorithm 2)
            n = int(space.encoding_size)
        else:
            n = int(sum(self._decisions))
        self.action_size = n

        def build():
            actor = _mlp(torch, (n, *self.hidden, n), torch.nn.Sigmoid())
            critic = _mlp(torch, (n, *self.hidden, 1))
            return actor, critic
        self.actor, self.critic = (m.to(dev) for m in build_seeded(seed, build))
        betas = (self.beta1, self.beta2)
        self._actor_opt = adam(self.actor.parameters(), lr=self.actor_lr, betas=betas)
        self._critic_opt = adam(self.critic.parameters(), lr=self.critic_lr, betas=betas)
        # replay buffer, grown by doubling (numpy: cheap appends, one tensor per batch), or a
        # ring of the last replay_size experiences
        rows = self.replay_size or 256
        self._buf_s = np.zeros((rows, n), dtype=np.float32)
        self._buf_a = np.zeros((rows, n), dtype=np.float32)
        self._buf_r = np.zeros(rows, dtype=np.float32)
        self._n_buf = 0
        self._n_stored = 0
        # top-K history: distinct identities -> (accuracy, one-hot)
        self._top: list[tuple[float, str, np.ndarray]] = []
        self._top_ids: set[str] = set()
        self.state = np.zeros(n, dtype=np.float32)
        self.step = 0
        self._pending: list[tuple[np.ndarray, np.ndarray, object]] = []   # (s, a, arch) asked
        self.n_random = self.n_invalid = self.n_fallbacks = self.n_cycles = 0
        self._failures = FailedResults()
        self._last = {"critic_loss": None, "actor_q": None}

    # -- policy ---------------------------------------------------------------------
    def epsilon(self, step: int | None = None) -> float:
        """Cosine annealing from ``eps_start`` to ``eps_end`` over ``eps_steps`` steps."""
        t = self.step if step is None else step
        if t >= self.eps_steps:
            return self.eps_end
        return self.eps_end + 0.5 * (self.eps_start - self.eps_end) * (1 + math.cos(math.pi * t / self.eps_steps))

    def _action(self, force_random: bool = False) -> np.ndarray:
        torch = self._torch
        explore = force_random or self.step < self.warmup or float(
            uniform(self._gen, (1,))) < self.epsilon()
        if explore:
            self.n_random += 1
            return uniform(self._gen, (self.action_size,)).numpy()
        with torch.no_grad():
            mu = self.actor(torch.as_tensor(self.state, device=self._dev)[None])[0].cpu()
        return (mu + uniform(self._gen, (self.action_size,), -self.xi, self.xi)).numpy()

    def ask(self):
        space = self._space
        force = False
        for _ in range(self.max_invalid):
            a = self._action(force)
            arch = self._decode(a)
            if arch is not None:
                self._pending.append((self.state.copy(), a.astype(np.float32), arch))
                return arch
            # invalid architecture: penalise it as accuracy 0 and retry with a random action
            self.n_invalid += 1
            self._store(self.state, a, self.reward_base ** 0.0)
            force = True
        self.n_fallbacks += 1
        arch = random_unseen(space, self._rng, self._top_ids)
        if arch is DONE:
            return DONE
        a = self._one_hot(arch)
        self._pending.append((self.state.copy(), a, arch))
        return arch

    def _decode(self, a: np.ndarray):
        """The architecture of action ``a`` (None when the space rejects it)."""
        if self.discretise == "darts":
            return discretise_darts(a, self._space.encoded_ops)
        return try_arch(self._space, segment_argmax(a, self._decisions)[0])

    def _one_hot(self, arch) -> np.ndarray:
        """``arch`` in the action's layout: the state's rows (§4.1.1)."""
        if self.discretise == "darts":
            return self._space.encode(arch).astype(np.float32)
        return one_hot_tokens(np.array(self._space.tokens(arch)), self._decisions)[0]

    def tell(self, arch, observation):
        if self._pending and self._pending[0][2] == arch:
            s, a, _ = self._pending.pop(0)
        else:   # told about an architecture we did not ask for: use its one-hot as the action
            s, a = self.state.copy(), self._one_hot(arch)
        # a failed training is the worst result told so far (FailedResults): an unchecked
        # -inf would be a reward of reward_base ** -inf = 0, the best possible on a
        # minimised metric whose scores are negative
        acc, released = self._failures.tell(observation.value, (s, a, arch))
        for (hs, ha, harch), v in released:
            self._learn(hs, ha, harch, v)
        if acc is not None:
            self._learn(s, a, arch, acc)
        self.step += 1
        self._train()

    def _learn(self, s, a, arch, acc):
        self._store(s, a, self.reward_base ** acc)
        self._update_top(arch, acc)

    # -- state and buffer -------------------------------------------------------------
    def _update_top(self, arch, acc):
        ident = self._space.identity(arch)
        if ident in self._top_ids:
            return
        if len(self._top) >= self.top_k and acc <= self._top[-1][0]:
            return
        self._top.append((acc, ident, self._one_hot(arch)))
        self._top.sort(key=lambda e: -e[0])     # stable: earlier entries win ties
        self._top_ids.add(ident)
        if len(self._top) > self.top_k:
            _, gone, _ = self._top.pop()
            self._top_ids.discard(gone)
        self.state = np.mean([e[2] for e in self._top], axis=0).astype(np.float32)

    def top_k_onehots(self) -> np.ndarray:
        """``(k, action_size)`` one-hot rows of the stored top-K architectures."""
        return np.array([e[2] for e in self._top], dtype=np.float32).reshape(-1, self.action_size)

    def _store(self, s, a, r):
        if self.replay_size:
            # the last replay_size experiences (§4.2.2); the order in the ring does not
            # matter, batches are drawn uniformly
            i = self._n_stored % self.replay_size
            self._buf_s[i], self._buf_a[i], self._buf_r[i] = s, a, r
            self._n_stored += 1
            self._n_buf = min(self._n_stored, self.replay_size)
            return
        if self._n_buf == len(self._buf_r):
            grow = len(self._buf_r)
            self._buf_s = np.concatenate([self._buf_s, np.zeros_like(self._buf_s[:grow])])
            self._buf_a = np.concatenate([self._buf_a, np.zeros_like(self._buf_a[:grow])])
            self._buf_r = np.concatenate([self._buf_r, np.zeros_like(self._buf_r[:grow])])
        i = self._n_buf
        self._buf_s[i], self._buf_a[i], self._buf_r[i] = s, a, r
        self._n_buf += 1
        self._n_stored += 1

    # -- learning -------------------------------------------------------------------
    def _train(self):
        torch = self._torch
        n = self._n_buf
        if n < self.batch_size:
            return
        cycles = min(n // self.batch_size, self.max_cycles)          # Eq. 4.6
        S = torch.as_tensor(self._buf_s[:n], device=self._dev)
        A = torch.as_tensor(self._buf_a[:n], device=self._dev)
        R = torch.as_tensor(self._buf_r[:n], device=self._dev)
        for _ in range(cycles):
            idx = torch.randperm(n, generator=self._gen)[:self.batch_size].to(self._dev)
            q = self.critic(A[idx])[:, 0]
            closs = check_loss(R[idx] - q, self.tau)                    # Eq. 4.4
            self._critic_opt.zero_grad()
            closs.backward()
            self._critic_opt.step()
            aq = self.critic(self.actor(S[idx]))[:, 0].mean()           # Eq. 4.5, ascended
            self._actor_opt.zero_grad()
            (-aq).backward()
            self._actor_opt.step()
            self.n_cycles += 1
        self._last = {"critic_loss": float(closs.detach()), "actor_q": float(aq.detach())}

    def diagnostics(self) -> dict[str, Any]:
        return {"steps": self.step, "random_actions": self.n_random, "invalid_actions": self.n_invalid,
                "fallbacks": self.n_fallbacks, "train_cycles": self.n_cycles,
                "replay_size": self._n_buf, "replay_stored": self._n_stored, "epsilon_now": self.epsilon(),
                "failed_results": self._failures.n_failed,
                "top_k_best": self._top[0][0] if self._top else None, **self._last}
