"""``nas-harness run``: run algorithms on oracles for many seeds into a results folder.

Exit status: 0 when every run finished normally; :data:`EXIT_STOPPED` (3) when some runs
were stopped by the runner (an algorithm stuck re-asking known architectures: their records
are kept and counted, censored at their distinct count); :data:`EXIT_FAILED` (4) when some
runs failed (the algorithm raised: nothing recorded but the error, the next run of the same
command retries them); 2 for a user error, 130 when interrupted. The summary printed at the
end has one line per distinct reason.
"""

from __future__ import annotations

import argparse
import json
import sys

from oracles.errors import UserError

from ..experiment import FIELDS, Experiment, execute, load_toml
from ..results import Cell, ResultsStore
from ..summary import format_text, summarise

#: exit status when some runs were stopped (recorded; see the module docstring)
EXIT_STOPPED = 3
#: exit status when some runs failed (not recorded; re-running retries them)
EXIT_FAILED = 4

#: the main job: `nas-harness run` with no arguments
DEFAULT_ORACLES = ("convnet-digits", "nb201/cifar10")
DEFAULT_SEEDS = 10
#: The main job's algorithms: every registered one that finishes a run to the optimum on
#: convnet-digits in seconds, with their defaults (evolution's draws only unevaluated
#: children, so it never stalls on a 1,364-network space). LaNAS twice: the default (the
#: authors' Adam-fitted nodes) is no better than RE on this table, its least-squares variant
#: is 3.3x better (results/lanas_reproduction.md), and a new user should see both. cadam, nao
#: and nases cost minutes of CPU per run (measured: NAO 33 s mean per run, CADAM over 5 min)
#: and are left to explicit --algorithm.
DEFAULT_ALGORITHMS = ("random", "evolution", "mcts", "lanas", "lanas:split=lstsq", "reinforce")


def register(sub) -> None:
    p = sub.add_parser("run", help="run search algorithms on oracles for many seeds",
                       description="Run every (algorithm, oracle, seed) not already in --out; "
                                   "with no arguments, run the default experiment.",
                       epilog=f"Exit status: 0 every run finished; {EXIT_STOPPED} some runs were stopped "
                              f"(stuck on known architectures; recorded, censored); {EXIT_FAILED} some runs "
                              "failed (the algorithm raised; run the same command again to retry them); "
                              "2 user error; 130 interrupted.")
    p.add_argument("experiment", nargs="?", help="TOML experiment file (flags override its fields)")
    for f in FIELDS.values():  # one flag per experiment field, from its declaration
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if list in meta["type"]:
            p.add_argument(flag, action="append", dest=f.name, metavar="NAME", help=meta["help"])
        elif bool in meta["type"]:
            p.add_argument(flag, action="store_true", default=None, dest=f.name, help=meta["help"])
        else:
            kind = float if float in meta["type"] else meta["type"][0]
            p.add_argument(flag, type=_number if kind is float else kind, dest=f.name, choices=meta.get("choices"),
                           metavar=None if meta.get("choices") else f.name.upper().replace("_", "-"),
                           help=meta["help"])
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true",
                   help="print the full traceback of each failed run (also kept in its .failed.json)")
    p.set_defaults(func=main)


