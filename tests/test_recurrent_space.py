"""The LaNAS recurrent-cell space (oracles/recurrent_space.py): counts, canonical identities,
and the SearchSpace interface."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from oracles.errors import InvalidArchitecture
from oracles.recurrent_space import (
    ENCODING_SIZE, MAX_VERTICES, RecurrentCell, RecurrentSpace, canonical, cell_to_string,
    count_by_vertices, enumerate_cells, make_cell, raw_count, string_to_cell,
)


@pytest.fixture(scope="module")
def space():
    return RecurrentSpace()


def _raw_cells(max_n):
    """Every raw (matrix, interior ops) pair with 2..max_n vertices."""
    for n in range(2, max_n + 1):
        rows, cols = np.triu_indices(n, 1)
        for code in range(1 << len(rows)):
            m = np.zeros((n, n), dtype=np.int64)
            m[rows, cols] = [(code >> (len(rows) - 1 - i)) & 1 for i in range(len(rows))]
            for ops in itertools.product(range(2), repeat=n - 2):
                yield m, ops


def test_counts():
    cells = enumerate_cells()
    assert len(cells) == 6954
    assert count_by_vertices() == {0: 1, 1: 2, 2: 14, 3: 205, 4: 6732}
    assert len(set(cells)) == len(cells)
    # 2^(n(n-1)/2) matrices times 2^(n-2) operator lists, n = 2..6
    assert raw_count() == 2 + 8 * 2 + 64 * 4 + 1024 * 8 + 32768 * 16 == 532754


def test_small_cells_by_hand():
    """The cells with at most one operator vertex, written out."""
    small = [cell_to_string(c) for c in enumerate_cells() if c.n_vertices <= 3]
    assert small == ["0100;input,output",                  # h_t = s_0
                     "010001000;input,fc-relu,output",     # h_t = relu(W s_0)
                     "011001000;input,fc-relu,output"]     # h_t = mean(s_0, relu(W s_0))


def _canonical_images(pairs):
    seen, invalid = set(), 0
    for m, ops in pairs:
        try:
            seen.add(canonical(m, ops))
        except InvalidArchitecture as exc:
            assert "not reachable" in str(exc)
            invalid += 1
    return seen, invalid


def test_raw_cells_land_on_the_enumeration():
    """Canonicalising raw pairs (the per-cell path) lands on the enumerated cells (the
    vectorised path): every pair of <= 4 vertices gives exactly the 17 small cells, and
    600 random pairs of 5 and 6 vertices give enumerated cells; those that are not cells
    fail for the one reason a DAG can: the output is unreachable."""
    seen, invalid = _canonical_images(_raw_cells(4))
    assert seen == {c for c in enumerate_cells() if c.n_vertices <= 4}
    assert len(seen) == 17 and invalid == 75      # of 274 pairs (1 of 2 with 2 vertices, 6 of 16 with 3)
    rng = np.random.default_rng(11)
    pairs = []
    for _ in range(600):
        n = int(rng.integers(5, 7))
        pairs.append((np.triu(rng.integers(0, 2, (n, n)), 1), [int(o) for o in rng.integers(0, 2, n - 2)]))
    seen, invalid = _canonical_images(pairs)
    assert seen <= set(enumerate_cells()) and len(seen) == 81 and invalid == 86


def test_every_raw_cell_of_up_to_5_vertices_lands_on_the_enumeration():
    """All 8,546 raw pairs of <= 5 vertices give exactly the 222 enumerated cells of <= 5
    vertices (about 3 s)."""
    seen, invalid = _canonical_images(_raw_cells(5))
    assert seen == {c for c in enumerate_cells() if c.n_vertices <= 5}
    assert len(seen) == 222 and invalid == 1539


def test_identity_is_invariant_under_relabelling():
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 200:
        n = int(rng.integers(3, MAX_VERTICES + 1))
        m = np.triu(rng.integers(0, 2, (n, n)), 1)
        ops = [int(o) for o in rng.integers(0, 2, n - 2)]
        try:
            cell = canonical(m, ops)
        except InvalidArchitecture:
            continue
        perm = np.array([0, *(1 + rng.permutation(n - 2)), n - 1])
        inv = np.argsort(perm)
        relabelled = m[np.ix_(inv, inv)]           # in general no longer upper-triangular
        assert canonical(relabelled, [ops[inv[i] - 1] for i in range(1, n - 1)]) == cell
        checked += 1


def test_exact_simplifications():
    s0 = make_cell([[0, 1], [0, 0]], ["input", "output"])
    # a chain of identities is the empty cell
    chain = make_cell([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                      ["input", "identity", "identity", "output"])
    assert chain == s0
    # mean(s0, copy of s0) = s0
    both = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "identity", "output"])
    assert both == s0
    # every all-identity cell is the empty cell
    full = np.triu(np.ones((6, 6), dtype=int), 1)
    assert canonical(full, ["identity"] * 4) == s0
    # relu(W mean(s0, copy s0)) = relu(W s0)
    fc_of_copies = make_cell([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                             ["input", "identity", "fc-relu", "output"])
    assert fc_of_copies == make_cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "fc-relu", "output"])
    # mean(s0, copy of s0, f) weighs s0 twice: the copy stays
    f = "fc-relu"
    weighted = make_cell([[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                         ["input", "identity", f, "output"])
    plain = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", f, "output"])
    assert weighted != plain and weighted.n_vertices == 4
    # a dangling vertex is pruned
    dangling = make_cell([[0, 1, 1], [0, 0, 0], [0, 0, 0]], ["input", f, "output"])
    assert dangling == s0
    # fc-relu vertices are never simplified away
    two_fc = make_cell([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, f, "output"])
    assert two_fc.n_vertices == 4


def test_means_through_identity_vertices_are_followed():
    """The mean-form rule: cells whose fc-relu vertices and output read the same weighted
    means of input and fc-relu values are one cell, whatever identity vertices carry the
    means; different weights stay different cells. The first three are pairs that trained
    to bit-identical numbers in the Shakespeare collection under the older copy-only rule."""
    f, i = "fc-relu", "identity"
    # the output reading only an identity vertex that averages input and v: the output averaging them
    via_copy = make_cell([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, i, "output"])
    direct = make_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", f, "output"])
    assert via_copy == direct
    # an fc-relu vertex whose only input is an identity averaging input and v2: it reads both itself
    fc_via_copy = make_cell([[0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1],
                             [0, 0, 0, 0, 0]], ["input", f, i, f, "output"])
    fc_direct = make_cell([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, f, "output"])
    assert fc_via_copy == fc_direct
    # a mean of means with equal weights: v3 = mean(s0, v1), output = mean(s0, v1, v3) = mean(s0, v1)
    mean_of_means = make_cell([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, i, "output"])
    assert mean_of_means == direct
    # unequal weights are another function: output = mean(s0, mean(s0, v1)) = 3/4 s0 + 1/4 v1
    quarter = make_cell([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, i, "output"])
    assert quarter != direct and quarter.n_vertices == 4
    # two copies of one mean, or one copy feeding both readers: the same cell
    shared = make_cell([[0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1],
                        [0, 0, 0, 0, 0]], ["input", f, i, f, "output"])
    split = make_cell([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1],
                       [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], ["input", f, i, i, f, "output"])
    assert shared == split
    # fc-relu vertices that read the same mean keep their own weights: never merged
    twins = make_cell([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", f, f, "output"])
    assert twins.ops.count(f) == 2


def test_invalid_cells_are_refused():
    with pytest.raises(InvalidArchitecture, match="not reachable"):
        make_cell([[0, 0], [0, 0]], ["input", "output"])
    with pytest.raises(InvalidArchitecture, match="cycle"):
        canonical([[0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], ["fc-relu", "fc-relu"])
    with pytest.raises(InvalidArchitecture):
        canonical(np.zeros((7, 7), dtype=int), ["fc-relu"] * 5)
    with pytest.raises(InvalidArchitecture, match="unknown operator"):
        canonical([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["conv"])
    for text in ("", "0100", "010;input,output", "0100;input,relu,output", "0200;input,output",
                 "0110;output,input"):
        with pytest.raises(InvalidArchitecture):
            string_to_cell(text)


def test_interface(space):
    rng = np.random.default_rng(0)
    assert space.size == 6954 and space.is_finite
    assert space.encoding_size == ENCODING_SIZE == 23
    assert space.decisions == (2,) * 19
    for _ in range(10):
        cell = space.sample(rng)
        assert isinstance(cell, RecurrentCell)
        assert space.arch(space.index(cell)) == cell
        assert space.parse(space.to_string(cell)) == cell
        assert space.identity(cell) == space.to_string(cell)
        assert space.from_tokens(space.tokens(cell)) == cell
        enc = space.encode(cell)
        assert enc.shape == (23,) and enc.dtype == np.float64
        assert enc[:15].sum() == cell.n_edges and enc[15:].sum() == cell.n_vertices - 2
        nbrs = space.neighbours(cell)
        assert nbrs and cell not in nbrs and len(set(nbrs)) == len(nbrs)
        assert nbrs == space.neighbours(cell)                  # a fixed order
        for other in nbrs:
            space.index(other)
        m = space.mutate(cell, np.random.default_rng(3))
        assert m in nbrs and m == space.mutate(cell, np.random.default_rng(3))
    # from_tokens canonicalises any token sequence and refuses an unreachable output
    assert space.from_tokens((0,) * 4 + (1,) + (0,) * 14) == space.arch(0)
    with pytest.raises(InvalidArchitecture):
        space.from_tokens((0,) * 19)
    with pytest.raises(InvalidArchitecture):
        space.from_tokens((2,) + (0,) * 18)
    # a non-canonical labelling is not an architecture of the space until canonicalised
    raw = RecurrentCell(((0, 1, 1), (0, 0, 1), (0, 0, 0)), ("input", "identity", "output"))
    with pytest.raises(InvalidArchitecture, match="canonical form is 0100;input,output"):
        space.index(raw)


def test_neighbours_of_the_smallest_cells(space):
    s0 = space.arch(0)
    assert [space.to_string(c) for c in space.neighbours(s0)] == \
        ["011001000;input,fc-relu,output", "010001000;input,fc-relu,output"]
    # every cell of up to 4 vertices reaches a 5-vertex cell and back (growing and shrinking)
    for cell in enumerate_cells()[:17]:
        nbrs = space.neighbours(cell)
        if cell.n_vertices < MAX_VERTICES:
            assert any(c.n_vertices == cell.n_vertices + 1 for c in nbrs)
        if cell.n_vertices > 2:
            assert any(c.n_vertices < cell.n_vertices for c in nbrs)


def test_sampling_is_uniform(space):
    rng = np.random.default_rng(1)
    draws = np.array([space.index(space.sample(rng)) for _ in range(20000)])
    small = np.isin(draws, np.arange(17))    # the 17 cells of <= 4 vertices: 17/6954 of the mass
    assert abs(small.mean() - 17 / 6954) < 4 * np.sqrt(17 / 6954 / 20000)
    assert 0.45 < (draws < space.size // 2).mean() < 0.55


def test_encode_all_matches(space):
    sample = np.random.default_rng(2).choice(space.size, 200, replace=False)
    enc = space.encode_all()
    toks = space.tokens_all()
    for i in sample:
        assert np.array_equal(enc[i], space.encode(space.arch(int(i))))
        assert tuple(toks[i]) == space.tokens(space.arch(int(i)))
