"""The tap: real pyzmq peers and real processes on loopback, talking through it as they would directly.

Byte-exactness is checked two ways: random messages (1-100 frames, 0 to a few MiB) both
ways through the tap and through a direct connection side by side, and random bytes that
are not ZMTP at all through raw TCP sockets. The transcript must show what was said.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq

import zmqtest.transcript
from zmqtest import Tap, transcriptfile
from zmqtest.contexts import SocketFactory
from zmqtest.endpoints import Endpoint
from zmqtest.processes import ProcessManager
from zmqtest.tap import TapFactory
from zmqtest.transcript import Process, Transcript
from zmqtest.waiting import wait_until
from zmqtest.zmtp import encode_frames, greeting_bytes

PINGPONG = Path(__file__).resolve().parent.parent / "examples" / "pingpong"
DEADLINE = 10.0
"""Seconds a send or receive of a long message may take on a loaded machine."""


def wires(transcript: Transcript | None) -> list[tuple[str, str, str]]:
    """The tap's records: (sender, receiver, text or frames) of each message or command, in order."""
    assert transcript is not None
    out = []
    for _, who, kind, data in transcript.events:
        if kind == "wire":
            target, what, mark = data
            assert isinstance(who, Process)
            out.append((who.name, target.name, f"{mark} {what}" if mark else what))
    return out


def random_message(rng: random.Random, *, big: bool) -> list[bytes]:
    """1-100 frames, most short, some past the 255 bytes of a short frame, and with ``big`` one of 1-3 MiB."""
    count = rng.choice((1, 1, 2, 3, rng.randint(1, 100)))
    frames = [rng.randbytes(rng.choice((0, rng.randint(0, 300), rng.randint(0, 70_000)))) for _ in range(count)]
    if big:
        frames[rng.randrange(count)] = rng.randbytes(rng.randint(1 << 20, 3 << 20))
    return frames


def pair(factory: SocketFactory, bind: str, connect: str) -> tuple[Any, Any]:
    server = factory(zmq.PAIR, bind=bind, timeout=DEADLINE, name="server")
    client = factory(zmq.PAIR, connect=connect, timeout=DEADLINE, name="client")
    return server, client


def test_random_messages_go_both_ways_unchanged_as_over_a_direct_connection(
    zmq_context: zmq.Context[Any], zmq_endpoint_factory: Any, zmq_tap: TapFactory
) -> None:
    direct_server = zmq_context.socket(zmq.PAIR)
    tapped_server = zmq_context.socket(zmq.PAIR)
    sockets = [direct_server, tapped_server]
    direct_port = direct_server.bind_to_random_port("tcp://127.0.0.1")
    tapped_port = tapped_server.bind_to_random_port("tcp://127.0.0.1")
    tap = zmq_tap(f"tcp://127.0.0.1:{tapped_port}")
    direct_client, tapped_client = zmq_context.socket(zmq.PAIR), zmq_context.socket(zmq.PAIR)
    sockets += [direct_client, tapped_client]
    direct_client.connect(f"tcp://127.0.0.1:{direct_port}")
    tapped_client.connect(tap.endpoint)
    for sock in sockets:
        sock.rcvtimeo = sock.sndtimeo = int(DEADLINE * 1000)
    rng = random.Random(13)
    big = set(rng.sample(range(1000), 4))
    for number in range(1000):
        frames = random_message(rng, big=number in big)
        for client, server in ((direct_client, direct_server), (tapped_client, tapped_server)):
            sender, receiver = (client, server) if number % 2 == 0 else (server, client)  # odd: the other way
            sender.send_multipart(frames)
            assert receiver.recv_multipart() == frames, f"message {number}"
    assert tap.connections == 1


