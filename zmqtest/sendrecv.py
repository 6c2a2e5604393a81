"""A mimic's sends and receives: pyzmq's methods, made to wait at most a timeout and to explain a wait that failed.

:func:`waiting` wraps one ``zmq.Socket`` method (``send``, ``recv_multipart``, ...);
:class:`~zmqtest.sockets.TestSocket` puts the wrapped ones in place of pyzmq's. The wait
is libzmq's own (``RCVTIMEO``/``SNDTIMEO``, armed only when the timeout changes), so a
mimic costs next to nothing over a raw socket: no polling loop, no sleeping. Only
"nothing yet" (EAGAIN) is waited on; any other ZMQ error (EFSM, EHOSTUNREACH, ETERM, ...)
surfaces at once with the socket named in its message.

While processes are watched (:func:`zmqtest.waiting.watching`), libzmq waits by itself
for :data:`FIRST_WAIT` first, and then :func:`watched_wait` races the rest of the wait
against the watched processes (:func:`zmqtest.waiting.race`, as every wait in zmqtest).
A wait that fails says why (:func:`timeout_message`); every frame sent and received, and
every wait that failed, goes into the test's transcript when one records. The receives that
pass over messages (``recv(skip=...)``, ``expect_nothing``) are :mod:`zmqtest.skipping`'s, also here.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from zmqtest import transcript
from zmqtest.errors import ProcessError, SocketTimeout, add_context
from zmqtest.peers import security_role
from zmqtest.rendering import HEAD_BYTES
from zmqtest.settings import parse_timeout, settings_in_force
from zmqtest.skipping import nothing_arrives, passed_over, receive_skipping, silence_kept, skipped_only, unexpected
from zmqtest.startover import settle, start_over
from zmqtest.waiting import any_watched, describe_watched, race, ready_now, watched

if TYPE_CHECKING:
    from zmqtest.sockets import TestSocket

__all__ = [
    "DEATH_GRACE_MS",
    "FIRST_WAIT",
    "FLAGS_AT",
    "MAX_WAIT_MS",
    "arm",
    "closed_error",
    "nothing_arrives",
    "passed_over",
    "receive_skipping",
    "silence_kept",
    "skipped_only",
    "timeout_message",
    "unexpected",
    "waiting",
    "watched_wait",
]

DEATH_GRACE_MS = 50
"""After a watched process ends, how long a wait still gives a message it sent just before to arrive."""
MAX_WAIT_MS = 2**31 - 1
"""RCVTIMEO/SNDTIMEO are C ints: longer timeouts (about 24.8 days) wait this long."""
FIRST_WAIT = 0.005
"""While processes are watched, a send or receive first waits this long (seconds) in libzmq itself, as an
unwatched one does; only then does it poll the socket together with the processes' sentinels. Most replies
come within it, so watching costs nothing on a round trip; a death is seen at most this much later."""
_any_watched = any_watched  # whether any process is watched now: one C call on the fast path
_current_watched = watched  # the processes whose end cuts a wait short; () when none
_transcript = transcript.current  # the transcript that records now, if any: one C call on the fast path
_settings_in_force = settings_in_force  # the settings in force: one C call on the fast path
_monotonic = time.monotonic
_perf_counter = time.perf_counter

_SEND_HINTS = {
    "REQ": "no peer took the request",
    "ROUTER": "the peer is not reading",
}
_QUEUEING = frozenset({"REQ", "DEALER", "PUSH", "PAIR"})
"""Types whose messages wait in a queue for a peer that has not connected (PUB and RADIO drop them)."""
_RECV_HINTS = {
    "REQ": "no reply",
    "SUB": "nothing was published to this subscriber (has its subscription reached the publisher yet?)",
}


FLAGS_AT: dict[str, int | None] = {
    "send": 1,
    "send_multipart": 1,
    "send_json": 1,
    "send_string": 1,
    "send_pyobj": 1,
    "send_serialized": 2,
    "recv": 0,
    "recv_multipart": 0,
    "recv_json": 0,
    "recv_string": 0,
    "recv_pyobj": 0,
    "recv_serialized": 1,
    "recv_into": None,
}
"""The calls of ``zmq.Socket`` that a TestSocket makes wait, and where each takes its ``flags`` (``None``: none)."""


def _send_multipart(
    sock: zmq.Socket[Any], msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False
) -> Any:
    """Send like pyzmq's send_multipart, calling the base ``send`` directly (no re-entry into the wrapper)."""
    for index, part in enumerate(msg_parts):  # check all frames first: never leave half a message queued
        if not isinstance(part, (bytes, zmq.Frame, memoryview)):
            try:
                memoryview(part)
            except TypeError:
                raise TypeError(f"frame {index} ({part!r:.40}) of send_multipart is not bytes-like") from None
    for part in msg_parts[:-1]:
        _SEND(sock, part, zmq.SNDMORE | flags, copy, track)
    return _SEND(sock, msg_parts[-1], flags, copy, track)


