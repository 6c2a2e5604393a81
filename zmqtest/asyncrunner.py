"""asyncio tests: ``async def`` tests, and ProcessTest conversations written as async generators.

An async generator method of a :class:`~zmqtest.ProcessTest` is a conversation like a
generator one, driven on an event loop::

    async def test_ping(self):
        await self.worker_ready          # any await in between: other peers (tasks) run meanwhile
        yield send(self.client, [], ["ping", 1])
        reply = yield recv(self.client, timeout=0.5)

Events are the same; ``send``, ``recv`` and ``expect_nothing`` on an
:class:`~zmqtest.asyncio.AsyncTestSocket` wait without blocking the loop; an action of
the test class may be ``async def`` (awaited); the other built-in actions (``log``,
``wait_for_output``, ``restart``, ...) wait on the processes, not on the loop's sockets,
and run in a worker thread so that the loop goes on. Failures are thrown in at the
``yield``, as in a generator test. :func:`run` runs a coroutine on a new event loop:
what the plugin does with an ``async def`` test that no async plugin has taken.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
import types
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import zmq

from zmqtest import transcript
from zmqtest.errors import EventError, SocketTimeout, ZmqTestError, add_context
from zmqtest.events import AnyEvent, Event, arity_problem, check_for_unyielded_events, codec_in_force, decode_frame
from zmqtest.sendrecv import passed_over, silence_kept, skipped_only, unexpected
from zmqtest.waiting import failed_wait, name_of, ready_now

if TYPE_CHECKING:
    from zmqtest.asyncio import AsyncTestSocket
    from zmqtest.runner import ProcessTest

__all__ = ["converse", "run"]

T = TypeVar("T")
_monotonic = time.monotonic
_ON_THE_LOOP = frozenset({"send", "recv", "expect_nothing", "subscribed", "receiving"})
"""Built-in actions that wait on a mimic socket: awaited on the loop for an AsyncTestSocket."""
_OFF_THE_LOOP = frozenset({"log", "wait_for_output", "pause", "resume", "restart"})
"""Built-in actions that wait on the processes or their logs: run in a worker thread, the loop going on."""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a new event loop (closed afterwards, with its tasks cancelled)."""
    return asyncio.run(coroutine)


