"""ProcMock with real processes under fork, forkserver and spawn, and on its own.

The process under test (tests/apps/procmock_parent.py) binds a REP socket to a random
port and starts ``worker_class(port)``; the test hands it a ProcMock, learns the port
from the mock and talks to the process on it, which proves the port is the real one.
Fork tests create no zmq socket (so no zmq thread) before the fork: Python 3.12+ warns
when a multi-threaded process forks. Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
import unittest.mock
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import Mock, call

import pytest
import zmq
from apps import procmock_parent
from apps.procmock_parent import PARENTS, ForkParentProc, ParentProc

from zmqtest import settings
from zmqtest.errors import ProcessExited, ZmqTestError
from zmqtest.procmock import ProcCall, ProcMock, ProcMockError, ProcMockTimeout, UnpicklableArgument
from zmqtest.waiting import watching

if TYPE_CHECKING:
    from conftest import Sockets

METHODS = ["fork", "forkserver", "spawn"]
STOP_DEADLINE = 10.0
"""Seconds a child may take to end at teardown (it takes milliseconds)."""
WORKER = "apps.procmock_parent.WorkerProc"


@pytest.fixture
def make_mock() -> Iterator[Callable[..., ProcMock]]:
    """``make_mock(**options)``: a ProcMock whose queue is closed at teardown."""
    made: list[ProcMock] = []

    def make(**options: Any) -> ProcMock:
        made.append(ProcMock(**options))
        return made[-1]

    yield make
    for mock in made:
        mock.close_queue()


@contextlib.contextmanager
def running(proc: BaseProcess) -> Iterator[BaseProcess]:
    """Start ``proc``; at the end make sure it has ended (terminate, then kill) and release its sentinel."""
    proc.start()
    try:
        yield proc
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(STOP_DEADLINE)
        if proc.is_alive():
            proc.kill()
            proc.join(STOP_DEADLINE)
        with contextlib.suppress(ValueError):  # still running after SIGKILL + deadline: leave it to the OS
            proc.close()


def converse(socks: Sockets, port: int, *, alive: bool = False) -> None:
    """Ping the parent on ``port`` (proving it is the port it bound), then stop it."""
    sock = socks(zmq.REQ, connect=("127.0.0.1", port), timeout=STOP_DEADLINE, name="client")
    sock.send_json(["ping", 1])
    assert sock.recv_json() == ["pong", 1, alive, "ProcMock"]
    sock.send_json("stop")


def ended(proc: BaseProcess) -> int | None:
    proc.join(STOP_DEADLINE)
    return proc.exitcode


class Watch:
    """What zmqtest's waits need to know of a process (zmqtest.waiting.Watched), for a plain Process."""

    def __init__(self, proc: BaseProcess) -> None:
        self.proc = proc

    @property
    def sentinel(self) -> int:
        return self.proc.sentinel

    def describe(self) -> str:
        return f"{self.proc.name} (pid {self.proc.pid})"

    def exit_error(self, waiting_for: str) -> ZmqTestError:
        return ProcessExited(f"{self.describe()} exited with code {ended(self.proc)} while waiting for {waiting_for}")


def open_fds() -> int:
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # not in the test extras: Linux's view is just as good
        return len(os.listdir("/proc/self/fd"))
    return int(psutil.Process().num_fds())


# -- through real processes -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_handed_over_mock_reports_the_port_the_parent_bound(
    method: str, make_mock: Callable[..., ProcMock], socks: Sockets
) -> None:
    worker_class = make_mock(name="worker", start_method=method, spec_set=procmock_parent.WorkerProc)
    with running(PARENTS[method](worker_class)) as proc:
        found = worker_class.wait_for_call()
        port = found.args[0]
        assert found == call(port)
        assert isinstance(port, int)
        converse(socks, port)
        assert ended(proc) == 0
    assert worker_class.call_count == 0  # the construction happened in the child: only the queue saw it


@pytest.mark.parametrize("method", METHODS)
def test_mock_travels_in_the_patches_of_the_process(
    method: str, make_mock: Callable[..., ProcMock], socks: Sockets
) -> None:
    """The ``ProcessManager.start(..., patches=...)`` route: patch applied in the child, mock pickled with it."""
    worker_class = make_mock(start_method=method, alive=True)
    with running(PARENTS[method](patches={WORKER: worker_class})) as proc:
        converse(socks, worker_class.wait_for_call().args[0], alive=True)
        assert ended(proc) == 0


@pytest.mark.parametrize("method", METHODS)
def test_mock_reaches_a_managed_process_through_patches(
    method: str, make_mock: Callable[..., ProcMock], socks: Sockets, tmp_path: Path
) -> None:
    """What users write: ``ProcessManager.start(..., patches=...)``; the wait is raced against the process's death."""
    from zmqtest.processes import ProcessManager

    worker_class = make_mock(name="worker", start_method=method)
    with ProcessManager(tmp_path) as manager:
        handle = manager.start(PARENTS[method](), start_method=method, patches={WORKER: worker_class}, expect_exit=0)
        converse(socks, worker_class.wait_for_call().args[0])
        assert handle.wait(STOP_DEADLINE) == 0


