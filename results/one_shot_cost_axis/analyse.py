"""LaNAS §4.3 on one cost axis (issue 16): do sample-based searches beat the weight-sharing
(one-shot) methods when both are charged the CPU seconds they spend?

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space" (LaNAS),
§4.3: one-shot methods such as DARTS and NAO "exhibit weaker performance" than LaNAS and are
suspected to be "easily trapped into a local optimal". Here every method searches the NB201
cell space on scikit-learn's digits and is judged by the same ground truth, the shipped table
``nb201-digits`` (every cell trained stand-alone, 2 seeds; its test accuracy, mean over the
seeds, is the *true* value of a cell; docs/nb201-digits.md). The methods never see the test
numbers.

This script reads results folders of ``nas-harness run`` (any number, given as arguments) and
sorts each cell of runs into one of three kinds by its oracle and configuration:

* **one-shot** (``kind = "one-shot"``: DARTS, GDAS, RSPS, ENAS, DDAS on the ``cpu`` preset
  supernet): the answer after epoch ``e`` is the derived cell; its search cost is the measured
  CPU seconds (``time.process_time``, one thread) of the supernet training of epochs 1..e
  (the method's own ``cpu_seconds`` per epoch in the run's diagnostics: weights, and alpha or
  controller steps) **plus the derivation at epoch e** (the loop's CPU seconds of that epoch
  minus its training): what a run stopped after epoch e and derived once would have cost. The
  per-epoch derivations of the earlier epochs (RSPS and ENAS score 10 candidates after every
  epoch, for the records) are left out; the run's whole measured CPU time is reported beside.
* **table** (oracle ``nb201-digits``, with or without ``:runs=random``): the answer after a
  query is the incumbent (best search value so far, the first of ties); its search cost is
  the **deterministic** charge of the table, the stand-alone training CPU seconds of every
  distinct cell queried (``cum_cost``: the table's ``train_cpu_time``, measured once when the
  table was collected), plus the algorithm's own CPU seconds (``algo_cpu_s``, measured in the
  run). With ``runs=random`` a query answers one of the table's two seeds and is charged that
  training's seconds; the default oracle answers the 2-seed mean and is charged the mean of
  the two trainings' seconds (one training's price for two trainings' information).
  **Judged**: with ``runs=random`` by the test accuracy of the cell's *other* training (the
  seed the search never saw: a fresh training of the chosen cell), because the seed a search
  selected on shares its training with that seed's test accuracy (winner's curse); with the
  2-seed mean by the 2-seed mean, which holds the very trainings the search selected on
  (optimistic: no held-out training exists there).
* **supernet** (oracle ``supernet/NAME``): the incumbent as for a table; its search cost is
  the supernet's training (CPU seconds from its ``config.json`` history, paid once), plus the
  measured CPU seconds of every query (``measured_s``) plus the algorithm's own.

The final stand-alone training of the answer (the cell a one-shot method derives, or a
supernet search's incumbent) is not in the search cost; it is reported apart (the table's
``train_cpu_time`` of that cell: one training; the true value is a 2-seed mean, two). A table
search has trained its incumbent already.

Outputs (``--out``): ``report.md`` (tables), ``summary.json`` (every number), ``true_test_vs_cpu.png``
(median true test accuracy of the answer against search CPU seconds, log x, one line per
method, band: 95 % bootstrap interval of the median over seeds).

    python results/one_shot_cost_axis/analyse.py FOLDER... --out results/one_shot_cost_axis

A cell of the same (oracle, algorithm label) in two folders (the table half of the supernet
search and these table runs) is read once, from the folder whose runs are longer; the report
says whether the shorter runs are a prefix of the longer ones.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.metrics import read_runs  # noqa: E402
from harness.statistics import (N_BOOT, bootstrap_ci, holm, mann_whitney, percentile_interval,  # noqa: E402
                                resample_indices)
from oracles.nb201_space import string_to_arch  # noqa: E402
from oracles.registry import load_oracle  # noqa: E402

TRUTH = "nb201-digits"
#: fixed budgets of the matched-budget table, CPU seconds (0.62 s is one stand-alone training
#: of the truth's recipe: these are about 15, 50, 150, 500 and 1,000 trainings)
FIXED_BUDGETS = (10.0, 30.0, 100.0, 300.0, 600.0)
ONE_SHOT_MARKERS = ("s", "o", "^", "v", "D", "P", "X", "*", "h")
SEARCH_COLOURS = ("#1b1b1b", "#b8860b", "#008080", "#c51b7d", "#556b2f", "#4b0082", "#8b0000")
KIND_WORDS = {"one-shot": "one-shot (supernet trained in the run)",
              "table": "table, one seed a query (one training a query; judged by the held-out training)",
              "table-mean": "table, 2-seed mean a query (charged one training)",
              "table-mean-2x": "table, 2-seed mean a query (charged two trainings)",
              "supernet": "through the supernet oracle (its training paid once)"}


# --- reading ----------------------------------------------------------------------------------
class Truth:
    """The ground truth's per-cell numbers: true test accuracy (mean over the table's seeds)
    and one stand-alone training's CPU seconds (mean over the seeds), by NB201 arch string."""

    def __init__(self, name: str = TRUTH):
        self.oracle = load_oracle(name)
        self.name = name
        self.test = np.asarray(self.oracle.report_values, dtype=float)
        t = self.oracle.table
        fi = t.fidelity_index(self.oracle.fidelity)
        #: per cell and seed: (search metric, report metric) of each of the table's trainings
        self.per_seed = {m: np.asarray(t.values[:, :, fi, t.metric_index(m)], dtype=float)
                         for m in (self.oracle.search_metric, self.oracle.report_metric)}
        self._cache: dict[str, tuple[float, float]] = {}

    def of(self, arch: str) -> tuple[float, float]:
        """(true test accuracy, CPU seconds of one stand-alone training) of a cell."""
        if arch not in self._cache:
            cell = string_to_arch(arch)
            ev = self.oracle.query(cell)
            self._cache[arch] = (float(self.test[self.oracle.space.index(cell)]), float(ev.observation.cost))
        return self._cache[arch]

    def held_out(self, arch: str, search: float, report: float) -> float:
        """The report metric of the training of ``arch`` that a one-seed query did *not* see:
        the query answered one seed's (search, report) pair, found here by matching both; the
        other seed is a fresh training of the cell, untouched by the search's selection. The
        mean of the other seeds where several are left; NaN where none is."""
        i = self.oracle.space.index(string_to_arch(arch))
        sv, rv = self.per_seed[self.oracle.search_metric][i], self.per_seed[self.oracle.report_metric][i]
        seen = np.flatnonzero(np.isclose(sv, search, rtol=0, atol=1e-12) & np.isclose(rv, report, rtol=0, atol=1e-12))
        if len(seen) == 0:
            raise ValueError(f"{arch}: no seed of the table answers ({search}, {report})")
        others = np.delete(rv, seen[0])
        others = others[np.isfinite(others)]
        return float(others.mean()) if len(others) else math.nan

    def rank(self, value: float) -> int:
        """1 + the cells whose true test accuracy is higher (ties share the best rank)."""
        return int((self.test > value).sum()) + 1


