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
  and its stop escalates over its whole process group. **Readiness** is one of the
  named types of :mod:`zmqtest.readiness`, whose waits race that pidfd, so a process
  that dies during readiness is reported within milliseconds.
- **Nothing outlives us**: :meth:`ProcessManager.close` stops everything, all at once
  (six processes that ignore SIGINT stop in 2 s, not 12: :mod:`zmqtest.teardown`), and
  a second Ctrl-C during it is held back until it is done; each stop also kills what
  left the process's group; and :mod:`zmqtest.backstop` holds the rest (an ``atexit``
  handler, a watchdog for a SIGKILLed interpreter, the mark every process carries).

Linux with pidfds (5.3+), or any POSIX system with ``os.waitid`` (see zmqtest.watchers).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.util
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from zmqtest import backstop, childcoverage, transcript
from zmqtest.childsetup import ChildSetup, sigint_held
from zmqtest.compat import popen_class, require_watcher
from zmqtest.errors import ProcessError, ProcessExited, StartError, add_context
from zmqtest.groups import MARK, status_text
from zmqtest.launch import (
    Launch,
    copy_process,
    create_files,
    pickling_problem,
    preload_in_forkserver,
    start_command,
    take_over,
)
from zmqtest.logcollector import LogCollector, collecting
from zmqtest.managed import ManagedProcess
from zmqtest.readiness import NotReady, Readiness, Ready, readiness
from zmqtest.settings import Settings, StartMethod, current, parse_timeout
from zmqtest.stopstages import stop_limit
from zmqtest.targets import check_options, check_target, default_name
from zmqtest.teardown import InThread, sigint_deferred, step
from zmqtest.waiting import watching

if TYPE_CHECKING:
    import zmq

__all__ = ["ManagedProcess", "ProcessManager", "Ready"]

# ------------------------------------------------------------------------------------------ the manager


