"""The ZMTP parser: bytes written by real libzmq peers, and random streams cut at random points.

The real bytes come from pyzmq sockets talking to a raw TCP socket of the test, which
plays the other peer's greeting and READY by hand (with the parser's own encoders), so
what is parsed is exactly what libzmq wrote. Random streams (seeded, so a failure
replays) are fed in random pieces and must read the same as fed whole.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from zmqtest.rendering import HEAD_BYTES, Clipped
from zmqtest.zmtp import (
    Command,
    Greeting,
    Item,
    Message,
    Unreadable,
    ZmtpParser,
    command_bytes,
    encode_frames,
    greeting_bytes,
    properties_bytes,
)

DEADLINE = 5.0
"""Seconds any read from a peer may take."""


def feed_in_pieces(stream: bytes, cuts: list[int], keep: int | None = None) -> list[Item]:
    parser = ZmtpParser(keep=keep)
    items: list[Item] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        items += parser.feed(stream[start:end])
    assert parser.offset == len(stream)
    return items


def random_stream(rng: random.Random) -> tuple[bytes, list[tuple[str, Any]]]:
    """A NULL stream: greeting, READY, then messages (1-100 frames, 0-2,000 bytes, some long) and commands."""
    stream = greeting_bytes() + command_bytes("READY", properties_bytes({"Socket-Type": b"DEALER"}))
    expected: list[tuple[str, Any]] = [("greeting", None), ("command", "READY")]
    for _ in range(rng.randint(1, 30)):
        if rng.random() < 0.15:
            topic = rng.randbytes(rng.randint(0, 20))
            stream += command_bytes("SUBSCRIBE", topic)
            expected.append(("command", "SUBSCRIBE"))
            continue
        frames = [rng.randbytes(rng.choice((0, 1, 255, 256, rng.randint(0, 2000)))) for _ in range(rng.randint(1, 100))]
        stream += encode_frames(frames)
        expected.append(("message", frames))
    return stream, expected


def summary(items: list[Item]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, Greeting):
            out.append(("greeting", None))
        elif isinstance(item, Command):
            out.append(("command", item.name))
        elif isinstance(item, Message):
            out.append(("message", list(item.frames)))
        else:
            out.append(("unreadable", item.reason))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_a_random_stream_reads_the_same_cut_anywhere(seed: int) -> None:
    rng = random.Random(seed)
    stream, expected = random_stream(rng)
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(1, 200))))
    items = feed_in_pieces(stream, cuts)
    assert summary(items) == expected
    # the items tile the stream: each begins where the one before ended
    assert [item.start for item in items] == [0] + [item.end for item in items[:-1]]
    assert items[-1].end == len(stream)


def test_byte_by_byte_and_whole_read_the_same() -> None:
    stream, expected = random_stream(random.Random(99))
    assert summary(feed_in_pieces(stream, list(range(1, len(stream))))) == expected
    assert summary(feed_in_pieces(stream, [])) == expected


@pytest.mark.parametrize("seed", range(10))
def test_views_of_one_reused_buffer_read_as_the_bytes_do(seed: int) -> None:
    # the tap reads each chunk into one buffer and feeds a view of it: nothing the parser keeps may view it
    rng = random.Random(seed)
    stream, expected = random_stream(rng)
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(1, 200))))
    buffer = bytearray(len(stream))
    parser, items = ZmtpParser(keep=rng.choice((None, 300))), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buffer[: end - start] = stream[start:end]
        items += parser.feed(memoryview(buffer)[: end - start])
        buffer[:] = bytes(len(buffer))  # the next read overwrites it
    assert summary(items) == summary(feed_in_pieces(stream, cuts, keep=parser.keep))
    if parser.keep is None:
        assert summary(items) == expected
    buffer.extend(b"x")  # a view still held would refuse this (BufferError)


@pytest.mark.parametrize("seed", range(5))
def test_frames_longer_than_keep_are_kept_as_their_head_and_size(seed: int) -> None:
    rng = random.Random(seed)
    frames = [rng.randbytes(size) for size in (0, 10, 300, 5000, 70_000)]
    stream = greeting_bytes() + encode_frames(frames)
    cuts = sorted(rng.sample(range(1, len(stream)), 50))
    (_, message) = feed_in_pieces(stream, cuts, keep=1000)
    assert isinstance(message, Message)
    assert message.frames[:3] == (b"", frames[1], frames[2][:300])
    assert message.frames[3:] == (Clipped(frames[3][:HEAD_BYTES], 5000), Clipped(frames[4][:HEAD_BYTES], 70_000))
    assert message.sizes == (0, 10, 300, 5000, 70_000)


def test_commands_read_as_their_names_and_fields() -> None:
    hello = bytes([5]) + b"alice" + bytes([6]) + b"s3cret"
    stream = (
        greeting_bytes("PLAIN", minor=0)
        + command_bytes("HELLO", hello)
        + command_bytes("INITIATE", properties_bytes({"Socket-Type": b"REQ", "Identity": b""}))
        + command_bytes("ERROR", bytes([6]) + b"denied")
        + command_bytes("PING", b"\x00\x0a" + b"ctx")
        + command_bytes("CANCEL", b"topic")
    )
    items = ZmtpParser().feed(stream)
    assert [item.describe() for item in items if not isinstance(item, Message)] == [
        "greeting: ZMTP 3.0, PLAIN",
        "HELLO username 'alice', password of 6 bytes",  # the password itself stays out of reports
        "INITIATE Socket-Type='REQ', Identity=''",
        "ERROR 'denied'",
        "PING (5 bytes)",
        "CANCEL b'topic'",
    ]
    assert isinstance(items[2], Command)
    assert items[2].properties == {"Socket-Type": b"REQ", "Identity": b""}


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "no ZMTP greeting (first byte 0x47, not 0xff)"),
        (b"\xff" + b"\0" * 8 + b"\x7e", "a ZMTP 1.0 peer"),
        (b"\xff" + b"\0" * 8 + b"\x7f\x01", "a ZMTP 1.x peer (revision 1)"),
        (greeting_bytes() + b"\x08\x00", "a frame with reserved flag bits set (0x08)"),
        (greeting_bytes() + b"\x04\x00", "a command frame with no name"),
    ],
)
def test_a_stream_that_is_not_zmtp_3_is_read_no_further(stream: bytes, reason: str) -> None:
    parser = ZmtpParser()
    items = parser.feed(stream)
    assert isinstance(items[-1], Unreadable)
    assert items[-1].reason.startswith(reason)
    assert parser.stopped
    assert parser.feed(encode_frames([b"more"])) == []


# --- bytes written by libzmq -----------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(DEADLINE)
        yield server


def read_until(sock: socket.socket, parser: ZmtpParser, wanted: int) -> list[Item]:
    """Read from ``sock`` until the parser has read ``wanted`` messages (the socket's timeout bounds each read)."""
    items: list[Item] = []
    while sum(isinstance(item, Message) for item in items) < wanted:
        data = sock.recv(1 << 20)
        assert data, f"the peer closed after {items}"
        items += parser.feed(data)
    return items


def test_what_a_libzmq_req_writes(listener: socket.socket, zmq_context: zmq.Context[Any]) -> None:
    req = zmq_context.socket(zmq.REQ)
    req.linger = 0
    req.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    big = random.Random(1).randbytes(300_000)
    req.send_multipart([b"hello", b"", big])
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(DEADLINE)
        conn.sendall(greeting_bytes() + command_bytes("READY", properties_bytes({"Socket-Type": b"REP"})))
        items = read_until(conn, ZmtpParser(), 1)
    greeting, ready, message = items
    assert greeting == Greeting((3, 1), "NULL", False, 0, 64)
    assert isinstance(ready, Command)
    assert ready.name == "READY"
    assert ready.properties["Socket-Type"] == b"REQ"
    assert isinstance(message, Message)
    assert message.frames == (b"", b"hello", b"", big)  # REQ's empty delimiter first; the long frame whole


def test_what_a_libzmq_pub_writes_to_a_subscriber(listener: socket.socket, zmq_context: zmq.Context[Any]) -> None:
    pub = zmq_context.socket(zmq.PUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as conn:
        conn.sendall(greeting_bytes() + command_bytes("READY", properties_bytes({"Socket-Type": b"SUB"})))
        parser = ZmtpParser()
        items: list[Item] = []
        while not any(isinstance(item, Command) and item.name == "READY" for item in items):
            data = conn.recv(4096)
            assert data, f"the PUB closed after {items}"
            items += parser.feed(data)
        conn.sendall(command_bytes("SUBSCRIBE", b"news"))  # once the handshake is done, as libzmq's SUB does
        probe = [b"news", b"probe"]
        conn.settimeout(0.05)
        for _ in range(200):  # the subscription lands a while after it is sent: publish a probe until one comes
            pub.send_multipart([b"other", b"dropped by the filter"])
            pub.send_multipart(probe)
            try:
                items += parser.feed(conn.recv(1 << 20))
            except TimeoutError:
                continue
            if any(isinstance(item, Message) for item in items):
                break
        conn.settimeout(DEADLINE)
        sent = [[b"news", b"x" * size] for size in (0, 255, 256, 70_000)]
        for frames in sent:
            pub.send_multipart(frames)
        pub.send_multipart([b"news", b"end"])
        while not any(isinstance(item, Message) and item.frames[1] == b"end" for item in items):
            data = conn.recv(1 << 20)
            assert data, f"the PUB closed after {items}"
            items += parser.feed(data)
    messages = [list(item.frames) for item in items if isinstance(item, Message) and list(item.frames) != probe]
    assert messages == [*sent, [b"news", b"end"]]
    assert isinstance(items[0], Greeting)
    assert items[0].version == (3, 1)
