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
incumbent is the *first* architecture attaining the best value, so nothing would change. A
run the runner stopped because it could not go on (a stuck algorithm; its summary's
``stopped`` reason) keeps its final values too (nothing more would come) and counts as
censored at the number of architectures it drew for samples-to-optimum (its value is only
known to be larger; :attr:`CellRuns.censor_times`).
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

from .files import atomic_write_bytes
from .provenance import code_version
from .results import ResultsStore, machine_info

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
    """What the statistics and figures need to know about an oracle: its optimum, the size
    of its space and what its metrics measure.

    ``nas-harness run`` knows all of it when it starts (it stops runs at the optimum) and
    writes it into ``experiment.json`` (:func:`oracle_facts`), so reading a results folder
    never reloads or re-verifies a table; folders written before that load the oracle once
    (:func:`oracle_info`)."""

    name: str
    checksum: str
    optimum_search: float | None = None       #: best search metric over the space
    optimum_report: float | None = None       #: report metric of that architecture
    best_report: float | None = None          #: best report metric over the space
    search_metric: str | None = None
    report_metric: str | None = None
    cost_metric: str | None = None
    train_metric: str | None = None
    space_size: int | None = None             #: architectures in the space (None: infinite)
    n_optimum: int | None = None              #: architectures tied at the optimum
    optimum_identities: list[str] | None = None  #: their identities (at most ``MAX_IDENTITIES``)
    table: str | None = None                  #: name of the table behind the oracle
    dataset: str | None = None                #: the table's dataset where known (``cifar10``, ``digits``)
    units: dict[str, str] | None = None       #: search/report/cost metric -> the table's unit text
    cost_measured: str | None = None          #: what the cost column measured (where, by whom)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OracleInfo":
        """From :meth:`as_dict` output of this or an older version (unknown keys ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


#: optimum identities kept in experiment.json (ties beyond are counted, not listed)
MAX_IDENTITIES = 100


def _unit_of(units: dict[str, Any], metric: str | None) -> str | None:
    """The table's unit text for ``metric`` (keys may be patterns such as ``*_acc``)."""
    from fnmatch import fnmatchcase
    if not metric or not isinstance(units, dict):
        return None
    if metric in units:
        return str(units[metric])
    for pattern, text in units.items():
        if fnmatchcase(metric, pattern):
            return str(text)
    for pattern, text in units.items():  # "accuracy": "fraction" names a family of columns
        if pattern in metric:
            return str(text)
    return None


def _dataset_of(name: str, meta: dict[str, Any], search: str | None) -> str | None:
    ds = meta.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("dataset"), str):
        return ds["dataset"]                              # self-collected tables
    if isinstance(ds, str):
        return ds
    if name.startswith("nb101"):
        return "cifar10"                                  # NAS-Bench-101 trained on CIFAR-10 only
    head = (search or "").split("_")[0]
    return head if head in ("cifar10", "cifar100", "imagenet16") else None


def _cost_measured(table_name: str, meta: dict[str, Any], kind: str | None) -> str:
    """Where the table's training times come from, in words."""
    if kind == "nb201":
        # Dong & Yang, NAS-Bench-201, §2.3: every architecture trained on GPUs by the authors
        return "GPU training time reported by NAS-Bench-201"
    if kind == "nb101":
        # Ying et al., NAS-Bench-101, §2.3: every architecture trained on TPU v2 by the authors
        return "TPU training time reported by NAS-Bench-101"
    torch = str((meta.get("library_versions") or {}).get("torch", ""))
    if kind == "convnet" or "collect" in str(meta.get("source", "")):
        # a CPU-only torch build cannot have used a GPU
        where = "CPU" if torch.endswith("+cpu") else "machine"
        return f"training time measured on the collecting {where}"
    return "training time from the table"


