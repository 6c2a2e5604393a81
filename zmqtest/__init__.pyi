"""zmqtest's public names for type checkers: the package (``__init__.py``) loads each on first use."""

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

__version__: str

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
