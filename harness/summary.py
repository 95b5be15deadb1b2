"""Per-cell summaries of a results folder: the numbers ``nas-harness report`` prints.

:func:`summarise` reads run metadata only (fast; ``run`` and ``report`` text);
:func:`statistics_report` computes every statistic of :mod:`harness.statistics` from the
records (``report --format json`` and ``--format md``), and :func:`format_markdown` turns it
into a Markdown report: samples to the optimum, ratios between algorithms, the CADAM
Table 4.1-style final-quality table, the epochs and simulated time spent with the final
regret (runs with several fidelities or workers) and the figures. Both read the folder
through :func:`harness.metrics.load_folder`, the one loader.

Direction: values are each metric's own (the lowest perplexity found, for a minimised
one); accuracies (fractions) are printed in percent, other metrics as plain numbers
(:meth:`harness.metrics.OracleInfo.is_fraction`), and regrets are >= 0 for both directions.
Every estimate of the time section comes with its percentile-bootstrap interval (Agarwal
et al., Deep Reinforcement Learning at the Edge of the Statistical Precipice, NeurIPS 2021,
§4: report interval estimates, not point estimates alone).

Reference results (:func:`write_references`, :func:`read_references`): a results folder may
hold, in ``references.json``, results that are not search algorithms, each for one oracle: a
name, values of the oracle's search and report metrics (one per repetition, e.g. per
training seed) and their provenance (Minutoli & Ciranni, "Neural Architecture Search: An
Overview", §5.2, set every MLPNAS result against scikit-learn's ``MLPClassifier`` trained on
the same data). The reports print them in a block of their own (never as a cell of the
tables, so no statistic of the runs changes) and the figures draw them as horizontal lines
(:mod:`harness.figures`). A folder without the file reports exactly as before.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from oracles.errors import UserError

from .metrics import CellRuns, OracleInfo, ResultSet, load_folder
from .results import ResultsStore
from .statistics import (BOOT_SEED, CONFIDENCE, N_BOOT, bootstrap_ci, censor_at, censored_rank_test,
                         common_censoring, mean_std, sample_ratios, samples_to_optimum)


def _result_set(source: ResultsStore | ResultSet | str | os.PathLike, with_records: bool = False) -> ResultSet:
    if isinstance(source, ResultSet):
        return source
    return load_folder(source.root if isinstance(source, ResultsStore) else source, with_records=with_records)


def estimate(values: np.ndarray, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Mean and median of ``values`` over runs (NaN left out), each with its percentile-
    bootstrap interval, the std and the number of runs with a value."""
    v = np.asarray(values, dtype=np.float64)
    m, sd = mean_std(v)
    if m is None:
        return {"mean": None, "mean_ci": [None, None], "median": None, "median_ci": [None, None],
                "std": None, "n": 0}
    ok = v[~np.isnan(v)]
    return {"mean": m, "mean_ci": list(bootstrap_ci(ok, "mean", n_boot=n_boot)),
            "median": float(np.median(ok)), "median_ci": list(bootstrap_ci(ok, "median", n_boot=n_boot)),
            "std": sd, "n": int(len(ok))}


def final_regret(c: CellRuns, info: OracleInfo | None, n_boot: int = N_BOOT) -> dict[str, Any] | None:
    """Each run's regret at its end, at the top fidelity (search metric; report metric of the
    incumbent), with intervals; None when the optimum is unknown. A run that never evaluated
    at the top fidelity has no regret (left out, counted by ``n``)."""
    if info is None or info.optimum_search is None or not c.n_runs:
        return None
    return {k: estimate(info.regret(c.final[k], k), n_boot) for k in ("best_search", "incumbent_report")}


