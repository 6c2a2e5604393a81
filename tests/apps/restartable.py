"""A server to restart, for zmqtest's tests: a ROUTER on a given endpoint that answers each message with its pid.

Each reply is the request with `` from <pid>`` appended to its last frame, so a test
sees which run answered. Works for REQ and DEALER peers alike. The same as a
``multiprocessing.Process`` (:class:`Answer`) and as a command line
(``python restartable.py ENDPOINT``). Prints ``listening on ENDPOINT`` once bound.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def answer(endpoint: str) -> None:
    """Bind a ROUTER to ``endpoint`` and answer every message until SIGINT."""
    import zmq

    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind(endpoint)
    print(f"listening on {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
    mark = f" from {os.getpid()}".encode()
    try:
        while True:
            *head, last = sock.recv_multipart()
            sock.send_multipart([*head, last + mark])
    finally:
        sock.close()
        context.term()


class Answer(multiprocessing.Process):
    """:func:`answer` as a Process."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint

    def run(self) -> None:
        answer(self.endpoint)


if __name__ == "__main__":
    answer(sys.argv[1])
