import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracles.errors import InvalidArchitecture
from oracles.nb201_space import OPS, NB201Space, arch_to_string, string_to_arch


@pytest.fixture(scope="module")
def space(nb201_oracle):
    return nb201_oracle.space


def test_official_order_comes_from_the_data(space, nb201_oracle):
    archs = nb201_oracle.table.archs
    assert space.size == 15625
    for i in (0, 1, 11, 284, 6111, 15624):
        assert space.to_string(space.arch(i)) == archs[i]
        assert space.index(space.parse(str(archs[i]))) == i
    # the official order is not the product order
    assert not np.array_equal(space.tokens_all(), NB201Space().tokens_all())


def test_string_round_trip_and_identity(space):
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = space.sample(rng)
        s = space.to_string(a)
        assert space.parse(s) == a
        assert space.identity(a) == s
        assert space.from_tokens(space.tokens(a)) == a


def test_mutation_changes_exactly_one_edge(space):
    rng = np.random.default_rng(1)
    a = space.sample(rng)
    for _ in range(100):
        b = space.mutate(a, rng)
        assert sum(x != y for x, y in zip(a, b)) == 1
    nbrs = space.neighbours(a)
    assert len(nbrs) == len(set(nbrs)) == 24
    assert all(sum(x != y for x, y in zip(a, b)) == 1 for b in nbrs)


def test_encodings_are_one_hot_and_vectorised_matches(space):
    E = space.encode_all()
    assert E.shape == (15625, 30)
    assert np.all(E.reshape(-1, 6, 5).sum(axis=2) == 1)
    for i in (0, 77, 15624):
        np.testing.assert_array_equal(E[i], space.encode(space.arch(i)))
    assert len(np.unique(E, axis=0)) == 15625
    idx = space.indices([space.arch(i) for i in (5, 9, 3)])
    assert list(idx) == [5, 9, 3]


def test_sampling_is_uniform_enough(space):
    rng = np.random.default_rng(2)
    counts = np.bincount([space.index(space.sample(rng)) % 5 for _ in range(5000)], minlength=5)
    assert counts.min() > 850


@pytest.mark.parametrize("bad", [
    "", "|none~0|", "|none~0|+|none~0|none~1|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~0+none~0|none~1+none~0|none~1|none~2",
    "|none~0|+|none~0|+|none~0|none~1|none~2|",
])
def test_bad_strings_are_refused(bad):
    with pytest.raises(InvalidArchitecture):
        string_to_arch(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("|+~012_") + list("nonekipcvavg3x1")), max_size=90))
def test_parser_never_crashes(text):
    try:
        arch = string_to_arch(text)
    except InvalidArchitecture:
        return
    assert arch_to_string(arch) == text.strip()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(OPS) - 1), min_size=6, max_size=6))
def test_every_op_tuple_round_trips(ops):
    s = arch_to_string(ops)
    assert string_to_arch(s) == tuple(ops)
