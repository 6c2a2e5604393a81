"""Coverage of the processes under test: measured as the test process is, into the same report.

When coverage.py measures the test process (``pytest --cov``, ``coverage run -m pytest``),
each process zmqtest starts gets the configuration of that measurement in
``COVERAGE_PROCESS_CONFIG`` (:func:`environ`), coverage's own documented way to start
it in a new process (the one its ``[run] patch = subprocess`` uses): a command line's
interpreter starts it from the ``.pth`` file coverage installs (7.12.1+); a Process
child starts it in :class:`~zmqtest.childsetup.ChildSetup` (:func:`start`), which
also saves it when ``run()`` ends, however it ends (:func:`save`): neither
multiprocessing's ``os._exit`` nor a stop signal runs the ``atexit`` handler coverage
saves from by default.

The configuration is the running one, with three changes:

- ``parallel``: each process writes a data file of its own, ``<data file>.<host>.<pid>.<random>``
  next to the test process's (an absolute path, whatever the child's working directory),
  which pytest-cov combines into its report at the end of the session and ``coverage
  combine`` combines after ``coverage run -p``;
- ``sigterm``: the data is saved at SIGTERM, and the process then ends killed by
  SIGTERM as it would have (coverage re-sends it after its default is restored), so
  zmqtest's stop stages see the same end; KeyboardInterrupt (zmqtest's SIGINT) unwinds
  through :func:`save`, or through a command's ``atexit``;
- warnings that a child cannot act on (no data, a module imported before the start) are off.

A process SIGKILLed, or ending in ``os._exit`` (unless ``[run] patch = _exit`` is
configured), saves nothing: its lines count as missed. Costs nothing when coverage is
off: coverage is never imported here unless the test process has already imported it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["CONFIG_ENV", "add_to", "environ", "save", "start"]

CONFIG_ENV = "COVERAGE_PROCESS_CONFIG"
"""Where coverage's ``process_startup()`` (and its ``.pth`` file) reads the configuration of a new process."""
QUIET = ("no-data-collected", "module-not-measured", "module-not-imported", "already-imported")
"""Coverage warnings a process under test would print to its stderr for nothing: its report is the test run's."""


def environ() -> dict[str, str]:
    """Return ``{CONFIG_ENV: configuration}`` for a process to start, if coverage measures this one, else ``{}``.

    Reads ``Coverage.current().config`` and its ``serialize()`` (coverage 7.10.3+;
    not documented, but what coverage itself hands its subprocesses): with an older
    coverage, or any surprise, the processes are not measured and the test runs on.
    """
    coverage = sys.modules.get("coverage")  # never imported here: if the test process has not, nothing measures it
    if coverage is None:
        return {}
    try:
        current = coverage.Coverage.current()
        if current is None:
            return {}
        config = copy.copy(current.config)
        config.parallel = True
        config.sigterm = True
        config.disable_warnings = [*config.disable_warnings, *QUIET]
        return {CONFIG_ENV: str(config.serialize())}
    except Exception:
        return {}


def add_to(environment: dict[str, str], given: Mapping[str, str] | None) -> None:
    """Add :func:`environ` to a command line's ``environment``, unless the test's own ``env`` (``given``) sets it."""
    for key, value in environ().items():
        if given is None or key not in given:
            environment[key] = value


def start(environment: dict[str, str]) -> Any:
    """Start coverage in a Process child if ``environment`` (the child's additions) asks for it; return it, or None.

    Through coverage's public ``process_startup()``; ``force`` because a fork child
    inherits the mark of a start in its parent. A measurement already running here is
    stopped first, as coverage's own ``patch = fork`` does: a fork child's is its
    parent's, which this process must not write to. A SIGTERM the child inherited as
    ignored stays ignored (coverage's SIGTERM handler would otherwise replace that).
    A failure to start is said on the child's stderr; the child runs on, unmeasured.
    """
    if CONFIG_ENV not in environment:
        return None
    os.environ[CONFIG_ENV] = environment[CONFIG_ENV]  # where process_startup() reads it (and this process's children)
    ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    try:
        import coverage

        previous = coverage.Coverage.current()
        if previous is not None:
            previous.stop()
        try:
            measuring = coverage.process_startup(force=True)
        except TypeError:  # coverage < 7.10.4: no force=, so none in a fork child (it has the parent's mark)
            measuring = coverage.process_startup()
    except Exception as exc:
        print(f"zmqtest: coverage could not start in this process: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    finally:
        if ignored:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return measuring


def save(measuring: Any) -> None:
    """Stop and save ``measuring`` (from :func:`start`) with SIGINT and SIGTERM held, so that neither cuts it short.

    One that came meanwhile is delivered once the data is saved, and ends the child as it would have.
    """
    if measuring is None:
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with contextlib.suppress(Exception):  # measuring must never change how the process ends
            measuring.stop()
            measuring.save()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
