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
- **Watching and stopping** belong to each process's handle,
  :class:`~zmqtest.managed.ManagedProcess`: its death is seen at once through a pidfd,
  and its stop escalates over its whole process group. Every readiness wait here pauses
  on that pidfd (at most 10 ms between checks, and the pause ends when it dies), so a
  process that dies during readiness is reported within milliseconds.
- **Nothing outlives us**: :meth:`ProcessManager.close` stops everything (a second
  Ctrl-C during it is held back until it is done); :mod:`zmqtest.managed`'s ``atexit``
  handler SIGKILLs what a manager left running; and :mod:`zmqtest.reaper` kills every
  registered group if this interpreter is SIGKILLed.

Linux only (pidfds: Linux 5.3+).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.util
import os
import pickle
import re
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

from zmqtest import backstop, transcript
from zmqtest.childsetup import ChildSetup
from zmqtest.errors import ProcessError, ProcessExited, StartError, ZmqTestError, add_context
from zmqtest.groups import MARK
from zmqtest.logcollector import LogCollector, collecting
from zmqtest.logs import ENDPOINT_ENV
from zmqtest.managed import ManagedProcess, require_linux, start_session, status_text
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
        self._pid = os.getpid()  # only the process that made it stops its processes: a test may fork itself

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
        ready = _check_ready(ready)
        _check_options(stop, expect_exit)
        argv, method = self._check_target(target, start_method, env, cwd, patches)
        name = name or _default_name(target, argv)
        stdout_path, stderr_path = self._output_files(name)
        backstop.arm()  # the watchdog runs before the process does: no start is ever uncovered
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
            self._watch.enter_context(watching(handle))
            transcript.note(handle.name, f"started: pid {handle.pid}, {handle._how()}")
            try:
                self._await_ready(handle, ready, timeout, waiter)
                handle._note_own()  # what it started until it was ready is provably of its group
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
                method = parse_start_method(self.settings.start_method, "the settings")
            else:
                method = parse_start_method(start_method, "the start_method= argument of start()")
            _check_picklable_target(target, method)
            return None, method
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
        mark = backstop.new_mark()
        state["run"] = ChildSetup(
            process,
            own_run,
            str(stdout_path),
            str(stderr_path),
            dict(patches or {}),
            method,
            environ={**self.logs.environ, MARK: mark},
        )
        state["_Popen"] = multiprocessing.get_context(method).Process._Popen  # type: ignore[attr-defined]
        if method == "forkserver":
            _preload_in_forkserver()
        try:
            with backstop.marking(method, mark):
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
            mark=mark,
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
        environment[MARK] = mark = backstop.new_mark()
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
            mark=mark,
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
        assert callable(ready)  # checked by start()
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
        if os.getpid() != self._pid:  # a fork of the test: the processes, the log collector and the files are not its
            with contextlib.suppress(ValueError, RuntimeError):
                self._watch.close()  # this process's own view only: it stops watching them and their collector
            return
        problems: list[str] = []
        cut: list[BaseException] = []  # what cut a step short (pytest-timeout's failure): raised once all have run
        error: ProcessError | None = None
        with _sigint_deferred() as interrupted:
            for handle in reversed(self.processes):
                with _step(f"stopping {handle.name} (pid {handle.pid})", problems, cut):
                    try:
                        problems.extend(handle._stop())
                    except BaseException:  # its stop was cut short: no grace left for it, it must not run on
                        with _step(f"killing {handle.name} (pid {handle.pid})", problems, cut):
                            handle.kill_now()
                        raise
            with (
                _step("closing the watch of the processes", problems, cut),
                contextlib.suppress(ValueError, RuntimeError),
            ):
                self._watch.close()  # ValueError, RuntimeError: closed in another thread or context
            if self._logs is not None:
                with _step(f"closing the log collector at {self._logs.endpoint}", problems, cut):
                    self._logs.close()
            with _step("reporting the processes", problems, cut):
                unexpected = [handle for handle in self.processes if handle._unexpected()]
                error = _close_error(unexpected, problems)
            with _step("releasing the stopped processes", problems, cut):
                backstop.release_stopped(self.processes)
            if self._own_dir:
                with _step(f"removing {self.output_dir}", problems, cut):
                    shutil.rmtree(self.output_dir, ignore_errors=True)
        if error is not None and propagating is not None:
            add_context(propagating, str(error))  # never mask the test's own failure
            error = None
        if interrupted:  # a Ctrl-C held back while stopping: the user still wants out
            stop = KeyboardInterrupt()
            stop.__context__ = cut[0] if cut else None
            cut.insert(0, stop)
        if cut:  # the first interruption, once every step has run
            if error is not None:
                add_context(cut[0], str(error))
            raise cut[0]
        if error is not None:
            raise error


