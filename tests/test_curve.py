"""CURVE- and PLAIN-secured peers: a mimic is made secure with one argument, and the test can play either side.

- **The process is the server** (``tests/apps/curve_server.py``, which checks its clients with
  pyzmq's own authenticator and certificate files that :meth:`CurveKeys.write` wrote): a mimic
  client with a key the server allows is served; one with a key it does not know, or with the
  wrong server key, or with no security at all, fails, and the failure names the handshake.
- **The process is the client** (``tests/apps/curve_client.py``): a mimic server, with the
  ``zmq_authenticator`` fixture deciding which client keys and passwords get in, serves the process
  when its key is allowed and names the rejected handshake when not; ``requests`` says who asked.
- **PLAIN** both ways, the same.
- **Bad input** is refused when the object is made, with an error that names the value's role and
  never shows a secret key; ``describe()`` and ``repr()`` never show one either.
- **Nothing is left behind**: the authenticator's thread stops, its ZAP endpoint is free again at once.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import zmq
import zmq.auth

from zmqtest import (
    Authenticator,
    ConnectionWaiter,
    CurveClient,
    CurveKeys,
    CurveServer,
    EndpointFactory,
    HandshakeFailed,
    PlainClient,
    PlainServer,
    ProcessManager,
    Security,
    SocketFactory,
    SocketTimeout,
    StartError,
    TestSocket,
    ZmqTestError,
)

APPS = Path(__file__).parent / "apps"
SERVER = [sys.executable, str(APPS / "curve_server.py")]
CLIENT = [sys.executable, str(APPS / "curve_client.py")]
LISTENING = r"listening on (?P<endpoint>\S+)"
HANDSHAKE_FAILED = "*handshake*failed*HANDSHAKE_FAILED*"
"""The first line of a send/receive timeout whose peer's security handshake failed."""
REJECTED = 0.5
"""Seconds a mimic waits for what a failed handshake never lets through (the failure comes within milliseconds)."""
PASSWORD = "correct horse battery staple"


class Keys(NamedTuple):
    server: CurveKeys
    client: CurveKeys


def first_line(error: BaseException) -> str:
    return str(error).partition("\n")[0]


def authenticator_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "zmqtest-authenticator"]


@pytest.fixture
def keys() -> Keys:
    return Keys(CurveKeys.generate(), CurveKeys.generate())


@pytest.fixture
def curve_server(zmq_process_factory: ProcessManager, tmp_path: Path, keys: Keys) -> Any:
    """The CURVE server program, with the server's certificate and the client's public one in its clients directory."""
    _, certificate = keys.server.write(tmp_path / "server", "server")
    keys.client.write(tmp_path / "clients", "client")
    return zmq_process_factory(
        [*SERVER, "--curve", str(certificate), "--clients", str(tmp_path / "clients")], ready=LISTENING
    )


@pytest.fixture
def plain_server(zmq_process_factory: ProcessManager) -> Any:
    """The PLAIN server program, letting in 'alice' with PASSWORD."""
    env = {**os.environ, "CURVE_APP_PASSWORD": PASSWORD}
    return zmq_process_factory([*SERVER, "--plain", "alice"], ready=LISTENING, env=env)


# --- the process is the CURVE server ----------------------------------------------------------------------------------


