"""Kill-and-resume, proven: interrupted experiments end up identical to uninterrupted ones.

These are the CI-sized versions of ``python -m harness.crashproof`` (which does many kills at
random moments): a few interruptions of each kind, small experiments.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from optional import require_module

from harness import crashproof
from harness.results import ResultsStore


def test_random_kills_and_resumes_lose_nothing(nb201_env, tmp_path):
    attempts, problems = crashproof.prove_run(
        tmp_path, kills=4, seed=1, algorithms=("random",),
        seeds=4, budget=15625, workers=2, until_optimum=True, log=lambda *a: None)
    assert problems == []
    assert len(attempts) >= 1 and all(a.rc in (0, 130, -9) for a in attempts)
    # something was interrupted with runs still to do, so a resume was really tested (an
    # experiment that always finished before the signal passed the lines above)
    assert any(a.interrupted and a.done_after < 4 for a in attempts), attempts


def test_killed_and_resumed_one_shot_runs_equal_an_uninterrupted_one(nb201_env, tmp_path):
    """`python -m harness.crashproof oneshot`, CI-sized: one GDAS run of 4 epochs on a tiny
    supernet, Ctrl-C then SIGKILL, each within about an epoch after one more checkpoint was
    written (seed 0 of the kill moments ties both to progress: see crashproof._kill_loop)."""
    require_module("torch")
    require_module("sklearn")
    # the weight check reruns the run in this process: run_one_shot sets the method's one
    # torch thread itself
    attempts, problems = crashproof.prove_oneshot(
        tmp_path, kills=2, modes=("int", "kill"), seed=0, methods=("gdas",), seeds=1, epochs=4,
        workers=1, log=lambda *a: None)
    assert problems == []
    assert any(a.interrupted and a.done_after < 4 for a in attempts), attempts
    # the run was finished by a start that resumed its checkpoint, so resuming was tested
    [(_, meta, _)] = list(ResultsStore(tmp_path / "oneshot-interrupted").iter_runs())
    assert meta["summary"]["diagnostics"]["resume"].startswith("resumed after epoch "), meta["summary"]
    # the checkpoints seen after the interruptions were compared with an uninterrupted run's
    assert list((tmp_path / "oneshot-snapshots").rglob("epoch-*.pt"))


def test_a_resume_removes_the_checkpoint_of_a_run_killed_after_its_file_was_written(nb201_env, tmp_path):
    # write_task writes the run file, then removes the checkpoint: a kill in between left the
    # checkpoint of a finished run, which no later start removed (the run is done, never rerun)
    require_module("torch")
    require_module("sklearn")
    from harness.experiment import Experiment, execute
    from harness.one_shot import checkpoint_dir
    exp = Experiment(oracles=["nb201/cifar10"], algorithms=["gdas:C=4,N=1,max_train=32,batch_size=32,epochs=1"],
                     seeds=1, out=str(tmp_path))
    [cell], _, ran = execute(exp, progress=False)
    assert ran == 1
    left = checkpoint_dir(tmp_path, cell, 0)
    left.mkdir()
    (left / "meta.json").write_text("{}")     # what the kill left (its content does not matter)
    assert execute(exp, progress=False)[1:] == (1, 0)
    assert not left.exists()


def test_one_shot_comparison_ignores_measured_values_and_the_resume_note_only():
    nan = float("nan")
    a = {"wall_s": 3.0, "best_report": nan, "total_cost": 2.5, "n_queries": 4,
         "diagnostics": {"resume": None, "process_cpu_s": 1.0,
                         "epochs": [{"seconds": 0.3, "loop_cpu_seconds": 0.2, "train_loss": 2.25}]}}
    b = {"wall_s": 9.0, "best_report": nan, "total_cost": 7.5, "n_queries": 4,
         "diagnostics": {"resume": "resumed after epoch 2", "process_cpu_s": 4.0,
                         "epochs": [{"seconds": 0.9, "loop_cpu_seconds": 0.8, "train_loss": 2.25}]}}
    assert crashproof.comparable_summary(a, one_shot=True) == crashproof.comparable_summary(b, one_shot=True)
    # a query run's total cost is its simulated clock: compared
    assert crashproof.comparable_summary(a) != crashproof.comparable_summary(b)
    b["diagnostics"]["epochs"][0]["train_loss"] = 2.5
    assert crashproof.comparable_summary(a, one_shot=True) != crashproof.comparable_summary(b, one_shot=True)


# Ctrl-C in the instant between starting a spawned worker and handing it its start-up data
# (a window of microseconds, hit about once in 120 random Ctrl-Cs around pool start-up): the
# worker used to read a closed pipe and print a bootstrap traceback (EOFError). This script
# widens the window to 0.2 s and sends Ctrl-C inside it, every time. The extra thread stands
# for tqdm's monitor or Arrow's pools: the kernel hands the signal to a thread that does not
# block it, which is why blocking SIGINT in the main thread alone did not help.
_CTRL_C_IN_SPAWN = """
import os, signal, sys, threading, time
import multiprocessing.util as util
from harness.executors import LocalExecutor

def main():
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    real = util.spawnv_passfds
    def spawn_then_ctrl_c(*args):
        pid = real(*args)
        if "spawn_main" in str(args[1]) and not os.environ.get("SENT"):  # a pool worker
            os.environ["SENT"] = "1"
            os.killpg(0, signal.SIGINT)
            time.sleep(0.2)
        return pid
    util.spawnv_passfds = spawn_then_ctrl_c
    try:
        list(LocalExecutor(2).map_unordered(time.sleep, [0.5] * 4))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(1)

