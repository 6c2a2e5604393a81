"""TestSocket and make_sock over real pyzmq sockets (tcp on 127.0.0.1 with free ports, ipc in a private dir).

No sleeping: delivery is awaited with bounded polls and receives; timeouts are checked
through the error's ``.timeout`` and the armed ``RCVTIMEO``/``SNDTIMEO``, never the clock.
"""

from __future__ import annotations

import errno
import gc
import json
import math
import multiprocessing
import pickle
import re
import socket
import threading
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq
from apps.last_word import reply_once_and_exit
from helpers import WAIT_MS, delivered, pair, port_of

import zmqtest
from zmqtest import SocketTimeout, TestSocket, ZmqTestError, make_sock, parse_endpoint

if TYPE_CHECKING:
    from conftest import Sockets

LOOPBACK = r"tcp://127\.0\.0\.1:(\d+)"
AGO = r"[0-9.e-]+ s ago"
"""How a timeout message says how long ago something happened (the figure varies)."""


def local_of(tb: Any, function: str, variable: str) -> Any:
    """The value of ``variable`` in the frame of ``function`` inside a traceback."""
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function and variable in tb.tb_frame.f_locals:
            return tb.tb_frame.f_locals[variable]
        tb = tb.tb_next
    raise AssertionError(f"no frame of {function}() with a local {variable!r} in the traceback")


