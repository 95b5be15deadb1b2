"""Collect a recurrent-cell table (LaNAS's LSTM-10K, on a corpus that exists offline).

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space" (LaNAS),
appendix 6.1: LSTM-10K is 10,000 cells "randomly sampled" from the recurrent space
(:mod:`oracles.recurrent_space`) and trained "following the exact same setup in [DARTS]" on
Penn Treebank, searched on test perplexity; the table was never released. This module
trains such cells as language models and writes a table the oracles load::

    # the shipped-style table: a random subset, character-level Shakespeare, on CPUs
    nas-harness collect recurrent --subset 1000 --seeds 2 --out WORK
    # the full LSTM-10K recipe: 10,000 cells, word-level PTB, DARTS's sizes, on a GPU
    nas-harness collect recurrent --preset lstm10k --corpus ptb --corpus-dir PTB_DIR \\
        --subset 10000 --seeds 1 --device cuda --workers 8 --out WORK

**The network** (DARTS's recurrent setup, Liu, Simonyan & Yang, "DARTS: Differentiable
Architecture Search", §2.1 and §3.2, scaled down by the recipe): token embedding of size
``hidden`` tied to the softmax weights; one recurrent layer whose step is the cell
(:mod:`oracles.recurrent_space`: input vertex ``s_0 = h + sigmoid(c) * (tanh(u) - h)`` with
``[c, u] = W_0 [x_t; h_{t-1}]``, then the cell's vertices in order, each the mean of its
inputs followed by ``relu(W m + b)`` or the identity, ``h_t`` = the output vertex); a
linear decoder to the vocabulary. Trained with truncated back-propagation through time:
the training stream is cut into ``batch_size`` parallel streams, each read ``bptt`` tokens
at a time, the hidden state carried from one window to the next and detached.

**The recipe** (:class:`RecurrentRecipe`): Adam with a per-step cosine decay to 0, gradient
norm clipping, a fixed number of training steps (not epochs: a few hundred windows already
rank cells, see docs/lstm-shakespeare.md), and evaluation of the mean cross-entropy on the
first ``eval_windows`` windows of the validation and test splits cut into ``eval_batch``
streams (so the evaluated text is spread evenly over every held-out play). The seed draws
the initial weights (``torch.manual_seed``) and where in the training text the streams
start (a rotation of the training split drawn with ``numpy.random.default_rng(seed)``).

**Metrics** (:data:`METRICS`, per cell and seed): ``train_loss`` (mean cross-entropy of the
last 10 % of training steps, nats per token) and ``train_ppl`` (its ``exp``), ``valid_loss`` / ``test_loss`` (nats per
token), ``valid_ppl`` / ``test_ppl`` (``exp`` of the losses: perplexity, minimised; at
character level ``exp(loss)`` is the per-character perplexity, bits per character being
``loss / ln 2``), ``train_time`` (CPU seconds of the training loop in the worker process, so
other load on a shared machine does not count), ``diverged`` (1.0 when a training loss
became non-finite: the run stops there and its losses and perplexities are ``+inf``, the
project's failed result, as NAS-Bench-NLP's diverged cells answer: an evaluated cell that
algorithms are told about, see :class:`algorithms.base.FailedResults`, never a missing
value nor an invented finite floor).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..recurrent_space import RecurrentCell

METRICS = ("train_loss", "train_ppl", "valid_loss", "valid_ppl", "test_loss", "test_ppl", "train_time",
           "diverged")


@dataclass(frozen=True)
class RecurrentRecipe:
    """One training recipe for recurrent cells.

    Parameters
    ----------
    hidden: hidden-state size, also the embedding size (tied weights, as DARTS).
    batch_size: parallel training streams.
    bptt: tokens per truncated back-propagation window (DARTS: 35).
    steps: training windows (optimizer steps).
    lr: peak Adam learning rate, decayed per step by a cosine to 0.
    clip: gradient-norm clipping (DARTS: 0.25 with SGD; larger with Adam's normalised steps).
    weight_decay: Adam's L2 penalty.
    eval_batch: parallel evaluation streams of the validation and test splits.
    eval_windows: evaluation windows of ``bptt`` tokens per stream (0: the whole split).
    """

    hidden: int = 64
    batch_size: int = 32
    bptt: int = 35
    steps: int = 300
    lr: float = 3e-3
    clip: float = 1.0
    weight_decay: float = 0.0
    eval_batch: int = 64
    eval_windows: int = 20

    def __post_init__(self):
        for name in ("hidden", "batch_size", "bptt", "steps", "eval_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.eval_windows < 0:
            raise ValueError("eval_windows must be >= 0")
        if not self.lr > 0 or not self.clip > 0 or self.weight_decay < 0:
            raise ValueError("lr and clip must be > 0 and weight_decay >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(optimizer="adam, per-step cosine decay to 0, gradient-norm clipping",
                 network="tied embedding/decoder of size hidden, one recurrent layer of the cell",
                 loss="cross-entropy (nats per token)",
                 init="torch default, torch.manual_seed(seed)",
                 data="training split rotated by numpy default_rng(seed), cut into batch_size streams")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecurrentRecipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def build_model(cell: RecurrentCell, vocab_size: int, hidden: int):
    """The language model of ``cell`` (module docstring); a ``torch.nn.Module`` whose
    ``forward(tokens (batch, time), h (batch, hidden)) -> (logits, h)``."""
    import torch
    import torch.nn as nn

    matrix = cell.as_numpy()
    n = cell.n_vertices
    preds = [tuple(int(p) for p in np.flatnonzero(matrix[:, v])) for v in range(n)]
    kinds = cell.ops

    class CellLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, hidden)
            self.w_x = nn.Linear(hidden, 2 * hidden)            # x_t part of W_0 (with the bias)
            self.w_h = nn.Linear(hidden, 2 * hidden, bias=False)  # h_{t-1} part of W_0
            self.fc = nn.ModuleDict({str(v): nn.Linear(hidden, hidden)
                                     for v in range(1, n - 1) if kinds[v] == "fc-relu"})
            self.decoder = nn.Linear(hidden, vocab_size)
            self.decoder.weight = self.embed.weight

        def step(self, px, h):
            c, u = torch.addmm(px, h, self.w_h.weight.t()).chunk(2, dim=-1)
            vals = [torch.lerp(h, torch.tanh(u), torch.sigmoid(c))]
            for v in range(1, n):
                ins = preds[v]
                m = vals[ins[0]]
                for p in ins[1:]:
                    m = m + vals[p]
                if len(ins) > 1:
                    m = m * (1.0 / len(ins))
                if v < n - 1 and kinds[v] == "fc-relu":
                    m = torch.relu(self.fc[str(v)](m))
                vals.append(m)
            return vals[-1]

        def forward(self, tokens, h):
            px = self.w_x(self.embed(tokens))   # every step's input projection in one product
            outs = []
            for t in range(tokens.shape[1]):
                h = self.step(px[:, t], h)
                outs.append(h)
            return self.decoder(torch.stack(outs, dim=1)), h

    return CellLM()


def count_params(cell: RecurrentCell, vocab_size: int, hidden: int) -> int:
    """Trainable parameters of :func:`build_model` (tied embedding counted once)."""
    n_fc = sum(op == "fc-relu" for op in cell.ops)
    return vocab_size * hidden + hidden * 2 * hidden + 2 * hidden + hidden * 2 * hidden \
        + n_fc * (hidden * hidden + hidden) + vocab_size


def _streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """``ids`` cut into ``batch`` contiguous streams, ``(batch, len // batch)``."""
    per = len(ids) // batch
    return ids[:per * batch].reshape(batch, per)


def evaluate(model, ids: np.ndarray, recipe: RecurrentRecipe, device) -> float:
    """Mean cross-entropy (nats per token) on ``ids`` (module docstring)."""
    import torch
    import torch.nn.functional as F
    data = torch.from_numpy(_streams(ids, recipe.eval_batch)).to(device)
    length = data.shape[1] - 1
    if recipe.eval_windows:
        length = min(length, recipe.eval_windows * recipe.bptt)
    h = torch.zeros(recipe.eval_batch, recipe.hidden, device=device)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for s in range(0, length, recipe.bptt):
            e = min(s + recipe.bptt, length)
            logits, h = model(data[:, s:e], h)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           data[:, s + 1:e + 1].reshape(-1), reduction="sum"))
            count += (e - s) * recipe.eval_batch
    return total / count


