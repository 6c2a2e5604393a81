"""How fast a log record of a process under test reaches the test, and what the collector costs.

Run: ``python tests/apps/bench_logs.py [--rounds 200]`` (from the repository root). Prints:

- latency: ``received - created`` of each record, both ``time.time()`` (same clock), with
  the test already waiting for it (``wait_for``) when the process logs it: median, p90, max;
  and the same for a raw pyzmq PUSH -> PULL message sent where the record would be logged
  (the floor: what ZeroMQ alone costs on this machine);
- a burst: 10,000 records logged in one go, time until the test has read the last one;
- the cost of a collector per test (make, bind, close, remove its ipc directory): median;
- the cost of one ``logger.info`` call in a process that forwards (in this process).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.log_app import LogApp
from zmqtest import ProcessManager, make_sock
from zmqtest.logs import LogCollector, forward

READY = r"listening on (?P<endpoint>\S+)"


def micros(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[int(len(ordered) * 0.9)]
    return f"median {statistics.median(ordered) * 1e6:.0f} us, p90 {p90 * 1e6:.0f} us, max {ordered[-1] * 1e6:.0f} us"


def latency(rounds: int, method: str) -> None:
    with ProcessManager() as procs:
        app = procs(LogApp(), ready=READY, start_method=method)
        context: zmq.Context[Any] = zmq.Context()
        client = make_sock(context, zmq.REQ, connect=app.endpoint, timeout=5)
        try:
            procs.logs.wait_for("started", timeout=5)
            delays = []
            for number in range(rounds + 20):
                client.send_json(["log", "INFO", "app", f"round {number}"])
                entry = procs.logs.wait_for(f"round {number}", timeout=5)
                client.recv_json()
                if number >= 20:  # warm-up
                    delays.append(entry.received - entry.created)
            print(f"latency, process logs -> test has the record ({method}, {rounds} records): {micros(delays)}")
            count = 10_000
            began = time.perf_counter()
            client.send_json(["burst", count, "burst"])
            procs.logs.wait_for(f"burst {count - 1}", timeout=30)
            took = time.perf_counter() - began
            client.recv_json()
            print(f"burst of {count} records read by the test in {took * 1000:.0f} ms ({count / took:,.0f} records/s)")
        finally:
            client.close()
            context.term()


def raw_peer(rep_endpoint: str, push_endpoint: str) -> None:
    """A forked child: on each request, PUSH ``{"created": time.time()}`` and reply."""
    context: zmq.Context[Any] = zmq.Context()
    rep = context.socket(zmq.REP)
    rep.bind(rep_endpoint)
    push = context.socket(zmq.PUSH)
    push.connect(push_endpoint)
    while rep.recv() != b"stop":
        push.send(json.dumps({"created": time.time()}).encode(), zmq.NOBLOCK)
        rep.send(b"ok")
    rep.send(b"ok")
    rep.close(linger=0)
    push.close(linger=1000)
    context.term()


def raw_latency(rounds: int) -> None:
    context: zmq.Context[Any] = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    req = context.socket(zmq.REQ)
    directory = tempfile.mkdtemp(prefix="zmqtest-bench-")
    rep_endpoint = f"ipc://{directory}/rep"
    peer = multiprocessing.get_context("spawn").Process(
        target=raw_peer, args=(rep_endpoint, pull.getsockopt_string(zmq.LAST_ENDPOINT))
    )
    try:
        peer.start()
        req.connect(rep_endpoint)
        delays = []
        for number in range(rounds + 20):
            req.send(b"go")
            assert pull.poll(5000)
            created = json.loads(pull.recv())["created"]
            received = time.time()
            req.recv()
            if number >= 20:  # warm-up
                delays.append(received - created)
        req.send(b"stop")
        req.recv()
        peer.join(5)
        print(f"latency, raw pyzmq PUSH -> PULL in the same exchange ({rounds} messages): {micros(delays)}")
    finally:
        req.close(linger=0)
        pull.close(linger=0)
        context.term()
        if peer.is_alive():
            peer.kill()
            peer.join(5)
        shutil.rmtree(directory, ignore_errors=True)


def collector_cost(rounds: int) -> None:
    for transport in ("ipc", "tcp"):
        costs = []
        for _ in range(rounds):
            began = time.perf_counter()
            LogCollector(transport=transport).close()
            costs.append(time.perf_counter() - began)
        print(f"a collector made and closed ({transport}, own context): {micros(costs)}")


def emit_cost(count: int = 20_000) -> None:
    with LogCollector() as logs:
        logger = logging.getLogger("bench")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handler = forward(logs.endpoint)
        assert handler is not None
        logging.getLogger().removeHandler(handler)
        logger.addHandler(handler)
        try:
            began = time.perf_counter()
            for number in range(count):
                logger.info("record %d", number)
            took = time.perf_counter() - began
            logs.wait_for(f"record {count - 1}", timeout=30)
        finally:
            logger.removeHandler(handler)
            handler.close()
    print(f"logger.info with the forwarder: {took / count * 1e6:.1f} us per call ({count} calls)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    raw_latency(args.rounds)
    for method in ("fork", "forkserver"):
        latency(args.rounds, method)
    collector_cost(args.rounds)
    emit_cost()


if __name__ == "__main__":
    main()
