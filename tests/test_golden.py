"""System-test support (zmqtest.golden): running programs, normalising their output, golden files.

Programs are real (``sys.executable -c ...``); the pytest side runs inner projects with
pytester. No program here sleeps: one that must outlive its deadline waits in
``signal.pause()``, which only a signal ends.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from zmqtest import backstop
from zmqtest.errors import StartError, WaitTimeout, ZmqTestError
from zmqtest.golden import (
    BUILTIN_NORMALISERS,
    GoldenFiles,
    GoldenMismatch,
    GoldenMissing,
    Normaliser,
    RunResult,
    RunTimeout,
    render,
    run,
)

PY = sys.executable
DEADLINE = 2.0
"""A deadline the programs below outlive on purpose: long enough for a loaded machine to start two interpreters."""
SUBPROCESS_DEADLINE = 60.0
TEXT_PORT = 54321
"""A port number in text for the normalisers to find; nothing binds it."""
NO_RANDOM = ("-p", "no:randomly")

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


def group_members(pgid: int) -> list[int]:
    """Processes (not zombies) still in process group ``pgid``."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --- run() ---------------------------------------------------------------------------------------------


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
    assert render(result).splitlines()[0] == "killed by SIGTERM"


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
    assert group_members(error.pid) == []
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
    import zmqtest.golden

    started = []

    def interrupted(pid: int, timeout: float) -> bool:
        started.append(pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(zmqtest.golden, "_wait_for_end", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run([PY, "-c", "import signal; signal.pause()"])
    assert len(started) == 1
    assert gone(started[0])
    assert started[0] not in backstop.registered()


def test_no_file_or_descriptor_is_left_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run([PY, "-c", "pass"])  # the first run in an interpreter starts the reaper, which keeps a pipe open: not a leak
    before = open_fds()

    run([PY, "-c", "print('x')"], stdin="input")
    with pytest.raises(RunTimeout):
        run([PY, "-c", "import signal; signal.pause()"], stdin=b"input", timeout=0.2)

    assert list(tmp_path.iterdir()) == []
    assert open_fds() == before


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


# --- normalising -----------------------------------------------------------------------------------------

BUILTIN_CASES = {
    "ipc_paths": [
        ("listening on ipc:///tmp/zmqtest-a1b2c3/pong", "listening on ipc://<IPC>/pong"),
        ("ipc:///run/app/x/control.sock, then", "ipc://<IPC>/control.sock, then"),
        ("ipc://@abstract-name and ipc://relative", "ipc://@abstract-name and ipc://relative"),
    ],
    "temp_paths": [
        ("wrote /tmp/pp-x1y2z3/out.txt.", "wrote <TMP>/out.txt."),
        ("'/var/tmp/tmpab_cd/f' and /dev/shm/seg", "'<TMP>/f' and <TMP>"),
        ("/home/me/tmp/x and tmp/y", "/home/me/tmp/x and tmp/y"),
    ],
    "ports": [
        (f"listening on tcp://127.0.0.1:{TEXT_PORT}", "listening on tcp://127.0.0.1:<PORT>"),
        (
            f"tcp://*:{TEXT_PORT} tcp://[::1]:600 ws://host.example:80/path",
            "tcp://*:<PORT> tcp://[::1]:<PORT> ws://host.example:<PORT>/path",
        ),
        (
            "at 10.0.0.1:8080 or localhost:9000 on port 4444 (Port=12)",
            "at 10.0.0.1:<PORT> or localhost:<PORT> on port <PORT> (Port=<PORT>)",
        ),
        ("tcp://127.0.0.1:* and 2 ports, support 3", "tcp://127.0.0.1:* and 2 ports, support 3"),
    ],
    "timestamps": [
        ("at 2024-01-02T03:04:05.123456+01:00 and 2024-01-02T03:04:05Z", "at <TIMESTAMP> and <TIMESTAMP>"),
        ("2024-01-02 03:04:05,678 INFO pong: ready", "<TIMESTAMP> INFO pong: ready"),
        ('127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0"', '127.0.0.1 - - [<TIMESTAMP>] "GET / HTTP/1.0"'),
        ("Oct  9 13:55:36 host app: x", "<TIMESTAMP> host app: x"),
        ("Tue Jan  2 03:04:05 2024 | Mon, 02 Jan 2024 03:04:05 GMT", "<TIMESTAMP> | <TIMESTAMP>"),
        ("20240102T030405Z on 2024-01-02 at 13:55:36.5", "<TIMESTAMP> on <DATE> at <TIME>"),
        ("mac 00:11:22:33:44:55, ratio 1:2:3", "mac 00:11:22:33:44:55, ratio 1:2:3"),
    ],
    "pids": [
        ("started pid 4242, pid=17 PID: 9 ppid=1", "started pid <PID>, pid=<PID> PID: <PID> ppid=<PID>"),
        (
            "<Process name='PongProc' pid=1234 parent=99 started>",
            "<Process name='PongProc' pid=<PID> parent=99 started>",
        ),
        ("Oct-less pong[4242]: ready; list[3] rapid 5 pidfd 3", "Oct-less pong[<PID>]: ready; list[3] rapid 5 pidfd 3"),
    ],
}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(name, text, expected, id=f"{name}-{n}")
        for name, cases in BUILTIN_CASES.items()
        for n, (text, expected) in enumerate(cases)
    ],
)
def test_each_builtin_normaliser_alone(name: str, text: str, expected: str) -> None:
    assert Normaliser(builtins=[name])(text) == expected
    assert Normaliser(builtins=True)(text) == Normaliser(builtins=BUILTIN_NORMALISERS)(text)


