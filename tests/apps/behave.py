"""Processes under test that end in every way a process can, for zmqtest's own tests.

One behaviour per mode, the same as a ``multiprocessing.Process`` (:class:`Behave`) and
as a command line (``python behave.py MODE [ARG]``). Each mode that keeps running
prints ``ready`` once its signal handling is in place, so a test never signals it
too early. Only the standard library is imported at the top: spawned children and
command lines start fast.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import signal
import socket
import sys
import time

MODES = (
    "return",
    "exit3",
    "raise",
    "obey",
    "ignore-int",
    "ignore-int-term",
    "grandchild",
    "crash-on-int",
    "escape",
    "supervisor",
)


def behave(mode: str, arg: str = "") -> None:
    """Act out ``mode``; ``arg`` is mode-specific."""
    if mode == "return":
        print("ready", flush=True)
        return
    if mode == "exit3":
        print("ready", flush=True)
        sys.exit(3)
    if mode == "raise":
        print("ready", flush=True)
        raise RuntimeError("boom from behave")
    if mode == "ignore-int":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if mode == "ignore-int-term":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "grandchild":
        grandchild()
        return
    if mode == "escape":
        escape()
        return
    if mode == "supervisor":
        supervisor()
        return
    if mode == "note-signals":  # notes each SIGINT and SIGTERM (its pid and the signal) in file arg; SIGTERM ends it
        note = os.open(arg, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # appends are atomic: the file orders them

        def noted(signum: int, frame: object) -> None:
            os.write(note, f"{os.getpid()} {signal.Signals(signum).name}\n".encode())
            if signum == signal.SIGTERM:
                os._exit(0)

        signal.signal(signal.SIGINT, noted)
        signal.signal(signal.SIGTERM, noted)
    if mode == "crash-on-int":  # a shutdown that goes wrong: its SIGINT handler raises (a traceback, exit code 1)
        signal.signal(signal.SIGINT, crash)
    if mode == "twice":  # exits on the second SIGINT only: shows that SIGINT is repeated
        count: list[int] = []
        signal.signal(signal.SIGINT, lambda signum, frame: count.append(signum) if not count else sys.exit(0))
    if mode == "modules":  # which of the modules named in arg were imported before run() (e.g. by a preload)
        print("modules", " ".join(f"{name}={name in sys.modules}" for name in arg.split()), flush=True)
        return
    if mode == "lost":  # the lost-SIGINT race: running when the first SIGINT comes, which is only noted, then asleep
        noted: list[int] = []
        signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum) if not noted else sys.exit(0))
        print("ready", flush=True)
        while not noted:
            pass  # running, as a thread is between checking for signals and entering a blocking C call
        while True:
            time.sleep(60)  # sleep-ok: blocked as in a zmq recv; only a second SIGINT ends it
    if mode == "slow-exit":  # a clean shutdown that takes a while (closing, joining) after the SIGINT, then exit 0
        print("ready", flush=True)
        try:
            while True:
                time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped
        except KeyboardInterrupt:
            for _ in range(int(float(arg or 0.5) / 0.02)):
                time.sleep(0.02)  # sleep-ok: a slow shutdown (short waits, as joins and closes) not to break into
            sys.exit(0)
    if mode == "print":
        print(f"out {arg}", flush=True)
        print(f"err {arg}", file=sys.stderr, flush=True)
        print("unflushed at exit", arg)
        return
    if mode == "die":  # dies without saying it is ready; prints when, for the test to measure the report's delay
        print(f"dying at {time.time():.6f}", file=sys.stderr, flush=True)
        os._exit(2)
    if mode == "bind":  # bind arg (a tcp endpoint) with zmq, then wait for SIGINT
        import zmq

        context = zmq.Context()
        sock = context.socket(zmq.REP)
        sock.linger = 0
        sock.bind(arg)
        print(f"bound {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
    if mode == "kill-message":  # a REP server that stops on b"kill"
        import zmq

        context = zmq.Context()
        sock = context.socket(zmq.REP)
        sock.linger = 0
        sock.bind("tcp://127.0.0.1:*")
        print(f"listening on {sock.getsockopt_string(zmq.LAST_ENDPOINT)}", flush=True)
        while sock.recv() != b"kill":
            sock.send(b"pong")
        sock.close()
        context.term()
        return
    if mode == "env":
        print(f"env {os.environ.get(arg, '<unset>')} cwd {os.getcwd()}", flush=True)
        return
    if mode == "patched":
        import json

        print(f"patched {json.dumps([1])}", flush=True)
        return
    if mode == "silent":  # runs without ever printing
        pass
    else:
        print("ready", flush=True)
    while True:
        time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped


def grandchild() -> None:
    """Fork a grandchild that holds a listening tcp port and ignores SIGINT and SIGTERM; obey SIGINT ourselves."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped
    listener.close()
    print(f"ready port={port} grandchild={pid}", flush=True)
    while True:
        time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped


