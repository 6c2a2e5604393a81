"""The transcript: what mimic sockets sent and received, failed waits and process events, shown on failure.

In-process tests record real sockets on loopback and real processes (``tests/apps/behave.py``
as command lines); the report tests run inner pytest projects in a subprocess with a
deadline, against a real server process started through ``zmq_process_factory``.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import zmq
from helpers import WAIT_MS, pair

import zmqtest.transcript
from zmqtest import ProcessTest, SocketTimeout, TestSocket, make_sock
from zmqtest.codecs import MsgpackCodec, RawCodec
from zmqtest.errors import ProcessExited, WaitTimeout
from zmqtest.processes import ProcessManager
from zmqtest.rendering import HEAD_BYTES, Clipped, More, show_frame
from zmqtest.settings import Settings, using
from zmqtest.strict import unread
from zmqtest.transcript import (
    KEPT_BYTES,
    KEPT_FRAMES,
    WIDTH,
    Mimic,
    Process,
    Transcript,
    current,
    kept,
    note,
    recording,
)
from zmqtest.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Sockets

BEHAVE = str(Path(__file__).parent / "apps" / "behave.py")
SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error")
MIB = 1 << 20


def kinds(transcript: Transcript) -> list[tuple[str, str, Any]]:
    """(participant label, kind, data) per event: participants by socket name or process name."""
    rows = []
    for _, who, kind, data in transcript.events:
        if isinstance(who, Mimic):
            label = who.name or who.kind
        elif isinstance(who, Process):
            label = who.name
        else:
            label = "test"
        rows.append((label, kind, data))
    return rows


@pytest.fixture
def transcript() -> Iterator[Transcript]:
    """A transcript of its own, in force for the test (whatever the outer run records)."""
    with recording() as own:
        yield own


# --- what is kept of a message ---------------------------------------------------------------------------------------


def test_short_bytes_frames_are_kept_as_they_are() -> None:
    frames = [b"id", b"", b'["ping",1]']
    assert kept(frames) == (b"id", b"", b'["ping",1]')
    assert all(a is b for a, b in zip(kept(frames), frames, strict=True))  # immutable: no copy needed


def test_a_long_frame_is_kept_as_its_head_and_its_size() -> None:
    big = b"x" * MIB
    (clipped,) = kept([big])
    assert clipped == Clipped(b"x" * HEAD_BYTES, MIB)


def test_mutable_frames_are_copied() -> None:
    buffer = bytearray(b"before")
    view = memoryview(b"0123456789")[2:6]
    frame = zmq.Frame(b"frame")
    stored = kept([buffer, view, frame])
    buffer[:] = b"after!"
    assert stored == (b"before", b"2345", b"frame")
    assert all(type(item) is bytes for item in stored)


def test_a_message_with_many_frames_keeps_the_first_ones_and_counts_the_rest() -> None:
    frames = [str(n).encode() for n in range(KEPT_FRAMES + 5)]
    stored = kept(frames)
    assert stored[:KEPT_FRAMES] == tuple(frames[:KEPT_FRAMES])
    assert stored[KEPT_FRAMES:] == (More(5),)


# --- recording real sockets ------------------------------------------------------------------------------------------


def test_every_frame_sent_and_received_is_recorded_in_order(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([b"head", b'["ping",1]'])
    assert server.recv_multipart() == [b"head", b'["ping",1]']
    server.send(b"pong")
    assert client.recv() == b"pong"
    assert kinds(transcript) == [
        ("client", "send", (b"head", b'["ping",1]')),
        ("server", "recv", (b"head", b'["ping",1]')),
        ("server", "send", (b"pong",)),
        ("client", "recv", (b"pong",)),
    ]
    stamps = [stamp for stamp, *_ in transcript.events]
    assert stamps == sorted(stamps)
    assert transcript.began <= stamps[0]


def test_composite_calls_are_recorded_once_as_their_frames(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    client.send_json({"n": 1})
    assert server.recv_json() == {"n": 1}
    server.send_string("héllo")
    assert client.recv_string() == "héllo"
    assert kinds(transcript) == [
        ("client", "send", (b'{"n": 1}',)),
        ("server", "recv", (b'{"n": 1}',)),
        ("server", "send", ("héllo".encode(),)),
        ("client", "recv", ("héllo".encode(),)),
    ]


def test_recv_into_and_frames_without_copy_are_recorded_as_copies(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    client.send(b"into")
    buffer = bytearray(16)
    assert server.recv_into(buffer) == 4
    client.send(b"frame")
    frame = server.recv(copy=False)
    buffer[:4] = b"XXXX"
    assert kinds(transcript)[1] == ("server", "recv", (b"into",))
    assert kinds(transcript)[3] == ("server", "recv", (b"frame",))
    assert frame.bytes == b"frame"


def test_a_timeout_is_recorded_on_its_socket_and_a_noblock_miss_is_not(socks: Sockets, transcript: Transcript) -> None:
    server, _ = pair(socks)
    with pytest.raises(zmq.Again):
        server.recv(zmq.NOBLOCK)  # "nothing yet", asked for: not a failure
    with pytest.raises(SocketTimeout):
        server.recv_multipart(timeout=0.01)
    assert kinds(transcript) == [
        ("server", "error", f"recv_multipart: no message within 0.01 s; a peer is connected at {server.endpoint}")
    ]


def test_an_error_of_zmq_is_recorded_with_its_message(socks: Sockets, transcript: Transcript) -> None:
    sock = socks(zmq.REQ, bind=("", 0), name="client")
    with pytest.raises(zmq.ZMQError) as excinfo:
        sock.recv()  # a REQ must send first: EFSM at once
    assert excinfo.value.errno == zmq.EFSM
    ((who, kind, text),) = kinds(transcript)
    assert (who, kind) == ("client", "error")
    assert text == str(excinfo.value).partition("\n")[0]


def test_a_watched_death_is_recorded_with_the_exit_code(socks: Sockets, transcript: Transcript, tmp_path: Path) -> None:
    sink = socks(zmq.PULL, bind=("", 0), name="sink", timeout=30)
    with ProcessManager(tmp_path) as procs:
        procs.start([sys.executable, BEHAVE, "exit3"], name="worker", ready="ready")  # says ready, exits with 3
        with pytest.raises(ProcessExited):
            sink.recv_multipart()
    rows = kinds(transcript)
    assert ("worker", "note", "exited with code 3") in rows
    assert ("sink", "error", f"worker (pid {procs.processes[0].pid}) exited with code 3 while recv_multipart") in rows


def test_nothing_is_recorded_when_nothing_records(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    with nothing_records():
        assert current() is None
        client.send(b"x")
        assert server.recv() == b"x"
        note("worker", "started")  # a no-op
    assert (client.__dict__["_who"], server.__dict__["_who"]) == (None, None)  # never seen by a transcript


def test_a_transcript_that_only_tracks_records_nothing_but_knows_the_sockets(socks: Sockets) -> None:
    with recording(Transcript(recording=False)) as tracking:
        server, client = pair(socks, timeout=5)
        client.send(b"x")
        server.recv()
        note("worker", "started")
    assert not tracking.events
    assert set(tracking.sockets) == {server, client}


# --- memory ----------------------------------------------------------------------------------------------------------


def test_a_big_frame_is_never_held_by_the_transcript(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    big = b"x" * MIB
    references = sys.getrefcount(big)
    client.send(big)
    assert sys.getrefcount(big) == references  # the transcript kept a copy of its head, not the frame
    received = server.recv()
    assert sys.getrefcount(received) == references
    for _, _, kind, data in transcript.events:
        assert kind in ("send", "recv")
        assert data == (Clipped(b"x" * HEAD_BYTES, MIB),)


def test_only_the_last_events_are_kept_and_the_rendering_says_so(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    with recording(Transcript(max_events=50)) as small:
        for n in range(40):
            client.send(str(n).encode())
            server.recv()
    assert len(small.events) == 50
    assert kinds(small)[-1] == ("server", "recv", (b"39",))
    assert "(only the last 50 events are kept; earlier ones were dropped)" in small.render()


# --- process events --------------------------------------------------------------------------------------------------


def test_process_events_from_start_to_exit(transcript: Transcript, tmp_path: Path) -> None:
    with using(Settings(stop_grace=0.5)), ProcessManager(tmp_path) as procs:
        worker = procs.start([sys.executable, BEHAVE, "obey"], name="worker", ready="ready")
    rows = [data for who, kind, data in kinds(transcript) if who == "worker"]
    assert rows == [
        f"started: pid {worker.pid}, {sys.executable} {BEHAVE} obey",
        "ready: a line matching 'ready' in its stdout or stderr",
        "stopping: SIGINT (for 0.5 s)",
        "killed by SIGINT",
    ]


def test_a_stubborn_process_shows_each_stop_stage_and_its_signal(transcript: Transcript, tmp_path: Path) -> None:
    with using(Settings(stop_grace=0.2)), ProcessManager(tmp_path) as procs:
        procs.start([sys.executable, BEHAVE, "ignore-int"], name="stubborn", ready="ready")
    rows = [data for who, kind, data in kinds(transcript) if who == "stubborn"]
    assert rows[2:] == ["stopping: SIGINT (for 0.2 s)", "stopping: SIGTERM", "killed by SIGTERM"]


def test_note_from_another_thread_lands_in_the_latest_transcript(transcript: Transcript) -> None:
    thread = threading.Thread(target=note, args=("logger", "log INFO app: hello"))  # a fresh context: no ContextVar
    thread.start()
    thread.join()
    assert kinds(transcript) == [("logger", "note", "log INFO app: hello")]


def test_a_note_of_something_that_happened_earlier_is_shown_in_time_order(transcript: Transcript) -> None:
    note("worker", "second")
    first = transcript.events[0][0]
    note("worker", "first, arrived late", at=first - 0.001)
    lines = transcript.render().splitlines()
    assert lines[-2].endswith("*   first, arrived late")
    assert lines[-1].endswith("*   second")


def test_note_without_a_transcript_does_nothing() -> None:
    thread = threading.Thread(target=note, args=("logger", "nobody records this"))
    thread.start()
    thread.join()  # no error, whatever the outer run records
    note("worker", "fine")


def test_failed_waits_of_the_test_itself_go_to_its_column(transcript: Transcript) -> None:
    with pytest.raises(WaitTimeout):
        wait_until(lambda: False, timeout=0.01, what="the moon")
    ((who, kind, text),) = kinds(transcript)
    assert (who, kind) == ("test", "error")
    assert text.startswith("wait_until(the moon): not true within 0.01 s")


# --- rendering -------------------------------------------------------------------------------------------------------


def test_the_diagram_has_a_column_per_participant_and_a_row_per_event(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    other = socks(zmq.PUSH, bind=("", 0))
    again = socks(zmq.PUSH, bind=("", 0))
    note("PongProc", "started: pid 4242, PongProc with fork")
    transcript.phase("call")
    client.send(b'["ping",1]')
    server.recv()
    with pytest.raises(SocketTimeout):
        other.send(b"x", timeout=0)
    with pytest.raises(SocketTimeout):
        again.send(b"y", timeout=0)
    note("PongProc", "exited with code 0")
    text = transcript.render(outcome="call failed: AssertionError: assert 1 == 2")
    lines = text.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    header = next(line for line in lines if line.lstrip().startswith("ms "))
    assert header.split() == ["ms", "test", "client", "server", "PUSH", "PUSH#2", "PongProc"]
    assert f"  client        {client.describe()}" in lines
    assert f"  PUSH#2        {again.describe()}" in lines
    assert "  PongProc      process under test" in lines
    column = {label: header.index(label) for label in ("test", "client", "server", "PUSH", "PUSH#2", "PongProc")}
    assert len([line for line in lines if re.match(r"^ +\d+\.\d{3}  ", line)]) == 7  # 6 events and the outcome
    send_row = next(line for line in lines if line.endswith('["ping",1]') and "o-" in line)
    assert send_row[column["client"]] == "o"
    assert re.search(r"o-+> \[\"ping\",1\]$", send_row)
    recv_row = next(line for line in lines if line.endswith('["ping",1]') and "<-" in line)
    assert recv_row[column["server"]] == "<"
    first, second = (line for line in lines if "could not send within 0 s" in line)
    assert (first[column["PUSH"]], second[column["PUSH#2"]]) == ("x", "x")
    started = next(line for line in lines if line.endswith("started: pid 4242, PongProc with fork"))
    assert started[column["PongProc"]] == "*"
    assert started[column["client"]] == "|"
    assert lines[-1].endswith("call failed: AssertionError: assert 1 == 2")
    assert lines[-1][column["test"]] == "x"
    assert any(line.strip().startswith("--- call ---") for line in lines)


def test_long_bodies_are_cut_to_the_width_with_their_size(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    client.send(json.dumps(["blob", "x" * MIB]).encode())
    server.recv()
    client.send(json.dumps(["words"] * 60).encode())
    server.recv()
    lines = transcript.render().splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    big = [line for line in lines if "bytes]" in line]
    assert len(big) == 4
    assert all(f'[{MIB + 12:,} bytes] ["blob", "xxxx' in line and line.endswith("...") for line in big[:2])
    assert all('[540 bytes] ["words", "words", ' in line and line.endswith("...") for line in big[2:])


@pytest.mark.parametrize(
    ("frame", "codec", "shown"),
    [
        (b'{"a":[1,null]}', None, '{"a":[1,null]}'),
        (b"plain text", None, "b'plain text'"),
        (b"\xff\xfe", None, "b'\\xff\\xfe'"),
        (b"", None, "b''"),
        (b"raw", RawCodec(), "b'raw'"),
        (Clipped(b'["abc', 5000), None, '[5,000 bytes] ["abc...'),
        (Clipped(b'["\xc3\xa9\xc3', 5000), None, '[5,000 bytes] ["\xe9...'),
        (Clipped(b"\x00\x01", 5000), None, "[5,000 bytes] b'\\x00\\x01'..."),
        (Clipped(b"\xff\xfe", 5000), None, "[5,000 bytes] b'\\xff\\xfe'..."),
        (Clipped(b"abc", 5000), RawCodec(), "[5,000 bytes] b'abc'..."),
        (More(3), None, "(+3 more frames)"),
    ],
    ids=[
        "json",
        "not-json",
        "not-utf8",
        "empty",
        "raw-codec",
        "clipped",
        "clipped-mid-character",
        "clipped-binary",
        "clipped-not-utf8",
        "clipped-raw-codec",
        "more",
    ],
)
def test_frames_are_shown_decoded_where_the_codec_reads_them(frame: Any, codec: Any, shown: str) -> None:
    assert show_frame(frame, codec) == shown


class Upper:
    """A codec of the test's own: bodies are upper-cased text (safe to decode for display, and it says so)."""

    safe_to_render = True

    def encode(self, body: Any) -> bytes:
        return str(body).upper().encode()

    def decode(self, frame: bytes) -> Any:
        if not frame.isupper():
            raise ValueError("not upper case")
        return {"text": frame.decode().lower()}


