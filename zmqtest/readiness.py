"""When a process under test is ready: one named type per kind of readiness, each with its own wait.

``ProcessManager.start(target, ready=...)`` waits for one of these before it returns:

- :class:`OutputMatches`: a line of the process's stdout or stderr matches a regex;
- :class:`CheckPasses`: a callable returns a true value;
- :class:`PeerConnects`: a mimic socket completes a connection (the ZMTP handshake) with it.

``ready=`` also takes what they are made from (a regex, a callable, a socket): :func:`readiness`
turns it into its type, with a clear error for anything else. Each type says what it waits
for (:meth:`Readiness.describe`, in errors and in the transcript). Its wait is raced against
the process's end, without sleeping: output and checks are looked at again after a pause on
the process's sentinel (1 ms at first, doubling up to 10 ms), which its death ends at once; a
connection is waited for in one poll with the watched processes' sentinels. A sentinel is a
pidfd, or the portable watcher's descriptor (see :mod:`zmqtest.watchers`).
"""

from __future__ import annotations

import abc
import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Union

from zmqtest.connections import ConnectionWaiter
from zmqtest.endpoints import as_endpoint
from zmqtest.errors import ZmqTestError, add_context
from zmqtest.output import OutputLines, compile_pattern

if TYPE_CHECKING:
    import zmq

    from zmqtest.managed import ManagedProcess

__all__ = ["CheckPasses", "NotReady", "OutputMatches", "PeerConnects", "Readiness", "Ready", "Wait", "readiness"]

POLL = 0.01
"""Longest pause between two looks at output or a check: the process's death wakes a pause at once anyway."""
FIRST_POLL = 0.001
"""First pause between two looks, doubling up to POLL: a fork child is often ready within milliseconds."""

Wait = Callable[["ManagedProcess", float], None]
"""A started wait for readiness: ``wait(process, timeout)`` returns once it is ready, else raises NotReady."""


class NotReady(Exception):
    """The wait ended without readiness: the process ended, the time ran out (``timed_out``), or the wait failed.

    A failed wait's own error is its ``__cause__``. The process is still to be stopped: the caller does it.
    """

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class Readiness(abc.ABC):
    """A kind of readiness: what ``start(ready=...)`` waits for before it returns the process."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Say what it waits for, e.g. ``a line matching 'ready' in its stdout or stderr``."""

    @abc.abstractmethod
    def expect(self) -> contextlib.AbstractContextManager[Wait]:
        """Start expecting readiness, before the process starts (a connection made earlier is not seen).

        The ``with`` block gives the :data:`Wait`; leaving it stops what it set up.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class OutputMatches(Readiness):
    """Ready once a line of its stdout or stderr matches ``pattern`` (a str regex, searched in each line).

    The match is kept as the process's ``match``; its group ``endpoint`` (else its group 1)
    as its ``endpoint`` (an :class:`~zmqtest.endpoints.Endpoint` if the text is one).
    """

    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        self.pattern = compile_pattern(pattern, "OutputMatches: ")

    def describe(self) -> str:
        return f"a line matching {self.pattern.pattern!r} in its stdout or stderr"

    @contextlib.contextmanager
    def expect(self) -> Iterator[Wait]:
        yield self._wait

    def _wait(self, process: ManagedProcess, timeout: float) -> None:
        output = process.output  # shared with wait_for_output(), which goes on after the ready line
        _poll(process, timeout, lambda final: self._search(process, output, final))

    def _search(self, process: ManagedProcess, output: OutputLines, final: bool) -> bool:
        for line in output.lines(final):
            found = self.pattern.search(line)
            if found:
                process.match = found
                if "endpoint" in self.pattern.groupindex:
                    process.endpoint = as_endpoint(found.group("endpoint"))
                elif self.pattern.groups:
                    process.endpoint = as_endpoint(found.group(1))
                return True
        return False


class CheckPasses(Readiness):
    """Ready once ``check()`` returns a true value, kept as the process's ``ready_value``.

    ``check`` is called again after each pause; an exception it raises ends the start.
    """

    def __init__(self, check: Callable[[], object]) -> None:
        if not callable(check):
            raise TypeError(f"CheckPasses: {check!r} is not callable")
        self.check = check

    def describe(self) -> str:
        name = getattr(self.check, "__qualname__", None) or repr(self.check)
        return f"{name}() to return a true value"

    @contextlib.contextmanager
    def expect(self) -> Iterator[Wait]:
        yield self._wait

    def _wait(self, process: ManagedProcess, timeout: float) -> None:
        def passes(final: bool) -> bool:
            value = self.check()
            if value:
                process.ready_value = value
            return bool(value)

        try:
            _poll(process, timeout, passes)
        except (ZmqTestError, NotReady):
            raise
        except Exception as exc:
            add_context(exc, f"  in the ready= check of {process.describe()}")
            raise


class PeerConnects(Readiness):
    """Ready once ``sock`` (a mimic, or any pyzmq socket) has completed a connection with a peer.

    Either side works: a socket that binds sees the process connect, one that connects sees
    the process accept. A failed handshake (wrong mechanism or credentials) ends the wait at once.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = _open_socket(sock, "PeerConnects: ")

    def describe(self) -> str:
        describe = getattr(self.sock, "describe", None)
        return f"a connection on {describe() if callable(describe) else repr(self.sock)}"

    @contextlib.contextmanager
    def expect(self) -> Iterator[Wait]:
        with ConnectionWaiter(self.sock) as waiter:  # before the start: its monitor must see the connection happen

            def wait(process: ManagedProcess, timeout: float) -> None:
                try:
                    waiter.wait(timeout)
                except TimeoutError as exc:
                    raise NotReady(str(exc), timed_out=True) from exc
                except ZmqTestError as exc:  # the process died (it is watched), a handshake failed, the socket closed
                    raise NotReady(str(exc)) from exc

            yield wait


