"""NASES's Table 1 check (issue 13: do NASES's defaults reproduce what its paper publishes?).

Liu, "Neural Architecture Search in Embedding Space", "Experiments / First Stage", Table 1:
the simulator/decoder autoencoder is pretrained on uniform vectors of 60 values in
[0, 30] and its test loss reported against the embedding size (20 units: 46.15, 30 units:
34.77; predicting the mean scores Var U(0, 30) = 75). This script pretrains
``algorithms.nases.NASES``'s autoencoder the way a run does, on the paper's 60-value
vectors, and prints one JSON line per (embedding size, settings) with the CPU seconds::

    python results/nases_table1.py --units 20,30
    python results/nases_table1.py --units 20 --params '{"pretrain_train": 300000, "pretrain_test": 100000}'
"""

from __future__ import annotations

import argparse
import json
import time

from algorithms.nases import NASES


def main() -> None:
    import torch
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default="20,30", help="embedding sizes")
    ap.add_argument("--values", type=int, default=60, help="architecture vector length (paper: 60)")
    ap.add_argument("--params", default="{}", help="NASES parameters as JSON (default: its defaults)")
    args = ap.parse_args()
    params = json.loads(args.params)
    for n in (int(u) for u in args.units.split(",")):
        t = time.process_time()
        _, _, info = NASES(**params)._pretrain(torch, args.values, n, torch.device("cpu"))
        print(json.dumps({"values": args.values, "units": n, **params, **info,
                          "cpu_s": round(time.process_time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
