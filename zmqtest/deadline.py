"""A deadline for a whole test (setup, call, teardown) that still lets its teardown stop every process.

The setting ``deadline`` (off by default) arms one :class:`Deadline` per test. Why it
works the way it does:

- **SIGALRM, on the main thread.** ``signal.setitimer(ITIMER_REAL)`` sends SIGALRM when
  the budget runs out, and its handler raises :class:`~zmqtest.errors.DeadlineExceeded`
  in the main thread, wherever it is blocked: a zmqtest wait (``zmq_poll``), a raw
  pyzmq ``recv()``, a ``time.sleep`` (each returns EINTR, and Python runs the handler).
  The traceback shows where the test was. Python runs signal handlers on the main
  thread only, and pytest (and an xdist worker) runs tests there; elsewhere, or with
  SIGALRM taken by someone else, the deadline is not armed, and :meth:`arm` says why.
- **An error, not an interruption.** :class:`~zmqtest.errors.DeadlineExceeded` is an
  ``Exception`` (a :class:`~zmqtest.errors.ZmqTestError`): pytest runs every other
  finalizer of a test after an ``Exception`` in one of them, not after a bare
  ``BaseException``. Code that swallows it does not pass the test: the phase it fired in
  fails all the same (the plugin checks :attr:`fired`).
- **Teardown always runs, and is bounded too.** Once it has fired, the rest of the
  test gets a grace (:func:`teardown_grace`: the longest zmqtest's own teardown takes,
  stopping the processes and closing the sockets), and it fires again each time that
  runs out. Fired during a teardown, it cuts only the step that hangs:
  :meth:`ProcessManager.close <zmqtest.processes.ProcessManager.close>` kills the process
  it was waiting for at once and goes on stopping the others, so none outlives the test.
- **A forked child is not the test.** A process under test started with the fork start
  method inherits the handler (never the timer): there it hands SIGALRM back to what it
  was before, so a program that uses ``alarm()`` behaves as it would outside the test.
- **Between phases it only counts.** Fired while pytest itself runs (between setup and
  call, say), it raises nothing there: :meth:`enter` raises it as the next setup or
  call begins, and a teardown still runs in full.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zmqtest.settings import Settings

__all__ = ["Deadline", "disarm_current", "teardown_grace"]

TEARDOWN_MARGIN = 10.0
"""Seconds a teardown gets beyond its processes' stops: the sockets' close and the context's end (5 s at most)."""


def teardown_grace(settings: Settings) -> float:
    """Seconds the rest of a test gets once its deadline has fired: enough for zmqtest's own teardown to end.

    A process's stop takes at most a stop action (bounded by the timeout) and two stop
    graces before its SIGKILL; the processes stop side by side.
    """
    return settings.timeout + 2 * settings.stop_grace + TEARDOWN_MARGIN


def disarm_current() -> None:
    """Disarm the deadline armed last, if any (a debugger session is starting: it must not be cut short)."""
    if _armed:
        _armed[0].disarm()


