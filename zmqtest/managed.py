"""One process under test: its state, its death seen at once, its stop over its whole process group.

:class:`ManagedProcess` is what :class:`~zmqtest.processes.ProcessManager` hands back
for each process it starts (see that module for how they start and become ready).

- **Death is seen through a pidfd** (no pidfds: :mod:`zmqtest.watchers`), for both kinds. A Process's
  own ``sentinel`` is the read end of a pipe whose write end every ``os.fork()``-ed
  grandchild inherits: measured, under fork and spawn it stays unreadable after the
  child has died for as long as a grandchild lives. The pidfd is readable the moment
  the child itself ends.
- **Stop escalates over the whole group**: SIGCONT (a paused process could act on
  nothing), the stop action or SIGINT (sent again when it was lost: one that lands
  just before pyzmq's ``recv`` sleeps is, 35 % of the time under load; never into a
  shutdown under way), then SIGTERM, then SIGKILL, ``stop_grace`` apart; then SIGKILL
  for whatever is left of the group (grandchildren holding ports), waiting until it
  is empty. A zombie counts as gone once all its threads have ended: a container's
  pid 1 may never reap it.
- **A clean stop** ends with exit code 0, or by a stop signal that was sent (see
  :mod:`zmqtest.stopstages`); any other end is reported, unless ``expect_exit`` allows it.
- **A group is signalled by number only while its leader's pid is its own** (it runs,
  or is a zombie not yet reaped): see :class:`zmqtest.groups.OwnGroup`.
  :attr:`ManagedProcess.ends_waits` says whether its end should still cut other waits
  short: not once the test has stopped it, nor when it may end (``expect_exit``).
- **What left its group goes too**: its descendants noted when its stop begins, and what
  carries its mark; :mod:`zmqtest.backstop` holds that sweep and the other backstops.

Linux with pidfds (5.3+), or any POSIX system with ``os.waitid`` (see zmqtest.watchers).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from zmqtest import backstop, control, transcript
from zmqtest.errors import ProcessError, ProcessExited
from zmqtest.groups import OwnGroup, descendants, main_thread, proc_stat, status_text
from zmqtest.launch import Launch, ProcessKind
from zmqtest.logcollector import LogCollector
from zmqtest.output import OutputLines, labelled_tail
from zmqtest.settings import Settings, StartMethod, parse_timeout
from zmqtest.stopstages import BY_ITSELF, CODE_WAIT, GROUP_WAIT, KILL_WAIT, StopStages

__all__ = ["ManagedProcess"]

SIGINT_REPEAT = 0.1
"""How often a stopping process's main thread is checked for a lost SIGINT (see ``_interrupt``)."""


