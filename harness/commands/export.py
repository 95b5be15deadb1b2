"""``nas-harness export``: a results folder as one long CSV/Parquet table, or rliable's input."""

from __future__ import annotations

import argparse
import sys

from oracles.errors import UserError

from ..export import RLIABLE_AXES, RLIABLE_METRICS, write_long_table, write_rliable

_EPILOG = """\
long table: one row per query of every finished run; columns oracle, algorithm (the label,
e.g. lanas:split=adam), seed, config_id, stopped (why the runner stopped the run; empty
for a normal run), direction (max, or min for a minimised metric such as perplexity),
then every record column (sample, n_distinct, arch_index, arch_id, arch, search, report,
best_search, best_report, incumbent_report, cost, cum_cost, repeat, algo_cpu_s, trial,
fidelity, start, finish, epochs). Values are the metrics' own: best_search of a minimised
metric is its running minimum; best_* count the top fidelity only (empty before a run's
first top-fidelity result).

--rliable writes OUT.npz, one (runs x tasks) array per algorithm label holding the score
--metric at --at on --axis (distinct samples, training epochs paid, or the simulated
clock), and OUT.json with the task (oracle) order, each task's direction, the seeds of
the rows and the runs left out. A *_regret metric is the distance to the optimum (>= 0,
lower is better for every task, maximised or minimised). Load it for rliable with:

    import json, numpy as np
    scores = dict(np.load("OUT.npz"))             # {label: array (runs, tasks)}
    tasks = json.load(open("OUT.json"))["tasks"]  # column order
    from rliable import library as rly, metrics
    agg, ci = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]))

The same folder also reads directly: pandas.read_parquet("DIR/runs") gives the long table
(without the stopped column) for folders written by this version.
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write a results folder as a CSV/Parquet table or rliable's input",
                       description="Write every query of a results folder as one long table (CSV or "
                                   "Parquet), or per-algorithm score arrays for rliable.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="DIR", help="results folder (written by nas-harness run)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="file to write (with --rliable: FILE.npz and FILE.json)")
    p.add_argument("--format", choices=("csv", "parquet"),
                   help="long-table format (default: from FILE's suffix, .csv or .parquet)")
    p.add_argument("--rliable", action="store_true",
                   help="write rliable's input instead: per algorithm a runs x tasks score array")
    p.add_argument("--metric", choices=RLIABLE_METRICS, default="incumbent_report",
                   help="score for --rliable: report metric of the best-by-search architecture "
                        "(default), best search metric, best report metric seen, or the regret of "
                        "the first two to the optimum")
    p.add_argument("--axis", choices=RLIABLE_AXES, default="samples",
                   help="for --rliable: read the score after --at distinct samples (default), training "
                        "epochs paid, or units of the simulated clock")
    p.add_argument("--at", type=float, metavar="N",
                   help="point for --rliable on --axis (default: the smallest sample budget in the folder; "
                        "for epochs or clock the smallest epoch or time budget)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.rliable:
        if args.format:
            raise UserError("--format is for the long table; --rliable always writes .npz and .json")
        if args.axis == "samples" and args.at is not None and args.at != int(args.at):
            raise UserError(f"--at must be a whole number of samples, got {args.at}")
        npz, meta, info = write_rliable(args.folder, args.out, args.metric, args.at, args.axis)
        shapes = ", ".join(f"{lab} {len(a['seeds'])}x{len(info['tasks'])}" for lab, a in info["algorithms"].items())
        where = f"{info['at']:g} {info['axis'] if info['axis'] != 'clock' else 'clock units'}"
        print(f"wrote {npz} ({info['metric']} at {where}; {shapes}) and {meta} "
              f"(tasks: {', '.join(info['tasks'])})")
        low = [o for o, d in info["direction"].items() if d == "min"]
        if low and not info["metric"].endswith("_regret"):
            print(f"nas-harness: minimised task(s) {', '.join(low)}: their scores are lower-is-better values; "
                  "use a *_regret metric to aggregate them with maximised tasks", file=sys.stderr)
        for lab, a in info["algorithms"].items():
            left = {o: n for o, n in a["left_out"].items() if n}
            if left:
                print(f"nas-harness: {lab}: left out runs without a score at {where} or "
                      f"missing on another task: " + ", ".join(f"{n} on {o}" for o, n in left.items()),
                      file=sys.stderr)
        return 0
    if args.metric != "incumbent_report" or args.at is not None or args.axis != "samples":
        raise UserError("--metric, --axis and --at are for --rliable")
    fmt = args.format
    if fmt is None:
        suffix = args.out.rsplit(".", 1)[-1].lower() if "." in args.out else ""
        if suffix not in ("csv", "parquet"):
            raise UserError(f"cannot tell the format from {args.out!r}: give --format csv or parquet")
        fmt = suffix
    out, rows = write_long_table(args.folder, args.out, fmt)
    print(f"wrote {rows:,} rows to {out} ({fmt})")
    return 0
