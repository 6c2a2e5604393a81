"""The ``zmq_process_factory`` fixture, used from inner pytest runs as users would use it.

Every inner run is a subprocess with a deadline (processes and signals are involved).
Each inner project is self-contained: its test module defines the processes it starts
(a ``multiprocessing.Process`` subclass, and the same module run as a script for
command lines). Orphans are looked for from outside: every process of an inner run
inherits an environment variable with a value unique to the outer test, and psutil
finds whatever still carries it once the inner run is over.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before it is killed."""
GONE_DEADLINE = 10.0
"""Seconds the helpers of an inner run (forkserver, reaper, resource tracker) may take to exit after it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error")
"""Inner runs keep file order and treat warnings as errors."""
MARK = "ZMQTEST_FIXTURE_TEST_MARK"
"""The environment variable that tags every process of an inner run."""

# --- the inner projects --------------------------------------------------------------------------------------------

CHILDREN = '''
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

PIDS = Path(__file__).with_name("pids.txt")
READY = r"^ready by (\\w+), grandchild (\\d+|-)$"


def how_started():
    """Seen from the child itself: fork children run pytest's command line, the others multiprocessing's."""
    cmdline = Path("/proc/self/cmdline").read_bytes()
    if b"multiprocessing.forkserver" in cmdline:
        return "forkserver"
    if b"multiprocessing.spawn" in cmdline:
        return "spawn"
    return "fork"


def hang():
    while True:
        time.sleep(60)  # sleep-ok: a child (or an inner test) that idles until it is stopped or interrupted


def ignore_sigint_and_sigterm():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def behave(mode):
    """obey (stop on SIGINT), exit3, stubborn (ignore SIGINT and SIGTERM), grandchild (fork a stubborn one)."""
    print(f"hello from the child, pid {os.getpid()}", flush=True)
    if mode == "exit3":
        print("exiting with code 3", flush=True)
        sys.exit(3)
    grandchild = "-"
    if mode == "grandchild":
        pid = os.fork()
        if pid == 0:
            ignore_sigint_and_sigterm()
            hang()
        grandchild = str(pid)
    if mode == "stubborn":
        ignore_sigint_and_sigterm()
    print(f"ready by {how_started()}, grandchild {grandchild}", flush=True)
    hang()


class Child(multiprocessing.Process):
    def __init__(self, mode="obey"):
        super().__init__()
        self.mode = mode

    def run(self):
        behave(self.mode)


def command(mode="obey"):
    """This very module as a script: it acts out ``mode`` before it imports anything heavy."""
    return [sys.executable, __file__, mode]


if __name__ == "__main__":
    behave(sys.argv[1])
    sys.exit(0)

import pytest
import zmq
from zmqtest import ProcessTest


def start(factory, target, **options):
    """Start ``target``, wait until it is ready, note its pid (and its grandchild's) in pids.txt."""
    handle = factory(target, ready=READY, **options)
    with PIDS.open("a") as pids:
        pids.write(f"{handle.pid}\\n")
        if handle.match.group(2) != "-":
            pids.write(f"{handle.match.group(2)}\\n")
    return handle
'''


def inner_module(tests: str) -> str:
    """An inner test module: the children above, then ``tests``."""
    return CHILDREN + "\n\n" + textwrap.dedent(tests)


# --- helpers -------------------------------------------------------------------------------------------------------


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def marked(mark: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``MARK=mark``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def left_behind(mark: str, seconds: float = GONE_DEADLINE) -> list[str]:
    """What still carries ``mark`` after ``seconds`` (at once, if nothing does); described for an assertion."""
    deadline = time.monotonic() + seconds
    while True:
        left = marked(mark)
        if not left or time.monotonic() >= deadline:
            return [described for described in map(describe, left) if described]
        psutil.wait_procs(left, timeout=min(0.1, max(0.0, deadline - time.monotonic())))


def describe(proc: psutil.Process) -> str | None:
    """``pid: command line``, or ``None`` if it has gone meanwhile."""
    try:
        return f"{proc.pid} ({proc.status()}): {' '.join(proc.cmdline())}"
    except psutil.Error:
        return None


def recorded_pids(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "pids.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A value unique to this test in ``MARK``, inherited by every process of the inner runs.

    At teardown, whatever still carries it is SIGKILLed, so that a failing test leaves nothing behind either.
    """
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARK, value)
    yield value
    for proc in marked(value):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], seconds: float, output: Path) -> None:
    """Wait until ``path`` exists; fail (quoting ``output``) if ``proc`` ends first, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() >= deadline:
            pytest.fail(f"{path.name} did not appear within {seconds:g} s; the inner run says:\n{output.read_text()}")
        try:
            code = proc.wait(timeout=0.02)  # the pause between looks: ends early if the inner run ends
        except subprocess.TimeoutExpired:
            continue
        if not path.exists():
            pytest.fail(f"the inner run ended ({code}) before {path.name} appeared; it says:\n{output.read_text()}")


# --- the fixture in tests of both kinds ----------------------------------------------------------------------------

ECHO_TESTS = """
class Echo(multiprocessing.Process):
    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.REP)
        sock.bind(self.endpoint)
        while True:
            sock.send(sock.recv())


class TestEcho(ProcessTest):
    def test_conversation(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
        client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
        echo = zmq_process_factory(Echo(zmq_endpoint), ready=client)
        yield ("send", client, [], {"n": 1})
        reply = yield ("recv", client)
        assert reply == [{"n": 1}]
        assert echo.name == "Echo" and echo.kind == "process" and echo.returncode is None


def test_plain(zmq_process_factory):
    from zmqtest import ProcessManager

    assert isinstance(zmq_process_factory, ProcessManager)
    child = start(zmq_process_factory, Child())
    script = start(zmq_process_factory, command())
    assert (child.kind, script.kind) == ("process", "command")
    assert child.is_alive() and script.is_alive()
    assert zmq_process_factory.processes == [child, script]
"""


def test_the_fixture_works_in_a_process_test_and_in_a_plain_test(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_inner=inner_module(ECHO_TESTS))
    run(pytester).assert_outcomes(passed=2)
    assert len(recorded_pids(pytester)) == 2
    assert left_behind(mark) == []


# --- reports -------------------------------------------------------------------------------------------------------

REPORT_TESTS = """
def test_fails(zmq_process_factory):
    start(zmq_process_factory, Child(), name="talker")
    start(zmq_process_factory, command())
    assert False, "the test's own failure"
"""


def test_a_failing_tests_report_shows_each_process_with_its_state_and_output(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(REPORT_TESTS))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: the test's own failure",
            "*- zmqtest process talker (call) -*",
            "talker (pid *, running)",
            "--- stdout of talker (last 20 lines of *talker-1.stdout) ---",
            "hello from the child, pid *",
            "ready by forkserver, grandchild -",
            "*- zmqtest process test_inner.py (call) -*",
            "test_inner.py (pid *, running)",
            "--- stdout of test_inner.py (last 20 lines of *test_inner.py-1.stdout) ---",
            "hello from the child, pid *",
        ]
    )


SHARED_TESTS = """
from zmqtest import ProcessManager


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    with ProcessManager(tmp_path_factory.mktemp("shared")) as processes:
        yield start(processes.start, Child(), name="shared")


def test_passes(shared, zmq_process_factory):
    start(zmq_process_factory, Child(), name="own")


def test_fails(shared, zmq_process_factory):
    start(zmq_process_factory, Child(), name="own")
    assert False, "the test's own failure"
"""


def test_a_failing_tests_report_shows_a_wider_fixtures_process_too(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_inner=inner_module(SHARED_TESTS))
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: the test's own failure",
            "*- zmqtest process own (call) -*",
            "own (pid *, running)",
            "*- zmqtest process shared (call) -*",
            "(started by a fixture's own ProcessManager, not zmq_process_factory: the tail may hold earlier output)",
            "shared (pid *, running)",
            "--- stdout of shared (last 20 lines of *shared-1.stdout) ---",
            "hello from the child, pid *",
        ]
    )
    assert result.stdout.str().count("- zmqtest process shared (call) -") == 1  # not in the passing test's report
    assert len(recorded_pids(pytester)) == 3  # the shared one started once
    assert left_behind(mark) == []


EXIT3_TESTS = """
@pytest.fixture(params=["process", "command"])
def target(request):
    return Child("exit3") if request.param == "process" else command("exit3")


def test_exit_3_unexpected(zmq_process_factory, target):
    assert zmq_process_factory(target).wait(30) == 3


def test_exit_3_expected(zmq_process_factory, target):
    assert zmq_process_factory(target, expect_exit=3).wait(30) == 3
"""


def test_a_child_that_exits_by_itself_fails_the_test_at_teardown_unless_expected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(EXIT3_TESTS))
    result = run(pytester)
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_exit_3_unexpected[[]process[]]*",
            "E*ProcessExited: 1 process ended unexpectedly (start(..., expect_exit=...) says when an end is expected):",
            "*Child (pid *, exited with code 3) ended before the test stopped it",
            "*- zmqtest process Child (teardown) -*",
            "Child (pid *, exited with code 3)*",
            "*exiting with code 3",
            "*ERROR at teardown of test_exit_3_unexpected[[]command[]]*",
            "*test_inner.py (pid *, exited with code 3) ended before the test stopped it",
        ]
    )


CRASH_IN_STOP_TESTS = """
def crash(signum, frame):
    raise RuntimeError("boom while stopping")


class Crasher(Child):
    def run(self):
        signal.signal(signal.SIGINT, crash)
        behave("obey")


def test_stopped_cleanly(zmq_process_factory):
    start(zmq_process_factory, Child())
    start(zmq_process_factory, command())


def test_crashes_when_stopped(zmq_process_factory):
    start(zmq_process_factory, Crasher(), name="crasher")
"""


def test_a_child_that_crashes_while_being_stopped_fails_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(CRASH_IN_STOP_TESTS))
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_crashes_when_stopped*",
            "E*ProcessExited: 1 process ended unexpectedly (start(..., expect_exit=...) says when an end is expected):",
            "*crasher (pid *, exited with code 1) when stopped by SIGINT*",
            "*RuntimeError: boom while stopping",
        ]
    )


# --- the start method ----------------------------------------------------------------------------------------------

START_METHOD_TESTS = """
@pytest.mark.zmqtest({marker})
def test_start_method(zmq_process_factory):
    handle = start(zmq_process_factory, Child(), {argument})
    print(f"\\nSTARTED handle={{handle.start_method}} child={{handle.match.group(1)}}")
"""


@pytest.mark.parametrize(
    ("ini", "args", "marker", "argument", "expected"),
    [
        pytest.param(None, (), "", "", "forkserver", id="default"),
        pytest.param(None, ("--zmqtest-start-method=spawn",), "", "", "spawn", id="command-line"),
        pytest.param("fork", (), "", "", "fork", id="ini"),
        pytest.param("fork", ("--zmqtest-start-method=spawn",), "", "", "spawn", id="command-line-over-ini"),
        pytest.param(
            "fork", ("--zmqtest-start-method=spawn",), "start_method='forkserver'", "", "forkserver", id="marker"
        ),
        pytest.param(None, (), "start_method='spawn'", "start_method='fork'", "fork", id="argument"),
    ],
)
def test_the_start_method_setting_reaches_the_process(
    pytester: pytest.Pytester,
    ini: str | None,
    args: tuple[str, ...],
    marker: str,
    argument: str,
    expected: str,
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nzmqtest_start_method = {ini}\n")
    pytester.makepyfile(test_inner=inner_module(START_METHOD_TESTS.format(marker=marker, argument=argument)))
    result = run(pytester, "-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"STARTED handle={expected} child={expected}"])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            "command-line",
            "ERROR: invalid start method 'thread' from command line option --zmqtest-start-method: "
            "expected one of fork, forkserver, spawn",
        ),
        (
            "ini",
            "ERROR: invalid start method 'thread' from ini option zmqtest_start_method in tox.ini: "
            "expected one of fork, forkserver, spawn",
        ),
    ],
)
def test_a_bad_start_method_is_a_usage_error_naming_its_source(
    pytester: pytest.Pytester, where: str, message: str
) -> None:
    if where == "ini":
        pytester.makeini("[pytest]\nzmqtest_start_method = thread\n")
    pytester.makepyfile(test_inner="def test_nothing(): pass")
    result = run(pytester, *(["--zmqtest-start-method=thread"] if where == "command-line" else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.lines


def test_a_bad_start_method_in_a_marker_fails_that_test_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest


        @pytest.mark.zmqtest(start_method="thread")
        def test_marked(zmq_process_factory):
            pass


        def test_unmarked(zmq_process_factory):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*invalid start method 'thread' from @pytest.mark.zmqtest on test_inner.py::test_marked "
            "(start_method=...): expected one of fork, forkserver, spawn*"
        ]
    )


# --- no orphans ----------------------------------------------------------------------------------------------------

FAILING_TESTS = """
def test_assertion(zmq_process_factory):
    start(zmq_process_factory, Child(), start_method="fork")
    start(zmq_process_factory, command())
    assert False, "inner assertion"


def test_exception(zmq_process_factory):
    start(zmq_process_factory, Child(), start_method="spawn")
    raise RuntimeError("inner exception")


def test_stubborn(zmq_process_factory):
    start(zmq_process_factory, Child("stubborn"), start_method="forkserver")
    start(zmq_process_factory, command("stubborn"))
    assert False, "inner stubborn"


def test_grandchild(zmq_process_factory):
    start(zmq_process_factory, Child("grandchild"), start_method="fork")
    start(zmq_process_factory, command("grandchild"))
    assert False, "inner grandchild"


class TestConversation(ProcessTest):
    def test_no_reply(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
        start(zmq_process_factory, Child("grandchild"), start_method="forkserver")
        client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, timeout=0.1)
        yield ("send", client, [], ["anyone?"])
        yield ("recv", client)
"""


@pytest.mark.timeout(120)
def test_no_process_is_left_after_a_run_of_failing_tests(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_inner=inner_module(FAILING_TESTS))
    result = run(pytester, "--zmqtest-stop-grace=0.2")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines_random(
        ["*inner assertion*", "*inner exception*", "*inner stubborn*", "*inner grandchild*", "*SocketTimeout*"]
    )
    assert len(recorded_pids(pytester)) == 11  # 8 children and 3 grandchildren
    assert left_behind(mark) == []


CTRL_C_TESTS = """
def test_hangs(zmq_endpoint_factory, zmq_process_factory):
    zmq_endpoint_factory.ipc("somewhere")
    Path("ipc.txt").write_text(zmq_endpoint_factory.ipc_dir)
    start(zmq_process_factory, command("grandchild"))
    start(zmq_process_factory, Child("grandchild"), start_method="forkserver")
    start(zmq_process_factory, Child("obey"), start_method="spawn")
    # stopped first (latest first): its stop action says that teardown has begun, then it holds it up
    start(zmq_process_factory, Child("stubborn"), start_method="fork", stop=Path("stopping").touch)
    Path("running").touch()
    hang()
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("presses", [1, 2], ids=["once", "twice"])
def test_ctrl_c_leaves_no_process(pytester: pytest.Pytester, mark: str, presses: int) -> None:
    """SIGINT to the inner pytest's process group, as a terminal's Ctrl-C; the second one during teardown."""
    pytester.makepyfile(test_inner=inner_module(CTRL_C_TESTS))
    output = pytester.path / "output.txt"
    with output.open("w") as out:
        proc = pytester.popen(
            [
                sys.executable,
                "-m",
                "pytest",
                f"--basetemp={pytester.path / 'tmp'}",
                *INNER,
                "--zmqtest-stop-grace=0.5",
                "test_inner.py",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_file(pytester.path / "running", proc, 30, output)
        os.killpg(proc.pid, signal.SIGINT)
        if presses == 2:
            wait_for_file(pytester.path / "stopping", proc, 15, output)
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = output.read_text()
    # Twice: the Ctrl-C held back while the processes were stopped adds nothing to the one pytest handles already,
    # so every other fixture still tears down (the ipc directory goes) and pytest reports the interruption.
    assert code == pytest.ExitCode.INTERRUPTED, text
    assert re.search(r"^!+ KeyboardInterrupt !+$", text, re.MULTILINE), text
    assert re.search(r"^=+ .* in [0-9.]+s.* =+$", text, re.MULTILINE), text  # the summary line
    assert len(recorded_pids(pytester)) == 6, text
    assert left_behind(mark) == [], text
    ipc_dir = (pytester.path / "ipc.txt").read_text()
    assert ipc_dir, text
    assert not Path(ipc_dir).exists(), text


TIMEOUT_TESTS = """
def test_hangs(zmq_process_factory):
    start(zmq_process_factory, command("grandchild"))
    start(zmq_process_factory, Child("stubborn"), start_method="fork")
    Path("running").touch()
    hang()
"""


@pytest.mark.timeout(120)
def test_pytest_timeouts_signal_method_leaves_no_process(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_inner=inner_module(TIMEOUT_TESTS))
    result = run(pytester, "-p", "timeout", "--timeout=1", "--timeout-method=signal", "--zmqtest-stop-grace=0.2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout.*"])
    assert (pytester.path / "running").exists()
    assert len(recorded_pids(pytester)) == 3
    assert left_behind(mark) == []


TEARDOWN_TIMEOUT_TESTS = """
def test_slow_teardown(zmq_process_factory):
    start(zmq_process_factory, Child(), start_method="fork")
    # stopped first (latest first), it holds teardown up (stop grace 30 s) until pytest-timeout fires
    start(zmq_process_factory, Child("stubborn"), start_method="fork")


def test_next(zmq_process_factory):
    from zmqtest.logs import current_collector
    from zmqtest.waiting import any_watched

    left = [pid for pid in recorded_pids() if Path(f"/proc/{pid}").exists()]
    assert left == [], f"the previous test's processes are still there: {left}"
    assert any_watched() == () and current_collector() is None, "the previous test's watch is still on"
    child = start(zmq_process_factory, Child())
    assert child.is_alive()


def recorded_pids():
    return [int(line) for line in PIDS.read_text().split()]
"""


@pytest.mark.timeout(120)
def test_pytest_timeout_firing_during_teardown_still_stops_every_process(pytester: pytest.Pytester, mark: str) -> None:
    """Its failure is a BaseException: the stop it interrupts is finished with SIGKILL, and so are the others."""
    pytester.makepyfile(test_inner=inner_module(TEARDOWN_TIMEOUT_TESTS))
    result = run(pytester, "-p", "timeout", "--timeout=3", "--timeout-method=signal", "--zmqtest-stop-grace=30")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_slow_teardown*", "*Failed: Timeout (>3.0s) from pytest-timeout*"]
    )
    assert len(recorded_pids(pytester)) == 3
    assert left_behind(mark) == []


SELF_FORKING_TESTS = """
import select


def test_forks(zmq_process_factory, zmq_socket_factory, zmq_endpoint_factory, zmq_authenticator):
    zmq_socket_factory(zmq.PULL, bind=zmq_endpoint_factory.ipc("sink"))
    daemon = Child()
    daemon.daemon = True  # multiprocessing's exit handler terminates a daemon child
    processes = [start(zmq_process_factory, daemon), start(zmq_process_factory, command())]
    zmq_process_factory.logs.drain()
    fork = os.fork()
    if fork == 0:
        sys.exit(0)  # in the fork, through pytest: a report, the fixtures' teardown, the session's end, the exit
    pidfd = os.pidfd_open(fork)
    try:
        ended = select.select([pidfd], [], [], 30)[0]
    finally:
        os.close(pidfd)
    if not ended:
        os.kill(fork, signal.SIGKILL)
    os.waitpid(fork, 0)
    assert ended, "the fork was still running after 30 s"
    assert [process.poll() for process in processes] == [None, None], "the fork stopped the test's processes"
    assert Path(zmq_endpoint_factory.ipc_dir).is_dir(), "the fork removed the test's ipc directory"
"""


@pytest.mark.timeout(120)
def test_a_test_that_forks_itself_leaves_its_processes_to_the_test(pytester: pytest.Pytester, mark: str) -> None:
    """The fork tears down too: it must leave the test's processes, sockets and files be, and end at once."""
    pytester.makepyfile(test_inner=inner_module(SELF_FORKING_TESTS))
    result = run(pytester)
    result.assert_outcomes(passed=1)  # the test's own report: the fork's comes first ("failed": SystemExit)
    result.stdout.fnmatch_lines(["*FAILED test_inner.py::test_forks - SystemExit: 0", "*1 passed*"])
    assert "Exception ignored" not in result.stderr.str(), result.stderr.str()
    assert len(recorded_pids(pytester)) == 2
    assert left_behind(mark) == []


# --- memory --------------------------------------------------------------------------------------------------------

CHATTY_TESTS = """
import gc
import sys
import weakref

import pytest

LOG_APP = {log_app!r}
EARLIER = []
\"\"\"Weak references to the managers and log collectors of the tests that ran before.\"\"\"


@pytest.mark.parametrize("number", range(30))
def test_chatty(zmq_process_factory, number):
    gc.collect()
    alive = [name for ref, name in EARLIER if ref() is not None]
    assert alive == [], f"still in memory: {{alive}}"
    zmq_process_factory([sys.executable, LOG_APP, "--exit-after", "2000"], expect_exit=0)
    zmq_process_factory.logs.wait_for("last 1999", timeout=30)
    EARLIER.append((weakref.ref(zmq_process_factory), f"the ProcessManager of test {{number}}"))
    EARLIER.append((weakref.ref(zmq_process_factory.logs), f"the LogCollector of test {{number}}"))
"""


@pytest.mark.timeout(120)
def test_a_tests_process_manager_and_its_log_records_are_freed_once_its_report_is_made(
    pytester: pytest.Pytester,
) -> None:
    """Items live all session: a manager kept on one (with up to 100,000 log records) would grow memory per test."""
    log_app = str(Path(__file__).parent / "apps" / "log_app.py")
    pytester.makepyfile(test_inner=CHATTY_TESTS.format(log_app=log_app))
    result = run(pytester)
    result.assert_outcomes(passed=30)
