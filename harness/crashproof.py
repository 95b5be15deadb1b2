"""Kill-and-resume proof: interrupt an experiment (or a table collection) at random moments,
resume it each time, and check that nothing was lost, duplicated or half-written.

Usage (the data directory must hold the oracle's table, e.g. after
``nas-harness oracles import nb201 ../shared/data/nb201``)::

    python -m harness.crashproof run --kills 30 --seeds 12 --budget 3000 --workers 2
    python -m harness.crashproof collect --kills 10 --subset 8
    python -m harness.crashproof oneshot --kills 10 --method darts --method gdas --seeds 2

What one check does (:func:`prove_run`; :func:`prove_collect` is the same for
``nas-harness collect convnet``, :func:`prove_oneshot` for ``nas-harness run`` of one-shot
methods on tiny supernets, whose progress is counted in epochs and whose checkpoints are
checked too):

1. runs the command once, uninterrupted, into a reference folder and times it;
2. starts the same command on a second folder as a subprocess in its own process group and,
   at a random moment (during start-up, or after 0-2 more runs were written plus a random
   fraction of one run's time: see :func:`_kill_loop`), sends it one of

   * ``SIGINT`` to the group, exactly what Ctrl-C in a terminal does: the command must exit
     with status 130 and the one-line "run the same command again to resume" message, with
     no traceback from it or its workers, and leave no temporary file behind;
   * ``SIGKILL`` to the group (a power cut for that job): nothing can be cleaned up;
   * ``SIGKILL`` to the parent alone (the OOM killer's choice): its pool workers must notice
     and exit on their own (checked: the process group is empty within 15 s; with
     ``--executor ray`` the private Ray instance needs about a minute, 150 s are allowed);

   after every interruption the folder must be consistent: ``experiment.json`` valid, every
   run file complete and carrying its own cell and seed;
3. repeats step 2 (each start resumes the previous one) until the kills are used up, then
   lets the command finish, and compares the folder with the reference: the same run files,
   each with the same records (every column but the measured ``algo_cpu_s``) and the same
   metadata (except timings), the same cells in ``experiment.json``, and no temporary file.

Every problem found is printed; the exit status is 0 only when there is none.

Not covered: a Ctrl-C in the first tenth of a second or so, while the Python interpreter
itself starts (before any project code runs), prints Python's own traceback; SIGINT is
therefore only sent after twice the time a fresh interpreter takes to import the command
line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.interrupts import restore_sigint

#: run-summary fields that are measured rather than determined by configuration and seed
MEASURED_SUMMARY = ("wall_s", "algo_cpu_s")
#: collector metrics that are measured (wall-clock training time)
MEASURED_METRICS = ("train_time",)
#: record columns that are measured in every run (the algorithm's CPU seconds so far)
MEASURED_COLUMNS = ("algo_cpu_s",)
#: record columns that are measured in a one-shot run (harness.one_shot: an epoch's cost is
#: its wall seconds)
MEASURED_ONE_SHOT_COLUMNS = ("cost", "cum_cost")
RESUME_MESSAGE = "run the same command again to resume"
MODES = ("int", "kill", "kill-parent")


@dataclass
class Attempt:
    mode: str
    delay: float
    rc: int | None
    interrupted: bool          #: the signal arrived while the command was still running
    done_before: int
    done_after: int
    temporaries: int           #: temporary files left right after the interruption
    problems: list[str] = field(default_factory=list)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return not _group_alive(pgid)


def interrupt_once(cmd: list[str], mode: str, delay: float, env: dict[str, str] | None = None,
                   cwd: str | None = None, wait_for=None, grace: float = 15.0,
                   not_before: float = 0.0) -> tuple[int | None, bool, str]:
    """Start ``cmd`` and interrupt it; return (exit status, interrupted, stderr).

    The signal goes ``delay`` seconds after start, or, with ``wait_for`` (a predicate polled
    every 10 ms), ``delay`` seconds after the predicate first holds.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    interrupted = False
    started = time.monotonic()
    if wait_for is not None:
        while proc.poll() is None and not wait_for():
            time.sleep(0.01)
    try:
        proc.wait(timeout=max(delay, not_before - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        interrupted = True
        if mode == "int":
            os.killpg(proc.pid, signal.SIGINT)
        elif mode == "kill":
            os.killpg(proc.pid, signal.SIGKILL)
        elif mode == "kill-parent":
            proc.kill()
        else:
            raise ValueError(mode)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        err = (err or b"") + b"\n[crashproof: the command did not stop within 120 s of the signal]"
    # orphaned workers must go away by themselves (a pool worker's watchdog polls every
    # 0.5 s; a private Ray instance notices its driver is gone after about a minute)
    if not _wait_group_gone(proc.pid, grace):
        os.killpg(proc.pid, signal.SIGKILL)
        err = (err or b"") + b"\n[crashproof: processes of the group outlived their parent]"
    return proc.returncode, interrupted, (err or b"").decode(errors="replace")


def _measured(key: str) -> bool:
    return key in MEASURED_SUMMARY or key == "seconds" or key.endswith(("_seconds", "_s"))


def _comparable(value: Any) -> Any:
    """``value`` without measured keys at any depth (a one-shot run's per-epoch statistics
    are a list of dicts) and with NaN as a string, so that two equal results compare equal
    (``nan != nan``; a one-shot run without a ground truth records NaN values)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if not _measured(k)}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def comparable_summary(summary: dict[str, Any], one_shot: bool = False) -> dict[str, Any]:
    """A run summary without what is measured rather than determined: wall and CPU times,
    and the timings algorithms report among their diagnostics (``*_seconds``, ``*_s``,
    ``seconds``, at any depth).

    ``one_shot``: the summary of a one-shot run (:mod:`harness.one_shot`; default False), whose
    ``total_cost`` is measured seconds and whose ``diagnostics["resume"]`` says how the last
    start found its checkpoint, which is the run's history, not its result: both dropped.
    """
    out = _comparable(summary)
    if one_shot:
        out.pop("total_cost", None)
        if isinstance(out.get("diagnostics"), dict):
            out["diagnostics"].pop("resume", None)
    return out


def check_interruption(mode: str, rc: int | None, interrupted: bool, err: str) -> list[str]:
    problems = []
    if "[crashproof:" in err:
        problems.append(err[err.index("[crashproof:"):].strip())
    if not interrupted:
        if rc != 0:
            problems.append(f"finished on its own with status {rc}: {err.strip()[-300:]}")
        return problems
    if "Traceback" in err:
        problems.append(f"a traceback after {mode}: {err.strip()[-600:]}")
    elif len([ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[crashproof:")]) > 1:
        problems.append(f"more than one line of errors after {mode}: {err.strip()[-600:]}")
    if mode == "int":
        # 0: the run finished while the signal was on its way
        if rc not in (130, 0):
            problems.append(f"Ctrl-C gave exit status {rc}, not 130: {err.strip()[-300:]}")
        if rc == 130 and RESUME_MESSAGE not in err:
            problems.append(f"Ctrl-C did not print the resume message: {err.strip()[-300:]}")
    return problems


# --- experiments -------------------------------------------------------------------------------
def run_folder_state(out: Path) -> tuple[dict[str, Any], list[str]]:
    """Comparable contents of a results folder, and the problems found reading it.

    Returns ``(state, problems)``; ``state`` holds ``cells`` (experiment.json's), ``runs``
    (per run file: metadata and records without measured values), ``temporaries`` (files of
    interrupted atomic writes, also inside one-shot checkpoints), ``checkpoints`` (one-shot
    checkpoint folders ``seed-NNNNNN.ckpt``, by relative path: the epoch their ``state.pt``
    holds, or None without one) and ``resume`` (per one-shot run file: its summary's
    ``diagnostics["resume"]``). An unreadable checkpoint file (a torn write) is a problem.
    """
    import pyarrow.parquet as pq

    from harness.results import ResultsStore, fingerprint

    problems: list[str] = []
    state: dict[str, Any] = {"cells": None, "runs": {}, "checkpoints": {}, "resume": {}}
    store = ResultsStore(out)
    if not out.exists():
        return state, problems
    tmp = [*store.temporaries(), *sorted(out.glob("runs/*/*/seed-*.ckpt/.*.tmp"))]
    if tmp:
        state["temporaries"] = [str(p.relative_to(out)) for p in tmp]
    for ckpt in sorted(out.glob("runs/*/*/seed-*.ckpt")):
        epoch, why = _checkpoint_epoch(ckpt)
        state["checkpoints"][str(ckpt.relative_to(out))] = epoch
        if why:
            problems.append(f"{ckpt.relative_to(out)}: {why}")
    if not store.manifest_path.exists():
        if list(out.glob("runs/*/*/seed-*.parquet")):
            problems.append("run files without experiment.json")
        return state, problems
    try:
        cells = {c.key: c for c in store.cells()}
    except Exception as exc:  # the point is to report any failure, whatever it is
        problems.append(f"experiment.json unreadable: {exc}")
        return state, problems
    state["cells"] = {k: {"label": c.label, "oracle": c.oracle, "config": c.config} for k, c in cells.items()}
    by_folder = {c.folder: c for c in cells.values()}
    for path in sorted(out.glob("runs/*/*/*")):
        rel = str(path.relative_to(out))
        if path.name.startswith((".", "_")) or path.name.endswith(".ckpt"):
            continue  # temporaries and checkpoints (both above), records of failed runs (retried)
        cell = by_folder.get(str(path.parent.relative_to(out)))
        if cell is None:
            problems.append(f"{rel}: in no cell of experiment.json")
            continue
        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[b"nas_harness"])
        except Exception as exc:
            problems.append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if meta.get("cell_fingerprint") != fingerprint(cell.config) or \
                path.name != f"seed-{int(meta.get('seed', -1)):06d}.parquet":
            problems.append(f"{rel}: metadata names another cell or seed")
        if not isinstance(meta.get("code"), dict) or "version" not in meta["code"]:
            problems.append(f"{rel}: metadata lacks the code version")
        # when, by which commit and on which machine it ran (others may commit meanwhile) is
        # not the result
        meta = {k: v for k, v in meta.items() if k not in ("finished", "code", "machine")}
        one_shot = cell.config.get("kind") == "one-shot"
        if one_shot:
            state["resume"][rel] = (meta["summary"].get("diagnostics") or {}).get("resume")
        meta["summary"] = comparable_summary(meta["summary"], one_shot=one_shot)
        measured = MEASURED_COLUMNS + (MEASURED_ONE_SHOT_COLUMNS if one_shot else ())
        records = table.drop_columns([c for c in measured if c in table.column_names]).to_pydict()
        state["runs"][rel] = {"meta": meta, "records": _comparable(records)}
    return state, problems


def _checkpoint_epoch(ckpt: Path) -> tuple[int | None, str | None]:
    """(the epoch a one-shot checkpoint folder's ``state.pt`` holds, or None without one;
    why it is damaged, or None). Both files are written atomically, so either may be
    missing but neither may be unreadable."""
    import torch
    try:
        meta = json.loads((ckpt / "meta.json").read_text())
        if not isinstance(meta, dict) or "fingerprint" not in meta:
            return None, "meta.json is not a checkpoint's"
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        return None, f"meta.json unreadable ({type(exc).__name__})"
    if not (ckpt / "state.pt").exists():
        return None, None
    # state.pt without meta.json is no damage: a kill during the removal of a finished run's
    # checkpoint (reported as a leftover at the end) or of another configuration's
    try:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
        return int(state["loop"]["epoch"]), None
    except FileNotFoundError:
        return None, None     # the run finished meanwhile and removed it
    except Exception as exc:  # the point is to report any failure, whatever it is
        return None, f"state.pt unreadable ({type(exc).__name__}: {exc})"


def compare_states(ref: dict[str, Any], got: dict[str, Any]) -> list[str]:
    problems = []
    if got.get("temporaries"):
        problems.append(f"temporary files left: {got['temporaries']}")
    if ref["cells"] != got["cells"]:
        problems.append("experiment.json cells differ from the uninterrupted run's")
    missing = sorted(set(ref["runs"]) - set(got["runs"]))
    extra = sorted(set(got["runs"]) - set(ref["runs"]))
    if missing:
        problems.append(f"{len(missing)} run(s) lost: {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} unexpected run file(s): {extra[:5]}")
    for rel in sorted(set(ref["runs"]) & set(got["runs"])):
        if ref["runs"][rel] != got["runs"][rel]:
            where = _first_difference(ref["runs"][rel], got["runs"][rel])
            problems.append(f"{rel} differs from the uninterrupted run's (first at {where})")
    left = sorted(set(got.get("checkpoints", {})) - set(ref.get("checkpoints", {})))
    if left:
        problems.append(f"{len(left)} checkpoint folder(s) left after the runs finished: {left[:5]}")
    return problems


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    """The path of the first place where two nested values differ (e.g. ``records.search[3]``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{where}.{k} (only in one)"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}.{k}" if where else str(k))
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {str(a)[:80]} vs {str(b)[:80]}"


def run_command(out: Path, oracle: str, algorithms: list[str], seeds: int, budget: int,
                workers: int, until_optimum: bool, executor: str = "local") -> list[str]:
    args = ["run", "--oracle", oracle, "--seeds", str(seeds), "--budget", str(budget),
            "--workers", str(workers), "--executor", executor, "--out", str(out), "--quiet"]
    for a in algorithms:
        args += ["--algorithm", a]
    if until_optimum:
        args.append("--until-optimum")
    return _cli(*args)


def _timed(cmd: list[str], env=None, cwd=None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"crashproof: the uninterrupted command failed: {proc.stderr.decode()[-500:]}")
    return time.perf_counter() - t


_T_PYTHON: list[float] = []


def t_python() -> float:
    """Seconds for a fresh interpreter to import the command line (measured once)."""
    if not _T_PYTHON:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import harness.cli"], check=True)
        _T_PYTHON.append(time.perf_counter() - t)
    return _T_PYTHON[0]


def _kill_loop(cmd, kills, modes, rng, count_done, folder_problems, t_start, t_unit, log, env=None, cwd=None,
               complete=None, grace=15.0):
    """Interrupt ``cmd`` up to ``kills`` times, at moments tied to progress rather than to
    a clock (a busy machine makes clocks meaningless): a quarter of the signals land during
    start-up (uniform in [0, ``t_start``)); the others after 0, 1 or 2 more units of work
    (runs, networks, epochs) have been written, plus a uniform delay in [0, ``t_unit``), about
    one unit's time (after 0 more units: plus ``t_start``, past the start-up): between
    writes, in the middle of a unit or of its write. So every attempt
    makes a little progress and the work lasts for all the kills."""
    attempts: list[Attempt] = []
    for i in range(kills):
        if complete is not None and complete():
            log(f"  the work completed after {i} interruption(s); no more to interrupt")
            break
        mode = modes[i % len(modes)]
        before = count_done()
        # Python itself must be up before a program can handle Ctrl-C: before that the
        # interpreter prints its own traceback, so SIGINT waits for twice the time a fresh
        # interpreter needs to import the command line (the machine may be busy)
        not_before = 2 * t_python() if mode == "int" else 0.0
        if rng.random() < 0.25:
            delay, wait_for, when = rng.uniform(not_before, max(not_before, t_start)), None, "start-up"
        else:
            more = rng.randint(0, 2)
            delay, when = rng.uniform(0.0, t_unit), f"{more} more done"
            # with no unit to wait for, the signal would land during start-up whenever that
            # takes longer than a unit (one-shot epochs on a busy machine: 15 s against 2 s)
            delay += t_start if more == 0 else 0.0
            wait_for = (lambda target: lambda: count_done() >= target)(before + more)
        left_before, _ = folder_problems()
        rc, interrupted, err = interrupt_once(cmd, mode, delay, env=env, cwd=cwd, wait_for=wait_for,
                                              grace=grace, not_before=not_before)
        problems = check_interruption(mode, rc, interrupted, err)
        left, more = folder_problems()
        problems += more
        n_tmp = len(left)
        # leftovers of an earlier SIGKILL may remain if Ctrl-C came before the resume
        # cleaned them; a clean stop must add none of its own
        new_tmp = left - left_before
        if mode == "int" and interrupted and new_tmp:
            problems.append(f"Ctrl-C left {len(new_tmp)} new temporary file(s): {sorted(new_tmp)[:3]}")
        a = Attempt(mode, delay, rc, interrupted, before, count_done(), n_tmp, problems)
        attempts.append(a)
        log(f"  #{i + 1:3d} {mode:11s} {when:12s} +{delay:5.2f}s: status {rc}, done {before} -> {a.done_after}"
            f"{', temporaries ' + str(n_tmp) if n_tmp else ''}{'  PROBLEM: ' + '; '.join(problems) if problems else ''}")
    return attempts


def prove_run(work: Path, kills: int = 10, modes: tuple[str, ...] = MODES, seed: int = 0,
              oracle: str = "nb201/cifar10", algorithms: tuple[str, ...] = ("random", "evolution"),
              seeds: int = 8, budget: int = 2000, workers: int = 2, until_optimum: bool = True,
              log=print, executor: str = "local") -> tuple[list[Attempt], list[str]]:
    """Kill/resume ``nas-harness run`` ``kills`` times; return the attempts and all problems."""
    rng = random.Random(seed)
    ref, victim = work / "reference", work / "interrupted"
    for d in (ref, victim):
        shutil.rmtree(d, ignore_errors=True)
    t_ref = _timed(run_command(ref, oracle, list(algorithms), seeds, budget, workers, until_optimum, executor))
    ref_state, problems = run_folder_state(ref)
    n_runs = len(ref_state["runs"])
    cmd = run_command(victim, oracle, list(algorithms), seeds, budget, workers, until_optimum, executor)
    t_start = _timed(run_command(ref, oracle, list(algorithms), seeds, budget, workers, until_optimum, executor))
    log(f"reference: {n_runs} runs in {t_ref:.1f}s (start-up and finding them done: {t_start:.1f}s)")

    def count_done():
        return len(list(victim.glob("runs/*/*/seed-*.parquet")))

    def folder_problems():
        state, probs = run_folder_state(victim)
        return frozenset(state.get("temporaries", [])), probs

    t_unit = max(t_ref - t_start, 0.1) * workers / max(n_runs, 1)
    attempts = _kill_loop(cmd, kills, modes, rng, count_done, folder_problems, t_start, t_unit, log,
                          complete=lambda: count_done() >= n_runs, grace=15.0 if executor == "local" else 150.0)
    final = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if final.returncode != 0:
        problems.append(f"the final resume failed: {final.stderr.decode()[-500:]}")
    state, more = run_folder_state(victim)
    problems += more + compare_states(ref_state, state)
    for a in attempts:
        problems += [f"attempt {a.mode} after {a.delay:.2f}s: {p}" for p in a.problems]
    return attempts, problems


# --- one-shot runs ------------------------------------------------------------------------------
#: the tiny one-shot configuration the mode runs by default: an NB201 supernet of 4 channels
#: and one cell a stage on 64 of scikit-learn's digits (tests/test_one_shot.py's TINY)
ONE_SHOT_TINY = {"C": 4, "N": 1, "max_train": 64, "batch_size": 32}


def oneshot_command(out: Path, methods: list[str], seeds: int, epochs: int, workers: int,
                    oracle: str = "nb201/cifar10", params: dict[str, Any] | None = None) -> list[str]:
    """``nas-harness run`` of one-shot ``methods`` (names of algorithms.one_shot's registry,
    each optionally ``name:k=v,...`` whose values win) with ``params`` (default
    :data:`ONE_SHOT_TINY`) and ``epochs`` epochs, ``seeds`` seeds, on ``oracle`` (the NB201
    space names the derived cells; a CIFAR-10 table is no ground truth for digits, so the
    records' search and report values are NaN)."""
    args = ["run", "--oracle", oracle, "--seeds", str(seeds), "--workers", str(workers),
            "--out", str(out), "--quiet"]
    for m in methods:
        name, _, own = m.partition(":")
        spec = {**(ONE_SHOT_TINY if params is None else params), "epochs": epochs}
        spec.update(kv.split("=", 1) for kv in own.split(",") if kv)
        args += ["--algorithm", f"{name}:" + ",".join(f"{k}={v}" for k, v in spec.items())]
    return _cli(*args)


class _EpochsDone:
    """Loop epochs a one-shot results folder holds: the records of every run file (one row
    an epoch; DDAS's loop epochs are more than its ``epochs``) plus the epoch of every
    checkpoint of a run not yet written. Polled every 10 ms while a command runs, so each
    file is read once per version."""

    def __init__(self, out: Path):
        self.out = out
        self._seen: dict[tuple[str, int, int], int] = {}

    def __call__(self) -> int:
        import pyarrow.parquet as pq
        n = 0
        for run in self.out.glob("runs/*/*/seed-*.parquet"):
            key = (str(run), 0, 0)     # written once, atomically: never another version
            if key not in self._seen:
                try:
                    self._seen[key] = pq.ParquetFile(run).metadata.num_rows
                except Exception:  # noqa: BLE001 -- reported by folder_problems
                    continue
            n += self._seen[key]
        for ckpt in self.out.glob("runs/*/*/seed-*.ckpt"):
            if ckpt.with_suffix(".parquet").exists():
                continue
            try:
                st = (ckpt / "state.pt").stat()
            except FileNotFoundError:
                continue
            key = (str(ckpt), st.st_ino, st.st_mtime_ns)
            if key not in self._seen:
                self._seen[key] = _checkpoint_epoch(ckpt)[0] or 0
            n += self._seen[key]
        return n


def _snapshot_checkpoints(out: Path, into: Path) -> None:
    """Copy every checkpoint's ``state.pt`` under ``into``/<checkpoint path>/epoch-E.pt (once
    an epoch), to compare its weights with an uninterrupted run's at the same epoch."""
    for ckpt in out.glob("runs/*/*/seed-*.ckpt"):
        epoch, why = _checkpoint_epoch(ckpt)
        if epoch is None or why:
            continue
        dest = into / ckpt.relative_to(out) / f"epoch-{epoch:04d}.pt"
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ckpt / "state.pt", dest)


def _same(a: Any, b: Any, where: str = "") -> str | None:
    """None when two checkpoint states are equal (tensors element for element, NaN equal to
    NaN), else where they first differ."""
    import torch
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ok = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
              and a.dtype == b.dtype and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
              and (not a.is_floating_point() or torch.equal(a.isnan(), b.isnan())))
        return None if ok else where
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where} (keys {sorted(set(a) ^ set(b), key=str)[:5]})"
        return next((w for k in a if (w := _same(a[k], b[k], f"{where}.{k}")) is not None), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where} (length {len(a)} vs {len(b)})"
        return next((w for i, (x, y) in enumerate(zip(a, b)) if (w := _same(x, y, f"{where}[{i}]")) is not None),
                    None)
    return None if _comparable(a) == _comparable(b) else f"{where}: {str(a)[:60]} vs {str(b)[:60]}"


