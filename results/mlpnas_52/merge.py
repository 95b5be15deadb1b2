"""Move the finished runs of one results folder into another written with the same experiments.

The runner lets one command write a folder at a time, so on this 2-core machine a second
stream of seeds ran into its own folder (``--out runs/mlpnas-digits-b --seed-start 5``).
This registers the experiments' cells in the destination (as ``nas-harness run`` does before
it runs anything) and copies every run file of the source whose cell the destination holds
with the same configuration (same fingerprint: the run file's metadata is checked by every
reader) and whose seed it does not have yet.

    python results/mlpnas_52/merge.py runs/mlpnas-digits-b runs/mlpnas-digits \\
        results/experiments/mlpnas_digits.toml results/experiments/mlpnas_digits_oneshot.toml
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from harness.experiment import load_toml, plan
from harness.results import ResultsStore, fingerprint


def main(argv: list[str]) -> int:
    src, dst, tomls = Path(argv[0]), Path(argv[1]), argv[2:]
    target = ResultsStore(dst)
    with target.session():
        for toml in tomls:
            target.register(plan(load_toml(toml, {"out": str(dst)})))
        cells = {c.key: c for c in target.cells()}
        moved = 0
        for cell in ResultsStore(src).cells():
            here = cells.get(cell.key)
            if here is None or fingerprint(here.config) != fingerprint(cell.config):
                print(f"skipped {cell.key}: not in {dst} with the same configuration", file=sys.stderr)
                continue
            for run in sorted((src / cell.folder).glob("seed-*.parquet")):
                out = target.root / here.folder / run.name
                if not out.exists():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(run, out)
                    moved += 1
    print(f"copied {moved} run file(s) from {src} into {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
