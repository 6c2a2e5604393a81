"""The transcript of a test: every message its mimic sockets sent and received, every process event, in order.

A failing test's report shows it as a sequence diagram in text, one column per
participant (the test, each mimic socket, each process under test)::

            ms  test  client  PongProc
                --- setup ---------------------------------------------------------------
       322.142  |     |       *   started: pid 13130, PongProc with forkserver
       436.923  |     |       *   ready: a connection on REQ socket 'client' connected to ...
                --- call ----------------------------------------------------------------
       437.930  |     o---------> ["ping",1]
       442.056  |     <---------- ["pong",1]
       449.974  |     o---------> ["ping","3"]
       450.627  |     <---------- ["error","bad request: ping takes an integer, got \\"3\\""]
       508.454  x---------------  call failed: AssertionError: assert [['error', 'b...

Recording is cheap, because it happens on every send and receive: one append of
a small tuple (a ``perf_counter`` stamp, the participant, the kind, the frames). All
formatting (decoding bodies for display, columns) happens when a report asks for it, so
frames are kept whole, to be decoded then, and the text cut to the line after decoding:
a msgpack or protobuf body cannot be decoded from its first bytes. What that holds is
bounded: frames up to :data:`KEPT_BYTES` are kept whole while the transcript's budget of
:data:`KEPT_TOTAL` bytes of frames longer than :data:`HEAD_BYTES` lasts; of the others
(longer, or past the budget) only the first :data:`HEAD_BYTES` and their length. Only
the last :data:`MAX_EVENTS` events are kept.

The transcript in force lives in a :class:`contextvars.ContextVar`: the pytest plugin
starts one per test (setting ``transcript``), and :meth:`ProcessTest.run
<zmqtest.runner.ProcessTest.run>` starts one for its own run when nothing records,
adding it to the error of a failed run. The same object tracks the mimic sockets made
during the test, for strict mode (:func:`unread`).

This module imports nothing heavy: the pytest plugin uses it in every run.
"""

from __future__ import annotations

import sys
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from operator import itemgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from zmqtest.codecs import Codec
    from zmqtest.sockets import TestSocket

from zmqtest.rendering import HEAD_BYTES, Clipped, More, codec_name, fit, show_message

__all__ = ["EventKind", "Transcript", "current", "failed", "for_run", "note", "recording"]

EventKind = Literal["send", "recv", "skipped", "error", "note", "wire", "phase"]
"""What an event is: a mimic's message sent, received, or passed over (``skipped``); a wait that failed; a note
(a process event, a log record, a test's or a tap's event); a message a tap saw (``wire``); a test phase."""

_perf_counter = perf_counter

KEPT_BYTES = 64 * 1024
"""A frame up to this long is kept whole, to be decoded for display (while :data:`KEPT_TOTAL` lasts)."""
KEPT_TOTAL = 16 * 1024 * 1024
"""Bytes of frames longer than :data:`HEAD_BYTES` one transcript keeps whole; past that, it keeps their heads."""
KEPT_FRAMES = 8
"""Of a message with more frames, the transcript keeps only this many (and how many more there were)."""
MAX_EVENTS = 1000
"""The transcript keeps the last this many events of a test."""
WIDTH = 120
"""Characters per line of the rendered transcript."""


class Mimic:
    """A mimic socket as a participant: it names the socket without keeping it alive."""

    __slots__ = ("_description", "_ref", "kind", "name")

    def __init__(self, sock: TestSocket) -> None:
        self._ref = weakref.ref(sock)
        self.kind: str = sock.type_name
        self.name: str | None = sock.name
        self._description = sock.describe()

    def describe(self) -> str:
        """The socket as it is now (endpoints, closed), or as it was when first seen if it is gone."""
        sock = self._ref()
        return sock.describe() if sock is not None else self._description


class Process:
    """A process under test as a participant, by name (events about it come from many places); or a peer that a
    tap saw (``tapped``) and nothing else named."""

    __slots__ = ("name", "tapped")

    def __init__(self, name: str, tapped: bool = False) -> None:
        self.name = name
        self.tapped = tapped


