"""NAS-Bench-101 cell space: official hash, ModelSpec pruning/validity, moves, encodings."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import NB101_SAMPLE, require
from nb101_helpers import load_sample
from oracles.errors import InvalidArchitecture
from oracles.nb101_space import (ENCODING_SIZE, MAX_EDGES, NUM_VERTICES, OPS, Cell, NB101Space,
                                 NB101TableSpace, enumerate_models, graph_hash, is_valid, labels_of,
                                 make_cell, module_hash, pad, prune, spec_hash, unpad, validate)


@pytest.fixture(scope="module")
def sample():
    return load_sample(require(NB101_SAMPLE))


@pytest.fixture(scope="module")
def sample_space(sample):
    cells = [make_cell(r["matrix"], r["ops"]) for r in sample]
    hashes = np.array(sorted(module_hash(c) for c in cells))
    by_hash = {module_hash(c): c for c in cells}
    padded = [pad(by_hash[h]) for h in hashes]
    return NB101TableSpace(hashes, np.stack([p[0] for p in padded]), np.stack([p[1] for p in padded]))


def test_official_hashes_of_all_shared_records(sample):
    assert len(sample) == 25
    for rec in sample:
        cell = make_cell(rec["matrix"], rec["ops"])
        assert prune(cell) is cell  # the release stores pruned cells
        assert module_hash(cell) == rec["hash"]
        assert spec_hash(cell) == rec["hash"]


def _permuted(cell: Cell, perm: list[int]):
    """Matrix and labels with interior vertex v renamed perm[v] (not necessarily upper triangular)."""
    n = cell.n_vertices
    m = cell.as_numpy()
    out = np.zeros_like(m)
    labels = labels_of(cell.ops)
    new_labels = [0] * n
    for i in range(n):
        new_labels[perm[i]] = labels[i]
        for j in range(n):
            out[perm[i], perm[j]] = m[i, j]
    return out, new_labels


def test_hash_is_invariant_to_vertex_numbering_and_sensitive_to_ops(sample):
    rng = np.random.default_rng(0)
    for rec in sample:
        cell = make_cell(rec["matrix"], rec["ops"])
        n = cell.n_vertices
        for _ in range(3):
            perm = [0] + list(1 + rng.permutation(n - 2)) + [n - 1]
            m, labels = _permuted(cell, perm)
            assert graph_hash(m, labels) == rec["hash"]
        # changing one interior op changes the model (and the hash)
        k = 1 + int(rng.integers(n - 2))
        ops = list(cell.ops)
        ops[k] = OPS[(OPS.index(ops[k]) + 1) % 3]
        other = make_cell(rec["matrix"], ops)
        if not _isomorphic_by_brute_force(cell, other):
            assert module_hash(other) != rec["hash"]


def _isomorphic_by_brute_force(a: Cell, b: Cell) -> bool:
    import itertools
    if a.n_vertices != b.n_vertices:
        return False
    n = a.n_vertices
    for p in itertools.permutations(range(1, n - 1)):
        perm = [0, *p, n - 1]
        m, labels = _permuted(a, perm)
        if (m == b.as_numpy()).all() and labels == labels_of(b.ops):
            return True
    return False


def test_pruning_matches_modelspec():
    ops7 = ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu",
            "conv1x1-bn-relu", "output"]
    m = np.zeros((7, 7), dtype=int)
    # input->1->2->output, plus vertex 3 fed by input but leading nowhere (dangling) and
    # vertex 4 leading to output but unreachable from input; vertex 5 isolated
    m[0, 1] = m[1, 2] = m[2, 6] = m[0, 3] = m[4, 6] = 1
    cell = make_cell(m, ops7)
    p = prune(cell)
    assert p.ops == ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "output")
    assert p.matrix == ((0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0))
    assert spec_hash(cell) == module_hash(p)
    # no path input -> output: invalid ("disconnected")
    m2 = np.zeros((7, 7), dtype=int)
    m2[0, 1] = m2[2, 6] = 1
    with pytest.raises(InvalidArchitecture, match="^NB101 cell is disconnected: no path from input to output$"):
        validate(make_cell(m2, ops7))
    assert prune(make_cell(m2, ops7)) is None


def test_edge_limit_is_checked_after_pruning():
    ops7 = ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"]
    full = np.triu(np.ones((7, 7), dtype=int), 1)  # 21 edges, every vertex used
    with pytest.raises(InvalidArchitecture, match="21 edges"):
        validate(make_cell(full, ops7))
    # 11 raw edges, but vertex 5 has no successor: pruning drops it and its 5 in-edges
    m = np.zeros((7, 7), dtype=int)
    m[0, 1] = m[1, 2] = m[2, 3] = m[3, 4] = m[4, 6] = m[0, 6] = 1
    m[0, 5] = m[1, 5] = m[2, 5] = m[3, 5] = m[4, 5] = 1
    cell = make_cell(m, ops7)
    assert cell.n_edges == 11
    assert is_valid(cell) and validate(cell).n_edges == 6 and validate(cell).n_vertices == 6
    # exactly 10 edges with every vertex on a path: invalid
    m3 = m.copy()
    m3[:, 5] = 0
    m3[0, 2] = m3[0, 3] = m3[0, 4] = m3[1, 3] = 1  # 10 edges among 6 used vertices
    with pytest.raises(InvalidArchitecture, match="10 edges"):
        validate(make_cell(m3, ops7))


def _chain(n):
    """input -> 1 -> ... -> output: every vertex on the path, n - 1 edges."""
    m = np.zeros((n, n), dtype=int)
    for i in range(n - 1):
        m[i, i + 1] = 1
    return make_cell(m, ["input"] + ["conv3x3-bn-relu"] * (n - 2) + ["output"])


def test_is_valid_says_what_validate_decides():
    full7 = make_cell(np.triu(np.ones((7, 7), dtype=int), 1), ["input"] + ["maxpool3x3"] * 5 + ["output"])
    disconnected = make_cell([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    cases = [(_chain(2), None), (_chain(7), None),
             (_chain(8), "^NB101 cell has 8 vertices after pruning \\(at most 7\\)$"),
             (full7, "^NB101 cell has 21 edges after pruning \\(at most 9\\)$"),
             (disconnected, "^NB101 cell is disconnected: no path from input to output$")]
    for cell, refusal in cases:
        assert is_valid(cell) is (refusal is None)
        if refusal is None:
            assert validate(cell) == cell
        else:
            with pytest.raises(InvalidArchitecture, match=refusal):
                validate(cell)


@pytest.mark.parametrize("matrix, ops, msg", [
    ([[0, 1], [1, 0]], ["input", "output"], "upper triangular"),
    ([[0, 1], [0, 0]], ["input", "conv3x3", "output"], "2x2 matrix but 3 ops"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "unknown NB101 operation"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["output", "maxpool3x3", "input"], "must start with"),
    ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
])
def test_malformed_cells_are_rejected(matrix, ops, msg):
    with pytest.raises(InvalidArchitecture, match=msg):
        make_cell(matrix, ops)


def test_sample_mutate_neighbours_give_only_valid_distinct_models():
    space = NB101Space()
    rng = np.random.default_rng(1)
    for _ in range(30):
        cell = space.sample(rng)
        assert is_valid(cell) and prune(cell) is cell
        assert cell.n_vertices <= NUM_VERTICES and cell.n_edges <= MAX_EDGES
        own = space.identity(cell)
        child = space.mutate(cell, rng)
        assert is_valid(child) and space.identity(child) != own
        nbrs = space.neighbours(cell)
        ids = [space.identity(c) for c in nbrs]
        assert len(ids) == len(set(ids)) and own not in ids and nbrs
        assert all(is_valid(c) for c in nbrs)


def test_neighbours_are_single_flips_or_op_changes():
    # input -> conv3x3 -> output: flipping 0->2 adds a skip; changing the op gives 2 more;
    # flipping an edge to a hidden position with each of the 3 ops, etc.
    space = NB101Space()
    cell = make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    nbrs = {space.to_string(c) for c in space.neighbours(cell)}
    assert "011001000;input,conv3x3-bn-relu,output" in nbrs
    assert "010001000;input,conv1x1-bn-relu,output" in nbrs
    assert "010001000;input,maxpool3x3,output" in nbrs
    # removing the only path is not a neighbour (invalid), and input->output alone is
    # reached by no single flip
    assert all(c.n_vertices >= 3 for c in space.neighbours(cell))


def test_tokens_and_encoding_are_fixed_length_and_round_trip(sample):
    space = NB101Space()
    rng = np.random.default_rng(2)
    cells = [make_cell(r["matrix"], r["ops"]) for r in sample] + [space.sample(rng) for _ in range(20)]
    for cell in cells:
        t = space.tokens(cell)
        assert len(t) == len(space.decisions) == 26
        assert all(0 <= x < d for x, d in zip(t, space.decisions))
        back = space.from_tokens(t)
        assert space.identity(back) == space.identity(cell)
        assert back == cell  # pruned forms coincide exactly
        e = space.encode(cell)
        assert e.shape == (ENCODING_SIZE,) and set(np.unique(e)) <= {0.0, 1.0}
        # one op one-hot per real interior vertex, none for padding
        assert e[21:].sum() == cell.n_vertices - 2
        assert e[:21].sum() == cell.n_edges
        assert space.parse(space.to_string(cell)) == cell


def test_output_stays_at_position_six_when_padded():
    cell = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    bits, ops = pad(cell)
    assert list(ops) == [2, -1, -1, -1, -1]
    rebuilt = prune(unpad(bits, ops))
    assert rebuilt == cell
    # edges 0->1, 0->6, 1->6 in the padded 7x7 upper triangle
    from oracles.nb101_space import TRIU
    assert {TRIU[k] for k in np.flatnonzero(bits)} == {(0, 1), (0, 6), (1, 6)}


def test_parse_errors_are_user_errors():
    space = NB101Space()
    with pytest.raises(InvalidArchitecture, match="adjacency bits"):
        space.parse("0110;input,conv3x3-bn-relu,output")
    with pytest.raises(InvalidArchitecture, match="write"):
        space.parse("not a cell")
    with pytest.raises(InvalidArchitecture, match="disconnected"):
        space.parse("000000000;input,conv3x3-bn-relu,output")


def test_table_space_index_arch_and_isomorphic_queries(sample, sample_space):
    space = sample_space
    assert space.size == 25
    for i in range(space.size):
        cell = space.arch(i)
        assert space.index(cell) == i
        assert space.identity(cell) == str(space._hashes[i])
    rng = np.random.default_rng(3)
    # a relabelled (isomorphic) raw cell with an extra dangling vertex finds the same row
    for rec in sample[:10]:
        cell = make_cell(rec["matrix"], rec["ops"])
        n = cell.n_vertices
        order = _topological_relabelling(cell, rng)
        m, labels = _permuted(cell, order)
        ops = ["input"] + [OPS[x] for x in labels[1:-1]] + ["output"]
        if n < 7:  # add an unreachable vertex before the output: pruning must remove it
            m = np.insert(np.insert(m, n - 1, 0, axis=0), n - 1, 0, axis=1)
            m[0, n - 1] = 1
            ops.insert(n - 1, "maxpool3x3")
        raw = make_cell(m, ops)
        assert space.index(raw) == space.row_of_hash(rec["hash"])
    assert space.parse(sample[0]["hash"]) == make_cell(sample[0]["matrix"], sample[0]["ops"])
    other = make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    with pytest.raises(InvalidArchitecture, match="not in this table"):
        space.index(other)


def _topological_relabelling(cell, rng):
    """A random vertex renaming that keeps the matrix upper triangular."""
    n = cell.n_vertices
    m = cell.as_numpy()
    indeg = m.sum(axis=0).tolist()
    order, ready = [], [0]
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for w in range(n):
            if m[v, w]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    ready.append(w)
    perm = [0] * n
    for new, old in enumerate(order):
        perm[old] = new
    return perm


def test_table_space_moves_stay_in_the_table(sample_space):
    space = sample_space
    rng = np.random.default_rng(4)
    for i in range(space.size):
        cell = space.arch(i)
        child = space.mutate(cell, rng)
        j = space.index(child)
        assert j != i
        for nb in space.neighbours(cell):
            assert space.index(nb) != i
    assert all(0 <= space.index(space.sample(rng)) < 25 for _ in range(20))


def test_table_space_vectorised_encodings_agree(sample_space):
    space = sample_space
    enc, tok = space.encode_all(), space.tokens_all()
    for i in range(space.size):
        np.testing.assert_array_equal(enc[i], space.encode(space.arch(i)))
        assert tuple(tok[i]) == space.tokens(space.arch(i))
    cached = np.array([space.index(space.arch(i)) for i in range(space.size)])
    np.testing.assert_array_equal(space.indices([space.arch(i) for i in range(space.size)]), cached)
    # the identities an oracle's checksum hashes: the official hashes, recomputed here
    assert list(space.identities_all()) == [spec_hash(space.arch(i)) for i in range(space.size)]


@pytest.fixture(scope="module")
def enumerated():
    return enumerate_models()


def test_enumeration_finds_the_423624_models(enumerated):
    bits, ops = enumerated
    assert len(bits) == 423_624  # NB101 paper §2.2
    space = NB101Space()
    rng = np.random.default_rng(5)
    pick = rng.choice(len(bits), 300, replace=False)
    cells = [prune(unpad(bits[i], ops[i])) for i in pick]
    assert all(c is not None and is_valid(c) and c == prune(c) for c in cells)
    assert len({space.identity(c) for c in cells}) == len(cells)
    # every vertex count 2..7 appears, as in the release
    n_vertices = (ops >= 0).sum(axis=1) + 2
    assert set(np.unique(n_vertices)) == set(range(2, 8))


def _hash_sample(bits, ops):
    """Rows of the enumeration where a wrong hash would most likely merge two models: every
    model of at most 5 vertices (2,532), and for 6 and 7 vertices runs of consecutive rows
    (the enumeration lists each graph's labellings together, so a hash that misplaced or
    dropped labels would collide inside a run) plus rows drawn at random (fixed seed)."""
    n_vertices = (ops >= 0).sum(axis=1) + 2
    rng = np.random.default_rng(101)
    rows = [np.flatnonzero(n_vertices <= 5)]
    for n in (6, 7):
        idx = np.flatnonzero(n_vertices == n)
        for start in rng.choice(len(idx) - 60, 12, replace=False):
            rows.append(idx[start:start + 60])
        rows.append(rng.choice(idx, 600, replace=False))
    return np.unique(np.concatenate(rows))


def test_hash_separates_exactly_the_non_isomorphic_models_of_a_sample(enumerated):
    """The fast part of the full check below (run in CI): on 5,000 rows of the enumeration
    (one per isomorphism class), hashes are all distinct, and a random renumbering of each
    cell's interior vertices keeps its hash, so on this sample the hash equals iff the
    cells are isomorphic. The 25 official records above pin the hash's exact values."""
    bits, ops = enumerated
    rows = _hash_sample(bits, ops)
    assert len(rows) > 5_000
    cells = [prune(unpad(bits[i], ops[i])) for i in rows]
    hashes = [module_hash(c) for c in cells]
    assert len(set(hashes)) == len(cells)
    assert all(len(h) == 32 and int(h, 16) >= 0 for h in hashes)
    rng = np.random.default_rng(7)
    for cell, h in zip(cells[::5], hashes[::5]):
        m, labels = _permuted(cell, _topological_relabelling(cell, rng))
        assert graph_hash(m, labels) == h
        ops_named = ["input"] + [OPS[x] for x in labels[1:-1]] + ["output"]
        assert spec_hash(make_cell(m, ops_named)) == h


@pytest.mark.slow
def test_enumerated_models_have_423624_distinct_official_hashes():
    bits, ops = enumerate_models()
    hashes = {module_hash(prune(unpad(b, o))) for b, o in zip(bits, ops)}
    assert len(hashes) == 423_624


def test_cell_cache_is_bounded_and_answers_stay_right(sample_space):
    small = NB101TableSpace(sample_space._hashes, sample_space._bits, sample_space._ops, max_cache=4)
    for _ in range(2):
        for i in range(small.size):
            assert small.index(small.arch(i)) == i
            assert len(small._cache) <= 4
    # a cell outside a partial table is refused by the table space's decoders too
    outside = make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    with pytest.raises(InvalidArchitecture, match="not in this table"):
        small.from_tokens(NB101Space().tokens(outside))
    with pytest.raises(InvalidArchitecture, match="not in this table"):
        small.parse(NB101Space().to_string(outside))
