"""Reference cells for the DARTS-space results on digits: what a cell scores without search.

Trains from scratch, with exactly what ``nas-harness supernet retrain`` uses by default (the
``cpu`` recipe of :mod:`supernets.retrain`, training seed 0, digits split 0), so the numbers
sit beside the searched cells' on equal terms:

* ``N`` uniformly random cells of the DARTS space (:meth:`oracles.darts_space.DartsSpace.sample`
  with ``numpy.random.default_rng(k)``, ``k = 0 .. N-1``: per node a uniform pair of distinct
  inputs and a uniform operation, no ``none``, on each edge, both cells);
* DARTS's published CIFAR-10 cell (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
  Search", ICLR 2019, Fig. 4-5; ``DARTS_V2`` in its code's ``genotypes.py``);
* the all-skip normal cell with DARTS_V2's reduction cell: the collapse DARTS is known for,
  taken to its end (every normal edge a skip connection).

Writes ``reference_cells.json`` (resumable: a finished training is never redone; the file
is rewritten after each) and prints a table.

    python results/darts_space_digits/reference_cells.py --random 5 --out results/darts_space_digits
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from oracles.darts_space import DartsSpace  # noqa: E402
from supernets.data import load  # noqa: E402
from supernets.retrain import preset_recipe, train_from_scratch, training_key  # noqa: E402

DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
ALL_SKIP_NORMAL = ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "
                   "('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), "
                   "('skip_connect', 1)], normal_concat=[2, 3, 4, 5], " + DARTS_V2.split("normal_concat=[2, 3, 4, 5], ")[1])


def cells(n_random: int) -> list[tuple[str, str]]:
    space = DartsSpace()
    out = [(f"random cell {k} (default_rng({k}))", space.identity(space.sample(np.random.default_rng(k))))
           for k in range(n_random)]
    out.append(("DARTS_V2 (DARTS's CIFAR-10 cell)", space.identity(space.parse(DARTS_V2))))
    out.append(("all-skip normal cell, DARTS_V2's reduction cell", space.identity(space.parse(ALL_SKIP_NORMAL))))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--random", type=int, default=5, help="random cells (default 5)")
    p.add_argument("--out", type=Path, required=True, help="folder of reference_cells.json")
    args = p.parse_args(argv)
    path = args.out / "reference_cells.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    space, recipe, data = DartsSpace(), preset_recipe("cpu"), load("digits", 0)
    record = data.record()
    for name, ident in cells(args.random):
        key = training_key(ident, recipe, record, 0)
        if key not in done:
            numbers = train_from_scratch(space.parse(ident), recipe, data, seed=0)
            done[key] = {"name": name, "arch": ident, "recipe": recipe.to_dict(), "seed": 0,
                         "data": {k: record.get(k) for k in ("dataset", "split_seed", "fingerprint")}, **numbers}
            args.out.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
            tmp.replace(path)
        t = done[key]
        print(f"{name}: valid {100 * t['valid_acc']:.2f} %, test {100 * t['test_acc']:.2f} %, "
              f"{t['params'] / 1e6:.3f} M params, {t['cpu_s']:.0f} CPU-s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
