"""An asyncio mimic's round trip vs raw ``zmq.asyncio``: what AsyncTestSocket costs on the event loop.

``python tests/benchmarks/asyncio_roundtrip.py [ROUNDS] [TRIPS]``: over inproc (where nothing hides the
harness) and over tcp loopback, a DEALER sends one frame to an echoing DEALER and awaits it back. Raw
(``zmq.asyncio`` sockets on both sides) and mimic (``AsyncTestSocket`` on the test's side, transcript on)
round trips are interleaved one at a time, so a slow spell of the machine hits both; each round reports
the median of each, and the result is the median over rounds. Printed, never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import zmq
import zmq.asyncio

from zmqtest import make_sock
from zmqtest.asyncio import AsyncTestContext
from zmqtest.transcript import recording


async def echo(sock: zmq.asyncio.Socket) -> None:
    while True:
        await sock.send_multipart(await sock.recv_multipart())


async def measure(transport: str, rounds: int, trips: int) -> tuple[float, float]:
    context = AsyncTestContext()
    endpoints = [f"inproc://bench-{transport}-{n}" if transport == "inproc" else "tcp://127.0.0.1:0" for n in (0, 1)]
    servers, clients = [], []
    for endpoint, mimic in zip(endpoints, (False, True), strict=True):
        server = context.socket(zmq.DEALER)  # pyzmq's own asyncio socket: the echo is not under test
        server.linger = 0
        server.bind(endpoint)
        bound = server.last_endpoint.decode()
        if mimic:
            client = make_sock(context, zmq.DEALER, connect=bound, timeout=5)
        else:
            client = zmq.asyncio.Socket(context, zmq.DEALER)
            client.linger = 0
            client.connect(bound)
        servers.append(server)
        clients.append(client)
    echoes = [asyncio.ensure_future(echo(server)) for server in servers]
    ratios, costs = [], []
    with recording():
        for _ in range(rounds):
            times: list[list[float]] = [[], []]
            for _ in range(trips):
                for index in (0, 1):
                    began = time.perf_counter()
                    await clients[index].send_multipart([b"x" * 64])
                    await clients[index].recv_multipart()
                    times[index].append(time.perf_counter() - began)
            raw, mimic = statistics.median(times[0]), statistics.median(times[1])
            ratios.append(mimic / raw)
            costs.append((mimic - raw) * 1e6)
    for task in echoes:
        task.cancel()
    for sock in [*servers, *clients]:
        sock.close()
    context.term()
    return statistics.median(ratios), statistics.median(costs)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    trips = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    for transport in ("inproc", "tcp"):
        ratio, cost = asyncio.run(measure(transport, rounds, trips))
        print(f"asyncio round trip over {transport}: mimic/raw {ratio:.3f}x, harness {cost:+.1f} us per round trip")


if __name__ == "__main__":
    main()
