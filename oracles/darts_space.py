"""The DARTS cell search space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019, §2.1 "Search space" and §3.1).

A network is a stack of cells of two kinds, *normal* and *reduction*; one architecture
fixes both (every normal cell is the same, every reduction cell is the same). A cell is a
DAG of 6 nodes: its two inputs (node 0, the output of the cell two back, and node 1, the
output of the previous cell), then 4 intermediate nodes 2..5. Intermediate node ``j``
(``j = 2..5``) sums two edges, each from a different earlier node ``i < j`` with one
operation on it; the cell's output concatenates nodes 2..5 (``concat = range(2, 6)``).
The operations are DARTS's eight (its ``PRIMITIVES`` order): ``none``, ``max_pool_3x3``,
``avg_pool_3x3``, ``skip_connect``, ``sep_conv_3x3``, ``sep_conv_5x5``, ``dil_conv_3x3``,
``dil_conv_5x5``. Networks: :mod:`supernets.darts`.

``none`` and the default operation set. DARTS keeps ``none`` (the zero operation) in its
continuous relaxation, but its derivation never picks it: a node keeps its two strongest
edges "excluding the zero operations" and each edge its strongest non-zero operation (§2.4),
so every cell DARTS prints has 7 possible operations per edge. The default space is that
discrete space: the 7 operations without ``none`` (also the space of CADAM on DARTS, Mills,
"Continuous Deterministic Reinforcement Learning in Neural Architecture Search", §4.2.2:
"We omit the 'none' operation during the search, reducing |O| to 7").
``DartsSpace(ops=DARTS_OPS)`` adds ``none`` as an eighth choice; a ``none`` edge contributes
zero whatever its input, so the identity ignores that input (see below).

Architectures are :class:`DartsArch` values: ``normal`` and ``reduce``, each 8 edges
``(operation, input)`` listed node by node (node 2's two edges, then node 3's, ...), the
layout of DARTS's ``Genotype`` (its ``genotypes.py``; a ``Genotype`` namedtuple with
``normal``/``reduce`` attributes is accepted wherever an architecture is). Inputs are node
numbers: 0 and 1 are the cell inputs, ``k >= 2`` is intermediate node ``k``.

Rules every architecture follows:

* each node has exactly two edges, from two *different* earlier nodes (DARTS's derivation
  keeps the two strongest of a node's incoming edges, which are distinct edges; node 2 has
  only nodes 0 and 1, so both always feed it);
* the output concatenates all four intermediate nodes (``normal_concat`` /
  ``reduce_concat`` other than ``range(2, 6)`` are refused).

Identity. The two edges of a node are summed, so their order does not matter (DARTS prints
them strongest first): the canonical form lists each node's edges by increasing input, and
``identity`` is the genotype string of the canonical form. With ``none`` in the space, a
``none`` edge's input is irrelevant, so the canonical form gives it the smallest input the
node's other edge does not use. Nothing else is merged: two cells that differ by a
renumbering of independent intermediate nodes concatenate their outputs in another channel
order, a different network (equal only up to a permutation of the next layer's weights);
and an operation applied to a node that computes zero is not reduced to zero (batch-norm
shifts make it non-zero in general).

Size (:attr:`DartsSpace.cardinality`, exact; :attr:`size` is ``None``: 10^18 architectures
are not enumerable, so every algorithm treats the space as infinite and LaNAS uses its MCMC
sampler). Node ``j`` chooses an unordered pair of distinct inputs among ``n = j`` earlier
nodes (``C(n, 2)``: 1, 3, 6, 10, product 180) and an operation per edge, so with ``K``
operations a cell has ``180 * K^8`` choices and an architecture ``(180 * K^8)^2``:

* 7 operations (default): ``(180 * 7^8)^2 = 1,076,746,950,455,072,400`` ~ 1.1e18, the
  "about 10^18" usually quoted for the DARTS space;
* with ``none`` (8 operations, ``none`` inputs merged): per node ``C(n,2) * 49 + 7n + 1``
  (both edges non-zero; one ``none``; both ``none``), ``(64 * 169 * 323 * 526)^2 =
  3,376,835,386,034,765,824`` ~ 3.4e18 distinct architectures (``(180 * 8^8)^2 =
  9,119,789,245,425,254,400`` ~ 9.1e18 genotypes before merging ``none`` inputs).

Representations:

* ``encode``: the architecture as DARTS's discrete edge weights: for each cell (normal,
  then reduce), each of the 14 possible edges (node 2 from 0, 1; node 3 from 0, 1, 2; ...;
  the row order of DARTS's ``alphas``) and each non-``none`` operation, 1.0 if the cell has
  that edge with that operation, else 0.0: ``2 * 14 * 7 = 196`` floats (``none`` edges are
  absent edges, all zeros). It is a function of the identity and tells identities apart.
* ``tokens``: per cell 11 decisions: node 2's two operations (inputs 0 then 1), then for
  nodes 3, 4, 5 the input pair (an index into ``itertools.combinations(range(j), 2)``: 3,
  6, 10 choices) and the operations of the lower and the higher input. Every in-range token
  sequence is an architecture (controllers, decoders and CADAM's mapping never produce an
  invalid one) and ``from_tokens`` returns the canonical form.
* ``to_string`` / ``parse``: the genotype string DARTS and its successors print,
  ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...],
  reduce_concat=range(2, 6))``; ``parse`` also reads ``normal_concat=[2, 3, 4, 5]`` (the
  form of DARTS's ``genotypes.py``, e.g. ``DARTS_V2``) and positional arguments, without
  evaluating any code. ``to_string`` keeps the edge order it was given, so a paper's string
  round-trips unchanged.
* neighbours: every architecture one change away: one edge's operation, or one edge's input
  (to an earlier node its node's other edge does not use). 120 per architecture with the 7
  default operations (per cell 2 * (6 + j - 2) summed over nodes j = 2..5). ``mutate`` draws
  one uniformly.

``sample`` draws each node's input pair and its two operations uniformly: uniform over the
identities of the default space (with ``none``, uniform over genotypes, so an architecture
whose ``none`` edges stand for several genotypes is drawn proportionally more often).
:func:`derive` is DARTS's derivation (§2.4) from continuous edge weights to an architecture.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InvalidArchitecture, UserError
from .space import SearchSpace, check_tokens

#: DARTS's eight operations, in its ``PRIMITIVES`` order (the columns of its ``alphas``).
DARTS_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: The default operations: DARTS's without ``none`` (what its derived cells and CADAM use).
OPS: tuple[str, ...] = DARTS_OPS[1:]
N_NODES = 4                     #: intermediate nodes per cell (DARTS §3.1)
N_INPUTS = 2                    #: cell inputs (the two previous cells' outputs)
CONCAT = tuple(range(N_INPUTS, N_INPUTS + N_NODES))   #: nodes concatenated into the output
#: the 14 possible edges as (node, input), in DARTS's alpha-row order
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(N_INPUTS, N_INPUTS + N_NODES)
                                           for i in range(j))
N_EDGES = len(EDGES)            # 14
EDGE_INDEX: dict[tuple[int, int], int] = {e: k for k, e in enumerate(EDGES)}
#: per intermediate node j = 2..5, its possible input pairs (i1 < i2), in token order
PAIRS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple(itertools.combinations(range(j), 2)) for j in range(N_INPUTS, N_INPUTS + N_NODES))
CELLS = ("normal", "reduce")
#: longest genotype string parse reads (a real one is about 400 characters)
MAX_STRING = 20_000

Edge = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DartsArch:
    """One DARTS architecture: ``normal`` and ``reduce`` cells, each 8 ``(operation,
    input)`` edges listed node by node (two per intermediate node), as in DARTS's
    ``Genotype`` (whose ``*_concat`` are always ``range(2, 6)`` here)."""

    normal: tuple[Edge, ...]
    reduce: tuple[Edge, ...]

    def cell(self, kind: str) -> tuple[Edge, ...]:
        return self.normal if kind == "normal" else self.reduce


def _cell_string(edges: Sequence[Edge]) -> str:
    return "[" + ", ".join(f"({op!r}, {i})" for op, i in edges) + "]"


def genotype_string(arch: DartsArch) -> str:
    """``arch`` as the ``Genotype(...)`` string DARTS prints (concat ``range(2, 6)``)."""
    return (f"Genotype(normal={_cell_string(arch.normal)}, normal_concat=range(2, 6), "
            f"reduce={_cell_string(arch.reduce)}, reduce_concat=range(2, 6))")


class DartsSpace(SearchSpace):
    """The DARTS space of normal + reduction cells (module docstring: rules, identity, size).

    Parameters
    ----------
    ops: the operations an edge may carry, a subset of :data:`DARTS_OPS` in any order (the
        order of ``encode``'s and ``tokens``'s operation indices). Default :data:`OPS`, the
        7 operations of DARTS's derived cells (no ``none``); :data:`DARTS_OPS` adds ``none``.
    """

    name = "darts"

    def __init__(self, ops: Sequence[str] = OPS):
        ops = tuple(str(o) for o in ops)
        unknown = [o for o in ops if o not in DARTS_OPS]
        if unknown or not ops or len(set(ops)) != len(ops):
            raise UserError(f"darts space: operations must be distinct names among {', '.join(DARTS_OPS)}; "
                            f"got {', '.join(ops) or 'none at all'}")
        self.ops = ops
        self.has_none = "none" in ops
        self._op_index = {o: k for k, o in enumerate(ops)}
        #: operations that encode (``none`` is an absent edge)
        self.encoded_ops = tuple(o for o in ops if o != "none")
        if not self.encoded_ops:
            raise UserError("darts space: needs at least one operation other than none")
        self._enc_index = {o: k for k, o in enumerate(self.encoded_ops)}
        self._decisions = self._make_decisions()

    # --- validation and canonical form ------------------------------------------------
    def _as_arch(self, arch: Any) -> DartsArch:
        """``arch`` (a :class:`DartsArch` or anything with ``normal``/``reduce``, such as
        DARTS's ``Genotype`` namedtuple) checked against the rules; raises
        :class:`InvalidArchitecture`."""
        if isinstance(arch, DartsArch):
            normal, reduce = arch.normal, arch.reduce
        else:
            try:
                normal, reduce = arch.normal, arch.reduce
            except AttributeError:
                raise InvalidArchitecture(f"not a DARTS architecture: {arch!r}") from None
            for kind in CELLS:
                concat = getattr(arch, f"{kind}_concat", CONCAT)
                try:
                    ok = tuple(concat) == CONCAT
                except TypeError:
                    ok = False
                if not ok:
                    raise InvalidArchitecture(f"darts {kind}_concat must be range(2, 6) (all four "
                                              f"intermediate nodes), got {concat!r}")
        cells = [self._check_cell(kind, edges) for kind, edges in zip(CELLS, (normal, reduce))]
        if isinstance(arch, DartsArch) and cells == [arch.normal, arch.reduce]:
            return arch
        return DartsArch(*cells)

    def check(self, arch) -> DartsArch:
        """``arch`` as a :class:`DartsArch` of this space, edge order kept (networks and
        supernets take their edges from it); raises :class:`InvalidArchitecture`."""
        return self._as_arch(arch)

    def _check_cell(self, kind: str, edges) -> tuple[Edge, ...]:
        try:
            edges = [tuple(e) for e in edges]
        except TypeError:
            raise InvalidArchitecture(f"darts {kind} cell must be a list of (operation, input) pairs, "
                                      f"got {edges!r}") from None
        if len(edges) != 2 * N_NODES:
            raise InvalidArchitecture(f"darts {kind} cell needs {2 * N_NODES} edges (two per node), "
                                      f"got {len(edges)}")
        out = []
        for k, e in enumerate(edges):
            node = N_INPUTS + k // 2
            if len(e) != 2:
                raise InvalidArchitecture(f"darts {kind} edge {k} must be (operation, input), got {e!r}")
            op, i = e
            if not isinstance(op, str) or op not in self._op_index:
                extra = " (this space excludes none; DartsSpace(ops=DARTS_OPS) has it)" if op == "none" else ""
                raise InvalidArchitecture(f"darts {kind} edge {k}: operation {op!r} is not one of "
                                          f"{', '.join(self.ops)}{extra}")
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or not 0 <= i < node:
                raise InvalidArchitecture(f"darts {kind} edge {k} (node {node}): input {i!r} must be an "
                                          f"earlier node, 0..{node - 1}")
            out.append((op, int(i)))
        for n in range(N_NODES):
            if out[2 * n][1] == out[2 * n + 1][1]:
                raise InvalidArchitecture(f"darts {kind} node {N_INPUTS + n}: both edges come from node "
                                          f"{out[2 * n][1]}; a node's two inputs must differ")
        return tuple(out)

    def _canonical_cell(self, edges: Sequence[Edge]) -> tuple[Edge, ...]:
        out: list[Edge] = []
        for n in range(N_NODES):
            a, b = edges[2 * n], edges[2 * n + 1]
            if self.has_none:
                # a none edge's input does not matter: take the smallest the other edge leaves
                if a[0] == "none":
                    a = ("none", 0 if b[1] != 0 else 1)
                if b[0] == "none":
                    b = ("none", 0 if a[1] != 0 else 1)
            out += sorted((a, b), key=lambda e: e[1])
        return tuple(out)

    def canonical(self, arch) -> DartsArch:
        """The canonical form of ``arch`` (each node's edges by increasing input; a ``none``
        edge's input the smallest its node's other edge leaves)."""
        a = self._as_arch(arch)
        return DartsArch(self._canonical_cell(a.normal), self._canonical_cell(a.reduce))

    # --- size ---------------------------------------------------------------------------
    @property
    def cardinality(self) -> int:
        """Exact number of distinct architectures (identities); see the module docstring.
        :attr:`size` stays ``None``: the space is not enumerated."""
        k = len(self.encoded_ops)
        per_cell = 1
        for j in range(N_INPUTS, N_INPUTS + N_NODES):
            pairs = math.comb(j, 2)
            per_cell *= pairs * k * k + (j * k + 1 if self.has_none else 0)
        return per_cell ** 2

    # --- random moves -------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> DartsArch:
        cells = []
        nops = len(self.ops)
        for _ in CELLS:
            edges: list[Edge] = []
            for pairs in PAIRS:
                lo, hi = pairs[int(rng.integers(len(pairs)))]
                oa, ob = rng.integers(nops, size=2)
                edges += [(self.ops[int(oa)], lo), (self.ops[int(ob)], hi)]
            cells.append(self._canonical_cell(edges))
        return DartsArch(*cells)

    def _moves(self, a: DartsArch):
        """Every single change of canonical ``a``, in a fixed order: ``(cell, edge, new edge)``."""
        for c, kind in enumerate(CELLS):
            edges = a.cell(kind)
            for k, (op, i) in enumerate(edges):
                other = edges[k ^ 1][1]
                for o in self.ops:
                    if o != op:
                        yield c, k, (o, i)
                for i2 in range(N_INPUTS + k // 2):
                    if i2 not in (i, other):
                        yield c, k, (op, i2)

    def _apply(self, a: DartsArch, move) -> DartsArch:
        c, k, e = move
        edges = list(a.cell(CELLS[c]))
        edges[k] = e
        cell = self._canonical_cell(edges)
        return DartsArch(cell, a.reduce) if c == 0 else DartsArch(a.normal, cell)

    def neighbours(self, arch) -> list[DartsArch]:
        a = self.canonical(arch)
        if not self.has_none:
            # without none every move gives another architecture, and no two the same one
            return [self._apply(a, m) for m in self._moves(a)]
        own = self.identity(a)
        out: dict[str, DartsArch] = {}
        for m in self._moves(a):
            b = self._apply(a, m)
            ident = self.identity(b)
            if ident != own and ident not in out:
                out[ident] = b
        return list(out.values())

    def mutate(self, arch, rng: np.random.Generator) -> DartsArch:
        if self.has_none:
            nbrs = self.neighbours(arch)
            return nbrs[int(rng.integers(len(nbrs)))]
        # neighbours()[i] without building the other 119
        a = self.canonical(arch)
        moves = list(self._moves(a))
        return self._apply(a, moves[int(rng.integers(len(moves)))])

    # --- representations ----------------------------------------------------------------
    def identity(self, arch) -> str:
        return genotype_string(self.canonical(arch))

    @property
    def encoding_size(self) -> int:
        return len(CELLS) * N_EDGES * len(self.encoded_ops)

    def edge_matrix(self, arch) -> np.ndarray:
        """``(2, 14, len(ops))`` 0/1 array: cell (normal, reduce), edge (:data:`EDGES` order),
        operation (:attr:`ops` order, ``none`` included when the space has it): which
        operation each chosen edge carries. The discrete counterpart of DARTS's alphas."""
        a = self._as_arch(arch)
        m = np.zeros((len(CELLS), N_EDGES, len(self.ops)))
        for c, kind in enumerate(CELLS):
            for k, (op, i) in enumerate(a.cell(kind)):
                m[c, EDGE_INDEX[(N_INPUTS + k // 2, i)], self._op_index[op]] = 1.0
        return m

    def encode(self, arch) -> np.ndarray:
        a = self.canonical(arch)
        v = np.zeros((len(CELLS), N_EDGES, len(self.encoded_ops)))
        for c, kind in enumerate(CELLS):
            for k, (op, i) in enumerate(a.cell(kind)):
                if op != "none":
                    v[c, EDGE_INDEX[(N_INPUTS + k // 2, i)], self._enc_index[op]] = 1.0
        return v.reshape(-1)

    def _make_decisions(self) -> tuple[int, ...]:
        nops = len(self.ops)
        per_cell = [nops, nops]
        for pairs in PAIRS[1:]:
            per_cell += [len(pairs), nops, nops]
        return tuple(per_cell) * len(CELLS)

    @property
    def decisions(self) -> tuple[int, ...]:
        return self._decisions

    def tokens(self, arch) -> tuple[int, ...]:
        a = self.canonical(arch)
        out: list[int] = []
        for kind in CELLS:
            edges = a.cell(kind)
            for n, pairs in enumerate(PAIRS):
                (oa, ia), (ob, ib) = edges[2 * n], edges[2 * n + 1]
                if n > 0:
                    out.append(pairs.index((ia, ib)))
                out += [self._op_index[oa], self._op_index[ob]]
        return tuple(out)

    def from_tokens(self, tokens: Sequence[int]) -> DartsArch:
        t = check_tokens(tokens, self._decisions)
        pos = 0
        cells = []
        for _ in CELLS:
            edges: list[Edge] = []
            for n, pairs in enumerate(PAIRS):
                if n == 0:
                    lo, hi = pairs[0]
                else:
                    lo, hi = pairs[t[pos]]
                    pos += 1
                edges += [(self.ops[t[pos]], lo), (self.ops[t[pos + 1]], hi)]
                pos += 2
            cells.append(self._canonical_cell(edges))
        return DartsArch(*cells)

    def to_string(self, arch) -> str:
        return genotype_string(self._as_arch(arch))

    def parse(self, text: str) -> DartsArch:
        return self._as_arch(parse_genotype(text))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"ops": list(self.ops), "nodes": N_NODES, "architectures": self.cardinality})
        return d


# --- the genotype string -------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    normal: Any
    reduce: Any
    normal_concat: tuple
    reduce_concat: tuple


_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _concat(node: ast.AST, text: str) -> tuple:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 3:
        try:
            args = [ast.literal_eval(a) for a in node.args]
        except ValueError:
            args = None
        if args is not None and all(type(a) is int for a in args) and (len(args) < 3 or args[2] != 0) \
                and all(abs(a) < 1000 for a in args):
            return tuple(range(*args))
    else:
        try:
            value = ast.literal_eval(node)
        except ValueError:
            value = None
        if isinstance(value, (list, tuple)):
            return tuple(value)
    raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}...: a concat must be range(2, 6) or "
                              "[2, 3, 4, 5]")


def parse_genotype(text: str) -> _Parsed:
    """The fields of a ``Genotype(normal=[...], normal_concat=..., reduce=[...],
    reduce_concat=...)`` string, read with :mod:`ast` (nothing is evaluated); raises
    :class:`InvalidArchitecture` naming what is wrong. Cells are not checked here."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"DARTS genotype must be a string, got {type(text).__name__}")
    hint = ("write Genotype(normal=[('sep_conv_3x3', 0), ...8 edges], normal_concat=range(2, 6), "
            "reduce=[...8 edges], reduce_concat=range(2, 6))")
    if not text.strip() or len(text) > MAX_STRING:
        raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: {hint}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: not an expression; {hint}") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: {hint}")
    if len(tree.args) > len(_FIELDS):
        raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: at most 4 fields; {hint}")
    fields: dict[str, ast.AST] = dict(zip(_FIELDS, tree.args))
    for kw in tree.keywords:
        if kw.arg not in _FIELDS or kw.arg in fields:
            raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: unknown or repeated field "
                                      f"{kw.arg!r}; {hint}")
        fields[kw.arg] = kw.value
    cells = {}
    for kind in CELLS:
        if kind not in fields:
            raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: no {kind} cell; {hint}")
        try:
            cells[kind] = ast.literal_eval(fields[kind])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise InvalidArchitecture(f"bad DARTS genotype {text[:80]!r}: the {kind} cell must be a list of "
                                      "(operation, input) pairs") from None
    concats = {k: _concat(fields[f"{k}_concat"], text) if f"{k}_concat" in fields else CONCAT for k in CELLS}
    return _Parsed(cells["normal"], cells["reduce"], concats["normal"], concats["reduce"])


# --- DARTS's derivation -----------------------------------------------------------------------
def derive(weights_normal, weights_reduce, ops: Sequence[str] = DARTS_OPS) -> DartsArch:
    """DARTS's discrete architecture from continuous edge weights (Liu et al., §2.4): for
    each intermediate node, the two incoming edges whose strongest non-``none`` operation is
    strongest, each with that operation (ties: the lower edge, the lower operation).

    ``weights_*``: ``(14, len(ops))`` arrays (softmax of alpha, or alpha itself: the ranking
    is the same), rows in :data:`EDGES` order, columns in ``ops`` order (default
    :data:`DARTS_OPS`, DARTS's columns). The result lists each node's edges strongest first,
    as DARTS prints them."""
    ops = tuple(ops)
    keep = [k for k, o in enumerate(ops) if o != "none"]
    if not keep:
        raise UserError("derive: needs an operation other than none")
    cells = []
    for w in (weights_normal, weights_reduce):
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (N_EDGES, len(ops)):
            raise UserError(f"derive: weights must have shape ({N_EDGES}, {len(ops)}), got {w.shape}")
        sub = w[:, keep]
        edges: list[Edge] = []
        for j in range(N_INPUTS, N_INPUTS + N_NODES):
            rows = [EDGE_INDEX[(j, i)] for i in range(j)]
            strength = [sub[r].max() for r in rows]
            best = sorted(range(j), key=lambda i: -strength[i])[:2]   # stable: ties to the lower input
            edges += [(ops[keep[int(np.argmax(sub[rows[i]]))]], i) for i in best]
        cells.append(tuple(edges))
    return DartsArch(*cells)
