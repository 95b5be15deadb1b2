"""The NAS-Bench-101 cell space (Ying et al., ICML 2019, "NAS-Bench-101").

NAS-Bench-101 is the benchmark of LaNAS's headline result (Wang et al., "Sample-Efficient
Neural Architecture Search by Learning Action Space", §4 "Evaluating on NAS Datasets", its
reference [18]). What follows is the NB101 paper's published definition of the space, and
every rule that decides identity (pruning, the hash) is checked against official records
(25 of them, in the tests' shared data folder) and the published model count.

A cell is a DAG of at most 7 vertices given by an upper-triangular adjacency matrix and one
operation per vertex: vertex 0 is ``input``, the last vertex is ``output`` and each interior
vertex is one of :data:`OPS` (``conv3x3-bn-relu``, ``conv1x1-bn-relu``, ``maxpool3x3``).
The whole cell may have at most 9 edges. The benchmark holds every such cell up to graph
isomorphism: 423,624 unique models (NB101 paper; :func:`enumerate_models` finds exactly
these and their official hashes are all distinct).

Validity and pruning follow the official ``ModelSpec`` exactly (the official API's
documented behaviour): vertices that are not on some input->output path are
removed (with their edges) *before* the limits are checked, so a raw 7-vertex matrix with
more than 9 edges can still be a valid cell once its dangling vertices are pruned; a matrix
in which the output cannot be reached from the input is invalid ("disconnected").

Identity is the official 32-hex *module hash*: every vertex starts from the MD5 of
``str((out_degree, in_degree, label))`` (label -1 for input, -2 for output, otherwise the
op's position in :data:`OPS`); then, as many rounds as there are vertices, each vertex's
hash becomes the MD5 of its sorted in-neighbour hashes, ``|``, its sorted out-neighbour
hashes, ``|``, its own hash (a Weisfeiler-Lehman refinement); the fingerprint is the MD5 of
``str(sorted(vertex hashes))``. It does not depend on how the interior vertices are
numbered, so isomorphic cells share it, and it equals the ``hash`` of every record of the
official data (checked against 25 official records in the tests).

Representations (fixed length whatever the number of vertices, so pruned 5- or 6-vertex
cells fit): a cell is *padded* to 7 vertices by keeping the output at position 6 and
leaving the missing interior positions isolated.

* ``encode``: the 21 upper-triangle adjacency bits of the padded matrix (row-major),
  then a one-hot block of 3 per interior position (all zeros for padding): 36 floats.
* ``tokens``: the 21 bits (2 choices each), then the 5 interior ops (3 choices each);
  padding positions carry op 0 -- they are isolated, so :meth:`from_tokens` prunes them
  away again and ``from_tokens(tokens(c))`` is ``c``.

Mutation is the NB101 paper's regularized-evolution mutation (as in the official example
code; LaNAS compares against regularized evolution on NB101, Wang et al., §4):
on the padded 7-vertex form, flip each of the 21 possible edges with probability 1/7 and
re-draw each interior op with probability 1/5 (to one of the two other ops), so one edge
and one op change in expectation, repeating until the result is valid and a different
model. Positions a pruned cell does not use get random ops first, as unseen vertices. ``neighbours`` lists the
valid models one edge flip or one op change away (an edge to a vertex the cell does not
use brings that vertex in with the one edge that puts it on an input->output path, so even
the smallest cells have neighbours).

Architectures are :class:`Cell` values (immutable, hashable), always in pruned form when a
space returns them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import CorruptData, InvalidArchitecture
from .space import FiniteSpace, SearchSpace, check_tokens

#: The three interior operations, in the official ``available_ops`` order (their index is
#: the label used by the module hash).
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
NUM_VERTICES = 7          # NB101 paper: at most 7 vertices
MAX_EDGES = 9             # NB101 paper: at most 9 edges
N_INTERIOR = NUM_VERTICES - 2
#: the 21 upper-triangle positions (row, col) of a 7x7 matrix, row-major
TRIU: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(NUM_VERTICES)
                                          for j in range(i + 1, NUM_VERTICES))
N_TRIU = len(TRIU)
ENCODING_SIZE = N_TRIU + N_INTERIOR * len(OPS)   # 36
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
#: integer op codes used by tables and vectorised code: 0..2 = OPS, -1 = padding
PAD = -1
# Per-vertex edge-flip and op-change probabilities of the paper's mutation (mutation rate 1
# spread over the 7 vertices / 5 op positions, so one edge and one op change in expectation).
EDGE_FLIP_P = 1.0 / NUM_VERTICES
OP_CHANGE_P = 1.0 / N_INTERIOR


@dataclass(frozen=True, slots=True)
class Cell:
    """One NB101 cell: ``matrix`` (tuple of 0/1 rows, upper triangular) and ``ops``
    (``"input"``, interior ops from :data:`OPS`, ``"output"``)."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def n_vertices(self) -> int:
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def as_numpy(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.int8).reshape(self.n_vertices, self.n_vertices)


