"""NAS-Bench-NLP conversion recipe: the PTB table of 14,322 recurrent cells -> table ``nbnlp``.

Source (Klyuchnikov et al., "NAS-Bench-NLP: Neural Architecture Search Benchmark for Natural
Language Processing", IEEE Access 10, 2022): every recipe trained once on Penn
Treebank, 3 layers, 50 epochs; the released logs, as one gzipped CSV with the columns
``recipe_id``, ``status`` (``OK`` for a finished run; ``loss is nan!`` or ``Exception: math
range error`` for a diverged one), ``num_params``, ``epochs_logged``, the per-epoch
``train_loss``, ``val_loss``, ``test_loss`` and ``epoch_time_s`` (``;``-joined; losses in nats
per word, perplexity = exp(loss)) and ``recipe`` (the cell's JSON).

What the table holds (decisions and why):

* **Architectures**: the recipes merged by their canonical form (:mod:`oracles.nbnlp_space`:
  isomorphism-invariant, symmetric inputs unordered, ``blend`` ordered, hidden states
  1..k permutable): 14,322 ids make 12,123 cells, rows sorted by identity. Every id of a
  cell has the same ``num_params`` (checked at import: a difference would be a wrong merge).
* **Merged runs**: a cell's curve is the **mean of the losses** of its finished runs, epoch
  by epoch. Losses, not perplexities: a loss is the mean negative log-likelihood per word, so
  averaging the runs' losses averages over all their predicted words and the merged
  perplexity ``exp(mean loss)`` is the geometric mean of the runs' perplexities; the
  arithmetic mean of perplexities would be dominated by the worst run (perplexity grows
  exponentially with loss), and ``valid_ppl`` = ``exp(valid_loss)`` holds for merged cells
  as for single ones. Diverged runs of a cell that also has finished runs are left out of
  its curve (as the benchmark's own statistics leave them out) and counted (columns
  ``n_runs``, ``n_finished``, ``n_diverged``).
* **Diverged cells** (no finished run): an evaluated architecture with a **failed result**.
  A run diverges at epoch ``d``: the first epoch for which one of its three loss curves has
  no finite value (a NaN logged there, or the log ends before it: a ``math range error``
  stops the log after a finite epoch, a NaN loss often before any value is logged). Before ``d`` its losses are real; from ``d`` on every loss of the cell is
  ``+inf`` (the loss overflowed: the worst value of a minimised metric, and the harness's
  and algorithms' convention for a failed training, ``-inf`` once negated into a score),
  at every fidelity from ``d`` to 50. Several diverged runs of one cell: at epoch ``e`` the
  mean of the runs still finite at ``e``; failed once none is. Its cost stops growing at
  ``d``: training stopped there, so asking for 50 epochs pays for ``d``.
* **Fidelities**: epochs 1..50 of the one training (``prefix``: continuing a trial from
  epoch 10 to 30 pays 20 epochs).
* **Metrics** (losses in nats per word; ``+inf`` where failed), at each epoch ``e``:
  ``valid_loss`` (the search metric), ``test_loss``, ``train_loss``;
  ``test_loss_at_best_valid`` (the report metric: the test loss at the epoch ``<= e`` of
  the lowest validation loss, the benchmark's convention of reporting the best checkpoint;
  on the merged curve); ``best_valid_loss`` (the lowest validation loss of epochs 1..e);
  ``valid_ppl`` and ``test_ppl_at_best_valid`` (``exp`` of the two); ``train_time``
  (cumulative training seconds of epochs 1..e, the mean over the runs behind the curve, the
  cost the runner charges); ``diverged`` (the fraction of the cell's runs diverged by
  epoch ``e``).
* **Training seconds**: the logged ``epoch_time_s``. An epoch a diverged run started but
  did not log (its divergence epoch, after a ``math range error``) is charged at the mean of
  that run's logged epochs; a run with no logged epoch (65 of them) pays one epoch at the
  median first-epoch time of the runs with the same ``num_params`` (the same linear layers;
  the median of all runs where none exists). ``meta.counts.estimated_epochs`` counts them.
* **Oracles** (both minimised, prefix fidelities 1..50, cost ``train_time``, served at
  epoch 50 unless asked for another):

  - ``nbnlp``: search ``valid_loss``, report ``test_loss_at_best_valid``. Its optimum is
    the hand-written LSTM (validation loss 4.41531 at epoch 50, perplexity 82.71), a cell
    of its own (one id);
  - ``nbnlp/test-search``: search and report ``test_loss`` (LaNAS's protocol for its
    LSTM-10K table, which searched test perplexity; Wang et al., "Sample-Efficient Neural
    Architecture Search by Learning Action Space", appendix 6.1). Never the default.

  ``search=valid_ppl`` (or ``best_valid_loss``) after the name's colon searches another
  metric of the table.
* **Space columns**: ``recipe`` (canonical string), ``tokens``, ``neighbours`` and
  ``neighbour_distance`` (the 10 tabulated cells nearest in Weisfeiler-Lehman subtree
  distance, computed here once); data columns ``num_params``, ``n_runs``, ``n_finished``,
  ``n_diverged``, ``recipe_ids`` (the merged ids, comma-joined).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import CorruptData, InvalidArchitecture, UserError
from ..nbnlp_space import (N_NEIGHBOURS, WL_DEPTH, canonical_serialisation, identity_of_serialisation,
                           nearest_cells, serialisation_to_string, tokens_of_form, wl_features)
from ..table import Table, file_sha256

NAME = "nbnlp"
HELP = "NAS-Bench-NLP: nbnlp_ptb.csv.gz (the PTB logs of 14,322 recurrent cells), or its folder"
FILE = "nbnlp_ptb.csv.gz"
EPOCHS = 50
METRICS = ("valid_loss", "test_loss", "train_loss", "test_loss_at_best_valid", "best_valid_loss",
           "valid_ppl", "test_ppl_at_best_valid", "train_time", "diverged")
COLUMNS = ("recipe_id", "status", "num_params", "epochs_logged", "train_loss", "val_loss", "test_loss",
           "epoch_time_s", "recipe")
FINISHED = "OK"


def oracle_declarations() -> list[dict[str, Any]]:
    common = {"fidelity": EPOCHS, "cost": "train_time", "train": None, "direction": "min",
              "fidelity_kind": "prefix"}
    return [
        {"name": "nbnlp", "search": "valid_loss", "report": "test_loss_at_best_valid", **common,
         "description": "NAS-Bench-NLP PTB, 12,123 recurrent cells: search validation loss at the epoch asked "
                        "(default 50; prefix fidelities 1..50, cost = training seconds), report test loss at "
                        "the epoch of best validation; diverged cells answer +inf"},
        {"name": "nbnlp/test-search", "search": "test_loss", "report": "test_loss", **common,
         "description": "NAS-Bench-NLP PTB: search AND report test loss (LaNAS's LSTM-10K protocol, which "
                        "searched test perplexity); not the benchmark's protocol"},
    ]


# --- reading --------------------------------------------------------------------------------------
class Run:
    """One id of the file: its curves (arrays of the logged epochs), epoch seconds, status."""

    __slots__ = ("rid", "finished", "params", "train", "valid", "test", "times", "fail_epoch", "estimated")

    def __init__(self, rid, finished, params, train, valid, test, times):
        self.rid, self.finished, self.params = rid, finished, params
        self.train, self.valid, self.test, self.times = train, valid, test, times
        self.fail_epoch = None      # 1-based epoch of divergence (diverged runs)
        self.estimated = 0          # epochs whose seconds are estimated


def _floats(text: str, what: str, where: str) -> np.ndarray:
    if text is None or text.strip() in ("", "nan", "NaN"):
        return np.zeros(0)
    try:
        return np.array([float(v) for v in text.split(";")], dtype=np.float64)
    except ValueError:
        raise CorruptData(f"{where}: {what} is not a ';'-joined list of numbers") from None


def read_runs(path: Path, ids: Iterable[int] | None = None) -> tuple[list[Run], list[tuple], int]:
    """The runs of the file (only ``ids`` if given: a subset for tests) and each one's
    canonical form. Returns ``(runs, forms, rows read)``."""
    wanted = None if ids is None else {int(i) for i in ids}
    runs, forms = [], []
    try:
        fh = io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="") \
            if path.name.endswith(".gz") else open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    n = 0
    seen: set[int] = set()
    with fh:
        try:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorruptData(f"{path} lacks column(s) {', '.join(missing)}; expected NAS-Bench-NLP's log table")
            for line, row in enumerate(reader, start=2):
                n += 1
                where = f"{path} line {line}"
                try:
                    rid = int(row["recipe_id"])
                    params = int(float(row["num_params"]))
                except (TypeError, ValueError):
                    raise CorruptData(f"{where}: recipe_id / num_params are not numbers") from None
                if wanted is not None and rid not in wanted:
                    continue
                if rid in seen:
                    raise CorruptData(f"{where}: recipe_id {rid} appears twice")
                seen.add(rid)
                run = Run(rid, row["status"] == FINISHED, params,
                          _floats(row["train_loss"], "train_loss", where), _floats(row["val_loss"], "val_loss", where),
                          _floats(row["test_loss"], "test_loss", where),
                          _floats(row["epoch_time_s"], "epoch_time_s", where))
                try:
                    form = canonical_serialisation(json.loads(row["recipe"]))
                except (ValueError, InvalidArchitecture) as exc:
                    raise CorruptData(f"{where}: recipe {rid} is not a valid NAS-Bench-NLP cell ({exc})") from None
                _check_run(run, where)
                runs.append(run)
                forms.append(form)
        except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
            raise CorruptData(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
    if not runs:
        raise CorruptData(f"{path} holds no NAS-Bench-NLP runs" + ("" if wanted is None else " of the ids asked"))
    return runs, forms, n


def _check_run(run: Run, where: str) -> None:
    """A finished run has 50 finite epochs of every curve and 50 epoch times; a diverged one
    gets its divergence epoch (module docstring)."""
    curves = (run.train, run.valid, run.test)
    if run.finished:
        if any(len(c) != EPOCHS or not np.all(np.isfinite(c)) for c in curves) or len(run.times) != EPOCHS \
                or not np.all(np.isfinite(run.times)):
            raise CorruptData(f"{where}: a finished run must log {EPOCHS} finite epochs of every curve and time")
        return
    # the first epoch some curve has no finite value for: a NaN logged there, or the log ended
    first = EPOCHS
    for c in curves:
        bad = np.flatnonzero(~np.isfinite(c))
        first = min(first, int(bad[0]) + 1 if len(bad) else len(c) + 1)
    run.fail_epoch = first


def _epoch_seconds(runs: list[Run]) -> dict[int, np.ndarray]:
    """Per run (by position), the seconds of each epoch it trained (module docstring)."""
    firsts: dict[int, list[float]] = {}
    for r in runs:
        if len(r.times):
            firsts.setdefault(r.params, []).append(float(r.times[0]))
    every = [t for ts in firsts.values() for t in ts]
    overall = float(np.median(every)) if every else 1.0
    out = {}
    for k, r in enumerate(runs):
        trained = EPOCHS if r.finished else r.fail_epoch
        t = np.asarray(r.times[:trained], dtype=np.float64)
        if len(t) < trained:
            fill = float(np.mean(t)) if len(t) else float(np.median(firsts[r.params])) \
                if r.params in firsts else overall
            r.estimated = trained - len(t)
            t = np.concatenate([t, np.full(trained - len(t), fill)])
        out[k] = t
    return out


# --- merging ----------------------------------------------------------------------------------------
def _curve(values: np.ndarray, upto: int) -> np.ndarray:
    """A run's curve over 50 epochs: its values before ``upto`` (1-based, exclusive), NaN after."""
    out = np.full(EPOCHS, np.nan)
    n = min(len(values), upto - 1, EPOCHS)
    out[:n] = values[:n]
    return out


