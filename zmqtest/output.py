"""A process's output files: the new lines a readiness pattern reads, the tail a report shows.

Each process under test writes its stdout and stderr to files of its own (see
:class:`zmqtest.processes.ProcessManager`); this module reads them.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TAIL_BYTES", "OutputLines", "compile_pattern", "labelled_tail", "last_lines"]

TAIL_BYTES = 64 * 1024
"""How much of the end of a file a tail reads at most."""


class OutputLines:
    """A reading position in a process's stdout and stderr files: the complete lines not yet taken.

    A line is taken when :meth:`lines` yields it; lines read but not taken (the caller
    stopped at a match) are kept for the next call.
    """

    def __init__(self, *paths: Path) -> None:
        self.files = [open(path, "rb") for path in paths]  # noqa: SIM115 (closed in close())
        self.partial = [b""] * len(paths)
        self.pending: collections.deque[str] = collections.deque()

    def lines(self, final: bool = False) -> Iterator[str]:
        """Yield the lines not yet taken (with ``final``, the unfinished last one of each file too)."""
        for index, file in enumerate(self.files):
            data = self.partial[index] + file.read()
            *complete, rest = data.split(b"\n")
            if final and rest:
                complete.append(rest)
                rest = b""
            self.partial[index] = rest
            self.pending.extend(line.rstrip(b"\r").decode("utf-8", errors="replace") for line in complete)
        while self.pending:
            yield self.pending.popleft()

    def close(self) -> None:
        """Close the files."""
        for file in self.files:
            file.close()


def labelled_tail(name: str, files: dict[str, Path], lines: int, hint: str = "") -> str:
    """Return the last ``lines`` lines of each file under a label (``--- stdout of Pong (...) ---``).

    A process that wrote nothing gets one line saying so, with ``hint`` after it.
    """
    parts = []
    for label, path in files.items():
        text = last_lines(path, lines)
        if text is None:
            parts.append(f"--- {label} of {name}: {path} is gone ---")
        elif text:
            parts.append(f"--- {label} of {name} (last {lines} lines of {path}) ---\n{text}")
    return "\n".join(parts) if parts else f"--- {name} wrote nothing to {' or '.join(files)}{hint} ---"


def last_lines(path: Path, lines: int) -> str | None:
    """Return the last ``lines`` lines of the file (of its last TAIL_BYTES); ``None`` if it is gone."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL_BYTES))
            data = file.read()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def compile_pattern(pattern: object, label: str) -> re.Pattern[str]:
    """Compile a pattern over output lines; refuse a bytes pattern or an invalid regex, saying ``label`` first."""
    __tracebackhide__ = True  # a bad pattern is reported at the user's line
    if isinstance(pattern.pattern if isinstance(pattern, re.Pattern) else pattern, (bytes, bytearray)):
        raise TypeError(f"{label}{pattern!r} is bytes: give a str regex (the process's output is read as text)")
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(f"{label}{pattern!r} is not a regex: give a str")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{label}{pattern!r} is not a valid regular expression: {exc}") from None
