"""The receives of a conversation that pass over messages: ``recv(sock, skip=...)`` and ``expect_nothing``.

Each receive is the mimic's own (:mod:`zmqtest.sendrecv`: bounded, raced against the watched
processes, recorded in the transcript); here, what the test skips (heartbeats, chatter) is
marked so in the transcript and listed by the timeout error, and a message that breaks a
silence the test expects is an error that shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from zmqtest import transcript
from zmqtest.errors import SocketTimeout
from zmqtest.waiting import describe_watched, failed_wait, race, ready_now, watched

if TYPE_CHECKING:
    from zmqtest.sockets import TestSocket

__all__ = ["Look", "nothing_arrives", "passed_over", "receive_skipping", "silence_kept", "skipped_only", "unexpected"]

_transcript = transcript.current
_current_watched = watched
_monotonic = time.monotonic

Look = Callable[[list[Any]], tuple[Any, bool]]
"""Turns a received message into what the test sees (decoded) and whether to skip it."""


def receive_skipping(sock: TestSocket, seconds: float, look: Look, skip_name: str) -> Any:
    """Receive on ``sock`` until ``look`` keeps a message, and return it (as ``look`` made it).

    Each message ``look`` skips is marked so in the transcript. ``seconds`` bounds the
    whole wait; each receive is the mimic's own (raced against the watched processes);
    its timeout error lists the messages skipped.
    """
    deadline = _monotonic() + seconds
    skipped: list[str] = []
    wait = seconds  # the first receive waits exactly the timeout: its error names it as given
    while True:
        try:
            frames = sock.recv_multipart(timeout=wait)  # type: ignore[call-overload]
        except SocketTimeout as exc:
            if not skipped:
                raise
            raise skipped_only(sock, seconds, skip_name, skipped, exc) from None
        message, skip = look(frames)
        if not skip:
            return message
        passed_over(sock, message, skipped)
        wait = max(deadline - _monotonic(), 0.0)


def passed_over(sock: TestSocket, message: Any, skipped: list[str]) -> None:
    """Note a message a receive skipped: marked in the transcript, quoted in the timeout error if one comes."""
    record = _transcript()
    if record is not None:
        record.skipped(sock)
    skipped.append(_clip(repr(message), _SHOWN_CHARS))


def skipped_only(
    sock: TestSocket, seconds: float, skip_name: str, skipped: list[str], timed_out: SocketTimeout
) -> SocketTimeout:
    """The error of a skipping receive that saw only messages to skip: it lists them."""
    shown = ", ".join(skipped[:_SHOWN_SKIPPED])
    more = f" and {len(skipped) - _SHOWN_SKIPPED} more" if len(skipped) > _SHOWN_SKIPPED else ""
    error = SocketTimeout(
        f"recv on {sock.describe()}: no message but skipped ones within {seconds:g} s (skip={skip_name}); "
        f"{len(skipped)} skipped: {shown}{more}" + describe_watched(_current_watched()),
        operation="recv_multipart",
        timeout=seconds,
    )
    error.context.extend(timed_out.context)
    return error


def nothing_arrives(sock: TestSocket, seconds: float, look: Look) -> None:
    """Return once ``seconds`` have passed without a message on ``sock`` that ``look`` keeps; else raise.

    A kept message raises :class:`~zmqtest.events.UnexpectedMessage` showing it (as
    ``look`` made it) and when it came; skipped ones are marked so in the transcript. A
    watched process that dies meanwhile raises its exit error at once.
    """
    processes = _current_watched()
    began = _monotonic()
    deadline = began + seconds
    queued = ready_now(sock, zmq.POLLIN)  # a message there already came before the silence began

    def waiting_for() -> str:
        return f"expecting nothing on {sock.describe()} (expect_nothing)"

    while race(sock, deadline, processes, waiting_for, event=zmq.POLLIN, report=failed_wait):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)  # recorded in the transcript as any receive
        except zmq.Again:
            continue
        message, skip = look(frames)
        if skip:
            record = _transcript()
            if record is not None:
                record.skipped(sock)
            queued = False
            continue
        raise failed_wait(unexpected(sock, seconds, message, queued, began))
    silence_kept(sock, seconds)


def unexpected(sock: TestSocket, seconds: float, message: Any, queued: bool, began: float) -> Exception:
    """The error of an ``expect_nothing`` that got ``message`` (``queued``: it was there before the wait began)."""
    from zmqtest.events import UnexpectedMessage  # light; here, so that sockets' import order stays as it was

    when = (
        f"was waiting already when the {seconds:g} s in which nothing was expected began"
        if queued
        else f"was received {_monotonic() - began:.3f} s into the {seconds:g} s in which nothing was expected"
    )
    return UnexpectedMessage(f"expect_nothing on {sock.describe()}: a message {when}: {_clip(repr(message), 200)}")


def silence_kept(sock: TestSocket, seconds: float) -> None:
    transcript.note(None, f"expect_nothing: nothing arrived on {sock.name or sock.type_name} for {seconds:g} s")


_SHOWN_SKIPPED = 3
_SHOWN_CHARS = 80


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
