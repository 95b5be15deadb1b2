"""The thesis's Fig. 3.2 on our own ground truth (issue 16): is DDAS without the loss term, or
without the accuracy term, of its reward no better than random search?

Mills, "On the Application of Continuous Deterministic Reinforcement Learning in Neural
Architecture Search" (MSc thesis, 2020), §3.1.2 and Fig. 3.2: on CIFAR-10 in the DARTS space,
DDAS with the full reward (Eq. 3.3: half the accuracy gain over the warmed-up supernet, half
the drop in validation loss) against the same run without the loss term and without the
accuracy term, and random search (the same run with every action drawn from U(0, 1));
"DDAS becomes nearly indistinguishable from Random Search when either the loss or accuracy
terms are removed", "without a loss component, the actor policy eventually degenerates into
random search".

This script reads the runs of ``nas-harness run results/experiments/ddas_fig32_digits.toml``
(DDAS on the NB201 cell space trained on digits, our extension, scaled; the oracle
``nb201-digits``, the same cells trained stand-alone, judges every cell; the method never sees
it) and writes, per reward variant:

* for every RL step, the sampled cell's accuracy on ``search_valid`` with the supernet's
  weights (what the agent is rewarded on: the thesis's measure) and its **true** test
  accuracy (the table's, mean over its training seeds), averaged over the steps after the
  exploration phase (where the variants differ) with a 95 % t-interval over seeds, and the
  paired differences of the same seed (same warm-up, same exploration): each variant minus
  random search, and the full reward minus each ablation;
* the cell DDAS returns (§3.2.1: the sampled cell with the highest supernet validation
  accuracy): its true test accuracy and true rank among the 15,625 cells;
* distinct cells sampled after exploration (a policy that degenerates into a fixed cell
  samples few);
* figures: both accuracies of the sampled cell over the steps (moving mean over
  ``--window`` steps, mean over seeds with a 95 % t-band).

    python results/ddas_fig32_digits/analyse.py RUNS_FOLDER --out results/ddas_fig32_digits
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
from oracles.registry import load_oracle  # noqa: E402
from supernets.rank import interval_text as fmt, t_interval  # noqa: E402


def variant_name(params: dict) -> str:
    """``full``, ``no-loss``, ``no-acc`` or ``rs`` from a run's algorithm parameters."""
    if params.get("variant") == "rs":
        return "rs"
    return params.get("reward", "full")


ORDER = ("full", "no-loss", "no-acc", "rs")
TITLES = {"full": "DDAS, full reward (Eq. 3.3)", "no-loss": "DDAS without the loss term",
          "no-acc": "DDAS without the accuracy term", "rs": "random search (U(0, 1) actions)"}


def collect(folder: Path, oracle_name: str, test: np.ndarray, space) -> dict[str, dict[int, dict]]:
    """Per variant, per seed: the sampled cells step by step and the returned cell."""
    out: dict[str, dict[int, dict]] = {}
    for cell, meta, table in ResultsStore(folder).iter_runs(with_records=True):
        if cell.oracle != oracle_name or not cell.label.startswith("ddas"):
            continue
        diag = meta["summary"].get("diagnostics", {})
        steps = [s for e in diag.get("epochs", []) for s in e.get("steps", [])]
        if not steps:
            continue
        steps.sort(key=lambda s: s["step"])
        params = cell.config.get("params", {})
        cols = table.to_pydict()
        last = int(np.argmax(cols["sample"]))
        out.setdefault(variant_name(params), {})[int(meta["seed"])] = {
            "label": cell.label,
            "archs": [tuple(int(o) for o in s["arch"]) for s in steps],
            "valid_acc": np.array([s["valid_acc"] for s in steps], dtype=float),
            "true_test": np.array([test[space.index(tuple(int(o) for o in s["arch"]))] for s in steps]),
            "phase": [s["phase"] for s in steps],
            "returned": cols["arch"][last],
            "returned_test": float(cols["report"][last]),
            "explore_steps": params.get("explore_steps"),
            "cpu_s": diag.get("process_cpu_s"),
        }
    return out


