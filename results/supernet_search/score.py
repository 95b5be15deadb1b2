"""Score searches through a supernet with the ground truth (issue 15, "Searching through a supernet").

A search through the supernet oracle ``supernet/NAME`` picks its incumbent (the best cell
by the supernet's validation accuracy so far); what that cell really reaches is the ground
truth's number for its class (``nas-harness collect nb201``: the cell trained stand-alone).
The same algorithms run on the ground-truth table itself (``nb201-digits``), where the
incumbent is picked by the true validation accuracy. This script reads both kinds of runs
(``nas-harness run results/experiments/supernet_search.toml``) and writes, per oracle and
algorithm, the incumbent's true test accuracy (mean over the truth's seeds) against queries
and against CPU time:

* through the supernet: the supernet's training (CPU seconds from its checkpoint history,
  paid once per search) + the measured CPU seconds of every query (``measured_s``) + the
  algorithm's own CPU time (``algo_cpu_s``);
* on the table: the stand-alone training CPU seconds of every distinct cell queried (the
  table's cost, ``cum_cost`` = ``train_cpu_time``) + the algorithm's CPU time: what the
  search would have cost had it trained each cell it asked for.

An incumbent whose class the truth does not cover (a partial collection) has no true value;
the report says how many incumbents were scored at each budget.

    python results/supernet_search/score.py runs/supernet-search --truth nb201-digits \\
        --out results/supernet_search

``--truth``: as ``nas-harness supernet rank --truth`` (a collection folder, a table folder or
an installed table oracle; repeatable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from oracles import nb201_canonical as canon  # noqa: E402
from oracles.nb201_space import string_to_arch  # noqa: E402
from supernets.rank import load_truth, merge_truths, supernet_meta, t_interval  # noqa: E402


def truth_lookup(truth):
    """Per class id: the mean over the truth's seeds of valid and test accuracy (NaN where
    the truth lacks the class)."""
    n = canon.num_classes(truth.rule)
    out = {}
    for m in ("valid_acc", "test_acc"):
        col = np.full(n, np.nan)
        with np.errstate(invalid="ignore"):
            col[truth.classes] = np.nanmean(truth.values[m], axis=1)
        out[m] = col
    return out


def incumbents(df):
    """Per record: the incumbent's arch string (best ``search`` so far, the first of ties,
    as the runner's best-so-far columns count it; the oracle's direction is max for both
    oracles here)."""
    best, inc, out = -np.inf, None, []
    for arch, search in zip(df["arch"], df["search"]):
        if np.isfinite(search) and search > best:
            best, inc = search, arch
        out.append(inc)
    return out


def score_runs(runs_dir: Path, truth, checkpoints: bool = True) -> dict:
    import pandas as pd
    frame = pd.read_parquet(runs_dir / "runs")
    lookup = truth_lookup(truth)
    class_of = {}
    result = {}
    for (oracle, algorithm, seed), df in frame.groupby(["oracle", "algorithm", "seed"], observed=True, sort=True):
        df = df.sort_values("sample")
        inc = incumbents(df)
        for a in set(inc) - set(class_of) - {None}:
            class_of[a] = canon.class_of(string_to_arch(a), truth.rule)
        cls = np.array([class_of[a] if a is not None else -1 for a in inc])
        true_test = np.where(cls >= 0, lookup["test_acc"][np.maximum(cls, 0)], np.nan)
        true_valid = np.where(cls >= 0, lookup["valid_acc"][np.maximum(cls, 0)], np.nan)
        algo = df["algo_cpu_s"].to_numpy(dtype=float)
        if str(oracle).startswith("supernet/"):
            name = str(oracle).split("/", 1)[1].split(":")[0]
            train = sum(h.get("cpu_seconds", 0.0) for h in supernet_meta(name)["history"]) if checkpoints else 0.0
            spent = np.nan_to_num(df["measured_s"].to_numpy(dtype=float))
            cpu = train + np.cumsum(spent) + algo
        else:
            cpu = df["cum_cost"].to_numpy(dtype=float) + algo
        result.setdefault(str(oracle), {}).setdefault(str(algorithm), []).append(
            {"seed": int(seed), "queries": df["sample"].to_numpy(dtype=int).tolist(),
             "true_test": true_test.tolist(), "true_valid": true_valid.tolist(), "cpu_s": cpu.tolist(),
             "search": df["search"].to_numpy(dtype=float).tolist()})
    return result


def at_budget(runs, budget):
    """True test accuracy of each run's incumbent after ``budget`` queries (None if not covered)."""
    vals = []
    for r in runs:
        q = np.asarray(r["queries"])
        i = np.searchsorted(q, budget, side="right") - 1
        vals.append(None if i < 0 or not np.isfinite(r["true_test"][i]) else float(r["true_test"][i]))
    return vals


