"""Endpoints for tests: tcp ports nobody else will take, ipc paths nobody else can reach.

A port found by binding to port 0 and closing again is free *now*, but the kernel may
hand it to the next ``bind(0)`` anywhere on the machine (another xdist worker, another
program) before the process under test binds it. :meth:`EndpointFactory.tcp` reserves
the port the way Yelp's ephemeral-port-reserve does: it accepts one connection on it
and closes the accepted side first, which leaves the port in TIME_WAIT for about a
minute. While it is there, the kernel gives the port to no other ``bind(0)`` or
outgoing connection, yet a listener with ``SO_REUSEADDR`` (every libzmq tcp listener)
binds it at once. Nothing is shared and nothing is fixed, so this is safe under
pytest-xdist. What no reservation can stop is a program binding a port *number* it
chose earlier (a fixed port, or "bind to 0, close, bind that port later"): where the
binding side can report its endpoint back, :meth:`EndpointFactory.tcp_any` has no
window at all.

ipc endpoints live in a private directory (mode 0700, from :func:`tempfile.mkdtemp`)
under a short base, because socket paths are limited to ``zmq.IPC_PATH_MAX_LEN``
bytes (107 on Linux) and pytest's ``tmp_path`` is often longer than that. The
directory and everything in it go away at :meth:`EndpointFactory.close`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import tempfile
import threading
from itertools import count
from types import TracebackType

import zmq

__all__ = [
    "Endpoint",
    "EndpointFactory",
    "EndpointSpec",
    "as_endpoint",
    "external_reason",
    "parse_endpoint",
    "reserve_tcp_port",
]

EndpointSpec = str | tuple[str | None, int | str]
"""What ``bind``/``connect`` take: an endpoint string (``"tcp://127.0.0.1:5555"``) or a ``(host, port)`` tuple."""

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"localhost", "lo", "lo0"})
"""Bind hosts that are loopback by name: the host name, and the Linux and BSD/macOS loopback interfaces."""
LOCAL_TRANSPORTS = frozenset({"ipc", "inproc"})
"""Transports that never reach another machine (ipc paths are guarded by file permissions)."""
HOST_TRANSPORTS = frozenset({"tcp", "ws", "wss", "udp"})
"""Transports whose bind address names a host or interface: mimics bind them on loopback only, unless allowed."""
IPC_PREFIX = "zmqtest-"
"""Prefix of the private ipc directories (``/tmp/zmqtest-XXXXXXXX``), so leftovers are easy to spot."""
IPC_NAME_ROOM = 32
"""Bytes an ipc endpoint name may take when choosing the base directory: a base is short enough if it leaves these."""
_MAX_RESERVE_TRIES = 100


def reserve_tcp_port(host: str = LOOPBACK) -> int:
    """Reserve a free tcp port on ``host`` (IPv4) and return it.

    The port is left in TIME_WAIT: no other ``bind(0)`` or outgoing connection gets it
    for about a minute, while a ``SO_REUSEADDR`` listener (libzmq's) can bind it now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)  # a backlog of 0 can make the connect below block on some kernels
        address = listener.getsockname()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect(address)
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first holds the TIME_WAIT: here, the reserved port
        return int(address[1])


class EndpointFactory(contextlib.AbstractContextManager["EndpointFactory"]):
    """Hands out endpoints for one test (or one ``with`` block) and cleans up after them.

    - :meth:`tcp`: ``tcp://127.0.0.1:PORT`` with a reserved port that another process can bind right away;
    - :meth:`tcp_any`: ``tcp://127.0.0.1:*`` for a socket that binds and reports its endpoint back;
    - :meth:`ipc`: ``ipc://<private dir>/<name>``, the directory removed at :meth:`close`.

    ``factory("tcp")`` and ``factory("ipc", name)`` do the same. ``ipc_base`` chooses
    where the private directory goes (default: the temporary directory if its path
    is short, else ``/tmp``). Usable without pytest::

        with EndpointFactory() as endpoints:
            server.bind(endpoints.ipc("frontend"))
    """

    def __init__(self, *, ipc_base: str | os.PathLike[str] | None = None) -> None:
        self._ipc_base = None if ipc_base is None else os.fspath(ipc_base)
        self._ipc_dir: str | None = None
        self._ports: set[int] = set()
        self._ipc_names: set[str] = set()
        self._counter = count()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ipc_dir(self) -> str | None:
        """The private directory of the ipc endpoints (``None`` until the first :meth:`ipc`)."""
        return self._ipc_dir

    def tcp(self) -> Endpoint:
        """A ``tcp://127.0.0.1:PORT`` endpoint that any process can bind right away.

        The port is reserved (see :func:`reserve_tcp_port`) and never handed out twice
        by this factory. Bind it soon: the reservation lasts about a minute.
        """
        with self._lock:
            self._check_open()
            for _ in range(_MAX_RESERVE_TRIES):
                port = reserve_tcp_port(LOOPBACK)
                if port not in self._ports:
                    self._ports.add(port)
                    return Endpoint(f"tcp://{LOOPBACK}:{port}")
        raise RuntimeError(f"could not reserve a tcp port not handed out before after {_MAX_RESERVE_TRIES} tries")

    def tcp_any(self) -> Endpoint:
        """``tcp://127.0.0.1:*``: for a socket that binds to any free port itself.

        Read the port it got from the socket after binding: ``sock.endpoint`` (a
        TestSocket) or ``sock.last_endpoint`` (``zmq.LAST_ENDPOINT``), and pass it
        on (a process under test reports it back, as ProcMock does). Race-free.
        """
        self._check_open()
        return Endpoint(f"tcp://{LOOPBACK}:*")

    def ipc(self, name: str | None = None) -> Endpoint:
        """``ipc://<private dir>/<name>``; without a name, a new one on every call.

        The same ``name`` gives the same endpoint, so both sides of a connection can
        ask for it. Raises :class:`ValueError` for a name with a slash or for a path
        longer than ``zmq.IPC_PATH_MAX_LEN``.
        """
        with self._lock:
            self._check_open()
            if name is None:
                name = next(f"ipc{n}" for n in self._counter if f"ipc{n}" not in self._ipc_names)
            else:
                _check_ipc_name(name)
            directory = self._make_ipc_dir()
            path = os.path.join(directory, name)
            limit = zmq.IPC_PATH_MAX_LEN
            if limit and len(os.fsencode(path)) > limit:
                raise ValueError(
                    f"ipc path {path!r} is {len(os.fsencode(path))} bytes, longer than the limit of {limit} "
                    "(zmq.IPC_PATH_MAX_LEN): choose a shorter name or a shorter ipc_base"
                )
            self._ipc_names.add(name)
            return Endpoint(f"ipc://{path}")

    def __call__(self, transport: str = "tcp", name: str | None = None) -> Endpoint:
        """``factory("tcp")`` is :meth:`tcp`, ``factory("ipc", name)`` is :meth:`ipc`."""
        if transport == "tcp":
            if name is not None:
                raise TypeError("a tcp endpoint takes no name")
            return self.tcp()
        if transport == "ipc":
            return self.ipc(name)
        raise ValueError(f"unknown transport {transport!r}: expected 'tcp' or 'ipc'")

    def close(self) -> None:
        """Remove the ipc directory and everything in it; the factory hands out nothing more."""
        with self._lock:
            self._closed = True
            directory, self._ipc_dir = self._ipc_dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._ports)} tcp, {len(self._ipc_names)} ipc"
        return f"<EndpointFactory {state}{f' in {self._ipc_dir}' if self._ipc_dir else ''}>"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this EndpointFactory is closed")

    def _make_ipc_dir(self) -> str:
        if self._ipc_dir is None:
            if not zmq.has("ipc"):
                raise RuntimeError(f"this libzmq ({zmq.zmq_version()}) does not support ipc endpoints")
            base = self._ipc_base if self._ipc_base is not None else _short_base()
            self._ipc_dir = tempfile.mkdtemp(prefix=IPC_PREFIX, dir=base)  # mode 0700
        return self._ipc_dir


