"""A search space made of a table's rows, each row a tuple of categorical choices.

Any benchmark table whose architecture is described by a few categorical columns (e.g.
``depth``, ``width``, ``kernel``) becomes a search space here: an architecture is the tuple
of its column values (strings), and **the space is the set of rows** -- a combination the
table does not contain is not an architecture (it has no answer to give).

Moves and representations (the usual ones for categorical spaces: one decision changed per
mutation, as in regularized evolution, Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019, and its per-edge form on NAS-Bench-201, Dong &
Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search", ICLR
2020):

* ``sample``: a row uniformly at random;
* ``mutate``: change one column such that the result is a row (the column is drawn among
  those that admit a change, then the new row uniformly among that column's neighbours, see
  below); a row with no neighbour at all mutates into a uniformly drawn other row, counted
  in ``isolated_mutations``;
* ``neighbours``: the rows differing from ``arch`` in exactly one column -- in a
  *categorical* column every other value, in a *numeric* column only the nearest value
  below and the nearest above among the rows that exist (a step to the neighbouring width,
  depth or kernel size, not a jump across the range; see docs/tables.md for why);
* ``encode``: per column, one-hot (categorical) or one float, the value scaled to [0, 1]
  over the column's distinct values, ``(v - min) / (max - min)`` (numeric; 0 when the column
  has one value), concatenated in column order; ``tokens``: the value index per column
  (``decisions`` = the number of distinct values of each column; numeric values are in
  increasing order, so token order is value order).

Lookups are vectorised: each row has a mixed-radix integer code and rows are found by
bisection in the sorted codes; neighbours in column ``c`` share the code with column ``c``
zeroed, found the same way. No per-row Python objects are built.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import InvalidArchitecture
from .space import FiniteSpace, check_tokens
from .table import Table


class ProductSpace(FiniteSpace):
    """Rows of a table as architectures.

    Parameters
    ----------
    columns: the names of the architecture columns, in order.
    categories: for each column, its distinct values (strings) in token order.
    codes: ``(rows, columns)`` int array, ``codes[i, c]`` = index of row ``i``'s value in
        ``categories[c]``; rows must be distinct.
    name: the space's name (the table's).
    numeric: names of the columns whose values are numbers, encoded by value and mutated to
        a neighbouring value (default none: every column categorical, as tables imported
        before numeric columns existed). Their categories must parse as numbers, in
        increasing order.
    """

    def __init__(self, columns: Sequence[str], categories: Sequence[Sequence[str]], codes: np.ndarray,
                 name: str = "product", numeric: Sequence[str] = ()):
        self.name = name
        self.columns = tuple(str(c) for c in columns)
        self.categories = tuple(tuple(str(v) for v in cats) for cats in categories)
        self._codes = np.asarray(codes, dtype=np.int64)
        n, k = self._codes.shape if self._codes.ndim == 2 else (len(self._codes), -1)
        if k != len(self.columns) or len(self.categories) != k:
            raise InvalidArchitecture(f"product space: {len(self.columns)} columns, {len(self.categories)} "
                                      f"category lists, codes of shape {self._codes.shape}")
        self._card = np.array([len(c) for c in self.categories], dtype=np.int64)
        if k and (self._codes.min(initial=0) < 0 or np.any(self._codes >= self._card)):
            raise InvalidArchitecture("product space: a code is outside its column's categories")
        if float(np.prod(self._card.astype(float))) >= 2.0 ** 62:
            raise InvalidArchitecture("product space: too many combinations for 64-bit codes")
        self._place = np.ones(k, dtype=np.int64)
        for c in range(k - 2, -1, -1):
            self._place[c] = self._place[c + 1] * self._card[c + 1]
        self._value_index = [{v: i for i, v in enumerate(cats)} for cats in self.categories]
        unknown = set(numeric) - set(self.columns)
        if unknown:
            raise InvalidArchitecture(f"product space: numeric column(s) {', '.join(sorted(unknown))} "
                                      "are not architecture columns")
        self.numeric = tuple(c in set(numeric) for c in self.columns)
        #: per column, the scaled value of each category (numeric columns only)
        self._scaled: list[np.ndarray | None] = []
        for c, cats in enumerate(self.categories):
            if not self.numeric[c]:
                self._scaled.append(None)
                continue
            try:
                v = np.array([float(x) for x in cats], dtype=np.float64)
            except ValueError:
                raise InvalidArchitecture(f"product space: numeric column {self.columns[c]!r} has a "
                                          "value that is not a number") from None
            if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0):
                raise InvalidArchitecture(f"product space: numeric column {self.columns[c]!r} must hold "
                                          "distinct finite numbers in increasing order")
            span = v[-1] - v[0]
            self._scaled.append((v - v[0]) / span if span > 0 else np.zeros_like(v))
        flat = self._codes @ self._place
        self._order = np.argsort(flat, kind="stable")
        self._sorted = flat[self._order]
        if n > 1 and np.any(self._sorted[1:] == self._sorted[:-1]):
            raise InvalidArchitecture("product space: two rows are the same architecture")
        self._flat = flat
        # per column: rows sorted by their code with that column zeroed (the neighbour key)
        self._nb_order, self._nb_keys = [], []
        for c in range(k):
            key = flat - self._codes[:, c] * self._place[c]
            order = np.argsort(key, kind="stable")
            self._nb_order.append(order)
            self._nb_keys.append(key[order])
        self.isolated_mutations = 0

    @classmethod
    def from_table(cls, table: Table) -> "ProductSpace":
        spec = table.meta.get("space", {})
        return cls(spec["columns"], [spec["categories"][c] for c in spec["columns"]],
                   np.asarray(table.columns["codes"]), name=table.name, numeric=spec.get("numeric", ()))

    # --- enumeration -------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._codes)

    def arch(self, index: int) -> tuple[str, ...]:
        row = self._codes[int(index)]
        return tuple(self.categories[c][int(v)] for c, v in enumerate(row))

    def _codes_of(self, arch) -> np.ndarray:
        if not isinstance(arch, (tuple, list)) or len(arch) != len(self.columns):
            raise InvalidArchitecture(f"{self.name}: an architecture is a tuple of {len(self.columns)} values "
                                      f"({', '.join(self.columns)}), got {arch!r}")
        out = np.empty(len(self.columns), dtype=np.int64)
        for c, v in enumerate(arch):
            i = self._value_index[c].get(str(v))
            if i is None:
                raise InvalidArchitecture(f"{self.name}: column {self.columns[c]!r} has no value {v!r} "
                                          f"(it has {', '.join(self.categories[c][:10])}"
                                          f"{', ...' if len(self.categories[c]) > 10 else ''})")
            out[c] = i
        return out

    def _row_of_flat(self, flat: int) -> int | None:
        j = int(np.searchsorted(self._sorted, flat))
        if j < len(self._sorted) and self._sorted[j] == flat:
            return int(self._order[j])
        return None

    def index(self, arch) -> int:
        codes = self._codes_of(arch)
        i = self._row_of_flat(int(codes @ self._place))
        if i is None:
            raise InvalidArchitecture(f"{self.name}: {self.to_string(arch)} is not a row of the table "
                                      "(the space is the set of rows)")
        return i

    def indices(self, archs) -> np.ndarray:
        return np.fromiter((self.index(a) for a in archs), dtype=np.int64, count=len(archs))

    # --- random moves --------------------------------------------------------------
    def _neighbour_rows(self, i: int, c: int) -> np.ndarray:
        key = self._flat[i] - self._codes[i, c] * self._place[c]
        keys = self._nb_keys[c]
        lo, hi = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
        rows = self._nb_order[c][lo:hi]
        rows = rows[rows != i]
        if self.numeric[c] and len(rows):
            # a numeric column steps to the nearest existing value below and above
            mine, theirs = self._codes[i, c], self._codes[rows, c]
            below, above = theirs[theirs < mine], theirs[theirs > mine]
            keep = [v for v in (below.max() if len(below) else None, above.min() if len(above) else None)
                    if v is not None]
            rows = rows[np.isin(theirs, keep)]
        return rows

    def mutate(self, arch, rng):
        i = self.index(arch)
        options = [rows for c in range(len(self.columns)) if len(rows := self._neighbour_rows(i, c))]
        if not options:
            if self.size < 2:
                raise InvalidArchitecture(f"{self.name}: a one-row space has nothing to mutate into")
            self.isolated_mutations += 1
            j = int(rng.integers(self.size - 1))
            return self.arch(j + (j >= i))
        rows = options[int(rng.integers(len(options)))]
        return self.arch(int(rows[rng.integers(len(rows))]))

    def neighbours(self, arch):
        i = self.index(arch)
        return [self.arch(int(j)) for c in range(len(self.columns)) for j in self._neighbour_rows(i, c)]

    # --- representations ---------------------------------------------------------
    @property
    def representation(self) -> dict[str, Any]:
        """The import's choice of encoding (part of the oracle's checksum): numeric columns."""
        return {"numeric": [c for c, num in zip(self.columns, self.numeric) if num]}

    def identity(self, arch) -> str:
        self.index(arch)  # only rows are architectures
        return self.to_string(arch)

    def _identities_all(self) -> np.ndarray:
        # rows are architectures by construction: no per-row lookup
        return np.array([self.to_string(self.arch(i)) for i in range(self.size)], dtype=str)

    @property
    def encoding_size(self) -> int:
        return int(sum(1 if num else card for num, card in zip(self.numeric, self._card)))

    def encode(self, arch) -> np.ndarray:
        return self._encode_codes(self._codes_of(arch)[None, :])[0]

    def _encode_codes(self, codes: np.ndarray) -> np.ndarray:
        width = [1 if num else int(card) for num, card in zip(self.numeric, self._card)]
        offsets = np.r_[0, np.cumsum(width)[:-1]].astype(np.int64)
        out = np.zeros((len(codes), self.encoding_size))
        rows = np.arange(len(codes))
        for c, scaled in enumerate(self._scaled):
            if scaled is None:
                out[rows, offsets[c] + codes[:, c]] = 1.0
            else:
                out[:, offsets[c]] = scaled[codes[:, c]]
        return out

    def _encode_all(self) -> np.ndarray:
        return self._encode_codes(self._codes)

    def _tokens_all(self) -> np.ndarray:
        return self._codes.view()

    @property
    def decisions(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self._card)

    def tokens(self, arch) -> tuple[int, ...]:
        return tuple(int(x) for x in self._codes_of(arch))

    def from_tokens(self, tokens):
        t = check_tokens(tokens, self.decisions)
        arch = tuple(self.categories[c][v] for c, v in enumerate(t))
        self.index(arch)
        return arch

    def to_string(self, arch) -> str:
        return ";".join(f"{c}={v}" for c, v in zip(self.columns, arch))

    def parse(self, text: str):
        if not isinstance(text, str):
            raise InvalidArchitecture(f"{self.name}: architecture must be a string, got {type(text).__name__}")
        values: dict[str, str] = {}
        for part in text.split(";"):
            key, eq, value = part.partition("=")
            if not eq or key.strip() not in self.columns:
                raise InvalidArchitecture(f"{self.name}: write {';'.join(f'{c}=VALUE' for c in self.columns)}, "
                                          f"got {text!r}")
            values[key.strip()] = value.strip()
        missing = [c for c in self.columns if c not in values]
        if missing:
            raise InvalidArchitecture(f"{self.name}: {text!r} lacks column(s) {', '.join(missing)}")
        arch = tuple(values[c] for c in self.columns)
        self.index(arch)
        return arch

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["columns"] = {c: len(v) for c, v in zip(self.columns, self.categories)}
        d["numeric"] = [c for c, num in zip(self.columns, self.numeric) if num]
        return d
