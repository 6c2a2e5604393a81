"""ProcessTest driven directly, without pytester: generator tests against real mimic sockets on loopback.

Each test plays both ends of the conversation itself (two PAIR mimics, or a REQ mimic whose
REP peer answers from a custom action), so nothing here starts a process, sleeps or waits
longer than a socket timeout.
"""

from __future__ import annotations

import inspect
import re
import threading
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from zmqtest import EventError, MessageError, ProcessTest, RawCodec, SocketTimeout, TestSocket, make_sock

THIS_FILE = Path(__file__).name
SHORT_WAIT = 0.05
"""Seconds for a wait that is meant to time out."""
TERM_DEADLINE = 5.0
"""Seconds the context may take to terminate once every socket is closed."""
KNOWN_ACTIONS = (
    "known actions: answer, check_even, double, expect_nothing, explode, interrupt, log, pause, receiving, recv, "
    "restart, resume, send, subscribed, wait_for_output"
)

Conversation = Generator[Any, Any, None]
Event = tuple[Any, ...]


class Mimic(ProcessTest):
    """The test side, with the custom actions the tests below yield."""

    def double(self, n: int) -> int:
        return 2 * n

    def answer(self, rep: TestSocket, body: Any) -> Any:
        """Play a REP server: take one request, reply ``body``, return the request's body."""
        request = self.recv(rep)
        self.send(rep, [], body)
        return request[-1]

    def explode(self, text: str) -> None:
        raise ValueError(text)

    def check_even(self, n: int) -> int:
        assert n % 2 == 0, f"{n} is odd"
        return n

    def interrupt(self) -> None:
        raise KeyboardInterrupt

    def _private(self) -> str:  # a method, but private: not an action
        return "private"


class IntCodec:
    """A codec of our own: a body is an int, sent as 4 bytes big-endian."""

    def encode(self, body: int) -> bytes:
        return body.to_bytes(4, "big")

    def decode(self, frame: bytes) -> int:
        if len(frame) != 4:
            raise ValueError(f"expected 4 bytes, got {len(frame)}")
        return int.from_bytes(frame, "big")

    def __repr__(self) -> str:
        return "IntCodec()"


class RawMimic(Mimic):
    codec = RawCodec()


class IntMimic(Mimic):
    codec = IntCodec()


class Loopback:
    """A context, two PAIR mimics connected on loopback, and any other socket a test asks for."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.context = context
        self.sockets: list[zmq.Socket[Any]] = []
        self.bound = self.mimic(zmq.PAIR, bind=("", 0), name="bound")
        self.connected = self.mimic(zmq.PAIR, connect=self.bound.endpoint, name="connected")

    def mimic(self, sock_type: int, **options: Any) -> TestSocket:
        sock = make_sock(self.context, sock_type, **options)
        self.sockets.append(sock)
        return sock

    def plain_socket(self, sock_type: int) -> zmq.Socket[Any]:
        sock = self.context.socket(sock_type)
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        closer = threading.Thread(target=self.context.term, name="term-context", daemon=True)
        closer.start()
        closer.join(TERM_DEADLINE)
        if closer.is_alive():
            pytest.fail(f"the context did not terminate within {TERM_DEADLINE} s: a socket was left open")


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    loop = Loopback(zmq.Context())
    try:
        yield loop
    finally:
        loop.close()


def line_of(function: Callable[..., Any], text: str) -> int:
    """The line number of the one line of ``function``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(function)
    [offset] = [index for index, line in enumerate(lines) if text in line]
    return start + offset


