"""Record a conversation of mimic sockets, and replay it as a regression test.

:func:`record` keeps every frame whole while a test talks to the process under test, and
writes the conversation to a transcript file (:mod:`zmqtest.transcriptfile`). :func:`replay`
plays the mimics' side of that file against a process under test (the same program, a new
version of it): it sends what the mimics sent, in order, receives where they received, and
checks that the process answers with the same messages, up to a :class:`~zmqtest.golden.Normaliser`
(the golden files' built-ins: ports, pids, times, temporary and ipc paths; plus the user's
rules). A mismatch raises :class:`ReplayMismatch` with a diff of the conversation, one line
per message, the recorded one against the one just seen.

A ROUTER mimic addresses its peers by routing id, and a peer's id changes from run to run:
the replay maps each id the recording received to the one received now in its place,
sends to the new one, and shows both as ``<ID1>``, ``<ID2>``... in the diff.

A recording of two real processes seen through a :class:`~zmqtest.tap.Tap` (made inside the
``record()`` block) replays too: one mimic plays one tapped peer's side, its messages turned
from wire frames into a socket's (:mod:`zmqtest.tapreplay`).
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from zmqtest.errors import ZmqTestError
from zmqtest.rendering import show_frame
from zmqtest.tapreplay import PlayedSide, TapReplayError, is_tap_recording, played_side, tapped_peers
from zmqtest.transcript import Transcript, recording
from zmqtest.transcriptfile import Event, Recorded, load, write

if TYPE_CHECKING:
    from zmqtest.codecs import Codec
    from zmqtest.golden import Normaliser
    from zmqtest.sockets import TestSocket

__all__ = ["Recordings", "ReplayError", "ReplayMismatch", "record", "replay"]

RECORDED_EVENTS = 1_000_000
"""Events a recording keeps (a report's transcript keeps the last 1,000)."""


class ReplayError(ZmqTestError):
    """A recording that cannot be replayed as asked (a socket missing, frames not kept whole)."""


class ReplayMismatch(ZmqTestError, AssertionError):
    """The process under test did not answer as recorded; the message has the diff (``expected``, ``actual``)."""

    def __init__(self, message: str, *, expected: list[str], actual: list[str]) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


@contextmanager
def record(
    path: str | os.PathLike[str], *, test: str | None = None, codec: Codec | None = None
) -> Iterator[Transcript]:
    """Record what the mimic sockets send and receive inside the ``with`` block, frames whole, to ``path``.

    The file is written when the block ends without an error (a failed conversation is no reference).
    Inside the block this transcript is the one in force: the test's own (under the pytest plugin) does
    not see those messages.
    """
    with recording(Transcript(whole=True, codec=codec, max_events=RECORDED_EVENTS)) as transcript:
        yield transcript
    recorded = Recorded.of(transcript, test=test)
    if not recorded.messages() and not any(event.frames for event in recorded.events if event.kind == "wire"):
        raise ReplayError(
            f"nothing to write to {os.fspath(path)}: no mimic socket sent or received a message in the record() block, "
            "and no tap recorded one into it (a Tap records into the transcript in force when it is made: make it "
            "inside the block, or pass Tap(..., transcript=<what record() yields>))"
        )
    write(recorded, path)


def replay(
    source: str | os.PathLike[str] | Recorded,
    sockets: Iterable[TestSocket],
    *,
    normaliser: Normaliser | None = None,
    substitutions: Iterable[tuple[str, str]] = (),
    skip: Callable[[list[bytes]], bool] | None = None,
    timeout: float | None = None,
    codec: Codec | None = None,
    leave_out: Iterable[str] = (),
    play: str | None = None,
) -> list[str]:
    """Play the mimics' side of a recorded conversation with ``sockets`` and check the answers.

    ``sockets`` are mimics made like the recorded ones, matched by name (or by type where unnamed), already
    connected to (or bound for) the process under test; ``leave_out`` names recorded mimics not to play (the
    test's other side, say). Each recorded send is sent as it was; each recorded
    receive is a receive (``timeout``: the socket's own by default) whose message must be the recorded one,
    once both are normalised: by ``normaliser`` (default: the golden files' built-ins) and then
    ``substitutions``, ``(regex, replacement)`` pairs of the user's. ``skip`` passes over live messages for
    which it is true (heartbeats); messages the recording itself skipped are not expected. Bodies read as
    JSON where they are JSON, else as bytes (``codec``: a codec with ``safe_to_render`` to decode them).

    Returns the conversation as normalised (one line per message); raises :class:`ReplayMismatch` with a
    diff of it against the recording, :class:`ReplayError` if the recording cannot be played with these sockets.

    A tap's recording (two processes seen through a :class:`~zmqtest.tap.Tap`) is played from one tapped
    peer's side: ``play`` names it, or else the one socket named as a tapped peer is matched with it.
    """
    __tracebackhide__ = True
    recorded = source if isinstance(source, Recorded) else load(source)
    where = os.fspath(source) if not isinstance(source, Recorded) else f"the recording of {recorded.test or 'a test'}"
    sockets = list(sockets)
    if is_tap_recording(recorded):
        side = _one_side(recorded, play, sockets, where)
        recorded = side.recorded
        matched = {side.peer: _playing(side, sockets, where)}
    elif play is not None:
        raise ReplayError(f"replay(play={play!r}) plays a tap's recording; {where} is a mimic's: use leave_out=[...]")
    else:
        matched = _match(recorded, sockets, set(leave_out), where)
    from zmqtest.golden import Normaliser  # here: golden imports the command runner

    normalise: Callable[[str], str] = Normaliser() if normaliser is None else normaliser
    user = list(substitutions)
    if user:
        normalise = _Chain(normalise, Normaliser(user, builtins=False))
    player = _Player(recorded, matched, normalise, skip, timeout, codec)
    expected, actual, stopped = player.play()
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                [line + "\n" for line in expected],
                [line + "\n" for line in actual],
                f"{where} (recorded)",
                "the process under test (now)",
            )
        )
        stop = f"\n{stopped}" if stopped else ""
        raise ReplayMismatch(
            f"replay of {where}: the process under test did not answer as recorded "
            f"(- recorded, + now; one line per message, normalised):\n{diff}{stop}",
            expected=expected,
            actual=actual,
        )
    return actual


