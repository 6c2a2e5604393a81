"""Process groups as Linux shows them in /proc: who is in a group, who descends from whom, who carries a mark.

Every process under test leads a session (and so a process group) of its own, so
that stopping it reaches what it started. This module reads and clears such groups
safely, and finds the descendants that left them (``setsid``, ``start_new_session``,
daemons):

- **A group is signalled by number only while its leader's zombie or process holds
  the number**; the callers make sure of that (they clear the group before they reap
  the leader). Single processes are killed by pidfd, after checking that the pid
  still names the process that was judged (its start time), so a reused pid is never
  hit.
- **An escaped descendant** is found two ways: by its parent chain while it is still
  attached (:func:`descendants`), and by the mark its environment carries
  (:data:`MARK`, set for everything a process under test runs: :func:`marked`).

Standard library only: the watchdog (:mod:`zmqtest.reaper`, run by path with
``python -I -S``) uses it too.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable, Iterator

__all__ = [
    "MARK",
    "Member",
    "clear_group",
    "descendants",
    "kill",
    "main_thread",
    "marked",
    "members",
    "pidfds",
    "proc_stat",
    "readable",
    "start_time",
    "status_text",
    "wait_gone",
]

MARK = "ZMQTEST_OWNER"
"""The environment variable that marks a process under test and all it runs: ``<interpreter>/<number>``."""
POLL = 0.01
"""Longest pause between two looks at processes that are being killed."""

Member = tuple[int, str]
"""A process named beyond pid reuse: its pid and its start time (clock ticks since boot)."""


def proc_stat(pid: int) -> list[bytes] | None:
    """Return the fields of ``/proc/<pid>/stat`` after the command name (state first); ``None`` if no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    return data.rpartition(b")")[2].split()


def start_time(pid: int) -> str | None:
    """Return when ``pid`` started (clock ticks since boot): with the pid, it names one process beyond pid reuse."""
    fields = proc_stat(pid)
    return None if fields is None or len(fields) < 20 else fields[19].decode()


def status_text(returncode: int | None) -> str:
    """Say how a process ended: ``running``, ``exited with code 3``, ``killed by SIGKILL``."""
    if returncode is None:
        return "running"
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def readable(fd: int) -> bool:
    """Tell whether a pidfd says its process has wholly ended."""
    return bool(select.select([fd], [], [], 0)[0])


def _wholly_ended(pid: int) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return readable(pidfd)
    finally:
        os.close(pidfd)


def _pids() -> Iterator[int]:
    return (int(name) for name in os.listdir("/proc") if name.isdigit())


def members(pgid: int) -> list[int]:
    """Return the processes of group ``pgid`` that have not wholly ended.

    A zombie whose leader thread has ended may still have threads exiting that hold
    its files (a zmq context's listening socket): it counts as gone once its pidfd
    says the whole process has ended.
    """
    number = str(pgid).encode()
    found = []
    for pid in _pids():
        fields = proc_stat(pid)
        if fields and len(fields) > 2 and fields[2] == number and (fields[0] not in b"ZX" or not _wholly_ended(pid)):
            found.append(pid)
    return found


def descendants(pid: int) -> list[Member]:
    """Return every living descendant of ``pid`` (through its parent chain), whatever its group or session.

    Read from each thread's ``children`` list in /proc (only the subtree is read);
    where the kernel has none (no CONFIG_PROC_CHILDREN), from every process's parent.
    """
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return _descendants_by_scan(pid) if os.path.exists(f"/proc/{pid}") else []
    found: list[Member] = []
    wanted = [pid]
    while wanted:
        parent = wanted.pop()
        for child in _children(parent):
            started = start_time(child)
            if started is not None:
                found.append((child, started))
                wanted.append(child)
    return found


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as file:
                children.update(int(child) for child in file.read().split())
        except OSError:
            continue
    return children


def _descendants_by_scan(pid: int) -> list[Member]:
    parents: dict[int, tuple[int, str]] = {}
    for other in _pids():
        fields = proc_stat(other)
        if fields and len(fields) >= 20 and fields[0] not in b"ZX":
            parents[other] = (int(fields[1]), fields[19].decode())
    found: list[Member] = []
    wanted = {pid}
    while wanted:
        children = [(child, start) for child, (parent, start) in parents.items() if parent in wanted]
        found.extend(children)
        wanted = {child for child, _ in children}
        for child in wanted:
            del parents[child]
    return found


def marked(mark: str, *, prefix: bool = False, since: str | None = None) -> list[Member]:
    """Return the living processes whose environment carries ``MARK=mark`` (``MARK=mark...`` with ``prefix``).

    ``since``: only those started at that start time or later (the rest cannot be the
    mark's, and their environments are not read). Only our own user's processes can be
    read; that is all a test can have started.
    """
    wanted = f"{MARK}={mark}".encode()
    earliest = int(since) if since is not None else 0
    found: list[Member] = []
    me = os.getpid()
    for pid in _pids():
        fields = proc_stat(pid)
        if pid == me or not fields or len(fields) < 20 or fields[0] in b"ZX" or int(fields[19]) < earliest:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                environ = file.read().split(b"\0")
        except OSError:
            continue
        if any(item == wanted or (prefix and item.startswith(wanted)) for item in environ):
            found.append((pid, fields[19].decode()))
    return found


@contextlib.contextmanager
def pidfds(pids: Iterable[int]) -> Iterator[list[int]]:
    """Open a pidfd for each of ``pids`` still there; close them all at the end."""
    fds: list[int] = []
    try:
        for pid in pids:
            with contextlib.suppress(OSError):
                fds.append(os.pidfd_open(pid))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def kill(processes: Iterable[Member]) -> list[int]:
    """SIGKILL each process, by pidfd, if its pid still names it (same start time); return the pids signalled."""
    killed = []
    for pid, started in processes:
        with pidfds([pid]) as fds:
            if fds and start_time(pid) == started:  # the pidfd is of the process judged
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fds[0], signal.SIGKILL)
                    killed.append(pid)
    return killed


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait at most ``timeout`` seconds until each of ``pids`` has wholly ended; return those that have not."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if not _wholly_ended(pid)]
    while left and time.monotonic() < deadline:
        with pidfds(left) as fds:
            select.select(fds, [], [], min(POLL, max(0.0, deadline - time.monotonic())))
        left = [pid for pid in left if not _wholly_ended(pid)]
    return left


def clear_group(pgid: int, timeout: float) -> tuple[list[int], list[int]]:
    """SIGKILL group ``pgid`` until it is empty, at most ``timeout`` seconds; return (who was in it, who survived).

    Only while its leader's process or unreaped zombie holds the number ``pgid``: the
    caller reaps the leader afterwards. An empty group is the usual case, and one
    ``killpg(pgid, 0)`` tells (scanning /proc for the members costs milliseconds).
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return [], []
    found = left = members(pgid)
    deadline = time.monotonic() + timeout
    while left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            break
        with pidfds(left) as fds:
            select.select(fds, [], [], POLL)
        left = members(pgid)
    return found, left


def main_thread(pid: int) -> bytes | None:
    """Return the state of ``pid``'s main thread and how often it has blocked: equal values mean it slept throughout."""
    try:
        with open(f"/proc/{pid}/task/{pid}/status", "rb") as status:
            lines = status.read().splitlines()
    except OSError:
        return None
    state = next((line.split(b":", 1)[1].strip() for line in lines if line.startswith(b"State:")), b"")
    switches = next((line for line in lines if line.startswith(b"voluntary_ctxt_switches:")), b"")
    return state[:1] + b" " + switches
