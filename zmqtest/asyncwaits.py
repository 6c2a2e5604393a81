"""Waiting on an event loop: the ends of the processes under test as futures, and the PUB/SUB barriers awaited.

An :class:`~zmqtest.asyncio.AsyncTestSocket`'s waits race the watched processes
(:mod:`zmqtest.waiting`) as a blocking mimic's do. On a loop, a process's end is a future
resolved by one reader of its sentinel, shared by every wait of that loop (asyncio allows
one reader per descriptor: a second wait registering its own would silence the first).
The barriers of :mod:`zmqtest.barriers` run here on the loop, with the same logic.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import zmq

from zmqtest import barriers
from zmqtest.waiting import Watched, watched

if TYPE_CHECKING:
    from zmqtest.asyncio import AsyncTestSocket

__all__ = ["end_of", "ended_process", "release", "run_steps", "wait_for_subscriber", "wait_until_receiving"]


async def wait_for_subscriber(
    xpub: AsyncTestSocket, topic: bytes | str | None = None, *, count: int = 1, timeout: float | None = None
) -> list[bytes]:
    """:func:`zmqtest.wait_for_subscriber` for an asyncio mimic XPUB: the same barrier, awaited."""
    return await run_steps(xpub, barriers._subscriber_steps(xpub, topic, count, timeout, watched()))


async def wait_until_receiving(
    sub: AsyncTestSocket,
    probe: Callable[[], object] | None = None,
    predicate: Callable[[list[bytes]], object] | None = None,
    *,
    timeout: float | None = None,
    interval: float = barriers.FIRST_PROBE_INTERVAL,
) -> list[bytes]:
    """:func:`zmqtest.wait_until_receiving` for an asyncio mimic SUB: the same barrier, awaited.

    ``probe`` may return an awaitable (``lambda: control.send(b"tick")``): it is awaited.
    """
    return await run_steps(sub, barriers._receiving_steps(sub, probe, predicate, timeout, interval, watched()))


async def run_steps(sock: zmq.Socket[Any], steps: barriers.Steps) -> list[bytes]:
    """Run a barrier's steps (:data:`zmqtest.barriers.Steps`) on the event loop."""
    from zmqtest.asyncio import AsyncTestSocket

    if not isinstance(sock, AsyncTestSocket):
        steps.close()
        raise TypeError(
            f"zmqtest.asyncio's barriers take an AsyncTestSocket, got {sock!r:.80}: for a blocking socket, "
            "call zmqtest.wait_for_subscriber / wait_until_receiving"
        )
    answer: Any = None
    error: Exception | None = None
    while True:
        try:
            kind, argument = steps.send(answer) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        answer, error = None, None
        if kind == "wait":
            until, waiting_for = argument
            answer = await sock._readable(until, waiting_for)
        else:
            try:
                result = argument()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # thrown in: the steps say which probe it was
                error = exc


# --- deaths: one reader per sentinel and loop, however many waits share it -------------------------------------------

_deaths: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, list[Any]]] = weakref.WeakKeyDictionary()


def end_of(process: Watched) -> asyncio.Future[None]:
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


def release(processes: Sequence[Watched]) -> None:
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
