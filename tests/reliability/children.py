"""Processes under test for the reliability suite's generated projects.

Copied next to each generated test module. One behaviour per mode, the same as a
``multiprocessing.Process`` (:class:`Child`) and as a command line (``python
children.py MODE [ENDPOINT [NOTE]]``). Only the standard library is imported at the
top, so forkserver and spawn children and command lines start fast; pyzmq is imported
by the modes that use it.

Modes:

- ``serve``: bind a REP socket to ENDPOINT (default: any free port), print ``ready, pid N``, echo every request; on
  ``b"die"`` write ``time.monotonic()`` to the file NOTE and end at once with code 3
  (``CLOCK_MONOTONIC`` is one clock for every process on Linux, so the test can
  subtract it from its own reading);
- ``stubborn``: ``serve``, ignoring SIGINT and SIGTERM (only SIGKILL ends it);
- ``grandchild``: fork a grandchild that is ``stubborn`` (so it, not us, holds the
  port), then idle until stopped;
- ``die``: write the time to NOTE and end at once with code 3, never ready;
- ``idle``: print ``ready`` and idle until stopped;
- ``deaf``: ignore SIGINT (SIGTERM ends it), print ``ready``, idle;
- ``crash-exit``, ``crash-raise``, ``crash-signal``: print ``ready`` and idle; a SIGINT (the
  test's stop) makes it crash instead of ending cleanly: ``sys.exit(1)``, a ``RuntimeError``
  (a traceback, exit code 1), or killed by SIGSEGV (no core dump);
- ``escape``: start two processes that leave its process group, each ``sleep 600``: one
  with ``subprocess.Popen(..., start_new_session=True)``, one double-forked as a daemon
  (fork, ``setsid``, fork, exec); print ``ready, escaped PID PID`` and idle until stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time

CRASHES = ("crash-exit", "crash-raise", "crash-signal")
MODES = ("serve", "stubborn", "grandchild", "die", "idle", "deaf", "escape", *CRASHES)
DIED = 3
"""The exit code of a child told to die."""


def note_the_time_and_die(note: str) -> None:
    with open(note, "w") as file:
        file.write(repr(time.monotonic()))
    os._exit(DIED)


def ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def idle() -> None:
    while True:
        time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped


def serve(endpoint: str, note: str) -> None:
    import zmq

    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    sock.bind(endpoint or "tcp://127.0.0.1:*")
    print(f"ready, pid {os.getpid()}", flush=True)
    while True:
        request = sock.recv()
        if request == b"die":
            note_the_time_and_die(note)
        sock.send(request)


def crash(mode: str) -> None:
    """Install a SIGINT handler that crashes the way ``mode`` says."""

    def crash_exit(signum: int, frame: object) -> None:
        sys.exit(1)

    def crash_raise(signum: int, frame: object) -> None:
        raise RuntimeError("crashed while stopping")

    def crash_signal(signum: int, frame: object) -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)  # not faulthandler's (a fork child inherits pytest's)
        os.kill(os.getpid(), signal.SIGSEGV)

    handlers = {"crash-exit": crash_exit, "crash-raise": crash_raise, "crash-signal": crash_signal}
    signal.signal(signal.SIGINT, handlers[mode])


def escape() -> tuple[int, int]:
    """Start two ``sleep 600`` outside our process group (a new session; a daemon); their pids."""
    session = subprocess.Popen(["sleep", "600"], start_new_session=True)
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the classic daemon: setsid, fork again, the middle one exits at once
        try:
            os.close(read_end)
            os.setsid()
            daemon = os.fork()
            if daemon == 0:
                os.execvp("sleep", ["sleep", "600"])
            os.write(write_end, b"%d" % daemon)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        daemon = int(pipe.read())
    os.waitpid(middle, 0)
    return session.pid, daemon


def main(mode: str, endpoint: str = "", note: str = "") -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "die":
        note_the_time_and_die(note)
    if mode in CRASHES:
        crash(mode)
    if mode == "deaf":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if mode == "escape":
        print("ready, escaped {} {}".format(*escape()), flush=True)
        idle()
    if mode in ("idle", "deaf", *CRASHES):
        print("ready", flush=True)
        idle()
    if mode == "grandchild":
        if os.fork() == 0:  # before any zmq context exists: no threads to lose in the fork
            ignore_stop_signals()
            serve(endpoint, note)
        idle()
    if mode == "stubborn":
        ignore_stop_signals()
    serve(endpoint, note)


class Child(multiprocessing.Process):
    """:func:`main` as a Process."""

    def __init__(self, mode: str, endpoint: str = "", note: str = "") -> None:
        super().__init__()
        self.mode = mode
        self.endpoint = endpoint
        self.note = note

    def run(self) -> None:
        main(self.mode, self.endpoint, self.note)


def command(mode: str, endpoint: str = "", note: str = "") -> list[str]:
    """This module as a command line."""
    return [sys.executable, __file__, mode, endpoint, note]


if __name__ == "__main__":
    main(*sys.argv[1:])
