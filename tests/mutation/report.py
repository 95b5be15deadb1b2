"""Summarise a finished ``mutmut run`` (run in its folder by tests/mutation/run.sh).

    python tests/mutation/report.py OUT_PREFIX

writes ``OUT_PREFIX.json`` (mutants per status, and the names of those not killed) and
``OUT_PREFIX.surviving.txt`` (each mutant not killed: name, status and the diff of its
function), reading mutmut's own result files through its API (one process; ``mutmut show``
per mutant costs a second each).
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def main(prefix: str) -> None:
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    counts: Counter[str] = Counter()
    not_killed: dict[str, str] = {}
    diffs = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[code]
            counts[status] += 1
            if status != "killed":
                not_killed[name] = status
                diffs.append(f"# {name}: {status}\n{get_diff_for_mutant(name, path=path)}\n")
    with open(f"{prefix}.json", "w") as fh:
        json.dump({"total": sum(counts.values()), "by_status": dict(counts), "not_killed": not_killed},
                  fh, indent=1, sort_keys=True)
    with open(f"{prefix}.surviving.txt", "w") as fh:
        fh.write("\n".join(diffs))
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), end="")


if __name__ == "__main__":
    main(sys.argv[1])
