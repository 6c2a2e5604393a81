"""Figure 2: 500 tests leave the pytest process with the file descriptors and threads it had.

A generated project of 500 tests using zmqtest's fixtures (``zmq_context`` through
``zmq_socket_factory``, tcp and ipc endpoints, a ``ProcessTest`` conversation, and
processes under test: ``Process`` instances and command lines). Its own conftest
counts, inside the run (in each xdist worker), the open file descriptors
(``/proc/self/fd``), the Python threads (``threading.active_count()``) and the OS
threads (``/proc/self/task``: pyzmq's I/O threads are not Python threads) when the
session starts and after each test's teardown, without forcing a garbage collection.
A thread that has ended for Python may still be leaving the kernel for a few
microseconds, so each count first waits (at most 0.2 s) until the OS threads are no
more than the Python threads (plus those of xdist's execnet, counted at the start).

The first process starts add a constant, once per session: zmqtest's reaper (at the
first start of any kind), multiprocessing's forkserver and resource tracker (at the
first start of a ``Process``) each keep a pipe to their helper process. So the figure
compares the end with the count after the first test that started a ``Process`` (after
the first start, in a worker that started only commands), and lists what the constant
is made of.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from inner_runs import OUTER_DEADLINE, VARIANTS, InnerProject

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

TESTS = 500

INNER_CONFTEST = """
import json
import os
import threading

import pytest

from zmqtest import WaitTimeout, wait_until

COUNTS = {"after": []}
SETTLE = 0.2  # seconds a thread that Python has joined may take to leave the kernel (it takes microseconds)


def tasks():
    return len(os.listdir("/proc/self/task"))


OTHERS = tasks() - threading.active_count()  # threads not made by threading (an xdist worker's execnet thread)


def counts():
    try:  # pyzmq's I/O threads end with their context, and the helper threads zmqtest joins: wait for them to go
        wait_until(lambda: tasks() - threading.active_count() <= OTHERS, timeout=SETTLE, interval=0.001)
    except WaitTimeout:
        pass  # an OS thread lives on: counted below
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(), "tasks": tasks()}


def fd_targets():
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the listing's own descriptor, closed meanwhile
    return sorted(targets)


def pytest_sessionstart(session):
    COUNTS["start"] = counts()
    COUNTS["start_fds"] = fd_targets()


@pytest.fixture(autouse=True)
def note_process_starts(request):
    \"\"\"Note the first test that started a process, and the first that started a Process (the forkserver).\"\"\"
    yield
    manager = request.node.funcargs.get("zmq_process_factory")  # closed by now: autouse fixtures end last
    number = len(COUNTS["after"]) + 1
    if manager is not None and manager.processes:
        COUNTS.setdefault("first_start", number)
        if any(process.kind == "process" for process in manager.processes):
            COUNTS.setdefault("first_process", number)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    result = yield
    COUNTS["after"].append(counts())
    for first in ("first_start", "first_process"):
        if COUNTS.get(first) == len(COUNTS["after"]):
            COUNTS[f"{first}_fds"] = fd_targets()
    return result


def pytest_sessionfinish(session):
    if COUNTS["after"]:  # where tests ran: not an xdist controller
        COUNTS["end_fds"] = fd_targets()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"resources-{worker}.json", "w") as file:
            json.dump(COUNTS, file)
"""

INNER_TESTS = f"""
import pytest
import zmq

from children import Child, command
from zmqtest import ConnectionWaiter, ProcessTest, wait_for_message

KINDS = ("reqrep-tcp", "pushpull-ipc", "pubsub-ipc", "routerdealer-tcp")