def test_builtins_can_be_turned_off() -> None:
    text = f"tcp://127.0.0.1:{TEXT_PORT} pid 42 2024-01-02T03:04:05Z /tmp/x1/y ipc:///tmp/x1/pong"
    assert Normaliser(builtins=False)(text) == text
    assert Normaliser(builtins=())(text) == text
    assert Normaliser(builtins="pids")(text) == text.replace("pid 42", "pid <PID>")


def test_known_paths_become_their_tokens_longest_first(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    normalise = Normaliser(paths={tmp_path: "<TMP_PATH>", inner: "<INNER>"})

    assert normalise(f"{inner}/a {tmp_path}/b {tmp_path}") == "<INNER>/a <TMP_PATH>/b <TMP_PATH>"
    assert "<TMP_PATH>" not in normalise(f"{tmp_path}0/other")  # a longer name is another path


def test_the_system_temporary_directory_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "mytmp"))
    assert Normaliser()(f"{tmp_path}/mytmp/tmpq1w2e3/data.bin") == "<TMP>/data.bin"


def test_user_substitutions_apply_first_in_order() -> None:
    normalise = Normaliser(
        [
            (r"took \d+ ms", "took <N> ms"),
            (re.compile(r"port (\d+)"), r"port number \1"),  # before the built-in sees "port 5555"
            ("version [0-9.]+", lambda match: match.group(0).upper()),
        ]
    )
    assert normalise("took 12 ms on port 5555, version 1.2") == "took <N> ms on port number 5555, VERSION 1.2"
    assert Normaliser({"a+": "b"}, builtins=False)("caaat") == "cbt"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"substitutions": [("(unclosed", "x")]},
            ValueError,
            r"substitutions\[0\]: invalid regex '\(unclosed': missing \)",
        ),
        (
            {"substitutions": [("ok", "x"), ("only one",)]},
            TypeError,
            r"substitutions\[1\] is \('only one',\): expected a",
        ),
        (
            {"substitutions": [(1, "x")]},
            TypeError,
            r"substitutions\[0\]: the pattern 1 is not a str or a compiled regex",
        ),
        ({"substitutions": [("x", 1)]}, TypeError, r"substitutions\[0\]: the replacement 1 is not a str or a callable"),
        ({"substitutions": "x"}, TypeError, "substitutions must be .pattern, replacement. pairs or a mapping"),
        (
            {"builtins": ["ports", "times"]},
            ValueError,
            "unknown built-in normaliser 'times': the built-ins are ipc_paths, ",
        ),
        ({"builtins": 3}, TypeError, "builtins must be True, False or names of built-in normalisers, got 3"),
    ],
    ids=["bad-regex", "not-a-pair", "pattern-type", "replacement-type", "a-string", "unknown-builtin", "builtins-type"],
)
def test_a_bad_normaliser_is_refused_at_once(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Normaliser(**kwargs)


# --- rendering ---------------------------------------------------------------------------------------------


def result(stdout: bytes = b"", stderr: bytes = b"", returncode: int = 0) -> RunResult:
    return RunResult(argv=("app",), returncode=returncode, stdout_bytes=stdout, stderr_bytes=stderr, seconds=0.1, pid=7)


@pytest.mark.parametrize(
    ("actual", "text"),
    [
        (result(b"a\nb\n", b"oops\n", 2), "exited with code 2\n--- stdout ---\na\nb\n--- stderr ---\noops\n"),
        (result(), "exited with code 0\n--- stdout (empty) ---\n--- stderr (empty) ---\n"),
        (
            result(b"no end", b"", -9),
            "killed by SIGKILL\n--- stdout (no newline at end) ---\nno end\n--- stderr (empty) ---\n",
        ),
        ("as it is\r\n", "as it is\r\n"),
        (b"bytes \xff", "bytes \\xff"),
        ([["pong", 1], {"reply": "é"}], '["pong", 1]\n{"reply": "é"}\n'),
        ({"a": [1, 2]}, '{\n  "a": [\n    1,\n    2\n  ]\n}\n'),
    ],
    ids=["result", "empty-result", "no-newline-and-signal", "str", "bytes", "list-as-json-lines", "other-as-json"],
)
def test_render(actual: object, text: str) -> None:
    assert render(actual) == text


def test_what_json_cannot_encode_is_refused() -> None:
    with pytest.raises(TypeError, match=r"cannot write set to a golden file .*: give a RunResult, a str, bytes"):
        render({1, 2})


# --- golden files, without pytest ---------------------------------------------------------------------------


def test_an_equal_output_passes_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("port <PORT>\n")
    golden = GoldenFiles(tmp_path)

    golden.check("port 5555\n", "out.txt")

    assert golden.written == []


def test_a_different_output_fails_with_a_unified_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "out.txt").write_text("same\nold\nend\n")

    with pytest.raises(GoldenMismatch) as caught:
        GoldenFiles("golden").check("same\nnew\nend\n", "out.txt")

    assert isinstance(caught.value, AssertionError)
    assert str(caught.value).splitlines() == [
        "output differs from golden file golden/out.txt (- golden, + actual)",
        "--- golden/out.txt (golden)",
        "+++ golden/out.txt (actual)",
        "@@ -1,3 +1,3 @@",
        " same",
        "-old",
        "+new",
        " end",
        "If the new output is right, rewrite the golden file: run pytest with --zmqtest-update-golden "
        "(without pytest: GoldenFiles(..., update=True)), then review the change (git diff).",
    ]
    assert (caught.value.expected, caught.value.actual) == ("same\nold\nend\n", "same\nnew\nend\n")


