"""Diagnostic behind results/learned_nb201.md (issue 6): which NAS-Bench-201 architectures
can NASES propose at all?

NASES (Liu, "Neural Architecture Search in Embedding Space") never picks an architecture
directly: its controller emits Bernoulli probabilities over a binary embedding, a code ``b``
is sampled, and the frozen, pretrained decoder maps ``b`` to an architecture vector that
is binned into tokens. So the only architectures its policy can reach are the decoder's
images of binary codes; the rest are drawn only by its 10% epsilon-greedy and its random
fallbacks. This script decodes codes (all of them when there are at most 2^16, else a
uniform sample) with the same pretrained autoencoder a run uses and reports how much of the
space, and of its best architectures, that image covers.

    python results/nases_decoder_coverage.py [--oracle nb201/cifar10] [--embedding 14 24]
        [--codes 300000]

Needs the imported NB201 tables (nas-harness oracles import nb201 ../shared/data/nb201).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from algorithms import make_algorithm  # noqa: E402
from oracles.registry import load_oracle  # noqa: E402


def decoded_counts(algo, space, codes: np.ndarray) -> np.ndarray:
    """How many of ``codes`` decode to each architecture index of ``space``."""
    tokens = np.concatenate([algo.decode_bits(codes[i:i + 50_000]) for i in range(0, len(codes), 50_000)])
    rows, counts = np.unique(tokens, axis=0, return_counts=True)
    index = np.array([space.index(space.from_tokens([int(t) for t in r])) for r in rows])
    out = np.zeros(space.size, dtype=np.int64)
    out[index] = counts
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--oracle", action="append", help="default: the three nb201 datasets")
    p.add_argument("--embedding", type=int, nargs="+", default=[0],
                   help="embedding sizes (0: the module's default, 14 on NB201)")
    p.add_argument("--codes", type=int, default=300_000, help="codes sampled when there are more than 2^16")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    for name in args.oracle or ["nb201/cifar10", "nb201/cifar100", "nb201/imagenet16"]:
        oracle = load_oracle(name)
        space, values = oracle.space, oracle.search_values
        best = np.flatnonzero(values >= values.max() - 1e-10)
        top50 = np.argsort(-values, kind="stable")[:50]
        for emb in args.embedding:
            algo = make_algorithm("nases", {"embedding_size": emb})
            algo.start(space, np.random.default_rng(0))
            m = algo.diagnostics()["embedding_size"]
            if m <= 16:
                codes, how = np.array(list(itertools.product([0.0, 1.0], repeat=m)), dtype=np.float32), "all"
            else:
                rng = np.random.default_rng(1)
                codes, how = (rng.random((args.codes, m)) < 0.5).astype(np.float32), f"{args.codes:,} random"
            reach = decoded_counts(algo, space, codes)
            hit = reach > 0
            print(f"{name}  embedding {m} ({how} codes): {int(hit.sum()):,} of {space.size:,} architectures "
                  f"reachable; optimum {', '.join(map(str, best))} reachable: {bool(hit[best].any())}; "
                  f"top-50 reachable: {int(hit[top50].sum())}; mean search metric of the reachable "
                  f"{values[hit].mean():.4f} (all {values.mean():.4f}, code-weighted {(values * reach).sum() / reach.sum():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
