"""Figure 5: pytest's memory stays flat over 100 tests whose process logs thousands of records.

A generated project of 100 tests, each starting a process under test that forwards
3,000 log records to the test through ``zmqtest.logs.forward()`` (tests/apps/log_app.py,
in turns a command line and a ``Process`` started by fork) and waiting until the last
one has arrived. Its own conftest reads the resident set size of the pytest process
(``/proc/self/statm``) after test 1, 10 and 100, each time after a garbage collection
(what is still referenced is what counts). The figure compares test 10 with test 100:
by then the imports, the forkless helpers (reaper, log sockets) and the allocator's
first arenas are in place, so what grows after is what each test leaves behind.

The defect this guards against kept every test's process manager and its log
collector (all their records) on the test's item, which lives all session: about
10 MB per test with 20,000 records, so ~1.5 MB per test here, ~135 MB over 90 tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from inner_runs import OUTER_DEADLINE, InnerProject

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

TESTS = 100
RECORDS = 3000
AFTER = (1, 10, TESTS)
"""After which tests the resident set size is read."""
GROWTH_BOUND = 30 * 2**20
"""Bytes the resident set may grow from test 10 to test 100."""
LOG_APP = Path(__file__).parents[1] / "apps" / "log_app.py"

INNER_CONFTEST = f"""
import gc
import os

import pytest

AFTER = {AFTER!r}
DONE = []


def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    result = yield  # the test's reports are made by now
    DONE.append(item.nodeid)
    if len(DONE) in AFTER:
        gc.collect()
        with open("rss", "a") as note:
            note.write(f"{{len(DONE)}} {{resident()}}\\n")
    return result
"""

INNER_TESTS = f"""
import sys

import pytest

from log_app import LogApp

RECORDS = {RECORDS}


@pytest.mark.parametrize("n", range({TESTS}))
def test_chatty(n, zmq_process_factory):
    if n % 2:
        chatty = zmq_process_factory([sys.executable, "log_app.py", "--exit-after", str(RECORDS)], expect_exit=0)
    else:
        chatty = zmq_process_factory(LogApp(exit_after=RECORDS), start_method="fork", expect_exit=0)
    zmq_process_factory.logs.wait_for(f"last {{RECORDS - 1}}", timeout=30)
    assert len(zmq_process_factory.logs.entries) >= RECORDS
    assert chatty.wait(30) == 0  # ended by itself: teardown's SIGINT would not meet it on its way out
"""


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def test_memory_stays_flat_over_100_tests_with_a_chatty_process(
    project: InnerProject, figure: Callable[[int, str, str], None]
) -> None:
    shutil.copy(LOG_APP, project.path / LOG_APP.name)
    project.pytester.makeconftest(INNER_CONFTEST)
    project.pytester.makepyfile(test_inner=INNER_TESTS)
    result, seconds = project.run("serial", "-q")
    resident = {int(after): int(size) for after, size in (line.split() for line in project.notes("rss"))}
    growth = resident.get(TESTS, 0) - resident.get(10, 0)
    figure(
        5,
        f"pytest's resident memory after 1 / 10 / {TESTS} tests, each with a process logging {RECORDS:,} records",
        " / ".join(megabytes(resident[after]) if after in resident else "?" for after in AFTER)
        + f": {'+' if growth >= 0 else ''}{megabytes(growth)} from test 10 to test {TESTS} "
        f"(bound {megabytes(GROWTH_BOUND)}); in {seconds:.1f} s",
    )
    result.assert_outcomes(passed=TESTS)
    assert sorted(resident) == list(AFTER), result.stdout.str()[-3000:]
    assert growth < GROWTH_BOUND