def merge(runs: list[Run], seconds: dict[int, np.ndarray], members: list[int]) -> np.ndarray:
    """The ``(50, len(METRICS))`` values of one cell from its runs (positions ``members``)."""
    fin = [k for k in members if runs[k].finished]
    use = fin or members
    inf = math.inf
    cols = {}
    for key, attr in (("valid", "valid"), ("test", "test"), ("train", "train")):
        block = np.stack([_curve(getattr(runs[k], attr), EPOCHS + 1 if runs[k].finished else runs[k].fail_epoch)
                          for k in use])
        with np.errstate(invalid="ignore"):
            alive = ~np.isnan(block)
            count = alive.sum(axis=0)
            mean = np.where(count > 0, np.nansum(block, axis=0) / np.maximum(count, 1), inf)
        cols[key] = mean
    # a failed epoch fails every metric (a diverged run's train curve may outlive its valid one)
    failed = ~(np.isfinite(cols["valid"]) & np.isfinite(cols["test"]) & np.isfinite(cols["train"]))
    if fin:
        failed[:] = False
    for key in cols:
        cols[key] = np.where(failed, inf, cols[key])
    cum = np.stack([np.cumsum(np.pad(seconds[k], (0, EPOCHS - len(seconds[k])), constant_values=0.0))
                    for k in use]).mean(axis=0)
    valid, test = cols["valid"], cols["test"]
    best_valid = np.minimum.accumulate(valid)
    # test at the first epoch <= e of the lowest validation loss (the running argmin)
    idx = np.arange(EPOCHS)
    improved = np.r_[True, valid[1:] < best_valid[:-1]]
    at = np.maximum.accumulate(np.where(improved, idx, 0))
    test_best = np.where(failed, inf, test[at])
    best_valid = np.where(failed, inf, best_valid)
    div = np.array([sum(1 for k in members if not runs[k].finished and runs[k].fail_epoch <= e + 1)
                    for e in idx], dtype=np.float64) / len(members)
    with np.errstate(over="ignore"):
        out = np.stack([valid, test, cols["train"], test_best, best_valid, np.exp(valid), np.exp(test_best),
                        cum, div], axis=1)
    return out


