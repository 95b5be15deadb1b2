"""NAS-Bench-NLP as an oracle (issue 18): the canonical form of recipe graphs, the merge and
divergence rules of the importer, prefix fidelities with measured seconds, the space's moves
and representations, and (under ``-m slow``) the full table: its counts, the optimum (the
hand-written LSTM, validation perplexity 82.71), the issue's anchors and random search's
(N + 1) / 2 samples to the optimum.

The default run imports a subset of the shared file (about 500 ids chosen to hold every case:
the vanilla RNN's 28 ids, the LSTM, cells whose runs partly diverged, cells that diverged
in several runs, runs that diverged with no epoch logged, after a finite log, or at a NaN
epoch); expectations are recomputed from the CSV with pandas, not through the importer.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, require
from oracles.errors import CorruptData, InvalidArchitecture
from oracles.nbnlp_space import (DECISIONS, ENCODING_SIZE, N_NEIGHBOURS, NBNLPSpace, canonical,
                                 canonical_serialisation, encode_tokens, nearest_cells, parse_recipe,
                                 recipe_of_tokens, tokens_of_form, wl_features)

NBNLP_FILE = SHARED_DATA / "nbnlp" / "nbnlp_ptb.csv.gz"
LSTM = 1000001
RNN = 1000000
#: cells (given by one of their ids) whose runs partly diverged, one diverged in two runs,
#: runs with no epoch logged, a run with a NaN at epoch 46, one stopped by a range error after
#: 37 finite epochs (found in the shared file; the tests check each is what it says)
SOME_DIVERGED = (1010094, 2005300, 2005881, 2007772, 2008473, 1000257, 1001477, 2003595)
ALL_DIVERGED_TWICE = (1003403, 2010879)
NO_EPOCH_LOGGED = (1000042, 1002130)
NAN_AT_46 = 1003911
RANGE_ERROR_AFTER_37 = 1005337


def rnn(x="x", h="h_prev_0", lin="f"):
    return {lin: {"op": "linear", "input": [x, h]}, "h_new_0": {"op": "activation_tanh", "input": [lin]}}


def ident(recipe) -> str:
    return canonical(recipe)[0]


# --- the canonical form ------------------------------------------------------------------------
def test_names_and_the_order_of_symmetric_inputs_do_not_matter():
    assert ident(rnn()) == ident(rnn(lin="anything")) == ident(rnn(x="h_prev_0", h="x"))


def test_blend_inputs_are_ordered_and_its_gate_matters():
    base = {"a": {"op": "linear", "input": ["x"]}, "b": {"op": "linear", "input": ["h_prev_0"]},
            "z": {"op": "activation_sigm", "input": ["a"]}}
    forms = {ident({**base, "h_new_0": {"op": "blend", "input": list(p)}}) for p in itertools.permutations(["z", "a", "b"])}
    assert len(forms) == 6
    # a symmetric operation of the same three inputs is one cell however they are listed
    sym = {ident({**base, "h_new_0": {"op": "linear", "input": list(p)}}) for p in itertools.permutations(["z", "a", "b"])}
    assert len(sym) == 1


def test_hidden_states_other_than_the_output_can_be_renumbered():
    def cell(k, j):
        return {"c": {"op": "linear", "input": ["x", "h_prev_0", f"h_prev_{k}"]},
                f"h_new_{k}": {"op": "activation_tanh", "input": ["c"]},
                "d": {"op": "elementwise_prod", "input": [f"h_new_{k}", f"h_prev_{j}"]},
                f"h_new_{j}": {"op": "activation_sigm", "input": ["d"]},
                "h_new_0": {"op": "elementwise_sum", "input": ["d", "c"]}}
    assert ident(cell(1, 2)) == ident(cell(2, 1))
    # a cell using state 2 alone is the one using state 1 alone
    one = {"c": {"op": "linear", "input": ["x", "h_prev_1"]}, "h_new_1": {"op": "activation_tanh", "input": ["c"]},
           "h_new_0": {"op": "activation_sigm", "input": ["c"]}}
    two = json.loads(json.dumps(one).replace("h_prev_1", "h_prev_2").replace("h_new_1", "h_new_2"))
    assert ident(one) == ident(two)
    # the output state is not a renumberable one
    zero = json.loads(json.dumps(one).replace("h_prev_1", "h_prev_0"))
    assert ident(zero) != ident(one)


def test_shared_and_separate_nodes_differ():
    shared = {"f": {"op": "linear", "input": ["x", "h_prev_0"]}, "t": {"op": "activation_tanh", "input": ["f"]},
              "h_new_0": {"op": "elementwise_prod", "input": ["t", "t2"]}, "t2": {"op": "activation_sigm", "input": ["f"]}}
    separate = {"f": {"op": "linear", "input": ["x", "h_prev_0"]}, "g": {"op": "linear", "input": ["x", "h_prev_0"]},
                "t": {"op": "activation_tanh", "input": ["f"]}, "t2": {"op": "activation_sigm", "input": ["g"]},
                "h_new_0": {"op": "elementwise_prod", "input": ["t", "t2"]}}
    assert ident(shared) != ident(separate)           # one weight matrix or two
    assert ident({**rnn(), "f": {"op": "linear", "input": ["x", "h_prev_0", "h_prev_1"]},
                  "h_new_1": {"op": "activation_tanh", "input": ["f"]}}) != ident(rnn())


def _symmetric_cells() -> list[dict]:
    """Cells with large automorphism groups: ten twin activations of one linear read by one
    linear (10! orderings without the twin rule), and a balanced tree of eight branches."""
    fan = {"l": {"op": "linear", "input": ["x", "h_prev_0"]},
           "h_new_0": {"op": "linear", "input": [f"t{k}" for k in range(10)]}}
    fan.update({f"t{k}": {"op": "activation_tanh", "input": ["l"]} for k in range(10)})
    tree = {"q0": {"op": "elementwise_sum", "input": ["p0", "p1"]}, "q1": {"op": "elementwise_sum", "input": ["p2", "p3"]},
            "h_new_0": {"op": "elementwise_sum", "input": ["q0", "q1"]}}
    for k in range(8):
        tree[f"l{k}"] = {"op": "linear", "input": ["x", "h_prev_0"]}
        tree[f"t{k}"] = {"op": "activation_tanh", "input": [f"l{k}"]}
    for j in range(4):
        tree[f"p{j}"] = {"op": "elementwise_prod", "input": [f"t{2 * j}", f"t{2 * j + 1}"]}
    return [fan, tree]


def test_highly_symmetric_cells_get_one_form_however_written():
    rng = random.Random(5)
    for cell in _symmetric_cells():
        own = ident(cell)
        for _ in range(5):
            assert ident(_relabelled(cell, rng)) == own
    fan, tree = _symmetric_cells()
    # one twin read twice by the linear is another cell
    twice = dict(fan, h_new_0={"op": "linear", "input": ["t0"] * 2 + [f"t{k}" for k in range(2, 10)]})
    assert ident(twice) != ident(fan)
    # swapping two leaves' partners in the tree is the same cell; moving a branch is not
    swapped = dict(tree, p0={"op": "elementwise_prod", "input": ["t0", "t2"]},
                   p1={"op": "elementwise_prod", "input": ["t1", "t3"]})
    assert ident(swapped) == ident(tree)
    moved = dict(tree, p1={"op": "elementwise_prod", "input": ["t2", "p0"]})
    assert ident(moved) != ident(tree)


def test_invalid_recipes_are_refused():
    for bad in ({}, {"f": {"op": "linear", "input": ["x"]}},                          # no output
                {"h_new_0": {"op": "conv", "input": ["x"]}},                          # unknown op
                {"h_new_0": {"op": "blend", "input": ["x", "h_prev_0"]}},             # arity
                {"h_new_0": {"op": "activation_tanh", "input": ["nowhere"]}},         # dangling input
                {"a": {"op": "activation_tanh", "input": ["h_new_0"]},
                 "h_new_0": {"op": "activation_tanh", "input": ["a"]}},               # cycle
                {"x": {"op": "activation_tanh", "input": ["h_prev_0"]},
                 "h_new_0": {"op": "activation_tanh", "input": ["x"]}}):              # a node named x
        with pytest.raises(InvalidArchitecture):
            canonical(bad)


def _relabelled(recipe: dict, rng: random.Random) -> dict:
    """The same cell written another way: nodes renamed, listed in another order, symmetric
    inputs shuffled, hidden states 1..k renumbered."""
    states = sorted({int(n.rsplit("_", 1)[1]) for n in json.dumps(recipe).replace('"', " ").split()
                     if n.startswith(("h_prev_", "h_new_")) and n.rsplit("_", 1)[1].isdigit()} - {0})
    perm = dict(zip(states, rng.sample(states, len(states))))
    names = {n: (n if n == "h_new_0" else f"h_new_{perm[int(n[6:])]}" if n.startswith("h_new_")
                 else f"node{rng.randrange(10 ** 9)}_{k}") for k, n in enumerate(recipe)}

    def name(i):
        if i.startswith("h_prev_") and int(i[7:]) in perm:
            return f"h_prev_{perm[int(i[7:])]}"
        return names.get(i, i)

    out = {}
    items = list(recipe.items())
    rng.shuffle(items)
    for n, node in items:
        inputs = [name(i) for i in node["input"]]
        if node["op"] != "blend":
            rng.shuffle(inputs)
        out[names[n]] = {"op": node["op"], "input": inputs}
    return out


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(require(NBNLP_FILE))


def test_identity_survives_every_relabelling_of_tabulated_recipes(raw):
    rng = random.Random(0)
    sample = raw.sample(300, random_state=1)
    for text in sample.recipe:
        recipe = json.loads(text)
        own = ident(recipe)
        for _ in range(3):
            assert ident(_relabelled(recipe, rng)) == own


def test_string_form_and_tokens_give_the_cell_back(raw):
    for text in raw.recipe.iloc[:200]:
        form = canonical_serialisation(json.loads(text))
        h, s = canonical(json.loads(text))
        assert canonical(parse_recipe(s)) == (h, s)
        assert canonical(parse_recipe(text)) == (h, s)
        assert canonical(recipe_of_tokens(tokens_of_form(form))) == (h, s)


def _graph(recipe):
    """The recipe as a networkx DiGraph with node labels (op, output role) and edge labels
    (input position for blend, else none), hidden states 1..k unlabelled by index but tied
    to their h_new_k by an edge: an independent statement of what "the same cell" means."""
    nx = pytest.importorskip("networkx")
    g = nx.MultiDiGraph()
    for n, node in recipe.items():
        role = "out" if n == "h_new_0" else "state" if n.startswith("h_new_") else ""
        g.add_node(n, label=(node["op"], role))
        for p, i in enumerate(node["input"]):
            if i not in recipe:
                g.add_node(i, label=("input", "x" if i == "x" else "h0" if i == "h_prev_0" else "state"))
            g.add_edge(i, n, pos=p if node["op"] == "blend" else -1)
    for n in recipe:
        if n.startswith("h_new_") and n != "h_new_0" and f"h_prev_{n[6:]}" in g:
            g.add_edge(n, f"h_prev_{n[6:]}", pos="recurrent")
    return g


def _isomorphic(a, b) -> bool:
    from networkx.algorithms.isomorphism import MultiDiGraphMatcher
    return MultiDiGraphMatcher(_graph(a), _graph(b), node_match=lambda x, y: x["label"] == y["label"],
                               edge_match=lambda x, y: sorted(d["pos"] for d in x.values()) ==
                               sorted(d["pos"] for d in y.values())).is_isomorphic()


def test_merged_recipes_are_isomorphic_graphs(subset_table, raw):
    recipes = raw.set_index("recipe_id").recipe
    for ids in subset_table.columns["recipe_ids"]:
        members = [json.loads(recipes[int(i)]) for i in ids.split(",")]
        for other in members[1:]:
            assert _isomorphic(members[0], other)


def test_recipes_told_apart_are_not_isomorphic(raw):
    """Pairs of distinct identities that a coarse invariant cannot separate (same number of
    nodes of each operation, same parameter count) are checked with networkx."""
    sample = raw.iloc[:1500]
    by_key: dict = {}
    for rid, params, text in zip(sample.recipe_id, sample.num_params, sample.recipe):
        r = json.loads(text)
        key = (params, tuple(sorted(node["op"] for node in r.values())))
        by_key.setdefault(key, {}).setdefault(ident(r), r)
    pairs = [(a, b) for cells in by_key.values() for a, b in itertools.combinations(cells.values(), 2)]
    assert len(pairs) > 50
    for a, b in pairs[:400]:
        assert not _isomorphic(a, b)


def is_rnn(text: str) -> bool:
    """The vanilla RNN read off a recipe without the canonical form: two nodes, a linear of x
    and h_prev_0 feeding a tanh that is h_new_0."""
    r = json.loads(text)
    if len(r) != 2 or r.get("h_new_0", {}).get("op") != "activation_tanh":
        return False
    (lin,) = r["h_new_0"]["input"]
    return r.get(lin, {}).get("op") == "linear" and sorted(r[lin]["input"]) == ["h_prev_0", "x"]


def test_every_vanilla_rnn_id_is_one_cell(subset_table, raw):
    ids = sorted(raw.recipe_id[raw.recipe.map(is_rnn)])
    assert len(ids) == 28 and RNN in ids
    row = [i for i, s in enumerate(subset_table.columns["recipe_ids"]) if str(RNN) in s.split(",")]
    assert len(row) == 1
    assert sorted(map(int, subset_table.columns["recipe_ids"][row[0]].split(","))) == ids


def test_cells_with_different_parameter_counts_are_never_merged(tmp_path, raw):
    """The importer refuses a file where one canonical form has two parameter counts (it
    would mean the form merges different cells); on the real file it never happens."""
    from oracles.importers.nbnlp import build_table
    rows = raw[raw.recipe_id.isin([RNN, 1000451, LSTM])].copy()
    rows.loc[rows.recipe_id == 1000451, "num_params"] += 400
    extra = raw[raw.status == "OK"].iloc[5:20]
    path = tmp_path / "nbnlp.csv.gz"
    with gzip.open(path, "wt", newline="") as fh:
        pd.concat([rows, extra]).to_csv(fh, index=False)
    with pytest.raises(CorruptData, match="parameter counts"):
        build_table(path)


# --- the subset table ------------------------------------------------------------------------------
def _subset_ids(raw) -> list[int]:
    rnn_ids = raw.recipe_id[raw.recipe.map(is_rnn)]
    chosen = set(raw.recipe_id.iloc[:400]) | set(rnn_ids) | {LSTM, NAN_AT_46, RANGE_ERROR_AFTER_37}
    chosen |= set(SOME_DIVERGED) | set(ALL_DIVERGED_TWICE) | set(NO_EPOCH_LOGGED)
    return sorted(int(i) for i in chosen)


@pytest.fixture(scope="module")
def subset_table(raw):
    from oracles.importers.nbnlp import build_table
    return build_table(require(NBNLP_FILE), ids=_subset_ids(raw))


@pytest.fixture(scope="module")
def subset_dir(subset_table, tmp_path_factory):
    from oracles.table import save_table
    d = tmp_path_factory.mktemp("nbnlp-data")
    save_table(subset_table, d / "nbnlp")
    return d


@pytest.fixture
def oracle_of(subset_dir, monkeypatch):
    """``load_oracle`` on the subset table (the registry's space kind ``nbnlp``)."""
    from oracles import registry
    monkeypatch.setenv("NAS_HARNESS_DATA", str(subset_dir))
    return registry.load_oracle


def _curve(text) -> np.ndarray:
    return np.array([float(v) for v in text.split(";")]) if isinstance(text, str) else np.zeros(0)


def _row(table, rid) -> int:
    return next(i for i, s in enumerate(table.columns["recipe_ids"]) if str(rid) in s.split(","))


def _metric(table, rid, metric) -> np.ndarray:
    return np.asarray(table.values[_row(table, rid), 0, :, table.metrics.index(metric)])


def test_a_merged_cell_is_the_mean_of_its_finished_runs_losses(subset_table, raw):
    rows = raw[raw.recipe_id.isin(map(int, subset_table.columns["recipe_ids"][_row(subset_table, RNN)].split(",")))]
    assert len(rows) == 28 and (rows.status == "OK").all()
    for metric, col in (("valid_loss", "val_loss"), ("test_loss", "test_loss"), ("train_loss", "train_loss")):
        expected = np.mean(np.stack(rows[col].map(_curve)), axis=0)
        np.testing.assert_allclose(_metric(subset_table, RNN, metric), expected, rtol=1e-12)
    # perplexity of a merged cell = exp(mean loss), the geometric mean of the runs' perplexities
    ppl = np.exp(np.stack(rows.val_loss.map(_curve)))
    np.testing.assert_allclose(_metric(subset_table, RNN, "valid_ppl"), np.exp(np.mean(np.log(ppl), axis=0)))
    seconds = np.mean(np.cumsum(np.stack(rows.epoch_time_s.map(_curve)), axis=1), axis=0)
    np.testing.assert_allclose(_metric(subset_table, RNN, "train_time"), seconds, rtol=1e-12)
    k = _row(subset_table, RNN)
    assert (subset_table.columns["n_runs"][k], subset_table.columns["n_diverged"][k]) == (28, 0)


def test_diverged_runs_of_a_cell_with_finished_ones_are_left_out_and_counted(subset_table, raw):
    for rid in SOME_DIVERGED:
        k = _row(subset_table, rid)
        ids = list(map(int, subset_table.columns["recipe_ids"][k].split(",")))
        rows = raw[raw.recipe_id.isin(ids)]
        fin = rows[rows.status == "OK"]
        assert 0 < len(fin) < len(rows)
        assert subset_table.columns["n_diverged"][k] == len(rows) - len(fin)
        np.testing.assert_allclose(_metric(subset_table, rid, "valid_loss"),
                                   np.mean(np.stack(fin.val_loss.map(_curve)), axis=0), rtol=1e-12)
        div = _metric(subset_table, rid, "diverged")
        assert np.all(np.diff(div) >= 0) and div[-1] == pytest.approx((len(rows) - len(fin)) / len(rows))


def test_a_diverged_cell_fails_from_its_divergence_epoch_and_stops_paying(subset_table, raw):
    run = raw.set_index("recipe_id").loc[NAN_AT_46]
    val, times = _curve(run.val_loss), _curve(run.epoch_time_s)
    assert run.status != "OK" and len(val) == 46 and np.isnan(val[45]) and np.isfinite(val[:45]).all()
    for m in subset_table.metrics:
        v = _metric(subset_table, NAN_AT_46, m)
        if m in ("train_time", "diverged"):
            continue
        assert np.all(np.isfinite(v[:45])) and np.all(v[45:] == math.inf), m
    np.testing.assert_allclose(_metric(subset_table, NAN_AT_46, "valid_loss")[:45], val[:45])
    cost = _metric(subset_table, NAN_AT_46, "train_time")
    np.testing.assert_allclose(cost[:46], np.cumsum(times))
    assert np.all(cost[45:] == cost[45])          # training stopped at epoch 46
    np.testing.assert_array_equal(_metric(subset_table, NAN_AT_46, "diverged"), (np.arange(1, 51) >= 46) * 1.0)


def test_a_run_stopped_by_a_range_error_fails_at_the_next_epoch_charged_at_its_mean(subset_table, raw):
    run = raw.set_index("recipe_id").loc[RANGE_ERROR_AFTER_37]
    val, times = _curve(run.val_loss), _curve(run.epoch_time_s)
    assert "range" in run.status and len(val) == 37 and np.isfinite(val).all()
    v = _metric(subset_table, RANGE_ERROR_AFTER_37, "valid_loss")
    assert np.all(np.isfinite(v[:37])) and np.all(v[37:] == math.inf)
    cost = _metric(subset_table, RANGE_ERROR_AFTER_37, "train_time")
    assert cost[-1] == pytest.approx(times.sum() + times.mean())


def test_runs_with_no_epoch_logged_pay_one_estimated_epoch(subset_table, raw):
    for rid in NO_EPOCH_LOGGED:
        run = raw.set_index("recipe_id").loc[rid]
        assert run.epochs_logged == 0 and not isinstance(run.epoch_time_s, str)
        assert np.all(_metric(subset_table, rid, "valid_loss") == math.inf)
        cost = _metric(subset_table, rid, "train_time")
        # the importer's rule over the runs it read (here the subset's)
        read = raw[raw.recipe_id.isin(_subset_ids(raw))]
        same = read[(read.num_params == run.num_params) & read.epoch_time_s.map(lambda t: isinstance(t, str))]
        expected = np.median(same.epoch_time_s.map(lambda t: _curve(t)[0])) if len(same) else None
        if expected is not None:
            assert cost[0] == pytest.approx(expected)
        assert np.all(cost == cost[0]) and cost[0] > 0


def test_a_cell_diverged_in_several_runs_is_failed_where_none_is_finite(subset_table, raw):
    rows = raw[raw.recipe_id.isin(ALL_DIVERGED_TWICE)]
    assert (rows.status != "OK").all()
    assert subset_table.columns["n_runs"][_row(subset_table, ALL_DIVERGED_TWICE[0])] == 2
    vals = [_curve(t) for t in rows.val_loss]
    v = _metric(subset_table, ALL_DIVERGED_TWICE[0], "valid_loss")
    for e in range(50):
        alive = [c[e] for c in vals if e < len(c) and np.isfinite(c[e])]
        if alive:
            assert v[e] == pytest.approx(np.mean(alive))
        else:
            assert v[e] == math.inf


def test_report_is_the_test_loss_at_the_epoch_of_best_validation(subset_table, raw):
    run = raw.set_index("recipe_id").loc[LSTM]
    val, test = _curve(run.val_loss), _curve(run.test_loss)
    report = _metric(subset_table, LSTM, "test_loss_at_best_valid")
    best = _metric(subset_table, LSTM, "best_valid_loss")
    for e in range(50):
        k = int(np.argmin(val[:e + 1]))
        assert report[e] == test[k] and best[e] == val[k]
    assert report[-1] == 4.36581 and int(np.argmin(val)) == 39   # epoch 40 of the LSTM


def test_the_oracle_serves_prefix_fidelities_with_measured_seconds(oracle_of, subset_table, raw):
    o = oracle_of("nbnlp:fidelities=all")
    assert o.direction == "min" and o.fidelities.kind == "prefix"
    assert o.fidelities.values == tuple(range(1, 51))
    assert o.search_metric == "valid_loss" and o.report_metric == "test_loss_at_best_valid"
    lstm = o.space.parse(raw.set_index("recipe_id").recipe[LSTM])
    run = raw.set_index("recipe_id").loc[LSTM]
    for e in (1, 5, 17, 50):
        ev = o.query(lstm, fidelity=e)
        assert ev.observation.value == _curve(run.val_loss)[e - 1]
        assert ev.observation.cost == pytest.approx(_curve(run.epoch_time_s)[:e].sum())
        assert ev.observation.train is None       # a loss is not the accuracy NASES expects
    # the optimum: the hand-written LSTM, a cell of its own, validation perplexity 82.71
    assert o.optimum.identities == {lstm} and len(o.optimum.indices) == 1
    assert math.exp(o.optimum.value) == pytest.approx(82.707, abs=5e-3)
    # the test-search protocol is its own oracle and never the default
    t = oracle_of("nbnlp/test-search")
    assert t.search_metric == "test_loss" and o.checksum != t.checksum
    assert oracle_of("nbnlp").fidelities.values == (50,)


from algorithms.random_search import RandomSearch  # noqa: E402


class SpyRandom(RandomSearch):
    """Random search that keeps what it is told."""

    name = "spy-nbnlp"
    told: list = []

    def tell(self, arch, observation):
        SpyRandom.told.append((arch, observation.value))
        super().tell(arch, observation)


def test_a_diverged_cell_is_a_failed_evaluation_told_to_the_algorithm(oracle_of, subset_table, monkeypatch):
    """A run that draws diverged cells records them (+inf), pays their seconds, tells the
    algorithm -inf, and its best-so-far columns ignore them."""
    from algorithms import REGISTRY
    from harness.runner import RunConfig, run_one
    o = oracle_of("nbnlp")
    failed = {o.space.arch(int(i)) for i in np.flatnonzero(~np.isfinite(o.search_values))}
    assert len(failed) >= 5
    told = SpyRandom.told = []
    monkeypatch.setitem(REGISTRY, "spy-nbnlp", "test_nbnlp:SpyRandom")
    records, summary = run_one(RunConfig(algorithm="spy-nbnlp", oracle="nbnlp", budget=200), o, 3)
    assert summary.get("failed") is None
    bad = [v for a, v in told if a in failed]
    assert bad and all(v == -math.inf for v in bad)
    search = records["search"]
    assert np.isinf(search).sum() == len(bad)
    finite = np.where(np.isfinite(search), search, np.inf)
    np.testing.assert_array_equal(records["best_search"][np.isfinite(np.minimum.accumulate(finite))],
                                  np.minimum.accumulate(finite)[np.isfinite(np.minimum.accumulate(finite))])
    assert np.all(records["cost"] > 0) and np.all(np.isfinite(records["cost"]))


# --- the space ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def space(subset_table) -> NBNLPSpace:
    from oracles.nbnlp_space import space_from_table
    return space_from_table(subset_table)


def test_tokens_encode_and_strings_round_trip(space):
    enc = space.encode_all()
    assert enc.shape == (space.size, ENCODING_SIZE) and np.all(np.isfinite(enc))
    assert len({r.tobytes() for r in enc}) == space.size          # the encoding determines the cell
    tok = space.tokens_all()
    assert tok.shape == (space.size, len(DECISIONS)) and np.all(tok < np.array(DECISIONS))
    for i in range(0, space.size, 7):
        a = space.arch(i)
        assert space.from_tokens(space.tokens(a)) == a
        assert space.parse(space.to_string(a)) == a == space.parse(a)
        np.testing.assert_array_equal(space.encode(a), enc[i])
        np.testing.assert_array_equal(encode_tokens(np.array(space.tokens(a))[None])[0], enc[i])


def test_from_tokens_answers_the_nearest_tabulated_cell(space):
    rng = np.random.default_rng(0)
    tok = space.tokens_all()
    for _ in range(20):
        t = [int(rng.integers(d)) for d in DECISIONS]
        got = space.index(space.from_tokens(t))
        dist = (tok != np.array(t)).sum(axis=1)
        assert dist[got] == dist.min() and got == int(np.flatnonzero(dist == dist.min())[0])
    # a tabulated cell written in another slot order is that cell
    a = space.arch(3)
    rec = parse_recipe(space.to_string(a))
    assert space.parse(json.dumps({n: {"op": op, "input": list(i)} for n, (op, i) in reversed(rec.items())})) == a
    with pytest.raises(InvalidArchitecture):
        space.from_tokens(list(space.tokens(a))[:-1])
    with pytest.raises(InvalidArchitecture):
        space.parse("h_new_0=activation_tanh(n0);n0=linear(x,h_prev_0,h_prev_1);h_new_1=activation_sigm(n0)")


def test_neighbours_are_the_nearest_cells_by_wl_distance(space, subset_table):
    forms = [canonical_serialisation(parse_recipe(s)) for s in subset_table.columns["recipe"]]
    feats = [wl_features(f) for f in forms]
    # brute force: bags of subexpressions as Counters
    from collections import Counter
    bags = [Counter(f) for f in feats]
    nbr, dist = nearest_cells(feats, k=N_NEIGHBOURS)
    np.testing.assert_array_equal(nbr, subset_table.columns["neighbours"])
    for i in range(0, space.size, 25):
        d = np.array([sum((bags[i][f] - bags[j][f]) ** 2 for f in set(bags[i]) | set(bags[j]))
                      for j in range(space.size)])
        d[i] = np.iinfo(np.int64).max
        order = np.lexsort((np.arange(space.size), d))[:N_NEIGHBOURS]
        np.testing.assert_array_equal(nbr[i], order)
        np.testing.assert_array_equal(dist[i], d[order])
        # its own nearest first, then the cells that list it (the symmetric graph)
        listing = [j for j in range(space.size) if i in nbr[j] and j not in order]
        assert space.neighbours(space.arch(i)) == [space.arch(int(j)) for j in [*order, *listing]]
    rng = np.random.default_rng(1)
    a = space.arch(0)
    drawn = {space.mutate(a, rng) for _ in range(400)}
    assert drawn == set(space.neighbours(a))


def test_moves_follow_the_symmetric_nearest_neighbour_graph():
    """A cell nobody lists among its nearest (NAS-Bench-NLP's LSTM) is still a neighbour of the
    cells it lists: every cell can be reached by a mutation."""
    from oracles.nbnlp_space import symmetric_neighbours
    nearest = np.array([[1, 2], [2, 0], [0, 1], [0, 1]])    # row 3 is in nobody's list
    ptr, cols = symmetric_neighbours(nearest)
    rows = [list(cols[ptr[i]:ptr[i + 1]]) for i in range(4)]
    assert rows == [[1, 2, 3], [2, 0, 3], [0, 1], [0, 1]]
    for i, row in enumerate(rows):
        assert all(i in rows[j] for j in row)               # symmetric
        assert len(row) >= nearest.shape[1]
    rng = np.random.default_rng(0)
    # random lists without self-loops (duplicates within a row do not occur in nearest_cells)
    nb = np.stack([np.random.default_rng(i).choice(np.delete(np.arange(300), i), 4, replace=False)
                   for i in range(300)])
    ptr, cols = symmetric_neighbours(nb)
    for i in rng.integers(0, 300, 20):
        row = set(cols[ptr[i]:ptr[i + 1]].tolist())
        assert row == set(nb[i].tolist()) | {j for j in range(300) if i in nb[j]}


def test_the_space_holds_no_metric(space, subset_table):
    held = [v for v in vars(space).values() if isinstance(v, np.ndarray)]
    for m in range(len(subset_table.metrics)):
        col = np.asarray(subset_table.values[:, 0, -1, m])
        for arr in held:
            assert not (arr.dtype.kind == "f" and arr.shape == col.shape and np.array_equal(arr, col))


def test_import_command_writes_the_table(tmp_path, monkeypatch, raw):
    """`nas-harness oracles import nbnlp FOLDER` on a folder holding a subset file."""
    from harness.cli import main
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "nbnlp_ptb.csv.gz", "wt", newline="") as fh:
        raw.iloc[:60].to_csv(fh, index=False)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(tmp_path / "data"))
    assert main(["oracles", "import", "nbnlp", str(src)]) == 0
    from oracles.table import load_table
    t = load_table(tmp_path / "data" / "nbnlp")
    assert t.fidelities == tuple(range(1, 51)) and t.meta["counts"]["ids"] == 60
    assert [d["name"] for d in t.meta["oracles"]] == ["nbnlp", "nbnlp/test-search"]
    assert all(d["direction"] == "min" and d["fidelity_kind"] == "prefix" for d in t.meta["oracles"])
    assert main(["oracles", "import", "nbnlp", str(tmp_path / "nowhere")]) == 2


