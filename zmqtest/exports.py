"""Where each public name of zmqtest lives: the package (``zmqtest/__init__.py``) loads it from there on first use.

Apart from the package so that importing it (the pytest plugin does, in every pytest run) loads no more than its
version: pytest parses and compiles each module of a plugin's distribution at every start where it cannot use a
cached copy (``PYTHONDONTWRITEBYTECODE``). Type checkers read the same names from ``zmqtest/__init__.pyi``
(tests/test_exports.py checks that the two agree).

PYTEST_DONT_REWRITE: it has no asserts, so pytest's assertion rewriter need not walk it.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["EXPORTS", "NAMES", "load"]

EXPORTS: dict[str, str] = {
    "TestSocket": "zmqtest.sockets",
    "make_sock": "zmqtest.sockets",
    "parse_endpoint": "zmqtest.endpoints",
    "ProcessTest": "zmqtest.runner",
    "Conversation": "zmqtest.runner",
    "Codec": "zmqtest.codecs",
    "JsonCodec": "zmqtest.codecs",
    "RawCodec": "zmqtest.codecs",
    "ZmqTestError": "zmqtest.errors",
    "SocketTimeout": "zmqtest.errors",
    "EventError": "zmqtest.errors",
    "MessageError": "zmqtest.errors",
    "ProcessError": "zmqtest.errors",
    "StartError": "zmqtest.errors",
    "ProcessExited": "zmqtest.errors",
    "WaitTimeout": "zmqtest.errors",
    "HandshakeFailed": "zmqtest.errors",
    "DeadlineExceeded": "zmqtest.errors",
    "DEFAULT_TIMEOUT": "zmqtest.settings",
    "Settings": "zmqtest.settings",
    "current_timeout": "zmqtest.settings",
    "default_timeout": "zmqtest.settings",
    "ProcessManager": "zmqtest.processes",
    "ManagedProcess": "zmqtest.managed",
    "Readiness": "zmqtest.readiness",
    "OutputMatches": "zmqtest.readiness",
    "CheckPasses": "zmqtest.readiness",
    "PeerConnects": "zmqtest.readiness",
    "ProcMock": "zmqtest.procmock",
    "EndpointFactory": "zmqtest.endpoints",
    "SocketFactory": "zmqtest.contexts",
    "TestContext": "zmqtest.contexts",
    "terminate_context": "zmqtest.contexts",
    "ContextNotTerminated": "zmqtest.contexts",
    "ConnectionWaiter": "zmqtest.connections",
    "wait_for_message": "zmqtest.waiting",
    "wait_until": "zmqtest.waiting",
    "watching": "zmqtest.waiting",
    "connect_and_wait": "zmqtest.barriers",
    "wait_for_subscriber": "zmqtest.barriers",
    "wait_until_receiving": "zmqtest.barriers",
    "LogCollector": "zmqtest.logcollector",
    "LogEntry": "zmqtest.logcollector",
    "GoldenFiles": "zmqtest.golden",
    "GoldenMismatch": "zmqtest.golden",
    "GoldenMissing": "zmqtest.golden",
    "Normaliser": "zmqtest.golden",
    "RunResult": "zmqtest.commands",
    "RunTimeout": "zmqtest.commands",
    "Authenticator": "zmqtest.authenticator",
    "CurveClient": "zmqtest.security",
    "CurveKeys": "zmqtest.security",
    "CurveServer": "zmqtest.security",
    "PlainClient": "zmqtest.security",
    "PlainServer": "zmqtest.security",
    "Security": "zmqtest.security",
    "ZapRequest": "zmqtest.authenticator",
    "Endpoint": "zmqtest.endpoints",
    "MsgpackCodec": "zmqtest.codecs",
    "Event": "zmqtest.events",
    "UnexpectedMessage": "zmqtest.events",
    "event": "zmqtest.events",
    "expect_nothing": "zmqtest.events",
    "log": "zmqtest.events",
    "recv": "zmqtest.events",
    "send": "zmqtest.events",
    "InProcess": "zmqtest.inprocess",
    "InProcessError": "zmqtest.inprocess",
    "in_process": "zmqtest.inprocess",
    "AsyncTestSocket": "zmqtest.asyncio",
    "AsyncTestContext": "zmqtest.asyncio",
    "Tap": "zmqtest.tap",
    "ZmtpParser": "zmqtest.zmtp",
}
"""Public name: the module that defines it."""

NAMES = [*EXPORTS, "__version__"]
"""``zmqtest.__all__``."""


def load(name: str) -> object:
    """The public name ``name`` (``__all__`` too), kept on the package once loaded."""
    if name == "__all__":
        value: object = list(NAMES)
    else:
        module = EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'zmqtest' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
    setattr(sys.modules["zmqtest"], name, value)
    return value
