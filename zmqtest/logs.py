"""Log records of the process under test, sent to the test over ZeroMQ.

Two sides, one wire format:

- **In the process under test**, one call: :func:`forward` reads the collector's
  endpoint from the environment variable ``ZMQTEST_LOG_ENDPOINT`` (or takes it as an
  argument) and puts a :class:`LogForwarder` on the root logger, which sends every
  record it sees. Without an endpoint it does nothing and returns ``None``, so an
  application can call it unconditionally.
- **In the test**, a :class:`LogCollector` binds a PULL socket on
  ``tcp://127.0.0.1`` (loopback only, a port the system picks) or on a private ipc
  endpoint, and hands out its :attr:`~LogCollector.endpoint`. A
  :class:`~zmqtest.processes.ProcessManager` makes one when it starts its first
  process and hands the endpoint to every process it starts (command lines through
  their environment, multiprocessing children by setting it in the child before
  ``run()``). ``yield ("log", "substr")`` in a :class:`~zmqtest.runner.ProcessTest`
  and :meth:`LogCollector.wait_for` wait for a record.

Wire format: one single-frame message per record, a JSON object (never a pickle: a
peer can send data, not code)::

    {"level": "INFO", "levelno": 20, "logger": "app.db", "message": "connected",
     "exc_text": null, "created": 1767225600.123456, "pid": 4242, "process": "PongProc"}

``message`` is ``record.getMessage()``; ``exc_text`` the formatted traceback (and stack)
or ``null``; ``created`` is ``time.time()`` when the record was made; ``process`` its
process name; ``"dropped": n`` is added when ``n`` records before it could not be sent.
Any program (in any language) that sends this can be tested the same way.

Why it works the way it does:

- **Fork-safe.** The forwarder makes its own zmq context in the process that sends:
  a child forked from a forwarding process (say the process under test starts
  workers) gets a context and socket of its own with its first record, and never
  touches its parent's, whose I/O threads it does not have.
- **Logging never blocks the application.** A send that finds the queue full
  (``QUEUED_RECORDS`` records waiting, in the process and unread in the test) drops the
  record and counts it; the test sees the count with the next record that goes through.
- **Records logged just before a normal exit arrive.** At exit (``logging.shutdown()``,
  which ``atexit`` runs, or multiprocessing's exit finalizers, because a multiprocessing
  child ends with ``os._exit`` and skips ``atexit``) the socket is closed with a linger
  of ``FLUSH_LINGER_MS``: what is queued is sent first. A process that ends by
  ``os._exit``, SIGKILL or a signal it does not handle (SIGTERM by default) skips
  that: records still queued then (typically those of its last millisecond) are lost.
- **Nothing on disk by default.** tcp on loopback leaves nothing behind even when the
  test's interpreter dies without cleaning up (``os._exit``, SIGKILL), which a socket
  file and its directory would outlive. Any local user can reach a loopback port, as
  with every mimic; the collector only ever parses JSON from it, and ``transport="ipc"``
  (a 0700 directory, removed at close) keeps others out.
- **No thread in the test.** The collector reads its socket when the test waits for a
  record, when :meth:`LogCollector.drain` or :attr:`LogCollector.entries` is used, and
  when it closes; each record read is also noted in the test's transcript.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import zmq

__all__ = ["ENDPOINT_ENV", "LogCollector", "LogEntry", "LogForwarder", "LogQuery", "current_collector", "forward"]

ENDPOINT_ENV = "ZMQTEST_LOG_ENDPOINT"
"""The environment variable that hands a process under test the collector's endpoint."""
FLUSH_LINGER_MS = 1000
"""How long a forwarding process may take at exit to send what is queued (it waits only if the collector is gone)."""
QUEUED_RECORDS = 100_000
"""Records a forwarding process queues, and a collector holds unread, before the process drops (and counts) more."""
MAX_TEXT = 64 * 1024
"""Characters of a message or traceback that are sent; the rest is cut (and says so)."""
MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message the collector accepts (MAXMSGSIZE): a record is far smaller, garbage may not be."""
MAX_ENTRIES = 100_000
"""Records a collector keeps; older ones are forgotten (and counted)."""
SHOWN_ENTRIES = 5
"""How many of the records received a timeout error quotes (the latest)."""
DEATH_GRACE = 0.05
"""After a watched process ends, how long a wait still gives its last records to arrive."""

_FORMATTER = logging.Formatter()


# --------------------------------------------------------------------------------------------- child side


_inherited: list[object] = []
"""Contexts and sockets a forked child inherited from its parent: kept, never closed nor collected, never used."""


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
        self._context: zmq.Context[Any] | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._finalizer: Any = None
        self._closed = False
        self._connect()

    def _connect(self) -> zmq.Socket[Any] | None:
        """This process's socket, made on first use in each process: a forked child never uses its parent's.

        ``None`` once it was closed at exit in this process.
        """
        pid = os.getpid()
        if self._pid == pid:
            return self._socket
        if self._pid is not None:
            _inherited.extend((self._context, self._socket))
        context: zmq.Context[Any] = zmq.Context()
        sock: zmq.Socket[Any] = context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, QUEUED_RECORDS)
        sock.setsockopt(zmq.LINGER, FLUSH_LINGER_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, 10)
        sock.connect(self.endpoint)
        self._context, self._socket, self._pid = context, sock, pid
        # At exit: logging.shutdown() (atexit) closes every handler, this one too; a multiprocessing child ends
        # with os._exit instead, after running multiprocessing's finalizers: this one runs after the others.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            self._finalizer = mp_util.Finalize(self, self._flush, exitpriority=-100)
        return sock

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        try:
            data = encode(record, self.dropped)
            sock = self._connect()
            if sock is None:
                return
            try:
                sock.send(data, zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1
            else:
                self.dropped = 0
        except Exception:
            self.handleError(record)

    def _flush(self) -> None:
        """Send what is queued (at most FLUSH_LINGER_MS), then close this process's socket and context."""
        self.acquire()
        try:
            context, sock = self._context, self._socket
            if sock is None or context is None or self._pid != os.getpid():
                return
            self._socket = self._context = None
            sock.close(linger=FLUSH_LINGER_MS)
            context.term()
        finally:
            self.release()

    def close(self) -> None:
        """Flush and close, and take this handler off the root logger: the process forwards nothing more."""
        self._closed = True
        self._flush()
        if self._finalizer is not None:
            self._finalizer.cancel()
        logging.getLogger().removeHandler(self)
        super().close()

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
    """
    if endpoint is None:
        endpoint = os.environ.get(ENDPOINT_ENV) or None
    if endpoint is None:
        return None
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise ValueError(f"forward() needs an endpoint like 'ipc:///path' or 'tcp://127.0.0.1:5555', got {endpoint!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, LogForwarder):
            if handler._pid == os.getpid():
                handler.close()
            else:  # inherited through fork: its socket is the parent's; just take it off
                handler._closed = True
                root.removeHandler(handler)
    levelno = logging.NOTSET if level is None else parse_level(level, "the level= argument of forward()")
    forwarder = LogForwarder(endpoint, levelno)
    root.addHandler(forwarder)
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


# --------------------------------------------------------------------------------------------- test side


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log record of a process under test, as the test received it."""

    message: str
    level: str
    """Its level's name: ``INFO``, ``ERROR`` ..."""
    levelno: int
    logger: str
    """The logger's name: ``root``, ``app.db`` ..."""
    process: str
    """The process's name as the test knows it (a started process's name, else the record's process name)."""
    pid: int
    created: float
    """``time.time()`` in the process when the record was made."""
    exc_text: str | None = None
    """The formatted traceback (``logger.exception(...)``) or stack, if any."""
    received: float = 0.0
    """``time.time()`` in the test when the collector read it."""

    def __str__(self) -> str:
        text = f"{self.process} {self.level} {self.logger}: {self.message}"
        if self.exc_text:
            text += f" [{self.exc_text.strip().splitlines()[-1]}]"
        return text