def _recv_multipart(sock: zmq.Socket[Any], flags: int = 0, copy: bool = True, track: bool = False) -> list[Any]:
    """Receive like pyzmq's recv_multipart, calling the base ``recv`` directly (no re-entry into the wrapper)."""
    parts = [_RECV(sock, flags, copy, track)]
    while _GET(sock, _RCVMORE):
        parts.append(_RECV(sock, flags, copy, track))
    return parts


# libzmq's calls themselves (pyzmq's compiled socket), for the multipart calls: pyzmq's Python ``send`` adds only the
# draft options routing_id and group, which these never pass; one Python frame less per frame sent.
_SEND: Callable[..., Any] = zmq.backend.Socket.send
_RECV: Callable[..., Any] = zmq.backend.Socket.recv
_GET: Callable[..., Any] = zmq.backend.Socket.get
_RCVMORE = zmq.RCVMORE
_OWN: dict[str, Callable[..., Any]] = {"send_multipart": _send_multipart, "recv_multipart": _recv_multipart}


def _flags(args: tuple[Any, ...], kwargs: dict[str, Any], flags_at: int | None) -> int:
    """Return the ``flags`` argument of a send/recv call, wherever it was passed."""
    flags = kwargs.get("flags", args[flags_at] if flags_at is not None and len(args) > flags_at else 0)
    return int(flags)