def _number(text: str) -> int | float:
    """A budget: an integer where it is one (architectures, queries), else a float (time)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _default_experiment() -> Experiment:
    from algorithms import REGISTRY
    from oracles.registry import available
    left_out = sorted(set(REGISTRY) - {a.partition(":")[0] for a in DEFAULT_ALGORITHMS})
    avail = available()
    oracle = next((o for o in DEFAULT_ORACLES if o in avail), None)
    if oracle is None:
        raise UserError("no default oracle installed: import one with "
                        "`nas-harness oracles import nb201 PATH` or pass --oracle")
    if left_out:
        print(f"nas-harness: {', '.join(left_out)} take minutes per run and are not in the default "
              "experiment; add them with --algorithm", file=sys.stderr)
    return Experiment(oracles=[oracle], algorithms=list(DEFAULT_ALGORITHMS), seeds=DEFAULT_SEEDS,
                      until_optimum=True, workers=2)


def main(args: argparse.Namespace) -> int:
    overrides = {name: getattr(args, name) for name in FIELDS}
    if args.experiment:
        exp = load_toml(args.experiment, overrides)
    elif all(v is None for v in overrides.values()):
        exp = _default_experiment()
        print(f"nas-harness: default experiment: {', '.join(exp.algorithms)} on {exp.oracles[0]}, "
              f"{exp.seeds} seeds, until the optimum", file=sys.stderr)
    else:
        base = Experiment()
        exp = Experiment(**{k: (v if v is not None else getattr(base, k)) for k, v in overrides.items()})
    exp.validate()
    cells, skipped, ran = execute(exp, progress=not args.quiet)
    store = ResultsStore(exp.out)
    rows = [r for r in summarise(store) if any(c.key == f"{r['oracle']} | {r['algorithm']}" for c in cells)]
    stopped, failed = run_outcomes(store, cells)
    if args.format == "json":
        print(json.dumps({"out": str(store.root), "ran": ran, "skipped": skipped, "cells": rows,
                          "stopped": stopped, "failed": [{k: f[k] for k in ("cell", "seed", "failed", "path")}
                                                         for f in failed]}, indent=1))
    else:
        print(format_text(rows))
        print(f"\n{ran} run(s) executed, {skipped} already done; results in {store.root}/ "
              f"(`nas-harness report {store.root}`)")
        for line in outcome_lines(stopped, failed):
            print(line)
    if args.debug:
        for f in failed:
            print(f"\n--- {f['cell']}, seed {f['seed']} ---\n{f.get('traceback') or ''}", file=sys.stderr, end="")
    if failed:
        return EXIT_FAILED
    return EXIT_STOPPED if stopped else 0


def run_outcomes(store: ResultsStore, cells: list[Cell]) -> tuple[list[dict], list[dict]]:
    """The experiment's stopped runs ({cell, seed, stopped, n_distinct}) and failed runs (the
    contents of their ``.failed.json``), whenever they ran."""
    keys = {c.key for c in cells}
    stopped = [{"cell": cell.key, "seed": meta["seed"], "stopped": meta["summary"]["stopped"],
                "n_distinct": meta["summary"].get("n_distinct")}
               for cell, meta, _ in store.iter_runs() if cell.key in keys and meta["summary"].get("stopped")]
    return stopped, store.failures([c for c in store.cells() if c.key in keys])


def _grouped(items: list[dict], reason: str) -> list[str]:
    """One line per distinct reason: how many runs, which cells and seeds."""
    by_reason: dict[str, dict[str, list[int]]] = {}
    for it in items:
        by_reason.setdefault(it[reason], {}).setdefault(it["cell"], []).append(int(it["seed"]))
    lines = []
    for text, cells in sorted(by_reason.items(), key=lambda kv: -sum(map(len, kv[1].values()))):
        n = sum(map(len, cells.values()))
        where = "; ".join(f"{c} (seed{'s' if len(s) > 1 else ''} {_seeds(sorted(s))})" for c, s in cells.items())
        lines.append(f"  {n} x {text} -- {where}")
    return lines


def _seeds(seeds: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, seeds[:limit]))
    return shown + (f", ... ({len(seeds)} in all)" if len(seeds) > limit else "")


def outcome_lines(stopped: list[dict], failed: list[dict]) -> list[str]:
    """What the summary says about runs that did not finish normally (nothing if none).

    The table's notes (:func:`harness.summary.format_text`) already give each cell's stopped
    runs with their reason; here: which seeds, so the files can be found."""
    lines = []
    if stopped:
        by_cell: dict[str, list[int]] = {}
        for it in stopped:
            by_cell.setdefault(it["cell"], []).append(int(it["seed"]))
        where = "; ".join(f"{c} (seed{'s' if len(s) > 1 else ''} {_seeds(sorted(s))})" for c, s in by_cell.items())
        lines.append(f"{len(stopped)} run(s) stopped early (recorded, reasons in the notes above): {where}")
    if failed:
        lines.append(f"{len(failed)} run(s) failed (not recorded; run the same command again to retry them, "
                     "--debug for tracebacks):")
        lines += _grouped(failed, "failed")
    return lines
