"""What the tap costs: latency added per message, and throughput, against a direct connection, side by side.

Variants, each its own pair of sockets on one context, measured in interleaved rounds
(rotating order, so a slow spell of the machine hits all of them):

- ``direct``: the connecting socket connects to the binding one;
- ``floor: C relay``, ``floor: Py thread``, ``floor: Py process``: the cheapest forwarders of
  the tap's shape (:mod:`tap_floor`): what the extra hop costs, with about no work done on it;
- ``tap``: through a :class:`~zmqtest.tap.Tap` recording into a transcript (as under pytest);
- ``tap, no transcript``: through a tap that records nothing (the parser still runs);
- ``tap in a process``: through a :class:`~zmqtest.tapprocess.ProcessTap`, recording.

Latency: REQ/REP round trips of a 100-byte body, one in flight; a message crosses the
tap twice per round trip, so the added latency per message is half the difference of the
round trips. Measured twice: with the test otherwise idle, and while another thread of the
test computes in Python (a thread tap then waits for the GIL at each wake-up). Throughput:
a PUSH streams to a PULL (10,000 messages of 1 KiB, then 100 of 1 MiB); the ratio is the
tapped rate over the direct rate, median over rounds.

Run: ``PYTHONPATH=. python tests/benchmarks/tap.py [--rounds N]``. Prints the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap_floor import Clock, CRelay, ProcessForwarder, ThreadForwarder

from zmqtest.tap import Tap
from zmqtest.tapprocess import ProcessTap
from zmqtest.transcript import Transcript

TIMEOUT_MS = 10_000
COMPUTE = 0.02
"""Seconds the test's thread computes after each send, in the "while the test computes" figure."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Variant:
    """A pair of sockets of each kind (REQ/REP, PUSH/PULL), direct or through what ``hop(upstream port)`` makes."""

    def __init__(
        self, context: zmq.Context[Any], name: str, hop: Callable[[int], Any] | None, clock: Clock | None = None
    ) -> None:
        self.name = name
        self.hops: list[Any] = []
        self.sockets: list[zmq.Socket[Any]] = []
        self.req, self.rep = self._pair(context, zmq.REQ, zmq.REP, hop)
        self.push, self.pull = self._pair(context, zmq.PUSH, zmq.PULL, hop)
        self.clock = clock
        if clock is not None:  # a PUSH to the clock's process, through the hop
            self.to_clock = context.socket(zmq.PUSH)
            self.to_clock.linger = 0
            self.sockets.append(self.to_clock)
            if hop is not None:
                self.hops.append(hop(clock.port))
            self.to_clock.connect(str(self.hops[-1].endpoint) if hop is not None else clock.endpoint)

    def _pair(
        self, context: zmq.Context[Any], connecting: int, binding: int, hop: Callable[[int], Any] | None
    ) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        server, client = context.socket(binding), context.socket(connecting)
        for sock in (server, client):
            sock.linger = 0
            sock.rcvtimeo = sock.sndtimeo = TIMEOUT_MS
            sock.sndhwm = sock.rcvhwm = 100_000
            self.sockets.append(sock)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
        if hop is not None:
            self.hops.append(hop(port))
            endpoint = str(self.hops[-1].endpoint)
        client.connect(endpoint)
        return client, server

    def round_trips(self, count: int) -> list[float]:
        """Seconds per round trip of a 100-byte body, ``count`` times."""
        body = b"x" * 100
        times = []
        for _ in range(count):
            began = time.perf_counter()
            self.req.send(body)
            self.rep.send(self.rep.recv())
            self.req.recv()
            times.append(time.perf_counter() - began)
        return times

    def stream(self, count: int, size: int) -> float:
        """Bytes per second of ``count`` messages of ``size`` bytes from the PUSH to the PULL."""
        body = b"y" * size
        began = time.perf_counter()
        for _ in range(count):
            self.push.send(body, copy=size < 65536)
        for _ in range(count):
            self.pull.recv(copy=False)
        return count * size / (time.perf_counter() - began)

    def crossings_while_computing(self, count: int, arrivals: zmq.Socket[Any]) -> list[float]:
        """Seconds a message takes to reach another process while the test's thread computes in Python (20 ms)."""
        delays = []
        for _ in range(count):
            began = time.perf_counter()
            self.to_clock.send(b"t")
            while time.perf_counter() < began + COMPUTE:
                pass
            delays.append(struct.unpack("d", arrivals.recv())[0] - began)
        return delays

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for hop in self.hops:
            hop.close()


def interleaved(variants: list[Variant], rounds: int, measure: Callable[[Variant], Any]) -> dict[str, list[Any]]:
    """``measure(variant)`` for each variant in each round, the order rotating from round to round."""
    results: dict[str, list[Any]] = {variant.name: [] for variant in variants}
    for number in range(rounds):
        turn = number % len(variants)
        for variant in variants[turn:] + variants[:turn]:
            results[variant.name].append(measure(variant))
    return results


