"""A transcript as data: JSON Lines that tools (and :mod:`zmqtest.sequencehtml`) read back.

The first line is a header, one object per event follows, in time order::

    {"zmqtest_transcript": 1, "test": "test_app.py::test_ping", "codec": "JsonCodec()",
     "outcome": "call failed: AssertionError: ...", "written": "2026-12-03T23:41:07Z",
     "participants": [{"id": "test", "role": "test", "description": "the test itself"},
                      {"id": "client", "role": "mimic", "description": "REQ socket 'client' connected to ..."},
                      {"id": "PongProc", "role": "process", "description": "process under test"}]}
    {"t": 0.1272, "who": "PongProc", "kind": "note", "text": "started: pid 14333, PongProc with forkserver"}
    {"t": 0.2343, "who": "client", "kind": "send", "direction": "out",
     "frames": [{"b64": "WyJwaW5nIiwgMV0="}], "body": ["ping", 1], "text": "[\\"ping\\", 1]"}

``t`` is seconds since the test began; ``kind`` is one of ``send``, ``recv``, ``skipped``
(a received message that ``recv(skip=...)`` passed over), ``error``, ``note``, ``phase`` and
``wire`` (what a :mod:`tap <zmqtest.tap>` saw ``who`` send ``to``: a message's ``frames``, or
a command's ``text``).
A message's ``frames`` are what the transcript kept, base64: whole up to 64 KiB (while the
transcript's budget lasts), else the first 256 bytes with ``"size"`` (the whole length) and
``"clipped": true``; ``{"more": N}`` stands for frames past the 8th. ``body`` is the last
frame as the test's codec decodes it, where it decodes and where the codec is safe to run on
peer data (JSON by default); ``body_repr`` its repr where the result is not JSON.

The file holds what the transcript kept, not more: recording runs on every send of
every test, and keeping every frame whole would make a test that moves large messages
hold them all; the file of a failing test is for reading. A recording made to be
replayed keeps whole frames (``Transcript(whole=True)``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, get_args

from zmqtest.rendering import Clipped, More, codec_name, show_message
from zmqtest.transcript import EventKind, Mimic, Process, Transcript

if TYPE_CHECKING:
    from zmqtest.codecs import Codec

__all__ = ["FORMAT", "Event", "EventKind", "Participant", "Recorded", "dump", "file_name", "load", "loads", "write"]

FORMAT = 1
"""The version of the file's layout, in the header's ``zmqtest_transcript``."""
TEXT_WIDTH = 2000
"""Characters of a message's ``text`` (as the transcript's diagram would show it, uncut up to this)."""
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
MESSAGES: tuple[EventKind, ...] = ("send", "recv", "skipped")

Frame = bytes | Clipped | More


@dataclasses.dataclass(frozen=True)
class Participant:
    """Who an event is about: ``test`` (the test itself), a ``mimic`` socket, a ``process`` under test."""

    id: str
    role: str
    description: str
    socket_type: str | None = None
    """A mimic's socket type (``REQ``, ``ROUTER``...), to make one like it for a replay."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One event: ``at`` seconds since the test began; ``frames`` for messages, ``text`` for all."""

    at: float
    """Seconds since the test began, to the microsecond."""
    who: str
    kind: EventKind
    text: str
    frames: tuple[Frame, ...] = ()
    body: Any = None
    body_repr: str | None = None
    to: str | None = None
    """Of a ``wire`` event: the participant it went to."""

    @property
    def direction(self) -> str | None:
        """``out`` for a message the mimic sent, ``in`` for one it received; ``None`` for other events."""
        return {"send": "out", "recv": "in", "skipped": "in"}.get(self.kind)

    def whole_frames(self) -> list[bytes]:
        """The message's frames, each as sent; a ValueError if the transcript kept one only in part (a recording
        to replay keeps every frame whole: :func:`zmqtest.replay.record`)."""
        for frame in self.frames:
            if type(frame) is not bytes:
                raise ValueError(
                    f"the recorded message {self.text!r} of {self.who} at {self.at:.6f} s "
                    f"was not kept whole ({frame!r})"
                )
        return list(self.frames)  # type: ignore[arg-type]  # all bytes, checked above


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A transcript as plain data: the header's fields, the participants, the events in time order."""

    test: str | None
    codec: str | None
    outcome: str | None
    participants: tuple[Participant, ...]
    events: tuple[Event, ...]
    written: str = ""

    @classmethod
    def of(cls, transcript: Transcript, *, test: str | None = None, outcome: str | None = None) -> Recorded:
        """A snapshot of ``transcript`` (another thread may still add to it)."""
        codec = transcript.codec
        ids: dict[Any, str] = {None: "test"}
        participants = [Participant("test", "test", "the test itself")]
        taken = {"test"}
        events = []
        for stamp, who, kind, data in sorted(transcript.events, key=itemgetter(0)):
            for someone in (who, data[0]) if kind == "wire" else (who,):  # a tap's message: its receiver too
                if someone in ids:
                    continue
                base, role, description, socket_type = _described(someone)
                label, count = base, 1
                while label in taken:
                    count += 1
                    label = f"{base}#{count}"
                taken.add(label)
                ids[someone] = label
                participants.append(Participant(label, role, description, socket_type))
            events.append(_event(round(stamp - transcript.began, 6), ids[who], kind, data, codec, ids))
        ranks = {"test": 0, "mimic": 1, "process": 2}  # the text diagram's order: the test, mimics, processes
        participants.sort(key=lambda participant: ranks.get(participant.role, 3))
        return cls(
            test=test,
            codec=None if codec is None else codec_name(codec),
            outcome=outcome,
            participants=tuple(participants),
            events=tuple(events),
            written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )

    def messages(self, who: str | None = None) -> list[Event]:
        """The messages (sent, received, skipped), of participant ``who`` only if given."""
        return [e for e in self.events if e.kind in MESSAGES and (who is None or e.who == who)]