class ProcessManager:
    """Starts processes under test and guarantees that none outlives it.

    ``with ProcessManager(output_dir) as procs: pong = procs.start(PongProc(ep), ready=...)``.
    ``output_dir`` receives ``<name>-<n>.stdout``/``.stderr`` (``None``: a private
    temporary directory, removed at close). ``settings`` (default: the ones in force
    now) give the start method, the startup timeout and the stop grace. ``context``: where its log
    collector's socket lives (default: a context of its own, two I/O threads per manager).

    :meth:`close` stops every process (all at once, each in a thread) and then raises
    :class:`ProcessExited` for every process that ended by itself with a non-zero
    code or a signal (unless started with ``expect_exit``); leaving the ``with`` block
    with an exception attaches that report to the exception instead.
    """

    processes: list[ManagedProcess]

    def __init__(
        self,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        require_watcher()
        self.settings = settings if settings is not None else current()
        self._context = context
        self._own_dir = output_dir is None
        if output_dir is None:
            self.output_dir = Path(tempfile.mkdtemp(prefix="zmqtest-"))
        else:
            self.output_dir = Path(output_dir)
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self.processes = []
        self._retired: list[ManagedProcess] = []
        """Earlier runs of restarted processes that ended unexpectedly: close() reports them too."""
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
            self._logs = LogCollector(self._context)
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
        """Stop every process (all at once) and raise :class:`ProcessExited` for unexpected exits."""
        __tracebackhide__ = True
        self._close(None)

    def __call__(
        self, target: multiprocessing.process.BaseProcess | Sequence[str | os.PathLike[str]], **options: Any
    ) -> ManagedProcess:
        """``procs(target, **options)`` is ``procs.start(target, **options)``: the factory-fixture spelling."""
        __tracebackhide__ = True  # an error names its cause at the user's line, not here
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
        start_method: StartMethod | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        patches: Mapping[str, object] | None = None,
        expect_exit: int | bool | None = None,
    ) -> ManagedProcess:
        """Start ``target`` (a Process instance or a command line) and wait until it is ready.

        ``ready``: ``None`` (return at once), or a :class:`~zmqtest.readiness.Readiness`:
        :class:`~zmqtest.readiness.OutputMatches` (or a str or compiled regex), searched in
        each line of its stdout and stderr; :class:`~zmqtest.readiness.CheckPasses` (or a
        callable), called until it returns a true value (kept as ``.ready_value``; an
        exception it raises ends the start); :class:`~zmqtest.readiness.PeerConnects` (or a
        mimic socket), ready once it has a completed connection. Any wait fails at
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
        __tracebackhide__ = True  # an error names its cause at the user's line, not here
        if self._closed:
            raise ProcessError("this ProcessManager is closed: it starts nothing more")
        timeout = (
            self.settings.startup_timeout
            if ready_timeout is None
            else parse_timeout(ready_timeout, "the ready_timeout= argument of start()")
        )
        expected = readiness(ready)
        check_options(stop, expect_exit)
        argv, method = check_target(target, start_method, env, cwd, patches, self.settings)
        require_watcher()  # ZMQTEST_WATCHER may have changed since this manager was made
        process = target if isinstance(target, multiprocessing.process.BaseProcess) else None
        pristine, uncopyable = None, ""
        if process is not None:
            try:
                pristine = copy_process(process)  # before the start, which drops its target: for restart()
            except Exception as exc:
                uncopyable = f"{type(exc).__name__}: {exc}"
        launch = Launch(
            self, name or default_name(target, argv), argv, pristine, uncopyable, expected, timeout, stop, method,
            env, cwd, patches, expect_exit,
        )  # fmt: skip
        stdout_path, stderr_path = self._output_files(launch.name)
        launch.stem = stdout_path.name.removesuffix(".stdout")
        return self._launch(launch, process, stdout_path, stderr_path)

    def check_restart(self, handle: ManagedProcess) -> Launch:
        """Return what ``handle`` was started with, if this manager can start it again; else say why not."""
        __tracebackhide__ = True
        launch = handle.launch
        if launch is None or launch.manager is not self or handle not in self.processes:
            raise ProcessError(f"cannot restart {handle.describe()}: this ProcessManager did not start it")
        if self._closed:
            raise ProcessError(f"cannot restart {handle.describe()}: its ProcessManager is closed")
        if launch.uncopyable:
            raise ProcessError(
                f"cannot restart {handle.describe()}: its Process object could not be copied before its first start "
                f"({launch.uncopyable}), and a Process object starts only once"
            )
        return launch

    def restart(self, handle: ManagedProcess) -> None:
        """Start ``handle``'s process again as it was started, once it has stopped; wait until it is ready.

        :func:`zmqtest.control.restart` stops it first; ``handle`` takes the new run's state.
        """
        __tracebackhide__ = True
        launch = self.check_restart(handle)
        require_watcher()
        if handle.stopped_by is None or handle.poll() is None:
            raise ProcessError(f"cannot start {handle.describe()} again before it is stopped: call its restart()")
        process = launch.next_target() if launch.argv is None else None
        self._launch(launch, process, *launch.next_files(), handle=handle)

    def _launch(
        self,
        launch: Launch,
        process: multiprocessing.process.BaseProcess | None,
        stdout_path: Path,
        stderr_path: Path,
        handle: ManagedProcess | None = None,
    ) -> ManagedProcess:
        """Start a run of ``launch`` (``process``: the Process object to start) and wait until it is ready.

        ``handle``: the stopped handle a restart gives the new run to; ``None``: a new one.
        """
        __tracebackhide__ = True  # an error names its cause at the user's line, not here
        expected, name = launch.expected, launch.name
        mark = backstop.new_mark()
        backstop.arm()  # the watchdog runs before the process does: no start is ever uncovered
        with contextlib.ExitStack() as stack:
            try:
                wait = stack.enter_context(expected.expect()) if expected is not None else None  # before the start
                popen: subprocess.Popen[bytes] | None = None
                if process is not None:
                    assert launch.method is not None
                    process = self._start_process(
                        process, name, launch.method, stdout_path, stderr_path, launch.patches, mark
                    )
                    pid = process.pid
                else:
                    assert launch.argv is not None
                    environ = {**self.logs.environ, MARK: mark}
                    popen = start_command(launch.argv, name, stdout_path, stderr_path, launch.env, launch.cwd, environ)
                    pid = popen.pid
                assert pid is not None
            except BaseException:
                stdout_path.unlink(missing_ok=True)  # nothing started: no empty files to puzzle over
                stderr_path.unlink(missing_ok=True)
                raise
            launch.runs += 1
            new = ManagedProcess(
                name=name,
                pid=pid,
                stdout_path=stdout_path,
                stderr_path=stderr_path,
                settings=self.settings,
                kind="process" if popen is None else "command",
                process=process,
                popen=popen,
                argv=launch.argv,
                start_method=launch.method,
                stop=launch.stop,
                mark=mark,
            )
            new.expect_exit = launch.expect_exit
            new.launch = launch
            if handle is None:
                handle = new
                self.processes.append(handle)
                self._watch.enter_context(watching(handle))
            else:
                take_over(handle, new, self._retired)
            self.logs.process_names[handle.pid] = handle.name
            transcript.note(handle.name, f"started: pid {handle.pid}, {handle.how_started}")
            try:
                if wait is not None:
                    wait(handle, launch.timeout)
                handle.note_own_group()  # what it started until it was ready is provably of its group
            except NotReady as exc:
                raise _not_ready(handle, exc, cast(Readiness, expected), launch.timeout)  # noqa: B904 (its cause is set)
            except BaseException as exc:  # the ready= check failed, or a Ctrl-C: the process must not run on
                for line in handle.abandon():
                    add_context(exc, line)
                raise
        if expected is not None:
            transcript.note(handle.name, f"ready: {expected.describe()}")
        return handle

    def _output_files(self, name: str) -> tuple[Path, Path]:
        """``<name>-<n>.stdout``/``.stderr``, created empty; ``n`` is the first number not taken."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "process"
        for number in itertools.count(1):
            paths = create_files(self.output_dir, f"{stem}-{number}")
            if paths is not None:
                return paths
        raise AssertionError("unreachable")

    def _start_process(
        self,
        process: multiprocessing.process.BaseProcess,
        name: str,
        method: str,
        stdout_path: Path,
        stderr_path: Path,
        patches: Mapping[str, object] | None,
        mark: str,
    ) -> multiprocessing.process.BaseProcess:
        """Start ``process`` with ``method``, its child set up to write to our files and apply ``patches``."""
        state = vars(process)
        saved = {key: state[key] for key in ("run", "_Popen") if key in state}
        own_run = saved.get("run")
        state["run"] = ChildSetup(
            process,
            own_run,
            str(stdout_path),
            str(stderr_path),
            dict(patches or {}),
            method,
            environ={**self.logs.environ, MARK: mark, **childcoverage.environ()},
        )
        state["_Popen"] = popen_class(method)
        if method == "forkserver":
            preload_in_forkserver()
        try:
            with backstop.marking(method, mark), sigint_held(state["run"]):
                process.start()
        except Exception as exc:
            problem = pickling_problem(process, name, method, exc)
            if problem is not None:
                raise StartError(problem) from exc
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
        return process

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
        with sigint_deferred() as interrupted:
            self._stop_all(problems, cut)
            with (
                step("closing the watch of the processes", problems, cut),
                contextlib.suppress(ValueError, RuntimeError),
            ):
                self._watch.close()  # ValueError, RuntimeError: closed in another thread or context
            if self._logs is not None:
                with step(f"closing the log collector at {self._logs.endpoint}", problems, cut):
                    self._logs.close()
            with step("reporting the processes", problems, cut):
                unexpected = [*self._retired, *(handle for handle in self.processes if handle.ended_unexpectedly)]
                error = _close_error(unexpected, problems)
            with step("releasing the stopped processes", problems, cut):
                backstop.release_stopped(self.processes)
            if self._own_dir:
                with step(f"removing {self.output_dir}", problems, cut):
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

    def _stop_all(self, problems: list[str], cut: list[BaseException]) -> None:
        """Stop every process at once, one thread each; collect the outcomes in a fixed order (latest first).

        Threads rather than a staged stop (signal all, wait, escalate the rest): each
        stop keeps its own escalation (stop action, a lost SIGINT sent again, grace
        periods) as it is, and one that is cut short or will not end is killed on its own.
        """
        handles = list(reversed(self.processes))
        stops = [
            InThread(handle.stop_and_list_problems, f"stopping {handle.name} (pid {handle.pid})") for handle in handles
        ]
        for stop in stops[1:]:  # the first runs here, in result(): one process costs no thread
            with step(f"starting a thread for {stop.name}", problems, cut):  # a failed start: result() stops it here
                stop.start()
        deadline = time.monotonic() + stop_limit(self.settings.timeout, self.settings.stop_grace)
        for handle, stop in zip(handles, stops, strict=True):
            with step(stop.name, problems, cut):
                try:
                    problems.extend(stop.result(max(0.0, deadline - time.monotonic())))
                except BaseException:  # its stop was cut short or would not end: no grace left, it must not run on
                    with step(f"killing {handle.name} (pid {handle.pid})", problems, cut):
                        handle.kill_now()
                    raise


