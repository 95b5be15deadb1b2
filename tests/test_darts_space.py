"""The DARTS search space (oracles/darts_space.py): genotype strings (DARTS's own DARTS_V1
and DARTS_V2 among them), the canonical identity, the exact size, moves, representations,
DARTS's derivation, the space contract of tests/test_contract.py, and every plain search
algorithm running on it.

The oracle the algorithms run against here is a test fixture (:class:`SyntheticDartsOracle`):
a fixed random linear score of the encoding, not a measurement of any network.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import test_contract as contract
from algorithms import REGISTRY, algorithm_class, make_algorithm
from harness.runner import RunConfig, run_one
from oracles.darts_space import DARTS_OPS, EDGES, OPS, DartsArch, DartsSpace, derive
from oracles.errors import InvalidArchitecture, UserError
from oracles.oracle import Evaluation, Fidelities, Observation, Oracle

SPACE = DartsSpace()
SPACE8 = DartsSpace(ops=DARTS_OPS)

#: DARTS's published cells, as printed in its code's genotypes.py (Liu et al., DARTS, ICLR 2019:
#: V1 first-order, V2 second-order search, the cell of its Table 1 and Figures 4-5)
DARTS_V1 = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def darts_archs(space: DartsSpace = SPACE):
    """Hypothesis strategy: architectures of ``space`` with each node's edges in either order."""
    def build(seed, swaps):
        a = space.sample(np.random.default_rng(seed))
        cells = []
        for c, edges in enumerate((a.normal, a.reduce)):
            edges = list(edges)
            for n in range(4):
                if swaps[4 * c + n]:
                    edges[2 * n], edges[2 * n + 1] = edges[2 * n + 1], edges[2 * n]
            cells.append(tuple(edges))
        return DartsArch(*cells)
    return st.builds(build, st.integers(0, 2 ** 32 - 1), st.lists(st.booleans(), min_size=8, max_size=8))


