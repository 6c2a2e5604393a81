"""The test's side of ZAP: which CURVE and PLAIN clients a server mimic lets in, decided by pyzmq's authenticator.

When the test plays the server of a process under test that is a CURVE or PLAIN client,
an :class:`Authenticator` on the test's context (the ``zmq_authenticator`` fixture makes
one) allows the client keys and passwords the test gives, rejects every other one (the
process sees ``HANDSHAKE_FAILED_AUTH``), and lists each decision in ``requests``. Its
thread is always stopped, within a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from types import TracebackType
from typing import Any, NamedTuple

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from zmqtest.errors import ZmqTestError
from zmqtest.security import RAW_KEY_LENGTH, CurveKeys, as_text, check_credential, check_public_key, short_key

__all__ = ["Authenticator", "ZapRequest"]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""Where libzmq asks for a ZAP decision: one handler per context binds it."""
STOP_TIMEOUT = 5.0
"""Seconds :meth:`Authenticator.close` waits for its thread by default (it stops within a millisecond)."""

_log = logging.getLogger("zmqtest.authenticator")


class ZapRequest(NamedTuple):
    """One ZAP request an :class:`Authenticator` decided: who asked to get in, and the answer."""

    mechanism: str
    """``"CURVE"``, ``"PLAIN"`` (or ``"NULL"``, for a server with a ZAP domain and no mechanism)."""
    domain: str
    """The server socket's ZAP domain (``""``: none)."""
    address: str
    """The client's IP address (empty for ipc)."""
    user: str
    """The CURVE client's public key (Z85 text) or the PLAIN user name; never a password."""
    allowed: bool
    status: str
    """The ZAP status text: ``"OK"``, ``"Unknown key"``, ``"Invalid password"``..."""

    def describe(self) -> str:
        """``CURVE client 'Yne@$w-v...' from 127.0.0.1: rejected (Unknown key)``."""
        who = f"client {short_key(self.user.encode())}" if self.mechanism == "CURVE" else f"user {self.user!r}"
        where = f" from {self.address}" if self.address else ""
        domain = f" in ZAP domain {self.domain!r}" if self.domain else ""
        verdict = "allowed" if self.allowed else f"rejected ({self.status})"
        return f"{self.mechanism} {who}{where}{domain}: {verdict}"


