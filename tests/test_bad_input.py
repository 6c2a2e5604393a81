"""Bad input, seen as users see it: every mistake a test (or its process) can make, in a real pytest run.

Each case below is a small test module run by pytest in a subprocess, as a user runs it: mimic
sockets from the zmqtest fixtures, real processes under test where the case needs one. For each,
the report must

- name the cause (the error type and the words that explain it),
- point at the user's line (the ``yield`` that asked for it, as ``file:line``),
- come quickly (zmqtest's short timeout, ``--zmqtest-timeout=0.3``; the subprocess has a deadline and
  pytest-timeout runs inside it, so a hang fails the case instead of the run),
- keep the original failure first: the short summary names it, and nothing else errors unless the
  case says so.

tests/test_runner.py checks the same messages piece by piece, without pytest in between; this file
is the whole list, from the outside.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import textwrap
from pathlib import Path

import pytest

import zmqtest

TESTS_DIR = Path(__file__).resolve().parent
BEHAVE = TESTS_DIR / "apps" / "behave.py"
PINGPONG = TESTS_DIR.parent / "examples" / "pingpong"
SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error", "--zmqtest-timeout=0.3", "--timeout=60")
"""Inner runs: file order, warnings are errors, short zmqtest waits, and pytest-timeout as the last resort."""
HERE = "# <- the report points here"
"""Marks the line of a case's source that its report must name."""
MIB = 1 << 20
BIG = 64 * MIB
"""The size of the big message."""

# --- what the cases share: the processes under test and a ProcessTest with a custom action ---------------------------

KIT = f'''
"""Processes under test for the bad-input cases (module level, so forkserver children can unpickle them)."""

import json
import multiprocessing
import os
import re
import time

import pytest
import zmq

from zmqtest import ProcessTest

BEHAVE = {str(BEHAVE)!r}


def idle():
    try:
        while True:
            time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped
    except KeyboardInterrupt:
        pass


class Sender(multiprocessing.Process):
    """Connects a PUSH to ``endpoint``, sends each message (a list of frames), then idles until stopped."""

    def __init__(self, endpoint, *messages):
        super().__init__()
        self.endpoint = endpoint
        self.messages = messages

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.PUSH)
        sock.linger = 0
        sock.connect(self.endpoint)
        for frames in self.messages:
            sock.send_multipart(frames)
        idle()
        sock.close()
        context.term()


class BigSender(multiprocessing.Process):
    """Connects a PAIR to ``endpoint``; on ``"go"``, sends one frame of ``size`` bytes: a JSON string, or not JSON."""

    def __init__(self, endpoint, size, json=True):
        super().__init__()
        self.endpoint = endpoint
        self.size = size
        self.json = json

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.PAIR)
        sock.linger = 0
        sock.connect(self.endpoint)
        sock.recv()
        frame = bytearray(b"x" * self.size)
        if self.json:
            frame[0] = frame[-1] = ord('"')
        sock.send(frame, copy=False)
        del frame
        idle()
        sock.close()
        context.term()


class Server(multiprocessing.Process):
    """A ROUTER serving REQ clients: ``["ping", n]`` gets ``["pong", n]``, ``["hush"]`` gets no reply at all."""

    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.bind(self.endpoint)
        try:
            while True:
                *envelope, body = sock.recv_multipart()
                request = json.loads(body)
                if request[0] == "ping":
                    sock.send_multipart([*envelope, json.dumps(["pong", request[1]]).encode()])
        except KeyboardInterrupt:
            pass
        sock.close()
        context.term()


class Conversation(ProcessTest):
    """The cases' ProcessTest, with two custom actions."""

    def double(self, n):
        return 2 * n

    def expect_pong(self, reply):
        if reply != [["pong", 1]]:
            pytest.fail(f"not a pong: {{reply!r}}")


def reset_peak_rss():
    """Make the peak RSS (VmHWM) of this process its current RSS; return that, in bytes."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status("VmRSS")


def peak_rss():
    return _status("VmHWM")


def _status(field):
    with open("/proc/self/status") as status:
        return int(re.search(field + r":\\s+(\\d+) kB", status.read()).group(1)) * 1024
'''


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: the inner test module, the outcome, and what its report must say."""

    source: str
    """The inner test module's body (``from kit import *`` comes first); the line ending in HERE is the one named."""
    outcomes: dict[str, int]
    """As for ``RunResult.assert_outcomes`` (errors defaults to 0: no teardown error unless listed)."""
    report: list[str]
    """Lines the report holds, in this order (``*`` matches anything, all else is literal)."""
    summary: str | None = None
    """The short summary's first line: the original failure's type (a pattern as for ``report``)."""
    ret: int = pytest.ExitCode.TESTS_FAILED
    """The exit status of the run."""


