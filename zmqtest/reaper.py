"""The last line of defence against orphans: a watchdog that outlives us by a moment.

Teardown stops every process a test started, and an ``atexit`` handler covers an
interpreter that exits without teardown. Neither runs when the interpreter itself
is SIGKILLed (a cancelled CI job, the OOM killer, pytest-timeout's ``thread``
method calling ``os._exit``): then the processes under test, each in its own
session, would run on for ever. So the first start in an interpreter also starts
this watchdog (the Ryuk pattern of testcontainers): one small process per
interpreter, in its own session, whose stdin is a pipe from us. We write one line
per process group: ``+PGID STARTTIME`` when it starts, ``-PGID`` once it is gone.
When the pipe reaches end of file, which the kernel guarantees however we die, the
watchdog SIGKILLs every group still registered and exits. After a normal run
nothing is registered and end of file just makes it exit.

It never kills what was not registered: a group whose leader's pid now belongs to
another process (its start time differs) is left alone, as are pids 0 and 1.

The watchdog side is :func:`main` (``python -m zmqtest.reaper``, or this file run
by path, which needs nothing but the standard library); the owner side is
:func:`register`, :func:`unregister` and :func:`shutdown`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading

__all__ = ["main", "pid", "proc_stat", "register", "registered", "shutdown", "start_time"]

PID_MAX = 2**22
"""Linux never hands out pids above this (``/proc/sys/kernel/pid_max`` is at most 4194304)."""
UNKNOWN = "-"
"""Start time sent when the leader had already gone when registered: kill its group only, never the pid."""


def proc_stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); ``None`` if there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    return data.rpartition(b")")[2].split()


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): with the pid, it names one process, even after pid reuse."""
    fields = proc_stat(pid)
    return None if fields is None or len(fields) < 20 else fields[19].decode()


# ---------------------------------------------------------------------------------------------- the watchdog


def _kill(pgid: int, registered_start: str) -> None:
    """SIGKILL the group ``pgid`` (and its leader, which may not have called setsid yet), if it is still ours."""
    current = start_time(pgid)
    if current is not None:
        if current != registered_start:
            return  # the pid is another process now: while our group existed, its number was not reusable
        with contextlib.suppress(OSError):
            os.kill(pgid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _apply(line: bytes, groups: dict[int, str]) -> None:
    """Apply one ``+PGID STARTTIME`` / ``-PGID`` line; anything malformed is ignored."""
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
    else:
        groups.pop(pgid, None)


def main() -> int:
    """Read registrations from stdin until end of file, then SIGKILL every group still registered."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)  # only the end of our stdin ends us
    os.closerange(3, 65536)  # hold nothing of our owner's: not its sockets, not its pipes
    groups: dict[int, str] = {}
    pending = b""
    try:
        while True:
            chunk = os.read(0, 4096)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                _apply(line, groups)
    finally:
        for pgid, started in groups.items():
            with contextlib.suppress(Exception):  # one bad entry must not spare the others
                _kill(pgid, started)
    return 0


# ------------------------------------------------------------------------------------------------- the owner

_lock = threading.RLock()
_fd: int | None = None
"""Our end of the watchdog's stdin; closing it (or dying) makes the watchdog act and exit."""
_pid: int | None = None
_registered: dict[int, str] = {}
problem: str | None = None
"""Why the watchdog could not be started, if it could not (starts go on without it)."""


def register(pgid: int) -> None:
    """Have the watchdog SIGKILL process group ``pgid`` (led by pid ``pgid``) if we die; starts it if needed."""
    with _lock:
        started = start_time(pgid) or UNKNOWN
        _registered[pgid] = started
        _send(f"+{pgid} {started}\n")


def unregister(pgid: int) -> None:
    """Forget ``pgid`` (its group is gone)."""
    with _lock:
        if _registered.pop(pgid, None) is not None and _fd is not None:
            _send(f"-{pgid}\n")


def registered() -> frozenset[int]:
    """The process groups the watchdog would kill now."""
    with _lock:
        return frozenset(_registered)


def pid() -> int | None:
    """The watchdog's pid, if it runs."""
    return _pid


def _send(line: str) -> None:
    global problem
    if _fd is not None:
        try:
            os.write(_fd, line.encode())
            return
        except OSError:  # it died (someone killed it): start another, which gets every registration
            _drop()
    try:
        _start()
    except OSError as exc:
        problem = f"could not start the zmqtest reaper ({exc}): processes may outlive a SIGKILLed interpreter"


def _start() -> None:
    global _fd, _pid
    read_end, write_end = os.pipe()
    try:
        argv = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
        actions = [
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        try:
            _pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True)
        except NotImplementedError:  # a libc without POSIX_SPAWN_SETSID: it ignores SIGINT anyway
            _pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _fd = write_end
    lines = "".join(f"+{pgid} {started}\n" for pgid, started in _registered.items())
    if lines:
        os.write(_fd, lines.encode())


def _drop() -> None:
    """Forget the watchdog we had (it died); reap it if it is our child and gone."""
    global _fd, _pid
    if _fd is not None:
        os.close(_fd)
    if _pid is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(_pid, os.WNOHANG)
    _fd = _pid = None


def shutdown(timeout: float = 1.0) -> None:
    """Close the pipe (the watchdog kills what is still registered, then exits); reap it within ``timeout`` s."""
    global _fd, _pid
    with _lock:
        fd, child = _fd, _pid
        _fd = _pid = None
    if fd is None or child is None:
        return
    os.close(fd)
    try:
        pidfd = os.pidfd_open(child)
    except OSError:
        return
    try:
        if select.select([pidfd], [], [], timeout)[0]:
            os.waitpid(child, 0)
    except ChildProcessError:
        pass
    finally:
        os.close(pidfd)


def _forget_in_child() -> None:
    """After a fork, the child must not hold the pipe open (we could not die visibly) nor claim our groups."""
    global _fd, _pid, _lock
    _lock = threading.RLock()
    if _fd is not None:
        with contextlib.suppress(OSError):
            os.close(_fd)
    _fd = _pid = None
    _registered.clear()


if __name__ == "__main__":
    sys.exit(main())
elif hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