class Deadline:
    """``seconds`` for the whole of ``test``; :meth:`arm` starts it, :meth:`disarm` ends it.

    ``states()`` lists the processes' states (``describe()``), taken the moment it fires;
    ``note(text)`` records the firing in the transcript. Both are the caller's; their
    failures never keep the deadline from firing.
    """

    def __init__(
        self,
        seconds: float,
        test: str,
        *,
        grace: float,
        states: Callable[[], list[str]] = list,
        note: Callable[[str], object] = lambda text: None,
    ) -> None:
        self.seconds = seconds
        self.test = test
        self.grace = grace
        self.fired: dict[str, str] = {}
        """The phases it fired in, each with its message (states and all)."""
        self._states = states
        self._note = note
        self._phase = "setup"  # where a firing is counted: the phase running, or else the next one
        self._inside = False  # whether a phase runs (it raises then), or pytest itself does (it only counts)
        self._pending: str | None = None  # fired between phases: raised as the next setup or call begins
        self._previous: Any = None
        self._pid = 0
        self._armed = False

    # ------------------------------------------------------------------------------ arming

    def arm(self) -> str | None:
        """Start counting; return ``None``, or why it cannot be armed here (then it never fires)."""
        if not hasattr(signal, "setitimer"):
            return "this platform has no SIGALRM"
        if threading.current_thread() is not threading.main_thread():
            return "tests run outside the main thread, and only the main thread gets signals"
        handler = signal.getsignal(signal.SIGALRM)
        if handler not in (signal.SIG_DFL, signal.SIG_IGN, None) or signal.getitimer(signal.ITIMER_REAL)[0]:
            return f"SIGALRM is in use already (its handler: {handler!r})"
        self._pid = os.getpid()
        self._previous = signal.signal(signal.SIGALRM, self._fire)
        self._armed = True
        _armed[:] = [self]
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return None

    def disarm(self) -> None:
        """Stop counting and give SIGALRM back (idempotent)."""
        if self._armed:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            if _armed and _armed[0] is self:
                _armed.clear()

    # ------------------------------------------------------------------------------ phases

    def enter(self, phase: str) -> None:
        """A phase begins; if the deadline fired just before it, raise it now (but never to skip a teardown)."""
        self._phase, self._inside = phase, True
        pending, self._pending = self._pending, None
        if pending is not None:
            self.fired.setdefault(phase, pending)
            if phase != "teardown":
                raise self._error(pending)

    def leave(self) -> None:
        """The phase has ended: pytest runs until the next one (a firing then only counts)."""
        self._inside = False
        if self._phase == "setup":
            self._phase = "call"
        elif self._phase == "call":
            self._phase = "teardown"

    # ------------------------------------------------------------------------------ firing

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        if os.getpid() != self._pid:  # a child forked by the test inherited this handler, not the deadline
            self._hand_back(signum, frame)
            return
        if not self._armed:
            return
        again = bool(self.fired) or self._pending is not None
        signal.setitimer(signal.ITIMER_REAL, self.grace)  # the rest of the test: its teardown above all
        phase = self._phase
        message = f"zmqtest deadline of {self.seconds:g} s exceeded during {phase} of {self.test}"
        if again:
            message += f" (it had fired already, and the {self.grace:g} s grace it gives the rest of the test ran out)"
        try:
            states = self._states()
        except Exception as problem:  # a report without the states beats no deadline
            states = [f"(the processes' states could not be read: {problem!r})"]
        if states:
            message += "\nprocesses under test when it fired:\n" + "\n".join(f"  {state}" for state in states)
        with contextlib.suppress(Exception):  # the transcript only loses a line; the deadline still fires
            self._note(message.partition("\n")[0])
        if not self._inside:  # pytest's own code runs: count it against the next phase, raise nothing here
            where = "".join(traceback.format_stack(frame, limit=8)) if frame is not None else ""
            self._pending = f"{message}\nit fired between phases of the test, at:\n{where}".rstrip()
            if phase == "teardown":
                self.fired.setdefault(phase, self._pending)
                self._pending = None
            return
        self.fired.setdefault(phase, message)
        raise self._error(message)

    def _hand_back(self, signum: int, frame: FrameType | None) -> None:
        """In a forked child: SIGALRM is the child's own again, and this one gets what it would have got."""
        previous = self._previous
        signal.signal(signal.SIGALRM, previous)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # its default action (the end of the process), once this handler returns
            os.kill(os.getpid(), signal.SIGALRM)

    @staticmethod
    def _error(message: str) -> BaseException:
        from zmqtest.errors import DeadlineExceeded  # here: it imports pyzmq, which a deadline alone does not need

        return DeadlineExceeded(message)


_armed: list[Deadline] = []
"""The deadline armed now (one at most: there is one SIGALRM)."""
