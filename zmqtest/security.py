"""Security mechanisms for mimic sockets: CURVE and PLAIN peers of a process under test that requires them.

A mimic is made secure with one argument, ``make_sock(..., security=...)``:

- :class:`CurveClient` (``CurveClient(server_keys)``): a CURVE client of the server whose
  public key it is given, with a key pair of its own (a fresh one unless given);
- :class:`CurveServer` (``CurveServer(server_keys)``): a CURVE server;
- :class:`PlainClient` (``PlainClient("alice", "s3cret")``) and :class:`PlainServer`.

Each has ``apply(sock)`` (set the socket's options, before any bind or connect) and
``describe()`` (a short text for messages that never shows a secret key or password).
:class:`CurveKeys` is a key pair, generated, derived from a secret key, loaded from or
written to ``zmq.auth`` certificate files. When the test plays the server and must check
the process's credentials, an :class:`~zmqtest.authenticator.Authenticator` (pyzmq's own
ZAP handler, running in a thread that is always stopped) allows the client keys and PLAIN
passwords given.

Keys are CURVE keys as ``zmq.curve_keypair()`` makes them: 40 characters of Z85 text.
Every value is checked when the object is made, and an error names the bad value's role.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import zmq
import zmq.auth
from zmq.utils import z85

from zmqtest.errors import ZmqTestError

__all__ = [
    "CurveClient",
    "CurveKeys",
    "CurveServer",
    "PlainClient",
    "PlainServer",
    "Security",
]

Z85_KEY_LENGTH = 40
"""Characters of a CURVE key in Z85 text (32 bytes raw)."""
RAW_KEY_LENGTH = 32
SHOWN_KEY_CHARS = 8
"""Characters of a public key that messages show: enough to tell keys apart."""
MAX_CREDENTIAL_BYTES = 255
"""libzmq's limit for a PLAIN user name, password and a ZAP domain (each is sent with a one-byte length)."""

_Z85_CHARS = frozenset(z85.Z85CHARS)
_secret_digests: set[bytes] = set()
"""SHA-256 digests of the secret keys of every :class:`CurveKeys` made in this process: a secret key passed where a
public one belongs is recognised (and never shown). Digests, not keys: nothing secret is kept here."""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def short_key(key: bytes) -> str:
    """``'rq:rM>}U...'``: the start of a public key, for messages."""
    return f"'{key[:SHOWN_KEY_CHARS].decode('ascii')}...'"


def _z85_key(value: object, role: str) -> bytes:
    """``value`` as a CURVE key of 40 bytes of Z85 text; errors name it by ``role`` and never show it."""
    if isinstance(value, CurveKeys):
        raise TypeError(f"{role} takes one key, not a key pair: pass the CurveKeys' .public (or .secret)")
    if isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"{role} is not a CURVE key: Z85 text is ASCII, and this has other characters")
        value = value.encode("ascii")
    elif isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise TypeError(
            f"{role} must be a CURVE key, 40 characters of Z85 text (bytes or str) as zmq.curve_keypair() makes "
            f"them, got {type(value).__name__}"
        )
    if len(value) == RAW_KEY_LENGTH:
        raise ValueError(
            f"{role} is 32 raw bytes: zmqtest takes CURVE keys as 40 characters of Z85 text, as zmq.curve_keypair() "
            "and zmq.auth certificates have them; encode it with zmq.utils.z85.encode(key)"
        )
    if len(value) != Z85_KEY_LENGTH:
        raise ValueError(
            f"{role} is {len(value)} characters long: a CURVE key is 40 characters of Z85 text "
            "(or 32 raw bytes, which zmqtest does not take: encode them with zmq.utils.z85.encode(key))"
        )
    if not _Z85_CHARS.issuperset(value):
        raise ValueError(f"{role} is 40 characters long but not Z85 text: it has characters Z85 does not use")
    try:
        z85.decode(value)
    except (KeyError, ValueError, struct.error):
        raise ValueError(f"{role} is not valid Z85 text (a group of 5 characters is out of range)") from None
    return value


