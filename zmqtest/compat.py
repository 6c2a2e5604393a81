"""One home for zmqtest's uses of other libraries' private attributes, each with its reason and its fallback.

The model is pytest's ``_pytest/compat.py``: what zmqtest cannot do through a public API
is done here, once, and ``tests/test_compat.py`` checks the fallback for the day the
private attribute is gone. Nothing else in zmqtest reaches into pyzmq's private names.
"""

from __future__ import annotations

from typing import Any

import zmq

__all__ = ["register_socket"]


def register_socket(context: zmq.Context[Any], sock: zmq.Socket[Any]) -> None:
    """Register ``sock`` with ``context`` as ``Context.socket()`` does, so that ``destroy()`` closes it too.

    Why private: pyzmq registers a socket with its context (``Context._add_socket``) only
    inside ``Context.socket()``; ``TestSocket(context, kind)``, the form users write
    (DESIGN §2), makes the socket directly, and pyzmq has no public way to register a
    socket made so. A :class:`~zmqtest.contexts.TestContext` keeps what is registered,
    so a mimic the test drops is closed at teardown with LINGER 0 and no ResourceWarning.

    Fallback, a context without ``_add_socket``: the socket is not registered; it is
    closed by its own ``close()`` (a :class:`~zmqtest.contexts.SocketFactory` closes
    its sockets) or by the garbage collector, and :func:`~zmqtest.contexts.terminate_context`
    names it if it is still open.
    """
    add = getattr(context, "_add_socket", None)
    if add is not None:
        add(sock)