Ready = Union[None, str, "re.Pattern[str]", Callable[[], object], "zmq.Socket[Any]", Readiness]
"""What ``start(ready=...)`` accepts: nothing, a :class:`Readiness`, or what one is made from."""


def readiness(ready: object) -> Readiness | None:
    """Return ``ready`` as a :class:`Readiness` (``None`` stays ``None``), or raise an error naming what is wrong.

    A str or compiled regex becomes :class:`OutputMatches`, a pyzmq socket :class:`PeerConnects`,
    any other callable :class:`CheckPasses`.
    """
    __tracebackhide__ = True  # a bad ready= is reported at the user's line
    if ready is None or isinstance(ready, Readiness):
        return ready
    if isinstance(ready, (str, bytes, bytearray, re.Pattern)):
        return OutputMatches(compile_pattern(ready, "ready="))
    if _is_socket(ready):
        return PeerConnects(_open_socket(ready, "ready="))
    if callable(ready):
        return CheckPasses(ready)
    raise TypeError(
        f"ready= takes None, a str regex, a callable, a mimic socket or a Readiness (OutputMatches, CheckPasses, "
        f"PeerConnects), got {ready!r}"
    )


def _open_socket(sock: Any, label: str) -> zmq.Socket[Any]:
    """``sock`` if it is an open pyzmq socket; a closed one is refused, ``label`` first."""
    __tracebackhide__ = True  # a bad ready= is reported at the user's line
    if not _is_socket(sock):
        raise TypeError(f"{label}{sock!r} is not a pyzmq socket")
    if sock.closed:
        raise ValueError(f"{label}{sock!r} is closed: give an open socket, one the process will connect to")
    return sock  # type: ignore[no-any-return]


def _is_socket(obj: object) -> bool:
    zmq = sys.modules.get("zmq")
    return zmq is not None and isinstance(obj, zmq.Socket)


def _poll(process: ManagedProcess, timeout: float, ready: Callable[[bool], bool]) -> None:
    """Look with ``ready(final)`` until it says so; pause on the process's end in between (it ends a pause at once).

    Once the process has ended, one last look (``final``: output need not end with a
    newline) may still find it ready: it said so just before it ended, and its end is then the test's business.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL
    while True:
        if ready(False):
            return
        if process.ended():
            if ready(True):
                return
            raise NotReady("it ended")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotReady(f"not ready within {timeout:g} s", timed_out=True)
        process.ended(min(pause, remaining))
        pause = min(pause * 2, POLL)
