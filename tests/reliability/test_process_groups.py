"""Figures 8, 9 and 12: zmqtest stops what is the test's, all of it, and nothing else.

**Figure 8, pid reuse: no foreign process is killed.** A process under test dies during
its test (SIGKILLed by it) and is reaped; the test then pins the next pid (through
``/proc/sys/kernel/ns_last_pid``) so that an unrelated ``sleep``, in a session of its
own, gets the dead process's pid and so leads a process group with its number.
Teardown must leave that stranger be (it once ``killpg``-ed the reused number). Three
rounds per start method (fork, forkserver, spawn, command). Then the same again in a
pytest that SIGKILLs itself: the reaper, left alone, must spare the strangers too.
Pinning pids needs the right to write ``ns_last_pid`` (root in the pid namespace);
without it the figure is skipped.

**Figure 9, a test that forks itself.** A test holding processes (per start method)
and an ipc endpoint forks itself; the fork does some work and ends, either with
``os._exit`` or through pytest (``pytest.exit``: its fixtures tear down, its session
finishes, its interpreter exits). The fork must end within its deadline (it once spun
for ever in a zmq read), and leave the test's processes running and its ipc directory
in place; at the end nothing is left.

**Figure 12, escaped grandchildren.** A process under test (per start method) starts
two ``sleep`` processes that leave its process group: one with ``subprocess.Popen(...,
start_new_session=True)``, one as a classic daemon (fork, ``setsid``, fork, exec).
After the test ends, none may be left; nor after the pytest running the test is
SIGKILLed mid-test (then only the reaper can act).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import psutil
import pytest
from inner_runs import GONE_DEADLINE, OUTER_DEADLINE, InnerProject, Ledger, run_watched, wait_for_file

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(OUTER_DEADLINE)]

RUN_DEADLINE = 90.0
"""Seconds one inner run may take."""
METHODS = ("fork", "forkserver", "spawn", "command")
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"

COMMON = f"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from children import Child, command, idle

METHODS = {METHODS!r}
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def start(factory, method, mode, ready=r"^ready", **options):
    if method == "command":
        return factory(command(mode), ready=ready, **options)
    return factory(Child(mode), ready=ready, start_method=method, **options)


def note(name, line):
    with open(f"{{name}}-{{WORKER}}", "a") as file:
        file.write(f"{{line}}\\n")
"""


def alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie), and is the process that started at ``started`` if given."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and (started is None or proc.create_time() == started)
    except psutil.Error:
        return False


# --- figure 8 ------------------------------------------------------------------------------------------------------

ROUNDS = 3

PID_REUSE = """
ROUNDS = {rounds}


def pinned(pid, argv):
    \"\"\"Start ``argv`` in a session of its own as process ``pid`` (pinned through ns_last_pid).\"\"\"
    for _ in range(100):  # another process may take the pid first: try again (bounded)
        with open("/proc/sys/kernel/ns_last_pid", "w") as last_pid:
            last_pid.write(str(pid - 1))
        popen = subprocess.Popen(argv, start_new_session=True)
        if popen.pid == pid:
            return popen
        popen.kill()
        popen.wait(10)
    raise AssertionError(f"could not start a process with pid {{pid}} in 100 tries")


STRANGERS = []
\"\"\"Their Popen objects: one collected while its process runs would warn (an error here).\"\"\"


def started(pid):
    \"\"\"When ``pid`` started, in clock ticks since boot (/proc/PID/stat).\"\"\"
    with open(f"/proc/{{pid}}/stat", "rb") as stat:
        return int(stat.read().rpartition(b")")[2].split()[19])


def after_its_start_tick(born):
    \"\"\"Return once the clock tick in which a process started (``born``) is over.

    A pid and its start time name one process only if the pid is not reused within the same
    tick (10 ms), which the pid counter, wrapping at pid_max, never does; a pinned pid could.
    The watchdog holds a pidfd of each leader from the moment it reads its registration, but a
    pid reused in the same tick before that moment would still pass for the leader.
    \"\"\"
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 5
    while time.clock_gettime_ns(time.CLOCK_BOOTTIME) * ticks // 1_000_000_000 <= born + 1:
        assert time.monotonic() < deadline, "the clock did not move on"
        time.sleep(0.001)  # sleep-ok: a poll of the clock, with a deadline


def reuse_its_pid(factory, method):
    handle = start(factory, method, "idle", expect_exit=True)
    born = started(handle.pid)
    after_its_start_tick(born)
    os.kill(handle.pid, signal.SIGKILL)  # the test kills it (a crash, say), and reaps it
    assert handle.wait(30) == -signal.SIGKILL
    stranger = pinned(handle.pid, ["sleep", "600"])
    STRANGERS.append(stranger)
    assert os.getpgid(stranger.pid) == handle.pid
    note("strangers", f"{{stranger.pid}} {{method}} {{born}} {{started(stranger.pid)}}")


@pytest.mark.parametrize("round", range(ROUNDS))
@pytest.mark.parametrize("method", METHODS)
def test_pid_reused(method, round, zmq_process_factory):
    reuse_its_pid(zmq_process_factory, method)


def test_zz_pid_reused_then_pytest_killed(zmq_process_factory):
    if not os.environ.get("KILL_PYTEST"):
        pytest.skip("only in the run that is SIGKILLed")
    for method in METHODS:
        reuse_its_pid(zmq_process_factory, method)
    os.kill(os.getpid(), signal.SIGKILL)  # nothing of ours runs after this: only the reaper
"""


