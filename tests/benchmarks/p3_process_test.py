"""P3: a whole process test (start, ready, one round trip, teardown), zmqtest vs bare.

Per kind (multiprocessing fork, forkserver, spawn, and the command line
``python -m pingpong serve``), timed from the first setup step to the end of teardown:

- ``zmqtest``: what the fixtures do for a test, without pytest: a TestContext, a
  SocketFactory, an EndpointFactory and a ProcessManager writing to
  ``<a new temporary directory>/zmqtest-processes`` (as ``zmq_process_factory`` makes it
  in ``tmp_path``, which pytest removes in a later session, not at each test; here the
  directories go at the end of the run), its log collector on the test's context; the REQ mimic connects to a
  reserved port, ``procs.start(PongProc(endpoint), ready=client, start_method=kind)``
  (command line: ``ready=r"listening on (?P<endpoint>\\S+)"``), one ``yield send`` +
  ``yield recv`` through ``ProcessTest.run``, then teardown in the fixtures' order
  (processes stopped with SIGINT and reaped, group cleared; sockets closed; context
  terminated; endpoints released);
- ``bare``: what a careful hand-written test does: ``ctx.Process(target=serve_and_report)``
  binding ``tcp://127.0.0.1:*`` and reporting its port through a pipe (pingpong's own
  ``start_pong`` recipe), or ``subprocess.Popen`` reading the ``listening on`` line;
  a plain REQ socket with RCVTIMEO/SNDTIMEO does one ping; SIGINT + ``join``
  (``terminate`` + ``wait`` for the command); close, ``term``. Every wait is bounded.

Both run the same server code (pingpong). Rounds run every kind, both variants in
rotating order; the ratio is the median over rounds of zmqtest / bare.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from bench_common import PINGPONG_DIR, Result, Row, ratio_fields, rotated, round_ratios, scaled

KINDS = ("fork", "forkserver", "spawn", "command")
TARGETS = {"fork": 1.5, "forkserver": 1.5, "spawn": 1.5, "command": 1.2}
DEADLINE = 10.0
"""Seconds any one step of the bare variant may take (it never hangs either)."""
SERVE = [sys.executable, "-m", "pingpong", "serve"]
LISTENING = re.compile(r"listening on (?P<endpoint>\S+)")


def bare_process(kind: str) -> None:
    from bare_pong import serve_and_report

    mp = multiprocessing.get_context(kind)
    receiver, sender = mp.Pipe(duplex=False)
    proc = mp.Process(target=serve_and_report, args=("tcp://127.0.0.1:*", sender))  # type: ignore[attr-defined]
    proc.start()
    sender.close()
    try:
        if not receiver.poll(DEADLINE):
            raise RuntimeError(f"bare {kind} PongProc did not report its endpoint within {DEADLINE:g} s")
        endpoint = receiver.recv()
        ping(endpoint)
        os.kill(proc.pid or 0, signal.SIGINT)
        proc.join(DEADLINE)
        if proc.exitcode != 0:
            raise RuntimeError(f"bare {kind} PongProc: exit code {proc.exitcode} after SIGINT (None: still running)")
    finally:
        receiver.close()
        if proc.exitcode is None:
            proc.kill()
            proc.join(DEADLINE)
        proc.close()


def bare_command() -> None:
    proc = subprocess.Popen(SERVE, cwd=PINGPONG_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(DEADLINE):
                raise RuntimeError(f"{' '.join(SERVE)} printed nothing within {DEADLINE:g} s")
        line = proc.stdout.readline()
        match = LISTENING.search(line)
        if match is None:
            raise RuntimeError(f"{' '.join(SERVE)}: expected 'listening on ENDPOINT', got {line!r}")
        ping(match.group("endpoint"))
        proc.terminate()
        code = proc.wait(DEADLINE)
        if code != 0:
            raise RuntimeError(f"{' '.join(SERVE)}: exit code {code} after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
        if proc.stdout is not None:
            proc.stdout.close()


def ping(endpoint: str) -> None:
    """One request/reply on a plain REQ socket, with bounded waits."""
    context: zmq.Context[Any] = zmq.Context()
    try:
        sock = context.socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, int(DEADLINE * 1000))
            sock.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
            sock.connect(endpoint)
            sock.send_multipart([json.dumps(["ping", 1]).encode()])
            reply = json.loads(sock.recv_multipart()[-1])
            if reply != ["pong", 1]:
                raise RuntimeError(f"bare ping to {endpoint}: got {reply!r}")
        finally:
            sock.close(linger=0)
    finally:
        context.term()


def zmqtest_test(kind: str, tmp_root: str) -> None:
    """One process test as zmqtest's fixtures run it (``tmp_root``: where its ``tmp_path`` is made)."""
    from pingpong.pong import PongProc

    from zmqtest.contexts import SocketFactory, TestContext, terminate_context
    from zmqtest.endpoints import EndpointFactory
    from zmqtest.processes import ProcessManager
    from zmqtest.runner import Conversation, ProcessTest

    def conversation(sock: Any) -> Conversation:
        yield ("send", sock, [], ["ping", 1])
        reply = yield ("recv", sock)
        if reply != [["pong", 1]]:
            raise AssertionError(f"zmqtest {kind}: got {reply!r}")

    with EndpointFactory() as endpoints:
        context = TestContext()
        try:
            output = Path(tempfile.mkdtemp(dir=tmp_root), "zmqtest-processes")  # tmp_path / "zmqtest-processes"
            with SocketFactory(context) as sockets, ProcessManager(output, context=context) as procs:
                if kind == "command":
                    pong = procs.start(SERVE, cwd=PINGPONG_DIR, ready=r"listening on (?P<endpoint>\S+)")
                    assert pong.endpoint is not None
                    client = sockets(zmq.REQ, connect=pong.endpoint, name="client")
                else:
                    endpoint = endpoints.tcp()
                    client = sockets(zmq.REQ, connect=endpoint, name="client")
                    procs.start(PongProc(endpoint), ready=client, start_method=kind)
                ProcessTest().run(conversation, client)
        finally:
            terminate_context(context)


