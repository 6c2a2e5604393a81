"""Record two real processes through a tap, then replay one side of it against a process under test.

The programs are ``tests/apps/chat.py``: a server (REP or ROUTER) that answers greetings, and a client
(REQ or DEALER) that greets and exits; ``--v2`` changes the server's answers, which a replay must show.
The conversion of a tapped peer's wire frames into a socket's messages is checked per socket type pair
against what mimic sockets of those types sent and received themselves.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq

from zmqtest.barriers import wait_until_receiving
from zmqtest.processes import ManagedProcess, ProcessManager
from zmqtest.rendering import Clipped
from zmqtest.replay import ReplayError, ReplayMismatch, record, replay
from zmqtest.tap import Tap
from zmqtest.tapreplay import TapReplayError, is_tap_recording, played_side
from zmqtest.transcript import Transcript, recording
from zmqtest.transcriptfile import Recorded, load
from zmqtest.waiting import wait_until

if TYPE_CHECKING:
    from conftest import Sockets

CHAT = str(Path(__file__).parent / "apps" / "chat.py")
LISTENING = r"listening on (?P<endpoint>\S+)"
DEADLINE = 10.0


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessManager]:
    with ProcessManager(tmp_path / "processes") as manager:
        yield manager


def chat_server(procs: ProcessManager, *args: str) -> ManagedProcess:
    return procs.start([sys.executable, CHAT, "serve", *args], name="chat-server", ready=LISTENING)


def chat_client(procs: ProcessManager, endpoint: Any, *args: str) -> ManagedProcess:
    """A client process that greets ada and bob through ``endpoint``; it has ended with 0 when this returns."""
    client = procs.start(
        [sys.executable, CHAT, "ask", str(endpoint), *args, "ada", "bob"], name="chat-client", expect_exit=0
    )
    assert client.wait(DEADLINE) == 0, client.report()
    return client


def record_chat(path: Path, procs: ProcessManager, *server_args: str, client_args: tuple[str, ...] = ()) -> Path:
    """A client process and a server process, the tap between them made inside the record() block."""
    server = chat_server(procs, *server_args)
    with record(path, test="chat"), Tap(str(server.endpoint), client="client", server="server") as tap:
        chat_client(procs, tap.endpoint, *client_args)
    server.stop()
    return path


@pytest.fixture
def recorded(tmp_path: Path, procs: ProcessManager) -> Path:
    return record_chat(tmp_path / "chat.jsonl", procs)


def test_a_recording_through_a_tap_has_what_the_peers_said_on_the_wire(recorded: Path) -> None:
    conversation = load(recorded)
    assert is_tap_recording(conversation)
    wire = [(e.who, e.to, e.frames) for e in conversation.events if e.kind == "wire" and e.frames]
    assert wire == [
        ("client", "server", (b"", b'["hello", "ada"]')),
        ("server", "client", (b"", b'["hi", "ada", 1]')),
        ("client", "server", (b"", b'["hello", "bob"]')),
        ("server", "client", (b"", b'["hi", "bob", 2]')),
    ]
    side = played_side(conversation, "client")
    assert (side.socket_type, side.connects, side.routing_id) == ("REQ", True, b"")
    assert [(e.kind, e.frames) for e in side.recorded.messages("client")] == [
        ("send", (b'["hello", "ada"]',)),
        ("recv", (b'["hi", "ada", 1]',)),
        ("send", (b'["hello", "bob"]',)),
        ("recv", (b'["hi", "bob", 2]',)),
    ]


def test_the_client_side_replays_against_the_same_server(recorded: Path, socks: Sockets, procs: ProcessManager) -> None:
    client = socks(zmq.REQ, connect=str(chat_server(procs).endpoint), name="client", timeout=5)
    assert replay(recorded, [client]) == [
        'client sent ["hello", "ada"]',
        'client received ["hi", "ada", 1]',
        'client sent ["hello", "bob"]',
        'client received ["hi", "bob", 2]',
    ]


def test_the_client_side_against_a_changed_server_fails_with_a_readable_diff(
    recorded: Path, socks: Sockets, procs: ProcessManager
) -> None:
    client = socks(zmq.REQ, connect=str(chat_server(procs, "--v2").endpoint), timeout=5)
    with pytest.raises(ReplayMismatch) as caught:
        replay(recorded, [client], play="client")
    diff = str(caught.value).split("\n")
    assert diff[1:3] == [f"--- {recorded} (recorded)", "+++ the process under test (now)"]
    assert [line for line in diff if line.startswith(("-c", "+c", " c"))] == [
        ' client sent ["hello", "ada"]',
        ' client received ["hi", "ada", 1]',
        ' client sent ["hello", "bob"]',
        '-client received ["hi", "bob", 2]',
        '+client received ["HI", "bob", 2]',
    ]


def test_a_router_servers_side_replays_against_a_new_dealer_client_process(
    tmp_path: Path, socks: Sockets, procs: ProcessManager
) -> None:
    """The ROUTER's routing ids are stand-ins per tapped connection, mapped to the live client's id."""
    path = record_chat(tmp_path / "router.jsonl", procs, "--type", "ROUTER", client_args=("--type", "DEALER"))
    side = played_side(load(path), "server")
    assert (side.socket_type, side.connects) == ("ROUTER", False)
    assert [e.frames for e in side.recorded.messages()][:2] == [
        (b"tap-connection-1", b'["hello", "ada"]'),
        (b"tap-connection-1", b'["hi", "ada", 1]'),
    ]
    server = socks(zmq.ROUTER, bind="tcp://127.0.0.1:*", name="server", timeout=5)
    client = procs.start(
        [sys.executable, CHAT, "ask", server.endpoint, "--type", "DEALER", "ada", "bob"], expect_exit=0
    )
    lines = replay(path, [server])
    assert lines[:2] == ['server received <ID1> | ["hello", "ada"]', 'server sent <ID1> | ["hi", "ada", 1]']
    assert client.wait(DEADLINE) == 0, client.report()
    assert list(client.output.lines(final=True)) == ['["hi", "ada", 1]', '["hi", "bob", 2]']


def replay_command(recording: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "zmqtest", "replay", str(recording), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_replay_command_plays_a_tapped_peer_with_the_type_the_tap_saw(
    recorded: Path, procs: ProcessManager
) -> None:
    same = replay_command(recorded, "--connect", f"client={chat_server(procs).endpoint}")
    assert (same.returncode, same.stderr) == (0, "")
    assert same.stdout.splitlines() == [
        'client sent ["hello", "ada"]',
        'client received ["hi", "ada", 1]',
        'client sent ["hello", "bob"]',
        'client received ["hi", "bob", 2]',
        f"replay of {recorded}: 4 messages, as recorded",
    ]
    changed = replay_command(recorded, "--connect", f"client={chat_server(procs, '--v2').endpoint}")
    assert changed.returncode == 1, changed.stderr
    assert '-client received ["hi", "bob", 2]\n+client received ["HI", "bob", 2]\n' in changed.stdout
    unknown = replay_command(recorded, "--connect", "nobody=tcp://127.0.0.1:9")
    assert unknown.returncode == 2
    assert (
        unknown.stderr == f"zmqtest replay: {recorded} has no tapped peer 'nobody'; its tapped peers: client, server\n"
    )
    both = replay_command(recorded, "--connect", "client=tcp://127.0.0.1:9", "--bind", "server=tcp://127.0.0.1:9")
    assert both.returncode == 2
    assert both.stderr == f"zmqtest replay: {recorded} is a tap's recording: give one of its peers (client, server)\n"


# --- the conversion, per socket type pair -----------------------------------------------------------------------------

PAIRS = [
    ("REQ", "REP", [[b"ask"]], [[b"answer"]]),
    ("DEALER", "ROUTER", [[b"ask"], [b"two", b"frames"]], [[b"answer"]]),
    ("REQ", "ROUTER", [[b"ask"]], [[b"", b"answer"]]),
    ("DEALER", "REP", [[b"", b"ask"]], [[b"answer"]]),
    ("PUSH", "PULL", [[b"one"], [b"two"]], []),
    ("PAIR", "PAIR", [[b"ping"]], [[b"pong", b"more"]]),
    ("SUB", "PUB", [], [[b"news", b"today"]]),
]


@pytest.mark.parametrize(
    ("client_type", "server_type", "asks", "answers"), PAIRS, ids=[f"{c}-{s}" for c, s, *_ in PAIRS]
)
def test_a_tapped_peers_side_is_what_a_socket_of_its_type_sent_and_received(
    socks: Sockets, client_type: str, server_type: str, asks: list[list[bytes]], answers: list[list[bytes]]
) -> None:
    """Both peers are mimics named a and b, talking through a tap whose peers are A and B: A's side must be a's."""
    server = socks(zmq.SocketType[server_type], bind="tcp://127.0.0.1:*", name="b", timeout=5)
    transcript = Transcript(whole=True)
    with recording(transcript), Tap(server.endpoint, client="A", server="B") as tap:
        options = {"subscribe": b"news"} if client_type == "SUB" else {}
        client = socks(zmq.SocketType[client_type], connect=str(tap.endpoint), name="a", timeout=5, **options)
        if client_type == "SUB":  # published until one arrives: the subscription has reached the publisher
            wait_until_receiving(client, lambda: server.send_multipart([b"news", b"probe"]))
        peer = None
        for ask in asks:
            client.send_multipart(ask)
            received = server.recv_multipart()
            peer = received[0] if server_type == "ROUTER" else None
        for answer in answers:
            server.send_multipart([peer, *answer] if peer is not None else answer)
            got = client.recv_multipart()
            while client_type == "SUB" and got != answer:  # a probe sent before the subscription was known
                got = client.recv_multipart()
    recorded = Recorded.of(transcript)
    client_side, server_side = played_side(recorded, "A"), played_side(recorded, "B")
    assert (client_side.socket_type, server_side.socket_type) == (client_type, server_type)
    assert client_side.subscriptions == ((b"news",) if client_type == "SUB" else ())
    assert _messages(client_side.recorded, "A") == _messages(recorded, "a")
    if server_type == "ROUTER":  # the live id the mimic saw; the played side has a stand-in for the connection
        own = [(kind, (b"tap-connection-1", *frames[1:])) for kind, frames in _messages(recorded, "b")]
    elif server_type == "PUB":  # what went on the wire: the probes the publisher dropped before it knew "a" did not
        own = [("send", frames) for kind, frames in _messages(recorded, "a")]
    else:
        own = _messages(recorded, "b")
    assert _messages(server_side.recorded, "B") == own


def _messages(recorded: Recorded, who: str) -> list[tuple[str, tuple[Any, ...]]]:
    return [(event.kind, event.frames) for event in recorded.messages(who)]


# --- what cannot be replayed, and says why ----------------------------------------------------------------------------


def tapped(
    socks: Sockets, transcript: Transcript, client_type: int = zmq.REQ, server_type: int = zmq.REP, **server: Any
) -> tuple[Tap, Any, Any]:
    """A server mimic, a tap to it recording into ``transcript``, a client mimic through the tap."""
    bound = socks(server_type, bind="tcp://127.0.0.1:*", name="b", timeout=5, **server)
    tap = Tap(bound.endpoint, transcript=transcript)
    return tap, socks(client_type, connect=str(tap.endpoint), name="a", timeout=5), bound


def exchange(client: Any, server: Any, body: bytes = b"ask") -> None:
    client.send(body)
    server.send(server.recv())
    client.recv()


def test_curve_encrypted_traffic_is_refused(socks: Sockets) -> None:
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    transcript = Transcript(whole=True)
    bound = socks(zmq.REP, name="b", timeout=5, curve_server=True, curve_secretkey=server_secret)
    bound.bind("tcp://127.0.0.1:*")
    with Tap(bound.last_endpoint.decode(), transcript=transcript) as tap:
        client = socks(
            zmq.REQ,
            name="a",
            timeout=5,
            curve_serverkey=server_public,
            curve_publickey=client_public,
            curve_secretkey=client_secret,
        )
        client.connect(str(tap.endpoint))
        exchange(client, bound)
    with pytest.raises(
        TapReplayError,
        match=r"the traffic between (client|server) and (server|client) is encrypted \(CURVE\), cannot be replayed",
    ):
        played_side(Recorded.of(transcript), "client")


def test_several_connections_of_a_peer_that_is_not_a_router_are_refused(socks: Sockets) -> None:
    transcript = Transcript(whole=True)
    tap, first, server = tapped(socks, transcript)
    with tap:
        second = socks(zmq.REQ, connect=str(tap.endpoint), timeout=5)
        exchange(first, server)
        exchange(second, server)
    recorded = Recorded.of(transcript)
    with pytest.raises(TapReplayError, match=r"client's messages went over several connections \(1, 2\) and one REQ"):
        played_side(recorded, "client")
    with pytest.raises(TapReplayError, match=r"server's messages went over several connections"):
        played_side(recorded, "server")  # a REP


def test_messages_a_tap_fault_dropped_are_refused(socks: Sockets) -> None:
    transcript = Transcript(whole=True)
    tap, client, server = tapped(socks, transcript, zmq.DEALER, zmq.ROUTER)
    with tap:
        with tap.drop(next=1, to="server"):
            client.send(b"lost")
            wait_until(lambda: tap.messages["server"] == 1)
        client.send(b"ask")
        server.recv_multipart()
    with pytest.raises(
        TapReplayError, match=r"a message was dropped by the tap at .*record the conversation without tap faults"
    ):
        played_side(Recorded.of(transcript), "client")


def test_frames_not_kept_whole_are_refused_and_a_recording_keeps_them_whole(socks: Sockets, tmp_path: Path) -> None:
    big = b"x" * (100 * 1024)  # more than a report's transcript keeps of a frame
    clipped = Transcript()
    tap, client, server = tapped(socks, clipped)
    with tap:
        exchange(client, server, big)
    with pytest.raises(
        TapReplayError, match=r"was not kept whole .*record through the tap inside zmqtest\.replay\.record\(\)"
    ):
        played_side(Recorded.of(clipped), "client")
    with record(tmp_path / "big.jsonl"), Tap(server.endpoint) as tap:
        exchange(socks(zmq.REQ, connect=str(tap.endpoint), timeout=5), server, big)
    wire = [event.frames for event in load(tmp_path / "big.jsonl").events if event.kind == "wire" and event.frames]
    assert wire[-2:] == [(b"", big), (b"", big)]
    assert not any(isinstance(frame, Clipped) for frames in wire for frame in frames)


def test_a_tap_made_before_the_record_block_records_elsewhere_and_the_block_says_so(tmp_path: Path) -> None:
    context = zmq.Context()
    server, client = context.socket(zmq.REP), context.socket(zmq.REQ)  # plain sockets: only a tap can record them
    try:
        for sock in (server, client):
            sock.linger, sock.rcvtimeo = 0, 5000
        port = server.bind_to_random_port("tcp://127.0.0.1")
        with Tap(f"tcp://127.0.0.1:{port}") as tap:
            client.connect(str(tap.endpoint))
            refused = r"nothing to write to .*make it inside the block, or pass Tap\(\.\.\., transcript="

            def talk() -> None:
                client.send(b"ask")
                server.send(server.recv())
                assert client.recv() == b"ask"

            with pytest.raises(ReplayError, match=refused), record(tmp_path / "x.jsonl"):
                talk()
    finally:
        server.close()
        client.close()
        context.term()
    assert not (tmp_path / "x.jsonl").exists()


def test_a_tap_recording_needs_a_socket_for_one_peer_and_play_is_for_tap_recordings(
    recorded: Path, socks: Sockets
) -> None:
    other = socks(zmq.DEALER, name="someone")
    with pytest.raises(
        ReplayError, match=r"played from one tapped peer's side \(client, server\): name it with play=\.\.\."
    ):
        replay(recorded, [other])
    with pytest.raises(
        ReplayError, match=r"no socket to play the tapped peer 'client' \(a REQ socket\): name one 'client'"
    ):
        replay(recorded, [other], play="client")
    with pytest.raises(ReplayError, match=r"has no tapped peer 'nobody'"):
        replay(recorded, [other], play="nobody")
    mimics = Transcript(whole=True)
    with recording(mimics):
        server = socks(zmq.REP, bind="tcp://127.0.0.1:*", timeout=5)
        exchange(socks(zmq.REQ, connect=server.endpoint, timeout=5), server)
    with pytest.raises(ReplayError, match=r"replay\(play='REQ'\) plays a tap's recording; .* is a mimic's"):
        replay(Recorded.of(mimics), [other], play="REQ")


def test_a_router_played_side_has_one_id_per_connection_the_peers_own_where_it_set_one(socks: Sockets) -> None:
    transcript = Transcript(whole=True)
    router = socks(zmq.ROUTER, bind="tcp://127.0.0.1:*", name="b", timeout=5)
    with recording(transcript), Tap(router.endpoint) as tap:
        alice = socks(zmq.DEALER, connect=str(tap.endpoint), routing_id=b"alice", timeout=5)
        anonymous = socks(zmq.DEALER, connect=str(tap.endpoint), timeout=5)
        for dealer in (alice, anonymous):
            dealer.send(b"job")
            router.send_multipart(router.recv_multipart())
            assert dealer.recv() == b"job"
    side = played_side(Recorded.of(transcript), "server")
    assert [(e.kind, e.frames) for e in side.recorded.messages()] == [
        ("recv", (b"alice", b"job")),
        ("send", (b"alice", b"job")),
        ("recv", (b"tap-connection-2", b"job")),
        ("send", (b"tap-connection-2", b"job")),
    ]
    with pytest.raises(TapReplayError, match=r"client's messages went over several connections \(1, 2\)"):
        played_side(Recorded.of(transcript), "client")


def test_under_pytest_the_zmq_tap_fixture_made_inside_the_block_records_into_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chat=f"""
        import sys

        import zmq

        from zmqtest.replay import record, replay

        CHAT = [sys.executable, {CHAT!r}]


        def test_record_then_replay(zmq_process_factory, zmq_socket_factory, zmq_tap, tmp_path):
            server = zmq_process_factory([*CHAT, "serve"], ready={LISTENING!r})
            with record(tmp_path / "chat.jsonl"):
                tap = zmq_tap(server.endpoint)
                client = zmq_process_factory([*CHAT, "ask", str(tap.endpoint), "ada"], expect_exit=0)
                assert client.wait(10) == 0
            again = zmq_process_factory([*CHAT, "serve"], ready={LISTENING!r})
            client = zmq_socket_factory(zmq.REQ, connect=again.endpoint, name="client")
            assert replay(tmp_path / "chat.jsonl", [client]) == [
                'client sent ["hello", "ada"]',
                'client received ["hi", "ada", 1]',
            ]
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", timeout=90).assert_outcomes(passed=1)
