"""MLPNAS: an LSTM controller that samples multi-layer perceptrons layer by layer, trained
with REINFORCE.

Source: Minutoli & Ciranni, "Neural Architecture Search: An Overview": §4 (the controller:
an LSTM gives a probability distribution over a vocabulary of layers, "(n. of neurons,
activation function)" pairs, and the next layer is drawn from it; each controller epoch
samples a number of architectures, which are trained and evaluated), §4.1 (sequences are
valid and not repeated; "after every controller epoch, a new dataset that collects the
architectures sampled since the first epoch is created for the controller to learn from";
one-shot bigram weight sharing), §4.2 (the accuracy predictor), §5.1 (settings: LSTM size
128, Adam with learning rate 0.01 and a "learning rate decay of 0.1", 10 controller epochs of
10 architectures; the "extended" run of 15 epochs of 30 architectures, its Table 4), appendix
7.1 (Algorithm 2, REINFORCE: ``theta <- theta + alpha * gamma^t * G * grad ln pi(a_t|s_t)``
with ``G`` the discounted cumulative reward "w.r.t. a baseline").

The space is :class:`oracles.mlp_space.MLPSpace` (its tokens: position 0 one of the 28 dense
layers, later positions one of the 30 vocabulary words, 0 = end of the network). The
controller works on any space with tokens (every registered algorithm must), but on an MLP
space it samples as the paper does: one layer per step from one shared vocabulary, and the
network ends at the first end word.

What the paper leaves open, and what this module does (each a parameter):

* **Controller.** One embedding and one softmax head over the space's vocabulary (for MLPs
  the 30 words of :data:`oracles.mlp_space.VOCAB`; elsewhere the positions' tokens share
  indices), an LSTM of ``hidden_size`` in between; step 0 reads a learned start embedding,
  step i the word chosen at step i-1. A position's softmax covers only the words it allows
  (position 0 of an MLP: the dense layers).
* **Episode and reward.** One architecture is one episode: its layer decisions up to and
  including the end word (an MLP of 9 hidden layers has no end word). The only reward is
  the network's search score (validation accuracy) after its last decision.
* **G(t), baseline and discount** (Algorithm 2; the paper defers G(t) to its code,
  footnote 6, which we did not use). With one terminal reward ``R`` in an episode of ``T``
  decisions, the discounted return of step t is ``G_t = gamma^(T-1-t) R``; the baseline of
  that return is ``gamma^(T-1-t) b`` (``b``: the baseline of ``R``), so "G w.r.t. the
  baseline" is ``gamma^(T-1-t) (R - b)``, and Algorithm 2's extra ``gamma^t`` makes every
  decision's weight ``gamma^(T-1) (R - b)``. Discounting therefore weighs an episode's update
  by its length: a deep network's update is damped. ``gamma`` = 0.9, our choice (the paper
  names a discount but gives no value); ``gamma=1`` is undiscounted REINFORCE. ``b`` is an
  exponential moving average of the rewards (``baseline_decay`` 0.9, started at the first
  controller epoch's mean): §7.1 names a constant 0.5 only as an example that "will make it
  discriminate about half of the actions as good and half as bad", which the running mean
  does on any scale (on digits almost every network scores above 0.5).
* **Controller epochs.** The controller asks ``batch_size`` architectures (§5.1: 10), waits
  (answers WAIT) until all are told, then makes one Adam step on the loss of its dataset:
  with ``replay=True`` (default, §4.1) every policy sample since the first epoch, with the
  advantages ``R - b`` under the current baseline; ``replay=False``: the last epoch's only
  (on-policy REINFORCE). The paper does not say how many gradient steps a controller epoch
  makes: one.
* **"Learning rate decay of 0.1"** (§5.1): read as Keras's optimiser ``decay`` argument (the
  paper's children are Keras models), inverse-time decay per optimiser step, so after ``n``
  controller epochs the rate is ``lr / (1 + 0.1 n)``: 0.01 at the first epoch, 0.005 at the
  eleventh. (An exponential reading, times 0.1 per epoch, would leave 1e-11 after ten epochs:
  no learning at all.)
* **Schedule.** The paper's loop is ``controller_epochs`` epochs (§5.1: 10) and ends there;
  the algorithm then answers DONE (``controller_epochs=0``: no end, the run's budget decides).
  Its best network is the run's best validation score, as the harness reports it.
* **Repeats** (§4.1, "no repeating ones are being sampled"): a sample whose network was
  already asked is drawn again, up to ``max_resample`` times, then a uniformly random
  unasked network is asked instead (not a policy sample: no gradient; counted as a fallback).
  On a finite space with every network asked, DONE.
* **Predictor** (``predictor=True``, §4.2): a single dense layer on the LSTM's output after
  the network's last decision predicts its score, trained with the squared error on the
  measured scores of every network asked so far; its loss is added to the REINFORCE loss
  (weight ``predictor_weight``, 1 as Keras's default loss weights), so the predictor shares
  the LSTM's weights and shapes the representation the policy samples from ("an
  optimization that doesn't focus solely on the above REINFORCE loss function, but also on
  how well the accuracy predictor is becoming", §4.2). The reward stays the measured score:
  the paper does not use the predictions to screen or replace trainings, so neither does
  this module; ``diagnostics()`` reports the predictor's error.
* **One-shot** (``one_shot=True``, §4.1): weights of identical consecutive layer pairs are
  shared between the networks of a run. That is the oracle's part (training): a live MLP
  oracle with ``bigram_sharing=true`` keeps a run-scoped bank of bigram weights
  (:class:`oracles.live.BigramWeightBank`) and declares the feature
  ``"bigram-weight-sharing"``; ``one_shot`` requires it (:meth:`MLPNAS.oracle_requirements`)
  and the runner refuses a run whose oracle lacks it, so a one-shot run can never quietly
  train its networks independently. Such results depend on the run's history and are never
  served from the shared result store.

Presets (``preset``): ``plain`` (Table 1), ``predictor`` (Table 2), ``one_shot_predictor``
(Table 3), ``extended`` (Table 4: one-shot and predictor, 15 epochs of 30 networks).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from oracles.errors import UserError
from oracles.mlp_space import BIGRAM_SHARING

from .base import DONE, WAIT, FailedResults, SearchAlgorithm
from ._torch_common import adam, build_seeded, random_unseen, require_finite, torch_setup, try_arch


PRESETS: dict[str, dict[str, Any]] = {
    "plain": {"predictor": False, "one_shot": False, "controller_epochs": 10, "batch_size": 10},
    "predictor": {"predictor": True, "one_shot": False, "controller_epochs": 10, "batch_size": 10},
    "one_shot_predictor": {"predictor": True, "one_shot": True, "controller_epochs": 10, "batch_size": 10},
    "extended": {"predictor": True, "one_shot": True, "controller_epochs": 15, "batch_size": 30},
}


# --- the controller ----------------------------------------------------------------------------
def _vocabulary(space) -> tuple[list[np.ndarray], int, int | None]:
    """Per position, the word of each token; the vocabulary's size; the end word (MLPs)."""
    from oracles.mlp_space import END, MLPSpace, MLPTableSpace, N_DENSE, VOCAB
    decisions = [int(d) for d in space.decisions]
    if isinstance(space, (MLPSpace, MLPTableSpace)):
        # position 0 chooses among the dense layers: token t there is word t + 1
        words = [np.arange(1, N_DENSE + 1)] + [np.arange(len(VOCAB)) for _ in decisions[1:]]
        return words, len(VOCAB), END
    return [np.arange(d) for d in decisions], max(decisions), None