# --- construction, pruning, validity ---------------------------------------------------------
def make_cell(matrix, ops: Sequence[str]) -> Cell:
    """A raw (not yet pruned) :class:`Cell` from any 0/1 square matrix and op names.

    Checks the shape, that the matrix is 0/1 and upper triangular and that the ops are
    ``input``, known interior ops, ``output``; raises :class:`InvalidArchitecture` otherwise.
    """
    try:
        m = np.asarray(matrix)
    except Exception:
        raise InvalidArchitecture("NB101 matrix must be a square 0/1 array") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InvalidArchitecture(f"NB101 matrix must be square, got shape {m.shape}")
    n = m.shape[0]
    ops = tuple(str(o) for o in ops)
    if len(ops) != n:
        raise InvalidArchitecture(f"NB101 cell has a {n}x{n} matrix but {len(ops)} ops")
    if n < 2:
        raise InvalidArchitecture("NB101 cell needs at least the input and output vertices")
    if not np.isin(m, (0, 1)).all():
        raise InvalidArchitecture("NB101 matrix entries must be 0 or 1")
    if np.any(np.tril(m) != 0):
        raise InvalidArchitecture("NB101 matrix must be strictly upper triangular (a DAG in vertex order)")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise InvalidArchitecture(f"NB101 ops must start with {INPUT!r} and end with {OUTPUT!r}, got {list(ops)}")
    for op in ops[1:-1]:
        if op not in _OP_INDEX:
            raise InvalidArchitecture(f"unknown NB101 operation {op!r} (choose from {', '.join(OPS)})")
    return Cell(tuple(tuple(int(x) for x in row) for row in m.tolist()), ops)


def _rows_to_bits(matrix: tuple[tuple[int, ...], ...]) -> list[int]:
    """Row i -> bitmask of its successors."""
    return [sum(1 << j for j, x in enumerate(row) if x) for row in matrix]


def prune(cell: Cell) -> Cell | None:
    """The cell without vertices off every input->output path; ``None`` if disconnected.

    This is ModelSpec's pruning: keep the vertices reachable from the input *and* from
    which the output is reachable.
    """
    n = cell.n_vertices
    succ = _rows_to_bits(cell.matrix)
    fwd = 1  # reachable from input (vertex 0)
    for v in range(n):  # topological order = index order for an upper-triangular matrix
        if fwd >> v & 1:
            fwd |= succ[v]
    bwd = 1 << (n - 1)  # reaches output
    for v in range(n - 2, -1, -1):
        if succ[v] & bwd:
            bwd |= 1 << v
    keep_mask = fwd & bwd
    if not (keep_mask & 1 and keep_mask >> (n - 1) & 1):
        return None
    if keep_mask == (1 << n) - 1:
        return cell
    keep = [v for v in range(n) if keep_mask >> v & 1]
    matrix = tuple(tuple(cell.matrix[i][j] for j in keep) for i in keep)
    return Cell(matrix, tuple(cell.ops[v] for v in keep))


