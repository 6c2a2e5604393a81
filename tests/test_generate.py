"""The generator: a recording written out as a ProcessTest module, which runs against the real program.

Recordings are made of ``tests/apps/chat.py``'s real processes (through a tap, or with a mimic playing one
side); the generated module is run by pytester against the program it was recorded from (green) and a
changed one (red), and checked as source: it compiles, and ruff finds nothing under the project's rules.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq

from zmqtest.generate import WIDTH, generate
from zmqtest.processes import ProcessManager
from zmqtest.replay import record
from zmqtest.tap import Tap
from zmqtest.transcriptfile import Recorded, load, loads

if TYPE_CHECKING:
    from conftest import Sockets

CHAT = str(Path(__file__).parent / "apps" / "chat.py")
LISTENING = r"listening on (?P<endpoint>\S+)"
RULES = "E,F,W,I,B,UP,RUF,SIM,C4,PT,PIE"
"""The project's ruff rules (.ci/run)."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider")
DOC = Path(__file__).resolve().parent.parent / "docs" / "transcripts.md"


def doc_file(title: str) -> str:
    """The first block of docs/transcripts.md titled ``title`` (a file of its worked example)."""
    found = re.search(rf'^```\w+ title="{re.escape(title)}"\n(.*?)^```$', DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert found, f"docs/transcripts.md has no block titled {title}"
    return found[1]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessManager]:
    with ProcessManager(tmp_path / "processes") as manager:
        yield manager


@pytest.fixture
def tapped(tmp_path: Path, procs: ProcessManager) -> Path:
    """A REQ client process and a REP server process, recorded through a tap."""
    path = tmp_path / "chat.jsonl"
    server = procs.start([sys.executable, CHAT, "serve"], name="chat-server", ready=LISTENING)
    with record(path, test="chat"), Tap(str(server.endpoint)) as tap:
        client = procs.start([sys.executable, CHAT, "ask", str(tap.endpoint), "ada", "bob"], expect_exit=0)
        assert client.wait(10) == 0, client.report()
    return path


def run_generated(pytester: pytest.Pytester, text: str) -> pytest.RunResult:
    pytester.makepyfile(test_generated=text)
    return pytester.runpytest_subprocess(*INNER, timeout=90)


def test_a_generated_test_passes_against_the_program_it_was_recorded_from_and_fails_against_a_changed_one(
    tapped: Path, pytester: pytest.Pytester
) -> None:
    text = generate(tapped, command=[sys.executable, CHAT, "serve"], ready=LISTENING)
    assert '        yield send(client, [], ["hello", "ada"])\n        reply = yield recv(client)\n' in text
    assert '        assert reply == [["hi", "bob", 2]]\n' in text
    run_generated(pytester, text).assert_outcomes(passed=1)
    changed = run_generated(pytester, text.replace('"serve"]', '"serve", "--v2"]'))
    changed.assert_outcomes(failed=1)
    output = changed.stdout.str()
    assert '>       assert reply == [["hi", "bob", 2]]' in output
    assert "AssertionError: assert [['HI', 'bob', 2]] == [['hi', 'bob', 2]]" in output


def test_a_routers_ids_are_taken_from_what_it_receives_and_the_test_runs(
    tmp_path: Path, socks: Sockets, procs: ProcessManager, pytester: pytest.Pytester
) -> None:
    """A mimic ROUTER that served a DEALER client process: the generated test plays it against a new one."""
    path = tmp_path / "router.jsonl"
    router = socks(zmq.ROUTER, bind="tcp://127.0.0.1:*", name="server", timeout=5)
    ask = [sys.executable, CHAT, "ask", "{endpoint}", "--type", "DEALER", "ada", "bob"]
    with record(path):
        client = procs.start([arg.format(endpoint=router.endpoint) for arg in ask], expect_exit=0)
        for count in (1, 2):
            peer, body = router.recv_multipart()
            router.send_multipart([peer, json.dumps(["hi", json.loads(body)[1], count]).encode()])
        assert client.wait(10) == 0, client.report()
    text = generate(path, command=ask)
    assert "        peer1 = reply[0]  # the sender's routing id: it changes from run to run\n" in text
    assert '        assert reply == [peer1, ["hello", "bob"]]\n' in text
    assert '        yield send(server, [peer1], ["hi", "bob", 2])\n' in text
    assert "zmq_process_factory([arg.format(endpoint=server.endpoint) for arg in COMMAND], ready=server)" in text
    run_generated(pytester, text).assert_outcomes(passed=1)


