"""A server that chatters, for zmqtest's tests of keyword events (tests/test_events.py).

A ROUTER bound to a given endpoint; bodies are JSON, one frame after the peer's identity:

- ``["ping", n, k]``: sends ``k`` heartbeats (``["heartbeat"]``), then ``["pong", n]``, then ``k`` more
  heartbeats: the reply arrives between chatter, as from a real broker.
- ``["quiet"]``: nothing comes back.
- ``["exit", code]``: ends at once with that exit code.

With ``interval`` (seconds) it also sends a heartbeat to every peer it has heard from whenever it has
been idle that long, as a broker's heartbeat timer does. Logs ``answered n`` for each ping, forwarded to
the test's log collector.
"""

from __future__ import annotations

import multiprocessing
import os

HEARTBEAT = b'["heartbeat"]'


class Chatter(multiprocessing.Process):
    """The server as a Process: :func:`serve` on ``endpoint``."""

    def __init__(self, endpoint: str, interval: float | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.interval = interval

    def run(self) -> None:
        serve(self.endpoint, self.interval)


def serve(endpoint: str, interval: float | None) -> None:
    import json
    import logging

    import zmq

    import zmqtest.logs

    zmqtest.logs.forward()
    log = logging.getLogger("chatter")
    log.setLevel(logging.INFO)
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind(endpoint)
    peers: set[bytes] = set()
    timeout = -1 if interval is None else int(interval * 1000)
    try:
        while True:
            if not sock.poll(timeout):
                for peer in peers:
                    sock.send_multipart([peer, HEARTBEAT])
                continue
            peer, body = sock.recv_multipart()
            peers.add(peer)
            request = json.loads(body)
            if request[0] == "ping":
                _, n, beats = request
                for _ in range(beats):
                    sock.send_multipart([peer, HEARTBEAT])
                sock.send_multipart([peer, json.dumps(["pong", n]).encode()])
                log.info("answered %s", n)
                for _ in range(beats):
                    sock.send_multipart([peer, HEARTBEAT])
            elif request[0] == "exit":
                os._exit(request[1])
    finally:
        sock.close()
        context.term()
