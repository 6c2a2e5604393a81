"""Unit level: a process class's ``run()`` in a thread of the test process, talking to mimics over real sockets.

nameko's ``worker_factory`` builds a service with its dependencies mocked and no
container. Here the worker is the application's own ``multiprocessing.Process``
subclass, unchanged: :func:`in_process` calls its ``run()`` in a thread of the test
process (no fork: coverage, debuggers and ``mock.patch`` see it), so the test can
replace any function it calls, and its sockets are real ones that mimic
:class:`~zmqtest.sockets.TestSocket` peers reach over loopback or ipc. What would be
"the process" is then the test's business:

- **Its signals.** ``signal.signal`` and ``signal.set_wakeup_fd`` work in the thread,
  on a table of its own (:mod:`zmqtest.threadsignals`), and :meth:`InProcess.signal`
  sends it one: a ``run()`` that stops on SIGINT stops in-process the same way.
- **Its contexts.** ``zmq.Context()`` and ``zmq.Context.instance()``, called in the
  modules given (by default the one that defines the class), make contexts the worker
  keeps track of; a ``run()`` that would not stop is stopped by terminating them (its
  blocking calls raise ETERM), and a context it forgot is terminated after it.
- **Its errors.** An exception out of ``run()`` and a record it logs at ERROR or above
  end every wait of the test at once (the worker is *watched*, as a process under test
  is), are raised by :meth:`InProcess.call`, and at the latest when the ``with`` block
  ends.
- **Its end.** Leaving the block stops it: its ``stop`` action, else SIGINT (or
  SIGTERM) if it handles it; then its contexts are terminated; a thread still running after that is
  reported by name with the line it is stuck at, never waited for without a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import zmq

from zmqtest.codecs import Codec, JsonCodec
from zmqtest.contexts import terminate_context
from zmqtest.errors import ProcessError, add_context
from zmqtest.settings import parse_timeout
from zmqtest.sockets import TestSocket
from zmqtest.threadsignals import SignalTable, registered
from zmqtest.waiting import watched, watching

__all__ = ["STOP_TIMEOUT", "InProcess", "InProcessError", "in_process"]

STOP_TIMEOUT = 5.0
"""Seconds each stop stage (the stop action or SIGINT, then terminating the contexts) waits for ``run()`` to return."""


class InProcessError(ProcessError):
    """A worker run by :func:`in_process` failed, ended while a test waited, or would not stop.

    ``worker`` is the :class:`InProcess`; ``__cause__`` is what it raised or logged, if anything.
    """

    def __init__(self, message: str, worker: InProcess) -> None:
        super().__init__(message)
        self.worker = worker


class InProcess:
    """A process class's ``run()`` running in a thread: see :func:`in_process`, which makes and stops it.

    ``thread`` is the thread; ``contexts`` the zmq contexts it made; ``errors`` every
    failure seen so far (the exception out of ``run()``, the exceptions of records logged
    at ERROR); ``ends_waits`` is False once the test stops it.
    """

    def __init__(self, run: Callable[[], object], name: str, stop: Callable[[], object] | None, timeout: float) -> None:
        self.name = name
        self.errors: list[BaseException] = []
        self.contexts: list[zmq.Context[Any]] = []
        self.ends_waits = True
        self._run, self._stop, self._timeout = run, stop, timeout
        self._pending: list[BaseException] = []
        self._signals = SignalTable()
        self._lock = threading.Lock()
        self._terminations: list[tuple[zmq.Context[Any], threading.Thread]] = []
        self._terminating = False
        self._ended = False
        self._closed = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    # --- the thread ---------------------------------------------------------------------------------------------

    def _main(self) -> None:
        with registered(self._signals):
            try:
                self._run()
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    self._fail(exc)
            except zmq.ZMQError as exc:
                # after the test terminated its contexts, ETERM (or ENOTSUP: a socket asked of one) is how it stops
                if not (self._terminating and exc.errno in (zmq.ETERM, zmq.ENOTSUP)):
                    self._fail(exc)
            except BaseException as exc:  # everything, KeyboardInterrupt too: it goes to the test
                self._fail(exc)
            finally:
                with self._lock:
                    self._ended = True
                self._wake()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if any(exc is seen for seen in self.errors):  # logged, then raised out of run(): one failure
                return
            self.errors.append(exc)
            self._pending.append(exc)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe is readable already
            os.write(self._write_fd, b"!")

    # --- Watched: a failure or the end of run() ends the test's waits ------------------------------------------

    @property
    def sentinel(self) -> int:
        """Readable once ``run()`` has ended or failed (raised, or logged an error)."""
        return self._read_fd

    def describe(self) -> str:
        state = "running" if self.thread.is_alive() else "ended"
        return f"{self.name} (in-process thread, {state})"

    def exit_error(self, waiting_for: str) -> InProcessError:
        """The error for a wait that this worker cut short: what it raised or logged, or its end."""
        failure = self._take()
        if failure is None:
            error = InProcessError(f"{self.describe()}: run() returned while {waiting_for}", self)
        else:
            error = InProcessError(f"{self.describe()} {_what(failure)} while {waiting_for}", self)
            error.__cause__ = failure
        return error

    def _take(self) -> BaseException | None:
        """The oldest failure not yet raised in the test, now raised; the sentinel stays readable only while needed."""
        with self._lock:
            failure = self._pending.pop(0) if self._pending else None
            if not self._pending and not self._ended:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read_fd, 64):
                        pass
        return failure

    def check(self) -> None:
        """Raise the worker's oldest failure not raised in the test yet (the very exception it raised or logged)."""
        __tracebackhide__ = True
        failure = self._take()
        if failure is not None:
            if not isinstance(failure, InProcessError):  # its message says it all already
                add_context(failure, f"  {_what(failure)} in {self.describe()}")
            raise failure

    # --- what a test does with it -------------------------------------------------------------------------------

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the worker (its wake-up fd, its handler); False if it handles none in the thread."""
        return self._signals.deliver(signum)

    def call(
        self,
        sock: TestSocket,
        request: Any,
        *,
        header: Sequence[bytes] = (),
        codec: Codec | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``request`` on the mimic ``sock`` and return the reply's last frame, decoded.

        ``header`` frames go first (``[b""]`` from a DEALER); ``codec`` (default
        ``JsonCodec()``) encodes the request and decodes the reply; ``timeout`` bounds the
        send and the receive (default: the socket's). If the worker raises or logs an
        error before the reply, that very exception is raised instead (an error logged
        without one as an :class:`InProcessError`); so is one that was waiting.
        """
        __tracebackhide__ = True
        if not isinstance(sock, TestSocket):
            raise TypeError(f"call() sends on a mimic TestSocket, got {sock!r:.80}")
        if self._closed:
            raise InProcessError(f"call() on {self.name} after its in_process() block ended", self)
        body = (codec or JsonCodec()).encode(request)
        self.check()
        with contextlib.nullcontext() if self in watched() else watching(self):
            sock.send_multipart([*header, body], timeout=timeout)
            try:
                frames: list[bytes] = sock.recv_multipart(timeout=timeout)  # type: ignore[call-overload]
            except InProcessError as exc:
                cause = exc.__cause__
                if exc.worker is not self or cause is None:
                    raise
                add_context(cause, f"  {_what(cause)} in {self.describe()}, before it replied to {request!r:.80}")
                raise cause from None
        self.check()  # logged just before it replied
        return (codec or JsonCodec()).decode(frames[-1])

    # --- the contexts it makes ----------------------------------------------------------------------------------

    def _context_class(self) -> type[zmq.Context[Any]]:
        worker = self

        class WorkerContext(zmq.Context):  # type: ignore[type-arg]
            """A context the worker made: tracked, and terminated once however many threads ask."""

            _instance = None  # Context.instance() of the worker is its own, not the test's

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                with worker._lock:
                    worker.contexts.append(self)

            def _add_socket(self, socket: Any) -> None:
                super()._add_socket(socket)
                if worker._terminating:  # made while the test stops it: ETERM for it too
                    worker._terminate(self)

            def term(self) -> None:
                worker._terminate(self).join()

        WorkerContext.__name__ = WorkerContext.__qualname__ = "Context"
        return WorkerContext

    def _terminate(self, context: zmq.Context[Any]) -> threading.Thread:
        """Terminate ``context`` in a helper thread, once: a second caller waits for the same termination."""
        with self._lock:
            for known, thread in self._terminations:
                if known is context:
                    return thread
            thread = threading.Thread(target=zmq.Context.term, args=(context,), name=f"{self.name}-term", daemon=True)
            self._terminations.append((context, thread))
            thread.start()
            return thread

    # --- stopping -----------------------------------------------------------------------------------------------

    def _stop_thread(self) -> str | None:
        """Stop the worker within the stages' deadlines; the problem if it still runs."""
        self.ends_waits = False
        tried = []
        if self.thread.is_alive():
            if self._stop is not None:
                try:
                    self._stop()
                    tried.append("its stop action")
                except Exception as exc:  # the worker must still be stopped; the report says what happened
                    tried.append(f"its stop action (which raised {type(exc).__name__}: {exc})")
                self.thread.join(self._timeout)
            elif self.signal(signal.SIGINT) or self.signal(signal.SIGTERM):
                tried.append("SIGINT" if self._signals.handles(signal.SIGINT) else "SIGTERM")
                self.thread.join(self._timeout)
            else:  # it handles neither (yet: the signals wait for it), so its contexts must stop it
                tried.append("SIGINT and SIGTERM (which it does not handle)")
        if self.thread.is_alive():
            with self._lock:
                self._terminating = True  # a context that gets its first socket from now on is terminated then
                in_use = [context for context in self.contexts if _has_sockets(context)]
            for context in in_use:
                self._terminate(context)
            tried.append(f"terminating its {len(in_use)} zmq context(s) in use")
            self.thread.join(self._timeout)
        if self.thread.is_alive():
            return (
                f"{self.name} (in-process thread {self.thread.name!r}) is still running {self._timeout:g} s after "
                f"{', then '.join(tried)}; it is left running as a daemon thread, at {_where(self.thread)}"
            )
        for context, thread in list(self._terminations):
            thread.join(self._timeout)
            if thread.is_alive():
                return f"{self.name}'s zmq context {context!r} did not terminate within {self._timeout:g} s"
        for context in self.contexts:
            if not context.closed:  # run() returned without terminating it: as the end of a process would
                terminate_context(context, self._timeout, by=f"the end of {self.name} (in-process)")
        return None

    def _close(self) -> None:
        self._closed = True
        if not self.thread.is_alive():
            os.close(self._read_fd)
            os.close(self._write_fd)

    def __repr__(self) -> str:
        return f"<InProcess {self.describe()}>"


