"""Events with keyword options: ``reply = yield recv(sock, timeout=0.3, skip=is_heartbeat)``.

A generator test of a :class:`~zmqtest.runner.ProcessTest` yields events. The tuple form,
``("recv", sock)``, names an action and its positional arguments; a per-event option then
needs every positional before it (``("log", "ready", None, None, 5)``). An :class:`Event`
carries keyword options too: ``log("ready", timeout=5)``. Both go to the same action method
of the test class (``send``, ``recv``, ``log``, ``expect_nothing``, ... and the class's own),
so the two forms mix freely in one test; a keyword the action does not take is an
:class:`~zmqtest.errors.EventError` at the ``yield`` that names the options it takes.

The codec of the ProcessTest whose conversation runs now is kept here too
(:func:`current_codec`), so that waits outside the test class
(:func:`zmqtest.waiting.wait_for_message`) decode as its ``recv`` does.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from zmqtest.errors import EventError, MessageError, ZmqTestError
from zmqtest.rendering import codec_name

if TYPE_CHECKING:
    from zmqtest.codecs import Codec

__all__ = [
    "Event",
    "UnexpectedMessage",
    "check_for_unyielded_events",
    "current_codec",
    "decode_frame",
    "event",
    "expect_nothing",
    "log",
    "recv",
    "send",
]


@dataclasses.dataclass(frozen=True, repr=False)
class Event:
    """An event of a generator test: the action's name, its positional arguments and its keyword options.

    The test's driver calls ``self.<action>(*args, **options)`` and sends the result back.
    """

    action: str
    args: tuple[Any, ...] = ()
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        """``recv(<TestSocket ...>, timeout=0.3)``: the event as it was written."""
        parts = [repr(arg) for arg in self.args] + [f"{key}={value!r}" for key, value in self.options.items()]
        return f"{self.action}({', '.join(parts)})"


AnyEvent = tuple[Any, ...] | Event
"""What a generator test yields: the tuple form, or an Event."""


class UnexpectedMessage(ZmqTestError, AssertionError):
    """``expect_nothing`` saw a message arrive: the error shows it (decoded) and when it came.

    An :class:`AssertionError`: the process under test did not behave as the test says.
    """


def event(action: str, /, *args: Any, **options: Any) -> Event:
    """Any action of the test class with keyword options: ``yield event("my_action", a, b, key=1)``."""
    __tracebackhide__ = True
    if not isinstance(action, str) or not action or action.startswith("_"):
        raise EventError(f"event(action, *args, **options) takes the name of a public action first, got {action!r}")
    return Event(action, args, options)


def send(sock: Any, /, *args: Any, **options: Any) -> Event:
    """``yield send(sock, header, body, extra_frames=(), timeout=None)``: the ``send`` action.

    ``timeout``: seconds this send may wait (default: the socket's).
    """
    return Event("send", (sock, *args), options)


def recv(sock: Any, /, *args: Any, **options: Any) -> Event:
    """``reply = yield recv(sock, json_load_index=-1, timeout=None, skip=None)``: the ``recv`` action.

    ``timeout``: seconds for the whole wait (default: the socket's); ``skip``: a predicate
    of the message as ``recv`` returns it (decoded): messages for which it is true are
    received, shown as skipped in the transcript and passed over.
    """
    return Event("recv", (sock, *args), options)


def log(*args: Any, **options: Any) -> Event:
    """``record = yield log(substr, level=None, logger=None, timeout=None)``: the ``log`` action."""
    return Event("log", args, options)


def expect_nothing(sock: Any, /, *args: Any, **options: Any) -> Event:
    """``yield expect_nothing(sock, seconds, skip=None)``: no message arrives on ``sock`` for ``seconds``.

    A message that arrives fails the test with :class:`UnexpectedMessage`, showing it;
    ``skip`` passes over messages for which it is true (heartbeats).
    """
    return Event("expect_nothing", (sock, *args), options)


HELPERS = frozenset({event, send, recv, log, expect_nothing})
"""The functions that make events: a call of one that is not yielded is a test line that does nothing."""


# --- decoding as the test does ---------------------------------------------------------------------------------------

_codec: ContextVar[Codec | None] = ContextVar("zmqtest_codec", default=None)


def current_codec() -> Codec | None:
    """The codec of the ProcessTest whose conversation runs now, or ``None`` outside one."""
    return _codec.get()


@contextmanager
def codec_in_force(codec: Codec, where: str) -> Iterator[None]:
    """Make ``codec`` the current one inside the ``with`` block (a ProcessTest's run); ``where`` names it if bad."""
    from zmqtest.codecs import check_codec  # loaded by then: the test's class has a codec

    check_codec(codec, where)  # one set in setup_method may be anything
    token = _codec.set(codec)
    try:
        yield
    finally:
        _codec.reset(token)


def decode_frame(codec: Codec, frames: list[Any], index: int, sock: Any) -> list[Any]:
    """``frames`` (received on ``sock``) with the one at ``index`` decoded by ``codec``, in place.

    A frame it cannot decode is a MessageError naming the frame, the message and the socket.
    """
    try:
        frame = frames[index]
    except (IndexError, TypeError):
        raise MessageError(
            f"cannot decode frame {index!r} of a {len(frames)}-frame message on {_where(sock)}: "
            f"{_frames_preview(frames)} (json_load_index, the item after the socket in ('recv', sock, ...), is the "
            f"index of the frame to decode; a timeout goes by keyword: yield recv(sock, timeout={index!r}))"
        ) from None
    try:
        frames[index] = codec.decode(frame)
    except ValueError as exc:
        raise undecodable(codec, frames, index, sock, frame, exc) from None
    return frames


def undecodable(codec: Codec, frames: list[Any], index: int, sock: Any, frame: Any, exc: ValueError) -> MessageError:
    """The error of a frame (``frames[index]``, received on ``sock``) that ``codec`` could not decode."""
    problem = "is not UTF-8" if isinstance(exc, UnicodeDecodeError) else f"is not valid ({exc})"
    return MessageError(
        f"frame {index} of the message on {_where(sock)} {problem} for {codec_name(codec)}: "
        f"{preview(frame)}; whole message: {_frames_preview(frames)} "
        "(pass json_load_index=None to get raw frames, or give the test class a codec that reads them: RawCodec())"
    )


def _where(sock: Any) -> str:
    describe = getattr(sock, "describe", None)
    return str(describe()) if callable(describe) else repr(sock)


def preview(frame: bytes, limit: int = 40) -> str:
    """The head of a frame for an error message, with its size when cut."""
    return repr(frame[:limit]) + (f"... ({len(frame)} bytes)" if len(frame) > limit else "")


def _frames_preview(frames: list[Any], limit: int = 4) -> str:
    shown = [preview(f) if isinstance(f, bytes) else _clip(repr(f), 60) for f in frames[:limit]]
    if len(frames) > limit:
        shown.append(f"... {len(frames) - limit} more")
    return "[" + ", ".join(shown) + "]"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- events that do not fit: made and dropped, or not what the action takes ---------------------------------------


def check_for_unyielded_events(test: Callable[..., Any]) -> None:
    """Raise :class:`EventError` if ``test`` holds an event that is never yielded: a line that does nothing.

    ``('send', sock, [], body)`` without ``yield`` is a tuple made and dropped: the test
    would pass without sending anything. Read from its source once per function; the
    plugin checks the plain test methods of a ProcessTest too.
    """
    __tracebackhide__ = True
    code = getattr(test, "__code__", None)
    candidates = _unyielded(code) if isinstance(code, types.CodeType) else ()
    names = getattr(test, "__globals__", {})  # a call counts if it calls one of zmqtest's event helpers (recv, ...)
    found = [(line, text) for line, text, called in candidates if called is None or _is_helper(names.get(called))]
    if found:
        name = getattr(test, "__qualname__", repr(test))
        lines = "; ".join(f"line {line}: {text}" for line, text in found)
        raise EventError(
            f"{name} makes an event and drops it ({lines}): an event is sent to the test only by yield; "
            f"write yield (...), or reply = yield (...)"
        )


@functools.lru_cache(maxsize=1024)
def _unyielded(code: types.CodeType) -> tuple[tuple[int, str, str | None], ...]:
    """Find the statements of a function that are only a tuple starting with a string, or only a call of a plain
    name (``recv(sock)``: the caller checks that the name is an event helper): events not yielded."""
    try:
        lines, _ = inspect.findsource(code)
    except (OSError, TypeError):
        return ()
    source = textwrap.dedent("".join(inspect.getblock(lines[code.co_firstlineno - 1 :])))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Expr):
            continue
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            called: str | None = value.func.id
        elif (
            isinstance(value, ast.Tuple)
            and value.elts
            and isinstance(value.elts[0], ast.Constant)
            and isinstance(value.elts[0].value, str)
        ):
            called = None
        else:
            continue
        found.append((node.lineno + code.co_firstlineno - 1, ast.get_source_segment(source, node) or "", called))
    return tuple(found)


def arity_problem(action: Callable[..., Any], event: AnyEvent, exc: TypeError) -> str:
    name, args, options = (
        (event.action, event.args, event.options) if isinstance(event, Event) else (event[0], event[1:], {})
    )
    try:
        signature = inspect.signature(action)
    except ValueError:
        return f"event {short(event)} does not fit action {name!r}: {exc}"
    plain = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    try:
        signature.bind(*args, **options)
    except TypeError as problem:
        exc = problem
    text = f"event {short(event)} does not fit {name}{plain}: {exc}"
    if options:
        text += f"; the options of {name} are {options_of(signature)}"
    return text


def options_of(signature: inspect.Signature) -> str:
    """The keyword options an action takes: ``json_load_index=-1, timeout=None, skip=None``."""
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p for p in signature.parameters.values() if p.kind in keywords and p.default is not p.empty]
    return ", ".join(f"{p.name}={p.default!r}" for p in named) or "none"


def _is_helper(value: object) -> bool:
    """Whether ``value`` is one of zmqtest's event helpers (by identity: a test's own object may not hash)."""
    return any(value is helper for helper in HELPERS)


def short(value: object, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
