"""Waiting for a connection: a peer completing the ZMTP handshake with a socket, raced against the processes.

:class:`ConnectionWaiter` is the barrier "the process has connected" (or "has accepted
my connection"): a mimic's own peer watch (:mod:`zmqtest.peers`) answers it, any other
socket gets a libzmq monitor for the waiter's lifetime. Like every wait in
:mod:`zmqtest.waiting`, it is bounded, ends at once if a watched process dies, and says
on timeout what it saw instead (the monitor events, with a hint).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections import deque
from types import TracebackType
from typing import Any

import zmq

from zmqtest.errors import HandshakeFailed, WaitTimeout, ZmqTestError
from zmqtest.peers import PeerEvent, PeerWatch, event_detail, handshake_failure, parse_event
from zmqtest.waiting import describe_socket, describe_watched, failed_wait, timeout_seconds, wait_ready, watched

__all__ = ["ConnectionWaiter"]

_monitor_numbers = itertools.count(1)
_FATAL = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_AUTH)
"""Handshake failures that the next attempt repeats (mechanism mismatch, rejected credentials): no use waiting."""


class ConnectionWaiter(contextlib.AbstractContextManager["ConnectionWaiter"]):
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
        seconds = timeout_seconds(timeout, "the timeout= argument of ConnectionWaiter.wait")
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
                    raise failed_wait(
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
            if not wait_ready(self.monitor, zmq.POLLIN, deadline, processes, waiting_for):
                raise failed_wait(
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
