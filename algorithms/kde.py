"""BOHB's density model over architectures: Falkner, Klein & Hutter, "BOHB: Robust and
Efficient Hyperparameter Optimization at Scale" (ICML 2018), §3.1 and Algorithm 2.

BOHB proposes a new configuration the way TPE does (Bergstra, Bardenet, Bengio & Kégl,
"Algorithms for Hyper-Parameter Optimization", NeurIPS 2011, §4), but with one
*multivariate* kernel density per group instead of TPE's independent one-dimensional ones,
so that interactions between decisions can show (BOHB §3.1). Here a configuration is an
architecture's categorical tokens (``space.tokens``), so every dimension is unordered.

Per budget b (a fidelity), the observations D_b of that budget are ranked by value (a
score to maximise; a non-finite value ranks last, as the authors' code ranks a crashed
run) and two
densities are fitted (BOHB Eqs. 2 and 3):

* l(x) over the N_l = max(N_min, floor(q N_b)) best observations,
* g(x) over the N_g = max(N_min, N_b - N_l) worst ones,

with N_b = |D_b|. The two sets overlap while N_b < 2 N_min, as the paper intends: BOHB
builds its first model as soon as a budget has N_min + 2 observations rather than waiting
until q N_b >= N_min (§3.1; Algorithm 2 picks b = argmax{b : |D_b| >= N_min + 2}).

Each density is a product-kernel KDE, the mean over its data points X_i of
prod_j k(x_j, X_ij; lambda_j), with the Aitchison & Aitken kernel for unordered
categorical variables (the ``'u'`` type of statsmodels' ``KDEMultivariate``, which the
authors' BOHB code fits): k = 1 - lambda if x_j == X_ij, else lambda / (c_j - 1), for a
decision with c_j choices. Bandwidths follow the normal-reference rule of thumb that
statsmodels applies to every variable type and the authors' code uses,
lambda_j = 1.06 * std_j * n^(-1 / (4 + d)) (std of the token indices over the n points,
d = number of decisions; on unordered tokens the std depends on the order in which a
space numbers its choices, which the rule inherits from the authors' code), then are
kept in [min_bandwidth, (c_j - 1) / c_j]. The floor (1e-3) is BOHB's minimum bandwidth,
which keeps a value that every good point agrees on from shutting the others out; the
ceiling is this module's: at (c - 1) / c the kernel is uniform over the c choices, and
beyond it the kernel would favour every choice except the observed one (statsmodels
allows it, and past 1 its "density" turns negative).

A proposal (Algorithm 2):

1. with probability rho (``random_fraction``, 1/3) an architecture drawn uniformly at
   random (the caller's draw, by default ``space.sample``; BOHB uses Hyperband's), the
   paper's guard that keeps BOHB's convergence guarantee;
2. otherwise, if no budget has N_min + 2 observations, uniformly at random as well;
3. otherwise, for the largest such budget, draw N_s = 64 candidates from l'(x), which is
   l(x) with every bandwidth multiplied by b_w = 3 (capped at the uniform kernel), and
   return the candidate that maximises l(x) / g(x) (computed in log space; ties go to the
   earlier candidate). Candidates the space rejects (``from_tokens`` raises
   InvalidArchitecture) or that the caller excludes (e.g. already evaluated) are skipped; if
   none is left, the uniform draw.

Where this follows the paper rather than the authors' code (hpbandster), on purpose:

* the code needs 2 N_min observations on a budget (disjoint good and bad sets) where the
  paper needs N_min + 2;
* the code widens only continuous bandwidths by b_w, the paper all of them;
* statsmodels' kernel takes c as the number of distinct values present in the data (so a
  position where the data agree has c = 1 and an infinite kernel off the data, a failure
  the authors' code works around); here c is the space's number of choices, as Aitchison
  & Aitken define the kernel (with equal c the densities agree with statsmodels' to
  rounding, checked against statsmodels 0.15);
* the code's categorical sampler keeps the datum's value with probability 1 - lambda and
  otherwise draws among all c values (the datum's included); here the sampler draws from
  the Aitchison-Aitken kernel itself (another value, each with probability
  lambda / (c - 1));
* the code stops recording results of a budget once a larger budget has a model; here
  every result is kept.

Everything random comes from the ``rng`` passed in, with a fixed number of draws per step,
so a seed fixes the proposals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from oracles.errors import InvalidArchitecture
from oracles.space import Arch, SearchSpace

# Defaults of BOHB (§3.1), used throughout the paper's experiments
TOP_FRACTION = 0.15       # q: the best 15 % model l(x)
N_SAMPLES = 64            # N_s: candidates drawn from l'(x) per model-based proposal
RANDOM_FRACTION = 1 / 3   # rho: proposals drawn uniformly at random
BANDWIDTH_FACTOR = 3.0    # b_w: bandwidths of l'(x) relative to l(x)
MIN_BANDWIDTH = 1e-3      # floor on every bandwidth


def normal_reference_bandwidths(data: np.ndarray) -> np.ndarray:
    """The rule of thumb 1.06 * std * n^(-1/(4+d)) per column of ``data`` (n points, d
    dimensions; population std), as statsmodels' ``KDEMultivariate(bw="normal_reference")``
    computes it for every variable type."""
    data = np.asarray(data, dtype=np.float64)
    n, d = data.shape
    return 1.06 * data.std(axis=0) * n ** (-1.0 / (4 + d))


class CategoricalKDE:
    """A product-kernel density over categorical token vectors (Aitchison-Aitken kernel).

    ``data``: (n, d) tokens, ``levels[j]`` choices at position j, ``bandwidth[j]`` the
    kernel's lambda_j in [0, (levels[j] - 1) / levels[j]].
    """

    def __init__(self, data: np.ndarray, levels: Sequence[int], bandwidth: np.ndarray):
        self.data = np.asarray(data, dtype=np.int64)
        self.levels = np.asarray(levels, dtype=np.int64)
        self.bandwidth = np.asarray(bandwidth, dtype=np.float64)
        if self.data.ndim != 2 or self.data.shape[0] == 0:
            raise ValueError("a KDE needs at least one data point")
        if self.data.shape[1] != len(self.levels) or self.bandwidth.shape != self.levels.shape:
            raise ValueError("data, levels and bandwidth disagree on the number of dimensions")

    @classmethod
    def fit(cls, data: np.ndarray, levels: Sequence[int],
            min_bandwidth: float = MIN_BANDWIDTH) -> "CategoricalKDE":
        """Normal-reference bandwidths kept in [min_bandwidth, (c - 1) / c] (module docstring)."""
        data = np.asarray(data, dtype=np.int64)
        levels = np.asarray(levels, dtype=np.int64)
        return cls(data, levels, clip_bandwidth(normal_reference_bandwidths(data), levels, min_bandwidth))

    def _tables(self) -> list[np.ndarray]:
        """Per position j, the (c_j, n) log kernel values of every choice against every data
        point, so that a density evaluation is d gathers and a sum."""
        tables = self.__dict__.get("_log_tables")
        if tables is None:
            tables = []
            for j, c in enumerate(self.levels):
                lam = float(self.bandwidth[j]) if c > 1 else 0.0
                same = math.log1p(-lam)
                diff = math.log(lam / (c - 1)) if c > 1 and lam > 0 else -math.inf
                match = np.arange(c)[:, None] == self.data[None, :, j]
                tables.append(np.where(match, same, diff))
            self._log_tables = tables
        return tables

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """log of the density at each row of ``x`` ((m, d) tokens) -> (m,)."""
        x = np.asarray(x, dtype=np.int64).reshape(-1, len(self.levels))
        tables = self._tables()
        log_k = tables[0][x[:, 0]]
        for j in range(1, len(tables)):
            log_k = log_k + tables[j][x[:, j]]                           # (m, n)
        top = log_k.max(axis=1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            out = np.log(np.exp(log_k - top).sum(axis=1)) + top[:, 0]
        return out - math.log(self.data.shape[0])

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.log_pdf(x))

    def sample(self, rng: np.random.Generator, n: int, bandwidth_factor: float = 1.0) -> np.ndarray:
        """``n`` token vectors from the density with bandwidths times ``bandwidth_factor``
        (capped at the uniform kernel): a data point chosen uniformly, then each position
        kept with probability 1 - lambda' or moved to one of the other c - 1 choices."""
        lam = np.minimum(self.bandwidth * float(bandwidth_factor), uniform_bandwidth(self.levels))
        d = len(self.levels)
        rows = rng.integers(self.data.shape[0], size=n)
        move = rng.random((n, d)) < lam[None, :]
        # one of the c - 1 other values, uniformly: draw in [0, c - 1) and skip the datum's own
        other = rng.integers(np.maximum(self.levels - 1, 1)[None, :], size=(n, d))
        base = self.data[rows]
        other = other + (other >= base)
        return np.where(move & (self.levels[None, :] > 1), other, base)


