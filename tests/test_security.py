"""Security defaults, each proven: what a test harness must not open, leave behind or execute.

- Mimics listen on loopback only: binding one on all interfaces or on another machine-facing address is
  refused with an error that says why and how to opt in (``allow_external=True``); while a run of real
  test files goes on, the pytest process has no listener beyond loopback.
- ipc endpoints live in a private directory (0700, ours) that is gone after the test, passed or failed;
  a run that uses ipc, processes and golden files leaves nothing in the temporary directory.
- Nothing unpickles what a peer sent unless the test asks for it (``recv_pyobj``): a frame that would run
  code when unpickled arrives as bytes (or as an undecodable frame) and runs nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import psutil
import pytest
import zmq
from helpers import port_of

from zmqtest import MessageError, ProcessTest, RawCodec, SocketTimeout, TestSocket

ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_DEADLINE = 120.0
"""Seconds an inner pytest run may take before it is killed."""
LOOK_INTERVAL = 0.01
"""Seconds between two looks at the listeners of an inner pytest run (the wait ends early when the run does)."""
SUITE = ("tests/test_sockets.py", "tests/test_runner.py", "examples/pingpong/tests/test_pingpong_process.py")
"""Real test files of this repository, run while their pytest process's listeners are watched."""

SocketFactory = Callable[..., TestSocket]


def own_listeners() -> set[tuple[str, int]]:
    """The (address, port) of every tcp listener of this process."""
    return {
        (conn.laddr.ip, conn.laddr.port)
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _machine_facing() -> list[Any]:
    """This machine's non-loopback interface names and addresses: a mimic must not bind them by default."""
    found: list[Any] = []
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        inet = [a.address for a in addresses if a.family == socket.AF_INET and not is_loopback(a.address)]
        if inet:
            found += [
                pytest.param((name, 0), None, id=f"interface-{name}"),
                pytest.param((inet[0], 0), f"{inet[0]} is not a loopback address", id=f"{name}-address"),
            ]
    return found[:2]


# --- mimics bind on loopback ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        ("", 0),
        (None, "*"),
        ("127.0.0.1", 0),
        ("localhost", 0),
        ("lo", 0),
        "tcp://:*",
        "tcp://127.0.0.1:*",
        "tcp://127.0.0.2:*",
        pytest.param(
            ("::1", 0), marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here"), id="::1"
        ),
    ],
    ids=repr,
)
def test_a_mimic_binds_on_loopback(zmq_socket_factory: SocketFactory, spec: Any) -> None:
    before = own_listeners()
    sock = zmq_socket_factory(zmq.PULL, bind=spec)
    added = own_listeners() - before
    assert [port for _, port in added] == [port_of(sock.endpoint)]
    assert all(is_loopback(address) for address, _ in added), added


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (("*", 0), "'*' listens on all interfaces"),
        ("tcp://*:0", "'*' listens on all interfaces"),
        ("tcp://*:*", "'*' listens on all interfaces"),
        (("0.0.0.0", 0), "0.0.0.0 listens on all interfaces"),
        (("::", 0), ":: listens on all interfaces"),
        (("192.0.2.1", 0), "192.0.2.1 is not a loopback address"),
        (("example.org", 0), "'example.org' is an interface or host name other than lo, lo0, localhost"),
        ("ws://*:*", "'*' listens on all interfaces"),
        ("epgm://lo;239.192.1.1:7", "the epgm transport reaches other machines"),
        *_machine_facing(),
    ],
    ids=repr,
)
def test_binding_beyond_loopback_is_refused_saying_why_and_how_to_allow_it(
    zmq_socket_factory: SocketFactory, spec: Any, reason: str | None
) -> None:
    before = own_listeners()
    with pytest.raises(ValueError, match="refused") as excinfo:
        zmq_socket_factory(zmq.PULL, bind=spec, name="sink")
    message = str(excinfo.value)
    assert "on PULL socket 'sink' (not bound or connected) refused: " in message
    if reason is not None:
        assert reason in message
    assert "so other machines could reach this mimic; bind it on loopback" in message
    assert message.endswith("or make it with allow_external=True")
    assert own_listeners() == before


