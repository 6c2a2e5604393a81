"""Waiting on what tests wait for, raced against the death of the processes under test.

Every process a :class:`~zmqtest.processes.ProcessManager` starts is *watched* while
the manager is open: any wait in zmqtest (a mimic socket's send or receive, a
readiness check, :func:`wait_for_message`, :func:`wait_until`) puts the watched
processes' sentinels in the same poll as what it waits for, so a process that dies
ends the wait at once with its exit status and the tail of its output, instead of a
timeout that says nothing.

The helpers here are the analogue of nameko's ``entrypoint_waiter``: they work
without pytest, every wait is bounded (by default by the harness timeout), and a
timeout says what was awaited and what was seen instead.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol, TypeVar, overload

import zmq

from zmqtest import transcript
from zmqtest.errors import HandshakeFailed, ProcessError, SocketTimeout, WaitTimeout, ZmqTestError, add_context
from zmqtest.peers import PeerEvent, PeerWatch, event_detail, handshake_failure, parse_event
from zmqtest.settings import current_timeout, parse_timeout

__all__ = [
    "ConnectionWaiter",
    "Watched",
    "wait_for_message",
    "wait_until",
    "watched",
    "watching",
]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

MAX_POLL_MS = 2**31 - 1
"""zmq_poll takes a C long of milliseconds; longer waits are clamped (about 24.8 days)."""
SHOWN_MESSAGES = 3
"""How many of the messages a wait skipped its timeout error quotes."""
SHOWN_CHARS = 80
"""How much of each quoted message or value a timeout error shows."""


class Watched(Protocol):
    """What a wait needs to know of a process under test."""

    @property
    def sentinel(self) -> int:
        """A file descriptor that becomes readable when the process has ended."""
        ...

    def describe(self) -> str:
        """The process and its state, e.g. ``PongProc (pid 4242, running)``."""
        ...

    def exit_error(self, waiting_for: str) -> ZmqTestError:
        """The error for a wait (``waiting_for`` says which) that this process's end cut short."""
        ...


_watched: ContextVar[tuple[Watched, ...]] = ContextVar("zmqtest_watched", default=())


def watched() -> tuple[Watched, ...]:
    """The processes whose death ends any wait, now.

    A process the test has stopped, or that may end (``expect_exit``), says so with
    ``ends_waits = False`` and is left out.
    """
    processes = _watched.get()
    if processes:
        processes = tuple(process for process in processes if getattr(process, "ends_waits", True))
    return processes


any_watched = _watched.get
"""``any_watched()``: the processes watched now, also those that no longer end waits (a C call, for hot paths)."""


@contextmanager
def watching(*processes: Watched) -> Iterator[None]:
    """Watch ``processes`` (in addition to those watched already) inside the ``with`` block."""
    token = _watched.set(_watched.get() + processes)
    try:
        yield
    finally:
        _watched.reset(token)


# --- the race: one poll over a socket and the watched sentinels ----------------------------------------------------


def poll_millis(seconds: float) -> int:
    """``seconds`` as a zmq_poll timeout: rounded up (never wake early and spin), clamped to what it takes."""
    if seconds <= 0:
        return 0
    return min(math.ceil(seconds * 1000), MAX_POLL_MS)


PollItems = list[tuple[Any, int]]
"""What ``zmq.zmq_poll`` (the call under ``zmq.Poller.poll``) takes: ``(socket or fd, events)`` pairs."""


def poll_items(sock: zmq.Socket[Any], event: int, processes: Sequence[Watched]) -> PollItems:
    """``sock`` first (so a ready socket is ``result[0]``), then every process's sentinel.

    A plain list for ``zmq.zmq_poll``: what ``zmq.Poller`` keeps, without its per-call wrapper.
    """
    return [(sock, event), *((process.sentinel, zmq.POLLIN) for process in processes)]


def poll_ready(
    items: PollItems, sock: zmq.Socket[Any], event: int, millis: int, processes: Sequence[Watched]
) -> bool | Watched:
    """One poll of ``sock`` raced against ``processes`` (``items`` from :func:`poll_items`).

    True: ``sock`` is ready for ``event``. False: nothing happened within ``millis``
    (or the poll woke early). A :class:`Watched`: that process ended and ``sock`` is
    not ready. A socket that is ready wins over a death, so a message the process sent
    before it died is still received.
    """
    ready = zmq.zmq_poll(items, millis)
    if not ready:
        return False
    if ready[0][0] is sock or int(sock.getsockopt(zmq.EVENTS)) & event:
        return True
    return ended(processes, [item for item, _ in ready])


