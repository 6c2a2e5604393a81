"""EndpointFactory: reserved tcp ports and private ipc paths, on real sockets.

The tcp tests check the claim the reservation rests on: a reserved port is bindable
by libzmq at once (here and in another process) while the kernel hands it to no
other ``bind(0)``; a naive "bind to 0, close" reservation has no such guarantee.
"""

from __future__ import annotations

import os
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

from zmqtest.endpoints import IPC_PREFIX, EndpointFactory, reserve_tcp_port

if TYPE_CHECKING:
    from conftest import Sockets

CHILD_DEADLINE = 30.0
"""Seconds a helper process may take before it is killed."""


@pytest.fixture
def endpoints() -> Iterator[EndpointFactory]:
    with EndpointFactory() as factory:
        yield factory


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


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