def test_a_missing_final_newline_shows_in_the_diff(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("line\n")
    with pytest.raises(GoldenMismatch) as caught:
        GoldenFiles(tmp_path).check("line", "out.txt")
    assert "-line\n+line\n\\ No newline at end of file\n" in str(caught.value)


def test_line_endings_are_compared_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_bytes(b"line\r\n")
    GoldenFiles(tmp_path).check("line\r\n", "out.txt")
    with pytest.raises(GoldenMismatch):
        GoldenFiles(tmp_path).check("line\n", "out.txt")


def test_a_missing_golden_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(GoldenMissing) as caught:
        GoldenFiles(tmp_path / "golden").check(["pong", 1], "replies.txt")

    lines = str(caught.value).splitlines()
    assert lines[0] == f"golden file {tmp_path / 'golden' / 'replies.txt'} does not exist"
    assert "run pytest with --zmqtest-update-golden" in lines[1]
    assert lines[2:] == ["--- the output (normalised) ---", '"pong"', "1"]
    assert isinstance(caught.value, GoldenMismatch)


def test_update_mode_creates_directories_and_files_and_rewrites_only_what_differs(tmp_path: Path) -> None:
    directory = tmp_path / "golden" / "deeper"
    golden = GoldenFiles(directory, update=True)

    golden.check(result(f"listening on tcp://127.0.0.1:{TEXT_PORT}\n".encode()), "serve.txt")
    golden.check("same\n", "same.txt")
    assert (directory / "serve.txt").read_text() == (
        "exited with code 0\n--- stdout ---\nlistening on tcp://127.0.0.1:<PORT>\n--- stderr (empty) ---\n"
    )
    before = (directory / "same.txt").stat()

    again = GoldenFiles(directory, update=True)
    again.check("same\n", "same.txt")
    again.check("changed\n", "serve.txt")

    assert golden.written == [(directory / "serve.txt", "created"), (directory / "same.txt", "created")]
    assert again.written == [(directory / "serve.txt", "updated")]
    assert (directory / "same.txt").stat().st_mtime_ns == before.st_mtime_ns
    assert (directory / "serve.txt").read_text() == "changed\n"
    assert sorted(path.name for path in directory.iterdir()) == ["same.txt", "serve.txt"]  # no temporary files


def test_the_default_name_serves_one_check(tmp_path: Path) -> None:
    golden = GoldenFiles(tmp_path, update=True, default_name="test_x.txt")
    golden.check("first\n")
    with pytest.raises(ValueError, match=r"already compared an output with its default golden file .*test_x.txt: give"):
        golden.check("second\n")
    golden.check("second\n", "second.txt")
    assert golden.path() == tmp_path / "test_x.txt"
    with pytest.raises(ValueError, match="no golden file name given, and this GoldenFiles has no default_name"):
        GoldenFiles(tmp_path).check("x")


def test_substitutions_and_builtins_can_be_changed_on_the_object(tmp_path: Path) -> None:
    golden = GoldenFiles(tmp_path, paths={tmp_path: "<HERE>"})
    golden.substitutions.append((r"\d+ ms", "<N> ms"))
    assert golden.normalise(f"{tmp_path}/f took 5 ms on port 1234") == "<HERE>/f took <N> ms on port <PORT>"
    golden.builtins = ["ports"]
    assert golden.normalise(f"{tmp_path}/f took 5 ms on port 1234") == f"{tmp_path}/f took <N> ms on port <PORT>"


def test_run_through_golden_files_is_run(tmp_path: Path) -> None:
    assert GoldenFiles(tmp_path).run([PY, "-c", "print(1)"], timeout=DEADLINE * 10).stdout == "1\n"


# --- the zmq_golden fixture (inner pytest runs) --------------------------------------------------------------

APP = """
import sys

print("listening on tcp://127.0.0.1:" + sys.argv[1])
print("pid " + str(12345 + int(sys.argv[1])))
print(sys.argv[2] if len(sys.argv) > 2 else "bye", file=sys.stderr)
"""

SEE_YOU = ('5555"])', '5555", "see you"])')
"""Changes test_app's output only (what it prints to stderr)."""

SYSTEM_TESTS = """
import sys
from pathlib import Path

import pytest

APP = str(Path(__file__).with_name("app.py"))


def test_app(zmq_golden):
    zmq_golden.check(zmq_golden.run([sys.executable, APP, "5555"]))


@pytest.mark.parametrize("port", ["6000", "7000"])
def test_ports(zmq_golden, port):
    zmq_golden.check(zmq_golden.run([sys.executable, APP, port]), "same_for_all.txt")


def test_paths(zmq_golden, tmp_path):
    zmq_golden.check(f"wrote {tmp_path}/out.txt\\n", "paths.txt")
"""


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*NO_RANDOM, *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP, test_system=SYSTEM_TESTS)
    return pytester


