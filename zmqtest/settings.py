"""Harness settings: what they are, their validation, and the values in force.

This module imports nothing heavy, so that the pytest plugin can read and check
options in every project without importing pyzmq.

The settings in force live in a :class:`contextvars.ContextVar`: the pytest plugin
sets them for each test (marker > command line > ini > default), and code that runs
without pytest can use :func:`using` or :func:`default_timeout`.

PYTEST_DONT_REWRITE: it has no asserts, so pytest's assertion rewriter, which passes every module of a plugin's
distribution through it, need not walk it where it cannot use a cached copy (``PYTHONDONTWRITEBYTECODE``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, cast, get_args

from zmqtest.options import FLAG, OPTIONS

T = TypeVar("T")

DEFAULT_TIMEOUT = 1.0
"""Seconds a mimic socket waits for a send or receive when nothing else is set."""
StartMethod = Literal["fork", "forkserver", "spawn"]
"""How a ``multiprocessing.Process`` under test starts (a type checker catches a misspelt one)."""
TranscriptWhen = Literal["failed", "always", "never"]
"""Which test reports show the transcript."""
START_METHODS: tuple[StartMethod, ...] = get_args(StartMethod)
TRANSCRIPT_WHEN: tuple[TranscriptWhen, ...] = get_args(TranscriptWhen)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class Settings:
    """zmqtest's settings; each field is also a command-line option, an ini key and a marker keyword."""

    timeout: float = DEFAULT_TIMEOUT
    """Seconds a mimic socket waits for a send or receive."""
    start_method: StartMethod = "forkserver"
    """How multiprocessing children start: fork, forkserver or spawn (not the interpreter's default)."""
    startup_timeout: float = 10.0
    """Seconds a process under test may take to start and become ready."""
    stop_grace: float = 2.0
    """Seconds each stop stage (stop message or SIGINT, then SIGTERM, then SIGKILL) waits for the process."""
    transcript: TranscriptWhen = "failed"
    """Which test reports show the transcript of messages and process events: failed, always or never."""
    strict: bool = False
    """Fail a test whose mimic sockets still hold unread messages at its end."""
    update_golden: bool = False
    """Rewrite golden files with the output of system tests instead of failing on a difference."""
    deadline: float | None = None
    """Seconds a whole test (setup, call, teardown) may take before zmqtest fails it and tears it down; None: none."""
    transcript_dir: str | None = None
    """Where a failing test's transcript is written as JSON Lines (relative: to where pytest started); None: not."""

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


NAMES = tuple(field.name for field in dataclasses.fields(Settings))
"""The settings' names, in order: each is also a command-line option, an ini key and a keyword of the marker."""

_settings: ContextVar[Settings] = ContextVar("zmqtest_settings", default=Settings())  # noqa: B039 (frozen)


settings_in_force = _settings.get
"""``settings_in_force()``: the settings in force, as :func:`current` returns them, in one C call (for hot paths)."""


def current() -> Settings:
    """The settings in force."""
    return _settings.get()


def current_timeout() -> float:
    """The default timeout (seconds) for mimic sockets that have none of their own."""
    return _settings.get().timeout


def using(settings: Settings) -> AbstractContextManager[Settings]:
    """Make ``settings`` the ones in force inside the ``with`` block."""
    return in_force(_settings, settings)


@contextmanager
def in_force(variable: ContextVar[Any], value: T) -> Iterator[T]:
    """Set ``variable`` to ``value`` inside the ``with`` block, and back to what it was after (the test's "current")."""
    token = variable.set(value)
    try:
        yield value
    finally:
        variable.reset(token)


@contextmanager
def default_timeout(seconds: float) -> Iterator[None]:
    """Make ``seconds`` the default timeout of mimic sockets inside the ``with`` block."""
    with using(current().replace(timeout=parse_timeout(seconds, "default_timeout()"))):
        yield


def parse(name: str, value: object, where: str) -> Any:
    """Check the value of setting ``name``; ``where`` names its source for the error message."""
    return PARSERS[name](value, where)


def parse_timeout(value: object, where: str, *, allow_zero: bool = False) -> float:
    """Check a timeout given in seconds and return it as a float.

    ``where`` names the source of the value (an option, a marker, an argument), so
    that the error tells the user which line to fix.
    """
    bound = "0 or more" if allow_zero else "more than 0"
    problem = f"invalid timeout {value!r} from {where}: expected a number of seconds, {bound}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, str):
        try:
            value = float(value.strip().removesuffix("s"))
        except ValueError:
            raise ValueError(problem) from None
    if not isinstance(value, (int, float)):
        raise ValueError(problem)
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(problem) from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{problem} (an endless wait would let a test hang)" if seconds == math.inf else problem)
    return seconds


def parse_deadline(value: object, where: str) -> float | None:
    """Check a test's deadline: seconds, more than 0; or none at all (``None``, ``0``, ``off``, ``none``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None
    try:
        seconds = parse_timeout(value, where, allow_zero=True)
    except ValueError:
        raise ValueError(
            f"invalid deadline {value!r} from {where}: expected a number of seconds, more than 0, or off"
        ) from None
    return seconds or None


def parse_start_method(value: object, where: str) -> StartMethod:
    """Check a multiprocessing start method name."""
    if isinstance(value, str) and value.strip() in START_METHODS:
        return cast(StartMethod, value.strip())
    raise ValueError(f"invalid start method {value!r} from {where}: expected one of {', '.join(START_METHODS)}")


def parse_transcript(value: object, where: str) -> TranscriptWhen:
    """Check when the transcript is shown."""
    if isinstance(value, str) and value.strip().lower() in TRANSCRIPT_WHEN:
        return cast(TranscriptWhen, value.strip().lower())
    raise ValueError(f"invalid transcript setting {value!r} from {where}: expected one of {', '.join(TRANSCRIPT_WHEN)}")


def parse_flag(value: object, where: str) -> bool:
    """Check an on/off setting: a bool, or one of 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"invalid value {value!r} from {where}: expected true or false (also 1/0, yes/no, on/off)")


def parse_directory(value: object, where: str) -> str | None:
    """Check a directory setting: a path (made when first written to); empty, ``none`` or ``None``: not set."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and "\0" not in value:
        return None if value.strip().lower() in ("", "none") else value.strip()
    raise ValueError(f"invalid directory {value!r} from {where}: expected a path")


PARSERS: dict[str, Callable[[object, str], Any]] = {
    "timeout": parse_timeout,
    "start_method": parse_start_method,
    "startup_timeout": parse_timeout,
    "stop_grace": parse_timeout,
    "transcript": parse_transcript,
    "strict": parse_flag,
    "update_golden": parse_flag,
    "deadline": parse_deadline,
    "transcript_dir": parse_directory,
}
FLAGS = tuple(name for name, (metavar, _) in OPTIONS.items() if metavar == FLAG)
"""The on/off settings: a command-line flag without a value turns them on."""
HELP = {name: help_text for name, (_, help_text) in OPTIONS.items()}
METAVARS = {name: metavar for name, (metavar, _) in OPTIONS.items() if metavar != FLAG}


def _check_described() -> None:
    """Each field of Settings needs a parser here and an option in zmqtest.options, in the fields' order."""
    missing = [f"{name} has no parser in PARSERS (zmqtest/settings.py)" for name in NAMES if name not in PARSERS]
    missing += [f"{name} has no option in OPTIONS (zmqtest/options.py)" for name in NAMES if name not in OPTIONS]
    if missing or tuple(OPTIONS) != NAMES:
        raise ImportError(f"zmqtest settings: {'; '.join(missing) or 'OPTIONS is not in the order of the fields'}")


_check_described()
