"""EndpointFactory: reserved tcp ports and private ipc paths, on real sockets; Endpoint strings.

The tcp tests check the claim the reservation rests on: a reserved port is bindable
by libzmq at once (here and in another process) while the kernel hands it to no
other ``bind(0)``; a naive "bind to 0, close" reservation has no such guarantee.

The Endpoint tests check that every place handing out an endpoint hands out an
:class:`~zmqtest.endpoints.Endpoint` (a ``str`` that knows its transport, host, port and
path), that pyzmq, json, pickle and other processes take it as the string it is, and that
a program taking ``--port`` gets its port from it.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import pickle
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq
from helpers import port_of

import zmqtest
from zmqtest.endpoints import IPC_PREFIX, Endpoint, EndpointFactory, as_endpoint, reserve_tcp_port
from zmqtest.logcollector import LogCollector
from zmqtest.processes import ProcessManager

if TYPE_CHECKING:
    from conftest import Sockets

CHILD_DEADLINE = 30.0
"""Seconds a helper process may take before it is killed."""


@pytest.fixture
def endpoints() -> Iterator[EndpointFactory]:
    with EndpointFactory() as factory:
        yield factory


# --- tcp --------------------------------------------------------------------------------------


def test_tcp_endpoints_are_on_loopback_and_never_repeat(endpoints: EndpointFactory) -> None:
    handed_out = [endpoints.tcp() for _ in range(200)]
    assert all(endpoint.startswith("tcp://127.0.0.1:") for endpoint in handed_out)
    assert len(set(handed_out)) == 200
    assert all(0 < port_of(endpoint) < 65536 for endpoint in handed_out)


def test_a_factory_skips_a_port_the_kernel_hands_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = iter([501, 501, 501, 502])  # made up: nothing binds them
    monkeypatch.setattr("zmqtest.endpoints.reserve_tcp_port", lambda host: next(ports))
    with EndpointFactory() as factory:
        assert [factory.tcp(), factory.tcp()] == ["tcp://127.0.0.1:501", "tcp://127.0.0.1:502"]


def test_reserved_ports_are_bindable_by_zmq_right_away(endpoints: EndpointFactory, socks: Sockets) -> None:
    for _ in range(100):
        endpoint = endpoints.tcp()
        server = socks(zmq.PULL, bind=endpoint)
        assert server.endpoint == endpoint
        server.close()


def test_reserved_ports_are_bindable_by_another_process_right_away(
    endpoints: EndpointFactory, socks: Sockets, tmp_path: Path
) -> None:
    handed_out = [endpoints.tcp() for _ in range(20)]
    child_code = (
        "import sys, zmq\n"
        "context = zmq.Context()\n"
        "servers = [context.socket(zmq.REP) for _ in sys.argv[1:]]\n"
        "for server, endpoint in zip(servers, sys.argv[1:]):\n"
        "    server.linger = 0\n"
        "    server.bind(endpoint)\n"
        "for server in servers:\n"
        "    server.send(server.recv() + b' back')\n"
        "context.destroy(linger=1000)\n"
    )
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as output:
        child = subprocess.Popen([sys.executable, "-c", child_code, *handed_out], stderr=output)
    try:
        for index, endpoint in enumerate(handed_out):
            client = socks(zmq.REQ, connect=endpoint, timeout=10)
            client.send(b"%d" % index)
            try:
                assert client.recv() == b"%d back" % index
            except zmq.Again:
                pytest.fail(f"no reply from the child (exit code {child.poll()}): {stderr.read_text()}")
        assert child.wait(CHILD_DEADLINE) == 0, stderr.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_kernel_hands_a_reserved_port_to_no_other_bind(socks: Sockets) -> None:
    reserved = {reserve_tcp_port() for _ in range(100)}
    plain = []
    try:
        for _ in range(500):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            plain.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
        taken = {sock.getsockname()[1] for sock in plain}
    finally:
        for sock in plain:
            sock.close()
    wildcard = {port_of(socks(zmq.PULL, bind="tcp://127.0.0.1:*").endpoint) for _ in range(100)}
    assert reserved & taken == set()
    assert reserved & wildcard == set()


def test_tcp_any_binds_to_a_free_port_read_back_from_the_socket(endpoints: EndpointFactory, socks: Sockets) -> None:
    assert endpoints.tcp_any() == "tcp://127.0.0.1:*"
    server = socks(zmq.PAIR, bind=endpoints.tcp_any())
    client = socks(zmq.PAIR, connect=server.endpoint)
    assert server.getsockopt_string(zmq.LAST_ENDPOINT) == server.endpoint != "tcp://127.0.0.1:*"
    client.send(b"hello")
    assert server.recv() == b"hello"


# --- ipc --------------------------------------------------------------------------------------


def ipc_path(endpoint: str) -> Path:
    assert endpoint.startswith("ipc://")
    return Path(endpoint[len("ipc://") :])


def test_ipc_endpoints_live_in_a_private_short_directory(endpoints: EndpointFactory) -> None:
    before = endpoints.ipc_dir
    path = ipc_path(endpoints.ipc("frontend"))
    assert before is None  # nothing made before it is needed
    directory = path.parent
    assert str(directory) == endpoints.ipc_dir
    assert path.name == "frontend"
    assert directory.name.startswith(IPC_PREFIX)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert directory.stat().st_uid == os.getuid()
    assert len(os.fsencode(path)) <= zmq.IPC_PATH_MAX_LEN


def test_ipc_names_give_stable_endpoints_and_unnamed_ones_are_new(endpoints: EndpointFactory) -> None:
    named = endpoints.ipc("backend")
    assert endpoints.ipc("backend") == named
    assert endpoints("ipc", "backend") == named
    unnamed = [endpoints.ipc() for _ in range(5)] + [endpoints("ipc")]
    assert len({named, *unnamed}) == 7
    assert len({ipc_path(endpoint).parent for endpoint in [named, *unnamed]}) == 1


def test_unnamed_ipc_endpoints_skip_names_already_given(endpoints: EndpointFactory) -> None:
    taken = endpoints.ipc("ipc0")
    assert endpoints.ipc() != taken


def test_ipc_endpoints_carry_messages(endpoints: EndpointFactory, socks: Sockets) -> None:
    endpoint = endpoints.ipc("pair")
    server = socks(zmq.PAIR, bind=endpoint)
    client = socks(zmq.PAIR, connect=endpoint)
    client.send(b"over ipc")
    assert server.recv() == b"over ipc"
    assert ipc_path(endpoint).is_socket()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "nul\0"])
def test_ipc_names_must_be_plain_file_names(endpoints: EndpointFactory, name: str) -> None:
    with pytest.raises(ValueError, match=r"invalid ipc endpoint name .*no slashes"):
        endpoints.ipc(name)


def test_ipc_names_must_be_strings(endpoints: EndpointFactory) -> None:
    with pytest.raises(TypeError, match="must be a string"):
        endpoints.ipc(b"name")  # type: ignore[arg-type]


def test_an_ipc_path_over_the_limit_is_a_clear_error(tmp_path: Path) -> None:
    base = tmp_path / ("b" * 150)
    base.mkdir()
    with EndpointFactory(ipc_base=base) as factory, pytest.raises(ValueError, match="ipc path") as caught:
        factory.ipc("frontend")
    message = str(caught.value)
    assert str(base) in message
    assert f"limit of {zmq.IPC_PATH_MAX_LEN} (zmq.IPC_PATH_MAX_LEN)" in message
    assert list(base.iterdir()) == []  # removed at close all the same


def test_a_long_ipc_name_is_a_clear_error(endpoints: EndpointFactory) -> None:
    with pytest.raises(ValueError, match="choose a shorter name"):
        endpoints.ipc("n" * 120)


def test_a_long_temporary_directory_is_passed_over_for_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_base = tmp_path / ("t" * 80)
    long_base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_base))
    with EndpointFactory() as factory:
        assert ipc_path(factory.ipc("x")).parent.parent == Path("/tmp")


def test_a_short_temporary_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short_base = Path(tempfile.mkdtemp(prefix="zt", dir="/tmp"))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(short_base))
        with EndpointFactory() as factory:
            assert ipc_path(factory.ipc("x")).parent.parent == short_base
    finally:
        short_base.rmdir()


def test_close_removes_the_directory_and_everything_in_it(socks: Sockets) -> None:
    factory = EndpointFactory()
    endpoint = factory.ipc("bound")
    socks(zmq.PULL, bind=endpoint).close()
    (ipc_path(endpoint).parent / "stray-file").write_text("left by the process under test")
    directory = Path(str(factory.ipc_dir))
    factory.close()
    assert not directory.exists()
    assert factory.ipc_dir is None
    factory.close()  # twice is fine


def test_the_directory_goes_away_when_the_block_fails() -> None:
    directories: list[Path] = []

    def failing_block() -> None:
        with EndpointFactory() as factory:
            directories.append(ipc_path(factory.ipc()).parent)
            assert directories[0].is_dir()
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_block()
    assert not directories[0].exists()


# --- the factory as a whole -------------------------------------------------------------------


def test_calling_the_factory_picks_the_transport(endpoints: EndpointFactory) -> None:
    assert endpoints().startswith("tcp://127.0.0.1:")
    assert endpoints("tcp").startswith("tcp://127.0.0.1:")
    assert endpoints("ipc").startswith("ipc:///")
    with pytest.raises(ValueError, match="unknown transport 'udp': expected 'tcp' or 'ipc'"):
        endpoints("udp")
    with pytest.raises(TypeError, match="a tcp endpoint takes no name"):
        endpoints("tcp", "frontend")


@pytest.mark.parametrize("use", [EndpointFactory.tcp, EndpointFactory.tcp_any, EndpointFactory.ipc])
def test_a_closed_factory_hands_out_nothing(use: Any) -> None:
    factory = EndpointFactory()
    factory.close()
    assert factory.closed
    with pytest.raises(RuntimeError, match="closed"):
        use(factory)


def test_repr_says_what_was_handed_out(endpoints: EndpointFactory) -> None:
    endpoints.tcp()
    endpoints.ipc("a")
    assert repr(endpoints) == f"<EndpointFactory 1 tcp, 1 ipc in {endpoints.ipc_dir}>"
    endpoints.close()
    assert repr(endpoints) == "<EndpointFactory closed>"


# --- Endpoint: a string that knows what it names ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "host", "port", "path"),
    [
        ("tcp://127.0.0.1:5555", "tcp", "127.0.0.1", 5555, None),
        ("tcp://localhost:1", "tcp", "localhost", 1, None),
        ("tcp://127.0.0.1:*", "tcp", "127.0.0.1", None, None),
        ("tcp://*:*", "tcp", "*", None, None),
        ("tcp://*:5555", "tcp", "*", 5555, None),
        ("tcp://127.0.0.1:0", "tcp", "127.0.0.1", 0, None),
        ("tcp://eth0:5555", "tcp", "eth0", 5555, None),
        ("tcp://[::1]:5555", "tcp", "::1", 5555, None),
        ("tcp://[::1]:*", "tcp", "::1", None, None),
        ("tcp://[fe80::1%eth0]:65535", "tcp", "fe80::1%eth0", 65535, None),
        ("tcp://::1:5555", "tcp", "::1", 5555, None),  # libzmq takes the last colon's part as the port
        ("tcp://127.0.0.1:6000;127.0.0.1:5555", "tcp", "127.0.0.1", 5555, None),  # a source address first
        ("ws://127.0.0.1:8080/chat", "ws", "127.0.0.1", 8080, "/chat"),
        ("wss://[::1]:443/a/b", "wss", "::1", 443, "/a/b"),
        ("ws://example.org:80", "ws", "example.org", 80, None),
        ("udp://*:5555", "udp", "*", 5555, None),
        ("epgm://eth0;239.192.1.1:5555", "epgm", "239.192.1.1", 5555, None),
        ("norm://2,224.1.2.3:5000", "norm", "224.1.2.3", 5000, None),
        ("ipc:///tmp/zmqtest-x/frontend", "ipc", None, None, "/tmp/zmqtest-x/frontend"),
        ("ipc://relative.sock", "ipc", None, None, "relative.sock"),
        ("ipc://*", "ipc", None, None, None),
        ("ipc://@abstract", "ipc", None, None, None),
        ("inproc://workers", "inproc", None, None, None),
        ("tipc://{5560,0,0}", "tipc", None, None, None),
        ("vmci://1:5555", "vmci", None, None, None),
    ],
)
def test_an_endpoint_says_what_it_names(
    text: str, transport: str, host: str | None, port: int | None, path: str | None
) -> None:
    endpoint = Endpoint(text)
    assert (endpoint.transport, endpoint.host, endpoint.port, endpoint.path) == (transport, host, port, path)
    assert endpoint.address == text.split("://", 1)[1]
    assert endpoint == text


def test_an_endpoint_is_the_string() -> None:
    text = "tcp://127.0.0.1:5555"
    endpoint = Endpoint(text)
    assert isinstance(endpoint, str)
    assert endpoint == text
    assert text == endpoint
    assert hash(endpoint) == hash(text)
    assert {text: 1}[endpoint] == 1
    assert endpoint in {text}
    assert repr(endpoint) == repr(text)  # messages and assertion diffs show the plain string
    assert f"{endpoint}" == text
    assert type(f"{endpoint}") is str
    assert type(str(endpoint)) is str
    assert endpoint.startswith("tcp://")
    assert endpoint + "/x" == text + "/x"
    assert Endpoint(endpoint) is endpoint
    assert zmqtest.Endpoint is Endpoint


def test_json_pickle_and_copy_keep_the_string() -> None:
    endpoint = Endpoint("tcp://[::1]:5555")
    assert json.dumps({"at": endpoint}) == '{"at": "tcp://[::1]:5555"}'
    assert json.loads(json.dumps(endpoint)) == endpoint
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(endpoint, protocol))
        assert type(again) is Endpoint
        assert again == endpoint
        assert again.port == 5555
        assert again.host == "::1"
    for copied in (copy.copy(endpoint), copy.deepcopy(endpoint)):
        assert type(copied) is Endpoint
        assert copied == endpoint
        assert copied.port == 5555


def test_an_endpoint_cannot_be_changed() -> None:
    endpoint = Endpoint("tcp://127.0.0.1:5555")
    with pytest.raises(AttributeError, match="an Endpoint cannot be changed"):
        endpoint.port = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="an Endpoint cannot be changed"):
        endpoint.extra = 1  # type: ignore[attr-defined]
    assert endpoint.port == 5555


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("garbage", "it has no '://'"),
        ("127.0.0.1:5555", "it has no '://'"),
        ("", "it has no '://'"),
        ("http://example.org:80", "unknown transport 'http' (libzmq has epgm, inproc, ipc, "),
        ("TCP://127.0.0.1:5555", "unknown transport 'TCP'"),
        ("tcp://", "nothing follows '://'"),
        ("ipc://", "nothing follows '://'"),
        ("tcp://127.0.0.1", "a tcp endpoint needs HOST:PORT"),
        ("tcp://:5555", "a tcp endpoint needs HOST:PORT"),
        ("tcp://127.0.0.1:", "port '' is not a number from 0 to 65535 or '*'"),
        ("tcp://127.0.0.1:65536", "port '65536' is not a number from 0 to 65535 or '*'"),
        ("tcp://127.0.0.1:http", "port 'http' is not a number from 0 to 65535 or '*'"),
        ("tcp://127.0.0.1:-1", "port '-1' is not a number"),
        ("tcp://[::1]", "a tcp endpoint needs HOST:PORT"),
        ("tcp://[::1:5555", "unbalanced brackets in host '[::1'"),
        ("tcp://::1]:5555", "unbalanced brackets in host '::1]'"),
        ("tcp://[]:5555", "the host is empty"),
    ],
)
def test_a_malformed_endpoint_is_a_clear_error(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="is not a ZeroMQ endpoint") as info:
        Endpoint(text)
    message = str(info.value)
    assert message.startswith(f"{text!r} is not a ZeroMQ endpoint: {why}")
    assert "expected TRANSPORT://ADDRESS such as 'tcp://HOST:PORT' (PORT a number or '*'), 'ipc://PATH'" in message


def test_an_endpoint_is_made_of_a_string_only() -> None:
    with pytest.raises(TypeError, match=r"Endpoint\(\) takes a string, got bytes b'tcp://127\.0\.0\.1:5555'"):
        Endpoint(b"tcp://127.0.0.1:5555")  # type: ignore[arg-type]


def test_a_ready_group_is_an_endpoint_only_if_it_is_one() -> None:
    endpoint = as_endpoint("tcp://127.0.0.1:5555")
    assert type(endpoint) is Endpoint
    assert endpoint == "tcp://127.0.0.1:5555"
    assert type(as_endpoint("12345")) is str  # e.g. a pid printed on the ready line
    assert as_endpoint("12345") == "12345"
    assert as_endpoint(None) is None  # an optional group that did not take part


# --- every place that hands out an endpoint hands out an Endpoint ------------------------------


def test_the_factory_hands_out_endpoints(endpoints: EndpointFactory) -> None:
    tcp = endpoints.tcp()
    assert type(tcp) is Endpoint
    assert (tcp.transport, tcp.host) == ("tcp", "127.0.0.1")
    assert tcp.port == port_of(tcp)
    any_port = endpoints.tcp_any()
    assert type(any_port) is Endpoint
    assert (any_port.host, any_port.port) == ("127.0.0.1", None)
    ipc = endpoints.ipc("frontend")
    assert type(ipc) is Endpoint
    assert ipc.transport == "ipc"
    assert ipc.path == os.path.join(str(endpoints.ipc_dir), "frontend")
    assert type(endpoints("tcp")) is Endpoint
    assert type(endpoints("ipc")) is Endpoint


def test_a_mimic_bound_to_any_port_tells_its_port(endpoints: EndpointFactory, socks: Sockets) -> None:
    server = socks(zmq.PULL, bind=endpoints.tcp_any())
    assert type(server.endpoint) is Endpoint
    assert type(server.bound[0]) is Endpoint
    assert server.endpoint.port == port_of(server.getsockopt_string(zmq.LAST_ENDPOINT))
    assert server.endpoint.port != 0
    assert server.endpoint.host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", server.endpoint.port), timeout=10):  # a plain tcp peer reaches it
        pass
    client = socks(zmq.PUSH, connect=server.endpoint)
    assert type(client.endpoint) is Endpoint
    assert type(client.connected[0]) is Endpoint
    assert client.endpoint == server.endpoint
    client.send(b"by endpoint")
    assert server.recv() == b"by endpoint"


@pytest.mark.parametrize("spec", ["tcp://[::1]:*", "inproc://endpoint-test", "ipc"])
def test_mimics_hand_out_endpoints_of_every_transport(endpoints: EndpointFactory, socks: Sockets, spec: str) -> None:
    address = endpoints.ipc() if spec == "ipc" else spec
    server = socks(zmq.PAIR, bind=address)
    bound = server.endpoint
    assert type(bound) is Endpoint
    assert bound.transport == address.split("://")[0]
    if bound.transport == "tcp":
        assert bound.host == "::1"
        assert isinstance(bound.port, int)
        assert bound.port > 0
    if bound.transport == "ipc":
        assert bound.path is not None
        assert os.path.exists(bound.path)
    client = socks(zmq.PAIR, connect=bound)
    client.send(b"hello")
    assert server.recv() == b"hello"
    server.unbind(bound)
    assert server.bound == []


def test_plain_pyzmq_sockets_take_an_endpoint(endpoints: EndpointFactory, ctx: zmq.Context[Any]) -> None:
    server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        server.rcvtimeo = 10_000
        endpoint = endpoints.tcp()
        server.bind(endpoint)
        client.connect(Endpoint(server.last_endpoint.decode()))
        client.send(b"plain")
        assert server.recv() == b"plain"
    finally:
        server.close(linger=0)
        client.close(linger=0)


def test_a_log_collector_hands_out_an_endpoint() -> None:
    with LogCollector() as logs:
        assert type(logs.endpoint) is Endpoint
        assert logs.endpoint.transport == "tcp"
        assert isinstance(logs.endpoint.port, int)


def report_endpoint(endpoint: Endpoint) -> None:
    """In a child process: tell the parent, over a PUSH connected to ``endpoint``, what the child was given."""
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    try:
        push.connect(endpoint)
        push.send_json([type(endpoint).__name__, endpoint, endpoint.transport, endpoint.host, endpoint.port])
    finally:
        push.close(linger=int(CHILD_DEADLINE * 1000))  # bounded: the parent is waiting for the message
        context.term()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_process_gets_an_endpoint_across_a_pickling_start(
    endpoints: EndpointFactory, socks: Sockets, tmp_path: Path, method: str
) -> None:
    pull = socks(zmq.PULL, bind=endpoints.tcp_any(), timeout=CHILD_DEADLINE)
    with ProcessManager(tmp_path / "out") as procs:
        child = procs.start(multiprocessing.Process(target=report_endpoint, args=(pull.endpoint,)), start_method=method)
        report = pull.recv_json()
        assert child.wait(CHILD_DEADLINE) == 0, child.tail()
    assert report == ["Endpoint", pull.endpoint, "tcp", "127.0.0.1", pull.endpoint.port]


PORT_SERVER = """\
import argparse, zmq
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
port = parser.parse_args().port
context = zmq.Context()
server = context.socket(zmq.REP)
server.linger = 0
server.bind(f"tcp://127.0.0.1:{port}")
print("listening on", server.last_endpoint.decode(), flush=True)
server.send(server.recv() + b" back")
context.destroy()
"""
"""A program that takes its port, not an endpoint, on its command line."""


def test_a_command_taking_a_port_gets_it_from_the_endpoint(
    endpoints: EndpointFactory, socks: Sockets, tmp_path: Path
) -> None:
    endpoint = endpoints.tcp()
    with ProcessManager(tmp_path / "out") as procs:
        server = procs.start(
            [sys.executable, "-c", PORT_SERVER, "--port", str(endpoint.port)],
            ready=r"listening on (?P<endpoint>\S+)",
            ready_timeout=CHILD_DEADLINE,
        )
        assert type(server.endpoint) is Endpoint  # from the ready line
        assert server.endpoint == endpoint
        assert server.endpoint.port == endpoint.port
        client = socks(zmq.REQ, connect=server.endpoint, timeout=CHILD_DEADLINE)
        client.send(b"ping")
        assert client.recv() == b"ping back"
        assert server.wait(CHILD_DEADLINE) == 0, server.tail()


def test_the_endpoint_fixtures_hand_out_endpoints(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import zmq
        from zmqtest import Endpoint

        def test_endpoints(zmq_endpoint, zmq_endpoint_factory, zmq_socket_factory):
            assert type(zmq_endpoint) is Endpoint and isinstance(zmq_endpoint.port, int)
            ipc = zmq_endpoint_factory.ipc("backend")
            assert type(ipc) is Endpoint and os.path.dirname(ipc.path) == zmq_endpoint_factory.ipc_dir
            server = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint_factory.tcp_any())
            assert type(server.endpoint) is Endpoint and server.endpoint.port > 0
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly", "-W", "error", timeout=CHILD_DEADLINE).assert_outcomes(passed=1)
