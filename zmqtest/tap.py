"""A tap: a loopback TCP proxy between two ZeroMQ peers that shows, and on demand disturbs, what they say.

The connecting peer connects to ``tap.endpoint`` instead of the binding peer's
endpoint; the tap opens one upstream connection per connection it accepts and forwards
the bytes both ways as they arrive, unchanged, from one daemon thread (a selector loop).
A copy of each direction goes through a :class:`~zmqtest.zmtp.ZmtpParser`, and every
message, command and connection lands in the test's transcript between the two named
participants (``client → server``). Faults (:mod:`zmqtest.faults`) are scoped with
``with``: ``tap.delay(0.2)``, ``tap.drop(next=1)``, ``tap.duplicate(...)``, ``tap.hold()``,
``tap.slow(10_000)``, ``tap.cut()``.

Usable without pytest (``with Tap(upstream) as tap:``); the ``zmq_tap`` fixture closes
its taps at teardown. Nothing outlives :meth:`Tap.close`: it closes every socket and
joins the thread within a deadline, or raises naming what is left.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from time import perf_counter
from types import TracebackType
from typing import Any

from zmqtest import transcript as ztranscript
from zmqtest.endpoints import Endpoint
from zmqtest.faults import Cut, Cutter, Fault, Faults, release_time
from zmqtest.transcript import KEPT_BYTES
from zmqtest.zmtp import Command, Greeting, Message, Unreadable, ZmtpParser

__all__ = ["Tap", "TapFactory"]

CHUNK = 1 << 20
"""Bytes read from a socket at a time."""
HIGH_WATER = 8 << 20
"""Bytes queued in one direction before the tap stops reading its source (the sender feels back-pressure)."""
QUIET_COMMANDS = frozenset({"PING", "PONG"})
"""Commands not recorded in the transcript: heartbeats would crowd out the conversation."""
CLOSE_DEADLINE = 5.0
READ = selectors.EVENT_READ


def upstream_endpoint(upstream: object) -> Endpoint:
    """Where a tap forwards to: a tcp endpoint with a host and a port, else a ValueError that says so."""
    problem = ValueError(f"a tap forwards to a tcp endpoint with a host and a port, not {upstream!r}")
    try:
        target = Endpoint(str(upstream))
    except ValueError:
        raise problem from None
    if target.transport != "tcp" or target.port is None or target.host in (None, "*"):
        raise problem
    return target


class _Pipe:
    """One direction of one connection: reads ``src``, queues (after faults), writes ``dst``."""

    def __init__(
        self, link: _Link, src: socket.socket, dst: socket.socket, source: str, target: str, keep: int | None
    ) -> None:
        self.link, self.src, self.dst, self.source, self.target = link, src, dst, source, target
        self.parser = ZmtpParser(keep=keep)
        self.queue: deque[list[Any]] = deque()
        """``[release time, memoryview]`` chunks to write, in order (``inf``: held)."""
        self.queued = 0
        self.cutter = Cutter()
        """Holds the message being read while a message fault is on."""
        self.eof = False
        self.shut = False
        self.write_at = 0.0
        """Not before then (a slow fault paces the writes)."""

    @property
    def done(self) -> bool:
        return self.eof and not self.queue and not self.cutter.tail  # nothing more will come, and all of it went


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, number: int, client: socket.socket, upstream: socket.socket, tap: Tap) -> None:
        self.number = number
        self.client, self.upstream = client, upstream
        self.connected = False
        keep = None if tap.transcript is not None and tap.transcript.whole else KEPT_BYTES  # a recording: whole
        self.up = _Pipe(self, client, upstream, tap.client, tap.server, keep)
        self.down = _Pipe(self, upstream, client, tap.server, tap.client, keep)
        self.masks: dict[socket.socket, int] = {}


class Tap(Faults, contextlib.AbstractContextManager["Tap"]):
    """A ZMTP-aware proxy on ``127.0.0.1:<free port>`` (``.endpoint``) to ``upstream`` (a tcp endpoint).

    ``client`` and ``server`` name the two sides in the transcript (the connecting and the
    binding peer). ``transcript``: where to record (default: the one in force when the tap is made: the
    test's, or :func:`zmqtest.replay.record`'s inside its block, which keeps every frame whole).
    """

    def __init__(
        self,
        upstream: str,
        *,
        client: str = "client",
        server: str = "server",
        transcript: ztranscript.Transcript | None = None,
    ) -> None:
        __tracebackhide__ = True
        self.upstream = upstream_endpoint(upstream)
        self.client, self.server = client, server
        self.transcript = transcript if transcript is not None else ztranscript.current()
        self.connections = 0
        """How many connections the tap has accepted so far."""
        self.messages: Counter[str] = Counter()
        """Messages seen so far per receiver (``tap.messages["server"]``), dropped ones included: wait on it to know
        that what a peer sent has reached the tap (a send returns before that), e.g. before a fault's block ends."""
        self.faults: list[Fault] = []
        self.failure: BaseException | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.endpoint = Endpoint(f"tcp://127.0.0.1:{self._listener.getsockname()[1]}")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wake_r, selectors.EVENT_READ, lambda mask: self._wake_r.recv(4096))
        self._links: list[_Link] = []
        self._buffer = memoryview(bytearray(CHUNK))
        """Where each read lands (the tap's thread only): a chunk forwarded at once is never copied."""
        self._calls: deque[Callable[[], None]] = deque()
        self._refusing = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"zmqtest tap {self.endpoint}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<Tap {self.endpoint} -> {self.upstream} ({self.client} -> {self.server})>"

    # --- faults (the public methods: zmqtest.faults.Faults) ---------------------------------------------------------

    def _fault(self, fault: Fault) -> AbstractContextManager[Fault]:
        __tracebackhide__ = True
        if fault.to is not None and fault.to not in (self.client, self.server):
            raise ValueError(f"{fault.kind}(to={fault.to!r}): this tap's peers are {self.client!r} and {self.server!r}")
        return self._in_force(fault)

    @contextlib.contextmanager
    def _in_force(self, fault: Fault) -> Iterator[Fault]:
        self._note(f"tap {self.endpoint}: {fault.describe()}: on")
        self._call(lambda: self.faults.append(fault))
        try:
            yield fault
        finally:
            if self._thread.is_alive():  # a tap closed inside the block took its faults with it
                self._call(lambda: self._end_fault(fault))
            counted = f" ({fault.hits} messages)" if fault.on_messages else ""
            self._note(f"tap {self.endpoint}: {fault.describe()}: off{counted}")

    def cut(self) -> Cut:
        """Close every connection now: each peer sees a disconnect (and libzmq reconnects through the tap).

        As ``with tap.cut():``, connections made inside the block are closed as soon as they come too.
        """
        self._call(lambda: self._cut_all("cut by the test"))
        return Cut(lambda step: self._call(lambda: self._refuse(step)))

    # --- life ---------------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection and the listening socket, and join the thread (within 5 s, else raise)."""
        __tracebackhide__ = True
        if not self._closing:
            self._closing = True
            self._wake()
        self._thread.join(CLOSE_DEADLINE)
        if self._thread.is_alive():
            raise RuntimeError(f"{self!r}: its thread did not stop within {CLOSE_DEADLINE} s of close()")
        if self.failure is not None:
            raise RuntimeError(f"{self!r}: its thread failed: {self.failure!r}") from self.failure

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the loop (the tap's thread) ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closing:
                for key, mask in self._selector.select(self._timeout()):
                    if key.fileobj in (self._listener, self._wake_r):
                        key.data(mask)
                    elif key.data in self._links:  # not closed by an earlier event of this round
                        self._serve(key.data, key.fileobj)
                while self._calls:
                    self._calls.popleft()()
                for link in list(self._links):
                    self._flush(link)
        except BaseException as failure:  # reported by close(), not swallowed
            self.failure = failure
            self._note(f"tap {self.endpoint} failed: {failure!r}")
        finally:
            for link in list(self._links):
                self._drop_link(link, None)
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()

    def _timeout(self) -> float | None:
        """Until the next held-back chunk is due (``None``: none is).

        A chunk :meth:`_flush` found due waits for its socket to be writable; one that was not due
        then counts, even if it has come due since (0: at once), or nothing would ever write it.
        """
        now = perf_counter()
        dues = [
            max(pipe.queue[0][0], pipe.write_at)
            for link in self._links
            if link.connected
            for pipe in (link.up, link.down)
            if pipe.queue and not link.masks.get(pipe.dst, 0) & selectors.EVENT_WRITE
        ]
        soonest = min(dues, default=float("inf"))
        return None if soonest == float("inf") else max(0.0, soonest - now)

    def _accept(self, mask: int) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        if self._refusing:
            client.close()
            self._note(f"tap {self.endpoint}: connection {self.connections} closed at once (cut)")
            return
        client.setblocking(False)
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(self.connections, client, upstream, self)
        self._links.append(link)
        code = upstream.connect_ex((self.upstream.host, self.upstream.port))
        if code not in (0, errno.EINPROGRESS):
            self._drop_link(link, f"upstream {self.upstream} refused: {errno.errorcode.get(code, code)}")
            return
        self._selector.register(upstream, selectors.EVENT_WRITE, link)
        link.masks[upstream] = selectors.EVENT_WRITE

    def _serve(self, link: _Link, sock: Any) -> None:
        """Finish connecting upstream, or read what came (what cannot be written at once waits for :meth:`_flush`)."""
        if not link.connected:
            code = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._drop_link(link, f"upstream {self.upstream} refused: {errno.errorcode.get(code, code)}")
                return
            link.connected = True
            if self.transcript is not None:  # a row of its own, from the client's column: the columns read client first
                text = f"connection {link.number} through tap {self.endpoint}"
                self.transcript.wire(self.client, self.server, text)
            return
        pipe = link.up if sock is link.client else link.down
        if not pipe.eof and link.masks.get(sock, 0) & selectors.EVENT_READ:
            self._read(pipe)

    def _read(self, pipe: _Pipe) -> None:
        try:
            size = pipe.src.recv_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop_link(pipe.link, f"{pipe.source} side: {error}")
            return
        if not size:
            pipe.eof = True
            held = pipe.cutter.release()  # a message cut short by the close: it goes on as it is
            if held:
                self._queue(pipe, held, perf_counter())
            return
        now = perf_counter()
        data = self._buffer[:size]
        items = pipe.parser.feed(data)
        faults = [f for f in self.faults if f.on_messages and f.applies(pipe.target)] if self.faults else []
        if not faults and pipe.cutter.at is None:  # the common case: record, and forward as it came
            for item in items:
                self._record(pipe, item, now, "")
            self._queue(pipe, data, now)
            return
        for cut, piece, copies, mark in pipe.cutter.cut(data, items, pipe.parser, faults):
            if cut is not None:
                self._record(pipe, cut, now, mark)
            for _ in range(copies if piece else 0):
                self._queue(pipe, piece, now)

    def _queue(self, pipe: _Pipe, data: bytes | memoryview, now: float) -> None:
        """Forward ``data`` when the faults in force let it go, never before what waits already.

        With no fault in force and nothing waiting, it is written at once: ``dst`` is nearly always
        writable, and a round of the selector to hear so costs more than the write. What waits is
        a copy (``data`` may view the read buffer, which the next read overwrites).
        """
        if not self.faults and not pipe.queue and pipe.write_at <= now:  # (a slow fault just ended: its pace holds)
            try:
                data = data[pipe.dst.send(data) :]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as error:
                self._drop_link(pipe.link, f"{pipe.target} side: {error}")
                return
            if not data:
                return
        release = release_time(self.faults, pipe.target, now)
        pipe.queue.append([release, memoryview(data.tobytes() if isinstance(data, memoryview) else data)])
        pipe.queued += len(data)

    def _flush(self, link: _Link) -> None:
        """Write what is due, then say what the selector should wait for on this link's sockets."""
        if not link.connected:
            return
        up, down, masks = link.up, link.down, link.masks
        settled = not (up.queue or down.queue or up.eof or down.eof)
        if settled and masks.get(link.client) == masks.get(link.upstream) == READ:
            return  # the common case: nothing waits, nothing ended, both sockets only read
        now = perf_counter()
        for pipe in (up, down):
            rate = min((f.rate for f in self.faults if f.kind == "slow" and f.applies(pipe.target)), default=0.0)
            while pipe.queue and pipe.queue[0][0] <= now and pipe.write_at <= now:
                chunk = pipe.queue[0][1]
                piece = chunk[: max(1, int(rate / 50))] if rate else chunk
                try:
                    sent = pipe.dst.send(piece)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as error:
                    self._drop_link(link, f"{pipe.target} side: {error}")
                    return
                pipe.queued -= sent
                if rate:
                    pipe.write_at = now + sent / rate
                if sent == len(chunk):
                    pipe.queue.popleft()
                else:
                    pipe.queue[0][1] = chunk[sent:]
            if pipe.eof and not pipe.queue and not pipe.cutter.tail and not pipe.shut:
                pipe.shut = True
                with contextlib.suppress(OSError):
                    pipe.dst.shutdown(socket.SHUT_WR)
        if link.up.done and link.down.done:
            self._drop_link(link, "closed by both peers")
            return
        for sock, out_pipe, in_pipe in ((link.client, link.up, link.down), (link.upstream, link.down, link.up)):
            mask = 0
            if not out_pipe.eof and out_pipe.queued < HIGH_WATER:
                mask |= selectors.EVENT_READ
            if in_pipe.queue and in_pipe.queue[0][0] <= now and in_pipe.write_at <= now:
                mask |= selectors.EVENT_WRITE
            if mask != link.masks.get(sock, 0):
                if not mask:
                    self._selector.unregister(sock)
                elif link.masks.get(sock):
                    self._selector.modify(sock, mask, link)
                else:
                    self._selector.register(sock, mask, link)
                link.masks[sock] = mask

    def _drop_link(self, link: _Link, why: str | None) -> None:
        if link not in self._links:
            return
        self._links.remove(link)
        for sock in (link.client, link.upstream):
            if link.masks.get(sock):
                self._selector.unregister(sock)
            sock.close()
        if why is not None:
            self._note(f"tap {self.endpoint}: connection {link.number} ended: {why}")

    def _cut_all(self, why: str) -> None:
        for link in list(self._links):
            self._drop_link(link, why)

    def _refuse(self, step: int) -> None:
        self._refusing += step
        if step > 0:
            self._cut_all("cut by the test")

    def _end_fault(self, fault: Fault) -> None:
        self.faults.remove(fault)
        now = perf_counter()
        for link in list(self._links):  # a write may end one
            for pipe in (link.up, link.down):
                if fault.kind == "hold" and fault.applies(pipe.target):
                    still = any(f.kind == "hold" and f.applies(pipe.target) for f in self.faults)
                    for entry in pipe.queue if not still else ():
                        entry[0] = min(entry[0], now)
                if fault.on_messages and not any(f.on_messages and f.applies(pipe.target) for f in self.faults):
                    held = pipe.cutter.release()
                    if held:
                        self._queue(pipe, held, now)

    # --- plumbing -----------------------------------------------------------------------------------------------------

    def _record(self, pipe: _Pipe, item: Greeting | Command | Message | Unreadable, at: float, how: str) -> None:
        transcript = self.transcript
        if isinstance(item, Message):
            self.messages[pipe.target] += 1
        if transcript is None:
            return
        if len(self._links) > 1:  # which connection, when there are several
            how = f"(connection {pipe.link.number}) {how}".rstrip()
        if isinstance(item, Message):
            if item.encrypted:
                transcript.wire(pipe.source, pipe.target, f"(encrypted, {item.sizes[0]:,} bytes)", at=at, mark=how)
            else:
                transcript.wire(pipe.source, pipe.target, item.frames, at=at, mark=how)
        elif isinstance(item, Command) and item.name in QUIET_COMMANDS:
            return
        else:
            transcript.wire(pipe.source, pipe.target, item.describe(), at=at, mark=how)

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.note(None, text)

    def _call(self, function: Callable[[], None]) -> None:
        """Run ``function`` in the tap's thread, and wait until it has (faults and cuts touch the loop's state)."""
        __tracebackhide__ = True
        if not self._thread.is_alive():
            raise RuntimeError(f"{self!r} is closed: its faults and cuts ended with it")
        done = threading.Event()

        def call() -> None:
            try:
                function()
            finally:
                done.set()

        self._calls.append(call)
        self._wake()
        if not done.wait(CLOSE_DEADLINE) and self._thread.is_alive():
            raise RuntimeError(f"{self!r}: its thread did not answer within {CLOSE_DEADLINE} s")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")


class TapFactory:
    """``taps(upstream, client=..., server=...)``: makes taps and closes them all at :meth:`close` (the fixture's)."""

    def __init__(self) -> None:
        self.taps: list[Tap] = []

    def __call__(self, upstream: str, *, client: str = "client", server: str = "server", process: bool = False) -> Tap:
        __tracebackhide__ = True
        from zmqtest.tapprocess import ProcessTap

        tap = (ProcessTap if process else Tap)(upstream, client=client, server=server)
        self.taps.append(tap)
        return tap

    def close(self) -> None:
        """Close every tap (all of them, even if one fails; then raise the first failure)."""
        failures: list[BaseException] = []
        for tap in self.taps:
            try:
                tap.close()
            except Exception as failure:
                failures.append(failure)
        if failures:
            raise failures[0]