def test_patch_in_the_test_reaches_a_fork_child(make_mock: Callable[..., ProcMock], socks: Sockets) -> None:
    worker_class = make_mock(start_method="fork")
    with contextlib.ExitStack() as stack:
        with unittest.mock.patch(WORKER, worker_class):
            proc = stack.enter_context(running(ForkParentProc()))  # no worker_class: it uses the module's WorkerProc
        assert procmock_parent.WorkerProc is not worker_class  # the test dropped the patch; the forked child keeps it
        converse(socks, worker_class.wait_for_call().args[0])
        assert ended(proc) == 0


def test_a_mock_made_for_forkserver_also_serves_fork_children(
    make_mock: Callable[..., ProcMock], socks: Sockets
) -> None:
    worker_class = make_mock(start_method="forkserver")
    with running(ForkParentProc(worker_class)) as proc:
        converse(socks, worker_class.wait_for_call().args[0])
        assert ended(proc) == 0


@pytest.mark.parametrize("method", METHODS)
def test_unpicklable_argument_in_the_child_fails_the_wait_with_its_name(
    method: str, make_mock: Callable[..., ProcMock]
) -> None:
    worker_class = make_mock(name="worker", start_method=method)
    with running(PARENTS[method](worker_class, mode="unpicklable")) as proc:
        with pytest.raises(UnpicklableArgument, match=r"ProcMock 'worker' was called with keyword argument 'lock'"):
            worker_class.wait_for_call()
        assert ended(proc) == 1  # the construction raised in the child too


