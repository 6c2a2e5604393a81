"""System tests: run the whole program, and compare what it did with a golden file.

- :func:`run` runs a command line with a deadline and captures its stdout, stderr
  and exit status (a :class:`RunResult`). The program starts in its own session, so
  the deadline (and any error, or Ctrl-C) SIGKILLs its whole process group; what it
  left running in that group when it ended is killed too (and listed in
  :attr:`RunResult.leftovers`). Its output goes to anonymous temporary files, not
  pipes: a grandchild that keeps a pipe open cannot stall us, nothing is read while
  it runs, and no file is left behind whatever happens.
- :class:`Normaliser` turns volatile output (ports, pids, timestamps, temporary
  paths, ipc paths; plus the user's own regex substitutions) into stable tokens.
- :class:`GoldenFiles` compares an output (a :class:`RunResult`, a string, or
  JSON-able data such as the replies a mimic client received) with a golden file in
  a directory; a difference fails with a unified diff, and in update mode
  (``--zmqtest-update-golden``) the file is written instead.

Works without pytest; the ``zmq_golden`` fixture is a :class:`GoldenFiles` for the
test's directory (``golden/``) and settings. Linux only, like the rest of the
process handling (pidfds).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import select
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from zmqtest import backstop
from zmqtest.errors import ProcessError, WaitTimeout, ZmqTestError
from zmqtest.groups import MARK, clear_group, descendants, start_time, status_text, wait_gone
from zmqtest.managed import require_linux, start_session
from zmqtest.settings import parse_timeout

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

DEFAULT_RUN_TIMEOUT = 30.0
"""Seconds a program may run before :func:`run` kills it."""
KILL_WAIT = 5.0
"""Seconds to wait for a SIGKILLed process to be gone (it can only be slow in the kernel)."""
GROUP_POLL = 0.01
"""Longest pause between two looks at what is left of a killed process group (a death ends it at once)."""
TAIL_LINES = 20
"""Lines of output an error message quotes."""
UPDATE_HINT = (
    "If the new output is right, rewrite the golden file: run pytest with --zmqtest-update-golden "
    "(without pytest: GoldenFiles(..., update=True)), then review the change (git diff)."
)

Replacement = str | Callable[[re.Match[str]], str]
Substitution = tuple[str | re.Pattern[str], Replacement]
"""A user's ``(pattern, replacement)``: a regex (text or compiled) and what :func:`re.sub` puts instead."""


# ------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunResult:
    """What a program did: its exit status and everything it wrote."""

    argv: tuple[str, ...]
    returncode: int
    """The exit code; ``-N`` if a signal N killed it."""
    stdout_bytes: bytes
    stderr_bytes: bytes
    seconds: float
    """How long it ran."""
    pid: int
    cwd: str | None = None
    leftovers: tuple[int, ...] = ()
    """Processes of its group still running when it ended; :func:`run` killed them."""

    @property
    def stdout(self) -> str:
        """stdout as text (UTF-8; a byte that is not shows as ``\\xNN``)."""
        return self.stdout_bytes.decode("utf-8", errors="backslashreplace")

    @property
    def stderr(self) -> str:
        """stderr as text (UTF-8; a byte that is not shows as ``\\xNN``)."""
        return self.stderr_bytes.decode("utf-8", errors="backslashreplace")

    @property
    def status(self) -> str:
        """``exited with code 0``, ``exited with code 3``, ``killed by SIGTERM``."""
        return status_text(self.returncode)

    def __str__(self) -> str:
        return f"{shlex.join(self.argv)}: {self.status} after {self.seconds:.3g} s"


class RunTimeout(WaitTimeout):
    """A program run by :func:`run` was still running at its deadline; its process group was killed.

    A :class:`TimeoutError`. ``stdout`` and ``stderr`` hold what it wrote until then;
    ``pid`` was its pid (and its process group's id).
    """

    def __init__(
        self, message: str, *, argv: Sequence[str], timeout: float, pid: int, stdout: str, stderr: str
    ) -> None:
        super().__init__(message, what=shlex.join(argv), timeout=timeout)
        self.argv = tuple(argv)
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_RUN_TIMEOUT,
) -> RunResult:
    """Run the command line ``argv`` until it ends, at most ``timeout`` seconds; what it did.

    ``stdin``: text (sent as UTF-8) or bytes for its standard input; ``None`` gives it
    an empty one (never the terminal's). ``env``: its whole environment (as for
    :class:`subprocess.Popen`; default: ours); ``PYTHONUNBUFFERED=1`` is added unless
    set, so that a Python program killed at the deadline has written what it printed.
    ``cwd``: its directory.

    A non-zero exit is not an error here: check :attr:`RunResult.returncode` (or
    compare the whole result with a golden file). Raises :class:`RunTimeout` (with
    the output so far) at the deadline, :class:`StartError` if it cannot start.
    """
    __tracebackhide__ = True
    require_linux()
    command = _check_argv(argv)
    seconds = parse_timeout(timeout, "the timeout= argument of run()")
    data = _stdin_bytes(stdin)
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    environment[MARK] = mark = backstop.new_mark()
    where = None if cwd is None else os.fspath(cwd)
    with contextlib.ExitStack() as files:
        out = files.enter_context(tempfile.TemporaryFile())  # unlinked at once: nothing to clean up, ever
        err = files.enter_context(tempfile.TemporaryFile())
        given: IO[bytes] | int = subprocess.DEVNULL
        if data is not None:
            given = files.enter_context(tempfile.TemporaryFile())
            given.write(data)
            given.seek(0)
        started = time.monotonic()
        backstop.arm()
        popen = start_session(
            command, os.path.basename(command[0]), stdin=given, stdout=out, stderr=err, cwd=where, env=environment
        )
        backstop.register(popen.pid)
        began = start_time(popen.pid)
        ended = False
        try:
            ended = _wait_for_end(popen.pid, seconds)
        finally:
            escaped = [] if ended else descendants(popen.pid)
            if not ended:  # the deadline, or an exception (Ctrl-C) while we waited
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)  # not reaped yet: its pid and group number are its own
                wait_gone([popen.pid], KILL_WAIT)
            found, _ = clear_group(popen.pid, KILL_WAIT)  # still before it is reaped, for the same reason
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(KILL_WAIT)
            leftovers = (*found, *backstop.sweep(mark, began, escaped))
            backstop.unregister(popen.pid)
        took = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if not ended:
        raise _deadline_error(command, popen.pid, where, seconds, stdout, stderr)
    if popen.returncode is None:  # only a process stuck in the kernel survives a SIGKILL this long
        raise ProcessError(
            f"{shlex.join(command)} (pid {popen.pid}) ended but could not be reaped within {KILL_WAIT:g} s"
        )
    return RunResult(
        argv=tuple(command),
        returncode=popen.returncode,
        stdout_bytes=stdout,
        stderr_bytes=stderr,
        seconds=took,
        pid=popen.pid,
        cwd=where,
        leftovers=leftovers,
    )


