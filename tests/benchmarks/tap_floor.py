"""The cheapest forwarders of the tap's shape, to split what the tap costs into the extra hop and its own work.

- :class:`ThreadForwarder`: one selector thread in the test's process, as a tap is, that
  reads what comes into one buffer and writes it to the other side at once (no parsing, no queue,
  no faults);
- :class:`ProcessForwarder`: the same loop in a process of its own (no GIL shared with the test);
- :class:`CRelay`: an epoll relay in C, in a process of its own (compiled with ``cc`` into a
  temporary directory; ``None`` when there is no compiler): the hop itself, about no work at all.

All forward whatever they read to the other side with a blocking ``sendall``: enough for a
benchmark (REQ/REP, PUSH/PULL), not a tap (a peer that stops reading would stop both ways).
Run as ``python tap_floor.py UPSTREAM_PORT``, a forwarder prints its port and forwards until stdin closes.
:class:`Clock` is the far end of the benchmark's "while the test computes" figure: a process that says when
each message reached it.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

__all__ = ["CRelay", "Clock", "ProcessForwarder", "ThreadForwarder"]

CHUNK = 1 << 20


def _forward(listener: socket.socket, upstream_port: int, stop: socket.socket) -> None:
    """Accept on ``listener``, connect each connection to ``upstream_port``, forward both ways until ``stop`` reads."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(stop, selectors.EVENT_READ)
    peers: dict[socket.socket, socket.socket] = {}
    buffer = memoryview(bytearray(CHUNK))  # a fresh 1 MiB bytes per recv() would cost an mmap and page faults
    try:
        while True:
            for key, _ in selector.select():
                sock = key.fileobj
                if sock is stop:
                    return
                if sock is listener:
                    client, _ = listener.accept()
                    upstream = socket.create_connection(("127.0.0.1", upstream_port))
                    for one, other in ((client, upstream), (upstream, client)):
                        one.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        peers[one] = other
                        selector.register(one, selectors.EVENT_READ)
                    continue
                if sock not in peers:  # closed with its peer earlier in this round
                    continue
                assert isinstance(sock, socket.socket)
                size = sock.recv_into(buffer)
                if size:
                    peers[sock].sendall(buffer[:size])
                    continue
                other = peers.pop(sock)
                peers.pop(other, None)
                for one in (sock, other):
                    selector.unregister(one)
                    one.close()
    finally:
        for sock in peers:
            sock.close()
        selector.close()


class ThreadForwarder:
    """A forwarder thread in this process (``.endpoint``) to ``tcp://127.0.0.1:upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=_forward, args=(self.listener, upstream_port, self._stop_r), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop_w.send(b"\0")
        self._thread.join(5)
        for sock in (self.listener, self._stop_r, self._stop_w):
            sock.close()


class _Child:
    """A forwarder in a process of its own: it prints its port, and ends when its stdin closes."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.kill()
            self.process.wait(5)
            raise RuntimeError(f"{command[0]} said {line!r}, not its port")
        self.endpoint = f"tcp://127.0.0.1:{int(line)}"

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stdout.close()


class ProcessForwarder(_Child):
    """The Python forwarder's loop in a process of its own."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__([sys.executable, os.path.abspath(__file__), str(upstream_port)])


C_RELAY = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[1 << 20];
static int peer[65536];

int main(int argc, char **argv) {
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof at;
    int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0), ep = epoll_create1(0);
    if (bind(listener, (struct sockaddr *)&at, sizeof at) || listen(listener, 16)) return 1;
    getsockname(listener, (struct sockaddr *)&at, &len);
    printf("%d\n", ntohs(at.sin_port));
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN}, got[64];
    ev.data.fd = listener; epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    ev.data.fd = 0; epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    for (;;) {
        int n = epoll_wait(ep, got, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = got[i].data.fd;
            if (fd == 0) return 0;
            if (fd == listener) {
                int client = accept(listener, NULL, NULL), upstream = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                         .sin_port = htons(atoi(argv[1]))};
                if (connect(upstream, (struct sockaddr *)&to, sizeof to)) return 2;
                peer[client] = upstream; peer[upstream] = client;
                int both[2] = {client, upstream};
                for (int k = 0; k < 2; k++) {
                    setsockopt(both[k], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    ev.data.fd = both[k]; epoll_ctl(ep, EPOLL_CTL_ADD, both[k], &ev);
                }
                continue;
            }
            ssize_t got_bytes = read(fd, buf, sizeof buf);
            if (got_bytes <= 0) { close(fd); close(peer[fd]); continue; }
            for (ssize_t sent = 0, w; sent < got_bytes; sent += w)
                if ((w = write(peer[fd], buf + sent, got_bytes - sent)) < 0) return 3;
        }
    }
}
"""


class CRelay(_Child):
    """The epoll relay in C, in a process of its own."""

    def __init__(self, upstream_port: int, binary: str) -> None:
        super().__init__([binary, str(upstream_port)])

    @staticmethod
    def build(directory: str) -> str | None:
        """Compile the relay into ``directory``: its path, or ``None`` without a C compiler."""
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            return None
        source, binary = os.path.join(directory, "relay.c"), os.path.join(directory, "relay")
        with open(source, "w") as file:
            file.write(C_RELAY)
        done = subprocess.run([compiler, "-O2", "-o", binary, source], capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"(no C relay: {compiler} failed: {done.stderr.strip()[:200]})")
            return None
        return binary


class Clock(_Child):
    """A PULL in a process of its own that answers each message with when it arrived (``perf_counter()``, which
    is the same clock in every process here), on a PUSH to the benchmark's ``arrivals`` PULL."""

    def __init__(self, arrivals: str) -> None:
        super().__init__([sys.executable, os.path.abspath(__file__), "clock", arrivals])
        self.port = int(self.endpoint.rsplit(":", 1)[1])


def clock(arrivals: str) -> None:
    import zmq  # only the clock speaks ZeroMQ

    with zmq.Context() as context, context.socket(zmq.PULL) as pull, context.socket(zmq.PUSH) as back:
        pull.linger = back.linger = 0
        print(pull.bind_to_random_port("tcp://127.0.0.1"), flush=True)
        back.connect(arrivals)
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        while True:
            pull.recv()
            back.send(struct.pack("d", time.perf_counter()))


def main() -> None:
    if sys.argv[1] == "clock":
        clock(sys.argv[2])
        return
    stop_r, stop_w = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def wait_for_stdin() -> None:
        sys.stdin.read()
        stop_w.send(b"\0")

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    _forward(listener, int(sys.argv[1]), stop_r)


if __name__ == "__main__":
    main()