def test_a_custom_codec_shows_what_it_decodes_and_the_bytes_of_what_it_does_not() -> None:
    assert show_frame(b"HELLO", Upper()) == "{'text': 'hello'}"
    assert show_frame(b"hello", Upper()) == "b'hello'"


class Pickling:
    """A codec that runs code on peer data, and does not say it is safe to render."""

    def encode(self, body: Any) -> bytes:
        return pickle.dumps(body)

    def decode(self, frame: bytes) -> Any:
        return pickle.loads(frame)  # the point of the test: it would run code


class Boom:
    """Unpickling it runs code: it records that it ran."""

    ran: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple[Any, ...]:
        return (Boom.ran.append, ("ran",))


def test_a_codec_that_does_not_say_it_is_safe_never_decodes_for_display(socks: Sockets) -> None:
    """Issue 10, defect 11: reports never run a user codec on frames the test did not decode itself."""
    frame = pickle.dumps(Boom())
    assert show_frame(frame, Pickling()) == repr(frame)
    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    with recording(Transcript(codec=Pickling())) as record:
        client.send(frame)
        server.recv()  # a raw receive: the test never decoded it
        client.send(frame)
        assert server.poll(5000)
        record.render()
        assert unread([server], codec=Pickling()) is not None  # strict mode's view of the unread one
    assert Boom.ran == []


