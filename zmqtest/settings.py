"""Harness settings: their validation, and the timeout in force.

This module imports nothing heavy, so that the pytest plugin can read and check
options in every project without importing pyzmq.

The default timeout of mimic sockets lives in a :class:`contextvars.ContextVar`: the
pytest plugin sets it for each test (marker > command line > ini > default), and
code that runs without pytest can use :func:`default_timeout`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

DEFAULT_TIMEOUT = 1.0
"""Seconds a mimic socket waits for a send or receive when nothing else is set."""

_timeout: ContextVar[float] = ContextVar("zmqtest_timeout", default=DEFAULT_TIMEOUT)


def current_timeout() -> float:
    """The default timeout (seconds) for mimic sockets that have none of their own."""
    return _timeout.get()


@contextmanager
def default_timeout(seconds: float) -> Iterator[None]:
    """Make ``seconds`` the default timeout of mimic sockets inside the ``with`` block."""
    token = _timeout.set(parse_timeout(seconds, "default_timeout()"))
    try:
        yield
    finally:
        _timeout.reset(token)


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
