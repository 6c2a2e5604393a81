"""zmqtest's own per-test deadline (setting ``deadline``), from inner pytest runs with real processes.

Each inner test starts a real process (a command line that idles until stopped) and
records its pid; the deadline must fail the test wherever it hangs (a zmqtest receive
with a long socket timeout, the same in a ProcessTest generator test, a raw pyzmq
``recv()``, ``time.sleep``, a fixture's setup, a fixture's teardown, zmqtest's own
teardown of a process that ignores SIGINT and SIGTERM), say so with the transcript and
the processes' states, and leave no process behind. The inner runs are subprocesses
with a deadline of their own.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.pids import wait_dead

DEADLINE = 2.0
"""The inner tests' deadline (seconds): long enough for a command line to start and become ready."""
SUBPROCESS_DEADLINE = 90.0
"""Seconds an inner pytest run may take before it is killed (within the suite's own pytest-timeout of 120 s)."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:timeout")

INNER_MODULE = """
import signal
import sys
import time
from pathlib import Path

import pytest
import zmq

from zmqtest import ProcessTest

PIDS = Path(__file__).with_name("pids.txt")
IDLER = "import time; print('ready', flush=True); time.sleep(600)"  # sleep-ok: idles until it is stopped
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ready', flush=True); time.sleep(600)"  # sleep-ok: idles until it is killed
)


def start(factory, code=IDLER, name="idler"):
    process = factory([sys.executable, "-c", code], ready="^ready$", name=name)
    with PIDS.open("a") as pids:
        pids.write(f"{process.pid}\\n")
    return process
"""

STUCK = """
def test_zmqtest_recv(zmq_process_factory, zmq_socket_factory, zmq_endpoint):
    start(zmq_process_factory)
    sock = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, timeout=600, name="sink")
    sock.recv()


def test_raw_recv(zmq_process_factory, zmq_context, zmq_endpoint):
    start(zmq_process_factory)
    sock = zmq_context.socket(zmq.PULL)
    sock.bind(zmq_endpoint)
    sock.recv()


def test_sleep(zmq_process_factory):
    start(zmq_process_factory)
    time.sleep(600)  # sleep-ok: hangs on purpose


def test_wait_until(zmq_process_factory):
    from zmqtest import wait_until

    start(zmq_process_factory)
    wait_until(lambda: time.sleep(0.5), timeout=600)  # sleep-ok: a slow condition, never true


@pytest.fixture
def slow_setup(zmq_process_factory):
    start(zmq_process_factory)
    time.sleep(600)  # sleep-ok: hangs on purpose
    yield


def test_setup(slow_setup):
    pass


@pytest.fixture
def slow_teardown(zmq_process_factory):
    start(zmq_process_factory)
    yield
    time.sleep(600)  # sleep-ok: hangs on purpose


def test_teardown(slow_teardown):
    pass


def test_stubborn_at_teardown(zmq_process_factory):
    start(zmq_process_factory, STUBBORN, name="stubborn")


def test_swallowed(zmq_process_factory):
    start(zmq_process_factory)
    try:
        time.sleep(600)  # sleep-ok: hangs on purpose
    except Exception:
        pass


def test_in_time(zmq_process_factory):
    start(zmq_process_factory)


class TestGenerator(ProcessTest):
    def test_yield_recv(self, zmq_process_factory, zmq_socket_factory, zmq_endpoint):
        start(zmq_process_factory)
        sock = zmq_socket_factory(zmq.PULL, bind=zmq_endpoint, timeout=600, name="sink")
        yield ("recv", sock)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*INNER, *args, timeout=SUBPROCESS_DEADLINE)