# --- library use: ProcessTest.run without the pytest plugin ---------------------------------------------------------


class Talk(ProcessTest):
    def conversation(self, client: TestSocket, server: TestSocket) -> Any:
        yield ("send", client, [], ["ping", 1])
        request = yield ("recv", server)
        assert request == [["ping", 2]]


def test_a_failed_run_without_pytest_carries_its_transcript(ctx: zmq.Context[Any]) -> None:
    server = make_sock(ctx, zmq.PAIR, bind=("", 0), name="server", timeout=5)
    client = make_sock(ctx, zmq.PAIR, connect=server.endpoint, name="client", timeout=5)
    try:
        with nothing_records(), pytest.raises(AssertionError) as excinfo:
            Talk().run(Talk().conversation, client, server)
    finally:
        server.close()
        client.close()
    (notes,) = getattr(excinfo.value, "__notes__", [])
    lines = notes.splitlines()
    assert lines[0] == "zmqtest transcript:"
    assert re.search(r'^ +\d+\.\d{3}  \|     o-+> \["ping", 1\]$', notes, re.MULTILINE)
    assert re.search(r'^ +\d+\.\d{3}  \|     \|       <-+ \["ping", 1\]$', notes, re.MULTILINE)
    assert re.search(r"^ +\d+\.\d{3}  x-+  run failed: AssertionError$", lines[-1])


