"""One home for version shims and for what zmqtest reads of other libraries' private names.

Each function says which private name it uses and why no public one serves, and
falls back to something safe when the name is gone (a new Python or pyzmq): zmqtest
then does a little less (says less, or cleans up less), never fails.
tests/test_compat.py checks each fallback.

Two private pyzmq methods are overridden rather than read, each beside its reason:
``Context._add_socket``/``_rm_socket`` (:class:`zmqtest.contexts.TestContext` keeps
the test's sockets to close them at teardown) and ``Authenticator._send_zap_reply``
(:class:`zmqtest.authenticator.Authenticator` records each ZAP verdict). Where they
are gone, the override is never called: teardown closes fewer sockets, the
authenticator records nothing. tests/test_compat.py fails first if pyzmq drops them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # nothing heavy at import: the plugin imports this module
    import multiprocessing.process

    import zmq

__all__ = [
    "add_note",
    "close_queue",
    "forkserver_preload",
    "multiprocessing_children",
    "popen_class",
    "process_target",
    "put_now",
    "queue_reader",
    "register_socket",
    "require_watcher",
]


def add_note(exc: BaseException, text: str) -> None:
    """Add a PEP 678 note to ``exc`` (Python 3.10 lacks ``add_note``: keep it where pytest and traceback look)."""
    if hasattr(exc, "add_note"):
        exc.add_note(text)
        return
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        try:
            exc.__notes__ = notes  # type: ignore[attr-defined,unused-ignore]
        except AttributeError:  # an exception type with __slots__: the note is lost, the error is not
            return
    notes.append(text)


def multiprocessing_children() -> set[Any]:
    """Return the set of Process objects that multiprocessing's exit handler terminates (daemons) and joins.

    Private (``multiprocessing.process._children``): a fork of the test must drop our
    processes from it, or its exit would SIGTERM the parent's processes under test.
    Fallback: an empty set (nothing to drop).
    """
    import multiprocessing.process

    children = getattr(multiprocessing.process, "_children", None)
    return children if isinstance(children, set) else set()


def popen_class(method: str) -> Any:
    """Return the Popen class of a start method, to start a Process under that method whatever its own context.

    Private (``Process._Popen``): multiprocessing offers no public way to start one
    Process object under another context's method. Fallback: ``None`` (the Process
    then starts under its own context's method).
    """
    import multiprocessing

    return getattr(getattr(multiprocessing.get_context(method), "Process", None), "_Popen", None)


def forkserver_preload() -> list[str]:
    """Return the forkserver's preload list as set now (the public setter replaces it, so read it to extend it).

    Private (``multiprocessing.forkserver._forkserver._preload_modules``). Fallback:
    ``["__main__"]``, multiprocessing's own default.
    """
    from multiprocessing import forkserver

    modules = getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None)
    return list(modules) if isinstance(modules, (list, tuple)) and modules else ["__main__"]


def process_target(process: multiprocessing.process.BaseProcess) -> object:
    """Return the ``target=`` a Process was made with, to name it and to refuse a lambda under spawn.

    Private (``BaseProcess._target``). Fallback: ``None`` (no such check, the class name).
    """
    return getattr(process, "_target", None)


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


def put_now(queue: Any, record: object, payload: bytes | None = None) -> None:
    """Put ``record`` on a multiprocessing queue synchronously: it is in the pipe when this returns.

    ``Queue.put`` hands the record to a feeder thread, which would lose it if the
    process ended abruptly (``os._exit``, SIGKILL) right after, and which makes a test
    process multi-threaded, so that its next fork warns (Python 3.12+). This does what
    the feeder does: take a slot of the size semaphore (``get`` gives it back) and write
    under the write lock. Private (``Queue._writer``, ``_sem``, ``_wlock``). Fallback:
    ``put`` (the feeder thread).
    """
    writer = getattr(queue, "_writer", None)
    slots = getattr(queue, "_sem", None)
    write_lock = getattr(queue, "_wlock", None)
    if writer is None or slots is None or not hasattr(writer, "send_bytes"):
        queue.put(record)
        return
    if payload is None:
        from multiprocessing.reduction import ForkingPickler

        payload = bytes(ForkingPickler.dumps(record))
    slots.acquire()
    try:
        if write_lock is None:  # Windows: the pipe's writes are atomic
            writer.send_bytes(payload)
        else:
            with write_lock:
                writer.send_bytes(payload)
    except BaseException:
        slots.release()
        raise


def queue_reader(queue: Any) -> Any:
    """Return the read end of a multiprocessing queue's pipe, to wait on it with other things (poll).

    Private (``Queue._reader``). Fallback: ``None`` (the caller uses the queue's own ``get`` timeout).
    """
    return getattr(queue, "_reader", None)


def close_queue(queue: Any) -> None:
    """Close a multiprocessing queue in this process: its feeder thread if ``put`` ran one, then both pipe ends.

    ``close()`` leaves the pipe open when no feeder thread ever ran. Private
    (``Queue._reader``, ``_writer``). Fallback: ``close()`` alone (the pipe closes when collected).
    """
    queue.close()
    queue.join_thread()
    for end in ("_reader", "_writer"):
        connection = getattr(queue, end, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()


def require_watcher() -> None:
    """Refuse to start processes where they cannot be watched: say why at once, not with a puzzling error later.

    Why: a bad ``ZMQTEST_WATCHER``, or neither pidfds nor ``os.waitid`` (see :mod:`zmqtest.watchers`).
    """
    __tracebackhide__ = True
    from zmqtest import watchers  # here: this module stays light

    why = watchers.problem()
    if why is not None:
        from zmqtest.errors import ProcessError

        raise ProcessError(f"zmqtest cannot start processes here: {why}")
