"""The NAS-Bench-NLP cell space: the tabulated recurrent cells, one architecture per graph.

NAS-Bench-NLP (Klyuchnikov et al., "NAS-Bench-NLP: Neural Architecture Search Benchmark for
Natural Language Processing", IEEE Access 10, 2022) trains recurrent cells
given as *recipes*: a JSON object of nodes ``name: {"op": OP, "input": [names]}`` over the
inputs ``x`` (the word embedding) and ``h_prev_k`` (hidden state ``k`` of the previous step);
the node ``h_new_0`` is the cell's output and the next step's ``h_prev_0``, and a node
``h_new_k`` (k >= 1) is the next step's ``h_prev_k`` (the LSTM's memory cell is ``h_new_1``).
Operations (:data:`OPS`): ``linear`` (``W_1 a_1 + ... + W_n a_n + b``, one weight matrix per
input), ``blend`` (``z * a + (1 - z) * b`` for inputs ``[z, a, b]``), ``elementwise_prod``,
``elementwise_sum`` and the activations ``activation_tanh``, ``activation_sigm``,
``activation_leaky_relu``.

Identity: a **canonical form** of the recipe graph, exact under isomorphism.

* Node names mean nothing: two recipes that differ by renaming nodes are one cell.
* Inputs are unordered where the operation is symmetric (``linear``, ``elementwise_prod``,
  ``elementwise_sum``; the activations have one input) and ordered where it is not:
  ``blend``'s gate ``z`` comes first and ``blend(z, a, b)`` is not ``blend(z, b, a)``
  (it is ``blend(1 - z, b, a)``, a node the cell does not have).
* Hidden-state indices other than the output's are names too: the pairs
  ``(h_prev_k, h_new_k)`` for k >= 1 can be permuted together (an LSTM whose memory cell is
  state 2 is the LSTM). State 0 is the output and stays apart, as does ``x``.
* Nothing else is identified: two ``linear`` nodes of the same inputs have their own
  weights, two ``activation_tanh`` nodes of the same input are two nodes, and every node
  counts, so cells of different parameter counts never share a form.

The form is computed by colour refinement with exhaustive individualisation (the textbook
canonical-labelling search, McKay & Piperno, "Practical graph isomorphism, II", J. Symbolic
Computation 60, 2014, without its automorphism pruning: cells have at most 21 nodes): nodes
start coloured by (depth, operation, output role), colours are refined by the colours of
their inputs (as a multiset, or a sequence for ``blend``) and of their consumers until
stable, and while two nodes share a colour each of them is individualised in turn; the
smallest serialisation over the leaves of that search, and over the permutations of the
hidden states, is the form. Depth (longest path from an input) comes first in every colour,
so the canonical order is topological and a node's inputs always precede it. The identity is
the first 32 hex digits of the SHA-256 of that serialisation; the human form
(:func:`canonical_string`) is the serialisation written as ``name=op(args)`` joined by ``;``
(internal nodes ``n0, n1, ...`` in canonical order, outputs ``h_new_k``).

The space (:class:`NBNLPSpace`) is the set of tabulated cells after merging ids whose
recipes have one form (``oracles.importers.nbnlp`` builds it); an architecture is its
identity string.

Representations (fixed size whatever the cell; :data:`MAX_NODES` slots, inputs at most
:data:`MAX_ARITY`, the table's largest cell and widest node):

* ``tokens``: per node slot in canonical order, the operation (0 = empty slot, then
  :data:`OPS`), the output role (0 none, 1 + k for ``h_new_k``) and :data:`MAX_ARITY` input
  references (0 none, 1 ``x``, 2 + k ``h_prev_k``, then 2 + :data:`N_STATES` + j for slot
  j); symmetric inputs sorted, ``blend``'s in its order. ``from_tokens`` of a tabulated
  cell's tokens is that cell; any other sequence in the decisions is decoded, canonicalised
  (a tabulated cell written in another order is found) and otherwise answered by the
  tabulated cell nearest in token Hamming distance (ties: the first row): a token-level
  generator (REINFORCE, NAO's decoder, TPE's and BOHB's densities) then searches the table
  instead of drawing almost only cells the benchmark never trained.
* ``encode``: per slot a one-hot operation (7) and output role (``N_STATES``), then the
  lower-triangular adjacency of (inputs + slots) x slots: the multiplicity of a symmetric
  input, and for ``blend`` the sum of 1, 2, 4 over the positions an input holds (gate 1), so
  the vector determines the cell.

Moves. A cell one edit away from a tabulated cell is rarely tabulated, so ``neighbours`` are
the :data:`N_NEIGHBOURS` tabulated cells nearest in the **Weisfeiler-Lehman subtree
distance** (Shervashidze et al., "Weisfeiler-Lehman Graph Kernels", JMLR 12, 2011): each
cell is the bag of its subexpressions of depth at most :data:`WL_DEPTH` (a node's label,
then its label with its inputs' labels, symmetric inputs as a multiset), and the distance is
the squared Euclidean distance between the bags' count vectors, i.e. the WL kernel's
``k(a, a) + k(b, b) - 2 k(a, b)``: an integer that grows with the subexpressions the two cells
do not share. Ties at the cut are broken by row (identity) order. The importer computes the
lists once and stores them in the table. A nearest-neighbour relation is not symmetric: a cell
that is nobody's nearest (NAS-Bench-NLP's hand-written LSTM is in no cell's list of 10, its
next-best cell being far from it) could never be reached by a mutation. So the space moves on
the **symmetric** k-nearest-neighbour graph: a cell's ``neighbours`` are its own nearest
cells (nearest first), then every cell that lists it (in row order); ``mutate`` draws one of
them uniformly. Each cell has at least ``k`` neighbours and every cell can be reached.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import CorruptData, InvalidArchitecture
from .space import FiniteSpace, check_tokens

#: the operations of NAS-Bench-NLP recipes (token ``1 + i`` is ``OPS[i]``)
OPS: tuple[str, ...] = ("linear", "blend", "elementwise_prod", "elementwise_sum",
                        "activation_tanh", "activation_sigm", "activation_leaky_relu")
#: operations whose inputs are a multiset (``blend``'s are a sequence)
SYMMETRIC = frozenset({"linear", "elementwise_prod", "elementwise_sum"})
#: inputs an operation takes: (least, most); None = any number
ARITY: dict[str, tuple[int, int | None]] = {
    "linear": (1, None), "blend": (3, 3), "elementwise_prod": (2, None), "elementwise_sum": (2, None),
    "activation_tanh": (1, 1), "activation_sigm": (1, 1), "activation_leaky_relu": (1, 1)}
#: hidden states of the tabulated cells (h_prev_0 .. h_prev_2)
N_STATES = 3
#: the largest tabulated cell (nodes) and the widest node (inputs): the token layout's size
MAX_NODES = 21
MAX_ARITY = 3
#: tabulated cells listed as each cell's neighbours (mutation draws one of them). Our choice:
#: several children per parent, all of them close (on the full table the median distance of
#: the 10th neighbour is 16, of the 1st 12; a cell has 0.66 tabulated one-edit neighbours)
N_NEIGHBOURS = 10
#: depth of the subexpressions compared by the neighbour distance (our choice: an operation
#: with its inputs and theirs, about the reach of one or two edits)
WL_DEPTH = 2
#: hex digits of the identity (128 bits, like NAS-Bench-101's module hash)
ID_HEX = 32

_OP_TOKEN = {op: i + 1 for i, op in enumerate(OPS)}
_STATE = re.compile(r"h_(prev|new)_(\d+)\Z")
_NODE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([a-z_]+)\s*\(([^()]*)\)\s*\Z")


# --- recipes -----------------------------------------------------------------------------------
def _leaf_state(name: str) -> int | None:
    m = _STATE.match(name)
    return int(m.group(2)) if m and m.group(1) == "prev" else None


def validate_recipe(recipe: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``recipe`` (NAS-Bench-NLP's JSON object, or ``{name: (op, inputs)}``) checked and as
    ``{name: (op, inputs)}``: known operations with their number of inputs, inputs that are
    ``x``, ``h_prev_k`` or a node, no cycle, an output ``h_new_0``, no node named like an
    input. Raises :class:`InvalidArchitecture` saying what is wrong."""
    if not isinstance(recipe, Mapping) or not recipe:
        raise InvalidArchitecture("a NAS-Bench-NLP recipe is a non-empty object of nodes")
    nodes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, node in recipe.items():
        if isinstance(node, Mapping):
            op, inputs = node.get("op"), node.get("input")
        elif isinstance(node, (tuple, list)) and len(node) == 2:
            op, inputs = node
        else:
            raise InvalidArchitecture(f"node {name!r} is not {{'op': ..., 'input': [...]}}")
        if not isinstance(name, str) or name == "x" or _leaf_state(name) is not None:
            raise InvalidArchitecture(f"bad node name {name!r} (x and h_prev_k are the cell's inputs)")
        if op not in ARITY:
            raise InvalidArchitecture(f"node {name}: unknown operation {op!r} (one of {', '.join(OPS)})")
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(i, str) for i in inputs):
            raise InvalidArchitecture(f"node {name}: inputs must be a list of names")
        lo, hi = ARITY[op]
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            raise InvalidArchitecture(f"node {name}: {op} takes {lo}{'' if hi == lo else '+' if hi is None else f'-{hi}'} "
                                      f"input(s), got {len(inputs)}")
        nodes[name] = (op, tuple(inputs))
    if "h_new_0" not in nodes:
        raise InvalidArchitecture("the recipe has no output node h_new_0")
    for name, (_, inputs) in nodes.items():
        for i in inputs:
            if i != "x" and _leaf_state(i) is None and i not in nodes:
                raise InvalidArchitecture(f"node {name}: input {i!r} is neither x, h_prev_k nor a node")
    _depths(nodes)  # raises on a cycle
    return nodes


