"""PUB/SUB barriers: the first message is never lost, errors say what was awaited, deaths end the wait.

The proofs run a real process under test (tests/apps/pubsub.py) through a thousand
fresh connections each way and send the first message right after the barrier: none
may be lost. For contrast they print (not assert) how many are lost without the
barrier and with only a socket monitor's handshake. The other tests use sockets of
the test itself as the peer, except where a process has to die.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import zmq
from apps.pubsub import Publisher, Subscriber

from zmqtest import ProcessTest, make_sock
from zmqtest.barriers import connect_and_wait, wait_for_subscriber, wait_until_receiving
from zmqtest.contexts import SocketFactory
from zmqtest.errors import ProcessExited, WaitTimeout
from zmqtest.processes import ManagedProcess, ProcessManager
from zmqtest.settings import default_timeout
from zmqtest.waiting import ConnectionWaiter, wait_for_message

ROUNDS = 1000
"""Fresh connections per proof: each must deliver its first message."""
CONTROL_ROUNDS = 200
"""Fresh connections per contrast (no barrier, a handshake only): their losses are printed, not asserted."""
TOPIC = b"news"
SHORT = 0.05
"""Seconds for waits that are meant to time out."""

# --- the processes under test ------------------------------------------------------------------------------------


@dataclass
class Steered:
    """A process under test and the mimic sockets that steer it."""

    process: ManagedProcess
    control: Any
    reports: Any = None

    def tell(self, *frames: bytes) -> None:
        self.control.send_multipart(list(frames))


@pytest.fixture
def subscriber(zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory) -> Steered:
    """tests/apps/pubsub.py's Subscriber, ready once it has connected to the test's report socket."""
    control = zmq_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    reports = zmq_socket_factory(zmq.PULL, bind=("", 0), name="reports")
    process = zmq_process_factory(
        Subscriber(control.endpoint, reports.endpoint), ready=reports, stop=lambda: control.send_multipart([b"stop"])
    )
    return Steered(process, control, reports)


@pytest.fixture
def publisher(zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory) -> Steered:
    """tests/apps/pubsub.py's Publisher, ready once it prints the endpoint its PUB is bound to."""
    control = zmq_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    process = zmq_process_factory(
        Publisher(control.endpoint),
        ready=r"publishing on (?P<endpoint>\S+)",
        stop=lambda: control.send_multipart([b"stop"]),
    )
    return Steered(process, control)


# --- the proofs: 0 of 1,000 first messages lost ------------------------------------------------------------------

WAITS = {"subscription": ROUNDS, "handshake": CONTROL_ROUNDS, "nothing": CONTROL_ROUNDS}
"""What a round waits for before its first message (the barrier, a socket monitor's handshake, or nothing): rounds."""


def subscriber_round(context: zmq.Context[Any], subscriber: Steered, number: int, wait: str) -> bool:
    """A fresh mimic XPUB; the process's SUB connects to it; whether the first message sent reached the process.

    With the barrier the first message must arrive (a timeout fails the test). Without
    it, an end marker sent after the barrier tells whether the first one was lost.
    """
    first = [TOPIC, b"first", str(number).encode()]
    end = [TOPIC, b"end", str(number).encode()]
    xpub = make_sock(context, zmq.XPUB, bind=("", 0), name="feed")
    waiter = ConnectionWaiter(xpub) if wait == "handshake" else None
    try:
        subscriber.tell(b"connect", xpub.endpoint.encode(), TOPIC)
        if wait == "subscription":
            wait_for_subscriber(xpub, TOPIC)
            xpub.send_multipart(first)
            received = [subscriber.reports.recv_multipart()]
        else:
            if waiter is not None:
                waiter.wait()
            xpub.send_multipart(first)
            wait_for_subscriber(xpub, TOPIC)
            xpub.send_multipart(end)
            received = list(iter(subscriber.reports.recv_multipart, end))
    finally:
        if waiter is not None:
            waiter.close()
        xpub.close()
    assert received in ([], [first]), f"round {number}: unexpected messages {received}"
    return bool(received)


