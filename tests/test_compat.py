"""zmqtest.compat: each use of another library's private attribute, with it and with its fallback."""

from __future__ import annotations

import pytest
import zmq

import zmqtest.sockets
from zmqtest import TestSocket
from zmqtest.compat import register_socket
from zmqtest.contexts import ContextNotTerminated, TestContext, terminate_context


def test_a_test_socket_is_registered_with_its_context_so_destroy_closes_it() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = TestSocket(context, zmq.PAIR)
    context.destroy(linger=0)
    assert sock.closed


def test_a_test_context_keeps_a_test_socket_and_closes_it_at_termination() -> None:
    context = TestContext()
    sock = TestSocket(context, zmq.PAIR, name="dropped")
    terminate_context(context)
    assert sock.closed


def test_register_socket_without_add_socket_does_nothing() -> None:
    class Bare:  # a context of a pyzmq without Context._add_socket, as far as register_socket can tell
        pass

    register_socket(Bare(), None)  # type: ignore[arg-type]


def test_an_unregistered_test_socket_works_and_termination_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the fallback leaves: the socket made, the context none the wiser (pyzmq itself still needs _add_socket
    # for its own sockets, so the attribute cannot simply be deleted here).
    monkeypatch.setattr(zmqtest.sockets, "register_socket", lambda context, sock: register_socket(object(), sock))
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = TestSocket(context, zmq.PAIR, name="server")
    client = TestSocket(context, zmq.PAIR, name="client")
    try:
        server.bind(("", 0))
        client.connect(server.endpoint)
        client.send(b"hello", timeout=5)
        assert server.recv(timeout=5) == b"hello"
        with pytest.raises(ContextNotTerminated, match=r"PAIR socket 'client' connected to tcp://127\.0\.0\.1:"):
            terminate_context(context, timeout=0.1)  # it knows neither socket: they stay open, and are named
    finally:
        server.close()
        client.close()
    terminate_context(context)  # the termination under way ends once they are closed
