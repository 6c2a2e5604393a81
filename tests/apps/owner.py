"""An interpreter that starts processes under test and then dies without stopping them.

``python owner.py OUTPUT_DIR MODE``: starts a Process that ignores SIGINT and SIGTERM
(fork), a command line with a grandchild holding a port, and a Process under spawn;
prints ``pids <pid> ...`` (leaders, then the grandchild) and ``reaper <pid>``; then

- ``sleep``: waits to be SIGKILLed (the reaper must end them all);
- ``exit``: exits normally without closing its manager, with the reaper switched off (the atexit handler
  alone must stop them).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.behave import Behave
from zmqtest import reaper
from zmqtest.processes import ProcessManager
from zmqtest.settings import Settings


def main() -> None:
    output_dir, mode = sys.argv[1], sys.argv[2]
    if mode == "exit":
        reaper.register = reaper.unregister = lambda pgid: None
    manager = ProcessManager(output_dir, settings=Settings(stop_grace=0.2, startup_timeout=30))
    stubborn = manager.start(Behave("ignore-int-term"), start_method="fork", ready="ready")
    command = manager.start(
        [sys.executable, os.path.join(os.path.dirname(__file__), "behave.py"), "grandchild"],
        ready=r"ready port=\d+ grandchild=(\d+)",
    )
    spawned = manager.start(Behave("obey"), start_method="spawn", ready="ready")
    print("pids", stubborn.pid, command.pid, spawned.pid, command.endpoint, flush=True)
    print("reaper", reaper.pid(), flush=True)
    if mode == "sleep":
        time.sleep(600)  # sleep-ok: the owner idles until the test SIGKILLs it


if __name__ == "__main__":
    main()