def check_public_key(value: object, role: str) -> bytes:
    """A public key: a :class:`CurveKeys` gives its own; a known secret key is refused, never shown."""
    if isinstance(value, CurveKeys):
        return value.public
    key = _z85_key(value, role)
    if _digest(key) in _secret_digests:
        raise ValueError(
            f"{role} is a secret key (of a CurveKeys made in this process): a peer needs the public key, "
            "the key pair's .public; a secret key must never leave its owner"
        )
    return key


def _check_curve() -> None:
    if not zmq.has("curve"):
        raise ZmqTestError(
            f"this libzmq ({zmq.zmq_version()}) was built without CURVE (zmq.has('curve') is False): "
            "install a pyzmq wheel, which bundles a libzmq with CURVE"
        )


def check_credential(value: object, role: str) -> bytes:
    """A PLAIN user name or password, or a ZAP domain: 1 to 255 bytes of UTF-8."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise TypeError(f"{role} must be a str (or bytes), got {type(value).__name__}")
    if not value:
        raise ValueError(f"{role} is empty: libzmq refuses an empty one (EINVAL)")
    if len(value) > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"{role} is {len(value)} bytes long: libzmq takes at most {MAX_CREDENTIAL_BYTES}")
    return value


def _zap_domain(value: object, role: str) -> bytes | None:
    if value is None:
        return None
    if value == "" or value == b"":
        raise ValueError(f"{role} is empty: pass None for no ZAP domain")
    return check_credential(value, role)


def as_text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


@runtime_checkable
class Security(Protocol):
    """What ``security=`` of a mimic takes: ``apply(sock)`` sets its options, ``describe()`` says what it is."""

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` use this mechanism: called once, before any bind or connect."""

    def describe(self) -> str:
        """A short text for messages (``"CURVE client of server key 'rq:rM>}U...'"``), never a secret."""


# --- CURVE ------------------------------------------------------------------------------------------------------------

_CERTIFICATE = """#   ****  Generated by zmqtest  ****
#   ZeroMQ CURVE {kind} Certificate{warning}

metadata
curve
    public-key = "{public}"
"""


