"""The two watchers of a process's death (zmqtest.watchers): pidfd and portable, each forced by ZMQTEST_WATCHER.

Each test runs under both (the ``watcher`` fixture sets the variable), with real
processes under every start method and as a command line. None asserts a time: a
death the watcher missed would end the wait by its (long) timeout instead, with
another error.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from apps.behave import Behave
from pids import alive

from zmqtest import ProcessExited, StartError, groups, make_sock, reaper, watchers
from zmqtest.commands import run
from zmqtest.errors import ProcessError
from zmqtest.processes import ManagedProcess, ProcessManager
from zmqtest.settings import Settings
from zmqtest.waiting import wait_until

APPS = Path(__file__).parent / "apps"
BEHAVE = str(APPS / "behave.py")
METHODS = ["fork", "forkserver", "spawn"]
KINDS = [*METHODS, "command"]
LONG = 30.0
"""Seconds a wait may last: far longer than a noticed death takes, so a missed one fails the test."""
SETTINGS = Settings(stop_grace=0.3, startup_timeout=LONG)


@pytest.fixture(params=[watchers.PIDFD, watchers.PORTABLE])
def watcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Force one watcher for the test (the processes it starts are watched so)."""
    kind: str = request.param
    monkeypatch.setenv(watchers.ENV, kind)
    return kind


@pytest.fixture
def manager(tmp_path: Path, watcher: str) -> Iterator[ProcessManager]:
    procs = ProcessManager(tmp_path / "out", settings=SETTINGS)
    yield procs
    procs.close()


def start(procs: ProcessManager, kind: str, mode: str, **options: object) -> ManagedProcess:
    if kind == "command":
        return procs.start([sys.executable, BEHAVE, mode], **options)  # type: ignore[arg-type]
    return procs.start(Behave(mode), start_method=kind, **options)  # type: ignore[arg-type]


def waiter_threads(pid: int) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"zmqtest-watcher-{pid}"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_watcher_asked_for_watches(manager: ProcessManager, watcher: str, kind: str) -> None:
    """pidfd: a pidfd, no thread; portable: a waiter thread for our children, the forkserver's sentinel for its."""
    handle = start(manager, kind, "obey", ready="ready")
    threads = waiter_threads(handle.pid)
    if watcher == watchers.PIDFD:
        assert threads == []
        assert os.readlink(f"/proc/self/fd/{handle.sentinel}") == "anon_inode:[pidfd]"
    elif kind == "forkserver":  # not our child: the forkserver says when it has reaped it
        assert threads == []
        assert handle.process is not None
        assert handle.sentinel == handle.process.sentinel
    else:
        assert len(threads) == 1
        assert os.readlink(f"/proc/self/fd/{handle.sentinel}").startswith("pipe:")
    handle.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_death_during_a_mimic_recv_ends_it(
    manager: ProcessManager, ctx: zmq.Context[object], watcher: str, kind: str
) -> None:
    handle = start(manager, kind, "kill-message", ready=r"listening on (\S+)")
    client = make_sock(ctx, zmq.REQ, connect=handle.endpoint, timeout=LONG)
    try:
        client.send(b"kill")  # it ends (exit 0) without answering
        with pytest.raises(ProcessExited, match=rf"\(pid {handle.pid}\) exited with code 0 while"):
            client.recv()
    finally:
        client.close(linger=0)
    handle.expect_exit = True  # its end was the point


@pytest.mark.parametrize("kind", KINDS)
def test_a_death_during_a_readiness_wait_ends_it(manager: ProcessManager, watcher: str, kind: str) -> None:
    with pytest.raises(StartError, match="ended before it was ready"):
        start(manager, kind, "die", ready="never printed")


@pytest.mark.parametrize("kind", KINDS)
def test_exit_codes_are_still_collected(manager: ProcessManager, watcher: str, kind: str) -> None:
    """The portable watcher waits with WNOWAIT: Popen and multiprocessing still reap the process and read its code."""
    handle = start(manager, kind, "exit3", ready="ready", expect_exit=3)
    assert handle.wait(LONG) == 3
    assert handle.returncode == 3