def train_cell(cell: RecurrentCell, seed: int, recipe: RecurrentRecipe, corpus,
               device: str = "cpu") -> dict[str, float]:
    """Train ``cell`` on ``corpus`` (:class:`~oracles.collectors.corpus.Corpus`) with
    ``recipe`` and ``seed``; return :data:`METRICS` plus ``params``.

    A pure function of its arguments on one machine and library version (one thread,
    deterministic kernels: :func:`oracles.collectors.train.configure_torch`), except
    ``train_time``.
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    torch.manual_seed(int(seed))
    vocab = corpus.vocab_size
    model = build_model(cell, vocab, recipe.hidden).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    shift = int(np.random.default_rng(int(seed)).integers(len(corpus.train)))
    streams = _streams(np.roll(corpus.train, -shift), recipe.batch_size)
    data = torch.from_numpy(streams).to(dev)
    windows = (data.shape[1] - 1) // recipe.bptt
    h = torch.zeros(recipe.batch_size, recipe.hidden, device=dev)
    tail = max(1, recipe.steps // 10)
    recent: list[float] = []
    diverged = False
    model.train()
    t0 = time.process_time() if dev.type == "cpu" else time.perf_counter()
    for step in range(recipe.steps):
        lr = 0.5 * recipe.lr * (1.0 + math.cos(math.pi * step / recipe.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        s = (step % windows) * recipe.bptt
        if s == 0:
            h = torch.zeros_like(h)   # a new pass over the streams starts from a fresh state
        logits, h = model(data[:, s:s + recipe.bptt], h)
        h = h.detach()
        loss = F.cross_entropy(logits.reshape(-1, vocab), data[:, s + 1:s + recipe.bptt + 1].reshape(-1))
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
        opt.step()
        if step >= recipe.steps - tail:
            recent.append(value)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    train_time = (time.process_time() if dev.type == "cpu" else time.perf_counter()) - t0
    if diverged:
        train_loss = valid = test = math.inf
    else:
        train_loss = float(np.mean(recent))
        valid = evaluate(model, corpus.valid, recipe, dev)
        test = evaluate(model, corpus.test, recipe, dev)
        if not (math.isfinite(valid) and math.isfinite(test)):
            diverged, train_loss, valid, test = True, math.inf, math.inf, math.inf
    params = count_params(cell, vocab, recipe.hidden)
    assert params == sum(p.numel() for p in model.parameters())
    return {"train_loss": train_loss, "train_ppl": math.exp(train_loss), "valid_loss": valid, "valid_ppl": math.exp(valid),
            "test_loss": test, "test_ppl": math.exp(test), "train_time": train_time,
            "diverged": float(diverged), "params": float(params)}


# === the collection ==========================================================================
# How it works (the ConvNet collector's guarantees, oracles.collectors.convnet, with its
# shard functions, i.e. the shared result store oracles.collectors.store):
#
# * OUT/collection.json records what is collected (space, corpus with its checksum, level,
#   vocabulary, recipe, seeds, subset); the same command resumes, another configuration on
#   the same OUT is refused.
# * each finished (cell, seed) is one checksummed, fsync'ed line in this session's shard of
#   OUT/shards; a line torn by a kill is dropped and re-trained; OUT/.lock stops two
#   collectors writing to one OUT.
# * tasks run cell by cell (every seed of a cell, then the next cell) in the subset's random
#   draw order, so an interrupted collection's finished cells are a uniform random sample of
#   the space and --finalize-partial makes a table of them.
# * workers: processes (--workers) or Ray tasks (--executor ray), one torch thread each,
#   deterministic kernels; --device cuda trains on a GPU.

FORMAT = "nas-harness-collection/1"
CONFIG = "collection.json"

#: recipe presets. ``shakespeare-char``: chosen by measurement on a 2-core CPU to train a
#: cell in about 10 CPU seconds while two seeds rank cells alike (docs/lstm-shakespeare.md).
#: ``lstm10k``: LaNAS's LSTM-10K "following the exact same setup in [DARTS]": DARTS's search
#: sizes (embedding = hidden = 300, batch 64, BPTT 35) for 50 epochs of PTB (929,589 training
#: tokens: 415 windows of 64 x 35 per epoch, 20,750 steps), evaluated on the whole
#: validation and test files; Adam in place of DARTS's SGD at lr 20 with its dropouts
#: (this project's deviation: one recipe for every cell with no per-cell tuning).
PRESETS: dict[str, dict[str, Any]] = {
    "shakespeare-char": {"corpus": "shakespeare", "level": "char", "vocab_size": None,
                         "recipe": RecurrentRecipe(hidden=64, batch_size=32, bptt=35, steps=200, lr=3e-3,
                                                   clip=1.0, eval_batch=64, eval_windows=20)},
    "lstm10k": {"corpus": "ptb", "level": "word", "vocab_size": 10000,
                "recipe": RecurrentRecipe(hidden=300, batch_size=64, bptt=35, steps=20750, lr=1e-3,
                                          clip=0.25, eval_batch=10, eval_windows=0)},
}


@dataclass(frozen=True)
class Job:
    """What to collect; ``order`` is the space indices to train, in training order."""

    name: str
    preset: str
    corpus: str
    level: str
    vocab_size: int | None
    corpus_sha256: str
    seeds: tuple[int, ...]
    recipe: RecurrentRecipe
    order: tuple[int, ...]
    subset_seed: int | None
    corpus_dir: str | None = None

    @property
    def indices(self) -> tuple[int, ...]:
        """The collected indices in the space's order (the table's row order)."""
        return tuple(sorted(self.order))

    def config(self) -> dict[str, Any]:
        from ..recurrent_space import RecurrentSpace
        return {"format": FORMAT, "family": "recurrent", "name": self.name, "preset": self.preset,
                "space": RecurrentSpace().params(), "corpus": self.corpus, "level": self.level,
                "vocab_size": self.vocab_size, "corpus_sha256": self.corpus_sha256,
                "seeds": list(self.seeds), "recipe": self.recipe.to_dict(),
                "subset": {"size": len(self.order), "seed": self.subset_seed, "order": list(self.order)}}


def make_job(preset: str = "shakespeare-char", seeds: int | Sequence[int] = 1, subset: int | None = None,
             subset_seed: int = 0, recipe: RecurrentRecipe | None = None, name: str | None = None,
             corpus: str | None = None, level: str | None = None, vocab_size: int | None = None,
             corpus_dir=None, indices: Sequence[int] | None = None) -> Job:
    """Build a :class:`Job`.

    Parameters
    ----------
    preset: a :data:`PRESETS` name (corpus, level, vocabulary and recipe defaults).
    seeds: a count (seeds ``0..N-1``) or explicit seeds.
    subset: train this many cells drawn uniformly without replacement with ``subset_seed``
        (default: the whole space, 6,954 cells).
    recipe, corpus, level, vocab_size: override the preset's.
    corpus_dir: the corpus folder (default :func:`oracles.collectors.corpus.default_dir`).
    indices: explicit space indices (tests), instead of ``subset``.
    """
    from ..errors import UserError
    from ..recurrent_space import RecurrentSpace
    from .corpus import load_corpus
    if preset not in PRESETS:
        raise UserError(f"unknown recurrent preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    corpus = corpus or p["corpus"]
    level = level or p["level"]
    vocab_size = vocab_size if vocab_size is not None else (p["vocab_size"] if level == "word" else None)
    recipe = recipe or p["recipe"]
    if isinstance(seeds, int):
        if seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {seeds}")
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError("seeds must be distinct and at least one")
    size = RecurrentSpace().size
    if indices is not None:
        order = tuple(int(i) for i in indices)
        if len(set(order)) != len(order) or not all(0 <= i < size for i in order):
            raise UserError(f"indices must be distinct and in 0..{size - 1}")
        subset_seed = None
    else:
        n = size if subset is None else int(subset)
        if not 1 <= n <= size:
            raise UserError(f"--subset must be in 1..{size} (the space's size), got {n}")
        # a permutation prefix: every prefix of the training order is a uniform random sample
        order = tuple(int(i) for i in np.random.default_rng(subset_seed).permutation(size)[:n])
    data = load_corpus(corpus, level, corpus_dir, vocab_size)
    if name is None:
        name = f"lstm-{corpus}-{level}" if preset == "shakespeare-char" else f"lstm-{preset}-{corpus}"
    return Job(name=name, preset=preset, corpus=corpus, level=level, vocab_size=vocab_size,
               corpus_sha256=data.meta["sha256"], seeds=seeds, recipe=recipe, order=order,
               subset_seed=subset_seed,
               corpus_dir=None if corpus_dir is None else str(Path(corpus_dir).expanduser().resolve()))


_WORKER: dict[str, Any] = {}


def _worker_init(corpus: str, level: str, vocab_size, corpus_dir, recipe: dict, device: str) -> None:
    from .corpus import load_corpus
    from .train import configure_torch
    configure_torch(1)
    _WORKER.update(corpus=load_corpus(corpus, level, corpus_dir, vocab_size),
                   recipe=RecurrentRecipe.from_dict(recipe), device=device,
                   key=(corpus, level, vocab_size, corpus_dir))


def _worker_run(task: tuple[int, str, int]) -> tuple[int, int, dict[str, float]]:
    from ..recurrent_space import string_to_cell
    index, cell, seed = task
    return index, seed, train_cell(string_to_cell(cell), seed, _WORKER["recipe"], _WORKER["corpus"],
                                   _WORKER["device"])


def _ray_task(args: tuple, task: tuple[int, str, int]) -> tuple[int, int, dict[str, float]]:
    # Ray reuses worker processes: load the corpus once per process
    if _WORKER.get("key") != tuple(args[:4]):
        _worker_init(*args)
    _WORKER["recipe"] = RecurrentRecipe.from_dict(args[4])
    _WORKER["device"] = args[5]
    return _worker_run(task)


def _args(job: Job, device: str) -> tuple:
    return (job.corpus, job.level, job.vocab_size, job.corpus_dir, job.recipe.to_dict(), device)


def _run_local(tasks, job: Job, workers: int, device: str):
    from harness.processes import map_unordered
    return map_unordered(_worker_run, tasks, workers, initializer=_worker_init, initargs=_args(job, device),
                         in_flight=2 * workers)


def _run_ray(tasks, job: Job, workers: int, device: str):
    import functools

    from ..errors import UserError
    try:
        from harness.ray_executor import RayExecutor
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'ray[default]' (or use --executor local)") from None
    resources = {"num_cpus": 1, "num_gpus": 1.0 / max(1, workers) if device.startswith("cuda") else 0}
    return RayExecutor(workers).map_unordered(functools.partial(_ray_task, _args(job, device)), tasks,
                                              resources=resources)


def _prepare(out, job: Job) -> None:
    import json

    from harness.files import atomic_write_bytes

    from ..errors import CorruptData, UserError
    from .convnet import code_version
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / CONFIG
    config = job.config()
    if cfg_path.is_file():
        try:
            existing = json.loads(cfg_path.read_text())
        except ValueError:
            raise CorruptData(f"{cfg_path} is not valid JSON; remove {out} to start over") from None
        theirs = {k: existing.get(k) for k in config}
        try:   # a recipe is its parameters; its descriptive strings may be reworded
            theirs["recipe"] = RecurrentRecipe.from_dict(theirs["recipe"]).to_dict()
        except (TypeError, ValueError, AttributeError):
            pass
        if config != theirs:
            diff = sorted(k for k in config if config[k] != theirs[k])
            hint = (f"; its runs can be reused: --out NEW --adopt {out}" if diff == ["space"] or
                    set(diff) == {"space", "subset"} else "")
            raise UserError(f"{out} holds a different collection (differs in: {', '.join(diff)}); "
                            f"use another --out, or the same options to resume it{hint}")
        return
    config["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config["code_version"] = code_version()
    atomic_write_bytes(cfg_path, lambda fh: fh.write(json.dumps(config, indent=1).encode()))


def all_tasks(job: Job) -> list[tuple[int, int]]:
    """Every (space index, seed) of the job, in run order: cell by cell in draw order."""
    return [(i, s) for i in job.order for s in job.seeds]


def collect(job: Job, out, workers: int = 1, device: str = "cpu", executor: str = "local",
            progress: bool = True, table_dir=None, log=print, train: bool = True,
            partial: bool = False, limit: int | None = None):
    """Run (or resume) ``job`` in ``out``; write the table when complete and return its path.

    ``train=False`` only assembles what is done. ``partial=True`` writes a table of the cells
    every seed of which is finished (a uniform random sample of the job's cells: tasks run
    cell by cell in draw order); ``meta.collection.partial`` says so. ``limit`` trains at
    most that many (cell, seed) runs in this call (tests). Returns ``None`` when no table
    was written (resume with the same call).
    """
    from ..recurrent_space import RecurrentSpace
    from .convnet import check_run_options, lock, open_store, read_shards
    out = Path(out)
    check_run_options(workers, device, executor)
    _prepare(out, job)
    space = RecurrentSpace()
    with lock(out):
        rows, stats = read_shards(out)
        tasks = all_tasks(job)
        todo = [(i, s) for i, s in tasks if (i, s) not in rows]
        if stats["torn"]:
            log(f"dropped {stats['torn']} row(s) torn by an earlier interruption; they will be re-trained")
        if todo and train:
            log(f"collecting {job.name}: {len(tasks) - len(todo)}/{len(tasks)} (cell, seed) runs done, "
                f"{len(todo)} to go, {workers} {executor} worker(s) on {device}")
            if limit is not None:
                todo = todo[:limit]
            _train(job, out, space, todo, len(tasks), workers, device, executor, progress, open_store)
            rows, stats = read_shards(out)
        target = Path(table_dir) if table_dir is not None else out / "table"
        if len(rows) < len(tasks) or any(k not in rows for k in tasks):
            if not partial:
                return None
            done = tuple(i for i in job.order if all((i, s) in rows for s in job.seeds))
            if not done:
                log("no cell has every seed yet; nothing to write")
                return None
            log(f"writing a partial table: {len(done)} of {len(job.order)} cells")
            finalize(job, out, rows, target, cells=done)
            return target
        finalize(job, out, rows, target)
        return target


def _train(job, out, space, todo, total, workers, device, executor, progress, open_store):
    tasks = ((i, space.to_string(space.arch(i)), s) for i, s in todo)
    run = _run_local if executor == "local" else _run_ray
    store = open_store(out)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=total - len(todo), unit="run", dynamic_ncols=True,
                   desc=job.name, smoothing=0.05)
    from harness.interrupts import raise_if_swallowed
    try:
        raise_if_swallowed()
        for index, seed, metrics in run(tasks, job, workers, device):
            store.append({"index": index, "seed": seed, "arch": space.to_string(space.arch(index)), **metrics})
            if bar is not None:
                bar.update(1)
            raise_if_swallowed()  # a Ctrl-C that a callback swallowed (see harness.interrupts)
    finally:
        store.close()
        if bar is not None:
            bar.close()


def adopt(job: Job, out, source, log=print) -> dict[str, Any]:
    """File the finished runs of another collection folder ``source`` into ``out``, so
    that they are not trained again; returns counts.

    ``source`` must have trained the same recipe on the same corpus (checksum, level and
    vocabulary); its space may differ in how cells are identified (a collection made before
    the mean-form rule of :mod:`oracles.recurrent_space`), or it may be the same
    collection run elsewhere. Each run goes under the current canonical form of the cell
    it trained (its stored ``arch`` string, kept as ``trained_as``). Runs of cells or
    seeds that ``job`` does not collect, and runs ``out`` already has, are skipped. When
    several source runs land on one (cell, seed), which happens when the source identified
    cells more finely, the first in the source's training order is kept and the largest
    difference of validation perplexity among them is reported: they trained the same
    function, so it should be tiny (floating-point summation order only).
    """
    import json

    from ..errors import CorruptData, InvalidArchitecture, UserError
    from ..recurrent_space import RecurrentSpace
    from .convnet import lock, open_store, read_shards
    out, source = Path(out), Path(source)
    if source.resolve() == out.resolve():
        raise UserError("--adopt names the --out folder itself; name another collection folder")
    try:
        theirs = json.loads((source / CONFIG).read_text())
    except FileNotFoundError:
        raise UserError(f"{source} is not a collection folder (no {CONFIG}); name one that "
                        "`nas-harness collect recurrent --out` made") from None
    except ValueError:
        raise CorruptData(f"{source / CONFIG} is not valid JSON") from None
    mine = job.config()
    try:
        theirs_recipe = RecurrentRecipe.from_dict(theirs["recipe"]).to_dict()
        differ = [k for k in ("family", "corpus", "level", "vocab_size", "corpus_sha256")
                  if theirs.get(k) != mine[k]] + (["recipe"] if theirs_recipe != mine["recipe"] else [])
        src_order = [int(i) for i in theirs["subset"]["order"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CorruptData(f"{source / CONFIG} is not a recurrent collection's configuration") from None
    if differ:
        raise UserError(f"{source} trained another recipe or corpus (differs in: {', '.join(differ)}); "
                        "only runs of the same recipe on the same corpus can be adopted")
    _prepare(out, job)
    space = RecurrentSpace()
    wanted, seeds = set(job.order), set(job.seeds)
    src_rows, _ = read_shards(source)
    counts = {"source_runs": len(src_rows), "adopted": 0, "already_there": 0, "outside_job": 0,
              "merged": 0, "max_merged_valid_ppl_difference": 0.0}
    with lock(out):
        rows, _ = read_shards(out)
        kept: dict[tuple[int, int], dict[str, Any]] = {}
        store = open_store(out)
        try:
            # the source's training order first (its first run of a cell is the one kept)
            position = {i: k for k, i in enumerate(src_order)}
            for i, s in sorted(src_rows, key=lambda k: (position.get(k[0], len(position)), k)):
                row = src_rows[(i, s)]
                try:
                    cell = space.parse(row["arch"])
                    valid = float(row["valid_ppl"])
                except (KeyError, TypeError, ValueError, InvalidArchitecture) as exc:
                    raise CorruptData(f"{source}: the run of cell {i} seed {s} is damaged ({exc})") from None
                key = (space.index(cell), s)
                if key[0] not in wanted or s not in seeds:
                    counts["outside_job"] += 1
                elif key in kept:
                    counts["merged"] += 1
                    gap = abs(valid - float(kept[key]["valid_ppl"]))
                    counts["max_merged_valid_ppl_difference"] = max(counts["max_merged_valid_ppl_difference"], gap)
                elif key in rows:
                    kept[key] = rows[key]
                    counts["already_there"] += 1
                else:
                    new = {k: v for k, v in row.items() if k not in ("index", "arch")}
                    new.update(index=key[0], arch=space.to_string(cell), trained_as=row["arch"])
                    store.append(new)
                    kept[key] = new
                    counts["adopted"] += 1
        finally:
            store.close()
    log(f"adopted {counts['adopted']} run(s) of {source}; {counts['merged']} run(s) of cells now identified "
        f"with an adopted one (largest validation-perplexity difference "
        f"{counts['max_merged_valid_ppl_difference']:.3g}), {counts['already_there']} already in {out}, "
        f"{counts['outside_job']} outside this collection's cells or seeds")
    return counts


def finalize(job: Job, out, rows, target, cells: Sequence[int] | None = None):
    """Assemble ``rows`` into the job's table (every cell, or ``cells``) at ``target``."""
    import json
    import os
    import platform

    from ..errors import CorruptData
    from ..recurrent_space import RecurrentSpace
    from ..table import Table, save_table
    from .convnet import code_version, library_versions
    from .corpus import load_corpus
    space = RecurrentSpace()
    indices = np.array(sorted(job.order if cells is None else cells), dtype=np.int64)
    seeds = list(job.seeds)
    values = np.full((len(indices), len(seeds), 1, len(METRICS)), np.nan)
    params = np.zeros(len(indices), dtype=np.int64)
    adopted = 0
    for r, i in enumerate(indices):
        for si, s in enumerate(seeds):
            row = rows.get((int(i), s))
            if row is None:
                raise CorruptData(f"{out}: cell {i} seed {s} is missing; run the collector again")
            if row["arch"] != space.to_string(space.arch(int(i))):
                raise CorruptData(f"{out}: row of cell {i} names {row['arch']}, not the space's cell")
            values[r, si, 0] = [row[m] for m in METRICS]
            params[r] = int(row["params"])
            adopted += "trained_as" in row
    cells_ = [space.arch(int(i)) for i in indices]
    archs = np.array([space.to_string(c) for c in cells_])
    columns = {"params": params,
               "n_vertices": np.array([c.n_vertices for c in cells_], dtype=np.int64),
               "n_fc": np.array([sum(o == "fc-relu" for o in c.ops) for c in cells_], dtype=np.int64),
               "space_index": indices}
    started = json.loads((out / CONFIG).read_text())
    data = load_corpus(job.corpus, job.level, job.corpus_dir, job.vocab_size)
    if data.meta["sha256"] != job.corpus_sha256:
        raise CorruptData(f"the corpus now read from {job.corpus_dir or 'the default folder'} is not the one "
                          "this collection trained on (its checksum differs)")
    r = job.recipe
    # a complete job is its uniform subset whoever trained the runs; a partial table holds the
    # cells finished so far, and runs adopted from a collection in another order (adopt) make
    # that set follow the other order, so it is not uniform
    partial = cells is not None and len(indices) < len(job.order)
    sampling = (f"{adopted} run(s) adopted from another collection, so not a uniform sample"
                if partial and adopted else f"uniform random subset, seed {job.subset_seed}")
    description = (f"LaNAS recurrent cells ({len(indices)} of {space.size}, {sampling}) as {job.level}-level "
                   f"language models of {job.corpus}: hidden {r.hidden}, "
                   f"{r.steps} steps of {r.batch_size} x {r.bptt} tokens, {len(seeds)} seed(s); self-collected")
    common = {"cost": "train_time", "train": "train_ppl", "fidelity": r.steps, "direction": "min"}
    meta = {
        "source": "self-collected by oracles.collectors.recurrent",
        "description": description,
        "preset": job.preset,
        "space": {"kind": "recurrent", **space.params(), "subset": len(indices) < space.size},
        "oracles": [
            {"name": job.name, "search": "valid_ppl", "report": "test_ppl", **common,
             "description": description + "; search validation perplexity, report test perplexity"},
            {"name": f"{job.name}/test-search", "search": "test_ppl", "report": "test_ppl", **common,
             "description": description + "; search AND report test perplexity (LaNAS's LSTM-10K protocol)"}],
        "recipe": r.to_dict(),
        "corpus": {k: v for k, v in data.meta.items()},
        "seeds": seeds,
        "subset": {"size": len(indices), "seed": job.subset_seed, "of": space.size},
        "units": {"*_loss": "mean cross-entropy, nats per token", "*_ppl": "exp(loss), perplexity per token",
                  "train_time": "CPU seconds of the training loop (GPU: wall seconds)",
                  "diverged": "1 when a training loss became non-finite (losses and perplexities then +inf)",
                  "params": "trainable parameters (tied embedding counted once)"},
        "library_versions": library_versions(),
        "code_version": code_version(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "collection": {"created": started.get("created"), "code_version_at_start": started.get("code_version"),
                       "finalized": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "total_train_seconds": float(np.sum(values[..., METRICS.index("train_time")])),
                       "partial": partial, "adopted_runs": adopted},
    }
    table = Table(name=job.name, archs=archs, seeds=tuple(str(s) for s in seeds), fidelities=(r.steps,),
                  metrics=METRICS, values=values, columns=columns, meta=meta)
    save_table(table, target)
    return table


def job_from_config(config: dict[str, Any], corpus_dir=None) -> Job:
    """The :class:`Job` a ``collection.json`` describes."""
    subset = config["subset"]
    return Job(name=config["name"], preset=config["preset"], corpus=config["corpus"], level=config["level"],
               vocab_size=config["vocab_size"], corpus_sha256=config["corpus_sha256"],
               seeds=tuple(int(s) for s in config["seeds"]), recipe=RecurrentRecipe.from_dict(config["recipe"]),
               order=tuple(int(i) for i in subset["order"]), subset_seed=subset.get("seed"),
               corpus_dir=corpus_dir)
