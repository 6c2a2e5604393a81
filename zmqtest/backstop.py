"""Every backstop against orphans, in one place, and why one could not start said once.

Teardown stops what a test started (:meth:`zmqtest.managed.ManagedProcess.stop`). Three
backstops cover what teardown misses:

- **at exit**: an ``atexit`` handler SIGKILLs every process that was started and not
  stopped (a second Ctrl-C cut teardown short, a test left a manager open);
- **the watchdog** (:mod:`zmqtest.reaper`, one small process per interpreter, in its
  own session): when this interpreter dies however it dies (SIGKILL, the OOM killer,
  pytest-timeout's ``thread`` method calling ``os._exit``) it SIGKILLs every process
  group still registered here, and every process carrying this interpreter's mark;
- **the mark**: each process under test runs with ``ZMQTEST_OWNER=<interpreter>/<n>``
  in its environment (see :func:`new_mark`), which everything it executes inherits,
  so that a descendant that left its process group (``setsid``, a daemon) is found
  by its stop (:func:`sweep`) and by the watchdog.

The watchdog starts before the first process does, so that no start is ever
uncovered. Nothing here acts in a forked copy of this interpreter (a test that forks
itself): the fork forgets what it inherited.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing.util  # noqa: F401  (its atexit handler first, so that ours runs before it)
import os
import select
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Protocol

from zmqtest import groups, watchers
from zmqtest.compat import multiprocessing_children

__all__ = [
    "arm",
    "new_mark",
    "pid",
    "problem",
    "register",
    "registered",
    "release_stopped",
    "shutdown",
    "sweep",
    "track",
    "unregister",
]


class Killable(Protocol):
    """What the atexit handler needs of a process that was started and not yet stopped."""

    def kill_now(self) -> None: ...

    def release(self) -> None: ...


SWEEP_WAIT = 2.0
"""Seconds to wait for the SIGKILLed descendants of a stopped process to be gone."""

_lock = threading.RLock()
_live: set[Killable] = set()
"""Processes started and not yet stopped, of every manager: what the atexit handler kills."""
_fd: int | None = None
"""Our end of the watchdog's stdin; closing it (or dying) makes the watchdog act and exit."""
_pid: int | None = None
_registered: dict[int, str] = {}
_interpreter: str | None = None
_numbers = itertools.count(1)
problem: str | None = None
"""Why the watchdog could not be started, if it could not (starts go on without it; the plugin says so once)."""


# ----------------------------------------------------------------------------------------------- the mark


def interpreter() -> str:
    """Return this interpreter's name in marks: its pid and start time, unique beyond pid reuse."""
    global _interpreter
    if _interpreter is None:
        me = os.getpid()
        _interpreter = f"{me}-{groups.start_time(me)}"
    return _interpreter


def new_mark() -> str:
    """Return a new mark for one process under test (the value of ``ZMQTEST_OWNER`` in its environment)."""
    return f"{interpreter()}/{next(_numbers)}"


@contextlib.contextmanager
def marking(method: str, mark: str) -> Iterator[None]:
    """Start a multiprocessing child with a mark in the environment it is executed with, where it has one.

    A spawn child is executed: with its own mark there, all it runs (even forked
    without exec) carries it. A forkserver child is forked from the forkserver: the
    forkserver, when this starts it, is marked as this interpreter's, so that the
    watchdog ends it and its children however we die. A fork child is not executed:
    what it executes carries its mark (set in it, see :mod:`zmqtest.childsetup`). The
    resource tracker is started first, unmarked: it must outlive every child to clean up.
    """
    if method == "fork":
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = os.environ.get(groups.MARK)
    os.environ[groups.MARK] = mark if method == "spawn" else f"{interpreter()}/forkserver"
    try:
        yield
    finally:
        if before is None:
            del os.environ[groups.MARK]
        else:
            os.environ[groups.MARK] = before


def sweep(mark: str, since: str | None, attached: Iterable[groups.Member] = (), *, marked: bool = True) -> list[int]:
    """SIGKILL what is left of one process under test's descendants; return their pids once they are gone.

    ``attached``: its descendants as seen while it ran (by parent chain, whatever their
    session); ``since``: its start time (only processes started since can carry its mark);
    ``marked=False`` looks for none that carry it (a scan of every process: a millisecond).
    What those started goes too, whatever its session or environment: a supervisor's
    workers, started with an environment of their own.
    """
    found: dict[int, str] = {}
    for pid, started in [*attached, *(groups.marked(mark, since=since) if marked else ())]:
        if pid not in found:  # else it came with the subtree of one found before it (parents come first)
            found[pid] = started
            found.update(groups.descendants(pid))
    killed = groups.kill(found.items())
    groups.wait_gone(killed, SWEEP_WAIT)
    return killed