def test_allow_external_hands_the_address_to_libzmq(zmq_socket_factory: SocketFactory) -> None:
    """Proven without listening beyond loopback: the kernel refuses ``*`` on a port that listens on loopback already."""
    taken = zmq_socket_factory(zmq.PULL, bind=("", 0))
    port = port_of(taken.endpoint)
    with pytest.raises(ValueError, match="refused"):
        zmq_socket_factory(zmq.PULL, bind=("*", port))
    with pytest.raises(zmq.ZMQError) as excinfo:  # libzmq tried: the opt-in let the address through
        zmq_socket_factory(zmq.PULL, bind=("*", port), allow_external=True, name="public")
    assert excinfo.value.errno == zmq.EADDRINUSE
    assert f"in bind('tcp://*:{port}') on PULL socket 'public'" in str(excinfo.value)


def test_allow_external_takes_only_true_or_false(zmq_context: zmq.Context[Any]) -> None:
    with pytest.raises(TypeError, match=r"TestSocket\(allow_external=...\) takes True or False, got 'yes'"):
        TestSocket(zmq_context, zmq.PULL, allow_external="yes")  # type: ignore[arg-type]
    sock = TestSocket(zmq_context, zmq.PULL, allow_external=True)
    assert sock.allow_external is True
    sock.close()


HOLDER = """
from pathlib import Path

import pytest
import zmq

from zmqtest import SocketTimeout


def test_holds_a_loopback_listener_for_a_second(zmq_socket_factory):
    sink = zmq_socket_factory(zmq.PULL, bind=("", 0))
    Path(__file__).with_name("held.txt").write_text(sink.endpoint)
    with pytest.raises(SocketTimeout):
        sink.recv(timeout=1)
"""


def test_a_run_of_real_test_files_never_listens_beyond_loopback(pytester: pytest.Pytester) -> None:
    """The listeners of the pytest process, looked at every few milliseconds while it runs real test files.

    The first test holds a listener for a second: the looks must see it, or they prove nothing.
    """
    holder = pytester.makepyfile(test_holder=HOLDER)
    log = pytester.path / "inner.log"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    command += [f"--rootdir={ROOT}", "-c", str(ROOT / "tox.ini"), f"--basetemp={pytester.path / 'basetemp'}"]
    command += [str(holder), *(str(ROOT / path) for path in SUITE)]
    seen_loopback: set[tuple[str, int]] = set()
    beyond: set[tuple[str, int]] = set()
    looks = 0
    with (
        log.open("wb") as output,
        subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT) as inner,
    ):
        try:
            watched = psutil.Process(inner.pid)
            deadline = time.monotonic() + SUBPROCESS_DEADLINE
            while inner.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    for conn in watched.net_connections(kind="tcp"):
                        if conn.status == psutil.CONN_LISTEN:
                            listener = (conn.laddr.ip, conn.laddr.port)
                            (seen_loopback if is_loopback(listener[0]) else beyond).add(listener)
                    looks += 1
                with contextlib.suppress(subprocess.TimeoutExpired):
                    inner.wait(LOOK_INTERVAL)
        finally:
            if inner.poll() is None:
                inner.kill()
    said = log.read_text(errors="replace")[-3000:]
    held = ("127.0.0.1", port_of((pytester.path / "held.txt").read_text()))
    assert held in seen_loopback, f"{looks} looks missed the listener held for a second; the inner run says:\n{said}"
    assert beyond == set(), f"the pytest process listened beyond loopback: {sorted(beyond)}"
    assert len(seen_loopback) > 1, f"no listener of the real test files seen in {looks} looks:\n{said}"


# --- ipc directories, temporary files ------------------------------------------------------------------------------