# --- genotype strings -------------------------------------------------------------------------
def test_darts_v2_parses_to_the_papers_cell_and_prints_back_in_its_order():
    a = SPACE.parse(DARTS_V2)
    assert a.normal[:4] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert a.normal[4:] == (("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2))
    assert a.reduce[6:] == (("skip_connect", 2), ("max_pool_3x3", 1))
    # DARTS prints each node's edges strongest first: the string keeps that order, the
    # identity lists them by input
    text = SPACE.to_string(a)
    assert text == DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert SPACE.parse(text) == a
    canon = SPACE.canonical(a)
    assert canon.normal[4:6] == (("skip_connect", 0), ("sep_conv_3x3", 1))
    assert SPACE.identity(a) == SPACE.to_string(canon)
    assert SPACE.identity(SPACE.parse(DARTS_V1)) != SPACE.identity(a)


def test_a_darts_genotype_namedtuple_is_an_architecture():
    from collections import namedtuple
    Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    a = SPACE.parse(DARTS_V2)
    g = Genotype(list(a.normal), [2, 3, 4, 5], list(a.reduce), range(2, 6))
    assert SPACE.identity(g) == SPACE.identity(a)
    assert SPACE.to_string(g) == SPACE.to_string(a)
    for concat in ([4, 5], 4, None):
        with pytest.raises(InvalidArchitecture, match="concat"):
            SPACE.identity(g._replace(reduce_concat=concat))
    for bad in (None, 3, "Genotype", DartsArch(a.normal, a.reduce[:7]), g._replace(normal=5)):
        with pytest.raises(InvalidArchitecture):
            SPACE.identity(bad)


def test_parse_reads_positional_fields_and_spacing_variants():
    a = SPACE.parse(DARTS_V2)
    positional = (f"Genotype({list(a.normal)!r}, range(2, 6), {list(a.reduce)!r}, [2, 3, 4, 5])")
    assert SPACE.parse(positional) == a
    assert SPACE.parse("  " + DARTS_V2.replace(", ", ",") + "\n") == a
    no_concat = f"Genotype(normal={list(a.normal)!r}, reduce={list(a.reduce)!r})"
    assert SPACE.parse(no_concat) == a


def _v2_with(**edits) -> str:
    a = SPACE.parse(DARTS_V2)
    normal = list(a.normal)
    for k, e in edits.items():
        normal[int(k[1:])] = e
    return (f"Genotype(normal={normal!r}, normal_concat=range(2, 6), reduce={list(a.reduce)!r}, "
            "reduce_concat=range(2, 6))")


@pytest.mark.parametrize("text, message", [
    (_v2_with(e1=("sep_conv_3x3", 0)), "both edges come from node 0"),
    (_v2_with(e7=("sep_conv_3x3", 5)), r"input 5 must be an earlier node, 0\.\.4"),
    (_v2_with(e2=("sep_conv_3x3", -1)), "earlier node"),
    (_v2_with(e2=("sep_conv_3x3", True)), "earlier node"),
    (_v2_with(e2=("sep_conv_3x3", 1.0)), "earlier node"),
    (_v2_with(e3=("conv_7x1_1x7", 1)), "not one of"),
    (_v2_with(e3=("none", 1)), "excludes none"),
    (_v2_with(e3=("sep_conv_3x3",)), r"must be \(operation, input\)"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "concat must be range"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6, 0)"), "concat"),
    (DARTS_V2.replace("[('sep_conv_3x3', 0), ", "[", 1), "needs 8 edges"),
    (DARTS_V2.replace("Genotype(", "Genotype(normal=[], ", 1), "unknown or repeated field"),
    (DARTS_V2.replace("Genotype", "dict"), "write Genotype"),
    ("Genotype(normal=__import__('os').system('true'), reduce=[])", "the normal cell must be a list"),
    ("Genotype(normal=[('sep_conv_3x3', 0)] * 8, reduce=[])", "the normal cell must be a list"),
    ("Genotype(", "not an expression"),
    ("x" * 30_000, "bad DARTS genotype"),
])
def test_parse_refuses_what_is_not_a_darts_cell_in_one_line(text, message):
    with pytest.raises(InvalidArchitecture, match=message) as info:
        SPACE.parse(text)
    assert "\n" not in str(info.value)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.tuples(st.integers(0, len(DARTS_V2)), st.integers(0, 12), st.text(max_size=4))))
def test_parse_answers_any_text_with_an_architecture_or_one_refusal(case):
    """Random text, and DARTS_V2 with a stretch cut out and other text put in: an
    architecture (whose string round-trips) or InvalidArchitecture, never another error."""
    if isinstance(case, str):
        text = case
    else:
        at, cut, insert = case
        text = DARTS_V2[:at] + insert + DARTS_V2[at + cut:]
    try:
        a = SPACE.parse(text)
    except InvalidArchitecture as exc:
        assert "\n" not in str(exc)
        return
    assert SPACE.parse(SPACE.to_string(a)) == a


def test_the_eight_operation_space_reads_none_edges():
    text = _v2_with(e3=("none", 1))
    a = SPACE8.parse(text)
    assert a.normal[3] == ("none", 1)


# --- identity and canonical form -----------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(darts_archs(), st.integers(0, 7))
def test_identity_ignores_the_order_of_a_nodes_two_edges(arch, node):
    c, n = divmod(node, 4)
    edges = list(arch.cell(("normal", "reduce")[c]))
    edges[2 * n], edges[2 * n + 1] = edges[2 * n + 1], edges[2 * n]
    swapped = DartsArch(tuple(edges), arch.reduce) if c == 0 else DartsArch(arch.normal, tuple(edges))
    assert SPACE.identity(swapped) == SPACE.identity(arch)
    np.testing.assert_array_equal(SPACE.encode(swapped), SPACE.encode(arch))
    assert SPACE.tokens(swapped) == SPACE.tokens(arch)
    assert SPACE.to_string(swapped) != SPACE.to_string(arch)   # the string keeps the order given


