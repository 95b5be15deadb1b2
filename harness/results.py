"""The results folder: one experiment, many runs, nothing half-written.

Layout::

    OUT/
      experiment.json                      what the folder holds: one entry per cell
      runs/<oracle>/<algorithm-label>/seed-000042.parquet

A *cell* is one (algorithm label, oracle) pair with its full configuration (algorithm name
and every hyper-parameter, oracle spec and data checksum, budget and protocol). Each run is
one Parquet file: its records (one row per query) plus, in the file's key-value metadata,
the run summary, the cell configuration, the seed, the project's version and git commit.
Record columns: ``sample`` (1-based query number), ``n_distinct`` (architectures charged so
far), ``arch_index`` (enumeration index, -1 on infinite spaces), ``arch_id`` (identity),
``arch`` (string form; omitted when it equals ``arch_id``), ``search`` / ``report`` (the
metrics), ``best_search`` / ``best_report`` (running maxima), ``incumbent_report`` (report
metric of the best-by-search architecture so far), ``cost`` / ``cum_cost`` (simulated
training seconds), ``repeat`` (answered from the run's cache), ``algo_cpu_s`` (the
algorithm's cumulative CPU time in ask/tell: its share of the run's wall time, read with the
performance counter around every call, times the run's CPU time, read once at each end), ``trial`` (the trial's id: its place among the
run's asks), ``fidelity`` (the epochs it was evaluated at; -1 in files written before
fidelities), ``start`` / ``finish`` (the simulated clock, see :mod:`harness.runner`) and
``epochs`` (training epochs the trial paid), ``measured_s`` (seconds a live oracle measured
computing the answer, charged once like ``cum_cost``; NaN for tables and in files written
before live oracles). Rows are in the order results were told.

Every run file also holds the columns ``oracle``, ``algorithm`` (the label), ``seed`` and
``config_id`` (the cell's configuration fingerprint), constant per file and dictionary- or
run-length-encoded (they cost a few bytes), and always the ``arch`` column, so that
``pandas.read_parquet(OUT / "runs")`` or ``pyarrow.dataset.dataset(OUT / "runs")`` reads a
whole folder as one tidy table (one schema, every row labelled). Folder names never contain
``=``, which pandas and pyarrow would read as a hive partition (``lanas:split=adam`` is
stored in ``lanas_split-adam/``); folders written before that keep their names (the
manifest records each cell's folder) and are read as before. ``nas-harness export`` turns
any folder into one CSV/Parquet table or rliable's input.

A run that the runner stopped (an algorithm stuck on known architectures) is a finished run
like any other, with the reason in its summary's ``stopped``. A run whose algorithm raised
an exception leaves no run file but ``_seed-NNNNNN.failed.json`` (the one-line message, the
traceback, the code version; the leading ``_`` makes pandas and pyarrow skip it): it is not
done, so running the same command again retries it.

Files are written to a temporary name and renamed into place, so a crash leaves either
the complete file or nothing; a run counts as done exactly when its file exists and
carries the cell's configuration. Re-running the same command therefore resumes, and a
folder refuses runs whose configuration differs from what it already holds. Every file and
folder is created with the permissions the umask gives (``-rw-r--r--`` under umask 022), as
any other tool's output, so a group share or another user's Ray worker can read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from oracles.errors import UserError

from .files import FileLock, atomic_write_bytes
from .provenance import code_version

FORMAT = "nas-harness-results/1"
META_KEY = b"nas_harness"


def slug(text: str) -> str:
    """A file-system-safe, readable folder name for an oracle or algorithm label.

    ``=`` becomes ``-`` (``lanas:split=adam`` -> ``lanas_split-adam``): pandas and pyarrow read
    a folder named ``key=value`` as a hive partition and would turn part of the label into a
    bogus column. Any other character outside ``[A-Za-z0-9._-]`` becomes ``_``.
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("=", "-")).strip("_")
    return s or "_"


def legacy_slug(text: str) -> str:
    """The folder name results folders used before :func:`slug` escaped ``=`` (still read)."""
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    return s or "_"


def fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Processor", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    import platform
    return platform.processor() or None


