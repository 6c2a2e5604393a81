"""zmqtest's pytest fixtures: their names, arguments and help; what each does is in :mod:`zmqtest.fixturework`.

Registered by the plugin, which imports this module in every pytest run (through :mod:`zmqtest.entrypoint`): so
nothing here imports pyzmq or the rest of zmqtest until a fixture is used, and each fixture is one line handing over
to :mod:`zmqtest.fixturework`, with its annotations as strings.

PYTEST_DONT_REWRITE: it has no asserts, so pytest's rewriter need not walk it.
"""

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    import zmq
    import zmq.asyncio

    from zmqtest.authenticator import Authenticator
    from zmqtest.contexts import SocketFactory
    from zmqtest.endpoints import Endpoint, EndpointFactory
    from zmqtest.golden import GoldenFiles
    from zmqtest.processes import ProcessManager
    from zmqtest.replay import Recordings
    from zmqtest.tap import TapFactory

GOLDEN_WRITTEN = "zmqtest golden file written"
"""The user property that a test's report carries per golden file it wrote (reports travel from xdist workers).

The same text as ``zmqtest.golden.WRITTEN_PROPERTY``, which writes it: spelled out here because the plugin
imports this module in every run, and zmqtest.golden imports pyzmq.
"""


@pytest.fixture
def zmq_context(request: "pytest.FixtureRequest") -> "Iterator[zmq.Context[Any]]":
    """A fresh ``zmq.Context`` per test; at teardown its sockets are closed (LINGER 0) and it terminates within 5 s.

    Sockets the test left open are closed for it, unsent messages dropped. A socket
    the context cannot close (made with ``zmq.Socket(context, ...)``, or kept open
    by another thread) fails the teardown by name instead of hanging. Once torn
    down, every port and ipc path the sockets held can be bound again at once.
    """
    from zmqtest.fixturework import context

    yield from context(request)


@pytest.fixture
def zmq_socket_factory(request: "pytest.FixtureRequest", zmq_context: "zmq.Context[Any]") -> "Iterator[SocketFactory]":
    """``zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")``: a mimic TestSocket, closed at teardown.

    The sockets live on ``zmq_context``. ``bind``/``connect`` take an endpoint string
    or ``(host, port)``; ``timeout`` (seconds) bounds every send and receive
    (default: the zmqtest timeout); ``name`` appears in errors; other keywords set
    socket options (``subscribe=b""``, ``sndhwm=10``).
    """
    from zmqtest.fixturework import socket_factory

    yield from socket_factory(request, zmq_context)


@pytest.fixture
def zmq_endpoint_factory() -> "Iterator[EndpointFactory]":
    """``.tcp()``, ``.ipc()`` (or ``("tcp")``, ``("ipc")``): endpoints no other test or program will take.

    - ``.tcp()``: ``tcp://127.0.0.1:PORT`` with a reserved port that any process can
      bind right away, even under pytest-xdist; never the same port twice;
    - ``.ipc(name=None)``: ``ipc://`` in a private 0700 directory removed at teardown;
      the same name gives the same endpoint;
    - ``.tcp_any()``: ``tcp://127.0.0.1:*``, for a socket that binds to any free port
      (read it back with ``sock.endpoint``).
    """
    from zmqtest.fixturework import endpoint_factory

    yield from endpoint_factory()


@pytest.fixture
def zmq_endpoint(zmq_endpoint_factory: "EndpointFactory") -> "Endpoint":
    """One ``tcp://127.0.0.1:PORT`` endpoint with a reserved port, for the process under test or a mimic to bind."""
    return zmq_endpoint_factory.tcp()


@pytest.fixture
def zmq_process_factory(
    request: "pytest.FixtureRequest", tmp_path: "Path", zmq_socket_factory: "SocketFactory"
) -> "Iterator[ProcessManager]":
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
    __tracebackhide__ = True  # an unexpected exit at teardown is reported without this fixture's source
    from zmqtest.fixturework import process_factory

    yield from process_factory(request, tmp_path, zmq_socket_factory)


