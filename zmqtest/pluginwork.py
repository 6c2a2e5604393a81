"""What the plugin's hooks (:mod:`zmqtest.plugin`) do once a run turns out to use zmqtest: loaded then only.

The plugin's hooks run in every pytest run of every project where zmqtest is installed; each makes its cheap check
there and hands over to this module when there is work: the session's settings (given, or first needed), the
collection of ProcessTest generator methods, the registration of :mod:`zmqtest.testhooks`, the header line and the
summary's sections. Apart so that pytest does not parse and compile it at each start where it cannot use a cached
copy of the plugin (``PYTHONDONTWRITEBYTECODE``: pytest passes every module of a plugin's distribution through its
assertion rewriter).

PYTEST_DONT_REWRITE: it has no asserts, so that rewriter need not walk it.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from zmqtest.fixtures import GOLDEN_WRITTEN
from zmqtest.plugin import REAPER_PROBLEM, SESSION_SETTINGS, _is_process_test

if TYPE_CHECKING:
    from zmqtest.settings import Settings

__all__ = [
    "make_items",
    "reaper_problem",
    "register_test_hooks",
    "session_settings",
    "summary",
    "take_items",
    "version_line",
]

TEST_HOOKS = "zmqtest-tests"
"""The name of the hooks that run each test (:func:`register_test_hooks`)."""


def session_settings(config: pytest.Config) -> tuple[Settings, dict[str, str]]:
    """Settings from the command line, else the ini file, else the defaults; and where each came from.

    Parsed once, when first needed: at configure if any is given, else when a test first uses zmqtest.
    """
    known = config.stash.get(SESSION_SETTINGS, None)
    if known is not None:
        return known
    import zmqtest.settings as zsettings

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
    known = config.stash[SESSION_SETTINGS] = (zsettings.Settings(**values), sources)
    return known


def take_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a run that may use zmqtest: mark the slow tiers before ``-m`` deselects (ProcessTest tests ``process``,
    tests using zmq_golden ``system``) and register the hooks that run each test (:func:`register_test_hooks`)."""
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and _is_process_test(cls) and item.get_closest_marker("process") is None:
            item.add_marker("process")
        if "zmq_golden" in getattr(item, "fixturenames", ()) and item.get_closest_marker("system") is None:
            item.add_marker("system")
    register_test_hooks(config)


def register_test_hooks(config: pytest.Config) -> None:
    """Register :mod:`zmqtest.testhooks` (each test's settings, transcript and deadline; ProcessTest generators;
    ``async def`` tests that no async plugin takes).

    Once per run that may use zmqtest, so that a run that does not pays for none of it.
    """
    if config.pluginmanager.get_plugin(TEST_HOOKS) is None:
        import zmqtest.testhooks as testhooks

        config.pluginmanager.register(testhooks, TEST_HOOKS)
        config.pluginmanager.register(testhooks.AsyncioTests(), f"{TEST_HOOKS}-asyncio")


def make_items(collector: pytest.Class, name: str, obj: Any) -> object:
    """Collect a generator method (async too) of a ProcessTest subclass as ordinary test items."""
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


def _stand_in(generator_function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function that looks like ``generator_function`` to pytest's collection."""

    @functools.wraps(generator_function)
    def stand_in(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("zmqtest: the collection stand-in was called instead of the generator test")

    stand_in.__zmqtest_stand_in__ = True  # type: ignore[attr-defined]
    return stand_in


def reaper_problem() -> str | None:
    """Why zmqtest's reaper could not start in this process, if it could not (never imports it)."""
    backstop = sys.modules.get("zmqtest.backstop")
    return getattr(backstop, "problem", None)


def version_line(config: pytest.Config) -> str:
    """The header line: zmqtest's and pyzmq's versions, the timeout, the start method and the deadline."""
    import zmq

    from zmqtest import __version__

    settings, sources = session_settings(config)
    deadline = "" if settings.deadline is None else f", deadline {settings.deadline:g} s ({sources['deadline']})"
    return (
        f"zmqtest {__version__}, pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}, "
        f"timeout {settings.timeout:g} s ({sources.get('timeout', 'default')}), start method {settings.start_method}"
        f"{deadline}"
    )


def summary(terminalreporter: pytest.TerminalReporter, reported: set[tuple[str, str]]) -> None:
    """Say why the reaper could not start; list the golden files that --zmqtest-update-golden wrote."""
    reaper_problems = sorted({value for key, value in reported if key == REAPER_PROBLEM})
    problem = reaper_problem()
    if problem is not None:
        reaper_problems = sorted({*reaper_problems, problem})
    if reaper_problems:
        terminalreporter.section("zmqtest: the reaper could not start", yellow=True)
        for line in reaper_problems:
            terminalreporter.write_line(line)
    written = sorted(value for key, value in reported if key == GOLDEN_WRITTEN)
    if written:
        terminalreporter.section(f"zmqtest: {len(written)} golden file{'s' if len(written) > 1 else ''} written")
        for line in written:
            terminalreporter.write_line(line)
