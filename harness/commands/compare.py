"""``nas-harness compare BASELINE CANDIDATE``: regression verdicts between two result sets;
``nas-harness baseline DIR FILE``: a compact baseline file to commit and compare against."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oracles.errors import UserError

from ..compare import METRICS, Thresholds, compare, format_comparison
from ..metrics import checkpoints_for, load, load_folder, save_baseline

#: exit status when the candidate is significantly worse somewhere
EXIT_REGRESSION = 1


def register(sub) -> None:
    p = sub.add_parser("compare", help="is a candidate significantly worse than a baseline?",
                       description="Match cells by (oracle, algorithm); one-sided Mann-Whitney tests on "
                                   "samples-to-optimum and final quality with effect-size thresholds; "
                                   f"exit status {EXIT_REGRESSION} on a regression.")
    p.add_argument("baseline", type=Path, help="results folder or baseline .json file")
    p.add_argument("candidate", type=Path, help="results folder or baseline .json file")
    d = Thresholds()
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"significance level (default {d.alpha})")
    p.add_argument("--metric", action="append", choices=METRICS, dest="metrics",
                   help="metric to test (repeatable; default samples_to_optimum and best_search)")
    p.add_argument("--at", type=int, help="samples at which quality is compared (default: the budget)")
    p.add_argument("--min-a12", type=float, default=d.min_a12,
                   help=f"smallest Vargha-Delaney A12 that counts (default {d.min_a12})")
    p.add_argument("--min-ratio", type=float, default=d.min_ratio,
                   help=f"smallest samples-to-optimum ratio that counts (default {d.min_ratio})")
    p.add_argument("--min-diff", type=float, default=d.min_diff,
                   help=f"smallest quality difference in percentage points that counts (default {d.min_diff})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=main)

    b = sub.add_parser("baseline", help="write a compact baseline file from a results folder",
                       description="Per run: seed, samples to the optimum, censoring and quality at 1-2-5 "
                                   "checkpoints; per cell its full configuration. Small enough to commit.")
    b.add_argument("dir", type=Path, help="results folder written by nas-harness run")
    b.add_argument("file", type=Path, help="baseline file to write (.json)")
    b.add_argument("--checkpoints", help="comma-separated sample counts to keep (default 10,20,50,...,budget)")
    b.set_defaults(func=main_baseline)


def main(args: argparse.Namespace) -> int:
    t = Thresholds(alpha=args.alpha, min_a12=args.min_a12, min_ratio=args.min_ratio, min_diff=args.min_diff)
    result = compare(load(args.baseline), load(args.candidate), args.metrics, args.at, t)
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(format_comparison(result))
    return EXIT_REGRESSION if result.regression else 0


def main_baseline(args: argparse.Namespace) -> int:
    cps = None
    if args.checkpoints:
        try:
            cps = sorted({int(x) for x in args.checkpoints.split(",") if x.strip()})
        except ValueError:
            raise UserError(f"--checkpoints must be comma-separated integers, got {args.checkpoints!r}") from None
    rs = load_folder(args.dir)
    if not any(c.n_runs for c in rs.cells):
        raise UserError(f"{args.dir} holds no finished runs")
    if cps:
        cps = sorted(set(cps) | {c.sample_budget for c in rs.cells})
    path = save_baseline(rs, args.file, cps)
    n = sum(c.n_runs for c in rs.cells)
    print(f"{path}: {len(rs.cells)} cell(s), {n} run(s), {path.stat().st_size:,} bytes "
          f"(checkpoints {', '.join(str(x) for x in (cps or checkpoints_for(max(c.sample_budget for c in rs.cells))))})")
    return 0
