"""Fixtures for zmqtest's own tests: a fresh context per test that never outlives it.

Every socket made through ``socks`` (or handed to ``socks.track``) is closed at
teardown; the context is then terminated in a helper thread with a deadline, so a
leaked socket fails the test by name instead of hanging the run.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zmq

from zmqtest import TestSocket, make_sock

TERM_DEADLINE = 5.0
"""Seconds a context may take to terminate at teardown (it takes < 1 ms when every socket is closed)."""

SocketT = TypeVar("SocketT", bound=zmq.Socket)  # type: ignore[type-arg]


class Sockets:
    """Makes mimic sockets on one context and closes every one of them at teardown."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.context = context
        self.made: list[zmq.Socket[Any]] = []

    def __call__(self, sock_type: int, bind: Any = None, connect: Any = None, **options: Any) -> TestSocket:
        """``make_sock`` on the test's context; the socket is closed at teardown."""
        return self.track(make_sock(self.context, sock_type, bind=bind, connect=connect, **options))

    def track(self, sock: SocketT) -> SocketT:
        """Close ``sock`` (made some other way) at teardown too."""
        self.made.append(sock)
        return sock

    def close_all(self) -> None:
        for sock in self.made:
            if not sock.closed:
                sock.close(linger=0)


def _term_within(context: zmq.Context[Any], seconds: float) -> bool:
    """Terminate ``context`` in a helper thread; False if it is still blocked after ``seconds``."""
    thread = threading.Thread(target=context.term, name="zmqtest-term", daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    """A fresh zmq.Context, terminated (with a deadline) after the test's sockets are closed."""
    context: zmq.Context[Any] = zmq.Context()
    yield context
    for sock in list(getattr(context, "_sockets", None) or ()):  # made with context.socket(...)
        if not sock.closed:
            sock.close(linger=0)
    if not _term_within(context, TERM_DEADLINE):
        pytest.fail(f"zmq context did not terminate within {TERM_DEADLINE:g} s: a socket was left open", pytrace=False)


@pytest.fixture
def term_within() -> Callable[[zmq.Context[Any], float], bool]:
    """``term_within(context, seconds)``: terminate in a helper thread; False if still blocked after ``seconds``."""
    return _term_within


@pytest.fixture
def socks(ctx: zmq.Context[Any]) -> Iterator[Sockets]:
    """``socks(zmq.REQ, connect=..., timeout=...)``: TestSockets on ``ctx``, all closed at teardown."""
    sockets = Sockets(ctx)
    try:
        yield sockets
    finally:
        sockets.close_all()


@pytest.fixture
def ipc_dir() -> Iterator[Path]:
    """A private (0700) short directory for ipc endpoints (ipc paths are limited to ~107 characters)."""
    path = Path(tempfile.mkdtemp(prefix="zt"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def arming(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[int, Any]]]:
    """``armed = arming(sock, ...)``: records every RCVTIMEO/SNDTIMEO value set on those sockets from now on."""

    def spy_on(*socks: zmq.Socket[Any]) -> list[tuple[int, Any]]:
        armed: list[tuple[int, Any]] = []
        for sock in socks:
            original = sock.setsockopt

            def spy(option: int, value: Any, original: Callable[[int, Any], None] = original) -> None:
                if option in (zmq.RCVTIMEO, zmq.SNDTIMEO):
                    armed.append((option, value))
                original(option, value)

            monkeypatch.setattr(sock, "setsockopt", spy)
        return armed

    return spy_on
