"""Writing shared output safely: atomic files with the umask's mode, and one writer per folder.

Used by the results folder (:mod:`harness.results`), the analysis outputs
(:mod:`harness.metrics`, :mod:`harness.export`) and the table collector
(:mod:`oracles.collectors.convnet`):

* :func:`atomic_write_bytes`: a file is either complete or absent, whatever kills the writer;
  a killed write leaves a temporary ``.NAME.<random>.tmp`` next to ``NAME``, which the
  folder's owner removes while holding its lock (:meth:`harness.results.ResultsStore.session`);
* :class:`FileLock`: an exclusive ``flock`` on a lock file, so two commands never write one
  folder at once; the kernel releases it however the holder ends (kill -9 included);
* :func:`current_umask`: the mode every file and folder gets, as any other tool's output
  (a group share or another user's Ray worker can read it).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from oracles.errors import UserError


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` must set
    one to read it, which would race with threads creating files meanwhile)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the restrictive value, should another thread create a file now
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` atomically, with the mode the umask gives.

    ``path``: the file to create or replace (its folder is created if missing).
    ``write``: called once with the open binary temporary file; it writes the whole content.

    The content goes to a temporary file in the same folder, is flushed to disk (``fsync``)
    and renamed into place, so readers and a resumed command see the old file, the new one,
    or nothing, never half of one. :func:`tempfile.mkstemp` creates its file ``0600``
    whatever the umask, and that mode would survive the rename: the file is set to
    ``0666 & ~umask`` (what ``open()`` would create) first. On any error, Ctrl-C included,
    the temporary file is removed and the error raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
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


class FileLock:
    """An exclusive lock on ``path``, taken at once or refused.

    ``path``: the lock file (created with the umask's mode if missing; its content is never
    used). ``busy``: the one-line message of the :class:`~oracles.errors.UserError` raised when
    another process holds the lock, saying what to do.

    The lock is ``flock``-ed without waiting; it is held until :meth:`release` (or the end of
    a ``with`` block), and the kernel releases it when the process ends in any way, so a
    killed command never leaves a stale lock. An error opening the file (a read-only folder)
    raises :class:`OSError` for the caller to phrase.
    """

    def __init__(self, path: str | os.PathLike, busy: str):
        self.path = Path(path)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise UserError(busy) from None
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the lock back (closing the file releases the ``flock``); idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