def test_bytes_that_are_not_zmtp_go_through_unchanged(zmq_tap: TapFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(DEADLINE)
        tap = zmq_tap(f"tcp://127.0.0.1:{upstream.getsockname()[1]}")
        assert tap.endpoint.port is not None
        with socket.create_connection(("127.0.0.1", tap.endpoint.port), timeout=DEADLINE) as client:
            server, _ = upstream.accept()
            with server:
                server.settimeout(DEADLINE)
                rng = random.Random(7)
                for sender, receiver in ((client, server), (server, client)) * 3:
                    data = rng.randbytes(rng.randint(1, 2 << 20))
                    sending = threading.Thread(target=sender.sendall, args=(data,))
                    sending.start()
                    received = bytearray()
                    while len(received) < len(data):
                        received += receiver.recv(1 << 20)
                    sending.join(DEADLINE)
                    assert received == data
    text = zmqtest.transcript.current().render()  # type: ignore[union-attr]
    assert "not read further: no ZMTP greeting" in text


def test_the_transcript_shows_the_conversation_between_the_two_named_peers(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    rep = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="mimic-rep")
    tap = zmq_tap(zmq_endpoint, client="client", server="broker")
    req = zmq_socket_factory(zmq.REQ, connect=tap.endpoint, name="mimic-req")
    req.send_json(["ping", 1])
    rep.send_json(["pong", rep.recv_json()[1]])
    assert req.recv_json() == ["pong", 1]
    transcript = zmqtest.transcript.current()
    seen = wires(transcript)
    assert ("client", "broker", "greeting: ZMTP 3.1, NULL") in seen
    assert ("client", "broker", "READY Socket-Type='REQ', Identity=''") in seen
    assert ("broker", "client", "READY Socket-Type='REP'") in seen
    assert ("client", "broker", (b"", b'["ping", 1]')) in seen
    assert ("broker", "client", (b"", b'["pong", 1]')) in seen
    rendered = transcript.render()  # type: ignore[union-attr]
    lines = [line for line in rendered.splitlines() if '["ping", 1]' in line or '["pong", 1]' in line]
    arrows = [line for line in lines if "o---" in line or "<---" in line]
    assert any(line.rstrip().endswith("b'' | [\"ping\", 1]") and "o-" in line and ">|" in line for line in arrows)
    assert any(line.rstrip().endswith("b'' | [\"pong\", 1]") and "|<-" in line for line in arrows), rendered


def test_many_connections_at_once(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    router = zmq_socket_factory(zmq.ROUTER, bind=zmq_endpoint, name="router", timeout=DEADLINE)
    tap = zmq_tap(zmq_endpoint)
    dealers = [zmq_socket_factory(zmq.DEALER, connect=tap.endpoint, timeout=DEADLINE) for _ in range(20)]
    for number, dealer in enumerate(dealers):
        dealer.send(b"%d" % number)
    for _ in dealers:
        identity, body = router.recv_multipart()
        router.send_multipart([identity, body + b" back"])
    assert [dealer.recv() for dealer in dealers] == [b"%d back" % number for number in range(20)]
    assert tap.connections == 20


def test_a_peer_that_comes_back_is_reached_again_through_the_tap(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="first pull")
    tap = zmq_tap(zmq_endpoint, client="pusher", server="puller")
    push = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="push", reconnect_ivl=20)
    push.send(b"one")
    assert pull.recv() == b"one"
    pull.close(linger=0)  # the binding peer goes: the tap closes the pusher's connection, which reconnects
    wait_until(lambda: tap.connections >= 2, what="the pusher reconnecting through the tap")
    again = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="second pull")
    push.send(b"two")
    assert again.recv() == b"two"
    notes = [data for _, _, kind, data in zmqtest.transcript.current().events if kind == "note"]  # type: ignore[union-attr]
    assert any("refused" in note or "ended" in note for note in notes), notes


