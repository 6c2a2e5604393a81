"""Running a command line with a deadline (zmqtest.commands.run): output, exit status, process groups, errors.

Programs are real (``sys.executable -c ...``). No program here sleeps: one that must
outlive its deadline waits in ``signal.pause()``, which only a signal ends.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from pids import group

from zmqtest import backstop, commands, golden
from zmqtest.commands import RunResult, RunTimeout, run
from zmqtest.errors import StartError, WaitTimeout, ZmqTestError
from zmqtest.waiting import wait_until

PY = sys.executable
DEADLINE = 2.0
"""A deadline the programs below outlive on purpose: long enough for a loaded machine to start two interpreters."""

PAUSE_WITH_CHILD = """
import signal, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
print("child", child.pid, flush=True)
print("to stderr", file=sys.stderr, flush=True)
signal.pause()
"""
"""Starts a child that waits for ever, says its pid, then waits for ever itself (until killed)."""


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie counts as gone: a container's pid 1 may never reap it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_run_captures_stdout_stderr_and_the_exit_code() -> None:
    result = run([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])

    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 3)
    assert result.status == "exited with code 3"
    assert result.argv[1:] == ("-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    assert result.leftovers == ()
    assert str(result).endswith("exited with code 3 after " + f"{result.seconds:.3g} s")


def test_a_program_killed_by_a_signal_says_which() -> None:
    result = run([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])

    assert result.returncode == -signal.SIGTERM
    assert result.status == "killed by SIGTERM"
    assert golden.render(result).splitlines()[0] == "killed by SIGTERM"


@pytest.mark.parametrize(
    ("given", "received"),
    [("text ✓\nline 2", "text ✓\nline 2".encode()), (b"\xff\x00bytes", b"\xff\x00bytes"), (None, b"")],
    ids=["text", "bytes", "none-is-empty"],
)
def test_stdin_is_text_bytes_or_empty(given: str | bytes | None, received: bytes) -> None:
    result = run([PY, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"], stdin=given)
    assert result.stdout_bytes == received


def test_bytes_that_are_not_utf8_show_escaped_in_the_text() -> None:
    result = run([PY, "-c", "import sys; sys.stdout.buffer.write(b'ok \\xff')"])
    assert result.stdout == "ok \\xff"


def test_env_is_the_whole_environment_plus_unbuffered_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZMQTEST_NOT_PASSED", "1")
    names = ("ONLY", "ZMQTEST_NOT_PASSED", "PYTHONUNBUFFERED")
    code = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"

    result = run([PY, "-c", code], env={"ONLY": "this"})

    assert result.stdout == '{"ONLY": "this", "ZMQTEST_NOT_PASSED": null, "PYTHONUNBUFFERED": "1"}\n'
    assert run([PY, "-c", code], env={"PYTHONUNBUFFERED": ""}).stdout.endswith('"PYTHONUNBUFFERED": ""}\n')
    assert '"ZMQTEST_NOT_PASSED": "1"' in run([PY, "-c", code]).stdout  # default: our environment


def test_cwd_is_where_it_runs(tmp_path: Path) -> None:
    result = run([PY, "-c", "import os; print(os.getcwd())"], cwd=tmp_path)
    assert result.stdout == f"{tmp_path}\n"
    assert result.cwd == str(tmp_path)


def test_the_deadline_kills_the_program_and_its_child_and_reports_the_output_so_far() -> None:
    with pytest.raises(RunTimeout) as caught:
        run([PY, "-c", PAUSE_WITH_CHILD], timeout=DEADLINE)

    error = caught.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, WaitTimeout)
    assert isinstance(error, ZmqTestError)
    match = re.search(r"child (\d+)", error.stdout)
    assert match, f"the program did not report its child within {DEADLINE} s: {error}"
    child = int(match.group(1))
    assert gone(error.pid)
    assert gone(child), "the program's child outlived the deadline"
    assert group(error.pid) == []
    argv = [PY, "-c", PAUSE_WITH_CHILD]
    assert str(error) == (
        f"{shlex.join(argv)} (pid {error.pid}) was still running at its {DEADLINE:g} s deadline: "
        "its process group was killed (SIGKILL)\n"
        f"--- stdout so far ---\nchild {child}\n--- stderr so far ---\nto stderr"
    )
    assert error.stderr == "to stderr\n"
    assert error.timeout == DEADLINE
    assert error.pid not in backstop.registered()


def test_what_a_program_leaves_running_in_its_group_is_killed_and_listed() -> None:
    code = (
        "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()']).pid)"
    )

    result = run([PY, "-c", code])

    child = int(result.stdout)
    assert result.leftovers == (child,)
    assert gone(child)
    assert result.returncode == 0


def test_an_interrupted_run_kills_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or any error) while waiting: the process group is killed before the exception goes on."""
    started = []

    def interrupted(pid: int, timeout: float) -> bool:
        started.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "_wait_for_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run([PY, "-c", "import signal; signal.pause()"])
    assert len(started) == 1
    assert gone(started[0])
    assert started[0] not in backstop.registered()


