"""asyncio mimics and tests (zmqtest.asyncio, zmqtest.asyncrunner): awaited sends and receives, bounded the same way.

Against a real process (tests/apps/heartbeats.py: a ROUTER that chatters, answers pings, stays quiet
or exits on request), an AsyncTestSocket made on an asyncio context gives the same frames, the same
timeout errors and the same process-death errors as a blocking mimic, without blocking the event
loop: two peers of one test run at once. ``async def`` tests run without any async plugin (zmqtest
drives them); async-generator ProcessTest conversations throw failures in at the yield line; the
transcript and strict mode see asyncio mimics as any other. Report output is checked through real
pytest runs (pytester).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import pytest
import zmq
import zmq.asyncio
from apps.heartbeats import Chatter
from apps.pubsub import Publisher, Subscriber

from zmqtest import (
    AsyncTestSocket,
    ProcessExited,
    ProcessTest,
    SocketTimeout,
    TestSocket,
    UnexpectedMessage,
    expect_nothing,
    log,
    make_sock,
    recv,
    send,
)
from zmqtest.asyncio import AsyncTestContext, wait_for_subscriber, wait_until_receiving
from zmqtest.processes import ProcessManager
from zmqtest.transcript import recording

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from zmqtest.contexts import SocketFactory

SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider")
LONG_WAIT = 10.0
"""Seconds for a wait that only a death (or a bug) can end: the test fails if it runs out."""


def is_heartbeat(message: list[Any]) -> bool:
    return message[-1] == ["heartbeat"]


def chatter(procs: ProcessManager, socks: SocketFactory, endpoint: str, name: str = "client") -> AsyncTestSocket:
    """Start the chattering server; an asyncio DEALER mimic connected to it (ready once connected)."""
    client = socks(zmq.DEALER, connect=endpoint, name=name)
    procs(Chatter(endpoint), name="chatter", ready=client)
    return client  # type: ignore[return-value]


# --- the socket ---------------------------------------------------------------------------------------------------


def test_a_mimic_on_an_asyncio_context_is_an_asyncio_socket_and_a_mimic() -> None:
    for context in (zmq.asyncio.Context(), AsyncTestContext()):
        sock = TestSocket(context, zmq.DEALER, name="d", timeout=0.5, sndhwm=7)
        try:
            assert type(sock) is AsyncTestSocket
            assert isinstance(sock, zmq.asyncio.Socket)
            assert isinstance(sock, TestSocket)
            assert (sock.timeout, sock.name, sock.sndhwm, sock.linger) == (0.5, "d", 7, 0)
            assert repr(sock) == "<AsyncTestSocket DEALER socket 'd' (not bound or connected)>"
        finally:
            sock.close()
            context.term()
    context = zmq.Context()
    plain = TestSocket(context, zmq.DEALER)
    assert type(plain) is TestSocket  # a blocking context: a blocking mimic
    plain.close()
    context.term()


async def test_every_send_and_recv_is_awaited_and_recorded(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory, zmq_endpoint: str
) -> None:
    client = chatter(zmq_process_factory, zmq_async_socket_factory, zmq_endpoint)
    with recording() as transcript:
        await client.send_multipart([b'["ping", 1, 0]'])
        assert await client.recv_multipart() == [b'["pong", 1]']
        await client.send_json(["ping", 2, 0])
        assert await client.recv_json() == ["pong", 2]
        await client.send_string('["ping", 3, 0]')
        assert await client.recv_string() == '["pong", 3]'
        await client.send(b'["ping", 4, 0]', timeout=1)
        assert await client.recv(timeout=LONG_WAIT) == b'["pong", 4]'
        await client.send_serialized(["ping", 5, 0], lambda body: [repr(body).replace("'", '"').encode()])
        assert await client.recv_serialized(lambda frames: frames[0]) == b'["pong", 5]'
        buffer = bytearray(64)
        await client.send_multipart([b'["ping", 6, 0]'])
        size = await client.recv_into(buffer)
        assert bytes(buffer[:size]) == b'["pong", 6]'
    kinds = [kind for _, _, kind, _ in transcript.events if kind in ("send", "recv")]
    assert kinds == ["send", "recv"] * 6


async def test_a_timeout_says_what_a_blocking_mimic_says(
    zmq_process_factory: ProcessManager,
    zmq_async_socket_factory: SocketFactory,
    zmq_socket_factory: SocketFactory,
    zmq_endpoint: str,
) -> None:
    client = chatter(zmq_process_factory, zmq_async_socket_factory, zmq_endpoint)
    blocking = zmq_socket_factory(zmq.DEALER, connect=zmq_endpoint, name="client")
    blocking.send_multipart([b'["quiet"]'])
    with pytest.raises(SocketTimeout) as blocked:
        blocking.recv_multipart(timeout=0.2)
    await client.send_multipart([b'["quiet"]'])
    with pytest.raises(SocketTimeout) as awaited:
        await client.recv_multipart(timeout=0.2)
    assert blocked.value.timeout == awaited.value.timeout == 0.2
    messages = [str(blocked.value), str(awaited.value)]
    assert messages[1] == messages[0]
    assert messages[1].startswith(f"recv_multipart on DEALER socket 'client' connected to {zmq_endpoint}: no message ")
    assert "chatter (pid " in messages[1]  # the watched process, as in every timeout


async def test_a_death_ends_the_wait_at_once_with_the_exit_status(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory, zmq_endpoint: str
) -> None:
    client = chatter(zmq_process_factory, zmq_async_socket_factory, zmq_endpoint)
    second = zmq_async_socket_factory(zmq.DEALER, connect=zmq_endpoint, name="second")
    waits = [asyncio.ensure_future(sock.recv_multipart(timeout=LONG_WAIT)) for sock in (client, second)]
    await client.send_json(["exit", 3])
    results = await asyncio.gather(*waits, return_exceptions=True)
    for result, name in zip(results, ("client", "second"), strict=True):  # both ended by the death, not a timeout
        assert isinstance(result, ProcessExited), result
        assert re.search(rf"exited with code 3 while recv_multipart on DEALER socket '{name}'", str(result))


async def test_the_loop_runs_while_a_mimic_waits(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory, zmq_endpoint: str
) -> None:
    client = chatter(zmq_process_factory, zmq_async_socket_factory, zmq_endpoint)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await client.send_json(["quiet"])
    with pytest.raises(SocketTimeout):
        await client.recv_multipart(timeout=0.1)
    task.cancel()
    assert ticks > 10  # a blocking wait would have let it run once at most


async def test_a_req_that_gave_up_starts_over_as_a_blocking_one_does(zmq_async_context: zmq.asyncio.Context) -> None:
    server = make_sock(zmq_async_context, zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server", router_mandatory=0)
    client = make_sock(zmq_async_context, zmq.REQ, connect=server.endpoint, name="client")
    await client.send(b"first")
    identity, _, first = await server.recv_multipart(timeout=LONG_WAIT)
    assert first == b"first"
    with pytest.raises(SocketTimeout):
        await client.recv(timeout=0.05)
    await client.send(b"second")  # a plain REQ would refuse it (EFSM)
    new_identity, _, second = await server.recv_multipart(timeout=LONG_WAIT)
    assert second == b"second"
    await server.send_multipart([identity, b"", b"late reply to first"])  # to the old connection: dropped
    await server.send_multipart([new_identity, b"", b"reply to second"])
    assert await client.recv(timeout=LONG_WAIT) == b"reply to second"


async def test_bad_timeouts_and_closed_sockets_are_named(zmq_async_context: zmq.asyncio.Context) -> None:
    sock = make_sock(zmq_async_context, zmq.DEALER, bind="tcp://127.0.0.1:0", name="d")
    with pytest.raises(ValueError, match="timeout= argument of recv_multipart"):
        await sock.recv_multipart(timeout=-1)
    sock.close()
    with pytest.raises(
        zmq.ZMQError,
        match=r"recv_multipart on DEALER socket 'd' bound to tcp://\S+ \[closed\]: this socket was closed by close\(\)",
    ):
        await sock.recv_multipart()


# --- conversations ------------------------------------------------------------------------------------------------


class TestAsyncConversations(ProcessTest):
    async def test_events_are_the_same(
        self, zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory, zmq_endpoint: str
    ) -> AsyncGenerator[Any, Any]:
        client = chatter(zmq_process_factory, zmq_async_socket_factory, zmq_endpoint)
        with recording() as transcript:
            yield ("send", client, [], ["ping", 1, 0])
            assert (yield ("recv", client)) == [["pong", 1]]
            yield send(client, [], ["ping", 2, 3])
            assert (yield recv(client, skip=is_heartbeat, timeout=LONG_WAIT)) == [["pong", 2]]
            yield expect_nothing(client, 0.2, skip=is_heartbeat)
            record = yield log("answered 2", timeout=LONG_WAIT)
            assert record.message == "answered 2"
            yield send(client, [], ["ping", 3, 0])
            with pytest.raises(UnexpectedMessage, match=r"\[\['pong', 3\]\]"):
                yield expect_nothing(client, LONG_WAIT)
        assert transcript.render().count('(skipped) ["heartbeat"]') == 6

    async def test_two_peers_at_once(self, zmq_async_socket_factory: SocketFactory) -> AsyncGenerator[Any, Any]:
        backend = zmq_async_socket_factory(zmq.ROUTER, bind="tcp://127.0.0.1:0", name="broker")
        worker = zmq_async_socket_factory(zmq.DEALER, connect=backend.endpoint, name="worker")

        async def work() -> None:
            for _ in range(3):
                request = await worker.recv_json(timeout=LONG_WAIT)
                await worker.send_json(["done", request[1]])

        task = asyncio.ensure_future(work())
        identity = None
        for n in range(3):
            if identity is None:
                yield send(worker, [], ["hello"])
                identity, _ = yield recv(backend)
            yield send(backend, [identity], ["job", n])
            assert (yield recv(backend)) == [identity, ["done", n]]
        await task

    async def an_async_action(self, value: int) -> int:
        await asyncio.sleep(0)
        return value + 1

    async def test_an_async_action_is_awaited(self) -> AsyncGenerator[Any, Any]:
        assert (yield ("an_async_action", 1)) == 2


def test_a_failure_points_at_the_yield_line_and_shows_the_transcript(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import zmq
        from zmqtest import ProcessTest, make_sock, recv, send

        class TestIt(ProcessTest):
            async def test_no_reply(self, zmq_async_context):
                server = make_sock(zmq_async_context, zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server")
                client = make_sock(zmq_async_context, zmq.DEALER, connect=server.endpoint, name="client")
                yield send(client, [], ["ping"])
                yield recv(client, timeout=0.1)
        """
    )
    result = pytester.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "SocketTimeout: recv_multipart on DEALER socket 'client' connected to tcp://127.0.0.1:" in output
    assert "event: recv(<AsyncTestSocket DEALER socket 'client' connected to" in output
    assert ", timeout=0.1) at test_inner.py:9" in output
    assert re.search(r'o-+> \["ping"\]', output)  # the transcript
    assert "x-  recv_multipart: no message within 0.1 s" in output