def test_subscriptions_reach_the_publisher_through_the_tap(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    pub = zmq_socket_factory(zmq.PUB, bind=zmq_endpoint, name="pub")
    tap = zmq_tap(zmq_endpoint, client="sub", server="pub")
    sub = zmq_socket_factory(zmq.SUB, connect=tap.endpoint, name="sub", subscribe=b"a")

    def delivered() -> bytes | None:
        pub.send_multipart([b"b", b"filtered out"])
        pub.send_multipart([b"a", b"probe"])
        return sub.poll(10) and sub.recv_multipart()[1]  # type: ignore[no-any-return]

    assert wait_until(delivered) == b"probe"
    seen = wires(zmqtest.transcript.current())
    assert ("sub", "pub", "SUBSCRIBE b'a'") in seen
    assert ("pub", "sub", (b"b", b"filtered out")) not in seen  # the publisher filters: it never goes out


def test_curve_traffic_is_forwarded_and_shown_as_encrypted(
    zmq_context: zmq.Context[Any], zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    server, client = zmq_context.socket(zmq.REP), zmq_context.socket(zmq.REQ)
    server.curve_server, server.curve_secretkey, server.curve_publickey = True, server_secret, server_public
    client.curve_serverkey, client.curve_publickey, client.curve_secretkey = server_public, client_public, client_secret
    for sock in (server, client):
        sock.rcvtimeo = sock.sndtimeo = int(DEADLINE * 1000)
    server.bind(zmq_endpoint)
    tap = zmq_tap(zmq_endpoint)
    client.connect(tap.endpoint)
    client.send(b"top secret request")
    assert server.recv() == b"top secret request"
    server.send(b"top secret reply")
    assert client.recv() == b"top secret reply"
    seen = wires(zmqtest.transcript.current())
    texts = [str(what) for _, _, what in seen]
    assert "greeting: ZMTP 3.1, CURVE" in texts
    assert any(text.startswith("HELLO (") for text in texts)
    assert any(text.startswith("(encrypted, ") for text in texts)
    assert not any("secret" in text for text in texts)


def test_plain_handshakes_are_read_and_the_password_stays_out(
    zmq_context: zmq.Context[Any], zmq_authenticator: Any, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    zmq_authenticator.allow_plain("alice", "s3cret")
    server, client = zmq_context.socket(zmq.REP), zmq_context.socket(zmq.REQ)
    server.plain_server = True
    client.plain_username, client.plain_password = b"alice", b"s3cret"
    for sock in (server, client):
        sock.rcvtimeo = sock.sndtimeo = int(DEADLINE * 1000)
    server.bind(zmq_endpoint)
    tap = zmq_tap(zmq_endpoint)
    client.connect(tap.endpoint)
    client.send(b"hi")
    assert server.recv() == b"hi"
    seen = wires(zmqtest.transcript.current())
    assert ("client", "server", "HELLO username 'alice', password of 6 bytes") in seen
    assert ("server", "client", "WELCOME") in seen
    assert ("client", "server", (b"", b"hi")) in seen
    assert "s3cret" not in zmqtest.transcript.current().render()  # type: ignore[union-attr]


def test_two_real_processes_talk_through_the_tap(
    zmq_process_factory: ProcessManager, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PINGPONG), os.environ.get("PYTHONPATH", "")])}
    zmq_process_factory(
        [sys.executable, "-m", "pingpong", "serve", "--bind", zmq_endpoint], name="pong", ready="listening", env=env
    )
    tap = zmq_tap(zmq_endpoint, client="ping", server="pong")
    ping = zmq_process_factory(
        [sys.executable, "-m", "pingpong", "ping", "--connect", tap.endpoint, "--count", "3"],
        name="ping",
        env=env,
        expect_exit=0,
    )
    ping.wait(DEADLINE)
    assert ping.returncode == 0
    seen = wires(zmqtest.transcript.current())
    for number in (1, 2, 3):
        assert ("ping", "pong", (b"", b'["ping",%d]' % number)) in seen
        assert ("pong", "ping", (b"", b'["pong",%d]' % number)) in seen


