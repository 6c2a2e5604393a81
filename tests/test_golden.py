"""System-test support (zmqtest.golden): normalising output, rendering it, golden files, the zmq_golden fixture.

Running the programs is zmqtest.commands' part (tests/test_commands.py). Programs are
real (``sys.executable -c ...``); the pytest side runs inner projects with pytester.
No program here sleeps: one that must outlive its deadline waits in ``signal.pause()``,
which only a signal ends.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from zmqtest.golden import (
    BUILTIN_NORMALISERS,
    GoldenFiles,
    GoldenMismatch,
    GoldenMissing,
    Normaliser,
    RunResult,
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


def test_golden_files_work_without_pytest(tmp_path: Path) -> None:
    """The library side imports nothing from pytest: a program where pytest cannot be imported writes a file."""
    code = """
import sys
sys.modules["pytest"] = None  # any import of pytest fails from here on
from zmqtest.golden import GoldenFiles
golden = GoldenFiles(sys.argv[1], update=True)
golden.check(golden.run([sys.executable, "-c", "print('hi')"]), "hi.txt")
print(*golden.written)
"""
    result = run([PY, "-c", code, str(tmp_path)], timeout=SUBPROCESS_DEADLINE)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hi.txt").read_text() == "exited with code 0\n--- stdout ---\nhi\n--- stderr (empty) ---\n"


def test_the_report_property_is_the_one_the_plugin_reads() -> None:
    from zmqtest import fixtures, golden

    assert golden.WRITTEN_PROPERTY == fixtures.GOLDEN_WRITTEN


def test_for_test_serves_a_users_own_fixture_and_tests(pytester: pytest.Pytester) -> None:
    """``GoldenFiles.for_test(request)`` in a fixture (for another directory) or a test: the fixture's defaults."""
    pytester.makeconftest(
        """
        import pytest

        from zmqtest.golden import GoldenFiles


        @pytest.fixture
        def expected(request):
            golden = GoldenFiles.for_test(request)
            golden.directory = golden.directory / "expected"
            return golden
        """
    )
    pytester.makepyfile(
        test_mine="""
        from zmqtest.golden import GoldenFiles


        def test_fixture(expected, tmp_path):
            expected.check(f"in {tmp_path}\\n")


        def test_body(request):
            GoldenFiles.for_test(request).check("body\\n")
        """
    )

    result = run_inner(pytester, "--zmqtest-update-golden")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["created golden/expected/test_fixture.txt", "created golden/test_body.txt"])
    assert (pytester.path / "golden" / "expected" / "test_fixture.txt").read_text() == "in <TMP_PATH>\n"