def validate(cell: Cell) -> Cell:
    """The pruned form of ``cell`` if it is a valid NB101 model; else :class:`InvalidArchitecture`."""
    p = prune(cell)
    if p is None:
        raise InvalidArchitecture("NB101 cell is disconnected: no path from input to output")
    if p.n_vertices > NUM_VERTICES:
        raise InvalidArchitecture(f"NB101 cell has {p.n_vertices} vertices after pruning (at most {NUM_VERTICES})")
    if p.n_edges > MAX_EDGES:
        raise InvalidArchitecture(f"NB101 cell has {p.n_edges} edges after pruning (at most {MAX_EDGES})")
    return p


def is_valid(cell: Cell) -> bool:
    p = prune(cell)
    return p is not None and p.n_vertices <= NUM_VERTICES and p.n_edges <= MAX_EDGES


# --- the official module hash ---------------------------------------------------------------
def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """Iterated neighbourhood MD5 hash of a labelled DAG (see the module docstring)."""
    n = len(labels)
    rows = [tuple(int(x) for x in r) for r in matrix]
    out_deg = [sum(r) for r in rows]
    in_deg = [sum(rows[i][j] for i in range(n)) for j in range(n)]
    preds = [[i for i in range(n) if rows[i][j]] for j in range(n)]
    succs = [[j for j in range(n) if rows[i][j]] for i in range(n)]
    hashes = [_md5(str((out_deg[v], in_deg[v], int(labels[v])))) for v in range(n)]
    for _ in range(n):
        hashes = [_md5("".join(sorted(hashes[w] for w in preds[v])) + "|"
                       + "".join(sorted(hashes[w] for w in succs[v])) + "|" + hashes[v])
                  for v in range(n)]
    return _md5(str(sorted(hashes)))


def labels_of(ops: Sequence[str]) -> list[int]:
    return [-1] + [_OP_INDEX[o] for o in ops[1:-1]] + [-2]


def module_hash(cell: Cell) -> str:
    """The official 32-hex hash of a *pruned* valid cell (use :func:`spec_hash` for raw cells)."""
    return graph_hash(cell.matrix, labels_of(cell.ops))


def spec_hash(cell: Cell) -> str:
    """Validate, prune and hash a raw cell."""
    return module_hash(validate(cell))