def kept(frames: Sequence[Any], whole: int = KEPT_BYTES) -> tuple[Any, ...]:
    """The frames of a message as the transcript keeps them: bytes up to ``whole`` long as they are (immutable),
    other buffers up to that long as copies, longer ones as their head and length."""
    if len(frames) <= KEPT_FRAMES:
        for frame in frames:
            if type(frame) is not bytes or len(frame) > whole:
                break
        else:
            return tuple(frames)  # the common case: a few bytes frames, immutable, kept as they are
    clipped: tuple[Any, ...] = tuple(_clip(frame, whole) for frame in frames[:KEPT_FRAMES])
    if len(frames) > KEPT_FRAMES:
        clipped += (More(len(frames) - KEPT_FRAMES),)
    return clipped


def _clip(frame: Any, whole: int) -> bytes | Clipped:
    """A copy of ``frame`` (bytes, bytearray, memoryview, zmq.Frame): whole up to ``whole`` bytes, else its head."""
    if type(frame) is bytes:
        return frame if len(frame) <= whole else Clipped(frame[:HEAD_BYTES], len(frame))
    if isinstance(frame, Clipped):  # clipped already (by a tap's parser)
        return frame
    try:
        view = memoryview(frame)
    except TypeError:  # not a buffer: keep its text, which is all a reader gets anyway
        text = repr(frame).encode()
        return Clipped(text[:HEAD_BYTES], len(text)) if len(text) > whole else text
    size = view.nbytes
    flat = view.cast("B") if view.ndim else memoryview(view.tobytes())
    return flat.tobytes() if size <= whole else Clipped(flat[:HEAD_BYTES].tobytes(), size)


