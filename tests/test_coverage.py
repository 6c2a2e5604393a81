"""Coverage of the processes under test: code that runs only in them is in the test run's report.

Each test is a real inner pytest run under coverage (``pytest --cov``, with and without
pytest-xdist, and ``coverage run -p -m pytest`` then ``coverage combine``), in a
subprocess of its own so that its coverage is its own. The inner tests start real
processes (a Process under fork, forkserver and spawn, and a command line) that
run a function of ``app.py`` that nothing else runs, and end each in one of three
ways: by themselves, at zmqtest's SIGINT, or (ignoring SIGINT) at its SIGTERM. The
report must show every such function covered, and each process must have ended as
it would without coverage (the same ``stopped_by`` and exit status).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COVERAGE = "7.12.1"
"""The first coverage that installs the ``.pth`` file that starts it in a command line (Process children: 7.10.4)."""
PYTEST_COV = "7"

SUBPROCESS_DEADLINE = 120.0
"""Seconds an inner run (or a coverage command) may take before pytester kills it."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider")
KINDS = ("fork", "forkserver", "spawn", "command")
ENDS = {
    "exit": ("exited by itself", 0, 0),
    "sigint": ("SIGINT", 130, -2),
    "sigterm": ("SIGTERM", -15, -15),
}
"""How a process of the inner run ends → its ``stopped_by`` and exit status as a Process, as a command line.

The same as without coverage: a Process's KeyboardInterrupt ends it with code 130 (zmqtest's child setup), a
Python program's with SIGINT (the interpreter's own way); ignoring SIGINT, both are killed by the SIGTERM that follows.
"""
SCENARIOS = [*(f"{kind}_{end}" for kind in KINDS for end in ENDS), "run_exit"]
"""``<kind>_<end>``: each names a function of ``app.py`` that only the process of that scenario runs.

``run_exit`` is a program run by ``zmqtest.commands.run`` (``zmq_golden.run``, system tests) to its end.
"""

APP_END = textwrap.dedent(
    """\
    def serve(scenario, end):
        print(globals()["child_" + scenario](), flush=True)
        if end == "exit":
            return
        if end == "sigterm":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            signal.pause()


    class Worker(multiprocessing.Process):
        def __init__(self, scenario, end):
            super().__init__()
            self.scenario, self.end = scenario, end

        def run(self):
            serve(self.scenario, self.end)


    if __name__ == "__main__":
        serve(sys.argv[1], sys.argv[2])
    """
)

INNER_TESTS = """
import sys

import pytest

from app import Worker
from zmqtest.commands import run

ENDS = {ends!r}


@pytest.mark.parametrize("scenario", {scenarios!r})
def test_child(scenario, zmq_process_factory):
    kind, end = scenario.split("_")[:2]
    if kind == "run":
        assert run([sys.executable, "app.py", scenario, end], timeout=60).returncode == 0
        return
    if kind == "command":
        target, options = [sys.executable, "app.py", scenario, end], {{}}
    else:
        target, options = Worker(scenario, end), {{"start_method": kind}}
    if end == "exit":
        handle = zmq_process_factory(target, name=scenario, expect_exit=0, **options)
        assert handle.wait(60) == 0
    else:
        handle = zmq_process_factory(target, name=scenario, ready="^ready", **options)
    handle.stop()
    stopped_by, code, command_code = ENDS[end]
    assert (handle.stopped_by, handle.returncode) == (stopped_by, command_code if kind == "command" else code)
"""


def make_project(pytester: pytest.Pytester, scenarios: list[str]) -> None:
    """Write ``app.py`` with a ``child_<scenario>`` function for each of ``scenarios``, and the tests that run them."""
    functions = "".join(f"def child_{name}():\n    return {name!r}\n\n\n" for name in scenarios)
    app = f"import multiprocessing\nimport signal\nimport sys\n\n\n{functions}{APP_END}"
    pytester.makepyfile(app=app, test_children=INNER_TESTS.format(ends=ENDS, scenarios=scenarios))


def covered(path: Path, scenarios: list[str]) -> dict[str, bool]:
    """Scenario → whether its ``child_<scenario>`` is reported fully covered in the JSON report at ``path``."""
    report = json.loads(path.read_text())
    functions = report["files"]["app.py"]["functions"]
    return {name: functions[f"child_{name}"]["summary"]["percent_covered"] == 100 for name in scenarios}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """The inner project: ``app.py`` and its tests, one per scenario."""
    pytest.importorskip("coverage", minversion=COVERAGE)
    pytest.importorskip("pytest_cov", minversion=PYTEST_COV)
    make_project(pytester, SCENARIOS)
    return pytester


def check(result: pytest.RunResult, report: Path, scenarios: list[str]) -> None:
    __tracebackhide__ = True
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), result.ret) == (len(scenarios), 0), result.stdout.str()
    missed = [name for name, done in covered(report, scenarios).items() if not done]
    assert missed == [], f"child-only functions reported uncovered: {missed}\n{result.stdout.str()}"


@pytest.mark.timeout(2 * SUBPROCESS_DEADLINE)
@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["plain", "-n 2"])
def test_pytest_cov_reports_code_run_only_in_processes_under_test(
    project: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    """``pytest --cov``: every start method and command lines, each way to end; combined into the one report."""
    result = project.runpytest_subprocess(
        *INNER, *xdist, "--cov=.", "--cov-report=json:cov.json", timeout=SUBPROCESS_DEADLINE
    )
    check(result, project.path / "cov.json", SCENARIOS)


@pytest.mark.timeout(3 * SUBPROCESS_DEADLINE)
def test_coverage_run_then_combine_reports_code_run_only_in_processes_under_test(project: pytest.Pytester) -> None:
    """``coverage run -p -m pytest``, then ``coverage combine``: the recipe's way without pytest-cov."""
    chosen = [f"{kind}_sigint" for kind in KINDS] + ["spawn_sigterm", "command_sigterm"]
    selection = " or ".join(chosen)
    coverage = (sys.executable, "-m", "coverage")
    result = project.run(
        *coverage, "run", "-p", "--source=.", "-m", "pytest", *INNER, "-k", selection, timeout=SUBPROCESS_DEADLINE
    )
    for step in (("combine",), ("json", "-o", "cov.json")):
        done = project.run(*coverage, *step, timeout=SUBPROCESS_DEADLINE)
        assert done.ret == 0, done.stdout.str() + done.stderr.str()
    check(result, project.path / "cov.json", chosen)


def test_nothing_is_measured_or_imported_when_coverage_is_off() -> None:
    """Without coverage measuring the test process, processes get nothing, and zmqtest never imports coverage."""
    code = textwrap.dedent(
        """
        import sys
        import zmqtest.plugin, zmqtest.processes
        from zmqtest import childcoverage
        assert childcoverage.environ() == {}
        assert childcoverage.start({}) is None
        assert "coverage" not in sys.modules, "zmqtest imported coverage"
        """
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_child_whose_coverage_cannot_start_says_so_and_runs_on() -> None:
    """A configuration coverage rejects costs the child its measurement, never its run: the reason is on its stderr."""
    pytest.importorskip("coverage", minversion=COVERAGE)
    code = textwrap.dedent(
        """
        from zmqtest import childcoverage
        assert childcoverage.start({childcoverage.CONFIG_ENV: "not a configuration"}) is None
        print("ran on")
        """
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "ran on\n"), done.stderr
    assert "zmqtest: coverage could not start in this process: " in done.stderr
