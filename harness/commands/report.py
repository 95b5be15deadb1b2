"""``nas-harness report DIR``: the summary of a results folder (text), every statistic
(``--format json``), or a Markdown report with tables and figures (``--format md``).

Every format reads the folder through :func:`harness.metrics.load_folder` and the oracle
facts stored in its ``experiment.json`` (no table is loaded); minimised metrics are shown
as their own values ("lower is better"), and runs with several fidelities or workers add
the epochs and simulated time spent and the final regret, with intervals. Reference results
the folder holds (``references.json``, :func:`harness.summary.write_references`: results
that are not search algorithms, such as scikit-learn's ``MLPClassifier`` on the same split)
are listed in a block of their own and drawn as horizontal lines in the figures."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from oracles.errors import UserError

from ..metrics import load, load_folder
from ..summary import (format_markdown, format_text, reference_notes, reference_summary, references_of,
                       statistics_report, summarise)


def register(sub) -> None:
    p = sub.add_parser("report", help="summarise a results folder")
    p.add_argument("dir", type=Path, help="results folder written by nas-harness run (json and md also "
                                          "take a baseline file)")
    p.add_argument("--format", choices=("text", "json", "md"), default="text",
                   help="text summary, all statistics as JSON, or a Markdown report with figures")
    p.add_argument("--output", type=Path, help="write the report to this file instead of stdout "
                                               "(md: figure links are relative to it)")
    p.add_argument("--budgets", help="comma-separated budgets of the final-quality table "
                                     "(default 100,500,1000 below the budget, and the budget)")
    p.add_argument("--no-figures", action="store_true", help="md: do not draw or link figures")
    p.set_defaults(func=main)


def _budgets(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--budgets must be comma-separated integers, got {text!r}") from None
    if any(b < 1 for b in out):
        raise UserError("--budgets must be positive numbers of samples")
    return out


def _finite(obj):
    """NaN/inf -> null: strict JSON for any consumer (a statistic that cannot be estimated)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(args: argparse.Namespace) -> int:
    if args.format == "text":
        rs = load_folder(args.dir, with_records=False)  # run metadata only: fast
        rows = summarise(rs)
        refs = [reference_summary(e) for e in references_of(rs)]
        text = format_text(rows, notes=[n for n in (rs.facts_note(),) if n] + reference_notes(refs, rows))
    else:
        rs = load(args.dir)
        report = statistics_report(rs, _budgets(args.budgets))
        if args.format == "json":
            text = json.dumps(_finite({"dir": str(args.dir), **report}), indent=1, allow_nan=False)
        else:
            figures = {}
            if not args.no_figures and rs.kind == "folder":  # a baseline file has no records to draw
                from ..figures import plot_all
                fig_dir = args.dir / "figures"
                base = (args.output.parent if args.output else Path.cwd()).resolve()
                # PNG is what Markdown shows; `nas-harness plot` adds the PDFs for a paper
                for p in plot_all(rs, fig_dir, formats=("png",)):
                    figures[p.stem] = Path(os.path.relpath(p.resolve(), base)).as_posix()
            text = format_markdown(report, figures)
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(args.output)
    else:
        print(text)
    return 0
