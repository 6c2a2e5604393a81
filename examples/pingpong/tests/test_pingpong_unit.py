"""Unit tests: the protocol, the serve loop and the client, with no process and no real socket.

The serve loop takes its socket and poller as arguments, so a Mock plays both; the
message rules live in the pure ``handle()``, so they need no socket at all.
"""

from __future__ import annotations

import json
import os
import select
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import zmq
from pingpong.__main__ import build_parser
from pingpong.ping import PingTimeout, format_exchange, ping, send_kill
from pingpong.pong import (
    KILL,
    PongProc,
    _ipc_socket_file,
    _remove_socket_file,
    encode,
    handle,
    serve_loop,
    signal_wakeup,
)

KNOWN = "(known: ping, plzdiekthxbye)"


# --- handle(): the protocol ------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reply"),
    [
        (b'["ping",1]', ["pong", 1]),
        (b'[ "ping" , -7 ]', ["pong", -7]),
        (b'["ping",0]', ["pong", 0]),
        (b'["ping",123456789012345678901234567890]', ["pong", 123456789012345678901234567890]),
    ],
)
def test_ping_gets_pong(frame: bytes, reply: list[Any]) -> None:
    assert handle(frame) == reply


@pytest.mark.parametrize("argument", [None, 0, "now", {"please": True}])
def test_kill_message_means_stop_without_reply(argument: Any) -> None:
    assert handle(encode([KILL, argument])) is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b'["pingg",1]', f"unknown command 'pingg' {KNOWN}"),
        (b'["PING",1]', f"unknown command 'PING' {KNOWN}"),
        (b'["ping"]', 'bad request: expected [command, argument], got ["ping"]'),
        (b'["ping",1,2]', 'bad request: expected [command, argument], got ["ping",1,2]'),
        (b'{"ping":1}', 'bad request: expected [command, argument], got {"ping":1}'),
        (b"[1,2]", "bad request: expected [command, argument], got [1,2]"),
        (b'"ping"', 'bad request: expected [command, argument], got "ping"'),
        (b'["ping","1"]', 'bad request: ping takes an integer, got "1"'),
        (b'["ping",true]', "bad request: ping takes an integer, got true"),
        (b'["ping",1.5]', "bad request: ping takes an integer, got 1.5"),
        (b'["ping",null]', "bad request: ping takes an integer, got null"),
    ],
)
def test_wrong_requests_get_an_error_naming_the_problem(frame: bytes, message: str) -> None:
    assert handle(frame) == ["error", message]


@pytest.mark.parametrize("frame", [b"not json", b"", b'["ping",1', b"\xff\xfe\xfa"])
def test_a_frame_that_is_not_json_gets_bad_request(frame: bytes) -> None:
    reply = handle(frame)
    assert reply is not None
    assert reply[0] == "error"
    assert reply[1].startswith("bad request: not JSON (")


def test_error_messages_quote_at_most_60_characters_of_the_request() -> None:
    reply = handle(encode(["ping", *range(100)]))
    assert reply is not None
    assert reply[1].startswith("bad request: expected [command, argument], got [")
    quoted = reply[1].split("got ", 1)[1]
    assert len(quoted) == 60
    assert quoted.endswith("...")


def test_encode_is_compact_utf8_json() -> None:
    assert encode(["pong", 1]) == b'["pong",1]'
    assert encode(["error", "café"]) == '["error","café"]'.encode()
    assert json.loads(encode([KILL, None])) == [KILL, None]


# --- serve_loop(): driven with a Mock socket and a Mock poller --------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A non-blocking pipe standing in for the signal wake-up pipe."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


def mock_socket(*requests: list[bytes] | BaseException) -> mock.Mock:
    sock = mock.Mock(spec=zmq.Socket)
    sock.recv_multipart.side_effect = list(requests)
    return sock


def mock_poller(*rounds: list[tuple[Any, Any]]) -> mock.Mock:
    poller = mock.Mock(spec=zmq.Poller)
    poller.poll.side_effect = list(rounds)
    return poller


def sent_replies(sock: mock.Mock) -> list[Any]:
    for call in sock.send.call_args_list:
        assert len(call.args) == 1, "a reply is one frame"
    return [json.loads(call.args[0]) for call in sock.send.call_args_list]


