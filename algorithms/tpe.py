"""Tree-structured Parzen estimator (TPE): Bergstra, Bardenet, Bengio & Kégl, "Algorithms
for Hyper-Parameter Optimization" (NeurIPS 2011), §4, over the space's categorical tokens,
at the oracle's top fidelity (plain ask/tell).

The algorithm (§4, §4.1):

1. the first ``n_startup`` architectures are drawn uniformly at random;
2. then, every ask: split the observations into the best ``n_good`` (y better than the
   threshold y*) and the rest, model each group by a density over architectures, l(x) for
   the good and g(x) for the rest, draw ``n_candidates`` candidates from l and return the
   one maximising l(x) / g(x), which maximises expected improvement (§4.1: EI is
   proportional to (gamma + g(x)/l(x) (1 - gamma))^-1).

Each density is TPE's "tree" of independent one-dimensional densities, one per token
position. Here the tree is flat: every token position is modelled, including positions a
space pads with a fixed token (the layers past a ConvNet's depth), which TPE proper would
leave out as inactive. For a categorical
position with c choices the paper re-weights the prior categorical by the observed counts
(§4); as in hyperopt (the authors' library), each choice gets ``prior_weight``
pseudo-observations on top of its count, l_j(v) = (count_good_j(v) + w) / (n_good + c w).

Defaults come from hyperopt, the reference implementation by the paper's first author,
since the paper leaves them open: ``gamma=0.25``, ``n_candidates=24``
(``n_EI_candidates``), ``n_startup=20`` (``n_startup_jobs``), ``prior_weight=1.0``, and its
split: n_good = min(ceil(gamma sqrt(N)), 25) of N observations (``split="sqrt"``; Optuna's
``hyperopt_default_gamma`` is the same rule). ``split="quantile"`` is the paper's literal
definition of y* as the gamma-quantile, n_good = ceil(gamma N). Left out from hyperopt:
its "linear forgetting" of old observations in the bad group (weights ramping down past
the 25 most recent).

Why not Optuna's ``TPESampler``: its implementation changes from release to release and
nothing ties a release's sampler to the paper, so the same seed could give different runs
under different Optuna versions; it would add a heavy optional dependency (a storage
layer, SQLAlchemy) for a few dozen lines of numpy; and it cannot be told to skip
architectures already evaluated, which a finite tabular space needs (its repeats would be
answered from the runner's cache until the run is stopped as stuck). This module is numpy
only, deterministic for a seed, and shares nothing but the idea with BOHB's multivariate
model (``algorithms/kde.py``).

Repeats: a candidate already evaluated in this run (or asked and not yet told, with
several workers) is never proposed; the best remaining candidate is, and when all
``n_candidates`` are known, up to ``max_redraws`` further batches are drawn from l; after
that a uniformly random unevaluated architecture (a space too large to enumerate: up to
``max_redraws`` uniform draws until one is new). A finite space fully evaluated ends the
run with DONE. ``diagnostics()`` counts the proposals of each kind.

Measured (driven by ask/tell until the optimum, defaults): nb201/cifar10, seeds 0-19,
median 262 architectures (mean 263; regularized evolution's median on this protocol is
673, 100 seeds); convnet-digits, seeds 10-39, mean 353 against random search's 524.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oracles.errors import InvalidArchitecture
from oracles.space import FiniteSpace

from .base import DONE, WAIT, SearchAlgorithm

SPLITS = ("sqrt", "quantile")
#: hyperopt's cap on the good group under the "sqrt" split (its ``linear_forgetting``, 25)
MAX_GOOD = 25


class TPE(SearchAlgorithm):
    """Tree-structured Parzen estimator over the space's tokens (Bergstra et al. 2011, §4).

    Parameters
    ----------
    gamma:
        Fraction that sets the good group's size (default 0.25, hyperopt's; see ``split``).
    split:
        How many observations of N form the good group: ``"sqrt"`` (default, hyperopt's
        rule) min(ceil(gamma * sqrt(N)), 25); ``"quantile"`` ceil(gamma * N), the paper's
        definition of y* as the gamma-quantile (§4.1).
    n_startup:
        Architectures drawn uniformly at random before the model is used (default 20,
        hyperopt's ``n_startup_jobs``); at least 2, so that both groups have data.
    n_candidates:
        Candidates drawn from l(x) per ask; the one with the largest l(x)/g(x) is asked
        (default 24, hyperopt's ``n_EI_candidates``).
    prior_weight:
        Pseudo-observations each choice of a position gets in both densities (default 1.0,
        hyperopt's ``prior_weight``); keeps every choice possible.
    max_redraws:
        Further batches of candidates drawn when every candidate is already evaluated, and
        uniform draws on a space too large to enumerate, before falling back (default 10).
    """

    name = "tpe"
    summary = "tree-structured Parzen estimator: l(x)/g(x) over good and bad observations, per token"
    paper = ("Bergstra, Bardenet, Bengio & Kégl, Algorithms for Hyper-Parameter Optimization "
             "(NeurIPS 2011), §4 (§4.1: expected improvement through l(x)/g(x)); defaults of the "
             "authors' hyperopt library")

    def __init__(self, gamma: float = 0.25, split: str = "sqrt", n_startup: int = 20,
                 n_candidates: int = 24, prior_weight: float = 1.0, max_redraws: int = 10):
        if not 0.0 < float(gamma) < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if int(n_startup) < 2:
            raise ValueError(f"n_startup must be >= 2, got {n_startup}")
        if int(n_candidates) < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        if not float(prior_weight) > 0:
            raise ValueError(f"prior_weight must be > 0, got {prior_weight}")
        if int(max_redraws) < 0:
            raise ValueError(f"max_redraws must be >= 0, got {max_redraws}")
        self.gamma = float(gamma)
        self.split = split
        self.n_startup = int(n_startup)
        self.n_candidates = int(n_candidates)
        self.prior_weight = float(prior_weight)
        self.max_redraws = int(max_redraws)

    def start(self, space, rng):
        self._space, self._rng = space, rng
        self._levels = np.asarray(space.decisions, dtype=np.int64)
        self._finite = isinstance(space, FiniteSpace) and space.size is not None
        self._evaluated = np.zeros(space.size, dtype=bool) if self._finite else None
        self._n_evaluated = 0
        # identity -> row of the observation arrays (one row per distinct architecture)
        self._row: dict[str, int] = {}
        self._tokens: list[tuple[int, ...]] = []
        self._sum: list[float] = []
        self._count: list[int] = []
        # identity -> [arch, asks not yet told] (several workers run trials at once)
        self._pending: dict[str, list] = {}
        self._counts = {"startup": 0, "model": 0, "redrawn": 0, "uniform": 0}

    # -- ask ------------------------------------------------------------------------
    def ask(self):
        if self._finite and self._n_evaluated + len(self._pending) >= self._space.size:
            # every architecture evaluated (DONE) or the last ones still running (WAIT)
            return WAIT if self._pending else DONE
        if len(self._tokens) < self.n_startup:
            arch = self._uniform_new()
            if arch is DONE:
                return DONE
            self._counts["startup"] += 1
        else:
            arch = self._from_model()
        entry = self._pending.setdefault(self._space.identity(arch), [arch, 0])
        entry[1] += 1
        return arch

    def _known(self, arch) -> bool:
        ident = self._space.identity(arch)
        return ident in self._row or ident in self._pending

    def _uniform_new(self):
        """A uniformly random architecture neither evaluated nor pending (finite spaces);
        elsewhere up to ``max_redraws`` + 1 uniform draws until one is new."""
        if self._finite:
            free = ~self._evaluated           # a new array: marking it leaves the record alone
            if self._pending:
                for arch, _ in self._pending.values():
                    free[self._space.index(arch)] = False
            idx = np.flatnonzero(free)
            if len(idx) == 0:
                return DONE
            return self._space.arch(int(idx[int(self._rng.integers(len(idx)))]))
        arch = self._space.sample(self._rng)
        for _ in range(self.max_redraws):
            if not self._known(arch):
                break
            arch = self._space.sample(self._rng)
        return arch

    def _densities(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per position, log l_j and log g_j over its choices."""
        values = np.array([s / c if math.isfinite(s) else -math.inf
                           for s, c in zip(self._sum, self._count)])
        n = len(values)
        if self.split == "sqrt":
            n_good = min(int(math.ceil(self.gamma * math.sqrt(n))), MAX_GOOD)
        else:
            n_good = int(math.ceil(self.gamma * n - 1e-9))
        n_good = min(max(n_good, 1), n - 1)
        order = np.argsort(-values, kind="stable")   # best first; ties: first told
        tokens = np.asarray(self._tokens, dtype=np.int64).reshape(n, len(self._levels))
        good, bad = tokens[order[:n_good]], tokens[order[n_good:]]
        log_l, log_g = [], []
        for j, c in enumerate(self._levels):
            w = self.prior_weight
            cl = np.bincount(good[:, j], minlength=c) + w
            cg = np.bincount(bad[:, j], minlength=c) + w
            log_l.append(np.log(cl / cl.sum()))
            log_g.append(np.log(cg / cg.sum()))
        return log_l, log_g

    def _from_model(self):
        log_l, log_g = self._densities()
        d = len(self._levels)
        probs = [np.exp(v) for v in log_l]
        for batch in range(self.max_redraws + 1):
            # inverse-CDF draws per position: one uniform per (candidate, position)
            u = self._rng.random((self.n_candidates, d))
            cands = np.empty((self.n_candidates, d), dtype=np.int64)
            score = np.zeros(self.n_candidates)
            for j in range(d):
                cdf = np.cumsum(probs[j])
                cands[:, j] = np.minimum(np.searchsorted(cdf, u[:, j] * cdf[-1], side="right"),
                                         len(cdf) - 1)
                score += log_l[j][cands[:, j]] - log_g[j][cands[:, j]]
            for i in np.argsort(-score, kind="stable"):
                try:
                    arch = self._space.from_tokens(tuple(int(t) for t in cands[i]))
                except InvalidArchitecture:
                    continue
                if not self._known(arch):
                    self._counts["model" if batch == 0 else "redrawn"] += 1
                    return arch
        self._counts["uniform"] += 1
        arch = self._uniform_new()
        if arch is DONE:  # cannot happen while ask's exhaustion check holds; kept explicit
            raise RuntimeError("tpe: no unevaluated architecture left")
        return arch

    # -- tell -----------------------------------------------------------------------
    def tell(self, arch, observation):
        ident = self._space.identity(arch)
        entry = self._pending.get(ident)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._pending[ident]
        value = float(observation.value)
        if not math.isfinite(value):
            value = -math.inf  # a failed training ranks below every finite result
        row = self._row.get(ident)
        if row is None:
            self._row[ident] = len(self._tokens)
            self._tokens.append(tuple(int(t) for t in self._space.tokens(arch)))
            self._sum.append(value)
            self._count.append(1)
            if self._finite:
                self._evaluated[self._space.index(arch)] = True
                self._n_evaluated += 1
        else:
            # the same architecture again (a noisy oracle's new draw): one point, mean value
            self._sum[row] += value
            self._count[row] += 1

    def diagnostics(self) -> dict[str, Any]:
        return {"proposals": dict(self._counts), "observations": len(self._tokens)}
