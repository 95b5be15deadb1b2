"""``nas-harness check ALGORITHM``: the contract our own algorithms pass, run on any algorithm
(a built-in, a plugin by its entry-point name or a class by its import path), then a short
samples-to-optimum comparison with random search and regularized evolution. What each check
means: :mod:`harness.check`. Exit status 0 when nothing failed, 1 when a check failed (for
CI), 2 on a usage error."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from oracles.errors import UserError

#: exit status when a check failed
EXIT_FAILED = 1


def register(sub) -> None:
    from ..check import CHECKS, DEFAULT_MF_ORACLE, DEFAULT_ORACLE, SUMMARIES, Settings
    full, quick = Settings(), Settings.quick()
    width = max(len(c) for c in CHECKS)
    p = sub.add_parser(
        "check", help="run the algorithm contract (determinism, no test metric, stopping, ...) on an algorithm",
        # the epilog is a table, so the description is wrapped here (the raw formatter keeps lines)
        description=textwrap.fill(
            "Run the algorithm contract (the checks tests/test_contract.py runs on the built-ins) on "
            "ALGORITHM, then compare its samples to the optimum with random search and regularized "
            "evolution. Prints pass/FAIL/n/a per check with its reason; exit status "
            f"{EXIT_FAILED} if any check failed.", 79),
        epilog="checks:\n" + "\n".join(f"  {c.ljust(width)}  {SUMMARIES[c]}" for c in CHECKS),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("algorithm", help="algorithm as run --algorithm takes it: NAME[:key=value,...], a plugin's "
                                     "name, or a class by its import path (package.module.Class)")
    p.add_argument("--oracle", help=f"table the checks run on (default {DEFAULT_ORACLE}, shipped; "
                                    f"{DEFAULT_MF_ORACLE} for algorithms that choose fidelities)")
    p.add_argument("--seeds", type=int, help=f"runs per algorithm in the samples-to-optimum comparison "
                                             f"(default {full.seeds}; --quick {quick.seeds})")
    p.add_argument("--budget", type=int, help=f"evaluations per run of the behavioural checks "
                                              f"(default {full.budget}; --quick {quick.budget}); give more, "
                                              "or a smaller warm-up (e.g. evolution:population=10), to check an "
                                              "algorithm past a longer random start")
    p.add_argument("--quick", action="store_true",
                   help="smaller runs, one worker setting for stopping, no second table (what CI runs)")
    p.add_argument("--only", action="append", choices=CHECKS, metavar="CHECK",
                   help=f"run only this check (repeatable): {', '.join(CHECKS)}")
    p.add_argument("--no-statistics", action="store_true", help="skip the samples-to-optimum comparison")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (one line per check) or json (every outcome with its numbers)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..check import Settings, Subject, check, format_comparison_table, format_outcome, passed, summary_line
    overrides = {}
    for key in ("seeds", "budget"):
        value = getattr(args, key)
        if value is not None:
            if value < (2 if key == "seeds" else 1):
                raise UserError(f"--{key} must be at least {2 if key == 'seeds' else 1}, got {value}")
            overrides[key] = value
    if args.oracle:
        overrides["oracle"] = args.oracle
    if args.no_statistics:
        overrides["statistics"] = False
    settings = Settings.quick(**overrides) if args.quick else Settings(**overrides)
    subject = Subject.of(args.algorithm)          # an unknown algorithm is one line, before any run
    text = args.format == "text"
    if text:
        where = f"{subject.cls.__module__}.{subject.cls.__qualname__}"
        print(f"check {subject.label} ({where}){', quick' if args.quick else ''}:", flush=True)

    def show(o):
        if text:
            print(format_outcome(o), flush=True)
            if o.check == "samples-to-optimum" and o.details.get("runs"):
                print("\n".join(format_comparison_table(o.details)), flush=True)

    outcomes = check(args.algorithm, settings=settings, only=args.only, on_outcome=show)
    if text:
        print(summary_line(outcomes))
    else:
        json.dump({"algorithm": subject.label, "passed": passed(outcomes),
                   "checks": [o.as_dict() for o in outcomes]}, sys.stdout, indent=1, default=str)
        print()
    return 0 if passed(outcomes) else EXIT_FAILED
