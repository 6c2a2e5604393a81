"""zmqtest.stopstages: the stages that reached a process decide which of its ends are clean."""

from __future__ import annotations

import pytest

from zmqtest.stopstages import BY_ITSELF, StopStages


def stages(*sent: str) -> StopStages:
    result = StopStages()
    for stage in sent:
        result.note(stage)
    return result


@pytest.mark.parametrize(
    ("sent", "code", "clean"),
    [
        ((), 0, True),
        (("SIGINT",), 130, True),  # KeyboardInterrupt left run()
        (("SIGINT",), -2, True),
        (("SIGINT",), 1, False),  # a crash in the shutdown
        (("SIGINT",), -15, False),  # SIGTERM was never sent
        (("SIGINT", "SIGTERM"), 143, True),
        (("stop action",), 0, True),
        (("stop action",), 130, False),  # no signal was sent
    ],
)
def test_a_stop_is_clean_with_code_0_or_by_a_signal_that_was_sent(
    sent: tuple[str, ...], code: int, clean: bool
) -> None:
    assert stages(*sent).allow(code, stages(*sent).last, expect_exit=None) is clean


def test_an_end_by_itself_is_clean_only_with_code_0_unless_expected() -> None:
    assert StopStages().last == BY_ITSELF
    assert StopStages().allow(0, BY_ITSELF, expect_exit=None)
    assert not StopStages().allow(3, BY_ITSELF, expect_exit=None)
    assert StopStages().allow(3, BY_ITSELF, expect_exit=3)
    assert StopStages().allow(-9, BY_ITSELF, expect_exit=True)
    assert not StopStages().allow(3, BY_ITSELF, expect_exit=False)


def test_the_clean_ends_are_said_as_a_sentence() -> None:
    assert stages().clean_ends() == "exit code 0"
    assert stages("SIGINT").clean_ends() == "exit code 0 or 130, or killed by SIGINT"
    assert stages("SIGINT", "SIGINT", "SIGTERM").clean_ends() == (
        "exit code 0, 130 or 143, or killed by SIGINT or SIGTERM"
    )
