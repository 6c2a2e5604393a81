"""The ping client: one REQ socket, bounded waits, nothing left behind.

Every send and receive waits at most ``timeout`` seconds, and the socket closes with
linger 0 (the kill message excepted, see :func:`send_kill`), so a client never hangs
on a server that is dead, slow or not there yet.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import zmq

from pingpong.pong import KILL, encode

__all__ = ["Exchange", "PingTimeout", "exchanges", "format_exchange", "ping", "send_kill"]

Exchange = tuple[list[Any], Any]
"""A request and the reply it got."""


class PingTimeout(TimeoutError):
    """The server did not take a request, or did not reply, within the timeout."""


def _millis(timeout: float) -> int:
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be more than 0 seconds (and finite), got {timeout!r}")
    return math.ceil(timeout * 1000)


@contextlib.contextmanager
def _req_socket(
    endpoint: str, timeout: float, context: zmq.Context[Any] | None, linger_ms: int
) -> Iterator[zmq.Socket[Any]]:
    """A connected REQ socket with bounded waits; closed (and our own context ended) on exit."""
    millis = _millis(timeout)
    ctx: zmq.Context[Any] = zmq.Context() if context is None else context
    try:
        sock = ctx.socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, linger_ms)
            sock.setsockopt(zmq.SNDTIMEO, millis)
            sock.setsockopt(zmq.RCVTIMEO, millis)
            sock.connect(endpoint)
            yield sock
        finally:
            sock.close(linger=linger_ms)
    finally:
        if context is None:
            ctx.term()  # returns within linger_ms: every socket of ours is closed


def exchanges(
    endpoint: str, count: int = 1, timeout: float = 1.0, *, context: zmq.Context[Any] | None = None
) -> Iterator[Exchange]:
    """Send ``["ping", 1]`` ... ``["ping", count]``, yielding each request with its reply as it comes.

    Raises :class:`PingTimeout` when a send or a reply takes longer than ``timeout``.
    """
    with _req_socket(endpoint, timeout, context, linger_ms=0) as sock:
        for number in range(1, count + 1):
            request: list[Any] = ["ping", number]
            try:
                sock.send(encode(request))
                reply = json.loads(sock.recv())
            except zmq.Again:
                what = encode(request).decode()
                raise PingTimeout(f"no reply from {endpoint} to {what} within {timeout:g} s") from None
            yield request, reply


def ping(
    endpoint: str, count: int = 1, timeout: float = 1.0, *, context: zmq.Context[Any] | None = None
) -> list[Exchange]:
    """Ping ``count`` times; return every request with its reply (see :func:`exchanges`)."""
    return list(exchanges(endpoint, count, timeout, context=context))


def send_kill(endpoint: str, timeout: float = 1.0, *, context: zmq.Context[Any] | None = None) -> None:
    """Send ``["plzdiekthxbye", null]``: the server stops without replying.

    Here the socket lingers up to ``timeout`` seconds, because with linger 0 a message
    still queued when the socket closes is dropped. Whether the server got it shows in
    its exit (join the process); a server that is not there costs ``timeout`` seconds.
    """
    with _req_socket(endpoint, timeout, context, linger_ms=_millis(timeout)) as sock:
        try:
            sock.send(encode([KILL, None]))
        except zmq.Again:
            raise PingTimeout(f"could not send {KILL} to {endpoint} within {timeout:g} s") from None


def format_exchange(request: list[Any], reply: Any) -> str:
    """``ping 1 -> pong 1``: one exchange as one line."""
    return f"{_words(request)} -> {_words(reply)}"


def _words(message: Any) -> str:
    parts = message if isinstance(message, list) else [message]
    return " ".join(part if isinstance(part, str) else json.dumps(part) for part in parts)