@pytest.fixture
def zmq_golden(request: "pytest.FixtureRequest") -> "GoldenFiles":
    """``zmq_golden.check(zmq_golden.run([sys.executable, "-m", "app"]))``: a system test against a golden file.

    ``run(argv, stdin=, env=, cwd=, timeout=)`` runs a command line with a deadline
    (30 s; its whole process group is killed then) and returns its exit status,
    stdout and stderr. ``check(output, name=None)`` compares an output (that result,
    a string, or data such as a mimic client's replies) with the golden file
    ``golden/<name>`` next to the test file (default: ``golden/<test name>.txt``),
    after normalising ports, pids, timestamps, temporary and ipc paths (this test's
    ``tmp_path`` reads ``<TMP_PATH>``) and ``zmq_golden.substitutions``; a difference
    fails with a unified diff. With ``--zmqtest-update-golden`` (ini
    ``zmqtest_update_golden``, marker ``update_golden``) it writes the file instead
    and the run's summary lists it. Tests that use it are marked ``system``.
    """
    from zmqtest.golden import GoldenFiles

    return GoldenFiles.for_test(request)  # it registers its own end-of-test work with request.addfinalizer


@pytest.fixture
def zmq_authenticator(zmq_context: "zmq.Context[Any]") -> "Iterator[Authenticator]":
    """pyzmq's ZAP handler on ``zmq_context``: which clients the test's CURVE and PLAIN server mimics let in.

    ``zmq_authenticator.allow_curve(client_keys)`` (a ``CurveKeys`` or a public key) and
    ``zmq_authenticator.allow_plain("alice", "s3cret")`` allow clients; every other one
    is rejected (its handshake fails with ``HANDSHAKE_FAILED_AUTH``). ``requests`` lists
    each decision. Its thread stops at teardown, before the context terminates.
    """
    from zmqtest.fixturework import authenticator

    yield from authenticator(zmq_context)


@pytest.fixture
def zmq_async_context(request: "pytest.FixtureRequest") -> "Iterator[zmq.asyncio.Context]":
    """``zmq_context`` for asyncio tests: a ``zmq.asyncio.Context`` on which mimics are AsyncTestSockets.

    ``TestSocket(zmq_async_context, zmq.REQ)`` and ``make_sock(zmq_async_context, ...)``
    make mimics whose sends and receives are awaited (:mod:`zmqtest.asyncio`). Torn down
    as ``zmq_context`` is: its sockets closed, terminated within 5 s.
    """
    from zmqtest.fixturework import async_context

    yield from async_context(request)


@pytest.fixture
def zmq_async_socket_factory(
    request: "pytest.FixtureRequest", zmq_async_context: "zmq.asyncio.Context"
) -> "Iterator[SocketFactory]":
    """``zmq_socket_factory`` for asyncio tests: its mimics are AsyncTestSockets on ``zmq_async_context``."""
    from zmqtest.fixturework import async_socket_factory

    yield from async_socket_factory(request, zmq_async_context)


@pytest.fixture
def zmq_replay(request: "pytest.FixtureRequest") -> "Recordings":
    """Recorded conversations next to the test file (``golden/<name>.jsonl``), replayed as regression tests.

    ``zmq_replay("greeting", client, substitutions=[...])`` replays the recording with the
    mimics given and fails with a diff of messages when the process answers otherwise;
    ``with zmq_replay.record("greeting"):`` records one. ``zmq_replay.updating`` is true under
    ``--zmqtest-update-golden``: record then, replay otherwise.
    """
    from zmqtest.fixturework import replay

    return replay(request)


@pytest.fixture
def zmq_tap() -> "Iterator[TapFactory]":
    """``zmq_tap(upstream, client="client", server="broker")``: a ZMTP-aware proxy to ``upstream``, closed at teardown.

    Connect the connecting peer to ``tap.endpoint`` instead of ``upstream``: every message
    both ways goes into the test's transcript between ``client`` and ``server``, and
    ``with tap.delay(0.2):``, ``tap.drop(next=1)``, ``tap.duplicate(...)``, ``tap.hold()``,
    ``tap.slow(bytes_per_second)`` and ``tap.cut()`` disturb the traffic. ``process=True``: the tap runs in a
    process of its own (out of reach of the test's GIL). See docs/tap.md.
    """
    from zmqtest.fixturework import tap

    yield from tap()
