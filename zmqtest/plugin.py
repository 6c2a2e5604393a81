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

Reports: each test records a transcript (:mod:`zmqtest.transcript`; setting
``transcript``), shown as a section of a failing test's report next to its processes.
Strict mode (setting ``strict``) fails a test whose mimic sockets hold unread messages
once it has run. The deadline (setting ``deadline``, :mod:`zmqtest.deadline`) bounds a whole
test; it stands aside for a test that pytest-timeout times (its ``pytest_timeout_set_timer``
hook, implemented here as an optional hook).

Inert where unused: this module imports neither pyzmq nor the rest of zmqtest beyond
the light settings, deadline, transcript and fixtures modules. The hooks recognise ProcessTest subclasses
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
from zmqtest import deadline as zdeadline
from zmqtest import settings as zsettings
from zmqtest import transcript as ztranscript
from zmqtest.compat import add_note
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
from zmqtest.settings import Settings

MARKERS = (
    "process: a process test (starts the real process under test); deselect with -m 'not process'",
    "system: a system test (runs the whole program); deselect with -m 'not system'",
    "zmqtest(timeout=None, start_method=None, startup_timeout=None, stop_grace=None, transcript=None, strict=None, "
    "update_golden=None, deadline=None, transcript_dir=None): "
    "zmqtest settings for this test (see --help, group zmqtest)",
)
_NAMES = tuple(field.name for field in dataclasses.fields(Settings))

REAPER_PROBLEM = "zmqtest reaper problem"
"""The user property that carries why the reaper could not start, on one report per run (reports travel from xdist
workers); the terminal summary shows it once."""

_SESSION_SETTINGS = pytest.StashKey[tuple[Settings, dict[str, str]]]()
_REAPER_REPORTED = pytest.StashKey[bool]()
_MARKER_PROBLEM = pytest.StashKey[str]()
_TRANSCRIPT = pytest.StashKey[ztranscript.Transcript]()
_DEADLINE = pytest.StashKey[zdeadline.Deadline]()
_PYTEST_TIMEOUT = pytest.StashKey[bool]()
_DEADLINE_PROBLEM = pytest.StashKey[str]()


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
    if not config.pluginmanager.has_plugin("zmqtest-asyncio"):
        config.pluginmanager.register(AsyncioTests(), "zmqtest-asyncio")


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
    """Make the test's settings the ones in force for its setup, call and teardown, and record its transcript.

    Items live as long as the session: what a test kept on its item for its reports (its transcript, its process
    manager with its log records) is dropped once its last report is made.
    """
    settings, _ = item.config.stash[_SESSION_SETTINGS]
    try:
        settings = _item_settings(item, settings)
    except ValueError as exc:
        item.stash[_MARKER_PROBLEM] = str(exc)
    if settings.deadline is not None and not item.stash.get(_PYTEST_TIMEOUT, False):
        _arm_deadline(item, settings, settings.deadline)
    try:
        with zsettings.using(settings):
            if settings.transcript == "never" and not settings.strict:
                return (yield)  # nothing records, nothing is tracked: costs nothing
            # One transcript per test; with the transcript off, it only tracks the mimic sockets for strict mode.
            record = item.stash[_TRANSCRIPT] = ztranscript.Transcript(recording=settings.transcript != "never")
            with ztranscript.recording(record):
                return (yield)
    finally:
        deadline = item.stash.get(_DEADLINE, None)
        if deadline is not None:
            deadline.disarm()
            del item.stash[_DEADLINE]
        if _TRANSCRIPT in item.stash:
            del item.stash[_TRANSCRIPT]
        if PROCESSES in item.stash:
            del item.stash[PROCESSES]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _phase(item, "setup")
    unarmed = item.stash.get(_DEADLINE_PROBLEM, None)
    if unarmed is not None:
        del item.stash[_DEADLINE_PROBLEM]
        item.warn(pytest.PytestWarning(unarmed))
    problem = item.stash.get(_MARKER_PROBLEM, None)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Strict mode: once the test has run, its mimic sockets must hold no unread messages."""
    _phase(item, "call")
    record = item.stash.get(_TRANSCRIPT, None)
    if record is None or not zsettings.current().strict:
        return (yield)
    from zmqtest.strict import unread  # only in strict mode: the plugin stays light

    try:
        result = yield
    except Exception as exc:  # the test's own failure comes first; what was left unread only adds to it
        try:
            left = unread(record.sockets, codec=record.codec)
        except Exception as problem:  # never mask the test's failure
            left = f"zmqtest strict mode: the check for unread messages failed: {problem!r}"
        if left is not None:
            add_note(exc, left)
        raise
    left = unread(record.sockets, codec=record.codec)
    if left is not None:
        pytest.fail(left, pytrace=False)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    _phase(item, "teardown")


def _phase(item: pytest.Item, name: str) -> None:
    __tracebackhide__ = True
    record = item.stash.get(_TRANSCRIPT, None)
    if record is not None:
        record.phase(name)
    deadline = item.stash.get(_DEADLINE, None)
    if deadline is not None:
        deadline.enter(name)  # raises the deadline if it ran out just before a setup or a call


def _arm_deadline(item: pytest.Item, settings: Settings, seconds: float) -> None:
    """Arm the test's deadline (:mod:`zmqtest.deadline`); where it cannot be, the test says so in a warning."""

    def states() -> list[str]:
        manager = item.stash.get(PROCESSES, None)
        return [process.describe() for process in manager.processes] if manager is not None else []

    def note(text: str) -> None:
        record = item.stash.get(_TRANSCRIPT, None)
        if record is not None:
            record.note(None, text)

    deadline = zdeadline.Deadline(
        seconds, item.nodeid, grace=zdeadline.teardown_grace(settings), states=states, note=note
    )
    problem = deadline.arm()
    if problem is None:
        item.stash[_DEADLINE] = deadline
    else:  # warned of in its setup, where a warning made an error (-W error) fails the test, not the run
        item.stash[_DEADLINE_PROBLEM] = f"zmqtest deadline of {seconds:g} s not enforced: {problem}"


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """pytest-timeout times this test: zmqtest's deadline stands aside (one SIGALRM, one owner; see the README)."""
    item.stash[_PYTEST_TIMEOUT] = True
    deadline = item.stash.get(_DEADLINE, None)
    if deadline is not None:
        deadline.disarm()
        del item.stash[_DEADLINE]


