"""The public fixtures, used from inner pytest runs as users would use them.

Runs that open sockets go to a subprocess with a deadline (``-W error``, so a socket
or context left for the garbage collector fails them); listing fixtures runs in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SUBPROCESS_DEADLINE = 60.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-W", "error")
"""Inner runs keep file order (some tests measure before and after others) and treat warnings as errors."""
FIXTURES = ("zmq_context", "zmq_socket_factory", "zmq_endpoint_factory", "zmq_endpoint")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def test_the_fixtures_work_in_a_plain_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import zmq
        from zmqtest import TestSocket


        def test_round_trips(zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint):
            server = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="server")
            client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=5)
            assert isinstance(client, TestSocket) and client.context is zmq_context
            client.send_json(["ping", 1])
            server.send_json(["pong", server.recv_json()[1]])
            assert client.recv_json() == ["pong", 1]

            for endpoint in (zmq_endpoint_factory("tcp"), zmq_endpoint_factory("ipc"), zmq_endpoint_factory.ipc()):
                pull = zmq_socket_factory(zmq.PULL, bind=endpoint)
                zmq_socket_factory(zmq.PUSH, connect=endpoint).send(endpoint.encode())
                assert pull.recv() == endpoint.encode()

            anywhere = zmq_socket_factory(zmq.PAIR, bind=zmq_endpoint_factory.tcp_any())
            assert anywhere.endpoint.startswith("tcp://127.0.0.1:")
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_the_fixtures_work_as_arguments_of_generator_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_generator="""
        import pytest
        import zmq
        from zmqtest import ProcessTest


        class TestConversation(ProcessTest):
            def test_ping(self, zmq_socket_factory, zmq_endpoint):
                peer = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="peer")
                client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
                yield ("send", client, [], ["ping", 1])
                assert (yield ("recv", peer)) == [["ping", 1]]
                yield ("send", peer, [], ["pong", 1])
                assert (yield ("recv", client)) == [["pong", 1]]

            @pytest.mark.parametrize("transport", ["tcp", "ipc"])
            def test_transports(self, zmq_context, zmq_socket_factory, zmq_endpoint_factory, transport):
                endpoint = zmq_endpoint_factory(transport)
                router = zmq_socket_factory(zmq.ROUTER, bind=endpoint)
                dealer = zmq_socket_factory(zmq.DEALER, connect=endpoint, identity=b"d1")
                assert dealer.context is zmq_context
                yield ("send", dealer, [], {"via": transport})
                assert (yield ("recv", router)) == [b"d1", {"via": transport}]
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*TestConversation::test_ping PASSED*"])


