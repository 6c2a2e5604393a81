"""zmqtest.logs: the log records of a process under test reach the test over ZeroMQ.

The process under test is ``tests/apps/log_app.py``, as a ``multiprocessing.Process`` under
fork, forkserver and spawn and as a command line; it forwards its records with
``zmqtest.logs.forward()`` and logs what a mimic REQ socket tells it to. Where only the
format matters, the test process forwards its own records. Every wait is for a record, a
reply or a process's end: nothing sleeps.
"""

from __future__ import annotations

import inspect
import logging
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from apps.behave import Behave
from apps.log_app import LogApp, flush_interrupted

import zmqtest.logs
from zmqtest import (
    Conversation,
    EventError,
    ManagedProcess,
    ProcessExited,
    ProcessManager,
    ProcessTest,
    SocketFactory,
    WaitTimeout,
)
from zmqtest.logs import (
    ENDPOINT_ENV,
    MAX_TEXT,
    SHOWN_ENTRIES,
    LogCollector,
    LogEntry,
    LogForwarder,
    LogQuery,
    collecting,
    current_collector,
    forward,
    parse_level,
)
from zmqtest.waiting import wait_until

THIS_FILE = Path(__file__).name
LOG_APP = Path(__file__).parent / "apps" / "log_app.py"
READY = r"listening on (?P<endpoint>\S+)"
KINDS = ("fork", "forkserver", "spawn", "command")
"""How the process under test is started: a Process under each start method, or a command line."""
EXIT_TIMEOUT = 10.0
"""Seconds a process may take to end once it is told to."""
SHORT_WAIT = 0.05
"""Seconds for a wait that is meant to time out."""


def start_app(
    procs: ProcessManager, kind: str, exit_after: int | None = None, quiet: list[str] | None = None, **options: Any
) -> ManagedProcess:
    """log_app.py as ``kind``; ready once it listens (or at once, with ``exit_after``: it binds nothing then).

    ``quiet``: loggers that do not propagate, set so before the app calls ``forward()``."""
    ready = READY if exit_after is None else None
    if kind == "command":
        argv = [sys.executable, str(LOG_APP)]
        if exit_after is not None:
            argv += ["--exit-after", str(exit_after)]
        for name in quiet or ():
            argv += ["--quiet-logger", name]
        return procs(argv, ready=ready, **options)
    return procs(LogApp(exit_after=exit_after, quiet=quiet), ready=ready, start_method=kind, **options)