def converse(test: ProcessTest, testfunc: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Drive the async generator test ``testfunc(*args, **kwargs)`` of ``test`` to its end, on a new event loop."""
    __tracebackhide__ = True
    check_for_unyielded_events(testfunc)
    conversation = testfunc(*args, **kwargs)
    with transcript.for_run(test.codec), codec_in_force(test.codec, f"{type(test).__qualname__}.codec"):
        try:
            run(_drive(test, conversation))
        finally:
            test._drain_logs()


async def _drive(test: ProcessTest, conversation: AsyncGenerator[AnyEvent, Any]) -> None:
    __tracebackhide__ = True
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                event = await (conversation.asend(value) if error is None else conversation.athrow(error))
            except StopAsyncIteration:
                return
            error = None
            try:
                value = await _act(test, event)
            except Exception as exc:
                value, error = None, _at_yield(exc, event, conversation)
            except (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError):
                raise
            except BaseException as exc:  # pytest.fail/skip in an action: thrown in as is
                value, error = None, exc
    except BaseException as failure:
        try:
            await conversation.aclose()
        except Exception as problem:
            add_context(failure, f"  also, closing the test generator failed: {problem!r}")
        raise


async def _act(test: ProcessTest, event: object) -> Any:
    """Do what ``event`` asks: on the loop, awaited, or in a worker thread (see the module's docstring)."""
    options: Mapping[str, Any]
    if type(event) is tuple:
        args, options = event[1:], {}
    elif type(event) is Event:
        args, options = event.args, event.options
    else:
        raise EventError(test._not_an_event(event))
    action = test._action(event)
    name = action.__name__
    from zmqtest.asyncio import AsyncTestSocket
    from zmqtest.runner import ProcessTest

    own = getattr(type(test), name, None) is getattr(ProcessTest, name, None)
    try:
        if own and name in _ON_THE_LOOP and args and isinstance(args[0], AsyncTestSocket):
            return await _ASYNC_ACTIONS[name](test, *args, **options)
        if own and name in _OFF_THE_LOOP:
            context = contextvars.copy_context()  # the transcript, the watched processes, the settings
            return await asyncio.to_thread(context.run, functools.partial(action, *args, **options))
        result = action(*args, **options)
    except TypeError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
            raise EventError(arity_problem(action, event, exc)) from None
        raise
    if inspect.isawaitable(result):
        return await result
    return result


async def _send(
    test: ProcessTest,
    sock: AsyncTestSocket,
    header: Any,
    body: Any,
    extra_frames: Any = (),
    *,
    timeout: float | None = None,
) -> None:
    from zmqtest.runner import _unreachable

    frames = test._frames(sock, header, body, extra_frames)
    seconds = None if timeout is None else _seconds(timeout, "send", "timeout")
    try:
        await sock.send_multipart(frames, timeout=seconds)
    except zmq.ZMQError as exc:
        _unreachable(exc, frames, sock)
        raise


async def _recv(
    test: ProcessTest,
    sock: AsyncTestSocket,
    json_load_index: int | None = -1,
    *,
    timeout: float | None = None,
    skip: Callable[[list[Any]], object] | None = None,
) -> Any:
    from zmqtest.runner import _check_receive

    _check_receive(sock, json_load_index)
    seconds = sock.timeout if timeout is None else _seconds(timeout, "recv", "timeout")
    if skip is None:
        frames = await sock.recv_multipart(timeout=seconds)
        return frames if json_load_index is None else decode_frame(test.codec, frames, json_load_index, sock)
    if not callable(skip):
        raise _option_error("recv", f"skip= takes a predicate of the message (a callable), got {skip!r:.80}")
    look = test._looking(sock, json_load_index, skip)
    seconds = sock._seconds("recv", seconds)
    deadline = _monotonic() + seconds
    skipped: list[str] = []
    wait = seconds
    while True:
        try:
            frames = await sock.recv_multipart(timeout=wait)
        except SocketTimeout as exc:
            if not skipped:
                raise
            raise skipped_only(sock, seconds, name_of(skip), skipped, exc) from None
        message, skipping = look(frames)
        if not skipping:
            return message
        passed_over(sock, message, skipped)
        wait = max(deadline - _monotonic(), 0.0)


async def _expect_nothing(
    test: ProcessTest, sock: AsyncTestSocket, seconds: float, *, skip: Callable[[list[Any]], object] | None = None
) -> None:
    if skip is not None and not callable(skip):
        raise _option_error("expect_nothing", f"skip= takes a predicate of the message (a callable), got {skip!r:.80}")
    wait = _seconds(seconds, "expect_nothing", "seconds")
    look = test._looking(sock, -1, skip, lenient=True)
    began = _monotonic()
    queued = ready_now(sock, zmq.POLLIN)
    while True:
        remaining = began + wait - _monotonic()
        waiting_for = f"expecting nothing on {sock.describe()} (expect_nothing)"
        if remaining <= 0 or not await sock._readable(_monotonic() + remaining, waiting_for):
            silence_kept(sock, wait)
            return
        try:
            frames = await sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            continue
        message, skipping = look(frames)
        if not skipping:
            raise failed_wait(unexpected(sock, wait, message, queued, began))
        passed_over(sock, message, [])
        queued = False


async def _subscribed(
    test: ProcessTest, xpub: AsyncTestSocket, topic: bytes | str | None = None, count: int = 1
) -> list[bytes]:
    from zmqtest.asyncio import wait_for_subscriber

    return await wait_for_subscriber(xpub, topic, count=count)


async def _receiving(
    test: ProcessTest,
    sub: AsyncTestSocket,
    probe: Any = None,
    predicate: Callable[[list[bytes]], object] | None = None,
) -> list[bytes]:
    from zmqtest.asyncio import wait_until_receiving

    if type(probe) is tuple or type(probe) is Event:
        probe_event = probe

        def probe_by_event() -> Coroutine[Any, Any, Any]:
            return _act(test, probe_event)

        return await wait_until_receiving(sub, probe_by_event, predicate)
    return await wait_until_receiving(sub, probe, predicate)


_ASYNC_ACTIONS: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {
    "send": _send,
    "recv": _recv,
    "expect_nothing": _expect_nothing,
    "subscribed": _subscribed,
    "receiving": _receiving,
}


def _seconds(value: object, action: str, option: str) -> float:
    from zmqtest.runner import _option_seconds

    return _option_seconds(value, action, option)


def _option_error(action: str, problem: str) -> EventError:
    from zmqtest.runner import _option_error as option_error

    return option_error(action, problem)


def _at_yield(exc: Exception, event: AnyEvent, conversation: AsyncGenerator[AnyEvent, Any]) -> Exception:
    """Name the event and the yield line in ``exc``; zmqtest's and pyzmq's errors lose their traceback."""
    from zmqtest.events import short as _short
    from zmqtest.rendering import relative_path

    frame = conversation.ag_frame  # type: ignore[attr-defined]
    where = (
        f"{relative_path(frame.f_code.co_filename)}:{frame.f_lineno}"
        if isinstance(frame, types.FrameType)
        else conversation.__qualname__  # type: ignore[attr-defined]
    )
    add_context(exc, f"  event: {_short(event)} at {where}")
    if isinstance(exc, (ZmqTestError, zmq.ZMQError)):
        exc = exc.with_traceback(None)
    return exc
