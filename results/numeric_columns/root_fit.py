"""Why the Adam-fitted LaNAS does worse with numeric columns here: how well one node's
linear model ranks the table, per encoding and fit.

    python results/numeric_columns/root_fit.py   # needs digits-numeric / digits-categorical imported

For 20 seeds: draw 200 rows at random (the size of a LaNAS root fit after a few rebuilds),
fit the root's linear model on their validation accuracy as algorithms/lanas.py does --
``lstsq`` (minimum-norm least squares) or ``adam`` (Xavier init, 20,000 full-batch Adam
epochs at lr 1e-5, clip 5: the authors' settings, via ``algorithms.lanas.adam_steps``) --
and report the Spearman correlation of its predictions with the true validation accuracy
over all 1,364 rows, and how far Adam moved the weights from their initialisation relative
to the initialisation's own size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from algorithms.lanas import adam_steps
from oracles.registry import load_oracle


def fit_adam(X, y, rng, epochs=20_000, lr=1e-5, clip=5.0):
    d = X.shape[1]
    a = math.sqrt(6.0 / (d + 1))
    theta0 = np.concatenate([rng.uniform(-a, a, d), rng.uniform(-1 / math.sqrt(d), 1 / math.sqrt(d), 1)])
    Xa = np.hstack([X, np.ones((len(X), 1))])
    G = (2.0 / len(y)) * (Xa.T @ Xa)[None].copy()
    h = (2.0 / len(y)) * (Xa.T @ y)[None].copy()
    theta = theta0[None].copy()
    m, v, t = np.zeros_like(theta), np.zeros_like(theta), np.zeros(1, dtype=np.int64)
    adam_steps(np.ascontiguousarray(G), np.ascontiguousarray(h), theta, m, v, t, epochs, lr, clip)
    return theta[0], np.linalg.norm(theta[0] - theta0) / np.linalg.norm(theta0)


def fit_lstsq(X, y):
    Xa = np.hstack([X, np.ones((len(X), 1))])
    return np.linalg.lstsq(Xa, y, rcond=None)[0]


def main():
    print("| encoding | dims | lstsq Spearman | adam Spearman | adam: |moved| / |init| |")
    print("|---|---|---|---|---|")
    for name in ("digits-numeric", "digits-categorical", "convnet-digits"):
        o = load_oracle(name)
        X = np.asarray(o.space.encode_all(), dtype=np.float64)
        y = np.asarray(o.search_values, dtype=np.float64)
        Xa = np.hstack([X, np.ones((len(X), 1))])
        ls, ad, moved = [], [], []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            rows = rng.choice(len(y), 200, replace=False)
            ls.append(spearmanr(Xa @ fit_lstsq(X[rows], y[rows]), y)[0])
            theta, mv = fit_adam(X[rows], y[rows], rng)
            ad.append(spearmanr(Xa @ theta, y)[0])
            moved.append(mv)
        q = lambda a: f"{np.median(a):.2f} ({np.min(a):.2f} to {np.max(a):.2f})"  # noqa: E731
        print(f"| {name} | {X.shape[1]} | {q(ls)} | {q(ad)} | {np.median(moved):.2f} |")


if __name__ == "__main__":
    main()