def test_run_collects_the_exit_code(watcher: str) -> None:
    assert run([sys.executable, "-c", "raise SystemExit(5)"], timeout=LONG).returncode == 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_grandchild_holding_the_sentinel_pipe_does_not_delay_the_death(
    manager: ProcessManager, watcher: str, kind: str
) -> None:
    """Multiprocessing's own sentinel (fork, spawn) stays unreadable while a forked grandchild lives; ours does not."""
    handle = start(manager, kind, "grandchild", ready=r"grandchild=(\d+)")
    grandchild = int(handle.match.group(1)) if handle.match else 0
    os.kill(handle.pid, signal.SIGKILL)
    assert multiprocessing.connection.wait([handle.sentinel], LONG)
    assert alive(grandchild)  # still there, holding what it inherited, until the stop
    assert handle.returncode == -signal.SIGKILL
    handle.expect_exit = True
    manager.close()
    assert not alive(grandchild)


def test_no_thread_or_descriptor_is_left_per_process(tmp_path: Path, watcher: str) -> None:
    """100 starts, ten at a time: afterwards as many threads and file descriptors as before."""

    def round_of_ten(number: int) -> None:
        with ProcessManager(tmp_path / str(number), settings=SETTINGS) as procs:
            for _ in range(10):
                procs.start(Behave("obey"), start_method="fork", ready="ready")
            procs.start([sys.executable, BEHAVE, "obey"], ready="ready")

    def waiters_ended() -> bool:  # a waiter ends a moment after its process was reaped (it holds a pipe's end)
        return not any(thread.name.startswith("zmqtest-watcher-") for thread in threading.enumerate())

    round_of_ten(0)  # what stays for good: the watchdog's pipe, the forkserver, pyzmq's own
    wait_until(waiters_ended, timeout=LONG, what="the waiter threads to end")
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for number in range(1, 10):
        round_of_ten(number)
    wait_until(waiters_ended, timeout=LONG, what="the waiter threads to end")
    assert (threading.active_count(), len(os.listdir("/proc/self/fd"))) == (threads, fds)


@pytest.mark.parametrize("value", ["bogus", "PIDFD", " portable"])
def test_a_bad_value_is_refused_naming_the_variable_and_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = rf"ZMQTEST_WATCHER={value!r} is not a watcher: use 'pidfd' .* or 'portable'"
    with ProcessManager(tmp_path / "made-before", settings=SETTINGS) as procs:
        monkeypatch.setenv(watchers.ENV, value)
        with pytest.raises(ProcessError, match=message):  # set after the manager was made: its next start refuses
            procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
        assert procs.processes == []
    with pytest.raises(ProcessError, match=message):
        ProcessManager(tmp_path)
    with pytest.raises(ProcessError, match=message):
        run([sys.executable, "-c", "pass"])


def test_unset_means_pidfd_where_there_are_pidfds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(watchers.ENV, raising=False)
    assert watchers.kind() == (watchers.PIDFD if watchers.has_pidfds() else watchers.PORTABLE)
    assert watchers.has_pidfds() == hasattr(os, "pidfd_open")  # true here: Linux 5.3+


def test_a_reaped_child_is_not_waited_for(watcher: str) -> None:
    """A child reaped by another (Popen.wait) before it is watched: its watch says it has ended, or cannot watch."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(LONG)
    watch = watchers.Watch(child.pid)
    try:
        assert watch.fd is None or watch.ended()
    finally:
        watch.close()


def test_a_later_fork_child_holding_the_pipe_does_not_delay_a_death(manager: ProcessManager, watcher: str) -> None:
    """A fork child started later inherits the portable watcher's pipe of an earlier process: a byte, not EOF, tells."""
    first = start(manager, "command", "obey", ready="ready")
    later = start(manager, "fork", "obey", ready="ready")  # holds a copy of every descriptor we had, the pipe's too
    os.kill(first.pid, signal.SIGKILL)
    assert multiprocessing.connection.wait([first.sentinel], LONG)
    assert first.returncode == -signal.SIGKILL
    assert later.returncode is None
    first.expect_exit = True