def _build_controller(torch, words, vocab, hidden, predictor):
    nn = torch.nn

    class Controller(nn.Module):
        """Embedding (vocabulary + start word) -> LSTM -> one softmax head over the
        vocabulary; optionally a dense predictor head on the LSTM's output."""

        def __init__(self):
            super().__init__()
            self.start_word = vocab
            self.embed = nn.Embedding(vocab + 1, hidden)
            self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)
            self.predict = nn.Linear(hidden, 1) if predictor else None
            for i, w in enumerate(words):      # buffers: they follow the module to its device
                self.register_buffer(f"words_{i}", torch.as_tensor(w, dtype=torch.long), persistent=False)
            self.n_pos = len(words)

        @property
        def words(self):
            return [getattr(self, f"words_{i}") for i in range(self.n_pos)]

        def logits(self, out, i):
            return self.head(out)[..., self.words[i]]

        def run(self, tokens):
            """Teacher-forced pass over full token rows ``(B, T)``: per-position
            log-probabilities ``(B, T)`` and the LSTM outputs ``(B, T + 1, H)`` (output t has
            read the first t words)."""
            b, t = tokens.shape
            w = torch.stack([self.words[i][tokens[:, i]] for i in range(t)], 1)
            inp = torch.cat([torch.full((b, 1), self.start_word, dtype=torch.long, device=w.device), w], 1)
            out, _ = self.lstm(self.embed(inp))
            logps = [torch.log_softmax(self.logits(out[:, i], i), -1).gather(1, tokens[:, i:i + 1])[:, 0]
                     for i in range(t)]
            return torch.stack(logps, 1), out

    return Controller()


