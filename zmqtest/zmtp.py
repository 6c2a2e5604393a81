"""Reading ZMTP 3.x as it passes: an incremental parser of one direction of a ZeroMQ TCP connection.

The tap (:mod:`zmqtest.tap`) forwards a connection's bytes unchanged and feeds a copy
of each direction to a :class:`ZmtpParser`, which turns them into what the peers said:
the :class:`Greeting` (version, security mechanism, role), the handshake and control
:class:`Command` s (READY with its properties, ERROR, SUBSCRIBE, CANCEL, PING, PONG,
HELLO, WELCOME, INITIATE) and whole :class:`Message` s (lists of frames). Pure: no
sockets, no threads, no clock; bytes in, items out, each with the stream offsets where
it began and ended (the tap cuts the stream at those offsets to drop or duplicate a
whole message).

NULL and PLAIN are read in full (a PLAIN password shows as its length only). CURVE
encrypts everything after its handshake: each frame travels as a MESSAGE command whose
box hides the frame's flags too, so the parser reports one encrypted :class:`Message`
per frame, with its size (`RFC 26 <https://rfc.zeromq.org/spec/26/>`_).

Frames longer than ``keep`` bytes are kept as :class:`~zmqtest.rendering.Clipped`
(their first bytes and their size), so a 64 MiB frame costs the parser no more memory
than a short one. A stream that is not ZMTP 3.x (ZMTP 1.0 or 2.0, garbage) yields one
:class:`Unreadable` and the parser reads no further (the tap still forwards it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from zmqtest.rendering import HEAD_BYTES, Clipped

__all__ = [
    "Command",
    "Frame",
    "Greeting",
    "Item",
    "Message",
    "Unreadable",
    "ZmtpParser",
    "command_bytes",
    "encode_frames",
    "greeting_bytes",
    "properties_bytes",
]

GREETING_SIZE = 64
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
"""The bits of a frame's flags byte."""
_long_size = struct.Struct(">Q").unpack_from
SECURED_COMMANDS = frozenset({"HELLO", "WELCOME", "INITIATE", "READY", "MESSAGE"})
"""Commands whose bodies CURVE encrypts (after their fixed fields)."""

Frame = bytes | Clipped
"""A frame as the parser keeps it: whole, or its first bytes and size."""


@dataclass(frozen=True, slots=True)
class Greeting:
    """The 64-byte greeting that opens each direction: ZMTP version, mechanism, and whether this side is the server."""

    version: tuple[int, int]
    mechanism: str
    as_server: bool
    start: int
    end: int

    def describe(self) -> str:
        role = " as server" if self.as_server else ""
        return f"greeting: ZMTP {self.version[0]}.{self.version[1]}, {self.mechanism}{role}"


@dataclass(frozen=True, slots=True)
class Command:
    """A command frame: its name, its data after the name, and the properties READY and INITIATE carry (NULL, PLAIN)."""

    name: str
    data: Frame
    start: int
    end: int
    properties: dict[str, bytes] = field(default_factory=dict)

    def describe(self) -> str:
        data = self.data
        if self.name in ("SUBSCRIBE", "CANCEL") and isinstance(data, bytes):
            return f"{self.name} {data!r}"
        if self.properties:
            shown = ", ".join(f"{name}={value.decode(errors='replace')!r}" for name, value in self.properties.items())
            return f"{self.name} {shown}"
        if self.name == "ERROR" and isinstance(data, bytes):
            return f"ERROR {data[1 : 1 + data[0]].decode(errors='replace')!r}" if data else "ERROR"
        hello = _plain_hello(data) if self.name == "HELLO" and isinstance(data, bytes) else None
        if hello is not None:
            return f"HELLO username {hello[0].decode(errors='replace')!r}, password of {hello[1]} bytes"
        size = data.size if isinstance(data, Clipped) else len(data)
        return f"{self.name} ({size} bytes)" if size else self.name


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message (its frames, in order); encrypted (CURVE): one frame, whose flags and body the box hides."""

    frames: tuple[Frame, ...]
    start: int
    end: int
    encrypted: bool = False

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(frame.size if isinstance(frame, Clipped) else len(frame) for frame in self.frames)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The stream stopped being ZMTP 3.x here (``reason``); the parser reads no further."""

    reason: str
    start: int
    end: int

    def describe(self) -> str:
        return f"not read further: {self.reason}"


Item = Greeting | Command | Message | Unreadable


def _size(data: bytes | memoryview, at: int) -> int:
    """The 8-byte size of a long frame whose flags are at ``at``; -1 if ``data`` ends before it does."""
    return int.from_bytes(data[at + 1 : at + 9], "big") if at + 9 <= len(data) else -1


def _plain_hello(data: bytes) -> tuple[bytes, int] | None:
    """PLAIN's HELLO body (username, password): the username and the password's length, if it reads as one."""
    if not data:
        return None
    user_end = 1 + data[0]
    if user_end >= len(data) or user_end + 1 + data[user_end] != len(data):
        return None
    return data[1:user_end], data[user_end]


