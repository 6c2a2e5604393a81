"""terminate_context and SocketFactory on real contexts: nothing hangs, every port comes back."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, cast

import pytest
import zmq

from zmqtest import TestSocket, ZmqTestError
from zmqtest.contexts import ContextNotTerminated, SocketFactory, TestContext, terminate_context
from zmqtest.endpoints import EndpointFactory

SHORT_DEADLINE = 0.3
"""Seconds given to a context that cannot terminate."""
MARGIN = 1.0
"""Seconds allowed over a deadline for the search for open sockets that follows it."""


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    """A context for tests of terminate_context itself, terminated afterwards if a test left it alive."""
    context: zmq.Context[Any] = zmq.Context()
    yield context
    terminate_context(context)  # not destroy(): that would hang if terminate_context failed to close a socket


@pytest.fixture
def endpoints() -> Iterator[EndpointFactory]:
    with EndpointFactory() as factory:
        yield factory


# --- terminate_context ------------------------------------------------------------------------


def test_a_leaked_socket_with_an_unsent_message_and_linger_forever_is_closed(
    context: zmq.Context[Any], endpoints: EndpointFactory
) -> None:
    leaked = context.socket(zmq.PUSH)
    leaked.linger = -1  # the user's choice: term() would wait for delivery forever
    leaked.connect(endpoints.tcp())  # nobody listens there
    leaked.send(b"never delivered", zmq.NOBLOCK)
    started = time.monotonic()
    terminate_context(context, timeout=5)
    assert time.monotonic() - started < 1
    assert context.closed
    assert leaked.closed


def test_open_test_sockets_are_closed_too(context: zmq.Context[Any], endpoints: EndpointFactory) -> None:
    sock = TestSocket(context, zmq.DEALER, name="left open")
    sock.connect(endpoints.tcp())
    terminate_context(context)
    assert sock.closed
    assert context.closed


def test_a_terminated_context_is_left_alone(context: zmq.Context[Any]) -> None:
    context.term()
    terminate_context(context)
    assert context.closed


def test_rebinding_a_port_right_after_terminate_context_never_fails(endpoints: EndpointFactory) -> None:
    failures = []
    for cycle in range(200):
        endpoint = endpoints.tcp()
        for attempt in ("bind", "re-bind"):
            context: zmq.Context[Any] = zmq.Context()
            try:
                server = TestSocket(context, zmq.REP, timeout=5)
                server.bind(endpoint)
                client = TestSocket(context, zmq.REQ, timeout=5)
                client.connect(endpoint)
                client.send(b"ping")
                server.send(server.recv())
                assert client.recv() == b"ping"
            except zmq.ZMQError as exc:
                failures.append(f"cycle {cycle} {attempt} {endpoint}: {exc}")
            finally:
                terminate_context(context)  # closes server and client (LINGER 0), then terms
    assert failures == []


def test_a_socket_the_context_does_not_know_of_is_named_within_the_deadline(context: zmq.Context[Any]) -> None:
    hidden = zmq.Socket(context, zmq.PAIR)  # not made by context.socket(): the context cannot close it
    try:
        started = time.monotonic()
        with pytest.raises(ContextNotTerminated) as caught:
            terminate_context(context, timeout=SHORT_DEADLINE)
        assert SHORT_DEADLINE <= time.monotonic() - started < SHORT_DEADLINE + MARGIN
        message = str(caught.value)
        assert message.startswith(
            f"zmq context could not terminate within {SHORT_DEADLINE:g} s, open sockets likely remain in test: "
        )
        assert "zmq.Socket(zmq.PAIR)" in message
        assert caught.value.sockets == [repr(hidden)]
        assert caught.value.timeout == SHORT_DEADLINE
        assert isinstance(caught.value, ZmqTestError)
        assert isinstance(caught.value, RuntimeError)
        assert not context.closed
    finally:
        hidden.close()
    terminate_context(context, timeout=5)  # waits for the termination already under way
    assert context.closed


def test_a_socket_kept_open_by_another_thread_is_named_within_the_deadline(context: zmq.Context[Any]) -> None:
    ready, interrupted, release = threading.Event(), threading.Event(), threading.Event()

    def worker() -> None:
        sock = zmq.Socket(context, zmq.PULL)
        ready.set()
        try:
            sock.recv()
        except zmq.ContextTerminated:
            interrupted.set()
            release.wait(10)  # a thread that keeps its socket open after ETERM
        finally:
            sock.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        assert ready.wait(5)
        started = time.monotonic()
        with pytest.raises(ContextNotTerminated, match=r"could not terminate within 0.3 s.*zmq.Socket\(zmq.PULL\)"):
            terminate_context(context, timeout=SHORT_DEADLINE)
        assert time.monotonic() - started < SHORT_DEADLINE + MARGIN
        assert interrupted.wait(5)  # term() did interrupt the blocked recv
    finally:
        release.set()
        thread.join(10)
    terminate_context(context, timeout=5)
    assert context.closed


class BlockingTerm:
    """A stand-in context whose term() blocks until released (libzmq stuck with no socket to blame)."""

    closed = False
    _sockets: tuple[zmq.Socket[Any], ...] = ()

    def __init__(self) -> None:
        self.release = threading.Event()

    def term(self) -> None:
        self.release.wait(10)
        self.closed = True


def test_a_stuck_term_with_no_socket_to_blame_still_ends_within_the_deadline() -> None:
    stuck = BlockingTerm()
    try:
        with pytest.raises(ContextNotTerminated, match="open sockets likely remain in test: none found") as caught:
            terminate_context(cast(zmq.Context[Any], stuck), timeout=0.05)
        assert caught.value.sockets == []
    finally:
        stuck.release.set()
    terminate_context(cast(zmq.Context[Any], stuck), timeout=5)
    assert stuck.closed


class FailingTerm:
    closed = False
    _sockets: tuple[zmq.Socket[Any], ...] = ()

    def term(self) -> None:
        raise zmq.ZMQError(zmq.EFAULT)


def test_an_error_from_term_reaches_the_caller() -> None:
    with pytest.raises(zmq.ZMQError) as caught:
        terminate_context(cast(zmq.Context[Any], FailingTerm()))
    assert caught.value.errno == zmq.EFAULT


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "soon"])
def test_the_deadline_must_be_a_number_of_seconds(context: zmq.Context[Any], timeout: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid timeout .* from the timeout of terminate_context\(\)"):
        terminate_context(context, timeout=timeout)
    assert not context.closed  # nothing was done


# --- TestContext ------------------------------------------------------------------------------


def test_a_test_context_keeps_dropped_sockets_until_terminate_context_closes_them() -> None:
    context = TestContext()
    dropped: list[weakref.ref[zmq.Socket[Any]]] = [
        weakref.ref(context.socket(zmq.PUSH)),
        weakref.ref(TestSocket(context, zmq.PULL)),
    ]
    gc.collect()  # pyzmq would close them here, with a ResourceWarning (an error in this suite)
    kept = [ref() for ref in dropped]
    assert all(sock is not None and not sock.closed for sock in kept)
    terminate_context(context)
    assert all(sock is not None and sock.closed for sock in kept)
    assert context.closed


def test_a_test_context_lets_closed_sockets_go() -> None:
    context = TestContext()
    sock = context.socket(zmq.PAIR)
    ref = weakref.ref(sock)
    sock.close()
    del sock
    gc.collect()
    assert ref() is None
    terminate_context(context)


# --- SocketFactory ----------------------------------------------------------------------------


def test_the_socket_factory_makes_tracked_mimic_sockets(context: zmq.Context[Any], endpoints: EndpointFactory) -> None:
    endpoint = endpoints.tcp()
    with SocketFactory(context) as sockets:
        server = sockets(zmq.REP, bind=endpoint, name="server", timeout=2)
        client = sockets(zmq.REQ, connect=endpoint, name="client", sndhwm=7)
        assert isinstance(client, TestSocket)
        assert (server.name, server.timeout, server.bound) == ("server", 2.0, [endpoint])
        assert (client.name, client.timeout, client.connected, client.sndhwm) == ("client", None, [endpoint], 7)
        assert client.context is context
        client.send_json({"n": 1})
        server.send_json(server.recv_json())
        assert client.recv_json() == {"n": 1}
        assert sockets.sockets == [server, client]
    assert server.closed
    assert client.closed
    assert sockets.sockets == []
    terminate_context(context, timeout=5)


def test_the_socket_factory_closes_with_linger_0(context: zmq.Context[Any], endpoints: EndpointFactory) -> None:
    sockets = SocketFactory(context)
    pusher = sockets(zmq.PUSH, connect=endpoints.tcp(), immediate=0)  # queue for a peer that never comes
    pusher.linger = -1
    pusher.send(b"never delivered", zmq.NOBLOCK)
    sockets.close()
    assert pusher.closed
    terminate_context(context, timeout=2)  # term() would block forever had LINGER -1 stayed with the message
    assert context.closed


def test_the_socket_factory_closes_its_sockets_when_the_block_fails(context: zmq.Context[Any]) -> None:
    made: list[TestSocket] = []

    def failing_block() -> None:
        with SocketFactory(context) as sockets:
            made.append(sockets(zmq.PAIR))
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_block()
    assert made[0].closed


def test_the_socket_factory_forgets_sockets_closed_by_hand(context: zmq.Context[Any]) -> None:
    with SocketFactory(context) as sockets:
        for _ in range(10):
            sockets(zmq.PAIR).close()
        kept = sockets(zmq.PAIR)
        assert sockets.sockets == [kept]
        assert repr(sockets) == "<SocketFactory 1 sockets>"


def test_a_failed_bind_leaves_nothing_tracked(context: zmq.Context[Any]) -> None:
    with SocketFactory(context) as sockets:
        with pytest.raises(ValueError, match="has no transport"):
            sockets(zmq.PAIR, bind="nowhere")
        assert sockets.sockets == []
