"""Generic conversion recipe: any CSV / Parquet table whose architecture is a few columns.

``nas-harness oracles import table FILE.csv|FILE.parquet --arch-columns a,b,c
--metric valid=COL --metric test=COL [--cost COL] [--train COL] [--categorical a,b]
[--percent | --fraction] [--name NAME]`` (docs/tables.md)

* every row is one architecture: the tuple of its ``--arch-columns`` values (read as
  strings); the search space is the set of rows (:class:`oracles.product_space.ProductSpace`,
  space kind ``product``), a combination absent from the file is not an architecture;
* an architecture column whose every value parses as a finite number (channels, depth,
  kernel size...) is *numeric*: encoded by value, scaled to [0, 1] over its distinct values,
  and mutated to a neighbouring value; every other column is *categorical* (one-hot, any
  value). ``--categorical a,b`` forces numeric-looking columns to be categorical. The
  manifest records the choice (``meta.space.numeric`` / ``meta.space.categorical``);
* ``--metric NAME=COL`` (repeatable) copies numeric column ``COL`` as metric ``NAME``;
  ``--cost COL`` and ``--train COL`` add the metrics ``cost`` (training seconds) and
  ``train`` (training accuracy), which the oracle hands to algorithms with each answer;
* the oracle ``NAME`` searches ``--search`` (default ``valid`` if declared, else the first
  metric) and reports ``--report`` (default ``test`` if declared, else the search metric);
* ``--direction min`` declares metrics that are minimised (perplexity, loss; values are
  kept as they are): the optimum is the smallest value, algorithms are told negated scores,
  and reports, figures and ``compare`` follow the direction;
* units: tables store accuracies as fractions. The metrics other than ``cost`` are read as
  fractions when every value is in [0, 1] and as percentages (divided by 100) when every
  value is in [0, 100] and some exceed 1; anything else is refused with one line.
  ``--percent`` forces percent; ``--fraction`` keeps the values as they are (any range, e.g.
  a metric that is not an accuracy). The manifest records the unit and whether it was
  detected (``meta.source.units``).

The file must be complete: a missing architecture cell or metric cell, a non-numeric metric
value, two rows with the same architecture, or a named column that does not exist are
refused with an error naming the row (1-based data row, i.e. line ``row + 1`` of a CSV with
a header) and the column. The table holds one seed (``"0"``) and one fidelity
(``--fidelity``, default 0 = "the file's only budget").
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptData, UserError
from ..table import Table, file_sha256

NAME = "table"
HELP = "any CSV/Parquet table: --arch-columns a,b,c --metric valid=COL --metric test=COL [--cost COL]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the .csv (optionally .gz) or .parquet file")
    parser.add_argument("--arch-columns", required=True,
                        help="comma-separated columns that together identify an architecture")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME=COL",
                        help="numeric column COL becomes metric NAME (repeat; e.g. valid=val_acc)")
    parser.add_argument("--cost", metavar="COL", help="column with the training time in seconds")
    parser.add_argument("--train", metavar="COL", help="column with the training accuracy")
    parser.add_argument("--search", help="metric to search (default: valid, else the first --metric)")
    parser.add_argument("--report", help="metric to report (default: test, else the search metric)")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--percent", action="store_true",
                       help="accuracies are in percent: divide every metric except cost by 100 "
                            "(default: detected from the values)")
    units.add_argument("--fraction", action="store_true",
                       help="keep metric values as they are (fractions, or a metric that is not an accuracy)")
    parser.add_argument("--categorical", metavar="COL[,COL]",
                        help="architecture columns to encode as categories even if every value is a number")
    parser.add_argument("--fidelity", type=int, default=0, help="training budget of the file (default 0)")
    parser.add_argument("--name", help="table and oracle name (default: the file name without extension)")
    parser.add_argument("--direction", choices=("max", "min"), default="max",
                        help="whether the metrics are maximised (accuracy; default) or minimised "
                             "(perplexity, loss); implies --fraction for min (values kept as they are)")


def _read(path: Path):
    import pandas as pd
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            return pd.read_parquet(path)
        if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
            sep = "\t" if ".tsv" in suffixes else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise CorruptData(f"cannot read {path}: {exc}") from None
    except Exception as exc:  # parser errors of pandas/pyarrow have many classes
        raise CorruptData(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    raise UserError(f"{path}: unknown table format (use .csv, .csv.gz, .tsv or .parquet)")


def _split_names(text: str, what: str) -> list[str]:
    names = [c.strip() for c in str(text).split(",") if c.strip()]
    if not names:
        raise UserError(f"{what} is empty: give comma-separated column names")
    if len(set(names)) != len(names):
        raise UserError(f"{what} names a column twice: {text}")
    return names


def _need(df, col: str, what: str) -> None:
    if col not in df.columns:
        raise UserError(f"{what}: the table has no column {col!r} (it has {', '.join(map(str, df.columns))})")


def _natural_key(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def detect_units(values: np.ndarray, names: list[str], path: Path) -> str:
    """``"fraction"`` or ``"percent"`` for the accuracy metrics (``values[:, k]``, one per name).

    All values in [0, 1]: fractions (a percent table whose best entry is below 1% is not a
    benchmark anyone searches). All in [0, 100] with some above 1: percent. Anything else
    (negative values, values above 100) is not an accuracy in either unit: refused.
    """
    if values.size == 0 or (values.min() >= 0.0 and values.max() <= 1.0):
        return "fraction"
    if values.min() >= 0.0 and values.max() <= 100.0:
        return "percent"
    lo, hi = float(values.min()), float(values.max())
    raise UserError(f"{path}: metric values ({', '.join(names)}) range from {lo:g} to {hi:g}, neither "
                    "fractions in [0, 1] nor percentages in [0, 100]; pass --fraction to keep them as "
                    "they are or --percent to divide them by 100")


def _numeric_column(values: list[str]) -> np.ndarray | None:
    """The values as floats if every one parses as a finite number, else None."""
    try:
        v = np.array([float(x) for x in values], dtype=np.float64)
    except ValueError:
        return None
    return v if np.all(np.isfinite(v)) else None


def build_table(path: Path, arch_columns: list[str], metrics: dict[str, str], cost: str | None = None,
                train: str | None = None, search: str | None = None, report: str | None = None,
                percent: bool = False, fidelity: int = 0, name: str | None = None,
                units: str | None = None, categorical: list[str] | tuple[str, ...] = (),
                direction: str = "max") -> Table:
    """The table of ``path`` (see the module docstring).

    ``direction``: ``"max"`` (accuracies) or ``"min"`` (perplexity, loss): how the oracle
    ranks the search and report metrics (declared in the table's oracle entry).

    ``units``: ``"percent"``, ``"fraction"`` or ``None``/``"auto"`` (detect); ``percent=True``
    is ``units="percent"``. ``categorical``: architecture columns never treated as numeric.
    """
    import pandas as pd
    units = "percent" if percent else (units or "auto")
    if units not in ("auto", "percent", "fraction"):
        raise UserError(f"units must be auto, percent or fraction, got {units!r}")
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    df = _read(path)
    if len(df) == 0:
        raise CorruptData(f"{path} has no data rows")
    for c in arch_columns:
        _need(df, c, "--arch-columns")
    for c in categorical:
        if c not in arch_columns:
            raise UserError(f"--categorical {c!r} is not one of the --arch-columns ({', '.join(arch_columns)})")
    metrics = dict(metrics)
    if cost:
        metrics["cost"] = cost
    if train:
        metrics["train"] = train
    if not metrics:
        raise UserError("give at least one --metric NAME=COL")
    for m, col in metrics.items():
        _need(df, col, f"metric {m}")
    # architecture cells: present, as strings
    arch = df[arch_columns].astype("string")
    bad = arch.isna() | (arch.apply(lambda s: s.str.strip()) == "")
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise CorruptData(f"{path}: row {r + 1} has no value in architecture column {arch_columns[c]!r}")
    arch = arch.apply(lambda s: s.str.strip())
    # metric cells: present and numeric
    values = np.empty((len(df), 1, 1, len(metrics)))
    for k, (m, col) in enumerate(metrics.items()):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        missing = raw.isna() | (raw.astype("string").str.strip() == "")
        if missing.any():
            r = int(np.flatnonzero(missing.to_numpy())[0])
            raise CorruptData(f"{path}: row {r + 1} has no value in metric column {col!r}")
        if num.isna().any():
            r = int(np.flatnonzero(num.isna().to_numpy())[0])
            raise CorruptData(f"{path}: row {r + 1}, column {col!r}: {raw.iloc[r]!r} is not a number")
        v = num.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            r = int(np.flatnonzero(~np.isfinite(v))[0])
            raise CorruptData(f"{path}: row {r + 1}, column {col!r}: {raw.iloc[r]!r} is not a finite number")
        values[:, 0, 0, k] = v
    acc = [k for k, m in enumerate(metrics) if m != "cost"]
    detected = units == "auto"
    if detected:
        units = detect_units(values[:, 0, 0, acc], [metrics[m] for m in metrics if m != "cost"], path)
    if units == "percent":
        values[:, 0, 0, acc] /= 100.0
    # categories per column (numeric columns in increasing order of value), codes per row
    categories, codes = [], np.empty((len(df), len(arch_columns)), dtype=np.int32)
    numeric = []
    for c, col in enumerate(arch_columns):
        cats = sorted(set(arch[col].tolist()), key=_natural_key)
        nums = None if col in categorical else _numeric_column(cats)
        if nums is not None:
            same = np.flatnonzero(np.diff(nums) == 0)
            if len(same):
                a, b = cats[same[0]], cats[same[0] + 1]
                raise CorruptData(f"{path}: column {col!r} writes one number two ways ({a!r} and {b!r}); "
                                  f"write it one way, or pass --categorical {col} to keep them apart")
            numeric.append(col)
        lookup = {v: i for i, v in enumerate(cats)}
        codes[:, c] = [lookup[v] for v in arch[col].tolist()]
        categories.append(cats)
    dup = pd.DataFrame(codes).duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = codes[rows[0]]
        same = rows[(codes[rows] == first).all(axis=1)]
        desc = ", ".join(f"{col}={categories[c][first[c]]}" for c, col in enumerate(arch_columns))
        raise CorruptData(f"{path}: rows {same[0] + 1} and {same[1] + 1} are the same architecture ({desc}); "
                          "average them first or add the distinguishing column to --arch-columns")
    names = list(metrics)
    search = search or ("valid" if "valid" in names else names[0])
    report = report or ("test" if "test" in names else search)
    for what, m in (("--search", search), ("--report", report)):
        if m not in names:
            raise UserError(f"{what} {m!r} is not a declared metric ({', '.join(names)})")
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name.split(".")[0]) or "table"
    if "/" in name or name.startswith("."):
        raise UserError(f"--name {name!r} must not contain '/' or start with '.'")
    archs = np.array([";".join(f"{col}={v}" for col, v in zip(arch_columns, row))
                      for row in arch.itertuples(index=False, name=None)], dtype=str)
    if direction not in ("max", "min"):
        raise UserError(f"direction must be max or min, got {direction!r}")
    decl: dict[str, Any] = {"name": name, "search": search, "report": report, "fidelity": int(fidelity),
                            "description": f"table {path.name}: search {search}, report {report} "
                                           f"over {len(df)} rows of {', '.join(arch_columns)}"}
    if cost:
        decl["cost"] = "cost"
    if train:
        decl["train"] = "train"
    if direction != "max":   # absent means max (tables imported before directions)
        decl["direction"] = direction
    meta = {
        "source": {"file": path.name, "sha256": file_sha256(path), "format": "generic table",
                   "columns": metrics, "units": units, "units_detected": detected},
        "space": {"kind": "product", "columns": list(arch_columns),
                  "categories": {col: categories[c] for c, col in enumerate(arch_columns)},
                  "numeric": numeric, "categorical": [c for c in arch_columns if c not in numeric]},
        "oracles": [decl],
    }
    return Table(name=name, archs=archs, seeds=("0",), fidelities=(int(fidelity),), metrics=tuple(names),
                 values=values, columns={"codes": codes}, meta=meta)


def _parse_metrics(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, col = item.partition("=")
        key, col = key.strip(), col.strip()
        if not eq or not key or not col:
            raise UserError(f"--metric {item!r}: write NAME=COLUMN, e.g. --metric valid=val_acc")
        if key in out or key in ("cost", "train"):
            raise UserError(f"--metric {key} is declared twice (cost/train come from --cost/--train)")
        out[key] = col
    return out


def build(args: argparse.Namespace) -> Table:
    return build_table(Path(os.path.expanduser(str(args.source))), _split_names(args.arch_columns, "--arch-columns"),
                       _parse_metrics(args.metric or []), cost=args.cost, train=getattr(args, "train", None),
                       search=getattr(args, "search", None), report=getattr(args, "report", None),
                       percent=bool(getattr(args, "percent", False)), fidelity=getattr(args, "fidelity", 0),
                       name=getattr(args, "name", None),
                       units="fraction" if getattr(args, "fraction", False)
                       or getattr(args, "direction", "max") == "min" else None,
                       direction=getattr(args, "direction", "max"),
                       categorical=_split_names(args.categorical, "--categorical")
                       if getattr(args, "categorical", None) else ())