def _properties(data: bytes) -> dict[str, bytes]:
    """The metadata of a READY or INITIATE (name length, name, 4-byte value length, value), as far as it reads."""
    properties: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        name_end = at + 1 + data[at]
        if name_end + 4 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, name_end)
        value_end = name_end + 4 + size
        if value_end > len(data):
            break
        properties[data[at + 1 : name_end].decode("ascii", errors="replace")] = data[name_end + 4 : value_end]
        at = value_end
    return properties


class ZmtpParser:
    """One direction of a ZMTP connection, fed as it arrives: ``items = parser.feed(data)``.

    ``keep``: frames up to this many bytes are kept whole, longer ones as :class:`Clipped`
    (default: all whole). ``offset``: bytes fed so far. ``greeting``: the greeting once read.
    """

    def __init__(self, *, keep: int | None = None) -> None:
        self.keep = keep
        self.offset = 0
        self.greeting: Greeting | None = None
        self.stopped = False
        self._head = bytearray()
        """Bytes of the greeting or of a frame's header read so far."""
        self._body_left = 0
        self._body: list[bytes] = []
        self._kept = 0
        self._size = 0
        self._flags = 0
        self._in_body = False
        self._frames: list[Frame] = []
        self._message_start: int | None = None
        self._frame_start = 0

    @property
    def pending(self) -> int | None:
        """Where the message being read began (``None``: between messages, or in the greeting or a command)."""
        if self._message_start is not None:
            return self._message_start
        if self.greeting is not None and not self.stopped and self._head and not self._head[0] & COMMAND:
            return self._frame_start
        return None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Item]:
        """Read ``data``, the next bytes of the stream; return the items it completed, in order.

        ``data`` may be a view of a buffer the caller reuses: the parser keeps copies of what it keeps, no view.
        """
        items: list[Item] = []
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        at, end = 0, len(view)
        keep = self.keep
        while at < end and not self.stopped:
            if not self._in_body and not self._head and self.greeting is not None and at + 1 < end:
                at = self._whole_messages(view, at, end, items)
                if at + 1 >= end:
                    continue
                # a command, a CURVE box, or a frame cut short or clipped: one frame at a time
                flags = view[at]
                size, header = (view[at + 1], 2) if not flags & LONG else (_size(view, at), 9)
                stop = at + header + size
                if (
                    size >= 0
                    and stop <= end
                    and not flags & ~(MORE | LONG | COMMAND)
                    and (keep is None or size <= keep)
                ):
                    self._frame_start = self.offset + at
                    self._flags, self._size = flags, size
                    if self._message_start is None and not flags & COMMAND:
                        self._message_start = self._frame_start
                    self._frame_done(self.offset + stop, items, view[at + header : stop].tobytes())
                    at = stop
                    continue
            if self._in_body:
                take = min(self._body_left, end - at)
                room = self._room() - self._kept
                if room > 0:
                    piece = view[at : at + min(take, room)].tobytes()
                    self._body.append(piece)
                    self._kept += len(piece)
                at += take
                self._body_left -= take
                if not self._body_left:
                    self._frame_done(self.offset + at, items)
            elif self.greeting is None:
                take = min(GREETING_SIZE - len(self._head), end - at)
                self._head += view[at : at + take]
                at += take
                problem = self._check_greeting()
                if problem is not None:
                    self._stop(problem, self.offset + at, items)
                elif len(self._head) == GREETING_SIZE:
                    self._read_greeting(self.offset + at, items)
            else:
                at = self._read_header(view, at, end, items)
        self.offset += end
        return items

    def _whole_messages(self, view: memoryview, at: int, end: int, items: list[Item]) -> int:
        """The common case, fast: data frames read whole from ``view`` (header and body there, kept whole).

        Stops before anything else (a command, a CURVE box, a frame cut short or to clip); returns where.
        """
        assert self.greeting is not None
        if self.greeting.mechanism == "CURVE":
            return at
        keep, base, frames, start = self.keep, self.offset, self._frames, self._message_start
        while at + 1 < end:
            flags = view[at]
            if not flags & LONG:
                size, header = view[at + 1], 2
            elif at + 9 <= end:
                size, header = _long_size(view, at + 1)[0], 9
            else:
                break
            stop = at + header + size
            if stop > end or flags & ~(MORE | LONG) or (keep is not None and size > keep):
                break
            if start is None:
                start = base + at
            frames.append(view[at + header : stop].tobytes())
            if not flags & MORE:
                items.append(Message(tuple(frames), start, base + stop))
                frames.clear()
                start = None
            at = stop
        self._message_start = start
        return at

    def _room(self) -> int:
        """How many bytes of the current frame to keep: whole if it fits ``keep`` (or is a command), else a head."""
        if self.keep is None or self._size <= self.keep or (self._flags & COMMAND and self._size <= 64 * 1024):
            return self._size
        return HEAD_BYTES

    def _check_greeting(self) -> str | None:
        head = self._head
        if head[0] != 0xFF:
            return f"no ZMTP greeting (first byte {head[0]:#04x}, not 0xff)"
        if len(head) >= 10 and head[9] & 0x01 != 0x01:
            return "a ZMTP 1.0 peer (no 0x7f at the end of the signature)"
        if len(head) >= 11 and head[10] < 3:
            return f"a ZMTP {head[10]}.x peer (revision {head[10]}): only 3.x is read"
        return None

    def _read_greeting(self, end: int, items: list[Item]) -> None:
        head = bytes(self._head)
        self._head.clear()
        mechanism = head[12:32].rstrip(b"\0").decode("ascii", errors="replace")
        self.greeting = Greeting((head[10], head[11]), mechanism, head[32] == 1, end - GREETING_SIZE, end)
        items.append(self.greeting)
        self._frame_start = end

    def _read_header(self, view: memoryview, at: int, end: int, items: list[Item]) -> int:
        head = self._head
        if not head:
            self._frame_start = self.offset + at
        need = 9 if (head[0] if head else view[at]) & LONG else 2
        take = min(need - len(head), end - at)
        head += view[at : at + take]
        at += take
        if len(head) < need:
            return at
        self._flags = head[0]
        if self._flags & ~(MORE | LONG | COMMAND):
            self._stop(f"a frame with reserved flag bits set ({self._flags:#04x})", self.offset + at, items)
            return at
        self._size = struct.unpack_from(">Q", head, 1)[0] if need == 9 else head[1]
        head.clear()
        self._in_body, self._body_left, self._kept = True, self._size, 0
        if self._message_start is None and not self._flags & COMMAND:
            self._message_start = self._frame_start
        if not self._size:
            self._frame_done(self.offset + at, items)
        return at

    def _frame_done(self, end: int, items: list[Item], body: bytes | None = None) -> None:
        if body is None:
            body = b"".join(self._body)
            self._body.clear()
            self._in_body = False
        frame: Frame = body if len(body) == self._size else Clipped(body[:HEAD_BYTES], self._size)
        if self._flags & COMMAND:
            self._command(frame, body, end, items)
        elif self.greeting is not None and self.greeting.mechanism == "CURVE" and body.startswith(b"\x07MESSAGE"):
            self._message_start = None  # libzmq sends CURVE's MESSAGE without the COMMAND bit
            items.append(Message((frame,), self._frame_start, end, encrypted=True))
        else:
            self._frames.append(frame)
            if not self._flags & MORE:
                start = self._frame_start if self._message_start is None else self._message_start
                items.append(Message(tuple(self._frames), start, end))
                self._frames = []
                self._message_start = None

    def _command(self, frame: Frame, body: bytes, end: int, items: list[Item]) -> None:
        if not body:
            self._stop("a command frame with no name", end, items)
            return
        name = body[1 : 1 + body[0]].decode("ascii", errors="replace")
        data: Frame = body[1 + body[0] :] if isinstance(frame, bytes) else frame
        curve = self.greeting is not None and self.greeting.mechanism == "CURVE"
        if name == "MESSAGE" and curve:
            items.append(Message((frame,), self._frame_start, end, encrypted=True))
            return
        properties: dict[str, bytes] = {}
        if name in ("READY", "INITIATE") and isinstance(data, bytes) and not curve:
            properties = _properties(data)
        items.append(Command(name, data, self._frame_start, end, properties))

    def _stop(self, reason: str, end: int, items: list[Item]) -> None:
        self.stopped = True
        items.append(Unreadable(reason, self._frame_start, end))