def uniform_bandwidth(levels: np.ndarray) -> np.ndarray:
    """(c - 1) / c: the Aitchison-Aitken bandwidth at which the kernel is uniform."""
    levels = np.asarray(levels, dtype=np.float64)
    return np.where(levels > 1, (levels - 1) / np.maximum(levels, 1), 0.0)


def clip_bandwidth(bw: np.ndarray, levels: np.ndarray, min_bandwidth: float) -> np.ndarray:
    top = uniform_bandwidth(levels)
    return np.minimum(np.maximum(np.asarray(bw, dtype=np.float64), min_bandwidth), top)


@dataclass(frozen=True)
class Proposal:
    """One proposal: the architecture and how it was chosen (``how``: ``"random"`` for the
    random fraction, ``"no_model"`` when no budget has enough observations, ``"model"``,
    or ``"model_empty"`` when every candidate was invalid or excluded); ``budget``: the
    budget whose model was used (None otherwise)."""

    arch: Arch | None
    how: str
    budget: int | None = None


class BOHBDensity:
    """BOHB's model: observations per budget, the KDE pair of the largest budget with
    enough of them, and proposals by Algorithm 2 (module docstring).

    ``decisions``: the space's choices per token position (d = len(decisions)).
    ``min_points``: N_min; None gives d + 1, BOHB's setting (§3.1: the minimum for a
    non-degenerate d-dimensional KDE). A budget has a model once it has N_min + 2
    observations (Algorithm 2).
    """

    def __init__(self, decisions: Sequence[int], top_fraction: float = TOP_FRACTION,
                 n_samples: int = N_SAMPLES, random_fraction: float = RANDOM_FRACTION,
                 bandwidth_factor: float = BANDWIDTH_FACTOR, min_bandwidth: float = MIN_BANDWIDTH,
                 min_points: int | None = None):
        self.levels = np.asarray(tuple(decisions), dtype=np.int64)
        if self.levels.ndim != 1 or len(self.levels) == 0 or np.any(self.levels < 1):
            raise ValueError(f"decisions must be positive counts, got {tuple(decisions)!r}")
        self.d = len(self.levels)
        if not 0.0 < float(top_fraction) < 1.0:
            raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}")
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if not 0.0 <= float(random_fraction) <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
        if float(bandwidth_factor) <= 0:
            raise ValueError(f"bandwidth_factor must be > 0, got {bandwidth_factor}")
        if not float(min_bandwidth) > 0:
            raise ValueError(f"min_bandwidth must be > 0, got {min_bandwidth}")
        self.top_fraction = float(top_fraction)
        self.n_samples = int(n_samples)
        self.random_fraction = float(random_fraction)
        self.bandwidth_factor = float(bandwidth_factor)
        self.min_bandwidth = float(min_bandwidth)
        self.min_points = self.d + 1 if min_points is None else int(min_points)
        if self.min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {min_points}")
        # budget -> identity -> [tokens, sum of values, count]; dict order = first-tell order
        self._obs: dict[int, dict[str, list]] = {}
        self._fitted: dict[int, tuple[int, CategoricalKDE, CategoricalKDE]] = {}
        self.counts = {"random": 0, "no_model": 0, "model": 0, "model_empty": 0}

    # -- data -----------------------------------------------------------------------
    @property
    def points_to_fit(self) -> int:
        """Observations a budget needs before it has a model: N_min + 2 (Algorithm 2)."""
        return self.min_points + 2

    def add(self, budget: int, identity: str, tokens: Sequence[int], value: float) -> None:
        """One observation at ``budget``. The same architecture told again at the same
        budget (a repeat, or another draw of a noisy oracle) is one point with the mean of
        its values; a non-finite value ranks below every finite one."""
        value = float(value)
        if not math.isfinite(value):
            value = -math.inf
        per = self._obs.setdefault(int(budget), {})
        entry = per.get(identity)
        if entry is None:
            per[identity] = [tuple(int(t) for t in tokens), value, 1]
        else:
            entry[1] += value
            entry[2] += 1

    def n_points(self, budget: int) -> int:
        return len(self._obs.get(int(budget), {}))

    def model_budget(self) -> int | None:
        """The largest budget with at least N_min + 2 observations, or None."""
        ok = [b for b, per in self._obs.items() if len(per) >= self.points_to_fit]
        return max(ok) if ok else None

    def split(self, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """(good tokens, bad tokens) of ``budget``: the N_l best and the N_g worst (Eqs. 2-3);
        equal values keep their first-tell order."""
        per = self._obs[int(budget)]
        tokens = np.array([e[0] for e in per.values()], dtype=np.int64).reshape(len(per), self.d)
        values = np.array([e[1] / e[2] if math.isfinite(e[1]) else -math.inf for e in per.values()])
        n = len(values)
        # floor of q * n; the small epsilon keeps exact products such as 0.15 * 20 from flooring down
        n_good = max(self.min_points, int(math.floor(self.top_fraction * n + 1e-9)))
        n_bad = max(self.min_points, n - n_good)
        order = np.argsort(-values, kind="stable")       # best first
        return tokens[order[:n_good]], tokens[order[n - n_bad:]]

    def densities(self, budget: int) -> tuple[CategoricalKDE, CategoricalKDE]:
        """(l, g) fitted on ``budget`` (refitted only when its observations changed)."""
        per = self._obs[int(budget)]
        stamp = sum(e[2] for e in per.values())
        cached = self._fitted.get(int(budget))
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        good, bad = self.split(budget)
        l = CategoricalKDE.fit(good, self.levels, self.min_bandwidth)
        g = CategoricalKDE.fit(bad, self.levels, self.min_bandwidth)
        self._fitted[int(budget)] = (stamp, l, g)
        return l, g

    # -- proposals ------------------------------------------------------------------
    def propose(self, space: SearchSpace, rng: np.random.Generator,
                uniform: Callable[[], Arch | None] | None = None,
                exclude: Callable[[Arch], bool] | None = None) -> Proposal:
        """One architecture by Algorithm 2.

        ``uniform()``: the caller's uniformly random draw, used for the random fraction and
        when there is no model (default ``space.sample(rng)``; it may return None, e.g. a
        finite space with nothing left, and the proposal's ``arch`` is then None).
        ``exclude(arch)`` True skips a model candidate (e.g. already evaluated); when every
        candidate is invalid or excluded the proposal is ``uniform()`` too.
        """
        if uniform is None:
            def uniform():
                return space.sample(rng)
        # Algorithm 2 tosses the random-fraction coin first, whatever the state of the model
        if rng.random() < self.random_fraction:
            self.counts["random"] += 1
            return Proposal(uniform(), "random")
        budget = self.model_budget()
        if budget is None:
            self.counts["no_model"] += 1
            return Proposal(uniform(), "no_model")
        l, g = self.densities(budget)
        cands = l.sample(rng, self.n_samples, self.bandwidth_factor)
        score = l.log_pdf(cands) - g.log_pdf(cands)
        for i in np.argsort(-score, kind="stable"):
            try:
                arch = space.from_tokens(tuple(int(t) for t in cands[i]))
            except InvalidArchitecture:
                continue
            if exclude is not None and exclude(arch):
                continue
            self.counts["model"] += 1
            return Proposal(arch, "model", budget)
        self.counts["model_empty"] += 1
        return Proposal(uniform(), "model_empty", budget)

    def diagnostics(self) -> dict[str, Any]:
        return {"proposals": dict(self.counts),
                "points_per_budget": {str(b): len(p) for b, p in sorted(self._obs.items())},
                "model_budget": self.model_budget()}
