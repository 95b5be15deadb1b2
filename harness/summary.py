"""Per-cell summaries of a results folder: the numbers ``nas-harness report`` prints.

:func:`summarise` reads run metadata only (fast; ``run`` and ``report`` text);
:func:`statistics_report` computes every statistic of :mod:`harness.statistics` from the
records (``report --format json`` and ``--format md``), and :func:`format_markdown` turns it
into a Markdown report: samples to the optimum, ratios between algorithms, the CADAM
Table 4.1-style final-quality table and the figures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from oracles.errors import UserError

from .metrics import ResultSet
from .results import ResultsStore
from .statistics import (BOOT_SEED, CONFIDENCE, N_BOOT, bootstrap_ci, censor_at, censored_rank_test,
                         common_censoring, mean_std, sample_ratios, samples_to_optimum)


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
               "budget": cell.config["budget"], "until_optimum": cell.config["until_optimum"],
               "stopped": stopped_summary([r.get("stopped") for r in summaries])}
        if cell.config["until_optimum"]:
            # a stopped run is censored where it stopped (see harness.metrics.CellRuns.censor_times)
            cap = np.where([bool(r.get("stopped")) for r in summaries], s["n_distinct"],
                           float(cell.config["budget"])) if summaries else float(cell.config["budget"])
            row["samples_to_optimum"] = samples_to_optimum(s["samples_to_optimum"], censored, cap).as_dict()
        for k in ("best_search", "incumbent_report", "best_report", "n_distinct", "wall_s"):
            m, sd = mean_std(s[k])
            row[k] = {"mean": m, "std": sd}
        rows.append(row)
    rows.sort(key=lambda r: (r["oracle"], r["algorithm"]))
    return rows


def stopped_summary(reasons: list[str | None]) -> dict[str, Any]:
    """How many runs the runner stopped because they could not go on, and why (runs of one
    cause counted together)."""
    from .metrics import _generic_reason
    why: dict[str, int] = {}
    for r in reasons:
        if r:
            key = _generic_reason(r)
            why[key] = why.get(key, 0) + 1
    return {"n": sum(why.values()), "reasons": why}


def stopped_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per cell with stopped runs: how many, why, and how they are counted."""
    out = []
    for r in rows:
        st = r.get("stopped") or {}
        if st.get("n"):
            why = "; ".join(f"{k} ({n})" if len(st["reasons"]) > 1 else k for k, n in st["reasons"].items())
            out.append(f"{r['oracle']} | {r['algorithm']}: {st['n']} of {r['runs']} run(s) stopped "
                       f"(could not go on; censored where they stopped): {why}")
    return out


