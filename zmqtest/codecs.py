"""Body encodings: how a ``send`` event turns a body into a frame, and a ``recv`` back.

A codec is any object with ``encode(body) -> bytes`` and ``decode(frame) -> body``
(``decode`` raises :class:`ValueError` on a frame it cannot read). JSON is the
default, and its bytes are those of pyzmq's ``send_json`` (``json.dumps(body).encode()``),
byte for byte: a process under test that compares, signs or stores frames cannot tell a
mimic from a plain pyzmq peer. Set ``codec`` on a ProcessTest subclass to use another
one (``JsonCodec(compact=True)``, msgpack, protobuf, ...).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from zmqtest.errors import MessageError


class Codec(Protocol):
    """What ProcessTest needs to encode and decode message bodies.

    A codec may also set ``safe_to_render = True``: transcripts and strict mode then decode, for display, frames
    the test never decoded itself (a raw receive, unread messages). Leave it out for a codec that can run code on
    peer data (pickle): those frames then show as bytes.
    """

    def encode(self, body: Any) -> bytes: ...

    def decode(self, frame: bytes) -> Any: ...


class JsonCodec:
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

    def encode(self, body: Any) -> bytes:
        try:
            return self._encoder.encode(body).encode()
        except (TypeError, ValueError) as exc:
            where = _find_unencodable(body) or "body"
            raise MessageError(f"body is not JSON-serialisable: {where} ({exc})") from None

    def decode(self, frame: bytes) -> Any:
        return json.loads(frame.decode())  # UTF-8 only, as recv_json (json.loads(bytes) would guess UTF-16/32)

    def __repr__(self) -> str:
        return "JsonCodec(compact=True)" if self.compact else "JsonCodec()"


class RawCodec:
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

    def __repr__(self) -> str:
        return "RawCodec()"


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
    text = repr(body)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{path} = {text} ({type(body).__name__})"
