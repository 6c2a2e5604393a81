"""in_process(): the pingpong example's PongProc, unchanged, run in a thread of the test and called over real sockets.

Each test checks that nothing is left: no worker thread, no helper thread, and the
signal functions of the process are Python's again. The workers that must be stopped
the hard way are made here; the ones that never end are released by the test itself
once their report has been checked, so no thread outlives a test either.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import select
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import zmq

import zmqtest
from zmqtest import InProcessError, ProcessError, SocketFactory, in_process

PINGPONG = Path(__file__).resolve().parent.parent / "examples" / "pingpong"
if str(PINGPONG) not in sys.path:  # as the example's own conftest does when its tests are collected
    sys.path.insert(0, str(PINGPONG))

from pingpong import pong  # noqa: E402
from pingpong.pong import KILL, PongProc  # noqa: E402

REAL = (signal.signal, signal.getsignal, signal.set_wakeup_fd)


@pytest.fixture(autouse=True)
def nothing_left() -> Iterator[None]:
    """After each test: no thread the test started still runs, and the signal functions are Python's own."""
    before = set(threading.enumerate())
    yield
    left = [thread.name for thread in threading.enumerate() if thread not in before]
    assert left == [], f"threads left running: {left}"
    assert (signal.signal, signal.getsignal, signal.set_wakeup_fd) == REAL


@pytest.fixture
def client(zmq_socket_factory: SocketFactory, zmq_endpoint: str) -> zmq.Socket[Any]:
    return zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=5)


def test_call_returns_the_reply_and_the_block_stops_the_worker_with_sigint(
    client: Any, zmq_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pingpong")
    with in_process(PongProc(zmq_endpoint)) as worker:
        assert worker.call(client, ["ping", 1]) == ["pong", 1]
        assert worker.call(client, ["pingg", 2]) == ["error", "unknown command 'pingg' (known: ping, plzdiekthxbye)"]
        assert worker.thread.name == "PongProc"
        assert worker.thread.is_alive()
    assert not worker.thread.is_alive()
    messages = [record.getMessage() for record in caplog.records if record.name == "pingpong.pong"]
    assert messages[-1] == "stopped (SIGINT)"  # its own signal routing stopped it, in the thread
    assert messages[0] == f"listening on {zmq_endpoint}"
    assert [context.closed for context in worker.contexts] == [True]  # serve()'s zmq.Context() was the worker's


def test_a_handler_that_raises_is_raised_by_call_itself(client: Any, zmq_endpoint: str) -> None:
    with (
        mock.patch("pingpong.pong.handle", side_effect=ZeroDivisionError("boom")),
        in_process(PongProc(zmq_endpoint)) as worker,
    ):
        with pytest.raises(ZeroDivisionError, match="boom") as raised:
            worker.call(client, ["ping", 1])
        assert "raised ZeroDivisionError: boom in PongProc (in-process thread, ended)" in str(raised.value.__notes__)
        assert any(entry.name == "serve_loop" for entry in raised.traceback)  # where it was raised, in the worker
    assert worker.errors == [raised.value]  # raised once, in the test: not again when the block ends


def test_an_error_nobody_saw_is_raised_when_the_block_ends(client: Any, zmq_endpoint: str) -> None:
    def unseen_failure() -> None:
        with in_process(PongProc(zmq_endpoint)) as worker:
            client.send_json(["ping", 1])
            worker.thread.join(5)

    with (
        mock.patch("pingpong.pong.handle", side_effect=ZeroDivisionError("boom")),
        pytest.raises(ZeroDivisionError, match="boom") as raised,
    ):
        unseen_failure()
    assert raised.value.__notes__ == ["  raised ZeroDivisionError: boom in PongProc (in-process thread, ended)"]


def test_a_wait_on_any_mimic_ends_at_once_when_the_worker_fails(client: Any, zmq_endpoint: str) -> None:
    with (
        mock.patch("pingpong.pong.handle", side_effect=KeyError("no such user")),
        in_process(PongProc(zmq_endpoint)),
    ):
        client.send_json(["ping", 1])
        with pytest.raises(InProcessError, match=r"raised KeyError: 'no such user' while .*recv") as raised:
            client.recv_json(timeout=60)  # not 60 s: the worker's failure ends the wait
        assert isinstance(raised.value.__cause__, KeyError)
        assert isinstance(raised.value, ProcessError)


def test_the_end_of_run_ends_a_wait_as_a_process_end_would(client: Any, zmq_endpoint: str) -> None:
    with in_process(PongProc(zmq_endpoint)) as worker:
        client.send_json([KILL, None])
        with pytest.raises(InProcessError, match=r"PongProc \(in-process thread, ended\): run\(\) returned while"):
            client.recv_json(timeout=60)
        assert worker.errors == []


def test_an_error_logged_by_the_handler_is_raised_by_call(client: Any, zmq_endpoint: str) -> None:
    def handle(request: bytes) -> list[Any]:
        if request == b'["ping", 1]':
            pong.log.error("disk full while answering %s", request.decode())
        return ["pong", 0]

    with mock.patch("pingpong.pong.handle", handle), in_process(PongProc(zmq_endpoint)) as worker:
        with pytest.raises(InProcessError, match=r"PongProc logged ERROR \(logger pingpong.pong, test_inpro"):
            worker.call(client, ["ping", 1])
        assert worker.call(client, ["ping", 2]) == ["pong", 0]  # a logged error does not stop it, and was raised once


def test_an_exception_logged_with_its_traceback_is_raised_as_itself(client: Any, zmq_endpoint: str) -> None:
    def handle(request: bytes) -> list[Any]:
        try:
            json.loads(b"{")
        except ValueError:
            pong.log.exception("cannot parse")
        return ["error", "sorry"]

    with mock.patch("pingpong.pong.handle", handle), in_process(PongProc(zmq_endpoint)) as worker:
        with pytest.raises(json.JSONDecodeError) as raised:
            worker.call(client, ["ping", 1])
        assert "logged as ERROR (logger pingpong.pong" in "".join(raised.value.__notes__)
        assert worker.thread.is_alive()


# --- workers that do not stop by themselves ------------------------------------------------------------------------


class Deaf(multiprocessing.Process):
    """Blocks in a receive, with no signal handling and no stop message: only ETERM ends it."""

    def __init__(self, bind: str) -> None:
        super().__init__(name="Deaf")
        self.bind = bind

    def run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.PULL)
        try:
            sock.bind(self.bind)
            sock.recv()
        finally:
            sock.close(linger=0)
            context.term()