@pytest.mark.parametrize("n", range({TESTS * 9 // 10}))
def test_mimics_and_processes(n, zmq_process_factory, zmq_socket_factory, zmq_endpoint_factory):
    if n % 9 == 0:  # a process under test, every ninth test
        endpoint = zmq_endpoint_factory.tcp()
        client = zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")
        if n % 2:
            zmq_process_factory(command("serve", endpoint), ready=r"^ready")
        else:
            zmq_process_factory(Child("serve", endpoint), ready=client)
        client.send(b"ping %d" % n)
        assert client.recv() == b"ping %d" % n
        return
    kind = KINDS[n % len(KINDS)]
    if kind == "reqrep-tcp":
        server = zmq_socket_factory(zmq.REP, bind=zmq_endpoint_factory.tcp())
        client = zmq_socket_factory(zmq.REQ, connect=server.endpoint)
        client.send_json({{"n": n}})
        server.send(server.recv())
        assert client.recv_json() == {{"n": n}}
    elif kind == "pushpull-ipc":
        pull = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint_factory.ipc("pull"))
        push = zmq_socket_factory(zmq.PUSH, connect=pull.endpoint)
        push.send_multipart([b"a", b"%d" % n])
        assert pull.recv_multipart() == [b"a", b"%d" % n]
    elif kind == "pubsub-ipc":
        publisher = zmq_socket_factory(zmq.XPUB, bind=zmq_endpoint_factory.ipc())
        subscriber = zmq_socket_factory(zmq.SUB, connect=publisher.endpoint, subscribe=b"topic")
        assert publisher.recv() == b"\\x01topic"  # the subscription has arrived: nothing sent now is lost
        publisher.send_multipart([b"topic", b"%d" % n])
        assert wait_for_message(subscriber) == [b"topic", b"%d" % n]
    else:
        router = zmq_socket_factory(zmq.ROUTER, bind=zmq_endpoint_factory.tcp_any())
        with ConnectionWaiter(router) as waiter:
            dealer = zmq_socket_factory(zmq.DEALER, connect=router.endpoint)
            waiter.wait()
        dealer.send(b"hello")
        identity, body = router.recv_multipart()
        router.send_multipart([identity, body + b" back"])
        assert dealer.recv() == b"hello back"


class TestConversation(ProcessTest):
    @pytest.mark.parametrize("n", range({TESTS // 10}))
    def test_conversation(self, n, zmq_socket_factory, zmq_endpoint):
        server = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="server")
        client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
        yield ("send", client, [], ["ping", n])
        request = yield ("recv", server)
        yield ("send", server, [], request[-1])
        assert (yield ("recv", client)) == [["ping", n]]
"""


KEYS = (("fds", "fds"), ("threads", "Python threads"), ("tasks", "OS threads"))


def plateau_after(counts: dict[str, Any]) -> str:
    """The first Process start (forkserver and resource tracker are up then), else the first start (the reaper)."""
    return "first_process" if "first_process" in counts else "first_start"


def constant(counts: dict[str, Any]) -> list[str]:
    """What was opened by the time the first process had started and is still open at the end."""
    start = list(counts["start_fds"])
    added = []
    for target in counts.get(f"{plateau_after(counts)}_fds", start):
        if target in start:
            start.remove(target)
        else:
            added.append(target)
    return [target for target in added if target in counts["end_fds"]]


def kind_of(target: str) -> str:
    """``pipe``, ``socket``, ``anon_inode``, or the path."""
    return target.split(":", 1)[0] if target.startswith(("pipe:", "socket:", "anon_inode:")) else target


def describe(worker: str, counts: dict[str, Any], leaked: dict[str, int]) -> str:
    """``fds 12 → 15 → 15, ...; opened once: 3 pipes`` for one run (one xdist worker); adds to ``leaked``."""
    start, end = counts["start"], counts["after"][-1]
    settled = counts.get(plateau_after(counts))  # the test after which nothing should change; None: no start
    plateau = counts["after"][settled - 1] if settled else start
    for key, label in KEYS:
        if end[key] != plateau[key]:
            leaked[label] = leaked.get(label, 0) + end[key] - plateau[key]
    once = Counter(map(kind_of, constant(counts)))
    opened = ", ".join(f"{number} {kind}{'s' if number > 1 else ''}" for kind, number in sorted(once.items()))
    where = f"{worker} ({len(counts['after'])} tests{'' if settled else ', no process'}): " if worker != "main" else ""
    counted = ", ".join(f"{label} {start[key]} → {plateau[key]} → {end[key]}" for key, label in KEYS)
    return f"{where}{counted}; opened once: {opened or 'nothing'}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_file_descriptors_and_threads_are_the_same_after_500_tests(
    project: InnerProject, figure: Callable[[int, str, str], None], variant: str
) -> None:
    project.pytester.makeconftest(INNER_CONFTEST)
    project.pytester.makepyfile(test_inner=INNER_TESTS)
    result, seconds = project.run(variant, "-q")
    leaked: dict[str, int] = {}
    runs = [
        describe(path.stem.removeprefix("resources-"), json.loads(path.read_text()), leaked)
        for path in sorted(project.path.glob("resources-*.json"))
    ]
    verdict = ", ".join(f"{number:+d} {label}" for label, number in leaked.items()) or "0 leaked"
    figure(
        2,
        f"pytest's file descriptors and threads: at the start → after its first Process start → after {TESTS} tests",
        f"{verdict}; " + "; ".join(runs) + f"; in {seconds:.1f} s",
    )
    result.assert_outcomes(passed=TESTS)
    assert len(runs) == (1 if variant == "serial" else 2)
    assert leaked == {}, runs
