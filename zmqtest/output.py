"""A process's output files: the new lines a readiness pattern reads, the tail a report shows.

Each process under test writes its stdout and stderr to files of its own (see
:class:`zmqtest.processes.ProcessManager`); this module reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TAIL_BYTES", "OutputLines", "labelled_tail", "last_lines"]

TAIL_BYTES = 64 * 1024
"""How much of the end of a file a tail reads at most."""


class OutputLines:
    """New complete lines of a process's stdout and stderr files since the last call."""

    def __init__(self, *paths: Path) -> None:
        self.files = [open(path, "rb") for path in paths]  # noqa: SIM115 (closed in close())
        self.partial = [b""] * len(paths)

    def lines(self, final: bool = False) -> Iterator[str]:
        """Yield the lines completed since the last call (with ``final``, the unfinished last one too)."""
        for index, file in enumerate(self.files):
            data = self.partial[index] + file.read()
            *complete, rest = data.split(b"\n")
            if final and rest:
                complete.append(rest)
                rest = b""
            self.partial[index] = rest
            for line in complete:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")

    def close(self) -> None:
        """Close the files."""
        for file in self.files:
            file.close()


def labelled_tail(name: str, files: dict[str, Path], lines: int) -> list[str]:
    """Return the last ``lines`` lines of each file, under a label (``--- stdout of Pong (...) ---``); none if empty."""
    parts = []
    for label, path in files.items():
        text = last_lines(path, lines)
        if text is None:
            parts.append(f"--- {label} of {name}: {path} is gone ---")
        elif text:
            parts.append(f"--- {label} of {name} (last {lines} lines of {path}) ---\n{text}")
    return parts


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