def test_a_run_without_pytest_and_with_the_transcript_off_adds_nothing(ctx: zmq.Context[Any]) -> None:
    server = make_sock(ctx, zmq.PAIR, bind=("", 0), name="server", timeout=5)
    client = make_sock(ctx, zmq.PAIR, connect=server.endpoint, name="client", timeout=5)
    try:
        with nothing_records(), using(Settings(transcript="never")), pytest.raises(AssertionError) as excinfo:
            Talk().run(Talk().conversation, client, server)
    finally:
        server.close()
        client.close()
    assert not getattr(excinfo.value, "__notes__", [])


def test_under_a_transcript_run_records_there_and_tells_it_the_codec(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)

    class RawTalk(Talk):
        codec = RawCodec()

        def conversation(self, client: TestSocket, server: TestSocket) -> Any:
            yield ("send", client, [], b"hello")
            request = yield ("recv", server, None)
            assert request == [b"hello"]

    RawTalk().run(RawTalk().conversation, client, server)
    assert [kind for _, kind, _ in kinds(transcript)] == ["send", "recv"]
    assert isinstance(transcript.codec, RawCodec)
    assert "bodies decoded with RawCodec()" in transcript.render()


@contextmanager
def nothing_records() -> Iterator[None]:
    """No transcript in force inside the block, as without the pytest plugin."""
    token = zmqtest.transcript._current.set(None)
    try:
        yield
    finally:
        zmqtest.transcript._current.reset(token)


