"""Figures 7 and 10: a test interrupted while its processes are being stopped leaves nothing behind.

**Figure 7, pytest-timeout firing during teardown.** A generated test starts three
processes and passes; the last one (stopped first) ignores SIGINT and the stop grace
is 30 s, so its teardown is still waiting when pytest-timeout fires, 3 s into the test.

- Signal method: the timeout's failure (a ``BaseException``) interrupts the stop; the
  rest of the teardown must still stop every process, and the next test must pass,
  seeing none of the previous test's processes (nor its watch).
- Thread method: pytest-timeout ends the whole pytest with ``os._exit``, in the middle
  of the stop. Nothing of zmqtest's teardown or ``atexit`` runs: only the reaper
  (zmqtest/reaper.py, the backstop process) is left to clear the processes.

**Figure 10, Ctrl-C twice.** A generated test binds an ipc endpoint, starts processes
(one with a grandchild, stubborn ones) and idles; SIGINT goes to its whole process group
(as a terminal sends it) once it runs, and again once its processes are being stopped.
pytest must still tear everything down (the ipc directory is removed), print its
summary line, and leave no process. Under pytest-xdist the second Ctrl-C also reaches
the controller while it waits for its workers to finish, and xdist ends it with a raw
traceback and no summary line (it does so without zmqtest too: a worker whose fixture
takes 3 s to tear down, Ctrl-C twice); when the second lands while the controller is still
formatting the first (a slow, loaded machine), not even its ``!!! KeyboardInterrupt !!!``
line is printed (seen in CI, 2026-12-04). So both lines are required of the serial run only;
what zmqtest answers for (the ipc directory, the processes) is required of both.

Each run is watched from outside (:class:`~inner_runs.Ledger`), and what is left
is counted 10 s after it at most.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from inner_runs import OUTER_DEADLINE, VARIANTS, InnerProject, Ledger, run_watched, wait_for_file

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

RUN_DEADLINE = 90.0
"""Seconds one inner run may take."""

COMMON = """
import os
from pathlib import Path

import pytest

from children import Child, command, idle

READY = r"^ready(?:, pid (\\d+))?"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
PIDS = Path(f"pids-{WORKER}")


def start(factory, target, **options):
    \"\"\"Start ``target``, wait until it is ready, write down its pid (and its grandchild's).\"\"\"
    handle = factory(target, ready=READY, **options)
    with PIDS.open("a") as pids:
        pids.write(f"{handle.pid}\\n")
        if handle.match.group(1) not in (None, str(handle.pid)):
            pids.write(f"{handle.match.group(1)}\\n")
    return handle


def alive(pid):
    \"\"\"Whether ``pid`` runs (a zombie does not: an orphan waits for the init process to reap it).\"\"\"
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except OSError:
        return False
"""

# --- figure 7 ------------------------------------------------------------------------------------------------------

TIMEOUT = 3
"""pytest-timeout's, in seconds: the processes have started long before (they take milliseconds)."""

TEARDOWN_TIMEOUT = """
@pytest.mark.timeout({timeout}, method="{method}")
@pytest.mark.zmqtest(stop_grace=30)
def test_slow_teardown(zmq_process_factory):
    start(zmq_process_factory, command("grandchild"))
    start(zmq_process_factory, Child("idle"), start_method="forkserver")
    # stopped first (latest first): it ignores SIGINT, which it gets for 30 s, until pytest-timeout fires
    start(zmq_process_factory, Child("deaf"), start_method="fork")


def test_next(zmq_process_factory):
    from zmqtest.logs import current_collector
    from zmqtest.waiting import any_watched

    before = [int(pid) for pid in PIDS.read_text().split()]
    left = [pid for pid in before if alive(pid)]
    assert left == [], f"the previous test's processes are still there: {{left}}"
    assert any_watched() == () and current_collector() is None, "the previous test's watch is still on"
    assert start(zmq_process_factory, Child("idle")).poll() is None
"""


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_no_process_is_left_when_pytest_timeout_fires_during_teardown(
    project: InnerProject, mark: str, figure: Callable[[int, str, str], None], method: str
) -> None:
    project.pytester.makepyfile(test_inner=COMMON + TEARDOWN_TIMEOUT.format(timeout=TIMEOUT, method=method))
    ledger = Ledger(mark)
    began = time.monotonic()
    output = run_watched(project, ledger, "serial", "-rA", output=project.path / "output", deadline=RUN_DEADLINE)
    seconds = time.monotonic() - began
    pids = [int(pid) for pid in project.notes("pids-")]
    ledger.add(pids, before=time.time())
    ended = time.monotonic()
    left = ledger.left()
    cleared = time.monotonic() - ended
    figure(
        7,
        f"processes left after pytest-timeout fired during a teardown stopping 3 processes (one ignoring SIGINT, "
        f"stop grace 30 s, timeout {TIMEOUT} s)",
        f"{len(left)} left of {len(ledger.seen)} seen from outside ({len(pids)} processes under test and "
        f"grandchildren the tests wrote down)"
        + ("; the next test passed" if method == "signal" and re.search(r"^PASSED .*::test_next", output, re.M) else "")
        + (f"; pytest ended by os._exit, the reaper cleared them within {cleared:.2f} s" if method == "thread" else "")
        + f"; in {seconds:.1f} s",
    )
    assert left == [], output
    if method == "signal":
        assert re.search(rf"^ERROR .*::test_slow_teardown - Failed: Timeout \(>{TIMEOUT:.1f}s\)", output, re.M), output
        assert re.search(r"^PASSED .*::test_next$", output, re.M), output
        assert len(pids) == 5, output  # 3 processes and a grandchild, then the next test's process
    else:
        assert re.search(r"\++ Timeout \++$", output, re.M), output
        assert 'call_and_report(item, "teardown"' in output, output  # the stack dumped: it fired during teardown
        assert "test_next" not in output, output  # the session ended with the timeout
        assert len(pids) == 4, output


