"""Sockets for zmqtest's own tests: one place for what several test modules need (as ``pids`` is for processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import zmq

from zmqtest import TestSocket

if TYPE_CHECKING:
    from conftest import Sockets

WAIT_MS = 5000
"""Upper bound for a delivery that should take well under a millisecond on loopback."""


def port_of(endpoint: str) -> int:
    """Return the port of a ``tcp://host:port`` endpoint."""
    return int(endpoint.rsplit(":", 1)[1])


def delivered(sock: zmq.Socket[Any]) -> None:
    """Wait (bounded) until a message is ready on ``sock``."""
    assert sock.poll(WAIT_MS, zmq.POLLIN), f"nothing arrived on {sock!r} within {WAIT_MS} ms"


def pair(socks: Sockets, **options: Any) -> tuple[TestSocket, TestSocket]:
    """Return a bound PAIR mimic 'server' and a PAIR mimic 'client' connected to it, both made with ``options``."""
    server = socks(zmq.PAIR, bind=("", 0), name="server", **options)
    client = socks(zmq.PAIR, connect=server.endpoint, name="client", **options)
    return server, client
