"""Metrics extracted from a results folder (or a compact baseline file), per cell and run.

This is the only module of the statistics/figures stack that reads files: statistics
(:mod:`harness.statistics`) works on arrays, figures (:mod:`harness.figures`) on what this
module and :mod:`harness.curves` return, as rliable keeps its library, metrics and plots apart.

Two sources give the same :class:`ResultSet`:

* a **results folder** written by ``nas-harness run`` (every run's records; curves at any
  sample count);
* a **baseline file** (``nas-harness baseline DIR FILE``): per run only the seed,
  samples-to-optimum, censoring and the quality of the incumbent at fixed checkpoints, plus
  each cell's full configuration and the oracle's optimum. A few kB instead of the records'
  MBs, so it can be committed (``results/baselines/``) and used by ``nas-harness compare``.

Quality at ``n`` samples is read off the records at the last query with ``n_distinct <= n``.
A run that stopped at the global optimum (``--until-optimum``) before ``n`` keeps its final
values: continuing could not raise the best search value past the optimum, and the
incumbent is the *first* architecture attaining the best value, so nothing would change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from oracles.errors import UserError

from .results import ResultsStore, _atomic_write_bytes, code_version

BASELINE_FORMAT = "nas-harness-baseline/1"

#: the quality metrics read off the records: best search metric so far, report metric of
#: the best-by-search architecture (the number NB201 tables quote, CADAM Table 4.1), and the
#: best report metric seen (an oracle-peeking upper bound, shown only in the JSON)
QUALITY = ("best_search", "incumbent_report", "best_report")

#: record columns a curve needs
CURVE_COLUMNS = ("n_distinct", "best_search", "incumbent_report", "best_report", "cum_cost")


def checkpoints_for(budget: int) -> list[int]:
    """1-2-5 checkpoints up to the budget, plus the budget (what a baseline file keeps)."""
    out, base = [], 1
    while base <= budget:
        out += [m * base for m in (1, 2, 5) if 10 <= m * base < budget]
        base *= 10
    return sorted(set(out) | {int(budget)})


@dataclass
class OracleInfo:
    """What the statistics need to know about an oracle (its optimum) and its data."""

    name: str
    checksum: str
    optimum_search: float | None = None       #: best search metric over the space
    optimum_report: float | None = None       #: report metric of that architecture
    best_report: float | None = None          #: best report metric over the space
    search_metric: str | None = None
    report_metric: str | None = None
    cost_metric: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class CellRuns:
    """All finished runs of one (algorithm label, oracle) cell, as arrays over runs."""

    oracle: str
    label: str
    config: dict[str, Any]
    seeds: np.ndarray
    samples_to_optimum: np.ndarray            #: NaN where the run never drew the optimum
    censored: np.ndarray
    final: dict[str, np.ndarray]              #: QUALITY metrics at the end of each run
    total_cost: np.ndarray                    #: simulated training seconds (NaN: unknown)
    records: list[dict[str, np.ndarray]] | None = None
    checkpoints: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.oracle, self.label

    @property
    def algorithm(self) -> str:
        return self.config["algorithm"]

    @property
    def budget(self) -> int:
        return int(self.config["budget"])

    @property
    def until_optimum(self) -> bool:
        return bool(self.config.get("until_optimum"))

    @property
    def n_runs(self) -> int:
        return len(self.seeds)

    @property
    def has_cost(self) -> bool:
        return bool(self.n_runs) and not np.isnan(self.total_cost).any() and bool((self.total_cost > 0).any())

    def quality_at(self, n: int) -> dict[str, np.ndarray]:
        """QUALITY metrics of every run after ``n`` distinct samples (NaN: run ended earlier
        without reaching the optimum, e.g. it exhausted the space)."""
        n = int(n)
        if n > self.budget:
            raise UserError(f"{self.oracle} | {self.label}: {n} samples is past the budget ({self.budget})")
        if self.records is None:
            if n not in self.checkpoints:
                have = ", ".join(str(k) for k in sorted(self.checkpoints))
                raise UserError(f"{self.oracle} | {self.label}: the baseline file keeps quality at "
                                f"{have} samples only, not {n}")
            return self.checkpoints[n]
        out = {k: np.full(self.n_runs, np.nan) for k in QUALITY}
        for i, rec in enumerate(self.records):
            nd = rec["n_distinct"]
            j = int(np.searchsorted(nd, n, side="right")) - 1
            if j < 0:
                continue
            if nd[j] < n and not (self.until_optimum and not self.censored[i]):
                continue
            for k in QUALITY:
                out[k][i] = rec[k][j]
        return out


@dataclass
class ResultSet:
    source: str
    kind: str                                  #: "folder" or "baseline"
    cells: list[CellRuns]
    oracles: dict[str, OracleInfo]

    def cell(self, oracle: str, label: str) -> CellRuns | None:
        return next((c for c in self.cells if c.oracle == oracle and c.label == label), None)

    @property
    def oracle_names(self) -> list[str]:
        return sorted({c.oracle for c in self.cells})

    @property
    def labels(self) -> list[str]:
        return sorted({c.label for c in self.cells})


# --- reading ------------------------------------------------------------------------------
def oracle_info(name: str, checksum: str) -> OracleInfo:
    """The oracle's optimum, if its data is installed and is the data the runs used."""
    info = OracleInfo(name=name, checksum=checksum)
    try:
        from oracles.registry import load_oracle
        oracle = load_oracle(name)
    except (UserError, OSError, ValueError, KeyError):
        return info
    if oracle.checksum != checksum:
        return info
    opt = oracle.optimum
    info.optimum_search, info.optimum_report = float(opt.value), float(opt.report)
    report = getattr(oracle, "report_values", None)
    if report is not None:
        info.best_report = float(np.nanmax(report))
    info.search_metric = getattr(oracle, "search_metric", None)
    info.report_metric = getattr(oracle, "report_metric", None)
    info.cost_metric = getattr(oracle, "cost_metric", None)
    return info


