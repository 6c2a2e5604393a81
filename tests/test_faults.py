"""Faults through the tap: each one, on real pyzmq peers, and in the transcript.

A check that nothing arrives while a fault holds it (``poll(ABSENT_MS) == 0``) cannot
fail when the fault works; a check of the time a delay took is a lower bound the
delay guarantees. No test asserts how fast anything is.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import zmqtest.transcript
from zmqtest import Tap
from zmqtest.contexts import SocketFactory
from zmqtest.endpoints import Endpoint
from zmqtest.processes import ProcessManager
from zmqtest.tap import TapFactory
from zmqtest.waiting import wait_until

ABSENT_MS = 200
"""How long a test looks for a message that a fault holds back (it would arrive in about a millisecond)."""
DEADLINE = 10.0
PINGPONG = Path(__file__).resolve().parent.parent / "examples" / "pingpong"


@pytest.fixture
def pipeline(zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory) -> tuple[Any, Tap, Any]:
    """A PUSH connected through a tap to a PULL: (push, tap, pull)."""
    pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="pull", timeout=DEADLINE)
    tap = zmq_tap(zmq_endpoint, client="push", server="pull")
    push = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="push", timeout=DEADLINE, reconnect_ivl=20)
    push.send(b"warm-up")  # the connection is up and through the handshake
    assert pull.recv() == b"warm-up"
    return push, tap, pull


def notes() -> list[str]:
    transcript = zmqtest.transcript.current()
    assert transcript is not None
    return [data for _, _, kind, data in transcript.events if kind == "note" and "tap" in data]


def marked(mark: str) -> list[Any]:
    transcript = zmqtest.transcript.current()
    assert transcript is not None
    return [data[1] for _, _, kind, data in transcript.events if kind == "wire" and data[2] == mark]


def test_a_delay_holds_every_chunk_back_and_keeps_the_order(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    with tap.delay(0.2):
        began = perf_counter()
        for number in range(20):
            push.send(b"%d" % number)
        assert pull.poll(50) == 0  # nothing arrives before its time
        assert [pull.recv() for _ in range(20)] == [b"%d" % number for number in range(20)]
        assert perf_counter() - began >= 0.2  # a lower bound the delay guarantees
    with tap.delay(0.02, jitter=0.02, seed=3):
        for number in range(50):
            push.send(b"%d" % number)
        assert [pull.recv() for _ in range(50)] == [b"%d" % number for number in range(50)]
    assert any(note.endswith("delay by 200 ms: on") for note in notes())
    assert any(note.endswith("delay by 20 ms ± 20 ms: off") for note in notes())


def test_a_chunk_that_comes_due_while_the_tap_is_busy_still_goes(pipeline: tuple[Any, Tap, Any]) -> None:
    # the tap's loop decides what to write at one instant and how long to sleep a moment later: a chunk
    # that comes due in between must count, or the loop sleeps until some other event (here: none)
    push, tap, pull = pipeline
    with tap.delay(0.0003, jitter=0.0003, seed=5):
        for burst in range(300):
            for number in range(3):
                push.send(b"%d.%d" % (burst, number))
            assert [pull.recv() for _ in range(3)] == [b"%d.%d" % (burst, number) for number in range(3)]


def test_drop_next_drops_exactly_that_many_whole_messages(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    with tap.drop(next=2) as fault:
        for number in range(5):
            push.send_multipart([b"%d" % number, b"x" * 1000 * number])
        assert [pull.recv_multipart()[0] for _ in range(3)] == [b"2", b"3", b"4"]
    assert fault.hits == 2
    assert marked("(dropped by the tap)") == [(b"0", b""), (b"1", b"x" * 1000)]
    assert notes()[-1].endswith("drop messages: the next 2: off (2 messages)")


def test_drop_a_ratio_of_messages_with_a_seed(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    with tap.drop(ratio=0.5, seed=1):
        for number in range(100):
            push.send(b"%d" % number)
        push.send(b"the last one, maybe")
        # a send returns before the message reaches the tap: the fault must still be on when it does
        wait_until(lambda: tap.messages["pull"] == 1 + 101, what="the 101 messages reaching the tap")
    push.send(b"end")  # the tap decides in arrival order with random.Random(seed): the same go, run after run
    chances = random.Random(1)
    expected = [b"%d" % number for number in range(100) if chances.random() >= 0.5]
    if chances.random() >= 0.5:
        expected.append(b"the last one, maybe")
    received = []
    while (message := pull.recv()) != b"end":
        received.append(message)
    assert received == expected
    assert 20 < len(expected) < 80


def test_drop_those_matching_a_predicate(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline

    def heartbeat(frames: list[bytes]) -> bool:
        return frames[0] == b"HEARTBEAT"

    with tap.drop(matching=heartbeat):
        for frames in ([b"HEARTBEAT"], [b"work", b"1"], [b"HEARTBEAT", b"x"], [b"work", b"2"]):
            push.send_multipart(frames)
        assert pull.recv_multipart() == [b"work", b"1"]
        assert pull.recv_multipart() == [b"work", b"2"]
    assert notes()[-1].endswith("drop messages: those matching heartbeat: off (2 messages)")


def test_duplicate_sends_whole_messages_twice(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    big = os.urandom(3 << 20)
    with tap.duplicate(next=2):
        push.send_multipart([b"a", big])
        push.send(b"b")
        push.send(b"c")
        assert [pull.recv_multipart() for _ in range(5)] == [[b"a", big], [b"a", big], [b"b"], [b"b"], [b"c"]]
    assert pull.poll(ABSENT_MS) == 0
    assert len(marked("(duplicated by the tap)")) == 2


def test_a_fault_to_one_side_leaves_the_other_direction_alone(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    server = zmq_socket_factory(zmq.PAIR, bind=zmq_endpoint, name="server", timeout=DEADLINE)
    tap = zmq_tap(zmq_endpoint)
    client = zmq_socket_factory(zmq.PAIR, connect=tap.endpoint, name="client", timeout=DEADLINE)
    with tap.drop(next=1, to="client"):
        client.send(b"up 1")
        assert server.recv() == b"up 1"
        server.send(b"down 1")  # dropped
        server.send(b"down 2")
        assert client.recv() == b"down 2"


def test_hold_is_a_partition_that_heals_in_order(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    with tap.hold():
        for number in range(3):
            push.send(b"%d" % number)
        wait_until(lambda: tap.messages["pull"] == 1 + 3, what="the 3 messages reaching the tap")
        assert pull.poll(ABSENT_MS) == 0
    assert [pull.recv() for _ in range(3)] == [b"0", b"1", b"2"]
    assert [note.rsplit(": ", 1)[-1] for note in notes()[-2:]] == ["on", "off"]


def test_slow_delivers_everything_at_about_the_rate(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    body = os.urandom(10_000)
    with tap.slow(20_000):
        began = perf_counter()
        push.send(body)
        assert pull.recv() == body
        assert perf_counter() - began >= 0.3  # 10 kB at 20 kB/s: half a second, at least 0.3 s of it by the rate


def test_cut_disconnects_and_the_peer_reconnects_through_the_tap(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    monitor = push.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        tap.cut()
        assert monitor.poll(int(DEADLINE * 1000)), "the pusher saw no disconnect"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        push.disable_monitor()
        monitor.close(linger=0)
    wait_until(lambda: tap.connections >= 2, what="the pusher reconnecting through the tap")
    push.send(b"after the cut")
    assert pull.recv() == b"after the cut"
    assert any("ended: cut by the test" in note for note in notes())


def test_cut_as_a_block_keeps_the_peers_apart_until_it_ends(pipeline: tuple[Any, Tap, Any]) -> None:
    push, tap, pull = pipeline
    with tap.cut():
        wait_until(lambda: tap.connections >= 3, what="the pusher trying again while the tap refuses")
        push.send(b"sent while cut")
        assert pull.poll(ABSENT_MS) == 0
    assert pull.recv() == b"sent while cut"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tap: tap.drop(ratio=2), "drop(ratio=...) takes a chance between 0 and 1, not 2"),
        (lambda tap: tap.drop(next=-1), "drop(next=...) takes a whole number of messages >= 0, not -1"),
        (lambda tap: tap.slow(0), "slow takes bytes per second > 0, not 0"),
        (lambda tap: tap.delay(-1), "delay takes seconds >= 0"),
        (lambda tap: tap.hold(to="nobody"), "hold(to='nobody'): this tap's peers are 'client' and 'server'"),
    ],
)
def test_a_fault_with_bad_arguments_says_which(
    make: Any, message: str, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    tap = zmq_tap(zmq_endpoint)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")), make(tap):
        pass


def lazy_pirate_request(context: zmq.Context[Any], endpoint: str, request: bytes, *, retries: int = 3) -> bytes:
    """The zguide's Lazy Pirate client: wait a while for the reply; else close the REQ, open a new one, resend."""
    for _ in range(retries):
        client = context.socket(zmq.REQ)
        client.linger = 0
        try:
            client.connect(endpoint)
            client.send(request)
            if client.poll(500):
                return client.recv()
        finally:
            client.close()
    raise RuntimeError(f"no reply to {request!r} after {retries} tries")


