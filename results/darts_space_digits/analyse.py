"""Search in the DARTS space on digits, every result trained from scratch (issue 16).

The DARTS space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR
2019, §2.1) has no ground truth: a searched cell gets its number from a network of it
trained from scratch (DARTS §3.1.2; here ``nas-harness supernet retrain``,
:mod:`supernets.retrain`, whose ``retrained.json`` says which cell of each run it trained).
This script reads one or more results folders after ``supernet retrain`` has run on them:

* the one-shot methods of ``results/experiments/darts_space_digits.toml`` (DARTS first and
  second order, GDAS, RSPS, ENAS, DDAS; each run's final derived cell);
* the searches through a trained DARTS or PC-DARTS supernet of
  ``results/experiments/cadam_darts_digits.toml`` (CADAM, Mills 2020, MSc thesis, §4.2.2;
  random search; each run's best cell by the supernet's validation accuracy),

and writes per method (algorithm cell of a folder):

* the stand-alone validation and test accuracy of the run's cell (mean with a 95 %
  t-interval over seeds, and per seed), its parameter count;
* the cell's skip connections (of the normal cell's 8 edges: the collapse DARTS is known for
  shows there) and parameter-free operations (skip, pools);
* the search cost in CPU seconds: a one-shot run's loop (supernet training and derivation,
  every epoch); a search through a trained supernet, the supernet's training plus the run's
  queries and the algorithm's own time; the retraining's CPU seconds apart;
* reference cells trained the same way without any search (``reference_cells.json`` of
  ``reference_cells.py``: random cells, DARTS's published cell, an all-skip normal cell), when
  that file is in the output folder;
* one-shot runs: the skip fraction of the derived normal cell after every epoch
  (``skip_fraction.png``); all runs: stand-alone test accuracy against search CPU seconds
  (``cost_axis.png``).

    python results/darts_space_digits/analyse.py RUNS_FOLDER [RUNS_FOLDER ...] --out results/darts_space_digits
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
from oracles.darts_space import DartsSpace  # noqa: E402
from supernets.rank import interval_text as fmt, t_interval  # noqa: E402
from supernets.retrain import final_record, read_results  # noqa: E402

PARAMETER_FREE = {"skip_connect", "max_pool_3x3", "avg_pool_3x3", "none"}


def supernet_cpu_seconds(oracle: str) -> float | None:
    """CPU seconds the supernet of oracle ``supernet/NAME[:...]`` spent training (its
    checkpoint's history), or None when it is not a stored supernet."""
    if not oracle.startswith("supernet/"):
        return None
    from supernets.checkpoints import load_checkpoint, supernets_dir
    folder = supernets_dir() / oracle.split("/", 1)[1].split(":", 1)[0]
    if not folder.is_dir():
        return None
    history = load_checkpoint(folder).get("history") or []
    return float(sum(h.get("cpu_seconds", 0.0) for h in history))


def run_costs(folder: Path, after: int) -> dict[tuple[str, str, int], dict]:
    """Per (oracle, label, seed): search CPU seconds and per-epoch series of every finished run;
    for a query-based run also the mean supernet accuracy of the cells it asked in its first
    ``after`` steps and after them."""
    out = {}
    supernet_cost: dict[str, float | None] = {}
    for cell, meta, table in ResultsStore(folder).iter_runs(with_records=True):
        if table is None or table.num_rows == 0:
            continue
        summary = meta["summary"]
        cols = table.to_pydict()
        entry = {"kind": cell.config.get("kind")}
        if entry["kind"] == "one-shot":
            entry["arch"] = cols["arch_id"][-1]
            epochs = summary.get("diagnostics", {}).get("epochs", [])
            entry["search_cpu_s"] = float(sum(e.get("loop_cpu_seconds", 0.0) for e in epochs))
            entry["skip_normal_by_epoch"] = [float(e["skip_fraction_normal"]) for e in epochs
                                             if "skip_fraction_normal" in e]
            entry["epochs"] = len(epochs)
        else:
            if cell.oracle not in supernet_cost:
                supernet_cost[cell.oracle] = supernet_cpu_seconds(cell.oracle)
            queries = float(np.nansum(np.asarray(cols["measured_s"], dtype=float)))
            agent = float(summary.get("algo_cpu_s") or 0.0)
            entry["query_cpu_s"], entry["agent_cpu_s"] = queries, agent
            entry["supernet_cpu_s"] = supernet_cost[cell.oracle]
            entry["search_cpu_s"] = queries + agent + (supernet_cost[cell.oracle] or 0.0)
            entry["steps"] = int(table.num_rows)
            # the summary's n_distinct counts charged queries, repeats too under charge_repeats
            entry["distinct"] = len(set(cols["arch_id"]))
            best = final_record(table)     # supernet retrain's pick: the best by validation, first found
            entry["arch"] = cols["arch_id"][best]
            entry["best_supernet_valid"] = float(cols["search"][best])
            search = np.asarray(cols["search"], dtype=float)
            entry["mean_valid_before"] = float(np.nanmean(search[:after]))
            entry["mean_valid_after"] = float(np.nanmean(search[after:])) if len(search) > after else None
        out[(cell.oracle, cell.label, int(meta["seed"]))] = entry
    return out


def cell_stats(space: DartsSpace, arch_text: str) -> dict:
    arch = space.parse(arch_text)
    ops = [op for kind in ("normal", "reduce") for op, _ in arch.cell(kind)]
    normal = [op for op, _ in arch.cell("normal")]
    return {"skip_normal": sum(op == "skip_connect" for op in normal) / len(normal),
            "free_normal": sum(op in PARAMETER_FREE for op in normal) / len(normal),
            "free_all": sum(op in PARAMETER_FREE for op in ops) / len(ops)}


def analyse(folders: list[Path], after: int = 75, references: Path | None = None) -> dict:
    space = DartsSpace()
    methods: dict[str, dict] = {}
    recipes = set()
    for folder in folders:
        retrained = read_results(folder)
        trainings, runs = retrained["trainings"], retrained.get("runs", [])
        if not runs:
            print(f"{folder}: no retrained runs yet (`nas-harness supernet retrain {folder}`)", file=sys.stderr)
        costs = run_costs(folder, after)
        retrained_runs = {(r["oracle"], r["label"], int(r["seed"])): r for r in runs}
        for (oracle, label, seed), c in costs.items():
            run = retrained_runs.get((oracle, label, seed))
            t = trainings.get(run.get("training")) if run is not None else None
            entry = {"seed": seed, **c, **cell_stats(space, c["arch"]), "valid": None, "test": None}
            if t is not None:
                recipes.add(json.dumps(t["recipe"], sort_keys=True))
                entry.update(training=run["training"], valid=float(t["valid_acc"]), test=float(t["test_acc"]),
                             params=t.get("params"), retrain_cpu_s=t.get("cpu_s"))
            methods.setdefault(f"{label} @ {oracle}", {"folder": str(folder), "runs": []})["runs"].append(entry)
    result = {"recipes": [json.loads(r) for r in sorted(recipes)], "after": after, "methods": {}, "references": []}
    if references is not None and references.is_file():
        refs = json.loads(references.read_text())
        result["references"] = sorted(({"name": t["name"], "arch": t["arch"], "valid": t["valid_acc"],
                                        "test": t["test_acc"], "params": t["params"], "cpu_s": t["cpu_s"],
                                        "recipe": t["recipe"], **cell_stats(space, t["arch"])}
                                       for t in refs.values()), key=lambda r: r["name"])
    for key, m in sorted(methods.items()):
        rs = sorted(m["runs"], key=lambda r: r["seed"])
        cpu = [r["search_cpu_s"] for r in rs if r.get("search_cpu_s") is not None]
        result["methods"][key] = {
            "folder": m["folder"], "seeds": [r["seed"] for r in rs],
            "retrained": sum(r["test"] is not None for r in rs),
            "valid": t_interval([r["valid"] for r in rs]), "test": t_interval([r["test"] for r in rs]),
            "skip_normal": t_interval([r["skip_normal"] for r in rs]),
            "free_all": t_interval([r["free_all"] for r in rs]),
            "search_cpu_s_median": float(np.median(cpu)) if cpu else None,
            "distinct_cells": len({r["arch"] for r in rs}),
            "runs": rs,
        }
    return result


def figures(result: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for i, (label, m) in enumerate(result["methods"].items()):
        done = [r for r in m["runs"] if r.get("search_cpu_s") is not None and r["test"] is not None]
        xs, ys = [r["search_cpu_s"] for r in done], [r["test"] * 100 for r in done]
        ax.scatter(xs, ys, color=f"C{i % 10}", marker="os^Dv<>p"[i // 10 % 8], label=f"{label} ({len(xs)} seeds)")
    for j, ref in enumerate(result["references"]):
        ax.axhline(ref["test"] * 100, color="0.5", lw=0.8, ls=("-", "--", ":", "-.")[j % 4])
    if result["references"]:
        ax.text(0.01, 0.02, "grey lines: reference cells without search (report.md)", transform=ax.transAxes,
                fontsize=7, color="0.3")
    paths.append(save(fig, ax, out / "cost_axis.png", "search CPU seconds (supernet training, derivation, queries, agent)",
                      "stand-alone test accuracy of the run's cell [%]",
                      "one point per run; retraining apart (DARTS §3.1.2 scaled: supernets/retrain.py)"))
    one_shot = {k: m for k, m in result["methods"].items() if any(r.get("skip_normal_by_epoch") for r in m["runs"])}
    if one_shot:
        fig, ax = plt.subplots(figsize=(12, 4.5))
        for i, (label, m) in enumerate(one_shot.items()):
            series = [r["skip_normal_by_epoch"] for r in m["runs"] if r.get("skip_normal_by_epoch")]
            n = min(len(s) for s in series)
            mat = np.array([s[:n] for s in series], dtype=float)
            x = np.arange(1, n + 1)
            ax.plot(x, mat.mean(axis=0), color=f"C{i}", label=f"{label} ({len(series)} seeds)")
            ax.fill_between(x, mat.min(axis=0), mat.max(axis=0), color=f"C{i}", alpha=0.12)
        paths.append(save(fig, ax, out / "skip_fraction.png", "search epoch",
                          "fraction of skip connections among the derived normal cell's 8 edges", "mean over seeds; band: min-max"))
    return paths


def save(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Both figures' axes (log x, grid, legend) and file."""
    import matplotlib.pyplot as plt
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(result: dict) -> str:
    lines = ["| method @ oracle | runs (retrained) | stand-alone valid acc. [%] | stand-alone test acc. [%] | test per seed | "
             "skips in normal cell (of 8) | parameter-free ops (of 16) | params (M, median) | "
             "search CPU-s (median) | retrain CPU-s (median) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, m in result["methods"].items():
        rs = m["runs"]
        per_seed = ", ".join("-" if r["test"] is None else f"{r['test'] * 100:.2f}" for r in rs)
        params = [r["params"] for r in rs if r.get("params") is not None]
        retrain = [r["retrain_cpu_s"] for r in rs if r.get("retrain_cpu_s") is not None]
        cpu = m["search_cpu_s_median"]
        cells = [label, f"{len(rs)} ({m['retrained']})", fmt(m["valid"]), fmt(m["test"]), per_seed,
                 fmt(m["skip_normal"], 8.0, 1), fmt(m["free_all"], 16.0, 1),
                 f"{np.median(params) / 1e6:.3f}" if params else "-",
                 f"{cpu:,.0f}" if cpu is not None else "-",
                 f"{np.median(retrain):,.0f}" if retrain else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    query = {k: m for k, m in result["methods"].items() if any("best_supernet_valid" in r for r in m["runs"])}
    if query:
        lines += ["", "Searches through a trained supernet: the picked cell's supernet validation accuracy, "
                  "steps and distinct cells per run; the supernet's training CPU-s (counted in the search cost).", "",
                  f"| method @ oracle | supernet valid acc. of the pick [%] (per seed) | steps | distinct cells | "
                  f"mean supernet valid acc. of the cells asked, steps 1-{result['after']} / after [%] (per seed) | "
                  "supernet training CPU-s | queries CPU-s (median) | agent CPU-s (median) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for label, m in query.items():
            rs = m["runs"]
            sn = rs[0].get("supernet_cpu_s")
            cells = [label, ", ".join(f"{r['best_supernet_valid'] * 100:.2f}" for r in rs),
                     ", ".join(str(r["steps"]) for r in rs), ", ".join(str(r["distinct"]) for r in rs),
                     "; ".join(mean_pair(r) for r in rs), "-" if sn is None else f"{sn:,.0f}",
                     f"{np.median([r['query_cpu_s'] for r in rs]):,.0f}",
                     f"{np.median([r['agent_cpu_s'] for r in rs]):,.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    if result["references"]:
        lines += ["", "Reference cells, no search (`reference_cells.py`: the same recipe, training seed and split):", "",
                  "| cell | stand-alone valid acc. [%] | stand-alone test acc. [%] | skips in normal cell | "
                  "parameter-free ops (of 16) | params (M) | CPU-s |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for ref in result["references"]:
            lines.append(f"| {ref['name']} | {ref['valid'] * 100:.2f} | {ref['test'] * 100:.2f} | "
                         f"{ref['skip_normal'] * 8:.0f} | {ref['free_all'] * 16:.0f} | {ref['params'] / 1e6:.3f} | "
                         f"{ref['cpu_s']:.0f} |")
    lines += ["", "Cells per run (genotype as derived or picked):", ""]
    for label, m in result["methods"].items():
        for r in m["runs"]:
            lines.append(f"* {label}, seed {r['seed']}{'' if r['test'] is not None else ' (not retrained yet)'}: "
                         f"`{r['arch']}`")
    lines += ["", "Retraining recipe(s): " + "; ".join(json.dumps(r, sort_keys=True) for r in result["recipes"])]
    return "\n".join(lines) + "\n"


def mean_pair(r: dict) -> str:
    after = "-" if r.get("mean_valid_after") is None else f"{r['mean_valid_after'] * 100:.2f}"
    return f"{r['mean_valid_before'] * 100:.2f} / {after}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="results folders, each after `nas-harness supernet retrain`")
    p.add_argument("--out", type=Path, required=True, help="where report.md, summary.json and the figures go")
    p.add_argument("--after", type=int, default=75,
                   help="steps before which a query run's cells are averaged apart (default 75: the warm-up "
                        "of CADAM's darts-cpu preset)")
    args = p.parse_args(argv)
    result = analyse(args.runs, args.after, args.out / "reference_cells.json")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "report.md").write_text(report(result))
    paths = figures(result, args.out)
    print(report(result))
    print("wrote", args.out / "report.md", args.out / "summary.json", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