if __name__ == "__main__":
    main()
"""


def test_ctrl_c_while_a_worker_starts_is_quiet(tmp_path):
    script = tmp_path / "ctrl_c_in_spawn.py"
    script.write_text(_CTRL_C_IN_SPAWN)
    env = {k: v for k, v in os.environ.items() if k != "SENT"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          start_new_session=True, env=env)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted\n", proc.stderr


#: Seeds of the experiments the signal tests interrupt: random search to the optimum on
#: NB201 takes ~0.1 s of CPU a run, so 400 runs keep two workers busy for far longer than the
#: few tens of milliseconds between the first finished run and the signal.
LONG = 400


def _start(out, workers=2, seeds=LONG):
    cmd = crashproof.run_command(out, "nb201/cifar10", ["random"], seeds, 15625, workers, True)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_first_run(proc, out, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(out.glob("runs/*/*/seed-*.parquet")):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_ctrl_c_stops_the_pool_cleanly(nb201_env, tmp_path):
    out = tmp_path / "o"
    proc = _start(out)
    assert _wait_for_first_run(proc, out), "no run finished"
    assert proc.poll() is None, "the experiment finished before the signal: make it longer"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err
    assert len(list(out.glob("runs/*/*/seed-*.parquet"))) < LONG  # it did stop early
    assert "run the same command again to resume" in err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert crashproof._wait_group_gone(proc.pid, 10), "pool workers outlived Ctrl-C"
    assert ResultsStore(out).temporaries() == []


def test_workers_of_a_killed_parent_exit(nb201_env, tmp_path):
    out = tmp_path / "o"
    proc = _start(out)
    assert _wait_for_first_run(proc, out), "no run finished"
    assert proc.poll() is None, "the experiment finished before the kill: make it longer"
    proc.kill()  # SIGKILL to the parent only: its workers are orphaned
    proc.wait()
    assert crashproof._wait_group_gone(proc.pid, 10), "orphaned workers kept running"


def test_a_resume_removes_temporaries_of_a_killed_write(nb201_env, tmp_path):
    from harness.experiment import Experiment, execute
    exp = Experiment(oracles=["nb201/cifar10"], algorithms=["random"], seeds=2, budget=50, out=str(tmp_path))
    execute(exp, progress=False)
    folder = next(tmp_path.glob("runs/*/*"))
    torn = [folder / ".seed-000001.parquet.abc123.tmp", tmp_path / ".experiment.json.xyz.tmp"]
    for p in torn:
        p.write_bytes(b"PAR1 half a file")
    assert ResultsStore(tmp_path).temporaries() == sorted(torn)
    assert execute(exp, progress=False)[1:] == (2, 0)
    assert ResultsStore(tmp_path).temporaries() == []


def test_two_commands_on_one_folder_are_refused(nb201_env, tmp_path):
    from oracles.errors import UserError
    store = ResultsStore(tmp_path)
    with store.session():
        with pytest.raises(UserError, match="another nas-harness command is writing"):
            with ResultsStore(tmp_path).session():
                pass
    with store.session():  # released afterwards
        pass


def test_ctrl_c_stops_the_collector_cleanly(tmp_path):
    """`nas-harness collect convnet` under Ctrl-C: status 130, the resume message, no worker
    traceback, no process left (kill -9 and resume: tests/test_collector.py)."""
    require_module("torch")     # the collector trains with torch: a test of it needs it
    require_module("sklearn")
    out = tmp_path / "work"
    # 64 networks x 2 seeds: the signal, sent once the first shard line is written, lands
    # long before the last network trains
    cmd = crashproof.collect_command(out, out / "table", subset=64, epochs=1, workers=2, seeds=2)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        shards = list((out / "shards").glob("*.jsonl")) if (out / "shards").is_dir() else []
        if any(p.stat().st_size for p in shards):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the collection finished before the signal: make it longer"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    assert not (out / "table" / "manifest.json").exists()   # stopped before the table
    assert "run the same command again to resume" in err and "Traceback" not in err, err
    assert crashproof._wait_group_gone(proc.pid, 10), "collector workers outlived Ctrl-C"


def test_a_ctrl_c_swallowed_by_a_callback_still_stops_the_run(tmp_path, capsys):
    # Python cannot raise out of a weakref callback: a Ctrl-C landing in one (the import
    # machinery runs them while modules load) used to be printed as "Exception ignored" and
    # lost, and the run went on. Here a callback swallows one before the run starts.
    import weakref
    from harness import interrupts
    from harness.cli import main

    class Thing:
        pass

    def callback(_):
        raise KeyboardInterrupt

    interrupts.install()
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None
    out = tmp_path / "o"
    rc = main(["run", "--oracle", "convnet-digits", "--algorithm", "random", "--seeds", "2", "--quiet",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130 and err == ("nas-harness: interrupted; finished runs are saved, "
                                 "run the same command again to resume\n"), err
    assert not list(out.glob("runs/*/*/seed-*.parquet"))
    assert main(["run", "--oracle", "convnet-digits", "--algorithm", "random", "--seeds", "2", "--quiet",
                 "--out", str(out)]) == 0  # honoured once, then forgotten