@contextlib.contextmanager
def _step(what: str, problems: list[str], cut: list[BaseException]) -> Iterator[None]:
    """One step of a close: it never keeps the next ones from running.

    An ``Exception`` (a bug of ours) becomes one of ``problems``; a ``BaseException`` (pytest-timeout's
    failure, a Ctrl-C) goes to ``cut``, for the close to raise once it has done everything else.
    """
    __tracebackhide__ = True
    try:
        yield
    except Exception as exc:
        problems.append(f"{what} failed: {type(exc).__name__}: {exc}")
    except BaseException as exc:
        cut.append(exc)


FORKSERVER_PRELOAD = ("zmq",)
"""Modules the forkserver imports once, so that its children need not: a forkserver start + stop of a child that
uses pyzmq took 43 instead of 70 ms (median of 30, 2-core VM). Only a forkserver started after this is set."""


def _preload_in_forkserver() -> None:
    """Add FORKSERVER_PRELOAD to the forkserver's preload list, keeping what is there (by default ``__main__``)."""
    from multiprocessing import forkserver

    # private: the list that the public set_forkserver_preload() replaces, read so as not to drop the user's own
    modules = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    missing = [name for name in FORKSERVER_PRELOAD if name not in modules]
    if missing:
        multiprocessing.get_context("forkserver").set_forkserver_preload(modules + missing)


def _close_error(unexpected: list[ManagedProcess], problems: list[str]) -> ProcessError | None:
    if not unexpected and not problems:
        return None
    lines = []
    if unexpected:
        count = "1 process" if len(unexpected) == 1 else f"{len(unexpected)} processes"
        lines.append(f"{count} ended unexpectedly (start(..., expect_exit=...) says when an end is expected):")
        for handle in unexpected:
            lines.append(handle._unexpected_text())
            lines.append(handle._details())
    if problems:
        lines.append("stopping the processes under test went wrong:" if unexpected else problems.pop(0))
        lines.extend(problems)
    message = "\n".join(lines)
    return ProcessExited(message) if unexpected else ProcessError(message)


def _check_ready(ready: object) -> Ready:
    """``ready`` as start() waits for it (a str compiled), or a TypeError/ValueError naming what is wrong with it."""
    if isinstance(ready, (bytes, bytearray)) or (isinstance(ready, re.Pattern) and isinstance(ready.pattern, bytes)):
        raise TypeError(f"ready={ready!r} is bytes: give a str regex (the process's output is read as text)")
    if isinstance(ready, str):
        try:
            return re.compile(ready)
        except re.error as exc:
            raise ValueError(f"ready={ready!r} is not a valid regular expression: {exc}") from None
    if _is_socket(ready):
        if cast("zmq.Socket[Any]", ready).closed:
            raise ValueError(f"ready={ready!r} is closed: give an open socket, one the process will connect to")
        return cast("TestSocket", ready)
    if ready is None or isinstance(ready, re.Pattern) or callable(ready):
        return cast(Ready, ready)
    raise TypeError(f"ready= takes None, a str regex, a callable or a mimic socket, got {ready!r}")


def _check_options(stop: object, expect_exit: object) -> None:
    if stop is not None and not callable(stop):
        raise TypeError(
            f"stop={stop!r} is not callable: give a function that makes the process stop (say, one that sends it "
            "the stop message), or None for SIGINT"
        )
    if expect_exit is not None and not isinstance(expect_exit, int):  # bool is an int: True, False
        raise TypeError(
            f"expect_exit={expect_exit!r} is a {type(expect_exit).__name__}: give True (it may end in any way), "
            "an exit code (say 0), or None or False (any end of its own fails the test)"
        )


def _check_picklable_target(process: multiprocessing.process.BaseProcess, method: str) -> None:
    """Under spawn and forkserver a plain Process's target is pickled by name: a lambda or local function is not."""
    target = getattr(process, "_target", None)
    if method == "fork" or target is None:
        return
    qualname = getattr(target, "__qualname__", "")
    if getattr(target, "__name__", None) == "<lambda>" or "<locals>" in qualname.split("."):
        kind = "a lambda" if target.__name__ == "<lambda>" else "a local function"
        raise TypeError(
            f"target={qualname} of the Process is {kind}: under {method} the Process is pickled to reach the child, "
            "and a function is pickled by its name; define it at module level (or start it with start_method='fork')"
        )


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
