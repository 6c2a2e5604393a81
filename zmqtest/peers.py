"""What a mimic socket knows of its peers: its own connections, seen by a socket monitor on the test's side.

A monitor is invisible to the peer: it changes nothing on the wire or in the queues. A
mimic starts one at its first bind or connect and reads it only when something asks
(a failed wait explaining itself, a :class:`~zmqtest.waiting.ConnectionWaiter`), so
watching costs nothing on the way of a message. What it tells a timeout message:

- no peer has connected to an endpoint since the socket bound or connected it (and the
  messages sent meanwhile are queued there, as a plain socket queues them),
- the peer there has disconnected and none has connected since,
- a security handshake failed (mechanism mismatch, credentials rejected),
- a peer is connected (so the silence is the peer's, not the network's).

libzmq allows one monitor per socket: a test that starts a monitor of its own on a
mimic takes this one's place (:meth:`PeerWatch.stop`), and timeout messages then say
nothing of peers.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import struct
import sys
import time
from collections import deque
from typing import Any, NamedTuple

import zmq

from zmqtest.compat import register_socket

__all__ = ["PeerEvent", "PeerWatch", "event_detail", "event_name"]

WATCHED_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_MONITOR_STOPPED
)
"""The events a mimic watches: not CONNECT_RETRIED, which a 2 ms reconnect interval repeats 500 times a second."""
KEPT_EVENTS = 200
"""A watch keeps the last this many events (and counts all of them)."""

_EVENT = struct.Struct("=Hi")
"""A libzmq (v1) monitor event frame: 16-bit event id, 32-bit value."""
_numbers = itertools.count(1)
_PROTOCOL_ERRORS = {
    int(getattr(zmq, name)): name.removeprefix("PROTOCOL_ERROR_") for name in dir(zmq) if name.startswith("PROTOCOL_")
}
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
)
_HANDSHAKE_HINTS = {
    "ZMTP_MECHANISM_MISMATCH": ": the two sides use different security mechanisms (NULL, PLAIN or CURVE)",
}
_CLOSED_IN_HANDSHAKE = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,)
"""Without security, this failure means only that the connection went before the greeting was done."""
_UP = (zmq.EVENT_HANDSHAKE_SUCCEEDED,)
_DOWN = (zmq.EVENT_DISCONNECTED,)


def event_name(event: int) -> str:
    """Return ``HANDSHAKE_SUCCEEDED`` for a monitor event id (the hex value for one pyzmq does not name)."""
    try:
        name = zmq.Event(event).name
    except ValueError:
        name = None
    return name or hex(event)


def event_detail(event: int, value: int) -> str:
    """Say what the value of a failure event means: an errno, a ZMTP protocol error, a ZAP status code."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return _PROTOCOL_ERRORS.get(value, hex(value))
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"ZAP status {value}: the credentials were rejected"
    if event in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_BIND_FAILED, zmq.EVENT_ACCEPT_FAILED):
        return errno.errorcode.get(value, str(value))
    return ""


_ROLE_HINTS = {
    ("CURVE client", "EPIPE"): ": a CURVE client sees this when its server key is not the server's public key",
    ("PLAIN server", "EFAULT"): (
        ": a PLAIN server refuses every client while no ZAP handler serves its context (zmqtest.Authenticator, "
        "the zmq_authenticator fixture)"
    ),
}
"""Hints for the failures that say little by themselves, by the socket's side (``"CURVE client"``...) and detail."""


def security_role(sock: zmq.Socket[Any]) -> str:
    """``"CURVE client"``, ``"PLAIN server"``, ... (``"NULL"``: no security) of a socket, for hints."""
    mechanism = int(sock.getsockopt(zmq.MECHANISM))
    if mechanism == zmq.CURVE:
        return "CURVE server" if sock.getsockopt(zmq.CURVE_SERVER) else "CURVE client"
    if mechanism == zmq.PLAIN:
        return "PLAIN server" if sock.getsockopt(zmq.PLAIN_SERVER) else "PLAIN client"
    return "NULL"