def _state_without_measured(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's state without what is measured or owed to the process rather than the
    run: each record row's wall and CPU seconds (``cost``, ``cpu``), the per-epoch timings of
    the diagnostics, and torch's global generators. The methods draw from generators of their
    own (in their state, compared); the global ones are saved for the methods that would not,
    and hold whatever the process drew before the run, which differs between a ``nas-harness
    run`` worker and this process even when nothing of the run drew from them (at any depth:
    a method's trainer saves them too)."""
    loop = dict(state["loop"])
    loop["rows"] = [{k: v for k, v in r.items() if k not in ("cost", "cpu")} for r in loop["rows"]]
    loop["diag"] = _comparable(loop["diag"])
    return _without_global_rng({**state, "loop": loop})


def _without_global_rng(value: Any) -> Any:
    """``value`` without torch's global generator states (keys ``torch_cpu``, ``torch_cuda``)
    at any depth: the loop's and those a method's trainer saves (supernets.training)."""
    if isinstance(value, dict):
        return {k: _without_global_rng(v) for k, v in value.items() if k not in ("torch_cpu", "torch_cuda")}
    return value


def compare_snapshots(out: Path, snapshots: Path, log=print) -> tuple[int, list[str]]:
    """Run every snapshotted (cell, seed) of results folder ``out`` again, uninterrupted, in
    this process, and compare its checkpoint at each snapshotted epoch with the snapshot:
    weights, optimiser and architecture state, random generators and the loop's rows, all
    exactly (measured seconds aside). Returns (checkpoints compared, problems)."""
    from harness.one_shot import run_one_shot
    from harness.results import ResultsStore
    from harness.runner import RunConfig
    from oracles.registry import load_oracle
    import torch

    by_folder = {c.folder: c for c in ResultsStore(out).cells()}
    problems: list[str] = []
    compared = 0
    for ckpt in sorted(snapshots.glob("runs/*/*/seed-*.ckpt")):
        cell = by_folder[str(ckpt.parent.relative_to(snapshots))]
        seed = int(ckpt.name[len("seed-"):-len(".ckpt")])
        wanted = {int(p.stem[len("epoch-"):]): p for p in ckpt.glob("epoch-*.pt")}
        c = cell.config
        config = RunConfig.from_settings(c["algorithm"], c["params"], c["oracle"], c)
        with tempfile.TemporaryDirectory(prefix="crashproof-ref-") as tmp:
            ref_ckpt = Path(tmp) / "run.ckpt"

            def check(epoch: int) -> None:
                nonlocal compared
                if epoch not in wanted:
                    return
                ref = torch.load(ref_ckpt / "state.pt", map_location="cpu", weights_only=True)
                got = torch.load(wanted[epoch], map_location="cpu", weights_only=True)
                where = _same(_state_without_measured(ref), _state_without_measured(got))
                compared += 1
                if where is not None:
                    problems.append(f"{ckpt.relative_to(snapshots)} after epoch {epoch} differs from an "
                                    f"uninterrupted run's checkpoint (first at {where})")

            _, summary = run_one_shot(config, load_oracle(c["oracle"]), seed, ckpt=ref_ckpt, on_epoch=check)
            if summary.get("failed"):
                problems.append(f"the uninterrupted run of {cell.key}, seed {seed}, failed: {summary['failed']}")
    log(f"  {compared} checkpoint(s) of the interrupted runs compared with uninterrupted runs' at the same epoch")
    return compared, problems


def prove_oneshot(work: Path, kills: int = 10, modes: tuple[str, ...] = MODES, seed: int = 0,
                  methods: tuple[str, ...] = ("darts", "gdas"), seeds: int = 2, epochs: int = 4,
                  workers: int = 2, oracle: str = "nb201/cifar10", params: dict[str, Any] | None = None,
                  weights: bool = True, log=print) -> tuple[list[Attempt], list[str]]:
    """Kill/resume ``nas-harness run`` of one-shot ``methods`` ``kills`` times; return the
    attempts and all problems.

    As :func:`prove_run`, with one-shot runs (:func:`oneshot_command`: ``seeds`` seeds of
    each method, ``epochs`` epochs each, ``workers`` processes, the supernet ``params``,
    default :data:`ONE_SHOT_TINY`), whose unit of progress is an epoch (a checkpoint
    written), not a run. Besides the folder comparison (records and summaries, measured
    seconds and the resume note aside), every start must have found its checkpoint usable
    (a final summary's ``diagnostics["resume"]`` is None or "resumed after epoch E"), no
    checkpoint may be unreadable after an interruption or left once its run is written, and,
    with ``weights`` (default True), the checkpoint found after each interruption must equal,
    weights, optimisers and random generators included, an uninterrupted run's at the same
    epoch (:func:`compare_snapshots`; the harness removes a run's checkpoint once its file is
    written, so the final weights are only seen through the final records).
    """
    import torch  # noqa: F401 -- imported now, not while the first kill waits for a checkpoint
    rng = random.Random(seed)
    ref, victim, snaps = work / "oneshot-reference", work / "oneshot-interrupted", work / "oneshot-snapshots"
    for d in (ref, victim, snaps):
        shutil.rmtree(d, ignore_errors=True)
    t_ref = _timed(oneshot_command(ref, list(methods), seeds, epochs, workers, oracle, params))
    ref_state, problems = run_folder_state(ref)
    n_runs = len(ref_state["runs"])
    cmd = oneshot_command(victim, list(methods), seeds, epochs, workers, oracle, params)
    t_start = _timed(oneshot_command(ref, list(methods), seeds, epochs, workers, oracle, params))
    count_done = _EpochsDone(victim)
    n_epochs = sum(len(r["records"]["sample"]) for r in ref_state["runs"].values())
    log(f"reference: {n_runs} one-shot runs, {n_epochs} loop epochs in all, in {t_ref:.1f}s (start-up and "
        f"finding them done: {t_start:.1f}s)")

    def folder_problems():
        state, probs = run_folder_state(victim)
        if weights:
            _snapshot_checkpoints(victim, snaps)
        return frozenset(state.get("temporaries", [])), probs

    # the reference's own measured epoch seconds give the unit: its whole time over its
    # epochs also counts each run's set-up (data, supernet, the final derivation), which for
    # ENAS was 6 times an epoch, so a signal due within an epoch came after the last one
    from harness.results import ResultsStore
    costs = [c for _, _, table in ResultsStore(ref).iter_runs(with_records=True)
             for c in table.column("cost").to_pylist()]
    t_unit = max(sorted(costs)[len(costs) // 2], 0.01) if costs else \
        max(t_ref - t_start, 0.1) * workers / max(n_epochs, 1)
    log(f"  an epoch takes {t_unit:.2f}s (median of the reference's)")
    attempts = _kill_loop(cmd, kills, modes, rng, count_done, folder_problems, t_start, t_unit, log,
                          complete=lambda: len(list(victim.glob("runs/*/*/seed-*.parquet"))) >= n_runs)
    final = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if final.returncode != 0:
        problems.append(f"the final resume failed: {final.stderr.decode()[-500:]}")
    state, more = run_folder_state(victim)
    problems += more + compare_states(ref_state, state)
    resumed = {rel: note for rel, note in state["resume"].items() if note}
    for rel, note in sorted(resumed.items()):
        if not note.startswith("resumed after epoch "):
            problems.append(f"{rel}: its last start did not resume its checkpoint: {note}")
    log(f"  {len(resumed)} of {n_runs} run(s) finished by a resumed start: "
        + (", ".join(sorted(set(resumed.values()))) or "none"))
    if weights and snaps.exists():
        problems += compare_snapshots(victim, snaps, log)[1]
    for a in attempts:
        problems += [f"attempt {a.mode} after {a.delay:.2f}s: {p}" for p in a.problems]
    return attempts, problems


# --- the table collector --------------------------------------------------------------------------
def collect_command(out: Path, table: Path, subset: int, epochs: int, workers: int, seeds: int) -> list[str]:
    return _cli("collect", "convnet", "--preset", "digits", "--dataset", "digits", "--seeds", str(seeds),
                "--subset", str(subset), "--epochs", str(epochs), "--workers", str(workers),
                "--out", str(out), "--table", str(table), "--name", "crashproof-digits", "--no-progress")


def collect_state(table_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """A finished table's comparable contents (measured metrics dropped)."""
    import numpy as np

    from oracles.errors import UserError
    from oracles.table import load_table
    if not (table_dir / "manifest.json").exists():
        return None, [f"no table at {table_dir}"]
    try:
        t = load_table(table_dir)
    except UserError as exc:
        return None, [f"table {table_dir}: {exc}"]
    keep = [i for i, m in enumerate(t.metrics) if m not in MEASURED_METRICS]
    values = np.asarray(t.values)[..., keep]
    return {"archs": list(map(str, t.archs)), "seeds": t.seeds, "fidelities": t.fidelities,
            "metrics": [t.metrics[i] for i in keep], "values": values.tobytes(),
            "columns": {k: np.asarray(v).tobytes() for k, v in t.columns.items()}}, []


def shard_problems(out: Path) -> tuple[frozenset[str], list[str]]:
    """Shards with a row torn by a kill (expected after SIGKILL, re-trained on resume) and
    any other damage (a problem)."""
    from oracles.collectors.convnet import read_shards
    from oracles.errors import UserError
    try:
        _, stats = read_shards(out)
    except UserError as exc:
        return frozenset(), [str(exc)]
    return frozenset(stats["torn_shards"]), []


def prove_collect(work: Path, kills: int = 6, modes: tuple[str, ...] = MODES, seed: int = 0,
                  subset: int = 6, epochs: int = 1, workers: int = 2, seeds: int = 1,
                  log=print) -> tuple[list[Attempt], list[str]]:
    """Kill/resume ``nas-harness collect convnet`` (digits, a small subset, 1 epoch)."""
    from oracles.collectors.convnet import read_shards
    rng = random.Random(seed)
    ref, victim = work / "collect-reference", work / "collect-interrupted"
    for d in (ref, victim):
        shutil.rmtree(d, ignore_errors=True)
    t_ref = _timed(collect_command(ref, ref / "table", subset, epochs, workers, seeds))
    ref_state, problems = collect_state(ref / "table")
    cmd = collect_command(victim, victim / "table", subset, epochs, workers, seeds)
    t_start = _timed(collect_command(ref, ref / "table", subset, epochs, workers, seeds))
    log(f"reference collection: {subset * seeds} networks in {t_ref:.1f}s (start-up: {t_start:.1f}s)")

    def count_done():
        try:
            return len(read_shards(victim)[0])
        except Exception:  # reported by folder_problems
            return -1

    t_unit = max(t_ref - t_start, 0.1) * workers / max(subset * seeds, 1)
    attempts = _kill_loop(cmd, kills, modes, rng, count_done, lambda: shard_problems(victim), t_start, t_unit, log,
                          complete=lambda: (victim / "table" / "manifest.json").exists())
    final = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if final.returncode != 0:
        problems.append(f"the final resume failed: {final.stderr.decode()[-500:]}")
    state, more = collect_state(victim / "table")
    problems += more
    if state is not None and ref_state is not None and state != ref_state:
        problems.append("the resumed table differs from the uninterrupted collection's")
    rows, stats = read_shards(victim)
    if stats["duplicates"]:
        log(f"  note: {stats['duplicates']} row(s) trained twice (killed after writing, before the "
            "resume skipped them); the table keeps the first")
    leftovers = [p for p in victim.rglob("*") if p.name.startswith(".") and p.name != ".lock"]
    if leftovers:
        problems.append(f"temporary files left: {leftovers[:5]}")
    for a in attempts:
        problems += [f"attempt {a.mode} after {a.delay:.2f}s: {p}" for p in a.problems]
    return attempts, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.crashproof", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="kill and resume `nas-harness run`")
    r.add_argument("--oracle", default="nb201/cifar10")
    r.add_argument("--algorithm", action="append", dest="algorithms")
    r.add_argument("--seeds", type=int, default=8)
    r.add_argument("--budget", type=int, default=2000)
    r.add_argument("--no-until-optimum", action="store_true")
    r.add_argument("--executor", choices=("local", "ray"), default="local")
    o = sub.add_parser("oneshot", help="kill and resume `nas-harness run` of one-shot methods (tiny supernets)")
    o.add_argument("--method", action="append", dest="methods",
                   help="a one-shot method, optionally with parameters (darts:order=2); repeat for "
                        "several (default: darts and gdas)")
    o.add_argument("--seeds", type=int, default=2)
    o.add_argument("--epochs", type=int, default=4, help="epochs of each run (default 4)")
    o.add_argument("--oracle", default="nb201/cifar10",
                   help="an NB201 oracle (names the derived cells; default nb201/cifar10, no ground "
                        "truth for digits)")
    o.add_argument("--no-weights", action="store_true",
                   help="skip comparing the checkpoints found after each interruption with "
                        "uninterrupted runs' (which runs every interrupted run again in this process)")
    c = sub.add_parser("collect", help="kill and resume `nas-harness collect convnet` (digits)")
    c.add_argument("--subset", type=int, default=6, help="networks to train")
    c.add_argument("--epochs", type=int, default=1)
    c.add_argument("--seeds", type=int, default=1)
    for q in (r, o, c):
        q.add_argument("--kills", type=int, default=20, help="interruptions (default 20)")
        q.add_argument("--signals", default=",".join(MODES),
                       help="comma-separated: int (Ctrl-C to the group), kill (SIGKILL to the group), "
                            "kill-parent (SIGKILL to the main process only)")
        q.add_argument("--workers", type=int, default=2)
        q.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
        q.add_argument("--work", help="folder for the reference and interrupted copies (default: a temp dir)")
    args = p.parse_args(argv)
    restore_sigint()  # else, started with `cmd &`, every Ctrl-C it sends would be dropped
    modes = tuple(m.strip() for m in args.signals.split(","))
    if not set(modes) <= set(MODES):
        p.error(f"--signals: choose from {', '.join(MODES)}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="nas-harness-crashproof-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.what == "run":
        attempts, problems = prove_run(work, args.kills, modes, args.seed, args.oracle,
                                       tuple(args.algorithms or ("random", "evolution")), args.seeds,
                                       args.budget, args.workers, not args.no_until_optimum,
                                       executor=args.executor)
    elif args.what == "oneshot":
        attempts, problems = prove_oneshot(work, args.kills, modes, args.seed,
                                           tuple(args.methods or ("darts", "gdas")), args.seeds, args.epochs,
                                           args.workers, args.oracle, weights=not args.no_weights)
    else:
        attempts, problems = prove_collect(work, args.kills, modes, args.seed, args.subset, args.epochs,
                                           args.workers, args.seeds)
    landed = sum(a.interrupted for a in attempts)
    by_mode = {m: sum(a.interrupted for a in attempts if a.mode == m) for m in modes}
    print(f"{landed} interruption(s) landed mid-run ({', '.join(f'{m}: {n}' for m, n in by_mode.items())}); "
          f"{len(problems)} problem(s)")
    for prob in problems:
        print(f"PROBLEM: {prob}")
    print(f"folders kept in {work}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
