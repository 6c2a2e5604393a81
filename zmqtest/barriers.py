"""PUB/SUB barriers: wait until the first message can no longer be lost, without sleeping.

A PUB socket drops every message for a subscriber whose subscription it has not
processed yet (the "slow joiner"): the subscription travels after the connection, and
the publisher handles it only on its next send. A test that publishes right after
starting a subscriber loses its first message; one that sleeps first is slow and
still flakes under load. Each direction has its own barrier:

- **The process under test subscribes to a mimic publisher.** Make the mimic an XPUB
  (it publishes exactly like a PUB): it receives every subscription as a message
  ``b"\\x01" + topic``, so :func:`wait_for_subscriber` knows the moment the
  subscription has arrived. Mimic XPUBs are verbose (``XPUB_VERBOSE``), so a
  subscriber that reconnects is seen again.
- **A mimic subscriber listens to the process's publisher.** Nothing on the subscriber
  side tells when the publisher has processed the subscription (a socket monitor's
  handshake comes before it), so the only proof is a message:
  :func:`wait_until_receiving` calls a *probe* (something that makes the process
  publish, such as a request on its control socket) with backoff until a message
  arrives. A publisher that publishes by itself (a heartbeat) needs no probe. An
  XPUB's ``XPUB_WELCOME_MSG`` is *not* proof: the publisher sends it as it takes
  the connection, before it has read the subscription (measured: 2 first messages
  lost in 8,000 connections that had received the welcome).

:func:`connect_and_wait` is the plain "connected" barrier (the ZMTP handshake, seen by
a socket monitor), for any mimic that connects.

Like the other waits (:mod:`zmqtest.waiting`), these work without pytest, wait at most
the harness timeout unless given ``timeout=``, end at once when a watched process
dies, and say what they waited for and what they saw when they give up.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any

import zmq

from zmqtest.connections import ConnectionWaiter
from zmqtest.endpoints import EndpointSpec, parse_endpoint
from zmqtest.errors import WaitTimeout, add_context
from zmqtest.settings import current_timeout, parse_timeout
from zmqtest.waiting import (
    Skipped,
    describe_socket,
    describe_watched,
    name_of,
    watched,
)
from zmqtest.waiting import wait_ready as _wait_ready

__all__ = ["Steps", "connect_and_wait", "run_steps", "take", "wait_for_subscriber", "wait_until_receiving"]

FIRST_PROBE_INTERVAL = 0.001
"""Seconds to wait for the first probe's message before probing again; the pause doubles after each probe ..."""
MAX_PROBE_INTERVAL = 0.1
"""... up to this: a subscription takes well under a millisecond on loopback, longer only under load."""
SHOWN = 3
"""How many of the messages a barrier skipped its timeout error quotes."""
SHOWN_CHARS = 60

_unclaimed: weakref.WeakKeyDictionary[zmq.Socket[Any], list[bytes]] = weakref.WeakKeyDictionary()
"""Per XPUB: subscriptions read while waiting for another topic, kept for a later wait_for_subscriber."""


# --- the process subscribes to a mimic XPUB -----------------------------------------------------------------------


def wait_for_subscriber(
    xpub: zmq.Socket[Any], topic: bytes | str | None = None, *, count: int = 1, timeout: float | None = None
) -> list[bytes]:
    """Wait until ``count`` subscriptions that let ``topic`` through have reached the mimic publisher ``xpub``.

    ``topic`` is (the start of) what you are about to publish: a subscription to any
    prefix of it counts, so ``b"prices"`` is let through by ``b""``, ``b"pri"`` and
    ``b"prices"``. ``None`` (the default) takes any subscription. Returns the topics
    subscribed to (``count`` of them). Once it returns, the subscribers are known to
    ``xpub``: a message sent next reaches them.

    Each subscription is awaited once: the next call waits for new ones (a subscriber
    that reconnects subscribes again). Subscriptions to other topics read on the way
    are kept for a later call (until the last subscriber to that topic leaves).

    ``xpub`` must be an XPUB socket (a PUB keeps the subscriptions it receives to
    itself). It is made verbose, so that repeated subscriptions to one topic are all
    seen (mimic XPUBs are verbose from the start).

    Waits at most ``timeout`` seconds (default: the harness timeout), raced against the
    watched processes; on timeout raises :class:`~zmqtest.errors.WaitTimeout` listing
    what the socket received.
    """
    return run_steps(xpub, _subscriber_steps(xpub, topic, count, timeout, watched()))