def build_table(path: Path, ids: Iterable[int] | None = None, k: int = N_NEIGHBOURS) -> Table:
    """The ``nbnlp`` table from the log file at ``path`` (module docstring); ``ids``: only
    these recipe ids (a subset, for tests); ``k``: neighbours listed per cell."""
    runs, forms, n_rows = read_runs(path, ids)
    seconds = _epoch_seconds(runs)
    groups: dict[str, list[int]] = {}
    form_of: dict[str, tuple] = {}
    for pos, form in enumerate(forms):
        ident = identity_of_serialisation(form)
        groups.setdefault(ident, []).append(pos)
        form_of[ident] = form
    idents = sorted(groups)
    n = len(idents)
    values = np.empty((n, 1, EPOCHS, len(METRICS)))
    params = np.empty(n, dtype=np.int64)
    n_runs = np.empty(n, dtype=np.int32)
    n_fin = np.empty(n, dtype=np.int32)
    for row, ident in enumerate(idents):
        members = groups[ident]
        p = {runs[k].params for k in members}
        if len(p) != 1:
            raise CorruptData(f"{path}: recipes {', '.join(str(runs[k].rid) for k in members)} have one canonical "
                              f"form but parameter counts {sorted(p)}; the canonical form would merge different cells")
        params[row] = p.pop()
        n_runs[row] = len(members)
        n_fin[row] = sum(runs[k].finished for k in members)
        values[row, 0] = merge(runs, seconds, members)
    try:
        tokens = np.stack([tokens_of_form(form_of[i]) for i in idents])
    except InvalidArchitecture as exc:
        raise CorruptData(f"{path}: a cell does not fit the space's token layout ({exc})") from None
    nbr, dist = nearest_cells([wl_features(form_of[i]) for i in idents], k=min(k, n - 1))
    finished_runs = sum(r.finished for r in runs)
    failed_cells = int(np.sum(n_fin == 0))
    meta = {
        "source": {"format": "NAS-Bench-NLP log table (csv)", "name": path.name,
                   "sha256": file_sha256(path), "rows": n_rows, "subset": ids is not None},
        "benchmark": "NAS-Bench-NLP (Klyuchnikov et al., 2022), Penn Treebank, 50 epochs",
        "units": {"*_loss": "nats per word (mean negative log-likelihood)", "*_ppl": "perplexity = exp(loss)",
                  "train_time": "seconds, cumulative over epochs 1..e",
                  "diverged": "fraction of the cell's runs diverged by epoch e", "failed": "+inf"},
        "merge": "mean of the finished runs' losses per epoch (perplexity = exp of it: the geometric mean); "
                 "cells with no finished run: mean of the runs still finite, +inf from the epoch none is",
        "counts": {"ids": len(runs), "finished_runs": int(finished_runs), "diverged_runs": len(runs) - finished_runs,
                   "cells": n, "merged_cells": int(np.sum(n_runs > 1)), "ids_in_merged_cells": int(n_runs[n_runs > 1].sum()),
                   "cells_all_diverged": failed_cells,
                   "cells_some_diverged": int(np.sum((n_fin > 0) & (n_fin < n_runs))),
                   "cells_failed_at_epoch_50": int(np.sum(~np.isfinite(values[:, 0, -1, 0]))),
                   "estimated_epochs": int(sum(r.estimated for r in runs)),
                   "runs_without_times": int(sum(1 for r in runs if len(r.times) == 0))},
        "space": {"kind": "nbnlp", "rows": "sorted by identity",
                  "neighbours": {"k": int(nbr.shape[1]), "distance": "Weisfeiler-Lehman subtree, squared Euclidean",
                                 "depth": WL_DEPTH},
                  "columns": {"recipe": "canonical recipe string", "tokens": "token rows (oracles.nbnlp_space)",
                              "neighbours": "rows of the nearest tabulated cells",
                              "neighbour_distance": "their distances"}},
        "fidelity_kind": "prefix",
        "oracles": oracle_declarations(),
    }
    columns = {
        "recipe": np.array([serialisation_to_string(form_of[i]) for i in idents], dtype=str),
        "tokens": tokens, "neighbours": nbr, "neighbour_distance": dist,
        "num_params": params, "n_runs": n_runs, "n_finished": n_fin, "n_diverged": n_runs - n_fin,
        "recipe_ids": np.array([",".join(str(runs[k].rid) for k in sorted(groups[i], key=lambda k: runs[k].rid))
                                for i in idents], dtype=str),
    }
    return Table(name=NAME, archs=np.array(idents, dtype=str), seeds=("mean",),
                 fidelities=tuple(range(1, EPOCHS + 1)), metrics=METRICS, values=values, columns=columns, meta=meta)


# --- CLI protocol -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help=f"{FILE}, or the folder holding it")


def source_file(source: Path) -> Path:
    source = Path(os.path.expanduser(str(source)))
    if source.is_dir():
        source = source / FILE
    if not source.is_file():
        raise UserError(f"{source} does not exist (expected NAS-Bench-NLP's {FILE} or its folder)")
    return source


def build(args: argparse.Namespace) -> Table:
    return build_table(source_file(args.source))