# ------------------------------------------------------------------------------------------ the watchdog


def arm() -> None:
    """Start the watchdog if it does not run: before a process starts, so that none is ever uncovered."""
    with _lock:
        if _fd is None:
            _start_or_say_why()


def register(pgid: int) -> None:
    """Have the watchdog SIGKILL process group ``pgid`` (led by pid ``pgid``) if we die; starts it if needed."""
    with _lock:
        started = groups.start_time(pgid) or "-"
        _registered[pgid] = started
        _send(f"+{pgid} {started}\n")


def unregister(pgid: int) -> None:
    """Forget ``pgid`` (its group is gone)."""
    with _lock:
        if _registered.pop(pgid, None) is not None and _fd is not None:
            _send(f"-{pgid}\n")


def registered() -> frozenset[int]:
    """Return the process groups the watchdog would kill now."""
    with _lock:
        return frozenset(_registered)


def pid() -> int | None:
    """Return the watchdog's pid, if it runs."""
    return _pid


def _send(line: str) -> None:
    if _fd is not None:
        try:
            os.write(_fd, line.encode())
            return
        except OSError:  # it died (someone killed it): start another, which gets every registration
            _drop()
    _start_or_say_why()


def _start_or_say_why() -> None:
    global problem
    try:
        _start()
    except OSError as exc:
        problem = f"could not start the zmqtest reaper ({exc}): processes may outlive a SIGKILLed interpreter"


def _start() -> None:
    global _fd, _pid
    read_end, write_end = os.pipe()
    try:
        folder = os.path.dirname(os.path.abspath(groups.__file__))
        argv = [sys.executable, "-I", "-S", os.path.join(folder, "reaper.py"), interpreter()]
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
    """Close the pipe (the watchdog kills what is registered or marked, then exits); reap it within ``timeout``."""
    global _fd, _pid
    with _lock:
        fd, child = _fd, _pid
        _fd = _pid = None
    if fd is None or child is None:
        return
    os.close(fd)
    try:
        watch = watchers.Watch(child)
    except (OSError, ValueError, RuntimeError):  # no pidfd, no thread to spare, a bad ZMQTEST_WATCHER by now
        return
    try:
        if watch.fd is not None and select.select([watch.fd], [], [], timeout)[0]:
            os.waitpid(child, 0)
    except ChildProcessError:
        pass
    finally:
        watch.close()


# --------------------------------------------------------------------------------------------- at exit


def track(process: Killable) -> None:
    """Count ``process`` among those the atexit handler kills until it has stopped."""
    with _lock:
        _live.add(process)


def untrack(process: Killable) -> None:
    """Stop counting ``process`` (it has stopped, its group is gone)."""
    with _lock:
        _live.discard(process)


def release_stopped(processes: Iterable[Killable]) -> None:
    """Free what the stopped ones hold here; one that would not die keeps it for the atexit handler."""
    with _lock:
        for process in processes:
            if process not in _live:
                process.release()


def _kill_all_at_exit() -> None:
    """Run at exit: SIGKILL whatever a manager left running (a second Ctrl-C cut its close short), then the watchdog."""
    with _lock:
        left = list(_live)
        _live.clear()
    for process in left:
        with contextlib.suppress(Exception):
            process.kill_now()
    shutdown()


def _forget_in_child() -> None:
    """In a fork: hold not the watchdog's pipe (we could not die visibly), claim and kill none of our processes."""
    global _fd, _pid, _lock, _interpreter
    _lock = threading.RLock()
    if _fd is not None:
        with contextlib.suppress(OSError):
            os.close(_fd)
    _fd = _pid = _interpreter = None
    _registered.clear()
    children = multiprocessing_children()
    for process in _live:
        children.discard(getattr(process, "process", None))
    _live.clear()


atexit.register(_kill_all_at_exit)  # registered after multiprocessing's own handler, so it runs before that one
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
