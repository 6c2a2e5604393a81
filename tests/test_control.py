"""Control mid-test: pause, resume and restart a process under test, wait for its output (zmqtest.control)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import zmq
from apps.behave import Behave
from apps.restartable import Answer

from zmqtest import (
    Conversation,
    EndpointFactory,
    ProcessExited,
    ProcessTest,
    SocketTimeout,
    TestSocket,
    WaitTimeout,
    groups,
    managed,
    transcript,
    wait_until,
)
from zmqtest.contexts import SocketFactory
from zmqtest.errors import EventError, ProcessError
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings
from zmqtest.transcript import recording

APPS = Path(__file__).parent / "apps"
BEHAVE = str(APPS / "behave.py")
SETTINGS = Settings(stop_grace=1.0, startup_timeout=30.0)
TICKS = (
    "import sys, time\n"
    "print('ready', flush=True)\n"
    "for number in range(int(sys.argv[1])):\n"
    "    print(f'tick {number}', flush=True)\n"
    "    time.sleep(0.01)  # sleep-ok: a program that prints at its own pace\n"
    "time.sleep(60)  # sleep-ok: then idles until stopped\n"
)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_paused_server_answers_nothing_until_it_is_resumed(
    tmp_path: Path, method: str, zmq_context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs, recording() as transcript:
        server = procs.start(Behave("kill-message"), start_method=method, ready=r"listening on (?P<endpoint>\S+)")
        assert server.endpoint is not None
        client = TestSocket(zmq_context, zmq.REQ, name="client")
        client.connect(server.endpoint)
        client.send(b"ping", timeout=5)
        assert client.recv(timeout=5) == b"pong"
        server.pause()
        assert server.is_paused()
        assert "stopped (paused)" in server.describe()
        client.send(b"ping", timeout=5)
        with pytest.raises(SocketTimeout):
            client.recv(timeout=0.2)  # a peer that stopped answering: what a heartbeat expiry is made of
        server.resume()
        assert not server.is_paused()
        client.send(b"ping", timeout=5)  # the REQ started over after its timeout
        assert client.recv(timeout=5) == b"pong"
        client.close()
    rendered = transcript.render()
    assert "paused: SIGSTOP to its group" in rendered
    assert "resumed: SIGCONT to its group" in rendered
    assert server.stopped_by == "SIGINT"  # a clean stop after the resume


def test_a_process_left_paused_is_resumed_and_stopped_cleanly_at_teardown(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
        handle.pause()
    assert handle.stopped_by == "SIGINT"
    assert not handle.ended_unexpectedly


def test_pause_or_resume_of_an_ended_process_says_so(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "return"], ready="ready", expect_exit=0)
        assert handle.wait(10) == 0
        with pytest.raises(
            ProcessError, match=r"cannot pause behave\.py \(pid \d+, exited with code 0\): it has ended"
        ):
            handle.pause()
        with pytest.raises(ProcessError, match="cannot resume"):
            handle.resume()


def test_wait_for_output_goes_on_after_the_ready_line_and_matches_each_line_once(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, "-c", TICKS, "20"], ready="^ready$")
        assert handle.wait_for_output(r"tick (\d+)", timeout=10).group(1) == "0"  # the line after the ready one
        assert handle.wait_for_output(r"tick 1[0-9]", timeout=10).group(0) == "tick 10"
        assert handle.wait_for_output(r"tick (\d+)", timeout=10).group(1) == "11"  # none is skipped, none twice
        with pytest.raises(WaitTimeout) as excinfo:
            handle.wait_for_output("tick 3$", timeout=0.2)  # already passed
        assert str(excinfo.value).startswith(
            f"wait_for_output: no line of {handle.describe()}'s stdout or stderr matched 'tick 3$' within 0.2 s"
        )
        with pytest.raises(WaitTimeout):
            handle.wait_for_output("^ready$", timeout=0.05)  # readiness took it


def test_wait_for_output_ends_at_once_when_the_process_dies(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "die"])
        with pytest.raises(ProcessExited, match=r"exited with code 2 while waiting for a line of its output"):
            handle.wait_for_output("never printed", timeout=30)


def test_wait_for_output_refuses_a_bytes_pattern(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
        with pytest.raises(TypeError, match=r"wait_for_output\(\): b'x' is bytes: give a str regex"):
            handle.wait_for_output(b"x")  # type: ignore[arg-type]


# --- restart ---------------------------------------------------------------------------------------------------------

RESTARTABLE = str(APPS / "restartable.py")
LISTENING = r"listening on (?P<endpoint>\S+)"


def _target(kind: str, endpoint: str) -> tuple[object, dict[str, object]]:
    """The restartable server as a Process under a start method, or as a command line."""
    if kind == "command":
        return [sys.executable, RESTARTABLE, endpoint], {}
    return Answer(endpoint), {"start_method": kind}


def _ask(client: TestSocket, body: bytes) -> int:
    """Send ``body`` on the DEALER, return the pid of the run that answered it."""
    client.send(body, timeout=10)
    reply = client.recv(timeout=10)
    assert reply.startswith(body + b" from ")
    return int(reply.rsplit(b" ", 1)[1])


@pytest.mark.parametrize("kind", ["fork", "forkserver", "spawn", "command"])
def test_restart_gives_the_same_handle_a_new_run_on_the_same_endpoint(
    tmp_path: Path, kind: str, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    target, options = _target(kind, endpoint)
    with ProcessManager(tmp_path, settings=SETTINGS) as procs, recording() as transcript:
        server = procs.start(target, ready=LISTENING, **options)  # type: ignore[arg-type]
        first_pid, first_stdout = server.pid, server.stdout_path
        client = TestSocket(zmq_context, zmq.DEALER, name="client")
        client.connect(endpoint)
        assert _ask(client, b"one") == first_pid
        server.restart()
        assert server.pid != first_pid
        assert server.endpoint == endpoint
        assert server.is_alive()
        assert procs.processes == [server]
        assert not Path(f"/proc/{first_pid}").exists()  # reaped with its group before the new run started
        assert server.stdout_path != first_stdout
        assert server.stdout_path.name == first_stdout.name.replace(".stdout", ".restart1.stdout")
        assert server.tail().count("listening on") == 1  # the current run's output only
        assert _ask(client, b"two") == server.pid  # the mimic reconnected by itself
        client.close()
    rendered = transcript.render()
    assert "restarting" in rendered
    assert f"restarted: pid {server.pid}" in rendered
    assert server.stopped_by == "SIGINT"  # the new run is stopped at teardown
    assert not Path(f"/proc/{server.pid}").exists()


def test_messages_queued_while_the_server_was_down_reach_the_next_run(
    tmp_path: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start(Answer(endpoint), start_method="fork", ready=LISTENING)
        client = TestSocket(zmq_context, zmq.DEALER, name="client")
        client.connect(endpoint)
        assert _ask(client, b"before") == server.pid
        server.stop()
        for number in range(5):
            client.send(f"queued {number}".encode(), timeout=5)  # no peer: queued in the DEALER's pipe
        server.restart()
        replies = [client.recv(timeout=10) for _ in range(5)]
        assert replies == [f"queued {number} from {server.pid}".encode() for number in range(5)]
        client.close()
    assert not server.ended_unexpectedly


def test_a_restarted_process_is_still_watched(
    tmp_path: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start(Answer(endpoint), start_method="fork", ready=LISTENING)
        server.restart()
        client = TestSocket(zmq_context, zmq.DEALER, name="client")
        client.connect(endpoint)
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(ProcessExited, match=rf"Answer \(pid {server.pid}\) killed by SIGKILL while"):
            client.recv(timeout=30)  # the new run's death ends the wait at once
        client.close()


def test_restarting_a_crashed_process_works_and_its_crash_is_reported_at_teardown(
    tmp_path: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    procs = ProcessManager(tmp_path, settings=SETTINGS)
    with recording() as transcript:
        server = procs.start(Answer(endpoint), start_method="fork", ready=LISTENING)
        crashed = server.pid
        os.kill(crashed, signal.SIGKILL)
        assert server.wait(10) == -signal.SIGKILL  # no zmqtest wait raised it
        server.restart()
        client = TestSocket(zmq_context, zmq.DEALER, name="client")
        client.connect(endpoint)
        assert _ask(client, b"again") == server.pid
        client.close()
        with pytest.raises(ProcessExited) as excinfo:
            procs.close()
    message = str(excinfo.value)
    assert message.startswith("1 process ended unexpectedly")
    assert f"Answer (run 1, before restart()) (pid {crashed}, killed by SIGKILL) ended before the test stopped it" in (
        message
    )
    assert "restarting (it had ended: killed by SIGKILL)" in transcript.render()
    assert server.stopped_by == "SIGINT"  # the new run stopped cleanly


def test_a_crash_that_a_wait_raised_is_not_reported_again_after_a_restart(
    tmp_path: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start(Answer(endpoint), start_method="fork", ready=LISTENING)
        client = TestSocket(zmq_context, zmq.DEALER, name="client")
        client.connect(endpoint)
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(ProcessExited):
            client.recv(timeout=30)
        server.restart()
        assert _ask(client, b"again") == server.pid
        client.close()
    assert not server.ended_unexpectedly


def test_a_paused_process_restarts(tmp_path: Path, zmq_endpoint_factory: EndpointFactory) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start([sys.executable, RESTARTABLE, zmq_endpoint_factory.tcp()], ready=LISTENING)
        paused = server.pid
        server.pause()
        server.restart()
        assert server.pid != paused
        assert not server.is_paused()
    assert server.stopped_by == "SIGINT"


def test_a_restart_whose_readiness_fails_raises_at_the_restart_and_stops_the_new_run(
    tmp_path: Path, zmq_endpoint_factory: EndpointFactory
) -> None:
    checks: list[int] = []

    def ready_once() -> bool:
        if checks:
            raise RuntimeError("not ready this time")
        # ready once it listens: a SIGINT while the interpreter starts up ends it with code 1, not as a clean stop
        checks.extend([1] if "listening on" in (tmp_path / "restartable.py-1.stdout").read_text() else [])
        return bool(checks)

    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start([sys.executable, RESTARTABLE, zmq_endpoint_factory.tcp()], ready=ready_once)
        first = server.pid
        with pytest.raises(RuntimeError, match="not ready this time"):
            server.restart()
        assert server.pid != first
        assert server.returncode is not None  # the new run was stopped
    assert procs.processes == [server]


class _Uncopyable(Behave):
    def __copy__(self) -> _Uncopyable:
        raise TypeError("no copies of this one")


def test_a_process_object_that_cannot_be_copied_cannot_be_restarted_and_says_why(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start(_Uncopyable("obey"), start_method="fork", ready="ready")
        with pytest.raises(ProcessError, match=r"its Process object could not be copied .*no copies of this one"):
            handle.restart()
        assert handle.is_alive()  # refused before it was stopped


def test_restart_after_its_manager_closed_says_so(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
    with pytest.raises(ProcessError, match=r"cannot restart behave\.py \(pid \d+, .*\): its ProcessManager is closed"):
        handle.restart()


def test_restarts_rebind_the_same_tcp_port_each_time(tmp_path: Path, zmq_endpoint_factory: EndpointFactory) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        server = procs.start(Answer(endpoint), start_method="fork", ready=LISTENING)
        pids = {server.pid}
        for _ in range(10):
            server.restart()  # EADDRINUSE would end the new run before it said it listens: a StartError
            pids.add(server.pid)
        assert len(pids) == 11


# --- as ProcessTest events -------------------------------------------------------------------------------------------


class TestEvents(ProcessTest):
    """Each control is an event of a generator test, noted once in its transcript."""

    def test_pause_resume_restart_and_wait_for_output_are_events(
        self,
        zmq_process_factory: ProcessManager,
        zmq_socket_factory: SocketFactory,
        zmq_endpoint_factory: EndpointFactory,
    ) -> Conversation:
        endpoint = zmq_endpoint_factory.tcp()
        server = zmq_process_factory([sys.executable, RESTARTABLE, endpoint], ready=LISTENING)
        ticker = zmq_process_factory([sys.executable, "-c", TICKS, "5"], ready="^ready$")
        client = zmq_socket_factory(zmq.DEALER, connect=endpoint, name="client")
        first = server.pid
        yield ("pause", server)
        assert server.is_paused()
        yield ("resume", server)
        assert not server.is_paused()
        yield ("restart", server)
        assert server.pid != first
        yield ("send", client, [], "hello")
        assert (yield ("recv", client, None)) == [f'"hello" from {server.pid}'.encode()]
        match = yield ("wait_for_output", ticker, r"tick (\d)", 10)
        assert match.group(1) == "0"
        record = transcript.current()
        assert record is not None
        rendered = record.render()
        for note in (
            "paused: SIGSTOP",
            "resumed: SIGCONT",
            "restarting",
            f"restarted: pid {server.pid}",
            "output: tick 0",
        ):
            assert rendered.count(note) == 1, note

    def test_an_event_on_something_else_than_a_process_says_so(self) -> Conversation:
        with pytest.raises(EventError, match=r"pause needs a process under test .*got 'server'"):
            yield ("pause", "server")


def test_a_restart_waits_for_the_mimic_to_connect_again_when_that_is_its_readiness(
    tmp_path: Path, zmq_context: zmq.Context[zmq.Socket[bytes]], zmq_endpoint_factory: EndpointFactory
) -> None:
    endpoint = zmq_endpoint_factory.tcp()
    client = TestSocket(zmq_context, zmq.DEALER, name="client")
    client.connect(endpoint)
    with ProcessManager(tmp_path, settings=SETTINGS) as procs, recording() as transcript:
        server = procs.start(Answer(endpoint), start_method="fork", ready=client)
        server.restart()
        assert _ask(client, b"reconnected") == server.pid
    client.close()
    assert transcript.render().count("ready: a connection on") == 2


def test_a_restart_whose_stop_went_wrong_says_so_and_starts_nothing(tmp_path: Path) -> None:
    def broken_stop() -> None:
        raise RuntimeError("the stop message could not be sent")

    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "obey"], ready="ready", stop=broken_stop)
        first = handle.pid
        with pytest.raises(ProcessError) as excinfo:
            handle.restart()
        assert str(excinfo.value).startswith(
            f"cannot restart behave.py (pid {first}, killed by SIGINT): stopping it went wrong\n"
            f"the stop action of behave.py (pid {first}) failed: RuntimeError: the stop message could not be sent"
        )
        assert handle.pid == first  # nothing was started
    assert procs.processes == [handle]


def test_the_manager_starts_no_second_run_of_a_process_that_still_runs(tmp_path: Path) -> None:
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start([sys.executable, BEHAVE, "obey"], ready="ready")
        with pytest.raises(ProcessError, match=r"again before it is stopped: call its restart\(\)"):
            procs.restart(handle)
        assert procs.processes == [handle]
        assert handle.is_alive()


def hide_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide /proc from zmqtest as on macOS: no process's state can be read."""
    monkeypatch.setattr(groups, "HAS_PROC", False)
    monkeypatch.setattr(managed, "proc_stat", lambda pid: None)


def test_without_proc_pause_and_resume_return_once_the_signal_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on macOS: no state to read, so no wait for it (which would time out); the signals still act."""
    with ProcessManager(tmp_path, settings=SETTINGS) as procs:
        handle = procs.start(Behave("obey"), start_method="fork", ready="ready")
        hide_proc(monkeypatch)
        handle.pause()
        monkeypatch.undo()
        wait_until(handle.is_paused, timeout=5, what="the SIGSTOP to take effect")
        hide_proc(monkeypatch)
        handle.resume()
        monkeypatch.undo()
        wait_until(lambda: not handle.is_paused(), timeout=5, what="the SIGCONT to take effect")
