"""Results folders as tables other tools read (``nas-harness export``).

* :func:`long_table`: one row per query of every finished run, labelled with its
  ``oracle``, ``algorithm`` (label), ``seed``, ``config_id`` (the cell's configuration
  fingerprint) and ``stopped`` (why the runner stopped the run, null for a normal run),
  followed by every record column (see :mod:`harness.results`). Written as Parquet (the
  label columns dictionary-encoded) or CSV; it reads any results folder, including those
  written before run files carried the label columns.
* :func:`rliable_scores`: the input of rliable (Agarwal et al., Deep Reinforcement Learning
  at the Edge of the Statistical Precipice, NeurIPS 2021; ``rliable.library``): per
  algorithm, a ``runs x tasks`` array of one score at a fixed budget, the tasks being the
  folder's oracles. Runs are rows by seed: the seeds every task of that algorithm has a
  score for, in increasing order (other runs are left out and counted).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from oracles.errors import UserError

from .files import atomic_write_bytes
from .results import ResultsStore, fingerprint, run_table

#: scores rliable can be given: the quality metrics read off the records at a budget
#: (harness.metrics.QUALITY)
RLIABLE_METRICS = ("best_search", "incumbent_report", "best_report")


def _store(path: str | os.PathLike) -> ResultsStore:
    store = ResultsStore(path)
    if not store.manifest_path.is_file():
        raise UserError(f"{path} is not a results folder (no experiment.json)")
    return store


def _label(value: Any, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)),
                                          pa.array([value], type=pa.string()))


def long_table(path: str | os.PathLike) -> pa.Table:
    """Every query of every finished run of the folder at ``path`` as one table."""
    store = _store(path)
    tables = []
    for cell, meta, records in store.iter_runs(with_records=True):
        t = run_table(records, oracle=cell.oracle, algorithm=cell.label, seed=int(meta["seed"]),
                      config_id=fingerprint(cell.config)).replace_schema_metadata(None)
        stopped = (meta.get("summary") or {}).get("stopped")
        stop = pa.nulls(t.num_rows, pa.dictionary(pa.int32(), pa.string())) if stopped is None \
            else _label(stopped, t.num_rows)
        tables.append(t.add_column(4, "stopped", stop))
    if not tables:
        raise UserError(f"{path} holds no finished run yet; run the experiment first")
    # files written by older versions may lack a column (e.g. arch): missing values are null
    return pa.concat_tables(tables, promote_options="default").unify_dictionaries()


def write_long_table(path: str | os.PathLike, out: str | os.PathLike, fmt: str) -> tuple[Path, int]:
    """Write :func:`long_table` to ``out`` as ``fmt`` (``csv`` or ``parquet``); return
    (the file, rows written)."""
    table = long_table(path)
    out = Path(out)
    if fmt == "parquet":
        import pyarrow.parquet as pq
        write = lambda fh: pq.write_table(table, fh, compression="zstd")  # noqa: E731
    elif fmt == "csv":
        import pyarrow.csv as pacsv
        plain = pa.table({k: (c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c)
                          for k, c in zip(table.column_names, table.columns)})
        write = lambda fh: pacsv.write_csv(plain, fh)  # noqa: E731
    else:
        raise UserError(f"unknown export format {fmt!r}: choose csv or parquet")
    try:
        atomic_write_bytes(out, write)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out, table.num_rows


def rliable_scores(path: str | os.PathLike, metric: str, at: int | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per algorithm label, a ``(runs, tasks)`` float array of ``metric`` after ``at``
    distinct samples, and a description (task order, seeds per algorithm, runs left out).

    ``at`` defaults to the smallest budget among the folder's cells. A run has a score at
    ``at`` if it got that far, or if it ended earlier at the global optimum or was stopped by
    the runner (its final values stand for every later budget, as in ``report``).
    """
    from .metrics import load_folder
    if metric not in RLIABLE_METRICS:
        raise UserError(f"unknown metric {metric!r} for --rliable: choose {', '.join(RLIABLE_METRICS)}")
    _store(path)
    rs = load_folder(path, with_records=True, optima=False)
    cells = [c for c in rs.cells if c.n_runs]
    if not cells:
        raise UserError(f"{path} holds no finished run yet; run the experiment first")
    budget = min(c.budget for c in cells)
    at = budget if at is None else int(at)
    if at < 1:
        raise UserError(f"--at must be a positive number of samples, got {at}")
    tasks = sorted({c.oracle for c in cells})
    labels = sorted({c.label for c in cells})
    by = {(c.label, c.oracle): c for c in cells}
    missing = [f"{lab} on {o}" for lab in labels for o in tasks if (lab, o) not in by]
    if missing:
        raise UserError(f"rliable needs every algorithm on every task; no runs of {', '.join(missing[:5])}: "
                        "export a folder where each algorithm ran on each oracle")
    scores: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"tasks": tasks, "metric": metric, "at": at, "source": str(path),
                            "algorithms": {}}
    for lab in labels:
        per_task, n_runs = {}, {}
        for o in tasks:
            c = by[(lab, o)]
            if at > c.budget:
                raise UserError(f"{o} | {lab}: --at {at} is past its budget ({c.budget}); choose --at <= {c.budget}")
            values = c.quality_at(at)[metric]
            per_task[o] = {int(s): float(v) for s, v in zip(c.seeds, values) if np.isfinite(v)}
            n_runs[o] = len(c.seeds)
        seeds = sorted(set.intersection(*(set(d) for d in per_task.values())))
        scores[lab] = np.array([[per_task[o][s] for o in tasks] for s in seeds],
                               dtype=np.float64).reshape(len(seeds), len(tasks))
        info["algorithms"][lab] = {"seeds": seeds, "left_out": {o: n_runs[o] - len(seeds) for o in tasks}}
    return scores, info


def write_rliable(path: str | os.PathLike, out: str | os.PathLike, metric: str,
                  at: int | None = None) -> tuple[Path, Path, dict[str, Any]]:
    """Write :func:`rliable_scores` as ``OUT.npz`` (one array per algorithm label) and
    ``OUT.json`` (task order, metric, budget, seeds); return (npz, json, description)."""
    scores, info = rliable_scores(path, metric, at)
    out = Path(out)
    npz = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
    meta = npz.with_suffix(".json")
    buf = io.BytesIO()
    np.savez(buf, **scores)
    try:
        atomic_write_bytes(npz, lambda fh: fh.write(buf.getvalue()))
        atomic_write_bytes(meta, lambda fh: fh.write((json.dumps(info, indent=1) + "\n").encode()))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return npz, meta, info
