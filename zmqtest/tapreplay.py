"""One side of a conversation seen through a tap, as a mimic socket would have had it: what a replay plays.

A :class:`~zmqtest.tap.Tap` records what two peers said on the wire: ``wire`` events from
one named peer to the other, a message's frames as ZMTP carries them, and the greeting
and commands as text (READY names the sender's ``Socket-Type`` and ``Identity``). A
socket does not send or receive exactly those frames, so :func:`played_side` turns the
events of peer X into the messages a socket of X's type sends and receives:

- REQ and REP: the wire message starts with the empty delimiter frame that the socket
  adds and strips itself; it is left out.
- ROUTER: a received message starts with the sender's routing id, which the wire does
  not carry: the peer's ``Identity`` where its READY gave one, else a stand-in per tapped
  connection (``b"tap-connection-1"``), which the replay maps to the live id it receives.
- SUB: its subscriptions (SUBSCRIBE commands, or messages starting ``\\x01``) are the
  socket's options, not messages; a PUB does not receive them either.
- DEALER, PUSH, PULL, PUB, SUB and PAIR send and receive the frames as they are.

It refuses what it cannot turn into one socket's side: traffic that CURVE encrypted,
messages a tap fault dropped or duplicated, frames not kept whole, several connections
of a peer that is not a ROUTER, and socket types other than those.
"""

from __future__ import annotations

import ast
import dataclasses
import re

from zmqtest.errors import ZmqTestError
from zmqtest.rendering import show_message
from zmqtest.transcriptfile import TEXT_WIDTH, Event, EventKind, Participant, Recorded

__all__ = ["PlayedSide", "TapReplayError", "is_tap_recording", "played_side", "tapped_peers"]

SAME_FRAMES = frozenset({"DEALER", "PUSH", "PULL", "PUB", "SUB", "PAIR"})
"""Socket types whose messages are the frames on the wire."""
DELIMITED = frozenset({"REQ", "REP"})
SUPPORTED = SAME_FRAMES | DELIMITED | {"ROUTER"}