def handshake_failure(event: PeerEvent, *, where: str = "", role: str = "") -> str:
    """Say ``HANDSHAKE_FAILED_AUTH (ZAP status 400: ...)``, then ``where``, then a hint where one helps."""
    detail = event_detail(event.event, event.value)
    hint = _HANDSHAKE_HINTS.get(detail) or _ROLE_HINTS.get((role, detail), "")
    return f"{event.name} ({detail}){where}{hint}"


class PeerEvent(NamedTuple):
    """A monitor event of a mimic: what happened, on which endpoint, and when the test read it."""

    event: int
    value: int
    endpoint: str
    seen: float
    """``time.monotonic()`` when the watch read it (libzmq does not stamp events): an upper bound."""

    @property
    def name(self) -> str:
        return event_name(self.event)

    def as_dict(self) -> dict[str, Any]:
        """Return the form ConnectionWaiter hands out: ``event``, ``value``, ``endpoint``, ``name``."""
        return {"event": self.event, "value": self.value, "endpoint": self.endpoint, "name": self.name}


def parse_event(frames: list[bytes]) -> tuple[int, int, str]:
    """The event id, value and endpoint of a (v1) monitor message; ValueError if it is not one."""
    if len(frames) != 2 or len(frames[0]) != _EVENT.size:
        raise ValueError(f"not a monitor event: {frames!r:.200}")
    event, value = _EVENT.unpack(frames[0])
    return event, value, frames[1].decode(errors="replace")