def run(scale: float = 1.0) -> Result:
    rounds_count = scaled(15, scale, 2)
    tmp_root = tempfile.mkdtemp(prefix="zmqtest-bench-p3-")
    variants: dict[str, Callable[[str], None]] = {
        "zmqtest": lambda kind: zmqtest_test(kind, tmp_root),
        "bare": lambda kind: bare_command() if kind == "command" else bare_process(kind),
    }
    for kind in KINDS:  # warm up: forkserver started, modules cached, reaper running
        for variant in variants.values():
            variant(kind)
            variant(kind)
    rounds: dict[str, list[dict[str, list[float]]]] = {kind: [] for kind in KINDS}
    for index in range(rounds_count):
        for kind in rotated(list(KINDS), index):
            samples: dict[str, list[float]] = {}
            for name in rotated(list(variants), index):
                began = time.perf_counter()
                variants[name](kind)
                samples[name] = [(time.perf_counter() - began) * 1000]
            rounds[kind].append(samples)
    shutil.rmtree(tmp_root, ignore_errors=True)

    rows = []
    for kind in KINDS:
        label = "command line `python -m pingpong serve`" if kind == "command" else f"multiprocessing {kind}"
        ratios = round_ratios(rounds[kind], "zmqtest", "bare")
        for name in variants:
            values = [samples[name][0] for samples in rounds[kind]]
            row = Row("P3", f"{label}: bare (reference)", "ms", values, key=f"{kind}\n{name}")
            if name == "zmqtest":
                row = Row(
                    "P3",
                    f"{label}: zmqtest",
                    "ms",
                    values,
                    reference="bare",
                    key=f"{kind}\n{name}",
                    **ratio_fields(ratios),
                )
                row.target = f"≤ {TARGETS[kind]:g}x bare"
                row.met = row.ratio is not None and row.ratio <= TARGETS[kind]
            rows.append(row)
    notes = [
        f"{rounds_count} interleaved rounds per kind after 2 warm-up tests per kind and variant; "
        "each figure is one whole test, from the first setup step to the end of teardown."
    ]
    return Result("P3", "A whole process test: zmqtest vs bare start + ping + stop", rows, notes)
