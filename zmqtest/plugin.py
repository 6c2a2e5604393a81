"""The pytest plugin (entry point ``pytest11: zmqtest``): with its parts :mod:`zmqtest.testhooks` and
:mod:`zmqtest.fixtures`, the only pytest glue in zmqtest.

Generator tests. ProcessTest tests are generators by design, and pytest 8.4 made any test containing ``yield`` a
collection error (pytest #12960: "'yield' keyword is allowed in fixtures, but not in tests"). So, for methods of
ProcessTest subclasses only, :func:`pytest_pycollect_makeitem` (:func:`zmqtest.pluginwork.make_items`) hands pytest a
plain stand-in function (``functools.wraps`` of the generator: same name, signature and marks) and lets pytest build
its ordinary items from it, so fixtures, parametrize, marks, ``-k`` and ``--lf`` work as for any test. pytest still
looks the real method up on the class by name when it runs the item, and ``pytest_pyfunc_call`` (``tryfirst``,
:mod:`zmqtest.testhooks`) drives that generator through :meth:`ProcessTest.run`. Public pytest API only.

Fixtures: :mod:`zmqtest.fixtures`, imported here so that pytest finds them on this plugin; they import pyzmq only
when a test uses them.

Inert where unused: importing this module loads only :mod:`zmqtest.fixtures` and the literals of
:mod:`zmqtest.options` (the options' help); the settings are parsed when given or first needed
(:func:`zmqtest.pluginwork.session_settings`). The hooks that run each test (settings, transcript, deadline, strict
mode, ProcessTest generators: :mod:`zmqtest.testhooks`) are registered once collection shows that the run may use
zmqtest (:func:`pytest_collection_modifyitems`), so pytest starts and runs a project that does not much as if zmqtest
were not installed. The hooks recognise ProcessTest subclasses by the name of the class in their MRO rather than
through ``sys.modules``, which may have dropped ``zmqtest.runner`` while its classes live on (pytester's in-process
runs restore ``sys.modules`` after each run).

Short at start: pytest imports this module in every project where zmqtest is installed, through
:mod:`zmqtest.entrypoint` (which spares it pytest's assertion rewriter). So each hook here makes only its cheap
check and hands the work to :mod:`zmqtest.pluginwork`, loaded in a run that uses zmqtest.

PYTEST_DONT_REWRITE: it has no asserts, so the rewriter need not walk it.
"""

import inspect
import sys
from typing import TYPE_CHECKING

import pytest

from zmqtest.fixtures import (  # noqa: F401  (pytest finds the zmq_* fixtures as attributes of this plugin)
    GOLDEN_WRITTEN,
    zmq_async_context,
    zmq_async_socket_factory,
    zmq_authenticator,
    zmq_context,
    zmq_endpoint,
    zmq_endpoint_factory,
    zmq_golden,
    zmq_process_factory,
    zmq_replay,
    zmq_socket_factory,
    zmq_tap,
)

if TYPE_CHECKING:
    from zmqtest.settings import Settings

MARKERS = (
    "process: a process test (starts the real process under test); deselect with -m 'not process'",
    "system: a system test (runs the whole program); deselect with -m 'not system'",
)
"""The plugin's markers; the ``zmqtest`` marker's line names the settings (:func:`pytest_configure`)."""

REAPER_PROBLEM = "zmqtest reaper problem"
"""The user property that carries why the reaper could not start, on one report per run (reports travel from xdist
workers); the terminal summary shows it once."""

SESSION_SETTINGS: "pytest.StashKey[tuple[Settings, dict[str, str]]]" = pytest.StashKey()
"""The session's settings and where each came from (:func:`zmqtest.pluginwork.session_settings`)."""
LIBRARY = ("zmqtest.settings", "zmqtest.errors", "zmqtest.transcript")
"""Modules that every part of zmqtest a test may use imports (sockets, processes, runner, golden, ...)."""


def pytest_addoption(parser: "pytest.Parser") -> None:
    from zmqtest.options import FLAG, OPTIONS  # literals only: the settings themselves load when a test uses them

    group = parser.getgroup("zmqtest", "ZeroMQ process testing (zmqtest)")
    for name, (metavar, help_text) in OPTIONS.items():
        # a flag takes no value: given, it turns the setting on
        kind = {"metavar": metavar} if metavar != FLAG else {"action": "store_const", "const": True}
        option = "--zmqtest-" + name.replace("_", "-")
        group.addoption(option, dest="zmqtest_" + name, default=None, help=help_text, **kind)
        parser.addini("zmqtest_" + name, help_text, default="")


def pytest_configure(config: "pytest.Config") -> None:
    """Add the markers; parse the settings now if any is given, so that a bad value is a usage error before any test
    runs (from the command line or the ini file: else they are all the defaults)."""
    from zmqtest.options import OPTIONS

    keywords = ", ".join(f"{name}=None" for name in OPTIONS)
    for line in (*MARKERS, f"zmqtest({keywords}): zmqtest settings for this test (see --help, group zmqtest)"):
        config.addinivalue_line("markers", line)
    if any(config.getoption("zmqtest_" + name) is not None or config.getini("zmqtest_" + name) for name in OPTIONS):
        from zmqtest.pluginwork import session_settings

        session_settings(config)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: "pytest.Module | pytest.Class", name: str, obj: object) -> object:
    """Collect the generator methods of ProcessTest subclasses (async ones too) as ordinary test items."""
    if (
        isinstance(collector, pytest.Class)
        and (inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj))
        and _is_process_test(collector.obj)
    ):
        from zmqtest.pluginwork import make_items

        return make_items(collector, name, obj)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: "pytest.Config", items: "list[pytest.Item]") -> None:
    """If a test may use zmqtest, mark its slow tiers before ``-m`` deselects and register the hooks that run each
    test (:func:`zmqtest.pluginwork.take_items`).

    A test may use zmqtest if its library is loaded (the tests or a conftest import it), a setting is given, or it is
    a ProcessTest, asks for a zmq_* fixture or has the zmqtest marker.
    """
    if (
        SESSION_SETTINGS in config.stash
        or any(name in sys.modules for name in LIBRARY)
        or any(
            _is_process_test(getattr(item, "cls", None) or object)
            or any(name.startswith("zmq_") for name in getattr(item, "fixturenames", ()))
            or item.get_closest_marker("zmqtest")
            for item in items
        )
    ):
        from zmqtest.pluginwork import take_items

        take_items(config, items)


def _is_process_test(cls: type) -> bool:
    """Whether ``cls`` subclasses zmqtest's ProcessTest (by name: it may come from a dropped copy of the module)."""
    return any(base.__module__ == "zmqtest.runner" and base.__qualname__ == "ProcessTest" for base in cls.__mro__)


def pytest_report_collectionfinish(config: "pytest.Config") -> "str | None":
    """One line with the versions and the timeout, in runs that use pyzmq at all."""
    if "zmq" not in sys.modules:
        return None
    from zmqtest.pluginwork import version_line

    return version_line(config)


def pytest_terminal_summary(terminalreporter: "pytest.TerminalReporter") -> None:
    """Say why the reaper could not start; list the golden files that --zmqtest-update-golden wrote.

    Both come from the reports (xdist workers' too).
    """
    reported = {
        (key, str(value))
        for reports in terminalreporter.stats.values()
        for report in reports
        for key, value in getattr(report, "user_properties", ())
        if key in (REAPER_PROBLEM, GOLDEN_WRITTEN)
    }
    if reported or "zmqtest.backstop" in sys.modules:
        from zmqtest.pluginwork import summary

        summary(terminalreporter, reported)
