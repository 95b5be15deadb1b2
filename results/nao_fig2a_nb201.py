"""NAO's Fig. 2(a) check on NAS-Bench-201 (issue 13: do NAO's defaults reproduce what its
paper publishes?).

Luo et al., "Neural Architecture Optimization", §4.1 / Fig. 2(a): of 600 random
architectures, 50 are held out; encoder, predictor and decoder are trained on 100 ... 550
of the others; the predictor's pairwise accuracy and the decoder's mean Hamming distance
``Dist(D(E(x)), x)`` are measured on the held-out 50. The paper reports > 0.78 pairwise
accuracy with about 500 architectures and a Hamming distance below 0.5 tokens (of 60).

This script does the same with ``algorithms.nao.NAO``'s defaults (1000 epochs, Adam 1e-3,
lambda 0.9, hidden 96, embedding 32) on the validation accuracies of an NB201 oracle and
prints one JSON line per (seed, training size), with the CPU seconds of the training::

    nas-harness oracles import nb201 ../shared/data/nb201
    python results/nao_fig2a_nb201.py --sizes 100,300,500 --seeds 0,1,2

(about 20 s of CPU per 100 training architectures on one core).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from algorithms.nao import NAO
from oracles.registry import load_oracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracle", default="nb201/cifar10")
    ap.add_argument("--sizes", default="100,300,500", help="training-set sizes (at most 550)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = ap.parse_args()
    oracle = load_oracle(args.oracle)
    space = oracle.space
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(1000 + seed)
        idx = rng.choice(space.size, 600, replace=False)
        archs = [space.arch(int(i)) for i in idx]
        tokens = [tuple(int(t) for t in space.tokens(a)) for a in archs]
        values = [float(oracle.query(a, rng).observation.value) for a in archs]
        for n in (int(s) for s in args.sizes.split(",")):
            algo = NAO()
            algo.start(space, np.random.default_rng(seed))
            # the model trains on exactly these (tokens, accuracy) pairs, as after n tells
            algo._X, algo._S = list(tokens[50:50 + n]), list(values[50:50 + n])
            t = time.process_time()
            algo.train_model()
            ev = algo.evaluate_model(tokens[:50], values[:50])
            print(json.dumps({"oracle": args.oracle, "seed": seed, "n_train": n, **ev,
                              "cpu_s": round(time.process_time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
