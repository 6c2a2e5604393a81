"""Run a command line with a deadline, and capture what it did: the ``run`` half of system tests.

:func:`run` runs a command line until it ends, at most a deadline, and returns its
stdout, stderr and exit status (a :class:`RunResult`). The program starts in its own
session, so the deadline (and any error, or Ctrl-C) SIGKILLs its whole process group;
what it left running in that group when it ended is killed too (and listed in
:attr:`RunResult.leftovers`), and so is what escaped the group (found by the
environment mark :data:`zmqtest.groups.MARK`, see :func:`zmqtest.backstop.sweep`).
Its output goes to anonymous temporary files, not pipes: a grandchild that keeps a
pipe open cannot stall us, nothing is read while it runs, and no file is left behind
whatever happens.

Comparing the result with a golden file is :mod:`zmqtest.golden`'s part (which also
re-exports these names, where they were first). Works without pytest; where the rest
of the process handling works (a pidfd, or the portable watcher: :mod:`zmqtest.watchers`).
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from zmqtest import backstop, childcoverage
from zmqtest.compat import require_watcher
from zmqtest.errors import ProcessError, StartError, WaitTimeout
from zmqtest.groups import MARK, clear_group, descendants, start_time, status_text, wait_gone
from zmqtest.settings import parse_timeout
from zmqtest.stopstages import KILL_WAIT
from zmqtest.watchers import Watch

__all__ = ["DEFAULT_RUN_TIMEOUT", "RunResult", "RunTimeout", "run", "start_session"]

DEFAULT_RUN_TIMEOUT = 30.0
"""Seconds a program may run before :func:`run` kills it."""
TAIL_LINES = 20
"""Lines of output an error message quotes."""


@dataclass(frozen=True)
class RunResult:
    """What a program did: its exit status and everything it wrote."""

    argv: tuple[str, ...]
    returncode: int
    """The exit code; ``-N`` if a signal N killed it."""
    stdout_bytes: bytes
    stderr_bytes: bytes
    seconds: float
    """How long it ran."""
    pid: int
    cwd: str | None = None
    leftovers: tuple[int, ...] = ()
    """Processes of its group still running when it ended; :func:`run` killed them."""

    @property
    def stdout(self) -> str:
        """Decode stdout as text (UTF-8; a byte that is not shows as ``\\xNN``)."""
        return self.stdout_bytes.decode("utf-8", errors="backslashreplace")

    @property
    def stderr(self) -> str:
        """Decode stderr as text (UTF-8; a byte that is not shows as ``\\xNN``)."""
        return self.stderr_bytes.decode("utf-8", errors="backslashreplace")

    @property
    def status(self) -> str:
        """Say how it ended: ``exited with code 0``, ``exited with code 3``, ``killed by SIGTERM``."""
        return status_text(self.returncode)

    def __str__(self) -> str:
        return f"{shlex.join(self.argv)}: {self.status} after {self.seconds:.3g} s"


class RunTimeout(WaitTimeout):
    """A program run by :func:`run` was still running at its deadline; its process group was killed.

    A :class:`TimeoutError`. ``stdout`` and ``stderr`` hold what it wrote until then;
    ``pid`` was its pid (and its process group's id).
    """

    def __init__(
        self, message: str, *, argv: Sequence[str], timeout: float, pid: int, stdout: str, stderr: str
    ) -> None:
        super().__init__(message, what=shlex.join(argv), timeout=timeout)
        self.argv = tuple(argv)
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_RUN_TIMEOUT,
) -> RunResult:
    """Run the command line ``argv`` until it ends, at most ``timeout`` seconds, and return what it did.

    ``stdin``: text (sent as UTF-8) or bytes for its standard input; ``None`` gives it
    an empty one (never the terminal's). ``env``: its whole environment (as for
    :class:`subprocess.Popen`; default: ours); ``PYTHONUNBUFFERED=1`` is added unless
    set, so that a Python program killed at the deadline has written what it printed.
    ``cwd``: its directory.

    A non-zero exit is not an error here: check :attr:`RunResult.returncode` (or
    compare the whole result with a golden file). Raises :class:`RunTimeout` (with
    the output so far) at the deadline, :class:`StartError` if it cannot start.
    """
    __tracebackhide__ = True
    require_watcher()
    command = _check_argv(argv)
    seconds = parse_timeout(timeout, "the timeout= argument of run()")
    data = _stdin_bytes(stdin)
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    environment[MARK] = mark = backstop.new_mark()
    childcoverage.add_to(environment, env)  # coverage measures us: it measures the program too
    where = None if cwd is None else os.fspath(cwd)
    with contextlib.ExitStack() as files:
        out = files.enter_context(tempfile.TemporaryFile())  # unlinked at once: nothing to clean up, ever
        err = files.enter_context(tempfile.TemporaryFile())
        given: IO[bytes] | int = subprocess.DEVNULL
        if data is not None:
            given = files.enter_context(tempfile.TemporaryFile())
            given.write(data)
            given.seek(0)
        started = time.monotonic()
        backstop.arm()
        popen = start_session(
            command, os.path.basename(command[0]), stdin=given, stdout=out, stderr=err, cwd=where, env=environment
        )
        backstop.register(popen.pid)
        began = start_time(popen.pid)
        ended = False
        try:
            ended = _wait_for_end(popen.pid, seconds)
        finally:
            escaped = [] if ended else descendants(popen.pid)
            if not ended:  # the deadline, or an exception (Ctrl-C) while we waited
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)  # not reaped yet: its pid and group number are its own
                wait_gone([popen.pid], KILL_WAIT)
            found, _ = clear_group(popen.pid, KILL_WAIT)  # still before it is reaped, for the same reason
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(KILL_WAIT)
            leftovers = (*found, *backstop.sweep(mark, began, escaped))
            backstop.unregister(popen.pid)
        took = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if not ended:
        raise _deadline_error(command, popen.pid, where, seconds, stdout, stderr)
    if popen.returncode is None:  # only a process stuck in the kernel survives a SIGKILL this long
        raise ProcessError(
            f"{shlex.join(command)} (pid {popen.pid}) ended but could not be reaped within {KILL_WAIT:g} s"
        )
    return RunResult(
        argv=tuple(command),
        returncode=popen.returncode,
        stdout_bytes=stdout,
        stderr_bytes=stderr,
        seconds=took,
        pid=popen.pid,
        cwd=where,
        leftovers=leftovers,
    )


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
    """Start ``argv`` in a session of its own (so that its whole group can be stopped); say why if it cannot start.

    Both :func:`run` and :meth:`ProcessManager.start <zmqtest.processes.ProcessManager.start>` start command lines
    this way.
    """
    __tracebackhide__ = True  # a StartError is reported at the test's line
    try:
        return subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env, start_new_session=True, close_fds=True
        )
    except OSError as exc:
        raise StartError(
            f"could not start {name}: {type(exc).__name__}: {exc}\ncommand: {shlex.join(argv)}"
            + (f"\nin directory: {os.fspath(cwd)}" if cwd is not None else "")
        ) from None  # the message says it all: the OSError's traceback would only show subprocess's insides


def _check_argv(argv: object) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError(
            f"run() takes the command line as a list of arguments, not a string: {argv!r} "
            "(split one with shlex.split(); no shell is involved)"
        )
    if not isinstance(argv, Sequence) or not argv:
        raise TypeError(f"run() takes the command line as a non-empty list of arguments, got {argv!r}")
    command = []
    for index, item in enumerate(argv):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"argument {index} of the command line is {item!r}: each must be a str or a path")
        command.append(str(os.fspath(item)))
    return command


def _stdin_bytes(stdin: object) -> bytes | None:
    if stdin is None or isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode()
    raise TypeError(f"stdin must be text, bytes or None, got {type(stdin).__name__}")


def _wait_for_end(pid: int, timeout: float) -> bool:
    """Wait at most ``timeout`` s for child ``pid`` to end (by its watch: no polling loop); return whether it did."""
    watch = Watch(pid)
    try:
        return watch.fd is None or bool(select.select([watch.fd], [], [], timeout)[0])  # None: reaped already
    finally:
        watch.close()


def _deadline_error(
    command: list[str], pid: int, cwd: str | None, timeout: float, stdout: bytes, stderr: bytes
) -> RunTimeout:
    out = stdout.decode("utf-8", errors="backslashreplace")
    err = stderr.decode("utf-8", errors="backslashreplace")
    lines = [
        f"{shlex.join(command)} (pid {pid}) was still running at its {timeout:g} s deadline: "
        "its process group was killed (SIGKILL)",
        *([f"in directory: {cwd}"] if cwd is not None else []),
        tail("stdout so far", out),
        tail("stderr so far", err),
    ]
    return RunTimeout("\n".join(lines), argv=command, timeout=timeout, pid=pid, stdout=out, stderr=err)


def tail(label: str, text: str, lines: int = TAIL_LINES) -> str:
    """Quote the last ``lines`` lines of ``text`` under a header ``label``, for an error message."""
    if not text:
        return f"--- {label}: nothing ---"
    kept = text.splitlines()
    shown = "\n".join(kept[-lines:])
    return f"--- {label} (last {lines} lines) ---\n{shown}" if len(kept) > lines else f"--- {label} ---\n{shown}"
