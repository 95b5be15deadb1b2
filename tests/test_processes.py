"""The shared process and file machinery (harness.processes, harness.files): bounded submission,
safe spawned workers, the folder lock and the atomic write. Ctrl-C and kill -9 against real
experiments and collections: tests/test_crash_safety.py."""

import os
import signal

import pytest

from harness.files import FileLock, atomic_write_bytes
from harness.processes import bounded, map_unordered
from oracles.errors import UserError


class FakeBackend:
    """Handles are the items; each wait finishes the oldest one submitted."""

    def __init__(self, fail=None):
        self.in_flight, self.most, self.aborted, self.fail = 0, 0, None, fail

    def submit(self, item):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        return item

    def wait_any(self, handles):
        self.in_flight -= 1
        return handles[:1], handles[1:]

    def result(self, handle):
        if handle == self.fail:
            raise ValueError(f"task {handle} failed")
        return handle * 10

    def abort(self, handles):
        self.aborted = list(handles)

    def run(self, items, limit):
        return bounded(items, self.submit, self.wait_any, self.result, limit, self.abort)


def test_bounded_keeps_at_most_limit_in_flight_and_yields_everything():
    backend = FakeBackend()
    assert list(backend.run(range(10), limit=3)) == [i * 10 for i in range(10)]
    assert backend.most == 3 and backend.aborted is None


def test_bounded_submits_falsy_items_too():
    # None and 0 are tasks like any other (the loop once stopped at the first None)
    backend = FakeBackend()
    backend.result = lambda handle: handle
    assert list(backend.run([0, None, 2], limit=1)) == [0, None, 2]


def test_bounded_aborts_what_is_in_flight_on_error_and_on_close():
    backend = FakeBackend(fail=2)
    with pytest.raises(ValueError, match="task 2 failed"):
        list(backend.run(range(10), limit=3))
    assert backend.aborted == [3, 4]  # 0 and 1 done, 2 raised, 3 and 4 still running
    backend = FakeBackend()
    results = backend.run(range(10), limit=4)
    assert next(results) == 0
    results.close()  # the consumer stops early (an interrupt outside the generator)
    assert backend.aborted == [1, 2, 3]


def _init(path):
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")


def test_one_worker_runs_here_after_the_initializer(tmp_path):
    marker = tmp_path / "init"
    assert list(map_unordered(abs, [-1, 2, -3], 1, initializer=_init, initargs=(marker,))) == [1, 2, 3]
    assert marker.read_text() == f"{os.getpid()}\n"


def test_pool_workers_ignore_ctrl_c_and_run_the_initializer(tmp_path):
    marker = tmp_path / "init"
    handlers = list(map_unordered(signal.getsignal, [signal.SIGINT] * 4, 2, initializer=_init,
                                  initargs=(marker,)))
    assert handlers == [signal.SIG_IGN] * 4  # Ctrl-C is the parent's to handle
    pids = marker.read_text().split()
    assert 1 <= len(pids) <= 2 and str(os.getpid()) not in pids  # once per worker, in the workers


def test_a_failing_task_stops_the_pool_and_raises():
    with pytest.raises(ValueError):
        list(map_unordered(int, ["1", "x", "3", "4"], 2))


def test_file_lock_refuses_a_second_holder_until_released(tmp_path):
    path = tmp_path / ".lock"
    with FileLock(path, "busy: wait for it"):
        with pytest.raises(UserError, match="^busy: wait for it$"):
            FileLock(path, "busy: wait for it")
    FileLock(path, "busy").release()  # released: free again


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "file.json"
    atomic_write_bytes(path, lambda fh: fh.write(b"old"))

    def half_then_fail(fh):
        fh.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, half_then_fail)
    assert path.read_bytes() == b"old" and os.listdir(path.parent) == ["file.json"]
