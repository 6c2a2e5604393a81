"""System tests: compare what a whole program did with a golden file.

- :func:`run` (from :mod:`zmqtest.commands`, re-exported here) runs a command line
  with a deadline and captures its stdout, stderr and exit status (a :class:`RunResult`).
- :class:`Normaliser` turns volatile output (ports, pids, timestamps, temporary
  paths, ipc paths; plus the user's own regex substitutions) into stable tokens.
- :class:`GoldenFiles` compares an output (a :class:`RunResult`, a string, or
  JSON-able data such as the replies a mimic client received) with a golden file in
  a directory; a difference fails with a unified diff, and in update mode
  (``--zmqtest-update-golden``) the file is written instead.

Works without pytest (nothing here imports it); :meth:`GoldenFiles.for_test` makes
the one a pytest test gets as the ``zmq_golden`` fixture, from the test's request.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

# run() and its result live in zmqtest.commands now; users' code and older docs import them from here.
from zmqtest.commands import DEFAULT_RUN_TIMEOUT, RunResult, RunTimeout, run, tail
from zmqtest.errors import ZmqTestError
from zmqtest.settings import current

if TYPE_CHECKING:
    import pytest

__all__ = [
    "BUILTIN_NORMALISERS",
    "DEFAULT_RUN_TIMEOUT",
    "GoldenFiles",
    "GoldenMismatch",
    "GoldenMissing",
    "Normaliser",
    "RunResult",
    "RunTimeout",
    "render",
    "run",
]

UPDATE_HINT = (
    "If the new output is right, rewrite the golden file: run pytest with --zmqtest-update-golden "
    "(without pytest: GoldenFiles(..., update=True)), then review the change (git diff)."
)
WRITTEN_PROPERTY = "zmqtest golden file written"
"""The user property a test's report carries per golden file it wrote (``zmqtest.fixtures.GOLDEN_WRITTEN``)."""
_DEFAULT_OWNERS: weakref.WeakKeyDictionary[object, dict[Path, str]] = weakref.WeakKeyDictionary()
"""Per pytest run (its config), which test used each default golden file: two tests must not share one."""

Replacement = str | Callable[[re.Match[str]], str]
Substitution = tuple[str | re.Pattern[str], Replacement]
"""A user's ``(pattern, replacement)``: a regex (text or compiled) and what :func:`re.sub` puts instead."""


# ------------------------------------------------------------------------------------------- normalising

_SEGMENT_CHAR = r"""[^/\s'"`<>()\[\]{},;|]"""
"""A character of a path's segment in running text: not a slash, space, quote, bracket or separator."""
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"

Rule = tuple[re.Pattern[str], Replacement]

