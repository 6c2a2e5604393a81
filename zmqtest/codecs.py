"""Body encodings: how a ``send`` event turns a body into a frame, and a ``recv`` back.

A codec is any object with ``encode(body) -> bytes`` and ``decode(frame) -> body``
(``decode`` raises :class:`ValueError` on a frame it cannot read). JSON is the
default, and its bytes are those of pyzmq's ``send_json`` (``json.dumps(body).encode()``),
byte for byte: a process under test that compares, signs or stores frames cannot tell a
mimic from a plain pyzmq peer. Set ``codec`` on a ProcessTest subclass to use another
one (``JsonCodec(compact=True)``, ``MsgpackCodec()``, protobuf, ...).

:class:`MsgpackCodec` needs the optional extra ``zmqtest[msgpack]``: msgpack is imported
when one is made, never by importing zmqtest.
"""

from __future__ import annotations

import json
import json.encoder
import threading
from typing import Any, Protocol

from zmqtest.errors import MessageError


class Codec(Protocol):
    """What ProcessTest needs to encode and decode message bodies; also a base class for codecs.

    Any object with these two methods is a codec (duck typing). Subclassing ``Codec`` adds
    a readable ``repr`` (the transcript's header and errors name the codec by it).

    Optional, looked up on the codec when present:

    - ``safe_to_render = True``: transcripts and strict mode then decode, for display, frames the test never
      decoded itself (a raw receive, unread messages). Leave it out for a codec that can run code on peer data
      (pickle): those frames then show as bytes.
    - ``render(frames) -> str``: the text of a whole message (header frames included, all ``bytes``) for the
      transcript and strict mode, in place of the frame-by-frame default; it is cut to the line afterwards.
    """

    def encode(self, body: Any) -> bytes: ...

    def decode(self, frame: bytes) -> Any: ...

    def __repr__(self) -> str:
        """``ClassName(param=value, ...)``: the parameters of ``__init__`` kept as attributes of the same name and
        not at their default."""
        import inspect  # here: only a report or an error asks

        cls = type(self)
        shown = []
        try:
            parameters = list(inspect.signature(cls).parameters.values())
        except (TypeError, ValueError):  # no signature to read: the class name alone
            parameters = []
        for parameter in parameters:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name not in vars(self):
                continue
            value = vars(self)[parameter.name]
            try:
                at_default = parameter.default is not parameter.empty and bool(value == parameter.default)
            except Exception:  # a value that does not compare to a plain bool (an array): show it
                at_default = False
            if not at_default:
                shown.append(f"{parameter.name}={value!r}")
        return f"{cls.__qualname__}({', '.join(shown)})"


class JsonCodec(Codec):
    """JSON bodies: by default the bytes of pyzmq's ``send_json`` and the article's harness, ``json.dumps(body)``.

    ``JsonCodec(compact=True)`` writes compact UTF-8 instead (no spaces after separators,
    non-ASCII kept as is): smaller frames, for a process that itself sends compact JSON
    and whose frames a test compares byte for byte. Either decodes both.
    """

    name = "json"
    safe_to_render = True  # json.loads runs no code

    def __init__(self, *, compact: bool = False) -> None:
        if not isinstance(compact, bool):
            raise TypeError(f"JsonCodec(compact=...) takes True or False, got {compact!r}")
        self.compact = compact
        if compact:
            self._encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
        else:
            self._encoder = json.JSONEncoder()  # json.dumps's own defaults: ", ", ": " and ASCII escapes
        self._threads = _Encoders(self._encoder) if _Encoders.works(self._encoder) else None

    def encode(self, body: Any) -> bytes:
        threads = self._threads
        try:
            if threads is not None:  # the C encoder json.dumps builds on every call, built once per thread
                return "".join(threads.encoder(body, 0)).encode()
            return self._encoder.encode(body).encode()
        except BaseException as exc:
            if threads is not None:
                threads.rebuild(self._encoder)  # it left the containers it was inside of marked
            if not isinstance(exc, (TypeError, ValueError)):
                raise
            where = _find_unencodable(body) or "body"
            raise MessageError(f"body is not JSON-serialisable: {where} ({exc})") from None

    def decode(self, frame: bytes) -> Any:
        text = frame.decode()  # UTF-8 only, as recv_json (json.loads(bytes) would guess UTF-16/32)
        try:  # the common case: one JSON value, no whitespace around it; json's own C scanner, as json.loads
            body, end = _SCAN(text, 0)
            if end == len(text):
                return body
        except (StopIteration, ValueError):
            pass  # json.loads, below, says what is wrong with it
        if text.startswith("\ufeff"):
            return json.loads(text)  # which says why it refuses a BOM
        return _DECODER.decode(text)  # json.loads's own, without its checks of arguments this never passes


_DECODER = json.JSONDecoder()
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # None: a Python without json's C speedups
_SCAN: Any = getattr(_DECODER, "scan_once")  # noqa: B009 (not in typeshed)
"""``(body, end)`` of the JSON value at an index of a text (``StopIteration``: none there): what ``decode`` calls."""