# --- the report of a failing test (inner pytest runs) ---------------------------------------------------------------

SERVER = '''
import json
import multiprocessing
import os

import pytest
import zmq

import zmqtest.transcript
from zmqtest import ProcessTest


class Server(multiprocessing.Process):
    """Echoes each request (a ROUTER: it may leave one unanswered); ["exit", n] ends it with code n; ["mute"] is
    not answered."""

    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.bind(self.endpoint)
        while True:
            frames = sock.recv_multipart()
            request = json.loads(frames[-1])
            if request[0] == "exit":
                os._exit(request[1])
            if request[0] != "mute":
                sock.send_multipart(frames)


@pytest.fixture
def client(zmq_process_factory, zmq_socket_factory, zmq_endpoint):
    sock = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=0.3)
    zmq_process_factory(Server(zmq_endpoint), name="server", ready=sock)
    return sock
'''

REPORT_TESTS = """
class TestServer(ProcessTest):
    def test_wrong_reply(self, client):
        yield ("send", client, [], ["ping", 1])
        reply = yield ("recv", client)
        assert reply == [["pong", 1]]

    def test_passes(self, client):
        yield ("send", client, [], ["ping", 2])
        reply = yield ("recv", client)
        assert reply == [["ping", 2]]

    def test_no_reply(self, client):
        yield ("send", client, [], ["mute"])
        yield ("recv", client)

    def test_dies(self, client):
        yield ("send", client, [], ["exit", 3])
        yield ("recv", client)

    def test_big(self, client):
        yield ("send", client, [], ["blob", "x" * (1 << 20)])
        reply = yield ("recv", client)
        assert reply == []

    @pytest.mark.zmqtest(transcript="never")
    def test_marked_never(self, client):
        yield ("send", client, [], ["ping", 3])
        assert False, "no transcript for me"
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_inner=SERVER + REPORT_TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def sections(result: pytest.RunResult) -> dict[str, list[str]]:
    """Per failing test (its header line): the lines of its report."""
    found: dict[str, list[str]] = {}
    current_test = None
    for line in result.outlines:
        header = re.match(r"^_+ (\S+) _+$", line)
        if header:
            current_test = header.group(1)
            found[current_test] = []
        elif re.match(r"^=+ ", line):
            current_test = None
        elif current_test is not None:
            found[current_test].append(line)
    return found


def transcript_of(lines: list[str]) -> list[str]:
    """The lines of the transcript section among a test's report lines."""
    start = next(n for n, line in enumerate(lines) if re.match(r"^-+ zmqtest transcript \(call\) -+$", line))
    end = next((n for n in range(start + 1, len(lines)) if re.match(r"^-+ .* -+$", lines[n])), len(lines))
    return lines[start + 1 : end]