def test_strict_mode_sees_what_an_asyncio_mimic_left_unread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import zmq
        from zmqtest import make_sock

        async def test_leaves_one(zmq_async_context):
            server = make_sock(zmq_async_context, zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server")
            client = make_sock(zmq_async_context, zmq.DEALER, connect=server.endpoint, name="client")
            await client.send(b"unread")
            await server.poll(timeout=5000)
        """
    )
    result = pytester.runpytest_subprocess(*INNER, "--zmqtest-strict", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ROUTER socket 'server' bound to tcp://127.0.0.1:*: 1 unread message*"])


def test_async_def_tests_run_without_an_async_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import asyncio

        async def test_passes():
            await asyncio.sleep(0)

        async def test_fails():
            await asyncio.sleep(0)
            assert 1 == 2

        class TestInAClass:
            async def test_method(self, tmp_path):
                assert tmp_path.exists()
        """
    )
    result = pytester.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=2, failed=1)
    assert "async def functions are not natively supported" not in result.stdout.str()


def test_anyio_runs_the_tests_it_is_asked_to(pytester: pytest.Pytester) -> None:
    pytest.importorskip("anyio")
    pytester.makepyfile(
        test_inner="""
        import pytest
        import zmq
        from zmqtest import make_sock

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.fixture
        async def answer():  # an async fixture: anyio's to run, not zmqtest's
            return 42

        @pytest.mark.anyio
        async def test_under_anyio(zmq_async_context, answer):
            assert answer == 42
            server = make_sock(zmq_async_context, zmq.ROUTER, bind="tcp://127.0.0.1:0", name="server")
            client = make_sock(zmq_async_context, zmq.DEALER, connect=server.endpoint, name="client")
            await client.send(b"hi")
            assert (await server.recv_multipart(timeout=5))[1:] == [b"hi"]

        async def test_by_zmqtest():
            pass
        """
    )
    result = pytester.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=2)