def message_of(exc: BaseException) -> str:
    """The message with what zmqtest added: context lines of its own errors, notes on others."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def assert_event_line(exc: BaseException, event: object, where: str) -> None:
    """The message has one line that quotes ``event`` and the ``file:line`` of its yield."""
    lines = [line for line in message_of(exc).splitlines() if line.startswith("  event: ")]
    pattern = rf"  event: {re.escape(repr(event))} at (.*/)?{re.escape(where)}"
    assert len(lines) == 1
    assert re.fullmatch(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"


def thrown_into(test: ProcessTest, event: object) -> Exception:
    """Yield ``event``, catch what the runner throws in at that yield, then carry on."""
    caught: list[Exception] = []
    after: list[int] = []

    def conversation() -> Conversation:
        try:
            yield event
        except Exception as exc:
            caught.append(exc)
        after.append((yield ("double", 21)))

    test.run(conversation)
    assert caught, f"the runner accepted {event!r}"
    assert after == [42], "the generator did not go on after it caught the failure"
    return caught[0]


def raised_by(test: ProcessTest, event: object) -> Exception:
    """Yield ``event`` without catching anything; return what ``run`` raised."""

    def conversation() -> Conversation:
        yield event

    try:
        test.run(conversation)
    except Exception as exc:
        return exc
    raise AssertionError(f"the runner accepted {event!r}")


THROWN_AT = f"{THIS_FILE}:{line_of(thrown_into, 'yield event')}"
RAISED_LINE = line_of(raised_by, "yield event")


def sent_then_received(frames: list[bytes], *recv_args: object) -> Callable[[Loopback], Event]:
    """An event builder: ``frames`` arrive on the connected mimic, then the event receives them."""

    def build(loop: Loopback) -> Event:
        loop.bound.send_multipart(frames)
        return ("recv", loop.connected, *recv_args)

    return build


def pull_with_nothing_to_read(loop: Loopback) -> Event:
    return ("recv", loop.mimic(zmq.PULL, bind=("", 0), timeout=SHORT_WAIT))


# --- send and recv ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send_args", "frames"),
    [
        pytest.param(
            (["route", b"id"], {"n": 1, "name": "café"}, ["tail", b"\x00"]),
            [b"route", b"id", b'{"n": 1, "name": "caf\\u00e9"}', b"tail", b"\x00"],
            id="header-body-extra",
        ),
        pytest.param(([], ["ping", 1]), [b'["ping", 1]'], id="body-only"),
        pytest.param(((), None, ()), [b"null"], id="tuples-and-null"),
        pytest.param((["é"], "ü", ["ß"]), ["é".encode(), b'"\\u00fc"', "ß".encode()], id="str-frames-utf8"),
    ],
)
def test_send_writes_header_json_dumps_body_and_extra_frames(
    loopback: Loopback, send_args: Event, frames: list[bytes]
) -> None:
    results: list[object] = []

    def conversation() -> Conversation:
        results.append((yield ("send", loopback.bound, *send_args)))

    Mimic().run(conversation)
    assert loopback.connected.recv_multipart() == frames
    assert results == [None]


@pytest.mark.parametrize(
    ("frames", "recv_args", "reply"),
    [
        pytest.param([b"id", b"", b'{"n":[1,2]}'], (), [b"id", b"", {"n": [1, 2]}], id="last-frame-by-default"),
        pytest.param([b'"topic"', b"raw"], (0,), ["topic", b"raw"], id="first-frame"),
        pytest.param([b"[1]", b"x", b"y"], (-3,), [[1], b"x", b"y"], id="negative-index"),
        pytest.param([b"{not json", b"\xff"], (None,), [b"{not json", b"\xff"], id="none-is-raw"),
    ],
)
def test_recv_decodes_the_frame_at_json_load_index_and_the_reply_comes_back(
    loopback: Loopback, frames: list[bytes], recv_args: Event, reply: list[object]
) -> None:
    replies: list[object] = []

    def conversation() -> Conversation:
        replies.append((yield ("recv", loopback.connected, *recv_args)))

    loopback.bound.send_multipart(frames)
    Mimic().run(conversation)
    assert replies == [reply]


def test_a_custom_action_answers_as_rep_server_and_its_result_comes_back(loopback: Loopback) -> None:
    rep = loopback.mimic(zmq.REP, bind=("", 0), name="server")
    req = loopback.mimic(zmq.REQ, connect=rep.endpoint, name="client")
    seen: list[object] = []

    def conversation() -> Conversation:
        yield ("send", req, [], ["ping", 1])
        request = yield ("answer", rep, ["pong", 1])
        reply = yield ("recv", req)
        doubled = yield ("double", 21)
        seen.extend([request, reply, doubled])

    Mimic().run(conversation)
    assert seen == [["ping", 1], [["pong", 1]], 42]


def test_run_passes_arguments_to_the_generator() -> None:
    seen: list[int] = []

    def conversation(n: int, *, plus: int) -> Conversation:
        seen.append((yield ("double", n)) + plus)

    Mimic().run(conversation, 20, plus=2)
    assert seen == [42]


# --- codecs ----------------------------------------------------------------------------------


def test_raw_codec_sends_and_receives_bodies_unchanged(loopback: Loopback) -> None:
    replies: list[object] = []

    def conversation() -> Conversation:
        yield ("send", loopback.bound, ["h"], "é")
        yield ("send", loopback.bound, [], b"\x00{")
        replies.append((yield ("recv", loopback.connected)))
        replies.append((yield ("recv", loopback.connected)))

    RawMimic().run(conversation)
    assert replies == [[b"h", "é".encode()], [b"\x00{"]]


def test_a_codec_of_our_own_encodes_and_decodes_bodies(loopback: Loopback) -> None:
    replies: list[object] = []

    def conversation() -> Conversation:
        yield ("send", loopback.bound, ["n"], 258)
        replies.append((yield ("recv", loopback.connected, None)))
        yield ("send", loopback.bound, [], 7)
        replies.append((yield ("recv", loopback.connected)))

    IntMimic().run(conversation)
    assert replies == [[b"n", b"\x00\x00\x01\x02"], [7]]


def test_a_frame_the_codec_cannot_read_is_a_message_error_naming_the_codec(loopback: Loopback) -> None:
    event = sent_then_received([b"abc"])(loopback)
    exc = thrown_into(IntMimic(), event)
    assert type(exc) is MessageError
    assert "frame -1 of the message on PAIR socket 'connected'" in str(exc)
    assert "is not valid (expected 4 bytes, got 3) for IntCodec(): b'abc'" in str(exc)


# --- failures are thrown into the generator --------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(pull_with_nothing_to_read, SocketTimeout, id="SocketTimeout"),
        pytest.param(sent_then_received([b"{nope"]), MessageError, id="MessageError"),
        pytest.param(lambda loop: ("explode", "boom"), ValueError, id="error-in-action"),
        pytest.param(lambda loop: ("check_even", 3), AssertionError, id="assertion-in-action"),
    ],
)
def test_a_failure_is_thrown_into_the_generator_which_may_catch_it_and_go_on(
    loopback: Loopback, build: Callable[[Loopback], Event], expected: type[Exception]
) -> None:
    event = build(loopback)
    exc = thrown_into(Mimic(), event)
    assert type(exc) is expected
    assert_event_line(exc, event, THROWN_AT)


def _a_helper(loop: Any) -> Conversation:
    """A helper that yields events: a test must call it with ``yield from``."""
    yield ("send", loop.bound, [], 1)


@pytest.mark.parametrize(
    ("build", "expected", "fragments"),
    [
        pytest.param(
            lambda loop: ("sned", loop.bound, [], 1),
            EventError,
            ["unknown action 'sned'; did you mean 'send'?", KNOWN_ACTIONS],
            id="unknown-action",
        ),
        pytest.param(lambda loop: ("codec",), EventError, ["unknown action 'codec'", KNOWN_ACTIONS], id="not-callable"),
        pytest.param(lambda loop: ("run", print), EventError, ["unknown action 'run'"], id="run-is-no-action"),
        pytest.param(
            lambda loop: ["recv", loop.connected],
            EventError,
            ["yielded ['recv', <TestSocket PAIR", "which is not an event: an event is a tuple (action, *args)"],
            id="list-not-tuple",
        ),
        pytest.param(lambda loop: "recv", EventError, ["yielded 'recv', which is not an event"], id="str-not-tuple"),
        pytest.param(lambda loop: (), EventError, ["yielded (), which is not an event"], id="empty-tuple"),
        pytest.param(
            lambda loop: _a_helper(loop),
            EventError,
            ["yielded the generator _a_helper(), which is not an event", "write 'yield from _a_helper(...)'"],
            id="yield-not-yield-from",
        ),
        pytest.param(
            lambda loop: ("recv", loop.connected, True),
            EventError,
            [
                "json_load_index of a recv must be the index of the frame to decode (an int, -1: the last) or None",
                "True",
            ],
            id="bool-json-load-index",
        ),
        pytest.param(
            lambda loop: ("recv", loop.connected, 0.5),
            EventError,
            ["json_load_index of a recv", "got 0.5 (a timeout goes by keyword: yield recv(sock, timeout=...))"],
            id="a-timeout-as-json-load-index",
        ),
        pytest.param(lambda loop: (b"double", 1), EventError, ["unknown action b'double'"], id="bytes-name"),
        pytest.param(lambda loop: (print, 1), EventError, ["unknown action <built-in function print>"], id="callable"),
        pytest.param(lambda loop: ("_private",), EventError, ["unknown action '_private'"], id="private-name"),
        pytest.param(lambda loop: ("__init__",), EventError, ["unknown action '__init__'"], id="dunder-name"),
        pytest.param(
            lambda loop: ("double",),
            EventError,
            ["event ('double',) does not fit double(n): missing a required argument: 'n'"],
            id="too-few-args",
        ),
        pytest.param(
            lambda loop: ("double", 1, 2),
            EventError,
            ["event ('double', 1, 2) does not fit double(n): too many positional arguments"],
            id="too-many-args",
        ),
        pytest.param(
            lambda loop: ("send", loop.bound),
            EventError,
            [
                "does not fit send(sock, header, body, extra_frames=(), *, timeout=None): "
                "missing a required argument: 'header'"
            ],
            id="send-signature",
        ),
        pytest.param(
            lambda loop: ("recv",),
            EventError,
            [
                "does not fit recv(sock, json_load_index=-1, *, timeout=None, skip=None): "
                "missing a required argument: 'sock'"
            ],
            id="recv-signature",
        ),
        pytest.param(
            lambda loop: ("send", loop.bound, "header", 1),
            EventError,
            ["the header of a send must be a list of frames, got 'header'; use [] for none"],
            id="header-str",
        ),
        pytest.param(
            lambda loop: ("send", loop.bound, [], 1, b"tail"),
            EventError,
            ["extra_frames of a send must be a list of frames, got b'tail'"],
            id="extra-frames-bytes",
        ),
        pytest.param(
            lambda loop: ("recv", loop.bound.endpoint),
            EventError,
            ["recv needs a TestSocket (make_sock(...)), got 'tcp://127.0.0.1:"],
            id="endpoint-not-socket",
        ),
        pytest.param(
            lambda loop: ("send", loop.plain_socket(zmq.PAIR), [], 1),
            EventError,
            ["send needs a TestSocket (make_sock(...)), got a plain zmq.Socket, which could wait forever"],
            id="plain-zmq-socket",
        ),
        pytest.param(
            lambda loop: ("recv", loop.plain_socket(zmq.PAIR)),
            EventError,
            ["recv needs a TestSocket (make_sock(...)), got a plain zmq.Socket, which could wait forever"],
            id="plain-zmq-socket-recv",
        ),
        pytest.param(
            lambda loop: ("send", loop.bound, [], {"items": [1, {2}]}),
            MessageError,
            ["body is not JSON-serialisable: body['items'][1] = {2} (set)"],
            id="body-not-json",
        ),
        pytest.param(
            sent_then_received([b'"caf\xe9"']),
            MessageError,
            ["frame -1 of the message on PAIR socket 'connected'", "is not UTF-8", "b'\"caf\\xe9\"'"],
            id="frame-not-utf8",
        ),
        pytest.param(
            sent_then_received([b"not json " * 10, b"[]"], 0),
            MessageError,
            ["frame 0 of the message on PAIR socket", "is not valid (", "b'not json not json not json not json not '"],
            id="frame-not-json",
        ),
        pytest.param(
            sent_then_received([b"1"], 2),
            MessageError,
            [
                "cannot decode frame 2 of a 1-frame message on PAIR socket 'connected'",
                "[b'1'] (json_load_index, the item after the socket in ('recv', sock, ...), is the index of the frame",
                "a timeout goes by keyword: yield recv(sock, timeout=2))",
            ],
            id="fewer-frames-than-index",
        ),
    ],
)
def test_a_bad_event_is_thrown_in_quoting_the_event_and_its_yield_line(
    loopback: Loopback, build: Callable[[Loopback], object], expected: type[Exception], fragments: list[str]
) -> None:
    event = build(loopback)
    exc = thrown_into(Mimic(), event)
    assert type(exc) is expected
    message = message_of(exc)
    for fragment in fragments:
        assert fragment in message
    assert_event_line(exc, event, THROWN_AT)


def test_a_long_frame_is_shown_by_its_first_bytes_and_length(loopback: Loopback) -> None:
    event = sent_then_received([b"x" * 100])(loopback)
    exc = thrown_into(Mimic(), event)
    assert f"{b'x' * 40!r}... (100 bytes)" in str(exc)


def test_a_failure_in_a_sub_conversation_names_the_inner_yield() -> None:
    caught: list[EventError] = []

    def ask(n: int) -> Generator[Any, Any, int]:
        doubled: int = yield ("double", n)
        yield ("nope", doubled)
        return doubled

    def conversation() -> Conversation:
        try:
            yield from ask(1)
        except EventError as exc:
            caught.append(exc)

    Mimic().run(conversation)
    [exc] = caught
    assert_event_line(exc, ("nope", 2), f"{THIS_FILE}:{line_of(ask, 'nope')}")


# --- the generator's own mistakes ------------------------------------------------------------


def test_a_generator_that_returns_a_value_is_an_event_error() -> None:
    def conversation() -> Generator[Any, Any, str]:
        yield ("double", 1)
        return "done"

    with pytest.raises(EventError) as info:
        Mimic().run(conversation)
    message = str(info.value)
    assert "returned 'done': a ProcessTest test ends without a value" in message
    assert f"{THIS_FILE}:{conversation.__code__.co_firstlineno})" in message


@pytest.mark.parametrize("function", [lambda: None, lambda: ["double", 1]], ids=["returns-none", "returns-list"])
def test_run_on_a_function_that_is_not_a_generator_is_an_event_error(function: Callable[[], object]) -> None:
    with pytest.raises(EventError, match=r"<lambda> is not a generator function: a ProcessTest test yields events"):
        Mimic().run(function)


# --- what is not thrown in -------------------------------------------------------------------


def test_keyboard_interrupt_propagates_without_being_thrown_in_and_the_finally_runs() -> None:
    seen: list[str] = []

    def conversation() -> Conversation:
        try:
            yield ("interrupt",)
        except KeyboardInterrupt:
            seen.append("thrown in")
            raise
        finally:
            seen.append("finally")

    seen_on_arrival: list[str] = []
    try:
        Mimic().run(conversation)
    except KeyboardInterrupt:  # its traceback holds run()'s frame: only an explicit close has ended the generator
        seen_on_arrival = list(seen)
    assert seen_on_arrival == ["finally"]


def ignores_generator_exit() -> Conversation:
    try:
        yield ("interrupt",)
    except GeneratorExit:
        yield ("double", 1)  # the mistake under test: it yields again when closed


def fails_in_finally() -> Conversation:
    try:
        yield ("interrupt",)
    finally:
        raise OSError("cleanup failed")


@pytest.mark.parametrize(
    ("conversation", "problem"),
    [
        (ignores_generator_exit, "RuntimeError('generator ignored GeneratorExit')"),
        (fails_in_finally, "OSError('cleanup failed')"),
    ],
)
def test_a_generator_that_cannot_be_closed_does_not_mask_the_original_failure(
    conversation: Callable[[], Conversation], problem: str
) -> None:
    with pytest.raises(KeyboardInterrupt) as info:
        Mimic().run(conversation)
    assert getattr(info.value, "__notes__", []) == [f"  also, closing the test generator failed: {problem}"]


# --- tracebacks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(pull_with_nothing_to_read, SocketTimeout, id="SocketTimeout"),
        pytest.param(lambda loop: ("snd",), EventError, id="EventError"),
        pytest.param(lambda loop: ("send", loop.mimic(zmq.REP, bind=("", 0)), [], "early"), zmq.ZMQError, id="EFSM"),
    ],
)
def test_zmqtest_and_pyzmq_errors_are_thrown_in_with_their_traceback_trimmed(
    loopback: Loopback, build: Callable[[Loopback], Event], expected: type[Exception]
) -> None:
    exc = raised_by(Mimic(), build(loopback))
    assert isinstance(exc, expected)
    innermost = traceback.extract_tb(exc.__traceback__)[-1]
    assert (innermost.name, innermost.lineno) == ("conversation", RAISED_LINE)


def test_a_pyzmq_error_is_thrown_in_at_once_and_names_socket_and_event(loopback: Loopback) -> None:
    rep = loopback.mimic(zmq.REP, bind=("", 0), name="server")
    event = ("send", rep, [], "before any request")
    exc = thrown_into(Mimic(), event)
    assert type(exc) is zmq.ZMQError
    assert exc.errno == zmq.EFSM
    assert "in send_multipart on REP socket 'server'" in str(exc)
    assert f"event: {event!r} at " in str(exc)


def test_an_error_from_a_user_action_keeps_its_own_traceback() -> None:
    exc = raised_by(Mimic(), ("explode", "boom"))
    assert type(exc) is ValueError
    frames = [(frame.name, frame.lineno) for frame in traceback.extract_tb(exc.__traceback__)]
    assert frames[-1] == ("explode", line_of(Mimic.explode, "raise ValueError"))
    assert ("conversation", RAISED_LINE) in frames
