"""``nas-harness plot DIR``: the figures of a results folder, as PNG and PDF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oracles.errors import UserError

from ..figures import ALL_FIGURES, plot_all
from ..metrics import load_folder


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw the figures of a results folder (PNG and PDF)",
                       description="LaNAS Fig. 5 layout (best-so-far with IQR; samples to the optimum), "
                                   "regret curves, fraction of runs at the optimum, mean curves with "
                                   "bootstrap CIs, curves vs simulated training time where the oracle "
                                   "has costs, and, for runs with several fidelities or simulated workers "
                                   "(or a budget in epochs or time), regret vs training epochs paid "
                                   "(regret_epochs) and vs the simulated clock (regret_clock).")
    p.add_argument("dir", type=Path, help="results folder written by nas-harness run")
    p.add_argument("--out", type=Path, help="where to write the figures (default DIR/figures)")
    p.add_argument("--linear-x", action="store_true", help="linear sample axis (default: logarithmic)")
    p.add_argument("--formats", default="png,pdf", help="comma-separated file formats (default png,pdf)")
    p.add_argument("--figure", action="append", choices=ALL_FIGURES, dest="figures",
                   help="only this figure (repeatable; default all that apply)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise UserError(f"--formats: choose from png, pdf, svg (got {args.formats!r})")
    rs = load_folder(args.dir)
    if rs.facts_note():
        print(f"nas-harness: {rs.facts_note()}", file=sys.stderr)
    out = args.out or (args.dir / "figures")
    try:
        paths = plot_all(rs, out, log_x=not args.linear_x, formats=formats, which=args.figures or ALL_FIGURES)
    except OSError as exc:
        raise UserError(f"cannot write figures to {out}: {exc.strerror or exc}") from None
    if not paths:
        raise UserError(f"{args.dir} holds no finished runs to plot")
    for p in paths:
        print(p)
    return 0
