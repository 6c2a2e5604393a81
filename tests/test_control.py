"""Control mid-test: pause and resume a process under test, wait for its output (zmqtest.control)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import zmq
from apps.behave import Behave

from zmqtest import ProcessExited, SocketTimeout, TestSocket, WaitTimeout
from zmqtest.errors import ProcessError
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