def _check_ipc_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"an ipc endpoint name must be a string, got {name!r}")
    if not name or name in (".", "..") or "/" in name or "\0" in name or (os.sep != "/" and os.sep in name):
        raise ValueError(f"invalid ipc endpoint name {name!r}: give a plain file name (no slashes)")


def _short_base() -> str:
    """The temporary directory if a private directory in it leaves room for names, else ``/tmp``."""
    base = tempfile.gettempdir()
    needed = len(os.fsencode(base)) + len(IPC_PREFIX) + 8 + 2 + IPC_NAME_ROOM  # 8 random characters, 2 slashes
    limit = zmq.IPC_PATH_MAX_LEN
    if limit and needed > limit and os.path.isdir("/tmp"):
        return "/tmp"
    return base


# --- endpoint strings -------------------------------------------------------------------------------------------------

TRANSPORTS = frozenset({"tcp", "ipc", "inproc", "ws", "wss", "udp", "pgm", "epgm", "norm", "tipc", "vmci"})
"""libzmq's transports, by the name an endpoint starts with."""
HOST_PORT_TRANSPORTS = frozenset({"tcp", "ws", "wss", "udp", "pgm", "epgm", "norm"})
"""Transports whose address ends in ``HOST:PORT`` (after an optional ``source;`` or ``interface;``)."""
_FORMS = (
    "expected TRANSPORT://ADDRESS such as 'tcp://HOST:PORT' (PORT a number or '*'), 'ipc://PATH', "
    "'inproc://NAME' or 'ws://HOST:PORT/PATH'"
)


