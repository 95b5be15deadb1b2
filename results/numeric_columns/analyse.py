"""Numeric vs categorical encoding of one table: samples to the optimum per algorithm.

    python results/numeric_columns/analyse.py RUNS_FOLDER

RUNS_FOLDER is the output of ``nas-harness run results/numeric_columns/numeric_columns.toml``.
Prints, per algorithm, the mean and median samples to the optimum on each oracle and, for
``digits-numeric`` against ``digits-categorical``, the ratio of means with a 95% percentile
bootstrap interval (10,000 resamples) and a two-sided Mann-Whitney U test (no run is
censored: every run ends at the optimum within the 1,364 rows).
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import mannwhitneyu

from harness.metrics import load

ORACLES = ("digits-numeric", "digits-categorical", "convnet-digits")


def main(folder: str) -> None:
    rs = load(folder, with_records=False)
    sto = {(c.oracle, c.label): c.samples_to_optimum for c in rs.cells}
    assert not any(c.censored.any() for c in rs.cells), "a censored run: use the harness's report"
    rng = np.random.default_rng(0)
    print("| algorithm | " + " | ".join(f"{o} mean / median" for o in ORACLES)
          + " | numeric / categorical (means) | p |")
    print("|---" * (len(ORACLES) + 3) + "|")
    for label in sorted({c.label for c in rs.cells}):
        cols = [f"{sto[o, label].mean():.1f} / {np.median(sto[o, label]):.0f}" for o in ORACLES]
        num, cat = sto["digits-numeric", label], sto["digits-categorical", label]
        boot = [rng.choice(num, len(num)).mean() / rng.choice(cat, len(cat)).mean() for _ in range(10_000)]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        p = mannwhitneyu(num, cat, alternative="two-sided").pvalue
        print(f"| {label} | " + " | ".join(cols) + f" | {num.mean() / cat.mean():.2f} [{lo:.2f}, {hi:.2f}] | {p:.2g} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python results/numeric_columns/analyse.py RUNS_FOLDER")
    main(sys.argv[1])
