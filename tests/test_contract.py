"""The contract every search space and every search algorithm goes through (issue 14), in the
manner of Optuna's parametrised sampler tests.

**Spaces** (:mod:`oracles.space`): one line in :data:`SPACES` builds a space (from real data
where it needs some), and a test fails while a space class of ``oracles/`` has no line. Every
check runs on every space: sampling is deterministic for a seed, lands in the space and is
uniform on a finite space; ``mutate`` never returns its argument, is deterministic and draws
among ``neighbours``; neighbours are valid, distinct and listed in a fixed order; ``encode``
has ``encoding_size`` float64 entries and agrees with ``encode_all``; tokens lie in
``decisions`` and round-trip through ``from_tokens``, which refuses what is not an
architecture; ``to_string``/``parse`` round-trip and ``parse`` refuses garbage;
``index``/``arch`` round-trip and ``identities_all``/``tokens_all`` agree with the
per-architecture methods on finite spaces; ``describe`` says what the space is; a space built
from a table holds none of the table's metrics.

**Algorithms**: every name in :data:`algorithms.REGISTRY`, so a new one is covered without a
line here (:data:`FAST` may give it small hyper-parameters for the default run). On a tiny
table (21 architectures, three holes in its token grid, training times that differ per
architecture, a report column of sentinel values), through :func:`harness.runner.run_one`:
the same seed gives the same trajectory and another seed another, whatever the global
generators hold; what the algorithm is
told is exactly the search metric, cost and training accuracy of the trial's architecture at
its fidelity, never a report value, no report value is anywhere in its state, and with the
report column shuffled it runs the same; on the
table negated and minimised it runs exactly as on the table maximised (it only ever sees
scores to maximise); it asks only fidelities the oracle serves (none at all unless it uses
fidelities) and continues only earlier trials of the same architecture at a lower
fidelity; with four simulated workers results come back out of order and the run
completes, deterministically; told failed results (``+inf`` loss) for a third of NB201's
cells, it runs to its budget and asks them no more often than random search; given 40 queries per architecture it ends the run with DONE
after evaluating every architecture. No run fails or is stopped as stuck on repeats.
Multi-fidelity algorithms (``uses_fidelities``) run on tables serving several fidelities,
restart and prefix, and on ``nb201/cifar10:fidelities=all``.

The checks users run on their own algorithms (``nas-harness check``, :mod:`harness.check`)
are the same code: determinism, global generators, the shuffled report column, fidelity
requests and DONE call the library's checks on the tiny table, and the helpers (watching an
algorithm, the minimised mirror, the state walk) are the library's; what only our own suite
asserts (the exact observations told, the tiny table's holes) stays here.

The default run keeps the fast cases (the tiny table, small hyper-parameters: about 10 s of
CPU once torch, scipy and LaNAS's numba kernels are loaded); ``-m slow`` adds the published
defaults on NAS-Bench-201 (every check above that a real table allows), every plain
algorithm on every table-backed space, and the resume check (a run after a killed one equals
it in a fresh process) for every algorithm.

A contract that a real space or algorithm breaks is marked ``xfail(strict=True)`` in
:data:`KNOWN` with the reason (never weakened); the entry goes once it is fixed, since the
case then fails as an unexpected pass.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from algorithms import REGISTRY, algorithm_class
from conftest import NB101_SAMPLE, data_env, require
from harness import check
from harness.check import asked, trajectory
from optional import require_module
from oracles.errors import InvalidArchitecture
from oracles.oracle import Observation, Oracle, TabularOracle
from oracles.space import FiniteSpace, SearchSpace
from oracles.table import Table
from tiny_space import TinySpace

# --- spaces ---------------------------------------------------------------------------------
#: token tuples the tiny space leaves out, so algorithms meet sequences the space rejects
TINY_HOLES = ((0, 0, 0), (1, 1, 3), (2, 0, 1))


@dataclass
class SpaceCase:
    space: SearchSpace
    table: Table | None = None    #: the table the space was built from (None: no data)
    n: int = 20                   #: architectures each check draws (fewer where moves are slow)


def _tiny(get) -> SpaceCase:
    return SpaceCase(TinySpace(invalid=TINY_HOLES))


def _nb201(get) -> SpaceCase:
    from oracles.registry import load_oracle
    with data_env(get("nb201_data_dir")):
        oracle = load_oracle("nb201/cifar10")
    return SpaceCase(oracle.space, oracle.table)


def _nb201_product_order(get) -> SpaceCase:
    from oracles.nb201_space import NB201Space
    return SpaceCase(NB201Space())


def _nb101(get) -> SpaceCase:
    from oracles.nb101_space import NB101Space
    return SpaceCase(NB101Space(), n=8)


def _nb101_table(get) -> SpaceCase:
    from oracles.registry import load_oracle
    table = nb101_fixture_table(get("tmp_path_factory"))
    # a mutation of the 25-model fixture re-draws the paper's mutation 200 times before
    # falling back to the nearest row (0.1 s each): two sampled architectures
    return SpaceCase(load_oracle("nb101", shared=table).space, table, n=2)


def _convnet_digits(get) -> SpaceCase:
    from oracles.registry import load_oracle
    oracle = load_oracle("convnet-digits")
    return SpaceCase(oracle.space, oracle.table)


def _convnet_subset(get) -> SpaceCase:
    from oracles.registry import load_oracle
    table = convnet_subset_table()
    return SpaceCase(load_oracle(table.name, shared=table).space, table)


def _convnet_rows(get) -> SpaceCase:
    from oracles.registry import load_oracle
    table = convnet_rows_table(get("tmp_path_factory"))
    return SpaceCase(load_oracle(table.name, shared=table).space, table)


def _mlp(get) -> SpaceCase:
    from oracles.mlp_space import MLPSpace
    return SpaceCase(MLPSpace(), n=8)


def _mlp_table(get) -> SpaceCase:
    from oracles.mlp_space import MLPSpace, MLPTableSpace
    parent, rng = MLPSpace(max_hidden=2), np.random.default_rng(0)
    archs = list(dict.fromkeys(parent.sample(rng) for _ in range(300)))
    archs += [n for n in parent.neighbours(archs[0])[:40] if n not in archs]
    return SpaceCase(MLPTableSpace(parent, archs))


def _darts(get) -> SpaceCase:
    from oracles.darts_space import DartsSpace
    return SpaceCase(DartsSpace(), n=8)


def _nbnlp(get) -> SpaceCase:
    from conftest import SHARED_DATA, require
    from oracles.importers.nbnlp import build_table
    from oracles.nbnlp_space import space_from_table
    table = build_table(require(SHARED_DATA / "nbnlp" / "nbnlp_ptb.csv.gz"), ids=range(1000000, 1000300))
    return SpaceCase(space_from_table(table), table)


def _recurrent(get) -> SpaceCase:
    from oracles.recurrent_space import RecurrentSpace
    return SpaceCase(RecurrentSpace())


def _convnet60k(get) -> SpaceCase:
    from oracles.convnet_space import ConvNetSpace
    return SpaceCase(ConvNetSpace.from_preset("convnet60k"))


#: every space: name -> builder(getfixturevalue). A new space is one line here.
SPACES: dict[str, Callable[[Callable[[str], Any]], SpaceCase]] = {
    "tiny": _tiny,                              # tests/tiny_space.py, with holes
    "nb201": _nb201,                            # NB201Space, official order from the shared CSVs
    "nb201-product-order": _nb201_product_order,  # NB201Space without data
    "nb101": _nb101,                            # NB101Space (not enumerated)
    "nb101-table": _nb101_table,                # NB101TableSpace: the 25 official records
    "convnet-digits": _convnet_digits,          # ConvNetSpace of the shipped table
    "convnet-subset": _convnet_subset,          # SubsetSpace: a subset table of convnet-digits
    "convnet-rows": _convnet_rows,              # ProductSpace: convnet-digits rows as columns
    "mlp": _mlp,                                # MLPSpace: MLPNAS's MLPs (not enumerated)
    "mlp-table": _mlp_table,                    # MLPTableSpace: the rows of an exported live table
    "darts": _darts,                            # DartsSpace: DARTS cells, 7 ops, ~1.1e18 (not enumerated)
    "nbnlp": _nbnlp,                            # NBNLPSpace: 300 ids of NAS-Bench-NLP
    "recurrent": _recurrent,                    # RecurrentSpace: LaNAS's recurrent cells, 6,954
    "convnet60k": _convnet60k,                  # ConvNetSpace, 55,986 networks (slow only)
}
#: spaces whose checks run only under ``-m slow`` (the same class as a default-run case, or big)
SLOW_SPACES = {"nb201-product-order", "convnet60k"}

#: (space or algorithm, check) -> why a real space or algorithm breaks that contract; the case
#: is xfail(strict=True): it fails the run once it passes, so the entry goes with the fix
KNOWN: dict[tuple[str, str], str] = {
    ("cadam", "done"):
        "CADAM never answers DONE on an exhausted finite space: its actor keeps re-proposing "
        "evaluated architectures (as its module docstring says; DONE only comes from the "
        "random fallback after max_invalid invalid actions), so after the 21 architectures it "
        "spins on repeats, each a training step, until the query budget or the runner's "
        "max_repeats stops it",
}


#: known failures too slow for the default run (CADAM trains at each of its 840 queries)
SLOW_KNOWN = {("cadam", "done")}


def space_params(check: str) -> list:
    out = []
    for name in SPACES:
        marks = []
        if name in SLOW_SPACES:
            marks.append(pytest.mark.slow)
        if (name, check) in KNOWN:
            marks.append(pytest.mark.xfail(reason=KNOWN[name, check], strict=True))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


_BUILT: dict[str, SpaceCase] = {}


def build_space(name: str, getfixturevalue) -> SpaceCase:
    """The case ``name``, built once per test session."""
    if name not in _BUILT:
        _BUILT[name] = SPACES[name](getfixturevalue)
    return _BUILT[name]


@pytest.fixture(scope="module")
def space_case(request) -> SpaceCase:
    return build_space(request.param, request.getfixturevalue)


def test_every_space_class_of_the_project_is_in_the_contract(request):
    """Every SearchSpace subclass defined in ``oracles/`` has a case in :data:`SPACES` (a new
    space class fails here until its line is added)."""
    import oracles
    for mod in pkgutil.iter_modules(oracles.__path__):
        if not mod.ispkg:
            importlib.import_module(f"oracles.{mod.name}")

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    defined = {c for c in subclasses(SearchSpace)
               if c.__module__.startswith("oracles.") and not inspect.isabstract(c)}
    covered = {type(build_space(name, request.getfixturevalue).space) for name in SPACES}
    assert defined - covered == set()


def nb101_fixture_table(tmp_path_factory) -> Table:
    """The 25 official NB101 records, written in the official tfrecord layout and imported."""
    from nb101_helpers import load_sample, write_official_tfrecord
    from oracles.importers import nb101
    path = write_official_tfrecord(load_sample(require(NB101_SAMPLE)),
                                   tmp_path_factory.mktemp("nb101") / "nasbench_only108.tfrecord")
    return nb101.build(argparse.Namespace(source=path, name=None))


def convnet_subset_table(n: int = 150, seed: int = 1) -> Table:
    """``n`` random rows of convnet-digits as a subset table (as a collection of a random
    subset of a space is stored), so the registry builds a SubsetSpace over it."""
    from oracles.registry import load_oracle
    t = load_oracle("convnet-digits").table
    idx = np.sort(np.random.default_rng(seed).choice(t.n_archs, n, replace=False))
    name = "convnet-digits-subset"
    meta = dict(t.meta, name=name, space=dict(t.meta["space"], subset=True),
                oracles=[dict(d, name=name) for d in t.meta["oracles"][:1]])
    return Table(name, np.asarray(t.archs)[idx], t.seeds, t.fidelities, t.metrics, np.asarray(t.values)[idx],
                 {k: np.asarray(v)[idx] for k, v in t.columns.items()}, meta)


def convnet_rows_table(tmp_path_factory) -> Table:
    """convnet-digits as a generic table, imported like a user's CSV: one row per network,
    columns ``depth``, ``k1, c1, ..., k5, c5`` (0 past the depth), the measured validation and
    test accuracy, training time and training accuracy (seed means). Kernels are forced
    categorical, depth and channels stay numeric, so both kinds of column are exercised;
    the rows are not a full product of the columns' values."""
    from oracles.importers import table as generic
    from oracles.registry import load_oracle
    oracle = load_oracle("convnet-digits")
    space, t = oracle.space, oracle.table
    rows = []
    for i in range(space.size):
        layers = space.arch(i)
        row = {"depth": len(layers)}
        for pos in range(space.max_depth):
            k, c = layers[pos] if pos < len(layers) else (0, 0)
            row[f"k{pos + 1}"], row[f"c{pos + 1}"] = k, c
        rows.append(row)
    df = pd.DataFrame(rows)
    for col, metric in (("valid", "valid_acc"), ("test", "test_acc"), ("seconds", "train_time"),
                        ("train", "train_acc")):
        df[col] = t.column(metric)
    path = tmp_path_factory.mktemp("convnet-rows") / "convnet-rows.csv"
    df.to_csv(path, index=False)
    layers = [f"{x}{p}" for p in range(1, space.max_depth + 1) for x in "kc"]
    return generic.build(argparse.Namespace(
        source=path, arch_columns=",".join(["depth", *layers]), metric=["valid=valid", "test=test"],
        cost="seconds", train="train", search=None, report=None, percent=False, fraction=False, fidelity=0,
        name="convnet-rows", categorical=",".join(f"k{p}" for p in range(1, space.max_depth + 1))))


