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

The manifest checks itself too (format ``nas-harness-table/2``): its ``manifest_sha256`` is
the SHA-256 of the canonical JSON of everything else in it (:func:`manifest_digest`: keys
sorted, no spaces, ASCII). The per-file checksums protect the numbers, but the labels that
give them meaning (axes, metric names, seed labels, the oracles and space in ``meta``) live
in the manifest alone: under format ``/1``, 197 of 5,236 single-bit flips of a manifest
loaded a table with wrong labels. Under ``/2`` every change to the manifest's content is
refused, so a manifest either loads exactly what was saved or not at all.

Tables of the older format ``nas-harness-table/1`` are **refused**, with one line saying
how to fix it: ``python -m oracles.table upgrade DIR`` (or re-importing). Why not load them
read-only with a warning: the warning would repeat in every process that loads the table
(each worker, each command) and be lost in logs, while the labels it warns about would
still be unchecked, which is the very damage ``/2`` exists to catch; and the fix is cheap.
The upgrade re-verifies every file against the ``/1`` per-file checksums, then rewrites
only ``manifest.json`` with the checksum added (same arrays, axes and metadata, so the same
:func:`table_checksum` and the same oracle checksums). It cannot check the ``/1`` labels
themselves (nothing recorded them): whoever runs it vouches for them, as for a re-import,
which needs the source file (NB101's 500 MB tfrecord, or a collection folder) that an
upgrade does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptData

#: the format :func:`save_table` writes and :func:`load_table` reads
FORMAT = "nas-harness-table/2"
#: older formats :func:`upgrade_table` converts (and :func:`read_manifest` refuses)
OLD_FORMATS = ("nas-harness-table/1",)
MANIFEST = "manifest.json"
#: the manifest's own checksum field, over everything else in the manifest
CHECKSUM_FIELD = "manifest_sha256"


@dataclass
class Table:
    """One benchmark table in memory (see the module docstring for what each field holds).

    ``seeds``, ``fidelities`` and ``metrics`` are normalised to tuples of str, int and str;
    ``values`` must have the shape the axes give and every column one row per architecture,
    else :class:`ValueError` (a programming error of the importer, not of the user).
    """

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

    def seed_index(self, seed: str) -> int:
        try:
            return self.seeds.index(str(seed))
        except ValueError:
            raise CorruptData(f"table {self.name!r} has no seed {seed} "
                              f"(it has {', '.join(self.seeds)})") from None

    def column(self, metric: str, fidelity: int | None = None, seed: str | None = None) -> np.ndarray:
        """One metric for every architecture, as float64.

        ``metric``: a name in :attr:`metrics`. ``fidelity``: epochs, one of
        :attr:`fidelities`; None (default) means the last (the longest training, as the
        sources list them). ``seed``: a label in :attr:`seeds` for that seed's values;
        None (default) means the mean over seeds, ignoring missing (NaN) seeds, NaN where
        every seed is missing.
        """
        f = self.fidelity_index(fidelity) if fidelity is not None else len(self.fidelities) - 1
        m = self.metric_index(metric)
        block = self.values[:, :, f, m]
        if seed is not None:
            return np.asarray(block[:, self.seed_index(seed)], dtype=np.float64)
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
    """SHA-256 (hex) of the file at ``path``, read in chunks of 1 MiB."""
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
    """Write ``table`` to the folder ``directory`` (replacing any table there) atomically:
    files go to a new hidden sibling folder that is renamed into place, so readers see the
    old table or the new one, never a mix. Returns the manifest written (format
    :data:`FORMAT`, with its own checksum)."""
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
        manifest = _with_checksum({
            "format": FORMAT,
            "name": table.name,
            "axes": {"archs": int(table.n_archs), "seeds": list(table.seeds),
                     "fidelities": list(table.fidelities), "metrics": list(table.metrics)},
            "columns": sorted(table.columns),
            "files": files,
            "meta": table.meta,
        })
        _write_manifest(tmp / MANIFEST, manifest)
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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``manifest`` without its checksum field.

    Canonical: ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
    of the manifest as parsed, so the digest does not depend on the file's indentation or
    key order, and anyone can recompute it from the file with a JSON library.
    """
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _with_checksum(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` as it will read back from JSON (tuples as lists, keys as strings), with
    its checksum: hashing the parsed form is what lets a reader recompute the same digest."""
    parsed = json.loads(json.dumps(manifest))
    parsed[CHECKSUM_FIELD] = manifest_digest(parsed)
    return parsed


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())