def supernet_train_cpu(name: str, given: dict[str, Path]) -> float:
    """CPU seconds of a supernet's training: the sum of its per-epoch history in its
    ``config.json`` (``--supernet NAME=PATH``, else the data directory's copy)."""
    if name in given:
        path = given[name]
        meta = json.loads((path / "config.json" if path.is_dir() else path).read_text())
    else:
        from supernets.rank import supernet_meta
        meta = supernet_meta(name)
    return float(sum(h.get("cpu_seconds", 0.0) for h in meta["history"]))


def incumbent_rows(search) -> np.ndarray:
    """Per record: the record holding the best search value so far, the first of ties (as
    the runner's ``best_search`` counts it; every oracle here is maximised); -1 before any."""
    best, inc, out = -np.inf, -1, []
    for i, s in enumerate(search):
        if s is not None and np.isfinite(s) and s > best:
            best, inc = s, i
        out.append(inc)
    return np.array(out, dtype=np.int64)


def incumbent_archs(archs, search) -> list[str | None]:
    """Per record: the incumbent's arch (:func:`incumbent_rows`), None before any."""
    return [archs[i] if i >= 0 else None for i in incumbent_rows(search)]


def one_shot_cpu(epochs: list[dict], algo_cpu: np.ndarray) -> np.ndarray:
    """Search CPU seconds after each epoch of a one-shot run: training of epochs 1..e plus
    the derivation at e (module doc); the run's cumulative CPU where the diagnostics lack the
    split."""
    if not epochs or any("cpu_seconds" not in e or "loop_cpu_seconds" not in e for e in epochs):
        return np.asarray(algo_cpu, dtype=float)
    train = np.array([float(e["cpu_seconds"]) for e in epochs])
    loop = np.array([float(e["loop_cpu_seconds"]) for e in epochs])
    return np.cumsum(train) + np.maximum(loop - train, 0.0)