@settings(max_examples=60, deadline=None)
@given(darts_archs(), darts_archs())
def test_identity_encoding_and_tokens_agree_on_sameness(a, b):
    same = SPACE.identity(a) == SPACE.identity(b)
    assert same == np.array_equal(SPACE.encode(a), SPACE.encode(b))
    assert same == (SPACE.tokens(a) == SPACE.tokens(b))
    assert same == (SPACE.canonical(a) == SPACE.canonical(b))


def test_a_none_edges_input_does_not_matter():
    a = SPACE8.parse(_v2_with(e3=("none", 1)))           # node 3: (sep_conv_3x3, 0) and none
    b = SPACE8.parse(_v2_with(e3=("none", 2)))
    assert SPACE8.identity(a) == SPACE8.identity(b)
    np.testing.assert_array_equal(SPACE8.encode(a), SPACE8.encode(b))
    c = SPACE8.parse(_v2_with(e3=("skip_connect", 2)))
    assert SPACE8.identity(c) != SPACE8.identity(b)


# --- size ---------------------------------------------------------------------------------------
def test_cardinality_is_exact_and_the_space_is_not_enumerated():
    assert SPACE.cardinality == (180 * 7 ** 8) ** 2 == 1_076_746_950_455_072_400
    # tokens are a bijection onto identities in the default space: their product is the size
    assert math.prod(SPACE.decisions) == SPACE.cardinality
    assert SPACE.size is None and not SPACE.is_finite
    assert SPACE.describe()["architectures"] == SPACE.cardinality
    assert SPACE8.cardinality == 3_376_835_386_034_765_824


@pytest.mark.parametrize("space", [SPACE, SPACE8], ids=["7ops", "8ops"])
def test_cardinality_counts_every_distinct_node_by_brute_force(space):
    """Vary one node of the normal cell over every ordered pair of its edges and count the
    identities; the product over nodes, squared (two cells), is the cardinality."""
    base = space.parse(DARTS_V2)
    per_node = []
    for n in range(4):
        node = n + 2
        ids = set()
        for ia in range(node):
            for ib in range(node):
                if ia == ib:
                    continue
                for oa in space.ops:
                    for ob in space.ops:
                        edges = list(base.normal)
                        edges[2 * n], edges[2 * n + 1] = (oa, ia), (ob, ib)
                        ids.add(space.identity(DartsArch(tuple(edges), base.reduce)))
        per_node.append(len(ids))
    assert math.prod(per_node) ** 2 == space.cardinality
    if space is SPACE:
        assert per_node == [49, 3 * 49, 6 * 49, 10 * 49]


# --- moves -------------------------------------------------------------------------------------
def _differences(a, b) -> int:
    """How many (cell, node) edge sets differ between canonical forms."""
    ca, cb = SPACE.canonical(a), SPACE.canonical(b)
    return sum(set(x[2 * n:2 * n + 2]) != set(y[2 * n:2 * n + 2])
               for x, y in ((ca.normal, cb.normal), (ca.reduce, cb.reduce)) for n in range(4))


@settings(max_examples=25, deadline=None)
@given(darts_archs())
def test_neighbours_are_the_120_single_changes(arch):
    nbrs = SPACE.neighbours(arch)
    assert len(nbrs) == 120          # per cell: node j's two edges, 6 other ops + (j - 2) other inputs
    own = SPACE.encode(arch)
    for b in nbrs:
        assert _differences(arch, b) == 1
        # one edge moved or relabelled: the edge matrix changes in exactly two cells
        # (an op change: same edge, two columns; an input change: two rows)
        assert np.abs(SPACE.encode(b) - own).sum() == 2
    assert len({SPACE.identity(b) for b in nbrs}) == 120


