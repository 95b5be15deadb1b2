"""The LaNAS recurrent-cell space ("LSTM-10K"), enumerated, with canonical identities.

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space" (LaNAS),
appendix 6.1, "Collecting LSTM-10K dataset": "following a similar LSTM cell definition in
[ENAS], we represent a LSTM cell with a connectivity matrix and a node list of operators.
The choice of operators is limited to either a fully connected layer followed by RELU or an
identity layer, while the connectivity is limited to 6 nodes." The paper gives nothing
more; this module fixes the rest and says why.

**A cell** is a DAG of at most :data:`MAX_VERTICES` = 6 vertices given by an
upper-triangular 0/1 connectivity matrix and one label per vertex:

* vertex 0 is ``input``: the cell's fixed entry step, which mixes the token embedding
  ``x_t`` and the previous hidden state ``h_{t-1}`` as DARTS's recurrent cell does (Liu,
  Simonyan & Yang, "DARTS: Differentiable Architecture Search", §2.1 and its recurrent
  cell: ``c = sigmoid(W_c [x_t; h_{t-1}])``, ``s_0 = h_{t-1} + c * (tanh(W_s [x_t; h_{t-1}])
  - h_{t-1})``); LaNAS says its setup is DARTS's;
* the last vertex is ``output``: the new hidden state ``h_t``;
* every other (interior) vertex carries one of :data:`OPS`: ``fc-relu``
  (``relu(W m + b)``, a fully connected layer followed by ReLU) or ``identity`` (``m``),
  where ``m`` is what the vertex receives.

So "6 nodes" is read as NAS-Bench-101 reads its 7 (Ying et al., "NAS-Bench-101", §2.1): the
matrix's vertices, input and output included; up to 4 operator vertices.

**How a vertex combines several inputs: the mean.** ENAS averages a cell's loose ends into
its output and DARTS averages its intermediate nodes; NAS-Bench-101 sums. For a recurrent
cell the choice decides stability: ``h_t`` feeds back into the next step, and with a sum a
cell whose ``s_0`` reaches the output along two identity paths computes ``h_t ~ 2 h_{t-1}``,
which grows like ``2^t`` over a BPTT window of dozens of steps; with the mean every vertex's
input is a convex combination of its predecessors, identity paths never amplify the state,
and only the learned ``fc-relu`` weights can. So ``m`` = the mean of the vertex's inputs, for
the interior vertices and for ``output`` alike.

**Identity.** Two cells are the same architecture when they compute the same function by
construction, with the same weights, whatever their matrices:

1. *pruning* (as NB101's official ``ModelSpec``): vertices on no input->output path are
   removed; a matrix whose output the input cannot reach is not a cell;
2. *the mean form* (:func:`_mean_form`): an ``identity`` vertex only passes on the mean of
   what it reads, so what a cell computes is fixed by what each ``fc-relu`` vertex and the
   output read, written as exact weighted means of the *sources*, ``input`` and the
   ``fc-relu`` vertices (rational weights, followed through every ``identity`` vertex).
   Two cells whose mean forms are equal up to relabelling the ``fc-relu`` vertices are
   one cell (:func:`_mean_key`, exact: no hashing). Examples: the output reading only an
   ``identity`` vertex that averages ``input`` and ``v`` is the output averaging them;
   ``v3 = mean(v1, v2)``, ``output = mean(v1, v2, v3)`` is ``output = mean(v1, v2)``; every
   all-identity cell is ``h_t = s_0``. Different weights stay different cells
   (``mean(s_0, mean(s_0, v))`` weighs ``s_0`` 3/4), and so do cells that are equal only
   after rescaling weights (ReLU is positively homogeneous, but such cells are different
   parameterisations and train differently);
3. *the representative*: of the cells with one mean form, the space keeps the one with the
   fewest vertices, then the smallest canonical labelling key (:func:`_keys`: the
   lexicographically smallest upper-triangular labelling, input first and output last).

The rule was checked against training: in a collection of 1,195 cells trained under an
older rule that only removed copies of a single value, the cells that this rule merges
(98 groups) trained to a median test-perplexity difference of 8e-6 (14 pairs bit-identical,
the largest difference 0.10, from floating-point summation order), against 0.24 between
distinct cells with the same parameter count.

The space is small enough to enumerate: **6,954 distinct cells** (1 with no operator
vertex, 2 with one, 14 with two, 205 with three, 6,732 with four;
:func:`count_by_vertices`), from 532,754 raw (matrix, ops) pairs of 2 to 6 vertices
(:func:`raw_count`; canonicalising every raw pair lands exactly on the enumerated cells,
checked in the tests for every pair of up to 5 vertices). The enumeration first removes
copies of a single value and isomorphic labellings with vectorised rules (10,584
candidates) and then merges candidates by mean form. LaNAS "randomly sampled 10K
architectures" from its version of the space; how it identified cells is not stated. A
table of ours is the whole space or a random subset (docs/lstm-shakespeare.md).
Enumeration order: by vertex count, then by the canonical key.

Representations (fixed length whatever the number of vertices): a cell is *padded* to 6
vertices by keeping ``output`` at position 5 and leaving the unused interior positions
isolated.

* ``encode``: the 15 upper-triangle bits of the padded matrix (row-major), then a one-hot
  pair per interior position (``fc-relu``, ``identity``; zeros for an unused position): 23
  floats.
* ``tokens``: the 15 bits (2 choices each), then the 4 interior ops (2 choices each;
  unused positions carry 0 and are pruned away again by :meth:`RecurrentSpace.from_tokens`,
  so ``from_tokens(tokens(c)) == c``); any other token sequence is canonicalised, and
  refused when the output is unreachable.
* strings: NB101's ``"<row-major adjacency bits>;<label>,<label>,..."``, e.g.
  ``"0110000100010000;input,fc-relu,identity,output"`` parses (to its canonical form);
  :meth:`RecurrentSpace.to_string` and :meth:`RecurrentSpace.identity` write the canonical
  form.

Moves: ``neighbours`` are the distinct cells one edit away: flip one edge of the padded
matrix, change one operator, or insert one new vertex (either operator) between two
vertices ``p`` and ``s`` that the cell has (``p`` before ``s``), connected ``p -> new -> s``
(without insertions a cell with unused positions could only shrink); ``mutate`` draws
uniformly among them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import numpy as np

from .errors import InvalidArchitecture
from .space import FiniteSpace, check_tokens

#: interior operators (LaNAS appendix 6.1)
OPS = ("fc-relu", "identity")
#: vertices of the matrix, input and output included (LaNAS: "limited to 6 nodes")
MAX_VERTICES = 6
MAX_INTERIOR = MAX_VERTICES - 2
N_TRIU = MAX_VERTICES * (MAX_VERTICES - 1) // 2          # 15 edge positions
ENCODING_SIZE = N_TRIU + len(OPS) * MAX_INTERIOR          # 23
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_IDENTITY = _OP_INDEX["identity"]
#: how cells are identified (module docstring); recorded in tables and collections, so that
#: rows collected under the older rule (copies of one value only, 10,584 cells) are told apart
IDENTITY_RULE = "mean-form"


@dataclass(frozen=True)
class RecurrentCell:
    """A cell: ``matrix`` (n x n, upper-triangular 0/1, tuples) and ``ops`` (n labels,
    ``input`` first, ``output`` last, :data:`OPS` between)."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def n_vertices(self) -> int:
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        return int(sum(map(sum, self.matrix)))

    def interior_ops(self) -> tuple[int, ...]:
        return tuple(_OP_INDEX[o] for o in self.ops[1:-1])

    def as_numpy(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.int64).reshape(self.n_vertices, self.n_vertices)