# --- figure 10 -----------------------------------------------------------------------------------------------------

CTRL_C = """
def test_interrupted(zmq_process_factory, zmq_endpoint_factory):
    zmq_endpoint_factory.ipc("somewhere")
    Path(f"ipc-{WORKER}").write_text(zmq_endpoint_factory.ipc_dir)
    start(zmq_process_factory, command("grandchild"))
    start(zmq_process_factory, Child("grandchild"), start_method="forkserver")
    start(zmq_process_factory, Child("stubborn"), start_method="spawn")
    # stopped first (latest first): its stop action says that teardown has begun, then it holds it up
    start(zmq_process_factory, Child("stubborn"), start_method="fork", stop=Path(f"stopping-{WORKER}").touch)
    Path(f"running-{WORKER}").touch()
    idle()
"""
SUMMARY = re.compile(r"^=+ .*\bin [0-9.]+s\b.* =+$", re.MULTILINE)
"""pytest's summary line: ``==== 1 error in 3.21s ====``."""


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ctrl_c_twice_removes_the_ipc_directory_prints_the_summary_and_leaves_no_process(
    project: InnerProject, mark: str, figure: Callable[[int, str, str], None], variant: str
) -> None:
    project.pytester.makepyfile(test_inner=COMMON + CTRL_C)
    ledger = Ledger(mark)
    pressed: list[str] = []

    def press_ctrl_c_twice(proc: subprocess.Popen[bytes]) -> None:
        for stage in ("running", "stopping"):
            assert wait_for_file(project.path, f"{stage}-", proc, RUN_DEADLINE), f"the run ended before {stage}"
            os.killpg(proc.pid, signal.SIGINT)
            pressed.append(stage)

    began = time.monotonic()
    output = run_watched(
        project,
        ledger,
        variant,
        "--zmqtest-stop-grace=0.5",
        output=project.path / "output",
        during=press_ctrl_c_twice,
        deadline=RUN_DEADLINE,
    )
    seconds = time.monotonic() - began
    pids = [int(pid) for pid in project.notes("pids-")]
    ledger.add(pids, before=time.time())
    left = ledger.left()
    ipc_dirs = [Path(line) for line in project.notes("ipc-")]
    ipc_left = [str(path) for path in ipc_dirs if path.exists()]
    summary = SUMMARY.findall(output)
    missing = "not printed (xdist's controller ends with its own traceback)" if variant != "serial" else "missing"
    figure(
        10,
        "Ctrl-C twice (while the test runs, and while its processes are being stopped)",
        f"ipc directory {'left: ' + ', '.join(ipc_left) if ipc_left else 'removed'}; summary line "
        f"{'printed (' + summary[-1].strip('= ') + ')' if summary else missing}; {len(left)} processes left of "
        f"{len(ledger.seen)} seen from outside ({len(pids)} under test and grandchildren); in {seconds:.1f} s",
    )
    assert pressed == ["running", "stopping"], output
    assert ipc_dirs, output
    assert ipc_left == [], output
    assert left == [], output
    assert len(pids) == 6, output
    if variant == "serial":  # see the module docstring for xdist's controller
        assert re.search(r"^!+ KeyboardInterrupt !+$", output, re.MULTILINE), output
        assert summary, output