@dataclass(frozen=True)
class LogQuery:
    """What a wait looks for: a record containing ``text``, at ``levelno`` or above, from ``logger`` or below it."""

    text: str | re.Pattern[str] = ""
    levelno: int | None = None
    logger: str | None = None

    @classmethod
    def parse(cls, substr: object = "", level: object = None, logger: object = None) -> LogQuery:
        """Check the arguments of a wait: TypeError or ValueError naming the bad one."""
        if not isinstance(substr, (str, re.Pattern)):
            raise TypeError(
                f"the text to look for must be a str (or a compiled re pattern), got {_short(substr)}"
                + (" (bytes: decode it first)" if isinstance(substr, bytes) else "")
            )
        if isinstance(substr, re.Pattern) and not isinstance(substr.pattern, str):
            raise TypeError(f"the pattern to look for must be a str pattern, got {_short(substr)}")
        levelno = None if level is None else parse_level(level, "level")
        if logger is not None:
            if not isinstance(logger, str):
                raise TypeError(f"logger must be a logger's name (str), got {_short(logger)}")
            if not logger or logger.startswith(".") or logger.endswith("."):
                raise ValueError(f"logger must be a logger's name like 'app' or 'app.db', got {logger!r}")
        return cls(substr, levelno, logger)

    def matches(self, entry: LogEntry) -> bool:
        if self.levelno is not None and entry.levelno < self.levelno:
            return False
        if self.logger is not None and entry.logger != self.logger and not entry.logger.startswith(self.logger + "."):
            return False
        if isinstance(self.text, str):
            return self.text in entry.message or (entry.exc_text is not None and self.text in entry.exc_text)
        return self.text.search(entry.message) is not None or (
            entry.exc_text is not None and self.text.search(entry.exc_text) is not None
        )

    def __str__(self) -> str:
        if isinstance(self.text, str):
            text = f"a log record containing {self.text!r}" if self.text else "any log record"
        else:
            text = f"a log record matching {self.text.pattern!r}"
        if self.levelno is not None:
            text += f" at level {logging.getLevelName(self.levelno)} or above"
        if self.logger is not None:
            text += f" from logger {self.logger!r} (or below it)"
        return text


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


