"""Which code produced a file: the version stamped into run files, manifests, baselines and
collected tables, so that a result can be traced to the code that computed it.

(The machine a run computed on is described by :func:`harness.results.machine_info`.)
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

#: the checkout this package is imported from (``harness/..``)
ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def code_version(paths: tuple[str, ...] = ()) -> dict[str, Any]:
    """The package version and, in a git checkout, the commit and whether files differ from it.

    ``paths``: folders or files, relative to the checkout, whose changes count (the collector
    gives its own sources); default ``()``, the whole checkout. For the whole checkout only
    changes to tracked files count, because outputs such as ``runs/`` may sit untracked inside
    it; under named source paths an untracked file counts too (a new module changes the code).

    Returns ``{"version": package version, "git_commit": HEAD's hash or None outside a
    checkout (or without git), "git_dirty": True/False, None without a commit}``.

    Read once per process and ``paths``: a process runs the code it imported when it started,
    so a later edit or commit does not describe what it computes (and writing a run file
    stays free of two ``git`` calls).
    """
    from harness import __version__
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        if commit:
            status = ["git", "-C", str(ROOT), "status", "--porcelain"]
            status += ["--", *paths] if paths else ["--untracked-files=no"]
            dirty = bool(subprocess.run(status, capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "git_commit": commit, "git_dirty": dirty}
