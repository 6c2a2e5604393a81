"""Process tests: the real PongProc, with its client played by a zmqtest mimic socket.

Written the way the seed article writes them: ``setup_method`` starts the process and
connects the mimic, ``teardown_method`` stops the process (kill message first, then
harder) and closes everything, and each test is the conversation itself, a generator
that yields events: ``('send', sock, header, body)``, ``reply = yield ('recv', sock)``,
or an action of this class (``send_raw``, ``send_signal``, ``wait_for_exit``).

No fixed ports, no sleeps: ipc endpoints live in a private temporary directory, a tcp
port is picked by the system and reported back by the process, and every wait has a
deadline.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import re
import select
import shutil
import signal
import tempfile
from multiprocessing.connection import Connection
from typing import Any

import pytest
import zmq
from pingpong.pong import KILL, PongProc, start_pong

from zmqtest import Conversation, ProcessTest, TestSocket, make_sock

STOP_TIMEOUT = 5.0
"""Seconds a start or a stop may take (each stage of a stop: kill message, SIGINT, SIGTERM, SIGKILL)."""


class PongTest(ProcessTest):
    """A running PongProc and a REQ mimic connected to it, for every test; nothing left afterwards."""

    tmpdir: str
    endpoint: str
    proc: PongProc | None
    ctx: zmq.Context[Any] | None
    sock: TestSocket | None

    def setup_method(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="pp-")  # short: an ipc path must stay under ~100 characters
        self.proc = self.ctx = self.sock = None
        try:
            # The process starts before this test's zmq Context exists: forking a process
            # that holds zmq I/O threads is unsafe (and warns on Python 3.12+).
            self.proc, self.endpoint = self._start_process()
            self.ctx = zmq.Context()
            self.sock = make_sock(self.ctx, zmq.REQ, connect=self.endpoint, name="pong-client")
        except BaseException:
            self.teardown_method()  # pytest skips teardown_method when setup_method fails
            raise

    def _start_process(self) -> tuple[PongProc, str]:
        """Start PongProc on an ipc endpoint; it reports the endpoint once it serves."""
        return start_pong(f"ipc://{self.tmpdir}/pong", timeout=STOP_TIMEOUT)

    def teardown_method(self) -> None:
        try:
            if self.proc is not None and self.sock is not None and self.proc.is_alive():
                with contextlib.suppress(zmq.ZMQError):  # a SocketTimeout is a ZMQError: it no longer listens
                    self.send(self.sock, [], [KILL, None])
                self.proc.join(STOP_TIMEOUT)
        finally:
            if self.proc is not None:
                self.proc.stop(STOP_TIMEOUT)  # SIGINT, SIGTERM, SIGKILL: only if it is still running
                if self.proc.exitcode is not None:
                    self.proc.close()
            if self.sock is not None:
                self.sock.close(linger=0)
            if self.ctx is not None:
                self.ctx.term()
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # Actions: ``yield ('name', *args)`` calls ``self.name(*args)`` and sends back its result.

    def send_raw(self, sock: TestSocket, frames: list[bytes]) -> None:
        """Send ``frames`` as they are, for requests that are not JSON at all."""
        sock.send_multipart(frames)

    def send_signal(self, signum: int) -> None:
        """Send a signal to the process under test."""
        assert self.proc is not None
        assert self.proc.pid is not None
        os.kill(self.proc.pid, signum)

    def wait_for_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait (at most ``timeout`` seconds) for the process to end; return its exit code."""
        assert self.proc is not None
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise AssertionError(f"{self.proc.name} (pid {self.proc.pid}) still running after {timeout:g} s")
        return self.proc.exitcode


