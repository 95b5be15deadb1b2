"""How far this machine's re-training is from a shipped table's stored rows.

    python -m oracles.collectors.retrain_check [--rows 20] [--seed 12] [--table DIR]

Re-trains ``--rows`` (network, seed) rows of a collected table (default the shipped
``convnet-digits``; the rows are drawn with ``--seed``, after the three rows the test suite
re-trains), each twice in this process, and prints per row how many predictions each
accuracy is off and the relative difference of each loss, then the maxima and medians.
docs/convnet-digits.md quotes its output for an AMD EPYC against the table made on a Xeon.
It needs the table's torch version (other versions may initialise or compute differently).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..convnet_space import ConvNetSpace
from ..registry import EMBEDDED_DIR
from ..table import load_table
from .datasets import load_split
from .train import METRICS, Recipe, configure_torch, train_network

TEST_ROWS = ((3, 0), (200, 1), (1000, 2))  # the rows tests/test_collector.py re-trains


def check(table_dir: Path, n_rows: int, seed: int, log=print) -> list[dict]:
    table = load_table(table_dir)
    meta = table.meta
    configure_torch(1)
    data = load_split(meta["dataset"]["dataset"], meta["dataset"]["split_seed"], None)
    recipe = Recipe.from_dict(meta["recipe"])
    space = ConvNetSpace.from_preset(meta["space"]["preset"])
    rng = np.random.default_rng(seed)
    rows = list(TEST_ROWS)
    while len(rows) < len(TEST_ROWS) + n_rows:
        r, s = int(rng.integers(table.n_archs)), int(rng.integers(len(table.seeds)))
        if (r, s) not in rows:
            rows.append((r, s))
    sizes = {"train": len(data.y_train), "valid": len(data.y_valid), "test": len(data.y_test)}
    values = np.asarray(table.values)
    out = []
    for r, s in rows:
        layers = space.parse(str(table.archs[r]))
        a = train_network(layers, int(table.seeds[s]), recipe, data)
        b = train_network(layers, int(table.seeds[s]), recipe, data)
        rec = {"row": r, "arch": str(table.archs[r]), "seed": table.seeds[s],
               "bitwise_in_process": all(a[m] == b[m] for m in METRICS if m != "train_time")}
        for i, m in enumerate(METRICS):
            stored = float(values[r, s, 0, i])
            if m.endswith("_acc"):
                rec[f"{m}_predictions_off"] = int(round(abs(a[m] - stored) * sizes[m.split("_")[0]]))
            elif m.endswith("_loss"):
                rec[f"{m}_relative"] = abs(a[m] - stored) / abs(stored)
        log(json.dumps(rec))
        out.append(rec)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m oracles.collectors.retrain_check", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20, help="rows drawn at random besides the test's three")
    p.add_argument("--seed", type=int, default=12, help="seed of the draw")
    p.add_argument("--table", type=Path, default=EMBEDDED_DIR / "convnet-digits", help="collected table folder")
    args = p.parse_args(argv)
    recs = check(args.table, args.rows, args.seed)
    keys = [k for k in recs[0] if k.endswith(("_off", "_relative"))]
    summary = {k: {"max": max(r[k] for r in recs), "median": float(np.median([r[k] for r in recs]))} for k in keys}
    summary["bitwise_in_process"] = all(r["bitwise_in_process"] for r in recs)
    print(json.dumps({"rows": len(recs), **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
