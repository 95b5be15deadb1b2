"""One append-only, checksummed, resumable store of training results, shared by processes.

Every collector (:mod:`oracles.collectors.convnet` and the cell collectors) and every live
oracle (:mod:`oracles.live`) keeps the results of its trainings here: one row per finished
training, keyed by what decides its numbers (for a live oracle: the architecture's
identity, the recipe, the data and the training seed; for a collection folder, whose
``collection.json`` fixes recipe and data: the space index and the seed). A store grows
into a table (:func:`table_from_rows`), so what a live oracle has trained can be served
later as a tabular oracle.

Layout of a store folder ``ROOT``::

    ROOT/shards/shard-<UTC time>-<pid>-<random>.jsonl   one per writer, append-only
    ROOT/claims/<key digest>.claim                       a key being trained (flock-ed)
    ROOT/specs/<digest>.json                             descriptions rows name by digest

Guarantees, and how:

* **Never a torn result.** A row is one line ``{"row": ROW, "sha": DIGEST}`` (``DIGEST`` =
  the first 16 hex digits of the SHA-256 of ROW's sorted-key JSON), written with a single
  ``write`` to a file opened ``O_APPEND`` and ``fsync``-ed before the call returns. A reader
  takes a line only when it ends in a newline and its digest matches: a last line cut by a
  kill (or still being written by a live writer) is skipped and counted as torn; a damaged
  line *followed by* other lines means the file was edited and is refused
  (:class:`~oracles.errors.CorruptData`). Each writer appends only to its own shard, created
  with ``O_EXCL`` under a unique name, so lines of two writers never interleave and nothing
  is ever appended after a torn line (a restarted writer starts a new shard).
* **Never a lost result.** Shards are only appended to; rows are never rewritten. A row is
  durable once :meth:`ResultStore.append` returns.
* **Never two trainings of one key at once.** :meth:`ResultStore.claim` takes an exclusive
  ``flock`` on ``claims/<digest>.claim`` (after checking the key has no result yet). Another
  process (or another :class:`ResultStore` in the same process: ``flock`` locks belong to
  open files) asking for the same key waits until the claim is released, then finds the
  row. The kernel releases the lock of a process that dies in any way (``SIGKILL``
  included), so a dead process's claim is recovered at once with no timeout to tune: the
  next asker takes it and trains the key again. The claim file records the holder's host,
  pid and start time for people (:meth:`ResultStore.claims`); it is removed when the result
  is written, and a waiter that finds the file it locked replaced checks again, so the
  removal cannot let two holders in. On a network file system the guarantee is the file
  system's ``flock`` (NFSv4 and Lustre with ``flock`` mounts provide it; a mount without
  lock support makes every claim fail loudly with ``OSError``).
* **Resumable.** Opening a store reads every shard; rows already there are served, keys
  without a row are trained again.

Duplicates (two rows of one key) arise only when a writer wrote without a claim (the
collector's one-writer-per-folder lock does so) and was killed between writing and its
resume; the first row read is kept and the rest are counted as ``duplicates``.

Usage by a collector or an oracle::

    store = ResultStore(root, key_fields=("arch", "recipe", "data", "seed"))
    row, trained = store.compute(key, lambda: train(...))     # trains at most once, anywhere
    ...
    rows, stats = scan(root, ("arch", "recipe", "data", "seed"))   # a strict full read

Rows are JSON objects (floats round-trip exactly; NaN and infinities allowed); a row's key
is the tuple of its ``key_fields`` values (strings or integers, compared as read).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.files import atomic_write_bytes

from ..errors import CorruptData

SHARDS = "shards"
CLAIMS = "claims"
SPECS = "specs"
SHARD_GLOB = "shard-*.jsonl"

Key = tuple


# --- lines ---------------------------------------------------------------------------------
def _line_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One shard line: the row's JSON and its digest (floats round-trip exactly in JSON)."""
    payload = json.dumps(row, sort_keys=True, allow_nan=True)
    return (json.dumps({"row": row, "sha": _line_digest(payload)}, sort_keys=True) + "\n").encode()


def decode_line(raw: bytes) -> dict[str, Any] | None:
    """The row of one line (without its newline), or None when it is damaged."""
    try:
        obj = json.loads(raw)
        row = obj["row"]
        if isinstance(row, dict) and obj["sha"] == _line_digest(json.dumps(row, sort_keys=True, allow_nan=True)):
            return row
    except (ValueError, KeyError, TypeError):
        pass
    return None


def key_digest(key: Sequence[Any]) -> str:
    """A file-name-safe digest of a key (32 hex digits of the SHA-256 of its JSON)."""
    return hashlib.sha256(json.dumps(list(key), sort_keys=True).encode()).hexdigest()[:32]