def test_loop_answers_every_request_until_the_kill_message(pipe: tuple[int, int]) -> None:
    sock = mock_socket(
        [b'["ping",1]'], [b"not json"], [b'["ping",1]', b"extra"], [b'["ping",2]'], [encode([KILL, None])]
    )
    poller = mock_poller(*[[(sock, zmq.POLLIN)]] * 5)

    assert serve_loop(sock, poller, pipe[0]) == "kill message"

    replies = sent_replies(sock)
    assert replies[0] == ["pong", 1]
    assert replies[1][0] == "error"
    assert replies[1][1].startswith("bad request: not JSON")
    assert replies[2] == ["error", "bad request: expected 1 frame, got 2"]
    assert replies[3] == ["pong", 2]
    assert len(replies) == 4, "no reply to the kill message"
    sock.recv_multipart.assert_called_with(zmq.NOBLOCK)
    poller.poll.assert_called_with()  # no timeout: the loop sleeps until something happens


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_loop_stops_on_a_stop_signal_in_the_pipe(pipe: tuple[int, int], signum: signal.Signals) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, bytes([signum]))
    sock = mock_socket()
    poller = mock_poller([(read_fd, zmq.POLLIN), (sock, zmq.POLLIN)])  # a request came in too: the signal wins

    assert serve_loop(sock, poller, read_fd) == signum.name

    sock.recv_multipart.assert_not_called()
    sock.send.assert_not_called()


def test_loop_drains_other_signals_and_keeps_serving(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, bytes([signal.SIGUSR1, signal.SIGCHLD]))
    sock = mock_socket([b'["ping",3]'], [encode([KILL, None])])
    poller = mock_poller([(read_fd, zmq.POLLIN)], [(sock, zmq.POLLIN)], [(sock, zmq.POLLIN)])

    assert serve_loop(sock, poller, read_fd) == "kill message"

    assert sent_replies(sock) == [["pong", 3]]
    with pytest.raises(BlockingIOError):
        os.read(read_fd, 1)  # drained


def test_loop_stops_when_the_parent_is_gone(pipe: tuple[int, int]) -> None:
    sock = mock_socket()
    sentinel_fd = 99
    poller = mock_poller([(sentinel_fd, zmq.POLLIN)])

    assert serve_loop(sock, poller, pipe[0], watch_fd=sentinel_fd) == "parent exited"

    sock.recv_multipart.assert_not_called()


def test_loop_survives_a_spurious_wake_up(pipe: tuple[int, int]) -> None:
    sock = mock_socket(zmq.Again(), [b'["ping",4]'], [encode([KILL, None])])
    poller = mock_poller(*[[(sock, zmq.POLLIN)]] * 3)

    assert serve_loop(sock, poller, pipe[0]) == "kill message"

    assert sent_replies(sock) == [["pong", 4]]


# --- signal_wakeup(): a real signal, routed to the pipe ----------------------------------


def test_signal_wakeup_routes_the_signal_to_the_pipe_and_restores_everything() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with signal_wakeup([signal.SIGUSR1]) as read_fd:
        signal.raise_signal(signal.SIGUSR1)  # the no-op handler: no exception, no exit
        readable, _, _ = select.select([read_fd], [], [], 5.0)
        assert readable == [read_fd]
        assert os.read(read_fd, 16) == bytes([signal.SIGUSR1])
    assert signal.getsignal(signal.SIGUSR1) is before
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_fd)


# --- the ipc socket file, which libzmq leaves behind ------------------------------------


def test_the_ipc_socket_file_is_removed_unless_another_server_took_the_path() -> None:
    with tempfile.TemporaryDirectory(prefix="pp-") as tmpdir:
        check_socket_file_removal(Path(tmpdir))


def check_socket_file_removal(tmp_path: Path) -> None:
    path = tmp_path / "pong"
    path.write_bytes(b"")
    ours = _ipc_socket_file(f"ipc://{path}")
    assert ours is not None
    assert ours[0] == str(path)

    path.rename(tmp_path / "ours")  # another server binds the same path: a new file there
    path.write_bytes(b"")
    _remove_socket_file(*ours)
    assert path.exists(), "removed another server's socket file"

    theirs = _ipc_socket_file(f"ipc://{path}")
    assert theirs is not None
    _remove_socket_file(*theirs)
    assert not path.exists()
    _remove_socket_file(*theirs)  # already gone: nothing to do


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:555", "ipc://@abstract", "ipc:///no/such/file"])
def test_only_ipc_endpoints_with_a_file_have_one_to_remove(endpoint: str) -> None:
    assert _ipc_socket_file(endpoint) is None