def test_update_writes_the_golden_files_the_run_passes_and_says_which(project: pytest.Pytester) -> None:
    result = run_inner(project, "--zmqtest-update-golden")

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*= zmqtest: 3 golden files written =*",
            "created golden/paths.txt",
            "created golden/same_for_all.txt",
            "created golden/test_app.txt",
        ]
    )
    golden = project.path / "golden"
    assert (golden / "test_app.txt").read_text() == (
        "exited with code 0\n--- stdout ---\nlistening on tcp://127.0.0.1:<PORT>\npid <PID>\n--- stderr ---\nbye\n"
    )
    assert (golden / "paths.txt").read_text() == "wrote <TMP_PATH>/out.txt\n"

    again = run_inner(project)
    again.assert_outcomes(passed=4)
    again.stdout.no_fnmatch_line("*golden file*written*")


def test_a_difference_fails_with_the_diff_in_the_report(project: pytest.Pytester) -> None:
    run_inner(project, "--zmqtest-update-golden").assert_outcomes(passed=4)
    project.makepyfile(test_system=SYSTEM_TESTS.replace(*SEE_YOU))

    result = run_inner(project)

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_app _*",
            "E *GoldenMismatch: output differs from golden file golden/test_app.txt (- golden, + actual)",
            "E * --- golden/test_app.txt (golden)",
            "E * +++ golden/test_app.txt (actual)",
            "E * -bye",
            "E * +see you",
            "E * If the new output is right, rewrite the golden file: run pytest with --zmqtest-update-golden *",
            "test_system.py:10: GoldenMismatch",
        ]
    )
    result.stdout.no_fnmatch_line("*zmqtest/golden.py*")  # the traceback ends in the test