def spec_digest(spec: Any) -> str:
    """The digest rows use to name a description (a recipe, a data split): 16 hex digits of
    the SHA-256 of its sorted-key JSON, so equal descriptions get equal digests anywhere."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, allow_nan=False).encode()).hexdigest()[:16]


# --- reading -------------------------------------------------------------------------------
class _ShardReader:
    """Incremental reader of one shard: complete lines only; an unfinished tail is kept for
    the next read (its writer may still be writing it)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0          # bytes consumed (always just after a newline)
        self.damaged: int | None = None  # line number of a damaged complete line, while it is the last
        self.lines = 0

    def read(self) -> tuple[list[dict[str, Any]], bool]:
        """New valid rows, and whether an incomplete or damaged tail remains."""
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n")
        rows: list[dict[str, Any]] = []
        if end >= 0:
            for raw in data[:end].split(b"\n"):
                self.lines += 1
                if self.damaged is not None:
                    # a damaged line that is no longer the last: the file was modified
                    raise CorruptData(f"{self.path}, line {self.damaged}, is damaged (not a torn tail); "
                                      "remove that line or the shard and run again")
                row = decode_line(raw)
                if row is None:
                    self.damaged = self.lines
                    continue
                rows.append(row)
            self.offset += end + 1
        tail = bool(data[end + 1:]) or self.damaged is not None
        return rows, tail


def scan(root: str | os.PathLike, key_fields: Sequence[str],
         key_of: Callable[[Mapping[str, Any]], Key] | None = None) -> tuple[dict[Key, dict[str, Any]], dict[str, Any]]:
    """Every valid row under ``root/shards``, keyed by its key, and counts.

    ``key_fields``: the row fields forming the key; ``key_of``: a function from row to key
    overriding them (the collector turns indices and seeds into ints). Returns ``(rows,
    stats)``: ``stats`` has ``rows`` (distinct keys), ``torn`` (shards whose last line is
    unfinished or damaged, dropped), ``torn_shards`` (their names), ``duplicates`` (rows of a
    key already read, dropped) and ``shards``. A damaged line that is not a shard's last
    raises :class:`~oracles.errors.CorruptData`.
    """
    store = ResultStore(root, key_fields, key_of=key_of, create=False)
    store.refresh()
    return dict(store._rows), store.stats()