# --- PUB/SUB barriers, awaited ----------------------------------------------------------------------------------


async def test_wait_for_subscriber_awaited_loses_no_first_message(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory
) -> None:
    control = zmq_async_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    reports = zmq_async_socket_factory(zmq.PULL, bind=("", 0), name="reports")
    feed = zmq_async_socket_factory(zmq.XPUB, bind=("", 0), name="feed")
    zmq_process_factory(Subscriber(control.endpoint, reports.endpoint), ready=reports)
    for round_number in range(20):  # a fresh subscriber each round: each first message arrives
        await control.send_multipart([b"connect", feed.endpoint.encode(), b"t"])
        assert await wait_for_subscriber(feed, b"t") == [b"t"]
        await feed.send_multipart([b"t", b"first %d" % round_number])
        assert await reports.recv_multipart(timeout=LONG_WAIT) == [b"t", b"first %d" % round_number]


async def test_wait_until_receiving_awaits_an_awaitable_probe(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory
) -> None:
    control = zmq_async_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    publisher = zmq_process_factory(Publisher(control.endpoint), ready=r"publishing on (?P<endpoint>\S+)")
    sub = zmq_async_socket_factory(zmq.SUB, connect=publisher.endpoint, name="sub", subscribe=b"")
    probes = []

    def probe() -> Any:
        probes.append(1)
        return control.send_multipart([b"publish", b"probe"])  # a future: awaited by the barrier

    assert await wait_until_receiving(sub, probe) == [b"probe"]
    assert probes
    await control.send_multipart([b"publish", b"data"])
    while (message := await sub.recv_multipart(timeout=LONG_WAIT)) == [b"probe"]:  # answers to earlier probes
        pass
    assert message == [b"data"]


