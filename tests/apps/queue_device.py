"""pyzmq's own QUEUE device (``zmq.devices``) as a process under test: a program zmqtest did not write."""

from __future__ import annotations

import multiprocessing

import zmq.devices


class Queue(multiprocessing.Process):
    """A ROUTER frontend for clients, a DEALER backend for workers, and pyzmq's device in between."""

    def __init__(self, front: str, back: str) -> None:
        super().__init__(name="queue")
        self.front, self.back = front, back

    def run(self) -> None:
        device = zmq.devices.Device(zmq.QUEUE, zmq.ROUTER, zmq.DEALER)
        device.bind_in(self.front)
        device.bind_out(self.back)
        device.run()