class Transcript:
    """The events of one test, and the mimic sockets made during it.

    ``events`` holds ``(perf_counter stamp, participant, kind, data)`` tuples, kinds
    ``send``/``recv`` (data: the kept frames), ``error`` (a wait that failed: its
    text), ``note`` (a process event, a log record, a test event, a mimic's own
    event: its text) and
    ``phase`` (setup, call, teardown). ``recording`` is False when only the sockets
    are tracked (strict mode with the transcript off). ``whole`` keeps every frame of
    every message whole, unbounded (a recording to replay, :mod:`zmqtest.replay`).
    """

    def __init__(
        self, *, recording: bool = True, codec: Codec | None = None, max_events: int = MAX_EVENTS, whole: bool = False
    ) -> None:
        self.began = perf_counter()
        self.recording = recording
        self.whole = whole
        """Keep every frame of every message whole (a recording to replay), not just what a report needs."""
        self.codec = codec
        self.events: deque[tuple[float, Any, EventKind, Any]] = deque(maxlen=max_events)
        self._append = self.events.append
        self.sockets: weakref.WeakSet[TestSocket] = weakref.WeakSet()
        self._processes: dict[str, Process] = {}
        self._budget = KEPT_TOTAL
        """Bytes of frames longer than HEAD_BYTES still to keep whole (never given back: a bound, not a tally)."""

    # --- recording (hot: called on every send and receive) ----------------------------------------------------------

    def message(self, sock: TestSocket, kind: EventKind, frames: Sequence[Any], at: float | None = None) -> None:
        """Record the frames ``sock`` sent (``kind`` ``"send"``) or received (``"recv"``) at ``at`` (default: now)."""
        if self.recording:
            who = sock.__dict__["_who"] or self.mimic(sock)
            if at is None:
                at = _perf_counter()
            if len(frames) == 1:  # the common case, inlined: one short bytes frame, immutable, kept as it is
                frame = frames[0]
                if type(frame) is bytes and len(frame) <= HEAD_BYTES:
                    self._append((at, who, kind, (frame,)))
                    return
            if self.whole:
                self._append((at, who, kind, tuple(_clip(frame, sys.maxsize) for frame in frames)))
                return
            stored = kept(frames, KEPT_BYTES if self._budget > 0 else HEAD_BYTES)
            for frame in stored:
                if type(frame) is bytes and len(frame) > HEAD_BYTES:
                    self._budget -= len(frame)
            self._append((at, who, kind, stored))

    def mimic(self, sock: TestSocket) -> Mimic:
        """The participant that ``sock`` is (made when it first sends or receives)."""
        who = sock.__dict__["_who"] = Mimic(sock)
        return who

    def error(self, sock: TestSocket, text: str) -> None:
        """Record a send or receive of ``sock`` that failed (a timeout, a death, a ZMQ error)."""
        if self.recording:
            self.events.append((perf_counter(), sock.__dict__["_who"] or self.mimic(sock), "error", text))

    def skipped(self, sock: TestSocket) -> None:
        """Mark the last message ``sock`` received as skipped (``recv(sock, skip=...)`` passed over it)."""
        who = sock.__dict__["_who"]
        events = self.events
        for back in range(1, min(len(events), 8) + 1):  # it is the last event, unless another thread noted since
            stamp, participant, kind, data = events[-back]
            if participant is who and kind == "recv":
                events[-back] = (stamp, participant, "skipped", data)
                return

    def note_on(self, sock: TestSocket, what: str) -> None:
        """Record an event of mimic ``sock`` other than a message (a REQ that started over on a new connection)."""
        if self.recording:
            self.events.append((perf_counter(), sock.__dict__["_who"] or self.mimic(sock), "note", what))

    def note(self, who: str | None, what: str, *, at: float | None = None) -> None:
        """Record an event of process ``who`` (``None``: of the test itself) that happened now, or ``at`` then."""
        if self.recording:
            participant = None if who is None else self._process(who)
            self.events.append((perf_counter() if at is None else at, participant, "note", what))

    def wire(
        self, source: str, target: str, what: Sequence[Any] | str, *, at: float | None = None, mark: str = ""
    ) -> None:
        """Record a message (its frames) or a command (its text) that ``source`` sent ``target`` (seen by a tap).

        ``mark`` comes before it (``"(dropped by the tap)"``). Safe from any thread.
        """
        if self.recording:
            data: tuple[Any, ...] | str = what if isinstance(what, str) else self._kept_wire(what)
            stamp = perf_counter() if at is None else at
            who, target_who = self._process(source, True), self._process(target, True)
            self.events.append((stamp, who, "wire", (target_who, data, mark)))

    def _process(self, name: str, tapped: bool = False) -> Process:
        participant = self._processes.get(name)
        if participant is None:
            participant = self._processes.setdefault(name, Process(name, tapped))
        elif not tapped:
            participant.tapped = False  # a process under test by that name (its events came after the tap's)
        return participant

    def _kept_wire(self, frames: Sequence[Any]) -> tuple[Any, ...]:
        if self.whole:  # a recording to replay: every frame, whole
            return tuple(_clip(frame, sys.maxsize) for frame in frames)
        stored = kept(frames, KEPT_BYTES if self._budget > 0 else HEAD_BYTES)
        for frame in stored:
            if type(frame) is bytes and len(frame) > HEAD_BYTES:
                self._budget -= len(frame)
        return stored

    def phase(self, name: str) -> None:
        """Mark the start of a phase of the test (setup, call, teardown)."""
        if self.recording:
            self.events.append((perf_counter(), None, "phase", name))

    # --- rendering (cold: only for a report) ------------------------------------------------------------------------

    def eventful(self) -> bool:
        """Whether anything happened besides the phases of the test (no zmq, no processes: nothing to show)."""
        return any(kind != "phase" for _, _, kind, _ in self.events)

    def render(self, *, outcome: str | None = None, width: int = WIDTH) -> str:
        """The transcript as a sequence diagram in text, ``width`` characters wide; ``outcome`` ends it."""
        # a snapshot (another thread may still note a log record), in time order (a record is noted when it arrives)
        events = sorted(self.events, key=itemgetter(0))
        return _Diagram(self, events, width).render(outcome)


# --- the transcript in force -----------------------------------------------------------------------------------------

_current: ContextVar[Transcript | None] = ContextVar("zmqtest_transcript", default=None)
_latest: list[Transcript] = []
"""The transcripts started and not yet ended, latest last: where :func:`note` records from other threads."""


