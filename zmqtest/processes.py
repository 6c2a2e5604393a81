"""Processes under test: start them, know when they are ready, know at once when they die, stop them all.

A :class:`ProcessManager` starts two kinds of process: a :class:`multiprocessing.Process`
instance (say the application's ``PongProc``) and a command line. Each gets its own
session (so its whole process group can be signalled), its stdout and stderr in files
(``<name>-<n>.stdout`` / ``.stderr``), an optional readiness check, and a guaranteed
stop when the manager closes, whether the test passed, failed or was interrupted.

Why it works the way it does (each point was measured or is a documented pitfall):

- **The start method is explicit.** The interpreter's default changed (forkserver on
  Linux from Python 3.14), so a Process is started with the method from the argument
  or the settings, by giving the instance that context's ``_Popen``. Under spawn and
  forkserver the instance is pickled; when that fails, :class:`StartError` says why
  and how to fix it.
- **Child-side setup runs inside the child, before the user's run()**, through an
  instance attribute ``run`` that survives pickling: ``os.setsid()`` (its own process
  group), stdout and stderr moved onto the process's files with ``os.dup2`` onto fds
  1 and 2, and the ``patches``. Without the redirection a forkserver child writes to
  the forkserver's stdio, which is whatever the *first* test's capture was when the
  forkserver started (measured: a second test's child printed into the first test's
  ``capfd``, and its own saw nothing).
- **Death is seen through a pidfd** (``os.pidfd_open``), for both kinds. A Process's
  own ``sentinel`` is the read end of a pipe whose write end every ``os.fork()``-ed
  grandchild inherits: measured, under fork and spawn it stays unreadable after the
  child has died for as long as a grandchild lives. The pidfd is readable the moment
  the child itself ends. Every wait here pauses on it (at most 10 ms between checks,
  and the pause ends when it dies), so a process that dies during readiness is
  reported within milliseconds with its exit status and output.
- **Stop escalates over the whole group**: the stop action or SIGINT (sent again when
  it was lost: one that lands just before pyzmq's ``recv`` sleeps is, 35 % of the time
  under load; never into a shutdown under way), then SIGTERM, then SIGKILL,
  ``stop_grace`` apart; then
  SIGKILL for whatever is left of the group (grandchildren holding ports), waiting
  until it is empty. Zombies count as gone: a container's pid 1 may never reap them.
  :attr:`ManagedProcess.ends_waits` says whether its end should still cut other waits
  short: not once the test has stopped it, nor when it may end (``expect_exit``).
- **Nothing outlives us**: :meth:`ProcessManager.close` stops everything (a second
  Ctrl-C during it is held back until it is done); an ``atexit`` handler SIGKILLs what
  a manager left running; and :mod:`zmqtest.reaper` kills every registered group if
  this interpreter is SIGKILLed.

Linux only (pidfds: Linux 5.3+).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.util
import os
import pickle
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union, cast

from zmqtest import reaper, transcript
from zmqtest.childsetup import ChildSetup
from zmqtest.errors import ProcessError, ProcessExited, StartError, ZmqTestError, add_context
from zmqtest.logs import ENDPOINT_ENV, LogCollector, collecting
from zmqtest.settings import Settings, current, parse_start_method, parse_timeout
from zmqtest.waiting import ConnectionWaiter, watching

if TYPE_CHECKING:
    import zmq

    from zmqtest.sockets import TestSocket

__all__ = ["ManagedProcess", "ProcessManager", "Ready"]

Ready = Union[None, str, "re.Pattern[str]", Callable[[], object], "TestSocket"]
"""What ``start(ready=...)`` accepts: nothing, an output pattern, a callable, or a mimic socket."""

POLL = 0.01
"""Longest pause between two readiness checks: the process's death wakes a pause at once anyway."""
FIRST_POLL = 0.001
"""First pause between readiness checks, doubling up to POLL: a fork child is often ready within milliseconds."""
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


class _OutputLines:
    """New complete lines of a process's stdout and stderr files since the last call."""

    def __init__(self, *paths: Path) -> None:
        self.files = [open(path, "rb") for path in paths]  # noqa: SIM115 (closed in close())
        self.partial = [b""] * len(paths)

    def lines(self, final: bool = False) -> Iterator[str]:
        for index, file in enumerate(self.files):
            data = self.partial[index] + file.read()
            *complete, rest = data.split(b"\n")
            if final and rest:
                complete.append(rest)
                rest = b""
            self.partial[index] = rest
            for line in complete:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")

    def close(self) -> None:
        for file in self.files:
            file.close()


