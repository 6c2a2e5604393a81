"""``ProcMock``: stand in for the child processes a process under test starts.

The process under test (a real process) typically binds a socket to a random port and
starts a worker, ``WorkerProc(port)``. In a process test the worker class is replaced
by a :class:`ProcMock`: nothing is started, and every construction ``(args, kwargs)``
is sent back to the test through a :class:`multiprocessing.Queue`, so the test learns
the port and connects its mimic socket to it::

    worker_class = ProcMock(name="worker")
    proc = ParentProc(worker_class=worker_class)   # the process under test
    proc.start()
    port = worker_class.wait_for_call().args[0]     # what ParentProc passed to WorkerProc(...)
    sock = make_sock(context, zmq.REQ, connect=("127.0.0.1", port))

How a mock reaches a child that is not forked
---------------------------------------------
With ``spawn`` and ``forkserver`` (Linux's default since Python 3.14) the child does not
inherit the test's memory: it imports its modules afresh and receives the ``Process``
object by pickling. So:

- **Hand it over** (works with every start method): pass the mock to the process under
  test, as a constructor argument or attribute (``ParentProc(worker_class=mock)``), or
  through ``ProcessManager.start(proc, patches={"app.WorkerProc": mock})``, which
  pickles the patches with the process and applies ``unittest.mock.patch`` in the child
  before ``run()``. Either way the mock is pickled while the process is being started,
  and the child rebuilds a ProcMock joined to the *same* queue.
- **Patch in the test** (fork only): ``with mock.patch("app.WorkerProc", mock):
  proc.start()``. A forked child inherits the patched module; a spawn or forkserver
  child imports ``app`` afresh and starts the real ``WorkerProc``, and
  :meth:`ProcMock.wait_for_call` times out (its message says so).

A multiprocessing queue is a pipe and three named semaphores. Python lets it be pickled
only while a process is being started, when the starter hands the file descriptors to
the child; so does ProcMock, with an error that says what to do instead. Its queue is
made from the context of the start method the process under test uses (argument,
default :attr:`zmqtest.settings.Settings.start_method`): a queue made for ``fork``
cannot be opened by a spawn or forkserver child.

What the test sees
------------------
Mock's own records (``call_args_list``, ``start.called``, ...) see only calls made in
the test process; constructions made in a child arrive through the queue and are read
with :meth:`~ProcMock.wait_for_call` (the next one, with a bounded wait) and
:meth:`~ProcMock.calls_so_far` (all of them, without waiting). ``ProcMock.queue`` is the
raw queue, whose items are ``(args, kwargs)`` pairs, as in the article this project
grew from. A construction is in the pipe when the call returns (no feeder thread), so
it reaches the test even if the process under test is killed right after it.

Close the mock when the test ends (:meth:`~ProcMock.close_queue`, or ``with``) so that
its pipe does not outlive the test. ``close()`` is not that method: like ``start()`` and
``join()`` it belongs to the process API the mock imitates, and the process under test
may call it.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable
from multiprocessing.context import BaseContext, get_spawning_popen
from multiprocessing.queues import Queue
from multiprocessing.reduction import ForkingPickler
from types import TracebackType
from typing import Any, NamedTuple
from unittest.mock import Mock, NonCallableMock, _Call

from zmqtest import settings
from zmqtest.compat import close_queue, put_now, queue_reader
from zmqtest.errors import ZmqTestError
from zmqtest.waiting import race, watched

__all__ = ["ProcCall", "ProcMock", "ProcMockError", "ProcMockTimeout", "UnpicklableArgument"]


class ProcMockError(ZmqTestError, RuntimeError):
    """A ProcMock was misused: closed, pickled outside a process start, or made for the wrong start method.

    A :class:`RuntimeError`, as multiprocessing's own error for a queue pickled at the wrong time is.
    """


class ProcMockTimeout(ProcMockError, TimeoutError):
    """:meth:`ProcMock.wait_for_call` saw no new construction within its timeout."""


class UnpicklableArgument(ProcMockError, TypeError):
    """A ProcMock was constructed with an argument that cannot travel through its queue.

    Raised in the process that constructed it, and again by the test's next
    :meth:`ProcMock.wait_for_call`, so the test fails with the reason instead of a timeout.
    """


class ProcCall(NamedTuple):
    """One construction of a ProcMock as it travels on the queue: ``args, kwargs = mock.queue.get()``."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _CallFailed(NamedTuple):
    """Sent instead of a :class:`ProcCall` whose arguments could not be pickled."""

    message: str


