"""The reaper: when the interpreter that registered process groups dies, it kills them, and nothing else."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from apps.behave import Behave
from pids import alive, owner, read_line, wait_dead

from zmqtest import backstop, reaper, watchers
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings

APPS = Path(__file__).parent / "apps"
BEHAVE = str(APPS / "behave.py")
SETTINGS = Settings(stop_grace=0.2, startup_timeout=30.0)


@pytest.fixture
def victims() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes in their own sessions, for the reaper to kill or spare; whatever is left is killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def victim(victims: list[subprocess.Popen[bytes]], mode: str = "obey") -> subprocess.Popen[bytes]:
    """Start behave.py ``mode`` in its own session; return once it is ready (its ready line in ``.ready_line``)."""
    proc = subprocess.Popen(
        [sys.executable, BEHAVE, mode], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    victims.append(proc)
    assert proc.stdout is not None
    line = read_line(proc.stdout.fileno(), 30)
    assert line.startswith("ready")  # handlers in place, grandchild forked
    proc.ready_line = line  # type: ignore[attr-defined]
    return proc


def run_reaper(lines: list[str]) -> int:
    """Run a reaper fed ``lines``, close its stdin, return its exit code (bounded wait)."""
    proc = subprocess.Popen([sys.executable, "-m", "zmqtest.reaper"], stdin=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write("".join(lines).encode())
    proc.stdin.close()
    return proc.wait(30)


def test_eof_kills_every_registered_group_and_nothing_else(victims: list[subprocess.Popen[bytes]]) -> None:
    registered = victim(victims, "grandchild")
    grandchild = int(registered.ready_line.split("grandchild=")[1])  # type: ignore[attr-defined]
    unregistered = victim(victims)
    never = victim(victims)
    reused = victim(victims)
    lines = [
        f"+{registered.pid} {reaper.start_time(registered.pid)}\n",
        f"+{unregistered.pid} {reaper.start_time(unregistered.pid)}\n",
        f"-{unregistered.pid}\n",
        f"+{reused.pid} 1\n",  # its start time differs: the pid would be someone else's now
    ]
    assert run_reaper(lines) == 0
    assert registered.wait(10) == -signal.SIGKILL
    members = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == registered.pid and alive(p.pid)]
    assert members == []  # the grandchild too
    assert not alive(grandchild)
    assert unregistered.poll() is None
    assert never.poll() is None
    assert reused.poll() is None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_malformed_lines_are_ignored() -> None:
    groups: dict[int, str] = {}
    for line in (b"", b"+", b"-", b"+0 1", b"+1 1", b"+-5 1", b"++5 1", b"+abc 1", b"*7 1", b"+ 7", b"x"):
        reaper._apply(line, groups)
    assert groups == {}
    reaper._apply(b"+4242", groups)
    assert groups == {4242: reaper.UNKNOWN}
    reaper._apply(b"-4242", groups)
    assert groups == {}
    assert run_reaper(["+0 1\n", "+1\n", "garbage\n", "+99999999999999999999 1\n"]) == 0


def test_a_pid_reused_in_the_same_clock_tick_is_told_apart_by_the_leaders_pidfd(
    victims: list[subprocess.Popen[bytes]],
) -> None:
    """The registered leader ended; a live process has its pid and start tick: the pidfd says it is not ours."""
    ended = victim(victims)
    pidfd = os.pidfd_open(ended.pid)
    try:
        ended.kill()
        ended.wait(10)  # reaped: its pidfd is readable for ever
        other = victim(victims)  # stands for a process that got the same pid in the same 10 ms tick
        started = reaper.start_time(other.pid)
        assert started is not None
        reaper._kill(other.pid, started, pidfd)
        assert other.poll() is None
        reaper._kill(other.pid, started)  # without the pidfd, the start time alone would take it for ours
        assert other.wait(10) == -signal.SIGKILL
    finally:
        os.close(pidfd)


def test_a_registered_leader_that_runs_is_killed_through_its_pidfd(victims: list[subprocess.Popen[bytes]]) -> None:
    leader = victim(victims, "grandchild")
    grandchild = int(leader.ready_line.split("grandchild=")[1])  # type: ignore[attr-defined]
    held: dict[int, int] = {}
    groups: dict[int, str] = {}
    reaper._apply(f"+{leader.pid} {reaper.start_time(leader.pid)}".encode(), groups, held)
    try:
        if watchers.kind() == watchers.PORTABLE:  # it holds no pidfds: judged by its start time, killed by pid
            assert held == {}
        else:
            assert leader.pid in held
        reaper._kill(leader.pid, groups[leader.pid], held.get(leader.pid))
        assert leader.wait(10) == -signal.SIGKILL
        assert wait_dead([grandchild], 10) == []
    finally:
        reaper._apply(f"-{leader.pid}".encode(), groups, held)
    assert held == {}


def test_a_leader_gone_when_registered_is_not_killed_by_pid(victims: list[subprocess.Popen[bytes]]) -> None:
    """Registered without a start time, a living pid is someone else's: the reaper leaves it alone."""
    other = victim(victims)
    assert run_reaper([f"+{other.pid} {reaper.UNKNOWN}\n"]) == 0
    assert other.poll() is None


