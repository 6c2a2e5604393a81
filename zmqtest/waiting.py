"""Waiting on what tests wait for, raced against the death of the processes under test.

Every process a :class:`~zmqtest.processes.ProcessManager` starts is *watched* while
the manager is open: any wait in zmqtest (a mimic socket's send or receive, a
readiness check, :func:`wait_for_message`, :func:`wait_until`, a
:class:`~zmqtest.connections.ConnectionWaiter`) puts the watched processes' sentinels in
the same poll as what it waits for (:func:`race`, the one loop they share; a sentinel is a
pidfd or the portable watcher's descriptor, see :mod:`zmqtest.watchers`), so a process
that dies ends the wait at once with its exit status and the tail of its output, instead
of a timeout that says nothing.

The helpers here are the analogue of nameko's ``entrypoint_waiter``: they work
without pytest, every wait is bounded (by default by the harness timeout), and a
timeout says what was awaited and what was seen instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

import zmq

from zmqtest import transcript
from zmqtest.errors import DeadlineExceeded, ProcessError, SocketTimeout, WaitTimeout, ZmqTestError, add_context
from zmqtest.settings import current_timeout, parse_timeout

if TYPE_CHECKING:  # in a module of its own now; still importable from here, as before
    from zmqtest.connections import ConnectionWaiter as ConnectionWaiter

__all__ = [
    "Watched",
    "wait_for_message",
    "wait_until",
    "watched",
    "watching",
]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

MAX_POLL_MS = 2**31 - 1
"""zmq_poll takes a C long of milliseconds; longer waits are clamped (about 24.8 days)."""
SHOWN_MESSAGES = 3
"""How many of the messages a wait skipped its timeout error quotes."""
SHOWN_CHARS = 80
"""How much of each quoted message or value a timeout error shows."""


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
    """The processes whose death ends any wait, now.

    A process the test has stopped, or that may end (``expect_exit``), says so with
    ``ends_waits = False`` and is left out.
    """
    processes = _watched.get()
    if processes:
        processes = tuple(process for process in processes if getattr(process, "ends_waits", True))
    return processes


any_watched = _watched.get
"""``any_watched()``: the processes watched now, also those that no longer end waits (a C call, for hot paths)."""


@contextmanager
def watching(*processes: Watched) -> Iterator[None]:
    """Watch ``processes`` (in addition to those watched already) inside the ``with`` block."""
    token = _watched.set(_watched.get() + processes)
    try:
        yield
    finally:
        _watched.reset(token)


# --- the race: one poll over a socket and the watched sentinels ----------------------------------------------------


def poll_millis(seconds: float) -> int:
    """``seconds`` as a zmq_poll timeout: rounded up (never wake early and spin), clamped to what it takes."""
    if seconds <= 0:
        return 0
    return min(math.ceil(seconds * 1000), MAX_POLL_MS)


PollItems = list[tuple[Any, int]]
"""What ``zmq.zmq_poll`` (the call under ``zmq.Poller.poll``) takes: ``(socket or fd, events)`` pairs."""


def ended(processes: Sequence[Watched], fired: Collection[Any]) -> Watched:
    """Which of ``processes`` owns one of the ``fired`` sentinels (the first watched, if several)."""
    for process in processes:
        if process.sentinel in fired:
            return process
    return processes[0]  # a poll reports only what was registered: unreachable unless a sentinel changed


def describe_watched(processes: Sequence[Watched]) -> str:
    """``"; PongProc (pid 4242, running)"`` per process, for the end of a timeout message."""
    return "".join(f"; {process.describe()}" for process in processes)


def describe_socket(sock: zmq.Socket[Any]) -> str:
    """A mimic describes itself; a plain pyzmq socket gets its type and last endpoint."""
    describe = getattr(sock, "describe", None)
    if callable(describe):
        return str(describe())
    try:
        text = f"{zmq.SocketType(int(sock.getsockopt(zmq.TYPE))).name} socket"
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:  # closed
        return repr(sock)
    return f"{text} at {endpoint}" if endpoint else text


class Pollable(Protocol):
    """What a wait can wait for besides a zmq socket: a pipe, a connection, anything with a file descriptor."""

    def fileno(self) -> int: ...


def race(
    thing: zmq.Socket[Any] | Pollable | int | None,
    deadline: float,
    processes: Sequence[Watched],
    waiting_for: Callable[[], str],
    *,
    event: int = zmq.POLLIN,
    look: Callable[[], bool] | None = None,
    grace: float = 0.0,
    report: Callable[[ZmqTestError], object] | None = None,
) -> bool:
    """Wait for ``thing``, raced against ``processes``: True once it is there, False once ``deadline`` has passed.

    ``thing``: a zmq socket (ready for ``event``), a file descriptor or an object with
    ``fileno()`` (readable), or None (the processes and the clock alone: a caller that
    looks for itself between waits). "There" is ready, or, with ``look``, ready and
    ``look()`` true: it takes what it waits for (a message, a record) and says whether it
    was what was awaited, so ``look()`` is called each time ``thing`` is ready and must
    consume what made it ready. It polls at least once (a zero wait still sees a ready
    thing or an end) and never sleeps past ``deadline``. A ready thing wins over an end:
    what a process sent just before it ended is still received.

    A watched process that ends raises its ``exit_error(waiting_for())`` at once (passed
    to ``report`` first: a transcript line, context), after one last look, as the process
    may have done what was awaited as it ended: ``thing`` alone is polled ``grace``
    seconds more (what the process sent just before its end may still be on its way),
    and looked at each time it is ready; without ``thing``, ``look()`` is called once.
    """
    key: object = thing if thing is None or isinstance(thing, (zmq.Socket, int)) else thing.fileno()
    items: PollItems = [(process.sentinel, zmq.POLLIN) for process in processes]
    if key is not None:
        items.insert(0, (key, event))
    elif not items:  # nothing to poll (zmq_poll would return at once): the caller's pause between its own looks
        time.sleep(poll_millis(deadline - time.monotonic()) / 1000)
        return False
    sock = thing if isinstance(thing, zmq.Socket) else None  # its fd says "something changed": ask it what
    while True:
        ready = zmq.zmq_poll(items, poll_millis(deadline - time.monotonic()))
        if ready:
            if key is not None and (ready[0][0] == key or (sock is not None and ready_now(sock, event))):
                if look is None or look():
                    return True
            else:
                gone = ended(processes, [item for item, _ in ready])
                if _last_look(items[:1] if key is not None else [], look, grace):
                    return True
                error = gone.exit_error(waiting_for())
                if report is not None:
                    report(error)
                raise error
        if time.monotonic() >= deadline:
            return False


def ready_now(sock: zmq.Socket[Any], event: int) -> bool:
    """Ask ``sock`` whether it is ready for ``event`` now: its fd only says that something changed (edge-triggered)."""
    return bool(int(sock.getsockopt(zmq.EVENTS)) & event)


def _last_look(alone: PollItems, look: Callable[[], bool] | None, grace: float) -> bool:
    """After an end: whether what was awaited is there after all, polling the thing ``alone`` ``grace`` s more."""
    if not alone:
        return look is not None and look()
    grace_end = time.monotonic() + grace
    while zmq.zmq_poll(alone, poll_millis(grace_end - time.monotonic())):
        if look is None or look():
            return True
        if time.monotonic() >= grace_end:
            break
    return False


def wait_ready(
    sock: zmq.Socket[Any], event: int, deadline: float, processes: tuple[Watched, ...], waiting_for: Callable[[], str]
) -> bool:
    """Wait until ``sock`` is ready (True) or ``deadline`` (False); a watched death raises its exit error."""
    return race(sock, deadline, processes, waiting_for, event=event, report=failed_wait)


def failed_wait(error: E) -> E:
    """Put a wait that failed in the test's transcript (the test's own column), and hand the error on."""
    transcript.failed(str(error).partition("\n")[0])
    return error


def timeout_seconds(timeout: float | None, where: str) -> float:
    """Return a wait's ``timeout=`` in seconds, checked (``where`` names it in the error); None: the harness timeout."""
    if timeout is None:
        return current_timeout()
    return parse_timeout(timeout, where, allow_zero=True)


