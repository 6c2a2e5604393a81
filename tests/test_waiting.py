"""Waits raced against the death of watched processes: mimic sockets, wait_for_message, wait_until, ConnectionWaiter.

Real sockets on loopback and real child processes, started with ``forkserver`` so that
no child inherits zmq state or threads (a fork of this multi-threaded process warns on
Python 3.12+). Where only the sentinel matters, a pipe stands in for a process: writing
to it is a death that the test controls exactly. Nothing sleeps to synchronise: a child
is told when to die (at the moment the wait starts watching it) or is waited for.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq
from helpers import WAIT_MS, delivered, pair

import zmqtest.sendrecv
from zmqtest import SocketTimeout, TestSocket, ZmqTestError
from zmqtest.errors import HandshakeFailed, ProcessError, ProcessExited, WaitTimeout
from zmqtest.transcript import recording
from zmqtest.waiting import ConnectionWaiter, race, wait_for_message, wait_until, watched, watching

if TYPE_CHECKING:
    from conftest import Sockets

FORKSERVER = multiprocessing.get_context("forkserver")
LONG = 30.0
"""A timeout the tests must never reach: a death ends the wait long before."""
PROMPT = 1.0
"""Generous bound for "at once" (the design target is 250 ms; loaded CI machines are slow)."""

# --- children (module level: forkserver children import them by name) ----------------------------------------------


def _exit_when_told(conn: Connection, code: int) -> None:
    """Block until the parent says so, report the time of death, and exit with ``code``."""
    conn.recv_bytes()
    conn.send(time.monotonic())  # CLOCK_MONOTONIC is system-wide: the parent can compare
    os._exit(code)


def _connect_until_told(conn: Connection, endpoint: str) -> None:
    """Connect a PAIR to ``endpoint`` and stay until the parent says so."""
    context = zmq.Context()
    sock = context.socket(zmq.PAIR)
    sock.connect(endpoint)
    conn.recv_bytes()
    sock.close(linger=0)
    context.term()


def _bind_and_report(conn: Connection) -> None:
    """Bind a PAIR to a free loopback port, send its endpoint to the parent, stay until told."""
    context = zmq.Context()
    sock = context.socket(zmq.PAIR)
    sock.bind("tcp://127.0.0.1:*")
    conn.send_bytes(sock.getsockopt(zmq.LAST_ENDPOINT))
    conn.recv_bytes()
    sock.close(linger=0)
    context.term()


class Child:
    """A forkserver child as a :class:`Watched` (the test's stand-in for zmqtest's ManagedProcess)."""

    def __init__(self, target: Callable[..., None], *args: Any, name: str = "child") -> None:
        self.name = name
        self.conn, child_end = FORKSERVER.Pipe()
        self.process = FORKSERVER.Process(target=target, args=(child_end, *args), name=name, daemon=True)
        self.process.start()
        child_end.close()
        self.die_when_watched = False

    @property
    def sentinel(self) -> int:
        if self.die_when_watched:  # the wait is about to start: now is "while it waits"
            self.die_when_watched = False
            self.tell()
        return self.process.sentinel

    def tell(self) -> None:
        self.conn.send_bytes(b"go")

    def died_at(self) -> float:
        """The monotonic time the child reported just before it exited."""
        assert self.conn.poll(WAIT_MS / 1000), f"{self.name} did not report its time of death"
        return float(self.conn.recv())

    def describe(self) -> str:
        code = self.process.exitcode
        return f"{self.name} (pid {self.process.pid}, {'running' if code is None else f'exited with code {code}'})"

    def exit_error(self, waiting_for: str) -> ProcessExited:
        self.process.join(WAIT_MS / 1000)  # the sentinel fires as the child's files close, a moment before reaping
        return ProcessExited(
            f"{self.name} (pid {self.process.pid}) exited with code {self.process.exitcode} while {waiting_for}"
        )

    def stop(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(WAIT_MS / 1000)
        self.process.close()
        self.conn.close()


class PipeProcess:
    """A :class:`Watched` whose death is a byte written to a pipe."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.code: int | None = None
        self._read, self._write = os.pipe()
        self.sentinel_reads = 0

    @property
    def sentinel(self) -> int:
        self.sentinel_reads += 1
        return self._read

    def die(self, code: int = 3) -> None:
        self.code = code
        os.write(self._write, b"x")

    def describe(self) -> str:
        return f"{self.name} (pid 0, {'running' if self.code is None else f'exited with code {self.code}'})"

    def exit_error(self, waiting_for: str) -> ProcessExited:
        return ProcessExited(f"{self.name} (pid 0) exited with code {self.code} while {waiting_for}")

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    """``children(target, *args, name=...)`` starts a forkserver child; all are killed and reaped at teardown."""
    started: list[Child] = []

    def start(target: Callable[..., None], *args: Any, name: str = "child") -> Child:
        child = Child(target, *args, name=name)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


@pytest.fixture
def fakes() -> Iterator[Callable[[str], PipeProcess]]:
    """``fakes(name)``: pipe-backed processes, their pipes closed at teardown."""
    made: list[PipeProcess] = []

    def make(name: str = "fake") -> PipeProcess:
        made.append(PipeProcess(name))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


Polls = list[tuple[list[Any], int]]


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> Polls:
    """Every ``zmq.zmq_poll`` a wait makes (:func:`zmqtest.waiting.race`'s), its items and timeout, in order.

    ``zmq.Poller`` (``sock.poll``) calls its own reference: the test's own polls are not counted.
    """
    made: Polls = []
    original = zmq.zmq_poll

    def counting(items: Any, timeout: int) -> Any:
        made.append((list(items), timeout))
        return original(items, timeout)

    monkeypatch.setattr(zmq, "zmq_poll", counting)
    return made


# --- socket waits race the death of watched processes --------------------------------------------------------------


def test_recv_ends_at_once_when_a_watched_process_dies(socks: Sockets, children: Callable[..., Child]) -> None:
    sink = socks(zmq.PULL, bind=("", 0), name="sink", timeout=LONG)
    child = children(_exit_when_told, 3, name="PongProc")
    child.die_when_watched = True
    with watching(child), pytest.raises(ProcessExited) as excinfo:
        sink.recv_multipart()
    raised_at = time.monotonic()
    assert raised_at - child.died_at() < PROMPT
    message = str(excinfo.value)
    assert f"PongProc (pid {child.process.pid}) exited with code 3" in message
    assert f"while recv_multipart on PULL socket 'sink' bound to {sink.endpoint}" in message


