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

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncTestContext",
    "AsyncTestSocket",
    "Authenticator",
    "CheckPasses",
    "Codec",
    "ConnectionWaiter",
    "ContextNotTerminated",
    "Conversation",
    "CurveClient",
    "CurveKeys",
    "CurveServer",
    "DeadlineExceeded",
    "Endpoint",
    "EndpointFactory",
    "Event",
    "EventError",
    "GoldenFiles",
    "GoldenMismatch",
    "GoldenMissing",
    "HandshakeFailed",
    "InProcess",
    "InProcessError",
    "JsonCodec",
    "LogCollector",
    "LogEntry",
    "ManagedProcess",
    "MessageError",
    "MsgpackCodec",
    "Normaliser",
    "OutputMatches",
    "PeerConnects",
    "PlainClient",
    "PlainServer",
    "ProcMock",
    "ProcessError",
    "ProcessExited",
    "ProcessManager",
    "ProcessTest",
    "RawCodec",
    "Readiness",
    "RunResult",
    "RunTimeout",
    "Security",
    "Settings",
    "SocketFactory",
    "SocketTimeout",
    "StartError",
    "Tap",
    "TestContext",
    "TestSocket",
    "UnexpectedMessage",
    "WaitTimeout",
    "ZapRequest",
    "ZmqTestError",
    "ZmtpParser",
    "__version__",
    "connect_and_wait",
    "current_timeout",
    "default_timeout",
    "event",
    "expect_nothing",
    "in_process",
    "log",
    "make_sock",
    "parse_endpoint",
    "recv",
    "send",
    "terminate_context",
    "wait_for_message",
    "wait_for_subscriber",
    "wait_until",
    "wait_until_receiving",
    "watching",
]

if TYPE_CHECKING:
    from zmqtest.asyncio import AsyncTestContext, AsyncTestSocket
    from zmqtest.authenticator import Authenticator, ZapRequest
    from zmqtest.barriers import connect_and_wait, wait_for_subscriber, wait_until_receiving
    from zmqtest.codecs import Codec, JsonCodec, MsgpackCodec, RawCodec
    from zmqtest.commands import RunResult, RunTimeout
    from zmqtest.connections import ConnectionWaiter
    from zmqtest.contexts import ContextNotTerminated, SocketFactory, TestContext, terminate_context
    from zmqtest.endpoints import Endpoint, EndpointFactory, parse_endpoint
    from zmqtest.errors import (
        DeadlineExceeded,
        EventError,
        HandshakeFailed,
        MessageError,
        ProcessError,
        ProcessExited,
        SocketTimeout,
        StartError,
        WaitTimeout,
        ZmqTestError,
    )
    from zmqtest.events import Event, UnexpectedMessage, event, expect_nothing, log, recv, send
    from zmqtest.golden import GoldenFiles, GoldenMismatch, GoldenMissing, Normaliser
    from zmqtest.inprocess import InProcess, InProcessError, in_process
    from zmqtest.logcollector import LogCollector, LogEntry
    from zmqtest.managed import ManagedProcess
    from zmqtest.processes import ProcessManager
    from zmqtest.procmock import ProcMock
    from zmqtest.readiness import CheckPasses, OutputMatches, PeerConnects, Readiness
    from zmqtest.runner import Conversation, ProcessTest
    from zmqtest.security import CurveClient, CurveKeys, CurveServer, PlainClient, PlainServer, Security
    from zmqtest.settings import DEFAULT_TIMEOUT, Settings, current_timeout, default_timeout
    from zmqtest.sockets import TestSocket, make_sock
    from zmqtest.tap import Tap
    from zmqtest.waiting import wait_for_message, wait_until, watching
    from zmqtest.zmtp import ZmtpParser


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zmqtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
