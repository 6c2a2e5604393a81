"""The pytest hooks that run each test, in a run that uses zmqtest: part of the plugin (:mod:`zmqtest.plugin`).

:mod:`zmqtest.plugin` registers this module as a plugin of its own once collection shows
that the run may use zmqtest, so that pytest neither loads nor calls any of it in a project
that does not. Each test gets its settings in force (marker > command line > ini > default),
its transcript (setting ``transcript``; shown as a section of a failing test's report next
to its processes), strict mode (setting ``strict``: its mimic sockets must hold no unread
messages once it has run) and its deadline (setting ``deadline``, :mod:`zmqtest.deadline`;
it stands aside for a test that pytest-timeout times, through that plugin's
``pytest_timeout_set_timer`` hook, implemented here as an optional hook); a ProcessTest
generator test is driven through :meth:`ProcessTest.run <zmqtest.runner.ProcessTest.run>`.

PYTEST_DONT_REWRITE: it has no asserts, so pytest's assertion rewriter, which passes every module of a plugin's
distribution through it, need not walk it where it cannot use a cached copy (``PYTHONDONTWRITEBYTECODE``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from zmqtest.fixturework import PROCESSES
from zmqtest.plugin import REAPER_PROBLEM, _is_process_test
from zmqtest.pluginwork import reaper_problem as _reaper_problem
from zmqtest.pluginwork import session_settings as _session_settings

if TYPE_CHECKING:
    from zmqtest.deadline import Deadline
    from zmqtest.settings import Settings
    from zmqtest.transcript import Transcript

SHARED = "(started by a fixture's own ProcessManager, not zmq_process_factory: the tail may hold earlier output)"
"""The first line of the report's section on a process the test did not start but ran beside."""
_REAPER_REPORTED = pytest.StashKey[bool]()
_MARKER_PROBLEM = pytest.StashKey[str]()
_TRANSCRIPT: pytest.StashKey[Transcript] = pytest.StashKey()
_DEADLINE: pytest.StashKey[Deadline] = pytest.StashKey()
_PYTEST_TIMEOUT = pytest.StashKey[bool]()
_DEADLINE_PROBLEM = pytest.StashKey[str]()


def _item_settings(item: pytest.Item, session: Settings) -> Settings:
    """Apply a ``@pytest.mark.zmqtest(...)`` marker over the session's settings."""
    marker = item.get_closest_marker("zmqtest")
    if marker is None:
        return session
    from zmqtest.settings import NAMES, parse

    where = f"@pytest.mark.zmqtest on {item.nodeid}"
    unknown = sorted(set(marker.kwargs) - set(NAMES))
    if marker.args or unknown:
        given = ", ".join([*map(repr, marker.args), *unknown])
        raise ValueError(f"{where} takes only the keyword arguments {', '.join(NAMES)}; got {given}")
    changes = {name: parse(name, value, f"{where} ({name}=...)") for name, value in marker.kwargs.items()}
    return session.replace(**changes) if changes else session


def item_settings(item: pytest.Item) -> Settings:
    """The settings in force for ``item`` (for fixtures: marker > command line > ini > default)."""
    session, _ = _session_settings(item.config)
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
    from zmqtest import settings as zsettings
    from zmqtest import transcript as ztranscript

    settings, _ = _session_settings(item.config)
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
    if record is None or not _current_settings().strict:
        return (yield)
    from zmqtest.compat import add_note
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


def _current_settings() -> Settings:
    from zmqtest.settings import current  # loaded already: a test that records uses zmqtest

    return current()


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

    from zmqtest.deadline import Deadline, teardown_grace

    deadline = Deadline(seconds, item.nodeid, grace=teardown_grace(settings), states=states, note=note)
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
    from zmqtest.deadline import disarm_current

    disarm_current()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Drive a ProcessTest generator test with its fixtures as arguments."""
    __tracebackhide__ = True
    test = pyfuncitem.obj
    instance = pyfuncitem.instance
    if instance is None or not _is_process_test(type(instance)):
        return None
    if getattr(test, "__zmqtest_stand_in__", False):  # an async conversation (see plugin.pytest_pycollect_makeitem)
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

    A plugin of its own, registered with this module, at the hook's normal priority: after
    anyio's (``tryfirst``; a test with ``anyio_backend`` is anyio's anyway), after
    pytest-asyncio (whose tests reach the hook as plain functions), before pytest's refusal
    of the test (``trylast``).
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
    if (
        record is not None  # a test that records uses zmqtest: its settings are loaded
        and record.recording
        and (report.failed or (report.when == "call" and _current_settings().transcript == "always"))
        and record.eventful()
    ):
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
    if report.failed:
        manager = item.stash.get(PROCESSES, None)
        own = list(manager.processes) if manager is not None else []
        for process in own:
            report.sections.append((f"zmqtest process {process.name} ({report.when})", process.report()))
        for process in _shared_processes(own):
            text = f"{SHARED}\n{process.report()}"
            report.sections.append((f"zmqtest process {process.name} ({report.when})", text))
    reaper_problem = _reaper_problem()
    if reaper_problem is not None and not item.config.stash.get(_REAPER_REPORTED, False):
        item.config.stash[_REAPER_REPORTED] = True
        report.user_properties = [*report.user_properties, (REAPER_PROBLEM, reaper_problem)]  # not the item's list
    return report


def _shared_processes(own: list[Any]) -> list[Any]:
    """Return the processes under test that the test did not start but watched: a session or module fixture's."""
    from zmqtest.managed import ManagedProcess
    from zmqtest.waiting import any_watched

    return [p for p in dict.fromkeys(any_watched()) if isinstance(p, ManagedProcess) and p not in own]


def _export(item: pytest.Item, report: pytest.TestReport, record: Transcript, outcome: str | None, text: str) -> str:
    """A failing test's transcript as data: a JSON Lines file (setting ``transcript_dir``), a sequence diagram in
    pytest-html's report, the text as a property of the test in JUnit XML; each only when asked for.

    Returns the line that the report's section adds (where the file is, or why it is not).
    """
    config = item.config
    directory = _current_settings().transcript_dir
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
