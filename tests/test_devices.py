"""Mimics through pyzmq's QUEUE device (``zmq.devices``), a program zmqtest did not write.

A worker behind a QUEUE device gets each request in the envelope its client's REQ made:
``[client identity, b"", *frames]``. A REQ mimic must make exactly that envelope (no
request-id frame), and one whose receive gave up must never take the late reply for
the answer to its next request.
"""

from __future__ import annotations

from typing import Any

import pytest
import zmq
from apps.queue_device import Queue

from zmqtest import Conversation, ProcessTest, SocketTimeout


class TestThroughAQueueDevice(ProcessTest):
    @pytest.fixture
    def sockets(self, zmq_process_factory: Any, zmq_socket_factory: Any, zmq_endpoint_factory: Any) -> Any:
        front, back = zmq_endpoint_factory.tcp(), zmq_endpoint_factory.tcp()
        worker = zmq_socket_factory(zmq.DEALER, connect=back, name="worker")
        client = zmq_socket_factory(zmq.REQ, connect=front, name="client")
        zmq_process_factory(Queue(front, back), ready=worker)
        return client, worker

    def test_the_worker_gets_the_envelope_of_a_plain_req(self, sockets: Any) -> Conversation:
        client, worker = sockets
        yield ("send", client, [], ["hello"])
        identity, empty, body = yield ("recv", worker)
        assert (empty, body) == (b"", ["hello"])
        yield ("send", worker, [identity, b""], ["hi"])
        assert (yield ("recv", client)) == [["hi"]]

    def test_a_client_that_gave_up_gets_the_answer_to_its_next_request(self, sockets: Any) -> Conversation:
        client, worker = sockets
        yield ("send", client, [], ["first"])
        first = yield ("recv", worker)
        client.timeout = 0.1
        with pytest.raises(SocketTimeout):
            yield ("recv", client)  # the worker has not answered yet
        client.timeout = None
        yield ("send", worker, [first[0], b""], ["late answer to first"])
        yield ("send", client, [], ["second"])
        second = yield ("recv", worker)
        assert second[1:] == [b"", ["second"]]
        assert second[0] != first[0]  # a new connection: the client started over, as a real one would
        yield ("send", worker, [second[0], b""], ["answer to second"])
        assert (yield ("recv", client)) == [["answer to second"]]
