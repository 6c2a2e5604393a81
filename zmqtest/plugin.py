"""The pytest plugin (entry point ``pytest11: zmqtest``): with its parts :mod:`zmqtest.testhooks` and
:mod:`zmqtest.fixtures`, the only pytest glue in zmqtest.

Generator tests. ProcessTest tests are generators by design, and pytest 8.4 made any
test containing ``yield`` a collection error (pytest #12960: "'yield' keyword is
allowed in fixtures, but not in tests"). So, for methods of ProcessTest subclasses
only, :func:`pytest_pycollect_makeitem` hands pytest a plain stand-in function
(``functools.wraps`` of the generator: same name, signature and marks) and lets
pytest build its ordinary items from it, so fixtures, parametrize, marks, ``-k`` and
``--lf`` work as for any test. pytest still looks the real method up on the class
by name when it runs the item, and ``pytest_pyfunc_call`` (``tryfirst``,
:mod:`zmqtest.testhooks`) drives that generator through :meth:`ProcessTest.run`.
Public pytest API only.

Fixtures: :mod:`zmqtest.fixtures`, imported here so that pytest finds them on this
plugin; they import pyzmq only when a test uses them.

Inert where unused: importing this module loads only :mod:`zmqtest.fixtures` and the
literals of :mod:`zmqtest.options` (the options' help); the settings are parsed when given
or first needed. The hooks that run each test (settings, transcript, deadline, strict mode,
ProcessTest generators: :mod:`zmqtest.testhooks`) are registered once collection shows that
the run may use zmqtest (:func:`_uses_zmqtest`), so pytest starts and runs a project that
does not much as if zmqtest were not installed. The hooks recognise ProcessTest subclasses
by the name of the class in their MRO rather than through ``sys.modules``, which may have
dropped ``zmqtest.runner`` while its classes live on (pytester's in-process runs restore
``sys.modules`` after each run).

PYTEST_DONT_REWRITE: it has no asserts, and pytest, which passes every module of a plugin's distribution through
its assertion rewriter, need not walk it at each start where it cannot cache the result (PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from zmqtest.fixtures import (  # noqa: F401  (pytest finds the zmq_* fixtures as attributes of this plugin)
    GOLDEN_WRITTEN,
    PROCESSES,
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
"""The plugin's markers; the ``zmqtest`` marker's line names the settings (:func:`_zmqtest_marker`)."""

REAPER_PROBLEM = "zmqtest reaper problem"
"""The user property that carries why the reaper could not start, on one report per run (reports travel from xdist
workers); the terminal summary shows it once."""

_SESSION_SETTINGS: pytest.StashKey[tuple[Settings, dict[str, str]]] = pytest.StashKey()
_LIBRARY = ("zmqtest.settings", "zmqtest.errors", "zmqtest.transcript")
"""Modules that every part of zmqtest a test may use imports (sockets, processes, runner, golden, ...)."""
_TEST_HOOKS = "zmqtest-tests"
"""The name of the hooks that run each test (:func:`_register_test_hooks`)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    from zmqtest.options import FLAG, OPTIONS  # literals only: the settings themselves load when a test uses them

    group = parser.getgroup("zmqtest", "ZeroMQ process testing (zmqtest)")
    for name, (metavar, help_text) in OPTIONS.items():
        option, dest = f"--zmqtest-{name.replace('_', '-')}", f"zmqtest_{name}"
        if metavar == FLAG:  # a flag without a value turns it on
            group.addoption(option, dest=dest, action="store_const", const=True, default=None, help=help_text)
        else:
            group.addoption(option, dest=dest, metavar=metavar, default=None, help=help_text)
        parser.addini(dest, help_text, default="")


def pytest_configure(config: pytest.Config) -> None:
    from zmqtest.options import OPTIONS

    names = tuple(OPTIONS)
    for line in (*MARKERS, _zmqtest_marker(names)):
        config.addinivalue_line("markers", line)
    if _given(config, names):  # parsed now, so that a bad value is a usage error before any test runs
        _session_settings(config)


def _zmqtest_marker(names: tuple[str, ...]) -> str:
    keywords = ", ".join(f"{name}=None" for name in names)
    return f"zmqtest({keywords}): zmqtest settings for this test (see --help, group zmqtest)"


def _given(config: pytest.Config, names: tuple[str, ...]) -> bool:
    """Whether any setting comes from the command line or the ini file (else they are all the defaults)."""
    return any(
        config.getoption(f"zmqtest_{name}") is not None or config.getini(f"zmqtest_{name}") not in (None, "")
        for name in names
    )


def _session_settings(config: pytest.Config) -> tuple[Settings, dict[str, str]]:
    """Settings from the command line, else the ini file, else the defaults; and where each came from.

    Parsed once, when first needed: at configure if any is given, else when a test first uses zmqtest.
    """
    known = config.stash.get(_SESSION_SETTINGS, None)
    if known is not None:
        return known
    from zmqtest import settings as zsettings

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    overrides = {item.split("=", 1)[0].strip() for item in config.getoption("override_ini") or []}
    inifile = config.inipath.name if config.inipath else "the ini file"
    for name in zsettings.NAMES:
        key = f"zmqtest_{name}"
        value: Any = config.getoption(key)
        where = f"command line option --zmqtest-{name.replace('_', '-')}"
        if value is None:
            value = config.getini(key)
            # -o name=value beats the ini file
            where = f"command line option -o {key}" if key in overrides else f"ini option {key} in {inifile}"
        if value in (None, ""):
            continue
        try:
            values[name] = zsettings.parse(name, value, where)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        sources[name] = where
    known = config.stash[_SESSION_SETTINGS] = (zsettings.Settings(**values), sources)
    return known


