"""Log records of the process under test, sent to the test over ZeroMQ: the sender's side.

This module runs **in the process under test**, so it stays light (the standard library and
:mod:`zmqtest.plainpush`; not even pyzmq). One call: :func:`forward` reads the collector's endpoint
from the environment variable ``ZMQTEST_LOG_ENDPOINT`` (or takes it as an argument) and puts
a :class:`LogForwarder` on the root logger, which sends every record it sees, and on every logger
that does not propagate (``propagate = False``), now or later. Without an endpoint it does nothing
and returns ``None``, so an application can call it unconditionally.

The test's side, :class:`~zmqtest.logcollector.LogCollector`, lives in
:mod:`zmqtest.logcollector` (its names can still be imported from here: they are loaded
only then).

Wire format: one single-frame message per record, a JSON object (never a pickle: a
peer can send data, not code)::

    {"level": "INFO", "levelno": 20, "logger": "app.db", "message": "connected",
     "exc_text": null, "created": 1767225600.123456, "pid": 4242, "process": "PongProc"}

``message`` is ``record.getMessage()``; ``exc_text`` the formatted traceback (and stack)
or ``null``; ``created`` is ``time.time()`` when the record was made; ``process`` its
process name; ``"dropped": n`` is added when ``n`` records before it could not be sent.
Any program (in any language) that sends this can be tested the same way.

Why it works the way it does:

- **Loggers that do not propagate are reached too.** A record stops at the first logger of
  its chain with ``propagate = False`` (``logging.getLogger("locust").propagate = False``):
  it never reaches the root's handlers. So the forwarder also goes on each such logger,
  the ones that exist when :func:`forward` runs and the ones that stop propagating later:
  while it forwards, ``logging.Logger.propagate`` is a descriptor that puts the forwarder
  on a logger set to ``False`` (and takes it off one set back to ``True``). It keeps the
  flag where Python's own attribute lives, so logging reads the same value, and
  :meth:`LogForwarder.close` takes it away. Each record still reaches one forwarder only:
  the one on the last logger of its chain.

- **No thread, no zmq context in the process under test.** Records go to the collector's PULL
  socket through a plain socket speaking ZMTP (:mod:`zmqtest.plainpush`): the process under
  test is not changed by forwarding its logs (a context would add two threads, and about a
  millisecond to its start and to its exit).
- **Fork-safe.** The connection is made with the first record in the process that sends: a
  child forked from a forwarding process (say the process under test starts workers) opens its
  own, and never writes to its parent's.
- **Logging never blocks the application for long.** The first record waits for the
  collector's handshake (a round trip on loopback; at most ``plainpush.HANDSHAKE_SECONDS``).
  After that a send that finds ``QUEUED_RECORDS`` records waiting (the kernel's buffers full:
  the test is not reading) drops the record and counts it; the test sees the count with the
  next record that goes through.
- **A record is safe once logged.** Its bytes are in the kernel when the logging call returns,
  so they reach the collector even if the process is killed (SIGKILL, ``os._exit``) right
  after; only records still waiting for full kernel buffers are lost then. At a normal exit
  (``logging.shutdown()``, which ``atexit`` runs, or multiprocessing's exit finalizers, because
  a multiprocessing child ends with ``os._exit`` and skips ``atexit``) what waits is sent, for
  at most ``FLUSH_LINGER_MS``, and the connection is closed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from zmqtest.plainpush import PlainPush

if TYPE_CHECKING:  # the test's side, importable from here as before it had a module of its own
    from zmqtest.logcollector import DEATH_GRACE as DEATH_GRACE
    from zmqtest.logcollector import MAX_ENTRIES as MAX_ENTRIES
    from zmqtest.logcollector import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
    from zmqtest.logcollector import SHOWN_ENTRIES as SHOWN_ENTRIES
    from zmqtest.logcollector import LogCollector as LogCollector
    from zmqtest.logcollector import LogEntry as LogEntry
    from zmqtest.logcollector import LogQuery as LogQuery
    from zmqtest.logcollector import collecting as collecting
    from zmqtest.logcollector import current_collector as current_collector

__all__ = ["ENDPOINT_ENV", "LogForwarder", "forward"]

ENDPOINT_ENV = "ZMQTEST_LOG_ENDPOINT"
"""The environment variable that hands a process under test the collector's endpoint."""
FLUSH_LINGER_MS = 1000
"""How long a forwarding process may take at exit to send what is queued (it waits only if the collector is gone)."""
QUEUED_RECORDS = 100_000
"""Records a forwarding process queues, and a collector holds unread, before the process drops (and counts) more."""
MAX_TEXT = 64 * 1024
"""Characters of a message or traceback that are sent; the rest is cut (and says so)."""

