"""Figures 6 and 11: how a test's processes are stopped at its end.

**Figure 6, a crash while being stopped is reported.** A generated test per start
method (fork, forkserver, spawn, and a command line) and per way to crash on the
test's SIGINT (``sys.exit(1)`` in the handler, a traceback, killed by SIGSEGV): the
test body passes, and its teardown must fail, naming the process, its exit status and
the stop that met the crash. A crash in a shutdown is a bug in the program under test
that a green run would hide (a broker that crashed in 8 of 10 runs left 10 of 10 green).

**Figure 11, stopping N stubborn processes takes about as long as stopping one.** Each
ignores SIGINT, so it ends only at the SIGTERM that follows a whole ``stop_grace``
(1 s here). A generated test starts one such process, another starts six (two
forks, a forkserver and a spawn child, two command lines); the conftest notes each
test's teardown time from its report. Stops that run one after another take six
grace periods (after a Ctrl-C, six stubborn processes took 17 s); concurrent stops, one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from inner_runs import OUTER_DEADLINE, VARIANTS, InnerProject

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

METHODS = ("fork", "forkserver", "spawn", "command")
CRASHES = {
    "crash-exit": ("exited with code 1",),
    "crash-raise": ("exited with code 1", "RuntimeError: crashed while stopping"),
    "crash-signal": ("killed by SIGSEGV",),
}
"""Mode of children.py → what the teardown error of its test must say (besides the stop)."""

CRASH_TESTS = f"""
import pytest

from children import Child, command

METHODS = {METHODS!r}
CRASHES = {tuple(CRASHES)!r}


@pytest.mark.parametrize("crash", CRASHES)
@pytest.mark.parametrize("method", METHODS)
def test_crash_when_stopped(method, crash, zmq_process_factory):
    target = command(crash) if method == "command" else Child(crash)
    options = {{}} if method == "command" else {{"start_method": method}}
    handle = zmq_process_factory(target, name=f"{{crash}}-{{method}}", ready=r"^ready", **options)
    assert handle.poll() is None
"""


def teardown_errors(report: ET.Element) -> dict[str, str]:
    """Test name → the text of its teardown error, from a JUnit XML report."""
    found = {}
    for case in report.iter("testcase"):
        for error in case.iter("error"):
            if "teardown" in (error.get("message") or ""):
                found[case.get("name", "?")] = (error.get("message") or "") + "\n" + (error.text or "")
    return found


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_crash_while_being_stopped_is_reported(
    project: InnerProject, figure: Callable[[int, str, str], None], variant: str
) -> None:
    project.pytester.makepyfile(test_inner=CRASH_TESTS)
    result, seconds = project.run(variant, "--junitxml=report.xml", "-q")
    errors = teardown_errors(ET.parse(project.path / "report.xml").getroot())
    cases = [(method, crash) for method in METHODS for crash in CRASHES]
    silent = []
    for method, crash in cases:
        text = errors.get(f"test_crash_when_stopped[{method}-{crash}]", "")
        says = (f"{crash}-{method} (pid ", "when stopped by SIGINT", *CRASHES[crash])
        if not all(part in text for part in says):
            silent.append(f"{method}-{crash}: {text[:2000] or 'no teardown error'}")
    figure(
        6,
        "crashes while being stopped (exit 1, a traceback, SIGSEGV on the test's SIGINT; fork, forkserver, spawn, "
        "command), reported by the test's teardown",
        f"{len(cases) - len(silent)} of {len(cases)} reported; in {seconds:.1f} s",
    )
    assert silent == [], "\n".join(silent)
    result.assert_outcomes(passed=len(cases), errors=len(cases))


# --- figure 11 -----------------------------------------------------------------------------------------------------

GRACE = 1.0
"""The stop grace of the stubborn processes: each needs SIGTERM after it."""
SIX = ("fork", "forkserver", "spawn", "command", "fork", "command")

STOP_TIME_CONFTEST = """
def pytest_runtest_logreport(report):
    if report.when == "teardown":
        with open("teardown", "a") as note:
            note.write(f"{report.nodeid.rpartition('::')[2]} {report.duration!r}\\n")
"""

STOP_TIME_TESTS = f"""
import pytest

from children import Child, command


def start(factory, method):
    if method == "command":
        return factory(command("deaf"), ready=r"^ready")
    return factory(Child("deaf"), ready=r"^ready", start_method=method)


@pytest.mark.zmqtest(stop_grace={GRACE})
def test_one(zmq_process_factory):
    start(zmq_process_factory, "fork")


@pytest.mark.zmqtest(stop_grace={GRACE})
def test_six(zmq_process_factory):
    handles = [start(zmq_process_factory, method) for method in {SIX!r}]
    assert [handle.poll() for handle in handles] == [None] * {len(SIX)}
"""


def test_stopping_six_stubborn_processes_takes_about_as_long_as_stopping_one(
    project: InnerProject, figure: Callable[[int, str, str], None]
) -> None:
    project.pytester.makeconftest(STOP_TIME_CONFTEST)
    project.pytester.makepyfile(test_inner=STOP_TIME_TESTS)
    result, seconds = project.run("serial", "-q")
    teardown = {name: float(duration) for name, duration in (line.split() for line in project.notes("teardown"))}
    six, one = teardown.get("test_six", float("nan")), teardown.get("test_one", float("nan"))
    figure(
        11,
        f"teardown of {len(SIX)} processes ignoring SIGINT (each ends at the SIGTERM after a {GRACE:g} s stop grace)",
        f"{six:.2f} s ({len(SIX)} processes; one: {one:.2f} s); in {seconds:.1f} s",
    )
    result.assert_outcomes(passed=2)
    assert six < 2 * one, (
        f"stopping {len(SIX)} stubborn processes took {six:.2f} s, one took {one:.2f} s: "
        f"the stops ran one after another, not concurrently"
    )