def _is_socket(obj: object) -> bool:
    zmq = sys.modules.get("zmq")
    return zmq is not None and isinstance(obj, zmq.Socket)


def _describe_ready(ready: object) -> str:
    if isinstance(ready, re.Pattern):
        return f"a line matching {ready.pattern!r} in its stdout or stderr"
    if _is_socket(ready):
        describe = getattr(ready, "describe", None)
        return f"a connection on {describe() if callable(describe) else repr(ready)}"
    name = getattr(ready, "__qualname__", None) or repr(ready)
    return f"{name}() to return a true value"


# ------------------------------------------------------------------------------------------ the manager


class ProcessManager:
    """Starts processes under test and guarantees that none outlives it.

    ``with ProcessManager(output_dir) as procs: pong = procs.start(PongProc(ep), ready=...)``.
    ``output_dir`` receives ``<name>-<n>.stdout``/``.stderr`` (``None``: a private
    temporary directory, removed at close). ``settings`` (default: the ones in force
    now) give the start method, the startup timeout and the stop grace.

    :meth:`close` stops every process (latest first) and then raises
    :class:`ProcessExited` for every process that ended by itself with a non-zero
    code or a signal (unless started with ``expect_exit``); leaving the ``with`` block
    with an exception attaches that report to the exception instead.
    """

    processes: list[ManagedProcess]

    def __init__(self, output_dir: str | os.PathLike[str] | None = None, *, settings: Settings | None = None) -> None:
        require_linux()
        self.settings = settings if settings is not None else current()
        self._own_dir = output_dir is None
        if output_dir is None:
            self.output_dir = Path(tempfile.mkdtemp(prefix="zmqtest-"))
        else:
            self.output_dir = Path(output_dir)
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self.processes = []
        self._watch = contextlib.ExitStack()
        self._closed = False
        self._logs: LogCollector | None = None

    @property
    def logs(self) -> LogCollector:
        """The collector of its processes' log records (made on first use: the first start); closed with it.

        Every process it starts gets its endpoint in ``ZMQTEST_LOG_ENDPOINT``; while the
        manager is open it is the current collector, the one ``yield ("log", ...)`` uses.
        """
        if self._logs is None:
            if self._closed:
                raise ProcessError("this ProcessManager is closed: its log collector is gone")
            self._logs = LogCollector()
            self._watch.enter_context(collecting(self._logs))
        return self._logs

    def __enter__(self) -> ProcessManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        __tracebackhide__ = True
        self._close(exc)

    def close(self) -> None:
        """Stop every process (latest first) and raise :class:`ProcessExited` for unexpected exits."""
        __tracebackhide__ = True
        self._close(None)

    def __call__(
        self, target: multiprocessing.process.BaseProcess | Sequence[str | os.PathLike[str]], **options: Any
    ) -> ManagedProcess:
        """``procs(target, **options)`` is ``procs.start(target, **options)``: the factory-fixture spelling."""
        return self.start(target, **options)

    # -------------------------------------------------------------------------------------- start

    def start(
        self,
        target: multiprocessing.process.BaseProcess | Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        ready: Ready = None,
        ready_timeout: float | None = None,
        stop: Callable[[], object] | None = None,
        start_method: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        patches: Mapping[str, object] | None = None,
        expect_exit: int | bool | None = None,
    ) -> ManagedProcess:
        """Start ``target`` (a Process instance or a command line) and wait until it is ready.

        ``ready``: ``None`` (return at once); a pattern (str or compiled) searched in
        each line of its stdout and stderr; a callable polled until it returns a true
        value (kept as ``.ready_value``; an exception it raises ends the start); or a
        mimic socket, ready once it has a completed connection. Any wait fails at
        once if the process dies (:class:`StartError` with its exit status and
        output), or after ``ready_timeout`` seconds (default: the settings' startup
        timeout); the process is stopped first.

        ``stop``: a graceful stop action (e.g. send the kill message) used instead of
        SIGINT. ``start_method``: fork, forkserver or spawn (Process targets; default:
        the settings'). ``patches``: ``{"module.name": replacement}`` patched in the
        child before ``run()`` (Process targets; pickled under spawn/forkserver).
        ``env`` (the whole environment, as for :class:`subprocess.Popen`; default:
        ours) and ``cwd``: command lines only; ``PYTHONUNBUFFERED=1`` is added unless
        set, so that a Python program's output reaches its files line by line. Every
        process gets ``ZMQTEST_LOG_ENDPOINT`` (:attr:`logs`, for ``zmqtest.logs.forward()``)
        unless ``env`` sets it. ``expect_exit``: ``True`` (any status) or the exit code with which the process
        may end by itself without failing the test.
        """
        if self._closed:
            raise ProcessError("this ProcessManager is closed: it starts nothing more")
        timeout = (
            self.settings.startup_timeout
            if ready_timeout is None
            else parse_timeout(ready_timeout, "the ready_timeout= argument of start()")
        )
        if isinstance(ready, str):
            ready = re.compile(ready)
        argv, method = self._check_target(target, start_method, env, cwd, patches)
        name = name or _default_name(target, argv)
        stdout_path, stderr_path = self._output_files(name)
        with contextlib.ExitStack() as stack:
            try:
                waiter = self._connection_waiter(cast("zmq.Socket[Any]", ready), stack) if _is_socket(ready) else None
                if isinstance(target, multiprocessing.process.BaseProcess):
                    assert method is not None
                    handle = self._start_process(target, name, method, stdout_path, stderr_path, patches, stop)
                else:
                    assert argv is not None
                    handle = self._start_command(argv, name, stdout_path, stderr_path, env, cwd, stop)
            except BaseException:
                stdout_path.unlink(missing_ok=True)  # nothing started: no empty files to puzzle over
                stderr_path.unlink(missing_ok=True)
                raise
            handle.expect_exit = expect_exit
            self.processes.append(handle)
            self.logs.process_names[handle.pid] = handle.name
            with _live_lock:
                _live.add(handle)
            reaper.register(handle.pid)
            self._watch.enter_context(watching(handle))
            transcript.note(handle.name, f"started: pid {handle.pid}, {handle._how()}")
            try:
                self._await_ready(handle, ready, timeout, waiter)
            except BaseException:
                handle._reported = True
                problems = handle._stop()
                if problems:
                    exc = sys.exc_info()[1]
                    assert exc is not None
                    for line in problems:
                        add_context(exc, line)
                raise
        if ready is not None:
            transcript.note(handle.name, f"ready: {_describe_ready(ready)}")
        return handle

    def _check_target(
        self,
        target: object,
        start_method: str | None,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        patches: Mapping[str, object] | None,
    ) -> tuple[list[str] | None, str | None]:
        if isinstance(target, multiprocessing.process.BaseProcess):
            if env is not None or cwd is not None:
                raise TypeError(
                    "env= and cwd= apply to command lines only: a Process inherits ours (set them in its run())"
                )
            if target._popen is not None:  # type: ignore[attr-defined]
                raise StartError(f"{type(target).__name__} was started already: a Process object starts once")
            if start_method is None:
                return None, parse_start_method(self.settings.start_method, "the settings")
            return None, parse_start_method(start_method, "the start_method= argument of start()")
        if isinstance(target, (str, bytes, os.PathLike)) or not isinstance(target, Sequence):
            raise TypeError(
                f"start() takes a multiprocessing.Process or a command line as a list of arguments, got {target!r}"
                " (to run a shell-style string, split it with shlex.split)"
            )
        if start_method is not None:
            raise TypeError("start_method= applies to multiprocessing.Process targets only, not to command lines")
        if patches:
            raise TypeError("patches= applies to multiprocessing.Process targets only: a command runs another program")
        argv = [os.fspath(arg) for arg in target]
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise TypeError(f"a command line is a non-empty list of str or path arguments, got {target!r}")
        return argv, None

    def _output_files(self, name: str) -> tuple[Path, Path]:
        """``<name>-<n>.stdout``/``.stderr``, created empty; ``n`` is the first number not taken."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "process"
        for number in itertools.count(1):
            paths = (self.output_dir / f"{stem}-{number}.stdout", self.output_dir / f"{stem}-{number}.stderr")
            try:
                created = []
                for path in paths:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
                    created.append(path)
                return paths
            except FileExistsError:
                for path in created:
                    path.unlink()
        raise AssertionError("unreachable")

    def _connection_waiter(self, sock: zmq.Socket[Any], stack: contextlib.ExitStack) -> ConnectionWaiter:
        """Before the start: the socket's monitor must be there to see the connection happen."""
        return stack.enter_context(ConnectionWaiter(sock))

    def _start_process(
        self,
        process: multiprocessing.process.BaseProcess,
        name: str,
        method: str,
        stdout_path: Path,
        stderr_path: Path,
        patches: Mapping[str, object] | None,
        stop: Callable[[], object] | None,
    ) -> ManagedProcess:
        state = vars(process)
        saved = {key: state[key] for key in ("run", "_Popen") if key in state}
        own_run = saved.get("run")
        state["run"] = ChildSetup(
            process, own_run, str(stdout_path), str(stderr_path), dict(patches or {}), method, environ=self.logs.environ
        )
        state["_Popen"] = multiprocessing.get_context(method).Process._Popen  # type: ignore[attr-defined]
        try:
            process.start()
        except Exception as exc:
            if method != "fork" and process._popen is None and _is_pickling_error(exc):  # type: ignore[attr-defined]
                raise StartError(_pickling_message(process, name, method, exc)) from exc
            raise StartError(
                f"could not start {name} with start method {method!r}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            for key in ("run", "_Popen"):
                if key in saved:
                    state[key] = saved[key]
                else:
                    state.pop(key, None)
        assert process.pid is not None
        return ManagedProcess(
            name=name,
            pid=process.pid,
            kind="process",
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            settings=self.settings,
            process=process,
            start_method=method,
            stop=stop,
        )

    def _start_command(
        self,
        argv: list[str],
        name: str,
        stdout_path: Path,
        stderr_path: Path,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        stop: Callable[[], object] | None,
    ) -> ManagedProcess:
        environment = dict(os.environ if env is None else env)
        environment.setdefault("PYTHONUNBUFFERED", "1")
        if env is None or ENDPOINT_ENV not in env:  # ours, not one this process inherited
            environment.update(self.logs.environ)
        with open(stdout_path, "ab") as out, open(stderr_path, "ab") as err:
            popen = start_session(
                argv, name, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=environment
            )
        return ManagedProcess(
            name=name,
            pid=popen.pid,
            kind="command",
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            settings=self.settings,
            popen=popen,
            argv=argv,
            stop=stop,
        )

    def _await_ready(
        self, handle: ManagedProcess, ready: Ready, timeout: float, waiter: ConnectionWaiter | None
    ) -> None:
        if ready is None:
            return
        what = _describe_ready(ready)
        if waiter is not None:
            try:
                waiter.wait(timeout)
                return
            except ZmqTestError as exc:
                if handle._ended():
                    raise self._died(handle, what) from None
                if isinstance(exc, TimeoutError):
                    raise self._not_ready(handle, what, timeout) from exc
                handle._reported = True
                problems = handle._stop()
                error = StartError(
                    f"{handle.name} (pid {handle.pid}) did not become ready ({what}): {exc}\n{handle._details()}"
                )
                error.context.extend(problems)
                raise error from exc
        deadline = time.monotonic() + timeout
        if isinstance(ready, re.Pattern):
            output = _OutputLines(handle.stdout_path, handle.stderr_path)
            try:
                self._poll(handle, what, timeout, deadline, lambda final: _search(handle, ready, output, final))
            finally:
                output.close()
            return
        if not callable(ready):
            raise TypeError(f"ready= takes None, a pattern, a callable or a mimic socket, got {ready!r}")
        check: Callable[[], object] = ready

        def call(final: bool) -> bool:
            value = check()
            if value:
                handle.ready_value = value
            return bool(value)

        try:
            self._poll(handle, what, timeout, deadline, call)
        except ZmqTestError:
            raise
        except Exception as exc:
            add_context(exc, f"  in the ready= check of {handle.describe()}")
            raise

    def _poll(
        self, handle: ManagedProcess, what: str, timeout: float, deadline: float, check: Callable[[bool], bool]
    ) -> None:
        pause = FIRST_POLL
        while True:
            if check(False):
                return
            if handle._ended():
                if check(True):  # it said so just before it ended: ready, and its end is the test's business
                    return
                raise self._died(handle, what)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._not_ready(handle, what, timeout)
            handle._ended(min(pause, remaining))  # its death ends the pause at once
            pause = min(pause * 2, POLL)

    def _died(self, handle: ManagedProcess, what: str) -> StartError:
        handle._reported = True
        problems = handle._stop()
        error = StartError(f"{handle.describe()} ended before it was ready (waited for {what})\n{handle._details()}")
        error.context.extend(problems)
        return error

    def _not_ready(self, handle: ManagedProcess, what: str, timeout: float) -> StartError:
        handle._reported = True
        problems = handle._stop()
        error = StartError(
            f"{handle.name} (pid {handle.pid}) was not ready within {timeout:g} s: waited for {what}; it was "
            f"still running, and was stopped ({handle.stopped_by}: {status_text(handle.poll())})\n"
            f"{handle._details()}"
        )
        error.context.extend(problems)
        return error

    # -------------------------------------------------------------------------------------- close

    def _close(self, propagating: BaseException | None) -> None:
        __tracebackhide__ = True  # a failing test's report shows the error, not this method
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []
        with _sigint_deferred() as interrupted:
            for handle in reversed(self.processes):
                try:
                    problems.extend(handle._stop())
                except Exception as exc:  # a bug of ours must not leave the other processes running
                    problems.append(f"stopping {handle.name} (pid {handle.pid}) failed: {type(exc).__name__}: {exc}")
            with contextlib.suppress(ValueError, RuntimeError):  # closed in another thread or context
                self._watch.close()
            if self._logs is not None:
                try:
                    self._logs.close()
                except Exception as exc:
                    problems.append(f"closing the log collector at {self._logs.endpoint} failed: {exc!r}")
            unexpected = [handle for handle in self.processes if handle._unexpected()]
            error = _close_error(unexpected, problems)
            with _live_lock:
                for handle in self.processes:
                    if handle not in _live:  # one that would not die keeps its pidfd for the atexit handler
                        handle._release()
            if self._own_dir:
                shutil.rmtree(self.output_dir, ignore_errors=True)
        if error is not None and propagating is not None:
            add_context(propagating, str(error))  # never mask the test's own failure
            error = None
        if interrupted:  # a Ctrl-C held back while stopping: the user still wants out
            stop = KeyboardInterrupt()
            if error is not None:
                add_context(stop, str(error))
            raise stop
        if error is not None:
            raise error


def _close_error(unexpected: list[ManagedProcess], problems: list[str]) -> ProcessError | None:
    if not unexpected and not problems:
        return None
    lines = []
    if unexpected:
        count = "1 process" if len(unexpected) == 1 else f"{len(unexpected)} processes"
        lines.append(f"{count} ended unexpectedly (start(..., expect_exit=...) says when an end is expected):")
        for handle in unexpected:
            lines.append(f"{handle.describe()} ended before the test stopped it")
            lines.append(handle._details())
    if problems:
        lines.append("stopping the processes under test went wrong:" if unexpected else problems.pop(0))
        lines.extend(problems)
    message = "\n".join(lines)
    return ProcessExited(message) if unexpected else ProcessError(message)


def _search(handle: ManagedProcess, pattern: re.Pattern[str], output: _OutputLines, final: bool) -> bool:
    for line in output.lines(final):
        found = pattern.search(line)
        if found:
            handle.match = found
            if "endpoint" in pattern.groupindex:
                handle.endpoint = found.group("endpoint")
            elif pattern.groups:
                handle.endpoint = found.group(1)
            return True
    return False


def _default_name(target: object, argv: list[str] | None) -> str:
    """The class name (a plain Process: its target's name); for commands, the program (a Python script's name)."""
    if argv is None:
        own_target = getattr(target, "_target", None)
        if type(target).__name__ in ("Process", "ForkProcess", "SpawnProcess", "ForkServerProcess") and own_target:
            return getattr(own_target, "__name__", None) or type(target).__name__
        return type(target).__name__
    program = os.path.basename(argv[0])
    if program.startswith("python") and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2]
        if not argv[1].startswith("-"):
            return os.path.basename(argv[1])
    return program


def _is_pickling_error(exc: BaseException) -> bool:
    return isinstance(exc, (pickle.PicklingError, TypeError, AttributeError))


def _pickling_message(process: multiprocessing.process.BaseProcess, name: str, method: str, exc: BaseException) -> str:
    notes = "".join(f"\n  {note}" for note in getattr(exc, "__notes__", ()))
    return (
        f"cannot start {name} ({type(process).__module__}.{type(process).__qualname__}) with start method "
        f"{method!r}: under {method} the Process object is pickled to reach the child, and pickling failed: "
        f"{type(exc).__name__}: {exc}{notes}\n"
        "To fix it: define the class at module level (not inside a function or a test), keep sockets, "
        "contexts, locks and open files out of __init__ (create them in run(), which runs in the child), "
        "or start it with start_method='fork'."
    )


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Hold back Ctrl-C while processes are being stopped (a second Ctrl-C must not leave orphans)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield received
        return

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, record)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------ backstops


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