class PeerWatch:
    """The connections of one mimic socket, from a monitor that only the test's side has.

    ``pair`` is the PAIR socket the events arrive on (poll it to wait for one);
    :meth:`read` takes what has arrived; :meth:`describe` says it in a sentence.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock_type = sock.type
        self.events: deque[PeerEvent] = deque(maxlen=KEPT_EVENTS)
        self.count = 0
        """How many events were read in all (``events`` keeps the last :data:`KEPT_EVENTS`)."""
        self.since: dict[str, tuple[str, float]] = {}
        """Endpoint -> (``"bound"``/``"connected"``, ``time.monotonic()`` of the call), in call order."""
        self.stopped: str | None = None
        """Why the watch no longer watches, if it does not."""
        self.pid = os.getpid()
        """The process that watches: in a fork of it (a test that forks itself), the watch does nothing."""
        # a fresh inproc address each time: libzmq releases a stopped monitor's address only later, asynchronously
        address = f"inproc://zmqtest-peers-{os.getpid()}-{next(_numbers)}"
        zmq.Socket.monitor(sock, address, WATCHED_EVENTS)  # the base method: TestSocket.monitor() would stop us
        # a plain socket, also on an asyncio context (whose socket() makes sockets that return futures)
        self.pair: zmq.Socket[Any] = zmq.Socket(sock.context, zmq.PAIR)
        register_socket(sock.context, self.pair)  # as context.socket() would: destroy() closes it too
        try:
            self.pair.setsockopt(zmq.LINGER, 0)
            # No limit: libzmq sends monitor events blocking, so a full queue would stall its I/O thread. Without
            # the retries, events come only with connections (a few dozen bytes each); every failed wait reads them.
            self.pair.setsockopt(zmq.RCVHWM, 0)
            self.pair.connect(address)
        except BaseException:
            self.pair.close(linger=0)
            raise

    def attached(self, endpoint: str, how: str) -> None:
        """Note that the socket was ``how`` (``"bound"``, ``"connected"``) to ``endpoint`` now."""
        self.since[endpoint] = (how, time.monotonic())

    def detached(self, endpoint: str) -> None:
        self.since.pop(endpoint, None)

    def read(self) -> int:
        """Take every event that has arrived, without waiting; return how many were read in all so far."""
        if self.stopped is None and os.getpid() == self.pid:  # pyzmq retries EINTR forever in a fork
            pair = self.pair
            while True:
                try:
                    frames = pair.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:  # the context is being terminated: nothing more will come
                    self.stopped = "the context was terminated"
                    break
                event, value, endpoint = parse_event(frames)
                if event == zmq.EVENT_MONITOR_STOPPED:
                    self.stopped = "the socket's monitor was stopped"
                self.events.append(PeerEvent(event, value, endpoint, time.monotonic()))
                self.count += 1
        return self.count

    def after(self, count: int) -> list[PeerEvent]:
        """The events read after the first ``count`` (those still kept)."""
        new = self.count - count
        return list(self.events)[-new:] if new > 0 else []

    def state(self, endpoint: str) -> tuple[bool, PeerEvent | None, PeerEvent | None]:
        """Whether a peer is connected at ``endpoint`` now (as far as read), the last event that said so or not,
        and the last failed handshake there since the last one that succeeded.

        For a bound endpoint, "connected" means at least one accepted peer has completed its
        handshake and not all of those have disconnected since.
        """
        peers = 0
        last = failure = None
        for event in self.events:
            if event.endpoint != endpoint:
                continue
            if event.event in _UP:
                peers += 1
                last = event
                failure = None
            elif event.event in _DOWN:
                peers = max(peers - 1, 0)
                last = event
            elif event.event in HANDSHAKE_FAILURES:
                failure = event
        return peers > 0, last, failure

    def any_connected(self) -> bool:
        """Whether a peer is connected at any endpoint now, as far as read (False once the watch stopped: unknown)."""
        if self.stopped is not None:
            return False
        self.read()
        return any(self.state(endpoint)[0] for endpoint in self.since)

    def describe(self, *, queues: bool, role: str = "") -> str:
        """A clause for a failed wait: the peers of each endpoint (``queues``: say that messages wait for one).

        Empty when there is nothing useful to say (no endpoints, or the watch was stopped).
        """
        if not self.since:
            return ""
        if self.stopped is not None:  # what it saw before may no longer be so
            return f"({self.stopped}: its connections are not known)"
        self.read()
        now = time.monotonic()
        parts = []
        for endpoint, (how, at) in self.since.items():
            connected, last, failure = self.state(endpoint)
            if failure is not None and not connected and role == "NULL" and failure.event in _CLOSED_IN_HANDSHAKE:
                detail = event_detail(failure.event, failure.value)
                parts.append(
                    f"the connection at {endpoint} was closed before its handshake completed ({detail}): "
                    "the peer ended or dropped it, or it is not a ZeroMQ socket"
                )
            elif failure is not None and not connected:
                parts.append(f"the security handshake with {endpoint} failed: {handshake_failure(failure, role=role)}")
            elif connected:
                parts.append(f"a peer is connected at {endpoint}")
            else:
                if last is None:
                    verb = "connected to it" if how == "connected" else "was bound there"
                    text = f"no peer has connected at {endpoint} since the socket {verb} {now - at:.3g} s ago"
                else:
                    text = f"the peer at {endpoint} has disconnected and none has connected since"
                if queues and how == "connected":  # a connect makes the queue at once; a bind only for a peer
                    text += " (what is sent to it waits in the socket's queue until one does)"
                parts.append(text)
        return "; ".join(parts)

    def stop(self, why: str, sock: zmq.Socket[Any] | None = None) -> None:
        """Stop watching: ``why`` says why (the socket is closing, the test took its monitor).

        Given ``sock`` (still monitored by this watch), stop its monitor first, while the
        events still have somewhere to go: libzmq keeps a socket whose monitor outlived its
        reader (and three file descriptors) until the context ends, and would block sending
        the monitor's last event to nobody.
        """
        if os.getpid() != self.pid:  # a fork of the test: its sockets are the parent's, nothing here to stop
            self.stopped = self.stopped or why
            return
        if sys.is_finalizing():  # a socket dropped until the interpreter ends: nothing is left to read or stop
            self.stopped = self.stopped or why
            if not self.pair.closed:
                self.pair.close(linger=0)
            return
        if self.stopped is None:
            self.read()
            self.stopped = why
        if self.pair.closed:
            return
        if sock is not None and not sock.closed:
            with contextlib.suppress(zmq.ZMQError):  # the context is being terminated: nothing to stop
                zmq.Socket.monitor(sock, None, 0)
        self.pair.close(linger=0)