def test_mutation_draws_uniformly_among_the_neighbours():
    a = SPACE.parse(DARTS_V2)
    ids = [SPACE.identity(b) for b in SPACE.neighbours(a)]
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(1200):
        m = SPACE.identity(SPACE.mutate(a, rng))
        counts[m] = counts.get(m, 0) + 1
    assert set(counts) == set(ids)
    from scipy import stats
    assert stats.chisquare([counts[i] for i in ids]).pvalue > 1e-4


def test_sampling_is_uniform_over_each_nodes_choices():
    """Node 5 of the normal cell: its 10 input pairs and, per edge, the 7 operations are
    drawn uniformly (chi-square)."""
    from scipy import stats
    rng = np.random.default_rng(1)
    pairs, ops = {}, {}
    for _ in range(3000):
        a = SPACE.sample(rng)
        (oa, ia), (ob, ib) = a.normal[6], a.normal[7]
        pairs[(ia, ib)] = pairs.get((ia, ib), 0) + 1
        ops[oa] = ops.get(oa, 0) + 1
    assert len(pairs) == 10 and len(ops) == 7
    assert stats.chisquare(list(pairs.values())).pvalue > 1e-4
    assert stats.chisquare(list(ops.values())).pvalue > 1e-4


# --- representations ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_token_sequence_is_an_architecture_and_round_trips(data):
    t = tuple(data.draw(st.integers(0, d - 1)) for d in SPACE.decisions)
    a = SPACE.from_tokens(t)
    assert SPACE.tokens(a) == t
    assert a == SPACE.canonical(a)
    assert SPACE.identity(SPACE.parse(SPACE.to_string(a))) == SPACE.identity(a)


def test_encoding_is_the_discrete_alpha_matrix():
    a = SPACE.parse(DARTS_V2)
    e = SPACE.encode(a).reshape(2, 14, 7)
    assert e.sum() == 16 and set(np.unique(e)) == {0.0, 1.0}
    # normal node 5 (rows 9..13): skip_connect from 0 and dil_conv_3x3 from 2
    assert e[0, EDGES.index((5, 0)), OPS.index("skip_connect")] == 1
    assert e[0, EDGES.index((5, 2)), OPS.index("dil_conv_3x3")] == 1
    m = SPACE8.edge_matrix(a)
    assert m.shape == (2, 14, 8) and m[:, :, 0].sum() == 0
    np.testing.assert_array_equal(m[:, :, 1:], e)


def test_the_space_refuses_bad_operation_sets():
    for ops in ((), ("none",), ("sep_conv_3x3", "sep_conv_3x3"), ("conv_7x1_1x7",)):
        with pytest.raises(UserError):
            DartsSpace(ops=ops)
    small = DartsSpace(ops=("skip_connect", "sep_conv_3x3"))
    assert small.cardinality == (180 * 2 ** 8) ** 2
    assert small.encoding_size == 2 * 14 * 2


# --- DARTS's derivation --------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(darts_archs(), st.integers(0, 2 ** 32 - 1))
def test_derive_recovers_an_architecture_from_its_edge_weights(arch, seed):
    """Weights that favour the architecture's edges and operations (with noise) derive it
    back; a strong none on every edge changes nothing (DARTS excludes none)."""
    rng = np.random.default_rng(seed)
    m = SPACE8.edge_matrix(arch)
    w = m + rng.uniform(0, 0.4, m.shape)
    w[:, :, 0] = 5.0
    got = derive(w[0], w[1])
    assert SPACE.identity(got) == SPACE.identity(arch)


def test_derive_lists_each_nodes_edges_strongest_first():
    w = np.zeros((14, 8))
    w[EDGES.index((2, 1)), DARTS_OPS.index("sep_conv_3x3")] = 2.0
    w[EDGES.index((2, 0)), DARTS_OPS.index("skip_connect")] = 1.0
    a = derive(w, w)
    assert a.normal[:2] == (("sep_conv_3x3", 1), ("skip_connect", 0))
    assert a.normal[2:4] == (("max_pool_3x3", 0), ("max_pool_3x3", 1))   # all ties: lower edge, lower op