def write(result, truth, out: Path, budgets=(25, 50, 100, 200)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    lines = ["# Searching through a supernet: what the incumbent really reaches", "",
             f"Ground truth: {truth.source}; {len(truth):,} of {canon.num_classes(truth.rule):,} classes. True "
             "accuracy: the incumbent's class, test accuracy, mean over the truth's seeds. Intervals: 95 % "
             "t-interval over search seeds (runs whose incumbent the truth covers).", "",
             "| oracle | algorithm | " + " | ".join(f"after {b} queries" for b in budgets) + " |",
             "| --- | --- | " + " | ".join("---" for _ in budgets) + " |"]
    for oracle, algos in result.items():
        for algorithm, runs in algos.items():
            cells = []
            for b in budgets:
                s = t_interval(at_budget(runs, b))
                summary.setdefault(oracle, {}).setdefault(algorithm, {})[b] = s
                cells.append("-" if s["mean"] is None else
                             f"{s['mean']:.4f}" + (f" [{s['lo']:.4f}, {s['hi']:.4f}]" if s["lo"] is not None else "")
                             + f" ({s['n']}/{len(runs)})")
            lines.append(f"| {oracle} | {algorithm} | " + " | ".join(cells) + " |")
    lines += ["", "(n/N): runs whose incumbent the truth covers, of the runs.", "",
              "![incumbent's true test accuracy](incumbent_true_accuracy.png)", ""]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {o: ls for o, ls in zip(result, ("-", "--", ":", "-."))}
    colors = {}
    for oracle, algos in result.items():
        for algorithm, runs in algos.items():
            color = colors.setdefault(algorithm, f"C{len(colors)}")
            q = np.asarray(runs[0]["queries"])
            mat = np.array([r["true_test"][:len(q)] for r in runs if len(r["true_test"]) >= len(q)], dtype=float)
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(mat, axis=0)
            label = f"{algorithm} on {oracle.split(':')[0]}"
            axes[0].plot(q, mean, styles[oracle], color=color, label=label)
            cpu = np.array([r["cpu_s"][:len(q)] for r in runs if len(r["cpu_s"]) >= len(q)], dtype=float)
            axes[1].plot(np.nanmedian(cpu, axis=0), mean, styles[oracle], color=color, label=label)
    axes[0].set_xlabel("queries")
    axes[1].set_xlabel("CPU seconds (median over seeds): supernet training + scoring, or stand-alone training")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("incumbent's true test accuracy (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "incumbent_true_accuracy.png", dpi=120)
    plt.close(fig)
    (out / "summary.json").write_text(json.dumps({"truth": truth.source, "budgets": list(budgets),
                                                  "summary": summary}, indent=1) + "\n")
    (out / "report.md").write_text("\n".join(lines))
    return [out / "report.md", out / "summary.json", out / "incumbent_true_accuracy.png"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="results folder of nas-harness run (holds runs/)")
    p.add_argument("--truth", action="append", required=True, help="ground truth (see nas-harness supernet rank)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, summary.json and the figure")
    p.add_argument("--budgets", default="25,50,100,200", help="query counts of the table (default 25,50,100,200)")
    args = p.parse_args(argv)
    truth = merge_truths([load_truth(t) for t in args.truth])
    result = score_runs(args.runs, truth)
    paths = write(result, truth, args.out, tuple(int(b) for b in args.budgets.split(",")))
    print("wrote", ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