class Endpoint(str):
    """An endpoint string that also says what it names: ``transport``, ``host``, ``port``, ``path``, ``address``.

    It *is* the string (equal to it, same hash, pyzmq binds and connects it, json
    writes it as a string, its ``repr`` is the string's), parsed once, here::

        ep = Endpoint("tcp://127.0.0.1:5555")
        ep.transport, ep.host, ep.port          # ('tcp', '127.0.0.1', 5555)
        subprocess.run(["server", "--port", str(ep.port)])

    - ``transport``: ``"tcp"``, ``"ipc"``, ``"inproc"``, ``"ws"``, ``"pgm"``, ... (libzmq's names);
    - ``address``: everything after ``://`` (an inproc name, ``@name`` of an abstract ipc socket);
    - ``host``: for tcp, ws, wss, udp, pgm, epgm and norm, the host, address or interface before the
      port, without the brackets of an IPv6 literal (``"::1"``), ``"*"`` for all interfaces (after a
      ``source;`` or ``interface;`` part, the one after it); else ``None``;
    - ``port``: the port as an ``int`` for those transports, ``None`` for ``*`` (any free port);
      else ``None``;
    - ``path``: the file of an ipc endpoint (``None`` for ``ipc://*`` and abstract ``ipc://@name``),
      the resource path of a ws one (``"/chat"``, ``None`` if absent); else ``None``.

    A malformed string raises :class:`ValueError` naming it. Pickling (``multiprocessing`` spawn
    and forkserver) gives an ``Endpoint`` back; ``str(ep)`` is the plain string.
    """

    __slots__ = ("_address", "_host", "_path", "_port", "_transport")

    _transport: str
    _address: str
    _host: str | None
    _port: int | None
    _path: str | None

    def __new__(cls, text: str) -> Endpoint:
        __tracebackhide__ = True
        if type(text) is cls:
            return text
        if not isinstance(text, str):
            raise TypeError(f"Endpoint() takes a string, got {type(text).__name__} {text!r:.80}")
        transport, address, host, port, path = _split_endpoint(text)
        self = super().__new__(cls, text)
        for name, value in zip(cls.__slots__, (address, host, path, port, transport), strict=True):
            object.__setattr__(self, name, value)
        return self

    @property
    def transport(self) -> str:
        return self._transport

    @property
    def address(self) -> str:
        return self._address

    @property
    def host(self) -> str | None:
        return self._host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def path(self) -> str | None:
        return self._path

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an Endpoint cannot be changed (it is a string): cannot set {name!r}")

    def __reduce__(self) -> tuple[type[Endpoint], tuple[str]]:
        return (Endpoint, (str(self),))  # parsed again on the other side, e.g. in a spawned process


def as_endpoint(text: str | None) -> str | None:
    """``text`` as an :class:`Endpoint` if it is one, else unchanged (a ready pattern's group may be a pid)."""
    if text is None:
        return None
    try:
        return Endpoint(text)
    except ValueError:
        return text


