"""Mimic sockets: pyzmq sockets that play a peer of the process under test.

A :class:`TestSocket` is a :class:`zmq.Socket` (so pollers, monitors, options and
``isinstance`` work as usual) whose sends and receives wait at most a timeout and
then raise :class:`~zmqtest.errors.SocketTimeout`, naming the operation, the socket,
its endpoints and the timeout. A message that is already there comes back at once.
How they wait, and what a failed wait says, is :mod:`zmqtest.sendrecv`; how a REQ
whose receive gave up starts over is :mod:`zmqtest.startover`. This module is the
socket itself: what it sets up, where it binds and connects, how it describes itself.

Every frame sent and received, and every wait that failed, goes into the test's
transcript (:mod:`zmqtest.transcript`) when one records.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from zmqtest import transcript
from zmqtest.compat import register_socket
from zmqtest.endpoints import Endpoint, EndpointSpec, external_reason, parse_endpoint
from zmqtest.errors import add_context
from zmqtest.peers import PeerWatch
from zmqtest.sendrecv import DEATH_GRACE_MS, FIRST_WAIT, FLAGS_AT, MAX_WAIT_MS, closed_error, waiting
from zmqtest.settings import parse_timeout

__all__ = ["DEATH_GRACE_MS", "FIRST_WAIT", "MAX_WAIT_MS", "TestSocket", "make_sock", "parse_endpoint"]
# DEATH_GRACE_MS, FIRST_WAIT, MAX_WAIT_MS: zmqtest.sendrecv's, also here, where they were first.

RECONNECT_IVL_MS = 1
"""libzmq's default (100 ms) would make a mimic that connects before the process has bound wait that long; at 10 ms
it connected 7-9 ms after the bind (median), at 2 ms 1.0-1.7 ms after (libzmq adds jitter), at 1 ms 0.3-0.6 ms,
for a refused connect every 1 ms meanwhile. A process test's readiness waits for it (copied at connect)."""

_ipc_bound: weakref.WeakValueDictionary[str, TestSocket] = weakref.WeakValueDictionary()
"""The ipc paths that live mimics of this process are bound to, and by which one: libzmq lets a second bind take a
path over silently (it replaces the file), so a mimic refuses it. Nothing on the wire: no probe of the path."""
if hasattr(os, "register_at_fork"):  # a forked child's mimics are its own
    os.register_at_fork(after_in_child=_ipc_bound.clear)
