"""The tap forwards messages of 64 MiB both ways, unchanged, as a direct connection does (minutes, not seconds)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import zmq

from zmqtest.tap import TapFactory

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

MIB = 1 << 20
DEADLINE_MS = 60_000


def test_messages_of_64_mib_go_both_ways_unchanged(zmq_context: zmq.Context[Any], zmq_tap: TapFactory) -> None:
    sockets = {}
    for way in ("direct", "tapped"):
        server = zmq_context.socket(zmq.PAIR)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = zmq_context.socket(zmq.PAIR)
        client.connect(f"tcp://127.0.0.1:{port}" if way == "direct" else zmq_tap(f"tcp://127.0.0.1:{port}").endpoint)
        for sock in (server, client):
            sock.rcvtimeo = sock.sndtimeo = DEADLINE_MS
        sockets[way] = (client, server)
    body = os.urandom(64 * MIB)
    messages = [
        [body],
        [body[start : start + 64 * MIB // 100] for start in range(0, 64 * MIB, 64 * MIB // 100)],  # 100 frames
        [b"", body[: 64 * MIB - 1], b"x"],
    ]
    for number, frames in enumerate(messages):
        for client, server in sockets.values():
            sender, receiver = (client, server) if number % 2 == 0 else (server, client)
            sender.send_multipart(frames, copy=False)
            assert receiver.recv_multipart() == frames, f"message {number}"
