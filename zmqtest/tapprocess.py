"""A tap in a process of its own: the same tap, out of reach of the test's GIL (``zmq_tap(..., process=True)``).

A :class:`~zmqtest.tap.Tap` is a thread of the test's process and runs Python: while the
test's own thread computes in Python, the tap waits for the GIL, up to the interpreter's
switch interval (5 ms) for each message. A :class:`ProcessTap` runs a ``Tap`` in a child
process (``python -m zmqtest.tapprocess``) and speaks to it over one socket pair: faults,
cuts and questions go there; what the tap records comes back, in order, and a reader
thread writes it into the test's transcript with the child's time stamps (the same
clock), in batches. Every answer comes after the records made before it: once :attr:`messages`, a
fault's ``with`` block or :meth:`close` returns, the transcript holds what the tap saw
until then. A ``matching=`` function cannot cross to the child: a process tap refuses
it. The child ends when its socket pair closes (when the test's process ends, too).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from time import perf_counter
from typing import Any

from zmqtest import transcript as ztranscript
from zmqtest.endpoints import Endpoint
from zmqtest.faults import Cut, Fault
from zmqtest.tap import CLOSE_DEADLINE, Tap, upstream_endpoint

__all__ = ["ProcessTap"]

BATCH = 100
"""Records the child keeps before it sends them (it sends what it has before each answer, too)."""
START_DEADLINE = 30.0
"""Seconds the child may take to start (a Python interpreter importing zmqtest, on a loaded machine)."""


class ProcessTap(Tap):
    """A :class:`~zmqtest.tap.Tap` whose loop runs in a process of its own; the same API and records.

    ``fault.hits`` is known when the fault's block ends; ``messages`` and ``connections`` ask the child.
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
        self.client, self.server = client, server
        self.transcript = transcript if transcript is not None else ztranscript.current()
        self.faults: list[Fault] = []
        self.failure: BaseException | None = None
        self.upstream = upstream_endpoint(upstream)  # a bad one is refused here, before a process starts
        self.endpoint = Endpoint("tcp://127.0.0.1:0")  # until the child says
        recording = self.transcript is not None and self.transcript.recording
        ours, theirs = socket.socketpair()
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "zmqtest.tapprocess", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )
        self._socket = ours
        """Its end of the channel: shut down to end the child (closing an fd that a thread reads does not)."""
        self._channel = Connection(os.dup(ours.fileno()))
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._asking = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._listen, args=(recording,), name="zmqtest process tap", daemon=True)
        self._reader.start()
        try:
            whole = recording and self.transcript is not None and self.transcript.whole
            self._channel.send((str(upstream), client, server, recording, whole))
            self.upstream, self.endpoint = (Endpoint(text) for text in self._answer("start", START_DEADLINE))
        except BaseException:
            self._end()
            raise

    def __repr__(self) -> str:
        return (
            f"<ProcessTap {self.endpoint} -> {self.upstream} ({self.client} -> {self.server}), pid {self._process.pid}>"
        )

    @property
    def messages(self) -> Counter[str]:  # type: ignore[override]
        """Messages seen so far per receiver (asks the child: the records of those messages have come back)."""
        return Counter(self._ask("count")[0])

    @property
    def connections(self) -> int:  # type: ignore[override]
        """How many connections the tap has accepted so far (asks the child)."""
        return int(self._ask("count")[1])

    @contextlib.contextmanager
    def _in_force(self, fault: Fault) -> Iterator[Fault]:
        __tracebackhide__ = True
        if fault.matching is not None:
            raise ValueError(
                f"{fault.describe()}: a tap in a process of its own cannot call a function of the test's process;"
                " select with next= or ratio=, or use a tap in the test's process (process=False)"
            )
        self._ask("on", id(fault), fault)
        self.faults.append(fault)
        try:
            yield fault
        finally:
            self.faults.remove(fault)
            if not self._closed:  # a tap closed inside the block took its faults with it
                fault.hits = self._ask("off", id(fault))

    def cut(self) -> Cut:
        """Close every connection now (see :meth:`Tap.cut`)."""
        self._ask("cut")
        return Cut(lambda step: self._ask("refuse", step))

    def close(self) -> None:
        """Close the child's tap (every connection, its listener) and wait for the child to exit (5 s, else raise)."""
        __tracebackhide__ = True
        if self._closed:
            return
        try:
            failure = self._ask("close")
        finally:
            self._end()
        if failure is not None:
            raise RuntimeError(f"{self!r}: {failure}")

    # --- the channel --------------------------------------------------------------------------------------------------

    def _ask(self, *question: Any) -> Any:
        """Send ``question`` to the child and wait for its answer (every record sent before it has been written)."""
        __tracebackhide__ = True
        with self._asking:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed: its faults and cuts ended with it")
            try:
                self._channel.send(question)
            except OSError as error:
                raise RuntimeError(f"{self!r}: its process is gone ({self._state()}): {error}") from error
            return self._answer(question[0], CLOSE_DEADLINE)

    def _answer(self, what: str, deadline: float) -> Any:
        __tracebackhide__ = True
        try:
            answer = self._answers.get(timeout=deadline)
        except queue.Empty:
            raise RuntimeError(f"{self!r}: no answer to {what!r} within {deadline} s ({self._state()})") from None
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _listen(self, recording: bool) -> None:
        """The reader thread: records into the transcript, answers to whoever asked, in the order they came."""
        transcript = self.transcript if recording else None
        try:
            while True:
                kind, data = self._channel.recv()
                if kind == "answer":
                    self._answers.put(data)
                elif transcript is not None:
                    self._write_down(transcript, data)
        except (EOFError, OSError):
            self._answers.put(RuntimeError(f"{self!r}: its process ended ({self._state()})"))

    @staticmethod
    def _write_down(transcript: ztranscript.Transcript, records: list[tuple[Any, ...]]) -> None:
        for record in records:
            if record[0] == "wire":
                _, source, target, what, at, mark = record
                transcript.wire(source, target, what, at=at, mark=mark)
            else:
                _, who, what, at = record
                transcript.note(who, what, at=at)

    def _state(self) -> str:
        code = self._process.poll()
        return f"pid {self._process.pid} running" if code is None else f"pid {self._process.pid} exited with {code}"

    def _end(self) -> None:
        """Close the channel (the child ends on it), reap the child (killed if it lingers) and join the reader."""
        __tracebackhide__ = True
        self._closed = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        try:
            self._process.wait(CLOSE_DEADLINE)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(CLOSE_DEADLINE)
            raise RuntimeError(f"{self!r}: its process did not exit within {CLOSE_DEADLINE} s of close()") from None
        finally:
            self._reader.join(CLOSE_DEADLINE)
            self._channel.close()


