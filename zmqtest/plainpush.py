"""A ZeroMQ PUSH peer without libzmq: ZMTP 3.0 over a plain TCP or Unix-domain socket, for the log forwarder.

The process under test sends its log records (:mod:`zmqtest.logs`) to the test's PULL socket. Through pyzmq that
takes a zmq context in the process under test: two more threads, about 0.6 ms at its first record and 0.5 ms at
exit to flush and join them (a forked child's whole run is a few ms), and records still in libzmq's queue when the
process is killed are lost. Written straight into a socket, a record is in the kernel once ``send`` returns: no
thread, nothing left to lose at a SIGKILL but what the kernel would not take yet, and a forked child simply opens
a connection of its own.

The collector cannot tell: the bytes are what libzmq's PUSH sends (a ZMTP 3.0 greeting, the NULL mechanism's
READY, one frame per message, as :mod:`zmqtest.zmtp` encodes them; not imported here, which would cost each child
its import). ZMTP lets no message go before the peer's READY, so the connection is made with the first message and
waits for the collector's greeting and READY, a round trip on loopback (at most :data:`HANDSHAKE_SECONDS`); after
that nothing blocks: what the kernel does not take waits here, up to ``queued`` messages, and a message beyond that
is refused (the forwarder counts it as dropped). A collector that is not there yet, or went away, is tried again
with a later message, at most every :data:`RETRY_SECONDS`, as libzmq reconnects; a message cut by a broken
connection is lost with it, as in libzmq.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

__all__ = ["HANDSHAKE_SECONDS", "RETRY_SECONDS", "PlainPush", "address"]

GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31
"""ZMTP 3.0, mechanism NULL, not as server (``zmqtest.zmtp.greeting_bytes("NULL", minor=0)``)."""
READY = b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH"
"""The NULL handshake's one command (``zmqtest.zmtp.command_bytes("READY", properties_bytes(...))``)."""
HANDSHAKE_SECONDS = 1.0
"""How long the first message may wait for the collector to answer the connection (on loopback: well under 1 ms)."""
RETRY_SECONDS = 0.01
"""Shortest time between two attempts to connect (what libzmq's reconnect interval was for the forwarder)."""
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)
"""A peer gone must be an error, not a SIGPIPE that the application may have set to kill it (Linux; macOS below)."""
_SO_NOSIGPIPE = 0x1022


def address(endpoint: str) -> tuple[socket.AddressFamily, str | tuple[Any, ...]]:
    """The socket family and address that ``endpoint`` (``tcp://host:port`` or ``ipc://path``) names.

    ``ipc://@name`` is Linux's abstract namespace, as for libzmq. Raises ValueError for any other endpoint, OSError
    for a host name that does not resolve.
    """
    scheme, _, rest = endpoint.partition("://")
    if scheme == "ipc" and rest:
        return socket.AF_UNIX, "\0" + rest[1:] if rest.startswith("@") else rest
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            for family in (socket.AF_INET, socket.AF_INET6):  # a number: no resolver (its first call costs a child ms)
                with contextlib.suppress(OSError):
                    socket.inet_pton(family, host)
                    return family, (host, int(port))
            try:
                family, _, _, _, sockaddr = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
            except OSError as exc:
                raise OSError(f"cannot connect to {endpoint}: {exc}") from exc
            return family, sockaddr
    raise ValueError(f"not a tcp:// or ipc:// endpoint that can be connected to: {endpoint!r}")


def frame(message: bytes) -> bytes:
    """One single-frame ZMTP message (``zmqtest.zmtp.encode_frames([message])``)."""
    size = len(message)
    return (struct.pack(">BB", 0, size) if size <= 255 else struct.pack(">BQ", 2, size)) + message


