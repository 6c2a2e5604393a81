"""zmqtest: process testing for pyzmq applications.

Start the real process under test, play its peers with mimic sockets, and write the
conversation as a generator test. See README.md for a tour.

The public names load on first use, so that the pytest plugin (which imports this
package) costs nothing in projects that do not use zmqtest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TestSocket": "zmqtest.sockets",
    "make_sock": "zmqtest.sockets",
    "parse_endpoint": "zmqtest.sockets",
    "ProcessTest": "zmqtest.runner",
    "Conversation": "zmqtest.runner",
    "Codec": "zmqtest.codecs",
    "JsonCodec": "zmqtest.codecs",
    "RawCodec": "zmqtest.codecs",
    "ZmqTestError": "zmqtest.errors",
    "SocketTimeout": "zmqtest.errors",
    "EventError": "zmqtest.errors",
    "MessageError": "zmqtest.errors",
    "DEFAULT_TIMEOUT": "zmqtest.settings",
    "default_timeout": "zmqtest.settings",
    "current_timeout": "zmqtest.settings",
}

__all__ = [
    "DEFAULT_TIMEOUT",
    "Codec",
    "Conversation",
    "EventError",
    "JsonCodec",
    "MessageError",
    "ProcessTest",
    "RawCodec",
    "SocketTimeout",
    "TestSocket",
    "ZmqTestError",
    "__version__",
    "current_timeout",
    "default_timeout",
    "make_sock",
    "parse_endpoint",
]

if TYPE_CHECKING:
    from zmqtest.codecs import Codec, JsonCodec, RawCodec
    from zmqtest.errors import EventError, MessageError, SocketTimeout, ZmqTestError
    from zmqtest.runner import Conversation, ProcessTest
    from zmqtest.settings import DEFAULT_TIMEOUT, current_timeout, default_timeout
    from zmqtest.sockets import TestSocket, make_sock, parse_endpoint


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zmqtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