def _depths(nodes: Mapping[str, tuple[str, tuple[str, ...]]]) -> dict[str, int]:
    """Longest path from an input (inputs at depth 0); :class:`InvalidArchitecture` on a cycle."""
    depth: dict[str, int] = {}
    state: dict[str, int] = {}

    def visit(n: str) -> int:
        if n not in nodes:
            return 0
        if n in depth:
            return depth[n]
        if state.get(n) == 1:
            raise InvalidArchitecture(f"the recipe has a cycle through node {n}")
        state[n] = 1
        d = 1 + max(visit(i) for i in nodes[n][1])
        depth[n] = d
        return d

    for n in nodes:
        visit(n)
    return depth


# --- canonical form ------------------------------------------------------------------------------
def _refine(colors: list, ins: list, outs: list, sym: list) -> list[int]:
    """Colour refinement to a stable partition; colours are ranks of invariant keys, so the
    result does not depend on how the nodes were numbered."""
    colors = _ranks(colors)
    while True:
        keys = []
        for v in range(len(colors)):
            inc = [colors[u] for u in ins[v]]
            keys.append((colors[v], tuple(sorted(inc)) if sym[v] else tuple(inc),
                         tuple(sorted((colors[w], pos) for w, pos in outs[v]))))
        new = _ranks(keys)
        if len(set(new)) == len(set(colors)):
            return new
        colors = new