@pytest.mark.parametrize("how", ["ini", "marker"])
def test_update_by_ini_or_marker_says_updated(project: pytest.Pytester, how: str) -> None:
    run_inner(project, "--zmqtest-update-golden").assert_outcomes(passed=4)
    changed = SYSTEM_TESTS.replace(*SEE_YOU)
    if how == "ini":
        project.makeini("[pytest]\nzmqtest_update_golden = true\n")
    else:
        changed = changed.replace("def test_app", "@pytest.mark.zmqtest(update_golden=True)\ndef test_app")
    project.makepyfile(test_system=changed)

    result = run_inner(project)

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*= zmqtest: 1 golden file written =*", "updated golden/test_app.txt"])
    assert (project.path / "golden" / "test_app.txt").read_text().endswith("--- stderr ---\nsee you\n")


def test_a_missing_golden_file_fails_naming_its_path_and_the_flag(project: pytest.Pytester) -> None:
    result = run_inner(project, "-k", "test_app")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "E *GoldenMissing: golden file golden/test_app.txt does not exist",
            "E * To create it from this output, run pytest with --zmqtest-update-golden *",
            "E * --- the output (normalised) ---",
            "E * exited with code 0",
        ]
    )
    assert not (project.path / "golden").exists()


def test_default_names_include_the_class_and_the_parameters(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest


        class TestTiers:
            @pytest.mark.parametrize("n", [1, "a/b c"])
            def test_n(self, zmq_golden, n):
                zmq_golden.check(f"{n}\\n")
        """
    )
    run_inner(pytester, "--zmqtest-update-golden").assert_outcomes(passed=2)
    names = sorted(path.name for path in (pytester.path / "golden").iterdir())
    assert names == ["TestTiers.test_n[1].txt", "TestTiers.test_n[a_b_c].txt"]


def test_two_tests_sharing_a_default_golden_file_are_told_so(pytester: pytest.Pytester) -> None:
    body = """
        def test_same(zmq_golden):
            zmq_golden.check("{}\\n")
        """
    pytester.makepyfile(test_one=body.format("one"), test_two=body.format("two"))

    result = run_inner(pytester, "--zmqtest-update-golden")

    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_two.py::test_same and test_one.py::test_same both use *golden/test_same.txt as their default golden*"]
    )


def test_a_deadline_in_a_system_test_reports_the_output_so_far(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys


        def test_hangs(zmq_golden):
            code = "print('started', flush=True); import signal; signal.pause()"
            zmq_golden.run([sys.executable, "-c", code], timeout=1)
        """
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *RunTimeout: * (pid *) was still running at its 1 s deadline: its process group was killed (SIGKILL)",
            "E *started",
        ]
    )


def test_system_tests_are_marked_and_deselected_with_the_slow_tiers(project: pytest.Pytester) -> None:
    project.makepyfile(test_unit="def test_unit():\n    pass\n")

    run_inner(project, "-m", "not (process or system)", "--strict-markers").assert_outcomes(passed=1, deselected=4)
    run_inner(project, "-m", "system", "--zmqtest-update-golden").assert_outcomes(passed=4, deselected=1)


def test_update_mode_under_xdist_lists_the_files_written_by_workers(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*NO_RANDOM, "-n", "2", "--zmqtest-update-golden", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*= zmqtest: 3 golden files written =*", "created golden/paths.txt"])