_PROCESS_METHODS = ("start", "join", "terminate", "kill", "close")
"""Process methods that do nothing on a ProcMock (their calls are still recorded, as on any Mock)."""


class ProcMock(Mock):
    """A ``unittest.mock.Mock`` that stands in for a process class *and* its instances.

    Calling it (constructing "a process") records the call like any Mock, sends
    ``(args, kwargs)`` to the test through :attr:`queue`, and returns the mock itself,
    so ``WorkerProc(port).start()`` works. ``start``, ``join``, ``terminate``, ``kill``
    and ``close`` do nothing; ``is_alive()`` returns ``alive``; ``exitcode`` is 0 (None
    while ``alive``); ``pid`` is ``pid``; ``daemon`` and ``name`` can be set.

    Arguments (all keyword-only):

    - ``name``: the mock's name, used in error messages and as the process ``name``.
    - ``start_method``: ``"fork"``, ``"forkserver"``, ``"spawn"`` or a multiprocessing
      context; the queue is made for it. Default: the ``start_method`` setting.
    - ``timeout``: the default wait of :meth:`wait_for_call`. Default: the
      ``startup_timeout`` setting, since a construction happens while the process under
      test starts, which takes seconds under load with spawn; the 1 s of a mimic
      socket would be too short.
    - ``alive``, ``exitcode``, ``pid``: what the fake process reports.
    - ``spec``, ``spec_set`` and other keywords: as for :class:`unittest.mock.Mock`.
      Only ``spec``/``spec_set`` and the options above travel to a spawn or forkserver
      child; configure anything else in the child, or under fork.
    """

    _pm_method: str
    _pm_timeout: float | None
    _pm_spec: tuple[Any, Any]
    _pm_queue: Queue[Any] | None
    _pm_received: list[_Call]
    _pm_returned: int

    def __init__(
        self,
        *,
        name: str | None = None,
        start_method: settings.StartMethod | BaseContext | None = None,
        timeout: float | None = None,
        alive: bool = False,
        exitcode: int | None = None,
        pid: int | None = None,
        spec: Any = None,
        spec_set: Any = None,
        _queue: Queue[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, spec=spec, spec_set=spec_set, **kwargs)
        context = _context(start_method)
        state = self.__dict__
        state["_pm_method"] = context.get_start_method()
        state["_pm_timeout"] = None if timeout is None else settings.parse_timeout(timeout, "ProcMock(timeout=...)")
        state["_pm_spec"] = (spec, spec_set)
        state["_pm_queue"] = _queue if _queue is not None else context.Queue()
        state["_pm_received"] = []  # constructions read from the queue, in order
        state["_pm_returned"] = 0  # how many of them wait_for_call has handed out
        self.return_value = self
        for method in _PROCESS_METHODS:
            setattr(self, method, Mock(return_value=None))
        self.is_alive = Mock(return_value=alive)
        self.exitcode = exitcode if exitcode is not None or alive else 0
        self.pid = pid
        self.daemon = False
        self.name = name or "ProcMock"

    # -- the process under test's side -------------------------------------------------

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        """Construct "a process": record the call, send it to the test, return the mock."""
        result = super().__call__(*args, **kwargs)
        queue = self._live_queue()
        record = ProcCall(args, kwargs)
        try:
            payload = bytes(ForkingPickler.dumps(record))
        except Exception as exc:
            failure = UnpicklableArgument(self._unpicklable_message(args, kwargs, exc))
            put_now(queue, _CallFailed(failure.message))
            raise failure from exc
        put_now(queue, record, payload)
        return result

    def _get_child_mock(self, /, **kw: Any) -> NonCallableMock:
        """Attributes and their return values are plain Mocks: only the mock itself owns a queue."""
        if self._mock_sealed:
            return super()._get_child_mock(**kw)  # raises AttributeError, naming the attribute
        return Mock(**kw)

    def __reduce__(self) -> tuple[Callable[[dict[str, Any]], ProcMock], tuple[dict[str, Any]]]:
        """Travel to a spawn or forkserver child as a ProcMock joined to the same queue.

        Only possible while a process is being started, when multiprocessing hands the
        queue's file descriptors to the child; at any other time this raises.
        """
        queue = self._live_queue()
        popen = get_spawning_popen()
        if popen is None:
            raise ProcMockError(
                f"{self._describe()} can be pickled only while a process is being started: a spawn or "
                "forkserver child then gets a copy that sends to the same queue. Pass the mock to the process "
                "under test (as an argument or attribute of the Process, or in ProcessManager.start(..., "
                "patches=...)); under fork, mock.patch in the test process before start() also reaches the child"
            )
        child_method = getattr(popen, "method", None)
        if self._pm_method == "fork" and child_method not in (None, "fork"):
            raise ProcMockError(
                f"{self._describe()} was made for start method 'fork', but is being sent to a {child_method!r} "
                f"child, which cannot open a fork queue: make it with ProcMock(start_method={child_method!r})"
            )
        spec, spec_set = self._pm_spec
        state: dict[str, Any] = {
            "name": self._mock_name,
            "start_method": self._pm_method,
            "timeout": self._pm_timeout,
            "alive": _plain(getattr(self.is_alive, "return_value", False), False),
            "exitcode": _plain(self.exitcode, 0),
            "pid": _plain(self.pid, None),
            "spec": spec,
            "spec_set": spec_set,
            "_queue": queue,
        }
        return _rebuild, ({"init": state, "daemon": _plain(self.daemon, False), "name": _plain(self.name, None)},)

    # -- the test's side ---------------------------------------------------------------

    @property
    def queue(self) -> Queue[Any]:
        """The queue the constructions travel on: :class:`ProcCall` ``(args, kwargs)`` items.

        (A construction whose arguments could not be pickled sends a private failure record instead.)
        """
        return self._live_queue()

    @property
    def start_method(self) -> str:
        """The start method the queue was made for."""
        return str(self._pm_method)

    @property
    def closed(self) -> bool:
        """True once :meth:`close_queue` has run."""
        return self.__dict__.get("_pm_queue") is None

    def wait_for_call(self, timeout: float | None = None) -> _Call:
        """Wait for the next construction and return it as a ``call`` (``.args``, ``.kwargs``).

        The wait ends at the first of: a construction not returned before; ``timeout``
        seconds (default: the mock's ``timeout``, else the ``startup_timeout`` setting),
        raising :class:`ProcMockTimeout`; a watched process under test ending, raising
        its exit error; a construction whose arguments could not be pickled, raising
        :class:`UnpicklableArgument`.
        """
        seconds = self._wait_seconds(timeout)
        deadline = time.monotonic() + seconds
        received: list[_Call] = self._pm_received
        while self._pm_returned >= len(received):
            if not self._receive(deadline):
                raise ProcMockTimeout(self._timeout_message(seconds))
        found = received[self._pm_returned]
        self.__dict__["_pm_returned"] = self._pm_returned + 1
        return found

    def calls_so_far(self) -> list[_Call]:
        """Every construction received so far (also those :meth:`wait_for_call` returned), without waiting."""
        while self._receive(None):
            pass
        return list(self._pm_received)

    def close_queue(self) -> None:
        """Close the queue: its pipe, and the feeder thread if this process sent anything. Idempotent."""
        queue = self.__dict__.get("_pm_queue")
        if queue is None:
            return
        self.__dict__["_pm_queue"] = None
        close_queue(queue)

    def __enter__(self) -> ProcMock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_queue()

    # -- helpers -----------------------------------------------------------------------

    def _describe(self) -> str:
        return f"ProcMock {self._mock_name!r}" if self._mock_name else "ProcMock"

    def _live_queue(self) -> Queue[Any]:
        queue: Queue[Any] | None = self.__dict__.get("_pm_queue")
        if queue is None:
            raise ProcMockError(f"{self._describe()} is closed (close_queue() was called): make a new one")
        return queue

    def _wait_seconds(self, timeout: float | None) -> float:
        if timeout is not None:
            return settings.parse_timeout(timeout, "wait_for_call(timeout=...)", allow_zero=True)
        own: float | None = self._pm_timeout
        return own if own is not None else settings.current().startup_timeout

    def _receive(self, deadline: float | None) -> bool:
        """Read one more record into ``_pm_received``; False if none came by ``deadline`` (None: don't wait)."""
        queue = self._live_queue()
        reader = queue_reader(queue)
        if deadline is None or reader is None:  # no wait, or a queue whose pipe is out of reach: its own wait
            return self._take(queue, 0.0 if deadline is None else max(0.0, deadline - time.monotonic()))
        return race(
            reader,
            deadline,
            watched(),
            lambda: f"a call (construction) of {self._describe()}",
            look=lambda: self._take(queue, 0.0),
        )

    def _take(self, queue: Queue[Any], timeout: float) -> bool:
        try:
            item = queue.get(True, timeout) if timeout > 0 else queue.get_nowait()
        except queue_module.Empty:
            return False
        if isinstance(item, _CallFailed):
            raise UnpicklableArgument(item.message)
        args, kwargs = item
        self._pm_received.append(_Call((tuple(args), dict(kwargs)), two=True))
        return True

    def _timeout_message(self, seconds: float) -> str:
        received: list[_Call] = self._pm_received
        seen = f"{len(received)} call{'' if len(received) == 1 else 's'} so far"
        if received:
            seen += f", already returned by earlier waits; last: {received[-1]!r}"
        return (
            f"{self._describe()} was not called (constructed) within {seconds:g} s ({seen}). Is the process under "
            "test running, and does it reach the construction? Under spawn or forkserver it gets the mock only if "
            "the mock is handed over (as an argument, or through ProcessManager patches=): a mock.patch in the test "
            "reaches fork children only"
        )

    def _unpicklable_message(self, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception) -> str:
        culprit = "an argument"
        named = [(f"argument {index}", value) for index, value in enumerate(args)]
        named += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
        for label, value in named:
            try:
                ForkingPickler.dumps(value)
            except Exception as value_exc:
                culprit, exc = f"{label} ({_short(value)})", value_exc
                break
        return (
            f"{self._describe()} was called with {culprit} that cannot be pickled, so the call cannot reach "
            f"the test through the queue: {type(exc).__name__}: {exc}"
        )


def _context(start_method: str | BaseContext | None) -> BaseContext:
    """The multiprocessing context for ``start_method`` (a name, a context, or None for the setting)."""
    if isinstance(start_method, BaseContext):
        return start_method
    if start_method is None:
        name = settings.current().start_method
    else:
        name = settings.parse_start_method(start_method, "ProcMock(start_method=...)")
    return multiprocessing.get_context(name)


def _rebuild(state: dict[str, Any]) -> ProcMock:
    """Unpickle a ProcMock in a child: a fresh mock on the parent's queue."""
    mock = ProcMock(**state["init"])
    mock.daemon = state["daemon"]
    if state["name"] is not None:
        mock.name = state["name"]
    return mock


def _plain(value: object, default: object) -> Any:
    """``value``, unless it is a Mock (an attribute the test never set), which cannot be pickled."""
    return default if isinstance(value, NonCallableMock) else value


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