def escape() -> None:
    """Start two descendants that leave our process group: a command in a new session, a daemon; obey SIGINT.

    The command (``start_new_session``) stays our child; the daemon (fork, setsid, fork,
    no exec) is orphaned at once. Both ignore SIGINT and SIGTERM. Prints their pids.
    """
    import subprocess

    stubborn = "import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (2, 15)]; print('up', flush=True)"
    command = subprocess.Popen(
        [sys.executable, "-c", stubborn + "\nwhile True: time.sleep(60)"],  # sleep-ok: a child that idles till killed
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert command.stdout is not None
    command.stdout.readline()  # its handlers are in place
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        daemon = os.fork()
        if daemon == 0:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.write(write_end, b"x")
            while True:
                time.sleep(60)  # sleep-ok: a daemon that idles until it is killed
        os._exit(0)
    os.waitpid(middle, 0)
    os.read(read_end, 1)  # the daemon's handlers are in place
    print(f"ready escaped={command.pid},{_daemon_pid(middle)}", flush=True)
    while True:
        time.sleep(60)  # sleep-ok: a process under test that idles until it is stopped


def supervisor() -> None:
    """Daemonize as ``circusd --daemon`` does, the daemon starting a worker of its own; print their pids and return.

    The worker has an empty environment and a session of its own (as circus starts its
    watchers): nothing marks it as the test's but its parent.
    """
    import subprocess

    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        worker = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"],  # sleep-ok: a worker that idles
            env={},
            start_new_session=True,
        )
        os.write(write_end, f"{os.getpid()},{worker.pid}".encode())
        while True:
            time.sleep(60)  # sleep-ok: a daemon that idles until it is killed
    os.close(write_end)
    print(f"ready supervised={os.read(read_end, 100).decode()}", flush=True)


def _daemon_pid(middle: int) -> int:
    """The pid of the daemon that ``middle`` forked: the process whose session ``middle`` leads."""
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != middle:
            try:
                if os.getsid(int(name)) == middle:
                    return int(name)
            except OSError:
                continue
    raise RuntimeError(f"no daemon in session {middle}")


def crash(signum: int, frame: object) -> None:
    raise RuntimeError("boom while stopping")


def fake_dumps(obj: object, *args: object, **kwargs: object) -> str:
    """A replacement for json.dumps, patched into a child by the tests (module level: picklable)."""
    return f"fake dumps of {obj!r}"


class Behave(multiprocessing.Process):
    """:func:`behave` as a Process."""

    def __init__(self, mode: str, arg: str = "") -> None:
        super().__init__()
        self.mode = mode
        self.arg = arg

    def run(self) -> None:
        behave(self.mode, self.arg)


class SlowToStart(Behave):
    """:class:`Behave` whose child takes a while in multiprocessing's own start-up, before ``run()``.

    An after-fork hook (multiprocessing runs them in the child's bootstrap) takes 0.5 s:
    a SIGINT that lands there is outside anything ``run()`` could catch.
    """

    def __init__(self, mode: str, arg: str = "") -> None:
        super().__init__(mode, arg)
        multiprocessing.util.register_after_fork(self, _slow_start)  # for a fork child

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        multiprocessing.util.register_after_fork(self, _slow_start)  # for a spawn child, which unpickles it


def _slow_start(process: object) -> None:
    time.sleep(0.5)  # sleep-ok: the start-up a test's SIGINT lands in


if __name__ == "__main__":
    behave(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