_MACHINE: dict[int, dict[str, Any]] = {}


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """What a run's floating-point results may depend on: CPU model and the BLAS libraries.

    Linear algebra (least squares in LaNAS, torch's matrix products) may differ in the last
    bits between BLAS kernels, and OpenBLAS picks its kernel by CPU type at load time; the
    tree of LaNAS amplifies such bits into other trajectories (issue 13, "Reproducibility
    across machines"). So every run's metadata and every baseline file records, per loaded
    BLAS/OpenMP library as :func:`threadpoolctl.threadpool_info` reports it: ``internal_api``
    (``openblas``, ``mkl``...), ``version``, ``architecture`` (the kernel or core type, e.g.
    ``Haswell``, ``SkylakeX``, ``Zen``), ``threading_layer`` and ``num_threads`` (runs use 1,
    see :func:`harness.runner.run_one`), plus the CPU model, machine type, OS, and the
    Python and numpy versions. Libraries are only loaded by imports, so the answer is cached
    per number of imported modules (``threadpool_info`` costs about a millisecond).

    ``threads``: report this as every library's ``num_threads`` (the runner limits each one
    to a single thread while a run lasts, so the experiment passes 1); None: the current
    setting.
    """
    import sys
    key = len(sys.modules)
    info = _MACHINE.get(key)
    if info is None:
        import platform
        from threadpoolctl import threadpool_info
        libs = [{k: lib.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                         "threading_layer", "num_threads")}
                for lib in threadpool_info()]
        info = {"cpu": cpu_model(), "machine": platform.machine(), "cpus": os.cpu_count(),
                "system": platform.platform(terse=True), "python": platform.python_version(),
                "numpy": np.__version__, "blas": libs}
        _MACHINE.clear()
        _MACHINE[key] = info
    info = json.loads(json.dumps(info))  # a copy callers may change
    if threads is not None:
        for lib in info["blas"]:
            lib["num_threads"] = int(threads)
    return info


@dataclass(frozen=True)
class Cell:
    label: str                    #: algorithm label as given by the user, e.g. "lanas:preset=paper"
    oracle: str                   #: oracle spec
    config: dict[str, Any]        #: full run configuration incl. oracle checksum
    #: what the analysis needs about the oracle (optimum, space size, metric names and units;
    #: harness.metrics.oracle_facts), written next to the configuration in experiment.json so
    #: `report`/`plot` never reload the table; not part of the configuration or fingerprint
    oracle_facts: dict[str, Any] | None = field(default=None, compare=False)
    #: the folder the results folder's manifest records for this cell (folders written before
    #: :func:`slug` escaped ``=`` keep theirs); None: the name :func:`slug` gives today
    stored_folder: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.oracle} | {self.label}"

    @property
    def folder(self) -> str:
        return self.stored_folder or self.new_folder

    @property
    def new_folder(self) -> str:
        return f"runs/{slug(self.oracle)}/{slug(self.label)}"

    @property
    def legacy_folder(self) -> str:
        return f"runs/{legacy_slug(self.oracle)}/{legacy_slug(self.label)}"


def _os_error(exc: OSError, what: str) -> UserError:
    return UserError(f"cannot write {what}: {exc.strerror or exc} (check the folder is writable and "
                     "the disk is not full)")


class ResultsStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- exclusive use ---------------------------------------------------------------------
    @contextmanager
    def session(self):
        """Hold the folder for one experiment; clear what a killed predecessor left behind.

        ``OUT/.lock`` is ``flock``-ed for the duration (released by the kernel however the
        process ends), so two commands never write one folder at once: the second gets a
        one-line error instead of racing on ``experiment.json``. Holding the lock, any
        temporary file in the folder belongs to a process that is gone (a SIGKILL landed
        mid-write), so it is removed: a resumed folder holds only complete files.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.root / ".lock", f"another nas-harness command is writing to {self.root}; "
                            "wait for it to finish or use another --out")
        except OSError as exc:
            raise _os_error(exc, f"results folder {self.root}") from None
        with lock:
            self.sweep_temporaries()
            try:
                yield self
            finally:
                # still holding the lock, every writer has stopped: an interrupted run leaves
                # no temporary file behind (workers stopped mid-write cannot remove theirs)
                self.sweep_temporaries()

    def temporaries(self) -> list[Path]:
        """Temporary files of interrupted atomic writes (see :func:`harness.files.atomic_write_bytes`):
        the folder's, the run files' and the one-shot checkpoints' (a pool worker stopped by
        Ctrl-C while it wrote ``seed-NNNNNN.ckpt/state.pt`` leaves one there)."""
        return sorted([*self.root.glob(".*.tmp"), *self.root.glob("runs/*/*/.*.tmp"),
                       *self.root.glob("runs/*/*/seed-*.ckpt/.*.tmp")])

    def sweep_temporaries(self) -> int:
        n = 0
        for path in self.temporaries():
            try:
                path.unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    # -- the experiment manifest -------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "experiment.json"

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"format": FORMAT, "cells": {}}
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{self.manifest_path} is damaged (not JSON); it is not a results folder "
                            "this version can use: choose another --out") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cells"), dict):
            raise UserError(f"{self.manifest_path} is not a nas-harness results manifest; choose another --out")
        for key, cell in data["cells"].items():
            if not (isinstance(cell, dict) and isinstance(cell.get("label"), str)
                    and isinstance(cell.get("oracle"), str) and isinstance(cell.get("config"), dict)
                    and cell.get("folder") in _folder_names(cell["label"], cell["oracle"])):
                raise UserError(f"{self.manifest_path} is damaged (entry {key!r}); restore it from a backup "
                                "or choose another --out")
        return data

    def register(self, cells: list[Cell]) -> list[Cell]:
        """Add ``cells`` to the folder, refusing any whose label exists with another
        configuration or whose folder name another cell already uses; return the cells as
        the folder holds them (with the folder each one's runs are in)."""
        data = self.read_manifest()
        changed = False
        for cell in cells:
            old = data["cells"].get(cell.key)
            if old is None:
                clash = next((k for k, c in data["cells"].items() if c["folder"] == cell.new_folder), None)
                if clash is not None:
                    raise UserError(f"'{cell.key}' would be stored in {cell.new_folder}, which already holds "
                                    f"'{clash}'; use another --out or another algorithm label")
                data["cells"][cell.key] = {"label": cell.label, "oracle": cell.oracle,
                                           "folder": cell.new_folder, "config": cell.config}
                changed = True
            elif cell.oracle_facts is not None and old.get("oracle_facts") != cell.oracle_facts \
                    and fingerprint(old["config"]) == fingerprint(cell.config):
                # a folder written before the facts (or some of them: direction, fidelities)
                # were stored gets them; the data are the same (the checksum is in the config)
                changed = True
            elif fingerprint(old["config"]) != fingerprint(cell.config):
                diff = sorted(k for k in set(old["config"]) | set(cell.config)
                              if old["config"].get(k) != cell.config.get(k))
                raise UserError(f"{self.root} already holds '{cell.key}' run with a different "
                                f"configuration ({', '.join(diff)} differ); use another --out or a new "
                                "algorithm label")
            if cell.oracle_facts is not None:
                data["cells"][cell.key]["oracle_facts"] = cell.oracle_facts
        if changed or not self.manifest_path.exists():
            data.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            data["code"] = code_version()
            try:
                atomic_write_bytes(self.manifest_path,
                                   lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=True).encode()))
            except OSError as exc:
                raise _os_error(exc, f"results folder {self.root}") from None
        return [replace(cell, stored_folder=data["cells"][cell.key]["folder"]) for cell in cells]

    def cells(self) -> list[Cell]:
        return [Cell(c["label"], c["oracle"], c["config"], stored_folder=c["folder"])
                for c in self.read_manifest()["cells"].values()]

    # -- runs ----------------------------------------------------------------------------
    def run_path(self, cell: Cell, seed: int) -> Path:
        return self.root / cell.folder / f"seed-{int(seed):06d}.parquet"

    def run_meta(self, path: Path) -> dict[str, Any] | None:
        """The metadata of a finished run file, or None if it is missing or unreadable."""
        try:
            md = pq.read_schema(path).metadata or {}
            meta = json.loads(md[META_KEY])
        except (OSError, KeyError, ValueError, pa.ArrowException):
            return None
        return meta if isinstance(meta, dict) else None

    def is_done(self, cell: Cell, seed: int) -> bool:
        meta = self.run_meta(self.run_path(cell, seed))
        return meta is not None and meta.get("cell_fingerprint") == fingerprint(cell.config) \
            and meta.get("seed") == int(seed)

    def failure_path(self, cell: Cell, seed: int) -> Path:
        return self.root / cell.folder / f"_seed-{int(seed):06d}.failed.json"

    def write_run(self, cell: Cell, seed: int, records: dict[str, np.ndarray], summary: dict[str, Any],
                  machine: dict[str, Any] | None = None) -> Path:
        """Write one finished run; ``machine`` (:func:`machine_info`) is that of the process
        that computed it (default: this one)."""
        fp = fingerprint(cell.config)
        meta = {"format": FORMAT, "cell": cell.key, "label": cell.label, "oracle": cell.oracle,
                "config": cell.config, "cell_fingerprint": fp, "seed": int(seed),
                "summary": summary, "code": code_version(), "machine": machine or machine_info(),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        table = run_table(records, oracle=cell.oracle, algorithm=cell.label, seed=int(seed), config_id=fp)
        table = table.replace_schema_metadata(
            {META_KEY: json.dumps(meta, sort_keys=True, default=_json_default).encode()})
        path = self.run_path(cell, seed)
        try:
            atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, compression="zstd",
                                                               use_dictionary=list(DICTIONARY_COLUMNS)))
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        try:  # the run succeeded after an earlier attempt failed
            self.failure_path(cell, seed).unlink()
        except FileNotFoundError:
            pass
        return path

    def write_failure(self, cell: Cell, seed: int, summary: dict[str, Any],
                      machine: dict[str, Any] | None = None) -> Path:
        """Record a run whose algorithm raised: ``_seed-NNNNNN.failed.json`` (not a finished run;
        the next execution of the experiment retries it)."""
        data = {"format": FORMAT, "cell": cell.key, "label": cell.label, "oracle": cell.oracle,
                "cell_fingerprint": fingerprint(cell.config), "seed": int(seed),
                "failed": summary.get("failed"), "traceback": summary.get("traceback"),
                "n_queries": summary.get("n_queries"), "n_distinct": summary.get("n_distinct"),
                "code": code_version(), "machine": machine or machine_info(),
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        path = self.failure_path(cell, seed)
        try:
            atomic_write_bytes(path, lambda fh: fh.write(
                json.dumps(data, indent=1, sort_keys=True, default=_json_default).encode()))
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        return path

    def failures(self, cells: list[Cell] | None = None) -> list[dict[str, Any]]:
        """The failed runs recorded for ``cells`` (default: every cell), not since redone."""
        out = []
        for cell in self.cells() if cells is None else cells:
            fp = fingerprint(cell.config)
            for path in sorted((self.root / cell.folder).glob("_seed-*.failed.json")):
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError, UnicodeDecodeError):
                    continue
                if isinstance(data, dict) and data.get("cell_fingerprint") == fp \
                        and not self.is_done(cell, data.get("seed", -1)):
                    out.append({**data, "path": str(path)})
        return out

    def iter_runs(self, with_records: bool = False) -> Iterator[tuple[Cell, dict[str, Any], pa.Table | None]]:
        """Every finished run: (cell, run metadata, records table if asked)."""
        for cell in self.cells():
            folder = self.root / cell.folder
            if not folder.is_dir():
                continue
            fp = fingerprint(cell.config)
            for path in sorted(folder.glob("seed-*.parquet")):
                records = None
                if with_records:  # one read: the metadata comes with the table (and
                    # ParquetFile, unlike read_table, does not load pyarrow's dataset layer)
                    try:
                        records = pq.ParquetFile(path).read()
                        meta = json.loads((records.schema.metadata or {})[META_KEY])
                    except (OSError, KeyError, ValueError, pa.ArrowException):
                        if self.run_meta(path) is not None:
                            raise UserError(f"{path} is damaged; delete it and re-run the experiment to "
                                            "recompute that run") from None
                        continue  # not a finished run (e.g. truncated): the experiment redoes it
                else:
                    meta = self.run_meta(path)
                if not isinstance(meta, dict) or meta.get("cell_fingerprint") != fp:
                    continue
                yield cell, meta, records


