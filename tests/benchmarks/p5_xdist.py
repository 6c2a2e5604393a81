"""P5: a suite of 500 process tests, serial vs ``-n 2`` (pytest-xdist), on 2 CPUs.

The suite is generated in a temporary directory: 10 files of 50 ProcessTest tests, each
starting a real PongProc with ``zmq_process_factory`` (ready once its REQ mimic from
``zmq_socket_factory`` is connected, on a ``zmq_endpoint``), one ``yield send`` +
``yield recv``, and the fixtures' teardown. Both runs are pinned to the same 2 CPUs
(``sched_setaffinity``, inherited by every worker and child); the figure is wall time
from spawn to exit of ``python -m pytest -q``, runs alternating serial / parallel. The
speed-up is the median of the per-pair ratios serial / parallel.

The CPU time of each run is what the two CPUs spent busy meanwhile (``/proc/stat``: every
process of the run, the forkservers and the processes under test included, which
``getrusage`` would miss once they are orphaned), per test. Two CPUs cannot finish the
parallel run's CPU time faster than in half of it, so ``2 x serial wall / parallel CPU``
is the highest speed-up that these runs allow, whatever the scheduling.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from bench_common import PINGPONG_DIR, Result, Row, ratio_fields, scaled

TARGET = 1.7
FILES = 10
RUN_TIMEOUT = 900.0

TEST_FILE = """\
import pytest
import zmq
from pingpong.pong import PongProc

from zmqtest import Conversation, ProcessTest


@pytest.mark.process
class TestPong(ProcessTest):
    @pytest.mark.parametrize("number", range({count}))
    def test_ping(self, number, zmq_process_factory, zmq_socket_factory, zmq_endpoint) -> Conversation:
        client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client")
        zmq_process_factory(PongProc(zmq_endpoint), ready=client)
        yield ("send", client, [], ["ping", number])
        reply = yield ("recv", client)
        assert reply == [["pong", number]]
"""
PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider -p no:randomly
markers =
    process: a process test
"""


def two_cpus() -> set[int]:
    return set(sorted(os.sched_getaffinity(0))[:2])


def busy_seconds(cpus: set[int]) -> float | None:
    """Seconds the CPUs ``cpus`` have spent busy since boot (``/proc/stat``), or None without it (not Linux)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(field) for field in fields[:8]]
            ticks += sum(values) - values[3] - values[4]  # all but idle and iowait
    return ticks / os.sysconf("SC_CLK_TCK")


def run(scale: float = 1.0, tests: int = 500) -> Result:
    pairs = scaled(2, scale, 1)
    cpus = two_cpus()
    per_file = max(1, tests // FILES)
    total = per_file * min(FILES, tests)
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PINGPONG_DIR, env.get("PYTHONPATH")]))

    with tempfile.TemporaryDirectory(prefix="zmqtest-bench-p5-") as suite:
        for index in range(min(FILES, tests)):
            Path(suite, f"test_suite_{index:02}.py").write_text(TEST_FILE.replace("{count}", str(per_file)))
        Path(suite, "pytest.ini").write_text(PYTEST_INI)

        def once(parallel: bool) -> tuple[float, float | None]:
            """Wall seconds of one run, and its CPU seconds (None where they cannot be read)."""
            command = [sys.executable, "-m", "pytest", "-q", *(["-n", "2"] if parallel else [])]
            busy = busy_seconds(cpus)
            start = time.perf_counter()
            try:
                done = subprocess.run(
                    command,
                    cwd=suite,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=RUN_TIMEOUT,
                    check=False,
                    preexec_fn=lambda: os.sched_setaffinity(0, cpus),
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"P5: {' '.join(command)} still running after {RUN_TIMEOUT:g} s") from None
            seconds = time.perf_counter() - start
            busy_after = busy_seconds(cpus)
            cpu = None if busy is None or busy_after is None else busy_after - busy
            if done.returncode != 0 or f"{total} passed" not in done.stdout:
                first_failure = done.stdout.find("___")
                detail = done.stdout[first_failure : first_failure + 4000] if first_failure >= 0 else ""
                raise RuntimeError(
                    f"P5: {' '.join(command)} in {suite}: exit code {done.returncode}, expected '{total} passed':\n"
                    f"{detail}\n...\n{done.stdout[-1500:]}{done.stderr[-2000:]}"
                )
            return seconds, cpu

        samples: dict[str, list[float]] = {"serial": [], "parallel": []}
        cpu_per_test: dict[str, list[float]] = {"serial": [], "parallel": []}
        ratios, ceilings = [], []
        for index in range(pairs):
            pair = {}
            cpu: dict[str, float | None] = {}
            for parallel in (False, True) if index % 2 == 0 else (True, False):
                name = "parallel" if parallel else "serial"
                pair[name], cpu[name] = once(parallel)
                samples[name].append(pair[name])
                print(f"  P5: {name} run: {pair[name]:.1f} s", flush=True)
            ratios.append(pair["serial"] / pair["parallel"])
            if cpu["serial"] is not None and cpu["parallel"]:
                for name in cpu_per_test:
                    cpu_per_test[name].append(cast(float, cpu[name]) / total * 1000)
                ceilings.append(2 * pair["serial"] / cpu["parallel"])
    rows = [
        Row("P5", f"{total} process tests, serial (reference)", "s", samples["serial"], key="serial"),
        Row(
            "P5",
            f"{total} process tests, `-n 2` (speed-up = serial / parallel)",
            "s",
            samples["parallel"],
            reference="serial (speed-up)",
            target=f"≥ {TARGET:g}x speed-up",
            key="-n 2",
            **ratio_fields(ratios),
        ),
    ]
    rows[1].met = rows[1].ratio is not None and rows[1].ratio >= TARGET
    if ceilings:
        rows += [
            Row("P5", "CPU time per test, serial (every process, on the two CPUs)", "ms", cpu_per_test["serial"]),
            Row("P5", "CPU time per test, `-n 2` (every process, on the two CPUs)", "ms", cpu_per_test["parallel"]),
        ]
    notes = [
        f"{pairs} alternating pairs; both runs pinned to CPUs {sorted(cpus)}; {FILES} files x {per_file} tests; "
        "start method forkserver (zmqtest's default); the ratio here is a speed-up (higher is better)."
    ]
    if ceilings:
        serial_cpu, parallel_cpu = (statistics.median(cpu_per_test[name]) for name in ("serial", "parallel"))
        notes.append(
            f"The highest speed-up these runs allow on {len(cpus)} CPUs (2 x serial wall / parallel CPU time, per "
            f"pair): {statistics.median(ceilings):.2f}x; CPU time per test, median: serial {serial_cpu:.1f} ms, "
            f"`-n 2` {parallel_cpu:.1f} ms."
        )
    if len(cpus) < 2:
        notes.append("Only one CPU is usable here: the parallel run cannot be faster.")
    return Result("P5", f"A {total}-test process suite: `-n 2` vs serial", rows, notes)
