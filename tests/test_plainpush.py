"""The log forwarder's PUSH peer without libzmq: real PULL sockets on loopback must not tell it from libzmq's PUSH."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from zmqtest import zmtp
from zmqtest.logcollector import LogCollector
from zmqtest.plainpush import GREETING, READY, PlainPush, address, frame

DEADLINE = 10.0


@pytest.fixture
def pull(zmq_context: zmq.Context[Any]) -> Iterator[zmq.Socket[Any]]:
    sock = zmq_context.socket(zmq.PULL)
    sock.rcvtimeo = int(DEADLINE * 1000)
    yield sock
    sock.close(linger=0)


def test_the_bytes_are_what_zmqtests_zmtp_encoder_writes() -> None:
    """One description of the wire (zmqtest.zmtp, the tap's), copied here so that a child need not import it."""
    assert zmtp.greeting_bytes("NULL", minor=0) == GREETING
    assert zmtp.command_bytes("READY", zmtp.properties_bytes({"Socket-Type": b"PUSH"})) == READY
    for size in (0, 1, 255, 256, 70_000):
        assert frame(b"x" * size) == zmtp.encode_frames([b"x" * size])


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_a_pull_socket_receives_every_message_in_order(pull: zmq.Socket[Any], transport: str, tmp_path: Path) -> None:
    if transport == "tcp":
        endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    else:
        endpoint = f"ipc://{tmp_path}/pull"
        pull.bind(endpoint)
    push = PlainPush(endpoint, queued=10)
    messages = [b"first", b"", b"x" * 300, b"y" * 100_000]
    for message in messages:
        assert push.send(message)
    assert [pull.recv() for _ in messages] == messages
    push.close(DEADLINE)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abstract namespace is Linux's")
def test_an_abstract_ipc_endpoint_is_reached_as_libzmq_names_it(pull: zmq.Socket[Any]) -> None:
    endpoint = f"ipc://@zmqtest-plainpush-{os.getpid()}-{threading.get_ident()}"
    pull.bind(endpoint)
    push = PlainPush(endpoint, queued=10)
    assert push.send(b"abstract")
    assert pull.recv() == b"abstract"
    push.close(DEADLINE)


def test_what_was_sent_before_close_arrives_after_it(pull: zmq.Socket[Any]) -> None:
    """Once the kernel has taken it, a message arrives whatever the sender does next (close, exit)."""
    endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    push = PlainPush(endpoint, queued=10_000)
    for number in range(2_000):
        assert push.send(b"%d" % number)
    push.close(DEADLINE)
    assert [pull.recv() for _ in range(2_000)] == [b"%d" % number for number in range(2_000)]


def test_a_collector_that_binds_later_gets_what_waited(pull: zmq.Socket[Any], tmp_path: Path) -> None:
    """As libzmq's PUSH would: refused connections are tried again, the messages wait (up to ``queued``)."""
    endpoint = f"ipc://{tmp_path}/later"
    push = PlainPush(endpoint, queued=3)
    assert [push.send(b"%d" % number) for number in range(5)] == [True, True, True, False, False]
    pull.bind(endpoint)
    push.close(DEADLINE)  # tries again until they are sent
    assert [pull.recv() for _ in range(3)] == [b"0", b"1", b"2"]


def test_a_peer_that_does_not_speak_zmtp_makes_it_give_up_with_the_reason() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b" " * 64)
                connection.recv(1024)

        thread = threading.Thread(target=answer)
        thread.start()
        push = PlainPush(f"tcp://127.0.0.1:{port}", queued=10)
        assert not push.send(b"never")
        thread.join(DEADLINE)
    assert push.gave_up is not None
    assert "does not speak ZMTP 3" in push.gave_up
    assert "HTTP/1.1" in push.gave_up
    push.close(0)


def test_a_curve_collector_is_not_a_peer_it_can_reach(zmq_context: zmq.Context[Any]) -> None:
    """libzmq ends the connection at the greeting: the message waits for a collector that will take it."""
    server = zmq_context.socket(zmq.PULL)
    _public, secret = zmq.curve_keypair()
    server.curve_server = True
    server.curve_secretkey = secret
    port = server.bind_to_random_port("tcp://127.0.0.1")
    push = PlainPush(f"tcp://127.0.0.1:{port}", queued=10)
    push.send(b"secret")
    assert server.poll(100) == 0
    push.close(0)
    server.close(linger=0)


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("inproc://x", ValueError),
        ("tcp://127.0.0.1", ValueError),
        ("ipc://", ValueError),
        ("tcp://no such host:1", OSError),
    ],
)
def test_an_endpoint_it_cannot_connect_to_is_refused_by_name(endpoint: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"tcp://|ipc://|inproc://"):
        address(endpoint)


def test_a_record_logged_just_before_a_sigkill_still_arrives(tmp_path: Path) -> None:
    """In the kernel once logged: nothing waits in the process for a flush that a SIGKILL would skip."""
    code = (
        "import logging, os, signal\n"
        "from zmqtest.logs import forward\n"
        "forward(level='INFO')\n"
        "logging.getLogger('app').info('last words')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    with LogCollector() as collector:
        done = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, **collector.environ}, timeout=60, check=False
        )
        assert done.returncode == -signal.SIGKILL
        assert collector.wait_for("last words", timeout=DEADLINE).logger == "app"
