"""System tests: the whole program, run as its users run it, checked against golden files.

Two kinds, both with the ``zmq_golden`` fixture (which marks each test ``system``):

- **The command line's output**: ``zmq_golden.run([...])`` runs ``python -m pingpong ...``
  with a deadline, and ``zmq_golden.check(result)`` compares its exit status, stdout and
  stderr with a file in ``tests/golden/`` (by default the test's name). Ports, pids,
  timestamps, temporary and ipc paths are normalised first (``<PORT>``, ``<IPC>`` ...).
- **A mimic client talking to the real, whole program**: ``serve`` started with
  ``zmq_process_factory``, a mimic REQ socket as its client, and the client's view of
  the conversation (each request with the reply it got) compared with a golden file.

When an output changes on purpose: ``python -m pytest --zmqtest-update-golden``, then
review ``git diff tests/golden``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq
from pingpong.pong import KILL

from zmqtest import EndpointFactory, ManagedProcess, ProcessManager, SocketFactory
from zmqtest.golden import GoldenFiles, RunResult

APP_DIR = Path(__file__).resolve().parent.parent
"""Where ``python -m pingpong`` runs from."""
PINGPONG = (sys.executable, "-m", "pingpong")
SERVE_READY = r"listening on (?P<endpoint>\S+)"
"""The line ``serve`` prints once it serves; its endpoint becomes the process's ``.endpoint``."""
EXIT_TIMEOUT = 5.0
"""Seconds a server may take to end once told to."""

Serve = Callable[..., ManagedProcess]


def pingpong(zmq_golden: GoldenFiles, *args: str) -> RunResult:
    """``python -m pingpong ARGS`` in the app's directory, killed if still running after 30 s."""
    return zmq_golden.run([*PINGPONG, *args], cwd=APP_DIR)


@pytest.fixture
def serve(zmq_process_factory: ProcessManager) -> Serve:
    """``serve(bind)``: ``python -m pingpong serve --bind BIND``, ready once it says where it listens.

    It may end by itself with exit code 0 (after the kill command or a SIGINT);
    otherwise it is stopped after the test.
    """

    def start(bind: str = "tcp://127.0.0.1:*") -> ManagedProcess:
        argv = [*PINGPONG, "serve", "--bind", bind]
        return zmq_process_factory(argv, cwd=APP_DIR, ready=SERVE_READY, name="serve", expect_exit=0)

    return start


# --- the command line against golden files ---------------------------------------------------------


@pytest.mark.parametrize("argv", [["demo", "--count", "3"], []], ids=["demo-count-3", "no-command"])
def test_demo_output_matches_golden(zmq_golden: GoldenFiles, argv: list[str]) -> None:
    zmq_golden.check(pingpong(zmq_golden, *argv), "demo_count3.txt")  # both runs must print the same


def test_serve_and_ping_as_two_command_lines_then_sigint(zmq_golden: GoldenFiles, serve: Serve) -> None:
    server = serve()

    zmq_golden.check(pingpong(zmq_golden, "ping", "--connect", server.endpoint or "", "--count", "2"))

    os.kill(server.pid, signal.SIGINT)  # one SIGINT: the server routes it into its poll loop, so it is never lost
    assert server.wait(EXIT_TIMEOUT) == 0
    zmq_golden.check(server.stdout_path.read_text(), "serve_stdout_sigint.txt")  # the port reads <PORT>


def test_kill_command_stops_the_server(
    zmq_golden: GoldenFiles, serve: Serve, zmq_endpoint_factory: EndpointFactory
) -> None:
    server = serve(zmq_endpoint_factory.ipc("pong"))

    zmq_golden.check(pingpong(zmq_golden, "kill", "--connect", server.endpoint or ""))

    assert server.wait(EXIT_TIMEOUT) == 0
    zmq_golden.check(server.stdout_path.read_text(), "serve_stdout_ipc_kill.txt")  # the ipc path reads <IPC>
    assert os.listdir(zmq_endpoint_factory.ipc_dir or "") == [], "the server left its ipc socket file"


def test_ping_without_a_server_gives_up_within_its_timeout(
    zmq_golden: GoldenFiles, zmq_endpoint_factory: EndpointFactory
) -> None:
    nobody = zmq_endpoint_factory.ipc("nobody")
    zmq_golden.check(pingpong(zmq_golden, "ping", "--connect", nobody, "--timeout", "0.2"))


def test_serve_on_a_bad_endpoint_says_so(zmq_golden: GoldenFiles) -> None:
    # libzmq's wording of the error is not ours to pin down: a substitution of our own turns it into a token
    zmq_golden.substitutions.append((r"(cannot serve on \S+): .+", r"\1: <ZMQ ERROR>"))
    zmq_golden.check(pingpong(zmq_golden, "serve", "--bind", "tcp://no-such-host-here:*"))


# --- a mimic client talking to the real, whole program ---------------------------------------------

REQUESTS: list[Any] = [["ping", 1], ["ping", 2], ["ping", "three"], ["pang", 4], {"ping": 5}, ["ping", 6]]


def test_a_mimic_client_sees_these_replies(
    zmq_golden: GoldenFiles, serve: Serve, zmq_socket_factory: SocketFactory
) -> None:
    server = serve()
    client = zmq_socket_factory(zmq.REQ, connect=server.endpoint, name="client")

    conversation = []
    for request in REQUESTS:
        client.send_json(request)
        conversation.append({"request": request, "reply": client.recv_json()})  # each wait is bounded (1 s)
    zmq_golden.check(conversation)  # one JSON line per exchange, in golden/<this test's name>.txt

    client.send_json([KILL, None])
    assert server.wait(EXIT_TIMEOUT) == 0
    zmq_golden.check(server.stdout_path.read_text(), "serve_stdout_kill.txt")