def _f(x) -> float:
    return np.nan if x is None else float(x)


def load_folder(path: str | os.PathLike, with_records: bool = True, optima: bool = True) -> ResultSet:
    store = ResultsStore(path)
    if not store.manifest_path.is_file():
        raise UserError(f"{path} is not a results folder (no experiment.json)")
    by_cell: dict[str, dict[str, list]] = {}
    cells = {c.key: c for c in store.cells()}
    for cell, meta, table in store.iter_runs(with_records=with_records):
        d = by_cell.setdefault(cell.key, {"meta": [], "records": []})
        d["meta"].append(meta)
        if table is not None:
            cols = {k: table.column(k).to_numpy(zero_copy_only=False) for k in CURVE_COLUMNS
                    if k in table.column_names}
            cols = {k: np.asarray(v, dtype=np.float64 if k != "n_distinct" else np.int64)
                    for k, v in cols.items()}
            if "cum_cost" not in cols:
                cols["cum_cost"] = np.full(len(cols["n_distinct"]), np.nan)
            d["records"].append(cols)
    out = []
    for key, cell in cells.items():
        d = by_cell.get(key, {"meta": [], "records": []})
        s = [m["summary"] for m in d["meta"]]
        out.append(CellRuns(
            oracle=cell.oracle, label=cell.label, config=cell.config,
            seeds=np.array([m["seed"] for m in d["meta"]], dtype=np.int64),
            samples_to_optimum=np.array([_f(r["samples_to_optimum"]) for r in s], dtype=np.float64),
            censored=np.array([bool(r["censored"]) for r in s], dtype=bool),
            final={k: np.array([_f(r[k]) for r in s], dtype=np.float64) for k in QUALITY},
            total_cost=np.array([_f(r.get("total_cost")) for r in s], dtype=np.float64),
            records=d["records"] if with_records else None))
    out.sort(key=lambda c: (c.oracle, c.label))
    infos = {}
    for c in out:
        if c.oracle not in infos:
            chk = str(c.config.get("oracle_checksum", ""))
            infos[c.oracle] = oracle_info(c.oracle, chk) if optima else OracleInfo(c.oracle, chk)
    return ResultSet(str(path), "folder", out, infos)


def load(path: str | os.PathLike, with_records: bool = True) -> ResultSet:
    """A results folder or a baseline file, whichever ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return load_folder(p, with_records=with_records)
    if p.is_file():
        return load_baseline(p)
    raise UserError(f"{path} does not exist (expected a results folder or a baseline .json file)")


# --- compact baseline files -----------------------------------------------------------------
def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def baseline_dict(rs: ResultSet, checkpoints: Iterable[int] | None = None) -> dict[str, Any]:
    cells = []
    for c in rs.cells:
        cps = [n for n in (checkpoints or checkpoints_for(c.budget)) if n <= c.budget]
        q = {str(n): {k: [_num(x) for x in v] for k, v in c.quality_at(n).items()} for n in cps}
        cells.append({
            "oracle": c.oracle, "label": c.label, "config": c.config,
            "runs": {"seed": c.seeds.tolist(),
                     "samples_to_optimum": [_num(x) for x in c.samples_to_optimum],
                     "censored": c.censored.tolist(),
                     "final": {k: [_num(x) for x in v] for k, v in c.final.items()},
                     "total_cost": [_num(x) for x in c.total_cost]},
            "checkpoints": q})
    return {"format": BASELINE_FORMAT, "source": rs.source,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code": code_version(), "oracles": {k: v.as_dict() for k, v in rs.oracles.items()},
            "cells": cells}


def save_baseline(rs: ResultSet, path: str | os.PathLike, checkpoints: Iterable[int] | None = None) -> Path:
    path = Path(path)
    # one line per cell: compact (no indentation of the per-run lists) yet diffable by cell
    data = baseline_dict(rs, checkpoints)
    cells = data.pop("cells")
    head = json.dumps(data, sort_keys=True, separators=(",", ":"))
    body = ",\n".join(json.dumps(c, sort_keys=True, separators=(",", ":")) for c in cells)
    text = head[:-1] + ',"cells":[\n' + body + "\n]}\n"
    try:
        _atomic_write_bytes(path, lambda fh: fh.write(text.encode()))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # a file to share and commit, not a private temporary
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _arr(values, dtype=np.float64) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=dtype)


def load_baseline(path: str | os.PathLike) -> ResultSet:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is neither a results folder nor a readable baseline file") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise UserError(f"{path} is not a nas-harness baseline file (format {BASELINE_FORMAT})")
    cells = []
    try:
        for c in data["cells"]:
            r = c["runs"]
            cells.append(CellRuns(
                oracle=c["oracle"], label=c["label"], config=c["config"],
                seeds=np.array(r["seed"], dtype=np.int64),
                samples_to_optimum=_arr(r["samples_to_optimum"]),
                censored=np.array(r["censored"], dtype=bool),
                final={k: _arr(v) for k, v in r["final"].items()},
                total_cost=_arr(r["total_cost"]),
                checkpoints={int(n): {k: _arr(v) for k, v in q.items()} for n, q in c["checkpoints"].items()}))
        oracles = {k: OracleInfo(**v) for k, v in data["oracles"].items()}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path} is a damaged baseline file; regenerate it with `nas-harness baseline`") from None
    return ResultSet(str(path), "baseline", cells, oracles)
