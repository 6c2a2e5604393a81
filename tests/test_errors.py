"""The exception types users catch, and how context lines are added to any exception."""

from __future__ import annotations

import pickle
import sys
import traceback

import pytest
import zmq

from zmqtest import EventError, MessageError, SocketTimeout, ZmqTestError
from zmqtest.errors import add_context


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (SocketTimeout, ZmqTestError),
        (SocketTimeout, zmq.Again),
        (SocketTimeout, zmq.ZMQError),
        (EventError, ZmqTestError),
        (EventError, TypeError),
        (MessageError, ZmqTestError),
        (MessageError, ValueError),
        (ZmqTestError, Exception),
    ],
    ids=lambda c: c.__name__,
)
def test_hierarchy(cls: type[BaseException], base: type[BaseException]) -> None:
    assert issubclass(cls, base)


@pytest.mark.parametrize(
    ("cls", "not_base"),
    [(EventError, ValueError), (MessageError, TypeError), (ZmqTestError, zmq.ZMQError), (MessageError, zmq.ZMQError)],
    ids=lambda c: c.__name__,
)
def test_hierarchy_is_not_too_wide(cls: type[BaseException], not_base: type[BaseException]) -> None:
    assert not issubclass(cls, not_base)


def _timeout() -> SocketTimeout:
    return SocketTimeout("recv on PULL socket 'sink': no message within 0.5 s", operation="recv", timeout=0.5)


def test_socket_timeout_attributes() -> None:
    exc = _timeout()
    assert exc.errno == zmq.EAGAIN
    assert exc.operation == "recv"
    assert exc.timeout == 0.5
    assert exc.message == "recv on PULL socket 'sink': no message within 0.5 s"
    assert str(exc) == exc.message
    assert exc.strerror == exc.message
    assert exc.context == []


@pytest.mark.parametrize("handler", [zmq.Again, zmq.ZMQError], ids=lambda c: c.__name__)
def test_socket_timeout_is_caught_by_pyzmq_handlers(handler: type[zmq.ZMQError]) -> None:
    def code_written_for_pyzmq() -> str:
        try:
            raise _timeout()
        except handler as exc:
            return f"{exc.errno}: {exc}"

    assert code_written_for_pyzmq() == f"{zmq.EAGAIN}: recv on PULL socket 'sink': no message within 0.5 s"


def test_socket_timeout_strerror_setter_sets_the_message() -> None:
    exc = _timeout()
    exc.strerror = "changed"
    assert str(exc) == "changed"
    assert exc.message == "changed"


def test_socket_timeout_repr_names_the_type() -> None:
    assert repr(_timeout()).startswith("SocketTimeout(")


def test_add_context_to_a_zmqtest_error() -> None:
    exc = MessageError("body is not JSON-serialisable: body['ts']")
    add_context(exc, "  in event ('send', sock, [], {...})")
    add_context(exc, "  at test_x.py:12")
    assert str(exc).splitlines() == [
        "body is not JSON-serialisable: body['ts']",
        "  in event ('send', sock, [], {...})",
        "  at test_x.py:12",
    ]
    assert exc.message == "body is not JSON-serialisable: body['ts']"
    assert exc.args == ("body is not JSON-serialisable: body['ts']",)
    assert not getattr(exc, "__notes__", None)


def test_add_context_to_a_socket_timeout() -> None:
    exc = _timeout()
    add_context(exc, "  at test_x.py:3")
    assert str(exc) == "recv on PULL socket 'sink': no message within 0.5 s\n  at test_x.py:3"
    assert exc.strerror == str(exc)
    assert exc.errno == zmq.EAGAIN


@pytest.mark.parametrize("errno", [zmq.EFSM, zmq.EHOSTUNREACH, zmq.EAGAIN])
def test_add_context_to_a_zmq_error(errno: int) -> None:
    exc = zmq.Again() if errno == zmq.EAGAIN else zmq.ZMQError(errno)
    original = str(exc)
    add_context(exc, "  in send on REP socket 'server'")
    assert type(exc) is (zmq.Again if errno == zmq.EAGAIN else zmq.ZMQError)
    assert exc.errno == errno
    assert str(exc) == f"{original}\n  in send on REP socket 'server'"
    assert exc.strerror == str(exc)


@pytest.mark.parametrize("exc", [ValueError("bad"), AssertionError("assert 1 == 2"), zmq.ZMQBindError("no port")])
def test_add_context_to_other_exceptions_uses_notes(exc: BaseException) -> None:
    original = str(exc)
    add_context(exc, "  first")
    add_context(exc, "  second")
    assert str(exc) == original
    assert exc.__notes__ == ["  first", "  second"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's traceback module does not print notes (pytest does)")
def test_notes_are_printed_with_the_traceback() -> None:
    exc = ValueError("bad")
    add_context(exc, "  first")
    add_context(exc, "  second")
    assert "".join(traceback.format_exception(exc)).endswith("ValueError: bad\n  first\n  second\n")


def test_pickle_round_trip_of_a_socket_timeout() -> None:
    exc = _timeout()
    add_context(exc, "  at test_x.py:3")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is SocketTimeout
    assert isinstance(back, zmq.Again)
    assert str(back) == str(exc)
    assert (back.message, back.context) == (exc.message, ["  at test_x.py:3"])
    assert (back.operation, back.timeout, back.errno) == ("recv", 0.5, zmq.EAGAIN)


@pytest.mark.parametrize("cls", [ZmqTestError, EventError, MessageError])
def test_pickle_round_trip_of_other_errors(cls: type[ZmqTestError]) -> None:
    exc = cls("what went wrong")
    add_context(exc, "  where")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == "what went wrong\n  where"
