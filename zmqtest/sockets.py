"""Mimic sockets: pyzmq sockets that play a peer of the process under test.

A :class:`TestSocket` is a :class:`zmq.Socket` (so pollers, monitors, options and
``isinstance`` work as usual) whose sends and receives wait at most a timeout and
then raise :class:`~zmqtest.errors.SocketTimeout`, naming the operation, the socket,
its endpoints and the timeout. A message that is already there comes back at once.

The wait is libzmq's own (``RCVTIMEO``/``SNDTIMEO``, set only when the timeout
changes), so a mimic costs next to nothing over a raw socket: no polling loop, no
sleeping. Only "nothing yet" (EAGAIN) is waited on; any other ZMQ error (EFSM,
EHOSTUNREACH, ETERM, ...) surfaces at once with the socket named in its message.

While processes are watched (:func:`zmqtest.waiting.watching`), libzmq waits by
itself for a few milliseconds first (:data:`FIRST_WAIT`: most replies come within
it, so watching costs nothing on a round trip), and then one ``zmq_poll`` over the
socket and the processes' sentinels waits for the rest: a process that dies ends the
wait with :class:`~zmqtest.errors.ProcessExited`, and a timeout says what each
watched process was doing.

Every frame sent and received, and every wait that failed, goes into the test's
transcript (:mod:`zmqtest.transcript`) when one records.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import zmq

from zmqtest import transcript
from zmqtest.endpoints import Endpoint, external_reason, parse_endpoint
from zmqtest.errors import ProcessError, SocketTimeout, add_context
from zmqtest.peers import PeerWatch, security_role
from zmqtest.settings import current_timeout, parse_timeout
from zmqtest.waiting import any_watched, describe_watched, ended, poll_items, watched

__all__ = ["TestSocket", "make_sock", "parse_endpoint"]

RECONNECT_IVL_MS = 2
"""libzmq's default (100 ms) would make a mimic that connects before the process has bound wait that long; at 10 ms
it connected 7-9 ms after the bind (median), at 2 ms within 1-2 ms, for a refused connect every 2 ms meanwhile."""
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
_monotonic = time.monotonic
_perf_counter = time.perf_counter
_ceil = math.ceil
_zmq_poll = zmq.zmq_poll

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


def _send_multipart(
    sock: zmq.Socket[Any], msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False
) -> Any:
    """pyzmq's send_multipart, calling the base ``send`` directly (no re-entry into the wrapper)."""
    for index, part in enumerate(msg_parts):  # check all frames first: never leave half a message queued
        if not isinstance(part, (bytes, zmq.Frame, memoryview)):
            try:
                memoryview(part)
            except TypeError:
                raise TypeError(f"frame {index} ({part!r:.40}) of send_multipart is not bytes-like") from None
    for part in msg_parts[:-1]:
        _SEND(sock, part, zmq.SNDMORE | flags, copy=copy, track=track)
    return _SEND(sock, msg_parts[-1], flags, copy=copy, track=track)


def _recv_multipart(sock: zmq.Socket[Any], flags: int = 0, copy: bool = True, track: bool = False) -> list[Any]:
    """pyzmq's recv_multipart, calling the base ``recv`` directly (no re-entry into the wrapper)."""
    parts = [_RECV(sock, flags, copy=copy, track=track)]
    while sock.getsockopt(zmq.RCVMORE):
        parts.append(_RECV(sock, flags, copy=copy, track=track))
    return parts


_SEND: Callable[..., Any] = zmq.Socket.send
_RECV: Callable[..., Any] = zmq.Socket.recv
_OWN: dict[str, Callable[..., Any]] = {"send_multipart": _send_multipart, "recv_multipart": _recv_multipart}


def _flags(args: tuple[Any, ...], kwargs: dict[str, Any], flags_at: int | None) -> int:
    """The ``flags`` argument of a send/recv call, wherever it was passed."""
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