_IPC_RULES: list[Rule] = [
    # ipc:///tmp/zmqtest-x1y2/pong -> ipc://<IPC>/pong: the directory is random, the name is the test's
    (re.compile(rf"ipc://(?!@)(?:{_SEGMENT_CHAR}*/)+({_SEGMENT_CHAR}+)"), r"ipc://<IPC>/\1"),
]
_PORT_RULES: list[Rule] = [
    (
        re.compile(r"\b((?:tcp|udp|ws|wss|http|https)://(?:\[[0-9A-Fa-f:.]*\]|[^\s/:\[\]'\"]+)):\d{1,5}(?!\d)"),
        r"\1:<PORT>",
    ),
    (re.compile(r"(?<![\w.:])((?:\d{1,3}\.){3}\d{1,3}|localhost|\[[0-9A-Fa-f:.]*\]):\d{1,5}(?![\d.])"), r"\1:<PORT>"),
    (re.compile(r"\b((?i:port))(\s*[=:#]?\s*)\d{1,5}\b"), r"\1\2<PORT>"),
]
_TIMESTAMP_RULES: list[Rule] = [
    # ISO 8601 / RFC 3339, and Python logging's "2024-01-02 03:04:05,678"
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?(?![\d])"),
        "<TIMESTAMP>",
    ),
    (re.compile(r"\b\d{8}T\d{6}(?:[.,]\d+)?(?:Z|[+-]\d{4})?\b"), "<TIMESTAMP>"),  # ISO 8601 basic format
    (re.compile(rf"\b\d{{2}}/{_MONTH}/\d{{4}}:\d{{2}}:\d{{2}}:\d{{2}} [+-]\d{{4}}"), "<TIMESTAMP>"),  # common log
    (
        re.compile(rf"\b{_DAY}, \d{{1,2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}} (?:GMT|UTC|[+-]\d{{4}})"),
        "<TIMESTAMP>",
    ),
    (re.compile(rf"\b{_DAY} {_MONTH} [ \d]\d \d{{2}}:\d{{2}}:\d{{2}}(?: \d{{4}})?\b"), "<TIMESTAMP>"),  # ctime
    (re.compile(rf"\b{_MONTH} [ \d]\d \d{{2}}:\d{{2}}:\d{{2}}\b"), "<TIMESTAMP>"),  # syslog
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<DATE>"),
    (re.compile(r"(?<![\d:])\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?![\d:])"), "<TIME>"),
]
_PID_RULES: list[Rule] = [
    (re.compile(r"\b((?i:p?pid))(\s*[=:#]?\s*)\d+\b"), r"\1\2<PID>"),  # pid 4242, pid=4242, PID: 4242, ppid=1
    (re.compile(r"\b([A-Za-z_][\w.-]*)\[\d+\]:"), r"\1[<PID>]:"),  # syslog's "prog[4242]:"
]

BUILTIN_NORMALISERS = ("ipc_paths", "temp_paths", "ports", "timestamps", "pids")
"""The built-in normalisers, in the order they apply (after the user's substitutions)."""


def _temp_roots() -> list[str]:
    """Return the system's temporary directories, as written and resolved, longest first."""
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    roots |= {os.path.realpath(root) for root in roots}
    return sorted((root.rstrip("/") for root in roots if root.rstrip("/")), key=len, reverse=True)


class Normaliser:
    """Turns volatile parts of an output into stable tokens, so that it can be compared with a golden file.

    Applied in this order:

    1. ``substitutions``: the user's ``(pattern, replacement)`` pairs (or a mapping),
       each :func:`re.sub` in turn, on the raw output;
    2. the built-ins (``builtins=True``, ``False``, or the names of the ones wanted):

       - ``ipc_paths``: the directory of an ipc endpoint (``ipc://<IPC>/pong``);
       - ``temp_paths``: each of ``paths`` (``{path: token}``, e.g. the test's
         ``tmp_path`` -> ``<TMP_PATH>``) and then the first directory under the
         system's temporary directory (``/tmp/pp-x1y2/out`` -> ``<TMP>/out``);
       - ``ports``: ``tcp://127.0.0.1:<PORT>``, ``localhost:<PORT>``, ``port <PORT>``;
       - ``timestamps``: ISO 8601 (``<TIMESTAMP>``, ``<DATE>``), logging's and common
         log formats, ctime, syslog, times of day (``<TIME>``);
       - ``pids``: ``pid <PID>``, ``pid=<PID>``, ``PID: <PID>``, ``prog[<PID>]:``.

    A bad pattern or an unknown built-in name raises :class:`ValueError` at once.
    """

    def __init__(
        self,
        substitutions: Iterable[Substitution] | Mapping[str | re.Pattern[str], Replacement] = (),
        *,
        builtins: bool | Iterable[str] = True,
        paths: Mapping[str | os.PathLike[str], str] | None = None,
    ) -> None:
        self.rules: list[Rule] = _user_rules(substitutions)
        self.builtins = _builtin_names(builtins)
        for name in self.builtins:
            self.rules.extend(_builtin_rules(name, paths or {}))

    def __call__(self, text: str) -> str:
        for pattern, replacement in self.rules:
            text = pattern.sub(replacement, text)
        return text

    def __repr__(self) -> str:
        return f"<Normaliser {len(self.rules)} rules, built-ins: {', '.join(self.builtins) or 'none'}>"


