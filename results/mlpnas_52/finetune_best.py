"""The §5.2 protocol on the MLPNAS reproduction's results folders (issue 17).

For every finished run of a results folder written by ``results/mlpnas_52/run.sh``: take the
run's best network (highest validation accuracy after the 10-epoch search training; the
first one on ties, as the runner's incumbent), fine-tune it for 50 more epochs and test it
(:func:`oracles.finetune.finetune_mlp`, cached in the live store, so a network found by
several runs is fine-tuned once); train scikit-learn's ``MLPClassifier`` (defaults) on the
same split with 5 seeds (``--reference-seeds``) and store it as the folder's reference result
(:func:`harness.summary.write_references`); measure what the trainings cost and what the
store saved; write the folder's report and figures (with the reference) and a summary.

    python results/mlpnas_52/finetune_best.py runs/mlpnas-digits results/mlpnas_52/digits

Writes into the second folder: ``finetuned.csv`` (one row per run), ``summary.md`` and
``summary.json`` (medians with bootstrap intervals over seeds, next to the reference; costs),
``references.json``, ``report.md`` and ``figures/`` (``nas-harness report --format md``'s
content). Minutoli & Ciranni, "Neural Architecture Search: An Overview", §5.2.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from harness.figures import plot_all
from harness.metrics import load, read_runs
from harness.statistics import holm, mann_whitney
from harness.summary import (estimate, format_markdown, read_references, statistics_report, write_references)
from oracles.finetune import FINETUNE_EPOCHS, finetune_mlp, mlp_classifier_reference
from oracles.registry import load_oracle

def best_of(table) -> dict:
    """The run's best network by validation accuracy (first on ties) and its record."""
    cols = {k: table.column(k).to_pylist() for k in table.column_names}
    search = np.array([np.nan if v is None else v for v in cols["search"]], dtype=np.float64)
    i = int(np.nanargmax(search))
    arch = cols.get("arch", [None] * len(search))[i] or cols["arch_id"][i]
    return {"index": i, "arch": arch, "valid_acc": float(search[i]), "test_acc": float(cols["report"][i])}


def costs(table) -> dict:
    """Queries of a run: trained here (measured CPU seconds > 0), served by the store
    (measured 0), repeats answered from the run's cache."""
    rep = np.asarray(table.column("repeat").to_pylist(), dtype=bool)
    m = np.asarray([np.nan if v is None else v for v in table.column("measured_s").to_pylist()], dtype=np.float64)
    ids = table.column("arch_id").to_pylist()
    return {"trained_s": m[~rep & (m > 0)].tolist(),
            "served": [a for a, r, x in zip(ids, rep, m) if not r and x == 0],
            "repeats": int(rep.sum())}


def ci_text(e: dict, pct: bool = True) -> str:
    if e["median"] is None:
        return "–"
    k = 100 if pct else 1
    lo, hi = e["median_ci"]
    return f"{k * e['median']:.2f} [{k * lo:.2f}, {k * hi:.2f}]"


def pairwise_tests(cells: dict, summary: dict, against: dict | None = None) -> list[str]:
    """Pairs of cells of one oracle family (the one-shot oracle counts with its plain twin:
    same data, same recipe), two-sided Mann-Whitney U over seeds on the best validation
    accuracy and on the fine-tuned test accuracy, Holm-adjusted within each metric; A12 =
    P(first > second). Every pair within ``cells``; with ``against`` (another folder's cells,
    ``read_finetuned``), every cell here against every one there instead. With few seeds these
    are what the seeds show, not a verdict."""
    family = lambda o: o.split(":")[0]      # noqa: E731
    keys = sorted(cells)
    if against is None:
        pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if family(a[0]) == family(b[0])]
    else:
        pairs = [(a, b) for a in keys for b in sorted(against) if family(a[0]) == family(b[0])]
    if not pairs:
        return []
    rows = {**cells, **(against or {})}
    out = {}
    for metric in ("valid_acc", "finetuned_test_acc"):
        tests = [mann_whitney(np.array([r[metric] for r in rows[a]], dtype=np.float64),
                              np.array([r[metric] for r in rows[b]], dtype=np.float64)) for a, b in pairs]
        adjusted = holm([1.0 if t is None else t.p_value for t in tests])
        out[metric] = [(t, p) for t, p in zip(tests, adjusted)]
    lines = ["| first | second | runs | best validation: A12, Holm p | fine-tuned test: A12, Holm p |",
             "| --- | --- | --- | --- | --- |"]
    entries = summary.setdefault("pairwise" if against is None else "pairwise_against", [])
    for k, (a, b) in enumerate(pairs):
        (tv, pv), (tt, pt) = out["valid_acc"][k], out["finetuned_test_acc"][k]
        cell = lambda t, p: "–" if t is None else f"{t.a12:.2f}, {p:.3f}"     # noqa: E731
        lines.append(f"| {a[1]} | {b[1]} | {len(rows[a])} / {len(rows[b])} | {cell(tv, pv)} | {cell(tt, pt)} |")
        entries.append({"first": list(a), "second": list(b),
                        "valid_acc": None if tv is None else {"a12": tv.a12, "p_holm": pv},
                        "finetuned_test_acc": None if tt is None else {"a12": tt.a12, "p_holm": pt}})
    what = "over seeds" if against is None else "over seeds, each cell here against each of the other folder's"
    return [f"Pairwise, two-sided Mann-Whitney U {what}, Holm-adjusted per metric over these pairs; A12 = "
            "P(a run of the first scores higher than one of the second).", ""] + lines


