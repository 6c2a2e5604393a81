"""Strict mode: a test fails if a mimic socket still holds unread messages at its end, and says which.

Inner pytest runs in a subprocess with a deadline, as users run them: the same inner
module under strict mode from the command line, the ini file and a marker, and without it.
"""

from __future__ import annotations

import re

import pytest

SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error")

STRICT_TESTS = '''
import pytest
import zmq

from zmqtest import ProcessTest, TestSocket, make_sock

DELIVERY_MS = 5000


@pytest.fixture
def pair(zmq_socket_factory):
    """Two PAIR mimics over inproc: a message sent is queued on the other side when send returns."""
    left = zmq_socket_factory(zmq.PAIR, bind="inproc://pair", name="left")
    right = zmq_socket_factory(zmq.PAIR, connect="inproc://pair", name="right")
    return left, right


def test_leaves_one(pair):
    left, right = pair
    left.send_json(["pong", 2])


def test_drains(pair):
    left, right = pair
    left.send_json(["pong", 2])
    assert right.recv_json() == ["pong", 2]


def test_leaves_many(pair):
    left, right = pair
    left.send_multipart([b"big", b"x" * (1 << 20)])
    for n in range(6):
        left.send_json(["event", n])
    left.send(b"last")


class TestArticleStyle(ProcessTest):
    """The seed article's way: the test's own context, TestSocket and make_sock, setup/teardown methods, tcp."""

    def setup_method(self):
        self.context = zmq.Context()
        self.server = make_sock(self.context, zmq.PAIR, bind=("", 0))
        self.client = TestSocket(self.context, zmq.PAIR, name="client")
        self.client.connect(self.server.endpoint)

    def teardown_method(self):
        self.server.close()
        self.client.close()
        self.context.term()

    def test_leftover_reply(self):
        yield ("send", self.client, [], ["ping", 1])
        request = yield ("recv", self.server)
        assert request == [["ping", 1]]
        yield ("send", self.server, [], ["pong", 1])
        assert self.client.poll(DELIVERY_MS)  # arrived, and never read


def test_own_failure(pair):
    left, right = pair
    left.send(b"unread")
    assert False, "the test's own failure"


def test_closed_socket(pair):
    left, right = pair
    left.send(b"gone with the socket")
    right.close()


def test_subscriptions_are_not_messages(zmq_socket_factory):
    feed = zmq_socket_factory(zmq.XPUB, bind="inproc://feed", name="feed")
    zmq_socket_factory(zmq.SUB, connect="inproc://feed", subscribe=b"news", name="sub")
    assert feed.poll(DELIVERY_MS)  # the subscription arrived, and is never read: strict mode does not count it


@pytest.fixture
def untouched(pair):
    yield pair
    assert pair[1].poll(0), "the message was consumed by a test that is not strict"


@pytest.mark.zmqtest(strict=False)
def test_not_strict(untouched):
    left, right = untouched
    left.send(b"left for later")
'''

MARKED = "pytestmark = pytest.mark.zmqtest(strict=True)\n"

STRICT_OUTCOMES = {"passed": 4, "failed": 4}
"""Under strict mode: drains, closed_socket, subscriptions_are_not_messages, not_strict pass;
leaves_one, leaves_many, leftover_reply, own_failure fail."""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_inner=STRICT_TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, "-rA", *args, timeout=SUBPROCESS_DEADLINE)