def _described(who: Any) -> tuple[str, str, str, str | None]:
    """A participant's name, role, description and socket type (a mimic's)."""
    if isinstance(who, Mimic):
        return who.name or who.kind, "mimic", who.describe(), who.kind
    if isinstance(who, Process):
        return who.name, "process", "a peer seen through a tap" if who.tapped else "process under test", None
    # a participant of a kind this module does not know yet: by its name
    base = str(getattr(who, "name", None) or type(who).__name__)
    describe = getattr(who, "describe", None)
    return base, type(who).__name__.lower(), str(describe()) if callable(describe) else base, None


def _event(at: float, who: str, kind: EventKind, data: Any, codec: Codec | None, ids: dict[Any, str]) -> Event:
    if kind == "wire":  # (receiver, frames or text, mark): what a tap saw
        target, what, mark = data
        prefix = f"{mark} " if mark else ""
        if isinstance(what, str):
            return Event(at, who, kind, prefix + what, to=ids[target])
        frames = tuple(what)
        body, body_repr = _body(frames, codec)
        text = prefix + show_message(frames, codec, TEXT_WIDTH)
        return Event(at, who, kind, text, frames, body, body_repr, ids[target])
    if kind not in MESSAGES:
        return Event(at, who, kind, str(data))
    frames = tuple(data)
    body, body_repr = _body(frames, codec)
    return Event(at, who, kind, show_message(frames, codec, TEXT_WIDTH), frames, body, body_repr)


def _body(frames: tuple[Frame, ...], codec: Codec | None) -> tuple[Any, str | None]:
    """The last frame decoded (as the transcript's display would decode it), as JSON if it is JSON, else its repr."""
    if not frames or type(frames[-1]) is not bytes:
        return None, None
    frame = frames[-1]
    if codec is None or getattr(codec, "name", None) == "json":
        try:
            return json.loads(frame), None
        except ValueError:
            return None, None
    if not getattr(codec, "safe_to_render", False):
        return None, None  # a codec that may run code on peer data (pickle) is not run on it
    try:
        value = codec.decode(frame)
    except Exception:
        return None, None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None, repr(value)
    return value, None


# --- writing ---------------------------------------------------------------------------------------------------------


def _frame(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, More):
        return {"more": frame.left}
    if isinstance(frame, Clipped):
        return {"b64": base64.b64encode(frame.head).decode("ascii"), "size": frame.size, "clipped": True}
    return {"b64": base64.b64encode(frame).decode("ascii")}


