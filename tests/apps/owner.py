"""An interpreter that starts processes under test and then dies without stopping them.

``python owner.py OUTPUT_DIR MODE``: starts a Process that ignores SIGINT and SIGTERM
(fork), a command line with a grandchild holding a port, and a Process under spawn;
prints ``pids <pid> ...`` (leaders, then the grandchild) and ``reaper <pid>``; then

- ``sleep``: waits to be SIGKILLed (the reaper must end them all);
- ``exit``: exits normally without closing its manager, with the reaper switched off (the atexit handler
  alone must stop them);
- ``escape``: starts behave.py ``escape`` as a command line and as a forked Process instead, prints
  ``escaped <pid> ...`` (those of their descendants outside their groups that executed a program), then
  ``uncovered <pid>`` (the forked Process's daemon, which no backstop can trace once we are SIGKILLed), waits to be
  SIGKILLed;
- ``window-METHOD``: starts one Process (or command) that obeys, prints ``child <pid>`` when the watchdog is about
  to hear of it, and waits there to be SIGKILLed.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.behave import Behave
from zmqtest import backstop
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings


def main() -> None:
    output_dir, mode = sys.argv[1], sys.argv[2]
    if mode.startswith("window-"):
        return window(output_dir, mode.removeprefix("window-"))
    if mode == "escape":
        return escape(output_dir)
    if mode == "exit":
        backstop.arm = backstop.register = backstop.unregister = lambda *args: None  # type: ignore[assignment]
    manager = ProcessManager(output_dir, settings=Settings(stop_grace=0.2, startup_timeout=30))
    stubborn = manager.start(Behave("ignore-int-term"), start_method="fork", ready="ready")
    command = manager.start(
        [sys.executable, os.path.join(os.path.dirname(__file__), "behave.py"), "grandchild"],
        ready=r"ready port=\d+ grandchild=(\d+)",
    )
    spawned = manager.start(Behave("obey"), start_method="spawn", ready="ready")
    print("pids", stubborn.pid, command.pid, spawned.pid, command.endpoint, flush=True)
    print("reaper", backstop.pid(), flush=True)
    if mode == "sleep":
        time.sleep(600)  # sleep-ok: the owner idles until the test SIGKILLs it


def window(output_dir: str, method: str) -> None:
    """Stop between the start of a child and its registration with the watchdog."""

    def register(pgid: int) -> None:
        print("child", pgid, flush=True)
        time.sleep(600)  # sleep-ok: the owner idles until the test SIGKILLs it

    backstop.register = register  # type: ignore[assignment]
    manager = ProcessManager(output_dir, settings=Settings(stop_grace=0.2, startup_timeout=30))
    if method == "command":
        manager.start([sys.executable, os.path.join(os.path.dirname(__file__), "behave.py"), "obey"])
    else:
        manager.start(Behave("obey"), start_method=method)


def escape(output_dir: str) -> None:
    manager = ProcessManager(output_dir, settings=Settings(stop_grace=0.2, startup_timeout=30))
    command = manager.start(
        [sys.executable, os.path.join(os.path.dirname(__file__), "behave.py"), "escape"], ready=r"ready escaped=(\S+)"
    )
    forked = manager.start(Behave("escape"), start_method="fork", ready=r"ready escaped=(\S+)")
    assert command.endpoint is not None
    assert forked.endpoint is not None
    pids = [*command.endpoint.split(","), forked.endpoint.split(",")[0]]
    print("escaped", *pids, flush=True)
    # the forked Process's daemon (forked without exec): not covered once we are SIGKILLed; the test cleans it up
    print("uncovered", forked.endpoint.split(",")[1], flush=True)
    time.sleep(600)  # sleep-ok: the owner idles until the test SIGKILLs it


if __name__ == "__main__":
    main()