def strangers(project: InnerProject, name: str) -> dict[int, float]:
    """The strangers a run wrote down under ``strangers-*`` → their start time, read now (while they live)."""
    found = {}
    for line in project.notes(name):
        pid = int(line.split()[0])
        try:
            found[pid] = psutil.Process(pid).create_time()
        except psutil.Error:
            found[pid] = -1.0  # gone already: killed
    return found


def test_pid_reuse_kills_no_foreign_process(
    project: InnerProject, mark: str, figure: Callable[[int, str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        with open(NS_LAST_PID, "w") as last_pid:
            last_pid.write(str(os.getpid()))  # harmless: the next pid is any free one after this
    except OSError as exc:
        pytest.skip(f"cannot pin the next pid here ({NS_LAST_PID}: {exc}); needs root in this pid namespace")
    project.pytester.makepyfile(test_inner=COMMON + PID_REUSE.format(rounds=ROUNDS))
    began = time.monotonic()
    result, _ = project.run("serial", "-q")
    torn_down = strangers(project, "strangers-")
    for path in project.path.glob("strangers-*"):
        path.rename(path.with_name(f"torn-down-{path.name}"))
    monkeypatch.setenv("KILL_PYTEST", "1")
    killed, _ = project.run("serial", "-q", "-k", "pytest_killed")
    reaped = strangers(project, "strangers-")
    left_of_the_run = Ledger(mark).marked()  # the reaper exits once it has acted: wait for it to be done
    helpers = [proc for proc in left_of_the_run if proc.pid not in reaped and proc.pid not in torn_down]
    psutil.wait_procs(helpers, timeout=GONE_DEADLINE)
    dead = {
        "teardown": [pid for pid, started in torn_down.items() if not alive(pid, started)],
        "reaper": [pid for pid, started in reaped.items() if not alive(pid, started)],
    }
    figure(
        8,
        "foreign processes killed, each leading a process group numbered as a process under test that had died "
        f"({ROUNDS} rounds of fork, forkserver, spawn, command)",
        f"{len(dead['teardown'])} of {len(torn_down)} (teardown) / {len(dead['reaper'])} of {len(reaped)} "
        f"(the reaper, pytest SIGKILLed); in {time.monotonic() - began:.1f} s",
    )
    result.assert_outcomes(passed=len(METHODS) * ROUNDS, skipped=1)
    assert killed.ret == -signal.SIGKILL, killed.stdout.str()
    assert len(torn_down) == len(METHODS) * ROUNDS
    assert len(reaped) == len(METHODS)
    assert dead == {"teardown": [], "reaper": []}


# --- figure 9 ------------------------------------------------------------------------------------------------------

FORK_DEADLINE = 8.0
"""Seconds a fork may live (one lives for ever if it spins: the 8 of the run must fit in RUN_DEADLINE)."""

SELF_FORKING = f"""
import select
import warnings

import zmq

FORK_DEADLINE = {FORK_DEADLINE}


@pytest.mark.parametrize("ending", ["os._exit", "pytest.exit"])
@pytest.mark.parametrize("method", METHODS)
def test_forks(method, ending, zmq_process_factory, zmq_socket_factory, zmq_endpoint_factory):
    zmq_socket_factory(zmq.PULL, bind=zmq_endpoint_factory.ipc("sink"))
    if method == "command":
        processes = [start(zmq_process_factory, method, "idle") for _ in range(2)]
    else:
        daemon = Child("idle")
        daemon.daemon = True  # multiprocessing's exit handler terminates a daemon child
        processes = [
            zmq_process_factory(daemon, ready=r"^ready", start_method=method),
            start(zmq_process_factory, method, "idle"),
        ]
    began = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: a fork with threads (zmq's) may deadlock
        fork = os.fork()
    if fork == 0:
        Path(f"work-{{os.getpid()}}").write_text(str(sum(range(100_000))))  # some work
        if ending == "os._exit":
            os._exit(0)
        pytest.exit("the fork ends its session here", returncode=0)  # its fixtures tear down, its session ends
    pidfd = os.pidfd_open(fork)
    try:
        ended = bool(select.select([pidfd], [], [], FORK_DEADLINE)[0])
    finally:
        os.close(pidfd)
    lived = time.monotonic() - began
    if not ended:
        os.kill(fork, signal.SIGKILL)
    _, status = os.waitpid(fork, 0)
    running = [process.poll() is None for process in processes]
    ipc_dir = Path(zmq_endpoint_factory.ipc_dir).is_dir()
    note("forks", f"{{method}} {{ending}} {{lived!r}} {{ended}} {{running.count(False)}} {{ipc_dir}}")
    with open(f"pids-{{WORKER}}", "a") as pids:
        pids.write("".join(f"{{process.pid}}\\n" for process in processes) + f"{{fork}}\\n")
    assert ended, f"the fork was still running after {{FORK_DEADLINE}} s"
    assert os.waitstatus_to_exitcode(status) == 0
    assert running == [True, True], "the fork stopped the test's processes"
    assert ipc_dir, "the fork removed the test's ipc directory"
"""


def test_a_test_that_forks_itself_leaves_its_processes_be_and_its_fork_ends(
    project: InnerProject, mark: str, figure: Callable[[int, str, str], None]
) -> None:
    project.pytester.makepyfile(test_inner=COMMON + SELF_FORKING)
    ledger = Ledger(mark)
    began = time.monotonic()
    output = run_watched(project, ledger, "serial", "-q", output=project.path / "output", deadline=RUN_DEADLINE)
    seconds = time.monotonic() - began
    pids = [int(pid) for pid in project.notes("pids-")]
    ledger.add(pids, before=time.time())
    left = ledger.left()
    forks = [line.split() for line in project.notes("forks-")]
    spun = [fork for fork in forks if fork[3] != "True"]
    stopped = sum(int(fork[4]) for fork in forks)
    ipc_gone = [fork for fork in forks if fork[5] != "True"]
    longest = max((float(fork[2]) for fork in forks), default=float("nan"))
    figure(
        9,
        "tests that fork themselves (fork, forkserver, spawn, command; the fork ends by os._exit / through pytest)",
        f"{len(forks)} forks: {len(spun)} still running after {FORK_DEADLINE:g} s (the longest lived {longest:.2f} s), "
        f"{stopped} of {2 * len(forks)} processes of the test stopped by its fork, {len(ipc_gone)} ipc directories "
        f"removed by it; {len(left)} left of {len(ledger.seen)} seen from outside; in {seconds:.1f} s",
    )
    assert len(forks) == 2 * len(METHODS), output
    assert (spun, stopped, ipc_gone) == ([], 0, []), output
    assert left == [], output
    # the last summary line is the test's own: each fork that ended through pytest printed its own before
    assert pytest.RunResult.parse_summary_nouns(output.splitlines()) == {"passed": 2 * len(METHODS)}, output


# --- figure 12 -----------------------------------------------------------------------------------------------------

ESCAPES = """
READY = r"^ready, escaped (\\d+) (\\d+)"


def start_escaping(factory, method):
    handle = start(factory, method, "escape", ready=READY)
    note("escaped", f"{handle.match.group(1)} {method} new-session")
    note("escaped", f"{handle.match.group(2)} {method} daemon")
    note("pids", handle.pid)


@pytest.mark.parametrize("method", METHODS)
def test_escapes(method, zmq_process_factory):
    if os.environ.get("KILL_PYTEST"):
        pytest.skip("not in the run that is SIGKILLed")
    start_escaping(zmq_process_factory, method)


def test_zz_escapes_then_pytest_is_killed(zmq_process_factory):
    if not os.environ.get("KILL_PYTEST"):
        pytest.skip("only in the run that is SIGKILLed")
    for method in METHODS:
        start_escaping(zmq_process_factory, method)
    Path(f"running-{WORKER}").touch()
    idle()
"""


def escaped_left(project: InnerProject, ledger: Ledger, output: str) -> tuple[list[str], int, list[str]]:
    """After a run: the escaped grandchildren still alive (described), how many there were, and all that is left."""
    escaped = [line.split() for line in project.notes("escaped-")]
    ledger.add([int(pid) for pid, *_ in escaped] + [int(pid) for pid in project.notes("pids-")], before=time.time())
    left = ledger.left()
    alive_ones = [" ".join(fields) for fields in escaped if alive(int(fields[0]))]
    return alive_ones, len(escaped), left


def test_no_escaped_grandchild_is_left_after_the_test_nor_after_pytest_is_killed(
    project: InnerProject, mark: str, figure: Callable[[int, str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    project.pytester.makepyfile(test_inner=COMMON + ESCAPES)
    began = time.monotonic()
    normal = Ledger(mark)
    output = run_watched(project, normal, "serial", "-rA", output=project.path / "normal", deadline=RUN_DEADLINE)
    after_the_test, escaped_normally, left_normally = escaped_left(project, normal, output)
    normal.kill_marked()  # what this run left must not count against the next
    psutil.wait_procs(normal.marked(), timeout=GONE_DEADLINE)
    for path in [*project.path.glob("escaped-*"), *project.path.glob("pids-*")]:
        path.rename(path.with_name(f"normal-{path.name}"))

    monkeypatch.setenv("KILL_PYTEST", "1")
    killed = Ledger(mark)

    def sigkill_pytest_mid_test(proc: subprocess.Popen[bytes]) -> None:
        assert wait_for_file(project.path, "running-", proc, RUN_DEADLINE), "the run ended before its test ran"
        os.kill(proc.pid, signal.SIGKILL)  # pytest alone, as the OOM killer does: its helpers see it go

    killed_output = run_watched(
        project,
        killed,
        "serial",
        "-rA",
        output=project.path / "killed",
        during=sigkill_pytest_mid_test,
        deadline=RUN_DEADLINE,
    )
    after_the_kill, escaped_in_killed, left_after_kill = escaped_left(project, killed, killed_output)
    figure(
        12,
        "escaped grandchildren left (Popen(start_new_session=True) and a double-forked daemon, from processes "
        "started by fork, forkserver, spawn, command)",
        f"{len(after_the_test)} of {escaped_normally} (normal end) / {len(after_the_kill)} of {escaped_in_killed} "
        f"(pytest SIGKILLed mid-test); in {time.monotonic() - began:.1f} s",
    )
    assert escaped_normally == escaped_in_killed == 2 * len(METHODS), output + killed_output
    assert after_the_test == [], f"left after the test ended: {after_the_test}\n{output}"
    assert after_the_kill == [], f"left after pytest was SIGKILLed: {after_the_kill}\n{killed_output}"
    assert left_normally == left_after_kill == [], f"{left_normally}\n{left_after_kill}"
