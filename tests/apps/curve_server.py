"""A secured REP server, the process under test of tests/test_curve.py, as a real program would be written.

``python curve_server.py --curve CERTIFICATE --clients DIRECTORY [--domain DOMAIN]``: a CURVE
server with the key pair of the ``zmq.auth`` secret certificate ``CERTIFICATE``, letting in only
the clients whose public certificates (``*.key``) are in ``DIRECTORY``.
``python curve_server.py --plain USER``: a PLAIN server letting ``USER`` in with the password in
the environment variable ``CURVE_APP_PASSWORD``.

Both answer ``TEXT`` with ``served TEXT``, print ``listening on ENDPOINT`` once bound (to a free
port of 127.0.0.1), and end cleanly on SIGINT. pyzmq's own authenticator checks the clients.
"""

from __future__ import annotations

import argparse
import os

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--curve", metavar="CERTIFICATE")
    parser.add_argument("--clients", metavar="DIRECTORY")
    parser.add_argument("--domain", default="")
    parser.add_argument("--plain", metavar="USER")
    args = parser.parse_args()

    context = zmq.Context()
    auth = ThreadAuthenticator(context)
    auth.start()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    if args.domain:
        sock.zap_domain = args.domain.encode()
    domain = args.domain or "*"
    if args.curve:
        auth.configure_curve(domain=domain, location=args.clients)
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(args.curve)
        sock.curve_server = True
    else:
        auth.configure_plain(domain=domain, passwords={args.plain: os.environ["CURVE_APP_PASSWORD"]})
        sock.plain_server = True
    sock.bind("tcp://127.0.0.1:*")
    print(f"listening on {sock.last_endpoint.decode()}", flush=True)
    try:
        while True:
            request = sock.recv_string()
            sock.send_string(f"served {request}")
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        auth.stop()
        context.term()


if __name__ == "__main__":
    main()