def _sent(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    return (args[0] if args else kwargs["data"],)


def _sent_multipart(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    return args[0] if args else kwargs["msg_parts"]


def _received(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    return (result,)


def _received_multipart(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    return result


def _received_into(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    return (memoryview(args[0] if args else kwargs["buffer"])[:result],)


_FRAMES: dict[str, tuple[transcript.EventKind, Callable[[tuple[Any, ...], dict[str, Any], Any], Any]]] = {
    "send": ("send", _sent),
    "send_multipart": ("send", _sent_multipart),
    "recv": ("recv", _received),
    "recv_multipart": ("recv", _received_multipart),
    "recv_into": ("recv", _received_into),
}
"""The calls that move frames, what the transcript calls them and where their frames are. The others (send_json,
recv_string, ...) go through ``send``/``recv``, and are recorded there."""


def _failed(sock: TestSocket, error: BaseException) -> None:
    """Put a send or receive that failed in the transcript: its error's first line, without the socket's name."""
    record = _transcript()
    if record is not None:
        text = str(error).partition("\n")[0].replace(f" on {sock.describe()}", "", 1)
        record.error(sock, text)


def arm(sock: TestSocket, seconds: float) -> None:
    """Make libzmq wait ``seconds`` in sends and receives (called only when it changes)."""
    millis = min(math.ceil(seconds * 1000), MAX_WAIT_MS)
    sock.setsockopt(zmq.RCVTIMEO, millis)
    sock.setsockopt(zmq.SNDTIMEO, millis)
    sock.__dict__["_armed"] = seconds


def watched_wait(
    sock: TestSocket, name: str, event: int, attempt: Callable[[], Any], seconds: float, waited: float
) -> Any:
    """Wait the rest of a watched wait, after libzmq's first ``waited`` seconds: raced against the watched processes.

    ``attempt()`` is the send or receive itself, made only when the socket is ready: its
    libzmq timeout is still armed, so it would block. The race (:func:`race`) lets a ready
    socket win over a death, and gives a message sent just before the end
    :data:`DEATH_GRACE_MS` to arrive.
    """
    processes = _current_watched()  # those that still end waits: not one the test is stopping
    deadline = _monotonic() + seconds - waited
    done: list[Any] = []
    refused = 0

    def waiting_for() -> str:
        return f"{name} on {sock.describe()}"

    def take() -> bool:
        """Send or receive (the socket is ready); whether it went through."""
        try:
            done.append(attempt())
        except zmq.Again:
            return False
        return True

    def look() -> bool:
        """Take; if refused, pause on the processes alone, so that polling the still ready socket does not spin."""
        nonlocal refused
        if take():
            return True
        # Ready, yet refused: a ROUTER's POLLOUT means "some peer can take a message", maybe not this one.
        pause = (1 << min(refused, 6)) / 1000  # 1, 2, 4 ... 64 ms
        refused += 1
        return race(None, min(deadline, _monotonic() + pause), processes, waiting_for, look=last_look)

    def last_look() -> bool:
        """Take what is there after a death during a pause, if the socket is ready (else the call would block)."""
        return ready_now(sock, event) and take()

    if race(sock, deadline, processes, waiting_for, event=event, look=look, grace=DEATH_GRACE_MS / 1000):
        return done[0]
    raise SocketTimeout(
        timeout_message(sock, name, seconds) + describe_watched(processes), operation=name, timeout=seconds
    )


def waiting(name: str, flags_at: int | None) -> Any:
    """Wrap ``zmq.Socket.<name>`` so that it waits at most the socket's timeout.

    Only the outermost call arms the timeout and translates errors. pyzmq's
    ``send_json`` and friends re-enter through ``send``/``recv``, so they mark the
    socket busy while they run; the hot multipart calls do not re-enter at all.
    The calls that move frames put them in the transcript, if one records. The
    multipart calls, on every round trip of a conversation, are written out for
    themselves: pyzmq's signature (no packing of arguments), libzmq's send/recv called
    directly, the transcript's common case inline; anything else goes to the general one.
    """
    base: Callable[..., Any] = _OWN.get(name) or getattr(zmq.Socket, name)
    reentrant = name not in _OWN and name not in ("send", "recv")
    sending = name.startswith("send")
    event = zmq.POLLOUT if sending else zmq.POLLIN
    recorded: transcript.EventKind
    recorded, frames_of = _FRAMES.get(name, ("recv", None))  # no frames_of: nothing recorded (nor stamped before)
    stamped_before = recorded == "send"  # a send is stamped when asked for: the peer may answer before it returns
    gave_up_reply = not sending  # a receive that gave up: on a REQ, the reply may still come (see start_over)

    def translate(self: TestSocket, exc: zmq.ZMQError, args: Any, kwargs: Any, seconds: float) -> BaseException:
        if isinstance(exc, zmq.Again) and not _flags(args, kwargs, flags_at) & zmq.NOBLOCK:
            return SocketTimeout(timeout_message(self, name, seconds), operation=name, timeout=seconds)
        if exc.errno == zmq.ENOTSOCK and self.closed:
            return closed_error(self, name)
        add_context(exc, f"  in {name} on {self.describe()}")
        stuck = self.__dict__["_stuck"]
        if stuck and exc.errno == zmq.EFSM and sending:
            add_context(exc, f"  {stuck}")
        return exc

    def call(self: TestSocket, state: dict[str, Any], args: Any, kwargs: Any) -> Any:
        """Make the base call; a composite one marks the socket busy: its inner sends/receives pass straight through."""
        if not reentrant:
            return base(self, *args, **kwargs)
        state["_busy"] = True
        try:
            return base(self, *args, **kwargs)
        finally:
            state["_busy"] = False

    def give_up(self: TestSocket, exc: zmq.ZMQError, args: Any, kwargs: Any, seconds: float) -> BaseException:
        """What a send or receive that failed raises, recorded; a REQ that gave up on its reply starts over."""
        error = translate(self, exc, args, kwargs, seconds)
        if error is not exc or not isinstance(exc, zmq.Again):  # not a NOBLOCK call's "nothing yet"
            _failed(self, error)
        if error is not exc and gave_up_reply and self.__dict__["_req"]:
            start_over(self)
        return error

    def rest_of_wait(self: TestSocket, args: Any, kwargs: Any, seconds: float, waited: float) -> Any:
        """The rest of a watched wait after libzmq's first ``waited`` seconds, raced against the processes."""
        state = self.__dict__
        try:
            return watched_wait(self, name, event, lambda: call(self, state, args, kwargs), seconds, waited)
        except (SocketTimeout, ProcessError) as exc:
            _failed(self, exc)
            if gave_up_reply and state["_req"]:
                start_over(self)
            raise
        except zmq.ZMQError as exc:
            _failed(self, translate(self, exc, args, kwargs, seconds))
            raise

    def method(self: TestSocket, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        # The wait is libzmq's (RCVTIMEO/SNDTIMEO, armed when it changes); while processes are watched, only its
        # first FIRST_WAIT, and watched_wait() the rest.
        state = self.__dict__
        at = _perf_counter() if stamped_before else None
        if state["_busy"]:  # inside send_json & co: the outer call waits and reports, the frames are recorded here
            result = base(self, *args, **kwargs)
            if frames_of is not None:
                record = _transcript()
                if record is not None:
                    record.message(self, recorded, frames_of(args, kwargs, result), at)
            return result
        if timeout is None:
            seconds = state["_timeout"]
            if seconds is None:
                seconds = _settings_in_force().timeout
        else:
            seconds = parse_timeout(timeout, f"the timeout= argument of {name}", allow_zero=True)
        watching = _any_watched()
        wait = FIRST_WAIT if watching and seconds > FIRST_WAIT else seconds
        rest = False
        try:
            if wait != state["_armed"]:
                arm(self, wait)
            result = call(self, state, args, kwargs)
        except zmq.ZMQError as exc:
            if watching and isinstance(exc, zmq.Again) and not _flags(args, kwargs, flags_at) & zmq.NOBLOCK:
                rest = True  # the rest of the wait, raced against the processes (outside this block: no chaining)
            else:
                error = give_up(self, exc, args, kwargs, seconds)
                if error is exc:
                    raise
                raise error from None
        if rest:
            result = rest_of_wait(self, args, kwargs, seconds, wait)
        if state["_pending"]:  # a REQ that gave up on a reply: back to normal once its next request is out
            settle(self, sending)
        if frames_of is not None:
            record = _transcript()
            if record is not None:
                record.message(self, recorded, frames_of(args, kwargs, result), at)
        return result

    if name == "send_multipart":  # the hot calls: pyzmq's explicit signature (no packing), the common case inline

        def send_multipart(
            self: TestSocket, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
        ) -> Any:
            state = self.__dict__
            if kwargs or state["_busy"]:  # a timeout= (or pyzmq's routing_id=, ...), or inside send_serialized
                return method(self, msg_parts, flags, copy, track, **kwargs)
            at = _perf_counter()  # stamped when asked for: the peer may answer before the send returns
            seconds = state["_timeout"]
            if seconds is None:
                seconds = _settings_in_force().timeout
            watching = _any_watched()
            wait = FIRST_WAIT if watching and seconds > FIRST_WAIT else seconds
            rest = False
            try:
                if wait != state["_armed"]:
                    arm(self, wait)
                if type(msg_parts) is list and len(msg_parts) == 1 and type(msg_parts[0]) is bytes:  # the common case
                    result = _SEND(self, msg_parts[0], flags, copy, track)
                else:
                    result = _send_multipart(self, msg_parts, flags, copy, track)
            except zmq.ZMQError as exc:
                if watching and isinstance(exc, zmq.Again) and not flags & zmq.NOBLOCK:
                    rest = True  # as in method()
                else:
                    error = give_up(self, exc, (msg_parts, flags), {}, seconds)
                    if error is exc:
                        raise
                    raise error from None
            if rest:
                result = rest_of_wait(self, (msg_parts, flags, copy, track), {}, seconds, wait)
            if state["_pending"]:
                settle(self, True)
            record = _transcript()
            if record is not None and record.recording:  # Transcript.message's common case, inlined
                if len(msg_parts) == 1 and type(msg_parts[0]) is bytes and len(msg_parts[0]) <= HEAD_BYTES:
                    record.events.append((at, state["_who"] or record.mimic(self), "send", (msg_parts[0],)))
                else:
                    record.message(self, "send", msg_parts, at)
            return result

        return _documented(send_multipart, name)

    if name == "recv_multipart":

        def recv_multipart(
            self: TestSocket, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
        ) -> list[Any]:
            state = self.__dict__
            if kwargs or state["_busy"]:  # a timeout=, or inside recv_serialized
                return method(self, flags, copy, track, **kwargs)  # type: ignore[no-any-return]
            seconds = state["_timeout"]
            if seconds is None:
                seconds = _settings_in_force().timeout
            watching = _any_watched()
            wait = FIRST_WAIT if watching and seconds > FIRST_WAIT else seconds
            rest = False
            try:
                if wait != state["_armed"]:
                    arm(self, wait)
                frames = [_RECV(self, flags, copy, track)]  # _recv_multipart, inlined
                while _GET(self, _RCVMORE):
                    frames.append(_RECV(self, flags, copy, track))
            except zmq.ZMQError as exc:
                if watching and isinstance(exc, zmq.Again) and not flags & zmq.NOBLOCK:
                    rest = True  # as in method()
                else:
                    error = give_up(self, exc, (flags,), {}, seconds)
                    if error is exc:
                        raise
                    raise error from None
            if rest:
                frames = rest_of_wait(self, (flags, copy, track), {}, seconds, wait)
            if state["_pending"]:
                settle(self, False)
            record = _transcript()
            if record is not None and record.recording:  # Transcript.message's common case, inlined
                if len(frames) == 1 and type(frames[0]) is bytes and len(frames[0]) <= HEAD_BYTES:
                    record.events.append((_perf_counter(), state["_who"] or record.mimic(self), "recv", (frames[0],)))
                else:
                    record.message(self, "recv", frames)
            return frames

        return _documented(recv_multipart, name)

    return _documented(method, name)


def _documented(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``method`` with the docstring of pyzmq's ``name`` and what zmqtest adds to it."""
    base = getattr(zmq.Socket, name)
    functools.update_wrapper(method, base)
    method.__doc__ = (
        f"{base.__doc__ or ''}\n\n"
        "zmqtest: waits at most ``timeout`` seconds (this call's, else the socket's, else the\n"
        "harness default), then raises :class:`zmqtest.SocketTimeout`; a watched process that\n"
        "ends meanwhile raises its :class:`zmqtest.errors.ProcessExited` at once."
    )
    return method


def timeout_message(sock: TestSocket, operation: str, seconds: float) -> str:
    """Say why ``operation`` on ``sock`` timed out: what its type suggests and what became of its peers."""
    kind = sock.type_name
    sending = operation.startswith("send")
    state = sock.__dict__
    peers = state["_peers"]
    watched = peers.describe(queues=kind in _QUEUEING, role=security_role(sock)) if peers is not None else ""
    if sending:
        hint = _SEND_HINTS.get(kind, "no peer took the message")
        if kind not in _SEND_HINTS and peers is not None and peers.any_connected():
            hint += f": its queue is full (sndhwm={int(sock.getsockopt(zmq.SNDHWM))} messages per peer)"
        what = f"could not send within {seconds:g} s: {hint}"
    else:
        hint = _RECV_HINTS.get(kind, "no message")
        if kind == "SUB" and not state.get("_subscribed"):
            hint = 'this SUB has not subscribed to any topic, so it receives nothing (subscribe=b"": everything)'
        what = f"{hint} within {seconds:g} s" if hint.startswith("no ") else f"no message within {seconds:g} s: {hint}"
    if not sending:
        what += _maxmsgsize_hint(sock)
    if watched:
        what += f"; {watched}"
    elif sock.connected and not sock.bound and (sending or kind == "REQ"):
        what += f" (is a process bound to {', '.join(sock.connected)} and running?)"
    elif sending and sock.bound and not sock.connected:
        what += " (has the process connected?)"
    return f"{operation} on {sock.describe()}: {what}"


def _maxmsgsize_hint(sock: TestSocket) -> str:
    """Say what libzmq does with a bigger message, after a receive timed out on a socket with MAXMSGSIZE."""
    limit = int(sock.getsockopt(zmq.MAXMSGSIZE))
    if limit < 0:
        return ""
    return (
        f"; this socket has maxmsgsize={limit} bytes: libzmq drops the connection of a peer that sends a bigger "
        "message, and the message with it, so it never arrives (the peer reconnects and may send it again)"
    )


def closed_error(sock: TestSocket, operation: str) -> zmq.ZMQError:
    """Return pyzmq's ENOTSOCK for a call on a closed mimic, saying which socket it is and who closed it."""
    return zmq.ZMQError(
        zmq.ENOTSOCK,
        f"{operation} on {sock.describe()}: this socket was closed by {sock.__dict__['_closed_by']}; "
        "a closed socket cannot be used again",
    )
