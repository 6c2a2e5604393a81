"""Backstops: what leaves a process's group is found at its stop, and nothing outlives a SIGKILLed test."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from apps.behave import Behave

from zmqtest import backstop, groups
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings

APPS = Path(__file__).parent / "apps"
BEHAVE = str(APPS / "behave.py")
SETTINGS = Settings(stop_grace=0.2, startup_timeout=30.0)
KINDS = ["fork", "forkserver", "spawn", "command"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def kill_if_alive(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_dead(pids: list[int], seconds: float) -> list[int]:
    """Wait at most ``seconds`` for ``pids`` to be gone; those still running."""
    deadline = time.monotonic() + seconds
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        psutil.wait_procs([psutil.Process(pid) for pid in left if alive(pid)], timeout=0.05)
        left = [pid for pid in left if alive(pid)]
    return left


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


def read_line(pipe: int, seconds: float) -> str:
    """One line from ``pipe`` within ``seconds``, or fail."""
    data = b""
    deadline = time.monotonic() + seconds
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no complete line within {seconds} s, got {data!r}"
        if select.select([pipe], [], [], remaining)[0]:
            chunk = os.read(pipe, 1)
            assert chunk, f"end of output after {data!r}"
            data += chunk
    return data.decode()


@pytest.mark.parametrize("mode", ["window-fork", "window-forkserver", "window-spawn", "window-command"])
def test_an_interpreter_killed_between_a_start_and_its_registration_leaves_nothing(tmp_path: Path, mode: str) -> None:
    """The owner is SIGKILLed after the child started and before the watchdog heard of it (issue 10, defect 7)."""
    owner = subprocess.Popen(
        [sys.executable, str(APPS / "owner.py"), str(tmp_path), mode], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    left: list[int] = []
    try:
        assert owner.stdout is not None
        child = int(read_line(owner.stdout.fileno(), 60).split()[1])
        descendants = [process.pid for process in psutil.Process(owner.pid).children(recursive=True)]
        assert child in descendants
        owner.kill()
        owner.wait(10)
        left = wait_dead(descendants, 5.0)
        assert left == [], [psutil.Process(pid).cmdline() for pid in left if alive(pid)]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()
        kill_if_alive(left)


def test_the_watchdog_kills_what_left_the_group_when_its_owner_is_sigkilled(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, str(APPS / "owner.py"), str(tmp_path), "escape"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    escaped: list[int] = []
    try:
        assert owner.stdout is not None
        escaped = [int(word) for word in read_line(owner.stdout.fileno(), 60).split()[1:]]
        assert len(escaped) == 3
        assert all(alive(pid) for pid in escaped)
        owner.kill()
        owner.wait(10)
        assert wait_dead(escaped, 5.0) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()
        kill_if_alive(escaped)