def _parse_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory`` as JSON (any format), or :class:`CorruptData`."""
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptData(f"{directory} is not a nas-harness table (no {MANIFEST}); re-import the table") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):   # bad JSON, bad UTF-8, absurdly long numbers or nesting
        raise CorruptData(f"{path} is not valid JSON (damaged); re-import the table") from None
    if not isinstance(manifest, dict):
        raise CorruptData(f"{path} is not a {FORMAT} manifest; re-import the table")
    return manifest


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The verified manifest of the table in folder ``directory``: its own checksum matches
    and its structure is sound, or :class:`CorruptData` with one line saying what to do.
    Tables of an older format are refused with the command that upgrades them (see the
    module docstring)."""
    directory = Path(directory)
    path = directory / MANIFEST
    manifest = _parse_manifest(directory)
    fmt = manifest.get("format")
    if fmt in OLD_FORMATS:
        raise CorruptData(f"{directory} holds a table in the older format {fmt}, whose manifest has no "
                          f"checksum of its own; upgrade it with: python -m oracles.table upgrade "
                          f"{directory} (or re-import the table)")
    if fmt != FORMAT:
        raise CorruptData(f"{path} is not a {FORMAT} manifest; re-import the table")
    if manifest.get(CHECKSUM_FIELD) != manifest_digest(manifest):
        raise CorruptData(f"{path} does not match its own checksum (damaged or edited); re-import the table")
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
    serves, :func:`oracles.oracle.served_checksum`. Computed as under format ``/1``, so an
    upgraded table keeps it (the manifest's own checksum, :func:`manifest_digest`, is another
    hash: of the whole manifest, format and checksums included)."""
    payload = json.dumps({"files": {k: v["sha256"] for k, v in manifest["files"].items()},
                          "axes": manifest["axes"], "meta": manifest.get("meta", {})}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _load_arrays(directory: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every file the manifest lists, memory-mapped, checked against its checksum and shape."""
    arrays = {}
    for fname, info in manifest["files"].items():
        path = directory / fname
        if not path.is_file():
            raise CorruptData(f"table file {path} is missing; re-import the table")
        if _sha256(path) != info["sha256"]:
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
    return arrays


def load_table(directory: str | os.PathLike) -> Table:
    """Load the table in folder ``directory`` (written by :func:`save_table`), memory-mapped,
    after checking the manifest's own checksum and every file's; any mismatch is refused with
    one :class:`CorruptData` line."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    arrays = _load_arrays(directory, manifest)
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
        raise CorruptData(f"table {directory} is inconsistent ({exc}); re-import the table") from None
    table.meta["checksum"] = table_checksum(manifest)
    return table


def upgrade_table(directory: str | os.PathLike) -> bool:
    """Rewrite the manifest of an older-format table (:data:`OLD_FORMATS`) as :data:`FORMAT`.

    ``directory``: the table's folder. Every file is first verified against the old
    manifest's per-file checksums and the manifest's structure is checked; only then is
    ``manifest.json`` replaced (atomically: a temporary sibling file renamed over it) by the
    same manifest with the current format and its own checksum. The arrays, axes and
    metadata are untouched, so :func:`table_checksum` and every oracle checksum stay the
    same. Returns True if the table was upgraded, False if it already had the current format
    (and verifies); raises :class:`CorruptData` for anything else.
    """
    directory = Path(directory)
    manifest = _parse_manifest(directory)
    if manifest.get("format") == FORMAT:
        load_table(directory)
        return False
    if manifest.get("format") not in OLD_FORMATS:
        raise CorruptData(f"{directory / MANIFEST} is not a nas-harness table manifest of a known format "
                          f"({', '.join((FORMAT, *OLD_FORMATS))}); re-import the table")
    problem = _manifest_problem(manifest)
    if problem:
        raise CorruptData(f"{directory / MANIFEST} is damaged ({problem}); re-import the table")
    _load_arrays(directory, manifest)
    upgraded = _with_checksum({**manifest, "format": FORMAT})
    tmp = directory / f".{MANIFEST}.{secrets.token_hex(6)}"
    try:
        _write_manifest(tmp, upgraded)
        os.replace(tmp, directory / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)
    load_table(directory)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m oracles.table upgrade DIR [DIR ...]``: upgrade older-format tables in place
    (:func:`upgrade_table`); one line per folder; exit status 0, or 2 after the first failure.
    ``argv``: the arguments after the program name (default: ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "upgrade":
        print("usage: python -m oracles.table upgrade DIR [DIR ...]", file=sys.stderr)
        return 2
    for d in args[1:]:
        try:
            done = upgrade_table(d)
        except CorruptData as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{d}: {'upgraded to' if done else 'already'} {FORMAT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
