"""``python -m zmqtest``: commands around transcript files.

- ``replay RECORDING --connect NAME=ENDPOINT [--bind NAME=ENDPOINT] ...``: play a recorded conversation's
  mimic side against a program that is already running (:func:`zmqtest.replay.replay`): exit status 0 when
  it answered as recorded, 1 with the diff when not, 2 when the recording cannot be played.
  A tap's recording plays the one tapped peer named (its socket type from the READY the tap saw).
- ``generate RECORDING [OUT.py] [--play NAME] [--command ARG ...] [--ready REGEX]``: write a pytest module
  whose process test has the recorded conversation (:func:`zmqtest.generate.generate`).
- ``diagram TRANSCRIPT.jsonl [OUT.html]``: the sequence diagram of a transcript file as a page.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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
    write = commands.add_parser("generate", help="write a recorded conversation as a pytest module")
    write.add_argument("recording", help="a transcript file written by zmqtest.replay.record()")
    write.add_argument("out", nargs="?", help="the module to write (default: test_<recording>.py beside it)")
    write.add_argument("--play", metavar="NAME", help="of a tap's recording: the peer the test plays (the client)")
    write.add_argument(
        "--command", dest="program", nargs="+", metavar="ARG", help="the command line of the program under test"
    )
    write.add_argument("--ready", metavar="REGEX", help="the line it prints once it serves, with (?P<endpoint>...)")
    diagram = commands.add_parser("diagram", help="the sequence diagram of a transcript file, as an HTML page")
    diagram.add_argument("transcript")
    diagram.add_argument("out", nargs="?")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "diagram":
        from zmqtest.sequencehtml import main as diagram

        return diagram([args.transcript, *([args.out] if args.out else [])])
    if args.command == "generate":
        return _generate(args)
    return _replay(args)


def _generate(args: argparse.Namespace) -> int:
    from zmqtest.generate import write_test
    from zmqtest.tapreplay import TapReplayError
    from zmqtest.transcriptfile import FormatError

    try:
        path = write_test(args.recording, args.out, play=args.play, command=args.program, ready=args.ready)
    except (OSError, FormatError, TapReplayError, ValueError) as problem:
        print(f"zmqtest generate: {problem}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import zmq

    from zmqtest.replay import ReplayError, ReplayMismatch, replay
    from zmqtest.sockets import make_sock
    from zmqtest.tapreplay import TapReplayError, is_tap_recording, played_side, tapped_peers
    from zmqtest.transcriptfile import FormatError, load

    try:
        recorded = load(args.recording)
    except (OSError, FormatError) as problem:
        print(f"zmqtest replay: {problem}", file=sys.stderr)
        return 2
    # the type as recorded; a file without it names it first in the mimic's description ("REQ socket 'client'")
    types = {p.id: p.socket_type or p.description.partition(" ")[0] for p in recorded.participants if p.role == "mimic"}
    options: dict[str, dict[str, Any]] = {}
    topics: dict[str, tuple[bytes, ...]] = {}
    play = None
    if is_tap_recording(recorded):  # one tapped peer's side: its type (and identity, topics) from what the tap saw
        named = [name for name, _ in [*args.connect, *args.bind]]
        if len(named) != 1:
            peers = ", ".join(tapped_peers(recorded))
            print(
                f"zmqtest replay: {args.recording} is a tap's recording: give one of its peers ({peers})",
                file=sys.stderr,
            )
            return 2
        try:
            side = played_side(recorded, named[0], where=args.recording)
        except TapReplayError as problem:
            print(f"zmqtest replay: {problem}", file=sys.stderr)
            return 2
        play, types = side.peer, {side.peer: side.socket_type}
        options[side.peer] = {"routing_id": side.routing_id} if side.routing_id else {}
        topics[side.peer] = side.subscriptions
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
            extra = options.get(name, {})
            sock = make_sock(context, sock_type, name=name, timeout=args.timeout, **extra, **{how: endpoint})
            sockets.append(sock)
            for topic in topics.get(name, ()):
                sock.subscribe(topic)
        try:
            lines = replay(
                args.recording,
                sockets,
                substitutions=[tuple(s) for s in args.sub],
                leave_out=args.leave_out,
                play=play,
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
