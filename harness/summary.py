"""Per-cell summaries of a results folder: the numbers ``nas-harness report`` prints."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from .results import ResultsStore
from .statistics import mean_std, samples_to_optimum


def summarise(store: ResultsStore) -> list[dict[str, Any]]:
    """One row per (oracle, algorithm) cell, from run metadata only (no records read)."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cells = {c.key: c for c in store.cells()}
    for cell, meta, _ in store.iter_runs():
        runs[cell.key].append(meta["summary"])
    rows = []
    for key, cell in cells.items():
        summaries = runs.get(key, [])
        s = {k: np.array([r[k] if r[k] is not None else np.nan for r in summaries], dtype=np.float64)
             for k in ("samples_to_optimum", "best_search", "best_report", "incumbent_report",
                       "n_distinct", "wall_s")}
        censored = np.array([r["censored"] for r in summaries], dtype=bool)
        row = {"oracle": cell.oracle, "algorithm": cell.label, "runs": len(summaries),
               "budget": cell.config["budget"], "until_optimum": cell.config["until_optimum"]}
        if cell.config["until_optimum"]:
            row["samples_to_optimum"] = samples_to_optimum(s["samples_to_optimum"], censored,
                                                           cell.config["budget"]).as_dict()
        for k in ("best_search", "incumbent_report", "best_report", "n_distinct", "wall_s"):
            m, sd = mean_std(s[k])
            row[k] = {"mean": m, "std": sd}
        rows.append(row)
    rows.sort(key=lambda r: (r["oracle"], r["algorithm"]))
    return rows


def _fmt(x: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if x is None else f"{x * scale:.{digits}f}"


def format_text(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table; accuracies shown in percent."""
    head = ["oracle", "algorithm", "runs", "censored", "StO mean", "StO median", "StO IQR",
            "best search %", "its report %"]
    lines = []
    for r in rows:
        sto = r.get("samples_to_optimum")
        if sto:
            mean = _fmt(sto["mean"]) + ("*" if sto["mean_is_restricted"] else "")
            iqr = f"{_fmt(sto['q1'], digits=0)}-{_fmt(sto['q3'], digits=0)}"
            cells = [str(sto["n_censored"]), mean, _fmt(sto["median"], digits=0), iqr]
        else:
            cells = ["-", "-", "-", "-"]
        bs, ir = r["best_search"], r["incumbent_report"]
        lines.append([r["oracle"], r["algorithm"], str(r["runs"]), *cells,
                      f"{_fmt(bs['mean'], 100, 2)} ± {_fmt(bs['std'], 100, 2)}",
                      f"{_fmt(ir['mean'], 100, 2)} ± {_fmt(ir['std'], 100, 2)}"])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(l, widths)) for l in lines]
    notes = ["StO = samples to the global optimum (distinct architectures, counting the optimum); "
             "median and quartiles by Kaplan-Meier."]
    if any(r.get("samples_to_optimum", {}) and r["samples_to_optimum"]["mean_is_restricted"] for r in rows):
        notes.append("* mean restricted to the budget: censored runs count as the budget (a lower bound).")
    notes.append("best search = best search metric found within the budget; its report = report metric "
                 "of that architecture; mean ± std over runs.")
    return "\n".join(out + [""] + notes)