@contextlib.contextmanager
def in_process(
    target: multiprocessing.Process | Callable[[], object],
    *,
    stop: Callable[[], object] | None = None,
    timeout: float = STOP_TIMEOUT,
    modules: Iterable[types.ModuleType | str] | None = None,
) -> Iterator[InProcess]:
    """Run ``target``'s ``run()`` (a Process not started) or ``target()`` in a thread while the block runs.

    ``stop`` is called at the end of the block to make it return (default: SIGINT if it
    handles SIGINT, else SIGTERM if it handles that; then its contexts are terminated);
    ``timeout`` bounds each stop stage. ``modules`` (modules or their names; default: the
    one that defines the target's class or function) are those whose ``zmq`` (or
    ``Context``) hands the worker its contexts while the block runs; a target whose object
    has a ``context_factory`` (pyzmq's devices: ``in_process(device.run)``) gets them from it.
    The worker's failures end the test's waits and are raised (see the module's doc);
    the first one not raised yet is raised when the block ends, after the stop. An
    exception of the block itself is never masked: the worker's problems are added to it.
    """
    __tracebackhide__ = True
    worker = _make(target, stop, timeout)
    context_class = worker._context_class()
    patched = [_patch(module, context_class) for module in _modules(target, modules)]
    patched.append(_own_factory(target, context_class))
    watcher = _ErrorLog(worker)
    logging.getLogger().addHandler(watcher)
    failed = True
    try:
        worker.thread.start()
        with watching(worker):
            yield worker
        failed = False
    except BaseException as exc:
        problem = _finish(worker, patched, watcher)
        if problem is not None:
            add_context(exc, f"  and then: {problem}")
        raise
    finally:
        if not failed:
            problem = _finish(worker, patched, watcher)
            if problem is not None:
                raise InProcessError(problem, worker) from worker._take()
            worker.check()