def test_send_ends_at_once_when_a_watched_process_dies(
    socks: Sockets, children: Callable[..., Child], ipc_dir: Path
) -> None:
    client = socks(zmq.DEALER, connect=f"ipc://{ipc_dir}/nobody", name="client", timeout=LONG, immediate=True)
    child = children(_exit_when_told, 7, name="server")
    child.die_when_watched = True
    with watching(child), pytest.raises(ProcessExited) as excinfo:
        client.send_json({"ping": 1})
    assert time.monotonic() - child.died_at() < PROMPT
    assert "exited with code 7 while send_json on DEALER socket 'client' connected to ipc://" in str(excinfo.value)


def test_a_message_queued_before_the_death_is_still_received(socks: Sockets, children: Callable[..., Child]) -> None:
    server, client = pair(socks, timeout=LONG)
    child = children(_exit_when_told, 1)
    child.tell()
    child.process.join(WAIT_MS / 1000)
    assert child.process.exitcode == 1
    client.send_multipart([b"pong", b"1"])
    delivered(server)
    with watching(child):
        assert server.recv_multipart() == [b"pong", b"1"]  # the socket is checked before the sentinel
        started = time.monotonic()
        with pytest.raises(ProcessExited, match="exited with code 1 while recv on PAIR socket 'server'"):
            server.recv()  # nothing left: the death ends the wait at once
        assert time.monotonic() - started < PROMPT


RECV_CALLS: dict[str, Callable[..., Any]] = {
    "recv": lambda s, **kw: s.recv(**kw),
    "recv_multipart": lambda s, **kw: s.recv_multipart(**kw),
    "recv_json": lambda s, **kw: s.recv_json(**kw),
    "recv_string": lambda s, **kw: s.recv_string(**kw),
    "recv_pyobj": lambda s, **kw: s.recv_pyobj(**kw),
    "recv_serialized": lambda s, **kw: s.recv_serialized(lambda frames: frames, **kw),
    "recv_into": lambda s, **kw: s.recv_into(bytearray(64), **kw),
}


@pytest.mark.parametrize("operation", list(RECV_CALLS))
def test_every_recv_variant_is_raced(socks: Sockets, fakes: Callable[[str], PipeProcess], operation: str) -> None:
    server, client = pair(socks, timeout=LONG)
    process = fakes("worker")
    with watching(process):
        client.send_pyobj([1]) if operation == "recv_pyobj" else client.send_json([1])
        delivered(server)
        assert RECV_CALLS[operation](server) is not None  # a message that is there comes back
        process.die(5)
        with pytest.raises(ProcessExited) as excinfo:
            RECV_CALLS[operation](server)
    assert str(excinfo.value) == f"worker (pid 0) exited with code 5 while {operation} on {server.describe()}"


SEND_CALLS: dict[str, Callable[..., Any]] = {
    "send": lambda s, **kw: s.send(b"x", **kw),
    "send_multipart": lambda s, **kw: s.send_multipart([b"a", b"b"], **kw),
    "send_json": lambda s, **kw: s.send_json({"a": 1}, **kw),
    "send_string": lambda s, **kw: s.send_string("x", **kw),
    "send_pyobj": lambda s, **kw: s.send_pyobj({"a": 1}, **kw),
    "send_serialized": lambda s, **kw: s.send_serialized({"a": 1}, lambda m: [b"1"], **kw),
}


@pytest.mark.parametrize("operation", list(SEND_CALLS))
def test_every_send_variant_is_raced(
    socks: Sockets, fakes: Callable[[str], PipeProcess], ipc_dir: Path, operation: str
) -> None:
    sock = socks(zmq.PUSH, connect=f"ipc://{ipc_dir}/nobody", name="out", timeout=LONG, immediate=True)
    process = fakes("worker")
    process.die(2)
    with watching(process), pytest.raises(ProcessExited) as excinfo:
        SEND_CALLS[operation](sock)
    assert str(excinfo.value) == f"worker (pid 0) exited with code 2 while {operation} on {sock.describe()}"