async def test_an_awaited_barrier_ends_when_the_process_dies(
    zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory
) -> None:
    control = zmq_async_socket_factory(zmq.PUSH, bind=("", 0), name="control")
    reports = zmq_async_socket_factory(zmq.PULL, bind=("", 0), name="reports")
    feed = zmq_async_socket_factory(zmq.XPUB, bind=("", 0), name="feed")
    zmq_process_factory(Subscriber(control.endpoint, reports.endpoint), ready=reports, name="subscriber")
    await control.send_multipart([b"exit", b"4"])
    with pytest.raises(
        ProcessExited, match=r"subscriber .*exited with code 4 while wait_for_subscriber\(b't'\) on XPUB"
    ):
        await wait_for_subscriber(feed, b"t", timeout=LONG_WAIT)


class TestAsyncPubSub(ProcessTest):
    async def test_subscribed_and_receiving_events(
        self, zmq_process_factory: ProcessManager, zmq_async_socket_factory: SocketFactory
    ) -> AsyncGenerator[Any, Any]:
        control = zmq_async_socket_factory(zmq.PUSH, bind=("", 0), name="control")
        publisher = zmq_process_factory(Publisher(control.endpoint), ready=r"publishing on (?P<endpoint>\S+)")
        sub = zmq_async_socket_factory(zmq.SUB, connect=publisher.endpoint, name="sub", subscribe=b"")
        first = yield ("receiving", sub, ("send", control, [b"publish"], "probe"))
        assert first == [b'"probe"']
        yield send(control, [b"publish"], "data")
        assert (yield recv(sub, skip=lambda message: message == ["probe"])) == ["data"]