def oracle_facts(oracle) -> dict[str, Any]:
    """Everything :class:`OracleInfo` holds, from a loaded oracle (``nas-harness run`` stores
    it in ``experiment.json`` next to each cell)."""
    opt = oracle.optimum
    table = getattr(oracle, "table", None)
    meta = table.meta if table is not None else {}
    report = getattr(oracle, "report_values", None)
    search_m, report_m = oracle.search_metric, oracle.report_metric
    cost_m, train_m = getattr(oracle, "cost_metric", None), getattr(oracle, "train_metric", None)
    units = meta.get("units") or {}
    kind = (meta.get("space") or {}).get("kind")
    size = oracle.space.size
    return OracleInfo(
        name=oracle.name, checksum=oracle.checksum,
        optimum_search=float(opt.value), optimum_report=float(opt.report),
        best_report=None if report is None else float(np.nanmax(report)),
        search_metric=search_m, report_metric=report_m, cost_metric=cost_m, train_metric=train_m,
        space_size=None if size is None else int(size), n_optimum=len(opt.identities),
        optimum_identities=sorted(opt.identities)[:MAX_IDENTITIES],
        table=getattr(table, "name", None), dataset=_dataset_of(getattr(table, "name", "") or "", meta, search_m),
        units={k: u for k, u in ((m, _unit_of(units, m)) for m in (search_m, report_m, cost_m) if m) if u},
        cost_measured=_cost_measured(getattr(table, "name", "") or "", meta, kind) if cost_m else None,
    ).as_dict()


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
    #: per run, why it stopped before its budget without reaching the optimum (the runner's
    #: one-line reason, e.g. a stuck algorithm), None for a run that ended normally. A stopped
    #: run is censored at the architectures it drew (:attr:`censor_times`)
    stopped: np.ndarray | None = None
    #: distinct architectures each run drew (None: not recorded, as in old baseline files)
    n_distinct: np.ndarray | None = None

    @property
    def censor_times(self) -> np.ndarray:
        """Where each run's samples-to-optimum is censored: the budget, except for a stopped
        run, whose samples-to-optimum is only known to exceed the architectures it drew."""
        out = np.full(self.n_runs, float(self.budget))
        if self.n_distinct is not None:
            stopped = np.array([r is not None for r in self.stop_reasons], dtype=bool)
            out[stopped] = self.n_distinct[stopped]
        return out

    @property
    def stop_reasons(self) -> list[str | None]:
        return [None] * self.n_runs if self.stopped is None else list(self.stopped)

    @property
    def holds_final(self) -> np.ndarray:
        """Runs whose final values stand for every later sample count: those that stopped at
        the global optimum (nothing could improve) and those stopped because they could not
        go on (nothing more would come)."""
        stopped = np.array([r is not None for r in self.stop_reasons], dtype=bool)
        return (self.until_optimum & ~self.censored) | stopped

    @property
    def n_stopped(self) -> int:
        return sum(r is not None for r in self.stop_reasons)

    def stop_summary(self) -> dict[str, int]:
        """Reason -> number of runs stopped for it (seed and counts stripped, so the runs
        of one cause count together)."""
        out: dict[str, int] = {}
        for r in self.stop_reasons:
            if r is not None:
                key = _generic_reason(r)
                out[key] = out.get(key, 0) + 1
        return out

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
        holds = self.holds_final
        for i, rec in enumerate(self.records):
            nd = rec["n_distinct"]
            j = int(np.searchsorted(nd, n, side="right")) - 1
            if j < 0:
                continue
            if nd[j] < n and not holds[i]:
                continue
            for k in QUALITY:
                out[k][i] = rec[k][j]
        return out


#: the machine facts floating-point results can depend on (compared by ``nas-harness compare``)
MACHINE_FACTS = ("cpu", "machine", "numpy")
BLAS_FACTS = ("internal_api", "version", "architecture", "threading_layer")


def machine_facts(m: dict[str, Any]) -> dict[str, Any]:
    """The part of a :func:`harness.results.machine_info` record that can change results:
    CPU model and type, numpy, and each BLAS/OpenMP library's implementation, version and
    kernel (thread counts and OS details left out)."""
    out = {k: m.get(k) for k in MACHINE_FACTS}
    out["blas"] = sorted((tuple(str(lib.get(k)) for k in BLAS_FACTS) for lib in m.get("blas") or []
                          if isinstance(lib, dict)))
    return out