def publisher_round(context: zmq.Context[Any], publisher: Steered, number: int, wait: str) -> bool:
    """A fresh mimic SUB connects to the process's PUB; whether the first message the process publishes reaches it.

    With the barrier the first message must arrive (a timeout fails the test). Without
    it, an end marker published after the barrier tells whether the first one was lost.
    """
    first = [TOPIC, b"first", str(number).encode()]
    end = [TOPIC, b"end", str(number).encode()]
    sub = make_sock(context, zmq.SUB, subscribe=TOPIC, name="ticks")
    seen: list[list[bytes]] = []

    def probe() -> None:
        publisher.tell(b"publish", TOPIC, b"probe")

    def probe_answer(frames: list[bytes]) -> bool:
        seen.append(frames)
        return frames[1] == b"probe"

    try:
        if wait == "subscription":
            sub.connect(publisher.process.endpoint)
            wait_until_receiving(sub, probe, probe_answer)
            publisher.tell(b"publish", *first)
            seen.append(wait_for_message(sub, lambda frames: frames[1] != b"probe"))  # answers to earlier probes
        else:
            if wait == "handshake":
                connect_and_wait(sub, publisher.process.endpoint)
            else:
                sub.connect(publisher.process.endpoint)
            publisher.tell(b"publish", *first)
            wait_until_receiving(sub, probe, probe_answer)
            publisher.tell(b"publish", *end)
            seen.extend(iter(sub.recv_multipart, end))
    finally:
        sub.close()
    data = [frames for frames in seen if frames[1] != b"probe"]
    assert data in ([], [first]), f"round {number}: unexpected messages {data}"
    return bool(data)


def lost_in(rounds: int, one_round: Callable[[int], bool]) -> tuple[int, float]:
    """How many of ``rounds`` rounds lost their first message, and the seconds they took."""
    began = time.perf_counter()
    lost = sum(not one_round(number) for number in range(rounds))
    return lost, time.perf_counter() - began


@pytest.mark.process
def test_first_message_to_a_subscribing_process_is_never_lost(
    zmq_context: zmq.Context[Any], subscriber: Steered
) -> None:
    """The process's SUB connects to a fresh mimic XPUB 1,000 times; after wait_for_subscriber none loses a message."""
    figures = {}
    for wait, rounds in WAITS.items():
        lost, seconds = lost_in(
            rounds, lambda number, wait=wait: subscriber_round(zmq_context, subscriber, number, wait)
        )
        figures[wait] = (lost, seconds)
        print(f"process SUB <- mimic XPUB, waiting for {wait}: {lost}/{rounds} first messages lost ({seconds:.2f} s)")
    assert figures["subscription"][0] == 0, figures


@pytest.mark.process
def test_first_message_from_a_publishing_process_is_never_lost(
    zmq_context: zmq.Context[Any], publisher: Steered
) -> None:
    """A fresh mimic SUB connects to the process's PUB 1,000 times; after wait_until_receiving none loses a message."""
    figures = {}
    for wait, rounds in WAITS.items():
        lost, seconds = lost_in(rounds, lambda number, wait=wait: publisher_round(zmq_context, publisher, number, wait))
        figures[wait] = (lost, seconds)
        print(f"mimic SUB <- process PUB, waiting for {wait}: {lost}/{rounds} first messages lost ({seconds:.2f} s)")
    assert figures["subscription"][0] == 0, figures


@pytest.mark.process
def test_a_publisher_that_publishes_by_itself_needs_no_probe(
    zmq_context: zmq.Context[Any], zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory
) -> None:
    """Any message the process published (here a heartbeat) proves the subscription; 0 of 100 first messages lost."""
    control = zmq_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    publisher = zmq_process_factory(
        Publisher(control.endpoint, heartbeat=0.002),
        ready=r"publishing on (?P<endpoint>\S+)",
        stop=lambda: control.send_multipart([b"stop"]),
    )
    received = []
    for number in range(100):
        tag = str(number).encode()
        with make_sock(zmq_context, zmq.SUB, connect=publisher.endpoint, subscribe=b"", name="ticks") as sub:
            assert wait_until_receiving(sub, predicate=lambda frames: frames == [b"heartbeat"]) == [b"heartbeat"]
            control.send_multipart([b"publish", b"first", tag])
            received.append(wait_for_message(sub, lambda frames: frames != [b"heartbeat"]))
    assert received == [[b"first", str(number).encode()] for number in range(100)]


# --- a watched process that dies ends the wait ------------------------------------------------------------------


@pytest.mark.process
def test_a_dying_subscriber_ends_wait_for_subscriber(zmq_socket_factory: SocketFactory, subscriber: Steered) -> None:
    xpub = zmq_socket_factory(zmq.XPUB, bind=("", 0), name="feed")
    subscriber.tell(b"exit", b"7")
    with pytest.raises(ProcessExited, match=r"Subscriber \(pid \d+\) exited with code 7 while wait_for_subscriber"):
        wait_for_subscriber(xpub, TOPIC, timeout=60)