Steps = Generator[tuple[str, Any], Any, list[bytes]]
"""A barrier's logic, apart from how it waits: it yields ``("wait", (until, waiting_for))`` (wait until the
socket is readable or ``until``: send back whether it is) and ``("call", probe)`` (call it: send back None),
and returns what the barrier returns. :func:`run_steps` runs one blocking; :mod:`zmqtest.asyncio` awaiting."""


def run_steps(sock: zmq.Socket[Any], steps: Steps) -> list[bytes]:
    """Run a barrier's steps blocking: the waits raced against the watched processes."""
    processes = watched()
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
            answer = _wait_ready(sock, zmq.POLLIN, until, processes, functools.partial(str, waiting_for))
        else:
            try:
                argument()
            except Exception as exc:  # thrown in: the steps say which probe it was
                error = exc


def take(sock: zmq.Socket[Any]) -> list[bytes]:
    """A message that is there now (raises zmq.Again if none), received as the socket's blocking calls receive.

    A mimic's blocking receive records it in the transcript; an asyncio mimic's own
    receives return futures, so its blocking one (TestSocket's) is called.
    """
    from zmqtest.sockets import TestSocket

    if isinstance(sock, TestSocket):
        frames: list[bytes] = TestSocket.recv_multipart(sock, zmq.NOBLOCK)
        return frames
    return sock.recv_multipart(zmq.NOBLOCK)


def _subscriber_steps(
    xpub: zmq.Socket[Any], topic: bytes | str | None, count: int, timeout: float | None, processes: Any
) -> Steps:
    _require_type(xpub, "wait_for_subscriber", zmq.XPUB)
    wanted = _topic(topic)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"invalid count={count!r} for wait_for_subscriber: expected a whole number, 1 or more")
    seconds = _seconds(timeout, "wait_for_subscriber")
    deadline = time.monotonic() + seconds
    xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
    what = "any topic" if wanted is None else repr(wanted)
    operation = f"wait_for_subscriber({what}{'' if count == 1 else f', count={count}'})"
    waiting_for = f"{operation} on {describe_socket(xpub)}"
    unclaimed = _unclaimed.setdefault(xpub, [])
    found: list[bytes] = []
    received: list[list[bytes]] = []  # everything read during this wait, for the timeout error
    while True:
        while True:  # file what has arrived first, so that an unsubscription cancels its subscription
            try:
                frames = take(xpub)
            except zmq.Again:
                break
            received.append(frames)
            _file(frames, unclaimed)
        for subscribed in [subscribed for subscribed in unclaimed if _lets_through(subscribed, wanted)]:
            if len(found) == count:
                break
            unclaimed.remove(subscribed)
            found.append(subscribed)
        if len(found) == count:
            return found
        if not (yield ("wait", (deadline, waiting_for))):
            message = _no_subscriber(waiting_for, wanted, count, len(found), received, unclaimed, seconds)
            unclaimed[:0] = found  # not enough of them: a later call may claim these
            raise WaitTimeout(message + describe_watched(processes), what=f"a subscription to {what}", timeout=seconds)


def _file(frames: list[bytes], unclaimed: list[bytes]) -> None:
    """Keep a subscription until a wait claims it; drop it again if its last subscriber leaves first."""
    if len(frames) != 1:
        return  # a message from an XSUB peer, not a subscription
    kind, subscribed = frames[0][:1], frames[0][1:]
    if kind == b"\x01":
        unclaimed.append(subscribed)
    elif kind == b"\x00" and subscribed in unclaimed:
        unclaimed.remove(subscribed)


def _lets_through(subscribed: bytes, topic: bytes | None) -> bool:
    return topic is None or topic.startswith(subscribed)


def _topic(topic: object) -> bytes | None:
    if topic is None or isinstance(topic, bytes):
        return topic
    if isinstance(topic, str):
        return topic.encode()
    if isinstance(topic, (bytearray, memoryview)):
        return bytes(topic)
    raise TypeError(f"invalid topic {topic!r} for wait_for_subscriber: expected bytes, str or None (any topic)")