def test_sockets_left_open_are_closed_for_the_test_and_the_port_is_free_again(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leaks="""
        import zmq
        from zmqtest import TestSocket
        from zmqtest.endpoints import reserve_tcp_port

        ENDPOINT = f"tcp://127.0.0.1:{reserve_tcp_port()}"


        def test_leaves_sockets_open(zmq_context, zmq_endpoint):
            listener = zmq_context.socket(zmq.PULL)
            listener.bind(ENDPOINT)
            pusher = zmq_context.socket(zmq.PUSH)
            pusher.linger = -1  # term() would wait for this message forever
            pusher.connect(zmq_endpoint)  # nobody listens there
            pusher.send(b"never delivered", zmq.NOBLOCK)
            TestSocket(zmq_context, zmq.DEALER).connect(ENDPOINT)


        def test_binds_the_same_port_next(zmq_socket_factory):
            zmq_socket_factory(zmq.PULL, bind=ENDPOINT)
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_a_socket_the_context_cannot_close_fails_the_teardown_by_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import zmqtest.contexts

        zmqtest.contexts.TERM_TIMEOUT = 0.5
        HIDDEN = []


        def pytest_sessionfinish():
            for sock in HIDDEN:  # let the termination under way finish, so the interpreter exits cleanly
                sock.close()
        """
    )
    pytester.makepyfile(
        test_hidden="""
        import zmq
        from conftest import HIDDEN


        def test_hides_a_socket(zmq_context):
            HIDDEN.append(zmq.Socket(zmq_context, zmq.PAIR))


        def test_next_one_runs(zmq_context):
            zmq_context.socket(zmq.PAIR).close()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_hides_a_socket*",
            "E*ContextNotTerminated: zmq context could not terminate within 0.5 s, "
            "open sockets likely remain in test: <zmq.Socket(zmq.PAIR) at 0x*>",
        ]
    )


def test_the_ipc_directory_is_removed_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_failing="""
        import zmq
        from pathlib import Path


        def test_fails(zmq_endpoint_factory, zmq_socket_factory):
            zmq_socket_factory(zmq.PULL, bind=zmq_endpoint_factory.ipc("frontend"))
            Path("ipc_dir.txt").write_text(zmq_endpoint_factory.ipc_dir)
            assert False, "the test failed"
        """
    )
    run(pytester).assert_outcomes(failed=1)
    ipc_dir = Path((pytester.path / "ipc_dir.txt").read_text())
    assert ipc_dir.name.startswith("zmqtest-")
    assert not ipc_dir.exists()


def test_a_port_rebound_by_200_consecutive_tests_never_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_rebind="""
        import pytest
        import zmq
        from zmqtest.endpoints import reserve_tcp_port

        ENDPOINT = f"tcp://127.0.0.1:{reserve_tcp_port()}"


        @pytest.mark.parametrize("n", range(200))
        def test_rebinds(n, zmq_socket_factory):
            binder, connecter = (zmq.REP, zmq.REQ) if n % 2 else (zmq.REQ, zmq.REP)
            bound = zmq_socket_factory(binder, bind=ENDPOINT, timeout=5)
            connected = zmq_socket_factory(connecter, connect=ENDPOINT, timeout=5)
            client, server = (connected, bound) if n % 2 else (bound, connected)
            client.send(b"%d" % n)
            server.send(server.recv())
            assert client.recv() == b"%d" % n
        """
    )
    run(pytester).assert_outcomes(passed=200)


def test_fds_and_threads_do_not_grow_over_100_uses_of_the_fixtures(pytester: pytest.Pytester) -> None:
    pytest.importorskip("psutil")
    pytester.makepyfile(
        test_resources="""
        import json
        import threading
        import time
        from pathlib import Path

        import psutil
        import pytest
        import zmq

        COUNTS = {}
        IPC_DIRS = []


        def counts():  # open fds, OS threads (libzmq's included) and Python threads of this process
            process = psutil.Process()
            # Before Python 3.13, Thread.join() returns just before the OS thread is gone, and no
            # event says when it is: give the last teardown's helper thread a bounded moment.
            deadline = time.monotonic() + 2
            while process.num_threads() > threading.active_count() and time.monotonic() < deadline:
                time.sleep(0.001)  # sleep-ok: bounded poll, no event marks an OS thread gone
            return {
                "fds": process.num_fds(),
                "threads": process.num_threads(),
                "python": sorted(thread.name for thread in threading.enumerate()),
            }


        def use(zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint):
            for endpoint in (zmq_endpoint, zmq_endpoint_factory.ipc()):
                server = zmq_socket_factory(zmq.REP, bind=endpoint)
                client = zmq_socket_factory(zmq.REQ, connect=endpoint, timeout=5)
                client.send(b"ping")
                server.send(server.recv())
                assert client.recv() == b"ping"
            leaked = zmq_context.socket(zmq.PUSH)  # left open: the fixtures close it
            leaked.connect(zmq_endpoint_factory.tcp())
            leaked.send(b"never delivered", zmq.NOBLOCK)
            IPC_DIRS.append(zmq_endpoint_factory.ipc_dir)


        def test_0_warm_up(zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint):
            use(zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint)


        def test_1_before():
            COUNTS["before"] = counts()


        @pytest.mark.parametrize("n", range(100))
        def test_2_use(n, zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint):
            use(zmq_context, zmq_socket_factory, zmq_endpoint_factory, zmq_endpoint)


        def test_3_after():
            COUNTS["after"] = counts()
            Path("counts.json").write_text(json.dumps({**COUNTS, "ipc_dirs": IPC_DIRS}))
        """
    )
    run(pytester).assert_outcomes(passed=103)
    counts = json.loads((pytester.path / "counts.json").read_text())
    assert counts["after"] == counts["before"]
    assert len(counts["ipc_dirs"]) == 101
    assert [directory for directory in counts["ipc_dirs"] if Path(directory).exists()] == []


def test_endpoints_do_not_collide_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_parallel="""
        import os
        from pathlib import Path

        import pytest
        import zmq


        @pytest.mark.parametrize("n", range(20))
        def test_reserves_and_binds(n, zmq_endpoint_factory, zmq_socket_factory):
            endpoints = [zmq_endpoint_factory.tcp() for _ in range(10)]
            for endpoint in endpoints:
                zmq_socket_factory(zmq.PULL, bind=endpoint)  # held until the end of the test
            Path(f"ports-{n}.txt").write_text("\\n".join(endpoints))

            private = zmq_endpoint_factory.ipc("frontend")  # the same name in every test: no cross-talk
            server = zmq_socket_factory(zmq.PAIR, bind=private)
            zmq_socket_factory(zmq.PAIR, connect=private).send(b"%d" % n)
            assert server.recv(timeout=5) == b"%d" % n
        """
    )
    run(pytester, "-n", "2").assert_outcomes(passed=20)
    handed_out = [line for path in pytester.path.glob("ports-*.txt") for line in path.read_text().splitlines()]
    assert len(handed_out) == 200
    assert len(set(handed_out)) == 200


def test_pytest_fixtures_lists_the_fixtures_with_their_docstrings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing(): pass")
    result = pytester.runpytest("--fixtures", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*fixtures defined from zmqtest.fixtures*"])
    for fixture, docstring in (  # each with its docstring; their order is pytest's (it sorts "file:line" as text)
        ("zmq_context", "    A fresh ``zmq.Context`` per test; at teardown its sockets are closed (LINGER 0)*"),
        (
            "zmq_socket_factory",
            '    ``zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")``: a mimic TestSocket*',
        ),
        (
            "zmq_endpoint_factory",
            '    ``.tcp()``, ``.ipc()`` (or ``("tcp")``, ``("ipc")``): endpoints no other test or program*',
        ),
        ("zmq_endpoint", "    One ``tcp://127.0.0.1:PORT`` endpoint with a reserved port*"),
    ):
        result.stdout.fnmatch_lines([f"{fixture} -- *zmqtest*fixtures.py:*", docstring], consecutive=True)
    verbose = pytester.runpytest("--fixtures", "-v", "-p", "no:randomly")
    verbose.stdout.fnmatch_lines(["*fails the teardown by name*", "*private 0700 directory removed at teardown*"])


def test_importing_the_plugin_does_not_import_pyzmq() -> None:
    code = "import sys, zmqtest.plugin; print(sorted(name for name in sys.modules if name.split('.')[0] == 'zmq'))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=SUBPROCESS_DEADLINE
    )
    assert output.stdout.strip() == "[]"
    assert all(hasattr(sys.modules["zmqtest.plugin"], name) for name in FIXTURES)
