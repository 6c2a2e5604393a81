"""The peer watch of a mimic: what a timeout message says of the socket's peers, and what the watch costs."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq

from zmqtest import SocketTimeout, make_sock
from zmqtest.peers import PeerWatch

if TYPE_CHECKING:
    from conftest import Sockets

WAIT_MS = 5000
AGO = r"[0-9.e-]+ s ago"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_mimic_watches_its_peers_from_its_first_bind_or_connect(socks: Sockets) -> None:
    sock = socks(zmq.PULL)
    assert "_peers" in sock.__dict__
    assert sock.__dict__["_peers"] is None  # nothing made before it is needed
    sock.bind(("", 0))
    assert isinstance(sock.peers, PeerWatch)
    assert sock.peers.since == {sock.endpoint: ("bound", sock.peers.since[sock.endpoint][1])}


def test_a_peer_that_went_away_is_named(socks: Sockets, ctx: zmq.Context[Any]) -> None:
    pull = socks(zmq.PULL, bind=("", 0), name="sink", timeout=0.02)
    peer = ctx.socket(zmq.PUSH)
    peer.connect(pull.endpoint)
    peer.send(b"hello")
    assert pull.recv() == b"hello"
    peer.close(linger=0)
    with pytest.raises(SocketTimeout) as excinfo:  # noqa: PT012  (until libzmq has seen the peer go)
        while True:
            pull.recv()
    assert pull.peers is not None
    if pull.peers.any_connected():  # the disconnect may still be on its way: wait for its event, bounded
        assert pull.peers.pair.poll(WAIT_MS)
        with pytest.raises(SocketTimeout) as excinfo:
            pull.recv()
    assert str(excinfo.value) == (
        f"recv on PULL socket 'sink' bound to {pull.endpoint}: no message within 0.02 s; "
        f"the peer at {pull.endpoint} has disconnected and none has connected since"
    )


def test_a_connecting_mimic_tells_each_endpoint_apart(socks: Sockets, ipc_dir: Path) -> None:
    there = socks(zmq.ROUTER, bind=("", 0))
    nobody = f"ipc://{ipc_dir}/nobody"
    dealer = socks(zmq.DEALER, connect=there.endpoint, name="fan", timeout=0.02)
    dealer.connect(nobody)
    assert dealer.peers is not None
    while not dealer.peers.any_connected():  # bounded: each look waits for the next event
        assert dealer.peers.pair.poll(WAIT_MS), "no connection to the ROUTER"
    with pytest.raises(SocketTimeout) as excinfo:
        dealer.recv()
    assert re.fullmatch(
        f"recv on DEALER socket 'fan' connected to {re.escape(there.endpoint)}, {re.escape(nobody)}: no message "
        f"within 0.02 s; a peer is connected at {re.escape(there.endpoint)}; no peer has connected at "
        f"{re.escape(nobody)} since the socket connected to it {AGO} "
        r"\(what is sent to it waits in the socket's queue until one does\)",
        str(excinfo.value),
    ), str(excinfo.value)


def test_creating_and_closing_many_mimics_in_one_context_leaks_nothing(ctx: zmq.Context[Any]) -> None:
    """libzmq keeps a monitored socket whose monitor outlived its reader until the context ends: not ours."""
    pull = make_sock(ctx, zmq.PULL, bind=("", 0))
    try:
        before = open_fds()
        for _ in range(300):
            make_sock(ctx, zmq.PUSH, connect=pull.endpoint).close()
        leaked = []
        for _ in range(50):  # libzmq reaps closed sockets in its own thread: a few ms
            leaked.append(open_fds() - before)
            if leaked[-1] < 30:
                break
            pull.poll(20)
        assert leaked[-1] < 30, f"open file descriptors after 300 mimics: +{leaked}"
    finally:
        pull.close()


def test_closing_the_peer_watch_reader_first_never_blocks(ctx: zmq.Context[Any]) -> None:
    """ctx.destroy() may close the watch's PAIR before the mimic: closing the mimic must not block on its monitor."""
    pull = make_sock(ctx, zmq.PULL, bind=("", 0))
    assert pull.peers is not None
    pull.peers.pair.close(linger=0)
    pull.close()  # would hang if it stopped its monitor with nobody to tell
    assert pull.closed


