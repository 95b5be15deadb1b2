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
  ``--window`` steps, mean over seeds with a 95 % t-band);
* §3.2.1's Pareto frontier of each run (supernet validation accuracy against the cell's cost)
  judged by the truth (:func:`pareto`), and ``pareto_front.png``.

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

from algorithms.ddas import pareto_front  # noqa: E402
from harness.results import ResultsStore  # noqa: E402
from oracles.nb201_space import OPS  # noqa: E402
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
            "params": np.array([s["params"] for s in steps], dtype=float),
            "macs": np.array([s["macs"] for s in steps], dtype=float),
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
            "variants": variants, "paired": paired, "_runs": runs, "_space": space, "_test": test}


def space_costs(runs: dict[str, dict[int, dict]], space, C: int = 8, N: int = 1,
                input_shape=(1, 8, 8), num_classes: int = 10) -> dict[str, np.ndarray]:
    """(parameters, multiply-accumulates) of every cell of the space, as DDAS counts them
    (:func:`algorithms.ddas.cell_cost`, the stand-alone network at the supernet's C and N).

    Only convolutions and the classifier are counted, and the stand-alone network holds only
    the live edges (:func:`supernets.nb201.live_edges`), so a cell's cost is fixed by how many
    live 1x1 and 3x3 convolutions it has: one network is built per such pair, and every cost
    the runs recorded for their sampled cells is checked against this map."""
    from algorithms.ddas import cell_cost
    from supernets.nb201 import live_edges
    conv1, conv3 = OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3")

    def live_convs(arch) -> tuple[int, int]:
        ops = [o for o, live in zip(arch, live_edges(arch)) if live]
        return ops.count(conv1), ops.count(conv3)

    key = np.array([10 * a + b for a, b in (live_convs(space.arch(i)) for i in range(space.size))])
    params, macs = np.empty(space.size), np.empty(space.size)
    for k in np.unique(key):
        first = int(np.flatnonzero(key == k)[0])
        params[key == k], macs[key == k] = cell_cost(space.arch(first), C, N, input_shape, num_classes)
    for rs in runs.values():
        for r in rs.values():
            idx = [space.index(a) for a in r["archs"]]
            if not (np.array_equal(params[idx], r["params"]) and np.array_equal(macs[idx], r["macs"])):
                raise SystemExit("the recorded cell costs differ from a C 8, N 1 digits network's: "
                                 "pass the supernet's size to space_costs")
    return {"params": params, "macs": macs}


def best_at_cost(costs: np.ndarray, accs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cost levels and, for each, the highest accuracy at that cost or less (a step front)."""
    levels = np.unique(costs)
    best = np.array([accs[costs == c].max() for c in levels])
    return levels, np.maximum.accumulate(best)


def pareto(result: dict, space, test: np.ndarray) -> dict:
    """§3.2.1's Pareto frontier of each run (supernet validation accuracy against the cell's
    cost, over every sampled cell) judged by the truth.

    Per run and cost measure: the frontier's size; its *regret*, the mean over its cells of
    (the best true test accuracy at that cost or less) minus the cell's own, against the whole
    space and against the run's own samples (0: every frontier cell is truly the best there
    is, or was sampled, at its cost); the fraction of its cells on the true frontier of the
    run's samples."""
    runs = result["_runs"]
    costs = space_costs(runs, space)
    # when multiply-accumulates order the cells exactly as parameters do, both frontiers are one
    pairs = np.unique(np.stack([costs["params"], costs["macs"]], axis=1), axis=0)
    same_order = bool(np.all(np.diff(pairs[:, 1]) > 0))
    if same_order:
        costs = {"params": costs["params"]}
    out = {"macs_order_cells_as_params": same_order, "space_front": {}, "variants": {}}
    for measure, cost in costs.items():
        levels, best = best_at_cost(cost, test)
        out["space_front"][measure] = {"cost": levels.tolist(), "best_test": best.tolist()}
    for v in [v for v in ORDER if v in runs]:
        per = {}
        for measure, cost in costs.items():
            levels, best = best_at_cost(cost, test)
            size, regret_space, regret_sampled, on_front = [], [], [], []
            for r in runs[v].values():
                c = r[measure]
                front = pareto_front(c.tolist(), r["valid_acc"].tolist())
                s_levels, s_best = best_at_cost(c, r["true_test"])
                true_front = set(pareto_front(c.tolist(), r["true_test"].tolist()))
                size.append(len(front))
                regret_space.append(float(np.mean([best[np.searchsorted(levels, c[i])] - r["true_test"][i]
                                                   for i in front])))
                regret_sampled.append(float(np.mean([s_best[np.searchsorted(s_levels, c[i])] - r["true_test"][i]
                                                     for i in front])))
                # on the true frontier: a cell of it has the same cost and true accuracy (the table ties)
                on_front.append(float(np.mean([any(c[j] == c[i] and r["true_test"][j] == r["true_test"][i]
                                                   for j in true_front) for i in front])))
            per[measure] = {"size": t_interval(size), "regret_space": t_interval(regret_space),
                            "regret_sampled": t_interval(regret_sampled), "on_true_front": t_interval(on_front)}
        out["variants"][v] = per
    out["_costs"] = costs
    return out


