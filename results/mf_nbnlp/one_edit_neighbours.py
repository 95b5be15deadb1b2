"""How many one-edit neighbours of a NAS-Bench-NLP cell are tabulated (docs/nbnlp.md, "Moves").

    python results/mf_nbnlp/one_edit_neighbours.py [N_CELLS]     # default 300 cells, seed 0

One edit: one node's operation replaced by another taking the same number of inputs, or one
input of one node rewired to ``x``, ``h_prev_0..2`` or another node; variants that are not
valid recipes (a cycle, a wrong arity) are dropped, and the rest are counted by canonical form
(oracles.nbnlp_space), without the cell itself. Needs the ``nbnlp`` table in
$NAS_HARNESS_DATA. Measured (300 cells): 146 distinct neighbours on average (median 116),
0.66 of them tabulated; 80 % of the cells have none.
"""

from __future__ import annotations

import random
import sys

import numpy as np

from oracles.errors import InvalidArchitecture
from oracles.nbnlp_space import ARITY, OPS, canonical, parse_recipe
from oracles.registry import data_dir
from oracles.table import load_table


def one_edit_forms(recipe: dict) -> set[str]:
    """Identities of the valid cells one edit away from ``recipe`` (``{name: (op, inputs)}``)."""
    own = canonical(recipe)[0]
    sources = ["x", "h_prev_0", "h_prev_1", "h_prev_2", *recipe]
    variants = []
    for n, (op, ins) in recipe.items():
        for other in OPS:
            lo, hi = ARITY[other]
            if other != op and lo <= len(ins) and (hi is None or len(ins) <= hi):
                variants.append({**recipe, n: (other, ins)})
        for p in range(len(ins)):
            for s in sources:
                if s not in (ins[p], n):
                    variants.append({**recipe, n: (op, ins[:p] + (s,) + ins[p + 1:])})
    out = set()
    for v in variants:
        try:
            h = canonical(v)[0]
        except InvalidArchitecture:
            continue
        if h != own:
            out.add(h)
    return out


def main(n_cells: int = 300) -> None:
    t = load_table(data_dir() / "nbnlp")
    tabulated = set(np.asarray(t.archs).tolist())
    rows = random.Random(0).sample(range(t.n_archs), n_cells)
    counts, hits = [], []
    for r in rows:
        forms = one_edit_forms(parse_recipe(str(t.columns["recipe"][r])))
        counts.append(len(forms))
        hits.append(len(forms & tabulated))
    print(f"{n_cells} cells: one-edit neighbours mean {np.mean(counts):.1f} (median {np.median(counts):.0f}); "
          f"tabulated mean {np.mean(hits):.2f}; cells with none tabulated {np.mean(np.array(hits) == 0):.0%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
