"""How a message reads in a transcript or a strict-mode report: decoded first, then cut to the line.

What :mod:`zmqtest.transcript` keeps of a frame (whole, or :class:`Clipped`) is shown
here, decoded by the test's codec only where that is safe (a codec that runs code on peer
data never runs on frames the test did not decode itself).
"""

from __future__ import annotations

import json
import os
from codecs import getincrementaldecoder
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from zmqtest.codecs import Codec

__all__ = ["HEAD_BYTES", "Clipped", "More", "codec_name", "fit", "relative_path", "show_frame", "show_message"]

HEAD_BYTES = 256
"""Of a frame it does not keep whole, the transcript keeps this many first bytes (and its length)."""


class Clipped(NamedTuple):
    """What the transcript keeps of a long frame: its first bytes and its length."""

    head: bytes
    size: int


class More(NamedTuple):
    """Frames of a long message that the transcript did not keep."""

    left: int


def show_message(frames: Sequence[Any], codec: Codec | None, limit: int) -> str:
    """A message's frames for a reader, ``limit`` characters at most: decoded first, then cut.

    A codec with a ``render(frames) -> str`` method renders whole messages itself (header frames too); one it
    fails on, or one the transcript kept only the head of, shows frame by frame.
    """
    render = getattr(codec, "render", None)
    if render is not None and all(type(frame) is bytes for frame in frames):
        try:
            return fit(str(render(list(frames))), limit)
        except Exception:  # a report beats a codec's bug: the default rendering
            pass
    parts = [show_frame(frame, codec) for frame in frames]
    return fit(" | ".join(parts), limit)


def codec_name(codec: Codec) -> str:
    """The codec as the transcript's header names it: its repr, or its class if the repr is object's default."""
    if type(codec).__repr__ is not object.__repr__:
        try:
            return repr(codec)
        except Exception:
            pass
    return type(codec).__qualname__


def show_frame(frame: Any, codec: Codec | None, *, sized: bool = True) -> str:
    """A body the codec decodes as its text (JSON as sent) or repr; else the bytes' repr; a clipped frame its size.

    A frame longer than :data:`HEAD_BYTES` starts with its size (``[888 bytes]``), the text cut afterwards;
    ``sized=False`` leaves the size of a whole frame out (a replay compares texts normalised, and a size would
    differ wherever a normalised part does in length).

    Reports show frames the test never decoded (a raw receive, strict mode's unread messages): a codec other than
    JSON decodes them for display only if it says so with ``safe_to_render = True``; else they show as bytes.
    """
    if isinstance(frame, More):
        return f"(+{frame.left} more frames)"
    if isinstance(frame, Clipped):
        head = repr(frame.head)
        if codec is None or getattr(codec, "name", None) == "json":
            text = _utf8_head(frame.head)  # the start of a long JSON body reads best as text
            if text is not None and text.isprintable() and text.lstrip()[:1] in ("{", "[", '"'):
                head = text
        return f"[{frame.size:,} bytes] {head}..."
    if not frame:
        return "b''"
    text = _decoded(frame, codec)
    return text if len(frame) <= HEAD_BYTES or not sized else f"[{len(frame):,} bytes] {text}"


def _decoded(frame: Any, codec: Codec | None) -> str:
    if codec is None or getattr(codec, "name", None) == "json":
        try:
            text = bytes(frame).decode()
            json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            return repr(frame)
        return text
    if not getattr(codec, "safe_to_render", False):
        return repr(frame)  # a codec of the test's own may run code (pickle): decode only what it says is safe
    try:
        return repr(codec.decode(frame))
    except Exception:
        return repr(frame)


def _utf8_head(data: bytes) -> str | None:
    """``data`` as UTF-8 text, less a character cut in two at its end; ``None`` if it is not UTF-8."""
    try:
        return getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return None


def fit(text: str, limit: int) -> str:
    """``text`` on one line, ``limit`` characters at most."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def relative_path(path: str) -> str:
    """Return ``path`` relative to the working directory if it lies below it (as a traceback shows it), else as is."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("..") else path