@pytest.mark.process
def test_a_dying_publisher_ends_wait_until_receiving(zmq_socket_factory: SocketFactory, publisher: Steered) -> None:
    sub = zmq_socket_factory(zmq.SUB, connect=publisher.process.endpoint, subscribe=b"", name="ticks")
    # Under load the process may still be exiting when the next probe goes: its send then sees the death first.
    with pytest.raises(
        ProcessExited,
        match=r"Publisher \(pid \d+\) exited with code 5 while (wait_until_receiving|send_multipart on PUSH socket "
        r"'control'[^\n]*\n(.*\n)*  in probe \d+ of wait_until_receiving)",
    ):
        wait_until_receiving(sub, probe=lambda: publisher.tell(b"exit", b"5"), timeout=60)


@pytest.mark.process
def test_a_process_the_test_stopped_does_not_end_the_waits(socks: Any, subscriber: Steered) -> None:
    subscriber.process.stop()
    xpub = socks(zmq.XPUB, bind=("", 0), name="feed")
    sub = socks(zmq.SUB, connect=xpub.endpoint, subscribe=b"", name="ticks")
    assert wait_for_subscriber(xpub) == [b""]
    assert wait_until_receiving(sub, lambda: xpub.send(b"probe")) == [b"probe"]


# --- wait_for_subscriber -----------------------------------------------------------------------------------------


@pytest.fixture
def feed(socks: Any) -> Any:
    """A mimic publisher (XPUB) bound to a free port."""
    return socks(zmq.XPUB, bind=("", 0), name="feed")


def test_the_first_message_after_wait_for_subscriber_arrives(socks: Any, feed: Any) -> None:
    sub = socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news")
    assert wait_for_subscriber(feed, b"news.eu") == [b"news"]
    feed.send_multipart([b"news.eu", b"first"])
    assert sub.recv_multipart() == [b"news.eu", b"first"]


@pytest.mark.parametrize(
    ("subscribed", "topic", "lets_through"),
    [
        (b"", b"news", True),
        (b"ne", b"news", True),
        (b"news", b"news", True),
        (b"news", None, True),
        (b"news.eu", b"news", False),
        (b"sport", b"news", False),
    ],
)
def test_a_subscription_to_a_prefix_of_the_topic_lets_it_through(
    socks: Any, feed: Any, subscribed: bytes, topic: bytes | None, lets_through: bool
) -> None:
    socks(zmq.SUB, connect=feed.endpoint, subscribe=subscribed)
    if lets_through:
        assert wait_for_subscriber(feed, topic) == [subscribed]
    else:
        assert feed.poll(5000)  # the subscription is there to be read
        with pytest.raises(WaitTimeout, match=rf"received subscribe {subscribed!r}"):
            wait_for_subscriber(feed, topic, timeout=SHORT)


def test_a_str_topic_is_utf8(socks: Any, feed: Any) -> None:
    socks(zmq.SUB, connect=feed.endpoint, subscribe="café".encode())
    assert wait_for_subscriber(feed, "café") == ["café".encode()]