@pytest.mark.parametrize("method", METHODS)
def test_construction_just_before_exit_is_not_lost(method: str, make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(start_method=method)
    with running(PARENTS[method](worker_class, mode="once")) as proc:
        assert ended(proc) == 0
        with watching(Watch(proc)):  # dead and watched: the call it sent still comes first
            assert worker_class.wait_for_call() == call(1234, role="once")
            with pytest.raises(ProcessExited, match=r"exited with code 0 while waiting for a call"):
                worker_class.wait_for_call()


@pytest.mark.parametrize("method", METHODS)
def test_construction_survives_an_abrupt_exit(method: str, make_mock: Callable[..., ProcMock]) -> None:
    """The call is in the pipe when the construction returns: no feeder thread has to flush it at exit."""
    worker_class = make_mock(start_method=method)
    with running(PARENTS[method](worker_class, mode="abrupt")) as proc:
        assert ended(proc) == procmock_parent.ABRUPT_EXIT
        assert worker_class.wait_for_call() == call(1234, role="abrupt")


def test_wait_ends_at_once_when_the_process_under_test_dies(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker", timeout=60)
    with running(PARENTS["forkserver"](worker_class, mode="no-worker")) as proc, watching(Watch(proc)):
        pid = proc.pid
        with pytest.raises(ProcessExited) as failure:
            worker_class.wait_for_call()
    assert str(failure.value) == (
        f"ParentProc (pid {pid}) exited with code {procmock_parent.NO_CONSTRUCTION_EXIT} "
        "while waiting for a call (construction) of ProcMock 'worker'"
    )


def test_fork_mock_sent_to_a_spawn_child_says_which_start_method_to_use(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker", start_method="fork")
    proc = PARENTS["spawn"](worker_class)
    with pytest.raises(ProcMockError, match=r"made for start method 'fork'.*ProcMock\(start_method='spawn'\)"):
        proc.start()
    assert proc.exitcode is None  # never started


@pytest.mark.parametrize("method", METHODS)
def test_close_leaves_no_thread_or_fd(method: str) -> None:
    def cycle() -> None:
        with ProcMock(start_method=method) as worker_class:
            with running(PARENTS[method](worker_class, mode="once")) as proc:
                assert worker_class.wait_for_call() == call(1234, role="once")
                assert ended(proc) == 0
            worker_class(1)  # a construction in this process too (after the fork, as Python 3.12+ wants)
            assert worker_class.wait_for_call() == call(1)

    cycle()  # first use starts the forkserver and resource tracker, which stay for the session
    fds = open_fds()
    cycle()
    assert open_fds() == fds
    assert [thread.name for thread in threading.enumerate() if "Feeder" in thread.name] == []


# -- in this process ------------------------------------------------------------------


def test_it_is_the_class_and_its_instances(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker")
    worker = worker_class(5555, role="w")
    assert worker is worker_class
    assert worker.start() is None
    assert worker.join(timeout=1) is None
    assert worker.terminate() is None
    assert worker.kill() is None
    assert worker.close() is None  # the process API's close(), not the queue's
    assert not worker_class.closed
    assert worker.is_alive() is False
    assert (worker.exitcode, worker.pid, worker.daemon, worker.name) == (0, None, False, "worker")
    worker.daemon = True
    worker.name = "w-1"
    assert (worker.daemon, worker.name) == (True, "w-1")
    assert worker_class.mock_calls == [
        call(5555, role="w"),
        call.start(),
        call.join(timeout=1),
        call.terminate(),
        call.kill(),
        call.close(),
        call.is_alive(),
    ]
    assert worker_class.wait_for_call(timeout=0) == call(5555, role="w")


def test_fake_process_state_is_configurable(make_mock: Callable[..., ProcMock]) -> None:
    worker = make_mock(alive=True, pid=4242)
    assert (worker.is_alive(), worker.exitcode, worker.pid) == (True, None, 4242)
    assert make_mock(exitcode=3).exitcode == 3


def test_attributes_are_plain_mocks_without_a_queue(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock()
    for child in (worker_class.anything, worker_class.start, worker_class.anything()):
        assert isinstance(child, Mock)
        assert not isinstance(child, ProcMock)


def test_calls_arrive_in_order_each_returned_once(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock()
    assert worker_class.calls_so_far() == []
    worker_class(1)
    worker_class(2, name="b")
    assert worker_class.wait_for_call() == call(1)
    assert worker_class.calls_so_far() == [call(1), call(2, name="b")]
    found = worker_class.wait_for_call()
    args, kwargs = found
    assert (found.args, found.kwargs, args, kwargs) == ((2,), {"name": "b"}, (2,), {"name": "b"})


def test_queue_items_are_args_kwargs_pairs(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock()
    worker_class(7, x=1)
    args, kwargs = worker_class.queue.get(timeout=STOP_DEADLINE)
    assert (args, kwargs) == ((7,), {"x": 1})
    assert worker_class.queue.empty() or isinstance(worker_class.queue.get_nowait(), ProcCall)


def test_wait_timeout_names_the_mock_and_the_calls_seen(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker")
    with pytest.raises(ProcMockTimeout) as failure:
        worker_class.wait_for_call(timeout=0.05)
    message = str(failure.value)
    assert message.startswith("ProcMock 'worker' was not called (constructed) within 0.05 s (0 calls so far)")
    assert "mock.patch in the test reaches fork children only" in message
    assert isinstance(failure.value, TimeoutError)
    worker_class(5)
    worker_class.wait_for_call()
    with pytest.raises(ProcMockTimeout, match=r"\(1 call so far, already returned by earlier waits; last: call\(5\)\)"):
        worker_class.wait_for_call(timeout=0)


def test_default_wait_is_the_startup_timeout(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock()
    with settings.using(settings.current().replace(startup_timeout=0.05)):
        started = time.monotonic()
        with pytest.raises(ProcMockTimeout, match=r"within 0\.05 s"):
            worker_class.wait_for_call()
    assert time.monotonic() - started < STOP_DEADLINE
    with pytest.raises(ProcMockTimeout, match=r"within 0\.02 s"):
        make_mock(timeout=0.02).wait_for_call()


def test_start_method_defaults_to_the_setting(make_mock: Callable[..., ProcMock]) -> None:
    assert make_mock().start_method == settings.current().start_method
    with settings.using(settings.current().replace(start_method="spawn")):
        assert make_mock().start_method == "spawn"
    assert make_mock(start_method="fork").start_method == "fork"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"start_method": "thread"}, r"invalid start method 'thread' from ProcMock\(start_method=...\)"),
        ({"timeout": -1}, r"invalid timeout -1 from ProcMock\(timeout=...\)"),
    ],
)
def test_bad_options_say_which(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProcMock(**options)


def test_unpicklable_argument_names_it_here_and_in_the_wait(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker")
    with pytest.raises(UnpicklableArgument, match=r"^ProcMock 'worker' was called with argument 1 \(<function"):
        worker_class(5, lambda: None)
    with pytest.raises(UnpicklableArgument, match=r"with argument 1 \(<function .*cannot be pickled"):
        worker_class.wait_for_call()
    worker_class(6)  # the mock stays usable
    assert worker_class.wait_for_call() == call(6)


def test_pickling_outside_a_process_start_is_refused(make_mock: Callable[..., ProcMock]) -> None:
    worker_class = make_mock(name="worker")
    with pytest.raises(ProcMockError, match=r"ProcMock 'worker' can be pickled only while a process is being started"):
        pickle.dumps(worker_class)


def test_closed_mock_says_so(make_mock: Callable[..., ProcMock]) -> None:
    with make_mock(name="worker") as worker_class:
        worker_class(1)
    assert worker_class.closed
    worker_class.close_queue()  # idempotent
    for use in (worker_class.wait_for_call, worker_class.calls_so_far, lambda: worker_class(2)):
        with pytest.raises(ProcMockError, match=r"ProcMock 'worker' is closed"):
            use()


def test_parent_proc_classes_use_their_start_method() -> None:
    for method, parent in PARENTS.items():
        assert issubclass(parent, ParentProc)
        assert parent._start_method == method  # type: ignore[attr-defined]