def _user_rules(substitutions: object) -> list[Rule]:
    pairs = list(substitutions.items()) if isinstance(substitutions, Mapping) else substitutions
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise TypeError(f"substitutions must be (pattern, replacement) pairs or a mapping, got {substitutions!r}")
    rules: list[Rule] = []
    for index, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"substitutions[{index}] is {pair!r}: expected a (pattern, replacement) pair")
        pattern, replacement = pair
        if not (isinstance(replacement, str) or callable(replacement)):
            raise TypeError(f"substitutions[{index}]: the replacement {replacement!r} is not a str or a callable")
        if isinstance(pattern, re.Pattern):
            rules.append((pattern, replacement))
            continue
        if not isinstance(pattern, str):
            raise TypeError(f"substitutions[{index}]: the pattern {pattern!r} is not a str or a compiled regex")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"substitutions[{index}]: invalid regex {pattern!r}: {exc}") from None
        rules.append((compiled, replacement))
    return rules


def _builtin_names(builtins: object) -> tuple[str, ...]:
    if builtins is True:
        return BUILTIN_NORMALISERS
    if builtins is False or builtins is None:
        return ()
    if isinstance(builtins, str):
        builtins = [builtins]
    if not isinstance(builtins, Iterable):
        raise TypeError(f"builtins must be True, False or names of built-in normalisers, got {builtins!r}")
    wanted = list(builtins)
    unknown = [name for name in wanted if name not in BUILTIN_NORMALISERS]
    if unknown:
        raise ValueError(
            f"unknown built-in normaliser {', '.join(map(repr, unknown))}: the built-ins are "
            f"{', '.join(BUILTIN_NORMALISERS)}"
        )
    return tuple(name for name in BUILTIN_NORMALISERS if name in wanted)


def _builtin_rules(name: str, paths: Mapping[str | os.PathLike[str], str]) -> list[Rule]:
    if name == "temp_paths":
        return [*_path_rules(paths), _temp_rule()]
    return {"ipc_paths": _IPC_RULES, "ports": _PORT_RULES, "timestamps": _TIMESTAMP_RULES, "pids": _PID_RULES}[name]


def _path_rules(paths: Mapping[str | os.PathLike[str], str]) -> list[Rule]:
    """Make one rule per known path (as given and resolved), longest first, so that a path inside another wins."""
    spelled: dict[str, str] = {}
    for path, token in paths.items():
        text = os.fspath(path).rstrip("/")
        if text:
            spelled.setdefault(text, token)
            spelled.setdefault(os.path.realpath(text), token)
    return [
        (re.compile(rf"{re.escape(text)}(?![\w-])"), token.replace("\\", r"\\"))
        for text, token in sorted(spelled.items(), key=lambda item: len(item[0]), reverse=True)
    ]


def _temp_rule() -> Rule:
    roots = "|".join(map(re.escape, _temp_roots()))
    return re.compile(rf"(?<![\w.-])(?:{roots})/{_SEGMENT_CHAR}+"), "<TMP>"


# ------------------------------------------------------------------------------------------- golden files


class GoldenMismatch(ZmqTestError, AssertionError):
    """An output differs from its golden file (the message is a unified diff). An :class:`AssertionError`."""

    def __init__(self, message: str, *, path: Path, expected: str | None, actual: str) -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class GoldenMissing(GoldenMismatch):
    """The golden file for an output does not exist yet."""


