"""Teardown that cannot be cut short: every step runs, slow steps run side by side, Ctrl-C waits its turn.

What :meth:`ProcessManager.close <zmqtest.processes.ProcessManager.close>` is made of:

- :func:`step`: one step of a teardown, which never keeps the next ones from running. A
  bug of ours (an ``Exception``) becomes a reported problem; an interruption (a
  ``BaseException``: pytest-timeout's failure, a Ctrl-C) is kept, to be raised once
  every step has run.
- :class:`InThread`: one slow step (a stop, which may wait ``stop_grace`` twice) run in a
  thread of its own, so that several overlap: six processes that ignore SIGINT stop in
  the time of one. Its result is collected in the caller's thread, in the caller's
  order, so that reports do not depend on which finished first.
- :func:`sigint_deferred`: a Ctrl-C during the teardown is held back until it is done (a
  second Ctrl-C must not leave processes running).
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from zmqtest.errors import DeadlineExceeded

__all__ = ["InThread", "sigint_deferred", "step"]

T = TypeVar("T")


@contextlib.contextmanager
def step(what: str, problems: list[str], cut: list[BaseException]) -> Iterator[None]:
    """Run one step of a teardown: it never keeps the next ones from running.

    An ``Exception`` (a bug of ours) becomes one of ``problems``; a ``BaseException`` (pytest-timeout's
    failure, a Ctrl-C) or zmqtest's deadline goes to ``cut``, for the teardown to raise once it has done
    everything else.
    """
    __tracebackhide__ = True
    try:
        yield
    except DeadlineExceeded as exc:
        cut.append(exc)
    except Exception as exc:
        problems.append(f"{what} failed: {type(exc).__name__}: {exc}")
    except BaseException as exc:
        cut.append(exc)


class InThread(Generic[T]):
    """Run ``function()`` in a thread of its own, in a copy of the caller's context (its transcript, its settings).

    :meth:`result` collects what it returned or raised. If the thread could not be
    started (no threads left, or the start was interrupted before it ran), ``result()``
    runs ``function`` itself: it runs exactly once either way.
    """

    def __init__(self, function: Callable[[], T], name: str) -> None:
        self.name = name
        self._function = function
        self._claim = threading.Lock()
        self._claimed = False
        self._started = False
        self._done = threading.Event()
        self._outcome: tuple[T] | BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (a failure to start is raised, and ``result()`` then runs the function itself)."""
        self._thread.start()
        self._started = True

    def _run(self) -> None:
        with self._claim:
            if self._claimed:
                return
            self._claimed = True
        try:
            self._outcome = (self._function(),)
        except BaseException as exc:  # handed to the caller by result()
            self._outcome = exc
        finally:
            self._done.set()

    def result(self, timeout: float) -> T:
        """Return what the function returned, or raise what it raised, waiting at most ``timeout`` seconds.

        Raises :class:`TimeoutError` if it is still running then (it goes on in its thread).
        """
        if not self._started:  # its start failed or was cut short: run it here, unless its thread got to it first
            self._run()
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} did not finish within {timeout:g} s")
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome[0]


@contextlib.contextmanager
def sigint_deferred() -> Iterator[list[int]]:
    """Hold back Ctrl-C inside the ``with`` block (a second Ctrl-C must not leave orphans); the list says if it came."""
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
