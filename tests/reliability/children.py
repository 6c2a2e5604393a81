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
- ``idle``: print ``ready`` and idle until stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

MODES = ("serve", "stubborn", "grandchild", "die", "idle")
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


def main(mode: str, endpoint: str = "", note: str = "") -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "die":
        note_the_time_and_die(note)
    if mode == "idle":
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
