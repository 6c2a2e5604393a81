"""A REQ mimic whose receive gave up starts over, as a real client does, on new connections.

A plain REQ would refuse the next request (EFSM); a client then opens a new socket (the
zguide's Lazy Pirate). The mimic does the same on the socket it is: it disconnects and
connects again each endpoint, so the reply to the request it gave up on, if it ever
comes, goes to a connection that is gone and is never taken for the reply to the next
one; the next request may go (REQ_RELAXED, for that one send only). The peer sees what
it would see from a real client: a new connection. A REQ that is bound cannot start over
without its peer reconnecting: its next send raises libzmq's EFSM, as a plain REQ's
does, and says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zmq

from zmqtest import transcript

if TYPE_CHECKING:
    from zmqtest.sockets import TestSocket

__all__ = ["settle", "start_over"]


def start_over(sock: TestSocket) -> None:
    """Start ``sock`` (a REQ whose receive gave up) over on new connections, so a late reply is dropped."""
    state = sock.__dict__
    if sock.closed:
        return
    state["_pending"] = True
    if sock.bound or not sock.connected:
        state["_stuck"] = (
            "its last request got no reply, and a REQ that is bound cannot start over on a new connection (its "
            "peer would have to reconnect); close it and make a new one, as a real client would"
        )
        return
    record = transcript.current()
    try:
        for endpoint in sock.connected:
            zmq.Socket.disconnect(sock, endpoint)
            zmq.Socket.connect(sock, endpoint)
            peers = state["_peers"]
            if peers is not None:
                peers.attached(endpoint, "connected")
        sock.setsockopt(zmq.REQ_RELAXED, 1)
    except zmq.ZMQError as exc:  # the context is going away: the failure that got us here is what matters
        state["_stuck"] = f"it could not start over after its last request got no reply ({exc})"
        return
    if record is not None:
        record.note_on(sock, "started over on a new connection: a late reply to the last request is dropped")


def settle(sock: TestSocket, sent: bool) -> None:
    """Make ``sock`` a REQ like any other again, after its first send or receive that worked since :func:`start_over`.

    A new request is out: refuse a second one (EFSM), as a plain REQ does. A reply came
    (a bound REQ's late one): the next send is a normal one.
    """
    state = sock.__dict__
    if sent:
        if not state["_stuck"] and not sock.closed:
            sock.setsockopt(zmq.REQ_RELAXED, 0)
    elif not state["_stuck"]:
        return  # a reply, yet no new request since starting over: keep the next send relaxed
    state["_pending"] = False
    state["_stuck"] = ""
