"""Figure 4: how soon a test learns that its process died: median and max, within the 250 ms bound.

A generated project whose processes die on purpose: while the test waits in a mimic's
``recv`` (the process receives ``b"die"``), and while the test waits for it to become
ready (an output line that never comes, or a connection to a mimic that never comes).
Half are ``Process`` instances (forkserver), half command lines. Measured with each watcher
(``ZMQTEST_WATCHER``: ``pidfd``, and ``portable``, the one for systems without pidfds).

How it is measured: just before ``os._exit`` the child writes ``time.monotonic()`` to
a file; the test reads the clock when zmqtest's error (``ProcessExited`` from the
wait, ``StartError`` from the start) reaches it. On Linux ``time.monotonic()`` is
``CLOCK_MONOTONIC``, one clock for every process, so the difference is the latency: the
process's exit in the kernel, zmqtest seeing its sentinel, reaping it, and building the
error with the tail of its output. A wait in a mimic's ``recv`` also gives a message
the process sent just before its death a moment to arrive (``DEATH_GRACE_MS``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from inner_runs import OUTER_DEADLINE, VARIANTS, InnerProject, spread

import zmqtest.sockets
from zmqtest import watchers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

DEATHS = 50
"""Deaths measured per kind of wait."""
BOUND = 0.25
"""Seconds: the documented bound from a process's death to the test's error."""

INNER_TESTS = f"""
import os
import time
from pathlib import Path

import pytest
import zmq

from children import Child, command
from zmqtest import ProcessExited, ProcessTest, StartError

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def note(wait, died, seen):
    with open(f"latency-{{WORKER}}", "a") as file:
        file.write(f"{{wait}} {{seen - float(died.read_text())!r}}\\n")


class TestDeathDuringRecv(ProcessTest):
    @pytest.mark.parametrize("n", range({DEATHS}))
    def test_recv(self, n, zmq_process_factory, zmq_socket_factory, zmq_endpoint, tmp_path):
        died = tmp_path / "died"
        client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=30)
        if n % 2:
            zmq_process_factory(command("serve", zmq_endpoint, str(died)), ready=client)
        else:
            zmq_process_factory(Child("serve", zmq_endpoint, str(died)), ready=client)
        client.send(b"die")
        try:
            yield ("recv", client)
        except ProcessExited:
            seen = time.monotonic()
        else:
            pytest.fail("the process answered instead of dying")
        note("recv", died, seen)


@pytest.mark.parametrize("n", range({DEATHS}))
def test_readiness(n, zmq_process_factory, zmq_socket_factory, tmp_path):
    died = tmp_path / "died"
    target = command("die", "", str(died)) if n % 2 else Child("die", "", str(died))
    ready = "never printed" if n % 4 < 2 else zmq_socket_factory(zmq.REP, bind=("", 0), name="never connected")
    with pytest.raises(StartError, match="ended before it was ready"):
        zmq_process_factory(target, ready=ready, ready_timeout=30)
    note("readiness", died, time.monotonic())
"""


def grace() -> str:
    """What the recv latency includes on purpose: the time a wait still gives a message sent just before a death."""
    millis = getattr(zmqtest.sockets, "DEATH_GRACE_MS", None)
    return f" (a recv includes the {millis} ms it grants a message sent just before the death)" if millis else ""


@pytest.mark.parametrize("watcher", watchers.CHOICES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_death_ends_the_wait_within_the_bound(
    project: InnerProject,
    figure: Callable[[int, str, str], None],
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    watcher: str,
) -> None:
    monkeypatch.setenv(watchers.ENV, watcher)  # the inner run inherits it
    project.pytester.makepyfile(test_inner=INNER_TESTS)
    result, seconds = project.run(variant, "-q")
    latencies: dict[str, list[float]] = {"recv": [], "readiness": []}
    for line in project.notes("latency-"):
        wait, latency = line.split()
        latencies[wait].append(float(latency))
    figure(
        4,
        f"early-death detection latency, from the child's last clock reading to the test's error (bound "
        f"{BOUND * 1000:.0f} ms)",
        f"{watcher} watcher: "
        + "; ".join(
            f"during a {'mimic recv' if wait == 'recv' else 'readiness wait'}: "
            + (spread(values) + f" over {len(values)}" if values else "not measured")
            for wait, values in latencies.items()
        )
        + grace()
        + f"; in {seconds:.1f} s",
    )
    result.assert_outcomes(passed=2 * DEATHS)
    assert all(len(values) == DEATHS for values in latencies.values())
    slow = sorted(latency for values in latencies.values() for latency in values if latency > BOUND)
    assert slow == [], f"{len(slow)} deaths took longer than {BOUND * 1000:.0f} ms to end the wait: {slow}"