def read_finetuned(path: Path) -> dict[tuple[str, str], list[dict]]:
    """Another folder's ``finetuned.csv`` as cells, each algorithm labelled with its folder's
    name (``mlpnas:preset=plain [digits]``) so that its cells stay apart from this folder's."""
    cells: dict[tuple[str, str], list[dict]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for r in reader:
            try:
                cells.setdefault((r["oracle"], f"{r['algorithm']} [{path.parent.name}]"), []).append(
                    {k: float(r[k]) for k in ("valid_acc", "finetuned_test_acc")})
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}, line {reader.line_num}: not a row of a finetuned.csv written by this script "
                                 "(it needs oracle, algorithm, valid_acc and finetuned_test_acc)") from None
    return cells


def part(text: str) -> tuple[int, int]:
    """``--prime``'s K/N, with 0 <= K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N with 0 <= K < N, e.g. 0/2")
    return k, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="results folder (runs/mlpnas-DATASET)")
    ap.add_argument("out", type=Path, help="where the summary, report and figures go")
    ap.add_argument("--extra-epochs", type=int, default=FINETUNE_EPOCHS)
    ap.add_argument("--reference-seeds", type=int, default=5, help="MLPClassifier seeds (default 5)")
    ap.add_argument("--prime", metavar="K/N", default=None, type=part,
                    help="only fine-tune the runs numbered K modulo N into the store and write nothing: "
                         "N such processes side by side use N cores, then a plain call is served by the store")
    ap.add_argument("--against", metavar="CSV", type=Path, default=None,
                    help="another folder's finetuned.csv: also test every cell here against each of its cells "
                         "(e.g. the extended controller's 450-network runs against the 100-network ones)")
    args = ap.parse_args(argv)
    against = None
    if args.against is not None:
        if not args.against.is_file():
            ap.error(f"--against {args.against}: no such file; give a finetuned.csv written by this script")
        try:
            against = read_finetuned(args.against)
        except ValueError as e:
            ap.error(f"--against: {e}")
    oracles: dict[str, object] = {}

    def oracle_of(name: str):
        # one oracle per name: loading it reads its data and the whole store
        if name not in oracles:
            oracles[name] = load_oracle(name)
        return oracles[name]

    if args.prime is not None:
        k, n = args.prime
        for i, (cell, meta, table) in enumerate(read_runs(args.folder, columns=None)):
            if i % n == k:
                finetune_mlp(oracle_of(cell.oracle), best_of(table)["arch"], args.extra_epochs)
                print(f"{cell.oracle} {cell.label} seed {meta['seed']}: fine-tuned into the store", file=sys.stderr)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    runs, cost_by_oracle = [], {}
    for cell, meta, table in read_runs(args.folder, columns=None):
        best = best_of(table)
        ft = finetune_mlp(oracle_of(cell.oracle), best["arch"], args.extra_epochs)
        runs.append({"oracle": cell.oracle, "algorithm": cell.label, "seed": meta["seed"],
                     "networks": int(table.num_rows - costs(table)["repeats"]), "best_arch": best["arch"],
                     "best_sample": best["index"] + 1, "depth": best["arch"].count("(") - 1,
                     "valid_acc": best["valid_acc"], "test_acc_searched": best["test_acc"],
                     "finetuned_valid_acc": ft["valid_acc"], "finetuned_test_acc": ft["test_acc"],
                     "first_phase_reproduces_search": ft["reproduces_search"],
                     "finetune_cpu_s": ft["train_cpu"]})   # both phases, when it was computed
        c = costs(table)
        for key in ((cell.oracle, "all cells"), (cell.oracle, cell.label)):   # per oracle, and per cell
            agg = cost_by_oracle.setdefault(key, {"trained_s": [], "served": [], "repeats": 0, "queries": 0,
                                                  "oracle": cell.oracle})
            agg["trained_s"] += c["trained_s"]
            agg["served"] += c["served"]
            agg["repeats"] += c["repeats"]
            agg["queries"] += table.num_rows
        print(f"{cell.oracle} {cell.label} seed {meta['seed']}: best {best['valid_acc']:.4f} -> fine-tuned test "
              f"{ft['test_acc']:.4f}", file=sys.stderr)
    if not runs:
        print(f"no finished runs in {args.folder}", file=sys.stderr)
        return 1
    runs.sort(key=lambda r: (r["oracle"], r["algorithm"], r["seed"]))
    with open(args.out / "finetuned.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(runs[0]))
        w.writeheader()
        w.writerows(runs)

    # the reference, one entry per oracle name of the folder (the one-shot cells' oracle too)
    refs = []
    for name, oracle in oracles.items():
        refs.append(mlp_classifier_reference(oracle, range(args.reference_seeds), name=name))
    write_references(args.folder, refs)
    shutil.copyfile(args.folder / "references.json", args.out / "references.json")

    # costs: CPU seconds per trained MLP; what the shared store served instead of training
    cost = {}
    for name, agg in cost_by_oracle.items():
        oracle = oracles[agg["oracle"]]
        rows = {r["arch"]: r for r in oracle.rows() if r.get("mode") == "deterministic"
                and r.get("oracle_seed") == oracle.seed}
        t = np.asarray(agg["trained_s"])
        saved = [rows[a]["train_cpu"] for a in agg["served"] if a in rows]
        asked = len(t) + len(agg["served"])
        cost[" | ".join(name)] = {"oracle": agg["oracle"], "cells": name[1], "queries": agg["queries"], "repeats_in_run": agg["repeats"], "trained": int(len(t)),
                      "served_by_store": len(agg["served"]),
                      "served_fraction": len(agg["served"]) / asked if asked else None,
                      "cpu_s_per_trained_mlp_mean": float(t.mean()) if len(t) else None,
                      "cpu_s_per_trained_mlp_median": float(np.median(t)) if len(t) else None,
                      "cpu_s_trained": float(t.sum()), "cpu_s_saved_by_store": float(np.sum(saved))}

    # medians over seeds with bootstrap intervals, next to the reference
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        cells.setdefault((r["oracle"], r["algorithm"]), []).append(r)
    summary = {"cells": [], "references": read_references(args.folder), "costs": cost,
               "extra_epochs": args.extra_epochs}
    lines = ["| oracle | algorithm | runs | best validation acc. [%] | its test acc. before fine-tuning [%] | "
             f"test acc. after {args.extra_epochs} epochs of fine-tuning [%] | depth of the best (median) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (o, lab), rs in sorted(cells.items()):
        e = {k: estimate(np.array([r[k] for r in rs], dtype=np.float64))
             for k in ("valid_acc", "test_acc_searched", "finetuned_test_acc", "depth")}
        summary["cells"].append({"oracle": o, "algorithm": lab, "runs": len(rs), **e})
        lines.append(f"| {o} | {lab} | {len(rs)} | {ci_text(e['valid_acc'])} | {ci_text(e['test_acc_searched'])} | "
                     f"{ci_text(e['finetuned_test_acc'])} | {e['depth']['median']:.0f} |")
    for ref in summary["references"]:
        v = estimate(np.array(ref["search"], dtype=np.float64))
        t = estimate(np.array(ref["report"], dtype=np.float64))
        lines.append(f"| {ref['oracle']} | *{ref['name']}* | {v['n']} seeds | {ci_text(v)} | – | {ci_text(t)} "
                     "(its own training) | 1 |")
    lines += ["", "Median over seeds [95% percentile-bootstrap interval of the median].", ""]
    lines += pairwise_tests(cells, summary)
    if against is not None:
        lines += [""] + pairwise_tests(cells, summary, against)
    lines += ["",
              "| oracle | cells | queries | repeats (run cache) | trained | served by the store | CPU s per trained MLP "
              "(mean / median) | CPU s trained | CPU s saved by the store |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for o, c in sorted(cost.items(), key=lambda kv: (kv[1]["oracle"], kv[1]["cells"] != "all cells", kv[0])):
        frac = "–" if c["served_fraction"] is None else f"{100 * c['served_fraction']:.1f} %"
        mean = "–" if c["cpu_s_per_trained_mlp_mean"] is None else \
            f"{c['cpu_s_per_trained_mlp_mean']:.2f} / {c['cpu_s_per_trained_mlp_median']:.2f}"
        lines.append(f"| {c['oracle']} | {c['cells']} | {c['queries']} | {c['repeats_in_run']} | {c['trained']} | {c['served_by_store']} "
                     f"({frac}) | {mean} | {c['cpu_s_trained']:.0f} | {c['cpu_s_saved_by_store']:.0f} |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=lambda x: None,
                                                      allow_nan=True).replace("NaN", "null") + "\n")

    # the folder's report and figures, the reference included
    rs = load(args.folder)
    report = statistics_report(rs)
    fig_dir = args.out / "figures"
    figures = {p.stem: f"figures/{p.name}" for p in plot_all(rs, fig_dir, formats=("png",))}
    text = format_markdown(report, figures).replace(f"`{rs.source}`", f"`{args.folder.as_posix()}`")
    (args.out / "report.md").write_text(text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