def ended(processes: Sequence[Watched], fired: Collection[Any]) -> Watched:
    """Which of ``processes`` owns one of the ``fired`` sentinels (the first watched, if several)."""
    for process in processes:
        if process.sentinel in fired:
            return process
    return processes[0]  # a poll reports only what was registered: unreachable unless a sentinel changed


def describe_watched(processes: Sequence[Watched]) -> str:
    """``"; PongProc (pid 4242, running)"`` per process, for the end of a timeout message."""
    return "".join(f"; {process.describe()}" for process in processes)


def describe_socket(sock: zmq.Socket[Any]) -> str:
    """A mimic describes itself; a plain pyzmq socket gets its type and last endpoint."""
    describe = getattr(sock, "describe", None)
    if callable(describe):
        return str(describe())
    try:
        text = f"{zmq.SocketType(int(sock.getsockopt(zmq.TYPE))).name} socket"
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:  # closed
        return repr(sock)
    return f"{text} at {endpoint}" if endpoint else text


def _wait_ready(
    sock: zmq.Socket[Any], event: int, deadline: float, processes: tuple[Watched, ...], waiting_for: Callable[[], str]
) -> bool:
    """Wait until ``sock`` is ready (True) or ``deadline`` (False); a watched death raises its exit error."""
    items = poll_items(sock, event, processes) if processes else None
    while True:  # polls at least once, so that a zero timeout still sees a ready socket or a death
        millis = poll_millis(deadline - time.monotonic())
        if items is None:
            if sock.poll(millis, event):
                return True
        else:
            outcome = poll_ready(items, sock, event, millis, processes)
            if outcome is True:
                return True
            if outcome is not False:
                raise _failed(outcome.exit_error(waiting_for()))
        if time.monotonic() >= deadline:
            return False


def _failed(error: E) -> E:
    """Put a wait that failed in the test's transcript (the test's own column), and hand the error on."""
    transcript.failed(str(error).partition("\n")[0])
    return error


def _seconds(timeout: float | None, where: str) -> float:
    if timeout is None:
        return current_timeout()
    return parse_timeout(timeout, where, allow_zero=True)


def name_of(function: Callable[..., Any]) -> str:
    """A readable name for a predicate or condition: its qualified name, and where a lambda was written."""
    name = getattr(function, "__qualname__", None)
    if not isinstance(name, str):
        return _short(repr(function))
    name = name.rpartition("<locals>.")[2]  # a function defined in a test: its own name says enough
    code = getattr(function, "__code__", None)
    if name == "<lambda>" and code is not None:
        return f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
    return name


def _short(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- wait_for_message ----------------------------------------------------------------------------------------------


@overload
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[list[bytes]], object] | None = None,
    *,
    timeout: float | None = None,
    decode: None = None,
) -> list[bytes]: ...
@overload
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[T], object] | None = None,
    *,
    timeout: float | None = None,
    decode: Callable[[list[bytes]], T],
) -> T: ...
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[Any], object] | None = None,
    *,
    timeout: float | None = None,
    decode: Callable[[list[bytes]], Any] | None = None,
) -> Any:
    """Receive multipart messages on ``sock`` until one satisfies ``predicate``, and return it.

    Messages before it are consumed and dropped (the timeout error quotes the first
    few, so a near miss shows); messages after it stay queued. ``decode(frames)``, if
    given, turns each message into what ``predicate`` sees and what is returned.
    ``predicate=None`` takes the first message. Waits at most ``timeout`` seconds
    (default: the harness timeout), raced against the watched processes; on timeout
    raises :class:`~zmqtest.errors.SocketTimeout` (a ``zmq.Again``).
    """
    seconds = _seconds(timeout, "the timeout= argument of wait_for_message")
    what = "any message" if predicate is None else name_of(predicate)
    operation = f"wait_for_message({what})"
    deadline = time.monotonic() + seconds
    processes = watched()
    seen = 0
    shown: list[list[bytes]] = []
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            if _wait_ready(sock, zmq.POLLIN, deadline, processes, lambda: f"{operation} on {describe_socket(sock)}"):
                continue
            raise _failed(
                SocketTimeout(
                    _message_timeout(operation, sock, seconds, seen, shown) + describe_watched(processes),
                    operation="wait_for_message",
                    timeout=seconds,
                )
            ) from None
        seen += 1
        try:
            message = frames if decode is None else decode(frames)
            if predicate is None or predicate(message):
                return message
        except Exception as exc:
            add_context(exc, f"  in {operation} on {describe_socket(sock)}, message {seen}: {_short(repr(frames))}")
            raise
        if len(shown) < SHOWN_MESSAGES:
            shown.append(frames)


