"""The test suite's one way of waiting for a condition."""

from __future__ import annotations

import time

import pytest

from tests.waiting import WaitTimeout, wait_until


def test_returns_the_first_truthy_value_as_soon_as_it_comes() -> None:
    calls = []

    def third_time() -> str:
        calls.append(1)
        return "ready" if len(calls) >= 3 else ""

    t0 = time.monotonic()
    assert wait_until(third_time, timeout=5, interval=0.01) == "ready"
    assert len(calls) == 3 and time.monotonic() - t0 < 1


def test_fails_at_the_deadline_with_the_message_and_the_last_value() -> None:
    built = []

    def message() -> str:
        built.append(1)
        return "the log says why"

    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"the log says why \(last value: 0\)"):
        wait_until(lambda: 0, timeout=0.2, interval=0.05, message=message)
    assert 0.2 <= time.monotonic() - t0 < 2
    assert built == [1]  # built only on failure


def test_a_timeout_is_an_assertion_failure() -> None:
    with pytest.raises(AssertionError):
        wait_until(lambda: None, timeout=0)
