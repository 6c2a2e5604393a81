"""Timeout validation and the harness default timeout (a context variable)."""

from __future__ import annotations

import contextvars
import math
import re
import sys
import threading
from typing import Any

import pytest

from zmqtest.settings import DEFAULT_TIMEOUT, Settings, current_timeout, default_timeout, parse_deadline, parse_timeout


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0.5, 0.5),
        (2, 2.0),
        ("0.5", 0.5),
        ("2s", 2.0),
        (" 2s ", 2.0),
        ("3", 3.0),
        ("1e-3", 0.001),
        ("10.25s", 10.25),
        (86400 * 365, 31536000.0),
    ],
    ids=repr,
)
def test_parse_timeout_accepts(value: Any, seconds: float) -> None:
    parsed = parse_timeout(value, "somewhere")
    assert type(parsed) is float
    assert parsed == seconds


@pytest.mark.parametrize("value", [0, 0.0, "0", "0s", "0.0"], ids=repr)
def test_zero_only_with_allow_zero(value: Any) -> None:
    assert parse_timeout(value, "here", allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"from here: expected a number of seconds, more than 0$"):
        parse_timeout(value, "here")


@pytest.mark.parametrize(
    "value",
    [-1, -0.001, "-1", "abc", "", "s", "2ms", "1 2", True, False, None, [1], {"s": 1}, 1j, math.nan, "nan", 10**400],
    ids=repr,
)
@pytest.mark.parametrize("allow_zero", [False, True])
def test_parse_timeout_rejects_and_names_where(value: Any, allow_zero: bool) -> None:
    bound = "0 or more" if allow_zero else "more than 0"
    message = f"invalid timeout {value!r} from option --zmqtest-timeout: expected a number of seconds, {bound}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$") as excinfo:
        parse_timeout(value, "option --zmqtest-timeout", allow_zero=allow_zero)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ or excinfo.value.__context__ is None


@pytest.mark.parametrize("value", [math.inf, "inf", "1e400", "infs"], ids=repr)
def test_endless_timeout_is_refused_with_a_reason(value: Any) -> None:
    with pytest.raises(ValueError, match=r"from the ini file: .* \(an endless wait would let a test hang\)$"):
        parse_timeout(value, "the ini file", allow_zero=True)


def test_minus_infinity_is_just_invalid() -> None:
    with pytest.raises(ValueError, match=r"more than 0$"):
        parse_timeout(-math.inf, "x")


def test_default_outside_any_setting_is_the_constant() -> None:
    assert DEFAULT_TIMEOUT == 1.0
    assert contextvars.Context().run(current_timeout) == DEFAULT_TIMEOUT


def test_default_timeout_nests_and_restores() -> None:
    before = current_timeout()
    with default_timeout(0.25):
        assert current_timeout() == 0.25
        with default_timeout("3s"):
            assert current_timeout() == 3.0
        assert current_timeout() == 0.25
    assert current_timeout() == before


def test_default_timeout_restores_after_an_exception() -> None:
    before = current_timeout()
    seen: list[float] = []

    def failing_block() -> None:
        with default_timeout(0.125):
            seen.append(current_timeout())
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        failing_block()
    assert seen == [0.125]
    assert current_timeout() == before


@pytest.mark.parametrize("value", [0, -1, "abc", math.inf, True], ids=repr)
def test_invalid_default_timeout_names_the_call_and_changes_nothing(value: Any) -> None:
    before = current_timeout()
    with (
        pytest.raises(ValueError, match=r"from default_timeout\(\): expected a number of seconds, more than 0"),
        default_timeout(value),
    ):
        pass
    assert current_timeout() == before


def test_default_timeout_is_per_context() -> None:
    seen: list[float] = []
    with default_timeout(0.75):
        copied = contextvars.copy_context()
        thread = threading.Thread(target=lambda: seen.append(current_timeout()))
        thread.start()
        thread.join(5)
    assert copied.run(current_timeout) == 0.75  # a copied context keeps it
    # A new thread starts from the default, not from this setting (unless the interpreter makes threads
    # inherit the context, as free-threaded 3.14 does by default).
    assert seen == [0.75 if getattr(sys.flags, "thread_inherit_context", 0) else DEFAULT_TIMEOUT]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(2, 2.0), ("2.5", 2.5), (" 30s ", 30.0), (None, None), ("off", None), (" None ", None), (0, None), ("0s", None)],
    ids=repr,
)
def test_parse_deadline_accepts_seconds_or_off(value: Any, seconds: float | None) -> None:
    assert parse_deadline(value, "somewhere") == seconds


@pytest.mark.parametrize("value", [-1, "soon", "", True, math.inf, "nan", [30]], ids=repr)
def test_parse_deadline_rejects_and_names_where(value: Any) -> None:
    where = "ini option zmqtest_deadline"
    message = f"invalid deadline {value!r} from {where}: expected a number of seconds, more than 0, or off"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_deadline(value, where)


def test_the_deadline_is_off_by_default() -> None:
    assert Settings().deadline is None