def recorded_pids(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "pids.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def assert_none_left(pytester: pytest.Pytester, count: int) -> None:
    """Every process the inner run started is gone (the reaper has no part: they were gone as each test ended)."""
    pids = recorded_pids(pytester)
    assert len(pids) == count, pids
    assert wait_dead(pids, 10) == []


def test_a_test_stuck_anywhere_fails_at_its_deadline_with_the_transcript_and_the_process_states(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_inner=INNER_MODULE + STUCK)
    result = run(pytester, f"--zmqtest-deadline={DEADLINE:g}", "--zmqtest-stop-grace=30", "-rA")
    result.assert_outcomes(passed=3, failed=6, errors=3)
    text = result.stdout.str()
    message = f"*DeadlineExceeded: zmqtest deadline of {DEADLINE:g} s exceeded during {{phase}} of test_inner.py::{{}}*"
    for test, phase, line in [
        ("test_zmqtest_recv", "call", "sock.recv()"),
        ("test_raw_recv", "call", "sock.recv()"),
        ("test_sleep", "call", "time.sleep(600)*"),  # sleep-ok: a line of the report
        ("test_wait_until", "call", "wait_until(*"),
        ("TestGenerator::test_yield_recv", "call", 'yield ("recv", sock)'),
        ("test_setup", "setup", "time.sleep(600)*"),  # sleep-ok: a line of the report
        ("test_teardown", "teardown", "time.sleep(600)*"),  # sleep-ok: a line of the report
    ]:
        where = "at teardown of" if phase == "teardown" else ("at setup of" if phase == "setup" else "")
        result.stdout.fnmatch_lines(
            [
                f"*{'ERROR ' + where if where else ''}*{test.replace('::', '.')}*",  # the report's headline
                f">*{line}",  # where the main thread was
                message.format(test, phase=phase),
                "*processes under test when it fired:",
                "*idler (pid *, running)",
                f"*zmqtest transcript ({phase})*",
                f"*zmqtest deadline of {DEADLINE:g} s exceeded during {phase}*",  # the transcript shows it
            ]
        )
    # zmqtest's teardown of a process that ignores SIGINT and SIGTERM (stop grace 30 s): the stop is cut, it is killed
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_stubborn_at_teardown*",
            f"*zmqtest deadline of {DEADLINE:g} s exceeded during teardown of *::test_stubborn_at_teardown*",
            "*stubborn (pid *, running)*",
        ]
    )
    # a test that swallows it fails all the same
    result.stdout.fnmatch_lines(
        [
            "*_ test_swallowed _*",
            f"zmqtest deadline of {DEADLINE:g} s exceeded during call of test_inner.py::test_swallowed",
        ]
    )
    assert "FAILED test_inner.py::test_swallowed" in text, text
    assert "PASSED test_inner.py::test_in_time" in text, text
    assert_none_left(pytester, 10)


SLEEPS = """
def test_sleeps(zmq_process_factory):
    start(zmq_process_factory)
    time.sleep(600)  # sleep-ok: hangs on purpose


@pytest.mark.zmqtest(deadline=1.5)
def test_marked(zmq_process_factory):
    start(zmq_process_factory)
    time.sleep(600)  # sleep-ok: hangs on purpose
"""


@pytest.mark.parametrize(
    ("how", "seconds"),
    [
        ("command line", "2.5"),
        ("ini", "2.5"),
        ("-o", "2.5"),
    ],
)
def test_the_deadline_comes_from_the_command_line_the_ini_file_or_a_marker(
    pytester: pytest.Pytester, how: str, seconds: str
) -> None:
    pytester.makepyfile(test_inner=INNER_MODULE + SLEEPS)
    args = []
    if how == "command line":
        args = [f"--zmqtest-deadline={seconds}"]
    elif how == "ini":
        pytester.makeini(f"[pytest]\nzmqtest_deadline = {seconds}\n")
    else:
        args = ["-o", f"zmqtest_deadline={seconds}"]
    result = run(pytester, *args)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*zmqtest deadline of 2.5 s exceeded during call of test_inner.py::test_sleeps*",
            "*zmqtest deadline of 1.5 s exceeded during call of test_inner.py::test_marked*",  # the marker wins
        ]
    )
    assert_none_left(pytester, 2)


def test_a_marker_turns_the_deadline_off_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner=INNER_MODULE
        + """
@pytest.mark.zmqtest(deadline="off")
def test_takes_longer(zmq_process_factory):
    start(zmq_process_factory)
    time.sleep(1.5)  # sleep-ok: the workload, longer than the command line's deadline
"""
    )
    result = run(pytester, "--zmqtest-deadline=0.5")
    result.assert_outcomes(passed=1)
    assert_none_left(pytester, 1)


@pytest.mark.parametrize(
    ("args", "ini", "error"),
    [
        (["--zmqtest-deadline=soon"], "", "*invalid deadline 'soon' from command line option --zmqtest-deadline*"),
        ([], "zmqtest_deadline = -3", "*invalid deadline '-3' from ini option zmqtest_deadline in tox.ini*"),
        (["--zmqtest-deadline=inf"], "", "*invalid deadline 'inf'*expected a number of seconds, more than 0, or off*"),
    ],
)
def test_a_bad_deadline_is_a_usage_error_that_says_where_it_came_from(
    pytester: pytest.Pytester, args: list[str], ini: str, error: str
) -> None:
    pytester.makepyfile(test_inner="def test_nothing():\n    pass\n")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([error])


def test_a_bad_deadline_in_a_marker_fails_that_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
import pytest

@pytest.mark.zmqtest(deadline="soon")
def test_marked():
    pass
