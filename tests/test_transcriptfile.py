"""Transcripts as data: the JSON Lines file, its loader, the option that writes it, and the reports that show it.

In-process tests record real sockets on loopback; the report tests run inner pytest projects in a
subprocess with a deadline, against a real server process started through ``zmq_process_factory``
(plain and under xdist), and open pytest-html's page in a real headless Chromium.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import pair

from zmqtest import ProcessTest, SocketTimeout, TestSocket, recv, send, sequencehtml
from zmqtest.codecs import MsgpackCodec
from zmqtest.rendering import HEAD_BYTES, Clipped, More
from zmqtest.transcript import KEPT_BYTES, KEPT_FRAMES, Transcript, note, recording
from zmqtest.transcriptfile import FormatError, Recorded, dump, file_name, load, loads, write

if TYPE_CHECKING:
    from conftest import Sockets

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
BROWSER_DEADLINE = 60.0
"""Seconds Chromium may take to load, lay out and dump (or shoot) the report."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error")
MIB = 1 << 20


class Talk(ProcessTest):
    def conversation(self, client: TestSocket, server: TestSocket) -> Any:
        yield send(client, [], ["ping", 1])
        yield send(client, [], ["heartbeat"])
        yield send(client, [], ["ping", 2])
        request = yield recv(server)
        assert request == [["ping", 1]]
        request = yield recv(server, skip=lambda frames: frames[-1] == ["heartbeat"])
        assert request == [["ping", 2]]


# --- the file and its loader -----------------------------------------------------------------------------------------


