"""A REP server for the replay tests: ``python greeter.py [v2]``; it binds a free port and says where.

``["hello", name]`` gets ``["hi", name, {"pid": ..., "at": "tcp://127.0.0.1:PORT", "n": count}]``: a pid and a
port that change from run to run (what a replay normalises). Version 2 answers ``"HI"`` from the second
greeting on: a regression that a replay must show.
"""

from __future__ import annotations

import json
import os
import sys

import zmq


def main() -> None:
    version2 = sys.argv[1:] == ["v2"]
    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    print(f"listening on {endpoint}", flush=True)
    count = 0
    while True:
        _, name = json.loads(sock.recv())
        count += 1
        word = "HI" if version2 and count > 1 else "hi"
        sock.send(json.dumps([word, name, {"pid": os.getpid(), "at": endpoint, "n": count}]).encode())


if __name__ == "__main__":
    main()