def render(actual: object) -> str:
    """Return the text a golden file holds for ``actual`` (before normalising).

    - a :class:`RunResult`: its exit status, then its stdout and its stderr, each
      under a header (``--- stdout ---``, ``--- stderr (empty) ---``; a stream that
      does not end with a newline says so in its header);
    - a ``str`` as it is; ``bytes`` as UTF-8 text (other bytes as ``\\xNN``);
    - a list or tuple (say, the replies a mimic client received): one JSON value per line;
    - anything else JSON can encode: indented JSON.
    """
    if isinstance(actual, RunResult):
        return f"{actual.status}\n{_section('stdout', actual.stdout)}{_section('stderr', actual.stderr)}"
    if isinstance(actual, str):
        return actual
    if isinstance(actual, (bytes, bytearray)):
        return bytes(actual).decode("utf-8", errors="backslashreplace")
    try:
        if isinstance(actual, (list, tuple)):
            return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in actual)
        return json.dumps(actual, indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cannot write {type(actual).__name__} to a golden file ({exc}): give a RunResult, a str, bytes, "
            "or data JSON can encode"
        ) from None


def _section(label: str, text: str) -> str:
    if not text:
        return f"--- {label} (empty) ---\n"
    if not text.endswith("\n"):
        return f"--- {label} (no newline at end) ---\n{text}\n"
    return f"--- {label} ---\n{text}"