class _QuietLog:
    """The ``log`` of pyzmq's authenticator: its debug lines (with PLAIN passwords in them) are dropped."""

    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def warning(self, *args: Any, **kwargs: Any) -> None:
        _log.warning(*args, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        _log.error(*args, **kwargs)


class _AllowedKeys:
    """A CURVE credentials provider of pyzmq's authenticator: the keys allowed in one ZAP domain."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class _Handler(ThreadAuthenticator):
    """pyzmq's thread authenticator, recording each decision (pyzmq has no hook for them: two overrides)."""

    def __init__(self, context: zmq.Context[Any], requests: list[ZapRequest]) -> None:
        super().__init__(context=context, log=_QuietLog())
        self.requests = requests
        self.current: tuple[str, str, str, str] | None = None

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self.current = None
        if len(msg) >= 6:
            domain, address, mechanism = (as_text(frame) for frame in (msg[2], msg[3], msg[5]))
            user = ""
            if mechanism == "CURVE" and len(msg) == 7 and len(msg[6]) == RAW_KEY_LENGTH:
                user = z85.encode(msg[6]).decode("ascii")
            elif mechanism == "PLAIN" and len(msg) == 8:
                user = as_text(msg[6])
            self.current = (mechanism, domain, address, user)
        try:
            await super().handle_zap_message(msg)
        finally:
            self.current = None

    def _send_zap_reply(
        self, request_id: bytes, status_code: bytes, status_text: bytes, user_id: str = "anonymous"
    ) -> None:
        if self.current is not None:
            mechanism, domain, address, user = self.current
            self.requests.append(
                ZapRequest(mechanism, domain, address, user, status_code == b"200", as_text(status_text))
            )
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


def _domain(domain: object, role: str) -> str:
    """A ZAP domain as pyzmq's authenticator files it: ``"*"`` for servers that set none."""
    if not isinstance(domain, str):
        raise TypeError(f"{role} must be a str, the server's ZAP domain ('*': a server that sets none), got {domain!r}")
    if domain == "":
        return "*"
    check_credential(domain, role)
    return domain


class Authenticator(contextlib.AbstractContextManager["Authenticator"]):
    """pyzmq's ZAP handler (``zmq.auth.thread.ThreadAuthenticator``) on ``context``: started at once, always stopped.

    It decides for the CURVE and PLAIN server sockets of ``context`` (mimics made with
    :class:`CurveServer` or :class:`PlainServer`) which clients get in: only those allowed
    with :meth:`allow_curve` and :meth:`allow_plain`; every other one is rejected (ZAP status
    400), and the client sees ``HANDSHAKE_FAILED_AUTH``. ``requests`` lists each decision.
    ``close()`` (or the end of a ``with`` block) stops its thread, within a deadline.

    ``domain`` is the server's ZAP domain (``CurveServer(..., zap_domain=...)``); the default,
    ``"*"``, is the one of servers that set none. As in pyzmq, it does not stand for the others.
    libzmq allows one ZAP handler per context.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        if not isinstance(context, zmq.Context):
            raise TypeError(
                f"Authenticator(context) needs the zmq.Context of the server mimics it decides for, got {context!r:.80}"
            )
        self.context = context
        self._requests: list[ZapRequest] = []
        self._curve: dict[str, _AllowedKeys] = {}
        self._plain: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        handler = _Handler(context, self._requests)
        try:
            handler.start()
        except zmq.ZMQError as exc:
            zap_taken = handler.pipe is None  # the ZAP bind comes first, then the pipe's
            _close_quietly(handler)
            if exc.errno == zmq.EADDRINUSE and zap_taken:
                raise ZmqTestError(
                    f"another ZAP handler already serves this context ({ZAP_ENDPOINT} is bound): libzmq allows one "
                    "per context; allow the keys and passwords on that one (one Authenticator, or the "
                    "zmq_authenticator fixture, per context)"
                ) from None
            raise
        except BaseException:
            _close_quietly(handler)
            raise
        handler.thread.name = "zmqtest-authenticator"
        self._handler: _Handler | None = handler
        # servers without a ZAP domain: a key nobody allowed is an "Unknown key" (pyzmq: "Unknown domain")
        self._curve["*"] = _AllowedKeys()
        handler.configure_curve_callback("*", self._curve["*"])

    @property
    def requests(self) -> list[ZapRequest]:
        """The ZAP requests decided so far, oldest first (a copy)."""
        return list(self._requests)

    def allow_curve(self, *keys: CurveKeys | bytes | str, domain: str = "*") -> None:
        """Let the CURVE clients with these public keys (or :class:`CurveKeys`) in, on servers of ``domain``."""
        if not keys:
            raise TypeError("allow_curve() needs at least one client key: allow_curve(client_keys, ...)")
        zone = _domain(domain, "domain of allow_curve")
        allowed = [
            check_public_key(key, f"key {index} of allow_curve (a client's public key)")
            for index, key in enumerate(keys)
        ]
        handler = self._running("allow_curve")
        with self._lock:
            provider = self._curve.get(zone)
            if provider is None:
                provider = self._curve[zone] = _AllowedKeys()
                handler.configure_curve_callback(zone, provider)
            provider.keys.update(allowed)  # pyzmq hands the callback Z85 text

    def allow_plain(self, username: str, password: str, *, domain: str = "*") -> None:
        """Let the PLAIN client ``username`` with ``password`` in, on servers of ``domain``."""
        for value, role in ((username, "username"), (password, "password")):
            if not isinstance(value, str):
                raise TypeError(f"the {role} of allow_plain must be a str, got {type(value).__name__}")
            check_credential(value, f"the {role} of allow_plain")
        zone = _domain(domain, "domain of allow_plain")
        handler = self._running("allow_plain")
        with self._lock:
            passwords = self._plain.setdefault(zone, {})
            passwords[username] = password
            handler.configure_plain(zone, passwords)

    def _running(self, what: str) -> _Handler:
        if self._handler is None:
            raise ZmqTestError(f"{what}() on an Authenticator that is closed")
        return self._handler

    def describe(self) -> str:
        """``Authenticator allowing 2 CURVE keys and 1 PLAIN user; 3 requests (1 rejected)``."""
        keys = sum(len(provider.keys) for provider in self._curve.values())
        users = sum(len(passwords) for passwords in self._plain.values())
        requests = self._requests[:]
        rejected = sum(not request.allowed for request in requests)
        state = "" if self._handler is not None else " [closed]"
        return (
            f"Authenticator allowing {keys} CURVE key{'s' * (keys != 1)} and {users} PLAIN user{'s' * (users != 1)}; "
            f"{len(requests)} request{'s' * (len(requests) != 1)} ({rejected} rejected){state}"
        )

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread (within ``timeout`` seconds, default 5) and close its sockets; safe to call twice."""
        handler = self._handler
        if handler is None:
            return
        seconds = STOP_TIMEOUT if timeout is None else timeout
        thread = handler.thread
        if handler.pipe is not None:
            with contextlib.suppress(zmq.ZMQError):  # a thread that ended has closed its end: never block
                handler.pipe.send(b"TERMINATE", zmq.NOBLOCK)
        if thread is not None:
            thread.join(seconds)
            if thread.is_alive():
                raise ZmqTestError(
                    f"the authenticator's thread did not stop within {seconds:g} s; its sockets are left open "
                    "(closing them under a running thread could crash the process)"
                )
        self._handler = None
        _close_quietly(handler)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _close_quietly(handler: ThreadAuthenticator) -> None:
    """Close the sockets of a handler whose thread has ended (or never started), and release its endpoints at once.

    pyzmq's own ``stop()`` closes the ZAP socket and the pipe to the thread without unbinding them: libzmq
    then releases the addresses only later, asynchronously, and a new handler on the same context fails
    with EADDRINUSE meanwhile (the pipe's address is made of ``id(handler)``, which a new handler may get
    again). ``unbind`` of an inproc address takes effect at once.
    """
    pipe, zap = handler.pipe, handler.zap_socket
    handler.pipe = None  # type: ignore[assignment]  # so that pyzmq's stop() (from __del__) does nothing
    handler.thread = None  # type: ignore[assignment]
    handler.zap_socket = None  # type: ignore[assignment]
    if pipe is not None and not pipe.closed:
        with contextlib.suppress(zmq.ZMQError):  # pyzmq names it after id(handler), which a later handler may reuse
            pipe.unbind(handler.pipe_endpoint)
        pipe.close(linger=0)
    if zap is not None and not zap.closed:
        with contextlib.suppress(zmq.ZMQError):  # never bound (the bind failed)
            zap.unbind(ZAP_ENDPOINT)
        zap.close(linger=0)
