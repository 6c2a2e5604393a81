"""Figures 13 to 15: control of a process under test mid-test (restart, pause, resume).

**Figure 13, restarts lose nothing and always rebind.** One server (a ROUTER that answers
with its pid, ``tests/apps/restartable.py``) restarted 200 times on one tcp endpoint,
under each start method and as a command line, with a DEALER mimic connected throughout.
Each round has a conversation: a request answered by the current run; then either a
plain ``restart()``, or ``stop()``, a request sent while no server runs (queued in the
mimic's pipe) and ``restart()``; then a request that the new run must answer. A request
with no reply from the run that should answer it within 10 s is lost; a new run that
cannot bind the endpoint ends with "Address already in use" and its restart raises
``StartError``. Both must be 0.

**Figure 14, pause and resume take effect at once.** How long ``pause()`` and ``resume()``
take to return (each returns once ``/proc`` shows the process stopped, or running again).

**Figure 15, a paused process is torn down as fast as a running one.** The time a
manager's close takes to stop one process, paused or not (SIGCONT comes first, then SIGINT).

Run in this interpreter (no inner pytest run): these are figures of zmqtest's calls, not of a test session.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq
from apps.restartable import Answer

from zmqtest import EndpointFactory, SocketTimeout, StartError, TestSocket
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

RESTARTS = 200
SAMPLES = 100
TEARDOWNS = 30
REPLY_WAIT = 10.0
SETTINGS = Settings(stop_grace=2.0, startup_timeout=30.0)
RESTARTABLE = str(Path(__file__).parent.parent / "apps" / "restartable.py")
LISTENING = r"listening on (?P<endpoint>\S+)"


def _target(kind: str, endpoint: str) -> tuple[object, dict[str, object]]:
    if kind == "command":
        return [sys.executable, RESTARTABLE, endpoint], {}
    return Answer(endpoint), {"start_method": kind}


def _millis(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms"


@pytest.mark.parametrize("kind", ["fork", "forkserver", "spawn", "command"])
def test_restarts_lose_no_message_and_always_rebind(
    tmp_path: Path, kind: str, figure: Callable[[int, str, str], None]
) -> None:
    lost: list[str] = []
    in_use: list[str] = []
    seconds: list[float] = []
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with EndpointFactory() as endpoints, ProcessManager(tmp_path, settings=SETTINGS) as procs:
        endpoint = endpoints.tcp()
        target, options = _target(kind, endpoint)
        server = procs.start(target, ready=LISTENING, **options)  # type: ignore[arg-type]
        client = TestSocket(context, zmq.DEALER, name="client")
        client.connect(endpoint)

        def ask(body: str, pid: int) -> None:
            """Expect the answer to a request sent before from run ``pid``, else count it lost."""
            try:
                reply = client.recv(timeout=REPLY_WAIT)
            except SocketTimeout:
                lost.append(f"{body}: no reply")
                return
            if reply != f"{body} from {pid}".encode():
                lost.append(f"{body}: {reply!r}")

        for round_ in range(RESTARTS):
            client.send(f"{round_} before".encode(), timeout=5)
            ask(f"{round_} before", server.pid)
            queued = round_ % 2 == 1
            began = time.monotonic()
            try:
                if queued:
                    server.stop()
                    client.send(f"{round_} queued".encode(), timeout=5)
                server.restart()
            except StartError as exc:
                (in_use if "Address already in use" in str(exc) else lost).append(f"round {round_}: {exc}")
                server.restart()  # the failed run is stopped: start it again, to go on counting
            seconds.append(time.monotonic() - began)
            if queued:
                ask(f"{round_} queued", server.pid)
            client.send(f"{round_} after".encode(), timeout=5)
            ask(f"{round_} after", server.pid)
        client.close()
    context.term()
    requests = RESTARTS * 2 + RESTARTS // 2
    figure(
        13,
        f"{RESTARTS} restarts of one server on one tcp endpoint, a DEALER mimic's requests before and after each "
        "(every other one also sent while it was stopped): lost, EADDRINUSE, restart time",
        f"{len(lost)} of {requests} requests lost, {len(in_use)} EADDRINUSE; restart {_millis(seconds)}",
    )
    assert not lost, lost[:5]
    assert not in_use, in_use[:5]


@pytest.mark.parametrize("kind", ["fork", "command"])
def test_pause_and_resume_latency(tmp_path: Path, kind: str, figure: Callable[[int, str, str], None]) -> None:
    pauses: list[float] = []
    resumes: list[float] = []
    with EndpointFactory() as endpoints, ProcessManager(tmp_path, settings=SETTINGS) as procs:
        target, options = _target(kind, endpoints.tcp())
        server = procs.start(target, ready=LISTENING, **options)  # type: ignore[arg-type]
        for _ in range(SAMPLES):
            began = time.monotonic()
            server.pause()
            pauses.append(time.monotonic() - began)
            began = time.monotonic()
            server.resume()
            resumes.append(time.monotonic() - began)
    figure(
        14,
        f"pause() and resume() until they took effect ({SAMPLES} each)",
        f"pause {_millis(pauses)}; resume {_millis(resumes)}",
    )
    assert max(pauses + resumes) < 5.0  # a generous sanity bound: SWITCH_WAIT


def test_a_paused_process_is_torn_down_as_fast_as_a_running_one(
    tmp_path: Path, figure: Callable[[int, str, str], None]
) -> None:
    times: dict[bool, list[float]] = {False: [], True: []}
    with EndpointFactory() as endpoints:
        for number in range(2 * TEARDOWNS):
            paused = number % 2 == 1
            procs = ProcessManager(tmp_path / str(number), settings=SETTINGS)
            server = procs.start(Answer(endpoints.tcp()), start_method="fork", ready=LISTENING)
            if paused:
                server.pause()
            began = time.monotonic()
            procs.close()
            times[paused].append(time.monotonic() - began)
            assert server.stopped_by == "SIGINT", server.report()
    figure(
        15,
        f"teardown of one process (a manager's close; fork; {TEARDOWNS} each)",
        f"running {_millis(times[False])}; paused {_millis(times[True])}",
    )
    assert statistics.median(times[True]) < SETTINGS.stop_grace  # resumed, then stopped by its SIGINT, not SIGTERM