def failures(result: pytest.RunResult) -> dict[str, str]:
    """Per failed test (its short name): the text of its report, up to the next one."""
    found: dict[str, list[str]] = {}
    current = None
    for line in result.outlines:
        header = re.match(r"^_+ (\S+) _+$", line)
        if header:
            current = header.group(1).rpartition(".")[2]
            found[current] = []
        elif re.match(r"^=+ ", line):
            current = None
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def check_strict_failures(result: pytest.RunResult) -> None:
    result.assert_outcomes(**STRICT_OUTCOMES)
    reports = failures(result)
    assert sorted(reports) == ["test_leaves_many", "test_leaves_one", "test_leftover_reply", "test_own_failure"]
    one = reports["test_leaves_one"]
    assert re.search(
        r"^E?\s*zmqtest strict mode: 1 mimic socket still holds unread messages at the end of the test "
        r"\(receive them, or turn strict mode off for this test with @pytest\.mark\.zmqtest\(strict=False\)\):\n"
        r"E?\s*PAIR socket 'right' connected to inproc://pair: 1 unread message\n"
        r'E?\s*\["pong", 2\]$',
        one,
        re.MULTILINE,
    ), one
    listed = one.partition("zmqtest strict mode")[2].partition("\n---")[0]
    assert "'right'" in listed
    assert "'left'" not in listed  # left holds nothing
    many = reports["test_leaves_many"].partition("zmqtest strict mode")[2].partition("\n---")[0]
    assert "PAIR socket 'right' connected to inproc://pair: 8 unread messages" in many
    assert re.search(r"b'big' \| \[1,048,576 bytes\] b'xxxx", many), many
    assert '["event", 0]' in many
    assert '["event", 3]' in many
    assert '["event", 4]' not in many  # the first 5 are shown
    assert "... and 3 more" in many
    assert all(len(line) < 260 for line in many.splitlines())
    reply = reports["test_leftover_reply"]
    assert re.search(
        r"PAIR socket 'client' connected to tcp://127\.0\.0\.1:\d+: 1 unread message\n.*\[\"pong\", 1\]", reply
    )
    own = reports["test_own_failure"]
    assert "AssertionError: the test's own failure" in own  # the test's failure comes first, not masked
    assert own.index("the test's own failure") < own.index("zmqtest strict mode: 1 mimic socket")
    assert "b'unread'" in own
    result.stdout.fnmatch_lines(["FAILED test_inner.py::test_own_failure - AssertionError: the test's own failure*"])


def test_strict_from_the_command_line(inner: pytest.Pytester) -> None:
    check_strict_failures(run(inner, "--zmqtest-strict"))


def test_strict_from_the_ini_file(inner: pytest.Pytester) -> None:
    inner.makeini("[pytest]\nzmqtest_strict = true\n")
    check_strict_failures(run(inner))


def test_strict_from_a_marker(inner: pytest.Pytester) -> None:
    source = (inner.path / "test_inner.py").read_text()
    (inner.path / "test_inner.py").write_text(source.replace("DELIVERY_MS = 5000\n", "DELIVERY_MS = 5000\n" + MARKED))
    check_strict_failures(run(inner))


def test_strict_works_with_the_transcript_off(inner: pytest.Pytester) -> None:
    result = run(inner, "--zmqtest-strict", "--zmqtest-transcript=never")
    check_strict_failures(result)
    result.stdout.no_fnmatch_line("*zmqtest transcript*")


def test_without_strict_mode_unread_messages_are_fine_and_left_alone(inner: pytest.Pytester) -> None:
    result = run(inner)
    result.assert_outcomes(passed=7, failed=1)
    assert list(failures(result)) == ["test_own_failure"]
    result.stdout.no_fnmatch_line("*strict mode*")


def test_strict_off_in_the_ini_file_and_on_by_the_command_line(inner: pytest.Pytester) -> None:
    inner.makeini("[pytest]\nzmqtest_strict = false\n")
    run(inner).assert_outcomes(passed=7, failed=1)
    check_strict_failures(run(inner, "--zmqtest-strict"))


def test_a_strict_failure_shows_the_transcript_with_what_was_left(inner: pytest.Pytester) -> None:
    result = run(inner, "--zmqtest-strict", "-k", "leaves_one")
    result.assert_outcomes(failed=1)
    report = failures(result)["test_leaves_one"]
    assert re.search(r'^ +\d+\.\d{3}  \|     o-+> \["pong", 2\]$', report, re.MULTILINE), report
