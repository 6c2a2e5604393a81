"""``python -m pingpong``: serve, ping, kill, or a demo of all three (the default).

- ``serve [--bind EP]``: print ``listening on <endpoint>`` once ready, serve until a
  kill message, SIGINT or SIGTERM, then print ``stopped (<why>)``.
- ``ping --connect EP [--count N]``: print ``ping n -> pong n`` per exchange.
- ``kill --connect EP``: send ``["plzdiekthxbye", null]``.
- ``demo [--count N]`` (also what a bare ``python -m pingpong`` runs, with N = 3):
  start a PongProc on a random tcp port, ping it N times, kill it, report its exit.
  Its output holds no port or pid, so it can be compared with a golden file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import zmq

from pingpong.ping import PingTimeout, exchanges, format_exchange, send_kill
from pingpong.pong import KILL, PongError, serve, start_pong

DEMO_BIND = "tcp://127.0.0.1:*"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds more than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line (a function of its own, so that tests can check it)."""
    parser = argparse.ArgumentParser(
        prog="python -m pingpong", description="A ZeroMQ ping/pong server and client. No command: demo."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the pong server in the foreground")
    serve_cmd.add_argument("--bind", default=DEMO_BIND, metavar="EP", help="endpoint to bind (default: %(default)s)")

    ping_cmd = commands.add_parser("ping", help="ping a server")
    ping_cmd.add_argument("--connect", required=True, metavar="EP", help="the server's endpoint")
    ping_cmd.add_argument("--count", type=_positive_int, default=1, metavar="N", help="pings (default: %(default)s)")
    ping_cmd.add_argument("--timeout", type=_seconds, default=1.0, metavar="S", help="per reply (default: %(default)s)")

    kill_cmd = commands.add_parser("kill", help=f"send {KILL} to a server")
    kill_cmd.add_argument("--connect", required=True, metavar="EP", help="the server's endpoint")
    kill_cmd.add_argument("--timeout", type=_seconds, default=1.0, metavar="S", help="to send (default: %(default)s)")

    demo_cmd = commands.add_parser("demo", help="start a server, ping it, kill it (the default command)")
    demo_cmd.add_argument("--count", type=_positive_int, default=3, metavar="N", help="pings (default: %(default)s)")
    demo_cmd.add_argument("--timeout", type=_seconds, default=5.0, metavar="S", help="per step (default: %(default)s)")
    return parser


def run_serve(bind: str) -> int:
    def announce(endpoint: str) -> None:
        print(f"listening on {endpoint}", flush=True)

    try:
        why = serve(bind, announce)
    except zmq.ZMQError as exc:
        print(f"pingpong serve: cannot serve on {bind}: {exc}", file=sys.stderr)
        return 1
    print(f"stopped ({why})", flush=True)
    return 0


def run_ping(endpoint: str, count: int, timeout: float) -> int:
    """Print each exchange as it happens; exit code 1 unless every reply was a pong."""
    all_pongs = True
    try:
        for request, reply in exchanges(endpoint, count, timeout):
            print(format_exchange(request, reply), flush=True)
            all_pongs = all_pongs and isinstance(reply, list) and reply[:1] == ["pong"]
    except PingTimeout as exc:
        print(f"pingpong ping: {exc}", file=sys.stderr)
        return 1
    return 0 if all_pongs else 1


def run_kill(endpoint: str, timeout: float) -> int:
    try:
        send_kill(endpoint, timeout)
    except PingTimeout as exc:
        print(f"pingpong kill: {exc}", file=sys.stderr)
        return 1
    print(f"sent {KILL}")
    return 0


def run_demo(count: int, timeout: float) -> int:
    """Server and client in one go; the output is deterministic (no ports, no pids)."""
    try:
        proc, endpoint = start_pong(DEMO_BIND, timeout)
    except PongError as exc:
        print(f"pingpong demo: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"started PongProc on {DEMO_BIND} (port reported back)")
        code = run_ping(endpoint, count, timeout)
        send_kill(endpoint, timeout)
        print(f"sent {KILL}")
        proc.join(timeout)
        if proc.exitcode is None:
            print(f"pingpong demo: PongProc still running {timeout:g} s after {KILL}", file=sys.stderr)
            return 1
        print(f"PongProc exited with code {proc.exitcode}")
        return code if proc.exitcode == 0 else 1
    finally:
        proc.stop(timeout)  # does nothing if it has already ended


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list or ["demo"])
    try:
        if args.command == "serve":
            return run_serve(args.bind)
        if args.command == "ping":
            return run_ping(args.connect, args.count, args.timeout)
        if args.command == "kill":
            return run_kill(args.connect, args.timeout)
        return run_demo(args.count, args.timeout)
    except KeyboardInterrupt:  # Ctrl-C in a client (the server handles its own)
        return 130


if __name__ == "__main__":
    sys.exit(main())
