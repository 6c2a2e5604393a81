"""P1's bare echo: a REP that sends back what it receives, and nothing else.

The process under test of P1's main row: it does no work of its own (no decoding, no
logging), so what a round trip costs is the transport and the test's side, and the harness's
share of it shows. A module of its own, importable by a forkserver or spawn child.
"""

from __future__ import annotations

import multiprocessing
import threading

import zmq


class EchoProc(multiprocessing.Process):
    """``EchoProc("tcp://127.0.0.1:5555")``: bind a REP there and echo every message until stopped (SIGINT)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(name="EchoProc", daemon=True)
        self.endpoint = endpoint

    def run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        try:
            while True:
                sock.send_multipart(sock.recv_multipart(copy=False), copy=False)
        except KeyboardInterrupt:
            pass
        finally:
            sock.close(linger=0)
            context.term()


def inproc_echo(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> threading.Thread:
    """Echo on ``endpoint`` (inproc) in a thread of this process, in libzmq alone: a ROUTER proxied to itself.

    ``zmq.proxy`` runs without the GIL, so the echo costs the test's thread no Python time. It
    ends (and closes its socket) when ``context`` terminates.
    """
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)

    def serve() -> None:
        try:
            zmq.proxy(router, router)
        except zmq.ContextTerminated:
            pass
        finally:
            router.close(linger=0)

    thread = threading.Thread(target=serve, name="inproc echo", daemon=True)
    thread.start()
    return thread
