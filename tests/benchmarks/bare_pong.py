"""The bare side of P3: pingpong's server as a plain multiprocessing target.

A module of its own that imports only what the server needs, so that a spawn child of
the bare variant loads no more than the application itself.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from pingpong.pong import serve


def serve_and_report(bind: str, report: Connection) -> None:
    """Serve on ``bind``; send the endpoint actually bound through ``report`` once ready."""

    def announce(endpoint: str) -> None:
        report.send(endpoint)
        report.close()

    serve(bind, announce)