# --- the full table (slow) ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def full_table(tmp_path_factory):
    from oracles.importers.nbnlp import build_table
    from oracles.table import load_table, save_table
    d = tmp_path_factory.mktemp("nbnlp-full")
    save_table(build_table(require(NBNLP_FILE)), d / "nbnlp")
    return d, load_table(d / "nbnlp")


@pytest.mark.slow
def test_full_table_counts_and_optimum(full_table, raw):
    d, t = full_table
    c = t.meta["counts"]
    assert (c["ids"], c["finished_runs"], c["diverged_runs"]) == (14322, 11598, 2724)
    assert t.n_archs == c["cells"] == 12123 and c["cells_all_diverged"] == 2662
    assert int(np.sum(t.columns["n_runs"])) == 14322
    # parameter counts agree within every cell (the importer refuses otherwise) and the
    # cells' counts are those of their ids
    params = raw.set_index("recipe_id").num_params
    for ids, p in zip(t.columns["recipe_ids"], t.columns["num_params"]):
        assert {int(params[int(i)]) for i in ids.split(",")} == {int(p)}
    valid = np.asarray(t.values[:, 0, -1, t.metrics.index("valid_loss")])
    best = int(np.argmin(valid))
    assert t.columns["recipe_ids"][best] == str(LSTM)
    assert math.exp(valid[best]) == pytest.approx(82.707, abs=5e-3)
    assert np.sum(valid == valid[best]) == 1