def _folder_names(label: str, oracle: str) -> tuple[str, str]:
    """The folder names a manifest may record for a cell: today's and the pre-escaping one."""
    cell = Cell(label, oracle, {})
    return cell.new_folder, cell.legacy_folder


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


#: the columns naming a run, first in every run file (constant per file)
ID_COLUMNS = ("oracle", "algorithm", "seed", "config_id")


#: the label columns Parquet stores dictionary-encoded (every other column is near-unique
#: per run, where a dictionary only costs time and bytes)
DICTIONARY_COLUMNS = ("oracle", "algorithm", "config_id")


def _constant(value: Any, n: int) -> pa.Array:
    if isinstance(value, str):  # dictionary-encoded: one string and n small indices
        return pa.DictionaryArray.from_arrays(_to_arrow(np.zeros(n, dtype=np.int32)),
                                              _to_arrow(np.array([value], dtype=object)))
    return _to_arrow(np.full(n, value, dtype=np.int64))


def _to_arrow(v: np.ndarray) -> pa.Array:
    """A numpy column as an Arrow array from its buffers.

    ``pa.array`` would do, but its first call imports pandas (half a second of CPU and tens of
    MB in every worker process, which otherwise never needs it). NaN becomes null (unknown,
    e.g. no training cost in the table); object arrays hold strings.
    """
    n = len(v)
    if v.dtype == object:
        data = [str(x).encode() for x in v]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(d) for d in data], out=offsets[1:])
        if offsets[-1] >= 2 ** 31:
            return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets),
                                                                pa.py_buffer(b"".join(data))])
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                      pa.py_buffer(b"".join(data))])
    if v.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(np.packbits(v, bitorder="little"))])
    if v.dtype == np.int32:
        dtype, arrow = np.int32, pa.int32()
    elif v.dtype.kind in "iu":
        dtype, arrow = np.int64, pa.int64()
    elif v.dtype.kind == "f":
        dtype, arrow = np.float64, pa.float64()
    else:
        raise TypeError(f"no Arrow conversion for a {v.dtype} column")
    v = np.ascontiguousarray(v, dtype=dtype)
    nan = np.isnan(v) if v.dtype.kind == "f" else None
    if nan is not None and nan.any():
        valid = pa.py_buffer(np.packbits(~nan, bitorder="little"))
        return pa.Array.from_buffers(arrow, n, [valid, pa.py_buffer(v)], null_count=int(nan.sum()))
    return pa.Array.from_buffers(arrow, n, [None, pa.py_buffer(v)])