def name_of(function: Callable[..., Any]) -> str:
    """A readable name for a predicate or condition: its qualified name, and where a lambda was written."""
    name = getattr(function, "__qualname__", None)
    if not isinstance(name, str):
        return _short(repr(function))
    name = name.rpartition("<locals>.")[2]  # a function defined in a test: its own name says enough
    code = getattr(function, "__code__", None)
    if name == "<lambda>" and code is not None:
        return f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
    return name


def _short(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- wait_for_message ----------------------------------------------------------------------------------------------


class _TestCodec:
    """The default of ``wait_for_message(decode=...)``: as the running ProcessTest's ``recv`` decodes; else raw."""

    def __repr__(self) -> str:
        return "TEST_CODEC"


TEST_CODEC: Any = _TestCodec()


@overload
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[Any], object] | None = None,
    *,
    timeout: float | None = None,
) -> Any: ...
@overload
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[list[bytes]], object] | None = None,
    *,
    timeout: float | None = None,
    decode: None,
) -> list[bytes]: ...
@overload
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[T], object] | None = None,
    *,
    timeout: float | None = None,
    decode: Callable[[list[bytes]], T],
) -> T: ...
def wait_for_message(
    sock: zmq.Socket[Any],
    predicate: Callable[[Any], object] | None = None,
    *,
    timeout: float | None = None,
    decode: Callable[[list[bytes]], Any] | None = TEST_CODEC,
) -> Any:
    """Receive multipart messages on ``sock`` until one satisfies ``predicate``, and return it.

    Messages before it are consumed and dropped (the timeout error quotes the first
    few, so a near miss shows); messages after it stay queued. ``decode(frames)``
    turns each message into what ``predicate`` sees and what is returned; by default,
    inside a ProcessTest's conversation, the last frame decoded with the test's codec
    (as its ``recv`` returns messages), elsewhere the raw frames; ``None``: raw frames.
    ``predicate=None`` takes the first message. Waits at most ``timeout`` seconds
    (default: the harness timeout), raced against the watched processes; on timeout
    raises :class:`~zmqtest.errors.SocketTimeout` (a ``zmq.Again``).
    """
    seconds = timeout_seconds(timeout, "the timeout= argument of wait_for_message")
    if decode is TEST_CODEC:
        decode = _test_decoder(sock)
    what = "any message" if predicate is None else name_of(predicate)
    operation = f"wait_for_message({what})"
    deadline = time.monotonic() + seconds
    processes = watched()
    skipped = Skipped(lambda: f"{operation} on {describe_socket(sock)}")
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            if wait_ready(sock, zmq.POLLIN, deadline, processes, skipped.where):
                continue
            if skipped.seen:
                head = f"{skipped.where()}: no matching message within {seconds:g} s{skipped}"
            else:
                head = f"{skipped.where()}: no message at all within {seconds:g} s"
            raise failed_wait(
                SocketTimeout(head + describe_watched(processes), operation="wait_for_message", timeout=seconds)
            ) from None
        found, message = skipped.check(frames, predicate, decode)
        if found:
            return message