def some_archs(case: SpaceCase, seed: int = 0) -> list:
    """``case.n`` sampled architectures, and on a finite space the first and last of the
    enumeration."""
    s = case.space
    rng = np.random.default_rng(seed)
    out = [s.sample(rng) for _ in range(case.n)]
    if s.is_finite:
        out += [s.arch(0), s.arch(s.size - 1)]
    return out


def assert_in_space(s: SearchSpace, a) -> None:
    """``a`` is an architecture of ``s``: on a finite space it has an index whose architecture
    is ``a``; on any space its string form parses back to it."""
    ident = s.identity(a)
    assert isinstance(ident, str) and ident
    if s.is_finite:
        i = s.index(a)
        assert 0 <= i < s.size
        assert s.identity(s.arch(i)) == ident
    assert s.identity(s.parse(s.to_string(a))) == ident


@pytest.mark.parametrize("space_case", space_params("sampling"), indirect=True)
def test_sampling_is_deterministic_and_lands_in_the_space(space_case):
    s = space_case.space

    def draw(seed):
        rng = np.random.default_rng(seed)
        return [s.sample(rng) for _ in range(space_case.n)]

    a, b, c = draw(5), draw(5), draw(6)
    assert [s.identity(x) for x in a] == [s.identity(x) for x in b]
    assert a == b                     # the same objects' values, not only the same identities
    assert [s.identity(x) for x in a] != [s.identity(x) for x in c]
    for x in a + c:
        hash(x)                       # architectures are hashable (the runner's caches)
        assert_in_space(s, x)


