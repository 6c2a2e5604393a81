"""Process groups as Linux shows them in /proc: who is in a group, who descends from whom, who carries a mark.

Every process under test leads a session (and so a process group) of its own, so
that stopping it reaches what it started. This module reads and clears such groups
safely, and finds the descendants that left them (``setsid``, ``start_new_session``,
daemons):

- **A group is signalled by number only while its leader's zombie or process holds
  the number**; the callers make sure of that (they clear the group before they reap
  the leader). Single processes are killed by pidfd, after checking that the pid
  still names the process that was judged (its start time), so a reused pid is never
  hit. Under the portable watcher (:mod:`zmqtest.watchers`: no pidfds) they are killed
  by pid right after that check: a pid freed and reused between the two is hit.
- **A group whose leader has been reaped** may have lost its number to another
  process: :class:`OwnGroup` clears it by number only while the number is provably
  still its own, and after that only the members that provably are its.
- **An escaped descendant** is found two ways: by its parent chain while it is still
  attached (:func:`descendants`), and by the mark its environment carries
  (:data:`MARK`, set for everything a process under test runs: :func:`marked`).

Where there is no /proc (macOS), what reads it degrades: no members, descendants,
marks or start times are found (each function says what it returns then), so what
left a group, or outlived its leader, is not killed; the group itself still is, by
number, while its leader holds it. Standard library only: the watchdog
(:mod:`zmqtest.reaper`, run by path with ``python -I -S``) uses it too.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator

if __package__:
    from zmqtest import watchers
else:  # imported by the watchdog, run by path: this folder is on its path, zmqtest is not
    import watchers  # type: ignore[import-not-found,no-redef]

__all__ = [
    "MARK",
    "Member",
    "OwnGroup",
    "clear_group",
    "descendants",
    "kill",
    "main_thread",
    "marked",
    "members",
    "pause",
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

HAS_PROC = os.path.isdir("/proc/self")
"""Whether /proc shows processes (Linux): without it (macOS) scans find nothing, start times are unknown."""

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


readable = watchers.readable
"""``readable(fd)``: whether a pidfd (or a watch's descriptor) says its process has wholly ended."""


def _wholly_ended(pid: int) -> bool:
    """Tell whether ``pid`` has ended with all its threads (by pidfd; else by /proc: a zombie with one task left)."""
    if watchers.using_pidfds():
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            return readable(pidfd)
        finally:
            os.close(pidfd)
    fields = proc_stat(pid)
    if fields is None:
        return not _exists(pid)  # no /proc (macOS): a zombie counts as running until it is reaped
    if fields[0] not in b"ZX":
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids() -> Iterator[int]:
    """Every pid in /proc; none where there is no /proc (macOS): scans then find nothing."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return iter(())
    return (int(name) for name in names if name.isdigit())


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
    """The children of every thread of ``pid``.

    Another thread's list is read through ``/proc/<tid>`` and kept only if that thread is still
    ``pid``'s afterwards (its Tgid: a tid freed meanwhile may name another process's children). Read
    under ``/proc/<pid>/task/<tid>``, the lists made reaping ``pid`` cost 1-3 ms of CPU (Linux 6.18).
    """
    children: set[int] = set()
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    own = str(pid)
    for thread in threads:
        try:
            if thread == own:
                with open(f"/proc/{pid}/task/{pid}/children", "rb") as file:
                    children.update(int(child) for child in file.read().split())
                continue
            with open(f"/proc/{thread}/task/{thread}/children", "rb") as file:
                found = file.read().split()
            if found and _thread_group(thread) == own:
                children.update(int(child) for child in found)
        except OSError:
            continue
    return children


def _thread_group(tid: str) -> str | None:
    """The process (thread group) that thread ``tid`` belongs to now, from its status."""
    try:
        with open(f"/proc/{tid}/status", "rb") as file:
            for line in file:
                if line.startswith(b"Tgid:"):
                    return line.split()[1].decode()
    except OSError:
        pass
    return None


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
    """Open a pidfd for each of ``pids`` still there (none under the portable watcher); close them all at the end."""
    fds: list[int] = []
    try:
        if watchers.using_pidfds():
            for pid in pids:
                with contextlib.suppress(OSError):
                    fds.append(os.pidfd_open(pid))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def pause(pids: Iterable[int], seconds: float) -> None:
    """Wait ``seconds`` at most, less if one of ``pids`` ends first (by pidfd; portable: a plain pause, ``POLL``)."""
    with pidfds(pids) as fds:
        select.select(fds, [], [], max(0.0, seconds))


def kill(processes: Iterable[Member]) -> list[int]:
    """SIGKILL each process if its pid still names it (same start time); return the pids signalled.

    By pidfd, opened before the check, so the check is of the process signalled; under the
    portable watcher by pid, right after the check.
    """
    killed = []
    for pid, started in processes:
        with pidfds([pid]) as fds:
            if start_time(pid) != started:
                continue
            with contextlib.suppress(ProcessLookupError):
                if fds:  # the pidfd is of the process judged
                    signal.pidfd_send_signal(fds[0], signal.SIGKILL)
                elif not watchers.using_pidfds():
                    os.kill(pid, signal.SIGKILL)
                else:
                    continue  # gone before its pidfd was opened
                killed.append(pid)
    return killed


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait at most ``timeout`` seconds until each of ``pids`` has wholly ended; return those that have not."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if not _wholly_ended(pid)]
    while left and time.monotonic() < deadline:
        pause(left, min(POLL, deadline - time.monotonic()))
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
    if not found and not HAS_PROC:  # no /proc (macOS): members unknown, SIGKILL the group once, blind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return [], []
    deadline = time.monotonic() + timeout
    while left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            break
        pause(left, POLL)
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


class OwnGroup:
    """The group a process under test leads: signalled and cleared by its number only while that is its own.

    The group's number is its leader's pid, its own while the leader runs or is a
    zombie not yet reaped. Once the leader is reaped, its pid may be another process's,
    leading a group of its own: then what is left of the group is killed, each by pidfd,
    only if one of them provably is its (see :meth:`clear`). The leader is named beyond
    pid reuse by its watch (:class:`zmqtest.watchers.Watch`: a pidfd, or the portable
    watcher's pipe) and its start time. ``sentinel``: for a leader that is not our child
    (a forkserver's), the descriptor its parent makes readable once it has reaped it.
    """

    def __init__(self, leader: int, sentinel: int | None = None) -> None:
        self.leader = leader
        self.watch = watchers.Watch(leader, sentinel)
        self._seen = self.watch.opened
        """Whether the leader was reached before it was reaped (a forkserver child may end and be reaped at once)."""
        self.started = start_time(leader) if self._seen else None
        """When the leader started (clock ticks since boot): with its pid, names it (but for one of the same tick)."""
        self._reaped = False
        self._own_at: int | None = None
        """When the number was last known its own (CLOCK_BOOTTIME, ns)."""
        self.note()

    @property
    def fd(self) -> int | None:
        """Readable once the leader has ended; ``None`` once closed, or if it could not be watched at all."""
        return self.watch.fd

    def note(self) -> None:
        """Note the time if the number is still its own: what joined the group until then is provably of it."""
        now = _boot_clock_ns()
        if self.holds():
            self._own_at = now

    def note_reaped(self) -> None:
        """Note that the leader was reaped (by us, or by the forkserver: its status was read): its pid is free."""
        self._reaped = True

    def holds(self) -> bool:
        """Tell whether the number is still its own: the leader runs, or is a zombie not yet reaped."""
        if self._reaped:
            return False  # its status was collected: whatever its watch says (a forkserver's sentinel whose status
            # was read is not readable until the forkserver closes it), its pid is free
        if self.fd is not None and not readable(self.fd):
            return True  # it runs
        if not self._seen:
            return False  # never seen
        try:  # our child's zombie, or a forkserver's that it has not reaped yet?
            zombie = os.waitid(os.P_PID, self.leader, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            fields = proc_stat(self.leader)
            zombie = fields is not None and fields[:1] == [b"Z"]
        # without /proc (macOS) no start time: then an unreaped zombie of our own child is taken as its
        return zombie and start_time(self.leader) == self.started

    def send(self, signum: int) -> bool:
        """Send ``signum`` to the group (to the leader alone before it has called setsid); return whether it was sent.

        Only while the leader runs, which the caller makes sure of: the number is then its own.
        """
        try:
            os.killpg(self.leader, signum)
            return True
        except (ProcessLookupError, PermissionError):  # no such group yet: a Process child before its setsid()
            with contextlib.suppress(ProcessLookupError):
                if self.watch.pidfd is not None:
                    signal.pidfd_send_signal(self.watch.pidfd, signum)
                    return True
                if self.watch.kind == watchers.PORTABLE and self.holds():  # by pid: it runs, the caller made sure
                    os.kill(self.leader, signum)
                    return True
        return False

    def clear(self, timeout: float, reap: Callable[[], object] | None = None) -> list[int]:
        """SIGKILL what is left of the group and wait, at most ``timeout`` seconds, until it is gone; return survivors.

        By its number while that is its own (so before the leader is reaped); after that,
        only its own members, one by one. ``reap``: the leader has ended, and this reaps
        it. Then the group is SIGKILLed by number while the leader's zombie still holds it
        (every member is doomed), the leader is reaped, and one ``killpg(leader, 0)`` tells
        the usual case, an empty group, without reading /proc (:meth:`empty`).
        """
        if self.holds():
            if reap is None:
                return clear_group(self.leader, timeout)[1]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.leader, signal.SIGKILL)  # its zombie holds the number: what is in it is doomed
            reap()
            if self.holds():  # not reaped after all (its status could not be read): by number, as while it ran
                return clear_group(self.leader, timeout)[1]
        if self.empty():
            return []
        deadline = time.monotonic() + timeout
        while True:
            left = self._kill_own_members()
            if not left or time.monotonic() >= deadline:
                return left
            pause(left, POLL)

    def empty(self) -> bool:
        """Tell whether no process at all is in a group of the leader's number, its own or another's (no /proc read).

        A group's number is not handed out again while any process of the group is left,
        zombies included (POSIX), so ESRCH proves that nothing of its group is left.
        """
        try:
            os.killpg(self.leader, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's group has the number now: none of ours
            return False
        return False

    def _kill_own_members(self) -> list[int]:
        """SIGKILL, each by pidfd, what is left of the group once its number may be another's; return those pids.

        The number is still its own if a process of that group and session provably is its:
        started when the number was known its own (``_own_at``; ticks of 10 ms), since while
        it lives the number cannot be reused. If another process has the leader's pid,
        the number was reused: nothing in that group is its.
        """
        if self._own_at is None or proc_stat(self.leader) is not None:
            return []
        known = self._own_at * os.sysconf("SC_CLK_TCK") // 1_000_000_000  # /proc's start times are in ticks
        session = str(self.leader).encode()
        own = []
        for pid in members(self.leader):
            fields = proc_stat(pid)
            if fields and len(fields) >= 20 and fields[3] == session:
                own.append((pid, fields[19].decode()))
        if not any(int(start) <= known for _, start in own):
            return []
        kill(own)
        return [pid for pid, _ in own]

    def close(self) -> None:
        """Close the leader's watch, once it is of no more use."""
        self.watch.close()


def _boot_clock_ns() -> int:
    """Now on the clock /proc's start times count from (CLOCK_BOOTTIME; elsewhere CLOCK_MONOTONIC, unused there)."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime_ns(clock)