def _message_timeout(operation: str, sock: zmq.Socket[Any], seconds: float, seen: int, shown: list[list[bytes]]) -> str:
    head = f"{operation} on {describe_socket(sock)}"
    if not seen:
        return f"{head}: no message at all within {seconds:g} s"
    quoted = ", ".join(_short(repr(frames)) for frames in shown)
    more = f" and {seen - len(shown)} more" if seen > len(shown) else ""
    plural = "message" if seen == 1 else "messages"
    return f"{head}: no matching message within {seconds:g} s; {seen} other {plural} seen: {quoted}{more}"


# --- wait_until ----------------------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float | None = None,
    interval: float = 0.01,
    what: str | None = None,
) -> T:
    """Call ``condition()`` until it returns something truthy, and return that.

    Between calls it waits ``interval`` seconds on the watched processes' sentinels, so
    a death ends the wait at once (after one last call, in case the process finished
    its work as it ended). An exception from ``condition`` counts as "not yet" (it is
    chained to the timeout error), except zmqtest's process errors, which end the
    wait. Timeout (default: the harness timeout) raises
    :class:`~zmqtest.errors.WaitTimeout` naming ``what`` (default: the callable's name)
    and the last value or exception.
    """
    from multiprocessing.connection import wait as wait_fds  # only here: the rest of zmqtest does not need it

    seconds = _seconds(timeout, "the timeout= argument of wait_until")
    pause = parse_timeout(interval, "the interval= argument of wait_until")
    name = what if what is not None else name_of(condition)
    processes = watched()
    sentinels = [process.sentinel for process in processes]
    deadline = time.monotonic() + seconds
    calls = 0
    last: Any = None
    failure: Exception | None = None
    while True:
        calls += 1
        try:
            value = condition()
        except ProcessError:
            raise
        except Exception as exc:
            failure, last = exc, None
        else:
            if value:
                return value
            failure, last = None, value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if failure is not None:
                outcome = f"the last check raised {type(failure).__name__}: {_short(str(failure), 200)}"
            else:
                outcome = f"the last value was {_short(repr(last), 200)}"
            raise _failed(
                WaitTimeout(
                    f"wait_until({name}): not true within {seconds:g} s ({calls} checks); {outcome}"
                    + describe_watched(processes),
                    what=name,
                    timeout=seconds,
                )
            ) from failure
        if not sentinels:
            time.sleep(min(pause, remaining))
            continue
        fired = wait_fds(sentinels, timeout=min(pause, remaining))
        if fired:
            try:
                value = condition()  # one last look: it may have finished its work as it ended
            except ProcessError:
                raise
            except Exception:
                pass
            else:
                if value:
                    return value
            raise _failed(ended(processes, fired).exit_error(f"wait_until({name})"))


# --- ConnectionWaiter ----------------------------------------------------------------------------------------------

_monitor_numbers = itertools.count(1)
_FATAL = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_AUTH)
"""Handshake failures that the next attempt repeats (mechanism mismatch, rejected credentials): no use waiting."""