def analyse(folder: Path, oracle_name: str = "nb201-digits") -> dict:
    oracle = load_oracle(oracle_name)
    space = oracle.space
    test = np.asarray(oracle.report_values, dtype=float)
    if not np.isfinite(test).all():
        raise SystemExit(f"{oracle_name} covers {int(np.isfinite(test).sum())} of {len(test)} cells: "
                         "the ranks need the full table")
    runs = collect(folder, oracle_name, test, space)
    if not runs:
        raise SystemExit(f"no DDAS runs on {oracle_name} in {folder}")

    def rank(arch_text: str) -> int:
        from oracles.nb201_space import string_to_arch
        return int((test > test[space.index(string_to_arch(arch_text))]).sum()) + 1

    # the variants differ only after DDAS's exploration phase (random search has none)
    explore = max((r["explore_steps"] or 0) for v, rs in runs.items() if v != "rs" for r in rs.values()) \
        if any(v != "rs" for v in runs) else 0
    variants = {}
    for v in [v for v in ORDER if v in runs]:
        rs = runs[v]
        seeds = sorted(rs)
        after = {s: slice(explore, None) for s in seeds}
        variants[v] = {
            "title": TITLES[v],
            "label": rs[seeds[0]]["label"],
            "seeds": seeds,
            "steps": int(np.median([len(rs[s]["archs"]) for s in seeds])),
            "valid_after": t_interval([float(rs[s]["valid_acc"][after[s]].mean()) for s in seeds]),
            "true_after": t_interval([float(rs[s]["true_test"][after[s]].mean()) for s in seeds]),
            "distinct_after": t_interval([len(set(rs[s]["archs"][after[s]])) for s in seeds]),
            "returned_test": t_interval([rs[s]["returned_test"] for s in seeds]),
            "returned_rank": [rank(rs[s]["returned"]) for s in seeds],
            "returned": {s: rs[s]["returned"] for s in seeds},
            "cpu_s_median": float(np.median([rs[s]["cpu_s"] for s in seeds if rs[s]["cpu_s"] is not None] or [np.nan])),
        }
    def pair(a: dict[int, dict], b: dict[int, dict]) -> dict:
        """Seed by seed, ``a`` minus ``b``: the means after exploration and the returned cell."""
        common = sorted(set(a) & set(b))
        # the design is paired only if the runs of a seed share the warm-up and exploration
        entry = {"seeds": common, "same_exploration": int(sum(
            a[s]["archs"][:explore] == b[s]["archs"][:explore]
            and np.allclose(a[s]["valid_acc"][:explore], b[s]["valid_acc"][:explore]) for s in common))}
        for key, arr in (("valid_after", "valid_acc"), ("true_after", "true_test")):
            diffs = [float(a[s][arr][explore:].mean() - b[s][arr][explore:].mean()) for s in common]
            entry[key] = t_interval(diffs)
            entry[key + "_wins"] = int(sum(d > 0 for d in diffs))
        entry["returned_test"] = t_interval([a[s]["returned_test"] - b[s]["returned_test"] for s in common])
        return entry

    paired = {}
    for v in [v for v in ORDER if v in runs and v != "rs"]:
        if "rs" in runs:
            paired[f"{v} - rs"] = pair(runs[v], runs["rs"])
    for v in ("no-loss", "no-acc"):
        if v in runs and "full" in runs:
            paired[f"full - {v}"] = pair(runs["full"], runs[v])
    return {"oracle": oracle_name, "cells": len(test), "explore_steps": explore,
            "variants": variants, "paired": paired, "_runs": runs}


def moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty(len(x))
    for i in range(len(x)):
        lo = max(0, i - window + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def figures(result: dict, out: Path, window: int) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import t as student
    colours = {"full": "tab:blue", "no-loss": "tab:red", "no-acc": "tab:green", "rs": "0.45"}
    paths = []
    for key, ylabel, name in (("valid_acc", "sampled cell's supernet validation accuracy", "fig32_supernet_valid.png"),
                              ("true_test", "sampled cell's true test accuracy (nb201-digits)", "fig32_true_test.png")):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for v, rs in ((v, result["_runs"][v]) for v in ORDER if v in result["_runs"]):
            n = min(len(r[key]) for r in rs.values())
            mat = np.array([moving_mean(r[key][:n], window) for r in rs.values()])
            x = np.arange(1, n + 1)
            mean = mat.mean(axis=0)
            ax.plot(x, mean, color=colours[v], label=f"{TITLES[v]} ({len(mat)} seeds)")
            if len(mat) >= 2:
                half = student.ppf(0.975, len(mat) - 1) * mat.std(axis=0, ddof=1) / np.sqrt(len(mat))
                ax.fill_between(x, mean - half, mean + half, color=colours[v], alpha=0.15)
        if result["explore_steps"]:
            ax.axvline(result["explore_steps"], color="k", lw=0.8, ls=":")
        ax.set_xlabel("RL step (after the supernet warm-up)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"moving mean over {window} steps; mean over seeds, band 95 % t-interval; "
                     "dotted: end of DDAS's exploration", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    return paths


def report(result: dict) -> str:
    e = result["explore_steps"]
    lines = [f"| variant | seeds | RL steps | sampled cells after step {e}: supernet valid acc. [%] | "
             f"their true test acc. [%] | distinct cells after step {e} | returned cell: true test acc. [%] | "
             f"its true rank of {result['cells']:,} (median; per seed) | CPU s a run (median) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v, m in result["variants"].items():
        ranks = m["returned_rank"]
        lines.append(f"| {m['title']} | {len(m['seeds'])} | {m['steps']} | {fmt(m['valid_after'])} | "
                     f"{fmt(m['true_after'])} | {fmt(m['distinct_after'], 1.0, 1)} | {fmt(m['returned_test'])} | "
                     f"{np.median(ranks):,.0f}; {', '.join(f'{r:,}' for r in ranks)} | {m['cpu_s_median']:.0f} |")
    if result["paired"]:
        same = ", ".join(f"{k} {p['same_exploration']} of {len(p['seeds'])}" for k, p in result["paired"].items())
        lines += ["", f"Paired by seed: the first minus the second, mean [95 % t-interval] in percentage points, "
                      f"and in how many seeds the first is higher. Seeds whose first {e} steps sampled the same "
                      f"cells with the same supernet accuracies in both runs (same warm-up, same uniform actions): "
                      f"{same}.", "",
                  "| difference | seeds | supernet valid acc. after exploration | true test acc. after exploration | "
                  "returned cell's true test acc. |", "| --- | --- | --- | --- | --- |"]
        for k, p in result["paired"].items():
            lines.append(f"| {k} | {len(p['seeds'])} | {fmt(p['valid_after'])} ({p['valid_after_wins']} of "
                         f"{len(p['seeds'])}) | {fmt(p['true_after'])} ({p['true_after_wins']} of {len(p['seeds'])}) | "
                         f"{fmt(p['returned_test'])} |")
    lines += ["", "Returned cells (seed: cell):", ""]
    for v, m in result["variants"].items():
        lines.append(f"* {m['title']}: " + "; ".join(f"{s}: `{a}`" for s, a in m["returned"].items()))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="results folder of the DDAS runs")
    p.add_argument("--oracle", default="nb201-digits", help="the ground-truth table oracle (default nb201-digits)")
    p.add_argument("--window", type=int, default=10, help="moving-mean window of the figures, in steps (default 10)")
    p.add_argument("--out", type=Path, required=True, help="where report.md, summary.json and the figures go")
    args = p.parse_args(argv)
    result = analyse(args.runs, args.oracle)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (args.out / "report.md").write_text(report(result))
    paths = figures(result, args.out, args.window)
    print(report(result))
    print("wrote", args.out / "report.md", args.out / "summary.json", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
