"""Process tests written with zmqtest's fixtures: the same PongProc, no setup or teardown code.

``zmq_process_factory`` starts the process and returns once it is ready; it stops
the process after the test (here with the kill message, else SIGINT, SIGTERM,
SIGKILL) and fails the test if it ended by itself when it should not have.
``zmq_socket_factory`` makes the mimic sockets, ``zmq_endpoint`` and
``zmq_endpoint_factory`` the endpoints. Nothing is left behind, whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import zmq
from pingpong.ping import send_kill
from pingpong.pong import KILL, PongProc

from zmqtest import (
    Conversation,
    EndpointFactory,
    ManagedProcess,
    ProcessExited,
    ProcessManager,
    ProcessTest,
    SocketFactory,
    TestSocket,
    wait_for_message,
)

APP_DIR = Path(__file__).resolve().parent.parent
"""Where ``python -m pingpong`` runs from."""
EXIT_TIMEOUT = 5.0
"""Seconds a process may take to end once told to."""


class Pong(NamedTuple):
    proc: ManagedProcess
    client: TestSocket


@pytest.fixture
def pong(zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str) -> Pong:
    """PongProc on a tcp port, ready once its client (a REQ mimic) is connected; stopped by the kill message."""
    client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
    # The kill message goes out on a socket of its own: a test that failed may have left the client waiting for a
    # reply, and a REQ socket in that state cannot send.
    proc = zmq_process_factory(PongProc(zmq_endpoint), ready=client, stop=lambda: send_kill(zmq_endpoint))
    return Pong(proc, client)


@pytest.mark.process
class TestPong(ProcessTest):
    @pytest.mark.parametrize(
        "method",
        [
            pytest.param(method, marks=pytest.mark.zmqtest(start_method=method))
            for method in ("fork", "forkserver", "spawn")
        ],
    )
    def test_ping(self, pong: Pong, method: str) -> Conversation:
        assert pong.proc.start_method == method
        yield ("send", pong.client, [], ["ping", 1])
        reply = yield ("recv", pong.client)
        assert reply == [["pong", 1]]

    def test_unknown_command_gets_an_error(self, pong: Pong) -> Conversation:
        yield ("send", pong.client, [], ["pingg", 1])
        reply = yield ("recv", pong.client)
        assert reply == [["error", "unknown command 'pingg' (known: ping, plzdiekthxbye)"]]

    def test_kill_message_ends_it_with_exit_code_0(
        self,
        zmq_process_factory: ProcessManager,
        zmq_socket_factory: SocketFactory,
        zmq_endpoint_factory: EndpointFactory,
    ) -> Conversation:
        endpoint = zmq_endpoint_factory.ipc("pong")
        client = zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")
        proc = zmq_process_factory(PongProc(endpoint), ready=client, expect_exit=0)
        yield ("send", client, [], [KILL, None])
        assert proc.wait(EXIT_TIMEOUT) == 0
        assert not os.path.exists(endpoint.removeprefix("ipc://")), "the ipc socket file is left behind"

    def test_a_death_mid_conversation_fails_the_yield_that_waits(self, pong: Pong) -> Conversation:
        yield ("sigkill", pong.proc)
        yield ("send", pong.client, [], ["ping", 2])
        with pytest.raises(ProcessExited, match=r"PongProc \(pid \d+\) killed by SIGKILL while"):
            yield ("recv", pong.client)

    def test_pipelined_pings_over_a_dealer(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        dealer = zmq_socket_factory(zmq.DEALER, connect=zmq_endpoint, name="dealer")
        zmq_process_factory(PongProc(zmq_endpoint), ready=dealer)
        for number in (1, 2, 3):
            yield ("send", dealer, [b""], ["ping", number])  # the empty frame a REQ socket would add
        last = wait_for_message(dealer, lambda body: body[1] == 3, decode=lambda frames: json.loads(frames[-1]))
        assert last == ["pong", 3]

    def test_each_request_is_logged(self, pong: Pong) -> Conversation:
        yield ("send", pong.client, [], ["ping", 7])
        assert (yield ("recv", pong.client)) == [["pong", 7]]
        # PongProc's logging records reach the test (zmq_process_factory hands it the endpoint).
        record = yield ("log", '["ping", 7] -> ["pong",7]')
        assert (record.process, record.logger, record.level) == ("PongProc", "pingpong.pong", "INFO")
        listening = yield ("log", "listening on", "INFO", "pingpong")  # logged before the test began: it counts
        assert listening.message == f"listening on {pong.client.endpoint}"

    # An action: ``yield ("sigkill", proc)`` calls it.
    def sigkill(self, proc: ManagedProcess) -> None:
        os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.process
def test_serve_command_line(zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory) -> None:
    serve = zmq_process_factory(
        [sys.executable, "-m", "pingpong", "serve"], cwd=APP_DIR, ready=r"listening on (?P<endpoint>\S+)"
    )
    assert serve.endpoint is not None
    assert serve.endpoint.startswith("tcp://127.0.0.1:")
    client = zmq_socket_factory(zmq.REQ, connect=serve.endpoint, name="client")
    client.send_json(["ping", 7])
    assert client.recv_json() == ["pong", 7]
    assert serve.stop() == 0  # SIGINT: it stops cleanly
    assert "stopped (SIGINT)" in serve.tail()