def encode_frames(frames: list[bytes], *, command: bool = False) -> bytes:
    """ZMTP 3 frames for ``frames`` (one message; ``command``: each frame a command), as libzmq writes them."""
    out = bytearray()
    for index, frame in enumerate(frames):
        flags = (MORE if index < len(frames) - 1 and not command else 0) | (COMMAND if command else 0)
        if len(frame) > 255:
            out += struct.pack(">BQ", flags | LONG, len(frame))
        else:
            out += struct.pack(">BB", flags, len(frame))
        out += frame
    return bytes(out)


def greeting_bytes(mechanism: str = "NULL", *, as_server: bool = False, minor: int = 1) -> bytes:
    """A ZMTP 3.x greeting, as libzmq writes it (for tests and tools that speak ZMTP)."""
    return (
        b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, minor]) + mechanism.encode().ljust(20, b"\0")
        + bytes([int(as_server)]) + b"\0" * 31
    )  # fmt: skip


def command_bytes(name: str, data: bytes = b"") -> bytes:
    """A command frame: ``name`` and its data."""
    return encode_frames([bytes([len(name)]) + name.encode() + data], command=True)


def properties_bytes(properties: dict[str, bytes]) -> bytes:
    """READY's or INITIATE's metadata for ``properties``."""
    return b"".join(
        bytes([len(name)]) + name.encode() + struct.pack(">I", len(value)) + value for name, value in properties.items()
    )