current = _current.get
"""``current()``: the transcript in force, or ``None`` when nothing records (a C call: it runs on every send)."""


@contextmanager
def recording(transcript: Transcript | None = None) -> Iterator[Transcript]:
    """Make ``transcript`` (default: a new one) the one in force inside the ``with`` block."""
    if transcript is None:
        transcript = Transcript()
    token = _current.set(transcript)
    _latest.append(transcript)
    try:
        yield transcript
    finally:
        _current.reset(token)
        _latest.remove(transcript)


@contextmanager
def for_run(codec: Codec) -> Iterator[None]:
    """Where :meth:`ProcessTest.run <zmqtest.runner.ProcessTest.run>` records: the test's transcript, else its own.

    Under the pytest plugin, the test's transcript is told ``codec`` (to decode
    bodies for display). Without it (library use), the run records in a transcript
    of its own, added to the error of a failed run; unless the ``transcript``
    setting is ``never``.
    """
    transcript = _current.get()
    if transcript is not None:
        transcript.codec = codec
        yield
        return
    from zmqtest.settings import current as settings

    if settings().transcript == "never":
        yield
        return
    with recording(Transcript(codec=codec)) as own:
        try:
            yield
        except Exception as failure:
            from zmqtest.errors import add_context  # here: it imports pyzmq

            add_context(failure, "zmqtest transcript:\n" + own.render(outcome=f"run failed: {type(failure).__name__}"))
            raise


def note(who: str | None, what: str, *, at: float | None = None) -> None:
    """Record an event of participant `who` (e.g. a process name) in the current transcript; no-op when nothing records.

    ``who=None`` records an event of the test itself. ``at``: when it happened, as a
    :func:`time.perf_counter` value, if not now (a log record that arrives later).

    Safe to call from any thread: a thread that does not run in the test's context
    (say, one that receives the log records of a process) records in the transcript
    started last.
    """
    transcript = _current.get()
    if transcript is None:
        if not _latest:
            return
        transcript = _latest[-1]
    transcript.note(who, what, at=at)


def failed(what: str) -> None:
    """Record a wait of the test itself that failed (``wait_until``, a connection wait) in the current transcript."""
    transcript = _current.get()
    if transcript is not None and transcript.recording:
        transcript.events.append((perf_counter(), None, "error", what))


def track(sock: TestSocket) -> None:
    """Remember a mimic socket made during the test (weakly), for strict mode."""
    transcript = _current.get()
    if transcript is not None:
        transcript.sockets.add(sock)


# --- strict mode -----------------------------------------------------------------------------------------------------


def _millis(seconds: float) -> str:
    return f"{seconds * 1000:10.3f}"


_GLYPHS: dict[str, tuple[str, str | None, str | None]] = {
    "send": ("o", "-", ">"),
    "recv": ("<", "-", "-"),
    "error": ("x", "-", " "),
    "note": ("*", None, None),
}
"""Per kind: the mark on the participant's line, what fills the way to the text (``None``: the other lines go on),
and the last character before the text."""