class _Encoders(threading.local):
    """Each thread's C encoder (``json.encoder.c_make_encoder``), as ``json.dumps`` builds one for every call.

    Per thread, because it is not reentrant: it marks the containers it is inside of, to
    refuse a circular reference (and leaves them marked when it fails: rebuilt then).
    """

    def __init__(self, options: json.JSONEncoder) -> None:
        self.options = options
        self.rebuild(options)

    def __reduce__(self) -> tuple[Any, ...]:
        """A copy (of a codec: ``copy.deepcopy``, pickle) has the same options, and encoders of its own."""
        return (_Encoders, (self.options,))

    def rebuild(self, options: json.JSONEncoder) -> None:
        """This thread's encoder, new (with no container marked)."""
        self.encoder: Any = _C_MAKE_ENCODER(
            {} if options.check_circular else None,
            options.default,
            json.encoder.encode_basestring_ascii if options.ensure_ascii else json.encoder.encode_basestring,
            options.indent,
            options.key_separator,
            options.item_separator,
            options.sort_keys,
            options.skipkeys,
            options.allow_nan,
        )

    @staticmethod
    def works(options: json.JSONEncoder) -> bool:
        """Whether this Python has the C encoder and it writes what ``options.encode`` does (else: that, slower)."""
        sample = ["é\n", 1, -2.5, 1e300, None, True, {"k": [{}, []]}, ()]
        if _C_MAKE_ENCODER is None:
            return False
        try:
            return "".join(_Encoders(options).encoder(sample, 0)) == options.encode(sample)
        except Exception:
            return False


class RawCodec(Codec):
    """Bodies are frames already: bytes pass through, str is UTF-8 encoded."""

    name = "raw"
    safe_to_render = True

    def encode(self, body: Any) -> bytes:
        if isinstance(body, str):
            return body.encode()
        if isinstance(body, (bytes, bytearray, memoryview)):
            return bytes(body)
        raise MessageError(f"body must be bytes or str for the raw codec, got {type(body).__name__}")

    def decode(self, frame: bytes) -> Any:
        return frame


class MsgpackCodec(Codec):
    """msgpack bodies (the optional extra ``zmqtest[msgpack]``): ``msgpack.packb(body)`` and ``unpackb(frame)``.

    Strings pack as msgpack str and bytes as bin (``use_bin_type``), and unpack as
    ``str`` and ``bytes``; arrays unpack as lists. For ext types or other options,
    subclass it and override ``encode``/``decode``.
    """

    name = "msgpack"
    safe_to_render = True  # unpacking runs no code: ext types come back as msgpack.ExtType

    def __init__(self) -> None:
        try:
            import msgpack  # here: importing zmqtest never imports msgpack
        except ImportError:
            raise ImportError(
                "MsgpackCodec needs the msgpack package, which is not installed: pip install zmqtest[msgpack]"
            ) from None
        self._msgpack: Any = msgpack

    def encode(self, body: Any) -> bytes:
        try:
            frame: bytes = self._msgpack.packb(body, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageError(f"body is not msgpack-serialisable: {exc} (body: {_short(body)})") from None
        return frame

    def decode(self, frame: bytes) -> Any:
        try:
            return self._msgpack.unpackb(frame, raw=False)
        except Exception as exc:  # msgpack's errors (some say nothing, some are not ValueErrors) as a bad frame
            raise ValueError(f"not msgpack: {type(exc).__name__}{f': {exc}' if str(exc) else ''}") from exc


_BY_NAME = {"json": "JsonCodec()", "raw": "RawCodec()", "msgpack": "MsgpackCodec()"}


def check_codec(codec: object, where: str) -> None:
    """Raise a TypeError that says what a codec is, if ``codec`` is not one (a name, a class, ...).

    Checked where a codec is set, so that ``codec = "raw"`` fails there, not as a puzzling error from
    ``str.encode`` at the first send.
    """
    __tracebackhide__ = True
    methods = callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))
    if methods and not isinstance(codec, (str, bytes, type)):
        return
    if isinstance(codec, type):
        fix = f"a class, not a codec: make one, {codec.__name__}()"
    else:
        make = _BY_NAME.get(codec.lower(), "RawCodec()") if isinstance(codec, str) else "RawCodec()"
        fix = f"not a codec: one is an object with encode(body) -> bytes and decode(frame), e.g. {make} "
        fix += f"(from zmqtest import {make[:-2]})"
    raise TypeError(f"{where} is {_short(codec)}, {fix}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _find_unencodable(body: Any, path: str = "body", _outer: tuple[int, ...] = ()) -> str:
    """Name the first value inside ``body`` that JSON cannot encode, e.g. ``body['ts'] = datetime(...)``."""
    if isinstance(body, (dict, list, tuple)):
        if id(body) in _outer:
            return f"{path} (a circular reference)"
        _outer = (*_outer, id(body))
    if isinstance(body, dict):
        for key, value in body.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return f"key {key!r} of {path} ({type(key).__name__})"
            found = _find_unencodable(value, f"{path}[{key!r}]", _outer)
            if found:
                return found
        return ""
    if isinstance(body, (list, tuple)):
        for index, value in enumerate(body):
            found = _find_unencodable(value, f"{path}[{index}]", _outer)
            if found:
                return found
        return ""
    if body is None or isinstance(body, (str, int, float, bool)):
        return ""
    return f"{path} = {_short(body)} ({type(body).__name__})"
