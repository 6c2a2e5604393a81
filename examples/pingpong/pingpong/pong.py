"""The pong server: answers ``["ping", n]`` with ``["pong", n]`` on a REP socket.

Protocol: one JSON frame each way (compact UTF-8, readable by pyzmq's ``recv_json``).

- ``["ping", n]`` with ``n`` an integer: reply ``["pong", n]``;
- ``["plzdiekthxbye", anything]``: no reply, the server stops (exit code 0);
- anything else: reply ``["error", "<what is wrong>"]``, and keep serving.

SIGINT and SIGTERM stop it cleanly too (exit code 0, socket closed with linger 0,
context terminated). It logs (logger ``pingpong.pong``, level INFO) where it listens, each
request and its answer, and why it stopped; as a :class:`PongProc` started by a zmqtest
test, those records go to the test (see :func:`forward_logs`).

A blocking ``recv`` can sleep through a signal that lands just before libzmq starts
waiting; here signals are written to a pipe (:func:`signal.set_wakeup_fd`) that is
polled next to the socket, so a signal always wakes the loop, whenever it lands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from types import FrameType
from typing import Any

import zmq

__all__ = [
    "COMMANDS",
    "KILL",
    "STOP_SIGNALS",
    "PongError",
    "PongProc",
    "encode",
    "forward_logs",
    "handle",
    "serve",
    "serve_loop",
    "signal_wakeup",
    "start_pong",
]

KILL = "plzdiekthxbye"
"""The command that stops the server (the seed article's)."""
COMMANDS = ("ping", KILL)
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop the server cleanly (exit code 0)."""

Reply = list[Any]

log = logging.getLogger(__name__)


class PongError(RuntimeError):
    """A PongProc could not be started (it died, or never reported its endpoint)."""


def handle(request: bytes) -> Reply | None:
    """Answer one request frame; ``None`` means "stop, and send no reply".

    Pure (no sockets, no state), so every rule of the protocol is unit-testable.
    """
    try:
        message = json.loads(request)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        return _error(f"bad request: not JSON ({exc})")
    if not (isinstance(message, list) and len(message) == 2 and isinstance(message[0], str)):
        return _error(f"bad request: expected [command, argument], got {_clip(request)}")
    command, argument = message
    if command == "ping":
        if isinstance(argument, bool) or not isinstance(argument, int):
            return _error(f"bad request: ping takes an integer, got {_clip(encode(argument))}")
        return ["pong", argument]
    if command == KILL:
        return None
    return _error(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")


def encode(body: Any) -> bytes:
    """Compact UTF-8 JSON: the one frame of a request or a reply."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _error(text: str) -> Reply:
    return ["error", text]


def _clip(frame: bytes, limit: int = 60) -> str:
    text = frame.decode(errors="replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def serve_loop(sock: zmq.Socket[Any], poller: zmq.Poller, wakeup_fd: int, watch_fd: int | None = None) -> str:
    """Answer requests on the REP ``sock`` until told to stop; return why it stopped.

    It sleeps in ``poller.poll()`` (no timeout: nothing to do until something happens) on
    ``sock``, the signal pipe ``wakeup_fd`` (see :func:`signal_wakeup`) and, if given,
    ``watch_fd``: the parent process's sentinel, readable once the parent is gone, so an
    orphaned server does not run forever. Socket and poller come from the caller, so a
    unit test can drive the loop with mocks.
    """
    while True:
        events = dict(poller.poll())
        if wakeup_fd in events:
            for signum in _drain(wakeup_fd):
                if signum in STOP_SIGNALS:
                    return signal.Signals(signum).name
        if watch_fd is not None and watch_fd in events:
            return "parent exited"
        if not events.get(sock, 0) & zmq.POLLIN:
            continue
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            continue  # a spurious wake-up: nothing to read after all
        reply = handle(frames[0]) if len(frames) == 1 else _error(f"bad request: expected 1 frame, got {len(frames)}")
        if reply is None:
            log.info("%s: stopping", KILL)
            return "kill message"
        log.info("%s -> %s", _clip(frames[0]), _clip(encode(reply)))
        sock.send(encode(reply))


def _drain(fd: int) -> bytes:
    """Everything waiting in the non-blocking pipe ``fd`` (one byte per signal)."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler that does nothing: the pipe carries the news."""


@contextlib.contextmanager
def signal_wakeup(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[int]:
    """Route ``signals`` into a pipe; yield its read end, to poll next to sockets.

    Python's C-level handler writes each signal's number into the pipe the moment the
    signal arrives, so a poll that starts later still finds it; the Python-level
    handlers do nothing (no KeyboardInterrupt in the middle of a send). Everything is
    restored on exit. Main thread only, as everything in :mod:`signal`.
    """
    read_fd, write_fd = os.pipe()
    old_handlers: dict[int, Any] = {}
    old_wakeup = -1
    try:
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)  # before the handlers: no gap
        for signum in signals:
            old_handlers[signum] = signal.signal(signum, _ignore)
        yield read_fd
    finally:
        for signum, handler in old_handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(old_wakeup)
        os.close(read_fd)
        os.close(write_fd)


def serve(bind: str, on_bound: Callable[[str], object] | None = None, *, watch_fd: int | None = None) -> str:
    """Bind a REP socket to ``bind`` and answer requests until stopped; return why it stopped.

    ``on_bound`` is called with the endpoint actually bound (``LAST_ENDPOINT``: the real
    port after ``tcp://host:*``) once signals are routed and the socket listens, so
    whoever waits for it knows the server is ready. The server makes its own zmq
    Context (one inherited through fork has no I/O threads) and always closes the
    socket with linger 0 and terminates the context, however it stops; it also
    removes the file of an ipc endpoint, which libzmq leaves behind.
    """
    socket_file = None
    with signal_wakeup() as wakeup_fd:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            sock = context.socket(zmq.REP)
            try:
                sock.setsockopt(zmq.LINGER, 0)
                sock.bind(bind)
                endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
                socket_file = _ipc_socket_file(endpoint)
                poller = zmq.Poller()
                poller.register(sock, zmq.POLLIN)
                poller.register(wakeup_fd, zmq.POLLIN)
                if watch_fd is not None:
                    poller.register(watch_fd, zmq.POLLIN)
                log.info("listening on %s", endpoint)
                if on_bound is not None:
                    on_bound(endpoint)
                why = serve_loop(sock, poller, wakeup_fd, watch_fd)
                log.info("stopped (%s)", why)
                return why
            finally:
                sock.close(linger=0)
        finally:
            context.term()
            if socket_file is not None:
                _remove_socket_file(*socket_file)


def _ipc_socket_file(endpoint: str) -> tuple[str, tuple[int, int, int]] | None:
    """The file of an ipc endpoint and its identity; ``None`` for other transports and abstract sockets."""
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return None
    path = endpoint[len("ipc://") :]
    try:
        return path, _identity(path)
    except OSError:
        return None


def _identity(path: str) -> tuple[int, int, int]:
    """Device, inode and change time: a file made anew at the same path (even on a reused inode) differs."""
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_ctime_ns


def _remove_socket_file(path: str, identity: tuple[int, int, int]) -> None:
    """Remove the ipc socket file we bound (libzmq leaves it), unless another server has bound the path since."""
    with contextlib.suppress(OSError):
        if _identity(path) == identity:
            os.unlink(path)


class PongProc(multiprocessing.Process):
    """The pong server as a child process.

    ``bind`` is the endpoint to bind (``"ipc:///tmp/x/pong"``, ``"tcp://127.0.0.1:*"``).
    ``report``, a pipe's sending end or a queue, receives the endpoint actually bound
    once the server is ready: that is how a random tcp port gets back to the parent
    without a race. The child stops by itself when its parent process is gone.
    """

    def __init__(self, bind: str, report: Connection | Queue[str] | None = None) -> None:
        super().__init__(name="PongProc")
        self.bind_endpoint = bind
        self.report = report

    def run(self) -> None:
        """Serve (in the child); a kill message, SIGINT or SIGTERM ends it with exit code 0."""
        forward_logs()
        parent = multiprocessing.parent_process()
        with contextlib.suppress(KeyboardInterrupt):  # a SIGINT outside serve()'s routing: a clean stop too
            serve(self.bind_endpoint, self._report, watch_fd=None if parent is None else parent.sentinel)

    def _report(self, endpoint: str) -> None:
        if isinstance(self.report, Connection):
            self.report.send(endpoint)
            self.report.close()
        elif self.report is not None:
            self.report.put(endpoint)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Make sure the process is gone: SIGINT (a clean stop), then SIGTERM, then SIGKILL.

        Waits up to ``timeout`` seconds after each; returns the exit code (``None`` if
        the process was never started). Harmless on a process that already ended.
        """
        if self.pid is None:
            return None
        for send_signal in (self._interrupt, self.terminate, self.kill):
            if self.exitcode is not None:
                break
            send_signal()
            self.join(timeout)
        return self.exitcode

    def _interrupt(self) -> None:
        if self.pid is not None and self.exitcode is None:  # not reaped yet, so the pid is still this process's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)


def forward_logs() -> None:
    """Send this process's log records (INFO and up) to the zmqtest test that started it, if one did.

    zmqtest hands the endpoint over in ``ZMQTEST_LOG_ENDPOINT``; without it, nothing
    happens, and zmqtest is not even imported: pingpong does not need it to run.
    """
    if os.environ.get("ZMQTEST_LOG_ENDPOINT"):
        from zmqtest.logs import forward

        forward(level=logging.INFO)


def start_pong(bind: str = "tcp://127.0.0.1:*", timeout: float = 5.0) -> tuple[PongProc, str]:
    """Start a :class:`PongProc` and wait until it serves; return it and its endpoint.

    The process sends ``LAST_ENDPOINT`` through a pipe once bound. The wait also watches
    the process's sentinel, so a process that dies first (say, the address is in use)
    is reported at once, with its exit code, rather than after ``timeout`` seconds.
    """
    receiver, sender = multiprocessing.Pipe(duplex=False)
    proc = PongProc(bind, report=sender)
    with receiver:
        try:
            proc.start()
        finally:
            sender.close()  # the child has its own; ours would keep the pipe open after the child died
        ready = multiprocessing.connection.wait([receiver, proc.sentinel], timeout)
        if receiver in ready:
            with contextlib.suppress(EOFError):
                return proc, str(receiver.recv())
    if ready:
        proc.join(timeout)
        problem = f"exited with code {proc.exitcode} before reporting its endpoint (its stderr says why)"
    else:
        problem = f"did not report its endpoint within {timeout:g} s"
    proc.stop(timeout)
    raise PongError(f"PongProc binding {bind}: {problem}")
