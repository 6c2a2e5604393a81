"""What runs in a multiprocessing child before the user's ``run()``: session, output files, environment, patches.

It also ties the child to us (Linux ``prctl``): it is SIGKILLed when the process that
started it dies (``PR_SET_PDEATHSIG``: the start-to-registration window of the
watchdog is covered, a SIGKILLed test leaves no child), and it adopts its orphaned
descendants (``PR_SET_CHILD_SUBREAPER``), so that a daemon it starts stays below it
where its stop finds it, instead of moving under init.

Kept apart from :mod:`zmqtest.processes`, and on the standard library alone, because
under spawn and forkserver the child imports the module of this class to unpickle it:
importing zmqtest.processes (and with it pyzmq, the settings and the waits) cost a
forkserver child about 55 ms, three times its bare start.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.process
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from zmqtest import childcoverage

__all__ = ["ChildSetup", "sigint_held"]


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once here (in the test, and in a forkserver that preloads this): not per child."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()

_inherited_streams: list[object] = []
"""The parent's sys.stdout/sys.stderr in a forked child: kept, so that they are never flushed (nor duplicated)."""


class ChildSetup:
    """Replaces a Process's ``run`` for one start: prepares the child, then calls the real ``run()``.

    An instance attribute set on the Process object, so it travels with it when the
    object is pickled (spawn, forkserver); module level, so it can be pickled.
    """

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        own_run: Callable[[], None] | None,
        stdout_path: str,
        stderr_path: str,
        patches: dict[str, object],
        method: str,
        *,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.process = process
        self.method = method
        self.own_run = own_run  # a ``run`` the instance had of its own, else the class's is used
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.patches = patches
        self.environ = environ or {}  # set in the child (e.g. the log endpoint): a forkserver child has not our env
        # Its parent is the forkserver, or us; a child dies with the thread that started it, so only the main thread's
        self.parent = None if method == "forkserver" else os.getpid()
        self.tie_to_parent = method == "forkserver" or threading.current_thread() is threading.main_thread()
        self.sigint_held = False
        """Whether the child starts with SIGINT blocked (see :func:`sigint_held`), to be unblocked once set up."""

    def __call__(self) -> None:
        try:
            self._prepare_and_run()
        except KeyboardInterrupt:  # stopped by SIGINT: end as a shell's job ends on Ctrl-C, code 130, not 1 (a crash)
            import traceback

            traceback.print_exc()  # where it was when interrupted, as multiprocessing would have printed
            raise SystemExit(130) from None

    def _prepare_and_run(self) -> None:
        with contextlib.suppress(OSError):  # fails only if already a group leader: then it is one already
            os.setsid()
        self._tie()
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # inherited from a background job: SIGINT must work
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.sigint_held:  # from here a SIGINT ends it as a stop (130), also one that came while it started
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _redirect(os.devnull, 0, os.O_RDONLY)
        _redirect(self.stdout_path, 1, os.O_WRONLY | os.O_APPEND)
        _redirect(self.stderr_path, 2, os.O_WRONLY | os.O_APPEND)
        if self.method == "spawn":  # its own streams: what it printed on the way here goes to the files too
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
        _inherited_streams.extend((sys.stdout, sys.stderr))
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.update(self.environ)
        measuring = childcoverage.start(self.environ)  # when coverage measures the test: measure run() too
        try:
            if self.patches:
                from unittest import mock

                for target, replacement in self.patches.items():
                    mock.patch(target, replacement).start()  # never stopped: the process ends anyway
            if self.own_run is not None:
                self.own_run()
            else:
                type(self.process).run(self.process)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            childcoverage.save(measuring)  # also after a KeyboardInterrupt (zmqtest's SIGINT): no atexit will run

    def _tie(self) -> None:
        """Die with the parent (if it is already gone, now); adopt orphaned descendants. Best effort: Linux only."""
        prctl = _PRCTL
        if prctl is None:
            return
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if self.tie_to_parent:
            parent = os.getppid() if self.parent is None else self.parent
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # it died before the tie was made
                os._exit(128 + signal.SIGKILL)


@contextlib.contextmanager
def sigint_held(setup: ChildSetup) -> Iterator[None]:
    """Start a fork or spawn child with SIGINT blocked until its setup unblocks it (it inherits our signal mask).

    A SIGINT that comes while the child is still starting (unpickling under spawn,
    importing) would otherwise end it with a traceback and code 1, as a crash; held,
    it is delivered once the child's ``run()`` is about to start, and ends it with 130.
    A forkserver child inherits the forkserver's mask instead, so it is not held there.
    """
    if setup.method == "forkserver" or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    setup.sigint_held = signal.SIGINT not in before
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _redirect(path: str, fd: int, flags: int) -> None:
    opened = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.dup2(opened, fd)
    finally:
        os.close(opened)