@pytest.mark.process
def test_a_mimic_client_with_a_key_the_server_allows_is_served(
    curve_server: Any, zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    client = zmq_socket_factory(
        zmq.REQ, connect=curve_server.endpoint, name="client", security=CurveClient(keys.server, keys=keys.client)
    )
    client.send_string("alice")
    assert client.recv_string() == "served alice"


@pytest.mark.process
def test_a_mimic_client_with_a_key_the_server_does_not_know_names_the_rejected_handshake(
    curve_server: Any, zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    security = CurveClient(keys.server)  # a fresh key pair: not in the server's clients directory
    stranger = zmq_socket_factory(zmq.REQ, connect=curve_server.endpoint, name="stranger", security=security)
    stranger.send_string("mallory")  # queued: REQ waits for a connection
    with pytest.raises(SocketTimeout) as failure:
        stranger.recv_string(timeout=REJECTED)
    assert fnmatch.fnmatch(first_line(failure.value), HANDSHAKE_FAILED), first_line(failure.value)
    assert "HANDSHAKE_FAILED_AUTH" in first_line(failure.value)


@pytest.mark.process
def test_a_mimic_client_with_the_wrong_server_key_names_the_failed_handshake(
    curve_server: Any, zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    wrong = CurveClient(CurveKeys.generate(), keys=keys.client)  # the server cannot decrypt its HELLO
    client = zmq_socket_factory(zmq.REQ, connect=curve_server.endpoint, name="client", security=wrong)
    client.send_string("alice")
    with pytest.raises(SocketTimeout) as failure:
        client.recv_string(timeout=REJECTED)
    assert fnmatch.fnmatch(first_line(failure.value), HANDSHAKE_FAILED), first_line(failure.value)
    assert (
        "HANDSHAKE_FAILED_NO_DETAIL (EPIPE): a CURVE client sees this when its server key is not the server's public "
        "key;" in first_line(failure.value)
    ), first_line(failure.value)


@pytest.mark.process
def test_a_connection_waiter_raises_handshake_failed_when_the_server_rejects_the_key(
    curve_server: Any, zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    stranger = zmq_socket_factory(zmq.REQ, name="stranger", security=CurveClient(keys.server))
    with ConnectionWaiter(stranger) as waiter:
        stranger.connect(curve_server.endpoint)
        with pytest.raises(HandshakeFailed, match=r"HANDSHAKE_FAILED_AUTH \(ZAP status 400"):
            waiter.wait(timeout=5)


@pytest.mark.process
def test_a_connection_waiter_sees_the_handshake_succeed_with_an_allowed_key(
    curve_server: Any, zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    client = zmq_socket_factory(zmq.REQ, name="client", security=CurveClient(keys.server, keys=keys.client))
    with ConnectionWaiter(client) as waiter:
        client.connect(curve_server.endpoint)
        assert waiter.wait(timeout=5)["name"] == "HANDSHAKE_SUCCEEDED"


@pytest.mark.process
def test_a_mimic_without_security_against_a_curve_server_is_a_mechanism_mismatch(
    curve_server: Any, zmq_socket_factory: SocketFactory
) -> None:
    plain = zmq_socket_factory(zmq.REQ, name="insecure")
    with ConnectionWaiter(plain) as waiter:
        plain.connect(curve_server.endpoint)
        with pytest.raises(HandshakeFailed, match="MECHANISM_MISMATCH"):
            waiter.wait(timeout=5)


# --- the process is the CURVE client ----------------------------------------------------------------------------------


def start_curve_client(
    manager: ProcessManager, tmp_path: Path, server: TestSocket, server_keys: CurveKeys, client_keys: CurveKeys
) -> Any:
    _, certificate = client_keys.write(tmp_path / "client", "client")
    argv = [*CLIENT, "--connect", server.endpoint, f"--server-key={server_keys.public.decode()}", "--curve"]
    return manager([*argv, str(certificate), "parcel"], expect_exit=0)


@pytest.mark.process
def test_a_mimic_server_serves_a_process_whose_key_the_authenticator_allows(
    zmq_process_factory: ProcessManager,
    zmq_socket_factory: SocketFactory,
    zmq_endpoint_factory: EndpointFactory,
    zmq_authenticator: Authenticator,
    tmp_path: Path,
    keys: Keys,
) -> None:
    zmq_authenticator.allow_curve(keys.client)
    server = zmq_socket_factory(
        zmq.REP, bind=zmq_endpoint_factory.tcp_any(), name="server", security=CurveServer(keys.server)
    )
    client = start_curve_client(zmq_process_factory, tmp_path, server, keys.server, keys.client)

    assert server.recv_string(timeout=10) == "parcel"  # the first one waits for the interpreter to start
    server.send_string("signed")
    assert client.wait(10) == 0
    assert "reply: signed" in client.tail()
    [request] = zmq_authenticator.requests
    assert (request.mechanism, request.user, request.allowed) == ("CURVE", keys.client.public.decode(), True)


@pytest.mark.process
def test_a_mimic_server_names_the_rejected_handshake_of_a_process_whose_key_is_not_allowed(
    zmq_process_factory: ProcessManager,
    zmq_socket_factory: SocketFactory,
    zmq_endpoint_factory: EndpointFactory,
    zmq_authenticator: Authenticator,
    tmp_path: Path,
    keys: Keys,
) -> None:
    zmq_authenticator.allow_curve(CurveKeys.generate())  # some other client
    server = zmq_socket_factory(
        zmq.REP, bind=zmq_endpoint_factory.tcp_any(), name="server", security=CurveServer(keys.server)
    )
    with ConnectionWaiter(server) as waiter:
        client = start_curve_client(zmq_process_factory, tmp_path, server, keys.server, keys.client)
        with pytest.raises(HandshakeFailed, match="HANDSHAKE_FAILED_AUTH"):
            waiter.wait(timeout=10)  # the interpreter starts first
    rejected = zmq_authenticator.requests[0]
    assert (rejected.user, rejected.allowed, rejected.status) == (keys.client.public.decode(), False, "Unknown key")
    assert "rejected (Unknown key)" in rejected.describe()
    with pytest.raises(SocketTimeout) as failure:
        server.recv_string(timeout=REJECTED)
    assert fnmatch.fnmatch(first_line(failure.value), HANDSHAKE_FAILED), first_line(failure.value)
    assert client.poll() is None  # still waiting for an answer: the teardown stops it


@pytest.mark.process
def test_ready_on_a_mimic_server_fails_the_start_at_once_when_the_process_key_is_rejected(
    zmq_process_factory: ProcessManager,
    zmq_socket_factory: SocketFactory,
    zmq_endpoint_factory: EndpointFactory,
    zmq_authenticator: Authenticator,
    tmp_path: Path,
    keys: Keys,
) -> None:
    server = zmq_socket_factory(
        zmq.REP, bind=zmq_endpoint_factory.tcp_any(), name="server", security=CurveServer(keys.server)
    )
    _, certificate = keys.client.write(tmp_path, "client")
    argv = [*CLIENT, "--connect", server.endpoint, f"--server-key={keys.server.public.decode()}"]
    with pytest.raises(StartError, match=r"did not become ready .* HANDSHAKE_FAILED_AUTH \(ZAP status 400"):
        zmq_process_factory([*argv, "--curve", str(certificate), "parcel"], ready=server, ready_timeout=10)
    rejected = zmq_authenticator.requests[0]
    assert (rejected.user, rejected.allowed, rejected.status) == (keys.client.public.decode(), False, "Unknown key")


# --- PLAIN ------------------------------------------------------------------------------------------------------------


@pytest.mark.process
def test_a_mimic_plain_client_with_the_right_password_is_served(
    plain_server: Any, zmq_socket_factory: SocketFactory
) -> None:
    client = zmq_socket_factory(zmq.REQ, connect=plain_server.endpoint, security=PlainClient("alice", PASSWORD))
    client.send_string("tea")
    assert client.recv_string() == "served tea"


@pytest.mark.process
def test_a_mimic_plain_client_with_a_wrong_password_names_the_rejected_handshake(
    plain_server: Any, zmq_socket_factory: SocketFactory
) -> None:
    client = zmq_socket_factory(zmq.REQ, connect=plain_server.endpoint, security=PlainClient("alice", "guess"))
    client.send_string("tea")
    with pytest.raises(SocketTimeout) as failure:
        client.recv_string(timeout=REJECTED)
    assert fnmatch.fnmatch(first_line(failure.value), HANDSHAKE_FAILED), first_line(failure.value)
    assert "guess" not in str(failure.value)


@pytest.mark.process
@pytest.mark.parametrize(("password", "allowed"), [(PASSWORD, True), ("guess", False)], ids=["right", "wrong"])
def test_a_mimic_plain_server_lets_in_the_process_whose_password_the_authenticator_allows(
    zmq_process_factory: ProcessManager,
    zmq_socket_factory: SocketFactory,
    zmq_endpoint_factory: EndpointFactory,
    zmq_authenticator: Authenticator,
    password: str,
    allowed: bool,
) -> None:
    zmq_authenticator.allow_plain("alice", PASSWORD)
    server = zmq_socket_factory(zmq.REP, bind=zmq_endpoint_factory.tcp_any(), name="server", security=PlainServer())
    env = {**os.environ, "CURVE_APP_PASSWORD": password}
    with ConnectionWaiter(server) as waiter:
        client = zmq_process_factory(
            [*CLIENT, "--connect", server.endpoint, "--plain", "alice", "tea"], env=env, expect_exit=0
        )
        if allowed:
            waiter.wait(timeout=10)
        else:
            with pytest.raises(HandshakeFailed, match="HANDSHAKE_FAILED_AUTH"):
                waiter.wait(timeout=10)
    request = zmq_authenticator.requests[0]
    assert (request.mechanism, request.user, request.allowed) == ("PLAIN", "alice", allowed)
    assert password not in repr(zmq_authenticator.requests)
    if allowed:
        assert server.recv_string() == "tea"
        server.send_string("biscuit")
        assert client.wait(10) == 0
        assert "reply: biscuit" in client.tail()


def test_a_plain_server_without_an_authenticator_lets_nobody_in(zmq_socket_factory: SocketFactory) -> None:
    server = zmq_socket_factory(zmq.REP, bind="tcp://127.0.0.1:*", security=PlainServer())
    client = zmq_socket_factory(zmq.REQ, connect=server.endpoint, security=PlainClient("alice", PASSWORD))
    client.send_string("tea")
    with pytest.raises(SocketTimeout) as failure:
        client.recv_string(timeout=REJECTED)
    assert fnmatch.fnmatch(first_line(failure.value), HANDSHAKE_FAILED), first_line(failure.value)


# --- mimic against mimic: what the authenticator decides --------------------------------------------------------------


def test_a_curve_server_without_an_authenticator_lets_every_client_in(
    zmq_socket_factory: SocketFactory, keys: Keys
) -> None:
    server = zmq_socket_factory(zmq.REP, bind="tcp://127.0.0.1:*", security=CurveServer(keys.server))
    client = zmq_socket_factory(zmq.REQ, connect=server.endpoint, security=CurveClient(keys.server))
    client.send(b"anyone")
    assert server.recv() == b"anyone"


@pytest.mark.parametrize(
    ("allowed_in", "server_domain", "gets_in"),
    [("*", None, True), ("", None, True), ("vault", "vault", True), ("*", "vault", False), ("vault", None, False)],
    ids=["default", "empty-is-default", "same-domain", "star-is-not-every-domain", "other-domain"],
)
def test_the_authenticator_allows_keys_per_zap_domain(
    zmq_socket_factory: SocketFactory,
    zmq_authenticator: Authenticator,
    keys: Keys,
    allowed_in: str,
    server_domain: str | None,
    gets_in: bool,
) -> None:
    zmq_authenticator.allow_curve(keys.client.public, domain=allowed_in)
    security = CurveServer(keys.server, zap_domain=server_domain)
    server = zmq_socket_factory(zmq.REP, bind="tcp://127.0.0.1:*", name="server", security=security)
    client = zmq_socket_factory(zmq.REQ, name="client", security=CurveClient(keys.server.public, keys=keys.client))
    with ConnectionWaiter(client) as waiter:
        client.connect(server.endpoint)
        if gets_in:
            waiter.wait()
        else:
            with pytest.raises(HandshakeFailed, match="HANDSHAKE_FAILED_AUTH"):
                waiter.wait()
    [request] = zmq_authenticator.requests
    assert (request.domain, request.allowed) == (server_domain or "", gets_in)


def test_keys_can_be_allowed_as_z85_text_of_either_type(
    zmq_socket_factory: SocketFactory, zmq_authenticator: Authenticator, keys: Keys
) -> None:
    other = CurveKeys.generate()
    zmq_authenticator.allow_curve(keys.client.public.decode(), other.public)
    server = zmq_socket_factory(zmq.REP, bind="tcp://127.0.0.1:*", security=CurveServer(keys.server))
    for pair in (keys.client, other):
        client = zmq_socket_factory(zmq.REQ, connect=server.endpoint, security=CurveClient(keys.server, keys=pair))
        client.send(b"in")
        assert server.recv() == b"in"
        server.send(b"ok")
        assert client.recv() == b"ok"
    assert [request.allowed for request in zmq_authenticator.requests] == [True, True]


# --- keys and certificates --------------------------------------------------------------------------------------------


def test_generated_keys_are_z85_text_that_belong_together(keys: Keys) -> None:
    assert len(keys.server.public) == len(keys.server.secret) == 40
    assert zmq.curve_public(keys.server.secret) == keys.server.public
    assert CurveKeys.from_secret(keys.server.secret) == keys.server
    assert CurveKeys.from_secret(keys.server.secret.decode()) == keys.server
    assert keys.server != keys.client
    with pytest.raises(AttributeError, match="immutable"):
        keys.server.public = keys.client.public
    assert pickle.loads(pickle.dumps(keys.server)) == keys.server  # for a Process under test started by spawn


def test_written_certificates_are_what_zmq_auth_reads(tmp_path: Path, keys: Keys) -> None:
    public_file, secret_file = keys.client.write(tmp_path / "certs", "alice")
    assert (public_file.name, secret_file.name) == ("alice.key", "alice.key_secret")
    assert zmq.auth.load_certificate(public_file) == (keys.client.public, None)
    assert zmq.auth.load_certificate(secret_file) == (keys.client.public, keys.client.secret)
    assert zmq.auth.load_certificates(tmp_path / "certs") == {keys.client.public: True}
    assert CurveKeys.load(secret_file) == keys.client
    assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert keys.client.secret not in public_file.read_bytes()


def test_writing_again_replaces_the_certificates_and_narrows_a_wider_mode(tmp_path: Path, keys: Keys) -> None:
    _, secret_file = keys.client.write(tmp_path, "alice")
    secret_file.chmod(0o644)
    keys.server.write(tmp_path, "alice")
    assert CurveKeys.load(secret_file) == keys.server
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_a_secret_certificate_is_never_written_through_a_symbolic_link(tmp_path: Path, keys: Keys) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / "certs").mkdir(mode=0o700)
    (tmp_path / "certs" / "alice.key_secret").symlink_to(target)
    with pytest.raises(OSError):  # noqa: PT011  # ELOOP: the OS refuses, with its own message
        keys.client.write(tmp_path / "certs", "alice")
    assert target.read_text() == "untouched"


def test_certificates_are_not_written_into_a_directory_others_can_write_to(tmp_path: Path, keys: Keys) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match=r"may be written to by other users .* tmp_path"):
        keys.client.write(shared, "alice")
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("name", ["", "../alice", "sub/alice", ".hidden", None])
def test_a_certificate_name_is_a_plain_file_name(tmp_path: Path, keys: Keys, name: Any) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        keys.client.write(tmp_path, name)


def test_loading_a_public_certificate_as_a_key_pair_says_it_has_no_secret(tmp_path: Path, keys: Keys) -> None:
    public_file, _ = keys.client.write(tmp_path, "alice")
    with pytest.raises(ValueError, match=r"is a public certificate: it holds no secret key"):
        CurveKeys.load(public_file)


# --- bad input --------------------------------------------------------------------------------------------------------

SERVER_KEYS = CurveKeys.generate()
OTHER_KEYS = CurveKeys.generate()

BAD: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "raw-server-key",
        lambda: CurveClient(zmq.utils.z85.decode(SERVER_KEYS.public)),
        ValueError,
        r"server_key of CurveClient \(the server's public key\) is 32 raw bytes: .*z85\.encode",
    ),
    ("short-server-key", lambda: CurveClient(b"abc"), ValueError, "server_key of CurveClient .* is 3 characters long"),
    ("not-z85", lambda: CurveClient('"' * 40), ValueError, "server_key of CurveClient .* not Z85 text"),
    ("not-ascii", lambda: CurveClient("é" * 40), ValueError, "server_key of CurveClient .* ASCII"),
    ("not-a-key", lambda: CurveClient(12), TypeError, "server_key of CurveClient .* got int"),  # type: ignore[arg-type]
    (
        "secret-as-server-key",
        lambda: CurveClient(SERVER_KEYS.secret),
        ValueError,
        "server_key of CurveClient .* is a secret key .* .public",
    ),
    (
        "public-key-as-client-keys",
        lambda: CurveClient(SERVER_KEYS, keys=OTHER_KEYS.public),  # type: ignore[arg-type]
        TypeError,
        "keys of CurveClient must be the client's own key pair, a CurveKeys .* got bytes",
    ),
    (
        "secret-as-server-keys",
        lambda: CurveServer(SERVER_KEYS.secret),  # type: ignore[arg-type]
        TypeError,
        r"keys of CurveServer .* needs its secret key; got bytes; CurveKeys\.from_secret",
    ),
    (
        "swapped-pair",
        lambda: CurveKeys(SERVER_KEYS.secret, SERVER_KEYS.public),
        ValueError,
        "the other way round",
    ),
    (
        "mismatched-pair",
        lambda: CurveKeys(SERVER_KEYS.public, OTHER_KEYS.secret),
        ValueError,
        "public key of CurveKeys .* does not belong to its secret key",
    ),
    ("empty-domain", lambda: CurveServer(SERVER_KEYS, zap_domain=""), ValueError, "zap_domain of CurveServer is empty"),
    ("bad-domain", lambda: PlainServer(zap_domain=5), TypeError, "zap_domain of PlainServer must be a str"),  # type: ignore[arg-type]
    ("empty-username", lambda: PlainClient("", "pw"), ValueError, "username of PlainClient is empty"),
    ("long-password", lambda: PlainClient("alice", "x" * 256), ValueError, "password of PlainClient is 256 bytes"),
    ("username-not-text", lambda: PlainClient(1, "pw"), TypeError, "username of PlainClient must be a str"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("make", "error", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_is_refused_naming_the_value_and_never_showing_a_secret(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as failure:
        make()
    for secret in (SERVER_KEYS.secret, OTHER_KEYS.secret):
        assert secret.decode() not in str(failure.value)


def test_bad_input_to_the_authenticator_is_refused(zmq_authenticator: Authenticator, keys: Keys) -> None:
    with pytest.raises(TypeError, match="at least one client key"):
        zmq_authenticator.allow_curve()
    with pytest.raises(ValueError, match=r"key 1 of allow_curve .* is a secret key") as failure:
        zmq_authenticator.allow_curve(keys.client.public, keys.client.secret)
    assert keys.client.secret.decode() not in str(failure.value)
    with pytest.raises(TypeError, match="password of allow_plain must be a str"):
        zmq_authenticator.allow_plain("alice", b"pw")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="domain of allow_plain must be a str"):
        zmq_authenticator.allow_plain("alice", "pw", domain=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Authenticator\(context\) needs the zmq.Context"):
        Authenticator(None)  # type: ignore[arg-type]


def test_a_mimic_takes_only_a_security_mechanism(zmq_socket_factory: SocketFactory) -> None:
    with pytest.raises(TypeError, match="security"):
        zmq_socket_factory(zmq.REQ, security="CURVE")


# --- what messages show -----------------------------------------------------------------------------------------------


def test_descriptions_name_the_mechanism_and_public_keys_never_a_secret(keys: Keys) -> None:
    client = CurveClient(keys.server, keys=keys.client)
    server = CurveServer(keys.server, zap_domain="vault")
    plain = PlainClient("alice", PASSWORD)
    assert client.describe() == (
        f"CURVE client '{keys.client.public[:8].decode()}...' of server key '{keys.server.public[:8].decode()}...'"
    )
    assert server.describe() == f"CURVE server with key '{keys.server.public[:8].decode()}...', ZAP domain 'vault'"
    assert plain.describe() == "PLAIN client as user 'alice'"
    assert PlainServer().describe() == "PLAIN server"
    shown = " ".join([*(item.describe() for item in (client, server, plain)), *map(repr, (client, server, plain))])
    for secret in (keys.client.secret, keys.server.secret, PASSWORD.encode()):
        assert secret.decode() not in shown
    assert repr(keys.client) == f"CurveKeys(public={keys.client.public!r}, secret=<hidden>)"
    assert all(isinstance(item, Security) for item in (client, server, plain, PlainServer()))


def test_a_secured_mimic_says_so_in_its_description(zmq_socket_factory: SocketFactory, keys: Keys) -> None:
    sock = zmq_socket_factory(zmq.REQ, name="client", security=CurveClient(keys.server, keys=keys.client))
    assert "CURVE client" in sock.describe()
    assert keys.client.secret.decode() not in sock.describe()
    assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE


# --- the authenticator's life -----------------------------------------------------------------------------------------


def test_the_authenticator_stops_its_thread_and_frees_its_endpoint_at_once(zmq_context: zmq.Context[Any]) -> None:
    before = authenticator_threads()
    with Authenticator(zmq_context) as first:
        assert len(authenticator_threads()) == len(before) + 1
    assert authenticator_threads() == before
    with Authenticator(zmq_context):  # pyzmq's own stop() leaves the ZAP endpoint bound for a while: not here
        pass
    assert authenticator_threads() == before
    first.close()  # twice is fine
    assert "[closed]" in first.describe()
    with pytest.raises(ZmqTestError, match=r"allow_plain\(\) on an Authenticator that is closed"):
        first.allow_plain("alice", PASSWORD)


def test_authenticators_one_after_another_on_one_context_never_collide(zmq_context: zmq.Context[Any]) -> None:
    # pyzmq names the pipe to its thread after id(handler), and a new handler often gets a freed one's address:
    # its pipe could not bind while the old one's name was still bound (reported as "the ZAP endpoint is bound")
    for _ in range(300):
        with Authenticator(zmq_context):
            pass
    assert authenticator_threads() == []


def test_one_authenticator_per_context(zmq_context: zmq.Context[Any], zmq_authenticator: Authenticator) -> None:
    with pytest.raises(ZmqTestError, match="another ZAP handler already serves this context"):
        Authenticator(zmq_context)
    assert len(authenticator_threads()) >= 1
    zmq_authenticator.allow_plain("alice", PASSWORD)
    expected = "Authenticator allowing 0 CURVE keys and 1 PLAIN user; 0 requests (0 rejected)"
    assert zmq_authenticator.describe() == expected
