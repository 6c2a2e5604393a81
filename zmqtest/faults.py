"""What a tap does to the traffic it forwards while a fault is in force: delay, drop, duplicate, hold, slow.

A :class:`Fault` is plain data, made by the tap's scoping methods (``with tap.drop(next=1):``)
and read by the tap's thread for each message or chunk it forwards. Drop and duplicate
work on whole messages (the tap cuts the stream where the ZMTP framing says a message
begins and ends, so the stream stays valid ZMTP); delay, hold and slow work on bytes as
they arrive. Commands (handshake, subscriptions, heartbeats) are never dropped nor
duplicated, and neither are CURVE's encrypted frames: the box hides where a message ends,
and libzmq rejects a repeated nonce.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal

from zmqtest.rendering import Clipped
from zmqtest.zmtp import Item, Message, ZmtpParser

__all__ = ["Cut", "Cutter", "Fault", "FaultKind", "Faults", "Selector", "release_time"]

FaultKind = Literal["delay", "drop", "duplicate", "hold", "slow"]
"""What a fault does: delay, hold and slow work on bytes; drop and duplicate on whole messages."""

Selector = Callable[[list[bytes]], bool]
"""``matching=``: called with a message's frames (those over 64 KiB as their first 256 bytes); True selects it."""


@dataclass(eq=False)
class Fault:
    """One fault in force on a tap: ``kind`` (delay, drop, duplicate, hold, slow), ``to`` (a participant, or both ways).

    Message faults (drop, duplicate) select messages by ``next`` (the next N), ``ratio``
    (each with this chance, from a ``random.Random(seed)``) and ``matching`` (a predicate of
    the frames), all that are given. ``hits`` counts the messages (or chunks) it changed.
    """

    kind: FaultKind
    to: str | None = None
    seconds: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    next: int | None = None
    ratio: float | None = None
    matching: Selector | None = None
    seed: int | None = None
    hits: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        __tracebackhide__ = True
        self.rng = random.Random(self.seed)
        if self.next is not None and (not isinstance(self.next, int) or self.next < 0):
            raise ValueError(f"{self.kind}(next=...) takes a whole number of messages >= 0, not {self.next!r}")
        if self.ratio is not None and not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"{self.kind}(ratio=...) takes a chance between 0 and 1, not {self.ratio!r}")
        if self.seconds < 0 or self.jitter < 0:
            raise ValueError(f"delay takes seconds >= 0 and jitter >= 0, not {self.seconds!r} and {self.jitter!r}")
        if self.kind == "slow" and not self.rate > 0:
            raise ValueError(f"slow takes bytes per second > 0, not {self.rate!r}")
        if self.matching is not None and not callable(self.matching):
            raise TypeError(f"{self.kind}(matching=...) takes a function of the frames, not {self.matching!r}")

    @property
    def on_messages(self) -> bool:
        return self.kind in ("drop", "duplicate")

    def applies(self, target: str) -> bool:
        """Whether this fault acts on traffic going to ``target``."""
        return self.to is None or self.to == target

    def selects(self, frames: Sequence[bytes | Clipped]) -> bool:
        """Whether this message fault takes the message made of ``frames`` (and count it if so)."""
        if self.next is not None and self.hits >= self.next:
            return False
        if self.matching is not None:
            heads = [frame.head if isinstance(frame, Clipped) else frame for frame in frames]
            try:
                chosen = self.matching(heads)
            except Exception as error:  # it ends the tap: say whose function it was, and on what
                raise RuntimeError(f"{self.describe()}: the function raised {error!r} on {heads!r:.200}") from error
            if not chosen:
                return False
        if self.ratio is not None and self.rng.random() >= self.ratio:
            return False
        self.hits += 1
        return True

    def pause(self) -> float:
        """Seconds a delay fault holds a chunk back: ``seconds``, give or take ``jitter``."""
        if not self.jitter:
            return self.seconds
        return max(0.0, self.seconds + self.rng.uniform(-self.jitter, self.jitter))

    def describe(self) -> str:
        """The fault as the transcript names it."""
        where = f" to {self.to}" if self.to is not None else ""
        if self.kind == "delay":
            jitter = f" ± {self.jitter * 1000:g} ms" if self.jitter else ""
            return f"delay{where} by {self.seconds * 1000:g} ms{jitter}"
        if self.kind == "slow":
            return f"slow{where} to {self.rate:g} bytes/s"
        if self.kind == "hold":
            return f"hold traffic{where}"
        which = []
        if self.next is not None:
            which.append(f"the next {self.next}")
        if self.ratio is not None:
            which.append(f"{self.ratio:g} of them (seed {self.seed})")
        if self.matching is not None:
            which.append(f"those matching {getattr(self.matching, '__name__', repr(self.matching))}")
        return f"{self.kind} messages{where}: {', '.join(which) or 'all'}"