@pytest.mark.process
class TestPongProcess(PongTest):
    """PongProc over ipc."""

    def test_ping(self) -> Conversation:
        yield ("send", self.sock, [], ["ping", 1])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 1]]

    def test_reply_is_one_compact_json_frame(self) -> Conversation:
        yield ("send", self.sock, [], ["ping", 42])
        reply = yield ("recv", self.sock, None)  # None: raw frames
        assert reply == [b'["pong",42]']

    def test_several_pings(self) -> Conversation:
        for number in (1, 2, 3, 0, -5, 2**40):
            yield ("send", self.sock, [], ["ping", number])
            reply = yield ("recv", self.sock)
            assert reply == [["pong", number]]

    def test_unknown_command(self) -> Conversation:
        yield ("send", self.sock, [], ["pingg", 1])
        reply = yield ("recv", self.sock)
        assert reply == [["error", "unknown command 'pingg' (known: ping, plzdiekthxbye)"]]

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            (["ping"], 'bad request: expected [command, argument], got ["ping"]'),
            ({"ping": 1}, 'bad request: expected [command, argument], got {"ping": 1}'),
            (["ping", "one"], 'bad request: ping takes an integer, got "one"'),
        ],
        ids=["one-element", "object", "string-argument"],
    )
    def test_wrong_shape_gets_an_error_and_the_server_keeps_serving(self, body: Any, problem: str) -> Conversation:
        yield ("send", self.sock, [], body)
        reply = yield ("recv", self.sock)
        assert reply == [["error", problem]]
        yield ("send", self.sock, [], ["ping", 2])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 2]]

    def test_bad_json_gets_an_error_and_the_server_keeps_serving(self) -> Conversation:
        yield ("send_raw", self.sock, [b"not json"])
        [[kind, message]] = yield ("recv", self.sock)
        assert kind == "error"
        assert message.startswith("bad request: not JSON (")
        yield ("send", self.sock, [], ["ping", 3])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 3]]

    def test_two_frames_get_an_error(self) -> Conversation:
        yield ("send", self.sock, [], ["ping", 1], [b"extra"])
        reply = yield ("recv", self.sock)
        assert reply == [["error", "bad request: expected 1 frame, got 2"]]

    def test_kill_message_ends_the_process_with_exit_code_0(self) -> Conversation:
        assert os.path.exists(f"{self.tmpdir}/pong")
        yield ("send", self.sock, [], [KILL, None])
        code = yield ("wait_for_exit",)
        assert code == 0
        assert not os.path.exists(f"{self.tmpdir}/pong"), "the ipc socket file is left behind"

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    def test_signal_ends_the_process_with_exit_code_0(self, signum: signal.Signals) -> Conversation:
        yield ("send", self.sock, [], ["ping", 1])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 1]]
        yield ("send_signal", signum)
        code = yield ("wait_for_exit",)
        assert code == 0


@pytest.mark.process
class TestPongProcessTcp(PongTest):
    """PongProc over tcp, on a port the system picks: the process reports it through a queue."""

    def _start_process(self) -> tuple[PongProc, str]:
        reports: multiprocessing.Queue[str] = multiprocessing.Queue()
        proc = PongProc("tcp://127.0.0.1:*", report=reports)
        proc.start()
        try:
            return proc, reports.get(timeout=STOP_TIMEOUT)
        except queue.Empty:
            proc.stop(STOP_TIMEOUT)
            raise AssertionError(f"PongProc did not report its endpoint within {STOP_TIMEOUT:g} s") from None
        finally:
            reports.close()

    def test_endpoint_is_the_real_port_and_serves(self) -> Conversation:
        match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", self.endpoint)
        assert match, self.endpoint
        assert int(match.group(1)) > 0
        yield ("send", self.sock, [], ["ping", 7])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 7]]

    def test_kill_message_ends_the_process_with_exit_code_0(self) -> Conversation:
        yield ("send", self.sock, [], [KILL, None])
        code = yield ("wait_for_exit",)
        assert code == 0


@pytest.mark.process
def test_sigint_right_after_start_always_stops_it() -> None:
    """The race a blocking recv loses: a signal that lands just before the wait begins.

    ``start_pong`` returns as soon as the server reports its endpoint, i.e. just
    before it starts polling: the SIGINT lands in that window, again and again.
    """
    tmpdir = tempfile.mkdtemp(prefix="pp-")
    try:
        for attempt in range(20):
            proc, _ = start_pong(f"ipc://{tmpdir}/pong{attempt}", timeout=STOP_TIMEOUT)
            try:
                os.kill(proc.pid or 0, signal.SIGINT)
                proc.join(STOP_TIMEOUT)
                assert proc.exitcode == 0, f"attempt {attempt}: exit code {proc.exitcode} (None: still running)"
            finally:
                proc.stop(STOP_TIMEOUT)
                proc.close()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _middle(bind: str, report: Connection) -> None:
    """A parent for PongProc that reports its child's pid, then waits to be killed."""
    proc, _ = start_pong(bind, timeout=STOP_TIMEOUT)
    report.send(proc.pid)
    report.recv()  # never comes: the test SIGKILLs this process


@pytest.mark.process
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open (Linux 5.3+)")
def test_pong_stops_when_its_parent_dies() -> None:
    """An orphaned PongProc does not serve forever: it watches its parent's sentinel."""
    tmpdir = tempfile.mkdtemp(prefix="pp-")
    receiver, sender = multiprocessing.Pipe()
    middle = multiprocessing.Process(target=_middle, args=(f"ipc://{tmpdir}/pong", sender), name="middle")
    middle.start()
    pidfd = None
    try:
        assert receiver.poll(STOP_TIMEOUT), "the middle process did not report PongProc's pid"
        # A pidfd names PongProc for sure (its pid cannot be reused while the middle, its parent, has
        # not reaped it) and is readable once PongProc has ended, although it is not our child.
        pidfd = os.pidfd_open(receiver.recv())
        middle.kill()  # SIGKILL: the middle cannot stop its child itself
        readable, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT)
        assert readable, f"PongProc still running {STOP_TIMEOUT:g} s after its parent died"
    finally:
        middle.kill()
        middle.join(STOP_TIMEOUT)
        middle.close()
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        receiver.close()
        sender.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
