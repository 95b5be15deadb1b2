"""The ConvNet space (LaNAS §2 / appendix 6.1): counts, enumeration, representations,
moves, the §2 action spaces, and the subset space used for sampled tables."""

from __future__ import annotations

import numpy as np
import pytest

from oracles.convnet_space import PRESETS, ConvNetSpace
from oracles.errors import InvalidArchitecture, UserError
from oracles.subset_space import SubsetSpace


@pytest.fixture(scope="module")
def digits():
    return ConvNetSpace.from_preset("digits")


def _count(n_options, lo, hi):
    return sum(n_options ** d for d in range(lo, hi + 1))


@pytest.mark.parametrize("preset,size", [("lanas-s2", 1364), ("digits", 1364), ("convnet60k", 55986),
                                         ("convnet60k-d8", 2015538)])
def test_preset_sizes(preset, size):
    space = ConvNetSpace.from_preset(preset)
    p = PRESETS[preset]
    assert space.size == size == _count(len(p["channels"]) * len(p["kernels"]), p["min_depth"], p["max_depth"])
    # the last index is the deepest network made of the last option everywhere
    last = space.arch(size - 1)
    assert last == ((p["kernels"][-1], p["channels"][-1]),) * p["max_depth"]
    assert space.index(last) == size - 1


def test_unknown_preset_and_bad_params():
    with pytest.raises(UserError, match="unknown convnet preset"):
        ConvNetSpace.from_preset("nope")
    with pytest.raises(UserError):
        ConvNetSpace(kernels=(2,))
    with pytest.raises(UserError):
        ConvNetSpace(max_depth=0)


def test_enumeration_round_trip_and_order(digits):
    archs = list(digits.enumerate())
    assert len(set(archs)) == digits.size
    assert [digits.index(a) for a in archs] == list(range(digits.size))
    depths = [len(a) for a in archs]
    assert depths == sorted(depths)  # by depth first
    assert archs[:4] == [((3, 8),), ((3, 16),), ((5, 8),), ((5, 16),)]
    with pytest.raises(InvalidArchitecture):
        digits.arch(digits.size)


def test_strings_and_parse_errors(digits):
    for i in range(0, digits.size, 7):
        a = digits.arch(i)
        assert digits.parse(digits.to_string(a)) == a
        assert digits.identity(a) == digits.to_string(a)
    assert digits.parse("3x8-5x16") == ((3, 8), (5, 16))
    for bad in ("", "3x8-", "3x32", "4x8", "3-8", "3x8-3x8-3x8-3x8-3x8-3x8", "axb"):
        with pytest.raises(InvalidArchitecture):
            digits.parse(bad)


def test_lanas_encoding_layout():
    space = ConvNetSpace.from_preset("lanas-s2")
    v = space.encode(space.parse("3x32-5x64"))
    # depth, then (C, K) per layer, zero-padded to max depth
    assert v.tolist() == [2, 32, 3, 64, 5, 0, 0, 0, 0, 0, 0]
    assert space.encoding_size == 11


@pytest.mark.parametrize("preset", ["digits", "lanas-s2"])
def test_vectorised_encodings_agree(preset):
    space = ConvNetSpace.from_preset(preset)
    enc, tok = space.encode_all(), space.tokens_all()
    for i in range(space.size):
        a = space.arch(i)
        assert np.array_equal(enc[i], space.encode(a))
        assert tuple(tok[i]) == space.tokens(a)
        assert space.from_tokens(tok[i]) == a
    assert len({tuple(r) for r in tok}) == space.size


def test_tokens_padding_is_ignored(digits):
    a = digits.parse("5x16-3x8")
    t = list(digits.tokens(a))
    assert t[5:] == [0] * (len(t) - 5)
    t[-1] = 1  # a padding position
    assert digits.from_tokens(t) == a
    with pytest.raises(InvalidArchitecture):
        digits.from_tokens(t[:-1])
    with pytest.raises(InvalidArchitecture):
        digits.from_tokens([9] + t[1:])


def test_neighbours_symmetric_and_inside(digits):
    for i in range(0, digits.size, 11):
        a = digits.arch(i)
        nbrs = digits.neighbours(a)
        assert a not in nbrs and len(set(nbrs)) == len(nbrs)
        for b in nbrs:
            digits.index(b)  # inside the space
            assert a in digits.neighbours(b)


def test_neighbour_counts():
    space = ConvNetSpace.from_preset("digits")
    # depth 1: 2 changes; no removal (min depth 1); insertions: 2 positions x 4 options,
    # of which inserting a copy of the layer before or after gives the same network
    assert len(space.neighbours(((3, 8),))) == 2 + 7
    # depth 5 (max): 5 layers x 2 changes + removals, which coincide for equal layers
    assert len(space.neighbours(((3, 8),) * 5)) == 10 + 1
    assert len(space.neighbours(((3, 8), (3, 16), (5, 8), (5, 16), (3, 8)))) == 10 + 5


def test_mutate_draws_neighbours_deterministically(digits):
    a = digits.parse("3x8-5x16-3x16")
    nbrs = set(digits.neighbours(a))
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    draws = [digits.mutate(a, r1) for _ in range(200)]
    assert draws == [digits.mutate(a, r2) for _ in range(200)]
    assert set(draws) <= nbrs and len(set(draws)) > len(nbrs) // 2


