"""zmqtest next to pytest-asyncio, in its strict mode (the default) and its auto mode.

pytest-asyncio is not in the test extra (its warning about an unset loop scope would fail every inner
run of the suite, which treats warnings as errors): CI installs it for this module alone, which is
skipped where it is missing. Through real pytest runs (pytester): the tests pytest-asyncio takes run on
its loop with asyncio mimics working there; the ones it leaves (strict mode, unmarked) zmqtest runs; an
async-generator ProcessTest conversation stays zmqtest's in both modes (auto mode would otherwise take
it and skip it as an unsupported async generator), and a failing one fails at its yield line.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_asyncio")

SUBPROCESS_DEADLINE = 90.0
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")

TESTS = """
import asyncio

import pytest
import pytest_asyncio
import zmq

from zmqtest import ProcessTest, make_sock, recv, send


@pytest_asyncio.fixture
async def answer():  # an async fixture: pytest-asyncio's to run
    await asyncio.sleep(0)
    return 42


@pytest.mark.asyncio
async def test_marked(zmq_async_context, answer):
    server = make_sock(zmq_async_context, zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server")
    client = make_sock(zmq_async_context, zmq.DEALER, connect=server.endpoint, name="client")
    await client.send(b"hi")
    assert (await server.recv_multipart(timeout=5))[1:] == [b"hi"]
    assert answer == 42


async def test_unmarked(zmq_async_context):
    client = make_sock(zmq_async_context, zmq.DEALER, bind="tcp://127.0.0.1:0", name="client")
    with pytest.raises(Exception, match="no message within 0.1 s"):
        await client.recv(timeout=0.1)


class TestConversation(ProcessTest):
    async def test_passes(self, zmq_async_socket_factory):
        server = zmq_async_socket_factory(zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server")
        client = zmq_async_socket_factory(zmq.DEALER, connect=server.endpoint, name="client")
        yield send(client, [], ["ping"])
        _, body = yield recv(server)
        assert body == ["ping"]

    async def test_fails(self, zmq_async_socket_factory):
        client = zmq_async_socket_factory(zmq.DEALER, bind="tcp://127.0.0.1:0", name="client")
        yield recv(client, timeout=0.1)
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_zmqtest_and_pytest_asyncio_share_the_async_tests(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest_subprocess(
        *INNER, "-o", f"asyncio_mode={mode}", "-W", "error", "-v", timeout=SUBPROCESS_DEADLINE
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_inner.py::test_marked PASSED*",
            "*test_inner.py::test_unmarked PASSED*",
            "*test_inner.py::TestConversation::test_passes PASSED*",
            "*test_inner.py::TestConversation::test_fails FAILED*",
        ]
    )
    output = result.stdout.str()
    assert "recv_multipart on DEALER socket 'client' bound to tcp://127.0.0.1:" in output
    assert "at test_inner.py:" in output  # the yield line
    assert "not supported" not in output
