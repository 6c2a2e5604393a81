"""Signals for a process class run in a thread: ``signal.signal`` and ``signal.set_wakeup_fd`` work there, per thread.

A process class's ``run()`` often routes SIGINT and SIGTERM (a handler, a wake-up pipe
polled next to its sockets), and Python allows that in the main thread only. While a
thread is registered here (:func:`registered`), ``signal.signal``, ``signal.getsignal``
and ``signal.set_wakeup_fd`` called *in that thread* read and write a table of its own
instead of the process's; in every other thread they are Python's, unchanged. The test
then "sends" a signal with :meth:`SignalTable.deliver`: the signal's number goes into the
wake-up fd the thread set, and the handler it installed is called, as the C-level
handler and the interpreter would do in a process of its own. A signal sent before the
thread routes it (the test was quicker than the thread's start-up) waits, and is
delivered the moment the thread installs a handler for it.

Limits: the three functions are replaced as attributes of the :mod:`signal` module, so a
``from signal import signal`` made before is not seen; the handler runs in the thread
that delivers (the test's), not the worker's; a signal whose handler is ``SIG_DFL``,
``SIG_IGN`` or Python's default SIGINT handler (``KeyboardInterrupt``) does nothing in a
thread (until the thread installs one): :meth:`deliver` says so by returning False.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["SignalTable", "registered"]

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_real_signal = signal.signal
_real_getsignal = signal.getsignal
_real_set_wakeup_fd = signal.set_wakeup_fd
_REAL = (_real_signal, _real_getsignal, _real_set_wakeup_fd)
_tables: dict[int, SignalTable] = {}
_lock = threading.Lock()


class SignalTable:
    """One thread's signal handlers and wake-up fd, as its own process would have them."""

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}
        self.wakeup_fd = -1
        self.pending: set[int] = set()
        self._lock = threading.Lock()

    def handler(self, signum: int) -> Handler:
        """The handler for ``signum``: the one set in the thread, else the process's (what a child inherits)."""
        return self.handlers[signum] if signum in self.handlers else _real_getsignal(signum)

    def handles(self, signum: int) -> bool:
        """Whether the thread has a Python handler for ``signum`` that a delivery would call."""
        handler = self.handler(signum)
        return callable(handler) and handler is not signal.default_int_handler

    def deliver(self, signum: int) -> bool:
        """Signal the thread: write ``signum`` to its wake-up fd and call its handler.

        False if it handles none yet: the signal is then pending, delivered once it does.
        """
        with self._lock:
            handler = self.handler(signum)
            if not callable(handler) or handler is signal.default_int_handler:
                self.pending.add(signum)
                return False
            self.pending.discard(signum)
            if self.wakeup_fd != -1:
                with contextlib.suppress(OSError):  # a full pipe: a signal is waiting there already
                    os.write(self.wakeup_fd, bytes([signum]))
        handler(signum, None)
        return True

    def _flush(self) -> None:
        """Deliver the pending signals the thread handles now."""
        for signum in sorted(self.pending):
            self.deliver(signum)


def _table() -> SignalTable | None:
    return _tables.get(threading.get_ident())


def _signal(signalnum: int, handler: Handler) -> Handler:
    table = _table()
    if table is None:
        return _real_signal(signalnum, handler)
    signum = signal.Signals(signalnum)  # ValueError for a number that is no signal, as Python's
    if not (callable(handler) or handler in (signal.SIG_DFL, signal.SIG_IGN)):
        raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
    with table._lock:
        old = table.handler(signum)
        table.handlers[signum] = handler
    table._flush()
    return old


def _getsignal(signalnum: int) -> Handler:
    table = _table()
    return _real_getsignal(signalnum) if table is None else table.handler(signalnum)


def _set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    table = _table()
    if table is None:
        return _real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
    if fd != -1 and os.get_blocking(fd):  # OSError for a bad fd, as Python's
        raise ValueError(f"the fd {fd} must be in non-blocking mode")
    old, table.wakeup_fd = table.wakeup_fd, fd
    return old


@contextlib.contextmanager
def registered(table: SignalTable) -> Iterator[None]:
    """Give the calling thread ``table`` while the ``with`` block runs (the module's functions replaced meanwhile)."""
    ident = threading.get_ident()
    with _lock:
        if not _tables:
            signal.signal, signal.getsignal, signal.set_wakeup_fd = _signal, _getsignal, _set_wakeup_fd
        _tables[ident] = table
    try:
        yield
    finally:
        with _lock:
            del _tables[ident]
            if not _tables:
                signal.signal, signal.getsignal, signal.set_wakeup_fd = (
                    _real_signal,
                    _real_getsignal,
                    _real_set_wakeup_fd,
                )
