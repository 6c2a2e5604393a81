"""The exceptions zmqtest raises, so that users can catch them by kind.

Every message says what was expected, on which socket, and where in the test.
"""

from __future__ import annotations

import zmq

from zmqtest.compat import add_note


class ZmqTestError(Exception):
    """Root of zmqtest's own errors.

    ``context`` holds lines added on the way up (the event being performed and the
    test line that yielded it); they print after the message.
    """

    context: list[str]

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.context = []

    def __str__(self) -> str:
        return "\n".join([self.message, *self.context])


class SocketTimeout(ZmqTestError, zmq.Again):
    """A send or receive on a mimic socket did not complete within its timeout.

    It is a :class:`zmq.Again` (and so a :class:`zmq.ZMQError` with ``errno`` EAGAIN),
    so code written against plain pyzmq keeps catching it.
    """

    def __init__(self, message: str, *, operation: str = "", timeout: float = 0.0) -> None:
        ZmqTestError.__init__(self, message)
        self.errno = zmq.EAGAIN
        self.operation = operation
        self.timeout = timeout

    @property
    def strerror(self) -> str:  # zmq.ZMQError keeps its message here
        return str(self)

    @strerror.setter
    def strerror(self, value: str) -> None:
        self.message = value


class EventError(ZmqTestError, TypeError):
    """A test generator yielded something that is not a valid event, or misused the protocol."""


class MessageError(ZmqTestError, ValueError):
    """A message body could not be encoded, or a received frame could not be decoded."""


def add_context(exc: BaseException, line: str) -> None:
    """Append ``line`` to the message of ``exc``, keeping its type and traceback.

    zmqtest's own errors print their ``context``; pyzmq's errors print ``strerror``;
    anything else gets a PEP 678 note (shown by Python 3.11+ and by pytest).
    """
    if isinstance(exc, ZmqTestError):
        exc.context.append(line)
    elif isinstance(exc, zmq.ZMQError):
        exc.strerror = f"{exc.strerror}\n{line}"
    else:
        add_note(exc, line)


class ProcessError(ZmqTestError):
    """A process under test could not start, ended when it should not have, or would not stop."""


class StartError(ProcessError):
    """A process under test could not be started, or did not become ready in time."""


class ProcessExited(ProcessError):
    """A process under test ended unexpectedly: during a wait, or with an exit status the test did not expect."""


class WaitTimeout(ZmqTestError, TimeoutError):
    """A wait for something other than a send or receive (a condition, a connection) ran out of time.

    It is a :class:`TimeoutError`, so generic code that catches timeouts catches it;
    ``what`` names what was awaited and ``timeout`` is the limit in seconds.
    """

    def __init__(self, message: str, *, what: str = "", timeout: float = 0.0) -> None:
        ZmqTestError.__init__(self, message)
        self.what = what
        self.timeout = timeout


class HandshakeFailed(ZmqTestError):
    """A peer reached a mimic socket but the ZMTP handshake failed (mechanism mismatch, rejected credentials).

    Retrying does not help with these, so a connection wait fails at once instead of at its deadline.
    """


class DeadlineExceeded(ZmqTestError):
    """A test ran past its zmqtest deadline (setting ``deadline``): raised where the test was when it fired.

    An ``Exception``, not an interruption: pytest still runs every other finalizer of the test, and zmqtest's
    teardown still stops every process. The message names the phase and the processes' states at that moment.
    """
