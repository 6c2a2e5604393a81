"""What every benchmark shares: result rows, statistics, interleaving, CPU load, the machine's description.

Method (the same as in the performance baselines the targets come from): variants that are
compared run side by side in one process, in interleaved rounds with rotating order, so a
slow spell of the machine hits all of them; a ratio is the median over rounds of (variant's
round median / reference's round median).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PINGPONG_DIR = os.path.join(REPO, "examples", "pingpong")
"""Where ``python -m pingpong`` runs from, and the directory that makes ``import pingpong`` work."""


@dataclasses.dataclass
class Row:
    """One line of the results table."""

    bench: str
    """P1 ... P5."""
    what: str
    unit: str
    """us, ms or s: the unit of median, p10 and p90."""
    samples: list[float]
    """Every measurement, in ``unit``."""
    ratio: float | None = None
    """Median over rounds of (this row's round median / the reference's), or None."""
    ratio_spread: tuple[float, float] | None = None
    """p10 and p90 of the per-round ratios."""
    reference: str = ""
    """What the ratio is relative to."""
    target: str = ""
    met: bool | None = None
    """None: no target on this row."""
    decided_by: str = ""
    """What decided ``met`` when it is not this row's ratio (``1.042x in instructions``)."""
    key: str = ""
    """A short name for the plot."""

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p10(self) -> float:
        return percentile(self.samples, 10)

    @property
    def p90(self) -> float:
        return percentile(self.samples, 90)


@dataclasses.dataclass
class Result:
    """What one benchmark measured: its rows, and notes for the report."""

    bench: str
    title: str
    rows: list[Row]
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    background_cpu: float | None = None
    """Percent of all CPUs busy with other programs just before this benchmark (sampled while it was idle)."""


def percentile(samples: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (the same as numpy's default)."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rotated(items: Sequence[T], by: int) -> list[T]:
    """``items`` rotated left by ``by``: round r runs the variants in a different order."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def round_ratios(rounds: Sequence[dict[str, list[float]]], key: str, reference: str) -> list[float]:
    """Per round: median of ``key``'s samples / median of ``reference``'s samples."""
    return [
        statistics.median(samples[key]) / statistics.median(samples[reference])
        for samples in rounds
        if samples.get(key) and samples.get(reference)
    ]


def ratio_fields(ratios: Sequence[float]) -> dict[str, Any]:
    """The ratio and its spread for a Row."""
    if not ratios:
        return {}
    return {"ratio": statistics.median(ratios), "ratio_spread": (percentile(ratios, 10), percentile(ratios, 90))}


def scaled(count: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(count * scale))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``condition`` until true; raise after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)  # sleep-ok: polling a condition that has no event to wait on


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[list[int]]:
    """``processes`` busy-looping Python processes, running for the ``with`` block; killed and reaped after it."""
    import psutil

    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            started.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        handles = [psutil.Process(proc.pid) for proc in started]
        wait_until(
            lambda: all(handle.cpu_times().user >= 0.05 for handle in handles),
            10.0,
            f"{processes} busy-loop processes spinning",
        )
        yield [proc.pid for proc in started]
    finally:
        for proc in started:
            proc.kill()
        for proc in started:
            proc.wait(10)


def background_cpu_percent(seconds: float = 0.5) -> float:
    """Percent of all CPUs busy over ``seconds`` while this program does nothing: other programs' load."""
    import psutil

    psutil.cpu_percent(None)
    time.sleep(seconds)  # sleep-ok: the measuring window, during which we must stay idle
    return float(psutil.cpu_percent(None))


def machine() -> dict[str, str]:
    """The machine and the software versions the figures depend on."""
    import psutil
    import pytest
    import zmq

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": f"{psutil.cpu_count()} logical, {psutil.cpu_count(logical=False)} physical, {usable} usable",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "pytest": pytest.__version__,
    }


def machine_line(info: dict[str, str]) -> str:
    return (
        f"{info['cpu']}, {info['cores']}; {info['kernel']}; Python {info['python'].split()[-1]}, "
        f"pyzmq {info['pyzmq']}, libzmq {info['libzmq']}"
    )