def _test_decoder(sock: zmq.Socket[Any]) -> Callable[[list[bytes]], Any] | None:
    """The running ProcessTest's decoding of a message (its last frame, by its codec), or None outside one."""
    from zmqtest.events import current_codec, decode_frame  # light, and it imports nothing of this module

    codec = current_codec()
    if codec is None:
        return None
    return lambda frames: decode_frame(codec, frames, -1, sock)


class Skipped:
    """The messages a wait received and passed over: how many, and the first few, which its timeout error quotes."""

    def __init__(self, where: Callable[[], str], *, chars: int = SHOWN_CHARS) -> None:
        self.where = where
        """What the wait is, for its errors: ``wait_for_message(ready) on SUB socket at ...``."""
        self.chars = chars
        self.seen = 0
        self.shown: list[str] = []

    def check(
        self,
        frames: list[bytes],
        predicate: Callable[[Any], object] | None,
        decode: Callable[[list[bytes]], Any] | None,
    ) -> tuple[bool, Any]:
        """Whether ``frames`` (decoded) are the message awaited, and the message; an error names the message."""
        self.seen += 1
        try:
            message = frames if decode is None else decode(frames)
            if predicate is None or predicate(message):
                return True, message
        except Exception as exc:
            add_context(exc, f"  in {self.where()}, message {self.seen}: {_short(repr(frames), self.chars)}")
            raise
        if len(self.shown) < SHOWN_MESSAGES:
            self.shown.append(_short(repr(frames), self.chars))
        return False, None

    def __str__(self) -> str:
        """``"; 2 other messages seen: [b'a'], [b'b']"`` (nothing if none was)."""
        if not self.seen:
            return ""
        more = f" and {self.seen - len(self.shown)} more" if self.seen > len(self.shown) else ""
        return f"; {self.seen} other message{'' if self.seen == 1 else 's'} seen: {', '.join(self.shown)}{more}"