#: false-alarm rate of the uniformity test: the chance that a uniform sampler fails it for a
#: seed drawn at random (the seed is fixed, so a run is deterministic)
ALPHA = 1e-4


@pytest.mark.parametrize("space_case", space_params("uniform"), indirect=True)
def test_sampling_is_uniform_on_a_finite_space(space_case):
    s = space_case.space
    if not s.is_finite:
        pytest.skip("not enumerated: uniformity over the space is not testable (NB101Space documents "
                    "that it is uniform over raw specs, not over models)")
    from scipy import stats
    n = min(max(20 * s.size, 10_000), 60_000)
    rng = np.random.default_rng(11)
    counts = np.bincount([s.index(s.sample(rng)) for _ in range(n)], minlength=s.size)
    # Pearson's chi-square over every architecture. A sampler that draws 5% of the space twice
    # as often as the rest gives p < 1e-28 at these sizes (simulated, 21 to 15,625
    # architectures at 20 draws each, NB201's at 3.8); one that never draws some fails the
    # count below (with 20 draws each, an empty cell is an e^-20 = 2e-9 event per architecture).
    assert stats.chisquare(counts).pvalue > ALPHA
    if n / s.size >= 20:
        assert counts.min() > 0


@pytest.mark.parametrize("space_case", space_params("mutation"), indirect=True)
def test_mutation_is_deterministic_valid_and_never_the_architecture(space_case):
    s = space_case.space
    for k, a in enumerate(some_archs(space_case)):
        m = s.mutate(a, np.random.default_rng(k))
        assert s.identity(m) != s.identity(a)
        assert_in_space(s, m)
        if k < 3:
            assert s.identity(s.mutate(a, np.random.default_rng(k))) == s.identity(m)


@pytest.mark.parametrize("space_case", space_params("mutation-among-neighbours"), indirect=True)
def test_mutation_draws_among_the_neighbours(space_case):
    """``mutate`` is "a random neighbour": where ``arch`` has neighbours, every mutation is one
    of them (spaces whose architecture has none fall back to another architecture, as their
    docstrings say), and repeated mutations reach more than one of them."""
    s = space_case.space
    rng = np.random.default_rng(3)
    for a in some_archs(space_case)[:8]:
        nbrs = {s.identity(b) for b in s.neighbours(a)}
        if not nbrs:
            continue
        drawn = {s.identity(s.mutate(a, rng)) for _ in range(12)}
        if s.mutates_to_neighbours:
            assert drawn <= nbrs, \
                f"{len(drawn - nbrs)} of {len(drawn)} mutations of {s.to_string(a)} are not neighbours"
        else:
            # a paper's own operator (NB101: several edges or ops at once): different models,
            # and more than one step away at times, as the space documents
            assert s.identity(a) not in drawn and not drawn <= nbrs
        assert len(drawn) > 1 or len(nbrs) == 1