class ConnectionWaiter:
    """Wait until a peer has completed a connection (the ZMTP handshake) with a mimic socket.

    Create it *before* the peer can connect: a connection made earlier is not
    reported. Either side works: a mimic that binds sees the process connect, a mimic
    that connects sees the process accept. A :class:`~zmqtest.sockets.TestSocket` is
    watched through its own peer watch (:mod:`zmqtest.peers`); any other socket gets a
    monitor for the waiter's lifetime. Use it as a context manager (or call
    :meth:`close`) so such a monitor is stopped::

        with ConnectionWaiter(sock) as waiter:
            start_process(sock.endpoint)
            waiter.wait(timeout=5)

    ``events`` holds the monitor events seen so far (the last 100), for diagnosis.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock
        self.events: deque[dict[str, Any]] = deque(maxlen=100)
        self._counts: dict[str, int] = {}  # label -> count, in first-seen order (a bounded set of names)
        self._done = False
        peers = getattr(sock, "peers", None)
        self._peers: PeerWatch | None = peers if isinstance(peers, PeerWatch) and peers.stopped is None else None
        if self._peers is not None:
            self._seen = self._peers.read()  # from now on
            self.monitor: zmq.Socket[Any] = self._peers.pair
            return
        current = getattr(sock, "_monitor_socket", None)
        if current is not None and not current.closed:
            raise ValueError(
                f"{describe_socket(sock)} already has a monitor, and libzmq allows one per socket:"
                " close the other ConnectionWaiter (or call sock.disable_monitor()) first"
            )
        # a fresh inproc address each time: libzmq releases a stopped monitor's address only later, asynchronously
        address = f"inproc://zmqtest-monitor-{os.getpid()}-{next(_monitor_numbers)}"
        self.monitor = sock.get_monitor_socket(addr=address)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next ``HANDSHAKE_SUCCEEDED`` event: ``{"event", "value", "endpoint" (str), "name"}``.

        Waits at most ``timeout`` seconds (default: the harness timeout), raced against
        the watched processes. A protocol or authentication failure raises
        :class:`~zmqtest.errors.HandshakeFailed` at once; a timeout raises
        :class:`~zmqtest.errors.WaitTimeout` listing the events seen.
        """
        seconds = _seconds(timeout, "the timeout= argument of ConnectionWaiter.wait")
        if self._done:
            raise ValueError(f"this ConnectionWaiter of {describe_socket(self.sock)} is closed")
        deadline = time.monotonic() + seconds
        processes = watched()
        while True:
            for event in self._arrived():
                kind = event.event
                if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return event.as_dict()
                if kind in _FATAL:
                    raise _failed(
                        HandshakeFailed(
                            f"{self._waiting_for()}: {handshake_failure(event, where=f' on {event.endpoint}')}; "
                            f"{self.summary()}"
                        )
                    )
                if kind == zmq.EVENT_MONITOR_STOPPED:
                    raise ZmqTestError(f"{self._waiting_for()}: the socket was closed or its monitor stopped")
            waiting_for = self._waiting_for
            if self._closed():
                raise ZmqTestError(f"{waiting_for()}: the socket was closed or its monitor stopped")
            if not _wait_ready(self.monitor, zmq.POLLIN, deadline, processes, waiting_for):
                raise _failed(
                    WaitTimeout(
                        f"{waiting_for()}: no connection within {seconds:g} s; {self.summary()}"
                        + describe_watched(processes),
                        what="a connection",
                        timeout=seconds,
                    )
                ) from None

    def _closed(self) -> bool:
        return self.monitor.closed or (self._peers is not None and self._peers.stopped is not None)

    def _arrived(self) -> list[PeerEvent]:
        """The events that arrived since the last look, recorded for :meth:`summary`."""
        if self._peers is not None:
            peers = self._peers
            count = peers.read()
            new = peers.after(self._seen)
            self._seen = count
        else:
            new = []
            while True:
                try:
                    frames = self.monitor.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    new.append(PeerEvent(*parse_event(frames), time.monotonic()))
                except ValueError:
                    raise ZmqTestError(
                        f"unexpected message on the monitor of {describe_socket(self.sock)}: {frames!r:.200}"
                    ) from None
        for event in new:
            self.events.append(event.as_dict())
            label = event.name
            detail = event_detail(event.event, event.value)
            if detail:
                label += f" ({detail})"
            self._counts[label] = self._counts.get(label, 0) + 1
        return new

    def _waiting_for(self) -> str:
        return f"waiting for a connection on {describe_socket(self.sock)}"

    def summary(self) -> str:
        """The events seen, in first-seen order with counts: ``events seen: CONNECT_DELAYED, CONNECT_RETRIED x12``."""
        if not self._counts:
            watched = self._peers.describe(queues=False) if self._peers is not None else ""
            return watched or "no monitor events (nothing connected or tried to)"
        seen = ", ".join(label if count == 1 else f"{label} x{count}" for label, count in self._counts.items())
        endpoints = sorted({event["endpoint"] for event in self.events if event["endpoint"]})
        where = f" on {', '.join(endpoints)}" if endpoints else ""
        hint = ""
        if "CONNECT_RETRIED" in self._counts and not {"CONNECTED", "ACCEPTED"} & self._counts.keys():
            hint = " (nothing accepted the connection: is the process bound there, and running?)"
        return f"events seen{where}: {seen}{hint}"

    def close(self) -> None:
        """Stop monitoring and close the monitor socket (safe to call twice, or after the socket was closed)."""
        self._done = True
        if self._peers is not None or self.monitor.closed:
            return  # a mimic's peer watch goes on: it belongs to the socket
        try:
            if not self.sock.closed:
                self.sock.disable_monitor()
        except zmq.ZMQError:
            pass  # context terminated: nothing left to stop
        finally:
            self.monitor.close(linger=0)

    def __enter__(self) -> ConnectionWaiter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