def run_table(records: dict[str, np.ndarray] | pa.Table, *, oracle: str, algorithm: str, seed: int,
              config_id: str) -> pa.Table:
    """A run's records as the run file stores them: the naming columns (:data:`ID_COLUMNS`)
    first, then every record column, with ``arch`` present even where it equals ``arch_id``
    (every file of a folder has one schema, so a folder reads as one table). Also brings
    the records of files written before these columns existed to today's layout."""
    table = records if isinstance(records, pa.Table) else records_to_arrow(records)
    table = table.drop_columns([c for c in ID_COLUMNS if c in table.column_names])
    if "arch" not in table.column_names and "arch_id" in table.column_names:
        table = table.add_column(table.column_names.index("arch_id") + 1, "arch", table.column("arch_id"))
    n = table.num_rows
    if "trial" not in table.column_names and "sample" in table.column_names:
        # written before trials (one worker, one fidelity): trial k was the k-th query; the
        # fidelity and the simulated clock were not recorded
        sample = np.asarray(table.column("sample"), dtype=np.int64)
        table = table.append_column("trial", _to_arrow(sample - 1))
        table = table.append_column("fidelity", _to_arrow(np.full(n, -1, dtype=np.int64)))
        for name in ("start", "finish", "epochs"):
            table = table.append_column(name, _to_arrow(np.full(n, np.nan)))
    if "measured_s" not in table.column_names and "sample" in table.column_names:
        # written before live oracles: nothing was measured
        table = table.append_column("measured_s", _to_arrow(np.full(n, np.nan)))
    ids = {"oracle": oracle, "algorithm": algorithm, "seed": int(seed), "config_id": config_id}
    return pa.table({**{k: _constant(ids[k], n) for k in ID_COLUMNS},
                     **{k: table.column(k) for k in table.column_names}})


def records_to_arrow(records: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({k: _to_arrow(np.asarray(v)) for k, v in records.items()})
