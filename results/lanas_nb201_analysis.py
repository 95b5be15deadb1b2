"""Diagnostics behind results/lanas_reproduction.md (issue 5): why LaNAS's mean on NB201 is
held back by a tail, and how the authors' Adam node fit partitions compared with least squares.

    python results/lanas_nb201_analysis.py tail [--dataset cifar10] [--runs 30] [--spec lanas]
    python results/lanas_nb201_analysis.py partition [--dataset cifar10]

Reads ../shared/data/nb201/nb201_200ep.csv (or $NAS_HARNESS_SHARED_DATA/nb201); search metric
= <dataset>_valid as fractions, as the nb201/<dataset> oracles use.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from algorithms import make_algorithm, parse_spec  # noqa: E402
from algorithms.lanas import LaNAS  # noqa: E402
from oracles.nb201_space import NB201Space  # noqa: E402
from oracles.oracle import Observation  # noqa: E402


def load(dataset: str):
    data = Path(os.environ.get("NAS_HARNESS_SHARED_DATA", REPO.parent / "shared" / "data"))
    df = pd.read_csv(data / "nb201" / "nb201_200ep.csv", usecols=["arch_str", f"{dataset}_valid"])
    return NB201Space(list(df["arch_str"])), df[f"{dataset}_valid"].to_numpy() / 100.0


def tail(space, vals, spec: str, runs: int) -> None:
    """Per run: samples to the optimum, and in what fraction of the tree rebuilds before that
    the optimum's *prediction* sent it right ("bad") at the root."""
    opt = int(np.argmax(vals))
    name, params = parse_spec(spec)
    rows = []
    for seed in range(runs):
        algo = make_algorithm(name, params)
        algo.start(space, np.random.default_rng(1000 + seed))
        n, last, right = 0, None, []
        while True:
            arch = algo.ask()
            i = space.index(arch)
            n += 1
            if algo._tree is not None and algo._tree is not last:
                last = algo._tree
                k = int(algo._leaf_of[opt])
                while k > 2:
                    k = (k - 1) // 2
                right.append(k == 2)
            algo.tell(arch, Observation(float(vals[i])))
            if i == opt:
                break
        rows.append((n, np.mean(right) if right else 0.0))
    r = np.array(rows)
    order = np.argsort(r[:, 0])
    fast, slow = r[order[: runs // 2]], r[order[runs // 2:]]
    print(f"{spec}: {runs} runs, samples to optimum mean {r[:, 0].mean():.0f}, median {np.median(r[:, 0]):.0f}")
    print(f"  faster half: mean {fast[:, 0].mean():.0f} samples; optimum routed right at the root in "
          f"{fast[:, 1].mean():.2f} of the rebuilds")
    print(f"  slower half: mean {slow[:, 0].mean():.0f} samples; optimum routed right at the root in "
          f"{slow[:, 1].mean():.2f} of the rebuilds")
    print(f"  Spearman(samples, fraction routed right) = {spearmanr(r[:, 0], r[:, 1]).statistic:.2f}")


def partition(space, vals) -> None:
    """Root split fitted on the same uniformly random samples by exact least squares and by
    the authors' optimiser (Adam lr 1e-5, clip 5, 20,000 epochs from a Xavier init)."""
    X = space.encode_all()
    for seed in range(3):
        for n in (10, 100, 500):
            idx = np.random.default_rng(100 + seed).choice(space.size, n, replace=False)
            res = {}
            for split in ("lstsq", "adam"):
                a = LaNAS(split=split, n_init=n, n_select=10**9, height=2)
                a.start(space, np.random.default_rng(seed))
                for i in idx:
                    a.tell(space.arch(int(i)), Observation(float(vals[i])))
                t = a._tree
                p = X @ t.W[0] + t.b[0]
                mse = float(np.mean((p[idx] - vals[idx]) ** 2))
                res[split] = (p >= t.thr[0], spearmanr(p, vals).statistic, mse)
            same = float((res["lstsq"][0] == res["adam"][0]).mean())
            print(f"seed {seed} n={n:4d}: same side {same:.3f}; Spearman(pred, acc) lstsq "
                  f"{res['lstsq'][1]:.3f} adam {res['adam'][1]:.3f}; train MSE lstsq "
                  f"{res['lstsq'][2]:.5f} adam {res['adam'][2]:.5f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["tail", "partition"])
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet16"])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--spec", default="lanas")
    args = ap.parse_args()
    space, vals = load(args.dataset)
    if args.what == "tail":
        tail(space, vals, args.spec, args.runs)
    else:
        partition(space, vals)


if __name__ == "__main__":
    main()