@pytest.fixture
def no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide /proc from zmqtest.groups as on macOS (simulated: the rest of the test still sees it)."""
    monkeypatch.setattr(groups, "HAS_PROC", False)
    monkeypatch.setattr(groups, "proc_stat", lambda pid: None)
    monkeypatch.setattr(groups, "_pids", lambda: iter(()))


@pytest.mark.usefixtures("no_proc")
def test_without_proc_a_stop_still_clears_the_group_by_its_number(tmp_path: Path) -> None:
    """No members, start times or marks are known: the group is SIGKILLed blind, its grandchild goes with it."""
    assert groups.start_time(os.getpid()) is None
    assert groups.members(os.getpgid(0)) == []
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "grandchild"], ready=r"grandchild=(\d+)")
        grandchild = int(handle.match.group(1)) if handle.match else 0
        handle.stop()
    assert wait_until(lambda: not alive(grandchild), timeout=LONG, what=f"grandchild {grandchild} to die")


@pytest.mark.usefixtures("no_proc")
def test_without_proc_the_watchdog_kills_a_registered_group_by_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper, "HAS_PROC", False)
    monkeypatch.setattr(reaper, "start_time", lambda pid: None)
    leader = subprocess.Popen([sys.executable, BEHAVE, "grandchild"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert leader.stdout is not None
        grandchild = int(leader.stdout.readline().split(b"grandchild=")[1])
        reaper._kill(leader.pid, reaper.UNKNOWN)  # registered as on macOS: no start time
        assert leader.wait(LONG) == -signal.SIGKILL
        assert wait_until(lambda: not alive(grandchild), timeout=LONG, what=f"grandchild {grandchild} to die")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(LONG)
        if leader.stdout is not None:
            leader.stdout.close()


def test_a_group_whose_leaders_status_was_read_is_not_its_own_though_its_sentinel_is_not_readable_yet() -> None:
    """A forkserver writes a child's status, then closes its sentinel: in between, the sentinel is not readable.

    Once the status is read (``note_reaped``), the group's number is free, whatever the sentinel says (CI's
    portable run SIGKILLed a stranger that took the pid in that window).
    """
    gone = subprocess.Popen(["true"])
    gone.wait(10)  # reaped: a pid of no process (as a forkserver child whose status the forkserver wrote)
    read_end, write_end = os.pipe()  # the sentinel: drained, its write end still open
    group = groups.OwnGroup(gone.pid, sentinel=read_end)
    try:
        assert group.fd == read_end
        group.note_reaped()
        assert not group.holds()
    finally:
        group.close()
        os.close(read_end)
        os.close(write_end)


THREAD_PARENT = """
import subprocess, sys, threading
children = []
started = threading.Event()
def start():
    children.append(subprocess.Popen(["sleep", "60"]))
    started.set()
    sys.stdin.read()  # alive until the test is done: its child stays its own (a thread's end hands it to another)
thread = threading.Thread(target=start)
thread.start()
started.wait()
children.append(subprocess.Popen(["sleep", "60"]))
print(" ".join(str(child.pid) for child in children), flush=True)
thread.join()
"""


def test_descendants_include_the_children_of_every_thread() -> None:
    """A child started by another thread is that thread's (``/proc/<tid>/task/<tid>/children``): it is found too."""
    parent = subprocess.Popen(
        [sys.executable, "-c", THREAD_PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdin is not None
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    try:
        found = groups.descendants(parent.pid)
        assert sorted(pid for pid, _ in found) == sorted(pids)
        assert len(pids) == 2  # one started by the main thread, one by the other
        assert all(started == groups.start_time(pid) for pid, started in found)
        assert groups._thread_group(str(parent.pid)) == str(parent.pid)
        assert groups._thread_group("0") is None
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        parent.stdin.close()
        parent.wait(LONG)
        parent.stdout.close()
