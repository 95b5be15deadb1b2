"""NAS-Bench-201 conversion recipe: CSV tables, NATS-Bench fast-mode files, or v1 ``.pth``.

All three sources become one :class:`~oracles.table.Table` named ``nb201``:

* rows: the 15,625 cells in the official index order (row ``i`` = official index ``i``);
* fidelities: 12 and 200 training epochs;
* seeds: the training seeds the source has (``"mean"`` only for the CSV tables, which hold
  seed means);
* metrics, for ``ds`` in cifar10 / cifar100 / imagenet16: ``ds_valid`` and ``ds_test``
  (accuracy fractions, the NB201 protocol: search on valid, report test), ``ds_train``
  (final training accuracy of the run behind ``ds_valid``), ``ds_train_time`` (seconds to
  train that run for the fidelity's epochs), ``params_ds`` (parameters) and ``flops_ds``
  (MFLOPs); NaN where the source lacks them (the CSVs have no per-seed values, training
  accuracies or times).

Which official run each metric comes from (the usual NB201 protocol): ``cifar10_valid`` is ``x-valid`` of the ``cifar10-valid`` run
(trained on the train half), ``cifar10_test`` is ``ori-test`` of the ``cifar10`` run (trained
on train+valid); cifar100 and ImageNet16-120 use ``x-valid`` / ``x-test`` of their single run.

Per-epoch learning curves (``--curves``, fast-mode folder only) become a second table, one
per training schedule, whose fidelities are the epochs of one curve (``fidelity_kind``
``"prefix"``: continuing a trial from epoch ``e0`` to ``e1`` pays only ``e1 - e0`` epochs):

* ``nas-harness oracles import nb201 FOLDER --curves`` (or ``--curves 200``): table
  ``nb201-curves``, fidelities 1..200 (epochs completed of the 200-epoch schedule), oracle
  ``nb201-curves/cifar10``;
* ``--curves 12``: table ``nb201-12ep-curves``, fidelities 1..12 of the 12-epoch schedule (its
  own cosine schedule: its epoch 12 is not epoch 12 of the 200-epoch run), oracles
  ``nb201-12ep-curves/{cifar10,cifar100,imagenet16}``.

Why separate tables and not more fidelities of ``nb201``: the endpoint table's fidelities 12
and 200 are *restart* fidelities (two trainings); a fidelity axis has one kind, and the
200-epoch curve's epoch 12 is another number than the 12-epoch schedule's result. Why 1..200
and not only rungs: a prefix oracle must answer wherever a multi-fidelity method stops.

A curve table's metrics, per dataset ``ds`` that has a per-epoch curve in that schedule:
``ds_valid`` and ``ds_test`` at epoch ``e`` (accuracy fractions: ``x-valid@{e-1}`` and the test
eval ``@{e-1}`` of the runs named above; the files count epochs from 0), ``ds_train``
(training accuracy after epoch ``e`` of the valid run) and ``ds_train_time``: the
**cumulative** training seconds of epochs 1..e of the valid run (the sum of its
``train_times``, as the endpoint table's time at 200 epochs), the cost of reaching epoch
``e`` from scratch; the runner charges a continuation the difference. The fast-mode files
record one estimated time per epoch, the same for every epoch and seed of a run, so the cost
grows linearly in the epoch. Which datasets have curves is read from the files, not assumed:
in NATS-tss-v1_0-3ffb9 the 200-epoch runs of cifar100 and ImageNet16-120 were validated
(``x-valid``) only after the last epoch (their per-epoch eval is ``ori-test``, the test set),
so the 200-epoch curves serve cifar10 only; the 12-epoch runs have per-epoch ``x-valid`` and
``x-test`` for all three datasets. At the last epoch a curve table's values equal the
endpoint table's (same runs, same seeds, same sums).

A complete folder (15,625 files) gives the NB201 space in the official order. A partial
folder (some architectures only, e.g. the three shared test files) gives a table of the
architectures present: its space is the set of those rows, each the tuple of its six edges'
operations (``meta.space.kind = "product"``, columns ``1<-0 .. 3<-2`` in the official string's
edge order, the five operations as categories of every column, so encodings and tokens are
NAS-Bench-201's), since the NB201 space must enumerate all 15,625 cells; its rows keep the
official index and string in the columns ``index`` and ``arch_str``. The endpoint import of
a partial folder is still refused (its oracles are meant as NAS-Bench-201 itself).

The official files are pickles. The fast-mode ``.pickle.pbz2`` files are read with a
restricted unpickler that admits only the three classes they contain; the older
``NAS-Bench-201-v1_*.pth`` files are loaded through the ``nas-bench-201`` package, which runs
arbitrary pickle code, so only when the user passes ``--trust-pickle``.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import os
import pickle
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import CorruptData, UserError
from ..nb201_space import EDGES, OPS, string_to_arch
from ..table import Table, file_sha256

NAME = "nb201"
HELP = "NAS-Bench-201: folder with nb201_*ep.csv, a NATS-tss-v1_0-3ffb9-simple folder, or a v1 .pth file"

DATASETS = ("cifar10", "cifar100", "imagenet16")
FIDELITIES = (12, 200)
N_ARCHS = 15625
METRICS = tuple(f"{ds}_{kind}" for ds in DATASETS for kind in ("valid", "test", "train", "train_time")) + \
    tuple(f"{kind}_{ds}" for kind in ("params", "flops") for ds in DATASETS)

# (official run name, eval name) of each metric, per dataset
_VALID = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "x-valid"),
          "imagenet16": ("ImageNet16-120", "x-valid")}
_TEST = {"cifar10": ("cifar10", "ori-test"), "cifar100": ("cifar100", "x-test"),
         "imagenet16": ("ImageNet16-120", "x-test")}


def oracle_declarations() -> list[dict[str, Any]]:
    out = []
    for prefix, fid in (("nb201", 200), ("nb201-12ep", 12)):
        for ds in DATASETS:
            out.append({"name": f"{prefix}/{ds}", "search": f"{ds}_valid", "report": f"{ds}_test",
                        "fidelity": fid, "cost": f"{ds}_train_time", "train": f"{ds}_train",
                        "description": f"NAS-Bench-201 {ds}, {fid} epochs: search {ds}_valid, report {ds}_test"})
    return out


def _new_values(n_rows: int, n_seeds: int) -> np.ndarray:
    return np.full((n_rows, n_seeds, len(FIDELITIES), len(METRICS)), np.nan)


def _finish(archs: list[str], seeds: list[str], values: np.ndarray, source: Path, fmt: str,
            index: np.ndarray, extra_meta: dict | None = None) -> Table:
    # an oracle is declared only at a fidelity the source has (a lone 200-epoch CSV serves no
    # 12-epoch oracles), and its cost/train metrics only if the source has them
    decls = [d for d in oracle_declarations()
             if not np.all(np.isnan(values[:, :, FIDELITIES.index(d["fidelity"]), METRICS.index(d["search"])]))]
    for d in decls:
        for key in ("cost", "train"):
            if np.all(np.isnan(values[:, :, FIDELITIES.index(d["fidelity"]), METRICS.index(d[key])])):
                d[key] = None
    meta = {
        "source": {"format": fmt, "name": source.name,
                   "sha256": file_sha256(source) if source.is_file() else None},
        "space": {"kind": "nb201"},
        "units": {"accuracy": "fraction", "train_time": "seconds", "params": "count", "flops": "MFLOPs"},
        "oracles": decls,
        "n_archs_in_space": N_ARCHS,
    }
    meta.update(extra_meta or {})
    return Table(name=NAME, archs=np.array(archs, dtype=str), seeds=tuple(seeds), fidelities=FIDELITIES,
                 metrics=METRICS, values=values, columns={"index": np.asarray(index, dtype=np.int64)},
                 meta=meta)


# --- CSV ----------------------------------------------------------------------------------
_CSV_NAMES = {200: "nb201_200ep.csv", 12: "nb201_12ep.csv"}


def read_csv_tables(paths: Mapping[int, Path]) -> Table:
    """NB201 CSV tables (columns ``index``, ``arch_str``, ``<ds>_valid``, ``<ds>_test``, optional
    ``params_<ds>``; accuracies in percent), one per fidelity (epochs -> path)."""
    archs: list[str] | None = None
    values = _new_values(N_ARCHS, 1)
    for fid, path in sorted(paths.items()):
        f = FIDELITIES.index(fid)
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CorruptData(f"cannot read {path}: {exc}") from None
        if len(rows) != N_ARCHS:
            raise CorruptData(f"{path} has {len(rows)} rows, NAS-Bench-201 has {N_ARCHS}: "
                              "the file is truncated or not a NB201 table")
        header = rows[0].keys()
        wanted = [f"{ds}_{k}" for ds in DATASETS for k in ("valid", "test")]
        missing = [c for c in ["index", "arch_str", *wanted] if c not in header]
        if missing:
            raise CorruptData(f"{path} lacks column(s) {', '.join(missing)}; expected the NB201 CSV layout")
        strs = []
        for lineno, row in enumerate(rows, start=2):
            try:
                if int(row["index"]) != lineno - 2:
                    raise CorruptData(f"{path} line {lineno}: index {row['index']} out of order "
                                      f"(row i must hold index i)")
                strs.append(row["arch_str"])
                for col in wanted:
                    values[lineno - 2, 0, f, METRICS.index(col)] = float(row[col]) / 100.0
                for ds in DATASETS:
                    p = row.get(f"params_{ds}")
                    if p not in (None, ""):
                        values[lineno - 2, 0, f, METRICS.index(f"params_{ds}")] = float(p)
            except (TypeError, ValueError):
                raise CorruptData(f"{path} line {lineno}: non-numeric value; the file is damaged") from None
        if archs is None:
            archs = strs
        elif archs != strs:
            raise CorruptData(f"{path} lists architectures in a different order than the other CSV")
    # parameters do not depend on the training budget: share them across fidelities
    for ds in DATASETS:
        m = METRICS.index(f"params_{ds}")
        values[:, :, :, m] = np.nanmax(values[:, :, :, m], axis=2, keepdims=True) \
            if not np.all(np.isnan(values[:, :, :, m])) else np.nan
    source = next(iter(paths.values())).parent
    table = _finish(archs, ["mean"], values, source, "csv", np.arange(N_ARCHS),
                    {"source_files": {p.name: file_sha256(p) for p in paths.values()}})
    return table


# --- official state dicts (fast mode and .pth share them) ----------------------------------
def _results_of(state: Mapping[str, Any]) -> Mapping:
    return state["all_results"]


def _fill_from_state(values: np.ndarray, row: int, fid: int, state: Mapping[str, Any],
                     seeds: list[str], where: str) -> None:
    """Copy one architecture's results at one budget (an ArchResults state dict) into ``values``."""
    f = FIDELITIES.index(fid)
    try:
        results = _results_of(state)
        for (run, seed), res in results.items():
            res = res if isinstance(res, Mapping) else vars(res)
            s = seeds.index(str(int(seed)))
            last = int(res["epochs"]) - 1
            acc = res["eval_acc1es"]
            for ds in DATASETS:
                vrun, vname = _VALID[ds]
                trun, tname = _TEST[ds]
                if run == vrun and f"{vname}@{last}" in acc:
                    values[row, s, f, METRICS.index(f"{ds}_valid")] = float(acc[f"{vname}@{last}"]) / 100.0
                    values[row, s, f, METRICS.index(f"{ds}_train")] = float(res["train_acc1es"][last]) / 100.0
                    times = res["train_times"]
                    values[row, s, f, METRICS.index(f"{ds}_train_time")] = float(sum(float(times[e]) for e in range(last + 1)))
                if run == trun and f"{tname}@{last}" in acc:
                    values[row, s, f, METRICS.index(f"{ds}_test")] = float(acc[f"{tname}@{last}"]) / 100.0
                if run == vrun:
                    values[row, s, f, METRICS.index(f"params_{ds}")] = round(float(res["params"]) * 1e6)
                    values[row, s, f, METRICS.index(f"flops_{ds}")] = float(res["flop"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptData(f"{where}: unexpected NB201 result layout ({type(exc).__name__}: {exc})") from None


def _seed_labels(by_fid: Mapping[int, Mapping[str, Any]], where: str) -> list[str]:
    """The training seeds of one architecture's results, as labels in increasing order."""
    try:
        return [str(s) for s in sorted({int(seed) for st in by_fid.values() for (_, seed) in _results_of(st)})]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptData(f"{where}: unexpected NB201 result layout ({type(exc).__name__}: {exc})") from None


def _add_seeds(values: np.ndarray, seeds: list[str], labels: Iterable[str]) -> np.ndarray:
    """``values`` with one NaN seed column more (axis 1) per label not yet in ``seeds``
    (appended to it): the seed axis grows as files are read, so no file is kept in memory."""
    new = [label for label in labels if label not in seeds]
    if not new:
        return values
    seeds.extend(new)
    pad = np.full(values.shape[:1] + (len(new),) + values.shape[2:], np.nan)
    return np.concatenate([values, pad], axis=1)


def _sort_seeds(values: np.ndarray, seeds: list[str]) -> tuple[np.ndarray, list[str]]:
    order = sorted(range(len(seeds)), key=lambda k: int(seeds[k]))
    return values[:, order], [seeds[k] for k in order]


def _table_from_states(arch_states: Iterable[tuple[int, str, dict[int, Mapping]]], n_rows: int, source: Path,
                       fmt: str, meta_archs: list[str] | None) -> Table:
    """The endpoint table of ``n_rows`` architectures' states, given in increasing official
    index and consumed one at a time: a complete fast-mode folder held as Python objects
    would take about 30 GB (1.9 MB per file)."""
    seeds: list[str] = []
    values = _new_values(n_rows, 0)
    rows: list[tuple[int, str]] = []
    for row, (idx, arch_str, by_fid) in enumerate(arch_states):
        where = f"{source} architecture {idx}"
        if meta_archs is not None and (idx >= len(meta_archs) or meta_archs[idx] != arch_str):
            raise CorruptData(f"{source}: architecture {idx} is {arch_str!r} in its file but "
                              f"{meta_archs[idx] if idx < len(meta_archs) else 'absent'!r} in the index list")
        values = _add_seeds(values, seeds, _seed_labels(by_fid, where))
        for fid, state in by_fid.items():
            _fill_from_state(values, row, fid, state, seeds, where)
        rows.append((idx, arch_str))
    values, seeds = _sort_seeds(values, seeds)
    for ds in DATASETS:  # params/flops do not depend on the budget
        for kind in ("params", "flops"):
            m = METRICS.index(f"{kind}_{ds}")
            block = values[:, :, :, m]
            with np.errstate(all="ignore"):
                filled = np.nanmax(np.where(np.isnan(block), -np.inf, block), axis=(1, 2))
            filled[~np.isfinite(filled)] = np.nan
            values[:, :, :, m] = filled[:, None, None]
    archs = [a for _, a in rows]
    index = np.array([i for i, _ in rows])
    return _finish(archs, seeds, values, source, fmt, index,
                   {"complete": len(rows) == N_ARCHS})


class _FastModeUnpickler(pickle.Unpickler):
    """Admits only the classes the official fast-mode files contain."""

    ALLOWED = {("collections", "OrderedDict"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise CorruptData(f"refusing to unpickle {module}.{name}: not a NATS-Bench fast-mode class")
        return super().find_class(module, name)


def _load_pbz2(path: Path) -> Any:
    try:
        raw = bz2.decompress(path.read_bytes())
        return _FastModeUnpickler(io.BytesIO(raw)).load()
    except CorruptData as exc:
        raise CorruptData(f"{path}: {exc}") from None
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise CorruptData(f"{path} is not a valid NATS-Bench fast-mode file ({type(exc).__name__}); "
                          "download it again") from None


_FAST_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")


def _fast_meta_archs(directory: Path) -> list[str] | None:
    """The official strings of all 15,625 architectures from ``meta.pickle.pbz2``, if present."""
    meta_path = directory / "meta.pickle.pbz2"
    if not meta_path.is_file():
        return None
    meta = _load_pbz2(meta_path)
    return list(meta["meta_archs"]) if isinstance(meta, Mapping) and "meta_archs" in meta else None


def _fast_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if _FAST_FILE.match(p.name))
    if not files:
        raise UserError(f"{directory} has no NNNNNN.pickle.pbz2 files; expected the "
                        "NATS-tss-v1_0-3ffb9-simple folder")
    return files


def _load_fast_file(p: Path) -> tuple[int, str, dict[int, Mapping]]:
    """(official index, official string, {schedule epochs: ArchResults state}) of one file."""
    d = _load_pbz2(p)
    try:
        idx = int(d["200"]["arch_index"])
        arch_str = str(d["200"]["arch_str"])
        by_fid = {int(k): d[k] for k in d if str(k) in ("12", "200")}
    except (KeyError, TypeError, ValueError):
        raise CorruptData(f"{p}: not a NATS-Bench topology result (no '200' arch_index/arch_str)") from None
    if idx != int(_FAST_FILE.match(p.name).group(1)):
        raise CorruptData(f"{p}: file holds architecture {idx}, its name says otherwise")
    return idx, arch_str, by_fid


def read_fast_mode(directory: Path) -> Table:
    """Every ``NNNNNN.pickle.pbz2`` of a NATS-tss fast-mode folder (rows = the files present)."""
    meta_archs = _fast_meta_archs(directory)
    files = _fast_files(directory)  # NNNNNN names: sorted by name is sorted by index
    return _table_from_states((_load_fast_file(p) for p in files), len(files), directory,
                              "nats-tss-fast-mode", meta_archs)


# --- per-epoch curves (prefix fidelities) ---------------------------------------------------
#: table name per training schedule (epochs) of the curves it holds
CURVE_TABLES = {200: "nb201-curves", 12: "nb201-12ep-curves"}
#: metric kinds of a curve table, per dataset: ``{ds}_{kind}``
CURVE_KINDS = ("valid", "test", "train", "train_time")
#: the product-space columns of a partial folder: the edges in the official string's order
EDGE_COLUMNS = tuple(f"{to}<-{frm}" for to, frm in EDGES)


def curve_oracle_declarations(schedule: int, datasets: Iterable[str]) -> list[dict[str, Any]]:
    """The oracles of a curve table: one per dataset with a per-epoch curve, prefix fidelities
    1..``schedule``, answering at ``schedule`` unless asked for another epoch."""
    prefix = CURVE_TABLES[schedule]
    return [{"name": f"{prefix}/{ds}", "search": f"{ds}_valid", "report": f"{ds}_test",
             "fidelity": schedule, "cost": f"{ds}_train_time", "train": f"{ds}_train",
             "direction": "max", "fidelity_kind": "prefix",
             "description": f"NAS-Bench-201 {ds}, per-epoch curve of the {schedule}-epoch schedule "
                            f"(prefix fidelities 1..{schedule}, cost = cumulative training seconds): "
                            f"search {ds}_valid, report {ds}_test"}
            for ds in datasets]


def _curve_datasets(state: Mapping[str, Any], where: str) -> list[str]:
    """The datasets whose valid and test evals are recorded after the first epoch, i.e. that
    have a whole per-epoch curve in this schedule (read from one architecture's file)."""
    out = []
    try:
        for ds in DATASETS:
            (vrun, vname), (trun, tname) = _VALID[ds], _TEST[ds]
            has_valid = has_test = False
            for (run, _), res in _results_of(state).items():
                acc = (res if isinstance(res, Mapping) else vars(res))["eval_acc1es"]
                has_valid |= run == vrun and f"{vname}@0" in acc
                has_test |= run == trun and f"{tname}@0" in acc
            if has_valid and has_test:
                out.append(ds)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptData(f"{where}: unexpected NB201 result layout ({type(exc).__name__}: {exc})") from None
    return out


def _fill_curves(values: np.ndarray, row: int, state: Mapping[str, Any], seed_column, datasets: list[str],
                 schedule: int, where: str) -> None:
    """Copy one architecture's per-epoch results of one schedule into ``values[row]``
    (axes: seed, epoch 1..schedule, metric); ``seed_column(label)`` is a seed's position on
    the seed axis. A value the file lacks stays NaN."""
    nan = float("nan")
    try:
        for (run, seed), res in _results_of(state).items():
            res = res if isinstance(res, Mapping) else vars(res)
            if int(res["epochs"]) != schedule:
                raise CorruptData(f"{where}: run {run!r} seed {seed} has {res['epochs']} epochs in the "
                                  f"{schedule}-epoch schedule")
            acc = res["eval_acc1es"]
            for d, ds in enumerate(datasets):
                base = d * len(CURVE_KINDS)
                (vrun, vname), (trun, tname) = _VALID[ds], _TEST[ds]
                if run not in (vrun, trun):
                    continue
                s = seed_column(str(int(seed)))
                if run == vrun:
                    train, times = res["train_acc1es"], res["train_times"]
                    values[row, s, :, base] = [float(acc.get(f"{vname}@{e}", nan)) / 100.0
                                               for e in range(schedule)]
                    values[row, s, :, base + 2] = [float(train[e]) / 100.0 for e in range(schedule)]
                    # cumulative seconds, summed in epoch order as the endpoint table sums them
                    values[row, s, :, base + 3] = np.cumsum([float(times[e]) for e in range(schedule)])
                if run == trun:
                    values[row, s, :, base + 1] = [float(acc.get(f"{tname}@{e}", nan)) / 100.0
                                                   for e in range(schedule)]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CorruptData(f"{where}: unexpected NB201 result layout ({type(exc).__name__}: {exc})") from None


def read_fast_mode_curves(directory: Path, schedule: int = 200) -> Table:
    """The per-epoch curves of one training schedule (200 or 12 epochs) of every
    ``NNNNNN.pickle.pbz2`` in a NATS-tss fast-mode folder: table ``CURVE_TABLES[schedule]``.

    Files are read one at a time (the whole folder does not fit in memory as Python objects);
    the values array is ``(files, seeds, schedule, 4 x datasets)`` float64, about 300 MB for
    the complete folder's 200-epoch curves of cifar10 (3 seeds)."""
    if schedule not in CURVE_TABLES:
        raise UserError(f"--curves takes the schedule's epochs, 12 or 200, got {schedule}")
    meta_archs = _fast_meta_archs(directory)
    files = _fast_files(directory)
    datasets: list[str] | None = None
    seeds: list[str] = []
    values = np.empty((0,))
    rows: list[tuple[int, str]] = []

    for row, p in enumerate(files):
        idx, arch_str, by_fid = _load_fast_file(p)
        if meta_archs is not None and (idx >= len(meta_archs) or meta_archs[idx] != arch_str):
            raise CorruptData(f"{p}: architecture {idx} is {arch_str!r} in its file but not in meta.pickle.pbz2")
        state = by_fid.get(schedule)
        if state is None:
            raise CorruptData(f"{p}: no {schedule}-epoch results")
        if datasets is None:
            datasets = _curve_datasets(state, str(p))
            if not datasets:
                raise UserError(f"{p}: the {schedule}-epoch runs have no per-epoch validation curve")
            values = np.full((len(files), 0, schedule, len(datasets) * len(CURVE_KINDS)), np.nan)
        values = _add_seeds(values, seeds, _seed_labels({schedule: state}, str(p)))
        _fill_curves(values, row, state, seeds.index, datasets, schedule, str(p))
        rows.append((idx, arch_str))
    values, seeds = _sort_seeds(values, seeds)
    return _curve_table(rows, seeds, values, datasets, schedule, directory)


def _curve_table(rows: list[tuple[int, str]], seeds: list[str], values: np.ndarray, datasets: list[str],
                 schedule: int, source: Path) -> Table:
    index = np.array([i for i, _ in rows], dtype=np.int64)
    strs = [a for _, a in rows]
    metrics = tuple(f"{ds}_{kind}" for ds in datasets for kind in CURVE_KINDS)
    decls = []
    for d in curve_oracle_declarations(schedule, datasets):
        for key in ("search", "report"):
            # an oracle must answer at every epoch it serves
            col = values[:, :, :, metrics.index(d[key])]
            missing = [e + 1 for e in range(schedule) if np.all(np.isnan(col[:, :, e]))]
            if missing:
                raise CorruptData(f"{source}: no {d[key]} values at epoch(s) {missing[:5]} of the "
                                  f"{schedule}-epoch curves; the files are incomplete")
        decls.append(d)
    complete = len(rows) == N_ARCHS and list(index) == list(range(N_ARCHS))
    columns: dict[str, np.ndarray] = {"index": index}
    if complete:
        space: dict[str, Any] = {"kind": "nb201"}
        archs = np.array(strs, dtype=str)
    else:
        # the NB201 space enumerates all 15,625 cells: a partial folder is the set of its rows
        ops = np.array([string_to_arch(a) for a in strs], dtype=np.int64).reshape(-1, len(EDGE_COLUMNS))
        space = {"kind": "product", "columns": list(EDGE_COLUMNS),
                 "categories": {c: list(OPS) for c in EDGE_COLUMNS}, "numeric": [],
                 "categorical": list(EDGE_COLUMNS), "nb201_subset": True}
        archs = np.array([";".join(f"{c}={OPS[o]}" for c, o in zip(EDGE_COLUMNS, row)) for row in ops], dtype=str)
        columns.update({"codes": ops.astype(np.int32), "arch_str": np.array(strs, dtype=str)})
    meta = {
        "source": {"format": "nats-tss-fast-mode", "name": source.name, "sha256": None},
        "space": space,
        "units": {"accuracy": "fraction", "train_time": "seconds (cumulative over epochs 1..e)"},
        "oracles": decls,
        "fidelity_kind": "prefix",
        "schedule_epochs": schedule,
        "n_archs_in_space": N_ARCHS,
        "complete": complete,
    }
    return Table(name=CURVE_TABLES[schedule], archs=archs, seeds=tuple(seeds),
                 fidelities=tuple(range(1, schedule + 1)), metrics=metrics, values=values,
                 columns=columns, meta=meta)


def read_pth(path: Path) -> Table:
    """A ``NAS-Bench-201-v1_*.pth`` file via the ``nas-bench-201`` package (runs pickle)."""
    try:
        import torch
        from nas_201_api import NASBench201API
    except ImportError:
        raise UserError("reading .pth files needs the nas-bench-201 package and torch: "
                        "pip install 'nas-harness[pth]'") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        api = NASBench201API(data, verbose=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, AssertionError, KeyError,
            ValueError, TypeError, AttributeError) as exc:
        raise CorruptData(f"{path} is not a readable NAS-Bench-201 .pth file ({type(exc).__name__}: {exc})") from None
    states = []
    for idx, by_hp in api.arch2infos_dict.items():
        by_fid = {}
        for hp, archres in by_hp.items():
            by_fid[int(hp)] = {"all_results": archres.all_results}
        arch_str = str(api.meta_archs[idx])
        states.append((int(idx), arch_str, by_fid))
    if not states:
        raise CorruptData(f"{path} holds no evaluated architectures")
    states.sort(key=lambda t: t[0])
    return _table_from_states(states, len(states), path, "nas-bench-201-pth", list(api.meta_archs))


# --- CLI protocol ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="CSV folder or file, NATS-tss fast-mode folder, or .pth file")
    parser.add_argument("--epochs", type=int, choices=FIDELITIES,
                        help="fidelity of a single CSV file (default: from its name, else 200)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a .pth file, which executes pickle code: only for files you trust")
    parser.add_argument("--curves", type=int, nargs="?", const=200, choices=sorted(CURVE_TABLES),
                        help="import the per-epoch learning curves of the 200-epoch schedule (default) or "
                             "the 12-epoch one from a NATS-tss fast-mode folder, as table nb201-curves or "
                             "nb201-12ep-curves (prefix fidelities: epochs 1..200 or 1..12)")


def detect_and_read(source: Path, epochs: int | None = None, trust_pickle: bool = False,
                    curves: int | None = None) -> Table:
    """The table ``source`` holds; ``curves`` (12 or 200): the per-epoch curves of that
    schedule instead of the 12/200-epoch endpoints (fast-mode folders only)."""
    if not source.exists():
        raise UserError(f"{source} does not exist")
    if curves is not None:
        if not (source.is_dir() and any(_FAST_FILE.match(p.name) for p in source.iterdir())):
            raise UserError(f"--curves reads per-epoch results from a NATS-tss fast-mode folder "
                            f"(NNNNNN.pickle.pbz2 files); {source} is not one")
        return read_fast_mode_curves(source, curves)
    if source.is_dir():
        csvs = {fid: source / n for fid, n in _CSV_NAMES.items() if (source / n).is_file()}
        if csvs:
            return read_csv_tables(csvs)
        if any(_FAST_FILE.match(p.name) for p in source.iterdir()):
            return _complete(read_fast_mode(source), source, "the complete NATS-tss-v1_0-3ffb9-simple folder")
        raise UserError(f"{source} has neither nb201_200ep.csv / nb201_12ep.csv nor NATS-Bench "
                        "fast-mode files")
    if source.suffix == ".csv":
        fid = epochs or (12 if "12ep" in source.name else 200)
        return read_csv_tables({fid: source})
    if source.suffix == ".pth":
        if not trust_pickle:
            raise UserError(f"{source} is a pickle-based .pth file: loading it can run arbitrary code. "
                            "If you trust it, re-run with --trust-pickle")
        return _complete(read_pth(source), source, "a complete file")
    raise UserError(f"don't know how to import {source}: give the CSV folder, a .csv file, a "
                    "NATS-tss fast-mode folder or a .pth file")


def _complete(table: Table, source: Path, what: str) -> Table:
    """An oracle needs every architecture; a partial official source is refused, not padded."""
    if table.n_archs != N_ARCHS:
        raise UserError(f"{source} holds {table.n_archs} of the {N_ARCHS} architectures; the oracle needs {what}")
    return table


def build(args: argparse.Namespace) -> Table:
    return detect_and_read(Path(os.path.expanduser(str(args.source))), args.epochs, args.trust_pickle,
                           getattr(args, "curves", None))