_OUTSIDE = (os.path.dirname(zmq.__file__) + os.sep, os.path.dirname(__file__) + os.sep)
"""Where the frames of pyzmq and zmqtest come from: the caller of close() is the first frame outside them."""


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
    reply is never taken for the next one (:mod:`zmqtest.startover`). ``security=`` makes
    it a CURVE or PLAIN peer (:mod:`zmqtest.security`); ``immediate=True`` and any
    other option are the user's choice.
    """

    __test__ = False  # not a test class, whatever pytest's name patterns say

    name: str | None
    type_name: str
    """``"REQ"``, ``"ROUTER"``, ...: the socket type's name, for messages."""
    allow_external: bool
    bound: list[Endpoint]
    """The endpoints it is bound to, with the real port or path after a bind to ``*`` (:class:`Endpoint` strings)."""
    connected: list[Endpoint]

    def __new__(cls, context: zmq.Context[Any], socket_type: int, *args: Any, **kwargs: Any) -> TestSocket:
        """On a ``zmq.asyncio.Context``: an :class:`~zmqtest.asyncio.AsyncTestSocket` (sends and receives awaited)."""
        if cls is TestSocket:
            asyncio_module = sys.modules.get("zmq.asyncio")  # imported already if the context is one of its own
            if asyncio_module is not None and isinstance(context, asyncio_module.Context):
                from zmqtest.asyncio import AsyncTestSocket

                cls = AsyncTestSocket
        new: Any = super().__new__
        return new(cls, context, socket_type, *args, **kwargs)  # type: ignore[no-any-return]

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
            _closed_by="",
            name=name,
            type_name=zmq.SocketType(socket_type).name,
            allow_external=allow_external is True,
            bound=[],
            connected=[],
        )
        register_socket(context, self)  # what context.socket() does, so that destroy() closes it too
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
    def endpoint(self) -> Endpoint:
        """The one endpoint this socket is bound or connected to (with the real port after a random bind).

        An :class:`~zmqtest.endpoints.Endpoint`: ``sock.endpoint.port`` is the port it got.
        """
        endpoints = self.bound + self.connected
        if len(endpoints) != 1:
            raise ValueError(f"{self.describe()} has {len(endpoints)} endpoints; use .bound or .connected")
        return endpoints[0]

    def bind(self, addr: EndpointSpec) -> Any:
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
        path = _ipc_path(addr)
        holder = _ipc_bound.get(path) if path is not None else None
        if holder is not None and not holder.closed:
            raise zmq.ZMQError(
                zmq.EADDRINUSE,
                f"bind({addr!r}) on {self.describe()} refused: {holder.describe()} holds that path; libzmq would "
                "let this bind take it over silently (it replaces the socket file), and the first socket would get "
                "no more connections; unbind or close that one first, or bind another path",
            )
        result = self._attach("bind", super().bind, addr)
        path = _ipc_path(self.bound[-1])
        if path is not None:
            _ipc_bound[path] = self
        return result

    def connect(self, addr: EndpointSpec) -> Any:
        """Connect to ``addr`` (a string or ``(host, port)``)."""
        return self._attach("connect", super().connect, parse_endpoint(addr))

    def unbind(self, addr: EndpointSpec | bytes) -> None:
        """Stop listening on ``addr`` (an entry of ``.bound``, or as given to :meth:`bind` with its port)."""
        self._detach("unbind", super().unbind, addr, self.bound)

    def disconnect(self, addr: EndpointSpec | bytes) -> None:
        """Disconnect from ``addr`` (an entry of ``.connected``, or as given to :meth:`connect`)."""
        self._detach("disconnect", super().disconnect, addr, self.connected)

    def _attach(self, verb: str, call: Callable[[str], Any], addr: str) -> Any:
        """Bind or connect to ``addr``, then list the endpoint (a bind's with its real port) and tell the peer watch."""
        with self._naming_errors(verb, addr):
            self._allow_ipv6(addr)
            peers = self._watch()
            result = call(addr)
        if verb == "bind":
            endpoint, endpoints, how = Endpoint(self.getsockopt_string(zmq.LAST_ENDPOINT)), self.bound, "bound"
        else:
            endpoint, endpoints, how = Endpoint(addr), self.connected, "connected"
        endpoints.append(endpoint)
        if peers is not None:
            peers.attached(endpoint, how)
        return result

    def _detach(
        self, verb: str, call: Callable[[str], None], addr: EndpointSpec | bytes, endpoints: list[Endpoint]
    ) -> None:
        addr = parse_endpoint(addr.decode() if isinstance(addr, bytes) else addr)
        with self._naming_errors(verb, addr):
            call(addr)
        if verb == "unbind":
            _release(self, addr)
        _discard(endpoints, addr)
        peers = self.__dict__["_peers"]
        if peers is not None:
            peers.detached(addr)

    @contextlib.contextmanager
    def _naming_errors(self, verb: str, addr: str) -> Iterator[None]:
        """Name this socket in a ZMQError of ``verb(addr)``; on a closed socket, say who closed it."""
        try:
            yield
        except zmq.ZMQError as exc:
            if exc.errno == zmq.ENOTSOCK and self.closed:
                raise closed_error(self, f"{verb}({addr!r})") from None
            add_context(exc, f"  in {verb}({addr!r}) on {self.describe()}")
            raise

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

    def close(self, linger: int | None = None, *, by: str | None = None) -> None:
        """Close the socket (and its peer watch); ``by`` names who closes it, for the error a later use raises.

        ``by`` defaults to ``close()`` and the line that called it.
        """
        state = self.__dict__
        if not self.closed and "bound" in state:
            state["_closed_by"] = by or state.get("_closing_by") or _caller_of_close()
            for endpoint in self.bound:
                _release(self, endpoint)
        peers = state.get("_peers")
        if peers is not None:
            peers.stop("the socket was closed", self)
        super().close(linger)

    def _allow_ipv6(self, addr: str) -> None:
        """libzmq resolves IPv6 literals (``tcp://[::1]:5555``) only on sockets with IPV6 set."""
        if addr.startswith("tcp://["):
            self.setsockopt(zmq.IPV6, 1)

    # send, send_multipart, send_json, ..., recv_into: pyzmq's, made to wait (zmqtest.sendrecv), set below the class

    def set(self, option: int, optval: Any) -> None:
        """Set a socket option (a SUB remembers that it subscribed, for its timeout message)."""
        if option == zmq.SUBSCRIBE:
            self.__dict__["_subscribed"] = True
        super().set(option, optval)

    setsockopt = set

    def describe(self) -> str:
        """``REQ socket 'client' connected to tcp://127.0.0.1:5555``: for messages."""
        text = f"{self.type_name} socket"
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


for _name, _flags_at in FLAGS_AT.items():
    setattr(TestSocket, _name, waiting(_name, _flags_at))
del _name, _flags_at


def _ipc_path(endpoint: str) -> str | None:
    """Return the socket file of an ipc endpoint; ``None`` for other transports, ``ipc://*`` and abstract names.

    A second bind to an abstract name (``ipc://@name``) fails by itself, with EADDRINUSE.
    """
    if not endpoint.startswith("ipc://") or endpoint == "ipc://*" or endpoint.startswith("ipc://@"):
        return None
    return os.path.abspath(endpoint[len("ipc://") :])


def _release(sock: TestSocket, endpoint: str) -> None:
    """Forget that ``sock`` holds the ipc path of ``endpoint`` (after its unbind or close)."""
    path = _ipc_path(endpoint)
    if path is not None and _ipc_bound.get(path) is sock:
        del _ipc_bound[path]


def _caller_of_close() -> str:
    """Say where close() was called from: the first line outside pyzmq and zmqtest."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename.startswith(_OUTSIDE):
        frame = frame.f_back
    if frame is None:
        return "close()"
    return f"close() at {os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _discard(endpoints: list[Endpoint], addr: str) -> None:
    for index, endpoint in enumerate(endpoints):
        if endpoint == addr:
            del endpoints[index]
            return


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
    bind: EndpointSpec | None = None,
    connect: EndpointSpec | None = None,
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
