"""Mimics are faithful on the wire: a process cannot tell a mimic from a plain pyzmq socket (issue 9).

Each test starts a real peer process (tests/apps/wire_peer.py) that binds two sockets of
the peer's type, one for the mimic socket and one for a plain pyzmq socket of the
mimic's type, and forwards every message they receive to the test, frame for frame,
identity and empty frames included. The mimic and the plain socket make the same calls,
with default settings on both, and the peer must have received the same bytes:

- every pair (mimic type / peer type) of :data:`PAIRS`, with ``send``, ``send_multipart``,
  ``send_string``, ``send_json`` and ProcessTest's ``("send", sock, header, body,
  extra_frames)`` event (against the ``send_multipart`` of ``header + [json.dumps(body)]
  + extra_frames`` it stands for), and what the mimic receives back (replies, a
  greeting, subscriptions);
- the other direction (:data:`REVERSE`): what the peer sends arrives as the same frames;
- a restart of the peer (:data:`RESTART`): what a connecting DEALER, PUSH or REQ sends
  while the peer is down is queued and arrives once it is back;
- a REQ whose receive timed out (:data:`LATE`): the late reply is never taken for the
  next request, and the peer sees what it sees from a plain client that closes its
  socket and opens a new one (the zguide's Lazy Pirate).

What would make them fail: an extra REQ_CORRELATE frame (REQ-ROUTER, before the
delimiter), compact JSON from ProcessTest's send (every pair of the first test),
IMMEDIATE on a DEALER or PUSH mimic (its send times out while the peer is down), a REQ
that takes a late reply or does not start over on a new connection, a routing id a
mimic sets by itself, a transcript that shows other frames than went out or came in.

Each also checks the transcript: the frames a mimic recorded as sent (or received) are
the frames that went on the wire, less the envelope libzmq adds by itself (a REQ's
empty delimiter, the identity frame a ROUTER peer puts first) or takes off (the routing
frame of a ROUTER mimic, the envelope a REP peer keeps to itself).

Identity frames: a ROUTER peer names each connection with an identity libzmq generates
(5 bytes, the first 0), which differs between any two connections, the mimic's and the
plain socket's included. So they are compared through placeholders, numbered in order
of first appearance within each socket's conversation (``<identity 1>``, ...): the
mimic's and the plain socket's must match, and both must be generated ones. Explicit
routing ids in turn were the alternative, but a reconnection under the same id races
the peer's forgetting of the old one (a ROUTER refuses a duplicate id), and the
placeholders also show *when* a new connection began (after a REQ gave up on a reply).

The peer's sockets bind TCP loopback ports reserved by ``zmq_endpoint_factory.tcp()``;
after a stop, the new peer binds the same ones again (the old process is gone).

Nothing sleeps: the waits are the peer's reports (a mimic PULL with a deadline, raced
against the peer's death), zmqtest's barriers (``connect_and_wait``,
``wait_for_subscriber``, ``wait_until_receiving``) and socket monitors. The plain
sockets get only RCVTIMEO/SNDTIMEO, which bound the test's own waits and put nothing on
the wire.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
import zmq
from apps.wire_peer import PEER_ID, WirePeer
from zmq.utils.monitor import recv_monitor_message

from zmqtest import Conversation, ProcessTest, SocketTimeout, TestSocket
from zmqtest.barriers import connect_and_wait, wait_for_subscriber, wait_until_receiving
from zmqtest.contexts import SocketFactory
from zmqtest.endpoints import EndpointFactory
from zmqtest.processes import ManagedProcess, ProcessManager
from zmqtest.transcript import Transcript, recording

pytestmark = pytest.mark.process

MIMIC = "mimic"
PLAIN = "plain"
"""The names of the peer's two sockets: the mimic's and the plain socket's (they never share a connection)."""
WAIT = 5.0
"""Seconds any wait of the test may take (the peer's reports, barriers, plain sockets); passing runs take ms."""
GIVE_UP = 0.05
"""Seconds a receive waits that must time out (the peer holds its reply until told to send it)."""
PROBE = b"wire-probe"
"""What PUB/SUB barriers publish until one arrives; skipped wherever it turns up later."""

