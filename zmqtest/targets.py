"""What ``ProcessManager.start()`` is given, checked before anything starts, and the name a process gets.

Every weak input is refused at the user's line, with one error that names the argument
and what to give instead: a command line given as a string, ``env=`` for a Process, a
Process started twice, a lambda target under spawn or forkserver (pickled by name),
a ``stop`` that cannot be called, an ``expect_exit`` that is not an exit code.
"""

from __future__ import annotations

import multiprocessing.process
import os
from collections.abc import Mapping, Sequence

from zmqtest.compat import process_target
from zmqtest.errors import StartError
from zmqtest.settings import Settings, StartMethod, parse_start_method

__all__ = ["check_options", "check_picklable_target", "check_target", "default_name"]


def check_target(
    target: object,
    start_method: str | None,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    patches: Mapping[str, object] | None,
    settings: Settings,
) -> tuple[list[str] | None, StartMethod | None]:
    """Check what start() is to start; return its command line (``None`` for a Process) and start method.

    A Process gets the start method asked for (default: the ``settings``'); a command line, none.
    """
    __tracebackhide__ = True  # a bad argument is reported at the user's line
    if isinstance(target, multiprocessing.process.BaseProcess):
        if env is not None or cwd is not None:
            raise TypeError(
                "env= and cwd= apply to command lines only: a Process inherits ours (set them in its run())"
            )
        if target.pid is not None:
            raise StartError(f"{type(target).__name__} was started already: a Process object starts once")
        if start_method is None:
            method = parse_start_method(settings.start_method, "the settings")
        else:
            method = parse_start_method(start_method, "the start_method= argument of start()")
        check_picklable_target(target, method)
        return None, method
    if isinstance(target, (str, bytes, os.PathLike)) or not isinstance(target, Sequence):
        raise TypeError(
            f"start() takes a multiprocessing.Process or a command line as a list of arguments, got {target!r}"
            " (to run a shell-style string, split it with shlex.split)"
        )
    if start_method is not None:
        raise TypeError("start_method= applies to multiprocessing.Process targets only, not to command lines")
    if patches:
        raise TypeError("patches= applies to multiprocessing.Process targets only: a command runs another program")
    argv = [os.fspath(arg) for arg in target]
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise TypeError(f"a command line is a non-empty list of str or path arguments, got {target!r}")
    return argv, None


def check_options(stop: object, expect_exit: object) -> None:
    """Refuse a ``stop`` that cannot be called and an ``expect_exit`` that is not an exit code or a bool."""
    __tracebackhide__ = True  # a bad argument is reported at the user's line
    if stop is not None and not callable(stop):
        raise TypeError(
            f"stop={stop!r} is not callable: give a function that makes the process stop (say, one that sends it "
            "the stop message), or None for SIGINT"
        )
    if expect_exit is not None and not isinstance(expect_exit, int):  # bool is an int: True, False
        raise TypeError(
            f"expect_exit={expect_exit!r} is a {type(expect_exit).__name__}: give True (it may end in any way), "
            "an exit code (say 0), or None or False (any end of its own fails the test)"
        )


def check_picklable_target(process: multiprocessing.process.BaseProcess, method: str) -> None:
    """Under spawn and forkserver a plain Process's target is pickled by name: a lambda or local function is not."""
    __tracebackhide__ = True  # a bad argument is reported at the user's line
    target = process_target(process)
    if method == "fork" or target is None:
        return
    qualname = getattr(target, "__qualname__", "")
    if getattr(target, "__name__", None) == "<lambda>" or "<locals>" in qualname.split("."):
        kind = "a lambda" if getattr(target, "__name__", None) == "<lambda>" else "a local function"
        raise TypeError(
            f"target={qualname} of the Process is {kind}: under {method} the Process is pickled to reach the child, "
            "and a function is pickled by its name; define it at module level (or start it with start_method='fork')"
        )


def default_name(target: object, argv: list[str] | None) -> str:
    """Name a process after its class (a plain Process: after its target); a command after its program or script."""
    if argv is None:
        own_target = process_target(target) if isinstance(target, multiprocessing.process.BaseProcess) else None
        if type(target).__name__ in ("Process", "ForkProcess", "SpawnProcess", "ForkServerProcess") and own_target:
            return getattr(own_target, "__name__", None) or type(target).__name__
        return type(target).__name__
    program = os.path.basename(argv[0])
    if program.startswith("python") and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2]
        if not argv[1].startswith("-"):
            return os.path.basename(argv[1])
    return program
