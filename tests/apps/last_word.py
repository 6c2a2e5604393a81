"""A peer that answers one request and exits at once: its reply must not get lost."""

from __future__ import annotations

from multiprocessing.connection import Connection

import zmq


def reply_once_and_exit(report: Connection) -> None:
    """Bind a REP to a free port, report the endpoint, answer one request, end."""
    with zmq.Context() as context, context.socket(zmq.REP) as sock:
        sock.linger = 1000  # let the reply leave before the process does
        sock.bind("tcp://127.0.0.1:*")
        report.send(sock.last_endpoint.decode())
        sock.recv()
        sock.send(b"last word")
