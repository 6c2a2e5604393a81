"""Record and replay: a mimic's conversation with a real process, recorded, then played against a new one.

The process under test is ``tests/apps/greeter.py`` (a command line): each run has its own port and pid,
which the replay normalises; its version 2 changes an answer, which the replay must show as a diff.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq

from zmqtest import ProcessTest, TestSocket, recv, send
from zmqtest.processes import ManagedProcess, ProcessManager
from zmqtest.replay import ReplayError, ReplayMismatch, record, replay
from zmqtest.transcript import Transcript, recording
from zmqtest.transcriptfile import Recorded, load

if TYPE_CHECKING:
    from conftest import Sockets

GREETER = str(Path(__file__).parent / "apps" / "greeter.py")
LISTENING = r"listening on (?P<endpoint>\S+)"
PID_RULE = [(r'"pid": \d+', '"pid": <PID>')]
"""The user's rule: the greeter's pid, in JSON (the built-in pid rules know ``pid 123`` and ``pid=123``)."""


class Greeting(ProcessTest):
    def conversation(self, client: TestSocket) -> Any:
        for name in ("ada", "bob", "cy"):
            yield send(client, [], ["hello", name])
            reply = yield recv(client)
            assert reply[0][:2] == ["hi", name]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessManager]:
    with ProcessManager(tmp_path / "processes") as manager:
        yield manager


def greeter(procs: ProcessManager, *args: str) -> ManagedProcess:
    return procs.start([sys.executable, GREETER, *args], name="greeter", ready=LISTENING)


def client_of(socks: Sockets, process: ManagedProcess) -> TestSocket:
    return socks(zmq.REQ, connect=str(process.endpoint), name="client", timeout=5)


@pytest.fixture
def recorded(tmp_path: Path, socks: Sockets, procs: ProcessManager) -> Path:
    """A conversation with a greeter, recorded to a file."""
    path = tmp_path / "greeting.jsonl"
    client = client_of(socks, greeter(procs))
    with record(path, test="greeting"):
        Greeting().run(Greeting().conversation, client)
    client.close()
    return path


def test_a_recording_keeps_the_conversation_whole(recorded: Path) -> None:
    conversation = load(recorded)
    assert conversation.test == "greeting"
    assert conversation.codec == "JsonCodec()"
    messages = conversation.messages("client")
    assert [(m.kind, m.body[:2]) for m in messages] == [
        ("send", ["hello", "ada"]),
        ("recv", ["hi", "ada"]),
        ("send", ["hello", "bob"]),
        ("recv", ["hi", "bob"]),
        ("send", ["hello", "cy"]),
        ("recv", ["hi", "cy"]),
    ]
    assert all(isinstance(frame, bytes) for m in messages for frame in m.frames)


def test_a_replay_against_a_new_run_of_the_same_program_passes(
    recorded: Path, socks: Sockets, procs: ProcessManager
) -> None:
    process = greeter(procs)
    lines = replay(recorded, [client_of(socks, process)], substitutions=PID_RULE)
    assert lines[:2] == [
        'client sent ["hello", "ada"]',
        'client received ["hi", "ada", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 1}]',
    ]
    assert len(lines) == 6
    assert str(process.pid) not in "\n".join(lines)


def test_a_replay_against_a_changed_program_fails_with_a_diff_of_messages(
    recorded: Path, socks: Sockets, procs: ProcessManager
) -> None:
    with pytest.raises(ReplayMismatch) as caught:
        replay(recorded, [client_of(socks, greeter(procs, "v2"))], substitutions=PID_RULE)
    message = str(caught.value)
    assert message.startswith(
        f"replay of {recorded}: the process under test did not answer as recorded "
        "(- recorded, + now; one line per message, normalised):\n"
    )
    diff = message.split("\n")[1:]
    assert diff[:2] == [f"--- {recorded} (recorded)", "+++ the process under test (now)"]
    changed = [line for line in diff if line.startswith(("-c", "+c"))]
    assert changed == [
        '-client received ["hi", "bob", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 2}]',
        '+client received ["HI", "bob", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 2}]',
        '-client received ["hi", "cy", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 3}]',
        '+client received ["HI", "cy", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 3}]',
    ]
    assert ' client sent ["hello", "bob"]' in diff  # the context: what was sent before


def test_a_long_message_whose_normalised_part_differs_in_length_still_matches(
    tmp_path: Path, socks: Sockets, procs: ProcessManager
) -> None:
    """A pid of another length (another machine's) in a reply over 256 bytes: no size in the lines to differ."""
    path = tmp_path / "long.jsonl"
    client = client_of(socks, greeter(procs))
    with record(path):
        client.send_json(["hello", "x" * 300])
        client.recv()
    client.close()
    recorded = load(path)
    events = []
    for event in recorded.events:
        if event.kind == "recv":
            reply = re.sub(rb'"pid": \d+', b'"pid": 7', event.frames[0])
            event = dataclasses.replace(event, frames=(reply,))
        events.append(event)
    lines = replay(
        dataclasses.replace(recorded, events=tuple(events)), [client_of(socks, greeter(procs))], substitutions=PID_RULE
    )
    assert lines[1].startswith('client received ["hi", "xxx')
    assert "bytes]" not in lines[1]


def test_without_the_users_rule_the_pid_differs(recorded: Path, socks: Sockets, procs: ProcessManager) -> None:
    with pytest.raises(ReplayMismatch, match=r'\+client received \["hi", "ada", \{"pid": \d+, "at": "tcp://'):
        replay(recorded, [client_of(socks, greeter(procs))])


def test_a_process_that_stops_answering_ends_the_replay_and_says_why(
    recorded: Path, socks: Sockets, procs: ProcessManager
) -> None:
    process = greeter(procs)
    client = client_of(socks, process)
    process.stop()
    with pytest.raises(ReplayMismatch) as caught:
        replay(recorded, [client], substitutions=PID_RULE, timeout=0.5)
    message = str(caught.value)
    assert "+client received nothing\n" in message
    assert "the replay stopped there: " in message
    assert "0.5 s" in message


def test_a_router_mimic_replies_to_the_peer_now_in_the_recorded_ones_place(tmp_path: Path, socks: Sockets) -> None:
    path = tmp_path / "router.jsonl"
    router = socks(zmq.ROUTER, bind="tcp://127.0.0.1:*", name="router", timeout=5)
    dealers = [socks(zmq.DEALER, connect=router.endpoint, timeout=5) for _ in range(2)]
    with record(path):
        for n, dealer in enumerate(dealers):
            dealer.send_json(["job", n])
            peer, body = router.recv_multipart()
            router.send_multipart([peer, body])
            assert dealer.recv_json() == ["job", n]
    # a new pair of peers, new routing ids: the recorded router's side is played against them
    dealers = [socks(zmq.DEALER, connect=router.endpoint, timeout=5) for _ in range(2)]
    for n, dealer in enumerate(dealers):
        dealer.send_json(["job", n])
    lines = replay(path, [router], leave_out=["DEALER", "DEALER#2"])
    assert lines == [
        'router received <ID1> | ["job", 0]',
        'router sent <ID1> | ["job", 0]',
        'router received <ID2> | ["job", 1]',
        'router sent <ID2> | ["job", 1]',
    ]
    assert [dealer.recv_json() for dealer in dealers] == [["job", 0], ["job", 1]]  # each got its own reply


def test_a_recording_that_cannot_be_played_is_refused(recorded: Path, socks: Sockets, tmp_path: Path) -> None:
    other = socks(zmq.REQ, name="other")
    with pytest.raises(ReplayError, match=r"no socket for the recorded mimic 'client' \(REQ socket 'client'"):
        replay(recorded, [other])
    server = socks(zmq.PAIR, bind="tcp://127.0.0.1:*", name="server")
    client = socks(zmq.PAIR, connect=server.endpoint, name="client", timeout=5)
    with recording(Transcript()) as clipped:  # a report's transcript: long frames are clipped
        client.send(b"x" * (1 << 20))
        server.recv()
    with pytest.raises(ReplayError, match=r"was not kept whole .*record with zmqtest\.replay\.record\(\)"):
        replay(Recorded.of(clipped), [client, server])


def test_a_failed_conversation_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "failed.jsonl"
    with pytest.raises(RuntimeError, match="boom"), record(path):
        raise RuntimeError("boom")
    assert not path.exists()


def replay_command(recording: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "zmqtest", "replay", str(recording), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_replay_command_plays_against_a_running_program(recorded: Path, procs: ProcessManager) -> None:
    rule = ["--sub", r'"pid": \d+', '"pid": <PID>']
    same = replay_command(recorded, "--connect", f"client={greeter(procs).endpoint}", *rule)
    assert (same.returncode, same.stderr) == (0, "")
    assert same.stdout.splitlines()[-1] == f"replay of {recorded}: 6 messages, as recorded"
    changed = replay_command(recorded, "--connect", f"client={greeter(procs, 'v2').endpoint}", *rule)
    assert changed.returncode == 1, changed.stderr
    assert '+client received ["HI", "bob", {"pid": <PID>, "at": "tcp://127.0.0.1:<PORT>", "n": 2}]' in changed.stdout
    wrong = replay_command(recorded, "--connect", "server=tcp://127.0.0.1:9")
    assert wrong.returncode == 2
    assert wrong.stderr == f"zmqtest replay: {recorded} has no mimic 'server'; its mimics: client (REQ)\n"


def test_the_replay_command_reads_the_type_from_the_description_in_a_file_without_it(
    recorded: Path, procs: ProcessManager, tmp_path: Path
) -> None:
    header, *events = recorded.read_text().splitlines()
    fields = json.loads(header)
    for participant in fields["participants"]:
        del participant["socket_type"]  # as a file written before the field was added
    older = tmp_path / "older.jsonl"
    older.write_text("\n".join([json.dumps(fields), *events]) + "\n")
    rule = ["--sub", r'"pid": \d+', '"pid": <PID>']
    done = replay_command(older, "--connect", f"client={greeter(procs).endpoint}", *rule)
    assert (done.returncode, done.stderr) == (0, "")


def test_the_zmq_replay_fixture_records_under_update_and_replays_otherwise(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_greeter=f"""
        import sys

        import zmq

        GREETER = [sys.executable, {GREETER!r}]
        PID_RULE = {PID_RULE!r}


        def test_greeting(zmq_replay, zmq_process_factory, zmq_socket_factory):
            server = zmq_process_factory(GREETER, ready={LISTENING!r})
            client = zmq_socket_factory(zmq.REQ, connect=server.endpoint, name="client")
            if zmq_replay.updating:
                with zmq_replay.record("greeting"):
                    for name in ("ada", "bob"):
                        client.send_json(["hello", name])
                        client.recv()
            else:
                zmq_replay("greeting", client, substitutions=PID_RULE)
        """
    )
    inner = ("-p", "no:randomly", "-p", "no:cacheprovider")
    missing = pytester.runpytest_subprocess(*inner, timeout=90)
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(
        ["*ReplayError: no recording */golden/greeting.jsonl: record it with --zmqtest-update-golden*"]
    )
    pytester.runpytest_subprocess(*inner, "--zmqtest-update-golden", timeout=90).assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "greeting.jsonl").exists()
    pytester.runpytest_subprocess(*inner, timeout=90).assert_outcomes(passed=1)
