"""A secured REQ client, the process under test of tests/test_curve.py, as a real program would be written.

``python curve_client.py --connect ENDPOINT --server-key=KEY --curve CERTIFICATE TEXT``: a CURVE
client of the server whose public key (Z85 text) is ``KEY``, with the key pair of the ``zmq.auth``
secret certificate ``CERTIFICATE``.
``python curve_client.py --connect ENDPOINT --plain USER TEXT``: a PLAIN client, logging in as
``USER`` with the password in the environment variable ``CURVE_APP_PASSWORD``.

Both send ``TEXT``, print ``reply: ANSWER`` and exit 0; until an answer comes they wait (the
test stops them).
"""

from __future__ import annotations

import argparse
import os

import zmq
import zmq.auth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument(
        "--server-key", help="the server's public key; write --server-key=KEY: a Z85 key may start with -"
    )
    parser.add_argument("--curve", metavar="CERTIFICATE")
    parser.add_argument("--plain", metavar="USER")
    parser.add_argument("text")
    args = parser.parse_args()

    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.linger = 0
    if args.curve:
        sock.curve_serverkey = args.server_key.encode()
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(args.curve)
    else:
        sock.plain_username = args.plain.encode()
        sock.plain_password = os.environ["CURVE_APP_PASSWORD"].encode()
    sock.connect(args.connect)
    try:
        sock.send_string(args.text)
        print(f"reply: {sock.recv_string()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        context.term()


if __name__ == "__main__":
    main()