def _fmt(x: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if x is None else f"{x * scale:.{digits}f}"


def format_text(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table; accuracies shown in percent."""
    head = ["oracle", "algorithm", "runs", "censored", "StO mean", "StO median", "StO IQR",
            "best search %", "its report %"]
    lines = []
    for r in rows:
        sto = r.get("samples_to_optimum")
        if sto and r["runs"]:
            mean = _fmt(sto["mean"]) + ("*" if sto["mean_is_restricted"] else "")
            q3 = _fmt(sto["q3"], digits=0) if sto["q3"] is not None else f">{r['budget']}"
            iqr = f">{r['budget']}" if sto["q1"] is None else f"{_fmt(sto['q1'], digits=0)}-{q3}"
            median = _fmt(sto["median"], digits=0) if sto["median"] is not None else f">{r['budget']}"
            n_st = (r.get("stopped") or {}).get("n", 0)
            cells = [str(sto["n_censored"]) + (f" ({n_st} stopped)" if n_st else ""), mean, median, iqr]
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
        notes.append("* mean restricted to the budget: a censored run counts as the budget (a stopped one: "
                     "where it stopped), a lower bound.")
    notes.append("best search = best search metric found within the budget; its report = report metric "
                 "of that architecture; mean ± std over runs.")
    return "\n".join(out + [""] + notes + stopped_notes(rows))


# --- every statistic, from records (``report --format json|md``) ---------------------------
#: fixed budgets of the final-quality table (CADAM Table 4.1 reports 500 and 1,000 queries;
#: 100 shows the early regime); each cell's own budget is always added
TABLE_BUDGETS = (100, 500, 1000)
#: x positions (samples) at which curve statistics are listed in the JSON report
CURVE_POINTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def table_budgets(rs: ResultSet, budgets: list[int] | None = None) -> list[int]:
    if budgets:
        return sorted(set(int(b) for b in budgets))
    top = max((c.budget for c in rs.cells), default=0)
    # a cell's own budget says nothing when every run stopped at the optimum before it
    ends = {c.budget for c in rs.cells if c.n_runs and not (c.until_optimum and not c.censored.any())}
    return sorted({b for b in TABLE_BUDGETS if b < top} | ends) or ([top] if top else [])


def quality_stats(values: np.ndarray, n_boot: int) -> dict[str, Any]:
    m, sd = mean_std(values)
    lo, hi = bootstrap_ci(values, "mean", n_boot=n_boot) if m is not None else (None, None)
    return {"mean": m, "std": sd, "mean_ci": [lo, hi], "n": int(np.sum(~np.isnan(values)))}


def ratio_rows(rs: ResultSet, n_boot: int) -> list[dict[str, Any]]:
    """Every pair of algorithms on an oracle, slower first: how many times more samples it
    needs (LaNAS §4.2 "22x fewer samples"), with bootstrap CIs and a Mann-Whitney U test."""
    rows = []
    for oracle in rs.oracle_names:
        cells = [c for c in rs.cells if c.oracle == oracle and c.until_optimum and c.n_runs]
        for i, first in enumerate(cells):
            for second in cells[i + 1:]:
                a, b = first, second
                tau = min(a.budget, b.budget)
                ta, ea = common_censoring(*censor_at(a.samples_to_optimum, a.censored, a.censor_times), tau)
                tb, eb = common_censoring(*censor_at(b.samples_to_optimum, b.censored, b.censor_times), tau)
                if ta.mean() < tb.mean():
                    a, b, ta, ea, tb, eb = b, a, tb, eb, ta, ea
                r = sample_ratios(ta, ea, tb, eb, n_boot=n_boot)
                test = censored_rank_test(ta, ea, tb, eb, "two-sided")
                rows.append({"oracle": oracle, "slower": a.label, "faster": b.label, "censored_at": tau,
                             "ratio_of_means": r["mean"].as_dict(), "ratio_of_medians": r["median"].as_dict(),
                             "mann_whitney": test.as_dict() if test else None})
    return rows


def statistics_report(rs: ResultSet, budgets: list[int] | None = None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """All statistics of a result set: per cell samples-to-optimum (KM quartiles, restricted
    mean, bootstrap CIs), quality at fixed budgets, curve statistics at CURVE_POINTS (folders
    only), and the pairwise sample ratios."""
    from .curves import cell_curve, regret_reference
    budgets = table_budgets(rs, budgets)
    cells = []
    for c in rs.cells:
        row: dict[str, Any] = {"oracle": c.oracle, "algorithm": c.label, "runs": c.n_runs,
                               "budget": c.budget, "until_optimum": c.until_optimum,
                               "seeds": c.seeds.tolist(),
                               "stopped": stopped_summary(c.stop_reasons)}
        if c.until_optimum and c.n_runs:
            row["samples_to_optimum"] = samples_to_optimum(c.samples_to_optimum, c.censored, c.censor_times,
                                                           n_boot=n_boot).as_dict()
        row["quality"] = {}
        for b in budgets:
            if b > c.budget or not c.n_runs:
                continue
            try:
                q = c.quality_at(b)
            except UserError:
                continue
            row["quality"][str(b)] = {k: quality_stats(v, n_boot) for k, v in q.items()}
        row["final"] = {k: quality_stats(v, n_boot) for k, v in c.final.items()} if c.n_runs else {}
        for k in ("best_search", "incumbent_report", "best_report"):
            row[k] = {"mean": row["final"].get(k, {}).get("mean"), "std": row["final"].get(k, {}).get("std")}
        if c.records is not None and c.n_runs:
            # the statistics on these points only (not the figures' dense grid): same numbers
            pts = np.unique(np.array([p for p in CURVE_POINTS if p <= c.budget] + [c.budget], dtype=np.int64))
            info = rs.oracles.get(c.oracle)
            row["curves"] = {}
            for metric in ("best_search", "incumbent_report"):
                row["curves"][metric] = cell_curve(c, metric, grid=pts, n_boot=n_boot).at(pts)
                ref = regret_reference(info, metric)
                if ref is not None:
                    row["curves"][f"{metric}_regret"] = cell_curve(c, metric, grid=pts, regret_to=ref,
                                                                   n_boot=n_boot).at(pts)
        cells.append(row)
    return {"source": rs.source, "kind": rs.kind, "budgets": budgets,
            "bootstrap": {"resamples": n_boot, "confidence": CONFIDENCE, "seed": BOOT_SEED},
            "oracles": {k: v.as_dict() for k, v in rs.oracles.items()},
            "machines": rs.machines, "cells": cells, "ratios": ratio_rows(rs, n_boot)}


# --- Markdown --------------------------------------------------------------------------------
def _pct(x, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _n(x, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _ci(ci, fmt=_n, beyond: str = "> budget") -> str:
    """`` [lo, hi]``; a ``None`` bound lies beyond what the runs show (``beyond``)."""
    if not ci or (ci[0] is None and ci[1] is None):
        return ""
    lo, hi = (beyond if x is None else fmt(x) for x in ci)
    return f" [{lo}, {hi}]"


def _sto_n(x) -> str:
    return "> budget" if x is None else _n(x)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def format_markdown(report: dict[str, Any], figures: dict[str, str] | None = None) -> str:
    """The report as Markdown: samples-to-optimum, ratios, the final-quality table (CADAM
    Table 4.1 layout) and the figures (``figures``: name -> relative path of the PNG)."""
    cells = report["cells"]
    pct = int(round(100 * report["bootstrap"]["confidence"]))
    lines = [f"# Results: `{report['source']}`", ""]
    if report.get("machines"):
        from .metrics import describe_machine
        lines += ["Runs computed on: " + "; ".join(describe_machine(m) for m in report["machines"]) + ".", ""]
    sto_cells = [c for c in cells if "samples_to_optimum" in c]
    if sto_cells:
        lines += ["## Samples to the global optimum", "",
                  f"Distinct architectures drawn up to and including the first global optimum (by the "
                  f"search metric). Median and quartiles by Kaplan-Meier; brackets: {pct}% percentile-"
                  f"bootstrap intervals ({report['bootstrap']['resamples']} resamples of the runs).", ""]
        rows = []
        for c in sto_cells:
            s = c["samples_to_optimum"]
            ci = s.get("ci", {})
            mean = _n(s["mean"]) + ("\\*" if s["mean_is_restricted"] else "")
            n_st = (c.get("stopped") or {}).get("n", 0)
            rows.append([c["oracle"], c["algorithm"], str(c["runs"]),
                         f"{s['n_censored']}" + (f" ({n_st} stopped)" if n_st else ""),
                         mean + _ci(ci.get("mean")), _sto_n(s["median"]) + _ci(ci.get("median")),
                         f"{_sto_n(s['q1'])} – {_sto_n(s['q3'])}",
                         f"{c['budget']:,}"])
        lines += _md_table(["oracle", "algorithm", "runs", "censored", "mean", "median", "IQR", "budget"], rows)
        if any(c["samples_to_optimum"]["mean_is_restricted"] for c in sto_cells):
            lines += ["", "\\* mean restricted to the budget: a censored run counts as the budget (a stopped "
                          "run: as far as it got), so this is a lower bound of the true mean."]
        lines.append("")
    stops = stopped_notes(cells)
    if stops:
        lines += ["## Stopped runs", "",
                  "Runs the runner stopped because they could not go on (for instance an algorithm that "
                  "only re-asked architectures it had seen). Each counts as censored at the number of "
                  "architectures it drew (its samples to the optimum are only known to be larger); its final "
                  "values stand for later budgets (nothing more would come).", ""]
        lines += [f"- {n}" for n in stops] + [""]
    if report["ratios"]:
        lines += ["## Sample ratios", "",
                  "How many times more samples the slower algorithm needs than the faster one; "
                  f"{pct}% bootstrap intervals; p: two-sided Mann-Whitney U test (Gehan's test when runs "
                  "are censored at the common budget; Gehan's generalised Wilcoxon test with Mantel's variance when a "
                  "stopped run is censored before it); A12: P(slower needs more samples).", ""]
        rows = []
        for r in report["ratios"]:
            rm, rd, t = r["ratio_of_means"], r["ratio_of_medians"], r["mann_whitney"]
            bound = {"lower": " (≥)", "upper": " (≤)", "unknown": " (?)"}.get(rm["bound"], "")
            fmt = lambda x: _n(x, 2)  # noqa: E731
            ratio = lambda v, b, lo, hi: "–" if v is None else f"{fmt(v)}×{b}" + _ci([lo, hi], fmt, "∞")  # noqa: E731
            rows.append([r["oracle"], f"{r['slower']} / {r['faster']}",
                         ratio(rm["value"], bound, rm["lo"], rm["hi"]),
                         ratio(rd["value"], {"lower": " (≥)", "upper": " (≤)"}.get(rd["bound"], ""), rd["lo"], rd["hi"]),
                         "–" if t is None else f"{t['p_value']:.2g}", "–" if t is None else f"{t['a12']:.2f}"])
        lines += _md_table(["oracle", "ratio", "of means", "of medians", "p", "A12"], rows)
        lines += ["", "(≥): a lower bound: for means, only the slower algorithm had censored runs "
                      "(restricted mean); for medians, the slower one's median lies beyond the budget. "
                      "(≤): an upper bound: the faster one's median lies beyond its budget. "
                      "(?): both had censored runs, so the ratio of restricted means has no known direction "
                      "of bias.", ""]
    oracles = sorted({c["oracle"] for c in cells})
    if cells:
        lines += ["## Final quality at fixed budgets", "",
                  "Search metric of the best architecture found (by the search metric) and the report "
                  "metric of that same architecture, in percent, mean ± std over runs (CADAM Table 4.1 "
                  "layout).", ""]
        head = ["algorithm", "budget"]
        for o in oracles:
            info = report["oracles"].get(o, {})
            head += [f"{o} {info.get('search_metric') or 'search'} [%]",
                     f"{o} {info.get('report_metric') or 'report'} [%]"]
        rows = []
        labels = sorted({c["algorithm"] for c in cells})
        for b in report["budgets"]:
            for lab in labels:
                row, any_value = [lab, f"{b:,}"], False
                for o in oracles:
                    c = next((x for x in cells if x["oracle"] == o and x["algorithm"] == lab), None)
                    q = (c or {}).get("quality", {}).get(str(b))
                    for k in ("best_search", "incumbent_report"):
                        if q and q[k]["mean"] is not None:
                            row.append(f"{_pct(q[k]['mean'])} ± {_pct(q[k]['std'])}")
                            any_value = True
                        else:
                            row.append("–")
                if any_value:
                    rows.append(row)
        opt_row = ["*optimal*", ""]
        for o in oracles:
            info = report["oracles"].get(o, {})
            opt_row += [f"*{_pct(info.get('optimum_search'))}*", f"*{_pct(info.get('best_report'))}*"]
        lines += _md_table(head, rows + [opt_row])
        lines += ["", "Optimal: best search value and best report value over the whole space (the latter "
                      "need not belong to the same architecture). A run that stopped at the global optimum "
                      "keeps its final values at larger budgets.", ""]
    if figures:
        lines += ["## Figures", ""]
        captions = {
            "fig5": ("Best search metric so far (median and interquartile range over seeds, top) and "
                     "samples to the global optimum (bottom), LaNAS Fig. 5 layout." if sto_cells else
                     "Best search metric so far (median and interquartile range over seeds)."),
            "regret": "Regret to the best value in the space: search metric (top) and report metric of "
                      "the best-by-search architecture (bottom).",
            "found_optimum": f"Fraction of runs that have drawn the global optimum after n samples, with a "
                             f"{pct}% bootstrap band.",
            "curves_mean": f"Mean best-so-far with {pct}% bootstrap confidence intervals.",
            "curves_time": "Best-so-far against the training time the table records for the architectures "
                           "sampled (what was measured, and where, is on the axis).",
        }
        for name, path in figures.items():
            lines += [f"![{name}]({path})", "", f"*{captions.get(name, name)}*", ""]
    return "\n".join(lines).rstrip() + "\n"
