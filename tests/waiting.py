"""Waiting in tests: poll a condition until it holds or a deadline passes, instead of sleeping a guessed time.

A fixed sleep is either too short on a loaded machine (a flaky test) or too long everywhere (a slow suite);
`wait_until` returns as soon as the condition holds and fails with a message when it never does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline (an AssertionError: pytest reports a failed check)."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str | Callable[[], object] = "",
) -> T:
    """Call predicate() every `interval` s until it returns something truthy, and return that value.

    Raises WaitTimeout once `timeout` s have passed with the predicate still falsy (it is called one last time
    at the deadline). `message` says what was awaited; a callable is called only then, so it can attach
    something costly to build, such as the tail of a log.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            what = message() if callable(message) else message
            name = getattr(predicate, "__qualname__", repr(predicate))
            raise WaitTimeout(f"not true after {timeout} s: {what or name} (last value: {value!r})")
        time.sleep(min(interval, left))