BODY = {"text": "grüße ✓", "numbers": [1, 2.5, None, True, False], "nested": {"key": "value"}}
"""A body whose default JSON differs from compact JSON in separators and in non-ASCII escapes."""
HEADER: list[bytes | str] = [b"head", "hëad 2"]
EXTRA: list[bytes | str] = [b"extra", b"", "ëxtra 2"]
"""Header and extra frames of ProcessTest's send event: str frames go out UTF-8 encoded."""
REPLY = [b"reply", b"\x00\xff"]
"""What the peer answers a REQ (or a DEALER talking to a REP) with."""
MESSAGES = [
    [b"one"],
    [b"", b"\x00\xff", b""],
    ["grüße ✓".encode()],
    [json.dumps(BODY).encode()],
    [b"topic", b"", json.dumps(BODY).encode(), b"last"],
]
"""What the peer sends to a mimic that receives (the other direction)."""


class Pair(NamedTuple):
    """A mimic type and the type of its peer, the process under test."""

    mimic: str
    peer: str

    def __str__(self) -> str:
        return f"{self.mimic}-{self.peer}"


PAIRS = [
    Pair("REQ", "REP"),
    Pair("REQ", "ROUTER"),
    Pair("DEALER", "ROUTER"),
    Pair("DEALER", "REP"),
    Pair("PUSH", "PULL"),
    Pair("PUB", "SUB"),
    Pair("XPUB", "XSUB"),
    Pair("PAIR", "PAIR"),
    Pair("ROUTER", "DEALER"),
]
REVERSE = [
    Pair("DEALER", "ROUTER"),
    Pair("PULL", "PUSH"),
    Pair("ROUTER", "DEALER"),
    Pair("SUB", "PUB"),
    Pair("XSUB", "XPUB"),
    Pair("PAIR", "PAIR"),
]
RESTART = [Pair("DEALER", "ROUTER"), Pair("PUSH", "PULL"), Pair("REQ", "REP"), Pair("REQ", "ROUTER")]
LATE = [Pair("REQ", "REP"), Pair("REQ", "ROUTER")]

Socket = zmq.Socket[Any]
Call = Callable[[Socket, list[bytes]], object]
"""A call on a socket, given the envelope frames a program puts first (for a ROUTER, a DEALER talking to a REP)."""


# --- the peer ------------------------------------------------------------------------------------------------------


class Peer:
    """A WirePeer process (started again after a stop on the same endpoints) and the sockets that steer it."""

    def __init__(
        self, kind: str, processes: ProcessManager, sockets: SocketFactory, endpoints: EndpointFactory
    ) -> None:
        self.kind = kind
        self.processes = processes
        # The PUB/SUB barrier is a probe that must come back: through the SUB peer and a PUB back to a SUB here.
        self.reports_kind = "PUB" if kind == "SUB" else "PUSH"
        if self.reports_kind == "PUB":
            self.reports = sockets(zmq.SUB, bind=("", 0), name="reports", timeout=WAIT, subscribe=b"")
        else:
            self.reports = sockets(zmq.PULL, bind=("", 0), name="reports", timeout=WAIT)
        self.control = sockets(zmq.PUSH, bind=("", 0), name="control", timeout=WAIT)
        self.wires = {MIMIC: endpoints.tcp(), PLAIN: endpoints.tcp()}
        self.process: ManagedProcess | None = None
        self._pending: dict[bytes, deque[list[bytes]]] = {name.encode(): deque() for name in self.wires}

    def start(self) -> Peer:
        target = WirePeer(
            self.kind, self.wires, self.control.endpoint, self.reports.endpoint, reports_kind=self.reports_kind
        )
        self.process = self.processes(target, ready=self.reports, stop=lambda: self.control.send_multipart([b"stop"]))
        return self

    def stop(self) -> None:
        assert self.process is not None
        assert self.process.stop() == 0

    def send(self, name: str, *frames: bytes) -> None:
        """Make the peer send ``frames`` on its socket ``name``."""
        self.control.send_multipart([b"send", name.encode(), *frames])

    def prober(self, name: str) -> Callable[[], None]:
        """A probe for a barrier: makes the peer send PROBE on its socket ``name``."""
        return lambda: self.send(name, PROBE)

    def received(self, name: str) -> list[bytes]:
        """The next message the peer's socket ``name`` received, exactly as it received it."""
        queue = self._pending[name.encode()]
        while not queue:
            self._file(self.reports.recv_multipart())
        return queue.popleft()

    def leftovers(self) -> dict[str, list[list[bytes]]]:
        """What the peer received and the test did not ask for, as far as it has arrived (no waiting)."""
        while self.reports.poll(0):
            self._file(self.reports.recv_multipart())
        return {name.decode(): list(queue) for name, queue in self._pending.items() if queue}

    def _file(self, report: list[bytes]) -> None:
        name, *frames = report
        if frames != [PROBE]:
            self._pending[name].append(frames)


