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
construction, whatever their weights:

1. *pruning* (as NB101's official ``ModelSpec``): vertices on no input->output path are
   removed; a matrix whose output the input cannot reach is not a cell;
2. *exact simplification* (:func:`_reduce`), repeated with pruning until nothing changes:

   * *means of copies*: an ``identity`` vertex, or the output, whose inputs all carry one
     value (the same vertex, or ``identity`` copies of it) carries that value; a vertex of
     any kind whose inputs all carry one value reads that value's vertex alone
     (``mean(p, p) = p``);
   * *bypassing copies*: an ``identity`` vertex with a single input ``p`` only copies ``p``,
     so each vertex it feeds that does not read ``p`` already reads ``p`` instead (same
     multiset of input values; where a vertex reads both, the copy weighs ``p`` twice in
     that mean and stays). A copy that feeds nothing any more is pruned.

   The all-identity cells thus collapse to ``h_t = s_0``, the cell without operators;
3. *isomorphism*: the cell is relabelled to its canonical form, the lexicographically
   smallest (see :func:`_keys`) of its labellings in which the matrix is upper-triangular
   (input first, output last). The set of such labellings is the same for isomorphic cells,
   so the form is exact (no hash collisions, unlike a Weisfeiler-Lehman hash), and step 2
   runs on the canonically labelled cell, so that the result never depends on how the input
   was numbered (checked on random relabellings in the tests).

What stays distinct although equal as functions: cells where one value reaches a vertex
through several copy vertices that could be shared differently (two copies of ``p`` each
feeding one vertex vs one copy feeding both; rare, at least two ``identity`` copies of one
value), and anything equal only for particular weights.

The space is small enough to enumerate: **10,584 distinct cells** (1 with no operator
vertex, 2 with one, 16 with two, 281 with three, 10,284 with four;
:func:`count_by_vertices`), from 532,754 raw (matrix, ops) pairs of 2 to 6 vertices
(:func:`raw_count`; canonicalising every raw pair lands exactly on the enumerated cells,
checked in the tests for every pair of up to 5 vertices). LaNAS "randomly sampled 10K
architectures" from its version of the space, close to this size; a table of ours is the
whole space or, as LSTM-10K, a uniform random subset (docs/lstm-shakespeare.md).
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


def _copy_classes(matrix: np.ndarray, ops: list[int]) -> list[int]:
    """Per vertex (upper-triangular labelling), the vertex whose value it equals by
    construction: itself, or for an ``identity`` vertex or the output whose inputs all equal
    one vertex's value (a mean of copies), that vertex."""
    n = len(matrix)
    cls = list(range(n))
    for v in range(1, n):
        pc = {cls[int(p)] for p in np.flatnonzero(matrix[:, v])}
        if len(pc) == 1 and (v == n - 1 or ops[v - 1] == _IDENTITY):
            cls[v] = pc.pop()
    return cls


def _reduce(matrix: np.ndarray, ops: list[int]) -> tuple[np.ndarray, list[int]]:
    """Apply the exact simplifications of the module docstring until none applies; the
    matrix is upper-triangular and stays so."""
    matrix = matrix.copy()
    while True:
        n = len(matrix)
        changed = False
        cls = list(range(n))
        for v in range(1, n):
            preds = np.flatnonzero(matrix[:, v])
            pc = {cls[int(p)] for p in preds}
            if len(pc) == 1:
                c = pc.pop()
                if len(preds) > 1:       # a mean of copies of one value is that value
                    matrix[:, v] = 0
                    matrix[c, v] = 1
                    changed = True
                if v == n - 1 or ops[v - 1] == _IDENTITY:
                    cls[v] = c
        for v in range(1, n - 1):
            preds = np.flatnonzero(matrix[:, v])
            if ops[v - 1] != _IDENTITY or len(preds) != 1:
                continue
            p = int(preds[0])
            for s in np.flatnonzero(matrix[v]):
                if not matrix[p, s]:     # s may read p itself instead of its copy
                    matrix[v, s] = 0
                    matrix[p, s] = 1
                    changed = True
        if not changed:
            return matrix, ops
        matrix, ops = _prune(matrix, ops)


def _to_cell(matrix: np.ndarray, ops: Sequence[int]) -> RecurrentCell:
    return RecurrentCell(tuple(tuple(int(x) for x in row) for row in matrix),
                         ("input", *(OPS[int(o)] for o in ops), "output"))


def canonical(matrix, ops: Sequence) -> RecurrentCell:
    """The canonical cell of ``matrix`` (any DAG with the input first and the output last,
    at most :data:`MAX_VERTICES` vertices) and its interior ``ops`` (names or indices into
    :data:`OPS`): pruned, simplified and canonically labelled (module docstring).
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
    mats, opa, _ = _canonical_labelling(m[None], np.array([op_idx], dtype=np.int64).reshape(1, -1))
    m, op_idx = _reduce(mats[0], [int(o) for o in opa[0]])
    mats, opa, _ = _canonical_labelling(m[None], np.array([op_idx], dtype=np.int64).reshape(1, -1))
    return _to_cell(mats[0], opa[0])


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
    point of :func:`_reduce`, and equal to its own canonical labelling."""
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
    # fixed points of _reduce: no vertex reads several copies of one value only, and no
    # single-input identity vertex feeds a vertex that does not read its input already
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
def _enumeration() -> tuple[tuple[RecurrentCell, ...], np.ndarray, np.ndarray]:
    cells, bits, ops_all = [], [], []
    rows6, cols6 = _triu(MAX_VERTICES)
    for k in range(MAX_INTERIOR + 1):
        mats, ops = _reduced_canonical(k)
        cells.extend(_to_cell(m, o) for m, o in zip(mats, ops))
        n = k + 2
        pos = np.array(list(range(n - 1)) + [MAX_VERTICES - 1])
        full = np.zeros((len(mats), MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
        full[:, pos[:, None], pos[None, :]] = mats
        bits.append(full[:, rows6, cols6])
        padded = np.full((len(mats), MAX_INTERIOR), -1, dtype=np.int64)
        padded[:, :k] = ops
        ops_all.append(padded)
    return tuple(cells), np.concatenate(bits), np.concatenate(ops_all)


def enumerate_cells() -> tuple[RecurrentCell, ...]:
    """Every distinct cell, in the space's enumeration order (vertex count, then key)."""
    return _enumeration()[0]


def padded_all() -> tuple[np.ndarray, np.ndarray]:
    """:func:`pad` of every enumerated cell: ``(size, 15)`` bits and ``(size, 4)`` op indices
    (-1 for unused positions)."""
    _, bits, ops = _enumeration()
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
    """Every distinct LaNAS recurrent cell (10,584; module docstring), enumerated.

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
        # about 0.1 s of canonicalisation per cell: evolution asks the same cells again
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
        return {"max_vertices": MAX_VERTICES, "ops": list(OPS), "combine": "mean"}

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
