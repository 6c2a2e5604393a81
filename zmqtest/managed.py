"""One process under test: its state, its death seen at once, its stop over its whole process group.

:class:`ManagedProcess` is what :class:`~zmqtest.processes.ProcessManager` hands back
for each process it starts (see that module for how they start and become ready).

- **Death is seen through a pidfd** (``os.pidfd_open``), for both kinds. A Process's
  own ``sentinel`` is the read end of a pipe whose write end every ``os.fork()``-ed
  grandchild inherits: measured, under fork and spawn it stays unreadable after the
  child has died for as long as a grandchild lives. The pidfd is readable the moment
  the child itself ends.
- **Stop escalates over the whole group**: the stop action or SIGINT (sent again when
  it was lost: one that lands just before pyzmq's ``recv`` sleeps is, 35 % of the time
  under load; never into a shutdown under way), then SIGTERM, then SIGKILL,
  ``stop_grace`` apart; then SIGKILL for whatever is left of the group (grandchildren
  holding ports), waiting until it is empty. A zombie counts as gone once all its
  threads have ended: a container's pid 1 may never reap it.
  :attr:`ManagedProcess.ends_waits` says whether its end should still cut other waits
  short: not once the test has stopped it, nor when it may end (``expect_exit``).
- **Nothing outlives us**: an ``atexit`` handler SIGKILLs what a manager left running,
  and :mod:`zmqtest.reaper` kills every registered group if this interpreter is SIGKILLed.

Linux only (pidfds: Linux 5.3+).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from zmqtest import reaper, transcript
from zmqtest.errors import ProcessError, ProcessExited, StartError
from zmqtest.settings import Settings, parse_timeout

__all__ = ["ManagedProcess", "group_members", "require_linux", "start_session", "status_text"]

POLL = 0.01
"""Longest pause between two checks of a group that is being cleared."""
SIGINT_REPEAT = 0.1
"""How often a stopping process's main thread is checked for a lost SIGINT (see ``_interrupt``)."""
KILL_WAIT = 5.0
"""Seconds to wait for a SIGKILLed process (it can only be slow in the kernel, e.g. on a hung disk)."""
GROUP_WAIT = 2.0
"""Seconds to wait for the rest of a process group to die after its SIGKILL."""
CODE_WAIT = 1.0
"""Seconds to wait for the exit code once the process has ended (a forkserver reports it a moment later)."""
TAIL_BYTES = 64 * 1024

BY_ITSELF = "exited by itself"


def require_linux() -> None:
    if not hasattr(os, "pidfd_open") or not sys.platform.startswith("linux"):
        raise ProcessError(
            f"zmqtest.processes needs Linux 5.3+ (os.pidfd_open), not {sys.platform}: it watches processes by pidfd"
        )


def status_text(returncode: int | None) -> str:
    """``running``, ``exited with code 3``, ``killed by SIGKILL``."""
    if returncode is None:
        return "running"
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


# ------------------------------------------------------------------------------------------ the handle


_live: set[ManagedProcess] = set()
"""Processes started and not yet stopped, of every manager: what the atexit handler kills."""
_live_lock = threading.Lock()