def lines(recorded: Recorded) -> Iterator[str]:
    """The file's lines, without their line ends: the header, then the events."""
    header = {
        "zmqtest_transcript": FORMAT,
        "test": recorded.test,
        "codec": recorded.codec,
        "outcome": recorded.outcome,
        "written": recorded.written,
        "participants": [dataclasses.asdict(p) for p in recorded.participants],
    }
    yield json.dumps(header)
    for event in recorded.events:
        row: dict[str, Any] = {"t": event.at, "who": event.who, "kind": event.kind}
        if event.to is not None:
            row["to"] = event.to
        if event.kind in MESSAGES or event.frames:
            row["direction"] = event.direction
            row["frames"] = [_frame(frame) for frame in event.frames]
            if event.body is not None:
                row["body"] = event.body
            if event.body_repr is not None:
                row["body_repr"] = event.body_repr
        row["text"] = event.text
        yield json.dumps(row)


def dump(recorded: Recorded, out: IO[str]) -> None:
    """Write ``recorded`` as JSON Lines to the text file ``out``."""
    for line in lines(recorded):
        out.write(line + "\n")


def write(recorded: Recorded, path: str | os.PathLike[str]) -> Path:
    """Write ``recorded`` to ``path`` whole or not at all (a temporary file, then renamed); its parent is made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:80]}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            dump(recorded, out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME_LENGTH = 120
"""Characters of a test id kept in its file's name (a hash of the whole id follows)."""


def file_name(nodeid: str) -> str:
    """The file name for test ``nodeid``: readable, safe on any file system, distinct for distinct ids.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, and a hash of the
    whole id follows, so ``a/b`` and ``a_b`` (and ids cut short) never share a file.
    """
    readable = _UNSAFE.sub("_", nodeid).strip("._")[:NAME_LENGTH] or "test"
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:10]
    return f"{readable}-{digest}.jsonl"


# --- reading ---------------------------------------------------------------------------------------------------------


class FormatError(ValueError):
    """A file that is not a zmqtest transcript (or of a later layout); the message names the line."""


def load(path: str | os.PathLike[str]) -> Recorded:
    """Read a transcript file back."""
    with open(path, encoding="utf-8") as lines_in:
        return loads(lines_in, where=str(path))


def loads(text: str | Iterable[str], *, where: str = "<transcript>") -> Recorded:
    """Read a transcript from its text (or its lines); ``where`` names it in errors."""
    rows = text.splitlines() if isinstance(text, str) else text
    header: dict[str, Any] | None = None
    events: list[Event] = []
    for number, line in enumerate(rows, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if header is None:
                header = _header(row)
            else:
                events.append(_read_event(row))
        except (ValueError, KeyError, TypeError) as problem:
            raise FormatError(
                f"{where}:{number}: not a zmqtest transcript line ({type(problem).__name__}: {problem})"
            ) from None
    if header is None:
        raise FormatError(f"{where}: empty: no header line")
    return Recorded(
        test=header.get("test"),
        codec=header.get("codec"),
        outcome=header.get("outcome"),
        participants=tuple(Participant(**p) for p in header["participants"]),
        events=tuple(events),
        written=header.get("written", ""),
    )


def _header(row: Any) -> dict[str, Any]:
    version = row.get("zmqtest_transcript") if isinstance(row, dict) else None
    if version is None:
        raise ValueError("the first line has no 'zmqtest_transcript' version")
    if version != FORMAT:
        raise ValueError(f"layout version {version!r}; this zmqtest reads version {FORMAT}")
    return dict(row)


def _read_event(row: dict[str, Any]) -> Event:
    kind = row["kind"]
    if kind not in EVENT_KINDS:
        raise ValueError(f"an event of kind {kind!r}: the kinds are {', '.join(EVENT_KINDS)}")
    if kind not in MESSAGES and "frames" not in row:
        return Event(float(row["t"]), row["who"], kind, row["text"], to=row.get("to"))
    return Event(
        float(row["t"]),
        row["who"],
        kind,
        row["text"],
        tuple(_read_frame(frame) for frame in row["frames"]),
        row.get("body"),
        row.get("body_repr"),
        row.get("to"),
    )


def _read_frame(frame: dict[str, Any]) -> Frame:
    if "more" in frame:
        return More(int(frame["more"]))
    data = base64.b64decode(frame["b64"], validate=True)
    return Clipped(data, int(frame["size"])) if frame.get("clipped") else data