def spent(c: CellRuns, info: OracleInfo | None, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Training epochs paid and the simulated clock at each run's end, with intervals."""
    return {"epochs": estimate(c.spent("epochs"), n_boot), "clock": estimate(c.spent("clock"), n_boot),
            "clock_unit": info.clock_unit if info else None}


def summarise(source: ResultsStore | ResultSet | str | os.PathLike, n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """One row per (oracle, algorithm) cell, from run metadata only (no records read).

    ``source``: a results folder (path or :class:`~harness.results.ResultsStore`) or a
    :class:`~harness.metrics.ResultSet` already loaded. Rows of runs with several fidelities
    or workers (:meth:`~harness.metrics.ResultSet.time_axes`) also hold the epochs and
    simulated time spent and the final regret, with intervals (``n_boot`` resamples)."""
    rs = _result_set(source)
    rows = []
    for c in rs.cells:
        info = rs.oracles.get(c.oracle)
        summaries = c.summaries or []
        s = {k: np.array([r[k] if r.get(k) is not None else np.nan for r in summaries], dtype=np.float64)
             for k in ("best_search", "best_report", "incumbent_report", "n_distinct", "wall_s")}
        row = {"oracle": c.oracle, "algorithm": c.label, "runs": c.n_runs,
               "budget": c.config["budget"], "until_optimum": c.until_optimum,
               "stopped": stopped_summary(c.stop_reasons),
               "direction": info.direction if info else "max",
               "percent": {w: (info.is_fraction(w) if info else True) for w in ("search", "report")}}
        if c.budget_kind != "archs":
            row["budget_kind"] = c.budget_kind
        if c.until_optimum:
            # a stopped run is censored where it stopped (see harness.metrics.CellRuns.censor_times)
            row["samples_to_optimum"] = samples_to_optimum(c.samples_to_optimum, c.censored,
                                                           c.censor_times if c.n_runs else float(c.budget)).as_dict()
        for k in ("best_search", "incumbent_report", "best_report", "n_distinct", "wall_s"):
            m, sd = mean_std(s[k])
            row[k] = {"mean": m, "std": sd}
        if rs.time_axes(c.oracle) and c.n_runs:
            row["spent"] = spent(c, info, n_boot)
            row["final_regret"] = final_regret(c, info, n_boot)
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


def decimals(x: float | None, significant: int = 4) -> int:
    """Decimals that show ``x`` with about ``significant`` significant digits (0 to 6)."""
    if x is None or not np.isfinite(x) or x == 0:
        return 2
    return int(min(6, max(0, significant - 1 - np.floor(np.log10(abs(x))))))


def _quality(stat: dict[str, Any], percent: bool) -> str:
    """``mean ± std``: accuracies in percent (two decimals), any other metric as a plain
    number (about four significant digits, the std with the mean's decimals)."""
    if percent:
        return f"{_fmt(stat['mean'], 100, 2)} ± {_fmt(stat['std'], 100, 2)}"
    d = decimals(stat["mean"])
    return f"{_fmt(stat['mean'], 1, d)} ± {_fmt(stat['std'], 1, d)}"


def _est(e: dict[str, Any] | None, scale: float = 1.0, digits: int | None = None, stat: str = "mean") -> str:
    """``value [lo, hi]`` of an :func:`estimate`; ``-`` where there is none."""
    if not e or e.get(stat) is None:
        return "-"
    d = decimals(e[stat] * scale) if digits is None else digits
    lo, hi = e[f"{stat}_ci"]
    ci = "" if lo is None or hi is None else f" [{lo * scale:,.{d}f}, {hi * scale:,.{d}f}]"
    return f"{e[stat] * scale:,.{d}f}{ci}"


def direction_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line naming the minimised oracles (their best values are the lowest)."""
    low = sorted({r["oracle"] for r in rows if r.get("direction") == "min"})
    return [f"minimised (lower is better; best = lowest value found, regret = best - optimum): {', '.join(low)}"] \
        if low else []


def format_text(rows: list[dict[str, Any]], notes: list[str] | None = None) -> str:
    """A fixed-width table; accuracies in percent, other metrics (perplexity, loss) as plain
    numbers. Rows of runs with several fidelities or workers add the epochs paid, the
    simulated time and the final regret (mean and 95% bootstrap interval). ``notes``: more
    lines under the table."""
    all_pct = all(r.get("percent", {}).get(w, True) for r in rows for w in ("search", "report"))
    unit = " %" if all_pct else ""
    head = ["oracle", "algorithm", "runs", "censored", "StO mean", "StO median", "StO IQR",
            f"best search{unit}", f"its report{unit}"]
    timed = any("spent" in r for r in rows)
    if timed:
        head += ["epochs paid", "simulated time", "final regret"]
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
        pct = r.get("percent", {"search": True, "report": True})
        qual = [_quality(r["best_search"], pct["search"]) + ("" if all_pct or not pct["search"] else " %"),
                _quality(r["incumbent_report"], pct["report"]) + ("" if all_pct or not pct["report"] else " %")]
        line = [r["oracle"], r["algorithm"], str(r["runs"]), *cells, *qual]
        if timed:
            if "spent" in r:
                sp, reg = r["spent"], (r.get("final_regret") or {}).get("best_search")
                line += [_est(sp["epochs"], digits=0), _est(sp["clock"], digits=0 if sp["clock_unit"] != "seconds"
                                                            else None) + (f" {sp['clock_unit']}" if sp["clock_unit"]
                                                                          and sp["clock"]["mean"] is not None else ""),
                         _est(reg, 100.0 if pct["search"] else 1.0, 2 if pct["search"] else None)
                         + (" pp" if pct["search"] and reg and reg["mean"] is not None else "")]
            else:
                line += ["-", "-", "-"]
        lines.append(line)
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(l, widths)) for l in lines]
    notes_out = ["StO = samples to the global optimum (distinct architectures, counting the optimum); "
                 "median and quartiles by Kaplan-Meier."]
    if any(r.get("samples_to_optimum", {}) and r["samples_to_optimum"]["mean_is_restricted"] for r in rows):
        notes_out.append("* mean restricted to the budget: a censored run counts as the budget (a stopped one: "
                         "where it stopped), a lower bound.")
    notes_out.append("best search = best search metric found within the budget; its report = report metric "
                     "of that architecture; mean ± std over runs.")
    if timed:
        notes_out.append("epochs paid, simulated time (the clock of the run's workers) and final regret of the "
                         "search metric at the top fidelity: mean [95% bootstrap interval] over runs.")
    return "\n".join(out + [""] + notes_out + direction_notes(rows) + stopped_notes(rows) + list(notes or []))


# --- reference results ---------------------------------------------------------------------
#: the file of a results folder that holds its reference results
REFERENCES_FILE = "references.json"
REFERENCES_FORMAT = 1


def reference_entry(oracle: str, name: str, search, report, provenance: dict[str, Any] | None = None,
                    note: str = "") -> dict[str, Any]:
    """One reference result: not a search algorithm, but a result the runs on ``oracle`` are
    set against (a hand-designed network, a library's default model trained on the same
    split).

    ``oracle``: the oracle's name as the folder's cells spell it (its metrics, units and
    direction are that oracle's). ``name``: what the reference is, in words (the row's and
    the figure line's label). ``search`` / ``report``: its value(s) of the oracle's search
    and report metrics, a number or one per repetition (e.g. per training seed); None or NaN
    where it has none. ``provenance``: how it was obtained (code, version, parameters, data),
    JSON-able, printed in the JSON report. ``note``: one line for the Markdown report."""
    def values(v) -> list[float | None]:
        v = [] if v is None else [v] if np.isscalar(v) else list(v)
        out = [None if x is None or not np.isfinite(float(x)) else float(x) for x in v]
        return out
    if not oracle or not name:
        raise UserError("a reference result needs an oracle and a name")
    s, r = values(search), values(report)
    if not any(x is not None for x in s + r):
        raise UserError(f"reference {name!r} on {oracle}: no value of the search or report metric")
    return {"oracle": str(oracle), "name": str(name), "search": s, "report": r,
            "provenance": dict(provenance or {}), "note": str(note)}


def read_references(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The reference results a results folder holds (:data:`REFERENCES_FILE`), in the order
    written; [] when it has none (or ``folder`` is a baseline file or no folder at all)."""
    import json
    from pathlib import Path
    p = Path(folder) / REFERENCES_FILE
    if not Path(folder).is_dir() or not p.is_file():
        return []
    try:
        data = json.loads(p.read_text())
        return [reference_entry(e["oracle"], e["name"], e.get("search"), e.get("report"), e.get("provenance"),
                                e.get("note", "")) for e in data["references"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{p} is not a references file ({exc}); write it with "
                        "harness.summary.write_references") from None


def write_references(folder: str | os.PathLike, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``entries`` (:func:`reference_entry`) to the results folder ``folder``, replacing
    any entry of the same oracle and name (atomically: a reader sees the old file or the new
    one); returns every reference the folder now holds."""
    import json
    from pathlib import Path

    from .files import atomic_write_bytes
    entries = [reference_entry(e["oracle"], e["name"], e.get("search"), e.get("report"), e.get("provenance"),
                               e.get("note", "")) for e in entries]
    new = {(e["oracle"], e["name"]) for e in entries}
    refs = [e for e in read_references(folder) if (e["oracle"], e["name"]) not in new] + entries
    body = json.dumps({"format": REFERENCES_FORMAT, "references": refs}, indent=1).encode() + b"\n"
    atomic_write_bytes(Path(folder) / REFERENCES_FILE, lambda fh: fh.write(body))
    return refs


def write_oracle_references(folder: str | os.PathLike, oracles: dict[str, Any], warn=None) -> list[dict[str, Any]]:
    """Write the reference results of ``oracles`` (the folder's oracle names as its cells
    spell them -> the oracle objects) that results folder ``folder`` does not hold yet: what
    each oracle's :meth:`~oracles.oracle.Oracle.references` returns, named after its cell
    spelling. An oracle with any reference in the folder is not asked again, so a second
    ``nas-harness run`` into the folder trains nothing. A reference is a nicety, never a
    reason to fail a run: an oracle whose references fail (or a damaged references file) is
    one line to ``warn`` (default: ``nas-harness: warning: ...`` on stderr); Ctrl-C still
    stops. Returns the entries written."""
    import sys
    if warn is None:
        def warn(line: str) -> None:
            print(f"nas-harness: warning: {line}", file=sys.stderr)
    try:
        have = {e["oracle"] for e in read_references(folder)}
    except UserError as exc:
        warn(f"reference results not written: {exc}")
        return []
    written: list[dict[str, Any]] = []
    for spec, oracle in oracles.items():
        if spec in have:
            continue
        try:
            entries = [{**e, "oracle": spec} for e in oracle.references()]
            if entries:
                write_references(folder, entries)
                written += entries
        except Exception as exc:  # noqa: BLE001 -- a reference never fails the runs
            why = " ".join(str(exc).split())     # one line, whatever the message
            warn(f"the reference results of {spec} were not written ({type(exc).__name__}: {why}); "
                 "the runs are unaffected, the next run into this folder tries again")
    return written


def references_of(source) -> list[dict[str, Any]]:
    """The reference results of a results folder (a :class:`~harness.metrics.ResultSet` read
    from one, or its path); a baseline file has none."""
    if isinstance(source, ResultSet):
        return read_references(source.source) if source.kind == "folder" else []
    return read_references(source)


def reference_summary(entry: dict[str, Any], n_boot: int = N_BOOT) -> dict[str, Any]:
    """A reference's values summarised as the runs are (:func:`estimate`: mean and median
    with bootstrap intervals, std, n), plus their range, per metric (``search``, ``report``)."""
    out = {k: entry[k] for k in ("oracle", "name", "provenance", "note")}
    for which in ("search", "report"):
        v = np.array([np.nan if x is None else x for x in entry[which]], dtype=np.float64)
        e = estimate(v, n_boot)
        ok = v[~np.isnan(v)]
        e.update(values=entry[which], min=float(ok.min()) if len(ok) else None,
                 max=float(ok.max()) if len(ok) else None)
        out[which] = e
    return out


def _ref_value(e: dict[str, Any], percent: bool) -> str:
    """``median [min, max] (n)`` of one summarised metric; ``value`` alone for one repetition."""
    if e["median"] is None:
        return "–"
    fmt = (lambda x: f"{100 * x:.2f}") if percent else (lambda x: f"{x:,.{decimals(x)}f}")
    if e["n"] == 1:
        return fmt(e["median"])
    return f"{fmt(e['median'])} [{fmt(e['min'])}, {fmt(e['max'])}] (n={e['n']})"


def reference_notes(refs: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None) -> list[str]:
    """One line per reference result (``refs``: :func:`reference_summary` outputs) for the
    text report; ``rows`` (:func:`summarise`'s) say which metrics are accuracies."""
    pct = {r["oracle"]: r.get("percent", {}) for r in rows or []}
    out = []
    for e in refs:
        p = {w: pct.get(e["oracle"], {}).get(w, True) for w in ("search", "report")}
        out.append(f"reference on {e['oracle']}: {e['name']}: search {_ref_value(e['search'], p['search'])}"
                   + (" %" if p["search"] and e["search"]["n"] else "")
                   + f", report {_ref_value(e['report'], p['report'])}" + (" %" if p["report"] and e["report"]["n"] else "")
                   + (" (median [min, max] over repetitions)" if max(e["search"]["n"], e["report"]["n"]) > 1 else ""))
    return out


# --- every statistic, from records (``report --format json|md``) ---------------------------
#: fixed budgets of the final-quality table (CADAM Table 4.1 reports 500 and 1,000 queries;
#: 100 shows the early regime); each cell's own budget is always added
TABLE_BUDGETS = (100, 500, 1000)
#: x positions (samples) at which curve statistics are listed in the JSON report
CURVE_POINTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def table_budgets(rs: ResultSet, budgets: list[int] | None = None) -> list[int]:
    """The sample counts of the final-quality table: ``budgets`` if given, else
    :data:`TABLE_BUDGETS` below the largest sample budget and each cell's own budget where
    it counts architectures (an epoch or time budget is not a number of samples; those
    cells' final values are in the time section)."""
    if budgets:
        return sorted(set(int(b) for b in budgets))
    top = max((c.sample_budget for c in rs.cells if c.budget_kind == "archs"), default=0)
    # a cell's own budget says nothing when every run stopped at the optimum before it
    ends = {c.budget for c in rs.cells if c.n_runs and c.budget_kind == "archs"
            and not (c.until_optimum and not c.censored.any())}
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
    mean, bootstrap CIs), quality at fixed budgets, the final regret (mean and median with
    intervals), curve statistics at CURVE_POINTS samples (folders only), and the pairwise
    sample ratios. Cells of runs with several fidelities or workers add ``spent`` (epochs
    paid and simulated clock at the end, with intervals) and regret curves against epochs
    (``curves_epochs``) and the clock (``curves_clock``) at 1-2-5 points of their grids.
    ``budgets``: sample counts of the quality table (default :func:`table_budgets`);
    ``n_boot``: bootstrap resamples (default :data:`harness.statistics.N_BOOT`)."""
    from .curves import axis_grid, cell_curve, regret_reference
    budgets = table_budgets(rs, budgets)
    grids: dict[tuple[str, str], Any] = {}
    cells = []
    for c in rs.cells:
        row: dict[str, Any] = {"oracle": c.oracle, "algorithm": c.label, "runs": c.n_runs,
                               "budget": c.budget, "until_optimum": c.until_optimum,
                               "seeds": c.seeds.tolist(),
                               "stopped": stopped_summary(c.stop_reasons),
                               "budget_kind": c.budget_kind, "workers_per_run": c.workers_per_run}
        if c.until_optimum and c.n_runs:
            row["samples_to_optimum"] = samples_to_optimum(c.samples_to_optimum, c.censored, c.censor_times,
                                                           n_boot=n_boot).as_dict()
        info = rs.oracles.get(c.oracle)
        row["direction"] = info.direction if info else "max"
        row["quality"] = {}
        for b in budgets:
            if b > c.sample_budget or not c.n_runs:
                continue
            try:
                q = c.quality_at(b)
            except UserError:
                continue
            row["quality"][str(b)] = {k: quality_stats(v, n_boot) for k, v in q.items()}
        row["final"] = {k: quality_stats(v, n_boot) for k, v in c.final.items()} if c.n_runs else {}
        for k in ("best_search", "incumbent_report", "best_report"):
            row[k] = {"mean": row["final"].get(k, {}).get("mean"), "std": row["final"].get(k, {}).get("std")}
        direction = row["direction"]
        regret = final_regret(c, info, n_boot)
        if regret is not None:
            row["final_regret"] = regret
        axes = rs.time_axes(c.oracle)
        if axes and c.n_runs:
            row["spent"] = spent(c, info, n_boot)
        if c.records is not None and c.n_runs:
            # the statistics on these points only (not the figures' dense grid): same numbers
            sb = c.sample_budget
            pts = np.unique(np.array([p for p in CURVE_POINTS if p <= sb] + [sb], dtype=np.int64))
            row["curves"] = {}
            for metric in ("best_search", "incumbent_report"):
                row["curves"][metric] = cell_curve(c, metric, grid=pts, n_boot=n_boot, direction=direction).at(pts)
                ref = regret_reference(info, metric)
                if ref is not None:
                    row["curves"][f"{metric}_regret"] = cell_curve(c, metric, grid=pts, regret_to=ref, n_boot=n_boot,
                                                                   direction=direction).at(pts)
            for axis in axes:
                grid = grids.setdefault((c.oracle, axis), axis_grid([x for x in rs.cells if x.oracle == c.oracle],
                                                                    axis))
                if grid is None:
                    continue
                # 1-2-5 points inside the common grid, and its ends
                pts = np.unique(np.r_[[x for x in _one_two_five(grid[-1]) if grid[0] <= x <= grid[-1]],
                                      grid[0], grid[-1]])
                unit = (info.clock_unit if info else None) if axis == "clock" else None
                cv = {}
                for metric in ("best_search", "incumbent_report"):
                    ref = regret_reference(info, metric)
                    key = metric if ref is None else f"{metric}_regret"
                    cv[key] = cell_curve(c, metric, axis, pts, ref, n_boot, direction, unit).at(pts)
                row[f"curves_{axis}"] = cv
        cells.append(row)
    out = {"source": rs.source, "kind": rs.kind, "budgets": budgets,
           "bootstrap": {"resamples": n_boot, "confidence": CONFIDENCE, "seed": BOOT_SEED},
           "oracles": {k: v.as_dict() for k, v in rs.oracles.items()},
           "machines": rs.machines, "cells": cells, "ratios": ratio_rows(rs, n_boot),
           "notes": [n for n in (rs.facts_note(),) if n]}
    refs = references_of(rs)
    if refs:  # only then: a folder without references reports exactly as before
        out["references"] = [reference_summary(e, n_boot) for e in refs]
    return out


def _one_two_five(top: float) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to ``top``."""
    out, base = [], 1.0
    while base <= top:
        out += [m * base for m in (1, 2, 5) if m * base <= top]
        base *= 10
    return out


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
    infos = {o: OracleInfo.from_dict(report["oracles"][o]) if o in report["oracles"] else None for o in oracles}
    is_pct = {o: {w: (infos[o].is_fraction(w) if infos[o] else True) for w in ("search", "report")} for o in oracles}

    def value(x, o, which, digits=None):
        if x is None:
            return "–"
        return _pct(x) if is_pct[o][which] else f"{x:,.{decimals(x) if digits is None else digits}f}"

    if cells:
        n_pct = sum(is_pct[o][w] for o in oracles for w in ("search", "report"))
        units = ("in percent" if n_pct == 2 * len(oracles) else "in the metrics' own units" if n_pct == 0
                 else "accuracies in percent, other metrics in their own units")
        lines += ["## Final quality at fixed budgets", "",
                  "Search metric of the best architecture found (by the search metric) and the report "
                  f"metric of that same architecture, {units}"
                  + ", mean ± std over runs (CADAM Table 4.1 layout); a minimised metric's best is the lowest "
                    "value found.", ""]
        head = ["algorithm", "budget"]
        for o in oracles:
            info = report["oracles"].get(o, {})
            low = " (lower is better)" if info.get("direction") == "min" else ""
            head += [f"{o} {info.get('search_metric') or 'search'}{' [%]' if is_pct[o]['search'] else ''}{low}",
                     f"{o} {info.get('report_metric') or 'report'}{' [%]' if is_pct[o]['report'] else ''}{low}"]
        rows = []
        labels = sorted({c["algorithm"] for c in cells})
        for b in report["budgets"]:
            for lab in labels:
                row, any_value = [lab, f"{b:,}"], False
                for o in oracles:
                    c = next((x for x in cells if x["oracle"] == o and x["algorithm"] == lab), None)
                    q = (c or {}).get("quality", {}).get(str(b))
                    for k, which in (("best_search", "search"), ("incumbent_report", "report")):
                        if q and q[k]["mean"] is not None:
                            d = None if is_pct[o][which] else decimals(q[k]["mean"])
                            row.append(f"{value(q[k]['mean'], o, which, d)} ± {value(q[k]['std'], o, which, d)}")
                            any_value = True
                        else:
                            row.append("–")
                if any_value:
                    rows.append(row)
        # cells whose budget is not a number of samples: their values at the end of the runs
        for lab in labels:
            for kind_budget in sorted({(x["budget_kind"], x["budget"]) for x in cells
                                       if x["algorithm"] == lab and x.get("budget_kind", "archs") != "archs"
                                       and x.get("final")}):
                kind, budget = kind_budget
                row = [lab, f"{budget:,} {kind} (end)"]
                for o in oracles:
                    c = next((x for x in cells if x["oracle"] == o and x["algorithm"] == lab
                              and (x.get("budget_kind"), x["budget"]) == kind_budget), None)
                    q = (c or {}).get("final")
                    for k, which in (("best_search", "search"), ("incumbent_report", "report")):
                        if q and q[k]["mean"] is not None:
                            d = None if is_pct[o][which] else decimals(q[k]["mean"])
                            row.append(f"{value(q[k]['mean'], o, which, d)} ± {value(q[k]['std'], o, which, d)}")
                        else:
                            row.append("–")
                rows.append(row)
        opt_row = ["*optimal*", ""]
        for o in oracles:
            info = report["oracles"].get(o, {})
            opt_row += [f"*{value(info.get('optimum_search'), o, 'search')}*",
                        f"*{value(info.get('best_report'), o, 'report')}*"]
        lines += _md_table(head, rows + [opt_row])
        lines += ["", "Optimal: best search value and best report value over the whole space (the latter "
                      "need not belong to the same architecture). A run that stopped at the global optimum "
                      "keeps its final values at larger budgets.", ""]
    if report.get("references"):
        lines += ["## Reference results", "",
                  "Results that are not search algorithms, set beside the runs on the same oracle (same data "
                  "and split): the search and report metrics, median [min, max] over n repetitions "
                  "(e.g. training seeds); a single value where there is one.", ""]
        rows = []
        for e in report["references"]:
            o = e["oracle"]
            p = {w: (infos[o].is_fraction(w) if infos.get(o) else True) for w in ("search", "report")}
            info = report["oracles"].get(o, {})
            rows.append([o, e["name"], f"{info.get('search_metric') or 'search'}"
                         f"{' [%]' if p['search'] else ''}: {_ref_value(e['search'], p['search'])}",
                         f"{info.get('report_metric') or 'report'}{' [%]' if p['report'] else ''}: "
                         f"{_ref_value(e['report'], p['report'])}", e.get("note") or "–"])
        lines += _md_table(["oracle", "reference", "search metric", "report metric", "how obtained"], rows)
        lines.append("")
    timed = [c for c in cells if "spent" in c]
    if timed:
        lines += ["## Epochs, simulated time and final regret", "",
                  "Runs with several fidelities, several simulated workers or a budget in epochs or time: "
                  "the training epochs paid, the simulated clock of the run's workers at its end, and the "
                  "regret of the best architecture found at the top fidelity (search metric; report metric "
                  "of that architecture) at the end of the run. Regret = optimum - best for a maximised "
                  "metric, best - optimum for a minimised one (pp: percentage points of accuracy). Mean "
                  f"and median over runs, each with its {pct}% percentile-bootstrap interval "
                  f"({report['bootstrap']['resamples']} resamples of the runs); n: runs with a top-fidelity "
                  "result.", ""]
        rows = []
        for c in timed:
            o = c["oracle"]
            sp, reg = c["spent"], c.get("final_regret") or {}
            unit = sp.get("clock_unit") or "units"
            k = {w: (100.0 if is_pct[o][w] else 1.0) for w in ("search", "report")}
            d = {w: (2 if is_pct[o][w] else None) for w in ("search", "report")}
            rs_, rr = reg.get("best_search"), reg.get("incumbent_report")
            rows.append([o, c["algorithm"], str(c["runs"]), _est(sp["epochs"], digits=0),
                         _est(sp["clock"], digits=0 if unit != "seconds" else None) + f" {unit}",
                         _est(rs_, k["search"], d["search"]), _est(rs_, k["search"], d["search"], "median"),
                         _est(rr, k["report"], d["report"]), _est(rr, k["report"], d["report"], "median"),
                         str((rs_ or {}).get("n", "–"))])
        units = {o: ("pp" if is_pct[o]["search"] else "") for o in oracles}
        u = set(units[c["oracle"]] for c in timed)
        ru = f" [{u.pop()}]" if len(u) == 1 and "pp" in u else ""
        lines += _md_table(["oracle", "algorithm", "runs", "epochs paid (mean)", "simulated time (mean)",
                            f"regret search{ru} (mean)", f"regret search{ru} (median)",
                            f"regret report{ru} (mean)", f"regret report{ru} (median)", "n"], rows)
        lines.append("")
    notes = list(report.get("notes") or []) + direction_notes(cells)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
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
            "regret_epochs": "Regret at the top fidelity against the training epochs paid (summed over the "
                             "trials), median and interquartile range over seeds: search metric (top) and "
                             "report metric of the best-by-search architecture (bottom).",
            "regret_clock": "Regret at the top fidelity against the simulated clock of each run's workers, "
                            "median and interquartile range over seeds.",
        }
        for name, path in figures.items():
            lines += [f"![{name}]({path})", "", f"*{captions.get(name, name)}*", ""]
    return "\n".join(lines).rstrip() + "\n"