def test_no_file_or_descriptor_is_left_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run([PY, "-c", "pass"])  # the first run in an interpreter starts the reaper, which keeps a pipe open: not a leak
    wait_until(waiters_ended, timeout=10, what="the portable watcher's waiter threads to end")
    before = open_fds()

    run([PY, "-c", "print('x')"], stdin="input")
    with pytest.raises(RunTimeout):
        run([PY, "-c", "import signal; signal.pause()"], stdin=b"input", timeout=0.2)

    assert list(tmp_path.iterdir()) == []
    wait_until(waiters_ended, timeout=10, what="the portable watcher's waiter threads to end")
    assert open_fds() == before


def waiters_ended() -> bool:
    """The portable watcher's waiter thread ends, closing its pipe, a moment after its process was reaped."""
    return not any(thread.name.startswith("zmqtest-watcher-") for thread in threading.enumerate())


def test_a_program_that_cannot_start_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(StartError, match=r"^could not start program: FileNotFoundError: .*\ncommand: /no/such/prog"):
        run(["/no/such/program", "--flag"])
    with pytest.raises(StartError, match=f"in directory: {re.escape(str(tmp_path / 'gone'))}"):
        run([PY, "-c", "pass"], cwd=tmp_path / "gone")


@pytest.mark.parametrize(
    ("argv", "options", "error", "message"),
    [
        ("python -c pass", {}, TypeError, r"not a string: 'python -c pass' \(split one with shlex.split\(\)"),
        ([], {}, TypeError, "a non-empty list of arguments, got"),
        ([PY, 3], {}, TypeError, "argument 1 of the command line is 3: each must be a str or a path"),
        ([PY], {"stdin": 5}, TypeError, "stdin must be text, bytes or None, got int"),
        ([PY], {"timeout": 0}, ValueError, "invalid timeout 0 from the timeout= argument of run()"),
        ([PY], {"timeout": "soon"}, ValueError, "invalid timeout 'soon' from the timeout= argument of run()"),
    ],
    ids=["string", "empty", "not-a-str", "stdin", "zero-timeout", "bad-timeout"],
)
def test_bad_arguments_say_what_is_wrong(argv: Any, options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        run(argv, **options)


def test_paths_are_accepted_in_the_command_line(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    assert run([Path(PY), script]).stdout == "hello\n"


def test_the_old_import_path_still_works() -> None:
    """``from zmqtest.golden import run, RunResult, RunTimeout`` is in users' code: the same objects."""
    assert (golden.run, golden.RunResult, golden.RunTimeout) == (run, RunResult, RunTimeout)
    assert golden.DEFAULT_RUN_TIMEOUT == commands.DEFAULT_RUN_TIMEOUT
    assert golden.GoldenFiles.run is run