def _make(target: Any, stop: Callable[[], object] | None, timeout: float) -> InProcess:
    __tracebackhide__ = True
    seconds = parse_timeout(timeout, "in_process(timeout=...)")
    if stop is not None and not callable(stop):
        raise TypeError(f"in_process(stop=...) takes a function of no arguments, got {stop!r:.80}")
    if isinstance(target, multiprocessing.Process):
        if target.pid is not None:
            raise ValueError(f"in_process() runs a Process that was not started; {target.name} was (pid {target.pid})")
        return InProcess(target.run, target.name, stop, seconds)
    if not callable(target):
        raise TypeError(f"in_process() takes a multiprocessing.Process or a function, got {target!r:.80}")
    return InProcess(target, getattr(target, "__qualname__", repr(target)), stop, seconds)


def _modules(target: Any, modules: Iterable[types.ModuleType | str] | None) -> list[types.ModuleType]:
    __tracebackhide__ = True
    if modules is None:
        owner = type(target) if isinstance(target, multiprocessing.Process) else target
        name = getattr(owner, "__module__", None)
        return [sys.modules[name]] if name in sys.modules else []
    found = []
    for module in modules:
        if isinstance(module, str):
            if module not in sys.modules:
                raise ValueError(f"in_process(modules=...): no module {module!r} is imported")
            module = sys.modules[module]
        if not isinstance(module, types.ModuleType):
            raise TypeError(f"in_process(modules=...) takes modules or their names, got {module!r:.80}")
        found.append(module)
    return found