class CurveKeys:
    """A CURVE key pair: ``public`` and ``secret``, each 40 bytes of Z85 text.

    ``CurveKeys.generate()`` makes a new pair; ``CurveKeys.from_secret(secret)`` derives the
    public key; ``CurveKeys.load(path)`` reads a ``zmq.auth`` secret certificate file, and
    ``write(directory, name)`` writes one (with its public certificate) for a process under
    test that loads certificates. ``repr()`` never shows the secret key.
    """

    __slots__ = ("public", "secret")
    public: bytes
    secret: bytes

    def __init__(self, public: bytes | str, secret: bytes | str) -> None:
        public_key = _z85_key(public, "the public key of CurveKeys")
        secret_key = _z85_key(secret, "the secret key of CurveKeys")
        _check_curve()
        derived = zmq.curve_public(secret_key)
        if derived != public_key:
            if zmq.curve_public(public_key) == secret_key:
                raise ValueError(
                    "CurveKeys(public, secret) got the keys the other way round: the secret key comes second"
                )
            raise ValueError(
                f"the public key of CurveKeys ({short_key(public_key)}) does not belong to its secret key, whose "
                f"public key is {short_key(derived)}: CurveKeys.from_secret(secret) derives the right one"
            )
        object.__setattr__(self, "public", public_key)
        object.__setattr__(self, "secret", secret_key)
        _secret_digests.add(_digest(secret_key))

    @classmethod
    def generate(cls) -> CurveKeys:
        """A new key pair (``zmq.curve_keypair()``)."""
        _check_curve()
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def from_secret(cls, secret: bytes | str) -> CurveKeys:
        """The key pair of ``secret`` (Z85 text): its public key is derived (``zmq.curve_public``)."""
        secret_key = _z85_key(secret, "the secret key of CurveKeys.from_secret")
        _check_curve()
        return cls(zmq.curve_public(secret_key), secret_key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CurveKeys:
        """The key pair in a ``zmq.auth`` secret certificate file (``name.key_secret``)."""
        public, secret = zmq.auth.load_certificate(path)
        if not secret:
            raise ValueError(
                f"{os.fspath(path)} is a public certificate: it holds no secret key (the secret one is the "
                "'.key_secret' file); read a public key with zmq.auth.load_certificate(path)[0]"
            )
        return cls(public, secret)

    def write(self, directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
        """Write ``name.key`` (the public certificate) and ``name.key_secret`` (the secret one) into ``directory``.

        The files are what ``zmq.auth.create_certificates`` writes, so a process under test
        reads them with ``zmq.auth.load_certificate`` (its own keys) and
        ``zmq.auth.load_certificates`` or an authenticator's ``configure_curve(location=...)``
        (the ``*.key`` files of the peers it allows). ``directory`` is made (0700) if it does
        not exist; a directory that others may write to (``/tmp`` itself) is refused, so
        write into one the caller owns: pytest's ``tmp_path``, ``tempfile.mkdtemp()``. The
        secret certificate is readable by its owner only (0600). Returns the paths
        ``(public_file, secret_file)``, as ``create_certificates`` does.
        """
        if not isinstance(name, str) or not name or name.startswith(".") or os.sep in name or "/" in name:
            raise ValueError(
                f"the name of a certificate must be a plain file name (no directory, no dot first), got {name!r}"
            )
        folder = Path(directory)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = folder.stat().st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError(
                f"{folder} may be written to by other users (mode {stat.filemode(mode)}): they could replace a "
                "certificate; write certificates into a directory you own, such as pytest's tmp_path or "
                "tempfile.mkdtemp()"
            )
        public_file = folder / f"{name}.key"
        secret_file = folder / f"{name}.key_secret"
        public_text = _CERTIFICATE.format(kind="Public", warning="", public=self.public.decode("ascii"))
        secret_text = (
            _CERTIFICATE.format(
                kind="**Secret**",
                warning="\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.",
                public=self.public.decode("ascii"),
            )
            + f'    secret-key = "{self.secret.decode("ascii")}"\n'
        )
        _write_private(public_file, public_text, 0o644)
        _write_private(secret_file, secret_text, 0o600)
        return public_file, secret_file

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CurveKeys are immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CurveKeys):
            return NotImplemented
        return (self.public, self.secret) == (other.public, other.secret)

    def __hash__(self) -> int:
        return hash(self.public)

    def __reduce__(self) -> tuple[type[CurveKeys], tuple[bytes, bytes]]:
        """Pickled as its two keys (a process under test started with spawn or forkserver gets its arguments so)."""
        return (CurveKeys, (self.public, self.secret))

    def __repr__(self) -> str:
        return f"CurveKeys(public={self.public!r}, secret=<hidden>)"

    def describe(self) -> str:
        """``key pair with public key 'rq:rM>}U...'``."""
        return f"key pair with public key {short_key(self.public)}"


def _key_pair(value: object, expected: str) -> CurveKeys:
    """``value`` if it is a :class:`CurveKeys`; else a TypeError: ``expected``, what it got, and how to make one."""
    if isinstance(value, CurveKeys):
        return value
    hint = "; CurveKeys.from_secret(secret) makes one from a secret key" if isinstance(value, (bytes, str)) else ""
    raise TypeError(f"{expected}; got {type(value).__name__}{hint}")


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` with ``mode``: never through a symbolic link, never with an old file's wider mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, mode)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), mode)
        file.write(text)


class CurveClient:
    """A CURVE client of the server whose public key is ``server_key``, with the key pair ``keys``.

    ``server_key``: the server's :class:`CurveKeys` (its public key is taken) or its public key.
    ``keys``: the client's own :class:`CurveKeys`; ``None`` generates a fresh pair (a client
    the server does not know, unless the test tells it; ``.keys`` has it).
    """

    __slots__ = ("keys", "server_key")

    def __init__(self, server_key: CurveKeys | bytes | str, keys: CurveKeys | None = None) -> None:
        self.server_key = check_public_key(server_key, "server_key of CurveClient (the server's public key)")
        if keys is None:
            keys = CurveKeys.generate()
        keys = _key_pair(
            keys,
            "keys of CurveClient must be the client's own key pair, a CurveKeys (CurveKeys.generate(), "
            "CurveKeys.from_secret(secret)), or None for a fresh one",
        )
        self.keys = keys

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set ``CURVE_SERVERKEY``, ``CURVE_PUBLICKEY`` and ``CURVE_SECRETKEY`` on ``sock``."""
        _check_curve()
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)

    def describe(self) -> str:
        """``CURVE client 'Yne@$w-v...' of server key 'rq:rM>}U...'``."""
        return f"CURVE client {short_key(self.keys.public)} of server key {short_key(self.server_key)}"

    def __repr__(self) -> str:
        return f"CurveClient(server_key={self.server_key!r}, keys={self.keys!r})"


class CurveServer:
    """A CURVE server with the key pair ``keys`` (a :class:`CurveKeys`: a server needs its secret key).

    ``zap_domain``: the ZAP domain its clients are checked in (``None``: none). Without a ZAP
    handler on the socket's context, libzmq lets every CURVE client in; with an
    :class:`Authenticator`, only the keys it allows.
    """

    __slots__ = ("keys", "zap_domain")

    def __init__(self, keys: CurveKeys, zap_domain: str | None = None) -> None:
        keys = _key_pair(
            keys, "keys of CurveServer must be the server's key pair, a CurveKeys: a server needs its secret key"
        )
        self.keys = keys
        domain = _zap_domain(zap_domain, "zap_domain of CurveServer")
        self.zap_domain = None if domain is None else as_text(domain)

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set ``CURVE_SERVER``, the server's keys and ``ZAP_DOMAIN`` on ``sock``."""
        _check_curve()
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        if self.zap_domain is not None:
            sock.setsockopt(zmq.ZAP_DOMAIN, self.zap_domain.encode("utf-8"))

    def describe(self) -> str:
        """``CURVE server with key 'rq:rM>}U...'`` (and its ZAP domain)."""
        domain = f", ZAP domain {self.zap_domain!r}" if self.zap_domain is not None else ""
        return f"CURVE server with key {short_key(self.keys.public)}{domain}"

    def __repr__(self) -> str:
        return f"CurveServer(keys={self.keys!r}, zap_domain={self.zap_domain!r})"


# --- PLAIN ------------------------------------------------------------------------------------------------------------


class PlainClient:
    """A PLAIN client that logs in as ``username`` with ``password`` (each 1 to 255 bytes; str is UTF-8).

    PLAIN sends the password as it is: for tests on loopback, never across a network.
    """

    __slots__ = ("_password", "username")

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        self.username = check_credential(username, "username of PlainClient")
        self._password = check_credential(password, "password of PlainClient")

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set ``PLAIN_USERNAME`` and ``PLAIN_PASSWORD`` on ``sock``."""
        sock.setsockopt(zmq.PLAIN_USERNAME, self.username)
        sock.setsockopt(zmq.PLAIN_PASSWORD, self._password)

    def describe(self) -> str:
        """``PLAIN client as user 'alice'`` (never the password)."""
        return f"PLAIN client as user {as_text(self.username)!r}"

    def __repr__(self) -> str:
        return f"PlainClient(username={self.username!r}, password=<hidden>)"


class PlainServer:
    """A PLAIN server. libzmq asks the ZAP handler of the socket's context about every client, and refuses them all
    when there is none: run an :class:`Authenticator` (the ``zmq_authenticator`` fixture) that allows the passwords.

    ``zap_domain``: the ZAP domain its clients are checked in (``None``: none).
    """

    __slots__ = ("zap_domain",)

    def __init__(self, zap_domain: str | None = None) -> None:
        domain = _zap_domain(zap_domain, "zap_domain of PlainServer")
        self.zap_domain = None if domain is None else as_text(domain)

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set ``PLAIN_SERVER`` and ``ZAP_DOMAIN`` on ``sock``."""
        sock.setsockopt(zmq.PLAIN_SERVER, 1)
        if self.zap_domain is not None:
            sock.setsockopt(zmq.ZAP_DOMAIN, self.zap_domain.encode("utf-8"))

    def describe(self) -> str:
        """``PLAIN server`` (and its ZAP domain)."""
        return "PLAIN server" + (f", ZAP domain {self.zap_domain!r}" if self.zap_domain is not None else "")

    def __repr__(self) -> str:
        return f"PlainServer(zap_domain={self.zap_domain!r})"