class PlainPush:
    """The sending side of one PUSH connection to ``endpoint``, made with the first :meth:`send` (see the module).

    ``gave_up`` says why no connection is tried any more (a peer that does not speak ZMTP with NULL, or does not
    answer within :data:`HANDSHAKE_SECONDS`); every message is refused then.
    """

    def __init__(self, endpoint: str, *, queued: int) -> None:
        self.endpoint = endpoint
        self.family, self.sockaddr = address(endpoint)
        self.queued = queued
        self.gave_up: str | None = None
        self._sock: socket.socket | None = None
        self._out: deque[bytes] = deque()  # what the kernel has not taken: messages (each framed), in order
        self._written = 0  # bytes of the first of them already sent on the current connection
        self._retry_at = 0.0

    def send(self, message: bytes) -> bool:
        """Send one message; ``False`` if ``queued`` messages are waiting already, or it gave up (it is dropped)."""
        if len(self._out) >= self.queued:
            self._push()
            if len(self._out) >= self.queued:
                return False
        if self.gave_up is not None:
            return False
        self._out.append(frame(message))
        self._push()
        return self.gave_up is None  # else the handshake just failed: it went with what waited

    def close(self, timeout: float) -> None:
        """Send what waits, within ``timeout`` seconds, and close: what the kernel took arrives after our exit too.

        The collector sends nothing after its READY (read with the handshake); anything else that came is read
        first, so that the close ends the connection in order (a socket closed with unread input resets it).
        """
        deadline = time.monotonic() + timeout
        while self._out and self.gave_up is None and time.monotonic() < deadline:
            self._push()
            if self._out:
                self._wait(deadline)
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            while sock.recv(4096):
                pass
        except OSError:  # nothing more to read (BlockingIOError), or the collector is gone
            pass
        finally:
            sock.close()

    def forget(self) -> None:
        """In a forked child: drop this copy of the parent's connection (its descriptor), which goes on in the parent.

        Closing a descriptor ends nothing while another process holds the connection; nothing is sent, nor shut down.
        """
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._out.clear()
        self._written = 0

    def _push(self) -> None:
        """Write what the kernel takes now; connect first if there is no connection and it is time to try."""
        sock = self._sock if self._sock is not None else self._connect()
        if sock is None:
            return
        try:
            while self._out:
                first = self._out[0]
                self._written += sock.send(memoryview(first)[self._written :], _NO_SIGPIPE)
                if self._written < len(first):
                    return
                self._out.popleft()
                self._written = 0
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset, gone: a message cut short is lost with the connection, as in libzmq
            if self._written:
                self._out.popleft()
                self._written = 0
            sock.close()
            self._sock = None
            self._retry_at = time.monotonic() + RETRY_SECONDS

    def _connect(self) -> socket.socket | None:
        """Connect and make the ZMTP handshake, if it is time to try; the socket, non-blocking from then on."""
        if self.gave_up is not None or time.monotonic() < self._retry_at:
            return None
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            if sys.platform == "darwin":
                sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)
            sock.settimeout(HANDSHAKE_SECONDS)
            sock.connect(self.sockaddr)
            sock.sendall(GREETING + READY, _NO_SIGPIPE)
            problem = _peer_handshake(sock)
        except TimeoutError:
            problem = f"no ZMTP handshake from {self.endpoint} within {HANDSHAKE_SECONDS:g} s"
        except OSError:  # refused (no collector yet, or any more), reset: try again later
            sock.close()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return None
        if problem is not None:
            sock.close()
            self.gave_up = problem
            self._out.clear()
            return None
        sock.setblocking(False)
        self._sock = sock
        return sock

    def _wait(self, deadline: float) -> None:
        """Until the socket takes more, or it is time to connect again; never past ``deadline``."""
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if self._sock is None:  # libzmq's reconnect interval, as a timer would
            time.sleep(min(left, max(0.0, self._retry_at - time.monotonic())))
        else:
            select.select([], [self._sock], [], left)

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else f"gave up: {self.gave_up}" if self.gave_up else "idle"
        return f"<PlainPush to {self.endpoint} ({state}, {len(self._out)} waiting, pid {os.getpid()})>"


def _peer_handshake(sock: socket.socket) -> str | None:
    """Read the peer's greeting and READY; what is wrong with them, or None."""
    greeting = _read(sock, 64)
    if greeting[:1] != b"\xff" or greeting[9:10] != b"\x7f" or greeting[10] < 3:
        return f"the peer does not speak ZMTP 3 (its greeting begins {greeting[:12]!r})"
    mechanism = greeting[12:32].rstrip(b"\0")
    if mechanism != b"NULL":
        return f"the peer wants the {mechanism.decode(errors='replace')} mechanism, not NULL"
    flags = _read(sock, 1)[0]
    size_field = _read(sock, 8 if flags & 0x02 else 1)
    body = _read(sock, int.from_bytes(size_field, "big"))
    if not flags & 0x04 or not body.startswith(b"\x05READY"):
        return f"the peer's handshake is not READY: {body[:20]!r}"
    return None


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection during the handshake")
        data += chunk
    return data