TEMP_USERS = """
import json
import multiprocessing
import stat
import sys
import time
from pathlib import Path

import pytest
import zmq

from zmqtest import ProcessManager, ProcessTest

JOURNAL = Path(__file__).with_name("journal.jsonl")


def note(**fields):
    with JOURNAL.open("a") as journal:
        journal.write(json.dumps(fields) + "\\n")


class Sender(multiprocessing.Process):
    def __init__(self, endpoint):
        super().__init__()
        self.endpoint = endpoint

    def run(self):
        context = zmq.Context()
        sock = context.socket(zmq.PUSH)
        sock.linger = 0
        sock.connect(self.endpoint)
        sock.send(b'"hello"')
        try:
            while True:
                time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped
        except KeyboardInterrupt:
            pass
        sock.close()
        context.term()


class TestIpc(ProcessTest):
    @pytest.mark.parametrize("outcome", ["passes", "fails"])
    def test_ipc(self, zmq_endpoint_factory, zmq_socket_factory, zmq_process_factory, outcome):
        endpoint = zmq_endpoint_factory.ipc("sink")
        sink = zmq_socket_factory(zmq.PULL, bind=endpoint, name="sink")
        wildcard = zmq_socket_factory(zmq.PULL, bind="ipc://*", name="wildcard")
        zmq_process_factory(Sender(endpoint), ready=sink)
        reply = yield ("recv", sink)
        directory = Path(endpoint[len("ipc://"):]).parent
        info = directory.stat()
        note(directory=str(directory), mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, wildcard=wildcard.endpoint)
        assert reply == ["hello"]
        assert outcome == "passes"


def test_process_manager_without_an_output_dir():
    with ProcessManager() as processes:
        said = processes.start([sys.executable, "-c", "print('hi')"], expect_exit=0)
        said.wait(30)
        note(output_dir=str(processes.output_dir))


@pytest.mark.zmqtest(update_golden=True)
def test_golden(zmq_golden):
    result = zmq_golden.run([sys.executable, "-c", "print('hello')"])
    zmq_golden.check(result.stdout, "hello.txt")
"""