# --- the contract of tests/test_contract.py ---------------------------------------------------
CONTRACT_CHECKS = [
    contract.test_sampling_is_deterministic_and_lands_in_the_space,
    contract.test_mutation_is_deterministic_valid_and_never_the_architecture,
    contract.test_mutation_draws_among_the_neighbours,
    contract.test_neighbours_are_valid_distinct_and_deterministic,
    contract.test_encoding_has_its_size_and_agrees_with_encode_all,
    contract.test_tokens_lie_in_the_decisions_and_round_trip,
    contract.test_from_tokens_refuses_what_is_not_an_architecture,
    contract.test_strings_round_trip,
    contract.test_parse_refuses_garbage,
    contract.test_describe_says_what_the_space_is,
]


@pytest.mark.parametrize("space", [SPACE, SPACE8], ids=["7ops", "8ops"])
@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_the_space_contract(check, space):
    check(contract.SpaceCase(space, n=8))


# --- every plain algorithm on the space -----------------------------------------------------------
class SyntheticDartsOracle(Oracle):
    """TEST FIXTURE, not data: the score of an architecture is a fixed random linear function
    of its encoding squashed into (0, 1), so algorithms have something to climb. No network
    is trained; nothing here measures a DARTS cell."""

    name, search_metric, report_metric = "synthetic-darts", "score", "score-again"

    def __init__(self, space: DartsSpace = SPACE, seed: int = 0, fidelities: tuple[int, ...] | None = None):
        super().__init__()
        self.space = space
        self._w = np.random.default_rng(seed).normal(0, 1, space.encoding_size)
        self._fids = None if fidelities is None else Fidelities(tuple(fidelities))

    @property
    def fidelities(self):
        return self._fids

    def query(self, arch, rng=None, fidelity=None):
        v = float(1 / (1 + np.exp(-self._w @ self.space.encode(arch) / 4)))
        if self._fids is not None:
            # a lower fidelity sees a shrunk score, as a shorter training would
            v *= (self._fids.max if fidelity is None else fidelity) / self._fids.max
        return Evaluation(Observation(v, cost=1.0), v)

    @property
    def optimum(self):
        return None


PLAIN = sorted(n for n in REGISTRY if not algorithm_class(n).uses_fidelities)


@pytest.mark.parametrize("name", PLAIN)
def test_every_plain_algorithm_runs_on_the_darts_space(name):
    contract.importable(name)
    oracle = SyntheticDartsOracle()
    records, summary = contract.run(name, oracle, seed=1, budget=12)
    assert summary["n_distinct"] == 12
    texts = records["arch"] if "arch" in records else records["arch_id"]
    assert len({SPACE.identity(SPACE.parse(str(t))) for t in texts}) == 12


MULTI_FIDELITY = sorted(n for n in REGISTRY if algorithm_class(n).uses_fidelities)


@pytest.mark.parametrize("name", MULTI_FIDELITY)
def test_every_multi_fidelity_algorithm_runs_on_the_darts_space(name):
    contract.importable(name)
    oracle = SyntheticDartsOracle(fidelities=(1, 3, 9))
    records, summary = contract.run(name, oracle, seed=1, budget=12)
    assert summary["n_distinct"] == 12
    assert min(records["fidelity"].tolist()) < 9        # it chose lower fidelities too


def test_lanas_uses_its_mcmc_sampler_on_the_darts_space():
    algo = make_algorithm("lanas", dict(contract.FAST["lanas"]))
    rng = np.random.default_rng(0)
    algo.start(SPACE, rng)
    oracle = SyntheticDartsOracle()
    seen = set()
    for _ in range(12):
        a = algo.ask()
        seen.add(SPACE.identity(a))
        algo.tell(a, oracle.query(a).observation)
    d = algo.diagnostics()
    assert d["sampler"] == "mcmc" and d["mcmc_moves"] > 0 and len(seen) == 12
