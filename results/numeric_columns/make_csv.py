"""Export the shipped convnet-digits table as a plain CSV with numeric architecture columns.

One row per network: ``depth``, then ``kernel_1 .. kernel_5`` and ``channels_1 .. channels_5``
(0 for the layers past the depth: "no layer" is zero channels), and the seed means the
``convnet-digits`` oracle serves: ``valid_acc``, ``test_acc``, ``train_acc`` in percent (as
many published tables print them; the importer detects the unit) and ``train_time`` in
seconds. Rows keep the table's order.

    python results/numeric_columns/make_csv.py OUT.csv

The CSV is derived data (1,364 rows, about 100 KB): written where asked, never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from oracles.convnet_space import ConvNetSpace
from oracles.registry import EMBEDDED_DIR
from oracles.table import load_table


def frame() -> pd.DataFrame:
    table = load_table(EMBEDDED_DIR / "convnet-digits")
    space = ConvNetSpace.from_preset(table.meta["space"]["preset"])
    depth = space.max_depth
    rows = []
    for arch_str in table.archs:
        layers = space.parse(str(arch_str))
        row = {"depth": len(layers)}
        for i in range(depth):
            k, c = layers[i] if i < len(layers) else (0, 0)
            row[f"kernel_{i + 1}"], row[f"channels_{i + 1}"] = k, c
        rows.append(row)
    df = pd.DataFrame(rows)
    for m in ("valid_acc", "test_acc", "train_acc"):
        df[m] = 100.0 * np.asarray(table.column(m), dtype=np.float64)
    df["train_time"] = np.asarray(table.column("train_time"), dtype=np.float64)
    return df


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python results/numeric_columns/make_csv.py OUT.csv")
    out = Path(sys.argv[1])
    df = frame()
    # %.17g: every float64 survives the round trip, so the two tied optima stay tied
    df.to_csv(out, index=False, float_format="%.17g")
    print(f"wrote {len(df)} rows x {len(df.columns)} columns to {out}")