def _no_subscriber(
    waiting_for: str,
    topic: bytes | None,
    count: int,
    found: int,
    received: list[list[bytes]],
    unclaimed: list[bytes],
    seconds: float,
) -> str:
    what = "any topic" if topic is None else f"{topic!r} (or a prefix of it)"
    if count == 1:
        head = f"no subscription to {what} within {seconds:g} s"
    else:
        head = f"{found} of {count} subscriptions to {what} within {seconds:g} s"
    if received:
        head += f"; it received {_quote([_describe_upstream(frames) for frames in received])}"
    elif unclaimed:
        head += f"; it received nothing new (read earlier: {_quote([f'subscribe {t!r}' for t in unclaimed])})"
    else:
        head += "; it received nothing"
    prefix = "a subscription" if topic is None else f"a subscription to a prefix of {topic!r}"
    hint = f" (has the process's SUB connected to it and made {prefix}?)"
    return f"{waiting_for}: {head}{hint}"


def _describe_upstream(frames: list[bytes]) -> str:
    """What a subscriber sent upstream: ``subscribe b'x'``, ``unsubscribe b'x'``, or another message."""
    if len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
        verb = "subscribe" if frames[0][:1] == b"\x01" else "unsubscribe"
        return f"{verb} {_short(repr(frames[0][1:]))}"
    return f"message {_short(repr(frames))}"


# --- a mimic SUB listens to the process's publisher ---------------------------------------------------------------


def wait_until_receiving(
    sub: zmq.Socket[Any],
    probe: Callable[[], object] | None = None,
    predicate: Callable[[list[bytes]], object] | None = None,
    *,
    timeout: float | None = None,
    interval: float = FIRST_PROBE_INTERVAL,
) -> list[bytes]:
    """Call ``probe()`` until ``sub`` receives a message that satisfies ``predicate``; return that message.

    ``probe`` makes the process under test publish (e.g. sends a request on its
    control socket). It is called at once, then again whenever ``interval`` seconds
    pass without a message, the pause doubling up to 0.1 s: probes published before
    the publisher knew ``sub`` are dropped, so the first message that arrives proves
    the subscription is in place, and every message the process publishes afterwards
    reaches ``sub``. Answers to earlier probes may still follow the one returned:
    make them easy to tell from your data. ``probe=None`` waits for a message the
    process publishes by itself (a heartbeat; not an ``XPUB_WELCOME_MSG``, which is
    sent before the subscription is read).

    Messages that do not satisfy ``predicate`` (default: any message does) are
    consumed and dropped. Waits at most ``timeout`` seconds (default: the harness
    timeout), raced against the watched processes; on timeout raises
    :class:`~zmqtest.errors.WaitTimeout` naming the probes made and the messages seen.
    An exception from ``probe`` or ``predicate`` ends the wait.
    """
    return run_steps(sub, _receiving_steps(sub, probe, predicate, timeout, interval, watched()))


def _receiving_steps(
    sub: zmq.Socket[Any],
    probe: Callable[[], object] | None,
    predicate: Callable[[list[bytes]], object] | None,
    timeout: float | None,
    interval: float,
    processes: Any,
) -> Steps:
    _require_type(sub, "wait_until_receiving", zmq.SUB, zmq.XSUB)
    seconds = _seconds(timeout, "wait_until_receiving")
    pause = parse_timeout(interval, "the interval= argument of wait_until_receiving")
    deadline = time.monotonic() + seconds
    parts = [f"probe={name_of(probe)}"] if probe is not None else []
    if predicate is not None:
        parts.append(name_of(predicate))
    operation = f"wait_until_receiving({', '.join(parts)})"
    waiting_for = f"{operation} on {describe_socket(sub)}"
    probes = 0
    skipped = Skipped(lambda: f"the predicate of {waiting_for}", chars=SHOWN_CHARS)
    next_probe = time.monotonic()
    while True:
        try:
            frames = take(sub)
        except zmq.Again:
            now = time.monotonic()
            if probe is not None and now >= next_probe and (probes == 0 or now < deadline):
                probes += 1
                try:
                    yield ("call", probe)
                except Exception as exc:
                    add_context(exc, f"  in probe {probes} of {waiting_for}")
                    raise
                next_probe = time.monotonic() + pause
                pause = min(pause * 2, MAX_PROBE_INTERVAL)
            until = deadline if probe is None else min(deadline, next_probe)
            if (yield ("wait", (until, waiting_for))):
                continue
            if time.monotonic() < deadline:
                continue
            raise WaitTimeout(
                _not_receiving(waiting_for, sub, probe, predicate, probes, skipped, seconds)
                + describe_watched(processes),
                what="a message",
                timeout=seconds,
            ) from None
        if skipped.check(frames, predicate, None)[0]:
            return frames