def test_a_disabled_monitor_says_so(socks: Sockets) -> None:
    pull = socks(zmq.PULL, bind=("", 0), timeout=0.01)
    pull.disable_monitor()
    assert pull.peers is not None
    assert pull.peers.stopped == "the test stopped the socket's monitor"
    with pytest.raises(SocketTimeout) as excinfo:
        pull.recv()
    assert str(excinfo.value).endswith("(the test stopped the socket's monitor: its connections are not known)")


def test_a_rejected_plain_handshake_is_named_in_the_timeout(socks: Sockets) -> None:
    server = socks(zmq.PULL, bind=("", 0), plain_server=True, name="server", timeout=5)
    client = socks(zmq.PUSH, connect=server.endpoint, name="client", timeout=0.05)  # speaks NULL, not PLAIN
    assert client.peers is not None
    assert client.peers.pair.poll(WAIT_MS)
    with pytest.raises(SocketTimeout) as excinfo:
        server.recv(timeout=0.05)
    assert re.fullmatch(
        f"recv on PULL socket 'server' bound to {re.escape(server.endpoint)}: no message within 0.05 s; "
        f"the security handshake with {re.escape(server.endpoint)} failed: HANDSHAKE_FAILED_PROTOCOL "
        r"\(ZMTP_MECHANISM_MISMATCH\): the two sides use different security mechanisms \(NULL, PLAIN or CURVE\)",
        str(excinfo.value),
    ), str(excinfo.value)


def test_in_a_fork_of_the_test_a_mimic_closes_without_touching_its_watch(ctx: zmq.Context[Any]) -> None:
    """A test that forks itself: the fork's close (or garbage collection) of a mimic must return at once."""
    import select
    import warnings

    pull = make_sock(ctx, zmq.PULL, bind=("", 0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with zmq's threads running
            pid = os.fork()
        if pid == 0:  # the fork: close the parent's mimic, as its teardown or the garbage collector would
            try:
                pull.close()
            finally:
                os._exit(0)
        fd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                os.kill(pid, 9)
            os.waitpid(pid, 0)
            assert ready, "the fork's close of a mimic did not return within 30 s"
        finally:
            os.close(fd)
        assert pull.peers is not None
        assert pull.peers.stopped is None  # the parent's watch goes on
    finally:
        pull.close()


def test_a_connection_closed_before_its_handshake_is_not_called_a_security_failure(socks: Sockets) -> None:
    """No security: a peer that accepts and drops the connection (it ended, or it is no zmq socket) says just that."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    dealer = socks(zmq.DEALER, connect=f"tcp://127.0.0.1:{port}", name="client", timeout=0.05)
    try:
        accepted, _ = listener.accept()  # bounded: the listener's timeout
        accepted.close()
        watch = dealer.peers
        assert watch is not None
        endpoint = f"tcp://127.0.0.1:{port}"
        while watch.state(endpoint)[2] is None:  # until the failed handshake's event is read (bounded)
            assert watch.pair.poll(WAIT_MS), "no failed handshake seen"
            watch.read()
        with pytest.raises(SocketTimeout) as excinfo:
            dealer.recv()
    finally:
        listener.close()
    assert "security" not in str(excinfo.value)
    assert re.search(
        rf"the connection at tcp://127\.0\.0\.1:{port} was closed before its handshake completed \(E[A-Z]+\): "
        "the peer ended or dropped it, or it is not a ZeroMQ socket",
        str(excinfo.value),
    ), str(excinfo.value)