def test_a_failing_test_shows_the_tapped_conversation_in_its_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_tapped="""
        import zmq


        def test_fails(zmq_socket_factory, zmq_endpoint, zmq_tap):
            rep = zmq_socket_factory(zmq.REP, bind=zmq_endpoint)
            tap = zmq_tap(zmq_endpoint, client="client", server="broker")
            req = zmq_socket_factory(zmq.REQ, connect=tap.endpoint)
            req.send_json(["ping", 1])
            rep.send_json(["pong", rep.recv_json()[1]])
            assert req.recv_json() == ["pong", 2]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*client*broker*",
            "*|    o------>|   b'' | ?\"ping\", 1?",  # fnmatch reads [...] as a set: ? stands for a bracket
            "*|    |<------o   b'' | ?\"pong\", 1?",
        ]
    )


def test_a_reader_that_falls_behind_gets_every_byte_in_order(zmq_tap: TapFactory) -> None:
    # the tap writes what it reads at once; what the reader's side does not take yet waits in the tap, copied
    # (the tap reads every chunk into the same buffer), and goes on in order when the reader reads again
    rng = random.Random(5)
    messages = [[rng.randbytes(rng.choice((10, 300, 70_000, 1 << 20, 1 << 20)))] for _ in range(50)]
    stream = greeting_bytes() + b"".join(encode_frames(frames) for frames in messages)
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(DEADLINE)
        tap = zmq_tap(f"tcp://127.0.0.1:{upstream.getsockname()[1]}")
        assert tap.endpoint.port is not None
        with socket.create_connection(("127.0.0.1", tap.endpoint.port), timeout=DEADLINE) as client:
            server, _ = upstream.accept()
            with server:
                server.settimeout(DEADLINE)
                sending = threading.Thread(target=client.sendall, args=(stream,), daemon=True)
                sending.start()
                wait_until(lambda: sum(link.up.queued for link in tap._links) > 0, what="bytes waiting in the tap")
                received = bytearray()
                while len(received) < len(stream):
                    received += server.recv(1 << 20)
                sending.join(DEADLINE)
                assert received == stream
    assert tap.messages == {"server": len(messages)}


def test_close_leaves_no_thread_no_socket_and_no_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(DEADLINE)
        threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
        for _ in range(10):
            with Tap(f"tcp://127.0.0.1:{upstream.getsockname()[1]}") as tap:
                assert tap.endpoint.port is not None
                clients = [socket.create_connection(("127.0.0.1", tap.endpoint.port), timeout=DEADLINE) for _ in "abc"]
                servers = [upstream.accept()[0] for _ in clients]
                for client, server in zip(clients, servers, strict=True):
                    client.sendall(b"x")
                    assert server.recv(1) == b"x"
            for client in clients:
                assert client.recv(1) == b"", "a connection outlived its tap"
                client.close()
            for server in servers:
                server.close()
            with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", tap.endpoint.port)):
                pass
        assert threading.active_count() == threads
        assert len(os.listdir("/proc/self/fd")) == fds


@pytest.mark.parametrize("upstream", ["ipc:///tmp/x", "tcp://127.0.0.1:*", "tcp://*:5555", "nonsense"])
def test_a_tap_needs_a_tcp_endpoint_with_a_host_and_port(upstream: str) -> None:
    with pytest.raises(ValueError, match="a tap forwards to a tcp endpoint"):
        Tap(upstream)


def test_with_several_connections_each_message_says_which(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="pull")
    tap = zmq_tap(zmq_endpoint)
    first = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="first")
    first.send(b"alone")
    assert pull.recv() == b"alone"
    second = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="second")
    wait_until(lambda: tap.connections == 2, what="the second connection")
    second.send(b"from the second")
    assert pull.recv() == b"from the second"
    seen = wires(zmqtest.transcript.current())
    assert ("client", "server", (b"alone",)) in seen
    assert ("client", "server", "(connection 2) " + str((b"from the second",))) in [
        (source, target, str(what)) for source, target, what in seen
    ]


def test_a_long_message_is_forwarded_as_it_arrives_not_once_whole(zmq_tap: TapFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(DEADLINE)
        tap = zmq_tap(f"tcp://127.0.0.1:{upstream.getsockname()[1]}")
        assert tap.endpoint.port is not None
        with socket.create_connection(("127.0.0.1", tap.endpoint.port), timeout=DEADLINE) as client:
            server, _ = upstream.accept()
            with server:
                server.settimeout(DEADLINE)
                # the first MiB of a 32 MiB frame, and nothing more: a tap that waited for the whole would pass nothing
                start = greeting_bytes() + struct.pack(">BQ", 0x02, 32 << 20) + os.urandom(1 << 20)
                client.sendall(start)
                received = bytearray()
                while len(received) < len(start):
                    received += server.recv(1 << 20)
                assert received == start
    assert tap.messages == {}  # the message never ended


def test_a_wire_row_is_an_arrow_from_the_sender_to_the_receiver() -> None:
    transcript = Transcript()
    transcript.note("worker", "started: pid 1")  # a process under test, then seen through a tap
    transcript.wire("client", "worker", [b"", b'["job", 1]'])
    transcript.wire("worker", "client", [b"", b'["done", 1]'], mark="(dropped by the tap)")
    transcript.wire("client", "worker", "greeting: ZMTP 3.1, NULL")
    lines = transcript.render(width=80).splitlines()
    assert "  worker        process under test" in lines
    assert "  client        a peer seen through a tap" in lines
    rows = [line[12:] for line in lines[-3:]]
    assert rows == [
        "|     |<------o   b'' | [\"job\", 1]",
        "|     o------>|   (dropped by the tap) b'' | [\"done\", 1]",
        "|     |<------o   greeting: ZMTP 3.1, NULL",
    ]


def test_a_restarted_process_is_reached_again_through_the_tap(
    zmq_process_factory: ProcessManager, zmq_endpoint: Endpoint, zmq_tap: TapFactory, zmq_socket_factory: SocketFactory
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PINGPONG), os.environ.get("PYTHONPATH", "")])}
    pong = zmq_process_factory(
        [sys.executable, "-m", "pingpong", "serve", "--bind", zmq_endpoint], name="pong", ready="listening", env=env
    )
    tap = zmq_tap(zmq_endpoint, client="client", server="pong")
    client = zmq_socket_factory(zmq.DEALER, connect=tap.endpoint, name="client", timeout=DEADLINE, reconnect_ivl=20)
    client.send_multipart([b"", b'["ping", 1]'])
    assert client.recv_multipart() == [b"", b'["pong",1]']
    pong.restart()
    wait_until(lambda: tap.connections >= 2, what="the client reconnecting through the tap")
    client.send_multipart([b"", b'["ping", 2]'])
    assert client.recv_multipart() == [b"", b'["pong",2]']
    seen = wires(zmqtest.transcript.current())
    replies = [str(what) for source, target, what in seen if (source, target) == ("pong", "client")]
    assert any('pong",2]' in reply for reply in replies), replies  # the second run's reply, through the tap


def test_the_json_lines_form_keeps_what_the_tap_saw(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: TapFactory
) -> None:
    rep = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="mimic-rep")
    tap = zmq_tap(zmq_endpoint, client="client", server="broker")
    req = zmq_socket_factory(zmq.REQ, connect=tap.endpoint, name="mimic-req")
    req.send_json(["ping", 1])
    rep.send_json(["pong", rep.recv_json()[1]])
    assert req.recv_json() == ["pong", 1]
    transcript = zmqtest.transcript.current()
    assert transcript is not None
    recorded = transcriptfile.Recorded.of(transcript)
    again = transcriptfile.loads(list(transcriptfile.lines(recorded)))
    assert again.events == recorded.events
    wired = [event for event in again.events if event.kind == "wire"]
    assert ("client", "broker", (b"", b'["ping", 1]'), ["ping", 1]) in [(e.who, e.to, e.frames, e.body) for e in wired]
    assert ("broker", "client", "READY Socket-Type='REP'") in [(e.who, e.to, e.text) for e in wired]
    tapped = {p.id: p.description for p in again.participants if p.role == "process"}
    assert tapped == {"client": "a peer seen through a tap", "broker": "a peer seen through a tap"}