# --- the fixed-length padded form -----------------------------------------------------------
def pad(cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """``(bits[21], ops[5])`` of the padded 7-vertex form (output moved to position 6; ops
    of missing interior positions are :data:`PAD`)."""
    n = cell.n_vertices
    if n > NUM_VERTICES:
        raise InvalidArchitecture(f"NB101 cell has {n} vertices (at most {NUM_VERTICES})")
    pos = list(range(n - 1)) + [NUM_VERTICES - 1]
    full = np.zeros((NUM_VERTICES, NUM_VERTICES), dtype=np.uint8)
    full[np.ix_(pos, pos)] = np.asarray(cell.matrix, dtype=np.uint8).reshape(n, n)
    ops = np.full(N_INTERIOR, PAD, dtype=np.int8)
    ops[: n - 2] = [_OP_INDEX[o] for o in cell.ops[1:-1]]
    return full[_TRIU_ROWS, _TRIU_COLS], ops


_TRIU_ROWS = np.array([i for i, _ in TRIU])
_TRIU_COLS = np.array([j for _, j in TRIU])
_TRIU_POS = {pair: k for k, pair in enumerate(TRIU)}


def unpad(bits: Sequence[int], ops: Sequence[int]) -> Cell:
    """Raw 7-vertex cell from padded bits/ops (padding ops become op 0: they are isolated
    in padded forms, and pruning removes them)."""
    m = [[0] * NUM_VERTICES for _ in range(NUM_VERTICES)]
    for (i, j), b in zip(TRIU, bits):
        m[i][j] = int(b)
    names = (INPUT,) + tuple(OPS[int(o)] if int(o) >= 0 else OPS[0] for o in ops) + (OUTPUT,)
    return Cell(tuple(tuple(r) for r in m), names)


def encode_padded(bits: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Vectorised encoding: ``bits (N, 21)``, ``ops (N, 5)`` -> ``(N, 36)`` float64."""
    bits = np.asarray(bits).reshape(-1, N_TRIU)
    ops = np.asarray(ops).reshape(-1, N_INTERIOR)
    out = np.zeros((len(bits), ENCODING_SIZE))
    out[:, :N_TRIU] = bits
    rows, pos = np.nonzero(ops >= 0)
    out[rows, N_TRIU + pos * len(OPS) + ops[rows, pos]] = 1.0
    return out


def cell_to_string(cell: Cell) -> str:
    """``"<row-major adjacency bits>;<op>,<op>,..."``, the official file's raw fields."""
    bits = "".join(str(x) for row in cell.matrix for x in row)
    return f"{bits};{','.join(cell.ops)}"


def string_to_cell(text: str) -> Cell:
    if not isinstance(text, str):
        raise InvalidArchitecture(f"NB101 architecture must be a string, got {type(text).__name__}")
    bits, sep, ops = text.strip().partition(";")
    if not sep:
        raise InvalidArchitecture(
            f"bad NB101 string {text!r}: write '<n*n adjacency bits, row-major>;<op>,...,<op>', "
            "e.g. '011001000;input,conv3x3-bn-relu,output'")
    names = [o.strip() for o in ops.split(",")]
    n = len(names)
    bits = bits.strip()
    if len(bits) != n * n or set(bits) - {"0", "1"}:
        raise InvalidArchitecture(f"bad NB101 string {text!r}: {n} ops need {n * n} adjacency bits "
                                  f"(0/1), got {len(bits)} characters")
    return make_cell(np.array([int(c) for c in bits]).reshape(n, n), names)


# --- the spaces -----------------------------------------------------------------------------
class NB101Space(SearchSpace):
    """Every valid NAS-Bench-101 cell (not enumerated: see :class:`NB101TableSpace`).

    ``sample`` draws a random 7-vertex matrix (each upper-triangle edge with probability
    1/2) and uniformly random ops until the cell is valid, as the NB101 paper's random
    search baseline does; this is uniform over *raw* specs, not over the 423,624 models.
    ``mutate`` is the paper's mutation for regularized evolution (Ying et al., NAS-Bench-101,
    §5.1: every edge flipped with probability 1/7 and every op re-drawn with probability 1/5,
    until the cell is valid and a different model), so one mutation may change several edges
    or ops; ``neighbours`` lists the models one edge flip or one op change away.
    """

    name = "nb101"
    mutates_to_neighbours = False   # the paper's mutation, see the class docstring

    # random moves
    def sample(self, rng):
        while True:
            bits = rng.integers(0, 2, N_TRIU)
            ops = rng.integers(0, len(OPS), N_INTERIOR)
            p = prune(unpad(bits, ops))
            if p is not None and p.n_edges <= MAX_EDGES:
                return p

    def _mutations(self, arch: Cell, rng) -> Iterable[tuple[Cell, str]]:
        """Endless stream of ``(cell, hash)``: valid paper mutations of ``arch`` that are
        different models."""
        bits, ops = pad(arch)
        ops = ops.copy()
        missing = ops < 0
        own = module_hash(arch)
        while True:
            # the hidden (pruned-away) positions get random ops, as an unseen vertex would have
            o = ops.copy()
            o[missing] = rng.integers(0, len(OPS), int(missing.sum()))
            flip = rng.random(N_TRIU) < EDGE_FLIP_P
            b = np.where(flip, 1 - bits, bits)
            change = rng.random(N_INTERIOR) < OP_CHANGE_P
            shift = rng.integers(1, len(OPS), N_INTERIOR)  # one of the two other ops
            o = np.where(change, (o + shift) % len(OPS), o)
            p = prune(unpad(b, o))
            if p is None or p.n_edges > MAX_EDGES:
                continue
            h = module_hash(p)
            if h != own:
                yield p, h

    def mutate(self, arch, rng):
        return next(iter(self._mutations(validate(_as_cell(arch)), rng)))[0]

    def neighbours(self, arch):
        bits, ops = pad(arch)
        own = module_hash(arch)
        seen: dict[str, Cell] = {}
        hidden = [k for k in range(N_INTERIOR) if ops[k] < 0]

        def consider(b, o):
            p = prune(unpad(b, o))
            if p is not None and p.n_edges <= MAX_EDGES:
                h = module_hash(p)
                if h != own and h not in seen:
                    seen[h] = p

        for e, (i, j) in enumerate(TRIU):
            b = bits.copy()
            b[e] ^= 1
            # An edge that touches a hidden position gives it an op (every choice counts), and
            # brings the vertex in together with the edge that completes its path (from the
            # input or to the output): alone, the new edge would be pruned away again.
            touched = [k for k in hidden if k + 1 in (i, j)]
            if touched:
                b2 = b.copy()
                for k in touched:
                    v = k + 1
                    b2[_TRIU_POS[(v, NUM_VERTICES - 1)] if v == j else _TRIU_POS[(0, v)]] = 1
                for op in range(len(OPS)):
                    o = ops.copy()
                    o[touched] = op
                    consider(b, o)
                    consider(b2, o)
            else:
                consider(b, ops)
        for k in range(N_INTERIOR):
            if ops[k] < 0:
                continue
            for op in range(len(OPS)):
                if op != ops[k]:
                    o = ops.copy()
                    o[k] = op
                    consider(bits, o)
        return list(seen.values())

    # representations
    def identity(self, arch) -> str:
        return spec_hash(_as_cell(arch))

    @property
    def encoding_size(self) -> int:
        return ENCODING_SIZE

    def encode(self, arch) -> np.ndarray:
        bits, ops = pad(validate(_as_cell(arch)))
        return encode_padded(bits, ops)[0]

    @property
    def decisions(self) -> tuple[int, ...]:
        return (2,) * N_TRIU + (len(OPS),) * N_INTERIOR

    def tokens(self, arch) -> tuple[int, ...]:
        bits, ops = pad(validate(_as_cell(arch)))
        return tuple(int(b) for b in bits) + tuple(max(int(o), 0) for o in ops)

    def from_tokens(self, tokens):
        t = check_tokens(tokens, self.decisions)
        return validate(unpad(t[:N_TRIU], t[N_TRIU:]))

    def to_string(self, arch) -> str:
        return cell_to_string(_as_cell(arch))

    def parse(self, text: str):
        return validate(string_to_cell(text))

    def describe(self):
        d = super().describe()
        d.update({"ops": list(OPS), "max_vertices": NUM_VERTICES, "max_edges": MAX_EDGES})
        return d


def _as_cell(arch) -> Cell:
    if isinstance(arch, Cell):
        return arch
    if isinstance(arch, dict) and "matrix" in arch and "ops" in arch:
        return make_cell(arch["matrix"], arch["ops"])
    raise InvalidArchitecture(f"not an NB101 cell: {arch!r}")


class NB101TableSpace(NB101Space, FiniteSpace):
    """The NB101 cells of a table, enumerated in the table's row order.

    Parameters
    ----------
    hashes: the module hash of every row (the table's ``archs``).
    bits: ``(N, 21)`` uint8 padded upper-triangle adjacency of every row.
    ops: ``(N, 5)`` int8 padded interior ops (:data:`PAD` = no vertex).
    max_cache: how many cells to remember with their row, so that querying a cell the space
        handed out (or one seen before) skips re-hashing; about 1 KB each, so the default
        2**16 bounds the cache near 70 MB; it is emptied when full.

    For the full table (every valid model) mutation and neighbours are the paper's. For a
    partial table (a fixture, a subset) a mutation or neighbour that is not a row cannot be
    answered: ``mutate`` re-draws the paper's mutation until it lands on a row (up to
    ``mutation_tries`` times) and otherwise returns the row nearest in encoding (Hamming)
    distance; ``neighbours`` keeps only rows. ``fallbacks`` counts the nearest-row answers.
    """

    mutation_tries = 200

    def __init__(self, hashes: np.ndarray, bits: np.ndarray, ops: np.ndarray, max_cache: int = 1 << 16):
        self._hashes = np.asarray(hashes)
        self._bits = np.asarray(bits)
        self._ops = np.asarray(ops)
        n = len(self._hashes)
        if self._bits.shape != (n, N_TRIU) or self._ops.shape != (n, N_INTERIOR):
            raise CorruptData(
                f"NB101 table columns have shapes {self._bits.shape} / {self._ops.shape}, "
                f"expected ({n}, {N_TRIU}) / ({n}, {N_INTERIOR}); re-import the table")
        # Rows sorted by hash (as the importer writes them) are searched by bisection, with
        # no per-row Python objects; any other order falls back to a dict.
        self._sorted = bool(n < 2 or np.all(self._hashes[1:] > self._hashes[:-1]))
        self._hash_to_row = None if self._sorted else {str(h): i for i, h in enumerate(self._hashes)}
        self._cache: dict[Cell, int] = {}
        self.max_cache = max_cache
        self.fallbacks = 0

    @property
    def size(self) -> int:
        return len(self._hashes)

    # enumeration
    def row_of_hash(self, h: str) -> int | None:
        if self._sorted:
            i = int(np.searchsorted(self._hashes, h))
            return i if i < self.size and self._hashes[i] == h else None
        return self._hash_to_row.get(h)

    def arch(self, index: int) -> Cell:
        index = int(index)
        if not 0 <= index < self.size:
            raise IndexError(f"NB101 table row {index} out of range 0..{self.size - 1}")
        cell = prune(unpad(self._bits[index], self._ops[index]))
        self._remember(cell, index)
        return cell

    def _remember(self, cell: Cell, index: int) -> None:
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
        self._cache[cell] = index

    def index(self, arch) -> int:
        i = self._cache.get(arch) if isinstance(arch, Cell) else None
        if i is not None:
            return i
        cell = _as_cell(arch)
        h = spec_hash(cell)
        i = self.row_of_hash(h)
        if i is None:
            raise InvalidArchitecture(f"NB101 cell {cell_to_string(cell)} (hash {h}) is valid but not "
                                      f"in this table of {self.size} models")
        self._remember(cell, i)
        return i

    def indices(self, archs) -> np.ndarray:
        return np.fromiter((self.index(a) for a in archs), dtype=np.int64, count=len(archs))

    def identity(self, arch) -> str:
        i = self._cache.get(arch) if isinstance(arch, Cell) else None
        if i is not None:
            return str(self._hashes[i])
        cell = _as_cell(arch)
        h = spec_hash(cell)
        i = self.row_of_hash(h)
        if i is not None:  # the query that usually follows will not hash again
            self._remember(cell, i)
        return h

    def _identities_all(self) -> np.ndarray:
        # a row's identity is its official hash, which the table stores (no re-hashing)
        return np.asarray(self._hashes, dtype=str)

    def contains(self, arch) -> bool:
        try:
            self.index(arch)
            return True
        except InvalidArchitecture:
            return False

    # random moves restricted to rows
    def sample(self, rng):
        # uniform over the table's models (FiniteSpace's), not the raw-spec sampler
        return FiniteSpace.sample(self, rng)

    def mutate(self, arch, rng):
        own = self.index(arch)
        stream = iter(self._mutations(self.arch(own), rng))
        for _ in range(self.mutation_tries):
            _, h = next(stream)
            i = self.row_of_hash(h)
            if i is not None:
                return self.arch(i)
        self.fallbacks += 1
        enc = self.encode_all()
        dist = np.abs(enc - enc[own]).sum(axis=1)
        dist[own] = np.inf
        ties = np.flatnonzero(dist == dist.min())
        return self.arch(int(ties[rng.integers(len(ties))]))

    def neighbours(self, arch):
        out = []
        for cell in super().neighbours(arch):
            i = self.row_of_hash(module_hash(cell))
            if i is not None:
                out.append(self.arch(i))
        return out

    def from_tokens(self, tokens):
        # only rows are architectures of a table-backed space (every valid cell for the
        # full table); a cell outside a partial table raises InvalidArchitecture
        cell = super().from_tokens(tokens)
        self.index(cell)
        return cell

    def parse(self, text: str):
        t = text.strip() if isinstance(text, str) else text
        if isinstance(t, str) and len(t) == 32 and ";" not in t:
            i = self.row_of_hash(t.lower())
            if i is None:
                raise InvalidArchitecture(f"no NB101 model with hash {t} in this table")
            return self.arch(i)
        cell = super().parse(text)
        self.index(cell)
        return cell

    # vectorised representations
    def _encode_all(self) -> np.ndarray:
        return encode_padded(self._bits, self._ops)

    def _tokens_all(self) -> np.ndarray:
        return np.concatenate([self._bits.astype(np.int64),
                               np.maximum(self._ops, 0).astype(np.int64)], axis=1)

    def describe(self):
        d = super().describe()
        d["rows"] = "sorted by module hash" if self._sorted else "table order"
        return d


# --- enumerating the whole space --------------------------------------------------------------
def _full_dag_matrices(n: int) -> np.ndarray:
    """``(K, n, n)`` uint8: every upper-triangular n-vertex matrix with at most
    :data:`MAX_EDGES` edges in which every vertex lies on an input->output path."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    codes = np.arange(1 << len(pairs), dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(len(pairs))) & 1).astype(np.uint8)
    bits = bits[bits.sum(axis=1) <= MAX_EDGES]
    m = np.zeros((len(bits), n, n), dtype=np.uint8)
    for e, (i, j) in enumerate(pairs):
        m[:, i, j] = bits[:, e]
    # pruning removes nothing <=> every non-input vertex has a predecessor and every
    # non-output vertex a successor (then walking back/forward reaches input/output)
    has_in = m.sum(axis=1)[:, 1:] > 0
    has_out = m.sum(axis=2)[:, :-1] > 0
    return m[has_in.all(axis=1) & has_out.all(axis=1)]


def enumerate_models() -> tuple[np.ndarray, np.ndarray]:
    """Every valid NB101 model once, up to isomorphism, in padded form ``(bits, ops)``.

    For each vertex count: list the full DAGs (:func:`_full_dag_matrices`), group them into
    isomorphism classes by a canonical code (the smallest adjacency code over all
    permutations of the interior vertices), and for each class's representative keep one
    labelling per orbit of its automorphism group (the lexicographically smallest image).
    A correctness proof of the space: the NB101 paper reports 423,624 unique models.
    """
    import itertools

    all_bits, all_ops = [], []
    for n in range(2, NUM_VERTICES + 1):
        mats = _full_dag_matrices(n)
        if len(mats) == 0:
            continue
        perms = [(0,) + p + (n - 1,) for p in itertools.permutations(range(1, n - 1))]
        flat = mats.reshape(len(mats), n * n).astype(np.float64)
        # weights[p, i*n+j] = 2**(p(i)*n + p(j)): the code of the permuted matrix; the codes
        # stay below 2**49, exact in float64, so one BLAS product gives every permuted code
        weights = np.zeros((n * n, len(perms)))
        for k, p in enumerate(perms):
            for i in range(n):
                for j in range(n):
                    weights[i * n + j, k] = 2.0 ** (p[i] * n + p[j])
        codes = (flat @ weights).astype(np.int64)
        canon = codes.min(axis=1)
        _, first = np.unique(canon, return_index=True)
        combos = list(itertools.product(range(len(OPS)), repeat=n - 2))
        labels = np.array(combos, dtype=np.int8).reshape(len(combos), n - 2)
        for r in first:
            auts = [perms[k] for k in np.flatnonzero(codes[r] == codes[r, 0])]
            # orbit representative of a labelling = its smallest image under the automorphisms
            # (labels[:, q] is the labelling moved by the automorphism, read at each vertex)
            images = np.stack([labels[:, [a[v] - 1 for v in range(1, n - 1)]] for a in auts])
            place = len(OPS) ** np.arange(n - 3, -1, -1, dtype=np.int64)
            own = labels.astype(np.int64) @ place
            smallest = (images.astype(np.int64) @ place).min(axis=0)
            keep = labels[own == smallest]
            cell = Cell(tuple(tuple(int(x) for x in row) for row in mats[r]),
                        (INPUT,) + (OPS[0],) * (n - 2) + (OUTPUT,))
            b, _ = pad(cell)
            o = np.full((len(keep), N_INTERIOR), PAD, dtype=np.int8)
            o[:, : n - 2] = keep
            all_bits.append(np.repeat(b[None, :], len(keep), axis=0))
            all_ops.append(o)
    return np.concatenate(all_bits), np.concatenate(all_ops)