class ManagedProcess:
    """One started process: its state, its output, and how to stop it.

    It is a :class:`zmqtest.waiting.Watched`: while its manager is open, any zmqtest
    wait also watches :attr:`sentinel` and ends with :meth:`exit_error` if it dies.
    """

    name: str
    pid: int
    kind: ProcessKind
    argv: list[str] | None
    """The command line (commands only)."""
    start_method: StartMethod | None
    """fork, forkserver or spawn (Process targets only)."""
    process: multiprocessing.process.BaseProcess | None
    popen: subprocess.Popen[bytes] | None
    stdout_path: Path
    stderr_path: Path
    match: re.Match[str] | None
    """The output line that made it ready, for a ``ready`` pattern."""
    endpoint: str | None
    """From the ``ready`` pattern: its group ``endpoint``, else its group 1, else ``None`` (an ``Endpoint`` if one)."""
    ready_value: object
    """What a ``ready`` callable returned (its first truthy value)."""
    stopped_by: str | None
    """``"exited by itself"``, ``"stop action"``, ``"SIGINT"``, ``"SIGTERM"``, ``"SIGKILL"``; ``None`` until stopped."""
    stop_seconds: float | None
    expect_exit: int | bool | None
    launch: Launch | None = None
    """What it was started with, for :meth:`restart` (set by its manager)."""

    def __init__(
        self,
        *,
        name: str,
        pid: int,
        kind: ProcessKind,
        stdout_path: Path,
        stderr_path: Path,
        settings: Settings,
        process: multiprocessing.process.BaseProcess | None = None,
        popen: subprocess.Popen[bytes] | None = None,
        argv: list[str] | None = None,
        start_method: StartMethod | None = None,
        stop: Callable[[], object] | None = None,
        expect_exit: int | bool | None = None,
        mark: str | None = None,
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
        self.mark = mark
        """Its value of ``ZMQTEST_OWNER``: what carries it is its (see :mod:`zmqtest.backstop`)."""
        self._settings = settings
        self._stop_action = stop
        self._returncode: int | None = None
        self._stopping = False
        self._stopped = False
        self._reported = False  # its end was already raised (StartError): not an unexpected exit again at close
        self._problems: list[str] = []
        self._survivors: list[int] = []
        self._released = False
        self._stages = StopStages()
        self._group = OwnGroup(pid, process.sentinel if process is not None and start_method == "forkserver" else None)
        self._output: OutputLines | None = None
        """The group it leads; its watch (a pidfd, or see zmqtest.watchers) is how its death is seen."""
        self._escaped: list[tuple[int, str]] = []
        """Its descendants outside its group when its stop began: killed with the group."""
        backstop.track(self)
        backstop.register(pid)

    # -------------------------------------------------------------------------------------- state

    @property
    def sentinel(self) -> int:
        """Return a file descriptor that is readable once the process has ended (see zmqtest.watchers)."""
        if self._group.fd is not None:
            return self._group.fd
        if self.process is not None and not self._released:
            return self.process.sentinel  # only for a forkserver child gone before we could open its pidfd
        raise ValueError(f"{self.describe()}: its sentinel was released when its manager closed")

    @property
    def ends_waits(self) -> bool:
        """Tell whether its end should cut a zmqtest wait short: not once the test stopped it, nor if it may end."""
        return (
            self.stopped_by is None and not self._stopping and (self.expect_exit is None or self.expect_exit is False)
        )

    @property
    def returncode(self) -> int | None:
        """Return ``None`` while it runs, else its exit code, or ``-N`` if signal N killed it (for both kinds)."""
        return self.poll()

    def ended(self, timeout: float = 0.0) -> bool:
        """Tell whether the process has ended, waiting at most ``timeout`` seconds for it to (its end ends the wait)."""
        if self._returncode is not None:
            return True
        try:
            fd = self.sentinel
        except ValueError:
            return True
        if multiprocessing.connection.wait([fd], timeout):
            return True
        self._group.note()
        return False

    def note_own_group(self) -> None:
        """Note that its group is still its own, if it is: what the group holds now is killed with it, even later.

        Its manager calls this once it is ready: what it started until then is provably
        of its group, and is killed with it even once its pid was reused.
        """
        self._group.note()

    def is_paused(self) -> bool:
        """Tell whether it runs but is stopped by a signal (SIGSTOP, SIGTSTP): it acts on nothing until SIGCONT."""
        fields = proc_stat(self.pid)
        return fields is not None and fields[:1] == [b"T"] and not self.ended()  # still running: that stat was its own

    def poll(self) -> int | None:
        """Return the exit status if the process has ended (reaping it), else ``None``; never block for long."""
        if self._returncode is None and self.ended():
            self._group.note()  # a zombie not yet reaped: the last moment its group's number is surely its own
            self._returncode = self._collect()
            if self._returncode is not None:
                self._group.note_reaped()
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

    def _reap(self) -> None:
        """Reap it once it has ended, waiting a moment for a forkserver's report of its status."""
        if self.poll() is None and self.ended(CODE_WAIT):
            self.poll()

    def is_alive(self) -> bool:
        """Tell whether it still runs (as :meth:`multiprocessing.Process.is_alive` does)."""
        return self.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait at most ``timeout`` seconds for the process to end; return its exit status, or ``None`` if it runs."""
        seconds = parse_timeout(timeout, f"wait() of {self.name}", allow_zero=True)
        if self.ended(seconds):
            return self.poll()
        return None

    # ------------------------------------------------------------------------------------- output

    def tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of its stdout and of its stderr, labelled."""
        hint = ""
        if self.kind == "process" and self.start_method != "fork" and (self.poll() or 0) > 0:
            hint = f"; errors before run() (e.g. unpickling under {self.start_method}) go to the test's own stderr"
        return labelled_tail(self.name, {"stdout": self.stdout_path, "stderr": self.stderr_path}, lines, hint)

    @property
    def output(self) -> OutputLines:
        """Return the reading position in its stdout and stderr that readiness and :meth:`wait_for_output` share."""
        self._output = self._output or OutputLines(self.stdout_path, self.stderr_path)
        return self._output

    @property
    def logs(self) -> LogCollector:
        """Return the collector its log records go to: its manager's (a test waits on it with ``self.logs = ...``)."""
        if self.launch is None:
            raise ProcessError(f"{self.name} was not started by a ProcessManager: it has no log collector")
        return self.launch.manager.logs

    # Mid-test control (pause, resume, restart, wait for output): see zmqtest.control.
    pause = control.pause
    resume = control.resume
    restart = control.restart
    wait_for_output = control.wait_for_output

    def describe(self) -> str:
        """Name it and its state: ``PongProc (pid 4242, running)``, ``(pid 4242, exited with code 3)``, ...

        ``stopped (paused)`` while it runs but is stopped by a signal (SIGSTOP).
        """
        code = self.poll()
        state = "stopped (paused)" if code is None and self.is_paused() else status_text(code)
        return f"{self.name} (pid {self.pid}, {state})"

    def report(self, lines: int = 20) -> str:
        """Return what a failing test's report shows: the state, how it was stopped, the output tail."""
        text = self.describe()
        if self.stopped_by == BY_ITSELF:
            text += f"; {BY_ITSELF}"
        elif self.stopped_by is not None:
            took = f" after {self.stop_seconds:.3g} s" if self.stop_seconds is not None else ""
            text += f"; stopped by {self.stopped_by}{took}"
        return f"{text}\n{self.tail(lines)}"

    @property
    def how_started(self) -> str:
        """Say how it was started, in a few words (the start method, or the command line): for the transcript."""
        return f"{type(self.process).__name__} with {self.start_method}" if self.argv is None else shlex.join(self.argv)

    def _command_line(self) -> str:
        """Say what runs: its command line, or its Process class and start method."""
        if self.argv is not None:
            return f"command: {shlex.join(self.argv)}"
        return f"process: {type(self.process).__name__} started with {self.start_method}"

    def exit_error(self, waiting_for: str) -> ProcessExited:
        """Return the error for a wait cut short by its end: ``PongProc (pid 4242) exited with code 3 while ...``."""
        code = self.poll()
        if code is not None:
            state = status_text(code)
        else:
            state = "ended (exit status unknown)" if self.ended() else "is still running"
            if state == "is still running" and self.is_paused():
                state = "is stopped (paused)"
        self._reported = True  # the wait raises it: close() must not report the same end again
        return ProcessExited(f"{self.name} (pid {self.pid}) {state} while {waiting_for}\n{self.details()}")

    def details(self) -> str:
        """Return its command line and the tail of its output: what an error about it quotes."""
        return f"{self._command_line()}\n{self.tail()}"

    # --------------------------------------------------------------------------------------- stop

    def stop(self) -> int:
        """Stop the process (see the module docstring), reap it, clear its group; return its exit status.

        Idempotent. Raises :class:`ProcessError` (after the process is gone) if the
        stop action failed or the process would not die. A stop that is not clean (see
        the module docstring) is reported when its manager closes, unless ``expect_exit``
        allows its status.
        """
        problems = self.stop_and_list_problems()
        if problems:
            raise ProcessError("\n".join(problems))
        code = self.poll()
        if code is None:
            raise ProcessError(f"{self.describe()}: ended, but its exit status could not be read")
        return code

    def abandon(self) -> list[str]:
        """Stop it because its start failed; return what went wrong stopping it.

        The start's error reports it: its end is not reported again when its manager closes.
        """
        self._reported = True
        return self.stop_and_list_problems()

    def stop_and_list_problems(self) -> list[str]:
        """Stop it as :meth:`stop` does, but return what went wrong instead of raising it.

        Its manager stops all its processes at once and reports their problems together.
        Idempotent; never raises for the process's behaviour.
        """
        if self._stopped or self._stopping:
            return []
        self._stopping = True
        began = time.monotonic()
        try:
            if self.ended():
                self.stopped_by = BY_ITSELF
            else:
                self._escaped = descendants(self.pid)
                if self._escalate():  # by the last stage that reached it; by itself if it ended before any did
                    self.stopped_by = self._stages.last
            self._survivors = self._group.clear(GROUP_WAIT, reap=self._reap if self.ended() else None)
            self._reap()
            if self._survivors:
                self._problems.append(
                    f"{self.name} (pid {self.pid}): processes {self._survivors} of its group survived SIGKILL "
                    f"for {GROUP_WAIT:g} s"
                )
            elif self.ended():
                self._sweep()
                backstop.unregister(self.pid)
                backstop.untrack(self)
        finally:
            self.stop_seconds = time.monotonic() - began
            self._stopping = False
            self._stopped = True
        return list(self._problems)

    def _escalate(self) -> bool:
        """Stop it stage by stage (the module docstring says how); return whether it ended."""
        grace = self._settings.stop_grace
        if self.is_paused():
            transcript.note(self.name, "stopping: SIGCONT (it was paused)")
        self._signal(signal.SIGCONT)  # to the whole group, paused or not: harmless to a running process
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
                self._stages.note(graceful)
                if self.ended(grace):
                    return True
        if graceful == "SIGINT":
            transcript.note(self.name, f"stopping: SIGINT (for {grace:g} s)")
            if self._interrupt(grace):
                return True
        for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)):
            transcript.note(self.name, f"stopping: {signum.name}")
            self._signal(signum)
            if self.ended(seconds):
                return True
        self._problems.append(
            f"{self.describe()} was still running {KILL_WAIT:g} s after SIGKILL (stuck in the kernel?)\n"
            f"{self._command_line()}"
        )
        return False

    def _interrupt(self, grace: float) -> bool:
        """SIGINT the group for ``grace`` seconds; return whether the process ended.

        A SIGINT that lands while the main thread runs, just before it blocks in a C call
        (a zmq recv), is lost: Python only notes it. So SIGINT is sent again when the
        thread has slept through a whole SIGINT_REPEAT without running once; not every
        SIGINT_REPEAT regardless, which would break into a shutdown that is under way
        (the process would end killed by SIGINT instead of with its own status).
        """
        deadline = time.monotonic() + grace
        while True:
            self._signal(signal.SIGINT)
            last = main_thread(self.pid)
            while True:
                remaining = deadline - time.monotonic()
                if self.ended(max(0.0, min(SIGINT_REPEAT, remaining))):
                    return True
                if remaining <= SIGINT_REPEAT:
                    return False
                now = main_thread(self.pid)
                if now is not None and now.startswith(b"S") and now == last:
                    break  # asleep throughout, never woke: the SIGINT was lost
                last = now

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to its group while it runs (not a stop stage); return whether it was sent."""
        return not self.ended() and self._group.send(signum)

    def _signal(self, signum: int) -> bool:
        """Send ``signum`` to the process's group; return whether it was sent.

        Only while it runs: its pid, and so its group's number, is then its own. A stop
        signal that was sent counts among the stages that reached it (SIGCONT does not).
        """
        if self.ended():
            return False  # its pid may be reaped and reused by now: never signal it
        sent = self._group.send(signum)
        if sent and signum != signal.SIGCONT:
            self._stages.note(signal.Signals(signum).name)
        return sent

    def _sweep(self) -> None:
        """Kill what left its group: descendants seen as its stop began; what carries its mark, if it may have any.

        (A Process child adopts its orphans: stopped running, with no descendants, it has none to leave.)
        """
        if self.mark is not None:
            look = self.kind == "command" or self.stopped_by == BY_ITSELF or bool(self._escaped)
            escaped = backstop.sweep(self.mark, self._group.started, self._escaped, marked=look)
            if escaped:
                transcript.note(self.name, f"killed {len(escaped)} process(es) that left its group: {escaped}")

    def kill_now(self) -> None:
        """SIGKILL the group and what left it, no grace, bounded waits (at interpreter exit, or a stop cut short)."""
        if not self._escaped and not self.ended():
            self._escaped = descendants(self.pid)
        self._signal(signal.SIGKILL)
        self.ended(1.0)
        self._group.clear(GROUP_WAIT, reap=self.poll if self.ended() else None)
        if self.ended():
            self.poll()
        self._sweep()
        backstop.unregister(self.pid)

    @property
    def ended_unexpectedly(self) -> bool:
        """Tell whether it ended as the test did not say it may: by itself with a code, or not cleanly when stopped.

        Not if its end was raised already (a failed start): its manager's close reports only the rest.
        """
        code, stopped_by = self._returncode, self.stopped_by
        if self._reported or code is None or stopped_by is None:
            return False
        return not self._stages.allow(code, stopped_by, self.expect_exit)

    def unexpected_end(self) -> str:
        """Say how it ended unexpectedly, for its manager's close: ``PongProc (pid 4242, exited with code 1) ...``."""
        if self.stopped_by == BY_ITSELF:
            return f"{self.describe()} ended before the test stopped it"
        return (
            f"{self.describe()} when stopped by {self.stopped_by} (a clean stop ends with {self._stages.clean_ends()})"
        )

    def release(self) -> None:
        """Free what the ended process held here: its pidfd, output files and Process pipes (pytest keeps the item)."""
        self._released = True
        self._group.close()
        if self._output is not None:
            self._output.close()
            self._output = None
        if self.process is not None:
            with contextlib.suppress(ValueError):  # still running (it would not die): kept for the atexit handler
                self.process.close()

    def __repr__(self) -> str:
        """Name it and its state, as :meth:`describe` does."""
        return f"<ManagedProcess {self.describe()}>"
