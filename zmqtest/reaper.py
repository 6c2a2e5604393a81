"""The last line of defence against orphans: a watchdog that outlives us by a moment.

Teardown stops every process a test started, and an ``atexit`` handler covers an
interpreter that exits without teardown. Neither runs when the interpreter itself
is SIGKILLed (a cancelled CI job, the OOM killer, pytest-timeout's ``thread``
method calling ``os._exit``): then the processes under test, each in its own
session, would run on for ever. So before the first start an interpreter starts
this watchdog (the Ryuk pattern of testcontainers): one small process per
interpreter, in its own session, whose stdin is a pipe from us. We write one line
per process group: ``+PGID STARTTIME`` when it starts, ``-PGID`` once it is gone.
When the pipe reaches end of file, which the kernel guarantees however we die, the
watchdog SIGKILLs every group still registered, and every process whose environment
carries the interpreter's mark (``ZMQTEST_OWNER=<interpreter>/...``: what a process
under test ran, even outside its group), and exits. After a normal run nothing is
registered or marked, and end of file just makes it exit.

It never kills what is not ours: a group whose leader's pid now belongs to another
process (its start time differs) is left alone; once the leader is gone, only the
members of its session that started after it are killed, each by pidfd.

Under the portable watcher (``ZMQTEST_WATCHER=portable``, or no pidfds: see
:mod:`zmqtest.watchers`) it holds no pidfds: a leader is judged by its existence and
its start time alone when the watchdog acts, and signalled by pid. A leader's pid
reused within the same clock tick is then taken for it; without /proc (macOS) no start
time is known, and a registered leader's pid is signalled while it exists at all.

This module is the watchdog's side only (:func:`main`: this file run by path with
``python -I -S``, so it needs nothing but the standard library and :mod:`groups`
beside it); the owner's side is :mod:`zmqtest.backstop`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

if __package__:
    from zmqtest import watchers
    from zmqtest.groups import HAS_PROC, kill, marked, members, proc_stat, readable, start_time
else:  # run by path with -I: neither zmqtest (it would import zmq) nor this folder is importable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import watchers  # type: ignore[import-not-found,no-redef]
    from groups import (  # type: ignore[import-not-found,no-redef]
        HAS_PROC,
        kill,
        marked,
        members,
        proc_stat,
        readable,
        start_time,
    )

__all__ = ["main"]

PID_MAX = 2**22
"""Linux never hands out pids above this (``/proc/sys/kernel/pid_max`` is at most 4194304)."""
UNKNOWN = "-"
"""Start time sent when the leader had already gone when registered: kill what is left of its session only."""


# ---------------------------------------------------------------------------------------------- the watchdog


def _kill(pgid: int, registered_start: str, pidfd: int | None = None) -> None:
    """SIGKILL the group ``pgid`` (and its leader, which may not have called setsid yet), if it is still ours.

    ``pidfd``: the leader's, opened when the watchdog read its registration. While it
    says the leader runs, the number is ours. Once the leader ended, a process with its
    pid is ours only as the leader's zombie: a start time alone (ticks of 10 ms) could
    not tell a pid reused in the same tick. (Reused in the same tick *before* the
    registration was read, a pid still passes: only a pidfd handed over by the owner
    would close that.)
    """
    if pidfd is not None and not readable(pidfd):
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)  # its leader runs: the group's number is ours
        return
    current = start_time(pgid)
    if current is not None:
        if current != registered_start:
            return  # the pid is another process now: while our group existed, its number was not reusable
        if pidfd is not None and (proc_stat(pgid) or [b""])[0] != b"Z":
            return  # our leader ended, and a live process has its pid (and start tick): not ours
        with contextlib.suppress(OSError):
            os.kill(pgid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)  # its leader's pid holds the number: the group is ours
        return
    if not HAS_PROC:  # no /proc (macOS): no start times, no members; the group by its number, if there is one
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        return
    earliest = 0 if registered_start == UNKNOWN else int(registered_start)
    session = str(pgid).encode()
    left = []
    for pid in members(pgid):  # the leader is gone: kill only its session's members, each by pidfd
        fields = proc_stat(pid)
        if fields and len(fields) >= 20 and fields[3] == session and int(fields[19]) >= earliest:
            left.append((pid, fields[19].decode()))
    kill(left)


def _hold(pgid: int, started: str, pidfds: dict[int, int]) -> None:
    """Open a pidfd for the leader just registered, if its pid is still the one registered (none if portable)."""
    _release(pgid, pidfds)
    if _portable():
        return
    try:
        fd = os.pidfd_open(pgid)
    except OSError:
        return
    if start_time(pgid) == started:
        pidfds[pgid] = fd
    else:
        os.close(fd)


def _portable() -> bool:
    """Tell whether the portable watcher is in use (a bad ZMQTEST_WATCHER: whatever this system has)."""
    return not watchers.using_pidfds()


def _release(pgid: int, pidfds: dict[int, int]) -> None:
    fd = pidfds.pop(pgid, None)
    if fd is not None:
        os.close(fd)


def _apply(line: bytes, groups: dict[int, str], pidfds: dict[int, int] | None = None) -> None:
    """Apply one ``+PGID STARTTIME`` / ``-PGID`` line; anything malformed is ignored. Hold leaders' ``pidfds``."""
    parts = line.split()
    if not parts or parts[0][:1] not in (b"+", b"-"):
        return
    try:
        pgid = int(parts[0][1:])
    except ValueError:
        return
    if not 1 < pgid <= PID_MAX or parts[0][1:2] in (b"+", b"-"):
        return
    if parts[0][:1] == b"+":
        groups[pgid] = parts[1].decode(errors="replace") if len(parts) > 1 else UNKNOWN
        if pidfds is not None and groups[pgid] != UNKNOWN:
            _hold(pgid, groups[pgid], pidfds)
    else:
        groups.pop(pgid, None)
        if pidfds is not None:
            _release(pgid, pidfds)


def main(interpreter: str | None = None) -> int:
    """Read registrations from stdin until end of file, then SIGKILL every group registered and what is marked.

    ``interpreter``: the owner's name in marks (see :func:`zmqtest.backstop.new_mark`).
    """
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)  # only the end of our stdin ends us
    os.closerange(3, 65536)  # hold nothing of our owner's: not its sockets, not its pipes
    groups: dict[int, str] = {}
    pidfds: dict[int, int] = {}
    pending = b""
    try:
        while True:
            chunk = os.read(0, 4096)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                _apply(line, groups, pidfds)
    finally:
        for pgid, started in groups.items():
            with contextlib.suppress(Exception):  # one bad entry must not spare the others
                _kill(pgid, started, pidfds.get(pgid))
        if interpreter:
            with contextlib.suppress(Exception):
                kill(marked(f"{interpreter}/", prefix=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
