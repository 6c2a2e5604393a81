"""Two programs that talk, for recording through a tap and replaying one side (tests/test_replay_tap.py).

- ``python chat.py serve [--type REP|ROUTER] [--v2]``: binds a free port, prints ``listening on EP``, and
  answers each ``["hello", name]`` with ``["hi", name, n]`` (``n``: the greetings so far) until killed.
  ``--v2`` answers ``"HI"`` from the second greeting on: a regression a replay must show.
- ``python chat.py ask EP [--type REQ|DEALER] NAME...``: connects, greets each name in turn, prints each
  reply, and exits 0 (1 when a reply does not come within 5 s).
"""

from __future__ import annotations

import argparse
import json
import sys

import zmq


def serve(kind: str, version2: bool) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.SocketType[kind])
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    print(f"listening on {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
    count = 0
    while True:
        frames = sock.recv_multipart()
        envelope, body = frames[:-1], frames[-1]  # a ROUTER's: the routing id (and a REQ's empty delimiter)
        _, name = json.loads(body)
        count += 1
        word = "HI" if version2 and count > 1 else "hi"
        sock.send_multipart([*envelope, json.dumps([word, name, count]).encode()])


def ask(endpoint: str, kind: str, names: list[str]) -> int:
    context = zmq.Context()
    sock = context.socket(zmq.SocketType[kind])
    sock.linger = 0
    sock.rcvtimeo = 5000
    sock.connect(endpoint)
    try:
        for name in names:
            sock.send(json.dumps(["hello", name]).encode())
            try:
                print(sock.recv().decode(), flush=True)
            except zmq.Again:
                print(f"no reply to {name} within 5 s", file=sys.stderr)
                return 1
        return 0
    finally:
        sock.close()
        context.term()


def main() -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--type", default="REP", choices=["REP", "ROUTER"])
    server.add_argument("--v2", action="store_true")
    client = commands.add_parser("ask")
    client.add_argument("endpoint")
    client.add_argument("--type", default="REQ", choices=["REQ", "DEALER"])
    client.add_argument("names", nargs="+")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.type, args.v2)
        return 0
    return ask(args.endpoint, args.type, args.names)


if __name__ == "__main__":
    sys.exit(main())