def case(
    source: str,
    report: list[str],
    summary: str | None = None,
    *,
    outcomes: dict[str, int] | None = None,
    ret: int = pytest.ExitCode.TESTS_FAILED,
) -> Case:
    return Case(source, {"failed": 1} if outcomes is None else outcomes, report, summary, ret)


HEADER = (
    "import sys\nimport datetime\nimport pytest\nimport zmq\nfrom zmqtest import SocketTimeout\nfrom kit import *\n"
)

CASES = {
    # --- the event itself ---------------------------------------------------------------------------------------------
    "unknown-action": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ("sned", sock, [], 1)  {HERE}
        """,
        [
            "E *EventError: unknown action 'sned'; did you mean 'send'? (known actions: double, expect_nothing, "
            "expect_pong, *recv, restart, resume, send, subscribed, wait_for_output; "
            "an event is a tuple (action, *args)*",
            "E * event: ('sned', <TestSocket PAIR socket bound to tcp://127.0.0.1:*>, [], 1) at test_case.py:*",
        ],
        "FAILED test_case.py::TestCase::test_case - zmqtest.errors.EventError: *",
    ),
    "event-not-yielded": case(
        """
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ("double", 1)
                ("send", sock, [], 1)
        """,
        [
            'E *EventError: TestCase.test_case makes an event and drops it (line *: ("send", sock, [], 1)): an '
            "event is sent to the test only by yield; write yield (...), or reply = yield (...)",
        ],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "no-yield-at-all": case(
        """
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                ("send", sock, [], 1)
                ("recv", sock)
        """,
        [
            'E *EventError: TestCase.test_case makes an event and drops it (line *: ("send", sock, [], 1); line *: '
            '("recv", sock)): an event is sent to the test only by yield; write yield (...), or reply = yield (...)',
        ],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "malformed-tuple": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ("send", sock, ["ping", 1])  {HERE}
        """,
        [
            "E *EventError: event ('send', <TestSocket PAIR *>, ['ping', 1]) does not fit "
            "send(sock, header, body, extra_frames=(), *, timeout=None): missing a required argument: 'body'",
        ],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "wrong-arguments-to-a-custom-action": case(
        f"""
        class TestCase(Conversation):
            def test_case(self):
                yield ("double", 1, 2)  {HERE}
        """,
        ["E *EventError: event ('double', 1, 2) does not fit double(n): too many positional arguments"],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "not-a-tuple": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ["recv", sock]  {HERE}
        """,
        ["E *EventError: yielded ['recv', <TestSocket PAIR *>], which is not an event: an event is a tuple *"],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "not-a-socket": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_context):
                sock = zmq_context.socket(zmq.PAIR)
                yield ("recv", sock)  {HERE}
        """,
        ["E *EventError: recv needs a TestSocket (make_sock(...)), got a plain zmq.Socket, which could wait forever"],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "header-not-a-list": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ("send", sock, "topic", ["ping", 1])  {HERE}
        """,
        ["E *EventError: the header of a send must be a list of frames, got 'topic'; use [] for none"],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "unserialisable-body": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0))
                yield ("send", sock, [], {{"ts": datetime.date(2024, 1, 31)}})  {HERE}
        """,
        [
            "E *MessageError: body is not JSON-serialisable: body['ts'] = datetime.date(2024, 1, 31) (date) "
            "(Object of type date is not JSON serializable)"
        ],
        "FAILED * - zmqtest.errors.MessageError: *",
    ),
    # --- what the process sends ---------------------------------------------------------------------------------------
    "non-json-frame": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                sink = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="sink")
                zmq_process_factory(Sender(zmq_endpoint, [b"id", b"{{not json"]), ready=sink)
                yield ("recv", sink)  {HERE}
        """,
        [
            "E *MessageError: frame -1 of the message on PULL socket 'sink' bound to tcp://127.0.0.1:* is not valid "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)) for JsonCodec(): "
            "b'{not json'; whole message: [b'id', b'{not json'] (pass json_load_index=None to get raw frames, "
            "or give the test class a codec that reads them: RawCodec())",
            "*zmqtest process Sender (call)*",
            "Sender (pid *, running)",
        ],
        "FAILED * - zmqtest.errors.MessageError: *",
    ),
    "non-utf8-frame": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                sink = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="sink")
                zmq_process_factory(Sender(zmq_endpoint, [b'"caf\\xe9"']), ready=sink)
                yield ("recv", sink)  {HERE}
        """,
        [
            "E *MessageError: frame -1 of the message on PULL socket 'sink' * is not UTF-8 for JsonCodec(): "
            "b'\"caf\\xe9\"'*"
        ],
        "FAILED * - zmqtest.errors.MessageError: *",
    ),
    "fewer-frames-than-expected": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                sink = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="sink")
                zmq_process_factory(Sender(zmq_endpoint, [b"1"]), ready=sink)
                yield ("recv", sink, 2)  {HERE}
        """,
        [
            "E *MessageError: cannot decode frame 2 of a 1-frame message on PULL socket 'sink' bound to *: [b'1'] "
            "(json_load_index, * a timeout goes by keyword: yield recv(sock, timeout=2))"
        ],
        "FAILED * - zmqtest.errors.MessageError: *",
    ),
    "big-message-not-json": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                peer = zmq_socket_factory(zmq.PAIR, bind=zmq_endpoint, name="peer", timeout=30)
                zmq_process_factory(BigSender(zmq_endpoint, {BIG}, json=False), ready=peer)
                yield ("send", peer, [], "go")
                yield ("recv", peer)  {HERE}
        """,
        [
            "E *MessageError: frame -1 of the message on PAIR socket 'peer' * is not valid (Expecting value: "
            f"line 1 column 1 (char 0)) for JsonCodec(): b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... ({BIG} bytes)*"
        ],
        "FAILED * - zmqtest.errors.MessageError: *",
    ),
    "message-bigger-than-maxmsgsize": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                peer = zmq_socket_factory(zmq.PAIR, bind=zmq_endpoint, name="peer", maxmsgsize={MIB})
                zmq_process_factory(BigSender(zmq_endpoint, {2 * MIB}), ready=peer)
                yield ("send", peer, [], "go")
                yield ("recv", peer)  {HERE}
        """,
        [
            "E *SocketTimeout: recv_multipart on PAIR socket 'peer' bound to tcp://127.0.0.1:*: no message within "
            f"0.3 s; this socket has maxmsgsize={MIB} bytes: libzmq drops the connection of a peer that sends a "
            "bigger message, and the message with it, so it never arrives*",
        ],
        "FAILED * - zmqtest.errors.SocketTimeout: *",
    ),
    # --- sockets ------------------------------------------------------------------------------------------------------
    "no-reply": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory(Server(zmq_endpoint), ready=client)
                yield ("send", client, [], ["hush"])
                yield ("recv", client)  {HERE}
        """,
        [
            "E *SocketTimeout: recv_multipart on REQ socket 'client' connected to tcp://127.0.0.1:*: no reply "
            "within 0.3 s; a peer is connected at tcp://127.0.0.1:*; Server (pid *, running)",
        ],
        "FAILED * - zmqtest.errors.SocketTimeout: *",
    ),
    "req-again-after-a-timeout": case(
        """
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory(Server(zmq_endpoint), ready=client)
                yield ("send", client, [], ["hush"])
                with pytest.raises(SocketTimeout, match="no reply within 0.3 s"):
                    yield ("recv", client)
                yield ("send", client, [], ["ping", 1])  # a plain REQ would raise EFSM here
                reply = yield ("recv", client)
                assert reply == [["pong", 1]]
        """,
        ["*1 passed*"],
        outcomes={"passed": 1},
        ret=pytest.ExitCode.OK,
    ),
    "req-out-of-turn": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory(Server(zmq_endpoint), ready=client)
                yield ("recv", client)  {HERE}
        """,
        [
            "E *ZMQError: Operation cannot be accomplished in current state",
            "E *in recv_multipart on REQ socket 'client' connected to tcp://127.0.0.1:*",
        ],
        "FAILED * - zmq.error.ZMQError: *",
    ),
    "router-to-an-unknown-identity": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                backend = zmq_socket_factory(zmq.ROUTER, bind=("", 0), name="backend")
                yield ("send", backend, [b"worker-7", b""], ["job", 1])  {HERE}
        """,
        [
            "E *ZMQError: Host unreachable",
            "E *in send_multipart on ROUTER socket 'backend' bound to tcp://127.0.0.1:*",
            "E *no peer with identity b'worker-7' is connected to ROUTER socket 'backend' bound to tcp://127.0.0.1:*",
        ],
        "FAILED * - zmq.error.ZMQError: *",
    ),
    "bad-socket-option-value": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sink = zmq_socket_factory(zmq.PULL, bind=("", 0), sndhwm=-1)  {HERE}
                yield ("recv", sink)
        """,
        ["E *ZMQError: Invalid argument", "E *in TestSocket(..., sndhwm=-1) for PULL socket (not bound or connected)"],
        "FAILED * - zmq.error.ZMQError: *",
    ),
    "bind-on-all-interfaces": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory):
                sink = zmq_socket_factory(zmq.PULL, bind="tcp://*:0")  {HERE}
                yield ("recv", sink)
        """,
        [
            "E *ValueError: bind('tcp://*:0') on PULL socket (not bound or connected) refused: '*' listens on all "
            "interfaces, so other machines could reach this mimic; bind it on loopback *, or make it with "
            "allow_external=True"
        ],
        "FAILED * - ValueError: *",
    ),
    "fixture-socket-kept-for-a-later-test": case(
        f"""
        class TestCase(Conversation):
            kept = None

            def test_first(self, zmq_socket_factory):
                TestCase.kept = zmq_socket_factory(zmq.PAIR, bind=("", 0), name="kept")
                yield ("double", 1)

            def test_second(self):
                yield ("send", TestCase.kept, [], "hello")  {HERE}
        """,
        [
            "E *ZMQError: send_multipart on PAIR socket 'kept' bound to tcp://127.0.0.1:* [closed]: this socket was "
            "closed by the zmq_socket_factory fixture at the end of test_case.py::TestCase::test_first (a fixture's "
            "sockets last one test: ask for the fixture in each test that uses them, rather than keep a socket in a "
            "global or a class attribute); a closed socket cannot be used again",
        ],
        "FAILED test_case.py::TestCase::test_second - zmq.error.ZMQError: *",
        outcomes={"passed": 1, "failed": 1},
    ),
    "ipc-path-bound-twice": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_socket_factory, zmq_endpoint_factory):
                jobs = zmq_endpoint_factory.ipc("jobs")
                zmq_socket_factory(zmq.PULL, bind=jobs, name="first")
                zmq_socket_factory(zmq.PULL, bind=jobs, name="second")  {HERE}
                yield ("double", 1)
        """,
        [
            "E *ZMQError: bind('ipc://*/jobs') on PULL socket 'second' (not bound or connected) refused: PULL socket "
            "'first' bound to ipc://*/jobs holds that path; libzmq would let this bind take it over silently (it "
            "replaces the socket file), and the first socket would get no more connections; unbind or close that one "
            "first, or bind another path",
        ],
        "FAILED * - zmq.error.ZMQError: *",
    ),
    # --- processes ----------------------------------------------------------------------------------------------------
    "lambda-target": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory(multiprocessing.Process(target=lambda: idle()))  {HERE}
                yield ("double", 1)
        """,
        [
            "E *TypeError: target=TestCase.test_case.<locals>.<lambda> of the Process is a lambda: under forkserver "
            "the Process is pickled to reach the child, and a function is pickled by its name; define it at module "
            "level (or start it with start_method='fork')"
        ],
        "FAILED * - TypeError: *",
    ),
    "bytes-ready-pattern": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory([sys.executable, BEHAVE, "silent"], ready=b"listening")  {HERE}
                yield ("double", 1)
        """,
        ["E *TypeError: ready=b'listening' is bytes: give a str regex (the process's output is read as text)"],
        "FAILED * - TypeError: *",
    ),
    "invalid-ready-regex": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory([sys.executable, BEHAVE, "silent"], ready="listening (on")  {HERE}
                yield ("double", 1)
        """,
        [
            "E *ValueError: ready='listening (on' is not a valid regular expression: missing ), unterminated "
            "subpattern at position 10"
        ],
        "FAILED * - ValueError: *",
    ),
    "closed-socket-as-ready": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                client.close()
                zmq_process_factory(Server(zmq_endpoint), ready=client)  {HERE}
                yield ("double", 1)
        """,
        [
            "E *ValueError: ready=<TestSocket REQ socket 'client' * is closed: give an open socket, one the process "
            "will connect to"
        ],
        "FAILED * - ValueError: *",
    ),
    "stop-not-callable": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory([sys.executable, BEHAVE, "silent"], stop="kill")  {HERE}
                yield ("double", 1)
        """,
        [
            "E *TypeError: stop='kill' is not callable: give a function that makes the process stop (say, one that "
            "sends it the stop message), or None for SIGINT"
        ],
        "FAILED * - TypeError: *",
    ),
    "expect-exit-not-a-code": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory([sys.executable, BEHAVE, "silent"], expect_exit="yes")  {HERE}
                yield ("double", 1)
        """,
        [
            "E *TypeError: expect_exit='yes' is a str: give True (it may end in any way), an exit code (say 0), or "
            "None or False (any end of its own fails the test)"
        ],
        "FAILED * - TypeError: *",
    ),
    "process-exits-early": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                zmq_process_factory([sys.executable, BEHAVE, "die"], ready="ready")  {HERE}
                yield ("double", 1)
        """,
        [
            "E *StartError: behave.py (pid *, exited with code 2) ended before it was ready (waited for a line "
            "matching 'ready' in its stdout or stderr)",
            "E *command: * */behave.py die",
            "E *--- stderr of behave.py *",
            "E *dying at *",
        ],
        "FAILED * - zmqtest.errors.StartError: *",
    ),
    "process-exits-during-a-wait": case(
        f"""
        from pingpong.pong import PongProc


        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=30)
                zmq_process_factory(PongProc(zmq_endpoint), ready=client)
                yield ("send", client, [], ["plzdiekthxbye", None])
                yield ("recv", client)  {HERE}
        """,
        [
            "E *ProcessExited: PongProc (pid *) exited with code 0 while recv_multipart on REQ socket 'client' "
            "connected to tcp://127.0.0.1:*",
            "E *process: PongProc started with forkserver",
        ],
        "FAILED * - zmqtest.errors.ProcessExited: *",
    ),
    "process-never-binds": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory([sys.executable, BEHAVE, "silent"], ready=client, ready_timeout=0.5)  {HERE}
                yield ("double", 1)
        """,
        [
            "E *StartError: behave.py (pid *) was not ready within 0.5 s: waited for a connection on REQ socket "
            "'client' connected to tcp://127.0.0.1:*; it was still running, and was stopped (SIGINT: *)",
        ],
        "FAILED * - zmqtest.errors.StartError: *",
    ),
    # --- the generator's own mistakes ---------------------------------------------------------------------------------
    "generator-returns-a-value": case(
        f"""
        class TestCase(Conversation):
            def test_case(self):  {HERE}
                doubled = yield ("double", 1)
                return doubled
        """,
        [
            "E *EventError: test generator TestCase.test_case (test_case.py:*) returned 2: a ProcessTest test ends "
            "without a value (assert on what it received instead)"
        ],
        "FAILED * - zmqtest.errors.EventError: *",
    ),
    "generator-raises": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory(Server(zmq_endpoint), ready=client)
                yield ("send", client, [], ["ping", 1])
                reply = yield ("recv", client)
                raise LookupError(f"no handler for {{reply}}")  {HERE}
        """,
        ["E *LookupError: no handler for [['pong', 1]]", "*zmqtest process Server (call)*"],
        "FAILED * - LookupError: *",
    ),
    "pytest-fail-in-a-custom-action": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                zmq_process_factory(Server(zmq_endpoint), ready=client)
                yield ("send", client, [], ["ping", 2])
                reply = yield ("recv", client)
                yield ("expect_pong", reply)  {HERE}
        """,
        ['>       yield ("expect_pong", reply)  ' + HERE, "E *Failed: not a pong: [['pong', 2]]", "kit.py:*: Failed"],
        "FAILED * - Failed: not a pong*",
    ),
    "generator-ignores-generator-exit": case(
        f"""
        class TestCase(Conversation):
            def interrupt(self):
                raise KeyboardInterrupt  {HERE}

            def test_case(self, zmq_socket_factory):
                sock = zmq_socket_factory(zmq.PAIR, bind=("", 0), name="quiet")
                try:
                    yield ("interrupt",)  # Ctrl-C during a wait
                finally:
                    yield ("send", sock, [], "bye")  # yields again while closed
        """,
        [
            "! KeyboardInterrupt",
            "  also, closing the test generator failed: RuntimeError('generator ignored GeneratorExit') !",
            "*test_case.py:*: KeyboardInterrupt",
        ],
        outcomes={},
        ret=pytest.ExitCode.INTERRUPTED,
    ),
    "teardown-error-after-a-failed-test": case(
        f"""
        class TestCase(Conversation):
            def test_case(self, zmq_process_factory):
                process = zmq_process_factory([sys.executable, BEHAVE, "exit3"], ready="ready")
                process.wait(10)  # it has exited with 3 before the test fails (else teardown's SIGINT may end it)
                doubled = yield ("double", 1)
                assert doubled == 3  {HERE}
        """,
        [
            "*_ ERROR at teardown of TestCase.test_case _*",
            "E *ProcessExited: 1 process ended unexpectedly *",
            "*behave.py (pid *, exited with code 3) ended before the test stopped it",
            "*_ TestCase.test_case _*",
            "E *assert 2 == 3",
        ],
        "FAILED * - assert 2 == 3",
        outcomes={"failed": 1, "errors": 1},
    ),
}


# --- bad option values: no yield line, the report names where the value came from -------------------------------------

OPTION_CASES = {
    "command-line": (
        ["--zmqtest-transcript=sometimes"],
        None,
        "ERROR: invalid transcript setting 'sometimes' from command line option --zmqtest-transcript: expected one of "
        "failed, always, never",
    ),
    "ini": (
        [],
        "[pytest]\nzmqtest_strict = maybe\n",
        "ERROR: invalid value 'maybe' from ini option zmqtest_strict in tox.ini: expected true or false (also 1/0, "
        "yes/no, on/off)",
    ),
}


# --- helpers ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner project with the kit module; the pingpong example importable (its PongProc is a process under test)."""
    # the zmqtest under test first (a worktree's, not the installed one), then the pingpong example
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(zmqtest.__file__).parent.parent), str(PINGPONG)]))
    pytester.makepyfile(kit=KIT)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def write_case(pytester: pytest.Pytester, source: str) -> Path:
    return pytester.makepyfile(test_case=HEADER + textwrap.dedent(source))