@pytest.mark.slow
def test_full_table_merged_cells_are_isomorphic(full_table, raw):
    _, t = full_table
    recipes = raw.set_index("recipe_id").recipe
    for ids in t.columns["recipe_ids"]:
        members = ids.split(",")
        for other in members[1:]:
            assert _isomorphic(json.loads(recipes[int(members[0])]), json.loads(recipes[int(other)]))


@pytest.mark.slow
def test_the_issues_anchors(full_table):
    """Validation at epoch 5 ranks the finished cells like epoch 50 (Spearman about 0.88),
    and about 40 % of them have their best validation at epoch 50."""
    from scipy import stats
    _, t = full_table
    v = np.asarray(t.values[:, 0, :, t.metrics.index("valid_loss")])
    fin = np.asarray(t.columns["n_finished"]) > 0
    assert stats.spearmanr(v[fin, 4], v[fin, 49]).statistic == pytest.approx(0.88, abs=0.01)
    assert np.mean(np.argmin(v[fin], axis=1) == 49) == pytest.approx(0.40, abs=0.025)


@pytest.mark.slow
def test_random_search_needs_n_plus_one_over_two_samples(full_table, monkeypatch):
    """The harness's random search until the optimum, 300 seeds: samples to the optimum are
    uniform on 1..N (N = 12,123 cells, not 14,322 ids), mean (N + 1) / 2 = 6,062."""
    from scipy import stats
    from harness.runner import RunConfig, run_one
    from oracles import registry
    d, t = full_table
    monkeypatch.setenv("NAS_HARNESS_DATA", str(d))
    o = registry.load_oracle("nbnlp")
    n = o.space.size
    cfg = RunConfig(algorithm="random", oracle="nbnlp", until_optimum=True)
    samples = np.array([run_one(cfg, o, s)[1]["samples_to_optimum"] for s in range(300)], dtype=float)
    # the mean of 300 uniform draws on 1..N: sd N / sqrt(12 * 300); four of them
    assert abs(samples.mean() - (n + 1) / 2) < 4 * n / math.sqrt(12 * 300)
    assert stats.kstest(samples / n, "uniform").pvalue > 1e-3
