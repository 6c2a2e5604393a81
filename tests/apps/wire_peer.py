"""The peer of the wire conformance suite (tests/test_wire.py): a process that records every frame it receives.

:class:`WirePeer` binds one socket of one type per endpoint in ``wires`` (``{name:
endpoint}``; the suite uses ``mimic`` and ``plain``, one for the mimic socket and one
for the plain pyzmq socket it is compared with, so the two never share a connection).
Every message one of them receives is forwarded to the test at once, frame for frame
and as it is (identity frames and empty frames included), as ``[name, *frames]`` on
the ``reports`` socket: a PUSH, or a PUB for the PUB/SUB pair, whose barrier proves
the whole path by a probe that comes back this way. A multipart forward keeps every
byte and every frame boundary, so nothing needs encoding.

Commands come on ``control`` (a PULL), in order:

- ``[b"send", name, *frames]``: send ``frames`` on the socket ``name`` (a reply, a
  message to a mimic that receives);
- ``[b"stop"]``: close everything and return (exit code 0).

The sockets are plain pyzmq with libzmq's defaults, except LINGER 0, a send timeout
(a peer never blocks for ever: it dies, and the test's wait ends with its exit), the
identity :data:`PEER_ID` on a DEALER (so a ROUTER can address it), a SUB that
subscribes to everything, and an XSUB that does the same by sending ``b"\\x01"``.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import zmq

PEER_ID = b"peer"
"""The routing id of a DEALER peer: the first frame a ROUTER uses to address it."""
SEND_TIMEOUT_MS = 5000
"""How long a send of the peer may wait (for a connection to send to) before the peer dies with zmq.Again."""


class WirePeer(multiprocessing.Process):
    """A peer of type ``kind`` (``"ROUTER"``, ...) bound to each of ``wires``, reporting what it receives."""

    def __init__(
        self, kind: str, wires: dict[str, str], control: str, reports: str, *, reports_kind: str = "PUSH"
    ) -> None:
        super().__init__(name=f"WirePeer-{kind}")
        self.kind = kind
        self.wires = wires
        self.control = control
        self.reports = reports
        self.reports_kind = reports_kind

    def run(self) -> None:
        context: zmq.Context[Any] = zmq.Context()
        try:
            self._serve(context)
        except KeyboardInterrupt:
            pass
        finally:
            context.destroy(linger=0)

    def _serve(self, context: zmq.Context[Any]) -> None:
        kind = zmq.SocketType[self.kind]
        wires: dict[str, zmq.Socket[bytes]] = {}
        for name, endpoint in self.wires.items():
            sock = context.socket(kind)
            sock.linger = 0
            sock.sndtimeo = SEND_TIMEOUT_MS
            if kind == zmq.DEALER:
                sock.routing_id = PEER_ID
            if kind == zmq.SUB:
                sock.subscribe(b"")
            sock.bind(endpoint)
            if kind == zmq.XSUB:
                sock.send(b"\x01")  # subscribe to everything; an XSUB sends it to every publisher that connects
            wires[name] = sock
        control = context.socket(zmq.PULL)
        control.linger = 0
        control.connect(self.control)
        reports = context.socket(zmq.SocketType[self.reports_kind])
        reports.linger = 0
        reports.sndtimeo = SEND_TIMEOUT_MS
        reports.connect(self.reports)  # last: the test is told the peer is ready when this connection is made
        names = {sock: name.encode() for name, sock in wires.items()}
        poller = zmq.Poller()
        poller.register(control, zmq.POLLIN)
        for sock in wires.values():
            poller.register(sock, zmq.POLLIN)
        while True:
            for sock, _ in poller.poll():
                if sock is not control:
                    reports.send_multipart([names[sock], *sock.recv_multipart()])
                    continue
                command, *args = control.recv_multipart()
                if command == b"stop":
                    return
                if command != b"send" or not args:
                    raise ValueError(f"unknown command {[command, *args]!r}")
                wires[args[0].decode()].send_multipart(args[1:])