def _check_argv(argv: object) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError(
            f"run() takes the command line as a list of arguments, not a string: {argv!r} "
            "(split one with shlex.split(); no shell is involved)"
        )
    if not isinstance(argv, Sequence) or not argv:
        raise TypeError(f"run() takes the command line as a non-empty list of arguments, got {argv!r}")
    command = []
    for index, item in enumerate(argv):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"argument {index} of the command line is {item!r}: each must be a str or a path")
        command.append(str(os.fspath(item)))
    return command


def _stdin_bytes(stdin: object) -> bytes | None:
    if stdin is None or isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode()
    raise TypeError(f"stdin must be text, bytes or None, got {type(stdin).__name__}")


def _wait_for_end(pid: int, timeout: float) -> bool:
    """Wait at most ``timeout`` s for ``pid`` to end (through a pidfd: no polling loop); whether it ended."""
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _deadline_error(
    command: list[str], pid: int, cwd: str | None, timeout: float, stdout: bytes, stderr: bytes
) -> RunTimeout:
    out = stdout.decode("utf-8", errors="backslashreplace")
    err = stderr.decode("utf-8", errors="backslashreplace")
    lines = [
        f"{shlex.join(command)} (pid {pid}) was still running at its {timeout:g} s deadline: "
        "its process group was killed (SIGKILL)",
        *([f"in directory: {cwd}"] if cwd is not None else []),
        _tail("stdout so far", out),
        _tail("stderr so far", err),
    ]
    return RunTimeout("\n".join(lines), argv=command, timeout=timeout, pid=pid, stdout=out, stderr=err)


def _tail(label: str, text: str, lines: int = TAIL_LINES) -> str:
    if not text:
        return f"--- {label}: nothing ---"
    kept = text.splitlines()
    shown = "\n".join(kept[-lines:])
    return f"--- {label} (last {lines} lines) ---\n{shown}" if len(kept) > lines else f"--- {label} ---\n{shown}"


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
    """The system's temporary directories, as written and resolved, longest first."""
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
    """One rule per known path (as given and resolved), longest first, so that a path inside another wins."""
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
    """The text a golden file holds for ``actual`` (before normalising).

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

    ``zmq_golden``, the pytest fixture, is one of these for ``golden/`` next to the
    test file, with ``update`` from ``--zmqtest-update-golden`` and the test's
    ``tmp_path`` among the ``paths`` to normalise. Tune it per test:
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

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_RUN_TIMEOUT,
    ) -> RunResult:
        """:func:`run`: run a command line with a deadline and capture what it did."""
        __tracebackhide__ = True
        return run(argv, stdin=stdin, env=env, cwd=cwd, timeout=timeout)

    @property
    def normaliser(self) -> Normaliser:
        """The normaliser made of this object's current ``substitutions``, ``builtins`` and ``paths``."""
        return Normaliser(self.substitutions, builtins=self.builtins, paths=self.paths)

    def normalise(self, actual: object) -> str:
        """The text that :meth:`check` compares for ``actual``: :func:`render`, then the normaliser."""
        return self.normaliser(render(actual))

    def path(self, name: str | os.PathLike[str] | None = None) -> Path:
        """The golden file called ``name`` (default: ``default_name``), in :attr:`directory`."""
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
                f"{_tail('the output (normalised)', text, 40)}",
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
    """``path`` relative to the current directory if it is inside it (what to type for ``git diff``), else absolute."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


def _diff(expected: str, actual: str, shown: str) -> str:
    lines = difflib.unified_diff(_diff_lines(expected), _diff_lines(actual), f"{shown} (golden)", f"{shown} (actual)")
    return "".join(lines)


def _diff_lines(text: str) -> list[str]:
    """Lines for difflib; a last line without a newline is marked as diff marks it."""
    lines = [line + "\n" for line in text.split("\n")]  # on \n only: a \r stays part of its line
    if lines[-1] == "\n":
        lines.pop()  # the text ended with a newline (or was empty)
    else:
        lines[-1] = lines[-1][:-1] + "\n\\ No newline at end of file\n"
    return lines
