"""Kill-and-resume proof: interrupt an experiment (or a table collection) at random moments,
resume it each time, and check that nothing was lost, duplicated or half-written.

Usage (the data directory must hold the oracle's table, e.g. after
``nas-harness oracles import nb201 ../shared/data/nb201``)::

    python -m harness.crashproof run --kills 30 --seeds 12 --budget 3000 --workers 2
    python -m harness.crashproof collect --kills 10 --subset 8

What one check does (:func:`prove_run`; :func:`prove_collect` is the same for
``nas-harness collect convnet``):

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
    return key in MEASURED_SUMMARY or key.endswith(("_seconds", "_s"))


def comparable_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A run summary without what is measured rather than determined: wall and CPU times,
    and the timings algorithms report among their diagnostics (``*_seconds``, ``*_s``)."""
    out = {k: v for k, v in summary.items() if not _measured(k)}
    if isinstance(out.get("diagnostics"), dict):
        out["diagnostics"] = {k: v for k, v in out["diagnostics"].items() if not _measured(k)}
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
    if mode == "int":
        # 0: the run finished while the signal was on its way
        if rc not in (130, 0):
            problems.append(f"Ctrl-C gave exit status {rc}, not 130: {err.strip()[-300:]}")
        if rc == 130 and RESUME_MESSAGE not in err:
            problems.append(f"Ctrl-C did not print the resume message: {err.strip()[-300:]}")
    return problems


# --- experiments -------------------------------------------------------------------------------
def run_folder_state(out: Path) -> tuple[dict[str, Any], list[str]]:
    """Comparable contents of a results folder, and the problems found reading it."""
    import pyarrow.parquet as pq

    from harness.results import ResultsStore, fingerprint

    problems: list[str] = []
    state: dict[str, Any] = {"cells": None, "runs": {}}
    store = ResultsStore(out)
    if not out.exists():
        return state, problems
    tmp = store.temporaries()
    if tmp:
        state["temporaries"] = [str(p.relative_to(out)) for p in tmp]
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
        if path.name.startswith((".", "_")):
            continue  # temporaries (reported above) and records of failed runs (retried)
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
        meta["summary"] = comparable_summary(meta["summary"])
        records = table.drop_columns([c for c in ("algo_cpu_s",) if c in table.column_names]).to_pydict()
        state["runs"][rel] = {"meta": meta, "records": records}
    return state, problems


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
            problems.append(f"{rel} differs from the uninterrupted run's")
    return problems


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
    (runs, networks) have been written, plus a uniform delay in [0, ``t_unit``), about one
    unit's time: between writes, in the middle of a unit or of its write. So every attempt
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
            problems.append(f"Ctrl-C left {len(new_tmp)} new temporary file(s)")
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
    c = sub.add_parser("collect", help="kill and resume `nas-harness collect convnet` (digits)")
    c.add_argument("--subset", type=int, default=6, help="networks to train")
    c.add_argument("--epochs", type=int, default=1)
    c.add_argument("--seeds", type=int, default=1)
    for q in (r, c):
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