_COLLECTOR_SIDE = frozenset(
    {
        "DEATH_GRACE",
        "MAX_ENTRIES",
        "MAX_MESSAGE_BYTES",
        "SHOWN_ENTRIES",
        "LogCollector",
        "LogEntry",
        "LogQuery",
        "collecting",
        "current_collector",
    }
)
"""The test side's names that were imported from here before :mod:`zmqtest.logcollector` existed."""

_FORMATTER = logging.Formatter()
_ENDPOINT = re.compile(r"tcp://.+:[0-9]+|ipc://.+")
"""What forward() takes for an endpoint (tcp: with a port number): it connects only with the first record, and a typo
is refused here, at the caller's line; a host name that does not resolve is said once then (logging's handleError)."""


_active: list[LogForwarder] = []
"""The forwarder of this process, while it forwards (a list: set and cleared without ``global``)."""


class _Propagate:
    """``logging.Logger.propagate`` while a forwarder is active: a logger that stops propagating gets the forwarder.

    The value stays in the logger's ``__dict__`` under ``propagate``, as without it: removing the descriptor
    changes nothing for the loggers.
    """

    def __get__(self, logger: logging.Logger | None, owner: type | None = None) -> Any:
        if logger is None:
            return self
        return logger.__dict__.get("propagate", True)

    def __set__(self, logger: logging.Logger, value: Any) -> None:
        logger.__dict__["propagate"] = value
        if not _active or "handlers" not in logger.__dict__ or isinstance(logger, logging.RootLogger):
            return  # not forwarding, a logger being made (Logger.__init__ sets propagate first), or the root
        forwarder = _active[-1]
        if value:
            logger.removeHandler(forwarder)  # its records reach the root's forwarder again
        elif forwarder not in logger.handlers:
            logger.addHandler(forwarder)


_PROPAGATE = _Propagate()


def _loggers() -> list[logging.Logger]:
    """Every logger made so far, the root first."""
    made = list(logging.Logger.manager.loggerDict.values())  # a copy: another thread may make one meanwhile
    return [logging.getLogger(), *(logger for logger in made if isinstance(logger, logging.Logger))]