def describe_machine(m: dict[str, Any]) -> str:
    """``AMD EPYC 7B13 (x86_64), openblas 0.3.27 Zen, numpy 2.1.3`` -- one line."""
    f = machine_facts(m)
    blas = ", ".join(" ".join(x for x in lib[:3] if x and x != "None") for lib in f["blas"]) or "no BLAS reported"
    return f"{f['cpu'] or 'unknown CPU'} ({f['machine'] or '?'}), {blas}, numpy {f['numpy'] or '?'}"


def _distinct(machines) -> list[dict[str, Any]]:
    out, seen = [], set()
    for m in machines:
        if isinstance(m, dict):
            key = json.dumps(machine_facts(m), sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(m)
    return out


def _generic_reason(reason: str) -> str:
    """``"evolution asked 10000 ... (seed 3, after 1088 distinct); it is stuck"`` without the
    parenthesised per-run details, so that runs stopped by the same cause group together."""
    import re
    return re.sub(r"\s*\((?:seed|after)[^)]*\)", "", str(reason)).strip()


@dataclass
class ResultSet:
    source: str
    kind: str                                  #: "folder" or "baseline"
    cells: list[CellRuns]
    oracles: dict[str, OracleInfo]
    #: the machines that computed the runs (:func:`harness.results.machine_info`: CPU model,
    #: BLAS library and kernel...), each once; empty when the runs did not record theirs
    machines: list[dict[str, Any]] = field(default_factory=list)

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
    """The oracle's facts by loading it (folders written before ``run`` stored them), if
    its data is installed and is the data the runs used; otherwise only its name."""
    info = OracleInfo(name=name, checksum=checksum)
    try:
        from oracles.registry import load_oracle
        oracle = load_oracle(name)
    except (UserError, OSError, ValueError, KeyError):
        return info
    if oracle.checksum != checksum:
        return info
    return OracleInfo.from_dict(oracle_facts(oracle))


def _f(x) -> float:
    return np.nan if x is None else float(x)


#: Arrow type names of the numeric record columns -> numpy dtypes
_ARROW_NUMPY = {"double": np.float64, "float": np.float32, "int64": np.int64, "int32": np.int32,
                "int16": np.int16, "int8": np.int8, "uint64": np.uint64, "uint32": np.uint32}


def _column(col, dtype) -> np.ndarray:
    """A numeric Parquet column as a numpy array, nulls (unknown costs) as NaN.

    Read from the Arrow buffers: every pyarrow ``to_numpy`` first imports pandas (about a
    second of CPU, more than reading a small folder)."""
    parts = []
    for c in col.chunks:
        src = _ARROW_NUMPY.get(str(c.type))
        if src is None:  # not a plain number column: let pyarrow convert it
            parts.append(np.asarray(c.to_numpy(zero_copy_only=False), dtype=dtype))
            continue
        validity, data = c.buffers()[:2]
        v = np.frombuffer(data, dtype=src, count=len(c), offset=c.offset * np.dtype(src).itemsize).astype(dtype)
        if c.null_count:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
            v = v.astype(np.float64)
            v[bits[c.offset:c.offset + len(c)] == 0] = np.nan
        parts.append(v)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _read_runs(store: ResultsStore, cells, with_records: bool):
    """Every finished run of ``cells``: (cell, run metadata, the curve columns or None).

    The same runs as :meth:`ResultsStore.iter_runs` (a file counts when its metadata carries
    the cell's fingerprint), read with one open per file and only the columns a curve
    needs: ``pq.read_table`` would first import pyarrow's dataset layer (a third of a second)
    and decode every column, architecture strings included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .results import META_KEY, fingerprint
    for cell in cells:
        folder = store.root / cell.folder
        if not folder.is_dir():
            continue
        fp = fingerprint(cell.config)
        for path in sorted(folder.glob("seed-*.parquet")):
            try:
                pf = pq.ParquetFile(path)
                meta = json.loads((pf.schema_arrow.metadata or {})[META_KEY])
            except (OSError, KeyError, ValueError, pa.ArrowException):
                continue  # not a finished run (the runner would redo it)
            if not isinstance(meta, dict) or meta.get("cell_fingerprint") != fp:
                continue
            table = None
            if with_records:
                try:
                    table = pf.read(columns=[k for k in CURVE_COLUMNS if k in pf.schema_arrow.names])
                except (OSError, pa.ArrowException):
                    raise UserError(f"{path} is damaged; delete it and re-run the experiment to "
                                    "recompute that run") from None
            yield cell, meta, table


def load_folder(path: str | os.PathLike, with_records: bool = True, optima: bool = True) -> ResultSet:
    store = ResultsStore(path)
    if not store.manifest_path.is_file():
        raise UserError(f"{path} is not a results folder (no experiment.json)")
    by_cell: dict[str, dict[str, list]] = {}
    cells = {c.key: c for c in store.cells()}
    for cell, meta, table in _read_runs(store, cells.values(), with_records):
        d = by_cell.setdefault(cell.key, {"meta": [], "records": []})
        d["meta"].append(meta)
        if table is not None:
            cols = {k: _column(table.column(k), np.float64 if k != "n_distinct" else np.int64)
                    for k in CURVE_COLUMNS if k in table.column_names}
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
            records=d["records"] if with_records else None,
            stopped=np.array([r.get("stopped") or None for r in s], dtype=object),
            n_distinct=np.array([_f(r.get("n_distinct")) for r in s], dtype=np.float64)))
    out.sort(key=lambda c: (c.oracle, c.label))
    stored = {e["oracle"]: e["oracle_facts"] for e in store.read_manifest()["cells"].values()
              if isinstance(e.get("oracle_facts"), dict)}
    infos = {}
    for c in out:
        if c.oracle not in infos:
            chk = str(c.config.get("oracle_checksum", ""))
            facts = stored.get(c.oracle)
            if facts is not None and facts.get("checksum") == chk:
                infos[c.oracle] = OracleInfo.from_dict(facts)
            else:  # a folder from before `run` stored the facts: load the oracle once
                infos[c.oracle] = oracle_info(c.oracle, chk) if optima else OracleInfo(c.oracle, chk)
    machines = _distinct(m.get("machine") for d in by_cell.values() for m in d["meta"])
    return ResultSet(str(path), "folder", out, infos, machines)


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
                     "total_cost": [_num(x) for x in c.total_cost],
                     "stopped": c.stop_reasons,
                     "n_distinct": None if c.n_distinct is None else [_num(x) for x in c.n_distinct]},
            "checkpoints": q})
    return {"format": BASELINE_FORMAT, "source": rs.source,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code": code_version(), "oracles": {k: v.as_dict() for k, v in rs.oracles.items()},
            # the machines that ran the runs (compare says when a candidate's differ); a folder
            # whose runs did not record theirs gets the machine writing the file, marked so
            "machines": rs.machines or [{**machine_info(), "recorded_by": "nas-harness baseline (the runs "
                                                                          "did not record their machine)"}],
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
        atomic_write_bytes(path, lambda fh: fh.write(text.encode()))  # mode from the umask
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
                stopped=np.array(r.get("stopped") or [None] * len(r["seed"]), dtype=object),
                n_distinct=None if r.get("n_distinct") is None else _arr(r["n_distinct"]),
                checkpoints={int(n): {k: _arr(v) for k, v in q.items()} for n, q in c["checkpoints"].items()}))
        oracles = {k: OracleInfo.from_dict(v) for k, v in data["oracles"].items()}
        machines = _distinct(data.get("machines") or [])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path} is a damaged baseline file; regenerate it with `nas-harness baseline`") from None
    return ResultSet(str(path), "baseline", cells, oracles, machines)