@pytest.fixture
def peer_of(
    zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, zmq_endpoint_factory: EndpointFactory
) -> Callable[[str], Peer]:
    """``peer_of("ROUTER")``: a started WirePeer of that type."""
    return lambda kind: Peer(kind, zmq_process_factory, zmq_socket_factory, zmq_endpoint_factory).start()


@pytest.fixture
def pair_of(
    zmq_context: zmq.Context[Any], zmq_socket_factory: SocketFactory
) -> Callable[[str], tuple[TestSocket, Socket]]:
    """``mimic, plain = pair_of("DEALER")``: a mimic with default settings and a plain pyzmq socket, not connected."""

    def make(kind: str) -> tuple[TestSocket, Socket]:
        sock_type = zmq.SocketType[kind]
        extra: dict[str, Any] = {"subscribe": b""} if sock_type == zmq.SUB else {}
        return zmq_socket_factory(sock_type, name=MIMIC, **extra), plain_socket(zmq_context, kind)

    return make


def plain_socket(context: zmq.Context[Any], kind: str) -> Socket:
    """A plain pyzmq socket as a program makes it; RCVTIMEO/SNDTIMEO only bound the test's waits."""
    sock: Socket = context.socket(zmq.SocketType[kind])
    sock.rcvtimeo = sock.sndtimeo = round(WAIT * 1000)
    if kind == "SUB":
        sock.subscribe(b"")
    return sock


# --- the calls -----------------------------------------------------------------------------------------------------


class Sender(ProcessTest):
    """ProcessTest's send event, driven as a generator test drives it."""

    def conversation(self, sock: TestSocket, envelope: list[bytes]) -> Conversation:
        yield ("send", sock, [*envelope, *HEADER], BODY, EXTRA)


def by_event(sock: Socket, envelope: list[bytes]) -> None:
    assert isinstance(sock, TestSocket)
    sender = Sender()
    sender.run(sender.conversation, sock, envelope)


def as_the_event_stands_for(sock: Socket, envelope: list[bytes]) -> None:
    frames = [*HEADER, json.dumps(BODY), *EXTRA]
    sock.send_multipart([*envelope, *(frame.encode() if isinstance(frame, str) else frame for frame in frames)])


def then(call: Callable[[Socket], object]) -> Call:
    """A one-frame call, after the envelope frames (if any) sent with SNDMORE, as a program does it."""

    def send(sock: Socket, envelope: list[bytes]) -> None:
        for frame in envelope:
            sock.send(frame, zmq.SNDMORE)
        call(sock)

    return send


CALLS: list[tuple[str, Call, Call]] = [
    ("send", then(lambda sock: sock.send(b"\x00raw \xff bytes")), then(lambda sock: sock.send(b"\x00raw \xff bytes"))),
    (
        "send_multipart",
        lambda sock, envelope: sock.send_multipart([*envelope, b"first", b"", b"\x00third\xff"]),
        lambda sock, envelope: sock.send_multipart([*envelope, b"first", b"", b"\x00third\xff"]),
    ),
    ("send_string", then(lambda sock: sock.send_string("grüße ✓")), then(lambda sock: sock.send_string("grüße ✓"))),
    ("send_json", then(lambda sock: sock.send_json(BODY)), then(lambda sock: sock.send_json(BODY))),
    ("ProcessTest send", by_event, as_the_event_stands_for),
]
"""(name, the mimic's call, the plain socket's call): the same calls, but for ProcessTest's event."""


# --- what went on the wire -----------------------------------------------------------------------------------------


def is_generated_identity(frame: bytes) -> bool:
    """Whether ``frame`` is an identity libzmq made up for a connection (a 0 byte, then a 32-bit number)."""
    return len(frame) == 5 and frame[0] == 0


def identities(peer: str, messages: list[list[bytes]]) -> tuple[list[str], list[list[bytes]]]:
    """A ROUTER peer's messages: their identities as placeholders in order of appearance, and the rest of each.

    Any other peer's messages: no identities, the messages as they are.
    """
    if peer != "ROUTER":
        return [], messages
    numbers: dict[bytes, str] = {}
    for identity, *_ in messages:
        assert is_generated_identity(identity), f"not an identity libzmq generates: {identity!r}"
        numbers.setdefault(identity, f"<identity {len(numbers) + 1}>")
    return [numbers[message[0]] for message in messages], [message[1:] for message in messages]