def kind_of(cell) -> str | None:
    if cell.config.get("kind") == "one-shot":
        return "one-shot" if cell.oracle.split(":")[0] == TRUTH else None
    base, _, opts = cell.oracle.partition(":")
    if base.startswith("supernet/"):
        return "supernet"
    if base == TRUTH:
        return "table" if "runs=random" in opts else "table-mean"
    return None


def short_label(label: str) -> str:
    """A readable name for a one-shot cell label (DDAS's long parameter lists)."""
    if not label.startswith("ddas"):
        return label
    params = dict(p.split("=", 1) for p in label.split(":", 1)[1].split(",")) if ":" in label else {}
    if params.get("variant") == "rs":
        return "ddas random-search baseline"
    reward = params.get("reward")
    return "ddas" + (f" ({reward})" if reward else "")


def collect(folders: list[Path], truth: Truth, supernets: dict[str, Path]) -> tuple[dict, list[str]]:
    """Per method: its kind, algorithm label, folder and one dict per seed (search CPU and
    true test accuracy of the answer after every record, the final answer and its numbers)."""
    methods: dict[str, dict] = {}
    notes: list[str] = []
    train_cpu: dict[str, float] = {}
    for folder in folders:
        for cell, meta, table in read_runs(folder, columns=None):
            kind = kind_of(cell)
            if kind is None:
                continue
            cols = table.to_pydict()
            order = np.argsort(cols["sample"], kind="stable")
            archs = [(cols.get("arch") or cols["arch_id"])[i] for i in order]
            search = np.array([np.nan if cols["search"][i] is None else cols["search"][i] for i in order])
            algo = np.array([cols["algo_cpu_s"][i] for i in order], dtype=float)
            summary = meta["summary"]
            run = {"seed": int(meta["seed"]), "folder": str(folder)}
            if kind == "one-shot":
                answers = archs
                cpu = one_shot_cpu(summary.get("diagnostics", {}).get("epochs", []), algo)
                run["cpu_as_run"] = float(algo[-1])
            else:
                answers = incumbent_archs(archs, search)
                if kind == "supernet":
                    name = cell.oracle.split("/", 1)[1].split(":")[0]
                    if name not in train_cpu:
                        train_cpu[name] = supernet_train_cpu(name, supernets)
                    spent = np.nan_to_num(np.array([cols["measured_s"][i] for i in order], dtype=float))
                    cpu = train_cpu[name] + np.cumsum(spent) + algo
                    run["supernet_train_cpu"] = train_cpu[name]
                else:
                    cpu = np.array([cols["cum_cost"][i] for i in order], dtype=float) + algo
            true = np.array([np.nan if a is None else truth.of(a)[0] for a in answers])
            if kind == "table":
                # a one-seed search chose its incumbent on that seed's validation accuracy, which
                # shares the training with that seed's test accuracy: judged by the other seed
                # (a fresh training of the chosen cell), the selection cannot flatter it
                report = [cols["report"][i] for i in order]
                held = {}
                for r in set(incumbent_rows(search)) - {-1}:
                    held[r] = truth.held_out(archs[r], search[r], report[r])
                run["true_2seed"] = true
                true = np.array([held[r] if r >= 0 else np.nan for r in incumbent_rows(search)])
            run.update({"cpu": cpu, "true": true, "archs": archs, "final": answers[-1], "algo_cpu": float(algo[-1]),
                        "final_true": float(true[-1]), "cpu_final": float(cpu[-1]),
                        "final_train_cpu": truth.of(answers[-1])[1] if answers[-1] else math.nan,
                        "records": len(archs)})
            label = cell.label
            name = {"one-shot": short_label(label), "table": f"{label} (table, one seed a query)",
                    "table-mean": f"{label} (table, 2-seed mean)",
                    "supernet": f"{label} (through the supernet)"}[kind]
            m = methods.setdefault(name, {"kind": kind, "label": label, "oracle": cell.oracle,
                                          "folder": str(folder), "runs": []})
            if m["folder"] != str(folder):
                m.setdefault("other_folders", {}).setdefault(str(folder), []).append(run)
                if kind == "table-mean":
                    twice = dict(run, cpu=2 * np.array([cols["cum_cost"][i] for i in order], dtype=float) + algo)
                    twice["cpu_final"] = float(twice["cpu"][-1])
                    methods[f"{label} (table, 2-seed mean, charged 2 trainings)"].setdefault(
                        "other_folders", {}).setdefault(str(folder), []).append(twice)
                continue
            m["runs"].append(run)
            if kind == "table-mean":
                # the same runs, charged what their information cost: two trainings a query
                twice = dict(run, cpu=2 * np.array([cols["cum_cost"][i] for i in order], dtype=float) + algo)
                twice["cpu_final"] = float(twice["cpu"][-1])
                methods.setdefault(f"{label} (table, 2-seed mean, charged 2 trainings)",
                                   {"kind": "table-mean-2x", "label": label, "oracle": cell.oracle,
                                    "folder": str(folder), "runs": []})["runs"].append(twice)
    # the same cell in two folders: keep the longer runs, check the shorter are their prefix
    for name, m in methods.items():
        for folder, other in m.pop("other_folders", {}).items():
            mine = np.median([r["records"] for r in m["runs"]])
            theirs = np.median([r["records"] for r in other])
            longer, shorter = (m["runs"], other) if mine >= theirs else (other, m["runs"])
            by_seed = {r["seed"]: r for r in longer}
            prefix = sum(1 for r in shorter if r["seed"] in by_seed
                         and by_seed[r["seed"]]["archs"][:r["records"]] == r["archs"])
            kept = m["folder"] if mine >= theirs else folder
            dropped = folder if kept == m["folder"] else m["folder"]
            notes.append(f"{name}: read from {kept} ({int(max(mine, theirs))} records a run); the runs of "
                         f"{dropped} ({int(min(mine, theirs))} records) are the first records of the same "
                         f"seeds in {prefix} of {len(shorter)} runs")
            m["runs"], m["folder"] = longer, kept
    for m in methods.values():
        m["runs"].sort(key=lambda r: r["seed"])
    return methods, notes