class _Diagram:
    """Lays out a transcript: a time column, one line per participant, then the text of each event."""

    LABEL = 12
    """Longest column label; longer names are cut (the legend has them whole)."""

    def __init__(self, transcript: Transcript, events: list[tuple[float, Any, EventKind, Any]], width: int) -> None:
        self.transcript = transcript
        self.events = events
        self.width = width
        mimics: dict[Mimic, None] = {}
        processes: dict[Process, None] = {}
        for _, who, kind, data in events:
            if isinstance(who, Mimic):
                mimics.setdefault(who)
            elif isinstance(who, Process):
                processes.setdefault(who)
                if kind == "wire":
                    processes.setdefault(data[0])
        self.participants: list[Mimic | Process | None] = [None, *mimics, *processes]
        self.labels = self._labels()
        self.columns: dict[Any, int] = {}
        position = 0
        for participant, label in zip(self.participants, self.labels, strict=True):
            self.columns[participant] = position
            position += len(label) + 2
        self.lanes = max(self.columns.values()) + 3  # the last line, and room for an arrow's head

    def _labels(self) -> list[str]:
        labels = ["test"]
        taken = {"test": 1}
        for participant in self.participants[1:]:
            if isinstance(participant, Mimic):
                label = participant.name or participant.kind
            else:
                assert participant is not None
                label = participant.name
            label = label[: self.LABEL]
            taken[label] = taken.get(label, 0) + 1
            if taken[label] > 1:
                label = f"{label[: self.LABEL - 3]}#{taken[label]}"
            labels.append(label)
        return labels

    def render(self, outcome: str | None) -> str:
        transcript = self.transcript
        codec = transcript.codec
        count = sum(kind != "phase" for _, _, kind, _ in self.events)
        span = (self.events[-1][0] - transcript.began) if self.events else 0.0
        decoded = (
            f"bodies decoded with {codec_name(codec)}"
            if codec is not None
            else "bodies shown as JSON where they are JSON"
        )
        lines = [
            f"{count} events in {span:.3f} s (times in ms since the test began); {decoded}",
            "o--> sent   <--- received   x failed   * process event",
        ]
        if transcript.events.maxlen is not None and len(self.events) >= transcript.events.maxlen:
            lines.append(f"(only the last {len(self.events)} events are kept; earlier ones were dropped)")
        for participant, label in zip(self.participants[1:], self.labels[1:], strict=True):
            if isinstance(participant, Mimic):
                lines.append(f"  {label:<{self.LABEL}}  {participant.describe()}")
            elif isinstance(participant, Process):
                whole = f" {participant.name!r}" if participant.name != label else ""
                what = "a peer seen through a tap" if participant.tapped else "process under test"
                lines.append(f"  {label:<{self.LABEL}}  {what}{whole}")
        lines.append((f"{'ms':>10}  " + "  ".join(self.labels)).rstrip())
        for stamp, who, kind, data in self.events:
            if kind == "phase":
                lines.append(f"{'':10}  --- {data} ".ljust(self.width, "-"))
                continue
            if kind == "wire":
                target, what, mark = data
                text = what if isinstance(what, str) else show_message(what, codec, self.width)
                text = f"{mark} {text}" if mark else text
                lines.append(
                    self._wire(_millis(stamp - transcript.began), self.columns[who], self.columns[target], text)
                )
                continue
            skipped = kind == "skipped"  # a received message the test passed over (recv's skip=): marked so
            if skipped:
                kind = "recv"
            text = show_message(data, codec, self.width) if kind in ("send", "recv") else str(data)
            if skipped:
                text = f"(skipped) {text}"
            lines.append(self._row(_millis(stamp - transcript.began), self.columns.get(who, 0), kind, text))
        if outcome is not None:
            lines.append(self._row(_millis(perf_counter() - transcript.began), 0, "error", outcome))
        return "\n".join(lines)

    def _wire(self, time: str, source: int, target: int, text: str) -> str:
        """A message between two processes, seen by a tap: an arrow from the sender's line to the receiver's."""
        lanes = [" "] * self.lanes
        for position in self.columns.values():
            if position < self.lanes:
                lanes[position] = "|"
        low, high = sorted((source, target))
        for position in range(low + 1, high):
            lanes[position] = "-"
        lanes[source] = "o"
        lanes[target] = "|"
        lanes[target - 1 if target > source else target + 1] = ">" if target > source else "<"
        row = f"{time}  {''.join(lanes)} "
        return row + fit(text, self.width - len(row))

    def _row(self, time: str, column: int, kind: str, text: str) -> str:
        mark, fill, last = _GLYPHS[kind]
        lanes = [" "] * self.lanes
        for position in self.columns.values():
            if position < self.lanes:
                lanes[position] = "|"
        lanes[column] = mark
        if fill is not None:
            for position in range(column + 1, self.lanes):
                lanes[position] = fill
        if last is not None and column + 1 < self.lanes:
            lanes[-1] = last
        row = f"{time}  {''.join(lanes)} "
        return row + fit(text, self.width - len(row))