class ManagedProcess:
    """One started process: its state, its output, and how to stop it.

    It is a :class:`zmqtest.waiting.Watched`: while its manager is open, any zmqtest
    wait also watches :attr:`sentinel` and ends with :meth:`exit_error` if it dies.
    """

    name: str
    pid: int
    kind: str
    """``"process"`` (a multiprocessing.Process) or ``"command"`` (a command line)."""
    argv: list[str] | None
    """The command line (commands only)."""
    start_method: str | None
    """fork, forkserver or spawn (Process targets only)."""
    process: multiprocessing.process.BaseProcess | None
    popen: subprocess.Popen[bytes] | None
    stdout_path: Path
    stderr_path: Path
    match: re.Match[str] | None
    """The output line that made it ready, for a ``ready`` pattern."""
    endpoint: str | None
    """From the ``ready`` pattern: its group ``endpoint``, else its group 1, else ``None``."""
    ready_value: object
    """What a ``ready`` callable returned (its first truthy value)."""
    stopped_by: str | None
    """``"exited by itself"``, ``"stop action"``, ``"SIGINT"``, ``"SIGTERM"``, ``"SIGKILL"``; ``None`` until stopped."""
    stop_seconds: float | None
    expect_exit: int | bool | None

    def __init__(
        self,
        *,
        name: str,
        pid: int,
        kind: str,
        stdout_path: Path,
        stderr_path: Path,
        settings: Settings,
        process: multiprocessing.process.BaseProcess | None = None,
        popen: subprocess.Popen[bytes] | None = None,
        argv: list[str] | None = None,
        start_method: str | None = None,
        stop: Callable[[], object] | None = None,
        expect_exit: int | bool | None = None,
    ) -> None:
        self.name = name
        self.pid = pid
        self.kind = kind
        self.argv = argv
        self.start_method = start_method
        self.process = process
        self.popen = popen
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.match = None
        self.endpoint = None
        self.ready_value = None
        self.stopped_by = None
        self.stop_seconds = None
        self.expect_exit = expect_exit
        self._settings = settings
        self._stop_action = stop
        self._returncode: int | None = None
        self._stopping = False
        self._stopped = False
        self._reported = False  # its end was already raised (StartError): not an unexpected exit again at close
        self._problems: list[str] = []
        self._survivors: list[int] = []
        self._released = False
        self._pidfd: int | None = None
        self._pidfd = self._open_pidfd()

    def _open_pidfd(self) -> int | None:
        try:
            return os.pidfd_open(self.pid)
        except ProcessLookupError:  # a forkserver child that ended (and was reaped) already
            return None

    # -------------------------------------------------------------------------------------- state

    @property
    def sentinel(self) -> int:
        """A file descriptor that is readable once the process has ended (a pidfd)."""
        if self._pidfd is not None:
            return self._pidfd
        if self.process is not None and not self._released:
            return self.process.sentinel  # only for a forkserver child gone before we could open its pidfd
        raise ValueError(f"{self.describe()}: its sentinel was released when its manager closed")

    @property
    def ends_waits(self) -> bool:
        """Whether its end should cut a zmqtest wait short: not once the test stopped it, nor if it may end."""
        return (
            self.stopped_by is None and not self._stopping and (self.expect_exit is None or self.expect_exit is False)
        )

    @property
    def returncode(self) -> int | None:
        """``None`` while running; the exit code; ``-N`` if killed by signal N (for both kinds)."""
        return self.poll()

    def _ended(self, timeout: float = 0.0) -> bool:
        """Whether the process has ended, waiting at most ``timeout`` seconds for it to."""
        if self._returncode is not None:
            return True
        try:
            fd = self.sentinel
        except ValueError:
            return True
        return bool(multiprocessing.connection.wait([fd], timeout))

    def poll(self) -> int | None:
        """The exit status if the process has ended (reaping it), else ``None``; never blocks for long."""
        if self._returncode is None and self._ended():
            self._returncode = self._collect()
            if self._returncode is not None:
                transcript.note(self.name, status_text(self._returncode))
        return self._returncode

    def _collect(self) -> int | None:
        """Reap the ended process; a forkserver child's code comes from the forkserver, a moment later."""
        if self.popen is not None:
            try:
                return self.popen.wait(CODE_WAIT)
            except subprocess.TimeoutExpired:
                return None
        assert self.process is not None
        process = self.process
        code = process.exitcode  # waitpid(WNOHANG) for fork/spawn children, not the (grandchild-held) sentinel
        if code is None and self.start_method == "forkserver":
            with contextlib.suppress(ValueError, OSError):
                multiprocessing.connection.wait([process.sentinel], CODE_WAIT)
                code = process.exitcode
        return code

    def is_alive(self) -> bool:
        return self.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait at most ``timeout`` seconds for the process to end; its exit status, or ``None`` if still running."""
        seconds = parse_timeout(timeout, f"wait() of {self.name}", allow_zero=True)
        if self._ended(seconds):
            return self.poll()
        return None

    # ------------------------------------------------------------------------------------- output

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of its stdout and of its stderr, labelled."""
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = _last_lines(path, lines)
            if text is None:
                parts.append(f"--- {label} of {self.name}: {path} is gone ---")
            elif text:
                parts.append(f"--- {label} of {self.name} (last {lines} lines of {path}) ---\n{text}")
        if len(parts) == 0:
            hint = ""
            if self.kind == "process" and self.start_method != "fork" and (self.poll() or 0) > 0:
                hint = (
                    "; errors before run() (e.g. the object could not be unpickled under "
                    f"{self.start_method}) go to the test's own stderr"
                )
            return f"--- {self.name} wrote nothing to stdout or stderr{hint} ---"
        return "\n".join(parts)

    def describe(self) -> str:
        """``PongProc (pid 4242, running)`` / ``(pid 4242, exited with code 3)`` / ``(pid 4242, killed by SIGKILL)``."""
        return f"{self.name} (pid {self.pid}, {status_text(self.poll())})"

    def report(self, lines: int = 20) -> str:
        """What a failing test's report shows: the state, how it was stopped, the output tail."""
        text = self.describe()
        if self.stopped_by == BY_ITSELF:
            text += f"; {BY_ITSELF}"
        elif self.stopped_by is not None:
            took = f" after {self.stop_seconds:.3g} s" if self.stop_seconds is not None else ""
            text += f"; stopped by {self.stopped_by}{took}"
        return f"{text}\n{self.tail(lines)}"

    def _how(self) -> str:
        """How it was started, in a few words: the start method, or the command line."""
        return f"{type(self.process).__name__} with {self.start_method}" if self.argv is None else shlex.join(self.argv)

    def _command_line(self) -> str:
        if self.argv is not None:
            return f"command: {shlex.join(self.argv)}"
        return f"process: {type(self.process).__name__} started with {self.start_method}"

    def exit_error(self, waiting_for: str) -> ProcessExited:
        """The error for a wait cut short by its end: ``PongProc (pid 4242) exited with code 3 while ...``."""
        code = self.poll()
        if code is not None:
            state = status_text(code)
        else:
            state = "ended (exit status unknown)" if self._ended() else "is still running"
        self._reported = True  # the wait raises it: close() must not report the same end again
        return ProcessExited(f"{self.name} (pid {self.pid}) {state} while {waiting_for}\n{self._details()}")

    def _details(self) -> str:
        return f"{self._command_line()}\n{self.tail()}"

    # --------------------------------------------------------------------------------------- stop

    def stop(self) -> int:
        """Stop the process (see the module docstring), reap it, clear its group; its exit status.

        Idempotent. Raises :class:`ProcessError` (after the process is gone) if the
        stop action failed or the process would not die.
        """
        problems = self._stop()
        if problems:
            raise ProcessError("\n".join(problems))
        code = self.poll()
        if code is None:
            raise ProcessError(f"{self.describe()}: ended, but its exit status could not be read")
        return code

    def _stop(self) -> list[str]:
        """Stop and reap; return what went wrong (never raises for the process's behaviour)."""
        if self._stopped or self._stopping:
            return []
        self._stopping = True
        began = time.monotonic()
        try:
            if self._ended():
                self.stopped_by = BY_ITSELF
            else:
                self._escalate()
            if self.poll() is None and self._ended(CODE_WAIT):
                self.poll()
            self._survivors = self._clear_group()
            if self._survivors:
                self._problems.append(
                    f"{self.name} (pid {self.pid}): processes {self._survivors} of its group survived SIGKILL "
                    f"for {GROUP_WAIT:g} s"
                )
            elif self._ended():
                reaper.unregister(self.pid)
                with _live_lock:
                    _live.discard(self)
        finally:
            self.stop_seconds = time.monotonic() - began
            self._stopping = False
            self._stopped = True
        return list(self._problems)

    def _escalate(self) -> None:
        grace = self._settings.stop_grace
        graceful = "SIGINT"
        if self._stop_action is not None:
            transcript.note(self.name, "stopping: stop action")
            try:
                self._stop_action()
            except Exception as exc:  # the test's stop action is broken: say so later, stop it anyway
                self._problems.append(
                    f"the stop action of {self.name} (pid {self.pid}) failed: {type(exc).__name__}: {exc}"
                    " (SIGINT was sent instead)"
                )
            else:
                graceful = "stop action"
                if self._ended(grace):
                    self.stopped_by = graceful
                    return
        if graceful == "SIGINT":
            transcript.note(self.name, f"stopping: SIGINT (for {grace:g} s)")
            if self._interrupt(grace):
                self.stopped_by = "SIGINT"
                return
        for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)):
            transcript.note(self.name, f"stopping: {signum.name}")
            self._signal(signum)
            if self._ended(seconds):
                self.stopped_by = signum.name
                return
        self._problems.append(
            f"{self.describe()} was still running {KILL_WAIT:g} s after SIGKILL (stuck in the kernel?)\n"
            f"{self._command_line()}"
        )

    def _interrupt(self, grace: float) -> bool:
        """SIGINT the group for ``grace`` seconds; whether the process ended.

        A SIGINT that lands while the main thread runs, just before it blocks in a C call
        (a zmq recv), is lost: Python only notes it. So SIGINT is sent again when the
        thread has slept through a whole SIGINT_REPEAT without running once; not every
        SIGINT_REPEAT regardless, which would break into a shutdown that is under way
        (the process would end killed by SIGINT instead of with its own status).
        """
        deadline = time.monotonic() + grace
        while True:
            self._signal(signal.SIGINT)
            last = _main_thread(self.pid)
            while True:
                remaining = deadline - time.monotonic()
                if self._ended(max(0.0, min(SIGINT_REPEAT, remaining))):
                    return True
                if remaining <= SIGINT_REPEAT:
                    return False
                now = _main_thread(self.pid)
                if now is not None and now.startswith(b"S") and now == last:
                    break  # asleep throughout, never woke: the SIGINT was lost
                last = now

    def _signal(self, signum: int) -> None:
        """Send ``signum`` to the process's group (to the process alone before it has called setsid)."""
        if self._ended():
            return  # its pid may be reaped and reused by now: never signal it
        try:
            os.killpg(self.pid, signum)
            return
        except ProcessLookupError:  # no such group yet: a Process child before its setsid()
            pass
        except PermissionError:
            pass
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def _clear_group(self) -> list[int]:
        """SIGKILL what is left of the process group and wait until it is gone; the pids that survive."""
        deadline = time.monotonic() + GROUP_WAIT
        while True:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return []
            except PermissionError:
                pass
            members = group_members(self.pid)
            if not members or time.monotonic() >= deadline:
                return members
            with _pidfds(members) as fds:
                multiprocessing.connection.wait(fds, POLL)

    def _kill_now(self) -> None:
        """At interpreter exit: SIGKILL the group, no grace, bounded waits."""
        self._signal(signal.SIGKILL)
        if self._ended(1.0):
            self.poll()
        self._clear_group()
        reaper.unregister(self.pid)

    def _unexpected(self) -> bool:
        """Whether it ended by itself in a way the test did not say it expects."""
        code = self._returncode
        if self.stopped_by != BY_ITSELF or self._reported or code is None or code == 0:
            return False
        if self.expect_exit is True:
            return False
        return self.expect_exit is None or self.expect_exit is False or self.expect_exit != code

    def _release(self) -> None:
        """Free what the ended process held here: its pidfd, and the Process's pipes (pytest keeps the item)."""
        self._released = True
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self.process is not None:
            with contextlib.suppress(ValueError):  # still running (it would not die): kept for the atexit handler
                self.process.close()

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.describe()}>"


