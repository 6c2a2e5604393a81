"""Control of a process under test mid-test: pause and resume it, restart it, wait for its output.

What a test does to a running process besides stopping it: make it stop answering for
a while (a peer whose heartbeats expire), take it away and bring it back (a peer that
reconnects), and wait for what it prints. These are the methods of the same names of
:class:`zmqtest.managed.ManagedProcess`; each step shows in the transcript.
"""

from __future__ import annotations

import re
import signal
from typing import TYPE_CHECKING

from zmqtest import groups, transcript
from zmqtest.errors import ProcessError, WaitTimeout
from zmqtest.groups import status_text
from zmqtest.output import compile_pattern
from zmqtest.waiting import wait_until

if TYPE_CHECKING:
    from zmqtest.managed import ManagedProcess

__all__ = ["SWITCH_WAIT", "pause", "restart", "resume", "wait_for_output"]

SWITCH_WAIT = 5.0
"""Seconds a process may take to be stopped by SIGSTOP, or to run again after SIGCONT (only the kernel is slow)."""


def wait_for_output(
    process: ManagedProcess, pattern: str | re.Pattern[str], timeout: float | None = None
) -> re.Match[str]:
    """Wait for a line of the process's stdout or stderr that matches ``pattern``; return the match.

    Searches the lines the test has not waited for yet: after the ``ready=`` line, or
    the previous match, so that output written just before the call is not missed and
    none is matched twice. Raced against the watched processes' deaths, as every
    zmqtest wait; ``timeout`` (seconds) defaults to the harness timeout.
    """
    __tracebackhide__ = True
    compiled = compile_pattern(pattern, "wait_for_output(): ")
    found: list[re.Match[str]] = []

    def matched() -> bool:
        ended = process.ended()
        for line in process.output.lines(final=ended):
            if (match := compiled.search(line)) is not None:
                found.append(match)
                transcript.note(process.name, f"output: {line[:200]}")
                return True
        if ended:
            raise process.exit_error(f"waiting for a line of its output matching {compiled.pattern!r}")
        return False

    what = f"a line of {process.name}'s output matching {compiled.pattern!r}"
    try:
        wait_until(matched, timeout=timeout, what=what)
    except WaitTimeout as exc:
        raise WaitTimeout(
            f"wait_for_output: no line of {process.describe()}'s stdout or stderr matched {compiled.pattern!r} "
            f"within {exc.timeout:g} s\n{process.tail()}",
            what=what,
            timeout=exc.timeout,
        ) from None
    return found[0]


def restart(process: ManagedProcess) -> None:
    """Stop the process, start it again as it was started, and wait until it is ready again.

    The stop is the normal one (stop action or SIGINT, escalating; its whole group reaped,
    so a port it bound can be bound again at once) and counts as a clean stop. The new
    run has the same target and options, hence the same endpoints (a wildcard port is
    picked anew), and output files of its own (``<name>-<n>.restart<k>.stdout``). The
    handle is updated in place (``pid``, ``endpoint``, ``stdout_path`` ... are the new
    run's), still watched, and stopped at teardown. Mimics reconnect by themselves, and
    what they queued meanwhile reaches the new run.

    A process that had ended by itself is started again too; an end its status does not
    allow (``expect_exit``) is still reported when its manager closes, unless a wait
    raised it already.
    """
    __tracebackhide__ = True
    if process.launch is None:
        raise ProcessError(f"cannot restart {process.describe()}: it was not started by a ProcessManager")
    manager = process.launch.manager
    manager.check_restart(process)  # before it is stopped: a restart that cannot be is refused with it running
    ended = process.stopped_by is None and process.ended()
    transcript.note(
        process.name, f"restarting (it had ended: {status_text(process.poll())})" if ended else "restarting"
    )
    problems = process.stop_and_list_problems()
    if problems or process.poll() is None:
        raise ProcessError(
            "\n".join([f"cannot restart {process.describe()}: stopping it went wrong", *problems])
            + f"\n{process.details()}"
        )
    manager.restart(process)
    transcript.note(process.name, f"restarted: pid {process.pid}")


def pause(process: ManagedProcess) -> None:
    """Stop the process and its group with SIGSTOP until :func:`resume`: a peer that stops answering.

    Returns once it is stopped, so the test's next step meets a paused process
    (heartbeats expire, requests queue). Teardown resumes it before stopping it.
    """
    __tracebackhide__ = True
    _switch(process, signal.SIGSTOP, paused=True)
    transcript.note(process.name, "paused: SIGSTOP to its group")


def resume(process: ManagedProcess) -> None:
    """Let the process and its group go on after :func:`pause` (SIGCONT); return once it runs again."""
    __tracebackhide__ = True
    _switch(process, signal.SIGCONT, paused=False)
    transcript.note(process.name, "resumed: SIGCONT to its group")


def _switch(process: ManagedProcess, signum: signal.Signals, *, paused: bool) -> None:
    """Send ``signum`` to the group and wait (bounded) until its leader is, or is no longer, stopped.

    Where there is no /proc (macOS) a process's state cannot be read: it returns once the
    signal is sent, and the transcript says the switch was not seen.
    """
    __tracebackhide__ = True
    verb = "pause" if paused else "resume"
    if not process.signal_group(signum):
        raise ProcessError(f"cannot {verb} {process.describe()}: it has ended\n{process.details()}")
    if not groups.HAS_PROC:
        transcript.note(process.name, f"{signum.name} sent; not seen to take effect (no /proc here)")
        return

    def switched() -> bool:
        if process.ended():
            raise process.exit_error(f"waiting for it to {verb}")
        return process.is_paused() == paused

    try:
        wait_until(switched, timeout=SWITCH_WAIT, interval=0.001, what=f"{process.name} to {verb}")
    except WaitTimeout:
        raise ProcessError(f"{process.describe()} did not {verb} within {SWITCH_WAIT:g} s of {signum.name}") from None
