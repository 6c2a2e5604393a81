"""zmqtest.compat: each private name it reads works today, and its fallback is safe when the name is gone."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
from multiprocessing import forkserver

import pytest
import zmq
from zmq.auth.base import Authenticator

import zmqtest.sockets
from zmqtest import TestSocket, compat
from zmqtest.compat import register_socket
from zmqtest.contexts import ContextNotTerminated, TestContext, terminate_context
from zmqtest.errors import add_context


def test_add_note_keeps_the_note_where_pytest_looks() -> None:
    error = ValueError("boom")
    compat.add_note(error, "more")
    assert error.__notes__ == ["more"]


class NoNotes(Exception):
    """An exception as Python 3.10 has them: no add_note."""

    add_note = property()  # type: ignore[assignment]  # hasattr() is False


def test_add_note_without_add_note_fills_notes_by_hand() -> None:
    error = NoNotes("boom")
    assert not hasattr(error, "add_note")
    compat.add_note(error, "one")
    add_context(error, "two")
    assert error.__notes__ == ["one", "two"]


def test_multiprocessing_children_is_multiprocessings_own_set_and_falls_back_to_an_empty_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert compat.multiprocessing_children() is multiprocessing.process._children  # type: ignore[attr-defined]
    monkeypatch.delattr(multiprocessing.process, "_children")
    assert compat.multiprocessing_children() == set()


def test_popen_class_is_the_start_methods_own_and_falls_back_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    context = multiprocessing.get_context("spawn")
    assert compat.popen_class("spawn") is context.Process._Popen  # type: ignore[attr-defined]
    monkeypatch.setattr(context, "Process", type("Process", (), {}))
    assert compat.popen_class("spawn") is None


def test_forkserver_preload_reads_the_list_and_falls_back_to_main(monkeypatch: pytest.MonkeyPatch) -> None:
    server = forkserver._forkserver  # type: ignore[attr-defined]
    monkeypatch.setattr(server, "_preload_modules", ["__main__", "json"])
    assert compat.forkserver_preload() == ["__main__", "json"]
    monkeypatch.delattr(server, "_preload_modules")
    assert compat.forkserver_preload() == ["__main__"]


def test_process_target_reads_the_target_and_falls_back_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    process = multiprocessing.get_context("fork").Process(target=print)
    assert compat.process_target(process) is print
    monkeypatch.delattr(process, "_target")
    assert compat.process_target(process) is None


@pytest.mark.parametrize(
    ("owner", "name"),
    [(zmq.Context, "_add_socket"), (zmq.Context, "_rm_socket"), (Authenticator, "_send_zap_reply")],
)
def test_the_private_pyzmq_methods_zmqtest_overrides_still_exist(owner: type, name: str) -> None:
    """If pyzmq drops one, the override is never called: this fails first, so that it is noticed."""
    assert callable(getattr(owner, name, None))


def test_a_test_socket_is_registered_with_its_context_so_destroy_closes_it() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = TestSocket(context, zmq.PAIR)
    context.destroy(linger=0)
    assert sock.closed


def test_a_test_context_keeps_a_test_socket_and_closes_it_at_termination() -> None:
    context = TestContext()
    sock = TestSocket(context, zmq.PAIR, name="dropped")
    terminate_context(context)
    assert sock.closed


def test_register_socket_without_add_socket_does_nothing() -> None:
    class Bare:  # a context of a pyzmq without Context._add_socket, as far as register_socket can tell
        pass

    register_socket(Bare(), None)  # type: ignore[arg-type]


def test_an_unregistered_test_socket_works_and_termination_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the fallback leaves: the socket made, the context none the wiser (pyzmq itself still needs _add_socket
    # for its own sockets, so the attribute cannot simply be deleted here).
    monkeypatch.setattr(zmqtest.sockets, "register_socket", lambda context, sock: register_socket(object(), sock))
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = TestSocket(context, zmq.PAIR, name="server")
    client = TestSocket(context, zmq.PAIR, name="client")
    try:
        server.bind(("", 0))
        client.connect(server.endpoint)
        client.send(b"hello", timeout=5)
        assert server.recv(timeout=5) == b"hello"
        with pytest.raises(ContextNotTerminated, match=r"PAIR socket 'client' connected to tcp://127\.0\.0\.1:"):
            terminate_context(context, timeout=0.1)  # it knows neither socket: they stay open, and are named
    finally:
        server.close()
        client.close()
    terminate_context(context)  # the termination under way ends once they are closed


def test_put_now_writes_through_the_pipe_and_falls_back_to_put() -> None:
    context = multiprocessing.get_context("fork")
    direct = context.Queue()
    compat.put_now(direct, ("hello", 1))
    assert compat.queue_reader(direct) is not None
    assert direct.get(timeout=5) == ("hello", 1)
    assert direct._thread is None  # type: ignore[attr-defined]  # no feeder thread was needed
    compat.close_queue(direct)

    class PutOnly:
        def __init__(self) -> None:
            self.items: list[object] = []

        def put(self, item: object) -> None:
            self.items.append(item)

    bare = PutOnly()
    compat.put_now(bare, "x")
    assert bare.items == ["x"]
    assert compat.queue_reader(bare) is None
