"""Figure 1: consecutive tests re-binding one tcp port meet no EADDRINUSE.

A generated project of 1,000 tests, each binding the same reserved port (one per
xdist worker: two workers binding one port at the same time would collide by
design) through zmqtest's fixtures, in turns: a mimic socket, a ``Process`` under
test, a command whose SIGINT-proof grandchild holds the port, and a ``Process`` the
test SIGKILLs. Each test also makes a round trip through the port, so there are live
connections when it is torn down. A bind that meets EADDRINUSE fails its test with
"Address already in use" (the mimic's error, or the process's in its output tail):
those failures are counted from the run's JUnit XML report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable

import pytest
from inner_runs import OUTER_DEADLINE, VARIANTS, InnerProject

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

TESTS = 1000
CYCLE = ("process", *["mimic"] * 6, "grandchild", *["mimic"] * 6, "killed", *["mimic"] * 5)
"""Who binds the port, test after test."""

INNER_TESTS = f"""
import os
import signal

import pytest
import zmq

from children import Child, command
from zmqtest import EndpointFactory

CYCLE = {CYCLE!r}


@pytest.fixture(scope="session")
def endpoint():
    \"\"\"One reserved port for every test of this session (of this worker, under xdist).\"\"\"
    with EndpointFactory() as endpoints:
        endpoint = endpoints.tcp()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"endpoint-{{worker}}", "w") as note:
            note.write(endpoint + "\\n")
        yield endpoint


@pytest.mark.parametrize("n", range({TESTS}))
def test_rebind(n, endpoint, zmq_socket_factory, zmq_process_factory):
    binder = CYCLE[n % len(CYCLE)]
    client = zmq_socket_factory(zmq.REQ, connect=endpoint, name="client")
    if binder == "mimic":
        server = zmq_socket_factory(zmq.REP, bind=endpoint, name="server")
    elif binder == "process":
        zmq_process_factory(Child("serve", endpoint), ready=client)
    elif binder == "grandchild":
        zmq_process_factory(command("grandchild", endpoint), ready=r"^ready")
    else:
        killed = zmq_process_factory(Child("serve", endpoint), ready=client, expect_exit=True)
    client.send(b"ping %d" % n)
    if binder == "mimic":
        server.send(server.recv())
    assert client.recv() == b"ping %d" % n
    if binder == "killed":
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
"""


def failures(report: ET.Element) -> dict[str, str]:
    """Test name → the text of its failure or error, from a JUnit XML report."""
    found = {}
    for case in report.iter("testcase"):
        for problem in (*case.iter("failure"), *case.iter("error")):
            found[case.get("name", "?")] = (problem.get("message") or "") + "\n" + (problem.text or "")
    return found


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_consecutive_tests_rebinding_one_tcp_port_meet_no_eaddrinuse(
    project: InnerProject, figure: Callable[[int, str, str], None], variant: str
) -> None:
    project.pytester.makepyfile(test_inner=INNER_TESTS)
    result, seconds = project.run(variant, "--junitxml=report.xml", "-q")
    failed = failures(ET.parse(project.path / "report.xml").getroot())
    in_use = sorted(name for name, text in failed.items() if "Address already in use" in text)
    outcomes = result.parseoutcomes()
    ports = len(set(project.notes("endpoint-")))
    binders = Counter(CYCLE[n % len(CYCLE)] for n in range(TESTS))
    figure(
        1,
        f"{TESTS} consecutive tests re-binding one tcp port",
        f"{len(in_use)} EADDRINUSE; {outcomes.get('passed', 0)} passed, {len(failed)} failed "
        f"({binders['mimic']} mimic binds, {binders['process']} Process binds, {binders['killed']} binds by a "
        f"Process then SIGKILLed, {binders['grandchild']} by a command's SIGINT-proof grandchild; "
        f"{ports} port{'s, one per worker' if ports > 1 else ''}) in {seconds:.1f} s",
    )
    assert in_use == [], result.stdout.str()[-5000:]
    assert failed == {}, result.stdout.str()[-5000:]
    result.assert_outcomes(passed=TESTS)