def _ranks(keys: Sequence) -> list[int]:
    order = {k: r for r, k in enumerate(sorted(set(keys)))}
    return [order[k] for k in keys]


#: leaves of the canonical-labelling search after which a cell is refused as too symmetric
#: (every tabulated cell needs at most a few; an arbitrary token sequence could need 21!)
MAX_LEAVES = 20_000


def _canon_search(labels: list, ins: list, outs: list, sym: list) -> tuple:
    """The smallest serialisation over every discrete refinement reached by individualising
    the nodes of the first non-singleton colour class, one at a time, recursively.

    Twins (same label, same inputs, same consumers at the same positions) are swapped by an
    automorphism that fixes everything else, so individualising one of them gives the same
    serialisations as individualising another: only one per twin group of the class is
    tried. More than :data:`MAX_LEAVES` leaves raise :class:`InvalidArchitecture`."""
    best = None
    leaves = 0
    twin = [(labels[v], tuple(sorted(ins[v])) if sym[v] else tuple(ins[v]), tuple(sorted(outs[v])))
            for v in range(len(labels))]

    def serial(colors: list[int]) -> tuple:
        pos = colors  # discrete: colour = position
        order = sorted(range(len(colors)), key=colors.__getitem__)
        out = []
        for v in order:
            refs = [pos[u] for u in ins[v]]
            out.append((labels[v], tuple(sorted(refs)) if sym[v] else tuple(refs)))
        return tuple(out)

    def search(colors: list[int]) -> None:
        nonlocal best, leaves
        colors = _refine(colors, ins, outs, sym)
        if len(set(colors)) == len(colors):
            leaves += 1
            if leaves > MAX_LEAVES:
                raise InvalidArchitecture(f"cell too symmetric to canonicalise in {MAX_LEAVES} steps")
            s = serial(colors)
            if best is None or s < best:
                best = s
            return
        counts = np.bincount(colors)
        target = int(np.flatnonzero(counts > 1)[0])
        tried = set()
        for v in [u for u, c in enumerate(colors) if c == target]:
            if twin[v] in tried:
                continue
            tried.add(twin[v])
            # v just before the rest of its class; every other class keeps its place
            search([2 * c + (0 if u == v else 1) for u, c in enumerate(colors)])

    search(list(labels))
    return best