def test_the_generated_module_is_valid_python_and_ruff_clean(tapped: Path, tmp_path: Path, socks: Sockets) -> None:
    """Both sides of a tap recording, placeholders left in; a mimic recording with raw and long messages."""
    raw = tmp_path / "raw.jsonl"
    server = socks(zmq.ROUTER, bind="tcp://127.0.0.1:*", name="server", timeout=5)
    dealer = socks(zmq.DEALER, connect=server.endpoint, name="worker-1", timeout=5)
    with record(raw, test='a "quoted" \\ name'):
        dealer.send_multipart([b"\x00\xffraw", b"it's"])
        peer, *_ = server.recv_multipart()
        long = {"items": [{"n": n, "text": "word " * 30} for n in range(20)], "blob": "y" * 400}
        server.send_multipart([peer, json.dumps(long).encode()])
        dealer.recv_multipart()
    long_id = tmp_path / "long-id.jsonl"  # a peer's own identity, too long for one line of the socket's call
    with zmq.Context() as context, context.socket(zmq.ROUTER) as router, context.socket(zmq.DEALER) as ctl:
        router.linger = ctl.linger = 0  # plain sockets: only the tap records
        router.rcvtimeo = ctl.rcvtimeo = 5000
        port = router.bind_to_random_port("tcp://127.0.0.1")
        with record(long_id), Tap(f"tcp://127.0.0.1:{port}", client="ctl", server="broker") as tap:
            ctl.routing_id = b"0123456789abcdef" * 4
            ctl.connect(str(tap.endpoint))
            ctl.send(b"list")
            router.send_multipart(router.recv_multipart())
            ctl.recv()
    modules = {
        "test_long_id.py": generate(long_id, play="ctl"),
        "test_client_side.py": generate(tapped),
        "test_server_side.py": generate(tapped, play="server"),
        "test_raw.py": generate(raw),
    }
    for name, text in modules.items():
        compile(text, name, "exec")
        (tmp_path / name).write_text(text)
        assert all(len(line) <= WIDTH for line in text.splitlines()), name
    assert "reply = yield recv(server, json_load_index=None)" in modules["test_raw.py"]
    assert 'assert reply == [peer1, b"\\x00\\xffraw", b"it\'s"]' in modules["test_raw.py"]
    assert 'worker_1.send_multipart([b"\\x00\\xffraw", b"it\'s"])' in modules["test_raw.py"]
    ruff = [sys.executable, "-m", "ruff"]
    names = [str(tmp_path / name) for name in modules]
    check = subprocess.run(
        [*ruff, "check", "--no-cache", "--line-length", str(WIDTH), "--select", RULES, *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = subprocess.run(
        [*ruff, "format", "--no-cache", "--check", "--diff", "--line-length", str(WIDTH), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def generate_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmqtest", "generate", *args], capture_output=True, text=True, timeout=60
    )


def test_the_generate_command_writes_the_module(tapped: Path, tmp_path: Path) -> None:
    done = generate_command(str(tapped))
    assert (done.returncode, done.stderr) == (0, "")
    written = tmp_path / "test_chat.py"
    assert done.stdout == f"wrote {written}\n"
    assert written.read_text() == generate(tapped)
    out = tmp_path / "elsewhere.py"
    assert generate_command(str(tapped), str(out), "--play", "server").returncode == 0
    assert out.read_text() == generate(tapped, play="server")
    unknown = generate_command(str(tapped), str(out), "--play", "nobody")
    assert unknown.returncode == 2
    assert (
        unknown.stderr == "zmqtest generate: chat.jsonl has no tapped peer 'nobody'; its tapped peers: client, server\n"
    )
    (tmp_path / "not.jsonl").write_text("hello\n")
    bad = generate_command(str(tmp_path / "not.jsonl"))
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"zmqtest generate: {tmp_path / 'not.jsonl'}:1: not a zmqtest transcript line")


def test_the_module_the_docs_show_is_what_the_generator_writes_from_the_recording_they_show(tmp_path: Path) -> None:
    recording = tmp_path / "greeting.jsonl"
    recording.write_text(doc_file("greeting.jsonl"))
    assert generate(recording, command=["python", "greeter.py"]) == doc_file("test_greeting.py")


def test_the_docs_recording_script_records_what_the_docs_show(tmp_path: Path) -> None:
    for name in ("greeter.py", "asker.py", "record_greeting.py"):  # the greeter's first version
        (tmp_path / name).write_text(doc_file(name))
    done = subprocess.run(
        [sys.executable, "record_greeting.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert said(load(tmp_path / "greeting.jsonl")) == said(loads(doc_file("greeting.jsonl")))


def said(conversation: Recorded) -> tuple[list[tuple[Any, ...]], set[tuple[str, str]]]:
    """What a tap saw: the messages in order; the greetings and commands (whose order between peers may vary)."""
    wire = [event for event in conversation.events if event.kind == "wire"]
    messages = [(event.who, event.to, event.frames) for event in wire if event.frames]
    commands = {(event.who, event.text) for event in wire if not event.frames and "through tap" not in event.text}
    return messages, commands