class GoldenFiles:
    """Golden files in one directory: compare outputs with them, or (``update=True``) write them.

    ``zmq_golden``, the pytest fixture, is one of these made by :meth:`for_test`: for
    ``golden/`` next to the test file, with ``update`` from ``--zmqtest-update-golden``
    and the test's ``tmp_path`` among the ``paths`` to normalise. Tune it per test:
    ``zmq_golden.substitutions.append((r"took \\d+ ms", "took <N> ms"))``,
    ``zmq_golden.builtins = False`` (or ``("ports", "pids")``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        update: bool = False,
        substitutions: Iterable[Substitution] = (),
        builtins: bool | Iterable[str] = True,
        paths: Mapping[str | os.PathLike[str], str] | None = None,
        default_name: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.update = update
        self.substitutions: list[Substitution] = list(substitutions)
        self.builtins = builtins
        self.paths: dict[str | os.PathLike[str], str] = dict(paths or {})
        self.default_name = default_name
        self.written: list[tuple[Path, str]] = []
        """``(path, "created" | "updated")`` for each file written in update mode."""
        self.used_default = False
        """Whether :meth:`check` has compared an output with the default golden file."""

    @classmethod
    def for_test(cls, request: pytest.FixtureRequest) -> GoldenFiles:
        """Make the golden files for the pytest test that ``request`` belongs to: what ``zmq_golden`` is.

        ``golden/`` next to the test file; the default file named after the test, with
        its class and parameters (``TestCli.test_help[short].txt``); ``update`` from
        zmqtest's settings in force; the test's ``tmp_path`` and pytest's base temporary
        directory normalised to ``<TMP_PATH>`` and ``<BASETEMP>``. When the test ends,
        each file written goes into its report (the run's summary lists them), and the
        test fails if another test of the run used the same default file.

        Takes the request rather than plain values, so that the fixture (or a user's own,
        for another directory: change :attr:`directory`) is one line, and so that the end of
        the test is handled too (``request.addfinalizer``). Uses only the request's public
        API and imports pytest only to fail a test: golden files work without pytest.
        """
        test = request.node
        name = test.name if request.cls is None else f"{request.cls.__name__}.{test.name}"
        basetemp = request.getfixturevalue("tmp_path_factory").getbasetemp()
        golden = cls(
            request.path.parent / "golden",
            update=current().update_golden,
            paths={request.getfixturevalue("tmp_path"): "<TMP_PATH>", basetemp: "<BASETEMP>"},
            default_name=re.sub(r"[^\w.\-\[\]=,+@]", "_", name) + ".txt",
        )
        request.addfinalizer(lambda: golden._end_test(request))
        return golden

    def _end_test(self, request: pytest.FixtureRequest) -> None:
        """Record the files written in the test's report; fail if another test used the same default file."""
        test, root = request.node, request.config.rootpath
        for path, how in self.written:
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            test.user_properties.append((WRITTEN_PROPERTY, f"{how} {shown}"))
        if not self.used_default:
            return
        owner = _DEFAULT_OWNERS.setdefault(request.config, {}).setdefault(self.path(), test.nodeid)
        if owner != test.nodeid:
            import pytest  # only now: a test that ends means pytest runs

            pytest.fail(
                f"{test.nodeid} and {owner} both use {self.path()} as their default golden file: "
                "give one of them a name of its own, zmq_golden.check(output, 'name.txt')",
                pytrace=False,
            )

    run = staticmethod(run)
    """:func:`run`, here so that a test's ``zmq_golden`` runs the program it checks."""

    @property
    def normaliser(self) -> Normaliser:
        """Build the normaliser of this object's current ``substitutions``, ``builtins`` and ``paths``."""
        return Normaliser(self.substitutions, builtins=self.builtins, paths=self.paths)

    def normalise(self, actual: object) -> str:
        """Return the text that :meth:`check` compares for ``actual``: :func:`render`, then the normaliser."""
        return self.normaliser(render(actual))

    def path(self, name: str | os.PathLike[str] | None = None) -> Path:
        """Return the path of the golden file ``name`` (default: ``default_name``) in :attr:`directory`."""
        chosen = self.default_name if name is None else name
        if chosen is None:
            raise ValueError("no golden file name given, and this GoldenFiles has no default_name")
        return self.directory / chosen

    def check(self, actual: object, name: str | os.PathLike[str] | None = None) -> None:
        """Compare ``actual`` (normalised, see :meth:`normalise`) with the golden file ``name``.

        Equal: nothing happens. Different or missing: :class:`GoldenMismatch` (a unified
        diff, golden file against actual output) or :class:`GoldenMissing`, unless in
        update mode, where the file (and its directory) is written instead and
        recorded in :attr:`written`. ``name`` defaults to ``default_name`` (for the
        fixture, the test's name), which one test can use once: name the others.
        """
        __tracebackhide__ = True
        if name is None:
            if self.used_default:
                raise ValueError(
                    f"this test already compared an output with its default golden file {self.path()}: "
                    "give each further check a name of its own, e.g. check(output, 'second.txt')"
                )
            self.used_default = True
        path = self.path(name)
        text = self.normalise(actual)
        expected = _read(path)
        if expected == text:
            return
        if self.update:
            _write(path, text)
            self.written.append((path, "created" if expected is None else "updated"))
            return
        shown = _display(path)
        if expected is None:
            raise GoldenMissing(
                f"golden file {shown} does not exist\n"
                f"To create it from this output, run pytest with --zmqtest-update-golden "
                "(without pytest: GoldenFiles(..., update=True)), then review and commit it.\n"
                f"{tail('the output (normalised)', text, 40)}",
                path=path,
                expected=None,
                actual=text,
            )
        raise GoldenMismatch(
            f"output differs from golden file {shown} (- golden, + actual)\n{_diff(expected, text, shown)}"
            + UPDATE_HINT,
            path=path,
            expected=expected,
            actual=text,
        )

    def __repr__(self) -> str:
        mode = "update" if self.update else "compare"
        return f"<GoldenFiles {self.directory} ({mode}){f' default {self.default_name}' if self.default_name else ''}>"


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as file:  # newline="": a \r\n is compared as it is
            return file.read()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader, or a parallel writer, never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as file:  # the umask applies, as for any new file
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _display(path: Path) -> str:
    """Show ``path`` relative to the current directory if inside it (what to type for ``git diff``), else absolute."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


def _diff(expected: str, actual: str, shown: str) -> str:
    lines = difflib.unified_diff(_diff_lines(expected), _diff_lines(actual), f"{shown} (golden)", f"{shown} (actual)")
    return "".join(lines)


def _diff_lines(text: str) -> list[str]:
    """Split ``text`` into lines for difflib; mark a last line without a newline as diff does."""
    lines = [line + "\n" for line in text.split("\n")]  # on \n only: a \r stays part of its line
    if lines[-1] == "\n":
        lines.pop()  # the text ended with a newline (or was empty)
    else:
        lines[-1] = lines[-1][:-1] + "\n\\ No newline at end of file\n"
    return lines