def _not_ready(handle: ManagedProcess, reason: NotReady, expected: Readiness, timeout: float) -> StartError:
    """Stop ``handle``, which did not become ready; return the error that says why, and how it ended.

    Made once it is stopped, to say how it ended. A failed wait's own error is its cause
    (a connection wait's timeout lists the socket events it saw); a death needs none.
    """
    what = expected.describe()
    ended = handle.ended()
    problems = handle.abandon()
    if ended:
        message = f"{handle.describe()} ended before it was ready (waited for {what})"
    elif reason.timed_out:
        message = (
            f"{handle.name} (pid {handle.pid}) was not ready within {timeout:g} s: waited for {what}; it was "
            f"still running, and was stopped ({handle.stopped_by}: {status_text(handle.poll())})"
        )
    else:
        message = f"{handle.name} (pid {handle.pid}) did not become ready ({what}): {reason}"
    error = StartError(f"{message}\n{handle.details()}")
    error.context.extend(problems)
    error.__cause__ = None if ended else reason.__cause__
    error.__suppress_context__ = True  # the NotReady adds nothing to it
    return error


def _close_error(unexpected: list[ManagedProcess], problems: list[str]) -> ProcessError | None:
    if not unexpected and not problems:
        return None
    lines = []
    if unexpected:
        count = "1 process" if len(unexpected) == 1 else f"{len(unexpected)} processes"
        lines.append(f"{count} ended unexpectedly (start(..., expect_exit=...) says when an end is expected):")
        for handle in unexpected:
            lines.append(handle.unexpected_end())
            lines.append(handle.details())
    if problems:
        lines.append("stopping the processes under test went wrong:" if unexpected else problems.pop(0))
        lines.extend(problems)
    message = "\n".join(lines)
    return ProcessExited(message) if unexpected else ProcessError(message)
