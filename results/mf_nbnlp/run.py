"""``nas-harness`` with the NAS-Bench-NLP space kind registered in this process.

    python results/mf_nbnlp/run.py run results/experiments/mf_nbnlp.toml --out RUNS

``oracles/registry.py`` maps a table's space kind to the function that builds its space
(``SPACE_BUILDERS``); until its ``"nbnlp"`` entry is committed there (one line, see
docs/nbnlp.md), this wrapper adds it before handing its arguments to the command line. With
one worker process (``--workers 1``, the experiment's setting) every run happens in this
process, so the entry is seen by all of them. Once the registry has the entry this file is
the same as ``nas-harness``.
"""

from __future__ import annotations

import sys

from harness.cli import main
from oracles import registry
from oracles.nbnlp_space import space_from_table

if __name__ == "__main__":
    registry.SPACE_BUILDERS.setdefault("nbnlp", space_from_table)
    sys.exit(main(sys.argv[1:]))
