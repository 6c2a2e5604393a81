"""Keyword events (zmqtest.events): ``yield recv(sock, timeout=0.3, skip=is_heartbeat)`` next to the tuple form.

Against a real process that chatters (tests/apps/heartbeats.py: heartbeats before and after each reply,
or on a timer), the per-event options do what they say: ``recv`` skips chatter (marked in the
transcript) within one timeout for the whole wait, ``expect_nothing`` passes on silence and fails
showing the message that came, ``wait_for_message`` decodes with the test's codec. Bad options are
EventErrors at the yield. The report output is checked through real pytest runs (pytester).
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import helpers
import pytest
import zmq
from apps.heartbeats import Chatter

from zmqtest import (
    Conversation,
    Event,
    EventError,
    ProcessExited,
    ProcessTest,
    SocketTimeout,
    TestSocket,
    UnexpectedMessage,
    event,
    expect_nothing,
    log,
    recv,
    send,
    wait_for_message,
    wait_until,
)
from zmqtest.processes import ProcessManager
from zmqtest.transcript import recording

if TYPE_CHECKING:
    from conftest import Sockets
    from zmqtest.contexts import SocketFactory

HEARTBEATS = Path(__file__).parent / "apps" / "heartbeats.py"
SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider")
LONG_WAIT = 10.0
"""Seconds for a wait that only a death (or a bug) can end: the test fails if it runs out."""


def is_heartbeat(message: list[Any]) -> bool:
    return message[-1] == ["heartbeat"]


def chatter(procs: ProcessManager, socks: SocketFactory, endpoint: str, interval: float | None = None) -> TestSocket:
    """Start the chattering server; a DEALER mimic connected to it (ready once connected)."""
    client = socks(zmq.DEALER, connect=endpoint, name="client")
    procs(Chatter(endpoint, interval), name="chatter", ready=client)
    return client


class Tagged:
    """A codec of the test's own: JSON, decoded as ``("tagged", body)``, so that its use shows."""

    safe_to_render = True

    def encode(self, body: Any) -> bytes:
        return json.dumps(body).encode()

    def decode(self, frame: bytes) -> Any:
        return ("tagged", json.loads(frame))

    def __repr__(self) -> str:
        return "Tagged()"


