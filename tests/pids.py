"""Looking at processes from outside, for zmqtest's own tests: one place for what several test modules need."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

APPS = Path(__file__).parent / "apps"


def alive(pid: int) -> bool:
    """Tell whether ``pid`` runs (a zombie does not: it holds nothing but its exit status)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def group(pgid: int) -> list[int]:
    """Return the live members of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            pass
    return members


def wait_dead(pids: list[int], seconds: float) -> list[int]:
    """Wait at most ``seconds`` for ``pids`` to be gone; return those still running."""
    deadline = time.monotonic() + seconds
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        psutil.wait_procs([psutil.Process(pid) for pid in left if alive(pid)], timeout=0.05)
        left = [pid for pid in left if alive(pid)]
    return left


def kill_if_alive(pids: list[int]) -> None:
    """SIGKILL those of ``pids`` still running (a test's cleanup when it failed before zmqtest's)."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def read_line(pipe: int, seconds: float) -> str:
    """Return one line from ``pipe`` within ``seconds``, or fail."""
    data = b""
    deadline = time.monotonic() + seconds
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no complete line within {seconds} s, got {data!r}"
        if select.select([pipe], [], [], remaining)[0]:
            chunk = os.read(pipe, 1)
            assert chunk, f"end of output after {data!r}"
            data += chunk
    return data.decode()


@contextlib.contextmanager
def owner(tmp_path: Path, mode: str) -> Iterator[tuple[subprocess.Popen[bytes], str, list[int]]]:
    """Run tests/apps/owner.py ``mode``; yield it, its first line, and a list of pids to SIGKILL if still running."""
    process = subprocess.Popen(
        [sys.executable, str(APPS / "owner.py"), str(tmp_path), mode], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    cleanup: list[int] = []
    try:
        assert process.stdout is not None
        yield process, read_line(process.stdout.fileno(), 60), cleanup
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        kill_if_alive(cleanup)