def test_a_failing_tests_report_shows_its_transcript(inner: pytest.Pytester) -> None:
    result = run(inner)
    result.assert_outcomes(passed=1, failed=5)
    reports = sections(result)
    lines = transcript_of(reports["TestServer.test_wrong_reply"])
    assert all(len(line) <= WIDTH for line in lines)
    text = "\n".join(lines)
    assert re.search(r"^ +ms +test +client +server$", text, re.MULTILINE)
    assert re.search(r"^  client +REQ socket 'client' connected to tcp://127\.0\.0\.1:\d+$", text, re.MULTILINE)
    assert re.search(r"^  server +process under test$", text, re.MULTILINE)
    assert re.search(r"^ +\d+\.\d{3}  \|     \|       \*   started: pid \d+, Server with forkserver$", text, re.M)
    assert re.search(r"\*   ready: a connection on REQ socket 'client'", text)
    assert re.search(r'^ +\d+\.\d{3}  \|     o-+> \["ping", 1\]$', text, re.MULTILINE)
    assert re.search(r'^ +\d+\.\d{3}  \|     <-+ \["ping", 1\]$', text, re.MULTILINE)
    assert re.search(r"^ +\d+\.\d{3}  x-+  call failed: AssertionError: assert \[\['ping', 1\]\] == ", text, re.M)
    assert text.index("--- setup ---") < text.index("started:") < text.index("--- call ---") < text.index("|     o-")


def test_a_passing_test_has_no_transcript_unless_always(inner: pytest.Pytester) -> None:
    result = run(inner, "-rP", "-k", "passes")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*zmqtest transcript*")
    result = run(inner, "-rP", "-k", "passes", "--zmqtest-transcript=always")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines(
        [r"^-+ zmqtest transcript \(call\) -+$", r'.*o-+> \["ping", 2\]$', r'.*<-+ \["ping", 2\]$']
    )


def test_never_shows_no_transcript_on_the_command_line_in_the_ini_and_by_marker(inner: pytest.Pytester) -> None:
    result = run(inner, "--zmqtest-transcript=never", "-k", "wrong_reply or marked_never")
    result.assert_outcomes(failed=2)
    result.stdout.no_fnmatch_line("*zmqtest transcript*")
    result.stdout.fnmatch_lines(["*- zmqtest process server (call) -*"])  # the rest of the report is there
    inner.makeini("[pytest]\nzmqtest_transcript = never\n")
    result = run(inner, "-k", "wrong_reply")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*zmqtest transcript*")
    inner.makeini("[pytest]\nzmqtest_transcript = always\n")
    result = run(inner, "-rP", "-k", "passes or marked_never")
    result.assert_outcomes(passed=1, failed=1)
    assert len([line for line in result.outlines if "- zmqtest transcript (call) -" in line]) == 1  # not the marked


