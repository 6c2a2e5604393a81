"""Mimic sockets for asyncio: a :class:`~zmqtest.TestSocket` whose sends and receives are awaited.

``TestSocket(zmq.asyncio.Context(), zmq.REQ)`` (or ``zmq_sock`` with ``zmq_async_context``)
makes an :class:`AsyncTestSocket`: a ``zmq.asyncio.Socket`` (pollers, ``isinstance`` and
code written for pyzmq's asyncio sockets work as usual) that is also a mimic (bind,
connect, options, ``describe()``, peers, transcript: all :class:`~zmqtest.TestSocket`'s).
Its sends and receives return futures, as pyzmq's do, that wait at most the timeout
(``timeout=`` of the call, else the socket's, else the harness default) and then raise the
same :class:`~zmqtest.errors.SocketTimeout`, with the same message, as a blocking mimic; a
watched process that dies meanwhile raises its exit error at once. The event loop runs on
while they wait: other peers of the test (tasks) go on.

The peer sees exactly what a plain ``zmq.asyncio`` socket would send: each call is one
non-blocking libzmq call when the socket is ready, made by pyzmq's asyncio socket itself.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq
import zmq.asyncio
from zmq.utils import jsonapi

from zmqtest import transcript
from zmqtest.asyncwaits import end_of, ended_process, release, wait_for_subscriber, wait_until_receiving
from zmqtest.contexts import TestContext
from zmqtest.errors import ProcessError, SocketTimeout, add_context
from zmqtest.sendrecv import DEATH_GRACE_MS, closed_error, timeout_message
from zmqtest.settings import current_timeout, parse_timeout
from zmqtest.sockets import TestSocket
from zmqtest.startover import settle, start_over
from zmqtest.waiting import Watched, describe_watched, failed_wait, ready_now, watched

_Call = Callable[..., asyncio.Future[Any]]
_PYZMQ_SEND_MULTIPART = cast(_Call, zmq.asyncio.Socket.send_multipart)
_PYZMQ_RECV_MULTIPART = cast(_Call, zmq.asyncio.Socket.recv_multipart)
_PYZMQ_RECV = cast(_Call, zmq.asyncio.Socket.recv)
_PYZMQ_RECV_INTO = cast(_Call, zmq.asyncio.Socket.recv_into)
"""pyzmq's asyncio calls: a mimic's sends and receives are their futures, bounded."""

__all__ = ["AsyncTestContext", "AsyncTestSocket", "wait_for_subscriber", "wait_until_receiving"]

_monotonic = time.monotonic


class AsyncTestSocket(zmq.asyncio.Socket, TestSocket):
    """A mimic socket for asyncio tests: ``await sock.recv_multipart(timeout=0.3)``.

    Made by ``TestSocket(context, kind, ...)`` when ``context`` is a ``zmq.asyncio.Context``,
    with the same keywords. Every send and receive (``send``, ``send_multipart``,
    ``send_json``, ``send_string``, ``send_pyobj``, ``send_serialized``, the same ``recv_*``,
    ``recv_into``) takes ``timeout=`` and returns an awaitable.
    """

    __test__ = False

    # --- the waits ------------------------------------------------------------------------------------------------

    def _move(
        self,
        name: str,
        sending: bool,
        issue: Callable[[], asyncio.Future[Any]],
        record: Callable[[Any, float], None],
        timeout: float | None,
        flags: int,
    ) -> asyncio.Future[Any]:
        """The future of a send or receive: pyzmq's own (``issue()``), bounded and explained.

        pyzmq makes the non-blocking call at once, and again once the socket is ready;
        ``record(result, at)`` puts what went through in the transcript. A call that
        waits is bounded by the timeout and by the watched processes' ends (:meth:`_waiting`).
        """
        if self.__dict__["_armed"] is not None:  # a blocking mimic call armed libzmq's timeout: pyzmq's futures obey it
            _disarm(self)
        at = time.perf_counter()
        try:
            inner = issue()
        except zmq.ZMQError as exc:  # a closed socket, a context terminated
            inner = asyncio.get_running_loop().create_future()
            inner.set_exception(exc)
        if not inner.done():
            return self._waiting(inner, name, sending, issue, record, self._seconds(name, timeout), at)
        error = inner.exception()
        if error is None:
            record(inner.result(), at)
            if self.__dict__["_pending"]:
                settle(self, sending)
            return inner
        if isinstance(error, zmq.ZMQError) and not (isinstance(error, zmq.Again) and flags & zmq.NOBLOCK):
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(self._failure(name, error, sending))
            return failed
        return inner

    def _waiting(
        self,
        inner: asyncio.Future[Any],
        name: str,
        sending: bool,
        issue: Callable[[], asyncio.Future[Any]],
        record: Callable[[Any, float], None],
        seconds: float,
        at: float,
    ) -> asyncio.Future[Any]:
        """Bound pyzmq's future of a call that waits: a timer and the processes' ends, no task, no poller.

        A receive's future is pyzmq's own, ended by zmqtest's error when the time is up (as
        pyzmq's own timeouts end it). After a watched process ends, the call gets
        :data:`DEATH_GRACE_MS` more (what it sent just before may still be on its way). A
        send is refused while the socket is ready when a ROUTER's POLLOUT means "some peer can
        take it", maybe not this one: it is made again after a pause (1 to 64 ms), under one
        future of zmqtest's.
        """
        loop = asyncio.get_running_loop()
        outer = loop.create_future() if sending else inner
        processes = watched()
        deaths = [end_of(process) for process in processes]
        deadline = _monotonic() + seconds
        refused = 0
        handles: list[asyncio.TimerHandle] = []

        def clean_up() -> None:
            for handle in handles:
                handle.cancel()
            if deaths:
                for death in deaths:
                    death.remove_done_callback(ended)
                release(processes)
                deaths.clear()

        def finish(error: BaseException) -> None:
            """End the call with ``error`` (its pyzmq future cancelled, if it is not the one handed out)."""
            if outer.done():
                return
            if inner is not outer:
                inner.cancel()
            clean_up()
            outer.set_exception(error)

        def went(future: asyncio.Future[Any]) -> None:
            nonlocal inner, refused
            if (
                future is outer and inner is not outer
            ):  # the caller gave up (wait_for, a cancelled task): so does the call
                if future.cancelled():
                    inner.cancel()
                clean_up()
                return
            if future.cancelled() or (outer.done() and future is not outer):
                clean_up()
                return
            error = future.exception()
            if error is None:
                result = future.result()
                record(result, at)
                if self.__dict__["_pending"]:
                    settle(self, sending)
                clean_up()
                if outer is not future:
                    outer.set_result(result)
            elif outer is future:  # zmqtest's own error, set below, or the context went away
                clean_up()
            elif isinstance(error, zmq.Again) and _monotonic() < deadline:
                pause = min((1 << min(refused, 6)) / 1000, deadline - _monotonic())
                refused += 1
                handles.append(loop.call_later(pause, again))
            elif isinstance(error, zmq.Again):
                timed_out()
            elif isinstance(error, zmq.ZMQError):
                finish(self._failure(name, error, sending))
            else:
                finish(error)

        def again() -> None:
            nonlocal inner
            if not outer.done():
                inner = issue()
                inner.add_done_callback(went)

        def timed_out() -> None:
            if not outer.done():
                message = timeout_message(self, name, seconds) + describe_watched(processes)
                finish(self._failed(SocketTimeout(message, operation=name, timeout=seconds), sending))

        def ended(death: asyncio.Future[None]) -> None:
            gone = ended_process(processes, deaths, {death})
            if gone is None or outer.done():
                return

            def too_late() -> None:
                if not outer.done():
                    finish(self._failed(gone.exit_error(f"{name} on {self.describe()}"), sending))

            handles.append(loop.call_later(DEATH_GRACE_MS / 1000, too_late))

        inner.add_done_callback(went)
        if outer is not inner:
            outer.add_done_callback(went)
        handles.append(loop.call_later(seconds, timed_out))
        for death in deaths:
            death.add_done_callback(ended)
        return outer

    async def _until(self, event: int, deadline: float, processes: Sequence[Watched]) -> Watched | None:
        """Wait until the socket is ready for ``event`` or ``deadline``; a process of ``processes`` that ends first.

        After an end, the socket gets :data:`DEATH_GRACE_MS` more: what the process sent
        just before it ended may still be on its way.
        """
        if self.__dict__["_armed"] is not None:  # a blocking mimic call armed libzmq's timeout: pyzmq's poll obeys it
            _disarm(self)
        ready = _poll(self, event)
        deaths = [end_of(process) for process in processes]
        try:
            done, _ = await asyncio.wait(
                [ready, *deaths], timeout=max(deadline - _monotonic(), 0), return_when="FIRST_COMPLETED"
            )
        finally:
            ready.cancel()
            release(processes)
        gone = ended_process(processes, deaths, done)
        if gone is not None and ready not in done:
            grace = _poll(self, event)
            try:
                await asyncio.wait([grace], timeout=DEATH_GRACE_MS / 1000)
            finally:
                grace.cancel()
        return gone

    async def _readable(self, until: float, waiting_for: str) -> bool:
        """Whether a message comes by ``until`` (not taken); a watched process's end raises its exit error."""
        processes = watched()
        gone = await self._until(zmq.POLLIN, until, processes)
        if ready_now(self, zmq.POLLIN):
            return True
        if gone is not None:
            raise failed_wait(gone.exit_error(waiting_for))
        return False

    def _seconds(self, name: str, timeout: float | None) -> float:
        if timeout is not None:
            return parse_timeout(timeout, f"the timeout= argument of {name}", allow_zero=True)
        seconds = self.__dict__["_timeout"]
        return current_timeout() if seconds is None else float(seconds)

    def _failure(self, name: str, exc: zmq.ZMQError, sending: bool) -> BaseException:
        """A ZMQ error of a call, named as a blocking mimic names it."""
        if exc.errno == zmq.ENOTSOCK and self.closed:
            return self._failed(closed_error(self, name), sending)
        add_context(exc, f"  in {name} on {self.describe()}")
        stuck = self.__dict__["_stuck"]
        if stuck and exc.errno == zmq.EFSM and sending:
            add_context(exc, f"  {stuck}")
        return self._failed(exc, sending)

    def _failed(self, error: BaseException, sending: bool) -> BaseException:
        """Put a failed wait in the transcript; a REQ whose receive gave up starts over, as a blocking one does."""
        record = transcript.current()
        if record is not None:
            record.error(self, str(error).partition("\n")[0].replace(f" on {self.describe()}", "", 1))
        if not sending and self.__dict__["_req"] and isinstance(error, (SocketTimeout, ProcessError)):
            start_over(self)
        return error

    def _recorded(self, kind: transcript.EventKind, frames: Sequence[Any], at: float | None = None) -> None:
        record = transcript.current()
        if record is not None:
            record.message(self, kind, frames, at)

    # --- the calls ------------------------------------------------------------------------------------------------

    def send(  # type: ignore[override]
        self, data: Any, flags: int = 0, copy: bool = True, track: bool = False, *, timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Send one frame; the future resolves once libzmq took it (see :meth:`send_multipart`)."""
        return self.send_multipart([data], flags, copy, track, timeout=timeout)

    def send_multipart(  # type: ignore[override]
        self,
        msg_parts: Sequence[Any],
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        *,
        timeout: float | None = None,
    ) -> asyncio.Future[Any]:
        """Send a multipart message, waiting at most the timeout for the peer to take it."""
        parts = list(msg_parts)
        if not parts:
            raise ValueError(f"send_multipart on {self.describe()}: a message has at least one frame")

        def issue() -> asyncio.Future[Any]:
            return _PYZMQ_SEND_MULTIPART(self, parts, flags, copy=copy, track=track)

        def record(result: Any, at: float) -> None:
            self._recorded("send", parts, at)

        return self._move("send_multipart", True, issue, record, timeout, flags)

    def recv_multipart(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False, *, timeout: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Receive a multipart message, waiting at most the timeout."""

        def issue() -> asyncio.Future[Any]:
            return _PYZMQ_RECV_MULTIPART(self, flags, copy=copy, track=track)

        return self._move("recv_multipart", False, issue, self._received, timeout, flags)

    def recv(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False, *, timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Receive one frame, waiting at most the timeout."""

        def issue() -> asyncio.Future[Any]:
            return _PYZMQ_RECV(self, flags, copy=copy, track=track)

        def record(frame: Any, at: float) -> None:
            self._recorded("recv", (frame,))

        return self._move("recv", False, issue, record, timeout, flags)

    def recv_into(  # type: ignore[override]
        self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0, timeout: float | None = None
    ) -> asyncio.Future[int]:
        """Receive one frame into ``buffer``, waiting at most the timeout."""

        def issue() -> asyncio.Future[Any]:
            return _PYZMQ_RECV_INTO(self, buffer, nbytes=nbytes, flags=flags)

        def record(size: int, at: float) -> None:
            self._recorded("recv", (memoryview(buffer)[:size],))

        return self._move("recv_into", False, issue, record, timeout, flags)

    def _received(self, frames: list[Any], at: float) -> None:
        self._recorded("recv", frames)

    async def send_json(self, obj: Any, flags: int = 0, *, timeout: float | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send ``obj`` as JSON (``kwargs`` go to the encoder, as pyzmq's do)."""
        return await self.send(jsonapi.dumps(obj, **kwargs), flags, timeout=timeout)

    async def send_string(  # type: ignore[override]
        self, u: str, flags: int = 0, copy: bool = True, encoding: str = "utf-8", *, timeout: float | None = None
    ) -> Any:
        if not isinstance(u, str):
            raise TypeError("str objects only")
        return await self.send(u.encode(encoding), flags, copy, timeout=timeout)

    async def send_pyobj(  # type: ignore[override]
        self, obj: Any, flags: int = 0, protocol: int = pickle.DEFAULT_PROTOCOL, *, timeout: float | None = None
    ) -> Any:
        return await self.send(pickle.dumps(obj, protocol), flags, timeout=timeout)

    async def send_serialized(  # type: ignore[override]
        self,
        msg: Any,
        serialize: Callable[[Any], Sequence[Any]],
        flags: int = 0,
        copy: bool = True,
        *,
        timeout: float | None = None,
    ) -> Any:
        return await self.send_multipart(serialize(msg), flags, copy, timeout=timeout)

    async def recv_json(self, flags: int = 0, *, timeout: float | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return jsonapi.loads(await self.recv(flags, timeout=timeout), **kwargs)

    async def recv_string(self, flags: int = 0, encoding: str = "utf-8", *, timeout: float | None = None) -> str:  # type: ignore[override]
        frame = await self.recv(flags, timeout=timeout)
        return frame.decode(encoding)  # type: ignore[no-any-return]

    async def recv_pyobj(self, flags: int = 0, *, timeout: float | None = None) -> Any:  # for tests: never zmqtest's
        """Receive a pickled object, as pyzmq's ``recv_pyobj`` does: only from a peer the test trusts."""
        return pickle.loads(await self.recv(flags, timeout=timeout))  # for tests: never zmqtest's

    async def recv_serialized(  # type: ignore[override]
        self,
        deserialize: Callable[[list[Any]], Any],
        flags: int = 0,
        copy: bool = True,
        *,
        timeout: float | None = None,
    ) -> Any:
        return deserialize(await self.recv_multipart(flags, copy, timeout=timeout))

    def close(self, linger: int | None = None, *, by: str | None = None) -> None:
        """Close as pyzmq's asyncio socket does (its pending futures cancelled) and as a mimic does (``by``)."""
        state = self.__dict__
        state["_closing_by"] = by  # pyzmq's close() calls TestSocket's without it
        try:
            super().close(linger)
        finally:
            state.pop("_closing_by", None)

    def __repr__(self) -> str:
        return f"<AsyncTestSocket {self.describe()}>"


class AsyncTestContext(TestContext, zmq.asyncio.Context):
    """A :class:`~zmqtest.contexts.TestContext` for asyncio: ``TestSocket`` and ``make_sock`` make AsyncTestSockets.

    Its own ``socket()`` makes pyzmq's asyncio sockets, as ``zmq.asyncio.Context`` does.
    """

    __test__ = False


def _poll(sock: AsyncTestSocket, event: int) -> asyncio.Future[Any]:
    """pyzmq's asyncio poll of ``sock`` for ``event``, without a timeout: a future to cancel when no longer needed."""
    poll: Any = zmq.asyncio.Socket.poll
    return poll(sock, None, event)  # type: ignore[no-any-return]


def _disarm(sock: AsyncTestSocket) -> None:
    """Back to libzmq's "wait forever" timeouts: pyzmq's asyncio poll fails once RCVTIMEO/SNDTIMEO run out."""
    sock.setsockopt(zmq.RCVTIMEO, -1)
    sock.setsockopt(zmq.SNDTIMEO, -1)
    sock.__dict__["_armed"] = None