def test_a_send_that_can_go_goes_even_after_a_death(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    server, client = pair(socks, timeout=LONG)
    process = fakes("worker")
    process.die()
    with watching(process):
        client.send_multipart([b"last", b"words"])
    delivered(server)
    assert server.recv_multipart() == [b"last", b"words"]


def _router_with_a_full_peer(ctx: zmq.Context[Any], socks: Sockets) -> TestSocket:
    """A mandatory ROUTER whose peer b"slow" is at its high-water mark while b"fast" is not: POLLOUT, yet EAGAIN."""
    router = socks(zmq.ROUTER, name="router", sndhwm=1)
    router.bind("inproc://router-full")
    for identity in (b"slow", b"fast"):
        dealer = socks.track(ctx.socket(zmq.DEALER))
        dealer.setsockopt(zmq.IDENTITY, identity)
        dealer.setsockopt(zmq.RCVHWM, 1)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect("inproc://router-full")
        dealer.send(b"hello")
        delivered(router)
        router.recv_multipart()
    while True:
        try:
            router.send_multipart([b"slow", b"x"], zmq.NOBLOCK)
        except zmq.Again:
            break
    assert router.poll(0, zmq.POLLOUT)
    return router


def test_ready_but_refused_does_not_spin(
    ctx: zmq.Context[Any], socks: Sockets, fakes: Callable[[str], PipeProcess], polls: Polls
) -> None:
    router = _router_with_a_full_peer(ctx, socks)
    with watching(fakes("worker")), pytest.raises(SocketTimeout, match="send_multipart on ROUTER socket 'router'"):
        router.send_multipart([b"slow", b"y"], timeout=0.2)
    assert len(polls) < 40  # backs off to 64 ms pauses instead of polling a ready socket in a loop


def test_ready_but_refused_still_notices_a_death(
    ctx: zmq.Context[Any], socks: Sockets, fakes: Callable[[str], PipeProcess], polls: Polls
) -> None:
    router = _router_with_a_full_peer(ctx, socks)
    process = fakes("worker")
    process.die(6)
    with watching(process), pytest.raises(ProcessExited, match="code 6 while send_multipart on ROUTER"):
        router.send_multipart([b"slow", b"y"], timeout=LONG)
    assert len(polls) <= 3  # the ready socket, then the processes alone: the end is seen, not the grace polled away


def test_a_message_on_its_way_at_a_death_is_still_received(
    socks: Sockets, fakes: Callable[[str], PipeProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zmqtest.sendrecv, "DEATH_GRACE_MS", int(LONG * 1000))  # the grace cannot run out here
    server, client = pair(socks, timeout=LONG)
    process = fakes("worker")
    process.die()
    late = threading.Timer(0.05, client.send, (b"last words",))  # sent after the wait has seen the end
    late.start()
    try:
        with watching(process):
            started = time.monotonic()
            assert server.recv() == b"last words"
            assert time.monotonic() - started < PROMPT
    finally:
        late.join()
    monkeypatch.undo()  # the grace as it is
    with watching(process), pytest.raises(ProcessExited, match="code 3 while recv on PAIR socket 'server'"):
        server.recv()  # nothing more on its way: the end is reported after the grace


def test_timeout_says_what_each_watched_process_was_doing(
    socks: Sockets, children: Callable[..., Child], fakes: Callable[[str], PipeProcess]
) -> None:
    sink = socks(zmq.PULL, bind=("", 0), name="sink")
    child = children(_exit_when_told, 0, name="PongProc")
    other = fakes("logger")
    with watching(child, other), pytest.raises(SocketTimeout) as excinfo:
        sink.recv(timeout=0.05)
    error = excinfo.value
    assert re.fullmatch(
        f"recv on PULL socket 'sink' bound to {re.escape(sink.endpoint)}: no message within 0.05 s"
        f"; no peer has connected at {re.escape(sink.endpoint)} since the socket was bound there [0-9.e-]+ s ago"
        f"; PongProc \\(pid {child.process.pid}, running\\); logger \\(pid 0, running\\)",
        str(error),
    )
    assert (error.operation, error.timeout, error.errno) == ("recv", 0.05, zmq.EAGAIN)
    assert isinstance(error, zmq.Again)


def test_send_timeout_keeps_its_hint_and_adds_the_states(
    socks: Sockets, fakes: Callable[[str], PipeProcess], ipc_dir: Path
) -> None:
    endpoint = f"ipc://{ipc_dir}/nobody"
    client = socks(zmq.DEALER, connect=endpoint, name="client", immediate=True)
    with watching(fakes("server")), pytest.raises(SocketTimeout) as excinfo:
        client.send(b"ping", timeout=0.02)
    assert re.fullmatch(
        f"send on DEALER socket 'client' connected to {re.escape(endpoint)}: could not send within 0.02 s: no peer "
        f"took the message; no peer has connected at {re.escape(endpoint)} since the socket connected to it "
        r"[0-9.e-]+ s ago \(what is sent to it waits in the socket's queue until one does\); server \(pid 0, running\)",
        str(excinfo.value),
    ), str(excinfo.value)


def test_timeouts_apply_as_without_watching(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=0.2)
    with watching(fakes("worker")):
        with pytest.raises(SocketTimeout) as excinfo:
            sock.recv(timeout=0)  # the call's timeout beats the socket's
        assert excinfo.value.timeout == 0
        with zmqtest.default_timeout(5), pytest.raises(SocketTimeout) as excinfo:
            sock.recv_multipart()  # the socket's timeout beats the harness default
        assert excinfo.value.timeout == 0.2
        sock.timeout = None
        with zmqtest.default_timeout(0.01), pytest.raises(SocketTimeout) as excinfo:
            sock.recv_string()
        assert excinfo.value.timeout == 0.01


def test_noblock_is_plain_again_even_after_a_death(
    socks: Sockets, fakes: Callable[[str], PipeProcess], ipc_dir: Path
) -> None:
    sink = socks(zmq.PULL, bind=("", 0), name="sink", timeout=LONG)
    out = socks(zmq.PUSH, connect=f"ipc://{ipc_dir}/nobody", timeout=LONG, immediate=True)
    process = fakes("worker")
    process.die()
    with watching(process):
        for attempt in (lambda: sink.recv(zmq.NOBLOCK), lambda: sink.recv_json(flags=zmq.NOBLOCK)):
            with pytest.raises(zmq.Again) as excinfo:
                attempt()
            assert type(excinfo.value) is zmq.Again
            assert "in recv" in str(excinfo.value)
        with pytest.raises(zmq.Again) as excinfo:
            out.send_multipart([b"x"], zmq.NOBLOCK)
        assert type(excinfo.value) is zmq.Again


def _efsm_recv(socks: Sockets) -> tuple[TestSocket, Callable[[], Any]]:
    sock = socks(zmq.REQ, bind=("", 0))
    return sock, sock.recv  # a REQ must send first


def _efsm_send(socks: Sockets) -> tuple[TestSocket, Callable[[], Any]]:
    sock = socks(zmq.REP, bind=("", 0))
    return sock, lambda: sock.send(b"reply to nobody")  # a REP must receive first


def _enotsup_recv(socks: Sockets) -> tuple[TestSocket, Callable[[], Any]]:
    sock = socks(zmq.PUSH, bind=("", 0))
    return sock, sock.recv_multipart


def _enotsup_send(socks: Sockets) -> tuple[TestSocket, Callable[[], Any]]:
    sock = socks(zmq.SUB, bind=("", 0))
    return sock, lambda: sock.send_json({})


def _ehostunreach(socks: Sockets) -> tuple[TestSocket, Callable[[], Any]]:
    sock = socks(zmq.ROUTER, bind=("", 0))
    return sock, lambda: sock.send_multipart([b"nobody", b"x"])


@pytest.mark.parametrize(
    ("make", "errno", "operation"),
    [
        (_efsm_recv, zmq.EFSM, "recv"),
        (_efsm_send, zmq.EFSM, "send"),
        (_enotsup_recv, zmq.ENOTSUP, "recv_multipart"),
        (_enotsup_send, zmq.ENOTSUP, "send_json"),
        (_ehostunreach, zmq.EHOSTUNREACH, "send_multipart"),
    ],
    ids=["efsm-recv", "efsm-send", "enotsup-recv", "enotsup-send", "ehostunreach"],
)
def test_other_errors_surface_at_once(
    socks: Sockets,
    fakes: Callable[[str], PipeProcess],
    make: Callable[[Sockets], tuple[TestSocket, Callable[[], Any]]],
    errno: int,
    operation: str,
) -> None:
    sock, attempt = make(socks)
    sock.timeout = LONG
    started = time.monotonic()
    with watching(fakes("worker")), pytest.raises(zmq.ZMQError) as excinfo:
        attempt()
    assert time.monotonic() - started < PROMPT  # not a poll that never comes back ready
    assert excinfo.value.errno == errno
    assert f"in {operation} on {sock.describe()}" in str(excinfo.value)


def test_a_closed_socket_surfaces_as_enotsock(ctx: zmq.Context[Any], fakes: Callable[[str], PipeProcess]) -> None:
    sock = TestSocket(ctx, zmq.PULL, timeout=LONG)
    sock.bind(("", 0))
    sock.close()
    with watching(fakes("worker")), pytest.raises(zmq.ZMQError) as excinfo:
        sock.recv()
    assert excinfo.value.errno == zmq.ENOTSOCK


WATCHED_VARIANTS = [
    (lambda s: s.send(b"raw"), lambda s: s.recv(), b"raw"),
    (lambda s: s.send_multipart([b"a", b"", b"c"]), lambda s: s.recv_multipart(), [b"a", b"", b"c"]),
    (lambda s: s.send_json({"é": [1, None]}), lambda s: s.recv_json(), {"é": [1, None]}),
    (lambda s: s.send_string("héllo"), lambda s: s.recv_string(), "héllo"),
    (lambda s: s.send_pyobj({"set": {1, 2}}), lambda s: s.recv_pyobj(), {"set": {1, 2}}),
    (lambda s: s.send(b"copy=False"), lambda s: s.recv(copy=False).bytes, b"copy=False"),
]


@pytest.mark.parametrize(
    ("send", "recv", "expected"), WATCHED_VARIANTS, ids=["send", "multipart", "json", "string", "pyobj", "frame"]
)
def test_watched_variants_deliver(
    socks: Sockets,
    fakes: Callable[[str], PipeProcess],
    send: Callable[[TestSocket], Any],
    recv: Callable[[TestSocket], Any],
    expected: Any,
) -> None:
    server, client = pair(socks, timeout=5)
    with watching(fakes("worker")):
        send(client)
        assert recv(server) == expected  # the receive waits (raced) for the delivery
        send(server)
        assert recv(client) == expected


def test_watched_req_rep_conversation(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    server = socks(zmq.REP, bind=("", 0), name="server", timeout=5)
    client = socks(zmq.REQ, connect=server.endpoint, name="client", timeout=5)
    with watching(fakes("worker")):
        for n in range(3):
            client.send_json(["ping", n])
            assert server.recv_json() == ["ping", n]  # libzmq waits first (EFSM would surface at once)
            server.send_json(["pong", n])
            assert client.recv_json() == ["pong", n]


def test_composite_calls_arm_once_when_watched(
    socks: Sockets, fakes: Callable[[str], PipeProcess], arming: Callable[..., list[tuple[int, Any]]]
) -> None:
    server, client = pair(socks, timeout=0.5)
    armed = arming(server, client)
    first = math.ceil(zmqtest.sendrecv.FIRST_WAIT * 1000)
    with watching(fakes("worker")):
        for _ in range(2):
            client.send_json({"n": 1})
            assert server.recv_json() == {"n": 1}
    assert armed == [(zmq.RCVTIMEO, first), (zmq.SNDTIMEO, first)] * 2  # libzmq's first wait; then a poll
    armed.clear()
    client.send_json({"n": 2})
    delivered(server)
    assert server.recv_json() == {"n": 2}
    assert armed == [(zmq.RCVTIMEO, 500), (zmq.SNDTIMEO, 500)] * 2  # back on the fast path: libzmq waits again


def test_nothing_watched_keeps_the_fast_path(socks: Sockets, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_poll(*args: Any) -> Any:
        raise AssertionError("the fast path polled")

    monkeypatch.setattr(zmq, "zmq_poll", no_poll)
    monkeypatch.setattr(zmqtest.sendrecv, "watched_wait", no_poll)
    server, client = pair(socks, timeout=0.25)
    assert watched() == ()
    client.send_multipart([b"a"])
    assert server.recv_multipart() == [b"a"]
    with pytest.raises(SocketTimeout):
        server.recv(timeout=0.01)
    assert server.rcvtimeo == 10  # libzmq's own wait, armed as before


def test_a_watched_wait_polls_only_when_the_first_wait_is_not_enough(
    socks: Sockets, fakes: Callable[[str], PipeProcess], polls: Polls
) -> None:
    server, client = pair(socks, timeout=5)
    first, second = fakes("first"), fakes("second")
    with watching(first, second):
        for _ in range(3):
            client.send(b"x")
            delivered(server)
            assert server.recv() == b"x"  # there already: libzmq's own wait returns it, no poll
        assert polls == []
        with pytest.raises(SocketTimeout):
            server.recv(timeout=0.05)  # nothing within the first wait: the rest is one poll with the sentinels
    assert polls[0][0] == [(server, zmq.POLLIN), (first._read, zmq.POLLIN), (second._read, zmq.POLLIN)]


def test_a_watched_socket_is_freed_without_the_garbage_collector(
    ctx: zmq.Context[Any], fakes: Callable[[str], PipeProcess]
) -> None:
    sock = TestSocket(ctx, zmq.PULL, timeout=0)
    sock.bind(("", 0))
    with recording(), watching(fakes("worker")), pytest.raises(SocketTimeout):
        sock.recv()  # polled, and put in the transcript
    sock.close()
    ref = weakref.ref(sock)
    del sock
    assert ref() is None  # no cycle left: freed without the garbage collector


# --- watching() -------------------------------------------------------------------------------------------------


def test_watching_nests_and_restores(fakes: Callable[[str], PipeProcess]) -> None:
    a, b, c = fakes("a"), fakes("b"), fakes("c")
    assert watched() == ()
    with watching(a):
        assert watched() == (a,)
        with watching(b, c):
            assert watched() == (a, b, c)
        assert watched() == (a,)
        seen: list[tuple[Any, ...]] = []

        def fail_inside() -> None:
            with watching(b):
                seen.append(watched())
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_inside()
        assert seen == [(a, b)]
        assert watched() == (a,)
    assert watched() == ()


def test_watching_nothing_changes_nothing() -> None:
    with watching():
        assert watched() == ()


# --- wait_for_message -------------------------------------------------------------------------------------------


def is_pong(frames: list[bytes]) -> bool:
    return frames[0] == b"pong"


def test_wait_for_message_skips_until_a_match_and_leaves_the_rest(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    for frames in ([b"log", b"1"], [b"log", b"2"], [b"pong", b"3"], [b"pong", b"4"]):
        client.send_multipart(frames)
    assert wait_for_message(server, is_pong) == [b"pong", b"3"]
    assert server.recv_multipart() == [b"pong", b"4"]


def test_wait_for_message_without_predicate_takes_the_first(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([b"a", b"b"])
    assert wait_for_message(server, timeout=5) == [b"a", b"b"]


def test_wait_for_message_decodes_for_the_predicate_and_returns_it(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    for n in range(5):
        client.send_json({"n": n})
    decoded = wait_for_message(server, lambda body: body["n"] >= 3, decode=lambda frames: json.loads(frames[-1]))
    assert decoded == {"n": 3}


def test_wait_for_message_with_a_message_already_there_and_zero_timeout(socks: Sockets) -> None:
    server, client = pair(socks)
    client.send(b"pong")
    delivered(server)
    assert wait_for_message(server, is_pong, timeout=0) == [b"pong"]


def test_wait_for_message_timeout_lists_what_it_saw(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([b"log", b"x" * 200])
    for n in range(5):
        client.send_multipart([b"ping", str(n).encode()])
    with pytest.raises(SocketTimeout) as excinfo:
        wait_for_message(server, is_pong, timeout=0.05)
    error = excinfo.value
    assert isinstance(error, zmq.Again)
    assert (error.operation, error.timeout) == ("wait_for_message", 0.05)
    message = str(error)
    assert message.startswith(
        f"wait_for_message(is_pong) on {server.describe()}: no matching message within 0.05 s; 6 other messages seen: "
    )
    assert "[b'log', b'xxxxxxxx" in message
    assert "x...," in message  # a long message is cut short
    assert "[b'ping', b'0'], [b'ping', b'1'] and 3 more" in message


def test_wait_for_message_timeout_with_nothing_at_all_names_a_lambda(socks: Sockets) -> None:
    server, _ = pair(socks)
    with pytest.raises(SocketTimeout) as excinfo:
        wait_for_message(server, lambda frames: False, timeout=0.01)
    assert re.match(
        r"wait_for_message\(<lambda at test_waiting\.py:\d+>\) on PAIR socket 'server' bound to \S+: "
        r"no message at all within 0\.01 s$",
        str(excinfo.value),
    )


def test_wait_for_message_timeout_uses_the_harness_default(socks: Sockets) -> None:
    server, _ = pair(socks, timeout=5)
    with zmqtest.default_timeout(0.02), pytest.raises(SocketTimeout) as excinfo:
        wait_for_message(server)
    assert excinfo.value.timeout == 0.02
    assert "wait_for_message(any message)" in str(excinfo.value)


def test_wait_for_message_ends_when_a_watched_process_dies(socks: Sockets, children: Callable[..., Child]) -> None:
    server, client = pair(socks)
    client.send(b"noise")
    child = children(_exit_when_told, 4, name="PongProc")
    child.die_when_watched = True
    with watching(child), pytest.raises(ProcessExited) as excinfo:
        wait_for_message(server, is_pong, timeout=LONG)
    assert time.monotonic() - child.died_at() < PROMPT
    assert f"exited with code 4 while wait_for_message(is_pong) on {server.describe()}" in str(excinfo.value)


def test_wait_for_message_times_out_naming_the_watched(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    server, _ = pair(socks)
    with watching(fakes("worker")), pytest.raises(SocketTimeout) as excinfo:
        wait_for_message(server, timeout=0.01)
    assert str(excinfo.value).endswith("no message at all within 0.01 s; worker (pid 0, running)")


def test_wait_for_message_on_a_plain_pyzmq_socket(ctx: zmq.Context[Any], socks: Sockets) -> None:
    plain = socks.track(ctx.socket(zmq.PULL))
    plain.bind("tcp://127.0.0.1:*")
    endpoint = plain.getsockopt_string(zmq.LAST_ENDPOINT)
    pusher = socks(zmq.PUSH, connect=endpoint, timeout=5)
    pusher.send(b"ping")
    pusher.send(b"pong")
    assert wait_for_message(plain, is_pong, timeout=5) == [b"pong"]
    with pytest.raises(SocketTimeout, match=f"on PULL socket at {re.escape(endpoint)}: no message at all"):
        wait_for_message(plain, timeout=0.01)


def test_wait_for_message_predicate_errors_name_the_message(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([b"only-one"])
    with pytest.raises(IndexError) as excinfo:
        wait_for_message(server, lambda frames: frames[1] == b"x")
    assert "in wait_for_message(<lambda at test_waiting.py:" in str(excinfo.value.__notes__)
    assert "message 1: [b'only-one']" in str(excinfo.value.__notes__)


def test_wait_for_message_checks_its_timeout(socks: Sockets) -> None:
    server, _ = pair(socks)
    with pytest.raises(ValueError, match="timeout= argument of wait_for_message"):
        wait_for_message(server, timeout=-1)


# --- wait_until ------------------------------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) == 3 else None

    assert wait_until(third_time, interval=0.001, timeout=5) == [1, 1, 1]


def test_wait_until_timeout_names_the_condition_and_the_last_value() -> None:
    def queue_is_empty() -> int:
        return 0

    with pytest.raises(WaitTimeout) as excinfo:
        wait_until(queue_is_empty, timeout=0.03, interval=0.01)
    error = excinfo.value
    assert isinstance(error, TimeoutError)
    assert (error.what, error.timeout) == ("queue_is_empty", 0.03)
    assert re.fullmatch(
        r"wait_until\(queue_is_empty\): not true within 0\.03 s \(\d+ checks\); the last value was 0", str(error)
    )


def test_wait_until_timeout_chains_the_last_exception_and_uses_what() -> None:
    def broken() -> bool:
        raise KeyError("ready")

    with pytest.raises(WaitTimeout) as excinfo:
        wait_until(broken, timeout=0.01, what="the cache is warm")
    assert "wait_until(the cache is warm): not true within 0.01 s" in str(excinfo.value)
    assert "the last check raised KeyError: 'ready'" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, KeyError)


def test_wait_until_uses_the_harness_default() -> None:
    with zmqtest.default_timeout(0.02), pytest.raises(WaitTimeout) as excinfo:
        wait_until(lambda: None)
    assert excinfo.value.timeout == 0.02


def test_wait_until_ends_when_a_watched_process_dies(children: Callable[..., Child]) -> None:
    child = children(_exit_when_told, 9, name="worker")
    child.die_when_watched = True
    with watching(child), pytest.raises(ProcessExited) as excinfo:
        wait_until(lambda: False, timeout=LONG, interval=LONG, what="the file exists")
    assert time.monotonic() - child.died_at() < PROMPT
    assert "exited with code 9 while wait_until(the file exists)" in str(excinfo.value)


def test_wait_until_looks_once_more_after_a_death(fakes: Callable[[str], PipeProcess]) -> None:
    process = fakes("worker")
    process.die(0)
    calls: list[int] = []

    def done_as_it_ended() -> bool:
        calls.append(1)
        return len(calls) == 2

    with watching(process):
        assert wait_until(done_as_it_ended, timeout=LONG, interval=LONG) is True
    assert len(calls) == 2


def test_wait_until_lets_process_errors_through(fakes: Callable[[str], PipeProcess]) -> None:
    def condition() -> bool:
        raise ProcessError("worker would not start")

    with pytest.raises(ProcessError, match="would not start"):
        wait_until(condition, timeout=LONG)


@pytest.mark.parametrize("interval", [0, -1, "soon"])
def test_wait_until_checks_its_interval(interval: Any) -> None:
    with pytest.raises(ValueError, match="interval= argument of wait_until"):
        wait_until(lambda: True, interval=interval)


def test_wait_until_times_out_naming_the_watched(fakes: Callable[[str], PipeProcess]) -> None:
    with watching(fakes("worker")), pytest.raises(WaitTimeout) as excinfo:
        wait_until(lambda: "", timeout=0.02, interval=0.005)
    assert str(excinfo.value).endswith("the last value was ''; worker (pid 0, running)")


# --- race: the one wait every other is made of ---------------------------------------------------------------------


def _doing(what: str) -> Callable[[], str]:
    return lambda: what


def test_race_ends_at_once_when_a_watched_process_dies(children: Callable[..., Child]) -> None:
    read, write = os.pipe()
    child = children(_exit_when_told, 4, name="worker")
    child.die_when_watched = True
    reported: list[BaseException] = []
    try:
        with pytest.raises(ProcessExited) as excinfo:
            race(read, time.monotonic() + LONG, [child], _doing("waiting for the pipe"), report=reported.append)
        assert time.monotonic() - child.died_at() < PROMPT
    finally:
        os.close(read)
        os.close(write)
    assert str(excinfo.value) == f"worker (pid {child.process.pid}) exited with code 4 while waiting for the pipe"
    assert reported == [excinfo.value]


@pytest.mark.parametrize("thing", ["socket", "fd", "nothing"])
def test_race_raises_the_exit_error_of_the_process_that_ended(
    socks: Sockets, fakes: Callable[[str], PipeProcess], thing: str
) -> None:
    server, _ = pair(socks)
    read, write = os.pipe()
    alive, dead = fakes("alive"), fakes("dead")
    dead.die(6)
    what = {"socket": server, "fd": read, "nothing": None}[thing]
    try:
        with pytest.raises(ProcessExited, match=r"^dead \(pid 0\) exited with code 6 while waiting$"):
            race(what, time.monotonic() + LONG, [alive, dead], _doing("waiting"))
    finally:
        os.close(read)
        os.close(write)


def test_race_honours_its_deadline(fakes: Callable[[str], PipeProcess]) -> None:
    read, write = os.pipe()
    try:
        for seconds in (0.0, 0.05, 0.2):
            started = time.monotonic()
            assert race(read, started + seconds, [fakes("alive")], _doing("waiting")) is False
            took = time.monotonic() - started
            assert seconds <= took < seconds + PROMPT
    finally:
        os.close(read)
        os.close(write)


def test_race_honours_its_deadline_when_the_look_finds_nothing(fakes: Callable[[str], PipeProcess]) -> None:
    read, write = os.pipe()
    os.write(write, b"never read")  # ready all along, never what is awaited
    looks: list[float] = []
    try:
        started = time.monotonic()
        found = race(read, started + 0.05, [fakes("alive")], _doing("waiting"), look=lambda: bool(looks.append(1)))
        assert found is False
        assert time.monotonic() - started < PROMPT
        assert looks  # looked at each time it was ready, and still gave up at the deadline
    finally:
        os.close(read)
        os.close(write)


def test_race_returns_at_once_for_a_thing_already_there(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    server, client = pair(socks)
    client.send(b"here")
    delivered(server)
    dead = fakes("dead")
    dead.die()  # a ready thing wins over an end: what a process sent before it ended is still received
    started = time.monotonic()
    assert race(server, started - 1, [dead], _doing("waiting")) is True  # a deadline already past: still one look
    assert race(server, started + LONG, [], _doing("waiting")) is True
    assert time.monotonic() - started < PROMPT
    assert server.recv(zmq.NOBLOCK) == b"here"


def test_race_looks_until_what_is_awaited_is_there(socks: Sockets) -> None:
    server, client = pair(socks)
    for number in range(3):
        client.send(str(number).encode())
    taken: list[bytes] = []

    def look() -> bool:
        taken.append(server.recv(zmq.NOBLOCK))
        return taken[-1] == b"2"

    assert race(server, time.monotonic() + LONG, [], _doing("waiting"), look=look) is True
    assert taken == [b"0", b"1", b"2"]


def test_race_gives_what_is_on_its_way_its_grace_after_a_death(fakes: Callable[[str], PipeProcess]) -> None:
    read, write = os.pipe()
    dead = fakes("dead")
    dead.die()
    late = threading.Timer(0.05, os.write, (write, b"last words"))  # arrives after the end was seen
    late.start()
    try:
        started = time.monotonic()
        assert race(read, started + LONG, [dead], _doing("waiting"), grace=LONG) is True
        assert time.monotonic() - started < PROMPT
        assert os.read(read, 100) == b"last words"
        started = time.monotonic()
        with pytest.raises(ProcessExited):  # nothing more on its way: the end is reported after the grace
            race(read, started + LONG, [dead], _doing("waiting"), grace=0.05)
        assert 0.05 <= time.monotonic() - started < PROMPT
    finally:
        late.join()
        os.close(read)
        os.close(write)


def test_race_without_a_thing_looks_once_after_a_death(fakes: Callable[[str], PipeProcess]) -> None:
    dead = fakes("dead")
    dead.die()
    looks: list[int] = []
    assert race(None, time.monotonic() + LONG, [dead], _doing("waiting"), look=lambda: not looks.append(1)) is True
    assert looks == [1]
    with pytest.raises(ProcessExited):
        race(None, time.monotonic() + LONG, [dead], _doing("waiting"), look=lambda: bool(looks.append(2)))
    assert looks == [1, 2]


def test_race_without_a_thing_or_processes_waits_out_its_deadline() -> None:
    started = time.monotonic()
    assert race(None, started + 0.05, [], _doing("a pause")) is False
    assert 0.05 <= time.monotonic() - started < PROMPT


# --- ConnectionWaiter -------------------------------------------------------------------------------------------


def test_connection_waiter_is_still_importable_from_waiting() -> None:
    import zmqtest
    import zmqtest.connections
    import zmqtest.waiting

    assert zmqtest.waiting.ConnectionWaiter is zmqtest.connections.ConnectionWaiter is zmqtest.ConnectionWaiter
    with pytest.raises(AttributeError, match="has no attribute 'ConnectionWaiters'"):
        zmqtest.waiting.ConnectionWaiters  # noqa: B018


def test_connection_from_another_process(socks: Sockets, children: Callable[..., Child]) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0), name="backend")
    with ConnectionWaiter(mimic) as waiter:
        child = children(_connect_until_told, mimic.endpoint, name="client")
        with watching(child):
            event = waiter.wait(timeout=LONG)
    assert event["name"] == "HANDSHAKE_SUCCEEDED"
    assert event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert event["endpoint"] == mimic.endpoint
    assert [e["name"] for e in waiter.events] == ["ACCEPTED", "HANDSHAKE_SUCCEEDED"]
    child.tell()


def test_connection_to_another_process_from_the_connecting_side(socks: Sockets, children: Callable[..., Child]) -> None:
    child = children(_bind_and_report, name="server")
    assert child.conn.poll(WAIT_MS / 1000), "the child did not report its endpoint"
    endpoint = child.conn.recv_bytes().decode()
    mimic = socks(zmq.PAIR, name="client")
    with ConnectionWaiter(mimic) as waiter, watching(child):
        mimic.connect(endpoint)
        event = waiter.wait(timeout=LONG)
    assert event["endpoint"] == endpoint
    assert [e["name"] for e in waiter.events] == ["CONNECTED", "HANDSHAKE_SUCCEEDED"]  # as the socket's watch sees
    child.tell()


def test_connection_waiter_times_out_with_nothing_seen(socks: Sockets, fakes: Callable[[str], PipeProcess]) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0), name="backend")
    with ConnectionWaiter(mimic) as waiter, watching(fakes("server")), pytest.raises(WaitTimeout) as excinfo:
        waiter.wait(timeout=0.02)
    assert re.fullmatch(
        f"waiting for a connection on PAIR socket 'backend' bound to {re.escape(mimic.endpoint)}: no connection within "
        f"0.02 s; no peer has connected at {re.escape(mimic.endpoint)} since the socket was bound there "
        r"[0-9.e-]+ s ago; server \(pid 0, running\)",
        str(excinfo.value),
    ), str(excinfo.value)
    assert excinfo.value.what == "a connection"


def test_connection_waiter_timeout_on_a_mimic_says_what_its_peer_watch_knows(socks: Sockets, ipc_dir: Path) -> None:
    endpoint = f"ipc://{ipc_dir}/nobody"
    mimic = socks(zmq.DEALER, name="client")
    with ConnectionWaiter(mimic) as waiter:
        mimic.connect(endpoint)
        with pytest.raises(WaitTimeout) as excinfo:
            waiter.wait(timeout=0.1)
    assert re.fullmatch(
        f"waiting for a connection on DEALER socket 'client' connected to {re.escape(endpoint)}: no connection within "
        f"0.1 s; no peer has connected at {re.escape(endpoint)} since the socket connected to it [0-9.e-]+ s ago",
        str(excinfo.value),
    ), str(excinfo.value)


def test_connection_waiter_timeout_lists_the_events(ctx: zmq.Context[Any], socks: Sockets, ipc_dir: Path) -> None:
    """On a plain pyzmq socket, the waiter's own monitor sees every event, retries too."""
    endpoint = f"ipc://{ipc_dir}/nobody"
    mimic = socks.track(ctx.socket(zmq.DEALER))
    mimic.reconnect_ivl = 2
    with ConnectionWaiter(mimic) as waiter:
        mimic.connect(endpoint)
        with pytest.raises(WaitTimeout) as excinfo:
            waiter.wait(timeout=0.1)
    message = str(excinfo.value)
    assert message.startswith(
        f"waiting for a connection on DEALER socket at {endpoint}: no connection within 0.1 s; "
        f"events seen on {endpoint}: "
    ), message
    assert re.search(r"CONNECT_RETRIED x\d+", message)  # a retry every 10 ms
    assert message.endswith("(nothing accepted the connection: is the process bound there, and running?)")


def test_connection_waiter_ends_when_a_watched_process_dies(socks: Sockets, children: Callable[..., Child]) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0), name="backend")
    child = children(_exit_when_told, 2, name="PongProc")
    child.die_when_watched = True
    with ConnectionWaiter(mimic) as waiter, watching(child), pytest.raises(ProcessExited) as excinfo:
        waiter.wait(timeout=LONG)
    assert time.monotonic() - child.died_at() < PROMPT
    assert f"exited with code 2 while waiting for a connection on {mimic.describe()}" in str(excinfo.value)


def test_a_handshake_failure_is_reported_at_once_by_name(socks: Sockets) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0), name="secure", plain_server=True)
    with ConnectionWaiter(mimic) as waiter:
        socks(zmq.PAIR, connect=mimic.endpoint)  # NULL mechanism: not what a PLAIN server speaks
        started = time.monotonic()
        with pytest.raises(HandshakeFailed) as excinfo:
            waiter.wait(timeout=LONG)
    assert time.monotonic() - started < PROMPT
    assert str(excinfo.value).startswith(
        f"waiting for a connection on {mimic.describe()}: HANDSHAKE_FAILED_PROTOCOL (ZMTP_MECHANISM_MISMATCH) on "
        f"{mimic.endpoint}: the two sides use different security mechanisms (NULL, PLAIN or CURVE); events seen"
    )


def test_connection_waiter_sees_each_connection_in_turn(socks: Sockets) -> None:
    mimic = socks(zmq.ROUTER, bind=("", 0), name="router")
    with ConnectionWaiter(mimic) as waiter:
        socks(zmq.DEALER, connect=mimic.endpoint)
        assert waiter.wait(timeout=5)["name"] == "HANDSHAKE_SUCCEEDED"
        with pytest.raises(WaitTimeout):
            waiter.wait(timeout=0.01)  # that one was taken
        socks(zmq.DEALER, connect=mimic.endpoint)
        assert waiter.wait(timeout=5)["name"] == "HANDSHAKE_SUCCEEDED"


def test_connection_waiters_of_a_mimic_share_its_peer_watch(socks: Sockets) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0))
    first = ConnectionWaiter(mimic)
    second = ConnectionWaiter(mimic)  # libzmq allows one monitor per socket: both read the mimic's own
    socks(zmq.PAIR, connect=mimic.endpoint)
    assert first.wait(timeout=5)["name"] == second.wait(timeout=5)["name"] == "HANDSHAKE_SUCCEEDED"
    first.close()
    second.close()
    assert mimic.peers is not None
    assert mimic.peers.stopped is None  # the watch is the socket's: it goes on
    assert mimic.peers.state(mimic.endpoint)[0]