_CONNECTION_MARK = re.compile(r"^\(connection (?P<number>\d+)\) ?")
_FAULT_MARK = re.compile(r"^\((?P<what>\w+) by the tap\)")
_CONNECTED = re.compile(r"^connection (?P<number>\d+) through tap ")
_PROPERTY = re.compile(r"(?P<name>[\w-]+)=(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_ENCRYPTED = re.compile(r"^\(encrypted, [\d,]+ bytes\)$|^greeting: .*\bCURVE\b")


class TapReplayError(ZmqTestError):
    """A tap recording whose side cannot be played by one socket (the message says why)."""


@dataclasses.dataclass(frozen=True)
class PlayedSide:
    """Peer ``peer``'s side of a tap recording, as a socket's messages (``recorded``), and how to make the socket."""

    peer: str
    socket_type: str
    """Its READY's ``Socket-Type``."""
    connects: bool
    """The peer connected through the tap (the tap's client side); else it bound (the server side)."""
    routing_id: bytes
    """Its READY's ``Identity`` (empty: none was set)."""
    subscriptions: tuple[bytes, ...]
    """A SUB's topics, in order."""
    recorded: Recorded
    """Its messages as a mimic named ``peer`` would have recorded them (``send``, ``recv``, whole frames)."""


def is_tap_recording(recorded: Recorded) -> bool:
    """A recording of what a tap saw (wire messages), with no mimic's messages of its own."""
    return not recorded.messages() and any(event.kind == "wire" and event.frames for event in recorded.events)


def tapped_peers(recorded: Recorded) -> list[str]:
    """The peers a tap saw send something, in order of appearance."""
    return list(dict.fromkeys(event.who for event in recorded.events if event.kind == "wire"))


def played_side(recorded: Recorded, peer: str, *, where: str = "the recording") -> PlayedSide:
    """Peer ``peer``'s messages in a tap recording as its socket sent and received them (see the module).

    Raises :class:`TapReplayError` naming the cause when one socket cannot play them.
    """
    __tracebackhide__ = True
    peers = tapped_peers(recorded)
    if peer not in peers:
        raise TapReplayError(f"{where} has no tapped peer {peer!r}; its tapped peers: {', '.join(peers) or 'none'}")
    side = _Side(peer, where)
    for event in recorded.events:
        if event.kind == "wire" and peer in (event.who, event.to):
            side.read(event)
    return side.result(recorded)


class _Side:
    """What one pass over the wire events learns of peer ``peer``."""

    def __init__(self, peer: str, where: str) -> None:
        self.peer, self.where = peer, where
        self.others: dict[str, None] = {}
        self.socket_type = ""
        self.other_type = ""
        self.routing_id = b""
        self.peer_ids: dict[int, bytes] = {}
        """Connection number -> the other peer's Identity, where its READY gave one."""
        self.connects = False
        self.connection = 0
        """The connection the unmarked events are on: the last one made."""
        self.subscriptions: list[bytes] = []
        self.messages: list[tuple[Event, EventKind, int]] = []
        """(wire event, ``send`` or ``recv``, connection number)."""

    def read(self, event: Event) -> None:
        text, connection = event.text, self.connection
        marked = _CONNECTION_MARK.match(text)
        if marked:
            connection, text = int(marked["number"]), text[marked.end() :]
        fault = _FAULT_MARK.match(text)
        if fault:
            raise TapReplayError(
                f"{self.where}: a message was {fault['what']} by the tap at {event.at:.6f} s ({event.text!r}): "
                "the recording is not what the peers said; record the conversation without tap faults"
            )
        if _ENCRYPTED.search(text):
            raise TapReplayError(
                f"{self.where}: the traffic between {event.who} and {event.to} is encrypted (CURVE), "
                f"cannot be replayed: the tap saw {text!r} at {event.at:.6f} s"
            )
        sent = event.who == self.peer
        self.others[str(event.to if sent else event.who)] = None
        if not event.frames:
            self._command(text, sent, connection)
            return
        self.messages.append((event, "send" if sent else "recv", connection))

    def _command(self, text: str, sent: bool, connection: int) -> None:
        connected = _CONNECTED.match(text)
        if connected:
            self.connection = int(connected["number"])
            self.connects = sent
        elif text.startswith("READY "):
            properties = {m["name"].lower(): ast.literal_eval(m["value"]) for m in _PROPERTY.finditer(text)}
            kind = str(properties.get("socket-type", ""))
            identity = str(properties.get("identity", "")).encode()
            if sent:
                self.socket_type, self.routing_id = kind, identity
            else:
                self.other_type = kind
                if identity:
                    self.peer_ids[connection] = identity
        elif sent and text.startswith("SUBSCRIBE "):
            self.subscriptions.append(ast.literal_eval(text.removeprefix("SUBSCRIBE ")))

    def result(self, recorded: Recorded) -> PlayedSide:
        kind = self.socket_type
        if not kind:
            raise TapReplayError(
                f"{self.where}: the tap never saw {self.peer}'s READY command, which names its socket type: "
                "start the tap before the peers connect"
            )
        if kind not in SUPPORTED:
            raise TapReplayError(
                f"{self.where}: {self.peer} is a {kind} socket; a replay plays {', '.join(sorted(SUPPORTED))}"
            )
        if len(self.others) > 1:
            raise TapReplayError(
                f"{self.where}: {self.peer} talks to {', '.join(self.others)} through taps; one socket plays one of "
                "its conversations: record them apart"
            )
        connections = sorted({connection for _, _, connection in self.messages})
        if len(connections) > 1 and kind != "ROUTER":
            raise TapReplayError(
                f"{self.where}: {self.peer}'s messages went over several connections "
                f"({', '.join(map(str, connections))}) and one {kind} socket cannot play them in their places "
                "(a ROUTER can): record one connection"
            )
        events = [e for e in (self._event(*message) for message in self.messages) if e is not None]
        other = next(iter(self.others), "peer")
        described = f"{kind} socket '{self.peer}' (played from what a tap saw it say to {other})"
        participants = (
            Participant("test", "test", "the test itself"),
            Participant(self.peer, "mimic", described, kind),
            Participant(other, "process", f"{self.other_type or 'a'} socket: {other}, seen through a tap"),
        )
        played = dataclasses.replace(recorded, participants=participants, events=tuple(events))
        return PlayedSide(self.peer, kind, self.connects, self.routing_id, tuple(self.subscriptions), played)

    def _event(self, event: Event, kind: EventKind, connection: int) -> Event | None:
        try:
            frames = event.whole_frames()
        except ValueError as problem:
            raise TapReplayError(
                f"{self.where}: {problem}: record through the tap inside zmqtest.replay.record(), which keeps "
                "every frame"
            ) from None
        socket_type = self.socket_type
        if socket_type == "SUB" and kind == "send" and len(frames) == 1 and frames[0][:1] in (b"\x01", b"\x00"):
            if frames[0][:1] == b"\x01":  # a subscription, as ZMTP 3.0 sends it
                self.subscriptions.append(frames[0][1:])
            return None
        if socket_type == "PUB" and kind == "recv":
            return None  # a subscriber's (un)subscription: a PUB socket takes it in, never returns it
        if socket_type in DELIMITED:
            if not frames or frames[0] != b"":
                raise TapReplayError(
                    f"{self.where}: {event.who}'s message {event.text!r} at {event.at:.6f} s does not start with the "
                    f"empty delimiter frame that a {socket_type} socket's conversation has on the wire"
                )
            frames = frames[1:]
        elif socket_type == "ROUTER":  # what it received came from, and what it sent went to, that connection's peer
            frames = [self.peer_ids.get(connection, b"tap-connection-%d" % connection), *frames]
        text = show_message(frames, None, TEXT_WIDTH)
        return Event(event.at, self.peer, kind, text, tuple(frames), event.body, event.body_repr)
