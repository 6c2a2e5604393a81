"""Start and stop costs of zmqtest.processes, next to bare multiprocessing and subprocess in the same run.

``python tests/apps/bench_processes.py [N]`` prints medians (and maxima) in milliseconds:

- start: ``ProcessManager.start`` until ready, by an output pattern and by a callable;
- stop: ``ManagedProcess.stop`` of a child that obeys SIGINT;
- bare: ``Process(target=noop).start(); join()`` (or ``Popen([python, -c, pass]).wait()``);
- stop by stage, with stop_grace=0.2: a child that obeys SIGINT, one that ignores it, one that
  ignores SIGINT and SIGTERM;
- how long after a child's death during readiness its StartError is raised.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in main() only: spawn and forkserver children re-import this module, keep it bare
    from zmqtest.processes import ManagedProcess, ProcessManager

BEHAVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "behave.py")
KINDS = ("fork", "forkserver", "spawn", "command")


def noop() -> None:
    pass


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} ({max(samples) * 1000:6.1f})"


def start(procs: ProcessManager, kind: str, mode: str, **options: object) -> ManagedProcess:
    from apps.behave import Behave

    if kind == "command":
        return procs.start([sys.executable, BEHAVE, mode], **options)  # type: ignore[arg-type]
    return procs.start(Behave(mode), start_method=kind, **options)  # type: ignore[arg-type]


def bare(kind: str) -> float:
    began = time.perf_counter()
    if kind == "command":
        subprocess.Popen([sys.executable, "-c", "pass"]).wait()
    else:
        proc = multiprocessing.get_context(kind).Process(target=noop)  # type: ignore[attr-defined]
        proc.start()
        proc.join()
    return time.perf_counter() - began


def ready_file(procs: ProcessManager) -> Callable[[], bool]:
    return lambda: "ready" in procs.processes[-1].stdout_path.read_text()


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from zmqtest import backstop
    from zmqtest.errors import StartError
    from zmqtest.processes import ProcessManager
    from zmqtest.settings import Settings

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    settings = Settings(stop_grace=0.2, startup_timeout=30)
    with ProcessManager(settings=settings) as procs:
        began = time.perf_counter()
        start(procs, "fork", "obey", ready="ready").stop()
        first = time.perf_counter() - began
    print(f"first start+stop in this interpreter (starts the reaper, pid {backstop.pid()}): {first * 1000:.1f} ms")
    for kind in KINDS:  # warm up: forkserver and resource tracker started, modules cached
        bare(kind)
    print(f"n = {runs}; milliseconds, median (max)")
    print(f"{'kind':11} {'start/pattern':>16} {'start/callable':>16} {'stop (SIGINT)':>16} {'bare start+join':>16}")
    for kind in KINDS:
        by_pattern, by_callable, stops, bares = [], [], [], []
        for _ in range(runs):
            bares.append(bare(kind))
            with ProcessManager(settings=settings) as procs:
                began = time.perf_counter()
                handle = start(procs, kind, "obey", ready="ready")
                by_pattern.append(time.perf_counter() - began)
                began = time.perf_counter()
                handle.stop()
                stops.append(time.perf_counter() - began)
                began = time.perf_counter()
                start(procs, kind, "obey", ready=ready_file(procs))
                by_callable.append(time.perf_counter() - began)
        print(f"{kind:11} {ms(by_pattern):>16} {ms(by_callable):>16} {ms(stops):>16} {ms(bares):>16}")
    print("stop by stage, stop_grace=0.2 s: stop_seconds, median (max)")
    for kind in ("fork", "command"):
        for mode, stage in (("obey", "SIGINT"), ("ignore-int", "SIGTERM"), ("ignore-int-term", "SIGKILL")):
            seconds = []
            for _ in range(max(3, runs // 4)):
                with ProcessManager(settings=settings) as procs:
                    handle = start(procs, kind, mode, ready="ready")
                    handle.stop()
                    assert handle.stopped_by == stage, handle.stopped_by
                    assert handle.stop_seconds is not None
                    seconds.append(handle.stop_seconds)
            print(f"{kind:11} {mode:16} stopped by {stage:8} {ms(seconds)}")
    print("death during readiness -> StartError, ms from the child's last act: median (max)")
    for kind in KINDS:
        delays = []
        for _ in range(runs):
            with ProcessManager(settings=settings) as procs:
                try:
                    start(procs, kind, "die", ready="never printed", ready_timeout=30)
                except StartError as exc:
                    reported = time.time()
                    died = float(str(exc).split("dying at ")[1].split()[0])
                    delays.append(reported - died)
        print(f"{kind:11} {ms(delays)}")
    watchdog = backstop.pid()
    if watchdog is not None:
        with open(f"/proc/{watchdog}/status") as status:
            rss = next(line.split()[1] for line in status if line.startswith("VmRSS"))
        print(f"reaper: 1 process, VmRSS {rss} kB")


if __name__ == "__main__":
    main()