def test_the_reaper_kills_within_two_seconds_of_its_owner_being_sigkilled(tmp_path: Path) -> None:
    with owner(tmp_path, "sleep") as (process, line, cleanup):
        assert process.stdout is not None
        cleanup.extend(int(word) for word in line.split()[1:])
        cleanup.append(int(read_line(process.stdout.fileno(), 10).split()[1]))  # the reaper
        assert all(alive(pid) for pid in cleanup)
        process.kill()
        killed = time.monotonic()
        process.wait(10)
        left = wait_dead(cleanup, 2.0)
        assert left == [], f"still running {time.monotonic() - killed:.2f} s after the owner's SIGKILL: {left}"


def test_one_reaper_per_interpreter_and_nothing_registered_after_close(tmp_path: Path) -> None:
    with ProcessManager(tmp_path / "a", settings=SETTINGS) as first:
        one = first.start(Behave("obey"), start_method="fork", ready="ready")
        watchdog = backstop.pid()
        assert watchdog is not None
        assert alive(watchdog)
        assert one.pid in backstop.registered()
        with ProcessManager(tmp_path / "b", settings=SETTINGS) as second:
            two = second.start([sys.executable, BEHAVE, "obey"], ready="ready")
            assert backstop.pid() == watchdog
            assert {one.pid, two.pid} <= backstop.registered()
        assert two.pid not in backstop.registered()
    assert one.pid not in backstop.registered()
    assert backstop.pid() == watchdog
    assert psutil.Process(watchdog).cmdline()[1:3] == ["-I", "-S"]
    assert os.getsid(watchdog) == watchdog  # its own session: a Ctrl-C in the terminal does not reach it


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_children_do_not_hold_the_reaper_pipe(manager_dir: Path, method: str) -> None:
    """A child holding our end of the pipe open would keep the reaper from seeing our death."""
    with ProcessManager(manager_dir, settings=SETTINGS) as procs:
        procs.start(Behave("obey"), start_method=method, ready="ready")  # the reaper runs from now on at the latest
        handle = procs.start(Behave("obey"), start_method=method, ready="ready")
        assert backstop._fd is not None
        pipe = os.readlink(f"/proc/self/fd/{backstop._fd}")
        child_fds = {os.readlink(f"/proc/{handle.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{handle.pid}/fd")}
        assert pipe not in child_fds


@pytest.fixture
def manager_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_a_killed_reaper_is_replaced_with_every_registration(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        first = procs.start(Behave("obey"), start_method="fork", ready="ready")
        old = backstop.pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        pidfd = os.pidfd_open(old)
        try:
            assert select.select([pidfd], [], [], 10)[0]
        finally:
            os.close(pidfd)
        second = procs.start(Behave("obey"), start_method="fork", ready="ready")
        new = backstop.pid()
        assert new is not None
        assert new != old
        assert alive(new)
        assert {first.pid, second.pid} <= backstop.registered()
    assert not alive(old)


REAPERLESS_CONFTEST = """
import zmqtest.backstop


def no_reaper():
    raise OSError("no reaper today")


zmqtest.backstop._start = no_reaper
"""

REAPERLESS_TESTS = """
import sys

import pytest


@pytest.mark.parametrize("number", range(3))
def test_start(zmq_process_factory, number):
    idle = "import signal; print('ready', flush=True); signal.pause()"
    zmq_process_factory([sys.executable, "-c", idle], ready="ready")
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["alone", "xdist"])
def test_a_reaper_that_could_not_start_is_reported_once_in_the_summary(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    pytester.makeconftest(REAPERLESS_CONFTEST)
    pytester.makepyfile(test_inner=REAPERLESS_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args, timeout=90)
    result.assert_outcomes(passed=3)  # starts go on without it
    result.stdout.fnmatch_lines(
        [
            "*= zmqtest: the reaper could not start =*",
            "could not start the zmqtest reaper (no reaper today): processes may outlive a SIGKILLed interpreter",
        ]
    )
    assert result.stdout.str().count("no reaper today") == 1