class Stuck(multiprocessing.Process):
    """Never returns until the test releases it: no zmq, no signals."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(name="Stuck")
        self.release = release

    def run(self) -> None:
        self.release.wait()


def test_a_worker_blocked_in_a_receive_is_stopped_by_terminating_its_context(zmq_endpoint: str) -> None:
    with in_process(Deaf(zmq_endpoint), timeout=2) as worker:
        assert worker.signal(signal.SIGINT) is False  # it handles no signal
    assert not worker.thread.is_alive()
    assert worker.errors == []  # ETERM after the test terminated the context is how it stops, not a failure
    assert worker.contexts[0].closed


def test_a_worker_that_would_not_stop_is_reported_by_name_and_where_it_is() -> None:
    release = threading.Event()
    try:
        with pytest.raises(InProcessError) as raised, in_process(Stuck(release), timeout=0.2, stop=lambda: None):
            pass
        message = str(raised.value)
        assert message.startswith("Stuck (in-process thread 'Stuck') is still running 0.2 s after its stop action, ")
        assert "then terminating its 0 zmq context(s)" in message
        assert "test_inprocess.py:" in message
        assert "in run" in message
    finally:
        release.set()
        raised.value.worker.thread.join(5)


def test_the_tests_own_failure_is_not_masked_by_a_worker_that_would_not_stop() -> None:
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="the test's own") as raised, in_process(Stuck(release), timeout=0.2):
            raise AssertionError("the test's own failure")
        assert "and then: Stuck (in-process thread 'Stuck') is still running" in "".join(raised.value.__notes__)
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "Stuck":
                thread.join(5)


def test_a_function_gets_its_own_context_instance_which_is_terminated_after_it() -> None:
    made: list[zmq.Context[Any]] = []

    def serve() -> None:
        made.extend([zmq.Context.instance(), zmq.Context.instance()])
        made[0].socket(zmq.PUB).close()  # and it forgets to terminate its context

    with in_process(serve) as worker:
        worker.thread.join(5)
    assert worker.contexts == made[:1]
    assert made[0] is made[1]
    assert made[0].closed
    assert zmq.Context._instance is not made[0]  # the test process's own instance() was not touched


def test_a_block_that_ends_before_the_worker_has_routed_sigint_still_stops_it(zmq_endpoint: str) -> None:
    for _ in range(20):  # the SIGINT comes before, during or after its start-up
        with in_process(PongProc(zmq_endpoint)) as worker:
            pass
        assert not worker.thread.is_alive()
        assert worker.errors == []


def test_the_signal_functions_are_per_thread_while_a_worker_runs(client: Any, zmq_endpoint: str) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with in_process(PongProc(zmq_endpoint)) as worker:
        assert worker.call(client, ["ping", 1]) == ["pong", 1]  # its routing is set, in its own table
        assert signal.getsignal(signal.SIGINT) is REAL[1](signal.SIGINT)  # the test's thread sees Python's own
        assert signal.getsignal(signal.SIGUSR1) is before


def test_a_signal_sent_before_the_worker_routes_it_is_delivered_once_it_does() -> None:
    routed = threading.Event()
    received: list[bytes] = []

    def slow_start() -> None:
        routed.wait(5)  # its start-up takes longer than the test's patience
        with pong.signal_wakeup() as wakeup_fd:
            readable, _, _ = select.select([wakeup_fd], [], [], 10)
            received.extend(os.read(wakeup_fd, 8) for _ in readable)

    with in_process(slow_start) as worker:
        assert worker.signal(signal.SIGINT) is False  # not routed yet: it waits
        routed.set()
        worker.thread.join(5)
        assert not worker.thread.is_alive()
    assert received == [bytes([signal.SIGINT])]


def test_a_worker_that_handles_only_sigterm_gets_sigterm() -> None:
    def flagged() -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        stop.wait(10)

    with in_process(flagged, timeout=1) as worker:
        pass
    assert not worker.thread.is_alive()


def test_the_eterm_it_logs_while_the_test_stops_it_is_not_an_error(zmq_endpoint: str) -> None:
    def logs_its_end() -> None:
        context = zmq.Context()
        sock = context.socket(zmq.PULL)
        try:
            sock.bind(zmq_endpoint)
            sock.recv()
        except zmq.ContextTerminated:
            logging.getLogger("app").exception("terminated")
        finally:
            sock.close(linger=0)
            context.term()

    with in_process(logs_its_end) as worker:
        pass
    assert worker.errors == []


@pytest.mark.parametrize(
    ("target", "keywords", "error"),
    [
        ("started", {}, r"in_process\(\) runs a Process that was not started; PongProc was \(pid \d+\)"),
        (42, {}, r"in_process\(\) takes a multiprocessing.Process or a function, got 42"),
        ("pong", {"stop": "now"}, r"in_process\(stop=...\) takes a function of no arguments, got 'now'"),
        ("pong", {"timeout": 0}, r"invalid timeout 0 from in_process\(timeout=...\)"),
        ("pong", {"modules": ["no.such.module"]}, r"in_process\(modules=...\): no module 'no.such.module'"),
    ],
)
def test_bad_input_is_refused_at_the_users_line(target: Any, keywords: dict[str, Any], error: str) -> None:
    if target == "started":
        target = PongProc("tcp://127.0.0.1:1")
        target._popen = mock.Mock(pid=4242)  # as if started, without starting a process
    elif target == "pong":
        target = PongProc("tcp://127.0.0.1:1")
    with pytest.raises((TypeError, ValueError), match=error), in_process(target, **keywords):
        pass


def test_call_takes_a_mimic_socket_while_the_block_runs(client: Any, zmq_endpoint: str) -> None:
    with in_process(PongProc(zmq_endpoint)) as worker, pytest.raises(TypeError, match="call\\(\\) sends on a mimic"):
        worker.call("client", ["ping", 1])  # type: ignore[arg-type]
    with pytest.raises(InProcessError, match=r"call\(\) on PongProc after its in_process\(\) block ended"):
        worker.call(client, ["ping", 1])


# --- a real pytest run ---------------------------------------------------------------------------------------------


def test_a_pytest_run_under_xdist_reports_the_handlers_error_at_the_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_pong_unit=textwrap.dedent(
            """
            from unittest import mock

            import zmq
            from pingpong.pong import PongProc

            from zmqtest import in_process


            def test_pong(zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint)
                with in_process(PongProc(zmq_endpoint)) as pong:
                    assert pong.call(client, ["ping", 1]) == ["pong", 1]


            def test_broken_handler(zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint)
                with mock.patch("pingpong.pong.handle", side_effect=ZeroDivisionError("boom")):
                    with in_process(PongProc(zmq_endpoint)) as pong:
                        pong.call(client, ["ping", 1])
            """
        )
    )
    # the zmqtest under test first (a worktree's, not the installed one), then the pingpong example
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(zmqtest.__file__).parent.parent), str(PINGPONG)]))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pong.call(client, *",
            "E *ZeroDivisionError: boom",
            "*raised ZeroDivisionError: boom in PongProc (in-process thread, ended), before it replied to ?'ping', 1?",
            "*x-  PongProc (in-process thread, ended) raised ZeroDivisionError: boom while recv_multipart*",
        ]
    )


@pytest.mark.parametrize("kind", ["Device", "ThreadDevice", "ProcessDevice"])
def test_a_pyzmq_device_runs_in_process_and_stops_at_the_end_of_the_block(
    kind: str, zmq_socket_factory: SocketFactory, zmq_endpoint_factory: Any
) -> None:
    """pyzmq's devices make their context through ``context_factory`` (bound when the class was made)."""
    from zmq import devices

    frontend, backend = zmq_endpoint_factory.tcp(), zmq_endpoint_factory.tcp()
    device = getattr(devices, kind)(zmq.QUEUE, zmq.ROUTER, zmq.DEALER)
    device.bind_in(frontend)
    device.bind_out(backend)
    client = zmq_socket_factory(zmq.REQ, connect=frontend, name="client", timeout=5)
    server = zmq_socket_factory(zmq.REP, connect=backend, name="server", timeout=5)
    with in_process(device.run) as worker:
        client.send(b"through the device")
        assert server.recv() == b"through the device"
        server.send(b"and back")
        assert client.recv() == b"and back"
    assert not worker.thread.is_alive()
    assert [context.closed for context in worker.contexts] == [True]  # its context, terminated to stop it
    assert "context_factory" not in vars(device)  # the class's own again
