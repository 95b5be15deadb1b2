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


def _seeds_in(states: Iterable[Mapping[str, Any]]) -> list[str]:
    seeds = set()
    for st in states:
        for (_, seed) in _results_of(st):
            seeds.add(int(seed))
    return [str(s) for s in sorted(seeds)]


def _table_from_states(arch_states: list[tuple[int, str, dict[int, Mapping]]], source: Path, fmt: str,
                       meta_archs: list[str] | None) -> Table:
    arch_states.sort(key=lambda t: t[0])
    seeds = _seeds_in(st for _, _, by_fid in arch_states for st in by_fid.values())
    values = _new_values(len(arch_states), len(seeds))
    for row, (idx, arch_str, by_fid) in enumerate(arch_states):
        if meta_archs is not None and meta_archs[idx] != arch_str:
            raise CorruptData(f"{source}: architecture {idx} is {arch_str!r} in its file but "
                              f"{meta_archs[idx]!r} in the index list")
        for fid, state in by_fid.items():
            _fill_from_state(values, row, fid, state, seeds, f"{source} architecture {idx}")
    for ds in DATASETS:  # params/flops do not depend on the budget
        for kind in ("params", "flops"):
            m = METRICS.index(f"{kind}_{ds}")
            block = values[:, :, :, m]
            with np.errstate(all="ignore"):
                filled = np.nanmax(np.where(np.isnan(block), -np.inf, block), axis=(1, 2))
            filled[~np.isfinite(filled)] = np.nan
            values[:, :, :, m] = filled[:, None, None]
    archs = [a for _, a, _ in arch_states]
    index = np.array([i for i, _, _ in arch_states])
    return _finish(archs, seeds, values, source, fmt, index,
                   {"complete": len(arch_states) == N_ARCHS})


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


def read_fast_mode(directory: Path) -> Table:
    """Every ``NNNNNN.pickle.pbz2`` of a NATS-tss fast-mode folder (rows = the files present)."""
    meta_path = directory / "meta.pickle.pbz2"
    meta_archs = None
    if meta_path.is_file():
        meta = _load_pbz2(meta_path)
        meta_archs = list(meta["meta_archs"]) if isinstance(meta, Mapping) and "meta_archs" in meta else None
    files = sorted(p for p in directory.iterdir() if _FAST_FILE.match(p.name))
    if not files:
        raise UserError(f"{directory} has no NNNNNN.pickle.pbz2 files; expected the "
                        "NATS-tss-v1_0-3ffb9-simple folder")
    states = []
    for p in files:
        d = _load_pbz2(p)
        try:
            idx = int(d["200"]["arch_index"])
            arch_str = str(d["200"]["arch_str"])
            by_fid = {int(k): d[k] for k in d if str(k) in ("12", "200")}
        except (KeyError, TypeError, ValueError):
            raise CorruptData(f"{p}: not a NATS-Bench topology result (no '200' arch_index/arch_str)") from None
        if idx != int(_FAST_FILE.match(p.name).group(1)):
            raise CorruptData(f"{p}: file holds architecture {idx}, its name says otherwise")
        states.append((idx, arch_str, by_fid))
    return _table_from_states(states, directory, "nats-tss-fast-mode", meta_archs)


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
    return _table_from_states(states, path, "nas-bench-201-pth", list(api.meta_archs))


# --- CLI protocol ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="CSV folder or file, NATS-tss fast-mode folder, or .pth file")
    parser.add_argument("--epochs", type=int, choices=FIDELITIES,
                        help="fidelity of a single CSV file (default: from its name, else 200)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a .pth file, which executes pickle code: only for files you trust")


def detect_and_read(source: Path, epochs: int | None = None, trust_pickle: bool = False) -> Table:
    if not source.exists():
        raise UserError(f"{source} does not exist")
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
    return detect_and_read(Path(os.path.expanduser(str(args.source))), args.epochs, args.trust_pickle)