class LogForwarder(logging.Handler):
    """A logging handler that sends each record to a :class:`LogCollector` (see the module docstring).

    Made by :func:`forward`. ``dropped`` counts records that could not be sent since
    the last one that could (the next record sent carries that count).
    """

    def __init__(self, endpoint: str, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.endpoint = endpoint
        self.dropped = 0
        self._pid: int | None = None
        self._push: PlainPush | None = None
        self._finalizer: Any = None
        self._closed = False

    def _connect(self) -> PlainPush | None:
        """This process's connection, made with its first record in each process (never a parent's).

        ``None`` once it was closed at exit in this process. Not made before a record needs it: a process that
        never logs pays nothing, neither at its start nor at its exit. No zmq context either
        (:mod:`zmqtest.plainpush`): the process under test gets no thread of ours.
        """
        pid = os.getpid()
        if self._pid == pid:
            return self._push
        if self._push is not None:
            self._push.forget()  # the parent's connection: this process lets go of its copy, the parent keeps it
        try:
            push = PlainPush(self.endpoint, queued=QUEUED_RECORDS)
        except (OSError, ValueError):  # an address that does not resolve: said once (logging's handleError)
            self._closed = True
            raise
        self._push, self._pid = push, pid
        # At exit: logging.shutdown() (atexit) closes every handler, this one too; a multiprocessing child ends
        # with os._exit instead, after running multiprocessing's finalizers: this one runs after the others.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            self._finalizer = mp_util.Finalize(self, self._flush_at_exit, exitpriority=-100)
        return push

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        try:
            data = encode(record, self.dropped)
            push = self._connect()
            if push is None:
                return
            if push.send(data):
                self.dropped = 0
            elif push.gave_up is not None:
                self._closed = True
                raise ConnectionError(f"zmqtest's log forwarder stops: {push.gave_up}")
            else:
                self.dropped += 1
        except Exception:
            self.handleError(record)

    def _flush(self) -> None:
        """Send what waits (for at most FLUSH_LINGER_MS), then close this process's connection."""
        self.acquire()
        try:
            push = self._push
            if push is None or self._pid != os.getpid():
                return
            self._push = None
            push.close(FLUSH_LINGER_MS / 1000)
        finally:
            self.release()

    def _flush_at_exit(self) -> None:
        """Flush as a multiprocessing child exits, holding off the test's SIGINT until done.

        A SIGINT that lands in the flush (the test stops a process that is ending by
        itself) would end it with a traceback and code 1, a crash; held off, it ends
        the process with 130, as a stop by SIGINT does. Held by a handler that notes it
        (any thread may receive it: masking the main thread alone would not do).
        """
        if threading.current_thread() is not threading.main_thread():
            self._flush()
            return
        noted: list[int] = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
        try:
            self._flush()
        finally:
            signal.signal(signal.SIGINT, previous)
        if noted:
            raise SystemExit(128 + signal.SIGINT)

    def close(self) -> None:
        """Flush and close, and take this handler off every logger: the process forwards nothing more."""
        self._closed = True
        self._flush()
        if self._finalizer is not None:
            self._finalizer.cancel()
        self._detach()
        super().close()

    def _detach(self) -> None:
        """Take this handler off every logger; if it was the active forwarder, ``propagate`` is plain again."""
        if self in _active:
            _active.remove(self)
            if not _active and logging.Logger.__dict__.get("propagate") is _PROPAGATE:
                delattr(logging.Logger, "propagate")
        for logger in _loggers():
            if self in logger.handlers:
                logger.removeHandler(self)

    def __repr__(self) -> str:
        return f"<LogForwarder to {self.endpoint}{' (closed)' if self._closed else ''}>"


def forward(endpoint: str | None = None, *, level: int | str | None = None) -> LogForwarder | None:
    """Send this process's log records to the test's collector; call it once, in the process under test.

    ``endpoint`` defaults to the environment variable ``ZMQTEST_LOG_ENDPOINT``, which
    zmqtest sets for the processes it starts. Without either, nothing happens and
    ``None`` is returned: apps can call it unconditionally. ``level`` (a name or a
    number) forwards only records at that level or above, and lowers the root logger's
    level to it if that is higher (WARNING unless configured), so those records are made.

    Call it after configuring logging: ``logging.basicConfig`` does nothing once the
    root logger has a handler, and ``dictConfig`` removes the root logger's handlers.
    In a multiprocessing child, call it in ``run()``. A second call replaces the first
    forwarder. Returns the handler (its ``close()`` stops forwarding).

    Loggers that do not propagate (``propagate = False``) get the forwarder too, whether
    they stop propagating before this call or after it (see the module docstring).
    """
    if endpoint is None:
        endpoint = os.environ.get(ENDPOINT_ENV) or None
    if endpoint is None:
        return None
    if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
        raise ValueError(f"forward() needs an endpoint like 'ipc:///path' or 'tcp://127.0.0.1:5555', got {endpoint!r}")
    root = logging.getLogger()
    levelno = logging.NOTSET if level is None else parse_level(level, "the level= argument of forward()")
    previous = {handler for logger in _loggers() for handler in logger.handlers if isinstance(handler, LogForwarder)}
    previous.update(_active)  # one that logging.config took off every logger is still the active one
    for handler in previous:
        if handler._pid in (None, os.getpid()):  # ours, or one that never connected (it holds no socket)
            handler.close()
        else:  # inherited through fork: its socket is the parent's; just take it off
            handler._closed = True
            handler._detach()
    forwarder = LogForwarder(endpoint, levelno)
    _active.append(forwarder)
    setattr(logging.Logger, "propagate", _PROPAGATE)  # noqa: B010 (mypy: a descriptor for a plain attribute)
    for logger in _loggers():
        if logger is root or not logger.propagate:
            logger.addHandler(forwarder)
    if levelno != logging.NOTSET and root.level > levelno:
        root.setLevel(levelno)
    return forwarder


def encode(record: logging.LogRecord, dropped: int = 0) -> bytes:
    """The wire form of ``record`` (see the module docstring)."""
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = _FORMATTER.formatException(record.exc_info)
    if record.stack_info:
        stack = _FORMATTER.formatStack(record.stack_info)
        exc_text = f"{exc_text}\n{stack}" if exc_text else stack
    body: dict[str, Any] = {
        "level": record.levelname,
        "levelno": record.levelno,
        "logger": record.name,
        "message": _clip(record.getMessage()),
        "exc_text": None if exc_text is None else _clip(exc_text),
        "created": record.created,
        "pid": record.process or os.getpid(),
        "process": record.processName or "MainProcess",
    }
    if dropped:
        body["dropped"] = dropped
    return json.dumps(body, separators=(",", ":")).encode()  # ASCII: lone surrogates cannot break it


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... ({len(text) - MAX_TEXT} more characters cut)"


def parse_level(value: object, where: str) -> int:
    """A log level given by name (``"warning"``, ``"WARN"``) or number, as a number."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        name = value.strip().upper()
        if name.isdigit():
            return int(name)
        number = logging.getLevelName(name)
        if isinstance(number, int):
            return number
    raise ValueError(
        f"unknown log level {value!r} for {where}: expected a name (DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "or one registered with logging.addLevelName) or a number of 0 or more"
    )


def __getattr__(name: str) -> Any:
    """Hand out the test side's names from their module, importing it only then (the process under test never does)."""
    if name in _COLLECTOR_SIDE:
        from zmqtest import logcollector

        return getattr(logcollector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