def test_a_monitor_of_the_tests_own_takes_the_place_of_the_peer_watch(socks: Sockets) -> None:
    mimic = socks(zmq.PAIR, bind=("", 0), name="watched", timeout=0.01)
    monitor = socks.track(mimic.get_monitor_socket())
    assert mimic.peers is not None
    assert mimic.peers.stopped == "the test started a monitor of its own on this socket"
    socks(zmq.PAIR, connect=mimic.endpoint)
    assert monitor.poll(WAIT_MS)  # the test's monitor sees the connection
    with pytest.raises(SocketTimeout) as excinfo:
        mimic.recv()
    assert str(excinfo.value).endswith(
        "no message within 0.01 s; (the test started a monitor of its own on this socket: its connections are not "
        "known)"
    ), str(excinfo.value)
    mimic.disable_monitor()


def test_connection_waiter_closes_cleanly(ctx: zmq.Context[Any], socks: Sockets) -> None:
    mimic = socks.track(ctx.socket(zmq.PAIR))  # a plain socket: the waiter makes a monitor of its own
    mimic.bind("tcp://127.0.0.1:0")
    waiter = ConnectionWaiter(mimic)
    with pytest.raises(ValueError, match="already has a monitor"):
        ConnectionWaiter(mimic)
    waiter.close()
    waiter.close()
    assert waiter.monitor.closed
    assert mimic._monitor_socket is None
    with pytest.raises(ValueError, match="is closed"):
        waiter.wait(timeout=0)
    with ConnectionWaiter(mimic) as again:  # one at a time is fine
        socks(zmq.PAIR, connect=mimic.last_endpoint.decode())
        again.wait(timeout=5)
    assert again.monitor.closed
    late = ConnectionWaiter(mimic)
    mimic.close()
    late.close()  # after its socket: still closes the monitor socket
    assert late.monitor.closed
    # the ctx fixture terminates the context with a deadline: a monitor socket left open would fail the test