def assert_collected_without_warning(ref: weakref.ref[Any]) -> None:
    """Collect the (already closed) socket behind ``ref`` and check that pyzmq did not warn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert ref() is None, "the socket is still referenced"
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


RECV_CALLS: dict[str, Callable[..., Any]] = {
    "recv": lambda s, **kw: s.recv(**kw),
    "recv_multipart": lambda s, **kw: s.recv_multipart(**kw),
    "recv_json": lambda s, **kw: s.recv_json(**kw),
    "recv_string": lambda s, **kw: s.recv_string(**kw),
    "recv_pyobj": lambda s, **kw: s.recv_pyobj(**kw),
    "recv_serialized": lambda s, **kw: s.recv_serialized(lambda frames: frames, **kw),
    "recv_into": lambda s, **kw: s.recv_into(bytearray(64), **kw),
}

SEND_CALLS: dict[str, Callable[..., Any]] = {
    "send": lambda s, **kw: s.send(b"x", **kw),
    "send_multipart": lambda s, **kw: s.send_multipart([b"a", b"b"], **kw),
    "send_json": lambda s, **kw: s.send_json({"a": 1}, **kw),
    "send_string": lambda s, **kw: s.send_string("x", **kw),
    "send_pyobj": lambda s, **kw: s.send_pyobj({"a": 1}, **kw),
    "send_serialized": lambda s, **kw: s.send_serialized({"a": 1}, lambda m: [json.dumps(m).encode()], **kw),
}


# --- the class itself ---------------------------------------------------------------------------------------------


def test_pytest_does_not_collect_it() -> None:
    assert vars(TestSocket)["__test__"] is False


def test_is_a_zmq_socket(socks: Sockets) -> None:
    sock = socks(zmq.DEALER)
    assert isinstance(sock, zmq.Socket)
    assert sock.type == zmq.DEALER


def test_describe_and_repr_of_a_fresh_socket(socks: Sockets) -> None:
    sock = socks(zmq.PAIR)
    assert sock.describe() == "PAIR socket (not bound or connected)"
    assert repr(sock) == "<TestSocket PAIR socket (not bound or connected)>"


@pytest.mark.parametrize(("sock_type", "type_name"), [(zmq.REQ, "REQ"), (zmq.ROUTER, "ROUTER"), (zmq.PUB, "PUB")])
def test_describe_names_type_name_and_endpoint(socks: Sockets, sock_type: int, type_name: str) -> None:
    sock = socks(sock_type, bind=("", 0), name="backend")
    assert sock.describe() == f"{type_name} socket 'backend' bound to {sock.endpoint}"
    assert repr(sock) == f"<TestSocket {type_name} socket 'backend' bound to {sock.endpoint}>"


def test_describe_bound_and_connected(socks: Sockets) -> None:
    other = socks(zmq.PAIR, bind=("", 0))
    sock = socks(zmq.PAIR, bind=("", 0), connect=other.endpoint, name="both")
    assert sock.describe() == f"PAIR socket 'both' bound to {sock.bound[0]} and connected to {other.endpoint}"


def test_describe_and_repr_show_closed(ctx: zmq.Context[Any]) -> None:
    sock = make_sock(ctx, zmq.PUSH, bind=("", 0), name="gone")
    endpoint = sock.endpoint
    sock.close()
    assert sock.describe() == f"PUSH socket 'gone' bound to {endpoint} [closed]"
    assert repr(sock).endswith(" [closed]>")


def test_mimic_defaults(socks: Sockets) -> None:
    for sock_type in (zmq.REQ, zmq.REP, zmq.DEALER, zmq.ROUTER, zmq.PUSH, zmq.PULL, zmq.PUB, zmq.SUB, zmq.PAIR):
        sock = socks(sock_type)
        assert sock.linger == 0
        assert sock.reconnect_ivl == 1
        assert sock.immediate == 0  # a mimic queues for a peer that has not connected, as a plain socket does
        assert sock.timeout is None


# --- endpoints ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        ("", 0),
        (None, 0),
        ("127.0.0.1", 0),
        ("127.0.0.1", "*"),
        ("", "*"),
        ["127.0.0.1", 0],
        "tcp://127.0.0.1:*",
        "tcp://:*",
        "tcp://127.0.0.1:0",
    ],
    ids=repr,
)
def test_bind_to_any_port_reads_back_the_real_port(socks: Sockets, spec: Any) -> None:
    server = socks(zmq.PAIR, bind=spec)
    assert len(server.bound) == 1
    assert server.bound == [server.endpoint]
    assert server.endpoint == server.getsockopt_string(zmq.LAST_ENDPOINT)
    match = re.fullmatch(LOOPBACK, server.endpoint)
    assert match is not None, server.endpoint
    assert 0 < int(match.group(1)) < 65536
    client = socks(zmq.PAIR, connect=server.endpoint)
    client.send(b"hello", timeout=5)
    assert server.recv(timeout=5) == b"hello"


@pytest.mark.parametrize(
    "spec_for",
    [
        lambda port: ("127.0.0.1", port),
        lambda port: ("", port),
        lambda port: (None, port),
        lambda port: ["127.0.0.1", port],
        lambda port: f"tcp://127.0.0.1:{port}",
        lambda port: f"tcp://:{port}",
    ],
    ids=["tuple", "empty-host", "none-host", "list", "string", "string-no-host"],
)
def test_connect_forms(socks: Sockets, spec_for: Callable[[int], Any]) -> None:
    server = socks(zmq.PAIR, bind=("", 0))
    port = port_of(server.endpoint)
    client = socks(zmq.PAIR, connect=spec_for(port))
    assert client.connected == [f"tcp://127.0.0.1:{port}"]
    assert client.endpoint == f"tcp://127.0.0.1:{port}"
    client.send(b"ping", timeout=5)
    assert server.recv(timeout=5) == b"ping"


@pytest.mark.parametrize(
    ("spec", "bind", "expected"),
    [
        (("", 555), False, "tcp://127.0.0.1:555"),
        ((None, 1), False, "tcp://127.0.0.1:1"),
        (("myhost", 65535), False, "tcp://myhost:65535"),
        (("::1", 5555), False, "tcp://[::1]:5555"),
        (("[::1]", 5555), False, "tcp://[::1]:5555"),
        (("::1", 0), True, "tcp://[::1]:*"),
        (("fe80::1", "*"), True, "tcp://[fe80::1]:*"),
        (("", 0), True, "tcp://127.0.0.1:*"),
        (("*", 555), True, "tcp://*:555"),
        ("tcp://:555", False, "tcp://127.0.0.1:555"),
        ("tcp://:*", True, "tcp://127.0.0.1:*"),
        ("tcp://10.1.2.3:80", False, "tcp://10.1.2.3:80"),
        ("ipc:///tmp/zt/x", False, "ipc:///tmp/zt/x"),
        ("inproc://name", True, "inproc://name"),
    ],
)
def test_parse_endpoint(spec: Any, bind: bool, expected: str) -> None:
    assert parse_endpoint(spec, bind=bind) == expected


@pytest.mark.parametrize(
    ("spec", "bind", "fragment"),
    [
        ("127.0.0.1:5555", False, "has no transport"),
        ("", True, "has no transport"),
        (("127.0.0.1", 0), False, "must be a number from 1 to 65535"),
        (("127.0.0.1", "*"), False, "cannot connect"),
        (("127.0.0.1", True), False, "port in"),
        (("127.0.0.1", True), True, "port in"),
        (("127.0.0.1", False), True, "port in"),
        (("127.0.0.1", 0.0), True, "port in"),
        (("127.0.0.1", 5555.0), False, "port in"),
        (("127.0.0.1", "5555"), False, "port in"),
        (("127.0.0.1", None), True, "port in"),
        (("127.0.0.1", 65536), False, "from 1 to 65535"),
        (("127.0.0.1", -1), True, "from 1 to 65535 (or 0 for any)"),
        ((1, 5555), False, "host in"),
        (("127.0.0.1",), True, "(host, port) tuple"),
        (("127.0.0.1", 5555, 1), False, "(host, port) tuple"),
        (5555, False, "(host, port) tuple"),
        (None, True, "(host, port) tuple"),
        (b"tcp://127.0.0.1:555", False, "(host, port) tuple"),
    ],
    ids=repr,
)
def test_bad_endpoints_name_the_input(spec: Any, bind: bool, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as excinfo:
        parse_endpoint(spec, bind=bind)
    assert repr(spec) in str(excinfo.value)


def test_bad_endpoint_in_make_sock_closes_the_socket(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(ValueError, match=re.escape("cannot connect to ('127.0.0.1', '*')")) as excinfo:
        make_sock(ctx, zmq.PAIR, connect=("127.0.0.1", "*"))
    sock = local_of(excinfo.tb, "make_sock", "sock")
    assert sock.closed
    ref = weakref.ref(sock)
    del sock, excinfo
    assert_collected_without_warning(ref)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_literal_bind_and_connect(socks: Sockets) -> None:
    server = socks(zmq.PAIR, bind=("::1", 0))
    assert server.endpoint.startswith("tcp://[::1]:")
    client = socks(zmq.PAIR, connect=("::1", port_of(server.endpoint)))
    assert client.endpoint == server.endpoint
    client.send(b"over v6", timeout=5)
    assert server.recv(timeout=5) == b"over v6"


def test_ipc_endpoints(socks: Sockets, ipc_dir: Path) -> None:
    assert ipc_dir.stat().st_mode & 0o777 == 0o700
    endpoint = f"ipc://{ipc_dir}/mimic"
    server = socks(zmq.PULL, bind=endpoint, name="sink")
    client = socks(zmq.PUSH, connect=endpoint)
    assert server.bound == [endpoint]
    assert client.connected == [endpoint]
    client.send_multipart([b"a", b"b"], timeout=5)
    assert server.recv_multipart(timeout=5) == [b"a", b"b"]


def test_a_second_mimic_binding_an_ipc_path_is_refused_naming_both(socks: Sockets, ipc_dir: Path) -> None:
    endpoint = f"ipc://{ipc_dir}/taken"
    first = socks(zmq.PULL, bind=endpoint, name="first")
    second = socks(zmq.PULL, name="second")
    with pytest.raises(zmq.ZMQError) as excinfo:
        second.bind(endpoint)  # libzmq alone would take the path over: first would get no more connections
    assert excinfo.value.errno == zmq.EADDRINUSE
    assert str(excinfo.value) == (
        f"bind('{endpoint}') on PULL socket 'second' (not bound or connected) refused: PULL socket 'first' bound to "
        f"{endpoint} holds that path; libzmq would let this bind take it over silently (it replaces the socket "
        "file), and the first socket would get no more connections; unbind or close that one first, or bind another "
        "path"
    )
    assert second.bound == []
    pusher = socks(zmq.PUSH, connect=endpoint)
    pusher.send(b"still first's", timeout=5)
    assert first.recv(timeout=5) == b"still first's"


@pytest.mark.parametrize("release", ["unbind", "close"])
def test_an_ipc_path_is_free_for_another_mimic_once_unbound_or_closed(
    socks: Sockets, ipc_dir: Path, release: str
) -> None:
    endpoint = f"ipc://{ipc_dir}/handed-over"
    first = socks(zmq.PULL, bind=endpoint, name="first")
    if release == "unbind":
        first.unbind(endpoint)
    else:
        first.close()
    second = socks(zmq.PULL, bind=endpoint, name="second")
    assert second.bound == [endpoint]


def test_a_relative_ipc_path_is_the_same_path_as_its_absolute_form(
    socks: Sockets, ipc_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ipc_dir)
    socks(zmq.PULL, bind="ipc://relative", name="first")
    with pytest.raises(zmq.ZMQError, match="PULL socket 'first' bound to ipc://relative holds that path"):
        socks(zmq.PULL, bind=f"ipc://{ipc_dir}/relative", name="second")


CLOSED_CALLS: dict[str, Callable[[TestSocket], Any]] = {
    "send_multipart": lambda s: s.send_multipart([b"x"]),
    "send_json": lambda s: s.send_json({"a": 1}),
    "recv": lambda s: s.recv(),
    "recv_multipart": lambda s: s.recv_multipart(timeout=0.5),  # a timeout never armed: arming is what fails
    "bind('tcp://127.0.0.1:*')": lambda s: s.bind(("", 0)),
    "connect('tcp://127.0.0.1:9')": lambda s: s.connect(("", 9)),
    "unbind": lambda s: s.unbind(s.bound[0]),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
def test_a_socket_used_after_its_factory_closed_it_says_so_by_name(ctx: zmq.Context[Any], call: str) -> None:
    factory = zmqtest.SocketFactory(ctx)
    sock = factory(zmq.PAIR, bind=("", 0), name="kept", timeout=0.2)
    endpoint = sock.endpoint
    with pytest.raises(zmq.Again):
        sock.recv(zmq.NOBLOCK)  # arms 0.2 s: a later call with it fails in libzmq's recv, one with another in arming
    factory.close(by="the zmq_socket_factory fixture at the end of test_a.py::test_first")
    with pytest.raises(zmq.ZMQError) as excinfo:
        CLOSED_CALLS[call](sock)
    assert excinfo.value.errno == zmq.ENOTSOCK  # code that catches pyzmq's error keeps catching it
    assert str(excinfo.value).startswith(call)
    assert str(excinfo.value).endswith(
        f" on PAIR socket 'kept' bound to {endpoint} [closed]: this socket was closed by the zmq_socket_factory "
        "fixture at the end of test_a.py::test_first; a closed socket cannot be used again"
    )


def test_a_socket_used_after_close_names_the_line_that_closed_it(socks: Sockets) -> None:
    sock = socks(zmq.PUSH, name="done")
    sock.close()
    with pytest.raises(zmq.ZMQError) as excinfo:
        sock.send(b"late")
    assert excinfo.value.errno == zmq.ENOTSOCK
    assert re.fullmatch(
        r"send on PUSH socket 'done' \(not bound or connected\) \[closed\]: this socket was closed by close\(\) at "
        r"test_sockets\.py:\d+; a closed socket cannot be used again",
        str(excinfo.value),
    )


def test_make_sock_binds_connects_and_passes_options(socks: Sockets) -> None:
    peer = socks(zmq.PAIR, bind=("", 0))
    sock = socks(zmq.PAIR, bind=("", 0), connect=peer.endpoint, name="hub", timeout=0.25, sndhwm=7)
    assert sock.name == "hub"
    assert sock.timeout == 0.25
    assert sock.sndhwm == 7
    assert len(sock.bound) == 1
    assert sock.connected == [peer.endpoint]


def test_endpoint_needs_exactly_one(socks: Sockets) -> None:
    sock = socks(zmq.PAIR, name="lonely")
    with pytest.raises(ValueError, match="PAIR socket 'lonely' \\(not bound or connected\\) has 0 endpoints"):
        _ = sock.endpoint
    sock.bind(("", 0))
    sock.bind(("", 0))
    with pytest.raises(ValueError, match=r"has 2 endpoints; use \.bound or \.connected"):
        _ = sock.endpoint


def test_bind_to_an_address_in_use_names_the_endpoint(socks: Sockets) -> None:
    first = socks(zmq.PAIR, bind=("", 0))
    port = port_of(first.endpoint)
    with pytest.raises(zmq.ZMQError) as excinfo:
        socks(zmq.PAIR, bind=("127.0.0.1", port), name="second")
    assert excinfo.value.errno == zmq.EADDRINUSE
    message = str(excinfo.value)
    assert f"in bind('tcp://127.0.0.1:{port}') on PAIR socket 'second'" in message
    sock = local_of(excinfo.tb, "make_sock", "sock")
    assert sock.closed
    assert sock.bound == []


def test_unbind_updates_the_endpoint_list(socks: Sockets) -> None:
    sock = socks(zmq.PULL, name="srv")
    sock.bind(("", 0))
    sock.bind(("", 0))
    first, second = sock.bound
    sock.unbind(first)
    assert sock.bound == [second]
    sock.unbind(("127.0.0.1", port_of(second)))  # the form bind accepts
    assert sock.bound == []
    assert sock.describe() == "PULL socket 'srv' (not bound or connected)"


def test_unbind_accepts_bytes(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind="tcp://:*")
    sock.unbind(sock.endpoint.encode())
    assert sock.bound == []


def test_unbind_of_an_unknown_endpoint_names_the_socket(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), name="srv")
    with pytest.raises(zmq.ZMQError) as excinfo:
        sock.unbind(f"tcp://127.0.0.1:{port_of(sock.endpoint) ^ 1}")
    assert excinfo.value.errno == errno.ENOENT
    assert "on PULL socket 'srv' bound to" in str(excinfo.value)
    assert len(sock.bound) == 1


def test_disconnect_updates_the_endpoint_list(socks: Sockets, ipc_dir: Path) -> None:
    one, two = f"ipc://{ipc_dir}/one", f"ipc://{ipc_dir}/two"
    sock = socks(zmq.PUSH, connect=one, name="fan")
    sock.connect(two)
    assert sock.connected == [one, two]
    sock.disconnect(one)
    assert sock.connected == [two]
    sock.disconnect(two.encode())
    assert sock.connected == []
    with pytest.raises(zmq.ZMQError) as excinfo:
        sock.disconnect(one)
    assert excinfo.value.errno == errno.ENOENT
    assert f"in disconnect('{one}') on PUSH socket 'fan'" in str(excinfo.value)


# --- messages that are there, and timeouts ------------------------------------------------------------------------


def test_a_message_already_there_is_returned_with_zero_timeout(socks: Sockets) -> None:
    server, client = pair(socks)
    client.send_multipart([b"one", b"two"], timeout=5)
    delivered(server)
    assert server.recv_multipart(timeout=0) == [b"one", b"two"]
    client.send(b"three", timeout=5)
    delivered(server)
    server.timeout = 0
    assert server.recv() == b"three"


@pytest.mark.parametrize("operation", sorted(RECV_CALLS))
def test_recv_with_nothing_to_receive_times_out(socks: Sockets, operation: str) -> None:
    sock = socks(zmq.PAIR, bind=("", 0), name="mimic", timeout=0.02)
    with pytest.raises(SocketTimeout) as excinfo:
        RECV_CALLS[operation](sock)
    exc = excinfo.value
    assert isinstance(exc, zmq.Again)
    assert isinstance(exc, zmq.ZMQError)
    assert isinstance(exc, ZmqTestError)
    assert exc.errno == zmq.EAGAIN
    assert exc.operation == operation
    assert exc.timeout == 0.02
    assert re.fullmatch(
        f"{operation} on PAIR socket 'mimic' bound to {re.escape(sock.endpoint)}: no message within 0.02 s; "
        f"no peer has connected at {re.escape(sock.endpoint)} since the socket was bound there {AGO}",
        str(exc),
    )
    assert exc.strerror == str(exc)
    assert exc.__cause__ is None
    assert exc.__suppress_context__


def test_timeout_is_caught_as_plain_pyzmq_errors(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=0.01)

    def code_written_for_pyzmq(handler: type[zmq.ZMQError]) -> int | None:
        try:
            sock.recv()
        except handler as exc:
            return exc.errno
        return None

    assert code_written_for_pyzmq(zmq.Again) == zmq.EAGAIN
    assert code_written_for_pyzmq(zmq.ZMQError) == zmq.EAGAIN


def test_sub_timeout_hints_at_the_slow_joiner(socks: Sockets) -> None:
    sub = socks(zmq.SUB, bind=("", 0), subscribe=b"", name="listener", timeout=0.01)
    with pytest.raises(SocketTimeout, match="has its subscription reached the publisher yet") as excinfo:
        sub.recv_multipart()
    assert "SUB socket 'listener'" in str(excinfo.value)


@pytest.mark.parametrize("operation", sorted(SEND_CALLS))
def test_a_dealer_queues_for_a_peer_that_has_not_connected_and_delivers_once_one_does(
    socks: Sockets, ipc_dir: Path, operation: str
) -> None:
    """As a plain DEALER: the send returns at once, the message waits, and a wait that times out says why."""
    nobody = f"ipc://{ipc_dir}/nobody"
    dealer = socks(zmq.DEALER, connect=nobody, name="client", timeout=0.02)
    SEND_CALLS[operation](dealer)
    with pytest.raises(SocketTimeout) as excinfo:
        dealer.recv()
    assert re.fullmatch(
        f"recv on DEALER socket 'client' connected to {re.escape(nobody)}: no message within 0.02 s; "
        f"no peer has connected at {re.escape(nobody)} since the socket connected to it {AGO} "
        r"\(what is sent to it waits in the socket's queue until one does\)",
        str(excinfo.value),
    )
    late = socks(zmq.ROUTER, bind=nobody, timeout=5)
    _identity, *frames = late.recv_multipart()
    assert frames  # the message sent while nobody was there


@pytest.mark.parametrize("operation", sorted(SEND_CALLS))
def test_immediate_is_an_opt_in_and_a_send_to_nobody_then_times_out(
    socks: Sockets, ipc_dir: Path, operation: str
) -> None:
    nobody = f"ipc://{ipc_dir}/nobody"
    dealer = socks(zmq.DEALER, connect=nobody, name="client", timeout=0.02, immediate=True)
    assert dealer.immediate == 1
    with pytest.raises(SocketTimeout) as excinfo:
        SEND_CALLS[operation](dealer)
    exc = excinfo.value
    assert exc.operation == operation
    assert exc.timeout == 0.02
    assert re.fullmatch(
        f"{operation} on DEALER socket 'client' connected to {re.escape(nobody)}: could not send within 0.02 s: "
        f"no peer took the message; no peer has connected at {re.escape(nobody)} since the socket connected to it "
        f"{AGO} \\(what is sent to it waits in the socket's queue until one does\\)",
        str(exc),
    ), str(exc)


def test_a_full_queue_says_so(socks: Sockets) -> None:
    pull = socks(zmq.PULL, bind=("", 0), rcvhwm=1, name="slow")
    push = socks(zmq.PUSH, connect=pull.endpoint, sndhwm=1, name="feeder", timeout=0.02)
    assert pull.peers is not None
    with pytest.raises(SocketTimeout) as excinfo:  # noqa: PT012  (fill the queue until it is full)
        for _ in range(10_000):
            push.send(b"x" * 1000)
    assert re.fullmatch(
        f"send on PUSH socket 'feeder' connected to {re.escape(pull.endpoint)}: could not send within 0.02 s: "
        f"no peer took the message: its queue is full \\(sndhwm=1 messages per peer\\); "
        f"a peer is connected at {re.escape(pull.endpoint)}",
        str(excinfo.value),
    ), str(excinfo.value)


def test_a_req_to_nobody_queues_and_its_reply_times_out_naming_the_endpoint(socks: Sockets, ipc_dir: Path) -> None:
    nobody = f"ipc://{ipc_dir}/nobody"
    req = socks(zmq.REQ, connect=nobody, name="client", timeout=0.02)
    req.send(b"anyone?")
    with pytest.raises(SocketTimeout) as excinfo:
        req.recv()
    assert re.fullmatch(
        f"recv on REQ socket 'client' connected to {re.escape(nobody)}: no reply within 0.02 s; "
        f"no peer has connected at {re.escape(nobody)} since the socket connected to it {AGO} "
        r"\(what is sent to it waits in the socket's queue until one does\)",
        str(excinfo.value),
    )


def test_send_on_a_bound_socket_nobody_connected_to(socks: Sockets) -> None:
    push = socks(zmq.PUSH, bind=("", 0), name="feeder", timeout=0.01)
    with pytest.raises(SocketTimeout) as excinfo:
        push.send(b"work")
    assert re.fullmatch(
        f"send on PUSH socket 'feeder' bound to {re.escape(push.endpoint)}: could not send within 0.01 s: "
        f"no peer took the message; no peer has connected at {re.escape(push.endpoint)} since the socket was bound "
        f"there {AGO}",
        str(excinfo.value),
    )


def test_req_recv_timeout_says_no_reply_and_that_a_peer_is_connected(socks: Sockets) -> None:
    rep = socks(zmq.REP, bind=("", 0), timeout=5)
    req = socks(zmq.REQ, connect=rep.endpoint, name="client", timeout=5)
    req.send(b"q")
    assert rep.recv() == b"q"
    with pytest.raises(SocketTimeout) as excinfo:
        req.recv(timeout=0.01)
    assert str(excinfo.value) == (
        f"recv on REQ socket 'client' connected to {rep.endpoint}: no reply within 0.01 s; "
        f"a peer is connected at {rep.endpoint}"
    )


# --- which timeout applies ----------------------------------------------------------------------------------------


def _recv_timeout(sock: TestSocket, **kwargs: Any) -> SocketTimeout:
    with pytest.raises(SocketTimeout) as excinfo:
        sock.recv(**kwargs)
    return excinfo.value


def test_harness_default_applies_without_socket_timeout(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0))
    with zmqtest.default_timeout(0.03):
        assert zmqtest.current_timeout() == 0.03
        assert _recv_timeout(sock).timeout == 0.03
    assert sock.rcvtimeo == 30
    assert sock.sndtimeo == 30


def test_harness_default_change_is_seen_by_the_next_call(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0))
    with zmqtest.default_timeout(0.03):
        assert _recv_timeout(sock).timeout == 0.03
    with zmqtest.default_timeout(0.02):
        assert _recv_timeout(sock).timeout == 0.02
    assert sock.rcvtimeo == 20


def test_socket_timeout_beats_the_harness_default(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=0.02)
    assert sock.timeout == 0.02
    with zmqtest.default_timeout(0.5):
        assert _recv_timeout(sock).timeout == 0.02
    sock.timeout = 0.03
    with zmqtest.default_timeout(0.5):
        assert _recv_timeout(sock).timeout == 0.03
    assert sock.rcvtimeo == 30


def test_call_timeout_beats_the_socket_timeout(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=0.5)
    with zmqtest.default_timeout(0.4):
        exc = _recv_timeout(sock, timeout=0.01)
    assert exc.timeout == 0.01
    assert "within 0.01 s" in str(exc)
    assert sock.rcvtimeo == 10


def test_call_timeout_applies_to_that_call_only(socks: Sockets) -> None:
    server, client = pair(socks, timeout=0.5)
    client.send(b"first")
    delivered(server)
    assert server.recv(timeout=0.04) == b"first"
    assert server.rcvtimeo == 40
    client.send(b"second")
    delivered(server)
    assert server.recv() == b"second"
    assert server.rcvtimeo == 500


def test_socket_timeout_none_returns_to_the_harness_default(socks: Sockets) -> None:
    server, client = pair(socks, timeout=0.5)
    server.timeout = None
    client.send(b"x")
    delivered(server)
    assert server.recv() == b"x"
    assert server.rcvtimeo == math.ceil(zmqtest.current_timeout() * 1000)


def test_zero_timeout_does_not_wait(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=0)
    exc = _recv_timeout(sock)
    assert exc.timeout == 0
    assert "no message within 0 s" in str(exc)
    assert sock.rcvtimeo == 0


def test_huge_timeout_is_clamped_to_what_libzmq_takes(socks: Sockets) -> None:
    server, client = pair(socks)
    client.send(b"x", timeout=5)
    delivered(server)
    assert server.recv(timeout=1e10) == b"x"
    assert server.rcvtimeo == 2**31 - 1


BAD_TIMEOUTS = [-1, -0.001, math.inf, math.nan, "abc", "", True, False, [1]]


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
def test_bad_call_timeout_names_the_argument(socks: Sockets, value: Any) -> None:
    server, client = pair(socks, timeout=0.5)
    with pytest.raises(ValueError, match="the timeout= argument of recv_json") as excinfo:
        server.recv_json(timeout=value)
    assert repr(value) in str(excinfo.value)
    client.send_json({"still": "usable"})
    assert server.recv_json(timeout=5) == {"still": "usable"}
    assert server.rcvtimeo == 5000


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
def test_bad_socket_timeout_names_the_socket(socks: Sockets, value: Any) -> None:
    sock = socks(zmq.PULL, bind=("", 0), name="sink", timeout=0.5)
    with pytest.raises(ValueError, match="from the timeout of PULL socket 'sink' bound to tcp://") as excinfo:
        sock.timeout = value
    assert repr(value) in str(excinfo.value)
    assert sock.timeout == 0.5


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
def test_bad_constructor_timeout_closes_the_socket(ctx: zmq.Context[Any], value: Any) -> None:
    with pytest.raises(ValueError, match="from the timeout of PAIR socket 'bad'") as excinfo:
        TestSocket(ctx, zmq.PAIR, timeout=value, name="bad")
    sock = local_of(excinfo.tb, "__init__", "self")
    assert isinstance(sock, TestSocket)
    assert sock.closed
    ref = weakref.ref(sock)
    del sock, excinfo
    assert_collected_without_warning(ref)


@pytest.mark.parametrize("value", [*BAD_TIMEOUTS, 0], ids=repr)
def test_bad_harness_default_names_default_timeout(value: Any) -> None:
    before = zmqtest.current_timeout()
    with pytest.raises(ValueError, match=r"from default_timeout\(\)"), zmqtest.default_timeout(value):
        pass
    assert zmqtest.current_timeout() == before


# --- flags and errors that are not "nothing yet" ------------------------------------------------------------------

NOBLOCK_RECV: dict[str, Callable[[TestSocket], Any]] = {
    "recv-positional": lambda s: s.recv(zmq.NOBLOCK),
    "recv-keyword": lambda s: s.recv(flags=zmq.NOBLOCK),
    "recv_multipart": lambda s: s.recv_multipart(zmq.DONTWAIT),
    "recv_json": lambda s: s.recv_json(zmq.NOBLOCK),
    "recv_string": lambda s: s.recv_string(flags=zmq.NOBLOCK),
    "recv_pyobj": lambda s: s.recv_pyobj(zmq.NOBLOCK),
    "recv_serialized": lambda s: s.recv_serialized(lambda frames: frames, zmq.NOBLOCK),
    "recv_into": lambda s: s.recv_into(bytearray(8), flags=zmq.NOBLOCK),
}
NOBLOCK_SEND: dict[str, Callable[[TestSocket], Any]] = {
    "send-positional": lambda s: s.send(b"x", zmq.NOBLOCK),
    "send-keyword": lambda s: s.send(b"x", flags=zmq.NOBLOCK),
    "send_multipart": lambda s: s.send_multipart([b"a", b"b"], zmq.NOBLOCK),
    "send_json": lambda s: s.send_json([1], zmq.NOBLOCK),
    "send_string": lambda s: s.send_string("x", flags=zmq.NOBLOCK),
    "send_serialized": lambda s: s.send_serialized(1, lambda m: [b"%d" % m], zmq.NOBLOCK),
}


@pytest.mark.parametrize("call", sorted(NOBLOCK_RECV))
def test_noblock_recv_raises_plain_again(socks: Sockets, call: str) -> None:
    sock = socks(zmq.PULL, bind=("", 0), timeout=30)
    with pytest.raises(zmq.Again) as excinfo:
        NOBLOCK_RECV[call](sock)
    assert type(excinfo.value) is zmq.Again


@pytest.mark.parametrize("call", sorted(NOBLOCK_SEND))
def test_noblock_send_raises_plain_again(socks: Sockets, ipc_dir: Path, call: str) -> None:
    dealer = socks(zmq.DEALER, connect=f"ipc://{ipc_dir}/nobody", timeout=30, immediate=True)
    with pytest.raises(zmq.Again) as excinfo:
        NOBLOCK_SEND[call](dealer)
    assert type(excinfo.value) is zmq.Again


def test_efsm_surfaces_at_once_naming_the_socket(socks: Sockets) -> None:
    rep = socks(zmq.REP, bind=("", 0), name="server", timeout=30)
    with pytest.raises(zmq.ZMQError) as excinfo:
        rep.send(b"an answer nobody asked for")
    exc = excinfo.value
    assert not isinstance(exc, SocketTimeout)
    assert exc.errno == zmq.EFSM
    assert f"in send on REP socket 'server' bound to {rep.endpoint}" in str(exc)


def test_req_recv_before_send_is_efsm(socks: Sockets, ipc_dir: Path) -> None:
    req = socks(zmq.REQ, connect=f"ipc://{ipc_dir}/x", name="client", timeout=30)
    with pytest.raises(zmq.ZMQError) as excinfo:
        req.recv_json()
    assert excinfo.value.errno == zmq.EFSM
    assert "in recv_json on REQ socket 'client'" in str(excinfo.value)


def test_router_to_unknown_identity_is_ehostunreach(socks: Sockets) -> None:
    router = socks(zmq.ROUTER, bind=("", 0), name="backend", timeout=30)
    with pytest.raises(zmq.ZMQError) as excinfo:
        router.send_multipart([b"ghost", b"", b"hello"])
    exc = excinfo.value
    assert not isinstance(exc, SocketTimeout)
    assert exc.errno == zmq.EHOSTUNREACH
    assert f"in send_multipart on ROUTER socket 'backend' bound to {router.endpoint}" in str(exc)


def test_eterm_surfaces_at_once() -> None:
    context: zmq.Context[Any] = zmq.Context()
    sock = TestSocket(context, zmq.PULL, name="drain", timeout=30)
    terminator = threading.Thread(target=context.term, daemon=True)
    try:
        sock.bind(("", 0))
        terminator.start()
        with pytest.raises(zmq.ZMQError) as excinfo:
            sock.recv()
    finally:
        sock.close()
    terminator.join(WAIT_MS / 1000)
    assert not terminator.is_alive(), "context.term() did not return after the socket was closed"
    assert not isinstance(excinfo.value, SocketTimeout)
    assert excinfo.value.errno == zmq.ETERM
    assert "in recv on PULL socket 'drain'" in str(excinfo.value)


def test_req_is_usable_after_a_timed_out_recv_and_drops_the_late_reply(socks: Sockets) -> None:
    rep = socks(zmq.REP, bind=("", 0), name="server", timeout=5)
    req = socks(zmq.REQ, connect=rep.endpoint, name="client", timeout=5)
    req.send(b"q1")
    assert rep.recv() == b"q1"
    with pytest.raises(SocketTimeout):
        req.recv(timeout=0.01)
    req.send(b"q2")  # a plain REQ would raise EFSM here
    rep.send(b"late answer to q1")
    assert rep.recv() == b"q2"
    rep.send(b"answer to q2")
    assert req.recv() == b"answer to q2"  # the late answer, queued before it, was dropped


def test_close_and_term_with_an_unsent_message_do_not_hang(
    ipc_dir: Path, term_within: Callable[[zmq.Context[Any], float], bool]
) -> None:
    context: zmq.Context[Any] = zmq.Context()
    sock = TestSocket(context, zmq.PAIR, name="orphan")
    try:
        sock.connect(f"ipc://{ipc_dir}/nobody-will-bind")
        sock.send(b"never delivered", timeout=0)  # queued on the pipe to the absent peer
        assert sock.linger == 0
    finally:
        sock.close()
    assert term_within(context, 5.0), "context.term() hung on an unsent message: LINGER is not 0"


# --- constructor keywords -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["no_such_option", "bind", "describe", "send", "type", "pub", "bound", "_busy"])
def test_unknown_keyword_is_a_type_error_and_closes_the_socket(ctx: zmq.Context[Any], keyword: str) -> None:
    with pytest.raises(TypeError, match=f"TestSocket\\(\\) got an unknown keyword '{keyword}': not a socket option"):
        TestSocket(ctx, zmq.PAIR, **{keyword: ("", 0)})
    try:
        TestSocket(ctx, zmq.PAIR, **{keyword: 1})
    except TypeError as exc:
        sock = local_of(exc.__traceback__, "__init__", "self")
    else:
        pytest.fail("no TypeError")
    assert isinstance(sock, TestSocket)
    assert sock.closed
    assert vars(sock).get(keyword) != 1  # nothing was hidden behind an instance attribute
    ref = weakref.ref(sock)
    del sock
    assert_collected_without_warning(ref)


def test_unknown_keyword_in_make_sock(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(TypeError, match="'sndhvm'"):
        make_sock(ctx, zmq.PUSH, bind=("", 0), sndhvm=5)


def test_subscribe_keyword_reaches_the_publisher(socks: Sockets) -> None:
    xpub = socks(zmq.XPUB, bind=("", 0), timeout=5)
    socks(zmq.SUB, connect=xpub.endpoint, subscribe=b"topic")
    assert xpub.recv() == b"\x01topic"


def test_identity_keyword_is_what_the_router_sees(socks: Sockets) -> None:
    router = socks(zmq.ROUTER, bind=("", 0), timeout=5)
    dealer = socks(zmq.DEALER, connect=router.endpoint, identity=b"x", timeout=5)
    assert dealer.identity == b"x"
    dealer.send(b"hello")
    assert router.recv_multipart() == [b"x", b"hello"]
    router.send_multipart([b"x", b"welcome"])
    assert dealer.recv() == b"welcome"


def test_option_keywords_set_options(socks: Sockets) -> None:
    sock = socks(zmq.DEALER, rcvhwm=11, hwm=5, LINGER=3, immediate=0)
    assert sock.sndhwm == 5  # hwm sets both (after rcvhwm)
    assert sock.rcvhwm == 5
    assert sock.linger == 3  # the user's word beats the mimic default
    assert sock.immediate == 0


def test_option_keyword_invalid_for_the_type_closes_the_socket(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(zmq.ZMQError) as excinfo:
        TestSocket(ctx, zmq.PAIR, subscribe=b"")
    assert excinfo.value.errno == zmq.EINVAL
    assert local_of(excinfo.tb, "__init__", "self").closed


def test_context_socket_with_socket_class(ctx: zmq.Context[Any], socks: Sockets) -> None:
    sock = socks.track(ctx.socket(zmq.PAIR, socket_class=TestSocket, timeout=0.01, name="via-context"))
    assert isinstance(sock, TestSocket)
    assert sock.linger == 0
    sock.bind(("", 0))
    with pytest.raises(SocketTimeout, match=f"recv on PAIR socket 'via-context' bound to {sock.endpoint}"):
        sock.recv()


def test_poller(socks: Sockets) -> None:
    server, client = pair(socks)
    poller = zmq.Poller()
    poller.register(server, zmq.POLLIN)
    assert poller.poll(0) == []
    client.send(b"ping", timeout=5)
    assert dict(poller.poll(WAIT_MS)) == {server: zmq.POLLIN}
    assert server.recv(timeout=0) == b"ping"
    assert poller.poll(0) == []


# --- the send/recv variants ---------------------------------------------------------------------------------------


def _recv_into_bytes(sock: TestSocket) -> bytes:
    buffer = bytearray(16)
    return bytes(buffer[: sock.recv_into(buffer)])


@pytest.mark.parametrize(
    ("send", "recv", "expected"),
    [
        (lambda s: s.send(b"raw"), lambda s: s.recv(), b"raw"),
        (lambda s: s.send_multipart([b"a", b"", b"c"]), lambda s: s.recv_multipart(), [b"a", b"", b"c"]),
        (lambda s: s.send_json({"é": [1, None]}), lambda s: s.recv_json(), {"é": [1, None]}),
        (lambda s: s.send_string("héllo"), lambda s: s.recv_string(), "héllo"),
        (lambda s: s.send_pyobj({"set": {1, 2}}), lambda s: s.recv_pyobj(), {"set": {1, 2}}),
        (
            lambda s: s.send_serialized({"n": 1}, lambda m: [b"hdr", json.dumps(m).encode()]),
            lambda s: s.recv_serialized(lambda frames: (frames[0], json.loads(frames[1]))),
            (b"hdr", {"n": 1}),
        ),
        (lambda s: s.send(b"into"), lambda s: _recv_into_bytes(s), b"into"),
        (lambda s: s.send(b"copy=False"), lambda s: s.recv(copy=False).bytes, b"copy=False"),
    ],
    ids=["send/recv", "multipart", "json", "string", "pyobj", "serialized", "recv_into", "frame"],
)
def test_variants_deliver(
    socks: Sockets, send: Callable[[TestSocket], Any], recv: Callable[[TestSocket], Any], expected: Any
) -> None:
    server, client = pair(socks, timeout=5)
    send(client)
    assert recv(server) == expected


def test_recv_multipart_keeps_frames_together(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([b"1a", b"1b"])
    client.send_multipart([b"2a"])
    assert server.recv_multipart() == [b"1a", b"1b"]
    assert server.recv_multipart() == [b"2a"]


def test_send_multipart_with_a_bad_frame_sends_nothing(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    with pytest.raises(TypeError, match="frame 1 \\('text'\\) of send_multipart is not bytes-like"):
        client.send_multipart([b"first", "text"])
    client.send_multipart([b"next"])
    assert server.recv_multipart() == [b"next"]


def test_send_multipart_accepts_buffers_and_frames(socks: Sockets) -> None:
    server, client = pair(socks, timeout=5)
    client.send_multipart([bytearray(b"ba"), memoryview(b"mv"), zmq.Frame(b"fr")])
    assert server.recv_multipart() == [b"ba", b"mv", b"fr"]


def test_multipart_honours_the_call_timeout(socks: Sockets, ipc_dir: Path) -> None:
    dealer = socks(zmq.DEALER, connect=f"ipc://{ipc_dir}/nobody", timeout=0.5, immediate=True)
    with pytest.raises(SocketTimeout) as excinfo:
        dealer.send_multipart([b"a", b"b", b"c"], timeout=0.02)
    assert excinfo.value.operation == "send_multipart"
    assert excinfo.value.timeout == 0.02
    assert dealer.sndtimeo == 20


def test_composite_call_honours_the_call_timeout(socks: Sockets, ipc_dir: Path) -> None:
    dealer = socks(zmq.DEALER, connect=f"ipc://{ipc_dir}/nobody", timeout=0.5, immediate=True)
    with pytest.raises(SocketTimeout) as excinfo:
        dealer.send_json({"a": 1}, timeout=0.02)
    assert excinfo.value.operation == "send_json"
    assert excinfo.value.timeout == 0.02
    assert dealer.sndtimeo == 20  # the inner send did not re-arm the socket's own 0.5 s


@pytest.mark.parametrize(
    ("send", "recv"),
    [
        (lambda s, t: s.send_multipart([b"a", b"b", b"c"], timeout=t), lambda s, t: s.recv_multipart(timeout=t)),
        (lambda s, t: s.send_json({"a": [1, 2]}, timeout=t), lambda s, t: s.recv_json(timeout=t)),
        (lambda s, t: s.send_string("x", timeout=t), lambda s, t: s.recv_string(timeout=t)),
        (
            lambda s, t: s.send_serialized(1, lambda m: [b"1", b"2"], timeout=t),
            lambda s, t: s.recv_serialized(lambda f: f, timeout=t),
        ),
    ],
    ids=["multipart", "json", "string", "serialized"],
)
def test_composite_calls_arm_the_timeout_once(
    socks: Sockets,
    arming: Callable[..., list[tuple[int, Any]]],
    send: Callable[[TestSocket, float], Any],
    recv: Callable[[TestSocket, float], Any],
) -> None:
    server, client = pair(socks)
    armed = arming(server, client)
    send(client, 0.25)
    delivered(server)
    recv(server, 0.25)
    assert armed == [(zmq.RCVTIMEO, 250), (zmq.SNDTIMEO, 250)] * 2
    armed.clear()
    send(client, 0.25)
    delivered(server)
    recv(server, 0.25)
    assert armed == []  # unchanged timeout: nothing to set


def test_socket_is_not_left_busy_after_errors(socks: Sockets) -> None:
    server, client = pair(socks, timeout=0.5)
    with pytest.raises(SocketTimeout):
        server.recv_json(timeout=0.01)
    client.send(b"not json")
    delivered(server)
    with pytest.raises(ValueError, match="Expecting value"):
        server.recv_json(timeout=0.3)
    client.send_json([1])
    delivered(server)
    assert server.recv_json(timeout=0.04) == [1]
    assert server.rcvtimeo == 40  # the call's timeout was armed: the wrapper was not stuck in "busy"


def test_socket_timeout_pickles(socks: Sockets) -> None:
    sock = socks(zmq.PULL, bind=("", 0), name="sink", timeout=0.01)
    exc = _recv_timeout(sock)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is SocketTimeout
    assert (str(copy), copy.operation, copy.timeout, copy.errno) == (str(exc), "recv", 0.01, zmq.EAGAIN)


def test_a_req_keeps_the_reply_of_a_peer_that_has_already_exited(ctx: zmq.Context[Any]) -> None:
    """With IMMEDIATE set, a REQ dropped such a reply (0 of 30 kept): REQ mimics must not set it."""
    method = multiprocessing.get_context("forkserver")
    for _ in range(5):
        ours, theirs = method.Pipe()
        peer = method.Process(target=reply_once_and_exit, args=(theirs,))
        peer.start()
        try:
            assert ours.poll(30), "the peer did not report its endpoint"
            sock = make_sock(ctx, zmq.REQ, connect=ours.recv(), timeout=5)
            sock.send(b"anything there?")
            peer.join(30)
            assert peer.exitcode == 0
            assert sock.recv() == b"last word"
            sock.close()
        finally:
            if peer.is_alive():
                peer.kill()
            peer.join(5)
            ours.close()
            theirs.close()


# --- a REQ that gives up on a reply starts over ------------------------------------------------------------------


def test_a_req_frames_are_those_of_a_plain_req(socks: Sockets, ctx: zmq.Context[Any]) -> None:
    """No REQ_CORRELATE request id: a ROUTER peer sees [identity, b"", body], as from a plain REQ."""
    router = socks.track(ctx.socket(zmq.ROUTER))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    plain = socks.track(ctx.socket(zmq.REQ))
    plain.connect(f"tcp://127.0.0.1:{port}")
    mimic = socks(zmq.REQ, connect=("", port), timeout=5)
    for sock in (plain, mimic):
        sock.send_multipart([b"a", b"b"])
        delivered(router)
        identity, *frames = router.recv_multipart()
        assert frames == [b"", b"a", b"b"]
        router.send_multipart([identity, b"", b"ok"])
        assert sock.recv() == b"ok"


def test_a_late_reply_is_never_taken_for_the_reply_to_the_next_request(socks: Sockets, ctx: zmq.Context[Any]) -> None:
    rep = socks.track(ctx.socket(zmq.REP))
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req = socks(zmq.REQ, connect=("", port), name="client", timeout=5)
    req.send(b"first")
    delivered(rep)
    assert rep.recv() == b"first"
    with pytest.raises(SocketTimeout):
        req.recv(timeout=0.01)
    rep.send(b"late reply to first")  # to the connection the REQ left
    req.send(b"second")
    delivered(rep)
    assert rep.recv() == b"second"  # the peer sees the second request alone, without any extra frame
    rep.send(b"reply to second")
    assert req.recv() == b"reply to second"
    req.send(b"third")  # and it goes on as any REQ
    delivered(rep)
    assert rep.recv() == b"third"
    rep.send(b"reply to third")
    assert req.recv() == b"reply to third"


def test_a_req_that_started_over_is_strict_again_after_its_next_request(socks: Sockets) -> None:
    rep = socks(zmq.REP, bind=("", 0), timeout=5)
    req = socks(zmq.REQ, connect=rep.endpoint, name="client", timeout=5)
    with pytest.raises(zmq.ZMQError) as excinfo:  # noqa: PT012  (a plain REQ refuses a second request)
        req.send(b"one")
        req.send(b"two")
    assert excinfo.value.errno == zmq.EFSM
    assert rep.recv() == b"one"
    with pytest.raises(SocketTimeout):
        req.recv(timeout=0.01)
    req.send(b"three")
    with pytest.raises(zmq.ZMQError) as excinfo:
        req.send(b"four")
    assert excinfo.value.errno == zmq.EFSM
    assert "in send on REQ socket 'client'" in str(excinfo.value)


def test_a_req_that_gave_up_twice_still_starts_over(socks: Sockets) -> None:
    rep = socks(zmq.REP, bind=("", 0), timeout=5)
    req = socks(zmq.REQ, connect=rep.endpoint, timeout=5)
    req.send(b"one")
    for _ in range(2):
        with pytest.raises(SocketTimeout):
            req.recv(timeout=0.01)
    req.send(b"two")
    assert rep.recv() == b"one"
    rep.send(b"late")
    assert rep.recv() == b"two"
    rep.send(b"answer")
    assert req.recv() == b"answer"


def test_starting_over_is_in_the_transcript(socks: Sockets) -> None:
    from zmqtest.transcript import recording

    rep = socks(zmq.REP, bind=("", 0), timeout=5)
    with recording() as record:
        req = socks(zmq.REQ, connect=rep.endpoint, name="client", timeout=5)
        req.send(b"one")
        with pytest.raises(SocketTimeout):
            req.recv(timeout=0.01)
    kinds = [(kind, data) for _, who, kind, data in record.events]
    assert kinds[0] == ("send", (b"one",))
    assert kinds[1][0] == "error"
    assert kinds[2] == ("note", "started over on a new connection: a late reply to the last request is dropped")
    assert "*   started over on a new connection" in record.render()


def test_a_bound_req_cannot_start_over_and_its_next_send_says_why(socks: Sockets) -> None:
    req = socks(zmq.REQ, bind=("", 0), name="server-side", timeout=5)
    rep = socks(zmq.REP, connect=req.endpoint, timeout=5)
    req.send(b"one")
    assert rep.recv() == b"one"
    with pytest.raises(SocketTimeout):
        req.recv(timeout=0.01)
    with pytest.raises(zmq.ZMQError) as excinfo:
        req.send(b"two")
    assert excinfo.value.errno == zmq.EFSM  # as a plain REQ's
    assert "a REQ that is bound cannot start over on a new connection" in str(excinfo.value)
    rep.send(b"the late reply")  # once it comes, the REQ is a REQ like any other
    assert req.recv() == b"the late reply"
    req.send(b"two")
    assert rep.recv() == b"two"


def test_a_req_made_relaxed_and_correlated_by_the_user_keeps_libzmqs_own_behaviour(socks: Sockets) -> None:
    """The old defaults, as an opt-in: no new connection, the correlation frame drops the late reply."""
    rep = socks(zmq.REP, bind=("", 0), timeout=5)
    req = socks(zmq.REQ, connect=rep.endpoint, timeout=5, req_relaxed=1, req_correlate=1)
    req.send(b"first")
    assert rep.recv() == b"first"
    with pytest.raises(SocketTimeout):
        req.recv(timeout=0.01)
    assert req.__dict__["_pending"] is False  # it did not start over
    rep.send(b"late")
    req.send(b"second")
    req.send(b"third")  # relaxed: a second request before the reply, as the user asked
    assert rep.recv() == b"second"
    rep.send(b"to second")
    assert rep.recv() == b"third"
    rep.send(b"to third")
    assert req.recv() == b"to third"  # libzmq's correlation dropped the replies to the earlier requests


def test_a_sub_that_never_subscribed_says_so(socks: Sockets) -> None:
    """Issue 10: the hint pointed at the publisher; a SUB with no subscription receives nothing at all."""
    sub = socks(zmq.SUB, bind=("", 0), name="deaf", timeout=0.01)
    with pytest.raises(SocketTimeout, match=r"this SUB has not subscribed to any topic, so it receives nothing"):
        sub.recv()
    sub.subscribe(b"news")
    with pytest.raises(SocketTimeout, match=r"has its subscription reached the publisher yet"):
        sub.recv()
