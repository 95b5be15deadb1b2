"""Results folders as tables other tools read (``nas-harness export``).

* :func:`long_table`: one row per query of every finished run, labelled with its
  ``oracle``, ``algorithm`` (label), ``seed``, ``config_id`` (the cell's configuration
  fingerprint), ``stopped`` (why the runner stopped the run, null for a normal run) and
  ``direction`` (``max`` or ``min``: how the oracle ranks the metrics, from the facts stored
  at run time; a folder that stores none says ``max``), followed by every record column
  (see :mod:`harness.results`), values as the metric's own (a minimised metric's
  ``best_search`` is its running minimum). Written as Parquet (the label columns
  dictionary-encoded) or CSV; it reads any results folder, including those written before
  run files carried the label columns or the trial columns.
* :func:`rliable_scores`: the input of rliable (Agarwal et al., Deep Reinforcement Learning
  at the Edge of the Statistical Precipice, NeurIPS 2021; ``rliable.library``): per
  algorithm, a ``runs x tasks`` array of one score at a fixed point of a run (samples,
  training epochs paid or the simulated clock), the tasks being the folder's oracles. Runs
  are rows by seed: the seeds every task of that algorithm has a score for, in increasing
  order (other runs are left out and counted). Scores are the metric's own values, or its
  regret (``*_regret``: >= 0, lower is better whatever the oracle's direction, comparable
  across maximised and minimised tasks).

Both read the folder through :mod:`harness.metrics` (:func:`~harness.metrics.read_runs`,
:func:`~harness.metrics.load_folder`), the one loader of the analysis.
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
from .metrics import QUALITY, load_folder, read_runs
from .results import ResultsStore, fingerprint, run_table

#: scores rliable can be given: the quality metrics read off the records
#: (harness.metrics.QUALITY), and the regrets of the first two to the optimum
RLIABLE_METRICS = QUALITY + ("best_search_regret", "incumbent_report_regret")
#: where along a run the score is read: distinct samples, training epochs paid, simulated clock
RLIABLE_AXES = ("samples", "epochs", "clock")


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
    directions = {}
    for e in store.read_manifest()["cells"].values():
        facts = e.get("oracle_facts")
        directions[e["oracle"]] = str(facts.get("direction", "max")) if isinstance(facts, dict) else "max"
    tables = []
    for cell, meta, records in read_runs(store, columns=None):
        t = run_table(records, oracle=cell.oracle, algorithm=cell.label, seed=int(meta["seed"]),
                      config_id=fingerprint(cell.config)).replace_schema_metadata(None)
        stopped = (meta.get("summary") or {}).get("stopped")
        stop = pa.nulls(t.num_rows, pa.dictionary(pa.int32(), pa.string())) if stopped is None \
            else _label(stopped, t.num_rows)
        t = t.add_column(4, "stopped", stop)
        tables.append(t.add_column(5, "direction", _label(directions.get(cell.oracle, "max"), t.num_rows)))
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


def rliable_scores(path: str | os.PathLike, metric: str, at: float | None = None, axis: str = "samples"
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per algorithm label, a ``(runs, tasks)`` float array of ``metric`` at ``at`` on
    ``axis``, and a description (task order, each task's direction, seeds per algorithm,
    runs left out).

    ``axis``: ``samples`` (distinct samples; ``at`` defaults to the smallest sample budget
    among the folder's cells), ``epochs`` (training epochs paid) or ``clock`` (the simulated
    clock); for the last two ``at`` defaults to the smallest budget of the cells whose
    budget counts that (``--budget-kind epochs`` / ``time``) and must be given otherwise. A
    run has a score at ``at`` if it got that far, or if it ended earlier at the global
    optimum or was stopped by the runner (its final values stand for every later point, as
    in ``report``). ``metric`` ending in ``_regret``: the regret of that column to the
    oracle's optimum (optimum - value when maximised, value - optimum when minimised).
    """
    if metric not in RLIABLE_METRICS:
        raise UserError(f"unknown metric {metric!r} for --rliable: choose {', '.join(RLIABLE_METRICS)}")
    if axis not in RLIABLE_AXES:
        raise UserError(f"unknown axis {axis!r}: choose {', '.join(RLIABLE_AXES)}")
    _store(path)
    rs = load_folder(path, with_records=True)
    cells = [c for c in rs.cells if c.n_runs]
    if not cells:
        raise UserError(f"{path} holds no finished run yet; run the experiment first")
    column, regret = (metric[:-len("_regret")], True) if metric.endswith("_regret") else (metric, False)
    if at is None:
        if axis == "samples":
            at = min(c.sample_budget for c in cells)
        else:
            kind = "epochs" if axis == "epochs" else "time"
            budgets = [c.budget for c in cells if c.budget_kind == kind]
            if len(budgets) != len(cells):
                raise UserError(f"give --at: the point on the {axis} axis to read the scores at (not every "
                                f"cell has a budget in {kind})")
            at = min(budgets)
    at = float(at) if axis != "samples" else int(at)
    if not at > 0:
        raise UserError(f"--at must be positive, got {at}")
    tasks = sorted({c.oracle for c in cells})
    labels = sorted({c.label for c in cells})
    by = {(c.label, c.oracle): c for c in cells}
    missing = [f"{lab} on {o}" for lab in labels for o in tasks if (lab, o) not in by]
    if missing:
        raise UserError(f"rliable needs every algorithm on every task; no runs of {', '.join(missing[:5])}: "
                        "export a folder where each algorithm ran on each oracle")
    if regret:
        unknown = [o for o in tasks if rs.info(o).reference(column) is None]
        if unknown:
            raise UserError(f"{metric} needs the optimum, which the folder does not store for "
                            f"{', '.join(unknown)}" + (f" ({rs.facts_note()})" if rs.facts_note() else ""))
    scores: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"tasks": tasks, "metric": metric, "at": at, "axis": axis, "source": str(path),
                            "direction": {o: rs.info(o).direction for o in tasks}, "algorithms": {}}
    if regret:
        info["lower_is_better"] = True
    for lab in labels:
        per_task, n_runs = {}, {}
        for o in tasks:
            c = by[(lab, o)]
            if axis == "samples":
                if at > c.sample_budget:
                    raise UserError(f"{o} | {lab}: --at {at} is past its budget ({c.sample_budget}); "
                                    f"choose --at <= {c.sample_budget} samples")
                values = c.quality_at(int(at))[column]
            else:
                values = c.quality_along(axis, at)[column]
            if regret:
                values = rs.info(o).regret(values, column)
            per_task[o] = {int(s): float(v) for s, v in zip(c.seeds, values) if np.isfinite(v)}
            n_runs[o] = len(c.seeds)
        seeds = sorted(set.intersection(*(set(d) for d in per_task.values())))
        scores[lab] = np.array([[per_task[o][s] for o in tasks] for s in seeds],
                               dtype=np.float64).reshape(len(seeds), len(tasks))
        info["algorithms"][lab] = {"seeds": seeds, "left_out": {o: n_runs[o] - len(seeds) for o in tasks}}
    return scores, info


def write_rliable(path: str | os.PathLike, out: str | os.PathLike, metric: str,
                  at: float | None = None, axis: str = "samples") -> tuple[Path, Path, dict[str, Any]]:
    """Write :func:`rliable_scores` as ``OUT.npz`` (one array per algorithm label) and
    ``OUT.json`` (task order, directions, metric, axis and point, seeds); return (npz, json,
    description)."""
    scores, info = rliable_scores(path, metric, at, axis)
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
