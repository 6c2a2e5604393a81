"""The tap in a process of its own: the fault tests of test_faults.py again, through a ProcessTap, and what differs.

The fault tests are imported from test_faults.py and collected here too, where ``zmq_tap``
makes process taps (the one whose ``matching=`` function runs in the test's process is left
out: a process tap refuses it, as a test here checks).
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import Any

import psutil
import pytest
import zmq

import zmqtest.transcript
from tests.test_faults import (  # collected here again, through a process tap
    pipeline,
    test_a_delay_holds_every_chunk_back_and_keeps_the_order,
    test_a_fault_to_one_side_leaves_the_other_direction_alone,
    test_a_fault_with_bad_arguments_says_which,
    test_a_heartbeating_peer_expires_during_a_partition_and_comes_back_when_it_heals,
    test_a_lazy_pirate_client_recovers_from_a_dropped_reply,
    test_cut_as_a_block_keeps_the_peers_apart_until_it_ends,
    test_cut_disconnects_and_the_peer_reconnects_through_the_tap,
    test_drop_a_ratio_of_messages_with_a_seed,
    test_drop_next_drops_exactly_that_many_whole_messages,
    test_duplicate_sends_whole_messages_twice,
    test_hold_is_a_partition_that_heals_in_order,
    test_slow_delivers_everything_at_about_the_rate,
)
from tests.test_tap import wires
from zmqtest.contexts import SocketFactory
from zmqtest.endpoints import Endpoint
from zmqtest.tap import Tap, TapFactory
from zmqtest.tapprocess import BATCH, ProcessTap
from zmqtest.transcript import Transcript

__all__ = [
    "pipeline",
    "test_a_delay_holds_every_chunk_back_and_keeps_the_order",
    "test_a_fault_to_one_side_leaves_the_other_direction_alone",
    "test_a_fault_with_bad_arguments_says_which",
    "test_a_heartbeating_peer_expires_during_a_partition_and_comes_back_when_it_heals",
    "test_a_lazy_pirate_client_recovers_from_a_dropped_reply",
    "test_cut_as_a_block_keeps_the_peers_apart_until_it_ends",
    "test_cut_disconnects_and_the_peer_reconnects_through_the_tap",
    "test_drop_a_ratio_of_messages_with_a_seed",
    "test_drop_next_drops_exactly_that_many_whole_messages",
    "test_duplicate_sends_whole_messages_twice",
    "test_hold_is_a_partition_that_heals_in_order",
    "test_slow_delivers_everything_at_about_the_rate",
]


@pytest.fixture
def zmq_tap(zmq_tap: TapFactory) -> Any:
    """The plugin's tap factory, making taps in processes of their own."""
    return functools.partial(zmq_tap, process=True)


def converse(tap: Tap | ProcessTap, rep: zmq.Socket[Any], context: zmq.Context[Any]) -> None:
    """A REQ through ``tap`` to ``rep``: three requests and replies, one of them of several frames."""
    with context.socket(zmq.REQ) as req:
        req.linger, req.rcvtimeo, rep.rcvtimeo = 0, 10_000, 10_000
        req.connect(str(tap.endpoint))
        for frames in ([b"one"], [b"two", b"parts"], [b"x" * 70_000]):
            req.send_multipart(frames)
            rep.send_multipart(rep.recv_multipart())
            assert req.recv_multipart() == frames
        assert tap.messages == {"server": 3, "client": 3}
        assert tap.connections == 1


def test_the_same_conversation_reads_the_same_through_a_process_tap(
    zmq_context: zmq.Context[Any], zmq_endpoint: Endpoint
) -> None:
    seen = []
    for kind in (Tap, ProcessTap):
        with zmq_context.socket(zmq.REP) as rep:
            rep.linger = 0
            port = rep.bind_to_random_port("tcp://127.0.0.1")
            transcript = Transcript()
            tap = kind(f"tcp://127.0.0.1:{port}", transcript=transcript)
            try:
                converse(tap, rep, zmq_context)
                got = wires(transcript)  # before close: asking for the counts brought every record back
            finally:
                tap.close()
            seen.append([(source, target, str(what).replace(str(tap.endpoint), "TAP")) for source, target, what in got])
    for sender in ("client", "server"):  # each way in order (which greeting the tap read first varies)
        assert [row for row in seen[0] if row[0] == sender] == [row for row in seen[1] if row[0] == sender]
    assert ("client", "server", "(b'', b'two', b'parts')") in seen[1]


def test_a_process_tap_refuses_a_matching_function_and_says_why(zmq_endpoint: Endpoint, zmq_tap: Any) -> None:
    tap = zmq_tap(zmq_endpoint)
    with (
        pytest.raises(ValueError, match="a tap in a process of its own cannot call a function of the test's process"),
        tap.drop(matching=lambda frames: True),
    ):
        pass


def test_a_bad_upstream_is_refused_before_a_process_starts() -> None:
    children = set(psutil.Process().children())
    with pytest.raises(ValueError, match="a tap forwards to a tcp endpoint with a host and a port, not 'ipc:///x'"):
        ProcessTap("ipc:///x")
    assert set(psutil.Process().children()) <= children
    assert not [thread for thread in threading.enumerate() if thread.name == "zmqtest process tap"]


def test_close_leaves_no_process_no_thread_and_no_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(10)
        threads = threading.active_count()
        with ProcessTap(f"tcp://127.0.0.1:{upstream.getsockname()[1]}") as tap:
            assert tap.endpoint.port is not None
            with socket.create_connection(("127.0.0.1", tap.endpoint.port), timeout=10) as client:
                server, _ = upstream.accept()
                with server:
                    client.sendall(b"x")
                    assert server.recv(1) == b"x"
        assert tap._process.returncode == 0
        assert threading.active_count() == threads
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", tap.endpoint.port)):
            pass
        with pytest.raises(RuntimeError, match="is closed: its faults and cuts ended with it"):
            tap.cut()


def test_the_child_ends_when_the_tests_process_lets_go_of_it(zmq_endpoint: Endpoint) -> None:
    tap = ProcessTap(str(zmq_endpoint))
    tap._socket.shutdown(socket.SHUT_RDWR)  # as when the test's process dies: the child reads the channel's end
    assert tap._process.wait(10) == 0
    tap._end()


def test_records_come_back_in_batches_in_order(
    zmq_socket_factory: SocketFactory, zmq_endpoint: Endpoint, zmq_tap: Any
) -> None:
    pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, name="pull")
    tap = zmq_tap(zmq_endpoint, client="push", server="pull")
    push = zmq_socket_factory(zmq.PUSH, connect=tap.endpoint, name="push")
    count = 3 * BATCH + 7
    for number in range(count):
        push.send(b"%d" % number)
    assert [pull.recv() for _ in range(count)] == [b"%d" % number for number in range(count)]
    assert tap.messages == {"pull": count}  # asking brought back every record the tap had made
    seen = [what for source, _, what in wires(zmqtest.transcript.current()) if isinstance(what, tuple)]
    assert seen == [(b"%d" % number,) for number in range(count)]
