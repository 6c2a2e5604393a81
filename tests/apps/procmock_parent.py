"""A process under test that starts a worker process: the situation ProcMock is for.

:class:`ParentProc` binds a REP socket to a random port, starts ``WorkerProc(port)``
and answers ``["ping", n]`` with ``["pong", n, worker.is_alive(), type(worker).__name__]``
until it gets ``"stop"``, on which it exits with code 0. Everything is at module level so that spawn and forkserver
children can import it; there is one concrete class per start method because a
``multiprocessing.Process`` subclass otherwise starts with the interpreter's default.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import unittest.mock
from multiprocessing.context import ForkProcess, ForkServerProcess, SpawnProcess
from multiprocessing.process import BaseProcess
from typing import Any

import zmq

IDLE_LIMIT_MS = 30_000
"""A parent that nobody talks to for this long exits with code 3 instead of living on."""
NO_CONSTRUCTION_EXIT = 4
"""Exit code of a parent told not to construct its worker."""
ABRUPT_EXIT = 5
"""Exit code of a parent that ends with ``os._exit`` right after the construction."""


class WorkerProc(ForkProcess):
    """The real worker, which the tests replace: if it ever runs, the mock did not reach the parent."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        super().__init__(name="WorkerProc", daemon=True)
        self.port = port

    def run(self) -> None:
        sys.exit(9)


class ParentProc(BaseProcess):
    """The process under test; ``worker_class=None`` uses the module's ``WorkerProc`` (what mock.patch replaces).

    ``patches`` ({"module.Name": obj}) are applied in the child before the work starts, the way
    ``ProcessManager.start(..., patches=...)`` does. ``mode`` changes what it does:
    ``"serve"`` (construct, start, answer pings), ``"once"`` (construct, start, join and
    exit 0), ``"unpicklable"`` (construct with an unpicklable keyword argument),
    ``"abrupt"`` (construct, then ``os._exit`` with :data:`ABRUPT_EXIT`),
    ``"no-worker"`` (exit with :data:`NO_CONSTRUCTION_EXIT` before constructing).
    """

    def __init__(self, worker_class: Any = None, *, mode: str = "serve", patches: dict[str, Any] | None = None) -> None:
        super().__init__(name="ParentProc")
        self.worker_class = worker_class
        self.mode = mode
        self.patches = patches or {}

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            for target, replacement in self.patches.items():
                stack.enter_context(unittest.mock.patch(target, replacement))
            self._work()

    def _work(self) -> None:
        if self.mode == "no-worker":
            sys.exit(NO_CONSTRUCTION_EXIT)
        worker_class = self.worker_class if self.worker_class is not None else WorkerProc
        if self.mode == "once":
            worker = worker_class(1234, role="once")
            worker.start()
            worker.join()
            return
        if self.mode == "abrupt":
            worker_class(1234, role="abrupt")
            os._exit(ABRUPT_EXIT)  # no cleanup at all: what a SIGKILL right after the construction looks like
        context: zmq.Context[Any] = zmq.Context()
        sock = context.socket(zmq.REP)
        sock.linger = 0
        try:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            extra = {"lock": threading.Lock()} if self.mode == "unpicklable" else {}
            worker = worker_class(port, **extra)
            worker.daemon = True
            worker.start()
            self._serve(sock, worker)
            worker.join(timeout=1)
        finally:
            sock.close()
            context.term()

    def _serve(self, sock: zmq.Socket[Any], worker: Any) -> None:
        while sock.poll(IDLE_LIMIT_MS):
            request = sock.recv_json()
            if request == "stop":  # no reply: one sent right before closing could be lost on the test's side
                return
            assert isinstance(request, list)
            sock.send_json(["pong", request[1], worker.is_alive(), type(worker).__name__])
        sys.exit(3)


class ForkParentProc(ParentProc, ForkProcess):
    """ParentProc, started with fork."""


class ForkServerParentProc(ParentProc, ForkServerProcess):
    """ParentProc, started with forkserver."""


class SpawnParentProc(ParentProc, SpawnProcess):
    """ParentProc, started with spawn."""


PARENTS: dict[str, type[ParentProc]] = {
    "fork": ForkParentProc,
    "forkserver": ForkServerParentProc,
    "spawn": SpawnParentProc,
}