class TestAgainstAChatteringServer(ProcessTest):
    def suffixed(self, text: str, *, suffix: str = "!") -> str:
        """A custom action with a keyword option."""
        return text + suffix

    def test_tuple_and_keyword_forms_side_by_side(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield ("send", client, [], ["ping", 1, 0])
        assert (yield recv(client, timeout=2)) == [["pong", 1]]
        yield send(client, [], ["ping", 2, 0])
        assert (yield ("recv", client)) == [["pong", 2]]
        yield send(client, [], ["ping", 3, 0], timeout=2)
        assert (yield recv(client, json_load_index=None)) == [b'["pong", 3]']
        record = yield log("answered 2", level="INFO", timeout=5)
        assert (record.logger, record.message) == ("chatter", "answered 2")
        record = yield ("log", "answered 1", "INFO", None, 5)
        assert record.message == "answered 1"
        assert (yield event("suffixed", "a")) == "a!"
        assert (yield event("suffixed", "a", suffix="?")) == "a?"
        assert (yield ("suffixed", "b")) == "b!"

    def test_skip_passes_over_heartbeats_around_the_reply(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        with recording() as transcript:
            yield send(client, [], ["ping", 1, 3])
            reply = yield recv(client, skip=is_heartbeat)
            assert reply == [["pong", 1]]
            yield expect_nothing(client, 0.2, skip=is_heartbeat)  # the three heartbeats after the reply
        received = [(kind, data) for _, _, kind, data in transcript.events if kind in ("recv", "skipped")]
        heartbeat = (b'["heartbeat"]',)
        assert received == [("skipped", heartbeat)] * 3 + [("recv", (b'["pong", 1]',))] + [("skipped", heartbeat)] * 3
        rendered = transcript.render()
        assert rendered.count('(skipped) ["heartbeat"]') == 6
        assert re.search(r'^ +\d+\.\d{3}  \|     <-+ \["pong", 1\]$', rendered, re.MULTILINE)
        assert "expect_nothing: nothing arrived on client for 0.2 s" in rendered

    def test_skip_passes_over_a_heartbeat_timer(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint, interval=0.002)
        skipped: list[Any] = []

        def heartbeat(message: list[Any]) -> bool:
            if is_heartbeat(message):
                skipped.append(message)
                return True
            return False

        yield send(client, [], ["ping", 0, 0])  # from now on, the server's timer beats for the client every 2 ms
        assert (yield recv(client, skip=heartbeat)) == [["pong", 0]]
        for n in range(1, 11):
            wait_until(lambda: client.poll(0), timeout=LONG_WAIT, what="a heartbeat waiting on the client")
            yield send(client, [], ["ping", n, 0])
            assert (yield recv(client, skip=heartbeat)) == [["pong", n]]
        assert len(skipped) >= 10

    def test_a_timeout_covers_the_whole_wait_and_lists_what_was_skipped(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["ping", 1, 2])
        with pytest.raises(SocketTimeout) as failure:
            yield recv(client, timeout=0.3, skip=lambda message: True)
        message = str(failure.value)
        assert failure.value.timeout == 0.3
        assert message.startswith(
            f"recv on DEALER socket 'client' connected to {zmq_endpoint}: no message but skipped ones within 0.3 s "
            "(skip=<lambda at test_events.py:"
        )
        assert "5 skipped: [['heartbeat']], [['heartbeat']], [[\"pong\", 1]]" not in message  # decoded, not raw
        assert "5 skipped: [['heartbeat']], [['heartbeat']], [['pong', 1]] and 2 more" in message
        assert f"at {Path(__file__).name}:" in message  # the event and its yield line

    def test_a_per_event_timeout_is_named_in_its_error(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        client.timeout = LONG_WAIT  # the event's own timeout wins over the socket's
        yield send(client, [], ["quiet"])
        with pytest.raises(SocketTimeout) as failure:
            yield recv(client, timeout=0.25)
        assert failure.value.timeout == 0.25
        assert "no message within 0.25 s" in str(failure.value)
        with pytest.raises(SocketTimeout, match=r"no message within 0\.15 s"):
            yield recv(client, timeout="0.15s", skip=is_heartbeat)  # parsed as any timeout is

    def test_expect_nothing_passes_on_silence_and_fails_showing_what_came(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["quiet"])
        yield expect_nothing(client, 0.1)
        yield ("expect_nothing", client, 0.05)  # the tuple form
        yield send(client, [], ["ping", 7, 0])
        with pytest.raises(UnexpectedMessage) as failure:
            yield expect_nothing(client, LONG_WAIT)
        assert isinstance(failure.value, AssertionError)
        assert re.match(
            rf"expect_nothing on DEALER socket 'client' connected to {re.escape(zmq_endpoint)}: a message "
            rf"(was received \d+\.\d{{3}} s into|was waiting already when) the 10 s in which nothing was expected"
            rf"( began)?: \[\['pong', 7\]\]",
            str(failure.value),
        )

    def test_expect_nothing_says_when_the_message_was_there_before_it_began(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["ping", 8, 0])
        wait_until(lambda: client.poll(0), timeout=LONG_WAIT, what="the pong waiting on the client")
        with pytest.raises(UnexpectedMessage, match=r"a message was waiting already when the 0.5 s in which nothing"):
            yield expect_nothing(client, 0.5)

    def test_expect_nothing_ends_at_once_when_the_process_dies(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["exit", 3])
        with pytest.raises(
            ProcessExited, match=r"exited with code 3 while expecting nothing on DEALER socket .client."
        ):
            yield expect_nothing(client, LONG_WAIT)  # only the death can make this raise

    def test_wait_for_message_decodes_with_the_tests_codec(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["ping", 1, 2])
        reply = wait_for_message(client, lambda message: not is_heartbeat(message))
        assert reply == [["pong", 1]]
        yield send(client, [], ["ping", 2, 0])
        assert wait_for_message(client, lambda frames: b"pong" in frames[-1], decode=None) == [b'["pong", 2]']


class TestWithACodecOfItsOwn(ProcessTest):
    codec = Tagged()

    def test_wait_for_message_and_skip_see_what_the_codec_makes(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> Conversation:
        client = chatter(zmq_process_factory, zmq_socket_factory, zmq_endpoint)
        yield send(client, [], ["ping", 1, 1])
        assert wait_for_message(client, lambda m: m[-1][1][0] == "pong") == [("tagged", ["pong", 1])]
        yield send(client, [], ["ping", 2, 1])
        assert (yield recv(client, skip=lambda m: m[-1] == ("tagged", ["heartbeat"]))) == [("tagged", ["pong", 2])]


def test_wait_for_message_outside_a_process_test_gives_raw_frames(socks: Sockets) -> None:
    server = socks(zmq.PAIR, bind=("", 0))
    client = socks(zmq.PAIR, connect=server.endpoint)
    server.send_multipart([b'["x"]'])
    assert wait_for_message(client, timeout=LONG_WAIT) == [b'["x"]']


# --- bad options: EventError at the yield, naming the event and the options -----------------------------------------


class Loop(ProcessTest):
    def tagged(self, text: str, *, tag: str = "t") -> str:
        return f"{tag}:{text}"


@pytest.fixture
def pair(socks: Sockets) -> tuple[TestSocket, TestSocket]:
    return helpers.pair(socks)


def thrown(test: ProcessTest, make: Any) -> BaseException:
    """The error ``yield make()`` gets thrown into the generator."""
    caught: list[BaseException] = []

    def conversation() -> Conversation:
        try:
            yield make()
        except BaseException as exc:
            caught.append(exc)

    test.run(conversation)
    assert caught, "the event did not fail"
    return caught[0]


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(
            lambda c: recv(c, timout=0.3),
            [
                "event recv(<TestSocket PAIR socket 'client'",
                "got an unexpected keyword argument 'timout'",
                "the options of recv are json_load_index=-1, timeout=None, skip=None",
            ],
            id="recv-unknown",
        ),
        pytest.param(
            lambda c: recv(c, timeout="soon"),
            [
                "bad option of recv: invalid timeout 'soon' from the timeout= option of recv",
                "the options of recv are json_load_index=-1, timeout=None, skip=None",
            ],
            id="recv-timeout-type",
        ),
        pytest.param(
            lambda c: recv(c, skip=5),
            ["bad option of recv: skip= takes a predicate of the message (a callable), got 5"],
            id="recv-skip-type",
        ),
        pytest.param(
            lambda c: send(c, [], 1, timeout=-1),
            ["invalid timeout -1 from the timeout= option of send", "the options of send are extra_frames=(), timeout"],
            id="send-timeout",
        ),
        pytest.param(
            lambda c: expect_nothing(c, "a while"),
            ["invalid timeout 'a while' from the seconds= option of expect_nothing", "skip=None"],
            id="expect-nothing-seconds",
        ),
        pytest.param(
            lambda c: expect_nothing(c, 1, for_=2),
            ["got an unexpected keyword argument 'for_'", "the options of expect_nothing are skip=None"],
            id="expect-nothing-unknown",
        ),
        pytest.param(
            lambda c: log("x", levl="INFO"),
            ["got an unexpected keyword argument 'levl'", "level=None, logger=None, timeout=None"],
            id="log-unknown",
        ),
        pytest.param(
            lambda c: event("tagged", "x", tga="y"),
            ["event tagged('x', tga='y') does not fit tagged(text, *, tag='t')", "the options of tagged are tag='t'"],
            id="custom-unknown",
        ),
        pytest.param(
            lambda c: event("taged", "x"),
            ["unknown action 'taged'; did you mean 'tagged'?"],
            id="custom-name",
        ),
    ],
)
def test_a_bad_option_is_an_event_error_naming_the_event_and_the_options(
    pair: tuple[TestSocket, TestSocket], make: Any, fragments: list[str]
) -> None:
    _, client = pair
    error = thrown(Loop(), lambda: make(client))
    assert type(error) is EventError
    message = str(error)
    for fragment in fragments:
        assert fragment in message
    assert re.search(rf"\n  event: .* at tests/{Path(__file__).name}:\d+$", message)


def test_event_refuses_a_name_that_is_not_an_action() -> None:
    with pytest.raises(EventError, match=r"takes the name of a public action first, got 3"):
        event(3)  # type: ignore[arg-type]
    with pytest.raises(EventError, match=r"got '_private'"):
        event("_private")


def test_an_event_helper_called_without_yield_is_refused_before_the_test_runs(
    pair: tuple[TestSocket, TestSocket],
) -> None:
    _, client = pair

    def conversation() -> Conversation:
        send(client, [], ["dropped"])
        yield recv(client, timeout=0.01)

    with pytest.raises(
        EventError, match=r"makes an event and drops it \(line \d+: send\(client, \[\], \[.dropped.\]\)\)"
    ):
        Loop().run(conversation)
    assert client.poll(0) == 0


def test_a_keyword_event_reads_as_written() -> None:
    assert repr(event("tagged", "x", tag="y")) == "tagged('x', tag='y')"
    assert event("tagged", "x", tag="y") == Event("tagged", ("x",), {"tag": "y"})


def test_a_keyword_event_can_probe(socks: Sockets) -> None:
    """``receiving``'s probe may be a keyword event too."""
    publisher = socks(zmq.PUB, bind=("", 0), name="publisher")
    subscriber = socks(zmq.SUB, connect=publisher.endpoint, subscribe=b"", name="subscriber")

    class Probing(ProcessTest):
        def test(self) -> Conversation:
            first = yield event("receiving", subscriber, send(publisher, [], ["hello"], timeout=1))
            assert first == [b'["hello"]']

    Probing().run(Probing().test)


# --- the report of a failing test (inner pytest runs) ---------------------------------------------------------------

INNER_TESTS = """
import pytest
import zmq

from heartbeats import Chatter
from zmqtest import ProcessTest, expect_nothing, recv, send


def is_heartbeat(message):
    return message[-1] == ["heartbeat"]


@pytest.fixture
def client(zmq_process_factory, zmq_socket_factory, zmq_endpoint):
    sock = zmq_socket_factory(zmq.DEALER, connect=zmq_endpoint, name="client")
    zmq_process_factory(Chatter(zmq_endpoint), name="chatter", ready=sock)
    return sock


class TestChatter(ProcessTest):
    def test_wrong_reply(self, client):
        yield send(client, [], ["ping", 1, 2])
        reply = yield recv(client, skip=is_heartbeat)
        assert reply == [["pong", 2]]

    def test_only_chatter(self, client):
        yield send(client, [], ["ping", 1, 1])
        yield recv(client, timeout=0.3, skip=lambda message: True)

    def test_not_quiet(self, client):
        yield send(client, [], ["ping", 5, 0])
        yield expect_nothing(client, 5)

    def test_typo(self, client):
        yield recv(client, timout=0.3)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(heartbeats=HEARTBEATS.read_text(), test_inner=INNER_TESTS)
    return pytester


def test_the_reports_show_skipped_messages_timeouts_unexpected_messages_and_bad_options(
    inner: pytest.Pytester,
) -> None:
    result = inner.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(failed=4)
    result.stdout.re_match_lines(
        [
            r"_+ TestChatter.test_wrong_reply _+",
            r">\s+assert reply == \[\[\"pong\", 2\]\]",
            r"-+ zmqtest transcript \(call\) -+",
            r' +\d+\.\d{3}  \|     o-+> \["ping", 1, 2\]',
            r' +\d+\.\d{3}  \|     <-+ \(skipped\) \["heartbeat"\]',
            r' +\d+\.\d{3}  \|     <-+ \(skipped\) \["heartbeat"\]',
            r' +\d+\.\d{3}  \|     <-+ \["pong", 1\]',
            r"_+ TestChatter.test_only_chatter _+",
            r">\s+yield recv\(client, timeout=0.3, skip=lambda message: True\)",
            r"E\s+zmqtest.errors.SocketTimeout: recv on DEALER socket 'client' connected to tcp://127.0.0.1:\d+: "
            r"no message but skipped ones within 0.3 s \(skip=<lambda at test_inner.py:\d+>\); 3 skipped: "
            r"\[\['heartbeat'\]\], \[\['pong', 1\]\], \[\['heartbeat'\]\]",
            r"E\s+event: recv\(<TestSocket DEALER .* at test_inner.py:\d+",
            r"_+ TestChatter.test_not_quiet _+",
            r">\s+yield expect_nothing\(client, 5\)",
            r"E\s+zmqtest.events.UnexpectedMessage: expect_nothing on DEALER socket 'client' connected to "
            r"tcp://127.0.0.1:\d+: a message (was received \d+\.\d{3} s into|was waiting already when) the 5 s in "
            r"which nothing was expected( began)?: \[\['pong', 5\]\]",
            r"_+ TestChatter.test_typo _+",
            r">\s+yield recv\(client, timout=0.3\)",
            r"E\s+zmqtest.errors.EventError: event recv\(<TestSocket DEALER .*>, timout=0.3\) does not fit "
            r"recv\(sock, json_load_index=-1, \*, timeout=None, skip=None\): got an unexpected keyword argument "
            r"'timout'; the options of recv are json_load_index=-1, timeout=None, skip=None",
        ]
    )


# --- the cost of a keyword event against a tuple event ---------------------------------------------------------------

ROUND_TRIPS = 2000


def _echo(sock: zmq.Socket[Any], control: zmq.Socket[Any]) -> None:
    """Send every message back, in libzmq itself (a proxy from the socket to itself): no GIL, no Python."""
    zmq.proxy_steerable(sock, sock, None, control)


def test_round_trip_cost_of_keyword_and_tuple_events(ctx: zmq.Context[Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Printed, not asserted: median microseconds per send+recv round trip of each form, interleaved."""
    peer = ctx.socket(zmq.PAIR)
    peer.linger = 0
    peer.bind("inproc://echo")
    steer, steered = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    steered.bind("inproc://echo-control")
    steer.connect("inproc://echo-control")
    client = TestSocket(ctx, zmq.PAIR, name="client", timeout=LONG_WAIT)
    client.connect("inproc://echo")
    echo = threading.Thread(target=_echo, args=(peer, steered), daemon=True)
    echo.start()
    times: dict[str, list[float]] = {"tuple": [], "keyword": [], "option": []}

    class Bench(ProcessTest):
        def test(self) -> Conversation:
            clock = time.perf_counter
            for n in range(ROUND_TRIPS):
                start = clock()
                yield ("send", client, [], n)
                yield ("recv", client)
                middle = clock()
                yield send(client, [], n)
                yield recv(client)
                later = clock()
                yield send(client, [], n)
                yield recv(client, timeout=LONG_WAIT)
                end = clock()
                times["tuple"].append(middle - start)
                times["keyword"].append(later - middle)
                times["option"].append(end - later)

    try:
        Bench().run(Bench().test)
    finally:
        steer.send(b"TERMINATE")
        echo.join(LONG_WAIT)
        for sock in (client, peer, steer, steered):
            sock.close(linger=0)
    assert not echo.is_alive(), "the echo proxy did not stop"
    tuple_us, keyword_us, option_us = (statistics.median(times[form]) * 1e6 for form in times)
    with capsys.disabled():
        print(
            f"\n{ROUND_TRIPS} round trips (inproc, libzmq echo proxy), medians: tuple events {tuple_us:.1f} us, "
            f"keyword events {keyword_us:.1f} us (ratio {keyword_us / tuple_us:.3f}), with recv(timeout=) "
            f"{option_us:.1f} us (ratio {option_us / tuple_us:.3f})"
        )