class MLPNAS(SearchAlgorithm):
    """MLPNAS: LSTM controller sampling MLPs layer by layer, REINFORCE with baseline and
    discount (module doc for every decision and its source).

    Parameters
    ----------
    preset: ``plain`` (default; Table 1), ``predictor`` (Table 2), ``one_shot_predictor``
        (Table 3) or ``extended`` (Table 4); it sets ``predictor``, ``one_shot``,
        ``controller_epochs`` and ``batch_size`` where they are left at None.
    predictor: add the accuracy-predictor head (§4.2). None: the preset's.
    one_shot: the run's networks share bigram weights (§4.1); needs an oracle that declares
        ``bigram-weight-sharing`` (module doc). None: the preset's.
    controller_epochs: controller epochs before the run ends with DONE (§5.1: 10; extended:
        15); 0 = never end. None: the preset's.
    batch_size: architectures per controller epoch (§5.1: 10; extended: 30). None: the preset's.
    hidden_size: LSTM and embedding width (§5.1: 128).
    lr: Adam learning rate (§5.1: 0.01).
    lr_decay: Keras-style inverse-time decay per controller epoch, ``lr / (1 + lr_decay * n)``
        (§5.1: 0.1).
    gamma: Algorithm 2's discount (§7.1; no value given: our choice 0.9).
    baseline_decay: moving-average factor of the reward baseline (our choice, 0.9).
    replay: train each epoch on every policy sample so far (§4.1, default) or only on the last
        epoch's (False).
    predictor_weight: weight of the predictor's squared error in the controller's loss (1, as
        Keras's default loss weights).
    max_resample: draws before a repeated sample is replaced by a random unasked network.
    invalid_reward: reward of token sequences the space rejects (never for MLP spaces, whose
        every sequence is a network).
    device: torch device of the controller (``cpu`` by default).
    """

    name = "mlpnas"
    summary = "MLPNAS: LSTM controller sampling MLPs layer by layer, REINFORCE (+ predictor, one-shot)"
    paper = ("Minutoli & Ciranni, Neural Architecture Search: An Overview, §4, §4.1, §4.2 (predictor), "
             "§5.1 (settings), §5.2 (Tables 1-4), appendix 7.1 (Algorithm 2)")
    extra = "learned"
    presets = PRESETS

    def __init__(self, preset: str = "plain", predictor: bool | None = None, one_shot: bool | None = None,
                 controller_epochs: int | None = None, batch_size: int | None = None, hidden_size: int = 128,
                 lr: float = 0.01, lr_decay: float = 0.1, gamma: float = 0.9, baseline_decay: float = 0.9,
                 replay: bool = True, predictor_weight: float = 1.0, max_resample: int = 100,
                 invalid_reward: float = 0.0, device: str = "cpu"):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        p = PRESETS[preset]
        self.preset = preset
        # resolved values are stored, so a run's metadata records what was used
        self.predictor = bool(p["predictor"] if predictor is None else predictor)
        self.one_shot = bool(p["one_shot"] if one_shot is None else one_shot)
        self.controller_epochs = int(p["controller_epochs"] if controller_epochs is None else controller_epochs)
        self.batch_size = int(p["batch_size"] if batch_size is None else batch_size)
        if self.controller_epochs < 0 or self.batch_size < 1 or hidden_size < 1 or max_resample < 1:
            raise ValueError("need controller_epochs >= 0 and batch_size, hidden_size, max_resample >= 1")
        if not (lr > 0 and lr_decay >= 0 and 0 < gamma <= 1 and 0 <= baseline_decay < 1 and predictor_weight >= 0):
            raise ValueError("need lr > 0, lr_decay >= 0, 0 < gamma <= 1, 0 <= baseline_decay < 1, "
                             "predictor_weight >= 0")
        self.hidden_size, self.lr, self.lr_decay, self.gamma = int(hidden_size), lr, lr_decay, gamma
        self.baseline_decay, self.replay, self.predictor_weight = baseline_decay, bool(replay), predictor_weight
        self.max_resample, self.invalid_reward, self.device = int(max_resample), invalid_reward, device

    # -- what the oracle must provide ----------------------------------------------
    def oracle_requirements(self) -> frozenset[str]:
        """Features the run's oracle must declare: ``bigram-weight-sharing`` for one-shot."""
        return frozenset({BIGRAM_SHARING}) if self.one_shot else frozenset()

    # -- lifecycle ------------------------------------------------------------------
    def start(self, space, rng):
        torch, gen, dev, seed = torch_setup(rng, self.device)
        self._torch, self._gen, self._dev = torch, gen, dev
        self._space, self._rng = space, rng
        self._decisions = tuple(int(d) for d in space.decisions)
        words, vocab, self._end = _vocabulary(space)
        self.controller = build_seeded(seed, lambda: _build_controller(
            torch, words, vocab, self.hidden_size, self.predictor))
        self.controller.to(dev)
        self._opt = adam(self.controller.parameters(), lr=self.lr)
        self._sched = torch.optim.lr_scheduler.LambdaLR(self._opt, lambda n: 1.0 / (1.0 + self.lr_decay * n))
        self._asked: set[str] = set()
        self._outstanding: dict[str, tuple[int, ...] | None] = {}   # identity -> policy tokens (None: fallback)
        #: the controller's dataset: (tokens, reward, from the policy, measured)
        self._data: list[tuple[tuple[int, ...], float, bool, bool]] = []
        self._epoch_start = 0                # first entry of this epoch in _data
        self._asked_in_epoch = self._told_in_epoch = 0
        self.epoch = 0
        self._baseline: float | None = None
        self._failures = FailedResults()
        self.n_invalid = self.n_fallbacks = self.n_resampled = 0
        self._last = {"loss": None, "predictor_mse": None}

    # -- sampling -------------------------------------------------------------------
    def episode_length(self, tokens: Sequence[int]) -> int:
        """Decisions the controller made for ``tokens``: on an MLP space up to and including
        the first end word after position 0, elsewhere every position."""
        if self._end is None:
            return len(tokens)
        for i in range(1, len(tokens)):
            if int(tokens[i]) == self._end:
                return i + 1
        return len(tokens)

    def _canonical(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """``tokens`` with the positions after the episode set to the end word."""
        n = self.episode_length(tokens)
        t = [int(x) for x in tokens]
        return tuple(t[:n] + [self._end] * (len(t) - n)) if self._end is not None else tuple(t)

    def sample_tokens(self, n: int = 1) -> np.ndarray:
        """``n`` token rows from the current policy, ``(n, T)``, positions after the end word
        set to it (on an MLP space the network ends there; nothing after it is drawn)."""
        torch = self._torch
        c = self.controller
        with torch.no_grad():
            inp = torch.full((n, 1), c.start_word, dtype=torch.long, device=self._dev)
            state, rows = None, []
            for i in range(len(self._decisions)):
                out, state = c.lstm(c.embed(inp), state)
                probs = torch.softmax(c.logits(out[:, 0], i), -1).cpu()
                require_finite(probs, f"mlpnas: the controller's probabilities (after {self.epoch} epochs)",
                               f"lower lr (now {self.lr:g})")
                tok = torch.multinomial(probs, 1, generator=self._gen)
                rows.append(tok[:, 0])
                inp = c.words[i][tok.to(self._dev)]
        return np.array([self._canonical(r) for r in torch.stack(rows, 1).numpy()], dtype=np.int64)

    def log_probs(self, tokens) -> np.ndarray:
        """Per-position log-probabilities of full token rows under the controller, ``(n, T)``
        (positions after an episode's end included; :meth:`episode_length` says which count)."""
        torch = self._torch
        t = torch.as_tensor(np.asarray(tokens, dtype=np.int64).reshape(-1, len(self._decisions)))
        with torch.no_grad():
            lp, _ = self.controller.run(t.to(self._dev))
        return lp.cpu().numpy()

    def predict(self, tokens) -> np.ndarray:
        """The predictor's score for full token rows (``predictor=True`` only)."""
        if not self.predictor:
            raise UserError("mlpnas: predict needs predictor=true")
        torch = self._torch
        t = np.asarray(tokens, dtype=np.int64).reshape(-1, len(self._decisions))
        with torch.no_grad():
            return self._predictions(torch.as_tensor(t, device=self._dev)).cpu().numpy()

    def _predictions(self, tokens):
        """Predicted scores: the dense head on the LSTM's output after each episode's last decision."""
        torch = self._torch
        _, out = self.controller.run(tokens)
        last = torch.as_tensor([self.episode_length(r) for r in tokens.cpu().numpy()], dtype=torch.long,
                               device=self._dev)
        return self.controller.predict(out[torch.arange(len(last)), last])[:, 0]

    def ask(self):
        if self.controller_epochs and self.epoch >= self.controller_epochs:
            return DONE
        if self._asked_in_epoch >= self.batch_size:
            return WAIT                      # the epoch's networks are being trained
        space = self._space
        drawn = 0
        while drawn < self.max_resample:
            # a converged policy repeats itself; one draw of 16 costs about as much as one
            for row in self.sample_tokens(min(16, self.max_resample - drawn)):
                drawn += 1
                tokens = tuple(int(x) for x in row)
                arch = try_arch(space, tokens)
                if arch is None:
                    self.n_invalid += 1
                    self._data.append((tokens, float(self.invalid_reward), True, False))
                    continue
                ident = space.identity(arch)
                if ident in self._asked:
                    self.n_resampled += 1
                    continue
                return self._hand_out(arch, ident, tokens)
        self.n_fallbacks += 1
        arch = random_unseen(space, self._rng, self._asked)
        if arch is DONE:
            return WAIT if self._outstanding else DONE
        return self._hand_out(arch, space.identity(arch), None)

    def _hand_out(self, arch, ident, tokens):
        self._asked.add(ident)
        self._outstanding[ident] = tokens
        self._asked_in_epoch += 1
        return arch

    def tell(self, arch, observation):
        ident = self._space.identity(arch)
        if ident not in self._outstanding:
            return                           # a repeat the runner answered from its cache
        tokens = self._outstanding.pop(ident)
        if tokens is None:                   # a fallback: measured, not a policy sample
            item = (tuple(int(x) for x in self._space.tokens(arch)), False)
        else:
            item = (tokens, True)
        # a failed training is the worst result told so far (FailedResults): an infinite
        # reward would make the controller's probabilities NaN at the next update
        reward, released = self._failures.tell(observation.value, item)
        for (t, on), r in released:
            self._data.append((t, r, on, True))
        if reward is not None:
            self._data.append((item[0], reward, item[1], True))
        self._told_in_epoch += 1
        if self._told_in_epoch >= self.batch_size:
            self._update()

    # -- learning -------------------------------------------------------------------
    def advantages(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Algorithm 2's per-decision weights ``gamma^t * (G_t - baseline_t)`` of episodes with
        terminal ``rewards`` and ``lengths`` decisions, under the current baseline: ``(n, T)``,
        zero past each episode's end (module doc: ``gamma^(len-1) * (R - b)``)."""
        t = np.arange(len(self._decisions))[None, :]
        n = np.asarray(lengths)[:, None]
        g = self.gamma ** (n - 1 - t) * (np.asarray(rewards)[:, None] - self._baseline)
        return np.where(t < n, self.gamma ** t * g, 0.0)

    def _update(self):
        torch = self._torch
        epoch = self._data[self._epoch_start:]
        told = [r for _, r, _, measured in epoch if measured]
        if self._baseline is None:
            self._baseline = float(np.mean(told)) if told else float(self.invalid_reward)
        policy = [(t, r) for t, r, on, _ in (self._data if self.replay else epoch) if on]
        loss = torch.zeros((), device=self._dev)
        if policy:
            tokens = torch.as_tensor(np.array([t for t, _ in policy], dtype=np.int64), device=self._dev)
            lengths = np.array([self.episode_length(t) for t, _ in policy])
            adv = torch.as_tensor(self.advantages(np.array([r for _, r in policy]), lengths),
                                  dtype=torch.float32, device=self._dev)
            logp, _ = self.controller.run(tokens)
            loss = -(adv * logp).sum(1).mean()
        if self.predictor:
            measured = [(t, r) for t, r, _, m in self._data if m]
            if measured:
                tokens = torch.as_tensor(np.array([t for t, _ in measured], dtype=np.int64), device=self._dev)
                target = torch.as_tensor([r for _, r in measured], dtype=torch.float32, device=self._dev)
                mse = ((self._predictions(tokens) - target) ** 2).mean()
                loss = loss + self.predictor_weight * mse
                self._last["predictor_mse"] = float(mse.detach())
        self._opt.zero_grad()
        if loss.requires_grad:
            loss.backward()
            self._opt.step()
        self._sched.step()
        self._last["loss"] = float(loss.detach())
        # the baseline moves after the epoch's advantages were taken against it
        for r in told:
            self._baseline = self.baseline_decay * self._baseline + (1 - self.baseline_decay) * r
        self.epoch += 1
        self._epoch_start = len(self._data)
        self._asked_in_epoch = self._told_in_epoch = 0

    def diagnostics(self) -> dict[str, Any]:
        return {"preset": self.preset, "controller_epochs_done": self.epoch, "invalid_sequences": self.n_invalid,
                "resampled_repeats": self.n_resampled, "fallbacks": self.n_fallbacks,
                "failed_results": self._failures.n_failed, "baseline": self._baseline, "last_loss": self._last["loss"],
                "predictor_mse": self._last["predictor_mse"], "lr_now": float(self._opt.param_groups[0]["lr"])}
