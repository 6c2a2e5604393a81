"""``python -m zmqtest``: commands around transcript files.

- ``replay RECORDING --connect NAME=ENDPOINT [--bind NAME=ENDPOINT] ...``: play a recorded conversation's
  mimic side against a program that is already running (:func:`zmqtest.replay.replay`): exit status 0 when
  it answered as recorded, 1 with the diff when not, 2 when the recording cannot be played.
- ``diagram TRANSCRIPT.jsonl [OUT.html]``: the sequence diagram of a transcript file as a page.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _named(text: str) -> tuple[str, str]:
    name, equals, endpoint = text.partition("=")
    if not equals or not name or not endpoint:
        raise argparse.ArgumentTypeError(f"expected NAME=ENDPOINT (a recorded mimic's name and where), got {text!r}")
    return name, endpoint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zmqtest", description="Commands around zmqtest transcript files.")
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("replay", help="replay a recorded conversation against a running program")
    play.add_argument("recording", help="a transcript file written by zmqtest.replay.record()")
    play.add_argument(
        "--connect", type=_named, action="append", default=[], metavar="NAME=ENDPOINT", help="a mimic that connects"
    )
    play.add_argument(
        "--bind", type=_named, action="append", default=[], metavar="NAME=ENDPOINT", help="one that binds"
    )
    play.add_argument("--timeout", type=float, default=5.0, help="seconds each receive waits (default: 5)")
    play.add_argument(
        "--sub",
        nargs=2,
        action="append",
        default=[],
        metavar=("REGEX", "REPLACEMENT"),
        help="a normalising rule of your own, after the built-ins (ports, pids, times, paths)",
    )
    play.add_argument("--leave-out", action="append", default=[], metavar="NAME", help="a recorded mimic not to play")
    diagram = commands.add_parser("diagram", help="the sequence diagram of a transcript file, as an HTML page")
    diagram.add_argument("transcript")
    diagram.add_argument("out", nargs="?")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "diagram":
        from zmqtest.sequencehtml import main as diagram

        return diagram([args.transcript, *([args.out] if args.out else [])])
    return _replay(args)


def _replay(args: argparse.Namespace) -> int:
    import zmq

    from zmqtest.replay import ReplayError, ReplayMismatch, replay
    from zmqtest.sockets import make_sock
    from zmqtest.transcriptfile import FormatError, load

    try:
        recorded = load(args.recording)
    except (OSError, FormatError) as problem:
        print(f"zmqtest replay: {problem}", file=sys.stderr)
        return 2
    # the type as recorded; a file without it names it first in the mimic's description ("REQ socket 'client'")
    types = {p.id: p.socket_type or p.description.partition(" ")[0] for p in recorded.participants if p.role == "mimic"}
    context = zmq.Context()
    sockets = []
    try:
        for how, (name, endpoint) in [*(("connect", pair) for pair in args.connect), *(("bind", p) for p in args.bind)]:
            kind = types.get(name)
            if kind not in zmq.SocketType.__members__:
                known = ", ".join(f"{n} ({t})" for n, t in types.items()) or "none"
                print(f"zmqtest replay: {args.recording} has no mimic {name!r}; its mimics: {known}", file=sys.stderr)
                return 2
            sock_type = zmq.SocketType[str(kind)]
            sockets.append(make_sock(context, sock_type, name=name, timeout=args.timeout, **{how: endpoint}))
        try:
            lines = replay(
                args.recording, sockets, substitutions=[tuple(s) for s in args.sub], leave_out=args.leave_out
            )
        except ReplayMismatch as mismatch:
            print(mismatch)
            return 1
        except ReplayError as problem:
            print(f"zmqtest replay: {problem}", file=sys.stderr)
            return 2
        print("\n".join(lines))
        print(f"replay of {args.recording}: {len(lines)} messages, as recorded")
        return 0
    finally:
        for sock in sockets:
            sock.close(linger=0)
        context.term()


if __name__ == "__main__":
    sys.exit(main())