def on_the_wire(pair: Pair, sent: list[bytes]) -> list[bytes]:
    """What the peer's application receives (less a ROUTER's identity frame) when the mimic sent ``sent``."""
    frames = list(sent)
    if pair.mimic == "ROUTER":
        frames = frames[1:]  # the routing frame picks the connection; it does not travel
    if pair.mimic == "REQ":
        frames = [b"", *frames]  # libzmq's REQ puts the empty delimiter first
    if pair.peer == "REP":
        frames = frames[frames.index(b"") + 1 :]  # a REP keeps the envelope, up to the delimiter, to itself
    return frames


def recorded(transcript: Transcript, kind: str = "send") -> list[list[bytes]]:
    """The frames of each ``kind`` event (send, recv) of the mimic in ``transcript``; a SNDMORE send is one event."""
    return [
        list(frames)
        for _, who, event, frames in transcript.events
        if event == kind and getattr(who, "name", None) == MIMIC
    ]


def reply_envelope(pair: Pair, request: list[bytes]) -> list[bytes]:
    """What a peer puts before a reply: a ROUTER echoes the envelope up to the delimiter (a REP does it itself)."""
    return request[: request.index(b"") + 1] if pair.peer == "ROUTER" else []


def answers(pair: Pair) -> bool:
    """Whether the mimic must get a reply before its next send (a REQ), or the peer before its next receive (a REP)."""
    return pair.mimic == "REQ" or pair.peer == "REP"


@dataclass
class Round:
    """One socket's side of a conversation with the peer."""

    received: list[list[bytes]] = field(default_factory=list)
    """What the peer received from the socket, each message as it came."""
    got: list[list[bytes]] = field(default_factory=list)
    """What the socket received: greetings, subscriptions, replies, in order."""
    sent: list[list[bytes]] = field(default_factory=list)
    """For the mimic: the frames its transcript recorded as sent, per message (for a plain socket, empty lists)."""

    def assert_same_on_the_wire(self, plain: Round, peer: str) -> None:
        mimic_ids, mimic_frames = identities(peer, self.received)
        plain_ids, plain_frames = identities(peer, plain.received)
        assert mimic_frames == plain_frames, "the peer received other frames from the mimic than from a plain socket"
        assert mimic_ids == plain_ids, "the mimic's connections to the peer differ from a plain socket's"
        assert self.got == plain.got, "the mimic received other frames from the peer than a plain socket"


def connect(pair: Pair, peer: Peer, sock: Socket, name: str) -> Round:
    """Connect ``sock`` to the peer's socket ``name``, and wait until a message sent next cannot be lost."""
    done = Round()
    connect_and_wait(sock, peer.wires[name], timeout=WAIT)
    if pair.mimic == "PUB":  # the peer's SUB subscribed: wait until a probe from ``sock`` comes back through it
        wait_until_receiving(
            peer.reports, lambda: sock.send(PROBE), lambda frames: frames == [name.encode(), PROBE], timeout=WAIT
        )
    if pair.mimic == "XPUB":  # the peer's XSUB subscribed to everything: the subscription is what ``sock`` receives
        done.got.append(wait_for_subscriber(sock, timeout=WAIT))  # (it makes a plain XPUB verbose: the test's side)
    if pair.mimic == "ROUTER":  # a ROUTER can address its DEALER peer once it has heard from it
        peer.send(name, b"hello")
        done.got.append(sock.recv_multipart())
    return done


