"""ProcessTest: a test written as the conversation it has with the process under test.

A test method is a generator that yields events::

    def test_ping(self):
        yield ("send", self.sock, [], ["ping", 1])
        reply = yield ("recv", self.sock)
        assert reply == [["pong", 1]]

Each event is ``(action, *args)``, or an :class:`~zmqtest.events.Event` that also
carries keyword options (``yield recv(self.sock, timeout=0.3)``, see :mod:`zmqtest.events`);
the action is a method of the test class (``send``, ``recv``, ``log``, ``expect_nothing``
... are built in, subclasses add their own) and its result is sent back into the
generator. A failure (timeout, bad message, error in an action) is thrown *into* the
generator, so the traceback ends at the ``yield`` line that asked for it and the test
may even catch it.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
import types
from collections.abc import Callable, Generator, Sequence
from typing import Any, ClassVar

import zmq

from zmqtest import transcript
from zmqtest.barriers import wait_for_subscriber, wait_until_receiving
from zmqtest.codecs import Codec, JsonCodec, check_codec
from zmqtest.errors import EventError, ZmqTestError, add_context
from zmqtest.events import (
    AnyEvent,
    Event,
    arity_problem,
    check_for_unyielded_events,
    codec_in_force,
    decode_frame,
    options_of,
    preview,
    short,
    undecodable,
)
from zmqtest.logcollector import LogCollector, LogEntry, LogLevel, LogText, current_collector, wait_arguments
from zmqtest.managed import ManagedProcess
from zmqtest.rendering import relative_path
from zmqtest.settings import current_timeout, parse_timeout
from zmqtest.skipping import nothing_arrives, receive_skipping
from zmqtest.sockets import TestSocket
from zmqtest.waiting import name_of

__all__ = ["Conversation", "ProcessTest", "check_for_unyielded_events"]

Conversation = Generator[AnyEvent, Any, None]
"""The type of a generator test: ``def test_ping(self) -> Conversation:``."""

EVENT_FORMS = (
    "an event is a tuple (action, *args): ('send', sock, header, body[, extra_frames]), "
    "('recv', sock[, json_load_index]), ('log', substr[, level[, logger[, timeout]]]), "
    "('subscribed', xpub[, topic[, count]]), ('receiving', sub[, probe[, predicate]]), "
    "('wait_for_output', process, pattern[, timeout]), ('pause', process), ('resume', process), ('restart', process) "
    "or (name_of_a_method_of_this_class, *args); or the same with keyword options: recv(sock, timeout=0.3, "
    "skip=predicate), send(sock, header, body), log(substr, timeout=5), expect_nothing(sock, seconds), "
    "event(name, *args, **options) (from zmqtest)"
)
LOG_FORM = "('log', substr[, level[, logger[, timeout]]])"
_NO_FRAMES: tuple[bytes | str, ...] = ()
"""The default extra_frames of a send (by identity: the common case needs no check)."""
_NOT_ACTIONS = frozenset({"run", "setup_method", "teardown_method", "setup_class", "teardown_class"})


class ProcessTest:
    """Base class for process tests: drives generator tests and provides the built-in actions.

    Set ``codec`` to change how bodies are encoded (JSON by default). Any public
    method of a subclass is an action: ``yield ("my_action", arg)`` calls
    ``self.my_action(arg)`` and sends its return value back.
    """

    codec: ClassVar[Codec] = JsonCodec()
    logs: LogCollector | None = None
    """The collector ``("log", ...)`` waits on: set it to your own :class:`~zmqtest.logcollector.LogCollector` (say in
    ``setup_method``, when the test starts its process itself); ``None``: the current one (the process
    manager's, e.g. ``zmq_process_factory``'s)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check a ``codec`` set on the class where it is set: ``codec = "raw"`` fails at import, saying what to do."""
        __tracebackhide__ = True
        super().__init_subclass__(**kwargs)
        if "codec" in vars(cls):
            check_codec(cls.codec, f"{cls.__qualname__}.codec")

    def send(
        self,
        sock: TestSocket,
        header: Sequence[bytes | str],
        body: Any,
        extra_frames: Sequence[bytes | str] = _NO_FRAMES,
        *,
        timeout: float | None = None,
    ) -> None:
        """Send ``header + [encoded body] + extra_frames`` on ``sock`` (``timeout``: seconds it may wait)."""
        if type(header) is list and not header and extra_frames is _NO_FRAMES and isinstance(sock, TestSocket):
            frames = [self.codec.encode(body)]  # the common case of _frames(), inline
        else:
            frames = self._frames(sock, header, body, extra_frames)
        try:
            if timeout is None:
                sock.send_multipart(frames)
            else:
                sock.send_multipart(frames, timeout=_option_seconds(timeout, "send", "timeout"))
        except zmq.ZMQError as exc:
            _unreachable(exc, frames, sock)
            raise

    def _frames(self, sock: object, header: object, body: Any, extra_frames: object) -> list[Any]:
        """The frames a send event sends, checked: ``header + [encoded body] + extra_frames``."""
        if not isinstance(sock, TestSocket):
            raise _not_a_socket(sock, "send")
        if not isinstance(header, (list, tuple)):
            raise EventError(f"the header of a send must be a list of frames, got {short(header)}; use [] for none")
        if not isinstance(extra_frames, (list, tuple)):
            raise EventError(f"extra_frames of a send must be a list of frames, got {short(extra_frames)}")
        frames = [*header, self.codec.encode(body), *extra_frames]
        if header or extra_frames:
            frames = [frame.encode() if isinstance(frame, str) else frame for frame in frames]
        return frames

    def recv(
        self,
        sock: TestSocket,
        json_load_index: int | None = -1,
        *,
        timeout: float | None = None,
        skip: Callable[[list[Any]], object] | None = None,
    ) -> list[Any]:
        """Receive a multipart message on ``sock``; decode the frame at ``json_load_index``.

        Returns the list of frames with that one replaced by its decoded body
        (``None``: all frames stay raw bytes). ``timeout``: seconds for the whole wait
        (default: the socket's). ``skip``: a predicate of the message as returned:
        messages for which it is true are passed over (marked skipped in the
        transcript) until one is not; the timeout error lists them.
        """
        if timeout is None and skip is None and type(json_load_index) is int and isinstance(sock, TestSocket):
            # the tuple form's path: nothing but the receive and the decoding (decode_frame's common case, inline)
            frames: list[Any] = sock.recv_multipart()
            try:
                frame = frames[json_load_index]
            except (IndexError, TypeError):
                return decode_frame(self.codec, frames, json_load_index, sock)  # which says what is wrong
            try:
                frames[json_load_index] = self.codec.decode(frame)
            except ValueError as exc:
                raise undecodable(self.codec, frames, json_load_index, sock, frame, exc) from None
            return frames
        _check_receive(sock, json_load_index)
        if timeout is None and skip is None:
            frames = sock.recv_multipart()
            return frames if json_load_index is None else decode_frame(self.codec, frames, json_load_index, sock)
        seconds = sock.timeout if timeout is None else _option_seconds(timeout, "recv", "timeout")
        if skip is None:
            frames = sock.recv_multipart(timeout=seconds)  # type: ignore[call-overload]
            return frames if json_load_index is None else decode_frame(self.codec, frames, json_load_index, sock)
        if not callable(skip):
            raise _option_error("recv", f"skip= takes a predicate of the message (a callable), got {short(skip)}")
        look = self._looking(sock, json_load_index, skip)
        return receive_skipping(sock, current_timeout() if seconds is None else seconds, look, name_of(skip))  # type: ignore[no-any-return]

    def expect_nothing(
        self, sock: TestSocket, seconds: float, *, skip: Callable[[list[Any]], object] | None = None
    ) -> None:
        """Pass once ``seconds`` go by without a message on ``sock``; a message that arrives fails the test.

        The error (:class:`~zmqtest.events.UnexpectedMessage`) shows the message, decoded as
        ``recv`` would. ``skip``: messages for which it is true (heartbeats) do not count.
        A watched process that dies meanwhile ends the wait with its exit status.
        """
        if not isinstance(sock, TestSocket):
            raise _not_a_socket(sock, "expect_nothing")
        if skip is not None and not callable(skip):
            raise _option_error(
                "expect_nothing", f"skip= takes a predicate of the message (a callable), got {short(skip)}"
            )
        wait = _option_seconds(seconds, "expect_nothing", "seconds")
        nothing_arrives(sock, wait, self._looking(sock, -1, skip, lenient=True))

    def _looking(
        self, sock: TestSocket, index: int | None, skip: Callable[[list[Any]], object] | None, *, lenient: bool = False
    ) -> Callable[[list[Any]], tuple[Any, bool]]:
        """How a receive of this test sees a message: decoded at ``index``, and whether ``skip`` passes over it.

        ``lenient``: a message the codec cannot read is shown as raw frames (it is an error anyway).
        """
        codec = self.codec

        def look(frames: list[Any]) -> tuple[Any, bool]:
            message = frames
            if index is not None:
                try:
                    message = decode_frame(codec, list(frames), index, sock)
                except ZmqTestError:
                    if not lenient:
                        raise
            if skip is None:
                return message, False
            try:
                return message, bool(skip(message))
            except Exception as exc:
                add_context(
                    exc, f"  in skip={name_of(skip)} of a receive on {sock.describe()}, message {message!r:.80}"
                )
                raise

        return look

    def log(
        self, substr: LogText = "", level: LogLevel = None, logger: str | None = None, timeout: float | None = None
    ) -> LogEntry:
        """Wait for a log record of the process under test containing ``substr``; return it (a LogEntry).

        ``level``: at that level or above (a name or a number); ``logger``: from that
        logger or one below it (``"app"`` also matches ``app.db``); ``timeout``: seconds
        (default: the harness timeout). Records logged before the ``yield`` count; each
        record is returned once, the earliest match first. The wait ends at once, with
        the exit status, if a process under test dies.
        """
        collector = self._log_collector()
        if collector is None:
            raise EventError(
                "a log event needs a log collector: start the process with zmq_process_factory or a ProcessManager "
                "(they hand it the collector's endpoint), or set self.logs = zmqtest.LogCollector() and pass "
                "self.logs.endpoint to the process, which calls zmqtest.logs.forward()"
            )
        try:
            query, seconds = wait_arguments(substr, level, logger, timeout)
        except (TypeError, ValueError) as exc:
            raise EventError(f"bad log event: {exc}; the form is {LOG_FORM}") from None
        return collector.wait(query, seconds)

    def subscribed(self, xpub: TestSocket, topic: bytes | str | None = None, count: int = 1) -> list[bytes]:
        """Wait until ``count`` subscriptions letting ``topic`` through reach the mimic ``xpub``: the next send arrives.

        See :func:`zmqtest.barriers.wait_for_subscriber`; returns the topics subscribed to.
        """
        return wait_for_subscriber(xpub, topic, count=count)

    def receiving(
        self,
        sub: TestSocket,
        probe: tuple[Any, ...] | Event | Callable[[], object] | None = None,
        predicate: Callable[[list[bytes]], object] | None = None,
    ) -> list[bytes]:
        """Until the mimic ``sub`` receives from the publisher under test; the first message (raw frames).

        ``probe`` makes the process publish: a callable, or an event of this test
        (``("send", control, [], ["tick"])``), repeated with backoff until a message
        arrives. See :func:`zmqtest.barriers.wait_until_receiving`.
        """
        if type(probe) is tuple or type(probe) is Event:
            action = self._action(probe)
            args, options = (probe.args, probe.options) if isinstance(probe, Event) else (probe[1:], {})

            def probe_event() -> object:
                return action(*args, **options)

            return wait_until_receiving(sub, probe_event, predicate)
        return wait_until_receiving(sub, probe, predicate)  # type: ignore[arg-type]

    def wait_for_output(
        self, process: ManagedProcess, pattern: str | re.Pattern[str], timeout: float | None = None
    ) -> re.Match[str]:
        """Wait for the next line of the process's output matching ``pattern``; return the match.

        See :meth:`zmqtest.managed.ManagedProcess.wait_for_output`: ``m = yield ("wait_for_output", server, r"up")``.
        """
        return _process(process, "wait_for_output").wait_for_output(pattern, timeout)

    def pause(self, process: ManagedProcess) -> None:
        """Pause the process under test and its group (SIGSTOP) until ``("resume", process)``: a peer gone silent."""
        _process(process, "pause").pause()

    def resume(self, process: ManagedProcess) -> None:
        """Let a paused process under test go on (SIGCONT); return once it runs."""
        _process(process, "resume").resume()

    def restart(self, process: ManagedProcess) -> None:
        """Stop the process under test and start it again as it was started; return once it is ready again.

        See :meth:`zmqtest.managed.ManagedProcess.restart`; the handle is the new run's afterwards.
        """
        _process(process, "restart").restart()

    def _drain_logs(self) -> None:
        """Read the records logged so far, so that the transcript has them before it is shown."""
        with contextlib.suppress(Exception):  # never in the way of the test's own outcome
            collector = self._log_collector()
            if collector is not None:
                collector.drain()

    def _log_collector(self) -> LogCollector | None:
        own = self.logs
        if own is None:
            return current_collector()
        if not isinstance(own, LogCollector):
            raise EventError(f"self.logs must be a zmqtest.LogCollector (or None), got {short(own)}")
        return own

    def run(self, testfunc: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Drive the generator test ``testfunc(*args, **kwargs)`` to its end."""
        __tracebackhide__ = True
        if inspect.isasyncgenfunction(testfunc):  # a conversation on an event loop: zmqtest.asyncrunner
            from zmqtest.asyncrunner import converse

            converse(self, testfunc, args, kwargs)
            return
        check_for_unyielded_events(testfunc)
        gen = testfunc(*args, **kwargs)
        if not isinstance(gen, types.GeneratorType):
            name = getattr(testfunc, "__qualname__", repr(testfunc))
            raise EventError(
                f"{name} is not a generator function: a ProcessTest test yields events ({EVENT_FORMS}); "
                "an async one is an async generator (async def with yield)"
            )
        try:
            # the test's transcript (without pytest, one shown on failure); its codec, for wait_for_message
            with transcript.for_run(self.codec), codec_in_force(self.codec, f"{type(self).__qualname__}.codec"):
                try:
                    self._drive(gen)
                finally:
                    self._drain_logs()
        except BaseException as failure:
            _close_after_failure(gen, failure)
            raise

    def _drive(self, gen: types.GeneratorType[AnyEvent, Any, None]) -> None:
        __tracebackhide__ = True
        actions: dict[str, Callable[..., Any]] = {}  # resolved once per run: the hot path is a dict hit
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                if error is None:
                    event = gen.send(value)
                else:
                    event, error = gen.throw(error), None
            except StopIteration as stop:
                if stop.value is not None:
                    code = gen.gi_code
                    raise EventError(
                        f"test generator {gen.__qualname__} ({relative_path(code.co_filename)}:{code.co_firstlineno}) "
                        f"returned {short(stop.value)}: "
                        "a ProcessTest test ends without a value (assert on what it received instead)"
                    ) from None
                return
            try:
                if type(event) is tuple:
                    try:
                        action = actions[event[0]]
                    except (KeyError, IndexError, TypeError):
                        action = actions[event[0]] = self._action(event)
                    args, options = event[1:], None
                elif type(event) is Event:
                    action = actions.get(event.action) or actions.setdefault(event.action, self._action(event))
                    args, options = event.args, event.options
                else:
                    raise EventError(self._not_an_event(event))
                try:
                    value = action(*args) if options is None else action(*args, **options)
                except TypeError as exc:
                    if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
                        raise EventError(arity_problem(action, event, exc)) from None
                    raise
            except Exception as exc:
                value, error = None, _at_yield(exc, event, gen)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise  # the user wants out: not thrown in
            except BaseException as exc:  # pytest.fail/skip in an action: thrown in as is, the report shows the yield
                value, error = None, exc

    def _action(self, event: object) -> Callable[..., Any]:
        """The bound method an event names, or an EventError that says what is wrong with the event."""
        if type(event) is Event:
            name: object = event.action
        elif type(event) is not tuple or not event:
            raise EventError(self._not_an_event(event))
        else:
            name = event[0]
        action = getattr(self, name, None) if isinstance(name, str) and not name.startswith("_") else None
        if action is None or not callable(action) or name in _NOT_ACTIONS:
            raise EventError(self._unknown_action(name))
        return action  # type: ignore[no-any-return]

    def _not_an_event(self, event: object) -> str:
        if inspect.isgenerator(event):
            name = getattr(event, "__name__", "helper")
            return (
                f"yielded the generator {name}(), which is not an event: to run a helper that yields events, "
                f"write 'yield from {name}(...)'"
            )
        return f"yielded {short(event)}, which is not an event: {EVENT_FORMS}"

    def _unknown_action(self, name: object) -> str:
        known = sorted(_actions(type(self)))
        text = f"unknown action {name!r}"
        close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        if close:
            text += f"; did you mean {close[0]!r}?"
        return f"{text} (known actions: {', '.join(known)}; {EVENT_FORMS})"


def _actions(cls: type) -> list[str]:
    return [
        name
        for name, value in inspect.getmembers(cls)
        if callable(value)
        and not name.startswith("_")
        and name not in _NOT_ACTIONS
        and not name.startswith("test")
        and not isinstance(value, type)
    ]


def _option_error(action: str, problem: str) -> EventError:
    """A bad option of a built-in action: the problem, and the options the action takes."""
    return EventError(
        f"bad option of {action}: {problem}; the options of {action} are "
        f"{options_of(inspect.signature(getattr(ProcessTest, action)))}"
    )


def _option_seconds(value: object, action: str, option: str) -> float:
    """An option in seconds of a built-in action, checked as every timeout is."""
    try:
        return parse_timeout(value, f"the {option}= option of {action}", allow_zero=True)
    except ValueError as exc:
        raise _option_error(action, str(exc)) from None


def _at_yield(exc: Exception, event: AnyEvent, gen: types.GeneratorType[AnyEvent, Any, None]) -> Exception:
    """Prepare ``exc`` to be thrown into ``gen``: name the event and the yield line.

    zmqtest's and pyzmq's errors lose their traceback (their message says it all), so
    the traceback ends at the user's ``yield``; errors from user actions keep theirs.
    The place named is that of the innermost generator (``yield from`` helpers).
    """
    while isinstance(gen.gi_yieldfrom, types.GeneratorType):
        gen = gen.gi_yieldfrom
    frame = gen.gi_frame
    where = f"{relative_path(frame.f_code.co_filename)}:{frame.f_lineno}" if frame is not None else gen.__qualname__
    add_context(exc, f"  event: {short(event)} at {where}")
    if isinstance(exc, (ZmqTestError, zmq.ZMQError)):
        exc = exc.with_traceback(None)
    return exc


def _close_after_failure(gen: types.GeneratorType[AnyEvent, Any, None], failure: BaseException) -> None:
    """Close a generator that the failure left suspended, without masking the failure."""
    try:
        gen.close()
    except Exception as problem:
        add_context(failure, f"  also, closing the test generator failed: {problem!r}")


def _check_receive(sock: object, json_load_index: object) -> None:
    """The arguments of a recv event, checked."""
    if not isinstance(sock, TestSocket):
        raise _not_a_socket(sock, "recv")
    if json_load_index is not None and (isinstance(json_load_index, bool) or not isinstance(json_load_index, int)):
        raise EventError(
            f"json_load_index of a recv must be the index of the frame to decode (an int, -1: the last) or None "
            f"for raw frames, got {short(json_load_index)} (a timeout goes by keyword: yield recv(sock, timeout=...))"
        )


def _unreachable(exc: zmq.ZMQError, frames: list[Any], sock: TestSocket) -> None:
    """Say which identity a ROUTER (mandatory) could not reach: the first frame names a peer it does not have."""
    if exc.errno == zmq.EHOSTUNREACH:
        add_context(exc, f"  no peer with identity {preview(bytes(frames[0]))} is connected to {sock.describe()}")


def _not_a_socket(sock: object, action: str) -> EventError:
    kind = "a plain zmq.Socket, which could wait forever" if isinstance(sock, zmq.Socket) else short(sock)
    return EventError(f"{action} needs a TestSocket (make_sock(...)), got {kind}")


def _process(process: object, action: str) -> ManagedProcess:
    """``process`` if it is a process under test (what zmq_process_factory returns), else an EventError."""
    if not isinstance(process, ManagedProcess):
        raise EventError(
            f"{action} needs a process under test (what zmq_process_factory or ProcessManager.start returns), "
            f"got {short(process)}"
        )
    return process
