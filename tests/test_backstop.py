"""Backstops: what leaves a process's group is found at its stop, and nothing outlives a SIGKILLed test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest
from apps.behave import Behave
from pids import alive, kill_if_alive, owner, read_line, wait_dead

from zmqtest import backstop, groups
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings

APPS = Path(__file__).parent / "apps"
BEHAVE = str(APPS / "behave.py")
SETTINGS = Settings(stop_grace=0.2, startup_timeout=30.0)
KINDS = ["fork", "forkserver", "spawn", "command"]


def start_escaping(procs: ProcessManager, kind: str) -> list[int]:
    """Start behave.py ``escape`` as ``kind``; the pids of its two descendants outside its group."""
    target = [sys.executable, BEHAVE, "escape"] if kind == "command" else Behave("escape")
    start_method = None if kind == "command" else kind
    handle = procs.start(target, start_method=start_method, ready=r"ready escaped=(\S+)")  # type: ignore[arg-type]
    assert handle.endpoint is not None
    escaped = [int(pid) for pid in handle.endpoint.split(",")]
    for pid in escaped:
        assert os.getpgid(pid) != handle.pid  # they did leave its group
    return escaped


@pytest.mark.parametrize("kind", KINDS)
def test_descendants_that_left_the_group_are_killed_with_it(tmp_path: Path, kind: str) -> None:
    """A command started with ``start_new_session`` and a double-forked daemon: gone when the test's stop ends."""
    escaped: list[int] = []
    try:
        with ProcessManager(tmp_path, settings=SETTINGS) as procs:
            escaped = start_escaping(procs, kind)
            assert all(alive(pid) for pid in escaped)
        assert [pid for pid in escaped if alive(pid)] == []  # no grace: the stop waits until they are gone
    finally:
        kill_if_alive(escaped)


@pytest.mark.parametrize("kind", ["spawn", "command"])
def test_what_an_escaped_daemon_started_goes_with_it_whatever_its_environment(tmp_path: Path, kind: str) -> None:
    """A supervisor that daemonizes and starts a worker with an empty environment (circusd --daemon's watchers)."""
    supervised: list[int] = []
    try:
        with ProcessManager(tmp_path, settings=SETTINGS) as procs:
            target = [sys.executable, BEHAVE, "supervisor"] if kind == "command" else Behave("supervisor")
            handle = procs.start(
                target,  # type: ignore[arg-type]
                start_method=None if kind == "command" else kind,
                ready=r"ready supervised=(\S+)",
                expect_exit=0,
            )
            assert handle.endpoint is not None
            supervised = [int(pid) for pid in handle.endpoint.split(",")]
            assert handle.wait(30) == 0  # the daemon and its worker live on
            assert all(alive(pid) for pid in supervised)
        assert [pid for pid in supervised if alive(pid)] == []
    finally:
        kill_if_alive(supervised)


def test_a_process_under_test_and_all_it_runs_carry_its_mark(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "escape"], ready=r"ready escaped=(\S+)")
        assert handle.mark is not None
        assert handle.mark.startswith(f"{backstop.interpreter()}/")
        assert handle.endpoint is not None
        marked = {pid for pid, _ in groups.marked(handle.mark)}
        assert {handle.pid, *(int(pid) for pid in handle.endpoint.split(","))} <= marked
        other = procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
        assert other.mark != handle.mark
        assert handle.pid not in {pid for pid, _ in groups.marked(other.mark or "")}


@pytest.mark.parametrize("mode", ["window-fork", "window-forkserver", "window-spawn", "window-command"])
def test_an_interpreter_killed_between_a_start_and_its_registration_leaves_nothing(tmp_path: Path, mode: str) -> None:
    """The owner is SIGKILLed after the child started and before the watchdog heard of it (issue 10, defect 7)."""
    with owner(tmp_path, mode) as (process, line, cleanup):
        child = int(line.split()[1])
        cleanup.extend(descendant.pid for descendant in psutil.Process(process.pid).children(recursive=True))
        assert child in cleanup
        process.kill()
        process.wait(10)
        left = wait_dead(cleanup, 5.0)
        assert left == [], [psutil.Process(pid).cmdline() for pid in left if alive(pid)]


def test_the_watchdog_kills_what_left_the_group_when_its_owner_is_sigkilled(tmp_path: Path) -> None:
    with owner(tmp_path, "escape") as (process, line, cleanup):
        cleanup.extend(int(word) for word in line.split()[1:])
        assert len(cleanup) == 3
        assert process.stdout is not None
        uncovered = int(read_line(process.stdout.fileno(), 10).split()[1])  # README's "Not covered": killed by us
        cleanup.append(uncovered)
        assert all(alive(pid) for pid in cleanup)
        process.kill()
        process.wait(10)
        assert wait_dead(cleanup[:3], 5.0) == []
