"""oracles.nb201_canonical: the classes of NB201 cells that compute the same expression."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from conftest import NB201_DIR, require
from oracles import nb201_canonical as canon
from oracles.nb201_space import EDGES, OPS, NB201Space, arch_to_string, string_to_arch

NONE, SKIP, C1, C3, POOL = range(5)
ALL = np.array(list(itertools.product(range(5), repeat=6)))  # product-code order


def test_class_counts():
    # NB201's published count (Dong & Yang's to_unique_str with consider_zero=True) and without
    # the zero rule; the exact algebra merges more
    assert canon.num_classes("nb201") == 6466
    assert canon.num_classes("nb201-nozero") == 12751
    assert canon.num_classes("algebraic") == 4930
    for rule, n in canon.EXPECTED_CLASSES.items():
        ids = canon.class_ids(rule)
        assert ids.shape == (15625,) and set(np.unique(ids)) == set(range(n))
        assert canon.class_sizes(rule).sum() == 15625


def test_expression_by_hand():
    a = string_to_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    # node1 = (0)@c3; node2 = sorted(['(0)@c3', '((0)@c3)@pool']); node3 = sorted(['0', '((0)@c3)@c3', node2])
    assert canon.expression(a) == ("((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3"
                                   "+((0)@nor_conv_3x3)@nor_conv_3x3+0")
    assert canon.expression((NONE,) * 6) == "#+#+#"
    # node1 = (0)@none, node2 = ((0)@none)@none+(0)@none; node3's three terms sorted as strings
    assert canon.expression((NONE,) * 6, "nb201-nozero") == \
        "(((0)@none)@none+(0)@none)@none+((0)@none)@none+(0)@none"
    with pytest.raises(ValueError, match="unknown canonicalisation rule"):
        canon.expression(a, "isomorphism")
    with pytest.raises(ValueError, match="6 operation indices"):
        canon.expression((0, 1, 2))


def _free_edges_merge(ids, condition, free):
    """Within the cells meeting ``condition``, the class does not depend on the ``free`` edges."""
    fixed = [e for e in range(6) if e not in free]
    sel = condition(ALL)
    keys = {}
    for arch, c in zip(ALL[sel], ids[sel]):
        k = tuple(arch[fixed])
        assert keys.setdefault(k, c) == c
    return len(keys)


def test_edges_leaving_a_dead_node_do_not_matter():
    ids = canon.class_ids()
    # node 1 is zero when edge 1<-0 is none: edges 2<-1 and 3<-1 leave a dead node
    _free_edges_merge(ids, lambda a: a[:, 0] == NONE, free=(2, 4))
    # edge 3<-2 none: the output never reads node 2, so its incoming edges 2<-0, 2<-1 are free
    _free_edges_merge(ids, lambda a: a[:, 5] == NONE, free=(1, 2))
    # and a known pair: node 1 = skip(x) feeding a 3x3 conv is the 3x3 conv fed from x
    assert canon.class_of((SKIP, NONE, C3, NONE, NONE, SKIP)) == canon.class_of((NONE, C3, NONE, NONE, NONE, SKIP))
    # operations differ: never merged
    assert canon.class_of((C3,) * 6) != canon.class_of((C1,) * 6)
    # a sum is unordered: swapping the operations of 3<-0 and 3<-1 over a skip node 1
    assert canon.class_of((SKIP, C1, C1, C3, POOL, C1)) == canon.class_of((SKIP, C1, C1, POOL, C3, C1))


def test_all_none_class():
    ids = canon.class_ids()
    a = ALL
    # output zero: 3<-0 and 3<-2 none, and 3<-1 none or node 1 dead; 125 + 4 x 25 = 225 cells
    zero = (a[:, 3] == NONE) & (a[:, 5] == NONE) & ((a[:, 4] == NONE) | (a[:, 0] == NONE))
    assert zero.sum() == 225
    assert np.array_equal(ids == 0, zero)
    assert tuple(canon.representative_archs()[0]) == (NONE,) * 6
    assert canon.class_sizes()[0] == 225
    # node 2 with two zero terms is '#+#', not zero: an operation on it is its own term (the
    # NB201 code's rule); the exact algebra puts those cells with the all-none cell
    dead_conv = (NONE, NONE, NONE, NONE, NONE, C3)
    assert canon.class_of(dead_conv) != 0 and canon.class_of(dead_conv, "algebraic") == 0


def test_nb201_classes_refine_the_algebraic_ones():
    fine, coarse = canon.class_ids("nb201"), canon.class_ids("algebraic")
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    assert len(pairs) == canon.num_classes("nb201")  # each nb201 class in exactly one algebraic class


def test_representatives_are_lowest_tuples():
    for rule in canon.RULES:
        ids, reps = canon.class_ids(rule), canon.representatives(rule)
        assert np.all(np.diff(reps) > 0)  # classes numbered by representative
        assert np.array_equal(ids[reps], np.arange(len(reps)))
        # the first cell (in product = tuple order) of every class is its representative
        _, first = np.unique(ids, return_index=True)
        assert np.array_equal(first, reps)
    # the representative puts none on edges that do not matter
    assert canon.representative_of((NONE, C3, POOL, C1, C3, NONE)) == (NONE,) * 3 + (C1, NONE, NONE)


# --- parameters ------------------------------------------------------------------------------
def _params_and_sharing(arch, c=16):
    """Parameters of the operations that reach the output (nb201 rule's zero: only node 1 can
    be zero), and whether some such convolution reaches it along more than one path."""
    node1_zero = arch[0] == NONE
    nonzero = [arch[e] != NONE and not (f == 1 and node1_zero) for e, (t, f) in enumerate(EDGES)]
    paths = {3: 1, 2: 0, 1: 0}
    for j in (2, 1):
        paths[j] = sum(paths[t] for e, (t, f) in enumerate(EDGES) if f == j and nonzero[e])
    per_op = {C1: c * c + 2 * c, C3: 9 * c * c + 2 * c}  # conv weights + batch-norm scale and shift
    live = [e for e, (t, f) in enumerate(EDGES) if nonzero[e] and paths[t] > 0 and arch[e] in per_op]
    return sum(per_op[arch[e]] for e in live), any(paths[EDGES[e][0]] > 1 for e in live)


def test_cells_of_different_parameter_counts_merge_only_through_shared_weights():
    ids = canon.class_ids()
    params, shared = {}, {}
    for arch, c in zip(ALL.tolist(), ids):
        p, s = _params_and_sharing(arch)
        params.setdefault(c, set()).add(p)
        if not s:
            shared.setdefault(c, set()).add(p)
    # cells whose live convolutions each reach the output along one path: one count per class
    assert all(len(v) == 1 for v in shared.values())
    # the expression does not see weight sharing: 430 classes mix counts (module doc's example)
    mixed = [c for c, v in params.items() if len(v) > 1]
    assert len(mixed) == 430
    a = string_to_arch("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|")
    b = string_to_arch("|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|")
    assert canon.class_of(a) == canon.class_of(b) and canon.class_of(a) in mixed
    assert _params_and_sharing(a)[0] != _params_and_sharing(b)[0]


# --- the official order and the official table ------------------------------------------------
@pytest.fixture(scope="module")
def official():
    path = require(NB201_DIR / "nb201_200ep.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return NB201Space([r["arch_str"] for r in rows]), rows


def test_official_order(official):
    space, _ = official
    ids, reps = canon.class_ids(space=space), canon.representatives(space=space)
    assert np.array_equal(ids[reps], np.arange(6466))
    rng = np.random.default_rng(0)
    for i in rng.choice(15625, size=200, replace=False):
        arch = space.arch(int(i))
        assert ids[i] == canon.class_of(arch)
        assert space.arch(int(reps[ids[i]])) == canon.representative_of(arch)


def test_zero_output_cells_are_exactly_the_chance_level_cells_of_nb201(official):
    # the official 200-epoch networks that output a constant score exactly chance on CIFAR-10
    # test (10 %); they are the algebraic rule's zero class, which the NB201 rule splits in 5
    space, rows = official
    test_acc = np.array([float(r["cifar10_test"]) for r in rows])
    zero = canon.class_ids("algebraic", space=space) == 0
    assert zero.sum() == 341
    assert np.array_equal(zero, test_acc == 10.0)
    assert len(np.unique(canon.class_ids(space=space)[zero])) == 5
    assert arch_to_string(space.arch(int(np.flatnonzero(zero)[0]))).count("none") >= 3
    assert OPS[NONE] == "none"