"""
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*invalid deadline 'soon' from @pytest.mark.zmqtest on test_inner.py::test_marked (deadline=...)*"]
    )


def test_the_deadline_works_under_xdist(pytester: pytest.Pytester) -> None:
    """xdist workers run their tests on their main thread: SIGALRM reaches them there."""
    pytester.makepyfile(test_inner=INNER_MODULE + SLEEPS)
    result = run(pytester, "-p", "xdist", "-n", "2", f"--zmqtest-deadline={DEADLINE:g}")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random(
        [
            f"*zmqtest deadline of {DEADLINE:g} s exceeded during call of test_inner.py::test_sleeps*",
            "*zmqtest deadline of 1.5 s exceeded during call of test_inner.py::test_marked*",
        ]
    )
    assert_none_left(pytester, 2)


def test_with_pytest_timeout_timing_the_test_zmqtests_deadline_stands_aside(pytester: pytest.Pytester) -> None:
    """One SIGALRM, one owner: pytest-timeout fires (though zmqtest's is shorter); the teardown stops the process."""
    pytester.makepyfile(test_inner=INNER_MODULE + SLEEPS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "-p",
        "timeout",
        "--timeout=1",
        "--timeout-method=signal",
        "--zmqtest-deadline=0.5",
        "-k",
        "test_sleeps",
        timeout=SUBPROCESS_DEADLINE,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
    result.stdout.no_fnmatch_line("*zmqtest deadline of*")
    assert_none_left(pytester, 1)


def test_once_fired_the_teardown_gets_a_grace_and_then_it_fires_again(pytester: pytest.Pytester) -> None:
    """Stuck in its call and again in its teardown: the teardown's grace (timeout + 2 stop graces + 10 s) runs out."""
    pytester.makepyfile(
        test_inner=INNER_MODULE
        + """
@pytest.fixture
def slow_teardown(zmq_process_factory):
    start(zmq_process_factory)
    yield
    time.sleep(600)  # sleep-ok: hangs on purpose


def test_stuck_twice(slow_teardown):
    time.sleep(600)  # sleep-ok: hangs on purpose
"""
    )
    result = run(pytester, "--zmqtest-deadline=1", "--zmqtest-timeout=0.1", "--zmqtest-stop-grace=0.1")
    result.assert_outcomes(failed=1, errors=1)
    again = "(it had fired already, and the 10.3 s grace it gives the rest of the test ran out)"
    result.stdout.fnmatch_lines_random(
        [
            "*zmqtest deadline of 1 s exceeded during call of test_inner.py::test_stuck_twice",
            "*ERROR at teardown of test_stuck_twice*",
            f"*zmqtest deadline of 1 s exceeded during teardown of test_inner.py::test_stuck_twice {again}",
        ]
    )
    assert_none_left(pytester, 1)


def test_without_pyzmq_or_processes(pytester: pytest.Pytester) -> None:
    """The deadline alone imports no pyzmq until it fires; a test without processes lists none."""
    pytester.makepyfile(
        test_inner="""
import sys
import time


def test_passes():
    assert "zmq" not in sys.modules


def test_sleeps():
    time.sleep(600)  # sleep-ok: hangs on purpose
"""
    )
    result = run(pytester, "--zmqtest-deadline=1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E * zmqtest deadline of 1 s exceeded during call of test_inner.py::test_sleeps"])
    result.stdout.no_fnmatch_line("*processes under test when it fired*")


def test_where_sigalrm_is_taken_the_deadline_is_not_armed_and_each_test_says_so(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import signal


def pytest_configure(config):
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
"""
    )
    pytester.makepyfile(test_inner="def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    result = run(pytester, "--zmqtest-deadline=1")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(["*zmqtest deadline of 1 s not enforced: SIGALRM is in use already*"])


def test_a_forked_process_under_test_keeps_its_own_sigalrm(pytester: pytest.Pytester) -> None:
    """A fork child inherits the deadline's handler, not its timer: its own ``alarm()`` ends it as by default."""
    pytester.makepyfile(
        test_inner=INNER_MODULE
        + """
import multiprocessing


class Alarmed(multiprocessing.Process):
    def run(self):
        print("ready", flush=True)
        signal.alarm(1)
        time.sleep(60)  # sleep-ok: the alarm ends it first


def test_alarm(zmq_process_factory):
    process = zmq_process_factory(Alarmed(), start_method="fork", ready="^ready$", expect_exit=True)
    with PIDS.open("a") as pids:
        pids.write(f"{process.pid}\\n")
    assert process.wait(30) == -signal.SIGALRM
"""
    )
    run(pytester, "--zmqtest-deadline=60").assert_outcomes(passed=1)
    assert_none_left(pytester, 1)


DEADLINE_UNITS = r"""
import signal
import threading

import pytest

from zmqtest.deadline import Deadline
from zmqtest.errors import DeadlineExceeded


@pytest.fixture
def deadline():
    armed = Deadline(600, "t.py::test_x", grace=30, states=lambda: ["idler (pid 1, running)"])
    assert armed.arm() is None
    yield armed
    armed.disarm()


def test_fired_inside_a_phase_it_raises_there_and_again_after_the_grace(deadline):
    deadline.enter("call")
    with pytest.raises(DeadlineExceeded, match=r"^zmqtest deadline of 600 s exceeded during call of t.py::test_x\n"
                       r"processes under test when it fired:\n  idler \(pid 1, running\)$"):
        signal.raise_signal(signal.SIGALRM)
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30  # the grace, counted from then
    deadline.leave()
    deadline.enter("teardown")
    with pytest.raises(DeadlineExceeded, match="during teardown .*it had fired already, and the 30 s grace"):
        signal.raise_signal(signal.SIGALRM)
    assert set(deadline.fired) == {"call", "teardown"}


def test_fired_between_phases_it_raises_as_the_next_setup_or_call_begins(deadline):
    deadline.enter("setup")
    deadline.leave()
    signal.raise_signal(signal.SIGALRM)  # pytest's own code runs: nothing is raised there
    with pytest.raises(DeadlineExceeded, match=r"(?s)during call of .*\nit fired between phases of the test, at:\n"):
        deadline.enter("call")
    assert "call" in deadline.fired


def test_fired_between_the_call_and_the_teardown_the_teardown_still_runs(deadline):
    deadline.enter("call")
    deadline.leave()
    signal.raise_signal(signal.SIGALRM)
    deadline.enter("teardown")  # raises nothing: the teardown must run
    assert "exceeded during teardown" in deadline.fired["teardown"]


def test_disarm_gives_sigalrm_back():
    before = signal.getsignal(signal.SIGALRM)
    armed = Deadline(600, "t", grace=1)
    assert armed.arm() is None
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    armed.disarm()
    armed.disarm()
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_it_is_not_armed_where_sigalrm_is_taken_or_off_the_main_thread():
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    try:
        assert Deadline(600, "t", grace=1).arm().startswith("SIGALRM is in use already")
    finally:
        signal.signal(signal.SIGALRM, previous)
    answers = []
    thread = threading.Thread(target=lambda: answers.append(Deadline(600, "t", grace=1).arm()))
    thread.start()
    thread.join()
    assert answers == ["tests run outside the main thread, and only the main thread gets signals"]
    assert signal.getsignal(signal.SIGALRM) is previous
"""


def test_the_deadline_itself(pytester: pytest.Pytester) -> None:
    """Deadline without pytest's protocol, fired at will with raise_signal (in a run of its own: SIGALRM is free)."""
    pytester.makepyfile(test_units=DEADLINE_UNITS)
    run(pytester, "-p", "no:zmqtest", "-W", "error").assert_outcomes(passed=5)


ARM_AND_DISARM = """
import time
from zmqtest.deadline import Deadline

rounds = 10_000
began = time.perf_counter()
for _ in range(rounds):
    deadline = Deadline(60, "test", grace=10)
    assert deadline.arm() is None
    deadline.disarm()
print((time.perf_counter() - began) / rounds * 1e6)
"""


def test_cost_of_an_armed_deadline_that_does_not_fire(pytester: pytest.Pytester) -> None:
    """A figure, printed and not asserted: arming and disarming alone, and 2,000 empty tests with and without one."""
    # in a fresh interpreter: here pytest-timeout (the suite's own last resort) holds SIGALRM
    armed = float(
        subprocess.run(
            [sys.executable, "-c", ARM_AND_DISARM], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    pytester.makepyfile(
        test_inner="import pytest\n\n\n@pytest.mark.parametrize('n', range(2000))\ndef test_empty(n):\n    pass\n"
    )
    seconds = {}
    for label, args in [("off", ()), ("armed", ("--zmqtest-deadline=60",))]:
        began = time.perf_counter()
        run(pytester, "-q", *args).assert_outcomes(passed=2000)
        seconds[label] = time.perf_counter() - began
    per_test = (seconds["armed"] - seconds["off"]) / 2000 * 1e6
    print(
        f"\narming and disarming a deadline: {armed:.1f} µs; 2,000 empty tests: {seconds['off']:.2f} s without a "
        f"deadline, {seconds['armed']:.2f} s with one armed ({per_test:+.1f} µs a test)"
    )