def test_count_waits_for_that_many_subscribers_of_one_topic(socks: Any, feed: Any) -> None:
    subs = [socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news") for _ in range(3)]
    assert wait_for_subscriber(feed, b"news", count=3) == [b"news"] * 3
    feed.send_multipart([b"news", b"first"])
    assert [sub.recv_multipart() for sub in subs] == [[b"news", b"first"]] * 3


def test_each_subscription_is_awaited_once_and_a_reconnect_subscribes_again(socks: Any, feed: Any) -> None:
    sub = socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news")
    wait_for_subscriber(feed, b"news")
    with pytest.raises(WaitTimeout, match="no subscription to b'news'"):
        wait_for_subscriber(feed, b"news", timeout=SHORT)
    sub.disconnect(feed.endpoint)
    sub.connect(feed.endpoint)
    assert wait_for_subscriber(feed, b"news") == [b"news"]
    feed.send_multipart([b"news", b"after the reconnect"])
    assert sub.recv_multipart() == [b"news", b"after the reconnect"]


def test_subscriptions_read_while_waiting_for_another_topic_are_kept(socks: Any, feed: Any) -> None:
    socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news")
    assert feed.poll(5000)  # the subscription to b"news" is there to be read
    socks(zmq.SUB, connect=feed.endpoint, subscribe=b"weather")
    assert wait_for_subscriber(feed, b"weather") == [b"weather"]  # reads b"news" on the way
    assert wait_for_subscriber(feed, b"news", timeout=0) == [b"news"]
    with pytest.raises(WaitTimeout):
        wait_for_subscriber(feed, b"news", timeout=0)


def test_subscriptions_of_a_wait_that_timed_out_are_kept(socks: Any, feed: Any) -> None:
    socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news")
    assert feed.poll(5000)  # the subscription is there to be read
    with pytest.raises(WaitTimeout, match=r"1 of 2 subscriptions to b'news' .*received subscribe b'news'"):
        wait_for_subscriber(feed, b"news", count=2, timeout=SHORT)
    assert wait_for_subscriber(feed, b"news", timeout=0) == [b"news"]


def test_a_subscription_whose_subscriber_left_is_dropped(socks: Any, feed: Any) -> None:
    sport = socks(zmq.SUB, connect=feed.endpoint, subscribe=b"sport")
    assert feed.poll(5000)  # the subscription to b"sport" is there to be read
    socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news")
    wait_for_subscriber(feed, b"news")
    with pytest.raises(WaitTimeout, match=r"received nothing new \(read earlier: subscribe b'sport'\)"):
        wait_for_subscriber(feed, b"weather", timeout=0)
    sport.close()
    assert feed.poll(5000)  # its unsubscription is there to be read
    with pytest.raises(WaitTimeout, match=r"no subscription to b'sport' .*received unsubscribe b'sport'"):
        wait_for_subscriber(feed, b"sport", timeout=0)


def test_a_plain_pyzmq_xpub_works_too(ctx: zmq.Context[Any], socks: Any) -> None:
    xpub = socks.track(ctx.socket(zmq.XPUB))
    xpub.linger = 0
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    sub = socks(zmq.SUB, connect=("", port), subscribe=b"")
    assert wait_for_subscriber(xpub) == [b""]
    xpub.send(b"first")
    assert sub.recv() == b"first"


def test_no_subscriber_times_out_naming_socket_endpoint_topic_and_timeout(feed: Any) -> None:
    with pytest.raises(WaitTimeout) as caught:
        wait_for_subscriber(feed, b"news", timeout=SHORT)
    message = str(caught.value)
    assert message.startswith(
        f"wait_for_subscriber(b'news') on XPUB socket 'feed' bound to {feed.endpoint}: "
        "no subscription to b'news' (or a prefix of it) within 0.05 s; it received nothing "
        "(has the process's SUB connected to it and made a subscription to a prefix of b'news'?)"
    )
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.timeout == SHORT


def test_the_default_timeout_is_the_harness_timeout(feed: Any) -> None:
    with default_timeout(SHORT), pytest.raises(WaitTimeout, match=r"within 0\.05 s"):
        wait_for_subscriber(feed)


@pytest.mark.parametrize(
    ("sock_type", "expected"),
    [
        (
            zmq.PUB,
            r"needs a XPUB socket, got PUB socket 'mimic' .*: a PUB keeps the subscriptions it receives to "
            r"itself\. Make the mimic publisher an XPUB \(make_sock\(context, zmq\.XPUB, bind=\.\.\.\)\)",
        ),
        (
            zmq.SUB,
            r"got SUB socket 'mimic' .*: that is a subscriber\. .* use wait_until_receiving\(sub, probe=\.\.\.\)",
        ),
        (zmq.REP, r"got REP socket 'mimic' .*: wait_for_subscriber works on XPUB sockets only"),
    ],
)
def test_wait_for_subscriber_on_anything_but_an_xpub_says_what_to_use(
    socks: Any, sock_type: int, expected: str
) -> None:
    sock = socks(sock_type, bind=("", 0), name="mimic")
    with pytest.raises(TypeError, match=expected):
        wait_for_subscriber(sock)


@pytest.mark.parametrize(
    ("arguments", "error", "expected"),
    [
        ({"count": 0}, ValueError, r"invalid count=0 for wait_for_subscriber: expected a whole number, 1 or more"),
        ({"count": True}, ValueError, r"invalid count=True"),
        ({"topic": 7}, TypeError, r"invalid topic 7 for wait_for_subscriber: expected bytes, str or None"),
        ({"timeout": -1}, ValueError, r"invalid timeout -1 from the timeout= argument of wait_for_subscriber"),
    ],
)
def test_bad_arguments_to_wait_for_subscriber(
    feed: Any, arguments: dict[str, Any], error: type[Exception], expected: str
) -> None:
    with pytest.raises(error, match=expected):
        wait_for_subscriber(feed, **arguments)


def test_closed_socket_and_non_socket_are_named(feed: Any) -> None:
    feed.close()
    with pytest.raises(ValueError, match=r"needs an open XPUB socket: XPUB socket 'feed' .* is closed"):
        wait_for_subscriber(feed)
    with pytest.raises(TypeError, match=r"wait_until_receiving needs a SUB or XSUB socket, got 'tcp://"):
        wait_until_receiving("tcp://localhost:1")  # type: ignore[arg-type]


# --- wait_until_receiving ----------------------------------------------------------------------------------------


@pytest.fixture
def pub(socks: Any) -> Any:
    """Plays the process's publisher: it publishes when the test's probe says so."""
    return socks(zmq.PUB, bind=("", 0), name="process")


def test_the_first_message_after_wait_until_receiving_arrives(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"", name="ticks")
    probes: list[int] = []

    def probe() -> None:
        probes.append(1)
        pub.send(b"probe")

    assert wait_until_receiving(sub, probe) == [b"probe"]
    pub.send(b"first")
    assert [frames for frames in iter(sub.recv_multipart, [b"first"]) if frames != [b"probe"]] == []
    assert len(probes) >= 1


def test_probes_back_off(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"never", name="ticks")
    times: list[float] = []
    with pytest.raises(WaitTimeout):
        wait_until_receiving(sub, lambda: times.append(time.monotonic()), timeout=0.3, interval=0.01)
    assert 1 <= len(times) <= 6, times  # at 0, 0.01, 0.03, 0.07, 0.15 and 0.25 s at the most: not one per poll
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= min(0.01 * 2**index, 0.1) for index, gap in enumerate(gaps)), gaps