def test_a_timeout_shows_on_its_socket(inner: pytest.Pytester) -> None:
    result = run(inner, "-k", "no_reply")
    result.assert_outcomes(failed=1)
    text = "\n".join(transcript_of(sections(result)["TestServer.test_no_reply"]))
    assert re.search(r'o-+> \["mute"\]\n +\d+\.\d{3}  \|     x-+  recv_multipart: no reply within 0\.3 s', text)


def test_a_death_shows_its_exit_code(inner: pytest.Pytester) -> None:
    result = run(inner, "-k", "dies")
    result.assert_outcomes(failed=1)
    text = "\n".join(transcript_of(sections(result)["TestServer.test_dies"]))
    assert re.search(r'o-+> \["exit", 3\]', text)
    assert re.search(r"\|     \|       \*   exited with code 3", text)
    assert re.search(r"\|     x-+  server \(pid \d+\) exited with code 3 while recv_multipart", text)


def test_a_one_mib_body_is_cut_in_the_report(inner: pytest.Pytester) -> None:
    result = run(inner, "-k", "big")
    result.assert_outcomes(failed=1)
    lines = transcript_of(sections(result)["TestServer.test_big"])
    assert all(len(line) <= WIDTH for line in lines)
    big = [line for line in lines if "bytes]" in line]
    assert len(big) == 2  # sent and echoed
    assert all(re.search(r'\[1,048,5\d\d bytes\] \["blob", "xxx+\.\.\.$', line) for line in big)


# --- codecs: decoded first, then cut ---------------------------------------------------------------------------------

SPAWN = ["spawn", {"user_classes_count": {f"User{n}": n for n in range(60)}, "host": "http://127.0.0.1"}]
"""A msgpack body of some 500 bytes, like the 888-byte one a user of a load tool found unreadable."""


class DuckCodec:
    """A codec that does not subclass Codec and has no repr of its own (msgpack underneath)."""

    safe_to_render = True

    def __init__(self) -> None:
        self._inner = MsgpackCodec()

    def encode(self, body: Any) -> bytes:
        return self._inner.encode(body)

    def decode(self, frame: bytes) -> Any:
        return self._inner.decode(frame)


class RenderingCodec(MsgpackCodec):
    """Renders whole messages itself: the identity frame in hex, the body decoded."""

    def render(self, frames: list[bytes]) -> str:
        *header, body = frames
        if body == b"\xc1":
            raise ValueError("a bug in the codec's render")
        return " ".join(frame.hex() for frame in header) + f" :: {self.decode(body)!r}"


def test_a_long_msgpack_body_is_decoded_then_cut_to_the_line(socks: Sockets, transcript: Transcript) -> None:
    transcript.codec = MsgpackCodec()
    server, client = pair(socks, timeout=5)
    frame = MsgpackCodec().encode(SPAWN)
    assert HEAD_BYTES < len(frame) < KEPT_BYTES
    client.send(frame)
    assert server.recv() == frame
    lines = transcript.render().splitlines()
    assert lines[0].endswith("; bodies decoded with MsgpackCodec()")
    rows = [line for line in lines if "bytes]" in line]
    assert len(rows) == 2  # sent and received
    for row in rows:
        assert len(row) <= WIDTH
        assert f"[{len(frame):,} bytes] ['spawn', {{'user_classes_count': {{'User0': 0, 'User1': 1," in row
        assert row.endswith("...")


def test_the_header_names_a_codec_without_a_repr_by_its_class(socks: Sockets, transcript: Transcript) -> None:
    transcript.codec = DuckCodec()
    server, client = pair(socks, timeout=5)
    client.send(DuckCodec().encode(["hello", 1]))
    server.recv()
    text = transcript.render()
    assert text.splitlines()[0].endswith("; bodies decoded with DuckCodec")
    assert "object at 0x" not in text
    assert "['hello', 1]" in text  # duck typing: safe_to_render and decode are enough


