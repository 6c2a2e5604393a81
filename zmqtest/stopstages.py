"""The stop stages that reached a process under test, what they make a clean end of it, and how long they wait.

A process is stopped stage by stage (a stop action or SIGINT, then SIGTERM, then
SIGKILL: :meth:`~zmqtest.managed.ManagedProcess.stop`). Which stages reached it decides
how it may end:

- **A clean stop** ends with exit code 0, or by a stop signal that was sent (killed by
  it, or exit code 128 + its number: 130 after SIGINT, which is also how a Process
  ends when ``KeyboardInterrupt`` leaves its ``run()``). Anything else (a crash in
  the shutdown) is an unexpected end, as is a non-zero exit before any stop signal
  reached it, unless ``expect_exit`` allows it.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

__all__ = ["BY_ITSELF", "CODE_WAIT", "GROUP_WAIT", "KILL_WAIT", "StopStages", "stop_limit"]

BY_ITSELF = "exited by itself"
"""What stopped a process that ended before any stop stage reached it."""
KILL_WAIT = 5.0
"""Seconds to wait for a SIGKILLed process to be gone (it can only be slow in the kernel, e.g. on a hung disk)."""
GROUP_WAIT = 2.0
"""Seconds to wait for the rest of a process group to die after its SIGKILL."""
CODE_WAIT = 1.0
"""Seconds to wait for the exit code once the process has ended (a forkserver reports it a moment later)."""


def stop_limit(timeout: float, grace: float) -> float:
    """Return the longest a stop can take: a stop action (bounded by ``timeout``), two graces, the bounded waits."""
    return timeout + 2 * grace + KILL_WAIT + GROUP_WAIT + 3 * CODE_WAIT


class StopStages:
    """The stop stages that reached one process, in order: they tell a clean stop of it from a crash."""

    def __init__(self) -> None:
        self._sent: list[str] = []

    def note(self, stage: str) -> None:
        """Note that ``stage`` (``"stop action"``, ``"SIGINT"``, ``"SIGTERM"``, ``"SIGKILL"``) reached the process."""
        self._sent.append(stage)

    @property
    def last(self) -> str:
        """Return the stage that stopped it, if it has ended: the last that reached it (``BY_ITSELF`` if none did)."""
        return self._sent[-1] if self._sent else BY_ITSELF

    def allow(self, code: int, stopped_by: str, expect_exit: int | bool | None) -> bool:
        """Tell whether ending with ``code`` when stopped by ``stopped_by`` is as the test allows (module docstring)."""
        if expect_exit is True or (not isinstance(expect_exit, bool) and expect_exit == code):
            return True
        return code == 0 if stopped_by == BY_ITSELF else code in self._clean_codes()

    def clean_ends(self) -> str:
        """Say what a clean stop ends with: ``exit code 0 or 130, or killed by SIGINT``."""
        codes = sorted(code for code in self._clean_codes() if code >= 0)
        signals = [stage for stage in dict.fromkeys(self._sent) if stage.startswith("SIG")]
        return f"exit code {_or(codes)}" + (f", or killed by {_or(signals)}" if signals else "")

    def _clean_codes(self) -> set[int]:
        """Return the statuses of a clean stop: code 0, or by a signal sent (killed by it, or code 128 + it)."""
        codes = {0}
        for stage in self._sent:
            if stage.startswith("SIG"):
                signum = signal.Signals[stage]
                codes.update((-signum, 128 + signum))
        return codes


def _or(items: Sequence[object]) -> str:
    """Join ``items`` as a sentence does: ``0``, ``0 or 130``, ``0, 130 or 143``."""
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