def _not_receiving(
    waiting_for: str,
    sub: zmq.Socket[Any],
    probe: object,
    predicate: object,
    probes: int,
    skipped: Skipped,
    seconds: float,
) -> str:
    matching = "" if predicate is None else "matching "
    probed = "" if probe is None else f" ({probes} probe{'' if probes == 1 else 's'})"
    text = f"{waiting_for}: no {matching}message within {seconds:g} s{probed}"
    text += str(skipped)
    if probe is None:
        text += " (without probe= this waits for a message the process publishes by itself: does it?)"
    elif int(sub.getsockopt(zmq.TYPE)) == zmq.SUB:
        text += " (is the process publishing there, and does the socket subscribe to the topic the probe makes it use?)"
    return text


# --- connected ----------------------------------------------------------------------------------------------------


def connect_and_wait(sock: zmq.Socket[Any], endpoint: EndpointSpec, *, timeout: float | None = None) -> dict[str, Any]:
    """Connect ``sock`` to ``endpoint`` and wait until the connection has completed its ZMTP handshake.

    Returns the monitor's ``HANDSHAKE_SUCCEEDED`` event (see
    :class:`~zmqtest.waiting.ConnectionWaiter`, which does the waiting). Necessary, not
    sufficient, for a SUB: the subscription is sent after the handshake and a
    publisher handles it later still; use :func:`wait_until_receiving` for that.
    """
    with ConnectionWaiter(sock) as waiter:
        sock.connect(parse_endpoint(endpoint))
        return waiter.wait(timeout)


# --- shared -------------------------------------------------------------------------------------------------------


def _seconds(timeout: float | None, function: str) -> float:
    if timeout is None:
        return current_timeout()
    return parse_timeout(timeout, f"the timeout= argument of {function}", allow_zero=True)


_WRONG_TYPE: dict[tuple[str, int], str] = {
    ("wait_for_subscriber", zmq.PUB): (
        "a PUB keeps the subscriptions it receives to itself. Make the mimic publisher an XPUB"
        " (make_sock(context, zmq.XPUB, bind=...)): it publishes exactly like a PUB, and receives"
        " each subscription as b'\\x01' + topic"
    ),
    ("wait_for_subscriber", zmq.SUB): (
        "that is a subscriber. To wait until it receives from the process's publisher, use"
        " wait_until_receiving(sub, probe=...)"
    ),
    ("wait_until_receiving", zmq.PUB): (
        "that is a publisher. To wait until the process has subscribed to it, make it an XPUB"
        " and use wait_for_subscriber(xpub)"
    ),
    ("wait_until_receiving", zmq.XPUB): (
        "that is a publisher. To wait until the process has subscribed to it, use wait_for_subscriber(xpub)"
    ),
}


def _require_type(sock: object, function: str, *types: int) -> None:
    """A clear error for a socket of the wrong type (or not a socket, or closed), naming what to use instead."""
    expected = " or ".join(zmq.SocketType(kind).name for kind in types)
    if not isinstance(sock, zmq.Socket):
        raise TypeError(f"{function} needs a {expected} socket, got {_short(repr(sock))}")
    if sock.closed:
        raise ValueError(f"{function} needs an open {expected} socket: {describe_socket(sock)} is closed")
    kind = int(sock.getsockopt(zmq.TYPE))
    if kind in types:
        return
    why = _WRONG_TYPE.get((function, kind), f"{function} works on {expected} sockets only")
    raise TypeError(f"{function} needs a {expected} socket, got {describe_socket(sock)}: {why}")


def _quote(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _short(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