_FRAMES: dict[str, tuple[str, Callable[[tuple[Any, ...], dict[str, Any], Any], Any]]] = {
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


def _waiting(name: str, flags_at: int | None) -> Any:
    """Wrap ``zmq.Socket.<name>`` so that it waits at most the socket's timeout.

    Only the outermost call arms the timeout and translates errors. pyzmq's
    ``send_json`` and friends re-enter through ``send``/``recv``, so they mark the
    socket busy while they run; the hot multipart calls do not re-enter at all.
    The calls that move frames put them in the transcript, if one records.
    """
    base: Callable[..., Any] = _OWN.get(name) or getattr(zmq.Socket, name)
    reentrant = name not in _OWN and name not in ("send", "recv")
    sending = name.startswith("send")
    event = zmq.POLLOUT if sending else zmq.POLLIN
    recorded, frames_of = _FRAMES.get(name, ("", None))
    stamped_before = recorded == "send"  # a send is stamped when asked for: the peer may answer before it returns
    gave_up_reply = not sending  # a receive that gave up: on a REQ, the reply may still come (see _start_over)

    def translate(self: TestSocket, exc: zmq.ZMQError, args: Any, kwargs: Any, seconds: float) -> BaseException:
        if isinstance(exc, zmq.Again) and not _flags(args, kwargs, flags_at) & zmq.NOBLOCK:
            return SocketTimeout(self._timeout_message(name, seconds), operation=name, timeout=seconds)
        add_context(exc, f"  in {name} on {self.describe()}")
        stuck = self.__dict__["_stuck"]
        if stuck and exc.errno == zmq.EFSM and sending:
            add_context(exc, f"  {stuck}")
        return exc

    def call(self: TestSocket, state: dict[str, Any], args: Any, kwargs: Any) -> Any:
        """The base call; composite ones mark the socket busy so their inner sends/receives pass straight through."""
        if not reentrant:
            return base(self, *args, **kwargs)
        state["_busy"] = True
        try:
            return base(self, *args, **kwargs)
        finally:
            state["_busy"] = False

    def watched_wait(
        self: TestSocket, state: dict[str, Any], args: Any, kwargs: Any, seconds: float, waited: float
    ) -> Any:
        """The rest of a watched wait, after libzmq's first ``waited`` seconds: raced against the watched processes.

        One poll of the socket and the processes' sentinels; whatever it says, a ready
        socket wins over a death (a message sent just before the end is still received).
        """
        processes = _current_watched()  # those that still end waits: not one the test is stopping
        items = poll_items(self, event, processes)
        deadline = _monotonic() + seconds - waited
        refused = 0
        while True:
            remaining = deadline - _monotonic()
            ready = _zmq_poll(items, min(_ceil(remaining * 1000), MAX_WAIT_MS) if remaining > 0 else 0)
            if ready and (ready[0][0] is self or int(self.getsockopt(zmq.EVENTS)) & event):
                try:
                    return call(self, state, args, kwargs)
                except zmq.Again:
                    # Ready, yet refused: a ROUTER's POLLOUT means "some peer can take a message", maybe
                    # not this one. Polling again would spin: wait on the sentinels alone, 1, 2, 4 ... 64 ms.
                    pause = min(1 << min(refused, 6), _ceil(max(deadline - _monotonic(), 0) * 1000))
                    refused += 1
                    ready = _zmq_poll(items[1:], pause)
            if ready:  # only sentinels are left in it: a watched process ended
                # What it sent just before its end may still be on its way: give that a moment.
                if _zmq_poll(items[:1], DEATH_GRACE_MS):
                    try:
                        return call(self, state, args, kwargs)
                    except zmq.Again:
                        pass
                raise ended(processes, [item for item, _ in ready]).exit_error(f"{name} on {self.describe()}")
            if _monotonic() >= deadline:
                message = self._timeout_message(name, seconds) + describe_watched(processes)
                raise SocketTimeout(message, operation=name, timeout=seconds)

    @functools.wraps(getattr(zmq.Socket, name))
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
                seconds = current_timeout()
        else:
            seconds = parse_timeout(timeout, f"the timeout= argument of {name}", allow_zero=True)
        watching = _any_watched()
        wait = FIRST_WAIT if watching and seconds > FIRST_WAIT else seconds
        if wait != state["_armed"]:
            self._arm(wait)
        rest = False
        try:
            # the hot multipart calls: no detour through call()
            result = base(self, *args, **kwargs) if not reentrant else call(self, state, args, kwargs)
        except zmq.ZMQError as exc:
            if watching and isinstance(exc, zmq.Again) and not _flags(args, kwargs, flags_at) & zmq.NOBLOCK:
                rest = True  # the rest of the wait, raced against the processes (outside this block: no chaining)
            else:
                error = translate(self, exc, args, kwargs, seconds)
                if error is not exc or not isinstance(exc, zmq.Again):  # not a NOBLOCK call's "nothing yet"
                    _failed(self, error)
                if error is exc:
                    raise
                if gave_up_reply and state["_req"]:
                    self._start_over()
                raise error from None
        if rest:
            try:
                result = watched_wait(self, state, args, kwargs, seconds, wait)
            except (SocketTimeout, ProcessError) as exc:
                _failed(self, exc)
                if gave_up_reply and state["_req"]:
                    self._start_over()
                raise
            except zmq.ZMQError as exc:
                _failed(self, translate(self, exc, args, kwargs, seconds))
                raise
        if state["_pending"]:  # a REQ that gave up on a reply: back to normal once its next request is out
            self._settle(sending)
        if frames_of is not None:
            record = _transcript()
            if record is not None:
                record.message(self, recorded, frames_of(args, kwargs, result), at)
        return result

    method.__doc__ = (
        f"{getattr(zmq.Socket, name).__doc__ or ''}\n\n"
        "zmqtest: waits at most ``timeout`` seconds (this call's, else the socket's, else the\n"
        "harness default), then raises :class:`zmqtest.SocketTimeout`; a watched process that\n"
        "ends meanwhile raises its :class:`zmqtest.errors.ProcessExited` at once."
    )
    return method


class TestSocket(zmq.Socket):  # type: ignore[type-arg]
    """A pyzmq socket for tests: bounded waits, clear errors, nothing left behind.

    ``TestSocket(context, zmq.REQ, timeout=0.5, name="client", subscribe=b"")``:
    ``timeout`` (seconds) bounds every send and receive (``None``: the harness
    default, 1 s unless set by the pytest plugin); ``name`` appears in errors;
    ``allow_external=True`` lets it bind beyond loopback (refused otherwise); any
    other keyword sets the socket option of that name (``maxmsgsize=...``, ...).

    A mimic is faithful: the peer gets the same frames, and the same queueing, as from
    a plain pyzmq socket of the same type making the same calls. What zmqtest sets
    changes only the test's side: LINGER 0 (closing never blocks), a 2 ms reconnect
    interval (connecting before the peer has bound costs nothing), ROUTER mandatory
    (a message to an unknown identity fails instead of vanishing), XPUB verbose (it
    receives every subscription, repeats too: see
    :func:`zmqtest.barriers.wait_for_subscriber`), and a socket monitor that tells a
    timeout message what became of the peers (:mod:`zmqtest.peers`). A REQ whose
    receive gave up starts over as a real client does, on a new connection, so a late
    reply is never taken for the next one (:meth:`_start_over`). ``security=`` makes
    it a CURVE or PLAIN peer (:mod:`zmqtest.security`); ``immediate=True`` and any
    other option are the user's choice.
    """

    __test__ = False  # not a test class, whatever pytest's name patterns say

    name: str | None
    allow_external: bool
    bound: list[str]
    connected: list[str]

    def __init__(
        self,
        context: zmq.Context[Any],
        socket_type: int,
        *,
        timeout: float | None = None,
        name: str | None = None,
        allow_external: bool = False,
        security: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(context, socket_type)
        register = getattr(context, "_add_socket", None)  # what context.socket() does, so destroy() closes us too
        if register is not None:
            register(self)
        state = self.__dict__
        state.update(
            _busy=False,
            _armed=None,
            _timeout=None,
            _who=None,
            # a REQ starts over after a receive gave up, unless the user chose libzmq's relaxed REQ
            _req=socket_type == zmq.REQ
            and not any(key.lower() == "req_relaxed" and value for key, value in options.items()),
            _pending=False,
            _stuck="",
            _peers=None,
            _security=security,
            name=name,
            allow_external=allow_external is True,
            bound=[],
            connected=[],
        )
        transcript.track(self)  # for strict mode: the mimics made during a test are checked for unread messages
        try:
            self.timeout = timeout
            self.setsockopt(zmq.LINGER, 0)
            self.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
            if socket_type == zmq.ROUTER:
                self.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if socket_type == zmq.XPUB:  # every subscription reaches the test, a reconnecting subscriber's too
                self.setsockopt(zmq.XPUB_VERBOSE, 1)
            if not isinstance(allow_external, bool):
                raise TypeError(f"TestSocket(allow_external=...) takes True or False, got {allow_external!r}")
            for option, value in options.items():
                if not _is_option(self, option):
                    raise TypeError(f"TestSocket() got an unknown keyword {option!r}: not a socket option")
                try:
                    setattr(self, option, value)
                except AttributeError:
                    raise TypeError(f"TestSocket() got an unknown keyword {option!r}: not a socket option") from None
                except (TypeError, ValueError, OverflowError, zmq.ZMQError) as exc:
                    add_context(exc, f"  in TestSocket(..., {option}={value!r:.60}) for {self.describe()}")
                    raise
            if security is not None:
                apply = getattr(security, "apply", None)
                if not callable(apply):
                    raise TypeError(
                        f"TestSocket(security=...) takes a mechanism of zmqtest.security (CurveClient, CurveServer, "
                        f"PlainClient, PlainServer), got {security!r:.80}"
                    )
                apply(self)
        except BaseException:
            self.close()
            raise

    @property
    def timeout(self) -> float | None:
        """Seconds a send or receive waits; ``None`` uses the harness default."""
        return self.__dict__["_timeout"]  # type: ignore[no-any-return]

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        if seconds is not None:
            seconds = parse_timeout(seconds, f"the timeout of {self.describe()}", allow_zero=True)
        self.__dict__["_timeout"] = seconds

    @property
    def endpoint(self) -> str:
        """The one endpoint this socket is bound or connected to (with the real port after a random bind)."""
        endpoints = self.bound + self.connected
        if len(endpoints) != 1:
            raise ValueError(f"{self.describe()} has {len(endpoints)} endpoints; use .bound or .connected")
        return endpoints[0]

    def bind(self, addr: Endpoint) -> Any:
        """Bind to ``addr`` (a string or ``(host, port)``; port 0 picks a free one).

        Only on loopback (or ipc/inproc) unless the socket was made with
        ``allow_external=True``: a mimic is a test double, not a service for the network.
        """
        addr = parse_endpoint(addr, bind=True)
        if not self.__dict__["allow_external"]:
            reason = external_reason(addr)
            if reason is not None:
                raise ValueError(
                    f"bind({addr!r}) on {self.describe()} refused: {reason}, so other machines could reach this "
                    "mimic; bind it on loopback (tcp://127.0.0.1:PORT, ('', PORT), port 0 or '*' for any free port), "
                    "or make it with allow_external=True"
                )
        try:
            self._allow_ipv6(addr)
            peers = self._watch()
            result = super().bind(addr)
        except zmq.ZMQError as exc:
            add_context(exc, f"  in bind({addr!r}) on {self.describe()}")
            raise
        endpoint = self.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound.append(endpoint)
        if peers is not None:
            peers.attached(endpoint, "bound")
        return result

    def connect(self, addr: Endpoint) -> Any:
        """Connect to ``addr`` (a string or ``(host, port)``)."""
        addr = parse_endpoint(addr)
        try:
            self._allow_ipv6(addr)
            peers = self._watch()
            result = super().connect(addr)
        except zmq.ZMQError as exc:
            add_context(exc, f"  in connect({addr!r}) on {self.describe()}")
            raise
        self.connected.append(addr)
        if peers is not None:
            peers.attached(addr, "connected")
        return result

    def unbind(self, addr: Endpoint | bytes) -> None:
        """Stop listening on ``addr`` (an entry of ``.bound``, or as given to :meth:`bind` with its port)."""
        self._detach("unbind", super().unbind, addr, self.bound)

    def disconnect(self, addr: Endpoint | bytes) -> None:
        """Disconnect from ``addr`` (an entry of ``.connected``, or as given to :meth:`connect`)."""
        self._detach("disconnect", super().disconnect, addr, self.connected)

    def _detach(self, verb: str, call: Callable[[str], None], addr: Endpoint | bytes, endpoints: list[str]) -> None:
        addr = parse_endpoint(addr.decode() if isinstance(addr, bytes) else addr)
        try:
            call(addr)
        except zmq.ZMQError as exc:
            add_context(exc, f"  in {verb}({addr!r}) on {self.describe()}")
            raise
        _discard(endpoints, addr)
        peers = self.__dict__["_peers"]
        if peers is not None:
            peers.detached(addr)

    @property
    def peers(self) -> PeerWatch | None:
        """What this socket knows of its peers (:class:`zmqtest.peers.PeerWatch`); ``None`` once closed.

        The watch starts at the first bind or connect, or when first asked for.
        """
        return self._watch()

    def _watch(self) -> PeerWatch | None:
        """The socket's peer watch, started now if not yet (before the first bind or connect, to see it)."""
        state = self.__dict__
        peers = state["_peers"]
        if peers is None and not self.closed:
            peers = state["_peers"] = PeerWatch(self)
        return peers  # type: ignore[no-any-return]

    def monitor(self, addr: str | bytes | None, events: int = zmq.EVENT_ALL) -> None:
        """Start (or with ``addr=None`` stop) a monitor of the test's own: it takes the place of the peer watch.

        libzmq allows one monitor per socket; timeout messages then no longer say what
        became of the peers.
        """
        super().monitor(addr, events)  # libzmq stops ours first, telling its reader
        peers = self.__dict__["_peers"]
        if peers is not None:
            peers.stop(
                "the test started a monitor of its own on this socket"
                if addr is not None
                else "the test stopped the socket's monitor"
            )

    def close(self, linger: int | None = None) -> None:
        """Close the socket (and its peer watch)."""
        peers = self.__dict__.get("_peers")
        if peers is not None:
            peers.stop("the socket was closed", self)
        super().close(linger)

    def _start_over(self) -> None:
        """After a receive on a REQ gave up: start over on new connections, as a real client does.

        A plain REQ would refuse the next request (EFSM); a client then opens a new socket
        (the zguide's Lazy Pirate). The mimic does the same on the socket it is: it
        disconnects and connects again each endpoint, so the reply to the request it gave
        up on, if it ever comes, goes to a connection that is gone and is never taken for
        the reply to the next one; the next request may go (REQ_RELAXED, for that one send
        only). The peer sees what it would see from a real client: a new connection. A REQ
        that is bound cannot start over without its peer reconnecting: its next send
        raises libzmq's EFSM, as a plain REQ's does, and says why.
        """
        state = self.__dict__
        if self.closed:
            return
        state["_pending"] = True
        if self.bound or not self.connected:
            state["_stuck"] = (
                "its last request got no reply, and a REQ that is bound cannot start over on a new connection (its "
                "peer would have to reconnect); close it and make a new one, as a real client would"
            )
            return
        record = _transcript()
        try:
            for endpoint in self.connected:
                zmq.Socket.disconnect(self, endpoint)
                zmq.Socket.connect(self, endpoint)
                peers = state["_peers"]
                if peers is not None:
                    peers.attached(endpoint, "connected")
            self.setsockopt(zmq.REQ_RELAXED, 1)
        except zmq.ZMQError as exc:  # the context is going away: the failure that got us here is what matters
            state["_stuck"] = f"it could not start over after its last request got no reply ({exc})"
            return
        if record is not None:
            record.note_on(self, "started over on a new connection: a late reply to the last request is dropped")

    def _settle(self, sent: bool) -> None:
        """After the first send or receive that worked since :meth:`_start_over`: a REQ like any other again.

        A new request is out: refuse a second one (EFSM), as a plain REQ does. A reply came
        (a bound REQ's late one): the next send is a normal one.
        """
        state = self.__dict__
        if sent:
            if not state["_stuck"] and not self.closed:
                self.setsockopt(zmq.REQ_RELAXED, 0)
        elif not state["_stuck"]:
            return  # a reply, yet no new request since starting over: keep the next send relaxed
        state["_pending"] = False
        state["_stuck"] = ""

    def _allow_ipv6(self, addr: str) -> None:
        """libzmq resolves IPv6 literals (``tcp://[::1]:5555``) only on sockets with IPV6 set."""
        if addr.startswith("tcp://["):
            self.setsockopt(zmq.IPV6, 1)

    send = _waiting("send", 1)
    send_multipart = _waiting("send_multipart", 1)
    send_json = _waiting("send_json", 1)
    send_string = _waiting("send_string", 1)
    send_pyobj = _waiting("send_pyobj", 1)
    send_serialized = _waiting("send_serialized", 2)
    recv = _waiting("recv", 0)
    recv_multipart = _waiting("recv_multipart", 0)
    recv_json = _waiting("recv_json", 0)
    recv_string = _waiting("recv_string", 0)
    recv_pyobj = _waiting("recv_pyobj", 0)
    recv_serialized = _waiting("recv_serialized", 1)
    recv_into = _waiting("recv_into", None)

    def set(self, option: int, optval: Any) -> None:
        """Set a socket option (a SUB remembers that it subscribed, for its timeout message)."""
        if option == zmq.SUBSCRIBE:
            self.__dict__["_subscribed"] = True
        super().set(option, optval)

    setsockopt = set

    def _arm(self, seconds: float) -> None:
        """Make libzmq wait ``seconds`` in sends and receives (called only when it changes)."""
        millis = min(math.ceil(seconds * 1000), MAX_WAIT_MS)
        self.setsockopt(zmq.RCVTIMEO, millis)
        self.setsockopt(zmq.SNDTIMEO, millis)
        self.__dict__["_armed"] = seconds

    def _timeout_message(self, operation: str, seconds: float) -> str:
        kind = self._type_name
        sending = operation.startswith("send")
        peers = self.__dict__["_peers"]
        watched = peers.describe(queues=kind in _QUEUEING, role=security_role(self)) if peers is not None else ""
        if sending:
            hint = _SEND_HINTS.get(kind, "no peer took the message")
            if kind not in _SEND_HINTS and peers is not None and peers.any_connected():
                hint += f": its queue is full (sndhwm={int(self.getsockopt(zmq.SNDHWM))} messages per peer)"
            what = f"could not send within {seconds:g} s: {hint}"
        else:
            hint = _RECV_HINTS.get(kind, "no message")
            if kind == "SUB" and not self.__dict__.get("_subscribed"):
                hint = 'this SUB has not subscribed to any topic, so it receives nothing (subscribe=b"": everything)'
            what = (
                f"{hint} within {seconds:g} s" if hint.startswith("no ") else f"no message within {seconds:g} s: {hint}"
            )
        if not sending:
            what += self._maxmsgsize_hint()
        if watched:
            what += f"; {watched}"
        elif self.connected and not self.bound and (sending or kind == "REQ"):
            what += f" (is a process bound to {', '.join(self.connected)} and running?)"
        elif sending and self.bound and not self.connected:
            what += " (has the process connected?)"
        return f"{operation} on {self.describe()}: {what}"

    def _maxmsgsize_hint(self) -> str:
        """After a receive timed out on a socket with MAXMSGSIZE: what libzmq does with a bigger message."""
        limit = int(self.getsockopt(zmq.MAXMSGSIZE))
        if limit < 0:
            return ""
        return (
            f"; this socket has maxmsgsize={limit} bytes: libzmq drops the connection of a peer that sends a bigger "
            "message, and the message with it, so it never arrives (the peer reconnects and may send it again)"
        )

    def describe(self) -> str:
        """``REQ socket 'client' connected to tcp://127.0.0.1:5555``: for messages."""
        text = f"{self._type_name} socket"
        if self.name:
            text += f" {self.name!r}"
        places = []
        if self.bound:
            places.append("bound to " + ", ".join(self.bound))
        if self.connected:
            places.append("connected to " + ", ".join(self.connected))
        text += " " + " and ".join(places) if places else " (not bound or connected)"
        security = self.__dict__.get("_security")
        if security is not None:
            text += f" [{security.describe()}]"
        return text + (" [closed]" if self.closed else "")

    def __repr__(self) -> str:
        return f"<TestSocket {self.describe()}>"


def _discard(endpoints: list[str], addr: str) -> None:
    if addr in endpoints:
        endpoints.remove(addr)


def _is_option(sock: TestSocket, name: str) -> bool:
    """Whether ``TestSocket(..., name=value)`` names a socket option (not a method or attribute it would hide)."""
    if name.lower() in ("subscribe", "unsubscribe"):
        return True
    if name in sock.__dict__:
        return False
    attribute = getattr(type(sock), name, None)
    if attribute is not None:
        return isinstance(attribute, property)  # pyzmq's own option properties, e.g. hwm
    return name.upper() in zmq.SocketOption.__members__


def make_sock(
    context: zmq.Context[Any],
    sock_type: int,
    bind: Endpoint | None = None,
    connect: Endpoint | None = None,
    **options: Any,
) -> TestSocket:
    """Create a :class:`TestSocket` and bind and/or connect it.

    ``bind``/``connect`` take ``(host, port)`` or an endpoint string; ``options``
    go to :class:`TestSocket` (``timeout``, ``name``, socket options).
    """
    sock = TestSocket(context, sock_type, **options)
    try:
        if bind is not None:
            sock.bind(bind)
        if connect is not None:
            sock.connect(connect)
    except BaseException:
        sock.close()
        raise
    return sock