# --- canonical form -------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _perms(k: int) -> np.ndarray:
    """Every permutation of a k-interior cell's vertices that fixes input and output."""
    n = k + 2
    return np.array([(0, *(1 + np.array(p)), n - 1) if k else (0, 1)
                     for p in itertools.permutations(range(k))], dtype=np.int64).reshape(-1, n)


@lru_cache(maxsize=None)
def _triu(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _keys(mats: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """The order canonical forms minimise: interior ops first (as a binary number, first vertex
    most significant), then the upper-triangle bits row-major; ``inf`` where a matrix is not
    upper-triangular (not a labelling in topological order)."""
    n = mats.shape[-1]
    k = n - 2
    rows, cols = _triu(n)
    bits = mats[:, rows, cols].astype(np.int64)
    bit_code = bits @ (1 << np.arange(len(rows) - 1, -1, -1, dtype=np.int64)) if len(rows) else 0
    op_code = ops.astype(np.int64) @ (1 << np.arange(k - 1, -1, -1, dtype=np.int64)) if k else 0
    key = (np.asarray(op_code, dtype=np.int64) << len(rows)) + bit_code
    lower = np.tril(np.ones((n, n), dtype=bool))
    ok = ~(mats.astype(bool) & lower).any(axis=(1, 2))
    return np.where(ok, key, np.iinfo(np.int64).max)


def _canonical_labelling(mats: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a batch of same-size DAGs (input 0, output last), the canonical labelling of each:
    returns (matrices, interior ops, keys)."""
    n = mats.shape[-1]
    k = n - 2
    perms = _perms(k)
    best_key = np.full(len(mats), np.iinfo(np.int64).max, dtype=np.int64)
    best_mat = mats.copy()
    best_ops = ops.copy()
    for p in perms:
        pm = mats[:, p][:, :, p]
        po = ops[:, p[1:-1] - 1] if k else ops
        key = _keys(pm, po)
        better = key < best_key
        best_key = np.where(better, key, best_key)
        best_mat[better] = pm[better]
        best_ops[better] = po[better]
    return best_mat, best_ops, best_key


def _prune(matrix: np.ndarray, ops: list[int]) -> tuple[np.ndarray, list[int]]:
    """Keep the vertices on an input->output path (any DAG labelling with input 0, output last)."""
    n = len(matrix)
    fwd = {0}
    for v in _topo(matrix):
        if v in fwd:
            fwd.update(int(s) for s in np.flatnonzero(matrix[v]))
    bwd = {n - 1}
    for v in reversed(_topo(matrix)):
        if matrix[v, sorted(bwd)].any():
            bwd.add(v)
    if n - 1 not in fwd:
        raise InvalidArchitecture("the output is not reachable from the input")
    keep = sorted(fwd & bwd)
    return matrix[np.ix_(keep, keep)], [ops[i - 1] for i in keep[1:-1]]


def _topo(matrix: np.ndarray) -> list[int]:
    n = len(matrix)
    indeg = matrix.sum(axis=0).astype(int)
    order, ready = [], [v for v in range(n) if indeg[v] == 0]
    while ready:
        v = ready.pop(0)
        order.append(v)
        for s in np.flatnonzero(matrix[v]):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(int(s))
    if len(order) != n:
        raise InvalidArchitecture("the connectivity has a cycle")
    return order


def _mean_form(matrix: np.ndarray, ops: Sequence[int]) -> tuple[dict[int, dict[int, Fraction]], dict[int, Fraction]]:
    """What a pruned cell computes, written over its *sources*: ``input`` and the ``fc-relu``
    vertices. Returns each ``fc-relu`` vertex's input and the output, as exact weights over
    the sources (``{source: weight}``, positive, summing to 1): an ``identity`` vertex passes
    on the mean of what it reads, so its weights are followed through, never kept."""
    n = len(matrix)
    value: dict[int, dict[int, Fraction]] = {}
    reads: dict[int, dict[int, Fraction]] = {}
    out: dict[int, Fraction] = {}
    for v in _topo(matrix):
        if v == 0:
            value[0] = {0: Fraction(1)}
            continue
        preds = [int(p) for p in np.flatnonzero(matrix[:, v])]
        mean: dict[int, Fraction] = {}
        for p in preds:
            for src, w in value[p].items():
                mean[src] = mean.get(src, Fraction(0)) + w / len(preds)
        if v == n - 1:
            out = mean
        elif ops[v - 1] == _IDENTITY:
            value[v] = mean
        else:
            reads[v] = mean
            value[v] = {v: Fraction(1)}
    return reads, out


def _mean_key(matrix: np.ndarray, ops: Sequence[int]) -> tuple:
    """The identity of a pruned cell (module docstring, step 2): its :func:`_mean_form` with
    the ``fc-relu`` vertices relabelled 1..f in the way that gives the smallest key, a
    tuple of exact weight vectors (input first), one per ``fc-relu`` vertex and the output."""
    reads, out = _mean_form(matrix, ops)
    fcs = sorted(reads)
    best = None
    for perm in itertools.permutations(range(1, len(fcs) + 1)):
        label = {0: 0, **{v: perm[i] for i, v in enumerate(fcs)}}
        vecs = [None] * len(fcs)
        for v, m in reads.items():
            vec = [Fraction(0)] * (len(fcs) + 1)
            for src, w in m.items():
                vec[label[src]] = w
            vecs[label[v] - 1] = tuple(vec)
        vec = [Fraction(0)] * (len(fcs) + 1)
        for src, w in out.items():
            vec[label[src]] = w
        key = (len(fcs), *vecs, tuple(vec))
        if best is None or key < best:
            best = key
    return best


def _to_cell(matrix: np.ndarray, ops: Sequence[int]) -> RecurrentCell:
    return RecurrentCell(tuple(tuple(int(x) for x in row) for row in matrix),
                         ("input", *(OPS[int(o)] for o in ops), "output"))


def canonical(matrix, ops: Sequence) -> RecurrentCell:
    """The canonical cell of ``matrix`` (any DAG with the input first and the output last,
    at most :data:`MAX_VERTICES` vertices) and its interior ``ops`` (names or indices into
    :data:`OPS`): pruned, then the representative of its mean form (module docstring).
    Raises :class:`InvalidArchitecture` for anything that is not a cell."""
    try:
        m = np.array(matrix, dtype=np.int64)
    except (TypeError, ValueError):
        raise InvalidArchitecture(f"connectivity matrix must be a square 0/1 array, got {matrix!r}") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not 2 <= len(m) <= MAX_VERTICES:
        raise InvalidArchitecture(f"connectivity matrix must be square with 2..{MAX_VERTICES} vertices, "
                                  f"got shape {m.shape}")
    if not np.isin(m, (0, 1)).all() or np.diag(m).any():
        raise InvalidArchitecture("connectivity matrix must be 0/1 with an empty diagonal")
    n = len(m)
    op_idx = []
    for o in ops:
        if isinstance(o, str):
            if o not in _OP_INDEX:
                raise InvalidArchitecture(f"unknown operator {o!r}; choose from {', '.join(OPS)}")
            op_idx.append(_OP_INDEX[o])
        else:
            if isinstance(o, bool) or int(o) != o or not 0 <= int(o) < len(OPS):
                raise InvalidArchitecture(f"operator index {o!r} out of range 0..{len(OPS) - 1}")
            op_idx.append(int(o))
    if len(op_idx) != n - 2:
        raise InvalidArchitecture(f"{n} vertices need {n - 2} interior operators, got {len(op_idx)}")
    if m[:, 0].any() or m[n - 1].any():
        raise InvalidArchitecture("the input vertex cannot have predecessors nor the output successors")
    m, op_idx = _prune(m, op_idx)
    return _representatives()[_mean_key(m, op_idx)]


def make_cell(matrix, ops: Sequence[str]) -> RecurrentCell:
    """A cell from a matrix and its full label list (``input``, interior ops, ``output``), in
    canonical form."""
    ops = list(ops)
    if len(ops) < 2 or ops[0] != "input" or ops[-1] != "output":
        raise InvalidArchitecture(f"labels must start with 'input' and end with 'output', got {ops!r}")
    return canonical(matrix, ops[1:-1])


# --- enumeration ----------------------------------------------------------------------------
def _reduced_canonical(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every canonical cell with exactly ``k`` interior vertices, in key order: pruned (every
    interior vertex has a predecessor and a successor, which in a DAG whose only source and
    sink candidates are input and output means it lies on an input->output path), a fixed
    point of the copy rules below (the vectorised first pass of the enumeration: no vertex
    reads several copies of one value only, no single-input identity vertex feeds a vertex
    that could read its input instead), and equal to its own canonical labelling. Cells
    with one mean form may remain; :func:`_enumeration` merges them."""
    n = k + 2
    rows, cols = _triu(n)
    m_edges = len(rows)
    codes = np.arange(1 << m_edges, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(m_edges - 1, -1, -1)) & 1
    mats = np.zeros((len(codes), n, n), dtype=np.int64)
    mats[:, rows, cols] = bits
    indeg, outdeg = mats.sum(axis=1), mats.sum(axis=2)
    ok = (indeg[:, 1:-1] >= 1).all(axis=1) & (outdeg[:, 1:-1] >= 1).all(axis=1)
    if k == 0:
        ok &= mats[:, 0, 1] == 1
    mats = mats[ok]
    combos = list(itertools.product(range(len(OPS)), repeat=k))
    op_sets = np.array(combos, dtype=np.int64).reshape(len(combos), k)
    n_graphs = len(mats)
    mats = np.repeat(mats, len(op_sets), axis=0)
    ops = np.tile(op_sets, (n_graphs, 1))
    # fixed points of the copy rules: cheap vectorised rules that cut the 524,288 (matrix,
    # ops) pairs of four operator vertices before the exact, per-cell mean form runs
    reducible = np.zeros(len(mats), dtype=bool)
    rows_n = np.arange(len(mats))
    cls = np.tile(np.arange(n), (len(mats), 1))
    for v in range(1, n):
        reads = mats[:, :, v].astype(bool)
        hi = np.where(reads, cls, -1).max(axis=1)
        lo = np.where(reads, cls, n).min(axis=1)
        same = hi == lo
        reducible |= same & (reads.sum(axis=1) > 1)
        copy = same if v == n - 1 else same & (ops[:, v - 1] == _IDENTITY)
        cls[:, v] = np.where(copy, hi, v)
    for v in range(1, n - 1):
        single = (mats[:, :, v].sum(axis=1) == 1) & (ops[:, v - 1] == _IDENTITY)
        p = mats[:, :, v].argmax(axis=1)
        movable = (mats[:, v].astype(bool) & ~mats[rows_n, p].astype(bool)).any(axis=1)
        reducible |= single & movable
    mats, ops = mats[~reducible], ops[~reducible]
    _, _, best = _canonical_labelling(mats, ops)
    own = _keys(mats, ops)
    keep = own == best
    mats, ops, own = mats[keep], ops[keep], own[keep]
    order = np.argsort(own, kind="stable")
    return mats[order], ops[order]


@lru_cache(maxsize=1)
def _enumeration() -> tuple[tuple[RecurrentCell, ...], np.ndarray, np.ndarray, dict[tuple, RecurrentCell]]:
    """The distinct cells, their padded forms, and the map from a :func:`_mean_key` to its
    cell. The candidates (fixed points of the copy rules, canonically labelled) still hold
    cells that compute the same mean form; the first of each, in vertex-count-then-key
    order, is the one kept (so the fewest vertices)."""
    cells, bits, ops_all = [], [], []
    reps: dict[tuple, RecurrentCell] = {}
    rows6, cols6 = _triu(MAX_VERTICES)
    for k in range(MAX_INTERIOR + 1):
        mats, ops = _reduced_canonical(k)
        first = []
        for m, o in zip(mats, ops):
            key = _mean_key(m, o)
            if key in reps:
                first.append(False)
                continue
            reps[key] = _to_cell(m, o)
            cells.append(reps[key])
            first.append(True)
        mats, ops = mats[np.array(first, dtype=bool)], ops[np.array(first, dtype=bool)]
        n = k + 2
        pos = np.array(list(range(n - 1)) + [MAX_VERTICES - 1])
        full = np.zeros((len(mats), MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
        full[:, pos[:, None], pos[None, :]] = mats
        bits.append(full[:, rows6, cols6])
        padded = np.full((len(mats), MAX_INTERIOR), -1, dtype=np.int64)
        padded[:, :k] = ops
        ops_all.append(padded)
    return tuple(cells), np.concatenate(bits), np.concatenate(ops_all), reps


def _representatives() -> dict[tuple, RecurrentCell]:
    return _enumeration()[3]


def enumerate_cells() -> tuple[RecurrentCell, ...]:
    """Every distinct cell, in the space's enumeration order (vertex count, then key)."""
    return _enumeration()[0]


def padded_all() -> tuple[np.ndarray, np.ndarray]:
    """:func:`pad` of every enumerated cell: ``(size, 15)`` bits and ``(size, 4)`` op indices
    (-1 for unused positions)."""
    _, bits, ops, _ = _enumeration()
    return bits, ops


def count_by_vertices() -> dict[int, int]:
    """Number of distinct cells per number of interior (operator) vertices."""
    counts: dict[int, int] = {}
    for c in enumerate_cells():
        counts[c.n_vertices - 2] = counts.get(c.n_vertices - 2, 0) + 1
    return counts


def raw_count() -> int:
    """Raw (matrix, interior ops) pairs of 2..6 vertices, before pruning and identity."""
    return sum((1 << (n * (n - 1) // 2)) * len(OPS) ** (n - 2) for n in range(2, MAX_VERTICES + 1))


# --- padding --------------------------------------------------------------------------------
def pad(cell: RecurrentCell) -> tuple[np.ndarray, np.ndarray]:
    """(15 upper-triangle bits, 4 interior op indices with -1 for unused) of the padded cell."""
    n = cell.n_vertices
    pos = list(range(n - 1)) + [MAX_VERTICES - 1]
    full = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    full[np.ix_(pos, pos)] = cell.as_numpy()
    rows, cols = _triu(MAX_VERTICES)
    ops = np.full(MAX_INTERIOR, -1, dtype=np.int64)
    ops[:n - 2] = cell.interior_ops()
    return full[rows, cols], ops


def unpad(bits: Sequence[int], ops: Sequence[int]) -> RecurrentCell:
    """The canonical cell of a padded 6-vertex form (unused positions are pruned away)."""
    rows, cols = _triu(MAX_VERTICES)
    full = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    full[rows, cols] = np.asarray(bits, dtype=np.int64)
    return canonical(full, [max(0, int(o)) for o in ops])


def cell_to_string(cell: RecurrentCell) -> str:
    """``"<row-major adjacency bits>;<label>,<label>,..."`` (NAS-Bench-101's raw fields)."""
    bits = "".join(str(x) for row in cell.matrix for x in row)
    return f"{bits};{','.join(cell.ops)}"


def string_to_cell(text: str) -> RecurrentCell:
    """The canonical cell of a string in :func:`cell_to_string`'s form."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"recurrent cell must be a string, got {type(text).__name__}")
    bits, sep, ops = text.strip().partition(";")
    if not sep:
        raise InvalidArchitecture(
            f"bad recurrent cell {text!r}: write '<n*n adjacency bits, row-major>;<label>,...', "
            "e.g. '0100;input,output' or '011001000;input,fc-relu,output'")
    names = [o.strip() for o in ops.split(",")]
    n = len(names)
    bits = bits.strip()
    if len(bits) != n * n or set(bits) - {"0", "1"}:
        raise InvalidArchitecture(f"bad recurrent cell {text!r}: {n} labels need {n * n} adjacency bits "
                                  f"(0/1), got {len(bits)} characters")
    return make_cell(np.array([int(c) for c in bits]).reshape(n, n), names)


# --- the space ------------------------------------------------------------------------------
class RecurrentSpace(FiniteSpace):
    """Every distinct LaNAS recurrent cell (6,954; module docstring), enumerated.

    ``sample`` is uniform over the distinct cells (not over raw matrices, where the large
    cells would dominate even more); ``mutate`` draws uniformly among ``neighbours``.
    """

    name = "recurrent"

    def __init__(self):
        self._cells = enumerate_cells()
        self._index = {c: i for i, c in enumerate(self._cells)}
        self._neighbours: dict[RecurrentCell, tuple[RecurrentCell, ...]] = {}

    # --- enumeration -------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._cells)

    def arch(self, index: int) -> RecurrentCell:
        i = int(index)
        if not 0 <= i < len(self._cells):
            raise InvalidArchitecture(f"recurrent index {i} out of range 0..{len(self._cells) - 1}")
        return self._cells[i]

    def _check(self, arch) -> RecurrentCell:
        if not isinstance(arch, RecurrentCell):
            raise InvalidArchitecture(f"recurrent architecture must be a RecurrentCell, got {arch!r}")
        if arch not in self._index:
            cell = canonical(arch.matrix, arch.ops[1:-1]) if arch.ops[:1] == ("input",) else None
            raise InvalidArchitecture(f"{cell_to_string(arch)} is not a canonical cell"
                                      + (f"; its canonical form is {cell_to_string(cell)}" if cell else ""))
        return arch

    def index(self, arch) -> int:
        return self._index[self._check(arch)]

    # --- random moves ------------------------------------------------------------
    def neighbours(self, arch) -> list[RecurrentCell]:
        cell = self._check(arch)
        # about 10 ms of canonicalisation per cell: evolution asks the same cells again
        cached = self._neighbours.get(cell)
        if cached is None:
            cached = self._neighbours[cell] = tuple(self._compute_neighbours(cell))
        return list(cached)

    def _compute_neighbours(self, cell: RecurrentCell) -> list[RecurrentCell]:
        bits, ops = pad(cell)
        out: dict[RecurrentCell, None] = {}

        def consider(make):
            try:
                c = make()
            except InvalidArchitecture:
                return
            if c != cell:
                out.setdefault(c, None)

        for e in range(N_TRIU):
            b = bits.copy()
            b[e] ^= 1
            consider(lambda b=b: unpad(b, ops))
        for i in range(cell.n_vertices - 2):
            o = ops.copy()
            o[i] = 1 - o[i]
            consider(lambda o=o: unpad(bits, o))
        if cell.n_vertices < MAX_VERTICES:
            # a new vertex between p and s, labelled n - 1 (after every vertex but the output,
            # so the matrix stays a DAG; canonical() relabels it), beside the edge p -> s or,
            # where there is one, in its place
            m = cell.as_numpy()
            n = cell.n_vertices
            for p in range(n - 1):
                for s in range(p + 1, n):
                    t = n if s == n - 1 else s
                    for op in range(len(OPS)):
                        big = np.zeros((n + 1, n + 1), dtype=np.int64)
                        big[:n - 1, :n - 1] = m[:n - 1, :n - 1]
                        big[:n - 1, n] = m[:n - 1, n - 1]
                        big[p, n - 1] = 1
                        big[n - 1, t] = 1
                        new_ops = list(cell.interior_ops()) + [op]
                        consider(lambda big=big, new_ops=new_ops: canonical(big, new_ops))
                        if big[p, t]:
                            cut = big.copy()
                            cut[p, t] = 0
                            consider(lambda cut=cut, new_ops=new_ops: canonical(cut, new_ops))
        return list(out)

    def mutate(self, arch, rng: np.random.Generator) -> RecurrentCell:
        options = self.neighbours(arch)
        return options[int(rng.integers(len(options)))]

    # --- representations ---------------------------------------------------------
    def identity(self, arch) -> str:
        return cell_to_string(self._check(arch))

    @property
    def encoding_size(self) -> int:
        return ENCODING_SIZE

    def encode(self, arch) -> np.ndarray:
        bits, ops = pad(self._check(arch))
        out = np.zeros(ENCODING_SIZE)
        out[:N_TRIU] = bits
        for i, o in enumerate(ops):
            if o >= 0:
                out[N_TRIU + i * len(OPS) + o] = 1.0
        return out

    @property
    def decisions(self) -> tuple[int, ...]:
        return (2,) * N_TRIU + (len(OPS),) * MAX_INTERIOR

    def tokens(self, arch) -> tuple[int, ...]:
        bits, ops = pad(self._check(arch))
        return tuple(int(b) for b in bits) + tuple(max(0, int(o)) for o in ops)

    def from_tokens(self, tokens) -> RecurrentCell:
        t = check_tokens(tokens, self.decisions)
        return unpad(t[:N_TRIU], t[N_TRIU:])

    def to_string(self, arch) -> str:
        return cell_to_string(self._check(arch))

    def _encode_all(self) -> np.ndarray:
        bits, ops = padded_all()
        out = np.zeros((len(bits), ENCODING_SIZE))
        out[:, :N_TRIU] = bits
        rows, pos = np.nonzero(ops >= 0)
        out[rows, N_TRIU + pos * len(OPS) + ops[rows, pos]] = 1.0
        return out

    def _tokens_all(self) -> np.ndarray:
        bits, ops = padded_all()
        return np.concatenate([bits, np.maximum(ops, 0)], axis=1)

    def parse(self, text: str) -> RecurrentCell:
        return string_to_cell(text)

    def params(self) -> dict:
        """What a table's ``meta.space`` records (the space has no parameters)."""
        return {"max_vertices": MAX_VERTICES, "ops": list(OPS), "combine": "mean", "identity": IDENTITY_RULE}

    def describe(self):
        d = super().describe()
        d.update(max_vertices=MAX_VERTICES, ops=list(OPS), combine="mean",
                 by_interior_vertices=count_by_vertices(), raw=raw_count())
        return d


def space_from_table(table) -> FiniteSpace:
    """The space whose enumeration is ``table``'s row order (``meta.space.kind ==
    "recurrent"``): the whole :class:`RecurrentSpace` when the table has every cell in order,
    else a :class:`~oracles.subset_space.SubsetSpace` of the rows (a random subset, as LaNAS's
    LSTM-10K)."""
    from .errors import CorruptData
    from .subset_space import SubsetSpace
    space = RecurrentSpace()
    archs = [str(a) for a in table.archs]
    try:
        indices = np.array([space.index(space.parse(a)) for a in archs], dtype=np.int64)
    except InvalidArchitecture as exc:
        raise CorruptData(f"table {table.name}: a row is not a recurrent cell ({exc})") from None
    if any(space.to_string(space.arch(int(i))) != a for i, a in zip(indices, archs)):
        raise CorruptData(f"table {table.name}: rows are not in canonical form; re-collect it")
    if len(indices) > 1 and not np.all(np.diff(indices) > 0):
        raise CorruptData(f"table {table.name}: rows are not in increasing space order")
    if len(indices) == space.size:
        return space
    return SubsetSpace(space, indices)