def test_every_kind_of_event_round_trips_through_the_file(socks: Sockets, tmp_path: Path) -> None:
    with recording(Transcript()) as transcript:
        transcript.phase("call")
        server, client = pair(socks, timeout=5)
        Talk().run(Talk().conversation, client, server)
        client.send_multipart([b"id", b"", b"\xff\x00 not json"])
        server.recv_multipart()
        long = bytes(range(256)) * (KEPT_BYTES // 256 + 1)
        client.send_multipart([str(n).encode() for n in range(KEPT_FRAMES + 3)] + [long])
        server.recv_multipart()
        note("worker", "started: pid 1")
        note(None, "the test's own event")
        with pytest.raises(SocketTimeout):
            client.recv(timeout=0.05)
    recorded = Recorded.of(transcript, test="tests/test_x.py::test_y[a/b]", outcome="call failed: AssertionError")
    path = write(recorded, tmp_path / "deep" / "t.jsonl")
    loaded = load(path)
    assert loaded == recorded

    header, *rows = (json.loads(line) for line in path.read_text().splitlines())
    assert header["zmqtest_transcript"] == 1
    assert header["test"] == "tests/test_x.py::test_y[a/b]"
    assert header["codec"] == "JsonCodec()"
    assert header["outcome"] == "call failed: AssertionError"
    assert [(p["id"], p["role"]) for p in header["participants"]] == [
        ("test", "test"),
        ("client", "mimic"),
        ("server", "mimic"),
        ("worker", "process"),
    ]
    assert [(row["who"], row["kind"]) for row in rows] == [
        ("test", "phase"),
        *[("client", "send")] * 3,
        ("server", "recv"),
        ("server", "skipped"),
        ("server", "recv"),
        ("client", "send"),
        ("server", "recv"),
        ("client", "send"),
        ("server", "recv"),
        ("worker", "note"),
        ("test", "note"),
        ("client", "error"),
    ]
    assert [row["t"] for row in rows] == sorted(row["t"] for row in rows)
    first = rows[1]
    assert first["direction"] == "out"
    assert base64.b64decode(first["frames"][0]["b64"]) == b'["ping", 1]'
    assert first["body"] == ["ping", 1]
    assert first["text"] == '["ping", 1]'
    assert rows[5]["direction"] == "in"
    assert rows[5]["body"] == ["heartbeat"]
    raw = rows[7]
    assert [base64.b64decode(f["b64"]) for f in raw["frames"]] == [b"id", b"", b"\xff\x00 not json"]
    assert "body" not in raw  # not JSON: the frames are the truth
    many = loaded.events[9].frames
    assert many[:KEPT_FRAMES] == tuple(str(n).encode() for n in range(KEPT_FRAMES))
    assert many[KEPT_FRAMES] == More(4)
    assert rows[9]["frames"][KEPT_FRAMES] == {"more": 4}
    assert rows[13]["text"].startswith("recv: no message within 0.05 s")
    assert rows[11]["text"] == "started: pid 1"


def test_a_frame_over_the_kept_size_is_its_head_and_size_unless_the_transcript_keeps_frames_whole(
    socks: Sockets,
) -> None:
    server, client = pair(socks, timeout=5)
    big = os.urandom(MIB)
    frames = [str(n).encode() for n in range(20)] + [big]
    with recording(Transcript()) as clipping:
        client.send_multipart(frames)
        server.recv_multipart()
    sent = loads("\n".join(_lines(Recorded.of(clipping)))).messages("client")[0]
    assert sent.frames[-1] == More(20 + 1 - KEPT_FRAMES)
    with recording(Transcript()) as clipping:
        client.send(big)
        server.recv()
    (frame,) = loads("\n".join(_lines(Recorded.of(clipping)))).messages("client")[0].frames
    assert frame == Clipped(big[:HEAD_BYTES], MIB)
    with recording(Transcript(whole=True)) as whole:
        client.send_multipart(frames)
        server.recv_multipart()
    loaded = loads("\n".join(_lines(Recorded.of(whole))))
    assert [event.frames for event in loaded.messages()] == [tuple(frames), tuple(frames)]


def _lines(recorded: Recorded) -> list[str]:
    import io

    out = io.StringIO()
    dump(recorded, out)
    return out.getvalue().splitlines()


def test_a_codec_that_decodes_to_other_than_json_gives_the_bodys_repr(socks: Sockets) -> None:
    pytest.importorskip("msgpack")
    codec = MsgpackCodec()
    server, client = pair(socks, timeout=5)
    with recording(Transcript(codec=codec)) as transcript:
        client.send(codec.encode({"blob": b"\x00\x01", "n": 1}))
        client.send(codec.encode(["ping", 1]))
        server.recv()
        server.recv()
    first, second, *_ = Recorded.of(transcript).messages("client")
    assert (first.body, first.body_repr) == (None, repr({"blob": b"\x00\x01", "n": 1}))
    assert (second.body, second.body_repr) == (["ping", 1], None)


def test_the_loader_names_the_line_it_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"zmqtest_transcript": 1, "participants": []}\n{"t": 1.0}\n')
    with pytest.raises(FormatError, match=r"bad\.jsonl:2: not a zmqtest transcript line \(KeyError"):
        load(bad)
    with pytest.raises(FormatError, match=r"<transcript>:1: .*no 'zmqtest_transcript' version"):
        loads('{"something": "else"}')
    with pytest.raises(FormatError, match=r"layout version 2; this zmqtest reads version 1"):
        loads('{"zmqtest_transcript": 2, "participants": []}')
    with pytest.raises(FormatError, match="empty: no header line"):
        loads("")
    unknown = '{"zmqtest_transcript": 1, "participants": []}\n{"t": 1.0, "who": "a", "kind": "sent", "text": "x"}'
    with pytest.raises(FormatError, match=r":2: .*an event of kind 'sent': the kinds are send, recv, skipped, error,"):
        loads(unknown)


def test_file_names_are_safe_and_distinct_for_distinct_test_ids() -> None:
    ids = ["t.py::test[a/b]", "t.py::test[a_b]", "t.py::test[a b]", "t.py::" + "x" * 500, "t.py::" + "x" * 501]
    names = [file_name(nodeid) for nodeid in ids]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.jsonl", name) and len(name) < 150 for name in names)
    assert names[0].startswith("t.py_test_a_b-")
    assert file_name("../../etc/passwd").startswith("etc_passwd-")