def test_a_predicate_skips_other_messages_and_the_error_quotes_them(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"", name="ticks")
    wait_until_receiving(sub, lambda: pub.send(b"noise"))

    def is_answer(frames: list[bytes]) -> bool:
        return frames == [b"answer"]

    with pytest.raises(WaitTimeout) as caught:
        wait_until_receiving(sub, lambda: pub.send(b"noise"), is_answer, timeout=0.5)
    message = str(caught.value)
    assert message.startswith("wait_until_receiving(probe=<lambda at test_barriers.py:"), message
    assert f", is_answer) on SUB socket 'ticks' connected to {pub.endpoint}: no matching message within 0.5 s (" in (
        message
    )
    assert re.search(r"; \d+ other messages seen: \[b'noise'\], \[b'noise'\], \[b'noise'\]", message), message
    assert "does the socket subscribe to the topic the probe makes it use?" in message


def test_no_publisher_times_out_naming_socket_probes_and_timeout(socks: Any, zmq_endpoint: str) -> None:
    sub = socks(zmq.SUB, connect=zmq_endpoint, subscribe=b"", name="ticks")

    def ask_for_a_tick() -> None:
        pass

    with pytest.raises(WaitTimeout) as caught:
        wait_until_receiving(sub, ask_for_a_tick, timeout=SHORT)
    message = str(caught.value)
    assert message.startswith(
        f"wait_until_receiving(probe=ask_for_a_tick) on SUB socket 'ticks' connected to {zmq_endpoint}: "
        "no message within 0.05 s ("
    ), message
    assert " probes) (is the process publishing there" in message
    assert caught.value.timeout == SHORT


def test_without_a_probe_it_waits_for_a_message_the_process_publishes_by_itself(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"", name="ticks")
    with pytest.raises(WaitTimeout) as caught:
        wait_until_receiving(sub, timeout=SHORT)
    assert str(caught.value) == (
        f"wait_until_receiving() on SUB socket 'ticks' connected to {pub.endpoint}: no message within 0.05 s "
        "(without probe= this waits for a message the process publishes by itself: does it?)"
    )


def test_an_error_in_the_probe_or_predicate_ends_the_wait_with_context(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"", name="ticks")

    def broken_probe() -> None:
        raise RuntimeError("control socket gone")

    with pytest.raises(RuntimeError, match="control socket gone") as caught:
        wait_until_receiving(sub, broken_probe)
    assert "in probe 1 of wait_until_receiving(probe=broken_probe) on SUB socket 'ticks'" in str(caught.value.__notes__)

    def broken_predicate(frames: list[bytes]) -> bool:
        raise KeyError("oops")

    with pytest.raises(KeyError) as caught_key:
        wait_until_receiving(sub, lambda: pub.send(b"tick"), broken_predicate)
    assert "in the predicate of wait_until_receiving" in str(caught_key.value.__notes__)
    assert "message 1: [b'tick']" in str(caught_key.value.__notes__)


