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
non-blocking libzmq call when the socket is ready, made on pyzmq's own shadow socket.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils import jsonapi

from zmqtest import transcript
from zmqtest.contexts import TestContext
from zmqtest.errors import ProcessError, SocketTimeout, add_context
from zmqtest.sendrecv import DEATH_GRACE_MS, closed_error, timeout_message
from zmqtest.settings import current_timeout, parse_timeout
from zmqtest.sockets import TestSocket
from zmqtest.startover import settle, start_over
from zmqtest.waiting import Watched, describe_watched, failed_wait, ready_now, watched

__all__ = ["AsyncTestContext", "AsyncTestSocket", "ended_process"]

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

    def _move(self, name: str, sending: bool, attempt: Callable[[], Any], timeout: float | None, flags: int) -> Any:
        """Return a future of ``attempt()`` (a non-blocking call): done now if the socket is ready, else a task."""
        state = self.__dict__
        seconds = self._seconds(name, timeout)
        if state["_armed"] is not None:  # a blocking mimic call armed libzmq's timeout: pyzmq's poll would obey it
            _disarm(self)
        loop = asyncio.get_running_loop()
        at = time.perf_counter()
        future = loop.create_future()
        try:
            result = attempt()
        except zmq.Again:
            if flags & zmq.NOBLOCK:
                future.set_exception(zmq.Again())
                return future
        except zmq.ZMQError as exc:
            future.set_exception(self._failure(name, exc, sending))
            return future
        else:
            self._done(sending, result, at)
            future.set_result(result)
            return future
        return loop.create_task(self._wait(name, sending, attempt, seconds, at))

    async def _wait(self, name: str, sending: bool, attempt: Callable[[], Any], seconds: float, at: float) -> Any:
        """Wait until ``attempt()`` goes through, ``seconds`` pass, or a watched process ends."""
        __tracebackhide__ = True
        event = zmq.POLLOUT if sending else zmq.POLLIN
        processes = watched()
        deadline = _monotonic() + seconds
        refused = 0
        while True:
            gone = await self._until(event, deadline, processes)
            try:
                result = attempt()
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                raise self._failure(name, exc, sending) from None
            else:
                self._done(sending, result, at)
                return result
            if gone is not None:
                raise self._failed(gone.exit_error(f"{name} on {self.describe()}"), sending)
            if _monotonic() >= deadline:
                error = SocketTimeout(
                    timeout_message(self, name, seconds) + describe_watched(processes), operation=name, timeout=seconds
                )
                raise self._failed(error, sending)
            if ready_now(self, event):  # ready, yet refused: a ROUTER's POLLOUT means "some peer can take it"
                await asyncio.sleep(min((1 << min(refused, 6)) / 1000, max(deadline - _monotonic(), 0)))
                refused += 1

    async def _until(self, event: int, deadline: float, processes: Sequence[Watched]) -> Watched | None:
        """Wait until the socket is ready for ``event`` or ``deadline``; a process of ``processes`` that ends first.

        After an end, the socket gets :data:`DEATH_GRACE_MS` more: what the process sent
        just before it ended may still be on its way.
        """
        ready = _poll(self, event)
        deaths = [_death(process) for process in processes]
        try:
            done, _ = await asyncio.wait(
                [ready, *deaths], timeout=max(deadline - _monotonic(), 0), return_when="FIRST_COMPLETED"
            )
        finally:
            ready.cancel()
            _release(processes)
        gone = ended_process(processes, deaths, done)
        if gone is not None and ready not in done:
            grace = _poll(self, event)
            try:
                await asyncio.wait([grace], timeout=DEATH_GRACE_MS / 1000)
            finally:
                grace.cancel()
        return gone

    async def _readable(self, seconds: float, waiting_for: str) -> bool:
        """Whether a message comes within ``seconds`` (without taking it); a watched process's end raises its error."""
        processes = watched()
        gone = await self._until(zmq.POLLIN, _monotonic() + seconds, processes)
        if ready_now(self, zmq.POLLIN):
            return True
        if gone is not None:
            raise failed_wait(gone.exit_error(f"{waiting_for} on {self.describe()}"))
        return False

    def _seconds(self, name: str, timeout: float | None) -> float:
        if timeout is not None:
            return parse_timeout(timeout, f"the timeout= argument of {name}", allow_zero=True)
        seconds = self.__dict__["_timeout"]
        return current_timeout() if seconds is None else float(seconds)

    def _done(self, sending: bool, result: Any, at: float) -> None:
        """What a blocking mimic does after a call that went through: settle a REQ that started over."""
        if self.__dict__["_pending"]:
            settle(self, sending)

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

    def _recorded(self, kind: str, frames: Sequence[Any], at: float | None = None) -> None:
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
        shadow: Any = self.__dict__["_shadow_sock"]  # pyzmq's plain socket over the same libzmq one
        at = time.perf_counter()

        def attempt() -> Any:
            result = shadow.send_multipart(parts, flags | zmq.NOBLOCK, copy=copy, track=track)
            self._recorded("send", parts, at)
            return result

        return self._move("send_multipart", True, attempt, timeout, flags)  # type: ignore[no-any-return]

    def recv_multipart(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False, *, timeout: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Receive a multipart message, waiting at most the timeout."""
        shadow: Any = self.__dict__["_shadow_sock"]  # pyzmq's plain socket over the same libzmq one

        def attempt() -> list[Any]:
            frames: list[Any] = shadow.recv_multipart(flags | zmq.NOBLOCK, copy=copy, track=track)
            self._recorded("recv", frames)
            return frames

        return self._move("recv_multipart", False, attempt, timeout, flags)  # type: ignore[no-any-return]

    def recv(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False, *, timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Receive one frame, waiting at most the timeout."""
        shadow: Any = self.__dict__["_shadow_sock"]  # pyzmq's plain socket over the same libzmq one

        def attempt() -> Any:
            frame = shadow.recv(flags | zmq.NOBLOCK, copy=copy, track=track)
            self._recorded("recv", (frame,))
            return frame

        return self._move("recv", False, attempt, timeout, flags)  # type: ignore[no-any-return]

    def recv_into(  # type: ignore[override]
        self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0, timeout: float | None = None
    ) -> asyncio.Future[int]:
        """Receive one frame into ``buffer``, waiting at most the timeout."""
        shadow: Any = self.__dict__["_shadow_sock"]  # pyzmq's plain socket over the same libzmq one

        def attempt() -> int:
            size: int = shadow.recv_into(buffer, nbytes=nbytes, flags=flags | zmq.NOBLOCK)
            self._recorded("recv", (memoryview(buffer)[:size],))
            return size

        return self._move("recv_into", False, attempt, timeout, flags)  # type: ignore[no-any-return]

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


# --- deaths: one reader per sentinel and loop, however many waits share it -------------------------------------------

_deaths: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, list[Any]]] = weakref.WeakKeyDictionary()


