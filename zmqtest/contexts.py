"""A test's zmq context and its sockets: made on demand, all closed, terminated within a deadline.

``Context.term()`` waits until every socket of the context is closed and, with the
default LINGER of -1, until every queued message is delivered: one leaked socket
with an unsent message hangs a test run forever. :func:`terminate_context` closes
every socket the context knows of with LINGER 0 first (what ``Context.destroy``
does) and then terminates it in a helper thread with a deadline; if a socket the
context does not know of is still open (one made with ``zmq.Socket(context, ...)``,
or one another thread holds), it raises :class:`ContextNotTerminated` naming it
instead of hanging. Once it returns, every port and ipc path the sockets held is
released, so the next test can bind them again at once (closing alone does not
guarantee that: libzmq closes sockets asynchronously).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import weakref
from types import TracebackType
from typing import Any

import zmq

from zmqtest.endpoints import EndpointSpec
from zmqtest.errors import ZmqTestError
from zmqtest.settings import parse_timeout
from zmqtest.sockets import TestSocket, make_sock

__all__ = ["TERM_TIMEOUT", "ContextNotTerminated", "SocketFactory", "TestContext", "terminate_context"]

TERM_TIMEOUT = 5.0
"""Seconds :func:`terminate_context` waits by default (termination takes < 1 ms once every socket is closed)."""


class ContextNotTerminated(ZmqTestError, RuntimeError):
    """A zmq context did not terminate within its deadline: some socket on it is still open.

    ``sockets`` describes the open sockets found (there may be none to name when
    libzmq itself is stuck). Close them and call :func:`terminate_context` again to
    wait for the termination already under way.
    """

    def __init__(self, message: str, *, sockets: list[str], timeout: float) -> None:
        super().__init__(message)
        self.sockets = sockets
        self.timeout = timeout


class TestContext(zmq.Context["zmq.Socket[Any]"]):
    """A ``zmq.Context`` that keeps each socket made on it until the socket is closed.

    pyzmq remembers a context's sockets weakly, so a socket a test drops is closed by
    the garbage collector as soon as the test returns: with a ResourceWarning (an
    error under ``-W error``) and its own LINGER. Kept here, it is closed by
    :func:`terminate_context` at teardown instead, with LINGER 0 and no warning.
    """

    __test__ = False  # not a test class, whatever pytest's name patterns say
    _kept: set[zmq.Socket[Any]]  # declared here: pyzmq treats unknown attributes as context options

    def __init__(self, io_threads: int = 1) -> None:
        super().__init__(io_threads)
        self._kept = set()

    def _add_socket(self, socket: Any) -> None:
        super()._add_socket(socket)
        self._kept.add(socket)

    def _rm_socket(self, socket: Any) -> None:
        super()._rm_socket(socket)
        kept = getattr(self, "_kept", None)  # None while the interpreter shuts down
        if kept is not None:
            kept.discard(socket)


class _Termination:
    """One context's ``term()`` in a helper thread, remembered so that a second :func:`terminate_context` waits for it.

    One short-lived thread per call, not a pool: a thread that outlived its call
    would make every later ``fork()`` warn that the process is multi-threaded
    (Python 3.12+), an error under ``-W error``.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(context,), name="zmqtest-term", daemon=True)
        self.thread.start()

    def _run(self, context: zmq.Context[Any]) -> None:
        try:
            context.term()
        except BaseException as exc:  # handed to the caller, who raises it
            self.error = exc


class _UnderWay:
    """The terminations started and not yet seen through, by context (held weakly)."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked child has none of their threads
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.by_context: weakref.WeakKeyDictionary[zmq.Context[Any], _Termination] = weakref.WeakKeyDictionary()


_under_way = _UnderWay()


def terminate_context(context: zmq.Context[Any], timeout: float | None = None, *, by: str | None = None) -> None:
    """Close every socket of ``context`` with LINGER 0, then terminate it within ``timeout`` seconds.

    ``timeout`` defaults to :data:`TERM_TIMEOUT`; ``by`` names who terminates it, for
    the error a mimic closed here raises if it is used later. Raises :class:`ContextNotTerminated`
    naming the sockets still open if the context does not terminate in time; never
    hangs. Closing sockets is not thread-safe: call this when no other thread uses
    the context's sockets any more (at the end of a test), as for ``Context.destroy``.
    """
    seconds = parse_timeout(TERM_TIMEOUT if timeout is None else timeout, "the timeout of terminate_context()")
    if context.closed:
        return
    with _under_way.lock:
        termination = _under_way.by_context.get(context)
        if termination is None:
            closer = by or "terminate_context(), with its context"
            for sock in list(getattr(context, "_sockets", None) or ()):
                if sock.closed:
                    continue
                if isinstance(sock, TestSocket):
                    sock.close(linger=0, by=closer)
                else:
                    sock.close(linger=0)
            termination = _under_way.by_context[context] = _Termination(context)
    termination.thread.join(seconds)
    if termination.thread.is_alive():
        left = _open_sockets(context)
        named = "; ".join(left) if left else "none found: libzmq may be stuck"
        raise ContextNotTerminated(
            f"zmq context could not terminate within {seconds:g} s, open sockets likely remain in test: {named}",
            sockets=left,
            timeout=seconds,
        )
    if termination.error is not None:
        raise termination.error


def _open_sockets(context: zmq.Context[Any]) -> list[str]:
    """Describe the sockets still open on ``context``, including those it does not track (a slow search)."""
    found = []
    for obj in gc.get_objects():
        if issubclass(type(obj), zmq.Socket) and obj.context is context and not obj.closed:
            found.append(repr(obj))
    return sorted(found)


class SocketFactory(contextlib.AbstractContextManager["SocketFactory"]):
    """Makes mimic sockets on one context and closes all of them (LINGER 0) at :meth:`close`.

    ``factory(zmq.REQ, connect=endpoint, name="client")`` is
    :func:`~zmqtest.sockets.make_sock` on ``context``; the socket is tracked. Usable
    without pytest::

        with SocketFactory(context) as sockets:
            client = sockets(zmq.REQ, connect=endpoint, timeout=0.5)
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.context = context
        self.sockets: list[TestSocket] = []

    def __call__(
        self,
        sock_type: int,
        *,
        bind: EndpointSpec | None = None,
        connect: EndpointSpec | None = None,
        name: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> TestSocket:
        """A :class:`~zmqtest.sockets.TestSocket` of ``sock_type``, bound and/or connected, closed at :meth:`close`.

        ``timeout`` bounds its sends and receives (seconds; ``None``: the harness
        default), ``name`` appears in its errors, other keywords set socket options.
        """
        sock = make_sock(self.context, sock_type, bind=bind, connect=connect, name=name, timeout=timeout, **options)
        self.sockets = [made for made in self.sockets if not made.closed]
        self.sockets.append(sock)
        return sock

    def close(self, by: str | None = None) -> None:
        """Close every socket made here (LINGER 0: unsent messages are dropped, nothing blocks).

        ``by`` names who closes them, for the error a socket raises if it is used later.
        """
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            if not sock.closed:
                sock.close(linger=0, by=by or "SocketFactory.close()")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SocketFactory {len(self.sockets)} sockets>"
