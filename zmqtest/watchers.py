"""How a process's death is seen: a file descriptor that becomes readable once it has ended.

Every zmqtest wait polls such a descriptor next to what it waits for, so a death ends
the wait at once. Two watchers make it, chosen by ``ZMQTEST_WATCHER`` (:func:`kind`):

- ``pidfd`` (the default where the kernel has pidfds, Linux 5.3+): ``os.pidfd_open``.
  It is readable the moment the process ends, it names the process beyond pid reuse,
  and it can be signalled (``signal.pidfd_send_signal``).
- ``portable`` (any POSIX system with ``os.waitid``: older Linux, the BSDs, macOS with
  Python 3.13+): for a child of ours, the read end of a pipe into which a thread writes
  one byte once ``os.waitid(P_PID, pid, WEXITED | WNOWAIT)`` returns. ``WNOWAIT``
  leaves the zombie in place, so Popen and multiprocessing still reap it and read its
  exit status. One byte, not the end of file: a forked grandchild that inherited the
  write end cannot delay it (multiprocessing's own sentinel is such a pipe, and is
  delayed so). A process that is not our child (a forkserver's) is watched through the
  descriptor its parent makes readable once it has reaped it (multiprocessing's
  ``sentinel``), which the caller gives. Signals go by pid, after a start-time check:
  a narrower pid-reuse window than a pidfd's, said where it matters.

Standard library only: the watchdog (:mod:`zmqtest.reaper`, run by path) uses it too.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

__all__ = [
    "CHOICES",
    "ENV",
    "PIDFD",
    "PORTABLE",
    "Watch",
    "has_pidfds",
    "is_child",
    "kind",
    "problem",
    "readable",
    "using_pidfds",
]

ENV = "ZMQTEST_WATCHER"
"""The environment variable that chooses the watcher."""
PIDFD = "pidfd"
PORTABLE = "portable"
CHOICES = (PIDFD, PORTABLE)

_pidfds: bool | None = None


def has_pidfds() -> bool:
    """Tell whether this system has pidfds: ``os.pidfd_open`` exists and the kernel knows it (Linux 5.3+)."""
    global _pidfds
    if _pidfds is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfds = True
        except (AttributeError, OSError):  # no such function, or a kernel before 5.3 (ENOSYS)
            _pidfds = False
    return _pidfds


def kind() -> str:
    """Return the watcher in use: ``ZMQTEST_WATCHER`` if set, else ``pidfd`` where there are pidfds, else ``portable``.

    Read each time (cheap): a watch keeps the kind it was made with. A bad value raises
    :class:`ValueError` naming the variable and the values it takes.
    """
    value = os.environ.get(ENV, "")
    if not value:
        return PIDFD if has_pidfds() else PORTABLE
    if value not in CHOICES:
        raise ValueError(
            f"{ENV}={value!r} is not a watcher: use {PIDFD!r} (the default where there are pidfds, Linux 5.3+) "
            f"or {PORTABLE!r} (any POSIX system), or leave it unset"
        )
    if value == PIDFD and not has_pidfds():
        raise ValueError(f"{ENV}={value!r}, but this system ({sys.platform}) has no pidfds: use {PORTABLE!r}")
    return value


def using_pidfds() -> bool:
    """Tell whether pidfds are in use, never raising: a bad ``ZMQTEST_WATCHER`` (refused at the start) is ignored.

    For what runs later (a stop, a sweep, the watchdog), when the variable may have changed.
    """
    try:
        return kind() == PIDFD
    except ValueError:
        return has_pidfds()


def problem() -> str | None:
    """Say why processes cannot be watched here (a bad ``ZMQTEST_WATCHER``, no ``os.waitid``); ``None`` if they can."""
    try:
        chosen = kind()
    except ValueError as exc:
        return str(exc)
    if chosen == PORTABLE and not hasattr(os, "waitid"):
        return (
            f"zmqtest watches processes by pidfd (Linux 5.3+) or with os.waitid (the portable watcher), "
            f"and this Python on {sys.platform} has neither (macOS: os.waitid needs Python 3.13+)"
        )
    return None


def readable(fd: int) -> bool:
    """Tell whether ``fd`` is readable now: for a watch's descriptor, whether its process has ended."""
    return bool(select.select([fd], [], [], 0)[0])


def is_child(pid: int) -> bool:
    """Tell whether ``pid`` is a child of ours not yet reaped (running, or a zombie): only then can we wait for it."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


class Watch:
    """A descriptor readable once process ``pid`` has ended (``fd``), made by the watcher in use.

    ``fd`` is ``None`` if it could not be watched: already reaped (a forkserver child that
    ended at once) under ``pidfd``; not our child under ``portable``; then ``sentinel``,
    if given, is used (a descriptor its parent makes readable once it has reaped it; not
    ours to close). ``pidfd`` is the pidfd, under ``pidfd`` only. :meth:`close` when done.
    """

    def __init__(self, pid: int, sentinel: int | None = None) -> None:
        self.pid = pid
        self.kind = PIDFD if using_pidfds() else PORTABLE  # a bad ZMQTEST_WATCHER was refused before the start
        self.pidfd: int | None = None
        self.fd: int | None = None
        self._owned = True
        if self.kind == PIDFD:
            with contextlib.suppress(ProcessLookupError):
                self.fd = self.pidfd = os.pidfd_open(pid)
        elif is_child(pid):
            self.fd = _waiter(pid)
        if self.fd is None and sentinel is not None:
            self.fd, self._owned = sentinel, False

    @property
    def opened(self) -> bool:
        """Tell whether the process itself was reached (a pidfd opened, a waiter started), not just its sentinel."""
        return self.fd is not None and self._owned

    def ended(self) -> bool:
        """Tell whether the process has ended (``False`` if it could not be watched at all)."""
        return self.fd is not None and readable(self.fd)

    def close(self) -> None:
        """Close the descriptor (a waiter thread still waiting ends with its process, its byte unread)."""
        if self.fd is not None and self._owned:
            os.close(self.fd)
        self.fd = self.pidfd = None


def _waiter(pid: int) -> int:
    """Start a thread that writes one byte into a new pipe once child ``pid`` has ended; return the pipe's read end.

    Called right after the start: a child reaped by another thread before the waiter
    waits, its pid taken at once by a new child of ours, would be waited for in its place.
    """
    read_end, write_end = os.pipe()  # not inherited by what is executed (O_CLOEXEC)
    thread = threading.Thread(target=_tell_end, args=(pid, write_end), name=f"zmqtest-watcher-{pid}", daemon=True)
    try:
        thread.start()
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    return read_end


def _tell_end(pid: int, write_end: int) -> None:
    """Wait, without reaping, until child ``pid`` has ended (or was reaped by another), then say so on the pipe."""
    try:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(OSError):  # the watch was closed already: nobody reads
            os.write(write_end, b"x")
    finally:
        os.close(write_end)