# --- the proofs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS, ids=str)
def test_the_peer_receives_the_same_frames_from_a_mimic(
    pair: Pair, peer_of: Callable[[str], Peer], pair_of: Callable[[str], tuple[TestSocket, Socket]]
) -> None:
    """Every call of CALLS, on a mimic and on a plain socket: the peer receives the same frames, replies the same.

    Catches an extra REQ_CORRELATE frame (REQ-ROUTER: before the delimiter) and compact
    JSON from ProcessTest's send (every pair).
    """
    peer = peer_of(pair.peer)
    mimic, plain = pair_of(pair.mimic)
    # The frames a program puts first: a ROUTER names the peer; a DEALER talking to a REP writes the delimiter.
    envelope = [PEER_ID] if pair.mimic == "ROUTER" else [b""] if pair == ("DEALER", "REP") else []
    rounds: dict[str, Round] = {}
    for name, sock in ((MIMIC, mimic), (PLAIN, plain)):
        with recording() as transcript:  # records the mimic only: a plain socket is not a participant
            done = rounds[name] = connect(pair, peer, sock, name)
            for _, mimic_call, plain_call in CALLS:
                transcript.events.clear()
                (mimic_call if sock is mimic else plain_call)(sock, envelope)
                done.sent.append([frame for frames in recorded(transcript) for frame in frames])
                done.received.append(peer.received(name))
                if answers(pair):
                    peer.send(name, *reply_envelope(pair, done.received[-1]), *REPLY)
                    done.got.append(sock.recv_multipart())

    rounds[MIMIC].assert_same_on_the_wire(rounds[PLAIN], pair.peer)
    received = identities(pair.peer, rounds[MIMIC].received)[1]
    assert [on_the_wire(pair, sent) for sent in rounds[MIMIC].sent] == received, "the transcript shows other frames"
    assert peer.leftovers() == {}


@pytest.mark.parametrize("pair", REVERSE, ids=str)
def test_a_mimic_receives_the_same_frames_from_the_peer(
    pair: Pair, peer_of: Callable[[str], Peer], pair_of: Callable[[str], tuple[TestSocket, Socket]]
) -> None:
    """The peer sends MESSAGES to a mimic and to a plain socket: both receive the same frames."""
    peer = peer_of(pair.peer)
    mimic, plain = pair_of(pair.mimic)
    rounds: dict[str, Round] = {}
    in_transcript: list[list[bytes]] = []
    for name, sock in ((MIMIC, mimic), (PLAIN, plain)):
        done = rounds[name] = Round()
        with recording() as transcript:
            connect_and_wait(sock, peer.wires[name], timeout=WAIT)
            envelope: list[bytes] = []
            if pair.mimic == "DEALER":  # the ROUTER peer learns the identity to address from a first message
                sock.send(b"hello")
                done.received.append(peer.received(name))
                envelope = done.received[-1][:1]
            if pair.mimic == "XSUB":  # what an XSUB sends upstream is a subscription; the XPUB peer receives it
                sock.send(b"\x01")
                done.received.append(peer.received(name))
            if pair.mimic in ("SUB", "XSUB"):
                wait_until_receiving(sock, peer.prober(name), lambda frames: frames == [PROBE], timeout=WAIT)
            transcript.events.clear()
            for message in MESSAGES:
                peer.send(name, *envelope, *message)
            while len(done.got) < len(MESSAGES):
                frames = sock.recv_multipart()
                if frames != [PROBE]:  # the answer to an earlier probe, after the one the barrier took
                    done.got.append(frames)
            if sock is mimic:
                in_transcript = [frames for frames in recorded(transcript, "recv") if frames != [PROBE]]

    rounds[MIMIC].assert_same_on_the_wire(rounds[PLAIN], pair.peer)
    prefix = [PEER_ID] if pair.mimic == "ROUTER" else []  # a ROUTER mimic hears the DEALER peer's routing id first
    assert rounds[MIMIC].got == [[*prefix, *message] for message in MESSAGES]
    assert in_transcript == rounds[MIMIC].got, "the transcript shows other frames than the mimic received"
    assert peer.leftovers() == {}


def wait_for_disconnection(monitor: Socket) -> None:
    """Wait (at most WAIT seconds) until ``monitor``, which reports only disconnections, reports one."""
    if not monitor.poll(round(WAIT * 1000)):
        pytest.fail(f"no disconnection within {WAIT:g} s after the peer stopped")
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED


@pytest.mark.parametrize("pair", RESTART, ids=str)
def test_what_a_mimic_sends_while_the_peer_is_down_arrives_once_it_is_back(
    pair: Pair, peer_of: Callable[[str], Peer], pair_of: Callable[[str], tuple[TestSocket, Socket]]
) -> None:
    """The peer stops; a connecting mimic sends, as a plain socket does; the peer starts again and gets it all.

    Catches IMMEDIATE on a DEALER or PUSH mimic: its send times out while no peer is connected.
    """
    peer = peer_of(pair.peer)
    mimic, plain = pair_of(pair.mimic)
    sockets = {MIMIC: mimic, PLAIN: plain}
    rounds = {name: Round() for name in sockets}
    while_down = [[b"while down"]] if pair.mimic == "REQ" else [[b"while down"], [b"while", b"", b"down \xff"]]

    def exchange(name: str) -> None:
        """Receive the peer's report of a message; answer a REQ."""
        rounds[name].received.append(peer.received(name))
        if answers(pair):
            peer.send(name, *reply_envelope(pair, rounds[name].received[-1]), *REPLY)
            rounds[name].got.append(sockets[name].recv_multipart())

    for name, sock in sockets.items():
        connect_and_wait(sock, peer.wires[name], timeout=WAIT)
        sock.send(b"before")
        exchange(name)
    # Sent before the connection is seen to be gone, a message would go to it and be lost, by a plain socket too.
    monitors = {
        name: sock.get_monitor_socket(zmq.EVENT_DISCONNECTED, addr=f"inproc://wire-{uuid.uuid4().hex}")
        for name, sock in sockets.items()
    }
    peer.stop()
    for name, monitor in monitors.items():
        wait_for_disconnection(monitor)
        sockets[name].disable_monitor()
        monitor.close(linger=0)

    for name, sock in sockets.items():
        with recording() as transcript:
            for message in while_down:
                sock.send_multipart(message)  # queued: no peer is there (a mimic with IMMEDIATE would time out)
            rounds[name].sent = recorded(transcript)
    peer.start()  # again, on the same endpoints
    for name in sockets:
        for _ in while_down:
            exchange(name)

    rounds[MIMIC].assert_same_on_the_wire(rounds[PLAIN], pair.peer)
    received = identities(pair.peer, rounds[MIMIC].received)[1]
    assert (
        received[1:]
        == [on_the_wire(pair, sent) for sent in rounds[MIMIC].sent]
        == [on_the_wire(pair, message) for message in while_down]
    )
    assert peer.leftovers() == {}


@pytest.mark.parametrize("pair", LATE, ids=str)
def test_a_late_reply_is_never_taken_for_the_next_one(
    pair: Pair,
    peer_of: Callable[[str], Peer],
    pair_of: Callable[[str], tuple[TestSocket, Socket]],
    zmq_context: zmq.Context[Any],
) -> None:
    """A REQ gives up on a reply; the reply comes late; the next requests get their own replies.

    The plain client starts over as the zguide's Lazy Pirate does: it closes its socket
    and opens a new one. The mimic does it by itself, and the peer must see the same.
    """
    peer = peer_of(pair.peer)
    mimic, plain = pair_of(pair.mimic)
    rounds = {MIMIC: Round(), PLAIN: Round()}

    def request(sock: Socket, name: str, number: int) -> list[bytes]:
        """Send request ``number``; the peer's report of it."""
        sock.send(b"request %d" % number)
        rounds[name].received.append(peer.received(name))
        return rounds[name].received[-1]

    def answer(sock: Socket, name: str, number: int) -> None:
        request(sock, name, number)
        peer.send(name, *reply_envelope(pair, rounds[name].received[-1]), b"reply %d" % number)
        rounds[name].got.append(sock.recv_multipart())

    with recording() as transcript:
        connect_and_wait(mimic, peer.wires[MIMIC], timeout=WAIT)
        first = request(mimic, MIMIC, 1)
        with pytest.raises(SocketTimeout):
            mimic.recv_multipart(timeout=GIVE_UP)
        peer.send(MIMIC, *reply_envelope(pair, first), b"late reply 1")
        answer(mimic, MIMIC, 2)
        answer(mimic, MIMIC, 3)
        rounds[MIMIC].sent = recorded(transcript)
        mimic_got = recorded(transcript, "recv")

    connect_and_wait(plain, peer.wires[PLAIN], timeout=WAIT)
    first = request(plain, PLAIN, 1)
    assert not plain.poll(round(GIVE_UP * 1000))
    plain.close(linger=0)
    plain = plain_socket(zmq_context, pair.mimic)
    plain.connect(peer.wires[PLAIN])
    peer.send(PLAIN, *reply_envelope(pair, first), b"late reply 1")
    answer(plain, PLAIN, 2)
    answer(plain, PLAIN, 3)

    rounds[MIMIC].assert_same_on_the_wire(rounds[PLAIN], pair.peer)
    assert rounds[MIMIC].got == [[b"reply 2"], [b"reply 3"]]
    assert mimic_got == rounds[MIMIC].got, "the transcript shows other frames than the mimic received"
    received = identities(pair.peer, rounds[MIMIC].received)[1]
    assert [on_the_wire(pair, sent) for sent in rounds[MIMIC].sent] == received, "the transcript shows other frames"
    assert peer.leftovers() == {}