class Recordings:
    """Recorded conversations in one directory, kept as golden files are: what the ``zmq_replay`` fixture is.

    ``recordings("greeting", client, substitutions=...)`` replays ``<directory>/greeting.jsonl`` with
    the mimics given (:func:`replay`'s options); ``with recordings.record("greeting"):`` records it.
    ``updating`` is the golden files' update setting (``--zmqtest-update-golden``): a test records
    when it is on and replays otherwise, so the recording is a reference the run checks against::

        if zmq_replay.updating:
            with zmq_replay.record("greeting"):
                talk_to(client)
        else:
            zmq_replay("greeting", client)
    """

    def __init__(self, directory: str | os.PathLike[str], *, updating: bool = False, test: str | None = None) -> None:
        self.directory = os.fspath(directory)
        self.updating = updating
        self.test = test

    def path(self, name: str) -> str:
        """The file of the recording ``name`` (``.jsonl`` added unless given)."""
        return os.path.join(self.directory, name if name.endswith(".jsonl") else f"{name}.jsonl")

    def record(self, name: str, *, codec: Codec | None = None) -> contextlib.AbstractContextManager[Transcript]:
        """Record the block's conversation to the recording ``name`` (see :func:`record`)."""
        os.makedirs(self.directory, exist_ok=True)
        return record(self.path(name), test=self.test, codec=codec)

    def __call__(self, name: str, *sockets: TestSocket, **options: Any) -> list[str]:
        """Replay the recording ``name`` with ``sockets`` (see :func:`replay` for ``options``)."""
        __tracebackhide__ = True
        path = self.path(name)
        if not os.path.exists(path):
            raise ReplayError(
                f"no recording {path}: record it with --zmqtest-update-golden (the test records under "
                "`with zmq_replay.record(name):` when zmq_replay.updating is true)"
            )
        return replay(path, sockets, **options)

    def __repr__(self) -> str:
        return f"<Recordings in {self.directory}{' (updating)' if self.updating else ''}>"


def _one_side(recorded: Recorded, play: str | None, sockets: list[TestSocket], where: str) -> PlayedSide:
    """The side of the tapped peer ``play`` (else: the one a socket is named after) as a mimic's recording."""
    __tracebackhide__ = True
    if play is None:
        peers = tapped_peers(recorded)
        named = [sock.name for sock in sockets if sock.name in peers]
        if len(named) != 1:
            given = ", ".join(sock.describe() for sock in sockets) or "none"
            raise ReplayError(
                f"replay of {where}: a tap's recording is played from one tapped peer's side ({', '.join(peers)}): "
                f"name it with play=..., or give one socket named after it; given: {given}"
            )
        play = str(named[0])
    try:
        return played_side(recorded, play, where=where)
    except TapReplayError as error:
        raise ReplayError(str(error)) from None


def _playing(side: PlayedSide, sockets: list[TestSocket], where: str) -> TestSocket:
    """The socket named as the tapped peer, else the one unnamed socket of its type."""
    __tracebackhide__ = True
    named = [sock for sock in sockets if sock.name == side.peer]
    unnamed = [sock for sock in sockets if not sock.name and sock.type_name == side.socket_type]
    if named or len(unnamed) == 1:
        return (named or unnamed)[0]
    given = ", ".join(sock.describe() for sock in sockets) or "none"
    raise ReplayError(
        f"replay of {where}: no socket to play the tapped peer {side.peer!r} (a {side.socket_type} socket): "
        f"name one {side.peer!r}; given: {given}"
    )


