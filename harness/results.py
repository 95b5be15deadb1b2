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
training seconds), ``repeat`` (answered from the run's cache) and ``algo_cpu_s`` (the
algorithm's cumulative CPU time in ask/tell).

Files are written to a temporary name and renamed into place, so a crash leaves either
the complete file or nothing; a run counts as done exactly when its file exists and
carries the cell's configuration. Re-running the same command therefore resumes, and a
folder refuses runs whose configuration differs from what it already holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from oracles.errors import UserError

FORMAT = "nas-harness-results/1"
META_KEY = b"nas_harness"


def slug(text: str) -> str:
    """A file-system-safe, readable name for an oracle or algorithm label."""
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    return s or "_"


def fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    from harness import __version__
    commit, dirty = None, None
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        if commit:
            dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}


@dataclass(frozen=True)
class Cell:
    label: str                    #: algorithm label as given by the user, e.g. "lanas:preset=paper"
    oracle: str                   #: oracle spec
    config: dict[str, Any]        #: full run configuration incl. oracle checksum

    @property
    def key(self) -> str:
        return f"{self.oracle} | {self.label}"

    @property
    def folder(self) -> str:
        return f"runs/{slug(self.oracle)}/{slug(self.label)}"


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
            fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(exc, f"results folder {self.root}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another nas-harness command is writing to {self.root}; wait for it "
                                "to finish or use another --out") from None
            self.sweep_temporaries()
            try:
                yield self
            finally:
                # still holding the lock, every writer has stopped: an interrupted run leaves
                # no temporary file behind (workers stopped mid-write cannot remove theirs)
                self.sweep_temporaries()
        finally:
            os.close(fd)

    def temporaries(self) -> list[Path]:
        """Temporary files of interrupted atomic writes (see :func:`_atomic_write_bytes`)."""
        return sorted([*self.root.glob(".*.tmp"), *self.root.glob("runs/*/*/.*.tmp")])

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
                    and cell.get("folder") == Cell(cell["label"], cell["oracle"], {}).folder):
                raise UserError(f"{self.manifest_path} is damaged (entry {key!r}); restore it from a backup "
                                "or choose another --out")
        return data

    def register(self, cells: list[Cell]) -> None:
        """Add ``cells`` to the folder, refusing any whose label exists with another configuration."""
        data = self.read_manifest()
        changed = False
        for cell in cells:
            old = data["cells"].get(cell.key)
            if old is None:
                data["cells"][cell.key] = {"label": cell.label, "oracle": cell.oracle,
                                           "folder": cell.folder, "config": cell.config}
                changed = True
            elif fingerprint(old["config"]) != fingerprint(cell.config):
                diff = sorted(k for k in set(old["config"]) | set(cell.config)
                              if old["config"].get(k) != cell.config.get(k))
                raise UserError(f"{self.root} already holds '{cell.key}' run with a different "
                                f"configuration ({', '.join(diff)} differ); use another --out or a new "
                                "algorithm label")
        if changed or not self.manifest_path.exists():
            data.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            data["code"] = code_version()
            try:
                _atomic_write_bytes(self.manifest_path,
                                    lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=True).encode()))
            except OSError as exc:
                raise _os_error(exc, f"results folder {self.root}") from None

    def cells(self) -> list[Cell]:
        return [Cell(c["label"], c["oracle"], c["config"]) for c in self.read_manifest()["cells"].values()]

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

    def write_run(self, cell: Cell, seed: int, records: dict[str, np.ndarray], summary: dict[str, Any]) -> Path:
        meta = {"format": FORMAT, "cell": cell.key, "label": cell.label, "oracle": cell.oracle,
                "config": cell.config, "cell_fingerprint": fingerprint(cell.config), "seed": int(seed),
                "summary": summary, "code": code_version(),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        table = records_to_arrow(records).replace_schema_metadata(
            {META_KEY: json.dumps(meta, sort_keys=True, default=_json_default).encode()})
        path = self.run_path(cell, seed)
        try:
            _atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
        except OSError as exc:
            raise _os_error(exc, str(path)) from None
        return path

    def iter_runs(self, with_records: bool = False) -> Iterator[tuple[Cell, dict[str, Any], pa.Table | None]]:
        """Every finished run: (cell, run metadata, records table if asked)."""
        for cell in self.cells():
            folder = self.root / cell.folder
            if not folder.is_dir():
                continue
            fp = fingerprint(cell.config)
            for path in sorted(folder.glob("seed-*.parquet")):
                meta = self.run_meta(path)
                if meta is None or meta.get("cell_fingerprint") != fp:
                    continue
                records = None
                if with_records:
                    try:
                        records = pq.read_table(path)
                    except (OSError, pa.ArrowException):
                        raise UserError(f"{path} is damaged; delete it and re-run the experiment to "
                                        "recompute that run") from None
                yield cell, meta, records


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def records_to_arrow(records: dict[str, np.ndarray]) -> pa.Table:
    arrays = {}
    for k, v in records.items():
        if v.dtype == object:
            arrays[k] = pa.array(list(v), type=pa.string())
        else:
            # NaN (unknown, e.g. no training cost in the table) is stored as null
            arrays[k] = pa.array(v, from_pandas=True)
    return pa.table(arrays)
