"""Figure 16: code run only in a process under test is in the coverage report, however the process ran and ended.

One inner ``pytest --cov -n 2`` run starts ROUNDS processes of each scenario of
tests/test_coverage.py (a Process under fork, forkserver and spawn, and a command
line; each ending by itself, at zmqtest's SIGINT, or at its SIGTERM; and a program run to
its end by ``zmqtest.commands.run``), each running a function of its own that nothing
else runs; the figure counts those reported covered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_coverage import COVERAGE, ENDS, INNER, KINDS, PYTEST_COV, SCENARIOS, covered, make_project

pytestmark = pytest.mark.reliability

ROUNDS = 5
"""Processes per scenario."""
DEADLINE = 300.0
"""Seconds the inner run may take."""


@pytest.mark.timeout(2 * DEADLINE)
def test_child_only_code_is_covered_under_every_start_method(
    pytester: pytest.Pytester, figure: Callable[[int, str, str], None]
) -> None:
    pytest.importorskip("coverage", minversion=COVERAGE)
    pytest.importorskip("pytest_cov", minversion=PYTEST_COV)
    scenarios = [f"{scenario}_{round_}" for round_ in range(ROUNDS) for scenario in SCENARIOS]
    make_project(pytester, scenarios)
    pytester.makeini("[pytest]\nzmqtest_stop_grace = 1\n")  # the SIGTERM scenarios wait out the SIGINT grace
    result = pytester.runpytest_subprocess(*INNER, "-n", "2", "--cov=.", "--cov-report=json:cov.json", timeout=DEADLINE)
    done = covered(pytester.path / "cov.json", scenarios)
    cells = []
    for kind in KINDS:
        counts = [sum(done[f"{kind}_{end}_{round_}"] for round_ in range(ROUNDS)) for end in ENDS]
        cells.append(f"{kind} " + "/".join(str(count) for count in counts))
    run = sum(done[f"run_exit_{round_}"] for round_ in range(ROUNDS))
    total = sum(done.values())
    figure(
        16,
        f"coverage of a child-only function, covered of {ROUNDS} per start method (ending by itself/at SIGINT/"
        "at SIGTERM), pytest --cov -n 2",
        f"{'; '.join(cells)}; commands.run {run}/{ROUNDS}; {total}/{len(scenarios)} in all",
    )
    result.assert_outcomes(passed=len(scenarios))
    assert total == len(scenarios), [name for name, yes in done.items() if not yes]