# --- statistics ---------------------------------------------------------------------------------
def value_at(cpu: np.ndarray, true: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """The true value of a run's answer at each CPU budget: that of the last record whose
    search CPU is within the budget (NaN before the first; a finished run keeps its last)."""
    cpu = np.maximum.accumulate(np.asarray(cpu, dtype=float))
    i = np.searchsorted(cpu, np.asarray(budgets, dtype=float), side="right") - 1
    return np.where(i >= 0, np.asarray(true, dtype=float)[np.maximum(i, 0)], np.nan)


def median_bands(V: np.ndarray, n_boot: int = N_BOOT) -> dict[str, np.ndarray]:
    """Per column of a (runs, budgets) matrix: the median over runs and a 95 % percentile
    bootstrap interval of it (runs resampled with replacement, :func:`harness.statistics.resample_indices`);
    NaN where any run has no value yet."""
    V = np.asarray(V, dtype=float)
    full = ~np.isnan(V).any(axis=0)
    med = np.where(full, np.median(np.where(np.isnan(V), 0.0, V), axis=0), np.nan)
    draws = np.median(V[resample_indices(len(V), n_boot)], axis=1)        # (n_boot, budgets)
    lo, hi = np.full(V.shape[1], np.nan), np.full(V.shape[1], np.nan)
    for j in np.flatnonzero(full):
        lo[j], hi[j] = percentile_interval(draws[:, j])
    return {"median": med, "lo": lo, "hi": hi}


def first_reach(cpu_runs, true_runs, target: float, grid: np.ndarray, n_boot: int = N_BOOT) -> dict:
    """The smallest budget on ``grid`` where the median over runs of the answer's true value
    reaches ``target``, with a 95 % bootstrap interval (runs resampled; a resample whose median
    never reaches it within the grid gives an open upper bound, None)."""
    V = np.array([value_at(c, t, grid) for c, t in zip(cpu_runs, true_runs)])

    def reach(M):
        med = np.median(M, axis=-2)            # NaN where a run has no value yet
        ok = med >= target - 1e-12
        idx = np.where(ok.any(axis=-1), ok.argmax(axis=-1), -1)
        return np.where(idx >= 0, grid[np.maximum(idx, 0)], np.inf)

    point = float(reach(V))
    draws = reach(V[resample_indices(len(V), n_boot)])
    lo, hi = percentile_interval(draws)
    return {"cpu": None if not np.isfinite(point) else point, "lo": lo, "hi": hi,
            "reached_runs": int(sum(np.nanmax(t) >= target - 1e-12 for t in true_runs))}


def interval(values) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    lo, hi = bootstrap_ci(v, "median")
    return {"median": float(np.median(v)) if len(v) else None, "lo": lo, "hi": hi, "n": int(len(v))}


def analyse(folders: list[Path], supernets: dict[str, Path] | None = None) -> dict:
    truth = Truth()
    methods, notes = collect(folders, truth, supernets or {})
    if not methods:
        raise SystemExit(f"no runs on {TRUTH} (one-shot, table or supernet) in {', '.join(map(str, folders))}")
    top = max(max(r["cpu_final"] for r in m["runs"]) for m in methods.values())
    grid = np.geomspace(0.3, top * 1.05, 240)
    out_methods = {}
    for name, m in sorted(methods.items(), key=lambda kv: (list(KIND_WORDS).index(kv[1]["kind"]), kv[0])):
        runs = m["runs"]
        V = np.array([value_at(r["cpu"], r["true"], grid) for r in runs])
        bands = median_bands(V)
        finals = [r["final_true"] for r in runs]
        entry = {
            "kind": m["kind"], "label": m["label"], "oracle": m["oracle"], "folder": m["folder"],
            "seeds": [r["seed"] for r in runs],
            "final_true_test": interval(finals),
            "final_true_test_mean": float(np.mean(finals)),
            "final_true_rank_median": float(np.median([truth.rank(v) for v in finals])),
            "final_in_top_1pct": int(sum(truth.rank(v) <= len(truth.test) / 100 for v in finals)),
            "search_cpu_final": interval([r["cpu_final"] for r in runs]),
            "algo_cpu_final": interval([r["algo_cpu"] for r in runs]),
            "records_median": float(np.median([r["records"] for r in runs])),
            "final_train_cpu": interval([r["final_train_cpu"] for r in runs]),
            "curve": {"median": bands["median"].tolist(), "lo": bands["lo"].tolist(), "hi": bands["hi"].tolist()},
        }
        if m["kind"] == "table":
            entry["final_true_test_2seed"] = interval([float(r["true_2seed"][-1]) for r in runs])
        if m["kind"] == "one-shot":
            entry["cpu_as_run"] = interval([r["cpu_as_run"] for r in runs])
        if m["kind"] == "supernet":
            entry["supernet_train_cpu"] = runs[0]["supernet_train_cpu"]
        entry["_runs"] = runs
        out_methods[name] = entry
    one_shot = [k for k, e in out_methods.items() if e["kind"] == "one-shot"]
    searchers = [k for k, e in out_methods.items() if e["kind"] != "one-shot"]
    # matched budgets: each one-shot method's own median search CPU, and fixed ones
    matched = {}
    for o in one_shot:
        e = out_methods[o]
        budget = e["search_cpu_final"]["median"]
        finals = np.array([r["final_true"] for r in e["_runs"]])
        row = {"budget_cpu": budget, "one_shot": e["final_true_test"], "searchers": {}}
        for s in searchers:
            vals = np.array([value_at(r["cpu"], r["true"], [budget])[0] for r in out_methods[s]["_runs"]])
            test = mann_whitney(vals, finals)
            theirs = out_methods[s]["_runs"]
            reach = first_reach([r["cpu"] for r in theirs], [r["true"] for r in theirs],
                                e["final_true_test"]["median"], grid)
            row["searchers"][s] = {"at_budget": interval(vals), "runs_with_value": int(np.isfinite(vals).sum()),
                                   "mann_whitney_p": None if test is None else test.p_value,
                                   "a12": None if test is None else test.a12, "reach": reach}
        # Holm over this one-shot method's comparisons (one family per one-shot method)
        keys = [s for s, v in row["searchers"].items() if v["mann_whitney_p"] is not None]
        for s, adj in zip(keys, holm([row["searchers"][s]["mann_whitney_p"] for s in keys])):
            row["searchers"][s]["p_holm"] = adj
        matched[o] = row
    fixed = {}
    for b in FIXED_BUDGETS:
        fixed[str(b)] = {k: interval([value_at(r["cpu"], r["true"], [b])[0] for r in e["_runs"]])
                         for k, e in out_methods.items()}
    # what a table query is charged: one training's train_cpu_time (mean over the class's seeds)
    per_cell = np.asarray(truth.oracle.table.column(truth.oracle.cost_metric, truth.oracle.fidelity), dtype=float)
    # the trainings themselves: one per class and seed, on the class's representative (the
    # served table repeats a class's numbers on every cell of the class)
    t = truth.oracle.table
    trained = np.asarray(t.columns["representative"]) == 1 if "representative" in t.columns else slice(None)
    per_training = np.asarray(t.values[trained, :, t.fidelity_index(truth.oracle.fidelity),
                                       t.metric_index(truth.oracle.cost_metric)], dtype=float)
    table_cost = {"metric": truth.oracle.cost_metric, "mean_over_cells": float(np.nanmean(per_cell)),
                  "median_over_cells": float(np.nanmedian(per_cell)), "min_over_cells": float(np.nanmin(per_cell)),
                  "max_over_cells": float(np.nanmax(per_cell)),
                  "trainings_in_table": int(np.isfinite(per_training).sum()),
                  "cpu_s_all_trainings": float(np.nansum(per_training))}
    refs = {"best cell": float(np.max(truth.test)), "1 % best cells from": float(np.quantile(truth.test, 0.99)),
            "median cell": float(np.median(truth.test)), "mean cell": float(np.mean(truth.test))}
    return {"truth": TRUTH, "cells": int(len(truth.test)), "folders": [str(f) for f in folders], "notes": notes,
            "grid_cpu": grid.tolist(), "references": refs, "table_cost": table_cost, "methods": out_methods,
            "matched": matched, "fixed_budgets": fixed}


# --- output ---------------------------------------------------------------------------------------
def median_text(s: dict | None, digits: int, scale: float = 1.0, sep: str = ",") -> str:
    """``median [lo, hi]`` of an estimate, times ``scale``; ``-`` when undefined."""
    if s is None or s.get("median") is None:
        return "-"
    text = f"{s['median'] * scale:{sep}.{digits}f}"
    if s.get("lo") is not None and s.get("hi") is not None:
        text += f" [{s['lo'] * scale:{sep}.{digits}f}, {s['hi'] * scale:{sep}.{digits}f}]"
    return text


def pct(s: dict | None, digits: int = 2) -> str:
    return median_text(s, digits, 100.0, "")


def sec(s: dict | None, digits: int = 1) -> str:
    return median_text(s, digits)


def report(result: dict) -> str:
    ms = result["methods"]
    lines = ["# One cost axis: one-shot methods and sample-based search on the NB201-on-digits truth", "",
             f"Truth: `{result['truth']}` ({result['cells']:,} cells; true value = test accuracy, mean of the "
             "table's 2 seeds). Intervals: 95 % percentile bootstrap of the median over seeds "
             "(harness.statistics, 2,000 resamples).", "",
             "Read from: " + ", ".join(f"`{f}`" for f in result["folders"]), ""]
    lines += [f"* {n}" for n in result["notes"]]
    lines += ["", "## Every method at the end of its runs", "",
              "| method | kind | seeds | records a run | true test of the answer [%] (median [95 %]) | mean | "
              "true rank (median) | runs in the top 1 % | search CPU s (median [95 %]) | "
              "of which the algorithm's own CPU s | one-shot: CPU s as run (all derivations) | "
              "final stand-alone training, CPU s (one training; apart) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in ms.items():
        lines.append(f"| {name} | {e['kind']} | {len(e['seeds'])} | {e['records_median']:.0f} | "
                     f"{pct(e['final_true_test'])} | {e['final_true_test_mean'] * 100:.2f} | "
                     f"{e['final_true_rank_median']:,.0f} | {e['final_in_top_1pct']}/{len(e['seeds'])} | "
                     f"{sec(e['search_cpu_final'])} | "
                     f"{'all' if e['kind'] == 'one-shot' else sec(e['algo_cpu_final'])} | {sec(e.get('cpu_as_run'))} | "
                     f"{'already paid' if e['kind'].startswith('table') else sec(e['final_train_cpu'], 2)} |")
    held = [(n, e) for n, e in ms.items() if e["kind"] == "table"]
    if held:
        lines += ["", "One seed a query: the incumbent is judged by the table's *other* training of its cell "
                  "(the seed the search never saw). Judged by the 2-seed mean instead (half of it the training "
                  "the search selected on, so flattered by the selection): "
                  + "; ".join(f"{n.split(' (')[0]} {pct(e['final_true_test_2seed'])}" for n, e in held) + "."]
    tc = result["table_cost"]
    lines += ["", f"Table charge per query (`{tc['metric']}`, one stand-alone training, mean of the class's "
              f"seeds): mean {tc['mean_over_cells']:.3f} CPU-s over the {result['cells']:,} cells (median "
              f"{tc['median_over_cells']:.3f}, min {tc['min_over_cells']:.3f}, max {tc['max_over_cells']:.3f}); "
              f"the table's {tc['trainings_in_table']:,} trainings took {tc['cpu_s_all_trainings']:,.0f} CPU-s "
              f"({tc['cpu_s_all_trainings'] / tc['trainings_in_table']:.3f} a training)."]
    lines += ["", "Supernet oracle: its training "
              + ", ".join(f"{e['supernet_train_cpu']:.1f} CPU-s ({e['oracle']})" for e in
                          {e['oracle']: e for e in ms.values() if e['kind'] == 'supernet'}.values())
              + " is in every such run's search CPU.", ""]
    lanas = [s for s, e in ms.items() if e["kind"] != "one-shot" and e["label"].split(":")[0] == "lanas"]
    if lanas and result["matched"]:
        lines += ["## LaNAS (the claim's subject) against each one-shot method, at the one-shot method's cost", "",
                  "True test accuracy [%] of the answer, median [95 %] over seeds; LaNAS's incumbent at the "
                  "one-shot method's median search CPU; p: Mann-Whitney, Holm-adjusted within the one-shot "
                  "method's block below.", "",
                  "| one-shot method (seeds) | its search CPU s | its final answer | "
                  + " | ".join(f"{s} | p (Holm)" for s in lanas) + " |",
                  "| --- | --- | --- | " + " | ".join("--- | ---" for _ in lanas) + " |"]
        for o, row in result["matched"].items():
            cells = []
            for s in lanas:
                v = row["searchers"][s]
                cells.append(f"{pct(v['at_budget'])} | "
                             + ("-" if v.get("p_holm") is None else f"{v['p_holm']:.3g}"))
            lines.append(f"| {o} ({len(ms[o]['seeds'])}) | {row['budget_cpu']:.1f} | {pct(row['one_shot'])} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## At each one-shot method's own search cost", "",
              "Budget: the one-shot method's median search CPU seconds over its seeds. Per sample-based "
              "method: the true test accuracy of its incumbent at that budget; Mann-Whitney (two-sided, "
              "harness.statistics) of those against the one-shot finals, Holm-adjusted over the rows of the block, "
              "A12 = P(search > one-shot); and the "
              "search CPU at which its median incumbent first reaches the one-shot median (95 % bootstrap; "
              "None: beyond its runs).", ""]
    for o, row in result["matched"].items():
        lines += [f"### {o}: {pct(row['one_shot'])} % after {row['budget_cpu']:.1f} CPU-s", "",
                  "| sample-based search | true test at that budget [%] | runs with an incumbent | p | p (Holm) | "
                  "A12 | "
                  "CPU s to reach the one-shot median [95 %] | runs that reach it |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s, v in row["searchers"].items():
            r = v["reach"]
            reach = "-" if r["cpu"] is None else (f"{r['cpu']:.1f} [{r['lo']:.1f}, "
                                                  + ("None" if r["hi"] is None else f"{r['hi']:.1f}") + "]")
            p = "-" if v["mann_whitney_p"] is None else f"{v['mann_whitney_p']:.3g}"
            ph = "-" if v.get("p_holm") is None else f"{v['p_holm']:.3g}"
            a = "-" if v["a12"] is None else f"{v['a12']:.2f}"
            lines.append(f"| {s} | {pct(v['at_budget'])} | {v['runs_with_value']}/{len(ms[s]['seeds'])} "
                         f"| {p} | {ph} | {a} | {reach} | {r['reached_runs']}/{len(ms[s]['seeds'])} |")
        lines.append("")
    budgets = list(result["fixed_budgets"])
    lines += ["## At fixed CPU budgets", "",
              "True test accuracy [%] of the answer (median [95 %]; n = runs with an answer by then).", "",
              "| method | " + " | ".join(f"{float(b):g} CPU-s" for b in budgets) + " |",
              "| --- | " + " | ".join("---" for _ in budgets) + " |"]
    for name in ms:
        cells = []
        for b in budgets:
            s = result["fixed_budgets"][b][name]
            cells.append("-" if s["median"] is None else f"{pct(s)} (n {s['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| reference (the table) | true test [%] |", "| --- | --- |"]
    lines += [f"| {k} | {v * 100:.2f} |" for k, v in result["references"].items()]
    lines += ["", "![true test accuracy against search CPU seconds](true_test_vs_cpu.png)", ""]
    return "\n".join(lines)


def legend_name(name: str, e: dict) -> str:
    """A method's name in a panel whose title already says its kind."""
    if e["kind"] == "one-shot":
        return name
    return e["label"].replace("evolution:population=50,sample_size=10", "evolution (50/10)")


def figure(result: dict, out: Path) -> Path:
    """Median true test accuracy of the answer against search CPU seconds (log x), one panel
    per kind of method, one line per method with the 95 % bootstrap band of its median; the
    panels of the sample-based searches repeat the one-shot methods' final answers as markers
    (median and interval at their median search CPU)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = np.asarray(result["grid_cpu"])
    present = [k for k in KIND_WORDS if any(e["kind"] == k for e in result["methods"].values())]
    ncols = 2 if len(present) > 1 else 1
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.6 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    one_shot = {k: e for k, e in result["methods"].items() if e["kind"] == "one-shot"}
    # one-shot methods in matplotlib's cycle, sample-based searches in darker tones of their own,
    # so that a one-shot marker is never mistaken for a search's line
    colour: dict[str, str] = {}
    marker: dict[str, str] = {}
    for name, e in result["methods"].items():
        key = legend_name(name, e)
        if key in colour:
            continue
        if e["kind"] == "one-shot":
            colour[key] = f"C{len(marker) % 10}"
            marker[key] = ONE_SHOT_MARKERS[len(marker) % len(ONE_SHOT_MARKERS)]
        else:
            searchers = len(colour) - len(marker)
            colour[key] = SEARCH_COLOURS[searchers % len(SEARCH_COLOURS)]
    for ax, kind in zip(axes.ravel(), present):
        for name, e in result["methods"].items():
            if e["kind"] != kind:
                continue
            c = e["curve"]
            med, lo, hi = (np.asarray(c[k], dtype=float) for k in ("median", "lo", "hi"))
            col = colour[legend_name(name, e)]
            ax.plot(grid, med * 100, color=col, lw=1.3, label=f"{legend_name(name, e)} ({len(e['seeds'])} seeds)")
            ax.fill_between(grid, lo * 100, hi * 100, color=col, alpha=0.13, lw=0)
        if kind != "one-shot":
            for name, e in one_shot.items():
                f = e["final_true_test"]
                ax.errorbar(e["search_cpu_final"]["median"], f["median"] * 100,
                            yerr=[[(f["median"] - (f["lo"] if f["lo"] is not None else f["median"])) * 100],
                                  [((f["hi"] if f["hi"] is not None else f["median"]) - f["median"]) * 100]],
                            fmt=marker[name], color=colour[name], ms=5, capsize=2, label=f"{name}: final answer")
        for j, (ref, v) in enumerate(result["references"].items()):
            ax.axhline(v * 100, color="0.5", lw=0.8, ls=("-", "--", ":", "-.")[j % 4])
            ax.text(grid[0], v * 100, f" {ref}", fontsize=6, va="bottom", color="0.35")
        ax.set_xscale("log")
        ax.set_title(KIND_WORDS[kind], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes.ravel()[len(present):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("search CPU seconds (final stand-alone training not included)")
    for ax in axes[:, 0]:
        ax.set_ylabel("true test accuracy of the answer [%]")
    axes[0][0].set_ylim(50, 96)
    fig.suptitle("NB201 cells on digits, every answer judged by nb201-digits: median over seeds, "
                 "band 95 % bootstrap interval of the median", fontsize=9)
    fig.tight_layout()
    path = out / "true_test_vs_cpu.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def jsonable(result: dict) -> dict:
    out = dict(result)
    out["methods"] = {}
    for name, e in result["methods"].items():
        e = {k: v for k, v in e.items() if k != "_runs"}
        e["per_seed"] = [{"seed": r["seed"], "final": r["final"], "final_true_test": r["final_true"],
                          "search_cpu": r["cpu_final"], "records": r["records"]}
                         for r in result["methods"][name]["_runs"]]
        out["methods"][name] = e
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="results folders of nas-harness run (one-shot, table or "
                   "supernet-oracle runs on the NB201 space)")
    p.add_argument("--supernet", action="append", default=[], metavar="NAME=PATH",
                   help="a supernet oracle's config.json (or its folder), for its training CPU seconds; "
                   "default: the supernet of that name in NAS_HARNESS_DATA")
    p.add_argument("--out", type=Path, required=True, help="where report.md, summary.json and the figure go")
    args = p.parse_args(argv)
    supernets = {}
    for s in args.supernet:
        name, _, path = s.partition("=")
        supernets[name] = Path(path)
    result = analyse(args.folders, supernets)
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(result)
    (args.out / "report.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(jsonable(result), indent=1) + "\n")
    path = figure(result, args.out)
    print(text)
    print("wrote", args.out / "report.md", args.out / "summary.json", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