@pytest.mark.parametrize("space_case", space_params("neighbours"), indirect=True)
def test_neighbours_are_valid_distinct_and_deterministic(space_case):
    s = space_case.space
    for a in some_archs(space_case):
        nbrs = s.neighbours(a)
        ids = [s.identity(b) for b in nbrs]
        assert s.identity(a) not in ids
        assert len(set(ids)) == len(ids)
        assert [s.identity(b) for b in s.neighbours(a)] == ids   # same order: runs replay
        for b in nbrs[:: max(1, len(nbrs) // 10)]:
            assert_in_space(s, b)


@pytest.mark.parametrize("space_case", space_params("encode"), indirect=True)
def test_encoding_has_its_size_and_agrees_with_encode_all(space_case):
    s = space_case.space
    assert isinstance(s.encoding_size, int) and s.encoding_size > 0
    for a in some_archs(space_case):
        e = s.encode(a)
        assert isinstance(e, np.ndarray) and e.dtype == np.float64 and e.shape == (s.encoding_size,)
        assert np.all(np.isfinite(e))
        np.testing.assert_array_equal(s.encode(a), e)
        if s.is_finite:
            np.testing.assert_array_equal(s.encode_all()[s.index(a)], e)
    if s.is_finite:
        enc = s.encode_all()
        assert enc.shape == (s.size, s.encoding_size) and not enc.flags.writeable
        rows = _spread(s.size)
        np.testing.assert_array_equal(enc[rows], np.stack([s.encode(s.arch(int(i))) for i in rows]))


def _spread(size: int, most: int = 3000) -> np.ndarray:
    """Every index of a space up to ``most``, else ``most`` indices spread over it."""
    return np.arange(size) if size <= most else np.unique(np.linspace(0, size - 1, most).astype(np.int64))


@pytest.mark.parametrize("space_case", space_params("tokens"), indirect=True)
def test_tokens_lie_in_the_decisions_and_round_trip(space_case):
    s = space_case.space
    dec = s.decisions
    assert isinstance(dec, tuple) and dec and all(isinstance(d, int) and d >= 1 for d in dec)
    for a in some_archs(space_case):
        t = s.tokens(a)
        assert isinstance(t, tuple) and len(t) == len(dec)
        assert all(isinstance(x, int) and 0 <= x < d for x, d in zip(t, dec))
        assert s.identity(s.from_tokens(t)) == s.identity(a)
        assert s.from_tokens(list(t)) == s.from_tokens(t)
    if s.is_finite:
        tok = s.tokens_all()
        assert tok.shape == (s.size, len(dec)) and not tok.flags.writeable
        rows = _spread(s.size)
        assert [tuple(r) for r in tok[rows].tolist()] == [s.tokens(s.arch(int(i))) for i in rows]


@pytest.mark.parametrize("space_case", space_params("tokens-refused"), indirect=True)
def test_from_tokens_refuses_what_is_not_an_architecture(space_case):
    s = space_case.space
    t = list(s.tokens(some_archs(space_case)[0]))
    dec = s.decisions
    for bad in (t[:-1], t + [0], [dec[0]] + t[1:], [-1] + t[1:]):
        with pytest.raises(InvalidArchitecture):
            s.from_tokens(bad)


@pytest.mark.parametrize("space_case", space_params("strings"), indirect=True)
def test_strings_round_trip(space_case):
    s = space_case.space
    for a in some_archs(space_case):
        text = s.to_string(a)
        assert isinstance(text, str) and text
        back = s.parse(text)
        assert s.identity(back) == s.identity(a)
        assert s.to_string(back) == text


@pytest.mark.parametrize("space_case", space_params("parse-refused"), indirect=True)
def test_parse_refuses_garbage(space_case):
    for garbage in ("", "not an architecture", "|||+++|||", "3x"):
        with pytest.raises(InvalidArchitecture):
            space_case.space.parse(garbage)


@pytest.mark.parametrize("space_case", space_params("index"), indirect=True)
def test_index_and_arch_round_trip(space_case):
    s = space_case.space
    if not s.is_finite:
        assert s.size is None
        pytest.skip("not enumerated: no index")
    assert isinstance(s, FiniteSpace) and isinstance(s.size, int) and s.size > 0
    for i in _spread(s.size):
        assert s.index(s.arch(int(i))) == i
    for a in some_archs(space_case):
        assert s.identity(s.arch(s.index(a))) == s.identity(a)
    if s.size <= 3000:
        assert [s.identity(a) for a in s.enumerate()] == [s.identity(s.arch(i)) for i in range(s.size)]


@pytest.mark.parametrize("space_case", space_params("identities"), indirect=True)
def test_identities_all_agree_with_identity(space_case):
    s = space_case.space
    if not s.is_finite:
        pytest.skip("not enumerated")
    ids = s.identities_all()
    assert ids.shape == (s.size,) and not ids.flags.writeable
    rows = _spread(s.size)
    assert ids[rows].tolist() == [s.identity(s.arch(int(i))) for i in rows]


@pytest.mark.parametrize("space_case", space_params("describe"), indirect=True)
def test_describe_says_what_the_space_is(space_case):
    s = space_case.space
    d = s.describe()
    assert d["name"] == s.name and isinstance(s.name, str) and s.name
    assert d["size"] == s.size and d["encoding_size"] == s.encoding_size
    assert list(d["decisions"]) == list(s.decisions)
    assert s.is_finite == (s.size is not None) == isinstance(s, FiniteSpace)


@pytest.mark.parametrize("space_case", space_params("no-metrics"), indirect=True)
def test_a_space_built_from_a_table_holds_none_of_its_metrics(space_case):
    """Algorithms get the space, so it must not carry the table's answers: no reference to the
    table or an oracle, and no array holding a metric column (the report metric above all)."""
    if space_case.table is None:
        pytest.skip("built without data")
    t = space_case.table
    values = np.asarray(t.values)
    # every metric at every fidelity: the seed means and each seed's values
    columns = [t.column(m, f) for f in t.fidelities for m in t.metrics]
    columns += [values[:, s, f, m] for s in range(len(t.seeds)) for f in range(len(t.fidelities))
                for m in range(len(t.metrics))]
    for obj in check.reachable(space_case.space):
        assert obj is not t and not isinstance(obj, (Table, Oracle))
        if isinstance(obj, np.ndarray) and obj.dtype.kind == "f" and obj.size:
            assert not np.shares_memory(obj, values)
            for col in columns:
                assert not (obj.shape == col.shape and np.array_equal(obj, col, equal_nan=True))
                assert not (obj.ndim == 2 and obj.shape[0] == len(col)
                            and any(np.array_equal(obj[:, j], col, equal_nan=True) for j in range(obj.shape[1])))


# --- algorithms -----------------------------------------------------------------------------
#: hyper-parameters that keep each algorithm's learned machinery running within the default
#: run's small budgets (a tree fitted after 5 samples, a controller updated every 3); the slow
#: matrix runs the published defaults. An algorithm without an entry runs its defaults.
FAST: dict[str, dict[str, Any]] = {
    "evolution": {"population": 6, "sample_size": 3},
    "lanas": {"n_init": 5, "n_select": 3, "height": 2, "adam_epochs_first": 100, "adam_epochs_later": 30},
    "reinforce": {"hidden_size": 8, "batch_size": 3},
    "cadam": {"hidden": (8, 8, 8), "top_k": 4, "batch_size": 4, "eps_steps": 100,
              "max_cycles": 1},
    "nao": {"n_init": 5, "top_k": 3, "epochs": 2, "max_eta_steps": 5, "batch_size": 8, "emb_size": 8,
            "hidden_size": 8},
    "nases": {"pretrain_train": 300, "pretrain_test": 100, "layers": (16, 8, 4), "warmup": 3,
              "samples_per_update": 2},
    "tpe": {"n_startup": 5},
    "mlpnas": {"hidden_size": 8, "batch_size": 3},
}

ALGORITHMS = sorted(REGISTRY)


def algorithm_params(check: str, only=None) -> list:
    out = []
    for name in ALGORITHMS:
        if only is not None and not only(name):
            continue
        marks = [pytest.mark.xfail(reason=KNOWN[name, check], strict=True)] if (name, check) in KNOWN else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def multi_fidelity(name: str) -> bool:
    return bool(algorithm_class(name).uses_fidelities)


#: optional dependency group (an algorithm's ``extra``) -> the module it stands for
EXTRA_MODULES = {"learned": "torch"}


def importable(name: str) -> None:
    """Import the algorithm's module (a broken import fails) and the module of its optional
    dependency group: missing, the case skips, or fails under CI's REQUIRE_OPTIONAL."""
    cls = algorithm_class(name)
    if cls.extra is not None:
        require_module(EXTRA_MODULES[cls.extra])


TINY = TinySpace(invalid=TINY_HOLES)
#: report values: none is a search value, cost or training accuracy, each exact in float32
SENTINEL = 1_000_000.0


def tiny_oracle(fidelities=(1, 3, 9), kind="restart", served=None) -> TabularOracle:
    """The tiny table: architecture i at fidelity f has a validation score v_i (distinct, so
    one optimum) blurred by noise that shrinks as f grows, a report value SENTINEL + 1000 *
    (fidelity position) + i, a training time of f * u_i seconds (u_i in [5, 20]: trials
    finish out of order) and a training accuracy of score + 0.05.

    ``served``: the fidelities the oracle answers at (None: the highest only); its mirror
    twin, negated and minimised, is :func:`harness.check.minimised` of it."""
    n, top = TINY.size, max(fidelities)
    rng = np.random.default_rng(2024)
    v = 0.1 + 0.8 * rng.permutation(n) / n
    noise = rng.normal(0, 0.05, (n, len(fidelities)))
    per_sec = rng.uniform(5, 20, n)
    valid = np.stack([v + noise[:, j] * (1 - f / top) for j, f in enumerate(fidelities)], axis=1)
    report = SENTINEL + 1000 * np.arange(len(fidelities))[None, :] + np.arange(n)[:, None]
    cost = per_sec[:, None] * np.asarray(fidelities, dtype=np.float64)[None, :]
    values = np.stack([valid, report, cost, valid + 0.05], axis=-1)[:, None]
    table = Table("tiny", np.array([TINY.to_string(TINY.arch(i)) for i in range(n)]), ("0",), fidelities,
                  ("valid", "test", "time", "train"), values)
    return TabularOracle("tiny", table, TINY, search="valid", report="test", cost="time", train="train",
                         fidelities=served, fidelity_kind=kind)


def oracle_for(name: str) -> TabularOracle:
    """The tiny table as ``name`` needs it: every fidelity for multi-fidelity algorithms."""
    return tiny_oracle(served=(1, 3, 9) if multi_fidelity(name) else None)


def subject(name: str, params: dict | None = None) -> check.Subject:
    """Algorithm ``name`` with :data:`FAST`'s hyper-parameters (``params``: others; {} the
    published defaults)."""
    return check.Subject.of(name, FAST.get(name, {}) if params is None else params)


def run(name: str, oracle: Oracle, seed: int = 0, params: dict | None = None, **settings):
    """One run through the runner; it must neither fail nor be stopped as stuck (repeats are
    free and told again; a run stopped for asking only known architectures max_repeats
    (10,000) times in a row is an algorithm that cannot go on): :func:`harness.check.run`."""
    return check.run(subject(name, params), oracle, seed, **settings)


def Watch(monkeypatch, name: str) -> check.Watch:
    """What algorithm ``name`` is asked and told during the test (:class:`harness.check.Watch`)."""
    return check.Watch(algorithm_class(name)).install(monkeypatch.setattr)


def assert_check_passes(name: str, check_name: str, oracle: Oracle, **settings) -> check.Outcome:
    """The library check ``check_name`` (:mod:`harness.check`, what ``nas-harness check`` runs)
    passes for ``name`` with FAST's hyper-parameters on ``oracle``."""
    ctx = check.Context(subject(name), check.Settings(**settings), oracle)
    out = check.run_check(ctx, check_name)
    assert out.status == check.PASS, out.reason
    return out


@pytest.mark.parametrize("name", algorithm_params("determinism"))
def test_same_seed_same_trajectory_another_seed_another(name):
    importable(name)
    assert_check_passes(name, "determinism", oracle_for(name), budget=12)


@pytest.mark.parametrize("name", algorithm_params("global-rng"))
def test_the_global_generators_do_not_change_a_run(name):
    """Python's, numpy's and torch's global generators seeded otherwise: the same run."""
    importable(name)
    assert_check_passes(name, "global-rng", oracle_for(name), budget=12)


def assert_told_exactly_the_search_metric(oracle: TabularOracle, watch: check.Watch, run_index: int = -1,
                                          negated: bool = False, sentinels: bool = False) -> None:
    """Every observation told is the search score (negated for a minimised oracle), cost and
    training accuracy of the trial's architecture at its fidelity; with ``sentinels`` (the
    tiny table, whose report values are no other value's), none is a report value."""
    tells = watch.tells[run_index]
    assert tells
    top, t = oracle.fidelities.max, oracle.table
    report = set()
    if sentinels:
        for f in oracle.fidelities.values:
            report |= set(oracle.table.column(oracle.report_metric, f).tolist())
    for what, obs in tells:
        assert type(obs) is Observation
        arch, fid = (what.arch, what.fidelity) if watch.trial_aware else (what, top)
        i = oracle.space.index(arch)
        # read from the table, not through the oracle's own query code
        value = float(t.column(oracle.search_metric, fid)[i])
        assert obs.value == (-value if negated else value)
        for got, metric in ((obs.cost, oracle.cost_metric), (obs.train, oracle.train_metric)):
            want = None if metric is None else float(t.column(metric, fid)[i])
            assert got == want or (want != want and got != got), (metric, got, want)   # NaN: NaN
        assert not ({obs.value, obs.cost, obs.train, -obs.value} & report)


@pytest.mark.parametrize("name", algorithm_params("no-test-metric"))
def test_no_test_metric_reaches_the_algorithm(name, monkeypatch):
    importable(name)
    watch = Watch(monkeypatch, name)
    oracle = oracle_for(name)
    run(name, oracle, budget=15, workers_per_run=2)
    assert watch.spaces[-1] is oracle.space          # the space, never the oracle or its table
    assert_told_exactly_the_search_metric(oracle, watch, sentinels=True)
    sentinels = np.unique(np.asarray(oracle.table.values)[..., oracle.table.metric_index("test")])
    assert check.sentinel_in(watch.algos[-1], sentinels) is None
    # and with the report column shuffled, the same run (harness.check's behavioural test)
    assert_check_passes(name, "no-test-metric", oracle, budget=15)


@pytest.mark.parametrize("name", algorithm_params("both-directions"))
def test_a_minimised_mirror_table_gives_the_same_run(name, monkeypatch):
    """An algorithm sees only scores to maximise, so on the table negated and minimised it must
    ask exactly what it asks on the table maximised, and the runner must find the optimum at
    the same query; the records keep each table's own values and best-so-far follows the
    direction."""
    importable(name)
    watch = Watch(monkeypatch, name)
    up = oracle_for(name)
    down = check.minimised(up)
    assert up.optimum.identities == down.optimum.identities
    # a budget of queries, so multi-fidelity algorithms, whose evaluations at low fidelities
    # count, get to the top fidelity
    settings = dict(until_optimum=True, budget_kind="queries", budget=6 * TINY.size)
    a, sa = run(name, up, seed=1, **settings)
    b, sb = run(name, down, seed=1, **settings)
    assert trajectory(a) == trajectory(b)
    np.testing.assert_array_equal(b["search"], -a["search"])
    np.testing.assert_array_equal(b["report"], -a["report"])
    np.testing.assert_array_equal(b["best_search"], -a["best_search"])
    np.testing.assert_array_equal(b["incumbent_report"], -a["incumbent_report"])
    for key in ("reached_optimum", "samples_to_optimum"):
        assert sa[key] == sb[key]
    told_up = [obs for _, obs in watch.tells[0]]
    told_down = [obs for _, obs in watch.tells[1]]
    assert told_down == told_up
    assert_told_exactly_the_search_metric(down, watch, 1, negated=True, sentinels=True)


def assert_fidelity_requests_are_served(oracle: TabularOracle, watch: check.Watch, name: str) -> None:
    problem = check.fidelity_problem(oracle, watch, multi_fidelity(name))
    assert problem is None, f"{name}: {problem}"


def fidelity_cases() -> list:
    """(algorithm, fidelity kind): multi-fidelity algorithms on restart and prefix tables,
    the others on one (where they must ask no fidelity at all)."""
    out = []
    for p in algorithm_params("fidelity-requests"):
        name = p.values[0]
        for kind in ("restart", "prefix") if multi_fidelity(name) else ("restart",):
            out.append(pytest.param(name, kind, marks=p.marks, id=f"{name}-{kind}"))
    return out


@pytest.mark.parametrize("name, kind", fidelity_cases())
def test_fidelity_requests_are_served_and_continue_earlier_trials(name, kind, monkeypatch):
    importable(name)
    watch = Watch(monkeypatch, name)
    fids = (1, 2, 4, 8, 16) if kind == "prefix" else (1, 3, 9)
    mf = multi_fidelity(name)
    oracle = tiny_oracle(fidelities=fids, kind=kind, served=fids if mf else None)
    # 20 evaluations take successive halving's first bracket (9 + 3 + 1 on either ladder) to
    # its continuations; a plain algorithm needs fewer to show it asks no fidelity
    run(name, oracle, budget=20 if mf else 12)
    assert_fidelity_requests_are_served(oracle, watch, name)


@pytest.fixture(scope="module")
def nb201_all(nb201_data_dir):
    from oracles.registry import load_oracle
    with data_env(nb201_data_dir):
        return {"top": load_oracle("nb201/cifar10"), "all": load_oracle("nb201/cifar10:fidelities=all")}


@pytest.mark.parametrize("name", algorithm_params("fidelity-requests-nb201", only=multi_fidelity))
def test_fidelity_requests_on_nb201_12_and_200_epochs(name, nb201_all, monkeypatch):
    importable(name)
    watch = Watch(monkeypatch, name)
    oracle = nb201_all["all"]
    assert oracle.fidelities.values == (12, 200)
    records, summary = run(name, oracle, budget=60, workers_per_run=4)
    assert_fidelity_requests_are_served(oracle, watch, name)
    assert_told_exactly_the_search_metric(oracle, watch)
    assert summary["n_distinct"] == 60 and summary["stopped"] is None


@pytest.mark.parametrize("name", algorithm_params("workers"))
def test_four_workers_tell_out_of_order_and_the_run_completes(name, monkeypatch):
    importable(name)
    watch = Watch(monkeypatch, name)
    oracle = oracle_for(name)
    a, sa = run(name, oracle, seed=2, budget=15, workers_per_run=4)
    b, _ = run(name, oracle, seed=2, budget=15, workers_per_run=4)
    assert trajectory(a) == trajectory(b)
    assert sa["stopped"] is None and sa["n_distinct"] == 15
    assert a["trial"].tolist() != sorted(a["trial"].tolist()), "every result came back in ask order"
    # every trial told once, with what was asked for it
    asks = watch.asks[0]
    assert sorted(a["trial"].tolist()) == list(range(len(asks)))
    for (what, _), k in zip(watch.tells[0], a["trial"].tolist()):
        arch = what.arch if watch.trial_aware else what
        assert oracle.space.identity(arch) == oracle.space.identity(asked(asks[k])[0])


# --- failed results (issue 18: a diverged cell is a failed result the algorithm is told) -----
#: the failing-cells test: architectures per run and seeds (30 x 4 = 120 per algorithm)
FAILED_BUDGET, FAILED_SEEDS = 30, 4


def failing_oracle(oracle: TabularOracle) -> tuple[TabularOracle, np.ndarray]:
    """Test fixture, not a benchmark: ``oracle``'s NB201 table as a *minimised* error in
    percent, ``100 (1 - accuracy)`` (scores told are negative, about -13 for a median cell as
    NAS-Bench-NLP's are about -4.4 to -11, so a failure taken for ``0.0`` would beat every
    real result by more than an exploration bonus), where every cell with ``avg_pool_3x3`` on the first or the last edge
    (tokens 0 and 5 equal to 1: 36 % of the cells, as structured as NAS-Bench-NLP's diverged
    cells and with the same median accuracy as the rest) answers ``+inf`` at every fidelity,
    a failed training. Returns the oracle and the failed mask by architecture index."""
    t, space = oracle.table, oracle.space
    tokens = np.asarray(space.tokens_all())
    failed = (tokens[:, 0] == 1) | (tokens[:, 5] == 1)
    rows = np.array([space.index(space.parse(str(a))) for a in t.archs])
    values = np.array(t.values, dtype=np.float64)
    search = t.metric_index(oracle.search_metric)
    assert np.nanmax(values[..., search]) <= 1.0      # accuracies as fractions
    values[..., search] = 100.0 * (1.0 - values[..., search])    # error in percent
    values[failed[rows], :, :, search] = np.inf
    mirror = check.copy_oracle(oracle, Table(t.name, t.archs, t.seeds, t.fidelities, t.metrics, values,
                                             t.columns, t.meta), direction="min")
    return mirror, failed


def test_a_failed_result_is_the_worst_told_so_far_and_held_back_before_any():
    """The rule every algorithm applies (:class:`algorithms.base.FailedResults`)."""
    from algorithms.base import FailedResults
    f, inf = FailedResults(), float("inf")
    assert f.tell(-inf, "a") == (None, []) and f.tell(float("nan"), "b") == (None, [])
    assert f.n_held == 2
    assert f.tell(-3.0, "c") == (-3.0, [("a", -3.0), ("b", -3.0)])       # released, in order
    assert f.tell(-inf, "d") == (-3.0, [])
    assert f.tell(-5.0, "e") == (-5.0, []) and f.tell(inf, "f") == (-5.0, [])
    assert f.tell(-1.0, "g") == (-1.0, []) and f.tell(-inf, "h") == (-5.0, [])
    assert (f.n_failed, f.n_held, f.worst) == (5, 0, -5.0)


@pytest.mark.parametrize("name", algorithm_params("failed-results"))
def test_failed_results_are_the_worst_and_never_end_a_run(name, nb201_all):
    """Told failed results (``+inf`` loss) for 36 % of NB201's cells, every algorithm runs to its
    budget without an exception on every seed, and does not prefer failed cells: over
    FAILED_SEEDS seeds it asks them no more often than random search does (the failed fraction
    of the table), one-sided binomial test at 0.1 %. An algorithm that takes a failure for 0.0
    (better than every negated loss), retries it for free or crashes on -inf fails here."""
    from scipy.stats import binom
    importable(name)
    oracle, failed = failing_oracle(nb201_all["all" if multi_fidelity(name) else "top"])
    asked_failed = asked_total = 0
    for seed in range(FAILED_SEEDS):
        records, summary = run(name, oracle, seed=seed, budget=FAILED_BUDGET)
        assert summary["n_distinct"] == FAILED_BUDGET
        first = ~np.asarray(records["repeat"], dtype=bool)
        idx = np.unique(np.asarray(records["arch_index"])[first])
        asked_failed += int(failed[idx].sum())
        asked_total += len(idx)
    p = float(failed.mean())
    assert asked_failed > 0, "no failed cell asked: the fixture does not test anything"
    tail = float(binom.sf(asked_failed - 1, asked_total, p))
    assert tail >= 1e-3, (f"{name} asked {asked_failed} failed cells of {asked_total} "
                          f"({asked_failed / asked_total:.0%}); random search asks {p:.0%} (P = {tail:.1e})")


def done_cases() -> list:
    """(algorithm, workers): one and four workers; an algorithm known to break the contract
    with one worker breaks it with four, and runs that case under -m slow only."""
    out = []
    for p in algorithm_params("done"):
        name = p.values[0]
        for workers in (1, 4):
            slow = (workers > 1 and p.marks) or (name, "done") in SLOW_KNOWN
            marks = list(p.marks) + ([pytest.mark.slow] if slow else [])
            out.append(pytest.param(name, workers, marks=marks, id=f"{name}-{workers}"))
    return out


@pytest.mark.parametrize("name, workers", done_cases())
def test_done_ends_the_run_on_an_exhausted_space(name, workers):
    """Given far more queries than the space has architectures (40 per architecture), the
    run ends when the algorithm answers DONE, with every architecture evaluated: never a
    StopIteration or another error, never stopped as stuck on repeats, never spinning on
    known architectures until the budget runs out. (Multi-fidelity algorithms may end
    with architectures that never reached the top fidelity: ASHA is done when every
    architecture has started and nothing can be promoted.)"""
    importable(name)
    out = assert_check_passes(name, "stopping", oracle_for(name), stopping_size=TINY.size, stopping_workers=(workers,))
    assert f"a {TINY.size}-architecture table" in out.reason


@pytest.mark.slow
@pytest.mark.parametrize("name", algorithm_params("resume"))
def test_a_run_after_a_killed_one_equals_it_in_a_fresh_process(name, nb201_data_dir):
    """What resuming an experiment relies on: no state outlives a run (the run is recomputed
    in a new process; :func:`harness.check.check_resume`). A real table, since the fresh
    process builds the oracle from its name."""
    importable(name)
    spec = "nb201/cifar10:fidelities=all" if multi_fidelity(name) else "convnet-digits"
    with data_env(nb201_data_dir):
        out = check.run_check(check.Context(subject(name), check.Settings(oracle=spec, budget=12)), "resume")
    assert out.status == check.PASS, out.reason


# --- the slow matrix: published defaults on NAS-Bench-201, every algorithm on every space -----
#: budgets of the slow NB201 runs with published defaults (NASES: about a second a query)
# MLPNAS: the paper's 10 controller epochs x 10 networks end the run (DONE) at 100
SLOW_BUDGET = {"nases": 25, "lanas": 120, "mlpnas": 100}


@pytest.mark.slow
@pytest.mark.parametrize("name", algorithm_params("nb201-defaults"))
def test_published_defaults_on_nb201(name, nb201_all, monkeypatch):
    """With its published defaults on nb201/cifar10 (multi-fidelity: 12 and 200 epochs): the
    same seed replays, another differs; told exactly the validation accuracy; the minimised
    mirror replays; four workers complete; a normal run is never stopped as stuck."""
    importable(name)
    watch = Watch(monkeypatch, name)
    oracle = nb201_all["all" if multi_fidelity(name) else "top"]
    budget = SLOW_BUDGET.get(name, 200)
    a, sa = run(name, oracle, seed=0, params={}, budget=budget)
    b, _ = run(name, oracle, seed=0, params={}, budget=budget)
    c, _ = run(name, oracle, seed=1, params={}, budget=budget)
    assert trajectory(a) == trajectory(b) and a["arch_id"].tolist() != c["arch_id"].tolist()
    assert sa["stopped"] is None and sa["n_distinct"] == budget
    assert_told_exactly_the_search_metric(oracle, watch, 0)
    assert_fidelity_requests_are_served(oracle, watch, name)
    d, _ = run(name, check.minimised(oracle), seed=0, params={}, budget=budget)
    assert trajectory(d) == trajectory(a)
    np.testing.assert_array_equal(d["search"], -a["search"])
    assert [o for _, o in watch.tells[-1]] == [o for _, o in watch.tells[0]]
    _, sw = run(name, oracle, seed=0, params={}, budget=budget, workers_per_run=4)
    assert sw["stopped"] is None and sw["n_distinct"] == budget


def table_space_names() -> list[str]:
    return ["tiny-table", "nb201", "nb101-table", "convnet-digits", "convnet-subset", "convnet-rows"]


@pytest.mark.slow
@pytest.mark.parametrize("space", table_space_names())
@pytest.mark.parametrize("name", algorithm_params("every-space", only=lambda n: not multi_fidelity(n)))
def test_every_algorithm_on_every_table_space(name, space, nb201_data_dir, tmp_path_factory, monkeypatch):
    """Each plain algorithm on each table-backed space: the run completes, replays for its seed
    and is told exactly the search metric."""
    from oracles.registry import load_oracle
    importable(name)
    if space == "tiny-table":
        oracle = tiny_oracle()
    elif space == "nb201":
        with data_env(nb201_data_dir):
            oracle = load_oracle("nb201/cifar10")
    elif space == "nb101-table":
        oracle = load_oracle("nb101", shared=nb101_fixture_table(tmp_path_factory))
    elif space == "convnet-digits":
        oracle = load_oracle("convnet-digits")
    elif space == "convnet-subset":
        t = convnet_subset_table()
        oracle = load_oracle(t.name, shared=t)
    else:
        t = convnet_rows_table(tmp_path_factory)
        oracle = load_oracle(t.name, shared=t)
    watch = Watch(monkeypatch, name)
    # half the space: on the 25-model NB101 fixture a mutation that lands on a row is rare
    budget = min(20, oracle.space.size // 2)
    a, sa = run(name, oracle, seed=0, budget=budget)
    b, _ = run(name, oracle, seed=0, budget=budget)
    assert trajectory(a) == trajectory(b)
    assert sa["stopped"] is None and sa["n_distinct"] == budget
    assert_told_exactly_the_search_metric(oracle, watch, 0)