def _uses_zmqtest(config: pytest.Config, items: list[pytest.Item]) -> bool:
    """Whether a test of the run may use zmqtest: its library is loaded (the tests or a conftest import it), a
    setting is given, or a test asks for a zmq_* fixture or the zmqtest marker."""
    return (
        any(name in sys.modules for name in _LIBRARY)
        or _SESSION_SETTINGS in config.stash
        or any(
            any(name.startswith("zmq_") for name in getattr(item, "fixturenames", ()))
            or item.get_closest_marker("zmqtest") is not None
            for item in items
        )
    )


def _register_test_hooks(config: pytest.Config) -> None:
    """Register :mod:`zmqtest.testhooks` (each test's settings, transcript and deadline; ProcessTest generators;
    ``async def`` tests that no async plugin takes).

    Once per run that may use zmqtest, so that a run that does not pays for none of it.
    """
    if config.pluginmanager.get_plugin(_TEST_HOOKS) is None:
        from zmqtest import testhooks

        config.pluginmanager.register(testhooks, _TEST_HOOKS)
        config.pluginmanager.register(testhooks.AsyncioTests(), f"{_TEST_HOOKS}-asyncio")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> object:
    """Collect the generator methods of ProcessTest subclasses (async ones too) as ordinary test items."""
    if not isinstance(collector, pytest.Class) or not (
        inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj)
    ):
        return None
    if not _is_process_test(collector.obj):
        return None
    stand_in = _stand_in(obj)
    if not inspect.isasyncgenfunction(obj):
        return collector.ihook.pytest_pycollect_makeitem(collector=collector, name=name, obj=stand_in)
    # An async conversation: pytest-asyncio's auto mode takes every async test as its own, and skips async
    # generators ("not supported"). Made without it, and showing it the stand-in, the items stay zmqtest's.
    manager = collector.config.pluginmanager
    takers = [plugin for plugin in (manager.get_plugin("asyncio"),) if plugin is not None]
    made = manager.subset_hook_caller("pytest_pycollect_makeitem", remove_plugins=takers)(
        collector=collector, name=name, obj=stand_in
    )
    for item in made if isinstance(made, list) else [made]:
        if isinstance(item, pytest.Function):
            item.obj = stand_in  # the conversation itself is taken from the test's instance when it runs
    return made


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tiers before ``-m`` deselects: ProcessTest tests ``process``, tests using zmq_golden ``system``.

    And if a test may use zmqtest, register the hooks that run each test (:func:`_register_test_hooks`).
    """
    process_tests = False
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and _is_process_test(cls):
            process_tests = True
            if item.get_closest_marker("process") is None:
                item.add_marker("process")
        if "zmq_golden" in getattr(item, "fixturenames", ()) and item.get_closest_marker("system") is None:
            item.add_marker("system")
    if process_tests or _uses_zmqtest(config, items):
        _register_test_hooks(config)


def _stand_in(generator_function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function that looks like ``generator_function`` to pytest's collection."""

    @functools.wraps(generator_function)
    def stand_in(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("zmqtest: the collection stand-in was called instead of the generator test")

    stand_in.__zmqtest_stand_in__ = True  # type: ignore[attr-defined]
    return stand_in


def _is_process_test(cls: type) -> bool:
    """Whether ``cls`` subclasses zmqtest's ProcessTest (by name: it may come from a dropped copy of the module)."""
    return any(base.__module__ == "zmqtest.runner" and base.__qualname__ == "ProcessTest" for base in cls.__mro__)


def _reaper_problem() -> str | None:
    """Why zmqtest's reaper could not start in this process, if it could not (never imports it)."""
    backstop = sys.modules.get("zmqtest.backstop")
    return getattr(backstop, "problem", None)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    """One line with the versions and the timeout, in runs that use pyzmq at all."""
    zmq = sys.modules.get("zmq")
    if zmq is None:
        return None
    from zmqtest import __version__

    settings, sources = _session_settings(config)
    deadline = "" if settings.deadline is None else f", deadline {settings.deadline:g} s ({sources['deadline']})"
    return (
        f"zmqtest {__version__}, pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}, "
        f"timeout {settings.timeout:g} s ({sources.get('timeout', 'default')}), start method {settings.start_method}"
        f"{deadline}"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say why the reaper could not start; list the golden files that --zmqtest-update-golden wrote.

    Both come from the reports (xdist workers' too).
    """
    reaper_problems = _reported(terminalreporter, REAPER_PROBLEM)
    problem = _reaper_problem()
    if problem is not None:
        reaper_problems = sorted({*reaper_problems, problem})
    if reaper_problems:
        terminalreporter.section("zmqtest: the reaper could not start", yellow=True)
        for line in reaper_problems:
            terminalreporter.write_line(line)
    written = _reported(terminalreporter, GOLDEN_WRITTEN)
    if written:
        terminalreporter.section(f"zmqtest: {len(written)} golden file{'s' if len(written) > 1 else ''} written")
        for line in written:
            terminalreporter.write_line(line)


def _reported(terminalreporter: pytest.TerminalReporter, name: str) -> list[str]:
    """The distinct values of the user property ``name`` over every report of the run, sorted."""
    return sorted(
        {
            str(value)
            for reports in terminalreporter.stats.values()
            for report in reports
            for key, value in getattr(report, "user_properties", ())
            if key == name
        }
    )
