"""Log records of the processes under test, received by the test: the collector's side.

A :class:`LogCollector` binds a PULL socket on ``tcp://127.0.0.1`` (loopback only, a port
the system picks) or on a private ipc endpoint, and hands out its
:attr:`~LogCollector.endpoint`. A :class:`~zmqtest.processes.ProcessManager` makes one when
it starts its first process and hands the endpoint to every process it starts (command
lines through their environment, multiprocessing children by setting it in the child
before ``run()``), where :func:`zmqtest.logs.forward` sends the records (the sender and the
wire format are in :mod:`zmqtest.logs`). ``yield ("log", "substr")`` in a
:class:`~zmqtest.runner.ProcessTest` and :meth:`LogCollector.wait_for` wait for a record.

Why it works the way it does:

- **Nothing on disk by default.** tcp on loopback leaves nothing behind even when the
  test's interpreter dies without cleaning up (``os._exit``, SIGKILL), which a socket
  file and its directory would outlive. Any local user can reach a loopback port, as
  with every mimic; the collector only ever parses JSON from it, and ``transport="ipc"``
  (a 0700 directory, removed at close) keeps others out.
- **No thread in the test.** The collector reads its socket when the test waits for a
  record, when :meth:`LogCollector.drain` or :attr:`LogCollector.entries` is used, and
  when it closes; each record read is also noted in the test's transcript.
- **A wait is raced against the watched processes** (:func:`zmqtest.waiting.race`): a
  process that dies ends it at once, after ``DEATH_GRACE`` for what it logged last.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import deque
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias

import zmq

from zmqtest import transcript
from zmqtest.endpoints import Endpoint
from zmqtest.errors import WaitTimeout, add_context
from zmqtest.logs import ENDPOINT_ENV, QUEUED_RECORDS, parse_level
from zmqtest.settings import current_timeout, in_force, parse_timeout
from zmqtest.waiting import describe_watched, race, watched

__all__ = ["LogCollector", "LogEntry", "LogQuery", "collecting", "current_collector"]

MAX_MESSAGE_BYTES = 1024 * 1024
"""The largest message the collector accepts (MAXMSGSIZE): a record is far smaller, garbage may not be."""
MAX_ENTRIES = 100_000
"""Records a collector keeps; older ones are forgotten (and counted)."""
SHOWN_ENTRIES = 5
"""How many of the records received a timeout error quotes (the latest)."""
DEATH_GRACE = 0.05
"""After a watched process ends, how long a wait still gives its last records to arrive."""


LogText: TypeAlias = str | re.Pattern[str]
"""What a wait for a record looks for in its message or traceback: a substring or a compiled pattern."""
LogLevel: TypeAlias = int | str | None
"""A level a record must be at, or above: a name (``"warning"``), a number, or None (any)."""


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


def wait_arguments(substr: object, level: object, logger: object, timeout: object) -> tuple[LogQuery, float]:
    """Check the arguments of a wait for a record, wherever it is asked for: the query and the seconds to wait.

    Raises TypeError or ValueError naming the bad one; ``timeout=None`` is the harness timeout.
    """
    query = LogQuery.parse(substr, level, logger)
    return query, current_timeout() if timeout is None else parse_timeout(timeout, "timeout", allow_zero=True)


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

    endpoint: Endpoint

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
        self._outer: LogCollector | None = None
        """The collector in force when this one came in force (a wider fixture's): where a lost record may be."""
        self._endpoints: Any = None
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
            self.endpoint = Endpoint(self.socket.getsockopt_string(zmq.LAST_ENDPOINT))
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
        self, substr: LogText = "", *, level: LogLevel = None, logger: str | None = None, timeout: float | None = None
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
        return self.wait(*wait_arguments(substr, level, logger, timeout))

    def wait(self, query: LogQuery, seconds: float) -> LogEntry:
        """:meth:`wait_for` with its arguments checked: ``query``, ``seconds``."""
        if self.socket.closed:
            raise ValueError(f"this LogCollector ({self.endpoint}) is closed: it receives nothing more")
        found = self._take(query)
        if found is not None:
            return found
        deadline = time.monotonic() + seconds
        processes = watched()
        new: list[LogEntry] = []

        def look() -> bool:
            entry = self._take_new(query)
            if entry is not None:
                new.append(entry)
            return entry is not None

        def waiting_for() -> str:
            return f"waiting for {query} on {self.endpoint}"

        def summary(error: BaseException) -> None:
            add_context(error, f"  {self._summary()}")

        if race(self.socket, deadline, processes, waiting_for, look=look, grace=DEATH_GRACE, report=summary):
            return new[0]
        transcript.note(None, f"{query}: none within {seconds:g} s")
        elsewhere = self._elsewhere(query)
        came = self._summary() if self.received or not elsewhere else "no record arrived here"
        raise WaitTimeout(
            f"{waiting_for()}: none within {seconds:g} s{describe_watched(processes)}\n  {came}{elsewhere}",
            what=str(query),
            timeout=seconds,
        )

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
        logged = time.perf_counter() - max(0.0, entry.received - entry.created)  # wall clock to perf_counter
        transcript.note(entry.process, f"log {entry.level} {entry.logger}: {entry.message}", at=logged)

    def _elsewhere(self, query: LogQuery) -> str:
        """Say where a matching record went instead, if a collector in force before this one has one."""
        outer, seen = self._outer, {id(self)}
        while outer is not None and id(outer) not in seen:  # a collector made current again may close a loop
            seen.add(id(outer))
            if not outer.closed and os.getpid() == outer._pid:
                outer.drain()
                found = next((entry for entry in outer._pending if query.matches(entry)), None)
                if found is not None:
                    return (
                        f"\n  a matching record went to a collector in force before this one, {outer.endpoint} (a "
                        f"fixture's ProcessManager's, say): {_short(str(found), 120)}; to wait on it, set the test's "
                        "logs to it (a process's .logs is its manager's collector), or call its wait_for()"
                    )
            outer = outer._outer
        return ""

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
        self._in_force_after(_current.get())
        self._tokens.append(_current.set(self))
        return self

    def _in_force_after(self, outer: LogCollector | None) -> None:
        if outer is not self and self._outer is None:
            self._outer = outer

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tokens:
            _current.reset(self._tokens.pop())
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.received} received"
        return f"<LogCollector {self.endpoint if hasattr(self, 'endpoint') else '?'} ({state})>"


def collecting(collector: LogCollector) -> AbstractContextManager[LogCollector]:
    """Make ``collector`` the current one inside the ``with`` block (without closing it after)."""
    collector._in_force_after(_current.get())
    return in_force(_current, collector)


def _notice(message: str, process: str, pid: int, created: float) -> LogEntry:
    """A record of zmqtest's own about what arrived (logger ``zmqtest.logs``, WARNING)."""
    return LogEntry(message, "WARNING", logging.WARNING, "zmqtest.logs", process, pid, created, received=time.time())


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
