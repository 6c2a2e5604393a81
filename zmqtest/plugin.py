"""The pytest plugin (entry point ``pytest11: zmqtest``): the only pytest glue in zmqtest.

Generator tests. ProcessTest tests are generators by design, and pytest 8.4 made any
test containing ``yield`` a collection error (pytest #12960: "'yield' keyword is
allowed in fixtures, but not in tests"). So, for methods of ProcessTest subclasses
only, :func:`pytest_pycollect_makeitem` hands pytest a plain stand-in function
(``functools.wraps`` of the generator: same name, signature and marks) and lets
pytest build its ordinary items from it, so fixtures, parametrize, marks, ``-k`` and
``--lf`` work as for any test. pytest still looks the real method up on the class
by name when it runs the item, and :func:`pytest_pyfunc_call` (``tryfirst``) drives
that generator through :meth:`ProcessTest.run`. Public pytest API only.

Fixtures: :mod:`zmqtest.fixtures`, imported here so that pytest finds them on this
plugin; they import pyzmq only when a test uses them.

Inert where unused: this module imports neither pyzmq nor the rest of zmqtest beyond
the light settings and fixtures modules. The hooks recognise ProcessTest subclasses
by the name of the class in their MRO rather than through ``sys.modules``, which may
have dropped ``zmqtest.runner`` while its classes live on (pytester's in-process runs
restore ``sys.modules`` after each run).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest

from zmqtest import __version__
from zmqtest import settings as zsettings
from zmqtest.fixtures import (
    PROCESSES,
    zmq_context,
    zmq_endpoint,
    zmq_endpoint_factory,
    zmq_process_factory,
    zmq_socket_factory,
)
from zmqtest.settings import Settings

FIXTURES = (zmq_context, zmq_endpoint, zmq_endpoint_factory, zmq_process_factory, zmq_socket_factory)
"""The public fixtures, found by pytest as attributes of this plugin module."""

MARKERS = (
    "process: a process test (starts the real process under test); deselect with -m 'not process'",
    "system: a system test (runs the whole program); deselect with -m 'not system'",
    "zmqtest(timeout=None, start_method=None, startup_timeout=None, stop_grace=None, transcript=None, strict=None, "
    "update_golden=None): zmqtest settings for this test (see --help, group zmqtest)",
)
_NAMES = tuple(field.name for field in dataclasses.fields(Settings))

_SESSION_SETTINGS = pytest.StashKey[tuple[Settings, dict[str, str]]]()
_MARKER_PROBLEM = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zmqtest", "ZeroMQ process testing (zmqtest)")
    for name in _NAMES:
        option = f"--zmqtest-{name.replace('_', '-')}"
        dest, help_text = f"zmqtest_{name}", zsettings.HELP[name]
        if name in zsettings.FLAGS:  # a flag without a value turns it on
            group.addoption(option, dest=dest, action="store_const", const=True, default=None, help=help_text)
        else:
            group.addoption(option, dest=dest, metavar=zsettings.METAVARS[name], default=None, help=help_text)
        parser.addini(f"zmqtest_{name}", zsettings.HELP[name], default="")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[_SESSION_SETTINGS] = _session_settings(config)


def _session_settings(config: pytest.Config) -> tuple[Settings, dict[str, str]]:
    """Settings from the command line, else the ini file, else the defaults; and where each came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    overrides = {item.split("=", 1)[0].strip() for item in config.getoption("override_ini") or []}
    inifile = config.inipath.name if config.inipath else "the ini file"
    for name in _NAMES:
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
    return Settings(**values), sources


def _item_settings(item: pytest.Item, session: Settings) -> Settings:
    """Apply a ``@pytest.mark.zmqtest(...)`` marker over the session's settings."""
    marker = item.get_closest_marker("zmqtest")
    if marker is None:
        return session
    where = f"@pytest.mark.zmqtest on {item.nodeid}"
    unknown = sorted(set(marker.kwargs) - set(_NAMES))
    if marker.args or unknown:
        given = ", ".join([*map(repr, marker.args), *unknown])
        raise ValueError(f"{where} takes only the keyword arguments {', '.join(_NAMES)}; got {given}")
    changes = {name: zsettings.parse(name, value, f"{where} ({name}=...)") for name, value in marker.kwargs.items()}
    return session.replace(**changes) if changes else session


def item_settings(item: pytest.Item) -> Settings:
    """The settings in force for ``item`` (for fixtures: marker > command line > ini > default)."""
    session, _ = item.config.stash[_SESSION_SETTINGS]
    try:
        return _item_settings(item, session)
    except ValueError:
        return session


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Make the test's settings the ones in force for its setup, call and teardown."""
    settings, _ = item.config.stash[_SESSION_SETTINGS]
    try:
        settings = _item_settings(item, settings)
    except ValueError as exc:
        item.stash[_MARKER_PROBLEM] = str(exc)
    with zsettings.using(settings):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = item.stash.get(_MARKER_PROBLEM, None)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> object:
    """Collect the generator methods of ProcessTest subclasses as ordinary test items."""
    if not isinstance(collector, pytest.Class) or not inspect.isgeneratorfunction(obj):
        return None
    if not _is_process_test(collector.obj):
        return None
    return collector.ihook.pytest_pycollect_makeitem(collector=collector, name=name, obj=_stand_in(obj))


def _stand_in(generator_function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function that looks like ``generator_function`` to pytest's collection."""

    @functools.wraps(generator_function)
    def stand_in(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("zmqtest: the collection stand-in was called instead of the generator test")

    return stand_in


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Drive a ProcessTest generator test with its fixtures as arguments."""
    __tracebackhide__ = True
    test = pyfuncitem.obj
    instance = pyfuncitem.instance
    if instance is None or not _is_process_test(type(instance)) or not inspect.isgeneratorfunction(test):
        return None
    funcargs = pyfuncitem.funcargs
    arguments = {name: funcargs[name] for name in _fixture_names(test)}
    instance.run(test, **arguments)
    return True


def _is_process_test(cls: type) -> bool:
    """Whether ``cls`` subclasses zmqtest's ProcessTest (by name: it may come from a dropped copy of the module)."""
    return any(base.__module__ == "zmqtest.runner" and base.__qualname__ == "ProcessTest" for base in cls.__mro__)


def _fixture_names(test: Callable[..., Any]) -> list[str]:
    """The parameters pytest fills with fixtures: those without a default, as in its own pytest_pyfunc_call."""
    return [
        name
        for name, parameter in inspect.signature(test).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and parameter.default is parameter.empty
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report shows each of its processes: state, how it was stopped, output tail."""
    report = yield
    manager = item.stash.get(PROCESSES, None)
    if report.failed and manager is not None:
        for process in manager.processes:
            report.sections.append((f"zmqtest process {process.name} ({report.when})", process.report()))
    return report


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    """One line with the versions and the timeout, in runs that use pyzmq at all."""
    zmq = sys.modules.get("zmq")
    if zmq is None:
        return None
    settings, sources = config.stash[_SESSION_SETTINGS]
    return (
        f"zmqtest {__version__}, pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}, "
        f"timeout {settings.timeout:g} s ({sources.get('timeout', 'default')}), start method {settings.start_method}"
    )