def _serialise(nodes: Mapping[str, tuple[str, tuple[str, ...]]], perm: Mapping[int, int]) -> tuple:
    """The canonical serialisation of one naming of the hidden states (``perm``: state k ->
    its new index)."""
    depth = _depths(nodes)
    names: list[str] = ["x"] + [f"h_prev_{k}" for k in sorted({_leaf_state(i) for _, ins in nodes.values()
                                                                   for i in ins if _leaf_state(i) is not None})]
    names += list(nodes)
    at = {n: i for i, n in enumerate(names)}
    labels, ins, sym = [], [], []
    for n in names:
        if n in nodes:
            op, inputs = nodes[n]
            m = _STATE.match(n)
            role = perm[int(m.group(2))] if m and m.group(1) == "new" else -1
            labels.append((depth[n], 1, op, role))
            ins.append([at[i] for i in inputs])
            sym.append(op in SYMMETRIC)
        else:
            k = _leaf_state(n)
            labels.append((0, 0, "x" if k is None else "h_prev", -1 if k is None else perm[k]))
            ins.append([])
            sym.append(True)
    outs: list[list[tuple[int, int]]] = [[] for _ in names]
    for v, inputs in enumerate(ins):
        for p, u in enumerate(inputs):
            outs[u].append((v, -1 if sym[v] else p))
    return _canon_search(labels, ins, outs, sym)


def canonical_serialisation(recipe: Mapping[str, Any]) -> tuple:
    """The canonical form of a recipe: a tuple with one entry per input and node in canonical
    (topological) order, ``((depth, kind, op or input name, role or state), input positions)``;
    equal for two recipes exactly when they are the same cell (module docstring)."""
    nodes = validate_recipe(recipe)
    states = sorted({int(m.group(2)) for n in list(nodes) + [i for _, ins in nodes.values() for i in ins]
                     if (m := _STATE.match(n)) and int(m.group(2)) >= 1})
    best = None
    for image in itertools.permutations(range(1, len(states) + 1)):
        perm = {0: 0, **dict(zip(states, image))}
        s = _serialise(nodes, perm)
        if best is None or s < best:
            best = s
    return best


def serialisation_to_string(form: tuple) -> str:
    """The human form of a canonical serialisation: ``name=op(args)`` per node, joined by ``;``."""
    names = []
    n_internal = 0
    parts = []
    for (depth, kind, what, role), refs in form:
        if kind == 0:
            names.append("x" if what == "x" else f"h_prev_{role}")
            continue
        if role >= 0:
            name = f"h_new_{role}"
        else:
            name = f"n{n_internal}"
            n_internal += 1
        names.append(name)
        parts.append(f"{name}={what}({','.join(names[r] for r in refs)})")
    return ";".join(parts)