def _split_endpoint(text: str) -> tuple[str, str, str | None, int | None, str | None]:
    """``(transport, address, host, port, path)`` of an endpoint string; ValueError naming it if malformed."""

    def malformed(why: str) -> ValueError:
        return ValueError(f"{text!r} is not a ZeroMQ endpoint: {why}; {_FORMS}")

    transport, separator, address = text.partition("://")
    if not separator:
        raise malformed("it has no '://'")
    if transport not in TRANSPORTS:
        raise malformed(f"unknown transport {transport!r} (libzmq has {', '.join(sorted(TRANSPORTS))})")
    if not address:
        raise malformed("nothing follows '://'")
    if transport == "ipc":
        return transport, address, None, None, None if address == "*" or address.startswith("@") else address
    if transport not in HOST_PORT_TRANSPORTS:
        return transport, address, None, None, None  # inproc names, tipc and vmci addresses
    where, path = address, None
    if transport in ("ws", "wss"):
        slash = address.find("/", address.rfind("]") + 1)  # the resource path starts after any IPv6 literal
        if slash >= 0:
            where, path = address[:slash], address[slash:]
    where = where.rpartition(";")[2]  # tcp's "source;host:port", pgm's "interface;group:port"
    if transport == "norm":
        where = where.partition(",")[2] or where  # norm's "id,host:port"
    host, colon, port_text = where.rpartition(":")
    if not colon or not host or where.endswith("]"):  # "[::1]" is a host without a port
        raise malformed(f"a {transport} endpoint needs HOST:PORT")
    if host.startswith("[") != host.endswith("]") or "]" in host[:-1] or "[" in host[1:]:
        raise malformed(f"unbalanced brackets in host {host!r} (an IPv6 literal is written [::1])")
    host = host[1:-1] if host.startswith("[") else host
    if not host:
        raise malformed("the host is empty")
    if port_text == "*":
        return transport, address, host, None, path
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise malformed(f"port {port_text!r} is not a number from 0 to 65535 or '*'")
    return transport, address, host, int(port_text), path


def parse_endpoint(spec: EndpointSpec, *, bind: bool = False) -> str:
    """Turn ``spec`` into an endpoint string.

    ``(host, port)`` becomes ``tcp://host:port``; an empty or missing host means
    127.0.0.1 (loopback unless the user says otherwise). When binding, port 0 or
    ``"*"`` asks the system for a free port (read it back from ``sock.endpoint``).
    """
    if isinstance(spec, str):
        if "://" not in spec:
            raise ValueError(
                f"endpoint {spec!r} has no transport: write it like 'tcp://127.0.0.1:5555' or 'ipc:///path'"
            )
        if spec.startswith("tcp://:"):
            return f"tcp://{LOOPBACK}{spec[6:]}"
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        host, port = spec
        if host is None or host == "":
            host = LOOPBACK
        if not isinstance(host, str):
            raise ValueError(f"host in {spec!r} must be a string")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        if port == "*" or (bind and port == 0 and type(port) is int):  # not False or 0.0
            if not bind:
                raise ValueError(f"cannot connect to {spec!r}: a connect needs the port number")
            return f"tcp://{host}:*"
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port in {spec!r} must be a number from 1 to 65535" + (" (or 0 for any)" if bind else ""))
        return f"tcp://{host}:{port}"
    raise ValueError(f"expected an endpoint string like 'tcp://127.0.0.1:5555' or a (host, port) tuple, got {spec!r}")


def external_reason(addr: str) -> str | None:
    """Why binding ``addr`` would listen beyond this machine's loopback; ``None`` if it would not."""
    transport, _, rest = addr.partition("://")
    if transport in LOCAL_TRANSPORTS:
        return None
    if transport not in HOST_TRANSPORTS:
        return f"the {transport} transport reaches other machines"
    host = rest.split("/", 1)[0].rpartition(":")[0].strip("[]")  # from "127.0.0.1:*" or "[::1]:5555/path"
    if host == "*":
        return "'*' listens on all interfaces"
    if host.lower() in LOOPBACK_NAMES:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host!r} is an interface or host name other than {', '.join(sorted(LOOPBACK_NAMES))}"
    if address.is_unspecified:
        return f"{host} listens on all interfaces"
    return None if address.is_loopback else f"{host} is not a loopback address"