# --- the child --------------------------------------------------------------------------------------------------------


class _Relay(ztranscript.Transcript):
    """The child's transcript: records wait here and go to the test's process in batches, before each answer
    and every :data:`BATCH` records (the test's process is not woken for each message); none stays here."""

    def __init__(self, channel: Connection, *, whole: bool) -> None:
        super().__init__(whole=whole)  # as the test's transcript: a recording to replay keeps frames whole
        self._channel = channel
        self._lock = threading.Lock()
        self._batch: list[tuple[Any, ...]] = []

    def wire(
        self, source: str, target: str, what: Sequence[Any] | str, *, at: float | None = None, mark: str = ""
    ) -> None:
        frames = what if isinstance(what, str) else tuple(what)
        self._add(("wire", source, target, frames, perf_counter() if at is None else at, mark))

    def note(self, who: str | None, what: str, *, at: float | None = None) -> None:
        self._add(("note", who, what, perf_counter() if at is None else at))

    def _add(self, record: tuple[Any, ...]) -> None:
        with self._lock:
            self._batch.append(record)
            if len(self._batch) >= BATCH:
                self._channel.send(("records", self._batch))
                self._batch = []

    def send(self, message: tuple[Any, ...]) -> None:
        """Send ``message`` after every record kept so far."""
        with self._lock:
            if self._batch:
                self._channel.send(("records", self._batch))
                self._batch = []
            self._channel.send(message)


def _count(tap: Tap) -> tuple[dict[str, int], int]:
    """The tap's counts, read in its thread (which writes them)."""
    counted: list[Any] = []
    tap._call(lambda: counted.extend((dict(tap.messages), tap.connections)))
    return counted[0], counted[1]


def _serve(channel: Connection) -> None:
    """Run a tap as the test's process asks, until it says close or its end of the channel closes."""
    upstream, client, server, recording, whole = channel.recv()
    relay = _Relay(channel, whole=whole)
    send = relay.send
    try:
        tap = Tap(upstream, client=client, server=server, transcript=relay if recording else None)
    except Exception as error:
        send(("answer", error))
        return
    send(("answer", (str(tap.upstream), str(tap.endpoint))))
    blocks: dict[int, tuple[contextlib.AbstractContextManager[Fault], Fault]] = {}
    while True:
        try:
            what, *args = channel.recv()
        except (EOFError, OSError):
            what, args = "close", []
        answer: Any = None
        try:
            if what == "on":
                block = tap._fault(args[1])
                blocks[args[0]] = (block, block.__enter__())
            elif what == "off":
                block, fault = blocks.pop(args[0])
                block.__exit__(None, None, None)
                answer = fault.hits
            elif what == "cut":
                tap.cut()
            elif what == "refuse":
                tap._call(functools.partial(tap._refuse, args[0]))
            elif what == "count":
                answer = _count(tap)
            elif what == "close":
                try:
                    tap.close()
                except RuntimeError as failure:
                    answer = str(failure)
                with contextlib.suppress(OSError):
                    send(("answer", answer))
                return
        except Exception as error:  # said to the test's process, where the question came from
            answer = RuntimeError(f"the tap's process could not {what}: {error!r}")
        send(("answer", answer))


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