def identity_of_serialisation(form: tuple) -> str:
    text = json.dumps(form, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_HEX]


def canonical(recipe: Mapping[str, Any]) -> tuple[str, str]:
    """``(identity, canonical string)`` of a recipe (module docstring)."""
    form = canonical_serialisation(recipe)
    return identity_of_serialisation(form), serialisation_to_string(form)


def parse_recipe(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """A recipe from its string form (``name=op(a,b);...``, as :func:`canonical` writes it) or
    from NAS-Bench-NLP's JSON; :class:`InvalidArchitecture` if it is neither."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArchitecture("empty NAS-Bench-NLP cell")
    t = text.strip()
    if t.startswith("{"):
        try:
            return validate_recipe(json.loads(t))
        except (ValueError, RecursionError):
            raise InvalidArchitecture("not a NAS-Bench-NLP recipe (bad JSON)") from None
    nodes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for part in t.split(";"):
        m = _NODE.match(part)
        if not m:
            raise InvalidArchitecture(f"cannot read {part.strip()!r} as name=op(inputs)")
        name, op, args = m.groups()
        if name in nodes:
            raise InvalidArchitecture(f"node {name} is defined twice")
        nodes[name] = (op, tuple(a.strip() for a in args.split(",")) if args.strip() else ())
    return validate_recipe(nodes)


# --- tokens and encodings -----------------------------------------------------------------------
def decisions() -> tuple[int, ...]:
    """Choices per token position (module docstring, "tokens")."""
    refs = 2 + N_STATES + MAX_NODES
    return (1 + len(OPS), 1 + N_STATES) + (refs,) * MAX_ARITY


DECISIONS: tuple[int, ...] = decisions() * MAX_NODES
SLOT = 2 + MAX_ARITY


def tokens_of_form(form: tuple) -> np.ndarray:
    """Token vector (int16) of a canonical serialisation; :class:`InvalidArchitecture` if the
    cell is larger than the layout (more than :data:`MAX_NODES` nodes, wider nodes, more
    hidden states)."""
    out = np.zeros(MAX_NODES * SLOT, dtype=np.int16)
    ref: list[int] = []
    slot = 0
    for (depth, kind, what, role), refs in form:
        if kind == 0:
            if role >= N_STATES:
                raise InvalidArchitecture(f"cell uses hidden state {role}; the layout has {N_STATES}")
            ref.append(1 if what == "x" else 2 + role)
            continue
        if slot >= MAX_NODES or len(refs) > MAX_ARITY or role >= N_STATES:
            raise InvalidArchitecture(f"cell exceeds the token layout ({MAX_NODES} nodes, {MAX_ARITY} "
                                      f"inputs per node, {N_STATES} hidden states)")
        base = slot * SLOT
        out[base] = _OP_TOKEN[what]
        out[base + 1] = role + 1
        for p, r in enumerate(refs):
            out[base + 2 + p] = ref[r]
        ref.append(2 + N_STATES + slot)
        slot += 1
    return out


def recipe_of_tokens(tokens: Sequence[int]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The recipe a token vector writes (slots after the first empty one must be empty);
    :class:`InvalidArchitecture` if it writes none."""
    t = check_tokens(tokens, DECISIONS)
    nodes: dict[str, tuple[str, tuple[str, ...]]] = {}
    names: list[str] = []
    ended = False
    for slot in range(MAX_NODES):
        op_t, role_t, *refs = t[slot * SLOT:(slot + 1) * SLOT]
        if op_t == 0:
            ended = True
            if role_t or any(refs):
                raise InvalidArchitecture(f"empty slot {slot} has a role or inputs")
            continue
        if ended:
            raise InvalidArchitecture(f"slot {slot} follows an empty slot")
        name = f"h_new_{role_t - 1}" if role_t else f"n{slot}"
        if name in nodes:
            raise InvalidArchitecture(f"two nodes are {name}")
        inputs = []
        for r in refs:
            if r == 0:
                continue
            if r == 1:
                inputs.append("x")
            elif r < 2 + N_STATES:
                inputs.append(f"h_prev_{r - 2}")
            elif r - 2 - N_STATES < slot:
                inputs.append(names[r - 2 - N_STATES])
            else:
                raise InvalidArchitecture(f"slot {slot} reads slot {r - 2 - N_STATES}, which is not before it")
        names.append(name)
        nodes[name] = (OPS[op_t - 1], tuple(inputs))
    return validate_recipe(nodes)


ENCODING_SIZE = MAX_NODES * (len(OPS) + N_STATES) + sum(1 + N_STATES + j for j in range(MAX_NODES))


def encode_tokens(tokens: np.ndarray) -> np.ndarray:
    """``(n, ENCODING_SIZE)`` float64 encodings of ``(n, len(DECISIONS))`` token rows (module
    docstring, "encode")."""
    tok = np.asarray(tokens, dtype=np.int64).reshape(-1, len(DECISIONS))
    n = len(tok)
    ops = np.zeros((n, MAX_NODES, len(OPS)))
    roles = np.zeros((n, MAX_NODES, N_STATES))
    blocks = []
    rows = np.arange(n)
    for slot in range(MAX_NODES):
        op_t, role_t = tok[:, slot * SLOT], tok[:, slot * SLOT + 1]
        has = op_t > 0
        ops[rows[has], slot, op_t[has] - 1] = 1.0
        r = role_t > 0
        roles[rows[r], slot, role_t[r] - 1] = 1.0
        width = 1 + N_STATES + slot        # x, the states, the slots before this one
        adj = np.zeros((n, width))
        ordered = op_t == _OP_TOKEN["blend"]
        for p in range(MAX_ARITY):
            ref = tok[:, slot * SLOT + 2 + p]
            used = ref > 0
            w = np.where(ordered, float(1 << p), 1.0)
            np.add.at(adj, (rows[used], ref[used] - 1), w[used])
        blocks.append(adj)
    return np.concatenate([ops.reshape(n, -1), roles.reshape(n, -1)] + blocks, axis=1)


# --- the neighbour distance ---------------------------------------------------------------------
def wl_features(form: tuple, depth: int = WL_DEPTH) -> list[str]:
    """The bag of subexpressions of depth <= ``depth`` of a canonical serialisation (module
    docstring, "Moves"): one string per node and iteration."""
    labels = []
    for (_, kind, what, role), _ in form:
        labels.append(what if kind == 0 and what == "x" else
                      f"h_prev_{'out' if role == 0 else 'state'}" if kind == 0 else
                      f"{what}{'>out' if role == 0 else '>state' if role > 0 else ''}")
    feats = list(labels)
    for _ in range(depth):
        new = []
        for v, ((_, kind, what, _), refs) in enumerate(form):
            if kind == 0:
                new.append(labels[v])
                continue
            args = [labels[r] for r in refs]
            if what in SYMMETRIC:
                args.sort()
            new.append(f"{labels[v]}({','.join(args)})")
        labels = new
        feats.extend(labels[v] for v, (head, _) in enumerate(form) if head[1] == 1)
    return feats


def symmetric_neighbours(nearest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric k-nearest-neighbour graph of ``nearest`` (``(n, k)`` rows, nearest first)
    in compressed rows ``(ptr, cols)``: row ``i`` is ``cols[ptr[i]:ptr[i + 1]]``, its own
    ``k`` nearest first (in their order), then the rows that list ``i`` and are not among
    them, in row order."""
    nearest = np.asarray(nearest, dtype=np.int64)
    n, k = nearest.shape
    if n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = nearest.ravel()
    # reverse edges i -> j for every j listing i, unless j is already among i's own
    rev_rows, rev_cols = cols, rows
    new = ~np.isin(rev_rows * n + rev_cols, rows * n + cols)
    rev_rows, rev_cols = rev_rows[new], rev_cols[new]
    all_rows = np.concatenate([rows, rev_rows])
    all_cols = np.concatenate([cols, rev_cols])
    rank = np.concatenate([np.tile(np.arange(k, dtype=np.int64), n), k + rev_cols])
    order = np.lexsort((rank, all_rows))
    ptr = np.zeros(n + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(all_rows, minlength=n))
    return ptr, all_cols[order]


def nearest_cells(features: Sequence[Iterable[str]], k: int = N_NEIGHBOURS,
                  block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For every cell, the ``k`` other cells nearest in WL distance: ``(indices, distances)``,
    each ``(n, k)`` (int32, int64), nearest first, ties in row order. ``features``: each
    cell's :func:`wl_features`. Computed in blocks of ``block`` rows (a dense ``block x n``
    matrix at a time)."""
    from scipy import sparse
    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for fs in features:
        for f in fs:
            indices.append(vocab.setdefault(f, len(vocab)))
        indptr.append(len(indices))
    n = len(indptr) - 1
    if n <= k:
        raise CorruptData(f"{n} cells cannot have {k} neighbours each")
    phi = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, len(vocab)))
    phi.sum_duplicates()
    sq = np.asarray(phi.multiply(phi).sum(axis=1)).ravel()
    phi_t = phi.T.tocsr()
    out_i = np.empty((n, k), dtype=np.int32)
    out_d = np.empty((n, k), dtype=np.int64)
    cols = np.arange(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        gram = (phi[start:stop] @ phi_t).toarray()
        dist = np.rint(sq[start:stop, None] + sq[None, :] - 2.0 * gram).astype(np.int64)
        # nearest first, ties by row: sort by (distance, row) through one combined key (a
        # distance is at most twice the largest bag's squared norm, far from overflowing)
        key = dist * n + cols[None, :]
        key[np.arange(stop - start), np.arange(start, stop)] = np.iinfo(np.int64).max   # never itself
        part = np.argpartition(key, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        out_i[start:stop] = best
        out_d[start:stop] = np.take_along_axis(dist, best, axis=1)
    return out_i, out_d


# --- the space ---------------------------------------------------------------------------------
class NBNLPSpace(FiniteSpace):
    """The tabulated NAS-Bench-NLP cells, in the table's row order (sorted by identity).

    Parameters
    ----------
    identities: each row's identity (32 hex digits, sorted).
    recipes: each row's canonical string (:func:`canonical`).
    tokens: ``(n, len(DECISIONS))`` token rows (:func:`tokens_of_form`).
    neighbours: ``(n, k)`` rows of each row's nearest tabulated cells (:func:`nearest_cells`,
        computed at import).

    An architecture is its identity string; ``parse`` also takes a recipe (string form or
    NAS-Bench-NLP's JSON) or an identity, and refuses a valid cell that is not tabulated.
    """

    name = "nbnlp"

    def __init__(self, identities: np.ndarray, recipes: np.ndarray, tokens: np.ndarray, neighbours: np.ndarray):
        self._ids = np.asarray(identities).astype(str)
        self._recipes = np.asarray(recipes).astype(str)
        self._tok = np.asarray(tokens, dtype=np.int16)
        self._nbr = np.asarray(neighbours, dtype=np.int64)
        n = len(self._ids)
        if self._recipes.shape != (n,) or self._tok.shape != (n, len(DECISIONS)) or \
                self._nbr.ndim != 2 or len(self._nbr) != n or (n and (self._nbr.min() < 0 or self._nbr.max() >= n)):
            raise CorruptData(f"NAS-Bench-NLP table columns do not fit its {n} cells; re-import the table")
        if n > 1 and not np.all(self._ids[1:] > self._ids[:-1]):
            raise CorruptData("NAS-Bench-NLP table rows are not sorted by identity; re-import the table")
        self._by_tokens: dict[bytes, int] | None = None
        self._moves_ptr, self._moves = symmetric_neighbours(self._nbr)

    @property
    def size(self) -> int:
        return len(self._ids)

    # enumeration
    def row_of(self, ident: str) -> int | None:
        """Row of an identity, or None."""
        i = int(np.searchsorted(self._ids, ident))
        return i if i < self.size and self._ids[i] == ident else None

    def arch(self, index: int) -> str:
        index = int(index)
        if not 0 <= index < self.size:
            raise IndexError(f"NAS-Bench-NLP row {index} out of range 0..{self.size - 1}")
        return str(self._ids[index])

    def index(self, arch) -> int:
        i = self.row_of(arch) if isinstance(arch, str) else None
        if i is None:
            raise InvalidArchitecture(f"{arch!r} is not the identity of a tabulated NAS-Bench-NLP cell")
        return i

    def indices(self, archs) -> np.ndarray:
        return np.fromiter((self.index(a) for a in archs), dtype=np.int64, count=len(archs))

    def _identities_all(self) -> np.ndarray:
        return self._ids

    # moves
    def sample(self, rng):
        return FiniteSpace.sample(self, rng)

    def _moves_of(self, arch) -> np.ndarray:
        i = self.index(arch)
        return self._moves[self._moves_ptr[i]:self._moves_ptr[i + 1]]

    def neighbours(self, arch) -> list[str]:
        return [str(self._ids[j]) for j in self._moves_of(arch)]

    def mutate(self, arch, rng) -> str:
        row = self._moves_of(arch)
        return str(self._ids[row[int(rng.integers(len(row)))]])

    # representations
    def identity(self, arch) -> str:
        return str(self._ids[self.index(arch)])

    @property
    def encoding_size(self) -> int:
        return ENCODING_SIZE

    def encode(self, arch) -> np.ndarray:
        return encode_tokens(self._tok[self.index(arch)][None, :])[0]

    def _encode_all(self) -> np.ndarray:
        return encode_tokens(self._tok)

    @property
    def decisions(self) -> tuple[int, ...]:
        return DECISIONS

    def tokens(self, arch) -> tuple[int, ...]:
        return tuple(int(t) for t in self._tok[self.index(arch)])

    def _tokens_all(self) -> np.ndarray:
        return self._tok.astype(np.int64)

    def from_tokens(self, tokens) -> str:
        t = np.asarray(check_tokens(tokens, DECISIONS), dtype=np.int16)
        if self._by_tokens is None:
            self._by_tokens = {row.tobytes(): i for i, row in enumerate(self._tok)}
        i = self._by_tokens.get(t.tobytes())
        if i is None:
            try:
                i = self.row_of(canonical(recipe_of_tokens(t))[0])
            except InvalidArchitecture:
                i = None
        if i is None:
            # the nearest tabulated cell in Hamming distance; argmin takes the first row on ties
            i = int(np.argmin((self._tok != t[None, :]).sum(axis=1)))
        return str(self._ids[i])

    def to_string(self, arch) -> str:
        return str(self._recipes[self.index(arch)])

    def parse(self, text: str) -> str:
        if not isinstance(text, str):
            raise InvalidArchitecture(f"not a NAS-Bench-NLP cell: {text!r}")
        t = text.strip()
        if re.fullmatch(r"[0-9a-f]{%d}" % ID_HEX, t):
            return self.arch(self.index(t))
        ident, form = canonical(parse_recipe(t))
        i = self.row_of(ident)
        if i is None:
            raise InvalidArchitecture(f"the cell {form} is valid but not tabulated in NAS-Bench-NLP")
        return str(self._ids[i])

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"ops": list(OPS), "max_nodes": MAX_NODES, "hidden_states": N_STATES,
                  "neighbours": int(self._nbr.shape[1]),
                  "moves": "nearest tabulated cells by Weisfeiler-Lehman subtree distance"})
        return d


def space_from_table(table) -> NBNLPSpace:
    """The space of an imported ``nbnlp`` table (its ``recipe``, ``tokens`` and ``neighbours``
    columns)."""
    missing = [c for c in ("recipe", "tokens", "neighbours") if c not in table.columns]
    if missing:
        raise CorruptData(f"NAS-Bench-NLP table {table.name!r} lacks column(s) {', '.join(missing)}; re-import it")
    return NBNLPSpace(table.archs, table.columns["recipe"], table.columns["tokens"], table.columns["neighbours"])