# --- wait_until ----------------------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float | None = None,
    interval: float = 0.01,
    what: str | None = None,
) -> T:
    """Call ``condition()`` until it returns something truthy, and return that.

    Between calls it waits ``interval`` seconds on the watched processes' sentinels, so
    a death ends the wait at once (after one last call, in case the process finished
    its work as it ended). An exception from ``condition`` counts as "not yet" (it is
    chained to the timeout error), except zmqtest's process errors and its deadline,
    which end the wait. Timeout (default: the harness timeout) raises
    :class:`~zmqtest.errors.WaitTimeout` naming ``what`` (default: the callable's name)
    and the last value or exception.
    """
    seconds = timeout_seconds(timeout, "the timeout= argument of wait_until")
    pause = parse_timeout(interval, "the interval= argument of wait_until")
    name = what if what is not None else name_of(condition)
    processes = watched()
    deadline = time.monotonic() + seconds
    calls = 0
    last: Any = None
    failure: Exception | None = None

    def check() -> bool:
        """Call the condition once, keeping what it gave; its process errors end the wait."""
        nonlocal calls, last, failure
        calls += 1
        try:
            last = condition()
        except (ProcessError, DeadlineExceeded):
            raise
        except Exception as exc:
            failure, last = exc, None
            return False
        failure = None
        return bool(last)

    def waiting_for() -> str:
        return f"wait_until({name})"

    while True:
        if check():
            return cast("T", last)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if failure is not None:
                outcome = f"the last check raised {type(failure).__name__}: {_short(str(failure), 200)}"
            else:
                outcome = f"the last value was {_short(repr(last), 200)}"
            raise failed_wait(
                WaitTimeout(
                    f"wait_until({name}): not true within {seconds:g} s ({calls} checks); {outcome}"
                    + describe_watched(processes),
                    what=name,
                    timeout=seconds,
                )
            ) from failure
        # between two checks: the processes alone, so a death ends the wait at once (after one last check)
        if race(None, time.monotonic() + min(pause, remaining), processes, waiting_for, look=check, report=failed_wait):
            return cast("T", last)


def __getattr__(name: str) -> Any:
    """Hand out :class:`~zmqtest.connections.ConnectionWaiter` from its module, imported only then (it imports this)."""
    if name == "ConnectionWaiter":
        from zmqtest.connections import ConnectionWaiter

        return ConnectionWaiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