def _death(process: Watched) -> asyncio.Future[None]:
    """A future that resolves when ``process`` ends: its sentinel read by the loop once for all concurrent waits."""
    loop = asyncio.get_running_loop()
    watches = _deaths.setdefault(loop, {})
    fd = process.sentinel
    entry = watches.get(fd)
    if entry is None:
        future: asyncio.Future[None] = loop.create_future()

        def ended() -> None:
            if not future.done():
                future.set_result(None)

        loop.add_reader(fd, ended)
        entry = watches[fd] = [future, 0]
    entry[1] += 1
    return entry[0]  # type: ignore[no-any-return]


def _release(processes: Sequence[Watched]) -> None:
    """A wait is over: stop reading the sentinels no other wait of this loop shares."""
    loop = asyncio.get_running_loop()
    watches = _deaths.get(loop, {})
    for process in processes:
        fd = process.sentinel
        entry = watches.get(fd)
        if entry is None:
            continue
        entry[1] -= 1
        if entry[1] <= 0:
            del watches[fd]
            loop.remove_reader(fd)


def ended_process(
    processes: Sequence[Watched], deaths: Sequence[asyncio.Future[None]], done: set[Any]
) -> Watched | None:
    """The first of ``processes`` whose death future is among ``done``."""
    for process, death in zip(processes, deaths, strict=True):
        if death in done or death.done():
            return process
    return None