@pytest.mark.parametrize(
    ("sock_type", "expected"),
    [
        (zmq.PUB, r"got PUB socket .*: that is a publisher\. .*make it an XPUB and use wait_for_subscriber\(xpub\)"),
        (zmq.XPUB, r"got XPUB socket .*: that is a publisher\. .*use wait_for_subscriber\(xpub\)"),
        (zmq.PULL, r"got PULL socket .*: wait_until_receiving works on SUB or XSUB sockets only"),
    ],
)
def test_wait_until_receiving_on_anything_but_a_subscriber_says_what_to_use(
    socks: Any, sock_type: int, expected: str
) -> None:
    sock = socks(sock_type, bind=("", 0))
    with pytest.raises(TypeError, match=expected):
        wait_until_receiving(sock, lambda: None)


def test_bad_interval(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"")
    with pytest.raises(ValueError, match=r"invalid timeout 0 from the interval= argument of wait_until_receiving"):
        wait_until_receiving(sub, lambda: None, interval=0)


# --- connect_and_wait --------------------------------------------------------------------------------------------


def test_connect_and_wait_returns_the_handshake(socks: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, subscribe=b"")
    event = connect_and_wait(sub, pub.endpoint)
    assert event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert sub.connected == [pub.endpoint]
    with ConnectionWaiter(sub):  # its monitor is stopped: libzmq allows one per socket, so another may start
        pass


def test_connect_and_wait_to_nobody_times_out(socks: Any, zmq_endpoint: str) -> None:
    sub = socks(zmq.SUB, subscribe=b"", name="ticks")
    with pytest.raises(WaitTimeout, match=rf"SUB socket 'ticks' connected to {zmq_endpoint}: no connection within"):
        connect_and_wait(sub, zmq_endpoint, timeout=SHORT)


# --- as actions of a generator test, and without pytest ----------------------------------------------------------


def test_barriers_are_built_in_actions_of_a_generator_test(socks: Any, feed: Any, pub: Any) -> None:
    sub = socks(zmq.SUB, connect=feed.endpoint, subscribe=b"news", name="process-sub")
    ticks = socks(zmq.SUB, connect=pub.endpoint, subscribe=b"", name="ticks")
    got: dict[str, Any] = {}

    def conversation() -> Iterator[tuple[Any, ...]]:
        got["subscribed"] = yield ("subscribed", feed, b"news")
        yield ("send", feed, [b"news"], {"n": 1})
        got["probe answer"] = yield ("receiving", ticks, lambda: pub.send(b"tick"))

    ProcessTest().run(conversation)
    assert got == {"subscribed": [b"news"], "probe answer": [b"tick"]}
    assert sub.recv_multipart() == [b"news", b'{"n": 1}']

    class Ticking(ProcessTest):
        def tick(self) -> None:  # an action of the test, standing in for "ask the process to publish"
            calls.append(1)
            pub.send(b"tick")

    def probe_is_an_event() -> Iterator[tuple[Any, ...]]:
        got["event probe"] = yield ("receiving", ticks, ("tick",))

    calls: list[int] = []
    Ticking().run(probe_is_an_event)
    assert got["event probe"] == [b"tick"]
    assert calls


def test_the_barriers_work_without_pytest() -> None:
    script = textwrap.dedent(
        """
        import zmq
        from zmqtest import make_sock
        from zmqtest.barriers import wait_for_subscriber, wait_until_receiving

        with zmq.Context() as context:
            feed = make_sock(context, zmq.XPUB, bind=("", 0))
            sub = make_sock(context, zmq.SUB, connect=feed.endpoint, subscribe=b"")
            wait_for_subscriber(feed)
            feed.send(b"first")
            print(sub.recv())
            print(wait_until_receiving(sub, lambda: feed.send(b"probe")))
            try:
                wait_for_subscriber(feed)
            except TimeoutError as exc:
                print(str(exc).split(":")[-1].strip())
            context.destroy(linger=0)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "b'first'",
        "[b'probe']",
        "no subscription to any topic within 1 s; it received nothing (has the process's SUB connected to it and "
        "made a subscription?)",
    ]