# --- the store -----------------------------------------------------------------------------
class Claim:
    """A key held for training by this process (see :meth:`ResultStore.claim`).

    ``row`` is the key's result when it already had one (then nothing is held); otherwise the
    holder trains and calls :meth:`commit` with the result, or leaves the ``with`` block
    without it (an exception), which gives the key back untrained.
    """

    def __init__(self, store: "ResultStore", key: Key, row: dict[str, Any] | None,
                 fd: int | None, path: Path | None):
        self.store, self.key, self.row = store, key, row
        self._fd, self._path = fd, path

    @property
    def held(self) -> bool:
        return self._fd is not None

    def commit(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Append ``row`` (its key fields are set from the key) and release the claim."""
        if self._fd is None:
            raise RuntimeError("commit on a claim that is not held")
        full = dict(row)
        full.update(zip(self.store.key_fields, self.key))
        self.store.append(full)
        self.row = full
        self.release(remove=True)
        return full

    def release(self, remove: bool = False) -> None:
        """Give the key back; ``remove`` deletes the claim file first (after a commit)."""
        if self._fd is None:
            return
        if remove and self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ResultStore:
    """An append-only result store in the folder ``root`` (module doc).

    Parameters
    ----------
    root: the store's folder (created with ``create=True``; shards under ``root/shards``).
    key_fields: names of the row fields whose values form a row's key, e.g.
        ``("arch", "recipe", "data", "seed")`` for a live oracle, ``("index", "seed")`` for a
        collection folder.
    key_of: optional function row -> key replacing ``key_fields`` when reading (the
        collector's keys are ``(int(index), int(seed))``).
    create: create ``root`` if missing (readers pass False and see an empty store).

    One object appends to one shard, opened at its first :meth:`append`; several objects,
    threads or processes may use one folder at once. Not thread-safe within one object.
    """

    def __init__(self, root: str | os.PathLike, key_fields: Sequence[str],
                 key_of: Callable[[Mapping[str, Any]], Key] | None = None, create: bool = True):
        self.root = Path(root)
        self.key_fields = tuple(key_fields)
        if not self.key_fields:
            raise ValueError("a store needs at least one key field")
        self._key_of = key_of
        if create:
            (self.root / SHARDS).mkdir(parents=True, exist_ok=True)
        self._readers: dict[str, _ShardReader] = {}
        self._rows: dict[Key, dict[str, Any]] = {}
        self._duplicates = 0
        self._torn: set[str] = set()
        self._fd: int | None = None
        self._pid = os.getpid()
        self.shard_path: Path | None = None

    # -- keys -------------------------------------------------------------------------
    def key_of(self, row: Mapping[str, Any]) -> Key:
        """The key of ``row``."""
        if self._key_of is not None:
            return tuple(self._key_of(row))
        return tuple(row[f] for f in self.key_fields)

    # -- reading ----------------------------------------------------------------------
    def refresh(self) -> int:
        """Read what every shard gained since the last call; returns the number of new keys."""
        shard_dir = self.root / SHARDS
        if not shard_dir.is_dir():
            return 0
        new = 0
        for path in sorted(shard_dir.glob(SHARD_GLOB)):
            reader = self._readers.get(path.name)
            if reader is None:
                reader = self._readers[path.name] = _ShardReader(path)
            rows, tail = reader.read()
            if tail:
                self._torn.add(path.name)
            else:
                self._torn.discard(path.name)
            for row in rows:
                try:
                    key = self.key_of(row)
                except (KeyError, TypeError, ValueError):
                    raise CorruptData(f"{path}: a row without its key fields {list(self.key_fields)}") from None
                if key in self._rows:
                    if path != self.shard_path:  # this object's own rows are known already
                        self._duplicates += 1
                    continue
                self._rows[key] = row
                new += 1
        return new

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        """The result of ``key``, reading the shards again if it is not known yet."""
        key = tuple(key)
        row = self._rows.get(key)
        if row is None:
            self.refresh()
            row = self._rows.get(key)
        return row

    def rows(self, refresh: bool = True) -> dict[Key, dict[str, Any]]:
        """Every result, keyed (a copy of the mapping; the rows themselves are shared)."""
        if refresh:
            self.refresh()
        return dict(self._rows)

    def stats(self) -> dict[str, Any]:
        """Counts as of the last read (see :func:`scan`)."""
        torn = sorted(self._torn)
        return {"rows": len(self._rows), "torn": len(torn), "torn_shards": torn,
                "duplicates": self._duplicates, "shards": len(self._readers)}

    # -- writing ----------------------------------------------------------------------
    def _open_shard(self) -> None:
        (self.root / SHARDS).mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        while True:
            path = self.root / SHARDS / f"shard-{stamp}-{os.getpid()}-{secrets.token_hex(3)}.jsonl"
            try:
                # the umask decides the mode: stores are shared output
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
        self.shard_path = path

    def append(self, row: Mapping[str, Any]) -> None:
        """Write ``row`` to this object's shard and ``fsync`` it: durable when this returns."""
        row = dict(row)
        key = self.key_of(row)
        line = encode_row(row)
        if self._fd is None or self._pid != os.getpid():
            # a forked child never appends to its parent's shard: one writer per shard
            self._open_shard()
            self._pid = os.getpid()
        written = os.write(self._fd, line)
        if written != len(line):  # a short write can only be a full disk: fail loudly
            raise OSError(errno.ENOSPC, f"short write to {self.shard_path}; disk full?")
        os.fsync(self._fd)
        self._rows.setdefault(key, row)

    def close(self) -> None:
        """Close this object's shard (rows already appended stay)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        # shipped to another process (a Ray worker): it opens its own shard there
        state = self.__dict__.copy()
        state.update(_fd=None, shard_path=None, _readers={}, _rows={}, _duplicates=0, _torn=set())
        return state

    # -- claims -----------------------------------------------------------------------
    def claim(self, key: Sequence[Any], timeout: float | None = None, poll: float = 0.05) -> Claim:
        """Hold ``key`` for training, or return its existing result.

        Returns a :class:`Claim`: ``claim.row`` is the result when the key has one (found now,
        or written by another process while this one waited); otherwise ``claim.held`` is
        True and this process trains and calls ``claim.commit(row)``. ``timeout``: seconds to
        wait for another holder (None: as long as it takes; it is alive, since a dead
        holder's lock is gone); past it, :class:`TimeoutError`. ``poll``: seconds between
        looks at a held claim.
        """
        key = tuple(key)
        row = self.get(key)
        if row is not None:
            return Claim(self, key, row, None, None)
        claims = self.root / CLAIMS
        claims.mkdir(parents=True, exist_ok=True)
        path = claims / f"{key_digest(key)}.claim"
        start = time.monotonic()
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if timeout is not None and time.monotonic() - start > timeout:
                    raise TimeoutError(f"key {list(key)} has been claimed by another process for "
                                       f"over {timeout} s ({path})") from None
                time.sleep(poll)
                row = self.get(key)
                if row is not None:
                    return Claim(self, key, row, None, None)
                continue
            except BaseException:
                os.close(fd)
                raise
            # the file locked must still be the claim's file: a holder that committed removed
            # it, and a third process may have created and locked a new one since
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            row = self.get(key)
            if row is not None:
                # written while this process waited or created the file: nothing to train;
                # the file is removed under the lock, as after a commit
                Claim(self, key, None, fd, path).release(remove=True)
                return Claim(self, key, row, None, None)
            note = json.dumps({"key": list(key), "host": socket.gethostname(), "pid": os.getpid(),
                               "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode() + b"\n", 0)
            return Claim(self, key, None, fd, path)

    def compute(self, key: Sequence[Any], train: Callable[[], Mapping[str, Any]],
                timeout: float | None = None) -> tuple[dict[str, Any], bool]:
        """The result of ``key``: read from the store, or trained here by ``train()`` (which
        returns the row's fields; the key fields are added) while holding the key's claim.
        Returns ``(row, trained_here)``. An exception from ``train`` gives the key back."""
        with self.claim(key, timeout=timeout) as c:
            if c.row is not None:
                return c.row, False
            return c.commit(train()), True

    def claims(self) -> list[dict[str, Any]]:
        """The claims held right now (by live processes), as their files describe them."""
        out = []
        folder = self.root / CLAIMS
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("*.claim")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    continue  # nobody holds it: a leftover of a dead process
                except BlockingIOError:
                    pass
                text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                try:
                    out.append(json.loads(text))
                except ValueError:
                    out.append({"file": path.name})
            finally:
                os.close(fd)
        return out

    # -- descriptions -----------------------------------------------------------------
    def put_spec(self, spec: Any) -> str:
        """Record a description (recipe, data) once under its :func:`spec_digest`; returns it."""
        digest = spec_digest(spec)
        path = self.root / SPECS / f"{digest}.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(spec, sort_keys=True, indent=1).encode()
            atomic_write_bytes(path, lambda fh: fh.write(text))
        return digest

    def spec(self, digest: str) -> Any:
        """The description recorded under ``digest``."""
        path = self.root / SPECS / f"{digest}.json"
        try:
            spec = json.loads(path.read_text())
        except FileNotFoundError:
            raise CorruptData(f"{path} is missing: rows name a description the store lacks") from None
        if spec_digest(spec) != digest:
            raise CorruptData(f"{path} does not match its digest; it was modified")
        return spec


# --- export --------------------------------------------------------------------------------
def table_from_rows(name: str, rows: Iterable[Mapping[str, Any]], arch: Callable[[Mapping[str, Any]], str],
                    seed: Callable[[Mapping[str, Any]], str], metrics: Sequence[str], fidelity: int,
                    meta: Mapping[str, Any], columns: Mapping[str, Callable[[Mapping[str, Any]], Any]] | None = None,
                    archs: Sequence[str] | None = None):
    """Rows as a :class:`~oracles.table.Table` (one fidelity).

    ``arch(row)`` / ``seed(row)`` give a row's architecture string and seed label (the table's
    axes: architectures in first-seen order unless ``archs`` fixes them, seeds sorted as
    labels); ``metrics`` are the row fields stored as values (NaN where an (architecture,
    seed) has no row); ``columns`` name per-architecture columns computed from a row of that
    architecture; ``meta`` becomes the table's metadata. Two rows of one (architecture,
    seed) cell raise :class:`~oracles.errors.CorruptData`.
    """
    from ..table import Table
    rows = list(rows)
    order = list(archs) if archs is not None else list(dict.fromkeys(arch(r) for r in rows))
    pos = {a: i for i, a in enumerate(order)}
    labels = sorted({str(seed(r)) for r in rows}, key=lambda s: (len(s), s))
    spos = {s: i for i, s in enumerate(labels)}
    values = np.full((len(order), len(labels), 1, len(metrics)), np.nan)
    first: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        a = arch(r)
        if a not in pos:
            continue
        i, s = pos[a], spos[str(seed(r))]
        if not np.isnan(values[i, s, 0, 0]):
            raise CorruptData(f"two results for {a} under seed {seed(r)}")
        values[i, s, 0] = [float(r[m]) for m in metrics]
        first.setdefault(i, r)
    cols = {}
    for cname, fn in (columns or {}).items():
        cols[cname] = np.array([fn(first[i]) if i in first else np.nan for i in range(len(order))])
    return Table(name=name, archs=np.array(order), seeds=tuple(labels), fidelities=(int(fidelity),),
                 metrics=tuple(metrics), values=values, columns=cols, meta=dict(meta))
