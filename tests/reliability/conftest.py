"""Glue of the reliability suite: run it only when asked for, and print the figures it measured.

**Asked for.** The suite takes a couple of minutes, so the default ``python -m pytest``
deselects it: its tests carry the ``reliability`` marker and run only when the ``-m``
expression names that marker (``python -m pytest tests/reliability -m reliability``).
pytest's ``-m`` alone cannot say "not unless asked": without ``-m`` everything runs, and
``addopts = -m "not reliability"`` would be overridden by any other ``-m``.

**Figures.** Tests record their figure with the ``figure`` fixture (as a user property,
which also travels from an xdist worker) and then assert that it is good. The terminal
summary prints them as one block, also written to ``build/reliability-figures.txt``.
"""

from __future__ import annotations

import os
import platform
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from inner_runs import MARK, VARIANTS, InnerProject, Ledger

import zmqtest

MARKER = "reliability"
FIGURE = "zmqtest-reliability-figure"
"""The user property a figure travels in."""
FIGURES_FILE = Path("build", "reliability-figures.txt")
"""Where the block of figures is written, under the rootdir (git ignores build/)."""


# --- run only when asked for ---------------------------------------------------------------------------------------


def asked_for(config: pytest.Config) -> bool:
    """Whether the ``-m`` expression names the ``reliability`` marker."""
    return re.search(rf"\b{MARKER}\b", config.getoption("markexpr") or "") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if asked_for(config):
        return
    deselected = [item for item in items if item.get_closest_marker(MARKER) is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker(MARKER) is None]


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A value unique to this test in ``MARK``, inherited by every process of its inner runs.

    At teardown whatever still carries it is SIGKILLed: a failing figure leaves nothing behind either.
    """
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARK, value)
    yield value
    Ledger(value).kill_marked()


@pytest.fixture
def project(pytester: pytest.Pytester, mark: str) -> InnerProject:
    """The generated project of this test, with ``children.py`` in it."""
    return InnerProject(pytester)


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[int, str, str], None]:
    """``figure(number, title, value)``: record a figure, measured in this test's variant, for the summary.

    The variant is the test's ``variant`` parameter (a key of ``VARIANTS``), else its parameters' id, else none.
    """
    callspec = getattr(request.node, "callspec", None)
    variant = callspec.params.get("variant", callspec.id) if callspec is not None else ""

    def record(number: int, title: str, value: str) -> None:
        entry = {"number": number, "title": title, "variant": variant, "value": value}
        request.node.user_properties.append((FIGURE, entry))

    return record


# --- the block of figures ------------------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The block of figures, from the reports of this run (the controller's, under xdist)."""
    stats = terminalreporter.stats
    reports = [report for key, reports in stats.items() if key != "deselected" for report in reports]
    figures = [
        value
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in report.user_properties
        if name == FIGURE
    ]
    if not figures:
        ours = [item for item in stats.get("deselected", []) if item.get_closest_marker(MARKER) is not None]
        if ours and not any(stats.get(key) for key in ("passed", "failed", "error")):
            terminalreporter.write_line(f"{len(ours)} reliability tests deselected: run them with -m {MARKER}")
        return
    block = figures_block(figures)
    terminalreporter.section("zmqtest reliability figures")
    for line in block.splitlines():
        terminalreporter.write_line(line)
    path = config.rootpath / FIGURES_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text(block)
    terminalreporter.write_line(f"(written to {path})")


def figures_block(figures: list[dict[str, Any]]) -> str:
    """The figures as text: a heading that says when and where, then each figure with its variants."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        f"zmqtest reliability figures ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load average {load} at the end; "
        f"{platform.python_implementation()} {platform.python_version()}, pyzmq {zmq.pyzmq_version()}, "
        f"libzmq {zmq.zmq_version()}, pytest {pytest.__version__}, zmqtest {zmqtest.__version__})"
    ]
    by_title: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for entry in figures:
        by_title.setdefault((entry["number"], entry["title"]), []).append(entry)
    order = list(VARIANTS)  # then other variants (a parameter of the test's own), in the order they ran
    for (number, title), entries in sorted(by_title.items()):
        lines.append(f"{number}. {title}")
        ordered = sorted(entries, key=lambda entry: order.index(entry["variant"]) if entry["variant"] in order else 99)
        for entry in ordered:
            label = f"{entry['variant'] + ':':8}" if entry["variant"] else ""
            lines.append(f"   {label}{entry['value']}")
    return "\n".join(lines) + "\n"