def test_a_codec_may_render_whole_messages_header_frames_included(socks: Sockets, transcript: Transcript) -> None:
    transcript.codec = RenderingCodec()
    server = socks(zmq.ROUTER, bind=("", 0), name="server", timeout=5)
    client = socks(zmq.DEALER, connect=server.endpoint, name="client", timeout=5, identity=b"\x00\x01w1")
    client.send(RenderingCodec().encode(SPAWN))
    server.recv_multipart()
    client.send(b"\xc1")  # the codec's render fails on it: the default rendering instead
    server.recv_multipart()
    rows = [line for line in transcript.render().splitlines() if re.match(r"^ +\d+\.\d{3} .*<-", line)]
    assert len(rows) == 2
    assert len(rows[0]) <= WIDTH
    assert "- 00017731 :: ['spawn', {'user_classes_count': {'User0': 0" in rows[0]
    assert rows[1].endswith("- b'\\x00\\x01w1' | b'\\xc1'")


def test_frames_are_kept_whole_only_within_the_budget(
    socks: Sockets, transcript: Transcript, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zmqtest.transcript, "KEPT_TOTAL", 3 * 1000)
    server, client = pair(socks, timeout=5)
    with recording(Transcript()) as budgeted:
        for n in range(4):
            client.send(bytes([n]) * 1000)
            server.recv()
    sent = [data for _, _, kind, data in budgeted.events if kind == "send"]
    assert sent[:2] == [(b"\x00" * 1000,), (b"\x01" * 1000,)]  # the sends and receives share the budget
    assert sent[2:] == [(Clipped(b"\x02" * HEAD_BYTES, 1000),), (Clipped(b"\x03" * HEAD_BYTES, 1000),)]
    assert not transcript.events  # the outer transcript saw none of it


def test_a_frame_longer_than_kept_bytes_is_kept_as_its_head(socks: Sockets, transcript: Transcript) -> None:
    server, client = pair(socks, timeout=5)
    client.send(b"y" * (KEPT_BYTES + 1))
    client.send(b"z" * KEPT_BYTES)
    server.recv()
    server.recv()
    sent = [data for _, _, kind, data in transcript.events if kind == "send"]
    assert sent == [(Clipped(b"y" * HEAD_BYTES, KEPT_BYTES + 1),), (b"z" * KEPT_BYTES,)]


def test_strict_mode_shows_unread_msgpack_messages_decoded(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    frame = MsgpackCodec().encode(SPAWN)
    server.send(frame)
    assert client.poll(WAIT_MS, zmq.POLLIN)
    report = unread([client], codec=MsgpackCodec())
    assert report is not None
    assert f"[{len(frame):,} bytes] ['spawn', {{'user_classes_count': {{'User0': 0" in report


MSGPACK_TESTS = """
import multiprocessing

import pytest
import zmq

from zmqtest import MsgpackCodec, ProcessTest


class Echo(multiprocessing.Process):
    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.bind(self.endpoint)
        while True:
            sock.send_multipart(sock.recv_multipart())


@pytest.fixture
def worker(zmq_process_factory, zmq_socket_factory, zmq_endpoint):
    sock = zmq_socket_factory(zmq.DEALER, connect=zmq_endpoint, name="worker", timeout=5)
    zmq_process_factory(Echo(zmq_endpoint), name="master", ready=sock)
    return sock


class TestLoadTool(ProcessTest):
    codec = MsgpackCodec()

    def test_spawn(self, worker):
        yield ("send", worker, [], SPAWN)
        reply = yield ("recv", worker)
        assert reply == [["spawning"]]
"""


def test_a_msgpack_conversation_reads_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=f"SPAWN = {SPAWN!r}\n" + MSGPACK_TESTS)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    lines = transcript_of(sections(result)["TestLoadTool.test_spawn"])
    assert lines[0].endswith("; bodies decoded with MsgpackCodec()")
    size = len(MsgpackCodec().encode(SPAWN))
    rows = [line for line in lines if f"[{size:,} bytes] ['spawn', {{'user_classes_count': {{'User0': 0," in line]
    assert len(rows) == 2, "\n".join(lines)  # sent and echoed, decoded
    assert all(len(line) <= WIDTH for line in lines)