@contextmanager
def busy() -> Iterator[None]:
    """Another thread of the test computes in Python meanwhile (it holds the GIL but for the switch interval)."""
    stop = threading.Event()

    def compute() -> None:
        while not stop.is_set():
            total = 0
            for number in range(1000):
                total += number

    thread = threading.Thread(target=compute, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def added(rtts: list[float], direct: list[float]) -> tuple[float, float]:
    """Latency added per message (half the round trip's), at the median and the 99th percentile, in µs."""
    return (
        (statistics.median(rtts) - statistics.median(direct)) / 2 * 1e6,
        (percentile(rtts, 0.99) - percentile(direct, 0.99)) / 2 * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-busy", action="store_true", help="skip the figures under a computing thread")
    arguments = parser.parse_args()
    rounds = arguments.rounds
    context: zmq.Context[Any] = zmq.Context()
    transcript = Transcript()
    directory = tempfile.TemporaryDirectory()
    relay = CRelay.build(directory.name)
    arrivals = context.socket(zmq.PULL)
    arrivals.linger, arrivals.rcvtimeo = 0, TIMEOUT_MS
    clock = Clock(f"tcp://127.0.0.1:{arrivals.bind_to_random_port('tcp://127.0.0.1')}")
    hops: list[tuple[str, Callable[[int], Any] | None]] = [("direct", None)]
    if relay is not None:
        hops.append(("floor: C relay", lambda port: CRelay(port, relay)))
    hops += [
        ("floor: Py thread", ThreadForwarder),
        ("floor: Py process", ProcessForwarder),
        ("tap", lambda port: Tap(f"tcp://127.0.0.1:{port}", transcript=transcript)),
        ("tap, no transcript", lambda port: Tap(f"tcp://127.0.0.1:{port}", transcript=Transcript(recording=False))),
        ("tap in a process", lambda port: ProcessTap(f"tcp://127.0.0.1:{port}", transcript=transcript)),
    ]
    variants = [Variant(context, name, hop, clock) for name, hop in hops]
    busy_latency: dict[str, list[list[float]]] = {}
    computing: dict[str, list[list[float]]] = {}
    try:
        for variant in variants:  # warm up: connections made, code paths hot
            variant.round_trips(200)
            variant.stream(1000, 1024)
            variant.crossings_while_computing(1, arrivals)
        latency = interleaved(variants, rounds, lambda variant: variant.round_trips(500))
        small = interleaved(variants, rounds, lambda variant: variant.stream(10_000, 1024))
        large = interleaved(variants, max(3, rounds // 3), lambda variant: variant.stream(100, 1 << 20))
        if not arguments.no_busy:
            with busy():
                busy_latency = interleaved(variants, rounds, lambda variant: variant.round_trips(100))
            computing = interleaved(variants, rounds, lambda variant: variant.crossings_while_computing(4, arrivals))
    finally:
        for variant in variants:
            variant.close()
        arrivals.close()
        clock.close()
        context.term()
        directory.cleanup()
    direct = [t for block in latency["direct"] for t in block]
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"tap benchmark: {rounds} interleaved rounds; round trips of 100 bytes, REQ/REP; streams PUSH -> PULL")
    print(f"load average {load}; {os.cpu_count()} cores")
    print(f"{'variant':20} {'rtt median':>11} {'rtt p99':>9} {'added/msg median':>17} {'added/msg p99':>14}"
          f" {'1 KiB msgs':>11} {'ratio':>6} {'1 MiB msgs':>11} {'ratio':>6}")  # fmt: skip
    for variant in variants:
        rtts = [t for block in latency[variant.name] for t in block]
        added_median, added_p99 = added(rtts, direct)
        small_ratio = statistics.median(
            mine / theirs for mine, theirs in zip(small[variant.name], small["direct"], strict=True)
        )
        large_ratio = statistics.median(
            mine / theirs for mine, theirs in zip(large[variant.name], large["direct"], strict=True)
        )
        print(
            f"{variant.name:20} {statistics.median(rtts) * 1e6:9.1f}us {percentile(rtts, 0.99) * 1e6:7.1f}us"
            f" {added_median:15.1f}us {added_p99:12.1f}us"
            f" {statistics.median(small[variant.name]) / 1e6:7.1f}MB/s {small_ratio:6.2f}"
            f" {statistics.median(large[variant.name]) / 1e6:7.0f}MB/s {large_ratio:6.2f}"
        )
    if busy_latency:
        print("round trips while another thread of the test computes in Python:")
        busy_direct = [t for block in busy_latency["direct"] for t in block]
        for variant in variants:
            rtts = [t for block in busy_latency[variant.name] for t in block]
            added_median, added_p99 = added(rtts, busy_direct)
            slow = sum(rtt > 1e-3 for rtt in rtts) / len(rtts)
            print(
                f"{variant.name:20} {statistics.median(rtts) * 1e6:9.1f}us {percentile(rtts, 0.99) * 1e6:7.1f}us"
                f" {added_median:15.1f}us {added_p99:12.1f}us   {slow:6.1%} of round trips over 1 ms"
            )
    if computing:
        print(f"a message to another process, sent just before the test's own thread computes in Python for"
              f" {COMPUTE * 1000:g} ms: when it arrives")  # fmt: skip
        for variant in variants:
            delays = [t for block in computing[variant.name] for t in block]
            print(
                f"{variant.name:20} median {statistics.median(delays) * 1e6:8.1f}us"
                f"   90th percentile {percentile(delays, 0.9) * 1e6:8.1f}us   longest {max(delays) * 1e6:8.1f}us"
            )
    print(f"(the tap's transcript holds {len(transcript.events)} events, the last {transcript.events.maxlen} kept)")


if __name__ == "__main__":
    main()
