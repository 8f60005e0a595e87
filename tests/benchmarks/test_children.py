"""A benchmark's children die with it, even when it is killed (benchmarks/children.py):
an orphaned server pool kept its PostgreSQL connections and the next run failed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.children import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0

_POPEN_PARENT = """
import subprocess, sys, time
from benchmarks.children import die_with_parent

sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
guarded = subprocess.Popen(sleep, preexec_fn=die_with_parent)
unguarded = subprocess.Popen(sleep)
print(guarded.pid, unguarded.pid, flush=True)
time.sleep(600)
"""

_SPAWN_PARENT = """
import multiprocessing, time
from tests.benchmarks.test_children import guarded_sleep

worker = multiprocessing.get_context("spawn").Process(target=guarded_sleep, daemon=True)
worker.start()
print(worker.pid, flush=True)
time.sleep(600)
"""


def guarded_sleep() -> None:
    """A multiprocessing target as benchmarks/loadgen.run_worker begins: no preexec_fn
    there, the child asks for its SIGTERM itself."""
    parent = multiprocessing.parent_process()
    die_with_parent(parent.pid if parent is not None else None)
    print("guarded", flush=True)
    time.sleep(600)


def _gone(pid: int) -> bool:
    """The process has ended. Its parent was killed, so it is reparented: not ours to
    wait for; a zombie its new parent has not reaped yet counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status or "\nState:\tX" in status


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not _gone(pid):
        assert time.monotonic() < deadline, f"child {pid} outlived its killed parent"
        time.sleep(0.05)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_popen_child_gets_sigterm_when_its_parent_is_killed() -> None:
    children: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _POPEN_PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            children = [int(pid) for pid in parent.stdout.readline().split()]
            guarded, unguarded = children
            parent.kill()  # SIGKILL: no finally, no atexit in the parent
            parent.wait(timeout=DEADLINE_S)
            _wait_gone(guarded)
            # The control: killing the parent alone ends no child.
            assert not _gone(unguarded)
        finally:
            parent.kill()
            for pid in children:
                _kill(pid)


def test_a_spawned_child_gets_sigterm_when_its_parent_is_killed() -> None:
    worker = None
    with subprocess.Popen(
        [sys.executable, "-c", _SPAWN_PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            worker = int(parent.stdout.readline())
            assert parent.stdout.readline() == "guarded\n"  # the prctl is in place
            parent.kill()
            parent.wait(timeout=DEADLINE_S)
            _wait_gone(worker)
        finally:
            parent.kill()
            if worker is not None:
                _kill(worker)


def test_a_child_whose_parent_is_already_gone_terminates_at_once() -> None:
    """A spawned child calls die_with_parent long after its fork: a parent that died
    in between sends no signal, the child sends it to itself."""
    done = subprocess.run(
        [
            *(sys.executable, "-c"),
            "import os; from benchmarks.children import die_with_parent; "
            "die_with_parent(os.getppid() + 1); print('still running')",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGTERM
    assert "still running" not in done.stdout
