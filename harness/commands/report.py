"""``nas-harness report DIR``: the summary of a results folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oracles.errors import UserError

from ..results import ResultsStore
from ..summary import format_text, summarise


def register(sub) -> None:
    p = sub.add_parser("report", help="summarise a results folder")
    p.add_argument("dir", type=Path, help="results folder written by `nas-harness run`")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    store = ResultsStore(args.dir)
    if not store.manifest_path.is_file():
        raise UserError(f"{args.dir} is not a results folder (no experiment.json)")
    rows = summarise(store)
    if args.format == "json":
        print(json.dumps({"dir": str(args.dir), "cells": rows}, indent=1))
    else:
        print(format_text(rows))
    return 0
