"""A subscriber and a publisher under test, for the PUB/SUB barrier proofs (tests/test_barriers.py).

Both are steered over a control socket (the test's PUSH, the process's PULL), so that
one process serves a thousand fresh connections in a few seconds:

- :class:`Subscriber`: ``[b"connect", endpoint, topic]`` makes a fresh SUB to
  ``endpoint`` subscribed to ``topic``; every message it receives is forwarded as it
  is to the test's PULL (``reports``).
- :class:`Publisher`: binds a PUB to a free port and prints ``publishing on
  ENDPOINT``; ``[b"publish", *frames]`` publishes ``frames``. With ``heartbeat``
  (seconds) it also publishes ``b"heartbeat"`` whenever it has been idle that long.

Both obey ``[b"stop"]`` (return) and ``[b"exit", code]`` (die at once with that code).
"""

from __future__ import annotations

import multiprocessing
import os


class Subscriber(multiprocessing.Process):
    """A process whose SUB connects where it is told and reports what it receives."""

    def __init__(self, control: str, reports: str) -> None:
        super().__init__()
        self.control = control
        self.reports = reports

    def run(self) -> None:
        import zmq

        with zmq.Context() as context:
            control = context.socket(zmq.PULL)
            reports = context.socket(zmq.PUSH)
            for sock, endpoint in ((control, self.control), (reports, self.reports)):
                sock.linger = 0
                sock.connect(endpoint)
            poller = zmq.Poller()
            poller.register(control, zmq.POLLIN)
            sub: zmq.Socket[bytes] | None = None
            while True:
                for sock, _ in poller.poll():
                    if sock is not control:
                        reports.send_multipart(sock.recv_multipart())
                        continue
                    command, *args = control.recv_multipart()
                    if command == b"stop":
                        context.destroy(linger=0)
                        return
                    if command == b"exit":
                        os._exit(int(args[0]))
                    if command == b"connect":
                        if sub is not None:
                            poller.unregister(sub)
                            sub.close(linger=0)
                        sub = context.socket(zmq.SUB)
                        sub.linger = 0
                        sub.setsockopt(zmq.SUBSCRIBE, args[1])
                        sub.connect(args[0].decode())
                        poller.register(sub, zmq.POLLIN)


class Publisher(multiprocessing.Process):
    """A process whose PUB publishes what it is told to."""

    def __init__(self, control: str, heartbeat: float | None = None) -> None:
        super().__init__()
        self.control = control
        self.heartbeat = heartbeat

    def run(self) -> None:
        import zmq

        with zmq.Context() as context:
            control = context.socket(zmq.PULL)
            control.linger = 0
            control.connect(self.control)
            pub = context.socket(zmq.PUB)
            pub.linger = 0
            pub.bind("tcp://127.0.0.1:*")
            print(f"publishing on {pub.last_endpoint.decode()}", flush=True)
            idle = None if self.heartbeat is None else round(self.heartbeat * 1000)
            while True:
                if not control.poll(idle):
                    pub.send(b"heartbeat")
                    continue
                command, *args = control.recv_multipart()
                if command == b"stop":
                    context.destroy(linger=0)
                    return
                if command == b"exit":
                    os._exit(int(args[0]))
                if command == b"publish":
                    pub.send_multipart(args)
