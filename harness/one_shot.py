"""The one-shot loop: a weight-sharing method (:mod:`algorithms.one_shot`) run epoch by epoch
into the run format of :mod:`harness.results` (design: docs/one-shot-loop.md).

For epoch e = 1..E (E = the method's epochs; an ``epochs`` or ``time`` budget cuts it short):

1. ``method.train_epoch()``; the loop measures the epoch's wall and CPU seconds;
2. ``arch = method.derive()``;
3. where a ground truth exists for the supernet's data (:func:`ground_truth`), the derived
   architecture is looked up in it, **for the records only**: the method never sees it;
4. a record row (columns and meanings below);
5. every ``checkpoint_every`` epochs and at the end, an atomic checkpoint.

Records (the columns of :func:`harness.runner.run_one`, one-shot meanings): ``sample`` the
epoch (1-based), ``trial`` the epoch - 1, ``n_distinct`` distinct derived architectures so
far, ``arch_index``/``arch_id``/``arch`` the derived architecture in the oracle's space,
``search``/``report`` the ground truth's values for it (NaN without one), ``best_search``,
``best_report`` and ``incumbent_report`` the derived architecture's own values (a one-shot
method returns its *current* architecture, not the best seen), ``fidelity`` the epochs
trained so far, ``cost``/``cum_cost`` the measured wall seconds of the epoch and so far,
``start``/``finish``/``epochs`` the simulated clock, on which every epoch costs one unit
(the epochs of one run all cost the same: same supernet, same images), ``repeat`` the derived
architecture equals the previous epoch's, ``algo_cpu_s`` the method's CPU seconds so far,
``measured_s`` NaN (no live oracle measured anything). The method's own numbers per epoch
(losses, accuracies, alpha entropy, its softmax, GDAS's tau), the derived cell and its
fraction of skip connections (:func:`skip_diagnostics`) go to the summary's
``diagnostics["epochs"]``.

Spaces. A method searching NB201's cell (``space=nb201``) runs on an oracle of the NB201 space
(a table, or a partial one); a method searching the DARTS space (``space=darts``) on an oracle
of the DARTS space: today the supernet oracle ``supernet/NAME`` of a DARTS supernet
(``nas-harness supernet train darts ...``; ``--until 0`` writes one in seconds). That oracle
only names the space: it is no ground truth (:func:`ground_truth`), so ``search``/``report``
are NaN, and the run trains its own supernet. In the DARTS space ``arch`` and ``arch_id`` are
DARTS genotype strings (as printed, and canonical), ``arch_index`` is -1 (the space is not
enumerated), and the final architecture's stand-alone number comes from ``nas-harness
supernet retrain`` (:mod:`supernets.retrain`), written beside the runs.

Checkpoints (``<run folder>/seed-NNNNNN.ckpt/``, :func:`checkpoint_dir`): ``state.pt`` holds
the method's state, the loop's (epoch, rows, diagnostics) and every random generator
(numpy's bit generator, torch's CPU generator, CUDA's where used), written with
``torch.save`` to a temporary name and renamed, loaded with ``torch.load(weights_only=True)``;
``meta.json`` the configuration's fingerprint, the seed and the code version. A checkpoint of
another configuration, seed or code version is not resumed (the run starts over, and the
summary's ``diagnostics["resume"]`` says why). On one machine and device a resumed CPU run
equals an uninterrupted one record for record (measured seconds aside) and in its weights.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from oracles.errors import UserError

from .files import atomic_write_bytes
from .provenance import code_version
from .results import fingerprint
from .runner import RunConfig, describe_exception

FORMAT = "nas-harness-one-shot/1"
STATE, META = "state.pt", "meta.json"
SKIP = 1   # skip_connect's operation index in the NB201 cell (oracles.nb201_space.OPS)
DARTS_SKIP = "skip_connect"   # the DARTS space's skip connection (oracles.darts_space.OPS)


def derived_arch(arch):
    """A method's derived architecture as the loop stores it: NB201's operation indices as a
    tuple of ints (methods may return numpy integers or a list); a DARTS architecture
    (anything with ``normal`` and ``reduce`` cells) as it is."""
    if hasattr(arch, "normal") and hasattr(arch, "reduce"):
        return arch
    return tuple(int(o) for o in arch)


def skip_diagnostics(arch) -> dict[str, float]:
    """The fraction of skip connections in a derived architecture, the measure of DARTS's
    collapse (NB201 Table 5: cells of skip connections). NB201: of its 6 edges
    (``skip_fraction``). DARTS space: of the 16 edges of both cells (``skip_fraction``) and of
    the normal cell's 8 (``skip_fraction_normal``: the collapse shows in the normal cell,
    whose skip connections keep the resolution)."""
    if hasattr(arch, "normal"):
        normal = [op for op, _ in arch.normal]
        both = normal + [op for op, _ in arch.reduce]
        return {"skip_fraction": sum(op == DARTS_SKIP for op in both) / len(both),
                "skip_fraction_normal": sum(op == DARTS_SKIP for op in normal) / len(normal)}
    return {"skip_fraction": sum(o == SKIP for o in arch) / len(arch)}


#: oracle families whose tables were trained on a dataset the supernets can train on, by
#: dataset name (:mod:`supernets.data`): NB201's CIFAR-10 tables
_TABLE_DATASETS = {"nb201/cifar10": "cifar10", "nb201-12ep/cifar10": "cifar10"}


def ground_truth(oracle, data) -> tuple[Any | None, str]:
    """The oracle whose values for a derived architecture are its truth, or None, with a
    line saying why.

    An oracle is a ground truth for a supernet trained on ``data`` when it says it was
    collected on that very split (an attribute ``data_record``, a
    :meth:`supernets.data.SupernetData.record`, that ``data.matches``), or when it is one of
    NB201's CIFAR-10 tables and the supernet trains on CIFAR-10. Otherwise the records carry
    NaN: a CIFAR-10 table does not judge a cell searched on digits.
    """
    record = getattr(oracle, "data_record", None)
    if record is not None:
        if data.matches(record):
            return oracle, f"{oracle.name} was collected on this {data.dataset} split"
        return None, f"{oracle.name} was collected on other data than the supernet's {data.dataset} split"
    base = oracle.name.split(":")[0]
    want = _TABLE_DATASETS.get(base)
    if want is not None and want == data.dataset:
        return oracle, f"{base} was trained on {want}"
    return None, (f"{base} is not a ground truth for a supernet trained on {data.dataset}: "
                  "search/report are NaN")


def checkpoint_dir(out: str | Path, cell, seed: int) -> Path:
    """Where a one-shot run of ``cell`` and ``seed`` keeps its checkpoint in results folder ``out``."""
    return Path(out) / cell.folder / f"seed-{int(seed):06d}.ckpt"


def remove_checkpoint(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def planned_epochs(config: RunConfig, method) -> int:
    """The epochs a run trains: the method's, cut by an ``epochs`` or ``time`` budget (each
    epoch costs one unit of the simulated clock).

    The method's length is its attribute ``loop_epochs`` where it defines one (a method whose
    loop is longer than its supernet's training, as DDAS's warm-up epochs plus agent steps),
    else ``method.supernet_config().epochs``."""
    total = getattr(method, "loop_epochs", None)
    if total is None:
        total = method.supernet_config().epochs
    total = int(total)
    if config.budget_kind in ("epochs", "time") and config.budget is not None:
        total = min(total, int(math.floor(config.budget)))
    return max(total, 1)


def run_one_shot(config: RunConfig, oracle, seed: int, ckpt: Path | None = None, checkpoint_every: int = 1,
                 on_epoch: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run one one-shot search; return (records as column arrays, run summary), as
    :func:`harness.runner.run_one` does.

    Parameters
    ----------
    config: the run's configuration (``algorithm`` a name of
        :data:`algorithms.one_shot.ONE_SHOT_REGISTRY`, ``params`` its parameters).
    oracle: the oracle of the run's cell: its space names the derived architectures, and
        it is the ground truth where :func:`ground_truth` accepts it.
    seed: the run's seed (one :class:`numpy.random.SeedSequence`, as query runs).
    ckpt: the checkpoint folder (None: no checkpoints, no resume).
    checkpoint_every: epochs between checkpoints (the last epoch is always written).
    on_epoch: called with the epoch number after each epoch's checkpoint (tests stop a run
        there to resume it).

    Configuration and data errors raise :class:`UserError`; an error of the method once
    started ends the run as failed (``summary["failed"]``), as in the query runner.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from algorithms.one_shot import make_one_shot
    method = make_one_shot(config.algorithm, config.params)
    if config.until_optimum and oracle.optimum is None:
        raise UserError(f"oracle {oracle.name} has no known optimum: drop --until-optimum")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(method.threads))
    try:
        with threadpool_limits(limits=1):
            return _run(config, oracle, int(seed), method, ckpt, max(int(checkpoint_every), 1), on_epoch)
    finally:
        torch.set_num_threads(threads)


def _build(method, rng: np.random.Generator):
    import torch

    from algorithms.base import torch_seed
    from supernets.data import load
    from supernets.training import build_supernet, configure_device
    cfg = method.supernet_config()
    data = load(cfg.dataset, cfg.split_seed, method.cifar_dir)
    device = configure_device(method.device)
    # the initial weights come from the run's seed alone, whatever ran in this process before
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(rng))
        net = build_supernet(cfg, data.input_shape[0], data.num_classes)
    return net.to(device), data, device


def _run(config: RunConfig, oracle, seed: int, method, ckpt: Path | None, every: int,
         on_epoch: Callable[[int], None] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import torch
    algo_ss, _ = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(algo_ss)
    total = planned_epochs(config, method)
    net, data, device = _build(method, rng)
    truth, truth_note = ground_truth(oracle, data)
    space = oracle.space
    covered = getattr(space, "contains", None)
    optimum = oracle.optimum.identities if (truth is not None and oracle.optimum is not None) else frozenset()
    fp = fingerprint({**config.as_dict(), "seed": seed, "epochs": total})
    rows: list[dict[str, Any]] = []
    diag: list[dict[str, Any]] = []
    resume_note = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    failure = None
    method.start(net, data, rng)
    if ckpt is not None:
        state, resume_note = _load(ckpt, fp)
        if state is not None:
            method.load_state_dict(state["method"])
            rows, diag = [dict(r) for r in state["loop"]["rows"]], [dict(d) for d in state["loop"]["diag"]]
            _set_rng(rng, state["rng"], device)
        else:
            remove_checkpoint(ckpt)
            _write_meta(ckpt, fp, seed)
    reached = next((r["sample"] for r in rows if r["arch_id"] in optimum), None)
    try:
        while method.epochs_done < total and not (config.until_optimum and reached is not None):
            t0, c0 = time.perf_counter(), time.process_time()
            stats = method.train_epoch()
            arch = derived_arch(method.derive())
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            e = method.epochs_done
            ident = space.identity(arch)
            # a partial ground truth (a snapshot of a running collection) covers a sample of the
            # cells: a derived cell outside it has no true value yet, which is NaN, not a failure
            in_space = covered is None or covered(arch)
            if truth is not None and in_space:
                ev = truth.query(arch)
                search, report = float(ev.observation.value), float(ev.report)
            else:
                search = report = math.nan
            prev = rows[-1] if rows else None
            rows.append({"sample": e, "arch_index": int(space.index(arch)) if space.is_finite and in_space else -1,
                         "arch_id": ident, "arch": space.to_string(arch), "search": search, "report": report,
                         "cost": wall, "cpu": cpu, "repeat": prev is not None and prev["arch_id"] == ident})
            diag.append({**stats, "derived": space.to_string(arch) if hasattr(arch, "normal") else list(arch),
                         **skip_diagnostics(arch), "loop_seconds": wall, "loop_cpu_seconds": cpu})
            if reached is None and ident in optimum:
                reached = e
            if ckpt is not None and (e % every == 0 or e == total):
                _save(ckpt, fp, method, rows, diag, rng, device)
            if on_epoch is not None:
                on_epoch(e)
    except Exception as exc:  # noqa: BLE001 -- the method's error fails this run only
        failure = exc
    records = _records(rows)
    n = len(rows)
    summary = {
        "seed": seed, "budget": total, "n_queries": n,
        "n_distinct": int(records["n_distinct"][-1]) if n else 0,
        "n_repeats": int(records["repeat"].sum()),
        "reached_optimum": reached is not None, "samples_to_optimum": reached,
        "censored": bool(config.until_optimum and reached is None),
        "exhausted_space": False, "stopped": None,
        "best_search": float(records["best_search"][-1]) if n else None,
        "best_report": float(records["best_report"][-1]) if n else None,
        "incumbent_report": float(records["incumbent_report"][-1]) if n else None,
        "total_cost": float(records["cum_cost"][-1]) if n else None,
        "algo_cpu_s": float(records["algo_cpu_s"][-1]) if n else 0.0,
        "wall_s": time.perf_counter() - wall0,
        "clock": float(n), "total_epochs": float(n),
        "time_to_optimum": None if reached is None else float(reached),
        "epochs_to_optimum": None if reached is None else float(reached),
        "diagnostics": {"kind": "one-shot", "ground_truth": truth.name if truth is not None else None,
                        "ground_truth_note": truth_note, "resume": resume_note,
                        "process_cpu_s": time.process_time() - cpu0, "epochs": diag},
    }
    if failure is not None:
        summary["failed"] = describe_exception(failure)
        summary["traceback"] = "".join(traceback.format_exception(failure))
    return records, summary


def _records(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    n = len(rows)
    ids = [r["arch_id"] for r in rows]
    seen: set[str] = set()
    distinct = []
    for i in ids:
        seen.add(i)
        distinct.append(len(seen))
    search = np.array([r["search"] for r in rows], dtype=np.float64)
    report = np.array([r["report"] for r in rows], dtype=np.float64)
    cost = np.array([r["cost"] for r in rows], dtype=np.float64)
    sample = np.array([r["sample"] for r in rows], dtype=np.int64)
    out = {
        "sample": sample,
        "n_distinct": np.array(distinct, dtype=np.int64),
        "arch_index": np.array([r["arch_index"] for r in rows], dtype=np.int64),
        "arch_id": np.array(ids, dtype=object),
        "arch": np.array([r["arch"] for r in rows], dtype=object),
        "search": search, "report": report,
        "best_search": search.copy(), "best_report": report.copy(), "incumbent_report": report.copy(),
        "cost": cost, "cum_cost": np.cumsum(cost),
        "repeat": np.array([bool(r["repeat"]) for r in rows], dtype=bool),
        "algo_cpu_s": np.cumsum(np.array([r["cpu"] for r in rows], dtype=np.float64)),
        "trial": sample - 1,
        "fidelity": sample.copy(),
        "start": (sample - 1).astype(np.float64),
        "finish": sample.astype(np.float64),
        "epochs": np.ones(n, dtype=np.float64),
        "measured_s": np.full(n, np.nan),
    }
    if all(r["arch"] == r["arch_id"] for r in rows):
        del out["arch"]       # as the query runner: the run file stores both
    return out


# --- checkpoints ---------------------------------------------------------------------------
def _rng_state(rng: np.random.Generator, device) -> dict[str, Any]:
    import torch
    st = rng.bit_generator.state
    state = {"numpy": json.dumps(st), "torch_cpu": torch.get_rng_state()}
    if getattr(device, "type", "cpu") == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(rng: np.random.Generator, state: dict[str, Any], device) -> None:
    import torch
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch_cpu"])
    if getattr(device, "type", "cpu") == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _write_meta(ckpt: Path, fp: str, seed: int) -> None:
    meta = {"format": FORMAT, "fingerprint": fp, "seed": seed, "code": code_version()}
    atomic_write_bytes(ckpt / META, lambda fh: fh.write(json.dumps(meta, sort_keys=True, indent=1).encode()))


def _save(ckpt: Path, fp: str, method, rows, diag, rng, device) -> None:
    import torch
    state = {"format": FORMAT, "fingerprint": fp, "method": method.state_dict(),
             "loop": {"epoch": method.epochs_done, "rows": rows, "diag": diag}, "rng": _rng_state(rng, device)}
    atomic_write_bytes(ckpt / STATE, lambda fh: torch.save(state, fh))


def _load(ckpt: Path, fp: str) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint's state if it belongs to this configuration, seed and code version;
    else (None, why). Temporary files of an interrupted write are removed."""
    import torch
    if not ckpt.is_dir():
        return None, None
    for tmp in ckpt.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    try:
        meta = json.loads((ckpt / META).read_text())
    except (OSError, ValueError):
        return None, "checkpoint without a readable meta.json: started over"
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fp:
        return None, "checkpoint of another configuration or seed: started over"
    if meta.get("code") != code_version():
        return None, "checkpoint written by another code version: started over"
    if not (ckpt / STATE).is_file():
        return None, None
    try:
        state = torch.load(ckpt / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- a damaged file is a restart, not a crash
        return None, f"unreadable checkpoint ({type(exc).__name__}): started over"
    if not isinstance(state, dict) or state.get("fingerprint") != fp:
        return None, "checkpoint of another configuration or seed: started over"
    return state, f"resumed after epoch {int(state['loop']['epoch'])}"