def release_time(faults: list[Fault], target: str, now: float) -> float:
    """When bytes that came ``now``, going to ``target``, may go on: ``inf`` while a hold is in force."""
    release = now
    for fault in faults:
        if fault.kind in ("hold", "delay") and fault.applies(target):
            release = max(release, float("inf") if fault.kind == "hold" else now + fault.pause())
    return release


class Cut:
    """What ``tap.cut()`` returns: the cut is done; as a ``with`` block, new connections are refused until exit.

    ``refuse(+1)`` starts refusing (and cuts what came meanwhile), ``refuse(-1)`` ends it.
    """

    def __init__(self, refuse: Callable[[int], None]) -> None:
        self._refuse = refuse

    def __enter__(self) -> Cut:
        self._refuse(+1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._refuse(-1)


class Cutter:
    """Cuts one direction of a connection where its messages begin and end, while message faults are in force.

    Bytes of a message being read wait here until it is whole and the faults have chosen
    (drop, twice, or as it is); the greeting, commands, and a message that had begun
    before the faults came, pass at once.
    """

    def __init__(self) -> None:
        self.tail = bytearray()
        self.at: int | None = None
        """Stream offset of ``tail[0]``; ``None`` when nothing is cut (bytes pass as they come)."""

    def cut(
        self, data: bytes | memoryview, items: list[Item], parser: ZmtpParser, faults: list[Fault]
    ) -> list[tuple[Item | None, bytes, int, str]]:
        """``data`` just read, and the ``items`` it completed: ``(item, its bytes, copies, mark)`` to forward, in order.

        ``faults``: the message faults in force for this direction (none: all that was held goes on).
        """
        if self.at is None:
            self.at = parser.offset - len(data)
        self.tail += data
        out: list[tuple[Item | None, bytes, int, str]] = []
        for item in items:
            start = max(item.start, self.at)
            piece = bytes(self.tail[start - self.at : item.end - self.at])
            del self.tail[: item.end - self.at]
            self.at = item.end
            copies, mark = 1, ""
            if isinstance(item, Message) and not item.encrypted and start == item.start:
                for fault in faults:
                    if fault.selects(item.frames):
                        dropped = fault.kind == "drop"
                        copies, mark = (0, "(dropped by the tap)") if dropped else (2, "(duplicated by the tap)")
                        break
            out.append((item, piece, copies, mark))
        if parser.stopped or not faults:
            out.append((None, self.release(), 1, ""))
            return out
        pending = parser.pending  # hold back only a message being read: a greeting or command goes on at once
        keep_from = parser.offset if pending is None else max(pending, self.at)
        if keep_from > self.at:
            out.append((None, bytes(self.tail[: keep_from - self.at]), 1, ""))
            del self.tail[: keep_from - self.at]
            self.at = keep_from
        return out

    def release(self) -> bytes:
        """Stop cutting: what was held of the message being read, to forward as it is."""
        held = bytes(self.tail)
        self.tail.clear()
        self.at = None
        return held


class Faults:
    """The faults a tap can put on its traffic, each a ``with`` block (the tap records it in the transcript)."""

    def delay(
        self, seconds: float, *, jitter: float = 0.0, to: str | None = None, seed: int | None = None
    ) -> AbstractContextManager[Fault]:
        """``with tap.delay(0.2):`` every chunk is forwarded ``seconds`` (± ``jitter``) after it arrives, in order."""
        __tracebackhide__ = True
        return self._fault(Fault("delay", to, seconds=seconds, jitter=jitter, seed=seed))

    def drop(
        self,
        *,
        next: int | None = None,
        ratio: float | None = None,
        seed: int | None = None,
        matching: Selector | None = None,
        to: str | None = None,
    ) -> AbstractContextManager[Fault]:
        """``with tap.drop(next=1, to="client"):`` whole messages vanish (the next N, a ratio, those matching)."""
        __tracebackhide__ = True
        return self._fault(Fault("drop", to, next=next, ratio=ratio, seed=seed, matching=matching))

    def duplicate(
        self,
        *,
        next: int | None = None,
        ratio: float | None = None,
        seed: int | None = None,
        matching: Selector | None = None,
        to: str | None = None,
    ) -> AbstractContextManager[Fault]:
        """``with tap.duplicate(next=1):`` whole messages arrive twice."""
        __tracebackhide__ = True
        return self._fault(Fault("duplicate", to, next=next, ratio=ratio, seed=seed, matching=matching))

    def hold(self, *, to: str | None = None) -> AbstractContextManager[Fault]:
        """``with tap.hold():`` a partition: nothing is forwarded (connections stay up); all of it on exit, in order."""
        __tracebackhide__ = True
        return self._fault(Fault("hold", to))

    def slow(self, bytes_per_second: float, *, to: str | None = None) -> AbstractContextManager[Fault]:
        """``with tap.slow(10_000):`` bytes trickle through at this rate."""
        __tracebackhide__ = True
        return self._fault(Fault("slow", to, rate=bytes_per_second))

    def _fault(self, fault: Fault) -> AbstractContextManager[Fault]:
        raise NotImplementedError  # the tap's: put the fault in force for the block
