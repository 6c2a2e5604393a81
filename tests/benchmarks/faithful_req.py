"""What a faithful REQ mimic costs: a round trip, a timed-out receive (then the next request), a mimic's birth.

Run it with the zmqtest to measure on the path first (``PYTHONPATH=/path/to/other/zmqtest``
measures another release the same way), e.g. side by side with the previous release::

    python tests/benchmarks/faithful_req.py
    git worktree add /tmp/previous HEAD~3 && PYTHONPATH=/tmp/previous python tests/benchmarks/faithful_req.py

The peer is a bare echo REP in a child process on loopback tcp. A plain pyzmq REQ and the
mimic take turns, one operation each; each figure is the median over rounds of the
medians of a round, in microseconds, and the ratio the median of the rounds' ratios (with
its p10-p90 spread) (for a timed-out receive, the plain way is the Lazy Pirate's: close the
socket, open a new one, connect it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import zmq

import zmqtest
from zmqtest import SocketTimeout, make_sock

ROUNDS = 15
BLOCK = 200


def echo(endpoint: str, ready: Any) -> None:
    context = zmq.Context()
    rep = context.socket(zmq.REP)
    rep.linger = 0
    rep.bind(endpoint)
    ready.send(rep.last_endpoint.decode())
    while True:
        message = rep.recv_multipart()
        if message == [b"stop"]:
            rep.send(b"bye")
            break
        rep.send_multipart(message)
    rep.close()
    context.term()


def interleaved(raw: Callable[[], None], ours: Callable[[], None], count: int = BLOCK) -> tuple[float, float]:
    """Median microseconds of ``raw`` and of ``ours`` over ``count`` runs each, one of each in turn."""
    raw_times = []
    our_times = []
    clock = time.perf_counter
    for _ in range(count):
        began = clock()
        raw()
        middle = clock()
        ours()
        our_times.append(clock() - middle)
        raw_times.append(middle - began)
    return statistics.median(raw_times) * 1e6, statistics.median(our_times) * 1e6


def main() -> None:
    here, there = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=echo, args=("tcp://127.0.0.1:*", there), daemon=True)
    child.start()
    endpoint = here.recv()
    context = zmq.Context()
    plain = context.socket(zmq.REQ)
    plain.linger = 0
    plain.connect(endpoint)
    mimic = make_sock(context, zmq.REQ, connect=endpoint, timeout=5)

    def plain_round_trip() -> None:
        plain.send(b"ping")
        plain.recv()

    def mimic_round_trip() -> None:
        mimic.send(b"ping")
        mimic.recv()

    pirate = context.socket(zmq.REQ)
    pirate.linger = 0
    pirate.connect(endpoint)
    plain_holder = [pirate]

    def plain_gives_up_then_asks_again() -> None:  # the Lazy Pirate: a new socket for the next request
        sock = plain_holder[0]
        sock.send(b"ping")
        try:
            sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            sock.close(linger=0)
            sock = plain_holder[0] = context.socket(zmq.REQ)
            sock.linger = 0
            sock.connect(endpoint)
        else:
            return

    def mimic_gives_up_then_asks_again() -> None:
        mimic.send(b"ping")
        with contextlib.suppress(SocketTimeout):
            mimic.recv(timeout=0)

    def birth() -> None:
        make_sock(context, zmq.REQ, connect=endpoint).close()

    def plain_birth() -> None:
        sock = context.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(endpoint)
        sock.close()

    rows: dict[str, list[float]] = {}
    pairs = {
        "round trip": (plain_round_trip, mimic_round_trip),
        "timed-out recv + next send": (plain_gives_up_then_asks_again, mimic_gives_up_then_asks_again),
        "make, connect, close a socket": (plain_birth, birth),
    }
    for _ in range(ROUNDS):
        for name, (raw, ours) in pairs.items():
            plain_time, our_time = interleaved(raw, ours)
            rows.setdefault(f"{name}: plain", []).append(plain_time)
            rows.setdefault(f"{name}: mimic", []).append(our_time)
            rows.setdefault(f"{name}: ratio", []).append(our_time / plain_time)
    plain_holder[0].close(linger=0)
    stopper = context.socket(zmq.REQ)
    stopper.connect(endpoint)
    stopper.send(b"stop")
    stopper.recv()
    stopper.close(linger=0)
    mimic.close()
    plain.close()
    context.term()
    child.join(5)
    print(f"zmqtest {zmqtest.__version__} from {zmqtest.__file__}; pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")
    print(f"median over {ROUNDS} rounds of the median of {BLOCK} runs, microseconds")
    for name in pairs:
        raw = statistics.median(rows[f"{name}: plain"])
        ours = statistics.median(rows[f"{name}: mimic"])
        ratios = sorted(rows[f"{name}: ratio"])
        spread = f"{ratios[len(ratios) // 10]:.2f}-{ratios[-1 - len(ratios) // 10]:.2f}"
        print(f"  {name:32} plain {raw:8.1f}   mimic {ours:8.1f}   ratio {statistics.median(ratios):5.2f} ({spread})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
