"""LaNAS: Latent Action Neural Architecture Search (Wang et al., "Sample-Efficient Neural
Architecture Search by Learning Action Space", §3, Algorithms 1 and 2), with the details the
paper leaves out taken from the authors' public NAS-Bench-101 code (the facts listed in
docs/bibliography.md; their code itself was not consulted).

The search alternates two phases (§3, Fig. 3):

* **Learning phase** (§3.1). A complete binary tree of height ``height`` (5 -> 31 nodes,
  15 internal, 16 leaves, §4.1). At every internal node ``j`` a linear regressor
  ``f_j(a) = W·a + b`` is fitted to the samples ``(a_i, v_i)`` (encodings, search metric)
  that fall in the node's region, on the squared error ``sum_i (f_j(a_i) - v_i)^2`` (how,
  see ``split`` below). The node's threshold is ``X̄_j``, the mean of its predictions on
  those samples (equal to their mean accuracy for an exact least-squares fit with
  intercept). Training samples are routed to the left ("good") child when their
  *measured* accuracy is >= ``X̄_j`` and right otherwise (authors' code;
  ``train_routing="predicted"`` routes them by ``f_j`` instead, as §3.1's "sort them [by
  v̂] and partition them" reads); a node with fewer than ``min_split`` samples, or whose
  samples all have the same accuracy, becomes a leaf of its path. A node's UCB statistics
  (count and mean accuracy) restart from the samples routed to it, which is the paper's
  "reset all the visitation counts" (§3.2).
* **Search phase** (§3.2, Alg. 1/2). ``n_select`` times: from the root, go to the child
  with the larger ``get_ucb`` = ``mean + 2c*sqrt(2 ln n_parent / n_child)`` (``+inf`` for an
  unvisited child; Alg. 2 line 16 sends ties to the right) down to a leaf; the path's
  constraints ``W·a + b >= X̄`` (left) / ``< X̄`` (right) define the leaf's region; draw an
  unevaluated architecture uniformly from it; back-propagate its accuracy and a visit
  along the path. Then re-learn every node (Alg. 1 line 15-16).

Sampling a region. On a finite space (``sampler="table"``, the authors'-code method) the
encodings of all architectures (``space.encode_all()``) are pushed through the tree in one
batched pass at every rebuild; a leaf's region is then the set of its unevaluated members
and a draw is one of them chosen uniformly. A child whose subtree holds no unevaluated
architecture is skipped in favour of its non-empty sibling, i.e. an empty leaf falls back
to another non-empty leaf. For spaces too large to enumerate (``sampler="mcmc"``), the
paper's MCMC polytope sampler (§3.2 "sampling from a leaf", refs [20, 21]) is implemented as
coordinate hit-and-run on the architecture lattice: from a point inside the polytope, pick
one decision at random, evaluate the constraints for every value of that decision (the
"line" through the point along that coordinate), and move to one of the feasible values
uniformly; its stationary distribution is uniform on the region (when connected under
single-decision moves). Chains start from a rejection-sampled point (``space.sample`` until
every constraint holds) or a training sample lying in the region. ``sampler="rejection"``
uses rejection sampling alone.

Node regressors (``split``):

* ``"adam"`` (the ``authors`` preset, default): the authors' optimiser. A Xavier-uniform
  initialised linear model (bias with PyTorch's default ``U(±1/sqrt(d))``) trained full
  batch on the mean squared error by PyTorch's Adam (betas 0.9/0.999, eps 1e-8, lr
  ``adam_lr`` = 1e-5) after clipping the gradient to norm ``adam_clip`` = 5
  (``clip_grad_norm_``), for ``adam_epochs_first`` = 20,000 epochs at a node's first fit
  and ``adam_epochs_later`` = 3,000 at every later rebuild, warm-started from the node's
  previous model and Adam state. With that learning rate the fit stays far from the
  least-squares solution: the partition is a slowly drifting hyperplane close to its
  random start, while training samples are still routed by measured accuracy. The
  model is float64 (PyTorch's default would be float32: rounding only). The gradient of a
  full-batch squared loss needs only the node's Gram matrix and one vector, so an epoch
  costs O(d^2) whatever the sample count; the epochs run in a loop compiled by numba
  (:func:`adam_steps`; tests/test_lanas.py holds the plain reference it is checked
  against).
* ``"lstsq"`` (the ``paper`` preset): the exact least-squares fit §3.1 describes, in closed
  form (the minimum-norm solution through the normal equations, as one-hot encodings with
  an intercept are always rank deficient). It is a good algorithm in its own right but
  not the one that produced the authors' runs; it partitions the space differently
  (a bimodal samples-to-optimum distribution with a long tail).
* ``"random"``: a deliberately weakened variant for regression tests: each node's ``W`` is
  a fresh standard-normal direction (``b = 0``), and both training samples and candidates
  are routed by that random projection against its mean, so the partition ignores accuracy.

Measured on ``nb201/cifar10``, runs until the optimum (samples, distinct architectures,
100 seeds each): ``split="adam"`` (the authors' preset): mean 492, median 468, IQR 375-531
(the authors' own code on the same table: 344, 412, 524, 531, 545, 558, 563 and one run
past 1,800); ``split="lstsq"`` with the authors' other settings: mean 932, median 228, IQR
171-346, 19 runs past 1,800 (results/lanas_authors_nb201/report.md).

Across CPUs. Both fits start from BLAS products (:meth:`LaNAS._normal_equations`) whose last
bits depend on the CPU's BLAS kernel, and the tree's routing can amplify them. Measured on
nb201/cifar10 by perturbing every Gram matrix by 8 ulps (what another kernel does): 6 of 20
``lstsq`` runs took another trajectory (e.g. 323 -> 6,919 samples), none of 20 ``adam``
runs did (nor at 10^6 ulps).

Presets (``preset``):

* ``"authors"`` (default): the authors' NAS-Bench-101 code, which produced their recorded
  runs: ``c=0.1, n_select=20, n_init=10, height=5, split="adam"``.
* ``"paper"``: Alg. 1 and §6.1 as printed: ``c=0.5, n_select=100, n_init=2000, height=5``,
  with the paper's least-squares regressor (``split="lstsq"``).

Any of those five parameters given explicitly overrides the preset (e.g.
``lanas:split=lstsq`` is the authors' settings with the paper's regressor).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from oracles.errors import InvalidArchitecture, UserError
from oracles.space import FiniteSpace

from .base import DONE, FailedResults, SearchAlgorithm

PRESETS: dict[str, dict[str, Any]] = {
    # the authors' NAS-Bench-101 code (facts in docs/bibliography.md): Cp=0.1, 20 samples
    # between rebuilds, 10 random initial architectures, height 5, nodes fitted by Adam
    "authors": {"c": 0.1, "n_select": 20, "n_init": 10, "height": 5, "split": "adam"},
    # the paper: Alg. 1 line 2 (c=0.5), §6.1 (#selects=100, 2000 initial networks,
    # height 5), §3.1's least-squares regressors
    "paper": {"c": 0.5, "n_select": 100, "n_init": 2000, "height": 5, "split": "lstsq"},
}
SPLITS = ("lstsq", "adam", "random")
SAMPLERS = ("auto", "table", "mcmc", "rejection")


class Tree:
    """The learned partition: per-node linear models, thresholds, and UCB statistics.

    Nodes use heap numbering: node ``k`` has children ``2k+1`` (left, good) and ``2k+2``
    (right, bad); nodes ``0 .. 2**(height-1)-2`` may split, the rest are always leaves.
    """

    def __init__(self, height: int, dim: int):
        self.height = height
        self.n_nodes = 2 ** height - 1
        self.n_internal = 2 ** (height - 1) - 1
        self.split = np.zeros(self.n_nodes, dtype=bool)
        self.W = np.zeros((self.n_nodes, dim))
        self.b = np.zeros(self.n_nodes)
        self.thr = np.zeros(self.n_nodes)
        self.count = np.zeros(self.n_nodes, dtype=np.int64)  # UCB visit counts
        self.total = np.zeros(self.n_nodes)                  # summed accuracy

    def predict(self, k: int, X: np.ndarray) -> np.ndarray:
        return X @ self.W[k] + self.b[k]

    def route(self, X: np.ndarray, XT: np.ndarray | None = None) -> np.ndarray:
        """Leaf of every row of ``X`` under the prediction routing (one batched pass).

        The predictions of every splitting node come from one matrix product (``XT``, a
        C-contiguous ``X.T``, makes it several times faster for a whole table); the
        descent, a few comparisons per row, is a compiled loop (:func:`descend`).
        """
        if XT is None:
            XT = np.atleast_2d(X).T
        n = XT.shape[1]
        splitting = np.flatnonzero(self.split)
        if len(splitting) == 0:
            return np.zeros(n, dtype=np.int64)
        row = np.full(self.n_nodes, -1, dtype=np.int64)
        row[splitting] = np.arange(len(splitting))
        P = self.W[splitting] @ XT + (self.b[splitting] - self.thr[splitting])[:, None]
        return descend(P, row)

    def path(self, leaf: int) -> list[int]:
        """Nodes from the root down to ``leaf`` (inclusive)."""
        out = [leaf]
        while out[-1] > 0:
            out.append((out[-1] - 1) // 2)
        return out[::-1]

    def constraints(self, leaf: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The leaf's polytope as ``sign * (A a + b - thr) >= 0`` rows (Alg. 2 lines 1-8).

        ``sign`` is +1 for a left turn (``W a + b >= X̄``) and -1 for a right turn
        (``W a + b < X̄``; the strict inequality is checked by :meth:`satisfies`).
        """
        p = self.path(leaf)
        parents, children = p[:-1], p[1:]
        A = self.W[parents]
        off = self.b[parents] - self.thr[parents]
        sign = np.where(np.array(children) == 2 * np.array(parents, dtype=np.int64) + 1, 1.0, -1.0)
        return A, off, sign

    @staticmethod
    def satisfies(X: np.ndarray, cons) -> np.ndarray:
        A, off, sign = cons
        if len(A) == 0:
            return np.ones(len(np.atleast_2d(X)), dtype=bool)
        z = np.atleast_2d(X) @ A.T + off  # (n, m): W a + b - X̄ per constraint
        ok = np.where(sign > 0, z >= 0, z < 0)
        return ok.all(axis=1)


