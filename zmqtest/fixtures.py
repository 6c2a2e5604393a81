"""zmqtest's pytest fixtures: thin wrappers around objects that also work without pytest.

Registered by the plugin, which imports this module in every pytest run: so nothing
here imports pyzmq or the rest of zmqtest until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import zmq

    from zmqtest.contexts import SocketFactory
    from zmqtest.endpoints import EndpointFactory
    from zmqtest.processes import ProcessManager

__all__ = ["zmq_context", "zmq_endpoint", "zmq_endpoint_factory", "zmq_process_factory", "zmq_socket_factory"]

PROCESSES = pytest.StashKey["ProcessManager"]()
"""Where a test's process manager is kept, so that a failing test's report can show its processes."""


@pytest.fixture
def zmq_context() -> Iterator[zmq.Context[Any]]:
    """A fresh ``zmq.Context`` per test; at teardown its sockets are closed (LINGER 0) and it terminates within 5 s.

    Sockets the test left open are closed for it, unsent messages dropped. A socket
    the context cannot close (made with ``zmq.Socket(context, ...)``, or kept open
    by another thread) fails the teardown by name instead of hanging. Once torn
    down, every port and ipc path the sockets held can be bound again at once.
    """
    from zmqtest.contexts import TestContext, terminate_context

    context = TestContext()
    yield context
    terminate_context(context)


@pytest.fixture
def zmq_socket_factory(zmq_context: zmq.Context[Any]) -> Iterator[SocketFactory]:
    """``zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")``: a mimic TestSocket, closed at teardown.

    The sockets live on ``zmq_context``. ``bind``/``connect`` take an endpoint string
    or ``(host, port)``; ``timeout`` (seconds) bounds every send and receive
    (default: the zmqtest timeout); ``name`` appears in errors; other keywords set
    socket options (``subscribe=b""``, ``sndhwm=10``).
    """
    from zmqtest.contexts import SocketFactory

    with SocketFactory(zmq_context) as factory:
        yield factory


@pytest.fixture
def zmq_endpoint_factory() -> Iterator[EndpointFactory]:
    """``.tcp()``, ``.ipc()`` (or ``("tcp")``, ``("ipc")``): endpoints no other test or program will take.

    - ``.tcp()``: ``tcp://127.0.0.1:PORT`` with a reserved port that any process can
      bind right away, even under pytest-xdist; never the same port twice;
    - ``.ipc(name=None)``: ``ipc://`` in a private 0700 directory removed at teardown;
      the same name gives the same endpoint;
    - ``.tcp_any()``: ``tcp://127.0.0.1:*``, for a socket that binds to any free port
      (read it back with ``sock.endpoint``).
    """
    from zmqtest.endpoints import EndpointFactory

    with EndpointFactory() as factory:
        yield factory


@pytest.fixture
def zmq_endpoint(zmq_endpoint_factory: EndpointFactory) -> str:
    """One ``tcp://127.0.0.1:PORT`` endpoint with a reserved port, for the process under test or a mimic to bind."""
    return zmq_endpoint_factory.tcp()


@pytest.fixture
def zmq_process_factory(
    request: pytest.FixtureRequest, tmp_path: Path, zmq_socket_factory: SocketFactory
) -> Iterator[ProcessManager]:
    """``zmq_process_factory(PongProc(endpoint), ready=..., stop=...)``: start a process under test.

    Takes a ``multiprocessing.Process`` instance or a command line (``[sys.executable,
    "app.py", ...]``) and returns a handle (pid, ``endpoint`` from a ready pattern,
    ``returncode``, ``tail()``). ``ready``: a regex for a line of its output, a
    callable, or a mimic socket that must see the connection; every wait fails at
    once if the process dies. Output goes to files under ``tmp_path``; a failing
    test's report shows each process's state and output tail. At teardown every
    process is stopped (``stop`` action or SIGINT, then SIGTERM, then SIGKILL, over
    its process group) and an unexpected exit (crash, non-zero code) fails the test
    unless started with ``expect_exit``. The start method, startup timeout and stop
    grace come from zmqtest's settings (marker > command line > ini). Processes stop
    before the mimic sockets close, so a ``stop`` action may use them.
    """
    from zmqtest.processes import ProcessManager

    __tracebackhide__ = True  # an unexpected exit at teardown is reported without this fixture's source
    with ProcessManager(tmp_path / "zmqtest-processes") as manager:
        request.node.stash[PROCESSES] = manager
        yield manager
