"""The project's tabular-benchmark format: one dense array plus a map of its axes.

Like Syne Tune's blackbox repository, a benchmark table is

* ``values``: float array of shape ``(architectures, seeds, fidelities, metrics)``, NaN
  where a source has no value (e.g. a seed that was not run);
* its axes: ``archs`` (one canonical string per row, in the source's official order),
  ``seeds`` (labels, e.g. ``"777"`` or ``"mean"`` when the source only has seed means),
  ``fidelities`` (training epochs) and ``metrics`` (names such as ``cifar10_valid``);
* ``columns``: extra per-architecture arrays (first axis = architectures), e.g. NB101's
  adjacency bits and operations;
* ``meta``: JSON-able provenance (source file name and checksum, units, space).

On disk a table is a directory of ``.npy`` files (loaded memory-mapped, never with pickle)
and a ``manifest.json`` holding the axes, the metadata and a SHA-256 per file. Loading
verifies every checksum, so a truncated or tampered file is refused instead of silently
answering wrong numbers. Writing goes to a temporary sibling directory that is renamed
into place, so a crash never leaves a half-written table behind.

Accuracies are stored as fractions in [0, 1] whatever the source's unit; importers convert.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptData

FORMAT = "nas-harness-table/1"
MANIFEST = "manifest.json"


@dataclass
class Table:
    name: str
    archs: np.ndarray
    seeds: tuple[str, ...]
    fidelities: tuple[int, ...]
    metrics: tuple[str, ...]
    values: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.seeds = tuple(str(s) for s in self.seeds)
        self.fidelities = tuple(int(f) for f in self.fidelities)
        self.metrics = tuple(str(m) for m in self.metrics)
        shape = (len(self.archs), len(self.seeds), len(self.fidelities), len(self.metrics))
        if self.values.shape != shape:
            raise ValueError(f"values has shape {self.values.shape}, axes say {shape}")
        for key, col in self.columns.items():
            if len(col) != len(self.archs):
                raise ValueError(f"column {key!r} has {len(col)} rows, table has {len(self.archs)}")

    @property
    def n_archs(self) -> int:
        return len(self.archs)

    def metric_index(self, metric: str) -> int:
        try:
            return self.metrics.index(metric)
        except ValueError:
            raise CorruptData(f"table {self.name!r} has no metric {metric!r} "
                              f"(it has {', '.join(self.metrics)})") from None

    def fidelity_index(self, fidelity: int) -> int:
        try:
            return self.fidelities.index(int(fidelity))
        except ValueError:
            raise CorruptData(f"table {self.name!r} has no fidelity {fidelity} "
                              f"(it has {', '.join(map(str, self.fidelities))})") from None

    def column(self, metric: str, fidelity: int | None = None, seed: str | None = None) -> np.ndarray:
        """One metric for every architecture: mean over seeds (NaN-aware) unless ``seed``."""
        f = self.fidelity_index(fidelity) if fidelity is not None else len(self.fidelities) - 1
        m = self.metric_index(metric)
        block = self.values[:, :, f, m]
        if seed is not None:
            return np.asarray(block[:, self.seeds.index(str(seed))], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(block), axis=1)
            sums = np.nansum(block, axis=1, dtype=np.float64)
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    return _sha256(Path(path))


def _make_sibling_dir(directory: Path) -> Path:
    """A new, uniquely named hidden sibling of ``directory``, with the mode the umask gives.

    Not ``tempfile.mkdtemp``: its 0700 mode would survive the rename into place and make an
    imported table unreadable to the group or other users of a shared data directory.
    ``os.mkdir(..., 0o777)`` lets the umask decide, as for any other tool's output.
    """
    for _ in range(100):
        tmp = directory.with_name(f".{directory.name}.{secrets.token_hex(6)}")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary directory next to {directory}")


def save_table(table: Table, directory: str | os.PathLike) -> dict[str, Any]:
    """Write ``table`` to ``directory`` atomically; return the manifest written."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_sibling_dir(directory)
    try:
        arrays = {"archs": np.asarray(table.archs, dtype=str), "values": table.values}
        for key, col in table.columns.items():
            arrays[f"col.{key}"] = np.asarray(col)
        files = {}
        for key, arr in arrays.items():
            if arr.dtype == object:
                raise ValueError(f"array {key!r} has dtype object; the format holds no pickles")
            fname = f"{key}.npy"
            np.save(tmp / fname, arr, allow_pickle=False)
            files[fname] = {"sha256": _sha256(tmp / fname), "shape": list(arr.shape), "dtype": arr.dtype.str}
        manifest = {
            "format": FORMAT,
            "name": table.name,
            "axes": {"archs": int(table.n_archs), "seeds": list(table.seeds),
                     "fidelities": list(table.fidelities), "metrics": list(table.metrics)},
            "columns": sorted(table.columns),
            "files": files,
            "meta": table.meta,
        }
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        # Swap into place: old table (if any) moves aside first, then is removed.
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise CorruptData(f"{directory} is not a nas-harness table (no {MANIFEST}); re-import it") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CorruptData(f"{path} is not valid JSON; the table is damaged, re-import it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptData(f"{path} is not a {FORMAT} manifest; re-import the table")
    problem = _manifest_problem(manifest)
    if problem:
        raise CorruptData(f"{path} is damaged ({problem}); re-import the table")
    return manifest


def _manifest_problem(m: dict[str, Any]) -> str | None:
    """What is structurally wrong with a manifest (hand-edited or damaged), or None."""
    if not isinstance(m.get("name"), str):
        return "no table name"
    axes = m.get("axes")
    if not isinstance(axes, dict) or not isinstance(axes.get("archs"), int) or \
            not all(isinstance(axes.get(k), list) for k in ("seeds", "fidelities", "metrics")):
        return "axes must give archs and the lists seeds, fidelities, metrics"
    files = m.get("files")
    if not isinstance(files, dict) or "archs.npy" not in files or "values.npy" not in files:
        return "files must list archs.npy and values.npy"
    for fname, info in files.items():
        if not (isinstance(fname, str) and fname.endswith(".npy") and "/" not in fname and "\\" not in fname
                and not fname.startswith(".")):
            return f"bad file name {fname!r}"
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or \
                not isinstance(info.get("shape"), list):
            return f"entry of {fname} lacks sha256 or shape"
    if not isinstance(m.get("meta", {}), dict):
        return "meta must be an object"
    return None


def table_checksum(manifest: dict[str, Any]) -> str:
    """One checksum for the whole table as stored: hash of the per-file hashes, the axes and
    the metadata (which holds e.g. a generic table's categories and numeric columns: two
    tables with equal arrays but different metadata are different tables). Identifies the
    files (integrity, shipping one copy to workers); an *oracle's* identity is the data it
    serves, :func:`oracles.oracle.served_checksum`."""
    payload = json.dumps({"files": {k: v["sha256"] for k, v in manifest["files"].items()},
                          "axes": manifest["axes"], "meta": manifest.get("meta", {})}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_table(directory: str | os.PathLike, verify: bool = True) -> Table:
    """Load a table written by :func:`save_table`, memory-mapped, checking every file."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    arrays = {}
    for fname, info in manifest["files"].items():
        path = directory / fname
        if not path.is_file():
            raise CorruptData(f"table file {path} is missing; re-import the table")
        if verify and _sha256(path) != info["sha256"]:
            raise CorruptData(f"table file {path} does not match its checksum (truncated or "
                              "modified); re-import the table")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:
            raise CorruptData(f"table file {path} is not a valid .npy array; re-import the table") from None
        if list(arr.shape) != info["shape"]:
            raise CorruptData(f"table file {path} has shape {arr.shape}, manifest says {info['shape']}; "
                              "re-import the table")
        arrays[fname[:-4]] = arr
    axes = manifest["axes"]
    try:
        table = Table(
            name=manifest["name"],
            archs=np.asarray(arrays.pop("archs")),
            seeds=tuple(axes["seeds"]),
            fidelities=tuple(axes["fidelities"]),
            metrics=tuple(axes["metrics"]),
            values=arrays.pop("values"),
            columns={k[4:]: v for k, v in arrays.items() if k.startswith("col.")},
            meta=dict(manifest.get("meta", {})),
        )
    except (KeyError, ValueError) as exc:
        raise CorruptData(f"table {directory} is inconsistent ({exc}); re-import it") from None
    table.meta["checksum"] = table_checksum(manifest)
    return table