class _Zmq(types.ModuleType):
    """``zmq`` as the worker's modules see it: pyzmq itself, but ``Context`` makes the worker's contexts."""

    def __init__(self, context_class: type[zmq.Context[Any]]) -> None:
        super().__init__("zmq", zmq.__doc__)
        self.Context = context_class

    def __getattr__(self, name: str) -> Any:
        return getattr(zmq, name)


def _patch(module: types.ModuleType, context_class: type[zmq.Context[Any]]) -> contextlib.ExitStack:
    """Hand ``module``'s ``zmq.Context()`` (or its ``Context()``, imported from zmq) the worker's context class."""
    stack = contextlib.ExitStack()
    if module.__dict__.get("zmq") is zmq:
        stack.enter_context(_replaced(module, "zmq", _Zmq(context_class)))
    if module.__dict__.get("Context") is zmq.Context:
        stack.enter_context(_replaced(module, "Context", context_class))
    return stack


def _own_factory(target: Any, context_class: type[zmq.Context[Any]]) -> contextlib.ExitStack:
    """Hand the worker's context class to a target whose object makes its context through ``context_factory``.

    pyzmq's devices do (``Device.context_factory``, ``Context.instance`` or ``Context``,
    bound when their class was made: patching a module's ``zmq`` does not reach it), and
    so may other classes built the same way. Set on the object for the block only.
    """
    stack = contextlib.ExitStack()
    owner: Any = target if isinstance(target, multiprocessing.Process) else getattr(target, "__self__", None)
    if owner is not None and callable(getattr(owner, "context_factory", None)):
        had_own = "context_factory" in vars(owner)
        old = vars(owner).get("context_factory")
        owner.context_factory = context_class

        def restore() -> None:
            if had_own:
                owner.context_factory = old
            else:
                del owner.context_factory

        stack.callback(restore)
    return stack


@contextlib.contextmanager
def _replaced(module: types.ModuleType, name: str, value: object) -> Iterator[None]:
    old = module.__dict__[name]
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


class _ErrorLog(logging.Handler):
    """Takes the worker thread's records at ERROR and above as its failures."""

    def __init__(self, worker: InProcess) -> None:
        super().__init__(logging.ERROR)
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.worker.thread.ident:
            return
        error = record.exc_info[1] if record.exc_info else None
        if self.worker._terminating and isinstance(error, zmq.ZMQError) and error.errno in (zmq.ETERM, zmq.ENOTSUP):
            return  # it logs the ETERM the test's termination caused: part of the stop, as in _main
        where = f"{record.levelname} (logger {record.name}, {record.filename}:{record.lineno}): {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            failure: BaseException = record.exc_info[1]
            add_context(failure, f"  logged as {where}")
        else:
            failure = InProcessError(f"{self.worker.name} logged {where}", self.worker)
        self.worker._fail(failure)


def _finish(worker: InProcess, patched: list[contextlib.ExitStack], watcher: _ErrorLog) -> str | None:
    """Stop the worker, undo the patches; the problem if it would not stop."""
    try:
        return worker._stop_thread()
    finally:
        logging.getLogger().removeHandler(watcher)
        for stack in patched:
            stack.close()
        worker._close()


def _has_sockets(context: zmq.Context[Any]) -> bool:
    """Whether ``context`` has an open socket: libzmq frees a context whose termination ends, and one with a socket
    cannot end before the socket is closed, so a thread that is still making sockets on it gets ETERM, not a crash."""
    return not context.closed and any(not sock.closed for sock in list(getattr(context, "_sockets", None) or ()))


def _what(failure: BaseException) -> str:
    if isinstance(failure, InProcessError):
        return failure.message.removeprefix(f"{failure.worker.name} ")
    return f"raised {type(failure).__name__}: {failure}".rstrip(": ")


def _where(thread: threading.Thread) -> str:
    """The innermost lines the thread is running, for a report."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "an unknown line"
    lines = traceback.extract_stack(frame)[-3:]
    return " <- ".join(f"{line.filename}:{line.lineno} in {line.name}" for line in reversed(lines))