@pytest.fixture
def private_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, short TMPDIR for an inner run (short: ipc paths must fit in ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="zts"))
    monkeypatch.setenv("TMPDIR", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_ipc_directories_are_private_and_a_run_leaves_nothing_in_temp(
    pytester: pytest.Pytester, private_tmpdir: Path
) -> None:
    pytester.makepyfile(test_temp_users=TEMP_USERS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-W", "error", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=3, failed=1)
    journal = [json.loads(line) for line in (pytester.path / "journal.jsonl").read_text().splitlines()]
    ipc = [entry for entry in journal if "directory" in entry]
    assert len(ipc) == 2
    for entry in ipc:
        assert entry["mode"] == 0o700
        assert entry["uid"] == os.getuid()
        assert Path(entry["directory"]).parent == private_tmpdir
        assert not Path(entry["directory"]).exists(), f"{entry['directory']} outlived its test"
        assert entry["wildcard"].startswith(f"ipc://{private_tmpdir}/")
    [manager] = [entry for entry in journal if "output_dir" in entry]
    assert Path(manager["output_dir"]).parent == private_tmpdir
    assert sorted(path.name for path in (pytester.path / "golden").iterdir()) == ["hello.txt"]
    left = sorted(str(path.relative_to(private_tmpdir)) for path in private_tmpdir.rglob("*"))
    assert left == [], f"left in the temporary directory: {left}"


# --- no unpickling of peer data ------------------------------------------------------------------------------------


def _tripwire(path: str) -> str:
    Path(path).write_text("unpickled")
    return "tripped"


class Tripwire:
    """Unpickling it writes a file: it stands for a frame that runs a peer's code when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return (_tripwire, (self.path,))


class Peer(ProcessTest):
    pass


class RawPeer(ProcessTest):
    codec = RawCodec()


@pytest.fixture
def pickle_spies() -> Iterator[dict[str, mock.MagicMock]]:
    """Spies on every way to unpickle (and pickle): they pass calls through, and count them."""
    names = ("loads", "load", "Unpickler", "dumps", "dump")
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(mock.patch.object(pickle, name, wraps=getattr(pickle, name))) for name in names
        }


@pytest.fixture
def pair(zmq_socket_factory: SocketFactory) -> tuple[TestSocket, TestSocket]:
    """A connected PAIR of mimics: (the peer, the test's socket)."""
    mine = zmq_socket_factory(zmq.PAIR, bind=("", 0), name="mine", timeout=5)
    peer = zmq_socket_factory(zmq.PAIR, connect=mine.endpoint, name="peer", timeout=5)
    return peer, mine


def _by_action(test: ProcessTest, *recv_args: object) -> Callable[[TestSocket], object]:
    """Receive with the ``recv`` action of ``test``: what comes back, or the error thrown in."""

    def receive(mine: TestSocket) -> object:
        got: list[object] = []

        def conversation() -> Any:
            try:
                got.append((yield ("recv", mine, *recv_args)))
            except MessageError as exc:
                got.append(exc)

        test.run(conversation)
        return got[0]

    return receive


RECEIVERS: dict[str, Callable[[TestSocket], object]] = {
    "recv": lambda mine: mine.recv(),
    "recv_multipart": lambda mine: mine.recv_multipart(),
    "recv_serialized": lambda mine: [bytes(frame) for frame in mine.recv_serialized(list, copy=False)],
    "recv_string": lambda mine: mine.recv_string(),
    "recv_json": lambda mine: mine.recv_json(),
    "recv-action": _by_action(Peer()),
    "recv-action-raw": _by_action(Peer(), None),
    "recv-action-raw-codec": _by_action(RawPeer()),
}


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("recv", "the frame"),
        ("recv_multipart", "[the frame]"),
        ("recv_serialized", "[the frame]"),
        ("recv_string", UnicodeDecodeError),
        ("recv_json", ValueError),
        ("recv-action", MessageError),
        ("recv-action-raw", "[the frame]"),
        ("recv-action-raw-codec", "[the frame]"),
    ],
)
def test_a_pickled_frame_from_a_peer_is_never_unpickled(
    pair: tuple[TestSocket, TestSocket],
    pickle_spies: dict[str, mock.MagicMock],
    tmp_path: Path,
    how: str,
    expected: str | type[Exception],
) -> None:
    peer, mine = pair
    tripped = tmp_path / "tripped"
    payload = pickle.dumps(Tripwire(tripped))
    peer.send(payload)
    try:
        got = RECEIVERS[how](mine)
    except ValueError as exc:
        got = exc
    if isinstance(expected, type):
        assert isinstance(got, expected)
    else:
        assert got == {"the frame": payload, "[the frame]": [payload]}[expected]
    assert not tripped.exists(), "the peer's pickle ran"
    for name in ("loads", "load", "Unpickler"):
        pickle_spies[name].assert_not_called()
    assert pickle.loads(payload) == "tripped"  # the control: unpickled, it would have run
    assert tripped.read_text() == "unpickled"


def test_recv_pyobj_unpickles_when_the_test_asks_for_it(
    pair: tuple[TestSocket, TestSocket], pickle_spies: dict[str, mock.MagicMock]
) -> None:
    peer, mine = pair
    peer.send_pyobj({"answer": 42})
    assert mine.recv_pyobj() == {"answer": 42}
    assert pickle_spies["loads"].call_count == 1


def test_a_body_json_cannot_encode_is_an_error_never_a_pickle(
    pair: tuple[TestSocket, TestSocket], pickle_spies: dict[str, mock.MagicMock]
) -> None:
    peer, mine = pair
    caught: list[MessageError] = []

    def conversation() -> Any:
        try:
            yield ("send", peer, [], {"when": object()})
        except MessageError as exc:
            caught.append(exc)

    Peer().run(conversation)
    assert "body is not JSON-serialisable: body['when'] = <object object at" in str(caught[0])
    for name in ("dumps", "dump"):
        pickle_spies[name].assert_not_called()
    with pytest.raises(SocketTimeout):
        mine.recv(timeout=0)


def test_zmqtest_itself_never_unpickles() -> None:
    """A guard for code to come: no module of zmqtest loads pickles (``recv_pyobj`` is wrapped, for tests to call).

    The asyncio mimic's ``recv_pyobj`` is its own code (it awaits), marked ``# for tests: never zmqtest's``:
    the guard checks that nothing in zmqtest calls it.
    """
    loaders = ("pickle.load", "Unpickler", "_pickle", "recv_pyobj(", "dill", "marshal.load")
    marked = "# for tests: never zmqtest's"
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted((ROOT / "zmqtest").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(loader in line for loader in loaders) and not line.endswith(marked)
    ]
    assert found == []
