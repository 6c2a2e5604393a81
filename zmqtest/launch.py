"""What a process under test was started with, kept so that ``restart()`` starts it again; how a run starts.

``ProcessManager.start()`` checks its arguments once and keeps them in a :class:`Launch`;
:func:`zmqtest.control.restart` starts another run from it: the same target, options and
hence endpoints. A ``multiprocessing.Process`` object starts only once (``start()`` even
drops its target), so the launch keeps an unstarted copy taken before the first start,
and each restart starts a fresh copy of that (``copy.copy`` of an unstarted Process:
tried under fork, forkserver and spawn). Each run writes output files of its own, so
that a tail, a report or ``wait_for_output()`` reads the current run alone.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing
import multiprocessing.process
import os
import pickle
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from zmqtest import backstop, childcoverage
from zmqtest.commands import start_session
from zmqtest.compat import forkserver_preload
from zmqtest.logs import ENDPOINT_ENV

if TYPE_CHECKING:
    from zmqtest.managed import ManagedProcess
    from zmqtest.processes import ProcessManager
    from zmqtest.readiness import Readiness
    from zmqtest.settings import StartMethod

__all__ = [
    "FORKSERVER_PRELOAD",
    "Launch",
    "ProcessKind",
    "copy_process",
    "create_files",
    "pickling_problem",
    "preload_in_forkserver",
    "start_command",
    "take_over",
]

ProcessKind = Literal["process", "command"]
"""What was started: a ``multiprocessing.Process``, or a command line."""


@dataclasses.dataclass
class Launch:
    """The checked arguments of one ``start()``, the manager that took them, and how many runs they made."""

    manager: ProcessManager
    name: str
    argv: list[str] | None
    """The command line (commands only)."""
    target: multiprocessing.process.BaseProcess | None
    """An unstarted copy of the Process object (Process targets only; never started itself)."""
    uncopyable: str
    """Why the Process object could not be copied (then it cannot be restarted), else ``""``."""
    expected: Readiness | None
    timeout: float
    stop: Callable[[], object] | None
    method: StartMethod | None
    env: Mapping[str, str] | None
    cwd: str | os.PathLike[str] | None
    patches: Mapping[str, object] | None
    expect_exit: int | bool | None
    stem: str = ""
    """The first run's output file name without its suffix (``server-1``): later runs' files are named after it."""
    runs: int = 0
    """How many times it was started: 1 + the number of restarts."""

    def next_target(self) -> multiprocessing.process.BaseProcess:
        """Return a fresh, unstarted copy of the Process object, for a restart."""
        assert self.target is not None
        return copy_process(self.target)

    def next_files(self) -> tuple[Path, Path]:
        """Create the next run's output files, ``<stem>.restart<k>.stdout``/``.stderr``, beside the first run's."""
        stem = f"{self.stem}.restart{self.runs}"
        paths = create_files(self.manager.output_dir, stem)
        if paths is None:
            raise FileExistsError(f"{self.manager.output_dir / stem}.stdout or .stderr exists already")
        return paths


def take_over(handle: ManagedProcess, run: ManagedProcess, retired: list[ManagedProcess]) -> None:
    """Make ``handle`` the new ``run`` of its process (a restart): it takes the run's state, in place.

    The test's handle stays the one it holds, which its manager watches and stops; pid,
    Process or Popen, group, output files and stop state are the new run's. The stopped
    run's state goes to a copy, kept in ``retired`` for its manager's close to report if it
    ended unexpectedly (named as that run), and freed.
    """
    stopped = copy.copy(handle)
    vars(handle).update(vars(run))
    backstop.untrack(run)  # the handle is what the atexit backstop kills now
    backstop.track(handle)
    assert run.launch is not None
    if stopped.ended_unexpectedly:
        stopped.name = f"{stopped.name} (run {run.launch.runs - 1}, before restart())"
        retired.append(stopped)
    stopped.release()


def copy_process(process: multiprocessing.process.BaseProcess) -> multiprocessing.process.BaseProcess:
    """Copy an unstarted Process object: its attributes shared, its configuration (daemon, authkey) its own."""
    clone = copy.copy(process)
    config = vars(process).get("_config")
    if isinstance(config, dict):
        vars(clone)["_config"] = dict(config)
    return clone


def create_files(folder: Path, stem: str) -> tuple[Path, Path] | None:
    """Create ``<stem>.stdout`` and ``<stem>.stderr`` in ``folder``, empty; ``None`` if either exists (none is made)."""
    paths = (folder / f"{stem}.stdout", folder / f"{stem}.stderr")
    created: list[Path] = []
    try:
        for path in paths:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            created.append(path)
    except FileExistsError:
        for path in created:
            path.unlink()
        return None
    return paths


def start_command(
    argv: list[str],
    name: str,
    stdout_path: Path,
    stderr_path: Path,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, writing to the files, with ``environ`` (log endpoint, mark) added.

    A log endpoint that ``env`` sets is kept: ours only replaces one this process inherited.
    """
    __tracebackhide__ = True  # a StartError is reported at the test's line
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    environment.update(
        {key: value for key, value in environ.items() if key != ENDPOINT_ENV or env is None or ENDPOINT_ENV not in env}
    )
    childcoverage.add_to(environment, env)  # coverage measures us: it measures the command too
    with open(stdout_path, "ab") as out, open(stderr_path, "ab") as err:
        return start_session(argv, name, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=environment)


def pickling_problem(
    process: multiprocessing.process.BaseProcess, name: str, method: str, exc: BaseException
) -> str | None:
    """Say why a Process could not be pickled to start under ``method``, and how to fix it; ``None``: not that."""
    if (
        method == "fork"
        or process.pid is not None
        or not isinstance(exc, (pickle.PicklingError, TypeError, AttributeError))
    ):
        return None  # only spawn and forkserver pickle it, before the child is made
    notes = "".join(f"\n  {note}" for note in getattr(exc, "__notes__", ()))
    return (
        f"cannot start {name} ({type(process).__module__}.{type(process).__qualname__}) with start method "
        f"{method!r}: under {method} the Process object is pickled to reach the child, and pickling failed: "
        f"{type(exc).__name__}: {exc}{notes}\n"
        "To fix it: define the class at module level (not inside a function or a test), keep sockets, "
        "contexts, locks and open files out of __init__ (create them in run(), which runs in the child), "
        "or start it with start_method='fork'."
    )


FORKSERVER_PRELOAD = ("zmq", "zmqtest.childsetup", "zmqtest.logs", "zmqtest.endpoints")
"""Modules the forkserver imports once, so that its children need not: a forkserver start + stop of a child that
uses pyzmq took 43 instead of 70 ms (median of 30, 2-core VM). Every child of ours unpickles a ChildSetup, most
forward their logs, and many get an Endpoint (what ``zmq_endpoint`` hands out) with their Process: each child
imported those (and logging) for 7-9 ms of CPU (``-X importtime`` in a child, 2026-12-03). Only a forkserver
started after this is set."""


def preload_in_forkserver() -> None:
    """Add FORKSERVER_PRELOAD to the forkserver's preload list, keeping what is there (by default ``__main__``)."""
    modules = forkserver_preload()
    missing = [name for name in FORKSERVER_PRELOAD if name not in modules]
    if missing:
        multiprocessing.get_context("forkserver").set_forkserver_preload(modules + missing)