class LaNAS(SearchAlgorithm):
    """Latent Action NAS (LaNAS §3, Alg. 1 and 2).

    Parameters
    ----------
    preset:
        ``"authors"`` (default: c=0.1, n_select=20, n_init=10, height=5, split="adam",
        the authors' NAS-Bench-101 code, regressor included) or ``"paper"`` (c=0.5,
        n_select=100, n_init=2000, height=5, split="lstsq": Alg. 1, §6.1 and §3.1).
    c:
        UCB exploration constant in ``mean + 2c*sqrt(2 ln n_parent / n_child)`` (Alg. 1
        ``get_ucb``; the authors' ``Cp``). ``None``: the preset's value.
    n_select:
        Samples drawn between tree rebuilds (Alg. 1 ``#selects``). ``None``: preset.
    n_init:
        Random architectures evaluated before the first tree is learned (§3.2 "jump
        started"). ``None``: preset.
    height:
        Tree height h >= 1; 2**(h-1) leaves (§4.1: 5). ``None``: preset.
    split:
        Node regressor: ``"adam"`` (the authors' optimiser), ``"lstsq"`` (the paper's
        exact least squares) or ``"random"`` (weakened control). ``None``: the preset's
        (``authors`` -> adam, ``paper`` -> lstsq). On nb201/cifar10 with the authors'
        other settings, samples to the optimum over 100 seeds: adam mean 492 / median
        468, lstsq mean 932 / median 228 with a long tail; see the module docstring.
    train_routing:
        ``"measured"`` (authors' code, default): training samples go left when their
        accuracy >= the node's mean prediction; ``"predicted"``: when their prediction is.
    sampler:
        ``"auto"`` (``"table"`` on finite spaces up to ``max_enumerate`` architectures,
        ``"mcmc"`` otherwise), ``"table"``, ``"mcmc"`` or ``"rejection"``.
    min_split:
        A node with fewer training samples stays a leaf (default 2, the least a regressor
        with an intercept can separate).
    mcmc_steps:
        Hit-and-run moves per draw (default 0 = 4 x the number of decisions).
    max_rejection:
        Random draws tried to find a chain's starting point / by the rejection sampler
        (default 2000).
    max_enumerate:
        Largest finite space sampled through its full table (default 5,000,000).
    adam_lr, adam_clip, adam_epochs_first, adam_epochs_later:
        The ``"adam"`` split's optimiser: learning rate, gradient-norm clip, epochs at a
        node's first fit and at each later rebuild (authors' code: 1e-5, 5, 20000, 3000).
    """

    name = "lanas"
    paper = ("Wang, Xie, Li, Fonseca & Tian, Sample-Efficient Neural Architecture Search by Learning "
             "Action Space, §3 (Algorithms 1 and 2), §4.1-4.2, §6.1; the authors' NAS-Bench-101 code "
             "for the authors preset")
    presets = PRESETS

    def __init__(self, preset: str = "authors", c: float | None = None,
                 n_select: int | None = None, n_init: int | None = None,
                 height: int | None = None, split: str | None = None,
                 train_routing: str = "measured", sampler: str = "auto", min_split: int = 2,
                 mcmc_steps: int = 0, max_rejection: int = 2000,
                 max_enumerate: int = 5_000_000, adam_lr: float = 1e-5,
                 adam_clip: float = 5.0, adam_epochs_first: int = 20000,
                 adam_epochs_later: int = 3000):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if train_routing not in ("measured", "predicted"):
            raise ValueError(f"train_routing must be measured or predicted, got {train_routing!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        p = PRESETS[preset]
        self.preset = preset
        # resolved values are stored, so a run's metadata records what was actually used
        self.c = float(p["c"] if c is None else c)
        self.n_select = int(p["n_select"] if n_select is None else n_select)
        self.n_init = int(p["n_init"] if n_init is None else n_init)
        self.height = int(p["height"] if height is None else height)
        if self.c < 0 or self.n_select < 1 or self.n_init < 1 or self.height < 1:
            raise ValueError("need c >= 0, n_select >= 1, n_init >= 1, height >= 1")
        if adam_lr <= 0 or adam_clip <= 0 or adam_epochs_first < 0 or adam_epochs_later < 0:
            raise ValueError("need adam_lr > 0, adam_clip > 0 and adam epochs >= 0")
        self.split = p["split"] if split is None else split
        self.train_routing = train_routing
        self.sampler = sampler
        self.min_split = max(2, int(min_split))
        self.mcmc_steps = int(mcmc_steps)
        self.max_rejection = int(max_rejection)
        self.max_enumerate = int(max_enumerate)
        self.adam_lr = float(adam_lr)
        self.adam_clip = float(adam_clip)
        self.adam_epochs_first = int(adam_epochs_first)
        self.adam_epochs_later = int(adam_epochs_later)

    # ===================================================================== lifecycle
    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._dim = int(space.encoding_size)
        finite = isinstance(space, FiniteSpace) and space.size is not None
        mode = self.sampler
        if mode == "auto":
            mode = "table" if finite and space.size <= self.max_enumerate else "mcmc"
        if mode == "table" and not finite:
            raise UserError(f"lanas: sampler=table needs a finite space; {space.name} is not")
        self._mode = mode
        self._use_table = finite and mode == "table"
        if finite:
            self._X_all = np.asarray(space.encode_all(), dtype=np.float64) if self._use_table else None
            self._XT_all = np.ascontiguousarray(self._X_all.T) if self._use_table else None
            self._evaluated = np.zeros(space.size, dtype=bool) if self._use_table else None
        self._finite = finite
        self._seen: set[str] = set()
        self._Xbuf = np.zeros((64, self._dim))
        self._y: list[float] = []
        self._archs: list = []
        self._tree: Tree | None = None
        self._since_rebuild = 0
        self._pending: dict[str, int] = {}  # identity -> leaf it was drawn from
        self._failures = FailedResults()
        self._adam: dict[int, dict[str, np.ndarray]] = {}
        self._chains: dict[int, Any] = {}
        self._dead = None
        # diagnostics
        self._n_rebuilds = 0
        self._rebuild_s = 0.0
        self._n_fallbacks = 0
        self._leaf_hist: dict[int, int] = {}
        self._root_left_frac: list[float] = []
        self._mcmc_moves = 0
        self._rejections = 0

    # =========================================================================== ask
    def ask(self):
        if self._tree is None:
            return self._random_unseen()
        if self._use_table and self._cand[0] <= 0:
            return DONE  # every architecture of the space evaluated
        leaf = self._select()
        arch = self._draw(leaf)
        if arch is DONE:
            return DONE
        self._pending[self._space.identity(arch)] = leaf
        self._leaf_hist[leaf] = self._leaf_hist.get(leaf, 0) + 1
        return arch

    def _random_unseen(self):
        if self._use_table:
            if self._evaluated.all():
                return DONE  # every architecture of the space evaluated
            while True:  # rejection over the index range: cheap while few are evaluated
                i = int(self._rng.integers(len(self._evaluated)))
                if not self._evaluated[i]:
                    return self._space.arch(i)
        for _ in range(self.max_rejection):
            arch = self._space.sample(self._rng)
            if self._space.identity(arch) not in self._seen:
                return arch
        return arch

    def _ucb(self, child: int, parent: int) -> float:
        t = self._tree
        n = t.count[child]
        if n == 0:
            return math.inf
        return t.total[child] / n + 2.0 * self.c * math.sqrt(2.0 * math.log(max(t.count[parent], 1)) / n)

    def _select(self) -> int:
        """Alg. 2 ``ucb_select``; children with nothing left to sample are skipped."""
        t = self._tree
        k = 0
        avail = self._cand if self._use_table else ~self._dead
        while t.split[k]:
            left, right = 2 * k + 1, 2 * k + 2
            choose_left = self._ucb(left, k) > self._ucb(right, k)
            ok_left, ok_right = bool(avail[left]), bool(avail[right])
            if choose_left and not ok_left or not choose_left and not ok_right:
                self._n_fallbacks += 1  # the UCB choice is empty: the other side has members
                choose_left = not choose_left
            k = left if choose_left else right
        return k

    # -------------------------------------------------------------- region sampling
    def _draw(self, leaf: int):
        if self._use_table:
            members = np.flatnonzero((self._leaf_of == leaf) & ~self._evaluated)
            return self._space.arch(int(members[self._rng.integers(len(members))]))
        while True:
            arch = self._draw_polytope(leaf)
            if arch is not None:
                return arch
            # no point of this leaf found: treat it as empty and choose again
            self._mark_dead(leaf)
            if self._dead[0]:
                return DONE  # no leaf region yields a new architecture
            leaf = self._select()

    def _mark_dead(self, k: int):
        self._dead[k] = True
        while k > 0:
            p = (k - 1) // 2
            if not (self._dead[2 * p + 1] and self._dead[2 * p + 2]):
                break
            self._dead[p] = True
            k = p

    def _feasible(self, archs, cons) -> np.ndarray:
        X = np.stack([np.asarray(self._space.encode(a), dtype=np.float64) for a in archs])
        return Tree.satisfies(X, cons)

    def _rejection(self, cons):
        for _ in range(self.max_rejection):
            self._rejections += 1
            arch = self._space.sample(self._rng)
            if self._feasible([arch], cons)[0]:
                return arch
        return None

    def _draw_polytope(self, leaf: int):
        cons = self._tree.constraints(leaf)
        if self._mode == "rejection":
            for _ in range(self.max_rejection):
                arch = self._rejection(cons)
                if arch is None:
                    return None
                if self._space.identity(arch) not in self._seen:
                    return arch
            return None
        state = self._chains.get(leaf)
        if state is None:
            state = self._chain_start(leaf, cons)
            if state is None:
                return None
        decisions = tuple(int(d) for d in self._space.decisions)
        steps = self.mcmc_steps or 4 * len(decisions)
        tokens = list(self._space.tokens(state))
        for it in range(steps * 50):
            j = int(self._rng.integers(len(decisions)))
            cands, archs = [], []
            for v in range(decisions[j]):
                trial = tokens.copy()
                trial[j] = v
                try:
                    archs.append(self._space.from_tokens(trial))
                except InvalidArchitecture:
                    continue
                cands.append(trial)
            ok = np.flatnonzero(self._feasible(archs, cons))
            pick = int(ok[self._rng.integers(len(ok))]) if len(ok) else None
            if pick is not None:
                tokens, state = cands[pick], archs[pick]
            self._mcmc_moves += 1
            if it + 1 >= steps and self._space.identity(state) not in self._seen:
                self._chains[leaf] = state
                return state
        self._chains[leaf] = state
        return None

    def _chain_start(self, leaf, cons):
        # a training sample already inside the polytope, else rejection sampling
        if self._archs:
            inside = Tree.satisfies(self._Xbuf[:len(self._y)], cons)
            idx = np.flatnonzero(inside)
            if len(idx):
                return self._archs[int(idx[self._rng.integers(len(idx))])]
        return self._rejection(cons)

    # ========================================================================== tell
    def tell(self, arch, observation):
        ident = self._space.identity(arch)
        if ident in self._seen:
            return  # LaNAS never re-asks; a repeat told again carries no new information
        self._seen.add(ident)
        i = None
        if self._use_table:
            i = self._space.index(arch)
            x = self._X_all[i]
            self._evaluated[i] = True
        else:
            x = np.asarray(self._space.encode(arch), dtype=np.float64)
        # a failed training is the worst result told so far (FailedResults), never 0.0,
        # which on a minimised metric (negated losses) beats every real result
        value, released = self._failures.tell(observation.value, (arch, ident, i, x))
        for held, v in released:
            self._learn(*held, v)
        if value is not None:
            self._learn(arch, ident, i, x, value)

    def _learn(self, arch, ident, i, x, value):
        if len(self._y) == len(self._Xbuf):
            self._Xbuf = np.vstack([self._Xbuf, np.zeros_like(self._Xbuf)])
        self._Xbuf[len(self._y)] = x
        self._y.append(value)
        self._archs.append(arch)
        if self._tree is not None:
            leaf = self._pending.pop(ident, None)
            if leaf is None:
                leaf = int(self._leaf_of[i]) if self._use_table else int(self._tree.route(x)[0])
            for k in self._tree.path(leaf):  # back-propagate (Alg. 1 line 14)
                self._tree.count[k] += 1
                self._tree.total[k] += value
            if self._use_table:
                for k in self._tree.path(int(self._leaf_of[i])):
                    self._cand[k] -= 1
            self._since_rebuild += 1
        if (self._tree is None and len(self._y) >= self.n_init) or \
                (self._tree is not None and self._since_rebuild >= self.n_select):
            self._rebuild()

    # ======================================================================= learning
    def _rebuild(self):
        t0 = time.perf_counter()
        y = np.asarray(self._y)
        X = self._Xbuf[:len(y)]
        tree = Tree(self.height, self._dim)
        members = {0: np.arange(len(y))}
        level = [0]
        while level:  # level by level: a level's nodes are independent, so fit them together
            jobs = []
            for k in level:
                idx = members.pop(k, np.empty(0, dtype=np.int64))
                tree.count[k] = len(idx)
                tree.total[k] = float(y[idx].sum())
                if k < tree.n_internal and len(idx) >= self.min_split and np.ptp(y[idx]) > 0:
                    jobs.append((k, idx))
            models = self._fit_level([(k, X[idx], y[idx]) for k, idx in jobs])
            level = []
            for (k, idx), (w, b) in zip(jobs, models):
                pred = X[idx] @ w + b
                thr = float(pred.mean())
                if self.train_routing == "measured" and self.split != "random":
                    left = y[idx] >= thr
                else:
                    left = pred >= thr
                tree.split[k] = True
                tree.W[k], tree.b[k], tree.thr[k] = w, b, thr
                members[2 * k + 1] = idx[left]
                members[2 * k + 2] = idx[~left]
                level += [2 * k + 1, 2 * k + 2]
                if k == 0:
                    self._root_left_frac.append(float(left.mean()))
        self._tree = tree
        self._since_rebuild = 0
        self._pending.clear()
        self._chains.clear()
        if self._use_table:
            self._leaf_of = tree.route(self._X_all, self._XT_all)
            cand = np.bincount(self._leaf_of[~self._evaluated], minlength=tree.n_nodes)
            for k in range(tree.n_nodes - 1, 0, -1):  # subtree totals, bottom up
                cand[(k - 1) // 2] += cand[k]
            self._cand = cand
        else:
            self._dead = np.zeros(tree.n_nodes, dtype=bool)
        self._n_rebuilds += 1
        self._rebuild_s += time.perf_counter() - t0

    def _fit_level(self, jobs) -> list[tuple[np.ndarray, float]]:
        """Fit the regressors of one tree level; ``jobs`` = [(node, X, y), ...]."""
        if self.split == "adam":
            return self._fit_adam(jobs)
        out = []
        for _, X, y in jobs:
            if self.split == "random":
                out.append((self._rng.standard_normal(X.shape[1]), 0.0))
                continue
            # Minimum-norm least squares through the normal equations: pinv(Xa'Xa) Xa'y is
            # exactly lstsq's solution, and the (d+1)^2 Gram matrix is far cheaper to
            # factor than the n x (d+1) data. rcond drops the exact null directions that
            # one-hot encodings with an intercept always have.
            gram, moment = self._normal_equations(X, y)
            theta = np.linalg.pinv(gram, rcond=1e-10, hermitian=True) @ moment
            out.append((theta[:-1], float(theta[-1])))
        return out

    @staticmethod
    def _normal_equations(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Xa'Xa, Xa'y)`` with ``Xa = [X, 1]``: all a node's fit needs from its samples.

        Both fits (``lstsq`` and ``adam``) start here, and these products are where
        another CPU's BLAS kernel rounds differently; a test that wants to play "another
        machine" perturbs their output by a few ulps (monkeypatch this method).
        """
        Xa = np.hstack([X, np.ones((len(X), 1))])
        return Xa.T @ Xa, Xa.T @ y

    def _fit_adam(self, jobs):
        """Full-batch Adam on each node's MSE, warm-started per node, nodes batched.

        The MSE gradient of a linear model is ``G theta - h`` with ``G = 2 Xa'Xa / n`` and
        ``h = 2 Xa'y / n``, so each epoch costs O(d^2) per node whatever the sample count;
        the epochs run in a compiled loop (:func:`adam_steps`).
        """
        d = self._dim
        groups: dict[int, list] = {}
        for k, X, y in jobs:
            st = self._adam.get(k)
            if st is None:
                a = math.sqrt(6.0 / (d + 1))  # Xavier-uniform for a d -> 1 linear layer
                theta = np.concatenate([self._rng.uniform(-a, a, d),
                                        self._rng.uniform(-1 / math.sqrt(d), 1 / math.sqrt(d), 1)])
                st = {"theta": theta, "m": np.zeros(d + 1), "v": np.zeros(d + 1), "t": 0}
                self._adam[k] = st
                epochs = self.adam_epochs_first
            else:
                epochs = self.adam_epochs_later
            groups.setdefault(epochs, []).append((k, X, y))
        p = d + 1
        # zero padding to a multiple of 8 lets the compiled loops run in whole vectors;
        # a padded coordinate has G = h = 0, so its gradient, moments and step stay 0
        P = -(-p // 8) * 8
        for epochs, grp in groups.items():
            sts = [self._adam[k] for k, _, _ in grp]
            G = np.zeros((len(grp), P, P))
            h = np.zeros((len(grp), P))
            theta, m, v = np.zeros((len(grp), P)), np.zeros((len(grp), P)), np.zeros((len(grp), P))
            for j, ((_, X, y), st) in enumerate(zip(grp, sts)):
                gram, moment = self._normal_equations(X, y)
                G[j, :p, :p], h[j, :p] = gram * (2.0 / len(y)), moment * (2.0 / len(y))
                theta[j, :p], m[j, :p], v[j, :p] = st["theta"], st["m"], st["v"]
            t = np.array([st["t"] for st in sts], dtype=np.int64)
            adam_steps(G, h, theta, m, v, t, epochs, self.adam_lr, self.adam_clip)
            for j, st in enumerate(sts):
                st.update(theta=theta[j, :p].copy(), m=m[j, :p].copy(), v=v[j, :p].copy(),
                          t=int(t[j]))
        return [(self._adam[k]["theta"][:-1].copy(), float(self._adam[k]["theta"][-1]))
                for k, _, _ in jobs]

    # =================================================================== diagnostics
    def diagnostics(self) -> dict[str, Any]:
        out = {"preset": self.preset, "sampler": self._mode, "rebuilds": self._n_rebuilds,
               "rebuild_seconds": round(self._rebuild_s, 4),
               "empty_leaf_fallbacks": self._n_fallbacks,
               "samples_per_leaf": {str(k): v for k, v in sorted(self._leaf_hist.items())},
               "root_left_fraction_mean": (float(np.mean(self._root_left_frac))
                                           if self._root_left_frac else None)}
        out["failed_results"] = self._failures.n_failed
        if self._tree is not None:
            out["splits_last_tree"] = int(self._tree.split.sum())
        if self._mode != "table":
            out["mcmc_moves"] = self._mcmc_moves
            out["rejection_draws"] = self._rejections
        return out


# ============================================================== the Adam epochs, compiled
ADAM_BETAS = (0.9, 0.999)  # PyTorch's defaults, which the authors' code uses
ADAM_EPS = 1e-8
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: scale = max_norm / (norm + 1e-6)


def adam_steps(G, h, theta, m, v, t, epochs: int, lr: float, clip: float) -> None:
    """Run ``epochs`` full-batch Adam steps on every node's MSE, in place.

    ``G`` (k, p, p) and ``h`` (k, p) define node j's gradient ``G[j] @ theta[j] - h[j]``;
    ``theta``, ``m``, ``v`` (k, p) and ``t`` (k,) are the nodes' parameters, Adam moments
    and step counts. One step, per node, is PyTorch's: clip the gradient to norm ``clip``
    (``clip_grad_norm_``), then ``torch.optim.Adam`` (betas 0.9/0.999, eps 1e-8, bias
    correction). The loop is compiled with numba on first use (cached on disk).
    """
    if not (G.flags.c_contiguous and theta.flags.c_contiguous and m.flags.c_contiguous
            and v.flags.c_contiguous and h.flags.c_contiguous):
        raise ValueError("adam_steps needs C-contiguous arrays")
    if len(t) == 0 or epochs <= 0:
        return
    b1, b2 = ADAM_BETAS
    bc1, bc2s = _bias_corrections()
    _compiled()(G, h, theta, m, v, t, int(epochs), float(lr), float(clip), b1, b2, ADAM_EPS,
                CLIP_EPS, bc1, bc2s)


_BIAS: tuple[np.ndarray, np.ndarray] | None = None


def _bias_corrections() -> tuple[np.ndarray, np.ndarray]:
    """``1 - b1**t`` and ``sqrt(1 - b2**t)`` for t = 0, 1, ... until both are exactly 1.0.

    Past that step they stay 1.0 in float64, so the kernel clamps t to the last entry and
    never calls pow in its loop (about 42,000 entries for b2 = 0.999).
    """
    global _BIAS
    if _BIAS is None:
        b1, b2 = ADAM_BETAS
        n = int(math.log(2.0 ** -60) / math.log(max(b1, b2))) + 2
        tt = np.arange(n, dtype=np.float64)
        bc1, bc2s = 1.0 - b1 ** tt, np.sqrt(1.0 - b2 ** tt)
        assert bc1[-1] == 1.0 and bc2s[-1] == 1.0
        _BIAS = (bc1, bc2s)
    return _BIAS


def _adam_loop(G, h, theta, m, v, t, epochs, lr, clip, b1, b2, eps, clip_eps, bc1, bc2s):
    # Plain loops for numba. Node by node (a node's G stays in L1 cache), epoch by epoch;
    # nothing here reorders a floating-point sum in a way that depends on the CPU's vector
    # width (no fastmath), so results are the same wherever the same CPU type runs it.
    k, p = theta.shape
    last = len(bc1) - 1
    g = np.empty(p)
    for j in range(k):
        Gj = G[j]
        hj = h[j]
        th = theta[j]
        mj = m[j]
        vj = v[j]
        for _ in range(epochs):
            for i in range(p):
                g[i] = -hj[i]
            for c in range(p):  # G is symmetric: accumulate row c, contiguous in i
                tc = th[c]
                for i in range(p):
                    g[i] += Gj[c, i] * tc
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            q = p - p % 4
            for i in range(0, q, 4):  # four partial sums: no 31-long dependency chain
                s0 += g[i] * g[i]
                s1 += g[i + 1] * g[i + 1]
                s2 += g[i + 2] * g[i + 2]
                s3 += g[i + 3] * g[i + 3]
            for i in range(q, p):
                s0 += g[i] * g[i]
            coef = clip / (math.sqrt((s0 + s1) + (s2 + s3)) + clip_eps)
            if coef < 1.0:
                for i in range(p):
                    g[i] *= coef
            t[j] += 1
            step = lr / bc1[min(t[j], last)]
            bc2 = bc2s[min(t[j], last)]
            for i in range(p):
                mi = b1 * mj[i] + (1.0 - b1) * g[i]
                vi = b2 * vj[i] + (1.0 - b2) * (g[i] * g[i])
                mj[i] = mi
                vj[i] = vi
                th[i] -= step * (mi / (math.sqrt(vi) / bc2 + eps))


def descend(P: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Leaf reached by every column of ``P`` from the root (node 0) of a heap-numbered tree.

    ``row[k]`` is node k's row of ``P`` (its ``W a + b - X̄`` for every column) or -1 where
    k does not split; a column goes left (``2k+1``) where that value is >= 0, else right.
    """
    out = np.empty(P.shape[1], dtype=np.int64)
    _compiled("descend")(np.ascontiguousarray(P), row, out)
    return out


def _descend_loop(P, row, out):
    n_nodes = len(row)
    for c in range(P.shape[1]):
        k = 0
        while k < n_nodes and row[k] >= 0:
            k = 2 * k + 1 if P[row[k], c] >= 0 else 2 * k + 2
        out[c] = k


_KERNELS: dict = {}


def _compiled(name: str = "adam"):
    fn = _KERNELS.get(name)
    if fn is None:
        import numba
        # error_model="numpy": no ZeroDivisionError branch in the loops, which would
        # stop LLVM from vectorising them (4x slower); no input here divides by zero.
        fn = numba.njit(cache=True, nogil=True, error_model="numpy")(
            {"adam": _adam_loop, "descend": _descend_loop}[name])
        _KERNELS[name] = fn
    return fn