def line_of(function: Callable[..., Any], text: str) -> int:
    """The line number of the one line of ``function``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(function)
    [offset] = [index for index, line in enumerate(lines) if text in line]
    return start + offset


@pytest.fixture
def collector() -> Iterator[LogCollector]:
    with LogCollector(transport="ipc") as logs:  # the default, tcp, is what every process test uses
        yield logs


@pytest.fixture
def forwarder(collector: LogCollector, caplog: pytest.LogCaptureFixture) -> Iterator[LogForwarder]:
    """This test process forwards its records of logger ``zt`` (DEBUG and up) to ``collector``."""
    caplog.set_level(logging.DEBUG, logger="zt")
    handler = forward(collector.endpoint)
    assert handler is not None
    try:
        yield handler
    finally:
        handler.close()


# --- the log action, with real processes --------------------------------------------------------------------------


@pytest.mark.process
class TestLogAction(ProcessTest):
    @pytest.mark.parametrize("kind", KINDS)
    def test_a_record_of_the_start_up_and_one_mid_conversation(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, kind: str
    ) -> Conversation:
        app = start_app(zmq_process_factory, kind)
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        started = yield ("log", "started")  # logged before this yield: it counts
        assert (started.message, started.level, started.logger) == (f"started {app.pid}", "INFO", "app")
        assert (started.process, started.pid) == (app.name, app.pid)
        yield ("send", client, [], ["log", "WARNING", "app.db", "mid conversation"])
        assert (yield ("recv", client)) == [["ok"]]
        middle = yield ("log", "mid conversation")
        assert (middle.levelno, middle.logger, middle.pid) == (logging.WARNING, "app.db", app.pid)
        assert middle.created <= middle.received

    def test_level_and_logger_filters(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory
    ) -> Conversation:
        app = start_app(zmq_process_factory, "forkserver")
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        for level, logger in (("DEBUG", "app"), ("WARNING", "apple"), ("ERROR", "app.db"), ("INFO", "app")):
            yield ("send", client, [], ["log", level, logger, f"disk {level.lower()} from {logger}"])
            yield ("recv", client)
        found = yield ("log", "disk", "WARNING", "app")  # at least WARNING, from app or below it: not apple
        assert found.message == "disk error from app.db"
        found = yield ("log", "disk", None, "apple")
        assert found.message == "disk warning from apple"
        found = yield ("log", "disk", logging.INFO)
        assert found.message == "disk info from app"
        found = yield ("log", "disk")  # the one left
        assert found.message == "disk debug from app"
        with pytest.raises(WaitTimeout, match=r"5 records received \(4 returned by earlier waits\)"):
            yield ("log", "disk", None, None, SHORT_WAIT)  # each record is returned once

    def test_the_earliest_match_is_returned_and_the_others_stay(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory
    ) -> Conversation:
        app = start_app(zmq_process_factory, "fork")
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        yield ("send", client, [], ["burst", 3, "item"])
        yield ("recv", client)
        assert (yield ("log", "item 2")).message == "item 2"
        assert (yield ("log", "item")).message == "item 0"  # not a cursor: item 0 and 1 are still there
        assert (yield ("log", re.compile(r"item \d"))).message == "item 1"

    def test_a_traceback_is_searched_too(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory
    ) -> Conversation:
        app = start_app(zmq_process_factory, "fork")
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        yield ("send", client, [], ["exception", "could not divide"])
        yield ("recv", client)
        record = yield ("log", "ZeroDivisionError", "ERROR")
        assert record.message == "could not divide"
        assert record.exc_text is not None
        assert record.exc_text.startswith("Traceback (most recent call last):")
        assert str(record) == "LogApp ERROR app: could not divide [ZeroDivisionError: division by zero]"

    @pytest.mark.parametrize("kind", ["fork", "command"])
    def test_a_death_while_waiting_ends_the_wait_with_the_exit_code(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, kind: str
    ) -> Conversation:
        app = start_app(zmq_process_factory, kind)
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        yield ("log", "started")
        yield ("send", client, [], ["die", 3])
        # A minute to wait: only the death can end this wait in time for the ProcessExited below.
        with pytest.raises(ProcessExited) as failure:
            yield ("log", "never logged", None, None, 60)
        message = str(failure.value)
        assert message.startswith(
            f"{app.name} (pid {app.pid}) exited with code 3 while waiting for a log record containing 'never logged'"
        )
        assert "1 record received (1 returned by earlier waits), they are:\n" in message
        assert f"{app.name} INFO app: started {app.pid}" in message

    @pytest.mark.parametrize("kind", KINDS)
    def test_records_logged_just_before_a_normal_exit_arrive(
        self, zmq_process_factory: ProcessManager, kind: str
    ) -> Conversation:
        app = start_app(zmq_process_factory, kind, exit_after=300, expect_exit=0)
        assert app.wait(EXIT_TIMEOUT) == 0
        last = yield ("log", "last 299")
        assert last.pid == app.pid
        messages = [entry.message for entry in zmq_process_factory.logs.entries if entry.message.startswith("last")]
        assert messages == [f"last {number}" for number in range(300)]

    def test_a_child_forked_by_the_process_forwards_on_its_own_socket(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory
    ) -> Conversation:
        app = start_app(zmq_process_factory, "forkserver")
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        yield ("send", client, [], ["fork-log", "from the worker"])
        [[ok, worker_pid]] = yield ("recv", client)
        assert ok == "ok"
        record = yield ("log", "from the worker")
        assert (record.process, record.pid, record.level) == ("Worker", worker_pid, "WARNING")
        assert worker_pid != app.pid
        yield ("send", client, [], ["log", "INFO", "app", "the parent goes on"])  # the child let go of its copy only
        yield ("recv", client)
        assert (yield ("log", "the parent goes on")).pid == app.pid

    @pytest.mark.parametrize("kind", ["fork", "command"])
    def test_loggers_that_do_not_propagate_are_forwarded_too(
        self, zmq_process_factory: ProcessManager, zmq_socket_factory: SocketFactory, kind: str
    ) -> Conversation:
        app = start_app(zmq_process_factory, kind, quiet=["locust"])  # set before forward(), as logging.config does
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        said = [
            ("log", "INFO", "locust", "spawning 10 users"),
            ("log", "WARNING", "locust.runners", "worker missed a heartbeat"),  # below it: stops at locust
            ("propagate", "late", False),  # after forward(), as a library imported later would
            ("log", "INFO", "late", "from a logger quiet since"),
            ("propagate", "locust", True),  # propagates again: through the root, and still once
            ("log", "INFO", "locust", "back to the root"),
        ]
        for request in said:
            yield ("send", client, [], list(request))
            assert (yield ("recv", client)) == [["ok"]]
        for logger, text in [
            ("locust", "spawning 10 users"),
            ("locust.runners", "worker missed a heartbeat"),
            ("late", "from a logger quiet since"),
            ("locust", "back to the root"),
        ]:
            record = yield ("log", text)
            assert (record.logger, record.pid) == (logger, app.pid)
        yield ("send", client, [], ["log", "INFO", "app", "the end"])  # records arrive in order: all are in
        yield ("recv", client)
        yield ("log", "the end")
        messages = [entry.message for entry in zmq_process_factory.logs.entries]
        assert [message for message in messages if message == "back to the root"] == ["back to the root"]
        assert [message for message in messages if message == "spawning 10 users"] == ["spawning 10 users"]

    def test_records_are_noted_in_the_transcript(
        self, zmq_process_factory: ProcessManager, monkeypatch: pytest.MonkeyPatch
    ) -> Conversation:
        notes: list[tuple[str, str]] = []
        monkeypatch.setattr("zmqtest.transcript.note", lambda who, what, at=None: notes.append((who, what)))
        app = start_app(zmq_process_factory, "fork")
        yield ("log", "started")
        assert (app.name, f"log INFO app: started {app.pid}") in notes

    def test_records_not_waited_for_reach_the_transcript_when_the_test_ends(
        self, zmq_process_factory: ProcessManager, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        notes: list[tuple[str, str]] = []
        monkeypatch.setattr("zmqtest.transcript.note", lambda who, what, at=None: notes.append((who, what)))
        app = start_app(zmq_process_factory, "fork")

        def arrived(collector: LogCollector) -> None:  # the record is there, but nobody has read it
            assert collector.socket.poll(int(EXIT_TIMEOUT * 1000), zmq.POLLIN)

        class Quiet(ProcessTest):
            def wait_until_arrived(self) -> None:
                arrived(zmq_process_factory.logs)

        def conversation() -> Conversation:
            yield ("wait_until_arrived",)

        Quiet().run(conversation)
        assert (app.name, f"log INFO app: started {app.pid}") in notes


# --- bad input ---------------------------------------------------------------------------------------------------


class Alone(ProcessTest):
    """A ProcessTest with a collector of its own and nothing sending to it."""


def raised_by(test: ProcessTest, event: Any) -> Exception:
    """Yield ``event``; return what ``run`` raised."""

    def conversation() -> Conversation:
        yield event

    try:
        test.run(conversation)
    except Exception as exc:
        return exc
    raise AssertionError(f"the runner accepted {event!r}")


RAISED_AT = f"{THIS_FILE}:{line_of(raised_by, 'yield event')}"
FORM = "the form is ('log', substr[, level[, logger[, timeout]]])"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(("log", 42), "the text to look for must be a str (or a compiled re pattern), got 42", id="int"),
        pytest.param(("log", b"started"), "got b'started' (bytes: decode it first)", id="bytes"),
        pytest.param(("log", re.compile(b"x")), "must be a str pattern, got re.compile(b'x')", id="bytes-pattern"),
        pytest.param(("log", "x", "LOUD"), "unknown log level 'LOUD' for level: expected a name (DEBUG", id="level"),
        pytest.param(("log", "x", True), "unknown log level True", id="bool-level"),
        pytest.param(("log", "x", -1), "unknown log level -1", id="negative-level"),
        pytest.param(("log", "x", None, 3), "logger must be a logger's name (str), got 3", id="logger-type"),
        pytest.param(("log", "x", None, "app."), "logger must be a logger's name like 'app'", id="logger-name"),
        pytest.param(("log", "x", None, None, -1), "invalid timeout -1 from timeout", id="timeout"),
        pytest.param(("log", "x", None, None, float("inf")), "an endless wait would let a test hang", id="inf"),
    ],
)
def test_bad_log_events_say_what_is_wrong_and_where(event: tuple[Any, ...], expected: str) -> None:
    test = Alone()
    with LogCollector() as test.logs:
        error = raised_by(test, event)
    assert isinstance(error, EventError)
    message = str(error)
    first_line = message.splitlines()[0]
    assert first_line.startswith("bad log event: ")
    assert expected in first_line
    assert first_line.endswith(FORM)
    assert re.search(rf"\n  event: {re.escape(repr(event))} at (.*/)?{re.escape(RAISED_AT)}$", message), message


def test_too_many_arguments_show_the_signature_of_the_log_action() -> None:
    test = Alone()
    with LogCollector() as test.logs:
        error = raised_by(test, ("log", "x", None, None, 1.0, "extra"))
    assert isinstance(error, EventError)
    assert "does not fit log(substr=''" in str(error)


def test_a_log_event_without_a_collector_says_how_to_get_one() -> None:
    assert current_collector() is None
    error = raised_by(Alone(), ("log", "started"))
    assert isinstance(error, EventError)
    assert str(error).startswith("a log event needs a log collector: start the process with zmq_process_factory")
    assert "self.logs = zmqtest.LogCollector()" in str(error)


def test_self_logs_must_be_a_collector() -> None:
    test = Alone()
    test.logs = "ipc:///tmp/logs"  # type: ignore[assignment]
    error = raised_by(test, ("log", "started"))
    assert isinstance(error, EventError)
    assert str(error).startswith("self.logs must be a zmqtest.LogCollector (or None), got 'ipc:///tmp/logs'")


def test_a_closed_collector_says_so(collector: LogCollector) -> None:
    collector.close()
    with pytest.raises(ValueError, match=r"this LogCollector \(ipc://.*\) is closed"):
        collector.wait_for("x")


# --- the article's way: the test starts its process itself ----------------------------------------------------------


@pytest.mark.process
class TestOwnProcess(ProcessTest):
    """No fixtures: ``setup_method`` makes a collector and starts the process, handing it the endpoint."""

    logs: LogCollector
    proc: LogApp

    def setup_method(self) -> None:
        self.logs = LogCollector()
        self.proc = LogApp(log_endpoint=self.logs.endpoint, exit_after=2)
        self.proc.start()

    def teardown_method(self) -> None:
        self.proc.join(EXIT_TIMEOUT)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join(EXIT_TIMEOUT)
        self.logs.close()

    def test_the_log_action_uses_self_logs(self) -> Conversation:
        assert current_collector() is None
        assert self.logs.endpoint.startswith("tcp://127.0.0.1:")
        started = yield ("log", "started")
        assert (started.process, started.pid) == ("LogApp", self.proc.pid)  # its own process name
        yield ("log", "last 1")


@pytest.mark.process
def test_the_current_collector_serves_a_test_without_self_logs() -> None:
    found: list[LogEntry] = []

    class Plain(ProcessTest):
        def test_it(self) -> Conversation:
            found.append((yield ("log", "last 0")))

    with LogCollector() as logs:
        assert current_collector() is logs
        proc = LogApp(log_endpoint=logs.endpoint, exit_after=1)
        proc.start()
        try:
            test = Plain()
            test.run(test.test_it)
        finally:
            proc.join(EXIT_TIMEOUT)
    assert current_collector() is None
    assert [entry.message for entry in found] == ["last 0"]


# --- the process manager hands out the endpoint --------------------------------------------------------------------


@pytest.mark.process
def test_the_manager_gives_each_process_the_endpoint_and_leaves_nothing(tmp_path: Path) -> None:
    with ProcessManager(tmp_path) as procs:
        assert current_collector() is None  # made with the first start
        printer = [sys.executable, "-c", f"import os; print('env', os.environ['{ENDPOINT_ENV}'])"]
        command = procs(printer, ready=r"^env (\S+)$", expect_exit=0)
        process = procs(Behave("env", ENDPOINT_ENV), ready=r"^env (\S+) ", start_method="forkserver", expect_exit=0)
        own = procs(printer, ready=r"^env (\S+)$", env={**os.environ, ENDPOINT_ENV: "ipc:///mine"}, expect_exit=0)
        collector = procs.logs
        assert current_collector() is collector
        assert command.endpoint == process.endpoint == collector.endpoint
        assert collector.endpoint.startswith("tcp://127.0.0.1:")  # loopback only, nothing on disk
        assert own.endpoint == "ipc:///mine"  # an environment that says otherwise is left alone
        assert collector.process_names == {command.pid: command.name, process.pid: process.name, own.pid: own.name}
    assert current_collector() is None
    assert collector.closed
    assert collector.context.closed


def test_a_collector_leaves_nothing(collector: LogCollector) -> None:
    ipc_dir = Path(collector.endpoint.removeprefix("ipc://")).parent
    assert ipc_dir.stat().st_mode & 0o777 == 0o700
    collector.close()
    collector.close()  # twice is fine
    assert collector.closed
    assert collector.context.closed
    assert not ipc_dir.exists()


def test_a_collector_on_a_given_context_leaves_the_context_open(ctx: zmq.Context[Any]) -> None:
    with LogCollector(ctx) as logs:
        assert logs.endpoint.startswith("tcp://127.0.0.1:")  # loopback only
    assert logs.closed
    assert not ctx.closed


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transport 'udp' for a LogCollector: expected 'tcp' or 'ipc'"):
        LogCollector(transport="udp")


# --- forward(), in this process -------------------------------------------------------------------------------------


def test_forward_without_an_endpoint_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    assert forward() is None
    assert forward(level="DEBUG") is None
    assert (root.handlers, root.level) == (handlers, level)


def test_forward_reads_the_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, collector: LogCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="zt")
    monkeypatch.setenv(ENDPOINT_ENV, collector.endpoint)
    handler = forward()
    assert handler is not None
    try:
        assert handler in logging.getLogger().handlers
        assert handler.endpoint == collector.endpoint
        logging.getLogger("zt.env").info("through the environment")
        assert collector.wait_for("through the environment").pid == os.getpid()
    finally:
        handler.close()
    assert handler not in logging.getLogger().handlers


def test_a_second_forward_replaces_the_first(collector: LogCollector) -> None:
    first = forward(collector.endpoint)
    second = forward(collector.endpoint)
    try:
        forwarders = [h for h in logging.getLogger().handlers if isinstance(h, LogForwarder)]
        assert forwarders == [second]
        assert first is not None
        assert repr(first).endswith("(closed)>")
    finally:
        assert second is not None
        second.close()


def test_the_forwarder_goes_on_loggers_that_do_not_propagate_and_comes_off_at_close(collector: LogCollector) -> None:
    before = logging.getLogger("zt.quiet.before")
    before.propagate = False
    handler = forward(collector.endpoint)
    assert handler is not None
    try:
        after = logging.getLogger("zt.quiet.after")
        assert handler in before.handlers
        assert handler not in after.handlers  # it propagates: the root's forwarder has its records
        after.propagate = False
        assert after.handlers == [handler]
        assert after.__dict__["propagate"] is False  # where logging keeps it without zmqtest
        after.propagate = True
        assert after.handlers == []
        after.propagate = False
        after.propagate = False
        assert after.handlers == [handler]  # once
        replacement = forward(collector.endpoint)
        assert replacement is not None
        assert before.handlers == after.handlers == [replacement]  # the first one is off every logger
        handler = replacement
    finally:
        handler.close()
    assert "propagate" not in vars(logging.Logger)  # a plain attribute again
    assert before.handlers == after.handlers == []
    assert before.propagate is False
    before.propagate = after.propagate = True


def test_forward_refuses_something_that_is_not_an_endpoint() -> None:
    with pytest.raises(ValueError, match="forward\\(\\) needs an endpoint like 'ipc:///path'"):
        forward("localhost:5555")


@pytest.mark.parametrize("endpoint", ["tpc://127.0.0.1:5555", "tcp://127.0.0.1", "tcp://127.0.0.1:*", "ipc://"])
def test_forward_refuses_a_mistyped_endpoint_at_once(endpoint: str) -> None:
    """It connects only with the first record: a typo is still refused at the call, not in some later record."""
    with pytest.raises(ValueError, match="forward\\(\\) needs an endpoint like"):
        forward(endpoint)


def threads() -> int:
    """How many threads this process has (counted by number: not every thread names itself)."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_the_forwarder_connects_with_its_first_record_and_starts_no_thread(
    collector: LogCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that never logs pays for no connection (nor a flush at exit); one that logs gets no thread of ours."""
    caplog.set_level(logging.DEBUG, logger="zt")
    before = threads()
    handler = forward(collector.endpoint)
    assert handler is not None
    try:
        assert handler._push is None
        logging.getLogger("zt.first").info("the first record")
        assert handler._push is not None
        assert threads() == before  # a plain socket: no zmq context, no I/O thread, no reaper
        assert collector.wait_for("the first record").pid == os.getpid()
    finally:
        handler.close()
    assert threads() == before


def test_the_flush_at_exit_closes_the_connection_for_good(
    collector: LogCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """A record logged after it (the interpreter's teardown logs too) opens no new connection at exit."""
    caplog.set_level(logging.DEBUG, logger="zt")
    handler = forward(collector.endpoint)
    assert handler is not None
    try:
        logging.getLogger("zt.late").info("before the flush")
        handler._flush_at_exit()
        logging.getLogger("zt.late").info("after the flush")
        assert handler._push is None
        assert collector.wait_for("before the flush").message == "before the flush"
    finally:
        handler.close()


def test_a_host_that_does_not_resolve_is_said_once_at_the_first_record(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="zt")
    handler = forward("tcp://no such host:5555")
    assert handler is not None
    try:
        logging.getLogger("zt.refused").info("first")
        logging.getLogger("zt.refused").info("second")
    finally:
        handler.close()
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1
    assert "tcp://no such host:5555" in err


def test_a_full_queue_drops_records_and_counts_them(
    monkeypatch: pytest.MonkeyPatch, ipc_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="zt")
    monkeypatch.setattr(zmqtest.logs, "QUEUED_RECORDS", 5)
    monkeypatch.setattr(zmqtest.logs, "FLUSH_LINGER_MS", 0)  # nobody will ever take them: do not wait at close
    handler = forward(f"ipc://{ipc_dir}/nobody-listens")
    assert handler is not None
    try:
        for number in range(12):
            logging.getLogger("zt.full").info("record %d", number)  # never blocks, whatever the queue
        assert handler.dropped == 7
    finally:
        handler.close()


def test_a_record_keeps_its_fields(forwarder: LogForwarder, collector: LogCollector) -> None:
    collector.process_names[os.getpid()] = "tester"
    logging.getLogger("zt.fields").debug("hello %s", "world", stack_info=True)
    entry = collector.wait_for("hello world", level="DEBUG", logger="zt")
    assert (entry.level, entry.levelno, entry.logger, entry.pid) == ("DEBUG", 10, "zt.fields", os.getpid())
    assert entry.process == "tester"
    assert entry.exc_text is not None
    assert entry.exc_text.startswith("Stack (most recent call last):")
    assert entry.created <= entry.received


def test_a_long_message_is_cut(forwarder: LogForwarder, collector: LogCollector) -> None:
    logging.getLogger("zt").warning("x" * (MAX_TEXT + 10))
    entry = collector.wait_for("xxx")
    assert entry.message == "x" * MAX_TEXT + "... (10 more characters cut)"


def test_the_timeout_error_names_what_was_awaited_and_what_came(
    forwarder: LogForwarder, collector: LogCollector
) -> None:
    with pytest.raises(WaitTimeout) as nothing:
        collector.wait_for("anything", timeout=SHORT_WAIT)
    assert f"waiting for a log record containing 'anything' on {collector.endpoint}: none within 0.05 s" in str(
        nothing.value
    )
    assert "no record arrived at all: does the process call zmqtest.logs.forward()" in str(nothing.value)
    for number in range(7):
        logging.getLogger("zt.seven").info("record %d", number)
    collector.wait_for("record 6")
    with pytest.raises(WaitTimeout) as missed:
        collector.wait_for("nope", level="ERROR", logger="zt", timeout=SHORT_WAIT)
    lines = str(missed.value).splitlines()
    assert lines[0] == (
        "waiting for a log record containing 'nope' at level ERROR or above from logger 'zt' (or below it) "
        f"on {collector.endpoint}: none within 0.05 s"
    )
    assert lines[1] == f"  7 records received (1 returned by earlier waits), the last {SHOWN_ENTRIES}:"
    assert lines[2:] == [f"    MainProcess INFO zt.seven: record {number}" for number in range(2, 7)]
    assert missed.value.timeout == SHORT_WAIT


def test_a_record_that_went_to_the_collector_in_force_before_is_named_on_timeout(
    forwarder: LogForwarder, collector: LogCollector
) -> None:
    # a session fixture's process manager, then the test's: the test waits on its own, the record went to the first
    logging.getLogger("zt.shared").info("tick 5")
    with LogCollector(transport="ipc") as inner, pytest.raises(WaitTimeout) as missed:
        inner.wait_for("tick 5", timeout=SHORT_WAIT)
    lines = str(missed.value).splitlines()
    assert lines[1:] == [
        "  no record arrived here",
        f"  a matching record went to a collector in force before this one, {collector.endpoint} (a fixture's "
        "ProcessManager's, say): MainProcess INFO zt.shared: tick 5; to wait on it, set the test's logs to it (a "
        "process's .logs is its manager's collector), or call its wait_for()",
    ]
    assert collector.wait_for("tick 5").message == "tick 5"  # looking did not take it
    with (
        LogCollector(transport="ipc") as inner,
        collecting(collector),  # made current again: the collectors in force before each other
        collecting(inner),
        pytest.raises(WaitTimeout) as nowhere,
    ):
        inner.wait_for("tick 6", timeout=SHORT_WAIT)
    assert "no record arrived at all" in str(nowhere.value)
    assert "in force before" not in str(nowhere.value)


# --- the wire format --------------------------------------------------------------------------------------------------


class Pickled:
    """Unpickling this creates a file: the collector must never do it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def test_records_are_json_and_never_unpickled(collector: LogCollector, ctx: zmq.Context[Any], tmp_path: Path) -> None:
    sender = ctx.socket(zmq.PUSH)
    sender.linger = 0
    sender.connect(collector.endpoint)
    trap = tmp_path / "unpickled"
    sender.send(pickle.dumps(Pickled(trap)))
    sender.send(
        b'{"level": "INFO", "levelno": 20, "logger": "c.app", "message": "from a C program", "exc_text": null,'
        b' "created": 1.5, "pid": 77, "process": "cprog", "dropped": 5}'
    )
    sender.send(b'["a list", "not an object"]')
    malformed = collector.wait_for("malformed log message")
    assert malformed.message.startswith("malformed log message (UnicodeDecodeError") or malformed.message.startswith(
        "malformed log message (JSONDecodeError"
    )
    assert (malformed.level, malformed.logger, malformed.pid) == ("WARNING", "zmqtest.logs", 0)
    dropped = collector.wait_for("dropped", logger="zmqtest.logs")
    assert dropped.message == "5 log records of cprog were dropped before this one (queue full)"
    entry = collector.wait_for("from a C program")
    assert (entry.process, entry.pid, entry.created, entry.logger) == ("cprog", 77, 1.5, "c.app")
    assert collector.wait_for("malformed", timeout=1).message.startswith("malformed log message (TypeError")
    assert not trap.exists()
    sender.close()


# --- queries --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "number"),
    [("warning", 30), ("WARN", 30), (" error ", 40), ("critical", 50), (15, 15), ("15", 15), (0, 0)],
)
def test_levels_by_name_or_number(given: object, number: int) -> None:
    assert parse_level(given, "level") == number


@pytest.mark.parametrize("given", ["LOUD", "", -1, True, 1.5, None, b"INFO"])
def test_bad_levels_are_refused(given: object) -> None:
    with pytest.raises(ValueError, match=rf"unknown log level {re.escape(repr(given))} for level"):
        parse_level(given, "level")


def entry(
    logger: str = "app", message: str = "m", levelno: int = logging.INFO, exc_text: str | None = None
) -> LogEntry:
    return LogEntry(message, logging.getLevelName(levelno), levelno, logger, "p", 1, 0.0, exc_text)


@pytest.mark.parametrize(("logger", "matches"), [("app", True), ("app.db", True), ("apple", False), ("root", False)])
def test_a_logger_matches_itself_and_the_loggers_below_it(logger: str, matches: bool) -> None:
    assert LogQuery.parse("", None, "app").matches(entry(logger)) is matches


def test_a_query_reads_well() -> None:
    assert str(LogQuery.parse()) == "any log record"
    assert str(LogQuery.parse(re.compile(r"ping \d+"), "warning", "app")) == (
        "a log record matching 'ping \\\\d+' at level WARNING or above from logger 'app' (or below it)"
    )
    assert LogQuery.parse("boom").matches(entry(message="failed", exc_text="Traceback ...\nValueError: boom"))


# --- the module docstring's promise: a child imports little -------------------------------------------------------


def test_forwarding_imports_no_heavy_part_of_zmqtest() -> None:
    code = "import sys, zmqtest.logs; print(sorted(m for m in sys.modules if m.startswith('zmqtest')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "['zmqtest', 'zmqtest.logs', 'zmqtest.plainpush']"


def test_the_collectors_names_still_come_from_zmqtest_logs() -> None:
    import zmqtest.logcollector

    for name in ("LogCollector", "LogEntry", "LogQuery", "current_collector", "collecting", "SHOWN_ENTRIES"):
        assert getattr(zmqtest.logs, name) is getattr(zmqtest.logcollector, name)
    assert zmqtest.logcollector.parse_level is zmqtest.logs.parse_level  # one parser, for both sides
    with pytest.raises(AttributeError, match=r"module 'zmqtest\.logs' has no attribute 'LogCollecter'"):
        zmqtest.logs.LogCollecter  # noqa: B018


# --- in a real pytest run ---------------------------------------------------------------------------------------------

INNER_TESTS = """
import zmq
from apps.log_app import LogApp, flush_interrupted

from zmqtest import ProcessTest

READY = r"listening on (?P<endpoint>\\S+)"


class TestInner(ProcessTest):
    def test_timeout(self, zmq_process_factory):
        zmq_process_factory(LogApp(), ready=READY)
        yield ("log", "started")
        yield ("log", "nope", "ERROR", "app", 0.2)

    def test_death(self, zmq_process_factory, zmq_socket_factory):
        app = zmq_process_factory(LogApp(), ready=READY, start_method="fork")
        client = zmq_socket_factory(zmq.REQ, connect=app.endpoint, name="client")
        yield ("send", client, [], ["log", "INFO", "app", "about to die"])
        yield ("recv", client)
        yield ("log", "about to die")
        yield ("send", client, [], ["die", 3])
        yield ("log", "never", None, None, 60)
"""


@pytest.mark.process
def test_a_failing_log_wait_in_a_pytest_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # apps.log_app, for the children under spawn too
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error", timeout=90)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E *WaitTimeout: waiting for a log record containing 'nope' at level ERROR or above from logger 'app' "
            "(or below it) on tcp://127.0.0.1:*: none within 0.2 s; LogApp (pid *, running)",
            "E *  1 record received (1 returned by earlier waits), they are:",
            "E *    LogApp INFO app: started *",
            "E *  event: ('log', 'nope', 'ERROR', 'app', 0.2) at test_inner.py:13",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E *ProcessExited: LogApp (pid *) exited with code 3 while waiting for a log record containing 'never' "
            "on tcp://127.0.0.1:*",
            "E *process: LogApp started with fork",
            "E *  2 records received (1 returned by earlier waits), they are:",
            "E *    LogApp INFO app: started *",
            "E *    LogApp INFO app: about to die",
            "E *  event: ('log', 'never', None, None, 60) at test_inner.py:22",
        ]
    )


def test_a_collector_can_bind_an_endpoint_given_to_a_process_started_before_it(tmp_path: Path) -> None:
    """The article style without forking a process that has zmq threads: start first, then collect what it logged."""
    from zmqtest.endpoints import EndpointFactory

    with EndpointFactory() as endpoints:
        endpoint = endpoints.ipc("logs")
        app = LogApp(log_endpoint=endpoint, exit_after=3)
        app.start()
        try:
            with LogCollector(endpoint=endpoint) as collector:
                assert collector.endpoint == endpoint
                assert "started" in collector.wait_for("started", timeout=10).message
                assert collector.wait_for("last 2", timeout=10).message == "last 2"
        finally:
            app.join(10)
    assert app.exitcode == 0


def test_a_shared_process_is_waited_on_through_its_logs_while_another_manager_collects(tmp_path: Path) -> None:
    """A session fixture's process and the test's own: each one's records go to its manager's collector."""
    with ProcessManager(tmp_path / "shared") as shared_manager:
        shared = shared_manager.start(LogApp(), ready=READY)
        assert shared.logs is shared_manager.logs
        # arrived (and still unclaimed: entries only reads), so that the error below can name it
        wait_until(lambda: any(entry.pid == shared.pid for entry in shared.logs.entries), what="its first record")
        with ProcessManager(tmp_path / "own") as own_manager:
            own = own_manager.start(LogApp(), ready=READY)
            assert own.logs is own_manager.logs is current_collector()
            assert f"started {own.pid}" in own.logs.wait_for("started", timeout=10).message
            with pytest.raises(
                WaitTimeout, match=f"went to a collector in force before this one.*started {shared.pid}"
            ):
                own.logs.wait_for(f"started {shared.pid}", timeout=0.2)
            assert shared.logs.wait_for(f"started {shared.pid}", timeout=10).pid == shared.pid


@pytest.mark.parametrize("kind", ["fork", "forkserver", "spawn"])
def test_a_sigint_that_lands_in_the_flush_at_exit_ends_the_process_as_a_stop_not_a_crash(
    zmq_process_factory: ProcessManager, kind: str
) -> None:
    """The test's SIGINT reaching a child ending by itself, in the forwarder's flush: 130, not 1 and a traceback."""
    app = zmq_process_factory(
        LogApp(exit_after=3),
        start_method=kind,
        expect_exit=True,
        patches={"zmqtest.plainpush.PlainPush.close": flush_interrupted},  # the SIGINT comes during the flush
    )
    assert app.wait(EXIT_TIMEOUT) == 128 + signal.SIGINT
    assert "KeyboardInterrupt" not in app.stderr_path.read_text()
    assert zmq_process_factory.logs.wait_for("last 2", timeout=EXIT_TIMEOUT).message == "last 2"