def marked_line(path: Path) -> int:
    """The number of the line that carries HERE."""
    [number] = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.endswith(HERE)]
    return number


# --- the cases --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_reported_with_its_cause_at_the_users_line(project: pytest.Pytester, name: str) -> None:
    bad = CASES[name]
    path = write_case(project, bad.source)
    result = run(project)
    result.assert_outcomes(**bad.outcomes)
    assert result.ret == bad.ret
    result.stdout.re_match_lines([_regex(line) for line in bad.report])
    output = result.stdout.str()
    if HERE in path.read_text():
        assert f"test_case.py:{marked_line(path)}" in output, f"the report does not name the line of {HERE!r}"
    if bad.summary is not None:
        summary = output[output.index("short test summary info") :].splitlines()[1]
        assert re.fullmatch(_regex(bad.summary), summary), f"{summary!r}: not the original failure"
    assert "zmqtest/runner.py" not in output, "the report shows zmqtest's runner instead of the user's line"
    if name in START_ARGUMENT_CASES:
        shown = re.findall(r"zmqtest/\w+\.py:\d+", output)
        assert shown == [], f"the report shows zmqtest's frames below the user's line: {shown}"


START_ARGUMENT_CASES = (
    "lambda-target",
    "bytes-ready-pattern",
    "invalid-ready-regex",
    "closed-socket-as-ready",
    "stop-not-callable",
    "expect-exit-not-a-code",
)
"""Arguments start() refuses before anything starts: the report ends at the user's line."""