def test_a_closed_socket_ends_the_wait(ctx: zmq.Context[Any]) -> None:
    sock = TestSocket(ctx, zmq.PAIR)
    sock.bind(("", 0))
    with ConnectionWaiter(sock) as waiter:
        sock.close()
        with pytest.raises(ZmqTestError, match="the socket was closed or its monitor stopped"):
            waiter.wait(timeout=5)


# --- the error types --------------------------------------------------------------------------------------------


def test_wait_timeout_is_a_timeout_error_and_pickles() -> None:
    error = WaitTimeout("waited", what="x", timeout=0.5)
    assert isinstance(error, ZmqTestError)
    assert isinstance(error, TimeoutError)
    assert not isinstance(error, zmq.ZMQError)
    error.context.append("  at line 3")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is WaitTimeout
    assert (str(copy), copy.what, copy.timeout) == ("waited\n  at line 3", "x", 0.5)


def test_handshake_failed_is_a_zmqtest_error_and_pickles() -> None:
    error = HandshakeFailed("mismatch")
    assert isinstance(error, ZmqTestError)
    assert str(pickle.loads(pickle.dumps(error))) == "mismatch"


@pytest.mark.parametrize("helper", ["wait_for_message", "wait_until", "ConnectionWaiter"])
def test_a_process_that_no_longer_ends_waits_does_not_end_the_helpers(
    socks: Sockets, fakes: Callable[[str], PipeProcess], helper: str
) -> None:
    """A process the test stopped (``ends_waits`` false) is dead but must not cut the helpers' waits short."""
    stopped = fakes("stopped")
    stopped.die(0)
    stopped.ends_waits = False  # type: ignore[attr-defined]  # what a ManagedProcess says once stopped
    server, client = pair(socks)
    with watching(stopped):
        if helper == "wait_for_message":
            client.send(b"hello")
            assert wait_for_message(server, timeout=WAIT_MS / 1000) == [b"hello"]
        elif helper == "wait_until":
            with pytest.raises(WaitTimeout, match="not true within"):
                wait_until(lambda: False, timeout=0.05)
        else:
            fresh = socks(zmq.PAIR, name="late")
            with ConnectionWaiter(fresh) as waiter:
                fresh.connect(server.endpoint)
                waiter.wait(timeout=WAIT_MS / 1000)
