"""NAS-Bench-201's Table 5 on our own ground truth (issue 16): do DARTS and ENAS collapse to
skip connections, and is GDAS robust, when the NB201 cell space is searched on digits?

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search"
(ICLR 2020), Table 5 (repeated in the thesis's Table 4.1): on CIFAR-10, DARTS first and
second order derive cells of skip connections (54.30 % test), ENAS 53.89 %, GDAS 93.61 %.

This script reads the one-shot runs of ``nas-harness run results/experiments/nb201_table5_digits.toml``
(every method on the NB201 supernet trained on digits, the oracle ``nb201-digits``: the same
cells trained stand-alone, the judge of every derived cell; the methods never see it) and
writes, per method:

* the derived cell after the last epoch: its true test and validation accuracy (the table's
  values, mean over its training seeds), mean with a 95 % t-interval over search seeds;
* its **true rank** among the 15,625 cells by test accuracy (1 = best; ties share the best
  rank) and as a percentile;
* the fraction of skip connections in the derived cell, after the last epoch and **over the
  epochs** (figure ``skip_fraction.png``), and how many runs end in a cell without any
  convolution (only ``none``, ``skip_connect`` and ``avg_pool_3x3`` edges: the collapse NB201
  reports);
* the true test accuracy of the derived cell over the epochs (``true_accuracy.png``);
* CPU seconds per epoch (the method's own ``process_time``, from the run's diagnostics).

Reference rows from the table: the best cell, the mean and median cell, and the all-skip cell.

    python results/nb201_table5_digits/analyse.py RUNS_FOLDER --out results/nb201_table5_digits
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.results import ResultsStore  # noqa: E402
from harness.statistics import holm, mann_whitney  # noqa: E402
from oracles.nb201_space import OPS, arch_to_string, string_to_arch  # noqa: E402
from oracles.registry import load_oracle  # noqa: E402
from supernets.rank import interval_text as fmt, t_interval  # noqa: E402

SKIP = OPS.index("skip_connect")
CONVS = {OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3")}
ALL_SKIP = (SKIP,) * 6


def collect(folder: Path, oracle_name: str):
    """Per algorithm label: one dict per seed (final cell, its values, per-epoch series)."""
    out: dict[str, list[dict]] = {}
    for cell, meta, table in ResultsStore(folder).iter_runs(with_records=True):
        if cell.oracle != oracle_name or cell.config.get("kind") != "one-shot":
            continue
        summary = meta["summary"]
        epochs = summary.get("diagnostics", {}).get("epochs", [])
        cols = table.to_pydict()
        order = np.argsort(cols["sample"])
        archs = [cols["arch"][i] for i in order]
        report = np.array(cols["report"], dtype=float)[order]    # None (no truth) -> NaN
        search = np.array(cols["search"], dtype=float)[order]
        out.setdefault(cell.label, []).append({
            "seed": int(meta["seed"]),
            "final": archs[-1],
            "test": float(report[-1]),
            "valid": float(search[-1]),
            "test_by_epoch": report.tolist(),
            "skip_by_epoch": [float(e["skip_fraction"]) for e in epochs],
            "cpu_per_epoch": [float(e["cpu_seconds"]) for e in epochs],
            "distinct": len(set(archs)),
        })
    for runs in out.values():
        runs.sort(key=lambda r: r["seed"])
    return out


def analyse(folder: Path, oracle_name: str = "nb201-digits") -> dict:
    oracle = load_oracle(oracle_name)
    space = oracle.space
    test = np.asarray(oracle.report_values, dtype=float)     # per cell, mean over the table's seeds
    if len(test) != len(OPS) ** 6 or not np.isfinite(test).all():
        raise SystemExit(f"{oracle_name} covers {int(np.isfinite(test).sum())} of {len(OPS) ** 6} cells: "
                         "the ranks need the full table")

    def rank(arch_text: str) -> int:
        v = test[space.index(string_to_arch(arch_text))]
        return int((test > v).sum()) + 1

    runs = collect(folder, oracle_name)
    if not runs:
        raise SystemExit(f"no one-shot runs on {oracle_name} in {folder}")
    optimum = int(np.nanargmax(test))
    refs = {
        "best cell": (arch_to_string(space.arch(optimum)), float(test[optimum])),
        "all-skip cell": (arch_to_string(ALL_SKIP), float(test[space.index(ALL_SKIP)])),
        "mean cell": (None, float(np.mean(test))),
        "median cell": (None, float(np.median(test))),
    }
    methods = {}
    for label, rs in sorted(runs.items()):
        ops = [string_to_arch(r["final"]) for r in rs]
        ranks = [rank(r["final"]) for r in rs]
        skip = [sum(o == SKIP for o in a) / 6 for a in ops]
        conv_free = sum(not any(o in CONVS for o in a) for a in ops)
        finals: dict[str, int] = {}
        for r in rs:
            finals[r["final"]] = finals.get(r["final"], 0) + 1
        cpu = [float(np.median(r["cpu_per_epoch"])) for r in rs if r["cpu_per_epoch"]]
        methods[label] = {
            "seeds": [r["seed"] for r in rs],
            "epochs": int(np.median([len(r["test_by_epoch"]) for r in rs])),
            "test": t_interval([r["test"] for r in rs]),
            "valid": t_interval([r["valid"] for r in rs]),
            "rank": {"values": ranks, "median": float(np.median(ranks)),
                     "percentile_median": float(np.median(ranks)) / len(test) * 100},
            "skip_fraction_final": t_interval(skip),
            "conv_free_runs": conv_free,
            "all_skip_runs": int(sum(a == ALL_SKIP for a in ops)),
            "final_cells": dict(sorted(finals.items(), key=lambda kv: -kv[1])),
            "cpu_s_per_epoch_median": float(np.median(cpu)) if cpu else None,
            "skip_by_epoch": [r["skip_by_epoch"] for r in rs],
            "test_by_epoch": [r["test_by_epoch"] for r in rs],
        }
    return {"oracle": oracle_name, "cells": len(test), "references": refs, "methods": methods,
            "pairs": pairwise(runs)}


def pairwise(runs: dict[str, list[dict]]) -> list[dict]:
    """Every pair of methods on the final cell's true test accuracy: two-sided Mann-Whitney U
    over seeds, Holm-adjusted over the pairs, and A12 = P(a run of the first ends on a truly
    better cell than a run of the second)."""
    labels = sorted(runs)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    tests = [mann_whitney(np.array([r["test"] for r in runs[a]], dtype=np.float64),
                         np.array([r["test"] for r in runs[b]], dtype=np.float64)) for a, b in pairs]
    adjusted = holm([1.0 if t is None else t.p_value for t in tests])
    return [{"first": a, "second": b, "runs": [len(runs[a]), len(runs[b])],
             "a12": None if t is None else t.a12, "p_holm": None if t is None else p}
            for (a, b), t, p in zip(pairs, tests, adjusted)]


def figures(result: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for key, ylabel, name in (("skip_by_epoch", "fraction of skip connections in the derived cell", "skip_fraction.png"),
                              ("test_by_epoch", "true test accuracy of the derived cell", "true_accuracy.png")):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for i, (label, m) in enumerate(result["methods"].items()):
            series = m[key]
            n = min(len(s) for s in series)
            mat = np.array([s[:n] for s in series], dtype=float)
            x = np.arange(1, n + 1)
            mean = np.nanmean(mat, axis=0)
            ax.plot(x, mean, color=f"C{i}", label=f"{label} ({len(series)} seeds)")
            ax.fill_between(x, np.nanmin(mat, axis=0), np.nanmax(mat, axis=0), color=f"C{i}", alpha=0.12)
        if key == "test_by_epoch":
            for j, (ref, (_, v)) in enumerate(result["references"].items()):
                ax.axhline(v, color="0.4", lw=1, ls=("-", "--", ":", "-.")[j % 4])
                ax.text(1, v, f" {ref}", fontsize=7, va="bottom", color="0.3")
        ax.set_xlabel("search epoch")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("mean over seeds; band: min-max", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    return paths


def report(result: dict) -> str:
    lines = [f"| method | seeds | epochs | true test acc. of the final cell [%] | its true valid acc. [%] | "
             f"true rank of {result['cells']:,} (median; per seed) | skip fraction, final | runs without a convolution | "
             "distinct final cells | CPU s / epoch (median) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, m in result["methods"].items():
        ranks = ", ".join(f"{r:,}" for r in m["rank"]["values"])
        cpu = "-" if m["cpu_s_per_epoch_median"] is None else f"{m['cpu_s_per_epoch_median']:.2f}"
        lines.append(f"| {label} | {len(m['seeds'])} | {m['epochs']} | {fmt(m['test'])} | {fmt(m['valid'])} | "
                     f"{m['rank']['median']:,.0f} ({m['rank']['percentile_median']:.1f} %); {ranks} | "
                     f"{fmt(m['skip_fraction_final'], 1.0)} | {m['conv_free_runs']} | {len(m['final_cells'])} | {cpu} |")
    lines += ["", "Pairwise, on the final cell's true test accuracy: two-sided Mann-Whitney U over seeds, "
                  "Holm-adjusted over the pairs; A12 = P(a run of the first ends on a truly better cell than one of "
                  "the second).", "", "| first | second | runs | A12 | Holm p |", "| --- | --- | --- | --- | --- |"]
    for q in result["pairs"]:
        a12, p = ("-", "-") if q["a12"] is None else (f"{q['a12']:.2f}", f"{q['p_holm']:.3f}")
        lines.append(f"| {q['first']} | {q['second']} | {q['runs'][0]} / {q['runs'][1]} | {a12} | {p} |")
    lines += ["", "| reference (the table) | cell | true test acc. [%] |", "| --- | --- | --- |"]
    for ref, (arch, v) in result["references"].items():
        lines.append(f"| {ref} | {arch or '-'} | {v * 100:.2f} |")
    lines += ["", "Final cells per method (count of seeds):", ""]
    for label, m in result["methods"].items():
        cells = "; ".join(f"`{a}` x{c}" for a, c in list(m["final_cells"].items())[:5])
        lines.append(f"* {label}: {cells}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="results folder of the one-shot runs")
    p.add_argument("--oracle", default="nb201-digits", help="the ground-truth table oracle (default nb201-digits)")
    p.add_argument("--out", type=Path, required=True, help="where report.md, summary.json and the figures go")
    args = p.parse_args(argv)
    result = analyse(args.runs, args.oracle)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "report.md").write_text(report(result))
    paths = figures(result, args.out)
    print(report(result))
    print("wrote", args.out / "report.md", args.out / "summary.json", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