def _regex(pattern: str) -> str:
    """A whole-line regex for ``pattern``, in which only ``*`` is a wildcard (brackets and ``?`` are literal)."""
    return ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_a_bad_option_value_is_a_usage_error_naming_where_it_came_from(project: pytest.Pytester, name: str) -> None:
    args, ini, message = OPTION_CASES[name]
    if ini is not None:
        project.makefile(".ini", tox=ini)
    write_case(project, "def test_nothing():\n    pass\n")
    result = run(project, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_marker_value_fails_that_test_only_naming_the_marker(project: pytest.Pytester) -> None:
    write_case(
        project,
        """
        class TestCase(Conversation):
            @pytest.mark.zmqtest(stop_grace="soon")
            def test_marked(self):
                yield ("double", 1)

            def test_unmarked(self):
                yield ("double", 1)
        """,
    )
    result = run(project)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of TestCase.test_marked _*",
            "invalid timeout 'soon' from @pytest.mark.zmqtest on test_case.py::TestCase::test_marked (stop_grace=...): "
            "expected a number of seconds, more than 0",
        ]
    )


# --- a 64 MiB message -------------------------------------------------------------------------------------------------

BIG_MESSAGE = f"""
class TestBig(Conversation):
    @pytest.mark.parametrize("decode", [False, True], ids=["raw", "json"])
    def test_big(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint, decode, request):
        peer = zmq_socket_factory(zmq.PAIR, bind=zmq_endpoint, name="peer", timeout=30)
        zmq_process_factory(BigSender(zmq_endpoint, {BIG}), ready=peer)
        start = reset_peak_rss()
        yield ("send", peer, [], "go")
        reply = yield ("recv", peer, -1 if decode else None)
        grown = peak_rss() - start
        [body] = reply
        assert len(body) == {BIG} - (2 if decode else 0)
        with open(f"rss-{{request.node.callspec.id}}.txt", "w") as out:
            out.write(str(grown))
        pytest.fail(f"failed, to show the report of a test that received {{len(body)}} bytes")  {HERE}
"""


def test_a_64_mib_message_costs_at_most_a_few_copies_and_its_report_stays_short(project: pytest.Pytester) -> None:
    path = write_case(project, BIG_MESSAGE)
    result = run(project)
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count(f"test_case.py:{marked_line(path)}: Failed") == 2
    assert len(output) < 64 * 1024, "the report (error, transcript, process sections) holds much of the message"
    grown = {kind: int((project.path / f"rss-{kind}.txt").read_text()) for kind in ("raw", "json")}
    print(
        f"peak RSS growth receiving {BIG // MIB} MiB: " + json.dumps({k: f"{v / BIG:.2f}x" for k, v in grown.items()})
    )
    assert grown["raw"] <= 2.5 * BIG, f"raw receive grew the peak RSS by {grown['raw'] / BIG:.2f} x the message"
    assert grown["json"] <= 3.5 * BIG, f"JSON receive grew the peak RSS by {grown['json'] / BIG:.2f} x the message"