def test_a_lazy_pirate_client_recovers_from_a_dropped_reply(
    zmq_process_factory: ProcessManager, zmq_endpoint: Endpoint, zmq_tap: TapFactory, zmq_context: zmq.Context[Any]
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PINGPONG), os.environ.get("PYTHONPATH", "")])}
    zmq_process_factory(
        [sys.executable, "-m", "pingpong", "serve", "--bind", zmq_endpoint], name="pong", ready="listening", env=env
    )
    tap = zmq_tap(zmq_endpoint, client="pirate", server="pong")
    with tap.drop(next=1, to="pirate"):
        assert lazy_pirate_request(zmq_context, tap.endpoint, b'["ping", 7]') == b'["pong",7]'
    assert marked("(dropped by the tap)") == [(b"", b'["pong",7]')]
    assert tap.connections == 2  # the second try, on a new socket


def test_a_heartbeating_peer_expires_during_a_partition_and_comes_back_when_it_heals(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    router = zmq_socket_factory(zmq.ROUTER, bind=zmq_endpoint, name="broker", timeout=DEADLINE)
    tap = zmq_tap(zmq_endpoint, client="worker", server="broker")
    worker = zmq_socket_factory(
        zmq.DEALER,
        connect=tap.endpoint,
        name="worker",
        timeout=DEADLINE,
        heartbeat_ivl=50,  # libzmq's ZMTP heartbeats: PING every 50 ms, give up after 300 ms without traffic
        heartbeat_timeout=300,
        reconnect_ivl=20,
    )
    worker.send(b"register")
    assert router.recv_multipart()[1:] == [b"register"]
    monitor = worker.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        with tap.hold():
            assert monitor.poll(int(DEADLINE * 1000)), "the worker's heartbeats did not expire the connection"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        worker.disable_monitor()
        monitor.close(linger=0)
    worker.send(b"register again")  # the partition healed: the worker's reconnection completes its handshake
    assert router.recv_multipart()[1:] == [b"register again"]
    assert tap.connections >= 2
    transcript = zmqtest.transcript.current()
    assert transcript is not None
    assert "PING" not in transcript.render()  # heartbeats are forwarded, not recorded


def test_a_closed_tap_says_so(zmq_endpoint: Endpoint) -> None:
    tap = Tap(zmq_endpoint)
    with tap.delay(0.1):
        tap.close()  # the block still ends quietly
    with pytest.raises(RuntimeError, match="is closed: its faults and cuts ended with it"):
        tap.cut()


def test_a_matching_function_that_raises_ends_the_tap_and_says_so(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint
) -> None:
    pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="pull")
    tap = Tap(zmq_endpoint)
    push = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="push")

    def broken(frames: list[bytes]) -> bool:
        raise KeyError(frames[0])

    push.send(b"first")
    assert pull.recv() == b"first"
    with tap.drop(matching=broken):
        push.send(b"boom")
        wait_until(lambda: tap.failure is not None, what="the tap's thread failing")
    with pytest.raises(RuntimeError, match=r"its thread failed: .*drop messages: those matching broken: the function"):
        tap.close()
