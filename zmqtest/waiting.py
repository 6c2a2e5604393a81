"""Waiting on what tests wait for, raced against the death of the processes under test.

Every process a :class:`~zmqtest.processes.ProcessManager` starts is *watched* while
the manager is open: any wait in zmqtest (a mimic socket's send or receive, a
readiness check, :func:`wait_for_message`, :func:`wait_until`) puts the watched
processes' sentinels in the same poll as what it waits for, so a process that dies
ends the wait at once with its exit status and the tail of its output, instead of a
timeout that says nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from zmqtest.errors import ZmqTestError

__all__ = ["Watched", "watched", "watching"]


class Watched(Protocol):
    """What a wait needs to know of a process under test."""

    @property
    def sentinel(self) -> int:
        """A file descriptor that becomes readable when the process has ended."""
        ...

    def describe(self) -> str:
        """The process and its state, e.g. ``PongProc (pid 4242, running)``."""
        ...

    def exit_error(self, waiting_for: str) -> ZmqTestError:
        """The error for a wait (``waiting_for`` says which) that this process's end cut short."""
        ...


_watched: ContextVar[tuple[Watched, ...]] = ContextVar("zmqtest_watched", default=())


def watched() -> tuple[Watched, ...]:
    """The processes whose death ends any wait, now."""
    return _watched.get()


@contextmanager
def watching(*processes: Watched) -> Iterator[None]:
    """Watch ``processes`` (in addition to those watched already) inside the ``with`` block."""
    token = _watched.set(_watched.get() + processes)
    try:
        yield
    finally:
        _watched.reset(token)