def test_mutate_is_uniform_over_the_neighbours(digits):
    """Each neighbour equally likely (chi-square, 100 draws per neighbour, false-alarm rate
    ALPHA): a mutation that favoured some moves (say, changes over insertions) fails."""
    from scipy import stats
    rng = np.random.default_rng(3)
    for text in ("3x8", "3x8-5x16-3x16", "5x16-5x16-5x16-5x16-5x16"):
        a = digits.parse(text)
        nbrs = digits.neighbours(a)
        where = {b: i for i, b in enumerate(nbrs)}
        counts = np.bincount([where[digits.mutate(a, rng)] for _ in range(100 * len(nbrs))], minlength=len(nbrs))
        assert stats.chisquare(counts).pvalue > ALPHA / 3, (text, counts)


#: false-alarm rate of the goodness-of-fit tests below: the chance that a uniform sampler
#: fails one for a seed drawn at random (the seeds are fixed, so a run is deterministic)
ALPHA = 1e-3


def test_sample_uniform_over_the_space(digits):
    """Uniform over networks, not depths: Pearson's chi-square over all 1,364 networks (8
    draws each on average) and over the 5 depths, whose probabilities are counted by hand
    (4^d networks of depth d: 4, 16, 64, 256, 1024 of 1,364). A sampler uniform over depths,
    or one that never draws some networks, fails."""
    from scipy import stats
    rng = np.random.default_rng(0)
    n = 8 * digits.size
    draws = [digits.sample(rng) for _ in range(n)]
    counts = np.bincount([digits.index(a) for a in draws], minlength=digits.size)
    assert counts.sum() == n and len(counts) == digits.size == 1364
    assert stats.chisquare(counts).pvalue > ALPHA
    depths = np.bincount([len(a) for a in draws], minlength=6)[1:]
    assert stats.chisquare(depths, n * np.array([4, 16, 64, 256, 1024]) / 1364).pvalue > ALPHA


def test_uniformity_check_has_power(digits):
    """The same check, seed and size fail a sampler uniform over depths, and one that
    redraws a seventh of the networks once (their probability 1/7 lower)."""
    from scipy import stats
    rng = np.random.default_rng(0)
    n, size = 8 * 1364, 1364
    start = np.cumsum([0, 4, 16, 64, 256])   # the enumeration is by depth (tested above)
    by_depth = [start[d] + rng.integers(4 ** (d + 1)) for d in rng.integers(5, size=n)]
    assert stats.chisquare(np.bincount(by_depth, minlength=size)).pvalue < ALPHA
    redrawn = rng.integers(size, size=n)
    again = redrawn % 7 == 0
    redrawn[again] = rng.integers(size, size=again.sum())
    assert stats.chisquare(np.bincount(redrawn, minlength=size)).pvalue < ALPHA


def _walk(acts, prefix=()):
    if acts.is_complete(list(prefix)):
        return [tuple(prefix)]
    out = []
    for a in acts.legal(list(prefix)):
        out += _walk(acts, prefix + (a,))
    return out


@pytest.mark.parametrize("kind", ["sequential", "global"])
def test_action_space_covers_space_once(digits, kind):
    acts = digits.action_space(kind)
    paths = _walk(acts)
    assert len(paths) == digits.size
    archs = {acts.to_arch(p) for p in paths}
    assert len(archs) == digits.size
    for p in paths[::50]:
        assert acts.decisions(acts.to_arch(p)) == p
        assert len(p) <= acts.max_length


def test_action_space_steps(digits):
    seq = digits.action_space("sequential")
    assert seq.legal([]) == (1,)           # min depth 1: the first layer must be added
    assert seq.step_kind([1]) == "kernel" and seq.legal([1]) == (3, 5)
    assert seq.step_kind([1, 3]) == "channels" and seq.legal([1, 3]) == (8, 16)
    assert seq.legal([1, 3, 8]) == (0, 1)  # stop or add another layer
    assert seq.is_complete([1, 3, 8, 0]) and seq.to_arch([1, 3, 8, 0]) == ((3, 8),)
    assert seq.decisions(((3, 8),) * 5) == (1, 3, 8) * 5  # max depth: no stop needed
    glo = digits.action_space("global")
    assert glo.legal([]) == (1, 2, 3, 4, 5) and glo.step_kind([]) == "depth"
    assert glo.to_arch([2, 3, 5, 8, 16]) == ((3, 8), (5, 16))
    assert glo.step_kind([2, 3]) == "kernel" and glo.step_kind([2, 3, 5]) == "channels"
    with pytest.raises(InvalidArchitecture):
        glo.to_arch([2, 3, 5, 8])          # incomplete
    with pytest.raises(InvalidArchitecture):
        glo.to_arch([2, 3, 4, 8, 16])      # kernel 4 not legal
    with pytest.raises(InvalidArchitecture):
        seq.to_arch([1, 3, 8, 0, 1])       # past a stop
    with pytest.raises(UserError):
        digits.action_space("random")


def test_subset_space(digits):
    rng = np.random.default_rng(1)
    idx = np.sort(rng.choice(digits.size, 200, replace=False))
    sub = SubsetSpace(digits, idx)
    assert sub.size == 200
    for i in range(200):
        a = sub.arch(i)
        assert digits.index(a) == idx[i] and sub.index(a) == i
    assert np.array_equal(sub.encode_all(), digits.encode_all()[idx])
    for _ in range(50):
        a = sub.sample(rng)
        b = sub.mutate(a, rng)
        assert b != a and sub.contains(b)
    outside = next(digits.arch(j) for j in range(digits.size) if j not in set(idx.tolist()))
    with pytest.raises(InvalidArchitecture):
        sub.index(outside)
    assert sub.action_space("global").legal([]) == (1, 2, 3, 4, 5)