def _last_lines(path: Path, lines: int) -> str | None:
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL_BYTES))
            data = file.read()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def _main_thread(pid: int) -> bytes | None:
    """The state of ``pid``'s main thread and how often it has blocked: equal values mean it slept throughout."""
    try:
        with open(f"/proc/{pid}/task/{pid}/status", "rb") as status:
            lines = status.read().splitlines()
    except OSError:
        return None
    state = next((line.split(b":", 1)[1].strip() for line in lines if line.startswith(b"State:")), b"")
    switches = next((line for line in lines if line.startswith(b"voluntary_ctxt_switches:")), b"")
    return state[:1] + b" " + switches


def start_session(
    argv: Sequence[str],
    name: str,
    *,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (so that its whole group can be stopped); say why if it cannot start."""
    try:
        return subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env, start_new_session=True, close_fds=True
        )
    except OSError as exc:
        raise StartError(
            f"could not start {name}: {type(exc).__name__}: {exc}\ncommand: {shlex.join(argv)}"
            + (f"\nin directory: {os.fspath(cwd)}" if cwd is not None else "")
        ) from exc


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that have not wholly ended.

    A zombie whose leader thread has ended may still have threads exiting that hold its
    files (a zmq context's listening socket): it counts as gone once its pidfd says the
    whole process has ended.
    """
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = reaper.proc_stat(int(name))
            if not fields or len(fields) <= 2 or fields[2] != str(pgid).encode():
                continue
            if fields[0] not in b"ZX" or not _wholly_ended(int(name)):
                members.append(int(name))
    return members


def _wholly_ended(pid: int) -> bool:
    """Whether every thread of ``pid`` has ended (its pidfd is readable then)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], 0)[0])
    finally:
        os.close(pidfd)


@contextlib.contextmanager
def _pidfds(pids: list[int]) -> Iterator[list[int]]:
    fds = []
    try:
        for pid in pids:
            with contextlib.suppress(OSError):
                fds.append(os.pidfd_open(pid))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


# ------------------------------------------------------------------------------------------ readiness


def track(handle: ManagedProcess) -> None:
    """Count ``handle`` among the processes the atexit handler kills until it has stopped."""
    with _live_lock:
        _live.add(handle)


def release_stopped(handles: list[ManagedProcess]) -> None:
    """Free what the stopped ones of ``handles`` hold here; one that would not die keeps it for the atexit handler."""
    with _live_lock:
        for handle in handles:
            if handle not in _live:
                handle._release()


def _kill_all_at_exit() -> None:
    """atexit: SIGKILL whatever a manager left running (say, a second Ctrl-C cut its close short)."""
    with _live_lock:
        left = list(_live)
        _live.clear()
    for handle in left:
        with contextlib.suppress(Exception):
            handle._kill_now()
    reaper.shutdown()


def _forget_in_child() -> None:
    """A forked child must not kill its parent's processes when it exits."""
    global _live_lock
    _live_lock = threading.Lock()
    _live.clear()


atexit.register(_kill_all_at_exit)  # after multiprocessing's own (imported above), so it runs before it
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere ProcessManager() says that Linux is needed
    os.register_at_fork(after_in_child=_forget_in_child)