def test_the_diagram_escapes_what_the_peers_sent_and_the_command_makes_a_page(socks: Sockets, tmp_path: Path) -> None:
    with recording(Transcript()) as transcript:
        server, client = pair(socks, timeout=5)
        client.send(b'["<script>alert(1)</script>", "&amp;"]')
        server.recv()
        note("<b>worker</b>", "started <now>")
    path = write(Recorded.of(transcript, test="t<1>"), tmp_path / "t.jsonl")
    out = tmp_path / "page.html"
    done = subprocess.run(
        [sys.executable, "-m", "zmqtest", "diagram", str(path), str(out)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="zt-diagram"') == 1
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp;amp;" in page
    assert "&lt;b&gt;worker&lt;/b&gt;" in page
    assert "<title>zmqtest transcript: t&lt;1&gt;</title>" in page


# --- the option, pytest-html and JUnit XML (inner pytest runs) -------------------------------------------------------

PROJECT = '''
import multiprocessing

import pytest
import zmq

from zmqtest import ProcessTest


class Echo(multiprocessing.Process):
    """Echoes each request."""

    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        sock = zmq.Context().socket(zmq.ROUTER)
        sock.linger = 0
        sock.bind(self.endpoint)
        while True:
            sock.send_multipart(sock.recv_multipart())


@pytest.fixture
def client(zmq_process_factory, zmq_socket_factory, zmq_endpoint):
    sock = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
    zmq_process_factory(Echo(zmq_endpoint), name="echo", ready=sock)
    return sock


class TestEcho(ProcessTest):
    def test_wrong_reply(self, client):
        yield ("send", client, [], ["ping", 1])
        reply = yield ("recv", client)
        assert reply == [["pong", 1]]

    @pytest.mark.parametrize("n", ["a/b", "a_b"])
    def test_twins(self, client, n):
        yield ("send", client, [], ["twin", n])
        reply = yield ("recv", client)
        assert reply == []

    def test_passes(self, client):
        yield ("send", client, [], ["ping", 2])
        reply = yield ("recv", client)
        assert reply == [["ping", 2]]
'''
FAILING = (
    "test_project.py::TestEcho::test_wrong_reply",
    "test_project.py::TestEcho::test_twins[a/b]",
    "test_project.py::TestEcho::test_twins[a_b]",
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_project=PROJECT)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def written(directory: Path) -> dict[str, Recorded]:
    """The transcript files in ``directory``, by the test id in their header."""
    found = {}
    for path in sorted(directory.iterdir()):
        recorded = load(path)
        assert recorded.test is not None
        assert path.name == file_name(recorded.test)
        found[recorded.test] = recorded
    return found


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_each_failing_test_writes_its_transcript_to_the_directory(project: pytest.Pytester, xdist: tuple[str]) -> None:
    result = run(project, "--zmqtest-transcript-dir", "out/transcripts", *xdist)
    result.assert_outcomes(passed=1, failed=3)
    files = written(project.path / "out" / "transcripts")
    assert sorted(files) == sorted(FAILING)
    wrong = files[FAILING[0]]
    assert wrong.outcome is not None
    assert wrong.outcome.startswith("call failed: AssertionError: assert [['ping', 1]] == [['pong', 1]]")
    assert [(p.id, p.role) for p in wrong.participants] == [("test", "test"), ("client", "mimic"), ("echo", "process")]
    assert [(e.who, e.kind, e.body) for e in wrong.messages()] == [
        ("client", "send", ["ping", 1]),
        ("client", "recv", ["ping", 1]),
    ]
    assert [e.text for e in wrong.events if e.kind == "phase"] == ["setup", "call"]
    assert any(e.who == "echo" and e.text.startswith("started: pid ") for e in wrong.events)
    assert files[FAILING[1]].messages()[0].body == ["twin", "a/b"]
    assert files[FAILING[2]].messages()[0].body == ["twin", "a_b"]
    result.stdout.re_match_lines(
        [r"^\(as data: .*/out/transcripts/test_project\.py_TestEcho_test_wrong_reply-\w+\.jsonl\)$"]
    )


def test_the_directory_from_the_ini_file_and_none_without_it(project: pytest.Pytester) -> None:
    result = run(project, "-k", "wrong_reply")
    result.assert_outcomes(failed=1)
    assert not list(project.path.rglob("*.jsonl"))
    result.stdout.no_fnmatch_line("*(as data:*")
    project.makeini("[pytest]\nzmqtest_transcript_dir = from-ini\n")
    result = run(project, "-k", "wrong_reply")
    result.assert_outcomes(failed=1)
    assert list(written(project.path / "from-ini")) == [FAILING[0]]


def test_junit_xml_carries_the_transcript_as_a_property(project: pytest.Pytester) -> None:
    result = run(project, "-k", "wrong_reply or passes", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    cases = {case.get("name"): case for case in ET.parse(project.path / "junit.xml").iter("testcase")}
    properties = {prop.get("name"): prop.get("value") for prop in cases["test_wrong_reply"].iter("property")}
    text = properties["zmqtest transcript (call)"]
    assert text is not None
    assert re.search(r'\|     o-+> \["ping", 1\]\n', text)
    assert "call failed: AssertionError" in text
    assert not list(cases["test_passes"].iter("property"))


def test_pytest_html_is_imported_only_when_its_report_is_asked_for(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    check = "import sys, zmqtest.plugin; assert 'pytest_html' not in sys.modules, 'imported'; print('inert')"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=SUBPROCESS_DEADLINE)
    assert out.stdout.strip() == "inert", out.stderr
    result = run(project, "-p", "no:html", "-k", "wrong_reply", "--zmqtest-transcript-dir=out")  # as if not installed
    result.assert_outcomes(failed=1)
    assert list(written(project.path / "out")) == [FAILING[0]]


def html_report(project: pytest.Pytester, *args: str) -> Path:
    pytest.importorskip("pytest_html")
    result = run(project, "-k", "wrong_reply or passes", "--html=report.html", "--self-contained-html", *args)
    result.assert_outcomes(passed=1, failed=1)
    return project.path / "report.html"


def test_the_html_report_holds_the_diagram_of_a_failing_test_only(project: pytest.Pytester) -> None:
    page = html_report(project).read_text()
    # pytest-html 4 keeps each test's results as escaped JSON in the page; its script lays them out
    assert page.count("zt-diagram") == 1
    assert "zmqtest transcript: test_project.py::TestEcho::test_wrong_reply" in page


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine (CI installs Debian's: apt-get install chromium)")


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless Chromium (a profile of its own, nothing from the network)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
        *args,
        page.as_uri(),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as browser:
        try:
            out, err = browser.communicate(timeout=BROWSER_DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)  # the browser and its renderers: nothing outlives the test
            browser.communicate()
            pytest.fail(f"chromium did not finish {page.name} within {BROWSER_DEADLINE:g} s: {' '.join(command)}")
    assert browser.returncode == 0, f"chromium exited with {browser.returncode}: {err[-2000:]}"
    return subprocess.CompletedProcess(command, browser.returncode, out, err)


def test_the_diagram_shows_in_a_real_browser(project: pytest.Pytester, tmp_path: Path) -> None:
    report = html_report(project)
    dom = browse(report, tmp_path / "profile", "--dump-dom").stdout
    # the DOM after pytest-html's script ran: the diagram is an element now, not escaped text
    diagrams = re.findall(r'<svg [^>]*class="zt-diagram"', dom)
    assert len(diagrams) == 1
    rows = re.findall(r'<text class="zt-(\w+) zt-text"[^>]*data-who="(\w+)"><title>([^<]*)</title>', dom)
    messages = [(kind, who, text) for kind, who, text in rows if kind in ("send", "recv")]
    assert messages == [("send", "client", '["ping", 1]'), ("recv", "client", '["ping", 1]')]
    assert rows[-1][:2] == ("error", "test")
    assert "call failed: AssertionError" in rows[-1][2]
    shot = tmp_path / "report.png"
    browse(report, tmp_path / "profile", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("ZMQTEST_UPDATE_SCREENSHOTS"):  # the docs' picture: refreshed on request, reviewed by a person
        shutil.copyfile(shot, ROOT / "docs" / "transcript-html.png")


def test_the_html_diagram_draws_what_a_tap_saw_as_an_arrow_between_the_two_peers() -> None:
    record = Transcript()
    record.wire("client", "broker", [b"", b'["ping"]'])
    record.wire("broker", "client", [b"", b'["pong"]'])
    html = sequencehtml.render(Recorded.of(record))
    arrows = [
        (int(x1), int(x2)) for x1, x2 in re.findall(r'<line class="zt-wire" x1="(\d+)" y1="\d+" x2="(\d+)"', html)
    ]
    assert len(arrows) == 2
    (ping_from, ping_to), (pong_from, pong_to) = arrows
    assert ping_from < ping_to  # client to broker ...
    assert pong_from > pong_to  # ... and back
    assert abs(ping_from - pong_to) <= 5  # between the same two lifelines
    assert abs(ping_to - pong_from) <= 5
