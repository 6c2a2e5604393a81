"""A process under test that logs what it is told to, for the tests of zmqtest.logs.

The same program as a ``multiprocessing.Process`` (:class:`LogApp`) and as a command line
(``python log_app.py [--log-endpoint EP] [--exit-after N]``). It forwards its log records with
``zmqtest.logs.forward()`` (the endpoint comes from ``ZMQTEST_LOG_ENDPOINT`` unless given), logs
``started <pid>`` at INFO on logger ``app``, binds a REP socket on a tcp port the system picks,
prints ``listening on <endpoint>`` and then obeys one JSON request at a time:

- ``["log", level, logger, message]``: log it; reply ``["ok"]``;
- ``["propagate", logger, flag]``: set that logger's ``propagate`` to ``flag``; reply ``["ok"]``;
- ``["exception", message]``: log a ZeroDivisionError with ``logger.exception``; reply ``["ok"]``;
- ``["burst", n, prefix]``: log ``prefix 0`` ... ``prefix n-1`` at INFO; reply ``["ok"]``;
- ``["fork-log", message]``: fork a child (multiprocessing, fork) that logs ``message`` and ends; reply
  ``["ok", child_pid]`` once it has;
- ``["exit", code, n]``: reply ``["ok"]``, log ``last 0`` ... ``last n-1`` and exit with ``code``
  (``sys.exit``: a normal exit);
- ``["die", code]``: ``os._exit(code)`` at once, without a reply.

``--exit-after N`` (``LogApp(exit_after=N)``): log ``last 0`` ... ``last N-1`` right after start-up
and exit with code 0, without binding anything. ``--quiet-logger NAME`` (``LogApp(quiet=[NAME])``, repeatable):
logger ``NAME`` does not propagate, set before ``forward()`` (as ``logging.config`` would).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

import zmq

from zmqtest.logs import forward
from zmqtest.plainpush import PlainPush

log = logging.getLogger("app")
_close = PlainPush.close


def flush_interrupted(push: PlainPush, timeout: float) -> None:
    """The forwarder's flush at exit as it is when the test's SIGINT lands in it (patched into a child by the tests)."""
    os.kill(os.getpid(), signal.SIGINT)
    _close(push, timeout)


def serve(log_endpoint: str | None = None, exit_after: int | None = None, quiet: list[str] | None = None) -> int:
    """Run the program; its exit code."""
    for name in quiet or ():
        logging.getLogger(name).propagate = False
    forward(log_endpoint, level=logging.DEBUG)  # nothing configures logging here: forward() lowers the root's level
    log.info("started %d", os.getpid())
    if exit_after is not None:
        for number in range(exit_after):
            log.info("last %d", number)
        return 0
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    try:
        sock.bind("tcp://127.0.0.1:*")
        print(f"listening on {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
        while True:
            request = json.loads(sock.recv())
            command, *args = request
            if command == "log":
                level, name, message = args
                logging.getLogger(name).log(logging.getLevelName(level), "%s", message)
                sock.send_json(["ok"])
            elif command == "propagate":
                name, flag = args
                logging.getLogger(name).propagate = flag
                sock.send_json(["ok"])
            elif command == "exception":
                try:
                    1 / 0  # noqa: B018
                except ZeroDivisionError:
                    log.exception("%s", args[0])
                sock.send_json(["ok"])
            elif command == "burst":
                count, prefix = args
                for number in range(count):
                    log.info("%s %d", prefix, number)
                sock.send_json(["ok"])
            elif command == "fork-log":
                child = multiprocessing.get_context("fork").Process(target=log.warning, args=(args[0],), name="Worker")
                child.start()
                child.join(10)
                sock.send_json(["ok", child.pid])
            elif command == "exit":
                code, count = args
                sock.send_json(["ok"])
                for number in range(count):
                    log.info("last %d", number)
                return int(code)
            elif command == "die":
                os._exit(args[0])
            else:
                sock.send_json(["error", f"unknown command {command!r}"])
    finally:
        sock.close()
        context.term()


class LogApp(multiprocessing.Process):
    """:func:`serve` as a Process; ``log_endpoint`` for a test that hands the endpoint over itself."""

    def __init__(
        self, log_endpoint: str | None = None, exit_after: int | None = None, quiet: list[str] | None = None
    ) -> None:
        super().__init__(name="LogApp")
        self.log_endpoint = log_endpoint
        self.exit_after = exit_after
        self.quiet = quiet

    def run(self) -> None:
        with contextlib.suppress(KeyboardInterrupt):  # SIGINT: the harness's stop, a clean one
            sys.exit(serve(self.log_endpoint, self.exit_after, self.quiet))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-endpoint")
    parser.add_argument("--exit-after", type=int)
    parser.add_argument("--quiet-logger", action="append", dest="quiet")
    args = parser.parse_args()
    try:
        return serve(args.log_endpoint, args.exit_after, args.quiet)
    except KeyboardInterrupt:  # SIGINT: the harness's stop, a clean one
        return 0


if __name__ == "__main__":
    sys.exit(main())