_current: ContextVar[LogCollector | None] = ContextVar("zmqtest_log_collector", default=None)


def current_collector() -> LogCollector | None:
    """The collector in force (the innermost ``with collector:`` or process manager's), if any."""
    return _current.get()


class LogCollector:
    """Receives the log records of processes under test on a PULL socket, for the test to wait for.

    ``context``: the zmq context for its socket (default: one of its own, terminated at
    :meth:`close`). ``transport``: ``"tcp"`` (default: ``127.0.0.1``, a port the system
    picks) or ``"ipc"`` (a private 0700 directory, removed at close); or ``endpoint``: one
    to bind, e.g. the one given to a process the test started before making any zmq
    context (forking a process that has threads warns on Python 3.12+; what the process
    logged meanwhile waits in its queue). Hand :attr:`endpoint` to the process
    (``environ`` for a command line's environment, or as the argument of :func:`forward`).
    ``with collector:`` makes it the current collector (the one ``yield ("log", ...)``
    uses when the test has no ``self.logs``) and closes it after.

    ``process_names`` maps pids to the names records are shown with (a
    :class:`~zmqtest.processes.ProcessManager` fills it); others keep their own
    process name.
    """

    endpoint: str

    def __init__(
        self, context: zmq.Context[Any] | None = None, *, transport: str = "tcp", endpoint: str | None = None
    ) -> None:
        self._pid = os.getpid()  # the one process that reads and closes it (a test may fork itself)
        if transport not in ("tcp", "ipc"):
            raise ValueError(f"unknown transport {transport!r} for a LogCollector: expected 'tcp' or 'ipc'")
        self._own_context = context is None
        self.context: zmq.Context[Any] = zmq.Context() if context is None else context
        self.process_names: dict[int, str] = {}
        self._pending: deque[LogEntry] = deque()
        self._entries: deque[LogEntry] = deque(maxlen=MAX_ENTRIES)
        self.received = 0
        """How many records arrived in all."""
        self.forgotten = 0
        """How many unclaimed records were forgotten because more than MAX_ENTRIES were waiting."""
        self._tokens: list[Any] = []
        self._endpoints: Any = None
        self._note: Any = None
        self.socket: zmq.Socket[Any] = self.context.socket(zmq.PULL)
        try:
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RCVHWM, QUEUED_RECORDS)
            self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            if endpoint is not None:  # given to a process started earlier: what it logged meanwhile waits in its queue
                self.socket.bind(endpoint)
            elif transport == "ipc":
                from zmqtest.endpoints import EndpointFactory

                self._endpoints = EndpointFactory()
                self.socket.bind(self._endpoints.ipc("logs"))
            else:
                self.socket.bind("tcp://127.0.0.1:*")
            self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return bool(self.socket.closed)

    @property
    def environ(self) -> dict[str, str]:
        """``{"ZMQTEST_LOG_ENDPOINT": endpoint}``: add it to a command line's environment."""
        return {ENDPOINT_ENV: self.endpoint}

    @property
    def entries(self) -> list[LogEntry]:
        """Every record received so far (the latest MAX_ENTRIES), oldest first, after reading what has arrived."""
        self.drain()
        return list(self._entries)

    def drain(self) -> list[LogEntry]:
        """Read the records that have arrived, without waiting; return them (they stay available to waits)."""
        new: list[LogEntry] = []
        if self.socket.closed:
            return new
        if os.getpid() != self._pid:  # its socket is useless in a fork: pyzmq would retry the read for ever
            raise ValueError(
                f"this LogCollector ({self.endpoint}) belongs to process {self._pid}, not to its fork {os.getpid()}: "
                "read it in the process that made it"
            )
        while True:
            try:
                frame = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return new
            for entry in self._entries_of(frame):
                new.append(entry)
                self._keep(entry)

    def wait_for(
        self,
        substr: str | re.Pattern[str] = "",
        *,
        level: int | str | None = None,
        logger: str | None = None,
        timeout: float | None = None,
    ) -> LogEntry:
        """Wait for a record containing ``substr`` (in its message or traceback), and return it.

        ``level``: that level or above (name or number); ``logger``: that logger or one
        below it (``"app"`` matches ``app`` and ``app.db``). Records that arrived
        before the call count: the earliest matching record not returned by an
        earlier wait is returned (and not returned again). Waits at most ``timeout``
        seconds (default: the harness timeout), raced against the watched processes:
        a death raises :class:`~zmqtest.errors.ProcessExited` at once; a timeout
        raises :class:`~zmqtest.errors.WaitTimeout` with the records seen.
        """
        from zmqtest.settings import current_timeout, parse_timeout

        query = LogQuery.parse(substr, level, logger)
        seconds = current_timeout() if timeout is None else parse_timeout(timeout, "timeout", allow_zero=True)
        return self.wait(query, seconds)

    def wait(self, query: LogQuery, seconds: float) -> LogEntry:
        """:meth:`wait_for` with its arguments checked: ``query``, ``seconds``."""
        from zmqtest import transcript
        from zmqtest.errors import WaitTimeout, add_context
        from zmqtest.waiting import describe_watched, poll_items, poll_millis, poll_ready, watched

        if self.socket.closed:
            raise ValueError(f"this LogCollector ({self.endpoint}) is closed: it receives nothing more")
        found = self._take(query)
        if found is not None:
            return found
        deadline = time.monotonic() + seconds
        processes = watched()
        items = poll_items(self.socket, zmq.POLLIN, processes) if processes else None
        while True:
            millis = poll_millis(deadline - time.monotonic())
            if items is None:
                outcome: object = bool(self.socket.poll(millis, zmq.POLLIN))
            else:
                outcome = poll_ready(items, self.socket, zmq.POLLIN, millis, processes)
            if outcome is True:
                found = self._take_new(query)
                if found is not None:
                    return found
            elif outcome is not False:  # a watched process ended: what it logged last may still be on its way
                found = self._last_look(query)
                if found is not None:
                    return found
                error = outcome.exit_error(f"waiting for {query} on {self.endpoint}")  # type: ignore[attr-defined]
                add_context(error, f"  {self._summary()}")
                raise error
            if time.monotonic() >= deadline:
                transcript.note(None, f"{query}: none within {seconds:g} s")
                raise WaitTimeout(
                    f"waiting for {query} on {self.endpoint}: none within {seconds:g} s"
                    f"{describe_watched(processes)}\n  {self._summary()}",
                    what=str(query),
                    timeout=seconds,
                )

    def _last_look(self, query: LogQuery) -> LogEntry | None:
        grace_end = time.monotonic() + DEATH_GRACE
        while True:
            found = self._take_new(query)
            remaining = grace_end - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            self.socket.poll(max(1, int(remaining * 1000)), zmq.POLLIN)

    def _take(self, query: LogQuery) -> LogEntry | None:
        """The earliest unclaimed record that matches, claimed; reads what has arrived first."""
        self.drain()
        for index, entry in enumerate(self._pending):
            if query.matches(entry):
                del self._pending[index]
                return entry
        return None

    def _take_new(self, query: LogQuery) -> LogEntry | None:
        """Like :meth:`_take`, looking only at what arrives now: the records before did not match already."""
        for entry in self.drain():
            if query.matches(entry):
                pending = self._pending
                for index in range(len(pending) - 1, -1, -1):  # it is near the end
                    if pending[index] is entry:
                        del pending[index]
                        break
                return entry
        return None

    def _entries_of(self, frame: bytes) -> list[LogEntry]:
        """The record in ``frame``, after a note of the records its process dropped before it, if any."""
        now = time.time()
        try:
            body = json.loads(frame)
            pid = body["pid"]
            entry = LogEntry(
                message=str(body["message"]),
                level=str(body["level"]),
                levelno=int(body["levelno"]),
                logger=str(body["logger"]),
                process=self.process_names.get(pid) or str(body["process"]),
                pid=int(pid),
                created=float(body["created"]),
                exc_text=None if body.get("exc_text") is None else str(body["exc_text"]),
                received=now,
            )
        except (ValueError, TypeError, KeyError) as exc:  # not JSON, not an object, a field missing or wrong
            problem = f"malformed log message ({type(exc).__name__}: {_short(str(exc), 60)}): {_short(frame)}"
            return [_notice(problem, "?", 0, now)]
        dropped = body.get("dropped")
        if isinstance(dropped, int) and dropped > 0:
            problem = f"{dropped} log records of {entry.process} were dropped before this one (queue full)"
            return [_notice(problem, entry.process, entry.pid, entry.created), entry]
        return [entry]

    def _keep(self, entry: LogEntry) -> None:
        self.received += 1
        self._entries.append(entry)
        self._pending.append(entry)
        if len(self._pending) > MAX_ENTRIES:
            self._pending.popleft()
            self.forgotten += 1
        self._transcribe(entry)

    def _transcribe(self, entry: LogEntry) -> None:
        """Note the record in the test's transcript, at the moment it was logged (it is read later)."""
        if self._note is None:
            from zmqtest import transcript

            self._note = transcript.note
        logged = time.perf_counter() - max(0.0, entry.received - entry.created)  # wall clock to perf_counter
        self._note(entry.process, f"log {entry.level} {entry.logger}: {entry.message}", at=logged)

    def _summary(self) -> str:
        if not self.received:
            return (
                "no record arrived at all: does the process call zmqtest.logs.forward() (after configuring logging; "
                f"it reads {ENDPOINT_ENV}), and does its root logger's level (WARNING unless set) let them through?"
            )
        shown = list(self._entries)[-SHOWN_ENTRIES:]
        claimed = self.received - len(self._pending) - self.forgotten
        head = f"{self.received} record{'s' if self.received != 1 else ''} received"
        if claimed:
            head += f" ({claimed} returned by earlier waits)"
        if self.forgotten:
            head += f" ({self.forgotten} forgotten: more than {MAX_ENTRIES} waiting)"
        label = f"the last {len(shown)}" if len(shown) < self.received else "they are"
        return f"{head}, {label}:" + "".join(f"\n    {_short(str(entry), 200)}" for entry in shown)

    # --------------------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Read what has arrived (for the transcript), close the socket, remove the ipc directory. Idempotent.

        In a fork of the process that made it (a test that forks itself), it does nothing: all that is the other's.
        """
        if os.getpid() != self._pid:
            return
        sock = getattr(self, "socket", None)
        if sock is not None and not sock.closed:
            try:
                self.drain()
            finally:
                sock.close(linger=0)
        if self._own_context and not self.context.closed:
            self.context.term()  # its one socket is closed with linger 0: nothing to wait for
        if self._endpoints is not None:
            self._endpoints.close()

    def __enter__(self) -> LogCollector:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tokens:
            _current.reset(self._tokens.pop())
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.received} received"
        return f"<LogCollector {self.endpoint if hasattr(self, 'endpoint') else '?'} ({state})>"


@contextmanager
def collecting(collector: LogCollector) -> Iterator[LogCollector]:
    """Make ``collector`` the current one inside the ``with`` block (without closing it after)."""
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)


def _notice(message: str, process: str, pid: int, created: float) -> LogEntry:
    """A record of zmqtest's own about what arrived (logger ``zmqtest.logs``, WARNING)."""
    return LogEntry(message, "WARNING", logging.WARNING, "zmqtest.logs", process, pid, created, received=time.time())


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