# --- the client, with a Mock context -------------------------------------------------------


def mock_context(*replies: bytes | BaseException) -> tuple[mock.Mock, mock.Mock]:
    sock = mock.Mock(spec=zmq.Socket)
    sock.recv.side_effect = list(replies)
    context = mock.Mock(spec=zmq.Context)
    context.socket.return_value = sock
    return context, sock


def test_ping_sends_numbered_pings_with_bounded_waits() -> None:
    context, sock = mock_context(b'["pong",1]', b'["pong",2]')

    result = ping("tcp://127.0.0.1:555", 2, 0.25, context=context)

    assert result == [(["ping", 1], ["pong", 1]), (["ping", 2], ["pong", 2])]
    context.socket.assert_called_once_with(zmq.REQ)
    assert sock.send.call_args_list == [mock.call(b'["ping",1]'), mock.call(b'["ping",2]')]
    sock.setsockopt.assert_has_calls(
        [mock.call(zmq.LINGER, 0), mock.call(zmq.SNDTIMEO, 250), mock.call(zmq.RCVTIMEO, 250)], any_order=True
    )
    sock.connect.assert_called_once_with("tcp://127.0.0.1:555")
    sock.close.assert_called_once_with(linger=0)
    context.term.assert_not_called()  # the caller's context stays the caller's


def test_ping_timeout_names_the_endpoint_and_the_request_and_closes_the_socket() -> None:
    context, sock = mock_context(b'["pong",1]', zmq.Again())

    with pytest.raises(PingTimeout, match=r'no reply from ipc:///x/pong to \["ping",2\] within 0.5 s'):
        ping("ipc:///x/pong", 3, 0.5, context=context)

    sock.close.assert_called_once_with(linger=0)


def test_ping_with_its_own_context_terminates_it() -> None:
    context, _ = mock_context(b'["pong",1]')
    with mock.patch("pingpong.ping.zmq.Context", return_value=context):
        ping("tcp://127.0.0.1:555")
    context.term.assert_called_once_with()


def test_send_kill_lingers_so_the_message_is_not_dropped() -> None:
    context, sock = mock_context()

    send_kill("tcp://127.0.0.1:555", 2.0, context=context)

    sock.send.assert_called_once_with(b'["plzdiekthxbye",null]')
    sock.recv.assert_not_called()
    sock.setsockopt.assert_any_call(zmq.LINGER, 2000)
    sock.close.assert_called_once_with(linger=2000)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_a_wait_must_be_bounded_and_positive(timeout: float) -> None:
    context, _ = mock_context()
    with pytest.raises(ValueError, match="timeout must be more than 0 seconds"):
        ping("tcp://127.0.0.1:555", 1, timeout, context=context)
    context.socket.assert_not_called()


@pytest.mark.parametrize(
    ("request_body", "reply", "line"),
    [
        (["ping", 1], ["pong", 1], "ping 1 -> pong 1"),
        (["ping", 2], ["error", "unknown command 'x'"], "ping 2 -> error unknown command 'x'"),
        ([KILL, None], None, "plzdiekthxbye null -> null"),
    ],
    ids=["pong", "error", "no-reply"],
)
def test_format_exchange(request_body: list[Any], reply: Any, line: str) -> None:
    assert format_exchange(request_body, reply) == line


# --- the rest ------------------------------------------------------------------------------


def test_stop_on_a_process_never_started_does_nothing() -> None:
    assert PongProc("ipc:///nowhere").stop(timeout=0.1) is None


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["ping", "--connect", "tcp://127.0.0.1:1", "--count", "0"], "expected a whole number of 1 or more, got '0'"),
        (["demo", "--timeout", "inf"], "expected a number of seconds more than 0, got 'inf'"),
        (["ping", "--count", "2"], "the following arguments are required: --connect"),
    ],
    ids=["count-0", "timeout-inf", "no-connect"],
)
def test_command_line_rejects_bad_arguments(argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert problem in capsys.readouterr().err


def test_command_line_defaults() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.count, args.timeout) == (3, 5.0)
    assert build_parser().parse_args(["serve"]).bind == "tcp://127.0.0.1:*"
