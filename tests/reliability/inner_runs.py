"""Inner pytest runs for the reliability suite, and the processes they leave, seen from outside.

Each figure is measured in a real pytest run of generated tests (:class:`InnerProject`):
a subprocess with a deadline, made serially and under ``-n 2``. Every process of an
inner run inherits ``MARK`` in its environment; :class:`Ledger` finds what is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

CHILDREN = Path(__file__).with_name("children.py")
MARK = "ZMQTEST_RELIABILITY_MARK"
"""The environment variable that tags every process of an inner run."""
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "error")
"""Inner runs keep file order (the failure matrix ends a session on purpose) and treat warnings as errors."""
INNER_DEADLINE = 150.0
"""Seconds an inner pytest run may take before it is killed."""
OUTER_DEADLINE = 2 * INNER_DEADLINE
"""Seconds a test of the suite may take (pytest-timeout): its inner runs and what it checks afterwards."""
GONE_DEADLINE = 10.0
"""Seconds the helpers of an inner run (forkserver, reaper, resource tracker) may take to exit after it."""
VARIANTS = {"serial": (), "-n 2": ("-n", "2")}
"""How the inner runs are made: in one process, and with two pytest-xdist workers."""


class InnerProject:
    """A generated pytest project (pytester's directory) with ``children.py``, run in a subprocess."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        shutil.copy(CHILDREN, self.path / CHILDREN.name)

    def run(self, variant: str, *args: str, timeout: float = INNER_DEADLINE) -> tuple[pytest.RunResult, float]:
        """Run the generated tests (``variant``: a key of ``VARIANTS``); the result and how long it took."""
        began = time.monotonic()
        result = self.pytester.runpytest_subprocess(*INNER, *VARIANTS[variant], *args, timeout=timeout)
        return result, time.monotonic() - began

    def popen(self, variant: str, *args: str, output: Path) -> subprocess.Popen[bytes]:
        """Start the generated tests in a session of their own (so that a Ctrl-C can go to their whole group)."""
        with output.open("w") as out:
            proc: subprocess.Popen[bytes] = self.pytester.popen(
                [sys.executable, "-m", "pytest", f"--basetemp={self.path / 'tmp'}", *INNER, *VARIANTS[variant], *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc

    def notes(self, prefix: str) -> list[str]:
        """The lines of every file ``prefix*`` the inner tests wrote (one per xdist worker, say)."""
        return [line for path in sorted(self.path.glob(f"{prefix}*")) for line in path.read_text().splitlines()]


def run_watched(
    project: InnerProject,
    ledger: Ledger,
    variant: str,
    *args: str,
    output: Path,
    during: Callable[[subprocess.Popen[bytes]], None] | None = None,
    deadline: float = INNER_DEADLINE,
) -> str:
    """Run the generated tests in a session of their own, watched by ``ledger`` from outside; their output.

    ``during(proc)``, if given, acts on the run while it goes (a Ctrl-C, a SIGKILL). Whatever
    happens, the run's whole process group is SIGKILLed if it has not ended within ``deadline``.
    """
    proc = project.popen(variant, *args, output=output)
    try:
        with ledger.watch(proc.pid):
            if during is not None:
                during(proc)
            proc.wait(deadline)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return output.read_text()


def wait_for_file(
    directory: Path, prefix: str, proc: subprocess.Popen[bytes], deadline: float = INNER_DEADLINE
) -> bool:
    """Wait until a file ``prefix*`` exists (True) or the run ends without it (False), within ``deadline`` s."""
    end = time.monotonic() + deadline
    while not list(directory.glob(f"{prefix}*")):
        if time.monotonic() >= end:
            pytest.fail(f"no {prefix}* within {deadline:g} s")
        try:
            proc.wait(timeout=0.02)  # the pause between looks ends early if the run ends
        except subprocess.TimeoutExpired:
            continue
        return bool(list(directory.glob(f"{prefix}*")))
    return True


def spread(values: list[float]) -> str:
    """``median 12 ms, max 30 ms``."""
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


class Ledger:
    """Every process of an inner run, seen from outside it, and which of them are left afterwards.

    Three ways to see them, because each alone can miss some: the descendants of the
    inner pytest, sampled every few milliseconds while it runs (:meth:`watch`); the pids
    its tests wrote down (:meth:`add`); and, afterwards, any process whose environment
    carries the run's mark. A process is *left* if it is alive (not a zombie) and was
    seen, carries the mark, or belongs to a process group or session led by a process
    that was seen (each process under test leads a session of its own).
    """

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.seen: dict[int, float] = {}
        """pid → start time (so that a reused pid is not mistaken for one of ours)."""

    def add(self, pids: list[int], before: float) -> None:
        """Add ``pids`` (written down during the run) that are still there and started before ``before``."""
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                started = psutil.Process(pid).create_time()
                if started <= before:  # else the pid was reused
                    self.seen.setdefault(pid, started)

    def sample(self, root: psutil.Process) -> None:
        with contextlib.suppress(psutil.Error):
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault(proc.pid, proc.create_time())

    @contextlib.contextmanager
    def watch(self, pid: int, every: float = 0.005) -> Iterator[None]:
        """Sample the descendants of ``pid`` in a thread while the block runs."""
        root = psutil.Process(pid)
        done = threading.Event()

        def sampler() -> None:
            while not done.is_set():
                self.sample(root)
                done.wait(every)

        thread = threading.Thread(target=sampler, name="ledger", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def marked(self) -> list[psutil.Process]:
        return [proc for proc in _others() if _environ(proc).get(MARK) == self.mark]

    def ours(self, proc: psutil.Process) -> bool:
        try:
            if self.seen.get(proc.pid) == proc.create_time() or _environ(proc).get(MARK) == self.mark:
                return True
            return self._led_by_ours(os.getpgid(proc.pid)) or self._led_by_ours(os.getsid(proc.pid))
        except (psutil.Error, OSError):
            return False

    def _led_by_ours(self, leader: int) -> bool:
        """A group or session led by a process we saw (the kernel reuses no pid while its group lives)."""
        if leader not in self.seen:
            return False
        try:
            return bool(psutil.Process(leader).create_time() == self.seen[leader])
        except psutil.NoSuchProcess:
            return True  # the leader is gone, its group is not: it was ours
        except psutil.Error:
            return False

    def left(self, seconds: float = GONE_DEADLINE) -> list[str]:
        """What is still alive ``seconds`` after the run (at once, if nothing is); described."""
        deadline = time.monotonic() + seconds
        while True:
            left = [proc for proc in _others() if self.ours(proc) and _alive(proc)]
            if not left or time.monotonic() >= deadline:
                return [described for described in map(_describe, left) if described]
            psutil.wait_procs(left, timeout=min(0.1, max(0.0, deadline - time.monotonic())))

    def kill_marked(self) -> None:
        for proc in self.marked():
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _others() -> Iterator[psutil.Process]:
    me = os.getpid()
    return (proc for proc in psutil.process_iter() if proc.pid != me)


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return dict(proc.environ())
    except psutil.Error:
        return {}


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str | None:
    try:
        return f"{proc.pid} ({proc.status()}, ppid {proc.ppid()}): {' '.join(proc.cmdline())}"
    except psutil.Error:
        return None