def pareto_report(p: dict) -> str:
    lines = ["", "### The Pareto frontier (§3.2.1) judged by the truth", "",
             "Each run's frontier of supernet validation accuracy against cost, over every cell it sampled; "
             "cost as `algorithms/ddas.py` counts it (the stand-alone network at the supernet's C 8, N 1: "
             "parameters, or multiply-accumulates per image). Regret: the mean over the frontier's cells of the "
             "best true test accuracy at that cost or less minus the cell's own, in percentage points, against "
             "the whole space and against the run's own samples. Mean over seeds [95 % t-interval]."
             + (" Multiply-accumulates order the 15,625 cells exactly as parameters do, so both frontiers "
                "are the same and one is shown." if p["macs_order_cells_as_params"] else ""), "",
             "| variant | cost | frontier size | regret vs the space [pp] | regret vs its samples [pp] | "
             "frontier cells on its samples' true frontier [%] |", "| --- | --- | --- | --- | --- | --- |"]
    for v, per in p["variants"].items():
        for measure, m in per.items():
            lines.append(f"| {TITLES[v]} | {measure} | {fmt(m['size'], 1.0, 1)} | {fmt(m['regret_space'])} | "
                         f"{fmt(m['regret_sampled'])} | {fmt(m['on_true_front'])} |")
    return "\n".join(lines) + "\n"


def pareto_figure(result: dict, p: dict, test: np.ndarray, out: Path) -> Path:
    """Left: one full-reward run's sampled cells and its frontier by supernet validation;
    right: the same cells' true test accuracy against parameters, every seed's frontier
    cells, random search's, and the space's true frontier."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs, cost = result["_runs"], p["_costs"]["params"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    variant = "full" if "full" in runs else next(iter(runs))
    seed = min(runs[variant])
    r = runs[variant][seed]
    front = pareto_front(r["params"].tolist(), r["valid_acc"].tolist())
    left.scatter(r["params"], r["valid_acc"] * 100, s=8, color="0.6", label="sampled cells")
    left.step(r["params"][front], r["valid_acc"][front] * 100, where="post", color="tab:blue",
              marker="o", ms=4, label="its frontier")
    left.set_title(f"{TITLES[variant]}, seed {seed}", fontsize=9)
    left.set_ylabel("supernet validation accuracy [%]")
    right.scatter(cost, test * 100, s=2, color="0.85", label="all 15,625 cells", rasterized=True)
    sf = p["space_front"]["params"]
    right.step(sf["cost"], np.array(sf["best_test"]) * 100, where="post", color="k", lw=1, label="the space's true frontier")
    for v, colour, marker in ((variant, "tab:blue", "o"), ("rs", "tab:orange", "x")):
        if v not in runs:
            continue
        pts = [(q["params"][i], q["true_test"][i]) for q in runs[v].values()
               for i in pareto_front(q["params"].tolist(), q["valid_acc"].tolist())]
        right.scatter([a for a, _ in pts], [b * 100 for _, b in pts], s=14, color=colour, marker=marker,
                      label=f"frontier cells, {TITLES[v]} ({len(runs[v])} seeds)")
    right.set_ylabel("true test accuracy (nb201-digits) [%]")
    for ax in (left, right):
        ax.set_xlabel("parameters of the cell's network (C 8, N 1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "pareto_front.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    test = result["_test"]
    front = pareto(result, result["_space"], test)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    summary["pareto"] = {k: v for k, v in front.items() if not k.startswith("_")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    text = report(result) + pareto_report(front)
    (args.out / "report.md").write_text(text)
    paths = figures(result, args.out, args.window) + [pareto_figure(result, front, test, args.out)]
    print(text)
    print("wrote", args.out / "report.md", args.out / "summary.json", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