class _Chain:
    """Two normalisers, one after the other."""

    def __init__(self, *steps: Callable[[str], str]) -> None:
        self.steps = steps

    def __call__(self, text: str) -> str:
        for step in self.steps:
            text = step(text)
        return text


def _match(recorded: Recorded, sockets: list[TestSocket], leave_out: set[str], where: str) -> dict[str, TestSocket]:
    """The live socket of each recorded mimic that has messages: by name, else by type; every one must have one."""
    needed = [
        p for p in recorded.participants if p.role == "mimic" and p.id not in leave_out and recorded.messages(p.id)
    ]
    by_name = {sock.name: sock for sock in sockets if sock.name}
    matched: dict[str, TestSocket] = {}
    missing = []
    for participant in needed:
        sock = by_name.get(participant.id)
        if sock is None:
            kind = participant.id.partition("#")[0]  # an unnamed mimic goes by its type: DEALER, DEALER#2
            unnamed = [s for s in sockets if not s.name and s.type_name == kind and s not in matched.values()]
            sock = unnamed[0] if unnamed else None
        if sock is None:
            missing.append(f"{participant.id!r} ({participant.description})")
        else:
            matched[participant.id] = sock
    if missing:
        given = ", ".join(sock.describe() for sock in sockets) or "none"
        raise ReplayError(
            f"replay of {where}: no socket for the recorded mimic {', '.join(missing)}; given: {given} "
            "(leave_out=[...] names the recorded mimics not to play)"
        )
    return matched


class _Player:
    def __init__(
        self,
        recorded: Recorded,
        sockets: dict[str, TestSocket],
        normaliser: Callable[[str], str],
        skip: Callable[[list[bytes]], bool] | None,
        timeout: float | None,
        codec: Codec | None,
    ) -> None:
        self.recorded = recorded
        self.sockets = sockets
        self.normaliser = normaliser
        self.skip = skip
        self.timeout = timeout
        self.codec = codec
        self.routed = {who for who, sock in sockets.items() if sock.type_name == "ROUTER"}
        self.ids: dict[bytes, bytes] = {}
        """Recorded routing id -> the one seen now in its place."""
        self.tokens: dict[tuple[str, bytes], str] = {}

    def play(self) -> tuple[list[str], list[str], str]:
        expected: list[str] = []
        actual: list[str] = []
        for event in self.recorded.events:
            if event.who not in self.sockets or event.kind not in ("send", "recv"):
                continue  # the recording skipped it (a heartbeat), or it is not a mimic's message
            frames = _whole(event)
            sock = self.sockets[event.who]
            if event.kind == "send":
                line = self._line(event.who, "sent", frames, recorded=True)
                expected.append(line)
                actual.append(line)
                sock.send_multipart(self._addressed(event.who, frames))
                continue
            expected.append(self._line(event.who, "received", frames, recorded=True))
            try:
                received = self._receive(sock)
            except ZmqTestError as error:  # nothing came: the rest of the conversation cannot follow
                actual.append(f"{event.who} received nothing")
                return expected, actual, f"the replay stopped there: {error}"
            if event.who in self.routed and frames and received:
                self.ids.setdefault(frames[0], received[0])
            actual.append(self._line(event.who, "received", received, recorded=False))
        return expected, actual, ""

    def _receive(self, sock: TestSocket) -> list[bytes]:
        while True:
            frames: list[bytes] = sock.recv_multipart(timeout=self.timeout)  # type: ignore[call-overload]
            if self.skip is None or not self.skip(frames):
                return frames

    def _addressed(self, who: str, frames: list[bytes]) -> list[bytes]:
        """A ROUTER's message goes to the peer now in the place of the recorded one."""
        if who in self.routed and frames:
            return [self.ids.get(frames[0], frames[0]), *frames[1:]]
        return frames

    def _line(self, who: str, verb: str, frames: Sequence[bytes], *, recorded: bool) -> str:
        parts = [show_frame(frame, self.codec, sized=False) for frame in frames]
        if who in self.routed and frames:
            parts[0] = self._token(who, frames[0], recorded=recorded)
        return self.normaliser(f"{who} {verb} " + " | ".join(parts))

    def _token(self, who: str, routing_id: bytes, *, recorded: bool) -> str:
        """``<ID1>``... by order of first appearance; a live id reads as the recorded id it stands in for."""
        if not recorded:
            originals = [old for old, new in self.ids.items() if new == routing_id]
            if originals:
                routing_id = originals[0]
            else:
                return f"<new id {routing_id!r}>"
        return self.tokens.setdefault((who, routing_id), f"<ID{len(self.tokens) + 1}>")


def _whole(event: Event) -> list[bytes]:
    try:
        return event.whole_frames()
    except ValueError as problem:
        raise ReplayError(f"{problem}: record with zmqtest.replay.record(), which keeps every frame") from None
