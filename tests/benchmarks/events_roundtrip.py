"""A keyword event vs a tuple event: what ``yield recv(sock)`` costs next to ``yield ("recv", sock)``.

``python tests/benchmarks/events_roundtrip.py [ROUNDS] [TRIPS]``: a ProcessTest conversation sends a
JSON body to an echo thread over inproc (libzmq's own, nothing hides the harness) and receives it back,
once with the tuple forms, once with the keyword helpers, interleaved one round trip at a time; each
round reports the median of each, and the result is the median over rounds. An ``async def``
conversation on asyncio mimics is measured the same way. Printed, never asserted.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import zmq

from zmqtest import ProcessTest, make_sock, recv, send
from zmqtest.asyncio import AsyncTestContext


def echo(context: zmq.Context[Any], endpoint: str, ready: threading.Event) -> None:
    sock: zmq.Socket[Any] = zmq.Socket(context, zmq.DEALER)  # a blocking one, on an asyncio context too
    sock.linger = 0
    sock.bind(endpoint)
    ready.set()
    try:
        while True:
            sock.send_multipart(sock.recv_multipart())
    except zmq.ContextTerminated:
        sock.close()


class Bench(ProcessTest):
    def conversation(
        self, sock: Any, rounds: int, trips: int, times: dict[str, list[float]]
    ) -> Generator[Any, Any, None]:
        perf = time.perf_counter
        for _ in range(rounds):
            round_times: dict[str, list[float]] = {"tuple": [], "keyword": []}
            for _ in range(trips):
                began = perf()
                yield ("send", sock, [], ["ping", 1])
                yield ("recv", sock)
                middle = perf()
                yield send(sock, [], ["ping", 1])
                yield recv(sock)
                round_times["tuple"].append(middle - began)
                round_times["keyword"].append(perf() - middle)
            for kind, samples in round_times.items():
                times[kind].append(statistics.median(samples) * 1e6)

    async def async_conversation(
        self, sock: Any, rounds: int, trips: int, times: list[float]
    ) -> AsyncGenerator[Any, Any]:
        perf = time.perf_counter
        for _ in range(rounds):
            samples = []
            for _ in range(trips):
                began = perf()
                yield send(sock, [], ["ping", 1])
                yield recv(sock)
                samples.append(perf() - began)
            times.append(statistics.median(samples) * 1e6)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    trips = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    context = zmq.Context()
    ready = threading.Event()
    thread = threading.Thread(target=echo, args=(context, "inproc://echo", ready), daemon=True)
    thread.start()
    ready.wait(5)
    sock = make_sock(context, zmq.DEALER, connect="inproc://echo", timeout=5)
    times: dict[str, list[float]] = {"tuple": [], "keyword": []}
    Bench().run(Bench.conversation, Bench(), sock, rounds, trips, times)
    sock.close()
    context.term()
    tuple_us, keyword_us = statistics.median(times["tuple"]), statistics.median(times["keyword"])
    print(
        f"round trip, tuple events {tuple_us:.1f} us, keyword events {keyword_us:.1f} us ({keyword_us / tuple_us:.3f}x)"
    )
    async_context = AsyncTestContext()
    ready = threading.Event()
    thread = threading.Thread(target=echo, args=(async_context, "inproc://echo-async", ready), daemon=True)
    thread.start()
    ready.wait(5)
    async_sock = make_sock(async_context, zmq.DEALER, connect="inproc://echo-async", timeout=5)
    async_times: list[float] = []
    Bench().run(Bench.async_conversation, Bench(), async_sock, rounds, trips, async_times)
    async_sock.close()
    async_context.term()
    print(f"round trip, keyword events in an async conversation {statistics.median(async_times):.1f} us")


if __name__ == "__main__":
    main()
