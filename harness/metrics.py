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

**One loader.** :func:`read_runs` is the only code of the analysis that opens run files
(:func:`load_folder` for statistics and figures, :func:`harness.export.long_table` for the
long table, :func:`harness.summary.summarise` through :func:`load_folder`), and what the
analysis knows about an oracle comes from ``experiment.json`` only (:func:`oracle_facts`,
written by ``nas-harness run``): no table is loaded or re-hashed to read results. A folder
written before the facts were stored has none (no optimum, so no regret): running the same
``nas-harness run`` command again adds them without recomputing a run.

**Direction, fidelities, clocks.** Records hold each metric's own values; ``best_*`` follow
the oracle's direction (running minima for a minimised metric) and count the top fidelity
only (NaN before a run's first top-fidelity evaluation). :meth:`OracleInfo.regret` is
optimum - best for a maximised metric and best - optimum for a minimised one, so a regret
is never negative. Besides samples (``n_distinct``), curves run against the training
epochs paid (``cum_epochs``, summed over the told trials) and the simulated clock
(``finish``, in :attr:`OracleInfo.clock_unit`), see :data:`AXES`.
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

#: record columns a curve needs (``epochs`` and ``finish`` are missing from files written
#: before trials; they read as NaN)
CURVE_COLUMNS = ("n_distinct", "best_search", "incumbent_report", "best_report", "cum_cost", "epochs", "finish")

#: the x axes of curves -> the column of a run's loaded records holding them: distinct
#: samples, simulated training time summed over the trials paid (the table's costs),
#: training epochs paid (summed over the told trials) and the simulated clock at each tell
AXES = {"samples": "n_distinct", "time": "cum_cost", "epochs": "cum_epochs", "clock": "finish"}


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
    of its space, what its metrics measure, their direction, its fidelities and what its
    simulated clock counts.

    ``nas-harness run`` knows all of it when it starts (it stops runs at the optimum) and
    writes it into ``experiment.json`` (:func:`oracle_facts`), so reading a results folder
    never reloads or re-verifies a table. Fields added later have the defaults that describe
    the oracles of that time: maximised, one fidelity. Fields are only ever appended (callers
    build it positionally)."""

    name: str
    checksum: str
    optimum_search: float | None = None       #: best search metric over the space (under the direction)
    optimum_report: float | None = None       #: report metric of that architecture
    best_report: float | None = None          #: best report metric over the space (under the direction)
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
    #: ``"max"`` or ``"min"``: how the search and report metrics rank (absent from folders
    #: written before directions: max)
    direction: str = "max"
    #: the fidelities the oracle served, increasing (None: one, as in folders written before)
    fidelities: list[int] | None = None
    fidelity_kind: str | None = None          #: ``"restart"`` or ``"prefix"`` (oracles.oracle.Fidelities)
    fidelity_unit: str | None = None          #: what a fidelity counts (``"epochs"``)
    #: what the runner's simulated clock counts: ``"seconds"`` (the oracle's training cost),
    #: ``"epochs"`` (no cost: a trial takes its fidelity) or ``"trials"`` (neither); None:
    #: not stored (a folder written before the clock)
    clock_unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OracleInfo":
        """From :meth:`as_dict` output of this or an older version (unknown keys ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def minimise(self) -> bool:
        return self.direction == "min"

    @property
    def multi_fidelity(self) -> bool:
        """True when the oracle served several fidelities (multi-fidelity search)."""
        return bool(self.fidelities) and len(self.fidelities) > 1

    def reference(self, metric: str) -> float | None:
        """The optimum a record column's regret is measured from: the best search value over
        the space for ``best_search``, the best report value over the space for the report
        metrics (``incumbent_report``, ``best_report``)."""
        return self.optimum_search if metric == "best_search" else self.best_report

    def regret(self, values, metric: str):
        """Regret of ``values`` of the record column ``metric``: optimum - value for a
        maximised metric, value - optimum for a minimised one (>= 0 either way; NaN stays
        NaN). None when the optimum is unknown."""
        ref = self.reference(metric)
        if ref is None:
            return None
        v = np.asarray(values, dtype=np.float64)
        return v - ref if self.minimise else ref - v

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` under the direction."""
        return a < b if self.minimise else a > b

    def is_fraction(self, which: str) -> bool:
        """Whether the ``which`` ("search" or "report") metric is an accuracy stored as a
        fraction in [0, 1], shown in percent; anything else (perplexity, loss, a score) is
        shown as a plain number. Decided by the table's unit text where there is one
        (``fraction``, ``percent``, ``accuracy``), else by the direction (accuracies are
        maximised), and never for a metric whose optimum lies outside [0, 1]."""
        metric = getattr(self, f"{which}_metric", None)
        ref = self.optimum_search if which == "search" else self.best_report
        if ref is not None and not (0.0 <= ref <= 1.0):
            return False
        unit = (self.units or {}).get(metric) if metric else None
        if unit:
            text = str(unit).lower()
            return any(w in text for w in ("fraction", "percent", "accuracy"))
        return not self.minimise


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


def clock_unit(oracle) -> str:
    """What the runner's simulated clock counts for ``oracle`` (see :mod:`harness.runner`: a
    trial takes the oracle's training cost where it has one, else its fidelity in epochs,
    else one unit)."""
    if getattr(oracle, "cost_metric", None):
        return "seconds"
    return "epochs" if oracle.fidelities is not None else "trials"


def oracle_facts(oracle) -> dict[str, Any]:
    """Everything :class:`OracleInfo` holds, from a loaded oracle (``nas-harness run`` stores
    it in ``experiment.json`` next to each cell). An oracle without a known optimum (a
    supernet) has no optimum fields."""
    opt = oracle.optimum
    table = getattr(oracle, "table", None)
    meta = table.meta if table is not None else {}
    report = getattr(oracle, "report_values", None)
    direction = getattr(oracle, "direction", "max")
    search_m, report_m = oracle.search_metric, oracle.report_metric
    cost_m, train_m = getattr(oracle, "cost_metric", None), getattr(oracle, "train_metric", None)
    units = meta.get("units") or {}
    kind = (meta.get("space") or {}).get("kind")
    size = oracle.space.size
    fids = oracle.fidelities
    best_report = None
    if report is not None and len(report):
        best_report = float(np.nanmin(report) if direction == "min" else np.nanmax(report))
    return OracleInfo(
        name=oracle.name, checksum=oracle.checksum,
        optimum_search=None if opt is None else float(opt.value),
        optimum_report=None if opt is None else float(opt.report),
        best_report=best_report,
        search_metric=search_m, report_metric=report_m, cost_metric=cost_m, train_metric=train_m,
        space_size=None if size is None else int(size),
        n_optimum=None if opt is None else len(opt.identities),
        optimum_identities=None if opt is None else sorted(opt.identities)[:MAX_IDENTITIES],
        table=getattr(table, "name", None), dataset=_dataset_of(getattr(table, "name", "") or "", meta, search_m),
        units={k: u for k, u in ((m, _unit_of(units, m)) for m in (search_m, report_m, cost_m) if m) if u},
        cost_measured=_cost_measured(getattr(table, "name", "") or "", meta, kind) if cost_m else None,
        direction=direction,
        fidelities=None if fids is None else [int(f) for f in fids.values],
        fidelity_kind=None if fids is None else fids.kind,
        fidelity_unit=None if fids is None else fids.unit,
        clock_unit=clock_unit(oracle),
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
    #: each run's summary as the runner wrote it (wall time, epochs and clock spent...);
    #: None for a baseline file
    summaries: list[dict[str, Any]] | None = None

    @property
    def censor_times(self) -> np.ndarray:
        """Where each run's samples-to-optimum is censored: the budget, except for a stopped
        run, whose samples-to-optimum is only known to exceed the architectures it drew, and
        for budgets that do not count architectures (epochs, time, queries), where a run is
        censored at the architectures it drew."""
        out = np.full(self.n_runs, float(self.budget))
        if self.n_distinct is not None:
            stopped = np.array([r is not None for r in self.stop_reasons], dtype=bool)
            if self.budget_kind != "archs":
                stopped[:] = True
            out[stopped] = self.n_distinct[stopped]
        return out

    @property
    def budget_kind(self) -> str:
        """What the budget counts (``archs``, ``queries``, ``time``, ``epochs``; a cell
        configuration holds it only when it is not the default ``archs``)."""
        return str(self.config.get("budget_kind", "archs"))

    @property
    def workers_per_run(self) -> int:
        """Simulated workers of each run (absent from the configuration: 1)."""
        return int(self.config.get("workers_per_run", 1))

    @property
    def sample_budget(self) -> int:
        """How far the sample axis goes: the budget where it counts architectures; otherwise
        the fewest architectures a run drew before its budget (epochs, time or queries) was
        spent, so that statistics on the sample axis never mix in runs that had ended (runs
        that hold their final values, see :attr:`holds_final`, do not limit it)."""
        if self.budget_kind == "archs" or self.n_distinct is None or not self.n_runs:
            return self.budget
        nd = self.n_distinct[np.isfinite(self.n_distinct)]
        if not len(nd):
            return self.budget
        going = self.n_distinct[~self.holds_final & np.isfinite(self.n_distinct)]
        return max(1, int(going.min() if len(going) else nd.max()))

    def spent(self, what: str) -> np.ndarray:
        """Per run, the training ``"epochs"`` paid or the simulated ``"clock"`` at its end
        (NaN where not recorded: files written before trials)."""
        key = {"epochs": "total_epochs", "clock": "clock"}[what]
        out = np.full(self.n_runs, np.nan)
        for i in range(self.n_runs):
            s = self.summaries[i] if self.summaries is not None else {}
            if s.get(key) is not None:
                out[i] = float(s[key])
            elif self.records is not None and len(self.records[i]["n_distinct"]):
                col = self.records[i]["cum_epochs" if what == "epochs" else "finish"]
                out[i] = col[-1] if what == "epochs" else np.max(col)
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
        if n > self.sample_budget:
            if self.budget_kind == "archs":
                raise UserError(f"{self.oracle} | {self.label}: {n} samples is past the budget ({self.budget})")
            raise UserError(f"{self.oracle} | {self.label}: {n} samples is past what every run drew before "
                            f"its {self.budget_kind} budget was spent ({self.sample_budget})")
        if self.records is None:
            if n not in self.checkpoints:
                have = ", ".join(str(k) for k in sorted(self.checkpoints))
                raise UserError(f"{self.oracle} | {self.label}: the baseline file keeps quality at "
                                f"{have} samples only, not {n}")
            return self.checkpoints[n]
        return self.quality_along("samples", n)

    def quality_along(self, axis: str, at: float) -> dict[str, np.ndarray]:
        """QUALITY metrics of every run at ``at`` on ``axis`` (:data:`AXES`: samples, epochs
        paid, simulated clock, summed training time): the values after the last record at or
        before ``at``; NaN for a run that had no record yet, or that ended before ``at``
        without holding its final values (:attr:`holds_final`). No budget check: see
        :meth:`quality_at` for samples."""
        if self.records is None:
            raise UserError(f"{self.oracle} | {self.label}: a baseline file keeps quality at fixed sample "
                            "counts only; read the results folder")
        col = AXES[axis]
        out = {k: np.full(self.n_runs, np.nan) for k in QUALITY}
        holds = self.holds_final
        for i, rec in enumerate(self.records):
            x = rec[col]
            if not len(x) or np.isnan(x).any():
                continue
            j = int(np.searchsorted(x, at, side="right")) - 1
            if j < 0:
                continue
            if x[-1] < at and not holds[i]:
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

    #: oracles whose facts ``experiment.json`` does not hold (folders written before
    #: ``run`` stored them): known by name and checksum only
    missing_facts: list[str] = field(default_factory=list)

    def info(self, oracle: str) -> OracleInfo:
        return self.oracles.get(oracle) or OracleInfo(oracle, "")

    def time_axes(self, oracle: str) -> list[str]:
        """The axes besides samples that the runs on ``oracle`` are shown against: training
        epochs paid and the simulated clock, when the oracle served several fidelities, a
        run had several simulated workers or its budget counted epochs or time. The clock is
        left out where it would repeat the epochs axis (it counts epochs and every run had
        one worker, so a trial's start was the previous one's end)."""
        cells = [c for c in self.cells if c.oracle == oracle]
        info = self.info(oracle)
        workers = any(c.workers_per_run > 1 for c in cells)
        kinds = {c.budget_kind for c in cells}
        if not (info.multi_fidelity or workers or kinds & {"epochs", "time"}):
            return []
        if workers or "time" in kinds or info.clock_unit not in ("epochs", None):
            return ["epochs", "clock"]
        return ["epochs"]

    def facts_note(self) -> str | None:
        """One line when oracle facts are missing (what is left out, and how to add them)."""
        if not self.missing_facts:
            return None
        return (f"{self.source}: experiment.json stores no facts about {', '.join(self.missing_facts)} (written "
                "before `nas-harness run` stored them), so optimum, regret and direction are unknown (taken as "
                "maximised); run the same `nas-harness run` command again to add them (no run is recomputed)")


# --- reading ------------------------------------------------------------------------------
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


def _store(path: str | os.PathLike | ResultsStore) -> ResultsStore:
    store = path if isinstance(path, ResultsStore) else ResultsStore(path)
    if not store.manifest_path.is_file():
        raise UserError(f"{store.root} is not a results folder (no experiment.json)")
    return store


def read_runs(path: str | os.PathLike | ResultsStore, columns: Iterable[str] | None = CURVE_COLUMNS,
              with_records: bool = True):
    """Every finished run of a results folder: (cell, run metadata, records as an Arrow
    table, or None without ``with_records``). The one reader of run files in the analysis.

    ``columns``: the record columns to read (those a file lacks are left out; None: every
    column). The same runs as :meth:`harness.results.ResultsStore.iter_runs` (a file counts
    when its metadata carries the cell's fingerprint), read with one open per file and only
    the columns asked for: ``pq.read_table`` would first import pyarrow's dataset layer (a
    third of a second) and decode every column, architecture strings included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .results import META_KEY, fingerprint
    store = _store(path)
    for cell in store.cells():
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
                names = pf.schema_arrow.names
                try:
                    table = pf.read(columns=None if columns is None else [k for k in columns if k in names])
                except (OSError, pa.ArrowException):
                    raise UserError(f"{path} is damaged; delete it and re-run the experiment to "
                                    "recompute that run") from None
            yield cell, meta, table


def _curve_records(table, n: int) -> dict[str, np.ndarray]:
    """A run's curve columns as numpy arrays (NaN for columns its file lacks), with the
    epochs paid summed along the run (``cum_epochs``)."""
    cols = {k: _column(table.column(k), np.float64 if k != "n_distinct" else np.int64)
            for k in CURVE_COLUMNS if k in table.column_names}
    for k in ("cum_cost", "epochs", "finish"):
        if k not in cols:
            cols[k] = np.full(n, np.nan)
    cols["cum_epochs"] = np.cumsum(cols.pop("epochs"))
    return cols


def load_folder(path: str | os.PathLike, with_records: bool = True) -> ResultSet:
    """Every finished run of the results folder ``path`` (:func:`read_runs`) with the oracle
    facts ``experiment.json`` stores; ``with_records=False`` reads run metadata only."""
    store = _store(path)
    by_cell: dict[str, dict[str, list]] = {}
    cells = {c.key: c for c in store.cells()}
    for cell, meta, table in read_runs(store, with_records=with_records):
        d = by_cell.setdefault(cell.key, {"meta": [], "records": []})
        d["meta"].append(meta)
        if table is not None:
            d["records"].append(_curve_records(table, table.num_rows))
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
            n_distinct=np.array([_f(r.get("n_distinct")) for r in s], dtype=np.float64),
            summaries=s))
    out.sort(key=lambda c: (c.oracle, c.label))
    # the facts each cell was run with (keyed by the oracle's checksum too: one folder may hold
    # an oracle name run on two versions of its data only if its cells say so)
    stored = {(e["oracle"], e["oracle_facts"].get("checksum")): e["oracle_facts"]
              for e in store.read_manifest()["cells"].values() if isinstance(e.get("oracle_facts"), dict)}
    infos, missing = {}, []
    for c in out:
        if c.oracle not in infos:
            chk = str(c.config.get("oracle_checksum", ""))
            facts = stored.get((c.oracle, chk))
            if facts is not None:
                infos[c.oracle] = OracleInfo.from_dict(facts)
            else:  # written before `run` stored the facts: no table is loaded to find them
                infos[c.oracle] = OracleInfo(c.oracle, chk)
                missing.append(c.oracle)
    machines = _distinct(m.get("machine") for d in by_cell.values() for m in d["meta"])
    return ResultSet(str(path), "folder", out, infos, machines, missing_facts=missing)


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
        cps = [n for n in (checkpoints or checkpoints_for(c.sample_budget)) if n <= c.sample_budget]
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