@pytest.hookimpl
def pytest_enter_pdb() -> None:
    """A debugger session must not be cut short by a deadline: it is disarmed for the test under the debugger."""
    zdeadline.disarm_current()


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
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tiers before ``-m`` deselects: ProcessTest tests ``process``, tests using zmq_golden ``system``."""
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and _is_process_test(cls) and item.get_closest_marker("process") is None:
            item.add_marker("process")
        if "zmq_golden" in getattr(item, "fixturenames", ()) and item.get_closest_marker("system") is None:
            item.add_marker("system")


def _stand_in(generator_function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function that looks like ``generator_function`` to pytest's collection."""

    @functools.wraps(generator_function)
    def stand_in(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("zmqtest: the collection stand-in was called instead of the generator test")

    stand_in.__zmqtest_stand_in__ = True  # type: ignore[attr-defined]
    return stand_in


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Drive a ProcessTest generator test with its fixtures as arguments."""
    __tracebackhide__ = True
    test = pyfuncitem.obj
    instance = pyfuncitem.instance
    if instance is None or not _is_process_test(type(instance)):
        return None
    if getattr(test, "__zmqtest_stand_in__", False):  # an async conversation (see pytest_pycollect_makeitem)
        test = getattr(instance, pyfuncitem.originalname)
    if not (inspect.isgeneratorfunction(test) or inspect.isasyncgenfunction(test)):  # pytest runs a plain test
        from zmqtest.runner import check_for_unyielded_events  # imported already: the test is a ProcessTest

        check_for_unyielded_events(test)
        return None
    funcargs = pyfuncitem.funcargs
    arguments = {name: funcargs[name] for name in _fixture_names(test)}
    instance.run(test, **arguments)
    return True


class AsyncioTests:
    """Runs an ``async def`` test that no async plugin has taken (pytest-asyncio, anyio's) on a new event loop.

    A plugin of its own, at the hook's normal priority: after anyio's (``tryfirst``; a test
    with ``anyio_backend`` is anyio's anyway), after pytest-asyncio (whose tests reach the
    hook as plain functions), before pytest's refusal of the test (``trylast``).
    """

    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        __tracebackhide__ = True
        test = pyfuncitem.obj
        if not inspect.iscoroutinefunction(test) or "anyio_backend" in pyfuncitem.funcargs:
            return None
        from zmqtest.asyncrunner import run

        funcargs = pyfuncitem.funcargs
        run(test(**{name: funcargs[name] for name in _fixture_names(test)}))
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
    """A failing test's report shows its transcript and each of its processes: state, how it stopped, output tail."""
    deadline = item.stash.get(_DEADLINE, None)
    if deadline is not None:
        deadline.leave()
    report = yield
    if deadline is not None and call.when in deadline.fired:
        _deadline_report(report, call, deadline.fired[call.when])
    record = item.stash.get(_TRANSCRIPT, None)
    shown = report.failed or (report.when == "call" and zsettings.current().transcript == "always")
    if record is not None and record.recording and shown and record.eventful():
        outcome = None
        if report.failed and call.excinfo is not None:
            message = str(call.excinfo.value).strip().partition("\n")[0]
            outcome = f"{report.when} failed: {call.excinfo.typename}" + (f": {message}" if message else "")
        try:
            text = record.render(outcome=outcome)
        except Exception as problem:  # a report without its transcript beats no report
            text = f"(the transcript could not be shown: {problem!r})"
        if report.failed:
            text += _export(item, report, record, outcome, text)
        report.sections.append((f"zmqtest transcript ({report.when})", text))
    manager = item.stash.get(PROCESSES, None)
    if report.failed and manager is not None:
        for process in manager.processes:
            report.sections.append((f"zmqtest process {process.name} ({report.when})", process.report()))
    reaper_problem = _reaper_problem()
    if reaper_problem is not None and not item.config.stash.get(_REAPER_REPORTED, False):
        item.config.stash[_REAPER_REPORTED] = True
        report.user_properties = [*report.user_properties, (REAPER_PROBLEM, reaper_problem)]  # not the item's list
    return report


def _export(
    item: pytest.Item, report: pytest.TestReport, record: ztranscript.Transcript, outcome: str | None, text: str
) -> str:
    """A failing test's transcript as data: a JSON Lines file (setting ``transcript_dir``), a sequence diagram in
    pytest-html's report, the text as a property of the test in JUnit XML; each only when asked for.

    Returns the line that the report's section adds (where the file is, or why it is not).
    """
    config = item.config
    directory = zsettings.current().transcript_dir
    html = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
    if config.getoption("xmlpath", None):  # junitxml writes the user properties of a test's teardown report
        named = (f"zmqtest transcript ({report.when})", text)
        item.user_properties.append(named)  # as record_property does: the reports made from now on carry it
        if report.user_properties is not item.user_properties:
            report.user_properties = [*report.user_properties, named]
    if directory is None and not html:
        return ""
    from zmqtest import transcriptfile  # here: only a failing test that exports its transcript needs it

    try:
        recorded = transcriptfile.Recorded.of(record, test=item.nodeid, outcome=outcome)
        written = ""
        if directory is not None:
            path = config.invocation_params.dir / directory / transcriptfile.file_name(item.nodeid)
            written = f"\n(as data: {transcriptfile.write(recorded, path)})"
        if html:
            from pytest_html import extras  # here: the plugin stays inert where pytest-html is not in use

            from zmqtest import sequencehtml

            diagram = extras.html(sequencehtml.render(recorded))
            report.extras = [*getattr(report, "extras", []), diagram]  # type: ignore[attr-defined]  # pytest-html's
    except Exception as problem:  # a report without the exported transcript beats no report
        return f"\n(the transcript could not be exported: {problem!r})"
    return written


def _deadline_report(report: pytest.TestReport, call: pytest.CallInfo[None], message: str) -> None:
    """The phase the deadline fired in fails, even if the test swallowed the error; it says so, with the states."""
    if report.passed:  # the error was caught by the test, or the deadline fired between phases
        report.outcome = "failed"
        report.longrepr = message
    elif call.excinfo is None or message not in str(call.excinfo.value):  # another error, that does not say it
        report.sections.append((f"zmqtest deadline ({report.when})", message))


def _reaper_problem() -> str | None:
    """Why zmqtest's reaper could not start in this process, if it could not (never imports it)."""
    backstop = sys.modules.get("zmqtest.backstop")
    return getattr(backstop, "problem", None)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    """One line with the versions and the timeout, in runs that use pyzmq at all."""
    zmq = sys.modules.get("zmq")
    if zmq is None:
        return None
    settings, sources = config.stash[_SESSION_SETTINGS]
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
