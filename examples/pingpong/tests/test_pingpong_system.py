"""System tests: the whole program, run from its command line as a user runs it.

The demo's output is compared with a golden file; ``serve`` and ``ping`` run as two
separate command lines, the endpoint passing from one to the other through what
``serve`` prints. Every run has a deadline, and no server outlives its test.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RUN_TIMEOUT = 30.0
"""Seconds a command line may run."""
STOP_TIMEOUT = 5.0
"""Seconds a server may take to start, or to stop."""

pytestmark = pytest.mark.system


def run_pingpong(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pingpong ARGS`` in the app's directory, with a deadline."""
    return subprocess.run(
        [sys.executable, "-m", "pingpong", *args],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def assert_matches_golden(output: str, name: str) -> None:
    """Fail with a unified diff (golden file -> actual output) unless they are equal."""
    expected = (GOLDEN_DIR / name).read_text()
    if output != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), output.splitlines(keepends=True), f"golden/{name}", "stdout"
        )
        pytest.fail(f"stdout differs from golden/{name}:\n{''.join(diff)}", pytrace=False)


def read_line(stream: int, deadline: float) -> str:
    """Read one line from the pipe ``stream`` (a file descriptor), waiting no later than ``deadline``.

    One byte at a time, so nothing past the line is taken from the pipe: whatever
    follows is still there for ``communicate()``.
    """
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([stream], [], [], max(remaining, 0))
        if not readable:
            raise TimeoutError(f"no complete line within the deadline; got {line!r} so far")
        byte = os.read(stream, 1)
        if not byte:
            raise EOFError(f"the pipe closed before a complete line; got {line!r}")
        line += byte
    return line.decode()


@contextlib.contextmanager
def serving(bind: str = "tcp://127.0.0.1:*") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``python -m pingpong serve``; yield it with the endpoint it printed. Killed afterwards if still running."""
    server = subprocess.Popen(
        [sys.executable, "-m", "pingpong", "serve", "--bind", bind],
        cwd=APP_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        try:
            line = read_line(server.stdout.fileno(), time.monotonic() + STOP_TIMEOUT)
        except (TimeoutError, EOFError) as exc:
            server.kill()
            _, err = server.communicate(timeout=STOP_TIMEOUT)
            pytest.fail(f"serve did not say where it listens ({exc}); its stderr:\n{err.decode()}", pytrace=False)
        match = re.fullmatch(r"listening on (\S+)\n", line)
        assert match, f"serve printed {line!r}, expected 'listening on <endpoint>'"
        yield server, match.group(1)
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=STOP_TIMEOUT)  # reaps it and closes the pipes


@pytest.fixture
def ipc_dir() -> Iterator[str]:
    """A private, short-named directory for ipc endpoints; removed afterwards."""
    path = tempfile.mkdtemp(prefix="pp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("argv", [["demo", "--count", "3"], []], ids=["demo-count-3", "no-command"])
def test_demo_output_matches_golden(argv: list[str]) -> None:
    result = run_pingpong(*argv)
    assert_matches_golden(result.stdout, "demo_count3.txt")
    assert result.stderr == ""
    assert result.returncode == 0


def test_serve_and_ping_as_two_command_lines_then_sigint() -> None:
    with serving() as (server, endpoint):
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", endpoint), endpoint

        result = run_pingpong("ping", "--connect", endpoint, "--count", "2")
        assert result.stdout == "ping 1 -> pong 1\nping 2 -> pong 2\n"
        assert result.returncode == 0, result.stderr

        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=STOP_TIMEOUT)
        assert out == b"stopped (SIGINT)\n"
        assert err == b""
        assert server.returncode == 0


def test_kill_command_stops_the_server(ipc_dir: str) -> None:
    with serving(f"ipc://{ipc_dir}/pong") as (server, endpoint):
        assert endpoint == f"ipc://{ipc_dir}/pong"

        result = run_pingpong("kill", "--connect", endpoint)
        assert result.stdout == "sent plzdiekthxbye\n"
        assert result.returncode == 0, result.stderr

        out, _ = server.communicate(timeout=STOP_TIMEOUT)
        assert out == b"stopped (kill message)\n"
        assert server.returncode == 0
    assert os.listdir(ipc_dir) == [], "the server left its ipc socket file"


def test_ping_without_a_server_gives_up_within_its_timeout(ipc_dir: str) -> None:
    started = time.monotonic()
    result = run_pingpong("ping", "--connect", f"ipc://{ipc_dir}/nobody", "--timeout", "0.2")
    assert time.monotonic() - started < RUN_TIMEOUT
    assert result.stdout == ""
    assert result.stderr == f'pingpong ping: no reply from ipc://{ipc_dir}/nobody to ["ping",1] within 0.2 s\n'
    assert result.returncode == 1


def test_serve_on_a_bad_endpoint_says_so() -> None:
    result = run_pingpong("serve", "--bind", "tcp://no-such-host-here:*")
    assert result.stdout == ""
    assert result.stderr.startswith("pingpong serve: cannot serve on tcp://no-such-host-here:*: ")
    assert result.returncode == 1
