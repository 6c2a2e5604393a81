"""What zmqtest's pytest fixtures do (:mod:`zmqtest.fixtures` defines them for pytest): loaded when a test first
uses one.

Apart from :mod:`zmqtest.fixtures` so that the module pytest loads in every run is only the fixtures' names,
arguments and help: pytest parses and compiles each module of a plugin's distribution where it cannot use a cached
copy (``PYTHONDONTWRITEBYTECODE``), and this one need not be parsed in a run that uses no fixture of zmqtest.
Each generator here is driven by the fixture of the same name (``yield from``); ``__tracebackhide__`` keeps a
teardown error reported at the fixture.

PYTEST_DONT_REWRITE: it has no asserts, so that rewriter need not walk it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    import zmq
    import zmq.asyncio

    from zmqtest.authenticator import Authenticator
    from zmqtest.contexts import SocketFactory
    from zmqtest.endpoints import EndpointFactory
    from zmqtest.processes import ProcessManager
    from zmqtest.replay import Recordings
    from zmqtest.tap import TapFactory

__all__ = [
    "PROCESSES",
    "async_context",
    "async_socket_factory",
    "authenticator",
    "context",
    "endpoint_factory",
    "process_factory",
    "replay",
    "socket_factory",
    "tap",
]

PROCESSES = pytest.StashKey["ProcessManager"]()
"""Where a test's process manager is kept, so that a failing test's report can show its processes."""

T = TypeVar("T")


def context(request: pytest.FixtureRequest) -> Iterator[zmq.Context[Any]]:
    __tracebackhide__ = True
    from zmqtest.contexts import TestContext, terminate_context

    made = TestContext()
    yield from _owned(made, lambda: terminate_context(made, by=_closer("zmq_context", request)))


def socket_factory(request: pytest.FixtureRequest, zmq_context: zmq.Context[Any]) -> Iterator[SocketFactory]:
    __tracebackhide__ = True
    from zmqtest.contexts import SocketFactory

    factory = SocketFactory(zmq_context)
    yield from _owned(factory, lambda: factory.close(by=_closer("zmq_socket_factory", request)))


def endpoint_factory() -> Iterator[EndpointFactory]:
    __tracebackhide__ = True
    from zmqtest.endpoints import EndpointFactory

    factory = EndpointFactory()
    yield from _owned(factory, factory.close)


def process_factory(
    request: pytest.FixtureRequest, tmp_path: Path, zmq_socket_factory: SocketFactory
) -> Iterator[ProcessManager]:
    __tracebackhide__ = True  # an unexpected exit at teardown is reported without this fixture's source
    from zmqtest.processes import ProcessManager

    try:
        manager = ProcessManager(tmp_path / "zmqtest-processes", context=zmq_socket_factory.context)
        request.node.stash[PROCESSES] = manager
        yield from _owned(manager, manager.close)
    except KeyboardInterrupt:
        # A Ctrl-C held back while the processes stopped, raised once they all have. In a session that a Ctrl-C
        # ends already, it adds nothing, and raised it would cut the other fixtures' teardown (and the summary) short.
        if request.session.exitstatus != pytest.ExitCode.INTERRUPTED:
            raise


def authenticator(zmq_context: zmq.Context[Any]) -> Iterator[Authenticator]:
    __tracebackhide__ = True
    from zmqtest.authenticator import Authenticator

    made = Authenticator(zmq_context)
    yield from _owned(made, made.close)


def async_context(request: pytest.FixtureRequest) -> Iterator[zmq.asyncio.Context]:
    __tracebackhide__ = True
    from zmqtest.asyncio import AsyncTestContext
    from zmqtest.contexts import terminate_context

    made = AsyncTestContext()
    yield from _owned(made, lambda: terminate_context(made, by=_closer("zmq_async_context", request)))


def async_socket_factory(
    request: pytest.FixtureRequest, zmq_async_context: zmq.asyncio.Context
) -> Iterator[SocketFactory]:
    __tracebackhide__ = True
    from zmqtest.contexts import SocketFactory

    factory = SocketFactory(zmq_async_context)
    yield from _owned(factory, lambda: factory.close(by=_closer("zmq_async_socket_factory", request)))


def replay(request: pytest.FixtureRequest) -> Recordings:
    from zmqtest.replay import Recordings
    from zmqtest.settings import current

    return Recordings(request.path.parent / "golden", updating=current().update_golden, test=request.node.nodeid)


def tap() -> Iterator[TapFactory]:
    __tracebackhide__ = True
    from zmqtest.tap import TapFactory

    factory = TapFactory()
    yield from _owned(factory, factory.close)


def _closer(fixture: str, request: pytest.FixtureRequest) -> str:
    """Name a fixture that closes sockets at the end of a test, for the error a socket kept longer raises."""
    return (
        f"the {fixture} fixture at the end of {request.node.nodeid} (a fixture's sockets last one test: ask for the "
        "fixture in each test that uses them, rather than keep a socket in a global or a class attribute)"
    )


_left_to_the_test: list[object] = []
"""In a fork of a test, what the test's fixtures made: kept, never closed nor collected (a socket's close reads)."""


def _owned(resource: T, close: Callable[[], object]) -> Iterator[T]:
    """Yield ``resource``, then ``close()`` it, but not in a fork of this process.

    A test that forks itself tears down in its fork too (a ``return`` or ``sys.exit`` there goes through pytest):
    the sockets, threads and files are the test's, and a zmq read in a fork retries for ever. Its fork leaves them be.
    """
    __tracebackhide__ = True  # a teardown error is reported at the fixture, not here
    pid = os.getpid()
    try:
        yield resource
    finally:
        if os.getpid() == pid:
            close()
        else:
            _left_to_the_test.append(resource)
